use std::net::IpAddr;
use std::process::Command;

use serde_json::Value;

use super::pcapng::*;
use super::*;
use crate::pipeline::event::{Drop, Netns, Packet, ETH_P_IP, ETH_P_IPV6};
use crate::pipeline::names::Location;
use crate::record::{Counters, Header, Reader, Status, Writer};

const BOOT: u64 = 1_780_000_000_000_000_000;
const INIT: Netns = Netns {
    inode: 4_026_531_840,
    cookie: 1,
};
const BLUE: Netns = Netns {
    inode: 4_026_532_500,
    cookie: 4097,
};
const NAMELESS: Netns = Netns {
    inode: 4_026_533_000,
    cookie: 0,
};
const NFT: u64 = 0xffff_ffff_c0a1_23e8;
const UNNAMED: u64 = 0xffff_ffff_8203_3a59;

fn header(snaplen: u32) -> Header {
    Header {
        kernel_release: "6.18.0-test".into(),
        hostname: "web-1".into(),
        boot_time_ns: BOOT,
        snaplen,
        reasons: vec![(2, "NOT_SPECIFIED".into()), (12, "NETFILTER_DROP".into())],
        ..Header::default()
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// IPv4 and TCP SYN headers of a packet of `total` bytes.
fn tcp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, total: u16) -> Vec<u8> {
    let mut p = vec![0x45, 0];
    p.extend(total.to_be_bytes());
    p.extend([0, 1, 0x40, 0, 64, 6, 0, 0]);
    p.extend(src);
    p.extend(dst);
    let sum = checksum(&p);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p.extend(sport.to_be_bytes());
    p.extend(dport.to_be_bytes());
    p.extend([0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
    p
}

/// IPv6 and UDP headers of a datagram with `payload` bytes of data.
fn udp6(src: &str, dst: &str, sport: u16, dport: u16, payload: u16) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend((8 + payload).to_be_bytes());
    p.extend([17, 64]);
    for a in [src, dst] {
        let IpAddr::V6(a) = ip(a) else { panic!() };
        p.extend(a.octets());
    }
    p.extend(sport.to_be_bytes());
    p.extend(dport.to_be_bytes());
    p.extend((8 + payload).to_be_bytes());
    p.extend([0, 0]);
    p
}

fn drop(ts: u64, location: u64, reason: u32, netns: Netns, ifindex: u32, packet: Packet) -> Drop {
    Drop {
        timestamp_ns: ts,
        location,
        reason,
        netns,
        ifindex,
        len: 60,
        l2_len: 0,
        cpu: 1,
        packet,
    }
}

fn v4(proto: u8, dport: u16) -> Packet {
    Packet {
        ethertype: ETH_P_IP,
        addrs: Some((ip("10.0.0.1"), ip("10.0.0.2"))),
        ip_proto: Some(proto),
        ports: Some((40_000, dport)),
        icmp: None,
        tcp_flags: None,
    }
}

fn udp_v6() -> Packet {
    Packet {
        ethertype: ETH_P_IPV6,
        addrs: Some((ip("fd00::1"), ip("fd00::2"))),
        ip_proto: Some(17),
        ports: Some((5353, 53)),
        icmp: None,
        tcp_flags: None,
    }
}

/// Drops on two named interfaces in two namespaces, one without an interface, one on
/// an interface nothing names, and one without packet bytes.
fn drops() -> Vec<(Drop, Vec<u8>)> {
    let syn = tcp4([10, 0, 0, 1], [10, 0, 0, 2], 40_000, 443, 60);
    let dns = udp6("fd00::1", "fd00::2", 5353, 53, 4);
    let mut six = drop(2_000, UNNAMED, 2, BLUE, 5, udp_v6());
    (six.cpu, six.len) = (0, 52);
    vec![
        (drop(1_000, NFT, 12, INIT, 2, v4(6, 443)), syn.clone()),
        (six, dns.clone()),
        (drop(3_000, NFT, 12, INIT, 2, v4(17, 53)), vec![]),
        (drop(4_000, NFT, 99, INIT, 0, v4(6, 443)), syn.clone()),
        (drop(5_000, NFT, 12, INIT, 2, v4(6, 443)), syn),
        (drop(6_000, UNNAMED, 12, NAMELESS, 7, udp_v6()), dns),
    ]
}

fn writer(h: &Header) -> Writer<Vec<u8>> {
    let mut w = Writer::new(Vec::new(), h).unwrap();
    let nft = Location {
        function: Some("nft_do_chain".into()),
        offset: Some(0x3e8),
        module: None,
        display: "nft_do_chain+0x3e8".into(),
    };
    w.add_location(NFT, &nft).unwrap();
    w.add_interface(INIT, 2, "eth0").unwrap();
    w.add_namespace(INIT, "init").unwrap();
    w.add_interface(BLUE, 5, "veth-b").unwrap();
    w.add_namespace(BLUE, "blue").unwrap();
    w
}

fn recording(h: &Header) -> Vec<u8> {
    let mut w = writer(h);
    for (i, (d, bytes)) in drops().iter().enumerate() {
        w.write_drop(d, bytes).unwrap();
        if i == 1 {
            w.write_counters(&Counters::default()).unwrap();
        }
    }
    w.finish().unwrap()
}

fn pcapng_of(recording: &[u8]) -> (Vec<u8>, ExportStats) {
    let mut out = Vec::new();
    let stats = write_pcapng(Reader::new(recording).unwrap(), &mut out).unwrap();
    (out, stats)
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// Splits a file into (block type, body), checking lengths, alignment and trailers.
fn blocks(file: &[u8]) -> Vec<(u32, &[u8])> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < file.len() {
        let len = le32(file, at + 4) as usize;
        assert!(
            len >= 12 && len.is_multiple_of(4),
            "block at {at}: length {len}"
        );
        assert!(at + len <= file.len(), "block at {at} runs past the end");
        assert_eq!(le32(file, at + len - 4) as usize, len, "trailer at {at}");
        out.push((le32(file, at), &file[at + 8..at + len - 4]));
        at += len;
    }
    out
}

/// Options from `at` to the end of a body: padded, zero-filled, ended by opt_endofopt.
fn options(body: &[u8], mut at: usize) -> Vec<(u16, Vec<u8>)> {
    let mut out = Vec::new();
    loop {
        let (code, len) = (le16(body, at), usize::from(le16(body, at + 2)));
        at += 4;
        if code == 0 {
            assert_eq!((len, at), (0, body.len()), "opt_endofopt ends the block");
            return out;
        }
        out.push((code, body[at..at + len].to_vec()));
        let padded = len.next_multiple_of(4);
        assert!(body[at + len..at + padded].iter().all(|&b| b == 0));
        at += padded;
    }
}

fn texts(opts: &[(u16, Vec<u8>)], code: u16) -> Vec<String> {
    opts.iter()
        .filter(|(c, _)| *c == code)
        .map(|(_, v)| String::from_utf8(v.clone()).unwrap())
        .collect()
}

struct Epb {
    interface: u32,
    ts: u64,
    orig_len: u32,
    data: Vec<u8>,
    comments: Vec<String>,
}

fn epb(body: &[u8]) -> Epb {
    let cap = le32(body, 12) as usize;
    let data = body[20..20 + cap].to_vec();
    assert!(body[20 + cap..20 + cap.next_multiple_of(4)]
        .iter()
        .all(|&b| b == 0));
    Epb {
        interface: le32(body, 0),
        ts: u64::from(le32(body, 4)) << 32 | u64::from(le32(body, 8)),
        orig_len: le32(body, 16),
        data,
        comments: texts(&options(body, 20 + cap.next_multiple_of(4)), OPT_COMMENT),
    }
}

#[test]
fn pcapng_has_interfaces_packets_and_comments() {
    let (file, stats) = pcapng_of(&recording(&header(256)));
    assert_eq!(
        stats,
        ExportStats {
            packets: 5,
            without_bytes: 1,
            interfaces: 4,
            status: Status::Complete,
            damage: crate::record::Damage::default(),
        }
    );
    assert!(file.len().is_multiple_of(4));
    let blocks = blocks(&file);
    let kinds: Vec<u32> = blocks.iter().map(|b| b.0).collect();
    assert_eq!(kinds, [SHB, IDB, EPB, IDB, EPB, IDB, EPB, EPB, IDB, EPB]);

    let shb = blocks[0].1;
    assert_eq!(le32(shb, 0), BYTE_ORDER_MAGIC);
    assert_eq!((le16(shb, 4), le16(shb, 6)), (1, 0));
    assert_eq!(&shb[8..16], &[0xff; 8]);
    let shb_opts = options(shb, 16);
    assert_eq!(texts(&shb_opts, 3), ["Linux 6.18.0-test"]);
    assert!(texts(&shb_opts, OPT_COMMENT)[0].contains("web-1"));

    let mut names = Vec::new();
    for (_, body) in blocks.iter().filter(|b| b.0 == IDB) {
        assert_eq!((le16(body, 0), le16(body, 2), le32(body, 4)), (101, 0, 256));
        assert_eq!(LINKTYPE_RAW, 101);
        let opts = options(body, 8);
        assert_eq!(texts(&opts, IF_TSRESOL), ["\u{9}"]);
        assert_eq!(texts(&opts, IF_DESCRIPTION).len(), 1);
        names.extend(texts(&opts, IF_NAME));
    }
    assert_eq!(
        names,
        ["eth0@init", "veth-b@blue", "unknown", "if7@4026533000"]
    );
    let idb1 = options(blocks[3].1, 8);
    assert_eq!(
        texts(&idb1, IF_DESCRIPTION),
        ["ifindex 5 in network namespace 4026532500 (blue)"]
    );

    let packets: Vec<Epb> = blocks
        .iter()
        .filter(|b| b.0 == EPB)
        .map(|b| epb(b.1))
        .collect();
    let with_bytes: Vec<(Drop, Vec<u8>)> =
        drops().into_iter().filter(|d| !d.1.is_empty()).collect();
    for (p, (d, bytes)) in packets.iter().zip(&with_bytes) {
        assert_eq!(p.ts, BOOT + d.timestamp_ns);
        assert_eq!(&p.data, bytes);
        assert_eq!(p.orig_len, d.len.max(bytes.len() as u32));
    }
    let interfaces: Vec<u32> = packets.iter().map(|p| p.interface).collect();
    assert_eq!(interfaces, [0, 1, 2, 0, 3]);
    assert_eq!((packets[0].data.len(), packets[0].orig_len), (40, 60));
    assert_eq!((packets[1].data.len(), packets[1].orig_len), (48, 52));
    let first: Vec<&str> = packets.iter().map(|p| p.comments[0].as_str()).collect();
    assert_eq!(
        first,
        [
            "NETFILTER_DROP at nft_do_chain+0x3e8",
            "NOT_SPECIFIED at 0xffffffff82033a59",
            "reason 99 at nft_do_chain+0x3e8",
            "NETFILTER_DROP at nft_do_chain+0x3e8",
            "NETFILTER_DROP at 0xffffffff82033a59",
        ]
    );
    assert_eq!(
        packets[0].comments[1],
        "cpu 1, eth0@init (ifindex 2, netns 4026531840)"
    );
    assert_eq!(
        packets[2].comments[1],
        "cpu 1, no interface, netns 4026531840"
    );
}

#[test]
fn pcapng_without_reason_names_says_dropped_at() {
    let h = Header {
        reasons: vec![],
        ..header(256)
    };
    let (file, _) = pcapng_of(&recording(&h));
    let blocks = blocks(&file);
    let first = blocks.iter().find(|b| b.0 == EPB).unwrap();
    assert_eq!(epb(first.1).comments[0], "dropped at nft_do_chain+0x3e8");
}

#[test]
fn pcapng_needs_packet_bytes() {
    let rec = recording(&header(0));
    let mut out = Vec::new();
    let err = write_pcapng(Reader::new(&rec[..]).unwrap(), &mut out).unwrap_err();
    assert!(matches!(err, ExportError::NoPacketBytes));
    assert_eq!(
        err.to_string(),
        "the recording has no packet bytes; record with \
         `droptrace record --snaplen 256 -o FILE` to keep them"
    );
    assert!(out.is_empty());
}

#[test]
fn a_cut_recording_exports_what_was_read() {
    let mut w = writer(&header(256));
    let all = drops();
    for (d, bytes) in &all[..2] {
        w.write_drop(d, bytes).unwrap();
    }
    w.flush().unwrap();
    let cut_at = w.get_ref().len() as u64;
    w.write_drop(&all[2].0, &all[2].1).unwrap(); // never flushed
    let rec = w.get_ref().clone();

    let (file, stats) = pcapng_of(&rec);
    let truncated = Status::Truncated { at_offset: cut_at };
    assert_eq!((stats.packets, stats.status), (2, truncated));
    assert_eq!(blocks(&file).len(), 5);

    let mut out = Vec::new();
    let stats = write_jsonl(Reader::new(&rec[..]).unwrap(), &mut out).unwrap();
    assert_eq!((stats.packets, stats.status), (2, truncated));
    assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 2);
}

#[test]
fn jsonl_has_one_object_per_drop() {
    let rec = recording(&header(256));
    let mut out = Vec::new();
    let stats = write_jsonl(Reader::new(&rec[..]).unwrap(), &mut out).unwrap();
    assert_eq!(
        (stats.packets, stats.without_bytes, stats.interfaces),
        (6, 1, 0)
    );
    assert_eq!(stats.status, Status::Complete);
    let text = String::from_utf8(out).unwrap();
    assert!(text.ends_with('\n'));
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    let mut keys: Vec<&str> = lines[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    let mut expected = [
        "time_ns",
        "boottime_ns",
        "location",
        "address",
        "function",
        "offset",
        "module",
        "reason",
        "reason_code",
        "family",
        "protocol",
        "saddr",
        "daddr",
        "sport",
        "dport",
        "icmp_type",
        "icmp_code",
        "ifindex",
        "interface",
        "netns",
        "namespace",
        "container",
        "pod",
        "len",
        "l2_len",
        "cpu",
        "packet_bytes",
        "type",
        "time",
    ];
    expected.sort_unstable();
    assert_eq!(keys, expected);

    let want = serde_json::json!({
        "type": "drop", "time": "2026-05-28T20:26:40.000001000Z",
        "time_ns": BOOT + 1_000, "boottime_ns": 1_000u64,
        "location": "nft_do_chain+0x3e8", "address": "0xffffffffc0a123e8",
        "function": "nft_do_chain", "offset": 0x3e8, "module": null,
        "reason": "NETFILTER_DROP", "reason_code": 12, "family": "ipv4", "protocol": "tcp",
        "saddr": "10.0.0.1", "daddr": "10.0.0.2", "sport": 40_000, "dport": 443,
        "icmp_type": null, "icmp_code": null, "ifindex": 2, "interface": "eth0",
        "netns": INIT.inode, "namespace": "init", "container": null, "pod": null,
        "len": 60, "l2_len": 0, "cpu": 1, "packet_bytes": 40,
    });
    assert_eq!(lines[0], want);
    let six = &lines[1];
    assert_eq!(
        (
            &six["family"],
            &six["protocol"],
            &six["daddr"],
            &six["dport"]
        ),
        (
            &Value::from("ipv6"),
            &Value::from("udp"),
            &Value::from("fd00::2"),
            &Value::from(53)
        )
    );
    assert_eq!(
        (&six["location"], &six["function"], &six["namespace"]),
        (
            &Value::from("0xffffffff82033a59"),
            &Value::Null,
            &Value::from("blue")
        )
    );
    assert_eq!(lines[2]["packet_bytes"], 0);
    assert_eq!(lines[3]["reason"], "reason 99");
    assert_eq!(lines[3]["interface"], Value::Null);
    assert_eq!(
        (&lines[5]["interface"], &lines[5]["namespace"]),
        (&Value::Null, &Value::Null)
    );

    let h = Header {
        reasons: vec![],
        ..header(0)
    };
    let mut out = Vec::new();
    write_jsonl(Reader::new(&recording(&h)[..]).unwrap(), &mut out).unwrap();
    let first: Value = serde_json::from_slice(out.split(|&b| b == b'\n').next().unwrap()).unwrap();
    assert_eq!(
        (&first["reason"], &first["packet_bytes"]),
        (&Value::Null, &Value::from(0))
    );
}

/// Reads the export back with tshark, when it is installed.
#[test]
fn tshark_reads_the_comment() {
    if Command::new("tshark").arg("--version").output().is_err() {
        eprintln!("tshark is not installed: skipping the tshark check");
        return;
    }
    let (file, _) = pcapng_of(&recording(&header(256)));
    let path = std::env::temp_dir().join(format!("droptrace-export-{}.pcapng", std::process::id()));
    std::fs::write(&path, &file).unwrap();
    // `frame.comment` in Wireshark 1.x to 4.x; `pkt_comment` in some others.
    let fields = ["frame.comment", "pkt_comment"].iter().find_map(|field| {
        let out = Command::new("tshark")
            .arg("-r")
            .arg(&path)
            .args(["-T", "fields", "-e", field, "-e", "frame.interface_name"])
            .args(["-e", "ip.dst", "-e", "tcp.dstport", "-e", "ipv6.dst"])
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8(out.stdout).unwrap())
    });
    std::fs::remove_file(&path).unwrap();
    let text = fields.expect("tshark read the file");
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(
        lines[0][0].starts_with("NETFILTER_DROP at nft_do_chain+0x3e8"),
        "{text}"
    );
    assert_eq!(lines[0][1..4], ["eth0@init", "10.0.0.2", "443"], "{text}");
    assert_eq!(
        (lines[1][1], lines[1][4]),
        ("veth-b@blue", "fd00::2"),
        "{text}"
    );
}

/// Takes `room` bytes, then fails as a pipe whose reader has gone (`| head`).
struct ClosedAfter {
    room: usize,
}

impl std::io::Write for ClosedAfter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.room == 0 {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        }
        let n = buf.len().min(self.room);
        self.room -= n;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_closed_pipe_is_said_as_one() {
    // The command says nothing and exits 0 for it (commands::error's tests).
    let rec = recording(&header(256));
    let jsonl = write_jsonl(Reader::new(&rec[..]).unwrap(), ClosedAfter { room: 10 });
    let err = jsonl.unwrap_err();
    assert!(err.is_closed_pipe(), "{err}");
    let pcapng = write_pcapng(Reader::new(&rec[..]).unwrap(), ClosedAfter { room: 100 });
    assert!(pcapng.unwrap_err().is_closed_pipe());
    // Any other error is not.
    let full = ExportError::Io(std::io::Error::from_raw_os_error(28));
    assert!(!full.is_closed_pipe());
}

#[test]
fn a_damaged_block_is_exported_around_and_said() {
    let mut w = writer(&header(256));
    let all = drops();
    for (i, (d, bytes)) in all.iter().enumerate() {
        w.write_drop(d, bytes).unwrap();
        if i == 1 || i == 3 {
            w.flush().unwrap(); // blocks of drops 0-1, 2-3, 4-5
        }
    }
    let second_block_at = {
        let mut first = writer(&header(256));
        for (d, bytes) in &all[..2] {
            first.write_drop(d, bytes).unwrap();
        }
        first.flush().unwrap();
        first.get_ref().len()
    };
    let mut rec = w.finish().unwrap();
    rec[second_block_at + 20] ^= 0x01; // inside the payload of drops 2-3
    let mut out = Vec::new();
    let stats = write_jsonl(Reader::new(&rec[..]).unwrap(), &mut out).unwrap();
    let times: Vec<u64> = out
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            serde_json::from_slice::<Value>(l).unwrap()["boottime_ns"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(times, [1_000, 2_000, 5_000, 6_000]);
    assert_eq!(stats.status, Status::Complete);
    assert_eq!(
        (
            stats.damage.blocks,
            stats.damage.first_at,
            stats.damage.events
        ),
        (1, Some(second_block_at as u64), Some(2))
    );
    let (_, stats) = pcapng_of(&rec);
    assert_eq!((stats.packets, stats.damage.blocks), (4, 1));
}

#[test]
fn jsonl_has_a_line_per_tcp_retransmit_and_reset_with_its_match() {
    use crate::pipeline::tcp::{
        self,
        tests::{bytes_of, retransmit},
    };
    let mut h = header(0);
    h.reset_reasons = vec![(2, "NO_SOCKET".into())];
    let mut w = writer(&h);
    let s = 1_000_000_000;
    // After a drop by nft in blue 2 ms before; then one after no drop; then resets.
    let mut after = retransmit(10 * s, 40000, 10 * s - 2_000_000);
    after.drop.location = NFT;
    after.drop.netns = BLUE.inode;
    after.drop.netns_cookie = BLUE.cookie;
    after.drop.ifindex = 5;
    after.netns = BLUE.inode;
    after.netns_cookie = BLUE.cookie;
    let mut beyond = retransmit(11 * s, 40000, 0);
    beyond.segs = 2;
    let mut sent = retransmit(12 * s, 40001, 0);
    sent.kind = droptrace_common::TCP_RESET_SENT;
    sent.flags = droptrace_common::TCP_EVENT_HAS_REASON;
    sent.reason = 2;
    let mut received = retransmit(13 * s, 40002, 0);
    received.kind = droptrace_common::TCP_RESET_RECEIVED;
    for ev in [after, beyond, sent, received] {
        w.write_tcp(&tcp::decode(&bytes_of(&ev)).unwrap()).unwrap();
    }
    let rec = w.finish().unwrap();
    let mut out = Vec::new();
    write_jsonl(Reader::new(&rec[..]).unwrap(), &mut out).unwrap();
    let lines: Vec<Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "tcp_retransmit",
            "tcp_retransmit",
            "tcp_reset_sent",
            "tcp_reset_received"
        ]
    );
    let first = &lines[0];
    assert_eq!(first["time_ns"], BOOT + 10 * s);
    assert_eq!(first["local"], "10.1.0.1");
    assert_eq!(first["local_port"], 40000);
    assert_eq!(first["remote"], "10.1.0.2");
    assert_eq!(first["namespace"], "blue");
    assert_eq!(first["explained"], "drop_on_host");
    assert_eq!(first["segments"], 1);
    let drop = &first["drop"];
    assert_eq!(drop["location"], "nft_do_chain+0x3e8");
    assert_eq!(drop["interface"], "veth-b");
    assert_eq!(drop["namespace"], "blue");
    assert_eq!(drop["boottime_ns"], 10 * s - 2_000_000);
    assert_eq!(lines[1]["explained"], "beyond_host");
    assert_eq!(lines[1]["drop"], Value::Null);
    assert_eq!(lines[1]["segments"], 2);
    assert_eq!(lines[2]["reset_reason"], "NO_SOCKET");
    assert_eq!(lines[2]["reset_reason_code"], 2);
    assert!(lines[2].get("explained").is_none());
    assert!(lines[3].get("reset_reason").is_none());
    assert_eq!(lines[3]["local_port"], 40002);
}

/// A recording's XDP verdicts (counted, never events) end the JSON Lines: one
/// `xdp_verdicts` line per group, with the program, verdict, exact count and places.
#[test]
fn jsonl_ends_with_a_line_per_group_of_xdp_verdicts() {
    use crate::{
        kernel::xdp::XDP_DROP,
        pipeline::xdp::{group, XdpProgram},
    };
    let mut w = writer(&header(0));
    w.add_interface(BLUE, 5, "veth-b").unwrap();
    w.add_namespace(BLUE, "blue").unwrap();
    let counters = Counters {
        at_ns: 4_000_000_000,
        kernel: crate::pipeline::aggregate::KernelCounters {
            seen: 40,
            matched: 40,
            ..Default::default()
        },
        xdp: Some(crate::record::XdpCounts {
            programs: vec![XdpProgram {
                id: 42,
                name: "dt_xdp_udp".into(),
                untraced: None,
            }],
            groups: vec![(group(42, XDP_DROP, BLUE, 5), 40)],
        }),
        ..Counters::default()
    };
    w.write_counters(&counters).unwrap();
    let rec = w.finish().unwrap();
    let mut out = Vec::new();
    write_jsonl(Reader::new(&rec[..]).unwrap(), &mut out).unwrap();
    let lines: Vec<Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let l = &lines[0];
    assert_eq!(l["type"], "xdp_verdicts");
    assert_eq!(l["location"], "xdp dt_xdp_udp (id 42)");
    assert_eq!(l["program_id"], 42);
    assert_eq!(l["program"], "dt_xdp_udp");
    assert_eq!(l["reason"], "XDP_DROP");
    assert_eq!(l["count"], 40);
    assert_eq!(l["interface"], "veth-b");
    assert_eq!(l["namespace"], "blue");
    assert_eq!(l["last_boottime_ns"], 4_000_000_000u64);
}
