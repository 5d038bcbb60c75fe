//! Drops and names for unit tests across the crate.
use super::{
    event::{Drop, Netns, Packet, ETH_P_IP},
    names::Location,
};

/// A TCP SYN from 10.0.0.1:`sport` to 10.0.0.2:`dport`, 60 bytes, on ifindex 2 of `netns`.
pub fn tcp4(
    location: u64,
    reason: u32,
    (sport, dport): (u16, u16),
    netns: impl Into<Netns>,
    at: u64,
) -> Drop {
    Drop {
        timestamp_ns: at,
        location,
        reason,
        netns: netns.into(),
        ifindex: 2,
        len: 60,
        l2_len: 0,
        cpu: 0,
        packet: Packet {
            ethertype: ETH_P_IP,
            addrs: Some(("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap())),
            ip_proto: Some(6),
            ports: Some((sport, dport)),
            icmp: None,
            tcp_flags: None,
        },
    }
}

/// `function+0xoffset`, in the kernel proper.
pub fn location(function: &str, offset: u64) -> Location {
    Location {
        function: Some(function.into()),
        offset: Some(offset),
        module: None,
        display: format!("{function}+{offset:#x}"),
    }
}

/// The container `web` of pod `shop/web-7d9f` (containerd), as `probe::workloads` names it.
pub fn workload(id: &str, uid: Option<&str>) -> super::names::Workload {
    use super::names::{Container, Pod, Workload};
    Workload {
        container: Container {
            id: id.into(),
            name: "web".into(),
            runtime: "containerd".into(),
        },
        pod: Some(Pod {
            name: "web-7d9f".into(),
            namespace: "shop".into(),
            uid: uid.map(str::to_owned),
        }),
    }
}
