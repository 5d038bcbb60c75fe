//! The driver's own statistics (what `ethtool -S` prints), through the SIOCETHTOOL ioctl:
//! ETHTOOL_GDRVINFO (the driver's name), ETHTOOL_GSSET_INFO (how many statistics),
//! ETHTOOL_GSTRINGS (their names) and ETHTOOL_GSTATS (their values). The ioctl, not
//! ethtool's netlink family: its ETHTOOL_MSG_STATS_GET carries only the standard groups
//! (IEEE 802.3 MAC/PHY/control, RMON), which the drivers here (veth, virtio_net) do not
//! fill, and netlink has no message for the driver's own counters. This module builds the
//! requests and reads the answers (`include/uapi/linux/ethtool.h`); `probe::links` makes
//! the calls. Tested on buffers captured on the machine (`droptrace/fixtures/netlink`).

/// `SIOCETHTOOL`.
pub const SIOCETHTOOL: u64 = 0x8946;
pub const ETHTOOL_GDRVINFO: u32 = 0x3;
const ETHTOOL_GSTRINGS: u32 = 0x1b;
const ETHTOOL_GSTATS: u32 = 0x1d;
const ETHTOOL_GSSET_INFO: u32 = 0x37;
const ETH_SS_STATS: u32 = 1;
const ETH_GSTRING_LEN: usize = 32;
/// `struct ethtool_drvinfo`: cmd, then driver[32], version[32], ... (196 bytes).
pub const DRVINFO_LEN: usize = 196;
/// Statistics read at most per interface (drivers of big NICs have a few thousand).
pub const MAX_STATS: u32 = 8192;

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The ETHTOOL_GDRVINFO request.
pub fn drvinfo_request() -> Vec<u8> {
    let mut b = vec![0u8; DRVINFO_LEN];
    b[0..4].copy_from_slice(&ETHTOOL_GDRVINFO.to_ne_bytes());
    b
}

/// The driver's name of an ETHTOOL_GDRVINFO answer.
pub fn parse_drvinfo(b: &[u8]) -> Option<String> {
    let name = b.get(4..36)?.split(|c| *c == 0).next()?;
    Some(String::from_utf8_lossy(name).into_owned())
}

/// The ETHTOOL_GSSET_INFO request for the count of statistics.
pub fn sset_info_request() -> Vec<u8> {
    // cmd, reserved, sset_mask (u64), then one u32 of data.
    let mut b = vec![0u8; 20];
    b[0..4].copy_from_slice(&ETHTOOL_GSSET_INFO.to_ne_bytes());
    b[8..16].copy_from_slice(&(1u64 << ETH_SS_STATS).to_ne_bytes());
    b
}

/// How many statistics the driver has (`None`: it has no such set).
pub fn parse_sset_info(b: &[u8]) -> Option<u32> {
    let mask = u64::from_ne_bytes(b.get(8..16)?.try_into().ok()?);
    if mask & (1 << ETH_SS_STATS) == 0 {
        return None;
    }
    u32_at(b, 16)
}

/// The ETHTOOL_GSTRINGS request for `n` names.
pub fn strings_request(n: u32) -> Vec<u8> {
    let mut b = vec![0u8; 12 + n as usize * ETH_GSTRING_LEN];
    b[0..4].copy_from_slice(&ETHTOOL_GSTRINGS.to_ne_bytes());
    b[4..8].copy_from_slice(&ETH_SS_STATS.to_ne_bytes());
    b[8..12].copy_from_slice(&n.to_ne_bytes());
    b
}

/// The names of an ETHTOOL_GSTRINGS answer (as many as it says it holds).
pub fn parse_strings(b: &[u8]) -> Option<Vec<String>> {
    let n = u32_at(b, 8)? as usize;
    let data = b.get(12..12 + n.checked_mul(ETH_GSTRING_LEN)?)?;
    Some(
        data.chunks_exact(ETH_GSTRING_LEN)
            .map(|s| {
                let s = s.split(|c| *c == 0).next().unwrap_or_default();
                String::from_utf8_lossy(s).into_owned()
            })
            .collect(),
    )
}

/// The ETHTOOL_GSTATS request for `n` values.
pub fn stats_request(n: u32) -> Vec<u8> {
    let mut b = vec![0u8; 8 + n as usize * 8];
    b[0..4].copy_from_slice(&ETHTOOL_GSTATS.to_ne_bytes());
    b[4..8].copy_from_slice(&n.to_ne_bytes());
    b
}

/// The values of an ETHTOOL_GSTATS answer.
pub fn parse_stats(b: &[u8]) -> Option<Vec<u64>> {
    let n = u32_at(b, 4)? as usize;
    let data = b.get(8..8 + n.checked_mul(8)?)?;
    Some(
        data.chunks_exact(8)
            .map(|c| u64::from_ne_bytes(c.try_into().unwrap_or_default()))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::kernel::netlink_fixture as fixture;

    #[test]
    fn the_names_of_a_veth_and_of_virtio_net_read_as_ethtool_prints_them() {
        let veth = parse_strings(&fixture("ethtool_gstrings.veth.bin")).unwrap();
        assert_eq!(veth.len(), 10);
        assert_eq!(veth[0], "peer_ifindex");
        assert_eq!(veth[3], "rx_queue_0_drops");
        assert_eq!(veth[5], "rx_queue_0_xdp_drops");
        let virtio = parse_strings(&fixture("ethtool_gstrings.virtio_net.bin")).unwrap();
        assert_eq!(virtio.len(), 20);
        assert_eq!(virtio[0], "rx_drops");
        assert_eq!(virtio[10], "rx0_drops");
        // Cut short: no names rather than wrong ones.
        assert_eq!(
            parse_strings(&fixture("ethtool_gstrings.veth.bin")[..100]),
            None
        );
    }

    #[test]
    fn requests_and_answers_have_the_kernels_layout() {
        let r = sset_info_request();
        assert_eq!(u32_at(&r, 0), Some(ETHTOOL_GSSET_INFO));
        let mut answer = r.clone();
        answer[16..20].copy_from_slice(&10u32.to_ne_bytes());
        assert_eq!(parse_sset_info(&answer), Some(10));
        answer[8..16].copy_from_slice(&0u64.to_ne_bytes());
        assert_eq!(parse_sset_info(&answer), None, "no statistics set");
        let mut stats = stats_request(2);
        stats[8..16].copy_from_slice(&7u64.to_ne_bytes());
        stats[16..24].copy_from_slice(&9u64.to_ne_bytes());
        assert_eq!(parse_stats(&stats), Some(vec![7, 9]));
        assert_eq!(strings_request(3).len(), 12 + 96);
        let mut drv = drvinfo_request();
        drv[4..8].copy_from_slice(b"veth");
        assert_eq!(parse_drvinfo(&drv).as_deref(), Some("veth"));
    }
}
