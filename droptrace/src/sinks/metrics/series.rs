//! What the exporter serves, folded from the pipeline's exact counts: one series per label
//! set of the drops, the counters of the kernel that count drops which never reach
//! kfree_skb, and the exporter's own figures. Counts never go backwards while droptrace
//! runs; series of a namespace or interface that is gone are removed once it is seen gone.
use std::{
    borrow::Cow,
    collections::{BTreeMap, HashMap, HashSet},
};

use rustc_hash::FxHashMap;

pub use super::labels::{parse_labels, DropLabel};

use crate::pipeline::{
    aggregate::Aggregator,
    event::{Group, Netns},
    host::{HostSample, Topology},
    interfaces::Layer,
    names::Names,
};

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

/// Where a stack counter is shown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum StackSlot {
    /// Not while it is 0: most namespaces never count most of these.
    #[default]
    Unmoved,
    Series,
    /// Beyond `max_series`: in the `other` series from then on.
    Other,
}

#[derive(Debug, Clone, Copy, Default)]
struct StackSeries {
    count: Monotonic,
    slot: StackSlot,
}

/// Label values of one drops series, in the order of the configured labels.
pub type SeriesKey = Vec<String>;

/// Where a group's drops are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Not yet: its namespace or interface has no name yet (the next sample gives it, or
    /// says there is none).
    Waiting,
    Series(usize),
    /// Beyond `max_series`.
    Other,
    /// Its namespace or interface is gone; drops are not shown again unless it comes back.
    Gone,
}

#[derive(Debug, Clone, Copy)]
struct GroupState {
    /// Its count already added to a series (or to `other`).
    folded: u64,
    slot: Slot,
    /// The fold it was first seen (or seen again) at.
    since: u64,
    /// The epochs of its namespace and interface when it got its slot.
    epochs: (u64, u64),
}

#[derive(Debug)]
struct Series {
    key: SeriesKey,
    value: u64,
    /// Groups counting in it; the series goes when the last one is gone.
    groups: usize,
}

/// Everything `/metrics` shows, kept up to date by the metrics sink (drops, at each
/// tick) and the host sampler (namespaces, counters).
///
/// Counts are folded as deltas: each fold adds to a group's series what the group counted
/// since the last fold, so a series only ever goes up. A group gets its series once its
/// namespace and interface are named (or a sample says they have no name), keeps it, and
/// leaves it when a namespace or interface is seen gone in two samples in a row or is
/// replaced by another under the same inode or index (its epoch moves).
#[derive(Debug)]
pub struct Exposition {
    labels: Vec<DropLabel>,
    max_series: usize,
    pub build: BuildInfo,
    topology: Topology,
    /// The topology of the sample before, for "gone in two samples in a row".
    previous: Topology,
    /// Folds so far; a sample is stamped with the fold its scan started after.
    folds: u64,
    /// The folds the last sample's and the one before's scans began after.
    sampled_after: u64,
    previous_after: u64,
    samples: u64,
    /// (netns, ifindex; 0 for the namespace itself) -> epoch: bumped when it goes away or
    /// comes back as something else.
    epochs: HashMap<(Netns, u32), u64>,
    groups: FxHashMap<Group, GroupState>,
    series: Vec<Option<Series>>,
    by_key: HashMap<SeriesKey, usize>,
    free: Vec<usize>,
    shown: usize,
    /// Drops counted in the `other` series: groups beyond `max_series`, and the drops the
    /// pipeline could not keep apart by group (beyond its group cap, or lost without a
    /// group), so that every drop the kernel counted is in some series.
    other: u64,
    unkept_folded: u64,
    lost: u64,
    missed: u64,
    stack: BTreeMap<(Netns, Option<String>, &'static str), StackSeries>,
    /// Stack counters shown as series of their own (at most `max_series`).
    stack_shown: usize,
    /// What the stack counters beyond `max_series` counted, together (the `other` series).
    stack_other: u64,
    /// Namespaces seen on drops that the last sample did not know: worth a new sample.
    pub unknown_namespaces: bool,
    /// TCP retransmitted segments by `explained`; `None` when the TCP programs are not
    /// attached (no series then).
    tcp_retransmits: Option<BTreeMap<&'static str, u64>>,
    /// TCP resets by (direction, reason).
    tcp_resets: BTreeMap<(&'static str, String), u64>,
    /// The interfaces' own drop counters, as they grew while watching: (namespace,
    /// ifindex, counter) -> its series.
    interfaces: BTreeMap<(Netns, u32, Cow<'static, str>), InterfaceSeries>,
    interfaces_shown: usize,
    /// What the interface counters beyond `max_series` counted, together.
    interfaces_other: u64,
}

/// One interface counter's series.
#[derive(Debug)]
struct InterfaceSeries {
    interface: String,
    layer: Layer,
    value: u64,
    /// A series of its own; else counted in the `other` one.
    shown: bool,
}

impl Exposition {
    pub fn new(labels: Vec<DropLabel>, max_series: usize, build: BuildInfo) -> Exposition {
        Exposition {
            labels,
            max_series: max_series.max(1),
            build,
            topology: Topology::default(),
            previous: Topology::default(),
            folds: 0,
            sampled_after: 0,
            previous_after: 0,
            samples: 0,
            epochs: HashMap::new(),
            groups: FxHashMap::default(),
            series: Vec::new(),
            by_key: HashMap::new(),
            free: Vec::new(),
            shown: 0,
            other: 0,
            unkept_folded: 0,
            lost: 0,
            missed: 0,
            stack: BTreeMap::new(),
            stack_shown: 0,
            stack_other: 0,
            unknown_namespaces: false,
            interfaces: BTreeMap::new(),
            interfaces_shown: 0,
            interfaces_other: 0,
            tcp_retransmits: None,
            tcp_resets: BTreeMap::new(),
        }
    }

    pub fn labels(&self) -> &[DropLabel] {
        &self.labels
    }

    /// The series of `droptrace_drops_total`, by label values.
    pub fn drops(&self) -> impl Iterator<Item = (&SeriesKey, u64)> {
        let mut shown: Vec<(&SeriesKey, u64)> = self
            .series
            .iter()
            .flatten()
            .map(|s| (&s.key, s.value))
            .collect();
        shown.sort();
        shown.into_iter()
    }

    /// Drops counted in the `other` series.
    pub fn series_dropped(&self) -> u64 {
        self.other
    }

    pub fn lost(&self) -> u64 {
        self.lost
    }

    pub fn missed(&self) -> u64 {
        self.missed
    }

    /// The fold a sample taken now starts after (for [`Exposition::sample`]).
    pub fn folds(&self) -> u64 {
        self.folds
    }

    /// `(netns label, interface, counter, value)` of the stack counters that have counted
    /// something (a counter that never moved is no series), at most `max_series`.
    pub fn stack(&self) -> impl Iterator<Item = (String, Option<&str>, &'static str, u64)> {
        self.stack
            .iter()
            .filter(|(_, s)| s.slot == StackSlot::Series)
            .map(|((ns, iface, counter), s)| {
                (
                    self.netns_label(*ns),
                    iface.as_deref(),
                    *counter,
                    s.count.value(),
                )
            })
    }

    /// What the stack counters left out by `max_series` counted, together.
    pub fn stack_other(&self) -> u64 {
        self.stack_other
    }

    /// `(netns label, interface, counter, layer, value)` of the interface counters that
    /// grew while droptrace watched, at most `max_series` of them.
    pub fn interfaces(&self) -> impl Iterator<Item = (String, &str, &str, Layer, u64)> {
        self.interfaces
            .iter()
            .filter(|(_, s)| s.shown)
            .map(|((ns, _, counter), s)| {
                (
                    self.netns_label(*ns),
                    s.interface.as_str(),
                    counter.as_ref(),
                    s.layer,
                    s.value,
                )
            })
    }

    /// What the interface counters left out by `max_series` counted, together.
    pub fn interfaces_other(&self) -> u64 {
        self.interfaces_other
    }

    /// The interfaces' counters' growth into their series (a counter is a series once it
    /// has grown; the first `max_series` keep theirs, the rest add up in `other`).
    fn fold_interfaces(&mut self, agg: &Aggregator) {
        for row in agg.interfaces().rows() {
            let key = (row.netns, row.ifindex, row.counter.clone());
            let (shown, max) = (&mut self.interfaces_shown, self.max_series);
            let s = self.interfaces.entry(key).or_insert_with(|| {
                let own = *shown < max;
                *shown += usize::from(own);
                InterfaceSeries {
                    interface: row.interface.clone(),
                    layer: row.layer,
                    value: 0,
                    shown: own,
                }
            });
            let delta = row.drops.saturating_sub(s.value);
            s.value = s.value.max(row.drops);
            if !s.shown {
                self.interfaces_other += delta;
            }
        }
    }

    fn netns_label(&self, netns: Netns) -> String {
        match self.topology.namespaces.get(&netns) {
            _ if netns.is_none() => "unknown".into(),
            Some(label) => label.clone(),
            None => format!("inode:{}", netns.inode),
        }
    }

    fn key(&self, g: &Group, names: &Names) -> SeriesKey {
        self.labels
            .iter()
            .map(|l| match l {
                DropLabel::Reason => names.reason(g.reason).unwrap_or_else(|| "none".into()),
                // An address would be a kernel pointer on the network: never that.
                DropLabel::Function => names.function(g.location).unwrap_or("unknown").to_owned(),
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
                DropLabel::Pod | DropLabel::PodNamespace | DropLabel::Container => {
                    let w = self.topology.workloads.get(&g.netns);
                    let value = match l {
                        DropLabel::Pod => w.and_then(|w| Some(w.pod.as_ref()?.name.clone())),
                        DropLabel::PodNamespace => {
                            w.and_then(|w| Some(w.pod.as_ref()?.namespace.clone()))
                        }
                        _ => w.map(|w| w.container.name.clone()),
                    };
                    // Prometheus's convention for a label that does not apply: empty.
                    value.unwrap_or_default()
                }
                DropLabel::Dport => g.dport.map_or_else(|| "none".into(), |p| p.to_string()),
            })
            .collect()
    }

    fn epochs_of(&self, g: &Group) -> (u64, u64) {
        let epoch = |k: (Netns, u32)| self.epochs.get(&k).copied().unwrap_or(0);
        (epoch((g.netns, 0)), epoch((g.netns, g.ifindex)))
    }

    fn known(&self, g: &Group) -> bool {
        let ns = g.netns.is_none() || self.topology.namespaces.contains_key(&g.netns);
        let iface = g.ifindex == 0
            || self.topology.interfaces.contains_key(&(g.netns, g.ifindex))
            || self.topology.unentered.contains(&g.netns);
        ns && iface
    }

    /// Gone: missing from the last two samples, both begun after the group was seen.
    fn gone(&self, g: &Group, since: u64) -> bool {
        if g.netns.is_none() || self.samples < 2 || self.previous_after < since {
            return false;
        }
        let missing = |t: &Topology| {
            !t.namespaces.contains_key(&g.netns)
                || (g.ifindex != 0
                    && !t.unentered.contains(&g.netns)
                    && !t.interfaces.contains_key(&(g.netns, g.ifindex)))
        };
        self.topology.complete && missing(&self.topology) && missing(&self.previous)
    }

    fn release(&mut self, slot: Slot) {
        if let Slot::Series(i) = slot {
            if let Some(s) = self.series[i].as_mut() {
                s.groups -= 1;
                if s.groups == 0 {
                    if let Some(s) = self.series[i].take() {
                        self.by_key.remove(&s.key);
                    }
                    self.free.push(i);
                    self.shown -= 1;
                }
            }
        }
    }

    fn assign(&mut self, g: &Group, names: &Names) -> Slot {
        let key = self.key(g, names);
        if let Some(&i) = self.by_key.get(&key) {
            if let Some(s) = self.series[i].as_mut() {
                s.groups += 1;
            }
            return Slot::Series(i);
        }
        if self.shown >= self.max_series {
            return Slot::Other;
        }
        let series = Series {
            key: key.clone(),
            value: 0,
            groups: 1,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.series[i] = Some(series);
                i
            }
            None => {
                self.series.push(Some(series));
                self.series.len() - 1
            }
        };
        self.by_key.insert(key, i);
        self.shown += 1;
        Slot::Series(i)
    }

    /// Takes the pipeline's figures: what every group counted since the last fold, into
    /// its series.
    pub fn fold(&mut self, agg: &Aggregator, names: &Names) {
        self.folds += 1;
        let mut unknown = false;
        for (g, stats) in agg.groups() {
            let count = stats.count();
            if count == 0 {
                continue;
            }
            let folds = self.folds;
            let mut st = *self.groups.entry(*g).or_insert(GroupState {
                folded: 0,
                slot: Slot::Waiting,
                since: folds,
                epochs: (0, 0),
            });
            let shown = matches!(st.slot, Slot::Series(_) | Slot::Other);
            if shown && st.epochs != self.epochs_of(g) {
                // Its namespace or interface went away, or is another one now.
                self.release(st.slot);
                st.slot = Slot::Waiting;
                st.since = folds;
            }
            if st.slot != Slot::Gone && self.gone(g, st.since) {
                self.release(st.slot);
                st.slot = Slot::Gone;
            }
            if st.slot == Slot::Gone {
                if self.topology.namespaces.contains_key(&g.netns) && self.known(g) {
                    // The inode came back as a new namespace: counted from here.
                    st.slot = Slot::Waiting;
                    st.since = folds;
                } else {
                    st.folded = count;
                    self.groups.insert(*g, st);
                    continue;
                }
            }
            if st.slot == Slot::Waiting {
                unknown |= !g.netns.is_none() && !self.topology.namespaces.contains_key(&g.netns);
                let sampled_since = self.samples > 0 && self.sampled_after >= st.since;
                if !self.known(g) && !sampled_since {
                    self.groups.insert(*g, st);
                    continue;
                }
                st.slot = self.assign(g, names);
                st.epochs = self.epochs_of(g);
            }
            let delta = count.saturating_sub(st.folded);
            st.folded = st.folded.max(count);
            match st.slot {
                Slot::Series(i) => {
                    if let Some(s) = self.series[i].as_mut() {
                        s.value += delta;
                    }
                }
                _ => self.other += delta,
            }
            self.groups.insert(*g, st);
        }
        let c = agg.counters();
        let unkept = agg.overflow() + c.lost_ungrouped;
        self.other += unkept.saturating_sub(self.unkept_folded);
        self.unkept_folded = self.unkept_folded.max(unkept);
        self.lost = self.lost.max(c.lost);
        self.missed = self.missed.max(c.missed);
        self.unknown_namespaces = unknown;
        self.fold_interfaces(agg);
        self.fold_tcp(agg, names);
    }

    /// The TCP figures: totals of a table that only grows, so the series only go up. The
    /// labels are bounded: `explained` has three values, a reason is one of the kernel's.
    fn fold_tcp(&mut self, agg: &Aggregator, names: &Names) {
        let tcp = agg.tcp();
        if !tcp.attached {
            return;
        }
        let total = tcp.total();
        let (here, beyond) = (total.after_drops(), total.beyond());
        // Events lost on the way: counted by the kernel, not matched.
        let unknown = tcp.counters.retransmits.saturating_sub(here + beyond);
        let series = self.tcp_retransmits.get_or_insert_with(BTreeMap::new);
        for (label, n) in [
            ("drop_on_host", here),
            ("beyond_host", beyond),
            ("unknown", unknown),
        ] {
            let v = series.entry(label).or_default();
            *v = (*v).max(n);
        }
        for (reason, n) in &total.resets_sent {
            let v = self
                .tcp_resets
                .entry(("sent", names.reset_reason(*reason)))
                .or_default();
            *v = (*v).max(*n);
        }
        let v = self
            .tcp_resets
            .entry(("received", "none".to_owned()))
            .or_default();
        *v = (*v).max(total.resets_received);
    }

    /// `droptrace_tcp_retransmits_total` by `explained`; `None` without the TCP programs.
    pub fn tcp_retransmits(&self) -> Option<impl Iterator<Item = (&'static str, u64)> + '_> {
        self.tcp_retransmits
            .as_ref()
            .map(|m| m.iter().map(|(k, v)| (*k, *v)))
    }

    /// `droptrace_tcp_resets_total` by direction and reason.
    pub fn tcp_resets(&self) -> impl Iterator<Item = (&'static str, &str, u64)> + '_ {
        self.tcp_resets
            .iter()
            .map(|((d, r), v)| (*d, r.as_str(), *v))
    }

    /// Takes a sample of the host whose scan began after fold `after`: names for the
    /// labels, what is gone, the counters.
    pub fn sample(&mut self, sample: HostSample, after: u64) {
        let old = std::mem::take(&mut self.topology);
        // What is gone, or is something else now under the same inode or index, starts a
        // new epoch: the groups of the old one leave their series.
        for (&ns, label) in &old.namespaces {
            if sample
                .topology
                .namespaces
                .get(&ns)
                .is_some_and(|l| l != label)
            {
                *self.epochs.entry((ns, 0)).or_default() += 1;
            }
        }
        for (&(ns, i), name) in &old.interfaces {
            if sample
                .topology
                .interfaces
                .get(&(ns, i))
                .is_some_and(|n| n != name)
            {
                *self.epochs.entry((ns, i)).or_default() += 1;
            }
        }
        self.previous = old;
        self.topology = sample.topology;
        self.previous_after = self.sampled_after;
        self.sampled_after = after;
        self.samples += 1;
        // Counters of namespaces and interfaces not read this time go first: their
        // series make room for counters that move now.
        let seen: HashSet<_> = sample
            .counters
            .iter()
            .map(|c| (c.netns, c.interface.clone(), c.counter))
            .collect();
        let mut released = 0;
        self.stack.retain(|key, s| {
            let keep = seen.contains(key);
            if !keep && s.slot == StackSlot::Series {
                released += 1;
            }
            keep
        });
        self.stack_shown -= released;
        for c in sample.counters {
            let s = self
                .stack
                .entry((c.netns, c.interface, c.counter))
                .or_default();
            let before = s.count.value();
            s.count.set(c.value);
            if s.slot == StackSlot::Unmoved && s.count.value() > 0 {
                s.slot = if self.stack_shown < self.max_series {
                    self.stack_shown += 1;
                    StackSlot::Series
                } else {
                    StackSlot::Other
                };
            }
            if s.slot == StackSlot::Other {
                self.stack_other += s.count.value() - before;
            }
        }
        self.unknown_namespaces = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        kernel::reasons::DropReasonTable,
        pipeline::{aggregate::KernelCounters, fixtures, host::StackCounter},
    };

    const NFT: u64 = 0x100;
    const WEB: Netns = Netns {
        inode: 4_026_532_001,
        cookie: 4097,
    };
    const DB: Netns = Netns {
        inode: 4_026_532_002,
        cookie: 8193,
    };

    fn names() -> Names {
        let mut n = Names::with_reasons(Some(DropReasonTable::from_entries([
            (12, "NETFILTER_DROP"),
            (3, "NO_SOCKET"),
        ])));
        n.locations
            .insert(NFT, fixtures::location("nft_do_chain", 0x3e8));
        n
    }

    fn host(namespaces: &[(Netns, &str)]) -> HostSample {
        let mut t = Topology {
            complete: true,
            ..Topology::default()
        };
        for (ns, label) in namespaces {
            t.namespaces.insert(*ns, (*label).into());
            t.interfaces.insert((*ns, 2), "veth-b".into());
        }
        HostSample {
            topology: t,
            counters: Vec::new(),
        }
    }

    /// A sample whose scan begins now.
    fn sample(e: &mut Exposition, namespaces: &[(Netns, &str)]) {
        let after = e.folds();
        e.sample(host(namespaces), after);
    }

    fn drops(agg: &mut Aggregator, netns: Netns, dport: u16, n: u64) {
        for i in 0..n {
            agg.add(&fixtures::tcp4(NFT, 12, (40_000, dport), netns, i));
        }
    }

    fn series(e: &Exposition) -> Vec<(String, u64)> {
        e.drops().map(|(k, v)| (k.join(" "), v)).collect()
    }

    /// Every drop the pipeline counted is in a series or in `other`.
    fn assert_exact(e: &Exposition, agg: &Aggregator) {
        let shown: u64 = e.drops().map(|(_, v)| v).sum::<u64>() + e.series_dropped();
        assert_eq!(shown, agg.grouped_total() + agg.counters().lost_ungrouped);
    }

    #[test]
    fn labels_are_the_default_changed_or_an_exact_list() {
        use DropLabel::*;
        assert_eq!(
            parse_labels("+dport").unwrap(),
            [
                Reason,
                Function,
                Protocol,
                Interface,
                Netns,
                Pod,
                PodNamespace,
                Container,
                Dport
            ]
        );
        assert_eq!(
            parse_labels("-interface,-netns,-pod,-pod_namespace,-container").unwrap(),
            [Reason, Function, Protocol]
        );
        assert_eq!(parse_labels("dport, reason").unwrap(), [Reason, Dport]);
        let err = parse_labels("+pid").unwrap_err();
        assert!(err.contains("unknown label `pid`"), "{err}");
    }

    #[test]
    fn groups_fold_into_series_named_by_the_host() {
        let mut e = Exposition::new(DropLabel::DEFAULT.to_vec(), 100, BuildInfo::default());
        sample(&mut e, &[(WEB, "web")]);
        let mut agg = Aggregator::new();
        drops(&mut agg, WEB, 1678, 3);
        drops(&mut agg, WEB, 1679, 2); // another port: the same series without dport
        drops(&mut agg, DB, 22, 1);
        e.fold(&agg, &names());
        assert_eq!(
            series(&e),
            [(
                "NETFILTER_DROP nft_do_chain tcp veth-b web   ".to_owned(),
                5
            )]
        );
        assert!(e.unknown_namespaces, "db is not known yet: sample again");
        // The next sample says db has no name: it is shown by its inode, every drop.
        sample(&mut e, &[(WEB, "web")]);
        e.fold(&agg, &names());
        assert_eq!(
            series(&e),
            [
                (
                    "NETFILTER_DROP nft_do_chain tcp if2 inode:4026532002   ".to_owned(),
                    1
                ),
                (
                    "NETFILTER_DROP nft_do_chain tcp veth-b web   ".to_owned(),
                    5
                ),
            ]
        );
        assert_exact(&e, &agg);
    }

    #[test]
    fn drops_in_a_pod_name_its_pod_and_container() {
        let mut e = Exposition::new(DropLabel::DEFAULT.to_vec(), 100, BuildInfo::default());
        let mut s = host(&[(WEB, "inode:4026532001")]);
        s.topology.workloads.insert(
            WEB,
            crate::pipeline::fixtures::workload("9b2e", Some("0c1d")),
        );
        e.sample(s, 0);
        let mut agg = Aggregator::new();
        drops(&mut agg, WEB, 8080, 2);
        e.fold(&agg, &names());
        assert_eq!(
            series(&e),
            [(
                "NETFILTER_DROP nft_do_chain tcp veth-b inode:4026532001 web-7d9f shop web"
                    .to_owned(),
                2
            )]
        );
    }

    #[test]
    fn a_group_waits_for_its_names_and_then_shows_every_drop() {
        let mut e = Exposition::new(DropLabel::DEFAULT.to_vec(), 100, BuildInfo::default());
        let mut agg = Aggregator::new();
        drops(&mut agg, WEB, 1678, 4);
        e.fold(&agg, &names());
        assert_eq!(e.drops().count(), 0, "no name yet, no sample yet");
        sample(&mut e, &[(WEB, "web")]);
        drops(&mut agg, WEB, 1678, 1);
        e.fold(&agg, &names());
        assert_eq!(
            series(&e),
            [(
                "NETFILTER_DROP nft_do_chain tcp veth-b web   ".to_owned(),
                5
            )]
        );
        assert_exact(&e, &agg);
    }

    #[test]
    fn series_beyond_the_cap_fold_into_other_and_stay_there() {
        let labels = parse_labels("+dport").unwrap();
        let mut e = Exposition::new(labels, 2, BuildInfo::default());
        sample(&mut e, &[(WEB, "web")]);
        let mut agg = Aggregator::new();
        for port in [1, 2, 3, 4] {
            drops(&mut agg, WEB, port, 1);
        }
        e.fold(&agg, &names());
        assert_eq!(e.drops().count(), 2);
        assert_eq!(e.series_dropped(), 2);
        assert_exact(&e, &agg);
        // A group in `other` stays there; the kept series keep counting.
        drops(&mut agg, WEB, 3, 5);
        drops(&mut agg, WEB, 1, 1);
        drops(&mut agg, WEB, 2, 1);
        e.fold(&agg, &names());
        assert_exact(&e, &agg);
        assert_eq!(e.drops().count(), 2);
    }

    #[test]
    fn drops_the_pipeline_could_not_keep_apart_are_in_other() {
        let mut e = Exposition::new(DropLabel::DEFAULT.to_vec(), 100, BuildInfo::default());
        sample(&mut e, &[(WEB, "web")]);
        let mut agg = Aggregator::new();
        drops(&mut agg, WEB, 1678, 2);
        agg.set_kernel(
            KernelCounters {
                seen: 20,
                matched: 9,
                lost: 7,
                lost_ungrouped: 7,
                missed: 0,
                ..Default::default()
            },
            [],
        );
        e.fold(&agg, &names());
        assert_eq!(e.series_dropped(), 7);
        assert_exact(&e, &agg);
    }

    #[test]
    fn series_of_a_namespace_gone_twice_in_a_row_are_removed_and_nothing_goes_back() {
        let mut e = Exposition::new(DropLabel::DEFAULT.to_vec(), 100, BuildInfo::default());
        sample(&mut e, &[(WEB, "web"), (DB, "db")]);
        let mut agg = Aggregator::new();
        drops(&mut agg, WEB, 1678, 3);
        drops(&mut agg, DB, 5432, 4);
        e.fold(&agg, &names());
        assert_eq!(e.drops().count(), 2);
        // db is missing from one sample: it may be a sample that missed it; kept.
        sample(&mut e, &[(WEB, "web")]);
        e.fold(&agg, &names());
        assert_eq!(e.drops().count(), 2);
        // Missing from two in a row: its series goes; web's stays.
        sample(&mut e, &[(WEB, "web")]);
        e.fold(&agg, &names());
        assert_eq!(
            series(&e),
            [(
                "NETFILTER_DROP nft_do_chain tcp veth-b web   ".to_owned(),
                3
            )]
        );
        // A new namespace that reuses db's inode starts a new series from its own drops.
        drops(&mut agg, DB, 5432, 2);
        sample(&mut e, &[(WEB, "web"), (DB, "db2")]);
        e.fold(&agg, &names());
        assert_eq!(
            series(&e),
            [
                (
                    "NETFILTER_DROP nft_do_chain tcp veth-b db2   ".to_owned(),
                    2
                ),
                (
                    "NETFILTER_DROP nft_do_chain tcp veth-b web   ".to_owned(),
                    3
                )
            ]
        );
        // ... and another under the same inode while db2 is still there (a new label):
        // db2's series goes with its groups, the new one counts from its own drops.
        drops(&mut agg, DB, 5432, 1);
        sample(&mut e, &[(WEB, "web"), (DB, "db3")]);
        e.fold(&agg, &names());
        assert_eq!(
            series(&e),
            [
                (
                    "NETFILTER_DROP nft_do_chain tcp veth-b db3   ".to_owned(),
                    1
                ),
                (
                    "NETFILTER_DROP nft_do_chain tcp veth-b web   ".to_owned(),
                    3
                )
            ]
        );
    }

    /// The kernel gives a deleted namespace's inode to a new one; its cookie differs.
    const OLD: Netns = Netns {
        inode: 4_026_532_700,
        cookie: 8193,
    };
    const NEW: Netns = Netns {
        inode: 4_026_532_700,
        cookie: 12289,
    };

    fn nft_series(label: &str, n: u64) -> (String, u64) {
        (
            format!("NETFILTER_DROP nft_do_chain tcp veth-b {label}   "),
            n,
        )
    }

    #[test]
    fn a_namespace_on_a_deleted_ones_inode_counts_its_own_drops() {
        for label in ["st-3", "st-9"] {
            let mut e = Exposition::new(DropLabel::DEFAULT.to_vec(), 100, BuildInfo::default());
            let mut agg = Aggregator::new();
            sample(&mut e, &[(OLD, "st-3")]);
            drops(&mut agg, OLD, 80, 1000);
            e.fold(&agg, &names());
            assert_eq!(series(&e), [nft_series("st-3", 1000)]);
            // st-3 is deleted: missing from two samples in a row, its series goes.
            for _ in 0..2 {
                sample(&mut e, &[]);
                e.fold(&agg, &names());
            }
            assert_eq!(series(&e), []);
            // A new namespace on its inode drops 100 before a sample names it, then
            // the sample comes: all 100 are in its series, under its own name.
            drops(&mut agg, NEW, 80, 100);
            e.fold(&agg, &names());
            sample(&mut e, &[(NEW, label)]);
            e.fold(&agg, &names());
            assert_eq!(series(&e), [nft_series(label, 100)], "{label}");
        }
    }

    #[test]
    fn a_namespace_on_the_inode_of_one_not_yet_seen_gone_never_takes_from_its_series() {
        for label in ["st-3", "st-9"] {
            let mut e = Exposition::new(DropLabel::DEFAULT.to_vec(), 100, BuildInfo::default());
            let mut agg = Aggregator::new();
            sample(&mut e, &[(OLD, "st-3")]);
            drops(&mut agg, OLD, 80, 1000);
            e.fold(&agg, &names());
            // The next sample already finds the new namespace on the inode.
            sample(&mut e, &[(NEW, label)]);
            drops(&mut agg, NEW, 80, 100);
            e.fold(&agg, &names());
            let mut want = vec![nft_series("st-3", 1000), nft_series(label, 100)];
            if label == "st-3" {
                // One name, one series: the old one's drops and the new one's.
                want = vec![nft_series("st-3", 1100)];
            }
            want.sort();
            assert_eq!(series(&e), want, "{label}");
            assert_exact(&e, &agg);
        }
    }

    #[test]
    fn a_series_shared_with_a_group_that_is_gone_keeps_counting() {
        // Without the interface label, two interfaces of one namespace share a series.
        let labels = parse_labels("-interface").unwrap();
        let mut e = Exposition::new(labels, 100, BuildInfo::default());
        let mut both = host(&[(WEB, "web")]);
        both.topology.interfaces.insert((WEB, 3), "veth-c".into());
        let after = e.folds();
        e.sample(both.clone(), after);
        let mut agg = Aggregator::new();
        drops(&mut agg, WEB, 80, 2); // ifindex 2
        let mut on3 = fixtures::tcp4(NFT, 12, (1, 80), WEB, 0);
        on3.ifindex = 3;
        agg.add(&on3);
        e.fold(&agg, &names());
        assert_eq!(
            series(&e),
            [("NETFILTER_DROP nft_do_chain tcp web   ".to_owned(), 3)]
        );
        // veth-c goes away (two samples); the series stays, never lower, and counts on.
        for _ in 0..2 {
            sample(&mut e, &[(WEB, "web")]);
            e.fold(&agg, &names());
        }
        assert_eq!(
            series(&e),
            [("NETFILTER_DROP nft_do_chain tcp web   ".to_owned(), 3)]
        );
        drops(&mut agg, WEB, 80, 4);
        e.fold(&agg, &names());
        assert_eq!(
            series(&e),
            [("NETFILTER_DROP nft_do_chain tcp web   ".to_owned(), 7)]
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
        e.sample(s.clone(), 0);
        // The interface is recreated: the kernel's counter starts again at 2.
        s.counters[1].value = 2;
        e.sample(s.clone(), 0);
        let shown: Vec<_> = e.stack().collect();
        assert_eq!(
            shown,
            [
                ("web".to_owned(), None, "TcpExt:ListenOverflows", 7),
                ("web".to_owned(), Some("veth-b"), "dev:rx_dropped", 12)
            ]
        );
        e.sample(host(&[]), 0);
        assert_eq!(e.stack().count(), 0);
    }

    #[test]
    fn interface_counters_are_their_growth_bounded_by_max_series() {
        use crate::pipeline::interfaces::{stats64_counter, HostReading, InterfaceReading};
        let mut e = Exposition::new(DropLabel::DEFAULT.to_vec(), 1, BuildInfo::default());
        e.sample(host(&[(WEB, "web")]), 0);
        let reading = |tx: u64, missed: u64| HostReading {
            read_ns: 1,
            namespaces: 1,
            qstats_interfaces: None,
            interfaces: vec![InterfaceReading {
                netns: WEB,
                netns_label: "web".into(),
                ifindex: 3,
                name: "veth-a".into(),
                counters: vec![
                    (stats64_counter("tx_dropped").unwrap(), tx),
                    (stats64_counter("rx_missed_errors").unwrap(), missed),
                ],
                xdp_programs: Vec::new(),
            }],
        };
        let mut agg = Aggregator::new();
        agg.set_interfaces(&reading(1000, 50));
        e.fold(&agg, &names());
        assert_eq!(e.interfaces().count(), 0, "values since boot are no series");
        agg.set_interfaces(&reading(1010, 50));
        e.fold(&agg, &names());
        agg.set_interfaces(&reading(1012, 53));
        e.fold(&agg, &names());
        let shown: Vec<_> = e
            .interfaces()
            .map(|(ns, i, c, l, v)| (ns, i.to_owned(), c, l, v))
            .collect();
        assert_eq!(
            shown,
            [(
                "web".to_owned(),
                "veth-a".to_owned(),
                "tx_dropped",
                Layer::Driver,
                12
            )]
        );
        // The second counter came when the one series allowed was taken.
        assert_eq!(e.interfaces_other(), 3);
    }

    #[test]
    fn stack_counters_that_never_moved_are_left_out_and_the_rest_bounded() {
        let mut e = Exposition::new(DropLabel::DEFAULT.to_vec(), 2, BuildInfo::default());
        let counter = |netns, counter, value| StackCounter {
            netns,
            interface: None,
            counter,
            value,
        };
        let namespaces: Vec<(Netns, String)> = (0..200)
            .map(|i| {
                (
                    Netns::new(WEB.inode + i, WEB.cookie + u64::from(i)),
                    format!("ns{i}"),
                )
            })
            .collect();
        let named: Vec<(Netns, &str)> = namespaces.iter().map(|(i, n)| (*i, n.as_str())).collect();
        let mut s = host(&named);
        for &(ns, _) in &named {
            for name in [
                "TcpExt:ListenOverflows",
                "Udp:RcvbufErrors",
                "softnet:dropped",
            ] {
                s.counters.push(counter(ns, name, 0));
            }
        }
        e.sample(s.clone(), 0);
        assert_eq!(e.stack().count(), 0, "600 counters at 0: no series");
        assert_eq!(e.stack_other(), 0);
        // Three move: two get series (--max-series 2), the third goes to `other`.
        s.counters[0].value = 4;
        s.counters[4].value = 1;
        s.counters[8].value = 6;
        e.sample(s.clone(), 0);
        let shown: Vec<_> = e.stack().map(|(ns, _, c, v)| (ns, c, v)).collect();
        assert_eq!(
            shown,
            [
                ("ns0".to_owned(), "TcpExt:ListenOverflows", 4),
                ("ns1".to_owned(), "Udp:RcvbufErrors", 1)
            ]
        );
        assert_eq!(e.stack_other(), 6);
        s.counters[8].value = 9;
        s.counters[0].value = 5;
        e.sample(s.clone(), 0);
        assert_eq!(e.stack_other(), 9);
        assert_eq!(e.stack().next().map(|(.., v)| v), Some(5));
        // ns0 goes: its series leaves and makes room for the next counter that moves.
        s.counters.retain(|c| c.netns != WEB);
        s.counters[10].value = 2;
        e.sample(s, 0);
        let shown: Vec<_> = e.stack().map(|(ns, _, c, v)| (ns, c, v)).collect();
        assert_eq!(
            shown,
            [
                ("ns1".to_owned(), "Udp:RcvbufErrors", 1),
                ("ns4".to_owned(), "Udp:RcvbufErrors", 2)
            ]
        );
        assert_eq!(e.stack_other(), 9);
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
                ..Default::default()
            },
            [],
        );
        e.fold(&agg, &names());
        assert_eq!((e.lost(), e.missed()), (4, 1));
    }
}
