//! The state of one network namespace as the diagnosis needs it, whatever tool it came
//! from. Built from a `RawSnapshot` by `from_raw`; the engine only reads these types.
use std::collections::BTreeMap;

use serde::Serialize;

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
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Qdisc {
    pub dev: String,
    pub kind: String,
    pub handle: String,
    pub root: bool,
    /// Options as tc prints them (limit, rate, burst ...), flattened to text.
    pub options: String,
    pub drops: u64,
    pub overlimits: u64,
    pub backlog_packets: u64,
}

/// A BPF program attached to an interface (tc or XDP).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BpfAttachment {
    pub dev: String,
    /// "xdp", "tc ingress", "tc egress", "tcx ingress", "tcx egress".
    pub hook: String,
    pub prog_id: u32,
    pub name: String,
    pub tag: Option<String>,
    /// How to detach it.
    pub detach: String,
}

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
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Socket {
    /// "tcp" or "udp".
    pub proto: String,
    pub local_ip: String,
    pub port: u16,
    /// TCP listener: accept queue length now; UDP: bytes waiting.
    pub recv_q: u64,
    /// TCP listener: the backlog.
    pub send_q: u64,
    pub process: Option<String>,
    pub rcvbuf: Option<u64>,
    /// Drops counted on the socket (ss's skmem `d`).
    pub drops: Option<u64>,
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
    pub sockets: Vec<Socket>,
    /// Evidence that could not be collected, and why.
    pub missing: Vec<String>,
}

impl NsState {
    pub fn counter(&self, group: &str, name: &str) -> Option<u64> {
        self.counters.get(&(group.to_owned(), name.to_owned())).copied()
    }

    pub fn link(&self, ifindex: u32) -> Option<&Link> {
        self.links.iter().find(|l| l.ifindex == ifindex)
    }

    pub fn sysctl(&self, name: &str) -> Option<&str> {
        self.sysctls.get(name).map(String::as_str)
    }
}
