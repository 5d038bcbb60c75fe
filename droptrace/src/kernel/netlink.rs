//! rtnetlink's answer to a dump of links (RTM_GETLINK): per interface its index, its
//! name, the kernel's `rtnl_link_stats64` (IFLA_STATS64) and which XDP programs it has
//! (IFLA_XDP). A small reader written for the few attributes droptrace needs, rather than
//! a netlink crate: the workspace has none, and these layouts are fixed kernel ABI
//! (`include/uapi/linux/if_link.h`). Every length is checked; unknown attributes are
//! skipped. Tested on replies captured on the machine (`droptrace/fixtures/netlink`).

/// `RTM_GETLINK` with `NLM_F_REQUEST | NLM_F_DUMP`.
pub const RTM_GETLINK: u16 = 18;
const RTM_NEWLINK: u16 = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
/// nlmsghdr (16) + ifinfomsg (16).
const HEADERS: usize = 32;
const IFLA_IFNAME: u16 = 3;
const IFLA_STATS64: u16 = 23;
const IFLA_XDP: u16 = 43;
const IFLA_XDP_ATTACHED: u16 = 2;
const IFLA_XDP_PROG_ID: u16 = 4;
const IFLA_XDP_DRV_PROG_ID: u16 = 5;
const IFLA_XDP_SKB_PROG_ID: u16 = 6;
const IFLA_XDP_HW_PROG_ID: u16 = 7;
/// `XDP_ATTACHED_MULTI`: one program per mode, each in its own attribute.
const XDP_ATTACHED_MULTI: u8 = 4;

/// The fields of `struct rtnl_link_stats64`, in the kernel's order (each a u64). A kernel
/// older than the last fields sends a shorter struct: only what it sent is read.
pub const STATS64_FIELDS: [&str; 25] = [
    "rx_packets",
    "tx_packets",
    "rx_bytes",
    "tx_bytes",
    "rx_errors",
    "tx_errors",
    "rx_dropped",
    "tx_dropped",
    "multicast",
    "collisions",
    "rx_length_errors",
    "rx_over_errors",
    "rx_crc_errors",
    "rx_frame_errors",
    "rx_fifo_errors",
    "rx_missed_errors",
    "tx_aborted_errors",
    "tx_carrier_errors",
    "tx_fifo_errors",
    "tx_heartbeat_errors",
    "tx_window_errors",
    "rx_compressed",
    "tx_compressed",
    "rx_nohandler",
    "rx_otherhost_dropped",
];

/// One interface of the dump.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Link {
    pub ifindex: u32,
    pub name: String,
    /// `rtnl_link_stats64` by `STATS64_FIELDS` order (as many as the kernel sent; empty
    /// when it sent none).
    pub stats64: Vec<u64>,
    /// Ids of the XDP programs attached (generic, native, offloaded), 0 excluded.
    pub xdp_programs: Vec<u32>,
}

impl Link {
    /// A stats64 field by name (`None`: this kernel does not send it).
    pub fn stat(&self, field: &str) -> Option<u64> {
        let at = STATS64_FIELDS.iter().position(|f| *f == field)?;
        self.stats64.get(at).copied()
    }
}

/// What a reply failed on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetlinkError {
    #[error("netlink message cut short at byte {0}")]
    Short(usize),
    #[error("netlink error {0} from the kernel")]
    Kernel(i32),
}

/// The request for a dump of every link, with sequence number `seq`.
pub fn getlink_request(seq: u32) -> [u8; HEADERS] {
    let mut b = [0u8; HEADERS];
    b[0..4].copy_from_slice(&(HEADERS as u32).to_ne_bytes());
    b[4..6].copy_from_slice(&RTM_GETLINK.to_ne_bytes());
    b[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    b[8..12].copy_from_slice(&seq.to_ne_bytes());
    // ifinfomsg: AF_UNSPEC and zeroes (every interface).
    b
}

/// What one datagram of the dump held.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Part {
    pub links: Vec<Link>,
    /// NLMSG_DONE was in it: the dump is complete.
    pub done: bool,
}

pub(crate) fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The netlink attributes in `b`: (type without flags, payload).
pub(crate) fn attributes(b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let len = usize::from(u16_at(b, at)?);
        let kind = u16_at(b, at + 2)? & 0x3fff;
        if len < 4 || at + len > b.len() {
            return None;
        }
        let payload = &b[at + 4..at + len];
        at += (len + 3) & !3;
        Some((kind, payload))
    })
}

/// Messages of a reply, each as (type, the whole message with its header).
pub type Messages<'a> = Vec<(u16, &'a [u8])>;

/// The messages of one datagram of a dump (or of several, one after another) up to
/// NLMSG_DONE, and whether it came.
pub fn messages(b: &[u8]) -> Result<(Messages<'_>, bool), NetlinkError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < b.len() {
        let len = u32_at(b, at).ok_or(NetlinkError::Short(at))? as usize;
        let kind = u16_at(b, at + 4).ok_or(NetlinkError::Short(at))?;
        if len < 16 || at + len > b.len() {
            return Err(NetlinkError::Short(at));
        }
        let msg = &b[at..at + len];
        match kind {
            NLMSG_DONE => return Ok((out, true)),
            NLMSG_ERROR => {
                let errno = u32_at(msg, 16).ok_or(NetlinkError::Short(at))? as i32;
                return Err(NetlinkError::Kernel(-errno));
            }
            _ => out.push((kind, msg)),
        }
        at += (len + 3) & !3;
    }
    Ok((out, false))
}

/// Parses one datagram of an RTM_GETLINK dump (several messages, the last may be DONE).
pub fn parse_part(b: &[u8]) -> Result<Part, NetlinkError> {
    let (messages, done) = messages(b)?;
    let mut part = Part {
        done,
        ..Part::default()
    };
    for (kind, msg) in messages {
        if kind == RTM_NEWLINK {
            // Its offset in `b`, for the error.
            let at = msg.as_ptr() as usize - b.as_ptr() as usize;
            part.links
                .push(parse_link(msg).ok_or(NetlinkError::Short(at))?);
        }
    }
    Ok(part)
}

fn parse_link(msg: &[u8]) -> Option<Link> {
    let mut link = Link {
        // ifinfomsg: family (1), pad (1), type (2), index (4 at 20), flags, change.
        ifindex: u32_at(msg, 20)?,
        ..Link::default()
    };
    for (kind, payload) in attributes(msg.get(HEADERS..)?) {
        match kind {
            IFLA_IFNAME => {
                let name = payload.split(|b| *b == 0).next().unwrap_or_default();
                link.name = String::from_utf8_lossy(name).into_owned();
            }
            IFLA_STATS64 => {
                link.stats64 = payload
                    .chunks_exact(8)
                    .take(STATS64_FIELDS.len())
                    .map(|c| u64::from_ne_bytes(c.try_into().unwrap_or_default()))
                    .collect();
            }
            IFLA_XDP => link.xdp_programs = xdp_programs(payload),
            _ => {}
        }
    }
    Some(link)
}

/// The program ids of an IFLA_XDP nest: one per mode with XDP_ATTACHED_MULTI, else the
/// one IFLA_XDP_PROG_ID.
fn xdp_programs(nest: &[u8]) -> Vec<u32> {
    let mut attached = 0u8;
    let (mut one, mut each) = (None, Vec::new());
    for (kind, payload) in attributes(nest) {
        let id = u32_at(payload, 0).filter(|id| *id != 0);
        match kind {
            IFLA_XDP_ATTACHED => attached = payload.first().copied().unwrap_or(0),
            IFLA_XDP_PROG_ID => one = id,
            IFLA_XDP_DRV_PROG_ID | IFLA_XDP_SKB_PROG_ID | IFLA_XDP_HW_PROG_ID => {
                each.extend(id);
            }
            _ => {}
        }
    }
    match attached {
        0 => Vec::new(),
        XDP_ATTACHED_MULTI => each,
        _ => one.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::kernel::netlink_fixture as fixture;

    /// Every datagram of a captured dump, read as the kernel sent them one after another.
    fn links(bytes: &[u8]) -> Vec<Link> {
        let part = parse_part(bytes).unwrap();
        assert!(part.done, "the capture ends with NLMSG_DONE");
        part.links
    }

    #[test]
    fn a_veth_whose_peer_is_down_has_the_tx_drops_ip_showed() {
        // Captured in a namespace after 7 UDP datagrams were sent on dtva, whose peer
        // dtvb is down; `ip -s -s link` beside it says TX dropped 7.
        let links = links(&fixture("rtm_getlink.veth-peer-down.bin"));
        let names: Vec<&str> = links.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["lo", "dtvb", "dtva"]);
        let dtva = &links[2];
        assert_eq!(dtva.ifindex, 3);
        assert_eq!(dtva.stats64.len(), STATS64_FIELDS.len());
        assert_eq!(dtva.stat("tx_dropped"), Some(7));
        assert_eq!(dtva.stat("rx_dropped"), Some(0));
        assert_eq!(dtva.stat("tx_carrier_errors"), Some(0));
        assert!(dtva.xdp_programs.is_empty());
        let text = String::from_utf8(fixture("rtm_getlink.veth-peer-down.ip-s-s.txt")).unwrap();
        assert!(text.contains("3: dtva@dtvb"), "{text}");
    }

    #[test]
    fn the_machines_own_interfaces_read_whole() {
        let links = links(&fixture("rtm_getlink.host.bin"));
        assert!(links.iter().any(|l| l.name == "lo" && l.ifindex == 1));
        assert!(links.iter().any(|l| l.name == "eth0"));
        assert!(links
            .iter()
            .all(|l| l.stats64.len() == STATS64_FIELDS.len()));
        let lo = &links[0];
        assert!(lo.stat("rx_packets").unwrap() > 0);
        assert_eq!(lo.stat("rx_packets"), lo.stat("tx_packets"));
    }

    #[test]
    fn xdp_programs_are_read_in_both_forms() {
        let attr = |kind: u16, payload: &[u8]| {
            let mut a = Vec::new();
            a.extend_from_slice(&(4 + payload.len() as u16).to_ne_bytes());
            a.extend_from_slice(&kind.to_ne_bytes());
            a.extend_from_slice(payload);
            a.resize((a.len() + 3) & !3, 0);
            a
        };
        // One program, native mode (XDP_ATTACHED_DRV = 1).
        let mut nest = attr(IFLA_XDP_ATTACHED, &[1]);
        nest.extend(attr(IFLA_XDP_PROG_ID, &42u32.to_ne_bytes()));
        assert_eq!(xdp_programs(&nest), [42]);
        // Generic and native at once.
        let mut nest = attr(IFLA_XDP_ATTACHED, &[XDP_ATTACHED_MULTI]);
        nest.extend(attr(IFLA_XDP_SKB_PROG_ID, &7u32.to_ne_bytes()));
        nest.extend(attr(IFLA_XDP_DRV_PROG_ID, &9u32.to_ne_bytes()));
        assert_eq!(xdp_programs(&nest), [7, 9]);
        assert!(xdp_programs(&attr(IFLA_XDP_ATTACHED, &[0])).is_empty());
    }

    #[test]
    fn cut_replies_and_kernel_errors_are_errors() {
        let bytes = fixture("rtm_getlink.veth-peer-down.bin");
        assert!(matches!(
            parse_part(&bytes[..100]),
            Err(NetlinkError::Short(0))
        ));
        let mut err = vec![0u8; 36];
        err[0..4].copy_from_slice(&36u32.to_ne_bytes());
        err[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        err[16..20].copy_from_slice(&(-1i32).to_ne_bytes());
        assert_eq!(parse_part(&err), Err(NetlinkError::Kernel(1)));
        let req = getlink_request(5);
        assert_eq!(u16_at(&req, 4), Some(RTM_GETLINK));
        assert_eq!(u32_at(&req, 8), Some(5));
    }
}
