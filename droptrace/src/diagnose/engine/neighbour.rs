//! Frames for another link-layer address (OTHERHOST). On a promiscuous interface (a
//! capture, a bridge port) that is housekeeping; on one that is not, a sender addressed
//! them wrongly: its neighbour (ARP/NDP) entry for the destination points elsewhere.
//! Told from the live state, never assumed from the reason.

use super::{DropGroup, Finding, Ns, Window};
use crate::diagnose::knowledge::Cause;

/// Takes the finding when the receiving interface is not promiscuous (returns true);
/// otherwise leaves it as the housekeeping it is, with the evidence that says so.
pub(super) fn otherhost(
    w: &Window<'_>,
    n: &Ns<'_>,
    g: &DropGroup,
    ifindex: Option<u32>,
    f: &mut Finding,
) -> bool {
    let Some(link) = ifindex.and_then(|i| n.after?.link(i)) else {
        return false;
    };
    if link.promisc {
        f.evidence.push(format!(
            "ip link: {} in {} is promiscuous: it sees frames for other hosts, and the stack drops them",
            link.name, n.name
        ));
        return false;
    }
    f.cause = Cause::Neighbour.id();
    f.benign = false;
    let mac = link.address.clone().unwrap_or_else(|| "?".into());
    f.evidence.push(format!(
        "ip link: {} in {} has address {mac} and is not promiscuous: frames for another address are not meant to reach it",
        link.name, n.name
    ));
    let dst = g.addrs.map(|(_, d)| d.to_string());
    // The entries that send this destination to another address, the veth peer's
    // namespace first (the sender on a pair).
    let peer_ns = link.peer.as_ref().map(|p| p.netns.unwrap_or(n.inode));
    let mut wrong: Vec<(u32, &crate::diagnose::evidence::neigh::Neighbour)> = w
        .after
        .iter()
        .flat_map(|(inode, st)| st.neighbours.iter().map(move |e| (*inode, e)))
        .filter(|(_, e)| Some(&e.dst) == dst.as_ref())
        .filter(|(_, e)| {
            e.lladdr.as_ref().is_some_and(|l| {
                link.address
                    .as_ref()
                    .is_some_and(|m| !l.eq_ignore_ascii_case(m))
            })
        })
        .collect();
    wrong.sort_by_key(|(inode, _)| Some(*inode) != peer_ns);
    let count = g.count;
    let Some((inode, entry)) = wrong.first() else {
        let dst = dst.unwrap_or_else(|| "their destination".into());
        f.evidence.push(format!(
            "no sampled namespace has a neighbour entry for {dst} with another address"
        ));
        f.summary = format!(
            "{count} frames for {dst} arrived on {} in {} addressed to another link-layer address: a sender's neighbour (ARP/NDP) entry is stale or wrong, or a switch floods",
            link.name, n.name
        );
        f.fix = format!(
            "on the senders: `ip neigh show {dst}`; delete or replace the entry that does not say {mac}"
        );
        return true;
    };
    let other = w.names.describe(*inode);
    let prefix = w.names.command_prefix(*inode);
    let lladdr = entry.lladdr.as_deref().unwrap_or("?");
    f.evidence.push(format!(
        "ip neigh in {other}: {} (the receiver's address is {mac})",
        entry.describe()
    ));
    f.summary = format!(
        "{count} frames for {} arrived on {} in {} addressed to {lladdr}, not its {mac}: the neighbour entry {} in {other} sends them to the wrong address",
        entry.dst,
        link.name,
        n.name,
        entry.describe()
    );
    f.fix = if entry.state.iter().any(|s| s == "PERMANENT") {
        format!(
            "{prefix}ip neigh replace {} lladdr {mac} dev {} (a static entry: whoever set it should change it)",
            entry.dst, entry.dev
        )
    } else {
        format!(
            "{prefix}ip neigh del {} dev {} (it is learnt again); if it comes back wrong, another host answers for {} (a duplicate address: `arping -D`)",
            entry.dst, entry.dev, entry.dst
        )
    };
    true
}
