//! Recordings turned into formats other tools read: pcapng for Wireshark and tshark
//! ([`PcapngSink`]), JSON Lines for scripts ([`JsonlSink`]).
//!
//! Both are sinks of a recording source: they write as drops go by, and names come with
//! each drop (a recording's names blocks come before the drops that use them).
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::path::PathBuf;

use thiserror::Error;

use crate::{
    pipeline::Error,
    pipeline::{drive_blocking, names::Names, recording::RecordingSource, sink::Sink},
    record::{self, Header, Reader},
};

mod jsonl;
mod pcapng;

pub use jsonl::JsonlSink;
pub use pcapng::PcapngSink;

/// What an export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportStats {
    /// Drops written: packets in pcapng, lines in JSON Lines.
    pub packets: u64,
    /// Drops recorded without packet bytes: left out of pcapng (a packet needs bytes);
    /// written, and counted here too, in JSON Lines.
    pub without_bytes: u64,
    /// Interface Description Blocks written (pcapng; 0 for JSON Lines).
    pub interfaces: usize,
    /// How the recording ended: a cut recording is exported as far as it was read.
    pub status: record::Status,
    /// What was skipped of a damaged recording.
    pub damage: record::Damage,
}

#[derive(Debug, Error)]
pub enum ExportError {
    #[error(transparent)]
    Read(#[from] record::ReadError),
    #[error("writing the export: {0}")]
    Io(#[from] std::io::Error),
    #[error(
        "the recording has no packet bytes; record with \
         `droptrace record --snaplen 256 -o FILE` to keep them"
    )]
    NoPacketBytes,
}

impl ExportError {
    /// Whether the reader of the output went away (`droptrace export ... | head`).
    pub fn is_closed_pipe(&self) -> bool {
        matches!(self, ExportError::Io(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

/// The loop carries an export's error whole.
impl From<ExportError> for Error {
    fn from(e: ExportError) -> Error {
        Error::Other(Box::new(e))
    }
}

/// An export sink: what it has written so far.
pub trait Export: Sink {
    fn stats(&self) -> ExportStats;
}

/// Exports a whole recording through `sink`: the drive loop over the recording as a
/// source. Returns what was written; how the recording ended is in `status`.
pub fn export<R: Read>(
    reader: Reader<R>,
    sink: &mut impl Export,
) -> Result<ExportStats, ExportError> {
    let mut source = RecordingSource::new(reader, PathBuf::new());
    drive_blocking(&mut source, &mut [&mut *sink]).map_err(|e| match e {
        Error::Recording { source, .. } => ExportError::Read(source),
        Error::Io(_, e) => ExportError::Io(e),
        Error::Other(other) => match other.downcast::<ExportError>() {
            Ok(export) => *export,
            Err(other) => ExportError::Io(std::io::Error::other(other.to_string())),
        },
    })?;
    Ok(ExportStats {
        status: source.status(),
        damage: source.damage(),
        ..sink.stats()
    })
}

/// A recording as pcapng, written to `out`.
pub fn write_pcapng<R: Read, W: Write>(
    reader: Reader<R>,
    out: W,
) -> Result<ExportStats, ExportError> {
    let mut sink = PcapngSink::new(reader.header(), out)?;
    export(reader, &mut sink)
}

/// A recording as JSON Lines, written to `out`.
pub fn write_jsonl<R: Read, W: Write>(
    reader: Reader<R>,
    out: W,
) -> Result<ExportStats, ExportError> {
    let mut sink = JsonlSink::new(reader.header(), out);
    export(reader, &mut sink)
}

impl ExportStats {
    fn none() -> ExportStats {
        ExportStats {
            packets: 0,
            without_bytes: 0,
            interfaces: 0,
            status: record::Status::Reading,
            damage: record::Damage::default(),
        }
    }
}

/// How an export sink ends: the first write error, or its output flushed.
fn finish(failed: Option<ExportError>, out: &mut impl Write) -> Result<(), Error> {
    match failed {
        Some(e) => Err(e.into()),
        None => out.flush().map_err(|e| ExportError::Io(e).into()),
    }
}

/// The location as shown: `function+0xoff [module]`, or the address.
fn push_location(out: &mut String, names: &Names, address: u64) {
    match names.locations.get(&address) {
        Some(loc) => out.push_str(&loc.display),
        None => {
            let _ = write!(out, "{address:#x}");
        }
    }
}

/// Wall-clock nanoseconds of a `CLOCK_BOOTTIME` timestamp.
fn wall_ns(header: &Header, boottime_ns: u64) -> u64 {
    header.boot_time_ns.saturating_add(boottime_ns)
}

#[cfg(test)]
mod tests;
