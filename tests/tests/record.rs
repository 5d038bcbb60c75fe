//! Recordings of real drops: what `report` reads back equals what a live run counted at
//! the same time, a killed recorder leaves a readable file, packets export to pcapng that
//! tshark reads with their drop reason, and a report never asks this machine's kallsyms.
use std::{
    net::UdpSocket,
    path::Path,
    process::{Command, Output},
};

use droptrace_tests::*;
use serde_json::Value;

fn droptrace(args: &[&str]) -> Output {
    Command::new(droptrace_bin())
        .args(args)
        .output()
        .expect("run droptrace")
}

fn report_json(file: &Path) -> Value {
    let out = droptrace(&["report", file.to_str().unwrap(), "--format", "json"]);
    assert!(
        out.status.success(),
        "report failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("report JSON")
}

/// A pair with an nftables rule dropping TCP to port 1678 in `b`, counted.
fn nft_pair() -> Pair {
    let pair = Pair::new();
    nft_drop_tcp_port(&pair.b, "dtr", 1678);
    pair
}

/// `n` SYNs from `a` to `b`'s port 1678, each seen dropped by the rule; returns the rule's
/// packet count (final: every SYN was counted, none can be sent again).
fn dropped_at_1678(pair: &Pair, n: usize) -> u64 {
    let counter = || nft_rule_packets(&pair.b, "dtr", "dtr1678");
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

fn report_equals_the_live_summary_and_pcapng_shows_why() {
    let dir = TempDir::new("record");
    let file = dir.file("drops.dtr");
    let pair = nft_pair();
    let file_arg = file.to_str().unwrap();
    let recorder = Droptrace::record(file_arg, &["--port", "1678", "--snaplen", "128"]);
    let live = Droptrace::start(&["--port", "1678", "--format", "json"]);
    let packets = dropped_at_1678(&pair, 6);
    let recorded = recorder.stop(libc::SIGINT);
    assert!(
        recorded.status.success(),
        "{}",
        String::from_utf8_lossy(&recorded.stderr)
    );
    let live = live.stop_json();

    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "recordings are private");

    let report = report_json(&file);
    eprintln!("nft {packets}; live {live}; report {report}");
    // A recording holds every drop as an event; the live run counted in the kernel.
    assert_eq!(report["counting"], "events");
    assert_eq!(live["counting"], "kernel");
    // Recordings keep TCP retransmits and resets: the SYNs the rule dropped were sent
    // again, the same in both.
    assert!(live["tcp"].is_object(), "{live}");
    assert_eq!(report["tcp"], live["tcp"], "{report}");
    // Nor the interfaces' counters: the live run read them, a report has none to show.
    assert_eq!(live["watched"]["interfaces_read"], true, "{live}");
    assert_eq!(report["watched"]["interfaces_read"], false, "{report}");
    assert_eq!(report["interfaces"], serde_json::json!([]), "{report}");
    let without_counting = |v: &Value| {
        let mut v = v.clone();
        v["counting"] = Value::Null;
        if let Some(o) = v.as_object_mut() {
            o.remove("watched");
        }
        v
    };
    assert_eq!(
        without_counting(&report),
        without_counting(&live),
        "report and live summary differ"
    );
    assert_eq!(report["total"], packets);
    let nft = groups(&report, |g| {
        g["function"] == "nft_do_chain" && g["reason"] == "NETFILTER_DROP" && g["dport"] == 1678
    });
    assert_eq!(count_of(&nft), packets, "{report:#}");

    // The text report: where it was made, and the same table.
    let text = droptrace(&["report", file_arg]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("complete"), "{text}");
    assert!(
        text.contains(&format!("{packets} drops at nft_do_chain+0x")),
        "{text}"
    );

    // pcapng: every dropped SYN, with why it was dropped, as tshark reads it.
    let pcap = dir.file("drops.pcapng");
    let out = droptrace(&["export", file_arg, "--pcapng", pcap.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fields = sh(&[
        "tshark",
        "-r",
        pcap.to_str().unwrap(),
        "-T",
        "fields",
        "-e",
        "frame.comment",
        "-e",
        "ip.dst",
        "-e",
        "tcp.dstport",
        "-e",
        "tcp.flags.syn",
    ]);
    let lines: Vec<&str> = fields.lines().collect();
    assert_eq!(lines.len() as u64, packets, "{fields}");
    for line in lines {
        assert!(line.contains("NETFILTER_DROP at nft_do_chain+0x"), "{line}");
        assert!(line.contains(&format!("\t{B4}\t1678\t")), "{line}");
    }
    let ifaces = sh(&[
        "tshark",
        "-r",
        pcap.to_str().unwrap(),
        "-T",
        "fields",
        "-e",
        "frame.interface_name",
    ]);
    assert!(ifaces.lines().all(|l| l.starts_with("veth-b@")), "{ifaces}");

    // JSON Lines: one object per drop.
    let out = droptrace(&["export", file_arg, "--jsonl", "-"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = String::from_utf8_lossy(&out.stdout);
    let drops: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(drops.len() as u64, packets);
    assert!(drops.iter().all(|d| d["dport"] == 1678 && d["daddr"] == B4));

    // The report never asks this machine's kallsyms: with another one in place, the
    // recorded names stay.
    let address = u64::from_str_radix(
        nft[0]["address"].as_str().unwrap().trim_start_matches("0x"),
        16,
    )
    .unwrap();
    let start = address - nft[0]["offset"].as_u64().unwrap();
    let fake = dir.file("kallsyms");
    std::fs::write(&fake, format!("{start:016x} T not_the_recorded_name\n")).unwrap();
    let script = format!(
        "mount --bind {} /proc/kallsyms && head -1 /proc/kallsyms >&2 && exec {} report {} --format json",
        fake.display(),
        droptrace_bin().display(),
        file.display()
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("not_the_recorded_name"),
        "the fake kallsyms was not in place: {stderr}"
    );
    let elsewhere: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(elsewhere, report);
}

fn a_killed_recorder_leaves_a_readable_file() {
    let dir = TempDir::new("killed");
    let file = dir.file("killed.dtr");
    let pair = nft_pair();
    let recorder = Droptrace::record(file.to_str().unwrap(), &["--port", "1678"]);
    let packets = dropped_at_1678(&pair, 4);
    // Blocks go out every 250 ms: wait until the file, read as it is, holds every drop.
    wait_for("the recording to hold every drop before the kill", || {
        let out = droptrace(&["report", file.to_str().unwrap(), "--format", "json"]);
        let report: Value = serde_json::from_slice(&out.stdout).ok()?;
        let nft = groups(&report, |g| {
            g["function"] == "nft_do_chain" && g["dport"] == 1678
        });
        (out.status.success() && count_of(&nft) == packets).then_some(())
    });
    let killed = recorder.stop(libc::SIGKILL);
    assert_eq!(killed.status.code(), None, "killed by a signal");

    let out = droptrace(&["report", file.to_str().unwrap(), "--format", "json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("without its end block"), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let nft = groups(&report, |g| {
        g["function"] == "nft_do_chain" && g["dport"] == 1678
    });
    assert_eq!(count_of(&nft), packets, "{report:#}");
    let text = droptrace(&["report", file.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("cut at byte"));
}

fn lost_events_are_recorded_and_counts_stay_exact() {
    let dir = TempDir::new("lost");
    let file = dir.file("lost.dtr");
    let (pair, _sink) = Pair::with_tbf();
    let netns = pair.a.path();
    let recorder = Droptrace::record(
        file.to_str().unwrap(),
        &["--netns", &netns, "--ring-buffer-size", "4096"],
    );
    // A stalled recorder: the ring overflows and the kernel counts by group.
    recorder.pause();
    pair.a.run(|| {
        let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
        for _ in 0..20_000 {
            let _ = sock.send_to(&[0x5a_u8; 1000], format!("{B4}:5001"));
        }
    });
    let dropped = qdisc_dropped_once_empty(&pair.a, "veth-a");
    recorder.resume();
    let out = recorder.stop(libc::SIGTERM);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let report = report_json(&file);
    assert!(report["lost_events"].as_u64().unwrap() > 0, "{report:#}");
    let qdisc = groups(&report, |g| g["reason"] == "QDISC_DROP");
    assert_eq!(count_of(&qdisc), dropped, "{report:#}");
    let lost_in_groups: u64 = groups(&report, |_| true)
        .iter()
        .map(|g| g["lost"].as_u64().unwrap())
        .sum();
    assert_eq!(
        lost_in_groups + report["unattributed"].as_u64().unwrap(),
        report["lost_events"].as_u64().unwrap()
    );
}

fn count_stops_the_recording_and_keeps_every_drop_counted() {
    let dir = TempDir::new("count");
    let file = dir.file("count.dtr");
    let pair = nft_pair();
    let recorder = Droptrace::record(file.to_str().unwrap(), &["--port", "1678", "--count", "3"]);
    dropped_at_1678(&pair, 6);
    let out = recorder.wait();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = report_json(&file);
    let total = report["total"].as_u64().unwrap();
    assert!(total >= 3, "{report:#}");
    assert_eq!(count_of(&groups(&report, |_| true)), total, "{report:#}");
}

/// One 1028-byte IPv4 packet (1000 bytes of UDP payload) dropped at three sites: by the
/// tbf on `a`'s veth (the skb still has its Ethernet header), by an nftables rule in `b`
/// (the skb is the IP packet) and in UDP for want of a socket (the IP header already
/// pulled). Its length is 1028 everywhere: in JSON Lines, live and exported, and in
/// pcapng, whose lengths tshark finds consistent.
fn a_packet_has_its_own_length_wherever_it_was_dropped() {
    let dir = TempDir::new("lengths");
    let file = dir.file("lengths.dtr");
    let file_arg = file.to_str().unwrap();
    let (pair, _sink) = Pair::with_tbf();
    pair.b.exec(&["nft", "add table inet dtlen"]);
    pair.b.exec(&[
        "nft",
        "add chain inet dtlen input { type filter hook input priority 0; policy accept; }",
    ]);
    pair.b.exec(&[
        "nft",
        "add rule inet dtlen input udp dport 5002 counter drop comment \"dtlen5002\"",
    ]);
    let filters = ["--addr", B4, "--proto", "udp"];
    let recorder = Droptrace::start(
        &[
            &["record", "-o", file_arg, "--snaplen", "256"][..],
            &filters,
        ]
        .concat(),
    );
    // At most 50 lines a second: the pipe is read only at the end.
    let live = Droptrace::start(
        &[
            &["--format", "jsonl", "--max-events-per-second", "50"][..],
            &filters,
        ]
        .concat(),
    );
    let payload = [0x5a_u8; 1000];
    let sock = pair.a.run(|| UdpSocket::bind("0.0.0.0:0").expect("bind"));
    // One at a time, each seen dropped before the next: the tbf has room for them.
    let no_ports = pair.b.snmp("Udp", "NoPorts");
    for i in 1..=5 {
        sock.send_to(&payload, format!("{B4}:5002")).unwrap();
        reaches("the nft rule counter", i, || {
            nft_rule_packets(&pair.b, "dtlen", "dtlen5002")
        });
        sock.send_to(&payload, format!("{B4}:5003")).unwrap();
        reaches("Udp NoPorts", no_ports + i, || {
            pair.b.snmp("Udp", "NoPorts")
        });
    }
    // A burst the tbf cannot hold: it drops most of it on transmit.
    for _ in 0..300 {
        let _ = sock.send_to(&payload, format!("{B4}:5001"));
    }
    reaches("the tbf's drops", 1, || tbf_drops(&pair.a));
    let recorded = recorder.stop(libc::SIGINT);
    assert!(
        recorded.status.success(),
        "{}",
        String::from_utf8_lossy(&recorded.stderr)
    );
    let live = live.stop(libc::SIGINT);
    let live_lines = String::from_utf8_lossy(&live.stdout).into_owned();

    let out = droptrace(&["export", file_arg, "--jsonl", "-"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exported = String::from_utf8_lossy(&out.stdout).into_owned();
    for (what, lines) in [("exported", &exported), ("live", &live_lines)] {
        let drops: Vec<Value> = lines
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .filter(|d: &Value| d["type"] != "summary")
            .collect();
        for reason in ["QDISC_DROP", "NETFILTER_DROP", "NO_SOCKET"] {
            let of: Vec<&Value> = drops.iter().filter(|d| d["reason"] == reason).collect();
            assert!(!of.is_empty(), "{what}: no {reason} drop in:\n{lines}");
            let l2 = if reason == "QDISC_DROP" { 14 } else { 0 };
            for d in of {
                assert_eq!(
                    (&d["len"], &d["l2_len"]),
                    (&Value::from(1028), &Value::from(l2)),
                    "{what}: {d}"
                );
            }
        }
        assert!(drops.iter().all(|d| d["len"] == 1028), "{what}:\n{lines}");
    }

    let pcap = dir.file("lengths.pcapng");
    let out = droptrace(&["export", file_arg, "--pcapng", pcap.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pcap = pcap.to_str().unwrap();
    let fields = sh(&[
        "tshark",
        "-r",
        pcap,
        "-T",
        "fields",
        "-e",
        "frame.len",
        "-e",
        "ip.len",
        "-e",
        "udp.length",
        "-e",
        "frame.comment",
    ]);
    assert!(!fields.is_empty());
    for line in fields.lines() {
        assert!(line.starts_with("1028\t1028\t1008\t"), "{line}");
    }
    let bad = sh(&[
        "tshark",
        "-r",
        pcap,
        "-Y",
        "udp.length.bad || _ws.malformed",
    ]);
    assert!(bad.trim().is_empty(), "tshark finds bad lengths:\n{bad}");
}

/// Packets the root qdisc of `a`'s veth dropped (`tc -s`).
fn tbf_drops(ns: &Netns) -> u64 {
    let json = ns.exec(&["tc", "-s", "-j", "qdisc", "show", "dev", "veth-a"]);
    let v: Value = serde_json::from_str(&json).expect("tc json");
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|q| q["drops"].as_u64())
        .sum()
}

droptrace_tests::root_tests!(
    report_equals_the_live_summary_and_pcapng_shows_why,
    a_killed_recorder_leaves_a_readable_file,
    lost_events_are_recorded_and_counts_stay_exact,
    count_stops_the_recording_and_keeps_every_drop_counted,
    a_packet_has_its_own_length_wherever_it_was_dropped,
);
