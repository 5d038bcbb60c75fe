//! A namespace deleted and another created on its inode: the kernel hands a freed
//! namespace inode to the next namespace made. Every command counts and names the new
//! namespace's drops as its own, equal to its nft counter, and never takes them from (or
//! gives them to) the old one.
use std::{collections::HashMap, net::UdpSocket, path::PathBuf, time::Duration};

use droptrace_tests::{http, *};
use serde_json::Value;

/// The UDP port the tests' nft rules drop (unique to this file).
const PORT: u16 = 41_828;
const TABLE: &str = "reuse";
/// Drops made in the old namespace and in the new one.
const OLD_DROPS: usize = 1000;
const NEW_DROPS: usize = 100;

fn port() -> String {
    PORT.to_string()
}

fn inode(ns: &Netns) -> u64 {
    let out = sh(&["stat", "-L", "-c", "%i", &ns.path()]);
    out.trim()
        .parse()
        .unwrap_or_else(|e| panic!("inode of {}: {e}: {out}", ns.name))
}

/// A namespace whose nft rule drops (and counts) UDP to `PORT` on input.
fn dropping_namespace(tag: &str) -> Netns {
    let ns = Netns::new(tag);
    ns.exec(&["nft", "add", "table", "inet", TABLE]);
    ns.exec(&[
        "nft",
        &format!(
            "add chain inet {TABLE} input {{ type filter hook input priority 0; policy accept; }}"
        ),
    ]);
    ns.exec(&[
        "nft",
        &format!("add rule inet {TABLE} input udp dport {PORT} counter drop comment \"{TABLE}\""),
    ]);
    ns
}

fn rule_count(ns: &Netns) -> u64 {
    nft_rule_packets(ns, TABLE, TABLE)
}

/// Sends `n` datagrams to 127.0.0.1:`PORT` inside `ns`; returns once its rule has counted
/// them all (and says that is what it counted).
fn udp_drops(ns: &Netns, n: usize) -> u64 {
    let before = rule_count(ns);
    ns.run(|| {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..n {
            sock.send_to(b"reused", ("127.0.0.1", PORT)).unwrap();
        }
    });
    let target = before + n as u64;
    let counted = reaches(&format!("the nft counter in {}", ns.name), target, || {
        rule_count(ns)
    });
    assert_eq!(counted, target);
    counted
}

/// Deletes `old` and makes namespaces (deleting each other one) until one gets its inode:
/// the kernel frees the inode once the namespace's cleanup has run (a workqueue, later
/// on a loaded machine), and the next namespace made gets it unless another one is made
/// first. Bounded by time, not by tries: how long the cleanup takes is the kernel's.
fn on_its_inode(old: Netns, tag: &str) -> Netns {
    let wanted = inode(&old);
    drop(old);
    let limit = Duration::from_secs(60 * u64::from(time_scale()));
    let deadline = std::time::Instant::now() + limit;
    let mut tries = 0;
    while std::time::Instant::now() < deadline {
        tries += 1;
        let ns = dropping_namespace(tag);
        if inode(&ns) == wanted {
            return ns;
        }
        drop(ns);
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("no namespace got inode {wanted} back in {limit:?} ({tries} tries)");
}

/// The namespace made on the old one's inode, with its drops made: (the old one's name,
/// the new one, its rule's count).
fn old_then_new(before_new: impl FnOnce(&str)) -> (String, Netns, u64) {
    let old = dropping_namespace("ro");
    let old_name = old.name.clone();
    assert_eq!(udp_drops(&old, OLD_DROPS), OLD_DROPS as u64);
    before_new(&old_name);
    let old_inode = inode(&old);
    let new = on_its_inode(old, "rn");
    assert_eq!(inode(&new), old_inode, "the inode is reused");
    let counted = udp_drops(&new, NEW_DROPS);
    assert_eq!(counted, NEW_DROPS as u64);
    (old_name, new, counted)
}

/// The sum of the `droptrace_drops_total` series whose netns label is `name` (None when
/// there is none).
fn series_sum(body: &str, name: &str) -> Option<u64> {
    let label = format!("netns=\"{name}\"");
    let values: Vec<u64> = body
        .lines()
        .filter(|l| l.starts_with("droptrace_drops_total{") && l.contains(&label))
        .map(|l| {
            let v = l.rsplit(' ').next().unwrap_or_default();
            v.parse::<f64>()
                .unwrap_or_else(|e| panic!("`{v}` in `{l}`: {e}")) as u64
        })
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

fn scrape(addr: std::net::SocketAddr) -> String {
    let answer = http::get(addr, "/metrics", &[]).expect("a scrape");
    assert_eq!(answer.status, 200, "{answer:?}");
    answer.body
}

fn serve_counts_a_namespace_on_a_reused_inode_as_its_own() {
    let dt = Droptrace::start(&["serve", "--listen", "127.0.0.1:0", "--port", &port()]);
    let addr = dt.serving();
    // The old namespace's series, as seen at every scrape: it may go (its namespace is
    // gone), but never down.
    let mut old_seen: Vec<u64> = Vec::new();
    let mut watch_old = |body: &str, old_name: &str| {
        if let Some(v) = series_sum(body, old_name) {
            if let Some(last) = old_seen.last() {
                assert!(v >= *last, "the old series went back from {last} to {v}");
            }
            old_seen.push(v);
        }
    };
    let (old_name, new, counted) = old_then_new(|old_name| {
        let seen = reaches("the old namespace's series", OLD_DROPS as u64, || {
            series_sum(&scrape(addr), old_name).unwrap_or(0)
        });
        assert_eq!(seen, OLD_DROPS as u64);
    });
    let seen = reaches("the new namespace's series", counted, || {
        let body = scrape(addr);
        watch_old(&body, &old_name);
        series_sum(&body, &new.name).unwrap_or(0)
    });
    assert_eq!(
        seen, counted,
        "the new namespace's series is its nft counter"
    );
    let body = scrape(addr);
    watch_old(&body, &old_name);
    assert_eq!(series_sum(&body, &new.name), Some(counted), "{body}");
    assert!(
        old_seen.iter().all(|v| *v == OLD_DROPS as u64),
        "the old series holds the old drops only: {old_seen:?}"
    );
    drop(dt);
}

/// Counts JSON Lines objects with a namespace by that namespace.
fn by_namespace(lines: &str) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    for line in lines.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if let Some(ns) = v["namespace"].as_str() {
            *out.entry(ns.to_owned()).or_default() += 1;
        }
    }
    out
}

/// Waits (bounded) until the file at `path` holds `needle`: what droptrace has written of
/// a namespace once it has read its drops (and named it, which it can only while the
/// namespace exists).
fn written(path: &std::path::Path, needle: &str) {
    wait_for(&format!("`{needle}` in {}", path.display()), || {
        let bytes = std::fs::read(path).unwrap_or_default();
        bytes
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
            .then_some(())
    });
}

fn live_json_lines_name_a_namespace_on_a_reused_inode_as_itself() {
    let out = Scratch(PathBuf::from(format!(
        "/tmp/dt{}-reused-inode.jsonl",
        std::process::id()
    )));
    let port = port();
    // Through a file, to see the old namespace's lines before it is deleted.
    let mut sh_cmd = std::process::Command::new("sh");
    sh_cmd.args([
        "-c",
        "exec \"$0\" \"$@\" > \"$OUT\"",
        droptrace_bin().to_str().unwrap(),
        "--format",
        "jsonl",
        "--port",
        &port,
        "--max-events-per-second",
        "100000",
    ]);
    sh_cmd.env("OUT", &out.0);
    let dt = Droptrace::spawn_command(sh_cmd);
    let (old_name, new, counted) = old_then_new(|old_name| {
        written(&out.0, &format!("\"namespace\":\"{old_name}\""));
    });
    written(&out.0, &format!("\"namespace\":\"{}\"", new.name));
    let status = dt.stop(libc::SIGINT);
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let counts = by_namespace(&std::fs::read_to_string(&out.0).unwrap());
    assert_eq!(counts.get(&new.name), Some(&counted), "{counts:?}");
    assert_eq!(
        counts.get(&old_name),
        Some(&(OLD_DROPS as u64)),
        "{counts:?}"
    );
}

/// A file removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn droptrace(args: &[&str]) -> std::process::Output {
    let out = std::process::Command::new(droptrace_bin())
        .args(args)
        .output()
        .expect("droptrace");
    assert!(
        out.status.success(),
        "droptrace {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn a_recording_keeps_a_namespace_on_a_reused_inode_apart() {
    let file = Scratch(PathBuf::from(format!(
        "/tmp/dt{}-reused-inode.dtr",
        std::process::id()
    )));
    let path = file.0.to_str().unwrap().to_owned();
    let recorder = Droptrace::record(&path, &["--port", &port()]);
    // The old namespace is deleted once the recording names it (names go in before the
    // drops that use them).
    let (old_name, new, counted) = old_then_new(|old_name| written(&file.0, old_name));
    written(&file.0, &new.name);
    let out = recorder.stop(libc::SIGINT);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let exported = droptrace(&["export", &path, "--jsonl", "-"]);
    let counts = by_namespace(&String::from_utf8_lossy(&exported.stdout));
    assert_eq!(counts.get(&new.name), Some(&counted), "{counts:?}");
    assert_eq!(
        counts.get(&old_name),
        Some(&(OLD_DROPS as u64)),
        "{counts:?}"
    );

    let report = droptrace(&["report", &path, "--format", "json"]);
    let report: Value = serde_json::from_slice(&report.stdout).expect("report JSON");
    let nft = groups(&report, |g| g["reason"] == "NETFILTER_DROP");
    assert_eq!(count_of(&nft), OLD_DROPS as u64 + counted, "{report:#}");
}

fn diagnose_counts_and_names_a_namespace_on_a_reused_inode() {
    let old = dropping_namespace("ro");
    let old_name = old.name.clone();
    assert_eq!(udp_drops(&old, OLD_DROPS), OLD_DROPS as u64);
    let new = on_its_inode(old, "rn");
    let window = (5 * time_scale()).to_string();
    let dt = Droptrace::start(&[
        "diagnose",
        "--duration",
        &window,
        "--format",
        "json",
        "--port",
        &port(),
        "--netns",
        &new.path(),
    ]);
    let counted = udp_drops(&new, NEW_DROPS);
    let report = dt.wait_json();
    let findings = report["findings"].as_array().expect("findings");
    let f = findings
        .iter()
        .find(|f| f["cause"] == "netfilter_rule")
        .unwrap_or_else(|| panic!("no netfilter_rule finding: {report:#}"));
    assert_eq!(f["drops"], counted, "{report:#}");
    let text = f.to_string();
    assert!(text.contains(&new.name), "names the new namespace: {f:#}");
    assert!(!text.contains(&old_name), "not the old one: {f:#}");
}

fn a_namespace_filter_does_not_let_in_a_namespace_on_the_same_inode() {
    let old = dropping_namespace("ro");
    let dt = Droptrace::start(&[
        "--format",
        "json",
        "--port",
        &port(),
        "--netns",
        &old.path(),
    ]);
    assert_eq!(udp_drops(&old, OLD_DROPS), OLD_DROPS as u64);
    let new = on_its_inode(old, "rn");
    assert_eq!(udp_drops(&new, NEW_DROPS), NEW_DROPS as u64);
    let summary = dt.stop_json();
    let nft = groups(&summary, |g| g["reason"] == "NETFILTER_DROP");
    assert_eq!(
        count_of(&nft),
        OLD_DROPS as u64,
        "the filtered namespace's drops only: {summary:#}"
    );
}

droptrace_tests::root_tests!(
    serve_counts_a_namespace_on_a_reused_inode_as_its_own,
    live_json_lines_name_a_namespace_on_a_reused_inode_as_itself,
    a_recording_keeps_a_namespace_on_a_reused_inode_apart,
    diagnose_counts_and_names_a_namespace_on_a_reused_inode,
    a_namespace_filter_does_not_let_in_a_namespace_on_the_same_inode,
);
