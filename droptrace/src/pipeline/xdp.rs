//! XDP programs' verdicts as drop groups: a drop that an XDP program's XDP_DROP or
//! XDP_ABORTED made is counted in a group whose location stands for the program (its
//! name and id) and whose reason is the verdict. Kernel text addresses all lie in the
//! top half of the address space and kernel reasons below `VERDICT_REASONS`' subsystem,
//! so neither is mistaken for the kernel's.

use super::{
    event::{Group, Netns},
    names::{Location, Names},
};

// How a verdict is written as a drop's location and reason (in `event`, which
// `names` reads too).
pub use super::event::{
    exception_name, exception_of, exception_reason, program_location, program_of, verdict_name,
    verdict_of, verdict_reason, xdp_reason_name, EXCEPTION_REASONS, PROGRAM_LOCATIONS,
    VERDICT_REASONS,
};
use droptrace_common as wire;

/// The group of an XDP program's drops of one verdict on one interface.
pub fn group(prog_id: u32, verdict: u32, netns: Netns, ifindex: u32) -> Group {
    Group {
        location: program_location(prog_id),
        reason: verdict_reason(verdict),
        ethertype: 0,
        ip_proto: None,
        dport: None,
        netns,
        ifindex,
    }
}

/// Names an XDP program's location: `xdp drop_udp_6001 (id 42)`.
pub fn name_program(names: &mut Names, prog_id: u32, name: &str) {
    let display = format!("xdp {name} (id {prog_id})");
    names.locations.insert(
        program_location(prog_id),
        Location {
            function: Some(format!("xdp {name}")),
            offset: None,
            module: None,
            display,
        },
    );
}

/// The program a location's display stands for (`xdp drop_udp_6001 (id 42)` -> 42), for
/// consumers that have only the names (a diagnosis): the inverse of [`name_program`]
/// (program names are `[A-Za-z0-9_.]`, no spaces or parentheses).
pub fn program_of_display(display: &str) -> Option<u32> {
    let rest = display.strip_prefix("xdp ")?.strip_suffix(')')?;
    let (name, id) = rest.rsplit_once(" (id ")?;
    if name.is_empty() || name.contains(' ') {
        return None;
    }
    id.parse().ok()
}

/// An XDP program droptrace found on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdpProgram {
    pub id: u32,
    pub name: String,
    /// Why it is not traced (`None`: traced).
    pub untraced: Option<String>,
}

/// The XDP programs' verdicts as read: absolute counts since droptrace started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XdpReading {
    pub programs: Vec<XdpProgram>,
    /// Drops by (program, interface, namespace, verdict).
    pub counts: Vec<(crate::kernel::xdp::VerdictKey, u64)>,
    /// The XDP exceptions by key (absolute); empty when they are not counted.
    pub exceptions: Vec<(wire::XdpExcKey, u64)>,
}

/// Where else an XDP exception's frame is counted, so that it is shown but not added to
/// the total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlsoCountedAs {
    /// The traced program's `XDP_ABORTED` verdict row.
    XdpVerdict,
    /// A kfree_skb row (`do_xdp_generic`, `veth_xdp_rcv_skb`).
    KfreeSkb,
    /// The driver's own XDP counters (virtio_net's `xdp_drops`, `xdp_tx_drops`), a row of
    /// the interfaces' counters.
    DriverCounter,
    /// The failed redirect's own row (`xdp:xdp_redirect_err`): a driver that reports a
    /// failed `xdp_do_redirect` at `xdp:xdp_exception` too (most: ixgbe, i40e, mlx5...)
    /// reports the same frame twice.
    XdpRedirectErr,
    /// Not known: exceptions counted together once the map was full (their program,
    /// interface and path are lost), shown but not added.
    Unknown,
}

impl AlsoCountedAs {
    pub fn label(self) -> &'static str {
        match self {
            AlsoCountedAs::XdpVerdict => "xdp_verdict",
            AlsoCountedAs::KfreeSkb => "kfree_skb",
            AlsoCountedAs::DriverCounter => "driver_counter",
            AlsoCountedAs::XdpRedirectErr => "xdp_redirect_err",
            AlsoCountedAs::Unknown => "unknown",
        }
    }
}

/// Whether an exception's frame is counted elsewhere too, and where: the rule that
/// counts each frame once. Measured on 6.18 (100 datagrams each, bpftrace beside):
/// - an abort (or an invalid action: it falls through to the abort) of a program whose
///   verdicts droptrace traces is its `XDP_ABORTED` verdict already;
/// - generic (skb) mode frees every exception's skb through kfree_skb: an abort as
///   `NOT_SPECIFIED` at `do_xdp_generic`, a failed redirect there too (reason `XDP`);
/// - a veth's native XDP frees an aborted frame's skb through kfree_skb
///   (`veth_xdp_rcv_skb`), but a failed redirect or XDP_TX consumes the skb and
///   returns the page: only veth's `rx_drops` counts it (a counter not added, as it
///   may be kfree_skb's): counted nowhere else;
/// - a real driver's native XDP has no skb: its own counters (virtio_net's `xdp_drops`,
///   `drops`, `xdp_tx_drops`) count the frame where droptrace reads them
///   (`driver_counts_xdp`), and nothing else does.
pub fn also_counted_as(
    tracepoint: u8,
    value: u32,
    path: u8,
    traced: bool,
    driver_counts_xdp: bool,
) -> Option<AlsoCountedAs> {
    if tracepoint == wire::XDP_TP_OVERFLOW {
        return Some(AlsoCountedAs::Unknown);
    }
    let abort = tracepoint == wire::XDP_TP_EXCEPTION && !(1..=4).contains(&value);
    if abort && traced && value == crate::kernel::xdp::XDP_ABORTED {
        return Some(AlsoCountedAs::XdpVerdict);
    }
    // `xdp_do_redirect` reports its failure itself before any driver does.
    if tracepoint == wire::XDP_TP_EXCEPTION && value == crate::kernel::xdp::XDP_REDIRECT {
        return Some(AlsoCountedAs::XdpRedirectErr);
    }
    let tx_failed = tracepoint == wire::XDP_TP_EXCEPTION && value == crate::kernel::xdp::XDP_TX;
    match path {
        wire::XDP_PATH_GENERIC => Some(AlsoCountedAs::KfreeSkb),
        wire::XDP_PATH_VETH if abort => Some(AlsoCountedAs::KfreeSkb),
        wire::XDP_PATH_VETH => None,
        // Where the program's verdicts are traced, the interface's receive-side XDP drop
        // counters are left out of the total as the verdicts' (interfaces.rs): only its
        // failed-XDP_TX counter still adds.
        _ if driver_counts_xdp && (!traced || tx_failed) => Some(AlsoCountedAs::DriverCounter),
        _ => None,
    }
}

/// One group of XDP exceptions with its exact count and where else it is counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExceptionRow {
    /// The program as location, the exception as reason, its interface and namespace.
    pub group: Group,
    pub count: u64,
    /// `None`: counted nowhere else, so added to the total (and a drop group).
    pub also_counted_as: Option<AlsoCountedAs>,
}

/// The exceptions of a reading as rows, each ruled by [`also_counted_as`]: `traced` says
/// whether droptrace traces a program's verdicts, `driver_counts_xdp` whether an
/// interface's driver counters that count XDP drops are read.
pub fn exception_rows(
    reading: &XdpReading,
    driver_counts_xdp: impl Fn(Netns, u32) -> bool,
) -> Vec<ExceptionRow> {
    reading
        .exceptions
        .iter()
        // The overflow key is there from the start, at 0.
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| {
            let netns = Netns::new(k.netns, k.netns_cookie);
            let traced = reading
                .programs
                .iter()
                .any(|p| p.id == k.prog_id && p.untraced.is_none());
            ExceptionRow {
                group: Group {
                    location: program_location(k.prog_id),
                    reason: exception_reason(k.tracepoint, k.value),
                    ethertype: 0,
                    ip_proto: None,
                    dport: None,
                    netns,
                    ifindex: k.ifindex,
                },
                count: *n,
                also_counted_as: also_counted_as(
                    k.tracepoint,
                    k.value,
                    k.path,
                    traced,
                    driver_counts_xdp(netns, k.ifindex),
                ),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::xdp::{XDP_ABORTED, XDP_DROP};

    use wire::{
        XDP_PATH_DRIVER as DRIVER, XDP_PATH_GENERIC as GENERIC, XDP_PATH_VETH as VETH,
        XDP_TP_EXCEPTION as EXC, XDP_TP_REDIRECT_ERR as REDIR,
    };

    const EINVAL: u32 = (-22i32) as u32;

    #[test]
    fn each_exception_is_counted_once() {
        use AlsoCountedAs::*;
        // (tracepoint, action or error, path, traced, driver counters read) -> where else.
        let cases = [
            // Measured on 6.18: aborts on a veth and in generic mode reach kfree_skb.
            ((EXC, XDP_ABORTED, GENERIC, false, false), Some(KfreeSkb)),
            ((EXC, XDP_ABORTED, VETH, false, false), Some(KfreeSkb)),
            // Traced: the verdict (kfree_skb then skips the frame).
            ((EXC, XDP_ABORTED, GENERIC, true, false), Some(XdpVerdict)),
            ((EXC, XDP_ABORTED, VETH, true, true), Some(XdpVerdict)),
            ((EXC, XDP_ABORTED, DRIVER, true, true), Some(XdpVerdict)),
            // A real driver's abort, untraced: its XDP drop counter, where read.
            ((EXC, XDP_ABORTED, DRIVER, false, true), Some(DriverCounter)),
            ((EXC, XDP_ABORTED, DRIVER, false, false), None),
            // An invalid action falls to the abort, but the verdict counter counts only
            // XDP_DROP and XDP_ABORTED.
            ((EXC, 7, VETH, true, false), Some(KfreeSkb)),
            ((EXC, 7, DRIVER, true, false), None),
            // Failed redirects: generic frees the skb (measured), a veth consumes it.
            ((REDIR, EINVAL, GENERIC, true, false), Some(KfreeSkb)),
            ((REDIR, EINVAL, VETH, false, false), None),
            ((REDIR, EINVAL, VETH, true, true), None),
            ((REDIR, EINVAL, DRIVER, false, true), Some(DriverCounter)),
            // Traced, the driver's receive-side XDP drops are the verdicts': nothing else.
            ((REDIR, EINVAL, DRIVER, true, true), None),
            // A driver's own report of a failed redirect repeats the redirect's row.
            ((EXC, 4, DRIVER, false, false), Some(XdpRedirectErr)),
            ((EXC, 4, DRIVER, true, true), Some(XdpRedirectErr)),
            // A failed XDP_TX: like a failed redirect.
            ((EXC, 3, VETH, true, false), None),
            ((EXC, 3, GENERIC, false, false), Some(KfreeSkb)),
            ((EXC, 3, DRIVER, false, false), None),
            ((EXC, 3, DRIVER, true, true), Some(DriverCounter)),
            // Exceptions counted together once the map was full: not known, not added.
            (
                (wire::XDP_TP_OVERFLOW, 0, DRIVER, false, false),
                Some(Unknown),
            ),
        ];
        for ((tp, v, path, traced, driver), want) in cases {
            assert_eq!(
                also_counted_as(tp, v, path, traced, driver),
                want,
                "{tp} {v} {path} {traced} {driver}"
            );
        }
    }

    #[test]
    fn exception_rows_name_their_program_and_error_and_rule_by_program() {
        let key = |prog_id, tracepoint, value, path| wire::XdpExcKey {
            prog_id,
            ifindex: 3,
            netns: 7,
            value,
            tracepoint,
            path,
            _pad: [0; 6],
            netns_cookie: 0,
        };
        let reading = XdpReading {
            programs: vec![
                XdpProgram {
                    id: 5,
                    name: "xdp_exc_udp".into(),
                    untraced: None,
                },
                XdpProgram {
                    id: 6,
                    name: "other".into(),
                    untraced: Some("EPERM".into()),
                },
            ],
            counts: vec![],
            exceptions: vec![
                (key(5, EXC, XDP_ABORTED, VETH), 40),
                (key(6, EXC, XDP_ABORTED, DRIVER), 2),
                (key(6, REDIR, EINVAL, VETH), 9),
                // The overflow key, at 0 until the map is full: no row.
                (wire::XdpExcKey::OVERFLOW, 0),
            ],
        };
        let rows = exception_rows(&reading, |_, _| false);
        let got: Vec<_> = rows
            .iter()
            .map(|r| {
                (
                    program_of(r.group.location),
                    xdp_reason_name(r.group.reason).unwrap(),
                    r.count,
                    r.also_counted_as,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    Some(5),
                    "XDP_ABORTED (xdp_exception)".to_owned(),
                    40,
                    Some(AlsoCountedAs::XdpVerdict)
                ),
                (Some(6), "XDP_ABORTED (xdp_exception)".to_owned(), 2, None),
                (Some(6), "XDP_REDIRECT failed (err -22)".to_owned(), 9, None),
            ]
        );
        assert_eq!(
            exception_rows(&reading, |ns, i| ns == Netns::inode(7) && i == 3)[1].also_counted_as,
            Some(AlsoCountedAs::DriverCounter)
        );
        assert_eq!(verdict_of(rows[0].group.reason), None);
        // Once it counts, a row of its own, not added.
        let mut full = reading.clone();
        full.exceptions.push((wire::XdpExcKey::OVERFLOW, 3));
        let last = exception_rows(&full, |_, _| false).pop().unwrap();
        assert_eq!(
            (
                xdp_reason_name(last.group.reason).unwrap(),
                last.count,
                last.also_counted_as
            ),
            (
                "XDP exceptions not told apart (droptrace's map of 1024 keys was full)".to_owned(),
                3,
                Some(AlsoCountedAs::Unknown)
            )
        );
        assert_eq!(
            exception_name(wire::XDP_TP_REDIRECT_MAP_ERR, -6),
            "XDP_REDIRECT to a map failed (err -6)"
        );
        assert_eq!(exception_name(EXC, 3), "XDP_TX failed (xdp_exception)");
    }

    #[test]
    fn program_locations_and_verdicts_read_back_and_name_themselves() {
        let g = group(42, XDP_DROP, Netns::inode(7), 3);
        assert_eq!(program_of(g.location), Some(42));
        assert_eq!(verdict_of(g.reason), Some(XDP_DROP));
        assert_eq!(program_of(0xffff_ffff_8100_0000), None);
        assert_eq!(verdict_of(2), None);
        assert_eq!(verdict_of(0x0003_0002), None, "a subsystem's reason");
        let mut names = Names::default();
        name_program(&mut names, 42, "drop_udp_6001");
        assert_eq!(
            names.location_display(g.location),
            "xdp drop_udp_6001 (id 42)"
        );
        assert_eq!(verdict_name(XDP_ABORTED), "XDP_ABORTED");
        assert_eq!(program_of_display("xdp drop_udp_6001 (id 42)"), Some(42));
        assert_eq!(program_of_display("do_xdp_generic+0x2a4"), None);
        assert_eq!(program_of_display("xdp a b (id 4)"), None);
    }
}
