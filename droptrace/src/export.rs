//! Recordings turned into formats other tools read: pcapng for Wireshark and tshark
//! ([`write_pcapng`]), JSON Lines for scripts ([`write_jsonl`]).
//!
//! Both read the recording once and write as they go: the reader gathers names as their
//! blocks go by, and names are written before the first events that use them.
use std::collections::HashMap;
use std::fmt::Write as _;

use thiserror::Error;

use crate::record::{self, Header, Names};

mod jsonl;
mod pcapng;

pub use jsonl::write_jsonl;
pub use pcapng::write_pcapng;

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

/// Reason names of a recording, looked up per drop.
struct Reasons(HashMap<u32, String>);

impl Reasons {
    fn of(header: &Header) -> Reasons {
        Reasons(header.reasons.iter().cloned().collect())
    }

    /// The reason's name, `reason N` when the table lacks it, `None` when the recording
    /// has no reasons at all.
    fn name(&self, raw: u32) -> Option<String> {
        if self.0.is_empty() {
            return None;
        }
        Some(
            self.0
                .get(&raw)
                .cloned()
                .unwrap_or_else(|| format!("reason {raw}")),
        )
    }
}

/// The location as shown: `function+0xoff [module]`, or the address.
fn push_location(out: &mut String, names: &Names, address: u64) {
    match names.location(address) {
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
