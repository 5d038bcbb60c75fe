//! `droptrace diagnose` on tc's own droppers, which this machine's kernel lacks and
//! Debian's have as modules (so these run under `cargo xtask vmtest`): a netem qdisc
//! losing 30% of the packets, a gact `drop` action and a police action over its rate, each
//! named with its figures (equal to tc's own statistics) and its own fix.
use std::net::{SocketAddr, UdpSocket};
use std::process::Command;

use droptrace_tests::*;
use serde_json::Value;

/// Runs `tc ARGS` in `ns`; the kernel's refusal (a module it lacks) is the error.
fn tc(ns: &Netns, args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name, "tc"])
        .args(args)
        .output()
        .expect("running tc");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

fn udp_datagrams(ns: &Netns, to: SocketAddr, n: usize, size: usize) {
    ns.run(|| {
        let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
        for _ in 0..n {
            let _ = sock.send_to(&vec![7u8; size], to);
        }
    });
}

/// (packets, drops) of the first action of the filter at `pref` on veth-b's ingress, by
/// tc's own statistics.
fn action_stats(ns: &Netns, pref: u64) -> (u64, u64) {
    let json = tc(
        ns,
        &["-s", "-j", "filter", "show", "dev", "veth-b", "ingress"],
    )
    .unwrap();
    let filters: Value = serde_json::from_str(&json).unwrap();
    filters
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["pref"] == pref)
        .find_map(|f| {
            let stats = &f["options"]["actions"][0]["stats"];
            Some((stats["packets"].as_u64()?, stats["drops"].as_u64()?))
        })
        .expect("the filter's action statistics")
}

fn finding_for_port(report: &Value, port: u16) -> &Value {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["dport"] == port)
        .unwrap_or_else(|| panic!("no finding for port {port}: {report:#}"))
}

fn tc_drops_by_netem_loss_are_named_with_its_figure() {
    let pair = Pair::new();
    // netem takes every packet veth-a sends: no IPv6 router solicitations or MLD reports
    // of its own, so its count is the test's datagrams only.
    pair.a
        .exec(&["sysctl", "-qw", "net.ipv6.conf.veth-a.disable_ipv6=1"]);
    let netem = [
        "qdisc", "add", "dev", "veth-a", "root", "netem", "loss", "30%",
    ];
    if let Err(why) = tc(&pair.a, &netem) {
        skip(format!(
            "no netem in this \
             kernel ({why}); `cargo xtask vmtest` runs it on Debian's"
        ));
    }
    let dropped = || {
        let json = tc(&pair.a, &["-s", "-j", "qdisc", "show", "dev", "veth-a"]).unwrap();
        let q: Value = serde_json::from_str(&json).unwrap();
        q[0]["drops"].as_u64().expect("netem's drops")
    };
    let before = dropped();
    let to: SocketAddr = format!("{B4}:7000").parse().unwrap();
    // 60 datagrams: all of them kept has a chance of 0.7^60, about 5e-10.
    let report = diagnose(&["--netns", &pair.a.path()], || {
        udp_datagrams(&pair.a, to, 60, 100)
    });
    let lost = dropped() - before;
    assert!(lost > 0);
    let f = top(&report);
    assert_eq!(f["cause"], "qdisc", "{report:#}");
    assert_eq!(f["drops"], lost, "{report:#}");
    assert_mentions(
        f,
        &[
            "the netem qdisc on veth-a",
            "it drops them on purpose, as told (loss 30%",
            &format!("dropped +{lost} in the window"),
            "tc qdisc del dev veth-a root",
        ],
    );
}

fn tc_drops_by_gact_and_police_are_named_with_their_filters() {
    let pair = Pair::new();
    tc(&pair.b, &["qdisc", "add", "dev", "veth-b", "clsact"]).unwrap();
    let gact = [
        "filter", "add", "dev", "veth-b", "ingress", "pref", "10", "protocol", "ip", "flower",
        "ip_proto", "udp", "dst_port", "7001", "action", "drop",
    ];
    if let Err(why) = tc(&pair.b, &gact) {
        skip(format!(
            "no flower or \
             gact in this kernel ({why}); `cargo xtask vmtest` runs it on Debian's"
        ));
    }
    tc(
        &pair.b,
        &[
            "filter",
            "add",
            "dev",
            "veth-b",
            "ingress",
            "pref",
            "20",
            "protocol",
            "ip",
            "u32",
            "match",
            "ip",
            "dport",
            "7002",
            "0xffff",
            "action",
            "police",
            "rate",
            "8kbit",
            "burst",
            "2k",
            "conform-exceed",
            "drop",
        ],
    )
    .unwrap();
    let report = diagnose(&["--netns", &pair.b.path()], || {
        udp_datagrams(&pair.a, format!("{B4}:7001").parse().unwrap(), 6, 100);
        // 20 of 400 bytes at once: more than a 2 KB burst lets through at 1000 bytes/s.
        udp_datagrams(&pair.a, format!("{B4}:7002").parse().unwrap(), 20, 400);
        reaches("gact's packets", 6, || action_stats(&pair.b, 10).0);
        reaches("police's packets", 20, || action_stats(&pair.b, 20).0);
    });
    let (_, gact_drops) = action_stats(&pair.b, 10);
    let (_, police_drops) = action_stats(&pair.b, 20);
    assert_eq!(gact_drops, 6);
    assert!(police_drops > 0);

    let f = finding_for_port(&report, 7001);
    assert_eq!(f["cause"], "tc_bpf", "{report:#}");
    assert_eq!(f["drops"], 6, "{report:#}");
    assert_mentions(
        f,
        &[
            "the tc filter flower pref 10 handle 0x1",
            "dst_port 7001",
            "its action `gact drop` dropped 6 packets",
        ],
    );
    assert_eq!(
        f["fix"],
        format!(
            "ip netns exec {} tc filter del dev veth-b ingress pref 10 handle 0x1 flower",
            pair.b.name
        )
    );
    let f = finding_for_port(&report, 7002);
    assert_eq!(f["drops"], police_drops, "{report:#}");
    assert_mentions(
        f,
        &[
            "the tc filter u32 pref 20 handle 800::800",
            &format!("its police action dropped {police_drops} packets over its rate"),
            "rate 8Kbit burst 2Kb",
            "tc filter del dev veth-b ingress pref 20 handle 800::800 u32",
        ],
    );
}

droptrace_tests::root_tests!(
    tc_drops_by_netem_loss_are_named_with_its_figure,
    tc_drops_by_gact_and_police_are_named_with_their_filters,
);
