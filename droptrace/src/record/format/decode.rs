//! Decoding a block's payload: the other end of every encoder in `format.rs`.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;

/// Reads a block's payload; every read is bounds-checked and fails with a [`Fault`].
pub struct Cursor<'a> {
    buf: &'a [u8],
    pub pos: usize,
    /// The file's namespaces carry cookies (format version 3 on).
    cookies: bool,
    /// The file has TCP figures (format version 4 on).
    tcp: bool,
    /// The file has XDP verdicts (format version 5 on).
    xdp: bool,
}

impl<'a> Cursor<'a> {
    /// A payload of a file of the current format.
    pub fn new(buf: &'a [u8]) -> Cursor<'a> {
        Cursor::of_version(buf, FORMAT_VERSION)
    }

    /// A payload of a file of format `version`.
    pub fn of_version(buf: &'a [u8], version: u32) -> Cursor<'a> {
        Cursor {
            buf,
            pos: 0,
            cookies: version >= VERSION_COOKIES,
            tcp: version >= VERSION_TCP,
            xdp: version >= VERSION_XDP,
        }
    }

    /// Inverse of [`put_netns`]; a file from before cookies gives cookie 0.
    pub fn netns(&mut self) -> Result<Netns, Fault> {
        let inode = self.varint_u32()?;
        let cookie = if self.cookies { self.varint()? } else { 0 };
        Ok(Netns::new(inode, cookie))
    }

    /// Bytes already read, by their range.
    pub fn slice(&self, range: std::ops::Range<usize>) -> &'a [u8] {
        self.buf.get(range).unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn fault(&self, what: &'static str) -> Fault {
        Fault { at: self.pos, what }
    }

    pub fn u8(&mut self) -> Result<u8, Fault> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| self.fault("block ends early"))?;
        self.pos += 1;
        Ok(b)
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], Fault> {
        if n > self.remaining() {
            return Err(self.fault("block ends early"));
        }
        let b = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(b)
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], Fault> {
        let b = self.bytes(N)?;
        let mut out = [0; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    pub fn u64_le(&mut self) -> Result<u64, Fault> {
        self.array().map(u64::from_le_bytes)
    }

    pub fn u16_le(&mut self) -> Result<u16, Fault> {
        self.array().map(u16::from_le_bytes)
    }

    #[inline]
    pub fn varint(&mut self) -> Result<u64, Fault> {
        let start = self.pos;
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            if shift == 63 && b > 1 {
                self.pos = start;
                return Err(self.fault("bad varint"));
            }
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        self.pos = start;
        Err(self.fault("bad varint"))
    }

    pub fn varint_u32(&mut self) -> Result<u32, Fault> {
        let start = self.pos;
        let v = self.varint()?;
        u32::try_from(v).map_err(|_| Fault {
            at: start,
            what: "value out of range",
        })
    }

    pub fn varint_u16(&mut self) -> Result<u16, Fault> {
        let start = self.pos;
        let v = self.varint()?;
        u16::try_from(v).map_err(|_| Fault {
            at: start,
            what: "value out of range",
        })
    }

    /// `0` for none, else the value plus one.
    fn optional(&mut self, max: u64) -> Result<Option<u64>, Fault> {
        let start = self.pos;
        match self.varint()? {
            0 => Ok(None),
            v if v - 1 <= max => Ok(Some(v - 1)),
            _ => Err(Fault {
                at: start,
                what: "value out of range",
            }),
        }
    }

    /// A count of entries that each take at least `min_size` bytes: never more than the
    /// bytes left could hold, so a hostile count cannot make a reader allocate.
    pub fn count(&mut self, min_size: usize, max: usize) -> Result<usize, Fault> {
        let start = self.pos;
        let n = self.varint()?;
        if n > max as u64 || n as usize > self.remaining() / min_size {
            return Err(Fault {
                at: start,
                what: "impossible count",
            });
        }
        Ok(n as usize)
    }

    pub fn str(&mut self) -> Result<&'a str, Fault> {
        let start = self.pos;
        let n = self.varint()?;
        if n > MAX_STRING as u64 {
            self.pos = start;
            return Err(self.fault("string too long"));
        }
        let b = self.bytes(n as usize)?;
        std::str::from_utf8(b).map_err(|_| Fault {
            at: start,
            what: "string not UTF-8",
        })
    }

    pub fn addr(&mut self) -> Result<IpAddr, Fault> {
        match self.u8()? {
            4 => Ok(IpAddr::V4(Ipv4Addr::from(self.array::<4>()?))),
            6 => Ok(IpAddr::V6(Ipv6Addr::from(self.array::<16>()?))),
            _ => {
                self.pos -= 1;
                Err(self.fault("bad address family"))
            }
        }
    }

    pub fn context(&mut self) -> Result<Context, Fault> {
        Ok(Context {
            location: self.u64_le()?,
            reason: self.varint_u32()?,
            netns: self.netns()?,
            ifindex: self.varint_u32()?,
            cpu: self.varint_u32()?,
            ethertype: self.varint_u16()?,
            ip_proto: self.optional(255)?.map(|p| p as u8),
        })
    }

    /// Inverse of [`encode_group`].
    pub fn group(&mut self) -> Result<Group, Fault> {
        let location = self.u64_le()?;
        let reason = self.varint_u32()?;
        let ethertype = self.varint_u16()?;
        let (netns, ifindex) = (self.netns()?, self.varint_u32()?);
        Ok(Group {
            location,
            reason,
            ethertype,
            ip_proto: self.optional(255)?.map(|p| p as u8),
            dport: self.optional(65_535)?.map(|p| p as u16),
            netns,
            ifindex,
        })
    }

    pub fn header(&mut self) -> Result<Header, Fault> {
        let droptrace_version = self.str()?.to_owned();
        let kernel_release = self.str()?.to_owned();
        let hostname = self.str()?.to_owned();
        let boot_time_ns = self.varint()?;
        let started_ns = self.varint()?;
        let filters = self.str()?.to_owned();
        let snaplen = self.varint_u32()?;
        if snaplen > MAX_SNAPLEN {
            return Err(self.fault("snaplen too large"));
        }
        let n = self.count(2, 1 << 20)?;
        let mut reasons = Vec::with_capacity(n);
        for _ in 0..n {
            reasons.push((self.varint_u32()?, self.str()?.to_owned()));
        }
        let mut reset_reasons = Vec::new();
        if self.tcp {
            let n = self.count(2, 1 << 16)?;
            reset_reasons.reserve(n);
            for _ in 0..n {
                reset_reasons.push((self.varint_u32()?, self.str()?.to_owned()));
            }
        }
        Ok(Header {
            droptrace_version,
            kernel_release,
            hostname,
            boot_time_ns,
            started_ns,
            filters,
            snaplen,
            reasons,
            reset_reasons,
        })
    }

    pub fn counters(&mut self) -> Result<Counters, Fault> {
        let mut v = [0u64; 8];
        for slot in &mut v {
            *slot = self.varint()?;
        }
        // A group takes at least 8 (location) + 6 (varints) bytes, and its count one more
        // (a cookie's varint makes it longer from version 3 on).
        let n = self.count(15, MAX_BLOCK)?;
        let mut lost_groups = Vec::with_capacity(n);
        for _ in 0..n {
            lost_groups.push((self.group()?, self.varint()?));
        }
        let (tcp, tcp_off) = if self.tcp {
            match self.u8()? {
                0 => (None, false),
                COUNTERS_TCP_OFF => (None, true),
                COUNTERS_TCP => (
                    Some(TcpCounters {
                        retransmits: self.varint()?,
                        resets_sent: self.varint()?,
                        resets_received: self.varint()?,
                        lost: self.varint()?,
                        missed: self.varint()?,
                    }),
                    false,
                ),
                _ => {
                    self.pos -= 1;
                    return Err(self.fault("unknown counters fields"));
                }
            }
        } else {
            (None, false)
        };
        let xdp = if self.xdp { self.xdp()? } else { None };
        Ok(Counters {
            at_ns: v[0],
            kernel: KernelCounters {
                seen: v[1],
                matched: v[2],
                lost: v[3],
                lost_ungrouped: v[4],
                missed: v[5],
                ..Default::default()
            },
            malformed: v[6],
            overflow: v[7],
            lost_groups,
            tcp,
            tcp_off,
            xdp,
        })
    }

    /// Inverse of [`encode_xdp`].
    fn xdp(&mut self) -> Result<Option<XdpCounts>, Fault> {
        match self.u8()? {
            0 => return Ok(None),
            COUNTERS_XDP => {}
            _ => {
                self.pos -= 1;
                return Err(self.fault("unknown XDP fields"));
            }
        }
        // A program takes at least 3 bytes (id, name's length, untraced flag).
        let n = self.count(3, MAX_BLOCK)?;
        let mut programs = Vec::with_capacity(n);
        for _ in 0..n {
            let id = self.varint_u32()?;
            let name = self.str()?.to_owned();
            let untraced = match self.u8()? {
                0 => None,
                1 => Some(self.str()?.to_owned()),
                _ => {
                    self.pos -= 1;
                    return Err(self.fault("unknown XDP program fields"));
                }
            };
            programs.push(XdpProgram { id, name, untraced });
        }
        let n = self.count(15, MAX_BLOCK)?;
        let mut groups = Vec::with_capacity(n);
        for _ in 0..n {
            groups.push((self.group()?, self.varint()?));
        }
        Ok(Some(XdpCounts { programs, groups }))
    }

    /// Inverse of [`encode_tcp`].
    pub fn tcp_event(&mut self) -> Result<TcpEvent, Fault> {
        let kind = match self.u8()? {
            0 => TcpKind::Retransmit,
            1 => TcpKind::ResetSent,
            2 => TcpKind::ResetReceived,
            _ => {
                self.pos -= 1;
                return Err(self.fault("unknown TCP event kind"));
            }
        };
        let flags = self.u8()?;
        if flags & !(TCP_FAILED | TCP_RESET_REASON | TCP_DROP) != 0 {
            self.pos -= 1;
            return Err(self.fault("unknown TCP event fields"));
        }
        let timestamp_ns = self.varint()?;
        let netns = self.netns()?;
        let local = self.addr()?;
        let lport = self.u16_le()?;
        let remote = self.addr()?;
        let rport = self.u16_le()?;
        let segs = self.varint_u32()?;
        let failed = if flags & TCP_FAILED != 0 {
            let start = self.pos;
            let v = unzigzag(self.varint()?);
            Some(i32::try_from(v).map_err(|_| Fault {
                at: start,
                what: "value out of range",
            })?)
        } else {
            None
        };
        let reset_reason = (flags & TCP_RESET_REASON != 0)
            .then(|| self.varint_u32())
            .transpose()?;
        let drop = if flags & TCP_DROP != 0 {
            Some(DropMark {
                timestamp_ns: self.varint()?,
                cause: DropCause {
                    location: self.u64_le()?,
                    reason: self.varint_u32()?,
                    netns: self.netns()?,
                    ifindex: self.varint_u32()?,
                },
            })
        } else {
            None
        };
        Ok(TcpEvent {
            timestamp_ns,
            kind,
            flow: TcpFlow {
                netns,
                local,
                lport,
                remote,
            },
            rport,
            segs,
            failed,
            reset_reason,
            drop,
        })
    }

    /// The rest of a `NAME_WORKLOAD` entry, after its tag.
    pub fn workload(&mut self) -> Result<(Netns, Workload), Fault> {
        let netns = self.netns()?;
        let container = Container {
            id: self.str()?.to_owned(),
            name: self.str()?.to_owned(),
            runtime: self.str()?.to_owned(),
        };
        let fields = self.u8()?;
        if fields & !(WORKLOAD_POD | WORKLOAD_POD_UID) != 0
            || fields & WORKLOAD_POD_UID != 0 && fields & WORKLOAD_POD == 0
        {
            return Err(self.fault("unknown workload fields"));
        }
        let pod = if fields & WORKLOAD_POD != 0 {
            Some(Pod {
                name: self.str()?.to_owned(),
                namespace: self.str()?.to_owned(),
                uid: (fields & WORKLOAD_POD_UID != 0)
                    .then(|| self.str().map(str::to_owned))
                    .transpose()?,
            })
        } else {
            None
        };
        Ok((netns, Workload { container, pod }))
    }

    /// The rest of a `NAME_LOCATION` entry, after its tag.
    pub fn location(&mut self) -> Result<(u64, Location), Fault> {
        let address = self.u64_le()?;
        let present = self.u8()?;
        if present & !7 != 0 {
            return Err(self.fault("unknown location fields"));
        }
        let function = (present & 1 != 0)
            .then(|| self.str().map(str::to_owned))
            .transpose()?;
        let offset = (present & 2 != 0).then(|| self.varint()).transpose()?;
        let module = (present & 4 != 0)
            .then(|| self.str().map(str::to_owned))
            .transpose()?;
        let display = self.str()?.to_owned();
        Ok((
            address,
            Location {
                function,
                offset,
                module,
                display,
            },
        ))
    }
}
