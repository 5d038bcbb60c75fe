//! `droptrace replay`: a recording as a source of the live view. A thread plays the
//! file's items on the recording's own clock (times `--speed`), through the same
//! aggregator and snapshots as a live watch; the view cannot tell the difference.
use std::{
    io::Read,
    path::Path,
    sync::{mpsc, Arc},
    time::{Duration, Instant},
};

use crate::{
    aggregate::Aggregator,
    cli::{ReplayArgs, Speed},
    error::Error,
    event::Drop,
    kernel::reasons::DropReasonTable,
    record::{Counters, Item, ReadError, Reader, Recording},
    resolve::Resolver,
    text,
    tui::{
        self,
        snapshot::{Names, Snapshot, SourceInfo},
        Link,
    },
};

/// Items handled per refresh at most, so snapshots keep coming at any speed.
const ITEMS_PER_TICK: usize = 2_000_000;

/// Plays `args.file` in the live view; `terminal` says whether there is one to show it.
pub fn run(args: &ReplayArgs, terminal: bool) -> Result<String, Error> {
    // Opened here, so a bad file is an error before the terminal changes.
    let reader = Recording::open(&args.file).map_err(|source| Error::Recording {
        path: args.file.clone(),
        source,
    })?;
    if !terminal {
        return Err(Error::NotATerminal);
    }
    let header = reader.header();
    let info = SourceInfo {
        source: format!(
            "recording {} ({})",
            file_name(&args.file),
            if header.hostname.is_empty() {
                "?"
            } else {
                &header.hostname
            }
        ),
        kernel: header.kernel_release.clone(),
        filters: header.filters.clone(),
        debuginfo: Err("source lines need the recording kernel's vmlinux: not in a replay".into()),
    };
    let link = Arc::new(Link::default());
    let source_link = Arc::clone(&link);
    let (speed, interval) = (args.speed, Duration::from_secs_f64(args.interval));
    let path = args.file.clone();
    let (error_tx, error_rx) = mpsc::channel();
    let player = std::thread::Builder::new()
        .name("droptrace-replay".into())
        .spawn(move || play(reader, &source_link, speed, interval, &error_tx))
        .map_err(|e| Error::Io("starting the replay thread".into(), e))?;
    let shown = tui::app::run(info, &link, || player.is_finished());
    link.stop();
    let closing = player.join().unwrap_or_default();
    shown?;
    if let Ok(source) = error_rx.try_recv() {
        return Err(Error::Recording { path, source });
    }
    Ok(closing)
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// An item read ahead of the replay clock.
enum Pending {
    Drop(Drop),
    Counters(Counters),
}

impl Pending {
    fn at(&self) -> u64 {
        match self {
            Pending::Drop(d) => d.timestamp_ns,
            Pending::Counters(c) => c.at_ns,
        }
    }
}

/// Plays the recording until the view stops; returns the closing table of what was
/// played. A read error ends the playback (the view shows the end) and is sent back.
fn play<R: Read>(
    mut reader: Reader<R>,
    link: &Link,
    speed: Speed,
    interval: Duration,
    errors: &mpsc::Sender<ReadError>,
) -> String {
    let header = reader.header().clone();
    let reasons =
        DropReasonTable::from_entries(header.reasons.iter().map(|(v, n)| (*v, n.as_str())));
    let mut agg = Aggregator::new();
    let mut names = Arc::new(Names::default());
    let mut clock = header.started_ns;
    let mut latest = header.started_ns;
    let mut pending: Option<Pending> = None;
    let mut ended = false;
    let mut last_tick = Instant::now();
    while !link.stop_requested() {
        std::thread::sleep(interval);
        let elapsed = last_tick.elapsed();
        last_tick = Instant::now();
        if !link.paused() && !ended {
            clock = match speed {
                Speed::Max => u64::MAX,
                Speed::Factor(f) => clock.saturating_add((elapsed.as_nanos() as f64 * f) as u64),
            };
        }
        for _ in 0..ITEMS_PER_TICK {
            if ended {
                break;
            }
            let item = match pending.take() {
                Some(item) => item,
                None => match reader.next_item() {
                    Ok(Some(Item::Drop(d, _))) => Pending::Drop(d),
                    Ok(Some(Item::Counters(c))) => Pending::Counters(c),
                    Ok(None) => {
                        ended = true;
                        break;
                    }
                    Err(e) => {
                        let _ = errors.send(e);
                        ended = true;
                        break;
                    }
                },
            };
            if item.at() > clock {
                pending = Some(item);
                break;
            }
            latest = latest.max(item.at());
            match item {
                Pending::Drop(d) => agg.add(&d),
                Pending::Counters(c) => agg.set_kernel(c.kernel, c.lost_groups),
            }
        }
        if names.locations.len() != reader.names().locations.len()
            || names.interfaces.len() != reader.names().interfaces.len()
            || names.namespaces.len() != reader.names().namespaces.len()
            || names.reasons.is_empty()
        {
            names = Arc::new(view_names(&reader, &reasons));
        }
        // The screen's "now": the replay clock, but never past the last item at the end
        // or at full speed.
        let now = if ended || speed == Speed::Max {
            latest
        } else {
            clock
        };
        let mut snapshot =
            Snapshot::take(&agg, &names, header.started_ns, now, link.request(), |_| {
                None
            });
        snapshot.finished = ended;
        link.publish(snapshot);
    }
    let resolver = Resolver::recorded(reader.names().locations.clone(), Some(reasons));
    text::final_table(&agg, &resolver)
}

fn view_names<R: Read>(reader: &Reader<R>, reasons: &DropReasonTable) -> Names {
    let recorded = reader.names();
    Names {
        locations: recorded.locations.clone(),
        reasons: reasons.entries().map(|(v, n)| (v, n.to_owned())).collect(),
        interfaces: recorded.interfaces.clone(),
        namespaces: recorded.namespaces.clone(),
    }
}
