//! Reading a whole hash map in a few system calls (`BPF_MAP_LOOKUP_BATCH`, Linux 5.6+)
//! instead of two a key: a port scan's 65,536 groups, read four times a second, would
//! otherwise take half a million system calls a second.
use std::{io, os::fd::AsRawFd, os::fd::BorrowedFd};

/// `BPF_MAP_LOOKUP_BATCH` in `enum bpf_cmd`.
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;

/// Keys asked for in one call.
const BATCH: u32 = 4096;

/// The `batch` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Calls `each` with every key of the hash map `fd` and its values: one for a plain hash
/// map (`cpus` 1), one per possible CPU for a per-CPU one. `K` and `V` must be the map's
/// key and value types, plain `#[repr(C)]` integers with `V`'s size a multiple of 8 (the
/// kernel's per-CPU stride).
pub fn entries<K: Copy + Default, V: Copy + Default>(
    fd: BorrowedFd<'_>,
    cpus: usize,
    mut each: impl FnMut(K, &[V]),
) -> io::Result<()> {
    assert!(
        size_of::<V>().is_multiple_of(8),
        "per-CPU values are 8-byte strided"
    );
    let mut count = BATCH;
    let mut keys = vec![K::default(); count as usize];
    let mut values = vec![V::default(); count as usize * cpus];
    // The htab's batch token is a bucket index (u32); the kernel writes where to go on.
    let (mut token_in, mut token_out) = (0u32, 0u32);
    let mut first = true;
    loop {
        let mut attr = BatchAttr {
            in_batch: if first { 0 } else { &raw const token_in as u64 },
            out_batch: &raw mut token_out as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count,
            map_fd: fd.as_raw_fd() as u32,
            ..BatchAttr::default()
        };
        // SAFETY: the attribute points to buffers of `count` keys and `count * cpus`
        // values of the map's own types, which the kernel fills at most; the token is a
        // u32 as the hash map's batch token is.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_LOOKUP_BATCH,
                &raw mut attr,
                size_of::<BatchAttr>() as libc::c_uint,
            )
        };
        let err = (rc < 0).then(io::Error::last_os_error);
        match err.as_ref().and_then(|e| e.raw_os_error()) {
            // A bucket holds more keys than asked for: ask for more.
            Some(libc::ENOSPC) if attr.count == 0 => {
                count *= 2;
                keys.resize(count as usize, K::default());
                values.resize(count as usize * cpus, V::default());
                continue;
            }
            Some(libc::ENOENT) | None => {}
            Some(_) => return Err(err.unwrap_or_else(io::Error::last_os_error)),
        }
        let got = attr.count.min(count) as usize;
        for (i, key) in keys[..got].iter().enumerate() {
            each(*key, &values[i * cpus..(i + 1) * cpus]);
        }
        if err.is_some() {
            // ENOENT: that was the last of them.
            return Ok(());
        }
        token_in = token_out;
        first = false;
    }
}
