//! The diagnosis report: one JSON object for scripts, a ranked text for people.
use std::fmt::Write;

use serde::Serialize;

use super::{
    baseline::Difference,
    engine::{CounterMove, Finding},
};
use crate::{
    format::printable,
    pipeline::event::{endpoint, Drop},
};

#[derive(Debug, Serialize)]
pub struct Report {
    /// How long droptrace watched: what `total` and each finding's `drops` cover.
    pub window_secs: f64,
    /// Seconds from the start of the state's sample before the window to the end of the
    /// one after it: what the growth of counters (rules, qdiscs, the kernel's) covers.
    pub samples_secs: f64,
    /// Drops that matched the filters in the window (exact).
    pub total: u64,
    pub lost_events: u64,
    /// Namespaces whose state was sampled.
    pub namespaces: usize,
    /// Namespaces where drops happened that could not be sampled before the window (or
    /// at all), each with why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_sampled: Vec<String>,
    /// Most important first.
    pub findings: Vec<Finding>,
    /// Every kernel counter that grew between the samples, in every sampled namespace:
    /// counters of trouble (errors, drops, overflows) first, then by growth.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub counters_moved: Vec<CounterMove>,
    /// With --baseline: which host's state, and when ("host web-1, saved 2026-12-02 03:14:57 UTC").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_of: Option<String>,
    /// With --baseline: every difference between the baseline and the state now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_diff: Option<Vec<Difference>>,
}

impl Report {
    pub fn text(&self) -> String {
        let mut out = format!(
            "droptrace diagnose: {} drops seen in {:.1} s ({} lost events), {} namespaces sampled\n\
             (drops: what droptrace saw while it watched; counters \"in the window\": their growth between \
             the samples of the state before and after, {:.1} s apart)\n",
            self.total, self.window_secs, self.lost_events, self.namespaces, self.samples_secs
        );
        for n in &self.not_sampled {
            let _ = writeln!(out, "   not sampled: {}", printable(n));
        }
        if self.findings.is_empty() {
            out.push_str("\nNo drops and no drop counters moved: nothing to explain.\n");
            self.baseline_text(&mut out);
            return out;
        }
        for (i, f) in self.findings.iter().enumerate() {
            let _ = writeln!(
                out,
                "\n{}. [{}] {} drops seen in {:.1} s ({:.1}/s){}",
                i + 1,
                f.cause,
                f.drops,
                self.window_secs,
                f.rate,
                if f.benign {
                    " — normal housekeeping, probably harmless"
                } else {
                    ""
                }
            );
            // Every sentence holds names from the host or the baseline file.
            let _ = writeln!(out, "   {}", printable(&f.summary));
            out.push_str("   evidence:\n");
            for e in &f.evidence {
                let _ = writeln!(out, "     - {}", printable(e));
            }
            let _ = writeln!(out, "   fix: {}", printable(&f.fix));
        }
        self.counters_text(&mut out);
        self.baseline_text(&mut out);
        out
    }

    /// The kernel's counters of trouble that grew, at most `SHOWN` lines (the JSON has all,
    /// traffic counters included).
    fn counters_text(&self, out: &mut String) {
        const SHOWN: usize = 12;
        let trouble: Vec<&CounterMove> = self
            .counters_moved
            .iter()
            .filter(|c| super::engine::is_trouble(&c.counter))
            .collect();
        if trouble.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "\nKernel counters of trouble that grew between the samples ({:.1} s):",
            self.samples_secs
        );
        for c in trouble.iter().take(SHOWN) {
            let _ = writeln!(
                out,
                "   {} +{} (now {}) in netns {}",
                c.counter,
                c.delta,
                c.after,
                printable(&c.netns)
            );
        }
        if trouble.len() > SHOWN {
            let _ = writeln!(
                out,
                "   ... and {} more (--format json lists every counter that moved)",
                trouble.len() - SHOWN
            );
        }
    }

    fn baseline_text(&self, out: &mut String) {
        let Some(diff) = &self.baseline_diff else {
            return;
        };
        let _ = writeln!(
            out,
            "\nSince the baseline ({}):",
            printable(self.baseline_of.as_deref().unwrap_or("?"))
        );
        if diff.is_empty() {
            out.push_str("   no differences in the sampled state\n");
        }
        for d in diff {
            let _ = writeln!(out, "   - {}", printable(&d.sentence));
        }
    }
}

/// "10.0.0.1:40000 -> 10.0.0.2:1678, 60 bytes"
pub fn packet_line(d: &Drop) -> String {
    let p = &d.packet;
    let ends = match (p.addrs, p.ports) {
        (Some((s, t)), Some((sp, dp))) => format!("{} -> {}", endpoint(s, sp), endpoint(t, dp)),
        (Some((s, t)), None) => format!("{s} -> {t}"),
        // The ethertype alone (the tracepoint's protocol field): the headers were not read.
        _ => match p.ethertype {
            0x0800 => "an IPv4 packet whose headers were not read".to_owned(),
            0x86dd => "an IPv6 packet whose headers were not read".to_owned(),
            0 => "a packet whose headers were not read".to_owned(),
            t => format!("a non-IP packet (ethertype 0x{t:04x})"),
        },
    };
    let icmp = p
        .icmp
        .map(|(t, c)| format!(" icmp type {t} code {c}"))
        .unwrap_or_default();
    if d.len == 0 {
        // A length of 0 is an unread one.
        return format!("{ends}{icmp}");
    }
    let l2 = if d.l2_len > 0 {
        format!(" (dropped with its {}-byte layer-2 header)", d.l2_len)
    } else {
        String::new()
    };
    format!("{ends}{icmp}, {} bytes{l2}", d.len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::baseline::{self, Baseline, NsBaseline};

    fn with(names: &[&str]) -> Baseline {
        Baseline {
            version: baseline::VERSION,
            droptrace: "0.1.0".into(),
            host: "web-1".into(),
            taken_at: 0,
            namespaces: names
                .iter()
                .map(|n| ((*n).to_owned(), NsBaseline::default()))
                .collect(),
        }
    }

    #[test]
    fn a_hostile_name_in_a_baseline_reaches_the_text_escaped() {
        let hostile = "netns x\x1b[31mRED\x1b[0m\n2. [netfilter_rule] forged finding";
        let diff = baseline::diff(&with(&["netns web", hostile]), &with(&["netns web"]), false);
        assert!(
            diff.iter().any(|d| d.sentence.contains(hostile)),
            "{diff:?}"
        );
        let report = Report {
            window_secs: 1.0,
            samples_secs: 1.0,
            total: 0,
            lost_events: 0,
            namespaces: 1,
            not_sampled: Vec::new(),
            findings: Vec::new(),
            counters_moved: Vec::new(),
            baseline_of: Some("host a\x1b]0;pwned\x07".into()),
            baseline_diff: Some(diff),
        };
        let text = report.text();
        assert!(!text.contains('\x1b') && !text.contains('\x07'), "{text}");
        assert!(
            text.lines().all(|l| !l.starts_with("2. ")),
            "a forged line: {text}"
        );
        assert!(
            text.contains(r"netns x\x1b[31mRED\x1b[0m\n2. [netfilter_rule] forged finding"),
            "{text}"
        );
    }
}
