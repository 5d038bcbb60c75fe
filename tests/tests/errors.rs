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

fn without_capabilities_it_says_which_and_how() {
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

fn bad_flags_are_usage_errors() {
    assert_clean_failure(&droptrace(&["--port", "99999"]), 2, "--port");
    assert_clean_failure(&droptrace(&["--format", "xml"]), 2, "--format");
    assert_clean_failure(&droptrace(&["--no-such-flag"]), 2, "--no-such-flag");
    assert_clean_failure(
        &droptrace(&["--ring-buffer-size", "1000"]),
        2,
        "power of two",
    );
}

fn bad_filter_values_name_the_problem() {
    let out = droptrace(&["--reason", "NETFILTER_DRO", "--duration", "1"]);
    // Bad values of flags are usage errors, as clap's own are (2).
    assert_clean_failure(
        &out,
        2,
        "unknown drop reason `NETFILTER_DRO` (did you mean NETFILTER_DROP?)",
    );
    assert_clean_failure(
        &droptrace(&["--proto", "tcpx", "--duration", "1"]),
        2,
        "unknown protocol `tcpx` (did you mean tcp?)",
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

fn bad_recordings_are_named_with_the_problem() {
    let dir = std::env::temp_dir().join(format!("droptrace-badrec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    std::fs::write(
        path("garbage"),
        b"GIF89a and then some bytes that are not a recording",
    )
    .unwrap();
    std::fs::write(path("magic-only"), b"DROPTRC\n").unwrap();
    std::fs::write(path("existing"), b"keep me").unwrap();
    std::os::unix::fs::symlink(path("existing"), path("link")).unwrap();
    let cases: [(&[&str], i32, &str); 12] = [
        (&["report", &path("missing")], 1, "No such file"),
        (
            &["report", &path("garbage")],
            1,
            "not a droptrace recording",
        ),
        (
            &["report", &path("magic-only")],
            1,
            "before its header is complete",
        ),
        (
            &["export", &path("garbage"), "--jsonl", "-"],
            1,
            "not a droptrace recording",
        ),
        (&["export", &path("garbage")], 2, "--pcapng"),
        (
            &["replay", &path("garbage")],
            1,
            "not a droptrace recording",
        ),
        (
            &["record", "-o", &path("x"), "--snaplen", "5000"],
            2,
            "--snaplen",
        ),
        (
            &["record", "-o", &path("existing"), "--duration", "1"],
            1,
            "give --force",
        ),
        (
            &["record", "-o", &path("link"), "--force", "--duration", "1"],
            1,
            "is a symbolic link; droptrace does not write through one",
        ),
        // The baseline is written at the end of the window: refused before it.
        (
            &["diagnose", "--save-baseline", &path("existing")],
            1,
            "existing exists; give --force to replace it",
        ),
        (
            &["diagnose", "--save-baseline", &path("link"), "--force"],
            1,
            "is a symbolic link; droptrace does not write through one",
        ),
        (&["diagnose", "--force"], 2, "--save-baseline"),
    ];
    for (args, code, needle) in cases {
        assert_clean_failure(&droptrace(args), code, needle);
    }
    assert_eq!(std::fs::read(path("existing")).unwrap(), b"keep me");
    let _ = std::fs::remove_dir_all(&dir);
}

fn replay_without_a_terminal_points_to_report() {
    // The file is checked before the terminal: give it a real recording.
    let dir = std::env::temp_dir().join(format!("droptrace-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("quiet.dtr");
    let out = droptrace(&[
        "record",
        "-o",
        file.to_str().unwrap(),
        "--port",
        "1",
        "--duration",
        "0.5",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(droptrace_bin())
        .args(["replay", file.to_str().unwrap()])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_clean_failure(&out, 1, "droptrace report FILE");
    let _ = std::fs::remove_dir_all(&dir);
}

fn interfaces_and_namespaces_resolve_where_they_live() {
    let ns = Netns::new("res");
    let path = ns.path();
    // Loopback is index 1 in every namespace; the filter names it with its namespace.
    let out = droptrace(&[
        "--iface",
        "lo",
        "--netns",
        &path,
        "--format",
        "json",
        "--duration",
        "0.2",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // Names, not numbers, for what has a name.
    assert!(
        stderr.contains(&format!("filters: iface lo, netns {};", ns.name)),
        "{stderr}"
    );
    // The name `ip netns` gives it is enough; the inode where nothing names it.
    let out = droptrace(&["--netns", &ns.name, "--format", "json", "--duration", "0.2"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("filters: netns {};", ns.name)),
        "{stderr}"
    );
    let by_process = format!("/proc/{}/ns/net", std::process::id());
    let out = droptrace(&[
        "--netns",
        &by_process,
        "--format",
        "json",
        "--duration",
        "0.2",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("filters: netns {by_process};")),
        "{stderr}"
    );
    assert_clean_failure(
        &droptrace(&["--netns", "dt-no-such-namespace", "--duration", "1"]),
        1,
        "network namespace /run/netns/dt-no-such-namespace: No such file or directory",
    );
    let out = droptrace(&["--netns", "dt-no-such-namespace", "--duration", "1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("`ip netns list`"), "{stderr}");
    assert_clean_failure(
        &droptrace(&["--iface", "nope0", "--netns", &path, "--duration", "1"]),
        1,
        &format!("no network interface named `nope0` in network namespace {path}"),
    );
    assert_clean_failure(
        &droptrace(&["--netns", "/etc/hostname", "--duration", "1"]),
        1,
        "not a network namespace (give /run/netns/NAME or /proc/PID/ns/net)",
    );
}

droptrace_tests::root_tests!(
    without_capabilities_it_says_which_and_how,
    bad_flags_are_usage_errors,
    bad_filter_values_name_the_problem,
    bad_recordings_are_named_with_the_problem,
    replay_without_a_terminal_points_to_report,
    interfaces_and_namespaces_resolve_where_they_live,
);
