//! `cargo xtask man`: droptrace's man pages and shell completions, generated from its clap
//! definitions (`droptrace/src/cli.rs`) into `droptrace/doc/`, where they are checked in.
//! `cargo xtask man --check` (run by `cargo xtask test`, and by a unit test here) fails when
//! the checked-in files differ from what cli.rs gives, so they cannot drift from `--help`.
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};
use clap::CommandFactory;
use clap_complete::{Generator, Shell};
use clap_mangen::{
    roff::{bold, roman, Roff},
    Man,
};

use crate::workspace;

/// Where the generated files are checked in, relative to the workspace.
pub const DOC_DIR: &str = "droptrace/doc";
/// The program's name, as installed and as completions see it.
const BIN: &str = "droptrace";
/// The Debian changelog, whose newest entry dates the pages.
pub const CHANGELOG: &str = "deploy/debian/changelog";
/// The command that regenerates everything here (said in every drift message).
pub const REGENERATE: &str = "cargo xtask man";

/// Every generated file: path relative to [`DOC_DIR`] (`man/…` or `completions/…`) to bytes.
pub fn generate() -> Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    for (name, page) in man_pages()? {
        files.insert(format!("man/{name}"), page);
    }
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut cmd = droptrace::cli::Cli::command();
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut cmd, BIN, &mut out);
        files.insert(format!("completions/{}", shell.file_name(BIN)), out);
    }
    Ok(files)
}

/// `droptrace.1` and one page per subcommand (`droptrace-record.1`, ...), section 1.
pub fn man_pages() -> Result<Vec<(String, Vec<u8>)>> {
    // `help` is a subcommand of the binary, but needs no page of its own.
    let mut root = droptrace::cli::Cli::command().disable_help_subcommand(true);
    root.build();
    let subcommands: Vec<clap::Command> = root
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect();
    let sub_pages: Vec<String> = subcommands
        .iter()
        .map(|s| format!("{BIN}-{}", s.get_name()))
        .collect();

    // Every page's footer names the release and its date, subcommands' too.
    let source = format!("{BIN} {}", root.get_version().unwrap_or_default());
    let date = release_date()?;
    let mut pages = vec![(
        format!("{BIN}.1"),
        render(
            root.clone(),
            &source,
            &date,
            &RootExtras {
                sub_pages: &sub_pages,
            },
        )?,
    )];
    for (sub, name) in subcommands.into_iter().zip(&sub_pages) {
        pages.push((
            format!("{name}.1"),
            render(sub, &source, &date, &SubExtras)?,
        ));
    }
    Ok(pages)
}

/// The date of the newest entry of the Debian changelog (the release), as YYYY-MM-DD:
/// pages change only when cli.rs or the release does.
pub fn release_date() -> Result<String> {
    let path = workspace().join(CHANGELOG);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    // The trailer line: ` -- Name <address>  Tue, 01 Dec 2026 23:55:22 +0000`.
    let trailer = text
        .lines()
        .find(|l| l.starts_with(" -- "))
        .with_context(|| format!("no trailer line in {CHANGELOG}"))?;
    let date = trailer.rsplit("  ").next().unwrap_or_default();
    let fields: Vec<&str> = date.split_whitespace().collect();
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let parsed = match fields[..] {
        [_, day, month, year, ..] => MONTHS
            .iter()
            .position(|m| *m == month)
            .zip(day.parse::<u32>().ok())
            .map(|(m, d)| format!("{year}-{:02}-{d:02}", m + 1)),
        _ => None,
    };
    parsed.with_context(|| format!("the date of {CHANGELOG}'s newest entry: `{date}`"))
}

/// What a page has beyond what `--help` says: sections a man page is expected to have.
trait Extras {
    /// Sections between the options and the examples.
    fn middle(&self, roff: &mut Roff);
    /// The pages named in SEE ALSO.
    fn see_also(&self) -> Vec<String>;
}

struct RootExtras<'a> {
    sub_pages: &'a [String],
}

impl Extras for RootExtras<'_> {
    fn middle(&self, roff: &mut Roff) {
        roff.control("SH", ["EXIT STATUS"]);
        for (code, meaning) in [
            ("0", "droptrace stopped cleanly."),
            (
                "1",
                "Another error; the message on standard error says what to do.",
            ),
            ("2", "Bad flags or arguments."),
            (
                "77",
                "Missing privileges: the message names the capability.",
            ),
        ] {
            roff.control("TP", []);
            roff.text([bold(code)]);
            roff.text([roman(meaning)]);
        }
        roff.control("SH", ["ENVIRONMENT"]);
        roff.control("TP", []);
        roff.text([bold("NO_COLOR")]);
        roff.text([roman(
            "When set and not empty, the live view draws without colours.",
        )]);
        roff.control("SH", ["NOTES"]);
        roff.text([roman(
            "Watching drops (the live view, text and JSON output, record and diagnose) needs \
             root, or the capabilities CAP_BPF and CAP_PERFMON (plus CAP_SYS_ADMIN for \
             --iface together with --netns, and CAP_SYSLOG for function names when \
             kernel.kptr_restrict hides addresses). The package grants none; to let the \
             members of a group run droptrace without sudo, give the binary the \
             capabilities yourself:",
        )]);
        roff.control("PP", []);
        roff.control("nf", []);
        roff.control("RS", ["4"]);
        roff.text([roman("chgrp netadmin /usr/bin/droptrace")]);
        roff.text([roman("chmod 0750 /usr/bin/droptrace")]);
        roff.text([roman(
            "setcap cap_bpf,cap_perfmon,cap_syslog,cap_sys_admin+ep /usr/bin/droptrace",
        )]);
        roff.control("RE", []);
        roff.control("fi", []);
        roff.control("PP", []);
        roff.text([roman(
            "report, replay and export read recordings and need no privileges. \
             Kernel requirements (BPF ring buffers, BTF, tracefs) are in \
             /usr/share/doc/droptrace/docs/usage.md.gz.",
        )]);
    }

    fn see_also(&self) -> Vec<String> {
        let mut pages: Vec<String> = self.sub_pages.iter().map(|p| format!("{p}(1)")).collect();
        pages.extend(["bpftrace(8)".into(), "tc(8)".into(), "nft(8)".into()]);
        pages
    }
}

struct SubExtras;

impl Extras for SubExtras {
    fn middle(&self, _: &mut Roff) {}

    fn see_also(&self) -> Vec<String> {
        vec![format!("{BIN}(1)")]
    }
}

/// One page: clap_mangen's title, name, synopsis, description, options and subcommands,
/// then the extras, the command's examples (its `after_help`) and SEE ALSO.
fn render(cmd: clap::Command, source: &str, date: &str, extras: &dyn Extras) -> Result<Vec<u8>> {
    let examples = cmd.get_after_help().map(|h| h.to_string());
    let man = Man::new(cmd.clone())
        .title(
            cmd.get_display_name()
                .unwrap_or_else(|| cmd.get_name())
                .to_uppercase(),
        )
        .source(source)
        .date(date)
        .manual("droptrace manual");
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut out)?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(&mut out)?;
    }
    let mut roff = Roff::default();
    extras.middle(&mut roff);
    if let Some(text) = examples {
        let Some(body) = text.strip_prefix("Examples:\n") else {
            bail!(
                "the after_help of `{}` is not a list of examples: {text:?}",
                cmd.get_name()
            );
        };
        roff.control("SH", ["EXAMPLES"]);
        roff.control("nf", []);
        for line in body.lines() {
            // The help indents examples by two spaces; the page indents them itself.
            roff.text([roman(line.strip_prefix("  ").unwrap_or(line))]);
        }
        roff.control("fi", []);
    }
    roff.control("SH", ["SEE ALSO"]);
    let see_also = extras.see_also();
    let last = see_also.len().saturating_sub(1);
    for (i, page) in see_also.iter().enumerate() {
        let (name, section) = page.split_once('(').context("a page name has a section")?;
        let sep = if i == last { "" } else { "," };
        roff.text([bold(name), roman(format!("({section}{sep}"))]);
    }
    roff.to_writer(&mut out)?;
    if cmd.get_version().is_some() {
        man.render_version_section(&mut out)?;
    }
    Ok(out)
}

/// `cargo xtask man`: writes the generated files into [`DOC_DIR`] (removing stale ones), or
/// with `check` fails if that would change anything.
pub fn man(check: bool) -> Result<()> {
    let dir = workspace().join(DOC_DIR);
    let files = generate()?;
    if check {
        let drift = drift(&dir, &files)?;
        if !drift.is_empty() {
            bail!(
                "{DOC_DIR}/ is out of date with droptrace/src/cli.rs ({}): run `{REGENERATE}` \
                 and commit {DOC_DIR}/",
                drift.join("; ")
            );
        }
        eprintln!("xtask: {DOC_DIR}/ matches cli.rs ({} files)", files.len());
        return Ok(());
    }
    for stale in on_disk(&dir)?.keys().filter(|p| !files.contains_key(*p)) {
        std::fs::remove_file(dir.join(stale)).with_context(|| format!("removing {stale}"))?;
        eprintln!("xtask: removed {DOC_DIR}/{stale}");
    }
    for (path, bytes) in &files {
        let target = dir.join(path);
        if std::fs::read(&target).ok().as_deref() == Some(bytes) {
            continue;
        }
        std::fs::create_dir_all(target.parent().expect("a file in a folder"))?;
        std::fs::write(&target, bytes).with_context(|| format!("writing {}", target.display()))?;
        eprintln!("xtask: wrote {DOC_DIR}/{path}");
    }
    Ok(())
}

/// How the checked-in files differ from the generated ones (empty: they do not).
pub fn drift(dir: &Path, files: &BTreeMap<String, Vec<u8>>) -> Result<Vec<String>> {
    let disk = on_disk(dir)?;
    let mut drift = Vec::new();
    for (path, bytes) in files {
        match disk.get(path) {
            None => drift.push(format!("{path} is missing")),
            Some(file) if std::fs::read(file)? != *bytes => drift.push(format!("{path} differs")),
            Some(_) => {}
        }
    }
    for path in disk.keys().filter(|p| !files.contains_key(*p)) {
        drift.push(format!("{path} is not generated any more"));
    }
    Ok(drift)
}

/// The files under `man/` and `completions/` of `dir`, by relative path.
fn on_disk(dir: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let mut found = BTreeMap::new();
    for sub in ["man", "completions"] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for entry in entries {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                let name = entry.file_name().to_string_lossy().into_owned();
                found.insert(format!("{sub}/{name}"), entry.path());
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_in_man_pages_and_completions_match_cli_rs() {
        let files = generate().unwrap();
        let drift = drift(&workspace().join(DOC_DIR), &files).unwrap();
        assert!(
            drift.is_empty(),
            "{DOC_DIR}/ is out of date with droptrace/src/cli.rs: run `{REGENERATE}` and \
             commit {DOC_DIR}/\n  {}",
            drift.join("\n  ")
        );
    }

    #[test]
    fn every_subcommand_has_a_page() {
        let pages: Vec<String> = man_pages().unwrap().into_iter().map(|p| p.0).collect();
        let cmd = droptrace::cli::Cli::command();
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let page = format!("{BIN}-{}.1", sub.get_name());
            assert!(pages.contains(&page), "no {page} in {pages:?}");
        }
        assert!(pages.contains(&format!("{BIN}.1")));
        assert!(!pages.iter().any(|p| p.contains("help")), "{pages:?}");
    }
}
