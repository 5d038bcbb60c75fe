//! Packets bigger than an MTU on their way. A veth drops on the sender when its peer's MTU
//! is smaller, and the peer is often in a namespace nobody named: it is resolved exactly
//! (link-netnsid and peer ifindex, see `probe::nsid`), sampled or not.

use super::{place, DropGroup, Finding, Ns, Window};
use crate::diagnose::state::{Link, Peer};

/// A drop's length is the network packet's (`event::network_len`), what an MTU bounds.
fn too_small(mtu: u32, max_len: u32) -> bool {
    mtu > 0 && mtu < max_len
}

pub(super) fn mtu(w: &Window<'_>, n: &Ns<'_>, g: &DropGroup, f: &mut Finding) -> String {
    let (_, ifindex) = place(w.default_netns, g);
    let link = ifindex.and_then(|i| n.after?.link(i));
    if let Some((link, peer)) = link.and_then(|l| Some((l, l.peer.as_ref()?))) {
        let smaller = if g.max_len > 0 {
            too_small(peer.mtu, g.max_len)
        } else {
            peer.mtu > 0 && peer.mtu < link.mtu
        };
        if smaller {
            return peer_finding(w, n, g, link, peer, f);
        }
    }
    // A peer that could not be read is unknown, not absent.
    let unresolved = link.filter(|l| l.peer.is_none() && l.link_netnsid.is_some());
    if let Some(l) = unresolved {
        f.evidence.push(format!(
            "the other end of {} is in a namespace droptrace could not find (link-netnsid {} in {}): its MTU is unknown",
            l.name,
            l.link_netnsid.unwrap_or(-1),
            n.name
        ));
    }
    if g.max_len == 0 {
        f.evidence.push(
            "the size of the dropped packets is unknown (no packet details were read: the classic tracepoint, or their events were lost)".into(),
        );
        return "unknown".into();
    }
    // Without the interface: any link, or peer of one, in the sampled namespaces.
    let mut small: Vec<(u32, String, u32)> = Vec::new();
    let mut add = |inode: u32, name: &str, mtu: u32| {
        if name != "lo"
            && too_small(mtu, g.max_len)
            && !small.iter().any(|s| s.0 == inode && s.1 == name)
        {
            small.push((inode, name.to_owned(), mtu));
        }
    };
    let here = n.after.into_iter().map(|a| (n.inode, a));
    let elsewhere = w
        .after
        .iter()
        .filter(|(i, _)| **i != n.inode)
        .map(|(i, s)| (*i, s));
    for (inode, state) in here.chain(elsewhere) {
        for l in &state.links {
            add(inode, &l.name, l.mtu);
            if let Some(p) = &l.peer {
                add(p.netns.unwrap_or(inode), &p.name, p.mtu);
            }
        }
    }
    let Some((inode, name, mtu)) = small.first().cloned() else {
        f.evidence.push(format!(
            "dropped packets were up to {} bytes, and no interface with a smaller MTU was found in the sampled namespaces{}",
            g.max_len,
            if unresolved.is_some() {
                ""
            } else {
                " or at the other end of their veths"
            }
        ));
        return "unknown".into();
    };
    let where_ = w.names.describe(inode);
    f.summary = format!(
        "{name} in {where_} has MTU {mtu}; packets of up to {} bytes were sent to it",
        g.max_len
    );
    for (i, l, m) in &small {
        f.evidence
            .push(format!("{l} in {}: mtu {m}", w.names.describe(*i)));
    }
    f.evidence
        .push(format!("largest dropped packet: {} bytes", g.max_len));
    f.fix = format!(
        "{}ip link set dev {name} mtu 1500 (or whatever the rest of the path uses)",
        w.names.command_prefix(inode)
    );
    format!("{inode}|{name}")
}

fn peer_finding(
    w: &Window<'_>,
    n: &Ns<'_>,
    g: &DropGroup,
    link: &Link,
    peer: &Peer,
    f: &mut Finding,
) -> String {
    let peer_ns = peer.netns.unwrap_or(n.inode);
    let where_ = w.names.describe(peer_ns);
    f.summary = if g.max_len > 0 {
        format!(
            "{} in {where_} has MTU {}; packets of up to {} bytes were sent to it through {} in {} (MTU {})",
            peer.name, peer.mtu, g.max_len, link.name, n.name, link.mtu
        )
    } else {
        format!(
            "{} in {where_} has MTU {}, smaller than its peer {} in {} (MTU {}): bigger packets sent through {} are dropped",
            peer.name, peer.mtu, link.name, n.name, link.mtu, link.name
        )
    };
    f.evidence.push(format!(
        "{} in {} (mtu {}) is a veth whose other end is {} (ifindex {}) in {where_} (mtu {}), by link-netnsid and peer ifindex",
        link.name, n.name, link.mtu, peer.name, peer.ifindex, peer.mtu
    ));
    if g.max_len > 0 {
        f.evidence.push(format!(
            "largest dropped packet: {} bytes (IP header included, no layer-2 header)",
            g.max_len
        ));
    } else {
        f.evidence.push(
            "the size of the dropped packets is unknown (no packet details were read: the classic tracepoint, or their events were lost)".into(),
        );
    }
    f.fix = format!(
        "give both ends the same MTU: {}ip link set dev {} mtu {} (or lower the sender's: {}ip link set dev {} mtu {})",
        w.names.command_prefix(peer_ns),
        peer.name,
        link.mtu,
        n.prefix,
        link.name,
        peer.mtu
    );
    format!("{peer_ns}|{}", peer.name)
}
