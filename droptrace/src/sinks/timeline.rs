//! Drops over time by reason and by site, for the HTML report's charts.
use std::{collections::HashMap, ops::ControlFlow};

use crate::pipeline::{event::Drop, names::Names, Sink};

pub struct TimelineSink {
    started_ns: u64,
    pub by_reason: Timeline,
    pub by_site: Timeline,
}

impl TimelineSink {
    /// Seconds are counted from `started_ns` (the source's clock).
    pub fn new(started_ns: u64) -> TimelineSink {
        TimelineSink {
            started_ns,
            by_reason: Timeline::default(),
            by_site: Timeline::default(),
        }
    }
}

impl Sink for TimelineSink {
    fn drop(&mut self, drop: &Drop, _packet: &[u8], names: &Names) -> ControlFlow<()> {
        let second = drop.timestamp_ns.saturating_sub(self.started_ns) / 1_000_000_000;
        let reason = names
            .reason(drop.reason)
            .unwrap_or_else(|| "no reason (kernel before 5.17)".to_owned());
        self.by_reason.add(&reason, second, 1);
        match names.function(drop.location) {
            Some(f) => self.by_site.add(f, second, 1),
            None => self
                .by_site
                .add(&names.location_display(drop.location), second, 1),
        }
        ControlFlow::Continue(())
    }
}

/// Counts by series (a reason, a site) and second since the start.
#[derive(Debug, Default)]
pub struct Timeline {
    keys: Vec<String>,
    index: HashMap<String, usize>,
    counts: HashMap<(usize, u64), u64>,
    last_second: u64,
}

/// One series of the chart, in buckets of equal width.
#[derive(Debug, PartialEq)]
pub struct Series {
    pub name: String,
    pub total: u64,
    pub buckets: Vec<u64>,
}

/// Bucket widths people read easily, in seconds.
const WIDTHS: &[u64] = &[
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21_600, 43_200, 86_400,
];
/// At most this many bars.
const MAX_BUCKETS: u64 = 120;
impl Timeline {
    /// `n` drops of `key`, `second` seconds after the start.
    pub fn add(&mut self, key: &str, second: u64, n: u64) {
        let k = match self.index.get(key) {
            Some(&k) => k,
            None => {
                self.keys.push(key.to_owned());
                self.index.insert(key.to_owned(), self.keys.len() - 1);
                self.keys.len() - 1
            }
        };
        *self.counts.entry((k, second)).or_default() += n;
        self.last_second = self.last_second.max(second);
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// The bucket width in seconds and the `max` biggest series (ties by name), the
    /// rest summed as "other".
    pub fn series(&self, max: usize) -> (u64, Vec<Series>) {
        let span = self.last_second + 1;
        let width = WIDTHS
            .iter()
            .copied()
            .find(|w| span.div_ceil(*w) <= MAX_BUCKETS)
            .unwrap_or_else(|| span.div_ceil(MAX_BUCKETS));
        let buckets = usize::try_from(span.div_ceil(width)).unwrap_or(1);
        let mut all: Vec<Series> = self
            .keys
            .iter()
            .map(|name| Series {
                name: name.clone(),
                total: 0,
                buckets: vec![0; buckets],
            })
            .collect();
        for (&(k, second), &n) in &self.counts {
            let s = &mut all[k];
            s.total += n;
            s.buckets[usize::try_from(second / width).unwrap_or(0)] += n;
        }
        all.sort_by(|a, b| b.total.cmp(&a.total).then_with(|| a.name.cmp(&b.name)));
        if all.len() > max {
            let rest = all.split_off(max);
            let mut other = Series {
                name: format!("{} others", rest.len()),
                total: 0,
                buckets: vec![0; buckets],
            };
            for s in rest {
                other.total += s.total;
                for (o, n) in other.buckets.iter_mut().zip(s.buckets) {
                    *o += n;
                }
            }
            all.push(other);
        }
        (width, all)
    }
}
