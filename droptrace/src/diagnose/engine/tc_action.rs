//! Drops by a tc filter's action that is not a BPF program: a gact `drop`, a police action
//! over its rate. The action whose drop count grew is named with its filter, and the fix
//! removes that filter (or says how to raise the rate).

use super::{Finding, Ns};
use crate::diagnose::evidence::tc_actions::{TcAction, TcFilter};

/// Names the tc action whose drops grew on `iface` (in `direction` when the reason says
/// it), if one did; returns the finding's merge key detail.
pub(super) fn tc_action(
    n: &Ns<'_>,
    iface: Option<&str>,
    direction: Option<&str>,
    f: &mut Finding,
) -> Option<String> {
    let after = n.after?;
    let mut grown: Vec<(&TcFilter, &TcAction, u64)> = Vec::new();
    for filter in after
        .tc_filters
        .iter()
        .filter(|t| iface.is_none_or(|i| t.dev == i))
        .filter(|t| direction.is_none_or(|d| t.direction == d))
    {
        for action in &filter.actions {
            let before = match n.before {
                Some(b) => b
                    .tc_filters
                    .iter()
                    .find(|p| p.key() == filter.key())
                    .and_then(|p| {
                        p.actions
                            .iter()
                            .find(|a| a.kind == action.kind && a.index == action.index)
                    })
                    .map_or(0, |a| a.drops),
                None => 0,
            };
            let d = action.drops.saturating_sub(before);
            if d > 0 {
                grown.push((filter, action, d));
            }
        }
    }
    // The action of this finding's packets: the filter that names their port, then the
    // one whose growth is closest to their count.
    grown.sort_by_key(|(filter, _, d)| {
        let port = match (filter.dport, f.dport) {
            (Some(a), Some(b)) if a == b => 0,
            (Some(_), Some(_)) => 2,
            _ => 1,
        };
        (port, d.abs_diff(f.drops), std::cmp::Reverse(*d))
    });
    let (filter, action, d) = *grown.first()?;
    let window = match n.before {
        Some(_) => n.between.clone(),
        None => format!(" in all ({})", n.no_before),
    };
    let what = match action.kind.as_str() {
        "police" => format!(
            "its police action dropped {d} packets over its rate{window} ({})",
            action.describe()
        ),
        _ => format!(
            "its action `{}` dropped {d} packets{window}",
            action.describe()
        ),
    };
    f.summary = format!(
        "the tc filter {} at {} on {} in {} drops these packets: {what}",
        filter.describe(),
        filter.direction,
        filter.dev,
        n.name
    );
    for (filter, action, d) in &grown {
        f.evidence.push(format!(
            "tc -s filter show dev {} {}: {}, action {}: dropped {} (now {} of {} packets{})",
            filter.dev,
            filter.direction,
            filter.describe(),
            action.describe(),
            if n.before.is_some() {
                format!("+{d} in the window")
            } else {
                "in all".to_owned()
            },
            action.drops,
            action.packets,
            if action.overlimits > 0 {
                format!(", {} over the limit", action.overlimits)
            } else {
                String::new()
            }
        ));
    }
    f.iface = Some(filter.dev.clone());
    let delete = format!(
        "{}tc filter del dev {} {}{}{} {}",
        n.prefix,
        filter.dev,
        filter.direction,
        filter
            .pref
            .map(|p| format!(" pref {p}"))
            .unwrap_or_default(),
        filter
            .handle
            .as_ref()
            .map(|h| format!(" handle {h}"))
            .unwrap_or_default(),
        filter.kind
    );
    f.fix = match action.kind.as_str() {
        "police" => format!(
            "raise the police rate (replace the filter with a higher `rate`), or remove the filter: {delete}"
        ),
        _ => delete,
    };
    Some(format!(
        "{}|{}|{}",
        filter.dev,
        filter.direction,
        filter.describe()
    ))
}
