//! The live kernel watch as a source of the live view. It runs on its own thread, so
//! drawing never slows the ring-buffer consumer; it hands the view a snapshot every
//! interval through a [`Link`] and answers the view's detail requests.
use std::{
    collections::HashMap,
    ops::ControlFlow,
    path::PathBuf,
    sync::{mpsc, Arc},
    time::Duration,
};

use crate::{
    cli::LiveArgs,
    error::Error,
    kernel::debuginfo::{self, SourceLines},
    places::Places,
    text,
    tui::{
        self,
        snapshot::{Names, Snapshot, SourceInfo},
        Link,
    },
    watch::Watch,
};

/// What the live view is started with.
pub struct LiveView {
    pub args: LiveArgs,
    pub duration: Option<Duration>,
    pub interval: Duration,
    pub vmlinux: Option<PathBuf>,
}

/// Runs the live view on the terminal; returns the closing table to print once the
/// terminal is restored.
pub fn run(opts: LiveView) -> Result<String, Error> {
    let link = Arc::new(Link::default());
    let (ready_tx, ready_rx) = mpsc::channel();
    let source_link = Arc::clone(&link);
    let source = std::thread::Builder::new()
        .name("droptrace-source".into())
        .spawn(move || source(opts, &source_link, &ready_tx))
        .map_err(|e| Error::Io("starting the source thread".into(), e))?;
    let info = match ready_rx.recv() {
        Ok(info) => info,
        // The source failed before attaching: its error is the one to show.
        Err(_) => return join(source),
    };
    let shown = tui::app::run(info, &link, || source.is_finished());
    link.stop();
    let closing = join(source);
    shown?;
    closing
}

fn join(source: std::thread::JoinHandle<Result<String, Error>>) -> Result<String, Error> {
    source.join().unwrap_or_else(|_| {
        Err(Error::Io(
            "the source thread".into(),
            std::io::Error::other("panicked"),
        ))
    })
}

fn source(opts: LiveView, link: &Link, ready: &mpsc::Sender<SourceInfo>) -> Result<String, Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Io("starting the runtime".into(), e))?;
    runtime.block_on(async {
        let mut watch = Watch::start(&opts.args)?;
        let kernel = kernel_release();
        let lines = open_debuginfo(opts.vmlinux.as_deref(), &kernel);
        let info = SourceInfo {
            source: "live".into(),
            kernel,
            filters: watch.filters.describe(watch.resolver.reasons()),
            debuginfo: lines
                .as_ref()
                .map(|l| l.path().display().to_string())
                .map_err(Clone::clone),
        };
        let lines = lines.ok();
        if ready.send(info).is_err() {
            return Ok(String::new());
        }
        let started = boottime_ns();
        let mut names = Names::default();
        let mut shared = Arc::new(names.clone());
        let mut places = Places::default();
        let mut line_cache: HashMap<u64, Option<String>> = HashMap::new();
        let stop = watch.run(opts.duration, Some(opts.interval), |w| {
            if link.stop_requested() {
                return ControlFlow::Break(());
            }
            let learned = names.learn(&w.agg, &w.resolver);
            if places.learn(&mut names, &w.agg) || learned {
                shared = Arc::new(names.clone());
            }
            let source_line = |location: u64| -> Option<String> {
                let lines = lines.as_ref()?;
                line_cache
                    .entry(location)
                    .or_insert_with(|| {
                        let loc = names.locations.get(&location)?;
                        lines.line(loc.function.as_deref()?, loc.offset?)
                    })
                    .clone()
            };
            let snapshot = Snapshot::take(
                &w.agg,
                &shared,
                started,
                boottime_ns(),
                link.request(),
                source_line,
            );
            link.publish(snapshot);
            ControlFlow::Continue(())
        });
        // Stop when the view quits even between two intervals.
        tokio::select! {
            stopped = stop => { stopped?; }
            () = link.stopping() => {}
        }
        watch.finish()?;
        Ok(text::final_table(&watch.agg, &watch.resolver))
    })
}

/// The vmlinux to take source lines from: `--vmlinux`, or the usual debug-info places.
fn open_debuginfo(given: Option<&std::path::Path>, release: &str) -> Result<SourceLines, String> {
    if let Some(path) = given {
        return SourceLines::open(path).map_err(|e| e.to_string());
    }
    let candidates = debuginfo::candidates(release);
    for path in &candidates {
        if path.exists() {
            return SourceLines::open(path).map_err(|e| e.to_string());
        }
    }
    Err(format!(
        "no kernel debug info (give --vmlinux PATH, or install it at {})",
        candidates[0].display()
    ))
}

pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// Now on CLOCK_BOOTTIME, the clock of drop timestamps.
pub fn boottime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}
