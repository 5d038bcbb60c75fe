//! A test fixture, not part of droptrace: a tc classifier (direct action) that drops every
//! TCP SYN, like a sched_cls program some network component left behind. The integration
//! tests attach it inside their namespaces to check that `droptrace diagnose` finds it.
#![no_std]
#![no_main]

use aya_ebpf::{macros::classifier, programs::TcContext};

const TC_ACT_OK: i32 = 0;
const TC_ACT_SHOT: i32 = 2;
const ETH_HLEN: usize = 14;

#[classifier]
pub fn drop_syn(ctx: TcContext) -> i32 {
    if is_syn(&ctx) {
        TC_ACT_SHOT
    } else {
        TC_ACT_OK
    }
}

#[inline(always)]
fn is_syn(ctx: &TcContext) -> bool {
    let Ok(ethertype) = ctx.load::<[u8; 2]>(12) else {
        return false;
    };
    let tcp = match u16::from_be_bytes(ethertype) {
        0x0800 => {
            let Ok([vihl]) = ctx.load::<[u8; 1]>(ETH_HLEN) else {
                return false;
            };
            let Ok([proto]) = ctx.load::<[u8; 1]>(ETH_HLEN + 9) else {
                return false;
            };
            if proto != 6 {
                return false;
            }
            ETH_HLEN + ((vihl & 0x0f) as usize) * 4
        }
        0x86dd => {
            let Ok([next]) = ctx.load::<[u8; 1]>(ETH_HLEN + 6) else {
                return false;
            };
            if next != 6 {
                return false;
            }
            ETH_HLEN + 40
        }
        _ => return false,
    };
    match ctx.load::<[u8; 1]>(tcp + 13) {
        // SYN set, ACK clear.
        Ok([flags]) => flags & 0x12 == 0x02,
        Err(_) => false,
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
