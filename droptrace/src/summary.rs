//! The JSON summary printed when a run stops: a stable schema that scripts rely on.
use serde::Serialize;

use crate::{aggregate::Aggregator, resolve::Resolver};

#[derive(Debug, Serialize, PartialEq)]
pub struct Summary {
    /// Every drop that matched the filters (exact, kernel-counted).
    pub total: u64,
    /// Matched drops whose event did not fit in the ring buffer; still counted in `total`
    /// and in their group.
    pub lost_events: u64,
    /// Drops the kernel did not run droptrace's program for (BPF recursion protection):
    /// not in `total`.
    pub missed: u64,
    /// Lost drops that could not be attributed to a group (the lost-group map was full).
    pub unattributed: u64,
    pub groups: Vec<GroupSummary>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct GroupSummary {
    pub function: Option<String>,
    pub offset: Option<u64>,
    pub module: Option<String>,
    /// `function+0xoff` (or the address when symbols are hidden).
    pub location: String,
    pub address: String,
    pub reason: Option<String>,
    pub reason_code: u32,
    pub family: Option<&'static str>,
    pub protocol: Option<String>,
    pub dport: Option<u16>,
    pub count: u64,
    /// Of `count`, the drops whose event was lost.
    pub lost: u64,
}

impl Summary {
    pub fn new(agg: &Aggregator, resolver: &Resolver) -> Summary {
        let counters = agg.counters();
        let groups = agg
            .ranked()
            .into_iter()
            .map(|(g, s)| {
                let loc = resolver.location(g.location);
                GroupSummary {
                    function: loc.function,
                    offset: loc.offset,
                    module: loc.module,
                    location: loc.display,
                    address: format!("{:#x}", g.location),
                    reason: resolver.reason(g.reason),
                    reason_code: g.reason,
                    family: g.family(),
                    protocol: g.protocol(),
                    dport: g.dport,
                    count: s.count(),
                    lost: s.lost,
                }
            })
            .collect();
        Summary {
            total: counters.matched,
            lost_events: counters.lost,
            missed: counters.missed,
            unattributed: counters.lost_ungrouped,
            groups,
        }
    }
}
