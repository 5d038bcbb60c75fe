//! Questions asked of parsed BTF: member offsets and sizes along a path, enum variants,
//! typedefs, function prototypes, and C spellings of types.
use super::*;

impl Btf {
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

fn show_path(struct_name: &str, path: &[&str]) -> String {
    std::iter::once(struct_name)
        .chain(path.iter().copied())
        .collect::<Vec<_>>()
        .join(".")
}
