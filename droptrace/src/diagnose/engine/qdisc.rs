//! Transmit drops of a queueing discipline: the qdisc whose drop count grew.

use super::{Finding, Ns};
use crate::diagnose::state::Qdisc;

pub(super) fn qdisc(n: &Ns<'_>, iface: Option<&str>, f: &mut Finding) -> String {
    let Some(after) = n.after else {
        return "unknown".into();
    };
    let mut grown: Vec<(&Qdisc, u64)> = after
        .qdiscs
        .iter()
        .filter(|q| iface.is_none_or(|i| q.dev == i))
        .map(|q| {
            let before = n
                .before
                .and_then(|b| {
                    b.qdiscs
                        .iter()
                        .find(|p| p.dev == q.dev && p.handle == q.handle)
                })
                .map_or(0, |p| p.drops);
            (q, q.drops.saturating_sub(before))
        })
        .filter(|(_, d)| *d > 0)
        .collect();
    // mq only spreads over per-queue children and drops nothing itself: prefer a child.
    grown.sort_by_key(|g| (g.0.kind == "mq", std::cmp::Reverse(g.1)));
    let Some((q, d)) = grown.first() else {
        f.evidence.push(format!(
            "no qdisc{} in {} shows new drops in `tc -s qdisc`",
            iface.map(|i| format!(" on {i}")).unwrap_or_default(),
            n.name
        ));
        return iface.unwrap_or("unknown").into();
    };
    f.summary = format!(
        "the {} qdisc on {} in {} dropped {d} packets{}: it is full or over its rate ({})",
        q.kind, q.dev, n.name, n.between, q.options
    );
    for (q, d) in &grown {
        f.subjects
            .push(crate::diagnose::baseline::subject::qdisc(&q.dev, &q.handle));
        f.evidence.push(format!(
            "tc -s qdisc: {} {} on {}{}: {}; dropped +{d} in the window (now {}), overlimits {}, backlog {} packets",
            q.kind,
            q.handle,
            q.dev,
            if q.root { " (root)" } else { "" },
            q.options,
            q.drops,
            q.overlimits,
            q.backlog_packets
        ));
    }
    f.iface = Some(q.dev.clone());
    f.fix = format!(
        "raise the qdisc's limit or rate: {p}tc qdisc change dev {dev} {parent} {kind} ... ; or go back to the default: {p}tc qdisc del dev {dev} {parent}",
        p = n.prefix,
        dev = q.dev,
        parent = match (&q.parent, q.root) {
            (_, true) => "root".to_owned(),
            (Some(p), false) => format!("parent {p}"),
            (None, false) => format!("handle {}", q.handle),
        },
        kind = q.kind
    );
    format!("{}|{}", q.dev, q.handle)
}
