//! Parsers for the system state `droptrace diagnose` samples around a watch window.
//!
//! Each submodule turns one tool's output (text or JSON, given as `&str`) into typed values
//! and never runs anything itself, so every parser is testable on captured fixtures
//! (`fixtures/evidence/`, see its README.capture). Hostile or truncated input gives an error
//! or is skipped; nothing here panics.
/// A captured fixture under `fixtures/evidence/`, for the parsers' tests.
#[cfg(test)]
macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/evidence/",
            $name
        ))
    };
}

pub mod bpftool;
pub mod holders;
pub mod iptables;
pub mod link;
pub mod neigh;
pub mod nft;
pub mod proc;
pub mod route;
pub mod ss;
pub mod sysctl;
pub mod tc;
pub mod tc_actions;

/// At most this many characters of offending input go into an error message.
const SNIPPET_CHARS: usize = 80;

/// The start of `text`, cut on a character boundary, for error messages: enough to find the
/// line, never a whole hostile blob.
pub(crate) fn snippet(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(SNIPPET_CHARS) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::snippet;

    #[test]
    fn snippet_cuts_long_and_multibyte_text() {
        assert_eq!(snippet("  short  "), "short");
        let long = "é".repeat(200);
        let s = snippet(&long);
        assert!(s.ends_with("..."));
        assert_eq!(s.chars().count(), 83);
    }
}
