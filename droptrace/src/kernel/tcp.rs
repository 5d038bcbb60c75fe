//! What the TCP programs need to know about the running kernel, from its BTF: which tcp:*
//! tracepoints it has and with which arguments, where `sock_common` keeps a connection's
//! addresses, and the names of its reset reasons.
use droptrace_common::{
    TcpConfig, TCP_CONFIG_HAS_GSO_SEGS, TCP_CONFIG_HAS_RST_REASON, TCP_CONFIG_HAS_V6,
    TCP_CONFIG_RETRANSMIT_HAS_ERR,
};

use crate::kernel::btf::Btf;

/// One of the tcp:* tracepoints droptrace attaches to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpTracepoint {
    /// `tcp_retransmit_skb`, ...
    pub name: &'static str,
    /// The program in the kernel object.
    pub program: &'static str,
    /// BTF id of `btf_trace_<name>` in the running kernel; `None`: no such tracepoint.
    pub btf_id: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpLayout {
    pub config: TcpConfig,
    pub tracepoints: Vec<TcpTracepoint>,
    /// `enum sk_rst_reason`: (value, name without its `SK_RST_REASON_` prefix); empty
    /// before 6.10.
    pub reset_reasons: Vec<(u32, String)>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the kernel's BTF does not describe {0}: {1}")]
pub struct TcpLayoutError(&'static str, String);

/// The tracepoints and their programs (`droptrace-ebpf/src/tcp.rs`).
pub const TRACEPOINTS: [(&str, &str); 3] = [
    ("tcp_retransmit_skb", "droptrace_tcp_retransmit"),
    ("tcp_send_reset", "droptrace_tcp_send_reset"),
    ("tcp_receive_reset", "droptrace_tcp_receive_reset"),
];

impl TcpLayout {
    pub fn from_btf(btf: &Btf) -> Result<TcpLayout, TcpLayoutError> {
        let off = |what: &'static str, s: &str, path: &[&str]| {
            btf.member_offset(s, path)
                .map_err(|e| TcpLayoutError(what, e.to_string()))
        };
        let sized = |what: &'static str, s: &str, path: &[&str], size: u32| match btf
            .member_size(s, path)
        {
            Ok(n) if n == size => off(what, s, path),
            Ok(n) => Err(TcpLayoutError(what, format!("{n} bytes, expected {size}"))),
            Err(e) => Err(TcpLayoutError(what, e.to_string())),
        };
        let common =
            |field: &'static str, size: u32| sized(field, "sock", &["__sk_common", field], size);
        let mut config = TcpConfig {
            sk_protocol: sized("sock.sk_protocol", "sock", &["sk_protocol"], 2)?,
            skc_family: common("skc_family", 2)?,
            skc_num: common("skc_num", 2)?,
            skc_dport: common("skc_dport", 2)?,
            skc_rcv_saddr: common("skc_rcv_saddr", 4)?,
            skc_daddr: common("skc_daddr", 4)?,
            ..TcpConfig::ZERO
        };
        if let (Ok(saddr), Ok(daddr)) = (common("skc_v6_rcv_saddr", 16), common("skc_v6_daddr", 16))
        {
            config.skc_v6_rcv_saddr = saddr;
            config.skc_v6_daddr = daddr;
            config.flags |= TCP_CONFIG_HAS_V6;
        }
        if let (Ok(cb), Ok(segs)) = (
            off("sk_buff.cb", "sk_buff", &["cb"]),
            sized(
                "tcp_skb_cb.tcp_gso_segs",
                "tcp_skb_cb",
                &["tcp_gso_segs"],
                2,
            ),
        ) {
            config.skb_gso_segs = cb + segs;
            config.flags |= TCP_CONFIG_HAS_GSO_SEGS;
        }
        // (ctx, sk, skb, reason) from 6.10; (ctx, sk, skb, err) on newer kernels (6.18).
        let param = |tp: &str, i: usize| {
            btf.func_proto_params(&format!("btf_trace_{tp}"))
                .and_then(|p| p.get(i).cloned())
        };
        if param("tcp_send_reset", 3).is_some_and(|p| p.contains("sk_rst_reason")) {
            config.flags |= TCP_CONFIG_HAS_RST_REASON;
        }
        if param("tcp_retransmit_skb", 3).is_some_and(|p| p == "int") {
            config.flags |= TCP_CONFIG_RETRANSMIT_HAS_ERR;
        }
        let tracepoints = TRACEPOINTS
            .iter()
            .map(|&(name, program)| TcpTracepoint {
                name,
                program,
                btf_id: btf.typedef_id(&format!("btf_trace_{name}")),
            })
            .collect();
        let reset_reasons = btf
            .enum_variants("sk_rst_reason")
            .unwrap_or_default()
            .into_iter()
            .filter(|(name, _)| !name.ends_with("_MAX"))
            .filter_map(|(name, value)| {
                let value = u32::try_from(value).ok()?;
                let short = name.strip_prefix("SK_RST_REASON_").unwrap_or(&name);
                Some((value, short.to_owned()))
            })
            .collect();
        Ok(TcpLayout {
            config,
            tracepoints,
            reset_reasons,
        })
    }

    pub fn has_reset_reasons(&self) -> bool {
        self.config.flags & TCP_CONFIG_HAS_RST_REASON != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_6_18_has_every_tcp_tracepoint_with_reasons_and_errors() {
        let layout = TcpLayout::from_btf(crate::kernel::btf::tests::vmlinux()).unwrap();
        let c = layout.config;
        // `bpftool btf dump file /sys/kernel/btf/vmlinux format c` on 6.18: sock_common
        // keeps the addresses first, the ports at 12, the family at 16.
        assert_eq!((c.skc_daddr, c.skc_rcv_saddr), (0, 4));
        assert_eq!((c.skc_dport, c.skc_num, c.skc_family), (12, 14, 16));
        assert_eq!((c.skc_v6_daddr, c.skc_v6_rcv_saddr), (56, 72));
        assert_ne!(c.flags & TCP_CONFIG_HAS_V6, 0);
        assert_ne!(c.flags & TCP_CONFIG_HAS_GSO_SEGS, 0);
        assert!(layout.has_reset_reasons());
        assert_ne!(c.flags & TCP_CONFIG_RETRANSMIT_HAS_ERR, 0);
        assert!(layout.tracepoints.iter().all(|t| t.btf_id.is_some()));
        let names: Vec<&str> = layout
            .reset_reasons
            .iter()
            .map(|(_, n)| n.as_str())
            .collect();
        assert!(names.contains(&"NO_SOCKET"), "{names:?}");
        assert!(names.contains(&"NOT_SPECIFIED"), "{names:?}");
    }

    /// Debian's 6.1 (the vmtest guest's kernel): the three tracepoints, without a reset
    /// reason and without the retransmit's error.
    #[test]
    fn linux_6_1_has_the_tracepoints_without_reasons_or_errors() {
        let btf = crate::kernel::btf::tests::vmlinux_6_1();
        let layout = TcpLayout::from_btf(&btf).unwrap();
        assert!(layout.tracepoints.iter().all(|t| t.btf_id.is_some()));
        assert!(!layout.has_reset_reasons());
        assert_eq!(layout.config.flags & TCP_CONFIG_RETRANSMIT_HAS_ERR, 0);
        assert_ne!(layout.config.flags & TCP_CONFIG_HAS_GSO_SEGS, 0);
        assert!(layout.reset_reasons.is_empty());
    }
}
