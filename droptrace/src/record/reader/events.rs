//! The events of one block, decoded: the inverse of the writer's `EventEncoder`.
use std::net::IpAddr;

use super::*;

/// Decodes the events of one block; the inverse of the writer's `EventEncoder`.
#[derive(Debug, Default)]
pub(super) struct EventDecoder {
    pub(super) snaplen: usize,
    /// Lengths are the skb's (versions 1 and 2): the packet's own comes from its bytes.
    pub(super) skb_lengths: bool,
    contexts: Vec<Context>,
    addrs: Vec<IpAddr>,
    prev_ts: u64,
    prev_context: Option<Context>,
    prev_len: Option<u64>,
    prev_addrs: Option<(IpAddr, IpAddr)>,
    prev_dport: Option<u16>,
}

impl EventDecoder {
    pub(super) fn reset(&mut self) {
        self.contexts.clear();
        self.addrs.clear();
        self.prev_ts = 0;
        self.prev_context = None;
        self.prev_len = None;
        self.prev_addrs = None;
        self.prev_dport = None;
    }

    pub(super) fn decode(&mut self, c: &mut Cursor) -> Result<(Drop, Range<usize>), Fault> {
        let flags = c.u8()?;
        let misplaced = (flags & f::EV_SAME_ADDRS != 0 && flags & f::EV_ADDRS == 0)
            || (flags & f::EV_SAME_DPORT != 0 && flags & f::EV_PORTS == 0);
        if misplaced {
            c.pos -= 1;
            return Err(c.fault("bad event flags"));
        }
        let timestamp_ns = self.prev_ts.wrapping_add(f::unzigzag(c.varint()?) as u64);
        let ctx = if flags & f::EV_SAME_CONTEXT != 0 {
            self.prev_context
                .ok_or_else(|| c.fault("no previous event"))?
        } else {
            let at = c.pos;
            let index = c.varint()?;
            match self.contexts.get(index as usize) {
                Some(ctx) => *ctx,
                None if index == self.contexts.len() as u64 => {
                    let ctx = c.context()?;
                    self.contexts.push(ctx);
                    ctx
                }
                None => {
                    return Err(Fault {
                        at,
                        what: "undefined context",
                    })
                }
            }
        };
        let len = if flags & f::EV_SAME_LEN != 0 {
            self.prev_len.ok_or_else(|| c.fault("no previous event"))?
        } else if self.skb_lengths {
            u64::from(c.varint_u32()?)
        } else {
            let at = c.pos;
            let packed = c.varint()?;
            f::unpack_len(packed).ok_or(Fault {
                at,
                what: "impossible length",
            })?;
            packed
        };
        let addrs = if flags & f::EV_ADDRS == 0 {
            None
        } else if flags & f::EV_SAME_ADDRS != 0 {
            Some(
                self.prev_addrs
                    .ok_or_else(|| c.fault("no previous address"))?,
            )
        } else {
            Some((self.addr(c)?, self.addr(c)?))
        };
        let ports = if flags & f::EV_PORTS == 0 {
            None
        } else {
            let sport = c.u16_le()?;
            let dport = if flags & f::EV_SAME_DPORT != 0 {
                self.prev_dport.ok_or_else(|| c.fault("no previous port"))?
            } else {
                c.u16_le()?
            };
            Some((sport, dport))
        };
        let icmp = if flags & f::EV_ICMP == 0 {
            None
        } else {
            Some((c.u8()?, c.u8()?))
        };
        let bytes = if flags & f::EV_BYTES == 0 {
            c.pos..c.pos
        } else {
            let at = c.pos;
            let n = c.varint()?;
            if n == 0 || n > self.snaplen as u64 {
                return Err(Fault {
                    at,
                    what: "packet bytes beyond the snaplen",
                });
            }
            let start = c.pos;
            c.bytes(n as usize)?;
            start..c.pos
        };
        self.prev_ts = timestamp_ns;
        self.prev_context = Some(ctx);
        self.prev_len = Some(len);
        if addrs.is_some() {
            self.prev_addrs = addrs;
        }
        if let Some((_, dport)) = ports {
            self.prev_dport = Some(dport);
        }
        let (len, l2_len) = if self.skb_lengths {
            let skb_len = len as u32;
            let family = addrs.map(|_| ctx.ethertype);
            crate::pipeline::event::network_len(skb_len, family, c.slice(bytes.clone()))
        } else {
            f::unpack_len(len).unwrap_or_default()
        };
        let drop = Drop {
            timestamp_ns,
            location: ctx.location,
            reason: ctx.reason,
            netns: ctx.netns,
            ifindex: ctx.ifindex,
            len,
            l2_len,
            cpu: ctx.cpu,
            packet: Packet {
                ethertype: ctx.ethertype,
                addrs,
                ip_proto: ctx.ip_proto,
                ports,
                icmp,
                tcp_flags: None,
            },
        };
        Ok((drop, bytes))
    }

    pub(super) fn addr(&mut self, c: &mut Cursor) -> Result<IpAddr, Fault> {
        let at = c.pos;
        let index = c.varint()?;
        match self.addrs.get(index as usize) {
            Some(addr) => Ok(*addr),
            None if index == self.addrs.len() as u64 => {
                let addr = c.addr()?;
                self.addrs.push(addr);
                Ok(addr)
            }
            None => Err(Fault {
                at,
                what: "undefined address",
            }),
        }
    }
}
