//! `cargo xtask ...`: the tasks around droptrace that are not droptrace itself.
mod bench;
mod bench_diagnose;
mod bench_serve;
mod bench_view;
mod bench_xdp;
mod deb;
mod disk;
mod docs;
mod image;
mod manifests;
mod setup;
mod vmtest;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "droptrace build, test and benchmark tasks"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what building and testing need: Debian packages, the pinned nightly, bpf-linker.
    Setup,
    /// Rebuild the kernel program with the pinned toolchain into droptrace/ebpf/.
    BuildEbpf {
        /// Fail if the fresh build differs from the checked-in object instead of replacing it.
        #[arg(long)]
        check: bool,
    },
    /// The whole suite, as CI runs it: setup, object check, fmt, man pages, the Kubernetes
    /// manifests, clippy, unit
    /// tests, the .deb, the root integration tests in network namespaces, and the same
    /// tests in qemu guests with Debian's 6.1 and 6.12 kernels (vmtest).
    Test,
    /// Throughput of a UDP drop flood with droptrace, with bpftrace and with nothing attached.
    Bench(bench::BenchArgs),
    /// diagnose's wall time on a host with many network namespaces: its default cap on those
    /// sampled before the window, and all of them.
    BenchDiagnose(bench_diagnose::BenchDiagnoseArgs),
    /// The live view under a drop flood (in tmux): key-to-screen latency, memory, CPU.
    BenchView(bench_view::BenchViewArgs),
    /// droptrace serve with 10,000 series under a drop flood: scrape latency, CPU, memory.
    BenchServe(bench_serve::BenchServeArgs),
    /// Regenerate the man pages and shell completions in droptrace/doc/ from cli.rs.
    Man {
        /// Fail if they differ from what cli.rs gives instead of rewriting them.
        #[arg(long)]
        check: bool,
    },
    /// Build target/debian/droptrace_<version>_<arch>.deb from the release binary.
    Deb(deb::DebArgs),
    /// Build target/image/droptrace-<version>-oci.tar, an OCI image archive of the .deb on a
    /// minimal Debian root, without a container daemon or a registry.
    Image(image::ImageArgs),
    /// Render deploy/kubernetes with kustomize, validate it offline against the Kubernetes
    /// and prometheus-operator API schemas and lint it with checkov (regenerating its
    /// PrometheusRule from deploy/prometheus/droptrace-alerts.yml).
    Manifests(manifests::ManifestsArgs),
    /// The root integration suite in qemu guests with Debian's 6.1 and 6.12 kernels
    /// (downloaded with apt-get into target/vmtest, never installed).
    Vmtest(vmtest::VmtestArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Setup => setup::setup(),
        Task::BuildEbpf { check } => build_ebpf(check),
        Task::Test => test(),
        Task::Bench(args) => bench::bench(&args),
        Task::BenchDiagnose(args) => bench_diagnose::bench_diagnose(&args),
        Task::BenchView(args) => bench_view::bench_view(&args),
        Task::BenchServe(args) => bench_serve::bench_serve(&args),
        Task::Man { check } => docs::man(check),
        Task::Deb(args) => deb::deb(&args),
        Task::Image(args) => image::image(&args),
        Task::Manifests(args) => manifests::manifests(&args),
        Task::Vmtest(args) => vmtest::vmtest(&args),
    };
    if let Err(e) = result {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

pub fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: $ {cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Objects built from droptrace-ebpf and checked in: (binary name, path in the repository).
const OBJECTS: &[(&str, &str)] = &[
    ("droptrace", "droptrace/ebpf/droptrace.bpf.o"),
    // A tc program that drops SYNs, for the diagnose integration tests.
    ("drop_syn", "tests/fixtures/drop_syn.bpf.o"),
    // An XDP program that drops UDP to port 6001, for the same tests.
    ("drop_udp_xdp", "tests/fixtures/drop_udp_xdp.bpf.o"),
    // An XDP program that aborts UDP to port 6002 and fails to redirect UDP to 6003, for
    // the XDP exception tests.
    (
        "xdp_exception_udp",
        "tests/fixtures/xdp_exception_udp.bpf.o",
    ),
];

fn build_ebpf(check: bool) -> Result<()> {
    let ws = workspace();
    let crate_dir = ws.join("droptrace-ebpf");
    let toolchain = setup::ebpf_toolchain()?;
    let toolchain = toolchain.as_str();
    let sysroot =
        output(Command::new("rustup").args(["run", toolchain, "rustc", "--print", "sysroot"]))?;
    let cargo_home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo")
        });
    // Absolute paths must not reach the object, or it differs between machines.
    let rustflags = [
        "-C debuginfo=0".to_owned(),
        format!("--remap-path-prefix={}=/droptrace", ws.display()),
        format!("--remap-path-prefix={}=/cargo", cargo_home.display()),
        format!("--remap-path-prefix={sysroot}=/rustc"),
    ]
    .join(" ");
    run(Command::new("rustup")
        .args([
            "run",
            toolchain,
            "cargo",
            "build",
            "--release",
            "--locked",
            "--target",
            "bpfel-unknown-none",
            "-Z",
            "build-std=core",
        ])
        .current_dir(&crate_dir)
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags.replace(' ', "\x1f"))
        .env_remove("RUSTFLAGS")
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO"))?;
    for (bin, checked_in) in OBJECTS {
        let built = crate_dir
            .join("target/bpfel-unknown-none/release")
            .join(bin);
        let fresh =
            std::fs::read(&built).with_context(|| format!("reading {}", built.display()))?;
        let target = ws.join(checked_in);
        if check {
            let old =
                std::fs::read(&target).with_context(|| format!("reading {}", target.display()))?;
            if old != fresh {
                bail!(
                    "{checked_in} differs from a fresh build of droptrace-ebpf ({} vs {} bytes): \
                     run `cargo xtask build-ebpf` and commit the object",
                    old.len(),
                    fresh.len()
                );
            }
            eprintln!(
                "xtask: {checked_in} matches a fresh build ({} bytes)",
                fresh.len()
            );
        } else {
            if let Some(dir) = target.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&target, &fresh)
                .with_context(|| format!("writing {}", target.display()))?;
            eprintln!("xtask: wrote {checked_in} ({} bytes)", fresh.len());
        }
    }
    Ok(())
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn test() -> Result<()> {
    // One build of each profile, never rebuilt piecemeal: incremental caches would only
    // take disk (several GiB), which a CI machine may be short of.
    if std::env::var_os("CARGO_INCREMENTAL").is_none() {
        std::env::set_var("CARGO_INCREMENTAL", "0");
    }
    let ws = workspace();
    disk::report(&ws, disk::SUITE_NEEDS_GIB);
    setup::setup()?;
    let tracked_before = tracked_changes(&ws);
    build_ebpf(true)?;
    run(cargo().args(["fmt", "--all", "--check"]).current_dir(&ws))?;
    docs::man(true)?;
    // The Kubernetes manifests: rendered, validated against the API schemas, linted.
    manifests::check(true)?;
    // The kernel crate is outside the workspace; stable rustfmt checks it from here.
    run(Command::new("rustfmt")
        .args(["--check", "--edition", "2021"])
        .args([
            "droptrace-ebpf/src/main.rs",
            "droptrace-ebpf/src/bin/drop_syn.rs",
            "droptrace-ebpf/src/bin/drop_udp_xdp.rs",
            "droptrace-ebpf/src/bin/xdp_exception_udp.rs",
            "droptrace/fuzz/fuzz_targets/read_recording.rs",
        ])
        .current_dir(&ws))?;
    run(cargo()
        .args([
            "clippy",
            "--locked",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ])
        .current_dir(&ws))?;
    run(cargo()
        .args([
            "test",
            "--locked",
            "--workspace",
            "--exclude",
            "droptrace-tests",
        ])
        .current_dir(&ws))?;
    // The root tests' runner and helpers have unit tests that need no root.
    run(cargo()
        .args(["test", "--locked", "-p", "droptrace-tests", "--lib"])
        .current_dir(&ws))?;
    run(cargo()
        .args(["build", "--locked", "--release", "-p", "droptrace"])
        .current_dir(&ws))?;
    // The .deb of that binary: lintian, a scratch-root install, the installed binary run.
    deb::build_and_check()?;
    // The OCI image of that package, which a root test runs in containerd as the
    // DaemonSet would.
    let image = image::build(false)?;
    eprintln!("xtask: image {} {}", image.reference, image.digest);
    setup::mount_tracefs()?;
    // One at a time: the tests share the kernel tracepoint and create namespaces.
    run(cargo()
        .args([
            "test",
            "--locked",
            "--release",
            "-p",
            "droptrace-tests",
            // Every failing test binary in one run, not only the first.
            "--no-fail-fast",
            "--",
            "--test-threads=1",
        ])
        .env("DROPTRACE_BIN", ws.join("target/release/droptrace"))
        .env("DROPTRACE_IMAGE", &image.archive)
        .env("DROPTRACE_IMAGE_REF", &image.reference)
        .current_dir(&ws))?;
    // The debug builds (lints, unit tests, the runner's own tests) are done with: their
    // disk goes to the guests' images. Only on CI (`CI` set, as .ci/run does): a developer
    // keeps theirs.
    if std::env::var_os("CI").is_some() {
        disk::remove_build(&ws.join("target/debug"))?;
    }
    // The same suite inside qemu guests: Debian's 6.1 and 6.12, with BTF and without.
    vmtest::vmtest(&vmtest::VmtestArgs::all())?;
    fuzz(FUZZ_SECONDS)?;
    let tracked_after = tracked_changes(&ws);
    if tracked_after != tracked_before {
        bail!(
            "the test suite changed tracked files (a stale lock file, a regenerated object or \
             page?): git status before:\n{}\nafter:\n{}",
            tracked_before.as_deref().unwrap_or("(no git)"),
            tracked_after.as_deref().unwrap_or("(no git)")
        );
    }
    eprintln!("xtask: all tests passed");
    Ok(())
}

/// `git status` of the tracked files (untracked ones are build output), to check that the
/// suite leaves a checkout as it found it; `None` outside a git checkout.
fn tracked_changes(ws: &Path) -> Option<String> {
    let out = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .current_dir(ws)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// How long CI fuzzes the recording reader.
const FUZZ_SECONDS: u32 = 60;
const CARGO_FUZZ: &str = "0.13.2";

/// Fuzzes the recording reader (`droptrace/fuzz`, target `read_recording`) for a bounded
/// time with the pinned nightly; fails on any finding, and says how many inputs ran.
fn fuzz(seconds: u32) -> Result<()> {
    let toolchain = setup::ebpf_toolchain()?;
    let has_fuzz = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(CARGO_FUZZ));
    if !has_fuzz {
        run(cargo().args(["install", &format!("cargo-fuzz@{CARGO_FUZZ}"), "--locked"]))?;
    }
    let dir = workspace().join("droptrace");
    // cargo fuzz has no --locked: check the fuzz crate's lock file is current first, so the
    // build never rewrites it.
    run(Command::new("rustup")
        .args([
            "run",
            &toolchain,
            "cargo",
            "metadata",
            "--locked",
            "--format-version",
            "1",
        ])
        .current_dir(dir.join("fuzz"))
        .stdout(std::process::Stdio::null())
        .env_remove("RUSTFLAGS")
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO"))
    .context(
        "droptrace/fuzz/Cargo.lock is stale: run `cargo metadata` in droptrace/fuzz and commit it",
    )?;
    let corpus = dir.join("fuzz/corpus/read_recording");
    std::fs::create_dir_all(&corpus).context("creating the fuzz corpus directory")?;
    let out = Command::new("rustup")
        .args(["run", &toolchain, "cargo", "fuzz", "run", "read_recording"])
        .arg(&corpus)
        .arg(dir.join("fuzz/seeds"))
        .args([
            "--",
            &format!("-max_total_time={seconds}"),
            "-rss_limit_mb=1024",
            "-print_final_stats=1",
        ])
        .current_dir(&dir)
        .env_remove("RUSTFLAGS")
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO")
        .output()
        .context("running cargo fuzz")?;
    let log = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let tail: Vec<&str> = log.lines().rev().take(60).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "fuzzing the recording reader found a problem:\n{}",
            tail.join("\n")
        );
    }
    let runs = log
        .lines()
        .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
        .map_or("?", str::trim)
        .to_owned();
    eprintln!("xtask: fuzzed the recording reader for {seconds} s: {runs} inputs, no finding");
    Ok(())
}
