//! The OCI image of `cargo xtask image`, imported into a real containerd and run the way
//! deploy/kubernetes/daemonset.yaml runs it: the host's network and PID namespaces, a
//! read-only root, the runtime's default seccomp filter, only the capabilities the
//! manifest grants, its read-only mounts and `--host-root /host`. `serve` in the container is scraped by a real Prometheus and
//! equals an nft rule's counter; `diagnose` executed in the running container names the
//! rule dropping in a pod that containerd started; without a capability the container
//! says which one, and exits.
use std::{
    net::{SocketAddr, TcpListener, UdpSocket},
    path::PathBuf,
    process::Command,
};

use droptrace_tests::{
    containerd::{self, Containerd, Pod, Started},
    prometheus::Prometheus,
    *,
};

/// The capabilities the DaemonSet adds (everything else dropped).
const GRANTED: &[&str] = &[
    "CAP_BPF",
    "CAP_PERFMON",
    "CAP_SYSLOG",
    "CAP_SYS_ADMIN",
    "CAP_SYS_PTRACE",
];
/// What ctr's default spec grants, all dropped as `drop: ["ALL"]` does.
const CTR_DEFAULTS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// The image archive and its reference, from `cargo xtask image` (which `cargo xtask
/// test` runs first and passes on).
fn image() -> (PathBuf, String) {
    containerd::require();
    let version = env!("CARGO_PKG_VERSION");
    let archive = std::env::var_os("DROPTRACE_IMAGE").map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join(format!("../target/image/droptrace-{version}-oci.tar"))
        },
        PathBuf::from,
    );
    if !archive.exists() {
        assert!(
            std::env::var_os("DROPTRACE_IMAGE").is_none(),
            "DROPTRACE_IMAGE names {} which does not exist",
            archive.display()
        );
        skip(format!(
            "no image at {} (`cargo xtask image` builds it)",
            archive.display()
        ));
    }
    let reference = std::env::var("DROPTRACE_IMAGE_REF")
        .unwrap_or_else(|_| format!("docker.io/library/droptrace:{version}"));
    (archive, reference)
}

/// `ctr run` arguments for the image as the DaemonSet runs it, with `caps` added.
fn daemonset_args(ctd: &Containerd, caps: &[&str], log: &std::path::Path) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "run".into(),
        "-d".into(),
        "--net-host".into(),
        "--read-only".into(),
        // seccompProfile RuntimeDefault: containerd's default filter.
        "--seccomp".into(),
        // hostPID: the PID namespace of this test, the host's.
        "--with-ns".into(),
        format!("pid:/proc/{}/ns/pid", std::process::id()),
        "--log-uri".into(),
        format!("file://{}", log.display()),
    ];
    for cap in CTR_DEFAULTS {
        args.extend(["--cap-drop".into(), (*cap).into()]);
    }
    for cap in caps {
        args.extend(["--cap-add".into(), (*cap).into()]);
    }
    // The manifest's volumes, read-only; the test's containerd state stands for the
    // node's /run/containerd.
    let mounts = [
        ("/sys/kernel/btf".to_owned(), "/sys/kernel/btf", "rbind:ro"),
        (
            "/sys/kernel/tracing".to_owned(),
            "/sys/kernel/tracing",
            "rbind:ro",
        ),
        ("/run/netns".to_owned(), "/run/netns", "rbind:ro:rslave"),
        (
            ctd.state_dir().display().to_string(),
            "/host/run/containerd",
            "rbind:ro",
        ),
    ];
    for (src, dst, options) in mounts {
        args.extend([
            "--mount".into(),
            format!("type=bind,src={src},dst={dst},options={options}"),
        ]);
    }
    args
}

/// A free port on loopback for the container's `serve` (host network).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn import(ctd: &Containerd, archive: &std::path::Path, reference: &str) {
    let said = ctd.ctr(&["image", "import", archive.to_str().unwrap()]);
    assert!(said.contains(reference), "import said: {said}");
}

/// What `daemonset_args` gives the container is what the manifest asks for: the same
/// capabilities, the runtime's default seccomp filter, a read-only root, host network and
/// PIDs. Needs no root.
fn the_container_runs_with_what_the_daemonset_asks_for() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes/daemonset.yaml");
    let manifest = std::fs::read_to_string(&path).expect("the DaemonSet manifest");
    let lines: Vec<&str> = manifest.lines().map(str::trim).collect();
    let added = lines
        .iter()
        .find_map(|l| l.strip_prefix("add: ["))
        .and_then(|l| l.strip_suffix(']'))
        .expect("the manifest adds capabilities as `add: [...]`");
    let mut added: Vec<String> = added
        .split(',')
        .map(|c| format!("CAP_{}", c.trim().trim_matches('"')))
        .collect();
    let mut granted: Vec<String> = GRANTED.iter().map(|c| (*c).to_owned()).collect();
    added.sort();
    granted.sort();
    assert_eq!(added, granted, "{}", path.display());
    for wanted in [
        "drop: [\"ALL\"]",
        "type: RuntimeDefault",
        "readOnlyRootFilesystem: true",
        "hostNetwork: true",
        "hostPID: true",
    ] {
        assert!(
            lines.contains(&wanted),
            "{} lacks `{wanted}`",
            path.display()
        );
    }
}

fn the_image_serves_and_diagnoses_as_the_daemonset_runs_it() {
    let (archive, reference) = image();
    let ctd = Containerd::start();
    import(&ctd, &archive, &reference);

    // serve, as the DaemonSet's args say, on loopback.
    let (pair, _listener) = Pair::with_nft_drop_on_1678();
    let port = free_port();
    let log = ctd.dir().join("serve.log");
    let mut args = daemonset_args(&ctd, GRANTED, &log);
    let listen = format!("--listen=127.0.0.1:{port}");
    args.extend([
        reference.clone(),
        "dt-serve".into(),
        "/usr/bin/droptrace".into(),
        "serve".into(),
        "--host-root=/host".into(),
        listen,
        "--port".into(),
        "1678".into(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let _serve = Started::run(&ctd, "dt-serve", &args);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_for("droptrace serve in the container to say it serves", || {
        let said = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            !said.contains("error"),
            "serve in the container failed:\n{said}"
        );
        said.contains("serving http://").then_some(())
    });
    let prom = Prometheus::start(addr, None);
    let packets = pair.nft_dropped_syns(5);
    let query = format!(
        "sum(droptrace_drops_total{{reason=\"NETFILTER_DROP\",netns=\"{}\"}})",
        pair.b.name
    );
    let seen = reaches(
        "Prometheus's sum of the container's series",
        packets,
        || prom.value(&query) as u64,
    );
    assert_eq!(seen, packets, "the container's series equal the nft rule");

    // diagnose, executed in the running container, on drops in a pod containerd started:
    // an nft rule in the pod's namespace drops UDP to 5353.
    let pod = Pod::run(&ctd, "shop", "web-7d9f", "web");
    let netns = pod.netns_path();
    let nft = |rule: &str| {
        let out = Command::new("nsenter")
            .arg(format!("--net={}", netns.display()))
            .arg("nft")
            .arg(rule)
            .output()
            .expect("nsenter nft");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    nft("add table inet pod");
    nft("add chain inet pod input { type filter hook input priority 0; policy accept; }");
    nft("add rule inet pod input udp dport 5353 counter drop comment \"pod5353\"");
    let secs = (5 * time_scale()).to_string();
    let mut exec = ctd.ctr_command(&[
        "task",
        "exec",
        "--exec-id",
        "diagnose",
        "dt-serve",
        "/usr/bin/droptrace",
        "diagnose",
        "--host-root=/host",
        "--duration",
        &secs,
        "--format",
        "json",
        "--pod",
        &pod.arg(),
    ]);
    exec.env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    let dt = Droptrace::spawn(exec);
    pod.run_inside(|| {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..20 {
            s.send_to(b"dropped", "127.0.0.1:5353").unwrap();
        }
    });
    let dropped = wait_for("the pod's rule to count 20", || {
        let text = nft("list ruleset");
        let n: u64 = text
            .split("packets ")
            .nth(1)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        (n >= 20).then_some(n)
    });
    let report = dt.wait_json();
    eprintln!("report: {report:#}");
    assert_eq!(report["total"], dropped, "{report:#}");
    let top = &report["findings"][0];
    assert_eq!(top["cause"], "netfilter_rule", "{report:#}");
    assert_eq!(top["drops"], dropped);
    let said = top.to_string();
    assert!(said.contains("udp dport 5353"), "the rule's text: {said}");
    assert!(said.contains("shop/web-7d9f"), "the pod's name: {said}");
}

fn the_image_without_bpf_privileges_says_which_capability() {
    let (archive, reference) = image();
    let ctd = Containerd::start();
    import(&ctd, &archive, &reference);
    // CAP_SYS_ADMIN alone would let it load programs too: take both away.
    let granted: Vec<&str> = GRANTED
        .iter()
        .copied()
        .filter(|c| !matches!(*c, "CAP_BPF" | "CAP_SYS_ADMIN"))
        .collect();
    let log = ctd.dir().join("nocap.log");
    let mut args = daemonset_args(&ctd, &granted, &log);
    args.extend([
        reference,
        "dt-nocap".into(),
        "/usr/bin/droptrace".into(),
        "serve".into(),
        "--host-root=/host".into(),
        "--listen=127.0.0.1:0".into(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let container = Started::run(&ctd, "dt-nocap", &args);
    container.wait_stopped();
    containerd::wait_log_closed(&log);
    let status = ctd.ctr(&["task", "ls"]);
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(said.contains("CAP_BPF"), "names the capability: {said}");
    assert!(!said.contains("panicked"), "{said}");
    assert!(!said.contains("serving http"), "it did not serve: {said}");
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("dt-nocap") && l.contains("STOPPED")),
        "{status}"
    );
}

droptrace_tests::root_tests!(
    the_container_runs_with_what_the_daemonset_asks_for,
    the_image_serves_and_diagnoses_as_the_daemonset_runs_it,
    the_image_without_bpf_privileges_says_which_capability,
);
