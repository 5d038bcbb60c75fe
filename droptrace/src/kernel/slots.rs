//! Readings of the kernel program's per-CPU group cache (`GROUP_SLOTS`): which slots can
//! be trusted, and their counts added to the group map's.
//!
//! A slot is taken once, by the first group that hashes to it on that CPU, and never given
//! back: its key is written once and its count only grows. A reading made while the
//! kernel writes a slot's key for the first time may see half of it, so a key counts only
//! once two readings in a row agree on it (or once the program is gone and nothing writes).
use std::collections::HashMap;

use droptrace_common::{GroupKey, Slot};

/// What the last reading saw in every slot of every CPU.
#[derive(Debug, Default)]
pub struct SlotReader {
    seen: Vec<GroupKey>,
}

impl SlotReader {
    /// Adds the trusted slots of `per_cpu` (one slot array per CPU) to `counts`.
    /// `settled`: nothing writes the slots any more (the program is detached).
    pub fn add(&mut self, per_cpu: &[&[Slot]], settled: bool, counts: &mut HashMap<GroupKey, u64>) {
        let total: usize = per_cpu.iter().map(|s| s.len()).sum();
        self.seen.resize(total, GroupKey::default());
        let slots = per_cpu.iter().flat_map(|s| s.iter());
        for (slot, seen) in slots.zip(self.seen.iter_mut()) {
            if slot.count.count == 0 {
                continue;
            }
            if settled || *seen == slot.key {
                *counts.entry(slot.key).or_default() += slot.count.count;
            }
            *seen = slot.key;
        }
    }
}

#[cfg(test)]
mod tests {
    use droptrace_common::GroupCount;

    use super::*;

    fn key(dport: u16) -> GroupKey {
        GroupKey {
            location: 0xffff_ffff_8100_0000,
            reason: 3,
            dport,
            flags: droptrace_common::EVENT_PORTS,
            ..GroupKey::default()
        }
    }

    fn slot(key: GroupKey, count: u64) -> Slot {
        Slot {
            count: GroupCount {
                count,
                epoch: 0,
                samples: 0,
            },
            key,
        }
    }

    #[test]
    fn a_slot_counts_once_two_readings_agree_on_its_key() {
        let mut reader = SlotReader::default();
        let cpu0 = [slot(key(9), 5), Slot::default()];
        let cpu1 = [Slot::default(), slot(key(9), 2)];
        let mut counts = HashMap::new();
        reader.add(&[&cpu0, &cpu1], false, &mut counts);
        assert!(counts.is_empty(), "first sight: {counts:?}");
        let cpu0 = [slot(key(9), 7), Slot::default()];
        let cpu1 = [Slot::default(), slot(key(9), 3)];
        reader.add(&[&cpu0, &cpu1], false, &mut counts);
        assert_eq!(counts, HashMap::from([(key(9), 10)]));
    }

    #[test]
    fn a_key_read_half_written_is_not_counted() {
        let mut reader = SlotReader::default();
        let mut torn = key(53);
        torn.location = 0;
        let mut counts = HashMap::new();
        reader.add(&[&[slot(torn, 1)]], false, &mut counts);
        reader.add(&[&[slot(key(53), 4)]], false, &mut counts);
        assert!(counts.is_empty(), "{counts:?}");
        reader.add(&[&[slot(key(53), 6)]], false, &mut counts);
        assert_eq!(counts, HashMap::from([(key(53), 6)]));
    }

    #[test]
    fn once_settled_every_taken_slot_counts_and_adds_to_the_map() {
        let mut reader = SlotReader::default();
        let mut counts = HashMap::from([(key(9), 100)]);
        reader.add(
            &[&[slot(key(9), 5), slot(key(10), 1), Slot::default()]],
            true,
            &mut counts,
        );
        assert_eq!(counts, HashMap::from([(key(9), 105), (key(10), 1)]));
    }

    #[test]
    fn slot_indexes_spread_a_port_scan() {
        let mut used = [0u32; droptrace_common::SLOTS];
        for port in 0..4096u16 {
            used[droptrace_common::slot_index(&key(port))] += 1;
        }
        // 16 ports a slot on average; a bad hash piles them into few slots.
        assert!(used.iter().all(|&n| n > 0), "{used:?}");
        assert!(used.iter().all(|&n| n <= 40), "{used:?}");
    }
}
