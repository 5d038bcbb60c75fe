//! What diagnose samples in each network namespace, and the raw text it keeps. The
//! sampling itself (running the tools inside a namespace) is `probe::collect`; everything
//! from here on parses that text, so it is testable on captured files.
use std::collections::{BTreeMap, BTreeSet};

use crate::kernel::sockdiag::{
    ALL_STATES, CONNECTED_STATES, IPPROTO_TCP, IPPROTO_UDP, LISTEN_STATES,
};

/// Files read from /proc inside the namespace (relative to /proc/thread-self/net).
pub const PROC_NET_FILES: &[&str] = &[
    "snmp",
    "netstat",
    "snmp6",
    "dev",
    "softnet_stat",
    "stat/nf_conntrack",
    "xfrm_stat",
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
    "net/ipv4/ip_local_port_range",
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
    // Machine-wide (cgroups are not per namespace): run once per sample, not per
    // namespace (see `MACHINE_WIDE`).
    ("bpf-cgroup", "bpftool", &["-j", "cgroup", "tree"]),
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
    ("neigh4", "ip", &["-j", "-4", "neigh", "show"]),
    ("neigh6", "ip", &["-j", "-6", "neigh", "show"]),
];

/// Sockets read from the kernel inside the namespace (NETLINK_SOCK_DIAG, IPv4 and IPv6,
/// with each socket's memory and own drop counter), kept under these keys of
/// `RawSnapshot::commands` as `ss -H -n -p -e -m` prints them (`evidence::ss::render`):
/// the form snapshots and baselines have always stored. (key, protocol, states): TCP
/// listeners (ss -t -l), UDP sockets (ss -u -a), and TCP sockets of connections (every
/// state but LISTEN and CLOSE, ss's `state connected`: a segment dropped at an
/// established socket is counted there).
pub const SOCKET_DUMPS: &[(&str, u8, u32)] = &[
    ("tcp-listen", IPPROTO_TCP, LISTEN_STATES),
    ("udp", IPPROTO_UDP, ALL_STATES),
    ("tcp-connected", IPPROTO_TCP, CONNECTED_STATES),
];

/// Keys of `COMMANDS` whose output is the same in every namespace.
pub const MACHINE_WIDE: &[&str] = &["bpf-cgroup"];

/// Keys of `COMMANDS` that one `ip -batch` run answers, by family: the routes and the
/// rules of IPv4, and of IPv6 (one process instead of two, the same bytes).
pub const IP_BATCHES: &[(&str, &[&str], &[&str])] = &[
    (
        "-4",
        &["routes4", "rules4", "neigh4"],
        &["route show table all", "rule show", "neigh show"],
    ),
    (
        "-6",
        &["routes6", "rules6", "neigh6"],
        &["route show table all", "rule show", "neigh show"],
    ),
];

/// Files of /proc/net read inside a namespace before its tools run: they tell which
/// tools would print nothing there (see `needless`).
pub const PRESENCE_FILES: &[&str] = &[
    "ip_tables_names",
    "ip6_tables_names",
    "tcp",
    "tcp6",
    "udp",
    "udp6",
];

/// Whether the tool (or socket dump) of `key` would print nothing in a namespace, from what /proc showed
/// there (`presence`, by file of `PRESENCE_FILES`) and what nft printed (`nft`): no
/// legacy iptables table, no iptables-nft table of the family, no listening TCP socket,
/// no UDP socket. Sampling hundreds of namespaces runs most tools for nothing; a file or
/// output that could not be read never skips a tool.
pub fn needless(key: &str, presence: &BTreeMap<String, String>, nft: Option<&str>) -> bool {
    let file = |name: &str| presence.get(name).map(String::as_str);
    let none_in = |names: &[&str], pred: fn(&str) -> bool| {
        names
            .iter()
            .all(|n| file(n).is_some_and(|text| !text.lines().skip(1).any(pred)))
    };
    match key {
        "iptables-legacy" => file("ip_tables_names").is_some_and(|t| t.trim().is_empty()),
        "ip6tables-legacy" => file("ip6_tables_names").is_some_and(|t| t.trim().is_empty()),
        "iptables-nft" => nft.is_some_and(|r| !has_table_of(r, "ip")),
        "ip6tables-nft" => nft.is_some_and(|r| !has_table_of(r, "ip6")),
        "tcp-listen" => none_in(&["tcp", "tcp6"], is_listening),
        "tcp-connected" => none_in(&["tcp", "tcp6"], |l| {
            !l.trim().is_empty() && !is_listening(l)
        }),
        "udp" => none_in(&["udp", "udp6"], |l| !l.trim().is_empty()),
        _ => false,
    }
}

/// Whether `nft list ruleset` shows a table of `family` (where iptables-nft keeps its
/// tables).
fn has_table_of(ruleset: &str, family: &str) -> bool {
    ruleset.lines().any(|l| {
        l.strip_prefix("table ")
            .and_then(|rest| rest.strip_prefix(family))
            .is_some_and(|rest| rest.starts_with(' '))
    })
}

/// A line of /proc/net/tcp{,6} for a listening socket (state 0A).
fn is_listening(line: &str) -> bool {
    line.split_whitespace().nth(3) == Some("0A")
}

/// The outputs of an `ip -j -batch` run, one per command, as `ip -j COMMAND` prints each;
/// `None` unless there are exactly `n` (a command failed and ip stopped).
pub fn split_batch(out: &str, n: usize) -> Option<Vec<String>> {
    let mut parts = Vec::with_capacity(n);
    let mut stream = serde_json::Deserializer::from_str(out).into_iter::<serde::de::IgnoredAny>();
    let mut start = 0;
    while let Some(item) = stream.next() {
        item.ok()?;
        let end = stream.byte_offset();
        parts.push(format!("{}\n", out[start..end].trim_start()));
        start = end;
    }
    (parts.len() == n && out[start..].trim().is_empty()).then_some(parts)
}

/// Output of a tool run with `-j`, made valid JSON: ip, tc and bpftool print names raw
/// inside JSON strings, so one control character in an interface name (the kernel allows
/// an escape there) would make the whole output unreadable. Each such character becomes
/// its `\u00XX` escape; the newlines, tabs and returns between values stay (a name
/// cannot hold whitespace).
pub fn valid_json_text(out: String) -> String {
    let stray = |c: char| c < ' ' && !matches!(c, '\n' | '\r' | '\t');
    if !out.contains(stray) {
        return out;
    }
    let mut text = String::with_capacity(out.len() + 16);
    for c in out.chars() {
        if stray(c) {
            text.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            text.push(c);
        }
    }
    text
}

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
    /// Output of each of `COMMANDS` by key, and the sockets of `SOCKET_DUMPS` as ss
    /// prints them.
    pub commands: BTreeMap<String, String>,
    /// Their standard error, where it said something (nft warns there about tables
    /// that iptables-nft manages).
    pub stderr: BTreeMap<String, String>,
    /// `tc -s -j filter show dev DEV ingress|egress`, by (dev, direction), where a clsact or
    /// ingress qdisc exists.
    pub tc_filters: BTreeMap<(String, String), String>,
    /// `tc -s filter show dev DEV ingress|egress` (text) where the JSON has a police
    /// action: its rate is only in the text.
    pub tc_filters_text: BTreeMap<(String, String), String>,
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
    /// The kernel's dumps of the IPsec (xfrm) policies and states (NETLINK_XFRM), as
    /// received; `None` where the kernel has no xfrm.
    pub xfrm_policies: Option<Vec<u8>>,
    pub xfrm_states: Option<Vec<u8>>,
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

    fn presence(files: &[(&str, &str)]) -> BTreeMap<String, String> {
        files
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn tools_that_would_print_nothing_are_needless() {
        let fixture = |name: &str| {
            std::fs::read_to_string(format!(
                "{}/fixtures/evidence/{name}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap()
        };
        let (tcp, tcp6) = (
            fixture("proc-net-tcp.listen"),
            fixture("proc-net-tcp6.empty"),
        );
        let (udp, udp6) = (fixture("proc-net-udp.empty"), fixture("proc-net-udp6.one"));
        let empty = presence(&[
            ("ip_tables_names", ""),
            ("ip6_tables_names", ""),
            ("tcp", &tcp6),
            ("tcp6", &tcp6),
            ("udp", &udp),
            ("udp6", &udp),
        ]);
        for key in [
            "iptables-legacy",
            "ip6tables-legacy",
            "iptables-nft",
            "ip6tables-nft",
            "tcp-listen",
            "tcp-connected",
            "udp",
        ] {
            assert!(needless(key, &empty, Some("")), "{key}");
            // Nothing read: the tool runs.
            assert!(!needless(key, &BTreeMap::new(), None), "{key}");
        }
        assert!(!needless("nft", &empty, Some("")));
        assert!(!needless("links", &empty, Some("")));
        // A listener alone has no connection to list; one accepted has.
        let listener = presence(&[("tcp", &tcp), ("tcp6", &tcp6)]);
        assert!(needless("tcp-connected", &listener, None));
        let connected = fixture("proc-net-tcp.established");
        let connected = presence(&[("tcp", &connected), ("tcp6", &tcp6)]);
        assert!(!needless("tcp-connected", &connected, None));
        assert!(!needless("tcp-listen", &connected, None));
        let busy = presence(&[
            ("ip_tables_names", "filter\n"),
            ("ip6_tables_names", "mangle\n"),
            ("tcp", &tcp),
            ("tcp6", &tcp6),
            ("udp", &udp),
            ("udp6", &udp6),
        ]);
        for key in ["iptables-legacy", "ip6tables-legacy", "tcp-listen", "udp"] {
            assert!(!needless(key, &busy, None), "{key}");
        }
        // Tables of iptables-nft in both families; of nft in inet, ip6 and netdev only.
        let ipt = fixture("nft-ruleset-iptables-nft.txt");
        assert!(!needless("iptables-nft", &busy, Some(&ipt)));
        assert!(!needless("ip6tables-nft", &busy, Some(&ipt)));
        let nft = fixture("nft-ruleset.txt");
        assert!(needless("iptables-nft", &busy, Some(&nft)));
        assert!(!needless("ip6tables-nft", &busy, Some(&nft)));
    }

    #[test]
    fn a_control_character_in_a_name_leaves_the_json_readable() {
        let raw = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/evidence/ip-link.escape-in-name.json"
        ));
        assert!(crate::diagnose::evidence::link::parse_links(raw).is_err());
        let fixed = valid_json_text(raw.to_owned());
        let links = crate::diagnose::evidence::link::parse_links(&fixed).unwrap();
        assert!(links.iter().any(|l| l.name == "dt\x1b[31mX"), "{links:?}");
        let clean = "[{\"ifname\":\"lo\"}]\n";
        assert_eq!(valid_json_text(clean.to_owned()), clean);
    }

    #[test]
    fn an_ip_batch_splits_into_each_commands_output() {
        let out = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/evidence/ip-batch.route-rule.v4.json"
        ));
        let parts = split_batch(out, 2).unwrap();
        assert_eq!(parts.concat(), out, "the same bytes as two runs");
        assert!(parts[0].contains("127.255.255.255") && parts[1].contains("32766"));
        let routes = crate::diagnose::evidence::route::parse_routes(&parts[0]).unwrap();
        assert_eq!(routes.len(), 3);
        assert_eq!(split_batch("[]\n[]\n", 2).unwrap(), ["[]\n", "[]\n"]);
        // ip stopped after a failing command, or printed something else.
        assert!(split_batch("[]\n", 2).is_none());
        assert!(split_batch("[]\n[]\nCommand failed -:2\n", 2).is_none());
        assert!(split_batch("", 2).is_none());
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
