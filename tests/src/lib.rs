//! Helpers for the root integration tests: network namespaces made and removed by the
//! tests, traffic inside them, the kernel's own counters, and droptrace run as a process.
use std::{
    fs::File,
    io::{BufRead, BufReader, ErrorKind, Read},
    net::{SocketAddr, TcpStream},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::PathBuf,
    process::{Child, Command, ExitStatus, Output, Stdio},
    sync::{
        atomic::{AtomicU32, Ordering},
        mpsc, Arc, Mutex,
    },
    time::{Duration, Instant},
};

use serde_json::Value;

pub use harness::{missing, skip};

pub mod containerd;
pub mod harness;
pub mod http;
pub mod prometheus;
pub mod tmux;
pub mod xdp;

/// Runs `f` on a thread that has entered the network namespace at `path`; sockets made
/// there stay in it.
pub fn in_namespace<T: Send>(path: &std::path::Path, f: impl FnOnce() -> T + Send) -> T {
    let file = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
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

pub fn droptrace_bin() -> PathBuf {
    std::env::var_os("DROPTRACE_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/droptrace"),
        PathBuf::from,
    )
}

/// A directory for one test's files under the system's temporary directory, removed
/// when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("droptrace-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a test directory");
        TempDir(dir)
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
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
            "dt{:07}-{:02}{}",
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
        in_namespace(std::path::Path::new(&self.path()), f)
    }

    /// A counter from /proc/net/snmp in this namespace, e.g. ("Tcp", "OutRsts").
    pub fn snmp(&self, proto: &str, field: &str) -> u64 {
        let text = self.exec(&["cat", "/proc/net/snmp"]);
        snmp_value(&text, proto, field).unwrap_or_else(|| panic!("no {proto} {field} in snmp"))
    }

    /// A counter from /proc/net/netstat in this namespace, e.g. ("TcpExt", "ListenOverflows").
    pub fn netstat(&self, proto: &str, field: &str) -> u64 {
        let text = self.exec(&["cat", "/proc/net/netstat"]);
        snmp_value(&text, proto, field).unwrap_or_else(|| panic!("no {proto} {field} in netstat"))
    }

    /// A statistic of `dev` from `ip -s -j link`, e.g. ("tx", "dropped").
    pub fn link_stat(&self, dev: &str, dir: &str, field: &str) -> u64 {
        let json = self.exec(&["ip", "-s", "-j", "link", "show", "dev", dev]);
        let v: Value = serde_json::from_str(&json).expect("ip link json");
        v[0]["stats64"][dir][field]
            .as_u64()
            .unwrap_or_else(|| panic!("no {dir} {field} for {dev} in {json}"))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // A test may have deleted it already (to see droptrace say it is gone).
        if std::path::Path::new(&self.path()).exists() {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.name])
                .status();
        }
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

/// How long one TCP connection attempt waits for an answer.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(200);

/// How long a test waits for something it needs before it fails.
pub const WAIT_LIMIT: Duration = Duration::from_secs(30);

/// How much slower than this machine the tests run: `DROPTRACE_TEST_TIME_SCALE` (an
/// integer; `cargo xtask vmtest` sets it for guests under emulation), 1 without it. Only
/// windows a test chooses itself (diagnose's `--duration`) are scaled, never a wait for
/// what a test needs.
pub fn time_scale() -> u32 {
    std::env::var("DROPTRACE_TEST_TIME_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n >= 1)
        .unwrap_or(1)
}

/// The running kernel's version (major, minor), from its release (`uname -r`).
pub fn kernel_version() -> (u32, u32) {
    let release = sh(&["uname", "-r"]);
    let mut numbers = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().unwrap_or(0));
    (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0))
}

/// Whether the running kernel answers the netdev family's queue statistics dump
/// (NETDEV_CMD_QSTATS_GET came in Linux 6.9; the family itself in 6.3, so Debian's 6.1
/// has none): what droptrace must say about qstats, decided apart from droptrace.
pub fn kernel_has_qstats() -> bool {
    kernel_version() >= (6, 9)
}

/// The interfaces of the namespace the caller is in that are up (IFF_UP in
/// /sys/class/net/NAME/flags) and whose driver is `driver` (NAME/device/driver): the
/// kernel dumps the queue statistics of devices that are up only.
pub fn up_interfaces_of_driver(driver: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/sys/class/net") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let e = e.ok()?;
        let link = std::fs::read_link(e.path().join("device/driver")).ok()?;
        let flags = std::fs::read_to_string(e.path().join("flags")).ok()?;
        let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).ok()?;
        (link.file_name()? == driver && flags & 1 != 0)
            .then(|| e.file_name().to_string_lossy().into_owned())
    })
    .collect()
}

/// Asserts what droptrace said of queue statistics (its stderr at the start, and
/// `watched` of its JSON summary) fits the kernel: where it has them, they were read,
/// on at least `at_least` virtio_net interfaces (virtio_net gives them from 6.10); where
/// it has no netdev family, or the family no QSTATS_GET, it said so and the JSON has no
/// figure.
pub fn assert_qstats_said(stderr: &str, watched: &Value, at_least: u64) {
    let at_least = if kernel_version() >= (6, 10) {
        at_least
    } else {
        0
    };
    if kernel_has_qstats() {
        let read = watched["qstats_interfaces"].as_u64();
        assert!(
            read >= Some(at_least),
            "qstats on at least {at_least} interfaces: {watched}\n{stderr}"
        );
        if at_least > 0 {
            assert!(
                stderr.contains("queue statistics (qstats) read on"),
                "{stderr}"
            );
        }
    } else if kernel_version() < (6, 3) {
        assert!(
            stderr.contains("this kernel has no netdev generic-netlink family"),
            "{stderr}"
        );
        assert!(watched.get("qstats_interfaces").is_none(), "{watched}");
    } else {
        // The family without its QSTATS_GET (6.3 to 6.8): refused as a command it does
        // not know, and said so.
        assert!(
            stderr.contains("this kernel's netdev family has no QSTATS_GET"),
            "{stderr}"
        );
        assert!(watched.get("qstats_interfaces").is_none(), "{watched}");
    }
}

/// What TCP connection attempts ended with.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Attempts {
    /// The handshake completed.
    pub connected: usize,
    /// A reset came back (ECONNREFUSED): the SYN reached a closed port.
    pub refused: usize,
    /// No answer within [`ATTEMPT_TIMEOUT`].
    pub timed_out: usize,
    /// Any other error: the SYN may never have left.
    pub other: Vec<String>,
}

impl Attempts {
    fn add(&mut self, result: std::io::Result<TcpStream>) {
        match result {
            Ok(_) => self.connected += 1,
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => self.refused += 1,
            Err(e) if e.kind() == ErrorKind::TimedOut => self.timed_out += 1,
            Err(e) => self.other.push(e.to_string()),
        }
    }
}

/// Makes `n` TCP connection attempts from `ns` (each waiting up to [`ATTEMPT_TIMEOUT`]) and
/// says how each ended; the caller asserts what it expects (e.g. `refused == n` for a
/// closed port, `connected == n` for a listener).
pub fn connect_attempts(ns: &Netns, to: SocketAddr, n: usize) -> Attempts {
    ns.run(|| {
        let mut attempts = Attempts::default();
        for _ in 0..n {
            attempts.add(TcpStream::connect_timeout(&to, ATTEMPT_TIMEOUT));
        }
        attempts
    })
}

/// Makes `n` TCP connection attempts from `ns` to a port where the receiver drops the
/// SYN: each must go unanswered, and the SYNs count as sent only once `counter` (the
/// receiver's own count of those drops, e.g. an nft rule counter) has moved by `n`. Each
/// attempt sends exactly one SYN: its socket is closed long before a retransmission (1 s).
/// Returns `n` (anything else panics with what happened).
pub fn dropped_syns(
    ns: &Netns,
    to: SocketAddr,
    n: usize,
    what: &str,
    mut counter: impl FnMut() -> u64,
) -> usize {
    let before = counter();
    let attempts = connect_attempts(ns, to, n);
    assert_eq!(
        attempts.timed_out, n,
        "every SYN to {to} should go unanswered: {attempts:?}"
    );
    reaches(
        &format!("{what} after {n} SYNs to {to}"),
        before + u64::try_from(n).expect("n"),
        counter,
    );
    n
}

/// Pins the calling thread to the CPU it runs on. Packets a pinned thread sends through a
/// veth pair queue on that one CPU's backlog and are received in the order sent, so a
/// marker sent last and seen received means every packet before it has been processed.
pub fn pin_to_this_cpu() {
    // SAFETY: sched_getcpu has no preconditions.
    let cpu = unsafe { libc::sched_getcpu() };
    assert!(
        cpu >= 0,
        "sched_getcpu: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET stays within it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is a CPU number the kernel gave, within the set's CPU_SETSIZE bits.
    unsafe { libc::CPU_SET(usize::try_from(cpu).expect("cpu"), &mut set) };
    // SAFETY: a valid set for the calling thread (pid 0).
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &raw const set) };
    assert_eq!(
        rc,
        0,
        "sched_setaffinity: {}",
        std::io::Error::last_os_error()
    );
}

/// Polls `probe` (bounded by [`WAIT_LIMIT`]) until it gives a value; panics naming `what`.
pub fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT_LIMIT;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "waited {WAIT_LIMIT:?} for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Polls a counter (bounded by [`WAIT_LIMIT`]) until it is at least `target`; returns the
/// value read then. Callers that know the exact figure still assert it.
pub fn reaches(what: &str, target: u64, mut read: impl FnMut() -> u64) -> u64 {
    let deadline = Instant::now() + WAIT_LIMIT;
    loop {
        let now = read();
        if now >= target {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "waited {WAIT_LIMIT:?} for {what} to reach {target}; it stays at {now}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Two namespaces joined by a veth pair: `a` is 10.77.0.1 / fd77::1 on `veth-a`,
/// `b` is 10.77.0.2 / fd77::2 on `veth-b`. Each side knows the other's MAC address as a
/// permanent neighbour (ARP and IPv6 alike), so no packet of a test ever waits for
/// neighbour discovery.
pub struct Pair {
    pub a: Netns,
    pub b: Netns,
    /// The sockets the path probes went to, open as long as the pair: a probe still in
    /// flight when its socket closed would be a drop (NO_SOCKET) in some test's window.
    _probes: Vec<std::net::UdpSocket>,
}

pub const A4: &str = "10.77.0.1";
pub const B4: &str = "10.77.0.2";
pub const A6: &str = "fd77::1";
pub const B6: &str = "fd77::2";

impl Pair {
    /// Makes the pair and returns once it carries traffic: both ends operationally up,
    /// the IPv6 addresses usable (not tentative), the permanent neighbour entries in
    /// place, and a datagram received each way in both families.
    pub fn new() -> Pair {
        let a = Netns::new("a");
        let b = Netns::new("b");
        sh(&[
            "ip", "link", "add", "veth-a", "netns", &a.name, "type", "veth", "peer", "name",
            "veth-b", "netns", &b.name,
        ]);
        let ends = [(&a, "veth-a", A4, A6), (&b, "veth-b", B4, B6)];
        for (ns, dev, v4, v6) in ends {
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
        for (ns, dev, _, v6) in ends {
            wait_for(&format!("{dev} in {} to be up", ns.name), || {
                link_ready(ns, dev, v6).then_some(())
            });
        }
        let mac = |ns: &Netns, dev: &str| {
            let json = ns.exec(&["ip", "-j", "link", "show", "dev", dev]);
            let v: Value = serde_json::from_str(&json).expect("ip link json");
            v[0]["address"]
                .as_str()
                .unwrap_or_else(|| panic!("no MAC address for {dev} in {json}"))
                .to_owned()
        };
        let (mac_a, mac_b) = (mac(&a, "veth-a"), mac(&b, "veth-b"));
        for (ns, dev, peer4, peer6, peer_mac) in [
            (&a, "veth-a", B4, B6, &mac_b),
            (&b, "veth-b", A4, A6, &mac_a),
        ] {
            for addr in [peer4, peer6] {
                ns.exec(&[
                    "ip",
                    "neigh",
                    "replace",
                    addr,
                    "lladdr",
                    peer_mac,
                    "dev",
                    dev,
                    "nud",
                    "permanent",
                ]);
            }
            let json = ns.exec(&["ip", "-j", "neigh", "show", "dev", dev]);
            let v: Value = serde_json::from_str(&json).expect("ip neigh json");
            for addr in [peer4, peer6] {
                assert!(
                    v.as_array().expect("neighbour list").iter().any(|n| {
                        n["dst"] == addr
                            && n["lladdr"] == peer_mac.as_str()
                            && n["state"]
                                .as_array()
                                .is_some_and(|s| s.iter().any(|s| s == "PERMANENT"))
                    }),
                    "no permanent neighbour {addr} on {dev}: {json}"
                );
            }
        }
        let probes = [(&a, &b, B4), (&a, &b, B6), (&b, &a, A4), (&b, &a, A6)]
            .into_iter()
            .map(|(from, to, addr)| probe(from, to, addr))
            .collect();
        Pair {
            a,
            b,
            _probes: probes,
        }
    }
}

/// Whether `dev` in `ns` is operationally up with `v6` usable (not tentative).
fn link_ready(ns: &Netns, dev: &str, v6: &str) -> bool {
    let link: Value =
        serde_json::from_str(&ns.exec(&["ip", "-j", "link", "show", "dev", dev])).expect("json");
    let addrs: Value =
        serde_json::from_str(&ns.exec(&["ip", "-j", "-6", "addr", "show", "dev", dev]))
            .expect("json");
    let usable = addrs[0]["addr_info"].as_array().is_some_and(|infos| {
        infos.iter().any(|i| {
            i["local"] == v6 && i["tentative"].as_bool() != Some(true) && i["dadfailed"].is_null()
        })
    });
    link[0]["operstate"] == "UP" && usable
}

/// Sends UDP datagrams from `from` to a socket on `addr` in `to` until one arrives (bounded):
/// the path works end to end. (Packets sent before a new veth is operationally up are lost:
/// an IPv6 neighbour solicitation lost that way left the first SYNs waiting a second for
/// the retry.) A datagram to an open socket is no drop; the socket is returned, to be kept
/// open.
fn probe(from: &Netns, to: &Netns, addr: &str) -> std::net::UdpSocket {
    let bind: SocketAddr = if addr.contains(':') {
        format!("[{addr}]:0")
    } else {
        format!("{addr}:0")
    }
    .parse()
    .expect("address");
    let sink = to.run(|| std::net::UdpSocket::bind(bind).expect("bind the probe's sink"));
    sink.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("read timeout");
    let dest = sink.local_addr().expect("sink address");
    from.run(|| {
        let any = if dest.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let tx = std::net::UdpSocket::bind(any).expect("bind the probe's sender");
        wait_for(&format!("a datagram from {} to {dest}", from.name), || {
            let _ = tx.send_to(b"probe", dest);
            let mut buf = [0u8; 8];
            sink.recv(&mut buf).ok().map(|_| ())
        });
    });
    sink
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

/// The tc program that drops every TCP SYN (section `classifier`, program `drop_syn`),
/// built from droptrace-ebpf by `cargo xtask build-ebpf`.
pub const DROP_SYN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/drop_syn.bpf.o");
/// The XDP program that drops UDP to port 6001 (section `xdp`, program `drop_udp_6001`).
pub const DROP_UDP_XDP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/drop_udp_xdp.bpf.o");

impl Pair {
    /// A pair whose `veth-b` drops every TCP SYN it receives with the tc program
    /// [`DROP_SYN`] (clsact ingress, direct action): TC_ACT_SHOT, no action module needed.
    pub fn with_tc_drop_syn() -> Pair {
        let pair = Pair::new();
        pair.attach_tc_drop_syn();
        pair
    }

    /// Attaches the committed SYN-dropping tc program at `veth-b`'s ingress (a clsact
    /// qdisc first), as a network component would.
    pub fn attach_tc_drop_syn(&self) {
        self.b
            .exec(&["tc", "qdisc", "add", "dev", "veth-b", "clsact"]);
        self.b.exec(&[
            "tc",
            "filter",
            "add",
            "dev",
            "veth-b",
            "ingress",
            "bpf",
            "da",
            "obj",
            DROP_SYN,
            "sec",
            "classifier",
        ]);
    }
}

impl Pair {
    /// A pair where an nftables rule in `b` (table `dt`, counter `dt1678`) drops TCP to
    /// 1678, on which `b` listens (the returned listener).
    pub fn with_nft_drop_on_1678() -> (Pair, std::net::TcpListener) {
        let pair = Pair::new();
        nft_drop_tcp_port(&pair.b, "dt", 1678);
        let listener = pair
            .b
            .run(|| std::net::TcpListener::bind("0.0.0.0:1678").expect("bind TCP 1678"));
        (pair, listener)
    }

    /// `n` SYNs from `a` to `b`:1678, each dropped by the rule of
    /// [`Pair::with_nft_drop_on_1678`]; returns the rule's counter once it has counted them.
    pub fn nft_dropped_syns(&self, n: usize) -> u64 {
        dropped_syns(
            &self.a,
            format!("{B4}:1678").parse().expect("address"),
            n,
            "the nft rule counter",
            || nft_rule_packets(&self.b, "dt", "dt1678"),
        );
        nft_rule_packets(&self.b, "dt", "dt1678")
    }

    /// Floods UDP from `a` to `b`'s port 5001 through the tbf of [`Pair::with_tbf`]: 30,000
    /// datagrams of 1000 bytes, most of them dropped by the qdisc.
    pub fn flood_through_tbf(&self) {
        self.flood_through_tbf_to_ports(1);
    }

    /// Sends `n` Ethernet frames from `a`'s veth to `b` with ethertype IPv4 whose
    /// header says IP version 6: `b`'s ip_rcv drops them (a malformed header).
    pub fn send_ipv4_frames_with_version_6(&self, n: usize) {
        let mac_b = self.b.exec(&["cat", "/sys/class/net/veth-b/address"]);
        let mac: Vec<u8> = mac_b
            .trim()
            .split(':')
            .map(|x| u8::from_str_radix(x, 16).expect("MAC"))
            .collect();
        self.a.run(|| {
            // SAFETY: plain socket calls with valid pointers and lengths.
            unsafe {
                let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
                assert!(fd >= 0, "AF_PACKET: {}", std::io::Error::last_os_error());
                let ifindex = libc::if_nametoindex(c"veth-a".as_ptr());
                assert!(ifindex != 0, "veth-a");
                let mut addr: libc::sockaddr_ll = std::mem::zeroed();
                addr.sll_family = libc::AF_PACKET as u16;
                addr.sll_ifindex = ifindex as i32;
                addr.sll_halen = 6;
                addr.sll_addr[..6].copy_from_slice(&mac);
                let mut frame = Vec::new();
                frame.extend_from_slice(&mac);
                frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 1]);
                frame.extend_from_slice(&[0x08, 0x00]);
                // A 20-byte "IPv4" header whose version nibble is 6.
                frame.extend_from_slice(&[0x65, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0]);
                frame.extend_from_slice(&[10, 77, 0, 1, 10, 77, 0, 2]);
                frame.extend_from_slice(&[0; 8]);
                for _ in 0..n {
                    let sent = libc::sendto(
                        fd,
                        frame.as_ptr().cast(),
                        frame.len(),
                        0,
                        (&raw const addr).cast(),
                        std::mem::size_of::<libc::sockaddr_ll>() as u32,
                    );
                    assert_eq!(
                        sent,
                        frame.len() as isize,
                        "{}",
                        std::io::Error::last_os_error()
                    );
                }
                libc::close(fd);
            }
        });
    }

    /// [`Pair::flood_through_tbf`], each datagram to the next of `ports` ports from 5001.
    pub fn flood_through_tbf_to_ports(&self, ports: u16) {
        self.a.run(|| {
            let sock = std::net::UdpSocket::bind("0.0.0.0:0").expect("bind");
            let payload = [0x5a_u8; 1000];
            let mut to: std::net::SocketAddr = format!("{B4}:5001").parse().expect("address");
            for i in 0..30_000_u32 {
                to.set_port(5001 + (i % u32::from(ports.max(1))) as u16);
                // Drops make sendto fail now and then; the qdisc counts them.
                let _ = sock.send_to(&payload, to);
            }
        });
    }
}

impl Default for Pair {
    fn default() -> Self {
        Pair::new()
    }
}

/// Waits up to `limit` for `child` to exit, without polling: a pidfd becomes readable when
/// the process ends. Returns its status (the child reaped), or `None` if it still runs.
pub fn wait_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let pid = libc::pid_t::try_from(child.id()).expect("pid");
    // SAFETY: pidfd_open on the PID of our own child, which is not reaped yet.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    assert!(
        raw >= 0,
        "pidfd_open({pid}): {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: pidfd_open returned a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(i32::try_from(raw).expect("fd")) };
    let deadline = Instant::now() + limit;
    loop {
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = libc::c_int::try_from(left.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&raw mut pfd, 1, ms) };
        if rc > 0 {
            return Some(child.wait().expect("wait"));
        }
        if rc == 0 {
            return None;
        }
        let err = std::io::Error::last_os_error();
        assert_eq!(err.kind(), ErrorKind::Interrupted, "poll on a pidfd: {err}");
    }
}

/// What the thread reading droptrace's stderr reports.
enum StderrEvent {
    /// The "droptrace: watching" line: attached.
    Watching,
    /// End of file: every process holding the pipe has closed it.
    Closed,
}

/// droptrace running as a child process.
pub struct Droptrace {
    child: Child,
    stderr: Arc<Mutex<String>>,
    events: mpsc::Receiver<StderrEvent>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Droptrace {
    /// Starts droptrace and waits until it says it is attached.
    pub fn start(args: &[&str]) -> Droptrace {
        let mut cmd = Command::new(droptrace_bin());
        cmd.args(args);
        Droptrace::spawn(cmd)
    }

    /// Starts `droptrace record -o FILE ARGS...` and waits until it is attached; stop it
    /// with [`Droptrace::stop`] (SIGINT ends a recording cleanly).
    pub fn record(file: &str, args: &[&str]) -> Droptrace {
        let mut cmd = Command::new(droptrace_bin());
        cmd.args(["record", "-o", file]).args(args);
        Droptrace::spawn(cmd)
    }

    /// Starts droptrace as if the kernel had no BTF: in a mount namespace of its own,
    /// /sys/kernel/btf/vmlinux is covered by an empty file (nothing changes for the host).
    pub fn start_without_btf(args: &[&str]) -> Droptrace {
        let mut cmd = Command::new("unshare");
        cmd.args([
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            "mount --bind /dev/null /sys/kernel/btf/vmlinux && exec \"$0\" \"$@\"",
        ]);
        cmd.arg(droptrace_bin()).args(args);
        Droptrace::spawn(cmd)
    }

    /// Starts `cmd` (droptrace, perhaps through a wrapper that redirects its output) and
    /// waits until it says it is attached.
    pub fn spawn_command(cmd: Command) -> Droptrace {
        Droptrace::spawn(cmd)
    }

    /// Starts droptrace by `cmd` (which runs it some other way: in a container, under
    /// another tool) and waits until it says it is attached.
    pub fn spawn(mut cmd: Command) -> Droptrace {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", droptrace_bin().display()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, events) = mpsc::channel();
        let mut pipe = BufReader::new(child.stderr.take().expect("stderr"));
        let sink = Arc::clone(&stderr);
        let reader = std::thread::spawn(move || {
            let mut line = String::new();
            while pipe.read_line(&mut line).unwrap_or(0) > 0 {
                sink.lock().unwrap().push_str(&line);
                if line.starts_with("droptrace: watching") {
                    let _ = tx.send(StderrEvent::Watching);
                }
                line.clear();
            }
            let _ = tx.send(StderrEvent::Closed);
        });
        let attached = matches!(
            events.recv_timeout(Duration::from_secs(60)),
            Ok(StderrEvent::Watching)
        );
        let mut dt = Droptrace {
            child,
            stderr,
            events,
            reader: Some(reader),
        };
        if !attached {
            let _ = dt.child.kill();
            let _ = dt.child.wait();
            dt.join_stderr();
            panic!(
                "droptrace did not attach; stderr:\n{}",
                dt.stderr.lock().unwrap()
            );
        }
        dt
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid")
    }

    /// What droptrace has said on stderr so far.
    pub fn stderr_so_far(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The address `droptrace serve` says it serves on (`serving http://ADDR/metrics`).
    pub fn serving(&self) -> std::net::SocketAddr {
        let text = self.stderr_so_far();
        let addr = text
            .split("serving http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_else(|| panic!("no `serving http://` in: {text}"));
        addr.parse().unwrap_or_else(|e| panic!("`{addr}`: {e}"))
    }

    /// Stops droptrace with SIGSTOP (a consumer that falls behind) and waits until every
    /// one of its threads is stopped (state `T` in /proc).
    pub fn pause(&self) {
        // SAFETY: signalling our own child by its PID.
        unsafe { libc::kill(self.pid(), libc::SIGSTOP) };
        let tasks = format!("/proc/{}/task", self.pid());
        wait_for("every droptrace thread to stop", || {
            std::fs::read_dir(&tasks)
                .expect("droptrace's tasks")
                .all(|task| {
                    let stat = std::fs::read_to_string(task.expect("task").path().join("stat"))
                        .unwrap_or_default();
                    // The state follows the parenthesised command name.
                    stat.rsplit_once(") ")
                        .is_some_and(|(_, rest)| rest.starts_with('T'))
                })
                .then_some(())
        });
    }

    /// Lets a paused droptrace go on (SIGCONT resumes it before `kill` returns).
    pub fn resume(&self) {
        // SAFETY: signalling our own child by its PID.
        unsafe { libc::kill(self.pid(), libc::SIGCONT) };
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
    /// then collects its output: stdout to its end, stderr once the reading thread has
    /// seen the pipe close and finished.
    fn exit(mut self, limit: Duration, late: &str) -> Output {
        // Read while waiting: an output larger than the pipe would block the exit.
        let reader = self.child.stdout.take().map(|mut out| {
            std::thread::spawn(move || {
                let mut stdout = Vec::new();
                out.read_to_end(&mut stdout).expect("stdout");
                stdout
            })
        });
        let Some(status) = wait_exit(&mut self.child, limit) else {
            let _ = self.child.kill();
            let _ = self.child.wait();
            panic!("{late}; stderr:\n{}", self.stderr.lock().unwrap());
        };
        let stdout = reader
            .map(|r| r.join().expect("the stdout reader"))
            .unwrap_or_default();
        self.join_stderr();
        let stderr = self.stderr.lock().unwrap().clone().into_bytes();
        Output {
            status,
            stdout,
            stderr,
        }
    }

    /// Waits (bounded) until the stderr thread has read the pipe to its end, and joins it.
    fn join_stderr(&mut self) {
        let deadline = Instant::now() + WAIT_LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(StderrEvent::Watching) => continue,
                Ok(StderrEvent::Closed) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                    "droptrace's stderr stayed open {WAIT_LIMIT:?} after it exited; so far:\n{}",
                    self.stderr.lock().unwrap()
                ),
            }
        }
        if let Some(reader) = self.reader.take() {
            reader.join().expect("stderr reader thread");
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

/// The root qdisc on `dev`, from `tc -s -j qdisc`.
fn root_qdisc(ns: &Netns, dev: &str) -> Value {
    let json = ns.exec(&["tc", "-s", "-j", "qdisc", "show", "dev", dev]);
    let v: Value = serde_json::from_str(&json).expect("tc json");
    v.as_array()
        .expect("qdisc list")
        .iter()
        .find(|q| q["root"].as_bool() == Some(true))
        .cloned()
        .unwrap_or_else(|| panic!("no root qdisc in {json}"))
}

/// `dropped` of the root qdisc on `dev`, from `tc -s -j qdisc`.
pub fn qdisc_dropped(ns: &Netns, dev: &str) -> u64 {
    let q = root_qdisc(ns, dev);
    q["drops"]
        .as_u64()
        .unwrap_or_else(|| panic!("no drops in {q}"))
}

/// Waits (bounded) until the root qdisc on `dev` has sent everything it queued, then
/// returns its `dropped`: a qdisc drops only on enqueue, so with an empty queue and the
/// senders done, the figure is final.
pub fn qdisc_dropped_once_empty(ns: &Netns, dev: &str) -> u64 {
    wait_for(&format!("the root qdisc on {dev} to empty"), || {
        let q = root_qdisc(ns, dev);
        (q["qlen"] == 0 && q["backlog"] == 0).then(|| q["drops"].as_u64().expect("drops"))
    })
}

/// `drops` of the clsact qdisc on `dev`: what tc programs there dropped (TC_ACT_SHOT).
pub fn clsact_dropped(ns: &Netns, dev: &str) -> u64 {
    let json = ns.exec(&["tc", "-s", "-j", "qdisc", "show", "dev", dev]);
    let v: Value = serde_json::from_str(&json).expect("tc json");
    v.as_array()
        .expect("qdisc list")
        .iter()
        .find(|q| q["kind"] == "clsact")
        .and_then(|q| q["drops"].as_u64())
        .unwrap_or_else(|| panic!("no clsact drops in {json}"))
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

/// Waits (bounded) until no program in `ids` is loaded any more. The kernel frees a
/// program only after its link is gone, an RCU grace period after droptrace closed it, so
/// a program can still be listed a moment after droptrace's exit; one that stays was leaked.
pub fn wait_unloaded(what: &str, ids: &[u64]) {
    let deadline = Instant::now() + WAIT_LIMIT;
    loop {
        let after = droptrace_programs();
        if ids.iter().all(|id| !after.contains(id)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "programs {ids:?} still loaded {WAIT_LIMIT:?} after {what}: {after:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

// `droptrace diagnose` run around traffic, and what its findings say.

/// Seconds of diagnose's window on this machine (times `time_scale()` under emulation).
pub const DIAGNOSE_WINDOW_SECS: u64 = 3;

/// Starts `droptrace diagnose`, makes the drops once it watches, returns its report.
/// `traffic` returns once the kernel has seen every packet it sent; that must happen
/// within the window, or the report cannot hold all of them.
pub fn diagnose(args: &[&str], traffic: impl FnOnce()) -> serde_json::Value {
    diagnose_with(Droptrace::start, args, traffic)
}

pub fn diagnose_with(
    start: fn(&[&str]) -> Droptrace,
    args: &[&str],
    traffic: impl FnOnce(),
) -> serde_json::Value {
    let window = std::time::Duration::from_secs(DIAGNOSE_WINDOW_SECS * u64::from(time_scale()));
    let secs = window.as_secs().to_string();
    let mut all = vec!["diagnose", "--duration", &secs, "--format", "json"];
    all.extend_from_slice(args);
    let dt = start(&all);
    let started = std::time::Instant::now();
    traffic();
    let took = started.elapsed();
    assert!(
        took < window,
        "the traffic took {took:?}, longer than the {window:?} window"
    );
    let report = dt.wait_json();
    eprintln!("report: {report:#}");
    report
}

pub fn top(report: &serde_json::Value) -> &serde_json::Value {
    let findings = report["findings"].as_array().expect("findings");
    assert!(!findings.is_empty(), "no findings: {report:#}");
    &findings[0]
}

pub fn evidence(f: &serde_json::Value) -> String {
    f["evidence"]
        .as_array()
        .expect("evidence")
        .iter()
        .map(|e| e.as_str().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn assert_mentions(f: &serde_json::Value, needles: &[&str]) {
    let text = format!("{}\n{}\n{}", f["summary"], evidence(f), f["fix"]);
    for n in needles {
        assert!(text.contains(n), "`{n}` missing from finding:\n{f:#}");
    }
}

/// A BPF map a process holds open, with the kernel memory it is charged for.
#[derive(Debug)]
pub struct MapMemory {
    pub name: String,
    pub kind: String,
    pub max_entries: u64,
    /// `memlock` of the map's fdinfo: what the kernel charges for it (and what
    /// `bpftool map show` calls bytes_memlock).
    pub memlock: u64,
}

/// The BPF maps process `pid` holds open (each once), from its fdinfo; names from bpftool.
pub fn bpf_maps_of(pid: i32) -> Vec<MapMemory> {
    let mut ids = std::collections::BTreeMap::new();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).expect("fd list");
    for fd in fds.flatten() {
        if std::fs::read_link(fd.path()).ok().as_deref()
            != Some(std::path::Path::new("anon_inode:bpf-map"))
        {
            continue;
        }
        let Ok(info) = std::fs::read_to_string(format!(
            "/proc/{pid}/fdinfo/{}",
            fd.file_name().to_string_lossy()
        )) else {
            continue;
        };
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok())
        };
        if let (Some(id), Some(memlock)) = (field("map_id:"), field("memlock:")) {
            ids.insert(id, memlock);
        }
    }
    ids.into_iter()
        .map(|(id, memlock)| {
            let v: Value = serde_json::from_str(&sh(&[
                "bpftool",
                "-j",
                "map",
                "show",
                "id",
                &id.to_string(),
            ]))
            .expect("bpftool json");
            MapMemory {
                name: v["name"].as_str().unwrap_or("?").to_owned(),
                kind: v["type"].as_str().unwrap_or("?").to_owned(),
                max_entries: v["max_entries"].as_u64().unwrap_or(0),
                memlock,
            }
        })
        .collect()
}

/// The machine's possible CPUs: what per-CPU maps are sized by.
pub fn possible_cpus() -> usize {
    let text = std::fs::read_to_string("/sys/devices/system/cpu/possible").expect("possible CPUs");
    text.trim()
        .split(',')
        .map(|range| match range.split_once('-') {
            Some((a, b)) => b.parse::<usize>().expect("cpu") - a.parse::<usize>().expect("cpu") + 1,
            None => 1,
        })
        .sum()
}
