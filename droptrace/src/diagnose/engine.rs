//! From drops and two snapshots of the system to ranked findings. Pure: every input is
//! data, so it runs on fixtures. A cause is only claimed with evidence that moved (a rule
//! counter, a qdisc's drops, a kernel counter) or that is present (an attached program, an
//! MTU smaller than the dropped packets); otherwise the finding says what is missing.
use std::collections::BTreeMap;

use serde::Serialize;

use super::{
    knowledge::{self, Cause},
    state::{NsState, Rule},
};

/// A group of drops as the diagnosis sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DropGroup {
    pub function: Option<String>,
    /// `function+0xoff` or the address.
    pub location: String,
    pub reason: Option<String>,
    pub protocol: Option<String>,
    pub dport: Option<u16>,
    pub count: u64,
    /// (netns inode, ifindex) of recent samples, most frequent first.
    pub places: Vec<(u32, u32)>,
    pub max_len: u32,
    /// One recent packet, for people: "10.0.0.1:40000 -> 10.0.0.2:1678, 60 bytes".
    pub example: Option<String>,
}

/// What a namespace is called and how to run a command in it.
pub trait NamespaceNames {
    /// "netns web", "the host namespace".
    fn describe(&self, inode: u32) -> String;
    /// Prefix for a command run in it: "", "ip netns exec web ", "nsenter --net=... ".
    fn command_prefix(&self, inode: u32) -> String;
}

pub struct Window<'a> {
    pub groups: &'a [DropGroup],
    pub before: &'a BTreeMap<u32, NsState>,
    pub after: &'a BTreeMap<u32, NsState>,
    pub names: &'a dyn NamespaceNames,
    /// Namespace assumed for drops without samples (all their events were lost).
    pub default_netns: u32,
    /// droptrace's own namespace: machine-wide counters (softnet_stat) are read there only.
    pub host_netns: u32,
    pub secs: f64,
    /// Lines of the kernel log saying the conntrack table was full.
    pub conntrack_full_log_lines: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub cause: &'static str,
    pub drops: u64,
    /// Drops per second over the window.
    pub rate: f64,
    pub summary: String,
    pub evidence: Vec<String>,
    pub fix: String,
    /// Normal housekeeping drops, ranked after everything else.
    pub benign: bool,
    pub netns: Option<String>,
    pub reason: Option<String>,
    pub location: Option<String>,
    pub protocol: Option<String>,
    pub dport: Option<u16>,
    pub iface: Option<String>,
    #[serde(skip)]
    merge_key: String,
    #[serde(skip)]
    netns_inode: Option<u32>,
}

/// Ranked findings: real causes by drops, benign ones last.
pub fn diagnose(w: &Window<'_>) -> Vec<Finding> {
    let mut findings: Vec<Finding> = Vec::new();
    for group in w.groups.iter().filter(|g| g.count > 0) {
        let f = from_group(w, group);
        match findings.iter_mut().find(|e| e.merge_key == f.merge_key) {
            Some(existing) => merge(existing, f),
            None => findings.push(f),
        }
    }
    findings.extend(from_counters(w, &findings));
    for f in &mut findings {
        f.rate = if w.secs > 0.0 {
            f.drops as f64 / w.secs
        } else {
            0.0
        };
    }
    findings.sort_by(|a, b| {
        a.benign
            .cmp(&b.benign)
            .then(b.drops.cmp(&a.drops))
            .then(a.cause.cmp(b.cause))
    });
    findings
}

fn merge(into: &mut Finding, f: Finding) {
    into.drops += f.drops;
    if into.dport != f.dport {
        into.dport = None;
    }
    for line in f.evidence {
        if !into.evidence.contains(&line) {
            into.evidence.push(line);
        }
    }
}

/// Namespace and interface where a group's drops happened.
fn place(w: &Window<'_>, g: &DropGroup) -> (u32, Option<u32>) {
    match g.places.first() {
        Some(&(ns, ifindex)) if ns != 0 => (ns, (ifindex != 0).then_some(ifindex)),
        _ => (w.default_netns, None),
    }
}

/// Context for evidence about one namespace.
struct Ns<'a> {
    inode: u32,
    before: Option<&'a NsState>,
    after: Option<&'a NsState>,
    name: String,
    prefix: String,
}

impl Ns<'_> {
    /// Growth of a counter in the window; `None` unless both samples have it.
    fn delta(&self, group: &str, name: &str) -> Option<u64> {
        let after = self.after?.counter(group, name)?;
        let before = self.before?.counter(group, name)?;
        Some(after.saturating_sub(before))
    }

    fn missing(&self) -> Vec<String> {
        self.after.map(|a| a.missing.clone()).unwrap_or_default()
    }
}

fn ns<'a>(w: &Window<'a>, inode: u32) -> Ns<'a> {
    Ns {
        inode,
        before: w.before.get(&inode),
        after: w.after.get(&inode),
        name: w.names.describe(inode),
        prefix: w.names.command_prefix(inode),
    }
}

fn from_group(w: &Window<'_>, g: &DropGroup) -> Finding {
    let class = knowledge::classify(g.reason.as_deref(), g.function.as_deref());
    let (inode, ifindex) = place(w, g);
    let n = ns(w, inode);
    let iface = ifindex
        .and_then(|i| n.after.and_then(|a| a.link(i)))
        .map(|l| l.name.clone());
    let what = describe_packets(g, iface.as_deref(), &n.name);
    let mut f = Finding {
        cause: class.cause.id(),
        drops: g.count,
        rate: 0.0,
        summary: String::new(),
        evidence: vec![format!(
            "kernel: {} drops at {}{}{}{}",
            g.count,
            g.location,
            g.reason
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default(),
            what,
            g.example
                .as_ref()
                .map(|e| format!("; e.g. {e}"))
                .unwrap_or_default()
        )],
        fix: knowledge::fill_placeholders(class.fix, iface.as_deref(), g.dport),
        benign: class.benign,
        netns: Some(n.name.clone()),
        reason: g.reason.clone(),
        location: Some(g.location.clone()),
        protocol: g.protocol.clone(),
        dport: g.dport,
        iface: iface.clone(),
        merge_key: String::new(),
        netns_inode: Some(inode),
    };
    let key_detail = match class.cause {
        Cause::NetfilterRule | Cause::ConntrackFull => netfilter(w, &n, Some(g), &mut f),
        Cause::Qdisc => qdisc(&n, iface.as_deref(), &mut f),
        Cause::TcBpf => bpf(&n, iface.as_deref(), g.reason.as_deref(), false, &mut f),
        Cause::Xdp => bpf(&n, iface.as_deref(), g.reason.as_deref(), true, &mut f),
        Cause::Mtu => mtu(w, &n, g, &mut f),
        Cause::RpFilter => rp_filter(&n, iface.as_deref(), &mut f),
        Cause::NoListener => no_listener(&n, g, &mut f),
        Cause::SocketRcvbuf => rcvbuf(&n, Some(g), &mut f),
        Cause::ListenOverflow => listen_overflow(&n, &mut f),
        Cause::Paws => paws(&n, &mut f),
        Cause::NetdevBacklog => backlog(&n, &mut f),
        Cause::Nic => nic(&n, &mut f),
        Cause::Other => {
            f.summary = format!(
                "{} packet{}{what} {} dropped{}: {}",
                g.count,
                if g.count == 1 { "" } else { "s" },
                if g.count == 1 { "was" } else { "were" },
                g.reason
                    .as_ref()
                    .map(|r| format!(" with reason {r}"))
                    .unwrap_or_default(),
                class.explanation
            );
            format!("{}|{}", g.location, g.reason.clone().unwrap_or_default())
        }
    };
    if f.summary.is_empty() {
        f.summary = format!("{} packets{what}: {}", g.count, class.explanation);
    }
    // The knowledge table's fixes are prose with commands: say where to run them.
    let generic_fix = knowledge::fill_placeholders(class.fix, iface.as_deref(), g.dport);
    if f.fix == generic_fix && !n.prefix.is_empty() && !f.benign {
        f.fix = format!(
            "{} (inside {}: prefix commands with `{}`)",
            f.fix,
            n.name,
            n.prefix.trim_end()
        );
    }
    if matches!(class.cause, Cause::Other) || f.evidence.len() == 1 {
        f.evidence.extend(
            n.missing()
                .into_iter()
                .map(|m| format!("not collected: {m}")),
        );
    }
    f.merge_key = format!("{}|{}|{}", f.cause, inode, key_detail);
    f
}

/// " tcp dport 1678 on veth-b in netns web"
fn describe_packets(g: &DropGroup, iface: Option<&str>, ns: &str) -> String {
    let mut s = String::new();
    if let Some(p) = &g.protocol {
        s.push_str(&format!(" {p}"));
    }
    if let Some(d) = g.dport {
        s.push_str(&format!(" dport {d}"));
    }
    if let Some(i) = iface {
        s.push_str(&format!(" on {i}"));
    }
    s.push_str(&format!(" in {ns}"));
    s
}

/// Growth of a rule's counter in the window. A rule absent before was added during the
/// window, so all its count is new; without a first sample nothing can be said.
fn rule_delta(n: &Ns<'_>, rule: &Rule) -> Option<u64> {
    let after = rule.packets?;
    let before = match n.before?.rules.iter().find(|r| r.key == rule.key) {
        Some(r) => r.packets?,
        None => 0,
    };
    Some(after.saturating_sub(before))
}

/// Whether a rule's text names this destination port (nft `dport 22`, iptables
/// `--dport 22`, `--dports 22,80`); ports in sets or ranges are not recognised.
fn rule_names_port(rule: &Rule, port: u16) -> bool {
    let port = port.to_string();
    let words: Vec<&str> = rule.text.split_whitespace().collect();
    words.windows(2).any(|w| {
        matches!(w[0], "dport" | "--dport" | "--dports") && w[1].split(',').any(|p| p == port)
    })
}

fn netfilter(w: &Window<'_>, n: &Ns<'_>, g: Option<&DropGroup>, f: &mut Finding) -> String {
    let Some(after) = n.after else {
        f.evidence
            .push(format!("no firewall state could be read in {}", n.name));
        return "unknown".into();
    };
    let mut grown: Vec<(&Rule, u64)> = after
        .rules
        .iter()
        .filter_map(|r| rule_delta(n, r).filter(|d| *d > 0).map(|d| (r, d)))
        .collect();
    grown.sort_by_key(|g| std::cmp::Reverse(g.1));
    // Several rules may have dropped in the window: prefer those naming this group's port.
    if let Some(port) = g.and_then(|g| g.dport) {
        if grown.iter().any(|(r, _)| rule_names_port(r, port)) {
            grown.retain(|(r, _)| rule_names_port(r, port));
        }
    }
    if let Some((top, delta)) = grown.first() {
        f.cause = Cause::NetfilterRule.id();
        let random = top
            .random
            .map(|p| format!(", matching at random with probability {p:.2}"))
            .unwrap_or_default();
        let what = if top.is_policy {
            "policy of chain"
        } else {
            "rule"
        };
        f.summary = format!(
            "the {} {what} `{} {}: {}` dropped {} packets{random} in {}",
            top.source, top.table, top.chain, top.text, delta, n.name
        );
        for (r, d) in &grown {
            // nftables rules are named by handle; iptables rules by their text.
            let handle = r
                .key
                .rsplit_once(" handle ")
                .map(|(_, h)| format!(" (handle {h})"))
                .unwrap_or_default();
            f.evidence.push(format!(
                "{} {} `{} {}: {}`{handle}: counter +{d} in the window, now {}",
                r.source,
                if r.is_policy { "chain policy" } else { "rule" },
                r.table,
                r.chain,
                r.text,
                r.packets.unwrap_or(0)
            ));
        }
        f.fix = format!("{}{}", n.prefix, top.delete);
        return top.key.clone();
    }
    // No counter moved: is conntrack refusing new connections?
    let count = after
        .sysctl("net.netfilter.nf_conntrack_count")
        .and_then(|v| v.parse::<u64>().ok());
    let max = after
        .sysctl("net.netfilter.nf_conntrack_max")
        .and_then(|v| v.parse::<u64>().ok());
    let ct_drops = n.delta("nf_conntrack", "drop").unwrap_or(0)
        + n.delta("nf_conntrack", "early_drop").unwrap_or(0);
    if let (Some(c), Some(m)) = (count, max) {
        if m > 0 && (c * 100 >= m * 95 || ct_drops > 0 || w.conntrack_full_log_lines > 0) {
            f.cause = Cause::ConntrackFull.id();
            f.summary = format!(
                "the conntrack table is full in {} ({c} of {m} entries): new connections are dropped",
                n.name
            );
            f.evidence.push(format!(
                "net.netfilter.nf_conntrack_count = {c}, nf_conntrack_max = {m}"
            ));
            if ct_drops > 0 {
                f.evidence.push(format!(
                    "conntrack statistics: drop + early_drop +{ct_drops} in the window"
                ));
            }
            if w.conntrack_full_log_lines > 0 {
                f.evidence.push(format!(
                    "kernel log: {} lines \"nf_conntrack: table full, dropping packet\"",
                    w.conntrack_full_log_lines
                ));
            }
            f.fix = format!(
                "raise the limit in the host namespace (it is read-only inside others on most kernels): sysctl -w net.netfilter.nf_conntrack_max={}; or find what opens so many connections: {}conntrack -L",
                m.saturating_mul(2),
                n.prefix
            );
            return "conntrack".into();
        }
    }
    let drop_rules: Vec<&Rule> = after.rules.iter().collect();
    if drop_rules.is_empty() {
        f.evidence.push(format!(
            "no nftables or iptables rule with a drop or reject verdict was found in {}",
            n.name
        ));
    } else {
        f.evidence.push(format!(
            "no rule counter moved; these rules drop or reject but have no counter to confirm: {}",
            drop_rules
                .iter()
                .filter(|r| r.packets.is_none())
                .map(|r| format!("`{} {}: {}`", r.table, r.chain, r.text))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        f.fix = "add `counter` to the drop rules (nft) to see which one matches, then remove or narrow it".into();
    }
    f.summary = format!(
        "a netfilter hook dropped these packets in {}, but no rule's counter shows which",
        n.name
    );
    "unconfirmed".into()
}

fn qdisc(n: &Ns<'_>, iface: Option<&str>, f: &mut Finding) -> String {
    let Some(after) = n.after else {
        return "unknown".into();
    };
    let mut grown: Vec<(&super::state::Qdisc, u64)> = after
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
        "the {} qdisc on {} in {} dropped {d} packets: it is full or over its rate ({})",
        q.kind, q.dev, n.name, q.options
    );
    for (q, d) in &grown {
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

fn bpf(
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

fn mtu(w: &Window<'_>, n: &Ns<'_>, g: &DropGroup, f: &mut Finding) -> String {
    if g.max_len == 0 {
        f.evidence
            .push("the size of the dropped packets is unknown (their events were lost)".into());
        return "unknown".into();
    }
    // The too-small MTU may sit on the receiving side of a veth, in another namespace.
    let mut small: Vec<(u32, &super::state::Link)> = Vec::new();
    let here = n
        .after
        .into_iter()
        .flat_map(|a| a.links.iter().map(move |l| (n.inode, l)));
    let elsewhere = w
        .after
        .iter()
        .filter(|(i, _)| **i != n.inode)
        .flat_map(|(i, s)| s.links.iter().map(move |l| (*i, l)));
    for (inode, link) in here.chain(elsewhere) {
        // skb->len can include the link-layer header: allow for it.
        if link.name != "lo" && link.mtu > 0 && link.mtu + 14 < g.max_len {
            small.push((inode, link));
        }
    }
    let Some((inode, link)) = small.first() else {
        f.evidence.push(format!(
            "dropped packets were up to {} bytes, and no interface with a smaller MTU was found",
            g.max_len
        ));
        return "unknown".into();
    };
    let where_ = w.names.describe(*inode);
    f.summary = format!(
        "packets of up to {} bytes are dropped because {} in {} has an MTU of {}",
        g.max_len, link.name, where_, link.mtu
    );
    for (i, l) in &small {
        f.evidence.push(format!(
            "{} in {}: mtu {}",
            l.name,
            w.names.describe(*i),
            l.mtu
        ));
    }
    f.evidence
        .push(format!("largest dropped packet: {} bytes", g.max_len));
    f.fix = format!(
        "{}ip link set dev {} mtu 1500",
        w.names.command_prefix(*inode),
        link.name
    );
    format!("{}|{}", inode, link.name)
}

fn rp_filter(n: &Ns<'_>, iface: Option<&str>, f: &mut Finding) -> String {
    let Some(after) = n.after else {
        return "unknown".into();
    };
    let all = after.sysctl("net.ipv4.conf.all.rp_filter").unwrap_or("?");
    let dev = iface.and_then(|i| after.sysctl(&format!("net.ipv4.conf.{i}.rp_filter")));
    f.evidence.push(format!(
        "net.ipv4.conf.all.rp_filter = {all}{}",
        match (iface, dev) {
            (Some(i), Some(v)) => format!(", net.ipv4.conf.{i}.rp_filter = {v}"),
            _ => String::new(),
        }
    ));
    if let Some(d) = n.delta("TcpExt", "IPReversePathFilter") {
        f.evidence
            .push(format!("TcpExt IPReversePathFilter +{d} in the window"));
    }
    let i = iface.unwrap_or("IFACE");
    // sysctl reads dots as separators: an interface name with a dot needs the slash form.
    let key = if i.contains('.') {
        format!("net/ipv4/conf/{i}/rp_filter")
    } else {
        format!("net.ipv4.conf.{i}.rp_filter")
    };
    f.summary = format!(
        "reverse-path filtering drops packets arriving on {i} in {}: the route back to their source leaves by another interface",
        n.name
    );
    f.fix = format!(
        "fix the routing for those sources, or use loose mode: {}sysctl -w {key}=2 net.ipv4.conf.all.rp_filter=2", n.prefix
    );
    i.to_owned()
}

fn no_listener(n: &Ns<'_>, g: &DropGroup, f: &mut Finding) -> String {
    let proto = g.protocol.clone().unwrap_or_else(|| "?".into());
    let port = g.dport.map_or_else(|| "?".into(), |p| p.to_string());
    if let Some(after) = n.after {
        let bound: Vec<_> = after
            .sockets
            .iter()
            .filter(|s| Some(s.port) == g.dport && s.proto == proto)
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
    let counter = match proto.as_str() {
        "udp" => n
            .delta("Udp", "NoPorts")
            .map(|d| format!("Udp NoPorts +{d} in the window")),
        "tcp" => n
            .delta("Tcp", "OutRsts")
            .map(|d| format!("Tcp OutRsts (resets sent) +{d} in the window")),
        _ => None,
    };
    f.evidence.extend(counter);
    let bound = n.after.is_some_and(|a| {
        a.sockets
            .iter()
            .any(|s| Some(s.port) == g.dport && s.proto == proto)
    });
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

fn rcvbuf(n: &Ns<'_>, g: Option<&DropGroup>, f: &mut Finding) -> String {
    let Some(after) = n.after else {
        return "unknown".into();
    };
    let mut key = "unknown".to_owned();
    // The sockets of the dropped packets; without a group, UDP ones (a TCP listener's
    // drop count is its accept-queue overflows, not its buffer).
    let wanted = g.and_then(|g| g.dport.zip(g.protocol.clone()));
    let relevant = |s: &&super::state::Socket| match &wanted {
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

fn listen_overflow(n: &Ns<'_>, f: &mut Finding) -> String {
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

fn paws(n: &Ns<'_>, f: &mut Finding) -> String {
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

fn backlog(n: &Ns<'_>, f: &mut Finding) -> String {
    if let Some(d) = n.delta("softnet", "dropped") {
        f.evidence.push(format!(
            "/proc/net/softnet_stat dropped +{d} in the window (all CPUs)"
        ));
    }
    if let Some(v) = n
        .after
        .and_then(|a| a.sysctl("net.core.netdev_max_backlog"))
    {
        f.evidence
            .push(format!("net.core.netdev_max_backlog = {v}"));
    }
    f.summary =
        "a CPU's input backlog queue overflows: packets arrive faster than that CPU processes them"
            .into();
    f.fix = "raise the queue (sysctl -w net.core.netdev_max_backlog=4096) and spread the load (RPS/RSS, irqbalance)".into();
    "backlog".into()
}

fn nic(n: &Ns<'_>, f: &mut Finding) -> String {
    let Some(after) = n.after else {
        return "unknown".into();
    };
    let mut key = "unknown".to_owned();
    for l in &after.links {
        let before = n
            .before
            .and_then(|b| b.links.iter().find(|p| p.ifindex == l.ifindex));
        let d = |now: u64, then: fn(&super::state::Link) -> u64| {
            now.saturating_sub(before.map_or(0, then))
        };
        let (drop, missed, fifo, over) = (
            d(l.rx_dropped, |x| x.rx_dropped),
            d(l.rx_missed, |x| x.rx_missed),
            d(l.rx_fifo, |x| x.rx_fifo),
            d(l.rx_over, |x| x.rx_over),
        );
        if drop + missed + fifo + over > 0 {
            f.evidence.push(format!(
                "ip -s link {}: rx dropped +{drop}, missed +{missed}, fifo +{fifo}, overruns +{over} in the window",
                l.name
            ));
            if key == "unknown" {
                key = l.name.clone();
                f.iface = Some(l.name.clone());
                f.summary = format!(
                    "the interface {} in {} drops received packets itself (driver or ring)",
                    l.name, n.name
                );
            }
        }
    }
    f.fix = format!(
        "look at the driver's counters ({p}ethtool -S {k}) and grow the receive ring ({p}ethtool -G {k} rx 4096)",
        p = n.prefix,
        k = f.iface.clone().unwrap_or_else(|| "IFACE".into())
    );
    key
}

/// Findings from kernel counters alone: drops that never reach kfree_skb.
fn from_counters(w: &Window<'_>, existing: &[Finding]) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::new();
    // Interface and generic IP counters also count drops kfree_skb already showed (a
    // veth drop is tx_dropped on one side and rx_dropped on the other): only report them
    // when they exceed what the drops explain.
    let explained: u64 = existing.iter().filter(|f| !f.benign).map(|f| f.drops).sum();
    for &inode in w.after.keys() {
        let n = ns(w, inode);
        for info in knowledge::COUNTERS {
            let group = info.group;
            // softnet_stat is machine-wide: read once, in droptrace's own namespace; its
            // time_squeeze and flow_limit_count are not drops.
            if group == "softnet" && (inode != w.host_netns || info.name != "dropped") {
                continue;
            }
            let Some(delta) = counter_delta(&n, info.file, group, info.name) else {
                continue;
            };
            if delta == 0 {
                continue;
            }
            let cause = info.cause.id();
            let generic = matches!(info.cause, Cause::Nic | Cause::Other);
            if generic && (delta <= explained || (info.cause == Cause::Other && explained > 0)) {
                continue;
            }
            let covered = existing
                .iter()
                .chain(out.iter())
                .any(|f| f.cause == cause && f.netns_inode.is_none_or(|i| i == inode));
            if covered {
                if let Some(f) = out
                    .iter_mut()
                    .find(|f| f.cause == cause && f.netns_inode == Some(inode))
                {
                    f.drops = f.drops.max(delta);
                }
                continue;
            }
            let mut f = Finding {
                cause,
                drops: delta,
                rate: 0.0,
                summary: String::new(),
                evidence: Vec::new(),
                fix: knowledge::fill_placeholders(info.fix, None, None),
                benign: false,
                netns: Some(n.name.clone()),
                reason: None,
                location: None,
                protocol: None,
                dport: None,
                iface: None,
                merge_key: format!("{cause}|{inode}|counter"),
                netns_inode: Some(inode),
            };
            match info.cause {
                Cause::ListenOverflow => {
                    listen_overflow(&n, &mut f);
                }
                Cause::NetdevBacklog => {
                    backlog(&n, &mut f);
                }
                Cause::Nic => {
                    nic(&n, &mut f);
                }
                Cause::SocketRcvbuf => {
                    rcvbuf(&n, None, &mut f);
                }
                Cause::Paws => {
                    paws(&n, &mut f);
                }
                Cause::ConntrackFull | Cause::NetfilterRule => {
                    netfilter(w, &n, None, &mut f);
                }
                _ => {}
            }
            if f.summary.is_empty() {
                f.summary = format!("{} in {}: {}", info.name, n.name, info.explanation);
            }
            let line = format!("{group} {} +{delta} in the window", info.name);
            if !f.evidence.iter().any(|e| e.starts_with(&line)) {
                f.evidence
                    .insert(0, format!("{line}: {}", info.explanation));
            }
            out.push(f);
        }
    }
    out
}

fn counter_delta(n: &Ns<'_>, file: &str, group: &str, name: &str) -> Option<u64> {
    match file {
        // Per-interface counters are summed over interfaces.
        "dev" => {
            let after = n.after?;
            let sum = |s: &NsState| -> u64 {
                s.counters
                    .iter()
                    .filter(|((g, c), _)| g.starts_with("dev:") && g != "dev:lo" && c == name)
                    .map(|(_, v)| *v)
                    .sum()
            };
            Some(sum(after).saturating_sub(n.before.map_or(0, sum)))
        }
        _ => n.delta(group, name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::state::{Link, Qdisc, Socket};

    struct Names;
    impl NamespaceNames for Names {
        fn describe(&self, inode: u32) -> String {
            format!("netns n{inode}")
        }
        fn command_prefix(&self, inode: u32) -> String {
            format!("ip netns exec n{inode} ")
        }
    }

    fn group(function: &str, reason: &str, count: u64) -> DropGroup {
        DropGroup {
            function: Some(function.into()),
            location: format!("{function}+0x10"),
            reason: Some(reason.into()),
            protocol: Some("tcp".into()),
            dport: Some(1678),
            count,
            places: vec![(1, 2)],
            max_len: 60,
            example: None,
        }
    }

    fn link(ifindex: u32, name: &str, mtu: u32) -> Link {
        Link {
            ifindex,
            name: name.into(),
            mtu,
            rx_dropped: 0,
            rx_missed: 0,
            rx_fifo: 0,
            rx_over: 0,
            rx_errors: 0,
            tx_dropped: 0,
        }
    }

    fn rule(packets: u64) -> Rule {
        Rule {
            source: "nftables".into(),
            key: "inet filter input handle 7".into(),
            table: "inet filter".into(),
            chain: "input".into(),
            text: format!("tcp dport 1678 counter packets {packets} bytes 0 drop"),
            verdict: "drop".into(),
            packets: Some(packets),
            random: None,
            delete: "nft delete rule inet filter input handle 7".into(),
            is_policy: false,
        }
    }

    fn run(groups: &[DropGroup], before: NsState, after: NsState) -> Vec<Finding> {
        let before = BTreeMap::from([(1, before)]);
        let after = BTreeMap::from([(1, after)]);
        diagnose(&Window {
            groups,
            before: &before,
            after: &after,
            names: &Names,
            default_netns: 1,
            host_netns: 1,
            secs: 10.0,
            conntrack_full_log_lines: 0,
        })
    }

    fn state(rules: Vec<Rule>) -> NsState {
        NsState {
            rules,
            links: vec![link(2, "eth0", 1500)],
            ..NsState::default()
        }
    }

    #[test]
    fn a_rule_whose_counter_grew_is_the_cause() {
        let f = run(
            &[group("nft_do_chain", "NETFILTER_DROP", 12)],
            state(vec![rule(3)]),
            state(vec![rule(15)]),
        );
        assert_eq!(f.len(), 1);
        assert_eq!(
            (f[0].cause, f[0].drops, f[0].rate),
            ("netfilter_rule", 12, 1.2)
        );
        assert_eq!(f[0].iface.as_deref(), Some("eth0"));
        assert!(
            f[0].summary.contains("`inet filter input: tcp dport 1678"),
            "{}",
            f[0].summary
        );
        assert!(
            f[0].evidence
                .iter()
                .any(|e| e.contains("(handle 7): counter +12 in the window, now 15")),
            "{f:#?}"
        );
        assert_eq!(
            f[0].fix,
            "ip netns exec n1 nft delete rule inet filter input handle 7"
        );
    }

    #[test]
    fn without_a_moving_counter_it_says_so_or_finds_conntrack_full() {
        let f = run(
            &[group("nf_hook_slow", "NETFILTER_DROP", 5)],
            state(vec![]),
            state(vec![]),
        );
        assert_eq!(f[0].cause, "netfilter_rule");
        assert!(
            f[0].summary.contains("no rule's counter shows which"),
            "{f:#?}"
        );
        assert!(f[0]
            .evidence
            .iter()
            .any(|e| e.contains("no nftables or iptables rule")));

        let mut full = state(vec![]);
        full.sysctls
            .insert("net.netfilter.nf_conntrack_count".into(), "65536".into());
        full.sysctls
            .insert("net.netfilter.nf_conntrack_max".into(), "65536".into());
        let f = run(
            &[group("nf_hook_slow", "NETFILTER_DROP", 5)],
            state(vec![]),
            full,
        );
        assert_eq!(f[0].cause, "conntrack_full", "{f:#?}");
        assert!(f[0].fix.contains("nf_conntrack_max=131072"));
    }

    #[test]
    fn counters_alone_reveal_listen_overflows() {
        let mut before = state(vec![]);
        before
            .counters
            .insert(("TcpExt".into(), "ListenOverflows".into()), 2);
        let mut after = before.clone();
        after
            .counters
            .insert(("TcpExt".into(), "ListenOverflows".into()), 50);
        after.sockets.push(Socket {
            proto: "tcp".into(),
            local_ip: "0.0.0.0".into(),
            port: 8080,
            recv_q: 129,
            send_q: 128,
            process: Some("server (pid 42)".into()),
            rcvbuf: None,
            drops: None,
        });
        let f = run(&[], before, after);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!((f[0].cause, f[0].drops), ("listen_overflow", 48));
        assert!(
            f[0].summary.contains("port 8080 (server (pid 42))"),
            "{}",
            f[0].summary
        );
        let overflow_lines = f[0]
            .evidence
            .iter()
            .filter(|e| e.contains("ListenOverflows +48"))
            .count();
        assert_eq!(overflow_lines, 1, "{:#?}", f[0].evidence);
    }

    #[test]
    fn benign_drops_rank_after_real_causes() {
        let mut before = state(vec![]);
        before.qdiscs.push(Qdisc {
            dev: "eth0".into(),
            kind: "tbf".into(),
            handle: "8001:".into(),
            parent: None,
            root: true,
            options: "rate 125000".into(),
            drops: 0,
            overlimits: 0,
            backlog_packets: 0,
        });
        let mut after = before.clone();
        after.qdiscs[0].drops = 7;
        let f = run(
            &[
                group("unix_release_sock", "UNIX_DISCONNECT", 500),
                group("__dev_queue_xmit", "QDISC_DROP", 7),
            ],
            before,
            after,
        );
        assert_eq!(f[0].cause, "qdisc", "{f:#?}");
        assert!(!f[0].benign && f.last().unwrap().benign);
        assert!(f[0].evidence.iter().any(|e| e.contains("dropped +7")));
    }

    #[test]
    fn a_small_mtu_is_found_in_the_peer_namespace() {
        let mut g = group("__dev_forward_skb2", "NOT_SPECIFIED", 20);
        g.max_len = 542;
        let here = state(vec![]);
        let mut peer = NsState::default();
        peer.links.push(link(2, "veth-b", 100));
        let before = BTreeMap::from([(1, here.clone()), (2, peer.clone())]);
        let after = BTreeMap::from([(1, here), (2, peer)]);
        let f = diagnose(&Window {
            groups: &[g],
            before: &before,
            after: &after,
            names: &Names,
            default_netns: 1,
            host_netns: 1,
            secs: 1.0,
            conntrack_full_log_lines: 0,
        });
        assert_eq!(f[0].cause, "mtu", "{f:#?}");
        assert!(
            f[0].summary
                .contains("veth-b in netns n2 has an MTU of 100"),
            "{}",
            f[0].summary
        );
        assert_eq!(f[0].fix, "ip netns exec n2 ip link set dev veth-b mtu 1500");
    }

    #[test]
    fn interface_counters_that_the_drops_explain_are_not_repeated() {
        let mut g = group("__dev_forward_skb2", "NOT_SPECIFIED", 20);
        g.max_len = 542;
        let mut before = state(vec![]);
        before.links.push(link(3, "veth-b", 100));
        let mut after = before.clone();
        after
            .counters
            .insert(("dev:eth0".into(), "tx_drop".into()), 20);
        after
            .counters
            .insert(("Ip".into(), "OutDiscards".into()), 19);
        let f = run(&[g.clone()], before.clone(), after.clone());
        assert_eq!(
            f.iter().map(|f| f.cause).collect::<Vec<_>>(),
            ["mtu"],
            "{f:#?}"
        );

        // Without drops to explain them, the same counters are findings.
        let f = run(&[], before, after);
        assert_eq!(f[0].cause, "nic", "{f:#?}");
    }
}
