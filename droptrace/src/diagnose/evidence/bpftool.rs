//! `bpftool -j net show` (which BPF programs sit on the packet path: XDP, tc and tcx,
//! netkit, flow dissector, netfilter) and `bpftool -j prog show [id N]` (what they are).
//!
//! Two bpftool quirks are handled here. Every version up to at least 7.8 prints the flow
//! dissector as `"flow_dissector":["id":632]`, which is not JSON; it is repaired before
//! parsing. And a classic tc filter under an `ingress` qdisc is listed four times (as
//! `ingress`, `root`, `clsact/ingress` and `clsact/egress`: all four parents resolve to
//! that qdisc); the copies are dropped.
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum BpftoolError {
    #[error("bpftool JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// bpftool's own `{"error": "..."}`, e.g. for a program id that no longer exists.
    #[error("bpftool: {0}")]
    Tool(String),
    #[error("bpftool JSON: {0}")]
    Shape(&'static str),
}

/// Where on the packet path a program is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachKind {
    Xdp,
    /// A classic cls_bpf filter (clsact, ingress or a classful qdisc).
    Tc,
    /// A tcx link (Linux 6.6+).
    Tcx,
    /// A netkit device's program (Linux 6.7+).
    Netkit,
    FlowDissector,
    Netfilter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Ingress,
    Egress,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetAttachment {
    pub kind: AttachKind,
    /// None for the flow dissector and netfilter (not per device).
    pub dev: Option<String>,
    pub ifindex: Option<u32>,
    /// bpftool's word for the attach point: the XDP mode (`driver`, `generic`, `offload`)
    /// or the tc parent (`clsact/ingress`, `tcx/egress`, `ingress`, `root`, `htb`...).
    pub attach_point: Option<String>,
    pub direction: Option<Direction>,
    pub prog_id: u32,
    /// The program or filter name bpftool printed (tc: `file.o:[section]`).
    pub name: Option<String>,
    /// The BPF link holding a tcx/netkit attachment.
    pub link_id: Option<u32>,
    /// Where a netfilter program hooks in.
    pub netfilter: Option<NetfilterHook>,
}

/// A netfilter BPF link's hook: `pf` is the NFPROTO family (2 = ipv4, 10 = ipv6), `hook`
/// the NF_INET hook number (0 prerouting, 1 input, 2 forward, 3 output, 4 postrouting).
/// bpftool lists these links machine-wide, not per namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetfilterHook {
    pub pf: u32,
    pub hook: u32,
    pub prio: i32,
    pub flags: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BpfProg {
    pub id: u32,
    /// `xdp`, `sched_cls`, `netfilter`...; a bpftool too old to know the type prints its
    /// number (bpftool 7.1 shows netfilter programs as `32`).
    pub prog_type: String,
    pub name: Option<String>,
    pub tag: Option<String>,
    /// Present only while BPF statistics are enabled (kernel.bpf_stats_enabled).
    pub run_cnt: Option<u64>,
    pub run_time_ns: Option<u64>,
    pub recursion_misses: Option<u64>,
    /// Seconds since the epoch.
    pub loaded_at: Option<u64>,
    /// Processes holding the program open (bpftool built with skeletons).
    pub pids: Vec<ProgPid>,
    /// Who loaded it (bpf_prog_info.created_by_uid).
    pub uid: Option<u32>,
    pub map_ids: Vec<u32>,
    /// Paths in a BPF filesystem where it is pinned (`bpftool -f`).
    pub pinned: Vec<String>,
}

/// One map of `bpftool -j map show id N`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BpfMap {
    pub id: u32,
    /// `hash`, `ringbuf`...; a number where bpftool does not know the type.
    #[serde(rename = "type", deserialize_with = "name_or_number")]
    pub map_type: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub max_entries: Option<u64>,
}

/// One link of `bpftool -j -f link show`: what holds a tcx, XDP, netfilter or cgroup
/// attachment, and where it is pinned. bpftool 7.1 prints types it does not know (tcx is
/// 11) as numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BpfLink {
    pub id: u32,
    #[serde(rename = "type", deserialize_with = "name_or_number")]
    pub link_type: String,
    pub prog_id: u32,
    #[serde(default)]
    pub pinned: Vec<String>,
}

fn name_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(serde::de::Error::custom("neither a name nor a number")),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgPid {
    pub pid: u32,
    pub comm: String,
}

#[derive(Deserialize)]
struct RawNet {
    #[serde(default)]
    xdp: Vec<RawXdp>,
    #[serde(default)]
    tc: Vec<RawTc>,
    #[serde(default)]
    flow_dissector: Vec<RawId>,
    #[serde(default)]
    netfilter: Vec<RawNetfilter>,
}

#[derive(Deserialize)]
struct RawXdp {
    devname: Option<String>,
    ifindex: Option<u32>,
    mode: Option<String>,
    id: Option<u32>,
    #[serde(default)]
    multi_attachments: Vec<RawXdpOne>,
}

#[derive(Deserialize)]
struct RawXdpOne {
    mode: Option<String>,
    id: Option<u32>,
}

#[derive(Deserialize)]
struct RawTc {
    devname: Option<String>,
    ifindex: Option<u32>,
    kind: Option<String>,
    name: Option<String>,
    /// Classic tc filters.
    id: Option<u32>,
    /// tcx and netkit.
    prog_id: Option<u32>,
    link_id: Option<u32>,
}

#[derive(Deserialize)]
struct RawId {
    id: Option<u32>,
}

#[derive(Deserialize)]
struct RawNetfilter {
    pf: Option<u32>,
    hook: Option<u32>,
    prio: Option<i32>,
    flags: Option<u32>,
    id: Option<u32>,
}

#[derive(Deserialize)]
struct RawProg {
    id: u32,
    #[serde(rename = "type")]
    prog_type: Value,
    name: Option<String>,
    tag: Option<String>,
    run_cnt: Option<u64>,
    run_time_ns: Option<u64>,
    recursion_misses: Option<u64>,
    loaded_at: Option<u64>,
    #[serde(default)]
    pids: Vec<ProgPid>,
    uid: Option<u32>,
    #[serde(default)]
    map_ids: Vec<u32>,
    #[serde(default)]
    pinned: Vec<String>,
}

/// Parses `bpftool -j net show` (a one-element array of sections). Entries without a
/// program id are skipped.
pub fn parse_net_show(json: &str) -> Result<Vec<NetAttachment>, BpftoolError> {
    let value: Value = serde_json::from_str(&repair_flow_dissector(json))?;
    check_tool_error(&value)?;
    let sections: Vec<RawNet> = serde_json::from_value(value)?;
    let mut out = Vec::new();
    for net in sections {
        for x in net.xdp {
            let one = |mode: Option<String>, id: Option<u32>| {
                Some(NetAttachment {
                    kind: AttachKind::Xdp,
                    dev: x.devname.clone(),
                    ifindex: x.ifindex,
                    attach_point: mode,
                    direction: Some(Direction::Ingress),
                    prog_id: id?,
                    name: None,
                    link_id: None,
                    netfilter: None,
                })
            };
            out.extend(one(x.mode.clone(), x.id));
            out.extend(
                x.multi_attachments
                    .into_iter()
                    .filter_map(|m| one(m.mode, m.id)),
            );
        }
        let ingress_qdisc_devs: Vec<Option<u32>> = net
            .tc
            .iter()
            .filter(|t| t.kind.as_deref() == Some("ingress"))
            .map(|t| t.ifindex)
            .collect();
        for t in net.tc {
            let point = t.kind.clone().unwrap_or_default();
            let kind = if point.starts_with("tcx/") {
                AttachKind::Tcx
            } else if point.starts_with("netkit/") {
                AttachKind::Netkit
            } else {
                AttachKind::Tc
            };
            let Some(prog_id) = t.prog_id.or(t.id) else {
                continue;
            };
            let echo = kind == AttachKind::Tc
                && matches!(point.as_str(), "root" | "clsact/ingress" | "clsact/egress")
                && ingress_qdisc_devs.contains(&t.ifindex)
                && out.iter().any(|a: &NetAttachment| {
                    a.kind == AttachKind::Tc
                        && a.ifindex == t.ifindex
                        && a.prog_id == prog_id
                        && a.attach_point.as_deref() == Some("ingress")
                });
            if echo {
                continue;
            }
            let direction = match point.as_str() {
                "clsact/ingress" | "tcx/ingress" | "ingress" => Some(Direction::Ingress),
                "clsact/egress" | "tcx/egress" => Some(Direction::Egress),
                _ if kind == AttachKind::Tc => Some(Direction::Egress),
                _ => None,
            };
            out.push(NetAttachment {
                kind,
                dev: t.devname,
                ifindex: t.ifindex,
                attach_point: t.kind,
                direction,
                prog_id,
                name: t.name,
                link_id: t.link_id,
                netfilter: None,
            });
        }
        out.extend(net.flow_dissector.into_iter().filter_map(|f| {
            Some(NetAttachment {
                kind: AttachKind::FlowDissector,
                dev: None,
                ifindex: None,
                attach_point: None,
                direction: Some(Direction::Ingress),
                prog_id: f.id?,
                name: None,
                link_id: None,
                netfilter: None,
            })
        }));
        out.extend(net.netfilter.into_iter().filter_map(|n| {
            Some(NetAttachment {
                kind: AttachKind::Netfilter,
                dev: None,
                ifindex: None,
                attach_point: None,
                direction: None,
                prog_id: n.id?,
                name: None,
                link_id: None,
                netfilter: Some(NetfilterHook {
                    pf: n.pf?,
                    hook: n.hook?,
                    prio: n.prio?,
                    flags: n.flags.unwrap_or(0),
                }),
            })
        }));
    }
    Ok(out)
}

/// Parses `bpftool -j prog show id N` (one object).
pub fn parse_prog(json: &str) -> Result<BpfProg, BpftoolError> {
    let value: Value = serde_json::from_str(json)?;
    check_tool_error(&value)?;
    prog_from(value)
}

/// Parses `bpftool -j prog show` (an array of every loaded program).
pub fn parse_progs(json: &str) -> Result<Vec<BpfProg>, BpftoolError> {
    let value: Value = serde_json::from_str(json)?;
    check_tool_error(&value)?;
    match value {
        Value::Array(items) => items.into_iter().map(prog_from).collect(),
        _ => Err(BpftoolError::Shape("expected an array of programs")),
    }
}

fn prog_from(value: Value) -> Result<BpfProg, BpftoolError> {
    let raw: RawProg = serde_json::from_value(value)?;
    let prog_type = match raw.prog_type {
        Value::String(s) => s,
        Value::Number(n) => n.to_string(),
        _ => {
            return Err(BpftoolError::Shape(
                "program type is neither a name nor a number",
            ))
        }
    };
    Ok(BpfProg {
        id: raw.id,
        prog_type,
        name: raw.name,
        tag: raw.tag,
        run_cnt: raw.run_cnt,
        run_time_ns: raw.run_time_ns,
        recursion_misses: raw.recursion_misses,
        loaded_at: raw.loaded_at,
        pids: raw.pids,
        uid: raw.uid,
        map_ids: raw.map_ids,
        pinned: raw.pinned,
    })
}

/// A program attached to a cgroup (`bpftool -j cgroup tree`): cgroup skb programs filter
/// the packets of every socket made in that cgroup, whatever its namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CgroupAttachment {
    /// The cgroup's directory (`/sys/fs/cgroup/unified/web`).
    pub cgroup: String,
    pub prog_id: u32,
    /// `cgroup_inet_ingress`, `cgroup_inet_egress`, `cgroup_inet4_connect`...
    pub attach_type: String,
    pub name: Option<String>,
}

#[derive(Deserialize)]
struct RawCgroup {
    cgroup: String,
    #[serde(default)]
    programs: Vec<RawCgroupProg>,
}

#[derive(Deserialize)]
struct RawCgroupProg {
    id: u32,
    #[serde(deserialize_with = "name_or_number")]
    attach_type: String,
    name: Option<String>,
}

/// Parses `bpftool -j cgroup tree` (every cgroup v2 directory with programs).
pub fn parse_cgroup_tree(json: &str) -> Result<Vec<CgroupAttachment>, BpftoolError> {
    let value: Value = serde_json::from_str(json)?;
    check_tool_error(&value)?;
    let groups: Vec<RawCgroup> = serde_json::from_value(value)?;
    Ok(groups
        .into_iter()
        .flat_map(|g| {
            let cgroup = g.cgroup;
            g.programs.into_iter().map(move |p| CgroupAttachment {
                cgroup: cgroup.clone(),
                prog_id: p.id,
                attach_type: p.attach_type,
                name: p.name,
            })
        })
        .collect())
}

/// Parses `bpftool -j map show id N` (one object).
pub fn parse_map(json: &str) -> Result<BpfMap, BpftoolError> {
    let value: Value = serde_json::from_str(json)?;
    check_tool_error(&value)?;
    Ok(serde_json::from_value(value)?)
}

/// Parses `bpftool -j -f link show` (an array of every link on the machine).
pub fn parse_links(json: &str) -> Result<Vec<BpfLink>, BpftoolError> {
    let value: Value = serde_json::from_str(json)?;
    check_tool_error(&value)?;
    match value {
        Value::Array(_) => Ok(serde_json::from_value(value)?),
        _ => Err(BpftoolError::Shape("expected an array of links")),
    }
}

fn check_tool_error(value: &Value) -> Result<(), BpftoolError> {
    match value.get("error") {
        Some(e) => Err(BpftoolError::Tool(
            e.as_str().map_or_else(|| e.to_string(), str::to_string),
        )),
        None => Ok(()),
    }
}

/// Turns bpftool's `"flow_dissector":["id":632]` into `"flow_dissector":[{"id":632}]`.
fn repair_flow_dissector(json: &str) -> String {
    const KEY: &str = "\"flow_dissector\":[";
    let mut out = String::with_capacity(json.len() + 2);
    let mut rest = json;
    while let Some(at) = rest.find(KEY) {
        let after = at + KEY.len();
        out.push_str(&rest[..after]);
        rest = &rest[after..];
        let Some(end) = rest.find(']') else { break };
        let inner = rest[..end].trim();
        if inner.starts_with('"') {
            out.push('{');
            out.push_str(inner);
            out.push('}');
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(a: &[NetAttachment], kind: AttachKind, point: Option<&str>) -> Vec<NetAttachment> {
        a.iter()
            .filter(|x| x.kind == kind && x.attach_point.as_deref() == point)
            .cloned()
            .collect()
    }

    #[test]
    fn net_show_7_1() {
        let text = fixture!("bpftool-net.json");
        assert!(
            serde_json::from_str::<Value>(text).is_err(),
            "bpftool's flow_dissector JSON"
        );
        let a = parse_net_show(text).unwrap();
        let xdp = find(&a, AttachKind::Xdp, Some("generic"));
        assert_eq!(
            (xdp[0].dev.as_deref(), xdp[0].ifindex, xdp[0].prog_id),
            (Some("lo"), Some(1), 624)
        );
        let xdp = find(&a, AttachKind::Xdp, Some("driver"));
        assert_eq!((xdp[0].dev.as_deref(), xdp[0].prog_id), (Some("dtp1"), 619));

        let ing = find(&a, AttachKind::Tc, Some("clsact/ingress"));
        assert_eq!(ing.len(), 1, "the ingress-qdisc echoes are gone");
        assert_eq!(ing[0].dev.as_deref(), Some("dtv1"));
        assert_eq!(
            (ing[0].prog_id, ing[0].direction),
            (606, Some(Direction::Ingress))
        );
        assert_eq!(ing[0].name.as_deref(), Some("progs.o:[tc]"));
        let eg = find(&a, AttachKind::Tc, Some("clsact/egress"));
        assert_eq!(
            (eg.len(), eg[0].prog_id, eg[0].direction),
            (1, 610, Some(Direction::Egress))
        );
        let classic = find(&a, AttachKind::Tc, Some("ingress"));
        assert_eq!(
            (classic[0].dev.as_deref(), classic[0].prog_id),
            (Some("dtp1"), 614)
        );
        assert!(find(&a, AttachKind::Tc, Some("root")).is_empty());

        let fd = find(&a, AttachKind::FlowDissector, None);
        assert_eq!(fd[0].prog_id, 632);
        assert_eq!(a.len(), 6);
    }

    #[test]
    fn net_show_7_8_tcx_and_netfilter() {
        let a = parse_net_show(fixture!("bpftool-7.8-net.json")).unwrap();
        let tcx = find(&a, AttachKind::Tcx, Some("tcx/ingress"));
        assert_eq!(tcx[0].prog_id, 630);
        assert_eq!(tcx[0].link_id, Some(110));
        assert_eq!(tcx[0].name.as_deref(), Some("dt_tcx_ingress"));
        assert_eq!(tcx[0].direction, Some(Direction::Ingress));
        let tcx = find(&a, AttachKind::Tcx, Some("tcx/egress"));
        assert_eq!(
            (tcx[0].prog_id, tcx[0].direction),
            (629, Some(Direction::Egress))
        );
        let nf = find(&a, AttachKind::Netfilter, None);
        assert_eq!(nf[0].prog_id, 631);
        assert_eq!(
            nf[0].netfilter,
            Some(NetfilterHook {
                pf: 2,
                hook: 1,
                prio: -128,
                flags: 0
            })
        );
        assert_eq!(a.len(), 9);
    }

    #[test]
    fn net_show_empty_and_multi_xdp() {
        assert!(parse_net_show(fixture!("bpftool-net.root-empty.json"))
            .unwrap()
            .is_empty());
        // XDP_ATTACHED_MULTI (driver plus offload) has no fixture here: no offload NIC.
        // Shape from bpftool's netlink_dumper.c.
        let multi = r#"[{"xdp":[{"devname":"eth0","ifindex":2,"multi_attachments":[{"mode":"driver","id":5},{"mode":"offload","id":6}]}],"tc":[],"flow_dissector":[]}]"#;
        let a = parse_net_show(multi).unwrap();
        assert_eq!(a.iter().map(|x| x.prog_id).collect::<Vec<_>>(), [5, 6]);
    }

    #[test]
    fn prog_show() {
        let p = parse_prog(fixture!("bpftool-prog.sched_cls.json")).unwrap();
        assert_eq!(p.id, 606);
        assert_eq!(p.prog_type, "sched_cls");
        assert_eq!(p.name.as_deref(), Some("dt_tc_ingress"));
        assert_eq!(p.tag.as_deref(), Some("59f4a931744dcdc6"));
        assert_eq!(p.loaded_at, Some(1795347662));
        assert_eq!(
            (p.run_cnt, p.run_time_ns),
            (None, None),
            "bpf_stats_enabled is 0"
        );

        let old = parse_prog(fixture!("bpftool-prog.type-number.json")).unwrap();
        assert_eq!(old.prog_type, "32");
        let new = parse_prog(fixture!("bpftool-7.8-prog.netfilter.json")).unwrap();
        assert_eq!((new.id, new.prog_type.as_str()), (631, "netfilter"));

        let all = parse_progs(fixture!("bpftool-prog.all.json")).unwrap();
        assert_eq!(all.len(), 10);
        assert!(all.iter().any(|p| p.prog_type == "flow_dissector"));

        match parse_prog(fixture!("bpftool-prog.missing.json")) {
            Err(BpftoolError::Tool(m)) => assert!(m.contains("No such file")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn stats_and_pids_when_present() {
        let p = parse_prog(
            r#"{"id":7,"type":"xdp","name":"x","run_time_ns":1200,"run_cnt":3,"recursion_misses":1,"pids":[{"pid":42,"comm":"loader"}]}"#,
        )
        .unwrap();
        assert_eq!(
            (p.run_cnt, p.run_time_ns, p.recursion_misses),
            (Some(3), Some(1200), Some(1))
        );
        assert_eq!(
            p.pids,
            [ProgPid {
                pid: 42,
                comm: "loader".into()
            }]
        );
    }

    #[test]
    fn who_loaded_it_its_maps_and_pins() {
        let p = parse_prog(fixture!("bpftool-prog.f.sched_cls.json")).unwrap();
        assert_eq!(
            (p.id, p.name.as_deref(), p.uid, p.loaded_at),
            (176, Some("drop_syn"), Some(0), Some(1_796_181_297))
        );
        assert!(p.pinned.is_empty() && p.map_ids.is_empty());
        let p = parse_prog(fixture!("bpftool-prog.f.pinned.json")).unwrap();
        assert_eq!(p.pinned, ["/sys/fs/bpf/dt13b-try"]);
        let p = parse_prog(fixture!("bpftool-prog.f.maps.json")).unwrap();
        assert_eq!(p.map_ids, [179, 183, 182, 181, 178, 180, 177]);

        let m = parse_map(fixture!("bpftool-map.ringbuf.json")).unwrap();
        assert_eq!(
            (m.id, m.map_type.as_str(), m.name.as_deref(), m.max_entries),
            (181, "ringbuf", Some("EVENTS"), Some(4_194_304))
        );
        assert_eq!(
            parse_map(fixture!("bpftool-map.hash.json"))
                .unwrap()
                .map_type,
            "hash"
        );
        assert!(matches!(
            parse_map(fixture!("bpftool-map.missing.json")),
            Err(BpftoolError::Tool(_))
        ));
    }

    #[test]
    fn links_with_types_7_1_does_not_know() {
        let l = parse_links(fixture!("bpftool-7.1-link.json")).unwrap();
        assert_eq!(
            l.iter()
                .map(|l| (l.id, l.link_type.as_str(), l.prog_id))
                .collect::<Vec<_>>(),
            [(103, "11", 171), (104, "xdp", 181)]
        );
        let l = parse_links(fixture!("bpftool-7.1-link.tracepoint.json")).unwrap();
        assert_eq!(l[0].link_type, "raw_tracepoint");
        assert!(parse_links("{}").is_err());
        assert!(parse_links(r#"[{"id":1,"type":[],"prog_id":2}]"#).is_err());
    }

    #[test]
    fn cgroup_tree() {
        let c = parse_cgroup_tree(fixture!("bpftool-cgroup-tree.json")).unwrap();
        assert_eq!(
            c,
            [CgroupAttachment {
                cgroup: "/sys/fs/cgroup/unified/dtcap-13b-cg".into(),
                prog_id: 1832,
                attach_type: "cgroup_inet_ingress".into(),
                name: Some("dt_cgroup_drop".into()),
            }]
        );
        assert!(
            parse_cgroup_tree(fixture!("bpftool-cgroup-tree.empty.json"))
                .unwrap()
                .is_empty()
        );
        assert!(parse_cgroup_tree(r#"[{"programs":[]}]"#).is_err());
        let p = parse_prog(fixture!("bpftool-prog.f.cgroup_skb.json")).unwrap();
        assert_eq!(p.prog_type, "cgroup_skb");
    }

    #[test]
    fn tcx_is_not_in_7_1s_net_show() {
        // A tcx link (prog 171) was attached on dtv1 when this was captured: bpftool 7.1
        // does not list it, so droptrace asks the kernel itself (BPF_PROG_QUERY).
        let a = parse_net_show(fixture!("bpftool-7.1-net.tcx-missing.json")).unwrap();
        assert!(a.iter().all(|a| a.prog_id != 171));
        assert_eq!(a.len(), 3);
    }

    #[test]
    fn malformed_input() {
        assert!(matches!(parse_net_show(""), Err(BpftoolError::Json(_))));
        assert!(parse_net_show("{").is_err());
        assert!(parse_net_show(r#"{"xdp":[]}"#).is_err());
        assert!(matches!(
            parse_net_show(r#"{"error":"boom"}"#),
            Err(BpftoolError::Tool(_))
        ));
        assert!(parse_net_show(r#"[{"flow_dissector":["id":]}]"#).is_err());
        assert!(parse_net_show(r#"[{"flow_dissector":["id":1"#).is_err());
        assert!(parse_prog(r#"{"id":1,"type":{}}"#).is_err());
        assert!(parse_prog(r#"{"type":"xdp"}"#).is_err());
        assert!(matches!(
            parse_progs(r#"{"id":1,"type":"xdp"}"#),
            Err(BpftoolError::Shape(_))
        ));
        let text = fixture!("bpftool-7.8-net.json");
        for (i, _) in text.char_indices() {
            let _ = parse_net_show(&text[..i]);
        }
    }
}
