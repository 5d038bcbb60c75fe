//! Source lines of drop sites, from a kernel image with debug info (vmlinux with DWARF).
//!
//! A drop location arrives as `function+offset` (from kallsyms), which does not depend on
//! KASLR or on the machine: the same function in the vmlinux plus the same offset is the
//! return address of the call to kfree_skb, and one byte before it is the call itself.
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use object::{Object, ObjectSymbol};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum DebugInfoError {
    #[error("{}: {source}", path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not an ELF image with symbols ({reason})", path.display())]
    Format { path: PathBuf, reason: String },
    #[error("{}: has no DWARF debug info (install the kernel's -dbg/-debuginfo package)", path.display())]
    NoDwarf { path: PathBuf },
}

/// A vmlinux with debug info: function symbols and line tables.
pub struct SourceLines {
    path: PathBuf,
    functions: HashMap<String, u64>,
    lines: addr2line::Loader,
}

impl std::fmt::Debug for SourceLines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceLines")
            .field("path", &self.path)
            .field("functions", &self.functions.len())
            .finish_non_exhaustive()
    }
}

/// Where distributions put the running kernel's image with debug info.
pub fn candidates(release: &str) -> Vec<PathBuf> {
    [
        format!("/usr/lib/debug/boot/vmlinux-{release}"),
        format!("/usr/lib/debug/lib/modules/{release}/vmlinux"),
        format!("/usr/lib/debug/vmlinux-{release}"),
        format!("/boot/vmlinux-{release}"),
        format!("/lib/modules/{release}/build/vmlinux"),
    ]
    .into_iter()
    .map(PathBuf::from)
    .collect()
}

impl SourceLines {
    pub fn open(path: &Path) -> Result<SourceLines, DebugInfoError> {
        let file = std::fs::File::open(path).map_err(|source| DebugInfoError::Open {
            path: path.into(),
            source,
        })?;
        // SAFETY: the map is read-only; a file changed under us gives wrong lines, not UB
        // in our code (object and gimli check every offset they read).
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|source| DebugInfoError::Open {
            path: path.into(),
            source,
        })?;
        let format = |reason: String| DebugInfoError::Format {
            path: path.into(),
            reason,
        };
        let elf = object::File::parse(&*map).map_err(|e| format(e.to_string()))?;
        if elf.section_by_name(".debug_line").is_none() {
            return Err(DebugInfoError::NoDwarf { path: path.into() });
        }
        let functions: HashMap<String, u64> = elf
            .symbols()
            .filter(|s| s.kind() == object::SymbolKind::Text && s.address() != 0)
            .filter_map(|s| Some((s.name().ok()?.to_owned(), s.address())))
            .collect();
        if functions.is_empty() {
            return Err(format("no function symbols".into()));
        }
        let lines = addr2line::Loader::new(path).map_err(|e| format(e.to_string()))?;
        Ok(SourceLines {
            path: path.into(),
            functions,
            lines,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `file:line` of the call that dropped at `function+offset`; with the functions it was
    /// inlined into when the compiler inlined the drop site (`a.c:13 (drop_it, inlined
    /// into nft_do_chain at a.c:20)`).
    pub fn line(&self, function: &str, offset: u64) -> Option<String> {
        self.line_checked(function, offset, false)
    }

    /// `line`, for a module (a relocatable .ko, whose sections all start at 0): only
    /// when the outermost frame found is `function` itself, so that code of another
    /// section at the same offset is never named.
    pub fn module_line(&self, function: &str, offset: u64) -> Option<String> {
        self.line_checked(function, offset, true)
    }

    fn line_checked(&self, function: &str, offset: u64, same_function: bool) -> Option<String> {
        // A return address is never a function's first byte.
        if offset == 0 {
            return None;
        }
        let start = *self.functions.get(function)?;
        let call = start.checked_add(offset)?.checked_sub(1)?;
        let mut frames = self.lines.find_frames(call).ok()?;
        let mut found: Vec<(Option<String>, String)> = Vec::new();
        while let Ok(Some(frame)) = frames.next() {
            let Some(loc) = frame.location else { continue };
            let (Some(file), Some(line)) = (loc.file, loc.line) else {
                continue;
            };
            let name = frame
                .function
                .and_then(|f| f.raw_name().ok().map(|n| n.into_owned()));
            found.push((name, format!("{file}:{line}")));
            if found.len() == 8 {
                break;
            }
        }
        if same_function {
            let outermost = found.last().and_then(|(name, _)| name.as_deref());
            if outermost != Some(function) {
                return None;
            }
        }
        let ((inner_fn, inner), outer) = found.split_first()?;
        let mut out = inner.clone();
        if let Some((outer_fn, outer_at)) = outer.last() {
            out.push_str(&format!(
                " ({}, inlined into {} at {outer_at})",
                inner_fn.as_deref().unwrap_or("?"),
                outer_fn.as_deref().unwrap_or(function)
            ));
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> SourceLines {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/debuginfo/tiny-vmlinux");
        SourceLines::open(&path).unwrap()
    }

    #[test]
    fn drop_sites_map_to_their_source_lines() {
        let lines = fixture();
        assert_eq!(
            lines.line("tcp_v4_rcv", 0x16).as_deref(),
            Some("/src/tiny-kernel.c:28")
        );
        assert_eq!(
            lines.line("nft_do_chain", 0x1c).as_deref(),
            Some("/src/tiny-kernel.c:13 (drop_it, inlined into nft_do_chain at /src/tiny-kernel.c:20)")
        );
        assert_eq!(lines.line("no_such_function", 4), None);
        assert_eq!(
            lines.line("tcp_v4_rcv", 0),
            None,
            "offset 0 has no call before it"
        );
    }

    #[test]
    fn files_without_debug_info_or_not_elf_are_errors() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        let err = SourceLines::open(&dir.join("kallsyms.6.18")).unwrap_err();
        assert!(matches!(err, DebugInfoError::Format { .. }), "{err}");
        let err = SourceLines::open(&dir.join("missing-vmlinux")).unwrap_err();
        assert!(err.to_string().contains("missing-vmlinux"), "{err}");
        let stripped =
            std::env::temp_dir().join(format!("droptrace-stripped-{}", std::process::id()));
        let status = std::process::Command::new("strip")
            .arg("--strip-debug")
            .arg("-o")
            .arg(&stripped)
            .arg(dir.join("debuginfo/tiny-vmlinux"))
            .status();
        if status.is_ok_and(|s| s.success()) {
            let err = SourceLines::open(&stripped).unwrap_err();
            assert!(matches!(err, DebugInfoError::NoDwarf { .. }), "{err}");
            let _ = std::fs::remove_file(&stripped);
        }
    }

    #[test]
    fn candidates_name_the_usual_places() {
        let c = candidates("6.18.0-1-amd64");
        assert!(c.contains(&PathBuf::from("/usr/lib/debug/boot/vmlinux-6.18.0-1-amd64")));
    }
}
