//! What the exporter serves, folded from the pipeline's exact counts: one series per label
//! set of the drops, the counters of the kernel that count drops which never reach
//! kfree_skb, and the exporter's own figures. Counts never go backwards while droptrace
//! runs; series of a namespace or interface that is gone are removed once it is seen gone.
use std::collections::{BTreeMap, HashMap, HashSet};

use rustc_hash::{FxHashMap, FxHashSet};

use crate::pipeline::{aggregate::Aggregator, event::Group, names::Names};

/// A label of `droptrace_drops_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropLabel {
    Reason,
    Function,
    Protocol,
    Interface,
    Netns,
    Dport,
}

impl DropLabel {
    pub const ALL: [DropLabel; 6] = [
        DropLabel::Reason,
        DropLabel::Function,
        DropLabel::Protocol,
        DropLabel::Interface,
        DropLabel::Netns,
        DropLabel::Dport,
    ];
    /// On unless turned off: bounded by the kernel and the node.
    pub const DEFAULT: [DropLabel; 5] = [
        DropLabel::Reason,
        DropLabel::Function,
        DropLabel::Protocol,
        DropLabel::Interface,
        DropLabel::Netns,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DropLabel::Reason => "reason",
            DropLabel::Function => "function",
            DropLabel::Protocol => "protocol",
            DropLabel::Interface => "interface",
            DropLabel::Netns => "netns",
            DropLabel::Dport => "dport",
        }
    }
}

/// `--labels`: the exact list (`reason,function,dport`), or changes to the default
/// (`+dport,-interface`).
pub fn parse_labels(spec: &str) -> Result<Vec<DropLabel>, String> {
    let items: Vec<&str> = spec
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let by_name = |name: &str| {
        DropLabel::ALL
            .into_iter()
            .find(|l| l.name() == name)
            .ok_or_else(|| {
                format!(
                    "unknown label `{name}`: the labels are {}",
                    DropLabel::ALL.map(DropLabel::name).join(", ")
                )
            })
    };
    let relative = items
        .iter()
        .all(|i| i.starts_with('+') || i.starts_with('-'));
    let mut labels: Vec<DropLabel> = if relative {
        DropLabel::DEFAULT.to_vec()
    } else {
        Vec::new()
    };
    for item in items {
        match (relative, item.as_bytes().first()) {
            (true, Some(b'+')) => {
                let l = by_name(&item[1..])?;
                if !labels.contains(&l) {
                    labels.push(l);
                }
            }
            (true, _) => {
                let l = by_name(&item[1..])?;
                labels.retain(|x| *x != l);
            }
            (false, _) => {
                let l = by_name(item)?;
                if !labels.contains(&l) {
                    labels.push(l);
                }
            }
        }
    }
    // A fixed order, whatever the order given: the series' identity does not depend on it.
    labels.sort_by_key(|l| DropLabel::ALL.iter().position(|x| x == l));
    Ok(labels)
}

/// The namespaces and interfaces present on the host when last looked, with the names
/// the metrics give them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Topology {
    /// netns inode -> label: its name under /run/netns, `host` for droptrace's own, else
    /// `inode:N`.
    pub namespaces: HashMap<u32, String>,
    /// (netns inode, ifindex) -> interface name.
    pub interfaces: HashMap<(u32, u32), String>,
}

/// A kernel counter of drops that never reach kfree_skb, in one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackCounter {
    pub netns: u32,
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

/// Static facts for `droptrace_build_info`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildInfo {
    pub version: String,
    pub kernel: String,
    pub attach: String,
}

/// A counter that keeps going up when what it mirrors starts again (an interface
/// recreated under the same name).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Monotonic {
    base: u64,
    last: u64,
}

impl Monotonic {
    fn set(&mut self, raw: u64) {
        if raw < self.last {
            self.base += self.last;
        }
        self.last = raw;
    }

    fn value(&self) -> u64 {
        self.base + self.last
    }
}

/// Label values of one drops series, in the order of the configured labels.
pub type SeriesKey = Vec<String>;

/// Everything `/metrics` shows, kept up to date by the metrics sink (drops, at each
/// tick) and the host sampler (namespaces, counters).
#[derive(Debug)]
pub struct Exposition {
    labels: Vec<DropLabel>,
    max_series: usize,
    pub build: BuildInfo,
    topology: Topology,
    /// Bumped by every host sample.
    generation: u64,
    /// Exposed values of `droptrace_drops_total`, by label values.
    drops: BTreeMap<SeriesKey, u64>,
    /// Drops of groups that found no room under `max_series`, shown as one series.
    other: u64,
    in_other: FxHashSet<Group>,
    /// Series labels of each group, as of `keys_generation` (labels need names).
    keys: FxHashMap<Group, SeriesKey>,
    keys_generation: u64,
    /// The generation a group was first seen in: it is gone only if a later sample lacks
    /// its namespace or interface.
    first_seen: FxHashMap<Group, u64>,
    /// Groups whose namespace or interface went away: their count then, not shown again.
    retired: FxHashMap<Group, u64>,
    lost: u64,
    missed: u64,
    stack: BTreeMap<(u32, Option<String>, &'static str), Monotonic>,
    /// Namespaces seen on drops that the last sample did not know: worth a new sample.
    pub unknown_namespaces: bool,
}

impl Exposition {
    pub fn new(labels: Vec<DropLabel>, max_series: usize, build: BuildInfo) -> Exposition {
        Exposition {
            labels,
            max_series: max_series.max(1),
            build,
            topology: Topology::default(),
            generation: 0,
            drops: BTreeMap::new(),
            other: 0,
            in_other: FxHashSet::default(),
            keys: FxHashMap::default(),
            keys_generation: 0,
            first_seen: FxHashMap::default(),
            retired: FxHashMap::default(),
            lost: 0,
            missed: 0,
            stack: BTreeMap::new(),
            unknown_namespaces: false,
        }
    }

    pub fn labels(&self) -> &[DropLabel] {
        &self.labels
    }

    /// The series of `droptrace_drops_total`, with the `other` series last when used.
    pub fn drops(&self) -> impl Iterator<Item = (&SeriesKey, u64)> {
        self.drops.iter().map(|(k, v)| (k, *v))
    }

    /// Drops folded into the `other` series.
    pub fn series_dropped(&self) -> u64 {
        self.other
    }

    pub fn lost(&self) -> u64 {
        self.lost
    }

    pub fn missed(&self) -> u64 {
        self.missed
    }

    /// `(netns label, interface, counter, value)` of the stack counters.
    pub fn stack(&self) -> impl Iterator<Item = (String, Option<&str>, &'static str, u64)> {
        self.stack.iter().map(|((ns, iface, counter), m)| {
            (self.netns_label(*ns), iface.as_deref(), *counter, m.value())
        })
    }

    fn netns_label(&self, inode: u32) -> String {
        match (inode, self.topology.namespaces.get(&inode)) {
            (0, _) => "unknown".into(),
            (_, Some(label)) => label.clone(),
            (i, None) => format!("inode:{i}"),
        }
    }

    fn key(&self, g: &Group, names: &Names) -> SeriesKey {
        self.labels
            .iter()
            .map(|l| match l {
                DropLabel::Reason => names.reason(g.reason).unwrap_or_else(|| "none".into()),
                DropLabel::Function => names
                    .function(g.location)
                    .map_or_else(|| format!("{:#x}", g.location), str::to_owned),
                DropLabel::Protocol => g.protocol().unwrap_or_else(|| "none".into()),
                DropLabel::Interface => match g.ifindex {
                    0 => "none".into(),
                    i => self
                        .topology
                        .interfaces
                        .get(&(g.netns, i))
                        .cloned()
                        .unwrap_or_else(|| format!("if{i}")),
                },
                DropLabel::Netns => self.netns_label(g.netns),
                DropLabel::Dport => g.dport.map_or_else(|| "none".into(), |p| p.to_string()),
            })
            .collect()
    }

    /// Whether the last sample, taken after the group was first seen, says its namespace
    /// or interface is gone.
    fn gone(&self, g: &Group) -> bool {
        if g.netns == 0
            || self
                .first_seen
                .get(g)
                .is_none_or(|at| *at >= self.generation)
        {
            return false;
        }
        !self.topology.namespaces.contains_key(&g.netns)
            || (g.ifindex != 0 && !self.topology.interfaces.contains_key(&(g.netns, g.ifindex)))
    }

    /// Takes the pipeline's figures: every group into its series.
    pub fn fold(&mut self, agg: &Aggregator, names: &Names) {
        if self.keys_generation != self.generation {
            self.keys.clear();
            self.keys_generation = self.generation;
        }
        let mut next: BTreeMap<SeriesKey, u64> = BTreeMap::new();
        let mut new_keys = 0usize;
        let mut other = 0u64;
        let mut unknown = false;
        for (g, stats) in agg.groups() {
            let mut count = stats.count();
            if count == 0 {
                continue;
            }
            self.first_seen.entry(*g).or_insert(self.generation);
            if !self.retired.contains_key(g) && self.gone(g) {
                self.retired.insert(*g, count);
            }
            if let Some(at) = self.retired.get(g) {
                if count <= *at {
                    continue;
                }
                count -= at;
            }
            if self.in_other.contains(g) {
                other += count;
                continue;
            }
            unknown |= g.netns != 0 && !self.topology.namespaces.contains_key(&g.netns);
            let key = match self.keys.get(g) {
                Some(k) => k.clone(),
                None => {
                    let k = self.key(g, names);
                    self.keys.insert(*g, k.clone());
                    k
                }
            };
            if !next.contains_key(&key) && !self.drops.contains_key(&key) {
                if self.drops.len() + new_keys >= self.max_series {
                    self.in_other.insert(*g);
                    other += count;
                    continue;
                }
                new_keys += 1;
            }
            *next.entry(key).or_default() += count;
        }
        for (key, value) in &mut next {
            if let Some(before) = self.drops.get(key) {
                *value = (*value).max(*before);
            }
        }
        self.drops = next;
        self.other = self.other.max(other);
        let c = agg.counters();
        self.lost = self.lost.max(c.lost);
        self.missed = self.missed.max(c.missed);
        self.unknown_namespaces = unknown;
    }

    /// Takes a sample of the host: names for the labels, what is gone, the counters.
    pub fn sample(&mut self, sample: HostSample) {
        self.generation += 1;
        self.topology = sample.topology;
        let present = |ns: &u32| self.topology.namespaces.contains_key(ns);
        let mut seen = HashSet::new();
        for c in sample.counters {
            let key = (c.netns, c.interface, c.counter);
            self.stack.entry(key.clone()).or_default().set(c.value);
            seen.insert(key);
        }
        // Counters of namespaces and interfaces that are gone go with them.
        self.stack
            .retain(|key, _| present(&key.0) && (key.1.is_none() || seen.contains(key)));
        // Drop series of what is gone go at the next fold (it knows the counts).
        self.unknown_namespaces = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        kernel::reasons::DropReasonTable,
        pipeline::{aggregate::KernelCounters, fixtures},
    };

    const NFT: u64 = 0x100;
    const WEB: u32 = 4_026_532_001;
    const DB: u32 = 4_026_532_002;

    fn names() -> Names {
        let mut n = Names::with_reasons(Some(DropReasonTable::from_entries([
            (12, "NETFILTER_DROP"),
            (3, "NO_SOCKET"),
        ])));
        n.locations
            .insert(NFT, fixtures::location("nft_do_chain", 0x3e8));
        n
    }

    fn host(namespaces: &[(u32, &str)]) -> HostSample {
        let mut t = Topology::default();
        for (ns, label) in namespaces {
            t.namespaces.insert(*ns, (*label).into());
            t.interfaces.insert((*ns, 2), "veth-b".into());
        }
        HostSample {
            topology: t,
            counters: Vec::new(),
        }
    }

    fn drops(agg: &mut Aggregator, netns: u32, dport: u16, n: u64) {
        for i in 0..n {
            agg.add(&fixtures::tcp4(NFT, 12, (40_000, dport), netns, i));
        }
    }

    fn series(e: &Exposition) -> Vec<(String, u64)> {
        e.drops().map(|(k, v)| (k.join(" "), v)).collect()
    }

    #[test]
    fn labels_are_the_default_changed_or_an_exact_list() {
        use DropLabel::*;
        assert_eq!(
            parse_labels("+dport").unwrap(),
            [Reason, Function, Protocol, Interface, Netns, Dport]
        );
        assert_eq!(
            parse_labels("-interface,-netns").unwrap(),
            [Reason, Function, Protocol]
        );
        assert_eq!(parse_labels("dport, reason").unwrap(), [Reason, Dport]);
        let err = parse_labels("+pid").unwrap_err();
        assert!(err.contains("unknown label `pid`"), "{err}");
    }

    #[test]
    fn groups_fold_into_series_named_by_the_host() {
        let mut e = Exposition::new(DropLabel::DEFAULT.to_vec(), 100, BuildInfo::default());
        e.sample(host(&[(WEB, "web")]));
        let mut agg = Aggregator::new();
        drops(&mut agg, WEB, 1678, 3);
        drops(&mut agg, WEB, 1679, 2); // another port: the same series without dport
        drops(&mut agg, DB, 22, 1);
        e.fold(&agg, &names());
        assert_eq!(
            series(&e),
            [
                (
                    "NETFILTER_DROP nft_do_chain tcp if2 inode:4026532002".to_owned(),
                    1
                ),
                ("NETFILTER_DROP nft_do_chain tcp veth-b web".to_owned(), 5),
            ]
        );
        assert!(e.unknown_namespaces, "db is not known yet: sample again");
    }

    #[test]
    fn series_beyond_the_cap_fold_into_other_and_stay_there() {
        let labels = parse_labels("+dport").unwrap();
        let mut e = Exposition::new(labels, 2, BuildInfo::default());
        e.sample(host(&[(WEB, "web")]));
        let mut agg = Aggregator::new();
        for port in [1, 2, 3, 4] {
            drops(&mut agg, WEB, port, 1);
        }
        e.fold(&agg, &names());
        assert_eq!(e.drops().count(), 2);
        assert_eq!(e.series_dropped(), 2);
        let total: u64 = e.drops().map(|(_, v)| v).sum::<u64>() + e.series_dropped();
        assert_eq!(total, agg.grouped_total(), "nothing lost by the cap");
        // A group that went to `other` stays there; the kept series keep counting.
        drops(&mut agg, WEB, 3, 5);
        drops(&mut agg, WEB, 1, 1);
        e.fold(&agg, &names());
        let total: u64 = e.drops().map(|(_, v)| v).sum::<u64>() + e.series_dropped();
        assert_eq!(total, agg.grouped_total());
        assert_eq!(e.drops().count(), 2);
    }

    #[test]
    fn series_of_a_namespace_that_is_gone_are_removed_and_nothing_goes_back() {
        let mut e = Exposition::new(DropLabel::DEFAULT.to_vec(), 100, BuildInfo::default());
        e.sample(host(&[(WEB, "web"), (DB, "db")]));
        let mut agg = Aggregator::new();
        drops(&mut agg, WEB, 1678, 3);
        drops(&mut agg, DB, 5432, 4);
        e.fold(&agg, &names());
        assert_eq!(e.drops().count(), 2);
        // db goes away: its series goes at the next fold, web's stays.
        e.sample(host(&[(WEB, "web")]));
        e.fold(&agg, &names());
        assert_eq!(
            series(&e),
            [("NETFILTER_DROP nft_do_chain tcp veth-b web".to_owned(), 3)]
        );
        // A new namespace that reuses db's inode starts a new series from zero.
        drops(&mut agg, DB, 5432, 2);
        e.sample(host(&[(WEB, "web"), (DB, "db2")]));
        e.fold(&agg, &names());
        assert_eq!(
            series(&e),
            [
                ("NETFILTER_DROP nft_do_chain tcp veth-b db2".to_owned(), 2),
                ("NETFILTER_DROP nft_do_chain tcp veth-b web".to_owned(), 3)
            ]
        );
        // Whatever the churn, a series shown never goes back.
        let before: BTreeMap<_, _> = e.drops().map(|(k, v)| (k.clone(), v)).collect();
        e.sample(host(&[(WEB, "web"), (DB, "db2")]));
        e.fold(&agg, &names());
        for (k, v) in e.drops() {
            assert!(before.get(k).is_none_or(|b| v >= *b));
        }
    }

    #[test]
    fn a_group_seen_before_its_namespace_was_sampled_is_not_taken_for_gone() {
        let mut e = Exposition::new(DropLabel::DEFAULT.to_vec(), 100, BuildInfo::default());
        let mut agg = Aggregator::new();
        drops(&mut agg, WEB, 1678, 1);
        e.fold(&agg, &names());
        assert_eq!(e.drops().count(), 1);
        // The first sample names it.
        e.sample(host(&[(WEB, "web")]));
        e.fold(&agg, &names());
        assert_eq!(
            series(&e),
            [("NETFILTER_DROP nft_do_chain tcp veth-b web".to_owned(), 1)]
        );
    }

    #[test]
    fn stack_counters_stay_monotonic_and_leave_with_their_namespace() {
        let mut e = Exposition::new(DropLabel::DEFAULT.to_vec(), 100, BuildInfo::default());
        let counter = |netns, interface: Option<&str>, counter, value| StackCounter {
            netns,
            interface: interface.map(str::to_owned),
            counter,
            value,
        };
        let mut s = host(&[(WEB, "web")]);
        s.counters = vec![
            counter(WEB, None, "TcpExt:ListenOverflows", 7),
            counter(WEB, Some("veth-b"), "dev:rx_dropped", 10),
        ];
        e.sample(s.clone());
        // The interface is recreated: the kernel's counter starts again at 2.
        s.counters[1].value = 2;
        e.sample(s.clone());
        let shown: Vec<_> = e.stack().collect();
        assert_eq!(
            shown,
            [
                ("web".to_owned(), None, "TcpExt:ListenOverflows", 7),
                ("web".to_owned(), Some("veth-b"), "dev:rx_dropped", 12)
            ]
        );
        e.sample(host(&[]));
        assert_eq!(e.stack().count(), 0);
    }

    #[test]
    fn lost_and_missed_follow_the_kernel() {
        let mut e = Exposition::new(DropLabel::DEFAULT.to_vec(), 100, BuildInfo::default());
        let mut agg = Aggregator::new();
        agg.set_kernel(
            KernelCounters {
                seen: 10,
                matched: 9,
                lost: 4,
                lost_ungrouped: 0,
                missed: 1,
            },
            [],
        );
        e.fold(&agg, &names());
        assert_eq!((e.lost(), e.missed()), (4, 1));
    }
}
