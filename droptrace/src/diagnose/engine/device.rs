//! Drops below the IP stack: a CPU's input backlog, and the interface or its driver.

use super::{Finding, Ns};
use crate::diagnose::state::Link;

pub(super) fn backlog(n: &Ns<'_>, f: &mut Finding) -> String {
    if let Some(d) = n.delta("softnet", "dropped") {
        f.evidence.push(format!(
            "/proc/net/softnet_stat dropped +{d} in the window (all CPUs)"
        ));
    }
    f.evidence
        .extend(n.sysctl_line("net.core.netdev_max_backlog"));
    f.summary =
        "a CPU's input backlog queue overflows: packets arrive faster than that CPU processes them"
            .into();
    f.fix = format!(
        "raise the queue ({}) and spread the load (RPS/RSS, irqbalance)",
        n.set_sysctl("net.core.netdev_max_backlog", "4096")
    );
    "backlog".into()
}

pub(super) fn nic(n: &Ns<'_>, f: &mut Finding) -> String {
    let Some(after) = n.after else {
        return "unknown".into();
    };
    let mut key = "unknown".to_owned();
    for l in &after.links {
        let before = n
            .before
            .and_then(|b| b.links.iter().find(|p| p.ifindex == l.ifindex));
        let d = |now: u64, then: fn(&Link) -> u64| now.saturating_sub(before.map_or(0, then));
        let (drop, missed, fifo, over) = (
            d(l.rx_dropped, |x| x.rx_dropped),
            d(l.rx_missed, |x| x.rx_missed),
            d(l.rx_fifo, |x| x.rx_fifo),
            d(l.rx_over, |x| x.rx_over),
        );
        if drop + missed + fifo + over > 0 {
            f.evidence.push(format!(
                "ip -s link {}: rx dropped +{drop}, missed +{missed}, fifo +{fifo}, overruns +{over} in the window",
                l.name
            ));
            if key == "unknown" {
                key = l.name.clone();
                f.iface = Some(l.name.clone());
                f.summary = format!(
                    "the interface {} in {} drops received packets itself (driver or ring)",
                    l.name, n.name
                );
            }
        }
    }
    // Transmit drops, where nothing was dropped on receive: the device refused to send.
    if key == "unknown" {
        // The finding's own interface first; only links sampled before too (a count
        // alone is not the window's growth).
        let mut links: Vec<&Link> = after.links.iter().collect();
        links.sort_by_key(|l| f.iface.as_deref() != Some(l.name.as_str()));
        for l in links {
            let Some(before) = n
                .before
                .and_then(|b| b.links.iter().find(|p| p.ifindex == l.ifindex))
            else {
                continue;
            };
            let tx = l.tx_dropped.saturating_sub(before.tx_dropped);
            if tx == 0 {
                continue;
            }
            f.evidence.push(format!(
                "ip -s link {}: tx dropped +{tx} in the window",
                l.name
            ));
            if key == "unknown" {
                key = l.name.clone();
                f.iface = Some(l.name.clone());
                f.summary = format!(
                    "the interface {} in {} drops packets it is given to send (driver, or a pair device's other end)",
                    l.name, n.name
                );
                f.fix = format!(
                    "look at the device ({p}ip -s -d link show {k}; {p}ethtool -S {k}); for a pair device, its other end",
                    p = n.prefix,
                    k = key
                );
            }
        }
        return key;
    }
    // The ring's advice only where an interface's own counters say it dropped; else the
    // reason's own fix (a bad checksum is corruption on the way, not a full ring).
    if key != "unknown" {
        f.fix = format!(
            "look at the driver's counters ({p}ethtool -S {k}) and grow the receive ring ({p}ethtool -G {k} rx 4096)",
            p = n.prefix,
            k = key
        );
    }
    key
}
