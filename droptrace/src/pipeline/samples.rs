//! A group's most recent drops, kept small: only what the group's key does not say
//! already (time, length, CPU, addresses, source port or ICMP type). A port scan keeps
//! 65,536 groups of them, so an IPv4 sample takes 32 bytes instead of a whole `Drop`'s 88.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::pipeline::event::{Drop, Group, Packet};

/// Recent drops kept per group, for details (addresses, interface, namespace, length).
pub const SAMPLES_PER_GROUP: usize = 8;

/// Source and destination: IPv4 in place, IPv6 (twice the size, rarer) on the heap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Addrs {
    #[default]
    None,
    V4([u8; 4], [u8; 4]),
    V6(Box<(Ipv6Addr, Ipv6Addr)>),
}

/// Set in `Sample::cpu` when the sample has an ICMP type and code (a CPU number never
/// comes near: the kernel allows at most 8,192).
const HAS_ICMP: u16 = 1 << 15;

/// One drop, less its group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Sample {
    timestamp_ns: u64,
    len: u32,
    /// The CPU, and `HAS_ICMP`.
    cpu: u16,
    /// Source port with ports; ICMP type and code with `HAS_ICMP`.
    l4: [u8; 2],
    addrs: Addrs,
}

impl Sample {
    fn of(drop: &Drop) -> Sample {
        let p = &drop.packet;
        let mut cpu = u16::try_from(drop.cpu).unwrap_or(HAS_ICMP - 1) & (HAS_ICMP - 1);
        let l4 = match (p.ports, p.icmp) {
            (Some((sport, _)), _) => sport.to_be_bytes(),
            (None, Some((t, c))) => {
                cpu |= HAS_ICMP;
                [t, c]
            }
            (None, None) => [0; 2],
        };
        let addrs = match p.addrs {
            None => Addrs::None,
            Some((IpAddr::V4(s), IpAddr::V4(d))) => Addrs::V4(s.octets(), d.octets()),
            Some((s, d)) => Addrs::V6(Box::new((v6(s), v6(d)))),
        };
        Sample {
            timestamp_ns: drop.timestamp_ns,
            len: drop.len,
            cpu,
            l4,
            addrs,
        }
    }

    /// The drop again, with the group's fields.
    fn drop(&self, group: &Group) -> Drop {
        let addrs = match &self.addrs {
            Addrs::None => None,
            Addrs::V4(s, d) => Some((
                IpAddr::V4(Ipv4Addr::from(*s)),
                IpAddr::V4(Ipv4Addr::from(*d)),
            )),
            Addrs::V6(pair) => Some((v4_back(pair.0), v4_back(pair.1))),
        };
        let icmp = self.cpu & HAS_ICMP != 0;
        Drop {
            timestamp_ns: self.timestamp_ns,
            location: group.location,
            reason: group.reason,
            netns: group.netns,
            ifindex: group.ifindex,
            len: self.len,
            cpu: u32::from(self.cpu & (HAS_ICMP - 1)),
            packet: Packet {
                ethertype: group.ethertype,
                addrs,
                ip_proto: group.ip_proto,
                ports: group.dport.map(|d| (u16::from_be_bytes(self.l4), d)),
                icmp: icmp.then_some((self.l4[0], self.l4[1])),
            },
        }
    }
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

/// The last `SAMPLES_PER_GROUP` drops of a group, in place (no allocation per group).
#[derive(Debug, Clone, Default)]
pub struct Recent {
    ring: [Sample; SAMPLES_PER_GROUP],
    /// Samples held (at most `SAMPLES_PER_GROUP`).
    len: u8,
    /// Where the next one goes.
    next: u8,
}

impl Recent {
    pub fn push(&mut self, drop: &Drop) {
        self.ring[usize::from(self.next)] = Sample::of(drop);
        self.next = ((usize::from(self.next) + 1) % SAMPLES_PER_GROUP) as u8;
        self.len = (usize::from(self.len) + 1).min(SAMPLES_PER_GROUP) as u8;
    }

    /// The drops held, oldest first, with the group's fields.
    pub fn drops<'a>(&'a self, group: &'a Group) -> impl Iterator<Item = Drop> + 'a {
        let len = usize::from(self.len);
        let first = (usize::from(self.next) + SAMPLES_PER_GROUP - len) % SAMPLES_PER_GROUP;
        (0..len).map(move |i| self.ring[(first + i) % SAMPLES_PER_GROUP].drop(group))
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
    fn keeps_the_last_ones_oldest_first() {
        let mut recent = Recent::default();
        let g = tcp4(1, 2, (3, 4), 0, 0).group();
        for t in 0..20 {
            recent.push(&tcp4(1, 2, (3, 4), 0, t));
        }
        let times: Vec<u64> = recent.drops(&g).map(|d| d.timestamp_ns).collect();
        assert_eq!(times, (12..20).collect::<Vec<_>>());
        assert_eq!(std::mem::size_of::<Sample>(), 32, "an IPv4 sample's size");
    }
}
