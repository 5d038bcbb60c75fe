//! The live resolve step: drop locations named from the running kernel's symbols, once
//! per location, before any sink sees the drop. (Interface and namespace names need to
//! enter namespaces: that half is `probe::places`.)
use crate::kernel::kallsyms::KernelSymbols;

use super::names::{Location, Names};

/// Names locations with `/proc/kallsyms`; raw addresses when symbols are hidden.
#[derive(Debug, Default)]
pub struct SymbolNames {
    symbols: Option<KernelSymbols>,
}

impl SymbolNames {
    pub fn new(symbols: Option<KernelSymbols>) -> SymbolNames {
        SymbolNames { symbols }
    }

    /// Adds the location's name to `names` unless it is there already.
    pub fn name(&self, names: &mut Names, address: u64) {
        names
            .locations
            .entry(address)
            .or_insert_with(|| self.lookup(address));
    }

    pub fn lookup(&self, address: u64) -> Location {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_each_location_once_from_kallsyms() {
        let text = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/kallsyms.6.18"
        ))
        .unwrap();
        let symbols = SymbolNames::new(Some(KernelSymbols::parse(&text[..]).unwrap()));
        let mut names = Names::default();
        // nft_do_chain is at 0xffffffff81f63250 in the capture.
        let address = 0xffff_ffff_81f6_3250 + 0x1c1;
        symbols.name(&mut names, address);
        symbols.name(&mut names, address);
        assert_eq!(names.len(), 1);
        assert_eq!(names.location_display(address), "nft_do_chain+0x1c1");
        assert_eq!(names.function(address), Some("nft_do_chain"));
        let hidden = SymbolNames::default();
        assert_eq!(hidden.lookup(address).display, "0xffffffff81f63411");
    }
}
