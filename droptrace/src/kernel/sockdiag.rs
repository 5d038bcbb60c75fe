//! A namespace's TCP and UDP sockets from the kernel's NETLINK_SOCK_DIAG dumps (what `ss`
//! asks for): per socket its family, state, two ends, bound device, queues, owner uid,
//! inode, whether an IPv6 socket takes IPv4 too, and its memory with its own drop counter
//! (`INET_DIAG_SKMEMINFO`, ss's `skmem:(...)`). The layouts are fixed kernel ABI
//! (`include/uapi/linux/inet_diag.h`, `sock_diag.h`); every length is checked, unknown
//! attributes skipped. Tested on dumps captured on the machine (`droptrace/fixtures/netlink`).
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::netlink::{attributes, messages, u32_at, NetlinkError};

/// `NETLINK_SOCK_DIAG` (`NETLINK_INET_DIAG`).
pub const NETLINK_SOCK_DIAG: i32 = 4;
/// The request and reply type.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_HDRLEN: usize = 16;
/// `struct inet_diag_req_v2`.
const REQ_LEN: usize = 56;
/// `struct inet_diag_msg`.
const MSG_LEN: usize = 72;
const INET_DIAG_SKMEMINFO: u16 = 7;
const INET_DIAG_SKV6ONLY: u16 = 11;
pub const AF_INET: u8 = 2;
pub const AF_INET6: u8 = 10;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;

/// TCP states (`include/net/tcp_states.h`); a UDP socket is ESTABLISHED when connected,
/// CLOSE when not.
pub const TCP_ESTABLISHED: u8 = 1;
pub const TCP_CLOSE: u8 = 7;
pub const TCP_LISTEN: u8 = 10;
/// States 1 to 11: every socket (`ss -a`).
pub const ALL_STATES: u32 = 0xffe;
/// ss's `state connected`: every state but LISTEN and CLOSE (SYN-RECV brings the
/// request sockets, TIME-WAIT the timewait ones).
pub const CONNECTED_STATES: u32 = ALL_STATES & !(1 << TCP_LISTEN) & !(1 << TCP_CLOSE);
/// Listening sockets only.
pub const LISTEN_STATES: u32 = 1 << TCP_LISTEN;

/// A dump request for the sockets of `protocol` in `family` whose state is in `states`
/// (a bit per state), with their memory (`INET_DIAG_SKMEMINFO`).
pub fn dump_request(family: u8, protocol: u8, states: u32) -> [u8; NLMSG_HDRLEN + REQ_LEN] {
    let mut b = [0u8; NLMSG_HDRLEN + REQ_LEN];
    b[0..4].copy_from_slice(&((NLMSG_HDRLEN + REQ_LEN) as u32).to_ne_bytes());
    b[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    b[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    // inet_diag_req_v2: family, protocol, extensions wanted (a bit per attribute - 1),
    // pad, states; the socket id stays zero (every socket).
    b[16] = family;
    b[17] = protocol;
    b[18] = 1 << (INET_DIAG_SKMEMINFO - 1);
    b[20..24].copy_from_slice(&states.to_ne_bytes());
    b
}

/// One socket of a dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiagSocket {
    /// `AF_INET` or `AF_INET6`.
    pub family: u8,
    /// The TCP state number (see `TCP_*`).
    pub state: u8,
    pub local: IpAddr,
    pub local_port: u16,
    pub peer: IpAddr,
    pub peer_port: u16,
    /// The device it is bound to (`SO_BINDTODEVICE`), 0 for none.
    pub ifindex: u32,
    /// For a listener the accept queue now; for UDP the bytes waiting; for a connection
    /// the bytes not yet read.
    pub rqueue: u32,
    /// For a listener its backlog; else the bytes not yet acknowledged or sent.
    pub wqueue: u32,
    pub uid: u32,
    /// 0 for request and timewait sockets (no file).
    pub inode: u32,
    /// IPv6 sockets only: whether it refuses IPv4.
    pub v6only: Option<bool>,
    /// `SK_MEMINFO_*` in the kernel's order (rmem_alloc, rcvbuf, wmem_alloc, sndbuf,
    /// fwd_alloc, wmem_queued, optmem, backlog, drops), as many as it sent; empty for
    /// request and timewait sockets.
    pub skmem: Vec<u32>,
}

impl DiagSocket {
    /// The socket's own drop counter (`sk_drops`), where the kernel sent it.
    pub fn drops(&self) -> Option<u32> {
        self.skmem.get(8).copied()
    }
}

/// Parses the datagrams of one dump, one after another, up to NLMSG_DONE.
pub fn parse_dump(b: &[u8]) -> Result<Vec<DiagSocket>, NetlinkError> {
    let (messages, _) = messages(b)?;
    let mut out = Vec::with_capacity(messages.len());
    for (kind, msg) in messages {
        if kind == SOCK_DIAG_BY_FAMILY {
            let at = msg.as_ptr() as usize - b.as_ptr() as usize;
            out.push(socket(msg).ok_or(NetlinkError::Short(at))?);
        }
    }
    Ok(out)
}

fn socket(msg: &[u8]) -> Option<DiagSocket> {
    let m = msg.get(NLMSG_HDRLEN..NLMSG_HDRLEN + MSG_LEN)?;
    let family = m[0];
    let port = |at: usize| u16::from_be_bytes([m[at], m[at + 1]]);
    let addr = |at: usize| -> Option<IpAddr> {
        match family {
            AF_INET => Some(IpAddr::V4(Ipv4Addr::new(
                m[at],
                m[at + 1],
                m[at + 2],
                m[at + 3],
            ))),
            AF_INET6 => {
                let bytes: [u8; 16] = m[at..at + 16].try_into().ok()?;
                Some(IpAddr::V6(Ipv6Addr::from(bytes)))
            }
            _ => None,
        }
    };
    let mut s = DiagSocket {
        family,
        state: m[1],
        local_port: port(4),
        peer_port: port(6),
        local: addr(8)?,
        peer: addr(24)?,
        ifindex: u32_at(m, 40)?,
        rqueue: u32_at(m, 56)?,
        wqueue: u32_at(m, 60)?,
        uid: u32_at(m, 64)?,
        inode: u32_at(m, 68)?,
        v6only: None,
        skmem: Vec::new(),
    };
    for (kind, payload) in attributes(msg.get(NLMSG_HDRLEN + MSG_LEN..)?) {
        match kind {
            INET_DIAG_SKMEMINFO => {
                s.skmem = payload
                    .chunks_exact(4)
                    .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
            }
            INET_DIAG_SKV6ONLY => s.v6only = payload.first().map(|v| *v != 0),
            _ => {}
        }
    }
    Some(s)
}

/// The state as ss prints it (a TCP socket in CLOSE, like a UDP one, is `UNCONN`).
pub fn state_name(state: u8) -> &'static str {
    match state {
        1 => "ESTAB",
        2 => "SYN-SENT",
        3 | 12 => "SYN-RECV",
        4 => "FIN-WAIT-1",
        5 => "FIN-WAIT-2",
        6 => "TIME-WAIT",
        7 => "UNCONN",
        8 => "CLOSE-WAIT",
        9 => "LAST-ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        _ => "UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::netlink_fixture;

    #[test]
    fn requests_ask_for_memory_and_the_states_given() {
        let r = dump_request(AF_INET6, IPPROTO_TCP, LISTEN_STATES);
        assert_eq!(u32_at(&r, 0), Some(72));
        assert_eq!(&r[4..8], &[20, 0, 0x01, 0x03]);
        assert_eq!((r[16], r[17], r[18]), (AF_INET6, IPPROTO_TCP, 0x40));
        assert_eq!(u32_at(&r, 20), Some(1 << 10));
        assert!(r[24..].iter().all(|b| *b == 0));
        assert_eq!(CONNECTED_STATES, 0b1011_0111_1110);
    }

    fn find(dump: &[DiagSocket], port: u16) -> &DiagSocket {
        dump.iter().find(|s| s.local_port == port).unwrap()
    }

    #[test]
    fn listeners_with_full_queues_and_their_drops() {
        let v4 = parse_dump(&netlink_fixture("sock_diag.tcp-listen.v4.bin")).unwrap();
        assert_eq!(v4.len(), 3);
        let full = find(&v4, 5302);
        assert_eq!(
            (full.family, full.state, full.rqueue, full.wqueue),
            (AF_INET, TCP_LISTEN, 2, 1),
            "accept queue 2 over backlog 1"
        );
        assert_eq!(full.local, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!((full.peer, full.peer_port), ("0.0.0.0".parse().unwrap(), 0));
        assert_eq!((full.inode, full.uid, full.ifindex), (3_682_488, 0, 0));
        assert_eq!(full.skmem.len(), 9);
        assert_eq!((full.skmem[1], full.drops()), (131_072, Some(8)));
        assert_eq!(full.v6only, None);
        assert_eq!(find(&v4, 5308).wqueue, 4096);

        let v6 = parse_dump(&netlink_fixture("sock_diag.tcp-listen.v6.bin")).unwrap();
        assert_eq!(v6.len(), 3);
        let full6 = find(&v6, 5303);
        assert_eq!(
            (full6.local, full6.v6only),
            (IpAddr::V6(Ipv6Addr::LOCALHOST), Some(true))
        );
        assert_eq!((full6.rqueue, full6.drops()), (2, Some(8)));
        let dual = find(&v6, 5304);
        assert_eq!(
            (dual.local, dual.v6only),
            (IpAddr::V6(Ipv6Addr::UNSPECIFIED), Some(false))
        );
    }

    #[test]
    fn udp_sockets_with_drops_devices_and_peers() {
        let v4 = parse_dump(&netlink_fixture("sock_diag.udp.v4.bin")).unwrap();
        let small = find(&v4, 5301);
        assert_eq!((small.state, small.rqueue), (TCP_CLOSE, 1664));
        assert_eq!(
            (small.skmem[0], small.skmem[1], small.drops()),
            (1664, 2304, Some(298))
        );
        assert_eq!(find(&v4, 5305).ifindex, 1, "bound to lo");
        let connected = find(&v4, 5309);
        assert_eq!(
            (connected.state, connected.peer_port),
            (TCP_ESTABLISHED, 5301)
        );
        let v6 = parse_dump(&netlink_fixture("sock_diag.udp.v6.bin")).unwrap();
        let scoped = find(&v6, 5306);
        assert_eq!(scoped.local, "fe80::1".parse::<IpAddr>().unwrap());
        assert_eq!(scoped.ifindex, 3);
        assert_eq!(find(&v6, 5301).drops(), Some(298));
    }

    #[test]
    fn connections_with_request_sockets_and_dual_stack_ends() {
        let v4 = parse_dump(&netlink_fixture("sock_diag.tcp-connected.v4.bin")).unwrap();
        assert!(v4
            .iter()
            .all(|s| s.state != TCP_LISTEN && s.state != TCP_CLOSE));
        let unread = v4
            .iter()
            .find(|s| s.local_port == 8080 && s.rqueue == 1000)
            .unwrap();
        assert_eq!((unread.state, unread.inode), (TCP_ESTABLISHED, 3_682_506));
        assert!(v4.iter().any(|s| state_name(s.state) == "CLOSE-WAIT"));
        assert!(v4.iter().any(|s| state_name(s.state) == "SYN-SENT"));
        // Accepted by the kernel, not yet by the program: no file, no inode.
        assert!(v4.iter().any(|s| s.local_port == 5302 && s.inode == 0));
        let v6 = parse_dump(&netlink_fixture("sock_diag.tcp-connected.v6.bin")).unwrap();
        let mapped = find(&v6, 8081);
        assert_eq!(mapped.local, "::ffff:127.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn malformed_dumps_are_errors() {
        let dump = netlink_fixture("sock_diag.tcp-listen.v4.bin");
        assert!(!parse_dump(&dump).unwrap().is_empty());
        for cut in 1..dump.len() {
            let _ = parse_dump(&dump[..cut]);
        }
        // A message of the socket type too short for its inet_diag_msg.
        let mut short = vec![0u8; 32];
        short[0..4].copy_from_slice(&32u32.to_ne_bytes());
        short[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        assert_eq!(parse_dump(&short), Err(NetlinkError::Short(0)));
        // An unknown family.
        let mut odd = dump.clone();
        odd[16] = 7;
        assert!(parse_dump(&odd).is_err());
    }
}
