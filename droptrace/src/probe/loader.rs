//! What every program droptrace loads shares: the stand-in BTF aya is given instead of the
//! kernel's, and the kernel's count of a program's missed runs.
use std::os::fd::{AsRawFd, BorrowedFd};

use super::Error;

/// aya's `BtfTracePoint::load` asks its BTF for one thing only: the id of the tracepoint's
/// typedef. The running kernel's BTF (5.5 MB) is parsed once already, by
/// `kernel::btf`; instead of aya parsing it again, it gets a stand-in whose only named
/// type is that typedef, at the id the kernel gives it (placeholder pointers fill the ids
/// before it: 12 bytes each).
pub fn stand_in_btf(typedef: &str, id: u32) -> Result<aya::Btf, Error> {
    const KIND_PTR: u32 = 2;
    const KIND_TYPEDEF: u32 = 8;
    const HEADER_LEN: u32 = 24;
    if id == 0 || id > 1 << 24 {
        return Err(Error::Btf(format!(
            "type id {id} of {typedef} is out of range"
        )));
    }
    let mut types = Vec::with_capacity(id as usize * 12);
    let mut push_type = |name_off: u32, kind: u32| {
        for word in [name_off, kind << 24, 0] {
            types.extend_from_slice(&word.to_le_bytes());
        }
    };
    for _ in 1..id {
        push_type(0, KIND_PTR);
    }
    push_type(1, KIND_TYPEDEF);
    let mut strings = vec![0];
    strings.extend_from_slice(typedef.as_bytes());
    strings.push(0);
    let type_len = u32::try_from(types.len()).map_err(|_| Error::Btf("too many types".into()))?;
    let mut blob = Vec::with_capacity(types.len() + strings.len() + HEADER_LEN as usize);
    blob.extend_from_slice(&0xeb9f_u16.to_le_bytes());
    blob.extend_from_slice(&[1, 0]); // version, flags
    for word in [HEADER_LEN, 0, type_len, type_len, strings.len() as u32] {
        blob.extend_from_slice(&word.to_le_bytes());
    }
    blob.extend_from_slice(&types);
    blob.extend_from_slice(&strings);
    aya::Btf::parse(&blob, aya::Endianness::Little).map_err(|e| Error::Btf(e.to_string()))
}

/// Offset of `recursion_misses` in `struct bpf_prog_info` (UAPI: fixed once added).
const RECURSION_MISSES_OFFSET: usize = 208;

/// `bpf_prog_info.recursion_misses` (Linux 5.12+; stays 0 on older kernels): times the kernel
/// skipped the program because it was already running on that CPU.
pub fn recursion_misses(fd: BorrowedFd<'_>) -> std::io::Result<u64> {
    const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
    #[repr(C)]
    struct InfoAttr {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    let mut info = [0u64; 64];
    let mut attr = InfoAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: size_of_val(&info) as u32,
        info: info.as_mut_ptr() as u64,
    };
    // SAFETY: attr points at a buffer of info_len bytes that outlives the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET_INFO_BY_FD,
            &raw mut attr,
            size_of::<InfoAttr>() as u32,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if (attr.info_len as usize) < RECURSION_MISSES_OFFSET + 8 {
        return Ok(0);
    }
    Ok(info[RECURSION_MISSES_OFFSET / 8])
}

#[cfg(test)]
mod tests {
    use crate::probe::attach::TRACEPOINT_TYPEDEF;

    #[test]
    fn the_stand_in_btf_names_the_typedef_at_the_kernels_id() {
        use crate::kernel::btf::tests::{vmlinux, vmlinux_bytes};
        // Against aya's own parse of the captured 6.18 vmlinux BTF.
        let data = vmlinux_bytes();
        let id = vmlinux().typedef_id(TRACEPOINT_TYPEDEF).unwrap();
        let stand_in = super::stand_in_btf(TRACEPOINT_TYPEDEF, id).unwrap();
        let full = aya::Btf::parse(&data, aya::Endianness::Little).unwrap();
        for aya_btf in [&stand_in, &full] {
            assert_eq!(
                aya_btf
                    .id_by_type_name_kind(TRACEPOINT_TYPEDEF, aya_obj::btf::BtfKind::Typedef)
                    .unwrap(),
                id
            );
        }
        assert!(super::stand_in_btf(TRACEPOINT_TYPEDEF, 0).is_err());
    }

    /// `cargo test --release -p droptrace --lib loader::tests::btf_for_aya_time -- --ignored --nocapture`
    #[test]
    #[ignore = "reads the running kernel's BTF and prints timings"]
    fn btf_for_aya_time() {
        let data = std::fs::read("/sys/kernel/btf/vmlinux").unwrap();
        let ours = crate::kernel::btf::Btf::parse(&data).unwrap();
        let id = ours.typedef_id(TRACEPOINT_TYPEDEF).unwrap();
        let best = |f: &dyn Fn()| {
            (0..5)
                .map(|_| {
                    let start = std::time::Instant::now();
                    f();
                    start.elapsed()
                })
                .min()
                .unwrap()
        };
        let aya = best(&|| {
            aya::Btf::parse(&data, aya::Endianness::Little).unwrap();
        });
        let stand_in = best(&|| {
            super::stand_in_btf(TRACEPOINT_TYPEDEF, id).unwrap();
        });
        eprintln!(
            "typedef id {id}: aya parsing the vmlinux BTF {aya:?}, the stand-in {stand_in:?}"
        );
    }

    #[test]
    fn recursion_misses_sits_where_it_is_read() {
        let off = crate::kernel::btf::tests::vmlinux()
            .member_offset("bpf_prog_info", &["recursion_misses"])
            .unwrap();
        assert_eq!(off as usize, super::RECURSION_MISSES_OFFSET);
    }
}
