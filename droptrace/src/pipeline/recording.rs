//! A recording as a source: its drops, counters and names in the order they were written.
//! Read as fast as it goes (report, export), or played on the recording's own clock at a
//! speed (replay), which is a property of this source alone: the sinks cannot tell.
use std::{
    io::Read,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use crate::{
    pipeline::Error,
    record::{Counters, Item, Reader, Status},
};

use super::{
    event::Drop,
    names::Names,
    source::{Control, Source, Step, Stop},
    tcp::{TcpCounters, TcpEvent},
    Flow,
};

/// Playback speed: a factor of the recording's own clock, or as fast as the view takes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    Factor(f64),
    Max,
}

/// How a played recording follows its clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    pub speed: Speed,
    /// Wall time between two ticks.
    pub interval: Duration,
}

/// Items read per step when reading as fast as it goes.
const BATCH: usize = 65_536;
/// Items handed over per tick at most, so ticks keep coming at any speed.
const ITEMS_PER_TICK: usize = 2_000_000;

/// An item read ahead of the playback clock, with its packet bytes.
enum Pending {
    Drop(Drop, Vec<u8>),
    Counters(Counters),
    Tcp(TcpEvent),
}

impl Pending {
    fn at(&self) -> u64 {
        match self {
            Pending::Drop(d, _) => d.timestamp_ns,
            Pending::Counters(c) => c.at_ns,
            Pending::Tcp(ev) => ev.timestamp_ns,
        }
    }
}

pub struct RecordingSource<R: Read> {
    reader: Reader<R>,
    /// For errors: the file the reader reads.
    path: PathBuf,
    /// `None`: read as fast as it goes, and stop at the end.
    pace: Option<Pace>,
    control: Arc<Control>,
    /// The playback clock, and the newest item handed over (recording `CLOCK_BOOTTIME`).
    clock: u64,
    latest: u64,
    last_tick: Option<Instant>,
    pending: Option<Pending>,
    last_counters: Option<Counters>,
    /// Packet bytes of the drop being handed over (the reader's item borrows the reader).
    bytes: Vec<u8>,
    events: u64,
    /// Read to the end (or to an error, kept in `failed`).
    ended: bool,
    failed: Option<crate::record::ReadError>,
}

impl<R: Read> RecordingSource<R> {
    /// Reads `reader` as fast as it goes; `path` names it in errors.
    pub fn new(reader: Reader<R>, path: PathBuf) -> RecordingSource<R> {
        let started = reader.header().started_ns;
        RecordingSource {
            reader,
            path,
            pace: None,
            control: Arc::default(),
            clock: started,
            latest: started,
            last_tick: None,
            pending: None,
            last_counters: None,
            bytes: Vec::new(),
            events: 0,
            ended: false,
            failed: None,
        }
    }

    /// Plays the recording on its clock, a tick every `pace.interval`, and keeps ticking
    /// at the end until `control` asks to stop; its pause stops the clock.
    pub fn paced(mut self, pace: Pace, control: Arc<Control>) -> RecordingSource<R> {
        self.pace = Some(pace);
        self.control = control;
        self
    }

    pub fn header(&self) -> &crate::record::Header {
        self.reader.header()
    }

    /// How the recording ended, once read to its end.
    pub fn status(&self) -> Status {
        self.reader.status()
    }

    /// What was skipped of a damaged recording so far.
    pub fn damage(&self) -> crate::record::Damage {
        self.reader.damage()
    }

    /// The sentence that says what was skipped, naming the file; `None` when nothing was.
    pub fn damage_warning(&self) -> Option<String> {
        let damage = self.damage();
        (!damage.is_empty()).then(|| {
            format!(
                "{}: {}; read around: the drops they held are missing from the groups",
                self.path.display(),
                damage.describe()
            )
        })
    }

    /// Drops read so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    fn error(&self, source: crate::record::ReadError) -> Error {
        Error::Recording {
            path: self.path.clone(),
            source,
        }
    }

    /// The next item, read ahead or from the file; `None` at the end or after an error.
    fn read(&mut self) -> Option<Pending> {
        if let Some(item) = self.pending.take() {
            return Some(item);
        }
        if self.ended {
            return None;
        }
        match self.reader.next_item() {
            Ok(Some(Item::Drop(drop, bytes))) => {
                let mut owned = std::mem::take(&mut self.bytes);
                owned.clear();
                owned.extend_from_slice(bytes);
                Some(Pending::Drop(drop, owned))
            }
            Ok(Some(Item::Counters(c))) => Some(Pending::Counters(c)),
            Ok(Some(Item::Tcp(ev))) => Some(Pending::Tcp(ev)),
            Ok(None) => {
                self.ended = true;
                None
            }
            Err(e) => {
                self.ended = true;
                self.failed = Some(e);
                None
            }
        }
    }

    fn hand_over(&mut self, item: Pending, flow: &mut Flow<'_, '_>) {
        self.latest = self.latest.max(item.at());
        match item {
            Pending::Drop(drop, bytes) => {
                // Names come in blocks before the drops that use them.
                if self.reader.names().len() != flow.names.len() {
                    flow.names.clone_from(self.reader.names());
                }
                self.events += 1;
                flow.drop(&drop, &bytes);
                self.bytes = bytes;
            }
            Pending::Counters(c) => {
                if self.reader.names().len() != flow.names.len() {
                    flow.names.clone_from(self.reader.names());
                }
                flow.counters(c.kernel, c.lost_groups.iter().copied());
                if let Some(tcp) = c.tcp {
                    flow.tcp_counters(tcp);
                }
                if c.tcp_off {
                    flow.tcp_off();
                }
                if let Some(x) = &c.xdp {
                    flow.xdp_groups(&x.programs, x.groups.iter().copied(), c.at_ns);
                }
                self.last_counters = Some(c);
            }
            Pending::Tcp(ev) => {
                if self.reader.names().len() != flow.names.len() {
                    flow.names.clone_from(self.reader.names());
                }
                flow.tcp(&ev);
            }
        }
    }

    /// Hands over up to `limit` items due by `until`.
    fn hand_over_until(&mut self, until: u64, limit: usize, flow: &mut Flow<'_, '_>) {
        for _ in 0..limit {
            let Some(item) = self.read() else { return };
            if item.at() > until {
                self.pending = Some(item);
                return;
            }
            self.hand_over(item, flow);
        }
    }

    async fn next_paced(&mut self, pace: Pace, flow: &mut Flow<'_, '_>) -> Step {
        let control = Arc::clone(&self.control);
        tokio::select! {
            () = tokio::time::sleep(pace.interval) => {}
            () = control.stopping() => return Step::Stop(Stop::Requested),
        }
        let now = Instant::now();
        let elapsed = self.last_tick.map_or(pace.interval, |t| now - t);
        self.last_tick = Some(now);
        if !self.control.paused() && !self.ended {
            self.clock = match pace.speed {
                Speed::Max => u64::MAX,
                Speed::Factor(f) => self
                    .clock
                    .saturating_add((elapsed.as_nanos() as f64 * f) as u64),
            };
        }
        self.hand_over_until(self.clock, ITEMS_PER_TICK, flow);
        Step::Tick
    }
}

impl<R: Read> Source for RecordingSource<R> {
    fn names(&self) -> Names {
        self.reader.names().clone()
    }

    async fn next(&mut self, flow: &mut Flow<'_, '_>) -> Result<Step, Error> {
        if let Some(pace) = self.pace {
            return Ok(self.next_paced(pace, flow).await);
        }
        self.hand_over_until(u64::MAX, BATCH, flow);
        if let Some(e) = self.failed.take() {
            return Err(self.error(e));
        }
        Ok(if self.ended && self.pending.is_none() {
            Step::Stop(Stop::End)
        } else {
            Step::More
        })
    }

    /// At the end of the file, the figures a recording stands for: its last counters, and
    /// for a cut recording the drops read after them too.
    fn finish(&mut self, flow: &mut Flow<'_, '_>) -> Result<(), Error> {
        if let Some(e) = self.failed.take() {
            return Err(self.error(e));
        }
        if !self.ended {
            return Ok(());
        }
        let agg = flow.agg();
        // A cut recording's TCP events can be ahead of its last counters.
        let tcp = self.last_counters.as_ref().and_then(|c| c.tcp).map(|c| {
            let delivered = agg.tcp().total();
            TcpCounters {
                retransmits: c.retransmits.max(delivered.retransmits),
                resets_sent: c.resets_sent.max(delivered.resets_sent_total()),
                resets_received: c.resets_received.max(delivered.resets_received),
                lost: c.lost,
                missed: c.missed,
            }
        });
        if let Some(tcp) = tcp {
            flow.tcp_counters(tcp);
        }
        let agg = flow.agg();
        match self.last_counters.take() {
            Some(c) => {
                let mut kernel = c.kernel;
                if self.reader.status() != Status::Complete {
                    let lost: u64 = c.lost_groups.iter().map(|(_, n)| n).sum();
                    let verdicts: u64 = c.xdp.iter().flat_map(|x| &x.groups).map(|g| g.1).sum();
                    kernel.matched = kernel
                        .matched
                        .max(agg.delivered() + lost + verdicts + kernel.lost_ungrouped);
                }
                flow.counters(kernel, c.lost_groups);
            }
            None => {
                let mut kernel = agg.counters();
                kernel.matched = agg.delivered();
                flow.counters(kernel, []);
            }
        }
        Ok(())
    }

    /// The playback clock; never past the last item at the end or at full speed.
    fn now_ns(&self) -> u64 {
        match self.pace {
            Some(p) if !self.ended && p.speed != Speed::Max => self.clock,
            _ => self.latest,
        }
    }

    fn started_ns(&self) -> u64 {
        self.reader.header().started_ns
    }

    fn ended(&self) -> bool {
        self.ended && self.pending.is_none()
    }
}
