//! Reader of raw BTF, the type information the kernel publishes in /sys/kernel/btf/.
//!
//! droptrace reads structure layouts (to find `sk_buff` fields without kernel headers),
//! enums (drop reason names) and tracepoint prototypes from it at load time, so the
//! same binary works across kernel builds. Only what those queries need is decoded;
//! every read is bounds-checked because the bytes come from outside.
//!
//! Format: Documentation/bpf/btf.rst in the kernel tree.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod query;

/// `BTF_MAGIC` as it reads in the file's own byte order.
const MAGIC: u16 = 0xeb9f;
const HEADER_LEN: usize = 24;
/// Longest typedef/modifier chain or anonymous-member nesting we follow; real kernels
/// stay far below, hostile input with cycles stops here.
const MAX_DEPTH: usize = 64;
/// Most struct members one path step may visit; sk_buff needs a few dozen.
const MEMBER_BUDGET: u32 = 100_000;

const KIND_INT: u8 = 1;
const KIND_PTR: u8 = 2;
const KIND_ARRAY: u8 = 3;
const KIND_STRUCT: u8 = 4;
const KIND_UNION: u8 = 5;
const KIND_ENUM: u8 = 6;
const KIND_FWD: u8 = 7;
const KIND_TYPEDEF: u8 = 8;
const KIND_VOLATILE: u8 = 9;
const KIND_CONST: u8 = 10;
const KIND_RESTRICT: u8 = 11;
const KIND_FUNC: u8 = 12;
const KIND_FUNC_PROTO: u8 = 13;
const KIND_VAR: u8 = 14;
const KIND_DATASEC: u8 = 15;
const KIND_FLOAT: u8 = 16;
const KIND_DECL_TAG: u8 = 17;
const KIND_TYPE_TAG: u8 = 18;
const KIND_ENUM64: u8 = 19;

/// An I/O error that compares equal to another of the same kind, so that error
/// enums holding one can still derive `PartialEq` (handy in tests and callers' enums).
#[derive(Debug)]
pub struct IoError(pub std::io::Error);

impl PartialEq for IoError {
    fn eq(&self, other: &IoError) -> bool {
        self.0.kind() == other.0.kind()
    }
}

impl Eq for IoError {}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for IoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// What can go wrong reading BTF or asking it about a type.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BtfError {
    #[error("cannot read BTF from {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: IoError,
    },
    #[error("BTF data is {len} bytes, too short for a BTF header")]
    TooShort { len: usize },
    #[error("not BTF: magic is {found:#06x}, expected 0xeb9f")]
    BadMagic { found: u16 },
    #[error("unsupported BTF version {0} (only version 1 is known)")]
    UnsupportedVersion(u8),
    #[error(
        "BTF {section} section ({offset}+{len}) runs past the end of the data ({data_len} bytes)"
    )]
    SectionOutOfBounds {
        section: &'static str,
        offset: u64,
        len: u64,
        data_len: usize,
    },
    #[error("BTF type {type_id} at byte {offset} of the type section is truncated")]
    Truncated { type_id: u32, offset: usize },
    #[error(
        "BTF type {type_id} has unknown kind {kind}; this reader may be older than the kernel"
    )]
    UnknownKind { type_id: u32, kind: u8 },
    #[error("BTF refers to type {type_id}, which does not exist")]
    BadTypeId { type_id: u32 },
    #[error("BTF name at string offset {offset} is outside the string section or not UTF-8")]
    BadString { offset: u32 },
    #[error("no struct or union named `{name}` in BTF")]
    StructNotFound { name: String },
    #[error("`{path}`: `{container}` has no member `{missing}`")]
    MemberNotFound {
        path: String,
        container: String,
        missing: String,
    },
    #[error("`{path}` is {kind}, not a struct or union (member paths do not follow pointers)")]
    NotComposite { path: String, kind: String },
    #[error("`{path}` is a bitfield ({bits} bits at bit offset {bit_offset}), it has no byte offset or size")]
    Bitfield {
        path: String,
        bit_offset: u64,
        bits: u32,
    },
    #[error("cannot tell the size of `{path}` ({kind})")]
    Unsized { path: String, kind: String },
    #[error("`{path}`: offset or size does not fit in 32 bits")]
    Overflow { path: String },
    #[error("BTF type {type_id} nests or chains too deeply to follow; is the BTF corrupt?")]
    TooDeep { type_id: u32 },
}

/// One decoded `struct btf_type`; `extra` is where its kind-specific data starts.
#[derive(Debug, Clone, Copy)]
struct RawType {
    name_off: u32,
    info: u32,
    size_or_type: u32,
    extra: u32,
}

impl RawType {
    fn kind(&self) -> u8 {
        ((self.info >> 24) & 0x1f) as u8
    }
    fn vlen(&self) -> usize {
        (self.info & 0xffff) as usize
    }
    fn kind_flag(&self) -> bool {
        self.info >> 31 == 1
    }
}

/// A member of a struct or union, as found by [`Btf::member_offset`] and friends.
#[derive(Debug, Clone, Copy)]
struct Member {
    bit_offset: u64,
    type_id: u32,
    bitfield_bits: u32,
}

/// Parsed BTF: the vmlinux blob, or a module's split BTF on top of it.
///
/// Keeps the raw bytes and an index of type headers; names are decoded on demand,
/// which keeps parsing the 5.5 MB vmlinux blob to about 10 ms (release build).
#[derive(Clone)]
pub struct Btf {
    data: Vec<u8>,
    big_endian: bool,
    types: Vec<RawType>,
    /// Byte range of the string section inside `data`.
    str_start: usize,
    str_len: usize,
    /// The vmlinux BTF a module's split BTF extends: type ids and string offsets
    /// continue where the base's end.
    base: Option<Arc<Btf>>,
}

impl fmt::Debug for Btf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Btf")
            .field("types", &self.types.len())
            .field("strings", &self.str_len)
            .field("split", &self.base.is_some())
            .finish()
    }
}

/// Bounds-checked integer reads in the blob's byte order.
#[derive(Clone, Copy)]
struct Bytes<'a> {
    data: &'a [u8],
    big_endian: bool,
}

impl Bytes<'_> {
    fn u32_at(&self, at: usize) -> Option<u32> {
        let end = at.checked_add(4)?;
        let b: [u8; 4] = self.data.get(at..end)?.try_into().ok()?;
        Some(if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }
}

impl Btf {
    /// Parses a complete (base) BTF blob such as /sys/kernel/btf/vmlinux.
    pub fn parse(data: &[u8]) -> Result<Btf, BtfError> {
        Btf::parse_inner(data, None)
    }

    /// Parses a module's split BTF (/sys/kernel/btf/<module>), whose type ids and
    /// string offsets continue those of `base` (the vmlinux BTF).
    pub fn parse_split(data: &[u8], base: Arc<Btf>) -> Result<Btf, BtfError> {
        Btf::parse_inner(data, Some(base))
    }

    /// Reads and parses a base BTF file.
    pub fn from_file(path: &Path) -> Result<Btf, BtfError> {
        let data = std::fs::read(path).map_err(|e| BtfError::Io {
            path: path.to_owned(),
            source: IoError(e),
        })?;
        Btf::parse(&data)
    }

    /// Reads and parses a module's split BTF file on top of `base`.
    pub fn from_split_file(path: &Path, base: Arc<Btf>) -> Result<Btf, BtfError> {
        let data = std::fs::read(path).map_err(|e| BtfError::Io {
            path: path.to_owned(),
            source: IoError(e),
        })?;
        Btf::parse_split(&data, base)
    }

    fn parse_inner(data: &[u8], base: Option<Arc<Btf>>) -> Result<Btf, BtfError> {
        let magic_bytes: [u8; 2] = data
            .get(0..2)
            .and_then(|b| b.try_into().ok())
            .ok_or(BtfError::TooShort { len: data.len() })?;
        let big_endian = match (
            u16::from_le_bytes(magic_bytes),
            u16::from_be_bytes(magic_bytes),
        ) {
            (MAGIC, _) => false,
            (_, MAGIC) => true,
            (found, _) => return Err(BtfError::BadMagic { found }),
        };
        if data.len() < HEADER_LEN {
            return Err(BtfError::TooShort { len: data.len() });
        }
        let version = data[2];
        if version != 1 {
            return Err(BtfError::UnsupportedVersion(version));
        }
        let bytes = Bytes { data, big_endian };
        let header = |at| {
            bytes
                .u32_at(at)
                .ok_or(BtfError::TooShort { len: data.len() })
        };
        let hdr_len = header(4)?;
        let type_off = header(8)?;
        let type_len = header(12)?;
        let str_off = header(16)?;
        let str_len = header(20)?;
        if (hdr_len as usize) < HEADER_LEN {
            return Err(BtfError::TooShort {
                len: hdr_len as usize,
            });
        }
        let types_range = section(data.len(), "type", hdr_len, type_off, type_len)?;
        let strings = section(data.len(), "string", hdr_len, str_off, str_len)?;

        let first_id = base
            .as_ref()
            .map_or(1, |b| b.type_count().saturating_add(1));
        let mut types = Vec::with_capacity(types_range.len() / 16);
        let mut at = types_range.start;
        while at < types_range.end {
            let type_id = first_id.saturating_add(types.len() as u32);
            let truncated = BtfError::Truncated {
                type_id,
                offset: at - types_range.start,
            };
            let read = |off: usize| {
                at.checked_add(off)
                    .filter(|end| end + 4 <= types_range.end)
                    .and_then(|a| bytes.u32_at(a))
            };
            let (Some(name_off), Some(info), Some(size_or_type)) = (read(0), read(4), read(8))
            else {
                return Err(truncated);
            };
            let extra = at + 12;
            let raw = RawType {
                name_off,
                info,
                size_or_type,
                extra: u32::try_from(extra).map_err(|_| BtfError::Truncated {
                    type_id,
                    offset: at - types_range.start,
                })?,
            };
            let vlen = raw.vlen();
            let extra_len = match raw.kind() {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_ARRAY => 12,
                KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => 12 * vlen,
                KIND_ENUM | KIND_FUNC_PROTO => 8 * vlen,
                KIND_PTR | KIND_FWD | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT
                | KIND_FUNC | KIND_FLOAT | KIND_TYPE_TAG => 0,
                kind => return Err(BtfError::UnknownKind { type_id, kind }),
            };
            let next = extra
                .checked_add(extra_len)
                .filter(|&n| n <= types_range.end)
                .ok_or(truncated)?;
            types.push(raw);
            at = next;
        }
        Ok(Btf {
            data: data.to_vec(),
            big_endian,
            types,
            str_start: strings.start,
            str_len: strings.len(),
            base,
        })
    }

    /// Number of types, counting a split BTF's base; the largest valid type id.
    pub fn type_count(&self) -> u32 {
        let own = u32::try_from(self.types.len()).unwrap_or(u32::MAX);
        self.first_id().saturating_sub(1).saturating_add(own)
    }

    fn first_id(&self) -> u32 {
        self.base
            .as_ref()
            .map_or(1, |b| b.type_count().saturating_add(1))
    }

    fn total_str_len(&self) -> usize {
        self.base.as_ref().map_or(0, |b| b.total_str_len()) + self.str_len
    }

    fn bytes(&self) -> Bytes<'_> {
        Bytes {
            data: &self.data,
            big_endian: self.big_endian,
        }
    }

    /// The BTF (this one or its base) that holds `type_id`, and the type itself.
    fn raw(&self, type_id: u32) -> Result<(&Btf, RawType), BtfError> {
        let first = self.first_id();
        if type_id >= first {
            let index = (type_id - first) as usize;
            return self
                .types
                .get(index)
                .map(|t| (self, *t))
                .ok_or(BtfError::BadTypeId { type_id });
        }
        match &self.base {
            Some(base) => base.raw(type_id),
            None => Err(BtfError::BadTypeId { type_id }),
        }
    }

    /// The NUL-terminated bytes at string `offset`; split BTF continues its base's
    /// string offsets.
    fn str_bytes_at(&self, offset: u32) -> Option<&[u8]> {
        let mut local = offset as usize;
        if let Some(base) = &self.base {
            let base_len = base.total_str_len();
            if local < base_len {
                return base.str_bytes_at(offset);
            }
            local -= base_len;
        }
        let section = self
            .data
            .get(self.str_start..self.str_start + self.str_len)?
            .get(local..)?;
        let len = section.iter().position(|&b| b == 0)?;
        section.get(..len)
    }

    fn str_at(&self, offset: u32) -> Result<&str, BtfError> {
        self.str_bytes_at(offset)
            .and_then(|b| std::str::from_utf8(b).ok())
            .ok_or(BtfError::BadString { offset })
    }

    fn name_of(&self, t: &RawType) -> &str {
        self.str_at(t.name_off).unwrap_or("")
    }

    /// The `index`-th 32-bit word of a type's kind-specific data.
    fn extra_u32(&self, t: &RawType, index: usize) -> u32 {
        // Parsing checked that the whole extra area is inside the type section.
        self.bytes()
            .u32_at(t.extra as usize + 4 * index)
            .unwrap_or(0)
    }

    /// Local types named `name` with one of `kinds`, in id order.
    fn find_local<'a>(
        &'a self,
        name: &'a str,
        kinds: &'a [u8],
    ) -> impl Iterator<Item = (u32, RawType)> + 'a {
        let first = self.first_id();
        self.types
            .iter()
            .enumerate()
            .filter(move |(_, t)| {
                kinds.contains(&t.kind()) && self.str_bytes_at(t.name_off) == Some(name.as_bytes())
            })
            .map(move |(i, t)| (first.saturating_add(i as u32), *t))
    }

    /// Finds a named type here or, for split BTF, in the base.
    fn find(&self, name: &str, kinds: &[u8]) -> Option<(u32, RawType)> {
        self.find_local(name, kinds)
            .next()
            .or_else(|| self.base.as_ref().and_then(|b| b.find(name, kinds)))
    }

    /// Follows typedefs and qualifiers (never pointers) to the type they name.
    fn resolve(&self, type_id: u32) -> Result<(u32, RawType), BtfError> {
        let mut id = type_id;
        for _ in 0..MAX_DEPTH {
            if id == 0 {
                return Ok((0, VOID));
            }
            let (_, t) = self.raw(id)?;
            match t.kind() {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = t.size_or_type;
                }
                _ => return Ok((id, t)),
            }
        }
        Err(BtfError::TooDeep { type_id })
    }
}

/// A type id 0 stand-in: `void`.
const VOID: RawType = RawType {
    name_off: 0,
    info: 0,
    size_or_type: 0,
    extra: 0,
};

/// Checks that a header-described section lies inside the data.
fn section(
    data_len: usize,
    section: &'static str,
    hdr_len: u32,
    offset: u32,
    len: u32,
) -> Result<std::ops::Range<usize>, BtfError> {
    let start = u64::from(hdr_len) + u64::from(offset);
    let end = start + u64::from(len);
    if end > data_len as u64 {
        return Err(BtfError::SectionOutOfBounds {
            section,
            offset: u64::from(offset),
            len: u64::from(len),
            data_len,
        });
    }
    // Both fit in usize because they are at most data_len.
    Ok(start as usize..end as usize)
}

#[cfg(test)]
pub(crate) mod tests;
