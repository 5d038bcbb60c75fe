//! What a source (the live kernel watch, or a recording) hands the live view: the figures
//! of one moment and the names to show them with. The view never sees where they came from.
use std::{collections::HashMap, sync::Arc};

use crate::{
    aggregate::{Aggregator, GroupStats, KernelCounters},
    event::{Drop, Group},
    resolve::{Location, Resolver},
};

use super::grouping::Grouping;

/// Static facts about the source, shown in the header.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceInfo {
    /// `live` or `recording FILE`.
    pub source: String,
    /// Kernel release the drops come from.
    pub kernel: String,
    /// Kernel-side filters, as `Filters::describe` says them.
    pub filters: String,
    /// Where source lines come from (a vmlinux with debug info), or why they do not.
    pub debuginfo: Result<String, String>,
}

impl Default for SourceInfo {
    fn default() -> SourceInfo {
        SourceInfo {
            source: String::new(),
            kernel: String::new(),
            filters: String::new(),
            debuginfo: Err("no debug info".into()),
        }
    }
}

/// Names for the raw values in groups, kept by the source and shared between snapshots.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Names {
    pub locations: HashMap<u64, Location>,
    pub reasons: HashMap<u32, String>,
    /// (netns inode, ifindex) -> interface name.
    pub interfaces: HashMap<(u32, u32), String>,
    /// netns inode -> a short label (`web`, `pid 812`, `host`).
    pub namespaces: HashMap<u32, String>,
}

impl Names {
    /// Names every location and reason of `agg` not named yet; true when something was added.
    pub fn learn(&mut self, agg: &Aggregator, resolver: &Resolver) -> bool {
        let mut added = false;
        for (g, _) in agg.groups() {
            if let std::collections::hash_map::Entry::Vacant(e) = self.locations.entry(g.location) {
                e.insert(resolver.location(g.location));
                added = true;
            }
            if let std::collections::hash_map::Entry::Vacant(e) = self.reasons.entry(g.reason) {
                if let Some(name) = resolver.reason(g.reason) {
                    e.insert(name);
                    added = true;
                }
            }
        }
        added
    }

    pub fn location(&self, address: u64) -> String {
        self.locations
            .get(&address)
            .map_or_else(|| format!("{address:#x}"), |l| l.display.clone())
    }

    pub fn function(&self, address: u64) -> Option<&str> {
        self.locations.get(&address)?.function.as_deref()
    }

    pub fn reason(&self, raw: u32) -> Option<&str> {
        self.reasons.get(&raw).map(String::as_str)
    }

    pub fn interface(&self, netns: u32, ifindex: u32) -> String {
        match (ifindex, self.interfaces.get(&(netns, ifindex))) {
            (0, _) => "-".into(),
            (_, Some(name)) => name.clone(),
            (i, None) => format!("if{i}"),
        }
    }

    pub fn namespace(&self, inode: u32) -> String {
        match (inode, self.namespaces.get(&inode)) {
            (0, _) => "-".into(),
            (_, Some(label)) => label.clone(),
            (i, None) => i.to_string(),
        }
    }
}

/// Which row's details the view wants: the rows whose key under `grouping` is `key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetailRequest {
    pub grouping: Grouping,
    pub key: Group,
}

/// The samples and source lines of the requested row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Detail {
    pub samples: Vec<Drop>,
    /// Drop location -> `file:line` of the drop site, when debug info is there.
    pub source_lines: HashMap<u64, String>,
}

/// The figures of one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// The source's clock (CLOCK_BOOTTIME ns for live drops and recordings).
    pub now_ns: u64,
    /// When the source started, on the same clock.
    pub started_ns: u64,
    pub counters: KernelCounters,
    /// Drops of groups beyond the aggregator's cap.
    pub overflow: u64,
    /// Every group, interface and namespace kept apart.
    pub groups: Vec<(Group, GroupStats)>,
    pub names: Arc<Names>,
    /// Answer to the view's latest `DetailRequest`.
    pub detail: Option<(DetailRequest, Detail)>,
    /// The source has ended (a recording played to its end).
    pub finished: bool,
}

impl Snapshot {
    /// Takes the aggregator's figures at `now_ns`, with the samples of `request`.
    pub fn take(
        agg: &Aggregator,
        names: &Arc<Names>,
        started_ns: u64,
        now_ns: u64,
        request: Option<DetailRequest>,
        mut source_line: impl FnMut(u64) -> Option<String>,
    ) -> Snapshot {
        let detail = request.map(|r| {
            let member = |g: &Group| r.grouping.key(g) == r.key;
            let source_lines = agg
                .groups()
                .filter(|(g, s)| s.count() > 0 && member(g))
                .map(|(g, _)| g.location)
                .collect::<std::collections::HashSet<_>>()
                .into_iter()
                .take(32)
                .filter_map(|loc| source_line(loc).map(|l| (loc, l)))
                .collect();
            (
                r,
                Detail {
                    samples: agg.samples(member),
                    source_lines,
                },
            )
        });
        Snapshot {
            now_ns,
            started_ns,
            counters: agg.counters(),
            overflow: agg.overflow(),
            groups: agg
                .groups()
                .filter(|(_, s)| s.count() > 0)
                .map(|(g, s)| (*g, *s))
                .collect(),
            names: Arc::clone(names),
            detail,
            finished: false,
        }
    }
}
