//! `cargo xtask bench-view`: the live view under a drop flood. droptrace runs in a tmux
//! pane while a namespace made for the run floods a closed UDP port (one group) or every
//! port in turn (a port scan: tens of thousands of groups). Measured: how long a key takes
//! to show on screen (`g` switches the grouping; the pane is read until the header
//! changes), droptrace's memory (VmRSS over the run, VmHWM at the end) and CPU time.
use std::{
    fs::File,
    os::{fd::AsRawFd, unix::process::CommandExt},
    path::Path,
    process::Command,
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

#[derive(clap::Args)]
pub struct BenchViewArgs {
    /// Seconds of flooding per scenario.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
}

/// The header's grouping labels, in the order `g` cycles through them.
const GROUPINGS: [&str; 7] = [
    "location+reason+port",
    "location",
    "reason",
    "port",
    "interface",
    "namespace",
    "pod",
];

/// Stops the flood when the measuring loop ends, however it ends (a failed wait too).
struct StopFlood<'a>(&'a AtomicBool);

impl Drop for StopFlood<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

struct Session(String);

impl Session {
    fn tmux(&self, args: &[&str]) -> Result<String> {
        let mut command = Command::new("tmux");
        command.args(["-L", &self.0]).args(args);
        // The tmux server outlives this call: it must not inherit what the caller holds
        // open (a lock file taken with flock(1), a pipe a test reads to its end).
        // SAFETY: only an async-signal-safe system call between fork and exec.
        unsafe {
            command.pre_exec(|| {
                libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
                Ok(())
            });
        }
        let out = command.output().context("running tmux")?;
        if !out.status.success() {
            bail!("tmux {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn pane(&self) -> Result<String> {
        self.tmux(&["capture-pane", "-p", "-t", &self.0])
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.0, "kill-server"])
            .status();
    }
}

pub fn bench_view(args: &BenchViewArgs) -> Result<()> {
    let (bin, ns) = crate::bench::prepare("dtview")?;
    println!("| flood | drops/s | key to screen p50 / p95 / max (ms) | RSS start → max (MB) | VmHWM (MB) | CPU (% of a core) | drops counted |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for scan in [false, true] {
        scenario(&bin, &ns.0, args.seconds, scan)?;
    }
    Ok(())
}

fn scenario(bin: &Path, ns: &str, seconds: f64, scan: bool) -> Result<()> {
    let session = Session(format!("dtview{}-{}", std::process::id(), u8::from(scan)));
    session.tmux(&[
        "new-session",
        "-d",
        "-s",
        &session.0,
        "-x",
        "120",
        "-y",
        "40",
        &format!("{} --netns /run/netns/{ns}; sleep 600", bin.display()),
    ])?;
    wait_pane(&session, |p| p.contains("q quit"))?;
    let pid = droptrace_pid(&session)?;
    let rss_start = status_kb(pid, "VmRSS")?;
    let cpu_start = cpu_ticks(pid)?;
    let started = Instant::now();

    let running = AtomicBool::new(true);
    let sent = AtomicU64::new(0);
    let mut latencies = Vec::new();
    let mut rss_max = rss_start;
    std::thread::scope(|s| -> Result<()> {
        let flood = s.spawn(|| flood(ns, scan, &running, &sent));
        let stop = StopFlood(&running);
        let mut at = 0;
        let deadline = Instant::now() + Duration::from_secs_f64(seconds);
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(500));
            rss_max = rss_max.max(status_kb(pid, "VmRSS")?);
            // One key, then read the pane until the header shows its effect.
            at = (at + 1) % GROUPINGS.len();
            let want = format!("g by {}  s", GROUPINGS[at]);
            let pressed = Instant::now();
            session.tmux(&["send-keys", "-t", &session.0, "g"])?;
            wait_pane(&session, |p| p.contains(&want))?;
            latencies.push(pressed.elapsed().as_secs_f64() * 1000.0);
        }
        drop(stop);
        flood
            .join()
            .map_err(|_| anyhow::anyhow!("flood panicked"))??;
        Ok(())
    })?;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = (cpu_ticks(pid)? - cpu_start) as f64 / clock_ticks() / elapsed * 100.0;
    let hwm = status_kb(pid, "VmHWM")?;
    let total = total_shown(&session)?;
    session.tmux(&["send-keys", "-t", &session.0, "q"])?;
    let quit = Instant::now();
    while Path::new(&format!("/proc/{pid}")).exists() {
        if quit.elapsed() > Duration::from_secs(60) {
            bail!("droptrace did not exit within 60 s of q");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let quit_ms = quit.elapsed().as_secs_f64() * 1000.0;
    latencies.sort_by(f64::total_cmp);
    let pct = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    println!(
        "| {} | {:.0} | {:.0} / {:.0} / {:.0} | {:.1} → {:.1} | {:.1} | {:.0} | {} |",
        if scan {
            "port scan (every port in turn)"
        } else {
            "one closed port"
        },
        sent.load(Ordering::Relaxed) as f64 / elapsed,
        pct(0.5),
        pct(0.95),
        pct(1.0),
        rss_start as f64 / 1024.0,
        rss_max as f64 / 1024.0,
        hwm as f64 / 1024.0,
        cpu,
        total,
    );
    eprintln!(
        "bench-view: {} key presses; q to exit (final table printed) {quit_ms:.0} ms",
        latencies.len()
    );
    Ok(())
}

/// The pane's process is a shell running droptrace; droptrace is its child.
fn droptrace_pid(session: &Session) -> Result<u32> {
    let shell: u32 = session
        .tmux(&["display", "-p", "-t", &session.0, "#{pane_pid}"])?
        .trim()
        .parse()?;
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let after = stat.rsplit_once(") ").map(|x| x.1).unwrap_or_default();
        let ppid = after
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(shell) && stat.contains("(droptrace)") {
            return Ok(pid);
        }
    }
    bail!("droptrace is not running in the pane")
}

fn status_kb(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no {field} for pid {pid}"))
}

fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(") ").map(|x| x.1).unwrap_or_default();
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of stat; `after` starts at field 3.
    Ok(f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0))
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}

/// The header's "total N": drops counted so far.
fn total_shown(session: &Session) -> Result<String> {
    let pane = session.pane()?;
    Ok(pane
        .lines()
        .nth(1)
        .and_then(|l| l.split("total ").nth(1))
        .and_then(|t| t.split_whitespace().next())
        .unwrap_or("?")
        .to_owned())
}

fn wait_pane(session: &Session, found: impl Fn(&str) -> bool) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let pane = session.pane()?;
        if found(&pane) {
            return Ok(pane);
        }
        if Instant::now() > deadline {
            bail!("the pane never showed what was expected:\n{pane}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Floods closed UDP ports on 127.0.0.1 inside the namespace until `running` clears.
fn flood(ns: &str, scan: bool, running: &AtomicBool, sent: &AtomicU64) -> Result<()> {
    let file = File::open(format!("/run/netns/{ns}")).context("opening the namespace")?;
    // SAFETY: a valid namespace fd; setns affects only this thread.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        bail!("setns: {}", std::io::Error::last_os_error());
    }
    let sock = std::net::UdpSocket::bind("127.0.0.1:0")?;
    let payload = [0u8; 64];
    let mut port: u16 = 1;
    while running.load(Ordering::Relaxed) {
        for _ in 0..256 {
            let to = std::net::SocketAddr::from(([127, 0, 0, 1], if scan { port } else { 9 }));
            // A closed port may answer an earlier packet with an error: keep flooding.
            let _ = sock.send_to(&payload, to);
            port = port.checked_add(1).unwrap_or(1);
        }
        sent.fetch_add(256, Ordering::Relaxed);
    }
    Ok(())
}
