//! A netlink socket made in the namespace of the calling thread, for one dump at a time:
//! rtnetlink's links and the netdev family's queue statistics (`links`), xfrm's policies
//! and states and the sockets of sock_diag (`collect`). It sends a dump request and keeps every datagram of the reply
//! up to NLMSG_DONE (or asks one question, the generic-netlink family's id, and keeps its
//! one answer); the replies are parsed by `kernel::netlink`, `kernel::netdev` and
//! `kernel::xfrm`, `kernel::sockdiag`, on captured bytes in their tests.
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::kernel::netlink;

/// A dump that does not end after this many datagrams is cut (thousands of interfaces).
const MAX_DATAGRAMS: usize = 4096;

pub struct NetlinkSocket {
    fd: OwnedFd,
    seq: u32,
}

impl NetlinkSocket {
    /// A socket of `protocol` (NETLINK_ROUTE, NETLINK_GENERIC, NETLINK_XFRM, NETLINK_SOCK_DIAG) in the namespace the calling
    /// thread is in.
    pub fn open(protocol: i32) -> std::io::Result<NetlinkSocket> {
        // SAFETY: plain socket(2); the descriptor is owned from here on.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                protocol,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a descriptor just made and owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // A reply that never comes (it always does) must not hold the reader forever.
        let timeout = libc::timeval {
            tv_sec: 2,
            tv_usec: 0,
        };
        // SAFETY: setsockopt with a timeval of the size given.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const timeout).cast(),
                size_of::<libc::timeval>() as libc::socklen_t,
            );
        }
        Ok(NetlinkSocket { fd, seq: 0 })
    }

    /// Sends the request `req` (a whole message; its sequence number is set here).
    fn send(&mut self, req: &[u8]) -> std::io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let mut req = req.to_vec();
        if let Some(seq) = req.get_mut(8..12) {
            seq.copy_from_slice(&self.seq.to_ne_bytes());
        }
        // SAFETY: a zeroed sockaddr_nl addresses the kernel.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: a buffer of the length given, a socket we own.
        let sent = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                req.as_ptr().cast(),
                req.len(),
                0,
                (&raw const addr).cast(),
                size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if sent != req.len() as isize {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Sends the request `req` (not a dump: answered by one message, or an error) and
    /// returns the datagram of the answer as it came.
    pub fn ask(&mut self, req: &[u8]) -> std::io::Result<Vec<u8>> {
        self.send(req)?;
        let mut buf = vec![0u8; 64 << 10];
        // SAFETY: a buffer of the length given, a socket we own.
        let got = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        let got = usize::try_from(got).map_err(|_| std::io::Error::last_os_error())?;
        buf.truncate(got);
        Ok(buf)
    }

    /// Sends the dump request `req` (a whole message; its sequence number is set here)
    /// and returns every datagram of the reply, one after another, up to NLMSG_DONE. An
    /// error the kernel answers with is a `netlink::NetlinkError` inside the `io::Error`.
    pub fn dump(&mut self, req: &[u8]) -> std::io::Result<Vec<u8>> {
        self.send(req)?;
        let mut reply = Vec::new();
        // The kernel fills datagrams of up to 32 kB for a dump.
        let mut buf = vec![0u8; 64 << 10];
        for _ in 0..MAX_DATAGRAMS {
            // SAFETY: a buffer of the length given, a socket we own.
            let got =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            let got = usize::try_from(got).map_err(|_| std::io::Error::last_os_error())?;
            let (_, done) = netlink::messages(&buf[..got]).map_err(std::io::Error::other)?;
            reply.extend_from_slice(&buf[..got]);
            if done {
                return Ok(reply);
            }
        }
        Err(std::io::Error::other("the dump did not end"))
    }
}
