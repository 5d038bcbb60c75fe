//! The live kernel as a source: checks privileges, learns the kernel, resolves the
//! filters and attaches; then hands the ring buffer's drops, decoded and named, to the
//! flow until a signal, the deadline or a stop request; detaches and hands over the
//! final, exact figures.
use std::{sync::Arc, time::Duration};

use tokio::{
    signal::unix::{signal, Signal, SignalKind},
    time::{interval, interval_at, Instant, Interval, MissedTickBehavior},
};

use crate::{
    format::warn,
    kernel::layout::Attach,
    kernel::reasons::DropReasonTable,
    pipeline::{
        event,
        names::Names,
        resolve::SymbolNames,
        source::{Control, Source, Step, Stop},
        Flow,
    },
    probe::Error,
};

use super::{
    attach::{Probe, ProbeOptions, Sampling},
    caps,
    clock::boottime_ns,
    discover,
    filters::{FilterSpec, Filters},
    kernel::{AyaMaps, KernelMaps},
    links::{LinkWatch, Scope},
    places::Places,
    workloads::{HostPaths, Scan, WorkloadResolver},
};

/// How often the ring buffer is drained when the kernel does not wake us.
const POLL: Duration = Duration::from_millis(100);

/// The ring buffer when every drop is streamed: room for some 50,000 events between reads.
const STREAM_RING: u32 = 4 << 20;
/// The ring buffer for samples: each CPU sends at most 256 of them a tenth of a second, 20
/// kB; 1 MiB holds seconds of them. Its pages are resident from the start (twice mapped),
/// so the 4 MiB of streaming would cost 6 MB more for nothing.
const SAMPLES_RING: u32 = 1 << 20;
/// How often the interfaces' counters are read at most.
const LINK_READINGS: Duration = Duration::from_secs(1);
/// How long the end of a run waits for the names of namespaces that came late.
const SETTLE: Duration = Duration::from_secs(1);
/// Events handled before the loop looks at signals and timers again.
const DRAIN_BATCH: usize = 65_536;
/// Batches drained before a tick goes ahead: under a flood faster than the reader the
/// ring never empties, and the figures (counted in the kernel) must still go out.
const TICK_BATCHES: usize = 16;

/// What the user asked of the probe (the command line's flags, without the parser that
/// read them).
#[derive(Debug, Clone)]
pub struct ProbeSpec {
    pub filters: FilterSpec,
    /// Bytes of the ring buffer; the default depends on sampling and the snap length.
    pub ring_buffer_size: Option<u32>,
    /// Every drop as an event, not sampled.
    pub stream: bool,
    /// Drop groups the kernel program keeps counts of.
    pub max_groups: u32,
    /// Leave out the TCP programs; the XDP verdict counters.
    pub no_tcp: bool,
    pub no_xdp: bool,
    pub verbose: bool,
    /// How to attach (the default: the best this kernel offers).
    pub attach: Option<Attach>,
    /// Where the host's /proc and runtime state are (`/` unless in a container).
    pub host_root: std::path::PathBuf,
}

/// How a live source runs.
#[derive(Debug, Clone, Default)]
pub struct LiveOptions {
    /// Bytes of each dropped packet to copy from its IP header (`--snaplen`).
    pub snaplen: u32,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Sinks see the figures this often.
    pub tick: Option<Duration>,
    /// Name the interfaces and namespaces of drops (enters namespaces: only for sinks
    /// that show or keep them).
    pub name_places: bool,
    /// Name the containers and pods of drops' namespaces (reads /proc and the runtimes'
    /// state: only for sinks that show or keep them).
    pub name_workloads: bool,
    /// Stop when asked from outside the loop (the live view quitting).
    pub control: Option<Arc<Control>>,
    /// Send every drop as an event (`record`, JSON Lines, `--stream`); otherwise the
    /// kernel counts by group and sends samples.
    pub stream: bool,
    /// Read the interfaces' own drop counters (rtnetlink) in every namespace watched,
    /// each tick and at the end.
    pub interfaces: bool,
    /// The live view has the terminal: nothing is printed once it started.
    pub on_terminal: bool,
    /// Leave XDP programs' verdicts out whatever the arguments say (a recording keeps
    /// events only).
    pub no_xdp: bool,
}

pub struct LiveSource<K: KernelMaps = AyaMaps> {
    /// Packet bytes the sinks are given (`--snaplen`): the kernel sends at least the
    /// few the length is read from.
    snaplen: usize,
    probe: Probe<K>,
    filters: Filters,
    reasons: Option<DropReasonTable>,
    /// The kernel's TCP reset reasons.
    reset_reasons: std::collections::BTreeMap<u32, String>,
    /// TCP tracing was turned off (`--no-tcp`).
    tcp_off: bool,
    symbols: SymbolNames,
    places: Option<Places>,
    workloads: Option<WorkloadResolver>,
    /// The workloads named at the start, before the first drop.
    initial_workloads:
        std::collections::HashMap<crate::pipeline::event::Netns, crate::pipeline::names::Workload>,
    control: Arc<Control>,
    /// The interfaces' counters, read beside the events.
    links: Option<LinkWatch>,
    /// The XDP programs' verdict counters.
    xdp: Option<super::xdp::XdpWatch>,
    /// Drop sites' source lines, where the command asked for them.
    lines: Option<super::lines::LineResolver>,
    /// Readings not yet handed to the flow (the first, taken before attaching).
    link_readings: Vec<crate::pipeline::interfaces::HostReading>,
    malformed: u64,
    verbose: bool,
    started_ns: u64,
    deadline: Option<Instant>,
    poll: Interval,
    tick: Option<Interval>,
    // Installed before attaching (and before the "watching" line), so a signal that comes
    // right after is never the default action that kills the process.
    sigint: Option<Signal>,
    sigterm: Option<Signal>,
}

impl LiveSource<AyaMaps> {
    /// Checks privileges, learns the kernel, resolves the filters and attaches. Needs a
    /// tokio runtime.
    pub fn start(args: &ProbeSpec, opts: LiveOptions) -> Result<LiveSource, Error> {
        let sigint =
            signal(SignalKind::interrupt()).map_err(|e| Error::Io("SIGINT handler".into(), e))?;
        let sigterm =
            signal(SignalKind::terminate()).map_err(|e| Error::Io("SIGTERM handler".into(), e))?;
        caps::check_tracing()?;
        let kernel = discover::learn_kernel(args.attach)?;
        let host = HostPaths::new(&args.host_root);
        let wants_scan =
            opts.name_workloads || args.filters.pod.is_some() || args.filters.container.is_some();
        // Every namespace there is now is named before attaching; later ones on the way.
        let scan = wants_scan.then(|| Scan::run(&host));
        // Before the filters: a namespace filter takes the cookie too, read as drops carry it.
        let cookies = kernel.layout.skb.is_some_and(|s| s.net_cookie.is_some());
        super::netns::set_cookies(cookies);
        let filters = Filters::resolve(
            &args.filters,
            kernel.reasons.as_ref(),
            scan.as_ref(),
            &args.host_root,
        )?;
        if kernel.layout.skb.is_none() && filters.needs_packet() {
            return Err(Error::NoPacketFilters);
        }
        let mut config = droptrace_common::Config::ZERO;
        kernel.layout.apply(&mut config);
        filters.apply(&mut config);
        if kernel.layout.skb.is_some() && !cookies {
            crate::format::warn(
                "this kernel's BTF has no namespace cookie (net.net_cookie, Linux 5.14): \
                 namespaces are told apart by inode only, so a namespace that gets a deleted \
                 one's inode is counted and named as that one",
            );
        }
        let snaplen = opts.snaplen.min(droptrace_common::SNAPLEN_MAX);
        // The first bytes of the IP header say how long the packet is, wherever it was
        // dropped (the skb's length counts an Ethernet header on transmit, and no IP
        // header once the transport pulled it): always ask for them. Not for the classic
        // tracepoint (`--attach tracepoint`): with the copy always there its program takes
        // 6.1's verifier over a minute under emulation; its lengths stay the skb's unless
        // --snaplen keeps the bytes they come from.
        config.snaplen = match kernel.layout.attach {
            crate::kernel::layout::Attach::BtfTracepoint => snaplen.max(event::NETWORK_LEN_BYTES),
            crate::kernel::layout::Attach::Tracepoint => snaplen,
        };
        // XDP verdicts carry no packet headers: counted only when no filter needs them.
        let xdp_reason = match (&kernel.xdp, kernel.reasons.as_ref()) {
            (None, _) => None,
            (Some(_), Some(table)) => table.lookup("NOT_SPECIFIED"),
            (Some(_), None) => (!kernel.layout.has_reason).then_some(0),
        };
        let count_xdp = !args.no_xdp
            && !opts.no_xdp
            && xdp_reason.is_some()
            && filters.include.is_empty()
            && !filters.needs_headers();
        if count_xdp {
            config.flags |= droptrace_common::CONFIG_XDP_OWNED;
            config.xdp_reason = xdp_reason.unwrap_or(0);
        }
        let sampled = !opts.stream && !args.stream;
        let ring_buffer_size = args.ring_buffer_size.unwrap_or(if sampled && snaplen == 0 {
            SAMPLES_RING
        } else {
            STREAM_RING
        });
        let probe = Probe::attach(ProbeOptions {
            config,
            reason_marks: filters.reason_marks(),
            ring_buffer_size,
            layout: kernel.layout,
            tracepoint_btf_id: kernel.tracepoint_btf_id,
            sampling: sampled.then(|| Sampling {
                max_groups: args.max_groups,
                ..Sampling::default()
            }),
            verbose: args.verbose,
            tcp: if args.no_tcp {
                None
            } else {
                kernel.tcp.clone()
            },
            xdp_exceptions: if count_xdp {
                kernel.xdp_exceptions.clone()
            } else {
                None
            },
        })?;
        let xdp = match (count_xdp, kernel.xdp, probe.xdp_owned()) {
            (true, Some(layout), Some(owned)) => {
                super::xdp::XdpWatch::start(layout, owned, !opts.on_terminal)
                    .map_err(|e| {
                        warn(&format!(
                            "XDP programs' verdicts and exceptions not counted: {e}"
                        ))
                    })
                    .ok()
            }
            _ => None,
        };
        give_back_freed_memory();
        // The interfaces' first reading is their baseline, taken before the "watching" line.
        let (links, link_readings) = if opts.interfaces {
            let scope = Scope {
                netns: filters.netns,
                netns_path: args.filters.netns.clone(),
                interface: filters.iface.clone(),
            };
            // Not more often than each second: every namespace is entered for a reading.
            let every = opts.tick.map_or(LINK_READINGS, |t| t.max(LINK_READINGS));
            let (watch, first) = LinkWatch::start(scope, every);
            (Some(watch), vec![first])
        } else {
            (None, Vec::new())
        };
        let mut poll = interval(POLL);
        poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let tick = opts.tick.map(|every| {
            let mut tick = interval_at(Instant::now() + every, every);
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            tick
        });
        // Keyed by cookie too: read now that the probe says whether drops carry cookies.
        let initial_workloads = match &scan {
            Some(s) if opts.name_workloads => s.by_netns(),
            _ => std::collections::HashMap::new(),
        };
        Ok(LiveSource {
            snaplen: snaplen as usize,
            probe,
            filters,
            reasons: kernel.reasons,
            reset_reasons: kernel
                .tcp
                .filter(|_| !args.no_tcp)
                .map(|t| t.reset_reasons.into_iter().collect())
                .unwrap_or_default(),
            tcp_off: args.no_tcp,
            symbols: SymbolNames::new(kernel.symbols),
            places: opts.name_places.then(Places::default),
            workloads: opts.name_workloads.then(|| {
                WorkloadResolver::start(host, initial_workloads.keys().copied().collect::<Vec<_>>())
            }),
            initial_workloads,
            control: opts.control.unwrap_or_default(),
            links,
            xdp,
            lines: None,
            link_readings,
            malformed: 0,
            verbose: args.verbose,
            started_ns: boottime_ns(),
            deadline: opts.duration.map(|d| Instant::now() + d),
            poll,
            tick,
            sigint: Some(sigint),
            sigterm: Some(sigterm),
        })
    }
}

impl<K: KernelMaps> LiveSource<K> {
    pub fn filters(&self) -> &Filters {
        &self.filters
    }

    /// The kernel-side filters in words.
    /// Names drop sites by their source lines (the resolver opens the debug info).
    pub fn with_source_lines(&mut self, lines: super::lines::LineResolver) {
        self.lines = Some(lines);
    }

    pub fn describe_filters(&self) -> String {
        self.filters.describe(self.reasons.as_ref())
    }

    pub fn reasons(&self) -> Option<&DropReasonTable> {
        self.reasons.as_ref()
    }

    /// The kernel's TCP reset reasons (empty before 6.10, or without the TCP programs).
    pub fn reset_reasons(&self) -> &std::collections::BTreeMap<u32, String> {
        &self.reset_reasons
    }

    /// How the program is attached: `tp_btf` or `tracepoint`.
    pub fn attach_mode(&self) -> &'static str {
        self.probe.attach_mode()
    }

    /// The line that says droptrace is attached (tests and scripts wait for it).
    pub fn announce(&self, until: &str) {
        eprintln!(
            "droptrace: watching skb:kfree_skb ({}); filters: {}; {until}",
            self.probe.program(),
            self.describe_filters(),
        );
    }

    fn refresh(&mut self, flow: &mut Flow<'_, '_>) -> Result<(), Error> {
        // The interfaces first: the XDP exceptions are ruled against their counters.
        if let Some(links) = &self.links {
            self.link_readings.extend(links.take());
        }
        for reading in self.link_readings.drain(..) {
            flow.interfaces(&reading);
        }
        let (mut counters, lost) = self.probe.read_counters()?;
        let mut xdp = self.xdp.as_ref().map(super::xdp::XdpWatch::read);
        if let Some(reading) = xdp.as_mut() {
            reading.exceptions = self.probe.xdp_exceptions().unwrap_or_default();
        }
        let filters = &self.filters;
        let keep = |k: &crate::kernel::xdp::VerdictKey| {
            filters.netns.is_none_or(|ns| ns == k.netns)
                && filters.ifindex.is_none_or(|i| i == k.ifindex)
                && !filters
                    .exclude
                    .contains(&crate::pipeline::xdp::verdict_reason(k.verdict))
        };
        if let Some(reading) = &xdp {
            // The verdicts are drops too: in the total (kfree_skb's program skipped the
            // ones that reached it, so each is counted once).
            let n: u64 = reading
                .counts
                .iter()
                .filter(|(k, _)| keep(k))
                .map(|(_, n)| n)
                .sum();
            counters.seen += n;
            counters.matched += n;
        }
        let exceptions: Vec<_> = xdp.as_ref().map_or_else(Vec::new, |reading| {
            flow.xdp_exception_rows(reading)
                .into_iter()
                .filter(|r| {
                    filters.netns.is_none_or(|ns| ns == r.group.netns.inode)
                        && filters.ifindex.is_none_or(|i| i == r.group.ifindex)
                })
                .collect()
        });
        // Exceptions counted nowhere else are drops too.
        let added: u64 = exceptions
            .iter()
            .filter(|r| r.also_counted_as.is_none())
            .map(|r| r.count)
            .sum();
        counters.seen += added;
        counters.matched += added;
        let read_ns = counters.read_ns;
        flow.counters(counters, lost);
        if let Some(reading) = &xdp {
            for r in &exceptions {
                if let Some(places) = self.places.as_mut() {
                    places.name_drop(&mut flow.names, r.group.netns, r.group.ifindex);
                }
            }
            flow.xdp(reading, exceptions, read_ns, keep);
            if let Some(places) = self.places.as_mut() {
                for (k, _) in reading.counts.iter().filter(|(k, _)| keep(k)) {
                    let netns = crate::pipeline::event::Netns::new(k.netns, k.netns_cookie);
                    places.name_drop(&mut flow.names, netns, k.ifindex);
                }
            }
        }

        if let Some(tcp) = self.probe.tcp() {
            flow.tcp_counters(tcp.read_counters()?);
        }
        if self.tcp_off {
            flow.tcp_off();
        }
        Ok(())
    }

    /// Hands up to `DRAIN_BATCH` waiting events to the flow; returns how many.
    fn drain_batch(&mut self, flow: &mut Flow<'_, '_>) -> usize {
        if let Some(w) = self.workloads.as_mut() {
            w.take(&mut flow.names);
        }
        let (symbols, places, malformed) = (&self.symbols, &mut self.places, &mut self.malformed);
        let (workloads, snaplen) = (&mut self.workloads, self.snaplen);
        if let Some(tcp) = self.probe.tcp() {
            tcp.drain(DRAIN_BATCH, |bytes| {
                match crate::pipeline::tcp::decode(bytes) {
                    Ok(ev) => {
                        // The drop's place first: it names the namespace's interfaces
                        // too, which naming the namespace alone first would put off.
                        if let Some(mark) = ev.drop {
                            symbols.name(&mut flow.names, mark.cause.location);
                            if let Some(places) = places.as_mut() {
                                places.name_drop(
                                    &mut flow.names,
                                    mark.cause.netns,
                                    mark.cause.ifindex,
                                );
                            }
                        }
                        if let Some(places) = places.as_mut() {
                            places.name_drop(&mut flow.names, ev.flow.netns, 0);
                        }
                        flow.tcp(&ev);
                    }
                    Err(_) => *malformed += 1,
                }
            });
        }
        self.probe
            .drain(DRAIN_BATCH, |bytes| match event::decode(bytes) {
                Ok(drop) => {
                    symbols.name(&mut flow.names, drop.location);
                    if let Some(places) = places.as_mut() {
                        places.name_drop(&mut flow.names, drop.netns, drop.ifindex);
                    }
                    if let Some(w) = workloads.as_mut() {
                        w.want(drop.netns);
                    }
                    let packet = event::packet_bytes(bytes);
                    flow.drop(&drop, &packet[..packet.len().min(snaplen)]);
                }
                Err(_) => *malformed += 1,
            })
    }

    fn drain_all(&mut self, flow: &mut Flow<'_, '_>) {
        while self.drain_batch(flow) == DRAIN_BATCH {}
    }
}

impl<K: KernelMaps> Source for LiveSource<K> {
    fn names(&self) -> Names {
        Names {
            workloads: self.initial_workloads.clone(),
            reset_reasons: self.reset_reasons.clone(),
            ..Names::with_reasons(self.reasons.clone())
        }
    }

    async fn next(&mut self, flow: &mut Flow<'_, '_>) -> Result<Step, crate::pipeline::Error> {
        let control = Arc::clone(&self.control);
        let deadline = self.deadline;
        tokio::select! {
            () = self.probe.readable() => {}
            _ = self.poll.tick() => {
                self.probe.next_epoch()?;
                self.probe.flush_log();
            }
            _ = tick(&mut self.tick) => {
                for _ in 0..TICK_BATCHES {
                    if self.drain_batch(flow) < DRAIN_BATCH {
                        break;
                    }
                }
                self.refresh(flow)?;
                if let Some(places) = self.places.as_mut() {
                    // Names that could not be learnt at the first drop are tried again.
                    let (names, agg) = flow.names_and_agg();
                    places.retry(names, agg);
                }
                if let Some(lines) = self.lines.as_mut() {
                    lines.tick(&mut flow.names);
                }
                return Ok(Step::Tick);
            }
            () = signalled(&mut self.sigint) => return Ok(Step::Stop(Stop::Signal)),
            () = signalled(&mut self.sigterm) => return Ok(Step::Stop(Stop::Signal)),
            () = sleep_until(deadline) => return Ok(Step::Stop(Stop::Deadline)),
            () = control.stopping() => return Ok(Step::Stop(Stop::Requested)),
        }
        self.drain_batch(flow);
        Ok(Step::More)
    }

    /// Detaches first, so nothing new arrives; then takes every event still in the ring
    /// and the final counters, which now agree exactly.
    fn finish(&mut self, flow: &mut Flow<'_, '_>) -> Result<(), crate::pipeline::Error> {
        self.probe.detach()?;
        if let Some(xdp) = self.xdp.as_mut() {
            xdp.detach();
        }
        if let Some(links) = self.links.as_mut() {
            self.link_readings.extend(links.finish());
        }
        // A run of the program that started before the detach may still be finishing on
        // another CPU: read until every matched drop is accounted for (bounded).
        for _ in 0..100 {
            self.drain_all(flow);
            self.refresh(flow)?;
            let c = flow.agg().counters();
            if flow.agg().delivered() + self.malformed >= c.sent {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if let Some(places) = self.places.as_mut() {
            let (names, agg) = flow.names_and_agg();
            places.retry(names, agg);
        }
        if let Some(w) = self.workloads.as_mut() {
            w.settle(&mut flow.names, SETTLE);
        }
        if let Some(lines) = self.lines.as_mut() {
            lines.finish(&mut flow.names);
        }
        self.probe.flush_log();
        let anomalies = flow.agg().counters().anomalies;
        if anomalies > 0 {
            warn(&format!(
                "{anomalies} packets did not read as this kernel's layout says they should \
                 (malformed packets, or a layout droptrace read wrong); counted all the same{}",
                if self.verbose {
                    ""
                } else {
                    "; --verbose shows them"
                }
            ));
        }
        if self.malformed > 0 {
            warn(&format!(
                "{} malformed events from the kernel were skipped",
                self.malformed
            ));
        }
        Ok(())
    }

    fn now_ns(&self) -> u64 {
        boottime_ns()
    }

    fn started_ns(&self) -> u64 {
        self.started_ns
    }
}

async fn tick(every: &mut Option<Interval>) {
    match every {
        Some(every) => {
            every.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Resolves when the signal comes (or its stream ends); never without a handler.
async fn signalled(signal: &mut Option<Signal>) {
    match signal {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Hands the heap freed by discovery and loading (the kernel's BTF parsed, the object and
/// its relocations: some 15 MB) back to the system: the allocator keeps freed memory for
/// reuse, and a long-running watch would carry it as resident memory it never uses.
fn give_back_freed_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: glibc's malloc_trim only releases free memory; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
impl<K: KernelMaps> LiveSource<K> {
    /// A live source over `probe` with nothing else of the host: no names, no interfaces,
    /// no XDP, no signals; for the loop's tests over a fake kernel.
    pub(crate) fn over(probe: Probe<K>, duration: Duration) -> LiveSource<K> {
        let mut poll = interval(POLL);
        poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
        LiveSource {
            snaplen: 64,
            probe,
            filters: Filters::default(),
            reasons: None,
            reset_reasons: std::collections::BTreeMap::new(),
            tcp_off: false,
            symbols: SymbolNames::new(None),
            places: None,
            workloads: None,
            initial_workloads: std::collections::HashMap::new(),
            control: Arc::default(),
            links: None,
            xdp: None,
            lines: None,
            link_readings: Vec::new(),
            malformed: 0,
            verbose: false,
            started_ns: 0,
            deadline: Some(Instant::now() + duration),
            poll,
            tick: None,
            sigint: None,
            sigterm: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use droptrace_common as wire;

    use super::*;
    use crate::{
        pipeline::drive,
        probe::kernel::{fake::FakeKernel, CpuCounters},
    };

    fn event(dport: u16) -> Vec<u8> {
        let ev = wire::DropEvent {
            timestamp_ns: 1_000,
            location: 0xffff_ffff_81f6_3411,
            reason: 12,
            netns: 4_026_532_000,
            netns_cookie: 8193,
            ifindex: 2,
            skb_len: 60,
            cpu: 0,
            l3_proto: event::ETH_P_IP,
            l4_proto: 6,
            flags: wire::EVENT_IPV4 | wire::EVENT_PORTS,
            saddr: [10, 77, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            daddr: [10, 77, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            sport: 40_000,
            dport,
            icmp_type: 0,
            icmp_code: 0,
            tcp_flags: 0,
            _pad: 0,
        };
        // SAFETY: a plain #[repr(C)] struct of integers, 88 bytes, read as bytes.
        let bytes = unsafe { std::mem::transmute::<wire::DropEvent, [u8; 88]>(ev) };
        bytes.to_vec()
    }

    fn cpu(matched: u64, sent: u64, lost: u64) -> CpuCounters {
        let mut c = [0; wire::COUNTER_COUNT as usize];
        c[wire::COUNTER_SEEN as usize] = matched;
        c[wire::COUNTER_MATCHED as usize] = matched;
        c[wire::COUNTER_SENT as usize] = sent;
        c[wire::COUNTER_LOST as usize] = lost;
        c
    }

    /// Runs the loop over the fake for `secs` of tokio's clock (paused: it runs at once).
    fn run(
        fake: FakeKernel,
        secs: u64,
    ) -> (
        Result<crate::pipeline::Outcome, crate::pipeline::Error>,
        bool,
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async {
            let probe = Probe::new(fake, "fake", 1, false, false);
            let mut source = LiveSource::over(probe, Duration::from_secs(secs));
            let outcome = drive(&mut source, &mut []).await;
            (outcome, source.probe.kernel_detached())
        })
    }

    #[test]
    fn every_event_is_drained_and_counted_then_the_program_detached() {
        let fake = FakeKernel {
            events: (0..3).map(|i| event(1678 + i)).collect(),
            counters: vec![cpu(5, 3, 2)],
            lost: vec![(
                wire::GroupKey {
                    location: 0xffff_ffff_81f6_3411,
                    reason: 12,
                    dport: 1678,
                    flags: wire::EVENT_PORTS | wire::EVENT_IPV4,
                    l3_proto: event::ETH_P_IP,
                    l4_proto: 6,
                    netns: 4_026_532_000,
                    ifindex: 2,
                    ..wire::GroupKey::default()
                },
                2,
            )],
            ..FakeKernel::default()
        };
        let (outcome, detached) = run(fake, 2);
        let outcome = outcome.unwrap();
        assert!(detached, "finish detaches");
        assert_eq!(outcome.agg.delivered(), 3);
        let c = outcome.agg.counters();
        assert_eq!((c.matched, c.lost, c.sent), (5, 2, 3));
        // The group of port 1678: its delivered event and the two lost with no room.
        let total: u64 = outcome.agg.groups().map(|(_, s)| s.count()).sum();
        assert_eq!(total, 5);
    }

    #[test]
    fn a_malformed_event_is_skipped_and_counted_not_fatal() {
        let fake = FakeKernel {
            events: [event(53), vec![1, 2, 3]].into_iter().collect(),
            counters: vec![cpu(2, 2, 0)],
            ..FakeKernel::default()
        };
        let (outcome, _) = run(fake, 1);
        let outcome = outcome.unwrap();
        assert_eq!(outcome.agg.delivered(), 1);
    }

    #[test]
    fn a_map_that_cannot_be_read_stops_the_run_with_its_error() {
        let fake = FakeKernel {
            counters: vec![cpu(0, 0, 0)],
            broken: true,
            ..FakeKernel::default()
        };
        let (outcome, _) = run(fake, 1);
        let err = outcome.unwrap_err();
        assert!(err.to_string().contains("COUNTERS"), "{err}");
    }
}
