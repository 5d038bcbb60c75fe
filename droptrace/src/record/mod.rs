//! Recordings: drops, counters and names written to a file, to replay or report later,
//! on another machine or kernel, without root.
//!
//! A recording is a short preamble (magic, format version) and a run of blocks, each with
//! its kind, length and a CRC-32. The writer gathers events into a block and writes it
//! whole, so a recorder killed mid-way leaves a file readable up to its last complete
//! block; a clean stop ends it with an `End` block. The byte layout is in [`format`].
//!
//! Names travel with the recording: the header holds the reason table, and `Names`
//! blocks hold the symbols of drop locations and the names of interfaces and network
//! namespaces, written before the first events that use them.
use thiserror::Error;

use crate::pipeline::{
    aggregate::KernelCounters,
    event::{Drop, Group},
    tcp::{TcpCounters, TcpEvent},
    xdp::XdpProgram,
};

pub mod format;
mod reader;
mod writer;

pub use reader::{Damage, Reader, Recording};
pub use writer::Writer;

/// What a recording says about itself and the machine it was made on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Version of the droptrace that made the recording.
    pub droptrace_version: String,
    /// `uname -r` of the recording machine.
    pub kernel_release: String,
    pub hostname: String,
    /// Wall-clock time of boot in nanoseconds since the Unix epoch: event timestamps
    /// (`CLOCK_BOOTTIME`) plus this are wall-clock times.
    pub boot_time_ns: u64,
    /// `CLOCK_BOOTTIME` nanoseconds when recording started.
    pub started_ns: u64,
    /// The filters the recording ran with, as shown to the user.
    pub filters: String,
    /// Packet bytes kept per event (0: none).
    pub snaplen: u32,
    /// Drop reasons of the recording kernel: raw value -> name.
    pub reasons: Vec<(u32, String)>,
    /// TCP reset reasons of the recording kernel (`enum sk_rst_reason`, 6.10+): raw value
    /// -> name (format version 4; empty before).
    pub reset_reasons: Vec<(u32, String)>,
}

impl Default for Header {
    fn default() -> Header {
        Header {
            droptrace_version: env!("CARGO_PKG_VERSION").to_owned(),
            kernel_release: String::new(),
            hostname: String::new(),
            boot_time_ns: 0,
            started_ns: 0,
            filters: String::new(),
            snaplen: 0,
            reasons: Vec::new(),
            reset_reasons: Vec::new(),
        }
    }
}

/// The exact counters at one moment, all absolute (not deltas).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// `CLOCK_BOOTTIME` nanoseconds when they were read.
    pub at_ns: u64,
    pub kernel: KernelCounters,
    /// Drops the kernel counted by group when their event was lost.
    pub lost_groups: Vec<(Group, u64)>,
    /// Ring-buffer records user space could not decode.
    pub malformed: u64,
    /// Drops of groups beyond the aggregator's limit.
    pub overflow: u64,
    /// The TCP programs' counters; `None` when they were not attached (and in files
    /// before format version 4).
    pub tcp: Option<TcpCounters>,
    /// TCP tracing was turned off (`--no-tcp`; format version 4).
    pub tcp_off: bool,
    /// The XDP programs' verdicts; `None` when they were not counted (and in files before
    /// format version 5).
    pub xdp: Option<XdpCounts>,
}

/// The XDP programs' verdicts at one moment (format version 5): the programs found, traced
/// or not, and the verdicts counted by group (absolute; their drops are in the kernel
/// counters' totals already).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XdpCounts {
    pub programs: Vec<XdpProgram>,
    pub groups: Vec<(Group, u64)>,
}

/// One thing read from a recording, in the order it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item<'a> {
    /// A drop and the first bytes of its packet (empty when none were kept).
    Drop(Drop, &'a [u8]),
    Counters(Counters),
    /// A TCP retransmit or reset (format version 4).
    Tcp(TcpEvent),
}

/// How a recording ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Not read to the end yet.
    Reading,
    /// Ended by the recorder.
    Complete,
    /// The recorder stopped without ending the file (killed, or out of disk); all blocks
    /// before `at_offset` were read.
    Truncated { at_offset: u64 },
}

#[derive(Debug, Error)]
pub enum ReadError {
    #[error("reading the recording: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a droptrace recording (wrong magic bytes)")]
    NotARecording,
    #[error(
        "the recording is in format version {found}, newer than this droptrace reads \
         (up to {supported}); use a newer droptrace"
    )]
    NewerVersion { found: u32, supported: u32 },
    #[error("the recording is in format version {0}, which no droptrace writes")]
    BadVersion(u32),
    #[error("the recording ends at byte {at_offset}, before its header is complete")]
    NoHeader { at_offset: u64 },
    #[error("corrupt recording: bad checksum in the block at byte {offset}")]
    Checksum { offset: u64 },
    #[error("corrupt recording: block at byte {offset} claims {len} bytes, more than possible")]
    BlockTooLarge { offset: u64, len: u64 },
    #[error("corrupt recording: unknown block kind {kind} at byte {offset}")]
    UnknownBlock { offset: u64, kind: u8 },
    #[error("corrupt recording: {what} at byte {offset}")]
    Malformed { offset: u64, what: &'static str },
}

#[derive(Debug, Error)]
pub enum WriteError {
    #[error("writing the recording: {0}")]
    Io(#[from] std::io::Error),
    #[error("a name of {0} bytes is too long to record")]
    StringTooLong(usize),
    #[error("{0} lost groups do not fit in one block")]
    TooManyGroups(usize),
    #[error("snaplen {0} is larger than the 65535 bytes a recording keeps")]
    SnaplenTooLarge(u32),
}

#[cfg(test)]
pub(crate) mod tests;
