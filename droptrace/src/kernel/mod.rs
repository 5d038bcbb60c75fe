//! Readers of what the running kernel tells about itself: BTF, tracefs formats, kallsyms,
//! debug info, and the tracepoint layout they add up to. All parsers take bytes or text,
//! so they are tested on captured fixtures; reading the files is `probe::discover`'s job.
pub mod btf;
pub mod debuginfo;
pub mod ethtool;
pub mod kallsyms;
pub mod layout;
pub mod netdev;
pub mod netlink;
pub mod reasons;
pub mod slots;
pub mod sockdiag;
pub mod tcp;
pub mod tracefs;
pub mod xdp;
pub mod xfrm;

/// A reply captured from the kernel, in `droptrace/fixtures/netlink`.
#[cfg(test)]
pub(crate) fn netlink_fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/fixtures/netlink/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}
