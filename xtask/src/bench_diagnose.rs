//! `cargo xtask bench-diagnose`: how long `droptrace diagnose` takes on a host with many
//! network namespaces, with its default cap on those sampled before the window (64) and
//! with every one sampled; the median wall time of a few rounds each, window included.
//!
//! The namespaces are made for the run (loopback up, nothing else) and deleted after it.
//! Run it as root, under the tests' lock (`flock /tmp/droptrace-root.lock cargo xtask
//! bench-diagnose`): it creates namespaces.
use std::{
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{bail, Context, Result};

use crate::bench::{prepare, Namespace};

#[derive(clap::Args)]
pub struct BenchDiagnoseArgs {
    /// Network namespaces on the host besides the root one.
    #[arg(long, default_value_t = 100)]
    namespaces: usize,
    /// Rounds; each runs diagnose once with the default cap and once with every
    /// namespace sampled before the window.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// diagnose's window in seconds.
    #[arg(long, default_value_t = 2.0)]
    window: f64,
}

/// Runs a command without echoing it (there are hundreds); fails with its stderr.
fn quiet(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

pub fn bench_diagnose(args: &BenchDiagnoseArgs) -> Result<()> {
    let (bin, first) = prepare("dtdiag")?;
    let mut held = vec![first];
    for i in 1..args.namespaces {
        let ns = Namespace(format!("dtdiag{}-{i}", std::process::id()));
        quiet(Command::new("ip").args(["netns", "add", &ns.0]))?;
        quiet(Command::new("ip").args(["netns", "exec", &ns.0, "ip", "link", "set", "lo", "up"]))?;
        held.push(ns);
    }
    let all = (args.namespaces + 1).to_string();
    let window = args.window.to_string();
    let variants: [(&str, Vec<&str>); 2] = [
        ("default cap (64 sampled before)", vec![]),
        (
            "--max-namespaces (all sampled before)",
            vec!["--max-namespaces", &all],
        ),
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    for _ in 0..args.rounds {
        for (i, (_, extra)) in variants.iter().enumerate() {
            let started = Instant::now();
            let out = Command::new(&bin)
                .args(["diagnose", "--duration", &window, "--format", "json"])
                .args(extra)
                .stdin(Stdio::null())
                .output()
                .context("running droptrace diagnose")?;
            if !out.status.success() {
                bail!(
                    "droptrace diagnose failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            times[i].push(started.elapsed().as_secs_f64());
        }
    }
    println!(
        "bench-diagnose: {} namespaces, {} s window, median of {} rounds",
        args.namespaces + 1,
        args.window,
        args.rounds
    );
    for ((label, _), t) in variants.iter().zip(&mut times) {
        t.sort_by(f64::total_cmp);
        let median = t[t.len() / 2];
        println!(
            "  {label:<40} {median:>6.2} s wall ({:.2} s beyond the window)",
            median - args.window
        );
    }
    drop(held);
    Ok(())
}
