//! A test fixture, not part of droptrace: an XDP program that drops every UDP packet to
//! port 6001, for the diagnose integration tests' `xdp` case.
#![no_std]
#![no_main]

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

const ETH_HLEN: usize = 14;

#[xdp]
pub fn drop_udp_6001(ctx: XdpContext) -> u32 {
    if is_udp_6001(&ctx) {
        xdp_action::XDP_DROP
    } else {
        xdp_action::XDP_PASS
    }
}

#[inline(always)]
fn is_udp_6001(ctx: &XdpContext) -> bool {
    let (start, end) = (ctx.data(), ctx.data_end());
    // Ethernet + an IPv4 header without options + the UDP ports.
    if start + ETH_HLEN + 20 + 4 > end {
        return false;
    }
    let p = start as *const u8;
    // SAFETY: every byte read (up to ETH_HLEN + 23) lies in [data, data_end), checked
    // above; the verifier rejects the program without that check.
    unsafe {
        let ethertype = u16::from_be_bytes([*p.add(12), *p.add(13)]);
        let vihl = *p.add(ETH_HLEN);
        let proto = *p.add(ETH_HLEN + 9);
        let dport = u16::from_be_bytes([*p.add(ETH_HLEN + 22), *p.add(ETH_HLEN + 23)]);
        ethertype == 0x0800 && vihl == 0x45 && proto == 17 && dport == 6001
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
