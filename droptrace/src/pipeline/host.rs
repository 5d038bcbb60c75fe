//! What the host looked like at one moment, for `serve`: its namespaces, interfaces and
//! workloads, and the kernel's counters of drops that never reach kfree_skb. The probe
//! samples it (`probe::host`); the metrics sink folds it into series.
use std::collections::{HashMap, HashSet};

use super::{event::Netns, names::Workload};

/// The namespaces and interfaces present on the host when last looked, with the names
/// the metrics give them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Topology {
    /// namespace -> label: its name under /run/netns, `host` for droptrace's own, else
    /// `inode:N`. Keyed by inode and cookie: a namespace on a deleted one's inode is
    /// another key.
    pub namespaces: HashMap<Netns, String>,
    /// (namespace, ifindex) -> interface name.
    pub interfaces: HashMap<(Netns, u32), String>,
    /// Namespaces found but not entered (they exist; their interfaces are unknown).
    pub unentered: HashSet<Netns>,
    /// The container and pod of each namespace that belongs to one.
    pub workloads: HashMap<Netns, Workload>,
    /// Every namespace found was looked at (not cut by the sampler's cap): what is
    /// missing is gone.
    pub complete: bool,
}

/// A kernel counter of drops that never reach kfree_skb, in one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackCounter {
    pub netns: Netns,
    /// For per-interface counters (`dev:rx_dropped`).
    pub interface: Option<String>,
    /// `TcpExt:ListenOverflows`, `softnet:dropped`, ...
    pub counter: &'static str,
    pub value: u64,
}

/// What the host looked like at one moment: for series removal and for the counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostSample {
    pub topology: Topology,
    pub counters: Vec<StackCounter>,
}
