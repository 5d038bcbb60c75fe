//! What drops do to TCP, in namespaces made here: retransmits counted and matched with
//! the drops that caused them, resets sent and received, against the kernel's counters.
use std::{
    io::{Read, Write},
    net::{Shutdown, TcpListener, TcpStream},
    time::Duration,
};

use droptrace_tests::*;
use serde_json::Value;

/// Bytes sent through the tbf: at 1 mbit about half a second, far more than its 8 KiB
/// queue holds at once.
const TRANSFER: usize = 96 * 1024;

/// Retransmitted segments in `ns` by the kernel's counters, as droptrace can see them:
/// TcpRetransSegs counts those that did not go out too (TCPRetransFail), and the
/// tracepoint has them only where it carries their error (`err`: 6.18 does).
struct Retransmits {
    segs: u64,
    failed: u64,
}

impl Retransmits {
    fn read(ns: &Netns) -> Retransmits {
        Retransmits {
            segs: ns.snmp("Tcp", "RetransSegs"),
            failed: ns.netstat("TcpExt", "TCPRetransFail"),
        }
    }

    /// What droptrace should count since `before`.
    fn since(ns: &Netns, before: &Retransmits) -> u64 {
        let now = Retransmits::read(ns);
        let failed_traced =
            std::fs::read_to_string("/sys/kernel/tracing/events/tcp/tcp_retransmit_skb/format")
                .is_ok_and(|f| f.contains(" err;"));
        let (segs, failed) = (now.segs - before.segs, now.failed - before.failed);
        eprintln!("TcpRetransSegs +{segs}, TCPRetransFail +{failed}");
        if failed_traced {
            segs
        } else {
            eprintln!(
                "this kernel traces only the retransmits that went out: compared with \
                 TcpRetransSegs - TCPRetransFail"
            );
            segs - failed
        }
    }
}

fn tcp_flows(summary: &Value) -> &[Value] {
    summary["tcp"]["flows"]
        .as_array()
        .unwrap_or_else(|| panic!("no tcp.flows in {summary:#}"))
}

/// Sends `TRANSFER` bytes from `from` to a listener on `to_addr` in `to` and waits
/// (bounded) until the receiver has read them all and both ends have closed.
fn transfer(from: &Netns, to: &Netns, to_addr: &str, port: u16) {
    let listener =
        to.run(|| TcpListener::bind(format!("0.0.0.0:{port}")).expect("bind the receiver"));
    let receiver = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        conn.set_read_timeout(Some(Duration::from_secs(60)))
            .expect("read timeout");
        let mut got = Vec::new();
        conn.read_to_end(&mut got).expect("read the transfer");
        got.len()
    });
    from.run(|| {
        let to = format!("{to_addr}:{port}").parse().expect("address");
        let mut conn = TcpStream::connect_timeout(&to, Duration::from_secs(10)).expect("connect");
        conn.set_write_timeout(Some(Duration::from_secs(60)))
            .expect("write timeout");
        conn.write_all(&vec![7u8; TRANSFER])
            .expect("send the transfer");
        conn.shutdown(Shutdown::Write).expect("shutdown");
        // The receiver closes once it has read everything; then nothing is in flight.
        let mut rest = Vec::new();
        conn.set_read_timeout(Some(Duration::from_secs(60)))
            .expect("read timeout");
        let _ = conn.read_to_end(&mut rest);
    });
    assert_eq!(receiver.join().expect("receiver"), TRANSFER);
}

/// droptrace's count (`counted`) against the kernel's (`kernel`): equal, unless the kernel
/// skipped runs of the TCP program (`missed`: a retransmit in a softirq on a CPU where the
/// program was already running), each at least one segment that no figure has.
fn assert_counted(counted: &Value, missed: u64, kernel: u64, context: &Value) {
    let counted = counted.as_u64().expect("a count");
    if missed == 0 {
        assert_eq!(counted, kernel, "{context:#}");
    } else {
        assert!(
            counted < kernel && counted + missed <= kernel,
            "{counted} counted and {missed} runs missed, of {kernel}: {context:#}"
        );
    }
}

fn missed(tcp: &Value) -> u64 {
    tcp["missed"].as_u64().expect("missed")
}

/// Transfers from `a` to `b` through `a`'s tbf (ports from `port` on) until one made
/// retransmits (at most 5): under emulation, with several watchers starting, a sender can
/// be too slow to fill the queue. Returns the retransmits droptrace should count.
fn transfer_with_retransmits(pair: &Pair, port: u16) -> u64 {
    for i in 0..5 {
        let before = Retransmits::read(&pair.a);
        transfer(&pair.a, &pair.b, B4, port + i);
        let retrans = Retransmits::since(&pair.a, &before);
        if retrans > 0 {
            return retrans;
        }
        eprintln!("transfer {i} made no retransmits: again");
    }
    panic!("5 transfers through the tbf made no retransmits");
}

fn tcp_retransmits_after_tbf_drops_are_explained_by_the_qdisc_drops() {
    let (pair, _udp) = Pair::with_tbf();
    let before = Retransmits::read(&pair.a);
    let dt = Droptrace::start(&["--netns", &pair.a.path(), "--format", "json"]);
    transfer(&pair.a, &pair.b, B4, 5210);
    let retrans = Retransmits::since(&pair.a, &before);
    let summary = dt.stop_json();
    eprintln!("RetransSegs +{retrans}; droptrace: {:#}", summary["tcp"]);
    assert!(retrans > 0, "the tbf made no retransmits: {summary:#}");
    let tcp = &summary["tcp"];
    assert_counted(&tcp["retransmits"], missed(tcp), retrans, tcp);
    assert_eq!(tcp["lost_events"], 0, "{tcp:#}");
    let flows = tcp_flows(&summary);
    assert_eq!(flows.len(), 1, "{tcp:#}");
    let flow = &flows[0];
    assert_eq!(flow["local"], A4);
    assert_eq!(flow["remote"], B4);
    assert_eq!(flow["retransmits"], tcp["retransmits"], "{tcp:#}");
    // Nothing else loses this connection's segments: every retransmit follows a drop by
    // the tbf on veth-a, seen here.
    assert_eq!(flow["after_drops"], tcp["retransmits"], "{tcp:#}");
    assert_eq!(flow["beyond_host"], 0, "{tcp:#}");
    let causes = flow["explained_by"].as_array().expect("explained_by");
    assert!(!causes.is_empty(), "{tcp:#}");
    for cause in causes {
        assert_eq!(cause["reason"], "QDISC_DROP", "{tcp:#}");
        assert_eq!(cause["interface"], "veth-a", "{tcp:#}");
    }
    // The explaining group is one of the drop groups droptrace counted.
    let qdisc = groups(&summary, |g| {
        g["reason"] == "QDISC_DROP" && g["interface"] == "veth-a"
    });
    assert!(!qdisc.is_empty(), "{summary:#}");
}

/// SYNs from `a` (`a_addr`) to a closed port on `b` (`b_addr`): b sends a reset for each,
/// a's sockets receive them.
fn resets_for_syns_to_a_closed_port(a_addr: &str, b_addr: &str, port: u16) {
    let pair = Pair::new();
    let rsts_before = pair.b.snmp("Tcp", "OutRsts");
    let port_arg = port.to_string();
    let dt = Droptrace::start(&["--port", &port_arg, "--format", "json"]);
    let to = if b_addr.contains(':') {
        format!("[{b_addr}]:{port}")
    } else {
        format!("{b_addr}:{port}")
    };
    let refused = connect_attempts(&pair.a, to.parse().unwrap(), 3);
    assert_eq!(refused.refused, 3, "{refused:?}");
    let rsts = pair.b.snmp("Tcp", "OutRsts") - rsts_before;
    let summary = dt.stop_json();
    let tcp = &summary["tcp"];
    eprintln!("OutRsts in b +{rsts}; droptrace: {tcp:#}");
    assert_eq!(rsts, 3);
    let flows = tcp_flows(&summary);
    // a's sockets received them (a group each: a client's ephemeral ports differ).
    let received: u64 = flows
        .iter()
        .filter(|f| f["local"] == a_addr && f["remote"] == b_addr)
        .map(|f| f["resets_received"].as_u64().unwrap())
        .sum();
    assert_eq!(received, 3, "{tcp:#}");
    assert_eq!(tcp["resets_received"], 3, "{tcp:#}");
    if tcp["reset_reasons"] != true {
        eprintln!(
            "reset reasons and the resets of segments to closed ports not checked: this kernel \
             traces neither (Linux 6.10 added them)"
        );
        return;
    }
    let sent: Vec<&Value> = flows
        .iter()
        .filter(|f| f["local"] == b_addr && f["local_port"] == port && f["remote"] == a_addr)
        .collect();
    assert_eq!(sent.len(), 1, "{tcp:#}");
    assert_eq!(
        sent[0]["resets_sent"],
        serde_json::json!([{"reason": "NO_SOCKET", "reason_code": sent[0]["resets_sent"][0]["reason_code"], "count": 3}]),
        "{tcp:#}"
    );
    assert_eq!(tcp["resets_sent"], 3, "{tcp:#}");
}

droptrace_tests::cases! { resets_for_syns_to_a_closed_port:
    tcp_a_syn_to_a_closed_port_gets_a_reset_sent_with_its_reason_and_received => (A4, B4, 5211),
    tcp_ipv6_syn_to_a_closed_port_gets_a_reset_sent_with_its_reason_and_received => (A6, B6, 5214),
}

/// a -- r -- b, r routing between its two veths and dropping on the way to b (a tbf);
/// droptrace watches a only.
fn tcp_retransmits_after_loss_in_an_unwatched_router_are_beyond_this_host() {
    let (a, r, b) = (Netns::new("ta"), Netns::new("tr"), Netns::new("tb"));
    for (x, xdev, y, ydev) in [
        (&a, "veth-ar", &r, "veth-ra"),
        (&r, "veth-rb", &b, "veth-br"),
    ] {
        sh(&[
            "ip", "link", "add", xdev, "netns", &x.name, "type", "veth", "peer", "name", ydev,
            "netns", &y.name,
        ]);
    }
    for (ns, dev, addr) in [
        (&a, "veth-ar", "10.78.1.1/24"),
        (&r, "veth-ra", "10.78.1.2/24"),
        (&r, "veth-rb", "10.78.2.2/24"),
        (&b, "veth-br", "10.78.2.1/24"),
    ] {
        ns.exec(&["ip", "addr", "add", addr, "dev", dev]);
        ns.exec(&["ip", "link", "set", dev, "up"]);
    }
    a.exec(&["ip", "route", "add", "default", "via", "10.78.1.2"]);
    b.exec(&["ip", "route", "add", "default", "via", "10.78.2.2"]);
    r.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    r.exec(&[
        "tc", "qdisc", "add", "dev", "veth-rb", "root", "tbf", "rate", "1mbit", "burst", "4kb",
        "limit", "8kb",
    ]);
    // The path works end to end before the watch starts (ARP on both links).
    let probe = b.run(|| TcpListener::bind("0.0.0.0:5213").expect("bind the probe"));
    a.run(|| {
        let to = "10.78.2.1:5213".parse().expect("address");
        wait_for("a connection from a to b through r", || {
            TcpStream::connect_timeout(&to, Duration::from_secs(1))
                .ok()
                .map(|_| ())
        });
    });
    drop(probe);
    let before = Retransmits::read(&a);
    let dt = Droptrace::start(&["--netns", &a.path(), "--format", "json"]);
    transfer(&a, &b, "10.78.2.1", 5212);
    let retrans = Retransmits::since(&a, &before);
    let summary = dt.stop_json();
    let tcp = &summary["tcp"];
    eprintln!("RetransSegs in a +{retrans}; droptrace: {tcp:#}");
    assert!(retrans > 0, "the router's tbf made no retransmits: {tcp:#}");
    assert_counted(&tcp["retransmits"], missed(tcp), retrans, tcp);
    assert_eq!(tcp["beyond_host"], tcp["retransmits"], "{tcp:#}");
    assert_eq!(tcp["after_drops"], 0, "{tcp:#}");
    let flows = tcp_flows(&summary);
    assert_eq!(flows.len(), 1, "{tcp:#}");
    assert_eq!(flows[0]["remote"], "10.78.2.1");
    assert_eq!(flows[0]["explained_by"], serde_json::json!([]), "{tcp:#}");
}

/// A tbf transfer recorded, watched live as JSON and as JSON Lines at the same time: the
/// recording's report has the live `tcp` section, and the lines one retransmit each,
/// explained by the qdisc's drops.
fn tcp_a_recorded_transfer_reports_the_live_figures_and_jsonl_has_each_retransmit() {
    let dir = TempDir::new("tcp-record");
    let file = dir.file("tcp.dtr");
    let file_arg = file.to_str().unwrap();
    let (pair, _udp) = Pair::with_tbf();
    let netns = pair.a.path();
    let recorder = Droptrace::record(file_arg, &["--netns", &netns]);
    let live = Droptrace::start(&["--netns", &netns, "--format", "json"]);
    let lines = Droptrace::start(&["--netns", &netns, "--format", "jsonl"]);
    let retrans = transfer_with_retransmits(&pair, 5215);
    let recorded = recorder.stop(libc::SIGINT);
    assert!(
        recorded.status.success(),
        "{}",
        String::from_utf8_lossy(&recorded.stderr)
    );
    let live = live.stop_json();
    let lines = lines.stop(libc::SIGINT);
    assert!(
        lines.status.success(),
        "{}",
        String::from_utf8_lossy(&lines.stderr)
    );

    let out = std::process::Command::new(droptrace_bin())
        .args(["report", file_arg, "--format", "json"])
        .output()
        .expect("run droptrace report");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("report JSON");
    eprintln!(
        "RetransSegs +{retrans}; live {:#}; report {:#}",
        live["tcp"], report["tcp"]
    );
    let live_tcp = &live["tcp"];
    assert_counted(
        &live_tcp["retransmits"],
        missed(live_tcp),
        retrans,
        live_tcp,
    );
    let counted = live_tcp["retransmits"].as_u64().unwrap();
    assert_eq!(live["tcp"]["lost_events"], 0, "{:#}", live["tcp"]);
    assert_eq!(
        report["tcp"], live["tcp"],
        "the report's tcp section is the live one"
    );

    // The text report says the same in words.
    let text = std::process::Command::new(droptrace_bin())
        .args(["report", file_arg])
        .output()
        .expect("run droptrace report");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&format!("tcp: {counted} segments retransmitted ({counted} after a drop seen here, 0 after none)")),
        "{text}"
    );

    // JSON Lines: one line per retransmit, each after a QDISC_DROP on veth-a.
    let stdout = String::from_utf8_lossy(&lines.stdout);
    let all: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("a JSON line"))
        .collect();
    let retransmits: Vec<&Value> = all
        .iter()
        .filter(|l| l["type"] == "tcp_retransmit")
        .collect();
    let segments: u64 = retransmits
        .iter()
        .map(|l| l["segments"].as_u64().expect("segments"))
        .sum();
    // The last line says what the lines lack, if anything.
    let lines_missed = all
        .iter()
        .find(|l| l["type"] == "summary")
        .map_or(0, |l| l["tcp_missed"].as_u64().expect("tcp_missed"));
    assert_counted(&segments.into(), lines_missed, retrans, &Value::Null);
    for line in &retransmits {
        assert_eq!(line["local"], A4, "{line:#}");
        assert_eq!(line["remote"], B4, "{line:#}");
        assert_eq!(line["explained"], "drop_on_host", "{line:#}");
        assert_eq!(line["drop"]["reason"], "QDISC_DROP", "{line:#}");
        assert_eq!(line["drop"]["interface"], "veth-a", "{line:#}");
    }
}

/// `--no-tcp`: no TCP program is loaded, the drops are counted as ever, and the `tcp`
/// section says TCP was not traced instead of zeros.
fn tcp_no_tcp_loads_no_tcp_program_and_says_tcp_was_not_traced() {
    let pair = Pair::new();
    let dt = Droptrace::start(&["--no-tcp", "--port", "5216", "--format", "json"]);
    let tcp_programs: Vec<Value> = {
        let json = sh(&["bpftool", "-j", "prog", "show"]);
        let all: Value = serde_json::from_str(&json).expect("bpftool json");
        all.as_array()
            .expect("program list")
            .iter()
            .filter(|p| {
                p["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("droptrace_tcp"))
            })
            .cloned()
            .collect()
    };
    let refused = connect_attempts(&pair.a, format!("{B4}:5216").parse().unwrap(), 2);
    assert_eq!(refused.refused, 2, "{refused:?}");
    let summary = dt.stop_json();
    assert_eq!(tcp_programs, Vec::<Value>::new(), "TCP programs loaded");
    assert_eq!(
        summary["tcp"],
        serde_json::json!({"off": true}),
        "{summary:#}"
    );
    let no_socket = groups(&summary, |g| {
        g["reason"] == "NO_SOCKET" && g["dport"] == 5216
    });
    assert_eq!(count_of(&no_socket), 2, "{summary:#}");
}

/// The number right before `after` in `text` (`1,234 retransmits`).
fn number_before(text: &str, after: &str) -> Option<u64> {
    let head = &text[..text.find(after)?];
    let digits: String = head
        .trim_end()
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    digits.parse().ok()
}

/// The live view in a tmux pane: a tbf transfer's retransmits in the header with the
/// kernel's count, `t` shows the connection with them all after drops here, `Enter` the
/// qdisc's drop group that explains them, and `Enter` again that group's drill-down.
fn tcp_live_view_shows_a_connection_and_drills_down_to_the_drops_that_explain_it() {
    let (pair, _udp) = Pair::with_tbf();
    let tmux = droptrace_tests::tmux::Tmux::droptrace(
        120,
        40,
        &format!("--netns {} --interval 0.2", pair.a.path()),
    );
    tmux.wait_for_live_view();
    let retrans = transfer_with_retransmits(&pair, 5217);
    // The header's count: the kernel's, or short of it by no more than the runs the
    // kernel skipped, which the header then says.
    let figures = |p: &str| -> Option<(u64, u64)> {
        let counted = number_before(p, " retransmits (")?;
        let missed = number_before(p, " TCP events missed").unwrap_or(0);
        let after = format!("tcp: {counted} retransmits ({counted} after drops here, 0 beyond)");
        p.contains(&after).then_some((counted, missed))
    };
    let pane = tmux.wait_for("the header's TCP figures with the kernel's count", |p| {
        figures(p).is_some_and(|(n, m)| {
            if m == 0 {
                n == retrans
            } else {
                n < retrans && n + m <= retrans
            }
        })
    });
    let (retrans, _) = figures(&pane).expect("the header's figures");
    tmux.send(&["t"]);
    let view = tmux.wait_for("the connection's row", |p| {
        p.contains("Retrans") && p.contains(&format!("{A4}:"))
    });
    eprintln!("{view}");
    let row = view
        .lines()
        .find(|l| l.contains(&format!("{A4}:")) && l.contains(B4))
        .unwrap_or_else(|| panic!("no row of the connection in:\n{view}"));
    let figures: Vec<&str> = row.split_whitespace().rev().take(5).collect();
    let r = retrans.to_string();
    // RST in, RST out, Beyond, By drop, Retrans (read from the right).
    assert_eq!(figures, ["0", "0", "0", r.as_str(), r.as_str()], "{row}");
    tmux.send(&["Enter"]);
    let detail = tmux.wait_for("the drops that explain the retransmits", |p| {
        p.contains("Drops seen here that explain its retransmits")
    });
    eprintln!("{detail}");
    assert_eq!(
        // The site is the kernel's own (__dev_queue_xmit on 6.18, kfree_skb_list_reason
        // on 6.1).
        number_before(&detail, "retransmits after QDISC_DROP at "),
        Some(retrans),
        "{detail}"
    );
    assert!(detail.contains("on veth-a"), "{detail}");
    tmux.send(&["Enter"]);
    // Its latest packets: segments of the transfer, to the receiver's port.
    tmux.wait_for("the qdisc drop group's drill-down with its packets", |p| {
        p.contains("Latest packets")
            && p.contains("QDISC_DROP")
            && p.contains(&format!("> {B4}:52"))
    });
    tmux.send(&["Escape"]);
    tmux.wait_for("the drill-down to close", |p| !p.contains("Latest packets"));
    tmux.send(&["q"]);
    let after = tmux.wait_for("the closing table and the prompt", |p| {
        p.contains("drops matched") && p.trim_end().ends_with("dt-prompt$")
    });
    assert!(after.contains("QDISC_DROP"), "{after}");
    wait_unloaded("`q`", &droptrace_programs());
}

droptrace_tests::root_tests!(
    tcp_retransmits_after_tbf_drops_are_explained_by_the_qdisc_drops,
    tcp_a_syn_to_a_closed_port_gets_a_reset_sent_with_its_reason_and_received,
    tcp_ipv6_syn_to_a_closed_port_gets_a_reset_sent_with_its_reason_and_received,
    tcp_retransmits_after_loss_in_an_unwatched_router_are_beyond_this_host,
    tcp_a_recorded_transfer_reports_the_live_figures_and_jsonl_has_each_retransmit,
    tcp_no_tcp_loads_no_tcp_program_and_says_tcp_was_not_traced,
    tcp_live_view_shows_a_connection_and_drills_down_to_the_drops_that_explain_it,
);
