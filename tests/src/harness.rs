//! The root tests' own test runner (`harness = false` in Cargo.toml): libtest's command
//! line and output, plus what libtest lacks, a test that decides while it runs that it
//! cannot run here. Such a test ends in [`skip`] or [`missing`] and shows as
//! `test NAME ... ignored, REASON`, counted as ignored in `test result:` and by
//! `cargo xtask vmtest`, never as passed.
//!
//! Every test here needs root and a droptrace binary; the runner checks both before each
//! test, so a test body starts with its own work. A missing prerequisite that
//! `cargo xtask setup` installs (root, the binary, containerd, chromium...) is a skip only
//! when the tests run by hand: under `cargo xtask test` (which sets `DROPTRACE_BIN`) it
//! fails the test, so CI never passes by doing nothing.
//!
//! Output is captured per test (the process's stdout and stderr, children included, go to
//! a file) and shown for failing tests, or for all with `--show-output`; `--nocapture`
//! lets it through. Tests run one at a time, in the order they are listed: they share the
//! kernel's tracepoint and create namespaces.
use std::{
    any::Any,
    fs::File,
    io::{Read, Seek, SeekFrom, Write},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    time::Instant,
};

/// Why a test did not run: the panic payload of [`skip`] and [`missing`], caught by the
/// runner.
#[derive(Debug)]
pub struct Skip {
    pub reason: String,
    /// A prerequisite `cargo xtask setup` installs: a failure under `cargo xtask test`.
    pub installable: bool,
}

/// Ends the running test as skipped: this kernel or host cannot run it (an old kernel, a
/// guest under emulation, BTF present where the test needs it hidden). Never a failure.
pub fn skip(reason: impl Into<String>) -> ! {
    std::panic::panic_any(Skip {
        reason: reason.into(),
        installable: false,
    })
}

/// Ends the running test for want of something `cargo xtask setup` or `cargo xtask test`
/// provides: skipped when the tests run by hand, a failure under `cargo xtask test`.
pub fn missing(reason: impl Into<String>) -> ! {
    std::panic::panic_any(Skip {
        reason: reason.into(),
        installable: true,
    })
}

/// Whether the tests run under `cargo xtask test` (or by its command line), where a
/// missing prerequisite is a failure.
pub fn strict() -> bool {
    std::env::var_os("DROPTRACE_BIN").is_some()
}

/// One test: its name and its body.
pub type Test = (&'static str, fn());

/// `fn main` of a root test binary: `droptrace_tests::root_tests!(a, b, c);` lists its
/// tests, plain `fn name()` functions, in the order they run.
#[macro_export]
macro_rules! root_tests {
    ($($name:ident),+ $(,)?) => {
        fn main() {
            $crate::harness::main(&[$((stringify!($name), $name as fn())),+]);
        }
    };
}

/// Tests that are one body run with different arguments, each a test of its own name
/// (rstest's cases, as plain functions the runner lists):
///
/// ```text
/// droptrace_tests::cases! { leaves_no_program:
///     sigint_detaches_everything => (libc::SIGINT),
///     sigterm_detaches_everything => (libc::SIGTERM),
/// }
/// ```
#[macro_export]
macro_rules! cases {
    ($body:ident: $($(#[$meta:meta])* $name:ident => ($($arg:expr),* $(,)?)),+ $(,)?) => {
        $(
            $(#[$meta])*
            fn $name() {
                $body($($arg),*);
            }
        )+
    };
}

#[derive(Default)]
struct Args {
    filters: Vec<String>,
    skips: Vec<String>,
    exact: bool,
    list: bool,
    nocapture: bool,
    show_output: bool,
    quiet: bool,
}

fn usage_error(message: &str) -> ! {
    eprintln!("error: {message}");
    eprintln!(
        "usage: TEST-BINARY [FILTER...] [--exact] [--skip FILTER] [--list] [--nocapture] \
         [--show-output] [--test-threads N] [-q]"
    );
    std::process::exit(2)
}

fn parse_args(args: impl Iterator<Item = String>) -> Args {
    let mut a = Args::default();
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| {
            args.next()
                .unwrap_or_else(|| usage_error(&format!("{flag} needs a value")))
        };
        match arg.as_str() {
            "--exact" => a.exact = true,
            "--list" => a.list = true,
            "--nocapture" => a.nocapture = true,
            "--show-output" => a.show_output = true,
            "-q" | "--quiet" => a.quiet = true,
            // Every test is a root test and runs; one at a time, whatever is asked.
            "--ignored" | "--include-ignored" => {}
            "--skip" => {
                let v = value("--skip");
                a.skips.push(v);
            }
            "--test-threads" | "--format" | "--color" | "--logfile" => {
                let _ = value(&arg);
            }
            s if s.starts_with("--test-threads=")
                || s.starts_with("--format=")
                || s.starts_with("--color=") => {}
            s if s.starts_with('-') => usage_error(&format!("unknown option {s}")),
            _ => a.filters.push(arg),
        }
    }
    a
}

impl Args {
    fn selects(&self, name: &str) -> bool {
        let hit = |f: &String| {
            if self.exact {
                name == f
            } else {
                name.contains(f.as_str())
            }
        };
        (self.filters.is_empty() || self.filters.iter().any(hit)) && !self.skips.iter().any(hit)
    }
}

enum Verdict {
    Passed,
    Failed(String),
    Skipped(String),
}

/// Runs the selected tests and exits with libtest's codes: 0 when none failed, 101
/// otherwise.
pub fn main(tests: &[Test]) {
    let args = parse_args(std::env::args().skip(1));
    let selected: Vec<&Test> = tests.iter().filter(|(n, _)| args.selects(n)).collect();
    if args.list {
        for (name, _) in &selected {
            println!("{name}: test");
        }
        return;
    }
    install_panic_hook();
    let filtered_out = tests.len() - selected.len();
    println!(
        "\nrunning {} test{}",
        selected.len(),
        if selected.len() == 1 { "" } else { "s" }
    );
    let started = Instant::now();
    let (mut passed, mut failed, mut ignored) = (Vec::new(), Vec::new(), 0);
    let mut shown = Vec::new();
    for (name, body) in selected {
        let (verdict, output) = run_one(name, *body, !args.nocapture);
        let line = match &verdict {
            Verdict::Passed => "ok".to_owned(),
            Verdict::Failed(_) => "FAILED".to_owned(),
            Verdict::Skipped(why) => format!("ignored, {why}"),
        };
        if !args.quiet || !matches!(verdict, Verdict::Passed) {
            println!("test {name} ... {line}");
        }
        match verdict {
            Verdict::Passed => {
                passed.push(name);
                if args.show_output && !output.is_empty() {
                    shown.push((name, output));
                }
            }
            Verdict::Skipped(_) => {
                ignored += 1;
                if args.show_output && !output.is_empty() {
                    shown.push((name, output));
                }
            }
            Verdict::Failed(why) => failed.push((name, format!("{output}{why}"))),
        }
        let _ = std::io::stdout().flush();
    }
    if !shown.is_empty() {
        println!("\nsuccesses:\n");
        for (name, output) in &shown {
            println!("---- {name} stdout ----\n{output}");
        }
    }
    if !failed.is_empty() {
        println!("\nfailures:\n");
        for (name, output) in &failed {
            println!("---- {name} stdout ----\n{output}");
        }
        println!("\nfailures:");
        for (name, _) in &failed {
            println!("    {name}");
        }
    }
    println!(
        "\ntest result: {}. {} passed; {} failed; {ignored} ignored; 0 measured; \
         {filtered_out} filtered out; finished in {:.2}s\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        passed.len(),
        failed.len(),
        started.elapsed().as_secs_f64()
    );
    let _ = std::io::stdout().flush();
    if !failed.is_empty() {
        std::process::exit(101);
    }
}

/// What every test needs: root and a droptrace binary.
fn prerequisites() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        missing("needs root (run `cargo xtask test` as root)");
    }
    let bin = crate::droptrace_bin();
    if !bin.exists() {
        missing(format!(
            "no droptrace binary at {} (`cargo build --release -p droptrace`, or set DROPTRACE_BIN)",
            bin.display()
        ));
    }
}

/// Runs one test on a thread named after it (as libtest does), its output captured unless
/// `capture` is false.
fn run_one(name: &'static str, body: fn(), capture: bool) -> (Verdict, String) {
    let capture = if capture { Capture::start() } else { None };
    let result = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            prerequisites();
            body();
        })
        .expect("a thread for the test")
        .join();
    let output = capture.map(Capture::finish).unwrap_or_default();
    let verdict = match result {
        Ok(()) => Verdict::Passed,
        Err(payload) => judge(payload, strict()),
    };
    (verdict, output)
}

fn judge(payload: Box<dyn Any + Send>, strict: bool) -> Verdict {
    match payload.downcast::<Skip>() {
        Ok(skip) if skip.installable && strict => Verdict::Failed(format!(
            "{} (under `cargo xtask test` a missing prerequisite is a failure, not a skip)\n",
            skip.reason
        )),
        // One line: `test NAME ... ignored, REASON` is what runners read.
        Ok(skip) => Verdict::Skipped(skip.reason.split_whitespace().collect::<Vec<_>>().join(" ")),
        // The panic hook has written the message and location into the output.
        Err(_) => Verdict::Failed(String::new()),
    }
}

/// The default panic message for failures; nothing for a skip, which is no failure.
fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !info.payload().is::<Skip>() {
            default(info);
        }
    }));
}

/// The process's stdout and stderr redirected into a temporary file while a test runs
/// (so the output of the processes it starts is captured too), restored after.
struct Capture {
    file: File,
    saved_out: OwnedFd,
    saved_err: OwnedFd,
}

impl Capture {
    fn start() -> Option<Capture> {
        let _ = std::io::stdout().flush();
        let file = tempfile()?;
        let saved_out = dup(1)?;
        let saved_err = dup(2)?;
        // SAFETY: plain fds owned by this process; dup2 replaces 1 and 2 atomically.
        unsafe {
            libc::dup2(file.as_raw_fd(), 1);
            libc::dup2(file.as_raw_fd(), 2);
        }
        Some(Capture {
            file,
            saved_out,
            saved_err,
        })
    }

    fn finish(mut self) -> String {
        let _ = std::io::stdout().flush();
        // SAFETY: the saved fds are open and ours; dup2 puts them back on 1 and 2.
        unsafe {
            libc::dup2(self.saved_out.as_raw_fd(), 1);
            libc::dup2(self.saved_err.as_raw_fd(), 2);
        }
        let mut bytes = Vec::new();
        let _ = self.file.seek(SeekFrom::Start(0));
        let _ = self.file.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

fn dup(fd: i32) -> Option<OwnedFd> {
    // SAFETY: dup has no memory preconditions; a new fd is owned by the result.
    let new = unsafe { libc::dup(fd) };
    // SAFETY: `new` is a fresh fd nothing else owns.
    (new >= 0).then(|| unsafe { OwnedFd::from_raw_fd(new) })
}

/// An unnamed file in the temporary directory, gone when closed.
fn tempfile() -> Option<File> {
    let dir =
        std::ffi::CString::new(std::env::temp_dir().into_os_string().into_encoded_bytes()).ok()?;
    // SAFETY: a valid NUL-terminated path; O_TMPFILE makes an unnamed file.
    let fd = unsafe { libc::open(dir.as_ptr(), libc::O_TMPFILE | libc::O_RDWR, 0o600) };
    // SAFETY: `fd` is a fresh fd nothing else owns.
    (fd >= 0).then(|| File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Args {
        parse_args(line.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn filters_select_as_libtest_does() {
        let a = args("--test-threads=1 --show-output qdisc sigint");
        assert!(a.show_output);
        assert!(a.selects("qdisc_drops_match_tc_dropped"));
        assert!(a.selects("sigint_detaches_everything"));
        assert!(!a.selects("sigterm_detaches_everything"));
        let exact = args("--exact qdisc --test-threads 1");
        assert!(!exact.selects("qdisc_drops_match_tc_dropped"));
        assert!(exact.selects("qdisc"));
        let skipping = args("--skip sigint");
        assert!(skipping.selects("qdisc"));
        assert!(!skipping.selects("sigint_detaches_everything"));
    }

    #[test]
    fn a_skip_is_a_skip_and_a_panic_a_failure() {
        // Payloads as the runner receives them from a test's thread.
        let reason = "tcx needs Linux 6.6".to_owned();
        let skipped = judge(
            Box::new(Skip {
                reason: reason.clone(),
                installable: false,
            }),
            true,
        );
        assert!(matches!(skipped, Verdict::Skipped(r) if r == reason));
        // A reason of several lines (a tool's error) is one line in the verdict.
        let multiline = judge(Box::new(Skip {
            reason: "no gact (Error: TC classifier not found.\nWe have an error talking to the kernel\n)".to_owned(),
            installable: false,
        }), false);
        assert!(matches!(
            multiline,
            Verdict::Skipped(r) if r == "no gact (Error: TC classifier not found. We have an error talking to the kernel )"
        ));
        assert!(matches!(judge(Box::new("boom"), false), Verdict::Failed(_)));
        // Something `cargo xtask setup` installs is missing: a skip by hand, a failure
        // under `cargo xtask test`.
        let containerd = || {
            Box::new(Skip {
                reason: "[\"containerd\"] not installed".to_owned(),
                installable: true,
            })
        };
        assert!(matches!(judge(containerd(), false), Verdict::Skipped(_)));
        assert!(
            matches!(judge(containerd(), true), Verdict::Failed(why) if why.contains("not installed"))
        );
    }
}
