//! Whether the interface a drop met can carry packets at all: set down, or up without a
//! carrier (a pair device whose other end is down, a cable out). Read from the links
//! sampled after the window; a pair's other end from its own namespace.

use super::{ns, Finding, Ns, Window};
use crate::diagnose::knowledge::Cause;

/// Why an interface carries nothing, and the command that changes it.
pub(super) struct Down {
    pub sentence: String,
    pub fix: String,
}

/// `None` when `iface` is up with a carrier, or was not sampled.
pub(super) fn down(w: &Window<'_>, n: &Ns<'_>, iface: &str) -> Option<Down> {
    let link = n.after?.links.iter().find(|l| l.name == iface)?;
    if !link.admin_up {
        return Some(Down {
            sentence: format!("{iface} in {} is down (its UP flag is off)", n.name),
            fix: format!("bring it up: {}ip link set {iface} up", n.prefix),
        });
    }
    if !link.no_carrier {
        return None;
    }
    let other = link.peer.as_ref().map(|p| {
        let there = ns(w, p.netns.unwrap_or(n.inode));
        (there.name, there.prefix, p)
    });
    let state = link.oper_state.as_deref().unwrap_or("unknown");
    Some(match other {
        Some((name, prefix, other)) if !other.admin_up => Down {
            sentence: format!(
                "{iface} in {} has no carrier (operstate {state}): its other end {} in {name} is down",
                n.name, other.name
            ),
            fix: format!("bring the other end up: {prefix}ip link set {} up", other.name),
        },
        _ => Down {
            sentence: format!(
                "{iface} in {} is up but has no carrier (operstate {state})",
                n.name
            ),
            fix: format!(
                "find why {iface} has no link ({}ip -d link show {iface}): for a pair device its other end, for a NIC the cable or the switch port",
                n.prefix
            ),
        },
    })
}

/// Adds the interface's state to a finding when it carries nothing; where `takes_over`
/// (the family named nothing better), that is the finding's summary and fix.
pub(super) fn explain(w: &Window<'_>, n: &Ns<'_>, iface: &str, takes_over: bool, f: &mut Finding) {
    let Some(d) = down(w, n, iface) else {
        return;
    };
    f.evidence.push(format!("ip link: {}", d.sentence));
    if takes_over {
        f.cause = Cause::Nic.id();
        f.summary = format!("nothing passes {iface}: {}", d.sentence);
        f.fix = d.fix;
    }
}
