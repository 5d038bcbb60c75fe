//! Installing what the build and the tests need on a fresh Debian machine.
use std::{path::Path, process::Command};

use anyhow::{bail, Result};

use crate::run;

/// The nightly that carries LLVM 22, which bpf-linker 0.13 is built against.
pub const NIGHTLY: &str = "nightly-2026-05-20";
/// Its rustc commit: a machine's plain `nightly` may be this very build.
const NIGHTLY_COMMIT: &str = "e50aa6fba";
const BPF_LINKER: &str = "0.13.0";

/// Debian packages: LLVM for bpf-linker; the tools the integration tests and the
/// benchmark drive (nft, iptables, ip/tc, bpftrace as a peer, bpftool to list programs,
/// tmux for the live view's terminal test, tshark to read exported pcapng back,
/// Prometheus and promtool to scrape and check `droptrace serve`, and containerd, runc and
/// a static busybox for the pods of the container tests (the tests start containerd with a
/// configuration of their own and stop it)); for `xtask deb --check`: dpkg-dev
/// (dpkg-shlibdeps, strip), lintian, man-db to read the pages, zsh and fish to try their
/// completions; for `xtask vmtest`: qemu (TCG works everywhere), a static busybox for
/// the initramfs, kmod (depmod, modprobe of the guest kernel's modules), cpio, xz for
/// 6.12's compressed modules, and binutils (nm, addr2line: the reference lines of the
/// source-line tests); chromium renders the HTML pages in their tests;
/// mmdebstrap makes the Debian root of the OCI image (`xtask image`); python3-venv holds the
/// manifest checks' Python tools (`xtask manifests`; node and npm, for the others, come
/// with the machine or from `nodejs npm`).
const PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "nftables",
    "iptables",
    "iproute2",
    "bpftrace",
    "bpftool",
    "tmux",
    "tshark",
    "prometheus",
    "dpkg-dev",
    "lintian",
    "man-db",
    "zsh",
    "fish",
    "containerd",
    "runc",
    "busybox-static",
    "qemu-system-x86",
    "kmod",
    "cpio",
    "xz-utils",
    "binutils",
    "chromium",
    "mmdebstrap",
    "python3-venv",
];

pub fn setup() -> Result<()> {
    install_packages()?;
    // Idempotent: quick when everything is already there.
    run(Command::new("rustup").args(["component", "add", "clippy", "rustfmt"]))?;
    if let Err(e) = run(Command::new("rustup").args([
        "toolchain",
        "install",
        NIGHTLY,
        "--profile",
        "minimal",
        "--component",
        "rust-src",
    ])) {
        eprintln!("xtask: warning: installing {NIGHTLY} failed ({e}); looking for the same build as `nightly`");
    }
    let toolchain = ebpf_toolchain()?;
    run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", &toolchain]))?;
    if output_of(Command::new("npm").arg("--version")).is_empty() {
        run(Command::new("apt-get")
            .args([
                "install",
                "-y",
                "-q",
                "--no-install-recommends",
                "nodejs",
                "npm",
            ])
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    crate::manifests::install_tools()?;
    let linker = output_of(Command::new("bpf-linker").arg("--version"));
    if !linker.contains(BPF_LINKER) {
        run(Command::new("cargo")
            .args([
                "install",
                &format!("bpf-linker@{BPF_LINKER}"),
                "--locked",
                "--no-default-features",
                "--features",
                "llvm-22",
            ])
            .env("LLVM_PREFIX", "/usr/lib/llvm-22"))?;
    }
    Ok(())
}

/// The installed toolchain that builds the kernel program: the pinned nightly, or a
/// `nightly` that is the same build.
pub fn ebpf_toolchain() -> Result<String> {
    for toolchain in [NIGHTLY, "nightly"] {
        let version =
            output_of(Command::new("rustup").args(["run", toolchain, "rustc", "--version"]));
        if version.contains(NIGHTLY_COMMIT) {
            return Ok(toolchain.to_owned());
        }
    }
    bail!("the pinned nightly ({NIGHTLY}, rustc {NIGHTLY_COMMIT}) is not installed; `cargo xtask setup` installs it")
}

fn install_packages() -> Result<()> {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            !output_of(Command::new("dpkg-query").args(["-W", "-f", "${Status}", p]))
                .contains("install ok installed")
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    run(Command::new("apt-get").args(["update", "-q"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

/// The classic tracepoint and the tests read tracefs; a fresh machine may not have it.
pub fn mount_tracefs() -> Result<()> {
    if Path::new("/sys/kernel/tracing/events").is_dir() {
        return Ok(());
    }
    run(Command::new("mount").args(["-t", "tracefs", "tracefs", "/sys/kernel/tracing"]))?;
    if !Path::new("/sys/kernel/tracing/events").is_dir() {
        bail!("tracefs mounted but /sys/kernel/tracing/events is missing");
    }
    Ok(())
}

fn output_of(cmd: &mut Command) -> String {
    cmd.output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}
