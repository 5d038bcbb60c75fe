//! One attached watch of kernel drops, shared by every command: learn the kernel, attach,
//! then one loop that moves events through decode -> aggregate until a signal, the
//! deadline or the caller says stop; detach and take the final, exact figures.
use std::{io::BufReader, ops::ControlFlow, path::Path, time::Duration};

use tokio::{
    signal::unix::{signal, Signal, SignalKind},
    time::{interval, Instant, MissedTickBehavior},
};

use crate::{
    aggregate::Aggregator,
    caps::Capabilities,
    cli::LiveArgs,
    error::Error,
    event::{self, Drop},
    filter::Filters,
    kernel::{btf::Btf, kallsyms::KernelSymbols, reasons::DropReasonTable, tracefs},
    layout::KernelLayout,
    live::{Live, LiveOptions},
    resolve::Resolver,
};

const BTF_PATH: &str = "/sys/kernel/btf/vmlinux";
const TRACEFS_DIRS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];
/// How often the ring buffer is drained when the kernel does not wake us.
const POLL: Duration = Duration::from_millis(100);
/// Events handled before the loop looks at signals and timers again.
const DRAIN_BATCH: usize = 65_536;

/// An attached kernel program and what its drops add up to.
pub struct Watch {
    live: Live,
    pub resolver: Resolver,
    pub filters: Filters,
    pub agg: Aggregator,
    malformed: u64,
    started: Instant,
    // Installed before attaching (and before the "watching" line), so a signal that comes
    // right after is never the default action that kills the process.
    sigint: Signal,
    sigterm: Signal,
}

/// Where a watch's events and figures go besides its aggregator (a recording, a view).
pub trait Sink {
    /// Every decoded drop, with the packet bytes kept (`--snaplen`); `Break` stops the
    /// watch.
    fn event(&mut self, _drop: &Drop, _packet: &[u8], _resolver: &Resolver) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }

    /// Every interval, with up-to-date figures; `Break` stops the watch.
    fn interval(&mut self, _watch: &Watch) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }
}

/// A sink that only looks at the figures, every interval.
pub struct EveryInterval<F>(pub F);

impl<F: FnMut(&Watch) -> ControlFlow<()>> Sink for EveryInterval<F> {
    fn interval(&mut self, watch: &Watch) -> ControlFlow<()> {
        (self.0)(watch)
    }
}

/// Drops nothing, looks at nothing.
pub struct NoSink;

impl Sink for NoSink {}

/// What ended the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Signal,
    Deadline,
    Caller,
}

impl Watch {
    /// Checks privileges, learns the kernel, resolves the filters and attaches.
    pub fn start(args: &LiveArgs) -> Result<Watch, Error> {
        Watch::start_with(args, 0)
    }

    /// As `start`, also copying up to `snaplen` bytes of each dropped packet.
    pub fn start_with(args: &LiveArgs, snaplen: u32) -> Result<Watch, Error> {
        let sigint =
            signal(SignalKind::interrupt()).map_err(|e| Error::Io("SIGINT handler".into(), e))?;
        let sigterm =
            signal(SignalKind::terminate()).map_err(|e| Error::Io("SIGTERM handler".into(), e))?;
        check_capabilities()?;
        let kernel = learn_kernel(args.attach)?;
        let filters = Filters::resolve(&args.filters, kernel.reasons.as_ref())?;
        if kernel.layout.skb.is_none() && filters.needs_packet() {
            return Err(Error::NoPacketFilters);
        }
        let mut config = droptrace_common::Config::ZERO;
        kernel.layout.apply(&mut config);
        filters.apply(&mut config);
        config.snaplen = snaplen.min(droptrace_common::SNAPLEN_MAX);
        let live = Live::start(LiveOptions {
            config,
            reason_marks: filters.reason_marks(),
            ring_buffer_size: args.ring_buffer_size,
            layout: kernel.layout.clone(),
        })?;
        Ok(Watch {
            live,
            resolver: Resolver::new(kernel.symbols, kernel.reasons),
            filters,
            agg: Aggregator::new(),
            malformed: 0,
            started: Instant::now(),
            sigint,
            sigterm,
        })
    }

    /// The line that says droptrace is attached (tests and scripts wait for it).
    pub fn announce(&self, until: &str) {
        eprintln!(
            "droptrace: watching skb:kfree_skb ({}); filters: {}; {until}",
            self.live.program(),
            self.filters.describe(self.resolver.reasons()),
        );
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Runs until SIGINT/SIGTERM, `duration`, or `on_interval` breaks. `on_interval` is
    /// called every `interval` with up-to-date figures.
    pub async fn run(
        &mut self,
        duration: Option<Duration>,
        interval_every: Option<Duration>,
        on_interval: impl FnMut(&Watch) -> ControlFlow<()>,
    ) -> Result<Stop, Error> {
        self.run_into(duration, interval_every, &mut EveryInterval(on_interval))
            .await
    }

    /// Runs until SIGINT/SIGTERM, `duration`, or the sink breaks, handing the sink every
    /// event and, every `interval`, the figures.
    pub async fn run_into(
        &mut self,
        duration: Option<Duration>,
        interval_every: Option<Duration>,
        sink: &mut impl Sink,
    ) -> Result<Stop, Error> {
        let deadline = duration.map(|d| Instant::now() + d);
        let mut poll = interval(POLL);
        poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut every = interval(interval_every.unwrap_or(Duration::from_secs(3600)));
        every.set_missed_tick_behavior(MissedTickBehavior::Delay);
        every.tick().await;

        loop {
            tokio::select! {
                () = self.live.readable() => {}
                _ = poll.tick() => {}
                _ = every.tick(), if interval_every.is_some() => {
                    if self.drain_all(sink).is_break() {
                        return Ok(Stop::Caller);
                    }
                    self.refresh()?;
                    if sink.interval(self).is_break() {
                        return Ok(Stop::Caller);
                    }
                    continue;
                }
                _ = self.sigint.recv() => return Ok(Stop::Signal),
                _ = self.sigterm.recv() => return Ok(Stop::Signal),
                () = sleep_until_opt(deadline) => return Ok(Stop::Deadline),
            }
            if self.drain_batch(sink).1.is_break() {
                return Ok(Stop::Caller);
            }
        }
    }

    /// Detaches first, so nothing new arrives; then takes every event still in the ring
    /// and the final counters, which now agree exactly.
    pub fn finish(&mut self) -> Result<(), Error> {
        self.finish_into(&mut NoSink)
    }

    /// As `finish`, handing the sink the last events (a recording keeps them all, so its
    /// counts are as exact as the watch's).
    pub fn finish_into(&mut self, sink: &mut impl Sink) -> Result<(), Error> {
        self.live.detach()?;
        // A run of the program that started before the detach may still be finishing on
        // another CPU: read until every matched drop is accounted for (bounded).
        for _ in 0..100 {
            // A sink that wants to stop (a count reached) still gets these: they count.
            let _ = self.drain_all(&mut Always(&mut *sink));
            self.refresh()?;
            let c = self.agg.counters();
            if self.agg.delivered() + self.malformed + c.lost >= c.matched {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if self.malformed > 0 {
            warn(&format!(
                "{} malformed events from the kernel were skipped",
                self.malformed
            ));
        }
        Ok(())
    }

    fn refresh(&mut self) -> Result<(), Error> {
        let (counters, lost) = self.live.read_counters()?;
        self.agg.set_kernel(counters, lost);
        Ok(())
    }

    /// Reads up to `DRAIN_BATCH` events; returns how many and whether the sink wants to
    /// stop (the events of the batch are all handled either way).
    fn drain_batch(&mut self, sink: &mut impl Sink) -> (usize, ControlFlow<()>) {
        let (agg, malformed, resolver) = (&mut self.agg, &mut self.malformed, &self.resolver);
        let mut flow = ControlFlow::Continue(());
        let n = self
            .live
            .drain(DRAIN_BATCH, |bytes| match event::decode(bytes) {
                Ok(drop) => {
                    agg.add(&drop);
                    if sink
                        .event(&drop, event::packet_bytes(bytes), resolver)
                        .is_break()
                    {
                        flow = ControlFlow::Break(());
                    }
                }
                Err(_) => *malformed += 1,
            });
        (n, flow)
    }

    fn drain_all(&mut self, sink: &mut impl Sink) -> ControlFlow<()> {
        loop {
            let (n, flow) = self.drain_batch(sink);
            if flow.is_break() || n < DRAIN_BATCH {
                return flow;
            }
        }
    }
}

/// A sink whose `Break` is ignored: after detaching, every event still counts.
struct Always<'a, S: Sink>(&'a mut S);

impl<S: Sink> Sink for Always<'_, S> {
    fn event(&mut self, drop: &Drop, packet: &[u8], resolver: &Resolver) -> ControlFlow<()> {
        let _ = self.0.event(drop, packet, resolver);
        ControlFlow::Continue(())
    }
}

/// Everything droptrace learns about the running kernel before attaching.
struct KernelInfo {
    layout: KernelLayout,
    reasons: Option<DropReasonTable>,
    symbols: Option<KernelSymbols>,
}

fn learn_kernel(force: Option<crate::layout::Attach>) -> Result<KernelInfo, Error> {
    let btf = match Btf::from_file(Path::new(BTF_PATH)) {
        Ok(btf) => Some(btf),
        Err(e) => {
            warn(&format!(
                "no usable kernel BTF ({e}); attaching without packet details"
            ));
            None
        }
    };
    let format_text = TRACEFS_DIRS
        .iter()
        .find_map(|dir| std::fs::read_to_string(format!("{dir}/events/skb/kfree_skb/format")).ok());
    let format = match format_text.as_deref().map(tracefs::parse) {
        Some(Ok(f)) => Some(f),
        Some(Err(e)) => {
            warn(&format!(
                "cannot read the skb:kfree_skb tracefs format: {e}"
            ));
            None
        }
        None => None,
    };
    if btf.is_none() && format.is_none() {
        let mounted = TRACEFS_DIRS
            .iter()
            .any(|d| Path::new(d).join("events").is_dir());
        return Err(if mounted {
            crate::layout::LayoutError::NoTracepoint.into()
        } else {
            Error::NoTracefs
        });
    }
    let layout = KernelLayout::detect(btf.as_ref(), format.as_ref(), force)?;
    let reasons = if layout.has_reason {
        btf.as_ref()
            .and_then(|btf| {
                let mut table = DropReasonTable::from_btf(btf)?;
                add_module_reasons(&mut table, btf);
                Some(table)
            })
            .or_else(|| {
                format
                    .as_ref()
                    .and_then(DropReasonTable::from_tracefs_format)
            })
    } else {
        warn("this kernel gives no drop reasons (they arrived in Linux 5.17): showing drop locations only");
        None
    };
    let symbols = match std::fs::File::open("/proc/kallsyms") {
        Ok(f) => match KernelSymbols::parse(BufReader::new(f)) {
            Ok(s) if s.addresses_hidden() => {
                warn(
                    "kernel addresses are hidden (kernel.kptr_restrict), so drop locations stay \
                     numeric; run as root or with CAP_SYSLOG, or: sudo sysctl kernel.kptr_restrict=0",
                );
                None
            }
            Ok(s) => Some(s),
            Err(e) => {
                warn(&format!(
                    "cannot read /proc/kallsyms ({e}): drop locations stay numeric"
                ));
                None
            }
        },
        Err(e) => {
            warn(&format!(
                "cannot open /proc/kallsyms ({e}): drop locations stay numeric"
            ));
            None
        }
    };
    Ok(KernelInfo {
        layout,
        reasons,
        symbols,
    })
}

/// Subsystem drop reasons (openvswitch, mac80211, ...) live in their modules' split BTF.
fn add_module_reasons(table: &mut DropReasonTable, vmlinux: &Btf) {
    let Ok(dir) = std::fs::read_dir("/sys/kernel/btf") else {
        return;
    };
    let modules: Vec<_> = dir
        .flatten()
        .filter(|e| e.file_name() != "vmlinux")
        .take(4096)
        .map(|e| e.path())
        .collect();
    if modules.is_empty() {
        return;
    }
    let base = std::sync::Arc::new(vmlinux.clone());
    for path in modules {
        if let Ok(module) = Btf::from_split_file(&path, std::sync::Arc::clone(&base)) {
            table.add_btf(&module);
        }
    }
}

/// Fails with the capabilities missing to load and attach the kernel program.
pub fn check_capabilities() -> Result<(), Error> {
    if let Some(caps) = Capabilities::current() {
        let missing = caps.missing_for_tracing();
        if !missing.is_empty() {
            return Err(Error::MissingCapabilities(missing));
        }
    }
    Ok(())
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

pub fn warn(message: &str) {
    eprintln!("droptrace: warning: {message}");
}
