//! Names of skb drop reasons, learned from the running kernel.
//!
//! Reason numbers are not stable across kernel releases (new reasons are inserted in
//! the middle of `enum skb_drop_reason`), so droptrace never hard-codes them: it reads
//! the enum from BTF, or the `__print_symbolic` table of the tracepoint's format.
//!
//! A raw reason is a u32 whose high 16 bits name a subsystem (`enum
//! skb_drop_reason_subsys`): 0 is the core enum, others (mac80211, openvswitch, ...)
//! have their own `*_drop_reason` enums, often in module BTF.

use std::collections::BTreeMap;

use super::btf::Btf;
use super::tracefs::TracepointFormat;

/// `SKB_DROP_REASON_SUBSYS_SHIFT` in include/net/dropreason.h (a #define, so not in BTF).
pub const SUBSYS_SHIFT: u32 = 16;

const CORE_ENUM: &str = "skb_drop_reason";
const SUBSYS_ENUM: &str = "skb_drop_reason_subsys";

/// Core names that are not drops and never reach the kfree_skb tracepoint; like `MAX`
/// they have a name but cannot be filtered on.
const NOT_DROPS: [&str; 3] = ["NOT_DROPPED_YET", "CONSUMED", "MAX"];

/// Where a table's names came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReasonSource {
    Btf,
    Tracefs,
    /// A recording made on another (or the same) machine.
    Recording,
}

/// Maps raw drop reason values to the kernel's names and back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropReasonTable {
    /// Value -> name, the first name seen for a value.
    by_value: BTreeMap<u32, String>,
    /// Upper-case name -> value, for every name that can be filtered on.
    by_name: BTreeMap<String, u32>,
    /// Subsystem id -> name (`MAC80211_UNUSABLE`, `OPENVSWITCH`), from BTF only.
    subsystems: BTreeMap<u16, String>,
    source: ReasonSource,
}

impl DropReasonTable {
    /// Reads `enum skb_drop_reason` (names without the `SKB_DROP_REASON_` prefix) and
    /// the subsystem enums present in `btf`. `None` if the kernel has no drop reasons
    /// (before 5.17). Add module BTF with [`DropReasonTable::add_btf`].
    pub fn from_btf(btf: &Btf) -> Option<DropReasonTable> {
        let core = btf.enum_variants(CORE_ENUM)?;
        let mut table = DropReasonTable::empty(ReasonSource::Btf);
        // The enum also holds SKB_DROP_REASON_SUBSYS_MASK (0xffff0000), not a reason.
        for (name, value) in core.into_iter().filter(|(_, v)| v >> SUBSYS_SHIFT == 0) {
            let short = name
                .strip_prefix("SKB_DROP_REASON_")
                .or_else(|| name.strip_prefix("SKB_"))
                .unwrap_or(&name);
            if let Ok(value) = u32::try_from(value) {
                table.insert(value, short);
            }
        }
        for (name, value) in btf.enum_variants(SUBSYS_ENUM).unwrap_or_default() {
            let short = name
                .strip_prefix("SKB_DROP_REASON_SUBSYS_")
                .unwrap_or(&name);
            if let (Ok(id), false) = (u16::try_from(value), short == "NUM") {
                table.subsystems.insert(id, short.to_owned());
            }
        }
        table.add_btf(btf);
        Some(table)
    }

    /// Adds subsystem reasons from the `*_drop_reason` enums of `btf`, typically a
    /// module's split BTF (/sys/kernel/btf/mac80211, /sys/kernel/btf/openvswitch).
    ///
    /// Only values with a non-zero subsystem are taken: these enums also alias core
    /// values (mac80211's `RX_CONTINUE` is `SKB_CONSUMED`). Names are kept as the
    /// kernel spells them, e.g. `OVS_DROP_LAST_ACTION`. Returns how many were added.
    pub fn add_btf(&mut self, btf: &Btf) -> usize {
        let enums: Vec<String> = btf
            .enum_names()
            .filter(|n| n.ends_with("_drop_reason") && *n != CORE_ENUM && !n.starts_with('_'))
            .map(str::to_owned)
            .collect();
        let mut added = 0;
        for enum_name in enums {
            for (name, value) in btf.enum_variants(&enum_name).unwrap_or_default() {
                let Ok(value) = u32::try_from(value) else {
                    continue;
                };
                if value >> SUBSYS_SHIFT != 0 && !self.by_value.contains_key(&value) {
                    self.insert(value, &name);
                    added += 1;
                }
            }
        }
        added
    }

    /// Reads the `__print_symbolic(REC->reason, ...)` table of the kfree_skb format.
    /// `None` if the format has no reason table (before 5.17).
    pub fn from_tracefs_format(format: &TracepointFormat) -> Option<DropReasonTable> {
        let values = format.symbolic_values("reason");
        if values.is_empty() {
            return None;
        }
        let mut table = DropReasonTable::empty(ReasonSource::Tracefs);
        for (value, name) in values {
            if let Ok(value) = u32::try_from(value) {
                table.insert(value, &name);
            }
        }
        Some(table)
    }

    /// A table from (value, name) pairs, as a recording keeps them.
    pub fn from_entries<'a>(entries: impl IntoIterator<Item = (u32, &'a str)>) -> DropReasonTable {
        let mut table = DropReasonTable::empty(ReasonSource::Recording);
        for (value, name) in entries {
            table.insert(value, name);
        }
        table
    }

    /// Every (value, name) pair, by value.
    pub fn entries(&self) -> impl Iterator<Item = (u32, &str)> + '_ {
        self.by_value.iter().map(|(v, n)| (*v, n.as_str()))
    }

    fn empty(source: ReasonSource) -> DropReasonTable {
        DropReasonTable {
            by_value: BTreeMap::new(),
            by_name: BTreeMap::new(),
            subsystems: BTreeMap::new(),
            source,
        }
    }

    fn insert(&mut self, value: u32, name: &str) {
        if name.is_empty() {
            return;
        }
        self.by_value
            .entry(value)
            .or_insert_with(|| name.to_owned());
        let core = value >> SUBSYS_SHIFT == 0;
        if !(core && NOT_DROPS.contains(&name)) {
            self.by_name
                .entry(name.to_ascii_uppercase())
                .or_insert(value);
        }
    }

    /// The kernel's name for `raw`, e.g. 12 -> `NETFILTER_DROP`.
    pub fn name(&self, raw: u32) -> Option<&str> {
        self.by_value.get(&raw).map(String::as_str)
    }

    /// The name, or a readable stand-in for values this kernel did not name:
    /// `reason 130`, `OPENVSWITCH reason 5`, `subsystem 7 reason 5`.
    pub fn display(&self, raw: u32) -> String {
        if let Some(name) = self.name(raw) {
            return name.to_owned();
        }
        let subsys = (raw >> SUBSYS_SHIFT) as u16;
        let code = raw & ((1 << SUBSYS_SHIFT) - 1);
        match (subsys, self.subsystems.get(&subsys)) {
            (0, _) => format!("reason {raw}"),
            (_, Some(name)) => format!("{name} reason {code}"),
            (_, None) => format!("subsystem {subsys} reason {code}"),
        }
    }

    /// The value of a reason given by name: `NETFILTER_DROP`, `netfilter_drop` and
    /// `SKB_DROP_REASON_NETFILTER_DROP` all work. `MAX` and the non-drops are refused.
    pub fn lookup(&self, name: &str) -> Option<u32> {
        self.by_name.get(&normalize(name)).copied()
    }

    /// Names that [`DropReasonTable::lookup`] accepts, in value order.
    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.by_value
            .iter()
            .filter(|(value, name)| self.by_name.get(&name.to_ascii_uppercase()) == Some(value))
            .map(|(_, name)| name.as_str())
    }

    /// The known name nearest to a misspelt `name`, to suggest in an error message.
    pub fn closest(&self, name: &str) -> Option<&str> {
        let wanted = normalize(name);
        if wanted.is_empty() {
            return None;
        }
        let limit = 2 + wanted.len() / 4;
        self.names()
            .map(|candidate| {
                (
                    edit_distance(&wanted, &candidate.to_ascii_uppercase()),
                    candidate,
                )
            })
            .filter(|(distance, _)| *distance <= limit)
            .min_by_key(|(distance, _)| *distance)
            .map(|(_, candidate)| candidate)
    }

    /// Name of subsystem `id` (`CORE`, `MAC80211_UNUSABLE`, `OPENVSWITCH`), from BTF.
    pub fn subsystem(&self, id: u16) -> Option<&str> {
        self.subsystems.get(&id).map(String::as_str)
    }

    pub fn source(&self) -> ReasonSource {
        self.source
    }

    /// Number of named values, `MAX` and the non-drops included.
    pub fn len(&self) -> usize {
        self.by_value.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_value.is_empty()
    }
}

fn normalize(name: &str) -> String {
    let upper = name.trim().to_ascii_uppercase();
    match upper.strip_prefix("SKB_DROP_REASON_") {
        Some(rest) => rest.to_owned(),
        None => upper,
    }
}

/// Levenshtein distance over bytes (names are ASCII).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, &ca) in a.as_bytes().iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::btf::tests::{vmlinux, Builder};
    use std::path::Path;

    fn format(name: &str) -> TracepointFormat {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(name);
        TracepointFormat::from_file(&path).unwrap()
    }

    fn from_btf() -> DropReasonTable {
        DropReasonTable::from_btf(vmlinux()).unwrap()
    }

    fn from_tracefs() -> DropReasonTable {
        DropReasonTable::from_tracefs_format(&format("kfree_skb.format.6.18")).unwrap()
    }

    #[test]
    fn core_reasons_from_btf() {
        let t = from_btf();
        assert_eq!(t.source(), ReasonSource::Btf);
        assert_eq!(t.name(2), Some("NOT_SPECIFIED"));
        assert_eq!(t.name(12), Some("NETFILTER_DROP"));
        assert_eq!(t.name(0), Some("NOT_DROPPED_YET"));
        assert_eq!(t.name(1), Some("CONSUMED"));
        assert_eq!(t.name(128), Some("MAX"));
        assert_eq!(t.len(), 129);
        assert_eq!(t.name(0xffff_0000), None); // SKB_DROP_REASON_SUBSYS_MASK
        assert_eq!(t.lookup("SUBSYS_MASK"), None);
        assert_eq!(t.subsystem(1), Some("MAC80211_UNUSABLE"));
        assert_eq!(t.subsystem(2), Some("OPENVSWITCH"));
        assert_eq!(t.subsystem(3), None); // SKB_DROP_REASON_SUBSYS_NUM
    }

    #[test]
    fn core_reasons_from_tracefs() {
        let t = from_tracefs();
        assert_eq!(t.source(), ReasonSource::Tracefs);
        assert_eq!(t.name(12), Some("NETFILTER_DROP"));
        assert_eq!(t.name(128), Some("MAX"));
        assert_eq!(t.len(), 127);
    }

    #[test]
    fn both_sources_agree_on_this_kernel() {
        let btf = from_btf();
        let tracefs = from_tracefs();
        for value in 2..=128 {
            assert_eq!(btf.name(value), tracefs.name(value), "value {value}");
        }
        assert!(btf.names().eq(tracefs.names()));
        assert_eq!(btf.names().count(), 126);
    }

    #[test]
    fn lookup_spellings() {
        for t in [from_btf(), from_tracefs()] {
            assert_eq!(t.lookup("NETFILTER_DROP"), Some(12));
            assert_eq!(t.lookup("netfilter_drop"), Some(12));
            assert_eq!(t.lookup("SKB_DROP_REASON_NETFILTER_DROP"), Some(12));
            assert_eq!(t.lookup(" no_socket "), Some(3));
            assert_eq!(t.lookup("MAX"), None);
            assert_eq!(t.lookup("CONSUMED"), None);
            assert_eq!(t.lookup("NETFILTER"), None);
            assert!(!t.names().any(|n| n == "MAX"));
            assert_eq!(t.names().next(), Some("NOT_SPECIFIED"));
        }
    }

    #[test]
    fn suggestions() {
        let t = from_btf();
        assert_eq!(t.closest("NETFILTER_DORP"), Some("NETFILTER_DROP"));
        assert_eq!(t.closest("netfilterdrop"), Some("NETFILTER_DROP"));
        assert_eq!(t.closest("no_sockett"), Some("NO_SOCKET"));
        assert_eq!(t.closest("completely unrelated words"), None);
        assert_eq!(t.closest(""), None);
    }

    #[test]
    fn display_of_unknown_values() {
        let t = from_btf();
        assert_eq!(t.display(12), "NETFILTER_DROP");
        assert_eq!(t.display(500), "reason 500");
        assert_eq!(t.display(0x2_0005), "OPENVSWITCH reason 5");
        assert_eq!(t.display(0x7_0005), "subsystem 7 reason 5");
        let t = from_tracefs();
        assert_eq!(t.display(0x1_0005), "subsystem 1 reason 5");
    }

    #[test]
    fn older_kernels_number_reasons_differently() {
        // NOT_SPECIFIED was 1 before SKB_CONSUMED was added, and NETFILTER_DROP moved.
        let old =
            DropReasonTable::from_tracefs_format(&format("kfree_skb.format.5.18-era")).unwrap();
        assert_eq!(old.lookup("NOT_SPECIFIED"), Some(1));
        assert_eq!(old.lookup("NETFILTER_DROP"), Some(7));
        let pre_6_11 =
            DropReasonTable::from_tracefs_format(&format("kfree_skb.format.pre-6.11")).unwrap();
        assert_eq!(pre_6_11.lookup("NETFILTER_DROP"), Some(8));
        assert_eq!(pre_6_11.name(87), Some("MAX"));
        assert!(
            DropReasonTable::from_tracefs_format(&format("kfree_skb.format.pre-5.17")).is_none()
        );
    }

    #[test]
    fn subsystem_reasons_from_module_btf() {
        // The fixture kernel has no modules; this split blob stands in for
        // /sys/kernel/btf/openvswitch (ovs_drop_reason, subsystem 2), with values as
        // net/openvswitch/drop.h defines them.
        let base = std::sync::Arc::new(vmlinux().clone());
        let mut blob = Builder::split(&base);
        blob.enum32(
            "ovs_drop_reason",
            &[
                ("OVS_DROP_LAST_ACTION", 0x2_0001),
                ("OVS_DROP_ACTION_ERROR", 0x2_0002),
                ("OVS_DROP_MAX", 0x2_0003),
            ],
        );
        // Helper enums such as mac80211's `___mac80211_drop_reason` are ignored.
        blob.enum32(
            "___ovs_drop_reason",
            &[("___OVS_DROP_LAST_ACTION", 0x2_0001)],
        );
        let module = Btf::parse_split(&blob.build(), base).unwrap();
        let mut t = from_btf();
        assert_eq!(t.add_btf(&module), 3);
        assert_eq!(t.name(0x2_0001), Some("OVS_DROP_LAST_ACTION"));
        assert_eq!(t.lookup("ovs_drop_action_error"), Some(0x2_0002));
        assert_eq!(t.display(0x2_0009), "OPENVSWITCH reason 9");
        // Adding the same module twice changes nothing.
        assert_eq!(t.add_btf(&module), 0);
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("ABC", ""), 3);
        assert_eq!(edit_distance("KITTEN", "SITTING"), 3);
        assert_eq!(edit_distance("NETFILTER_DORP", "NETFILTER_DROP"), 2);
    }
}
