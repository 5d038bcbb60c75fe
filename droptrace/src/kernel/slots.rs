//! Readings of the kernel program's group cache (`GROUP_SLOTS`, one array of slots per
//! CPU): which slots can be trusted, and their counts by group over every CPU.
//!
//! A slot is taken once, by the first group that hashes to it on that CPU, and never given
//! back: its key is written once and its count only grows. A reading made while the
//! kernel writes a slot's key for the first time may see half of it, so a key counts only
//! once two readings in a row agree on it (or once the program is gone and nothing writes).
//!
//! Only the CPUs that counted something since the last reading need reading again: the
//! reader keeps what it trusted of every slot and adds only what grew, so a reading costs
//! the CPUs read, not all of them.
use std::collections::{HashMap, HashSet};

use droptrace_common::{GroupKey, Slot};

/// What the readings so far saw in every slot, and the slots' counts by group.
#[derive(Debug, Default)]
pub struct SlotReader {
    /// By CPU number: what the last reading of that CPU saw.
    cpus: Vec<CpuSlots>,
    /// Trusted counts by group, every CPU's slots together.
    totals: HashMap<GroupKey, u64>,
}

#[derive(Debug, Default, Clone)]
struct CpuSlots {
    /// The key each slot had at the last reading.
    seen: Vec<GroupKey>,
    /// The count of each slot already in `totals`.
    counted: Vec<u64>,
    /// A taken slot whose key is not trusted yet: read this CPU again.
    unsure: bool,
}

impl SlotReader {
    /// Takes a reading of CPU `cpu`'s slots: adds what grew in the trusted ones to the
    /// totals and puts their groups in `changed`. `settled`: nothing writes the slots any
    /// more (the program is detached).
    pub fn read_cpu(
        &mut self,
        cpu: usize,
        slots: &[Slot],
        settled: bool,
        changed: &mut HashSet<GroupKey>,
    ) {
        if self.cpus.len() <= cpu {
            self.cpus.resize(cpu + 1, CpuSlots::default());
        }
        let state = &mut self.cpus[cpu];
        state.seen.resize(slots.len(), GroupKey::default());
        state.counted.resize(slots.len(), 0);
        state.unsure = false;
        for ((slot, seen), counted) in slots
            .iter()
            .zip(state.seen.iter_mut())
            .zip(state.counted.iter_mut())
        {
            let count = slot.count.count;
            if count == 0 {
                continue;
            }
            if settled || *seen == slot.key {
                if count > *counted {
                    *self.totals.entry(slot.key).or_default() += count - *counted;
                    *counted = count;
                    changed.insert(slot.key);
                }
            } else {
                state.unsure = true;
            }
            *seen = slot.key;
        }
    }

    /// A slot of `cpu` was taken but its key is not trusted yet: read it again even if
    /// the CPU counts nothing more.
    pub fn unsure(&self, cpu: usize) -> bool {
        self.cpus.get(cpu).is_some_and(|c| c.unsure)
    }

    /// A group's trusted count over every CPU's slots.
    pub fn total(&self, key: &GroupKey) -> u64 {
        self.totals.get(key).copied().unwrap_or(0)
    }
}

/// Readings of the kernel's group map, one after another: which groups moved since the
/// last. The kernel hands a hash map out bucket by bucket, in the same order while no key
/// comes or goes: a key found at its place with its count has not moved. (A new key shifts
/// the ones after it: they count as moved once, which costs time, never a count.)
#[derive(Debug, Default)]
pub struct MapReadings {
    last: Vec<(GroupKey, u64)>,
    now: Vec<(GroupKey, u64)>,
}

impl MapReadings {
    /// A new reading begins.
    pub fn start(&mut self) {
        self.now.clear();
    }

    /// The next key of the reading and its count: whether it moved since the last one.
    pub fn moved(&mut self, key: GroupKey, count: u64) -> bool {
        let moved = self.last.get(self.now.len()) != Some(&(key, count));
        self.now.push((key, count));
        moved
    }

    /// The reading is complete: the next one compares with it.
    pub fn finish(&mut self) {
        std::mem::swap(&mut self.last, &mut self.now);
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

    fn read(reader: &mut SlotReader, cpu: usize, slots: &[Slot], settled: bool) -> Vec<u16> {
        let mut changed = HashSet::new();
        reader.read_cpu(cpu, slots, settled, &mut changed);
        let mut ports: Vec<u16> = changed.iter().map(|k| k.dport).collect();
        ports.sort_unstable();
        ports
    }

    #[test]
    fn a_slot_counts_once_two_readings_agree_on_its_key() {
        let mut reader = SlotReader::default();
        assert!(read(&mut reader, 0, &[slot(key(9), 5), Slot::default()], false).is_empty());
        assert!(read(&mut reader, 1, &[Slot::default(), slot(key(9), 2)], false).is_empty());
        assert!(reader.unsure(0) && reader.unsure(1));
        assert_eq!(reader.total(&key(9)), 0);
        assert_eq!(
            read(&mut reader, 0, &[slot(key(9), 7), Slot::default()], false),
            [9]
        );
        assert_eq!(
            read(&mut reader, 1, &[Slot::default(), slot(key(9), 3)], false),
            [9]
        );
        assert_eq!(reader.total(&key(9)), 10);
        assert!(!reader.unsure(0) && !reader.unsure(1));
    }

    #[test]
    fn a_key_read_half_written_is_not_counted() {
        let mut reader = SlotReader::default();
        let mut torn = key(53);
        torn.location = 0;
        read(&mut reader, 0, &[slot(torn, 1)], false);
        read(&mut reader, 0, &[slot(key(53), 4)], false);
        assert_eq!(reader.total(&key(53)), 0);
        assert_eq!(reader.total(&torn), 0);
        assert!(reader.unsure(0), "read again until the key is trusted");
        read(&mut reader, 0, &[slot(key(53), 6)], false);
        assert_eq!(reader.total(&key(53)), 6);
    }

    #[test]
    fn only_what_grew_is_added_and_reported() {
        let mut reader = SlotReader::default();
        let cpu0 = [slot(key(9), 5), slot(key(10), 1)];
        read(&mut reader, 0, &cpu0, false);
        read(&mut reader, 0, &cpu0, false);
        assert_eq!(
            read(&mut reader, 0, &[slot(key(9), 8), slot(key(10), 1)], false),
            [9]
        );
        // CPU 0 not read again: its figures stay as they were.
        assert_eq!(read(&mut reader, 3, &[slot(key(9), 2)], true), [9]);
        assert_eq!(reader.total(&key(9)), 10);
        assert_eq!(reader.total(&key(10)), 1);
        assert!(read(&mut reader, 3, &[slot(key(9), 2)], true).is_empty());
    }

    #[test]
    fn once_settled_every_taken_slot_counts() {
        let mut reader = SlotReader::default();
        let slots = [slot(key(9), 5), slot(key(10), 1), Slot::default()];
        assert_eq!(read(&mut reader, 0, &slots, true), [9, 10]);
        assert_eq!(reader.total(&key(9)), 5);
        assert_eq!(reader.total(&key(10)), 1);
    }

    #[test]
    fn a_map_reading_hands_on_only_the_groups_that_moved() {
        let mut readings = MapReadings::default();
        let mut read = |entries: &[(u16, u64)]| -> Vec<u16> {
            readings.start();
            let moved = entries
                .iter()
                .filter(|(port, n)| readings.moved(key(*port), *n))
                .map(|(port, _)| *port)
                .collect();
            readings.finish();
            moved
        };
        assert_eq!(read(&[(1, 5), (2, 1), (3, 7)]), [1, 2, 3]);
        assert!(read(&[(1, 5), (2, 1), (3, 7)]).is_empty());
        assert_eq!(read(&[(1, 5), (2, 4), (3, 7)]), [2]);
        // A new key in the middle: the ones after it are handed on again.
        assert_eq!(read(&[(1, 5), (9, 1), (2, 4), (3, 7)]), [9, 2, 3]);
        assert!(read(&[(1, 5), (9, 1), (2, 4), (3, 7)]).is_empty());
    }

    #[test]
    fn slot_indexes_spread_a_port_scan() {
        let mut used = [0u32; droptrace_common::SLOTS];
        for port in 0..(droptrace_common::SLOTS * 16) as u16 {
            used[droptrace_common::slot_index(&key(port))] += 1;
        }
        // 16 ports a slot on average; a bad hash piles them into few slots.
        assert!(used.iter().all(|&n| n > 0), "{used:?}");
        assert!(used.iter().all(|&n| n <= 40), "{used:?}");
    }
}
