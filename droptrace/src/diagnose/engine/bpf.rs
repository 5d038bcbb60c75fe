//! Drops by a BPF program: the tc or XDP program attached where the packets died.

use super::{Finding, Ns};

pub(super) fn bpf(
    n: &Ns<'_>,
    iface: Option<&str>,
    reason: Option<&str>,
    xdp: bool,
    f: &mut Finding,
) -> String {
    let Some(after) = n.after else {
        return "unknown".into();
    };
    let direction = match reason {
        Some(r) if r.contains("EGRESS") => Some("egress"),
        Some(r) if r.contains("INGRESS") => Some("ingress"),
        _ => None,
    };
    let attached: Vec<_> = after
        .bpf
        .iter()
        .filter(|a| iface.is_none_or(|i| a.dev == i))
        .filter(|a| {
            if xdp {
                a.hook == "xdp"
            } else {
                a.hook != "xdp"
            }
        })
        .filter(|a| direction.is_none_or(|d| a.hook.ends_with(d)))
        .collect();
    let Some(top) = attached.first() else {
        f.evidence.push(format!(
            "no {} BPF program found attached{} in {}",
            if xdp { "XDP" } else { "tc" },
            iface.map(|i| format!(" to {i}")).unwrap_or_default(),
            n.name
        ));
        return iface.unwrap_or("unknown").into();
    };
    f.summary = format!(
        "the BPF program `{}` (id {}) attached at {} on {} in {} drops these packets",
        top.name, top.prog_id, top.hook, top.dev, n.name
    );
    for a in &attached {
        f.evidence.push(format!(
            "{} on {}: BPF program id {} `{}`{}",
            a.hook,
            a.dev,
            a.prog_id,
            a.name,
            a.tag
                .as_ref()
                .map(|t| format!(" tag {t}"))
                .unwrap_or_default()
        ));
    }
    f.iface = Some(top.dev.clone());
    f.fix = format!(
        "find which component attached it (bpftool prog show id {}), then detach it: {}{}",
        top.prog_id, n.prefix, top.detach
    );
    format!("{}|{}", top.dev, top.prog_id)
}
