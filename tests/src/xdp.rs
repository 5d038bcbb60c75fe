//! XDP programs for the tests, loaded through bpf(2) directly: one that drops UDP to one
//! port and counts what it drops in a map of its own, with the BTF a fexit program needs
//! to be attached to it (a function `dt_xdp_udp(struct xdp_md *ctx)`), and one without
//! BTF. Attached through a BPF link, in the mode asked, in the namespace the calling
//! thread is in: the program goes when the link is dropped.
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_BTF_LOAD: libc::c_long = 18;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;

/// Where an XDP program runs: the driver's own hook or the generic one on skbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Native,
    Generic,
}

impl Mode {
    fn flags(self) -> u32 {
        match self {
            Mode::Native => 4,  // XDP_FLAGS_DRV_MODE
            Mode::Generic => 2, // XDP_FLAGS_SKB_MODE
        }
    }
}

/// bpf(2) with `attr`; what the kernel answered.
fn bpf(cmd: libc::c_long, attr: &mut [u8]) -> std::io::Result<i64> {
    // SAFETY: `attr` is a zeroed bpf_attr of the size given, filled for `cmd`, whose
    // pointers point at buffers that outlive the call.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(rc)
}

fn fd(rc: i64) -> OwnedFd {
    // SAFETY: a descriptor the kernel just gave us.
    unsafe { OwnedFd::from_raw_fd(i32::try_from(rc).expect("fd")) }
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_ne_bytes());
}

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[0] = code;
    b[1] = (src << 4) | dst;
    b[2..4].copy_from_slice(&off.to_ne_bytes());
    b[4..8].copy_from_slice(&imm.to_ne_bytes());
    b
}

/// An attached XDP program.
pub struct XdpProgram {
    pub id: u32,
    /// Its own count of the frames it dropped (`None` for the program without BTF, which
    /// drops everything and counts nothing).
    counter: Option<OwnedFd>,
    prog: OwnedFd,
    _link: OwnedFd,
}

impl XdpProgram {
    /// Frames the program dropped, by its own map.
    pub fn dropped(&self) -> u64 {
        let map = self.counter.as_ref().expect("a program with a counter");
        let key = 0u32;
        let mut value = 0u64;
        let mut attr = [0u8; 32];
        put32(&mut attr, 0, map.as_raw_fd() as u32);
        put64(&mut attr, 8, &raw const key as u64);
        put64(&mut attr, 16, &raw mut value as u64);
        bpf(BPF_MAP_LOOKUP_ELEM, &mut attr).expect("reading the program's counter");
        value
    }
}

/// Whether the kernel lets a fexit program be loaded against `program` (some kernels,
/// locked down, refuse every fentry and fexit program: EPERM before the verifier runs).
pub fn fexit_allowed(program: &XdpProgram) -> Result<(), std::io::Error> {
    // r0 = 0; exit
    let insns = [insn(0xb7, 0, 0, 0, 0), insn(0x95, 0, 0, 0, 0)].concat();
    let license = b"GPL\0";
    let mut attr = [0u8; 128];
    put32(&mut attr, 0, 26); // BPF_PROG_TYPE_TRACING
    put32(&mut attr, 4, 2);
    put64(&mut attr, 8, insns.as_ptr() as u64);
    put64(&mut attr, 16, license.as_ptr() as u64);
    put32(&mut attr, 68, 25); // BPF_TRACE_FEXIT
    put32(&mut attr, 108, MAIN_FUNC);
    put32(&mut attr, 112, program.prog.as_raw_fd() as u32);
    bpf(BPF_PROG_LOAD, &mut attr).map(drop)
}

/// The BTF id of `dt_xdp_udp` in [`btf_of_main`].
const MAIN_FUNC: u32 = 5;

/// The BTF of `int dt_xdp_udp(struct xdp_md *ctx)`: what a fexit program on it needs.
fn btf_of_main() -> Vec<u8> {
    let strings = b"\0int\0xdp_md\0ctx\0dt_xdp_udp\0";
    let (int, xdp_md, ctx, func) = (1u32, 5u32, 12u32, 16u32);
    let mut types: Vec<u32> = Vec::new();
    // 1: int
    types.extend([int, 1 << 24, 4, (1 << 24) | 32]);
    // 2: struct xdp_md (its members do not matter: the kernel matches the name)
    types.extend([xdp_md, 4 << 24, 0]);
    // 3: struct xdp_md *
    types.extend([0, 2 << 24, 2]);
    // 4: int (struct xdp_md *ctx)
    types.extend([0, (13 << 24) | 1, 1, ctx, 3]);
    // 5: the function, static
    types.extend([func, 12 << 24, 4]);
    let type_bytes: Vec<u8> = types.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let mut btf = Vec::new();
    btf.extend(0xeb9f_u16.to_ne_bytes());
    btf.extend([1u8, 0]);
    btf.extend(24u32.to_ne_bytes());
    btf.extend(0u32.to_ne_bytes());
    btf.extend((type_bytes.len() as u32).to_ne_bytes());
    btf.extend((type_bytes.len() as u32).to_ne_bytes());
    btf.extend((strings.len() as u32).to_ne_bytes());
    btf.extend(type_bytes);
    btf.extend(strings);
    btf
}

/// Instructions that drop (and count in map `counter`) IPv4 UDP to `port` without IP
/// options, and pass the rest.
fn drop_udp_insns(port: u16, counter: i32) -> Vec<u8> {
    let port_le = i32::from(u16::from_ne_bytes(port.to_be_bytes()));
    let mut p: Vec<[u8; 8]> = vec![
        insn(0x61, 2, 1, 0, 0),  // r2 = ctx->data
        insn(0x61, 3, 1, 4, 0),  // r3 = ctx->data_end
        insn(0xbf, 4, 2, 0, 0),  // r4 = r2
        insn(0x07, 4, 0, 0, 38), // r4 += 14 + 20 + 4
        insn(0x2d, 4, 3, 0, 0),  // if r4 > r3 goto pass  (patched)
        insn(0x69, 5, 2, 12, 0), // r5 = ethertype
        insn(
            0x55,
            5,
            0,
            0,
            i32::from(u16::from_ne_bytes(0x0800u16.to_be_bytes())),
        ),
        insn(0x71, 5, 2, 14, 0), // r5 = version and header length
        insn(0x55, 5, 0, 0, 0x45),
        insn(0x71, 5, 2, 23, 0), // r5 = protocol
        insn(0x55, 5, 0, 0, 17),
        insn(0x69, 5, 2, 36, 0), // r5 = destination port
        insn(0x55, 5, 0, 0, port_le),
        insn(0x62, 10, 0, -4, 0), // *(u32 *)(r10 - 4) = 0
        insn(0xbf, 2, 10, 0, 0),
        insn(0x07, 2, 0, 0, -4),
        insn(0x18, 1, 1, 0, counter), // r1 = the counter map
        insn(0, 0, 0, 0, 0),
        insn(0x85, 0, 0, 0, 1), // map_lookup_elem
        insn(0x15, 0, 0, 2, 0), // if r0 == 0 goto drop
        insn(0xb7, 1, 0, 0, 1),
        insn(0xdb, 0, 1, 0, 0), // lock *(u64 *)(r0 + 0) += r1
        insn(0xb7, 0, 0, 0, 1), // drop: r0 = XDP_DROP
        insn(0x95, 0, 0, 0, 0), // exit
        insn(0xb7, 0, 0, 0, 2), // pass: r0 = XDP_PASS
        insn(0x95, 0, 0, 0, 0),
    ];
    let pass = p.len() as i16 - 2;
    for at in [4usize, 6, 8, 10, 12] {
        p[at][2..4].copy_from_slice(&(pass - at as i16 - 1).to_ne_bytes());
    }
    p.concat()
}

/// The id of a loaded program.
fn prog_id(prog: &OwnedFd) -> u32 {
    let mut info = [0u8; 232];
    let mut attr = [0u8; 16];
    put32(&mut attr, 0, prog.as_raw_fd() as u32);
    put32(&mut attr, 4, info.len() as u32);
    put64(&mut attr, 8, info.as_mut_ptr() as u64);
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr).expect("the program's info");
    u32::from_ne_bytes([info[4], info[5], info[6], info[7]])
}

fn load(name: &[u8], insns: &[u8], btf: Option<(&OwnedFd, u32)>) -> OwnedFd {
    let license = b"GPL\0";
    let mut log = vec![0u8; 64 * 1024];
    let mut attr = [0u8; 128];
    put32(&mut attr, 0, BPF_PROG_TYPE_XDP);
    put32(&mut attr, 4, (insns.len() / 8) as u32);
    put64(&mut attr, 8, insns.as_ptr() as u64);
    put64(&mut attr, 16, license.as_ptr() as u64);
    put32(&mut attr, 24, 1);
    put32(&mut attr, 28, log.len() as u32);
    put64(&mut attr, 32, log.as_mut_ptr() as u64);
    attr[48..48 + name.len()].copy_from_slice(name);
    put32(&mut attr, 68, BPF_XDP);
    // func_info: the main function at instruction 0.
    let func_info = btf.map(|(_, func)| [0u32, func]);
    if let (Some((btf, _)), Some(info)) = (btf, func_info.as_ref()) {
        put32(&mut attr, 72, btf.as_raw_fd() as u32);
        put32(&mut attr, 76, 8);
        put64(&mut attr, 80, info.as_ptr() as u64);
        put32(&mut attr, 88, 1);
    }
    match bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(rc) => fd(rc),
        Err(e) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(0);
            panic!(
                "loading the XDP program: {e}\n{}",
                String::from_utf8_lossy(&log[..end])
            )
        }
    }
}

fn attach(prog: &OwnedFd, dev: &str, mode: Mode) -> OwnedFd {
    let name = std::ffi::CString::new(dev).expect("a name");
    // SAFETY: a NUL-terminated name; looked up in this thread's namespace.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    assert_ne!(ifindex, 0, "{dev}: {}", std::io::Error::last_os_error());
    let mut attr = [0u8; 64];
    put32(&mut attr, 0, prog.as_raw_fd() as u32);
    put32(&mut attr, 4, ifindex);
    put32(&mut attr, 8, BPF_XDP);
    put32(&mut attr, 12, mode.flags());
    fd(bpf(BPF_LINK_CREATE, &mut attr).expect("attaching the XDP program"))
}

/// `dt_xdp_udp`, with BTF: drops IPv4 UDP to `port` and counts it; attached to `dev`.
pub fn attach_drop_udp(dev: &str, mode: Mode, port: u16) -> XdpProgram {
    let mut attr = [0u8; 64];
    put32(&mut attr, 0, 2); // BPF_MAP_TYPE_ARRAY
    put32(&mut attr, 4, 4);
    put32(&mut attr, 8, 8);
    put32(&mut attr, 12, 1);
    let counter = fd(bpf(BPF_MAP_CREATE, &mut attr).expect("the program's counter"));
    let raw = btf_of_main();
    let mut log = vec![0u8; 16 * 1024];
    let mut attr = [0u8; 32];
    put64(&mut attr, 0, raw.as_ptr() as u64);
    put64(&mut attr, 8, log.as_mut_ptr() as u64);
    put32(&mut attr, 16, raw.len() as u32);
    put32(&mut attr, 20, log.len() as u32);
    put32(&mut attr, 24, 1);
    let btf = match bpf(BPF_BTF_LOAD, &mut attr) {
        Ok(rc) => fd(rc),
        Err(e) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(0);
            panic!("loading BTF: {e}\n{}", String::from_utf8_lossy(&log[..end]))
        }
    };
    let insns = drop_udp_insns(port, counter.as_raw_fd());
    let prog = load(b"dt_xdp_udp", &insns, Some((&btf, MAIN_FUNC)));
    let link = attach(&prog, dev, mode);
    XdpProgram {
        id: prog_id(&prog),
        counter: Some(counter),
        prog,
        _link: link,
    }
}

/// `dt_drop`, without BTF: `r0 = XDP_DROP; exit`, attached to `dev`.
pub fn attach_drop_all_without_btf(dev: &str, mode: Mode) -> XdpProgram {
    let insns = [insn(0xb7, 0, 0, 0, 1), insn(0x95, 0, 0, 0, 0)].concat();
    let prog = load(b"dt_drop", &insns, None);
    let link = attach(&prog, dev, mode);
    XdpProgram {
        id: prog_id(&prog),
        counter: None,
        prog,
        _link: link,
    }
}
