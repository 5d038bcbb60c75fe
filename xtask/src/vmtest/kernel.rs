//! Debian's kernel packages for vmtest: the newest that apt offers, downloaded and
//! extracted under target/vmtest (never installed on the host), with the modules the
//! guest needs, an initramfs, and the DWARF vmlinux of the `-dbg` package.
use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context, Result};

use crate::{output, run};

/// A kernel line vmtest boots: its short name and the package names apt offers for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    /// Bookworm's own kernel: `linux-image-6.1.0-N-amd64` (tracepoint layout before 6.11).
    V6_1,
    /// Bookworm's newer kernel: `linux-image-6.12.N+deb12-amd64` (layout with rx_sk).
    V6_12,
}

impl Line {
    pub fn short(self) -> &'static str {
        match self {
            Line::V6_1 => "6.1",
            Line::V6_12 => "6.12",
        }
    }

    /// The kernel release in a package name, with the number apt's newest is chosen by.
    fn release_of(self, package: &str) -> Option<(u32, String)> {
        let release = package.strip_prefix("linux-image-")?;
        let n = match self {
            Line::V6_1 => release.strip_prefix("6.1.0-")?.strip_suffix("-amd64")?,
            Line::V6_12 => release
                .strip_prefix("6.12.")?
                .strip_suffix("+deb12-amd64")?,
        };
        Some((n.parse().ok()?, release.to_owned()))
    }

    /// Whether vmtest also fetches the `-dbg` package's vmlinux for source lines.
    pub fn wants_debug_info(self) -> bool {
        self == Line::V6_1
    }
}

/// One kernel ready to boot.
#[derive(Debug)]
pub struct Kernel {
    /// `6.1.0-57-amd64`, as `uname -r` says.
    pub release: String,
    /// The extracted package: `boot/vmlinuz-*` and `lib/modules/RELEASE`.
    pub root: PathBuf,
    pub vmlinuz: PathBuf,
    pub initrd: PathBuf,
    /// The DWARF vmlinux, for the lines that fetch it.
    pub vmlinux: Option<PathBuf>,
}

/// The modules the initramfs loads to reach the 9p shares (with their dependencies).
const BOOT_MODULES: &[&str] = &["virtio_pci", "9pnet_virtio", "9p"];

/// The newest release of a line that apt offers.
pub fn newest(line: Line) -> Result<String> {
    let pattern = match line {
        Line::V6_1 => r"^linux-image-6\.1\.0-[0-9]+-amd64$",
        Line::V6_12 => r"^linux-image-6\.12\.[0-9]+\+deb12-amd64$",
    };
    let list = output(Command::new("apt-cache").args(["search", "--names-only", pattern]))?;
    list.lines()
        .filter_map(|l| line.release_of(l.split_whitespace().next()?))
        .max()
        .map(|(_, release)| release)
        .with_context(|| {
            format!(
                "apt offers no linux-image for {} (pattern {pattern}); run `apt-get update`",
                line.short()
            )
        })
}

/// Downloads (once) and extracts (once) a kernel, and builds its initramfs; with
/// `debug_info`, the DWARF vmlinux of the lines that want it.
pub fn prepare(line: Line, dir: &Path, debug_info: bool) -> Result<Kernel> {
    let release = newest(line)?;
    let package = format!("linux-image-{release}");
    let root = dir.join("kernels").join(&release);
    if !root.join(".extracted").exists() {
        let deb = download(&package, &dir.join("debs"))?;
        if root.exists() {
            std::fs::remove_dir_all(&root)?;
        }
        std::fs::create_dir_all(&root)?;
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root))?;
        // The packages ship no modules.dep: the guest's modprobe needs it.
        run(Command::new("depmod").arg("-b").arg(&root).arg(&release))?;
        std::fs::write(root.join(".extracted"), "")?;
    }
    let vmlinuz = root.join("boot").join(format!("vmlinuz-{release}"));
    if !vmlinuz.exists() {
        bail!("{} has no {}", package, vmlinuz.display());
    }
    let initrd = initramfs(&root, &release, &dir.join("initramfs"))?;
    let vmlinux = if debug_info && line.wants_debug_info() {
        Some(debug_vmlinux(&release, dir)?)
    } else {
        None
    };
    Ok(Kernel {
        release,
        root,
        vmlinuz,
        initrd,
        vmlinux,
    })
}

/// `apt-get download` into `debs` unless a .deb of that package is already there.
fn download(package: &str, debs: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(debs)?;
    let find = || -> Result<Option<PathBuf>> {
        for entry in std::fs::read_dir(debs)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with(&format!("{package}_")) && name.ends_with(".deb") {
                return Ok(Some(path));
            }
        }
        Ok(None)
    };
    if let Some(deb) = find()? {
        return Ok(deb);
    }
    run(Command::new("apt-get")
        .args(["download", "-q", package])
        .current_dir(debs))?;
    find()?.with_context(|| format!("apt-get download {package} left no .deb"))
}

/// Of the `-dbg` package (858 MB, 5.6 GB unpacked), only `usr/lib/debug/boot/vmlinux-R`
/// and the netfilter modules' .ko (nf_tables' drop site is in a module), kept under
/// `dir/debug/R`; the .deb is removed once they are out.
fn debug_vmlinux(release: &str, dir: &Path) -> Result<PathBuf> {
    let out = dir.join("debug").join(release);
    let vmlinux = out.join(format!("usr/lib/debug/boot/vmlinux-{release}"));
    let done = out.join(".extracted");
    if done.exists() && vmlinux.exists() {
        return Ok(vmlinux);
    }
    let package = format!("linux-image-{release}-dbg");
    let deb = download(&package, &dir.join("debs"))?;
    std::fs::create_dir_all(&out)?;
    let members = [
        format!("./usr/lib/debug/boot/vmlinux-{release}"),
        format!("./usr/lib/debug/lib/modules/{release}/kernel/net/netfilter/*"),
    ];
    eprintln!(
        "xtask: extracting {} from {}",
        members.join(" and "),
        deb.display()
    );
    run(Command::new("sh")
        .arg("-c")
        .arg("dpkg-deb --fsys-tarfile \"$1\" | tar -x --wildcards -C \"$2\" \"$3\" \"$4\"")
        .arg("sh")
        .arg(&deb)
        .arg(&out)
        .args(&members))?;
    if !vmlinux.exists() {
        bail!("{} holds no {}", deb.display(), members[0]);
    }
    std::fs::write(&done, "")?;
    std::fs::remove_file(&deb)?;
    Ok(vmlinux)
}

/// Builds `initramfs/RELEASE.cpio` (when missing): busybox, the boot modules
/// (decompressed: busybox's insmod reads plain .ko), the list to load in order, /init.
fn initramfs(root: &Path, release: &str, dir: &Path) -> Result<PathBuf> {
    let cpio = dir.join(format!("{release}.cpio"));
    let init = include_str!("init.sh");
    let stamp = dir.join(format!("{release}.init"));
    if cpio.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(init) {
        return Ok(cpio);
    }
    let modules_dir = root.join("lib/modules").join(release);
    let dep = std::fs::read_to_string(modules_dir.join("modules.dep"))
        .with_context(|| format!("reading modules.dep of {release}"))?;
    let order = load_order(&dep, BOOT_MODULES);
    let tree = dir.join(format!("{release}.tree"));
    if tree.exists() {
        std::fs::remove_dir_all(&tree)?;
    }
    for d in ["bin", "dev", "proc", "sys", "modules"] {
        std::fs::create_dir_all(tree.join(d))?;
    }
    std::fs::copy("/bin/busybox", tree.join("bin/busybox"))
        .context("copying /bin/busybox (apt-get install busybox-static)")?;
    let applets = output(Command::new("/bin/busybox").arg("--list"))?;
    for applet in applets.lines().filter(|a| *a != "busybox") {
        std::os::unix::fs::symlink("busybox", tree.join("bin").join(applet))?;
    }
    let mut names = Vec::new();
    for module in &order {
        let src = modules_dir.join(module);
        let file = src.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let plain = file.trim_end_matches(".xz").trim_end_matches(".zst");
        let dst = tree.join("modules").join(plain);
        if file.ends_with(".xz") {
            let out = Command::new("xz").arg("-dc").arg(&src).output()?;
            if !out.status.success() {
                bail!("xz -dc {} failed", src.display());
            }
            std::fs::write(&dst, out.stdout)?;
        } else {
            std::fs::copy(&src, &dst)?;
        }
        names.push(plain.to_owned());
    }
    std::fs::write(tree.join("modules.list"), names.join("\n") + "\n")?;
    std::fs::write(tree.join("vmtest-initramfs"), "")?;
    write_executable(&tree.join("init"), init)?;
    run(Command::new("mknod")
        .arg(tree.join("dev/console"))
        .args(["c", "5", "1"]))?;
    run(Command::new("sh")
        .arg("-c")
        .arg("find . | cpio -o -H newc --quiet > \"$1\"")
        .arg("sh")
        .arg(&cpio)
        .current_dir(&tree))?;
    std::fs::write(&stamp, init)?;
    Ok(cpio)
}

/// The modules to insmod, dependencies first, for `wanted` (names without `.ko`); those
/// built into the kernel are not in modules.dep and are left out.
fn load_order(modules_dep: &str, wanted: &[&str]) -> Vec<String> {
    let deps: Vec<(&str, Vec<&str>)> = modules_dep
        .lines()
        .filter_map(|l| {
            let (module, rest) = l.split_once(':')?;
            Some((module, rest.split_whitespace().collect()))
        })
        .collect();
    let find = |name: &str| {
        deps.iter().find(|(path, _)| {
            let file = path.rsplit('/').next().unwrap_or(path);
            file.split(".ko").next() == Some(name)
        })
    };
    fn visit<'a>(
        path: &'a str,
        deps: &'a [(&'a str, Vec<&'a str>)],
        seen: &mut BTreeSet<&'a str>,
        order: &mut Vec<String>,
    ) {
        if !seen.insert(path) {
            return;
        }
        if let Some((_, needs)) = deps.iter().find(|(p, _)| *p == path) {
            for need in needs {
                visit(need, deps, seen, order);
            }
        }
        order.push(path.to_owned());
    }
    let mut seen = BTreeSet::new();
    let mut order = Vec::new();
    for name in wanted {
        if let Some((path, _)) = find(name) {
            visit(path, &deps, &mut seen, &mut order);
        }
    }
    order
}

pub fn write_executable(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_of_package_names() {
        assert_eq!(
            Line::V6_1.release_of("linux-image-6.1.0-57-amd64"),
            Some((57, "6.1.0-57-amd64".into()))
        );
        assert_eq!(
            Line::V6_1.release_of("linux-image-6.1.0-57-amd64-dbg"),
            None
        );
        assert_eq!(Line::V6_1.release_of("linux-image-6.1.0-57-rt-amd64"), None);
        assert_eq!(
            Line::V6_12.release_of("linux-image-6.12.117+deb12-amd64"),
            Some((117, "6.12.117+deb12-amd64".into()))
        );
        assert_eq!(Line::V6_12.release_of("linux-image-6.1.0-57-amd64"), None);
    }

    /// Lines of 6.1.0-57's modules.dep (written by `depmod -b`).
    #[test]
    fn boot_modules_load_dependencies_first() {
        let dep = "kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko kernel/fs/fscache/fscache.ko kernel/fs/netfs/netfs.ko\n\
                   kernel/fs/fscache/fscache.ko: kernel/fs/netfs/netfs.ko\n\
                   kernel/fs/netfs/netfs.ko:\n\
                   kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko\n\
                   kernel/drivers/virtio/virtio_ring.ko:\n\
                   kernel/net/9p/9pnet.ko:\n\
                   kernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko\n";
        assert_eq!(
            load_order(dep, BOOT_MODULES),
            [
                "kernel/net/9p/9pnet.ko",
                "kernel/drivers/virtio/virtio_ring.ko",
                "kernel/drivers/virtio/virtio.ko",
                "kernel/net/9p/9pnet_virtio.ko",
                "kernel/fs/netfs/netfs.ko",
                "kernel/fs/fscache/fscache.ko",
                "kernel/fs/9p/9p.ko",
            ]
        );
    }
}
