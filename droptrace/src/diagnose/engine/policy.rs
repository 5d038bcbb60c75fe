//! Chain policies: packets that no rule took fall to the chain's policy, and a policy of
//! drop drops them. nftables keeps no counter for a policy and iptables-nft keeps it at
//! 0, so such a drop shows as "no rule counter moved" with a policy-drop chain that fits
//! the packets; the fix is the rule that admits them, not a counter.

use super::{DropGroup, Finding, Ns};
use crate::diagnose::{knowledge::Cause, state::Rule};

/// Whether a rule of this table or tool can see packets of `family` ("ipv4", "ipv6").
fn fits_family(rule: &Rule, family: Option<&str>) -> bool {
    let Some(family) = family else { return true };
    let table_family = if rule.source == "nftables" {
        rule.table.split_whitespace().next().unwrap_or("")
    } else if rule.source.starts_with("ip6tables") {
        "ip6"
    } else {
        "ip"
    };
    match table_family {
        "ip" => family == "ipv4",
        "ip6" => family == "ipv6",
        // inet, bridge and netdev chains see both.
        _ => true,
    }
}

/// Hooks in the order a dropped packet most likely met them: most drops are of packets
/// to this host.
fn hook_rank(rule: &Rule) -> usize {
    const ORDER: &[&str] = &["input", "forward", "prerouting", "output", "postrouting"];
    rule.hook
        .as_deref()
        .and_then(|h| ORDER.iter().position(|o| *o == h))
        .unwrap_or(ORDER.len())
}

/// Chain policies of drop that could have dropped the group's packets and keep no
/// counter that could say: most likely first.
pub(super) fn uncounted_policies<'a>(rules: &'a [Rule], g: Option<&DropGroup>) -> Vec<&'a Rule> {
    let family = g.and_then(|g| g.family.as_deref());
    let mut out: Vec<&Rule> = rules
        .iter()
        .filter(|r| r.is_policy && r.packets.is_none() && fits_family(r, family))
        .collect();
    out.sort_by_key(|r| hook_rank(r));
    out
}

/// Transport protocols whose destination port a firewall rule can match.
fn has_ports(proto: &str) -> bool {
    matches!(proto, "tcp" | "udp" | "sctp" | "dccp" | "udplite")
}

/// The command that admits packets like the group's into the chain of `policy`, placed
/// after its rules (the packets fell through all of them). `None` when the packets'
/// protocol is not known: a command with a placeholder in it is no fix.
pub(super) fn admitting_rule(policy: &Rule, g: Option<&DropGroup>) -> Option<String> {
    let g = g?;
    let proto = g.protocol.as_deref()?;
    // "ipv4"/"ipv6" as a protocol means only the network layer was read.
    if proto.starts_with("ipv") || proto.starts_with("ip-proto-") {
        return None;
    }
    let port = g.dport.filter(|_| has_ports(proto));
    if policy.source == "nftables" {
        let what = match port {
            Some(p) => format!("{proto} dport {p}"),
            None => format!("meta l4proto {proto}"),
        };
        Some(format!(
            "nft add rule {} {} {what} accept",
            policy.table, policy.chain
        ))
    } else {
        let what = match port {
            Some(p) => format!("-p {proto} --dport {p}"),
            None => format!("-p {proto}"),
        };
        Some(format!(
            "{} -t {} -A {} {what} -j ACCEPT",
            policy.source, policy.table, policy.chain
        ))
    }
}

/// The finding for packets that fell through every rule of `policy`'s chain. `counted`:
/// the policy's own counter grew (and the evidence already says so).
pub(super) fn fell_through(
    n: &Ns<'_>,
    g: Option<&DropGroup>,
    policy: &Rule,
    counted: bool,
    f: &mut Finding,
) -> String {
    f.cause = Cause::NetfilterRule.id();
    f.subjects.push(crate::diagnose::subject::chain(
        &policy.source,
        &policy.table,
        &policy.chain,
    ));
    let hook = policy
        .hook
        .as_deref()
        .map(|h| format!(" (hook {h})"))
        .unwrap_or_default();
    f.summary = format!(
        "the packets fell through every rule of {} chain `{} {}`{hook} to its policy drop in {}",
        policy.source, policy.table, policy.chain, n.name
    );
    if !counted {
        f.evidence.push(format!(
            "{} chain `{} {}` has {}, and no rule's counter grew in the window ({} keeps no counter for a policy)",
            policy.source,
            policy.table,
            policy.chain,
            policy.text,
            if policy.source == "nftables" {
                "nftables"
            } else {
                "iptables-nft"
            }
        ));
    }
    let admit = admitting_rule(policy, g);
    f.fix = match &admit {
        Some(cmd) => format!(
            "admit the packets that should pass: {}{cmd} (or accept everything: {}{})",
            n.prefix, n.prefix, policy.delete
        ),
        None => format!(
            "add a rule accepting the traffic that should pass to {} chain `{} {}` (the packets' protocol and port are unknown, so no rule can be written for them here), or accept everything: {}{}",
            policy.source, policy.table, policy.chain, n.prefix, policy.delete
        ),
    };
    policy.key.clone()
}
