//! XDP programs' verdicts: a program on a veth (native and generic) that drops UDP to one
//! port, attached after droptrace started, is followed: its XDP_DROPs are one group named
//! by the program, equal to the datagrams sent and to the program's own count, counted
//! once (the same frames' kfree_skb at `veth_xdp_rcv_skb` / `do_xdp_generic` is not
//! counted again); what it passes is not counted as its drops; a program without BTF is
//! named and said untraced. Where the kernel refuses fexit programs (this project's 6.18
//! VM), the program is said untraced and its drops stay kfree_skb's, counted once; the
//! 6.1 and 6.12 guests of `cargo xtask vmtest` trace it.
use std::net::UdpSocket;

use droptrace_tests::{
    http,
    xdp::{attach_drop_all_without_btf, attach_drop_udp, Mode},
    *,
};
use serde_json::Value;

/// Datagrams the program drops, and datagrams it passes (to a port nothing listens on:
/// the stack drops them, NO_SOCKET).
const DROPPED: u64 = 40;
const PASSED: u64 = 15;
const DROP_PORT: u16 = 6001;
const CLOSED_PORT: u16 = 7000;

fn counted_once_and_named(test: &str, mode: Mode) {
    let pair = Pair::new();
    // No IPv6 from veth-a (router solicitations, MLD reports): only the datagrams sent
    // reach veth-b.
    pair.a
        .exec(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
    let path = pair.b.path();
    let dt = Droptrace::start(&["--netns", &path, "--format", "json"]);
    let serve = Droptrace::start(&["serve", "--listen", "127.0.0.1:0", "--netns", &path]);
    let addr = serve.serving();
    // Both attached after droptrace started.
    let program = pair.b.run(|| attach_drop_udp("veth-b", mode, DROP_PORT));
    let untraced = pair
        .b
        .run(|| attach_drop_all_without_btf("lo", Mode::Generic));
    // Some kernels (this project's 6.18 VM) refuse every fentry and fexit program: the
    // program is then said untraced and its drops stay kfree_skb's, counted once.
    let refused = droptrace_tests::xdp::fexit_allowed(&program).err();
    let traced_line = match &refused {
        None => format!("tracing XDP program dt_xdp_udp (id {})", program.id),
        Some(_) => format!(
            "XDP program dt_xdp_udp (id {}) is not traced: loading its fexit program",
            program.id
        ),
    };
    let untraced_line = format!(
        "XDP program dt_drop (id {}) is not traced: it has no BTF",
        untraced.id
    );
    let deadline = std::time::Instant::now() + WAIT_LIMIT;
    loop {
        let said = dt.stderr_so_far();
        if said.contains(&traced_line)
            && said.contains(&untraced_line)
            && serve.stderr_so_far().contains(&traced_line)
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "droptrace did not say `{traced_line}` and `{untraced_line}`:\n{said}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let no_ports = pair.b.snmp("Udp", "NoPorts");
    pair.a.run(|| {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        for _ in 0..DROPPED {
            s.send_to(b"x", format!("{B4}:{DROP_PORT}")).unwrap();
        }
        for _ in 0..PASSED {
            s.send_to(b"x", format!("{B4}:{CLOSED_PORT}")).unwrap();
        }
    });
    reaches("the program's own count", DROPPED, || program.dropped());
    reaches("Udp NoPorts", no_ports + PASSED, || {
        pair.b.snmp("Udp", "NoPorts")
    });
    let xdp_series = |body: &str| {
        body.lines()
            .filter(|l| l.starts_with("droptrace_drops_total{reason=\"XDP_DROP\""))
            .filter(|l| l.contains("function=\"xdp dt_xdp_udp\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum::<u64>()
    };
    let scrape = || http::get(addr, "/metrics", &[]).map_or(String::new(), |a| a.body);
    let served = if refused.is_none() {
        reaches("the XDP_DROP series", DROPPED, || xdp_series(&scrape()))
    } else {
        xdp_series(&scrape())
    };
    drop(serve.stop(libc::SIGINT));
    let summary = dt.stop_json();
    eprintln!("{summary:#}");
    assert_eq!(program.dropped(), DROPPED, "the program's own count");

    if let Some(e) = refused {
        eprintln!(
            "{test}: this kernel refuses fexit programs on BPF programs ({e}): checking that \
             the program is said untraced and its drops are counted once, as kfree_skb's"
        );
        assert!(groups(&summary, |g| g["reason"] == "XDP_DROP").is_empty());
        let at_site = groups(&summary, |g| {
            g["function"] == "veth_xdp_rcv_skb" || g["function"] == "do_xdp_generic"
        });
        assert_eq!(count_of(&at_site), DROPPED, "{summary:#}");
        let programs = summary["xdp_programs"].as_array().expect("xdp_programs");
        let mine = programs
            .iter()
            .find(|p| p["id"] == program.id)
            .expect("named");
        assert_eq!(mine["traced"], false, "{mine}");
        assert_eq!(served, 0, "no XDP_DROP series");
        return;
    }
    assert_eq!(served, DROPPED, "the XDP_DROP series");
    let verdicts = groups(&summary, |g| g["reason"] == "XDP_DROP");
    assert_eq!(verdicts.len(), 1, "{summary:#}");
    let g = verdicts[0];
    assert_eq!(g["count"], DROPPED, "{g}");
    assert_eq!(
        g["location"],
        format!("xdp dt_xdp_udp (id {})", program.id).as_str()
    );
    assert_eq!(g["interface"], "veth-b", "{g}");
    assert_eq!(g["namespace"], pair.b.name.as_str(), "{g}");
    // Once: the dropped frames' kfree_skb is not a second group.
    let again = groups(&summary, |g| {
        g["dport"] == DROP_PORT
            || g["function"] == "veth_xdp_rcv_skb"
            || g["function"] == "do_xdp_generic"
    });
    assert!(again.is_empty(), "counted twice: {again:?}");
    // What the program passed is not its drop: the stack's, where it dropped them.
    let passed = groups(&summary, |g| g["dport"] == CLOSED_PORT);
    assert_eq!(count_of(&passed), PASSED, "{summary:#}");
    assert!(
        passed.iter().all(|g| g["reason"] == "NO_SOCKET"),
        "{passed:?}"
    );
    // Attaching in native mode turns on the veth's NAPI, whose check frees one skb of its
    // own (6.1, 6.12): nothing else is dropped in the namespace.
    let attaching = groups(&summary, |g| g["function"] == "napi_get_frags_check");
    let all: Vec<&Value> = groups(&summary, |_| true);
    assert_eq!(
        count_of(&all) - count_of(&attaching),
        DROPPED + PASSED,
        "{summary:#}"
    );
    assert_eq!(summary["total"], count_of(&all), "{summary:#}");
    // Both programs named, the one without BTF said untraced.
    let programs = summary["xdp_programs"].as_array().expect("xdp_programs");
    let of = |id: u32| {
        programs
            .iter()
            .find(|p| p["id"] == id)
            .expect("the program")
    };
    assert_eq!(of(program.id)["name"], "dt_xdp_udp");
    assert_eq!(of(program.id)["traced"], true);
    assert_eq!(of(untraced.id)["name"], "dt_drop");
    assert_eq!(of(untraced.id)["traced"], false);
    assert!(
        of(untraced.id)["untraced"]
            .as_str()
            .is_some_and(|why| why.contains("no BTF")),
        "{programs:?}"
    );
    drop(untraced);
}

droptrace_tests::cases! { counted_once_and_named:
    a_native_xdp_programs_drops_are_counted_once_and_named_by_it => (
        "a_native_xdp_programs_drops_are_counted_once_and_named_by_it",
        Mode::Native,
    ),
    a_generic_xdp_programs_drops_are_counted_once_and_named_by_it => (
        "a_generic_xdp_programs_drops_are_counted_once_and_named_by_it",
        Mode::Generic,
    ),
}

/// `diagnose`: the `xdp` finding carries the program's exact count (equal to the
/// datagrams sent and to its own map counter), names it by name and id with its
/// interface and namespace, and the drops are counted once: no other finding holds them.
fn xdp_verdicts_in_diagnose_name_the_program_with_its_exact_count() {
    let pair = Pair::new();
    pair.a
        .exec(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
    let path = pair.b.path();
    // Attached before diagnose starts: traced from its first reading of the programs.
    let program = pair
        .b
        .run(|| attach_drop_udp("veth-b", Mode::Generic, DROP_PORT));
    let refused = droptrace_tests::xdp::fexit_allowed(&program).err();
    let report = diagnose(&["--netns", &path], || {
        pair.a.run(|| {
            let s = UdpSocket::bind("0.0.0.0:0").unwrap();
            for _ in 0..DROPPED {
                s.send_to(b"x", format!("{B4}:{DROP_PORT}")).unwrap();
            }
        });
        reaches("the program's own count", DROPPED, || program.dropped());
    });
    assert_eq!(program.dropped(), DROPPED, "the program's own count");
    let findings = report["findings"].as_array().expect("findings");
    let xdp: Vec<&Value> = findings.iter().filter(|f| f["cause"] == "xdp").collect();
    assert_eq!(xdp.len(), 1, "one xdp finding: {report:#}");
    let f = xdp[0];
    // Once: the finding holds every drop, and no other finding holds any of them (the
    // namespace drops nothing else).
    assert_eq!(f["drops"], DROPPED, "{f:#}");
    let all: u64 = findings.iter().filter_map(|f| f["drops"].as_u64()).sum();
    assert_eq!(all, DROPPED, "counted once: {report:#}");
    assert_eq!(f["iface"], "veth-b", "{f:#}");
    let named = format!("`dt_xdp_udp` (id {})", program.id);
    assert_mentions(f, &[&named, "on veth-b", &pair.b.name]);
    match refused {
        None => assert_mentions(
            f,
            &[
                &format!(
                    "the XDP program `dt_xdp_udp` (id {}) returned XDP_DROP {DROPPED} times \
                     on veth-b",
                    program.id
                ),
                "counted exactly by a fexit program on it",
                &format!("returned XDP_DROP for {DROPPED} frames"),
            ],
        ),
        Some(e) => {
            eprintln!(
                "xdp_verdicts_in_diagnose_name_the_program_with_its_exact_count: this kernel refuses \
                 fexit programs on BPF programs ({e}): checking the finding made of the \
                 frames' kfree_skb at do_xdp_generic"
            );
            assert_mentions(f, &["do_xdp_generic", "drops these packets"]);
        }
    }
}

/// Runs droptrace to its end (`report`, `export`): its stdout, failing on an error.
fn run_to_end(args: &[&str]) -> String {
    let out = std::process::Command::new(droptrace_bin())
        .args(args)
        .output()
        .expect("run droptrace");
    assert!(
        out.status.success(),
        "droptrace {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// `record`, then `report` and `export --jsonl` of the file: the verdicts the program
/// returned are kept by the recording, named by the program with the exact count (equal
/// to the program's own), once, and listed with the programs found.
fn xdp_verdicts_in_a_recording_are_reported_and_exported_by_their_program() {
    let pair = Pair::new();
    pair.a
        .exec(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
    let path = pair.b.path();
    let dir = TempDir::new("xdp-record");
    let file = dir.file("xdp.dtr");
    let file = file.to_str().expect("a UTF-8 path");
    let program = pair
        .b
        .run(|| attach_drop_udp("veth-b", Mode::Generic, DROP_PORT));
    let refused = droptrace_tests::xdp::fexit_allowed(&program).err();
    let rec = Droptrace::start(&["record", "--netns", &path, "-o", file]);
    pair.a.run(|| {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        for _ in 0..DROPPED {
            s.send_to(b"x", format!("{B4}:{DROP_PORT}")).unwrap();
        }
    });
    reaches("the program's own count", DROPPED, || program.dropped());
    let out = rec.stop(libc::SIGINT);
    assert!(
        out.status.success(),
        "record failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(&run_to_end(&["report", file, "--format", "json"]))
        .expect("report JSON");
    eprintln!("{report:#}");
    let lines: Vec<Value> = run_to_end(&["export", file, "--jsonl", "-"])
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(report["total"], DROPPED, "once: {report:#}");
    let programs = report["xdp_programs"].as_array().expect("xdp_programs");
    let mine = programs
        .iter()
        .find(|p| p["id"] == program.id)
        .expect("the program listed");
    assert_eq!(mine["name"], "dt_xdp_udp");
    if let Some(e) = refused {
        eprintln!(
            "xdp_verdicts_in_a_recording_are_reported_and_exported_by_their_program: this \
             kernel refuses fexit programs on BPF programs ({e}): checking that the program \
             is listed untraced and its drops are the recorded kfree_skb events"
        );
        assert_eq!(mine["traced"], false, "{mine}");
        assert!(groups(&report, |g| g["reason"] == "XDP_DROP").is_empty());
        let at_site = groups(&report, |g| g["function"] == "do_xdp_generic");
        assert_eq!(count_of(&at_site), DROPPED, "{report:#}");
        assert_eq!(
            lines.iter().filter(|l| l["type"] == "drop").count() as u64,
            DROPPED
        );
        assert!(lines.iter().all(|l| l["type"] != "xdp_verdicts"));
        return;
    }
    assert_eq!(mine["traced"], true, "{mine}");
    let verdicts = groups(&report, |g| g["reason"] == "XDP_DROP");
    assert_eq!(verdicts.len(), 1, "{report:#}");
    let g = verdicts[0];
    assert_eq!(g["count"], DROPPED, "{g}");
    assert_eq!(
        g["location"],
        format!("xdp dt_xdp_udp (id {})", program.id).as_str()
    );
    assert_eq!(g["interface"], "veth-b", "{g}");
    assert_eq!(g["namespace"], pair.b.name.as_str(), "{g}");
    // No drop event for the same frames.
    assert!(
        lines.iter().all(|l| l["type"] != "drop"),
        "counted twice: {lines:#?}"
    );
    let xdp: Vec<&Value> = lines
        .iter()
        .filter(|l| l["type"] == "xdp_verdicts")
        .collect();
    assert_eq!(xdp.len(), 1, "{lines:#?}");
    assert_eq!(xdp[0]["program_id"], program.id);
    assert_eq!(xdp[0]["program"], "dt_xdp_udp");
    assert_eq!(xdp[0]["count"], DROPPED);
    assert_eq!(xdp[0]["interface"], "veth-b");
}

/// The interface (in the namespace the caller is in) whose address is `mac`.
fn interface_with_mac(mac: &str) -> Option<String> {
    std::fs::read_dir("/sys/class/net").ok()?.find_map(|e| {
        let e = e.ok()?;
        let address = std::fs::read_to_string(e.path().join("address")).ok()?;
        (address.trim() == mac).then(|| e.file_name().to_string_lossy().into_owned())
    })
}

/// The two virtio-net devices `cargo xtask vmtest` gives its guests with BTF, joined by a
/// qemu hub (xtask/src/vmtest/mod.rs, `VIRTIO_NET_MACS`).
const VIRTIO_NET_MACS: [&str; 2] = ["52:54:00:d7:00:0a", "52:54:00:d7:00:0b"];

/// A driver's native XDP (virtio_net) drops frames that never become skbs: kfree_skb sees
/// none of them (a droptrace run with `--no-xdp` counts nothing), while droptrace counts
/// every verdict, equal to the datagrams sent and to the program's own counter, named by
/// the program and the interface; virtio_net's queue statistics (qstats) are read where the
/// kernel has them. Needs the virtio-net pair of a vmtest guest.
fn a_virtio_net_native_xdp_programs_drops_never_reach_kfree_skb_and_are_counted() {
    let (Some(dev_a), Some(dev_b)) = (
        interface_with_mac(VIRTIO_NET_MACS[0]),
        interface_with_mac(VIRTIO_NET_MACS[1]),
    ) else {
        skip(format!(
            "no virtio-net pair with the addresses {VIRTIO_NET_MACS:?} \
             (`cargo xtask vmtest` gives its guests with BTF one, joined by a qemu hub)"
        ));
    };
    let a = Netns::new("va");
    let b = Netns::new("vb");
    for (dev, ns, name, addr, peer, peer_mac) in [
        (
            &dev_a,
            &a,
            "dtv-a",
            "10.78.0.1/24",
            "10.78.0.2",
            VIRTIO_NET_MACS[1],
        ),
        (
            &dev_b,
            &b,
            "dtv-b",
            "10.78.0.2/24",
            "10.78.0.1",
            VIRTIO_NET_MACS[0],
        ),
    ] {
        let moved = std::process::Command::new("ip")
            .args(["link", "set", "dev", dev, "netns", &ns.name])
            .status()
            .expect("ip");
        assert!(moved.success(), "moving {dev} into {}", ns.name);
        ns.exec(&["ip", "link", "set", "dev", dev, "name", name]);
        ns.exec(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
        ns.exec(&["ip", "addr", "add", addr, "dev", name]);
        ns.exec(&["ip", "link", "set", "dev", name, "up"]);
        ns.exec(&[
            "ip",
            "neigh",
            "replace",
            peer,
            "lladdr",
            peer_mac,
            "dev",
            name,
            "nud",
            "permanent",
        ]);
    }
    let program = b.run(|| attach_drop_udp("dtv-b", Mode::Native, DROP_PORT));
    if let Err(e) = droptrace_tests::xdp::fexit_allowed(&program) {
        skip(format!(
            "this kernel refuses fexit programs on BPF programs ({e})"
        ));
    }
    let path = b.path();
    let dt = Droptrace::start(&["--netns", &path, "--format", "json"]);
    let plain = Droptrace::start(&["--netns", &path, "--format", "json", "--no-xdp"]);
    let said = dt.stderr_so_far();
    let traced = format!("tracing XDP program dt_xdp_udp (id {})", program.id);
    assert!(
        dt.stderr_so_far().contains(&traced),
        "{}",
        dt.stderr_so_far()
    );
    let sent_before = a.link_stat("dtv-a", "tx", "packets");
    a.run(|| {
        let s = UdpSocket::bind("10.78.0.1:0").unwrap();
        for _ in 0..DROPPED {
            s.send_to(b"x", format!("10.78.0.2:{DROP_PORT}")).unwrap();
        }
    });
    reaches("the program's own count", DROPPED, || program.dropped());
    let plain = plain.stop_json();
    let summary = dt.stop_json();
    eprintln!("{summary:#}\n--no-xdp: {plain:#}");
    assert_eq!(program.dropped(), DROPPED, "the program's own count");
    assert!(
        a.link_stat("dtv-a", "tx", "packets") >= sent_before + DROPPED,
        "the datagrams left dtv-a"
    );
    // kfree_skb saw none of them: no skb was ever made.
    assert_eq!(plain["total"], 0, "kfree_skb saw drops: {plain:#}");
    let verdicts = groups(&summary, |g| g["reason"] == "XDP_DROP");
    assert_eq!(verdicts.len(), 1, "{summary:#}");
    let g = verdicts[0];
    assert_eq!(g["count"], DROPPED, "{g}");
    assert_eq!(
        g["location"],
        format!("xdp dt_xdp_udp (id {})", program.id).as_str()
    );
    assert_eq!(g["interface"], "dtv-b", "{g}");
    assert_eq!(g["namespace"], b.name.as_str(), "{g}");
    assert_eq!(summary["total"], DROPPED, "{summary:#}");
    // dtv-b's receive counters of the driver (ethtool's statistics, read by droptrace).
    let rows: Vec<&serde_json::Value> = summary["interfaces"]
        .as_array()
        .expect("interfaces")
        .iter()
        .filter(|i| i["interface"] == "dtv-b")
        .filter(|i| {
            i["counter"]
                .as_str()
                .is_some_and(|c| c.starts_with("ethtool:rx"))
        })
        .collect();
    let sum = |counts: fn(&str) -> bool| -> u64 {
        rows.iter()
            .filter(|i| i["counter"].as_str().is_some_and(counts))
            .filter_map(|i| i["drops"].as_u64())
            .sum()
    };
    // The driver's own count of its XDP drops (virtio_net's per-queue `xdp_drops`) agrees.
    let xdp_drops = sum(|c| c.ends_with("_xdp_drops"));
    assert_eq!(xdp_drops, DROPPED, "virtio_net's xdp_drops: {summary:#}");
    // virtio_net counts each of them in its receive `drops` too: buffers given back
    // without an skb, never kfree_skb's, the verdicts' frames again.
    let drops = sum(|c| c.ends_with("_drops") && !c.contains("xdp"));
    assert_eq!(drops, DROPPED, "virtio_net's drops: {summary:#}");
    for row in rows {
        assert_eq!(row["in_kfree_skb"], false, "{row}");
        assert_eq!(row["counts_xdp_drops"], true, "{row}");
    }
    // virtio_net's queue statistics (qstats) read in b (its lo gives none): where the
    // kernel has them (6.12), on dtv-b; 6.1 has no netdev family, and droptrace says so.
    assert_qstats_said(&said, &summary["watched"], 1);
    if kernel_has_qstats() {
        assert_eq!(summary["watched"]["qstats_interfaces"], 1, "{summary:#}");
    }
}

/// The XDP program that aborts UDP to 6002 and fails to redirect UDP to 6003
/// (`droptrace-ebpf/src/bin/xdp_exception_udp.rs`).
const XDP_EXCEPTION_UDP: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/xdp_exception_udp.bpf.o"
);
const ABORTED: u64 = 30;
const REDIRECTED: u64 = 20;

/// XDP exceptions on a veth: an abort and a failed redirect, each counted exactly by its
/// tracepoint and named by the program, and each frame once in the total. Measured on
/// 6.18 and ruled in `pipeline::xdp::also_counted_as`: an abort's skb (native and
/// generic) and a failed generic redirect's reach kfree_skb (the exception is shown, not
/// added); a failed native redirect's skb is consumed, counted only by the veth's
/// `rx_dropped` (the exception is added).
fn xdp_exceptions_counted_once(mode: Mode) {
    let pair = Pair::new();
    pair.a
        .exec(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
    let path = pair.b.path();
    let dt = Droptrace::start(&["--netns", &path, "--format", "json"]);
    let how = match mode {
        Mode::Native => "xdpdrv",
        Mode::Generic => "xdpgeneric",
    };
    pair.b.exec(&[
        "ip",
        "link",
        "set",
        "dev",
        "veth-b",
        how,
        "obj",
        XDP_EXCEPTION_UDP,
        "sec",
        "xdp",
    ]);
    let link: Value =
        serde_json::from_str(&pair.b.exec(&["ip", "-j", "link", "show", "dev", "veth-b"]))
            .expect("ip link json");
    let id = link[0]["xdp"]["prog"]["id"]
        .as_u64()
        .or_else(|| link[0]["xdp"]["attached"][0]["prog"]["id"].as_u64())
        .unwrap_or_else(|| panic!("no XDP program on veth-b: {link}"));
    // droptrace follows the program before the traffic (its list is read each second).
    let named = format!("XDP program xdp_exc_udp (id {id})");
    wait_for(&named, || dt.stderr_so_far().contains(&named).then_some(()));
    let rx_dropped = pair.b.link_stat("veth-b", "rx", "dropped");
    let no_ports = pair.b.snmp("Udp", "NoPorts");
    pair.a.run(|| {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        for _ in 0..ABORTED {
            s.send_to(b"x", format!("{B4}:6002")).unwrap();
        }
        for _ in 0..REDIRECTED {
            s.send_to(b"x", format!("{B4}:6003")).unwrap();
        }
        // A marker the program passes and the stack drops: after it, all went through.
        s.send_to(b"x", format!("{B4}:{CLOSED_PORT}")).unwrap();
    });
    reaches("Udp NoPorts", no_ports + 1, || {
        pair.b.snmp("Udp", "NoPorts")
    });
    let dropped_by_veth = pair.b.link_stat("veth-b", "rx", "dropped") - rx_dropped;
    let summary = dt.stop_json();
    eprintln!("{summary:#}");
    let location = format!("xdp xdp_exc_udp (id {id})");
    let exceptions = summary["xdp_exceptions"]
        .as_array()
        .unwrap_or_else(|| panic!("no xdp_exceptions: {summary:#}"));
    let row = |reason: &str| {
        let rows: Vec<&Value> = exceptions
            .iter()
            .filter(|r| r["reason"] == reason)
            .collect();
        assert_eq!(rows.len(), 1, "{reason}: {exceptions:#?}");
        assert_eq!(rows[0]["location"], location.as_str(), "{}", rows[0]);
        assert_eq!(rows[0]["interface"], "veth-b", "{}", rows[0]);
        assert_eq!(rows[0]["namespace"], pair.b.name.as_str(), "{}", rows[0]);
        rows[0]
    };
    let traced = summary["xdp_programs"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["id"] == id))
        .is_some_and(|p| p["traced"] == true);
    // The abort: exact, and its frame counted where it is counted already.
    let aborted = row("XDP_ABORTED (xdp_exception)");
    assert_eq!(aborted["count"], ABORTED, "{aborted}");
    let elsewhere = if traced { "xdp_verdict" } else { "kfree_skb" };
    assert_eq!(aborted["also_counted_as"], elsewhere, "{aborted}");
    // The failed redirect (EINVAL: no such interface).
    let redirect = row("XDP_REDIRECT failed (err -22)");
    assert_eq!(redirect["count"], REDIRECTED, "{redirect}");
    let at_site = groups(&summary, |g| {
        g["function"] == "veth_xdp_rcv_skb" || g["function"] == "do_xdp_generic"
    });
    let as_groups = groups(&summary, |g| g["location"] == location.as_str());
    match mode {
        Mode::Generic => {
            // Both skbs freed through kfree_skb at do_xdp_generic.
            assert_eq!(redirect["also_counted_as"], "kfree_skb", "{redirect}");
            let verdicts = if traced { ABORTED } else { 0 };
            assert_eq!(
                count_of(&at_site),
                ABORTED + REDIRECTED - verdicts,
                "{summary:#}"
            );
            assert_eq!(count_of(&as_groups), verdicts, "{summary:#}");
        }
        Mode::Native => {
            // The redirect's skb was consumed: only the veth counted it (its rx_dropped,
            // the kernel's own figure), so the exception is the drop, once.
            assert_eq!(dropped_by_veth, REDIRECTED, "veth-b's rx_dropped");
            assert_eq!(redirect["also_counted_as"], Value::Null, "{redirect}");
            let verdicts = if traced { ABORTED } else { 0 };
            assert_eq!(count_of(&at_site), ABORTED - verdicts, "{summary:#}");
            assert_eq!(count_of(&as_groups), REDIRECTED + verdicts, "{summary:#}");
        }
    }
    // Each frame once: every group together is the datagrams sent (the marker
    // included), and the total is the groups.
    // (Attaching in native mode turns on the veth's NAPI, which frees one skb of its own:
    // `napi_get_frags_check` on 6.1 and 6.12, `netif_napi_add_weight_locked` on 6.18.)
    let attaching = groups(&summary, |g| {
        g["function"] == "napi_get_frags_check" || g["function"] == "netif_napi_add_weight_locked"
    });
    let all = groups(&summary, |_| true);
    assert_eq!(
        count_of(&all) - count_of(&attaching),
        ABORTED + REDIRECTED + 1,
        "{summary:#}"
    );
    assert_eq!(summary["total"], count_of(&all), "{summary:#}");
}

droptrace_tests::cases! { xdp_exceptions_counted_once:
    native_xdp_exceptions_are_counted_exactly_and_each_frame_once => (Mode::Native),
    generic_xdp_exceptions_are_counted_exactly_and_each_frame_once => (Mode::Generic),
}

droptrace_tests::root_tests!(
    native_xdp_exceptions_are_counted_exactly_and_each_frame_once,
    generic_xdp_exceptions_are_counted_exactly_and_each_frame_once,
    a_native_xdp_programs_drops_are_counted_once_and_named_by_it,
    a_generic_xdp_programs_drops_are_counted_once_and_named_by_it,
    xdp_verdicts_in_diagnose_name_the_program_with_its_exact_count,
    xdp_verdicts_in_a_recording_are_reported_and_exported_by_their_program,
    a_virtio_net_native_xdp_programs_drops_never_reach_kfree_skb_and_are_counted,
);
