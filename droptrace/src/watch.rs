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
    event,
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
        mut on_interval: impl FnMut(&Watch) -> ControlFlow<()>,
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
                    self.drain_all();
                    self.refresh()?;
                    if on_interval(self).is_break() {
                        return Ok(Stop::Caller);
                    }
                    continue;
                }
                _ = self.sigint.recv() => return Ok(Stop::Signal),
                _ = self.sigterm.recv() => return Ok(Stop::Signal),
                () = sleep_until_opt(deadline) => return Ok(Stop::Deadline),
            }
            self.drain_batch();
        }
    }

    /// Detaches first, so nothing new arrives; then takes every event still in the ring
    /// and the final counters, which now agree exactly.
    pub fn finish(&mut self) -> Result<(), Error> {
        self.live.detach()?;
        // A run of the program that started before the detach may still be finishing on
        // another CPU: read until every matched drop is accounted for (bounded).
        for _ in 0..100 {
            self.drain_all();
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

    fn drain_batch(&mut self) -> usize {
        let (agg, malformed) = (&mut self.agg, &mut self.malformed);
        self.live
            .drain(DRAIN_BATCH, |bytes| match event::decode(bytes) {
                Ok(drop) => agg.add(&drop),
                Err(_) => *malformed += 1,
            })
    }

    fn drain_all(&mut self) {
        while self.drain_batch() == DRAIN_BATCH {}
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
