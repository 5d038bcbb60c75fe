//! The layers of `droptrace/src`, checked: every path a file names inside the crate
//! (`use crate::...`, `super::...`, a path in an expression or a type) must lead to its own
//! part or to one the table below allows. A forbidden arrow fails with its file and line.
//! ARCHITECTURE.md shows the same table; this test also fails when the two differ.
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use syn::visit::Visit;

/// Each part of the crate and what it may import besides itself. A part is a top-level
/// module; an entry `a::b` allows that module of part `a` and what is under it, no more.
const LAYERS: &[(&str, &[&str])] = &[
    ("format", &[]),
    ("kernel", &[]),
    ("containers", &["pipeline::names"]),
    ("record", &["pipeline", "kernel", "format"]),
    ("pipeline", &["kernel", "record", "format"]),
    ("live", &["pipeline", "format"]),
    ("diagnose", &["pipeline", "live", "kernel", "format"]),
    ("sinks", &["pipeline", "record", "live", "kernel", "format"]),
    (
        "html",
        &[
            "sinks::summary",
            "sinks::timeline",
            "diagnose::report",
            "format",
        ],
    ),
    (
        "tui",
        &[
            "pipeline",
            "live",
            "diagnose::knowledge",
            "kernel::reasons",
            "containers::short_id",
            "format",
        ],
    ),
    (
        "probe",
        &[
            "kernel",
            "containers",
            "pipeline",
            "diagnose::raw",
            "diagnose::evidence",
            "diagnose::session",
            "diagnose::engine::NamespaceNames",
            "format",
        ],
    ),
    ("cli", &["*"]),
    ("commands", &["*"]),
];

/// An arrow found in the source: `from` (a file and line) names `to` (a crate path).
struct Arrow {
    file: PathBuf,
    line: usize,
    /// The module the path is written in (inline modules included).
    within: Vec<String>,
    to: Vec<String>,
}

/// Collects the crate paths one file names, resolving `super` and `self` against the
/// module the path sits in (inline modules such as `mod tests` included).
struct Imports<'a> {
    file: &'a Path,
    module: Vec<String>,
    arrows: Vec<Arrow>,
}

impl Imports<'_> {
    fn resolve(&self, segments: &[String]) -> Option<Vec<String>> {
        let mut out = match segments.first()?.as_str() {
            "crate" => Vec::new(),
            "super" | "self" => self.module.clone(),
            _ => return None,
        };
        let mut rest = segments;
        if rest[0] == "crate" {
            rest = &rest[1..];
        }
        for s in rest {
            match s.as_str() {
                "super" => {
                    out.pop();
                }
                "self" => {}
                _ => out.push(s.clone()),
            }
        }
        Some(out)
    }

    fn add(&mut self, segments: Vec<String>, line: usize) {
        if let Some(to) = self.resolve(&segments) {
            self.arrows.push(Arrow {
                file: self.file.to_owned(),
                line,
                within: self.module.clone(),
                to,
            });
        }
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let mut full = prefix.clone();
                if n.ident != "self" {
                    full.push(n.ident.to_string());
                }
                self.add(full, n.ident.span().start().line);
            }
            syn::UseTree::Rename(r) => {
                let mut full = prefix.clone();
                full.push(r.ident.to_string());
                self.add(full, r.ident.span().start().line);
            }
            syn::UseTree::Glob(g) => self.add(prefix.clone(), g.star_token.spans[0].start().line),
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t);
                }
            }
        }
    }
}

impl<'ast> Visit<'ast> for Imports<'_> {
    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        // `use super::*` in a file's own `mod tests` is the module itself.
        self.use_tree(&mut Vec::new(), &u.tree);
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if m.content.is_some() {
            self.module.push(m.ident.to_string());
            syn::visit::visit_item_mod(self, m);
            self.module.pop();
        }
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segments: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        if let Some(first) = p.segments.first() {
            self.add(segments, first.ident.span().start().line);
        }
        syn::visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        // Paths inside a macro's arguments (`format!("{}", crate::x::y(..))`) are code
        // too: read the tokens as expressions where they parse as such.
        let parser = syn::punctuated::Punctuated::<syn::Expr, syn::Token![,]>::parse_terminated;
        if let Ok(args) = syn::parse::Parser::parse2(parser, m.tokens.clone()) {
            for e in &args {
                self.visit_expr(e);
            }
        }
        syn::visit::visit_macro(self, m);
    }
}

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("reading src") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file: `probe/attach.rs` is `probe::attach`, `probe/mod.rs` is
/// `probe`; a file named by `#[path]` is not used in this crate.
fn module_of(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src()).expect("a file under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

fn arrows() -> Vec<Arrow> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files.sort();
    let mut all = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("reading a source file");
        let ast = syn::parse_file(&text)
            .unwrap_or_else(|e| panic!("{}: does not parse: {e}", file.display()));
        let mut imports = Imports {
            file,
            module: module_of(file),
            arrows: Vec::new(),
        };
        imports.visit_file(&ast);
        all.extend(imports.arrows);
    }
    all
}

/// Whether `from`'s part may name `to`.
fn allowed(from: &[String], to: &[String]) -> Result<(), String> {
    let (Some(part), Some(target)) = (from.first(), to.first()) else {
        return Ok(()); // lib.rs and main.rs wire everything; `crate::` alone names nothing
    };
    if part == target {
        return Ok(());
    }
    let Some((_, may)) = LAYERS.iter().find(|(name, _)| name == part) else {
        return Err(format!("`{part}` is not in the table of layers"));
    };
    let ok = may.iter().any(|m| {
        *m == "*"
            || m.split("::").zip(to.iter()).all(|(a, b)| a == b)
                && m.split("::").count() <= to.len()
    });
    if ok {
        Ok(())
    } else {
        Err(format!("`{part}` may not import `{}`", to.join("::")))
    }
}

#[test]
fn no_part_imports_what_the_table_forbids() {
    let mut broken = Vec::new();
    for arrow in arrows() {
        let from = module_of(&arrow.file);
        if let Err(why) = allowed(&from, &arrow.to) {
            let rel = arrow.file.strip_prefix(src()).unwrap_or(&arrow.file);
            broken.push(format!("src/{}:{}: {why}", rel.display(), arrow.line));
        }
    }
    assert!(
        broken.is_empty(),
        "{} forbidden imports (the table is in droptrace/tests/layers.rs and ARCHITECTURE.md):\n{}",
        broken.len(),
        broken.join("\n")
    );
}

#[test]
fn every_part_is_in_the_table() {
    let mut parts: BTreeMap<String, ()> = BTreeMap::new();
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    for f in &files {
        if let Some(part) = module_of(f).first() {
            parts.insert(part.clone(), ());
        }
    }
    for part in parts.keys() {
        assert!(
            LAYERS.iter().any(|(name, _)| name == part),
            "src/{part} is in no layer of the table"
        );
    }
}

/// Arrows between the modules of one part (`diagnose::state` -> `diagnose::programs`),
/// each once, from every file under the module.
fn inner_arrows() -> BTreeMap<(String, String, String), (PathBuf, usize)> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let modules: std::collections::BTreeSet<(String, String)> = files
        .iter()
        .map(|f| module_of(f))
        .filter(|m| m.len() >= 2)
        .map(|m| (m[0].clone(), m[1].clone()))
        .collect();
    let mut out = BTreeMap::new();
    for arrow in arrows() {
        let from = module_of(&arrow.file);
        let (Some(part), Some(a), Some(b)) = (from.first(), from.get(1), arrow.to.get(1)) else {
            continue;
        };
        // Tests reach into the modules they test and their neighbours freely.
        if arrow.within.iter().any(|m| m == "tests") {
            continue;
        }
        if arrow.to[0] == *part && a != b && modules.contains(&(part.clone(), b.clone())) {
            out.entry((part.clone(), a.clone(), b.clone()))
                .or_insert((arrow.file.clone(), arrow.line));
        }
    }
    out
}

/// A circle in `edges` (module -> modules it imports), if there is one.
fn circle(edges: &BTreeMap<String, Vec<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, Vec<String>>,
        path: &mut Vec<String>,
        done: &mut std::collections::BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_owned());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, edges, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = std::collections::BTreeSet::new();
    edges
        .keys()
        .find_map(|start| visit(start, edges, &mut Vec::new(), &mut done))
}

#[test]
fn no_modules_of_a_part_import_each_other_in_a_circle() {
    let inner = inner_arrows();
    let mut edges: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (part, a, b) in inner.keys() {
        edges
            .entry(format!("{part}::{a}"))
            .or_default()
            .push(format!("{part}::{b}"));
    }
    if let Some(found) = circle(&edges) {
        let steps: Vec<String> = found
            .windows(2)
            .map(|w| {
                let part = w[0].split("::").next().unwrap_or_default().to_owned();
                let key = (
                    part,
                    w[0].split("::").nth(1).unwrap_or_default().to_owned(),
                    w[1].split("::").nth(1).unwrap_or_default().to_owned(),
                );
                let (file, line) = &inner[&key];
                format!("{} -> {} ({}:{line})", w[0], w[1], file.display())
            })
            .collect();
        panic!("modules in a circle:\n{}", steps.join("\n"));
    }
}

#[test]
fn the_circle_check_finds_a_circle_of_three() {
    let edges: BTreeMap<String, Vec<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(circle(&edges).unwrap(), ["a", "b", "c", "a"]);
    let straight: BTreeMap<String, Vec<String>> = [("a".to_owned(), vec!["b".to_owned()])]
        .into_iter()
        .collect();
    assert!(circle(&straight).is_none());
}

#[test]
fn no_command_imports_another() {
    let shared = ["error", "view"];
    let crossing: Vec<String> = inner_arrows()
        .iter()
        .filter(|((part, _, b), _)| part == "commands" && !shared.contains(&b.as_str()))
        .map(|((_, a, b), (file, line))| {
            format!(
                "commands::{a} imports commands::{b}: {}:{line}",
                file.display()
            )
        })
        .collect();
    assert!(crossing.is_empty(), "{}", crossing.join("\n"));
}

/// The table as ARCHITECTURE.md shows it.
fn table() -> String {
    let mut out = String::from("| part | may import (besides itself) |\n|---|---|\n");
    for (part, may) in LAYERS {
        let may = if may.is_empty() {
            "nothing".to_owned()
        } else if may == &["*"] {
            "everything".to_owned()
        } else {
            may.iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push_str(&format!("| `{part}` | {may} |\n"));
    }
    out
}

#[test]
fn architecture_md_shows_the_checked_table() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ARCHITECTURE.md");
    let doc = std::fs::read_to_string(&path).expect("reading ARCHITECTURE.md");
    let want = table();
    assert!(
        doc.contains(&want),
        "ARCHITECTURE.md must contain the checked table of layers, exactly:\n\n{want}"
    );
}

#[test]
fn the_check_sees_a_forbidden_arrow() {
    // The check itself, on a file of its own making: a sink naming the probe is caught,
    // through `crate::`, `super::` and a path inside a macro.
    let text = "use crate::probe::attach;\n\
                fn f() { let _ = super::super::probe::x(); }\n\
                fn g() { println!(\"{}\", crate::probe::y()); }\n";
    let ast = syn::parse_file(text).unwrap();
    let file = src().join("sinks/fake.rs");
    let mut imports = Imports {
        file: &file,
        module: module_of(&file),
        arrows: Vec::new(),
    };
    imports.visit_file(&ast);
    let from = module_of(&file);
    let lines: Vec<usize> = imports
        .arrows
        .iter()
        .filter(|a| allowed(&from, &a.to).is_err())
        .map(|a| a.line)
        .collect();
    assert_eq!(lines, [1, 2, 3]);
}
