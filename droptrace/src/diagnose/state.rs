//! The state of one network namespace as the diagnosis needs it, whatever tool it came
//! from. Built from a `RawSnapshot` by `from_raw`; the engine only reads these types.
use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::programs::BpfAttachment;
use super::{
    evidence::route::{Route, RouteAnswer, RouteRule},
    raw::RawSnapshot,
};

mod firewall;
mod traffic_control;

use firewall::firewall;
use traffic_control::traffic_control;

/// A firewall rule (nftables or iptables) whose verdict drops packets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rule {
    /// "nftables", "iptables-nft", "iptables-legacy", "ip6tables-nft", "ip6tables-legacy".
    pub source: String,
    /// Stable identity across snapshots, e.g. "inet filter input handle 7".
    pub key: String,
    pub table: String,
    pub chain: String,
    /// The rule as the tool prints it.
    pub text: String,
    /// "drop" or "reject".
    pub verdict: String,
    /// Packet counter, when the rule has one.
    pub packets: Option<u64>,
    /// Probability of a random match (`statistic --mode random`, `numgen random`).
    pub random: Option<f64>,
    /// The command that removes the rule (inside the namespace).
    pub delete: String,
    /// A chain policy rather than a rule.
    pub is_policy: bool,
    /// The netfilter hook of the chain when it is a base chain (`input`, `forward`...).
    pub hook: Option<String>,
}

/// A qdisc as tc reports it, with its statistics (`tc -s`).
pub use super::evidence::tc::Qdisc;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Link {
    pub ifindex: u32,
    pub name: String,
    pub mtu: u32,
    pub rx_dropped: u64,
    pub rx_missed: u64,
    pub rx_fifo: u64,
    pub rx_over: u64,
    pub rx_errors: u64,
    pub tx_dropped: u64,
    /// The other end of a pair device (veth), resolved exactly through the kernel's
    /// link-netnsid and peer ifindex.
    pub peer: Option<Peer>,
    /// The id (local to this namespace) of the namespace the other end is in, if another.
    pub link_netnsid: Option<i32>,
    /// The link-layer address.
    pub address: Option<String>,
    /// In promiscuous mode (the PROMISC flag, or a promiscuity count above 0): it sees
    /// frames for other hosts.
    pub promisc: bool,
    /// Set up by its administrator (the UP flag).
    pub admin_up: bool,
    /// Up but without a carrier (the NO-CARRIER flag): a pair device whose other end is
    /// down, a cable out.
    pub no_carrier: bool,
    /// The kernel's operational state (`UP`, `DOWN`, `LOWERLAYERDOWN`, `UNKNOWN`...).
    pub oper_state: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Peer {
    /// Inode of the peer's namespace; `None`: the same namespace.
    pub netns: Option<u32>,
    pub ifindex: u32,
    pub name: String,
    pub mtu: u32,
    /// Set up (its UP flag): a pair device whose other end is down has no carrier.
    pub admin_up: bool,
    /// Its link-layer address: what a neighbour entry for the receiver should hold.
    pub address: Option<String>,
    /// The bridge (or bond...) it is a port of: frames through it are for whatever is
    /// behind that bridge, not for its own address.
    pub master: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Socket {
    /// "tcp" or "udp".
    pub proto: String,
    pub local_ip: String,
    pub port: u16,
    /// The device it is bound to (`SO_BINDTODEVICE`, ss's `%eth1`).
    pub device: Option<String>,
    /// TCP listener: accept queue length now; UDP: bytes waiting.
    pub recv_q: u64,
    /// TCP listener: the backlog.
    pub send_q: u64,
    pub process: Option<String>,
    pub rcvbuf: Option<u64>,
    /// Drops counted on the socket (ss's skmem `d`).
    pub drops: Option<u64>,
}

/// A TCP socket of a connection: its two ends, its state and owner, its drop counter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Connection {
    pub local_ip: String,
    pub port: u16,
    pub peer_ip: String,
    pub peer_port: u16,
    /// As ss prints it: ESTAB, CLOSE-WAIT, SYN-RECV, TIME-WAIT...
    pub state: String,
    pub process: Option<String>,
    /// Drops counted on the socket (ss's skmem `d`; none for a TIME-WAIT socket).
    pub drops: Option<u64>,
    /// The socket's inode (ss -e): tells a connection from a later one between the same
    /// two ends.
    pub inode: Option<u64>,
}

/// The routing tables and policy-routing rules of one address family.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Routing {
    /// Routes of every table.
    pub routes: Vec<Route>,
    /// Rules in priority order.
    pub rules: Vec<RouteRule>,
}

/// One route lookup asked of the kernel after the window, for packets it dropped.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteLookup {
    /// What followed `ip route get`: `10.88.0.5 from 10.66.0.1 iif eth0`.
    pub query: String,
    /// The route the kernel chose, when it chose one.
    pub answer: Option<RouteAnswer>,
    /// What ip said when the lookup failed (`RTNETLINK answers: No route to host`).
    pub error: Option<String>,
}

impl RouteLookup {
    /// The answer as people read it: `local via lo (table local)`, or the error.
    pub fn text(&self) -> String {
        match (&self.answer, &self.error) {
            (Some(a), _) => {
                let mut t = a.kind.clone();
                if let Some(g) = &a.gateway {
                    t.push_str(&format!(" via {g}"));
                }
                if let Some(d) = &a.dev {
                    t.push_str(&format!(" dev {d}"));
                }
                if let Some(tb) = &a.table {
                    t.push_str(&format!(" (table {tb})"));
                }
                t
            }
            (None, Some(e)) => e.clone(),
            (None, None) => "no answer".into(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NsState {
    pub rules: Vec<Rule>,
    pub qdiscs: Vec<Qdisc>,
    pub bpf: Vec<BpfAttachment>,
    pub links: Vec<Link>,
    /// Kernel counters by (group, name): ("TcpExt", "ListenOverflows"), ("Udp",
    /// "NoPorts"), ("softnet", "dropped"), ("nf_conntrack", "drop"), ("dev:eth0", "rx_drop").
    pub counters: BTreeMap<(String, String), u64>,
    /// Sysctl values by dotted name (net.core.somaxconn).
    pub sysctls: BTreeMap<String, String>,
    /// Dotted names of the sysctls the namespace has no own copy of: their value is the
    /// global one, and only droptrace's own namespace can set them.
    pub global_sysctls: BTreeSet<String>,
    pub sockets: Vec<Socket>,
    /// TCP sockets of connections (not listeners), with their own drop counters.
    pub connections: Vec<Connection>,
    /// The programs in `bpf` and `cgroup_bpf`, as the kernel knows them, by id.
    pub programs: BTreeMap<u32, super::programs::BpfProgram>,
    /// cgroup skb programs (machine-wide: they filter the sockets of their cgroup).
    pub cgroup_bpf: Vec<super::evidence::bpftool::CgroupAttachment>,
    pub routing_v4: Routing,
    pub routing_v6: Routing,
    /// Neighbour (ARP/NDP) entries of both families.
    pub neighbours: Vec<super::evidence::neigh::Neighbour>,
    /// tc filters with actions (gact, police, mirred...) and their statistics.
    pub tc_filters: Vec<super::evidence::tc_actions::TcFilter>,
    /// Lookups made for the window's routing drops (only in the sample after it).
    pub route_lookups: Vec<RouteLookup>,
    /// IPsec (xfrm) policies and states (security associations).
    pub xfrm_policies: Vec<crate::kernel::xfrm::Policy>,
    pub xfrm_states: Vec<crate::kernel::xfrm::State>,
    /// Evidence that could not be collected, and why.
    pub missing: Vec<String>,
}

impl NsState {
    pub fn counter(&self, group: &str, name: &str) -> Option<u64> {
        self.counters
            .get(&(group.to_owned(), name.to_owned()))
            .copied()
    }

    pub fn link(&self, ifindex: u32) -> Option<&Link> {
        self.links.iter().find(|l| l.ifindex == ifindex)
    }

    pub fn sysctl(&self, name: &str) -> Option<&str> {
        self.sysctls.get(name).map(String::as_str)
    }

    /// Whether a sysctl is global as seen from this namespace (see `global_sysctls`).
    pub fn sysctl_is_global(&self, name: &str) -> bool {
        self.global_sysctls.contains(name)
    }

    /// "ipv4" or "ipv6".
    pub fn routing(&self, family: &str) -> &Routing {
        if family == "ipv6" {
            &self.routing_v6
        } else {
            &self.routing_v4
        }
    }

    /// Records the kernel's answer to a route lookup (`ip -j route get` output, or
    /// the error it printed).
    pub fn add_route_lookup(&mut self, query: String, outcome: Result<String, String>) {
        use super::evidence::route::parse_route_get;
        let (answer, error) = match outcome {
            Ok(json) => match parse_route_get(&json) {
                Ok(a) => (Some(a), None),
                Err(e) => (None, Some(e.to_string())),
            },
            Err(e) => (None, Some(e)),
        };
        self.route_lookups.push(RouteLookup {
            query,
            answer,
            error,
        });
    }

    pub fn route_lookup(&self, query: &str) -> Option<&RouteLookup> {
        self.route_lookups.iter().find(|l| l.query == query)
    }
}

/// Parses everything a snapshot holds; what cannot be parsed is listed in `missing`.
pub fn from_raw(raw: &RawSnapshot) -> NsState {
    let mut st = NsState {
        missing: raw.missing.clone(),
        ..NsState::default()
    };
    firewall(raw, &mut st);
    traffic_control(raw, &mut st);
    st.programs = super::programs::programs(raw);
    let tcx = super::programs::tcx_attachments(raw, &st.bpf, &st.programs);
    st.bpf.extend(tcx);
    st.cgroup_bpf = super::programs::cgroup_attachments(raw);
    links(raw, &mut st);
    counters(raw, &mut st);
    for key in ["neigh4", "neigh6"] {
        if let Some(json) = raw.commands.get(key) {
            match super::evidence::neigh::parse_neighbours(json) {
                Ok(list) => st.neighbours.extend(list),
                Err(e) => st.missing.push(format!("ip neigh output: {e}")),
            }
        }
    }
    sockets(raw, &mut st);
    routing(raw, &mut st);
    xfrm(raw, &mut st);
    st.sysctls = raw
        .sysctls
        .iter()
        .map(|(path, value)| (path.replace('/', "."), value.clone()))
        .collect();
    st.global_sysctls = raw
        .global_sysctls
        .iter()
        .map(|path| path.replace('/', "."))
        .collect();
    st
}

fn routing(raw: &RawSnapshot, st: &mut NsState) {
    use super::evidence::route::{parse_routes, parse_rules};
    for (routes, rules, family) in [("routes4", "rules4", 4), ("routes6", "rules6", 6)] {
        let mut table = Routing::default();
        if let Some(json) = raw.commands.get(routes) {
            match parse_routes(json) {
                Ok(r) => table.routes = r,
                Err(e) => st.missing.push(format!("ip -{family} route output: {e}")),
            }
        }
        if let Some(json) = raw.commands.get(rules) {
            match parse_rules(json) {
                Ok(r) => table.rules = r,
                Err(e) => st.missing.push(format!("ip -{family} rule output: {e}")),
            }
        }
        if family == 4 {
            st.routing_v4 = table;
        } else {
            st.routing_v6 = table;
        }
    }
}

fn links(raw: &RawSnapshot, st: &mut NsState) {
    use super::evidence::link;
    let Some(json) = raw.commands.get("links") else {
        return;
    };
    match link::parse_links(json) {
        Ok(list) => {
            let peers = peers(raw, &list, &mut st.missing);
            st.links = list
                .into_iter()
                .zip(peers)
                .map(|(l, peer)| {
                    let rx = l.rx.clone();
                    Link {
                        ifindex: l.ifindex,
                        mtu: l.mtu.unwrap_or(0),
                        rx_dropped: rx.as_ref().map_or(0, |r| r.dropped),
                        rx_missed: rx.as_ref().and_then(|r| r.missed_errors).unwrap_or(0),
                        rx_fifo: rx.as_ref().and_then(|r| r.fifo_errors).unwrap_or(0),
                        rx_over: rx.as_ref().map_or(0, |r| r.over_errors),
                        rx_errors: rx.as_ref().map_or(0, |r| r.errors),
                        tx_dropped: l.tx.as_ref().map_or(0, |t| t.dropped),
                        promisc: l.flags.iter().any(|f| f == "PROMISC")
                            || l.promiscuity.is_some_and(|p| p > 0),
                        admin_up: l.flags.iter().any(|f| f == "UP"),
                        no_carrier: l.flags.iter().any(|f| f == "UP")
                            && !l.flags.iter().any(|f| f == "LOWER_UP"),
                        oper_state: l.oper_state,
                        address: l.address,
                        name: l.name,
                        peer,
                        link_netnsid: l.link_netnsid,
                    }
                })
                .collect();
        }
        Err(e) => st.missing.push(format!("ip link output: {e}")),
    }
}

/// The peer of each link: by name in this namespace, or by ifindex in the namespace its
/// link-netnsid names (when the sampler could resolve it).
fn peers(
    raw: &RawSnapshot,
    links: &[super::evidence::link::Link],
    missing: &mut Vec<String>,
) -> Vec<Option<Peer>> {
    use super::evidence::link::parse_links;
    let mut others = BTreeMap::new();
    for (id, ns) in &raw.peer_namespaces {
        match parse_links(&ns.links) {
            Ok(l) => {
                others.insert(*id, (ns.inode, l));
            }
            Err(e) => missing.push(format!("ip link output of peer namespace {id}: {e}")),
        }
    }
    links
        .iter()
        .map(|l| {
            let peer = |netns, p: &super::evidence::link::Link| Peer {
                netns,
                ifindex: p.ifindex,
                name: p.name.clone(),
                mtu: p.mtu.unwrap_or(0),
                admin_up: p.flags.iter().any(|f| f == "UP"),
                address: p.address.clone(),
                master: p.master.clone(),
            };
            match (l.link_netnsid, l.link_index, &l.link_name) {
                (Some(id), Some(index), _) => match others.get(&id) {
                    Some((inode, list)) => list
                        .iter()
                        .find(|p| p.ifindex == index)
                        .map(|p| peer(Some(*inode), p)),
                    None => {
                        missing.push(format!(
                            "the namespace of {}'s peer (link-netnsid {id}) is not among those droptrace found",
                            l.name
                        ));
                        None
                    }
                },
                (None, _, Some(name)) if l.kind.as_deref() == Some("veth") => links
                    .iter()
                    .find(|p| &p.name == name)
                    .map(|p| peer(None, p)),
                _ => None,
            }
        })
        .collect()
}

fn counters(raw: &RawSnapshot, st: &mut NsState) {
    use super::evidence::proc;
    let mut put = |group: &str, name: &str, value: u64| {
        st.counters
            .insert((group.to_owned(), name.to_owned()), value);
    };
    for file in ["snmp", "netstat"] {
        if let Some(text) = raw.proc_net.get(file) {
            if let Ok(c) = proc::parse_snmp(text) {
                for (group, values) in &c.groups {
                    for (name, v) in values {
                        put(group, name, u64::try_from(*v).unwrap_or(0));
                    }
                }
            }
        }
    }
    if let Some(Ok(values)) = raw.proc_net.get("snmp6").map(|t| proc::parse_snmp6(t)) {
        for (key, v) in values {
            let split = ["UdpLite6", "Udp6", "Icmp6", "Ip6"]
                .iter()
                .find_map(|p| key.strip_prefix(p).map(|rest| (*p, rest)));
            if let Some((group, name)) = split {
                put(group, name, u64::try_from(v).unwrap_or(0));
            }
        }
    }
    if let Some(Ok(values)) = raw
        .proc_net
        .get("xfrm_stat")
        .map(|t| proc::parse_xfrm_stat(t))
    {
        for (key, v) in values {
            if let Some(name) = key.strip_prefix("Xfrm") {
                put("Xfrm", name, u64::try_from(v).unwrap_or(0));
            }
        }
    }
    if let Some(Ok(s)) = raw
        .proc_net
        .get("softnet_stat")
        .map(|t| proc::parse_softnet(t))
    {
        put("softnet", "dropped", s.dropped);
        put("softnet", "time_squeeze", s.time_squeeze);
        put(
            "softnet",
            "flow_limit_count",
            s.cpus.iter().filter_map(|c| c.flow_limit_count).sum(),
        );
    }
    if let Some(Ok(devs)) = raw.proc_net.get("dev").map(|t| proc::parse_net_dev(t)) {
        for d in devs {
            let group = format!("dev:{}", d.name);
            put(&group, "rx_drop", d.rx.drop);
            put(&group, "rx_fifo", d.rx.fifo);
            put(&group, "rx_errs", d.rx.errs);
            put(&group, "rx_frame", d.rx.frame);
            put(&group, "tx_drop", d.tx.drop);
        }
    }
    if let Some(Ok(ct)) = raw
        .proc_net
        .get("stat/nf_conntrack")
        .map(|t| proc::parse_conntrack_stat(t))
    {
        for (name, v) in &ct.totals {
            put("nf_conntrack", name, *v);
        }
    }
}

fn xfrm(raw: &RawSnapshot, st: &mut NsState) {
    use crate::kernel::xfrm::parse_dump;
    for (what, bytes) in [
        ("policies", &raw.xfrm_policies),
        ("states", &raw.xfrm_states),
    ] {
        match bytes.as_deref().map(parse_dump) {
            Some(Ok(dump)) => {
                st.xfrm_policies.extend(dump.policies);
                st.xfrm_states.extend(dump.states);
            }
            Some(Err(e)) => st.missing.push(format!("xfrm {what}: {e}")),
            None => {}
        }
    }
}

fn sockets(raw: &RawSnapshot, st: &mut NsState) {
    use super::evidence::ss::{self, Proto};
    for (key, proto, name) in [
        ("tcp-listen", Proto::Tcp, "tcp"),
        ("udp", Proto::Udp, "udp"),
    ] {
        let Some(text) = raw.commands.get(key) else {
            continue;
        };
        match ss::parse_sockets(text, proto) {
            Ok(list) => st.sockets.extend(list.into_iter().filter_map(|s| {
                Some(Socket {
                    proto: name.to_owned(),
                    local_ip: s.local.addr.clone(),
                    port: s.local.port?,
                    device: s.local.scope.clone(),
                    recv_q: s.recv_q,
                    send_q: s.send_q,
                    process: s
                        .processes
                        .first()
                        .map(|p| format!("{} (pid {})", p.name, p.pid)),
                    rcvbuf: s.skmem.as_ref().map(|m| m.rcvbuf),
                    drops: s.skmem.as_ref().and_then(|m| m.drops),
                })
            })),
            Err(e) => st.missing.push(format!("ss output: {e}")),
        }
    }
    let Some(text) = raw.commands.get("tcp-connected") else {
        return;
    };
    match ss::parse_sockets(text, Proto::Tcp) {
        Ok(list) => st.connections.extend(list.into_iter().filter_map(|s| {
            Some(Connection {
                local_ip: s.local.addr.clone(),
                port: s.local.port?,
                peer_ip: s.peer.addr.clone(),
                peer_port: s.peer.port?,
                state: s.state.clone(),
                process: s
                    .processes
                    .first()
                    .map(|p| format!("{} (pid {})", p.name, p.pid)),
                drops: s.skmem.as_ref().and_then(|m| m.drops),
                inode: s.inode.filter(|i| *i != 0),
            })
        })),
        Err(e) => st.missing.push(format!("ss output: {e}")),
    }
}
