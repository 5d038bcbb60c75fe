//! What droptrace's XDP verdict counter needs of the running kernel, and the counter
//! itself: a few BPF instructions, put together here (not in the aya object) because each
//! XDP program traced needs its own copy loaded against it (`attach_prog_fd`), which aya
//! 0.14 does not do for fexit programs. Pure: the bytes are built from offsets and map
//! descriptors; `probe::xdp` loads them.
use super::btf::Btf;
use super::layout::SkbOffsets;

/// XDP's verdicts that drop the frame (`enum xdp_action`, fixed by the UAPI).
pub const XDP_ABORTED: u32 = 0;
pub const XDP_DROP: u32 = 1;
pub const XDP_TX: u32 = 3;
pub const XDP_REDIRECT: u32 = 4;

/// Offsets of what the counter reads behind the XDP program's context: the kernel hands a
/// fexit program on an XDP program the `struct xdp_buff` the program's `xdp_md` stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XdpLayout {
    /// `xdp_buff.data_hard_start` (the skb's `head` where the frame is an skb).
    pub data_hard_start: u32,
    /// `xdp_buff.rxq` (a `struct xdp_rxq_info *`).
    pub rxq: u32,
    /// `xdp_rxq_info.dev` (a `struct net_device *`).
    pub rxq_dev: u32,
    pub dev_ifindex: u32,
    pub dev_net: u32,
    pub net_inum: u32,
    /// `net.net_cookie` (5.14+).
    pub net_cookie: Option<u32>,
}

impl XdpLayout {
    pub fn from_btf(btf: &Btf, skb: &SkbOffsets) -> Result<XdpLayout, String> {
        let off = |s: &str, path: &[&str]| {
            btf.member_offset(s, path)
                .map_err(|e| format!("{s}.{}: {e}", path.join(".")))
        };
        Ok(XdpLayout {
            data_hard_start: off("xdp_buff", &["data_hard_start"])?,
            rxq: off("xdp_buff", &["rxq"])?,
            rxq_dev: off("xdp_rxq_info", &["dev"])?,
            dev_ifindex: skb.dev_ifindex,
            dev_net: skb.dev_net,
            net_inum: skb.net_inum,
            net_cookie: skb.net_cookie,
        })
    }
}

/// The XDP exception tracepoints and the programs counting them
/// (`droptrace-ebpf/src/xdp.rs`): (tracepoint, program).
pub const EXCEPTION_TRACEPOINTS: [(&str, &str); 3] = [
    ("xdp_exception", "droptrace_xdp_exception"),
    ("xdp_redirect_err", "droptrace_xdp_redirect_err"),
    ("xdp_redirect_map_err", "droptrace_xdp_redirect_map_err"),
];

/// What the exception programs need of the running kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdpExcLayout {
    pub config: droptrace_common::XdpExcConfig,
    /// Each tracepoint of [`EXCEPTION_TRACEPOINTS`] with its BTF typedef's id, `None`
    /// where this kernel lacks it (`xdp_redirect_map_err` is gone in 6.18).
    pub tracepoints: Vec<(&'static str, &'static str, Option<u32>)>,
}

impl XdpExcLayout {
    pub fn from_btf(btf: &Btf, skb: &SkbOffsets) -> Result<XdpExcLayout, String> {
        let off = |s: &str, path: &[&str]| {
            btf.member_offset(s, path)
                .map_err(|e| format!("{s}.{}: {e}", path.join(".")))
        };
        let mut config = droptrace_common::XdpExcConfig {
            flags: droptrace_common::XDP_EXC_CONFIG_ON,
            prog_aux: off("bpf_prog", &["aux"])?,
            aux_id: off("bpf_prog_aux", &["id"])?,
            dev_xdp_prog: off("net_device", &["xdp_prog"])?,
            dev_link_ops: off("net_device", &["rtnl_link_ops"])?,
            link_ops_kind: off("rtnl_link_ops", &["kind"])?,
        };
        if skb.net_cookie.is_some() {
            config.flags |= droptrace_common::XDP_EXC_CONFIG_HAS_NET_COOKIE;
        }
        let tracepoints = EXCEPTION_TRACEPOINTS
            .iter()
            .map(|&(tp, program)| (tp, program, btf.typedef_id(&format!("btf_trace_{tp}"))))
            .collect();
        Ok(XdpExcLayout {
            config,
            tracepoints,
        })
    }
}

/// The key of the verdict counter's hash map: what a drop is counted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VerdictKey {
    pub prog_id: u32,
    pub ifindex: u32,
    pub netns: u32,
    pub verdict: u32,
    /// The namespace's cookie (0 when the kernel has none).
    pub netns_cookie: u64,
}

pub const KEY_SIZE: u32 = 24;

impl VerdictKey {
    pub fn from_bytes(b: &[u8; KEY_SIZE as usize]) -> VerdictKey {
        let word = |i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut cookie = [0u8; 8];
        cookie.copy_from_slice(&b[16..24]);
        VerdictKey {
            prog_id: word(0),
            ifindex: word(4),
            netns: word(8),
            verdict: word(12),
            netns_cookie: u64::from_ne_bytes(cookie),
        }
    }
}

/// One BPF instruction (`struct bpf_insn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            dst,
            src,
            off,
            imm,
        }
    }

    pub fn to_bytes(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.code;
        b[1] = (self.src << 4) | (self.dst & 0x0f);
        b[2..4].copy_from_slice(&self.off.to_ne_bytes());
        b[4..8].copy_from_slice(&self.imm.to_ne_bytes());
        b
    }
}

// Opcodes (include/uapi/linux/bpf.h, bpf_common.h).
const LDX_DW: u8 = 0x79;
const LDX_W: u8 = 0x61;
const STX_DW: u8 = 0x7b;
const STX_W: u8 = 0x63;
const ST_DW: u8 = 0x7a;
const ST_W: u8 = 0x62;
const MOV64_X: u8 = 0xbf;
const MOV64_K: u8 = 0xb7;
const ADD64_K: u8 = 0x07;
const JEQ_K: u8 = 0x15;
const JNE_K: u8 = 0x55;
const JGT32_K: u8 = 0x26;
const JA: u8 = 0x05;
const CALL: u8 = 0x85;
const EXIT: u8 = 0x95;
const LD_IMM64: u8 = 0x18;
const ATOMIC_DW: u8 = 0xdb;
const PSEUDO_MAP_FD: u8 = 1;
const MAP_LOOKUP_ELEM: i32 = 1;
const MAP_UPDATE_ELEM: i32 = 2;
const NOEXIST: i32 = 1;
/// `BPF_ADD` as an atomic operation.
const ATOMIC_ADD: i32 = 0;

fn ld_map(dst: u8, fd: i32) -> [Insn; 2] {
    [
        Insn::new(LD_IMM64, dst, PSEUDO_MAP_FD, 0, fd),
        Insn::new(0, 0, 0, 0, 0),
    ]
}

/// The verdict counter for the XDP program `prog_id`: after the program returns, it
/// notes the frame in this CPU's `owned` slot if the verdict drops it (so the kfree_skb
/// program skips that frame's skb: counted once) or clears the slot; then, for
/// XDP_DROP and XDP_ABORTED, adds one to `counts` at (program, ifindex, namespace,
/// verdict). `owned` is the drop program's `XDP_OWNED` (a per-CPU array of one u64),
/// `counts` a hash map of [`VerdictKey`] -> u64.
pub fn verdict_counter(layout: &XdpLayout, prog_id: u32, owned: i32, counts: i32) -> Vec<Insn> {
    let off = |v: u32| i16::try_from(v).unwrap_or(i16::MAX);
    let mut p: Vec<Insn> = Vec::with_capacity(52);
    // r6 = the xdp_buff, r7 = the verdict (fexit: arguments, then the return value).
    p.push(Insn::new(LDX_DW, 6, 1, 0, 0));
    p.push(Insn::new(LDX_DW, 7, 1, 8, 0));
    // r8 = this CPU's slot.
    p.push(Insn::new(ST_W, 10, 0, -4, 0));
    p.push(Insn::new(MOV64_X, 2, 10, 0, 0));
    p.push(Insn::new(ADD64_K, 2, 0, 0, -4));
    p.extend(ld_map(1, owned));
    p.push(Insn::new(CALL, 0, 0, 0, MAP_LOOKUP_ELEM));
    let to_exit_1 = p.len();
    p.push(Insn::new(JEQ_K, 0, 0, 0, 0));
    p.push(Insn::new(MOV64_X, 8, 0, 0, 0));
    // Verdicts above XDP_DROP pass, transmit or redirect the frame.
    let to_pass = p.len();
    p.push(Insn::new(JGT32_K, 7, 0, 0, 1));
    p.push(Insn::new(LDX_DW, 1, 6, off(layout.data_hard_start), 0));
    p.push(Insn::new(STX_DW, 8, 1, 0, 0));
    // The key at r10-32: program, ifindex, namespace, verdict, namespace cookie.
    p.push(Insn::new(LDX_DW, 2, 6, off(layout.rxq), 0));
    p.push(Insn::new(LDX_DW, 3, 2, off(layout.rxq_dev), 0));
    p.push(Insn::new(LDX_W, 4, 3, off(layout.dev_ifindex), 0));
    p.push(Insn::new(LDX_DW, 5, 3, off(layout.dev_net), 0));
    match layout.net_cookie {
        Some(cookie) => {
            p.push(Insn::new(LDX_DW, 9, 5, off(cookie), 0));
            p.push(Insn::new(STX_DW, 10, 9, -16, 0));
        }
        None => p.push(Insn::new(ST_DW, 10, 0, -16, 0)),
    }
    p.push(Insn::new(LDX_W, 5, 5, off(layout.net_inum), 0));
    p.push(Insn::new(ST_W, 10, 0, -32, prog_id as i32));
    p.push(Insn::new(STX_W, 10, 4, -28, 0));
    p.push(Insn::new(STX_W, 10, 5, -24, 0));
    p.push(Insn::new(STX_W, 10, 7, -20, 0));
    let key = |p: &mut Vec<Insn>| {
        p.push(Insn::new(MOV64_X, 2, 10, 0, 0));
        p.push(Insn::new(ADD64_K, 2, 0, 0, -32));
    };
    key(&mut p);
    p.extend(ld_map(1, counts));
    p.push(Insn::new(CALL, 0, 0, 0, MAP_LOOKUP_ELEM));
    let to_add_1 = p.len();
    p.push(Insn::new(JNE_K, 0, 0, 0, 0));
    // A new key: inserted with its first drop; if another CPU inserted it meanwhile,
    // counted in that.
    p.push(Insn::new(ST_DW, 10, 0, -40, 1));
    p.extend(ld_map(1, counts));
    key(&mut p);
    p.push(Insn::new(MOV64_X, 3, 10, 0, 0));
    p.push(Insn::new(ADD64_K, 3, 0, 0, -40));
    p.push(Insn::new(MOV64_K, 4, 0, 0, NOEXIST));
    p.push(Insn::new(CALL, 0, 0, 0, MAP_UPDATE_ELEM));
    let to_exit_2 = p.len();
    p.push(Insn::new(JEQ_K, 0, 0, 0, 0));
    p.extend(ld_map(1, counts));
    key(&mut p);
    p.push(Insn::new(CALL, 0, 0, 0, MAP_LOOKUP_ELEM));
    let to_exit_3 = p.len();
    p.push(Insn::new(JEQ_K, 0, 0, 0, 0));
    let add = p.len();
    p.push(Insn::new(MOV64_K, 1, 0, 0, 1));
    p.push(Insn::new(ATOMIC_DW, 0, 1, 0, ATOMIC_ADD));
    let to_exit_4 = p.len();
    p.push(Insn::new(JA, 0, 0, 0, 0));
    let pass = p.len();
    p.push(Insn::new(ST_DW, 8, 0, 0, 0));
    let exit = p.len();
    p.push(Insn::new(MOV64_K, 0, 0, 0, 0));
    p.push(Insn::new(EXIT, 0, 0, 0, 0));
    let jump = |p: &mut Vec<Insn>, from: usize, to: usize| {
        p[from].off = i16::try_from(to as isize - from as isize - 1).expect("a short jump");
    };
    for from in [to_exit_1, to_exit_2, to_exit_3, to_exit_4] {
        jump(&mut p, from, exit);
    }
    jump(&mut p, to_pass, pass);
    jump(&mut p, to_add_1, add);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> XdpLayout {
        XdpLayout {
            data_hard_start: 0,
            rxq: 40,
            rxq_dev: 0,
            dev_ifindex: 224,
            dev_net: 280,
            net_inum: 176,
            net_cookie: Some(184),
        }
    }

    #[test]
    fn every_jump_lands_inside_the_program_and_the_last_is_exit() {
        let p = verdict_counter(&layout(), 42, 7, 8);
        assert_eq!(p.last().unwrap().code, EXIT);
        for (at, insn) in p.iter().enumerate() {
            if [JEQ_K, JNE_K, JGT32_K, JA].contains(&insn.code) {
                let to = at as isize + 1 + insn.off as isize;
                assert!(
                    to > at as isize && (to as usize) < p.len(),
                    "{at}: {insn:?}"
                );
            }
        }
        // The map descriptors and the program's id are where the loader put them.
        let fds: Vec<i32> = p
            .iter()
            .filter(|i| i.code == LD_IMM64)
            .map(|i| i.imm)
            .collect();
        assert_eq!(fds, [7, 8, 8, 8]);
        assert!(p.iter().any(|i| i.code == ST_W && i.imm == 42));
        assert_eq!(
            Insn::new(LDX_DW, 7, 1, 8, 0).to_bytes(),
            [0x79, 0x17, 8, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn linux_6_18_and_6_1_have_what_the_exception_programs_read() {
        let btf = crate::kernel::btf::tests::vmlinux();
        let skb = SkbOffsets::from_btf(btf).unwrap();
        let layout = XdpExcLayout::from_btf(btf, &skb).unwrap();
        // `bpftool btf dump file /sys/kernel/btf/vmlinux format c` on 6.18.
        assert_eq!(layout.config.aux_id, 32, "bpf_prog_aux.id");
        let ids: Vec<_> = layout
            .tracepoints
            .iter()
            .map(|t| (t.0, t.2.is_some()))
            .collect();
        assert_eq!(
            ids,
            [
                ("xdp_exception", true),
                ("xdp_redirect_err", true),
                ("xdp_redirect_map_err", false)
            ]
        );
        let old = crate::kernel::btf::tests::vmlinux_6_1();
        let skb = SkbOffsets::from_btf(&old).unwrap();
        let layout = XdpExcLayout::from_btf(&old, &skb).unwrap();
        assert!(layout.tracepoints.iter().all(|t| t.2.is_some()));
    }

    #[test]
    fn keys_read_back_as_written() {
        let mut b = [0u8; 24];
        for (i, v) in [42u32, 3, 4_026_532_000, XDP_DROP].iter().enumerate() {
            b[i * 4..i * 4 + 4].copy_from_slice(&v.to_ne_bytes());
        }
        b[16..].copy_from_slice(&8193u64.to_ne_bytes());
        assert_eq!(
            VerdictKey::from_bytes(&b),
            VerdictKey {
                prog_id: 42,
                ifindex: 3,
                netns: 4_026_532_000,
                verdict: XDP_DROP,
                netns_cookie: 8193,
            }
        );
    }
}
