//! From drops and two snapshots of the system to ranked findings. Pure: every input is
//! data, so it runs on fixtures. A cause is only claimed with evidence that moved (a rule
//! counter, a qdisc's drops, a kernel counter) or that is present (an attached program, an
//! MTU smaller than the dropped packets); otherwise the finding says what is missing.
//!
//! This file holds the types, the dispatch from a drop group to its cause family, and
//! the ranking. Each family has a file that looks for its own evidence and fills in the
//! finding; `counters` adds the findings that only kernel counters show.
mod bpf;
mod counters;
mod device;
mod link_state;
mod moved;
mod mtu;
mod neighbour;
mod netfilter;
mod policy;
mod qdisc;
mod routing;
mod rp_filter;
#[cfg(test)]
mod scenarios;
mod sockets;
mod tc_action;
mod tcp;
#[cfg(test)]
mod tests;
mod xfrm;

use std::collections::BTreeMap;

use crate::pipeline::names::Workload;
use serde::Serialize;

use super::{
    knowledge::{self, Cause},
    state::NsState,
};
use bpf::{bpf, cgroup_bpf, xdp_verdicts};
use counters::from_counters;
use device::{backlog, nic};
pub use moved::{counters_moved, is_trouble, CounterMove};
use mtu::mtu;
use netfilter::netfilter;
use qdisc::qdisc;
pub use routing::route_queries;
use routing::routing;
use rp_filter::rp_filter;
use sockets::{listen_overflow, no_listener, paws, rcvbuf};
pub use tcp::tcp_findings;

/// A group of drops as the diagnosis sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DropGroup {
    pub function: Option<String>,
    /// `function+0xoff` or the address.
    pub location: String,
    pub reason: Option<String>,
    pub protocol: Option<String>,
    /// "ipv4" or "ipv6" when the packet's headers were read.
    pub family: Option<String>,
    pub dport: Option<u16>,
    /// Source and destination of one recent packet (none without packet details).
    pub addrs: Option<(std::net::IpAddr, std::net::IpAddr)>,
    /// The source port of that packet.
    pub sport: Option<u16>,
    pub count: u64,
    /// (netns inode, ifindex) of recent samples, most frequent first.
    pub places: Vec<(u32, u32)>,
    pub max_len: u32,
    /// One recent packet, for people: "10.0.0.1:40000 -> 10.0.0.2:1678, 60 bytes".
    pub example: Option<String>,
    /// TCP segments droptrace read the flags of, in the window: (connection attempts,
    /// the rest); `None` when none was read.
    pub tcp_segments: Option<(u64, u64)>,
}

/// What a namespace is called and how to run a command in it.
pub trait NamespaceNames {
    /// "netns web", "the host namespace".
    fn describe(&self, inode: u32) -> String;
    /// Prefix for a command run in it: "", "ip netns exec web ", "nsenter --net=... ".
    fn command_prefix(&self, inode: u32) -> String;
    /// Its name alone, for fields that say it is a namespace: `web`, `host`, `nginx:812`.
    fn label(&self, inode: u32) -> String {
        inode.to_string()
    }
    /// The container (and pod) in it, if any.
    fn workload(&self, _inode: u32) -> Option<Workload> {
        None
    }
    /// As it was found, without what became of it during the window.
    fn found_as(&self, inode: u32) -> String {
        self.describe(inode)
    }
    /// The name a baseline knows it by: one that stays the same between runs.
    fn baseline_name(&self, inode: u32) -> String {
        self.describe(inode)
    }
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
    /// How long droptrace watched: what the drop counts cover.
    pub secs: f64,
    /// Seconds from the start of the sample before to the end of the one after: what the
    /// growth of every counter (rules, qdiscs, the kernel's) covers; a little longer.
    pub samples_secs: f64,
    /// Lines of the kernel log saying the conntrack table was full.
    pub conntrack_full_log_lines: usize,
    /// Why the packets' headers are unknown when droptrace could not read them at all
    /// (no kernel BTF); `None` when it could.
    pub details_unknown: Option<String>,
    /// The drops happened before either sample (a live view's row that has stopped
    /// dropping): no counter can show their growth, and the state is the state now.
    pub earlier: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub cause: &'static str,
    /// Drops droptrace saw while it watched (`window_secs` of the report).
    pub drops: u64,
    /// Drops per second over the time droptrace watched.
    pub rate: f64,
    pub summary: String,
    pub evidence: Vec<String>,
    pub fix: String,
    /// Normal housekeeping drops, ranked after everything else.
    pub benign: bool,
    /// Where, for people: "netns web", "pod shop/web-7d9f" (JSON gives the parts below).
    #[serde(skip)]
    pub netns: Option<String>,
    /// The namespace's name alone (`web`, `host`, `nginx:812`).
    #[serde(rename = "netns")]
    pub netns_name: Option<String>,
    /// `shop/web-7d9f` when the namespace is a Kubernetes pod's.
    pub pod: Option<String>,
    /// The name of the container in the namespace, if any.
    pub container: Option<String>,
    pub reason: Option<String>,
    pub location: Option<String>,
    pub protocol: Option<String>,
    pub dport: Option<u16>,
    pub iface: Option<String>,
    #[serde(skip)]
    merge_key: String,
    #[serde(skip)]
    netns_inode: Option<u32>,
    /// `ipv4` or `ipv6` when the drops' IP version is known: a counter of the other
    /// version cannot be theirs.
    #[serde(skip)]
    family: Option<&'static str>,
    /// The state its evidence names (rules, chains, qdiscs, programs), as
    /// `subject` keys: a difference since a baseline concerns this finding only
    /// if it is about one of them (differences of other kinds go by kind and place).
    #[serde(skip)]
    pub(crate) subjects: Vec<String>,
}

impl Finding {
    /// The namespace the finding is about, by inode.
    pub fn netns_inode(&self) -> Option<u32> {
        self.netns_inode
    }
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
    // What the kernel counted these drops as, where their family named nothing: real
    // causes first, the most drops first; a counter one finding took is not another's.
    let mut order: Vec<usize> = (0..findings.len()).collect();
    order.sort_by_key(|&i| (findings[i].benign, std::cmp::Reverse(findings[i].drops)));
    let mut taken = std::collections::BTreeSet::new();
    for i in order {
        let f = &mut findings[i];
        let Some(inode) = f.netns_inode else { continue };
        let named_nothing = f.cause == Cause::Other.id()
            || f.evidence.iter().all(|e| {
                e.starts_with("kernel: ")
                    || e.starts_with("not collected: ")
                    || e.starts_with(routing::PATH_PREFIX)
            });
        moved::name_counters(w, f, inode, named_nothing, &mut taken);
    }
    findings.extend(from_counters(w, &findings));
    for f in &mut findings {
        if let Some(inode) = f.netns_inode {
            let workload = w.names.workload(inode);
            f.netns_name = Some(w.names.label(inode));
            f.pod = workload
                .as_ref()
                .filter(|w| w.pod.is_some())
                .map(Workload::short);
            f.container = workload.map(|w| w.container.name);
        }
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
    for s in f.subjects {
        if !into.subjects.contains(&s) {
            into.subjects.push(s);
        }
    }
}

/// Namespace and interface where a group's drops happened.
fn place(default_netns: u32, g: &DropGroup) -> (u32, Option<u32>) {
    match g.places.first() {
        Some(&(ns, ifindex)) if ns != 0 => (ns, (ifindex != 0).then_some(ifindex)),
        _ => (default_netns, None),
    }
}

/// The namespace of drops whose place is unknown: the one sampled namespace where a
/// kernel counter of their cause grew in the window, and the evidence line saying so.
fn place_by_counters(w: &Window<'_>, g: &DropGroup, cause: Cause) -> (Option<u32>, Option<String>) {
    // (inode, growth, line) of each namespace where a counter of the cause grew.
    let mut found: Vec<(u32, u64, String)> = Vec::new();
    for &inode in w.after.keys() {
        let n = ns(w, inode);
        let grew = knowledge::COUNTERS
            .iter()
            .filter(|c| c.cause == cause && c.file != "dev" && c.group != "softnet")
            .find_map(|c| {
                n.delta(c.group, c.name)
                    .filter(|d| *d > 0)
                    .map(|d| (d, format!("{} {} +{d} in {}", c.group, c.name, n.name)))
            });
        if let Some((d, line)) = grew {
            found.push((inode, d, line));
        }
    }
    // Background drops elsewhere: a namespace whose counter grew by exactly the group's
    // count is the one, if it is alone.
    let exact: Vec<_> = found.iter().filter(|f| f.1 == g.count).collect();
    let one = match (found.as_slice(), exact.as_slice()) {
        ([only], _) => Some(only),
        (_, [only]) => Some(*only),
        _ => None,
    };
    match one {
        Some((inode, _, line)) => (
            Some(*inode),
            Some(format!(
                "the drops' namespace was not read with them; it is the one sampled namespace where a counter of this cause grew by as much: {line}"
            )),
        ),
        None if found.is_empty() => (None, None),
        None => (
            None,
            Some(format!(
                "the drops' namespace was not read with them, and counters of this cause grew in several: {}",
                found.iter().map(|f| f.2.as_str()).collect::<Vec<_>>().join("; ")
            )),
        ),
    }
}

/// Context for evidence about one namespace.
struct Ns<'a> {
    inode: u32,
    before: Option<&'a NsState>,
    after: Option<&'a NsState>,
    name: String,
    prefix: String,
    /// " between the samples (7.4 s)": what a counter's growth covers.
    between: String,
    /// Why there is no sample of it before the drops, when there is none.
    no_before: String,
}

impl Ns<'_> {
    /// Growth of a counter in the window; `None` unless both samples have it.
    fn delta(&self, group: &str, name: &str) -> Option<u64> {
        let after = self.after?.counter(group, name)?;
        let before = self.before?.counter(group, name)?;
        Some(after.saturating_sub(before))
    }

    /// `name = value` as sampled at the end, saying when the value is the global one
    /// (the namespace has no copy of its own); None when it was not read.
    fn sysctl_line(&self, name: &str) -> Option<String> {
        let after = self.after?;
        let value = after.sysctl(name)?;
        Some(if self.is_global(name) {
            format!(
                "{name} = {value} (global: {} has no copy of its own)",
                self.name
            )
        } else {
            format!("{name} = {value}")
        })
    }

    /// The command that sets a sysctl for this namespace: inside it when it has its own
    /// copy, in droptrace's own namespace when the namespace only shows the global one.
    fn set_sysctl(&self, name: &str, value: &str) -> String {
        if self.is_global(name) {
            format!("sysctl -w {name}={value} in the host namespace ({name} is global: it cannot be set inside {})", self.name)
        } else {
            format!("{}sysctl -w {name}={value}", self.prefix)
        }
    }

    fn is_global(&self, name: &str) -> bool {
        !self.prefix.is_empty() && self.after.is_some_and(|a| a.sysctl_is_global(name))
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
        between: format!(" between the samples ({:.1} s)", w.samples_secs),
        no_before: if w.earlier {
            "these drops came before it was sampled (the row has stopped dropping)".to_owned()
        } else {
            format!(
                "{} was sampled only after the window",
                w.names.describe(inode)
            )
        },
    }
}

fn from_group(w: &Window<'_>, g: &DropGroup) -> Finding {
    // An XDP program's verdicts (counted by droptrace itself) are classified as the
    // kernel's own XDP reason.
    let xdp_program = crate::pipeline::xdp::program_of_display(&g.location);
    let class = match xdp_program {
        Some(_) => knowledge::classify(Some("XDP"), None),
        None => knowledge::classify(g.reason.as_deref(), g.function.as_deref()),
    };
    let (mut inode, ifindex) = place(w.default_netns, g);
    // Without packet details the kernel did not say where: its counters may.
    let located = if g.places.iter().all(|p| p.0 == 0) && w.details_unknown.is_some() {
        let (found, line) = place_by_counters(w, g, class.cause);
        inode = found.unwrap_or(inode);
        line
    } else {
        None
    };
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
        netns_name: None,
        pod: None,
        container: None,
        reason: g.reason.clone(),
        location: Some(g.location.clone()),
        protocol: g.protocol.clone(),
        dport: g.dport,
        iface: iface.clone(),
        merge_key: String::new(),
        netns_inode: Some(inode),
        family: ip_family(g),
        subjects: Vec::new(),
    };
    f.evidence.extend(located);
    // Each family adds its evidence, summary and fix, and returns what tells its findings
    // apart from others of the same cause in this namespace (the merge key's detail).
    let key_detail = match class.cause {
        Cause::NetfilterRule | Cause::ConntrackFull => netfilter(w, &n, Some(g), &mut f),
        Cause::Qdisc => qdisc(&n, iface.as_deref(), &mut f),
        Cause::TcBpf => bpf(
            &n,
            iface.as_deref(),
            g.reason.as_deref(),
            false,
            None,
            &mut f,
        ),
        Cause::Xdp => match xdp_program {
            Some(id) => xdp_verdicts(&n, g, iface.as_deref(), id, &mut f),
            None => bpf(
                &n,
                iface.as_deref(),
                g.reason.as_deref(),
                true,
                None,
                &mut f,
            ),
        },
        Cause::Mtu => mtu(w, &n, g, &mut f),
        Cause::RpFilter => rp_filter(&n, iface.as_deref(), &mut f),
        Cause::NoListener => no_listener(w, &n, g, &mut f),
        Cause::SocketRcvbuf => rcvbuf(&n, Some(g), &mut f),
        Cause::ListenOverflow => listen_overflow(&n, &mut f),
        Cause::Paws => paws(&n, &mut f),
        Cause::NetdevBacklog => backlog(&n, &mut f),
        Cause::Nic => nic(&n, &mut f),
        Cause::NoRoute | Cause::ForwardingDisabled => {
            routing(&n, Some(g), iface.as_deref(), &mut f)
        }
        Cause::Xfrm => xfrm::xfrm(&n, g, &mut f),
        Cause::Other
            if g.reason.as_deref() == Some("OTHERHOST")
                && neighbour::otherhost(w, &n, g, ifindex, &mut f) =>
        {
            format!("otherhost|{}", iface.as_deref().unwrap_or("?"))
        }
        Cause::Other if cgroup_bpf(&n, g.reason.as_deref(), &mut f).is_some() => {
            format!("cgroup|{}", f.summary)
        }
        Cause::Other | Cause::Neighbour => {
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
    // A family that named nothing leaves the summary empty (or is `other`): an interface
    // that carries nothing is then the better answer.
    let family_named = !f.summary.is_empty() && class.cause != Cause::Other;
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
    // What the kernel does with such a packet now, where the family did not ask already.
    if !matches!(class.cause, Cause::NoRoute | Cause::ForwardingDisabled) {
        routing::path(w, &n, g, iface.as_deref(), &mut f);
    }
    if let Some(i) = iface.as_deref() {
        link_state::explain(w, &n, i, !family_named && !f.benign, &mut f);
    }
    // The socket that counted them, where the family did not name it already.
    if class.cause != Cause::SocketRcvbuf {
        sockets::counted_on_socket(&n, g, &mut f);
    }
    sockets::counted_on_connection(&n, g, &mut f);
    f.merge_key = format!("{}|{}|{}", f.cause, inode, key_detail);
    f
}

/// The drops' IP version, from their addresses or the kernel's ethertype.
fn ip_family(g: &DropGroup) -> Option<&'static str> {
    match (g.addrs, g.family.as_deref()) {
        (Some((_, dst)), _) => Some(if dst.is_ipv4() { "ipv4" } else { "ipv6" }),
        (None, Some("ipv4")) => Some("ipv4"),
        (None, Some("ipv6")) => Some("ipv6"),
        _ => None,
    }
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
