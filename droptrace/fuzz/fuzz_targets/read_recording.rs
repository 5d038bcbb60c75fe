//! Any bytes given to the recording reader: items, a status or an error; never a panic,
//! never an allocation beyond the limits.
//!
//! An input whose first byte is odd has its blocks' checksums fixed first, so that the
//! fuzzer reaches the decoding of payloads and not only the checksum checks.
#![no_main]

use droptrace::record::format::{seal, FRAME_LEN, PREAMBLE_LEN};
use droptrace::record::{Item, Reader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = rest.to_vec();
    if mode & 1 == 1 {
        reseal(&mut bytes);
    }
    read(&bytes);
});

fn read(bytes: &[u8]) {
    let Ok(mut reader) = Reader::new(bytes) else {
        return;
    };
    let mut seen = 0usize;
    let _ = reader.for_each(|item| {
        seen += match item {
            Item::Drop(_, packet) => 1 + packet.len(),
            Item::Counters(c) => c.lost_groups.len(),
            Item::Tcp(_) => 1,
        };
    });
    let names = reader.names();
    std::hint::black_box((seen, reader.status(), names.locations.len()));
}

/// Recomputes the checksums of every whole block, as the writer would have.
fn reseal(bytes: &mut [u8]) {
    let mut at = PREAMBLE_LEN;
    while at + FRAME_LEN <= bytes.len() {
        let len = u32::from_le_bytes([bytes[at + 1], bytes[at + 2], bytes[at + 3], bytes[at + 4]]);
        let Some(end) = (at + FRAME_LEN).checked_add(len as usize) else {
            return;
        };
        if end > bytes.len() {
            return;
        }
        let kind = bytes[at];
        seal(&mut bytes[at..end], kind);
        at = end;
    }
}
