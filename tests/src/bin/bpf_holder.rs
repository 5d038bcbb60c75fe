//! A test helper, not part of droptrace: plays "a network component" that loads a BPF
//! program, attaches it inside a network namespace and keeps it open, the way an agent or
//! CNI plugin does. The diagnose tests check that droptrace names this process (its
//! command line) as the one holding the program.
//!
//! `bpf_holder NETNS_PATH DEV MODE OBJECT PROGRAM`, MODE one of `tc-ingress` (a classic
//! cls_bpf filter under clsact, through netlink), `tcx-ingress` (a tcx link) or `xdp-drv` /
//! `xdp-skb` (an XDP link). It prints `attached PROG_ID` once attached, then holds the
//! program until its stdin closes (the test ends it, or dies and the pipe closes).
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
    let mut out = std::io::stdout().lock();
    writeln!(out, "attached {id}")?;
    out.flush()?;
    drop(out);
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    Ok(())
}
