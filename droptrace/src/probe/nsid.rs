//! Which namespace a `link-netnsid` names. The id of a veth's peer namespace is local to
//! the namespace that prints it, so it is resolved there: for each namespace droptrace
//! knows, ask the kernel (rtnetlink RTM_GETNSID with that namespace's file descriptor)
//! which id it has from inside the first one. Exact, and it works for namespaces without
//! a name under /run/netns (containers).
use std::{fs::File, os::fd::AsRawFd, path::Path};

use super::netns::in_netns;

const RTM_GETNSID: u16 = 90;
const RTM_NEWNSID: u16 = 88;
const NETNSA_NSID: u16 = 1;
const NETNSA_FD: u16 = 3;
const NLMSG_ERROR: u16 = 2;

/// The request: nlmsghdr (16), rtgenmsg padded to 4, one u32 attribute NETNSA_FD.
fn request(fd: u32) -> [u8; 28] {
    let mut b = [0u8; 28];
    b[0..4].copy_from_slice(&28u32.to_ne_bytes());
    b[4..6].copy_from_slice(&RTM_GETNSID.to_ne_bytes());
    b[6..8].copy_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    b[8..12].copy_from_slice(&1u32.to_ne_bytes());
    // b[16] = AF_UNSPEC, then padding.
    b[20..22].copy_from_slice(&8u16.to_ne_bytes());
    b[22..24].copy_from_slice(&NETNSA_FD.to_ne_bytes());
    b[24..28].copy_from_slice(&fd.to_ne_bytes());
    b
}

/// The NETNSA_NSID of an RTM_NEWNSID answer; `None` for an error or a malformed reply.
fn parse_reply(reply: &[u8]) -> Option<i32> {
    let u16_at = |i: usize| Some(u16::from_ne_bytes(reply.get(i..i + 2)?.try_into().ok()?));
    let len = u32::from_ne_bytes(reply.get(0..4)?.try_into().ok()?) as usize;
    let kind = u16_at(4)?;
    if kind == NLMSG_ERROR || kind != RTM_NEWNSID || len > reply.len() {
        return None;
    }
    let mut at = 20;
    while at + 4 <= len {
        let alen = usize::from(u16_at(at)?);
        let atype = u16_at(at + 2)? & 0x3fff;
        if alen < 4 || at + alen > len {
            return None;
        }
        if atype == NETNSA_NSID && alen >= 8 {
            return Some(i32::from_ne_bytes(
                reply.get(at + 4..at + 8)?.try_into().ok()?,
            ));
        }
        at += (alen + 3) & !3;
    }
    None
}

/// The id that the namespace at `other` has inside the one at `from` (`None`: droptrace's
/// own); -1 when it has none there, `None` when the kernel could not be asked.
pub fn nsid_of(from: Option<&Path>, other: &File) -> Option<i32> {
    let fd = u32::try_from(other.as_raw_fd()).ok()?;
    in_netns(from, move || {
        // SAFETY: plain socket(2); the descriptor is closed below.
        let sock = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if sock < 0 {
            return None;
        }
        let req = request(fd);
        // SAFETY: a zeroed sockaddr_nl addresses the kernel.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as u16;
        let mut buf = [0u8; 1024];
        // SAFETY: valid buffers of the lengths given, a socket we own.
        let got = unsafe {
            let sent = libc::sendto(
                sock,
                req.as_ptr().cast(),
                req.len(),
                0,
                (&raw const addr).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            );
            let got = if sent == req.len() as isize {
                libc::recv(sock, buf.as_mut_ptr().cast(), buf.len(), 0)
            } else {
                -1
            };
            libc::close(sock);
            got
        };
        let got = usize::try_from(got).ok()?;
        parse_reply(&buf[..got])
    })
    .ok()
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_and_a_reply_have_the_kernels_layout() {
        let r = request(7);
        assert_eq!(u32::from_ne_bytes(r[0..4].try_into().unwrap()), 28);
        assert_eq!(u16::from_ne_bytes(r[4..6].try_into().unwrap()), RTM_GETNSID);
        assert_eq!(u32::from_ne_bytes(r[24..28].try_into().unwrap()), 7);
        // RTM_NEWNSID with NETNSA_NSID = 3, as the kernel answers.
        let mut reply = vec![0u8; 28];
        reply[0..4].copy_from_slice(&28u32.to_ne_bytes());
        reply[4..6].copy_from_slice(&RTM_NEWNSID.to_ne_bytes());
        reply[20..22].copy_from_slice(&8u16.to_ne_bytes());
        reply[22..24].copy_from_slice(&NETNSA_NSID.to_ne_bytes());
        reply[24..28].copy_from_slice(&3i32.to_ne_bytes());
        assert_eq!(parse_reply(&reply), Some(3));
        reply[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        assert_eq!(parse_reply(&reply), None);
        assert_eq!(parse_reply(&reply[..10]), None);
    }
}
