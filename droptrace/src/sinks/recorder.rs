//! The recording sink: every drop goes in with the names it needs, written before it;
//! every tick the exact kernel counters go in and the block is written out, so a recorder
//! killed at any moment leaves a file readable up to there.
use std::{
    collections::HashSet,
    fs::File,
    io::Write,
    ops::ControlFlow,
    path::{Path, PathBuf},
};

use crate::{
    format,
    pipeline::Error,
    pipeline::{
        event::{Drop, Netns},
        names::Names,
        sink::{Moment, Sink},
        tcp::TcpEvent,
    },
    record::{Counters, WriteError, Writer, XdpCounts},
};

pub fn write_error(path: &Path, e: WriteError) -> Error {
    match e {
        WriteError::Io(io) => Error::Io(format!("writing {}", path.display()), io),
        other => Error::Io(
            format!("writing {}", path.display()),
            std::io::Error::other(other.to_string()),
        ),
    }
}

pub struct Recorder {
    /// `None` once finished.
    writer: Option<Writer<File>>,
    path: PathBuf,
    limit: Option<u64>,
    written_places: HashSet<(Netns, u32)>,
    /// (netns, ifindex) pairs drops were seen on (looked up per event: a fast hash).
    seen_places: rustc_hash::FxHashSet<(Netns, u32)>,
    /// The counters last written, to write them again only when they change.
    last: Option<Counters>,
    failed: Option<WriteError>,
    progress: bool,
}

impl Sink for Recorder {
    fn drop(&mut self, drop: &Drop, packet: &[u8], names: &Names) -> ControlFlow<()> {
        if self.failed.is_some() {
            return ControlFlow::Break(());
        }
        let Some(writer) = self.writer.as_mut() else {
            return ControlFlow::Break(());
        };
        let result = (|| {
            if !writer.has_location(drop.location) {
                writer.add_location(drop.location, &names.location(drop.location))?;
            }
            // Names go in before the first drop that needs them (pcapng names its
            // interfaces at their first packet).
            if self.seen_places.insert((drop.netns, drop.ifindex)) {
                write_names(writer, &mut self.written_places, names)?;
            }
            writer.write_drop(drop, packet)
        })();
        if let Err(e) = result {
            self.failed = Some(e);
            return ControlFlow::Break(());
        }
        match self.limit {
            Some(n) if writer.events() >= n => ControlFlow::Break(()),
            _ => ControlFlow::Continue(()),
        }
    }

    fn tcp(&mut self, event: &TcpEvent, names: &Names) -> ControlFlow<()> {
        if self.failed.is_some() {
            return ControlFlow::Break(());
        }
        let Some(writer) = self.writer.as_mut() else {
            return ControlFlow::Break(());
        };
        let result = (|| {
            if let Some(mark) = &event.drop {
                let cause = &mark.cause;
                if !writer.has_location(cause.location) {
                    writer.add_location(cause.location, &names.location(cause.location))?;
                }
                if self.seen_places.insert((cause.netns, cause.ifindex)) {
                    write_names(writer, &mut self.written_places, names)?;
                }
            }
            if self.seen_places.insert((event.flow.netns, 0)) {
                write_names(writer, &mut self.written_places, names)?;
            }
            writer.write_tcp(event)
        })();
        if let Err(e) = result {
            self.failed = Some(e);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }

    fn tick(&mut self, at: &Moment<'_>) -> ControlFlow<()> {
        if let Err(e) = self.checkpoint(at) {
            self.failed = Some(e);
            return ControlFlow::Break(());
        }
        if self.progress {
            let c = at.agg.counters();
            eprint!(
                "\r\x1b[Krecording to {}: {} drops, {} events, {} bytes, {} lost events, {:.0} s",
                self.path.display(),
                format::count(c.matched),
                format::count(self.events()),
                format::count(self.bytes()),
                format::count(c.lost),
                at.elapsed_secs()
            );
        }
        ControlFlow::Continue(())
    }

    /// The last counters (exact: the source has handed over everything), the End block,
    /// and a line saying what was kept.
    fn finish(&mut self, at: &Moment<'_>) -> Result<(), Error> {
        if self.progress {
            eprintln!();
        }
        if let Some(e) = self.failed.take() {
            return Err(write_error(&self.path, e));
        }
        // Always write the final figures, changed or not.
        self.last = None;
        self.checkpoint(at)
            .map_err(|e| write_error(&self.path, e))?;
        let events = self.events();
        let Some(writer) = self.writer.take() else {
            return Ok(());
        };
        let file = writer.finish().map_err(|e| write_error(&self.path, e))?;
        file.sync_all()
            .map_err(|e| Error::Io(format!("syncing {}", self.path.display()), e))?;
        let bytes = file.metadata().map_or(0, |m| m.len());
        let c = at.agg.counters();
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

/// Interface, namespace and workload names known and not written yet.
fn write_names(
    writer: &mut Writer<File>,
    written: &mut HashSet<(Netns, u32)>,
    names: &Names,
) -> Result<(), WriteError> {
    for (&(netns, ifindex), name) in &names.interfaces {
        if written.insert((netns, ifindex)) {
            writer.add_interface(netns, ifindex, name)?;
        }
    }
    for (&netns, label) in &names.namespaces {
        if written.insert((netns, u32::MAX)) {
            writer.add_namespace(netns, label)?;
        }
    }
    for (&netns, workload) in &names.workloads {
        if written.insert((netns, u32::MAX - 1)) {
            writer.add_workload(netns, workload)?;
        }
    }
    Ok(())
}

impl Recorder {
    /// Records into `writer` (a file at `path`, its header written), stopping after
    /// `limit` drops; `progress` shows a status line on stderr.
    pub fn new(
        writer: Writer<File>,
        path: PathBuf,
        limit: Option<u64>,
        progress: bool,
    ) -> Recorder {
        Recorder {
            writer: Some(writer),
            path,
            limit,
            written_places: HashSet::new(),
            seen_places: rustc_hash::FxHashSet::default(),
            last: None,
            failed: None,
            progress,
        }
    }

    fn events(&self) -> u64 {
        self.writer.as_ref().map_or(0, Writer::events)
    }

    /// Names of new interfaces and namespaces, the counters if they moved, then the
    /// block goes to the file.
    fn checkpoint(&mut self, at: &Moment<'_>) -> Result<(), WriteError> {
        let Some(writer) = self.writer.as_mut() else {
            return Ok(());
        };
        // Names the source could not learn at the first drop, learnt since.
        write_names(writer, &mut self.written_places, at.names)?;
        let agg = at.agg;
        let counters = Counters {
            at_ns: at.now_ns,
            kernel: agg.counters(),
            lost_groups: agg
                .groups()
                .filter(|(_, s)| s.lost > 0)
                .map(|(g, s)| (*g, s.lost))
                .collect(),
            malformed: 0,
            overflow: agg.overflow(),
            tcp: agg.tcp().attached.then_some(agg.tcp().counters),
            tcp_off: agg.tcp().off,
            xdp: agg.xdp_programs().map(|programs| XdpCounts {
                programs: programs.to_vec(),
                groups: agg
                    .groups()
                    .filter(|(g, _)| crate::pipeline::xdp::program_of(g.location).is_some())
                    .map(|(g, s)| (*g, s.counted))
                    .collect(),
            }),
        };
        let moved = self.last.as_ref().is_none_or(|l| {
            l.kernel != counters.kernel
                || l.lost_groups.len() != counters.lost_groups.len()
                || l.tcp != counters.tcp
                || l.tcp_off != counters.tcp_off
                || l.xdp != counters.xdp
        });
        if moved {
            writer.write_counters(&counters)?;
            self.last = Some(counters);
        }
        writer.flush()
    }

    fn bytes(&self) -> u64 {
        self.writer
            .as_ref()
            .and_then(|w| w.get_ref().metadata().ok())
            .map_or(0, |m| m.len())
    }
}
