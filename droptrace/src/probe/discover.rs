//! What droptrace learns about the running kernel before attaching: the tracepoint's
//! layout (BTF or tracefs), the drop reasons' names, and the symbols of drop locations.
//! The files are read here; `kernel/` parses them.
use std::{io::BufReader, path::Path, sync::Arc};

use crate::{
    format::warn,
    kernel::{
        btf::Btf,
        kallsyms::KernelSymbols,
        layout::{Attach, KernelLayout, LayoutError},
        reasons::DropReasonTable,
        tracefs,
    },
    probe::Error,
};

use super::attach::TRACEPOINT_TYPEDEF;

const BTF_PATH: &str = "/sys/kernel/btf/vmlinux";
const BTF_DIR: &str = "/sys/kernel/btf";
const TRACEFS_DIRS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// Everything droptrace learns about the running kernel before attaching.
pub struct KernelFacts {
    pub layout: KernelLayout,
    pub reasons: Option<DropReasonTable>,
    pub symbols: Option<KernelSymbols>,
    /// BTF type id of the tracepoint's typedef, for a `tp_btf` attach.
    pub tracepoint_btf_id: Option<u32>,
    /// The TCP tracepoints and what they read; `None` without BTF.
    pub tcp: Option<crate::kernel::tcp::TcpLayout>,
    /// What the XDP verdict counter reads; `None` without BTF.
    pub xdp: Option<crate::kernel::xdp::XdpLayout>,
    /// What the XDP exception programs read (`None`: exceptions are not counted).
    pub xdp_exceptions: Option<crate::kernel::xdp::XdpExcLayout>,
}

/// Reads the kernel's BTF (once), the tracepoint's tracefs format and kallsyms.
pub fn learn_kernel(force: Option<Attach>) -> Result<KernelFacts, Error> {
    let btf = match Btf::from_file(Path::new(BTF_PATH)) {
        Ok(btf) => Some(Arc::new(btf)),
        Err(e) => {
            warn(&format!(
                "no usable kernel BTF ({e}); attaching without packet details"
            ));
            None
        }
    };
    let format_text = TRACEFS_DIRS
        .iter()
        .find_map(|dir| std::fs::read_to_string(format!("{dir}/events/skb/kfree_skb/format")).ok());
    let format = match format_text.as_deref().map(tracefs::parse) {
        Some(Ok(f)) => Some(f),
        Some(Err(e)) => {
            warn(&format!(
                "cannot read the skb:kfree_skb tracefs format: {e}"
            ));
            None
        }
        None => None,
    };
    if btf.is_none() && format.is_none() {
        let mounted = TRACEFS_DIRS
            .iter()
            .any(|d| Path::new(d).join("events").is_dir());
        return Err(if mounted {
            LayoutError::NoTracepoint.into()
        } else {
            Error::NoTracefs
        });
    }
    let layout = KernelLayout::detect(btf.as_deref(), format.as_ref(), force)?;
    let reasons = if layout.has_reason {
        btf.as_ref()
            .and_then(|btf| {
                let mut table = DropReasonTable::from_btf(btf)?;
                add_module_reasons(&mut table, btf);
                Some(table)
            })
            .or_else(|| {
                format
                    .as_ref()
                    .and_then(DropReasonTable::from_tracefs_format)
            })
    } else {
        warn("this kernel gives no drop reasons (they arrived in Linux 5.17): showing drop locations only");
        None
    };
    let tcp = btf.as_ref().and_then(|btf| {
        crate::kernel::tcp::TcpLayout::from_btf(btf)
            .map_err(|e| warn(&format!("TCP retransmits and resets not counted: {e}")))
            .ok()
    });
    let xdp = match (btf.as_ref(), layout.skb.as_ref()) {
        (Some(btf), Some(skb)) => crate::kernel::xdp::XdpLayout::from_btf(btf, skb)
            .map_err(|e| warn(&format!("XDP programs' verdicts not counted: {e}")))
            .ok(),
        _ => None,
    };
    let xdp_exceptions = match (btf.as_ref(), layout.skb.as_ref()) {
        (Some(btf), Some(skb)) => crate::kernel::xdp::XdpExcLayout::from_btf(btf, skb)
            .map_err(|e| warn(&format!("XDP exceptions not counted: {e}")))
            .ok(),
        _ => None,
    };
    Ok(KernelFacts {
        tcp,
        xdp,
        xdp_exceptions,
        tracepoint_btf_id: btf.as_ref().and_then(|b| b.typedef_id(TRACEPOINT_TYPEDEF)),
        layout,
        reasons,
        symbols: read_symbols(),
    })
}

fn read_symbols() -> Option<KernelSymbols> {
    let file = match std::fs::File::open("/proc/kallsyms") {
        Ok(f) => f,
        Err(e) => {
            warn(&format!(
                "cannot open /proc/kallsyms ({e}): drop locations stay numeric"
            ));
            return None;
        }
    };
    match KernelSymbols::parse(BufReader::new(file)) {
        Ok(s) if s.addresses_hidden() => {
            warn(
                "kernel addresses are hidden (kernel.kptr_restrict), so drop locations stay \
                 numeric; run as root or with CAP_SYSLOG, or: sudo sysctl kernel.kptr_restrict=0",
            );
            None
        }
        Ok(s) => Some(s),
        Err(e) => {
            warn(&format!(
                "cannot read /proc/kallsyms ({e}): drop locations stay numeric"
            ));
            None
        }
    }
}

/// Subsystem drop reasons (openvswitch, mac80211, ...) live in their modules' split BTF,
/// parsed on top of the vmlinux BTF (shared, not copied).
fn add_module_reasons(table: &mut DropReasonTable, vmlinux: &Arc<Btf>) {
    let Ok(dir) = std::fs::read_dir(BTF_DIR) else {
        return;
    };
    for entry in dir
        .flatten()
        .filter(|e| e.file_name() != "vmlinux")
        .take(4096)
    {
        if let Ok(module) = Btf::from_split_file(&entry.path(), Arc::clone(vmlinux)) {
            table.add_btf(&module);
        }
    }
}

/// Whether the running kernel offers its BTF (without it the probe reads only the
/// tracepoint's fields: no addresses, ports or namespaces).
pub fn has_btf() -> bool {
    std::fs::metadata("/sys/kernel/btf/vmlinux").is_ok_and(|m| m.len() > 0)
}
