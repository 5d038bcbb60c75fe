//! A test fixture, not part of droptrace: an XDP program that makes XDP exceptions, for
//! the XDP integration tests. UDP to port 6002 gets `XDP_ABORTED` (an `xdp:xdp_exception`);
//! UDP to port 6003 is redirected to an interface that does not exist (a failed redirect,
//! `xdp:xdp_redirect_err`); everything else passes.
#![no_std]
#![no_main]

use aya_ebpf::{bindings::xdp_action, helpers::generated, macros::xdp, programs::XdpContext};

const ETH_HLEN: usize = 14;
/// An ifindex no interface has: the redirect fails when the kernel looks it up.
const NO_SUCH_IFINDEX: u32 = 0x7fff_fff0;

#[xdp]
pub fn xdp_exc_udp(ctx: XdpContext) -> u32 {
    match udp_dport(&ctx) {
        Some(6002) => xdp_action::XDP_ABORTED,
        // SAFETY: a helper taking plain integers.
        Some(6003) => unsafe { generated::bpf_redirect(NO_SUCH_IFINDEX, 0) as u32 },
        _ => xdp_action::XDP_PASS,
    }
}

/// The destination port of an IPv4 UDP datagram (no IP options).
#[inline(always)]
fn udp_dport(ctx: &XdpContext) -> Option<u16> {
    let (start, end) = (ctx.data(), ctx.data_end());
    if start + ETH_HLEN + 20 + 4 > end {
        return None;
    }
    let p = start as *const u8;
    // SAFETY: every byte read (up to ETH_HLEN + 23) lies in [data, data_end), checked
    // above; the verifier rejects the program without that check.
    unsafe {
        let ethertype = u16::from_be_bytes([*p.add(12), *p.add(13)]);
        let vihl = *p.add(ETH_HLEN);
        let proto = *p.add(ETH_HLEN + 9);
        let dport = u16::from_be_bytes([*p.add(ETH_HLEN + 22), *p.add(ETH_HLEN + 23)]);
        (ethertype == 0x0800 && vihl == 0x45 && proto == 17).then_some(dport)
    }
}

// SAFETY: a unique symbol in the `license` section, where the loader looks for it.
#[unsafe(no_mangle)]
#[unsafe(link_section = "license")]
pub static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
