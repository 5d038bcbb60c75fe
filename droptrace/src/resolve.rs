//! Names for raw kernel values: drop locations (kallsyms) and drop reasons (BTF/tracefs).
use std::collections::HashMap;

use crate::kernel::{kallsyms::KernelSymbols, reasons::DropReasonTable};

/// A drop location made readable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub function: Option<String>,
    pub offset: Option<u64>,
    pub module: Option<String>,
    /// `function+0x1c1`, `function+0x1c1 [module]`, or the raw address.
    pub display: String,
}

impl Location {
    /// A location without a symbol: the raw address.
    pub fn unknown(address: u64) -> Location {
        Location {
            function: None,
            offset: None,
            module: None,
            display: format!("{address:#x}"),
        }
    }
}

/// Resolves locations and reasons against one kernel's tables, or a recording's.
#[derive(Debug, Default)]
pub struct Resolver {
    symbols: Option<KernelSymbols>,
    reasons: Option<DropReasonTable>,
    /// Locations as a recording named them (it never asks this machine's kallsyms).
    recorded: Option<HashMap<u64, Location>>,
}

impl Resolver {
    pub fn new(symbols: Option<KernelSymbols>, reasons: Option<DropReasonTable>) -> Resolver {
        Resolver {
            symbols,
            reasons,
            recorded: None,
        }
    }

    /// Names from a recording: its locations and its kernel's reasons (`None` when that
    /// kernel had none).
    pub fn recorded(
        locations: HashMap<u64, Location>,
        reasons: Option<DropReasonTable>,
    ) -> Resolver {
        Resolver {
            symbols: None,
            reasons,
            recorded: Some(locations),
        }
    }

    pub fn location(&self, address: u64) -> Location {
        if let Some(recorded) = &self.recorded {
            return recorded
                .get(&address)
                .cloned()
                .unwrap_or_else(|| Location::unknown(address));
        }
        match self.symbols.as_ref().and_then(|s| s.resolve(address)) {
            Some(sym) => Location {
                function: Some(sym.name.to_owned()),
                offset: Some(sym.offset),
                module: sym.module.map(str::to_owned),
                display: sym.to_string(),
            },
            None => Location::unknown(address),
        }
    }

    /// The reason's name; `None` when the kernel gives no reasons.
    pub fn reason(&self, raw: u32) -> Option<String> {
        self.reasons.as_ref().map(|t| t.display(raw))
    }

    pub fn reasons(&self) -> Option<&DropReasonTable> {
        self.reasons.as_ref()
    }
}
