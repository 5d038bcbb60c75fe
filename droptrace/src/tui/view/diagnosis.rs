//! The diagnosis part of a row's drill-down (`d`): under way, its findings with evidence
//! and fix, or why there is none.
use ratatui::{
    style::{Modifier, Style},
    text::{Line, Span},
};

use crate::{
    format::{count, printable},
    live::snapshot::{Diagnosis, RowDiagnosis},
};

/// Findings shown in full (`droptrace diagnose` lists them all).
const MAX_FINDINGS: usize = 3;

/// The lines of the diagnosis of the row called `row`, as it stands.
pub fn lines(diagnosis: Option<&Diagnosis>, row: &str) -> Vec<Line<'static>> {
    let bold = Style::new().add_modifier(Modifier::BOLD);
    match diagnosis {
        None => vec![Line::from(vec![
            Span::styled("Diagnosis", bold),
            Span::raw(
                ": d samples this row's namespace while it drops and names the cause, \
                 as droptrace diagnose does",
            ),
        ])],
        Some(Diagnosis::Running(phase)) => vec![Line::from(vec![
            Span::styled(format!("diagnosing {}...", printable(row)), bold),
            Span::raw(format!(" {phase}")),
        ])],
        Some(Diagnosis::Unavailable(why)) => vec![Line::from(vec![
            Span::styled("Diagnosis", bold),
            Span::raw(format!(": {}", printable(why))),
        ])],
        Some(Diagnosis::Failed(why)) => vec![Line::from(vec![
            Span::styled("Diagnosis failed", bold),
            Span::raw(format!(": {} (d to try again)", printable(why))),
        ])],
        Some(Diagnosis::Done(report)) => done(report, bold),
    }
}

fn done(report: &RowDiagnosis, bold: Style) -> Vec<Line<'static>> {
    let sampled = if report.namespaces.is_empty() {
        "no namespace".to_owned()
    } else {
        printable(&report.namespaces.join(", ")).into_owned()
    };
    let what = match &report.earlier {
        None => format!(
            "{} drops of this row in {:.1} s",
            count(report.drops),
            report.window_secs
        ),
        Some(earlier) => format!(
            "no drop of this row in {:.1} s; from {}",
            report.window_secs,
            printable(earlier)
        ),
    };
    let mut lines = vec![Line::from(vec![
        Span::styled("Diagnosis", bold),
        Span::raw(format!(" (d runs it again): {what}; sampled {sampled}")),
    ])];
    if report.findings.is_empty() {
        lines.push(Line::raw(
            "  no cause found: no drops of this row and no drop counter moved in the window",
        ));
    }
    for (i, f) in report.findings.iter().take(MAX_FINDINGS).enumerate() {
        lines.push(Line::from(vec![
            Span::styled(format!("  {}. [{}]", i + 1, f.cause), bold),
            Span::raw(format!(
                " {} drops ({:.1}/s){}",
                count(f.drops),
                f.rate,
                if f.benign {
                    ", normal housekeeping, probably harmless"
                } else {
                    ""
                }
            )),
        ]));
        lines.push(Line::raw(format!("     {}", printable(&f.summary))));
        for e in &f.evidence {
            lines.push(Line::raw(format!("     - {}", printable(e))));
        }
        lines.push(Line::raw(format!("     fix: {}", printable(&f.fix))));
    }
    if report.findings.len() > MAX_FINDINGS {
        lines.push(Line::raw(format!(
            "  ... and {} more (droptrace diagnose lists them all)",
            report.findings.len() - MAX_FINDINGS
        )));
    }
    lines
}
