//! Reading a recording: every length is checked against a fixed maximum and the bytes
//! actually there, so any input gives items, a status, or an error naming its offset.
use std::fs::File;
use std::io::{BufReader, ErrorKind, Read};
use std::ops::Range;
use std::path::Path;

use crate::pipeline::event::{Drop, Packet};

use super::format::{self as f, Context, Cursor, Fault};
use super::{Header, Item, ReadError, Status};
use crate::kernel::reasons::DropReasonTable;
use crate::pipeline::names::Names;

mod events;
use events::EventDecoder;

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
    input: Input<R>,
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
    /// Within a TCP block: where the next TCP event starts.
    tcp_at: Option<usize>,
    block: EventDecoder,
    total_events: u64,
    damage: Damage,
    /// The file's format version (older ones are read too).
    version: u32,
}

/// What was skipped of a recording: damaged blocks (a bad checksum, a broken frame,
/// contents that do not decode), read around rather than refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Damage {
    /// Blocks skipped (a run of unreadable bytes between two good blocks counts as one).
    pub blocks: u64,
    /// Bytes skipped, frames included.
    pub bytes: u64,
    /// Where the first one starts.
    pub first_at: Option<u64>,
    /// Events lost with them, when the end block says how many there were.
    pub events: Option<u64>,
}

impl Damage {
    pub fn is_empty(&self) -> bool {
        self.blocks == 0
    }

    fn skip(&mut self, at: u64, bytes: u64) {
        self.blocks += 1;
        self.bytes += bytes;
        self.first_at.get_or_insert(at);
    }

    /// `1 damaged block skipped (4,120 bytes from byte 812; 37 events)`.
    pub fn describe(&self) -> String {
        let events = match self.events {
            Some(n) => format!(
                "; {} events, by the end block's count",
                crate::format::count(n)
            ),
            None => "; how many events they held is unknown (no end block)".into(),
        };
        format!(
            "{} damaged block{} skipped ({} bytes from byte {}{events})",
            self.blocks,
            if self.blocks == 1 { "" } else { "s" },
            crate::format::count(self.bytes),
            self.first_at.unwrap_or(0),
        )
    }
}

/// The input, with bytes read ahead while looking for the next good block put back.
#[derive(Debug)]
struct Input<R> {
    inner: R,
    back: Vec<u8>,
    back_at: usize,
}

impl<R: Read> Input<R> {
    /// Puts `bytes` before what is left to read.
    fn put_back(&mut self, bytes: &[u8]) {
        let mut back = bytes.to_vec();
        back.extend_from_slice(&self.back[self.back_at..]);
        (self.back, self.back_at) = (back, 0);
    }
}

impl<R: Read> Read for Input<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = &self.back[self.back_at..];
        if left.is_empty() {
            return self.inner.read(buf);
        }
        let n = left.len().min(buf.len());
        buf[..n].copy_from_slice(&left[..n]);
        self.back_at += n;
        if self.back_at == self.back.len() {
            (self.back, self.back_at) = (Vec::new(), 0);
        }
        Ok(n)
    }
}

/// What the next block turned out to be.
enum Block {
    /// A whole block of this kind, checked, in `buf`.
    Kind(u8),
    /// The end of the file (the status says how it ended).
    Eof,
    /// A block whose frame is sound but whose payload is damaged: skipped.
    Damaged,
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
            input: Input {
                inner: input,
                back: Vec::new(),
                back_at: 0,
            },
            header: Header::default(),
            names: Names::default(),
            status: Status::Reading,
            failed: false,
            offset: f::PREAMBLE_LEN as u64,
            buf: Vec::new(),
            payload_offset: 0,
            events_at: None,
            tcp_at: None,
            block: EventDecoder::default(),
            total_events: 0,
            damage: Damage::default(),
            version,
        };
        // Without its header nothing else can be read: damage there is an error.
        match reader.read_block(false)? {
            Block::Kind(f::HEADER) => {}
            Block::Kind(_) => return Err(reader.malformed(0, "the first block is not a header")),
            Block::Damaged => {
                return Err(ReadError::Checksum {
                    offset: f::PREAMBLE_LEN as u64,
                })
            }
            Block::Eof => {
                return Err(ReadError::NoHeader {
                    at_offset: f::PREAMBLE_LEN as u64,
                })
            }
        }
        let mut c = Cursor::of_version(&reader.buf, version);
        let header = c.header().and_then(|h| whole(&c).map(|()| h));
        reader.header = header.map_err(|e| reader.fault(e))?;
        // The recording kernel's reasons name its drops, wherever it is read.
        let reasons = &reader.header.reasons;
        reader.names.reasons = (!reasons.is_empty())
            .then(|| DropReasonTable::from_entries(reasons.iter().map(|(v, n)| (*v, n.as_str()))));
        reader.names.reset_reasons = reader.header.reset_reasons.iter().cloned().collect();
        reader.block.snaplen = reader.header.snaplen as usize;
        reader.block.skb_lengths = version < 3;
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

    /// What was skipped so far.
    pub fn damage(&self) -> Damage {
        self.damage
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
            Next::Tcp(ev) => Some(Item::Tcp(ev)),
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
                    match self.block.decode(&mut c) {
                        Ok((drop, range)) => {
                            self.events_at = Some(c.pos);
                            self.total_events += 1;
                            return Ok(Next::Drop(drop, range));
                        }
                        // Checksummed but not decodable: the rest of the block is skipped.
                        Err(_) => self.skip_rest_of_block(at),
                    }
                }
                self.events_at = None;
            }
            if let Some(at) = self.tcp_at {
                if at < self.buf.len() {
                    let mut c = Cursor::of_version(&self.buf, self.version);
                    c.pos = at;
                    match c.tcp_event() {
                        Ok(ev) => {
                            self.tcp_at = Some(c.pos);
                            return Ok(Next::Tcp(ev));
                        }
                        Err(_) => self.skip_rest_of_block(at),
                    }
                }
                self.tcp_at = None;
            }
            if self.status != Status::Reading {
                return Ok(Next::End);
            }
            let kind = match self.read_block(true)? {
                Block::Kind(kind) => kind,
                Block::Damaged => continue,
                Block::Eof => return Ok(Next::End),
            };
            match kind {
                f::EVENTS => {
                    self.block.reset();
                    self.events_at = Some(0);
                }
                f::TCP if self.version >= f::VERSION_TCP => self.tcp_at = Some(0),
                f::NAMES => {
                    if self.read_names().is_err() {
                        self.skip_rest_of_block(0);
                    }
                }
                f::COUNTERS => {
                    let mut c = Cursor::of_version(&self.buf, self.version);
                    match c.counters().and_then(|v| whole(&c).map(|()| v)) {
                        Ok(counters) => {
                            // The XDP programs' names travel with their counts.
                            for p in counters.xdp.iter().flat_map(|x| &x.programs) {
                                if self.names.locations.len() < f::MAX_NAMES {
                                    crate::pipeline::xdp::name_program(
                                        &mut self.names,
                                        p.id,
                                        &p.name,
                                    );
                                }
                            }
                            return Ok(Next::Counters(counters));
                        }
                        Err(_) => self.skip_rest_of_block(0),
                    }
                }
                f::END => {
                    if self.read_end()? {
                        return Ok(Next::End);
                    }
                }
                // A second header, or a kind this reader does not know.
                _ => self.skip_rest_of_block(0),
            }
        }
    }

    /// Counts the current block as damaged from payload offset `at` on (it was read as
    /// far as it decoded).
    fn skip_rest_of_block(&mut self, at: usize) {
        let start = self.payload_offset - f::FRAME_LEN as u64;
        let frame = if at == 0 { f::FRAME_LEN } else { 0 };
        self.damage
            .skip(start, (frame + self.buf.len() - at) as u64);
    }

    /// Reads the next whole block into `buf`, checked. At a clean or cut end of file,
    /// `Eof` (and the status set). A block with a sound frame and a damaged payload is
    /// `Damaged` (skipped); with `resync`, a damaged frame makes the reader look for the
    /// next sound block byte by byte, and the bytes in between are skipped.
    fn read_block(&mut self, resync: bool) -> Result<Block, ReadError> {
        let start = self.offset;
        let mut frame = [0; f::FRAME_LEN];
        if read_full(&mut self.input, &mut frame)? < f::FRAME_LEN {
            self.status = Status::Truncated { at_offset: start };
            return Ok(Block::Eof);
        }
        let check = u16::from_le_bytes([frame[9], frame[10]]);
        let len = u32::from_le_bytes([frame[1], frame[2], frame[3], frame[4]]);
        if f::frame_check(&frame[..9]) != check || len as usize > f::MAX_BLOCK {
            if !resync {
                return Err(
                    if len as usize > f::MAX_BLOCK && f::frame_check(&frame[..9]) == check {
                        ReadError::BlockTooLarge {
                            offset: start,
                            len: u64::from(len),
                        }
                    } else {
                        ReadError::Checksum { offset: start }
                    },
                );
            }
            return self.resync(start, &frame);
        }
        let kind = frame[0];
        // `take` then `read_to_end` grows the buffer only as bytes arrive.
        self.buf.clear();
        (&mut self.input)
            .take(u64::from(len))
            .read_to_end(&mut self.buf)?;
        if self.buf.len() < len as usize {
            self.status = Status::Truncated { at_offset: start };
            return Ok(Block::Eof);
        }
        self.payload_offset = start + f::FRAME_LEN as u64;
        self.offset = self.payload_offset + u64::from(len);
        let crc = u32::from_le_bytes([frame[5], frame[6], frame[7], frame[8]]);
        if crc32fast::hash(&self.buf) != crc {
            if !resync {
                return Err(ReadError::Checksum { offset: start });
            }
            self.damage.skip(start, self.offset - start);
            return Ok(Block::Damaged);
        }
        if !(f::HEADER..=f::TCP).contains(&kind) && !resync {
            return Err(ReadError::UnknownBlock {
                offset: start,
                kind,
            });
        }
        Ok(Block::Kind(kind))
    }

    /// After a damaged frame at `start`: the next block whose frame and payload are both
    /// sound, found byte by byte; what lies between is skipped. At the end of the file
    /// without one, the recording is cut at `start`.
    fn resync(&mut self, start: u64, frame: &[u8; f::FRAME_LEN]) -> Result<Block, ReadError> {
        // Bytes read from `start + 1 + passed` on; a candidate frame begins at `at`.
        let mut ahead: Vec<u8> = frame[1..].to_vec();
        let mut passed = 0u64;
        let mut at = 0usize;
        loop {
            if ahead.len() < at + f::FRAME_LEN {
                let want = at + f::FRAME_LEN - ahead.len();
                let got = (&mut self.input)
                    .take(want as u64)
                    .read_to_end(&mut ahead)?;
                if got < want {
                    self.damage.skip(start, 1 + passed + ahead.len() as u64);
                    self.status = Status::Truncated { at_offset: start };
                    return Ok(Block::Eof);
                }
            }
            if let Some((kind, len)) = sound_frame(&ahead[at..at + f::FRAME_LEN]) {
                let end = at + f::FRAME_LEN + len;
                if ahead.len() < end {
                    let want = end - ahead.len();
                    (&mut self.input)
                        .take(want as u64)
                        .read_to_end(&mut ahead)?;
                }
                let c = &ahead[at + 5..at + 9];
                let crc = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                if ahead.len() >= end && crc32fast::hash(&ahead[at + f::FRAME_LEN..end]) == crc {
                    let block_at = start + 1 + passed + at as u64;
                    self.damage.skip(start, block_at - start);
                    self.buf.clear();
                    self.buf.extend_from_slice(&ahead[at + f::FRAME_LEN..end]);
                    self.input.put_back(&ahead[end..]);
                    self.payload_offset = block_at + f::FRAME_LEN as u64;
                    self.offset = self.payload_offset + len as u64;
                    return Ok(Block::Kind(kind));
                }
            }
            at += 1;
            // Keep what is held small: let go of the bytes passed over.
            if at >= 1 << 16 {
                ahead.drain(..at);
                passed += at as u64;
                at = 0;
            }
        }
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

    /// The end block: the event count the recorder wrote, against the events read. With
    /// blocks skipped, the difference is the events lost with them; without, it is an
    /// error. Bytes after it are skipped.
    fn read_end(&mut self) -> Result<bool, ReadError> {
        let mut c = Cursor::of_version(&self.buf, self.version);
        let Ok(total) = c.varint().and_then(|v| whole(&c).map(|()| v)) else {
            self.skip_rest_of_block(0);
            return Ok(false);
        };
        if self.damage.is_empty() {
            if total != self.total_events {
                return Err(self.malformed(0, "an event count that differs from the events"));
            }
        } else {
            self.damage.events = total.checked_sub(self.total_events);
        }
        let after = std::io::copy(&mut self.input, &mut std::io::sink())?;
        if after > 0 {
            self.damage.skip(self.offset, after);
        }
        self.status = Status::Complete;
        Ok(true)
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
    Tcp(crate::pipeline::tcp::TcpEvent),
    End,
}

/// The kind and payload length of a frame that checks out (a kind that follows a
/// header, a length a reader takes); `None` otherwise.
fn sound_frame(frame: &[u8]) -> Option<(u8, usize)> {
    let check = u16::from_le_bytes([frame[9], frame[10]]);
    let len = u32::from_le_bytes([frame[1], frame[2], frame[3], frame[4]]) as usize;
    let kind = frame[0];
    (f::frame_check(&frame[..9]) == check
        && len <= f::MAX_BLOCK
        && (f::NAMES..=f::TCP).contains(&kind))
    .then_some((kind, len))
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
