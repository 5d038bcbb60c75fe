//! The diagnosis report: one JSON object for scripts, a ranked text for people.
use std::fmt::Write;

use serde::Serialize;

use super::{baseline::Difference, engine::Finding};
use crate::pipeline::event::{endpoint, Drop};

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
    /// Most important first.
    pub findings: Vec<Finding>,
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
            let _ = writeln!(out, "   {}", f.summary);
            out.push_str("   evidence:\n");
            for e in &f.evidence {
                let _ = writeln!(out, "     - {e}");
            }
            let _ = writeln!(out, "   fix: {}", f.fix);
        }
        self.baseline_text(&mut out);
        out
    }

    fn baseline_text(&self, out: &mut String) {
        let Some(diff) = &self.baseline_diff else {
            return;
        };
        let _ = writeln!(
            out,
            "\nSince the baseline ({}):",
            self.baseline_of.as_deref().unwrap_or("?")
        );
        if diff.is_empty() {
            out.push_str("   no differences in the sampled state\n");
        }
        for d in diff {
            let _ = writeln!(out, "   - {}", d.sentence);
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
