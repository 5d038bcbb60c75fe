//! `droptrace diagnose` on causes reproduced in namespaces made here: the top finding must
//! name the cause and carry the evidence from the live system.
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};

use droptrace_tests::*;
use serde_json::Value;

/// Packets delivered to a transport protocol in `ns` (IPv4): counted once the protocol's
/// receive function has returned, whether it queued the datagram, found no socket for it,
/// or dropped it for a full buffer.
fn ip_delivered(ns: &Netns) -> u64 {
    ns.snmp("Ip", "InDelivers")
}

fn udp_burst(ns: &Netns, to: SocketAddr, n: usize, size: usize) {
    ns.run(|| {
        let sock = UdpSocket::bind(if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }).unwrap();
        let payload = vec![7u8; size];
        for _ in 0..n {
            let _ = sock.send_to(&payload, to);
        }
    });
}

fn nftables_rule_dropping_a_port_is_named_with_its_handle() {
    for (addr, family) in [(B4, "ipv4"), (B6, "ipv6")] {
        let pair = Pair::new();
        pair.b.exec(&["nft", "add table inet filter"]);
        pair.b.exec(&[
            "nft",
            "add chain inet filter input { type filter hook input priority 0; policy accept; }",
        ]);
        pair.b.exec(&[
            "nft",
            "add rule inet filter input tcp dport 1678 counter drop",
        ]);
        let _server = pair.b.run(|| TcpListener::bind("[::]:1678").unwrap());
        let to: SocketAddr = if family == "ipv4" {
            format!("{addr}:1678")
        } else {
            format!("[{addr}]:1678")
        }
        .parse()
        .unwrap();
        let netns = pair.b.path();
        let report = diagnose(&["--netns", &netns], || {
            let dropped = dropped_syns(&pair.a, to, 6, "the nft rule counter", || {
                nft_rule_packets_any(&pair.b)
            });
            assert_eq!(dropped, 6);
        });
        let packets = nft_rule_packets_any(&pair.b);
        let f = top(&report);
        assert_eq!(f["cause"], "netfilter_rule", "{family}: {report:#}");
        assert_eq!(
            f["drops"], packets,
            "{family}: drops equal the rule's counter"
        );
        assert_mentions(
            f,
            &[
                "tcp dport 1678",
                "handle",
                "nft delete rule inet filter input handle",
                "+6",
            ],
        );
    }
}

/// The packet counter of the only counted rule in `inet filter input`.
fn nft_rule_packets_any(ns: &Netns) -> u64 {
    let json = ns.exec(&["nft", "-j", "list", "chain", "inet", "filter", "input"]);
    let v: Value = serde_json::from_str(&json).unwrap();
    v["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["rule"]["expr"].as_array())
        .flatten()
        .find_map(|e| e["counter"]["packets"].as_u64())
        .expect("a counter")
}

/// Packets the (only) DROP rule in `tool`'s INPUT chain in `ns` has matched.
fn iptables_rule_packets(ns: &Netns, tool: &str) -> u64 {
    let table = ns.exec(&[tool, "-L", "INPUT", "-v", "-x", "-n"]);
    table
        .lines()
        .find_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            (words.get(2) == Some(&"DROP")).then(|| words[0].parse().expect("packet count"))
        })
        .unwrap_or_else(|| panic!("no DROP rule in {tool}'s INPUT chain:\n{table}"))
}

fn iptables_statistic_random_drops_are_found() {
    for tool in ["iptables-nft", "iptables-legacy"] {
        let pair = Pair::new();
        pair.b.exec(&[
            tool,
            "-A",
            "INPUT",
            "-p",
            "udp",
            "--dport",
            "6000",
            "-m",
            "statistic",
            "--mode",
            "random",
            "--probability",
            "0.3",
            "-j",
            "DROP",
        ]);
        let _sink = pair.b.run(|| UdpSocket::bind("0.0.0.0:6000").unwrap());
        let netns = pair.b.path();
        let delivered = ip_delivered(&pair.b);
        let report = diagnose(&["--netns", &netns], || {
            udp_burst(&pair.a, format!("{B4}:6000").parse().unwrap(), 300, 100);
            // Every datagram either hit the rule or reached UDP.
            reaches("datagrams dropped by the rule or delivered", 300, || {
                iptables_rule_packets(&pair.b, tool) + ip_delivered(&pair.b) - delivered
            });
        });
        let f = top(&report);
        assert_eq!(f["cause"], "netfilter_rule", "{tool}: {report:#}");
        let drops = f["drops"].as_u64().unwrap();
        assert!(
            (30..=170).contains(&drops),
            "{tool}: about 30% of 300 dropped, got {drops}"
        );
        assert_mentions(
            f,
            &[
                "statistic",
                "probability 0.30",
                "--dport 6000",
                &format!("+{drops}"),
            ],
        );
        assert!(
            f["fix"]
                .as_str()
                .unwrap()
                .contains(&format!("{tool} -t filter -D INPUT")),
            "{f:#}"
        );
    }
}

fn a_tbf_qdisc_dropping_is_found_with_its_statistics() {
    let (pair, _sink) = Pair::with_tbf();
    let netns = pair.a.path();
    let report = diagnose(&["--netns", &netns], || {
        udp_burst(&pair.a, format!("{B4}:5001").parse().unwrap(), 5000, 1000);
        qdisc_dropped_once_empty(&pair.a, "veth-a");
    });
    let dropped = qdisc_dropped(&pair.a, "veth-a");
    let f = top(&report);
    assert_eq!(f["cause"], "qdisc", "{report:#}");
    assert_eq!(f["drops"], dropped, "drops equal tc's dropped");
    assert_eq!(f["iface"], "veth-a");
    assert_mentions(
        f,
        &[
            "tbf",
            "veth-a",
            &format!("dropped +{dropped}"),
            "tc qdisc",
            // In tc's own units, as `tc qdisc show` prints them (tc turns the limit
            // into a latency).
            "rate 1Mbit burst 4Kb lat ",
        ],
    );
    // The fix is a command that runs as given, in the namespace, with larger values.
    let fix = f["fix"].as_str().expect("fix");
    let command = fix
        .split_once(": ")
        .and_then(|(_, c)| c.split(';').next())
        .unwrap_or_else(|| panic!("no command in {fix}"));
    assert!(command.contains("tc qdisc change dev veth-a root"), "{fix}");
    sh(&["sh", "-c", command]);
    let shown = pair.a.exec(&["tc", "qdisc", "show", "dev", "veth-a"]);
    assert!(
        shown.contains("rate 2Mbit burst 8Kb lat "),
        "after `{command}`: {shown}"
    );
}

fn a_too_small_mtu_on_the_receiving_side_is_named() {
    let pair = Pair::new();
    pair.b
        .exec(&["ip", "link", "set", "dev", "veth-b", "mtu", "100"]);
    // No --netns: the drop happens on the sender's side, the MTU is the receiver's.
    let tx_dropped = || pair.a.link_stat("veth-a", "tx", "dropped");
    let before = tx_dropped();
    let report = diagnose(&["--addr", B4, "--proto", "udp"], || {
        udp_burst(&pair.a, format!("{B4}:7777").parse().unwrap(), 20, 500);
        reaches("veth-a's tx dropped", before + 20, tx_dropped);
    });
    let f = top(&report);
    assert_eq!(f["cause"], "mtu", "{report:#}");
    assert_eq!(f["drops"], 20);
    assert_mentions(f, &["veth-b", "has MTU 100", "mtu 1500", &pair.b.name]);
}

fn a_tc_bpf_program_dropping_syns_is_named_with_its_id() {
    let pair = Pair::with_tc_drop_syn();
    let _server = pair.b.run(|| TcpListener::bind("0.0.0.0:8080").unwrap());
    let filters = pair
        .b
        .exec(&["tc", "-j", "filter", "show", "dev", "veth-b", "ingress"]);
    let id = serde_json::from_str::<Value>(&filters)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .find_map(|f| f["options"]["prog"]["id"].as_u64())
        .expect("program id");
    let netns = pair.b.path();
    let report = diagnose(&["--netns", &netns, "--proto", "tcp"], || {
        let dropped = dropped_syns(
            &pair.a,
            format!("{B4}:8080").parse().unwrap(),
            3,
            "the clsact qdisc's drops",
            || clsact_dropped(&pair.b, "veth-b"),
        );
        assert_eq!(dropped, 3);
    });
    let f = top(&report);
    assert_eq!(f["cause"], "tc_bpf", "{report:#}");
    assert_eq!(f["iface"], "veth-b");
    assert_mentions(f, &["drop_syn", &format!("id {id}"), "ingress", "veth-b"]);
    // The kernel's name, not tc's label; who loaded it; and that nothing holds it.
    assert!(
        f["summary"]
            .as_str()
            .unwrap()
            .contains(&format!("`drop_syn` (id {id})")),
        "{f:#}"
    );
    assert_mentions(
        f,
        &[
            "sched_cls",
            "by uid 0",
            "tc filter drop_syn.bpf.o:[classifier]",
            "no process holds it open and it is not pinned",
        ],
    );
}

/// "A network component" for the tests: `bpf_holder` (tests/src/bin) attaches a program
/// inside a namespace and holds it until dropped.
struct BpfHolder {
    child: std::process::Child,
    prog_id: u64,
}

impl BpfHolder {
    fn start(ns: &Netns, dev: &str, mode: &str, object: &str, program: &str) -> BpfHolder {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_bpf_holder"))
            .args([&ns.path(), dev, mode, object, program])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("starting bpf_holder");
        let mut line = String::new();
        let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let _ = out.read_line(&mut line);
        let Some(prog_id) = line
            .strip_prefix("attached ")
            .and_then(|id| id.trim().parse().ok())
        else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("bpf_holder {mode} did not attach: {line:?}");
        };
        BpfHolder { child, prog_id }
    }

    /// What the kernel shows as its command line.
    fn cmdline(&self) -> String {
        let raw = std::fs::read(format!("/proc/{}/cmdline", self.child.id())).expect("cmdline");
        String::from_utf8_lossy(&raw)
            .split('\0')
            .filter(|a| !a.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl Drop for BpfHolder {
    fn drop(&mut self) {
        // Closing its stdin ends it; the kill is for a holder that does not listen.
        drop(self.child.stdin.take());
        if wait_exit(&mut self.child, WAIT_LIMIT).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The finding must name the program as the kernel knows it and the process holding it.
fn assert_names_holder(f: &Value, holder: &BpfHolder, hook: &str) {
    let id = holder.prog_id;
    assert_eq!(f["iface"], "veth-b", "{f:#}");
    let summary = f["summary"].as_str().unwrap();
    for needle in [
        format!("(id {id}) attached at {hook} on veth-b"),
        format!("by pid {}", holder.child.id()),
        holder.cmdline(),
    ] {
        assert!(summary.contains(&needle), "`{needle}` not in {summary}");
    }
    assert_mentions(
        f,
        &[
            "by uid 0",
            &format!("pid {} (bpf_holder)", holder.child.id()),
        ],
    );
}

fn a_tcx_program_is_named_with_the_process_holding_it() {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut version = release
        .trim()
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (version.next().unwrap_or(0), version.next().unwrap_or(0));
    if (major, minor) < (6, 6) {
        skip(format!(
            "tcx needs Linux 6.6 or later (this is {})",
            release.trim()
        ));
    }
    let object = DROP_SYN;
    let pair = Pair::new();
    let holder = BpfHolder::start(&pair.b, "veth-b", "tcx-ingress", object, "drop_syn");
    let _server = pair.b.run(|| TcpListener::bind("0.0.0.0:8080").unwrap());
    // tcx counts nothing it drops: a UDP marker (which drop_syn lets through), sent last
    // from the same CPU, is received only after every SYN before it was processed.
    let marker = pair.b.run(|| UdpSocket::bind("0.0.0.0:6002").unwrap());
    marker.set_read_timeout(Some(WAIT_LIMIT)).unwrap();
    let netns = pair.b.path();
    let report = diagnose(&["--netns", &netns, "--proto", "tcp"], || {
        let attempts = pair.a.run(|| {
            pin_to_this_cpu();
            let to = format!("{B4}:8080").parse().unwrap();
            let unanswered = (0..3)
                .filter(|_| {
                    TcpStream::connect_timeout(&to, ATTEMPT_TIMEOUT)
                        .is_err_and(|e| e.kind() == std::io::ErrorKind::TimedOut)
                })
                .count();
            let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
            sock.send_to(b"marker", format!("{B4}:6002")).unwrap();
            unanswered
        });
        assert_eq!(attempts, 3, "every SYN goes unanswered");
        let mut buf = [0u8; 16];
        let n = marker
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("the marker after the SYNs did not arrive: {e}"));
        assert_eq!(&buf[..n], b"marker");
    });
    let f = top(&report);
    assert_eq!(f["cause"], "tc_bpf", "{report:#}");
    assert_eq!(f["drops"], 3);
    assert_names_holder(f, &holder, "tcx ingress");
    assert_mentions(f, &["`drop_syn`", "tcx link"]);
}

fn a_classic_tc_program_held_by_a_process_or_pinned_is_named_so() {
    let object = DROP_SYN;
    let to = format!("{B4}:8080").parse().unwrap();
    {
        let pair = Pair::new();
        let holder = BpfHolder::start(&pair.b, "veth-b", "tc-ingress", object, "drop_syn");
        let _server = pair.b.run(|| TcpListener::bind("0.0.0.0:8080").unwrap());
        let report = diagnose(&["--netns", &pair.b.path(), "--proto", "tcp"], || {
            dropped_syns(&pair.a, to, 3, "the clsact qdisc's drops", || {
                clsact_dropped(&pair.b, "veth-b")
            });
        });
        let f = top(&report);
        assert_eq!(f["cause"], "tc_bpf", "{report:#}");
        assert_names_holder(f, &holder, "tc ingress");
    }
    // Loaded and pinned by bpftool, attached by tc from the pin: the pin is the answer.
    let pair = Pair::new();
    let pin = format!("/sys/fs/bpf/{}-drop_syn", pair.b.name);
    struct Unpin<'a>(&'a str);
    impl Drop for Unpin<'_> {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(self.0);
        }
    }
    sh(&[
        "bpftool",
        "prog",
        "load",
        object,
        &pin,
        "type",
        "classifier",
    ]);
    let _unpin = Unpin(&pin);
    // nsenter, not `ip netns exec`: that mounts a fresh /sys, without the BPF filesystem.
    let net = format!("--net={}", pair.b.path());
    sh(&[
        "nsenter", &net, "tc", "qdisc", "add", "dev", "veth-b", "clsact",
    ]);
    sh(&[
        "nsenter",
        &net,
        "tc",
        "filter",
        "add",
        "dev",
        "veth-b",
        "ingress",
        "bpf",
        "da",
        "object-pinned",
        &pin,
    ]);
    let _server = pair.b.run(|| TcpListener::bind("0.0.0.0:8080").unwrap());
    let report = diagnose(&["--netns", &pair.b.path(), "--proto", "tcp"], || {
        dropped_syns(&pair.a, to, 3, "the clsact qdisc's drops", || {
            clsact_dropped(&pair.b, "veth-b")
        });
    });
    let f = top(&report);
    assert_eq!(f["cause"], "tc_bpf", "{report:#}");
    assert!(
        f["summary"]
            .as_str()
            .unwrap()
            .contains(&format!("it is pinned at {pin}")),
        "{f:#}"
    );
}

fn a_port_nothing_listens_on_is_no_listener() {
    for (to, proto) in [
        (format!("{B4}:9"), "tcp"),
        (format!("[{B6}]:9"), "tcp"),
        (format!("{B4}:53"), "udp"),
    ] {
        let pair = Pair::new();
        let netns = pair.b.path();
        let to: SocketAddr = to.parse().unwrap();
        let report = diagnose(&["--netns", &netns], || {
            if proto == "tcp" {
                let attempts = connect_attempts(&pair.a, to, 5);
                assert_eq!(attempts.refused, 5, "{to}: {attempts:?}");
            } else {
                udp_burst(&pair.a, to, 5, 10);
                reaches("Udp NoPorts", 5, || pair.b.snmp("Udp", "NoPorts"));
            }
        });
        let f = top(&report);
        assert_eq!(f["cause"], "no_listener", "{to}: {report:#}");
        assert_eq!(f["drops"], 5);
        let counter = if proto == "tcp" { "OutRsts" } else { "NoPorts" };
        assert_mentions(
            f,
            &[
                &format!("no {proto} socket listens on port {}", to.port()),
                counter,
                "+5",
            ],
        );
        if proto == "tcp" {
            assert_eq!(f["benign"], false, "{f:#}");
            assert_mentions(f, &["were connection attempts (SYN)"]);
        }
    }
}

fn reverse_path_filtering_is_named_with_its_sysctls() {
    let pair = Pair::new();
    // B routes 10.99.0.0/24 through another interface, so packets from there arriving on
    // veth-b fail the strict reverse-path check.
    pair.b.exec(&[
        "sysctl",
        "-qw",
        "net.ipv4.conf.all.rp_filter=1",
        "net.ipv4.conf.veth-b.rp_filter=1",
    ]);
    pair.b.exec(&[
        "ip", "link", "add", "side0", "type", "veth", "peer", "name", "side1",
    ]);
    pair.b.exec(&["ip", "link", "set", "side0", "up"]);
    pair.b
        .exec(&["ip", "route", "add", "10.99.0.0/24", "dev", "side0"]);
    // A knows B4 as a permanent neighbour (Pair does that), so no ARP from 10.99.0.1 is
    // needed, which B would not answer.
    pair.a
        .exec(&["ip", "addr", "add", "10.99.0.1/32", "dev", "veth-a"]);
    let netns = pair.b.path();
    let report = diagnose(&["--netns", &netns, "--proto", "udp"], || {
        pair.a.run(|| {
            let sock = UdpSocket::bind("10.99.0.1:0").unwrap();
            for _ in 0..10 {
                sock.send_to(b"x", format!("{B4}:5300")).unwrap();
            }
        });
        reaches("TcpExt IPReversePathFilter", 10, || {
            pair.b.netstat("TcpExt", "IPReversePathFilter")
        });
    });
    let f = top(&report);
    assert_eq!(f["cause"], "rp_filter", "{report:#}");
    assert_eq!(f["drops"], 10);
    assert_mentions(
        f,
        &[
            "net.ipv4.conf.veth-b.rp_filter = 1",
            "IPReversePathFilter +10",
            "rp_filter=2",
        ],
    );
}

fn a_full_receive_buffer_names_the_socket_and_its_owner() {
    use std::os::fd::AsRawFd;
    let pair = Pair::new();
    let sink = pair.b.run(|| UdpSocket::bind("0.0.0.0:5300").unwrap());
    let one: libc::c_int = 1;
    // SAFETY: setting an int socket option on a socket we own.
    let rc = unsafe {
        libc::setsockopt(
            sink.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&raw const one).cast(),
            4,
        )
    };
    assert_eq!(rc, 0);
    let netns = pair.b.path();
    let delivered = ip_delivered(&pair.b);
    let report = diagnose(&["--netns", &netns, "--proto", "udp"], || {
        udp_burst(&pair.a, format!("{B4}:5300").parse().unwrap(), 50, 200);
        reaches("datagrams delivered to UDP", delivered + 50, || {
            ip_delivered(&pair.b)
        });
    });
    let errors = pair.b.snmp("Udp", "RcvbufErrors");
    let f = top(&report);
    assert_eq!(f["cause"], "socket_rcvbuf", "{report:#}");
    assert_eq!(f["drops"], errors, "drops equal Udp RcvbufErrors");
    let pid = std::process::id().to_string();
    assert!(!evidence(f).contains("not read"), "{f:#}");
    assert_mentions(
        f,
        &[
            "udp 0.0.0.0:5300",
            &pid,
            &format!("RcvbufErrors +{errors}"),
            "net.core.rmem_max = ",
        ],
    );
    // Whether the namespace has its own rmem_max depends on the kernel: absent inside a
    // child namespace on 6.1, read-only there (the global value) on 6.12 and 6.18. The
    // finding must cite and set the global one in the host namespace then.
    let own_copy = pair.b.run(|| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata("/proc/sys/net/core/rmem_max")
            .is_ok_and(|m| m.permissions().mode() & 0o200 != 0)
    });
    let host_value = std::fs::read_to_string("/proc/sys/net/core/rmem_max").unwrap();
    let fix = f["fix"].as_str().unwrap();
    if own_copy {
        assert!(
            fix.contains(&format!(
                "ip netns exec {} sysctl -w net.core.rmem_max=",
                pair.b.name
            )),
            "{f:#}"
        );
    } else {
        assert!(
            fix.contains("sysctl -w net.core.rmem_max=8388608 in the host namespace")
                && !fix.contains("ip netns exec"),
            "{f:#}"
        );
        assert_mentions(
            f,
            &[&format!(
                "net.core.rmem_max = {} (global: ",
                host_value.trim()
            )],
        );
    }
}

fn an_accept_queue_overflow_is_found_from_the_counters() {
    use std::os::fd::AsRawFd;
    let pair = Pair::new();
    let listener = pair.b.run(|| TcpListener::bind("0.0.0.0:8081").unwrap());
    // SAFETY: listen() again on our own socket only changes its backlog.
    assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 1) }, 0);
    let netns = pair.b.path();
    let overflows = || pair.b.netstat("TcpExt", "ListenOverflows");
    let before = overflows();
    let report = diagnose(&["--netns", &netns], || {
        pair.a.run(|| {
            let to: SocketAddr = format!("{B4}:8081").parse().unwrap();
            let mut clients = Vec::new();
            let mut unanswered = 0;
            for _ in 0..8 {
                match TcpStream::connect_timeout(&to, ATTEMPT_TIMEOUT) {
                    Ok(client) => clients.push(client),
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => unanswered += 1,
                    Err(e) => panic!("connecting to the full listener: {e}"),
                }
            }
            assert!(unanswered > 0, "a backlog of 1 took all 8 connections");
            // Keep them open until the listener has counted every SYN it dropped.
            reaches("TcpExt ListenOverflows", before + unanswered, overflows);
            drop(clients);
        })
    });
    let f = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["cause"] == "listen_overflow");
    let f = f.unwrap_or_else(|| panic!("no listen_overflow finding: {report:#}"));
    assert_mentions(
        f,
        &[
            "ListenOverflows +",
            "port 8081",
            "accept queue full",
            "somaxconn",
        ],
    );
    assert!(f["drops"].as_u64().unwrap() > 0);
}

fn an_xdp_program_dropping_is_named_with_its_mode() {
    let object = DROP_UDP_XDP;
    let pair = Pair::new();
    pair.b.exec(&[
        "ip",
        "link",
        "set",
        "dev",
        "veth-b",
        "xdpgeneric",
        "obj",
        object,
        "sec",
        "xdp",
    ]);
    // XDP counts nothing it drops: a marker datagram to a port it lets through, sent last
    // from the same CPU, is received only after every datagram before it was processed.
    let marker = pair.b.run(|| UdpSocket::bind("0.0.0.0:6002").unwrap());
    marker.set_read_timeout(Some(WAIT_LIMIT)).unwrap();
    let netns = pair.b.path();
    let report = diagnose(&["--netns", &netns, "--proto", "udp"], || {
        pair.a.run(|| {
            pin_to_this_cpu();
            let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
            for _ in 0..10 {
                sock.send_to(&[7u8; 50], format!("{B4}:6001")).unwrap();
            }
            sock.send_to(b"marker", format!("{B4}:6002")).unwrap();
        });
        let mut buf = [0u8; 16];
        let n = marker
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("the marker after the XDP drops did not arrive: {e}"));
        assert_eq!(&buf[..n], b"marker");
    });
    let f = top(&report);
    assert_eq!(f["cause"], "xdp", "{report:#}");
    assert_eq!(f["drops"], 10);
    assert_eq!(f["iface"], "veth-b");
    assert_mentions(f, &["drop_udp_6001", "xdp on veth-b", "xdpgeneric off"]);
    assert_mentions(f, &["xdp, tag", "by uid 0"]);
}

fn an_xdp_program_held_by_a_process_is_named_with_its_command_line() {
    let object = DROP_UDP_XDP;
    let pair = Pair::new();
    let holder = BpfHolder::start(&pair.b, "veth-b", "xdp-skb", object, "drop_udp_6001");
    let marker = pair.b.run(|| UdpSocket::bind("0.0.0.0:6002").unwrap());
    marker.set_read_timeout(Some(WAIT_LIMIT)).unwrap();
    let report = diagnose(&["--netns", &pair.b.path(), "--proto", "udp"], || {
        pair.a.run(|| {
            pin_to_this_cpu();
            let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
            for _ in 0..10 {
                sock.send_to(&[7u8; 50], format!("{B4}:6001")).unwrap();
            }
            sock.send_to(b"marker", format!("{B4}:6002")).unwrap();
        });
        let mut buf = [0u8; 16];
        let n = marker
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("the marker after the XDP drops did not arrive: {e}"));
        assert_eq!(&buf[..n], b"marker");
    });
    let f = top(&report);
    assert_eq!(f["cause"], "xdp", "{report:#}");
    assert_eq!(f["drops"], 10);
    assert_names_holder(f, &holder, "xdp");
    assert_mentions(f, &["xdp link"]);
}

fn a_tc_program_attached_since_the_baseline_is_named_and_ranked_first() {
    use std::os::unix::fs::PermissionsExt;
    let pair = Pair::new();
    let netns = pair.b.path();
    let file = format!("/tmp/{}-baseline.json", pair.b.name);
    struct Remove<'a>(&'a str);
    impl Drop for Remove<'_> {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(self.0);
        }
    }
    let _remove = Remove(&file);
    // A healthy namespace: nothing attached, nothing dropped.
    let saved = diagnose(&["--netns", &netns, "--save-baseline", &file], || {});
    assert!(saved.get("baseline_diff").is_none());
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the baseline is private");
    let base: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(base["version"], 1);
    assert_eq!(base["namespaces"].as_object().unwrap().len(), 1, "{base:#}");

    // Then a component attaches a program that drops SYNs; meanwhile more datagrams than
    // SYNs are dropped at a closed UDP port (nothing new: that port was closed before too).
    pair.attach_tc_drop_syn();
    let _server = pair.b.run(|| TcpListener::bind("0.0.0.0:8080").unwrap());
    let no_ports = pair.b.snmp("Udp", "NoPorts");
    let report = diagnose(&["--netns", &netns, "--baseline", &file], || {
        udp_burst(&pair.a, format!("{B4}:7000").parse().unwrap(), 10, 20);
        reaches("Udp NoPorts", no_ports + 10, || {
            pair.b.snmp("Udp", "NoPorts")
        });
        dropped_syns(
            &pair.a,
            format!("{B4}:8080").parse().unwrap(),
            3,
            "the clsact qdisc's drops",
            || clsact_dropped(&pair.b, "veth-b"),
        );
    });
    let findings = report["findings"].as_array().unwrap();
    let f = &findings[0];
    assert_eq!(f["cause"], "tc_bpf", "new evidence ranks first: {report:#}");
    assert_eq!(f["drops"], 3);
    let udp = findings
        .iter()
        .find(|f| f["cause"] == "no_listener")
        .expect("the closed UDP port");
    assert_eq!(udp["drops"], 10, "more drops, ranked after");
    let id = f["summary"]
        .as_str()
        .unwrap()
        .split("(id ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .unwrap()
        .to_owned();
    // The namespace is matched by its name, whatever else the run learnt about it.
    let sentence = format!(
        "new since the baseline: BPF program drop_syn (id {id}) at tc ingress on veth-b in \
         netns {}",
        pair.b.name
    );
    let diff: Vec<&str> = report["baseline_diff"]
        .as_array()
        .expect("baseline_diff")
        .iter()
        .map(|d| d["sentence"].as_str().unwrap())
        .collect();
    assert!(
        diff.contains(&sentence.as_str()),
        "{sentence} not in {diff:#?}"
    );
    assert!(evidence(f).contains(&sentence), "{f:#}");
}

fn a_baseline_that_cannot_be_read_is_refused_with_a_clear_error() {
    let file = format!("/tmp/dt{}-bad-baseline.json", std::process::id());
    for (content, says) in [
        ("{\"version\": 1, \"droptrace\"", "is not JSON"),
        ("[{\"xdp\":[],\"tc\":[]}]", "is not a droptrace baseline"),
        (
            "{\"version\": 7, \"droptrace\": \"3.0.0\", \"namespaces\": {}}",
            "is version 7 of the baseline format (written by droptrace 3.0.0)",
        ),
        (
            "{\"version\": 1, \"droptrace\": \"0.1.0\", \"host\": \"x\", \"taken_at\": 0, \"namespaces\": []}",
            "is damaged",
        ),
    ] {
        std::fs::write(&file, content).unwrap();
        let out = std::process::Command::new(droptrace_bin())
            .args(["diagnose", "--duration", "1", "--baseline", &file])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{content}: {stderr}");
        assert!(
            stderr.contains(&format!("baseline {file}: it {says}")),
            "{content}: {stderr}"
        );
        assert!(out.stdout.is_empty());
    }
    // Larger than any baseline droptrace writes: refused by its size, quickly and without
    // holding it (the bounded read stops one byte past the limit).
    let mut big = String::from("{\"version\": 1, \"droptrace\": \"0.1.0\", \"pad\": \"");
    big.push_str(&"x".repeat(17 << 20));
    big.push_str("\"}");
    std::fs::write(&file, big).unwrap();
    let started = std::time::Instant::now();
    let out = std::process::Command::new(droptrace_bin())
        .args(["diagnose", "--duration", "1", "--baseline", &file])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("baseline {file}: it is larger than 16 MiB")),
        "{stderr}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(u64::from(time_scale())));
    std::fs::remove_file(&file).unwrap();
    let out = std::process::Command::new(droptrace_bin())
        .args(["diagnose", "--baseline", &file])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("reading the baseline"));
}

fn a_cgroup_skb_program_is_named_with_the_process_holding_it() {
    // This machine mounts cgroup v2 beside the v1 controllers.
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    let Some(root) = mounts
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|w| w.get(2) == Some(&"cgroup2"))
        .map(|w| w[1].to_owned())
    else {
        skip("no cgroup v2 hierarchy is mounted");
    };
    let ns = Netns::new("c");
    let cgroup = format!("{root}/{}-cg", ns.name);
    std::fs::create_dir(&cgroup).unwrap();
    /// Removes the cgroup once the holder has left it.
    struct Rmdir(String);
    impl Drop for Rmdir {
        fn drop(&mut self) {
            let procs = format!("{}/cgroup.procs", self.0);
            wait_for("the test cgroup to empty", || {
                std::fs::read_to_string(&procs)
                    .map_or(true, |p| p.trim().is_empty())
                    .then_some(())
            });
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let _rmdir = Rmdir(cgroup.clone());
    let holder = BpfHolder::start(&ns, &cgroup, "cgroup-drop-udp", "6005", "dt_cgroup_drop");
    let in_errors = ns.snmp("Udp", "InErrors");
    let report = diagnose(&["--netns", &ns.path(), "--proto", "udp"], || {
        udp_burst(&ns, "127.0.0.1:6005".parse().unwrap(), 5, 10);
        reaches("Udp InErrors", in_errors + 5, || ns.snmp("Udp", "InErrors"));
    });
    let f = top(&report);
    assert_eq!(f["reason"], "SOCKET_FILTER", "{report:#}");
    assert_eq!(f["drops"], 5);
    let summary = f["summary"].as_str().unwrap();
    for needle in [
        format!(
            "`dt_cgroup_drop` (id {}) attached at ingress of cgroup {cgroup}",
            holder.prog_id
        ),
        format!("by pid {}", holder.child.id()),
        holder.cmdline(),
    ] {
        assert!(summary.contains(&needle), "`{needle}` not in {summary}");
    }
    assert_mentions(f, &["cgroup_skb", "by uid 0", "cgroup link"]);
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["cause"] != "socket_rcvbuf"),
        "Udp InErrors counts the filtered datagrams too, not a full buffer: {report:#}"
    );
    assert!(f["fix"]
        .as_str()
        .unwrap()
        .starts_with(&format!("stop or reconfigure pid {}", holder.child.id())));
}

/// Puts a counting rule (no verdict) for UDP port 4444 first in a chain whose policy is
/// drop: the test waits for its counter; the diagnosis must still name the policy.
fn policy_drop_scenarios(pair: &Pair, tool: &str) -> (String, String) {
    match tool {
        "nft" => {
            pair.b.exec(&["nft", "add table inet filter"]);
            pair.b.exec(&[
                "nft",
                "add chain inet filter input { type filter hook input priority 0; policy drop; }",
            ]);
            pair.b.exec(&[
                "nft",
                "add rule inet filter input udp dport 4444 counter comment \"seen4444\"",
            ]);
            pair.b
                .exec(&["nft", "add rule inet filter input tcp dport 22 accept"]);
            (
                "nftables chain `inet filter input`".into(),
                "nft add rule inet filter input udp dport 4444 accept".into(),
            )
        }
        _ => {
            pair.b.exec(&[tool, "-P", "INPUT", "DROP"]);
            pair.b
                .exec(&[tool, "-A", "INPUT", "-p", "udp", "--dport", "4444"]);
            pair.b.exec(&[
                tool, "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT",
            ]);
            (
                format!("{tool} chain `filter INPUT`"),
                format!("{tool} -t filter -A INPUT -p udp --dport 4444 -j ACCEPT"),
            )
        }
    }
}

/// Packets the counting rule of `policy_drop_scenarios` has seen.
fn policy_rule_seen(ns: &Netns, tool: &str) -> u64 {
    if tool == "nft" {
        return nft_rule_packets(ns, "filter", "seen4444");
    }
    let table = ns.exec(&[tool, "-L", "INPUT", "-v", "-x", "-n"]);
    table
        .lines()
        .find_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            // With -n the protocol shows as its number: the match names the port.
            l.contains("udp dpt:4444")
                .then(|| words[0].parse().expect("packet count"))
        })
        .unwrap_or_else(|| panic!("no counting rule in {tool}'s INPUT chain:\n{table}"))
}

fn a_chain_policy_of_drop_is_named_with_the_rule_that_admits() {
    for (tool, to) in [
        ("nft", format!("{B4}:4444")),
        ("nft", format!("[{B6}]:4444")),
        ("iptables-nft", format!("{B4}:4444")),
        ("ip6tables-nft", format!("[{B6}]:4444")),
    ] {
        let pair = Pair::new();
        let (chain, admit) = policy_drop_scenarios(&pair, tool);
        let netns = pair.b.path();
        let report = diagnose(&["--netns", &netns, "--proto", "udp"], || {
            udp_burst(&pair.a, to.parse().unwrap(), 5, 100);
            reaches("the counting rule before the policy", 5, || {
                policy_rule_seen(&pair.b, tool)
            });
        });
        let f = top(&report);
        assert_eq!(f["cause"], "netfilter_rule", "{tool} {to}: {report:#}");
        assert_eq!(f["drops"], 5, "{tool} {to}");
        assert_mentions(f, &["fell through every rule", &chain, &admit]);
        assert!(
            !f["fix"].as_str().unwrap().contains("counter"),
            "{tool} {to}: the fix asks for counters: {f:#}"
        );
    }
}

/// A counter of /proc/net/snmp6 in `ns`, e.g. "Ip6InAddrErrors".
fn snmp6(ns: &Netns, name: &str) -> u64 {
    ns.exec(&["cat", "/proc/net/snmp6"])
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(char::is_whitespace)?;
            (k == name).then(|| v.trim().parse().expect("counter"))
        })
        .unwrap_or_else(|| panic!("no {name} in snmp6"))
}

/// Sends `n` datagrams from `a` (pinned to one CPU) to `to`, which `b` drops while
/// routing, then a marker to a socket in `b`: packets through a veth pair from one CPU are
/// processed in order, so once the marker is received every packet before it was dropped.
fn routed_drops_then_marker(pair: &Pair, to: SocketAddr, n: usize) {
    let marker_at: SocketAddr = if to.is_ipv4() {
        format!("{B4}:6009")
    } else {
        format!("[{B6}]:6009")
    }
    .parse()
    .unwrap();
    let marker = pair.b.run(|| UdpSocket::bind(marker_at).unwrap());
    marker.set_read_timeout(Some(WAIT_LIMIT)).unwrap();
    pair.a.run(|| {
        pin_to_this_cpu();
        let sock = UdpSocket::bind(if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }).unwrap();
        for _ in 0..n {
            sock.send_to(&[7u8; 100], to).unwrap();
        }
        sock.send_to(b"marker", marker_at).unwrap();
    });
    let mut buf = [0u8; 16];
    let got = marker
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("the marker after the routed drops did not arrive: {e}"));
    assert_eq!(&buf[..got], b"marker");
}

/// A pair where `a` routes 10.88.0.0/24 and fd88::/64 through `b`.
fn pair_routing_through_b() -> Pair {
    let pair = Pair::new();
    pair.a
        .exec(&["ip", "route", "add", "10.88.0.0/24", "via", B4]);
    pair.a
        .exec(&["ip", "-6", "route", "add", "fd88::/64", "via", B6]);
    pair
}

fn forwarding_disabled_is_named_with_its_sysctl_and_the_route_lookup() {
    for (to, v, query) in [
        (
            "10.88.0.5:4444",
            "ipv4",
            format!("10.88.0.5 from {A4} iif veth-b"),
        ),
        (
            "[fd88::5]:4444",
            "ipv6",
            format!("fd88::5 from {A6} iif veth-b"),
        ),
    ] {
        let pair = pair_routing_through_b();
        // b has a route there but does not forward (a new namespace's default).
        pair.b
            .exec(&["ip", "route", "add", "10.88.0.0/24", "dev", "veth-b"]);
        pair.b
            .exec(&["ip", "-6", "route", "add", "fd88::/64", "dev", "veth-b"]);
        let netns = pair.b.path();
        let errors = || {
            if v == "ipv4" {
                pair.b.snmp("Ip", "InAddrErrors")
            } else {
                snmp6(&pair.b, "Ip6InAddrErrors")
            }
        };
        let before = errors();
        let report = diagnose(&["--netns", &netns, "--proto", "udp"], || {
            routed_drops_then_marker(&pair, to.parse().unwrap(), 5);
        });
        assert_eq!(
            errors() - before,
            5,
            "{v}: the kernel counted 5 address errors"
        );
        let f = top(&report);
        assert_eq!(f["cause"], "forwarding_disabled", "{v}: {report:#}");
        assert_eq!(f["drops"], 5, "{v}");
        assert_mentions(
            f,
            &[
                &format!("net.{v}.conf.veth-b.forwarding = 0"),
                &format!("route get {query}"),
                "not an address of",
                &format!("sysctl -w net.{v}.conf.all.forwarding=1"),
            ],
        );
    }
}

fn a_route_or_rule_that_refuses_is_named_with_the_kernels_lookup() {
    for (to, ip, refuse, answer, needle, fix) in [
        (
            "10.88.0.5:4444",
            &["ip"][..],
            &["route", "add", "unreachable", "10.88.0.0/24"][..],
            "No route to host",
            "`unreachable 10.88.0.0/24` in table main",
            "ip route del unreachable 10.88.0.0/24 table main",
        ),
        (
            "[fd88::5]:4444",
            &["ip", "-6"][..],
            &["route", "add", "blackhole", "fd88::/64"][..],
            "Invalid argument",
            "`blackhole fd88::/64` in table main",
            "ip -6 route del blackhole fd88::/64 table main",
        ),
        (
            "10.88.0.5:4444",
            &["ip"][..],
            &[
                "rule",
                "add",
                "to",
                "10.88.0.0/24",
                "prohibit",
                "priority",
                "100",
            ][..],
            "Permission denied",
            "rule `priority 100 to 10.88.0.0/24 prohibit`",
            "ip rule del priority 100 to 10.88.0.0/24 prohibit",
        ),
        (
            "[fd88::5]:4444",
            &["ip", "-6"][..],
            &[
                "rule",
                "add",
                "to",
                "fd88::/64",
                "unreachable",
                "priority",
                "100",
            ][..],
            "Network is unreachable",
            "rule `priority 100 to fd88::/64 unreachable`",
            "ip -6 rule del priority 100 to fd88::/64 unreachable",
        ),
    ] {
        let pair = pair_routing_through_b();
        pair.b.exec(&[
            "sysctl",
            "-qw",
            "net.ipv4.conf.all.forwarding=1",
            "net.ipv6.conf.all.forwarding=1",
        ]);
        pair.b
            .exec(&["ip", "route", "add", "10.88.0.0/24", "dev", "veth-b"]);
        pair.b
            .exec(&["ip", "-6", "route", "add", "fd88::/64", "dev", "veth-b"]);
        let mut cmd = ip.to_vec();
        cmd.extend_from_slice(refuse);
        if refuse[0] == "route" {
            // Replace the route that would carry them.
            cmd[ip.len() + 1] = "replace";
        }
        pair.b.exec(&cmd);
        let netns = pair.b.path();
        let report = diagnose(&["--netns", &netns, "--proto", "udp"], || {
            routed_drops_then_marker(&pair, to.parse().unwrap(), 5);
        });
        let f = top(&report);
        assert_eq!(f["cause"], "no_route", "{to} {refuse:?}: {report:#}");
        assert_eq!(f["drops"], 5, "{to} {refuse:?}");
        assert_mentions(f, &["route get", answer, needle, fix]);
    }
}

fn a_veth_peers_smaller_mtu_in_a_namespace_not_given_is_named_exactly() {
    for to in [format!("{B4}:7777"), format!("[{B6}]:7777")] {
        let pair = Pair::new();
        pair.b
            .exec(&["ip", "link", "set", "dev", "veth-b", "mtu", "1400"]);
        // Only the sender's namespace is given: the peer's is found through the veth.
        let netns = pair.a.path();
        let tx_dropped = || pair.a.link_stat("veth-a", "tx", "dropped");
        let before = tx_dropped();
        let report = diagnose(&["--netns", &netns, "--proto", "udp"], || {
            udp_burst(&pair.a, to.parse().unwrap(), 20, 1420);
            reaches("veth-a's tx dropped", before + 20, tx_dropped);
        });
        let f = top(&report);
        assert_eq!(f["cause"], "mtu", "{to}: {report:#}");
        assert_eq!(f["drops"], 20, "{to}");
        assert_mentions(
            f,
            &[
                &format!(
                    "veth-b in netns {} has MTU 1400; packets of up to",
                    pair.b.name
                ),
                "were sent to it through veth-a",
                "by link-netnsid and peer ifindex",
                &format!(
                    "ip netns exec {} ip link set dev veth-b mtu 1500",
                    pair.b.name
                ),
            ],
        );
    }
}

fn without_btf_findings_say_what_is_unknown_and_print_no_placeholders() {
    for to in [format!("{B4}:4444"), format!("[{B6}]:4444")] {
        let pair = Pair::new();
        let to: SocketAddr = to.parse().unwrap();
        let (group, name) = if to.is_ipv4() {
            ("Udp", "NoPorts")
        } else {
            ("Udp6", "NoPorts")
        };
        let no_ports = || {
            if to.is_ipv4() {
                pair.b.snmp(group, name)
            } else {
                snmp6(&pair.b, "Udp6NoPorts")
            }
        };
        let before = no_ports();
        // Without BTF no packet filter works (not even --netns): only the reason.
        let report = diagnose_with(
            Droptrace::start_without_btf,
            &["--reason", "NO_SOCKET"],
            || {
                udp_burst(&pair.a, to, 5, 10);
                reaches("NoPorts", before + 5, no_ports);
            },
        );
        let f = report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["netns"] == pair.b.name.as_str())
            .unwrap_or_else(|| panic!("{to}: no finding placed in {}: {report:#}", pair.b.name));
        assert_eq!(f["cause"], "no_listener", "{to}: {report:#}");
        assert_eq!(f["drops"], 5, "{to}");
        assert_mentions(
            f,
            &[
                "destination port is unknown",
                "offers no BTF",
                &format!("{group} {name} +5"),
                "headers were not read",
            ],
        );
        let text = format!("{}\n{}\n{}", f["summary"], evidence(f), f["fix"]);
        for placeholder in [
            " ? ",
            ":?",
            "port ?",
            "<port>",
            "<iface>",
            "non-IP packet",
            "0 bytes",
        ] {
            assert!(
                !text.contains(placeholder),
                "{to}: `{placeholder}` in {f:#}"
            );
        }
    }
}

fn a_namespace_wide_counter_is_given_as_the_namespaces_total() {
    let pair = Pair::new();
    let netns = pair.b.path();
    let before = pair.b.snmp("Udp", "NoPorts");
    let report = diagnose(&["--netns", &netns, "--proto", "udp"], || {
        udp_burst(&pair.a, format!("{B4}:53").parse().unwrap(), 3, 10);
        udp_burst(&pair.a, format!("{B4}:54").parse().unwrap(), 4, 10);
        reaches("Udp NoPorts", before + 7, || pair.b.snmp("Udp", "NoPorts"));
    });
    let no_ports = pair.b.snmp("Udp", "NoPorts") - before;
    let findings: Vec<&Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["cause"] == "no_listener")
        .collect();
    assert_eq!(findings.len(), 2, "one finding per port: {report:#}");
    for f in findings {
        let port = f["dport"].as_u64().unwrap();
        assert_eq!(f["drops"], if port == 53 { 3 } else { 4 }, "{f:#}");
        assert_mentions(
            f,
            &[
                &format!("no udp socket listens on port {port}"),
                &format!(
                    "Udp NoPorts +{no_ports} in the window: the total of netns {} for every port",
                    pair.b.name
                ),
            ],
        );
    }
}

/// The finding about the namespace `ns` (other drops of the machine may rank above it
/// when no --netns is given).
fn finding_in<'a>(report: &'a Value, ns: &Netns) -> &'a Value {
    // The name alone, perhaps followed by what became of it ("(gone: ...)").
    let name = &ns.name;
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| {
            f["netns"]
                .as_str()
                .is_some_and(|n| n == name || n.starts_with(&format!("{name} ")))
        })
        .unwrap_or_else(|| panic!("no finding in {name}: {report:#}"))
}

fn drops_in_the_last_of_100_namespaces_are_diagnosed_with_the_rule() {
    if time_scale() > 1 {
        // Under emulation 100 namespaces, and diagnose's 64 samples of them, take minutes
        // of the guest's budget; the cap and where it samples do not depend on the kernel.
        skip("100 namespaces take minutes under emulation (it runs on the host)");
    }
    // 98 idle namespaces, then the pair: `b`, made last, has the largest inode of them
    // (the kernel hands out the lowest free one), past the first 64.
    let idle: Vec<Netns> = (0..98).map(|_| Netns::new("idle")).collect();
    let (pair, _server) = Pair::with_nft_drop_on_1678();
    let deleted = format!(
        "ip netns exec {} nft delete rule inet dt input handle",
        pair.b.name
    );

    // By default 64 are sampled before the window: `b` only after it, and said so.
    let report = diagnose(&[], || {
        pair.nft_dropped_syns(6);
    });
    let f = finding_in(&report, &pair.b);
    assert_eq!(f["cause"], "netfilter_rule", "{f:#}");
    assert_mentions(
        f,
        &[
            "tcp dport 1678",
            "handle",
            &deleted,
            "sampled only after the window",
        ],
    );
    let not_sampled = report["not_sampled"].to_string();
    assert!(
        not_sampled.contains(&format!(
            "netns {} was sampled only after the window",
            pair.b.name
        )) && not_sampled.contains("--max-namespaces 64"),
        "{report:#}"
    );
    assert!(
        !not_sampled.contains(&idle[0].name),
        "idle namespaces had no drops"
    );

    // With the cap above them all, `b` is sampled on both sides: the counter's growth.
    let before = nft_rule_packets(&pair.b, "dt", "dt1678");
    let report = diagnose(&["--max-namespaces", "128"], || {
        pair.nft_dropped_syns(6);
    });
    let grown = nft_rule_packets(&pair.b, "dt", "dt1678") - before;
    let f = finding_in(&report, &pair.b);
    assert_eq!(f["cause"], "netfilter_rule", "{f:#}");
    assert_eq!(f["drops"], grown, "drops equal the rule's counter");
    assert_mentions(
        f,
        &[
            "handle",
            &deleted,
            &format!("counter +{grown} in the window"),
        ],
    );
    assert!(report.get("not_sampled").is_none(), "{report:#}");
    assert!(report["namespaces"].as_u64().unwrap() >= 100, "{report:#}");
    // Its wall time: `cargo xtask bench-diagnose`.
}

fn a_namespace_deleted_during_the_window_is_said_gone() {
    let (pair, _server) = Pair::with_nft_drop_on_1678();
    let report = diagnose(&[], || {
        pair.nft_dropped_syns(4);
        sh(&["ip", "netns", "del", &pair.b.name]);
    });
    let f = finding_in(&report, &pair.b);
    assert_eq!(f["cause"], "netfilter_rule", "{f:#}");
    // JSON names it as it was; the sentences say it is gone.
    assert_eq!(f["netns"], pair.b.name.as_str());
    assert!(
        f["summary"].as_str().unwrap().contains(&format!(
            "netns {} (gone: deleted during the window)",
            pair.b.name
        )),
        "{f:#}"
    );
    let fix = f["fix"].as_str().unwrap();
    assert!(
        fix.starts_with(&format!(
            "none to run: netns {} no longer exists",
            pair.b.name
        )),
        "{f:#}"
    );
    // The rule it was is still named, by the state held open through the window.
    assert_mentions(f, &["tcp dport 1678", "counter +4 in the window"]);
}

fn hostile_names_never_reach_the_terminal_raw() {
    let (pair, _server) = Pair::with_nft_drop_on_1678();
    // An interface name may hold an escape (only whitespace, '/' and ':' are refused).
    let iface = "dt\x1b[31mX";
    for args in [
        vec!["link", "set", "veth-b", "down"],
        vec!["link", "set", "veth-b", "name", iface],
        vec!["link", "set", iface, "up"],
    ] {
        let mut full = vec!["ip"];
        full.extend(args);
        pair.b.exec(&full);
    }
    // A process whose name holds one, owning a UDP socket whose buffer overflows.
    let mut owner = std::process::Command::new("ip")
        .args(["netns", "exec", &pair.b.name, "python3", "-c"])
        .arg(
            "import ctypes, socket, sys\n\
             ctypes.CDLL(None).prctl(15, b'dt\\x1b[31mP', 0, 0, 0)\n\
             s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
             s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)\n\
             s.bind(('0.0.0.0', 5099))\n\
             print('ready', flush=True)\n\
             sys.stdin.read()\n",
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(owner.stdout.take().unwrap()),
        &mut ready,
    )
    .unwrap();
    assert_eq!(ready, "ready\n");
    // A baseline whose rule text forges a finding and colours the screen.
    let file = format!("/tmp/{}-hostile-baseline.json", pair.b.name);
    let ns_name = format!("netns {}", pair.b.name);
    let baseline = serde_json::json!({
        "version": 1, "droptrace": "0.1.0", "host": "h\u{1b}]0;pwned\u{7}", "taken_at": 0,
        "namespaces": { ns_name: {
            "bpf": [], "qdiscs": [], "sysctls": {}, "mtus": {},
            "rules": [{"source": "nftables", "table": "inet x\u{1b}[31mRED\u{1b}[0m",
                "chain": "input", "text": "drop\n2. [netfilter_rule] forged finding",
                "verdict": "drop"}]
        }}
    });
    std::fs::write(&file, baseline.to_string()).unwrap();
    let netns = pair.b.path();
    let dt = Droptrace::start(&[
        "diagnose",
        "--duration",
        &(DIAGNOSE_WINDOW_SECS * u64::from(time_scale())).to_string(),
        "--netns",
        &netns,
        "--baseline",
        &file,
    ]);
    pair.nft_dropped_syns(4);
    let errors = pair.b.snmp("Udp", "RcvbufErrors");
    udp_burst(&pair.a, format!("{B4}:5099").parse().unwrap(), 50, 500);
    reaches("Udp RcvbufErrors", errors + 1, || {
        pair.b.snmp("Udp", "RcvbufErrors")
    });
    let out = dt.wait();
    let _ = std::fs::remove_file(&file);
    drop(owner.stdin.take());
    let _ = owner.wait();
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    assert!(out.status.success());
    assert!(
        !text.contains(|c: char| c.is_control() && c != '\n'),
        "a control character reached the terminal"
    );
    assert!(
        text.lines()
            .all(|l| !l.starts_with("2. [netfilter_rule] forged")),
        "a forged line"
    );
    // The tools print the names raw, inside their JSON too: it is still read.
    assert!(!text.contains("control character"), "state unread");
    for shown in [
        r"on dt\x1b[31mX in netns",
        "nft delete rule inet dt input handle",
        r"dt\x1b[31mP",
        r"inet x\x1b[31mRED\x1b[0m",
        r"drop\n2. [",
    ] {
        assert!(text.contains(shown), "`{shown}` missing");
    }
}

/// `to` as a socket address for sendto(2) and bind(2), with its length.
fn sockaddr(to: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero bytes are a valid sockaddr_storage (an unspecified address).
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match to {
        SocketAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
            let sin = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_addr.s_addr = u32::from(*v4.ip()).to_be();
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in6.
            let sin6 = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_addr.s6_addr = v6.ip().octets();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// Sends each of `segments` (a transport header and what follows) once from a raw socket of
/// `protocol` in `ns`, bound to `from`'s address, to `to`; the kernel adds the IP header.
/// With `ipv6_checksum_at`, the kernel fills an IPv6 segment's checksum at that offset.
fn raw_send(
    ns: &Netns,
    protocol: i32,
    from: Option<SocketAddr>,
    to: SocketAddr,
    segments: &[Vec<u8>],
    ipv6_checksum_at: Option<i32>,
) {
    ns.run(|| {
        let family = if to.is_ipv4() {
            libc::AF_INET
        } else {
            libc::AF_INET6
        };
        // SAFETY: socket(2) with constant arguments; the descriptor is closed below.
        let fd = unsafe { libc::socket(family, libc::SOCK_RAW, protocol) };
        assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
        if let Some(from) = from {
            let (local, len) = sockaddr(from);
            // SAFETY: the address lives across the call, with its length.
            let bound =
                unsafe { libc::bind(fd, (&local as *const libc::sockaddr_storage).cast(), len) };
            assert_eq!(bound, 0, "bind: {}", std::io::Error::last_os_error());
        }
        if let (Some(at), false) = (ipv6_checksum_at, to.is_ipv4()) {
            // SAFETY: an int option, passed by pointer with its size.
            let set = unsafe {
                libc::setsockopt(
                    fd,
                    libc::IPPROTO_IPV6,
                    libc::IPV6_CHECKSUM,
                    (&at as *const i32).cast(),
                    std::mem::size_of::<i32>() as libc::socklen_t,
                )
            };
            assert_eq!(set, 0, "IPV6_CHECKSUM: {}", std::io::Error::last_os_error());
        }
        let (storage, len) = sockaddr(to);
        for segment in segments {
            // SAFETY: the buffer and the address live across the call, with their lengths.
            let sent = unsafe {
                libc::sendto(
                    fd,
                    segment.as_ptr().cast(),
                    segment.len(),
                    0,
                    (&storage as *const libc::sockaddr_storage).cast(),
                    len,
                )
            };
            assert_eq!(
                sent,
                segment.len() as isize,
                "sendto: {}",
                std::io::Error::last_os_error()
            );
        }
        // SAFETY: fd is the socket opened above, closed once.
        unsafe { libc::close(fd) };
    });
}

/// Sends `n` UDP datagrams from a raw socket in `ns` to `to` with a checksum that is wrong
/// (the kernel leaves a raw socket's transport header as given), from source port 40000 on.
fn udp_with_bad_checksums(ns: &Netns, to: SocketAddr, n: u16) {
    let datagrams: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let mut datagram = Vec::new();
            datagram.extend_from_slice(&(40000 + i).to_be_bytes());
            datagram.extend_from_slice(&to.port().to_be_bytes());
            datagram.extend_from_slice(&24u16.to_be_bytes());
            datagram.extend_from_slice(&0x1234u16.to_be_bytes());
            datagram.extend_from_slice(&[7u8; 16]);
            datagram
        })
        .collect();
    raw_send(ns, libc::IPPROTO_UDP, None, to, &datagrams, None);
}

const TCP_ACK: u8 = 0x10;
const TCP_PSH: u8 = 0x08;

/// `n` TCP segments with `flags` from `from` to `to` (sequence numbers from `seq`, one
/// apart, no payload), their checksums right: IPv4's computed here over the
/// pseudo-header, IPv6's by the kernel (IPV6_CHECKSUM).
fn tcp_segments(ns: &Netns, from: SocketAddr, to: SocketAddr, flags: u8, seq: u32, n: u32) {
    let segments: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let mut h = Vec::with_capacity(20);
            h.extend_from_slice(&from.port().to_be_bytes());
            h.extend_from_slice(&to.port().to_be_bytes());
            h.extend_from_slice(&seq.wrapping_add(i).to_be_bytes());
            h.extend_from_slice(&0x2000_0000u32.to_be_bytes());
            h.extend_from_slice(&[5 << 4, flags]);
            h.extend_from_slice(&64240u16.to_be_bytes());
            h.extend_from_slice(&[0, 0, 0, 0]);
            if let (SocketAddr::V4(f), SocketAddr::V4(t)) = (from, to) {
                let mut pseudo = Vec::new();
                pseudo.extend_from_slice(&f.ip().octets());
                pseudo.extend_from_slice(&t.ip().octets());
                pseudo.extend_from_slice(&[0, 6]);
                pseudo.extend_from_slice(&(h.len() as u16).to_be_bytes());
                pseudo.extend_from_slice(&h);
                let mut sum: u32 = pseudo
                    .chunks(2)
                    .map(|w| u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)])))
                    .sum();
                while sum > 0xffff {
                    sum = (sum & 0xffff) + (sum >> 16);
                }
                h[16..18].copy_from_slice(&(!(sum as u16)).to_be_bytes());
            }
            h
        })
        .collect();
    raw_send(ns, libc::IPPROTO_TCP, Some(from), to, &segments, Some(16));
}

/// TCP segments of connections no socket holds any more (what a peer sends on after the
/// service here restarted) are housekeeping, said from their flags read in the kernel:
/// the finding has them all, exactly as many as the resets the receiver sent. Over IPv4
/// and IPv6. Connection attempts to such a port are not (a_port_nothing_listens_on_...).
fn late_tcp_segments_to_a_port_nothing_holds_are_housekeeping_from_their_flags() {
    for (from, to) in [
        (format!("{A4}:8080"), format!("{B4}:41000")),
        (format!("[{A6}]:8080"), format!("[{B6}]:41000")),
    ] {
        let pair = Pair::new();
        let (from, to): (SocketAddr, SocketAddr) = (from.parse().unwrap(), to.parse().unwrap());
        let before = pair.b.snmp("Tcp", "OutRsts");
        let report = diagnose(&["--netns", &pair.b.path()], || {
            tcp_segments(&pair.a, from, to, TCP_ACK | TCP_PSH, 0x1000_0000, 5);
            reaches("Tcp OutRsts", before + 5, || pair.b.snmp("Tcp", "OutRsts"));
        });
        let f = only_tcp_finding(&report);
        assert_eq!(f["cause"], "no_listener", "{to}: {report:#}");
        assert_eq!(f["benign"], true, "{f:#}");
        assert_eq!(f["drops"], 5, "{f:#}");
        assert_eq!(pair.b.snmp("Tcp", "OutRsts"), before + 5);
        assert_mentions(
            f,
            &[
                &format!(
                    "5 tcp segments from {from} to port 41000 in netns {}, none of the ",
                    pair.b.name
                ),
                "none was a connection attempt (SYN)",
            ],
        );
    }
}

/// A situation outside the cause families the engine was written for: datagrams with bad
/// checksums. The finding names what the kernel counted them as (the counter that grew in
/// step, by as much as the packets sent), the JSON lists every counter that moved, and
/// `Udp:InErrors`, which grew with them, is not taken for a full receive buffer.
fn drops_outside_the_list_are_named_by_the_counters_that_grew_with_them() {
    for (to, group) in [
        (format!("{B4}:9999"), "Udp"),
        (format!("[{B6}]:9999"), "Udp6"),
    ] {
        let pair = Pair::new();
        let to: SocketAddr = to.parse().unwrap();
        let csum_errors = || {
            if group == "Udp" {
                pair.b.snmp("Udp", "InCsumErrors")
            } else {
                snmp6(&pair.b, "Udp6InCsumErrors")
            }
        };
        let before = csum_errors();
        let report = diagnose(&["--netns", &pair.b.path()], || {
            udp_with_bad_checksums(&pair.a, to, 6);
            reaches("the checksum errors", before + 6, csum_errors);
        });
        assert_eq!(csum_errors() - before, 6);
        let f = top(&report);
        assert_eq!(f["drops"], 6, "{to}: {report:#}");
        assert_eq!(f["reason"], "UDP_CSUM", "{to}: {report:#}");
        let counter = format!("{group}:InCsumErrors");
        assert_mentions(
            f,
            &[
                &format!("the kernel counted them as {counter} (+6 in the window)"),
                &format!("in netns {}: {counter} +6", pair.b.name),
            ],
        );
        // The reason's own fix, not a receive ring's without an interface counter.
        assert!(!f["fix"].as_str().unwrap().contains("ethtool -G"), "{f:#}");
        let causes: Vec<&Value> = report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| &f["cause"])
            .collect();
        assert!(
            !causes.iter().any(|c| *c == "socket_rcvbuf"),
            "InErrors taken for a full buffer: {report:#}"
        );
        let moved = report["counters_moved"].as_array().expect("counters_moved");
        assert!(
            moved.iter().any(|c| c["netns"] == pair.b.name.as_str()
                && c["counter"] == counter.as_str()
                && c["delta"] == 6),
            "{report:#}"
        );
    }
}

/// The classic "it listens, but": a service bound to 127.0.0.1 refuses SYNs to the
/// namespace's address, and a service running in the other namespace refuses nothing
/// where the packets arrive. Each finding names the socket that does not take them, its
/// process and why, and a fix on its address or place.
fn a_listener_on_loopback_or_in_another_namespace_is_named() {
    let pair = Pair::new();
    let _loopback_only = pair.b.run(|| TcpListener::bind("127.0.0.1:9090").unwrap());
    let to: SocketAddr = format!("{B4}:9090").parse().unwrap();
    let report = diagnose(&["--netns", &pair.b.path()], || {
        assert_eq!(connect_attempts(&pair.a, to, 4).refused, 4);
    });
    let f = top(&report);
    assert_eq!(f["cause"], "no_listener", "{report:#}");
    assert_eq!(f["drops"], 4);
    assert_mentions(
        f,
        &[
            &format!("no socket accepts these tcp packets to {B4}:9090"),
            "but only on the loopback address 127.0.0.1:9090",
            &format!(
                "listen on {B4}:9090 or on every address (0.0.0.0:9090) instead of 127.0.0.1:9090"
            ),
        ],
    );

    // The service runs in a, the packets go to b: every namespace is sampled (no --netns).
    let _in_a = pair.a.run(|| TcpListener::bind("0.0.0.0:9091").unwrap());
    let to: SocketAddr = format!("{B4}:9091").parse().unwrap();
    let report = diagnose(&["--addr", B4, "--port", "9091"], || {
        assert_eq!(connect_attempts(&pair.a, to, 4).refused, 4);
    });
    let f = top(&report);
    assert_eq!(f["cause"], "no_listener", "{report:#}");
    assert_mentions(
        f,
        &[
            &format!(
                "nothing listens on tcp port 9091 in netns {}, where these packets arrive; a socket on that port listens in netns {}",
                pair.b.name, pair.a.name
            ),
            &format!("run the service in netns {}", pair.b.name),
        ],
    );
}

/// A sender's static neighbour entry gives the receiver's address a wrong MAC: the
/// receiver, which is not promiscuous, drops the frames as OTHERHOST. Not housekeeping:
/// the finding names the entry in the sender's namespace and the fix replaces it with the
/// receiver's address.
fn frames_to_a_wrong_mac_name_the_senders_neighbour_entry() {
    let pair = Pair::new();
    pair.a.exec(&[
        "ip",
        "neigh",
        "replace",
        B4,
        "lladdr",
        "02:00:00:00:00:99",
        "dev",
        "veth-a",
        "nud",
        "permanent",
    ]);
    let mac_b = {
        let json = pair.b.exec(&["ip", "-j", "link", "show", "dev", "veth-b"]);
        let v: Value = serde_json::from_str(&json).unwrap();
        v[0]["address"].as_str().unwrap().to_owned()
    };
    // The kernel's own count of them (rx_otherhost_dropped, Linux 5.19 on; `ip -s -s`
    // prints it once it is not 0).
    let otherhost = || {
        let json = pair
            .b
            .exec(&["ip", "-s", "-s", "-j", "link", "show", "dev", "veth-b"]);
        let v: Value = serde_json::from_str(&json).unwrap();
        v[0]["stats64"]["rx"]["otherhost"].as_u64().unwrap_or(0)
    };
    let report = diagnose(&["--addr", B4, "--proto", "udp"], || {
        udp_burst(&pair.a, format!("{B4}:7777").parse().unwrap(), 5, 10);
        reaches("veth-b's frames for another host", 5, otherhost);
    });
    let f = top(&report);
    assert_eq!(f["cause"], "neighbour", "{report:#}");
    assert_eq!(f["benign"], false);
    assert_eq!(f["drops"], 5);
    assert_mentions(
        f,
        &[
            &format!("addressed to 02:00:00:00:00:99, not its {mac_b}"),
            &format!(
                "the neighbour entry {B4} lladdr 02:00:00:00:00:99 PERMANENT on veth-a in netns {}",
                pair.a.name
            ),
            &format!(
                "ip netns exec {} ip neigh replace {B4} lladdr {mac_b} dev veth-a",
                pair.a.name
            ),
        ],
    );
}

/// Datagrams to on-link addresses nobody holds (IPv4 and IPv6) wait for the neighbour
/// layer, which gives up and drops them: the finding names the next hop's FAILED entry.
/// The sender gives up after one probe of 100 ms (its own namespace's sysctls), and each
/// dropped datagram is answered to the sender by an ICMP error, the count waited for.
fn an_unanswered_next_hop_is_named_by_its_failed_neighbour_entry() {
    let pair = Pair::new();
    for family in ["ipv4", "ipv6"] {
        for (name, value) in [("mcast_solicit", "1"), ("retrans_time_ms", "100")] {
            pair.a.exec(&[
                "sysctl",
                "-qw",
                &format!("net.{family}.neigh.veth-a.{name}={value}"),
            ]);
        }
    }
    let (v4, v6) = ("10.77.0.9", "fd77::9");
    let errors4 = pair.a.snmp("Icmp", "InErrors");
    let errors6 = snmp6(&pair.a, "Icmp6InErrors");
    let report = diagnose(&["--netns", &pair.a.path(), "--proto", "udp"], || {
        udp_burst(&pair.a, format!("{v4}:7000").parse().unwrap(), 3, 20);
        udp_burst(&pair.a, format!("[{v6}]:7000").parse().unwrap(), 3, 20);
        reaches("the ICMP errors of the drops", errors4 + 3, || {
            pair.a.snmp("Icmp", "InErrors")
        });
        reaches("the ICMPv6 errors of the drops", errors6 + 3, || {
            snmp6(&pair.a, "Icmp6InErrors")
        });
    });
    for (addr, protocol) in [(v4, "ARP"), (v6, "neighbour discovery")] {
        let f = report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["summary"].as_str().unwrap().contains(addr))
            .unwrap_or_else(|| panic!("a finding for {addr}: {report:#}"));
        assert_eq!(f["drops"], 3, "{f:#}");
        assert_eq!(f["cause"], "neighbour", "{f:#}");
        assert_eq!(f["benign"], false);
        assert_mentions(
            f,
            &[
                &format!("the next hop {addr} does not answer {protocol} on veth-a"),
                &format!("ip neigh show {addr} dev veth-a"),
                &format!("{addr} FAILED on veth-a"),
            ],
        );
    }
}

/// A veth whose other end is down drops what it is given to send (QDISC_DROP at
/// `__dev_queue_xmit` on 6.18): the finding is the interface that carries nothing, with the
/// other end named and the command that brings it up, for IPv4 and IPv6 alike. Static
/// neighbour entries send the datagrams straight to the device.
fn an_interface_whose_pair_end_is_down_is_named_with_it() {
    let pair = Pair::new();
    pair.b.exec(&["ip", "link", "set", "veth-b", "down"]);
    for addr in [B4, B6] {
        pair.a.exec(&[
            "ip",
            "neigh",
            "replace",
            addr,
            "lladdr",
            "02:00:00:00:00:02",
            "dev",
            "veth-a",
            "nud",
            "permanent",
        ]);
    }
    // No queue and a resolved neighbour: each datagram is dropped inside its send_to,
    // so none is still on its way when the sends return. 6.12 and 6.18 count them in
    // veth-a's tx_dropped; 6.1 does not (there the device without carrier has the noop
    // qdisc, which counts nothing).
    let dropped = || pair.a.link_stat("veth-a", "tx", "dropped");
    let before = dropped();
    let report = diagnose(&["--netns", &pair.a.path(), "--proto", "udp"], || {
        udp_burst(&pair.a, format!("{B4}:7000").parse().unwrap(), 5, 20);
        udp_burst(&pair.a, format!("[{B6}]:7000").parse().unwrap(), 5, 20);
    });
    let f = top(&report);
    assert_eq!(f["cause"], "nic", "{report:#}");
    assert_eq!(f["drops"], 10, "{report:#}");
    // The device's count, where it keeps one, has the namespace's own multicast
    // listener reports and solicitations besides (not UDP).
    let counted = dropped() - before;
    assert!(
        counted == 0 || counted >= 10,
        "veth-a's tx_dropped grew by {counted}"
    );
    assert_mentions(
        f,
        &[
            &format!(
                "nothing passes veth-a: veth-a in netns {} has no carrier",
                pair.a.name
            ),
            &format!("its other end veth-b in netns {} is down", pair.b.name),
            &format!("ip netns exec {} ip link set veth-b up", pair.b.name),
        ],
    );
}

/// A classic BPF filter on a UDP socket (`ret #0`: refuse everything) drops what comes
/// to it (SOCKET_FILTER), which no tool lists: the socket's own drop counter names it, in
/// the summary, with its owner, IPv4 and IPv6; the kernel's Udp/Udp6 InErrors count them.
fn a_socket_whose_own_filter_refuses_is_named_by_its_drop_counter() {
    use std::os::fd::AsRawFd;
    let ns = Netns::new("f");
    let (v4, v6) = ns.run(|| {
        (
            UdpSocket::bind("127.0.0.1:6011").unwrap(),
            UdpSocket::bind("[::1]:6012").unwrap(),
        )
    });
    for sock in [&v4, &v6] {
        let mut refuse = [libc::sock_filter {
            code: 0x06, // BPF_RET | BPF_K
            jt: 0,
            jf: 0,
            k: 0,
        }];
        let prog = libc::sock_fprog {
            len: 1,
            filter: refuse.as_mut_ptr(),
        };
        // SAFETY: a valid socket, and a program that outlives the call (the kernel copies it).
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ATTACH_FILTER,
                (&raw const prog).cast(),
                std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
            )
        };
        assert_eq!(
            rc,
            0,
            "SO_ATTACH_FILTER: {}",
            std::io::Error::last_os_error()
        );
    }
    let errors4 = ns.snmp("Udp", "InErrors");
    let errors6 = snmp6(&ns, "Udp6InErrors");
    let report = diagnose(&["--netns", &ns.path(), "--proto", "udp"], || {
        udp_burst(&ns, "127.0.0.1:6011".parse().unwrap(), 5, 10);
        udp_burst(&ns, "[::1]:6012".parse().unwrap(), 4, 10);
        reaches("Udp InErrors", errors4 + 5, || ns.snmp("Udp", "InErrors"));
        reaches("Udp6 InErrors", errors6 + 4, || snmp6(&ns, "Udp6InErrors"));
    });
    let owner = format!("(pid {})", std::process::id());
    for (port, drops) in [(6011, 5), (6012, 4)] {
        let f = report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["dport"] == port)
            .unwrap_or_else(|| panic!("a finding for port {port}: {report:#}"));
        assert_eq!(f["reason"], "SOCKET_FILTER", "{f:#}");
        assert_eq!(f["drops"], drops, "{f:#}");
        let summary = f["summary"].as_str().unwrap();
        assert!(
            summary.contains("; counted by the socket udp ")
                && summary.contains(&format!(":{port} of "))
                && summary.contains(&format!("{owner} (its drops +{drops})")),
            "{summary}"
        );
    }
    drop((v4, v6));
}

/// A counter of /proc/net/xfrm_stat in `ns` (`InPolBlock` for XfrmInPolBlock).
fn xfrm_stat(ns: &Netns, name: &str) -> u64 {
    let text = ns.exec(&["cat", "/proc/net/xfrm_stat"]);
    text.lines()
        .find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next()? == format!("Xfrm{name}")).then(|| w.next()?.parse().ok())?
        })
        .unwrap_or_else(|| panic!("no Xfrm{name} in {text}"))
}

/// The finding of cause `cause` whose summary contains `needle`.
/// The one finding of a report's TCP drop site (not the resets the TCP tracepoints saw,
/// which have no drop site). Not by rank: a new namespace's own multicast listener reports
/// (MLD, dropped where nobody joined) can be as many, and as benign.
fn only_tcp_finding(report: &Value) -> &Value {
    let tcp: Vec<&Value> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["protocol"] == "tcp" && f["location"].is_string())
        .collect();
    assert_eq!(tcp.len(), 1, "one tcp finding: {report:#}");
    tcp[0]
}

fn finding_with<'a>(report: &'a Value, cause: &str, needle: &str) -> &'a Value {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["cause"] == cause && f["summary"].as_str().unwrap_or("").contains(needle))
        .unwrap_or_else(|| panic!("no {cause} finding with `{needle}`: {report:#}"))
}

/// IPsec policies in the receiver's namespace refuse datagrams to sockets that listen:
/// one blocks udp/5000 (IPv4 and IPv6), one demands ESP for udp/5001, which comes in
/// clear. Each finding names its policy by selector with the exact `ip xfrm policy
/// delete`, and counts what the kernel's xfrm_stat counted (InPolBlock, InTmplMismatch).
fn ipsec_policies_refusing_packets_are_named_by_their_selector() {
    let pair = Pair::new();
    let b = &pair.b;
    let policy = |words: String| {
        let args: Vec<&str> = words.split_whitespace().collect();
        b.exec(&args);
    };
    for (src, dst, len) in [(A4, B4, 32), (A6, B6, 128)] {
        policy(format!(
            "ip xfrm policy add dir in src {src}/{len} dst {dst}/{len} proto udp dport 5000 action block"
        ));
    }
    policy(format!(
        "ip xfrm policy add dir in src {A4}/32 dst {B4}/32 proto udp dport 5001 tmpl proto esp mode transport"
    ));
    // Sockets that listen: without one, the kernel checks the policy on its way to
    // "no socket" and says no reason.
    let _sockets: Vec<UdpSocket> = b.run(|| {
        ["0.0.0.0:5000", "[fd77::2]:5000", "0.0.0.0:5001"]
            .iter()
            .map(|a| UdpSocket::bind(a).unwrap())
            .collect()
    });
    let (blocked0, mismatched0) = (xfrm_stat(b, "InPolBlock"), xfrm_stat(b, "InTmplMismatch"));
    let report = diagnose(&["--proto", "udp"], || {
        udp_burst(&pair.a, format!("{B4}:5000").parse().unwrap(), 5, 20);
        udp_burst(&pair.a, format!("[{B6}]:5000").parse().unwrap(), 4, 20);
        udp_burst(&pair.a, format!("{B4}:5001").parse().unwrap(), 3, 20);
        reaches("blocked by policy", blocked0 + 9, || {
            xfrm_stat(b, "InPolBlock")
        });
        reaches("without ESP", mismatched0 + 3, || {
            xfrm_stat(b, "InTmplMismatch")
        });
    });
    assert_eq!(
        xfrm_stat(b, "InPolBlock") - blocked0,
        9,
        "no other packet was refused"
    );
    assert_eq!(xfrm_stat(b, "InTmplMismatch") - mismatched0, 3);
    let prefix = format!("ip netns exec {} ", b.name);
    for (src, to, sel, n) in [
        (
            A4,
            format!("{B4}:5000"),
            format!("src {A4}/32 dst {B4}/32 proto udp dport 5000"),
            5,
        ),
        (
            A6,
            format!("[{B6}]:5000"),
            format!("src {A6}/128 dst {B6}/128 proto udp dport 5000"),
            4,
        ),
    ] {
        let f = finding_with(&report, "xfrm", &format!("{src} -> {to}"));
        assert_eq!(f["drops"], n, "{f:#}");
        assert_eq!(f["reason"], "XFRM_POLICY");
        assert_mentions(
            f,
            &[
                &format!("refused by the IPsec policy `{sel}`: its action is block"),
                &format!("{sel} dir in action block"),
                "matched in the window",
                "XfrmInPolBlock +9",
                &format!("{prefix}ip xfrm policy delete dir in {sel}"),
                // The packet's own path: routing delivers it here.
                &format!(
                    "path: ip route get {} from {src} iif veth-b (in netns {}): local dev lo",
                    to.rsplit_once(':').unwrap().0.trim_matches(['[', ']']),
                    b.name
                ),
                "delivered to this host: routing is not what drops it",
            ],
        );
    }
    // The socket that counted them (its own drop counter, with its owner).
    let f = finding_with(&report, "xfrm", &format!("{A4} -> {B4}:5000"));
    assert_mentions(
        f,
        &[
            "ss: the socket's own drop counter grew",
            "udp 0.0.0.0:5000",
            "drops +5 (now 5)",
        ],
    );
    let sel = format!("src {A4}/32 dst {B4}/32 proto udp dport 5001");
    let f = finding_with(&report, "xfrm", &format!("{A4} -> {B4}:5001"));
    assert_eq!(f["drops"], 3, "{f:#}");
    assert_mentions(
        f,
        &[
            &format!("arrived without the esp the IPsec policy `{sel}` demands"),
            "tmpl proto esp mode transport",
            &format!("no state (SA) from {A4} to {B4}"),
            "XfrmInTmplMismatch +3",
            &format!("set up the SA on the sender ({A4})"),
            &format!("{prefix}ip xfrm policy delete dir in {sel}"),
        ],
    );
}

/// Replies from a server's port (53) to a client port of the receiver's ephemeral range
/// where no socket is left are housekeeping, said from the packet and the state (the
/// range read in that namespace, no socket on the port), over IPv4 and IPv6.
fn replies_to_a_client_port_whose_socket_is_gone_are_housekeeping() {
    let pair = Pair::new();
    let range = pair
        .b
        .exec(&["cat", "/proc/sys/net/ipv4/ip_local_port_range"]);
    let low: u16 = range.split_whitespace().next().unwrap().parse().unwrap();
    let port = low + 1234;
    let before = pair.b.snmp("Udp", "NoPorts");
    let report = diagnose(&["--port", &port.to_string()], || {
        pair.a.run(|| {
            for (from, to) in [
                (format!("{A4}:53"), format!("{B4}:{port}")),
                (format!("[{A6}]:53"), format!("[{B6}]:{port}")),
            ] {
                let s = UdpSocket::bind(&from).unwrap();
                for _ in 0..3 {
                    s.send_to(b"late answer", &to).unwrap();
                }
            }
        });
        reaches("Udp NoPorts", before + 3, || pair.b.snmp("Udp", "NoPorts"));
    });
    let findings = report["findings"].as_array().expect("findings");
    assert_eq!(findings.len(), 2, "{report:#}");
    for f in findings {
        assert_eq!(f["cause"], "no_listener", "{report:#}");
        assert_eq!(f["benign"], true, "{f:#}");
        assert_eq!(f["drops"], 3, "{f:#}");
        assert_mentions(
            f,
            &[
                &format!(
                    "to the client port {port} in netns {}, whose socket is gone",
                    pair.b.name
                ),
                &format!(
                    "port {port} is in netns {}'s ephemeral range {}",
                    pair.b.name,
                    range.split_whitespace().collect::<Vec<_>>().join("-")
                ),
            ],
        );
    }
}

/// The next sequence number `stream` sends (TCP_REPAIR's TCP_QUEUE_SEQ of its send
/// queue; the socket leaves repair mode without a window probe).
fn send_seq(stream: &TcpStream) -> u32 {
    use std::os::fd::AsRawFd;
    const TCP_REPAIR: i32 = 19;
    const TCP_REPAIR_QUEUE: i32 = 20;
    const TCP_QUEUE_SEQ: i32 = 21;
    const TCP_SEND_QUEUE: i32 = 2;
    const TCP_REPAIR_OFF_NO_WP: i32 = -1;
    let fd = stream.as_raw_fd();
    let set = |option: i32, value: i32| {
        // SAFETY: an int option, passed by pointer with its size, on a socket we hold.
        let r = unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                option,
                (&value as *const i32).cast(),
                std::mem::size_of::<i32>() as libc::socklen_t,
            )
        };
        assert_eq!(
            r,
            0,
            "setsockopt {option}: {}",
            std::io::Error::last_os_error()
        );
    };
    set(TCP_REPAIR, 1);
    set(TCP_REPAIR_QUEUE, TCP_SEND_QUEUE);
    let mut seq: u32 = 0;
    let mut len = std::mem::size_of::<u32>() as libc::socklen_t;
    // SAFETY: a u32 out-parameter with its length, on a socket we hold.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            TCP_QUEUE_SEQ,
            (&mut seq as *mut u32).cast(),
            &mut len,
        )
    };
    assert_eq!(r, 0, "TCP_QUEUE_SEQ: {}", std::io::Error::last_os_error());
    set(TCP_REPAIR, TCP_REPAIR_OFF_NO_WP);
    seq
}

/// The drop counter of `ns`'s TCP socket of the connection from `peer` (ss's skmem `d`).
fn connection_drops(ns: &Netns, peer: SocketAddr) -> u64 {
    let out = ns.exec(&["ss", "-H", "-t", "-n", "-m", "state", "connected"]);
    let mut lines = out.lines();
    while let Some(line) = lines.next() {
        if line.split_whitespace().nth(4) == Some(peer.to_string().as_str()) {
            let skmem = lines.next().unwrap_or_default();
            let d = skmem.split([',', ')']).find_map(|f| f.strip_prefix('d'));
            return d.and_then(|d| d.parse().ok()).unwrap_or(0);
        }
    }
    panic!("no connection from {peer} in {}: {out}", ns.name)
}

/// Segments outside an established connection's window (what a NAT that reuses a
/// 4-tuple, or a middlebox rewriting sequence numbers, delivers) are dropped at the socket,
/// with a reason no cause family knows: the finding names the connection whose own drop
/// counter grew by them, with its peer, state and owner, and its figure equals the
/// socket's own. Over IPv4 and IPv6.
fn segments_outside_a_connections_window_name_the_connection_that_counted_them() {
    if kernel_version() < (6, 11) {
        skip(
            "before 6.11 kfree_skb passes no rx_sk: a segment dropped at an established socket \
             has no device left, so no namespace to place it in (docs/usage.md)",
        );
    }
    for server in [format!("{B4}:8080"), format!("[{B6}]:8080")] {
        let pair = Pair::new();
        let server: SocketAddr = server.parse().unwrap();
        let listener = pair.b.run(|| TcpListener::bind(server).unwrap());
        let client = pair.a.run(|| TcpStream::connect(server).unwrap());
        let (_accepted, from) = listener.accept().unwrap();
        assert_eq!(from, client.local_addr().unwrap());
        // Half the sequence space away from what the client sends next: outside any window.
        let seq = send_seq(&client).wrapping_add(0x8000_0000);
        let before = connection_drops(&pair.b, from);
        let report = diagnose(&["--netns", &pair.b.path()], || {
            tcp_segments(&pair.a, from, server, TCP_ACK | TCP_PSH, seq, 5);
            reaches("the connection's drops", before + 5, || {
                connection_drops(&pair.b, from)
            });
        });
        let f = only_tcp_finding(&report);
        assert_eq!(f["drops"], 5, "{report:#}");
        let connection = format!("tcp {server} <- {from} (ESTAB) of ");
        assert_mentions(
            f,
            &[
                "the drop counter of 1 connection on port 8080 grew",
                &connection,
                &format!("(pid {}) drops +5", std::process::id()),
            ],
        );
        if f["cause"] == "other" {
            assert!(
                f["summary"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("; counted by the connection {connection}")),
                "{f:#}"
            );
        }
    }
}

droptrace_tests::root_tests!(
    nftables_rule_dropping_a_port_is_named_with_its_handle,
    iptables_statistic_random_drops_are_found,
    a_tbf_qdisc_dropping_is_found_with_its_statistics,
    a_too_small_mtu_on_the_receiving_side_is_named,
    a_tc_bpf_program_dropping_syns_is_named_with_its_id,
    a_tcx_program_is_named_with_the_process_holding_it,
    a_classic_tc_program_held_by_a_process_or_pinned_is_named_so,
    a_port_nothing_listens_on_is_no_listener,
    reverse_path_filtering_is_named_with_its_sysctls,
    a_full_receive_buffer_names_the_socket_and_its_owner,
    an_accept_queue_overflow_is_found_from_the_counters,
    an_xdp_program_dropping_is_named_with_its_mode,
    an_xdp_program_held_by_a_process_is_named_with_its_command_line,
    a_tc_program_attached_since_the_baseline_is_named_and_ranked_first,
    a_baseline_that_cannot_be_read_is_refused_with_a_clear_error,
    a_cgroup_skb_program_is_named_with_the_process_holding_it,
    a_chain_policy_of_drop_is_named_with_the_rule_that_admits,
    forwarding_disabled_is_named_with_its_sysctl_and_the_route_lookup,
    a_route_or_rule_that_refuses_is_named_with_the_kernels_lookup,
    a_veth_peers_smaller_mtu_in_a_namespace_not_given_is_named_exactly,
    without_btf_findings_say_what_is_unknown_and_print_no_placeholders,
    a_namespace_wide_counter_is_given_as_the_namespaces_total,
    drops_in_the_last_of_100_namespaces_are_diagnosed_with_the_rule,
    a_namespace_deleted_during_the_window_is_said_gone,
    hostile_names_never_reach_the_terminal_raw,
    drops_outside_the_list_are_named_by_the_counters_that_grew_with_them,
    a_listener_on_loopback_or_in_another_namespace_is_named,
    frames_to_a_wrong_mac_name_the_senders_neighbour_entry,
    ipsec_policies_refusing_packets_are_named_by_their_selector,
    replies_to_a_client_port_whose_socket_is_gone_are_housekeeping,
    late_tcp_segments_to_a_port_nothing_holds_are_housekeeping_from_their_flags,
    segments_outside_a_connections_window_name_the_connection_that_counted_them,
    an_unanswered_next_hop_is_named_by_its_failed_neighbour_entry,
    an_interface_whose_pair_end_is_down_is_named_with_it,
    a_socket_whose_own_filter_refuses_is_named_by_its_drop_counter,
);
