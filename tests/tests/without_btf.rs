//! Every command on a kernel without BTF (the classic tracepoint, reasons from its tracefs
//! format): the counts of one real cause stay exact. Packet filters need BTF, so each
//! command is narrowed by reason only, which holds on a machine where nothing else drops
//! with NETFILTER_DROP: `cargo xtask vmtest` runs this in its guests with
//! `/sys/kernel/btf` hidden; on a kernel with BTF it says so and does nothing.
use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use droptrace_tests::*;
use serde_json::Value;

const REASON: &[&str] = &["--reason", "NETFILTER_DROP"];

fn without_btf() {
    if Path::new("/sys/kernel/btf/vmlinux").exists() {
        skip("the kernel has BTF (`cargo xtask vmtest` runs it with /sys/kernel/btf hidden)");
    }
}

/// A pair whose `b` drops TCP to 1678 with an nft rule.
fn nft_pair(table: &str) -> Pair {
    let pair = Pair::new();
    nft_drop_tcp_port(&pair.b, table, 1678);
    pair
}

/// `n` SYNs dropped by the rule; returns the rule's final packet count.
fn drops(pair: &Pair, table: &str, n: usize) -> u64 {
    let counter = || nft_rule_packets(&pair.b, table, &format!("{table}1678"));
    let failed = dropped_syns(
        &pair.a,
        format!("{B4}:1678").parse().unwrap(),
        n,
        "the nft rule counter",
        counter,
    );
    assert_eq!(failed, n);
    counter()
}

fn with_reason<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut all = args.to_vec();
    all.extend_from_slice(REASON);
    all
}

fn attached_classic(stderr: &str) {
    assert!(
        stderr.contains("no usable kernel BTF"),
        "droptrace should say it attaches without BTF:\n{stderr}"
    );
}

fn json_text_and_jsonl_count_exactly_without_btf() {
    without_btf();
    let pair = nft_pair("dtn");
    let json = Droptrace::start(&with_reason(&["--format", "json"]));
    let text = Droptrace::start(&with_reason(&["--format", "text"]));
    let jsonl = Droptrace::start(&with_reason(&["--format", "jsonl"]));
    let packets = drops(&pair, "dtn", 5);

    let summary = json.stop_json();
    eprintln!("nft {packets}; {summary:#}");
    assert_eq!(summary["total"], packets, "{summary:#}");
    let nft = groups(&summary, |g| {
        g["function"] == "nft_do_chain" && g["reason"] == "NETFILTER_DROP"
    });
    assert_eq!(count_of(&nft), packets, "{summary:#}");
    // No BTF, no packet details: protocol and port are unknown.
    assert!(nft.iter().all(|g| g["dport"].is_null()), "{summary:#}");

    let out = text.stop(libc::SIGINT);
    let stdout = String::from_utf8_lossy(&out.stdout);
    attached_classic(&String::from_utf8_lossy(&out.stderr));
    // The closing table: the exact total, and the rule's drop site.
    assert!(
        stdout.contains(&format!("droptrace: {packets} drops matched")),
        "{stdout}"
    );
    assert!(stdout.contains("nft_do_chain+0x"), "{stdout}");

    let out = jsonl.stop(libc::SIGINT);
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let events = lines
        .iter()
        .filter(|l| l["reason"] == "NETFILTER_DROP")
        .count();
    assert_eq!(events as u64, packets, "{lines:#?}");
}

/// A file for a recording, removed at the end.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn record_and_report_count_exactly_without_btf() {
    without_btf();
    let file = Scratch(std::env::temp_dir().join(format!("dt-nobtf-{}.dtr", std::process::id())));
    let path = file.0.to_str().unwrap();
    let pair = nft_pair("dtn");
    let recorder = Droptrace::start(&with_reason(&["record", "-o", path]));
    let packets = drops(&pair, "dtn", 4);
    let out = recorder.stop(libc::SIGINT);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = Command::new(droptrace_bin())
        .args(["report", path, "--format", "json"])
        .output()
        .expect("droptrace report");
    assert!(
        report.status.success(),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
    let report: Value = serde_json::from_slice(&report.stdout).expect("report JSON");
    assert_eq!(report["total"], packets, "{report:#}");
    let nft = groups(&report, |g| g["reason"] == "NETFILTER_DROP");
    assert_eq!(count_of(&nft), packets, "{report:#}");
}

fn diagnose_counts_exactly_without_btf() {
    without_btf();
    let pair = nft_pair("dtn");
    let window = (10 * time_scale()).to_string();
    let dt = Droptrace::start(&with_reason(&[
        "diagnose",
        "--duration",
        &window,
        "--format",
        "json",
    ]));
    let started = std::time::Instant::now();
    let packets = drops(&pair, "dtn", 4);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(window.parse().unwrap()),
        "the traffic took {took:?}, longer than the window"
    );
    let report = dt.wait_json();
    eprintln!("nft {packets}; {report:#}");
    assert_eq!(report["total"], packets, "{report:#}");
    let top = &report["findings"][0];
    assert_eq!(top["cause"], "netfilter_rule", "{report:#}");
    assert_eq!(top["drops"], packets, "{report:#}");
}

fn serve_counts_exactly_without_btf() {
    without_btf();
    let pair = nft_pair("dtn");
    let dt = Droptrace::start(&with_reason(&["serve", "--listen", "127.0.0.1:0"]));
    let addr = dt.serving();
    let packets = drops(&pair, "dtn", 4);
    let series = || -> u64 {
        http::get(addr, "/metrics", &[])
            .map(|a| a.body)
            .unwrap_or_default()
            .lines()
            .filter(|l| {
                l.starts_with("droptrace_drops_total{") && l.contains("reason=\"NETFILTER_DROP\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    let seen = reaches("the NETFILTER_DROP series", packets, series);
    assert_eq!(seen, packets);
    let out = dt.stop(libc::SIGTERM);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    attached_classic(&String::from_utf8_lossy(&out.stderr));
}

droptrace_tests::root_tests!(
    json_text_and_jsonl_count_exactly_without_btf,
    record_and_report_count_exactly_without_btf,
    diagnose_counts_exactly_without_btf,
    serve_counts_exactly_without_btf,
);
