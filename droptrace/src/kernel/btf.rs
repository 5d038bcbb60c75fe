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

    /// The members of struct or union `t` (which must live in `owner`).
    fn members(owner: &Btf, t: RawType) -> impl Iterator<Item = (u32, Member)> + '_ {
        (0..t.vlen()).map(move |i| {
            let name_off = owner.extra_u32(&t, 3 * i);
            let type_id = owner.extra_u32(&t, 3 * i + 1);
            let offset = owner.extra_u32(&t, 3 * i + 2);
            let (bit_offset, bitfield_bits) = if t.kind_flag() {
                (offset & 0x00ff_ffff, offset >> 24)
            } else {
                (offset, 0)
            };
            (
                name_off,
                Member {
                    bit_offset: u64::from(bit_offset),
                    type_id,
                    bitfield_bits,
                },
            )
        })
    }

    /// Finds member `name` in the struct/union `type_id`, looking through anonymous
    /// struct/union members in declaration order as C does. `budget` bounds the members
    /// visited, so hostile nesting cannot make the search explode.
    fn find_member(
        &self,
        type_id: u32,
        name: &str,
        depth: usize,
        budget: &mut u32,
    ) -> Result<Option<Member>, BtfError> {
        if depth > MAX_DEPTH {
            return Err(BtfError::TooDeep { type_id });
        }
        let (id, t) = self.resolve(type_id)?;
        if !matches!(t.kind(), KIND_STRUCT | KIND_UNION) {
            return Ok(None);
        }
        let (owner, _) = self.raw(id)?;
        for (name_off, member) in Btf::members(owner, t) {
            *budget = budget.checked_sub(1).ok_or(BtfError::TooDeep { type_id })?;
            let member_name = owner.str_at(name_off).unwrap_or("");
            if member_name == name {
                return Ok(Some(member));
            }
            if member_name.is_empty() {
                if let Some(inner) = self.find_member(member.type_id, name, depth + 1, budget)? {
                    return Ok(Some(Member {
                        bit_offset: member.bit_offset + inner.bit_offset,
                        ..inner
                    }));
                }
            }
        }
        Ok(None)
    }

    /// Walks `path` from struct `struct_name`; returns the last member and its bit offset.
    fn walk(&self, struct_name: &str, path: &[&str]) -> Result<Member, BtfError> {
        let (start, _) = self
            .find(struct_name, &[KIND_STRUCT, KIND_UNION])
            .or_else(|| {
                self.find(struct_name, &[KIND_TYPEDEF])
                    .and_then(|(id, _)| self.resolve(id).ok())
                    .filter(|(_, t)| matches!(t.kind(), KIND_STRUCT | KIND_UNION))
            })
            .ok_or_else(|| BtfError::StructNotFound {
                name: struct_name.to_owned(),
            })?;
        let mut current = Member {
            bit_offset: 0,
            type_id: start,
            bitfield_bits: 0,
        };
        let mut shown = struct_name.to_owned();
        for step in path {
            let (id, t) = self.resolve(current.type_id)?;
            if !matches!(t.kind(), KIND_STRUCT | KIND_UNION) {
                return Err(BtfError::NotComposite {
                    path: shown,
                    kind: self.describe(id),
                });
            }
            shown.push('.');
            shown.push_str(step);
            let found = self
                .find_member(id, step, 0, &mut { MEMBER_BUDGET })?
                .ok_or_else(|| BtfError::MemberNotFound {
                    path: shown.clone(),
                    container: self.describe(id),
                    missing: (*step).to_owned(),
                })?;
            if found.bitfield_bits != 0 || found.bit_offset % 8 != 0 {
                return Err(BtfError::Bitfield {
                    path: shown,
                    bit_offset: current.bit_offset + found.bit_offset,
                    bits: found.bitfield_bits,
                });
            }
            current = Member {
                bit_offset: current.bit_offset + found.bit_offset,
                ..found
            };
        }
        Ok(current)
    }

    /// Byte offset of the member reached from struct `struct_name` through `path`.
    ///
    /// Each step may pass through anonymous structs and unions; the next step looks
    /// inside that member's type (through typedefs and qualifiers, not pointers).
    /// An empty path gives 0 if the struct exists.
    pub fn member_offset(&self, struct_name: &str, path: &[&str]) -> Result<u32, BtfError> {
        let member = self.walk(struct_name, path)?;
        u32::try_from(member.bit_offset / 8).map_err(|_| BtfError::Overflow {
            path: show_path(struct_name, path),
        })
    }

    /// Size in bytes of the type of the member reached through `path` (see
    /// [`Btf::member_offset`]); with an empty path, the struct's own size.
    pub fn member_size(&self, struct_name: &str, path: &[&str]) -> Result<u32, BtfError> {
        let member = self.walk(struct_name, path)?;
        let shown = show_path(struct_name, path);
        let size = self.size_of(member.type_id, &shown)?;
        u32::try_from(size).map_err(|_| BtfError::Overflow { path: shown })
    }

    /// Size in bytes of a type.
    fn size_of(&self, type_id: u32, shown: &str) -> Result<u64, BtfError> {
        let mut id = type_id;
        let mut count: u64 = 1;
        for _ in 0..MAX_DEPTH {
            let (resolved, t) = self.resolve(id)?;
            let unsized_err = || BtfError::Unsized {
                path: shown.to_owned(),
                kind: self.describe(resolved),
            };
            let one = match t.kind() {
                KIND_INT | KIND_STRUCT | KIND_UNION | KIND_ENUM | KIND_ENUM64 | KIND_FLOAT => {
                    u64::from(t.size_or_type)
                }
                KIND_PTR => self.pointer_size(),
                KIND_ARRAY => {
                    let (owner, _) = self.raw(resolved)?;
                    let elem = owner.extra_u32(&t, 0);
                    let nelems = owner.extra_u32(&t, 2);
                    count =
                        count
                            .checked_mul(u64::from(nelems))
                            .ok_or_else(|| BtfError::Overflow {
                                path: shown.to_owned(),
                            })?;
                    id = elem;
                    continue;
                }
                _ => return Err(unsized_err()),
            };
            return count.checked_mul(one).ok_or_else(|| BtfError::Overflow {
                path: shown.to_owned(),
            });
        }
        Err(BtfError::TooDeep { type_id })
    }

    /// BTF has no pointer size; take it from the kernel's `long`, as C does on Linux.
    fn pointer_size(&self) -> u64 {
        self.find("long unsigned int", &[KIND_INT])
            .or_else(|| self.find("long int", &[KIND_INT]))
            .map_or(8, |(_, t)| u64::from(t.size_or_type))
    }

    /// Variants of the enum named `enum_name` (ENUM or ENUM64), in declaration order.
    ///
    /// 32-bit enum values are returned as their u32 bit pattern, so a negative value
    /// reads as e.g. 0xffff_ffff. Forward declarations (no variants) are skipped.
    pub fn enum_variants(&self, enum_name: &str) -> Option<Vec<(String, u64)>> {
        let (id, _) = self
            .find_local(enum_name, &[KIND_ENUM, KIND_ENUM64])
            .find(|(_, t)| t.vlen() > 0)
            .or_else(|| {
                self.base.as_ref().and_then(|b| {
                    b.find_local(enum_name, &[KIND_ENUM, KIND_ENUM64])
                        .find(|(_, t)| t.vlen() > 0)
                })
            })?;
        let (owner, t) = self.raw(id).ok()?;
        Some(owner.variants(&t))
    }

    fn variants(&self, t: &RawType) -> Vec<(String, u64)> {
        let wide = t.kind() == KIND_ENUM64;
        let stride = if wide { 3 } else { 2 };
        (0..t.vlen())
            .map(|i| {
                let name = self.str_at(self.extra_u32(t, stride * i)).unwrap_or("");
                let low = u64::from(self.extra_u32(t, stride * i + 1));
                let value = if wide {
                    low | u64::from(self.extra_u32(t, stride * i + 2)) << 32
                } else {
                    low
                };
                (name.to_owned(), value)
            })
            .collect()
    }

    /// Names of the enums defined in this BTF itself (not its base), e.g. to find a
    /// module's `*_drop_reason` enums.
    pub fn enum_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.types
            .iter()
            .filter(|t| matches!(t.kind(), KIND_ENUM | KIND_ENUM64) && t.vlen() > 0)
            .map(|t| self.name_of(t))
            .filter(|n| !n.is_empty())
    }

    /// The type id of a typedef, e.g. `btf_trace_kfree_skb` (what a BTF tracepoint program
    /// is attached by).
    pub fn typedef_id(&self, name: &str) -> Option<u32> {
        self.find(name, &[KIND_TYPEDEF]).map(|(id, _)| id)
    }

    /// C spellings of the parameter types of a function-pointer typedef such as
    /// `btf_trace_kfree_skb` (typedef -> pointer -> function prototype).
    ///
    /// For `btf_trace_*` typedefs the first parameter is the tracepoint's `void *`
    /// context, then come the tracepoint's own arguments.
    pub fn func_proto_params(&self, typedef_name: &str) -> Option<Vec<String>> {
        let (typedef, _) = self.find(typedef_name, &[KIND_TYPEDEF])?;
        let (ptr, t) = self.resolve(typedef).ok()?;
        let proto = match t.kind() {
            KIND_PTR => self.resolve(t.size_or_type).ok()?,
            KIND_FUNC_PROTO => (ptr, t),
            _ => return None,
        };
        let (proto_id, proto) = proto;
        if proto.kind() != KIND_FUNC_PROTO {
            return None;
        }
        let (owner, _) = self.raw(proto_id).ok()?;
        let count = proto.vlen();
        Some(
            (0..count)
                .map(|i| {
                    let param_type = owner.extra_u32(&proto, 2 * i + 1);
                    if param_type == 0 && i + 1 == count {
                        "...".to_owned()
                    } else {
                        self.type_name(param_type)
                    }
                })
                .collect(),
        )
    }

    /// The C spelling of a type, e.g. `struct sk_buff *` or `enum skb_drop_reason`.
    pub fn type_name(&self, type_id: u32) -> String {
        self.type_name_depth(type_id, 0)
    }

    fn type_name_depth(&self, type_id: u32, depth: usize) -> String {
        if type_id == 0 {
            return "void".to_owned();
        }
        if depth > MAX_DEPTH {
            return "?".to_owned();
        }
        let Ok((owner, t)) = self.raw(type_id) else {
            return format!("<bad type {type_id}>");
        };
        let name = owner.name_of(&t);
        let named = |prefix: &str| {
            if name.is_empty() {
                format!("{prefix} (anon)")
            } else {
                format!("{prefix} {name}")
            }
        };
        let inner = || self.type_name_depth(t.size_or_type, depth + 1);
        match t.kind() {
            KIND_INT | KIND_FLOAT | KIND_TYPEDEF | KIND_FUNC | KIND_VAR | KIND_DATASEC => {
                name.to_owned()
            }
            KIND_STRUCT => named("struct"),
            KIND_UNION => named("union"),
            KIND_ENUM | KIND_ENUM64 => named("enum"),
            KIND_FWD if t.kind_flag() => named("union"),
            KIND_FWD => named("struct"),
            KIND_PTR => {
                let target = inner();
                if target.ends_with('*') {
                    format!("{target}*")
                } else {
                    format!("{target} *")
                }
            }
            KIND_CONST => format!("const {}", inner()),
            KIND_VOLATILE => format!("volatile {}", inner()),
            KIND_RESTRICT => format!("{} restrict", inner()),
            KIND_TYPE_TAG | KIND_DECL_TAG => inner(),
            KIND_ARRAY => {
                let elem = owner.extra_u32(&t, 0);
                let nelems = owner.extra_u32(&t, 2);
                format!("{}[{nelems}]", self.type_name_depth(elem, depth + 1))
            }
            KIND_FUNC_PROTO => "(function)".to_owned(),
            _ => "?".to_owned(),
        }
    }

    /// A short description of a type for error messages: `struct sk_buff`, `a pointer`.
    fn describe(&self, type_id: u32) -> String {
        match self.raw(type_id).map(|(_, t)| t.kind()) {
            Ok(KIND_PTR) => format!("a pointer ({})", self.type_name(type_id)),
            Ok(KIND_ARRAY) => format!("an array ({})", self.type_name(type_id)),
            _ => self.type_name(type_id),
        }
    }
}

/// A type id 0 stand-in: `void`.
const VOID: RawType = RawType {
    name_off: 0,
    info: 0,
    size_or_type: 0,
    extra: 0,
};

fn show_path(struct_name: &str, path: &[&str]) -> String {
    std::iter::once(struct_name)
        .chain(path.iter().copied())
        .collect::<Vec<_>>()
        .join(".")
}

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
pub(crate) mod tests {
    use super::*;
    use std::io::Read;
    use std::sync::OnceLock;

    /// The vmlinux BTF of the machine the fixtures were captured on (Linux 6.18).
    pub(crate) fn vmlinux() -> &'static Btf {
        static BTF: OnceLock<Btf> = OnceLock::new();
        BTF.get_or_init(|| Btf::parse(&vmlinux_bytes()).expect("fixture parses"))
    }

    pub(crate) fn vmlinux_bytes() -> Vec<u8> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/vmlinux-6.18.btf.gz");
        let file = std::fs::File::open(path).expect("fixture present");
        let mut data = Vec::new();
        flate2::read::GzDecoder::new(file)
            .read_to_end(&mut data)
            .expect("fixture decompresses");
        data
    }

    // Offsets below were read with `pahole -F btf /sys/kernel/btf/vmlinux -C <struct>`
    // (pahole 1.24) on the 6.18.44 kernel the fixture was captured from, and agree
    // with the bits_offset values of `bpftool btf dump file /sys/kernel/btf/vmlinux`.
    #[test]
    fn sk_buff_offsets_match_pahole() {
        let btf = vmlinux();
        let off = |path: &[&str]| btf.member_offset("sk_buff", path).unwrap();
        assert_eq!(off(&["dev"]), 16); // inside union { struct { next, prev; union { dev, .. } } .. }
        assert_eq!(off(&["sk"]), 24);
        assert_eq!(off(&["len"]), 112);
        assert_eq!(off(&["protocol"]), 176); // inside struct_group(headers)
        assert_eq!(off(&["transport_header"]), 178);
        assert_eq!(off(&["network_header"]), 180);
        assert_eq!(off(&["mac_header"]), 182);
        assert_eq!(off(&["head"]), 192);
        assert_eq!(btf.member_size("sk_buff", &[]).unwrap(), 224);
    }

    #[test]
    fn sk_buff_member_sizes() {
        let btf = vmlinux();
        let size = |path: &[&str]| btf.member_size("sk_buff", path).unwrap();
        assert_eq!(size(&["network_header"]), 2);
        assert_eq!(size(&["protocol"]), 2);
        assert_eq!(size(&["len"]), 4);
        assert_eq!(size(&["head"]), 8);
        assert_eq!(size(&["cb"]), 48); // char cb[48]
    }

    #[test]
    fn paths_through_nested_structs_and_typedefs() {
        let btf = vmlinux();
        // possible_net_t is a typedef of an anonymous struct { struct net *net; }.
        assert_eq!(
            btf.member_offset("net_device", &["nd_net", "net"]).unwrap(),
            264
        );
        assert_eq!(btf.member_offset("net_device", &["ifindex"]).unwrap(), 224);
        assert_eq!(
            btf.member_offset("sock", &["__sk_common", "skc_net", "net"])
                .unwrap(),
            48
        );
        assert_eq!(
            btf.member_offset("sock", &["__sk_common", "skc_family"])
                .unwrap(),
            16
        );
        assert_eq!(btf.member_offset("net", &["ns", "inum"]).unwrap(), 176);
        assert_eq!(btf.member_size("net", &["ns", "inum"]).unwrap(), 4);
        // A typedef works as the starting point too.
        assert_eq!(btf.member_offset("possible_net_t", &["net"]).unwrap(), 0);
    }

    #[test]
    fn errors_name_what_is_missing() {
        let btf = vmlinux();
        let err = btf.member_offset("no_such_struct", &["x"]).unwrap_err();
        assert!(matches!(err, BtfError::StructNotFound { .. }));
        assert!(err.to_string().contains("no_such_struct"), "{err}");

        let err = btf
            .member_offset("sk_buff", &["no_such_member"])
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("sk_buff.no_such_member"), "{text}");
        assert!(text.contains("struct sk_buff"), "{text}");

        let err = btf
            .member_offset("sock", &["__sk_common", "skc_net", "nope"])
            .unwrap_err();
        assert!(err.to_string().contains("`nope`"), "{err}");

        // skc_reuse is a 4-bit bitfield at bit 152.
        let err = btf
            .member_offset("sock_common", &["skc_reuse"])
            .unwrap_err();
        assert!(
            matches!(
                err,
                BtfError::Bitfield {
                    bits: 4,
                    bit_offset: 152,
                    ..
                }
            ),
            "{err}"
        );

        // Paths do not follow pointers.
        let err = btf
            .member_offset("sk_buff", &["dev", "ifindex"])
            .unwrap_err();
        assert!(matches!(err, BtfError::NotComposite { .. }), "{err}");
        assert!(err.to_string().contains("pointer"), "{err}");
    }

    #[test]
    fn drop_reason_enum() {
        let btf = vmlinux();
        let variants = btf.enum_variants("skb_drop_reason").unwrap();
        let value = |name: &str| variants.iter().find(|(n, _)| n == name).map(|v| v.1);
        assert_eq!(value("SKB_NOT_DROPPED_YET"), Some(0));
        assert_eq!(value("SKB_CONSUMED"), Some(1));
        assert_eq!(value("SKB_DROP_REASON_NOT_SPECIFIED"), Some(2));
        assert_eq!(value("SKB_DROP_REASON_NETFILTER_DROP"), Some(12));
        assert_eq!(value("SKB_DROP_REASON_MAX"), Some(128));
        assert_eq!(variants.len(), 130);
        assert!(btf.enum_variants("no_such_enum").is_none());
    }

    #[test]
    fn signed_and_64_bit_enums() {
        let btf = vmlinux();
        let rpm = btf.enum_variants("rpm_status").unwrap();
        assert_eq!(rpm[0], ("RPM_INVALID".to_owned(), 0xffff_ffff));
        let ctx = btf.enum_variants("perf_callchain_context").unwrap();
        assert_eq!(ctx[0], ("PERF_CONTEXT_HV".to_owned(), (-32i64) as u64));
    }

    #[test]
    fn kfree_skb_tracepoint_prototype() {
        let params = vmlinux().func_proto_params("btf_trace_kfree_skb").unwrap();
        assert_eq!(
            params,
            [
                "void *",
                "struct sk_buff *",
                "void *",
                "enum skb_drop_reason",
                "struct sock *"
            ]
        );
        assert!(vmlinux().func_proto_params("sk_buff").is_none());
        assert!(vmlinux().func_proto_params("no_such_typedef").is_none());
    }

    #[test]
    fn real_blob_cut_short_is_an_error() {
        let data = vmlinux_bytes();
        for len in [0, 1, 2, 10, 23, 24, 4096, data.len() / 2, data.len() - 1] {
            assert!(Btf::parse(&data[..len]).is_err(), "prefix of {len} bytes");
        }
        let mut bad = data.clone();
        bad[0] = 0;
        assert!(matches!(Btf::parse(&bad), Err(BtfError::BadMagic { .. })));
        assert!(matches!(
            Btf::parse(b"this is not BTF at all, just text"),
            Err(BtfError::BadMagic { .. })
        ));
        assert!(matches!(
            Btf::parse(&[]),
            Err(BtfError::TooShort { len: 0 })
        ));
    }

    #[test]
    fn from_file_error_names_the_path() {
        let err = Btf::from_file(Path::new("/nonexistent/btf/vmlinux")).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/btf/vmlinux"),
            "{err}"
        );
    }

    /// Writes BTF blobs by hand, for the split and robustness tests: no small real
    /// blob exists on a machine without modules.
    pub(crate) struct Builder {
        types: Vec<u8>,
        strings: Vec<u8>,
        first_id: u32,
        str_base: u32,
        count: u32,
    }

    impl Builder {
        fn new() -> Builder {
            Builder {
                types: Vec::new(),
                strings: vec![0],
                first_id: 1,
                str_base: 0,
                count: 0,
            }
        }

        pub(crate) fn split(base: &Btf) -> Builder {
            Builder {
                types: Vec::new(),
                strings: Vec::new(),
                first_id: base.type_count() + 1,
                str_base: base.total_str_len() as u32,
                count: 0,
            }
        }

        fn s(&mut self, name: &str) -> u32 {
            if name.is_empty() {
                return 0;
            }
            let off = self.str_base + self.strings.len() as u32;
            self.strings.extend_from_slice(name.as_bytes());
            self.strings.push(0);
            off
        }

        fn ty(
            &mut self,
            name: &str,
            kind: u8,
            flag: bool,
            vlen: u32,
            sot: u32,
            extra: &[u32],
        ) -> u32 {
            let name_off = self.s(name);
            let info = (u32::from(flag) << 31) | (u32::from(kind) << 24) | vlen;
            for word in [name_off, info, sot].iter().chain(extra) {
                self.types.extend_from_slice(&word.to_le_bytes());
            }
            self.count += 1;
            self.first_id + self.count - 1
        }

        /// Adds a 32-bit enum.
        pub(crate) fn enum32(&mut self, name: &str, variants: &[(&str, u32)]) -> u32 {
            let mut extra = Vec::new();
            for (variant, value) in variants {
                extra.extend([self.s(variant), *value]);
            }
            self.ty(name, KIND_ENUM, false, variants.len() as u32, 4, &extra)
        }

        pub(crate) fn build(&self) -> Vec<u8> {
            let mut out = Vec::new();
            out.extend_from_slice(&MAGIC.to_le_bytes());
            out.extend_from_slice(&[1, 0]);
            for word in [
                24,
                0,
                self.types.len() as u32,
                self.types.len() as u32,
                self.strings.len() as u32,
            ] {
                out.extend_from_slice(&word.to_le_bytes());
            }
            out.extend_from_slice(&self.types);
            out.extend_from_slice(&self.strings);
            out
        }
    }

    /// A small blob with every construct the queries walk through.
    fn small_blob() -> Vec<u8> {
        let mut b = Builder::new();
        let uint = b.ty("unsigned int", KIND_INT, false, 0, 4, &[32]);
        b.ty("long unsigned int", KIND_INT, false, 0, 8, &[64]);
        let m = |b: &mut Builder, name: &str, ty: u32, off: u32| [b.s(name), ty, off];
        let inner_members = [m(&mut b, "a", uint, 0), m(&mut b, "b", uint, 32)].concat();
        let inner = b.ty("inner", KIND_STRUCT, false, 2, 8, &inner_members);
        let union_members = [m(&mut b, "x", uint, 0), m(&mut b, "", inner, 0)].concat();
        let anon_union = b.ty("", KIND_UNION, false, 2, 8, &union_members);
        let ptr_inner = 6; // declared below, ids are positional
        let array = 7;
        let outer_members = [
            m(&mut b, "head", ptr_inner, 0),
            m(&mut b, "", anon_union, 64),
            m(&mut b, "flags", uint, (3 << 24) | 128),
            m(&mut b, "arr", array, 160),
        ]
        .concat();
        let outer = b.ty("outer", KIND_STRUCT, true, 4, 24, &outer_members);
        assert_eq!(b.ty("", KIND_PTR, false, 0, inner, &[]), ptr_inner);
        assert_eq!(b.ty("", KIND_ARRAY, false, 0, 0, &[uint, uint, 1]), array);
        let red = b.s("RED");
        let blue = b.s("BLUE");
        b.ty(
            "color",
            KIND_ENUM,
            false,
            2,
            4,
            &[red, 0, blue, 0xffff_ffff],
        );
        let huge = b.s("HUGE");
        b.ty(
            "big",
            KIND_ENUM64,
            false,
            1,
            8,
            &[huge, 0xffff_ffe0, 0xffff_ffff],
        );
        b.ty("btf_trace_demo", KIND_TYPEDEF, false, 0, 11, &[]);
        b.ty("", KIND_PTR, false, 0, 12, &[]);
        let void_ptr = 13;
        let color = 8;
        b.ty(
            "",
            KIND_FUNC_PROTO,
            false,
            3,
            0,
            &[0, void_ptr, 0, ptr_inner, 0, color],
        );
        assert_eq!(b.ty("", KIND_PTR, false, 0, 0, &[]), void_ptr);
        let outer_t = b.ty("outer_t", KIND_TYPEDEF, false, 0, outer, &[]);
        b.ty("", KIND_CONST, false, 0, outer_t, &[]);
        b.ty("loop", KIND_TYPEDEF, false, 0, 17, &[]);
        b.ty("pool", KIND_TYPEDEF, false, 0, 16, &[]);
        b.build()
    }

    #[test]
    fn small_blob_queries() {
        let btf = Btf::parse(&small_blob()).unwrap();
        assert_eq!(btf.type_count(), 17);
        assert_eq!(btf.member_offset("outer", &["head"]).unwrap(), 0);
        assert_eq!(btf.member_offset("outer", &["x"]).unwrap(), 8);
        assert_eq!(btf.member_offset("outer", &["b"]).unwrap(), 12);
        assert_eq!(btf.member_offset("outer", &["arr"]).unwrap(), 20);
        assert_eq!(btf.member_offset("outer_t", &["b"]).unwrap(), 12);
        assert_eq!(btf.member_size("outer", &["arr"]).unwrap(), 4);
        assert_eq!(btf.member_size("outer", &["head"]).unwrap(), 8);
        assert_eq!(btf.member_size("outer", &["x"]).unwrap(), 4);
        assert!(matches!(
            btf.member_offset("outer", &["flags"]),
            Err(BtfError::Bitfield {
                bits: 3,
                bit_offset: 128,
                ..
            })
        ));
        assert!(matches!(
            btf.member_offset("outer", &["head", "a"]),
            Err(BtfError::NotComposite { .. })
        ));
        assert!(matches!(
            btf.member_offset("loop", &["a"]),
            Err(BtfError::StructNotFound { .. })
        ));
        assert_eq!(
            btf.enum_variants("color").unwrap(),
            [("RED".to_owned(), 0), ("BLUE".to_owned(), 0xffff_ffff)]
        );
        assert_eq!(
            btf.enum_variants("big").unwrap(),
            [("HUGE".to_owned(), 0xffff_ffff_ffff_ffe0)]
        );
        assert_eq!(
            btf.func_proto_params("btf_trace_demo").unwrap(),
            ["void *", "struct inner *", "enum color"]
        );
        assert_eq!(btf.enum_names().collect::<Vec<_>>(), ["color", "big"]);
    }

    #[test]
    fn split_btf_continues_base_ids_and_strings() {
        let base = Arc::new(Btf::parse(&small_blob()).unwrap());
        let mut b = Builder::split(&base);
        let uint = 1; // from the base
        let inner = 3; // from the base
        let first = b.s("first");
        let reason = b.s("MOD_DROP_THING");
        let members = [first, inner, 0, b.s("x"), uint, 64];
        b.ty("module_struct", KIND_STRUCT, false, 2, 12, &members);
        b.ty(
            "mod_drop_reason",
            KIND_ENUM,
            false,
            1,
            4,
            &[reason, 0x2_0001],
        );
        let split = Btf::parse_split(&b.build(), base.clone()).unwrap();
        assert_eq!(split.type_count(), 19);
        assert_eq!(split.member_offset("module_struct", &["x"]).unwrap(), 8);
        assert_eq!(
            split
                .member_offset("module_struct", &["first", "b"])
                .unwrap(),
            4
        );
        // Base types are visible through the split BTF.
        assert_eq!(split.member_offset("outer", &["arr"]).unwrap(), 20);
        assert_eq!(
            split.enum_variants("mod_drop_reason").unwrap(),
            [("MOD_DROP_THING".to_owned(), 0x2_0001)]
        );
        assert_eq!(split.enum_variants("color").unwrap().len(), 2);
        // Only the module's own enums are listed.
        assert_eq!(split.enum_names().collect::<Vec<_>>(), ["mod_drop_reason"]);
    }

    /// Runs every query; the point is that none of them panics.
    fn exercise(btf: &Btf) {
        for name in ["outer", "outer_t", "inner", "loop", "pool", "nope"] {
            for path in [
                &["head"][..],
                &["x"],
                &["b"],
                &["arr"],
                &["flags"],
                &["head", "a"],
                &[],
            ] {
                let _ = btf.member_offset(name, path);
                let _ = btf.member_size(name, path);
            }
        }
        for name in ["color", "big", "loop"] {
            let _ = btf.enum_variants(name);
        }
        let _ = btf.func_proto_params("btf_trace_demo");
        let _ = btf.enum_names().count();
        for id in 0..=btf.type_count() + 2 {
            let _ = btf.type_name(id);
        }
    }

    #[test]
    fn wide_anonymous_nesting_is_bounded() {
        // 40 levels, each with two anonymous members of the next: 2^40 paths.
        let mut b = Builder::new();
        let uint = b.ty("int", KIND_INT, false, 0, 4, &[32]);
        let x = b.s("x");
        let mut inner = b.ty("leaf", KIND_STRUCT, false, 1, 4, &[x, uint, 0]);
        for level in 0..40 {
            let name = format!("level{level}");
            inner = b.ty(&name, KIND_STRUCT, false, 2, 8, &[0, inner, 0, 0, inner, 0]);
        }
        let btf = Btf::parse(&b.build()).unwrap();
        let start = std::time::Instant::now();
        assert!(matches!(
            btf.member_offset("level39", &["missing"]),
            Err(BtfError::TooDeep { .. })
        ));
        assert_eq!(btf.member_offset("level39", &["x"]).unwrap(), 0);
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn every_prefix_of_a_small_blob_is_handled() {
        let data = small_blob();
        for len in 0..data.len() {
            if let Ok(btf) = Btf::parse(&data[..len]) {
                exercise(&btf);
            }
        }
        exercise(&Btf::parse(&data).unwrap());
    }

    #[test]
    fn random_mutations_do_not_panic() {
        let data = small_blob();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..2000 {
            let mut copy = data.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() % copy.len() as u64) as usize;
                copy[at] = next() as u8;
            }
            if let Ok(btf) = Btf::parse(&copy) {
                exercise(&btf);
            }
        }
    }

    /// `cargo test --release -p droptrace --lib btf::tests::live_parse_time -- --ignored --nocapture`
    #[test]
    #[ignore = "reads the running kernel's BTF and prints timings"]
    fn live_parse_time() {
        let path = Path::new("/sys/kernel/btf/vmlinux");
        let data = std::fs::read(path).unwrap();
        let start = std::time::Instant::now();
        let btf = Btf::parse(&data).unwrap();
        let parsed = start.elapsed();
        let offset = btf.member_offset("sk_buff", &["network_header"]).unwrap();
        let queried = start.elapsed();
        eprintln!(
            "{} bytes, {} types: parse {parsed:?}, parse + one member_offset {queried:?} (offset {offset})",
            data.len(),
            btf.type_count()
        );
        let start = std::time::Instant::now();
        let _ = Btf::from_file(path).unwrap();
        eprintln!("from_file (read + parse): {:?}", start.elapsed());
    }
}
