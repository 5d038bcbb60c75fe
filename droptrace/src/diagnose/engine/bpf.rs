//! Drops by a BPF program: the tc or XDP program attached where the packets died.

use super::{Finding, Ns};
use crate::diagnose::programs::BpfProgram;

/// The XDP verdicts droptrace counted itself (fexit on the program, `pipeline::xdp`): the
/// group names its program by id, so the finding names that program, with the exact count,
/// even where no attachment of it was sampled.
pub(super) fn xdp_verdicts(
    n: &Ns<'_>,
    g: &super::DropGroup,
    iface: Option<&str>,
    prog_id: u32,
    f: &mut Finding,
) -> String {
    let verdict = g.reason.as_deref().unwrap_or("XDP_DROP");
    let name = g
        .function
        .as_deref()
        .and_then(|f| f.strip_prefix("xdp "))
        .unwrap_or("?");
    let on = iface.map(|i| format!(" on {i}")).unwrap_or_default();
    // An XDP exception that nothing else counted (`pipeline::xdp::exception_name`): an
    // abort, a failed XDP_TX or redirect, seen at the xdp tracepoints.
    let exception = verdict.ends_with("(xdp_exception)") || verdict.starts_with("XDP_REDIRECT");
    if exception {
        f.evidence.push(format!(
            "droptrace: the XDP program `{name}` (id {prog_id}) had {verdict} {} time{}{on} in \
             {}, counted exactly at the xdp tracepoints; these frames are counted nowhere else",
            g.count,
            if g.count == 1 { "" } else { "s" },
            n.name
        ));
    } else {
        f.evidence.push(format!(
            "droptrace: the XDP program `{name}` (id {prog_id}) returned {verdict} {} time{}{on} \
             in {}, counted exactly by a fexit program on it; none of these frames is counted \
             again at kfree_skb",
            g.count,
            if g.count == 1 { "" } else { "s" },
            n.name
        ));
    }
    // The attachment sampled for this program, if any, gives its hook, holders and fix.
    let key = bpf(n, iface, None, true, Some(prog_id), f);
    let did = if exception { "had" } else { "returned" };
    if f.summary.is_empty() {
        f.summary = format!(
            "the XDP program `{name}` (id {prog_id}){on} in {} {did} {verdict} for {} frame{}",
            n.name,
            g.count,
            if g.count == 1 { "" } else { "s" }
        );
        f.fix = format!(
            "find which component attached it (bpftool prog show id {prog_id}), then detach \
             it: {}ip link set dev {} xdp off",
            n.prefix,
            iface.unwrap_or("<iface>")
        );
    } else {
        f.summary = f.summary.replace(
            " drops these packets",
            &format!(
                " {did} {verdict} for {} frame{}",
                g.count,
                if g.count == 1 { "" } else { "s" }
            ),
        );
    }
    f.iface = iface.map(str::to_owned).or(f.iface.take());
    format!("{key}|{verdict}")
}

/// `xdp`: XDP attachments, else tc ones; `program`: only that program's.
pub(super) fn bpf(
    n: &Ns<'_>,
    iface: Option<&str>,
    reason: Option<&str>,
    xdp: bool,
    program: Option<u32>,
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
    // A tc action that counted the drops (gact drop, police) names itself.
    if !xdp {
        if let Some(key) = super::tc_action::tc_action(n, iface, direction, f) {
            return key;
        }
    }
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
        .filter(|a| program.is_none_or(|id| a.prog_id == id))
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
    let program = after.programs.get(&top.prog_id);
    let kept_by = program.map(BpfProgram::kept_by).unwrap_or_default();
    f.summary = format!(
        "the BPF program `{}` (id {}) attached at {} on {} in {} drops these packets{}",
        top.name,
        top.prog_id,
        top.hook,
        top.dev,
        n.name,
        kept_by
            .first()
            .map(|k| format!("; it is {k}"))
            .unwrap_or_default()
    );
    for a in &attached {
        f.subjects
            .push(crate::diagnose::subject::bpf(&a.dev, &a.hook, &a.name));
        let what = match after.programs.get(&a.prog_id) {
            Some(p) => p.describe(),
            None => format!(
                "`{}` (id {}{})",
                a.name,
                a.prog_id,
                a.tag
                    .as_ref()
                    .map(|t| format!(", tag {t}"))
                    .unwrap_or_default()
            ),
        };
        let label = a
            .label
            .as_ref()
            .map(|l| format!(", tc filter {l}"))
            .unwrap_or_default();
        f.evidence.push(format!(
            "{} on {}: BPF program {what}{label}",
            a.hook, a.dev
        ));
    }
    if let Some(p) = program {
        f.evidence
            .extend(kept_by.iter().map(|k| format!("program {}: {k}", p.id)));
        if kept_by.is_empty() {
            f.evidence.push(format!(
                "program {}: no process holds it open and it is not pinned: only the \
                 attachment keeps it (a tool such as tc or ip loaded it and exited; \
                 look for what runs that tool at uid {})",
                p.id,
                p.uid.map_or_else(|| "?".to_owned(), |u| u.to_string())
            ));
        }
        if !p.maps.is_empty() {
            let maps: Vec<String> = p
                .maps
                .iter()
                .map(|m| match &m.name {
                    Some(name) => format!("{name} (id {}, {})", m.id, m.map_type),
                    None => format!("id {} ({})", m.id, m.map_type),
                })
                .collect();
            f.evidence
                .push(format!("program {} maps: {}", p.id, maps.join(", ")));
        }
    }
    f.iface = Some(top.dev.clone());
    // A program attached through a link stays as long as the link: the process (or pin)
    // holding the link is what has to let go; tc or ip cannot detach it.
    let link_holder = program.and_then(|p| p.holders.iter().find(|h| h.via.contains("link")));
    f.fix = match link_holder {
        Some(h) => format!(
            "stop or reconfigure pid {} ({}), which holds it ({}): `{}`",
            h.pid,
            h.comm,
            h.via,
            h.cmdline.as_deref().unwrap_or("(no command line)")
        ),
        None => {
            let who = match program.and_then(|p| p.holders.first()) {
                Some(h) => format!("pid {} ({}) holds it", h.pid, h.comm),
                None => format!("bpftool prog show id {}", top.prog_id),
            };
            // Only commands are run inside the namespace; "stop pid N" is not one.
            let prefix = if ["tc ", "ip ", "bpftool "]
                .iter()
                .any(|c| top.detach.starts_with(c))
            {
                n.prefix.as_str()
            } else {
                ""
            };
            format!(
                "find which component attached it ({who}), then detach it: {prefix}{}",
                top.detach
            )
        }
    };
    format!("{}|{}", top.dev, top.prog_id)
}

/// SOCKET_FILTER drops (and BPF_CGROUP_EGRESS): a filter on the socket itself, or a cgroup
/// skb program, which filters the packets of every socket made in its cgroup. Says which
/// cgroup programs are attached in that direction; None (nothing claimed) when there are
/// none.
pub(super) fn cgroup_bpf(n: &Ns<'_>, reason: Option<&str>, f: &mut Finding) -> Option<()> {
    let want = match reason? {
        "SOCKET_FILTER" => "cgroup_inet_ingress",
        "BPF_CGROUP_EGRESS" => "cgroup_inet_egress",
        _ => return None,
    };
    let after = n.after?;
    let attached: Vec<_> = after
        .cgroup_bpf
        .iter()
        .filter(|c| c.attach_type == want)
        .collect();
    let top = attached.first()?;
    let program = after.programs.get(&top.prog_id);
    let kept_by = program.map(BpfProgram::kept_by).unwrap_or_default();
    let name = program
        .and_then(|p| p.name.clone())
        .or_else(|| top.name.clone())
        .unwrap_or_else(|| format!("prog {}", top.prog_id));
    let dir = if want.ends_with("ingress") {
        "ingress"
    } else {
        "egress"
    };
    f.summary = format!(
        "the cgroup skb program `{name}` (id {}) attached at {dir} of cgroup {} rejects these \
         packets for the sockets made in that cgroup (unless a socket's own filter does){}",
        top.prog_id,
        top.cgroup,
        kept_by
            .first()
            .map(|k| format!("; it is {k}"))
            .unwrap_or_default()
    );
    for c in &attached {
        let what = after.programs.get(&c.prog_id).map_or_else(
            || format!("id {}", c.prog_id),
            crate::diagnose::programs::BpfProgram::describe,
        );
        f.evidence.push(format!(
            "cgroup {} {}: BPF program {what}",
            c.cgroup, c.attach_type
        ));
    }
    if let Some(p) = program {
        f.evidence
            .extend(kept_by.iter().map(|k| format!("program {}: {k}", p.id)));
    }
    let link_holder = program.and_then(|p| p.holders.iter().find(|h| h.via.contains("link")));
    f.fix = match link_holder {
        Some(h) => format!(
            "stop or reconfigure pid {} ({}), which holds it ({}): `{}`",
            h.pid,
            h.comm,
            h.via,
            h.cmdline.as_deref().unwrap_or("(no command line)")
        ),
        None => format!(
            "find which component attached it (bpftool prog show id {}), then detach it: \
             bpftool cgroup detach {} {dir} id {}",
            top.prog_id, top.cgroup, top.prog_id
        ),
    };
    Some(())
}
