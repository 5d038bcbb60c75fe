//! "What changed since it worked": the sampled state of every namespace saved as a
//! versioned JSON file (`diagnose --save-baseline`), and the differences between such a
//! file and the state now (`diagnose --baseline`), each as a sentence. Namespaces are
//! matched by name (their inodes differ between hosts and boots); programs by where they
//! are attached and their name (ids differ too). Pure: the command reads and writes the file.
//!
//! Each kind of state is one small function (`bpf`, `rules`, `qdiscs`, `sysctls`, `mtus`,
//! `routes`);
//! a new kind of sampled state gets its own field and function.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::{
    engine::Finding,
    state::NsState,
    subject::{self, without_counts},
};

/// The file format's version; a file of a newer version is refused, not half read.
pub const VERSION: u32 = 1;

/// Sysctls that are counters, not settings: never a difference.
const VOLATILE_SYSCTLS: &[&str] = &["net.netfilter.nf_conntrack_count"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub version: u32,
    /// The droptrace version that wrote it.
    pub droptrace: String,
    pub host: String,
    /// Seconds since the epoch.
    pub taken_at: u64,
    /// By namespace name ("netns web", "the host namespace", "pod shop/web-7d9f").
    pub namespaces: BTreeMap<String, NsBaseline>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NsBaseline {
    pub bpf: Vec<BaseBpf>,
    pub rules: Vec<BaseRule>,
    pub qdiscs: Vec<BaseQdisc>,
    pub sysctls: BTreeMap<String, String>,
    /// MTU by interface name.
    pub mtus: BTreeMap<String, u32>,
    /// Routes of every table and policy-routing rules, both families, as ip prints them
    /// (`ipv4 table main: 10.0.0.0/24 dev eth0`, `ipv6 rule: 100: from all lookup 7`).
    #[serde(default)]
    pub routes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseBpf {
    pub dev: String,
    /// "tc ingress", "tcx egress", "xdp".
    pub hook: String,
    pub name: String,
    pub prog_id: u32,
    /// `sched_cls`, `xdp`; None when the program could not be described.
    pub prog_type: Option<String>,
    pub tag: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseRule {
    pub source: String,
    pub table: String,
    pub chain: String,
    /// The rule without its packet and byte counts.
    pub text: String,
    pub verdict: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseQdisc {
    pub dev: String,
    pub kind: String,
    pub handle: String,
    pub parent: Option<String>,
    pub options: String,
}

#[derive(Debug, Error)]
pub enum BaselineError {
    #[error("it is not JSON ({0}); is it a file droptrace diagnose --save-baseline wrote?")]
    NotJson(serde_json::Error),
    #[error("it is not a droptrace baseline (no \"version\" and \"droptrace\" fields)")]
    Foreign,
    #[error(
        "it is version {found} of the baseline format (written by droptrace {by}); this \
         droptrace reads version {VERSION}: use a newer droptrace, or save a new baseline"
    )]
    Newer { found: u64, by: String },
    #[error("it is damaged: {0}")]
    Corrupt(serde_json::Error),
    #[error(
        "it is larger than {} MiB, more than any baseline droptrace writes; is it the \
         right file?",
        MAX_BYTES >> 20
    )]
    TooLarge,
    #[error("it is not text ({0})")]
    NotText(std::str::Utf8Error),
}

/// The largest baseline read: a node's whole firewall and routes fit many times over,
/// and a file past it is refused before it costs memory.
pub const MAX_BYTES: u64 = 16 << 20;

/// A baseline from the bytes of its file, of which the command reads at most one more
/// than `MAX_BYTES`.
pub fn from_bytes(bytes: &[u8]) -> Result<Baseline, BaselineError> {
    if bytes.len() as u64 > MAX_BYTES {
        return Err(BaselineError::TooLarge);
    }
    parse(std::str::from_utf8(bytes).map_err(BaselineError::NotText)?)
}

/// What is saved of each namespace: its settings, not its counters.
pub fn capture<'a>(
    namespaces: impl IntoIterator<Item = (String, &'a NsState)>,
    host: &str,
    taken_at: u64,
) -> Baseline {
    Baseline {
        version: VERSION,
        droptrace: env!("CARGO_PKG_VERSION").to_owned(),
        host: host.to_owned(),
        taken_at,
        namespaces: namespaces
            .into_iter()
            .map(|(name, st)| (name, of_namespace(st)))
            .collect(),
    }
}

fn of_namespace(st: &NsState) -> NsBaseline {
    NsBaseline {
        bpf: st
            .bpf
            .iter()
            .map(|a| {
                let p = st.programs.get(&a.prog_id);
                BaseBpf {
                    dev: a.dev.clone(),
                    hook: a.hook.clone(),
                    name: a.name.clone(),
                    prog_id: a.prog_id,
                    prog_type: p.map(|p| p.prog_type.clone()),
                    tag: a.tag.clone(),
                }
            })
            .collect(),
        rules: st
            .rules
            .iter()
            .map(|r| BaseRule {
                source: r.source.clone(),
                table: r.table.clone(),
                chain: r.chain.clone(),
                text: without_counts(&r.text),
                verdict: r.verdict.clone(),
            })
            .collect(),
        qdiscs: st
            .qdiscs
            .iter()
            .map(|q| BaseQdisc {
                dev: q.dev.clone(),
                kind: q.kind.clone(),
                handle: q.handle.clone(),
                parent: q.parent.clone(),
                options: q.options_flat(),
            })
            .collect(),
        sysctls: st
            .sysctls
            .iter()
            .filter(|(k, _)| !VOLATILE_SYSCTLS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        mtus: st.links.iter().map(|l| (l.name.clone(), l.mtu)).collect(),
        routes: routes_of(st),
    }
}

fn routes_of(st: &NsState) -> Vec<String> {
    let mut out = Vec::new();
    for (family, routing) in [("ipv4", &st.routing_v4), ("ipv6", &st.routing_v6)] {
        for r in &routing.routes {
            let mut text = format!("{family} table {}: ", r.table);
            if r.kind != "unicast" {
                text.push_str(&format!("{} ", r.kind));
            }
            text.push_str(&r.dst);
            if let Some(g) = &r.gateway {
                text.push_str(&format!(" via {g}"));
            }
            if let Some(d) = &r.dev {
                text.push_str(&format!(" dev {d}"));
            }
            if let Some(m) = r.metric {
                text.push_str(&format!(" metric {m}"));
            }
            out.push(text);
        }
        for rule in &routing.rules {
            out.push(format!("{family} rule: {}: {}", rule.priority, rule.text));
        }
    }
    out
}

/// Reads a baseline file's text: the version is checked before the rest is trusted.
pub fn parse(text: &str) -> Result<Baseline, BaselineError> {
    /// The fields that say what the file is; the rest is skipped without being kept, so
    /// the text is held once and parsed into the baseline directly.
    #[derive(Deserialize)]
    struct Header {
        version: Option<u64>,
        droptrace: Option<String>,
    }
    serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(BaselineError::NotJson)?;
    let Ok(Header {
        version: Some(version),
        droptrace: Some(by),
    }) = serde_json::from_str::<Header>(text)
    else {
        return Err(BaselineError::Foreign);
    };
    if version > u64::from(VERSION) {
        return Err(BaselineError::Newer { found: version, by });
    }
    serde_json::from_str(text).map_err(BaselineError::Corrupt)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    New,
    Gone,
    Changed,
}

/// One difference between the baseline and now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    pub change: Change,
    /// "namespace", "bpf", "rule", "qdisc", "sysctl", "mtu", "route".
    pub kind: &'static str,
    pub netns: String,
    pub iface: Option<String>,
    /// For people: "new since the baseline: BPF program drop_syn (id 41) at tc ingress on
    /// eth0 in netns web".
    pub sentence: String,
    /// What it is about, as [`subject`] keys (a rule and its chain, a qdisc, a program);
    /// empty for differences matched to findings by kind and place only.
    #[serde(skip)]
    pub subjects: Vec<String>,
}

/// Every difference, namespace by namespace. `scoped`: this run sampled only some
/// namespaces (--netns, --pod), so one missing now is not called gone.
pub fn diff(then: &Baseline, now: &Baseline, scoped: bool) -> Vec<Difference> {
    let mut out = Vec::new();
    let empty = NsBaseline::default();
    for (name, ns_now) in &now.namespaces {
        match then.namespaces.get(name) {
            Some(ns_then) => {
                bpf(name, ns_then, ns_now, &mut out);
                rules(name, ns_then, ns_now, &mut out);
                qdiscs(name, ns_then, ns_now, &mut out);
                sysctls(name, ns_then, ns_now, &mut out);
                mtus(name, ns_then, ns_now, &mut out);
                routes(name, ns_then, ns_now, &mut out);
            }
            None => {
                out.push(Difference {
                    change: Change::New,
                    kind: "namespace",
                    netns: name.clone(),
                    iface: None,
                    sentence: format!("new since the baseline: {name} (not in the baseline)"),
                    subjects: Vec::new(),
                });
                // What it holds that could drop packets.
                bpf(name, &empty, ns_now, &mut out);
                rules(name, &empty, ns_now, &mut out);
            }
        }
    }
    if !scoped {
        for name in then.namespaces.keys() {
            if !now.namespaces.contains_key(name) {
                out.push(Difference {
                    change: Change::Gone,
                    kind: "namespace",
                    netns: name.clone(),
                    iface: None,
                    sentence: format!("gone since the baseline: {name}"),
                    subjects: Vec::new(),
                });
            }
        }
    }
    out
}

/// Items of `now` not in `then` and the reverse, as multisets (two identical programs on one
/// hook are two).
fn added_removed<'a, T: PartialEq>(then: &'a [T], now: &'a [T]) -> (Vec<&'a T>, Vec<&'a T>) {
    let unmatched = |from: &'a [T], against: &'a [T]| {
        let mut used = vec![false; against.len()];
        from.iter()
            .filter(
                |x| match (0..against.len()).find(|&i| !used[i] && against[i] == **x) {
                    Some(i) => {
                        used[i] = true;
                        false
                    }
                    None => true,
                },
            )
            .collect::<Vec<_>>()
    };
    (unmatched(now, then), unmatched(then, now))
}

fn push(
    out: &mut Vec<Difference>,
    change: Change,
    kind: &'static str,
    ns: &str,
    iface: Option<&str>,
    what: String,
) {
    push_about(out, Vec::new(), change, kind, ns, iface, what);
}

/// [`push`] for a difference about `subjects`.
fn push_about(
    out: &mut Vec<Difference>,
    subjects: Vec<String>,
    change: Change,
    kind: &'static str,
    ns: &str,
    iface: Option<&str>,
    what: String,
) {
    let when = match change {
        Change::New => "new since the baseline",
        Change::Gone => "gone since the baseline",
        Change::Changed => "changed since the baseline",
    };
    out.push(Difference {
        change,
        kind,
        netns: ns.to_owned(),
        iface: iface.map(str::to_owned),
        sentence: format!("{when}: {what}"),
        subjects,
    });
}

fn bpf(ns: &str, then: &NsBaseline, now: &NsBaseline, out: &mut Vec<Difference>) {
    // Where and what, not the id (ids differ between hosts and loads).
    let key = |b: &BaseBpf| (b.dev.clone(), b.hook.clone(), b.name.clone(), b.tag.clone());
    let keys_then: Vec<_> = then.bpf.iter().map(key).collect();
    let keys_now: Vec<_> = now.bpf.iter().map(key).collect();
    let (added, removed) = added_removed(&keys_then, &keys_now);
    let find = |list: &[BaseBpf], k: &(String, String, String, Option<String>)| {
        list.iter().find(|b| key(b) == *k).map(|b| b.prog_id)
    };
    for k in added {
        let id = find(&now.bpf, k).unwrap_or(0);
        push_about(
            out,
            vec![subject::bpf(&k.0, &k.1, &k.2)],
            Change::New,
            "bpf",
            ns,
            Some(&k.0),
            format!(
                "BPF program {} (id {id}) at {} on {} in {ns}",
                k.2, k.1, k.0
            ),
        );
    }
    for k in removed {
        let id = find(&then.bpf, k).unwrap_or(0);
        push_about(
            out,
            vec![subject::bpf(&k.0, &k.1, &k.2)],
            Change::Gone,
            "bpf",
            ns,
            Some(&k.0),
            format!(
                "BPF program {} (id {id} then) at {} on {} in {ns}",
                k.2, k.1, k.0
            ),
        );
    }
    // "This host has many more sched_cls hooks": the count by program type.
    let count = |list: &[BaseBpf]| {
        let mut by: BTreeMap<String, usize> = BTreeMap::new();
        for b in list {
            *by.entry(b.prog_type.clone().unwrap_or_else(|| "unknown".into()))
                .or_default() += 1;
        }
        by
    };
    let (c_then, c_now) = (count(&then.bpf), count(&now.bpf));
    for t in c_then
        .keys()
        .chain(c_now.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let (a, b) = (
            c_then.get(t).copied().unwrap_or(0),
            c_now.get(t).copied().unwrap_or(0),
        );
        if a != b && a > 0 {
            push(
                out,
                Change::Changed,
                "bpf",
                ns,
                None,
                format!(
                    "{b} {t} program{} attached in {ns}, {a} in the baseline",
                    if b == 1 { "" } else { "s" }
                ),
            );
        }
    }
}

fn rules(ns: &str, then: &NsBaseline, now: &NsBaseline, out: &mut Vec<Difference>) {
    let (added, removed) = added_removed(&then.rules, &now.rules);
    let what = |r: &BaseRule| {
        format!(
            "{} {} in {} {} `{}` in {ns}",
            r.source,
            if r.text.starts_with("policy") {
                "chain policy"
            } else {
                "rule"
            },
            r.table,
            r.chain,
            r.text
        )
    };
    let about = |r: &BaseRule| {
        vec![
            subject::rule_text(&r.source, &r.table, &r.chain, &r.text),
            subject::chain(&r.source, &r.table, &r.chain),
        ]
    };
    for r in added {
        push_about(out, about(r), Change::New, "rule", ns, None, what(r));
    }
    for r in removed {
        push_about(out, about(r), Change::Gone, "rule", ns, None, what(r));
    }
}

fn qdiscs(ns: &str, then: &NsBaseline, now: &NsBaseline, out: &mut Vec<Difference>) {
    let at = |q: &BaseQdisc| (q.dev.clone(), q.handle.clone(), q.parent.clone());
    for q in &now.qdiscs {
        let about = vec![subject::qdisc(&q.dev, &q.handle)];
        match then.qdiscs.iter().find(|t| at(t) == at(q)) {
            None => push_about(
                out,
                about,
                Change::New,
                "qdisc",
                ns,
                Some(&q.dev),
                format!(
                    "qdisc {} (handle {}, {}) on {} in {ns}",
                    q.kind, q.handle, q.options, q.dev
                ),
            ),
            Some(t) if t.kind != q.kind || t.options != q.options => push_about(
                out,
                about,
                Change::Changed,
                "qdisc",
                ns,
                Some(&q.dev),
                format!(
                    "qdisc {} on {} in {ns} is {} `{}`, was {} `{}`",
                    q.handle, q.dev, q.kind, q.options, t.kind, t.options
                ),
            ),
            Some(_) => {}
        }
    }
    for t in &then.qdiscs {
        if !now.qdiscs.iter().any(|q| at(q) == at(t)) {
            push_about(
                out,
                vec![subject::qdisc(&t.dev, &t.handle)],
                Change::Gone,
                "qdisc",
                ns,
                Some(&t.dev),
                format!(
                    "qdisc {} (handle {}) on {} in {ns}",
                    t.kind, t.handle, t.dev
                ),
            );
        }
    }
}

fn sysctls(ns: &str, then: &NsBaseline, now: &NsBaseline, out: &mut Vec<Difference>) {
    for (k, v) in &now.sysctls {
        match then.sysctls.get(k) {
            Some(old) if old != v => push(
                out,
                Change::Changed,
                "sysctl",
                ns,
                None,
                format!("{k} in {ns} is {v}, was {old}"),
            ),
            // A sysctl of an interface that is new is said with the interface.
            _ => {}
        }
    }
}

fn mtus(ns: &str, then: &NsBaseline, now: &NsBaseline, out: &mut Vec<Difference>) {
    for (dev, mtu) in &now.mtus {
        match then.mtus.get(dev) {
            Some(old) if old != mtu => push(
                out,
                Change::Changed,
                "mtu",
                ns,
                Some(dev),
                format!("MTU of {dev} in {ns} is {mtu}, was {old}"),
            ),
            None => push(
                out,
                Change::New,
                "mtu",
                ns,
                Some(dev),
                format!("interface {dev} (MTU {mtu}) in {ns}"),
            ),
            Some(_) => {}
        }
    }
    for dev in then.mtus.keys() {
        if !now.mtus.contains_key(dev) {
            push(
                out,
                Change::Gone,
                "mtu",
                ns,
                Some(dev),
                format!("interface {dev} in {ns}"),
            );
        }
    }
}

fn routes(ns: &str, then: &NsBaseline, now: &NsBaseline, out: &mut Vec<Difference>) {
    let (added, removed) = added_removed(&then.routes, &now.routes);
    for r in added {
        push(out, Change::New, "route", ns, None, format!("{r} in {ns}"));
    }
    for r in removed {
        push(out, Change::Gone, "route", ns, None, format!("{r} in {ns}"));
    }
}

/// The kinds of difference that can explain a finding of each cause.
fn explains(cause: &str, d: &Difference) -> bool {
    match cause {
        "tc_bpf" | "xdp" => d.kind == "bpf",
        "netfilter_rule" => d.kind == "rule",
        "conntrack_full" => d.kind == "sysctl" && d.sentence.contains("conntrack"),
        "qdisc" => d.kind == "qdisc",
        "mtu" => d.kind == "mtu",
        "no_route" => d.kind == "route",
        "forwarding_disabled" => d.kind == "sysctl" && d.sentence.contains("forward"),
        "rp_filter" => d.kind == "sysctl" && d.sentence.contains("rp_filter"),
        "socket_rcvbuf" => d.kind == "sysctl" && d.sentence.contains("rmem"),
        "listen_overflow" => {
            d.kind == "sysctl"
                && (d.sentence.contains("somaxconn") || d.sentence.contains("syn_backlog"))
        }
        "paws" => d.kind == "sysctl" && d.sentence.contains("tcp_timestamps"),
        "netdev_backlog" => d.kind == "sysctl" && d.sentence.contains("netdev_max_backlog"),
        _ => false,
    }
}

/// Findings whose evidence is new since the baseline go first (benign ones still last),
/// each with the differences that explain it added to its evidence: of its kind, in its
/// namespace (and on its interface), and about the very rule, qdisc or program its
/// evidence names. Stable otherwise.
/// `aliases`: a finding's namespace name to the name the baseline knows it by, where they
/// differ ("container 4f1c..." to "netns web").
pub fn rank(findings: &mut [Finding], diff: &[Difference], aliases: &BTreeMap<String, String>) {
    let mut is_new = Vec::with_capacity(findings.len());
    for f in findings.iter_mut() {
        let ns = f
            .netns
            .as_deref()
            .map(|n| aliases.get(n).map_or(n, String::as_str));
        let related: Vec<&Difference> = diff
            .iter()
            .filter(|d| d.change != Change::Gone)
            .filter(|d| ns == Some(d.netns.as_str()))
            .filter(|d| explains(f.cause, d))
            // A rule, qdisc or program concerns the finding only if its evidence names it.
            .filter(|d| d.subjects.is_empty() || d.subjects.iter().any(|s| f.subjects.contains(s)))
            .filter(|d| match (&f.iface, &d.iface) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            })
            .collect();
        for d in &related {
            if !f.evidence.contains(&d.sentence) {
                f.evidence.push(d.sentence.clone());
            }
        }
        is_new.push(!related.is_empty());
    }
    let mut order: Vec<usize> = (0..findings.len()).collect();
    order.sort_by_key(|&i| (findings[i].benign, !is_new[i]));
    let sorted: Vec<Finding> = order.iter().map(|&i| findings[i].clone()).collect();
    findings.clone_from_slice(&sorted);
}

#[cfg(test)]
mod tests;
