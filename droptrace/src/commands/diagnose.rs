//! `droptrace diagnose`: sample every relevant namespace, run the live source for the
//! window (no sink: the diagnosis reads the outcome), sample again, then hand drops and
//! both samples to the engine.
use std::{io::Write, path::Path, time::Duration};

use crate::{
    cli::{DiagnoseArgs, Format},
    commands::error::Error,
    diagnose::{
        baseline::{self, Baseline},
        engine::DropGroup,
        host, row,
    },
    pipeline::{drive, Outcome, Source},
    probe::{caps, clock, discover, host_sampler, node_names::by_inode, LiveOptions, LiveSource},
};

pub async fn run(args: DiagnoseArgs) -> Result<(), Error> {
    // A baseline that cannot be read fails before anything is sampled or attached.
    let then = args.baseline.as_deref().map(read_baseline).transpose()?;
    if let Some(path) = &args.save_baseline {
        super::check_creatable(path, args.force)?;
    }
    // Fail early, before sampling, when droptrace cannot attach.
    caps::check_tracing()?;
    let spec = args.live.spec();
    let sampled =
        host_sampler::Before::sample(&spec.filters, &spec.host_root, args.max_namespaces as usize)?;
    let chosen = sampled.chosen;
    let mut source = LiveSource::start(
        &spec,
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
    let groups = drop_groups(&watched);
    let mut sampled = sampled.after(
        &host::dropped_in(&groups),
        by_inode(&watched.names.workloads),
    );
    let (before, after) = (
        std::mem::take(&mut sampled.before),
        std::mem::take(&mut sampled.after),
    );
    let not_sampled = std::mem::take(&mut sampled.not_sampled);
    let own = sampled.own_inode();
    let counters = watched.agg.counters();
    let (report, now) = host::diagnose_host(
        host::HostWindow {
            groups: &groups,
            before,
            after,
            names: &sampled.names,
            vanished: &sampled.names.vanished,
            default_netns: source.filters().netns.unwrap_or(own),
            host_netns: own,
            secs,
            samples_secs: sampled.samples_secs,
            conntrack_full_log_lines: sampled.conntrack_log_lines,
            details_unknown: row::details_unknown(&groups, discover::has_btf()),
            tcp: (watched.agg.tcp(), &watched.names),
            total: counters.matched,
            lost_events: counters.lost,
            not_sampled,
            baseline: then.as_ref(),
            scoped: chosen.is_some(),
            host: clock::hostname(),
            now_secs: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        },
        |inode, query| sampled.route_get(inode, query),
    );
    drop(sampled);
    if let Some(path) = &args.save_baseline {
        write_private(path, &now, args.force)?;
    }
    let json = || {
        serde_json::to_string(&report)
            .map_err(|e| Error::Io("writing the report".into(), std::io::Error::other(e)))
    };
    let out = match args.format {
        Format::Json => json()? + "\n",
        Format::Text => report.text(),
        Format::Html => {
            let about = crate::html::diagnosis::About {
                host: clock::hostname(),
                kernel: clock::kernel_release(),
                started_utc: crate::format::utc(
                    clock::boot_time_ns().saturating_add(source.started_ns()),
                ),
                filters: source.describe_filters(),
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

/// The window's groups: places from the exact figures of every interface and namespace,
/// addresses and an example packet from each site's latest sample.
fn drop_groups(watched: &Outcome) -> Vec<DropGroup> {
    let groups: Vec<_> = watched.agg.groups().map(|(g, s)| (*g, *s)).collect();
    crate::diagnose::row::drop_groups(&groups, &watched.agg.latest_samples(), &watched.names)
}
