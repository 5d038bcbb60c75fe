//! Cut, damaged and hostile recordings: never a panic, never a huge allocation; what is
//! intact around a damaged block is read, and what was skipped is said. Only a damaged
//! preamble or header is an error.
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

/// Items, status and what was skipped.
fn read_around(bytes: &[u8]) -> (Vec<Owned>, Status, Damage) {
    let mut reader = Reader::new(bytes).expect("a readable header");
    let mut items = Vec::new();
    let status = reader
        .for_each(|item| {
            items.push(match item {
                Item::Drop(d, b) => Owned::Drop(d, b.to_vec()),
                Item::Counters(c) => Owned::Counters(c),
                Item::Tcp(ev) => Owned::Tcp(ev),
            })
        })
        .expect("damage is read around, not an error");
    (items, status, reader.damage())
}

/// Where the one skipped block starts, and the bytes skipped.
fn skipped(bytes: &[u8]) -> (u64, u64) {
    let (_, _, damage) = read_around(bytes);
    assert_eq!(damage.blocks, 1, "{damage:?}");
    (damage.first_at.unwrap(), damage.bytes)
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
fn a_damaged_byte_anywhere_skips_its_block_and_the_rest_is_read() {
    let (bytes, expected, _) = small_recording();
    let starts = block_starts(&bytes);
    let mut ends: Vec<usize> = starts.iter().skip(1).copied().collect();
    ends.push(bytes.len());
    let items_to = |cut: usize| read_all(&bytes[..cut]).unwrap().2.len();
    let last = starts.len() - 1;
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x20;
        let Some(k) = starts.iter().rposition(|s| *s <= i) else {
            let err = read_all(&bad).expect_err("a damaged preamble is an error");
            assert!(
                matches!(
                    err,
                    ReadError::NotARecording | ReadError::NewerVersion { .. }
                ),
                "byte {i}: {err}"
            );
            continue;
        };
        if k == 0 {
            let err = read_all(&bad).expect_err("a damaged header is an error");
            assert!(
                matches!(err, ReadError::Checksum { offset } if offset == starts[0] as u64),
                "byte {i}: {err}"
            );
            continue;
        }
        let (items, status, damage) = read_around(&bad);
        // Everything but the damaged block's items, in order.
        let (before, through) = (items_to(starts[k]), items_to(ends[k]));
        let mut want = expected[..before].to_vec();
        want.extend_from_slice(&expected[through..]);
        assert_eq!(items, want, "byte {i} in block {k}");
        let lost = (through - before) as u64;
        assert_eq!(
            (damage.blocks, damage.first_at, damage.bytes),
            (1, Some(starts[k] as u64), (ends[k] - starts[k]) as u64),
            "byte {i} in block {k}"
        );
        if k == last {
            // The end block itself: the file reads as cut, where its frame was damaged
            // (nothing after it can be trusted) or after its damaged payload.
            let cut = if i < starts[k] + f::FRAME_LEN {
                starts[k]
            } else {
                ends[k]
            };
            assert_eq!(
                status,
                Status::Truncated {
                    at_offset: cut as u64
                },
                "byte {i}"
            );
            assert_eq!(damage.events, None);
        } else {
            assert_eq!(status, Status::Complete, "byte {i}");
            assert_eq!(
                damage.events,
                Some(lost - counters_in(&expected[before..through]))
            );
        }
    }
}

fn counters_in(items: &[Owned]) -> u64 {
    items
        .iter()
        .filter(|i| matches!(i, Owned::Counters(_)))
        .count() as u64
}

#[test]
fn a_run_of_garbage_between_blocks_is_skipped_whole() {
    let (bytes, expected, _) = small_recording();
    let starts = block_starts(&bytes);
    // 100 kB of noise (more than is held at once while looking) before the third block.
    let mut noisy = bytes[..starts[2]].to_vec();
    let mut x: u32 = 12345;
    noisy.extend((0..100_000).map(|_| {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        (x >> 16) as u8
    }));
    noisy.extend_from_slice(&bytes[starts[2]..]);
    let (items, status, damage) = read_around(&noisy);
    assert_eq!((items, status), (expected, Status::Complete));
    assert_eq!(
        (damage.blocks, damage.bytes, damage.first_at, damage.events),
        (1, 100_000, Some(starts[2] as u64), Some(0))
    );
    assert!(
        damage
            .describe()
            .starts_with("1 damaged block skipped (100,000 bytes from byte"),
        "{}",
        damage.describe()
    );
}

#[test]
fn damage_is_said_with_what_was_lost() {
    let d = Damage {
        blocks: 2,
        bytes: 4120,
        first_at: Some(812),
        events: Some(37),
    };
    assert_eq!(
        d.describe(),
        "2 damaged blocks skipped (4,120 bytes from byte 812; 37 events, by the end block's count)"
    );
    let d = Damage {
        events: None,
        blocks: 1,
        ..d
    };
    assert!(
        d.describe().contains("unknown (no end block)"),
        "{}",
        d.describe()
    );
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
    newer[8] = 6;
    let err = read_all(&newer).unwrap_err();
    assert!(matches!(
        err,
        ReadError::NewerVersion {
            found: 6,
            supported: 5
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
    let (bytes, start) = with_blocks(&[frame.clone()]);
    // Skipped as damage, with nothing allocated for it: the file is cut there.
    let (items, status, damage) = read_around(&bytes);
    assert!(items.is_empty());
    assert_eq!(status, Status::Truncated { at_offset: start });
    assert_eq!(
        (damage.first_at, damage.bytes),
        (Some(start), f::FRAME_LEN as u64)
    );
    // Right after the header there is nothing to read around: an error.
    let mut bare = f::MAGIC.to_vec();
    bare.extend(f::FORMAT_VERSION.to_le_bytes());
    bare.extend(&frame);
    assert!(matches!(
        read_all(&bare),
        Err(ReadError::BlockTooLarge { offset, len }) if offset == f::PREAMBLE_LEN as u64 && len == u64::from(u32::MAX)
    ));
}

#[test]
fn hostile_counts_in_checksummed_blocks_are_errors() {
    // Counters claiming 2^64-1 lost groups.
    let mut counters = vec![0; 8];
    put_varint(&mut counters, u64::MAX);
    let block_len = |payload: &[u8]| (f::FRAME_LEN + payload.len()) as u64;
    let (bytes, start) = with_blocks(&[block(f::COUNTERS, &counters)]);
    assert_eq!(skipped(&bytes), (start, block_len(&counters)));

    // A name a terabyte long (after the namespace's inode 1 and cookie 7).
    let mut names = vec![f::NAME_NAMESPACE, 1, 7];
    put_varint(&mut names, 1 << 40);
    let (bytes, start) = with_blocks(&[block(f::NAMES, &names)]);
    assert_eq!(skipped(&bytes), (start, block_len(&names)));

    // A name that is not UTF-8.
    let names = [f::NAME_NAMESPACE, 1, 7, 2, 0xff, 0xfe];
    let (bytes, start) = with_blocks(&[block(f::NAMES, &names)]);
    assert_eq!(skipped(&bytes), (start, block_len(&names)));

    // A cookie that is not a varint (ten bytes of continuation).
    let names = [vec![f::NAME_NAMESPACE, 1], vec![0xff; 10]].concat();
    let (bytes, start) = with_blocks(&[block(f::NAMES, &names)]);
    assert_eq!(skipped(&bytes), (start, block_len(&names)));

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
fn undefined_references_skip_the_rest_of_their_block() {
    // Event flags, timestamp delta, then context 5 of none.
    let (bytes, start) = with_blocks(&[block(f::EVENTS, &[0, 2, 5])]);
    assert_eq!(skipped(&bytes), (start, (f::FRAME_LEN + 3) as u64));
    // The same context as a previous event that does not exist.
    let (bytes, _) = with_blocks(&[block(f::EVENTS, &[f::EV_SAME_CONTEXT, 2])]);
    assert_eq!(read_around(&bytes).2.blocks, 1);
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
    assert_eq!(read_around(&bytes).2.blocks, 1);
    ev[0] = f::EV_ADDRS | f::EV_SAME_ADDRS;
    ev.push(60);
    let (bytes, _) = with_blocks(&[block(f::EVENTS, &ev)]);
    assert_eq!(read_around(&bytes).2.blocks, 1);
    // A good event, then an address index beyond the table: the first is read, the rest
    // of the block is skipped.
    let mut good = vec![0, 2, 0];
    f::put_context(
        &mut good,
        &f::Context {
            location: 1,
            reason: 2,
            netns: 3.into(),
            ifindex: 4,
            cpu: 0,
            ethertype: ETH_P_IP,
            ip_proto: Some(17),
        },
    );
    good.push(60);
    let good_len = good.len();
    good.extend([f::EV_ADDRS | f::EV_SAME_CONTEXT, 2, 60, 7]);
    let (bytes, start) = with_blocks(&[block(f::EVENTS, &good), block(f::END, &[2])]);
    let (items, status, damage) = read_around(&bytes);
    assert_eq!((items.len(), status), (1, Status::Complete));
    assert_eq!(
        (damage.first_at, damage.bytes, damage.events),
        (Some(start), (good.len() - good_len) as u64, Some(1))
    );
}

#[test]
fn misplaced_blocks_are_skipped() {
    let (bytes, start) = with_blocks(&[block(9, &[])]);
    assert_eq!(skipped(&bytes), (start, f::FRAME_LEN as u64));
    let mut h = Vec::new();
    f::encode_header(&mut h, &header()).unwrap();
    let (bytes, start) = with_blocks(&[block(f::HEADER, &h), block(f::END, &[0])]);
    assert_eq!(skipped(&bytes), (start, (f::FRAME_LEN + h.len()) as u64));
    assert_eq!(read_around(&bytes).1, Status::Complete);
    // Without any damage, an end block that counts other events than there are is wrong.
    let (bytes, start) = with_blocks(&[block(f::END, &[1])]);
    let what = "an event count that differs from the events";
    assert_eq!(malformed(&bytes), (start + f::FRAME_LEN as u64, what));
    let (mut bytes, _) = with_blocks(&[block(f::END, &[0])]);
    let end = bytes.len() as u64;
    assert_eq!(read_all(&bytes).unwrap().3, Status::Complete);
    bytes.extend([0, 1, 2]);
    let (_, status, damage) = read_around(&bytes);
    assert_eq!(status, Status::Complete);
    assert_eq!((damage.first_at, damage.bytes), (Some(end), 3));
    let (bytes, start) = with_blocks(&[block(f::END, &[0, 0])]);
    let (_, status, damage) = read_around(&bytes);
    assert_eq!(
        status,
        Status::Truncated {
            at_offset: start + f::FRAME_LEN as u64 + 2
        }
    );
    assert_eq!(damage.first_at, Some(start));
}

/// Fails with an I/O error once `ok` bytes are read.
struct FailsAfter<'a> {
    ok: &'a [u8],
}

impl std::io::Read for FailsAfter<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.ok.is_empty() {
            return Err(std::io::Error::other("disk gone"));
        }
        let n = buf.len().min(self.ok.len());
        buf[..n].copy_from_slice(&self.ok[..n]);
        self.ok = &self.ok[n..];
        Ok(n)
    }
}

#[test]
fn errors_stop_the_reader() {
    let (bytes, _) = with_blocks(&[]);
    let mut reader = Reader::new(FailsAfter { ok: &bytes }).unwrap();
    assert!(matches!(reader.next_item(), Err(ReadError::Io(_))));
    assert!(reader.next_item().unwrap().is_none());
    assert_eq!(reader.status(), Status::Reading);
}

#[test]
fn random_damage_reads_what_is_intact_and_never_more() {
    let (bytes, expected, _) = small_recording();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..3_000 {
        let mut bad = bytes.clone();
        for _ in 0..1 + next() % 8 {
            let i = f::PREAMBLE_LEN + 60 + (next() as usize) % (bytes.len() - f::PREAMBLE_LEN - 60);
            bad[i] = next() as u8;
        }
        if round % 3 == 0 {
            let cut = (next() as usize) % bad.len();
            bad.truncate(cut.max(f::PREAMBLE_LEN));
        }
        let Ok(mut reader) = Reader::new(bad.as_slice()) else {
            continue;
        };
        let mut drops = 0;
        let _ = reader.for_each(|item| drops += usize::from(matches!(item, Item::Drop(..))));
        let all = expected
            .iter()
            .filter(|i| matches!(i, Owned::Drop(..)))
            .count();
        assert!(drops <= all, "round {round}: {drops} drops of {all}");
        assert!(reader.damage().bytes <= bad.len() as u64, "round {round}");
    }
}

/// Versions 1 and 2 stored the skb's length, which depends on the drop site: the packet's
/// own length is read from its IP header when the bytes were kept.
#[test]
fn older_versions_lengths_become_the_packets_own() {
    let context = f::Context {
        location: 1,
        reason: 2,
        netns: 3.into(),
        ifindex: 4,
        cpu: 0,
        ethertype: ETH_P_IP,
        ip_proto: Some(17),
    };
    let event = |ev: &mut Vec<u8>, skb_len: u64, new: bool, bytes: &[u8]| {
        let flags = f::EV_ADDRS | f::EV_PORTS;
        ev.push(if bytes.is_empty() {
            flags
        } else {
            flags | f::EV_BYTES
        });
        put_varint(ev, f::zigzag(1000));
        if new {
            put_varint(ev, 0);
            // Version 2's context: the namespace's inode alone, no cookie after it.
            let mut with_cookie = Vec::new();
            f::put_context(&mut with_cookie, &context);
            ev.extend_from_slice(&with_cookie[..8]);
            put_varint(ev, u64::from(context.reason));
            put_varint(ev, u64::from(context.netns.inode));
            for v in [context.ifindex, context.cpu, u32::from(context.ethertype)] {
                put_varint(ev, u64::from(v));
            }
            put_varint(ev, context.ip_proto.map_or(0, |p| u64::from(p) + 1));
            put_varint(ev, skb_len);
            put_varint(ev, 0);
            f::put_addr(ev, "10.0.0.1".parse().unwrap());
            put_varint(ev, 1);
            f::put_addr(ev, "10.0.0.2".parse().unwrap());
        } else {
            put_varint(ev, 0);
            put_varint(ev, skb_len);
            put_varint(ev, 0);
            put_varint(ev, 1);
        }
        ev.extend(40_000u16.to_le_bytes());
        ev.extend(5001u16.to_le_bytes());
        if !bytes.is_empty() {
            put_varint(ev, bytes.len() as u64);
            ev.extend_from_slice(bytes);
        }
    };
    // A 1028-byte IP packet: on transmit (Ethernet header counted), in UDP (IP header
    // pulled), and once without its bytes.
    let ip = [
        0x45, 0, 0x04, 0x04, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1,
    ];
    let mut ev = Vec::new();
    event(&mut ev, 1042, true, &ip);
    event(&mut ev, 1008, false, &ip);
    event(&mut ev, 1008, false, &[]);
    let bytes = older_file(2, &[(f::EVENTS, ev), (f::END, vec![3])]);
    let (_, _, items, status) = read_all(&bytes).unwrap();
    assert_eq!(status, Status::Complete);
    let lengths: Vec<(u32, u8)> = items
        .iter()
        .map(|i| match i {
            Owned::Drop(d, _) => (d.len, d.l2_len),
            other => panic!("only drops here: {other:?}"),
        })
        .collect();
    assert_eq!(lengths, [(1028, 14), (1028, 0), (1008, 0)]);
}

#[test]
fn lengths_and_layer_2_bytes_go_through_a_recording() {
    let mut w = Writer::new(Vec::new(), &header()).unwrap();
    let mut d = drop_at(1, udp4("10.0.0.1", 1, 2));
    (d.len, d.l2_len) = (1028, 14);
    w.write_drop(&d, &[]).unwrap();
    let mut same = d;
    same.timestamp_ns = 2;
    w.write_drop(&same, &[]).unwrap();
    let mut pulled = same;
    (pulled.timestamp_ns, pulled.l2_len) = (3, 0);
    w.write_drop(&pulled, &[]).unwrap();
    let (_, _, items, _) = read_all(&w.finish().unwrap()).unwrap();
    assert_eq!(
        items,
        [
            Owned::Drop(d, vec![]),
            Owned::Drop(same, vec![]),
            Owned::Drop(pulled, vec![])
        ]
    );
}
