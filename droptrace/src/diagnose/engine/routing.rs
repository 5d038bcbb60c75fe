//! Drops the kernel makes while routing (`ip_error`, `ip6_pkt_discard`, reasons such as
//! IP_INNOROUTES): forwarding disabled for a packet not for this host, no route, a route of
//! type unreachable/blackhole/prohibit, or a policy-routing rule. The namespace's routes and
//! rules name the entry the packet met; the kernel's own answer (`ip route get`, asked
//! after the window with the packet's addresses and interface) is the evidence.

use std::{collections::BTreeMap, net::IpAddr};

use super::{place, DropGroup, Finding, Ns, Window};
use crate::diagnose::{
    evidence::route::{walk, RouteAnswer, Walk},
    knowledge::{self, Cause},
    state::NsState,
};

/// The lookups to ask the kernel after the window, by namespace: for each routing drop
/// with known addresses, its destination as this host routes it (`DST`) and as it was
/// routed on arrival (`DST from SRC iif DEV`); and for the biggest groups of any cause,
/// their own path (see `path_query`).
pub fn route_queries(
    groups: &[DropGroup],
    after: &BTreeMap<u32, NsState>,
    default_netns: u32,
) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for g in groups {
        let class = knowledge::classify(g.reason.as_deref(), g.function.as_deref());
        if class.cause != Cause::NoRoute {
            continue;
        }
        let Some((src, dst)) = g.addrs else { continue };
        let (inode, ifindex) = place(default_netns, g);
        let iif = ifindex
            .and_then(|i| after.get(&inode)?.link(i))
            .map(|l| l.name.clone());
        for q in queries(src, dst, iif.as_deref()) {
            if !out.contains(&(inode, q.clone())) {
                out.push((inode, q));
            }
        }
    }
    // Every group's own path, the biggest groups first.
    let mut by_count: Vec<&DropGroup> = groups.iter().filter(|g| g.addrs.is_some()).collect();
    by_count.sort_by_key(|g| std::cmp::Reverse(g.count));
    for g in by_count.into_iter().take(PATH_GROUPS) {
        let (inode, ifindex) = place(default_netns, g);
        let iif = ifindex
            .and_then(|i| after.get(&inode)?.link(i))
            .map(|l| l.name.clone());
        if let Some(q) = path_query(g, iif.as_deref()) {
            if !out.contains(&(inode, q.clone())) {
                out.push((inode, q));
            }
        }
    }
    out
}

/// How a line of evidence on a group's own path begins: it names no object at fault.
pub(super) const PATH_PREFIX: &str = "path: ";

/// Drop groups whose own path is asked of the kernel, at most (the biggest first).
const PATH_GROUPS: usize = 8;

/// Whether a drop at `function` happened on the way out: in a qdisc, a device's
/// transmit, the neighbour layer or an output function. Its interface is where it was
/// going, not where it came from.
fn on_the_way_out(function: Option<&str>) -> bool {
    function.is_some_and(|f| {
        [
            "xmit",
            "output",
            "qdisc",
            "sch_",
            "neigh",
            "tcf_",
            "dst_discard_out",
        ]
        .iter()
        .any(|w| f.contains(w))
    })
}

/// The one lookup that shows a group's own path: as it was sent (`DST`) for a drop on
/// the way out or without an interface, as it was received (`DST from SRC iif DEV`)
/// otherwise.
fn path_query(g: &DropGroup, iif: Option<&str>) -> Option<String> {
    let (src, dst) = g.addrs?;
    Some(match iif {
        Some(i) if !on_the_way_out(g.function.as_deref()) => format!("{dst} from {src} iif {i}"),
        _ => dst.to_string(),
    })
}

/// What the kernel does with the packet of a group, asked after the window (see
/// `route_queries`), with what that means for the drop: one evidence line.
pub(super) fn path(
    w: &Window<'_>,
    n: &Ns<'_>,
    g: &DropGroup,
    iface: Option<&str>,
    f: &mut Finding,
) {
    let (Some(after), Some((src, _))) = (n.after, g.addrs) else {
        return;
    };
    let Some(q) = path_query(g, iface) else {
        return;
    };
    let Some(lookup) = after.route_lookup(&q) else {
        return;
    };
    let out = on_the_way_out(g.function.as_deref());
    let meaning = match (&lookup.answer, &lookup.error) {
        (Some(a), _) if matches!(a.kind.as_str(), "local" | "broadcast" | "multicast") => {
            if out {
                "addressed to this host itself".to_owned()
            } else {
                "delivered to this host: routing is not what drops it".to_owned()
            }
        }
        (Some(a), _) if REFUSING.contains(&a.kind.as_str()) => {
            format!("a route of type {} refuses it", a.kind)
        }
        (Some(a), _) => {
            let dev = a.dev.as_deref().unwrap_or("?");
            match (out, iface) {
                (true, Some(i)) if i != dev => {
                    format!("it leaves by {dev}, yet it was dropped on {i}")
                }
                (true, _) => format!("it leaves by {dev}, where it was dropped"),
                (false, Some(i)) if i == dev => {
                    format!("not for this host: it would be forwarded back out {dev}, where it came in")
                }
                (false, _) => format!("not for this host: it is forwarded out {dev}"),
            }
        }
        (None, Some(e)) if e.contains("cross-device") => format!(
            "refused on arrival: the route back to {src} leaves by another interface (reverse-path filter)"
        ),
        (None, Some(e)) => format!("the kernel refuses it: {e}"),
        (None, None) => return,
    };
    f.evidence.push(format!(
        "{PATH_PREFIX}ip route get {q} (in {}): {} ({meaning})",
        n.name,
        lookup.text()
    ));
    if let Some(a) = &lookup.answer {
        if !matches!(a.kind.as_str(), "local" | "broadcast" | "multicast")
            && !REFUSING.contains(&a.kind.as_str())
        {
            if let Some((_, dst)) = g.addrs {
                next_hop(w, n, a, dst, g, f);
            }
        }
    }
}

/// The neighbour entry the packet's route sends it by (the gateway's, or the
/// destination's on a link route), as sampled after the window: its state and
/// link-layer address, and whether that address is the other end's where the device is a
/// pair. A drop by the neighbour layer (`NEIGH_*`) whose family named nothing is said to
/// be that entry's in the summary.
fn next_hop(
    w: &Window<'_>,
    n: &Ns<'_>,
    route: &RouteAnswer,
    dst: IpAddr,
    g: &DropGroup,
    f: &mut Finding,
) {
    let (Some(after), Some(dev)) = (n.after, route.dev.as_deref()) else {
        return;
    };
    // Loopback, tunnels and point-to-point links (no link-layer address) have no
    // neighbour to resolve.
    let link = after.links.iter().find(|l| l.name == dev);
    if dev == "lo" || link.is_some_and(|l| l.address.is_none()) {
        return;
    }
    let hop = route.gateway.clone().unwrap_or_else(|| dst.to_string());
    let same_ip = |a: &str| {
        a.parse::<IpAddr>().ok().map(|a| a.to_canonical())
            == hop.parse::<IpAddr>().ok().map(|h| h.to_canonical())
    };
    let entry = after
        .neighbours
        .iter()
        .find(|e| e.dev == dev && same_ip(&e.dst));
    // The other end of a pair device, and its link-layer address.
    // A port of a bridge (docker0, a CNI bridge, OVS) forwards to whatever is behind it:
    // its own address says nothing about the receiver.
    let other = link.and_then(|l| {
        let p = l.peer.as_ref().filter(|p| p.master.is_none())?;
        let ns = p
            .netns
            .filter(|i| *i != n.inode)
            .map(|i| format!(" in {}", w.names.label(i)))
            .unwrap_or_default();
        Some((format!("{}{ns}", p.name), p.address.clone()?))
    });
    let unresolved = |e: &crate::diagnose::evidence::neigh::Neighbour| {
        e.lladdr.is_none()
            || e.state
                .iter()
                .any(|s| matches!(s.as_str(), "FAILED" | "INCOMPLETE"))
    };
    let meaning = match (entry, &other) {
        (None, _) => format!(
            "no entry: {hop} is not resolved on {dev} now (never sent to since the table was cleared, or removed)"
        ),
        (Some(e), _) if unresolved(e) => format!(
            "unresolved: {hop} does not answer {} on {dev}",
            if dst.is_ipv4() { "ARP" } else { "neighbour discovery" }
        ),
        (Some(e), Some((peer, address))) => {
            if e.lladdr.as_deref().is_some_and(|l| l.eq_ignore_ascii_case(address)) {
                format!("the address of {peer}, the other end of {dev}: the right receiver")
            } else {
                format!(
                    "not the address of {peer} ({address}), the other end of {dev}: frames sent by it reach no one there"
                )
            }
        }
        (Some(_), None) => "resolved".to_owned(),
    };
    let text = entry
        .map(|e| e.describe())
        .unwrap_or_else(|| format!("{hop} on {dev}: none"));
    f.evidence.push(format!(
        "neighbour: ip neigh show {hop} dev {dev} (in {}): {text} ({meaning})",
        n.name
    ));
    // The neighbour layer's drops: by reason, or by site where the kernel gives none.
    let by_neighbour = g.reason.as_deref().is_some_and(|r| r.starts_with("NEIGH_"))
        || g.function
            .as_deref()
            .is_some_and(|f| f.starts_with("neigh_"));
    if by_neighbour && f.cause == Cause::Other.id() {
        let said =
            match entry {
                Some(e) if unresolved(e) => {
                    format!(
                "the next hop {hop} does not answer {} on {dev} (its neighbour entry is {})",
                if dst.is_ipv4() { "ARP" } else { "neighbour discovery" },
                e.state.join(",")
            )
                }
                None => format!("there is no neighbour entry for the next hop {hop} on {dev} now"),
                Some(_) => format!("the next hop {hop} on {dev}: {meaning}"),
            };
        f.cause = Cause::Neighbour.id();
        f.summary = format!("{}; {said}", f.summary.trim_end_matches('.'));
        f.fix = format!(
            "check that {hop} is up on {dev}'s link and answers {} ({}ip neigh show {hop} dev {dev}), or that the route to {dst} is the right one ({}ip route get {dst})",
            if dst.is_ipv4() { "ARP" } else { "neighbour discovery" },
            n.prefix,
            n.prefix
        );
    }
}

fn queries(src: IpAddr, dst: IpAddr, iif: Option<&str>) -> Vec<String> {
    let mut q = vec![dst.to_string()];
    if let Some(i) = iif {
        q.push(format!("{dst} from {src} iif {i}"));
    }
    q
}

fn family_of(g: Option<&DropGroup>) -> Option<&'static str> {
    let g = g?;
    if let Some((_, dst)) = g.addrs {
        return Some(if dst.is_ipv4() { "ipv4" } else { "ipv6" });
    }
    match g.family.as_deref() {
        Some("ipv4") => Some("ipv4"),
        Some("ipv6") => Some("ipv6"),
        _ => {
            let f = g.function.as_deref()?;
            if f.starts_with("ip6") {
                Some("ipv6")
            } else if f.starts_with("ip_") {
                Some("ipv4")
            } else {
                None
            }
        }
    }
}

/// The forwarding sysctls that decide for packets arriving on `iface`: (name, value).
fn forwarding(after: &NsState, family: &str, iface: Option<&str>) -> Vec<(String, String)> {
    let v = if family == "ipv6" { "ipv6" } else { "ipv4" };
    // IPv4 decides by the arriving interface's setting, IPv6 by `all` (ip6_forward): the
    // deciding one comes first.
    let mut names = vec![format!("net.{v}.conf.all.forwarding")];
    if let Some(i) = iface {
        let dev = format!("net.{v}.conf.{i}.forwarding");
        if family == "ipv6" {
            names.push(dev);
        } else {
            names.insert(0, dev);
        }
    }
    names
        .into_iter()
        .filter_map(|n| after.sysctl(&n).map(|val| (n.clone(), val.to_owned())))
        .collect()
}

/// Whether the deciding sysctl (the first) says packets not for this host are not
/// forwarded.
fn forwarding_off(values: &[(String, String)]) -> bool {
    values.first().is_some_and(|(_, v)| v == "0")
}

/// `ip -6 ` for IPv6 commands.
fn ip_cmd(family: &str) -> &'static str {
    if family == "ipv6" {
        "ip -6"
    } else {
        "ip"
    }
}

const REFUSING: &[&str] = &["unreachable", "blackhole", "prohibit"];

pub(super) fn routing(
    n: &Ns<'_>,
    g: Option<&DropGroup>,
    iface: Option<&str>,
    f: &mut Finding,
) -> String {
    f.cause = Cause::NoRoute.id();
    let count = f.drops;
    let Some(after) = n.after else {
        f.summary = format!(
            "routing dropped {count} packets in {}, whose state could not be read",
            n.name
        );
        return "unknown".into();
    };
    let Some(family) = family_of(g) else {
        f.summary = format!(
            "routing dropped {count} packets in {}; their address family is unknown",
            n.name
        );
        return "unknown".into();
    };
    let routing = after.routing(family);
    let fwd = forwarding(after, family, iface);
    if !fwd.is_empty() {
        f.evidence.push(
            fwd.iter()
                .map(|(k, v)| format!("{k} = {v}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
    let ip = ip_cmd(family);
    let Some((src, dst)) = g.and_then(|g| g.addrs) else {
        return without_addresses(n, family, &fwd, after, f);
    };
    // The kernel's answers, asked after the window.
    for q in queries(src, dst, iface) {
        if let Some(l) = after.route_lookup(&q) {
            f.evidence
                .push(format!("{ip} route get {q} (in {}): {}", n.name, l.text()));
        }
    }
    let local = after
        .route_lookup(&dst.to_string())
        .and_then(|l| l.answer.as_ref())
        .map(|a| {
            matches!(
                a.kind.as_str(),
                "local" | "broadcast" | "multicast" | "anycast"
            )
        });
    match walk(&routing.rules, &routing.routes, Some(src), dst, iface) {
        Walk::Rule(rule) => {
            f.summary = format!(
                "the policy-routing rule `{}` refuses packets to {dst} in {}: {count} dropped",
                rule.text, n.name
            );
            f.evidence.push(format!(
                "{ip} rule: `{}` ({}) is the first rule that matches {src} -> {dst}",
                rule.text, rule.action
            ));
            f.fix = format!(
                "remove the rule if these packets should be routed: {}{ip} rule del {}",
                n.prefix, rule.text
            );
            format!("rule|{}", rule.priority)
        }
        Walk::Route(rule, route) if REFUSING.contains(&route.kind.as_str()) => {
            let via_rule = if rule.table.as_deref() == Some("main") {
                String::new()
            } else {
                format!(" (reached through rule `{}`)", rule.text)
            };
            f.summary = format!(
                "the {} route `{}` in table {} takes packets to {dst} in {}: {count} dropped",
                route.kind, route.dst, route.table, n.name
            );
            f.evidence.push(format!(
                "{ip} route: `{} {}` in table {} is the longest match for {dst}{via_rule}",
                route.kind, route.dst, route.table
            ));
            f.fix = format!(
                "remove that route if these packets should be routed (and add the one that should carry them): {}{ip} route del {} {} table {}",
                n.prefix, route.kind, route.dst, route.table
            );
            if !via_rule.is_empty() {
                f.fix.push_str(&format!(
                    "; or, if they should not use table {} at all: {}{ip} rule del {}",
                    route.table, n.prefix, rule.text
                ));
            }
            format!("route|{}|{}", route.table, route.dst)
        }
        Walk::Route(_, route)
            if forwarding_off(&fwd) && local != Some(true) && route.kind != "local" =>
        {
            forwarding_disabled(n, family, dst, &fwd, f);
            "forwarding".into()
        }
        Walk::NoRoute(skipped) => {
            f.summary = format!("no route to {dst} in {}: {count} packets dropped", n.name);
            f.evidence.push(format!(
                "{ip} route: no table the rules lead to has a route covering {dst} (no default route)"
            ));
            if forwarding_off(&fwd) && local != Some(true) {
                f.evidence.push(format!(
                    "forwarding is off as well ({} = 0): with a route, packets not for this host would still be dropped",
                    fwd[0].0
                ));
            }
            if !skipped.is_empty() {
                f.evidence.push(format!(
                    "rules not evaluated here (they match on marks, ports or other selectors): {}",
                    skipped
                        .iter()
                        .map(|r| format!("`{}`", r.text))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            f.fix = format!(
                "add a route that covers {dst} in {} (a default route through the next hop toward it, with `{}{ip} route add`), or stop sending such packets here",
                n.name, n.prefix
            );
            "noroute".into()
        }
        Walk::Route(_, route) => {
            f.summary = format!(
                "routing dropped {count} packets to {dst} in {}, though table {} routes it (`{} {}`)",
                n.name, route.table, route.kind, route.dst
            );
            f.evidence.push(format!(
                "{ip} route: `{} {}` in table {} matches {dst}; the lookup on arrival may differ (source address validity, interface down)",
                route.kind, route.dst, route.table
            ));
            "unexplained".into()
        }
    }
}

fn forwarding_disabled(
    n: &Ns<'_>,
    family: &str,
    dst: IpAddr,
    fwd: &[(String, String)],
    f: &mut Finding,
) {
    f.cause = Cause::ForwardingDisabled.id();
    let (name, _) = &fwd[0];
    f.summary = format!(
        "{} does not forward {}: {name} = 0, and packets to {dst} are not for this host; {} dropped",
        n.name,
        if family == "ipv6" { "IPv6" } else { "IPv4" },
        f.drops
    );
    f.evidence.push(format!(
        "{dst} is not an address of {}: the packets were to be forwarded",
        n.name
    ));
    let v = if family == "ipv6" { "ipv6" } else { "ipv4" };
    f.fix = format!(
        "if {} should route them: {}sysctl -w net.{v}.conf.all.forwarding=1; if it should not, the sender's route to {dst} wrongly points at it",
        n.name, n.prefix
    );
}

/// Without the packets' addresses (classic tracepoint, or their events lost) the lookup
/// cannot be replayed: say so, and name what in the namespace refuses packets.
fn without_addresses(
    n: &Ns<'_>,
    family: &str,
    fwd: &[(String, String)],
    after: &NsState,
    f: &mut Finding,
) -> String {
    let routing = after.routing(family);
    let ip = ip_cmd(family);
    let refusing: Vec<String> = routing
        .routes
        .iter()
        .filter(|r| REFUSING.contains(&r.kind.as_str()))
        .map(|r| format!("route `{} {}` in table {}", r.kind, r.dst, r.table))
        .chain(
            routing
                .rules
                .iter()
                .filter(|r| REFUSING.contains(&r.action.as_str()))
                .map(|r| format!("rule `{}`", r.text)),
        )
        .collect();
    f.evidence.push(
        "the packets' addresses are unknown (no packet details were read: the classic tracepoint, or their events were lost), so the route lookup cannot be replayed".into(),
    );
    if !refusing.is_empty() {
        f.evidence.push(format!(
            "{ip}: entries that refuse packets in {}: {}",
            n.name,
            refusing.join(", ")
        ));
    }
    let count = f.drops;
    if forwarding_off(fwd) && refusing.is_empty() {
        f.cause = Cause::ForwardingDisabled.id();
        let v = if family == "ipv6" { "ipv6" } else { "ipv4" };
        f.summary = format!(
            "routing dropped {count} packets in {}, which does not forward ({} = 0): most likely packets not for this host",
            n.name, fwd[0].0
        );
        f.fix = format!(
            "if {} should route them: {}sysctl -w net.{v}.conf.all.forwarding=1; run droptrace where BTF is available to see their addresses",
            n.name, n.prefix
        );
        return "forwarding".into();
    }
    f.summary = if refusing.is_empty() {
        format!(
            "routing dropped {count} packets in {} (no route for their destination); their addresses are unknown",
            n.name
        )
    } else {
        format!(
            "routing dropped {count} packets in {}: {} refuses packets",
            n.name, refusing[0]
        )
    };
    f.fix = format!(
        "check the routes and rules ({}{ip} route show table all; {}{ip} rule) for the destinations these packets had; where BTF is available droptrace reads them and asks the kernel's route lookup itself",
        n.prefix, n.prefix
    );
    "unknown".into()
}
