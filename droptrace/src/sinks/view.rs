//! The live view's sink: every tick, a snapshot of the figures (with the samples and
//! source lines of the row the view asks about, and how far the diagnosis it asked for
//! has got) goes to the view through its [`Link`]. Live and replayed runs publish alike;
//! the view cannot tell them apart.
use std::{collections::HashSet, ops::ControlFlow, sync::Arc};

use crate::{
    live::{
        snapshot::{Detail, DetailRequest, Diagnosis, Snapshot},
        Link, RowDiagnoser,
    },
    pipeline::{
        aggregate::{Aggregator, GroupStats},
        event::Group,
        names::Names,
        sink::{Moment, Sink},
    },
};

/// Drop sites whose source lines a detail carries at most.
const MAX_SOURCE_LINES: usize = 32;

pub struct ViewPublisher {
    link: Arc<Link>,
    /// The names shared by snapshots until they change.
    names: Arc<Names>,
    diagnoser: Option<Box<dyn RowDiagnoser>>,
}

impl ViewPublisher {
    pub fn new(link: Arc<Link>) -> ViewPublisher {
        ViewPublisher {
            link,
            names: Arc::default(),
            diagnoser: None,
        }
    }

    /// Diagnoses rows when the view asks (`d`).
    pub fn with_diagnoser(mut self, diagnoser: Box<dyn RowDiagnoser>) -> ViewPublisher {
        self.diagnoser = Some(diagnoser);
        self
    }
}

impl Sink for ViewPublisher {
    fn tick(&mut self, at: &Moment<'_>) -> ControlFlow<()> {
        // Names are only ever added: a count that moved means new ones.
        if self.names.len() != at.names.len()
            || self.names.reasons.is_none() != at.names.reasons.is_none()
            || self.names.source_lines_pending != at.names.source_lines_pending
        {
            self.names = Arc::new(at.names.clone());
        }
        let request = self.link.request();
        let source_pending = at.names.source_lines_pending;
        let detail = request.map(|r| {
            let sites = detail_sites(at.agg, &r);
            let source_lines = sites
                .into_iter()
                .filter_map(|loc| at.names.source_line(loc).map(|l| (loc, l.to_owned())))
                .collect();
            (
                r,
                Detail {
                    samples: at.agg.samples(|g| r.grouping.key(g) == r.key),
                    source_lines,
                    source_pending,
                },
            )
        });
        let diagnosis = self.link.diagnose().map(|r| {
            let status = match self.diagnoser.as_mut() {
                Some(diagnoser) => diagnoser.tick(&r, at),
                None => Diagnosis::Unavailable("this source cannot diagnose".into()),
            };
            (r, status)
        });
        // A snapshot the view has not taken yet is replaced: its room is reused (a port
        // scan's snapshot is megabytes).
        let room = self.link.take().map(|s| s.groups).unwrap_or_default();
        let mut snapshot = snapshot_in(room, at.agg, &self.names, at.started_ns, at.now_ns);
        snapshot.detail = detail;
        snapshot.diagnosis = diagnosis;
        snapshot.finished = at.ended;
        self.link.publish(snapshot);
        ControlFlow::Continue(())
    }
}

/// The drop sites of the requested row (at most `MAX_SOURCE_LINES`).
fn detail_sites(agg: &Aggregator, request: &DetailRequest) -> Vec<u64> {
    let member = |g: &Group| request.grouping.key(g) == request.key;
    agg.groups()
        .filter(|(g, s)| s.count() > 0 && member(g))
        .map(|(g, _)| g.location)
        .collect::<HashSet<_>>()
        .into_iter()
        .take(MAX_SOURCE_LINES)
        .collect()
}

/// The aggregator's figures at `now_ns`, without details.
pub fn snapshot(agg: &Aggregator, names: &Arc<Names>, started_ns: u64, now_ns: u64) -> Snapshot {
    snapshot_in(Vec::new(), agg, names, started_ns, now_ns)
}

/// [`snapshot`], with its groups written into `room` (emptied first).
fn snapshot_in(
    mut room: Vec<(Group, GroupStats)>,
    agg: &Aggregator,
    names: &Arc<Names>,
    started_ns: u64,
    now_ns: u64,
) -> Snapshot {
    room.clear();
    room.extend(
        agg.groups()
            .filter(|(_, s)| s.count() > 0)
            .map(|(g, s)| (*g, *s)),
    );
    Snapshot {
        now_ns,
        started_ns,
        counters: agg.counters(),
        overflow: agg.overflow(),
        groups: room,
        names: Arc::clone(names),
        detail: None,
        diagnosis: None,
        finished: false,
        interfaces: agg.interfaces().rows(),
        watched: agg.watched(),
        tcp: crate::live::snapshot::TcpTotals::of(agg.tcp()),
        tcp_flows: agg
            .tcp()
            .ranked()
            .into_iter()
            .take(crate::live::snapshot::VIEW_TCP_FLOWS)
            .map(|(f, s)| (*f, s.clone()))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::{grouping::Grouping, snapshot::DiagnoseRequest};

    /// Answers with how often it was asked.
    struct Counting(u32);
    impl RowDiagnoser for Counting {
        fn tick(&mut self, _: &DiagnoseRequest, _: &Moment<'_>) -> Diagnosis {
            self.0 += 1;
            Diagnosis::Running(format!("tick {}", self.0))
        }
    }

    fn tick(view: &mut ViewPublisher) -> Snapshot {
        let (agg, names) = (Aggregator::new(), Names::default());
        let at = Moment {
            agg: &agg,
            names: &names,
            now_ns: 2,
            started_ns: 1,
            ended: false,
        };
        let _ = view.tick(&at);
        view.link.take().expect("a snapshot")
    }

    #[test]
    fn the_diagnoser_is_asked_only_while_the_view_waits_for_it() {
        let link = Arc::new(Link::default());
        let mut view = ViewPublisher::new(Arc::clone(&link)).with_diagnoser(Box::new(Counting(0)));
        assert_eq!(tick(&mut view).diagnosis, None);
        let request = DiagnoseRequest {
            row: DetailRequest {
                grouping: Grouping::Site,
                key: Group {
                    location: 0xffff_ffff_8100_0000,
                    reason: 12,
                    ethertype: 0x0800,
                    ip_proto: Some(6),
                    dport: Some(1678),
                    netns: crate::pipeline::event::Netns::NONE,
                    ifindex: 0,
                },
            },
            run: 1,
        };
        link.set_diagnose(Some(request));
        assert_eq!(
            tick(&mut view).diagnosis,
            Some((request, Diagnosis::Running("tick 1".into())))
        );
        assert_eq!(
            tick(&mut view).diagnosis,
            Some((request, Diagnosis::Running("tick 2".into())))
        );
        link.set_diagnose(None);
        assert_eq!(tick(&mut view).diagnosis, None);

        // A source without one says it cannot.
        let mut plain = ViewPublisher::new(Arc::clone(&link));
        link.set_diagnose(Some(request));
        assert!(matches!(
            tick(&mut plain).diagnosis,
            Some((_, Diagnosis::Unavailable(_)))
        ));
    }
}
