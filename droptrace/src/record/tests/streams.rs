//! Size on realistic streams of drops: the format must stay within 32 bytes a drop.
use std::net::{Ipv4Addr, Ipv6Addr};

use super::*;

/// xorshift64: deterministic and good enough to scatter ports and gaps.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A UDP flood from four addresses to one port, dropped on a full socket buffer.
fn udp_flood(n: usize) -> Vec<Drop> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut ts = 10_000_000_000;
    (0..n)
        .map(|_| {
            ts += 200 + rng.below(5_000);
            let src = Ipv4Addr::new(192, 0, 2, 1 + rng.below(4) as u8);
            let mut d = drop_at(ts, udp4("0.0.0.0", 1024 + rng.below(64_000) as u16, 53));
            d.packet.addrs = Some((src.into(), ip("10.0.0.2")));
            d.reason = 6;
            d.len = 84;
            d.cpu = rng.below(2) as u32;
            d
        })
        .collect()
}

/// TCP SYNs to a closed port, half IPv4 and half IPv6, from a few dozen clients.
fn syn_mix(n: usize) -> Vec<Drop> {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut ts = 10_000_000_000;
    (0..n)
        .map(|_| {
            ts += 1_000 + rng.below(20_000);
            let client = rng.below(24) as u8;
            let v6 = rng.below(2) == 1;
            let (src, dst, ethertype, len, location) = if v6 {
                let src = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(client) + 1);
                (
                    src.into(),
                    ip("2001:db8::2"),
                    ETH_P_IPV6,
                    80,
                    0xffff_ffff_81e4_1a20,
                )
            } else {
                let src = Ipv4Addr::new(198, 51, 100, client + 1);
                (
                    src.into(),
                    ip("203.0.113.2"),
                    ETH_P_IP,
                    60,
                    0xffff_ffff_81e0_3b10,
                )
            };
            let dport = if rng.below(5) == 0 { 80 } else { 443 };
            let mut d = drop_at(
                ts,
                Packet {
                    ethertype,
                    addrs: Some((src, dst)),
                    ip_proto: Some(6),
                    ports: Some((32_768 + rng.below(28_000) as u16, dport)),
                    icmp: None,
                    tcp_flags: None,
                },
            );
            d.location = location;
            d.reason = 3;
            d.len = len;
            d.cpu = rng.below(4) as u32;
            d
        })
        .collect()
}

/// Bytes a drop takes in a recording of `drops`, names and header left out.
fn bytes_per_drop(drops: &[Drop]) -> f64 {
    let mut w = Writer::new(Vec::new(), &header()).unwrap();
    let start = w.get_ref().len();
    for d in drops {
        w.write_drop(d, &[]).unwrap();
    }
    let bytes = w.finish().unwrap();
    let (_, _, items, status) = read_all(&bytes).unwrap();
    assert_eq!((items.len(), status), (drops.len(), Status::Complete));
    (bytes.len() - start) as f64 / drops.len() as f64
}

#[test]
fn a_udp_flood_takes_at_most_32_bytes_a_drop() {
    let size = bytes_per_drop(&udp_flood(100_000));
    println!("udp flood: {size:.2} bytes a drop");
    assert!(size <= 32.0, "{size:.2} bytes a drop");
}

#[test]
fn a_syn_mix_takes_at_most_32_bytes_a_drop() {
    let size = bytes_per_drop(&syn_mix(100_000));
    println!("syn mix: {size:.2} bytes a drop");
    assert!(size <= 32.0, "{size:.2} bytes a drop");
}

#[test]
fn drops_flushed_one_by_one_still_read_back() {
    // The caller flushes every 250 ms: at a trickle, one drop a block.
    let drops = syn_mix(50);
    let mut w = Writer::new(Vec::new(), &header()).unwrap();
    for d in &drops {
        w.write_drop(d, &[]).unwrap();
        w.flush().unwrap();
    }
    let (_, _, items, _) = read_all(&w.finish().unwrap()).unwrap();
    let expected: Vec<Owned> = drops.iter().map(|d| Owned::Drop(*d, vec![])).collect();
    assert_eq!(items, expected);
}
