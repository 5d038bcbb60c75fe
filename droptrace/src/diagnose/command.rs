//! `droptrace diagnose`: attach, sample every relevant namespace, watch, sample again,
//! then hand drops and both samples to the engine.
use std::{collections::BTreeMap, io::Write, ops::ControlFlow, path::PathBuf, time::Duration};

use super::{
    collect::{self, RawSnapshot},
    engine::{self, DropGroup, NamespaceNames},
    netns::Namespaces,
    report::Report,
    state::NsState,
};
use crate::{
    cli::{DiagnoseArgs, Format},
    error::Error,
    watch::{warn, Watch},
};

/// At most this many namespaces are sampled (containers can make thousands).
const MAX_NAMESPACES: usize = 64;
/// Snapshots taken at once.
const PARALLEL: usize = 4;

impl NamespaceNames for Namespaces {
    fn describe(&self, inode: u32) -> String {
        Namespaces::describe(self, inode)
    }

    fn command_prefix(&self, inode: u32) -> String {
        match self.path(inode) {
            Some(p) if p.as_os_str() == "/proc/self/ns/net" => String::new(),
            Some(p) if p.starts_with("/run/netns") => format!(
                "ip netns exec {} ",
                p.file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default()
            ),
            Some(p) => format!("nsenter --net={} ", p.display()),
            None => String::new(),
        }
    }
}

pub async fn run(args: DiagnoseArgs) -> Result<(), Error> {
    let mut watch = Watch::start(&args.live)?;
    let names = Namespaces::scan();
    let own = names.own_inode();
    let targets: Vec<(u32, Option<PathBuf>)> = match watch.filters.netns {
        Some(inode) => vec![(inode, args.live.filters.netns.clone())],
        None => names
            .all()
            .take(MAX_NAMESPACES)
            .map(|(inode, path)| (inode, (inode != own).then(|| path.clone())))
            .collect(),
    };
    if watch.filters.netns.is_none() && names.len() > MAX_NAMESPACES {
        warn(&format!(
            "{} network namespaces; sampling the first {MAX_NAMESPACES} (use --netns to choose)",
            names.len()
        ));
    }
    let before = snapshot_all(&targets);
    watch.announce(&format!("diagnosing for {} s", args.duration));
    let started = std::time::Instant::now();
    watch
        .run(Some(Duration::from_secs_f64(args.duration)), None, |_| {
            ControlFlow::Continue(())
        })
        .await?;
    watch.finish()?;
    let after = snapshot_all(&targets);
    let secs = started.elapsed().as_secs_f64();

    let groups = drop_groups(&watch);
    let log_lines = collect::kernel_log().map_or(0, |log| {
        log.lines()
            .filter(|l| l.contains("nf_conntrack: table full, dropping packet"))
            .count()
    });
    let parse = |raw: BTreeMap<u32, RawSnapshot>| -> BTreeMap<u32, NsState> {
        raw.into_iter()
            .map(|(i, r)| (i, super::state::from_raw(&r)))
            .collect()
    };
    let (before, after) = (parse(before), parse(after));
    let findings = engine::diagnose(&engine::Window {
        groups: &groups,
        before: &before,
        after: &after,
        names: &names,
        default_netns: watch.filters.netns.unwrap_or(own),
        secs,
        conntrack_full_log_lines: log_lines,
    });
    let counters = watch.agg.counters();
    let report = Report {
        window_secs: secs,
        total: counters.matched,
        lost_events: counters.lost,
        namespaces: after.len(),
        findings,
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

fn snapshot_all(targets: &[(u32, Option<PathBuf>)]) -> BTreeMap<u32, RawSnapshot> {
    let mut out = BTreeMap::new();
    for chunk in targets.chunks(PARALLEL) {
        std::thread::scope(|s| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|(inode, path)| (*inode, s.spawn(move || collect::snapshot(path.as_deref()))))
                .collect();
            for (inode, h) in handles {
                if let Ok(snap) = h.join() {
                    out.insert(inode, snap);
                }
            }
        });
    }
    out
}

/// The watch's groups with what the diagnosis needs from their samples.
fn drop_groups(watch: &Watch) -> Vec<DropGroup> {
    watch
        .agg
        .ranked()
        .into_iter()
        .map(|(g, stats)| {
            let loc = watch.resolver.location(g.location);
            let mut places: BTreeMap<(u32, u32), usize> = BTreeMap::new();
            let mut example = None;
            for d in watch.agg.samples(&g) {
                *places.entry((d.netns, d.ifindex)).or_default() += 1;
                example = Some(super::report::packet_line(d));
            }
            let mut places: Vec<_> = places.into_iter().collect();
            places.sort_by_key(|p| std::cmp::Reverse(p.1));
            DropGroup {
                function: loc.function,
                location: loc.display,
                reason: watch.resolver.reason(g.reason),
                protocol: g.protocol(),
                dport: g.dport,
                count: stats.count(),
                places: places.into_iter().map(|(p, _)| p).collect(),
                max_len: stats.max_len,
                example,
            }
        })
        .collect()
}
