//! Times one full scan of the host's namespaces to their containers and pods (what
//! droptrace does once at the start when it names workloads):
//! `sudo cargo run --release --example workload_scan [ROUNDS]`.
use std::time::Instant;

use droptrace::probe::workloads::{processes, HostPaths, Scan};

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let host = HostPaths::new(std::path::Path::new("/"));
    let pids: usize = processes(&host).values().map(Vec::len).sum();
    let mut times = Vec::new();
    let mut scan = Scan::default();
    for _ in 0..rounds {
        let start = Instant::now();
        scan = Scan::run(&host);
        times.push(start.elapsed());
    }
    times.sort();
    println!(
        "{} processes, {} namespaces, {} named workloads: one scan p50 {:.2} ms, max {:.2} ms ({rounds} rounds)",
        std::fs::read_dir("/proc")
            .map(|d| d.flatten().filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok()).count())
            .unwrap_or(0),
        processes(&host).len(),
        scan.workloads.len(),
        times[times.len() / 2].as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3,
    );
    let _ = pids;
    for (ns, w) in &scan.workloads {
        println!("  netns {ns}: {} ({})", w.label(), w.container.id);
    }
}
