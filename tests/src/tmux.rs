//! A terminal for the live view's tests: a tmux session of its own, keys sent to it, its
//! pane read back.
use std::{
    process::Command,
    time::{Duration, Instant},
};

use crate::{sh, WAIT_LIMIT};

/// A tmux session made by a test, killed when dropped.
pub struct Tmux {
    name: String,
}

impl Tmux {
    pub fn new(width: u16, height: u16) -> Tmux {
        let name = format!("droptrace-test-{}", std::process::id());
        sh(&[
            "tmux",
            "-L",
            &name,
            "new-session",
            "-d",
            "-s",
            &name,
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            "env",
            "-i",
            "TERM=xterm-256color",
            "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
            "PS1=dt-prompt$ ",
            "bash",
            "--norc",
            "--noprofile",
        ]);
        Tmux { name }
    }

    /// A pane of this size with droptrace started in its shell with `args` (the live view,
    /// replay...): the prompt waited for, the command typed.
    pub fn droptrace(width: u16, height: u16, args: &str) -> Tmux {
        let tmux = Tmux::new(width, height);
        tmux.wait_for("the shell prompt", |p| p.contains("dt-prompt$"));
        let command = format!("{} {args}", crate::droptrace_bin().display());
        tmux.send(&[&command, "Enter"]);
        tmux
    }

    /// Waits (bounded) for the live view's header and its keys line; returns the pane.
    pub fn wait_for_live_view(&self) -> String {
        self.wait_for("the live view's header", |p| {
            p.contains("droptrace  live") && p.contains("q quit")
        })
    }

    pub fn send(&self, keys: &[&str]) {
        let mut args = vec!["tmux", "-L", &self.name, "send-keys", "-t", &self.name];
        args.extend_from_slice(keys);
        sh(&args);
    }

    pub fn pane(&self) -> String {
        sh(&[
            "tmux",
            "-L",
            &self.name,
            "capture-pane",
            "-p",
            "-t",
            &self.name,
        ])
    }

    /// Waits (bounded) until `found` accepts the pane; returns the pane.
    pub fn wait_for(&self, what: &str, found: impl Fn(&str) -> bool) -> String {
        self.wait_within(WAIT_LIMIT, what, found)
    }

    /// `wait_for` with a bound of its own, for what takes longer than the usual wait.
    pub fn wait_within(&self, limit: Duration, what: &str, found: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let pane = self.pane();
            if found(&pane) {
                return pane;
            }
            assert!(
                Instant::now() < deadline,
                "waited for {what}; the pane shows:\n{pane}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.name, "kill-server"])
            .status();
    }
}
