use std::net::IpAddr;

use super::format::{self as f, put_varint};
use super::*;
use crate::pipeline::event::{Netns, Packet, ETH_P_IP, ETH_P_IPV6};
use crate::pipeline::names::Names;

mod damage;
mod streams;

/// A namespace with a cookie of its own (format version 3 stores both).
fn ns(inode: u32) -> Netns {
    Netns::new(inode, u64::from(inode) + 4096)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn header() -> Header {
    Header {
        kernel_release: "6.18.0-test".into(),
        hostname: "web-1".into(),
        boot_time_ns: 1_780_000_000_000_000_000,
        started_ns: 5_000_000_000,
        filters: "--port 53 --reason NETFILTER_DROP".into(),
        snaplen: 16,
        reasons: vec![(2, "NOT_SPECIFIED".into()), (12, "NETFILTER_DROP".into())],
        ..Header::default()
    }
}

fn drop_at(ts: u64, packet: Packet) -> Drop {
    Drop {
        timestamp_ns: ts,
        location: 0xffff_ffff_8203_3a59,
        reason: 12,
        netns: ns(4_026_531_840),
        ifindex: 2,
        len: 60,
        l2_len: 0,
        cpu: 1,
        packet,
    }
}

fn udp4(src: &str, sport: u16, dport: u16) -> Packet {
    Packet {
        ethertype: ETH_P_IP,
        addrs: Some((ip(src), ip("10.0.0.2"))),
        ip_proto: Some(17),
        ports: Some((sport, dport)),
        icmp: None,
        tcp_flags: None,
    }
}

/// One drop of each shape the format distinguishes, with packet bytes on some.
fn varied() -> Vec<(Drop, Vec<u8>)> {
    let tcp6 = Packet {
        ethertype: ETH_P_IPV6,
        addrs: Some((ip("fd00::1"), ip("fd00::2"))),
        ip_proto: Some(6),
        ports: Some((40_000, 443)),
        icmp: None,
        tcp_flags: None,
    };
    let icmp6 = Packet {
        ip_proto: Some(58),
        ports: None,
        icmp: Some((128, 0)),
        ..tcp6
    };
    let icmp4 = Packet {
        ip_proto: Some(1),
        ports: None,
        icmp: Some((3, 3)),
        ..udp4("10.0.0.9", 0, 0)
    };
    let arp = Packet {
        ethertype: 0x0806,
        ..Packet::default()
    };
    let mut out = vec![
        (drop_at(1_000, udp4("10.0.0.1", 5353, 53)), vec![]),
        (
            drop_at(1_500, udp4("10.0.0.1", 5354, 53)),
            vec![0x45, 0, 0, 60],
        ),
        (drop_at(1_400, tcp6), vec![]),
        (drop_at(2_000, icmp6), (0..16).collect()),
        (drop_at(2_000, icmp4), vec![]),
        (drop_at(9_000, arp), vec![1]),
        (drop_at(9_001, Packet::default()), vec![]),
        (drop_at(u64::MAX, udp4("10.0.0.1", 1, 53)), vec![]),
        (drop_at(0, udp4("10.0.0.1", 1, 53)), vec![]),
    ];
    out[2].0.cpu = 0;
    out[2].0.len = 1500;
    out[3].0.location = 0xffff_ffff_c000_0010;
    out[4].0.reason = 0x0001_0005;
    out[5].0.netns = Netns::NONE;
    out[5].0.ifindex = 0;
    out
}

fn counters(at_ns: u64) -> Counters {
    let group = drop_at(0, udp4("10.0.0.1", 1, 53)).group();
    let arp = drop_at(0, Packet::default()).group();
    Counters {
        at_ns,
        kernel: crate::pipeline::aggregate::KernelCounters {
            seen: 1_000_000,
            matched: 900_000,
            lost: 12_345,
            lost_ungrouped: 7,
            missed: 3,
            ..Default::default()
        },
        lost_groups: vec![(group, 12_000), (arp, 338)],
        malformed: 1,
        overflow: 2,
        tcp: None,
        tcp_off: false,
        xdp: None,
    }
}

fn location() -> crate::pipeline::names::Location {
    crate::pipeline::names::Location {
        function: Some("nf_hook_slow".into()),
        offset: Some(0xd9),
        module: None,
        display: "nf_hook_slow+0xd9".into(),
    }
}

/// What a reader gives, owned, to compare.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Owned {
    Drop(Drop, Vec<u8>),
    Counters(Counters),
    Tcp(crate::pipeline::tcp::TcpEvent),
}

fn read_all(bytes: &[u8]) -> Result<(Header, Names, Vec<Owned>, Status), ReadError> {
    let mut reader = Reader::new(bytes)?;
    let mut items = Vec::new();
    let status = reader.for_each(|item| {
        items.push(match item {
            Item::Drop(d, b) => Owned::Drop(d, b.to_vec()),
            Item::Counters(c) => Owned::Counters(c),
            Item::Tcp(ev) => Owned::Tcp(ev),
        })
    })?;
    Ok((
        reader.header().clone(),
        reader.names().clone(),
        items,
        status,
    ))
}

/// A small recording of several blocks: names, events, counters, more names and events.
/// Also gives, after each block written, the file length and the items written so far.
fn small_recording() -> (Vec<u8>, Vec<Owned>, Vec<(usize, usize)>) {
    let mut w = Writer::new(Vec::new(), &header()).unwrap();
    let mut expected = Vec::new();
    let mut boundaries = vec![(w.get_ref().len(), 0)];
    w.add_location(0xffff_ffff_8203_3a59, &location()).unwrap();
    w.add_interface(ns(4_026_531_840), 2, "eth0").unwrap();
    w.add_namespace(ns(4_026_531_840), "init").unwrap();
    w.add_workload(ns(4_026_532_182), &workload()).unwrap();
    for (i, (d, bytes)) in varied().into_iter().enumerate() {
        w.write_drop(&d, &bytes).unwrap();
        expected.push(Owned::Drop(d, bytes));
        if i == 3 {
            w.flush().unwrap();
            boundaries.push((w.get_ref().len(), expected.len()));
            w.write_counters(&counters(3_000)).unwrap();
            expected.push(Owned::Counters(counters(3_000)));
            boundaries.push((w.get_ref().len(), expected.len()));
            w.add_interface(ns(4_026_531_840), 2, "eth0-renamed")
                .unwrap();
        }
    }
    w.flush().unwrap();
    boundaries.push((w.get_ref().len(), expected.len()));
    let bytes = w.finish().unwrap();
    (bytes, expected, boundaries)
}

#[test]
fn round_trip_keeps_everything() {
    let (bytes, expected, _) = small_recording();
    let (h, names, items, status) = read_all(&bytes).unwrap();
    assert_eq!(h, header());
    assert_eq!(status, Status::Complete);
    assert_eq!(items, expected);
    assert_eq!(
        names.locations.get(&0xffff_ffff_8203_3a59),
        Some(&location())
    );
    assert_eq!(names.locations.get(&0xffff_ffff_c000_0010), None);
    assert_eq!(
        names.interface_name(ns(4_026_531_840), 2),
        Some("eth0-renamed")
    );
    assert_eq!(names.namespace_name(ns(4_026_531_840)), Some("init"));
    assert_eq!(names.workload(ns(4_026_532_182)), Some(&workload()));
}

/// A pod's container, as `probe::workloads` names it.
fn workload() -> crate::pipeline::names::Workload {
    crate::pipeline::fixtures::workload(
        "9b2e7d4a1c6f3e8b0d5a2c7f4e9b1d6a3c8f5e2b7d0a4c9f6e1b8d3a5c2f7e4b",
        Some("0b6c4f0e-1111-4c2a-9d3e-5f2a7c1e9b10"),
    )
}

#[test]
fn workloads_with_and_without_pods_and_version_1_files() {
    let mut w = Writer::new(Vec::new(), &header()).unwrap();
    let mut plain = workload();
    plain.pod = None;
    let mut no_uid = workload();
    no_uid.pod.as_mut().unwrap().uid = None;
    w.add_workload(ns(1), &plain).unwrap();
    w.add_workload(ns(2), &no_uid).unwrap();
    w.add_workload(ns(3), &workload()).unwrap();
    let (_, names, _, status) = read_all(&w.finish().unwrap()).unwrap();
    assert_eq!(status, Status::Complete);
    assert_eq!(
        (
            names.workload(ns(1)),
            names.workload(ns(2)),
            names.workload(ns(3))
        ),
        (Some(&plain), Some(&no_uid), Some(&workload()))
    );
}

/// A file of an older format (before cookies): the header of `Writer`, then `blocks`
/// sealed as they are.
fn older_file(version: u32, blocks: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut bytes = f::MAGIC.to_vec();
    bytes.extend(version.to_le_bytes());
    let mut h = vec![0; f::FRAME_LEN];
    f::encode_header(&mut h, &header()).unwrap();
    // Before version 4 the header ends with the drop reasons (no reset reasons: a 0 here).
    assert_eq!(h.pop(), Some(0));
    f::seal(&mut h, f::HEADER);
    bytes.extend(h);
    for (kind, payload) in blocks {
        let mut b = vec![0; f::FRAME_LEN];
        b.extend_from_slice(payload);
        f::seal(&mut b, *kind);
        bytes.extend(b);
    }
    bytes
}

#[test]
fn files_of_versions_1_and_2_read_their_namespaces_with_cookie_0() {
    // Names: interface (inode 7, ifindex 2) "eth0", namespace 7 "init", as version 2
    // wrote them (the inode alone).
    let mut names = vec![f::NAME_INTERFACE, 7, 2];
    f::put_str(&mut names, "eth0").unwrap();
    names.extend([f::NAME_NAMESPACE, 7]);
    f::put_str(&mut names, "init").unwrap();
    // Counters with one lost group in namespace 7: location, reason 12, ethertype,
    // netns 7, ifindex 2, tcp, dport 443; 5 of them.
    let mut counters = vec![0; 8];
    counters.push(1);
    counters.extend(0xffff_ffff_c0a1_23e8u64.to_le_bytes());
    for v in [12, u64::from(ETH_P_IP), 7, 2, 7, 444, 5] {
        put_varint(&mut counters, v);
    }
    for version in [1, 2] {
        let file = older_file(
            version,
            &[
                (f::NAMES, names.clone()),
                (f::COUNTERS, counters.clone()),
                (f::END, vec![0]),
            ],
        );
        let (_, read, items, status) = read_all(&file).unwrap();
        assert_eq!(status, Status::Complete, "version {version}");
        let old = Netns::inode(7);
        assert_eq!(read.namespace_name(old), Some("init"), "version {version}");
        assert_eq!(
            read.interface_name(old, 2),
            Some("eth0"),
            "version {version}"
        );
        let lost: Vec<_> = items
            .iter()
            .filter_map(|i| match i {
                Owned::Counters(c) => Some(c.lost_groups.clone()),
                _ => None,
            })
            .flatten()
            .map(|(g, n)| (g.netns, g.reason, g.dport, n))
            .collect();
        assert_eq!(lost, [(old, 12, Some(443), 5)], "version {version}");
    }
}

#[test]
fn namespaces_that_share_an_inode_stay_apart_in_a_recording() {
    // The kernel gave the inode of a deleted namespace to a new one: two cookies.
    let (old, new) = (
        Netns::new(4_026_532_500, 8193),
        Netns::new(4_026_532_500, 12289),
    );
    let mut w = Writer::new(Vec::new(), &header()).unwrap();
    w.add_namespace(old, "st-3").unwrap();
    w.add_namespace(new, "st-new").unwrap();
    w.add_interface(old, 2, "veth-old").unwrap();
    w.add_interface(new, 2, "veth-new").unwrap();
    let mut a = drop_at(1, udp4("10.0.0.1", 1, 2));
    a.netns = old;
    let mut b = drop_at(2, udp4("10.0.0.1", 1, 2));
    b.netns = new;
    w.write_drop(&a, &[]).unwrap();
    w.write_drop(&b, &[]).unwrap();
    w.write_drop(&b, &[]).unwrap();
    let (_, names, items, _) = read_all(&w.finish().unwrap()).unwrap();
    let netns: Vec<Netns> = items
        .iter()
        .filter_map(|i| match i {
            Owned::Drop(d, _) => Some(d.netns),
            _ => None,
        })
        .collect();
    assert_eq!(netns, [old, new, new]);
    assert_eq!(
        (names.namespace(old), names.namespace(new)),
        ("st-3".into(), "st-new".into())
    );
    assert_eq!(names.interface(new, 2), "veth-new");
}

#[test]
fn packet_bytes_are_cut_to_the_snaplen() {
    let mut w = Writer::new(Vec::new(), &Header::default()).unwrap();
    let d = drop_at(1, udp4("10.0.0.1", 1, 2));
    w.write_drop(&d, &[1, 2, 3]).unwrap();
    let (_, _, items, _) = read_all(&w.finish().unwrap()).unwrap();
    assert_eq!(items, vec![Owned::Drop(d, vec![])]);

    let h = Header {
        snaplen: 2,
        ..Header::default()
    };
    let mut w = Writer::new(Vec::new(), &h).unwrap();
    w.write_drop(&d, &[1, 2, 3]).unwrap();
    let (_, _, items, _) = read_all(&w.finish().unwrap()).unwrap();
    assert_eq!(items, vec![Owned::Drop(d, vec![1, 2])]);

    let too_big = Header {
        snaplen: 70_000,
        ..Header::default()
    };
    assert!(matches!(
        Writer::new(Vec::new(), &too_big),
        Err(WriteError::SnaplenTooLarge(70_000))
    ));
}

#[test]
fn a_name_too_long_is_refused_and_leaves_the_recording_whole() {
    let mut w = Writer::new(Vec::new(), &header()).unwrap();
    let long = "x".repeat(f::MAX_STRING + 1);
    let err = w.add_interface(ns(1), 2, &long).unwrap_err();
    assert!(matches!(err, WriteError::StringTooLong(n) if n == long.len()));
    let mut bad = location();
    bad.display = long;
    assert!(w.add_location(7, &bad).is_err());
    assert!(!w.has_location(7));
    w.add_location(7, &location()).unwrap();
    w.add_namespace(ns(1), "init").unwrap();
    let (_, names, _, status) = read_all(&w.finish().unwrap()).unwrap();
    assert_eq!(status, Status::Complete);
    assert_eq!(names.locations.get(&7), Some(&location()));
    assert_eq!(
        (names.interface_name(ns(1), 2), names.namespace_name(ns(1))),
        (None, Some("init"))
    );
}

#[test]
fn many_blocks_round_trip() {
    let mut w = Writer::new(Vec::new(), &header()).unwrap();
    let drops: Vec<Drop> = (0..40_000u32)
        .map(|i| {
            let src = format!("10.0.{}.{}", i % 7, i % 3);
            drop_at(u64::from(i) * 997, udp4(&src, i as u16, 53))
        })
        .collect();
    for d in &drops {
        w.write_drop(d, &[]).unwrap();
    }
    assert_eq!(w.events(), 40_000);
    let (_, _, items, status) = read_all(&w.finish().unwrap()).unwrap();
    assert_eq!(status, Status::Complete);
    let got: Vec<Drop> = items
        .into_iter()
        .map(|i| match i {
            Owned::Drop(d, _) => d,
            other => panic!("only drops written: {other:?}"),
        })
        .collect();
    assert_eq!(got, drops);
}

#[test]
fn an_unfinished_recording_reads_as_truncated() {
    let mut w = Writer::new(Vec::new(), &header()).unwrap();
    let d = drop_at(1, udp4("10.0.0.1", 1, 2));
    w.write_drop(&d, &[]).unwrap();
    let before = w.get_ref().len();
    let (_, _, items, status) = read_all(w.get_ref()).unwrap();
    assert_eq!(
        (items.len(), status),
        (
            0,
            Status::Truncated {
                at_offset: before as u64
            }
        )
    );
    w.flush().unwrap();
    let (_, _, items, status) = read_all(w.get_ref()).unwrap();
    let end = w.get_ref().len() as u64;
    assert_eq!(
        (items.len(), status),
        (1, Status::Truncated { at_offset: end })
    );
}

#[test]
fn recordings_are_created_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::temp_dir().join(format!("droptrace-record-{}.dtr", std::process::id()));
    // Even over a file others could read.
    std::fs::write(&path, b"old").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let w = Writer::create(&path, &header()).unwrap();
    w.finish().unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    let read = Recording::open(&path).map(|mut r| r.for_each(|_| {}));
    std::fs::remove_file(&path).unwrap();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(read.unwrap().unwrap(), Status::Complete);
}

#[test]
fn varints_and_zigzag_round_trip() {
    for v in [
        0,
        1,
        127,
        128,
        300,
        u64::from(u32::MAX),
        u64::MAX - 1,
        u64::MAX,
    ] {
        let mut out = Vec::new();
        put_varint(&mut out, v);
        let mut c = f::Cursor::new(&out);
        assert_eq!(c.varint(), Ok(v));
        assert!(c.is_empty());
    }
    for v in [0, 1, -1, i64::MIN, i64::MAX] {
        assert_eq!(f::unzigzag(f::zigzag(v)), v);
    }
    // Eleven bytes, or a tenth byte over 1, is no u64.
    let mut c = f::Cursor::new(&[0xff; 11]);
    assert_eq!(c.varint().unwrap_err().what, "bad varint");
    let mut ten = vec![0xff; 9];
    ten.push(2);
    assert_eq!(
        f::Cursor::new(&ten).varint().unwrap_err().what,
        "bad varint"
    );
}

/// TCP events of every kind and shape: a retransmit after a drop, one that failed, a
/// reset sent with and without its reason, a reset received, over IPv6 too.
fn tcp_events() -> Vec<crate::pipeline::tcp::TcpEvent> {
    use crate::pipeline::tcp::{
        self,
        tests::{bytes_of, retransmit},
    };
    let s = 1_000_000_000;
    let mut out = Vec::new();
    out.push(retransmit(10 * s, 40000, 10 * s - 5_000));
    let mut failed = retransmit(11 * s, 40000, 0);
    failed.flags |= droptrace_common::TCP_EVENT_FAILED;
    failed.reason = (-105i32) as u32;
    failed.segs = 3;
    out.push(failed);
    let mut rst = retransmit(12 * s, 40001, 0);
    rst.kind = droptrace_common::TCP_RESET_SENT;
    rst.flags = droptrace_common::TCP_EVENT_HAS_REASON;
    rst.reason = 2;
    out.push(rst);
    rst.flags = 0;
    out.push(rst);
    let mut received = retransmit(13 * s, 40002, 0);
    received.kind = droptrace_common::TCP_RESET_RECEIVED;
    received.family = droptrace_common::AF_INET6;
    received.local = std::net::Ipv6Addr::from([0xfd00, 0, 0, 0, 0, 0, 0, 1]).octets();
    received.remote = std::net::Ipv6Addr::from([0xfd00, 0, 0, 0, 0, 0, 0, 2]).octets();
    out.push(received);
    out.iter()
        .map(|ev| tcp::decode(&bytes_of(ev)).unwrap())
        .collect()
}

#[test]
fn tcp_events_counters_and_reset_reasons_round_trip() {
    let mut h = header();
    h.reset_reasons = vec![(2, "NO_SOCKET".into()), (5, "TCP_ABORT_ON_DATA".into())];
    let mut w = Writer::new(Vec::new(), &h).unwrap();
    let events = tcp_events();
    let mut expected = Vec::new();
    let (d, bytes) = varied().remove(0);
    w.write_drop(&d, &bytes).unwrap();
    for ev in &events[..2] {
        w.write_tcp(ev).unwrap();
        expected.push(Owned::Tcp(*ev));
    }
    // TCP events go out before the drops of the same block.
    expected.push(Owned::Drop(d, bytes));
    let mut with_tcp = counters(3_000);
    with_tcp.tcp = Some(crate::pipeline::tcp::TcpCounters {
        retransmits: 4,
        resets_sent: 2,
        resets_received: 1,
        lost: 9,
        missed: 0,
    });
    w.write_counters(&with_tcp).unwrap();
    expected.push(Owned::Counters(with_tcp));
    for ev in &events[2..] {
        w.write_tcp(ev).unwrap();
        expected.push(Owned::Tcp(*ev));
    }
    w.write_counters(&counters(4_000)).unwrap();
    expected.push(Owned::Counters(counters(4_000)));
    let mut off = counters(5_000);
    off.tcp_off = true;
    w.write_counters(&off).unwrap();
    expected.push(Owned::Counters(off));
    let (got_header, names, items, status) = read_all(&w.finish().unwrap()).unwrap();
    assert_eq!(status, Status::Complete);
    assert_eq!(got_header, h);
    assert_eq!(items, expected);
    assert_eq!(names.reset_reason(Some(2)), "NO_SOCKET");
}

#[test]
fn a_damaged_tcp_event_skips_the_rest_of_its_block_only() {
    let mut w = Writer::new(Vec::new(), &header()).unwrap();
    let events = tcp_events();
    w.write_tcp(&events[0]).unwrap();
    w.flush().unwrap();
    let at = w.get_ref().len();
    w.write_tcp(&events[1]).unwrap();
    w.write_tcp(&events[2]).unwrap();
    w.flush().unwrap();
    w.write_tcp(&events[3]).unwrap();
    let mut bytes = w.finish().unwrap();
    // The second block's first event of an unknown kind, its checksum made good again.
    bytes[at + f::FRAME_LEN] = 9;
    let len = u32::from_le_bytes(bytes[at + 1..at + 5].try_into().unwrap()) as usize;
    let mut block = bytes[at..at + f::FRAME_LEN + len].to_vec();
    f::seal(&mut block, f::TCP);
    bytes[at..at + f::FRAME_LEN + len].copy_from_slice(&block);
    let mut reader = Reader::new(&bytes[..]).unwrap();
    let mut got = Vec::new();
    let status = reader
        .for_each(|item| {
            if let Item::Tcp(ev) = item {
                got.push(ev);
            }
        })
        .unwrap();
    assert_eq!(status, Status::Complete);
    assert_eq!(got, [events[0], events[3]]);
    assert_eq!(reader.damage().blocks, 1);
}

/// A real recording of version 3 (see fixtures/README.capture), read by this reader.
pub(crate) const V3_RECORDING: &[u8] = include_bytes!("../../fixtures/recording.v3.dtr");

#[test]
fn a_captured_version_3_recording_still_reads() {
    let (h, names, items, status) = read_all(V3_RECORDING).unwrap();
    assert_eq!(status, Status::Complete);
    assert_eq!(h.kernel_release, "6.18.44-fc-v1272");
    assert!(h.reset_reasons.is_empty());
    let drops = items
        .iter()
        .filter(|i| matches!(i, Owned::Drop(..)))
        .count();
    assert_eq!(drops, 7);
    assert!(items.iter().all(|i| match i {
        Owned::Counters(c) => c.tcp.is_none(),
        Owned::Tcp(_) => false,
        Owned::Drop(..) => true,
    }));
    assert!(names.reset_reasons.is_empty());
}

/// The XDP programs' verdicts a `COUNTERS` block holds (format version 5): programs traced
/// and not, with why, and the verdict groups with their counts, read back as written.
#[test]
fn xdp_verdicts_round_trip_in_counters() {
    use crate::pipeline::xdp::{group, XdpProgram};
    use crate::record::XdpCounts;
    let mut c = counters(5_000);
    c.xdp = Some(XdpCounts {
        programs: vec![
            XdpProgram {
                id: 42,
                name: "dt_xdp_udp".into(),
                untraced: None,
            },
            XdpProgram {
                id: 43,
                name: "dt_drop".into(),
                untraced: Some("it has no BTF (a fexit program needs its function's type)".into()),
            },
        ],
        groups: vec![
            (group(42, 1, ns(4_026_532_182), 2), 40),
            (group(42, 0, ns(4_026_532_182), 2), 1),
        ],
    });
    let empty = Counters {
        xdp: Some(XdpCounts::default()),
        ..counters(6_000)
    };
    let mut w = Writer::new(Vec::new(), &header()).unwrap();
    w.write_counters(&c).unwrap();
    w.write_counters(&empty).unwrap();
    let bytes = w.finish().unwrap();
    let (_, _, items, status) = read_all(&bytes).unwrap();
    assert_eq!(status, Status::Complete);
    assert_eq!(items, [Owned::Counters(c), Owned::Counters(empty)]);
}

/// An unknown XDP fields byte is a damaged block, not a panic or a wrong figure.
#[test]
fn an_unknown_xdp_fields_byte_is_damage() {
    let mut w = Writer::new(Vec::new(), &header()).unwrap();
    w.write_counters(&counters(5_000)).unwrap();
    w.flush().unwrap();
    let mut bytes = w.finish().unwrap();
    // The counters block is the first after the header block; its last byte is the XDP
    // fields byte (0: none).
    let header_len = u32::from_le_bytes(
        bytes[f::PREAMBLE_LEN + 1..f::PREAMBLE_LEN + 5]
            .try_into()
            .unwrap(),
    ) as usize;
    let at = f::PREAMBLE_LEN + f::FRAME_LEN + header_len;
    assert_eq!(bytes[at], f::COUNTERS);
    let len = u32::from_le_bytes(bytes[at + 1..at + 5].try_into().unwrap()) as usize;
    let end = at + f::FRAME_LEN + len;
    assert_eq!(bytes[end - 1], 0);
    bytes[end - 1] = 7;
    let mut block = bytes[at..end].to_vec();
    f::seal(&mut block, f::COUNTERS);
    bytes[at..end].copy_from_slice(&block);
    let mut reader = Reader::new(&bytes[..]).unwrap();
    let mut counted = 0;
    reader
        .for_each(|item| counted += usize::from(matches!(item, Item::Counters(_))))
        .unwrap();
    assert_eq!(counted, 0);
    assert_eq!(reader.damage().blocks, 1);
}

/// A real recording of version 4 (see fixtures/README.capture), read by this reader.
pub(crate) const V4_RECORDING: &[u8] = include_bytes!("../../fixtures/recording.v4.dtr");

#[test]
fn a_captured_version_4_recording_still_reads() {
    let (h, _, items, status) = read_all(V4_RECORDING).unwrap();
    assert_eq!(status, Status::Complete);
    assert_eq!(h.kernel_release, "6.18.44-fc-v1272");
    let drops = items
        .iter()
        .filter(|i| matches!(i, Owned::Drop(..)))
        .count();
    assert_eq!(drops, 7);
    let counters: Vec<&Counters> = items
        .iter()
        .filter_map(|i| match i {
            Owned::Counters(c) => Some(c),
            _ => None,
        })
        .collect();
    assert!(!counters.is_empty());
    assert!(
        counters.iter().all(|c| c.xdp.is_none()),
        "no XDP figures before version 5"
    );
    assert!(counters.iter().any(|c| c.tcp.is_some()), "its TCP figures");
}
