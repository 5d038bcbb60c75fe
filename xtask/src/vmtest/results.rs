//! What a guest wrote in its share: per test binary its exit code and libtest's output,
//! folded into one line per kernel and, when tests failed, their output.
use std::{path::Path, time::Duration};

use anyhow::Result;

/// One test binary's run in the guest.
#[derive(Debug, Default)]
pub struct Binary {
    pub name: String,
    pub exit: i32,
    pub passed: Vec<String>,
    pub failed: Vec<String>,
    /// Tests that did not run here, with their reason (`test NAME ... ignored, why`, as the
    /// root tests' runner says it); never counted as passed.
    pub skipped: Vec<(String, String)>,
    /// libtest's "failures:" section (each failing test's output), or the log's end when
    /// the binary ended without a summary (a crash, its timeout).
    pub failure_text: String,
    pub summary_seen: bool,
}

#[derive(Debug)]
pub struct Outcome {
    pub release: String,
    pub accel: String,
    pub wall: Duration,
    pub binaries: Vec<Binary>,
    /// The job reached its end (every binary ran).
    pub finished: bool,
    pub expected_binaries: usize,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.finished
            && self.binaries.len() == self.expected_binaries
            && self
                .binaries
                .iter()
                .all(|b| b.exit == 0 && b.failed.is_empty() && b.summary_seen)
    }

    /// `vmtest: 6.1.0-57-amd64: 114/114 passed in 6m12s (tcg)`.
    pub fn line(&self) -> String {
        let skipped: Vec<&(String, String)> =
            self.binaries.iter().flat_map(|b| &b.skipped).collect();
        let passed: usize = self.binaries.iter().map(|b| b.passed.len()).sum();
        let failed: usize = self.binaries.iter().map(|b| b.failed.len()).sum();
        let broken: Vec<&str> = self
            .binaries
            .iter()
            .filter(|b| b.exit != 0 && b.failed.is_empty() || !b.summary_seen)
            .map(|b| b.name.as_str())
            .collect();
        let mut line = format!(
            "vmtest: {}: {passed}/{} passed in {} ({})",
            self.release,
            passed + failed + skipped.len(),
            minutes(self.wall),
            self.accel
        );
        if !skipped.is_empty() {
            // Each reason once, with how many tests gave it.
            let mut counted: Vec<(&str, usize)> = Vec::new();
            for (_, why) in &skipped {
                match counted.iter_mut().find(|(r, _)| r == why) {
                    Some((_, n)) => *n += 1,
                    None => counted.push((why, 1)),
                }
            }
            let reasons: Vec<String> = counted.iter().map(|(r, n)| format!("{n}x {r}")).collect();
            line.push_str(&format!(
                "; {} skipped ({})",
                skipped.len(),
                reasons.join("; ")
            ));
        }
        if failed > 0 {
            line.push_str(&format!("; {failed} failed"));
        }
        if !broken.is_empty() {
            line.push_str(&format!("; ended without a result: {}", broken.join(", ")));
        }
        let missing = self.expected_binaries.saturating_sub(self.binaries.len());
        if missing > 0 {
            line.push_str(&format!("; {missing} test binaries did not run"));
        }
        line
    }

    pub fn failure_report(&self) -> String {
        let mut out = String::new();
        for b in self
            .binaries
            .iter()
            .filter(|b| b.exit != 0 || !b.failed.is_empty() || !b.summary_seen)
        {
            out.push_str(&format!(
                "==== vmtest: {}: {} (exit {}): failed: {}\n{}\n",
                self.release,
                b.name,
                b.exit,
                if b.failed.is_empty() {
                    "-".to_owned()
                } else {
                    b.failed.join(", ")
                },
                b.failure_text
            ));
        }
        out
    }
}

/// Reads `results/status` (`name exit seconds` per binary) and each binary's log.
pub fn read(release: &str, accel: &str, share: &Path, wall: Duration) -> Result<Outcome> {
    let dir = share.join("results");
    let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
    let expected = std::fs::read_to_string(share.join("binaries"))?
        .lines()
        .count();
    let mut binaries = Vec::new();
    for line in status.lines() {
        let mut words = line.split_whitespace();
        let (Some(name), Some(exit)) = (words.next(), words.next()) else {
            continue;
        };
        let log = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
        let mut b = parse_log(&log);
        b.name = name.to_owned();
        b.exit = exit.parse().unwrap_or(-1);
        binaries.push(b);
    }
    Ok(Outcome {
        release: release.to_owned(),
        accel: accel.to_owned(),
        wall,
        binaries,
        finished: dir.join("finished").exists(),
        expected_binaries: expected,
    })
}

/// libtest's output: `test NAME ... ok|FAILED`, its "failures:" section, its summary.
pub fn parse_log(log: &str) -> Binary {
    let mut b = Binary::default();
    for line in log.lines() {
        if let Some(rest) = line.strip_prefix("test ") {
            if let Some((name, verdict)) = rest.rsplit_once(" ... ") {
                match verdict.trim() {
                    "ok" => b.passed.push(name.to_owned()),
                    "FAILED" => b.failed.push(name.to_owned()),
                    "ignored" => b.skipped.push((name.to_owned(), String::new())),
                    v => {
                        if let Some(why) = v.strip_prefix("ignored, ") {
                            b.skipped.push((name.to_owned(), why.to_owned()));
                        }
                    }
                }
            }
        }
        if line.starts_with("test result: ") {
            b.summary_seen = true;
        }
    }
    b.failure_text = match log.find("\nfailures:\n") {
        Some(at) => log[at + 1..].to_owned(),
        None => {
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        }
    };
    b
}

/// `6m12s`.
pub fn minutes(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}m{:02}s", s / 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The start and end of a real log of `diagnose` in the 6.1 guest.
    #[test]
    fn libtest_output() {
        let log = "\nrunning 3 tests\n\
                   test a_udp_rcvbuf_overflow_is_found ... FAILED\n\
                   test an_nft_drop_is_found ... ok\n\
                   test qdisc ... ok\n\n\
                   failures:\n\n\
                   ---- a_udp_rcvbuf_overflow_is_found stdout ----\n\
                   thread 'a_udp_rcvbuf_overflow_is_found' panicked at tests/diagnose.rs:419:5:\n\n\
                   failures:\n    a_udp_rcvbuf_overflow_is_found\n\n\
                   test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 20.01s\n";
        let b = parse_log(log);
        assert_eq!(b.passed, ["an_nft_drop_is_found", "qdisc"]);
        assert_eq!(b.failed, ["a_udp_rcvbuf_overflow_is_found"]);
        assert!(b.summary_seen);
        assert!(b.failure_text.starts_with("failures:\n\n---- a_udp"));
        assert!(b.skipped.is_empty());
        let skipping = parse_log(
            "test json_groups ... ignored, no vmlinux with debug info for 6.12.117+deb12-amd64\n\
             test qdisc ... ok\n\n\
             test result: ok. 1 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 3.10s\n",
        );
        assert_eq!(skipping.passed, ["qdisc"]);
        assert_eq!(
            skipping.skipped,
            [(
                "json_groups".to_owned(),
                "no vmlinux with debug info for 6.12.117+deb12-amd64".to_owned()
            )]
        );
        let crashed = parse_log("running 1 test\ntest x ... ");
        assert!(!crashed.summary_seen);
        assert!(crashed.failure_text.contains("test x"));
        assert_eq!(minutes(Duration::from_secs(372)), "6m12s");
    }
}
