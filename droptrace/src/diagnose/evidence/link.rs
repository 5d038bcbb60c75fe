//! `ip -j -s -d link show` (or `-s -s` for the error breakdown): each interface's MTU,
//! state, XDP program and packet/drop counters.
//!
//! Field names are iproute2 6.1's JSON keys. With one `-s` the rx side has bytes, packets,
//! errors, dropped, over_errors and multicast; `-s -s` adds length/crc/frame/fifo/missed
//! errors (and nohandler/otherhost when non-zero), so those are Options.
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum LinkError {
    #[error("ip link JSON: {0}")]
    Json(#[from] serde_json::Error),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Link {
    pub ifindex: u32,
    pub name: String,
    pub mtu: Option<u32>,
    /// `UP`, `DOWN`, `UNKNOWN` (loopback, tun)...
    pub oper_state: Option<String>,
    /// `UP`, `LOWER_UP`, `LOOPBACK`...
    pub flags: Vec<String>,
    /// `veth`, `bridge`, `vxlan`... (needs -d); None for plain devices.
    pub kind: Option<String>,
    pub qdisc: Option<String>,
    pub xdp_prog_id: Option<u32>,
    /// `driver`, `generic`, `offload` or `multi`.
    pub xdp_mode: Option<String>,
    /// None without -s.
    pub rx: Option<RxStats>,
    pub tx: Option<TxStats>,
    /// The other end of a pair device (veth) or the lower device: its ifindex, in the
    /// namespace `link_netnsid` names when that is set (an id local to this namespace),
    /// else in this one.
    pub link_index: Option<u32>,
    pub link_netnsid: Option<i32>,
    /// The other end's name, which ip prints only when it is in this namespace.
    pub link_name: Option<String>,
    /// The link-layer address (`f2:b7:22:80:97:27`).
    pub address: Option<String>,
    /// How many times promiscuous mode is asked for (needs -d); 0: not promiscuous.
    pub promiscuity: Option<u32>,
    /// The bridge (or bond, VRF...) the interface is a port of.
    pub master: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RxStats {
    pub bytes: u64,
    pub packets: u64,
    pub errors: u64,
    pub dropped: u64,
    /// Ring overruns (rx_over_errors).
    #[serde(default)]
    pub over_errors: u64,
    #[serde(default)]
    pub multicast: u64,
    pub length_errors: Option<u64>,
    pub crc_errors: Option<u64>,
    pub frame_errors: Option<u64>,
    pub fifo_errors: Option<u64>,
    /// The NIC ran out of buffers (rx_missed_errors).
    pub missed_errors: Option<u64>,
    /// Packets for a protocol nobody handles (rx_nohandler); printed only when non-zero.
    pub nohandler: Option<u64>,
    /// Dropped for another host's MAC (rx_otherhost_dropped); printed only when non-zero.
    pub otherhost: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxStats {
    pub bytes: u64,
    pub packets: u64,
    pub errors: u64,
    pub dropped: u64,
    #[serde(default)]
    pub carrier_errors: u64,
    #[serde(default)]
    pub collisions: u64,
    pub aborted_errors: Option<u64>,
    pub fifo_errors: Option<u64>,
    pub window_errors: Option<u64>,
    pub heartbeat_errors: Option<u64>,
    pub carrier_changes: Option<u64>,
}

#[derive(Deserialize)]
struct RawLink {
    ifindex: u32,
    ifname: String,
    mtu: Option<u32>,
    operstate: Option<String>,
    #[serde(default)]
    flags: Vec<String>,
    qdisc: Option<String>,
    linkinfo: Option<Value>,
    xdp: Option<Value>,
    stats64: Option<RawStats>,
    link_index: Option<u32>,
    link_netnsid: Option<i32>,
    link: Option<String>,
    address: Option<String>,
    promiscuity: Option<u32>,
    master: Option<String>,
}

#[derive(Deserialize)]
struct RawStats {
    rx: RxStats,
    tx: TxStats,
}

/// Parses `ip -j [-s [-s]] [-d] link show`.
pub fn parse_links(json: &str) -> Result<Vec<Link>, LinkError> {
    let raw: Vec<RawLink> = serde_json::from_str(json)?;
    Ok(raw
        .into_iter()
        .map(|l| {
            let (xdp_prog_id, xdp_mode) = xdp(l.xdp.as_ref());
            let (rx, tx) = match l.stats64 {
                Some(s) => (Some(s.rx), Some(s.tx)),
                None => (None, None),
            };
            Link {
                ifindex: l.ifindex,
                name: l.ifname,
                mtu: l.mtu,
                oper_state: l.operstate,
                flags: l.flags,
                kind: l
                    .linkinfo
                    .as_ref()
                    .and_then(|i| i.get("info_kind")?.as_str())
                    .map(str::to_string),
                qdisc: l.qdisc,
                xdp_prog_id,
                xdp_mode,
                rx,
                tx,
                link_index: l.link_index,
                link_netnsid: l.link_netnsid,
                link_name: l.link,
                address: l.address,
                promiscuity: l.promiscuity,
                master: l.master,
            }
        })
        .collect())
}

/// `"xdp": {"mode": 1, "prog": {"id": 643, ...}, "attached": [...]}`; with several programs
/// (mode 4) the top-level prog is absent and the first attached one is named.
fn xdp(value: Option<&Value>) -> (Option<u32>, Option<String>) {
    let Some(x) = value else {
        return (None, None);
    };
    let prog_id = |v: &Value| {
        v.get("prog")?
            .get("id")?
            .as_u64()
            .and_then(|id| u32::try_from(id).ok())
    };
    let id = prog_id(x).or_else(|| x.get("attached")?.as_array()?.iter().find_map(prog_id));
    // XDP_ATTACHED_* from linux/if_link.h.
    let mode = match x.get("mode").and_then(Value::as_u64) {
        Some(1) => Some("driver"),
        Some(2) => Some("generic"),
        Some(3) => Some("offload"),
        Some(4) => Some("multi"),
        _ => None,
    };
    (id, mode.map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_s() {
        let links = parse_links(fixture!("ip-link.json")).unwrap();
        assert_eq!(links.len(), 2);
        let lo = &links[0];
        assert_eq!(
            (lo.ifindex, lo.name.as_str(), lo.mtu),
            (1, "lo", Some(65536))
        );
        assert_eq!(lo.oper_state.as_deref(), Some("UNKNOWN"));
        assert_eq!(lo.xdp_prog_id, None);
        let veth = &links[1];
        assert_eq!((veth.name.as_str(), veth.mtu), ("dtl0", Some(100)));
        assert_eq!(veth.kind.as_deref(), Some("veth"));
        assert_eq!(veth.oper_state.as_deref(), Some("UP"));
        assert!(veth.flags.iter().any(|f| f == "LOWER_UP"));
        assert_eq!(
            (veth.xdp_prog_id, veth.xdp_mode.as_deref()),
            (Some(643), Some("driver"))
        );
        let rx = veth.rx.as_ref().unwrap();
        assert_eq!((rx.packets, rx.dropped, rx.errors), (26, 50, 0));
        assert_eq!((rx.crc_errors, rx.missed_errors), (None, None));
        assert_eq!(veth.tx.as_ref().unwrap().packets, 7);
    }

    #[test]
    fn two_s_and_xdp_modes() {
        let links = parse_links(fixture!("ip-link.ss.json")).unwrap();
        let rx = links[1].rx.as_ref().unwrap();
        assert_eq!(rx.dropped, 50);
        assert_eq!(
            (
                rx.length_errors,
                rx.crc_errors,
                rx.frame_errors,
                rx.fifo_errors,
                rx.missed_errors
            ),
            (Some(0), Some(0), Some(0), Some(0), Some(0))
        );
        assert_eq!(rx.nohandler, None);
        let tx = links[1].tx.as_ref().unwrap();
        assert_eq!((tx.carrier_changes, tx.fifo_errors), (Some(2), Some(0)));

        let links = parse_links(fixture!("ip-link.xdp-modes.json")).unwrap();
        let lo = links.iter().find(|l| l.name == "lo").unwrap();
        assert_eq!(
            (lo.xdp_prog_id, lo.xdp_mode.as_deref()),
            (Some(624), Some("generic"))
        );
        let d = links.iter().find(|l| l.name == "dtp1").unwrap();
        assert_eq!(
            (d.xdp_prog_id, d.xdp_mode.as_deref()),
            (Some(619), Some("driver"))
        );
    }

    #[test]
    fn without_stats_and_malformed() {
        let l = parse_links(r#"[{"ifindex":1,"ifname":"lo","mtu":65536}]"#).unwrap();
        assert_eq!((l[0].rx.as_ref(), l[0].kind.as_ref()), (None, None));
        let multi = r#"[{"ifindex":2,"ifname":"e","xdp":{"mode":4,"attached":[{"mode":1,"prog":{"id":9}}]}}]"#;
        let l = parse_links(multi).unwrap();
        assert_eq!(
            (l[0].xdp_prog_id, l[0].xdp_mode.as_deref()),
            (Some(9), Some("multi"))
        );
        assert!(parse_links("").is_err());
        assert!(parse_links(r#"[{"ifname":"lo"}]"#).is_err());
        assert!(parse_links(r#"[{"ifindex":-1,"ifname":"lo"}]"#).is_err());
        assert!(parse_links(r#"[{"ifindex":1,"ifname":"lo","stats64":{"rx":{}}}]"#).is_err());
        let l = parse_links(r#"[{"ifindex":1,"ifname":"x","xdp":{"prog":{"id":99999999999}}}]"#)
            .unwrap();
        assert_eq!(l[0].xdp_prog_id, None);
        let text = fixture!("ip-link.ss.json");
        assert!(parse_links(&text[..text.len() - 3]).is_err());
    }
}
