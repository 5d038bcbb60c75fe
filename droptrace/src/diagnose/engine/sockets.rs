//! Drops at sockets: no listener on the port, a full receive buffer, a full accept
//! queue, and TCP segments with old timestamps (PAWS); and the housekeeping among packets
//! nothing listens for (multicast nobody joined, replies to client ports whose socket is
//! gone, late TCP segments of connections already closed), decided from the packet and
//! the state now.

use super::{DropGroup, Finding, Ns, Window};
use crate::diagnose::state::{Connection, NsState, Socket};

pub(super) fn no_listener(w: &Window<'_>, n: &Ns<'_>, g: &DropGroup, f: &mut Finding) -> String {
    let proto = g
        .protocol
        .clone()
        .filter(|p| matches!(p.as_str(), "tcp" | "udp" | "udplite" | "sctp" | "dccp"));
    let (Some(proto), Some(port)) = (proto, g.dport) else {
        return no_listener_unknown(w, n, g, f);
    };
    let dest = g.addrs.map(|(_, d)| d);
    let iface = f.iface.clone();
    // Each socket on the port here, and why it does not take these packets.
    let mut mismatches: Vec<(&Socket, String)> = Vec::new();
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
                let why = mismatch(s, dest, iface.as_deref());
                f.evidence
                    .push(format!("ss: {proto} {} is bound{}: {why}", local(s), by(s)));
                mismatches.push((s, why));
            }
        }
    }
    f.evidence.extend(namespace_counter(w, n, g, &proto));
    // Not here: is it listening in another namespace?
    let elsewhere: Vec<(u32, &Socket)> = if mismatches.is_empty() {
        w.after
            .iter()
            .filter(|(inode, _)| **inode != n.inode)
            .flat_map(|(inode, st)| {
                st.sockets
                    .iter()
                    .filter(|s| s.port == port && s.proto == proto)
                    .map(|s| (*inode, s))
            })
            .collect()
    } else {
        Vec::new()
    };
    for (inode, s) in &elsewhere {
        f.evidence.push(format!(
            "ss: {proto} {} listens in {}{}, not in {} where these packets arrive",
            local(s),
            w.names.describe(*inode),
            by(s),
            n.name
        ));
    }
    let to = match dest {
        Some(d) => crate::pipeline::event::endpoint(d, port),
        None => format!("port {port}"),
    };
    if let Some((s, why)) = mismatches.first() {
        f.summary = format!(
            "no socket accepts these {proto} packets to {to} in {}: the port is bound{}, but {why}; {} packets were refused",
            n.name,
            by(s),
            g.count
        );
        f.fix = match dest {
            Some(d) if s.device.is_none() => format!(
                "make {} listen on {} or on every address ({}) instead of {} (its bind or listen setting)",
                s.process.as_deref().unwrap_or("the service"),
                crate::pipeline::event::endpoint(d, port),
                if d.is_ipv4() { format!("0.0.0.0:{port}") } else { format!("[::]:{port}") },
                local(s)
            ),
            _ => format!(
                "make {} listen where these packets go ({}), not only on {}",
                s.process.as_deref().unwrap_or("the service"),
                to,
                local(s)
            ),
        };
        return format!("{proto}|{port}");
    }
    if let Some((inode, s)) = elsewhere.first() {
        f.summary = format!(
            "nothing listens on {proto} port {port} in {}, where these packets arrive; a socket on that port listens in {}{}: {} packets were refused",
            n.name,
            w.names.describe(*inode),
            by(s),
            g.count
        );
        f.fix = format!(
            "run the service in {} (or send these packets to {}'s address); check: {}ss -lnp '( sport = :{port} )'",
            n.name,
            w.names.describe(*inode),
            n.prefix
        );
        return format!("{proto}|{port}");
    }
    if let Some(after) = n.after {
        // Apart from other findings on the port, one per sender: each says its own.
        if housekeeping(n, after, g, &proto, port, f) {
            let from = g.addrs.map(|(s, _)| s.to_string()).unwrap_or_default();
            return format!("{proto}|{port}|housekeeping|{from}");
        }
    }
    f.summary = if n.after.is_none() {
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

/// The namespace's ephemeral port range (`net.ipv4.ip_local_port_range`, also IPv6's).
fn ephemeral_range(after: &NsState) -> Option<(u16, u16)> {
    let text = after.sysctl("net.ipv4.ip_local_port_range")?;
    let mut words = text.split_whitespace().map(str::parse::<u16>);
    Some((words.next()?.ok()?, words.next()?.ok()?))
}

/// Packets nothing listens for that are housekeeping, decided from the packet and the
/// state now, never from the reason alone (no socket holds the port here, which the
/// caller has seen): multicast or broadcast nobody here joined, and replies from a
/// server's port to a client port of the ephemeral range whose socket is gone (a
/// query that timed out, a late segment of a connection already closed), and TCP
/// segments none of which opens a connection (their flags read: ACK, FIN, RST of
/// connections no socket holds any more). A TCP connection attempt (SYN) is never
/// housekeeping. Takes the finding and returns true when it is one of them.
fn housekeeping(
    n: &Ns<'_>,
    after: &NsState,
    g: &DropGroup,
    proto: &str,
    port: u16,
    f: &mut Finding,
) -> bool {
    if proto == "tcp" {
        match g.tcp_segments {
            Some((syn, other)) if syn > 0 => {
                f.evidence.push(format!(
                    "droptrace read the flags of {} of these tcp segments: {syn} were connection attempts (SYN)",
                    syn + other
                ));
                return false;
            }
            Some((_, other)) => {
                late_segments(n, g, port, other, f);
                return true;
            }
            None => {}
        }
    }
    let Some((src, dst)) = g.addrs else {
        return false;
    };
    let count = g.count;
    let group_address = match dst {
        std::net::IpAddr::V4(a) => a.is_multicast() || a.is_broadcast(),
        std::net::IpAddr::V6(a) => a.is_multicast(),
    };
    if group_address {
        f.benign = true;
        f.evidence.push(format!(
            "{dst} is a multicast or broadcast address, and no {proto} socket in {} is bound to port {port}",
            n.name
        ));
        f.summary = format!(
            "{count} {proto} packets to {} in {} that no socket here listens for (multicast or broadcast nobody joined): housekeeping",
            crate::pipeline::event::endpoint(dst, port),
            n.name
        );
        f.fix = format!(
            "none needed; a service that wants them binds {proto} port {port} and joins {dst}"
        );
        return true;
    }
    let (Some((low, high)), Some(sport)) = (ephemeral_range(after), g.sport) else {
        return false;
    };
    let ephemeral = |p: u16| (low..=high).contains(&p);
    if !ephemeral(port) || ephemeral(sport) {
        return false;
    }
    f.benign = true;
    f.evidence.push(format!(
        "port {port} is in {}'s ephemeral range {low}-{high} (net.ipv4.ip_local_port_range): a client's port; the sender's {sport} is not",
        n.name
    ));
    f.summary = format!(
        "{count} {proto} packets from {} to the client port {port} in {}, whose socket is gone: replies or late segments for a query or connection this host already closed (housekeeping)",
        crate::pipeline::event::endpoint(src, sport),
        n.name
    );
    f.fix = format!(
        "none needed unless they are many: then the client gives up before {src} answers (raise its timeout), or they are not replies at all (a flood aimed at high ports)"
    );
    true
}

/// TCP segments to a port no socket holds, none of them a connection attempt: the late
/// ACKs, FINs and RSTs of connections closed here already (the socket gone, its TIME_WAIT
/// over or never entered, a service restarted).
fn late_segments(n: &Ns<'_>, g: &DropGroup, port: u16, read: u64, f: &mut Finding) {
    f.benign = true;
    f.evidence.push(format!(
        "droptrace read the flags of {read} of these tcp segments: none was a connection attempt (SYN); they are segments of connections (ACK, FIN, RST) that no socket here holds"
    ));
    let from = g
        .addrs
        .zip(g.sport)
        .map(|((src, _), sport)| format!(" from {}", crate::pipeline::event::endpoint(src, sport)))
        .unwrap_or_default();
    f.summary = format!(
        "{} tcp segments{from} to port {port} in {}, none of the {read} whose flags were read a connection attempt: late segments of connections this host already closed (housekeeping)",
        g.count, n.name
    );
    f.fix = format!(
        "none needed unless they are many or keep coming: then a peer still sends on connections closed here (a service restarted, a NAT or load balancer that kept its state: check it), or they are not segments of real connections at all (an ACK scan); check: {}ss -tan '( sport = :{port} )'",
        n.prefix
    );
}

/// ` by nginx (pid 10)`, or nothing when ss did not say.
fn by(s: &Socket) -> String {
    s.process
        .as_ref()
        .map(|p| format!(" by {p}"))
        .unwrap_or_default()
}

/// `127.0.0.1:8080`, `[::1]:8080`, `0.0.0.0%eth1:8080`, as ss prints the local end.
fn local(s: &Socket) -> String {
    let addr = if s.local_ip.contains(':') {
        format!("[{}]", s.local_ip)
    } else {
        s.local_ip.clone()
    };
    match &s.device {
        Some(dev) => format!("{addr}%{dev}:{}", s.port),
        None => format!("{addr}:{}", s.port),
    }
}

/// Why a socket on the right port does not take packets to `dest` arriving on `iface`.
fn mismatch(s: &Socket, dest: Option<std::net::IpAddr>, iface: Option<&str>) -> String {
    if let Some(dev) = &s.device {
        if iface.is_some_and(|i| i != dev) {
            return format!(
                "it is bound to device {dev}, and these arrive on {}",
                iface.unwrap_or("?")
            );
        }
    }
    let wildcard = matches!(s.local_ip.as_str(), "*" | "0.0.0.0" | "::");
    let ip: Option<std::net::IpAddr> = s.local_ip.parse().ok();
    match (ip, dest) {
        (Some(ip), Some(d)) if !wildcard && ip.is_loopback() && !d.is_loopback() => format!(
            "only on the loopback address {}, and these go to {d}",
            local(s)
        ),
        (Some(ip), Some(d)) if !wildcard && ip != d => {
            format!("only on {}, and these go to {d}", local(s))
        }
        (_, Some(d)) if s.local_ip == "0.0.0.0" && d.is_ipv6() => format!(
            "on IPv4 only ({}), and these are IPv6",
            local(s)
        ),
        (_, Some(d)) if s.local_ip == "::" && d.is_ipv4() => format!(
            "on IPv6 ({}), which takes IPv4 only without IPV6_V6ONLY: this one has it set, or net.ipv6.bindv6only is 1",
            local(s)
        ),
        _ => format!("on {}, not where these packets go", local(s)),
    }
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

/// The growth of a socket's own drop counter in the window (`None` without a sample of
/// it after the window; a socket not seen before counts from 0).
fn drops_grown(n: &Ns<'_>, s: &Socket) -> Option<u64> {
    let now = s.drops?;
    let before = n
        .before
        .and_then(|b| {
            b.sockets
                .iter()
                .find(|p| p.proto == s.proto && p.port == s.port && p.local_ip == s.local_ip)
        })
        .and_then(|p| p.drops)
        .unwrap_or(0);
    Some(now.saturating_sub(before))
}

/// For a drop at a socket of any cause: the sockets of its protocol and port whose own
/// drop counter grew with the drops in the window (ss's skmem `d`), with their owner: the
/// socket that counted them. One evidence line; nothing when none grew.
pub(super) fn counted_on_socket(n: &Ns<'_>, g: &DropGroup, f: &mut Finding) {
    let (Some(after), Some(port), Some(proto)) = (n.after, g.dport, g.protocol.as_deref()) else {
        return;
    };
    let grew: Vec<(&Socket, u64)> = after
        .sockets
        .iter()
        .filter(|s| s.port == port && s.proto == proto)
        .filter_map(|s| Some((s, drops_grown(n, s).filter(|d| *d > 0)?)))
        .collect();
    if grew.is_empty() {
        return;
    }
    let name = |s: &Socket| {
        format!(
            "{} {}:{}{}",
            s.proto,
            s.local_ip,
            s.port,
            s.process
                .as_ref()
                .map(|p| format!(" of {p}"))
                .unwrap_or_default()
        )
    };
    f.evidence.push(format!(
        "ss: the socket's own drop counter grew{}: {}",
        n.between,
        grew.iter()
            .map(|(s, d)| format!("{} drops +{d} (now {})", name(s), s.drops.unwrap_or(0)))
            .collect::<Vec<_>>()
            .join("; ")
    ));
    // Where the family named nothing and one socket counted them all, it is the object.
    if let [(s, d)] = grew.as_slice() {
        if f.cause == super::Cause::Other.id() && super::moved::in_step(*d, g.count) {
            f.summary = format!(
                "{}; counted by the socket {} (its drops +{d})",
                f.summary.trim_end_matches('.'),
                name(s)
            );
        }
    }
}

/// For TCP drops on a port: the connections on that local port whose own drop counter
/// grew in the window (a segment dropped at an established socket counts there: out of
/// its window, an old timestamp, no memory...), with their peer, state and owner; the one
/// of the sampled packet first. Where their growth is these drops' and the family named
/// nothing, the summary names the connection. Nothing when none grew.
pub(super) fn counted_on_connection(n: &Ns<'_>, g: &DropGroup, f: &mut Finding) {
    let (Some(after), Some(port), Some("tcp")) = (n.after, g.dport, g.protocol.as_deref()) else {
        return;
    };
    let sampled = g.addrs.zip(g.sport);
    // ss prints a dual-stack socket's IPv4 peer as `::ffff:a.b.c.d`.
    let ip = |text: &str| {
        text.parse::<std::net::IpAddr>()
            .ok()
            .map(|a| a.to_canonical())
    };
    let is_sampled = |c: &Connection| {
        sampled.is_some_and(|((src, dst), sport)| {
            c.peer_port == sport
                && ip(&c.peer_ip) == Some(src.to_canonical())
                && ip(&c.local_ip) == Some(dst.to_canonical())
        })
    };
    // The same socket: by inode where ss gave both, else by its two ends.
    let same = |a: &Connection, b: &Connection| {
        (&a.local_ip, a.port, &a.peer_ip, a.peer_port)
            == (&b.local_ip, b.port, &b.peer_ip, b.peer_port)
            && (a.inode.is_none() || b.inode.is_none() || a.inode == b.inode)
    };
    let mut grew: Vec<(&Connection, u64)> = after
        .connections
        .iter()
        .filter(|c| c.port == port)
        .filter_map(|c| {
            let before = n
                .before
                .and_then(|b| b.connections.iter().find(|p| same(p, c)))
                .and_then(|p| p.drops)
                .unwrap_or(0);
            let d = c.drops?.saturating_sub(before);
            (d > 0).then_some((c, d))
        })
        .collect();
    if grew.is_empty() {
        return;
    }
    grew.sort_by_key(|(c, d)| (!is_sampled(c), std::cmp::Reverse(*d)));
    let total: u64 = grew.iter().map(|(_, d)| d).sum();
    let describe = |c: &Connection| {
        let end = |ip: &str, port: u16| match ip.parse::<std::net::IpAddr>() {
            Ok(ip) => crate::pipeline::event::endpoint(ip, port),
            Err(_) => format!("{ip}:{port}"),
        };
        format!(
            "tcp {} <- {} ({}){}",
            end(&c.local_ip, c.port),
            end(&c.peer_ip, c.peer_port),
            c.state,
            c.process
                .as_ref()
                .map(|p| format!(" of {p}"))
                .unwrap_or_default()
        )
    };
    let shown: Vec<String> = grew
        .iter()
        .take(3)
        .map(|(c, d)| format!("{} drops +{d} (now {})", describe(c), c.drops.unwrap_or(0)))
        .collect();
    let more = grew.len().saturating_sub(shown.len());
    f.evidence.push(format!(
        "ss: the drop counter of {} connection{} on port {port} grew{}, by {total} in all: {}{}",
        grew.len(),
        if grew.len() == 1 { "" } else { "s" },
        n.between,
        shown.join("; "),
        if more > 0 {
            format!("; {more} more")
        } else {
            String::new()
        }
    ));
    if f.cause == super::Cause::Other.id() && super::moved::in_step(total, g.count) {
        f.summary = format!(
            "{}; counted by the connection {}{}",
            f.summary.trim_end_matches('.'),
            describe(grew[0].0),
            if grew.len() > 1 {
                format!(" and {} more", grew.len() - 1)
            } else {
                String::new()
            }
        );
    }
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
        let (Some(drops), Some(grown)) = (s.drops, drops_grown(n, s)) else {
            continue;
        };
        if grown > 0 {
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
                grown
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
    for k in ["net.core.rmem_default", "net.core.rmem_max"] {
        f.evidence
            .push(n.sysctl_line(k).unwrap_or_else(|| format!("{k}: not read")));
    }
    f.fix = format!(
        "let the application read faster or give it a bigger buffer (SO_RCVBUF, bounded by {})",
        n.set_sysctl("net.core.rmem_max", "8388608")
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
            f.evidence.extend(n.sysctl_line(k));
        }
    }
    if key == "any" {
        f.summary = format!(
            "listening sockets in {} overflow their SYN or accept queue",
            n.name
        );
    }
    f.fix = format!(
        "make the application accept faster or raise its listen backlog (bounded by {})",
        n.set_sysctl("net.core.somaxconn", "4096")
    );
    key
}

pub(super) fn paws(n: &Ns<'_>, f: &mut Finding) -> String {
    for c in ["PAWSEstab", "PAWSActive", "PAWSPassive", "PAWSOldAck"] {
        if let Some(d) = n.delta("TcpExt", c).filter(|d| *d > 0) {
            f.evidence.push(format!("TcpExt {c} +{d} in the window"));
        }
    }
    f.evidence.extend(n.sysctl_line("net.ipv4.tcp_timestamps"));
    f.summary = format!(
        "TCP segments with old timestamps are rejected (PAWS) in {}: typical of several clients behind one NAT with unsynchronised clocks",
        n.name
    );
    f.fix = format!(
        "find the peers behind NAT (tcp_tw_recycle no longer exists since Linux 4.12); as a last resort disable timestamps on one side: {}",
        n.set_sysctl("net.ipv4.tcp_timestamps", "0")
    );
    "paws".into()
}
