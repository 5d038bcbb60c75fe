//! Firewall drops: the nftables or iptables rule whose counter grew, or a full
//! conntrack table when no counter moved.

use super::{
    policy::{fell_through, uncounted_policies},
    DropGroup, Finding, Ns, Window,
};
use crate::diagnose::{knowledge::Cause, state::Rule, subject};

/// Growth of a rule's counter in the window. A rule absent before was added during the
/// window, so all its count is new; without a first sample nothing can be said.
fn rule_delta(n: &Ns<'_>, rule: &Rule) -> Option<u64> {
    let after = rule.packets?;
    let before = match n.before?.rules.iter().find(|r| r.key == rule.key) {
        Some(r) => r.packets?,
        None => 0,
    };
    Some(after.saturating_sub(before))
}

/// Whether a rule's text names this destination port (nft `dport 22`, iptables
/// `--dport 22`, `--dports 22,80`); ports in sets or ranges are not recognised.
fn rule_names_port(rule: &Rule, port: u16) -> bool {
    let port = port.to_string();
    let words: Vec<&str> = rule.text.split_whitespace().collect();
    words.windows(2).any(|w| {
        matches!(w[0], "dport" | "--dport" | "--dports") && w[1].split(',').any(|p| p == port)
    })
}

/// The namespace was sampled only after the window (it was beyond the cap before):
/// growth cannot be told, but a rule that drops or rejects, has counted packets and names
/// this group's port (or is the only one that counted any) is named as the likely one,
/// with its counter as it is and that said plainly.
fn counted_without_before(
    n: &Ns<'_>,
    g: Option<&DropGroup>,
    after: &crate::diagnose::state::NsState,
    f: &mut Finding,
) -> Option<String> {
    let counted: Vec<&Rule> = after
        .rules
        .iter()
        .filter(|r| !r.is_policy && r.packets.is_some_and(|p| p > 0))
        .collect();
    let by_port: Vec<&Rule> = match g.and_then(|g| g.dport) {
        Some(port) => counted
            .iter()
            .copied()
            .filter(|r| rule_names_port(r, port))
            .collect(),
        None => Vec::new(),
    };
    let top = match (by_port.as_slice(), counted.as_slice()) {
        ([one, ..], _) | ([], [one]) => *one,
        _ => return None,
    };
    f.cause = Cause::NetfilterRule.id();
    f.summary = format!(
        "the {} rule `{} {}: {}` probably dropped these packets in {} (it drops them and has counted {} packets; {}, so its growth with them is unknown)",
        top.source,
        top.table,
        top.chain,
        top.text,
        n.name,
        top.packets.unwrap_or(0),
        n.no_before
    );
    let handle = top
        .key
        .rsplit_once(" handle ")
        .map(|(_, h)| format!(" (handle {h})"))
        .unwrap_or_default();
    f.evidence.push(format!(
        "{} rule `{} {}: {}`{handle}: counter now {}; no sample before the drops",
        top.source,
        top.table,
        top.chain,
        top.text,
        top.packets.unwrap_or(0)
    ));
    f.fix = format!("{}{}", n.prefix, top.delete);
    Some(top.key.clone())
}

pub(super) fn netfilter(
    w: &Window<'_>,
    n: &Ns<'_>,
    g: Option<&DropGroup>,
    f: &mut Finding,
) -> String {
    let Some(after) = n.after else {
        f.evidence
            .push(format!("no firewall state could be read in {}", n.name));
        return "unknown".into();
    };
    let mut grown: Vec<(&Rule, u64)> = after
        .rules
        .iter()
        .filter_map(|r| rule_delta(n, r).filter(|d| *d > 0).map(|d| (r, d)))
        .collect();
    grown.sort_by_key(|g| std::cmp::Reverse(g.1));
    // Several rules may have dropped in the window: prefer those naming this group's port.
    if let Some(port) = g.and_then(|g| g.dport) {
        if grown.iter().any(|(r, _)| rule_names_port(r, port)) {
            grown.retain(|(r, _)| rule_names_port(r, port));
        }
    }
    if let Some((top, delta)) = grown.first() {
        f.cause = Cause::NetfilterRule.id();
        let random = top
            .random
            .map(|p| format!(", matching at random with probability {p:.2}"))
            .unwrap_or_default();
        let what = if top.is_policy {
            "policy of chain"
        } else {
            "rule"
        };
        f.summary = format!(
            "the {} {what} `{} {}: {}` dropped {} packets{random}{} in {}",
            top.source, top.table, top.chain, top.text, delta, n.between, n.name
        );
        for (r, d) in &grown {
            f.subjects.push(subject::rule(r));
            // nftables rules are named by handle; iptables rules by their text.
            let handle = r
                .key
                .rsplit_once(" handle ")
                .map(|(_, h)| format!(" (handle {h})"))
                .unwrap_or_default();
            f.evidence.push(format!(
                "{} {} `{} {}: {}`{handle}: counter +{d} in the window, now {}",
                r.source,
                if r.is_policy { "chain policy" } else { "rule" },
                r.table,
                r.chain,
                r.text,
                r.packets.unwrap_or(0)
            ));
        }
        f.fix = format!("{}{}", n.prefix, top.delete);
        if top.is_policy {
            // The counter line above is the policy's evidence.
            return fell_through(n, g, top, true, f);
        }
        return top.key.clone();
    }
    if n.before.is_none() {
        if let Some(key) = counted_without_before(n, g, after, f) {
            return key;
        }
    }
    // No counter moved: is conntrack refusing new connections?
    let count = after
        .sysctl("net.netfilter.nf_conntrack_count")
        .and_then(|v| v.parse::<u64>().ok());
    let max = after
        .sysctl("net.netfilter.nf_conntrack_max")
        .and_then(|v| v.parse::<u64>().ok());
    let ct_drops = n.delta("nf_conntrack", "drop").unwrap_or(0)
        + n.delta("nf_conntrack", "early_drop").unwrap_or(0);
    if let (Some(c), Some(m)) = (count, max) {
        if m > 0 && (c * 100 >= m * 95 || ct_drops > 0 || w.conntrack_full_log_lines > 0) {
            f.cause = Cause::ConntrackFull.id();
            f.summary = format!(
                "the conntrack table is full in {} ({c} of {m} entries): new connections are dropped",
                n.name
            );
            f.evidence.push(format!(
                "net.netfilter.nf_conntrack_count = {c}, nf_conntrack_max = {m}"
            ));
            if ct_drops > 0 {
                f.evidence.push(format!(
                    "conntrack statistics: drop + early_drop +{ct_drops} in the window"
                ));
            }
            if w.conntrack_full_log_lines > 0 {
                f.evidence.push(format!(
                    "kernel log: {} lines \"nf_conntrack: table full, dropping packet\"",
                    w.conntrack_full_log_lines
                ));
            }
            f.fix = format!(
                "raise the limit: {}; or find what opens so many connections: {}conntrack -L",
                n.set_sysctl(
                    "net.netfilter.nf_conntrack_max",
                    &m.saturating_mul(2).to_string()
                ),
                n.prefix
            );
            return "conntrack".into();
        }
    }
    let uncounted: Vec<&Rule> = after
        .rules
        .iter()
        .filter(|r| !r.is_policy && r.packets.is_none())
        .collect();
    // Without a counter any of them may be the one: the evidence names them all.
    f.subjects
        .extend(uncounted.iter().map(|r| subject::rule(r)));
    let uncounted: Vec<String> = uncounted
        .iter()
        .map(|r| format!("`{} {}: {}`", r.table, r.chain, r.text))
        .collect();
    let policies = uncounted_policies(&after.rules, g);
    if let Some(policy) = policies.first() {
        let key = fell_through(n, g, policy, false, f);
        for other in &policies[1..] {
            f.evidence.push(format!(
                "{} chain `{} {}` also has {}",
                other.source, other.table, other.chain, other.text
            ));
        }
        if !uncounted.is_empty() {
            f.evidence.push(format!(
                "these rules drop or reject without a counter and may have matched instead: {}",
                uncounted.join(", ")
            ));
        }
        return key;
    }
    let drop_rules: Vec<&Rule> = after.rules.iter().collect();
    if n.before.is_none() && !drop_rules.is_empty() {
        f.evidence.push(format!(
            "{}: which rule's counter grew with them cannot be told",
            n.no_before
        ));
        f.summary = format!(
            "a netfilter hook dropped these packets in {}; which rule is unknown without a sample before the drops",
            n.name
        );
        return "unconfirmed".into();
    }
    if drop_rules.is_empty() {
        f.evidence.push(format!(
            "no nftables or iptables rule with a drop or reject verdict was found in {}",
            n.name
        ));
    } else {
        f.evidence.push(format!(
            "no rule counter moved; these rules drop or reject but have no counter to confirm: {}",
            drop_rules
                .iter()
                .filter(|r| r.packets.is_none())
                .map(|r| format!("`{} {}: {}`", r.table, r.chain, r.text))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        f.fix = "add `counter` to the drop rules (nft) to see which one matches, then remove or narrow it".into();
    }
    f.summary = format!(
        "a netfilter hook dropped these packets in {}, but no rule's counter shows which",
        n.name
    );
    "unconfirmed".into()
}
