//! Every kernel counter that moved in the window, and the ones that moved in step with a
//! finding's drops. A diagnosis that only knows its list of causes cannot keep up with the
//! kernel's drop reasons; the counters the kernel keeps (every SNMP and netstat counter,
//! softnet, interfaces, conntrack) say where a drop was counted whatever its reason, so
//! a finding whose family named no object names the counters that grew with it, and one
//! where none did says how many were read.

use serde::Serialize;

use super::{ns, Finding, Ns, Window};
use crate::diagnose::state::NsState;

/// One counter's growth between the samples, in one namespace.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CounterMove {
    /// The namespace's name alone (`web`, `host`).
    pub netns: String,
    /// `Udp:InCsumErrors`, `TcpExt:ListenDrops`, `dev:eth0:rx_drop`, `softnet:dropped`.
    pub counter: String,
    pub before: u64,
    pub after: u64,
    pub delta: u64,
}

/// Words in a counter's name that make it one of trouble (errors, drops, overflows,
/// refusals) rather than one of traffic (`InReceives`, `OutSegs`).
const TROUBLE: [&str; 30] = [
    "err",
    "drop",
    "fail",
    "discard",
    "overflow",
    "csum",
    "miss",
    "reject",
    "prune",
    "collapse",
    "abort",
    "invalid",
    "noport",
    "unknown",
    "toobig",
    "trunc",
    "bad",
    "fifo",
    "frame",
    "insert_failed",
    "early_drop",
    "noroute",
    "paws",
    // TCP-MD5 and TCP-AO refusals (TCPMD5NotFound, TCPMD5Unexpected, TCPAORequired).
    "notfound",
    "unexpected",
    "required",
    // IPReversePathFilter, OutOfWindowIcmps.
    "reversepath",
    "outofwindow",
    // IPsec: XfrmInTmplMismatch, XfrmInPolBlock.
    "mismatch",
    "polblock",
];

/// Whether a counter counts trouble by its name (case does not matter).
pub fn is_trouble(counter: &str) -> bool {
    let name = counter.rsplit(':').next().unwrap_or(counter).to_lowercase();
    TROUBLE.iter().any(|t| name.contains(t))
}

/// `group:name`, as people read it.
fn label(group: &str, name: &str) -> String {
    format!("{group}:{name}")
}

/// Every counter that grew between the samples of a namespace, in the order they are kept.
fn moved_in(n: &Ns<'_>) -> Vec<(String, u64, u64)> {
    let (Some(before), Some(after)) = (n.before, n.after) else {
        return Vec::new();
    };
    after
        .counters
        .iter()
        .filter_map(|((group, name), &now)| {
            let then = before.counter(group, name)?;
            (now > then).then(|| (label(group, name), then, now))
        })
        .collect()
}

/// Every counter that moved in every sampled namespace: trouble counters first, then by
/// growth.
pub fn counters_moved(w: &Window<'_>) -> Vec<CounterMove> {
    let mut out = Vec::new();
    for &inode in w.after.keys() {
        let n = ns(w, inode);
        let name = w.names.label(inode);
        for (counter, before, after) in moved_in(&n) {
            out.push(CounterMove {
                netns: name.clone(),
                counter,
                before,
                after,
                delta: after - before,
            });
        }
    }
    out.sort_by(|a, b| {
        is_trouble(&b.counter)
            .cmp(&is_trouble(&a.counter))
            .then(b.delta.cmp(&a.delta))
            .then(a.netns.cmp(&b.netns))
            .then(a.counter.cmp(&b.counter))
    });
    out
}

/// Drops of findings in a namespace whose evidence says a counter grew in step with them:
/// the part of that counter's growth the drop events already explain.
pub(super) fn explained_by_drops(findings: &[Finding], inode: u32, counter: &str) -> u64 {
    let needle = format!(" {counter} +");
    findings
        .iter()
        .filter(|f| f.netns_inode == Some(inode))
        .filter(|f| {
            f.evidence
                .iter()
                .any(|e| e.starts_with(STEP_PREFIX) && e.contains(&needle))
        })
        .map(|f| f.drops)
        .sum()
}

/// Whether `counter` (`Udp:InErrors`) counts packets of `protocol` (`udp`): the IP layer's
/// and the device's count every protocol; ICMP's count only ICMP.
fn counts_protocol(counter: &str, protocol: Option<&str>) -> bool {
    let group = counter.split(':').next().unwrap_or("").to_ascii_lowercase();
    let proto = protocol.unwrap_or("");
    match group.as_str() {
        "icmp" | "icmpmsg" => proto == "icmp",
        "icmp6" => proto == "icmpv6",
        "udp" | "udplite" | "udp6" | "udplite6" => proto == "udp" || proto == "udplite",
        "tcp" | "tcpext" | "mptcpext" => proto == "tcp" || proto == "mptcp",
        _ => true,
    }
}

/// Whether `counter` can count packets of IP version `family`: /proc/net/snmp's and
/// netstat's Ip, IpExt, Icmp and Udp count IPv4 only, snmp6's only IPv6; TCP's, the
/// devices' and the rest count both.
fn of_family(counter: &str, family: Option<&str>) -> bool {
    let group = counter.split(':').next().unwrap_or("").to_ascii_lowercase();
    !matches!(
        (group.as_str(), family),
        (
            "ip" | "ipext" | "icmp" | "icmpmsg" | "udp" | "udplite",
            Some("ipv6")
        ) | ("ip6" | "icmp6" | "udp6" | "udplite6", Some("ipv4"))
    )
}

/// How the evidence line of counters in step begins.
const STEP_PREFIX: &str = "counters that grew in step with these ";

/// Whether a counter's growth is that of `drops` drops: the samples bracket the watch, so
/// a counter of those drops grew by at least about as much, and by not much more unless
/// other packets met the same fate.
pub(super) fn in_step(delta: u64, drops: u64) -> bool {
    drops > 0 && delta * 10 >= drops * 9 && delta <= drops + (drops / 4).max(2)
}

/// Adds to a finding of drops whose family named nothing the trouble counters of its
/// namespace that grew in step with its drops, or says that none did among those read.
pub(super) fn name_counters(
    w: &Window<'_>,
    f: &mut Finding,
    inode: u32,
    named_nothing: bool,
    taken: &mut std::collections::BTreeSet<(u32, String)>,
) {
    let n = ns(w, inode);
    let Some(after) = n.after else {
        return;
    };
    let moved = moved_in(&n);
    let mut step: Vec<&(String, u64, u64)> = moved
        .iter()
        .filter(|(c, b, a)| is_trouble(c) && in_step(a - b, f.drops))
        .filter(|(c, _, _)| of_family(c, f.family) && !taken.contains(&(inode, c.clone())))
        .collect();
    taken.extend(step.iter().map(|(c, _, _)| (inode, c.clone())));
    step.sort_by_key(|(c, b, a)| ((a - b).abs_diff(f.drops), c.clone()));
    if let Some((counter, before, now)) = step.first() {
        let list = step
            .iter()
            .map(|(c, b, a)| format!("{c} +{} (now {a})", a - b))
            .collect::<Vec<_>>()
            .join(", ");
        f.evidence.push(format!(
            "{STEP_PREFIX}{} drops{} in {}: {list}",
            f.drops, n.between, n.name
        ));
        if named_nothing {
            // A counter of the packets' own protocol counts them; another one (ICMP errors
            // that the drops caused, say) only grew with them.
            f.summary = if counts_protocol(counter, f.protocol.as_deref()) {
                format!(
                    "{}; the kernel counted them as {counter} (+{} in the window)",
                    f.summary.trim_end_matches('.'),
                    now - before
                )
            } else {
                format!(
                    "{}; {counter} grew with them (+{} in the window)",
                    f.summary.trim_end_matches('.'),
                    now - before
                )
            };
        }
        return;
    }
    if !named_nothing || f.benign {
        return;
    }
    let trouble: Vec<String> = moved
        .iter()
        .filter(|(c, _, _)| is_trouble(c))
        .take(5)
        .map(|(c, b, a)| format!("{c} +{}", a - b))
        .collect();
    f.evidence.push(format!(
        "no counter of the {} read in {} grew in step with these drops{}",
        readable(after),
        n.name,
        if trouble.is_empty() {
            " (none of trouble moved at all)".to_owned()
        } else {
            format!("; trouble counters that moved: {}", trouble.join(", "))
        }
    ));
}

fn readable(after: &NsState) -> usize {
    after.counters.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trouble_is_told_by_the_counter_name() {
        for c in [
            "Udp:InCsumErrors",
            "TcpExt:ListenDrops",
            "TcpExt:TCPBacklogDrop",
            "Ip:InDiscards",
            "IpExt:InNoRoutes",
            "Udp:NoPorts",
            "dev:eth0:rx_fifo",
            "nf_conntrack:insert_failed",
            "TcpExt:PAWSEstab",
            "TcpExt:TCPMD5NotFound",
            "TcpExt:IPReversePathFilter",
            "TcpExt:TCPAORequired",
        ] {
            assert!(is_trouble(c), "{c}");
        }
        for c in [
            "Ip:InReceives",
            "Udp:InDatagrams",
            "Tcp:OutSegs",
            "softnet:time_squeeze",
        ] {
            assert!(!is_trouble(c), "{c}");
        }
    }

    #[test]
    fn in_step_allows_the_samples_margin_not_a_multiple() {
        assert!(in_step(12, 12));
        assert!(in_step(14, 12));
        assert!(in_step(11, 12));
        assert!(!in_step(30, 12));
        assert!(!in_step(5, 12));
        assert!(!in_step(3, 0));
    }
}
