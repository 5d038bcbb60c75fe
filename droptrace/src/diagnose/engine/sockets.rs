//! Drops at sockets: no listener on the port, a full receive buffer, a full accept
//! queue, and TCP segments with old timestamps (PAWS).

use super::{DropGroup, Finding, Ns, Window};
use crate::diagnose::state::Socket;

pub(super) fn no_listener(w: &Window<'_>, n: &Ns<'_>, g: &DropGroup, f: &mut Finding) -> String {
    let proto = g
        .protocol
        .clone()
        .filter(|p| matches!(p.as_str(), "tcp" | "udp" | "udplite" | "sctp" | "dccp"));
    let (Some(proto), Some(port)) = (proto, g.dport) else {
        return no_listener_unknown(w, n, g, f);
    };
    if let Some(after) = n.after {
        let bound: Vec<_> = after
            .sockets
            .iter()
            .filter(|s| s.port == port && s.proto == proto)
            .collect();
        if bound.is_empty() {
            f.evidence.push(format!(
                "ss: no {proto} socket listens on port {port} in {}",
                n.name
            ));
        } else {
            for s in bound {
                f.evidence.push(format!(
                    "ss: {proto} {}:{} is bound{} (but not where these packets go)",
                    s.local_ip,
                    s.port,
                    s.process
                        .as_ref()
                        .map(|p| format!(" by {p}"))
                        .unwrap_or_default()
                ));
            }
        }
    }
    f.evidence.extend(namespace_counter(w, n, g, &proto));
    let bound = n
        .after
        .is_some_and(|a| a.sockets.iter().any(|s| s.port == port && s.proto == proto));
    f.summary = if bound {
        format!(
            "no socket accepts these {proto} packets to port {port} in {}: the port is bound, but not on their destination address; {} packets were refused",
            n.name, g.count
        )
    } else if n.after.is_none() {
        format!(
            "no socket took these {proto} packets to port {port} in {}: {} packets were refused",
            n.name, g.count
        )
    } else {
        format!(
            "nothing listens on {proto} port {port} in {}: {} packets were refused",
            n.name, g.count
        )
    };
    f.fix = format!(
        "start the service that should listen on {proto}/{port} there (check: {}ss -lnp '( sport = :{port} )'), or stop clients from sending to it",
        n.prefix
    );
    format!("{proto}|{port}")
}

/// The namespace-wide counter that such drops move, scoped to what it proves: it counts
/// every port, so with other ports refused in the window (or more than these drops) it is
/// given as the namespace's total.
fn namespace_counter(w: &Window<'_>, n: &Ns<'_>, g: &DropGroup, proto: &str) -> Option<String> {
    let (group, name, what) = match (proto, g.family.as_deref()) {
        ("udp", Some("ipv6")) => ("Udp6", "NoPorts", "Udp6 NoPorts"),
        ("udp", _) => ("Udp", "NoPorts", "Udp NoPorts"),
        ("tcp", _) => ("Tcp", "OutRsts", "Tcp OutRsts (resets sent)"),
        _ => return None,
    };
    let d = n.delta(group, name)?;
    let others: u64 = w
        .groups
        .iter()
        .filter(|o| {
            o.dport != g.dport
                && o.protocol.as_deref() == Some(proto)
                && o.reason == g.reason
                && o.places.first().map(|p| p.0) == g.places.first().map(|p| p.0)
        })
        .map(|o| o.count)
        .sum();
    Some(if others == 0 && d == g.count {
        format!("{what} +{d} in the window")
    } else {
        format!(
            "{what} +{d} in the window: the total of {} for every port{}, not only these {}",
            n.name,
            if others > 0 {
                format!(" ({others} other refused packets to other ports were seen)")
            } else {
                String::new()
            },
            g.count
        )
    })
}

/// No socket took the packets, and their protocol or port is not known (their headers were
/// not read): say so, with the namespace's counters as totals, and no made-up port.
fn no_listener_unknown(w: &Window<'_>, n: &Ns<'_>, g: &DropGroup, f: &mut Finding) -> String {
    f.evidence.push(format!(
        "the destination port is unknown: {}",
        w.details_unknown
            .as_deref()
            .unwrap_or("the packets' headers were not read (their events were lost)")
    ));
    for (group, name) in [("Udp", "NoPorts"), ("Udp6", "NoPorts"), ("Tcp", "OutRsts")] {
        if let Some(d) = n.delta(group, name).filter(|d| *d > 0) {
            f.evidence.push(format!(
                "{group} {name} +{d} in the window (the total of {} for every port)",
                n.name
            ));
        }
    }
    f.summary = format!(
        "no socket took {} {} packets in {} (their destination port is unknown): nothing listens where they were sent",
        g.count,
        g.protocol.as_deref().unwrap_or("IP"),
        n.name
    );
    f.fix = format!(
        "list what listens there ({}ss -lntu) and compare with the ports clients use; start the missing service or stop the clients",
        n.prefix
    );
    "unknown".into()
}

pub(super) fn rcvbuf(n: &Ns<'_>, g: Option<&DropGroup>, f: &mut Finding) -> String {
    let Some(after) = n.after else {
        return "unknown".into();
    };
    let mut key = "unknown".to_owned();
    // The sockets of the dropped packets; without a group, UDP ones (a TCP listener's
    // drop count is its accept-queue overflows, not its buffer).
    let wanted = g.and_then(|g| g.dport.zip(g.protocol.clone()));
    let relevant = |s: &&Socket| match &wanted {
        Some((port, proto)) => s.port == *port && s.proto == *proto,
        None => s.proto == "udp",
    };
    for s in after.sockets.iter().filter(relevant) {
        let Some(drops) = s.drops else { continue };
        let before = n
            .before
            .and_then(|b| {
                b.sockets
                    .iter()
                    .find(|p| p.proto == s.proto && p.port == s.port && p.local_ip == s.local_ip)
            })
            .and_then(|p| p.drops)
            .unwrap_or(0);
        if drops > before {
            f.evidence.push(format!(
                "ss: {} {}:{}{} rcvbuf {} bytes, {} bytes waiting, drops +{} (now {drops})",
                s.proto,
                s.local_ip,
                s.port,
                s.process
                    .as_ref()
                    .map(|p| format!(" of {p}"))
                    .unwrap_or_default(),
                s.rcvbuf.unwrap_or(0),
                s.recv_q,
                drops - before
            ));
            if key == "unknown" {
                f.summary = format!(
                    "the receive buffer of {} socket {}:{}{} in {} overflows: the application does not read fast enough",
                    s.proto,
                    s.local_ip,
                    s.port,
                    s.process.as_ref().map(|p| format!(" ({p})")).unwrap_or_default(),
                    n.name
                );
                key = format!("{}|{}|{}", s.proto, s.local_ip, s.port);
            }
        }
    }
    for (g, c) in [
        ("Udp", "RcvbufErrors"),
        ("Udp6", "RcvbufErrors"),
        ("TcpExt", "TCPRcvQDrop"),
    ] {
        if let Some(d) = n.delta(g, c).filter(|d| *d > 0) {
            f.evidence.push(format!("{g} {c} +{d} in the window"));
        }
    }
    let rmem = |k: &str| after.sysctl(k).unwrap_or("?").to_owned();
    f.evidence.push(format!(
        "net.core.rmem_default = {}, net.core.rmem_max = {}",
        rmem("net.core.rmem_default"),
        rmem("net.core.rmem_max")
    ));
    f.fix = format!(
        "let the application read faster or give it a bigger buffer (SO_RCVBUF, bounded by {}sysctl -w net.core.rmem_max=8388608)",
        n.prefix
    );
    key
}

pub(super) fn listen_overflow(n: &Ns<'_>, f: &mut Finding) -> String {
    for c in ["ListenOverflows", "ListenDrops"] {
        if let Some(d) = n.delta("TcpExt", c).filter(|d| *d > 0) {
            f.evidence.push(format!("TcpExt {c} +{d} in the window"));
        }
    }
    let mut key = "any".to_owned();
    if let Some(after) = n.after {
        for s in after
            .sockets
            .iter()
            .filter(|s| s.proto == "tcp" && s.send_q > 0 && s.recv_q >= s.send_q)
        {
            f.evidence.push(format!(
                "ss: listener {}:{}{} has its accept queue full ({} of backlog {})",
                s.local_ip,
                s.port,
                s.process
                    .as_ref()
                    .map(|p| format!(" of {p}"))
                    .unwrap_or_default(),
                s.recv_q,
                s.send_q
            ));
            if key == "any" {
                f.summary = format!(
                    "the accept queue of the listener on port {}{} in {} is full: new connections are dropped",
                    s.port,
                    s.process.as_ref().map(|p| format!(" ({p})")).unwrap_or_default(),
                    n.name
                );
                key = s.port.to_string();
            }
        }
        for k in [
            "net.core.somaxconn",
            "net.ipv4.tcp_max_syn_backlog",
            "net.ipv4.tcp_syncookies",
        ] {
            if let Some(v) = after.sysctl(k) {
                f.evidence.push(format!("{k} = {v}"));
            }
        }
    }
    if key == "any" {
        f.summary = format!(
            "listening sockets in {} overflow their SYN or accept queue",
            n.name
        );
    }
    f.fix = format!(
        "make the application accept faster or raise its listen backlog (bounded by {}sysctl -w net.core.somaxconn=4096)",
        n.prefix
    );
    key
}

pub(super) fn paws(n: &Ns<'_>, f: &mut Finding) -> String {
    for c in ["PAWSEstab", "PAWSActive", "PAWSPassive", "PAWSOldAck"] {
        if let Some(d) = n.delta("TcpExt", c).filter(|d| *d > 0) {
            f.evidence.push(format!("TcpExt {c} +{d} in the window"));
        }
    }
    if let Some(v) = n.after.and_then(|a| a.sysctl("net.ipv4.tcp_timestamps")) {
        f.evidence.push(format!("net.ipv4.tcp_timestamps = {v}"));
    }
    f.summary = format!(
        "TCP segments with old timestamps are rejected (PAWS) in {}: typical of several clients behind one NAT with unsynchronised clocks",
        n.name
    );
    f.fix = format!(
        "find the peers behind NAT (tcp_tw_recycle no longer exists since Linux 4.12); as a last resort disable timestamps on one side: {}sysctl -w net.ipv4.tcp_timestamps=0",
        n.prefix
    );
    "paws".into()
}
