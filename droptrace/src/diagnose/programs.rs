//! The BPF programs on the packet path as the kernel knows them: name, id, type, tag, when
//! and by which uid they were loaded, their maps, the links and pinned paths that keep them,
//! and the processes holding them open (with their command lines). This is what answers
//! "which component injected this hook". Built from a `RawSnapshot`, like `state`.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    evidence::{bpftool, holders},
    raw::RawSnapshot,
};

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BpfProgram {
    pub id: u32,
    /// `sched_cls`, `xdp`, `cgroup_skb`...
    pub prog_type: String,
    /// The name in bpf_prog_info (at most 15 characters).
    pub name: Option<String>,
    pub tag: Option<String>,
    /// Seconds since the epoch.
    pub loaded_at: Option<u64>,
    pub uid: Option<u32>,
    pub pinned: Vec<String>,
    pub maps: Vec<MapRef>,
    /// Links to it (tcx, XDP, netfilter...), each with its pinned paths.
    pub links: Vec<LinkRef>,
    /// Processes with a descriptor of it or of one of its links.
    pub holders: Vec<Holder>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapRef {
    pub id: u32,
    pub map_type: String,
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkRef {
    pub id: u32,
    pub link_type: String,
    pub pinned: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Holder {
    pub pid: u32,
    pub comm: String,
    pub cmdline: Option<String>,
    /// "the program" or "tcx link 103".
    pub via: String,
}

impl BpfProgram {
    /// "drop_syn (id 41, sched_cls, tag 280c63775f964b27, loaded 2026-12-02 03:14:57 UTC by
    /// uid 0)"
    pub fn describe(&self) -> String {
        let mut parts = vec![format!("id {}", self.id), self.prog_type.clone()];
        if let Some(t) = &self.tag {
            parts.push(format!("tag {t}"));
        }
        match (self.loaded_at, self.uid) {
            (Some(at), Some(uid)) => parts.push(format!("loaded {} by uid {uid}", utc(at))),
            (Some(at), None) => parts.push(format!("loaded {}", utc(at))),
            (None, Some(uid)) => parts.push(format!("loaded by uid {uid}")),
            (None, None) => {}
        }
        format!(
            "{} ({})",
            self.name.as_deref().unwrap_or("(no name)"),
            parts.join(", ")
        )
    }

    /// Who keeps it in the kernel, for people: processes first, then pins.
    pub fn kept_by(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .holders
            .iter()
            .map(|h| {
                format!(
                    "held open ({}) by pid {} {}: `{}`",
                    h.via,
                    h.pid,
                    h.comm,
                    h.cmdline.as_deref().unwrap_or("(no command line)")
                )
            })
            .collect();
        out.extend(self.pinned.iter().map(|p| format!("pinned at {p}")));
        for l in &self.links {
            out.extend(
                l.pinned
                    .iter()
                    .map(|p| format!("its {} link {} is pinned at {p}", l.link_type, l.id)),
            );
        }
        out
    }
}

/// A BPF program attached to an interface (tc or XDP).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BpfAttachment {
    pub dev: String,
    /// "xdp", "tc ingress", "tc egress", "tcx ingress", "tcx egress".
    pub hook: String,
    pub prog_id: u32,
    /// The program's name as the kernel knows it (bpf_prog_info), else tc's label.
    pub name: String,
    /// What tc calls the filter (`file.o:[section]`), when it differs from the name.
    pub label: Option<String>,
    pub tag: Option<String>,
    /// How to detach it.
    pub detach: String,
}

/// Every program the snapshot described, by id.
pub fn programs(raw: &RawSnapshot) -> BTreeMap<u32, BpfProgram> {
    let maps: BTreeMap<u32, bpftool::BpfMap> = raw
        .bpf_maps
        .iter()
        .filter_map(|(id, j)| Some((*id, bpftool::parse_map(j).ok()?)))
        .collect();
    let links = raw
        .bpf_links
        .as_deref()
        .and_then(|j| bpftool::parse_links(j).ok())
        .unwrap_or_default();
    let fds: Vec<(u32, holders::BpfFd)> = raw
        .bpf_fds
        .iter()
        .filter_map(|(pid, text)| Some((*pid, holders::parse_fdinfo(text)?)))
        .collect();
    let mut out = BTreeMap::new();
    for (id, json) in &raw.bpf_progs {
        let Ok(p) = bpftool::parse_prog(json) else {
            continue;
        };
        let mut holders: Vec<Holder> = Vec::new();
        for (pid, fd) in fds.iter().filter(|(_, f)| f.prog_id == *id) {
            let via = match &fd.link {
                Some(l) => format!("{} link {}", l.link_type, l.id),
                None => "the program".to_owned(),
            };
            let (comm, cmdline) = raw
                .processes
                .get(pid)
                .map(|(c, line)| (c.clone(), holders::parse_cmdline(line)))
                .unwrap_or_default();
            // One process, one line: "the program and tcx link 103".
            match holders.iter_mut().find(|h| h.pid == *pid) {
                Some(h) if !h.via.contains(&via) => h.via = format!("{} and {via}", h.via),
                Some(_) => {}
                None => holders.push(Holder {
                    pid: *pid,
                    comm,
                    cmdline,
                    via,
                }),
            }
        }
        // bpftool built with skeletons names holders itself.
        for pid in &p.pids {
            if !holders.iter().any(|h| h.pid == pid.pid) {
                holders.push(Holder {
                    pid: pid.pid,
                    comm: pid.comm.clone(),
                    cmdline: raw
                        .processes
                        .get(&pid.pid)
                        .and_then(|(_, l)| holders::parse_cmdline(l)),
                    via: "the program".to_owned(),
                });
            }
        }
        out.insert(
            *id,
            BpfProgram {
                id: *id,
                prog_type: p.prog_type,
                name: p.name,
                tag: p.tag,
                loaded_at: p.loaded_at,
                uid: p.uid,
                pinned: p.pinned,
                maps: p
                    .map_ids
                    .iter()
                    .map(|m| match maps.get(m) {
                        Some(map) => MapRef {
                            id: *m,
                            map_type: map.map_type.clone(),
                            name: map.name.clone(),
                        },
                        None => MapRef {
                            id: *m,
                            map_type: "unknown".into(),
                            name: None,
                        },
                    })
                    .collect(),
                links: links
                    .iter()
                    .filter(|l| l.prog_id == *id)
                    .map(|l| LinkRef {
                        id: l.id,
                        link_type: link_type_name(&l.link_type),
                        pinned: l.pinned.clone(),
                    })
                    .collect(),
                holders,
            },
        );
    }
    out
}

/// bpftool 7.1 prints link types newer than itself as numbers (enum bpf_link_type).
fn link_type_name(t: &str) -> String {
    match t {
        "10" => "netfilter".into(),
        "11" => "tcx".into(),
        "12" => "uprobe_multi".into(),
        "13" => "netkit".into(),
        other => other.to_owned(),
    }
}

/// The tcx attachments the kernel listed that bpftool's `net show` did not (bpftool before
/// 7.3 knows no tcx).
pub fn tcx_attachments(
    raw: &RawSnapshot,
    known: &[BpfAttachment],
    programs: &BTreeMap<u32, BpfProgram>,
) -> Vec<BpfAttachment> {
    let mut out = Vec::new();
    for ((dev, dir), ids) in &raw.tcx {
        let hook = format!("tcx {dir}");
        for id in ids {
            if known
                .iter()
                .any(|a| a.dev == *dev && a.hook == hook && a.prog_id == *id)
            {
                continue;
            }
            let prog = programs.get(id);
            let link = prog.and_then(|p| p.links.iter().find(|l| l.link_type == "tcx"));
            let detach = match (link, prog.and_then(|p| p.holders.first())) {
                (Some(l), _) if !l.pinned.is_empty() => {
                    format!("rm {} (the pinned tcx link {})", l.pinned.join(" "), l.id)
                }
                (_, Some(h)) => format!(
                    "stop or reconfigure pid {} ({}), which holds it{}",
                    h.pid,
                    h.comm,
                    link.map(|l| format!(" through tcx link {}", l.id))
                        .unwrap_or_default()
                ),
                _ => format!("bpftool net detach tcx_{dir} dev {dev} (bpftool 7.3 or later)"),
            };
            out.push(BpfAttachment {
                dev: dev.clone(),
                hook: hook.clone(),
                prog_id: *id,
                name: prog
                    .and_then(|p| p.name.clone())
                    .unwrap_or_else(|| format!("prog {id}")),
                label: None,
                tag: prog.and_then(|p| p.tag.clone()),
                detach,
            });
        }
    }
    out
}

/// The cgroup skb programs (ingress and egress) of `bpftool -j cgroup tree`.
pub fn cgroup_attachments(raw: &RawSnapshot) -> Vec<bpftool::CgroupAttachment> {
    raw.commands
        .get("bpf-cgroup")
        .and_then(|j| bpftool::parse_cgroup_tree(j).ok())
        .unwrap_or_default()
        .into_iter()
        .filter(|c| {
            matches!(
                c.attach_type.as_str(),
                "cgroup_inet_ingress" | "cgroup_inet_egress"
            )
        })
        .collect()
}

/// Seconds since the epoch as `2026-12-02 03:14:57 UTC`.
pub fn utc(secs: u64) -> String {
    format!(
        "{} UTC",
        crate::format::utc(secs.saturating_mul(1_000_000_000))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/fixtures/evidence/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    /// The capture of README.capture's "BPF identity" section: a tcx link held by
    /// bpf_holder (pid 19187).
    fn holder_snapshot() -> RawSnapshot {
        let mut raw = RawSnapshot::default();
        let mut prog = fixture("bpftool-prog.f.sched_cls.json");
        prog = prog.replace("\"id\":176", "\"id\":171");
        raw.bpf_progs.insert(171, prog);
        raw.bpf_links = Some(fixture("bpftool-7.1-link.json"));
        raw.bpf_fds = vec![
            (19187, fixture("fdinfo.bpf-prog.txt")),
            (19187, fixture("fdinfo.tcx-link.txt")),
            (19188, fixture("fdinfo.xdp-link.txt")),
        ];
        let cmdline = std::fs::read(format!(
            "{}/fixtures/evidence/proc-cmdline.bpf_holder",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        raw.processes.insert(19187, ("bpf_holder".into(), cmdline));
        raw.tcx.insert(("dtv1".into(), "ingress".into()), vec![171]);
        raw
    }

    #[test]
    fn names_the_process_holding_a_tcx_program() {
        let raw = holder_snapshot();
        let progs = programs(&raw);
        let p = &progs[&171];
        assert_eq!(
            p.describe(),
            "drop_syn (id 171, sched_cls, tag 280c63775f964b27, loaded 2026-12-02 \
             03:14:57 UTC by uid 0)"
        );
        assert_eq!(
            p.links,
            [LinkRef {
                id: 103,
                link_type: "tcx".into(),
                pinned: vec![]
            }]
        );
        let vias: Vec<&str> = p.holders.iter().map(|h| h.via.as_str()).collect();
        assert_eq!(vias, ["the program and tcx link 103"]);
        let kept = p.kept_by();
        assert!(
            kept[0].starts_with("held open (the program and tcx link 103) by pid 19187 bpf_holder: `/tmp/wt-13b/target/release/bpf_holder /run/netns/dtcap-13b dtv1 tcx-ingress"),
            "{kept:?}"
        );

        let tcx = tcx_attachments(&raw, &[], &progs);
        assert_eq!(tcx.len(), 1);
        assert_eq!(
            (
                tcx[0].dev.as_str(),
                tcx[0].hook.as_str(),
                tcx[0].name.as_str()
            ),
            ("dtv1", "tcx ingress", "drop_syn")
        );
        assert!(
            tcx[0].detach.contains("pid 19187") && tcx[0].detach.contains("tcx link 103"),
            "{}",
            tcx[0].detach
        );
        // Listed by a newer bpftool already: not twice.
        assert!(tcx_attachments(&raw, &tcx, &progs).is_empty());
    }

    #[test]
    fn pins_and_maps() {
        let mut raw = RawSnapshot::default();
        raw.bpf_progs
            .insert(195, fixture("bpftool-prog.f.pinned.json"));
        raw.bpf_progs
            .insert(200, fixture("bpftool-prog.f.maps.json"));
        raw.bpf_maps
            .insert(181, fixture("bpftool-map.ringbuf.json"));
        raw.bpf_links = Some(fixture("bpftool-7.1-link.tracepoint.json"));
        let progs = programs(&raw);
        assert_eq!(progs[&195].kept_by(), ["pinned at /sys/fs/bpf/dt13b-try"]);
        let p = &progs[&200];
        assert_eq!(p.maps.len(), 7);
        let ring = p.maps.iter().find(|m| m.id == 181).unwrap();
        assert_eq!(
            (ring.map_type.as_str(), ring.name.as_deref()),
            ("ringbuf", Some("EVENTS"))
        );
        assert_eq!(
            p.maps.iter().find(|m| m.id == 177).unwrap().map_type,
            "unknown"
        );
        assert_eq!(p.links[0].link_type, "raw_tracepoint");
        assert!(p.holders.is_empty());
        // Broken input is skipped, never a panic.
        raw.bpf_progs.insert(1, "{".into());
        raw.bpf_links = Some("[".into());
        raw.bpf_fds = vec![(1, "garbage".into())];
        assert!(!programs(&raw).contains_key(&1));
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_796_181_297), "2026-12-02 03:14:57 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
    }
}
