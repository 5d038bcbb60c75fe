//! Packets bigger than an MTU on their way, possibly in the peer namespace of a veth.

use super::{DropGroup, Finding, Ns, Window};
use crate::diagnose::state::Link;

pub(super) fn mtu(w: &Window<'_>, n: &Ns<'_>, g: &DropGroup, f: &mut Finding) -> String {
    if g.max_len == 0 {
        f.evidence
            .push("the size of the dropped packets is unknown (their events were lost)".into());
        return "unknown".into();
    }
    // The too-small MTU may sit on the receiving side of a veth, in another namespace.
    let mut small: Vec<(u32, &Link)> = Vec::new();
    let here = n
        .after
        .into_iter()
        .flat_map(|a| a.links.iter().map(move |l| (n.inode, l)));
    let elsewhere = w
        .after
        .iter()
        .filter(|(i, _)| **i != n.inode)
        .flat_map(|(i, s)| s.links.iter().map(move |l| (*i, l)));
    for (inode, link) in here.chain(elsewhere) {
        // skb->len can include the link-layer header: allow for it.
        if link.name != "lo" && link.mtu > 0 && link.mtu + 14 < g.max_len {
            small.push((inode, link));
        }
    }
    let Some((inode, link)) = small.first() else {
        f.evidence.push(format!(
            "dropped packets were up to {} bytes, and no interface with a smaller MTU was found",
            g.max_len
        ));
        return "unknown".into();
    };
    let where_ = w.names.describe(*inode);
    f.summary = format!(
        "packets of up to {} bytes are dropped because {} in {} has an MTU of {}",
        g.max_len, link.name, where_, link.mtu
    );
    for (i, l) in &small {
        f.evidence.push(format!(
            "{} in {}: mtu {}",
            l.name,
            w.names.describe(*i),
            l.mtu
        ));
    }
    f.evidence
        .push(format!("largest dropped packet: {} bytes", g.max_len));
    f.fix = format!(
        "{}ip link set dev {} mtu 1500",
        w.names.command_prefix(*inode),
        link.name
    );
    format!("{}|{}", inode, link.name)
}
