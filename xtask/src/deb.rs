//! `cargo xtask deb`: `target/debian/droptrace_<version>_<arch>.deb`, laid out by hand and
//! built with `dpkg-deb`: the stripped release binary, the man pages and completions of
//! `droptrace/doc/` (checked against cli.rs first), the README, a DEP-5 copyright made from
//! the workspace license, the Debian changelog (`deploy/debian/changelog`), and the systemd
//! unit for `droptrace serve` when `deploy/systemd/droptrace.service` exists. Dependencies
//! come from the binary (`dpkg-shlibdeps`). There are no maintainer scripts: nothing grants
//! capabilities or enables the unit behind the operator's back.
//!
//! `--check` (run by `cargo xtask test`) then runs lintian (no error allowed), installs the
//! package into a scratch root with `dpkg --root`, runs the installed binary, reads every man
//! page with `man -l`, tries the completions, and removes the package again.
use std::{
    collections::BTreeMap,
    fs::{self, File, FileTimes},
    io::Write,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant, SystemTime},
};

use anyhow::{bail, ensure, Context, Result};
use clap::CommandFactory;

use crate::{
    cargo,
    docs::{self, CHANGELOG},
    output, run, workspace,
};

const PACKAGE: &str = "droptrace";
/// The unit for `droptrace serve`, packaged when present (installed, not enabled).
const UNIT: &str = "deploy/systemd/droptrace.service";
const OUT_DIR: &str = "target/debian";
/// Where units of packages go on Debian 12 (lintian's expectation there).
const UNIT_DIR: &str = "lib/systemd/system";
/// Documents bigger than this are gzipped, as dh_compress does.
const COMPRESS_ABOVE: usize = 4096;
/// One-line description (Debian's synopsis: lower case, no article, no full stop).
const SYNOPSIS: &str = "find where and why Linux drops packets, with eBPF";
const SECTION: &str = "net";

#[derive(clap::Args)]
pub struct DebArgs {
    /// Also check the package: lintian, install into a scratch root, run it there.
    #[arg(long)]
    check: bool,
}

/// `cargo xtask deb --check`, for `cargo xtask test`.
pub fn build_and_check() -> Result<()> {
    deb(&DebArgs { check: true })
}

pub fn deb(args: &DebArgs) -> Result<()> {
    let started = Instant::now();
    let deb = build()?;
    let size = fs::metadata(&deb)?.len();
    eprintln!(
        "xtask: built {} ({} KiB) in {:.1} s",
        deb.strip_prefix(workspace()).unwrap_or(&deb).display(),
        size.div_ceil(1024),
        started.elapsed().as_secs_f64()
    );
    if args.check {
        let started = Instant::now();
        check(&deb)?;
        eprintln!(
            "xtask: the package checks out (lintian, dpkg --root install, run, man, completions, \
             removal) in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// The newest entry of the Debian changelog.
struct ChangelogEntry {
    version: String,
    maintainer: String,
    timestamp: u64,
}

fn changelog_entry(path: &Path) -> Result<ChangelogEntry> {
    let field = |name: &str| {
        output(
            Command::new("dpkg-parsechangelog")
                .arg("-l")
                .arg(path)
                .args(["-S", name]),
        )
    };
    Ok(ChangelogEntry {
        version: field("Version")?,
        maintainer: field("Maintainer")?,
        timestamp: field("Timestamp")?
            .parse()
            .context("the changelog's timestamp")?,
    })
}

/// When the package was made (its changelog's newest entry): the time every file of the
/// package, and of the image made from it, carries.
pub fn source_date_epoch() -> Result<u64> {
    Ok(changelog_entry(&workspace().join(CHANGELOG))?.timestamp)
}

/// Builds the package; returns its path.
pub fn build() -> Result<PathBuf> {
    let ws = workspace();
    let docs = docs::generate()?;
    let drift = docs::drift(&ws.join(docs::DOC_DIR), &docs)?;
    if !drift.is_empty() {
        bail!(
            "{}/ is out of date with droptrace/src/cli.rs ({}): run `{}` first",
            docs::DOC_DIR,
            drift.join("; "),
            docs::REGENERATE
        );
    }
    // Quick when `cargo xtask test` has just built it.
    run(cargo()
        .args(["build", "--locked", "--release", "-p", PACKAGE])
        .current_dir(&ws))?;

    let cli = droptrace::cli::Cli::command();
    let version = cli
        .get_version()
        .context("droptrace has a version")?
        .to_owned();
    let entry = changelog_entry(&ws.join(CHANGELOG))?;
    // The crate's version, maybe with a Debian revision (0.1.0-2).
    let upstream = entry.version.split('-').next().unwrap_or_default();
    ensure!(
        upstream == version,
        "{CHANGELOG} is at {} but droptrace is {version}: add an entry for {version} at the top \
         (`dch -v {version}` from devscripts, or by hand)",
        entry.version
    );
    let arch = output(Command::new("dpkg").arg("--print-architecture"))?;

    let out_dir = ws.join(OUT_DIR);
    let root = out_dir.join(format!("{PACKAGE}_{}_{arch}", entry.version));
    if root.exists() {
        fs::remove_dir_all(&root).with_context(|| format!("removing {}", root.display()))?;
    }
    let bin = lay_out(&root, &ws, &docs, &entry)?;

    let md5sums = md5sums(&root)?;
    let installed_size = installed_size(&root)?;
    let depends = shlib_depends(&out_dir, &bin)?;
    let control = control(&ControlFields {
        version: &entry.version,
        arch: &arch,
        maintainer: &entry.maintainer,
        installed_size,
        depends: &depends,
        cli: &cli,
    });
    put(&root, "DEBIAN/control", control.as_bytes())?;
    put(&root, "DEBIAN/md5sums", md5sums.as_bytes())?;

    // Same bytes from the same sources: every time is the changelog's, owners are root.
    set_times(
        &root,
        SystemTime::UNIX_EPOCH + Duration::from_secs(entry.timestamp),
    )?;
    let deb = out_dir.join(format!("{PACKAGE}_{}_{arch}.deb", entry.version));
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zxz", "--build"])
        .arg(&root)
        .arg(&deb)
        .env("SOURCE_DATE_EPOCH", entry.timestamp.to_string()))?;
    Ok(deb)
}

/// Puts the package's files under `root`; returns the path of the binary there.
fn lay_out(
    root: &Path,
    ws: &Path,
    docs: &BTreeMap<String, Vec<u8>>,
    entry: &ChangelogEntry,
) -> Result<PathBuf> {
    let doc = format!("usr/share/doc/{PACKAGE}");

    // The binary, stripped as dh_strip does (lintian rejects debug info in /usr/bin).
    let bin = root.join("usr/bin").join(PACKAGE);
    fs::create_dir_all(bin.parent().expect("in a folder"))?;
    run(Command::new("strip")
        .args(["--remove-section=.comment", "--remove-section=.note", "-o"])
        .arg(&bin)
        .arg(ws.join("target/release").join(PACKAGE)))?;
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755))?;

    for (path, bytes) in docs {
        if let Some(page) = path.strip_prefix("man/") {
            put(
                root,
                &format!("usr/share/man/man1/{page}.gz"),
                &gzip(bytes)?,
            )?;
        } else if let Some(file) = path.strip_prefix("completions/") {
            put(root, &completion_place(file)?, bytes)?;
        }
    }
    // The README and the pages it links to, where its links lead (docs/NAME.md).
    let mut pages = vec!["README.md".to_string()];
    let mut docs_pages: Vec<String> = fs::read_dir(ws.join("docs"))
        .context("reading docs/")?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    docs_pages.sort();
    pages.extend(docs_pages);
    for page in &pages {
        let text = fs::read(ws.join(page)).with_context(|| format!("reading {page}"))?;
        put_doc(root, &doc, page, &text)?;
    }
    put_doc(root, &doc, "README.Debian", readme_debian().as_bytes())?;
    put(
        root,
        &format!("{doc}/copyright"),
        copyright(entry)?.as_bytes(),
    )?;
    let changelog = fs::read(ws.join(CHANGELOG))?;
    // A native package (no Debian revision) has changelog.gz, others changelog.Debian.gz.
    let changelog_name = if entry.version.contains('-') {
        "changelog.Debian.gz"
    } else {
        "changelog.gz"
    };
    put(root, &format!("{doc}/{changelog_name}"), &gzip(&changelog)?)?;
    if let Some(unit) = unit(ws)? {
        put(
            root,
            &format!("{UNIT_DIR}/{PACKAGE}.service"),
            unit.as_bytes(),
        )?;
    }
    Ok(bin)
}

/// Where Debian's shells look for completions of installed packages.
fn completion_place(file: &str) -> Result<String> {
    Ok(match file {
        "droptrace.bash" => format!("usr/share/bash-completion/completions/{PACKAGE}"),
        "_droptrace" => "usr/share/zsh/vendor-completions/_droptrace".to_owned(),
        "droptrace.fish" => "usr/share/fish/vendor_completions.d/droptrace.fish".to_owned(),
        other => bail!("no place for the completion file {other}"),
    })
}

/// Writes a file of the package (mode 0644), making its folders.
fn put(root: &Path, path: &str, bytes: &[u8]) -> Result<()> {
    let target = root.join(path);
    fs::create_dir_all(target.parent().expect("in a folder"))?;
    fs::write(&target, bytes).with_context(|| format!("writing {}", target.display()))?;
    fs::set_permissions(&target, fs::Permissions::from_mode(0o644))?;
    Ok(())
}

/// A document in /usr/share/doc, gzipped when big.
fn put_doc(root: &Path, doc: &str, name: &str, bytes: &[u8]) -> Result<()> {
    if bytes.len() > COMPRESS_ABOVE {
        put(root, &format!("{doc}/{name}.gz"), &gzip(bytes)?)
    } else {
        put(root, &format!("{doc}/{name}"), bytes)
    }
}

/// `gzip -9n`: best compression, no name or time in the header (so the bytes repeat).
fn gzip(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut child = Command::new("gzip")
        .args(["-9n", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting gzip")?;
    let mut stdin = child.stdin.take().expect("piped");
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output()?;
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("gzip writer panicked"))??;
    ensure!(out.status.success(), "gzip failed: {}", out.status);
    Ok(out.stdout)
}

/// The unit file, if there is one, with its Exec lines pointing at the packaged binary.
fn unit(ws: &Path) -> Result<Option<String>> {
    match fs::read_to_string(ws.join(UNIT)) {
        Ok(text) => Ok(Some(packaged_unit(&text))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {UNIT}")),
    }
}

/// The unit may run droptrace from another place (/usr/local/bin for a hand install); the
/// package has it in /usr/bin. Other lines stay as they are.
fn packaged_unit(text: &str) -> String {
    let installed = format!("/usr/bin/{PACKAGE}");
    let mut out = String::new();
    for line in text.lines() {
        let rewritten = line
            .split_once('=')
            .filter(|(key, _)| key.trim().starts_with("Exec"))
            .and_then(|(key, value)| {
                let value = value.trim_start();
                // Prefixes such as `-` or `+` come before the program.
                let program_at = value.find('/')?;
                let (prefix, rest) = value.split_at(program_at);
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                let (program, args) = rest.split_at(end);
                (program.ends_with(&format!("/{PACKAGE}"))
                    && program != installed
                    && prefix.chars().all(|c| "-@:+!".contains(c)))
                .then(|| format!("{key}={prefix}{installed}{args}"))
            });
        out.push_str(rewritten.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

fn readme_debian() -> String {
    format!(
        "droptrace for Debian
--------------------

Watching drops needs root, or the capabilities CAP_BPF and CAP_PERFMON (plus
CAP_SYS_ADMIN for --iface together with --netns). This package grants none of
them. To let the members of one group run droptrace without sudo:

  sudo chgrp netadmin /usr/bin/droptrace
  sudo chmod 0750 /usr/bin/droptrace
  sudo setcap cap_bpf,cap_perfmon,cap_syslog,cap_sys_admin+ep /usr/bin/droptrace

An upgrade replaces the binary and so drops the capabilities: run setcap again.
`droptrace report`, `replay` and `export` read recordings and need nothing.

When the package has /{UNIT_DIR}/droptrace.service (droptrace serve), it is
installed disabled; start it with `sudo systemctl enable --now droptrace`.

man droptrace and `droptrace --help` document the options; README.md.gz the
kernel's requirements and the rest.
"
    )
}

/// A machine-readable copyright file (DEP-5) from the workspace license.
fn copyright(entry: &ChangelogEntry) -> Result<String> {
    let spdx = env!("CARGO_PKG_LICENSE");
    let mut names = Vec::new();
    let mut texts = Vec::new();
    for id in spdx.split(" OR ") {
        let (name, text) = match id.trim() {
            "MIT" => ("Expat", EXPAT),
            "GPL-2.0" | "GPL-2.0-only" => ("GPL-2", GPL_2),
            other => {
                bail!("no DEP-5 name known for the license {other} (of `{spdx}`): add it here")
            }
        };
        names.push(name);
        texts.push(format!("License: {name}\n{text}"));
    }
    // The copyright runs up to the release: the year of the newest changelog entry.
    let date = docs::release_date()?;
    let year = date.split('-').next().unwrap_or_default();
    Ok(format!(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: droptrace
Upstream-Contact: {maintainer}
Comment: The binary links statically the Rust crates it is built from (see Cargo.lock of
 the source), each under its own free license, mostly MIT or Apache-2.0.

Files: *
Copyright: {year} The droptrace developers
License: {license}

{texts}",
        maintainer = entry.maintainer,
        license = names.join(" or "),
        texts = texts.join("\n\n"),
    ))
}

const EXPAT: &str = " Permission is hereby granted, free of charge, to any person obtaining a copy
 of this software and associated documentation files (the \"Software\"), to deal
 in the Software without restriction, including without limitation the rights
 to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
 copies of the Software, and to permit persons to whom the Software is
 furnished to do so, subject to the following conditions:
 .
 The above copyright notice and this permission notice shall be included in
 all copies or substantial portions of the Software.
 .
 THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
 IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
 FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
 AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
 LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
 OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
 SOFTWARE.";

const GPL_2: &str = " This program is free software; you can redistribute it and/or modify it
 under the terms of the GNU General Public License, version 2, as published by
 the Free Software Foundation.
 .
 This program is distributed in the hope that it will be useful, but WITHOUT
 ANY WARRANTY; without even the implied warranty of MERCHANTABILITY or FITNESS
 FOR A PARTICULAR PURPOSE. See the GNU General Public License for more details.
 .
 On Debian systems, the complete text of the GNU General Public License
 version 2 can be found in /usr/share/common-licenses/GPL-2.";

/// `md5sum` of every file, by path relative to the package root (DEBIAN/md5sums).
fn md5sums(root: &Path) -> Result<String> {
    let files: Vec<String> = walk(root)?
        .into_iter()
        .filter(|(_, is_dir)| !is_dir)
        .map(|(path, _)| path)
        .filter(|p| !p.starts_with("DEBIAN/"))
        .collect();
    let mut cmd = Command::new("md5sum");
    cmd.arg("--").args(&files).current_dir(root);
    Ok(output(&mut cmd)? + "\n")
}

/// Installed-Size as dpkg-gencontrol counts it: KiB of each file rounded up, 1 per folder.
fn installed_size(root: &Path) -> Result<u64> {
    let mut kib = 0;
    for (path, is_dir) in walk(root)? {
        kib += if is_dir {
            1
        } else {
            fs::metadata(root.join(path))?.len().div_ceil(1024)
        };
    }
    Ok(kib)
}

/// Every path under `root` (relative, sorted), with whether it is a folder.
fn walk(root: &Path) -> Result<Vec<(String, bool)>> {
    fn visit(root: &Path, dir: &Path, out: &mut Vec<(String, bool)>) -> Result<()> {
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .expect("under the root")
                .to_string_lossy()
                .into_owned();
            let is_dir = entry.file_type()?.is_dir();
            out.push((rel, is_dir));
            if is_dir {
                visit(root, &path, out)?;
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    visit(root, root, &mut out)?;
    out.sort();
    Ok(out)
}

/// Sets the modification time of everything under `root`, `root` included.
fn set_times(root: &Path, time: SystemTime) -> Result<()> {
    let times = FileTimes::new().set_modified(time).set_accessed(time);
    for path in walk(root)?
        .into_iter()
        .map(|(p, _)| root.join(p))
        .chain([root.to_path_buf()])
    {
        File::open(&path)
            .and_then(|f| f.set_times(times))
            .with_context(|| format!("setting the time of {}", path.display()))?;
    }
    Ok(())
}

/// The shared libraries the binary needs, as Depends (`dpkg-shlibdeps`).
fn shlib_depends(out_dir: &Path, bin: &Path) -> Result<String> {
    // dpkg-shlibdeps reads debian/control of the folder it runs in: give it a minimal one.
    let work = out_dir.join("shlibdeps");
    fs::create_dir_all(work.join("debian"))?;
    fs::write(
        work.join("debian/control"),
        format!("Source: {PACKAGE}\n\nPackage: {PACKAGE}\nArchitecture: any\n"),
    )?;
    let mut cmd = Command::new("dpkg-shlibdeps");
    cmd.arg("-O")
        .arg(format!("-e{}", bin.display()))
        .current_dir(&work);
    let out = output(&mut cmd)?;
    let depends = out
        .lines()
        .find_map(|l| l.strip_prefix("shlibs:Depends="))
        .with_context(|| format!("no shlibs:Depends in dpkg-shlibdeps' output: {out}"))?;
    Ok(depends.trim().to_owned())
}

struct ControlFields<'a> {
    version: &'a str,
    arch: &'a str,
    maintainer: &'a str,
    installed_size: u64,
    depends: &'a str,
    cli: &'a clap::Command,
}

fn control(f: &ControlFields) -> String {
    // The extended description: cli.rs's long help after its first paragraph, and the
    // subcommands.
    let long = f
        .cli
        .get_long_about()
        .map(|s| s.to_string())
        .unwrap_or_default();
    let mut paragraphs: Vec<String> = long.split("\n\n").skip(1).map(str::to_owned).collect();
    let subcommands: Vec<&str> = f
        .cli
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(clap::Command::get_name)
        .collect();
    paragraphs.push(format!(
        "Besides the live view it has the subcommands {}; man droptrace tells more.",
        subcommands.join(", ")
    ));
    let description: Vec<String> = paragraphs
        .iter()
        .map(|p| {
            wrap(p, 72)
                .iter()
                .map(|l| format!(" {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect();
    format!(
        "Package: {PACKAGE}
Version: {version}
Architecture: {arch}
Maintainer: {maintainer}
Installed-Size: {size}
Depends: {depends}
Section: {SECTION}
Priority: optional
Description: {SYNOPSIS}
{description}
",
        version = f.version,
        arch = f.arch,
        maintainer = f.maintainer,
        size = f.installed_size,
        depends = f.depends,
        description = description.join("\n .\n"),
    )
}

/// Words into lines of at most `width` characters (longer words stay whole).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// lintian, the package's contents, an install into a scratch root, the installed binary,
/// man pages and completions, and the removal.
fn check(deb: &Path) -> Result<()> {
    lintian(deb)?;
    let info = output(Command::new("dpkg-deb").arg("-I").arg(deb))?;
    eprintln!("{info}");
    ensure!(
        info.lines()
            .any(|l| l.trim_start().starts_with("Depends:") && l.contains("libc6")),
        "the package's Depends does not name libc6:\n{info}"
    );
    let listing = output(Command::new("dpkg-deb").arg("-c").arg(deb))?;
    let contents = contents(&listing)?;
    let mut expected: Vec<String> = vec![
        format!("./usr/bin/{PACKAGE}"),
        format!("./usr/share/doc/{PACKAGE}/copyright"),
        format!("./usr/share/doc/{PACKAGE}/README.md.gz"),
        format!("./usr/share/doc/{PACKAGE}/README.Debian"),
        format!("./usr/share/bash-completion/completions/{PACKAGE}"),
        format!("./usr/share/zsh/vendor-completions/_{PACKAGE}"),
        format!("./usr/share/fish/vendor_completions.d/{PACKAGE}.fish"),
    ];
    let pages: Vec<String> = docs::man_pages()?
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    expected.extend(pages.iter().map(|p| format!("./usr/share/man/man1/{p}.gz")));
    if workspace().join(UNIT).exists() {
        expected.push(format!("./{UNIT_DIR}/{PACKAGE}.service"));
    }
    for path in &expected {
        ensure!(
            contents.contains_key(path),
            "the package has no {path}:\n{listing}"
        );
    }
    for (path, mode) in &contents {
        let want = if path == &format!("./usr/bin/{PACKAGE}") || mode.starts_with('d') {
            "rwxr-xr-x"
        } else {
            "rw-r--r--"
        };
        ensure!(mode[1..] == *want, "{path} has mode {mode}, not {want}");
    }
    eprintln!(
        "xtask: the package holds the {} paths expected ({} in all)",
        expected.len(),
        contents.len()
    );

    let scratch = ScratchRoot::new(&workspace().join(OUT_DIR).join("scratch-root"), &info)?;
    scratch.dpkg(&["--install", deb.to_str().context("a UTF-8 path")?])?;
    let root = &scratch.0;
    let bin = root.join("usr/bin").join(PACKAGE);
    let version = droptrace::cli::Cli::command()
        .get_version()
        .unwrap_or_default()
        .to_owned();
    let shown = output(Command::new(&bin).arg("--version"))?;
    ensure!(
        shown == format!("{PACKAGE} {version}"),
        "the installed droptrace --version says `{shown}`, not `{PACKAGE} {version}`"
    );
    let help = output(Command::new(&bin).arg("--help"))?;
    ensure!(
        help.contains("Usage: droptrace"),
        "droptrace --help says:\n{help}"
    );
    for sub in droptrace::cli::Cli::command().get_subcommands() {
        output(Command::new(&bin).args([sub.get_name(), "--help"]))?;
    }
    eprintln!("xtask: the installed binary runs: `{shown}`, --help of it and every subcommand");

    for page in &pages {
        man_page(&root.join("usr/share/man/man1").join(format!("{page}.gz")))?;
    }
    eprintln!(
        "xtask: man -l reads all {} pages without a warning",
        pages.len()
    );
    completions(root)?;

    scratch.dpkg(&["--purge", PACKAGE])?;
    let left: Vec<String> = walk(root)?
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| !p.starts_with("var"))
        .collect();
    ensure!(left.is_empty(), "removing the package left {left:?}");
    eprintln!("xtask: dpkg --purge removed every file");
    Ok(())
}

/// Runs lintian; any error fails, warnings are shown.
fn lintian(deb: &Path) -> Result<()> {
    let out = Command::new("lintian")
        .args(["--fail-on", "error", "--tag-display-limit", "0"])
        .arg(deb)
        .output()
        .context("running lintian")?;
    let report = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors = report.lines().filter(|l| l.starts_with("E:")).count();
    let warnings = report.lines().filter(|l| l.starts_with("W:")).count();
    eprint!("{report}");
    ensure!(
        out.status.success() && errors == 0,
        "lintian found {errors} errors ({}):\n{report}{stderr}",
        out.status
    );
    eprintln!("xtask: lintian: 0 errors, {warnings} warnings");
    Ok(())
}

/// `dpkg-deb -c` as path to mode (`-rwxr-xr-x`); every entry must be root's.
fn contents(listing: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for line in listing.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        ensure!(fields.len() >= 6, "a line of dpkg-deb -c: {line}");
        ensure!(fields[1] == "root/root", "not root's: {line}");
        let path = fields[5].trim_end_matches('/');
        out.insert(path.to_owned(), fields[0].to_owned());
    }
    Ok(out)
}

/// A dpkg database and instdir of its own, removed when dropped.
struct ScratchRoot(PathBuf);

impl ScratchRoot {
    /// An empty root whose dpkg database knows the packages the package depends on, as this
    /// machine has them installed: dpkg then checks that Depends is met, without
    /// `--force-depends`.
    fn new(path: &Path, info: &str) -> Result<Self> {
        if path.exists() {
            fs::remove_dir_all(path)?;
        }
        let admin = path.join("var/lib/dpkg");
        for dir in ["info", "updates", "triggers"] {
            fs::create_dir_all(admin.join(dir))?;
        }
        let depends = info
            .lines()
            .find_map(|l| l.trim_start().strip_prefix("Depends:"))
            .unwrap_or_default();
        let names: Vec<&str> = depends
            .split([',', '|'])
            .filter_map(|d| d.split_whitespace().next())
            .collect();
        let status = if names.is_empty() {
            String::new()
        } else {
            output(Command::new("dpkg-query").arg("--status").args(&names))? + "\n"
        };
        fs::write(admin.join("status"), status)?;
        // Their file lists, empty (dpkg warns without one); multi-arch ones go by name:arch.
        let arch = output(Command::new("dpkg").arg("--print-architecture"))?;
        for name in &names {
            for list in [format!("{name}.list"), format!("{name}:{arch}.list")] {
                fs::write(admin.join("info").join(list), "")?;
            }
        }
        Ok(ScratchRoot(path.to_path_buf()))
    }

    fn dpkg(&self, args: &[&str]) -> Result<()> {
        run(Command::new("dpkg")
            .arg(format!("--root={}", self.0.display()))
            .arg("--log=/dev/null")
            .args(args))
    }
}

impl Drop for ScratchRoot {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// `man -l` formats the page without a warning from groff.
fn man_page(page: &Path) -> Result<()> {
    let out = Command::new("man")
        .args(["--warnings", "-l"])
        .arg(page)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "80")
        .env("LC_ALL", "C.UTF-8")
        .output()
        .context("running man")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let warnings = String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.success() && warnings.trim().is_empty() && text.contains("SYNOPSIS"),
        "man -l {} ({}):\n{warnings}\n{text}",
        page.display(),
        out.status
    );
    Ok(())
}

/// The installed completions complete `droptrace rec` to `record` (bash, fish) and parse
/// (zsh).
fn completions(root: &Path) -> Result<()> {
    let bash = root
        .join("usr/share/bash-completion/completions")
        .join(PACKAGE);
    let script = format!(
        "source '{}' && COMP_WORDS=(droptrace rec) && COMP_CWORD=1 && \
         _droptrace droptrace rec droptrace && printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        bash.display()
    );
    let got = output(Command::new("bash").args(["--norc", "-c", &script]))?;
    ensure!(
        got.lines().any(|l| l == "record"),
        "bash completes `droptrace rec` to {got:?}"
    );
    let fish = root.join("usr/share/fish/vendor_completions.d/droptrace.fish");
    let script = format!("source '{}'; complete -C 'droptrace rec'", fish.display());
    let got = output(Command::new("fish").args(["--no-config", "-c", &script]))?;
    ensure!(
        got.lines().any(|l| l.split('\t').next() == Some("record")),
        "fish completes `droptrace rec` to {got:?}"
    );
    let zsh = root.join("usr/share/zsh/vendor-completions/_droptrace");
    run(Command::new("zsh").arg("-n").arg(&zsh))?;
    eprintln!("xtask: completions: bash and fish complete `droptrace rec` to `record`; zsh parses");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unit_runs_the_packaged_binary() {
        let unit = "[Service]\nExecStart=/usr/local/bin/droptrace serve --listen 127.0.0.1:9977\n\
                    ExecStartPre=-/usr/local/bin/droptrace --version\nEnvironment=A=B\n";
        assert_eq!(
            packaged_unit(unit),
            "[Service]\nExecStart=/usr/bin/droptrace serve --listen 127.0.0.1:9977\n\
             ExecStartPre=-/usr/bin/droptrace --version\nEnvironment=A=B\n"
        );
        assert_eq!(
            packaged_unit("ExecStart=-/opt/droptrace/bin/droptrace serve\n"),
            "ExecStart=-/usr/bin/droptrace serve\n"
        );
        let untouched = "ExecStart=/usr/bin/droptrace serve\nExecStart=/bin/sh -c x\n";
        assert_eq!(packaged_unit(untouched), untouched);
    }

    #[test]
    fn descriptions_wrap_at_word_boundaries() {
        assert_eq!(wrap("aa bb cc", 5), ["aa bb", "cc"]);
        assert_eq!(
            wrap("averyveryverylongword x", 5),
            ["averyveryverylongword", "x"]
        );
        assert!(wrap("", 5).is_empty());
    }
}
