//! Drops over time by reason and by site, for the HTML report's charts.
use std::ops::ControlFlow;

use crate::{
    html::Timeline,
    pipeline::{event::Drop, names::Names, Sink},
};

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
