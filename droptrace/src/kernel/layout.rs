//! What the kernel program needs to know about the running kernel, learned at load time:
//! how to attach, whether drop reasons exist, and where sk_buff fields sit.
use droptrace_common::{Config, CONFIG_HAS_REASON, CONFIG_HAS_SKB_LAYOUT};

use crate::kernel::{btf::Btf, tracefs::TracepointFormat};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Attach {
    #[value(name = "tp-btf")]
    /// BTF-enabled tracepoint (tp_btf): cheapest; needs kernel BTF.
    BtfTracepoint,
    /// Classic tracepoint through tracefs/perf: works without BTF, but then without
    /// packet details.
    Tracepoint,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelLayout {
    pub attach: Attach,
    pub has_reason: bool,
    /// The BTF tracepoint passes the socket a received packet was dropped at (`rx_sk`).
    pub has_rx_sk: bool,
    /// sk_buff and friends; `None` without BTF (no packet details then).
    pub skb: Option<SkbOffsets>,
    /// Offsets in the classic tracepoint record.
    pub tracepoint: Option<TracepointOffsets>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SkbOffsets {
    pub len: u32,
    pub head: u32,
    pub network_header: u32,
    pub protocol: u32,
    pub dev: u32,
    pub sk: u32,
    pub data: u32,
    pub data_len: u32,
    pub dev_ifindex: u32,
    pub dev_net: u32,
    pub sk_net: u32,
    pub net_inum: u32,
    /// `net.net_cookie`: `None` before 5.14 (namespaces are then told apart by inode only).
    pub net_cookie: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TracepointOffsets {
    pub skbaddr: u32,
    pub location: u32,
    pub protocol: u32,
    pub reason: Option<u32>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LayoutError {
    #[error("the kernel's BTF does not describe {0}: {1}")]
    Btf(&'static str, String),
    #[error("sk_buff.{field} is {size} bytes, droptrace expects {expected}")]
    FieldSize {
        field: &'static str,
        size: u32,
        expected: u32,
    },
    #[error("the skb:kfree_skb tracepoint format has no `{0}` field")]
    TracepointField(&'static str),
    #[error("this kernel has no skb:kfree_skb tracepoint (neither in BTF nor in tracefs)")]
    NoTracepoint,
}

impl SkbOffsets {
    pub fn from_btf(btf: &Btf) -> Result<SkbOffsets, LayoutError> {
        let off = |what: &'static str, s: &str, path: &[&str]| {
            btf.member_offset(s, path)
                .map_err(|e| LayoutError::Btf(what, e.to_string()))
        };
        let sized = |field: &'static str, expected: u32| -> Result<u32, LayoutError> {
            let size = btf
                .member_size("sk_buff", &[field])
                .map_err(|e| LayoutError::Btf("sk_buff", e.to_string()))?;
            if size != expected {
                return Err(LayoutError::FieldSize {
                    field,
                    size,
                    expected,
                });
            }
            btf.member_offset("sk_buff", &[field])
                .map_err(|e| LayoutError::Btf("sk_buff", e.to_string()))
        };
        Ok(SkbOffsets {
            len: sized("len", 4)?,
            head: sized("head", 8)?,
            network_header: sized("network_header", 2)?,
            protocol: sized("protocol", 2)?,
            dev: sized("dev", 8)?,
            sk: sized("sk", 8)?,
            data: sized("data", 8)?,
            data_len: sized("data_len", 4)?,
            dev_ifindex: off("net_device.ifindex", "net_device", &["ifindex"])?,
            dev_net: off("net_device.nd_net", "net_device", &["nd_net", "net"])?,
            sk_net: off(
                "sock.__sk_common.skc_net",
                "sock",
                &["__sk_common", "skc_net", "net"],
            )?,
            net_inum: off("net.ns.inum", "net", &["ns", "inum"])?,
            net_cookie: btf
                .member_size("net", &["net_cookie"])
                .is_ok_and(|size| size == 8)
                .then(|| btf.member_offset("net", &["net_cookie"]).ok())
                .flatten(),
        })
    }
}

impl TracepointOffsets {
    pub fn from_format(format: &TracepointFormat) -> Result<TracepointOffsets, LayoutError> {
        let field = |name: &'static str| {
            format
                .field(name)
                .map(|f| f.offset)
                .ok_or(LayoutError::TracepointField(name))
        };
        Ok(TracepointOffsets {
            skbaddr: field("skbaddr")?,
            location: field("location")?,
            protocol: field("protocol")?,
            reason: format.field("reason").map(|f| f.offset),
        })
    }
}

/// Whether the kernel passes a reason, from the tracepoint's BTF prototype
/// (`btf_trace_kfree_skb`: ctx, skb, location[, reason[, rx_sk]]). `None` when BTF has no
/// such tracepoint.
pub fn btf_tracepoint_has_reason(btf: &Btf) -> Option<bool> {
    let params = btf.func_proto_params("btf_trace_kfree_skb")?;
    Some(params.get(3).is_some_and(|p| p.contains("skb_drop_reason")))
}

/// Whether the BTF tracepoint passes `rx_sk` (6.11 and later: ctx, skb, location, reason,
/// rx_sk).
pub fn btf_tracepoint_has_rx_sk(btf: &Btf) -> bool {
    btf.func_proto_params("btf_trace_kfree_skb")
        .is_some_and(|params| params.get(4).is_some_and(|p| p.contains("sock")))
}

impl KernelLayout {
    /// Chooses how to attach from what the kernel offers. `force` picks the mode instead.
    pub fn detect(
        btf: Option<&Btf>,
        format: Option<&TracepointFormat>,
        force: Option<Attach>,
    ) -> Result<KernelLayout, LayoutError> {
        let tracepoint = format.map(TracepointOffsets::from_format).transpose()?;
        let btf_reason = btf.and_then(btf_tracepoint_has_reason);
        let skb = match btf {
            Some(btf) => Some(SkbOffsets::from_btf(btf)?),
            None => None,
        };
        let attach = match force {
            Some(a) => a,
            None if btf_reason.is_some() && skb.is_some() => Attach::BtfTracepoint,
            None => Attach::Tracepoint,
        };
        let has_reason = match attach {
            Attach::BtfTracepoint => btf_reason.ok_or(LayoutError::NoTracepoint)?,
            Attach::Tracepoint => tracepoint
                .ok_or(LayoutError::NoTracepoint)?
                .reason
                .is_some(),
        };
        let has_rx_sk =
            attach == Attach::BtfTracepoint && btf.is_some_and(btf_tracepoint_has_rx_sk);
        Ok(KernelLayout {
            attach,
            has_reason,
            has_rx_sk,
            skb,
            tracepoint,
        })
    }

    /// Writes the layout part of the kernel program's configuration.
    pub fn apply(&self, config: &mut Config) {
        if self.has_reason {
            config.flags |= CONFIG_HAS_REASON;
        }
        if self.has_rx_sk {
            config.flags |= droptrace_common::CONFIG_HAS_RX_SK;
        }
        if let Some(s) = self.skb {
            config.flags |= CONFIG_HAS_SKB_LAYOUT;
            config.skb_len = s.len;
            config.skb_head = s.head;
            config.skb_network_header = s.network_header;
            config.skb_protocol = s.protocol;
            config.skb_dev = s.dev;
            config.skb_sk = s.sk;
            config.skb_data = s.data;
            config.skb_data_len = s.data_len;
            config.dev_ifindex = s.dev_ifindex;
            config.dev_net = s.dev_net;
            config.sk_net = s.sk_net;
            config.net_inum = s.net_inum;
            if let Some(cookie) = s.net_cookie {
                config.flags |= droptrace_common::CONFIG_HAS_NET_COOKIE;
                config.net_cookie = cookie;
            }
        }
        if let Some(t) = self.tracepoint {
            config.tp_skbaddr = t.skbaddr;
            config.tp_location = t.location;
            config.tp_protocol = t.protocol;
            config.tp_reason = t.reason.unwrap_or(droptrace_common::OFFSET_UNKNOWN);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::tracefs;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    fn btf_6_18() -> Btf {
        crate::kernel::btf::tests::vmlinux().clone()
    }

    fn format(name: &str) -> TracepointFormat {
        tracefs::parse(&String::from_utf8(fixture(name)).unwrap()).unwrap()
    }

    #[test]
    fn linux_6_18_uses_tp_btf_with_reasons() {
        let btf = btf_6_18();
        let fmt = format("kfree_skb.format.6.18");
        let layout = KernelLayout::detect(Some(&btf), Some(&fmt), None).unwrap();
        assert_eq!(layout.attach, Attach::BtfTracepoint);
        assert!(layout.has_reason);
        // Offsets as `bpftool btf dump file /sys/kernel/btf/vmlinux format c` shows them on
        // this 6.18 kernel, cross-checked with pahole in the kernel::btf tests.
        let skb = layout.skb.unwrap();
        assert_eq!(skb.len, 112);
        assert_eq!(skb.head, 192);
        assert_eq!((skb.protocol, skb.network_header), (176, 180));
        assert_eq!(skb.dev, 16);
        assert_eq!(skb.sk, 24);
        let tp = layout.tracepoint.unwrap();
        assert_eq!(
            (tp.skbaddr, tp.location, tp.protocol, tp.reason),
            (8, 16, 32, Some(36))
        );

        let mut config = Config::ZERO;
        layout.apply(&mut config);
        assert_eq!(
            config.flags,
            CONFIG_HAS_REASON
                | CONFIG_HAS_SKB_LAYOUT
                | droptrace_common::CONFIG_HAS_NET_COOKIE
                | droptrace_common::CONFIG_HAS_RX_SK
        );
        // `struct net`'s u64 `net_cookie`: bits_offset=33280 in `bpftool btf dump` of the
        // fixture.
        assert_eq!(skb.net_cookie, Some(4160));
        assert_eq!(config.net_cookie, 4160);
        assert_eq!(config.skb_head, 192);
    }

    /// `rx_sk` came in 6.11: Debian's 6.1 (the vmtest guest's BTF) passes none, 6.18 does.
    #[test]
    fn the_socket_a_packet_was_dropped_at_is_passed_from_6_11() {
        assert!(btf_tracepoint_has_rx_sk(&btf_6_18()));
        let btf = crate::kernel::btf::tests::vmlinux_6_1();
        assert!(!btf_tracepoint_has_rx_sk(&btf));
        assert_eq!(btf_tracepoint_has_reason(&btf), Some(true));
    }

    #[test]
    fn without_btf_the_classic_tracepoint_is_used() {
        let fmt = format("kfree_skb.format.6.18");
        let layout = KernelLayout::detect(None, Some(&fmt), None).unwrap();
        assert_eq!(layout.attach, Attach::Tracepoint);
        assert!(layout.has_reason);
        assert_eq!(layout.skb, None);

        let old = format("kfree_skb.format.pre-5.17");
        let layout = KernelLayout::detect(None, Some(&old), None).unwrap();
        assert!(!layout.has_reason);

        let mid = format("kfree_skb.format.pre-6.11");
        let tp = KernelLayout::detect(None, Some(&mid), None)
            .unwrap()
            .tracepoint
            .unwrap();
        assert_eq!(tp.reason, Some(28));

        assert_eq!(
            KernelLayout::detect(None, None, None),
            Err(LayoutError::NoTracepoint)
        );
    }
}
