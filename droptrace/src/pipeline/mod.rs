//! The pipeline, in one direction:
//!
//! ```text
//! Source (probe::LiveSource | RecordingSource) -> decode -> resolve (Names)
//!     -> aggregate -> sinks (text | JSON | recorder | live view | export)
//! ```
//!
//! [`drive`] is the one loop: it asks a [`Source`] for what comes next, and the source hands
//! its drops, already decoded and named, to the [`Flow`], which counts them in the
//! [`Aggregator`] and hands them to every [`Sink`]. Nothing here needs root.
pub mod aggregate;
pub mod error;
pub mod event;
pub mod host;
pub mod interfaces;
pub mod names;
pub mod recording;
pub mod resolve;
pub mod samples;
pub mod sink;
pub mod source;
pub mod tcp;
pub mod xdp;

use std::ops::ControlFlow;

pub use aggregate::{Aggregator, KernelCounters};
pub use error::Error;
pub use names::Names;
pub use sink::{Moment, Sink};
pub use source::{Control, Source, Step, Stop};

use event::{Drop, Group};

/// The part of the pipeline after the source: names, counts and sinks.
pub struct Flow<'a, 'b> {
    pub names: Names,
    agg: Aggregator,
    sinks: &'a mut [&'b mut dyn Sink],
    /// A sink said it had what it wanted.
    sink_stop: bool,
}

impl<'a, 'b> Flow<'a, 'b> {
    pub fn new(names: Names, sinks: &'a mut [&'b mut dyn Sink]) -> Flow<'a, 'b> {
        Flow {
            names,
            agg: Aggregator::new(),
            sinks,
            sink_stop: false,
        }
    }

    /// A drop, named already: counted, then handed to every sink.
    pub fn drop(&mut self, drop: &Drop, packet: &[u8]) {
        self.agg.add(drop);
        for sink in self.sinks.iter_mut() {
            if sink.drop(drop, packet, &self.names).is_break() {
                self.sink_stop = true;
            }
        }
    }

    /// The kernel's counters and lost-by-group figures (absolute values).
    pub fn counters(
        &mut self,
        kernel: KernelCounters,
        lost: impl IntoIterator<Item = (Group, u64)>,
    ) {
        self.agg.set_kernel(kernel, lost);
    }

    /// The interfaces' counters as read now (absolute values; their growth is kept).
    pub fn interfaces(&mut self, reading: &interfaces::HostReading) {
        self.agg.set_interfaces(reading);
    }

    /// The XDP exceptions of a reading, ruled (see `xdp::also_counted_as`) against the
    /// interfaces' counters read so far.
    pub fn xdp_exception_rows(&self, reading: &xdp::XdpReading) -> Vec<xdp::ExceptionRow> {
        let interfaces = self.agg.interfaces();
        xdp::exception_rows(reading, |netns, ifindex| {
            interfaces.counts_xdp_drops_at(netns, ifindex)
        })
    }

    /// The XDP programs' verdicts as read (absolute values): the programs are named, the
    /// counts that `keep` keeps become groups; `exceptions` (from `xdp_exception_rows`)
    /// are kept, those counted nowhere else as groups.
    pub fn xdp(
        &mut self,
        reading: &xdp::XdpReading,
        exceptions: Vec<xdp::ExceptionRow>,
        read_ns: u64,
        keep: impl Fn(&crate::kernel::xdp::VerdictKey) -> bool,
    ) {
        self.agg.set_xdp_exceptions(exceptions, read_ns);
        self.xdp_groups(
            &reading.programs,
            reading
                .counts
                .iter()
                .filter(|(k, _)| keep(k))
                .map(|(k, n)| {
                    let netns = event::Netns::new(k.netns, k.netns_cookie);
                    (xdp::group(k.prog_id, k.verdict, netns, k.ifindex), *n)
                }),
            read_ns,
        );
    }

    /// The XDP programs and their verdicts by group (absolute values; a recording's):
    /// the programs are named, the groups counted.
    pub fn xdp_groups(
        &mut self,
        programs: &[xdp::XdpProgram],
        groups: impl IntoIterator<Item = (event::Group, u64)>,
        read_ns: u64,
    ) {
        for p in programs {
            xdp::name_program(&mut self.names, p.id, &p.name);
        }
        self.agg.set_xdp(groups, read_ns);
        self.agg.set_xdp_programs(programs);
    }

    /// A TCP retransmit or reset, named already: counted, then handed to every sink.
    pub fn tcp(&mut self, event: &tcp::TcpEvent) {
        self.agg.add_tcp(event);
        for sink in self.sinks.iter_mut() {
            if sink.tcp(event, &self.names).is_break() {
                self.sink_stop = true;
            }
        }
    }

    /// The TCP programs' counters (absolute values).
    pub fn tcp_counters(&mut self, counters: tcp::TcpCounters) {
        self.agg.set_tcp_counters(counters);
    }

    /// TCP tracing was turned off (`--no-tcp`).
    pub fn tcp_off(&mut self) {
        self.agg.set_tcp_off();
    }

    pub fn agg(&self) -> &Aggregator {
        &self.agg
    }

    /// Names and counts together (a source names what its counts hold).
    pub fn names_and_agg(&mut self) -> (&mut Names, &Aggregator) {
        (&mut self.names, &self.agg)
    }

    fn tick(&mut self, now_ns: u64, started_ns: u64, ended: bool) -> ControlFlow<()> {
        let at = Moment {
            agg: &self.agg,
            names: &self.names,
            now_ns,
            started_ns,
            ended,
        };
        let mut flow = ControlFlow::Continue(());
        for sink in self.sinks.iter_mut() {
            if sink.tick(&at).is_break() {
                flow = ControlFlow::Break(());
            }
        }
        flow
    }
}

/// What a run ends with: the exact counts, the names, and why it stopped.
#[derive(Debug)]
pub struct Outcome {
    pub agg: Aggregator,
    pub names: Names,
    pub stop: Stop,
}

/// The drive loop: runs `source` into `sinks` until the source, a signal, the deadline
/// or a sink says stop; then the source hands over what is in flight and every sink
/// finishes with the final figures.
pub async fn drive<S: Source>(
    source: &mut S,
    sinks: &mut [&mut dyn Sink],
) -> Result<Outcome, Error> {
    let mut flow = Flow::new(source.names(), sinks);
    let stop = loop {
        let step = source.next(&mut flow).await?;
        if flow.sink_stop {
            break Stop::Sink;
        }
        match step {
            Step::More => {}
            Step::Tick => {
                if flow
                    .tick(source.now_ns(), source.started_ns(), source.ended())
                    .is_break()
                {
                    break Stop::Sink;
                }
            }
            Step::Stop(stop) => break stop,
        }
    };
    source.finish(&mut flow)?;
    let at = Moment {
        agg: &flow.agg,
        names: &flow.names,
        now_ns: source.now_ns(),
        started_ns: source.started_ns(),
        ended: source.ended(),
    };
    let mut result = Ok(());
    for sink in flow.sinks.iter_mut() {
        let finished = sink.finish(&at);
        if result.is_ok() {
            result = finished;
        }
    }
    result?;
    Ok(Outcome {
        agg: flow.agg,
        names: flow.names,
        stop,
    })
}

/// [`drive`] for sources that never wait on the outside world for long (recordings read
/// as fast as they go), from code that is not async.
pub fn drive_blocking<S: Source>(
    source: &mut S,
    sinks: &mut [&mut dyn Sink],
) -> Result<Outcome, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| Error::Io("starting the runtime".into(), e))?
        .block_on(drive(source, sinks))
}

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
pub(crate) mod tests;
