//! The live view's state; `update` (in `update.rs`) is the one function that changes it.
//! Nothing here draws, reads the clock or touches the terminal.
use rustc_hash::FxHashMap as HashMap;

use crate::pipeline::{
    aggregate::GroupStats,
    event::Group,
    tcp::{DropCause, FlowStats, TcpFlow},
};

use super::{
    filter::ViewFilter,
    history::{percentiles, History, WINDOW},
};
use crate::live::{
    grouping::{Grouping, Sort},
    snapshot::{DetailRequest, DiagnoseRequest, Diagnosis, Snapshot, SourceInfo},
};

/// A key, as the view understands it (the runtime maps terminal events to these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Char(char),
    Enter,
    Esc,
    Backspace,
    Up,
    Down,
    PageUp,
    PageDown,
    Home,
    End,
    Tab,
    BackTab,
    CtrlC,
    /// Clears the filter being typed.
    CtrlU,
    /// Takes the last word of the filter being typed.
    CtrlW,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Snapshot(Box<Snapshot>),
    Key(Key),
    /// Rows of the table that fit on screen, for paging.
    PageSize(usize),
    /// The drill-down at the terminal's size: its lines, and how many fit on screen.
    DetailSize {
        lines: usize,
        shown: usize,
    },
}

/// What fills the screen below the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Table,
    /// The selected row's details.
    Detail(DetailRequest),
    Help,
    /// Typing a filter; the text so far.
    Filter(String),
    /// TCP connection groups: retransmits (after drops here, beyond) and resets.
    Tcp,
    /// One connection group, with the drop groups that explain its retransmits.
    TcpDetail(TcpFlow),
}

/// Seconds a new row stays marked.
pub const NEW_FOR_NS: u64 = 5_000_000_000;

/// One row of the table, as shown.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub key: Group,
    /// Figures since the last reset.
    pub stats: GroupStats,
    pub rate: f64,
    /// When the row first appeared (for the + of a new row).
    pub first_seen_ns: u64,
    /// Its first drop since the last reset (the First column).
    pub first_ns: u64,
    pub new: bool,
}

#[derive(Debug, Clone)]
pub struct State {
    pub info: SourceInfo,
    /// The newest snapshot.
    pub latest: Snapshot,
    pub history: History,
    /// While paused: what the screen shows (snapshot and history at the pause).
    pub frozen: Option<Box<(Snapshot, History)>>,
    pub grouping: Grouping,
    pub sort: Sort,
    pub filter: ViewFilter,
    /// Index of the selected row in `rows()`.
    pub selected: usize,
    pub page: usize,
    pub mode: Mode,
    /// The drill-down's first line on screen.
    pub scroll: usize,
    /// The drill-down's lines and how many fit, as the runtime last measured them.
    pub(super) detail_size: (usize, usize),
    /// Counts at the last reset (`r`), subtracted from what is shown.
    pub baseline: Baseline,
    /// A one-line message (a filter error, "counters reset").
    pub message: Option<String>,
    pub color: bool,
    pub quit: bool,
    /// The diagnosis of each row that was diagnosed (`d`), with the run that made it.
    pub diagnoses: HashMap<DetailRequest, (u64, Diagnosis)>,
    /// The diagnosis the source works on.
    pub(super) diagnosing: Option<DiagnoseRequest>,
    /// Diagnoses asked for so far: the run of the next one.
    pub(super) runs: u64,
    /// The table's rows, derived from the rest by `update` (drawing and keys read them;
    /// with tens of thousands of groups, folding them once per change is what keeps keys
    /// quick).
    pub(super) rows: Vec<Row>,
    /// With a view filter: the figures of the rows it lets through, derived with them.
    pub(super) filtered: Option<Filtered>,
    /// The selected connection group in the TCP view, by place in `tcp_rows()`.
    pub tcp_selected: usize,
    /// The selected drop group in a connection group's drill-down, by place in
    /// `tcp_explaining()`'s groups.
    pub tcp_cause_selected: usize,
}

/// A drop group that explains retransmits of a connection group: the cause the kernel
/// marked on the socket, how many retransmits followed it, and the drop table's groups of
/// that site, reason, interface and namespace (one per protocol and port).
#[derive(Debug, Clone, PartialEq)]
pub struct Explaining {
    pub cause: DropCause,
    pub retransmits: u64,
    pub groups: Vec<(Group, GroupStats)>,
}

/// The figures of what a view filter lets through, for the header.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filtered {
    pub total: u64,
    pub lost: u64,
    pub rate: f64,
    /// Drops per second of these rows over the last `seconds` s: p50, p99, max.
    pub percentiles: Option<(u64, u64, u64)>,
    pub seconds: usize,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Baseline {
    pub groups: HashMap<Group, GroupStats>,
    pub total: u64,
    pub lost: u64,
    pub at_ns: Option<u64>,
}

impl State {
    pub fn new(info: SourceInfo, color: bool) -> State {
        State {
            info,
            latest: Snapshot::default(),
            history: History::new(),
            frozen: None,
            grouping: Grouping::default(),
            sort: Sort::default(),
            filter: ViewFilter::default(),
            selected: 0,
            page: 10,
            mode: Mode::Table,
            scroll: 0,
            detail_size: (0, 0),
            baseline: Baseline::default(),
            message: None,
            color,
            quit: false,
            diagnoses: HashMap::default(),
            diagnosing: None,
            runs: 0,
            rows: Vec::new(),
            filtered: None,
            tcp_selected: 0,
            tcp_cause_selected: 0,
        }
    }

    /// The TCP view's rows: connection groups, most retransmits and resets first.
    pub fn tcp_rows(&self) -> &[(TcpFlow, FlowStats)] {
        &self.shown().0.tcp_flows
    }

    /// A connection group's figures in the shown snapshot.
    pub fn tcp_flow(&self, flow: &TcpFlow) -> Option<&FlowStats> {
        self.tcp_rows()
            .iter()
            .find(|(f, _)| f == flow)
            .map(|(_, s)| s)
    }

    /// What explains a connection group's retransmits: each drop cause, most first, with
    /// the drop table's groups it stands for (most drops first).
    pub fn tcp_explaining(&self, flow: &TcpFlow) -> Vec<Explaining> {
        let Some(stats) = self.tcp_flow(flow) else {
            return Vec::new();
        };
        let snap = self.shown().0;
        stats
            .causes()
            .into_iter()
            .map(|(cause, retransmits)| {
                let mut groups: Vec<(Group, GroupStats)> = snap
                    .groups
                    .iter()
                    .filter(|(g, _)| {
                        g.location == cause.location
                            && g.reason == cause.reason
                            && g.netns == cause.netns
                            && g.ifindex == cause.ifindex
                    })
                    .copied()
                    .collect();
                groups.sort_by(|a, b| b.1.count().cmp(&a.1.count()).then(a.0.cmp(&b.0)));
                Explaining {
                    cause,
                    retransmits,
                    groups,
                }
            })
            .collect()
    }

    /// The drop groups of a connection group's drill-down, in the order shown (the
    /// selection moves over them).
    pub fn tcp_explaining_groups(&self, flow: &TcpFlow) -> Vec<Group> {
        self.tcp_explaining(flow)
            .into_iter()
            .flat_map(|e| e.groups.into_iter().map(|(g, _)| g))
            .collect()
    }

    /// The snapshot and history on screen (frozen while paused).
    pub fn shown(&self) -> (&Snapshot, &History) {
        match &self.frozen {
            Some(f) => (&f.0, &f.1),
            None => (&self.latest, &self.history),
        }
    }

    pub fn paused(&self) -> bool {
        self.frozen.is_some()
    }

    /// What the source should send samples for.
    pub fn detail_request(&self) -> Option<DetailRequest> {
        match &self.mode {
            Mode::Detail(r) => Some(*r),
            _ => None,
        }
    }

    /// The diagnosis the source should run, or go on with.
    pub fn diagnose_request(&self) -> Option<DiagnoseRequest> {
        self.diagnosing
    }

    /// The diagnosis of a row, if it was diagnosed.
    pub fn diagnosis(&self, row: &DetailRequest) -> Option<&Diagnosis> {
        self.diagnoses.get(row).map(|(_, d)| d)
    }

    /// Total drops and lost events shown (since the last reset): the view filter's rows'
    /// when there is one.
    pub fn totals(&self) -> (u64, u64) {
        match &self.filtered {
            Some(f) => (f.total, f.lost),
            None => self.totals_in_all(),
        }
    }

    /// What the view filter lets through, when there is one.
    pub fn filtered(&self) -> Option<&Filtered> {
        self.filtered.as_ref()
    }

    /// Total drops and lost events since the last reset, whatever the view filter.
    pub fn totals_in_all(&self) -> (u64, u64) {
        let c = self.shown().0.counters;
        (
            c.matched.saturating_sub(self.baseline.total),
            c.lost.saturating_sub(self.baseline.lost),
        )
    }

    /// The table's rows: groups folded by the grouping, filtered, sorted.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    pub(super) fn fold_rows(&self) -> (Vec<Row>, Option<Filtered>) {
        let (snap, history) = self.shown();
        let filtering = !self.filter.is_empty();
        let mut per_second = [0u64; WINDOW];
        // Rows side by side and an index to them: a map of rows would be kept up to half
        // empty, with a port scan's tens of thousands of them.
        let mut index: HashMap<Group, u32> = HashMap::default();
        let mut rows: Vec<Row> = Vec::new();
        for (at, (g, s)) in snap.groups.iter().enumerate() {
            if !self.filter.accepts(g, &snap.names) {
                continue;
            }
            let mut s = *s;
            if let Some(b) = self.baseline.groups.get(g) {
                s = s.since(b);
                if s.count() == 0 {
                    continue;
                }
            }
            let series = history.groups.get_at(at, g);
            let key = self.grouping.key(g);
            let at = *index.entry(key).or_insert_with(|| {
                rows.push(Row {
                    key,
                    stats: GroupStats::default(),
                    rate: 0.0,
                    first_seen_ns: u64::MAX,
                    first_ns: u64::MAX,
                    new: false,
                });
                rows.len() as u32 - 1
            });
            let row = &mut rows[at as usize];
            row.stats.merge(&s);
            if let (true, Some(series)) = (filtering, series) {
                for (o, n) in per_second.iter_mut().zip(series.per_second(history.now_ns)) {
                    *o += u64::from(n);
                }
            }
            if let Some(series) = series {
                row.rate += history.rate(series);
                row.first_seen_ns = row.first_seen_ns.min(series.first_seen_ns);
                row.first_ns = row.first_ns.min(series.first_ns.unwrap_or(u64::MAX));
            }
        }
        drop(index);
        let now = history.now_ns;
        for r in &mut rows {
            if r.first_seen_ns == u64::MAX {
                r.first_seen_ns = now;
            }
            if r.first_ns == u64::MAX {
                r.first_ns = r.first_seen_ns.max(history.since_ns);
            }
            r.new = now.saturating_sub(r.first_seen_ns) < NEW_FOR_NS
                && r.first_seen_ns > history.started_ns;
        }
        self.sort_rows(&mut rows, snap);
        let filtered = filtering.then(|| {
            let seconds = (history.now_ns.saturating_sub(history.since_ns) / 1_000_000_000 + 1)
                .min(WINDOW as u64) as usize;
            Filtered {
                total: rows.iter().map(|r| r.stats.count()).sum(),
                lost: rows.iter().map(|r| r.stats.lost).sum(),
                rate: rows.iter().map(|r| r.rate).sum(),
                percentiles: percentiles(per_second[WINDOW - seconds..].iter().copied()),
                seconds,
            }
        });
        (rows, filtered)
    }

    pub(super) fn sort_rows(&self, rows: &mut [Row], snap: &Snapshot) {
        let names = &snap.names;
        let by_count = |a: &Row, b: &Row| b.stats.count().cmp(&a.stats.count());
        match self.sort {
            Sort::Count => rows.sort_by(|a, b| by_count(a, b).then(a.key.cmp(&b.key))),
            Sort::Rate => rows.sort_by(|a, b| {
                b.rate
                    .total_cmp(&a.rate)
                    .then(by_count(a, b))
                    .then(a.key.cmp(&b.key))
            }),
            Sort::Name => {
                rows.sort_by_cached_key(|r| (self.grouping.row_name(&r.key, names), r.key));
            }
            Sort::Port => rows.sort_by(|a, b| {
                (a.key.dport.is_none(), a.key.dport, a.key).cmp(&(
                    b.key.dport.is_none(),
                    b.key.dport,
                    b.key,
                ))
            }),
            Sort::Recency => rows.sort_by(|a, b| {
                b.stats
                    .last_ns
                    .cmp(&a.stats.last_ns)
                    .then(by_count(a, b))
                    .then(a.key.cmp(&b.key))
            }),
        }
    }

    /// Members of a row, finest grouping, in the shown snapshot, since the last reset.
    pub fn members(&self, request: &DetailRequest) -> Vec<(Group, GroupStats)> {
        let (snap, history) = self.shown();
        let mut out: Vec<_> = snap
            .groups
            .iter()
            .enumerate()
            .filter(|(_, (g, _))| request.grouping.key(g) == request.key)
            .filter_map(|(at, (g, s))| {
                let Some(before) = self.baseline.groups.get(g) else {
                    return Some((*g, *s));
                };
                let mut s = s.since(before);
                // The first drop since the reset, as the history saw it (found by place:
                // a port scan's row has tens of thousands of members).
                s.first_ns = history
                    .groups
                    .get_at(at, g)
                    .and_then(|series| series.first_ns)
                    .unwrap_or(history.since_ns)
                    .max(s.first_ns);
                (s.count() > 0).then_some((*g, s))
            })
            .collect();
        out.sort_by(|a, b| b.1.count().cmp(&a.1.count()).then(a.0.cmp(&b.0)));
        out
    }
}
