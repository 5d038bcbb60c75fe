//! `cargo xtask image`: an OCI image archive of droptrace, built without a container
//! daemon or a registry, that `ctr image import` (or `skopeo`, `podman load`) takes.
//!
//! Two layers: a minimal Debian root made by `mmdebstrap` from the archive the machine's
//! apt uses, with the tools `diagnose` runs (iproute2, nftables, iptables, bpftool), cached
//! under target/image by its package list and date; and the files of droptrace's .deb. Every
//! time in it is SOURCE_DATE_EPOCH (the changelog's newest entry unless set), so the same
//! inputs give the same digest. `deploy/Containerfile` writes the same image for people
//! who build with a daemon.
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{bail, Context, Result};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::{deb, output, run, workspace};

/// The Debian release the root comes from, and what `diagnose` runs inside it.
const SUITE: &str = "bookworm";
const PACKAGES: &[&str] = &["iproute2", "nftables", "iptables", "bpftool"];
const MIRRORS: &[&str] = &[
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
];
/// Documentation the image never shows (copyright files stay).
const EXCLUDED: &[&str] = &[
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
];
pub const OUT_DIR: &str = "target/image";
/// The name the DaemonSet's `image:` resolves to.
pub const IMAGE_NAME: &str = "docker.io/library/droptrace";
const SOURCE: &str = "https://github.com/droptrace/droptrace";

#[derive(clap::Args)]
pub struct ImageArgs {
    /// Rebuild the Debian root even if target/image holds one.
    #[arg(long)]
    fresh_base: bool,
}

/// What was built.
pub struct Built {
    pub archive: PathBuf,
    pub reference: String,
    pub digest: String,
}

pub fn image(args: &ImageArgs) -> Result<()> {
    build(args.fresh_base).map(|_| ())
}

pub fn build(fresh_base: bool) -> Result<Built> {
    let started = Instant::now();
    let ws = workspace();
    let out = ws.join(OUT_DIR);
    fs::create_dir_all(&out)?;
    let epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => v.parse().context("SOURCE_DATE_EPOCH is not a number")?,
        Err(_) => deb::source_date_epoch()?,
    };
    let version = env!("CARGO_PKG_VERSION");
    let base = base_root(&out, epoch, fresh_base)?;
    let deb = deb::build()?;

    let work = out.join("layout");
    if work.exists() {
        fs::remove_dir_all(&work)?;
    }
    let blobs = work.join("blobs/sha256");
    fs::create_dir_all(&blobs)?;

    // Layer 2: the package's files where dpkg would put them on the merged-/usr root: a
    // `lib/` directory in a layer would hide the root's /lib symlink (and with it the
    // dynamic loader), so what the package has in /lib goes to /usr/lib.
    let unpacked = out.join("droptrace-files");
    if unpacked.exists() {
        fs::remove_dir_all(&unpacked)?;
    }
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked))?;
    if unpacked.join("lib").exists() {
        fs::create_dir_all(unpacked.join("usr/lib"))?;
        run(Command::new("cp")
            .args(["-a", "--no-target-directory"])
            .arg(unpacked.join("lib"))
            .arg(unpacked.join("usr/lib")))?;
        fs::remove_dir_all(unpacked.join("lib"))?;
    }
    let files = out.join("droptrace-files.tar");
    reproducible_tar(&files, &unpacked, &["usr"], epoch)?;
    fs::remove_dir_all(&unpacked)?;

    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for (tar, what) in [(&base, "Debian root"), (&files, "droptrace")] {
        diff_ids.push(format!("sha256:{}", sha256(tar)?));
        let gz = out.join("layer.tar.gz");
        // -n: no name or time in the gzip header, so the bytes depend on the tar alone.
        let status = Command::new("sh")
            .arg("-c")
            .arg("gzip -n -6 -c \"$0\" > \"$1\"")
            .arg(tar)
            .arg(&gz)
            .status()?;
        if !status.success() {
            bail!("gzip of the {what} layer failed");
        }
        let (digest, size) = store(&blobs, &fs::read(&gz)?)?;
        fs::remove_file(&gz)?;
        layers.push(json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": digest,
            "size": size,
            "annotations": {"org.opencontainers.image.title": what},
        }));
    }
    fs::remove_file(&files)?;

    let created = rfc3339(epoch);
    let revision = output(
        Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(&ws),
    )
    .unwrap_or_default();
    let labels = json!({
        "org.opencontainers.image.title": "droptrace",
        "org.opencontainers.image.description": "Where and why Linux drops packets, with eBPF",
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.source": SOURCE,
        "org.opencontainers.image.revision": revision.trim(),
        "org.opencontainers.image.created": created,
        "org.opencontainers.image.licenses": "MIT OR GPL-2.0",
        "org.opencontainers.image.base.name": format!("debian:{SUITE} (mmdebstrap, essential + {})", PACKAGES.join(", ")),
    });
    let config = json!({
        "created": created,
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": ["/usr/bin/droptrace"],
            "Cmd": ["serve", "--host-root=/host"],
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Labels": labels,
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [
            {"created": created, "created_by": format!("mmdebstrap --variant=essential --include={} {SUITE}", PACKAGES.join(","))},
            {"created": created, "created_by": format!("dpkg-deb --fsys-tarfile droptrace_{version}_amd64.deb")},
        ],
    });
    let (config_digest, config_size) = store(&blobs, &serde_json::to_vec(&config)?)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_size,
        },
        "layers": layers,
        "annotations": labels,
    });
    let (digest, manifest_size) = store(&blobs, &serde_json::to_vec(&manifest)?)?;
    let reference = format!("{IMAGE_NAME}:{version}");
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest,
            "size": manifest_size,
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {
                "org.opencontainers.image.ref.name": version,
                "io.containerd.image.name": reference,
            },
        }],
    });
    fs::write(work.join("index.json"), serde_json::to_vec(&index)?)?;
    fs::write(
        work.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;

    let archive = out.join(format!("droptrace-{version}-oci.tar"));
    reproducible_tar(
        &archive,
        &work,
        &["oci-layout", "index.json", "blobs"],
        epoch,
    )?;
    fs::remove_dir_all(&work)?;
    let size = fs::metadata(&archive)?.len();
    eprintln!(
        "xtask: built {} in {:.1} s: {reference}, {:.1} MiB, manifest {digest}",
        archive.strip_prefix(&ws).unwrap_or(&archive).display(),
        started.elapsed().as_secs_f64(),
        size as f64 / 1_048_576.0
    );
    Ok(Built {
        archive,
        reference,
        digest,
    })
}

/// `names` of `dir` in a tar that depends on their contents alone: names sorted, one
/// time, no owners' names, no access or change times.
fn reproducible_tar(tar: &Path, dir: &Path, names: &[&str], epoch: u64) -> Result<()> {
    run(Command::new("tar")
        .args([
            "--sort=name",
            &format!("--mtime=@{epoch}"),
            "--clamp-mtime",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "--format=posix",
            "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
            "-cf",
        ])
        .arg(tar)
        .arg("-C")
        .arg(dir)
        .args(names))
}

/// The Debian root as a tar, from the cache when the same packages and date made one.
fn base_root(out: &Path, epoch: u64, fresh: bool) -> Result<PathBuf> {
    let key =
        sha256_bytes(format!("{SUITE} {PACKAGES:?} {MIRRORS:?} {EXCLUDED:?} {epoch}").as_bytes());
    let base = out.join(format!("debian-{SUITE}-{}.tar", &key[..16]));
    if base.exists() && !fresh {
        eprintln!("xtask: the Debian root is cached: {}", base.display());
        return Ok(base);
    }
    let partial = base.with_extension("partial");
    let mut cmd = Command::new("mmdebstrap");
    cmd.args(["--quiet", "--variant=essential"])
        .arg(format!("--include={}", PACKAGES.join(",")))
        .args(EXCLUDED.iter().map(|e| format!("--dpkgopt={e}")))
        .args(["--format=tar", SUITE])
        .arg(&partial)
        .args(MIRRORS)
        .env("SOURCE_DATE_EPOCH", epoch.to_string());
    run(&mut cmd)?;
    fs::rename(&partial, &base)?;
    Ok(base)
}

/// Writes `bytes` as a blob; returns its digest and size.
fn store(blobs: &Path, bytes: &[u8]) -> Result<(String, u64)> {
    let hex = sha256_bytes(bytes);
    fs::write(blobs.join(&hex), bytes)?;
    Ok((format!("sha256:{hex}"), bytes.len() as u64))
}

fn sha256(path: &Path) -> Result<String> {
    let mut hasher = Sha256::new();
    let mut file = fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hex(&hasher.finalize()))
}

fn sha256_bytes(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `2025-12-06T05:46:40Z`
fn rfc3339(epoch: u64) -> String {
    let date = output(Command::new("date").args([
        "-u",
        "-d",
        &format!("@{epoch}"),
        "+%Y-%m-%dT%H:%M:%SZ",
    ]))
    .unwrap_or_default();
    date.trim().to_owned()
}
