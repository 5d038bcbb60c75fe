//! `cargo xtask bench --xdp`: what droptrace's XDP verdict counter (a fexit program on
//! every XDP program, `droptrace/src/probe/xdp.rs`) adds to each frame an XDP program
//! passes.
//!
//! A veth joins two namespaces made for the run; the sender floods UDP to a closed port
//! of the receiver, whose veth runs (in native mode) the tests' XDP program `dt_xdp_udp`
//! aimed at a port no datagram uses, so it passes every frame (XDP_PASS) and the stack
//! then drops it (NO_SOCKET: the receiver's `Udp NoPorts` counts the frames that got
//! through). Measured, each flanked by floods with nothing attached like the main bench:
//! (a) nothing attached, (b) the program, droptrace not running, (c) the program with
//! droptrace running (the counter attached), and (d) the program with droptrace
//! `--no-xdp` (no counter; droptrace's kfree_skb program still runs on every NO_SOCKET
//! drop, as in (c), so (c)/(d) is the counter alone). Then, with bpf_stats, the program's
//! own `run_time_ns / run_cnt` in (b) and (c) (a fexit trampoline runs inside the traced
//! program's call, so (c) includes the counter) beside the counter's own figure, and,
//! with bpf_stats off again, `BPF_PROG_TEST_RUN` with repeat (`bpftool prog run`), the
//! kernel's timing of one run, with and without the counter. A kernel that refuses fexit programs gets (a) and (b).
use std::{
    fs::File,
    io::{BufRead, BufReader, Read},
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use droptrace_tests::xdp::{attach_drop_udp, fexit_allowed, Mode, XdpProgram};

use crate::bench::{flood_to, median, programs, stop, BenchArgs, BpfStats, Namespace, Tracer};

/// The port the program drops; no datagram of the flood goes there.
const UNUSED_PORT: u16 = 6001;
/// The flood's destination: a closed port of the receiver.
const RECEIVER: [u8; 4] = [10, 253, 23, 2];
const SENDER_CIDR: &str = "10.253.23.1/30";
const RECEIVER_CIDR: &str = "10.253.23.2/30";
/// Runs of one `BPF_PROG_TEST_RUN`.
const TEST_RUN_REPEAT: u32 = 200_000;
/// Passes of the bpf_stats and test-run measures.
const COST_ROUNDS: usize = 3;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Setup {
    /// (a) no XDP program.
    Nothing,
    /// (b) the XDP_PASS program, droptrace not running.
    Pass,
    /// (c) the program, droptrace running with its verdict counter on it.
    Counted,
    /// (d) the program, droptrace `--no-xdp`: its kfree_skb program without the counter.
    NoXdp,
}

impl Setup {
    fn label(self) -> &'static str {
        match self {
            Setup::Nothing => "(a) nothing attached",
            Setup::Pass => "(b) XDP_PASS program, droptrace not running",
            Setup::Counted => "(c) XDP_PASS program, droptrace with its XDP counter",
            Setup::NoXdp => "(d) XDP_PASS program, droptrace --no-xdp",
        }
    }
}

/// The two namespaces and their veth (gone with the namespaces).
struct Pair {
    sender: Namespace,
    receiver: Namespace,
}

impl Pair {
    fn new() -> Result<Pair> {
        let pid = std::process::id();
        let sender = Namespace(format!("dtxs{pid}"));
        crate::run(Command::new("ip").args(["netns", "add", &sender.0]))?;
        let receiver = Namespace(format!("dtxr{pid}"));
        crate::run(Command::new("ip").args(["netns", "add", &receiver.0]))?;
        crate::run(Command::new("ip").args([
            "link",
            "add",
            "dtx0",
            "netns",
            &sender.0,
            "type",
            "veth",
            "peer",
            "name",
            "dtx1",
            "netns",
            &receiver.0,
        ]))?;
        for (ns, dev, cidr) in [
            (&sender.0, "dtx0", SENDER_CIDR),
            (&receiver.0, "dtx1", RECEIVER_CIDR),
        ] {
            crate::run(Command::new("ip").args(["-n", ns, "addr", "add", cidr, "dev", dev]))?;
            crate::run(Command::new("ip").args(["-n", ns, "link", "set", dev, "up"]))?;
            crate::run(Command::new("ip").args(["-n", ns, "link", "set", "lo", "up"]))?;
        }
        Ok(Pair { sender, receiver })
    }

    /// Floods the receiver's closed port for `seconds`; frames per second that reached
    /// its UDP layer (its `Udp NoPorts`: the kernel's own count).
    fn flood(&self, seconds: f64) -> Result<f64> {
        let before = no_ports(&self.receiver.0)?;
        let started = Instant::now();
        flood_to(&self.sender.0, seconds, RECEIVER.into(), 9..=9)?;
        let elapsed = started.elapsed().as_secs_f64();
        let got = no_ports(&self.receiver.0)? - before;
        if got == 0 {
            bail!("no datagram reached the receiver's UDP layer");
        }
        Ok(got as f64 / elapsed)
    }

    /// The XDP_PASS program on the receiver's veth (native mode), detached when dropped.
    fn attach(&self) -> Result<XdpProgram> {
        in_netns(&self.receiver.0, || {
            attach_drop_udp("dtx1", Mode::Native, UNUSED_PORT)
        })
    }
}

/// Runs `f` on a thread inside the namespace.
fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> Result<T> {
    let file = File::open(format!("/run/netns/{ns}")).context("opening the namespace")?;
    std::thread::scope(|s| {
        s.spawn(|| -> Result<T> {
            // SAFETY: a valid namespace fd; setns affects only this thread.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                bail!("setns: {}", std::io::Error::last_os_error());
            }
            Ok(f())
        })
        .join()
        .map_err(|_| anyhow::anyhow!("a thread in {ns} panicked"))?
    })
}

/// `Udp: ... NoPorts` of the namespace (/proc/net/snmp as a thread inside it sees it).
fn no_ports(ns: &str) -> Result<u64> {
    let text = in_netns(ns, || std::fs::read_to_string("/proc/thread-self/net/snmp"))?
        .context("reading /proc/net/snmp")?;
    no_ports_of(&text)
}

/// `Udp: ... NoPorts` of /proc/net/snmp's text.
fn no_ports_of(text: &str) -> Result<u64> {
    let mut udp = text.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = (udp.next(), udp.next());
    let (Some(names), Some(values)) = (names, values) else {
        bail!("/proc/net/snmp has no Udp lines");
    };
    let at = names
        .split_whitespace()
        .position(|n| n == "NoPorts")
        .context("no NoPorts in /proc/net/snmp")?;
    values
        .split_whitespace()
        .nth(at)
        .and_then(|v| v.parse().ok())
        .context("NoPorts' value")
}

/// droptrace, running until dropped; for `Counted`, once it said it traces `program`.
fn start(setup: Setup, bin: &Path, program: u32) -> Result<Option<Child>> {
    let extra: &[&str] = match setup {
        Setup::Nothing | Setup::Pass => return Ok(None),
        Setup::Counted => &[],
        Setup::NoXdp => &["--no-xdp"],
    };
    let mut child = Command::new(bin)
        .args(["--format", "json"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let traced = format!("droptrace: tracing XDP program dt_xdp_udp (id {program})");
    let untraced = format!("XDP program dt_xdp_udp (id {program}) is not traced");
    let mut wanted: Vec<&str> = vec!["droptrace: watching"];
    if setup == Setup::Counted {
        wanted.push(&traced);
    }
    let lines = lines_of(&mut child);
    let deadline = Instant::now() + Duration::from_secs(90);
    while !wanted.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = lines.recv_timeout(left) else {
            stop(&mut child);
            bail!("droptrace did not say {wanted:?} within 90 s");
        };
        if line.contains(&untraced) {
            stop(&mut child);
            bail!("droptrace could not trace the program: {line}");
        }
        wanted.retain(|w| !line.starts_with(w));
    }
    Ok(Some(child))
}

/// The child's stdout and stderr, line by line, read on threads of their own (so its
/// pipes never fill while it runs).
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let out = child
        .stdout
        .take()
        .map(|s| Box::new(s) as Box<dyn Read + Send>);
    let err = child
        .stderr
        .take()
        .map(|s| Box::new(s) as Box<dyn Read + Send>);
    for stream in [out, err].into_iter().flatten() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    rx
}

/// The droptrace to run: `--droptrace-bin`, or this workspace's release build.
fn droptrace(args: &BenchArgs) -> Result<PathBuf> {
    if let Some(bin) = &args.droptrace_bin {
        return Ok(bin.clone());
    }
    let ws = crate::workspace();
    crate::run(
        crate::cargo()
            .args(["build", "--locked", "--release", "-p", "droptrace"])
            .current_dir(&ws),
    )?;
    Ok(ws.join("target/release/droptrace"))
}

pub fn bench_xdp(args: &BenchArgs) -> Result<()> {
    let bin = droptrace(args)?;
    let pair = Pair::new()?;
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    // Whether this kernel lets a fexit program on it load at all (this 6.18 VM: EPERM).
    let refused = {
        let program = pair.attach()?;
        fexit_allowed(&program).err()
    };
    let mut setups = vec![Setup::Nothing, Setup::Pass];
    match &refused {
        None => setups.extend([Setup::Counted, Setup::NoXdp]),
        Some(e) => eprintln!(
            "bench: this kernel ({kernel}) refuses fexit programs ({e}): droptrace cannot \
             count XDP verdicts here; measuring (a) and (b) only"
        ),
    }
    // Warm up the path once (and the neighbour entry).
    pair.flood(0.5)?;
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); setups.len()];
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); setups.len()];
    let mut before = pair.flood(args.seconds)?;
    for round in 0..args.rounds {
        for k in 1..setups.len() {
            // Rotate the order so no setup always runs first.
            let i = 1 + (k - 1 + round) % (setups.len() - 1);
            let rate = {
                let program = pair.attach()?;
                let tracer = Tracer(start(setups[i], &bin, program.id)?);
                let rate = pair.flood(args.seconds)?;
                drop(tracer);
                rate
            };
            let after = pair.flood(args.seconds)?;
            let base = (before + after) / 2.0;
            rates[0].push(after);
            rates[i].push(rate);
            ratios[i].push(rate / base);
            eprintln!(
                "round {round}: {:<56} {rate:>8.0} frames/s, {:.3} of the {base:.0} around it",
                setups[i].label(),
                rate / base
            );
            before = after;
        }
        ratios[0].push(1.0);
    }
    // Ratios between setups of the same round (each to its own flanking floods first).
    let ratio_of = |num: Setup, den: Setup| -> Option<f64> {
        let n = setups.iter().position(|s| *s == num)?;
        let d = setups.iter().position(|s| *s == den)?;
        let mut v: Vec<f64> = ratios[n]
            .iter()
            .zip(&ratios[d])
            .map(|(a, b)| a / b)
            .collect();
        Some(median(&mut v))
    };

    // The kernel's own accounting, in passes of their own (bpf_stats costs time too).
    let mut stats: Vec<Vec<f64>> = vec![Vec::new(); 2];
    let mut counter_ns: Vec<f64> = Vec::new();
    let mut test_run: Vec<Vec<f64>> = vec![Vec::new(); 2];
    let packet = frame();
    let packet_file = std::env::temp_dir().join(format!("dtx-bench-{}.bin", std::process::id()));
    {
        // Root writes it in a shared directory: never through a link someone put there.
        use std::{io::Write as _, os::unix::fs::OpenOptionsExt as _};
        let _ = std::fs::remove_file(&packet_file);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&packet_file)
            .and_then(|mut f| f.write_all(&packet))
            .context("writing the test-run frame")?;
    }
    {
        let _stats = BpfStats::enable()?;
        for round in 0..COST_ROUNDS {
            for (i, setup) in [Setup::Pass, Setup::Counted].into_iter().enumerate() {
                if setup == Setup::Counted && refused.is_some() {
                    continue;
                }
                let program = pair.attach()?;
                let loaded_before: std::collections::HashSet<u64> =
                    programs()?.into_iter().map(|(id, ..)| id).collect();
                let tracer = Tracer(start(setup, &bin, program.id)?);
                let (t0, n0) = run_stats(u64::from(program.id))?;
                pair.flood(args.seconds)?;
                let (t1, n1) = run_stats(u64::from(program.id))?;
                if n1 <= n0 {
                    bail!("the XDP program did not run during the flood");
                }
                let ns = (t1 - t0) as f64 / (n1 - n0) as f64;
                stats[i].push(ns);
                let mut line = format!(
                    "bpf_stats {round}: {:<56} {ns:>6.0} ns a frame ({} runs)",
                    setup.label(),
                    n1 - n0
                );
                if setup == Setup::Counted {
                    // The counter's own figure (since it was loaded: the flood's frames
                    // and the few before it).
                    // The counter's own figure (since it was loaded: the flood's frames
                    // and the few before it). The program of the pass before, detached,
                    // may still be listed when droptrace starts (its free is deferred)
                    // and gets a counter too, which never runs: the one that ran the most.
                    let counter = programs()?
                        .into_iter()
                        .filter(|(id, .., name)| {
                            !loaded_before.contains(id) && name == "dt_xdp_out"
                        })
                        .max_by_key(|(_, _, runs, _)| *runs)
                        .context("droptrace's verdict counter (dt_xdp_out) is not loaded")?;
                    eprintln!(
                        "  dt_xdp_out (id {}): run_time_ns {}, run_cnt {}",
                        counter.0, counter.1, counter.2
                    );
                    let own = counter.1 as f64 / counter.2.max(1) as f64;
                    counter_ns.push(own);
                    line.push_str(&format!("; the counter itself {own:.0} ns a run"));
                }
                eprintln!("{line}");
                drop(tracer);
            }
        }
    }
    // The test runs with bpf_stats off as it was: with it on, the trampoline also reads
    // the clock twice around the counter for the counter's own figures.
    for round in 0..COST_ROUNDS {
        for (i, setup) in [Setup::Pass, Setup::Counted].into_iter().enumerate() {
            if setup == Setup::Counted && refused.is_some() {
                continue;
            }
            let program = pair.attach()?;
            let tracer = Tracer(start(setup, &bin, program.id)?);
            let d = test_run_ns(program.id, &packet_file)?;
            eprintln!("test_run  {round}: {:<56} {d:>6.0} ns a run", setup.label());
            test_run[i].push(d);
            drop(tracer);
        }
    }
    let _ = std::fs::remove_file(&packet_file);

    println!(
        "XDP verdict counter on {kernel}: veth, native XDP, XDP_PASS program \
         (`cargo xtask bench --xdp`, {} rounds of {} s, bpf_stats and test runs median of \
         {COST_ROUNDS})",
        args.rounds, args.seconds
    );
    println!();
    println!("| setup | frames/s (median) | throughput kept vs nothing attached around it |");
    println!("|---|---:|---:|");
    for (i, s) in setups.iter().enumerate() {
        println!(
            "| {} | {:.0} | {:.3} |",
            s.label(),
            median(&mut rates[i]),
            median(&mut ratios[i].clone())
        );
    }
    println!();
    let show = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.3}"));
    println!(
        "(b)/(a) {}; (c)/(b) {}; (d)/(b) {}; (c)/(d), the counter alone {}",
        show(ratio_of(Setup::Pass, Setup::Nothing)),
        show(ratio_of(Setup::Counted, Setup::Pass)),
        show(ratio_of(Setup::NoXdp, Setup::Pass)),
        show(ratio_of(Setup::Counted, Setup::NoXdp)),
    );
    let ns = |v: &mut Vec<f64>| {
        if v.is_empty() {
            "-".to_owned()
        } else {
            format!("{:.0}", median(v))
        }
    };
    println!();
    println!("| XDP program, ns a frame | bpf_stats run_time_ns/run_cnt | BPF_PROG_TEST_RUN, repeat {TEST_RUN_REPEAT} |");
    println!("|---|---:|---:|");
    println!(
        "| without the counter (b) | {} | {} |",
        ns(&mut stats[0]),
        ns(&mut test_run[0])
    );
    println!(
        "| with the counter (c) | {} | {} |",
        ns(&mut stats[1]),
        ns(&mut test_run[1])
    );
    println!(
        "| the counter's own bpf_stats (dt_xdp_out) | {} | |",
        ns(&mut counter_ns)
    );
    Ok(())
}

/// `(run_time_ns, run_cnt)` of one program.
fn run_stats(id: u64) -> Result<(u64, u64)> {
    programs()?
        .into_iter()
        .find(|(i, ..)| *i == id)
        .map(|(_, t, n, _)| (t, n))
        .with_context(|| format!("program {id} is not loaded"))
}

/// `bpftool prog run` of the program on `frame`, `TEST_RUN_REPEAT` times: the kernel's
/// average ns a run.
fn test_run_ns(id: u32, frame: &Path) -> Result<f64> {
    let out = Command::new("bpftool")
        .args(["-j", "prog", "run", "id", &id.to_string(), "data_in"])
        .arg(frame)
        .args(["repeat", &TEST_RUN_REPEAT.to_string()])
        .output()
        .context("bpftool prog run")?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "bpftool prog run: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })?;
    if v["retval"] != 2 {
        bail!("the test run did not return XDP_PASS: {v}");
    }
    v["duration"]
        .as_f64()
        .with_context(|| format!("bpftool prog run gave no duration: {v}"))
}

/// An Ethernet frame with an IPv4 UDP datagram to port 9 (64 bytes of payload), as the
/// flood sends: what the program passes.
fn frame() -> Vec<u8> {
    let mut f = Vec::new();
    f.extend([0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
    let total: u16 = 20 + 8 + 64;
    f.extend([0x45, 0]);
    f.extend(total.to_be_bytes());
    f.extend([0, 0, 0x40, 0, 64, 17, 0, 0]);
    f.extend([10, 253, 23, 1]);
    f.extend(RECEIVER);
    f.extend(40000u16.to_be_bytes());
    f.extend(9u16.to_be_bytes());
    f.extend((8u16 + 64).to_be_bytes());
    f.extend([0, 0]);
    f.extend([0u8; 64]);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    /// /proc/net/snmp as this development VM's 6.18 kernel wrote it.
    #[test]
    fn no_ports_from_proc_net_snmp() {
        let text = include_str!("../fixtures/proc_net_snmp");
        assert_eq!(no_ports_of(text).expect("NoPorts"), 2400);
        assert!(no_ports_of("Ip: Forwarding\nIp: 1\n").is_err());
    }

    /// The test run's frame is what the program passes: IPv4 UDP to port 9, lengths
    /// that agree.
    #[test]
    fn the_test_run_frame_is_ipv4_udp_to_port_9() {
        let f = frame();
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        assert_eq!(f[14], 0x45);
        assert_eq!(f[23], 17);
        assert_eq!(
            usize::from(u16::from_be_bytes([f[16], f[17]])),
            f.len() - 14
        );
        assert_eq!(u16::from_be_bytes([f[36], f[37]]), 9);
        assert_ne!(u16::from_be_bytes([f[36], f[37]]), UNUSED_PORT);
    }
}
