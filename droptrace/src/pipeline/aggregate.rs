//! Counting drops by group, exactly.
//!
//! Two ways, as the source says: when every drop is streamed (`record`, JSON Lines), a
//! group's count is the drops delivered as events plus the drops the kernel counted by
//! group when the ring buffer had no room (`lost`); when the kernel counts every drop by
//! group itself (`KernelCounters::groups_in_kernel`, the default live modes), a group's
//! count is the kernel's and the events are samples of it. The total comes from the
//! kernel's own per-CPU counter, so it is exact whatever happened to the events.
use std::collections::hash_map::Entry;

use rustc_hash::FxHashMap as HashMap;

use crate::pipeline::{
    event::{Drop, Group},
    interfaces::{HostReading, InterfaceDrops},
    samples::Recent,
};

pub use crate::pipeline::samples::SAMPLES_PER_GROUP;

/// Counters the kernel program keeps, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelCounters {
    /// Every drop the program saw, before filters.
    pub seen: u64,
    /// Drops that passed the filters.
    pub matched: u64,
    /// Matched drops whose event did not fit in the ring buffer.
    pub lost: u64,
    /// Lost drops that also did not fit in the lost-group map.
    pub lost_ungrouped: u64,
    /// Drops the kernel did not run the program for (BPF recursion protection), from the
    /// program's `recursion_misses`.
    pub missed: u64,
    /// Events the kernel handed to the ring buffer.
    pub sent: u64,
    /// Counting in the kernel: drops not sampled because a CPU had spent its sample budget
    /// of the moment (they are counted all the same).
    pub over_budget: u64,
    /// Packets the kernel program could not read although the layout said it could
    /// (warned about with `--verbose`).
    pub anomalies: u64,
    /// The kernel counts every drop by group: the figures given with these counters are
    /// the groups' totals, and events are samples.
    pub groups_in_kernel: bool,
    /// When the counters were read (the source's clock), 0 if unknown.
    pub read_ns: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupStats {
    /// Drops delivered as events (every one, or samples when the kernel counts).
    pub delivered: u64,
    /// Drops counted in the kernel only because their event found no room.
    pub lost: u64,
    /// The kernel's count of the group, when it counts every drop by group (0 otherwise).
    pub counted: u64,
    pub first_ns: u64,
    pub last_ns: u64,
    /// Largest packet seen (delivered events only).
    pub max_len: u32,
    /// Delivered TCP segments whose flags were read, by kind: connection attempts (SYN
    /// without ACK) and the rest (segments of a connection: ACK, FIN, RST).
    pub tcp_syn: u64,
    pub tcp_other: u64,
}

impl GroupStats {
    /// The group's drops: the kernel's count, or more while samples that came after the
    /// last reading of it are in (the kernel counts a drop before it sends its sample).
    pub fn count(&self) -> u64 {
        self.counted.max(self.delivered + self.lost)
    }

    /// What grew since `before` (a reset, a window): the counts' differences; times and
    /// the largest packet stay.
    pub fn since(&self, before: &GroupStats) -> GroupStats {
        GroupStats {
            delivered: self.delivered.saturating_sub(before.delivered),
            lost: self.lost.saturating_sub(before.lost),
            counted: self.counted.saturating_sub(before.counted),
            tcp_syn: self.tcp_syn.saturating_sub(before.tcp_syn),
            tcp_other: self.tcp_other.saturating_sub(before.tcp_other),
            ..*self
        }
    }

    /// Adds another group's figures to these (for folded views).
    pub fn merge(&mut self, other: &GroupStats) {
        if other.count() == 0 {
            return;
        }
        self.first_ns = if self.count() == 0 {
            other.first_ns
        } else {
            self.first_ns.min(other.first_ns)
        };
        self.delivered += other.delivered;
        self.lost += other.lost;
        self.counted += other.counted;
        self.last_ns = self.last_ns.max(other.last_ns);
        self.max_len = self.max_len.max(other.max_len);
        self.tcp_syn += other.tcp_syn;
        self.tcp_other += other.tcp_other;
    }
}

/// Groups kept apart; beyond this (a port scan makes one per port) drops are still
/// counted, in `overflow`, so memory stays bounded.
pub const MAX_GROUPS: usize = 65_536;

/// A group's figures and its most recent drops, kept together: one lookup per event.
#[derive(Debug)]
struct GroupEntry {
    group: Group,
    stats: GroupStats,
    recent: Recent,
}

#[derive(Debug, Default)]
pub struct Aggregator {
    /// Where each group's entry is in `entries` (entries are never removed).
    index: HashMap<Group, u32>,
    /// Side by side, not in the map: a map's table is kept up to half empty, and an entry
    /// with its samples is ten times the size of an index.
    entries: Vec<GroupEntry>,
    counters: KernelCounters,
    delivered: u64,
    overflow: u64,
    /// The interfaces' own drop counters, as they grew (when the source reads them).
    interfaces: InterfaceDrops,
    /// TCP retransmits and resets by connection group.
    tcp: super::tcp::TcpTable,
    /// The XDP programs found, traced or not; `None` when XDP verdicts are not counted.
    xdp_programs: Option<Vec<super::xdp::XdpProgram>>,
    /// The XDP exceptions by group, with where else each is counted (absolute).
    xdp_exceptions: Vec<super::xdp::ExceptionRow>,
}

impl Aggregator {
    pub fn new() -> Aggregator {
        Aggregator::default()
    }

    /// The entry of `group`, made if there is room (`None` beyond `MAX_GROUPS` when
    /// `capped`).
    fn entry(&mut self, group: Group, capped: bool) -> Option<&mut GroupEntry> {
        let full = capped && self.entries.len() >= MAX_GROUPS;
        let at = match self.index.entry(group) {
            Entry::Occupied(e) => *e.get(),
            Entry::Vacant(_) if full => return None,
            Entry::Vacant(e) => {
                let at = self.entries.len() as u32;
                self.entries.push(GroupEntry {
                    group,
                    stats: GroupStats::default(),
                    recent: Recent::default(),
                });
                *e.insert(at)
            }
        };
        Some(&mut self.entries[at as usize])
    }

    pub fn add(&mut self, drop: &Drop) {
        self.delivered += 1;
        let Some(entry) = self.entry(drop.group(), true) else {
            self.overflow += 1;
            return;
        };
        let stats = &mut entry.stats;
        if stats.count() == 0 || stats.first_ns == 0 {
            stats.first_ns = drop.timestamp_ns;
        } else {
            stats.first_ns = stats.first_ns.min(drop.timestamp_ns);
        }
        stats.delivered += 1;
        stats.last_ns = stats.last_ns.max(drop.timestamp_ns);
        stats.max_len = stats.max_len.max(drop.len);
        if let Some(flags) = drop.packet.tcp_flags {
            if crate::pipeline::event::is_connection_attempt(flags) {
                stats.tcp_syn += 1;
            } else {
                stats.tcp_other += 1;
            }
        }
        entry.recent.push(drop);
    }

    /// The most recent drops of every group that `member` accepts, oldest first, at most
    /// `SAMPLES_PER_GROUP` of them.
    pub fn samples(&self, member: impl Fn(&Group) -> bool) -> Vec<Drop> {
        let mut out: Vec<Drop> = self
            .entries
            .iter()
            .filter(|e| member(&e.group))
            .flat_map(|e| e.recent.drops(&e.group))
            .collect();
        out.sort_by_key(|d| d.timestamp_ns);
        let cut = out.len().saturating_sub(SAMPLES_PER_GROUP);
        out.drain(..cut);
        out
    }

    /// The latest drop of every group, oldest first.
    pub fn latest_samples(&self) -> Vec<Drop> {
        let mut out: Vec<Drop> = self
            .entries
            .iter()
            .filter_map(|e| e.recent.latest(&e.group))
            .collect();
        out.sort_by_key(|d| d.timestamp_ns);
        out
    }

    /// Takes the kernel's latest counters and figures by group (absolute values): the
    /// groups' totals when `counters.groups_in_kernel`, their lost drops otherwise.
    pub fn set_kernel(
        &mut self,
        counters: KernelCounters,
        by_group: impl IntoIterator<Item = (Group, u64)>,
    ) {
        self.counters = counters;
        for (group, n) in by_group {
            // Lost drops are kept by group whatever the cap (the kernel's lost-group map is
            // small); counted groups go beyond it only if the kernel's map holds more
            // groups than this (it is made no larger).
            let Some(entry) = self.entry(group, counters.groups_in_kernel) else {
                continue;
            };
            let stats = &mut entry.stats;
            if !counters.groups_in_kernel {
                stats.lost = n;
                continue;
            }
            if n > stats.counted && counters.read_ns != 0 {
                // Drops came since the last reading: seen by now at the latest.
                if stats.count() == 0 {
                    stats.first_ns = counters.read_ns;
                }
                stats.last_ns = stats.last_ns.max(counters.read_ns);
            }
            stats.counted = stats.counted.max(n);
        }
    }

    pub fn counters(&self) -> KernelCounters {
        self.counters
    }

    /// The XDP programs found so far (their verdicts are counted).
    pub fn set_xdp_programs(&mut self, programs: &[super::xdp::XdpProgram]) {
        self.xdp_programs = Some(programs.to_vec());
    }

    /// The XDP programs found, traced or not; `None` when XDP verdicts are not counted.
    pub fn xdp_programs(&self) -> Option<&[super::xdp::XdpProgram]> {
        self.xdp_programs.as_deref()
    }

    /// What is watched: the interfaces, and the XDP programs traced and not.
    pub fn watched(&self) -> super::interfaces::Watched {
        let mut watched = self.interfaces.watched();
        watched.xdp_traced = self.xdp_programs.as_ref().map(|programs| {
            let traced = programs.iter().filter(|p| p.untraced.is_none()).count();
            (traced, programs.len() - traced)
        });
        watched
    }

    /// Takes the XDP programs' verdicts as counted in the kernel (absolute values, read
    /// at `read_ns`): groups of their own, whatever way kfree_skb's drops are counted.
    pub fn set_xdp(&mut self, by_group: impl IntoIterator<Item = (Group, u64)>, read_ns: u64) {
        for (group, n) in by_group {
            let Some(entry) = self.entry(group, false) else {
                continue;
            };
            let stats = &mut entry.stats;
            if n > stats.counted {
                if stats.count() == 0 {
                    stats.first_ns = read_ns;
                }
                stats.last_ns = stats.last_ns.max(read_ns);
                stats.counted = n;
            }
        }
    }

    /// Takes the XDP exceptions as read (absolute): every row is kept to be shown; those
    /// counted nowhere else are drop groups too (`set_xdp`).
    pub fn set_xdp_exceptions(&mut self, rows: Vec<super::xdp::ExceptionRow>, read_ns: u64) {
        self.set_xdp(
            rows.iter()
                .filter(|r| r.also_counted_as.is_none())
                .map(|r| (r.group, r.count)),
            read_ns,
        );
        self.xdp_exceptions = rows;
    }

    /// The XDP exceptions, each with where else it is counted.
    pub fn xdp_exceptions(&self) -> &[super::xdp::ExceptionRow] {
        &self.xdp_exceptions
    }

    /// Takes a reading of the interfaces' counters (absolute values).
    pub fn set_interfaces(&mut self, reading: &HostReading) {
        self.interfaces.update(reading);
    }

    /// The interfaces' counters that grew, and what is watched.
    pub fn interfaces(&self) -> &InterfaceDrops {
        &self.interfaces
    }

    /// A TCP retransmit or reset.
    pub fn add_tcp(&mut self, event: &super::tcp::TcpEvent) {
        self.tcp.add(event);
    }

    /// The TCP programs' counters (absolute values); they say the programs are attached.
    pub fn set_tcp_counters(&mut self, counters: super::tcp::TcpCounters) {
        self.tcp.attached = true;
        self.tcp.counters = counters;
    }

    /// TCP tracing was turned off (`--no-tcp`).
    pub fn set_tcp_off(&mut self) {
        self.tcp.off = true;
    }

    pub fn tcp(&self) -> &super::tcp::TcpTable {
        &self.tcp
    }

    /// Delivered drops of groups beyond `MAX_GROUPS`, counted together.
    pub fn overflow(&self) -> u64 {
        self.overflow
    }

    /// Drops delivered as events so far.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    pub fn get(&self, group: &Group) -> Option<&GroupStats> {
        let at = *self.index.get(group)?;
        Some(&self.entries[at as usize].stats)
    }

    /// Groups by site (interface and namespace folded together), most drops first.
    pub fn ranked(&self) -> Vec<(Group, GroupStats)> {
        self.ranked_by(Group::site)
    }

    /// Groups folded by `key`, most drops first (ties in a stable order).
    pub fn ranked_by(&self, key: impl Fn(&Group) -> Group) -> Vec<(Group, GroupStats)> {
        let mut folded: HashMap<Group, GroupStats> = HashMap::default();
        for e in &self.entries {
            if e.stats.count() > 0 {
                folded.entry(key(&e.group)).or_default().merge(&e.stats);
            }
        }
        let mut out: Vec<_> = folded.into_iter().collect();
        out.sort_by(|a, b| b.1.count().cmp(&a.1.count()).then(a.0.cmp(&b.0)));
        out
    }

    /// Every group with its figures, in no particular order.
    pub fn groups(&self) -> impl Iterator<Item = (&Group, &GroupStats)> {
        self.entries.iter().map(|e| (&e.group, &e.stats))
    }

    /// Number of groups kept apart.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sum of all group counts: equals `counters().matched` minus the ungrouped lost drops
    /// once every delivered event has been read.
    pub fn grouped_total(&self) -> u64 {
        self.entries.iter().map(|e| e.stats.count()).sum::<u64>() + self.overflow
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::fixtures::tcp4;

    fn drop_at(location: u64, dport: u16, t: u64) -> Drop {
        tcp4(location, 12, (5555, dport), 1, t)
    }

    #[test]
    fn groups_beyond_the_cap_are_counted_together() {
        let mut agg = Aggregator::new();
        for port in 0..=u16::MAX {
            agg.add(&drop_at(100, port, 1));
        }
        assert_eq!(agg.ranked().len(), MAX_GROUPS);
        agg.add(&drop_at(200, 1, 1));
        agg.add(&drop_at(200, 2, 1));
        agg.add(&drop_at(100, 7, 2));
        assert_eq!(agg.ranked().len(), MAX_GROUPS);
        assert_eq!(agg.overflow(), 2);
        assert_eq!(agg.get(&drop_at(100, 7, 0).group()).unwrap().count(), 2);
        assert_eq!(agg.grouped_total(), agg.delivered());
    }

    #[test]
    fn counts_delivered_and_lost_per_group() {
        let mut agg = Aggregator::new();
        for t in 0..5 {
            agg.add(&drop_at(100, 1678, 10 + t));
        }
        agg.add(&drop_at(200, 80, 7));
        let g1678 = drop_at(100, 1678, 0).group();
        let g22 = drop_at(100, 22, 0).group();
        agg.set_kernel(
            KernelCounters {
                seen: 50,
                matched: 16,
                lost: 10,
                lost_ungrouped: 0,
                missed: 0,
                ..Default::default()
            },
            [(g1678, 3), (g22, 7)],
        );
        let ranked = agg.ranked();
        assert_eq!(ranked.len(), 3);
        assert_eq!(ranked[0].0, g1678.site());
        assert_eq!(ranked[0].1.count(), 8);
        assert_eq!((ranked[0].1.first_ns, ranked[0].1.last_ns), (10, 14));
        assert_eq!(ranked[1].0, g22.site());
        assert_eq!(ranked[1].1.count(), 7);
        assert_eq!(agg.grouped_total(), 16);
        assert_eq!(agg.delivered(), 6);
        assert_eq!(agg.samples(|g| *g == g1678).len(), 5);
        for t in 0..20 {
            agg.add(&drop_at(100, 1678, 100 + t));
        }
        let kept: Vec<u64> = agg
            .samples(|g| *g == g1678)
            .iter()
            .map(|d| d.timestamp_ns)
            .collect();
        assert_eq!(
            kept,
            (112..120).collect::<Vec<_>>(),
            "the last {SAMPLES_PER_GROUP}"
        );

        // Lost figures are absolute: a newer reading replaces the older one.
        agg.set_kernel(KernelCounters::default(), [(g22, 9)]);
        assert_eq!(agg.get(&g1678).unwrap().max_len, 60);
        assert_eq!(agg.get(&g22).unwrap().count(), 9);
    }

    #[test]
    fn kernel_totals_are_the_counts_and_events_are_samples() {
        let mut agg = Aggregator::new();
        let g = drop_at(100, 1678, 0).group();
        let other = drop_at(200, 53, 0).group();
        let kernel = |matched, read_ns| KernelCounters {
            matched,
            groups_in_kernel: true,
            read_ns,
            ..KernelCounters::default()
        };
        // Two samples of 1000 drops; a group the kernel counted without a sample yet.
        agg.add(&drop_at(100, 1678, 50));
        agg.add(&drop_at(100, 1678, 60));
        agg.set_kernel(kernel(1200, 100), [(g, 1000), (other, 200)]);
        assert_eq!(agg.get(&g).unwrap().count(), 1000);
        assert_eq!(agg.get(&g).unwrap().lost, 0, "not sampled is not lost");
        assert_eq!(
            (agg.get(&g).unwrap().first_ns, agg.get(&g).unwrap().last_ns),
            (50, 100)
        );
        let o = *agg.get(&other).unwrap();
        assert_eq!((o.count(), o.first_ns, o.last_ns), (200, 100, 100));
        assert_eq!(agg.grouped_total(), 1200);
        // A sample that comes before the reading of its drop: the count waits for the kernel.
        agg.add(&drop_at(100, 1678, 150));
        agg.set_kernel(kernel(1201, 100), [(g, 1000), (other, 200)]);
        assert_eq!(agg.get(&g).unwrap().count(), 1000);
        agg.set_kernel(kernel(1201, 200), [(g, 1001), (other, 200)]);
        assert_eq!(agg.get(&g).unwrap().count(), 1001);
        assert_eq!(
            agg.get(&other).unwrap().last_ns,
            100,
            "no new drops: not seen again"
        );
        assert_eq!(agg.samples(|x| *x == g).len(), 3);
        assert_eq!(agg.grouped_total(), agg.counters().matched);
    }

    #[test]
    fn folds_interfaces_for_the_site_view_and_keeps_them_apart_otherwise() {
        let mut agg = Aggregator::new();
        let mut a = drop_at(100, 53, 5);
        agg.add(&a);
        a.ifindex = 7;
        a.timestamp_ns = 9;
        agg.add(&a);
        agg.add(&a);
        let sites = agg.ranked();
        assert_eq!(sites.len(), 1);
        assert_eq!(sites[0].1.count(), 3);
        assert_eq!((sites[0].1.first_ns, sites[0].1.last_ns), (5, 9));
        assert_eq!((sites[0].0.ifindex, sites[0].0.netns.inode), (0, 0));
        let by_iface = agg.ranked_by(|g| Group {
            location: 0,
            reason: 0,
            ethertype: 0,
            ip_proto: None,
            dport: None,
            ..*g
        });
        let counts: Vec<(u32, u64)> = by_iface
            .iter()
            .map(|(g, s)| (g.ifindex, s.count()))
            .collect();
        assert_eq!(counts, [(7, 2), (2, 1)]);
        let site = sites[0].0;
        assert_eq!(agg.samples(|g| g.site() == site).len(), 3);
    }
}
