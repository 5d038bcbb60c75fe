//! Cut, damaged and hostile recordings: never a panic, never a huge allocation; a
//! truncated status or an error that names the offset.
use super::*;

/// Offsets where each block starts, from the frames themselves.
fn block_starts(bytes: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut at = f::PREAMBLE_LEN;
    while at + f::FRAME_LEN <= bytes.len() {
        starts.push(at);
        let len = u32::from_le_bytes(bytes[at + 1..at + 5].try_into().unwrap());
        at += f::FRAME_LEN + len as usize;
    }
    starts
}

fn block(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0; f::FRAME_LEN];
    b.extend_from_slice(payload);
    f::seal(&mut b, kind);
    b
}

/// A recording with only a header, then `blocks`; and where the first of them starts.
fn with_blocks(blocks: &[Vec<u8>]) -> (Vec<u8>, u64) {
    let mut bytes = Writer::new(Vec::new(), &header())
        .unwrap()
        .get_ref()
        .clone();
    let start = bytes.len() as u64;
    bytes.extend(blocks.concat());
    (bytes, start)
}

fn malformed(bytes: &[u8]) -> (u64, &'static str) {
    match read_all(bytes) {
        Err(ReadError::Malformed { offset, what }) => (offset, what),
        other => panic!("expected a malformed recording, got {other:?}"),
    }
}

#[test]
fn a_cut_at_every_byte_reads_every_complete_block() {
    let (bytes, expected, flushes) = small_recording();
    let mut ends: Vec<usize> = block_starts(&bytes).into_iter().skip(1).collect();
    ends.push(bytes.len());
    assert_eq!(
        ends.len(),
        7,
        "header, names, events, counters, names, events, end"
    );
    for cut in 0..bytes.len() {
        match read_all(&bytes[..cut]) {
            Ok((h, _, items, status)) => {
                let at = ends.iter().rev().find(|end| **end <= cut).unwrap();
                assert_eq!(
                    status,
                    Status::Truncated {
                        at_offset: *at as u64
                    },
                    "cut {cut}"
                );
                let (_, n) = flushes.iter().rev().find(|(end, _)| *end <= cut).unwrap();
                assert_eq!(items, expected[..*n], "cut {cut}");
                assert_eq!(h, header());
            }
            Err(ReadError::NoHeader { .. }) => assert!(cut < ends[0], "cut {cut}"),
            Err(e) => panic!("cut {cut}: {e}"),
        }
    }
}

#[test]
fn a_damaged_byte_anywhere_is_an_error_naming_its_block() {
    let (bytes, _, _) = small_recording();
    let starts = block_starts(&bytes);
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x20;
        let err = read_all(&bad).expect_err("a damaged recording reads as an error");
        match starts.iter().rev().find(|s| **s <= i) {
            Some(start) => assert!(
                matches!(err, ReadError::Checksum { offset } if offset == *start as u64),
                "byte {i}: {err}"
            ),
            None => assert!(
                matches!(
                    err,
                    ReadError::NotARecording | ReadError::NewerVersion { .. }
                ),
                "byte {i}: {err}"
            ),
        }
    }
}

#[test]
fn wrong_magic_and_versions_are_named() {
    let (bytes, _, _) = small_recording();
    assert!(matches!(
        read_all(b"GIF89a, certainly not a recording"),
        Err(ReadError::NotARecording)
    ));
    assert!(matches!(read_all(b"DROP"), Err(ReadError::NoHeader { .. })));
    let mut newer = bytes.clone();
    newer[8] = 4;
    let err = read_all(&newer).unwrap_err();
    assert!(matches!(
        err,
        ReadError::NewerVersion {
            found: 4,
            supported: 3
        }
    ));
    assert!(err.to_string().contains("newer droptrace"), "{err}");
    let mut zero = bytes;
    zero[8] = 0;
    assert!(matches!(read_all(&zero), Err(ReadError::BadVersion(0))));
}

#[test]
fn hostile_lengths_are_refused_before_reading() {
    let mut frame = block(f::EVENTS, &[]);
    frame[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
    let check = f::frame_check(&frame[..9]);
    frame[9..11].copy_from_slice(&check.to_le_bytes());
    let (bytes, start) = with_blocks(&[frame]);
    assert!(matches!(
        read_all(&bytes),
        Err(ReadError::BlockTooLarge { offset, len }) if offset == start && len == u64::from(u32::MAX)
    ));
}

#[test]
fn hostile_counts_in_checksummed_blocks_are_errors() {
    let payload_at = |start: u64| start + f::FRAME_LEN as u64;

    // Counters claiming 2^64-1 lost groups.
    let mut counters = vec![0; 8];
    put_varint(&mut counters, u64::MAX);
    let (bytes, start) = with_blocks(&[block(f::COUNTERS, &counters)]);
    assert_eq!(
        malformed(&bytes),
        (payload_at(start) + 8, "impossible count")
    );

    // A name a terabyte long (after the namespace's inode 1 and cookie 7).
    let mut names = vec![f::NAME_NAMESPACE, 1, 7];
    put_varint(&mut names, 1 << 40);
    let (bytes, start) = with_blocks(&[block(f::NAMES, &names)]);
    assert_eq!(
        malformed(&bytes),
        (payload_at(start) + 3, "string too long")
    );

    // A name that is not UTF-8.
    let names = [f::NAME_NAMESPACE, 1, 7, 2, 0xff, 0xfe];
    let (bytes, start) = with_blocks(&[block(f::NAMES, &names)]);
    assert_eq!(
        malformed(&bytes),
        (payload_at(start) + 3, "string not UTF-8")
    );

    // A cookie that is not a varint (ten bytes of continuation).
    let names = [vec![f::NAME_NAMESPACE, 1], vec![0xff; 10]].concat();
    let (bytes, start) = with_blocks(&[block(f::NAMES, &names)]);
    assert_eq!(malformed(&bytes), (payload_at(start) + 2, "bad varint"));

    // A header with a million reasons in a few bytes.
    let mut h = Vec::new();
    f::encode_header(&mut h, &Header::default()).unwrap();
    h.pop(); // the reason count, 0
    put_varint(&mut h, 1_000_000);
    let mut bytes = f::MAGIC.to_vec();
    bytes.extend(f::FORMAT_VERSION.to_le_bytes());
    bytes.extend(block(f::HEADER, &h));
    let at = (f::PREAMBLE_LEN + f::FRAME_LEN + h.len() - 3) as u64;
    assert_eq!(malformed(&bytes), (at, "impossible count"));
}

#[test]
fn undefined_references_are_errors() {
    // Event flags, timestamp delta, then context 5 of none.
    let (bytes, start) = with_blocks(&[block(f::EVENTS, &[0, 2, 5])]);
    let payload = start + f::FRAME_LEN as u64;
    assert_eq!(malformed(&bytes), (payload + 2, "undefined context"));
    // The same context as a previous event that does not exist.
    let (bytes, _) = with_blocks(&[block(f::EVENTS, &[f::EV_SAME_CONTEXT, 2])]);
    assert_eq!(malformed(&bytes), (payload + 2, "no previous event"));
    // The previous event's addresses, when no event had any.
    let mut ev = vec![f::EV_ADDRS | f::EV_SAME_ADDRS | f::EV_SAME_LEN, 2, 0];
    f::put_context(
        &mut ev,
        &f::Context {
            location: 1,
            reason: 2,
            netns: crate::pipeline::event::Netns::inode(3),
            ifindex: 4,
            cpu: 0,
            ethertype: ETH_P_IP,
            ip_proto: Some(17),
        },
    );
    let (bytes, _) = with_blocks(&[block(f::EVENTS, &ev)]);
    assert_eq!(malformed(&bytes).1, "no previous event");
    ev[0] = f::EV_ADDRS | f::EV_SAME_ADDRS;
    ev.push(60);
    let (bytes, _) = with_blocks(&[block(f::EVENTS, &ev)]);
    assert_eq!(malformed(&bytes).1, "no previous address");
    // An address index beyond the table.
    ev[0] = f::EV_ADDRS;
    ev.extend([0, 4, 10, 0, 0, 1, 3]);
    let (bytes, _) = with_blocks(&[block(f::EVENTS, &ev)]);
    assert_eq!(
        malformed(&bytes),
        (payload + ev.len() as u64 - 1, "undefined address")
    );
}

#[test]
fn misplaced_blocks_are_errors() {
    let (bytes, start) = with_blocks(&[block(9, &[])]);
    assert!(matches!(
        read_all(&bytes),
        Err(ReadError::UnknownBlock { offset, kind: 9 }) if offset == start
    ));
    let mut h = Vec::new();
    f::encode_header(&mut h, &header()).unwrap();
    let (bytes, start) = with_blocks(&[block(f::HEADER, &h)]);
    assert_eq!(
        malformed(&bytes),
        (start + f::FRAME_LEN as u64, "a second header")
    );
    let (bytes, start) = with_blocks(&[block(f::END, &[1])]);
    let what = "an event count that differs from the events";
    assert_eq!(malformed(&bytes), (start + f::FRAME_LEN as u64, what));
    let (mut bytes, _) = with_blocks(&[block(f::END, &[0])]);
    let end = bytes.len() as u64;
    assert_eq!(read_all(&bytes).unwrap().3, Status::Complete);
    bytes.push(0);
    assert_eq!(malformed(&bytes), (end, "data after the end block"));
    let (bytes, start) = with_blocks(&[block(f::END, &[0, 0])]);
    let what = "unexpected bytes at the end of a block";
    assert_eq!(malformed(&bytes), (start + f::FRAME_LEN as u64 + 1, what));
}

#[test]
fn errors_stop_the_reader() {
    let (bytes, _) = with_blocks(&[block(f::EVENTS, &[0, 2, 5]), block(f::END, &[0])]);
    let mut reader = Reader::new(bytes.as_slice()).unwrap();
    assert!(reader.next_item().is_err());
    assert!(reader.next_item().unwrap().is_none());
    assert_eq!(reader.status(), Status::Reading);
}
