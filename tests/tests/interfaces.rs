//! The interfaces' own drop counters beside kfree_skb's drops: a veth whose peer is down
//! drops what it is given to send (tx_dropped); droptrace's row of that counter equals the
//! kernel's own growth of it (`ip -s -s link`, /sys/class/net), in the JSON summary and in
//! `serve`'s series, and its drops are said to be also kfree_skb's (they are: the same
//! packets are freed there, and counted there once). The machine's own interfaces are read
//! without error.
use std::net::UdpSocket;

use droptrace_tests::{http, *};
use serde_json::Value;

/// Datagrams sent into the veth whose peer is down.
const SENT: u64 = 25;
const DEV: &str = "dtifa";
const PEER: &str = "dtifb";

/// A namespace with a veth `DEV` up and its peer down: everything sent on `DEV` is
/// dropped (tx_dropped). The neighbour is static, so no ARP is ever needed.
fn veth_with_its_peer_down() -> Netns {
    let ns = Netns::new("if");
    ns.exec(&[
        "ip", "link", "add", DEV, "type", "veth", "peer", "name", PEER,
    ]);
    ns.exec(&["ip", "addr", "add", "10.251.0.1/24", "dev", DEV]);
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

#[test]
fn a_veth_whose_peer_is_down_shows_its_tx_drops_as_the_kernel_counts_them() {
    if !can_run("a_veth_whose_peer_is_down_shows_its_tx_drops_as_the_kernel_counts_them") {
        return;
    }
    let ns = veth_with_its_peer_down();
    let path = ns.path();
    // Drops before droptrace starts are not its to show: only the growth is.
    ns.run(|| {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        s.send_to(b"before", "10.251.0.2:9").unwrap();
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
            s.send_to(b"x", "10.251.0.2:9").unwrap();
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

#[test]
fn the_machines_own_interfaces_are_read_without_error() {
    if !can_run("the_machines_own_interfaces_are_read_without_error") {
        return;
    }
    // Every namespace, the machine's own among them; read only.
    let summary =
        Droptrace::start(&["--format", "json", "--port", "1", "--duration", "1"]).wait_json();
    let watched = &summary["watched"];
    assert_eq!(watched["interfaces_read"], true, "{watched}");
    assert!(watched["namespaces"].as_u64() >= Some(1), "{watched}");
    let own = std::fs::read_dir("/sys/class/net").unwrap().count() as u64;
    assert!(
        watched["interfaces"].as_u64() >= Some(own),
        "{own} here: {watched}"
    );
    assert!(summary["interfaces"].is_array(), "{summary:#}");
}
