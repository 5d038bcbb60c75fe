//! Bad input and missing privileges: a clear message and a non-zero exit, never a panic.
use std::process::{Command, Output};

use droptrace_tests::*;

fn droptrace(args: &[&str]) -> Output {
    Command::new(droptrace_bin())
        .args(args)
        .output()
        .expect("run droptrace")
}

fn assert_clean_failure(out: &Output, code: i32, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert!(stderr.contains(needle), "expected `{needle}` in: {stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "nothing on stdout on failure");
}

#[test]
fn without_capabilities_it_says_which_and_how() {
    if !can_run("without_capabilities_it_says_which_and_how") {
        return;
    }
    // A copy nobody can reach (the build tree may sit under /root, mode 0700).
    let dir = std::env::temp_dir().join(format!("droptrace-nobody-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = dir.join("droptrace");
    std::fs::copy(droptrace_bin(), &bin).unwrap();
    for p in [&dir, &bin] {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let out = Command::new("setpriv")
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "--inh-caps=-all",
            "--",
        ])
        .arg(&bin)
        .args(["--duration", "1"])
        .output()
        .expect("setpriv");
    let _ = std::fs::remove_dir_all(&dir);
    assert_clean_failure(&out, 77, "CAP_BPF and CAP_PERFMON");
    assert!(String::from_utf8_lossy(&out.stderr).contains("setcap"));
}

#[test]
fn bad_flags_are_usage_errors() {
    if !can_run("bad_flags_are_usage_errors") {
        return;
    }
    assert_clean_failure(&droptrace(&["--port", "99999"]), 2, "--port");
    assert_clean_failure(&droptrace(&["--format", "xml"]), 2, "--format");
    assert_clean_failure(&droptrace(&["--no-such-flag"]), 2, "--no-such-flag");
    assert_clean_failure(
        &droptrace(&["--ring-buffer-size", "1000"]),
        2,
        "power of two",
    );
}

#[test]
fn bad_filter_values_name_the_problem() {
    if !can_run("bad_filter_values_name_the_problem") {
        return;
    }
    let out = droptrace(&["--reason", "NETFILTER_DRO", "--duration", "1"]);
    assert_clean_failure(
        &out,
        1,
        "unknown drop reason `NETFILTER_DRO` (did you mean NETFILTER_DROP?)",
    );
    assert_clean_failure(
        &droptrace(&["--proto", "tcpx", "--duration", "1"]),
        1,
        "unknown protocol `tcpx`",
    );
    assert_clean_failure(
        &droptrace(&["--netns", "/run/netns/does-not-exist", "--duration", "1"]),
        1,
        "/run/netns/does-not-exist",
    );
    assert_clean_failure(
        &droptrace(&["--iface", "nope0", "--duration", "1"]),
        1,
        "no network interface named `nope0`",
    );
}
