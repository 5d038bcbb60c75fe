//! A test helper, not part of droptrace: plays "a network component" that loads a BPF
//! program, attaches it inside a network namespace and keeps it open, the way an agent or
//! CNI plugin does. The diagnose tests check that droptrace names this process (its
//! command line) as the one holding the program.
//!
//! `bpf_holder NETNS_PATH DEV MODE OBJECT PROGRAM`, MODE one of `tc-ingress` (a classic
//! cls_bpf filter under clsact, through netlink), `tcx-ingress` (a tcx link) or `xdp-drv` /
//! `xdp-skb` (an XDP link). It prints `attached PROG_ID` once attached, then holds the
//! program until its stdin closes (the test ends it, or dies and the pipe closes).
//!
//! `bpf_holder NETNS_PATH CGROUP_DIR cgroup-drop-udp PORT NAME` instead loads a two-instruction
//! cgroup skb program named NAME that rejects every packet (`r0 = 0; exit`), attaches it at
//! ingress of the cgroup v2 directory CGROUP_DIR through a BPF link, moves itself into that
//! cgroup and binds a UDP socket on PORT in the namespace: datagrams to it are dropped with
//! SOCKET_FILTER. No object file is needed.
use std::{
    fs::File,
    io::{Read, Write},
    os::fd::AsRawFd,
};

use anyhow::{bail, Context};
use aya::programs::{
    links::LinkOrder,
    tc::{self, TcAttachOptions},
    SchedClassifier, TcAttachType, Xdp, XdpMode,
};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, netns, dev, mode, object, program] = args.as_slice() else {
        bail!("usage: bpf_holder NETNS_PATH DEV MODE OBJECT PROGRAM");
    };
    let ns = File::open(netns).with_context(|| format!("open {netns}"))?;
    // SAFETY: a valid namespace fd; this process is still single-threaded.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        bail!("setns {netns}: {}", std::io::Error::last_os_error());
    }
    if mode == "cgroup-drop-udp" {
        let (id, _held) = cgroup_drop_udp(dev, object, program)?;
        return hold(id);
    }
    let mut ebpf = aya::Ebpf::load_file(object).with_context(|| format!("load {object}"))?;
    let prog = ebpf
        .program_mut(program)
        .with_context(|| format!("no program {program} in {object}"))?;
    let id = match mode.as_str() {
        "tc-ingress" | "tcx-ingress" => {
            let p: &mut SchedClassifier = prog.try_into()?;
            p.load()?;
            let options = if mode == "tcx-ingress" {
                TcAttachOptions::TcxOrder(LinkOrder::default())
            } else {
                // An existing clsact qdisc is fine.
                let _ = tc::qdisc_add_clsact(dev);
                TcAttachOptions::Netlink(tc::NlOptions::default())
            };
            p.attach_with_options(dev, TcAttachType::Ingress, options)?;
            p.info()?.id()
        }
        "xdp-drv" | "xdp-skb" => {
            let p: &mut Xdp = prog.try_into()?;
            p.load()?;
            let how = if mode == "xdp-drv" {
                XdpMode::Driver
            } else {
                XdpMode::Skb
            };
            p.attach(dev, how)?;
            p.info()?.id()
        }
        other => bail!("unknown mode {other}"),
    };
    hold(id)
}

/// Says the program is attached, then waits for stdin to close.
fn hold(id: u32) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "attached {id}")?;
    out.flush()?;
    drop(out);
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    Ok(())
}

fn bpf(cmd: libc::c_long, attr: &mut [u8; 128]) -> std::io::Result<i32> {
    // SAFETY: attr is a zero-padded bpf_attr of the size passed; the kernel reads and writes
    // within it, and pointers in it point at live buffers of this function's callers.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(i32::try_from(rc).expect("fd"))
}

fn put_u32(attr: &mut [u8; 128], at: usize, v: u32) {
    attr[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put_u64(attr: &mut [u8; 128], at: usize, v: u64) {
    attr[at..at + 8].copy_from_slice(&v.to_ne_bytes());
}

/// Returns the program id and what must stay open (program fd, link fd, socket).
fn cgroup_drop_udp(
    cgroup: &str,
    port: &str,
    name: &str,
) -> anyhow::Result<(u32, (i32, i32, std::net::UdpSocket))> {
    const BPF_PROG_LOAD: libc::c_long = 5;
    const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
    const BPF_LINK_CREATE: libc::c_long = 28;
    const BPF_PROG_TYPE_CGROUP_SKB: u32 = 8;
    const BPF_CGROUP_INET_INGRESS: u32 = 0;
    // r0 = 0; exit
    let insns: [u8; 16] = [0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];
    let license = b"GPL\0";
    let mut attr = [0u8; 128];
    put_u32(&mut attr, 0, BPF_PROG_TYPE_CGROUP_SKB);
    put_u32(&mut attr, 4, 2);
    put_u64(&mut attr, 8, insns.as_ptr() as u64);
    put_u64(&mut attr, 16, license.as_ptr() as u64);
    let name = name.as_bytes();
    let len = name.len().min(15);
    attr[48..48 + len].copy_from_slice(&name[..len]);
    put_u32(&mut attr, 68, BPF_CGROUP_INET_INGRESS);
    let prog = bpf(BPF_PROG_LOAD, &mut attr).context("BPF_PROG_LOAD")?;

    let dir = File::open(cgroup).with_context(|| format!("open {cgroup}"))?;
    let mut attr = [0u8; 128];
    put_u32(&mut attr, 0, u32::try_from(prog)?);
    put_u32(&mut attr, 4, u32::try_from(dir.as_raw_fd())?);
    put_u32(&mut attr, 8, BPF_CGROUP_INET_INGRESS);
    let link = bpf(BPF_LINK_CREATE, &mut attr).context("BPF_LINK_CREATE")?;

    let mut info = [0u8; 256];
    let mut attr = [0u8; 128];
    put_u32(&mut attr, 0, u32::try_from(prog)?);
    put_u32(&mut attr, 4, 256);
    put_u64(&mut attr, 8, info.as_mut_ptr() as u64);
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr).context("BPF_OBJ_GET_INFO_BY_FD")?;
    let id = u32::from_ne_bytes(info[4..8].try_into()?);

    std::fs::write(
        format!("{cgroup}/cgroup.procs"),
        std::process::id().to_string(),
    )
    .with_context(|| format!("joining {cgroup}"))?;
    let socket = std::net::UdpSocket::bind(format!("0.0.0.0:{port}"))?;
    Ok((id, (prog, link, socket)))
}
