//! Reading a recording: every length is checked against a fixed maximum and the bytes
//! actually there, so any input gives items, a status, or an error naming its offset.
use std::fs::File;
use std::io::{BufReader, ErrorKind, Read};
use std::net::IpAddr;
use std::ops::Range;
use std::path::Path;

use crate::pipeline::event::{Drop, Packet};

use super::format::{self as f, Context, Cursor, Fault};
use super::{Header, Item, ReadError, Status};
use crate::kernel::reasons::DropReasonTable;
use crate::pipeline::names::Names;

/// A recording read from a file.
pub type Recording = Reader<BufReader<File>>;

impl Reader<BufReader<File>> {
    pub fn open(path: &Path) -> Result<Recording, ReadError> {
        Reader::new(BufReader::with_capacity(1 << 16, File::open(path)?))
    }
}

/// Reads a recording's items in order; names are gathered into [`Reader::names`] as
/// their blocks go by.
#[derive(Debug)]
pub struct Reader<R: Read> {
    input: R,
    header: Header,
    names: Names,
    status: Status,
    /// Set after an error: nothing more is read.
    failed: bool,
    /// File offset of the next block.
    offset: u64,
    /// Payload of the current block, and its file offset.
    buf: Vec<u8>,
    payload_offset: u64,
    /// Within an events block: where the next event starts.
    events_at: Option<usize>,
    block: EventDecoder,
    total_events: u64,
    /// The file's format version (older ones are read too).
    version: u32,
}

impl<R: Read> Reader<R> {
    /// Reads the preamble and the header.
    pub fn new(mut input: R) -> Result<Reader<R>, ReadError> {
        let mut preamble = [0; f::PREAMBLE_LEN];
        let n = read_full(&mut input, &mut preamble)?;
        let magic_len = n.min(f::MAGIC.len());
        if preamble[..magic_len] != f::MAGIC[..magic_len] {
            return Err(ReadError::NotARecording);
        }
        if n < f::PREAMBLE_LEN {
            return Err(ReadError::NoHeader { at_offset: 0 });
        }
        let version = u32::from_le_bytes([preamble[8], preamble[9], preamble[10], preamble[11]]);
        if version > f::FORMAT_VERSION {
            return Err(ReadError::NewerVersion {
                found: version,
                supported: f::FORMAT_VERSION,
            });
        }
        if version == 0 {
            return Err(ReadError::BadVersion(version));
        }
        let mut reader = Reader {
            input,
            header: Header::default(),
            names: Names::default(),
            status: Status::Reading,
            failed: false,
            offset: f::PREAMBLE_LEN as u64,
            buf: Vec::new(),
            payload_offset: 0,
            events_at: None,
            block: EventDecoder::default(),
            total_events: 0,
            version,
        };
        match reader.read_block()? {
            Some(f::HEADER) => {}
            Some(_) => return Err(reader.malformed(0, "the first block is not a header")),
            None => {
                return Err(ReadError::NoHeader {
                    at_offset: f::PREAMBLE_LEN as u64,
                })
            }
        }
        let mut c = Cursor::new(&reader.buf);
        let header = c.header().and_then(|h| whole(&c).map(|()| h));
        reader.header = header.map_err(|e| reader.fault(e))?;
        // The recording kernel's reasons name its drops, wherever it is read.
        let reasons = &reader.header.reasons;
        reader.names.reasons = (!reasons.is_empty())
            .then(|| DropReasonTable::from_entries(reasons.iter().map(|(v, n)| (*v, n.as_str()))));
        reader.block.snaplen = reader.header.snaplen as usize;
        Ok(reader)
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Names defined by the blocks read so far.
    pub fn names(&self) -> &Names {
        &self.names
    }

    /// How the recording ended, once [`Reader::next_item`] has returned `None`.
    pub fn status(&self) -> Status {
        self.status
    }

    /// The next drop or counters; `None` at the end (see [`Reader::status`]) or after
    /// an error.
    pub fn next_item(&mut self) -> Result<Option<Item<'_>>, ReadError> {
        if self.failed {
            return Ok(None);
        }
        let item = self.advance();
        self.failed = item.is_err();
        let item = item?;
        Ok(match item {
            Next::Drop(drop, range) => Some(Item::Drop(drop, &self.buf[range])),
            Next::Counters(c) => Some(Item::Counters(c)),
            Next::End => None,
        })
    }

    /// Reads everything, calling `visit` on each item; returns how the recording ended.
    pub fn for_each(&mut self, mut visit: impl FnMut(Item<'_>)) -> Result<Status, ReadError> {
        while let Some(item) = self.next_item()? {
            visit(item);
        }
        Ok(self.status)
    }

    fn advance(&mut self) -> Result<Next, ReadError> {
        loop {
            if let Some(at) = self.events_at {
                if at < self.buf.len() {
                    let mut c = Cursor::of_version(&self.buf, self.version);
                    c.pos = at;
                    let decoded = self.block.decode(&mut c);
                    let pos = c.pos;
                    let (drop, range) = decoded.map_err(|e| self.fault(e))?;
                    self.events_at = Some(pos);
                    self.total_events += 1;
                    return Ok(Next::Drop(drop, range));
                }
                self.events_at = None;
            }
            if self.status != Status::Reading {
                return Ok(Next::End);
            }
            let Some(kind) = self.read_block()? else {
                return Ok(Next::End);
            };
            match kind {
                f::EVENTS => {
                    self.block.reset();
                    self.events_at = Some(0);
                }
                f::NAMES => self.read_names()?,
                f::COUNTERS => {
                    let mut c = Cursor::of_version(&self.buf, self.version);
                    let counters = c.counters().and_then(|v| whole(&c).map(|()| v));
                    return Ok(Next::Counters(counters.map_err(|e| self.fault(e))?));
                }
                f::END => {
                    self.read_end()?;
                    return Ok(Next::End);
                }
                _ => return Err(self.malformed(0, "a second header")),
            }
        }
    }

    /// Reads the next whole block into `buf`, checked; `None` (and the status set) at a
    /// clean or cut end of file.
    fn read_block(&mut self) -> Result<Option<u8>, ReadError> {
        let start = self.offset;
        let mut frame = [0; f::FRAME_LEN];
        if read_full(&mut self.input, &mut frame)? < f::FRAME_LEN {
            self.status = Status::Truncated { at_offset: start };
            return Ok(None);
        }
        let check = u16::from_le_bytes([frame[9], frame[10]]);
        if f::frame_check(&frame[..9]) != check {
            return Err(ReadError::Checksum { offset: start });
        }
        let kind = frame[0];
        let len = u32::from_le_bytes([frame[1], frame[2], frame[3], frame[4]]);
        if len as usize > f::MAX_BLOCK {
            return Err(ReadError::BlockTooLarge {
                offset: start,
                len: u64::from(len),
            });
        }
        // `take` then `read_to_end` grows the buffer only as bytes arrive.
        self.buf.clear();
        (&mut self.input)
            .take(u64::from(len))
            .read_to_end(&mut self.buf)?;
        if self.buf.len() < len as usize {
            self.status = Status::Truncated { at_offset: start };
            return Ok(None);
        }
        let crc = u32::from_le_bytes([frame[5], frame[6], frame[7], frame[8]]);
        if crc32fast::hash(&self.buf) != crc {
            return Err(ReadError::Checksum { offset: start });
        }
        if !(f::HEADER..=f::END).contains(&kind) {
            return Err(ReadError::UnknownBlock {
                offset: start,
                kind,
            });
        }
        self.payload_offset = start + f::FRAME_LEN as u64;
        self.offset = self.payload_offset + u64::from(len);
        Ok(Some(kind))
    }

    fn read_names(&mut self) -> Result<(), ReadError> {
        let mut c = Cursor::of_version(&self.buf, self.version);
        let names = &mut self.names;
        let result = (|| {
            while !c.is_empty() {
                match c.u8()? {
                    f::NAME_LOCATION => {
                        let (address, location) = c.location()?;
                        bounded(&c, &names.locations, &address)?;
                        names.locations.insert(address, location);
                    }
                    f::NAME_INTERFACE => {
                        let key = (c.netns()?, c.varint_u32()?);
                        let name = c.str()?.to_owned();
                        bounded(&c, &names.interfaces, &key)?;
                        names.interfaces.insert(key, name);
                    }
                    f::NAME_NAMESPACE => {
                        let netns = c.netns()?;
                        let label = c.str()?.to_owned();
                        bounded(&c, &names.namespaces, &netns)?;
                        names.namespaces.insert(netns, label);
                    }
                    f::NAME_WORKLOAD => {
                        let (netns, workload) = c.workload()?;
                        bounded(&c, &names.workloads, &netns)?;
                        names.workloads.insert(netns, workload);
                    }
                    _ => {
                        c.pos -= 1;
                        return Err(c.fault("unknown kind of name"));
                    }
                }
            }
            Ok(())
        })();
        result.map_err(|e| self.fault(e))
    }

    fn read_end(&mut self) -> Result<(), ReadError> {
        let mut c = Cursor::of_version(&self.buf, self.version);
        let total = c.varint().and_then(|v| whole(&c).map(|()| v));
        if total.map_err(|e| self.fault(e))? != self.total_events {
            return Err(self.malformed(0, "an event count that differs from the events"));
        }
        let mut byte = [0; 1];
        if read_full(&mut self.input, &mut byte)? > 0 {
            return Err(ReadError::Malformed {
                offset: self.offset,
                what: "data after the end block",
            });
        }
        self.status = Status::Complete;
        Ok(())
    }

    fn fault(&self, fault: Fault) -> ReadError {
        self.malformed(fault.at, fault.what)
    }

    fn malformed(&self, at: usize, what: &'static str) -> ReadError {
        ReadError::Malformed {
            offset: self.payload_offset + at as u64,
            what,
        }
    }
}

enum Next {
    Drop(Drop, Range<usize>),
    Counters(super::Counters),
    End,
}

fn whole(c: &Cursor) -> Result<(), Fault> {
    if c.is_empty() {
        Ok(())
    } else {
        Err(c.fault("unexpected bytes at the end of a block"))
    }
}

fn bounded<K: std::hash::Hash + Eq, V>(
    c: &Cursor,
    map: &std::collections::HashMap<K, V>,
    key: &K,
) -> Result<(), Fault> {
    if map.len() >= f::MAX_NAMES && !map.contains_key(key) {
        return Err(c.fault("too many names"));
    }
    Ok(())
}

/// Reads until `buf` is full or the input ends; how many bytes were read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Decodes the events of one block; the inverse of the writer's `EventEncoder`.
#[derive(Debug, Default)]
struct EventDecoder {
    snaplen: usize,
    contexts: Vec<Context>,
    addrs: Vec<IpAddr>,
    prev_ts: u64,
    prev_context: Option<Context>,
    prev_len: Option<u32>,
    prev_addrs: Option<(IpAddr, IpAddr)>,
    prev_dport: Option<u16>,
}

impl EventDecoder {
    fn reset(&mut self) {
        self.contexts.clear();
        self.addrs.clear();
        self.prev_ts = 0;
        self.prev_context = None;
        self.prev_len = None;
        self.prev_addrs = None;
        self.prev_dport = None;
    }

    fn decode(&mut self, c: &mut Cursor) -> Result<(Drop, Range<usize>), Fault> {
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
        } else {
            c.varint_u32()?
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
        let drop = Drop {
            timestamp_ns,
            location: ctx.location,
            reason: ctx.reason,
            netns: ctx.netns,
            ifindex: ctx.ifindex,
            len,
            cpu: ctx.cpu,
            packet: Packet {
                ethertype: ctx.ethertype,
                addrs,
                ip_proto: ctx.ip_proto,
                ports,
                icmp,
            },
        };
        Ok((drop, bytes))
    }

    fn addr(&mut self, c: &mut Cursor) -> Result<IpAddr, Fault> {
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
