//! How fast recordings are written and read, and how large they are.
//!
//! cargo run --release --example record_speed [DROPS]
//!
//! Writes DROPS (default 5 million) synthetic drops of two realistic kinds (a UDP flood
//! from a few addresses to one port; TCP SYNs to a closed port, half IPv4, half IPv6) to
//! a file in the temporary directory, reads them back, and prints bytes a drop and drops
//! a second each way, on one thread.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use droptrace::pipeline::event::{Drop, Packet, ETH_P_IP, ETH_P_IPV6};
use droptrace::pipeline::names::Location;
use droptrace::record::{Header, Item, Recording, Writer};

/// Distinct drops generated; the stream repeats them with later timestamps.
const POOL: usize = 1 << 20;

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn udp_flood(rng: &mut Rng, ts: u64) -> Drop {
    Drop {
        timestamp_ns: ts,
        location: 0xffff_ffff_81f2_3c40,
        reason: 6,
        netns: droptrace::pipeline::event::Netns::new(4_026_531_840, 4097),
        ifindex: 2,
        len: 84,
        l2_len: 0,
        cpu: rng.below(2) as u32,
        packet: Packet {
            ethertype: ETH_P_IP,
            addrs: Some((
                IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1 + rng.below(4) as u8)),
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            )),
            ip_proto: Some(17),
            ports: Some((1024 + rng.below(64_000) as u16, 53)),
            icmp: None,
            tcp_flags: None,
        },
    }
}

fn syn(rng: &mut Rng, ts: u64) -> Drop {
    let client = rng.below(24) as u8 + 1;
    let (addrs, ethertype, len, location) = if rng.below(2) == 1 {
        let src = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(client));
        let dst = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xff02);
        (
            (src.into(), dst.into()),
            ETH_P_IPV6,
            80,
            0xffff_ffff_81e4_1a20,
        )
    } else {
        let src = Ipv4Addr::new(198, 51, 100, client);
        let dst = Ipv4Addr::new(203, 0, 113, 2);
        (
            (src.into(), dst.into()),
            ETH_P_IP,
            60,
            0xffff_ffff_81e0_3b10,
        )
    };
    Drop {
        timestamp_ns: ts,
        location,
        reason: 3,
        netns: droptrace::pipeline::event::Netns::new(4_026_531_840, 4097),
        ifindex: 2,
        len,
        l2_len: 0,
        cpu: rng.below(4) as u32,
        packet: Packet {
            ethertype,
            addrs: Some(addrs),
            ip_proto: Some(6),
            ports: Some((32_768 + rng.below(28_000) as u16, 443)),
            icmp: None,
            tcp_flags: None,
        },
    }
}

fn run(name: &str, make: fn(&mut Rng, u64) -> Drop, drops: usize) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut ts = 10_000_000_000;
    let pool: Vec<Drop> = (0..POOL)
        .map(|_| {
            ts += 200 + rng.below(5_000);
            make(&mut rng, ts)
        })
        .collect();
    let span = ts;
    let path = std::env::temp_dir().join(format!("droptrace-record-speed-{name}.dtr"));
    let header = Header {
        hostname: "bench".into(),
        ..Header::default()
    };

    let started = Instant::now();
    let mut writer = Writer::create(&path, &header).expect("create the recording");
    for location in [
        0xffff_ffff_81f2_3c40,
        0xffff_ffff_81e4_1a20,
        0xffff_ffff_81e0_3b10,
    ] {
        let symbol = Location {
            function: Some("udp_queue_rcv_one_skb".into()),
            offset: Some(0x2f1),
            module: None,
            display: "udp_queue_rcv_one_skb+0x2f1".into(),
        };
        writer.add_location(location, &symbol).expect("write");
    }
    for i in 0..drops {
        let mut d = pool[i % POOL];
        d.timestamp_ns += (i / POOL) as u64 * span;
        writer.write_drop(&d, &[]).expect("write");
    }
    writer.finish().expect("finish the recording");
    let write_s = started.elapsed().as_secs_f64();
    let size = std::fs::metadata(&path).expect("recording written").len();

    let started = Instant::now();
    let mut reader = Recording::open(&path).expect("open the recording");
    let (mut read, mut ports) = (0usize, 0u64);
    let status = reader
        .for_each(|item| {
            if let Item::Drop(d, _) = item {
                read += 1;
                ports += d.packet.ports.map_or(0, |(s, _)| u64::from(s));
            }
        })
        .expect("read the recording");
    let read_s = started.elapsed().as_secs_f64();
    std::fs::remove_file(&path).expect("remove the recording");
    assert_eq!(read, drops, "{status:?}");

    println!(
        "{name:>9}: {drops} drops, {:.2} bytes a drop, write {:.2} M drops/s, read {:.2} M drops/s \
         (checksum of ports {ports})",
        size as f64 / drops as f64,
        drops as f64 / write_s / 1e6,
        drops as f64 / read_s / 1e6,
    );
}

fn main() {
    let drops = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("DROPS is a number"))
        .unwrap_or(5_000_000);
    run("udp flood", udp_flood, drops);
    run("syn mix", syn, drops);
}
