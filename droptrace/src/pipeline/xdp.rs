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
    program_location, program_of, verdict_name, verdict_of, verdict_reason, PROGRAM_LOCATIONS,
    VERDICT_REASONS,
};

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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::xdp::{XDP_ABORTED, XDP_DROP};

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
