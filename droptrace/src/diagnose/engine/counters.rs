//! Findings from kernel counters alone, for drops that never reach `kfree_skb` or that
//! the kernel's drop events did not explain.

use super::{
    device::{backlog, nic},
    netfilter::netfilter,
    ns,
    sockets::{listen_overflow, paws, rcvbuf},
    Finding, Ns, Window,
};
use crate::diagnose::{
    knowledge::{self, Cause},
    state::NsState,
};

/// Findings from kernel counters alone: drops that never reach kfree_skb.
pub(super) fn from_counters(w: &Window<'_>, existing: &[Finding]) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::new();
    // Interface and generic IP counters also count drops kfree_skb already showed (a
    // veth drop is tx_dropped on one side and rx_dropped on the other): only report them
    // when they exceed what the drops explain.
    let explained: u64 = existing.iter().filter(|f| !f.benign).map(|f| f.drops).sum();
    for &inode in w.after.keys() {
        let n = ns(w, inode);
        for info in knowledge::COUNTERS {
            let group = info.group;
            // softnet_stat is machine-wide: read once, in droptrace's own namespace; its
            // time_squeeze and flow_limit_count are not drops.
            if group == "softnet" && (inode != w.host_netns || info.name != "dropped") {
                continue;
            }
            let Some(delta) = counter_delta(&n, info.file, group, info.name) else {
                continue;
            };
            if delta == 0 {
                continue;
            }
            // UDP's InErrors also counts datagrams a socket filter or cgroup skb program
            // rejected (SOCKET_FILTER): the drop events explained those already.
            let filtered: u64 = existing
                .iter()
                .filter(|f| f.reason.as_deref() == Some("SOCKET_FILTER"))
                .filter(|f| f.netns_inode == Some(inode))
                .map(|f| f.drops)
                .sum();
            if info.name == "InErrors" && info.cause == Cause::SocketRcvbuf && delta <= filtered {
                continue;
            }
            // Drops whose events said they grew this counter (a bad checksum is also
            // Udp:InErrors) are explained already.
            let label = format!("{group}:{}", info.name);
            if delta <= super::moved::explained_by_drops(existing, inode, &label) {
                continue;
            }
            let cause = info.cause.id();
            let generic = matches!(info.cause, Cause::Nic | Cause::Other);
            if generic && (delta <= explained || (info.cause == Cause::Other && explained > 0)) {
                continue;
            }
            let covered = existing
                .iter()
                .chain(out.iter())
                .any(|f| f.cause == cause && f.netns_inode.is_none_or(|i| i == inode));
            if covered {
                if let Some(f) = out
                    .iter_mut()
                    .find(|f| f.cause == cause && f.netns_inode == Some(inode))
                {
                    f.drops = f.drops.max(delta);
                }
                continue;
            }
            let mut f = Finding {
                cause,
                drops: delta,
                rate: 0.0,
                summary: String::new(),
                evidence: Vec::new(),
                fix: knowledge::fill_placeholders(info.fix, None, None),
                benign: false,
                netns: Some(n.name.clone()),
                netns_name: None,
                pod: None,
                container: None,
                reason: None,
                location: None,
                protocol: None,
                dport: None,
                iface: None,
                merge_key: format!("{cause}|{inode}|counter"),
                netns_inode: Some(inode),
                family: None,
                subjects: Vec::new(),
            };
            match info.cause {
                Cause::ListenOverflow => {
                    listen_overflow(&n, &mut f);
                }
                Cause::NetdevBacklog => {
                    backlog(&n, &mut f);
                }
                Cause::Nic => {
                    nic(&n, &mut f);
                    if let Some(i) = f.iface.clone() {
                        super::link_state::explain(w, &n, &i, true, &mut f);
                    }
                }
                Cause::SocketRcvbuf => {
                    rcvbuf(&n, None, &mut f);
                }
                Cause::Paws => {
                    paws(&n, &mut f);
                }
                Cause::ConntrackFull | Cause::NetfilterRule => {
                    netfilter(w, &n, None, &mut f);
                }
                _ => {}
            }
            if f.summary.is_empty() {
                f.summary = format!("{} in {}: {}", info.name, n.name, info.explanation);
            }
            let line = format!("{group} {} +{delta} in the window", info.name);
            if !f.evidence.iter().any(|e| e.starts_with(&line)) {
                f.evidence
                    .insert(0, format!("{line}: {}", info.explanation));
            }
            out.push(f);
        }
    }
    out
}

fn counter_delta(n: &Ns<'_>, file: &str, group: &str, name: &str) -> Option<u64> {
    match file {
        // Per-interface counters are summed over interfaces.
        "dev" => {
            let after = n.after?;
            // Growth needs a sample before: a counter's value alone is not the window's.
            let before = n.before?;
            let sum = |s: &NsState| -> u64 {
                s.counters
                    .iter()
                    .filter(|((g, c), _)| g.starts_with("dev:") && g != "dev:lo" && c == name)
                    .map(|(_, v)| *v)
                    .sum()
            };
            Some(sum(after).saturating_sub(sum(before)))
        }
        _ => n.delta(group, name),
    }
}
