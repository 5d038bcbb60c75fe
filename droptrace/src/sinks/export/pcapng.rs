//! pcapng (draft-ietf-opsawg-pcapng), little-endian: a Section Header Block, an
//! Interface Description Block per (namespace, interface) as it first appears, and an
//! Enhanced Packet Block per drop with packet bytes, commented with why it was dropped.
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::ops::ControlFlow;

use crate::pipeline::Error;
use crate::pipeline::{
    event::{Drop, Netns},
    names::Names,
    sink::{Moment, Sink},
};
use crate::record::Header;

use super::{push_location, wall_ns, Export, ExportError, ExportStats};

pub(super) const SHB: u32 = 0x0A0D_0D0A;
pub(super) const IDB: u32 = 1;
pub(super) const EPB: u32 = 6;
pub(super) const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
/// The captured bytes start at the IPv4 or IPv6 header.
pub(super) const LINKTYPE_RAW: u16 = 101;

const OPT_ENDOFOPT: u16 = 0;
pub(super) const OPT_COMMENT: u16 = 1;
const SHB_OS: u16 = 3;
const SHB_USERAPPL: u16 = 4;
pub(super) const IF_NAME: u16 = 2;
pub(super) const IF_DESCRIPTION: u16 = 3;
pub(super) const IF_TSRESOL: u16 = 9;

/// Writes the drops that kept packet bytes as pcapng; drops without bytes are counted in
/// [`ExportStats::without_bytes`].
pub struct PcapngSink<W: Write> {
    out: BufWriter<W>,
    header: Header,
    block: Block,
    /// (netns, ifindex) -> interface id, in the order they were written.
    interfaces: HashMap<(Netns, u32), u32>,
    stats: ExportStats,
    failed: Option<ExportError>,
}

impl<W: Write> PcapngSink<W> {
    /// Writes the section header; a recording without packet bytes cannot be pcapng.
    pub fn new(header: &Header, out: W) -> Result<PcapngSink<W>, ExportError> {
        if header.snaplen == 0 {
            return Err(ExportError::NoPacketBytes);
        }
        let mut out = BufWriter::with_capacity(1 << 16, out);
        let mut block = Block::default();
        block.section(header);
        block.write_to(&mut out)?;
        Ok(PcapngSink {
            out,
            header: header.clone(),
            block,
            interfaces: HashMap::new(),
            stats: ExportStats::none(),
            failed: None,
        })
    }

    fn write(&mut self, drop: &Drop, bytes: &[u8], names: &Names) -> std::io::Result<()> {
        // Drops without an interface share one, whatever their namespace.
        let key = if drop.ifindex == 0 {
            (Netns::NONE, 0)
        } else {
            (drop.netns, drop.ifindex)
        };
        let id = match self.interfaces.get(&key) {
            Some(&id) => id,
            None => {
                let id = self.interfaces.len() as u32;
                self.interfaces.insert(key, id);
                self.block.interface(&self.header, names, key);
                self.block.write_to(&mut self.out)?;
                id
            }
        };
        self.block.packet(&self.header, names, id, drop, bytes);
        self.block.write_to(&mut self.out)
    }
}

impl<W: Write> Sink for PcapngSink<W> {
    fn drop(&mut self, drop: &Drop, bytes: &[u8], names: &Names) -> ControlFlow<()> {
        if bytes.is_empty() {
            self.stats.without_bytes += 1;
            return ControlFlow::Continue(());
        }
        if let Err(e) = self.write(drop, bytes, names) {
            self.failed = Some(e.into());
            return ControlFlow::Break(());
        }
        self.stats.packets += 1;
        ControlFlow::Continue(())
    }

    fn finish(&mut self, _at: &Moment<'_>) -> Result<(), Error> {
        super::finish(self.failed.take(), &mut self.out)
    }
}

impl<W: Write> Export for PcapngSink<W> {
    fn stats(&self) -> ExportStats {
        ExportStats {
            interfaces: self.interfaces.len(),
            ..self.stats
        }
    }
}

/// One block being built.
#[derive(Default)]
struct Block {
    buf: Vec<u8>,
    text: String,
}

impl Block {
    fn begin(&mut self, kind: u32) {
        self.buf.clear();
        self.u32(kind);
        self.u32(0); // total length, set by `write_to`
    }

    fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn pad(&mut self) {
        let n = self.buf.len().next_multiple_of(4);
        self.buf.resize(n, 0);
    }

    fn option(&mut self, code: u16, value: &[u8]) {
        self.u16(code);
        self.u16(value.len() as u16);
        self.buf.extend_from_slice(value);
        self.pad();
    }

    /// A UTF-8 option, cut (on a character boundary) to the 65535 bytes an option holds.
    fn text_option(&mut self, code: u16, text: &str) {
        let mut end = text.len().min(usize::from(u16::MAX));
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        self.option(code, &text.as_bytes()[..end]);
    }

    /// Ends the options and the block, and writes it.
    fn write_to(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        self.option(OPT_ENDOFOPT, &[]);
        let total = self.buf.len() as u32 + 4;
        self.buf[4..8].copy_from_slice(&total.to_le_bytes());
        self.u32(total);
        out.write_all(&self.buf)
    }

    fn section(&mut self, header: &Header) {
        self.begin(SHB);
        self.u32(BYTE_ORDER_MAGIC);
        self.u16(1); // major version
        self.u16(0); // minor version
        self.buf.extend_from_slice(&(-1i64).to_le_bytes()); // section length: not given
        let os = format!("Linux {}", header.kernel_release);
        self.text_option(SHB_OS, &os);
        let app = format!("droptrace {}", header.droptrace_version);
        self.text_option(SHB_USERAPPL, &app);
        let mut about = format!("packet drops recorded on {}", header.hostname);
        if !header.filters.is_empty() {
            let _ = write!(about, ", filters: {}", header.filters);
        }
        self.text_option(OPT_COMMENT, &about);
    }

    fn interface(&mut self, header: &Header, names: &Names, (netns, ifindex): (Netns, u32)) {
        self.begin(IDB);
        self.u16(LINKTYPE_RAW);
        self.u16(0); // reserved
        self.u32(header.snaplen);
        let (name, description) = if ifindex == 0 {
            (
                "unknown".to_owned(),
                "drops with no interface (ifindex 0)".to_owned(),
            )
        } else {
            let mut description = format!("ifindex {ifindex} in network namespace {netns}");
            if let Some(label) = names.namespace_name(netns) {
                let _ = write!(description, " ({label})");
            }
            (interface_name(names, netns, ifindex), description)
        };
        self.text_option(IF_NAME, &name);
        self.text_option(IF_DESCRIPTION, &description);
        self.option(IF_TSRESOL, &[9]); // nanoseconds
    }

    fn packet(
        &mut self,
        header: &Header,
        names: &Names,
        interface: u32,
        drop: &Drop,
        bytes: &[u8],
    ) {
        let ts = wall_ns(header, drop.timestamp_ns);
        self.begin(EPB);
        self.u32(interface);
        self.u32((ts >> 32) as u32);
        self.u32(ts as u32);
        self.u32(bytes.len() as u32);
        self.u32(drop.len.max(bytes.len() as u32));
        self.buf.extend_from_slice(bytes);
        self.pad();

        let mut text = std::mem::take(&mut self.text);
        text.clear();
        match names.reason(drop.reason) {
            Some(reason) => {
                text.push_str(&reason);
                text.push_str(" at ");
            }
            None => text.push_str("dropped at "),
        }
        push_location(&mut text, names, drop.location);
        self.text_option(OPT_COMMENT, &text);

        text.clear();
        let (cpu, netns, ifindex) = (drop.cpu, drop.netns, drop.ifindex);
        let _ = if ifindex == 0 {
            write!(text, "cpu {cpu}, no interface, netns {netns}")
        } else {
            let name = interface_name(names, netns, ifindex);
            write!(text, "cpu {cpu}, {name} (ifindex {ifindex}, netns {netns})")
        };
        if drop.l2_len > 0 {
            let _ = write!(text, ", dropped with a {}-byte layer-2 header", drop.l2_len);
        }
        self.text_option(OPT_COMMENT, &text);
        self.text = text;
    }
}

/// `IFNAME@NAMESPACE`, with `if<N>` and the inode number when the names are unknown.
fn interface_name(names: &Names, netns: Netns, ifindex: u32) -> String {
    let name = names
        .interface_name(netns, ifindex)
        .map_or_else(|| format!("if{ifindex}"), str::to_owned);
    match names.namespace_name(netns) {
        Some(label) => format!("{name}@{label}"),
        None => format!("{name}@{netns}"),
    }
}
