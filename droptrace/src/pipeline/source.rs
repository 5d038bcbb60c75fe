//! Where drops come from. Two sources exist: the live kernel probe (`probe::LiveSource`)
//! and a recording ([`super::recording::RecordingSource`]). The drive loop and every sink
//! treat them alike.
use std::{
    future::Future,
    sync::atomic::{AtomicBool, Ordering},
};

use super::Error;

use super::{names::Names, Flow};

/// What a source's wait ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Items were handed to the flow (or none came); keep going.
    More,
    /// An interval of the source's clock has passed: sinks see the figures now.
    Tick,
    /// Nothing more will come.
    Stop(Stop),
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGINT or SIGTERM.
    Signal,
    /// `--duration` ran out.
    Deadline,
    /// The [`Control`] asked (the live view quit).
    Requested,
    /// A sink had what it wanted (`--count`, a closed stdout, a write error).
    Sink,
    /// A recording was read to its end.
    End,
}

/// A source of drops. The drive loop calls [`Source::next`] until it says stop, then
/// [`Source::finish`] once.
pub trait Source {
    /// The names known before the first drop (a kernel's reason table, a recording's
    /// names so far).
    fn names(&self) -> Names;

    /// Waits for what comes next and hands the items that came (named first) to `flow`.
    fn next(&mut self, flow: &mut Flow<'_, '_>) -> impl Future<Output = Result<Step, Error>>;

    /// After the last step: hands over whatever is still in flight and the final counters,
    /// so the flow's figures are exact.
    fn finish(&mut self, flow: &mut Flow<'_, '_>) -> Result<(), Error>;

    /// The source's clock now (`CLOCK_BOOTTIME` ns, the clock of drop timestamps).
    fn now_ns(&self) -> u64;

    /// When the source started, on the same clock.
    fn started_ns(&self) -> u64;

    /// Whether the source has nothing more to give (a recording played to its end, shown
    /// until the view quits).
    fn ended(&self) -> bool {
        false
    }
}

/// Requests from outside the loop (the live view's thread): stop, and pause (a recording's
/// clock waits; the live kernel keeps counting).
#[derive(Debug, Default)]
pub struct Control {
    stop: AtomicBool,
    stopped: tokio::sync::Notify,
    paused: AtomicBool,
}

impl Control {
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.stopped.notify_one();
    }

    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Resolves once a stop is requested.
    pub async fn stopping(&self) {
        if !self.stop_requested() {
            self.stopped.notified().await;
        }
    }

    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::SeqCst);
    }

    pub fn paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }
}
