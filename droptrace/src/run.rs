//! A live run: learn the kernel, attach, then one loop that moves events through
//! decode -> aggregate -> sinks until a signal or the deadline.
use std::{
    io::{BufReader, Write},
    path::Path,
    time::Duration,
};

use tokio::{
    signal::unix::{signal, SignalKind},
    time::{interval, Instant, MissedTickBehavior},
};

use crate::{
    aggregate::Aggregator,
    caps::Capabilities,
    cli::{Cli, Format},
    error::Error,
    event,
    filter::Filters,
    kernel::{btf::Btf, kallsyms::KernelSymbols, reasons::DropReasonTable, tracefs},
    layout::KernelLayout,
    live::{Live, LiveOptions},
    resolve::Resolver,
    summary::Summary,
    text::{self, TextPrinter},
};

const BTF_PATH: &str = "/sys/kernel/btf/vmlinux";
const TRACEFS_DIRS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];
/// How often the ring buffer is drained when the kernel does not wake us.
const POLL: Duration = Duration::from_millis(100);
/// Events handled before the loop looks at signals and timers again.
const DRAIN_BATCH: usize = 65_536;

pub fn run(cli: Cli) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Io("starting the runtime".into(), e))?;
    runtime.block_on(run_live(cli))
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

async fn run_live(cli: Cli) -> Result<(), Error> {
    if let Some(caps) = Capabilities::current() {
        let missing = caps.missing_for_tracing();
        if !missing.is_empty() {
            return Err(Error::MissingCapabilities(missing));
        }
    }
    let kernel = learn_kernel(cli.attach)?;
    let filters = Filters::resolve(&cli.filters, kernel.reasons.as_ref())?;
    let mut config = droptrace_common::Config::ZERO;
    kernel.layout.apply(&mut config);
    filters.apply(&mut config);

    let mut live = Live::start(LiveOptions {
        config,
        reason_marks: filters.reason_marks(),
        ring_buffer_size: cli.ring_buffer_size,
        layout: kernel.layout.clone(),
    })?;
    let resolver = Resolver::new(kernel.symbols, kernel.reasons);
    eprintln!(
        "droptrace: watching skb:kfree_skb ({}); filters: {}; {}",
        live.program(),
        filters.describe(resolver.reasons()),
        match cli.duration {
            Some(d) => format!("stopping after {d} s"),
            None => "Ctrl-C to stop".into(),
        }
    );

    let mut sigint =
        signal(SignalKind::interrupt()).map_err(|e| Error::Io("SIGINT handler".into(), e))?;
    let mut sigterm =
        signal(SignalKind::terminate()).map_err(|e| Error::Io("SIGTERM handler".into(), e))?;
    let started = Instant::now();
    let deadline = cli.duration.map(|d| started + Duration::from_secs_f64(d));
    let mut poll = interval(POLL);
    poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut print = interval(Duration::from_secs_f64(cli.interval));
    print.set_missed_tick_behavior(MissedTickBehavior::Delay);
    print.tick().await;

    let mut agg = Aggregator::new();
    let mut malformed = 0u64;
    let mut printer = TextPrinter::default();
    let mut stdout = std::io::stdout().lock();

    loop {
        tokio::select! {
            () = live.readable() => {}
            _ = poll.tick() => {}
            _ = print.tick(), if cli.format == Format::Text => {
                drain_all(&mut live, &mut agg, &mut malformed);
                let (counters, lost) = live.read_counters()?;
                agg.set_kernel(counters, lost);
                let block = printer.block(&agg, &resolver, started.elapsed().as_secs_f64());
                if !block.is_empty() && write_out(&mut stdout, &block).is_err() {
                    break; // stdout closed: stop quietly, like other filters do
                }
                continue;
            }
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            () = sleep_until_opt(deadline) => break,
        }
        drain_batch(&mut live, &mut agg, &mut malformed);
    }

    // Detach first, so nothing new arrives; then take every event still in the ring and
    // the final counters, which now agree exactly.
    live.detach()?;
    drain_all(&mut live, &mut agg, &mut malformed);
    let (counters, lost) = live.read_counters()?;
    agg.set_kernel(counters, lost);
    if malformed > 0 {
        warn(&format!(
            "{malformed} malformed events from the kernel were skipped"
        ));
    }
    let out = match cli.format {
        Format::Json => {
            let mut s = serde_json::to_string(&Summary::new(&agg, &resolver))
                .map_err(|e| Error::Io("writing the summary".into(), std::io::Error::other(e)))?;
            s.push('\n');
            s
        }
        Format::Text => text::final_table(&agg, &resolver),
    };
    // A closed stdout at the end is not worth an error.
    let _ = write_out(&mut stdout, &out);
    Ok(())
}

fn drain_batch(live: &mut Live, agg: &mut Aggregator, malformed: &mut u64) -> usize {
    live.drain(DRAIN_BATCH, |bytes| match event::decode(bytes) {
        Ok(drop) => agg.add(&drop),
        Err(_) => *malformed += 1,
    })
}

fn drain_all(live: &mut Live, agg: &mut Aggregator, malformed: &mut u64) {
    while drain_batch(live, agg, malformed) == DRAIN_BATCH {}
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn write_out(out: &mut impl Write, text: &str) -> std::io::Result<()> {
    out.write_all(text.as_bytes())?;
    out.flush()
}

pub fn warn(message: &str) {
    eprintln!("droptrace: warning: {message}");
}
