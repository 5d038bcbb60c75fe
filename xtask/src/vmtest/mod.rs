//! `cargo xtask vmtest`: the root integration suite inside qemu guests running Debian's
//! 6.1 and 6.12 kernels, with the host's root shared read-only and a writable share for
//! the results. One line per kernel; the failing tests' output when any fail. One more
//! guest stands for a big node: 6.12 with `--big-node-cpus` vCPUs (its possible CPUs, what
//! per-CPU maps are sized by), running the few tests of what grows with CPUs.
mod kernel;
mod results;

use std::{
    io::Read,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};

use crate::{cargo, output, run, workspace};
use kernel::{write_executable, Kernel, Line};
use results::Outcome;

#[derive(Args)]
pub struct VmtestArgs {
    /// Which kernel to boot.
    #[arg(long, value_enum, default_value = "all")]
    kernel: Which,
    /// Each kernel with its BTF (the tp_btf attach), with BTF hidden (the classic
    /// tracepoint, reasons from tracefs), or both.
    #[arg(long, value_enum, default_value = "both")]
    btf: Btf,
    /// Guests running at once (each is one emulated CPU).
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    /// One guest at a time (the same as --jobs 1).
    #[arg(long)]
    serial: bool,
    /// Only the tests whose names contain this (passed to each test binary).
    #[arg(long)]
    filter: Option<String>,
    /// vCPUs of the big-node guest (6.12 with BTF; 0 leaves it out). Its boot time grows
    /// with them under TCG: 64 boot in about a minute, 128 in over three.
    #[arg(long, default_value_t = BIG_NODE_CPUS)]
    big_node_cpus: u32,
    /// Only the big-node guest.
    #[arg(long)]
    big_node_only: bool,
    /// The droptrace the tests run instead of this workspace's release build (another
    /// branch's, to compare): a path the guests see, so not under /tmp or /run.
    #[arg(long, value_name = "PATH")]
    droptrace_bin: Option<PathBuf>,
    /// Instead of the tests: `cargo xtask bench --xdp` (the XDP verdict counter's cost) in
    /// a guest of each kernel with BTF, its tables printed per guest. Not part of CI.
    #[arg(long, conflicts_with_all = ["filter", "big_node_only"])]
    bench_xdp: bool,
}

impl VmtestArgs {
    /// What `cargo xtask test` runs: every kernel, with and without BTF.
    pub fn all() -> VmtestArgs {
        VmtestArgs {
            kernel: Which::All,
            btf: Btf::Both,
            jobs: 2,
            serial: false,
            filter: None,
            big_node_cpus: BIG_NODE_CPUS,
            big_node_only: false,
            droptrace_bin: None,
            bench_xdp: false,
        }
    }
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Which {
    #[value(name = "6.1")]
    V6_1,
    #[value(name = "6.12")]
    V6_12,
    All,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Btf {
    With,
    Without,
    Both,
}

impl Btf {
    /// Whether the guests see /sys/kernel/btf, one entry per guest of a kernel.
    fn variants(self) -> &'static [bool] {
        match self {
            Btf::With => &[true],
            Btf::Without => &[false],
            Btf::Both => &[true, false],
        }
    }
}

/// One boot: a kernel, with its BTF or with /sys/kernel/btf hidden by an empty tmpfs.
struct Guest<'a> {
    kernel: &'a Kernel,
    btf: bool,
    /// vCPUs; more than one only for the big-node guest, which runs `BIG_NODE_TESTS`.
    cpus: u32,
}

impl Guest<'_> {
    /// `6.1.0-57-amd64`, `6.1.0-57-amd64 without BTF`, `6.12.117+deb12-amd64 with 64 CPUs`.
    fn name(&self) -> String {
        if self.cpus > 1 {
            format!("{} with {} CPUs", self.kernel.release, self.cpus)
        } else if self.btf {
            self.kernel.release.clone()
        } else {
            format!("{} without BTF", self.kernel.release)
        }
    }

    /// Its writable share, under target/vmtest/run.
    fn share(&self, dir: &Path) -> PathBuf {
        let suffix = if self.cpus > 1 {
            format!("-{}cpus", self.cpus)
        } else if self.btf {
            String::new()
        } else {
            "-nobtf".to_owned()
        };
        dir.join("run")
            .join(format!("{}{suffix}", self.kernel.release))
    }

    /// The tests of one binary this guest runs, as libtest filters; `None`: not this
    /// binary; empty: all of it.
    fn tests_of(&self, binary: &str) -> Option<&'static str> {
        if self.cpus > 1 {
            return BIG_NODE_TESTS
                .iter()
                .find(|(b, _)| *b == binary)
                .map(|(_, tests)| *tests);
        }
        if HOST_ONLY_TESTS.contains(&binary) || !self.btf && !WITHOUT_BTF_TESTS.contains(&binary) {
            return None;
        }
        Some("")
    }
}

/// Runs `each` on every item, `jobs` at a time, in order of the items; results in order.
fn run_pool<T: Sync, R: Send>(
    items: &[T],
    jobs: usize,
    each: impl Fn(&T) -> Result<R> + Sync,
) -> Vec<Result<R>> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<Result<R>>>> =
        items.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..jobs.min(items.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = each(item);
                *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
            });
        }
    });
    results
        .into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .unwrap_or_else(|| bail!("a vmtest worker ended early"))
        })
        .collect()
}

/// The test binaries of the guests without BTF.
const WITHOUT_BTF_TESTS: &[&str] = &["without_btf"];
/// Tests of what does not depend on the kernel (HTML pages rendered by Chromium, the OCI
/// image in containerd: minutes each under TCG): run on the host only.
const HOST_ONLY_TESTS: &[&str] = &["html", "image"];
/// vCPUs of the big-node guest by default.
const BIG_NODE_CPUS: u32 = 64;
/// What the big-node guest runs (binary, its tests): the counting maps' memory, exact
/// counts against the kernel's, and a port scan's groups.
const BIG_NODE_TESTS: &[(&str, &str)] = &[(
    "drops",
    "the_counting_maps_take_a_few_mib_whatever_the_cpus \
     every_group_of_a_port_scan_counts_exactly qdisc_drops_match_tc_dropped",
)];

/// A guest that has not powered off by then is a failure (the console log is shown).
const GUEST_TIMEOUT: Duration = Duration::from_secs(40 * 60);
/// One test binary inside the guest.
const BINARY_TIMEOUT_SECS: u64 = 20 * 60;
/// How much slower than the host a TCG guest runs the tests (DROPTRACE_TEST_TIME_SCALE).
const TCG_TIME_SCALE: u32 = 4;
/// Boot-and-power-off with KVM, to see whether it works on this machine.
const KVM_PROBE_TIMEOUT: Duration = Duration::from_secs(30);

pub fn vmtest(args: &VmtestArgs) -> Result<()> {
    let lines = match args.kernel {
        Which::V6_1 => vec![Line::V6_1],
        Which::V6_12 => vec![Line::V6_12],
        Which::All => vec![Line::V6_1, Line::V6_12],
    };
    if let Some(bin) = &args.droptrace_bin {
        let real = std::fs::canonicalize(bin)
            .with_context(|| format!("--droptrace-bin {}", bin.display()))?;
        if ["/tmp", "/run", "/var/tmp"]
            .iter()
            .any(|d| real.starts_with(d))
        {
            bail!(
                "--droptrace-bin {}: the guests have their own /tmp and /run: put it elsewhere",
                real.display()
            );
        }
    }
    if args.big_node_only && (!lines.contains(&Line::V6_12) || args.big_node_cpus < 2) {
        bail!("--big-node-only needs the 6.12 kernel and --big-node-cpus of 2 or more");
    }
    for tool in ["qemu-system-x86_64", "busybox", "depmod", "cpio", "xz"] {
        if !Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            bail!("{tool} is missing: `cargo xtask setup` installs qemu-system-x86, busybox-static, kmod, cpio and xz-utils");
        }
    }
    let ws = workspace();
    let dir = ws.join("target/vmtest");
    run(cargo()
        .args(["build", "--locked", "--release", "-p", "droptrace"])
        .current_dir(&ws))?;
    let binaries = if args.bench_xdp {
        Vec::new()
    } else {
        test_binaries(&ws)?
    };
    // The bench needs no source lines: no 858 MB debug package for it.
    let kernels = lines
        .iter()
        .map(|l| kernel::prepare(*l, &dir, !args.bench_xdp))
        .collect::<Result<Vec<_>>>()?;
    let accel = if kvm_works(&kernels[0], &dir) {
        "kvm"
    } else {
        "tcg"
    };
    if args.bench_xdp {
        return bench_xdp(&kernels, &dir, &ws, accel, args);
    }
    eprintln!(
        "xtask: vmtest: {} test binaries on {} with {accel}",
        binaries.len(),
        kernels
            .iter()
            .map(|k| k.release.as_str())
            .collect::<Vec<_>>()
            .join(" and ")
    );
    // The big node first: the longest boot, while the other worker runs a small guest.
    let big = lines
        .iter()
        .zip(&kernels)
        .filter(|(l, _)| **l == Line::V6_12 && args.big_node_cpus > 1 && args.btf != Btf::Without)
        .map(|(_, k)| Guest {
            kernel: k,
            btf: true,
            cpus: args.big_node_cpus,
        });
    let small = if args.big_node_only {
        &[][..]
    } else {
        &kernels[..]
    };
    let guests: Vec<Guest<'_>> = big
        .chain(small.iter().flat_map(|k| {
            args.btf.variants().iter().map(move |&btf| Guest {
                kernel: k,
                btf,
                cpus: 1,
            })
        }))
        .collect();
    let jobs = if args.serial { 1 } else { args.jobs.max(1) };
    let started = Instant::now();
    let outcomes = run_pool(&guests, jobs, |g| {
        boot(g, &dir, &ws, &binaries, accel, args)
    });
    let mut failed = false;
    let mut lines_out = Vec::new();
    for (g, outcome) in guests.iter().zip(outcomes) {
        match outcome {
            Ok(o) => {
                if !o.passed() {
                    failed = true;
                    eprintln!("{}", o.failure_report());
                }
                lines_out.push(o.line());
            }
            Err(e) => {
                failed = true;
                lines_out.push(format!("vmtest: {}: failed: {e:#}", g.name()));
            }
        }
    }
    for l in &lines_out {
        println!("{l}");
    }
    println!(
        "vmtest: {} guests in {} ({accel}, {jobs} at a time)",
        guests.len(),
        results::minutes(started.elapsed()),
    );
    if failed {
        bail!("vmtest failed");
    }
    Ok(())
}

/// The root test binaries, as `cargo test --no-run` builds them: (test name, path).
fn test_binaries(ws: &Path) -> Result<Vec<(String, PathBuf)>> {
    let json = output(
        cargo()
            .args([
                "test",
                "--locked",
                "--release",
                "-p",
                "droptrace-tests",
                "--no-run",
                "--message-format=json",
            ])
            .current_dir(ws),
    )?;
    let mut out = Vec::new();
    for line in json.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let kinds = &v["target"]["kind"];
        let is_test = kinds
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "test"));
        if v["reason"] == "compiler-artifact" && is_test {
            if let (Some(name), Some(exe)) =
                (v["target"]["name"].as_str(), v["executable"].as_str())
            {
                out.push((name.to_owned(), PathBuf::from(exe)));
            }
        }
    }
    if out.is_empty() {
        bail!("cargo test --no-run listed no test binaries of droptrace-tests");
    }
    out.sort();
    Ok(out)
}

/// The addresses of the two virtio-net devices a guest with BTF gets (the tests find them
/// by these).
const VIRTIO_NET_MACS: [&str; 2] = ["52:54:00:d7:00:0a", "52:54:00:d7:00:0b"];

/// qemu under `timeout` (a guest that hangs, or KVM's pause after an emulation error,
/// ends there).
fn qemu(
    k: &Kernel,
    accel: &str,
    cpus: u32,
    share: Option<(&Path, bool)>,
    limit: Duration,
) -> Command {
    let mut cmd = Command::new("timeout");
    cmd.args([
        "-k",
        "10",
        &limit.as_secs().to_string(),
        "qemu-system-x86_64",
    ]);
    match accel {
        "kvm" => cmd.args(["-accel", "kvm", "-cpu", "host,-arch-capabilities"]),
        _ => cmd.args(["-accel", "tcg,thread=single", "-cpu", "max"]),
    };
    cmd.arg("-smp")
        .arg(cpus.to_string())
        .args(["-m", "2048", "-nographic", "-no-reboot", "-nic", "none"])
        .args(["-monitor", "none", "-serial", "stdio"])
        .arg("-virtfs")
        .arg("local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap");
    if let Some((share, btf)) = share {
        cmd.arg("-virtfs").arg(format!(
            "local,path={},mount_tag=share,security_model=none,multidevs=remap",
            share.display()
        ));
        // Guests with BTF get two virtio-net devices joined by a qemu hub: a real driver
        // with native XDP, where a dropped frame never becomes an skb
        // (tests/tests/xdp.rs finds them by these addresses). XDP on virtio_net needs the
        // guest offloads off.
        if btf {
            for (i, mac) in VIRTIO_NET_MACS.iter().enumerate() {
                cmd.arg("-netdev")
                    .arg(format!("hubport,id=dtnet{i},hubid=7"))
                    .arg("-device")
                    .arg(format!(
                        "virtio-net-pci,netdev=dtnet{i},mac={mac},guest_tso4=off,\
                         guest_tso6=off,guest_ecn=off,guest_ufo=off,guest_csum=off"
                    ));
            }
        }
    }
    cmd.arg("-kernel")
        .arg(&k.vmlinuz)
        .arg("-initrd")
        .arg(&k.initrd)
        .arg("-append")
        .arg(format!(
            "console=ttyS0 panic=-1 loglevel=4 {}",
            share.map_or("vmtest.probe".to_owned(), |(s, btf)| format!(
                "vmtest.share={} vmtest.workspace={}{}",
                s.display(),
                workspace().display(),
                if btf { "" } else { " vmtest.nobtf" }
            ))
        ))
        .stdin(Stdio::null());
    cmd
}

/// Boots the first kernel with KVM to an /init that powers off at once: KVM is used only
/// when that works (on some hosts /dev/kvm exists and early guest code fails to emulate).
fn kvm_works(k: &Kernel, dir: &Path) -> bool {
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        return false;
    }
    let log = dir.join("kvm-probe.log");
    let ok = (|| -> Result<bool> {
        let file = std::fs::File::create(&log)?;
        let mut child = qemu(k, "kvm", 1, None, KVM_PROBE_TIMEOUT)
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()?;
        let started = Instant::now();
        let verdict = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("vmtest-probe-ok") {
                break true;
            }
            if text.contains("KVM internal error") || started.elapsed() > KVM_PROBE_TIMEOUT {
                break false;
            }
            if let Some(status) = child.try_wait()? {
                break status.success() && text.contains("vmtest-probe-ok");
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        if child.try_wait()?.is_none() {
            // SIGTERM to `timeout`, which passes it on to qemu.
            let _ = Command::new("kill").arg(child.id().to_string()).status();
        }
        let _ = child.wait();
        Ok(verdict)
    })()
    .unwrap_or(false);
    if !ok {
        eprintln!(
            "xtask: vmtest: KVM does not boot a guest here (see {}); using TCG",
            log.display()
        );
    }
    ok
}

/// Runs the suite in one guest and reads back what it wrote in the share.
fn boot(
    g: &Guest<'_>,
    dir: &Path,
    ws: &Path,
    binaries: &[(String, PathBuf)],
    accel: &str,
    args: &VmtestArgs,
) -> Result<Outcome> {
    let filter = args.filter.as_deref();
    let k = g.kernel;
    let share = g.share(dir);
    if share.exists() {
        std::fs::remove_dir_all(&share)?;
    }
    std::fs::create_dir_all(&share)?;
    // Without BTF, packet filters refuse to start (by design): that guest runs the tests
    // made for it, every command narrowed by reason only.
    // Each line: the binary's name, its path and the guest's own filters (if any).
    let list: String = binaries
        .iter()
        .filter_map(|(name, path)| {
            let tests = g.tests_of(name)?;
            Some(format!("{name} {} {tests}\n", path.display()))
        })
        .collect();
    std::fs::write(share.join("binaries"), list)?;
    write_modprobe(k, &share)?;
    let mut job = format!(
        "#!/bin/bash\nSHARE={share}\nTESTS_DIR={tests}\nDROPTRACE_BIN={bin}\n\
         BINARY_TIMEOUT={BINARY_TIMEOUT_SECS}\nFILTER={filter}\n",
        share = share.display(),
        tests = ws.join("tests").display(),
        bin = args
            .droptrace_bin
            .as_ref()
            .and_then(|b| std::fs::canonicalize(b).ok())
            .unwrap_or_else(|| ws.join("target/release/droptrace"))
            .display(),
        filter = shell_quote(filter.unwrap_or("")),
    );
    // Windows the tests choose themselves (diagnose's --duration) are longer under TCG.
    job.push_str(&format!(
        "export DROPTRACE_TEST_TIME_SCALE={}\n",
        if accel == "kvm" { 1 } else { TCG_TIME_SCALE }
    ));
    if let Some(vmlinux) = &k.vmlinux {
        job.push_str(&format!(
            "export DROPTRACE_TEST_VMLINUX={}\n",
            vmlinux.display()
        ));
    }
    job.push_str(include_str!("job.sh"));
    write_executable(&share.join("job.sh"), &job)?;
    let console = share.join("console.log");
    let file = std::fs::File::create(&console)?;
    let started = Instant::now();
    let status = qemu(k, accel, g.cpus, Some((&share, g.btf)), GUEST_TIMEOUT)
        .stdout(file.try_clone()?)
        .stderr(file)
        .status()
        .context("starting qemu-system-x86_64")?;
    let wall = started.elapsed();
    let outcome = results::read(&g.name(), accel, &share, wall)?;
    if !outcome.finished {
        let mut text = String::new();
        std::fs::File::open(&console)?.read_to_string(&mut text)?;
        let tail: Vec<&str> = text.lines().rev().take(80).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "the guest did not finish the suite ({}; qemu {status}); the end of its console:\n{}\n{}",
            results::minutes(wall),
            tail.join("\n"),
            outcome.line()
        );
    }
    Ok(outcome)
}

/// The guest's modprobe wrapper, in its share: modules from the extracted package.
fn write_modprobe(k: &Kernel, share: &Path) -> Result<()> {
    let modprobe = format!(
        "#!/bin/sh\n# The kernel runs this from the initramfs, tools from the shared root.\n\
         if [ -e /vmtest-initramfs ]; then\n    exec /bin/chroot /root /sbin/modprobe -d {d} \"$@\"\nfi\n\
         exec /sbin/modprobe -d {d} \"$@\"\n",
        d = k.root.display()
    );
    write_executable(&share.join("modprobe"), &modprobe)
}

/// `--bench-xdp`: this xtask's `bench --xdp` in one guest with BTF per kernel, one at a
/// time (a benchmark wants the host's cores to itself as far as it can have them).
fn bench_xdp(
    kernels: &[Kernel],
    dir: &Path,
    ws: &Path,
    accel: &str,
    args: &VmtestArgs,
) -> Result<()> {
    let xtask = std::env::current_exe().context("this xtask's path")?;
    let bin = args
        .droptrace_bin
        .as_ref()
        .and_then(|b| std::fs::canonicalize(b).ok())
        .unwrap_or_else(|| ws.join("target/release/droptrace"));
    let mut failed = false;
    for k in kernels {
        let share = dir.join("run").join(format!("{}-bench-xdp", k.release));
        if share.exists() {
            std::fs::remove_dir_all(&share)?;
        }
        std::fs::create_dir_all(share.join("results"))?;
        write_modprobe(k, &share)?;
        let job = format!(
            "#!/bin/bash\nSHARE={share}\nWS={ws}\nXTASK={xtask}\nDROPTRACE_BIN={bin}\n{body}",
            share = share.display(),
            ws = ws.display(),
            xtask = xtask.display(),
            bin = bin.display(),
            body = include_str!("bench_job.sh"),
        );
        write_executable(&share.join("job.sh"), &job)?;
        let console = share.join("console.log");
        let file = std::fs::File::create(&console)?;
        let started = Instant::now();
        let status = qemu(k, accel, 1, Some((&share, true)), GUEST_TIMEOUT)
            .stdout(file.try_clone()?)
            .stderr(file)
            .status()
            .context("starting qemu-system-x86_64")?;
        let wall = results::minutes(started.elapsed());
        let read = |name: &str| std::fs::read_to_string(share.join("results").join(name));
        let rc = read("bench.rc").unwrap_or_default();
        if rc.trim() == "0" {
            println!(
                "vmtest: bench --xdp on {} ({accel}{}), guest wall time {wall}:\n{}",
                k.release,
                if accel == "tcg" {
                    ", emulated: absolute times are TCG's"
                } else {
                    ""
                },
                read("bench.out").unwrap_or_default()
            );
            continue;
        }
        failed = true;
        let err = read("bench.err").unwrap_or_default();
        let console = std::fs::read_to_string(&console).unwrap_or_default();
        let tail = |t: &str| {
            t.lines()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        };
        println!(
            "vmtest: bench --xdp on {} failed (exit {}; qemu {status}) in {wall}:\n{}\n---- console:\n{}",
            k.release,
            if rc.is_empty() { "none" } else { rc.trim() },
            tail(&err),
            tail(&console)
        );
    }
    if failed {
        bail!("vmtest --bench-xdp failed");
    }
    Ok(())
}

/// 'text' for the job script's shell.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
