//! Sampling the host for the exporter: which network namespaces and interfaces exist (for
//! the metrics' names, and to remove the series of what is gone), and in each namespace
//! the kernel's counters of drops that never reach kfree_skb.
use crate::{
    diagnose::evidence::proc,
    pipeline::event::Netns,
    pipeline::host::{HostSample, StackCounter},
};

use super::{
    netns::{self, Namespaces},
    workloads::{HostPaths, Scan},
};

/// Namespaces sampled at most (a container host can have thousands).
pub const MAX_NAMESPACES: usize = 512;

/// Counters of /proc/net/snmp and /proc/net/netstat that count drops the kernel makes
/// without freeing the packet through kfree_skb, or before any socket sees it:
/// (group, name).
const MIB_COUNTERS: &[(&str, &str)] = &[
    ("TcpExt", "ListenOverflows"),
    ("TcpExt", "ListenDrops"),
    ("TcpExt", "TCPBacklogDrop"),
    ("TcpExt", "TCPRcvQDrop"),
    ("TcpExt", "TCPZeroWindowDrop"),
    ("Udp", "RcvbufErrors"),
    ("Udp", "SndbufErrors"),
    ("UdpLite", "RcvbufErrors"),
];

/// /proc/net/snmp6 counters, by their full name.
const SNMP6_COUNTERS: &[&str] = &["Udp6RcvbufErrors", "Udp6SndbufErrors"];

/// What one namespace gives: its interfaces and its counter files.
struct Raw {
    /// The namespace's cookie (0 without cookies).
    cookie: u64,
    interfaces: Vec<(u32, String)>,
    snmp: Option<String>,
    netstat: Option<String>,
    snmp6: Option<String>,
    dev: Option<String>,
    softnet: Option<String>,
}

/// Looks at every namespace (at most `MAX_NAMESPACES`) now, and at the containers and pods
/// they belong to (the host's files under `host`).
pub fn sample(host: &HostPaths) -> HostSample {
    let namespaces = Namespaces::scan();
    let own = netns::own();
    let mut sample = HostSample::default();
    sample.topology.complete = namespaces.len() <= MAX_NAMESPACES;
    let mut inodes = std::collections::HashMap::new();
    for (inode, path) in namespaces.all().take(MAX_NAMESPACES) {
        let read = |own_ns: bool| Raw {
            cookie: netns::own_cookie(),
            interfaces: netns::interfaces(),
            snmp: read_net("snmp"),
            netstat: read_net("netstat"),
            snmp6: read_net("snmp6"),
            dev: read_net("dev"),
            // Machine-wide: read once, in droptrace's own namespace.
            softnet: own_ns.then(|| read_net("softnet_stat")).flatten(),
        };
        let raw = if inode == own.inode {
            Ok(read(true))
        } else {
            netns::in_netns(Some(path), || read(false))
        };
        let label = namespaces.metric_label(inode);
        // Found but not entered (it went away just now, or entering it was refused): it
        // exists as far as anyone can tell; its interfaces (and cookie) are unknown.
        let Ok(raw) = raw else {
            let ns = Netns::inode(inode);
            sample.topology.namespaces.insert(ns, label);
            sample.topology.unentered.insert(ns);
            continue;
        };
        let ns = Netns::new(inode, raw.cookie);
        sample.topology.namespaces.insert(ns, label);
        for (index, name) in &raw.interfaces {
            sample
                .topology
                .interfaces
                .insert((ns, *index), name.clone());
        }
        counters(ns, &raw, &mut sample.counters);
        inodes.insert(inode, ns);
    }
    // The workloads keyed like the namespaces just read (their cookies).
    sample.topology.workloads = Scan::run(host)
        .workloads
        .into_iter()
        .map(|(inode, w)| {
            (
                inodes.get(&inode).copied().unwrap_or(Netns::inode(inode)),
                w,
            )
        })
        .collect();
    sample
}

fn read_net(name: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/thread-self/net/{name}")).ok()
}

/// The counters of one namespace's files (a file that does not parse gives none).
fn counters(netns: Netns, raw: &Raw, out: &mut Vec<StackCounter>) {
    let mut push = |interface: Option<&str>, counter: &'static str, value: i64| {
        out.push(StackCounter {
            netns,
            interface: interface.map(str::to_owned),
            counter,
            value: u64::try_from(value).unwrap_or(0),
        });
    };
    for text in [&raw.snmp, &raw.netstat].into_iter().flatten() {
        let Ok(mib) = proc::parse_snmp(text) else {
            continue;
        };
        for (group, name) in MIB_COUNTERS {
            if let Some(v) = mib.get(group, name) {
                push(None, counter_name(group, name), v);
            }
        }
    }
    if let Some(Ok(snmp6)) = raw.snmp6.as_deref().map(proc::parse_snmp6) {
        for name in SNMP6_COUNTERS {
            if let Some(v) = snmp6.get(*name) {
                push(None, counter_name("Udp6", &name[4..]), *v);
            }
        }
    }
    if let Some(Ok(softnet)) = raw.softnet.as_deref().map(proc::parse_softnet) {
        push(
            None,
            "softnet:dropped",
            i64::try_from(softnet.dropped).unwrap_or(i64::MAX),
        );
    }
    if let Some(Ok(devs)) = raw.dev.as_deref().map(proc::parse_net_dev) {
        for d in devs {
            for (counter, v) in [
                ("dev:rx_dropped", d.rx.drop),
                ("dev:rx_fifo", d.rx.fifo),
                ("dev:tx_dropped", d.tx.drop),
                ("dev:tx_fifo", d.tx.fifo),
            ] {
                push(Some(&d.name), counter, i64::try_from(v).unwrap_or(i64::MAX));
            }
        }
    }
}

/// `TcpExt:ListenOverflows`: a label value that lives as long as the program.
fn counter_name(group: &str, name: &str) -> &'static str {
    const NAMES: &[&str] = &[
        "TcpExt:ListenOverflows",
        "TcpExt:ListenDrops",
        "TcpExt:TCPBacklogDrop",
        "TcpExt:TCPRcvQDrop",
        "TcpExt:TCPZeroWindowDrop",
        "Udp:RcvbufErrors",
        "Udp:SndbufErrors",
        "UdpLite:RcvbufErrors",
        "Udp6:RcvbufErrors",
        "Udp6:SndbufErrors",
    ];
    NAMES
        .iter()
        .find(|n| n.split_once(':') == Some((group, name)))
        .copied()
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Option<String> {
        Some(
            std::fs::read_to_string(format!(
                "{}/fixtures/evidence/{name}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
        )
    }

    #[test]
    fn counters_come_from_the_captured_files() {
        let raw = Raw {
            cookie: 0,
            interfaces: Vec::new(),
            snmp: fixture("proc-net-snmp.txt"),
            netstat: fixture("proc-net-netstat.txt"),
            snmp6: fixture("proc-net-snmp6.txt"),
            dev: fixture("proc-net-dev.txt"),
            softnet: fixture("proc-net-softnet_stat.txt"),
        };
        let mut out = Vec::new();
        counters(Netns::new(7, 3), &raw, &mut out);
        let names: Vec<&str> = out.iter().map(|c| c.counter).collect();
        for expected in [
            "TcpExt:ListenOverflows",
            "Udp:RcvbufErrors",
            "Udp6:RcvbufErrors",
            "softnet:dropped",
            "dev:rx_dropped",
        ] {
            assert!(names.contains(&expected), "{expected} in {names:?}");
        }
        assert!(!names.contains(&"other"), "{names:?}");
        assert!(out.iter().any(|c| c.interface.as_deref() == Some("lo")));
    }
}
