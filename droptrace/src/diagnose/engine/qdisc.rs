//! Transmit drops of a queueing discipline: the qdisc whose drop count grew.

use super::{Finding, Ns};
use crate::diagnose::{evidence::tc, state::Qdisc};

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
                .map_or(0, |p| p.drops.unwrap_or(0));
            (q, q.drops.unwrap_or(0).saturating_sub(before))
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
    // Without a sample before the drops a qdisc's count is all it has dropped, not its
    // growth with them.
    let (dropped, window) = match n.before {
        Some(_) => ("dropped", n.between.clone()),
        None => ("has dropped", format!(" in all ({})", n.no_before)),
    };
    f.summary = match q.kind.as_str() {
        // netem loses packets on purpose: its loss figure is the cause, not a full queue.
        "netem" if q.options_tc().contains("loss ") => format!(
            "the netem qdisc on {} in {} {dropped} {d} packets{window}: it drops them on purpose, as told ({})",
            q.dev, n.name, q.options_tc()
        ),
        _ => format!(
            "the {} qdisc on {} in {} {dropped} {d} packets{window}: it is full or over its rate ({})",
            q.kind, q.dev, n.name, q.options_tc()
        ),
    };
    for (q, d) in &grown {
        f.subjects
            .push(crate::diagnose::subject::qdisc(&q.dev, &q.handle));
        f.evidence.push(format!(
            "tc -s qdisc: {} {} on {}{}: {}; dropped {} (now {}), overlimits {}, backlog {} packets",
            q.kind,
            q.handle,
            q.dev,
            if q.root { " (root)" } else { "" },
            q.options_tc(),
            if n.before.is_some() {
                format!("+{d} in the window")
            } else {
                "in all".to_owned()
            },
            q.drops.unwrap_or(0),
            q.overlimits.unwrap_or(0),
            q.qlen.unwrap_or(0)
        ));
    }
    f.iface = Some(q.dev.clone());
    f.fix = fix(&n.prefix, q);
    format!("{}|{}", q.dev, q.handle)
}

/// `root handle 1:`, `parent 1:10 handle 10:`: where `tc qdisc change` finds the qdisc.
fn position(q: &Qdisc) -> String {
    let handle = match q.handle.as_str() {
        // The device's default qdisc has no handle of its own to give.
        "0:" => String::new(),
        h => format!(" handle {h}"),
    };
    match (&q.parent, q.root) {
        (_, true) => format!("root{handle}"),
        (Some(p), false) => format!("parent {p}{handle}"),
        (None, false) => handle.trim_start().to_owned(),
    }
}

/// The command that gives the qdisc twice its room (and a shaper twice its rate), in
/// its namespace; for kinds whose options cannot be changed one by one, what to raise.
fn fix(prefix: &str, q: &Qdisc) -> String {
    let at = position(q);
    let back = format!(
        "; or go back to the default: {prefix}tc qdisc del dev {} {at}",
        q.dev
    );
    if q.kind == "netem" && q.options_tc().contains("loss ") {
        return format!(
            "remove the emulated loss (a test left in place?): {prefix}tc qdisc del dev {} {at}",
            q.dev
        );
    }
    let twice = |v: u64| v.saturating_mul(2);
    let change = |options: String| {
        format!(
            "give it twice the room: {prefix}tc qdisc change dev {} {at} {} {options}{back}",
            q.dev, q.kind
        )
    };
    let tbf_queue = q
        .latency_us()
        .map(|us| format!("latency {}", tc::time_text(twice(us))))
        .or_else(|| {
            q.limit
                .map(|b| format!("limit {}", tc::size_text(twice(b))))
        });
    match (q.kind.as_str(), q.rate, q.burst(), tbf_queue, q.limit) {
        // tbf takes its rate, burst and latency (or limit) together.
        ("tbf", Some(rate), Some(burst), Some(queue), _) => change(format!(
            "rate {} burst {} {queue}",
            tc::rate_text(twice(rate)),
            tc::size_text(twice(burst))
        )),
        // These change their limit alone, leaving their other options as they are.
        ("pfifo" | "bfifo" | "fq_codel" | "codel" | "fq", _, _, _, Some(limit)) => {
            let limit = if tc::limit_in_bytes(&q.kind) {
                tc::size_text(twice(limit))
            } else {
                twice(limit).to_string()
            };
            change(format!("limit {limit}"))
        }
        _ => format!(
            "raise the {} qdisc's limit or rate ({}; see `{prefix}tc qdisc show dev {}`){back}",
            q.kind,
            q.options_tc(),
            q.dev
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qdisc(kind: &str) -> Qdisc {
        Qdisc {
            dev: "veth-a".into(),
            kind: kind.into(),
            handle: "1:".into(),
            parent: None,
            root: true,
            options: serde_json::json!({}),
            limit: None,
            rate: None,
            bytes: None,
            packets: None,
            drops: Some(0),
            overlimits: Some(0),
            requeues: None,
            backlog: None,
            qlen: None,
        }
    }

    #[test]
    fn the_fix_is_a_real_command_with_larger_values() {
        // tc says `rate 200Kbit burst 4Kb lat 164ms`.
        let tbf = Qdisc {
            rate: Some(25_000),
            options: serde_json::json!({"rate": 25_000, "burst": 4096, "lat": 164_000}),
            ..qdisc("tbf")
        };
        assert_eq!(
            fix("ip netns exec web ", &tbf),
            "give it twice the room: ip netns exec web tc qdisc change dev veth-a root handle 1: \
             tbf rate 400Kbit burst 8Kb latency 328ms; or go back to the default: \
             ip netns exec web tc qdisc del dev veth-a root handle 1:"
        );
        let tbf_limit = Qdisc {
            limit: Some(3000),
            options: serde_json::json!({"rate": 25_000, "burst": 4096, "limit": 3000}),
            ..tbf.clone()
        };
        assert!(fix("", &tbf_limit).contains("tbf rate 400Kbit burst 8Kb limit 6000b;"));
        let pfifo = Qdisc {
            handle: "10:".into(),
            parent: Some("1:10".into()),
            root: false,
            limit: Some(5),
            ..qdisc("pfifo")
        };
        assert!(
            fix("", &pfifo).starts_with(
                "give it twice the room: tc qdisc change dev veth-a parent 1:10 handle 10: pfifo limit 10;"
            ),
            "{}",
            fix("", &pfifo)
        );
        let htb = Qdisc {
            options: serde_json::json!({"default": "0x10", "r2q": 10}),
            ..qdisc("htb")
        };
        assert_eq!(
            fix("", &htb),
            "raise the htb qdisc's limit or rate (default 0x10 r2q 10; see `tc qdisc show dev veth-a`); \
             or go back to the default: tc qdisc del dev veth-a root handle 1:"
        );
        assert!(!fix("", &tbf).contains("..."));
    }
}
