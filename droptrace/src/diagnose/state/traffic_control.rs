//! Qdiscs, classes, filters and their actions, as the diagnosis needs them.
use super::*;

pub(super) fn traffic_control(raw: &RawSnapshot, st: &mut NsState) {
    use crate::diagnose::evidence::{bpftool, tc};
    if let Some(json) = raw.commands.get("qdiscs") {
        match tc::parse_qdiscs(json) {
            Ok(qdiscs) => {
                st.qdiscs = qdiscs;
            }
            Err(e) => st.missing.push(format!("tc qdisc output: {e}")),
        }
    }
    for ((dev, dir), json) in &raw.tc_filters {
        let text = raw.tc_filters_text.get(&(dev.clone(), dir.clone()));
        match crate::diagnose::evidence::tc_actions::parse_filters(
            json,
            dev,
            dir,
            text.map(String::as_str),
        ) {
            Ok(list) => st.tc_filters.extend(list),
            Err(e) => st.missing.push(format!("tc filter actions on {dev}: {e}")),
        }
    }
    // tc's own listing gives the filter's preference (to delete it) and the program tag.
    let mut filters = Vec::new();
    for ((dev, dir), json) in &raw.tc_filters {
        match tc::parse_bpf_filters(json, dev) {
            Ok(list) => filters.extend(list.into_iter().map(|f| (dir.clone(), f))),
            Err(e) => st.missing.push(format!("tc filter output on {dev}: {e}")),
        }
    }
    let attachments = match raw
        .commands
        .get("bpf-net")
        .map(|j| bpftool::parse_net_show(j))
    {
        Some(Ok(a)) => a,
        Some(Err(e)) => {
            st.missing.push(format!("bpftool net output: {e}"));
            Vec::new()
        }
        None => Vec::new(),
    };
    for a in attachments {
        let dev = a.dev.clone().unwrap_or_default();
        let dir = match a.direction {
            Some(bpftool::Direction::Ingress) => "ingress",
            Some(bpftool::Direction::Egress) => "egress",
            None => "",
        };
        let (hook, detach) = match a.kind {
            bpftool::AttachKind::Xdp => {
                // Each attach mode has its own switch in ip-link.
                let flag = match a.attach_point.as_deref() {
                    Some("generic") => "xdpgeneric",
                    Some("offload") => "xdpoffload",
                    Some("driver") => "xdpdrv",
                    _ => "xdp",
                };
                (
                    "xdp".to_owned(),
                    format!("ip link set dev {dev} {flag} off"),
                )
            }
            bpftool::AttachKind::Tc => {
                let pref = filters
                    .iter()
                    .find(|(d, f)| d == dir && f.dev == dev && f.prog_id == Some(a.prog_id))
                    .and_then(|(_, f)| f.pref);
                let detach = match pref {
                    Some(p) => format!("tc filter del dev {dev} {dir} pref {p}"),
                    None => format!("tc filter del dev {dev} {dir}"),
                };
                (format!("tc {dir}"), detach)
            }
            bpftool::AttachKind::Tcx => (
                format!("tcx {dir}"),
                format!(
                    "stop the process holding the tcx link{}",
                    a.link_id
                        .map(|l| format!(" (link id {l})"))
                        .unwrap_or_default()
                ),
            ),
            _ => continue,
        };
        let tag = filters
            .iter()
            .find(|(_, f)| f.prog_id == Some(a.prog_id))
            .and_then(|(_, f)| f.prog_tag.clone());
        let prog = raw
            .bpf_progs
            .get(&a.prog_id)
            .and_then(|j| bpftool::parse_prog(j).ok());
        let tag = tag.or_else(|| prog.as_ref().and_then(|p| p.tag.clone()));
        st.bpf.push(BpfAttachment {
            name: prog
                .as_ref()
                .and_then(|p| p.name.clone())
                .or_else(|| a.name.clone())
                .unwrap_or_else(|| format!("prog {}", a.prog_id)),
            label: a
                .name
                .clone()
                .filter(|l| prog.as_ref().and_then(|p| p.name.as_ref()) != Some(l)),
            dev,
            hook,
            prog_id: a.prog_id,
            tag,
            detach,
        });
    }
    // Without bpftool, tc's listing alone still shows classic tc programs.
    if !raw.commands.contains_key("bpf-net") {
        for (dir, f) in filters {
            let Some(id) = f.prog_id else { continue };
            st.bpf.push(BpfAttachment {
                name: f
                    .prog_name
                    .clone()
                    .or(f.name.clone())
                    .unwrap_or_else(|| format!("prog {id}")),
                label: f.name.clone().filter(|l| f.prog_name.as_ref() != Some(l)),
                hook: format!("tc {dir}"),
                prog_id: id,
                tag: f.prog_tag.clone(),
                detach: match f.pref {
                    Some(p) => format!("tc filter del dev {} {dir} pref {p}", f.dev),
                    None => format!("tc filter del dev {} {dir}", f.dev),
                },
                dev: f.dev,
            });
        }
    }
}
