//! Where drops go: the text lines, the JSON summary, a recording, the live view, an
//! export. A sink sees every drop (named already) and, on every tick of the source's
//! clock and at the end, the figures so far.
use std::ops::ControlFlow;

use super::Error;

use super::{aggregate::Aggregator, event::Drop, names::Names, tcp::TcpEvent};

/// The figures at one moment, as a sink sees them.
#[derive(Debug, Clone, Copy)]
pub struct Moment<'a> {
    pub agg: &'a Aggregator,
    pub names: &'a Names,
    /// The source's clock (`CLOCK_BOOTTIME` ns).
    pub now_ns: u64,
    /// When the source started, on the same clock.
    pub started_ns: u64,
    /// The source has nothing more to give (a recording played to its end).
    pub ended: bool,
}

impl Moment<'_> {
    pub fn elapsed_secs(&self) -> f64 {
        self.now_ns.saturating_sub(self.started_ns) as f64 / 1e9
    }
}

pub trait Sink {
    /// Every drop, with the bytes kept of its packet (`--snaplen`; empty otherwise) and
    /// the names known so far, its own included. `Break` ends the run; the drops still in
    /// flight are handed over all the same (they count).
    fn drop(&mut self, _drop: &Drop, _packet: &[u8], _names: &Names) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }

    /// Every TCP retransmit or reset, with the names known so far (the drop that explains
    /// it named too). `Break` ends the run.
    fn tcp(&mut self, _event: &TcpEvent, _names: &Names) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }

    /// Every tick of the source's clock; `Break` ends the run.
    fn tick(&mut self, _at: &Moment<'_>) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }

    /// Once, with the final, exact figures.
    fn finish(&mut self, _at: &Moment<'_>) -> Result<(), Error> {
        Ok(())
    }
}
