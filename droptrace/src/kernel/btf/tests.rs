use super::*;
use std::io::Read;
use std::sync::OnceLock;

/// The vmlinux BTF of the machine the fixtures were captured on (Linux 6.18).
pub(crate) fn vmlinux() -> &'static Btf {
    static BTF: OnceLock<Btf> = OnceLock::new();
    BTF.get_or_init(|| Btf::parse(&vmlinux_bytes()).expect("fixture parses"))
}

pub(crate) fn vmlinux_bytes() -> Vec<u8> {
    gunzip(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/vmlinux-6.18.btf.gz"
    ))
}

/// The vmlinux BTF of Debian's 6.1 (the vmtest guest's kernel).
pub(crate) fn vmlinux_6_1() -> Btf {
    Btf::parse(&gunzip(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/vmlinux-6.1.btf.gz"
    )))
    .expect("fixture parses")
}

fn gunzip(path: &str) -> Vec<u8> {
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

    fn ty(&mut self, name: &str, kind: u8, flag: bool, vlen: u32, sot: u32, extra: &[u32]) -> u32 {
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
