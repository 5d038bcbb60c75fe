//! The page of `droptrace report FILE --format html`.
use super::{chart::chart, Page};
use crate::sinks::summary::Summary;
use crate::sinks::timeline::Timeline;

/// What the page says of the recording itself.
pub struct About {
    pub file: String,
    pub host: String,
    pub kernel: String,
    pub version: String,
    /// When recording started, UTC, and its clock time alone for the charts' axis.
    pub started_utc: String,
    pub started_clock: String,
    pub filters: String,
    pub snaplen: u32,
    pub events: u64,
    pub status: String,
}

pub fn page(
    about: &About,
    summary: &Summary,
    by_reason: &Timeline,
    by_site: &Timeline,
    json: &str,
) -> String {
    let mut p = Page::new(
        &format!("droptrace report: {}", about.host),
        &format!(
            "recording {} · started {} UTC",
            about.file, about.started_utc
        ),
    );
    p.heading("Where and when");
    p.facts(&[
        ("host", "host", about.host.clone()),
        ("kernel", "kernel", about.kernel.clone()),
        (
            "recorded by",
            "version",
            format!("droptrace {}", about.version),
        ),
        ("started", "started", format!("{} UTC", about.started_utc)),
        ("filters", "filters", or_none(&about.filters)),
        ("packet bytes kept", "snaplen", about.snaplen.to_string()),
        ("events read", "events", about.events.to_string()),
        ("file", "status", about.status.clone()),
    ]);
    p.heading("Drops");
    p.facts(&[
        ("drops (exact)", "total", summary.total.to_string()),
        (
            "events lost (counted in the drops)",
            "lost_events",
            summary.lost_events.to_string(),
        ),
        (
            "drops not in a group (group map full)",
            "unattributed",
            summary.unattributed.to_string(),
        ),
        (
            "drops of groups beyond the ones kept apart",
            "other_groups",
            summary.other_groups.to_string(),
        ),
        (
            "drops the kernel did not run droptrace for",
            "missed",
            summary.missed.to_string(),
        ),
    ]);
    p.heading("Drops over time");
    if by_reason.is_empty() {
        p.para("meta", "No drop was recorded.");
    } else {
        p.raw(&chart("Drops by reason", by_reason, &about.started_clock));
        p.raw(&chart("Drops by site", by_site, &about.started_clock));
        if summary.lost_events > 0 {
            p.para(
                "warn",
                &format!(
                    "{} drops whose events were lost are in the figures but not in the charts \
                     (their time is unknown).",
                    summary.lost_events
                ),
            );
        }
    }
    p.heading("Drop groups");
    let rows: Vec<Vec<String>> = summary
        .groups
        .iter()
        .map(|g| {
            vec![
                g.location.clone(),
                g.reason.clone().unwrap_or_else(|| "-".into()),
                g.protocol.clone().unwrap_or_else(|| "-".into()),
                g.dport.map_or_else(|| "-".into(), |p| p.to_string()),
                workload(g),
                g.count.to_string(),
                g.lost.to_string(),
                g.source.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    if rows.is_empty() {
        p.para("meta", "No drop groups.");
    } else {
        p.table(
            "groups",
            &[
                "site",
                "reason",
                "protocol",
                "port",
                "pod or container",
                "drops",
                "events lost",
                "source",
            ],
            &[false, false, false, true, false, true, true, false],
            &rows,
        );
    }
    p.heading("What was not watched");
    let mut gaps = Vec::new();
    if !about.filters.is_empty() {
        gaps.push(format!(
            "Only drops matching the filters were recorded: {}.",
            about.filters
        ));
    }
    if summary.lost_events > 0 {
        gaps.push(format!(
            "{} events did not fit in the ring buffer: their drops are counted, their packets are not known.",
            summary.lost_events
        ));
    }
    if summary.missed > 0 {
        gaps.push(format!(
            "{} drops happened while the kernel could not run droptrace's program (recursion protection): not in the figures.",
            summary.missed
        ));
    }
    gaps.push(
        "Drops that never reach kfree_skb (a driver's XDP_DROP, NIC ring overflows) are not in a recording; \
         a recording cannot be diagnosed (run `droptrace diagnose --format html` on the live host)."
            .to_owned(),
    );
    for g in gaps {
        p.para("", &g);
    }
    p.data("summary", json);
    p.finish()
}

fn workload(g: &crate::sinks::summary::GroupSummary) -> String {
    match (&g.pod, &g.container) {
        (Some(pod), _) => format!("{}/{}", pod.namespace, pod.name),
        (None, Some(c)) => c.name.clone(),
        (None, None) => "-".into(),
    }
}

fn or_none(s: &str) -> String {
    if s.is_empty() {
        "none".into()
    } else {
        s.to_owned()
    }
}
