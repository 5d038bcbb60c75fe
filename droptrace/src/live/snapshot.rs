//! What a source (the live kernel watch, or a recording) hands the live view: the figures
//! of one moment and the names to show them with. The view never sees where they came from.
use std::{collections::HashMap, sync::Arc};

use crate::pipeline::{
    aggregate::{GroupStats, KernelCounters},
    event::{Drop, Group},
    interfaces::{InterfaceRow, Watched},
    names::Names,
    tcp::{FlowStats, TcpFlow},
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
    /// Whether `d` can diagnose a row here, or why not (a recording is not the live
    /// system whose state would be sampled).
    pub diagnosis: Result<(), String>,
}

impl Default for SourceInfo {
    fn default() -> SourceInfo {
        SourceInfo {
            source: String::new(),
            kernel: String::new(),
            filters: String::new(),
            debuginfo: Err("no debug info".into()),
            diagnosis: Err("no diagnosis from this source".into()),
        }
    }
}

/// Which row's details the view wants: the rows whose key under `grouping` is `key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

/// The diagnosis the view wants: of the row `row`, the `run`th asked for (a second `d`
/// on a row asks again, with a new run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiagnoseRequest {
    pub row: DetailRequest,
    pub run: u64,
}

/// How far the diagnosis of a row has got.
#[derive(Debug, Clone, PartialEq)]
pub enum Diagnosis {
    /// Under way: what it is doing now ("sampling netns web", "watching ...").
    Running(String),
    Done(RowDiagnosis),
    /// It could not be made (the namespace is gone, sampling failed).
    Failed(String),
    /// This source cannot diagnose (a recording).
    Unavailable(String),
}

impl Diagnosis {
    /// Whether it has come to an end (done, failed, or not possible).
    pub fn ended(&self) -> bool {
        !matches!(self, Diagnosis::Running(_))
    }
}

/// What `droptrace diagnose` would say about one row's drops in a short window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowDiagnosis {
    pub window_secs: f64,
    /// Drops of the row in the window (exact, from the kernel's counts).
    pub drops: u64,
    /// The namespaces sampled, as the diagnosis names them.
    pub namespaces: Vec<String>,
    /// Most important first.
    pub findings: Vec<RowFinding>,
    /// When the row did not drop in the window: what the findings are made of instead
    /// ("its 10 drops seen before, the last 31 s ago, and the state now").
    pub earlier: Option<String>,
}

/// One cause, with its evidence and fix, as the drill-down shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowFinding {
    /// The cause's id (`netfilter_rule`, `no_listener` ...).
    pub cause: String,
    pub drops: u64,
    /// Drops per second over the window.
    pub rate: f64,
    pub summary: String,
    pub evidence: Vec<String>,
    pub fix: String,
    /// Normal housekeeping, probably harmless.
    pub benign: bool,
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
    /// How far the diagnosis the view asked for last has got.
    pub diagnosis: Option<(DiagnoseRequest, Diagnosis)>,
    /// The source has ended (a recording played to its end).
    pub finished: bool,
    /// The interfaces' own drop counters that grew while watching, most first.
    pub interfaces: Vec<InterfaceRow>,
    /// What is watched beside kfree_skb, for a view with nothing to show to say so.
    pub watched: Watched,
    /// TCP retransmits and resets, all connections together; `None` when not watched.
    pub tcp: Option<TcpTotals>,
    /// TCP retransmits and resets by connection group, most first (at most
    /// `VIEW_TCP_FLOWS`).
    pub tcp_flows: Vec<(TcpFlow, FlowStats)>,
}

/// Connection groups a snapshot carries to the view.
pub const VIEW_TCP_FLOWS: usize = 1000;

/// What the header says of TCP.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpTotals {
    pub retransmits: u64,
    /// Of the retransmits delivered: after a drop seen here, after none.
    pub after_drops: u64,
    pub beyond_host: u64,
    pub resets_sent: u64,
    pub resets_received: u64,
    /// Runs of the TCP programs the kernel skipped (in no figure here).
    pub missed: u64,
    /// TCP tracing was turned off (`--no-tcp`).
    pub off: bool,
}

impl TcpTotals {
    /// From the pipeline's table; `None` when the TCP programs are not attached (and
    /// were not turned off either).
    pub fn of(tcp: &crate::pipeline::tcp::TcpTable) -> Option<TcpTotals> {
        if tcp.off {
            return Some(TcpTotals {
                off: true,
                ..TcpTotals::default()
            });
        }
        if !tcp.attached {
            return None;
        }
        let total = tcp.total();
        Some(TcpTotals {
            retransmits: tcp.counters.retransmits,
            after_drops: total.after_drops(),
            beyond_host: total.beyond(),
            resets_sent: tcp.counters.resets_sent,
            resets_received: tcp.counters.resets_received,
            missed: tcp.counters.missed,
            off: false,
        })
    }
}
