//! `d` in a live run's view: what `droptrace diagnose` does, for one row. On threads of
//! their own, the row's namespaces are sampled; the row's drops are watched for a short
//! window on the source's clock; the namespaces are sampled again and the engine run.
//! The pipeline's tick only looks at how far that has got, so the view keeps updating.
//! The sampling is the probe's, through [`RowSampler`]; the session is ordinary code.
use std::{
    collections::{BTreeMap, HashMap},
    sync::mpsc::{self, Receiver, TryRecvError},
};

use std::sync::Arc;

use super::{
    engine::{DropGroup, Finding, NamespaceNames},
    raw::RawSnapshot,
    row::{details_unknown, diagnose_row, drop_groups, RowWindow},
};
use crate::{
    live::{
        snapshot::{DetailRequest, DiagnoseRequest, Diagnosis, RowDiagnosis, RowFinding},
        RowDiagnoser,
    },
    pipeline::{
        aggregate::GroupStats,
        event::{Group, Netns},
        names::Workload,
        sink::Moment,
    },
};

/// What the session asks of the host, on threads of its own: the probe opens and samples
/// namespaces (`probe::row_sampler`).
pub trait RowSampler: Send + Sync + 'static {
    /// What is held between the two samples (the namespaces, open).
    type Held: Send + 'static;
    /// droptrace's own namespace.
    fn own_inode(&self) -> u32;
    /// Whether the kernel gives packet details (its BTF).
    fn has_btf(&self) -> bool;
    /// Opens the namespaces `inodes` and samples them; `places` names them for a message.
    fn before(&self, inodes: &[u32], places: &str) -> Result<Before<Self::Held>, String>;
    /// Samples what `before` holds again, and names its namespaces with `workloads`.
    fn after(&self, before: Before<Self::Held>, workloads: HashMap<u32, Workload>) -> After;
}

/// The namespaces as they were before the window.
pub struct Before<H> {
    pub held: H,
    pub snapshots: BTreeMap<u32, RawSnapshot>,
    /// Lines of the kernel log saying the conntrack table was full, so far.
    pub conntrack_log_lines: usize,
    /// When the sample began: counters grow from then to the end of the next.
    pub sampling: std::time::Instant,
}

/// The namespaces again, after the window.
pub struct After {
    pub before: BTreeMap<u32, RawSnapshot>,
    pub after: BTreeMap<u32, RawSnapshot>,
    pub samples_secs: f64,
    /// "conntrack table full" lines logged between the two samples.
    pub conntrack_log_lines: usize,
    pub names: Box<dyn NamespaceNames + Send>,
    /// The namespaces held, in order.
    pub inodes: Vec<u32>,
}

const S: u64 = 1_000_000_000;
/// The window lasts at least this long, and until the row drops again...
const MIN_WINDOW_NS: u64 = 2 * S;
/// ... but no longer than this.
const MAX_WINDOW_NS: u64 = 10 * S;
/// A row that had not dropped for this long when `d` was pressed has stopped: a shortest
/// window without drops is enough to say so.
const QUIET_NS: u64 = 30 * S;
/// Namespaces of a row sampled at most (the ones with most drops).
const MAX_NAMESPACES: usize = 4;
/// Drop sites of a row whose packets the findings quote (the ones with most drops).
const MAX_SITES_SAMPLED: usize = 16;

/// Diagnoses one row at a time: a new request replaces the one before.
pub struct LiveDiagnoser<S: RowSampler> {
    sampler: Arc<S>,
    job: Option<Job<S::Held>>,
}

impl<S: RowSampler> LiveDiagnoser<S> {
    pub fn new(sampler: S) -> LiveDiagnoser<S> {
        LiveDiagnoser {
            sampler: Arc::new(sampler),
            job: None,
        }
    }
}

struct Job<H> {
    request: DiagnoseRequest,
    /// The namespaces sampled, as the view labels them.
    places: String,
    phase: Phase<H>,
}

enum Phase<H> {
    /// The namespaces are being sampled before the window.
    Sampling(Receiver<Result<Before<H>, String>>),
    /// The window: the row's figures at its start.
    Watching {
        sampled: Before<H>,
        start: HashMap<Group, GroupStats>,
        since_ns: u64,
        /// The row had not dropped for `QUIET_NS` when the window began: a shortest
        /// window without drops says it has stopped.
        quiet: bool,
    },
    /// Sampled again, the engine runs.
    Concluding(Receiver<Result<RowDiagnosis, String>>),
    Ended(Diagnosis),
}

impl<S: RowSampler> RowDiagnoser for LiveDiagnoser<S> {
    fn tick(&mut self, request: &DiagnoseRequest, at: &Moment<'_>) -> Diagnosis {
        let (phase, places) = match self.job.take() {
            Some(job) if job.request == *request => (job.phase, job.places),
            // Only one sampling runs at a time: a new request waits for the one before.
            Some(job) if job.phase.busy() => {
                self.job = Some(job);
                return Diagnosis::Running(
                    "waiting for the previous diagnosis's sampling to end".into(),
                );
            }
            _ => start(&self.sampler, &request.row, at),
        };
        let (phase, status) = step(&self.sampler, phase, &request.row, &places, at);
        self.job = Some(Job {
            request: *request,
            places,
            phase,
        });
        status
    }
}

impl<H> Phase<H> {
    /// Whether a thread of it is still sampling (its answer, if one came, is dropped).
    fn busy(&self) -> bool {
        match self {
            Phase::Sampling(rx) => waiting(rx),
            Phase::Concluding(rx) => waiting(rx),
            _ => false,
        }
    }
}

fn waiting<T>(rx: &Receiver<T>) -> bool {
    matches!(rx.try_recv(), Err(TryRecvError::Empty))
}

/// The row's groups with drops, and their figures.
fn members(row: &DetailRequest, at: &Moment<'_>) -> HashMap<Group, GroupStats> {
    at.agg
        .groups()
        .filter(|(g, s)| s.count() > 0 && row.grouping.key(g) == row.key)
        .map(|(g, s)| (*g, *s))
        .collect()
}

/// The namespace of the window's drops on this inode (the latest, by cookie, when the
/// kernel gave one inode to two of them).
fn namespace_of(at: &Moment<'_>, inode: u32) -> Netns {
    at.agg
        .groups()
        .map(|(g, _)| g.netns)
        .filter(|n| n.inode == inode)
        .max()
        .unwrap_or(Netns::inode(inode))
}

/// Starts sampling the namespaces the row's drops were in; says which.
fn start<S: RowSampler>(
    sampler: &Arc<S>,
    row: &DetailRequest,
    at: &Moment<'_>,
) -> (Phase<S::Held>, String) {
    let own = sampler.own_inode();
    let mut by_netns: HashMap<u32, u64> = HashMap::new();
    for (g, s) in members(row, at) {
        let netns = if g.netns.is_none() {
            own
        } else {
            g.netns.inode
        };
        *by_netns.entry(netns).or_default() += s.count();
    }
    if by_netns.is_empty() {
        let none = Diagnosis::Failed("this row has no drops to diagnose".into());
        return (Phase::Ended(none), String::new());
    }
    let mut inodes: Vec<(u32, u64)> = by_netns.into_iter().collect();
    inodes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let inodes: Vec<u32> = inodes
        .into_iter()
        .take(MAX_NAMESPACES)
        .map(|i| i.0)
        .collect();
    let places = inodes
        .iter()
        .map(|i| at.names.namespace(namespace_of(at, *i)))
        .collect::<Vec<_>>()
        .join(", ");
    let named = places.clone();
    let sampler = Arc::clone(sampler);
    let phase = spawn(Phase::Sampling, move || sampler.before(&inodes, &named));
    (phase, places)
}

/// Runs `work` on a thread of its own; the phase waits for its answer.
fn spawn<T: Send + 'static, H>(
    phase: fn(Receiver<Result<T, String>>) -> Phase<H>,
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Phase<H> {
    let (tx, rx) = mpsc::sync_channel(1);
    let started = std::thread::Builder::new()
        .name("droptrace-diagnose".into())
        .spawn(move || {
            // The view may have moved on: then nobody waits for the answer.
            let _ = tx.send(work());
        });
    match started {
        Ok(_) => phase(rx),
        Err(e) => Phase::Ended(Diagnosis::Failed(format!(
            "starting the sampling thread: {e}"
        ))),
    }
}

/// One tick of a job: its next phase and what to tell the view.
fn step<S: RowSampler>(
    sampler: &Arc<S>,
    phase: Phase<S::Held>,
    row: &DetailRequest,
    places: &str,
    at: &Moment<'_>,
) -> (Phase<S::Held>, Diagnosis) {
    let running = |what: String| Diagnosis::Running(what);
    let before = || running(format!("sampling {places} (before the window)"));
    let again = || running(format!("sampling {places} again (after the window)"));
    match phase {
        Phase::Sampling(rx) => match rx.try_recv() {
            Ok(Ok(sampled)) => {
                let start = members(row, at);
                let last = start.values().map(|s| s.last_ns).max().unwrap_or(0);
                let next = Phase::Watching {
                    sampled,
                    start,
                    since_ns: at.now_ns,
                    quiet: at.now_ns.saturating_sub(last) >= QUIET_NS,
                };
                (next, running(watching(0, 0)))
            }
            Ok(Err(why)) => ended(Diagnosis::Failed(why)),
            Err(TryRecvError::Empty) => (Phase::Sampling(rx), before()),
            Err(TryRecvError::Disconnected) => ended(lost_thread()),
        },
        Phase::Watching {
            sampled,
            start,
            since_ns,
            quiet,
        } => {
            let elapsed = at.now_ns.saturating_sub(since_ns);
            let window = in_window(&members(row, at), &start);
            let drops: u64 = window.iter().map(|(_, s)| s.count()).sum();
            if window_closes(elapsed, drops, quiet) {
                // A row that has stopped dropping is diagnosed from its figures so far
                // and the state now, and says so.
                let (window, since_ns, earlier) = match drops {
                    0 => {
                        let all: Vec<(Group, GroupStats)> = members(row, at).into_iter().collect();
                        let note = earlier_note(&all, at.now_ns);
                        (all, 0, Some(note))
                    }
                    _ => (window, since_ns, None),
                };
                let samples = window_samples(&window, row, at, since_ns);
                let groups = drop_groups(&window, &samples, at.names);
                let workloads = at
                    .names
                    .workloads
                    .iter()
                    .map(|(ns, w)| (ns.inode, w.clone()))
                    .collect();
                let secs = elapsed as f64 / 1e9;
                let sampler = Arc::clone(sampler);
                let next = spawn(Phase::Concluding, move || {
                    let own = sampler.own_inode();
                    let btf = sampler.has_btf();
                    let after = sampler.after(sampled, workloads);
                    Ok(conclude(after, own, btf, &groups, secs, earlier))
                });
                (next, again())
            } else {
                let next = Phase::Watching {
                    sampled,
                    start,
                    since_ns,
                    quiet,
                };
                (next, running(watching(elapsed, drops)))
            }
        }
        Phase::Concluding(rx) => match rx.try_recv() {
            Ok(Ok(report)) => ended(Diagnosis::Done(report)),
            Ok(Err(why)) => ended(Diagnosis::Failed(why)),
            Err(TryRecvError::Empty) => (Phase::Concluding(rx), again()),
            Err(TryRecvError::Disconnected) => ended(lost_thread()),
        },
        Phase::Ended(d) => (Phase::Ended(d.clone()), d),
    }
}

/// Recent packets of the window's drop sites with most drops (a few passes over the
/// groups, however many sites a row has).
fn window_samples(
    window: &[(Group, GroupStats)],
    row: &DetailRequest,
    at: &Moment<'_>,
    since_ns: u64,
) -> Vec<crate::pipeline::event::Drop> {
    let mut sites: HashMap<Group, u64> = HashMap::new();
    for (g, s) in window {
        *sites.entry(g.site()).or_default() += s.count();
    }
    let mut sites: Vec<(Group, u64)> = sites.into_iter().collect();
    sites.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    sites
        .into_iter()
        .take(MAX_SITES_SAMPLED)
        .flat_map(|(site, _)| {
            at.agg
                .samples(|g| g.site() == site && row.grouping.key(g) == row.key)
        })
        .filter(|d| d.timestamp_ns >= since_ns)
        .collect()
}

/// The window ends once it has lasted long enough and seen a drop of the row (or, for a
/// row that was quiet already, none), or at most.
fn window_closes(elapsed_ns: u64, drops: u64, quiet: bool) -> bool {
    (elapsed_ns >= MIN_WINDOW_NS && (drops > 0 || quiet)) || elapsed_ns >= MAX_WINDOW_NS
}

fn ended<H>(d: Diagnosis) -> (Phase<H>, Diagnosis) {
    (Phase::Ended(d.clone()), d)
}

fn lost_thread() -> Diagnosis {
    Diagnosis::Failed("the sampling thread ended without an answer".into())
}

fn watching(elapsed_ns: u64, drops: u64) -> String {
    format!(
        "watching this row's drops: {drops} in {:.1} s (at least {} s and one drop, at most {} s)",
        elapsed_ns as f64 / 1e9,
        MIN_WINDOW_NS / S,
        MAX_WINDOW_NS / S
    )
}

/// The row's figures since the window began: what grew.
fn in_window(
    now: &HashMap<Group, GroupStats>,
    start: &HashMap<Group, GroupStats>,
) -> Vec<(Group, GroupStats)> {
    now.iter()
        .filter_map(|(g, s)| {
            let before = start.get(g).copied().unwrap_or_default();
            let grown = s.since(&before);
            (grown.count() > 0).then_some((*g, grown))
        })
        .collect()
}

/// "its 10 drops seen before, the last 31 s ago, and the state now": what a row that did
/// not drop in the window is diagnosed from.
fn earlier_note(groups: &[(Group, GroupStats)], now_ns: u64) -> String {
    let drops: u64 = groups.iter().map(|(_, s)| s.count()).sum();
    let last = groups.iter().map(|(_, s)| s.last_ns).max().unwrap_or(0);
    format!(
        "its {drops} drops seen before (the last {:.0} s ago) and the state now: counters \
         cannot show their growth",
        now_ns.saturating_sub(last) as f64 / 1e9
    )
}

/// Runs the engine on the two samples (on the job's thread). `earlier`: the row did not
/// drop in the window, `groups` are its figures so far, and no sample precedes them.
fn conclude(
    sampled: After,
    host_netns: u32,
    has_btf: bool,
    groups: &[DropGroup],
    secs: f64,
    earlier: Option<String>,
) -> RowDiagnosis {
    let none = BTreeMap::new();
    let before = match earlier {
        Some(_) => &none,
        None => &sampled.before,
    };
    let findings = diagnose_row(&RowWindow {
        groups,
        before,
        after: &sampled.after,
        namespaces: sampled.names.as_ref(),
        host_netns,
        secs,
        samples_secs: sampled.samples_secs,
        conntrack_full_log_lines: sampled.conntrack_log_lines,
        details_unknown: details_unknown(groups, has_btf),
        earlier: earlier.is_some(),
    });
    RowDiagnosis {
        window_secs: secs,
        drops: groups.iter().map(|g| g.count).sum(),
        namespaces: sampled
            .inodes
            .iter()
            .map(|i| sampled.names.describe(*i))
            .collect(),
        findings: findings.into_iter().map(row_finding).collect(),
        earlier,
    }
}

fn row_finding(f: Finding) -> RowFinding {
    RowFinding {
        cause: f.cause.to_owned(),
        drops: f.drops,
        rate: f.rate,
        summary: f.summary,
        evidence: f.evidence,
        fix: f.fix,
        benign: f.benign,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::row::tests::stats;

    fn group(netns: u32) -> Group {
        Group {
            location: 0xffff_ffff_8100_0000,
            reason: 12,
            ethertype: 0x0800,
            ip_proto: Some(6),
            dport: Some(1678),
            netns: Netns::inode(netns),
            ifindex: 2,
        }
    }

    #[test]
    fn the_window_waits_for_a_drop_but_not_for_ever() {
        assert!(!window_closes(MIN_WINDOW_NS - 1, 100, false));
        assert!(!window_closes(MIN_WINDOW_NS, 0, false));
        assert!(window_closes(MIN_WINDOW_NS, 1, false));
        assert!(!window_closes(MAX_WINDOW_NS - 1, 0, false));
        assert!(window_closes(MAX_WINDOW_NS, 0, false));
        // A row quiet before the window: a shortest window without drops is enough.
        assert!(!window_closes(MIN_WINDOW_NS - 1, 0, true));
        assert!(window_closes(MIN_WINDOW_NS, 0, true));
    }

    #[test]
    fn the_window_holds_what_grew_since_it_began() {
        let start = HashMap::from([(group(1), stats(5, 1)), (group(2), stats(3, 0))]);
        let now = HashMap::from([
            (group(1), stats(9, 2)),
            (group(2), stats(3, 0)),
            (group(3), stats(1, 0)),
        ]);
        let mut window = in_window(&now, &start);
        window.sort_by_key(|(g, _)| g.netns);
        assert_eq!(
            window
                .iter()
                .map(|(g, s)| (g.netns.inode, s.delivered, s.lost))
                .collect::<Vec<_>>(),
            [(1, 4, 1), (3, 1, 0)]
        );
    }
}
