//! Containers and pods: drops in a pod's network namespace carry the pod and container
//! everywhere droptrace shows or keeps them, with a real containerd (its own, started
//! and stopped here) running a busybox pod with the CRI plugin's annotations. Counts
//! are compared with the kernel's own counter of the pod's namespace (Udp NoPorts).
use std::{net::UdpSocket, process::Command};

use droptrace_tests::{
    containerd::{self, Containerd, Pod},
    *,
};
use serde_json::{json, Value};

/// A port nothing listens on, in the pod and in the plain namespace.
const PORT: u16 = 9347;

/// Sends `n` datagrams to the closed port on loopback from inside `run` and waits until
/// the namespace's own `Udp NoPorts` counter has moved by exactly `n`.
fn closed_port_drops(
    what: &str,
    n: u64,
    run: impl FnOnce(Box<dyn FnOnce() + Send>),
    mut no_ports: impl FnMut() -> u64,
) {
    let before = no_ports();
    run(Box::new(move || {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        for _ in 0..n {
            socket.send_to(b"drop", ("127.0.0.1", PORT)).expect("send");
        }
    }));
    let after = reaches(&format!("Udp NoPorts in {what}"), before + n, &mut no_ports);
    assert_eq!(
        after,
        before + n,
        "only our datagrams hit a closed port in {what}"
    );
}

fn pod_drops(pod: &Pod, n: u64) {
    closed_port_drops(
        "the pod",
        n,
        |f| pod.run_inside(f),
        || pod.snmp("Udp", "NoPorts"),
    );
}

fn plain_drops(ns: &Netns, n: u64) {
    closed_port_drops(
        "the plain namespace",
        n,
        |f| ns.run(f),
        || ns.snmp("Udp", "NoPorts"),
    );
}

fn expected_pod(pod: &Pod) -> (Value, Value) {
    (
        json!({"id": pod.container_id, "name": pod.container_name, "runtime": "containerd"}),
        json!({"name": pod.name, "namespace": pod.namespace, "uid": pod.uid}),
    )
}

fn our_groups(summary: &Value) -> Vec<&Value> {
    groups(summary, |g| {
        g["dport"] == PORT && g["reason"] == "NO_SOCKET"
    })
}

fn setup() -> (Containerd, Netns) {
    containerd::require();
    (Containerd::start(), Netns::new("plain"))
}

fn json_and_text_name_the_pod_and_count_exactly() {
    let (ctd, plain) = setup();
    let pod = Pod::run(&ctd, "shop", &format!("web-{}", std::process::id()), "web");
    let port = PORT.to_string();

    let dt = Droptrace::start(&["--format", "json", "--dport", &port]);
    pod_drops(&pod, 7);
    plain_drops(&plain, 3);
    let summary = dt.stop_json();
    let ours = our_groups(&summary);
    let (container, pod_json) = expected_pod(&pod);
    let in_pod: Vec<&Value> = ours
        .iter()
        .copied()
        .filter(|g| !g["pod"].is_null())
        .collect();
    assert_eq!(in_pod.len(), 1, "one group for the pod: {summary}");
    assert_eq!(in_pod[0]["count"], 7, "{summary}");
    assert_eq!(in_pod[0]["pod"], pod_json, "{summary}");
    assert_eq!(in_pod[0]["container"], container, "{summary}");
    let elsewhere: Vec<&Value> = ours
        .iter()
        .copied()
        .filter(|g| g["pod"].is_null())
        .collect();
    assert_eq!(count_of(&elsewhere), 3, "{summary}");
    assert!(
        elsewhere.iter().all(|g| g["container"].is_null()),
        "{summary}"
    );

    // The text output's closing table names the pod on its line.
    let dt = Droptrace::start(&["--format", "text", "--dport", &port]);
    pod_drops(&pod, 4);
    let out = dt.stop(libc::SIGINT);
    let text = String::from_utf8_lossy(&out.stdout);
    let table = text.split("droptrace: ").last().expect("the closing table");
    let want = "       4 drops at __udp4_lib_rcv+0x";
    let line = table
        .lines()
        .find(|l| l.starts_with(want) && l.contains(&format!("dport {PORT}")))
        .unwrap_or_else(|| panic!("no line for the pod's drops in:\n{text}"));
    assert!(
        line.ends_with(&format!(
            "(NO_SOCKET) udp dport {PORT} on lo in pod {} container web",
            pod.arg()
        )),
        "{line}"
    );
}

fn pod_and_container_filters_keep_only_the_pods_drops() {
    let (ctd, plain) = setup();
    let pod = Pod::run(&ctd, "shop", &format!("api-{}", std::process::id()), "api");
    let (container, pod_json) = expected_pod(&pod);
    for filter in [
        ["--pod", &pod.arg()],
        ["--container", "api"],
        ["--container", &pod.container_id[..12]],
    ] {
        let dt = Droptrace::start(&["--format", "json", filter[0], filter[1]]);
        pod_drops(&pod, 5);
        plain_drops(&plain, 2);
        let summary = dt.stop_json();
        let ours = our_groups(&summary);
        assert_eq!(count_of(&ours), 5, "{filter:?}: {summary}");
        // Everything the kernel let through is the pod's: our 5 drops and nothing else.
        assert_eq!(summary["total"], 5, "{filter:?}: {summary}");
        assert!(
            ours.iter()
                .all(|g| g["pod"] == pod_json && g["container"] == container),
            "{filter:?}: {summary}"
        );
    }
    // A pod that is not on this node is an error that says so.
    let out = Command::new(droptrace_bin())
        .args([
            "--format",
            "json",
            "--duration",
            "1",
            "--pod",
            "shop/nowhere",
        ])
        .output()
        .expect("run droptrace");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no pod shop/nowhere on this node"),
        "{stderr}"
    );
}

fn recordings_keep_the_pod_for_report_and_export() {
    let (ctd, _plain) = setup();
    let pod = Pod::run(&ctd, "shop", &format!("rec-{}", std::process::id()), "web");
    let dir = std::env::temp_dir().join(format!("droptrace-pods-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("pod.dtr");
    let file_arg = file.to_str().expect("path");
    let port = PORT.to_string();
    let dt = Droptrace::record(file_arg, &["--dport", &port]);
    pod_drops(&pod, 6);
    let out = dt.stop(libc::SIGINT);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The pod is gone before the report: the names come from the recording.
    let (container, pod_json) = expected_pod(&pod);
    drop(pod);

    let report = Command::new(droptrace_bin())
        .args(["report", file_arg, "--format", "json"])
        .output()
        .expect("report");
    let summary: Value = serde_json::from_slice(&report.stdout).expect("report JSON");
    let ours = our_groups(&summary);
    assert_eq!(ours.len(), 1, "{summary}");
    assert_eq!(
        (&ours[0]["count"], &ours[0]["pod"], &ours[0]["container"]),
        (&json!(6), &pod_json, &container),
        "{summary}"
    );

    let export = Command::new(droptrace_bin())
        .args(["export", file_arg, "--jsonl", "-"])
        .output()
        .expect("export");
    let text = String::from_utf8_lossy(&export.stdout);
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .filter(|l: &Value| l["dport"] == PORT)
        .collect();
    assert_eq!(lines.len(), 6, "{text}");
    assert!(
        lines
            .iter()
            .all(|l| l["pod"] == pod_json && l["container"] == container),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn diagnose_names_the_pod_in_its_findings() {
    let (ctd, _plain) = setup();
    let pod = Pod::run(&ctd, "shop", &format!("diag-{}", std::process::id()), "web");
    let dt = Droptrace::start(&[
        "diagnose",
        "--pod",
        &pod.arg(),
        "--duration",
        "3",
        "--format",
        "json",
    ]);
    pod_drops(&pod, 5);
    let report = dt.wait_json();
    let findings = report["findings"].as_array().expect("findings");
    let mine = findings
        .iter()
        .find(|f| f["dport"] == PORT)
        .unwrap_or_else(|| panic!("no finding for port {PORT}: {report}"));
    assert_eq!(mine["drops"], 5, "{report}");
    assert_eq!(mine["pod"], pod.arg().as_str(), "{report}");
    let evidence = mine["evidence"].to_string();
    assert!(
        evidence.contains(&format!("in pod {}", pod.arg())),
        "{report}"
    );
}

fn metrics_label_the_pods_drops_with_the_pod_and_container() {
    let (ctd, plain) = setup();
    let pod = Pod::run(&ctd, "shop", &format!("api-{}", std::process::id()), "api");
    let port = PORT.to_string();
    let dt = Droptrace::start(&["serve", "--listen", "127.0.0.1:0", "--dport", &port]);
    let addr = dt.serving();
    pod_drops(&pod, 6);
    plain_drops(&plain, 2);
    // The series of the pod's drops, as a scraper reads them.
    let pod_series = |body: &str| -> u64 {
        body.lines()
            .filter(|l| l.starts_with("droptrace_drops_total{"))
            .filter(|l| {
                l.contains(&format!("pod=\"{}\"", pod.name))
                    && l.contains(&format!("pod_namespace=\"{}\"", pod.namespace))
                    && l.contains("container=\"api\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    let scrape = || {
        http::get(addr, "/metrics", &[])
            .map(|a| a.body)
            .unwrap_or_default()
    };
    let seen = reaches("the pod's series", 6, || pod_series(&scrape()));
    assert_eq!(seen, 6, "{}", scrape());
    // The plain namespace's drops are in a series without a pod (the exporter folds drops
    // in on its tick: wait for them, as for the pod's).
    let plain_series = |body: &str| -> u64 {
        body.lines()
            .filter(|l| l.starts_with("droptrace_drops_total{") && l.contains("pod=\"\""))
            .filter(|l| l.contains(&format!("netns=\"{}\"", plain.name)))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    let seen = reaches(
        "the plain namespace's series",
        2,
        || plain_series(&scrape()),
    );
    assert_eq!(seen, 2, "{}", scrape());
    let out = dt.stop(libc::SIGTERM);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

droptrace_tests::root_tests!(
    json_and_text_name_the_pod_and_count_exactly,
    pod_and_container_filters_keep_only_the_pods_drops,
    recordings_keep_the_pod_for_report_and_export,
    diagnose_names_the_pod_in_its_findings,
    metrics_label_the_pods_drops_with_the_pod_and_container,
);
