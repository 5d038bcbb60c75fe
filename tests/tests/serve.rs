//! `droptrace serve` scraped by a real Prometheus: its series equal the kernel's own
//! counters, also when the ring buffer overflows; `promtool` finds nothing wrong; hostile
//! clients do not stop it; `--format jsonl` gives one object per drop.
use std::{
    io::{BufRead, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use droptrace_tests::{http, prometheus::Prometheus, *};

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

const RULES: &str = "deploy/prometheus/droptrace-alerts.yml";

fn serve(args: &[&str]) -> Droptrace {
    let mut all = vec!["serve", "--listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    Droptrace::start(&all)
}

/// `promtool check metrics` on a scrape: no problem reported.
fn promtool_check(body: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (apt-get install prometheus)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}\n{body}"
    );
}

fn scrape(addr: SocketAddr, accept: Option<&str>) -> http::Answer {
    let header = accept.map(|a| format!("Accept: {a}"));
    let headers: Vec<&str> = header.iter().map(String::as_str).collect();
    let answer = http::get(addr, "/metrics", &headers).expect("a scrape");
    assert_eq!(answer.status, 200, "{answer:?}");
    answer
}

fn prometheus_sees_exactly_the_nft_rule_counter() {
    let (pair, _listener) = Pair::with_nft_drop_on_1678();
    let dt = serve(&["--port", "1678"]);
    let addr = dt.serving();
    let prom = Prometheus::start(addr, Some(repo(RULES).to_str().unwrap()));
    let packets = pair.nft_dropped_syns(6);
    let query = format!(
        "sum(droptrace_drops_total{{reason=\"NETFILTER_DROP\",netns=\"{}\"}})",
        pair.b.name
    );
    let seen = reaches(
        "Prometheus's sum of the NETFILTER_DROP series",
        packets,
        || prom.value(&query) as u64,
    );
    assert_eq!(seen, packets, "Prometheus shows exactly the rule's count");
    // The series carries the names of where the drop happened.
    let series = prom.query(&format!(
        "droptrace_drops_total{{reason=\"NETFILTER_DROP\",netns=\"{}\"}}",
        pair.b.name
    ));
    assert_eq!(series.len(), 1, "{series:?}");
    let labels = &series[0].0;
    assert_eq!(labels["function"], "nft_do_chain", "{labels}");
    assert_eq!(labels["protocol"], "tcp", "{labels}");
    assert_eq!(labels["interface"], "veth-b", "{labels}");
    assert!(
        labels.get("dport").is_none(),
        "dport is off by default: {labels}"
    );
    assert_eq!(prom.value("droptrace_build_info"), 1.0);

    // Both formats: the text format passes promtool, OpenMetrics ends as it must.
    promtool_check(&scrape(addr, None).body);
    let om = scrape(
        addr,
        Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
    );
    assert!(
        om.head.contains("application/openmetrics-text"),
        "{}",
        om.head
    );
    assert!(om.body.ends_with("# EOF\n"), "{}", om.body);

    // The alert rules load and evaluate in this Prometheus, and every dashboard query runs.
    let rules = prom.rule_groups();
    let loaded = rules["data"]["groups"][0]["rules"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(loaded, 7, "{rules}");
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo("deploy/grafana/droptrace-dashboard.json")).unwrap(),
    )
    .unwrap();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "1m")
                .replace("$instance", ".*");
            let path = format!("/api/v1/query?query={}", http::encode_query(&expr));
            let answer = http::get(prom.addr, &path, &[]).unwrap();
            assert!(
                answer.body.contains("\"status\":\"success\""),
                "{expr}: {}",
                answer.body
            );
        }
    }
    let health = http::get(addr, "/healthz", &[]).unwrap();
    assert_eq!(health.status, 200, "{health:?}");
    drop(prom);
    let out = dt.stop(libc::SIGTERM);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn prometheus_stays_exact_when_the_ring_buffer_overflows() {
    let (pair, _sink) = Pair::with_tbf();
    let netns = pair.a.path();
    let dt = serve(&["--netns", &netns, "--ring-buffer-size", "4096"]);
    let addr = dt.serving();
    let prom = Prometheus::start(addr, None);
    // A consumer that falls behind: stopped while the flood, over 3000 ports (a group
    // and samples each), fills its 4 KiB ring.
    dt.pause();
    pair.flood_through_tbf_to_ports(3000);
    let dropped = qdisc_dropped_once_empty(&pair.a, "veth-a");
    dt.resume();
    assert!(dropped > 1000, "the qdisc dropped only {dropped}");
    let query = format!(
        "sum(droptrace_drops_total{{reason=\"QDISC_DROP\",netns=\"{}\"}})",
        pair.a.name
    );
    let seen = reaches("Prometheus's QDISC_DROP series", dropped, || {
        prom.value(&query) as u64
    });
    assert_eq!(seen, dropped, "the series equal tc's dropped exactly");
    let lost = wait_for("lost events in Prometheus", || {
        let v = prom.value("droptrace_lost_events_total");
        (v > 0.0).then_some(v)
    });
    eprintln!("tc dropped {dropped}; Prometheus {seen}; lost events {lost}");
    promtool_check(&scrape(addr, None).body);
}

fn jsonl_gives_one_object_per_drop() {
    let (pair, _listener) = Pair::with_nft_drop_on_1678();
    let dt = Droptrace::start(&["--format", "jsonl", "--port", "1678"]);
    let packets = pair.nft_dropped_syns(5);
    let out = dt.stop(libc::SIGINT);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).expect("every line is one JSON object"))
        .collect();
    assert_eq!(lines.len() as u64, packets, "one line per drop: {lines:?}");
    for l in &lines {
        assert_eq!(l["reason"], "NETFILTER_DROP", "{l}");
        assert_eq!(l["dport"], 1678, "{l}");
        assert_eq!(l["daddr"], B4, "{l}");
        assert_eq!(l["interface"], "veth-b", "{l}");
        assert_eq!(l["namespace"], pair.b.name.as_str(), "{l}");
    }
}

fn hostile_clients_do_not_stop_the_scraper_or_the_counting() {
    let (pair, _listener) = Pair::with_nft_drop_on_1678();
    let dt = serve(&["--port", "1678"]);
    let addr = dt.serving();
    let quick = Duration::from_secs(10);

    // Nonsense gets a 4xx and the connection's end, never a crash.
    let answer = |req: &[u8]| http::raw(addr, req, quick);
    let status = |req: &[u8]| answer(req).map(|a| a.status);
    assert_eq!(
        status(b"POST /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\n\r\nabc"),
        Some(405)
    );
    assert_eq!(
        status(b"DELETE /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
        Some(405)
    );
    assert_eq!(
        status(b"GET /../../etc/passwd HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
        Some(404)
    );
    assert_eq!(
        status(b"GET /metricsX?a=b HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
        Some(404)
    );
    let junk: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
    assert!(
        status(&junk).is_none_or(|s| (400..500).contains(&s)),
        "{:?}",
        answer(&junk)
    );
    let mut huge = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 1 << 20));
    huge.extend(b"\r\n\r\n");
    assert!(
        status(&huge).is_none_or(|s| (400..500).contains(&s)),
        "an oversized head is refused"
    );
    // A body the server never asked for does not stop it answering.
    assert_eq!(
        status(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000000\r\nConnection: close\r\n\r\n"),
        Some(200)
    );

    // Hundreds of clients that send half a request and wait, more than it serves at once.
    let mut idle: Vec<TcpStream> = (0..300)
        .filter_map(|_| {
            let mut s = TcpStream::connect_timeout(&addr, quick).ok()?;
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                .ok()?;
            Some(s)
        })
        .collect();
    assert!(
        idle.len() >= 250,
        "only {} slow clients connected",
        idle.len()
    );
    // Hundreds of scrapes at once, and drops counted meanwhile.
    let scrapers: Vec<_> = (0..200)
        .map(|_| std::thread::spawn(move || http::get(addr, "/metrics", &[]).map(|a| a.status)))
        .collect();
    pair.nft_dropped_syns(5);
    let statuses: Vec<Option<u16>> = scrapers.into_iter().map(|t| t.join().unwrap()).collect();
    let ok = statuses.iter().filter(|s| **s == Some(200)).count();
    assert_eq!(ok, statuses.len(), "every scrape is answered: {statuses:?}");
    // How long scrapes take under a flood: `cargo xtask bench-serve`.
    // The well-behaved scraper sees the exact count.
    let packets = nft_rule_packets(&pair.b, "dt", "dt1678");
    let series = |body: &str| {
        body.lines()
            .filter(|l| l.starts_with("droptrace_drops_total{reason=\"NETFILTER_DROP\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum::<u64>()
    };
    reaches("the NETFILTER_DROP series", packets, || {
        series(&scrape(addr, None).body)
    });
    assert_eq!(series(&scrape(addr, None).body), packets);
    // Its memory stays bounded after all that.
    let status = std::fs::read_to_string(format!("/proc/{}/status", dt.pid())).unwrap();
    let rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    eprintln!("droptrace serve RSS after the abuse: {rss_kib} KiB");
    assert!(rss_kib < 256 * 1024, "RSS {rss_kib} KiB");
    for s in &mut idle {
        let _ = s.write_all(b"\r\n");
    }
    drop(idle);
    let out = dt.stop(libc::SIGTERM);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn serve_refuses_a_taken_address_and_bad_labels() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(droptrace_bin())
        .args(["serve", "--listen", &addr])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("listening on {addr}")) && stderr.contains("in use"),
        "{stderr}"
    );
    let out = Command::new(droptrace_bin())
        .args(["serve", "--labels", "+pid"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unknown label `pid`"), "{stderr}");
}

fn the_alert_rules_pass_promtool() {
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(repo(RULES))
        .output()
        .expect("promtool (apt-get install prometheus)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

droptrace_tests::root_tests!(
    prometheus_sees_exactly_the_nft_rule_counter,
    prometheus_stays_exact_when_the_ring_buffer_overflows,
    jsonl_gives_one_object_per_drop,
    hostile_clients_do_not_stop_the_scraper_or_the_counting,
    serve_refuses_a_taken_address_and_bad_labels,
    the_alert_rules_pass_promtool,
);
