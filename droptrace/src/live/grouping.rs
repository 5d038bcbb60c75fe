//! How the table folds groups into rows, names them, and orders them.
use crate::pipeline::{
    event::{Group, Netns},
    names::Names,
};

/// What one row of the table stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Grouping {
    /// Location, reason, protocol and destination port (the default).
    #[default]
    Site,
    Location,
    Reason,
    Port,
    Interface,
    Namespace,
    /// The container and pod of the namespace (one row per namespace).
    Pod,
    /// The layer that dropped: kfree_skb's drops are the stack's, in one row; the
    /// interfaces' own counters add the driver's and the NIC's below the table.
    Layer,
}

impl Grouping {
    pub const ALL: [Grouping; 8] = [
        Grouping::Site,
        Grouping::Location,
        Grouping::Reason,
        Grouping::Port,
        Grouping::Interface,
        Grouping::Namespace,
        Grouping::Pod,
        Grouping::Layer,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Grouping::Site => "location+reason+port",
            Grouping::Location => "location",
            Grouping::Reason => "reason",
            Grouping::Port => "port",
            Grouping::Interface => "interface",
            Grouping::Namespace => "namespace",
            Grouping::Pod => "pod",
            Grouping::Layer => "layer",
        }
    }

    /// What the table's name columns show for a row.
    pub fn cells(self, key: &Group, names: &Names) -> Vec<String> {
        // Names come from the host: escaped once here for every cell and title.
        self.raw_cells(key, names)
            .into_iter()
            .map(|c| crate::format::printable(&c).into_owned())
            .collect()
    }

    fn raw_cells(self, key: &Group, names: &Names) -> Vec<String> {
        let reason = || names.reason(key.reason).unwrap_or_else(|| "-".to_owned());
        let proto = || key.protocol().unwrap_or_else(|| "-".into());
        let port = || key.dport.map_or_else(|| "-".into(), |p| p.to_string());
        let location = || names.location_display(key.location);
        match self {
            Grouping::Site => vec![location(), reason(), proto(), port()],
            Grouping::Location => vec![location()],
            Grouping::Reason => vec![reason()],
            Grouping::Port => vec![proto(), port()],
            Grouping::Interface => vec![
                names.interface(key.netns, key.ifindex),
                names.namespace(key.netns),
            ],
            Grouping::Namespace => vec![names.namespace(key.netns)],
            Grouping::Layer => vec!["stack".into(), "kfree_skb".into()],
            Grouping::Pod => {
                let w = names.workload(key.netns);
                vec![
                    w.and_then(|w| w.pod.as_ref())
                        .map_or_else(|| "-".into(), |p| format!("{}/{}", p.namespace, p.name)),
                    w.map_or_else(|| "-".into(), |w| w.container.name.clone()),
                    names.namespace(key.netns),
                ]
            }
        }
    }

    /// The row's name as one string (for sorting by name and for titles).
    pub fn row_name(self, key: &Group, names: &Names) -> String {
        self.cells(key, names).join(" ")
    }

    /// The row a group belongs to: the group with the fields this grouping ignores cleared.
    pub fn key(self, g: &Group) -> Group {
        let none = Group {
            location: 0,
            reason: 0,
            ethertype: 0,
            ip_proto: None,
            dport: None,
            netns: Netns::NONE,
            ifindex: 0,
        };
        match self {
            Grouping::Site => g.site(),
            Grouping::Location => Group {
                location: g.location,
                ..none
            },
            Grouping::Reason => Group {
                reason: g.reason,
                ..none
            },
            Grouping::Port => Group {
                ethertype: g.ethertype,
                ip_proto: g.ip_proto,
                dport: g.dport,
                ..none
            },
            Grouping::Interface => Group {
                netns: g.netns,
                ifindex: g.ifindex,
                ..none
            },
            Grouping::Namespace | Grouping::Pod => Group {
                netns: g.netns,
                ..none
            },
            Grouping::Layer => none,
        }
    }

    pub fn next(self) -> Grouping {
        cycle(&Grouping::ALL, self, 1)
    }

    pub fn previous(self) -> Grouping {
        cycle(&Grouping::ALL, self, Grouping::ALL.len() - 1)
    }
}

/// The order of the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Sort {
    /// Most drops first.
    #[default]
    Count,
    /// Highest rate now first.
    Rate,
    /// By the row's name (function, reason, interface...).
    Name,
    /// By destination port.
    Port,
    /// Most recent drop first.
    Recency,
}

impl Sort {
    pub const ALL: [Sort; 5] = [
        Sort::Count,
        Sort::Rate,
        Sort::Name,
        Sort::Port,
        Sort::Recency,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Sort::Count => "count",
            Sort::Rate => "rate",
            Sort::Name => "name",
            Sort::Port => "port",
            Sort::Recency => "recency",
        }
    }

    pub fn next(self) -> Sort {
        cycle(&Sort::ALL, self, 1)
    }

    pub fn previous(self) -> Sort {
        cycle(&Sort::ALL, self, Sort::ALL.len() - 1)
    }
}

fn cycle<T: Copy + PartialEq>(all: &[T], current: T, step: usize) -> T {
    let at = all.iter().position(|x| *x == current).unwrap_or(0);
    all[(at + step) % all.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group() -> Group {
        Group {
            location: 0xffff_8000,
            reason: 12,
            ethertype: 0x0800,
            ip_proto: Some(6),
            dport: Some(1678),
            netns: 4026531840.into(),
            ifindex: 3,
        }
    }

    #[test]
    fn names_from_the_host_are_escaped_in_cells_and_titles() {
        let g = group();
        let mut names = Names::default();
        names
            .interfaces
            .insert((g.netns, 3), "ve\x1b[2Jth".to_owned());
        names.namespaces.insert(g.netns, "netns a\nb".to_owned());
        let mut w = crate::pipeline::fixtures::workload("9b2e", None);
        w.container.name = "web\x1b]0;x\x07".into();
        names.workloads.insert(g.netns, w);
        let cells = Grouping::Interface.cells(&g, &names);
        assert_eq!(cells[0], r"ve\x1b[2Jth");
        assert!(cells[1].ends_with(r"a\nb"), "{cells:?}");
        let title = Grouping::Pod.row_name(&g, &names);
        assert!(!title.contains(char::is_control), "{title}");
        assert!(title.contains(r"web\x1b]0;x\x07"), "{title}");
    }

    #[test]
    fn keys_keep_only_their_fields() {
        let g = group();
        assert_eq!(Grouping::Site.key(&g), g.site());
        assert_eq!(Grouping::Location.key(&g).location, g.location);
        assert_eq!(Grouping::Location.key(&g).reason, 0);
        assert_eq!(Grouping::Reason.key(&g).reason, 12);
        assert_eq!(Grouping::Reason.key(&g).dport, None);
        let port = Grouping::Port.key(&g);
        assert_eq!(
            (port.ip_proto, port.dport, port.location),
            (Some(6), Some(1678), 0)
        );
        let iface = Grouping::Interface.key(&g);
        assert_eq!((iface.netns, iface.ifindex, iface.reason), (g.netns, 3, 0));
        assert_eq!(Grouping::Namespace.key(&g).ifindex, 0);
        let mut other_iface = g;
        other_iface.ifindex = 4;
        assert_eq!(Grouping::Site.key(&g), Grouping::Site.key(&other_iface));
        assert_ne!(
            Grouping::Interface.key(&g),
            Grouping::Interface.key(&other_iface)
        );
    }

    #[test]
    fn cycles_through_every_value_both_ways() {
        let mut g = Grouping::Site;
        for _ in 0..Grouping::ALL.len() {
            g = g.next();
        }
        assert_eq!(g, Grouping::Site);
        assert_eq!(Grouping::Site.previous(), Grouping::Layer);
        assert_eq!(Sort::Count.next(), Sort::Rate);
        assert_eq!(Sort::Count.previous(), Sort::Recency);
    }
}
