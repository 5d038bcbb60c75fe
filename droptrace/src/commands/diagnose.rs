//! `droptrace diagnose`: sample every relevant namespace, run the live source for the
//! window (no sink: the diagnosis reads the outcome), sample again, then hand drops and
//! both samples to the engine.
use std::{
    collections::BTreeMap,
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

/// At most this many namespaces are sampled (containers can make thousands).
const MAX_NAMESPACES: usize = 64;

/// Namespaces as the diagnosis names them: by their pod or container when they belong to
/// one ("in pod shop/web-7d9f"), else as they were found.
pub(super) struct NodeNames {
    pub namespaces: Namespaces,
    pub workloads: std::collections::HashMap<u32, Workload>,
}

impl NamespaceNames for NodeNames {
    fn describe(&self, inode: u32) -> String {
        match self.workloads.get(&inode) {
            Some(w) => w.label(),
            None => self.namespaces.describe(inode),
        }
    }

    fn command_prefix(&self, inode: u32) -> String {
        self.namespaces.command_prefix(inode)
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
    let inodes: Vec<u32> = match chosen {
        Some(inode) => vec![inode],
        None => names.all().take(MAX_NAMESPACES).map(|(i, _)| i).collect(),
    };
    let (held, _) = HeldNamespaces::open(&names, &inodes);
    if chosen.is_none() && names.len() > MAX_NAMESPACES {
        warn(&format!(
            "{} network namespaces; sampling the first {MAX_NAMESPACES} (use --netns to choose)",
            names.len()
        ));
    }
    let log_before = collect::conntrack_full_lines();
    let before = held.snapshot();
    let mut source = LiveSource::start(
        &args.live,
        LiveOptions {
            duration: Some(Duration::from_secs_f64(args.duration)),
            name_workloads: true,
            ..LiveOptions::default()
        },
    )?;
    source.announce(&format!("diagnosing for {} s", args.duration));
    let watched = drive(&mut source, &mut []).await?;
    let secs = source.now_ns().saturating_sub(source.started_ns()) as f64 / 1e9;
    let mut after = held.snapshot();
    let targets = held.targets().to_vec();
    // The namespaces at the other end of their veths, sampled or not (an MTU there
    // decides what the sender can send).
    let known: Vec<(u32, PathBuf)> = names.all().map(|(i, p)| (i, p.clone())).collect();
    for (inode, path) in &targets {
        if let Some(raw) = after.get_mut(inode) {
            let links = raw.commands.get("links").cloned().unwrap_or_default();
            raw.peer_namespaces = collect::peer_namespaces(path.as_deref(), &links, &known);
        }
    }

    let groups = drop_groups(&watched);
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
    let names = NodeNames {
        namespaces: names,
        workloads: by_inode(&watched.names.workloads),
    };
    let findings = engine::diagnose(&engine::Window {
        groups: &groups,
        before: &before,
        after: &after,
        names: &names,
        default_netns,
        host_netns: own,
        secs,
        conntrack_full_log_lines: log_lines,
        details_unknown: details_unknown(&groups),
    });
    let mut findings = findings;
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
        write_private(path, &now)?;
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
        total: counters.matched,
        lost_events: counters.lost,
        namespaces: after.len(),
        findings,
        baseline_of: then
            .as_ref()
            .map(|b| format!("host {}, saved {}", b.host, programs::utc(b.taken_at))),
        baseline_diff,
    };
    let out = match args.format {
        Format::Json => {
            let mut s = serde_json::to_string(&report)
                .map_err(|e| Error::Io("writing the report".into(), std::io::Error::other(e)))?;
            s.push('\n');
            s
        }
        Format::Text => report.text(),
    };
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush());
    Ok(())
}

fn read_baseline(path: &Path) -> Result<Baseline, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Io(format!("reading the baseline {}", path.display()), e))?;
    baseline::parse(&text).map_err(|source| Error::Baseline {
        path: path.to_owned(),
        source,
    })
}

/// Writes the baseline readable by its owner only: it lists the host's firewall and programs.
fn write_private(path: &Path, b: &Baseline) -> Result<(), Error> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let io = |e| Error::Io(format!("writing the baseline {}", path.display()), e);
    let mut text = serde_json::to_string_pretty(b).map_err(|e| io(std::io::Error::other(e)))?;
    text.push('\n');
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    // An existing file keeps its mode on open: make it private too.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)
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
        };
        assert_eq!(names.describe(7), "pod shop/web-7d9f");
        assert_eq!(names.describe(8), "netns inode 8");
    }
}
