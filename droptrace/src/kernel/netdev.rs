//! Queue statistics (qstats) of the `netdev` generic-netlink family (Linux 6.9 and later):
//! the family's id asked of the generic-netlink controller (CTRL_CMD_GETFAMILY), then a
//! NETDEV_CMD_QSTATS_GET dump with scope queue, whose answer holds one message per queue of
//! every interface whose driver gives them (ifindex, queue type, queue id, and the counters
//! the driver fills; one it does not fill is absent). The ids are those of
//! `include/uapi/linux/netdev.h` and `genetlink.h` of 6.18, checked against the running
//! kernel's BTF (enums `netdev_qstats_scope`, `netdev_queue_type`, and the anonymous ones of
//! `NETDEV_A_QSTATS_*`, `NETDEV_CMD_*`, `CTRL_*`). This module builds the requests and reads
//! the answers; `probe::links` makes the calls. Tested on answers captured on the machine
//! (`droptrace/fixtures/netlink`, `capture-netdev.sh`).
use super::netlink::{attributes, messages, u16_at, u32_at, NetlinkError};

/// The generic-netlink controller's message type (`GENL_ID_CTRL`).
const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
const NETDEV_CMD_QSTATS_GET: u8 = 12;
const NETDEV_A_QSTATS_IFINDEX: u16 = 1;
const NETDEV_A_QSTATS_QUEUE_TYPE: u16 = 2;
const NETDEV_A_QSTATS_QUEUE_ID: u16 = 3;
const NETDEV_A_QSTATS_SCOPE: u16 = 4;
const NETDEV_QSTATS_SCOPE_QUEUE: u32 = 1;
const NETDEV_QUEUE_TYPE_RX: u32 = 0;
const NETDEV_QUEUE_TYPE_TX: u32 = 1;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
/// nlmsghdr (16) + genlmsghdr (4).
const HEADERS: usize = 20;
const ENOENT: i32 = 2;

/// The family whose queue statistics droptrace reads.
pub const FAMILY: &str = "netdev";

/// Every counter attribute of the qstats attribute set, by id, with the name the kernel's
/// spec (`Documentation/netlink/specs/netdev.yaml`) and `ynl` give it.
pub const COUNTERS: [(u16, &str); 27] = [
    (8, "rx-packets"),
    (9, "rx-bytes"),
    (10, "tx-packets"),
    (11, "tx-bytes"),
    (12, "rx-alloc-fail"),
    (13, "rx-hw-drops"),
    (14, "rx-hw-drop-overruns"),
    (15, "rx-csum-complete"),
    (16, "rx-csum-unnecessary"),
    (17, "rx-csum-none"),
    (18, "rx-csum-bad"),
    (19, "rx-hw-gro-packets"),
    (20, "rx-hw-gro-bytes"),
    (21, "rx-hw-gro-wire-packets"),
    (22, "rx-hw-gro-wire-bytes"),
    (23, "rx-hw-drop-ratelimits"),
    (24, "tx-hw-drops"),
    (25, "tx-hw-drop-errors"),
    (26, "tx-csum-none"),
    (27, "tx-needs-csum"),
    (28, "tx-hw-gso-packets"),
    (29, "tx-hw-gso-bytes"),
    (30, "tx-hw-gso-wire-packets"),
    (31, "tx-hw-gso-wire-bytes"),
    (32, "tx-hw-drop-ratelimits"),
    (33, "tx-stop"),
    (34, "tx-wake"),
];

/// A queue's direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QueueType {
    Rx,
    Tx,
}

impl QueueType {
    pub fn label(self) -> &'static str {
        match self {
            QueueType::Rx => "rx",
            QueueType::Tx => "tx",
        }
    }
}

/// One queue's statistics, as the driver gave them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStats {
    pub ifindex: u32,
    pub queue_type: QueueType,
    pub queue_id: u32,
    /// The counters the driver filled, by the spec's name, in the order they came.
    pub counters: Vec<(&'static str, u64)>,
}

impl QueueStats {
    pub fn get(&self, name: &str) -> Option<u64> {
        self.counters.iter().find(|(n, _)| *n == name).map(|c| c.1)
    }
}

fn attribute(kind: u16, payload: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(4 + payload.len() + 3);
    a.extend_from_slice(&u16::try_from(4 + payload.len()).unwrap_or(0).to_ne_bytes());
    a.extend_from_slice(&kind.to_ne_bytes());
    a.extend_from_slice(payload);
    a.resize((a.len() + 3) & !3, 0);
    a
}

/// A generic-netlink message: headers, then `attrs` (sequence number 0: the socket sets it).
fn message(kind: u16, flags: u16, cmd: u8, attrs: &[u8]) -> Vec<u8> {
    let len = u32::try_from(HEADERS + attrs.len()).unwrap_or(0);
    let mut b = Vec::with_capacity(HEADERS + attrs.len());
    b.extend_from_slice(&len.to_ne_bytes());
    b.extend_from_slice(&kind.to_ne_bytes());
    b.extend_from_slice(&flags.to_ne_bytes());
    b.extend_from_slice(&[0; 8]);
    // genlmsghdr: cmd, version 1, reserved.
    b.extend_from_slice(&[cmd, 1, 0, 0]);
    b.extend_from_slice(attrs);
    b
}

/// The controller's request for the id of the family `name` (answered by one message).
pub fn family_request(name: &str) -> Vec<u8> {
    let mut value = name.as_bytes().to_vec();
    value.push(0);
    message(
        GENL_ID_CTRL,
        NLM_F_REQUEST,
        CTRL_CMD_GETFAMILY,
        &attribute(CTRL_ATTR_FAMILY_NAME, &value),
    )
}

/// The family's id in the controller's answer; `Ok(None)` when the kernel has no such
/// family (ENOENT: 6.1 has no `netdev`).
pub fn parse_family(b: &[u8]) -> Result<Option<u16>, NetlinkError> {
    let (messages, _) = match messages(b) {
        Err(NetlinkError::Kernel(ENOENT)) => return Ok(None),
        other => other?,
    };
    for (kind, msg) in messages {
        if kind != GENL_ID_CTRL {
            continue;
        }
        let at = msg.as_ptr() as usize - b.as_ptr() as usize;
        let attrs = msg.get(HEADERS..).ok_or(NetlinkError::Short(at))?;
        if let Some((_, id)) = attributes(attrs).find(|(k, _)| *k == CTRL_ATTR_FAMILY_ID) {
            return u16_at(id, 0).map(Some).ok_or(NetlinkError::Short(at));
        }
    }
    Err(NetlinkError::Short(b.len()))
}

/// The dump of every queue's statistics of the namespace the socket is in, for the
/// family `family`.
pub fn qstats_request(family: u16) -> Vec<u8> {
    message(
        family,
        NLM_F_REQUEST | NLM_F_DUMP,
        NETDEV_CMD_QSTATS_GET,
        &attribute(
            NETDEV_A_QSTATS_SCOPE,
            &NETDEV_QSTATS_SCOPE_QUEUE.to_ne_bytes(),
        ),
    )
}

/// A `uint` attribute: 4 bytes, or 8 when the value does not fit.
fn uint(payload: &[u8]) -> Option<u64> {
    match payload.len() {
        4 => u32_at(payload, 0).map(u64::from),
        8 => Some(u64::from_ne_bytes(payload.try_into().ok()?)),
        _ => None,
    }
}

/// Every queue of a QSTATS_GET dump (all its datagrams, one after another). A message
/// without its ifindex, queue type or id (another scope) is left out; unknown attributes
/// (a newer kernel's counters) are skipped.
pub fn parse_qstats(b: &[u8]) -> Result<Vec<QueueStats>, NetlinkError> {
    let (messages, _) = messages(b)?;
    let mut queues = Vec::new();
    for (_, msg) in messages {
        let at = msg.as_ptr() as usize - b.as_ptr() as usize;
        if msg.get(16) != Some(&NETDEV_CMD_QSTATS_GET) {
            continue;
        }
        let attrs = msg.get(HEADERS..).ok_or(NetlinkError::Short(at))?;
        let (mut ifindex, mut queue_type, mut queue_id) = (None, None, None);
        let mut counters = Vec::new();
        for (kind, payload) in attributes(attrs) {
            match kind {
                NETDEV_A_QSTATS_IFINDEX => ifindex = u32_at(payload, 0),
                NETDEV_A_QSTATS_QUEUE_TYPE => {
                    queue_type = match u32_at(payload, 0) {
                        Some(NETDEV_QUEUE_TYPE_RX) => Some(QueueType::Rx),
                        Some(NETDEV_QUEUE_TYPE_TX) => Some(QueueType::Tx),
                        _ => None,
                    }
                }
                NETDEV_A_QSTATS_QUEUE_ID => queue_id = u32_at(payload, 0),
                _ => {
                    if let Some((_, name)) = COUNTERS.iter().find(|(id, _)| *id == kind) {
                        let value = uint(payload).ok_or(NetlinkError::Short(at))?;
                        counters.push((*name, value));
                    }
                }
            }
        }
        if let (Some(ifindex), Some(queue_type), Some(queue_id)) = (ifindex, queue_type, queue_id) {
            queues.push(QueueStats {
                ifindex,
                queue_type,
                queue_id,
                counters,
            });
        }
    }
    Ok(queues)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::kernel::{netlink, netlink_fixture as fixture};

    #[test]
    fn the_family_is_resolved_and_a_kernel_without_it_says_so() {
        // This 6.18 machine's controller: "netdev" is registered (20 here; never assumed),
        // the type the queues' dump captured beside it came with.
        let id = parse_family(&fixture("genl_getfamily.netdev.bin")).unwrap();
        assert_eq!(id, Some(20));
        let dump = fixture("netdev_qstats_get.queue.bin");
        assert_eq!(u16_at(&dump, 4), Some(20));
        // A family the kernel lacks: ENOENT, as 6.1 answers for "netdev".
        assert_eq!(
            parse_family(&fixture("genl_getfamily.absent.bin")),
            Ok(None)
        );
        assert!(parse_family(&fixture("genl_getfamily.netdev.bin")[..30]).is_err());
        // The request is the one the capture sent (its sequence number aside).
        let req = family_request(FAMILY);
        assert_eq!(u16_at(&req, 4), Some(GENL_ID_CTRL));
        assert_eq!(req[16], CTRL_CMD_GETFAMILY);
        assert_eq!(&req[24..31], b"netdev\0");
        assert_eq!(req.len(), 32);
    }

    #[test]
    fn virtio_nets_queues_read_as_the_kernel_counted_them() {
        // eth0 of this 6.18 machine (virtio_net): one rx and one tx queue; `ip -s -s link`
        // just after says 421117 packets received, what the one rx queue counted.
        let queues = parse_qstats(&fixture("netdev_qstats_get.queue.bin")).unwrap();
        assert_eq!(queues.len(), 2, "{queues:?}");
        let rx = &queues[0];
        assert_eq!(
            (rx.ifindex, rx.queue_type, rx.queue_id),
            (4, QueueType::Rx, 0)
        );
        assert_eq!(rx.get("rx-packets"), Some(421_117));
        // More than 4 GiB received: an 8-byte uint.
        assert_eq!(rx.get("rx-bytes"), Some(14_983_546_292));
        let tx = &queues[1];
        assert_eq!((tx.queue_type, tx.queue_id), (QueueType::Tx, 0));
        let names: Vec<&str> = tx.counters.iter().map(|c| c.0).collect();
        assert_eq!(names, ["tx-packets", "tx-bytes", "tx-stop", "tx-wake"]);
        let text = String::from_utf8(fixture("netdev_qstats_get.ip-s-s.txt")).unwrap();
        assert!(text.contains("14983546292  421117"), "{text}");
        // A cut answer is an error, not fewer queues.
        let bytes = fixture("netdev_qstats_get.queue.bin");
        assert!(parse_qstats(&bytes[..70]).is_err());
        let req = qstats_request(20);
        assert_eq!(u16_at(&req, 4), Some(20));
        assert_eq!(u16_at(&req, 6), Some(NLM_F_REQUEST | NLM_F_DUMP));
        assert_eq!(req[16], NETDEV_CMD_QSTATS_GET);
        assert_eq!(
            netlink::attributes(&req[HEADERS..]).collect::<Vec<_>>(),
            [(NETDEV_A_QSTATS_SCOPE, &1u32.to_ne_bytes()[..])]
        );
    }

    #[test]
    fn a_driver_without_qstats_gives_an_empty_dump_or_an_error() {
        // The dump of a namespace whose interfaces give none: only NLMSG_DONE.
        let mut done = vec![0u8; 20];
        done[0..4].copy_from_slice(&20u32.to_ne_bytes());
        done[4..6].copy_from_slice(&3u16.to_ne_bytes());
        assert_eq!(parse_qstats(&done), Ok(Vec::new()));
        // EOPNOTSUPP (95) from a kernel or driver that refuses.
        let mut err = vec![0u8; 36];
        err[0..4].copy_from_slice(&36u32.to_ne_bytes());
        err[4..6].copy_from_slice(&2u16.to_ne_bytes());
        err[16..20].copy_from_slice(&(-95i32).to_ne_bytes());
        assert_eq!(parse_qstats(&err), Err(NetlinkError::Kernel(95)));
    }
}
