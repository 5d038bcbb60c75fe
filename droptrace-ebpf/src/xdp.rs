//! XDP exceptions: the `xdp:xdp_exception` tracepoint (an abort, an invalid action, a
//! failed XDP_TX) and the failed redirects (`xdp:xdp_redirect_err`,
//! `xdp:xdp_redirect_map_err`), counted by (program, interface, namespace, action or
//! error, tracepoint, path) in a hash map: exact counts, no events. Which of them are
//! frames counted elsewhere too (a verdict, kfree_skb, a driver's counter) is decided in
//! user space from the path recorded here.
use aya_ebpf::{
    bindings::BPF_NOEXIST,
    macros::{btf_tracepoint, map},
    maps::HashMap,
    programs::BtfTracePointContext,
};
use droptrace_common::*;

use crate::{add_one, config, read, Direct, Fields};

/// Filled in by the loader from the running kernel's BTF.
// SAFETY: no other symbol is named `XDP_EXC_CONFIG`; the loader finds the global by this
// name.
#[unsafe(no_mangle)]
static XDP_EXC_CONFIG: XdpExcConfig = XdpExcConfig::ZERO;

#[map]
static XDP_EXCEPTIONS: HashMap<XdpExcKey, u64> = HashMap::with_max_entries(XDP_EXC_MAX, 0);

#[inline(always)]
fn exc_config() -> &'static XdpExcConfig {
    // SAFETY: as `config()`: a pointer to a `'static` of plain integers, read volatile so
    // the zero initial value is not folded in.
    unsafe { &*core::ptr::read_volatile(&(&raw const XDP_EXC_CONFIG)) }
}

/// `xdp_exception(dev, xdp, act)`.
#[btf_tracepoint(function = "xdp_exception")]
pub fn droptrace_xdp_exception(ctx: BtfTracePointContext) -> i32 {
    let act: u32 = ctx.arg(2);
    count(&ctx, XDP_TP_EXCEPTION, act);
    0
}

/// `xdp_redirect_err(dev, xdp, tgt, err, ...)`.
#[btf_tracepoint(function = "xdp_redirect_err")]
pub fn droptrace_xdp_redirect_err(ctx: BtfTracePointContext) -> i32 {
    let err: i32 = ctx.arg(3);
    count(&ctx, XDP_TP_REDIRECT_ERR, err as u32);
    0
}

/// `xdp_redirect_map_err(dev, xdp, tgt, err, ...)` (kernels before 6.2 or so; later ones
/// report map redirects through `xdp_redirect_err` too).
#[btf_tracepoint(function = "xdp_redirect_map_err")]
pub fn droptrace_xdp_redirect_map_err(ctx: BtfTracePointContext) -> i32 {
    let err: i32 = ctx.arg(3);
    count(&ctx, XDP_TP_REDIRECT_MAP_ERR, err as u32);
    0
}

#[inline(always)]
fn count(ctx: &BtfTracePointContext, tracepoint: u8, value: u32) {
    let cfg = config();
    let xcfg = exc_config();
    if xcfg.flags & XDP_EXC_CONFIG_ON == 0 {
        return;
    }
    let dev: u64 = ctx.arg(0);
    let prog: u64 = ctx.arg(1);
    let mut key = XdpExcKey {
        prog_id: 0,
        ifindex: 0,
        netns: 0,
        value,
        tracepoint,
        path: XDP_PATH_DRIVER,
        _pad: [0; 6],
        netns_cookie: 0,
    };
    if prog != 0 {
        let aux: u64 = Direct::load(prog + xcfg.prog_aux as u64).unwrap_or(0);
        if aux != 0 {
            key.prog_id = Direct::load(aux + xcfg.aux_id as u64).unwrap_or(0);
        }
    }
    if dev != 0 {
        key.ifindex = Direct::load(dev + cfg.dev_ifindex as u64).unwrap_or(0);
        let net: u64 = Direct::load(dev + cfg.dev_net as u64).unwrap_or(0);
        if net != 0 {
            key.netns = Direct::load(net + cfg.net_inum as u64).unwrap_or(0);
            if xcfg.flags & XDP_EXC_CONFIG_HAS_NET_COOKIE != 0 {
                key.netns_cookie = Direct::load(net + cfg.net_cookie as u64).unwrap_or(0);
            }
        }
        // The generic-mode program is the device's `xdp_prog`; a driver's own is not.
        let generic: u64 = Direct::load(dev + xcfg.dev_xdp_prog as u64).unwrap_or(0);
        if generic != 0 && generic == prog {
            key.path = XDP_PATH_GENERIC;
        } else {
            let ops: u64 = Direct::load(dev + xcfg.dev_link_ops as u64).unwrap_or(0);
            if ops != 0 {
                let kind: u64 = Direct::load(ops + xcfg.link_ops_kind as u64).unwrap_or(0);
                if kind != 0 && read::<[u8; 5]>(kind) == Some(*b"veth\0") {
                    key.path = XDP_PATH_VETH;
                }
            }
        }
    }
    if let Some(n) = XDP_EXCEPTIONS.get_ptr_mut(&key) {
        add_one(n);
    } else if XDP_EXCEPTIONS.insert(&key, &1, BPF_NOEXIST as u64).is_err() {
        // Another CPU inserted it meanwhile; or the map is full: then in the key user
        // space put there first for that.
        if let Some(n) = XDP_EXCEPTIONS.get_ptr_mut(&key) {
            add_one(n);
        } else if let Some(n) = XDP_EXCEPTIONS.get_ptr_mut(&XdpExcKey::OVERFLOW) {
            add_one(n);
        }
    }
}
