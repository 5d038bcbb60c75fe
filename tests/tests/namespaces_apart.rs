//! Two namespaces whose own nftables rules drop TCP to 1678: every summary (the JSON one,
//! the text blocks and closing table, `report`, `diagnose`) keeps them apart, by name, each
//! with exactly its rule's count.
use std::{
    io::ErrorKind,
    net::{SocketAddr, TcpStream},
    process::{Command, Output},
};

use droptrace_tests::*;
use serde_json::Value;

/// A pair whose `b` drops TCP to 1678 with a counted rule (table `dt`, comment `dt1678`).
fn nft_pair() -> Pair {
    let pair = Pair::new();
    nft_drop_tcp_port(&pair.b, "dt", 1678);
    pair
}

fn rule(pair: &Pair) -> u64 {
    nft_rule_packets(&pair.b, "dt", "dt1678")
}

/// `n` SYNs from `a` to `b`:1678 at once (a thread each: more in one moment than the
/// kernel sends samples of), each dropped by the rule; returns the rule's counter once it
/// has counted them all.
fn syn_burst(pair: &Pair, n: usize) -> u64 {
    let before = rule(pair);
    let to: SocketAddr = format!("{B4}:1678").parse().unwrap();
    let timed_out = pair.a.run(|| {
        // Threads made here are in the namespace of the thread that makes them.
        std::thread::scope(|s| {
            let attempts: Vec<_> = (0..n)
                .map(|_| s.spawn(move || TcpStream::connect_timeout(&to, ATTEMPT_TIMEOUT)))
                .collect();
            attempts
                .into_iter()
                .map(|a| a.join().expect("connect thread"))
                .filter(|r| matches!(r, Err(e) if e.kind() == ErrorKind::TimedOut))
                .count()
        })
    });
    assert_eq!(timed_out, n, "every SYN to {to} should go unanswered");
    reaches(
        &format!("the nft rule counter after {n} SYNs"),
        before + n as u64,
        || rule(pair),
    )
}

fn droptrace(args: &[&str]) -> Output {
    Command::new(droptrace_bin())
        .args(args)
        .output()
        .expect("run droptrace")
}

/// The JSON summary has one group per namespace at the rule's drop site, named, with the
/// interface, counting exactly what that namespace's rule counted.
fn assert_apart(summary: &Value, pairs: &[Pair], counts: &[u64]) {
    let nft = groups(summary, |g| {
        g["function"] == "nft_do_chain" && g["reason"] == "NETFILTER_DROP" && g["dport"] == 1678
    });
    assert_eq!(nft.len(), pairs.len(), "a group per namespace: {summary:#}");
    for (pair, count) in pairs.iter().zip(counts) {
        let g = nft
            .iter()
            .find(|g| g["namespace"] == pair.b.name.as_str())
            .unwrap_or_else(|| panic!("no group of {}: {summary:#}", pair.b.name));
        assert_eq!(g["count"], *count, "{}: {summary:#}", pair.b.name);
        assert_eq!(g["interface"], "veth-b", "{summary:#}");
        assert!(g["netns"].as_u64().is_some_and(|n| n > 0), "{summary:#}");
        assert!(g["ifindex"].as_u64().is_some_and(|n| n > 0), "{summary:#}");
    }
}

/// The count of the text line that ends ` on veth-b in netns NAME` in `lines`, summed.
fn text_count<'a>(lines: impl Iterator<Item = &'a str>, pair: &Pair) -> u64 {
    let tail = format!(" tcp dport 1678 on veth-b in netns {}", pair.b.name);
    lines
        .filter(|l| l.contains(" drop") && l.ends_with(&tail))
        .map(|l| l.split_whitespace().next().unwrap().parse::<u64>().unwrap())
        .sum()
}

fn the_json_summary_and_report_keep_each_namespace_with_its_rules_count() {
    let pairs = [nft_pair(), nft_pair()];
    let file = std::env::temp_dir().join(format!("{}.dtr", pairs[0].b.name));
    struct Remove<'a>(&'a std::path::Path);
    impl Drop for Remove<'_> {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(self.0);
        }
    }
    let _remove = Remove(&file);
    let file_arg = file.to_str().unwrap();
    let recorder = Droptrace::record(file_arg, &["--port", "1678"]);
    let live = Droptrace::start(&["--port", "1678", "--format", "json"]);
    let counts = [syn_burst(&pairs[0], 4), syn_burst(&pairs[1], 9)];
    let recorded = recorder.stop(libc::SIGINT);
    assert!(
        recorded.status.success(),
        "{}",
        String::from_utf8_lossy(&recorded.stderr)
    );
    let live = live.stop_json();
    eprintln!("nft counters {counts:?}; live {live}");
    assert_apart(&live, &pairs, &counts);

    let out = droptrace(&["report", file_arg, "--format", "json"]);
    assert!(out.status.success(), "{out:?}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("report JSON");
    assert_apart(&report, &pairs, &counts);

    let out = droptrace(&["report", file_arg]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    for (pair, count) in pairs.iter().zip(counts) {
        assert_eq!(text_count(text.lines(), pair), count, "{text}");
    }
}

fn text_blocks_add_up_to_their_headers_and_keep_each_namespace() {
    let pairs = [nft_pair(), nft_pair()];
    let dt = Droptrace::start(&["--port", "1678", "--format", "text", "--interval", "0.3"]);
    // Bursts of more drops than the kernel samples, in groups it has not seen before.
    let mut counts = [0, 0];
    for round in 0..2 {
        for (i, pair) in pairs.iter().enumerate() {
            counts[i] = syn_burst(pair, 12 + 5 * round + i);
        }
    }
    let out = dt.stop(libc::SIGINT);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("nft counters {counts:?}; droptrace:\n{text}");
    let (blocks, table) = text
        .split_once("\ndroptrace: ")
        .unwrap_or_else(|| panic!("no closing table: {text}"));
    // Every block: `[    1.2s] N new drops, M in all, L lost events; YYYY-MM-DD HH:MM:SS UTC`,
    // then lines adding up to N.
    let mut parsed: Vec<(&str, Vec<&str>)> = Vec::new();
    for line in blocks.lines() {
        if line.starts_with('[') {
            parsed.push((line, Vec::new()));
        } else {
            parsed.last_mut().expect("a header first").1.push(line);
        }
    }
    assert!(!parsed.is_empty(), "{text}");
    let mut in_blocks = [0, 0];
    let mut all = 0;
    for (header, lines) in parsed {
        let new: u64 = header
            .split("s] ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("header `{header}`"));
        let (_, when) = header
            .rsplit_once("; ")
            .unwrap_or_else(|| panic!("no time in `{header}`"));
        assert!(
            when.len() == "2026-12-07 02:44:16 UTC".len() && when.ends_with(" UTC"),
            "`{header}`"
        );
        let sum: u64 = lines
            .iter()
            .map(|l| l.split_whitespace().next().unwrap().parse::<u64>().unwrap())
            .sum();
        assert_eq!(
            sum,
            new,
            "the lines of a block add up to its header:\n{header}\n{}",
            lines.join("\n")
        );
        all += new;
        assert!(header.contains(&format!(", {all} in all, ")), "`{header}`");
        for (i, pair) in pairs.iter().enumerate() {
            in_blocks[i] += text_count(lines.iter().copied(), pair);
        }
    }
    // The blocks hold what came by the last tick; the closing table everything.
    for (i, count) in counts.iter().enumerate() {
        assert!(in_blocks[i] <= *count, "{in_blocks:?} {counts:?}: {text}");
    }
    assert!(all > 0, "{text}");
    for (pair, count) in pairs.iter().zip(counts) {
        assert_eq!(text_count(table.lines(), pair), count, "{text}");
    }
}

/// `droptrace diagnose` for a window of 3 s (scaled), with the drops made once it watches.
fn diagnose(args: &[&str], traffic: impl FnOnce()) -> Output {
    let secs = (3 * time_scale()).to_string();
    let mut all = vec!["diagnose", "--duration", &secs, "--port", "1678"];
    all.extend_from_slice(args);
    let dt = Droptrace::start(&all);
    traffic();
    let out = dt.wait();
    assert!(out.status.success(), "{out:?}");
    out
}

fn diagnose_names_each_namespaces_rule_with_figures_that_say_their_window() {
    let pairs = [nft_pair(), nft_pair()];
    let before = [rule(&pairs[0]), rule(&pairs[1])];
    let mut after = [0, 0];
    let out = diagnose(&[], || {
        after = [syn_burst(&pairs[0], 3), syn_burst(&pairs[1], 6)];
    });
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    assert!(text.contains("drops seen in "), "{text}");
    for (i, pair) in pairs.iter().enumerate() {
        let n = after[i] - before[i];
        // The finding of this namespace: its drops, seen while watching, and its rule's
        // growth between the samples; both the rule counter's.
        let finding = text
            .split("\n\n")
            .find(|f| {
                f.contains("[netfilter_rule]")
                    && f.contains(&format!(" in netns {}\n", pair.b.name))
            })
            .unwrap_or_else(|| panic!("no finding in netns {}:\n{text}", pair.b.name));
        assert!(
            finding.contains(&format!("[netfilter_rule] {n} drops seen in ")),
            "{finding}"
        );
        assert!(
            finding.contains(&format!("dropped {n} packets between the samples (")),
            "{finding}"
        );
        assert!(finding.contains("comment \"dt1678\""), "{finding}");
    }
}

fn a_rule_added_since_the_baseline_is_no_news_about_an_old_rules_drops() {
    let pairs = [nft_pair(), nft_pair()];
    let file = std::env::temp_dir().join(format!("{}-baseline.json", pairs[0].b.name));
    struct Remove<'a>(&'a std::path::Path);
    impl Drop for Remove<'_> {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(self.0);
        }
    }
    let _remove = Remove(&file);
    let file_arg = file.to_str().unwrap();
    diagnose(&["--save-baseline", file_arg, "--format", "json"], || {});
    // Since: a rule for another port, in the namespace with fewer drops.
    pairs[0].b.exec(&[
        "nft",
        "add rule inet dt input udp dport 5001 counter drop comment \"dt5001\"",
    ]);
    let before = [rule(&pairs[0]), rule(&pairs[1])];
    let mut after = [0, 0];
    let out = diagnose(&["--baseline", file_arg, "--format", "json"], || {
        after = [syn_burst(&pairs[0], 3), syn_burst(&pairs[1], 8)];
    });
    let report: Value = serde_json::from_slice(&out.stdout).expect("report JSON");
    eprintln!("{report:#}");
    let diff = report["baseline_diff"].to_string();
    assert!(diff.contains("udp dport 5001"), "{diff}");
    let findings: Vec<&Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["cause"] == "netfilter_rule")
        .collect();
    let of = |pair: &Pair| {
        findings
            .iter()
            .position(|f| f["netns"] == pair.b.name.as_str())
            .unwrap_or_else(|| panic!("no finding in {}: {report:#}", pair.b.name))
    };
    let (small, big) = (of(&pairs[0]), of(&pairs[1]));
    assert_eq!(findings[small]["drops"], after[0] - before[0]);
    assert_eq!(findings[big]["drops"], after[1] - before[1]);
    assert!(big < small, "the bigger finding first: {report:#}");
    assert!(
        !findings[small]["evidence"]
            .to_string()
            .contains("since the baseline"),
        "{:#}",
        findings[small]
    );
}

droptrace_tests::root_tests!(
    the_json_summary_and_report_keep_each_namespace_with_its_rules_count,
    text_blocks_add_up_to_their_headers_and_keep_each_namespace,
    diagnose_names_each_namespaces_rule_with_figures_that_say_their_window,
    a_rule_added_since_the_baseline_is_no_news_about_an_old_rules_drops,
);
