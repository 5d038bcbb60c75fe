//! A namespace's IPsec (xfrm) policies and states, from the kernel's NETLINK_XFRM dumps
//! (what `ip -s xfrm policy` and `ip -s xfrm state` print): each policy with its selector,
//! direction, action, templates and when it was last used; each state (security
//! association) with its addresses, protocol, SPI and counters. The layouts are fixed
//! kernel ABI (`include/uapi/linux/xfrm.h`); every length is checked, unknown attributes
//! skipped. Tested on dumps captured on the machine (`droptrace/fixtures/netlink`).
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

use super::netlink::{attributes, messages, u16_at, u32_at, NetlinkError};

/// `XFRM_MSG_GETSA` and `XFRM_MSG_GETPOLICY`, sent with `NLM_F_DUMP`.
pub const XFRM_MSG_GETSA: u16 = 0x12;
pub const XFRM_MSG_GETPOLICY: u16 = 0x15;
const XFRM_MSG_NEWSA: u16 = 0x10;
const XFRM_MSG_NEWPOLICY: u16 = 0x13;
const XFRMA_TMPL: u16 = 5;
const XFRMA_MARK: u16 = 21;
const XFRMA_IF_ID: u16 = 31;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_HDRLEN: usize = 16;
/// `struct xfrm_userpolicy_info` (164 bytes, 8-aligned).
const POLICY_INFO: usize = 168;
/// `struct xfrm_usersa_info` (217 bytes, 8-aligned).
const SA_INFO: usize = 224;
/// `struct xfrm_user_tmpl`.
const TMPL: usize = 64;
const AF_INET6: u16 = 10;

/// A dump request of `kind` (`XFRM_MSG_GETPOLICY`, `XFRM_MSG_GETSA`): the header alone.
pub fn dump_request(kind: u16) -> [u8; NLMSG_HDRLEN] {
    let mut b = [0u8; NLMSG_HDRLEN];
    b[0..4].copy_from_slice(&(NLMSG_HDRLEN as u32).to_ne_bytes());
    b[4..6].copy_from_slice(&kind.to_ne_bytes());
    b[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    b
}

/// Which packets a policy or state applies to (`struct xfrm_selector`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Selector {
    pub src: IpAddr,
    pub src_len: u8,
    pub dst: IpAddr,
    pub dst_len: u8,
    /// The IP protocol number; 0 is any.
    pub proto: u8,
    /// Ports (host order) with their masks; a mask of 0 is any port.
    pub sport: u16,
    pub sport_mask: u16,
    pub dport: u16,
    pub dport_mask: u16,
    /// An interface index, 0 for any.
    pub ifindex: i32,
}

/// One template of a policy: the transform a packet must have had (inbound) or gets
/// (outbound).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Template {
    /// 50 ESP, 51 AH, 108 IPComp.
    pub proto: u8,
    /// 0 transport, 1 tunnel, 2 ro, 3 in_trigger, 4 beet.
    pub mode: u8,
    /// The tunnel's ends (unspecified in transport mode).
    pub src: IpAddr,
    pub dst: IpAddr,
    pub reqid: u32,
    /// `level use`: a packet without it still passes.
    pub optional: bool,
}

/// One policy (`struct xfrm_userpolicy_info` and its attributes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Policy {
    pub selector: Selector,
    /// 0 in, 1 out, 2 fwd.
    pub dir: u8,
    /// 0 allow, 1 block.
    pub action: u8,
    pub priority: u32,
    pub index: u32,
    /// Seconds since the epoch when it was made, and when a packet last matched it (0:
    /// never).
    pub add_time: u64,
    pub use_time: u64,
    pub templates: Vec<Template>,
    /// The mark it matches (value, mask), if any.
    pub mark: Option<(u32, u32)>,
    /// The xfrm interface id it is bound to, if any.
    pub if_id: Option<u32>,
}

/// One state, a security association (`struct xfrm_usersa_info`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct State {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    /// Host order.
    pub spi: u32,
    pub mode: u8,
    pub reqid: u32,
    pub bytes: u64,
    pub packets: u64,
    pub use_time: u64,
    /// Packets refused by the replay window, and by the integrity check.
    pub replay_dropped: u32,
    pub integrity_failed: u32,
}

fn u8_at(b: &[u8], at: usize) -> Option<u8> {
    b.get(at).copied()
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn be16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// An `xfrm_address_t` (16 bytes) of `family`.
fn address(b: &[u8], at: usize, family: u16) -> Option<IpAddr> {
    let bytes: [u8; 16] = b.get(at..at + 16)?.try_into().ok()?;
    Some(match family {
        AF_INET6 => IpAddr::V6(Ipv6Addr::from(bytes)),
        _ => IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])),
    })
}

fn selector(b: &[u8]) -> Option<Selector> {
    let family = u16_at(b, 40)?;
    Some(Selector {
        dst: address(b, 0, family)?,
        src: address(b, 16, family)?,
        dport: be16_at(b, 32)?,
        dport_mask: be16_at(b, 34)?,
        sport: be16_at(b, 36)?,
        sport_mask: be16_at(b, 38)?,
        dst_len: u8_at(b, 42)?,
        src_len: u8_at(b, 43)?,
        proto: u8_at(b, 44)?,
        ifindex: u32_at(b, 48)? as i32,
    })
}

fn template(b: &[u8]) -> Option<Template> {
    let family = u16_at(b, 24)?;
    Some(Template {
        dst: address(b, 0, family)?,
        proto: u8_at(b, 20)?,
        src: address(b, 28, family)?,
        reqid: u32_at(b, 44)?,
        mode: u8_at(b, 48)?,
        optional: u8_at(b, 50)? != 0,
    })
}

fn policy(msg: &[u8]) -> Option<Policy> {
    let info = msg.get(NLMSG_HDRLEN..NLMSG_HDRLEN + POLICY_INFO)?;
    let mut p = Policy {
        selector: selector(info)?,
        add_time: u64_at(info, 120 + 16)?,
        use_time: u64_at(info, 120 + 24)?,
        priority: u32_at(info, 152)?,
        index: u32_at(info, 156)?,
        dir: u8_at(info, 160)?,
        action: u8_at(info, 161)?,
        templates: Vec::new(),
        mark: None,
        if_id: None,
    };
    for (kind, payload) in attributes(msg.get(NLMSG_HDRLEN + POLICY_INFO..)?) {
        match kind {
            XFRMA_TMPL => {
                p.templates = payload.chunks_exact(TMPL).filter_map(template).collect();
            }
            XFRMA_MARK => p.mark = Some((u32_at(payload, 0)?, u32_at(payload, 4)?)),
            XFRMA_IF_ID => p.if_id = u32_at(payload, 0),
            _ => {}
        }
    }
    Some(p)
}

fn state(msg: &[u8]) -> Option<State> {
    let info = msg.get(NLMSG_HDRLEN..NLMSG_HDRLEN + SA_INFO)?;
    let family = u16_at(info, 212)?;
    Some(State {
        dst: address(info, 56, family)?,
        spi: u32::from_be_bytes(info.get(72..76)?.try_into().ok()?),
        proto: u8_at(info, 76)?,
        src: address(info, 80, family)?,
        bytes: u64_at(info, 160)?,
        packets: u64_at(info, 168)?,
        use_time: u64_at(info, 184)?,
        replay_dropped: u32_at(info, 196)?,
        integrity_failed: u32_at(info, 200)?,
        reqid: u32_at(info, 208)?,
        mode: u8_at(info, 214)?,
    })
}

/// What one dump held: its policies (from a policy dump) and states (from a state dump).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dump {
    pub policies: Vec<Policy>,
    pub states: Vec<State>,
}

/// Parses the datagrams of a dump, one after another, up to NLMSG_DONE.
pub fn parse_dump(b: &[u8]) -> Result<Dump, NetlinkError> {
    let (messages, _) = messages(b)?;
    let mut dump = Dump::default();
    for (kind, msg) in messages {
        let at = msg.as_ptr() as usize - b.as_ptr() as usize;
        match kind {
            XFRM_MSG_NEWPOLICY => dump
                .policies
                .push(policy(msg).ok_or(NetlinkError::Short(at))?),
            XFRM_MSG_NEWSA => dump.states.push(state(msg).ok_or(NetlinkError::Short(at))?),
            _ => {}
        }
    }
    Ok(dump)
}

/// The protocol's name as ip prints it (`tcp`, `udp`, `esp`...), or its number.
pub fn proto_name(proto: u8) -> String {
    match proto {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        50 => "esp".into(),
        51 => "ah".into(),
        58 => "ipv6-icmp".into(),
        108 => "comp".into(),
        132 => "sctp".into(),
        n => n.to_string(),
    }
}

impl Selector {
    /// Whether a packet of these addresses, protocol and ports matches (a port of `None`
    /// is unknown: it matches only a selector that takes any port).
    pub fn matches(
        &self,
        src: IpAddr,
        dst: IpAddr,
        proto: Option<u8>,
        sport: Option<u16>,
        dport: Option<u16>,
    ) -> bool {
        let port_ok = |port: Option<u16>, want: u16, mask: u16| {
            mask == 0 || port.is_some_and(|p| p & mask == want & mask)
        };
        in_prefix(src, self.src, self.src_len)
            && in_prefix(dst, self.dst, self.dst_len)
            && (self.proto == 0 || proto == Some(self.proto))
            && port_ok(sport, self.sport, self.sport_mask)
            && port_ok(dport, self.dport, self.dport_mask)
    }

    /// The selector as `ip xfrm policy` takes it: `src 10.9.0.2/32 dst 10.9.0.1/32 proto
    /// udp dport 5000`.
    pub fn text(&self) -> String {
        let mut t = format!(
            "src {}/{} dst {}/{}",
            self.src, self.src_len, self.dst, self.dst_len
        );
        if self.proto != 0 {
            t.push_str(&format!(" proto {}", proto_name(self.proto)));
            if self.sport_mask != 0 {
                t.push_str(&format!(" sport {}", self.sport));
            }
            if self.dport_mask != 0 {
                t.push_str(&format!(" dport {}", self.dport));
            }
        }
        t
    }
}

fn in_prefix(addr: IpAddr, net: IpAddr, len: u8) -> bool {
    match (addr, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let len = u32::from(len.min(32));
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let len = u32::from(len.min(128));
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

impl Policy {
    pub fn dir_name(&self) -> &'static str {
        match self.dir {
            0 => "in",
            1 => "out",
            2 => "fwd",
            _ => "?",
        }
    }

    pub fn blocks(&self) -> bool {
        self.action == 1
    }

    /// What identifies it to `ip xfrm policy get/delete`: `dir in src ... dst ...` with its
    /// mark and interface id where it has them.
    pub fn identity(&self) -> String {
        let mut t = format!("dir {} {}", self.dir_name(), self.selector.text());
        if let Some((v, m)) = self.mark {
            t.push_str(&format!(" mark {v:#x} mask {m:#x}"));
        }
        if let Some(id) = self.if_id {
            t.push_str(&format!(" if_id {id:#x}"));
        }
        t
    }

    /// `src 10.9.0.2/32 dst 10.9.0.1/32 dir in action block priority 0 (index 8)`, with
    /// the transforms it asks for.
    pub fn describe(&self) -> String {
        let mut t = format!(
            "{} dir {} action {} priority {}",
            self.selector.text(),
            self.dir_name(),
            if self.blocks() { "block" } else { "allow" },
            self.priority
        );
        for tmpl in &self.templates {
            t.push_str(&format!(
                " tmpl proto {} mode {}{}{}",
                proto_name(tmpl.proto),
                match tmpl.mode {
                    0 => "transport",
                    1 => "tunnel",
                    4 => "beet",
                    _ => "other",
                },
                if tmpl.reqid != 0 {
                    format!(" reqid {}", tmpl.reqid)
                } else {
                    String::new()
                },
                if tmpl.optional { " level use" } else { "" }
            ));
        }
        t.push_str(&format!(" (index {})", self.index));
        t
    }
}

impl State {
    /// `esp spi 0x00001000 10.9.0.2 -> 10.9.0.1 (transport, reqid 1)`.
    pub fn describe(&self) -> String {
        format!(
            "{} spi {:#010x} {} -> {} ({}, reqid {})",
            proto_name(self.proto),
            self.spi,
            self.src,
            self.dst,
            if self.mode == 1 {
                "tunnel"
            } else {
                "transport"
            },
            self.reqid
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::kernel::netlink_fixture as fixture;

    fn text(name: &str) -> String {
        String::from_utf8(fixture(name)).unwrap()
    }

    #[test]
    fn policies_read_as_ip_prints_them() {
        // Four policies made in a namespace (see fixtures/README.capture); `ip -s xfrm
        // policy` beside them.
        let dump = parse_dump(&fixture("xfrm_getpolicy.6.12.bin")).unwrap();
        assert!(dump.states.is_empty());
        let ip = text("xfrm_getpolicy.6.12.ip-s.txt");
        assert_eq!(dump.policies.len(), 4, "{dump:#?}");
        let block = dump
            .policies
            .iter()
            .find(|p| p.selector.dport == 5000)
            .unwrap();
        assert_eq!(
            block.describe(),
            format!(
                "src 10.9.0.2/32 dst 10.9.0.1/32 proto udp dport 5000 dir in action block priority 10 (index {})",
                block.index
            )
        );
        assert!(
            ip.contains(&format!(
                "dir in action block priority 10 ptype main \n\tindex {}",
                block.index
            )) || ip.contains(&format!("index {}", block.index)),
            "{ip}"
        );
        assert_eq!(
            block.identity(),
            "dir in src 10.9.0.2/32 dst 10.9.0.1/32 proto udp dport 5000"
        );
        let esp = dump
            .policies
            .iter()
            .find(|p| p.selector.dport == 5001)
            .unwrap();
        assert!(!esp.blocks());
        assert_eq!(esp.templates.len(), 1);
        assert_eq!(
            (
                esp.templates[0].proto,
                esp.templates[0].mode,
                esp.templates[0].reqid
            ),
            (50, 0, 7)
        );
        assert!(
            esp.describe()
                .contains("tmpl proto esp mode transport reqid 7"),
            "{}",
            esp.describe()
        );
        let out = dump.policies.iter().find(|p| p.dir == 1).unwrap();
        assert_eq!(out.mark, Some((0x10, 0xff)));
        assert_eq!(out.selector.text(), "src 10.9.0.1/32 dst 10.9.0.0/24");
        assert!(
            out.identity().ends_with("mark 0x10 mask 0xff"),
            "{}",
            out.identity()
        );
        let v6 = dump
            .policies
            .iter()
            .find(|p| p.selector.src.is_ipv6())
            .unwrap();
        assert_eq!(
            v6.selector.text(),
            "src fd09::2/128 dst fd09::1/128 proto tcp sport 443"
        );
        for p in &dump.policies {
            assert!(p.add_time > 1_700_000_000, "{p:?}");
        }
    }

    #[test]
    fn a_state_reads_with_its_spi_and_reqid() {
        let dump = parse_dump(&fixture("xfrm_getsa.6.12.bin")).unwrap();
        assert!(dump.policies.is_empty());
        assert_eq!(dump.states.len(), 1, "{dump:#?}");
        let s = &dump.states[0];
        assert_eq!(
            s.describe(),
            "esp spi 0x00001000 10.9.0.1 -> 10.9.0.2 (transport, reqid 7)"
        );
        let ip = text("xfrm_getsa.6.12.ip-s.txt");
        assert!(
            ip.contains("proto esp spi 0x00001000(4096) reqid 7(0x00000007) mode transport"),
            "{ip}"
        );
    }

    #[test]
    fn a_selector_matches_by_prefix_protocol_and_port() {
        let dump = parse_dump(&fixture("xfrm_getpolicy.6.12.bin")).unwrap();
        let block = dump
            .policies
            .iter()
            .find(|p| p.selector.dport == 5000)
            .unwrap();
        let (a, b): (IpAddr, IpAddr) = ("10.9.0.2".parse().unwrap(), "10.9.0.1".parse().unwrap());
        assert!(block.selector.matches(a, b, Some(17), None, Some(5000)));
        assert!(!block.selector.matches(a, b, Some(17), None, Some(5001)));
        assert!(!block.selector.matches(a, b, Some(6), None, Some(5000)));
        assert!(!block.selector.matches(b, a, Some(17), None, Some(5000)));
        // An unknown port never matches a selector that names one.
        assert!(!block.selector.matches(a, b, Some(17), None, None));
        let out = dump.policies.iter().find(|p| p.dir == 1).unwrap();
        let c: IpAddr = "10.9.0.77".parse().unwrap();
        assert!(out.selector.matches(b, c, None, None, None));
        assert!(!out
            .selector
            .matches(b, "10.9.1.1".parse().unwrap(), None, None, None));
    }

    #[test]
    fn a_cut_message_is_an_error_not_a_panic() {
        let bytes = fixture("xfrm_getpolicy.6.12.bin");
        for cut in [10, 20, 100, 200] {
            let mut b = bytes[..cut].to_vec();
            // A message claiming more than there is.
            if b.len() >= 4 {
                b[0..4].copy_from_slice(&(cut as u32 + 8).to_ne_bytes());
            }
            assert!(parse_dump(&b).is_err(), "cut at {cut}");
        }
        // A whole header whose policy is shorter than the struct.
        let mut short = bytes[..40].to_vec();
        short[0..4].copy_from_slice(&40u32.to_ne_bytes());
        assert!(parse_dump(&short).is_err());
    }
}
