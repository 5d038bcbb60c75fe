//! Source lines of drop sites, the resolve stage's last step: the kernel's debug info
//! (a vmlinux with DWARF, and its modules' .ko files beside it) opened on a thread of its
//! own, since indexing it takes seconds; then every drop site's `file:line` put in the
//! `Names` the sinks read, a few each tick and the rest at the end. No sink opens a file.
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::mpsc::{self, Receiver, TryRecvError},
};

use crate::{
    kernel::debuginfo::{self, SourceLines},
    pipeline::names::Names,
};

/// Drop sites given their line in one tick at most: a port scan's thousands of sites do
/// not hold up the loop (the rest follow on the next ticks).
const LINES_PER_TICK: usize = 256;

/// The vmlinux to take source lines from: `given` (`--vmlinux`), or the first of the usual
/// debug-info places that exists.
pub fn debuginfo_path(given: Option<&Path>, release: &str) -> Result<PathBuf, String> {
    if let Some(path) = given {
        if !path.exists() {
            return Err(format!("{}: no such file", path.display()));
        }
        return Ok(path.to_path_buf());
    }
    let candidates = debuginfo::candidates(release);
    candidates
        .iter()
        .find(|p| p.exists())
        .cloned()
        .ok_or_else(|| {
            format!(
                "no kernel debug info (give --vmlinux PATH, or install it at {})",
                candidates[0].display()
            )
        })
}

/// Puts drop sites' source lines in the names, once the debug info is open.
pub struct LineResolver {
    state: State,
    /// Whether the end of the run waits for the debug info still being opened (the JSON
    /// summary, written once, does; the live view does not).
    wait_at_end: bool,
}

enum State {
    Opening(Receiver<Option<KernelLines>>),
    Ready(Box<KernelLines>),
    Gone,
}

impl LineResolver {
    /// Opens the vmlinux at `path` on a thread of its own (indexing a vmlinux with DWARF
    /// takes seconds, far longer under emulation).
    pub fn open(path: PathBuf, release: String, wait_at_end: bool) -> LineResolver {
        let (tx, rx) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("debuginfo".into())
            .spawn(move || {
                let lines = SourceLines::open(&path)
                    .ok()
                    .map(|l| KernelLines::new(l, &release));
                let _ = tx.send(lines);
            });
        // Without a thread there are no source lines: the receiver then reports a hang-up.
        drop(spawned);
        LineResolver {
            state: State::Opening(rx),
            wait_at_end,
        }
    }

    /// A resolver over debug info already open.
    pub fn ready(lines: KernelLines) -> LineResolver {
        LineResolver {
            state: State::Ready(Box::new(lines)),
            wait_at_end: false,
        }
    }

    /// A tick: takes the debug info if it has come, names a few drop sites more.
    pub fn tick(&mut self, names: &mut Names) {
        self.poll(false);
        self.resolve(names, LINES_PER_TICK);
    }

    /// The end of the run: every drop site named (waiting for the debug info if asked to).
    pub fn finish(&mut self, names: &mut Names) {
        self.poll(self.wait_at_end);
        self.resolve(names, usize::MAX);
        names.source_lines_pending = false;
    }

    fn poll(&mut self, wait: bool) {
        if let State::Opening(rx) = &self.state {
            let got = if wait {
                rx.recv().map_err(|_| TryRecvError::Disconnected)
            } else {
                rx.try_recv()
            };
            self.state = match got {
                Ok(Some(lines)) => State::Ready(Box::new(lines)),
                Ok(None) | Err(TryRecvError::Disconnected) => State::Gone,
                Err(TryRecvError::Empty) => return,
            };
        }
    }

    fn resolve(&mut self, names: &mut Names, budget: usize) {
        names.source_lines_pending = matches!(self.state, State::Opening(_));
        let State::Ready(lines) = &mut self.state else {
            return;
        };
        let todo: Vec<u64> = names
            .locations
            .keys()
            .filter(|a| !names.source_lines.contains_key(a))
            .take(budget)
            .copied()
            .collect();
        for address in todo {
            let loc = &names.locations[&address];
            let line = loc
                .function
                .as_deref()
                .zip(loc.offset)
                .and_then(|(function, offset)| lines.line(loc.module.as_deref(), function, offset));
            names.source_lines.insert(address, line);
        }
    }
}

/// Source lines of a kernel and of its modules: the vmlinux, and each module's .ko with
/// debug info from the same package (`.../usr/lib/debug/lib/modules/RELEASE/**/NAME.ko`
/// beside `.../usr/lib/debug/boot/vmlinux-RELEASE`), opened when a drop site is in it.
#[derive(Debug)]
pub struct KernelLines {
    vmlinux: SourceLines,
    modules_dir: Option<PathBuf>,
    modules: HashMap<String, Option<SourceLines>>,
}

impl KernelLines {
    pub fn new(vmlinux: SourceLines, release: &str) -> KernelLines {
        let dir = vmlinux.path().parent().map(Path::to_path_buf);
        let modules_dir = dir.and_then(|d| {
            if d.file_name().is_some_and(|n| n == "boot") {
                Some(d.parent()?.join("lib/modules").join(release))
            } else if d.ends_with(Path::new("lib/modules").join(release)) {
                Some(d)
            } else {
                None
            }
        });
        KernelLines {
            vmlinux,
            modules_dir: modules_dir.filter(|d| d.is_dir()),
            modules: HashMap::new(),
        }
    }

    pub fn path(&self) -> &Path {
        self.vmlinux.path()
    }

    /// `file:line` of the drop site at `function+offset` in `module` (None: the kernel).
    /// An address without a symbol (kallsyms hidden) has none.
    pub fn line(&mut self, module: Option<&str>, function: &str, offset: u64) -> Option<String> {
        let Some(module) = module else {
            return self.vmlinux.line(function, offset);
        };
        let dir = self.modules_dir.as_deref()?;
        let lines = self
            .modules
            .entry(module.to_owned())
            .or_insert_with(|| find_module(dir, module).and_then(|p| SourceLines::open(&p).ok()));
        lines.as_ref()?.module_line(function, offset)
    }
}

/// `NAME.ko` (dashes and underscores alike, as the kernel names modules) under `dir`.
fn find_module(dir: &Path, name: &str) -> Option<PathBuf> {
    let want = format!("{}.ko", name.replace('-', "_"));
    let mut pending = vec![dir.to_path_buf()];
    // Bounded: a kernel's module tree has a few hundred directories.
    let mut visited = 0;
    while let Some(d) = pending.pop() {
        visited += 1;
        if visited > 10_000 {
            return None;
        }
        for entry in std::fs::read_dir(&d).ok()?.flatten() {
            let path = entry.path();
            let file_type = entry.file_type().ok()?;
            if file_type.is_dir() {
                pending.push(path);
            } else if entry.file_name().to_string_lossy().replace('-', "_") == want {
                return Some(path);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::names::Location;

    /// From the debug-info fixture (tiny-vmlinux, built from tiny-kernel.c): the kernel's
    /// own sites get their line, a module's site without its .ko gets none, and both are
    /// tried once.
    #[test]
    fn drop_sites_get_their_source_line_in_the_names() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/debuginfo/tiny-vmlinux");
        let lines = KernelLines::new(SourceLines::open(&path).unwrap(), "6.18.0");
        let mut resolver = LineResolver::ready(lines);
        let site = |function: &str, offset: u64, module: Option<&str>| Location {
            function: Some(function.into()),
            offset: Some(offset),
            module: module.map(Into::into),
            display: format!("{function}+{offset:#x}"),
        };
        let mut names = Names::default();
        names.locations.insert(1, site("nft_do_chain", 0x1c, None));
        names
            .locations
            .insert(2, site("tcp_v4_rcv", 0x16, Some("not_there")));
        resolver.tick(&mut names);
        assert_eq!(
            names.source_line(1),
            Some(
                "/src/tiny-kernel.c:13 (drop_it, inlined into nft_do_chain at /src/tiny-kernel.c:20)"
            )
        );
        assert_eq!(names.source_line(2), None);
        assert_eq!(names.source_lines.len(), 2, "both tried");
        assert!(!names.source_lines_pending);
    }

    #[test]
    fn debug_info_that_cannot_be_opened_gives_no_lines_and_does_not_hold_the_end() {
        let mut resolver =
            LineResolver::open(PathBuf::from("/nonexistent/vmlinux"), "6.18.0".into(), true);
        let mut names = Names::default();
        names.locations.insert(1, Location::unknown(1));
        resolver.finish(&mut names);
        assert_eq!(names.source_line(1), None);
        assert!(!names.source_lines_pending);
    }
}
