//! A group's most recent drops, kept small: only what the group's key does not say
//! already (time, length, CPU, addresses, source port or ICMP type). A port scan keeps
//! 65,536 groups of them, so a sample takes 24 bytes instead of a whole `Drop`'s 88 (and a
//! group with IPv6 addresses 32 bytes more a sample, on the heap).
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::pipeline::event::{Drop, Group, Packet};

/// Recent drops kept per group, for details (addresses, interface, namespace, length).
pub const SAMPLES_PER_GROUP: usize = 8;

/// `Sample::cpu` holds the CPU number in its low 13 bits (the kernel allows at most
/// 8,192 CPUs) and says in its top three what else the sample has.
const CPU_MASK: u16 = (1 << 13) - 1;
/// Two IPv4 addresses, in `Sample::v4`.
const HAS_V4: u16 = 1 << 13;
/// Two IPv6 addresses (or a pair that is not two IPv4 ones), in `Recent::v6`.
const HAS_V6: u16 = 1 << 14;
/// An ICMP type and code, in `Sample::l4`.
const HAS_ICMP: u16 = 1 << 15;

/// `Sample::len` holds the length in these bits.
const LEN_MASK: u32 = (1 << 24) - 1;

/// One drop, less its group: 24 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Sample {
    timestamp_ns: u64,
    /// The length in its low 24 bits (an IP packet is at most 65,535 bytes, a jumbogram's
    /// skb less than 16 MiB), the layer-2 bytes in its top 8.
    len: u32,
    /// The CPU and the `HAS_*` bits.
    cpu: u16,
    /// Source port with ports; ICMP type and code with `HAS_ICMP`.
    l4: [u8; 2],
    /// Source and destination with `HAS_V4`.
    v4: [u8; 8],
}

/// An address pair that is not two IPv4 addresses is kept as IPv6; an IPv4 one of a mixed
/// pair (never made by the decoder) as its mapped form, given back as IPv4.
fn v6(a: IpAddr) -> Ipv6Addr {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

fn v4_back(a: Ipv6Addr) -> IpAddr {
    match a.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(a),
    }
}

type V6Pair = (Ipv6Addr, Ipv6Addr);

/// The last `SAMPLES_PER_GROUP` drops of a group, in place (no allocation per group but
/// the IPv6 addresses of a group that has any).
#[derive(Debug, Clone, Default)]
pub struct Recent {
    ring: [Sample; SAMPLES_PER_GROUP],
    /// IPv6 addresses of the samples with `HAS_V6`, at their place in the ring.
    v6: Option<Box<[V6Pair; SAMPLES_PER_GROUP]>>,
    /// Samples held (at most `SAMPLES_PER_GROUP`).
    len: u8,
    /// Where the next one goes.
    next: u8,
}

impl Recent {
    pub fn push(&mut self, drop: &Drop) {
        let at = usize::from(self.next);
        let p = &drop.packet;
        let mut sample = Sample {
            timestamp_ns: drop.timestamp_ns,
            len: drop.len.min(LEN_MASK) | u32::from(drop.l2_len) << 24,
            cpu: u16::try_from(drop.cpu).unwrap_or(CPU_MASK).min(CPU_MASK),
            ..Sample::default()
        };
        match (p.ports, p.icmp) {
            (Some((sport, _)), _) => sample.l4 = sport.to_be_bytes(),
            (None, Some((t, c))) => {
                sample.cpu |= HAS_ICMP;
                sample.l4 = [t, c];
            }
            (None, None) => {}
        }
        match p.addrs {
            None => {}
            Some((IpAddr::V4(s), IpAddr::V4(d))) => {
                sample.cpu |= HAS_V4;
                sample.v4[..4].copy_from_slice(&s.octets());
                sample.v4[4..].copy_from_slice(&d.octets());
            }
            Some((s, d)) => {
                sample.cpu |= HAS_V6;
                let unspecified = (Ipv6Addr::UNSPECIFIED, Ipv6Addr::UNSPECIFIED);
                let pairs = self
                    .v6
                    .get_or_insert_with(|| Box::new([unspecified; SAMPLES_PER_GROUP]));
                pairs[at] = (v6(s), v6(d));
            }
        }
        self.ring[at] = sample;
        self.next = ((at + 1) % SAMPLES_PER_GROUP) as u8;
        self.len = (usize::from(self.len) + 1).min(SAMPLES_PER_GROUP) as u8;
    }

    /// The drops held, oldest first, with the group's fields.
    pub fn drops<'a>(&'a self, group: &'a Group) -> impl Iterator<Item = Drop> + 'a {
        let len = usize::from(self.len);
        let first = (usize::from(self.next) + SAMPLES_PER_GROUP - len) % SAMPLES_PER_GROUP;
        (0..len).map(move |i| self.drop_at((first + i) % SAMPLES_PER_GROUP, group))
    }

    /// The newest drop held.
    pub fn latest(&self, group: &Group) -> Option<Drop> {
        let newest = (usize::from(self.next) + SAMPLES_PER_GROUP - 1) % SAMPLES_PER_GROUP;
        (self.len > 0).then(|| self.drop_at(newest, group))
    }

    /// The drop at `at` in the ring again, with the group's fields.
    fn drop_at(&self, at: usize, group: &Group) -> Drop {
        let sample = &self.ring[at];
        let addrs = if sample.cpu & HAS_V4 != 0 {
            let [a, b, c, d, e, f, g, h] = sample.v4;
            Some((
                IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
                IpAddr::V4(Ipv4Addr::new(e, f, g, h)),
            ))
        } else if sample.cpu & HAS_V6 != 0 {
            self.v6
                .as_ref()
                .map(|v6| (v4_back(v6[at].0), v4_back(v6[at].1)))
        } else {
            None
        };
        let icmp = sample.cpu & HAS_ICMP != 0;
        Drop {
            timestamp_ns: sample.timestamp_ns,
            location: group.location,
            reason: group.reason,
            netns: group.netns,
            ifindex: group.ifindex,
            len: sample.len & LEN_MASK,
            l2_len: (sample.len >> 24) as u8,
            cpu: u32::from(sample.cpu & CPU_MASK),
            packet: Packet {
                ethertype: group.ethertype,
                addrs,
                ip_proto: group.ip_proto,
                ports: group.dport.map(|d| (u16::from_be_bytes(sample.l4), d)),
                icmp: icmp.then_some((sample.l4[0], sample.l4[1])),
                tcp_flags: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{event::ETH_P_IPV6, fixtures::tcp4};

    fn round_trip(drop: Drop) {
        let mut recent = Recent::default();
        recent.push(&drop);
        let group = drop.group();
        assert_eq!(recent.drops(&group).collect::<Vec<_>>(), [drop]);
    }

    #[test]
    fn a_sample_gives_back_the_drop_it_was_made_of() {
        round_trip(tcp4(0xffff_ffff_8100_0000, 12, (5555, 1678), 1, 77));
        let mut v6 = tcp4(0xffff_ffff_8100_0000, 2, (40_000, 443), 3, 78);
        v6.packet.ethertype = ETH_P_IPV6;
        v6.packet.addrs = Some(("fd00::1".parse().unwrap(), "fd00::2".parse().unwrap()));
        round_trip(v6);
        let mut icmp = tcp4(1, 2, (0, 0), 7, 79);
        icmp.packet.ip_proto = Some(1);
        icmp.packet.ports = None;
        icmp.packet.icmp = Some((8, 0));
        icmp.cpu = 8191;
        round_trip(icmp);
        icmp.packet.icmp = None;
        icmp.packet.addrs = None;
        round_trip(icmp);
    }

    #[test]
    fn ipv4_and_ipv6_samples_of_one_group_keep_their_own_addresses() {
        let base = tcp4(1, 2, (3, 4), 0, 0);
        let g = base.group();
        let at = |t: u64, v6: bool| {
            let mut d = base;
            d.timestamp_ns = t;
            if v6 {
                let s: Ipv6Addr = format!("fd00::{t}").parse().unwrap();
                d.packet.addrs = Some((IpAddr::V6(s), "fd00::ffff".parse().unwrap()));
            } else {
                d.packet.addrs = Some((
                    IpAddr::V4(Ipv4Addr::new(10, 0, 0, t as u8)),
                    IpAddr::V4(Ipv4Addr::new(10, 0, 1, 1)),
                ));
            }
            d
        };
        let mut recent = Recent::default();
        let mut want = Vec::new();
        // Kinds alternate in runs, so each place of the ring holds both in turn.
        for t in 1..=19u64 {
            let d = at(t, t % 3 == 0);
            recent.push(&d);
            want.push(d);
        }
        assert_eq!(
            recent.drops(&g).collect::<Vec<_>>(),
            want[want.len() - SAMPLES_PER_GROUP..]
        );
        let mut only_v4 = Recent::default();
        only_v4.push(&at(1, false));
        assert!(only_v4.v6.is_none(), "no IPv6: nothing on the heap");
    }

    #[test]
    fn keeps_the_last_ones_oldest_first() {
        let mut recent = Recent::default();
        let g = tcp4(1, 2, (3, 4), 0, 0).group();
        for t in 0..20 {
            recent.push(&tcp4(1, 2, (3, 4), 0, t));
        }
        let times: Vec<u64> = recent.drops(&g).map(|d| d.timestamp_ns).collect();
        assert_eq!(times, (12..20).collect::<Vec<_>>());
        assert_eq!(recent.latest(&g).map(|d| d.timestamp_ns), Some(19));
        assert_eq!(Recent::default().latest(&g), None);
        assert_eq!(std::mem::size_of::<Sample>(), 24, "a sample's size");
    }
}
