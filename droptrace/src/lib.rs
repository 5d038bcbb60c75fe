//! droptrace: where and why the kernel drops packets.
//!
//! The pipeline runs in one direction:
//! source (live ring buffer) -> decode ([`event`]) -> resolve (symbols, reason names)
//! -> aggregate -> sinks (live view, text, JSON summary).
//! Only [`live`] touches aya and the kernel; everything after decoding is plain Rust that
//! runs without root.
pub mod aggregate;
pub mod caps;
pub mod cli;
pub mod diagnose;
pub mod error;
pub mod event;
pub mod export;
pub mod feed;
pub mod filter;
pub mod kernel;
pub mod layout;
pub mod live;
pub mod places;
pub mod record;
pub mod recorder;
pub mod replay;
pub mod report;
pub mod resolve;
pub mod run;
pub mod summary;
pub mod text;
pub mod tui;
pub mod watch;
