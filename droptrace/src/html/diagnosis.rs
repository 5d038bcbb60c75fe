//! The page of `droptrace diagnose --format html`.
use std::fmt::Write;

use super::{escape, Page};
use crate::diagnose::report::Report;

/// Where and when the diagnosis ran.
pub struct About {
    pub host: String,
    pub kernel: String,
    pub started_utc: String,
    pub filters: String,
}

pub fn page(about: &About, report: &Report, json: &str) -> String {
    let mut p = Page::new(
        &format!("droptrace diagnose: {}", about.host),
        &format!(
            "{} UTC · watched for {:.1} s · kernel {}",
            about.started_utc, report.window_secs, about.kernel
        ),
    );
    p.heading("Where and when");
    p.facts(&[
        ("host", "host", about.host.clone()),
        ("kernel", "kernel", about.kernel.clone()),
        ("started", "started", format!("{} UTC", about.started_utc)),
        (
            "window",
            "window_secs",
            format!("{:.1} s", report.window_secs),
        ),
        (
            "filters",
            "filters",
            if about.filters.is_empty() {
                "none".into()
            } else {
                about.filters.clone()
            },
        ),
        ("drops (exact)", "total", report.total.to_string()),
        (
            "events lost (counted in the drops)",
            "lost_events",
            report.lost_events.to_string(),
        ),
        (
            "namespaces sampled",
            "namespaces",
            report.namespaces.to_string(),
        ),
    ]);
    p.heading("Findings");
    if report.findings.is_empty() {
        p.para(
            "meta",
            "No drops and no drop counters moved: nothing to explain.",
        );
    }
    for (i, f) in report.findings.iter().enumerate() {
        let mut html = String::new();
        let _ = write!(
            html,
            "<section class=\"finding{}\" data-finding=\"{i}\"><h3>{}. [{}] \
             <span data-figure=\"drops\">{}</span> drops ({:.1}/s){}</h3><p>{}</p>",
            if f.benign { " benign" } else { "" },
            i + 1,
            escape(f.cause),
            f.drops,
            f.rate,
            if f.benign {
                " — normal housekeeping, probably harmless"
            } else {
                ""
            },
            escape(&f.summary)
        );
        let place: Vec<String> = [
            f.netns.as_ref().map(|n| format!("netns {n}")),
            f.iface.as_ref().map(|n| format!("interface {n}")),
            f.location.clone(),
            f.reason.clone(),
            f.protocol.clone(),
            f.dport.map(|p| format!("port {p}")),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !place.is_empty() {
            let _ = write!(
                html,
                "<p class=\"meta mono\">{}</p>",
                escape(&place.join(" · "))
            );
        }
        html.push_str("<b>Evidence</b><ul>");
        for e in &f.evidence {
            let _ = write!(html, "<li>{}</li>", escape(e));
        }
        let _ = writeln!(
            html,
            "</ul><b>Fix</b><div class=\"fix mono\">{}</div></section>",
            escape(&f.fix)
        );
        p.raw(&html);
    }
    if let Some(diff) = &report.baseline_diff {
        p.heading(&format!(
            "Since the baseline ({})",
            report.baseline_of.as_deref().unwrap_or("?")
        ));
        if diff.is_empty() {
            p.para("meta", "No differences in the sampled state.");
        }
        for d in diff {
            p.para("", &d.sentence);
        }
    }
    p.heading("What was not watched");
    for n in &report.not_sampled {
        p.para("warn", n);
    }
    p.para(
        "",
        "Drops that never reach kfree_skb (a driver's XDP_DROP, NIC ring overflows) are not \
         counted here.",
    );
    p.data("report", json);
    p.finish()
}
