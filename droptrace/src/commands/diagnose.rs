//! `droptrace diagnose`: sample every relevant namespace, run the live source for the
//! window (no sink: the diagnosis reads the outcome), sample again, then hand drops and
//! both samples to the engine.
use std::{
    collections::{BTreeMap, BTreeSet},
    io::Write,
    path::{Path, PathBuf},
    time::Duration,
};

use crate::{
    cli::{DiagnoseArgs, Format},
    diagnose::{
        baseline::{self, Baseline},
        engine::{self, DropGroup, NamespaceNames},
        programs,
        raw::RawSnapshot,
        report::Report,
        state::NsState,
    },
    error::{warn, Error},
    pipeline::names::Workload,
    pipeline::{drive, Outcome, Source},
    probe::{
        caps,
        collect::{self, HeldNamespaces},
        netns::Namespaces,
        workloads::{HostPaths, Scan},
        LiveOptions, LiveSource,
    },
};

/// Namespaces as the diagnosis names them: by their pod or container when they belong to
/// one ("in pod shop/web-7d9f"), else as they were found.
pub(super) struct NodeNames {
    pub namespaces: Namespaces,
    pub workloads: std::collections::HashMap<u32, Workload>,
    /// Namespaces whose name no longer leads to them (deleted during the window).
    pub vanished: BTreeSet<u32>,
}

impl NamespaceNames for NodeNames {
    fn describe(&self, inode: u32) -> String {
        let name = match self.workloads.get(&inode) {
            Some(w) => w.label(),
            None => self.namespaces.describe(inode),
        };
        match (
            self.vanished.contains(&inode),
            self.namespaces.has_own_name(inode),
        ) {
            (false, _) => name,
            (true, true) => format!("{name} (gone: deleted during the window)"),
            (true, false) => format!("{name} (gone: its process exited during the window)"),
        }
    }

    fn command_prefix(&self, inode: u32) -> String {
        self.namespaces.command_prefix(inode)
    }

    fn label(&self, inode: u32) -> String {
        self.namespaces.label(inode)
    }

    fn workload(&self, inode: u32) -> Option<Workload> {
        self.workloads.get(&inode).cloned()
    }
}

impl NodeNames {
    /// The name a baseline knows the namespace by: its own name (`ip netns`) when it has
    /// one, else its pod or container, else the command of a process in it. Whether a
    /// workload is seen in it can change between runs; its own name does not.
    fn baseline_name(&self, inode: u32) -> String {
        if self.namespaces.has_own_name(inode) {
            return self.namespaces.describe(inode);
        }
        match self.workloads.get(&inode) {
            Some(w) => w.label(),
            None => self
                .namespaces
                .stable_name(inode)
                .unwrap_or_else(|| self.describe(inode)),
        }
    }
}

/// The workloads of the window's namespaces by inode: the sampled state is the host's now,
/// keyed by inode (a namespace gone and replaced on its inode has no state of its own).
pub fn by_inode(
    workloads: &std::collections::HashMap<crate::pipeline::event::Netns, Workload>,
) -> std::collections::HashMap<u32, Workload> {
    workloads
        .iter()
        .map(|(ns, w)| (ns.inode, w.clone()))
        .collect()
}

pub async fn run(args: DiagnoseArgs) -> Result<(), Error> {
    // A baseline that cannot be read fails before anything is sampled or attached.
    let then = args.baseline.as_deref().map(read_baseline).transpose()?;
    if let Some(path) = &args.save_baseline {
        super::check_creatable(path, args.force)?;
    }
    // Fail early, before sampling, when droptrace cannot attach.
    caps::check_tracing()?;
    let mut names = Namespaces::scan();
    let own = crate::probe::netns::own_inode();
    let filters = &args.live.filters;
    // A pod or container chosen by name: its namespace is the one sampled. (The live
    // source resolves the filter again, and says what is wrong when it finds none.)
    let workload_path = if filters.pod.is_some() || filters.container.is_some() {
        let scan = Scan::run(&HostPaths::new(&args.live.host_root));
        let found = match (&filters.pod, &filters.container) {
            (Some(pod), _) => crate::containers::parse_pod_arg(pod)
                .map(|(ns, name)| scan.pod(&ns, &name))
                .unwrap_or_default(),
            (None, Some(c)) => scan.container(c),
            (None, None) => Vec::new(),
        };
        match found.as_slice() {
            [one] => scan.paths.get(one).cloned(),
            _ => None,
        }
    } else {
        None
    };
    let chosen = match filters.netns.as_ref().or(workload_path.as_ref()) {
        Some(path) => Some(names.add(path).map_err(|source| Error::Netns {
            path: path.clone(),
            source,
        })?),
        None => None,
    };
    // Each namespace is opened once and entered through that descriptor afterwards, so a
    // process that exits (and a reused PID) cannot swap the namespace under us.
    // Containers can make thousands: at most --max-namespaces are sampled before the
    // window; those where drops happen are sampled after it in any case.
    let cap = args.max_namespaces as usize;
    let inodes: Vec<u32> = match chosen {
        Some(inode) => vec![inode],
        None => names.all().take(cap).map(|(i, _)| i).collect(),
    };
    let (held, _) = HeldNamespaces::open(&names, &inodes);
    let known_before = names.len();
    if chosen.is_none() && known_before > cap {
        warn(&format!(
            "{known_before} network namespaces; sampling the first {cap} before the window \
             (--max-namespaces) and, after it, every one where drops happened"
        ));
    }
    let log_before = collect::conntrack_full_lines();
    // Counters grow over the time from this sample to the end of the next one.
    let sampling = std::time::Instant::now();
    let before = held.snapshot();
    let mut source = LiveSource::start(
        &args.live,
        LiveOptions {
            duration: Some(Duration::from_secs_f64(args.duration)),
            name_workloads: true,
            // XDP verdicts are counted (unless --no-xdp or a header filter): the `xdp`
            // finding names the program with its exact count; the frames' kfree_skb at
            // `veth_xdp_rcv_skb` / `do_xdp_generic` is not counted again.
            ..LiveOptions::default()
        },
    )?;
    source.announce(&format!("diagnosing for {} s", args.duration));
    let watched = drive(&mut source, &mut []).await?;
    let secs = source.now_ns().saturating_sub(source.started_ns()) as f64 / 1e9;
    let (source_started, filters_described) = (source.started_ns(), source.describe_filters());
    let groups = drop_groups(&watched);
    let mut after = held.snapshot();
    let samples_secs = sampling.elapsed().as_secs_f64();
    // Namespaces where drops happened that were not sampled before: sampled now, and
    // each named in the report with why.
    let late = sample_late(&mut names, &held, &groups, &mut after);
    let mut targets = held.targets().to_vec();
    targets.extend_from_slice(late.held.targets());
    let mut not_sampled: Vec<String> = late
        .held
        .inodes()
        .map(|i| {
            format!(
                "{} was sampled only after the window: {known_before} namespaces were more than \
                 --max-namespaces {cap} before it, so what grew there in the window is unknown \
                 (choose it with --netns, or raise --max-namespaces)",
                names.describe(i)
            )
        })
        .collect();
    not_sampled.extend(late.gone.iter().map(|i| {
        format!(
            "{}: drops happened there, but it was gone before it could be sampled",
            names.describe(*i)
        )
    }));
    // Namespaces deleted during the window: still sampled (held open), but a fix cannot
    // be run in them by their name any more.
    let vanished: BTreeSet<u32> = after
        .keys()
        .chain(&late.gone)
        .copied()
        .filter(|i| names.vanished(*i))
        .collect();
    // The namespaces at the other end of their veths, sampled or not (an MTU there
    // decides what the sender can send).
    let known: Vec<(u32, PathBuf)> = names.all().map(|(i, p)| (i, p.clone())).collect();
    for (inode, path) in &targets {
        if let Some(raw) = after.get_mut(inode) {
            let links = raw.commands.get("links").cloned().unwrap_or_default();
            raw.peer_namespaces = collect::peer_namespaces(path.as_deref(), &links, &known);
        }
    }

    let log_lines = collect::conntrack_full_lines().saturating_sub(log_before);
    let parse = |raw: BTreeMap<u32, RawSnapshot>| -> BTreeMap<u32, NsState> {
        raw.into_iter()
            .map(|(i, r)| (i, crate::diagnose::state::from_raw(&r)))
            .collect()
    };
    let (before, mut after) = (parse(before), parse(after));
    let default_netns = source.filters().netns.unwrap_or(own);
    // The kernel's route lookups for the window's routing drops, asked in their namespace.
    for (inode, query) in engine::route_queries(&groups, &after, default_netns) {
        let Some((_, path)) = targets.iter().find(|(i, _)| *i == inode) else {
            continue;
        };
        let answer = collect::route_get(path.as_deref(), &query);
        if let Some(state) = after.get_mut(&inode) {
            state.add_route_lookup(query, answer);
        }
    }
    drop(held);
    drop(late);
    let names = NodeNames {
        namespaces: names,
        workloads: by_inode(&watched.names.workloads),
        vanished,
    };
    let window = engine::Window {
        groups: &groups,
        before: &before,
        after: &after,
        names: &names,
        default_netns,
        host_netns: own,
        secs,
        samples_secs,
        conntrack_full_log_lines: log_lines,
        details_unknown: details_unknown(&groups),
        earlier: false,
    };
    let mut findings = engine::diagnose(&window);
    let counters_moved = engine::counters_moved(&window);
    // What the drops did to TCP connections, after the drops' own causes.
    findings.extend(engine::tcp_findings(
        watched.agg.tcp(),
        &watched.names,
        &names,
        secs,
    ));
    for f in &mut findings {
        if let Some(inode) = f.netns_inode().filter(|i| names.vanished.contains(i)) {
            f.fix = format!(
                "none to run: {} no longer exists, and its drops went with it (while it \
                 existed the fix was: {})",
                names.namespaces.describe(inode),
                f.fix
            );
        }
    }
    let now = baseline::capture(
        after
            .iter()
            .map(|(inode, st)| (names.baseline_name(*inode), st)),
        &crate::probe::clock::hostname(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    );
    if let Some(path) = &args.save_baseline {
        write_private(path, &now, args.force)?;
    }
    let baseline_diff = then.as_ref().map(|then| {
        let diff = baseline::diff(then, &now, chosen.is_some());
        let aliases: BTreeMap<String, String> = after
            .keys()
            .map(|i| (names.describe(*i), names.baseline_name(*i)))
            .collect();
        baseline::rank(&mut findings, &diff, &aliases);
        diff
    });
    let counters = watched.agg.counters();
    let report = Report {
        window_secs: secs,
        samples_secs,
        total: counters.matched,
        lost_events: counters.lost,
        namespaces: after.len(),
        not_sampled,
        findings,
        counters_moved,
        baseline_of: then
            .as_ref()
            .map(|b| format!("host {}, saved {}", b.host, programs::utc(b.taken_at))),
        baseline_diff,
    };
    let json = || {
        serde_json::to_string(&report)
            .map_err(|e| Error::Io("writing the report".into(), std::io::Error::other(e)))
    };
    let out = match args.format {
        Format::Json => json()? + "\n",
        Format::Text => report.text(),
        Format::Html => {
            let about = crate::html::diagnosis::About {
                host: crate::probe::clock::hostname(),
                kernel: crate::probe::clock::kernel_release(),
                started_utc: crate::format::utc(
                    crate::probe::clock::boot_time_ns().saturating_add(source_started),
                ),
                filters: filters_described,
            };
            crate::html::diagnosis::page(&about, &report, &json()?)
        }
    };
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush());
    Ok(())
}

/// Namespaces sampled after the window only, because they were not before it.
struct Late {
    held: HeldNamespaces,
    /// Where drops happened, but gone before they could be opened.
    gone: Vec<u32>,
}

/// Samples the namespaces where the window's drops happened that `held` did not sample
/// before it (beyond the cap, or created during the window), into `after`.
fn sample_late(
    names: &mut Namespaces,
    held: &HeldNamespaces,
    groups: &[DropGroup],
    after: &mut BTreeMap<u32, RawSnapshot>,
) -> Late {
    let sampled: BTreeSet<u32> = held.inodes().collect();
    let wanted: Vec<u32> = groups
        .iter()
        .filter(|g| g.count > 0)
        .flat_map(|g| g.places.iter().map(|p| p.0))
        .filter(|i| *i != 0 && !sampled.contains(i))
        .collect::<BTreeSet<u32>>()
        .into_iter()
        .collect();
    if wanted.is_empty() {
        return Late {
            held: HeldNamespaces::default(),
            gone: Vec::new(),
        };
    }
    if wanted.iter().any(|i| names.path(*i).is_none()) {
        names.absorb(Namespaces::scan());
    }
    let (late, gone) = HeldNamespaces::open(names, &wanted);
    after.extend(late.snapshot());
    Late { held: late, gone }
}

/// Reads at most one byte past the largest baseline accepted: an oversized or endless
/// file (a FIFO, /dev/zero) is refused without being held.
fn read_baseline(path: &Path) -> Result<Baseline, Error> {
    use std::io::Read;
    let io = |e| Error::Io(format!("reading the baseline {}", path.display()), e);
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(baseline::MAX_BYTES + 1).read_to_end(&mut bytes))
        .map_err(io)?;
    baseline::from_bytes(&bytes).map_err(|source| Error::Baseline {
        path: path.to_owned(),
        source,
    })
}

/// Writes the baseline readable by its owner only (it lists the host's firewall and
/// programs); an existing file only with --force, never through a symlink.
fn write_private(path: &Path, b: &Baseline, replace: bool) -> Result<(), Error> {
    let io = |e| Error::Io(format!("writing the baseline {}", path.display()), e);
    let mut text = serde_json::to_string_pretty(b).map_err(|e| io(std::io::Error::other(e)))?;
    text.push('\n');
    super::create_private(path, replace)?
        .write_all(text.as_bytes())
        .map_err(io)
}

/// Why no drop of the window has packet details, when none has: without the kernel's BTF
/// the probe reads only the tracepoint's fields.
pub(super) fn details_unknown(groups: &[DropGroup]) -> Option<String> {
    let none_read = !groups.is_empty()
        && groups
            .iter()
            .all(|g| g.addrs.is_none() && g.dport.is_none() && g.family.is_none());
    let btf = std::fs::metadata("/sys/kernel/btf/vmlinux").is_ok_and(|m| m.len() > 0);
    (none_read && !btf).then(|| {
        "this kernel offers no BTF (/sys/kernel/btf/vmlinux), so droptrace sees only each drop's location, reason and protocol, not the packet's addresses, ports or namespace".to_owned()
    })
}

/// The window's groups: places from the exact figures of every interface and namespace,
/// addresses and an example packet from each site's latest sample.
fn drop_groups(watched: &Outcome) -> Vec<DropGroup> {
    let groups: Vec<_> = watched.agg.groups().map(|(g, s)| (*g, *s)).collect();
    crate::diagnose::row::drop_groups(&groups, &watched.agg.latest_samples(), &watched.names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pods_namespace_is_named_by_its_pod() {
        let pod = crate::pipeline::fixtures::workload("9b2e7d4a1c6f", None);
        let names = NodeNames {
            namespaces: Namespaces::default(),
            workloads: [(7, pod)].into_iter().collect(),
            vanished: BTreeSet::from([8]),
        };
        assert_eq!(names.describe(7), "pod shop/web-7d9f");
        assert_eq!(
            names.describe(8),
            "netns inode 8 (gone: its process exited during the window)"
        );
    }
}
