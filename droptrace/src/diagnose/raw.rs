//! What diagnose samples in each network namespace, and the raw text it keeps. The
//! sampling itself (running the tools inside a namespace) is `probe::collect`; everything
//! from here on parses that text, so it is testable on captured files.
use std::collections::{BTreeMap, BTreeSet};

/// Files read from /proc inside the namespace (relative to /proc/thread-self/net).
pub const PROC_NET_FILES: &[&str] = &[
    "snmp",
    "netstat",
    "snmp6",
    "dev",
    "softnet_stat",
    "stat/nf_conntrack",
];

/// Sysctls the diagnosis cites (interface-specific rp_filter is added per link). Whether a
/// namespace has its own copy of each is read from the namespace itself (see
/// `RawSnapshot::global_sysctls`): it differs between sysctls and between kernels.
pub const SYSCTLS: &[&str] = &[
    "net/ipv4/conf/all/rp_filter",
    "net/ipv4/conf/default/rp_filter",
    "net/core/netdev_max_backlog",
    "net/core/rmem_default",
    "net/core/rmem_max",
    "net/core/somaxconn",
    "net/ipv4/tcp_max_syn_backlog",
    "net/ipv4/tcp_syncookies",
    "net/ipv4/tcp_timestamps",
    "net/ipv4/udp_mem",
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/forwarding",
    "net/ipv6/conf/all/forwarding",
    "net/netfilter/nf_conntrack_count",
    "net/netfilter/nf_conntrack_max",
];

/// Commands run inside the namespace: (key, program, arguments).
pub const COMMANDS: &[(&str, &str, &[&str])] = &[
    ("nft", "nft", &["-a", "list", "ruleset"]),
    ("iptables-nft", "iptables-nft-save", &["-c"]),
    ("ip6tables-nft", "ip6tables-nft-save", &["-c"]),
    ("iptables-legacy", "iptables-legacy-save", &["-c"]),
    ("ip6tables-legacy", "ip6tables-legacy-save", &["-c"]),
    ("qdiscs", "tc", &["-s", "-j", "qdisc", "show"]),
    ("links", "ip", &["-j", "-s", "-d", "link", "show"]),
    ("bpf-net", "bpftool", &["-j", "net", "show"]),
    // Machine-wide (cgroups are not per namespace), but cheap.
    ("bpf-cgroup", "bpftool", &["-j", "cgroup", "tree"]),
    (
        "tcp-listen",
        "ss",
        &["-H", "-t", "-l", "-n", "-p", "-e", "-m"],
    ),
    ("udp", "ss", &["-H", "-u", "-a", "-n", "-p", "-m"]),
    (
        "routes4",
        "ip",
        &["-j", "-4", "route", "show", "table", "all"],
    ),
    (
        "routes6",
        "ip",
        &["-j", "-6", "route", "show", "table", "all"],
    ),
    ("rules4", "ip", &["-j", "-4", "rule", "show"]),
    ("rules6", "ip", &["-j", "-6", "rule", "show"]),
];

/// Sysctls read for each interface (`{}` is its name).
pub const LINK_SYSCTLS: &[&str] = &[
    "net/ipv4/conf/{}/rp_filter",
    "net/ipv4/conf/{}/forwarding",
    "net/ipv6/conf/{}/forwarding",
];

/// The arguments of `ip` for one route lookup, e.g. `10.88.0.5 from 10.66.0.1 iif eth0`
/// (words of a query made by the engine from addresses and interface names).
pub fn route_get_args(query: &str) -> Vec<String> {
    let mut args = vec!["-j".to_owned(), "route".to_owned(), "get".to_owned()];
    args.extend(query.split_whitespace().map(str::to_owned));
    args
}

/// Raw state of one namespace at one moment.
#[derive(Debug, Clone, Default)]
pub struct RawSnapshot {
    /// Output of each of `COMMANDS` by key.
    pub commands: BTreeMap<String, String>,
    /// Their standard error, where it said something (nft warns there about tables
    /// that iptables-nft manages).
    pub stderr: BTreeMap<String, String>,
    /// `tc -j filter show dev DEV ingress|egress`, by (dev, direction), where a clsact or
    /// ingress qdisc exists.
    pub tc_filters: BTreeMap<(String, String), String>,
    /// `bpftool -j -f prog show id N` of the programs attached to interfaces, by id.
    pub bpf_progs: BTreeMap<u32, String>,
    /// tcx programs by (dev, direction), asked of the kernel (BPF_PROG_QUERY): bpftool
    /// before 7.3 does not list tcx in `net show`.
    pub tcx: BTreeMap<(String, String), Vec<u32>>,
    /// `bpftool -j map show id N` of the maps those programs use, by id.
    pub bpf_maps: BTreeMap<u32, String>,
    /// `bpftool -j -f link show` (every link on the machine), when programs are attached.
    pub bpf_links: Option<String>,
    /// `/proc/PID/fdinfo/FD` of the BPF descriptors that refer to those programs: (pid, text).
    pub bpf_fds: Vec<(u32, String)>,
    /// The processes holding them: pid -> (comm, `/proc/PID/cmdline` bytes).
    pub processes: BTreeMap<u32, (String, Vec<u8>)>,
    /// /proc/net files by name.
    pub proc_net: BTreeMap<String, String>,
    /// Sysctl values by path under /proc/sys.
    pub sysctls: BTreeMap<String, String>,
    /// Paths of the sysctls this namespace has no copy of its own of: the file is absent
    /// there (net.core.rmem_max in a child namespace on 6.1) or read-only (the same on
    /// 6.12 and later, which show the global value). Their value in `sysctls` is the one
    /// of droptrace's own namespace, and they are set there.
    pub global_sysctls: BTreeSet<String>,
    /// What could not be collected, and why (missing tool, permission...).
    pub missing: Vec<String>,
    /// The namespaces that this one's `link-netnsid`s name (the peers of its veths), by
    /// that id: their inode and their `ip -j -d link show`.
    pub peer_namespaces: BTreeMap<i32, PeerNamespace>,
}

#[derive(Debug, Clone, Default)]
pub struct PeerNamespace {
    pub inode: u32,
    pub links: String,
}

/// The `link-netnsid`s of `ip -j link` output: the namespaces its pair devices reach.
pub fn link_netnsids(links_json: &str) -> Vec<i32> {
    let Ok(links) = super::evidence::link::parse_links(links_json) else {
        return Vec::new();
    };
    let mut ids: Vec<i32> = links.iter().filter_map(|l| l.link_netnsid).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Devices with a clsact or ingress qdisc (where tc filters may hang), with the directions.
pub fn clsact_devices(qdiscs_json: Option<&str>) -> Vec<(String, String)> {
    let Some(json) = qdiscs_json else {
        return Vec::new();
    };
    let Ok(serde_json::Value::Array(list)) = serde_json::from_str::<serde_json::Value>(json) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for q in list {
        let (Some(kind), Some(dev)) = (q["kind"].as_str(), q["dev"].as_str()) else {
            continue;
        };
        match kind {
            "clsact" => {
                out.push((dev.to_owned(), "ingress".to_owned()));
                out.push((dev.to_owned(), "egress".to_owned()));
            }
            "ingress" => out.push((dev.to_owned(), "ingress".to_owned())),
            _ => {}
        }
    }
    out
}

/// At most this many programs of one namespace are described (names are for people).
pub const MAX_PROGRAMS: usize = 32;
/// At most this many maps of those programs are described.
pub const MAX_MAPS: usize = 32;
/// At most this many BPF descriptors of processes are kept.
pub const MAX_BPF_FDS: usize = 64;

/// Ids of the programs in `bpftool -j net show`, of the cgroup skb programs in `bpftool -j
/// cgroup tree` and of the tcx programs the kernel listed (at most `MAX_PROGRAMS`).
pub fn attached_ids(
    net_json: Option<&str>,
    cgroup_json: Option<&str>,
    tcx: &BTreeMap<(String, String), Vec<u32>>,
) -> Vec<u32> {
    use super::evidence::bpftool;
    let attachments = net_json
        .map(bpftool::parse_net_show)
        .and_then(Result::ok)
        .unwrap_or_default();
    let mut ids: Vec<u32> = attachments.iter().map(|a| a.prog_id).collect();
    ids.extend(
        cgroup_json
            .map(bpftool::parse_cgroup_tree)
            .and_then(Result::ok)
            .unwrap_or_default()
            .iter()
            .filter(|c| c.attach_type.starts_with("cgroup_inet_"))
            .map(|c| c.prog_id),
    );
    ids.extend(tcx.values().flatten());
    ids.sort_unstable();
    ids.dedup();
    ids.truncate(MAX_PROGRAMS);
    ids
}

/// Ids of the maps the sampled programs use (at most `MAX_MAPS`).
pub fn map_ids(progs: &BTreeMap<u32, String>) -> Vec<u32> {
    let mut ids: Vec<u32> = progs
        .values()
        .filter_map(|j| super::evidence::bpftool::parse_prog(j).ok())
        .flat_map(|p| p.map_ids)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids.truncate(MAX_MAPS);
    ids
}

pub fn link_names(links_json: &str) -> Vec<String> {
    let Ok(serde_json::Value::Array(list)) = serde_json::from_str::<serde_json::Value>(links_json)
    else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|l| l["ifname"].as_str())
        .filter(|n| !n.contains('/') && !n.contains(".."))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_ids_of_attached_programs() {
        let json = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/evidence/bpftool-net.json"
        ));
        let none = BTreeMap::new();
        let ids = attached_ids(Some(json), None, &none);
        assert!(ids.contains(&624) && ids.contains(&606), "{ids:?}");
        assert!(attached_ids(Some("["), None, &none).is_empty());
        assert!(attached_ids(None, None, &none).is_empty());
        let cgroups = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/evidence/bpftool-cgroup-tree.json"
        ));
        assert_eq!(attached_ids(None, Some(cgroups), &none), [1832]);
        let tcx = BTreeMap::from([(("dtv1".to_owned(), "ingress".to_owned()), vec![171, 606])]);
        let ids = attached_ids(Some(json), None, &tcx);
        assert_eq!(ids.iter().filter(|i| **i == 606).count(), 1);
        assert!(ids.contains(&171));
    }

    #[test]
    fn finds_clsact_devices_and_link_names() {
        let qdiscs = r#"[{"kind":"noqueue","handle":"0:","dev":"lo","root":true},
            {"kind":"clsact","handle":"ffff:","dev":"veth-b","parent":"ffff:fff1"},
            {"kind":"ingress","handle":"ffff:","dev":"eth0","parent":"ffff:fff1"}]"#;
        assert_eq!(
            clsact_devices(Some(qdiscs)),
            [
                ("veth-b".to_owned(), "ingress".to_owned()),
                ("veth-b".to_owned(), "egress".to_owned()),
                ("eth0".to_owned(), "ingress".to_owned())
            ]
        );
        assert!(clsact_devices(Some("not json")).is_empty());
        let links =
            r#"[{"ifindex":1,"ifname":"lo"},{"ifindex":2,"ifname":"veth-b"},{"ifname":"../x"}]"#;
        assert_eq!(link_names(links), ["lo", "veth-b"]);
    }
}
