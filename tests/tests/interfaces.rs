//! The interfaces' own drop counters beside kfree_skb's drops: a veth whose peer's MTU is
//! smaller than what it is given to send drops it (`veth_xmit`'s tx_dropped, counted so
//! on every kernel from 6.1; a peer that is down drops at the noop qdisc instead, which
//! 6.1 does not count in tx_dropped); droptrace's row of that counter equals the
//! kernel's own growth of it (`ip -s -s link`, /sys/class/net), in the JSON summary and in
//! `serve`'s series, and its drops are said to be also kfree_skb's (they are: the same
//! packets are freed there, and counted there once). A native XDP program dropping on a
//! veth: the driver's own per-queue counter of XDP drops (`ethtool -S`) grows by the
//! frames sent, and the program is counted among those watched. The machine's own
//! interfaces are read without error, their queue statistics (qstats) too where the
//! kernel has them (every virtio_net's that is up), and a kernel without them says so.
use std::{
    net::UdpSocket,
    os::fd::{FromRawFd, OwnedFd},
};

use droptrace_tests::{http, *};
use serde_json::Value;

/// Datagrams sent into the veth whose peer takes less.
const SENT: u64 = 25;
const DEV: &str = "dtifa";
const PEER: &str = "dtifb";

/// Bytes of each datagram: more than the peer's MTU takes, less than `DEV`'s (no
/// fragments).
const DATAGRAM: usize = 1400;

/// A namespace with a veth `DEV` (MTU 1500) and its peer (MTU 1280), both up: every
/// datagram of `DATAGRAM` bytes sent on `DEV` is too big for the peer and dropped
/// (tx_dropped). The neighbour is static, so no ARP is ever needed; no IPv6 address is
/// made, so nothing else is sent.
fn veth_whose_peer_takes_less() -> Netns {
    let ns = Netns::new("if");
    ns.exec(&[
        "ip", "link", "add", DEV, "type", "veth", "peer", "name", PEER,
    ]);
    for dev in [DEV, PEER] {
        ns.exec(&["ip", "link", "set", dev, "addrgenmode", "none"]);
    }
    ns.exec(&["ip", "link", "set", PEER, "mtu", "1280"]);
    ns.exec(&["ip", "addr", "add", "10.251.0.1/24", "dev", DEV]);
    ns.exec(&["ip", "link", "set", PEER, "up"]);
    ns.exec(&["ip", "link", "set", DEV, "up"]);
    ns.exec(&[
        "ip",
        "neigh",
        "add",
        "10.251.0.2",
        "lladdr",
        "02:00:00:00:00:02",
        "dev",
        DEV,
        "nud",
        "permanent",
    ]);
    ns
}

fn sysfs_tx_dropped(ns: &Netns) -> u64 {
    let path = format!("/sys/class/net/{DEV}/statistics/tx_dropped");
    ns.exec(&["cat", &path]).trim().parse().expect("tx_dropped")
}

/// The value of `droptrace_interface_drops_total` for `DEV`'s tx_dropped, if served.
fn served_tx_dropped(body: &str, netns: &str) -> Option<u64> {
    let series = format!(
        "droptrace_interface_drops_total{{netns=\"{netns}\",interface=\"{DEV}\",\
         counter=\"tx_dropped\",layer=\"driver\"}} "
    );
    body.lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
}

fn a_veth_whose_peer_takes_less_shows_its_tx_drops_as_the_kernel_counts_them() {
    let ns = veth_whose_peer_takes_less();
    let path = ns.path();
    // Drops before droptrace starts are not its to show: only the growth is.
    ns.run(|| {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        s.send_to(&[0; DATAGRAM], "10.251.0.2:9").unwrap();
    });
    let before = ns.link_stat(DEV, "tx", "dropped");
    assert_eq!(before, 1, "the drop made before droptrace started");
    let before_sysfs = sysfs_tx_dropped(&ns);
    let json = Droptrace::start(&["--netns", &path, "--format", "json"]);
    let serve = Droptrace::start(&["serve", "--listen", "127.0.0.1:0", "--netns", &path]);
    let addr = serve.serving();

    ns.run(|| {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        for _ in 0..SENT {
            s.send_to(&[0; DATAGRAM], "10.251.0.2:9").unwrap();
        }
    });
    let grown = reaches("tx_dropped", before + SENT, || {
        ns.link_stat(DEV, "tx", "dropped")
    }) - before;
    assert_eq!(grown, SENT, "every datagram dropped by the veth");
    assert_eq!(sysfs_tx_dropped(&ns) - before_sysfs, SENT);

    let body = wait_for("the tx_dropped series at the kernel's growth", || {
        let answer = http::get(addr, "/metrics", &[])?;
        (served_tx_dropped(&answer.body, &ns.name) == Some(grown)).then_some(answer.body)
    });
    assert!(
        body.contains("# TYPE droptrace_interface_drops_total counter"),
        "{body}"
    );
    drop(serve.stop(libc::SIGINT));

    let summary = json.stop_json();
    eprintln!("{summary:#}");
    let rows: Vec<&Value> = summary["interfaces"]
        .as_array()
        .expect("interfaces")
        .iter()
        .filter(|r| r["interface"] == DEV && r["netns"] == ns.name.as_str())
        .collect();
    assert_eq!(rows.len(), 1, "only tx_dropped grew: {summary:#}");
    let row = rows[0];
    assert_eq!(row["counter"], "tx_dropped");
    assert_eq!(row["drops"], grown, "{row}");
    assert_eq!(row["layer"], "driver");
    assert_eq!(row["in_kfree_skb"], true);
    // The same datagrams freed through kfree_skb: counted there once, on the same veth.
    let on_dev = groups(&summary, |g| g["interface"] == DEV);
    assert_eq!(count_of(&on_dev), grown, "{summary:#}");
    let watched = &summary["watched"];
    assert_eq!(watched["interfaces_read"], true, "{watched}");
    assert_eq!(watched["namespaces"], 1, "--netns: only it: {watched}");
    assert_eq!(watched["interfaces"], 3, "lo and the veth pair: {watched}");
    assert_eq!(watched["xdp_programs"], 0, "{watched}");
}

fn the_machines_own_interfaces_are_read_without_error() {
    // Every namespace, the machine's own among them; read only.
    let dt = Droptrace::start(&["--format", "json", "--port", "1", "--duration", "1"]);
    let said = dt.stderr_so_far();
    let summary = dt.wait_json();
    let watched = &summary["watched"];
    // The queue statistics too: every virtio_net here that is up gives them (6.9 and
    // later), a kernel without the netdev family says so.
    let virtio = up_interfaces_of_driver("virtio_net");
    eprintln!("virtio_net up here: {virtio:?}; droptrace said:\n{said}");
    assert_qstats_said(&said, watched, virtio.len() as u64);
    assert_eq!(watched["interfaces_read"], true, "{watched}");
    assert!(watched["namespaces"].as_u64() >= Some(1), "{watched}");
    let own = std::fs::read_dir("/sys/class/net").unwrap().count() as u64;
    assert!(
        watched["interfaces"].as_u64() >= Some(own),
        "{own} here: {watched}"
    );
    assert!(summary["interfaces"].is_array(), "{summary:#}");
}

/// bpf(2) with `attr`; the new descriptor, or the error.
fn bpf(cmd: libc::c_long, attr: &mut [u8]) -> std::io::Result<OwnedFd> {
    // SAFETY: `attr` is a zeroed bpf_attr of the size given, filled for `cmd`.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a descriptor the kernel just gave us.
    Ok(unsafe { OwnedFd::from_raw_fd(i32::try_from(fd).expect("fd")) })
}

/// Loads `r0 = XDP_DROP; exit` and attaches it in native mode to `dev` of the namespace
/// the calling thread is in, through a BPF link: it goes when the descriptor is closed.
fn attach_xdp_drop(dev: &str) -> OwnedFd {
    const BPF_PROG_LOAD: libc::c_long = 5;
    const BPF_LINK_CREATE: libc::c_long = 28;
    const BPF_PROG_TYPE_XDP: u32 = 6;
    const BPF_XDP: u32 = 37;
    const XDP_FLAGS_DRV_MODE: u32 = 4;
    // mov64 r0, 1 (XDP_DROP); exit
    let insns: [u8; 16] = [0xb7, 0, 0, 0, 1, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];
    let license = b"GPL\0";
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&BPF_PROG_TYPE_XDP.to_ne_bytes());
    attr[4..8].copy_from_slice(&2u32.to_ne_bytes());
    attr[8..16].copy_from_slice(&(insns.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
    attr[48..55].copy_from_slice(b"dt_drop");
    attr[68..72].copy_from_slice(&BPF_XDP.to_ne_bytes());
    let prog = bpf(BPF_PROG_LOAD, &mut attr).expect("loading the XDP program");
    let name = std::ffi::CString::new(dev).expect("a name");
    // SAFETY: a NUL-terminated name; looked up in this thread's namespace.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    assert_ne!(ifindex, 0, "{dev}: {}", std::io::Error::last_os_error());
    let mut attr = [0u8; 64];
    let prog_fd = std::os::fd::AsRawFd::as_raw_fd(&prog) as u32;
    attr[0..4].copy_from_slice(&prog_fd.to_ne_bytes());
    attr[4..8].copy_from_slice(&ifindex.to_ne_bytes());
    attr[8..12].copy_from_slice(&BPF_XDP.to_ne_bytes());
    attr[12..16].copy_from_slice(&XDP_FLAGS_DRV_MODE.to_ne_bytes());
    bpf(BPF_LINK_CREATE, &mut attr).expect("attaching the XDP program")
}

fn a_native_xdp_drop_on_a_veth_is_counted_by_the_driver_per_queue() {
    let pair = Pair::new();
    // Frames to veth-b are dropped by its program: no ARP can be answered there.
    let mac = pair.b.exec(&["cat", "/sys/class/net/veth-b/address"]);
    pair.a.exec(&[
        "ip",
        "neigh",
        "replace",
        B4,
        "lladdr",
        mac.trim(),
        "dev",
        "veth-a",
        "nud",
        "permanent",
    ]);
    // No IPv6 from veth-a (router solicitations, MLD reports): only the datagrams sent
    // reach the program.
    pair.a
        .exec(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
    let path = pair.b.path();
    let link = pair.b.run(|| attach_xdp_drop("veth-b"));
    let dt = Droptrace::start(&["--netns", &path, "--format", "json"]);
    let received = pair.b.link_stat("veth-b", "rx", "packets");
    pair.a.run(|| {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        for _ in 0..SENT {
            s.send_to(b"x", format!("{B4}:9")).unwrap();
        }
    });
    // veth-b's receive path has taken every frame (its XDP frames count as received).
    reaches("veth-b's received packets", received + SENT, || {
        pair.b.link_stat("veth-b", "rx", "packets")
    });
    let summary = dt.stop_json();
    drop(link);
    eprintln!("{summary:#}");
    assert_eq!(summary["watched"]["xdp_programs"], 1, "{summary:#}");
    let rows: Vec<&Value> = summary["interfaces"]
        .as_array()
        .expect("interfaces")
        .iter()
        .filter(|r| r["interface"] == "veth-b" && r["counter"] == "ethtool:rx_queue_0_xdp_drops")
        .collect();
    assert_eq!(rows.len(), 1, "{summary:#}");
    assert_eq!(rows[0]["drops"], SENT, "{summary:#}");
    assert_eq!(rows[0]["layer"], "driver");
    // A veth's XDP runs on skbs: the same frames are kfree_skb's drops there, once.
    assert_eq!(rows[0]["in_kfree_skb"], true);
    let on_b = groups(&summary, |g| g["interface"] == "veth-b");
    assert_eq!(count_of(&on_b), SENT, "{summary:#}");
}

droptrace_tests::root_tests!(
    a_veth_whose_peer_takes_less_shows_its_tx_drops_as_the_kernel_counts_them,
    the_machines_own_interfaces_are_read_without_error,
    a_native_xdp_drop_on_a_veth_is_counted_by_the_driver_per_queue,
);
