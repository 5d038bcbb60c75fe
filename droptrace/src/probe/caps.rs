//! Which capabilities droptrace has, from `CapEff` in /proc/self/status.
use std::io::BufRead;

use crate::probe::Error;

pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_PERFMON: u32 = 38;
pub const CAP_BPF: u32 = 39;

/// An effective capability set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities(pub u64);

impl Capabilities {
    /// Reads `CapEff:` from a /proc/PID/status file; `None` when the line is missing or bad.
    pub fn from_status(status: impl BufRead) -> Option<Capabilities> {
        status.lines().map_while(Result::ok).find_map(|line| {
            let hex = line.strip_prefix("CapEff:")?.trim();
            u64::from_str_radix(hex, 16).ok().map(Capabilities)
        })
    }

    pub fn current() -> Option<Capabilities> {
        let file = std::fs::File::open("/proc/self/status").ok()?;
        Capabilities::from_status(std::io::BufReader::new(file))
    }

    pub fn has(&self, cap: u32) -> bool {
        self.0 & (1 << cap) != 0
    }

    /// Capabilities missing to load and attach a tracing program: CAP_BPF and CAP_PERFMON,
    /// or CAP_SYS_ADMIN (which covers both, and is all kernels before 5.8 know).
    pub fn missing_for_tracing(&self) -> Vec<&'static str> {
        if self.has(CAP_SYS_ADMIN) {
            return Vec::new();
        }
        [(CAP_BPF, "CAP_BPF"), (CAP_PERFMON, "CAP_PERFMON")]
            .into_iter()
            .filter(|(c, _)| !self.has(*c))
            .map(|(_, name)| name)
            .collect()
    }
}

/// Fails with the capabilities missing to load and attach the kernel program.
pub fn check_tracing() -> Result<(), Error> {
    if let Some(caps) = Capabilities::current() {
        let missing = caps.missing_for_tracing();
        if !missing.is_empty() {
            return Err(Error::MissingCapabilities(missing));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Capabilities {
        let text =
            std::fs::read(format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        Capabilities::from_status(&text[..]).unwrap()
    }

    #[test]
    fn root_on_this_machine_lacks_only_sys_resource() {
        let caps = fixture("status.root");
        assert!(caps.has(CAP_BPF) && caps.has(CAP_PERFMON) && caps.has(CAP_SYS_ADMIN));
        assert!(
            !caps.has(24),
            "CAP_SYS_RESOURCE is withheld on these machines"
        );
        assert!(caps.missing_for_tracing().is_empty());
    }

    #[test]
    fn an_unprivileged_user_misses_bpf_and_perfmon() {
        let caps = fixture("status.nobody");
        assert_eq!(caps.missing_for_tracing(), ["CAP_BPF", "CAP_PERFMON"]);
        assert_eq!(
            Capabilities(1 << CAP_BPF).missing_for_tracing(),
            ["CAP_PERFMON"]
        );
        assert!(Capabilities(1 << CAP_SYS_ADMIN)
            .missing_for_tracing()
            .is_empty());
    }

    #[test]
    fn bad_status_gives_none() {
        assert_eq!(
            Capabilities::from_status(&b"Name:\tx\nCapEff:\tzz\n"[..]),
            None
        );
        assert_eq!(Capabilities::from_status(&b""[..]), None);
    }
}
