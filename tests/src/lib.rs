//! Helpers for the root integration tests: network namespaces made and removed by the
//! tests, traffic inside them, the kernel's own counters, and droptrace run as a process.
use std::{
    fs::File,
    io::{BufRead, BufReader, Read},
    os::fd::AsRawFd,
    path::PathBuf,
    process::{Child, Command, Output, Stdio},
    sync::{
        atomic::{AtomicU32, Ordering},
        mpsc, Arc, Mutex,
    },
    time::{Duration, Instant},
};

use serde_json::Value;

/// Whether the tests can run here; prints why not otherwise.
pub fn can_run(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        // Under `cargo xtask test` (which sets DROPTRACE_BIN) a skip would hide everything.
        assert!(
            std::env::var_os("DROPTRACE_BIN").is_none(),
            "{test} needs root: run `cargo xtask test` as root"
        );
        eprintln!("skipping {test}: needs root (run `cargo xtask test` as root)");
        return false;
    }
    true
}

pub fn droptrace_bin() -> PathBuf {
    std::env::var_os("DROPTRACE_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/droptrace"),
        PathBuf::from,
    )
}

/// Runs a command and returns its stdout; panics with its stderr on failure.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("starting {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A network namespace that lives as long as this value.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let name = format!(
            "dt{}-{}{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            tag
        );
        sh(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, args: &[&str]) -> String {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        sh(&full)
    }

    /// Runs `f` on a thread that has entered the namespace; sockets made there stay in it.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let file = File::open(self.path()).expect("open netns");
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: a valid namespace fd; setns affects only this thread.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .expect("netns thread")
        })
    }

    /// A counter from /proc/net/snmp in this namespace, e.g. ("Tcp", "OutRsts").
    pub fn snmp(&self, proto: &str, field: &str) -> u64 {
        let text = self.exec(&["cat", "/proc/net/snmp"]);
        snmp_value(&text, proto, field).unwrap_or_else(|| panic!("no {proto} {field} in snmp"))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Parses the header/value line pairs of /proc/net/snmp.
pub fn snmp_value(text: &str, proto: &str, field: &str) -> Option<u64> {
    let prefix = format!("{proto}:");
    let mut lines = text.lines().filter(|l| l.starts_with(&prefix));
    let names = lines.next()?;
    let values = lines.next()?;
    let i = names.split_whitespace().position(|n| n == field)?;
    values.split_whitespace().nth(i)?.parse().ok()
}

/// Makes `n` TCP connection attempts from `ns` (200 ms each); returns how many failed.
pub fn connect_attempts(ns: &Netns, to: std::net::SocketAddr, n: usize) -> usize {
    ns.run(|| {
        (0..n)
            .filter(|_| {
                std::net::TcpStream::connect_timeout(&to, Duration::from_millis(200)).is_err()
            })
            .count()
    })
}

/// Two namespaces joined by a veth pair: `a` is 10.77.0.1 / fd77::1 on `veth-a`,
/// `b` is 10.77.0.2 / fd77::2 on `veth-b`.
pub struct Pair {
    pub a: Netns,
    pub b: Netns,
}

pub const A4: &str = "10.77.0.1";
pub const B4: &str = "10.77.0.2";
pub const A6: &str = "fd77::1";
pub const B6: &str = "fd77::2";

impl Pair {
    pub fn new() -> Pair {
        let a = Netns::new("a");
        let b = Netns::new("b");
        sh(&[
            "ip", "link", "add", "veth-a", "netns", &a.name, "type", "veth", "peer", "name",
            "veth-b", "netns", &b.name,
        ]);
        for (ns, dev, v4, v6) in [(&a, "veth-a", A4, A6), (&b, "veth-b", B4, B6)] {
            ns.exec(&["ip", "addr", "add", &format!("{v4}/24"), "dev", dev]);
            ns.exec(&[
                "ip",
                "addr",
                "add",
                &format!("{v6}/64"),
                "dev",
                dev,
                "nodad",
            ]);
            ns.exec(&["ip", "link", "set", dev, "up"]);
        }
        Pair { a, b }
    }
}

impl Pair {
    /// A pair whose `veth-a` sends through a tight tbf qdisc (1 mbit, 8 KiB queue), so a
    /// UDP burst from `a` is dropped there (QDISC_DROP); `b` listens on UDP 5001, the
    /// returned socket.
    pub fn with_tbf() -> (Pair, std::net::UdpSocket) {
        let pair = Pair::new();
        pair.a.exec(&[
            "tc", "qdisc", "add", "dev", "veth-a", "root", "tbf", "rate", "1mbit", "burst", "4kb",
            "limit", "8kb",
        ]);
        let sink = pair
            .b
            .run(|| std::net::UdpSocket::bind("0.0.0.0:5001").expect("bind UDP 5001"));
        (pair, sink)
    }
}

impl Default for Pair {
    fn default() -> Self {
        Pair::new()
    }
}

/// droptrace running as a child process.
pub struct Droptrace {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl Droptrace {
    /// Starts droptrace and waits until it says it is attached.
    pub fn start(args: &[&str]) -> Droptrace {
        let mut child = Command::new(droptrace_bin())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", droptrace_bin().display()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        let mut reader = BufReader::new(child.stderr.take().expect("stderr"));
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                if line.starts_with("droptrace: watching") {
                    let _ = ready_tx.send(());
                }
                sink.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        if ready_rx.recv_timeout(Duration::from_secs(60)).is_err() {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "droptrace did not attach; stderr:\n{}",
                stderr.lock().unwrap()
            );
        }
        Droptrace { child, stderr }
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid")
    }

    /// Sends `signal` and waits (bounded) for droptrace to exit.
    pub fn stop(self, signal: i32) -> Output {
        // SAFETY: signalling our own child by its PID.
        unsafe { libc::kill(self.pid(), signal) };
        self.exit(
            Duration::from_secs(60),
            &format!("droptrace did not exit after signal {signal}"),
        )
    }

    /// Waits (bounded) for droptrace to stop by itself and parses its JSON output.
    pub fn wait_json(self) -> Value {
        let out = self.wait();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "droptrace failed: {}\n{stderr}",
            out.status
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "bad JSON ({e}): {}\nstderr:\n{stderr}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Waits (bounded) for droptrace to stop by itself.
    pub fn wait(self) -> Output {
        self.exit(Duration::from_secs(120), "droptrace did not stop by itself")
    }

    /// Waits up to `limit` for the exit (killing it and failing with `late` after that),
    /// then collects its output.
    fn exit(mut self, limit: Duration, late: &str) -> Output {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("{late}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stdout = Vec::new();
        if let Some(mut out) = self.child.stdout.take() {
            out.read_to_end(&mut stdout).expect("stdout");
        }
        std::thread::sleep(Duration::from_millis(50));
        let stderr = self.stderr.lock().unwrap().clone().into_bytes();
        Output {
            status,
            stdout,
            stderr,
        }
    }

    /// Stops with SIGINT and parses the JSON summary (run with `--format json`).
    pub fn stop_json(self) -> Value {
        let out = self.stop(libc::SIGINT);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "droptrace failed: {}\n{stderr}",
            out.status
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            text.lines().count(),
            1,
            "expected one JSON line, got:\n{text}\nstderr:\n{stderr}"
        );
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON ({e}): {text}"))
    }
}

impl Drop for Droptrace {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Groups of a JSON summary that match a predicate.
pub fn groups<'a>(summary: &'a Value, pred: impl Fn(&Value) -> bool + 'a) -> Vec<&'a Value> {
    summary["groups"]
        .as_array()
        .expect("groups array")
        .iter()
        .filter(|g| pred(g))
        .collect()
}

pub fn count_of(groups: &[&Value]) -> u64 {
    groups
        .iter()
        .map(|g| g["count"].as_u64().expect("count"))
        .sum()
}

/// Reads a counter until two reads a short while apart agree (packets in flight settled).
pub fn settled(mut read: impl FnMut() -> u64) -> u64 {
    let mut last = read();
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        let now = read();
        if now == last {
            return now;
        }
        last = now;
    }
    panic!("counter did not settle: {last}");
}

/// An nftables table `table` (family inet) in `ns` whose input chain drops TCP to `port`,
/// with a counter and the comment `{table}{port}` (read it with `nft_rule_packets`).
pub fn nft_drop_tcp_port(ns: &Netns, table: &str, port: u16) {
    ns.exec(&["nft", "add", "table", "inet", table]);
    ns.exec(&[
        "nft",
        &format!(
            "add chain inet {table} input {{ type filter hook input priority 0; policy accept; }}"
        ),
    ]);
    ns.exec(&[
        "nft",
        &format!(
            "add rule inet {table} input tcp dport {port} counter drop comment \"{table}{port}\""
        ),
    ]);
}

/// The packet counter of the nftables rule carrying `comment` in `table` (family inet).
pub fn nft_rule_packets(ns: &Netns, table: &str, comment: &str) -> u64 {
    let json = ns.exec(&["nft", "-j", "list", "table", "inet", table]);
    let v: Value = serde_json::from_str(&json).expect("nft json");
    for item in v["nftables"].as_array().expect("nftables") {
        let rule = &item["rule"];
        if rule["comment"].as_str() == Some(comment) {
            for expr in rule["expr"].as_array().expect("expr") {
                if let Some(p) = expr["counter"]["packets"].as_u64() {
                    return p;
                }
            }
        }
    }
    panic!("no rule with comment {comment} and a counter in {json}");
}

/// `dropped` of the root qdisc on `dev`, from `tc -s -j qdisc`.
pub fn qdisc_dropped(ns: &Netns, dev: &str) -> u64 {
    let json = ns.exec(&["tc", "-s", "-j", "qdisc", "show", "dev", dev]);
    let v: Value = serde_json::from_str(&json).expect("tc json");
    v.as_array()
        .expect("qdisc list")
        .iter()
        .find(|q| q["root"].as_bool() == Some(true))
        .and_then(|q| q["drops"].as_u64())
        .unwrap_or_else(|| panic!("no root qdisc drops in {json}"))
}

/// IDs of loaded BPF programs whose name starts with `droptrace`.
pub fn droptrace_programs() -> Vec<u64> {
    let json = sh(&["bpftool", "-j", "prog", "show"]);
    let v: Value = serde_json::from_str(&json).expect("bpftool json");
    v.as_array()
        .expect("program list")
        .iter()
        .filter(|p| {
            p["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("droptrace"))
        })
        .filter_map(|p| p["id"].as_u64())
        .collect()
}
