//! `droptrace record`: a watch whose sink is a recording file. Every event goes in with
//! the names it needs; every interval the exact kernel counters go in and the block is
//! written out, so a recorder killed at any moment leaves a file readable up to there.
use std::{
    collections::HashSet,
    fs::{File, OpenOptions},
    io::{IsTerminal, Write},
    ops::ControlFlow,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    time::Duration,
};

use crate::{
    cli::RecordArgs,
    error::Error,
    event::Drop,
    feed::{boottime_ns, kernel_release},
    places::Places,
    record::{Counters, Header, WriteError, Writer},
    resolve::Resolver,
    tui::{snapshot::Names, view::format},
    watch::{Sink, Watch},
};

/// Counters go in and blocks go out this often (the most a SIGKILL can lose).
const FLUSH_EVERY: Duration = Duration::from_millis(250);

pub async fn run(args: RecordArgs) -> Result<(), Error> {
    let snaplen = args.snaplen;
    let mut watch = Watch::start_with(&args.live, snaplen)?;
    let file = create(&args.output, args.force)?;
    let header = Header {
        kernel_release: kernel_release(),
        hostname: hostname(),
        boot_time_ns: boot_time_ns(),
        started_ns: boottime_ns(),
        filters: watch.filters.describe(watch.resolver.reasons()),
        snaplen,
        reasons: watch
            .resolver
            .reasons()
            .map(|t| t.entries().map(|(v, n)| (v, n.to_owned())).collect())
            .unwrap_or_default(),
        ..Header::default()
    };
    let writer = Writer::new(file, &header).map_err(|e| write_error(&args.output, e))?;
    let mut recorder = Recorder {
        writer,
        path: args.output.clone(),
        limit: args.count,
        places: Places::default(),
        names: Names::default(),
        written_places: HashSet::new(),
        seen_places: rustc_hash::FxHashSet::default(),
        last: None,
        failed: None,
        progress: std::io::stderr().is_terminal(),
    };
    watch.announce(&match (args.duration, args.count) {
        (Some(d), _) => format!("recording to {} for {d} s", args.output.display()),
        (None, Some(n)) => format!("recording {n} drops to {}", args.output.display()),
        (None, None) => format!("recording to {}; Ctrl-C to stop", args.output.display()),
    });
    watch
        .run_into(
            args.duration.map(Duration::from_secs_f64),
            Some(FLUSH_EVERY),
            &mut recorder,
        )
        .await?;
    watch.finish_into(&mut recorder)?;
    recorder.finish(&watch)
}

/// A new file, readable by its owner only (it holds addresses and ports of real traffic);
/// an existing one is replaced only with `--force`, and never through a symlink.
fn create(path: &Path, force: bool) -> Result<File, Error> {
    let mut options = OpenOptions::new();
    options
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let file = options.open(path).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::AlreadyExists {
            " (it exists; give --force to replace it)"
        } else {
            ""
        };
        Error::Io(format!("creating {}{hint}", path.display()), e)
    })?;
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::Io(format!("setting the mode of {}", path.display()), e))?;
    Ok(file)
}

fn write_error(path: &Path, e: WriteError) -> Error {
    match e {
        WriteError::Io(io) => Error::Io(format!("writing {}", path.display()), io),
        other => Error::Io(
            format!("writing {}", path.display()),
            std::io::Error::other(other.to_string()),
        ),
    }
}

struct Recorder {
    writer: Writer<File>,
    path: PathBuf,
    limit: Option<u64>,
    places: Places,
    names: Names,
    written_places: HashSet<(u32, u32)>,
    /// (netns, ifindex) pairs drops were seen on (looked up per event: a fast hash).
    seen_places: rustc_hash::FxHashSet<(u32, u32)>,
    /// The counters last written, to write them again only when they change.
    last: Option<Counters>,
    failed: Option<WriteError>,
    progress: bool,
}

impl Sink for Recorder {
    fn event(&mut self, drop: &Drop, packet: &[u8], resolver: &Resolver) -> ControlFlow<()> {
        if self.failed.is_some() {
            return ControlFlow::Break(());
        }
        let result = (|| {
            if !self.writer.has_location(drop.location) {
                self.writer
                    .add_location(drop.location, &resolver.location(drop.location))?;
            }
            // Names go in before the first drop that needs them (pcapng names its
            // interfaces at their first packet).
            if self.seen_places.insert((drop.netns, drop.ifindex)) {
                self.places
                    .learn_places(&mut self.names, [(drop.netns, drop.ifindex)]);
                self.write_names()?;
            }
            self.writer.write_drop(drop, packet)
        })();
        if let Err(e) = result {
            self.failed = Some(e);
            return ControlFlow::Break(());
        }
        match self.limit {
            Some(n) if self.writer.events() >= n => ControlFlow::Break(()),
            _ => ControlFlow::Continue(()),
        }
    }

    fn interval(&mut self, watch: &Watch) -> ControlFlow<()> {
        if let Err(e) = self.checkpoint(watch) {
            self.failed = Some(e);
            return ControlFlow::Break(());
        }
        if self.progress {
            let c = watch.agg.counters();
            eprint!(
                "\r\x1b[Krecording to {}: {} drops, {} events, {} bytes, {} lost events, {:.0} s",
                self.path.display(),
                format::count(c.matched),
                format::count(self.writer.events()),
                format::count(self.bytes()),
                format::count(c.lost),
                watch.elapsed().as_secs_f64()
            );
        }
        ControlFlow::Continue(())
    }
}

impl Recorder {
    /// Names of new interfaces and namespaces, the counters if they moved, then the
    /// block goes to the file.
    fn checkpoint(&mut self, watch: &Watch) -> Result<(), WriteError> {
        // Names that could not be learnt at the first drop are tried again here.
        self.places.learn(&mut self.names, &watch.agg);
        self.write_names()?;
        let agg = &watch.agg;
        let counters = Counters {
            at_ns: boottime_ns(),
            kernel: agg.counters(),
            lost_groups: agg
                .groups()
                .filter(|(_, s)| s.lost > 0)
                .map(|(g, s)| (*g, s.lost))
                .collect(),
            malformed: 0,
            overflow: agg.overflow(),
        };
        let moved = self.last.as_ref().is_none_or(|l| {
            l.kernel != counters.kernel || l.lost_groups.len() != counters.lost_groups.len()
        });
        if moved {
            self.writer.write_counters(&counters)?;
            self.last = Some(counters);
        }
        self.writer.flush()
    }

    /// Interface and namespace names learnt and not written yet.
    fn write_names(&mut self) -> Result<(), WriteError> {
        for (&(netns, ifindex), name) in &self.names.interfaces {
            if self.written_places.insert((netns, ifindex)) {
                self.writer.add_interface(netns, ifindex, name)?;
            }
        }
        for (&netns, label) in &self.names.namespaces {
            if self.written_places.insert((netns, u32::MAX)) {
                self.writer.add_namespace(netns, label)?;
            }
        }
        Ok(())
    }

    fn bytes(&self) -> u64 {
        self.writer.get_ref().metadata().map_or(0, |m| m.len())
    }

    /// The last counters (exact: the watch has detached and read everything), the End
    /// block, and a line saying what was kept.
    fn finish(mut self, watch: &Watch) -> Result<(), Error> {
        if self.progress {
            eprintln!();
        }
        if let Some(e) = self.failed.take() {
            return Err(write_error(&self.path, e));
        }
        // Always write the final figures, changed or not.
        self.last = None;
        self.checkpoint(watch)
            .map_err(|e| write_error(&self.path, e))?;
        let events = self.writer.events();
        let file = self
            .writer
            .finish()
            .map_err(|e| write_error(&self.path, e))?;
        file.sync_all()
            .map_err(|e| Error::Io(format!("syncing {}", self.path.display()), e))?;
        let bytes = file.metadata().map_or(0, |m| m.len());
        let c = watch.agg.counters();
        let mut out = std::io::stderr().lock();
        let _ = writeln!(
            out,
            "droptrace: recorded {} drops to {} ({} events, {} lost events counted by group, {} bytes)",
            c.matched,
            self.path.display(),
            events,
            c.lost,
            bytes
        );
        Ok(())
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// Wall-clock time of boot: now on CLOCK_REALTIME minus now on CLOCK_BOOTTIME.
fn boot_time_ns() -> u64 {
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    wall.saturating_sub(boottime_ns())
}
