//! Disk space for the suite: what is free where it builds, and giving back the builds that
//! are done with. A full disk fails the suite midway with ENOSPC from whatever wrote last;
//! saying the free space at the start makes that failure readable.
use std::path::Path;

use anyhow::{Context, Result};

/// About what `cargo xtask test` writes on a fresh clone at its peak (its builds, the
/// image, the guests' disks), measured on this repository's CI (see docs/development.md).
pub const SUITE_NEEDS_GIB: u64 = 12;

/// Says how much space is free on the file system of `dir`, and warns when it is less
/// than `needs_gib`.
pub fn report(dir: &Path, needs_gib: u64) {
    let out = std::process::Command::new("df")
        .args(["-Pk", "--"])
        .arg(dir)
        .output();
    let free_kib = out
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| available_kib(&String::from_utf8_lossy(&o.stdout)));
    match free_kib {
        Some(kib) => {
            let gib = kib as f64 / (1024.0 * 1024.0);
            eprintln!("xtask: {gib:.1} GiB free under {}", dir.display());
            if gib < needs_gib as f64 {
                eprintln!(
                    "xtask: warning: the suite writes about {needs_gib} GiB at its peak; with \
                     {gib:.1} GiB free it may stop with 'No space left on device'"
                );
            }
        }
        None => eprintln!("xtask: the free space under {} is unknown", dir.display()),
    }
}

/// The `Available` column (KiB) of `df -Pk`'s one line of figures.
fn available_kib(df: &str) -> Option<u64> {
    df.lines().nth(1)?.split_whitespace().nth(3)?.parse().ok()
}

/// Removes a profile's build products but the binaries at its top (the running xtask).
pub fn remove_build(profile_dir: &Path) -> Result<()> {
    for part in ["deps", "incremental", "build", "examples", ".fingerprint"] {
        let dir = profile_dir.join(part);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
    }
    eprintln!("xtask: removed the builds under {}", profile_dir.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_available_column_of_df() {
        // `df -Pk /work` on the development machine.
        let df = "Filesystem     1024-blocks     Used Available Capacity Mounted on\n\
                  /dev/vda         263112772 29917024  66045232      32% /\n";
        assert_eq!(available_kib(df), Some(66045232));
        assert_eq!(available_kib("Filesystem 1024-blocks\n"), None);
        assert_eq!(available_kib(""), None);
    }
}
