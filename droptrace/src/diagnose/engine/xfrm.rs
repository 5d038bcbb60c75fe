//! IPsec (xfrm) policy drops (XFRM_POLICY): the policy that refused the packet, found by
//! matching the packet against every inbound and forward policy of its namespace (the
//! one whose last use moved in the window first, then the kernel's own order, priority),
//! named with its selector, action and templates; the states (security associations) that
//! could have protected it; the xfrm_stat counter that moved. The fix deletes or corrects
//! that policy, in its namespace, by its identity.

use std::net::IpAddr;

use super::{DropGroup, Finding, Ns};
use crate::kernel::xfrm::{proto_name, Policy, State};

/// The xfrm_stat counters an inbound policy check moves, with what each says.
const CHECKS: [(&str, &str); 4] = [
    ("InPolBlock", "a policy whose action is block"),
    (
        "InTmplMismatch",
        "a policy whose templates the packet did not meet",
    ),
    ("InNoPols", "no policy, where the default policy blocks"),
    ("FwdHdrError", "a forward policy check"),
];

fn proto_number(name: Option<&str>) -> Option<u8> {
    match name? {
        "tcp" => Some(6),
        "udp" => Some(17),
        "icmp" => Some(1),
        "icmpv6" | "ipv6-icmp" => Some(58),
        "sctp" => Some(132),
        _ => None,
    }
}

/// Whether this policy matched a packet between the samples: its use time moved (or it
/// was made and used in between).
fn used_in_window(n: &Ns<'_>, p: &Policy) -> bool {
    if p.use_time == 0 {
        return false;
    }
    let before = n
        .before
        .and_then(|b| b.xfrm_policies.iter().find(|q| q.index == p.index))
        .map_or(0, |q| q.use_time);
    p.use_time > before
}

/// The states that could protect packets from `src` to `dst`.
fn states_for(states: &[State], src: IpAddr, dst: IpAddr) -> Vec<&State> {
    states
        .iter()
        .filter(|s| s.src == src && s.dst == dst)
        .collect()
}

pub(super) fn xfrm(n: &Ns<'_>, g: &DropGroup, f: &mut Finding) -> String {
    let Some(after) = n.after else {
        return "unknown".into();
    };
    for (name, what) in CHECKS {
        if let Some(d) = n.delta("Xfrm", name).filter(|d| *d > 0) {
            f.evidence.push(format!(
                "xfrm_stat: Xfrm{name} +{d}{} (packets refused by {what})",
                n.between
            ));
        }
    }
    let Some((src, dst)) = g.addrs else {
        f.evidence.push(format!(
            "{} IPsec policies in {}; without the packets' addresses none can be matched",
            after.xfrm_policies.len(),
            n.name
        ));
        return "unmatched".into();
    };
    let proto = proto_number(g.protocol.as_deref());
    let forwarded = g.function.as_deref().is_some_and(|f| f.contains("forward"));
    let dir = if forwarded { 2 } else { 0 };
    let mut matching: Vec<&Policy> = after
        .xfrm_policies
        .iter()
        .filter(|p| p.dir == dir && p.selector.matches(src, dst, proto, None, g.dport))
        .collect();
    // The kernel takes the policy of lowest priority value (then the older one); one
    // that matched in the window goes first whatever its rank.
    matching.sort_by_key(|p| (!used_in_window(n, p), p.priority, p.index));
    let count = g.count;
    let what = match (proto, g.dport) {
        (Some(p), Some(port)) => format!(
            "{} {src} -> {}",
            proto_name(p),
            std::net::SocketAddr::new(dst, port)
        ),
        _ => format!("{src} -> {dst}"),
    };
    let Some(p) = matching.first() else {
        let dir_name = if forwarded { "fwd" } else { "in" };
        f.evidence.push(format!(
            "ip xfrm policy in {}: none of its {} policies matches {what} (dir {dir_name})",
            n.name,
            after.xfrm_policies.len()
        ));
        f.summary = format!(
            "{count} packets {what} in {} failed the IPsec policy check, and no policy matches them: the default policy for dir {dir_name} blocks",
            n.name
        );
        f.fix = format!(
            "add a policy for them, or accept by default: {}ip xfrm policy setdefault {dir_name} accept",
            n.prefix
        );
        return format!("default|{dir_name}");
    };
    let used = if used_in_window(n, p) {
        ", matched in the window (its use time moved)"
    } else {
        ""
    };
    f.evidence.push(format!(
        "ip xfrm policy in {}: {}{used}",
        n.name,
        p.describe()
    ));
    if matching.len() > 1 {
        f.evidence.push(format!(
            "{} other policies match too, after it in the kernel's order",
            matching.len() - 1
        ));
    }
    let delete = format!("{}ip xfrm policy delete {}", n.prefix, p.identity());
    if p.blocks() {
        f.summary = format!(
            "{count} packets {what} in {} refused by the IPsec policy `{}`: its action is block",
            n.name,
            p.selector.text()
        );
        f.fix = format!(
            "{delete} (or, if these packets must stay out, the drops are the policy doing its job)"
        );
    } else {
        let states = states_for(&after.xfrm_states, src, dst);
        let wanted: Vec<String> = p
            .templates
            .iter()
            .filter(|t| !t.optional)
            .map(|t| proto_name(t.proto))
            .collect();
        f.evidence.push(if states.is_empty() {
            format!(
                "ip xfrm state in {}: no state (SA) from {src} to {dst}",
                n.name
            )
        } else {
            format!(
                "ip xfrm state in {}: {}",
                n.name,
                states
                    .iter()
                    .map(|s| format!("{} ({} packets)", s.describe(), s.packets))
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        });
        f.summary = format!(
            "{count} packets {what} in {} arrived without the {} the IPsec policy `{}` demands: the sender does not protect them",
            n.name,
            if wanted.is_empty() { "transform".to_owned() } else { wanted.join("+") },
            p.selector.text()
        );
        f.fix = format!(
            "set up the SA on the sender ({src}) so it protects them, or, if they are meant to come in clear: {delete}"
        );
    }
    format!("policy|{}", p.index)
}
