//! Drops over time as a stacked bar chart in inline SVG (no script, prints as drawn).
use std::fmt::Write;

use super::escape;
use crate::sinks::timeline::Timeline;

/// Colors of the series, the last for everything else.
const COLORS: &[&str] = &[
    "#cf222e", "#0969da", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#8c959f",
];

/// The chart and its legend; `start` labels the left edge (a clock time).
pub fn chart(title: &str, timeline: &Timeline, start: &str) -> String {
    let (width, series) = timeline.series(COLORS.len() - 1);
    let buckets = series.first().map_or(0, |s| s.buckets.len());
    let peak = (0..buckets)
        .map(|i| series.iter().map(|s| s.buckets[i]).sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let (w, h, left, bottom) = (900.0_f64, 220.0_f64, 56.0_f64, 24.0_f64);
    let plot_w = w - left - 8.0;
    let plot_h = h - bottom - 8.0;
    let bar = plot_w / buckets.max(1) as f64;
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<figure><svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" \
         height=\"{h}\" role=\"img\" aria-label=\"{}\"><rect x=\"{left}\" y=\"8\" width=\"{plot_w}\" \
         height=\"{plot_h}\" fill=\"#fff\" stroke=\"#d0d7de\"/>",
        escape(title)
    );
    for i in 0..buckets {
        let mut y = 8.0 + plot_h;
        // At most COLORS.len() series: the last color (grey) is only ever "others".
        for (s, color) in series.iter().zip(COLORS) {
            let n = s.buckets[i];
            if n == 0 {
                continue;
            }
            let bh = plot_h * n as f64 / peak as f64;
            y -= bh;
            let _ = write!(
                svg,
                "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{color}\">\
                 <title>{}: {n}</title></rect>",
                left + bar * i as f64,
                (bar - 1.0).max(0.5),
                escape(&s.name)
            );
        }
    }
    let axis = |svg: &mut String, x: f64, y: f64, anchor: &str, text: &str| {
        let _ = write!(
            svg,
            "<text x=\"{x:.1}\" y=\"{y:.1}\" font-size=\"11\" text-anchor=\"{anchor}\" \
             fill=\"#57606a\">{}</text>",
            escape(text)
        );
    };
    axis(&mut svg, left - 4.0, 18.0, "end", &peak.to_string());
    axis(&mut svg, left - 4.0, 8.0 + plot_h, "end", "0");
    axis(&mut svg, left, h - 6.0, "start", start);
    let span = width * buckets as u64;
    axis(
        &mut svg,
        w - 8.0,
        h - 6.0,
        "end",
        &format!("+{}", seconds(span)),
    );
    let _ = write!(
        svg,
        "</svg><figcaption>{} per {} (peak {peak})</figcaption>",
        escape(title),
        seconds(width)
    );
    svg.push_str("<ul class=\"legend\">");
    for (s, color) in series.iter().zip(COLORS) {
        let _ = write!(
            svg,
            "<li><span class=\"sw\" style=\"background:{color}\"></span>{} <b>{}</b></li>",
            escape(&s.name),
            s.total
        );
    }
    svg.push_str("</ul></figure>\n");
    svg
}

fn seconds(s: u64) -> String {
    match s {
        s if s % 3600 == 0 && s >= 3600 => format!("{} h", s / 3600),
        s if s % 60 == 0 && s >= 60 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_widen_to_fit_and_the_rest_is_other() {
        let mut t = Timeline::default();
        for (i, key) in ["a", "b", "c"].iter().enumerate() {
            t.add(key, 0, 10 - i as u64);
        }
        t.add("a", 299, 5);
        let (width, s) = t.series(2);
        assert_eq!(width, 5, "300 s in at most 120 bars");
        assert_eq!(s.len(), 3);
        assert_eq!((s[0].name.as_str(), s[0].total), ("a", 15));
        assert_eq!(s[0].buckets.len(), 60);
        assert_eq!(s[0].buckets[59], 5);
        assert_eq!((s[2].name.as_str(), s[2].total), ("1 others", 8));
        let all: u64 = s.iter().map(|s| s.buckets.iter().sum::<u64>()).sum();
        assert_eq!(all, 32, "every drop in a bar");
    }

    #[test]
    fn the_chart_draws_every_series_with_its_total() {
        let mut t = Timeline::default();
        t.add("NETFILTER_DROP", 0, 3);
        t.add("NO_SOCKET<x>", 2, 1);
        let svg = chart("Drops by reason", &t, "03:14:57");
        assert!(svg.contains("<svg") && svg.contains("</svg>"));
        assert_eq!(svg.matches("<rect").count(), 3, "frame and two bars");
        assert!(svg.contains("NO_SOCKET&lt;x&gt; <b>1</b>"));
        assert!(svg.contains("per 1 s (peak 3)"));
    }
}
