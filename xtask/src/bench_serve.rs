//! `cargo xtask bench-serve`: `droptrace serve` with 10,000 series under a drop flood:
//! how long a scrape takes, droptrace's CPU and memory, and the series it shows.
//!
//! The flood goes to 10,000 closed UDP ports in turn inside a namespace made for the run;
//! with `--labels +dport` each port is a series. A scraper reads /metrics every 250 ms.
use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

use crate::bench::{flood_ports, prepare, stop};

#[derive(clap::Args)]
pub struct BenchServeArgs {
    /// Seconds of flooding.
    #[arg(long, default_value_t = 15.0)]
    seconds: f64,
    /// Distinct destination ports, so series.
    #[arg(long, default_value_t = 10_000)]
    ports: u16,
}

pub fn bench_serve(args: &BenchServeArgs) -> Result<()> {
    let (bin, ns) = prepare("dtserve")?;
    // Warm up the path, and measure it with nothing attached.
    flood_ports(&ns.0, 0.5, 1..=args.ports)?;
    let baseline = flood_ports(&ns.0, 3.0, 1..=args.ports)?;
    let mut child = Command::new(&bin)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--labels",
            "+dport",
            "--max-series",
        ])
        .arg((u32::from(args.ports) * 2).to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting droptrace serve")?;
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().context("stderr")?;
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("serving http://").nth(1) {
                let _ = tx.send(rest.split('/').next().unwrap_or("").to_owned());
            }
        }
    });
    let addr: SocketAddr = rx
        .recv_timeout(Duration::from_secs(60))
        .context("droptrace serve did not say where it serves")?
        .parse()?;
    let pid = child.id();
    let cpu_before = cpu_ticks(pid)?;
    let started = Instant::now();
    let (rate, scrapes) = std::thread::scope(|s| -> Result<(f64, Vec<(Duration, usize)>)> {
        let stop_at = started + Duration::from_secs_f64(args.seconds);
        let scraper = s.spawn(move || {
            let mut out = Vec::new();
            while Instant::now() < stop_at {
                let t = Instant::now();
                if let Ok(body) = scrape(addr) {
                    let series = body
                        .lines()
                        .filter(|l| l.starts_with("droptrace_drops_total{"))
                        .count();
                    out.push((t.elapsed(), series));
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            out
        });
        let rate = flood_ports(&ns.0, args.seconds, 1..=args.ports)?;
        Ok((rate, scraper.join().unwrap_or_default()))
    })?;
    let cpu = (cpu_ticks(pid)? - cpu_before) as f64 / 100.0 / started.elapsed().as_secs_f64();
    let rss = rss_kib(pid)?;
    stop(&mut child);
    if scrapes.is_empty() {
        bail!("no scrape answered");
    }
    let mut latencies: Vec<Duration> = scrapes.iter().map(|s| s.0).collect();
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    let series = scrapes.iter().map(|s| s.1).max().unwrap_or(0);
    println!("| figure | value |\n|---|---:|");
    println!("| flood, nothing attached | {baseline:.0} drops/s |");
    println!(
        "| flood with serve attached | {rate:.0} drops/s ({:.3} kept) |",
        rate / baseline
    );
    println!("| series of droptrace_drops_total | {series} |");
    println!(
        "| scrape latency p50 / p95 / max ({} scrapes) | {:.1} / {:.1} / {:.1} ms |",
        latencies.len(),
        ms(pick(0.5)),
        ms(pick(0.95)),
        ms(pick(1.0))
    );
    println!(
        "| droptrace CPU during the flood | {:.0}% of a core |",
        cpu * 100.0
    );
    println!(
        "| droptrace RSS at the end | {:.1} MB |",
        rss as f64 / 1024.0
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn scrape(addr: SocketAddr) -> Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    // A loopback Host: serve on loopback answers nothing else (DNS rebinding).
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes())?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    if !body.starts_with("HTTP/1.1 200") {
        bail!(
            "the scrape was not answered with 200: {}",
            body.lines().next().unwrap_or("")
        );
    }
    Ok(body)
}

/// utime + stime of a process, in clock ticks (USER_HZ, 100 on Linux).
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').context("stat")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    Ok(fields[11].parse::<u64>()? + fields[12].parse::<u64>()?)
}

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmRSS")
}
