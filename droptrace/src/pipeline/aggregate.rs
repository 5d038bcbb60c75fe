//! Counting drops by group, exactly.
//!
//! A group's count is the drops delivered as events plus the drops the kernel counted by
//! group when the ring buffer had no room (`lost`). The total comes from the kernel's own
//! per-CPU counter, so it is exact whatever happened to the events.
use std::collections::{hash_map::Entry, VecDeque};

use rustc_hash::FxHashMap as HashMap;

use crate::pipeline::event::{Drop, Group};

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
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupStats {
    /// Drops delivered as events.
    pub delivered: u64,
    /// Drops counted in the kernel only.
    pub lost: u64,
    pub first_ns: u64,
    pub last_ns: u64,
    /// Largest packet seen (delivered events only).
    pub max_len: u32,
}

impl GroupStats {
    pub fn count(&self) -> u64 {
        self.delivered + self.lost
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
        self.last_ns = self.last_ns.max(other.last_ns);
        self.max_len = self.max_len.max(other.max_len);
    }
}

/// Recent drops kept per group, for details (addresses, interface, namespace, length).
pub const SAMPLES_PER_GROUP: usize = 8;
/// Groups kept apart; beyond this (a port scan makes one per port) drops are still
/// counted, in `overflow`, so memory stays bounded.
pub const MAX_GROUPS: usize = 65_536;

/// A group's figures and its most recent drops, kept together: one lookup per event.
#[derive(Debug, Default)]
struct GroupEntry {
    stats: GroupStats,
    recent: VecDeque<Drop>,
}

#[derive(Debug, Default)]
pub struct Aggregator {
    groups: HashMap<Group, GroupEntry>,
    counters: KernelCounters,
    delivered: u64,
    overflow: u64,
}

impl Aggregator {
    pub fn new() -> Aggregator {
        Aggregator::default()
    }

    pub fn add(&mut self, drop: &Drop) {
        self.delivered += 1;
        let full = self.groups.len() >= MAX_GROUPS;
        let entry = match self.groups.entry(drop.group()) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(_) if full => {
                self.overflow += 1;
                return;
            }
            Entry::Vacant(e) => e.insert(GroupEntry::default()),
        };
        let stats = &mut entry.stats;
        if stats.count() == 0 {
            stats.first_ns = drop.timestamp_ns;
        }
        stats.delivered += 1;
        stats.last_ns = stats.last_ns.max(drop.timestamp_ns);
        stats.max_len = stats.max_len.max(drop.len);
        let recent = &mut entry.recent;
        if recent.len() == SAMPLES_PER_GROUP {
            recent.pop_front();
        }
        recent.push_back(*drop);
    }

    /// The most recent drops of every group that `member` accepts, oldest first, at most
    /// `SAMPLES_PER_GROUP` of them.
    pub fn samples(&self, member: impl Fn(&Group) -> bool) -> Vec<Drop> {
        let mut out: Vec<Drop> = self
            .groups
            .iter()
            .filter(|(g, _)| member(g))
            .flat_map(|(_, e)| e.recent.iter().copied())
            .collect();
        out.sort_by_key(|d| d.timestamp_ns);
        let cut = out.len().saturating_sub(SAMPLES_PER_GROUP);
        out.drain(..cut);
        out
    }

    /// Takes the kernel's latest counters and lost-by-group figures (absolute values).
    pub fn set_kernel(
        &mut self,
        counters: KernelCounters,
        lost: impl IntoIterator<Item = (Group, u64)>,
    ) {
        self.counters = counters;
        for (group, n) in lost {
            self.groups.entry(group).or_default().stats.lost = n;
        }
    }

    pub fn counters(&self) -> KernelCounters {
        self.counters
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
        self.groups.get(group).map(|e| &e.stats)
    }

    /// Groups by site (interface and namespace folded together), most drops first.
    pub fn ranked(&self) -> Vec<(Group, GroupStats)> {
        self.ranked_by(Group::site)
    }

    /// Groups folded by `key`, most drops first (ties in a stable order).
    pub fn ranked_by(&self, key: impl Fn(&Group) -> Group) -> Vec<(Group, GroupStats)> {
        let mut folded: HashMap<Group, GroupStats> = HashMap::default();
        for (g, e) in &self.groups {
            if e.stats.count() > 0 {
                folded.entry(key(g)).or_default().merge(&e.stats);
            }
        }
        let mut out: Vec<_> = folded.into_iter().collect();
        out.sort_by(|a, b| b.1.count().cmp(&a.1.count()).then(a.0.cmp(&b.0)));
        out
    }

    /// Every group with its figures, in no particular order.
    pub fn groups(&self) -> impl Iterator<Item = (&Group, &GroupStats)> {
        self.groups.iter().map(|(g, e)| (g, &e.stats))
    }

    /// Number of groups kept apart.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Sum of all group counts: equals `counters().matched` minus the ungrouped lost drops
    /// once every delivered event has been read.
    pub fn grouped_total(&self) -> u64 {
        self.groups.values().map(|e| e.stats.count()).sum::<u64>() + self.overflow
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
        assert_eq!((sites[0].0.ifindex, sites[0].0.netns), (0, 0));
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
