//! The pages a user shares, rendered by a real browser (headless Chromium): `report
//! --format html` of a recording of real drops and `diagnose --format html`. Each page is
//! drawn (the screenshot is not blank), fetches nothing, and the figures on it, read from
//! the DOM the browser built, equal the JSON's and the kernel's own counters.
use std::{path::Path, process::Command};

use droptrace_tests::*;
use serde_json::Value;

const CHROMIUM: &str = "/usr/bin/chromium";

/// Chromium as the machine's probe runs it: headless, no network of its own, a fresh
/// profile in `dir`.
fn chromium(dir: &TempDir, args: &[&str], page: &Path) -> std::process::Output {
    let out = Command::new("timeout")
        .arg("120")
        .arg(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1100,1400",
        ])
        .arg(format!("--user-data-dir={}", dir.file("profile").display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The page as the browser built it, and the share of its screenshot's pixels that are
/// not background.
fn render(dir: &TempDir, page: &Path) -> (String, f64) {
    let dom = chromium(dir, &["--dump-dom"], page);
    let shot = dir.file("page.png");
    chromium(dir, &[&format!("--screenshot={}", shot.display())], page);
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().expect("a PNG screenshot");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("its pixels");
    let px = info.color_type.samples();
    let pixels = &buf[..info.buffer_size()];
    let drawn = pixels
        .chunks(px)
        .filter(|p| p.iter().take(3).any(|&c| c < 200))
        .count();
    (
        String::from_utf8(dom.stdout).expect("UTF-8 DOM"),
        drawn as f64 / (pixels.len() / px) as f64,
    )
}

/// The text of each cell of the table `id`, row by row.
fn table(dom: &str, id: &str) -> Vec<Vec<String>> {
    let start = dom
        .find(&format!("<table id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no table {id}"));
    let body = &dom[start..];
    let body = &body[body.find("<tbody>").expect("tbody")..body.find("</tbody>").expect("end")];
    body.split("<tr>")
        .skip(1)
        .map(|row| {
            row.split("<td")
                .skip(1)
                .map(|cell| {
                    let cell = &cell[cell.find('>').unwrap() + 1..];
                    cell[..cell.find("</td>").unwrap()].to_owned()
                })
                .collect()
        })
        .collect()
}

/// The value shown for the figure `name` (a `data-figure` attribute).
fn figure(dom: &str, name: &str) -> String {
    let at = dom
        .find(&format!("data-figure=\"{name}\">"))
        .unwrap_or_else(|| panic!("no figure {name}"));
    let rest = &dom[at..];
    let rest = &rest[rest.find('>').unwrap() + 1..];
    rest[..rest.find('<').unwrap()].to_owned()
}

/// The JSON the page carries (inert, for tools).
fn embedded(dom: &str, id: &str) -> Value {
    let tag = format!("<script type=\"application/json\" id=\"{id}\">");
    let rest = &dom[dom.find(&tag).expect("embedded JSON") + tag.len()..];
    serde_json::from_str(&rest[..rest.find("</script>").unwrap()]).expect("JSON")
}

fn self_contained(dom: &str) {
    assert!(!dom.contains(" src="), "nothing loaded from elsewhere");
    assert!(!dom.contains("<link"), "no stylesheet fetched");
    assert!(
        !dom.contains("<script>") && !dom.contains("<script src"),
        "no script that runs"
    );
}

fn needs_chromium() {
    if !Path::new(CHROMIUM).exists() {
        // `cargo xtask test` installs it; there this test fails rather than skips.
        missing(format!("no {CHROMIUM} (apt-get install chromium)"));
    }
}

fn report_page_shows_the_recordings_figures() {
    needs_chromium();
    let dir = TempDir::new("html-report");
    let file = dir.file("drops.dtr");
    let (pair, _listener) = Pair::with_nft_drop_on_1678();
    let recorder = Droptrace::record(file.to_str().unwrap(), &["--port", "1678"]);
    let nft = pair.nft_dropped_syns(5);
    let out = recorder.stop(libc::SIGINT);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let report = |format: &str| {
        let out = Command::new(droptrace_bin())
            .args(["report", file.to_str().unwrap(), "--format", format])
            .output()
            .expect("report");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let json: Value = serde_json::from_slice(&report("json")).expect("report JSON");
    let page = dir.file("report.html");
    std::fs::write(&page, report("html")).unwrap();
    let (dom, drawn) = render(&dir, &page);
    self_contained(&dom);
    assert!(drawn > 0.02, "the screenshot is blank ({drawn:.4} drawn)");

    assert_eq!(figure(&dom, "total"), json["total"].to_string());
    assert_eq!(json["total"], nft, "{json:#}");
    assert_eq!(figure(&dom, "lost_events"), json["lost_events"].to_string());
    assert_eq!(
        embedded(&dom, "summary"),
        json,
        "the page carries the JSON report"
    );
    let rows = table(&dom, "groups");
    let groups = json["groups"].as_array().unwrap();
    assert_eq!(rows.len(), groups.len(), "{rows:?}");
    for (row, g) in rows.iter().zip(groups) {
        assert_eq!(row[0], g["location"].as_str().unwrap());
        assert_eq!(row[5], g["count"].to_string(), "{row:?} vs {g}");
    }
    let nft_row = rows
        .iter()
        .find(|r| r[1] == "NETFILTER_DROP")
        .expect("the nft group on the page");
    assert_eq!(nft_row[5], nft.to_string());
    assert!(dom.contains("Drops by reason per"), "the chart is drawn");
    assert!(
        dom.contains("NETFILTER_DROP <b>"),
        "its legend names the reason"
    );
}

fn diagnose_page_names_the_rule_with_the_kernels_count() {
    needs_chromium();
    let dir = TempDir::new("html-diagnose");
    let (pair, _listener) = Pair::with_nft_drop_on_1678();
    let secs = (4 * time_scale()).to_string();
    let dt = Droptrace::start(&[
        "diagnose",
        "--duration",
        &secs,
        "--port",
        "1678",
        "--format",
        "html",
    ]);
    let nft = pair.nft_dropped_syns(4);
    let out = dt.wait();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = dir.file("diagnose.html");
    std::fs::write(&page, &out.stdout).unwrap();
    let (dom, drawn) = render(&dir, &page);
    self_contained(&dom);
    assert!(drawn > 0.01, "the screenshot is blank ({drawn:.4} drawn)");

    let json = embedded(&dom, "report");
    assert_eq!(json["total"], nft, "{json:#}");
    assert_eq!(figure(&dom, "total"), nft.to_string());
    let top = &json["findings"][0];
    assert_eq!(top["cause"], "netfilter_rule", "{json:#}");
    assert_eq!(figure(&dom, "drops"), top["drops"].to_string());
    assert_eq!(top["drops"], nft);
    let fix = top["fix"].as_str().unwrap();
    assert!(
        dom.contains(
            &fix.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
        ),
        "the fix is on the page: {fix}"
    );
    assert!(dom.contains("dport 1678"), "the rule's text is on the page");
}

droptrace_tests::root_tests!(
    report_page_shows_the_recordings_figures,
    diagnose_page_names_the_rule_with_the_kernels_count,
);
