//! A real Prometheus (Debian's package) for the exporter's tests: started on loopback with
//! its own data directory and a 1 s scrape interval, queried through its HTTP API, stopped
//! by its PID.
use std::{
    net::{SocketAddr, TcpListener},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::Value;

use crate::{http, wait_exit, wait_for};

pub struct Prometheus {
    child: Child,
    pub addr: SocketAddr,
    dir: PathBuf,
}

impl Prometheus {
    /// Starts Prometheus scraping `target` every second (with `rules` loaded, if given) and
    /// returns once it is ready and the target is up.
    pub fn start(target: SocketAddr, rules: Option<&str>) -> Prometheus {
        let dir = std::env::temp_dir().join(format!(
            "droptrace-prometheus-{}-{}",
            std::process::id(),
            target.port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let rule_files = rules.map_or_else(String::new, |r| format!("rule_files: ['{r}']\n"));
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n{rule_files}\
             scrape_configs:\n  - job_name: droptrace\n    static_configs:\n      - targets: ['{target}']\n"
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        // A free port can be taken between finding it and Prometheus binding it: try again.
        for _ in 0..5 {
            let addr = free_port();
            let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
            let child = Command::new("prometheus")
                .arg(format!(
                    "--config.file={}",
                    dir.join("prometheus.yml").display()
                ))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("data").display()
                ))
                .arg(format!("--web.listen-address={addr}"))
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start prometheus (apt-get install prometheus)");
            let mut p = Prometheus {
                child,
                addr,
                dir: dir.clone(),
            };
            let ready = wait_for("Prometheus to be ready or to exit", || {
                if let Ok(Some(status)) = p.child.try_wait() {
                    return Some(Err(status));
                }
                http::get(addr, "/-/ready", &[])
                    .filter(|a| a.status == 200)
                    .map(Ok)
            });
            match ready {
                Ok(_) => {
                    wait_for("Prometheus to scrape droptrace", || {
                        let up = p.query("up{job=\"droptrace\"}");
                        (up.first().map(|(_, v)| *v) == Some(1.0)).then_some(())
                    });
                    return p;
                }
                Err(status) => {
                    let log =
                        std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
                    assert!(
                        log.contains("address already in use"),
                        "prometheus exited ({status}):\n{log}"
                    );
                }
            }
        }
        panic!("no free port for Prometheus after 5 tries");
    }

    /// An instant query: (labels, value) of each series of the result.
    pub fn query(&self, query: &str) -> Vec<(Value, f64)> {
        let path = format!("/api/v1/query?query={}", http::encode_query(query));
        let Some(answer) = http::get(self.addr, &path, &[]) else {
            return Vec::new();
        };
        let Ok(v) = serde_json::from_str::<Value>(&answer.body) else {
            return Vec::new();
        };
        v["data"]["result"]
            .as_array()
            .map(|series| {
                series
                    .iter()
                    .filter_map(|s| {
                        let value = s["value"][1].as_str()?.parse().ok()?;
                        Some((s["metric"].clone(), value))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The single value of a query that sums to one series (0 when there is none yet).
    pub fn value(&self, query: &str) -> f64 {
        self.query(query).first().map_or(0.0, |(_, v)| *v)
    }

    /// Rules loaded and evaluated (the rule files parse and run in a real Prometheus).
    pub fn rule_groups(&self) -> Value {
        http::get(self.addr, "/api/v1/rules", &[])
            .and_then(|a| serde_json::from_str(&a.body).ok())
            .unwrap_or(Value::Null)
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        // SAFETY: signalling the child we started, by its PID.
        unsafe { libc::kill(i32::try_from(self.child.id()).unwrap_or(0), libc::SIGTERM) };
        if wait_exit(&mut self.child, Duration::from_secs(20)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
}
