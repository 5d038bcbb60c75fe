//! Drops per second over the last minute, per group and in all, from successive snapshots.
//! Time is the snapshot's (the source's clock), never the wall clock of the viewer.
use rustc_hash::FxHashMap as HashMap;

use hdrhistogram::Histogram;

use crate::pipeline::{aggregate::GroupStats, event::Group};

/// Seconds of history kept (the sparkline's width at most).
pub const WINDOW: usize = 60;
/// Seconds over which the rate column is averaged.
pub const RATE_SECS: u64 = 5;
const NS: u64 = 1_000_000_000;

/// Per-second counts of a window: a byte each while every count is below 256 (a port
/// scan's tens of thousands of groups), four once one is not.
#[derive(Debug, Clone, PartialEq)]
enum Buckets {
    Narrow([u8; WINDOW]),
    Wide(Box<[u32; WINDOW]>),
}

impl Buckets {
    fn get(&self, i: usize) -> u32 {
        match self {
            Buckets::Narrow(b) => u32::from(b[i]),
            Buckets::Wide(b) => b[i],
        }
    }

    /// One second on: the oldest count leaves, the newest second starts at 0.
    fn shift(&mut self) {
        match self {
            Buckets::Narrow(b) => {
                b.rotate_left(1);
                b[WINDOW - 1] = 0;
            }
            Buckets::Wide(b) => {
                b.rotate_left(1);
                b[WINDOW - 1] = 0;
            }
        }
    }

    fn add(&mut self, i: usize, n: u32) {
        if let Buckets::Narrow(b) = self {
            match u8::try_from(u32::from(b[i]).saturating_add(n)) {
                Ok(sum) => {
                    b[i] = sum;
                    return;
                }
                Err(_) => *self = Buckets::Wide(Box::new(b.map(u32::from))),
            }
        }
        if let Buckets::Wide(b) = self {
            b[i] = b[i].saturating_add(n);
        }
    }
}

/// Per-second counts of the last `WINDOW` seconds of one series.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    buckets: Buckets,
    /// The second (of the source's clock) the newest bucket stands for.
    second: u64,
    /// The cumulative count at the last update, and when it was.
    seen: u64,
    updated_ns: Option<u64>,
    /// When this series first had drops (snapshot time, ns).
    pub first_seen_ns: u64,
    /// When it first had drops since the view's reset (or since it appeared).
    pub first_ns: Option<u64>,
}

impl Series {
    fn new(now_ns: u64) -> Series {
        Series {
            buckets: Buckets::Narrow([0; WINDOW]),
            second: now_ns / NS,
            seen: 0,
            updated_ns: None,
            first_seen_ns: now_ns,
            first_ns: None,
        }
    }

    /// Forgets the seconds so far (and when it first dropped); the cumulative count stays,
    /// so the next update counts only what came after.
    fn forget(&mut self) {
        self.buckets = Buckets::Narrow([0; WINDOW]);
        self.first_ns = None;
    }

    /// Moves the window to `second`, clearing the seconds in between; the counts of the
    /// seconds that completed go to `completed`, oldest first, as (count, how many seconds).
    fn advance(&mut self, second: u64, completed: &mut Vec<(u32, u64)>) {
        if second <= self.second {
            return;
        }
        let steps = second - self.second;
        for _ in 0..steps.min(WINDOW as u64) {
            completed.push((self.buckets.get(WINDOW - 1), 1));
            self.buckets.shift();
        }
        if steps > WINDOW as u64 {
            // A long gap: seconds without drops, counted at once.
            completed.push((0, steps - WINDOW as u64));
        }
        self.second = second;
    }

    fn add(&mut self, second: u64, n: u64, completed: &mut Vec<(u32, u64)>) {
        self.advance(second, completed);
        let back = self.second - second;
        if back < WINDOW as u64 {
            let n = u32::try_from(n).unwrap_or(u32::MAX);
            self.buckets.add(WINDOW - 1 - back as usize, n);
        }
    }

    /// Takes a new cumulative count at `now_ns`. The drops since the previous update are
    /// spread over the seconds between the two, in proportion; returns the counts of the
    /// seconds that completed.
    fn update(&mut self, now_ns: u64, count: u64) -> Vec<(u32, u64)> {
        let mut completed = Vec::new();
        let delta = count.saturating_sub(self.seen);
        self.seen = count;
        let from = self.updated_ns.filter(|&t| t < now_ns);
        self.updated_ns = Some(now_ns);
        if delta > 0 {
            self.first_ns.get_or_insert(now_ns);
            match from {
                None => self.add(now_ns / NS, delta, &mut completed),
                Some(from) => {
                    let span = now_ns - from;
                    let last = (now_ns - 1) / NS;
                    // Seconds before the window cannot show: start at its oldest.
                    let first = (from / NS).max(last.saturating_sub(WINDOW as u64));
                    let mut left = delta;
                    for second in first..=last {
                        let n = if second == last {
                            left
                        } else {
                            let start = from.max(second * NS);
                            let end = now_ns.min((second + 1) * NS);
                            let n = u128::from(delta) * u128::from(end - start) / u128::from(span);
                            u64::try_from(n).unwrap_or(u64::MAX).min(left)
                        };
                        left -= n;
                        self.add(second, n, &mut completed);
                    }
                }
            }
        }
        self.advance(now_ns / NS, &mut completed);
        completed
    }

    /// Counts per second, oldest first, as of `now_ns` (seconds without updates count 0).
    pub fn per_second(&self, now_ns: u64) -> [u32; WINDOW] {
        let lag = (now_ns / NS).saturating_sub(self.second).min(WINDOW as u64) as usize;
        let mut out = [0; WINDOW];
        for (i, o) in out[..WINDOW - lag].iter_mut().enumerate() {
            *o = self.buckets.get(lag + i);
        }
        out
    }

    /// Drops in the last `RATE_SECS` seconds (the current one included).
    pub fn recent(&self, now_ns: u64) -> u64 {
        let per = self.per_second(now_ns);
        per[WINDOW - RATE_SECS as usize..]
            .iter()
            .map(|&n| u64::from(n))
            .sum()
    }
}

/// The series of every group, in the order snapshots list the groups: the aggregator's,
/// new groups last, so the `i`th group of a snapshot has the `i`th series. An index by
/// group is built only if a snapshot ever lists them otherwise (a port scan's 65,536
/// groups would spend 5 MB on it).
#[derive(Debug, Clone, Default)]
pub struct Groups {
    series: Vec<(Group, Series)>,
    index: Option<HashMap<Group, u32>>,
}

impl Groups {
    /// The series of `group`, the `at`th group of the snapshot last taken.
    pub fn get_at(&self, at: usize, group: &Group) -> Option<&Series> {
        if let Some(index) = &self.index {
            let at = *index.get(group)?;
            return Some(&self.series[at as usize].1);
        }
        match self.series.get(at) {
            Some((g, series)) if g == group => Some(series),
            _ => None,
        }
    }

    /// The series of `group`, wherever it is.
    pub fn get(&self, group: &Group) -> Option<&Series> {
        match &self.index {
            Some(index) => Some(&self.series[*index.get(group)? as usize].1),
            None => self.series.iter().find(|(g, _)| g == group).map(|(_, s)| s),
        }
    }

    /// The series of the `at`th group of a snapshot, made if new.
    fn get_or_insert(&mut self, at: usize, group: Group, now_ns: u64) -> &mut Series {
        if self.index.is_none() {
            match self.series.get(at) {
                Some((g, _)) if *g == group => return &mut self.series[at].1,
                None if at == self.series.len() => {
                    self.series.push((group, Series::new(now_ns)));
                    return &mut self.series[at].1;
                }
                // Not in the order so far: index them, and use the index from now on.
                _ => {
                    let index = self.series.iter().enumerate();
                    self.index = Some(index.map(|(i, (g, _))| (*g, i as u32)).collect());
                }
            }
        }
        let index = self.index.get_or_insert_with(HashMap::default);
        let next = self.series.len() as u32;
        let at = *index.entry(group).or_insert(next);
        if at == next {
            self.series.push((group, Series::new(now_ns)));
        }
        &mut self.series[at as usize].1
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Group, &Series)> {
        self.series.iter().map(|(g, s)| (g, s))
    }

    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
}

impl std::ops::Index<&Group> for Groups {
    type Output = Series;

    fn index(&self, group: &Group) -> &Series {
        self.get(group).expect("a group with a series")
    }
}

/// Everything the view remembers between snapshots.
#[derive(Debug, Clone)]
pub struct History {
    pub groups: Groups,
    pub total: Series,
    /// Drops per completed second of the whole run, for percentiles.
    pub total_per_second: Histogram<u64>,
    pub now_ns: u64,
    pub started_ns: u64,
    /// Where the per-second counts start: the start, or the view's last reset (`r`).
    pub since_ns: u64,
}

impl History {
    pub fn new() -> History {
        History {
            groups: Groups::default(),
            total: Series::new(0),
            // Three significant digits from 1 up to any count: fixed, small memory.
            total_per_second: Histogram::new(3).expect("3 significant digits are valid"),
            now_ns: 0,
            started_ns: 0,
            since_ns: 0,
        }
    }

    /// Starts over from now: per-second counts, first drops and percentiles forget what
    /// came before.
    pub fn reset(&mut self) {
        self.since_ns = self.now_ns;
        self.total.forget();
        for (_, series) in &mut self.groups.series {
            series.forget();
        }
        self.total_per_second.reset();
    }

    /// Takes a snapshot's groups and total at `now_ns`.
    pub fn update(
        &mut self,
        started_ns: u64,
        now_ns: u64,
        total: u64,
        groups: &[(Group, GroupStats)],
    ) {
        if self.now_ns == 0 {
            self.started_ns = started_ns;
            self.since_ns = started_ns;
            self.total = Series::new(now_ns);
        }
        self.now_ns = self.now_ns.max(now_ns);
        for (n, seconds) in self.total.update(now_ns, total) {
            let _ = self.total_per_second.record_n(u64::from(n), seconds);
        }
        for (at, (g, s)) in groups.iter().enumerate() {
            self.groups
                .get_or_insert(at, *g, now_ns)
                .update(now_ns, s.count());
        }
    }

    /// Seconds covered by the rate column now: the last `RATE_SECS - 1` whole seconds and
    /// the part of the current one gone by (less at the start or after a reset).
    pub fn rate_window_secs(&self) -> f64 {
        let elapsed = self.now_ns.saturating_sub(self.since_ns) as f64 / NS as f64;
        let window = (RATE_SECS - 1) as f64 + (self.now_ns % NS) as f64 / NS as f64;
        elapsed.min(window).max(0.001)
    }

    /// Drops per second of a series, averaged over the rate window.
    pub fn rate(&self, series: &Series) -> f64 {
        series.recent(self.now_ns) as f64 / self.rate_window_secs()
    }
}

impl Default for History {
    fn default() -> History {
        History::new()
    }
}

/// Percentiles of per-second counts (p50, p99, max), through hdrhistogram.
pub fn percentiles(per_second: impl IntoIterator<Item = u64>) -> Option<(u64, u64, u64)> {
    let mut h: Histogram<u64> = Histogram::new(3).ok()?;
    for n in per_second {
        h.saturating_record(n);
    }
    summary(&h)
}

pub fn summary(h: &Histogram<u64>) -> Option<(u64, u64, u64)> {
    (!h.is_empty()).then(|| (h.value_at_quantile(0.5), h.value_at_quantile(0.99), h.max()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(n: u64) -> GroupStats {
        GroupStats {
            delivered: n,
            ..GroupStats::default()
        }
    }

    #[test]
    fn counts_land_in_the_second_of_the_snapshot() {
        let g = Group {
            location: 1,
            reason: 2,
            ethertype: 0,
            ip_proto: None,
            dport: None,
            netns: crate::pipeline::event::Netns::NONE,
            ifindex: 0,
        };
        let mut h = History::new();
        let t0 = 100 * NS;
        h.update(t0, t0, 0, &[]);
        // First sight: all in the second of the snapshot.
        h.update(t0, t0 + NS / 2, 10, &[(g, stats(10))]);
        // 20 more over 0.5 s .. 1.5 s: half in each second.
        h.update(t0, t0 + 3 * NS / 2, 30, &[(g, stats(30))]);
        h.update(t0, t0 + 3 * NS, 30, &[(g, stats(30))]);
        let s = &h.groups[&g];
        let per = s.per_second(t0 + 3 * NS);
        assert_eq!(&per[WINDOW - 4..], &[20, 10, 0, 0]);
        assert_eq!(s.recent(t0 + 3 * NS), 30);
        assert_eq!(h.rate_window_secs(), 3.0);
        assert_eq!(h.rate(s), 10.0);
        // Completed seconds went into the whole-run histogram: 20, 10, 0.
        assert_eq!(summary(&h.total_per_second), Some((10, 20, 20)));
        // Long after, everything has left the window.
        assert_eq!(s.per_second(t0 + 500 * NS), [0; WINDOW]);
        assert_eq!(s.first_seen_ns, t0 + NS / 2);
    }

    #[test]
    fn series_follow_their_group_when_snapshots_list_groups_in_another_order() {
        let group = |dport| Group {
            location: 1,
            reason: 2,
            ethertype: 0x0800,
            ip_proto: Some(17),
            dport: Some(dport),
            netns: crate::pipeline::event::Netns::NONE,
            ifindex: 0,
        };
        let (a, b, c) = (group(1), group(2), group(3));
        let mut h = History::new();
        h.update(0, NS / 2, 3, &[(a, stats(1)), (b, stats(2))]);
        assert!(h.groups.index.is_none(), "in order: no index");
        h.update(
            0,
            NS / 2 + 1,
            3,
            &[(a, stats(1)), (b, stats(2)), (c, stats(0))],
        );
        assert!(h.groups.index.is_none(), "a new group last: still none");
        // b is gone from this one: c comes where b was.
        h.update(0, 3 * NS / 2, 13, &[(a, stats(1)), (c, stats(10))]);
        assert!(h.groups.index.is_some());
        let per = |g: &Group| h.groups[g].per_second(3 * NS / 2)[WINDOW - 2..].to_vec();
        assert_eq!(per(&a), [1, 0]);
        assert_eq!(per(&b), [2, 0]);
        assert_eq!(
            per(&c).iter().sum::<u32>(),
            10,
            "c's 10, spread over its seconds"
        );
        assert_eq!(h.groups.get_at(1, &c), h.groups.get(&c));
        assert_eq!(h.groups.len(), 3);
    }

    #[test]
    fn counts_stay_exact_when_a_second_outgrows_a_byte() {
        let mut s = Series::new(0);
        // Each second's drops between two updates inside it.
        for (second, count) in [(0, 200), (1, 255), (2, 255 + 70_000), (3, 255 + 70_003)] {
            s.update(second * NS + 1, s.seen);
            s.update(second * NS + NS / 2, count);
            if second == 1 {
                assert!(
                    matches!(s.buckets, Buckets::Narrow(_)),
                    "small counts in bytes"
                );
            }
        }
        assert!(matches!(s.buckets, Buckets::Wide(_)));
        let per = s.per_second(7 * NS / 2);
        assert_eq!(&per[WINDOW - 4..], &[200, 55, 70_000, 3]);
        assert_eq!(s.recent(7 * NS / 2), 70_258);
    }

    #[test]
    fn a_gap_longer_than_the_window_clears_it() {
        let mut s = Series::new(0);
        s.update(0, 5);
        let completed = s.update(1000 * NS, 6);
        let seconds: u64 = completed.iter().map(|c| c.1).sum();
        assert_eq!(seconds, 1000, "every second of the gap is accounted for");
        assert_eq!(
            s.per_second(1000 * NS)[WINDOW - 2],
            1,
            "the drop lands in the last second before"
        );
        assert_eq!(s.per_second(1000 * NS).iter().sum::<u32>(), 1);
    }

    #[test]
    fn percentiles_of_a_minute() {
        let (p50, p99, max) = percentiles((1..=100).map(|n| n as u64)).unwrap();
        assert_eq!((p50, p99, max), (50, 99, 100));
        assert_eq!(percentiles(std::iter::empty()), None);
    }
}
