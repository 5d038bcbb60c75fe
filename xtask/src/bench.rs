//! `cargo xtask bench`: how much a UDP drop flood slows down with a tracer attached.
//!
//! A sender floods 127.0.0.1:9 (nothing listens) inside a network namespace made for the
//! run, so every packet is dropped (NO_SOCKET). Throughput is measured with nothing
//! attached, with droptrace, and with the peers (bpftrace counting in a map, perf record),
//! round by round. The machine's speed drifts, so every tool's flood is flanked by floods
//! with nothing attached: its ratio is to their mean; the median over rounds is shown.
use std::{
    fs::File,
    io::{BufRead, BufReader},
    os::fd::AsRawFd,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

use crate::workspace;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Rounds; each measures every tool once.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Seconds of flooding per measurement.
    #[arg(long, default_value_t = 2.0)]
    pub seconds: f64,
    /// Leave out the peers (bpftrace, perf).
    #[arg(long)]
    no_peers: bool,
    /// Extra arguments for droptrace, e.g. "--ring-buffer-size 262144".
    #[arg(long, value_name = "ARGS", default_value = "")]
    droptrace_args: String,
    /// Another droptrace build to measure beside this one (counted in the kernel, and
    /// serve), e.g. the main branch's: before and after a change in one table.
    #[arg(long, value_name = "PATH")]
    before: Option<PathBuf>,
    /// Instead: the cost of droptrace's XDP verdict counter on frames an XDP_PASS program
    /// passes (veth between two namespaces; bpf_stats, throughput, BPF_PROG_TEST_RUN).
    #[arg(long)]
    pub xdp: bool,
    /// The droptrace to run instead of building this workspace's (`--xdp` only; how the
    /// qemu guests of `cargo xtask vmtest --bench-xdp` run it).
    #[arg(long, value_name = "PATH", requires = "xdp")]
    pub droptrace_bin: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tool {
    Baseline,
    Droptrace,
    DroptraceFiltered,
    DroptraceRecord,
    DroptraceServe,
    /// `Droptrace` and `DroptraceServe` with the `--before` build.
    DroptraceBefore,
    DroptraceServeBefore,
    BpftraceMap,
    /// An empty classic-tracepoint program: the floor of bpf_stats' measure.
    BpftraceEmpty,
    PerfRecord,
}

impl Tool {
    fn label(self) -> &'static str {
        match self {
            Tool::Baseline => "nothing attached",
            Tool::Droptrace => "droptrace --format json (counted in the kernel)",
            Tool::DroptraceFiltered => "droptrace --port 1 (all filtered out)",
            Tool::DroptraceRecord => "droptrace record (every drop streamed to a file)",
            Tool::DroptraceServe => "droptrace serve (metrics, default labels)",
            Tool::DroptraceBefore => "--before: droptrace --format json",
            Tool::DroptraceServeBefore => "--before: droptrace serve",
            Tool::BpftraceMap => "bpftrace, count in a map",
            Tool::BpftraceEmpty => "bpftrace, empty program (floor)",
            Tool::PerfRecord => "perf record -e skb:kfree_skb -a",
        }
    }
}

/// A network namespace made for a run, deleted when dropped.
pub struct Namespace(pub String);

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Builds droptrace (release) and makes a namespace with loopback up to flood in.
pub fn prepare(prefix: &str) -> Result<(PathBuf, Namespace)> {
    let ws = workspace();
    crate::run(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--locked", "--release", "-p", "droptrace"])
            .current_dir(&ws),
    )?;
    let ns = Namespace(format!("{prefix}{}", std::process::id()));
    crate::run(Command::new("ip").args(["netns", "add", &ns.0]))?;
    crate::run(Command::new("ip").args(["netns", "exec", &ns.0, "ip", "link", "set", "lo", "up"]))?;
    Ok((ws.join("target/release/droptrace"), ns))
}

pub fn bench(args: &BenchArgs) -> Result<()> {
    if args.xdp {
        return crate::bench_xdp::bench_xdp(args);
    }
    let (bin, ns) = prepare("dtbench")?;

    let mut tools = vec![
        Tool::Baseline,
        Tool::Droptrace,
        Tool::DroptraceFiltered,
        Tool::DroptraceRecord,
        Tool::DroptraceServe,
    ];
    if args.before.is_some() {
        tools.extend([Tool::DroptraceBefore, Tool::DroptraceServeBefore]);
    }
    if !args.no_peers {
        tools.extend([Tool::BpftraceMap, Tool::PerfRecord]);
    }
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); tools.len()];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); tools.len()];
    // (bytes, drops) of each recording made.
    let mut sizes: Vec<(u64, u64)> = Vec::new();
    // Warm up the path once.
    flood(&ns.0, 0.5)?;
    // The machine's speed drifts by several percent within seconds (other guests on the
    // host): every tool's flood sits between two floods with nothing attached, and its
    // ratio is to their mean.
    let mut before = flood(&ns.0, args.seconds)?;
    for round in 0..args.rounds {
        // Rotate the order so no tool always runs first.
        for k in 1..tools.len() {
            let i = 1 + (k - 1 + round) % (tools.len() - 1);
            // Stopped on drop, also when the flood fails.
            let tracer = Tracer(start(tools[i], &bin, args)?);
            let rate = flood(&ns.0, args.seconds)?;
            drop(tracer);
            if tools[i] == Tool::DroptraceRecord {
                sizes.push(recording_size(&bin)?);
            }
            let after = flood(&ns.0, args.seconds)?;
            let base = (before + after) / 2.0;
            rates[0].push(after);
            rates[i].push(rate);
            ratios[i].push(rate / base);
            eprintln!(
                "round {round}: {:<48} {rate:>8.0} drops/s, {:.3} of the {base:.0} around it",
                tools[i].label(),
                rate / base
            );
            before = after;
        }
        ratios[0].push(1.0);
    }
    // The kernel's own accounting of each program, in passes of their own (bpf_stats
    // costs time too, so it stays off while throughput is measured); the median of
    // `COST_ROUNDS`.
    let mut cost_tools: Vec<Tool> = tools
        .iter()
        .copied()
        .filter(|t| !matches!(t, Tool::Baseline | Tool::PerfRecord))
        .collect();
    if !args.no_peers {
        cost_tools.push(Tool::BpftraceEmpty);
    }
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); cost_tools.len()];
    {
        let _stats = BpfStats::enable()?;
        for round in 0..COST_ROUNDS {
            for (i, &tool) in cost_tools.iter().enumerate() {
                let before = program_ids()?;
                let tracer = Tracer(start(tool, &bin, args)?);
                flood(&ns.0, args.seconds)?;
                let ns_per_run = run_time_per_run(&before)?;
                drop(tracer);
                eprintln!(
                    "bpf_stats {round}: {:<40} {ns_per_run:>6.0} ns a drop",
                    tool.label()
                );
                samples[i].push(ns_per_run);
            }
        }
    }
    let costs: Vec<(Tool, f64)> = cost_tools
        .iter()
        .zip(samples.iter_mut())
        .map(|(&t, v)| (t, median(v)))
        .collect();
    let _ = std::fs::remove_file(RECORDING);
    for (bytes, drops) in &sizes {
        eprintln!(
            "recording: {drops} drops in {bytes} bytes: {:.2} bytes a drop",
            *bytes as f64 / (*drops).max(1) as f64
        );
    }
    println!(
        "| tool | drops/s (median) | throughput kept vs nothing attached just before and after (median of {} rounds) | kernel ns a drop (bpf_stats, median of 3) |",
        args.rounds
    );
    println!("|---|---:|---:|---:|");
    let cost_of = |tool: Tool| {
        costs
            .iter()
            .find(|(t, _)| *t == tool)
            .map_or("-".to_string(), |(_, ns)| format!("{ns:.0}"))
    };
    for (i, tool) in tools.iter().enumerate() {
        println!(
            "| {} | {:.0} | {:.3} | {} |",
            tool.label(),
            median(&mut rates[i]),
            median(&mut ratios[i]),
            cost_of(*tool)
        );
    }
    if !args.no_peers {
        println!(
            "| {} | | | {} |",
            Tool::BpftraceEmpty.label(),
            cost_of(Tool::BpftraceEmpty)
        );
    }
    Ok(())
}

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// Passes of the bpf_stats measure.
const COST_ROUNDS: usize = 3;

/// `kernel.bpf_stats_enabled` on for as long as this lives, then back as it was found.
pub(crate) struct BpfStats(String);

impl BpfStats {
    pub(crate) fn enable() -> Result<BpfStats> {
        let was = std::fs::read_to_string(BPF_STATS).context("reading bpf_stats_enabled")?;
        std::fs::write(BPF_STATS, "1").context("enabling bpf_stats")?;
        Ok(BpfStats(was.trim().to_string()))
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        if let Err(e) = std::fs::write(BPF_STATS, &self.0) {
            eprintln!(
                "bench: could not put bpf_stats_enabled back to {}: {e}",
                self.0
            );
        }
    }
}

/// `(id, run_time_ns, run_cnt, name)` of every loaded BPF program.
pub(crate) fn programs() -> Result<Vec<(u64, u64, u64, String)>> {
    let out = Command::new("bpftool")
        .args(["-j", "prog", "show"])
        .output()
        .context("bpftool prog show")?;
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).context("bpftool's JSON")?;
    Ok(list
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some((
                p["id"].as_u64()?,
                p["run_time_ns"].as_u64().unwrap_or(0),
                p["run_cnt"].as_u64().unwrap_or(0),
                p["name"].as_str().unwrap_or("").to_owned(),
            ))
        })
        .collect())
}

fn program_ids() -> Result<std::collections::HashSet<u64>> {
    Ok(programs()?.into_iter().map(|(id, ..)| id).collect())
}

/// Average ns a drop of the programs that came since `before` and ran on every drop (as
/// often as the one that ran the most: droptrace's drop program and, beside it, the one
/// that remembers TCP sockets' drops; a tracer's BEGIN/END programs run once at most).
/// Each one's share is said on stderr.
fn run_time_per_run(before: &std::collections::HashSet<u64>) -> Result<f64> {
    let new: Vec<_> = programs()?
        .into_iter()
        .filter(|(id, ..)| !before.contains(id))
        .collect();
    let runs = new
        .iter()
        .map(|(_, _, runs, _)| *runs)
        .max()
        .context("the tracer's program is not loaded")?;
    if runs == 0 {
        bail!("the tracer's program never ran");
    }
    let mut time = 0;
    for (_, t, r, name) in new.iter().filter(|(_, _, r, _)| *r * 10 >= runs * 9) {
        eprintln!(
            "  {name:<16} {:>6.0} ns a run ({r} runs)",
            *t as f64 / (*r).max(1) as f64
        );
        time += t;
    }
    Ok(time as f64 / runs as f64)
}

pub(crate) fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Floods 127.0.0.1:9 inside the namespace for `seconds`; returns packets sent per second.
fn flood(ns: &str, seconds: f64) -> Result<f64> {
    flood_ports(ns, seconds, 9..=9)
}

/// Floods 127.0.0.1 inside the namespace for `seconds`, each packet to the next port of
/// `ports` (nothing listens on them); returns packets sent per second.
pub fn flood_ports(ns: &str, seconds: f64, ports: std::ops::RangeInclusive<u16>) -> Result<f64> {
    flood_to(ns, seconds, [127, 0, 0, 1].into(), ports)
}

/// Floods `to` from inside the namespace for `seconds`, each packet to the next port of
/// `ports`; returns packets sent per second.
pub fn flood_to(
    ns: &str,
    seconds: f64,
    to: std::net::Ipv4Addr,
    ports: std::ops::RangeInclusive<u16>,
) -> Result<f64> {
    let file = File::open(format!("/run/netns/{ns}")).context("opening the namespace")?;
    std::thread::scope(|s| {
        s.spawn(|| -> Result<f64> {
            // SAFETY: a valid namespace fd; setns affects only this thread.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                bail!("setns: {}", std::io::Error::last_os_error());
            }
            // Unconnected: a connected socket would return every other send as
            // ECONNREFUSED (the ICMP error of the previous packet) without sending.
            let sock = std::net::UdpSocket::bind("0.0.0.0:0")?;
            let mut to = std::net::SocketAddr::from((to, 9));
            let mut port = ports.clone().cycle();
            let payload = [0u8; 64];
            let start = Instant::now();
            let limit = Duration::from_secs_f64(seconds);
            let mut sent = 0u64;
            loop {
                for _ in 0..256 {
                    to.set_port(port.next().unwrap_or(9));
                    sock.send_to(&payload, to)?;
                }
                sent += 256;
                let elapsed = start.elapsed();
                if elapsed >= limit {
                    return Ok(sent as f64 / elapsed.as_secs_f64());
                }
            }
        })
        .join()
        .map_err(|_| anyhow::anyhow!("flood thread panicked"))?
    })
}

/// The recording's size and the drops its report counts.
fn recording_size(bin: &PathBuf) -> Result<(u64, u64)> {
    let bytes = std::fs::metadata(RECORDING).context("the recording")?.len();
    let out = Command::new(bin)
        .args(["report", RECORDING, "--format", "json"])
        .output()
        .context("droptrace report")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let total = text
        .split("\"total\":")
        .nth(1)
        .and_then(|t| t.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|t| t.parse().ok())
        .with_context(|| format!("no total in the report: {text}"))?;
    Ok((bytes, total))
}

/// Where the record measurement writes (replaced every round, removed at the end).
const RECORDING: &str = "/tmp/droptrace-bench.dtr";

fn start(tool: Tool, bin: &PathBuf, args: &BenchArgs) -> Result<Option<Child>> {
    let extra = args.droptrace_args.as_str();
    let (tool, bin) = match (tool, &args.before) {
        (Tool::DroptraceBefore, Some(before)) => (Tool::Droptrace, before),
        (Tool::DroptraceServeBefore, Some(before)) => (Tool::DroptraceServe, before),
        _ => (tool, bin),
    };
    let (mut cmd, ready): (Command, Option<&str>) = match tool {
        Tool::Baseline => return Ok(None),
        Tool::DroptraceBefore | Tool::DroptraceServeBefore => bail!("--before is not given"),
        Tool::Droptrace => {
            let mut c = Command::new(bin);
            c.args(["--format", "json"]).args(extra.split_whitespace());
            (c, Some("droptrace: watching"))
        }
        Tool::DroptraceFiltered => {
            let mut c = Command::new(bin);
            c.args(["--format", "json", "--port", "1"])
                .args(extra.split_whitespace());
            (c, Some("droptrace: watching"))
        }
        Tool::DroptraceRecord => {
            let mut c = Command::new(bin);
            c.args(["record", "--force", "-o", RECORDING])
                .args(extra.split_whitespace());
            (c, Some("droptrace: watching"))
        }
        Tool::DroptraceServe => {
            let mut c = Command::new(bin);
            c.args(["serve", "--listen", "127.0.0.1:0"])
                .args(extra.split_whitespace());
            (c, Some("droptrace: watching"))
        }
        Tool::BpftraceMap => {
            let mut c = Command::new("bpftrace");
            c.args([
                "-e",
                "tracepoint:skb:kfree_skb { @[args->location, args->reason] = count(); }",
            ]);
            (c, Some("Attaching"))
        }
        Tool::BpftraceEmpty => {
            let mut c = Command::new("bpftrace");
            c.args(["-e", "tracepoint:skb:kfree_skb { }"]);
            (c, Some("Attaching"))
        }
        Tool::PerfRecord => {
            let mut c = Command::new("perf");
            c.args([
                "record",
                "-q",
                "-e",
                "skb:kfree_skb",
                "-a",
                "-o",
                "/tmp/droptrace-bench.perf.data",
            ]);
            (c, None)
        }
    };
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", tool.label()))?;
    match ready {
        Some(line) => wait_for_line(&mut child, line)?,
        // perf says nothing when ready; give it time to open its events.
        None => std::thread::sleep(Duration::from_millis(1500)),
    }
    Ok(Some(child))
}

/// Waits (bounded) for a line starting with `prefix` on the child's stdout or stderr.
pub fn wait_for_line(child: &mut Child, prefix: &'static str) -> Result<()> {
    let (tx, rx) = mpsc::channel();
    let out = child
        .stdout
        .take()
        .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>);
    let err = child
        .stderr
        .take()
        .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>);
    for stream in [out, err].into_iter().flatten() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if line.starts_with(prefix) {
                    let _ = tx.send(());
                }
            }
        });
    }
    if rx.recv_timeout(Duration::from_secs(60)).is_err() {
        let _ = child.kill();
        bail!("the tracer did not say `{prefix}` within 60 s");
    }
    Ok(())
}

/// A running tracer, stopped (SIGINT, then bounded wait) when dropped.
pub(crate) struct Tracer(pub(crate) Option<Child>);

impl Drop for Tracer {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            stop(child);
        }
    }
}

pub fn stop(child: &mut Child) {
    // SAFETY: signalling our own child by its PID.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}
