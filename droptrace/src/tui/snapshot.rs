//! What a source (the live kernel watch, or a recording) hands the live view: the figures
//! of one moment and the names to show them with. The view never sees where they came from.
use std::{collections::HashMap, sync::Arc};

use crate::pipeline::{
    aggregate::{GroupStats, KernelCounters},
    event::{Drop, Group},
    names::Names,
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
    /// The debug info is still being read (a vmlinux with DWARF takes a while to index).
    pub source_pending: bool,
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
