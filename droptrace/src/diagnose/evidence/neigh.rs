//! `ip -j neigh show`: the neighbour (ARP, NDP) entries a namespace sends by: which
//! link-layer address a next hop resolves to, and in which state.
use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum NeighError {
    #[error("ip neigh JSON: {0}")]
    Json(#[from] serde_json::Error),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Neighbour {
    /// The next hop's IP address.
    pub dst: String,
    pub dev: String,
    /// None while unresolved (`INCOMPLETE`, `FAILED`).
    pub lladdr: Option<String>,
    /// `PERMANENT`, `REACHABLE`, `STALE`, `FAILED`...
    #[serde(default)]
    pub state: Vec<String>,
}

impl Neighbour {
    /// `10.77.0.2 lladdr 02:00:00:00:00:99 PERMANENT on veth-a`.
    pub fn describe(&self) -> String {
        format!(
            "{}{} {} on {}",
            self.dst,
            self.lladdr
                .as_ref()
                .map(|l| format!(" lladdr {l}"))
                .unwrap_or_default(),
            self.state.join(","),
            self.dev
        )
    }
}

/// Parses `ip -j neigh show` (one family or both).
pub fn parse_neighbours(json: &str) -> Result<Vec<Neighbour>, NeighError> {
    // ip prints nothing at all for an empty table in a batch.
    if json.trim().is_empty() {
        return Ok(Vec::new());
    }
    Ok(serde_json::from_str(json)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_resolved_and_not() {
        let n = parse_neighbours(fixture!("ip-neigh.wrong-lladdr.json")).unwrap();
        assert_eq!(n.len(), 3);
        assert_eq!(
            n[0].describe(),
            "10.77.0.2 lladdr 02:00:00:00:00:99 PERMANENT on veth-a"
        );
        assert_eq!(n[1].lladdr, None);
        assert_eq!(n[1].describe(), "10.77.0.3 FAILED on veth-a");
        assert_eq!(n[2].dst, "fd77::2");
        assert!(parse_neighbours("").unwrap().is_empty());
        assert!(parse_neighbours("[{\"dev\":1}]").is_err());
    }
}
