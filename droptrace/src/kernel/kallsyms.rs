//! Kernel text symbols from /proc/kallsyms, to name drop locations (`tcp_v4_rcv+0x99`).
//!
//! The file has ~120k lines (`address type name [module]`); only text symbols are kept,
//! with names packed into one string, so the table costs a few MB and loads fast.

use std::fmt;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use super::btf::IoError;

/// What can go wrong reading kallsyms.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KallsymsError {
    #[error("cannot read kernel symbols: {0}")]
    Read(#[source] IoError),
    #[error("cannot read kernel symbols from {}: {source}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: IoError,
    },
    #[error("no text symbols in {lines} lines; this does not look like /proc/kallsyms")]
    NoSymbols { lines: usize },
}

/// A resolved address: `name+0x1c1`, or `name+0x1c1 [module]` for module code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Symbol<'a> {
    pub name: &'a str,
    pub offset: u64,
    pub module: Option<&'a str>,
}

impl fmt::Display for Symbol<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}+{:#x}", self.name, self.offset)?;
        if let Some(module) = self.module {
            write!(f, " [{module}]")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    addr: u64,
    name_start: u32,
    name_len: u16,
    /// Index into `modules` plus one; 0 for the kernel image.
    module: u16,
    /// The kallsyms type letter: `T`, `t`, `W` or `w`.
    kind: u8,
}

/// Text symbols of the running kernel and its modules, sorted by address.
#[derive(Debug, Clone, Default)]
pub struct KernelSymbols {
    entries: Vec<Entry>,
    names: String,
    modules: Vec<String>,
    hidden: bool,
    skipped: usize,
}

/// Parses kallsyms text; see [`KernelSymbols::parse`].
pub fn parse(reader: impl BufRead) -> Result<KernelSymbols, KallsymsError> {
    KernelSymbols::parse(reader)
}

impl KernelSymbols {
    /// Parses kallsyms text. Keeps text symbols (types `t T w W`, module ones too);
    /// lines that do not parse are skipped and counted in [`KernelSymbols::skipped_lines`].
    pub fn parse(reader: impl BufRead) -> Result<KernelSymbols, KallsymsError> {
        KernelSymbols::parse_inner(reader).map_err(|e| KallsymsError::Read(IoError(e)))?
    }

    /// Reads a kallsyms file such as /proc/kallsyms.
    pub fn from_file(path: &Path) -> Result<KernelSymbols, KallsymsError> {
        let file_error = |e| KallsymsError::File {
            path: path.to_owned(),
            source: IoError(e),
        };
        let file = std::fs::File::open(path).map_err(file_error)?;
        KernelSymbols::parse_inner(std::io::BufReader::with_capacity(1 << 16, file))
            .map_err(file_error)?
    }

    fn parse_inner(
        mut reader: impl BufRead,
    ) -> std::io::Result<Result<KernelSymbols, KallsymsError>> {
        let mut loader = Loader::default();
        // Whole lines are handed over a buffer at a time, so UTF-8 is checked once per
        // buffer rather than per line; a line split across buffers goes through `carry`.
        let mut carry = Vec::new();
        loop {
            let buf = match reader.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buf.is_empty() {
                loader.block(&carry);
                break;
            }
            let used = match buf.iter().rposition(|&b| b == b'\n') {
                None => {
                    carry.extend_from_slice(buf);
                    buf.len()
                }
                Some(last) if carry.is_empty() => {
                    loader.block(&buf[..=last]);
                    last + 1
                }
                Some(last) => {
                    carry.extend_from_slice(&buf[..=last]);
                    loader.block(&carry);
                    carry.clear();
                    last + 1
                }
            };
            reader.consume(used);
        }
        Ok(loader.finish())
    }

    /// True when every address is zero: kernel.kptr_restrict hides them from this
    /// reader, so nothing can be resolved.
    pub fn addresses_hidden(&self) -> bool {
        self.hidden
    }

    /// Number of text symbols kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Lines that were not `address type name [module]` and were ignored.
    pub fn skipped_lines(&self) -> usize {
        self.skipped
    }

    fn name(&self, e: &Entry) -> &str {
        let start = e.name_start as usize;
        self.names
            .get(start..start + usize::from(e.name_len))
            .unwrap_or("")
    }

    fn module(&self, e: &Entry) -> Option<&str> {
        let index = usize::from(e.module).checked_sub(1)?;
        self.modules.get(index).map(String::as_str)
    }

    /// The nearest symbol at or below `addr`. `None` below the first symbol and when
    /// addresses are hidden. Of several symbols at one address, a global one wins.
    pub fn resolve(&self, addr: u64) -> Option<Symbol<'_>> {
        if self.hidden {
            return None;
        }
        let end = self.entries.partition_point(|e| e.addr <= addr);
        let at = self.entries.get(end.checked_sub(1)?)?.addr;
        let start = self.entries.partition_point(|e| e.addr < at);
        // Of aliases, prefer T over W over t/w; among equals the first in file order.
        let rank = |e: &&Entry| match e.kind {
            b'T' => 0,
            b'W' => 1,
            _ => 2,
        };
        let best = self.entries.get(start..end)?.iter().min_by_key(rank)?;
        Some(Symbol {
            name: self.name(best),
            offset: addr - best.addr,
            module: self.module(best),
        })
    }

    /// Address of the text symbol `name` (the lowest, if several share the name).
    /// `None` if absent or when addresses are hidden.
    pub fn address_of(&self, name: &str) -> Option<u64> {
        if self.hidden {
            return None;
        }
        self.entries
            .iter()
            .find(|e| self.name(e) == name)
            .map(|e| e.addr)
    }

    /// Whether a text symbol called `name` exists; works with hidden addresses too.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.iter().any(|e| self.name(e) == name)
    }
}

/// Collects symbols line by line while parsing.
#[derive(Default)]
struct Loader {
    symbols: KernelSymbols,
    module_index: std::collections::HashMap<String, u16>,
    lines: usize,
    any_address: bool,
    any_nonzero: bool,
}

impl Loader {
    fn block(&mut self, block: &[u8]) {
        match std::str::from_utf8(block) {
            Ok(text) => self.text(text),
            // Rare: judge each line on its own, so one bad line costs only itself.
            Err(_) => {
                for line in block.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                    match std::str::from_utf8(line) {
                        Ok(text) => self.text(text),
                        Err(_) => {
                            self.lines += 1;
                            self.symbols.skipped += 1;
                        }
                    }
                }
            }
        }
    }

    fn text(&mut self, text: &str) {
        let mut at = 0;
        while at < text.len() {
            let (scan, next) = scan_line(text, at);
            at = next;
            self.lines += 1;
            match scan {
                Scan::Symbol(line) => self.symbol(line),
                Scan::Blank => {}
                Scan::Bad => self.symbols.skipped += 1,
            }
        }
    }

    fn symbol(&mut self, parsed: Line<'_>) {
        self.any_address = true;
        self.any_nonzero |= parsed.addr != 0;
        if !matches!(parsed.kind, b't' | b'T' | b'w' | b'W') {
            return;
        }
        let symbols = &mut self.symbols;
        let module = match parsed.module {
            None => 0,
            Some(name) => match self.module_index.get(name) {
                Some(&index) => index,
                None => {
                    let Ok(index) = u16::try_from(symbols.modules.len() + 1) else {
                        symbols.skipped += 1;
                        return;
                    };
                    symbols.modules.push(name.to_owned());
                    self.module_index.insert(name.to_owned(), index);
                    index
                }
            },
        };
        let (Ok(name_start), Ok(name_len)) = (
            u32::try_from(symbols.names.len()),
            u16::try_from(parsed.name.len()),
        ) else {
            symbols.skipped += 1;
            return;
        };
        symbols.names.push_str(parsed.name);
        symbols.entries.push(Entry {
            addr: parsed.addr,
            name_start,
            name_len,
            module,
            kind: parsed.kind,
        });
    }

    fn finish(self) -> Result<KernelSymbols, KallsymsError> {
        let mut symbols = self.symbols;
        if symbols.entries.is_empty() {
            // A blank line counts as read but not as a symbol line.
            return Err(KallsymsError::NoSymbols { lines: self.lines });
        }
        symbols.hidden = self.any_address && !self.any_nonzero;
        // Stable: among symbols at one address, file order is kept.
        symbols.entries.sort_by_key(|e| e.addr);
        symbols.entries.shrink_to_fit();
        symbols.names.shrink_to_fit();
        Ok(symbols)
    }
}

struct Line<'a> {
    addr: u64,
    kind: u8,
    name: &'a str,
    module: Option<&'a str>,
}

enum Scan<'a> {
    Symbol(Line<'a>),
    Blank,
    Bad,
}

/// Reads the line of `text` starting at byte `start`: `ffffffff820339c0 T tcp_v4_rcv`
/// or `... t nfs_opendir\t[nfs]` (the kernel prints `"%px %c %s\t[%s]"`). Returns
/// what it found and where the next line starts.
///
/// One hand-written pass per line: at ~120k lines, generic splitting and searching
/// cost as much as the kernel takes to produce the file.
fn scan_line(text: &str, start: usize) -> (Scan<'_>, usize) {
    let b = text.as_bytes();
    let is_blank = |c: u8| c == b' ' || c == b'\t' || c == b'\r';
    let give_up = |from: usize| {
        let end = b
            .get(from..)
            .and_then(|rest| rest.iter().position(|&c| c == b'\n'))
            .map_or(b.len(), |p| from + p);
        let blank = b
            .get(start..end)
            .is_some_and(|l| l.iter().all(|&c| is_blank(c)));
        (if blank { Scan::Blank } else { Scan::Bad }, end + 1)
    };

    let mut i = start;
    let mut addr = 0u64;
    while let Some(digit) = b.get(i).and_then(|&c| (c as char).to_digit(16)) {
        if i - start == 16 {
            return give_up(i);
        }
        addr = addr << 4 | u64::from(digit);
        i += 1;
    }
    if i == start || b.get(i) != Some(&b' ') || b.get(i + 2) != Some(&b' ') {
        return give_up(i);
    }
    let kind = match b.get(i + 1) {
        Some(&k) if k.is_ascii_alphabetic() || k == b'?' => k,
        _ => return give_up(i),
    };
    i += 3;

    let name_start = i;
    while b.get(i).is_some_and(|c| !c.is_ascii_whitespace()) {
        i += 1;
    }
    // Both ends sit next to ASCII bytes (or the text's ends): char boundaries.
    let Some(name) = text.get(name_start..i).filter(|n| !n.is_empty()) else {
        return give_up(i);
    };
    while b.get(i).is_some_and(|&c| is_blank(c)) {
        i += 1;
    }

    let mut module = None;
    if b.get(i) == Some(&b'[') {
        let module_start = i + 1;
        while b.get(i).is_some_and(|&c| c != b']' && c != b'\n') {
            i += 1;
        }
        let found = text
            .get(module_start..i)
            .filter(|m| !m.is_empty() && !m.bytes().any(|c| c.is_ascii_whitespace() || c == b'['));
        match (b.get(i), found) {
            (Some(b']'), Some(m)) => module = Some(m),
            _ => return give_up(i),
        }
        i += 1;
        while b.get(i).is_some_and(|&c| is_blank(c)) {
            i += 1;
        }
    }
    let line = Line {
        addr,
        kind,
        name,
        module,
    };
    match b.get(i) {
        None => (Scan::Symbol(line), i),
        Some(b'\n') => (Scan::Symbol(line), i + 1),
        Some(_) => give_up(i),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> KernelSymbols {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(name);
        KernelSymbols::from_file(&path).unwrap()
    }

    // Addresses from fixtures/kallsyms.6.18 (this VM's /proc/kallsyms, KASLR base of
    // that boot).
    #[test]
    fn resolves_real_addresses() {
        let syms = fixture("kallsyms.6.18");
        assert!(!syms.addresses_hidden());
        assert_eq!(syms.skipped_lines(), 0);
        assert_eq!(syms.address_of("tcp_v4_rcv"), Some(0xffff_ffff_8203_39c0));
        let sym = syms.resolve(0xffff_ffff_8203_39c0 + 0x99).unwrap();
        assert_eq!(sym.to_string(), "tcp_v4_rcv+0x99");
        assert_eq!(sym.module, None);
        assert_eq!(
            syms.resolve(0xffff_ffff_81f6_3250).unwrap().to_string(),
            "nft_do_chain+0x0"
        );
        // The padding before a function has its own __pfx_ symbol.
        assert_eq!(
            syms.resolve(0xffff_ffff_8203_39b8).unwrap().to_string(),
            "__pfx_tcp_v4_rcv+0x8"
        );
        assert_eq!(
            syms.resolve(0xffff_ffff_8123_f70a + 3).unwrap().name,
            "__dev_queue_xmit.cold"
        );
        assert_eq!(
            syms.address_of("sk_skb_reason_drop"),
            Some(0xffff_ffff_81e4_2dc0)
        );
        assert_eq!(
            syms.address_of("udp_queue_rcv_one_skb"),
            Some(0xffff_ffff_8204_54f0)
        );
        // Data symbols (R, D, B) are not kept.
        assert_eq!(syms.address_of("__start_runtime_ptr_USER_PTR_MAX"), None);
        assert!(syms.resolve(0x1000).is_none());
    }

    #[test]
    fn aliases_prefer_global_symbols() {
        // _stext, _text, __pi__text and srso_alias_untrain_ret share one address; all are T,
        // so the first in file order wins.
        let syms = fixture("kallsyms.6.18");
        let sym = syms.resolve(0xffff_ffff_8100_0004).unwrap();
        assert_eq!((sym.name, sym.offset), ("srso_alias_untrain_ret", 4));
        let text = "ffffffff81000100 t local_one\nffffffff81000100 T global_one\nffffffff81000100 W weak_one\n";
        let syms = parse(text.as_bytes()).unwrap();
        assert_eq!(
            syms.resolve(0xffff_ffff_8100_0101).unwrap().name,
            "global_one"
        );
    }

    #[test]
    fn hidden_addresses() {
        // /proc/kallsyms read as user nobody with kernel.kptr_restrict=0.
        let syms = fixture("kallsyms.6.18.unprivileged");
        assert!(syms.addresses_hidden());
        assert_eq!(
            syms.len(),
            2000 - count_data_lines("kallsyms.6.18.unprivileged")
        );
        assert!(syms.resolve(0xffff_ffff_8100_0004).is_none());
        assert!(syms.resolve(0).is_none());
        assert_eq!(syms.address_of("_stext"), None);
        assert!(syms.contains("_stext"));
    }

    fn count_data_lines(name: &str) -> usize {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(name);
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .filter(|l| !matches!(l.split(' ').nth(1), Some("t" | "T" | "w" | "W")))
            .count()
    }

    #[test]
    fn module_symbols() {
        // Real lines quoted in public bug reports (see fixtures/README.capture).
        let syms = fixture("kallsyms.modules.public");
        let sym = syms.resolve(0xffff_ffff_a01f_9df0 + 0x1c1).unwrap();
        assert_eq!(sym.to_string(), "nfs_opendir+0x1c1 [nfs]");
        assert_eq!(sym.module, Some("nfs"));
        let sym = syms.resolve(0xffff_ffff_c103_488b + 0x10).unwrap();
        assert_eq!(sym.to_string(), "nvGpuOpsFreeDupedHandle+0x10 [nvidia]");
        // Data symbols of modules are dropped like kernel ones.
        assert!(!syms.contains("nfsd_filecache_count"));
        assert!(!syms.contains("ext4_file_operations"));
        assert_eq!(syms.address_of("_stext"), Some(0xffff_ffff_8100_0000));
        assert_eq!(syms.len(), 4);
    }

    #[test]
    fn malformed_lines_are_skipped() {
        let text = b"ffffffff81000000 T _stext\n\
                     not a symbol line\n\
                     zzzz T bad_address\n\
                     ffffffff81000010 TT two_letters\n\
                     ffffffff81000020 t\n\
                     ffffffff81000030 t mod_func [unterminated\n\
                     ffffffff81000040 t too many fields here\n\
                     \xff\xfe binary\n\
                     \n\
                     ffffffff81000050 t good_func\t[good]\n\
                     ffffffffffffffffffff T overflow\n";
        let syms = parse(&text[..]).unwrap();
        assert_eq!(syms.len(), 2);
        assert_eq!(syms.skipped_lines(), 8);
        assert_eq!(
            syms.resolve(0xffff_ffff_8100_0055).unwrap().to_string(),
            "good_func+0x5 [good]"
        );
    }

    #[test]
    fn empty_or_unrelated_input_is_an_error() {
        assert_eq!(
            parse(&b""[..]).unwrap_err(),
            KallsymsError::NoSymbols { lines: 0 }
        );
        assert!(matches!(
            parse(&b"hello\nworld\n"[..]),
            Err(KallsymsError::NoSymbols { lines: 2 })
        ));
        let err = KernelSymbols::from_file(Path::new("/nonexistent/kallsyms")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/kallsyms"), "{err}");
    }

    #[test]
    fn every_prefix_of_a_line_is_handled() {
        let line = "ffffffffa01f9df0 t nfs_opendir\t[nfs]\n";
        for cut in 0..=line.len() {
            let _ = parse(&line.as_bytes()[..cut]);
        }
    }

    /// `cargo test --release -p droptrace --lib kallsyms::tests::live_parse_time -- --ignored --nocapture`
    #[test]
    #[ignore = "reads the running kernel's /proc/kallsyms and prints timings"]
    fn live_parse_time() {
        let start = std::time::Instant::now();
        let syms = KernelSymbols::from_file(Path::new("/proc/kallsyms")).unwrap();
        let elapsed = start.elapsed();
        let bytes = syms.names.capacity() + syms.entries.capacity() * size_of::<Entry>();
        eprintln!(
            "{} text symbols, {} modules, hidden={}, skipped={}: {elapsed:?}, ~{} KiB kept",
            syms.len(),
            syms.modules.len(),
            syms.addresses_hidden(),
            syms.skipped_lines(),
            bytes / 1024
        );
        // The kernel's own cost of producing the file, and ours of parsing it.
        let start = std::time::Instant::now();
        let data = std::fs::read("/proc/kallsyms").unwrap();
        eprintln!("reading /proc/kallsyms alone: {:?}", start.elapsed());
        let mut best = std::time::Duration::MAX;
        for _ in 0..10 {
            let start = std::time::Instant::now();
            let _ = parse(&data[..]).unwrap();
            best = best.min(start.elapsed());
        }
        eprintln!("parsing it from memory: {best:?} (best of 10)");
        if let Some(addr) = syms.address_of("tcp_v4_rcv") {
            let start = std::time::Instant::now();
            let sym = syms.resolve(addr + 0x99);
            eprintln!("resolve: {:?} -> {sym:?}", start.elapsed());
        }
    }
}
