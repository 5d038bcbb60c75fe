//! A containerd of the test's own (its own config, root, state and socket, stopped by
//! PID at the end) and pods made the way Kubernetes' CRI plugin makes them: a sandbox
//! container holding a new network namespace, and an app container joining it, both
//! with the CRI annotations, from a busybox rootfs. Nothing of the host's network is
//! touched: the namespace is made by runc and belongs to the test.
use std::{
    os::unix::fs::{symlink, MetadataExt},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use crate::{wait_exit, wait_for};

/// The programs these tests drive (`cargo xtask setup` installs them).
const TOOLS: &[&str] = &["containerd", "ctr", "runc", "containerd-shim-runc-v2"];
const BUSYBOX: &str = "/bin/busybox";

/// Ends the test as skipped unless containerd, runc and busybox are here (a failure under
/// `cargo xtask test`, whose setup installs them).
pub fn require() {
    let missing: Vec<&str> = TOOLS
        .iter()
        .copied()
        .filter(|t| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {t}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .chain((!Path::new(BUSYBOX).exists()).then_some(BUSYBOX))
        .collect();
    if !missing.is_empty() {
        crate::missing(format!(
            "{missing:?} not installed (`cargo xtask setup`, or apt-get install containerd runc busybox-static)"
        ));
    }
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A running containerd; stopped (by its PID) and its directory removed on drop.
pub struct Containerd {
    dir: PathBuf,
    child: Child,
}

impl Containerd {
    pub fn start() -> Containerd {
        // A short path: the socket's must fit in 108 bytes.
        let dir = PathBuf::from(format!(
            "/tmp/dtctd-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("containerd dir");
        let config = format!(
            "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{d}/sock\"\n[ttrpc]\n  address = \"{d}/sock.ttrpc\"\n",
            d = dir.display()
        );
        std::fs::write(dir.join("config.toml"), config).expect("containerd config");
        let log = std::fs::File::create(dir.join("log")).expect("containerd log");
        let child = Command::new("containerd")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("starting containerd");
        let ctd = Containerd { dir, child };
        wait_for("containerd to answer on its socket", || {
            ctd.ctr_status(&["version"]).then_some(())
        });
        ctd
    }

    /// Where it keeps its tasks' state (what a node's /run/containerd holds).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// Its own directory, for files of a test's (container logs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn ctr_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("-a")
            .arg(self.dir.join("sock"))
            .args(["-n", "k8s.io"])
            .args(args);
        cmd
    }

    fn ctr_status(&self, args: &[&str]) -> bool {
        self.ctr_command(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Runs ctr; panics with its stderr on failure.
    pub fn ctr(&self, args: &[&str]) -> String {
        let out = self.ctr_command(args).output().expect("starting ctr");
        assert!(
            out.status.success(),
            "ctr {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The PID of a container's first process, once runc has started it.
    fn init_pid(&self, id: &str) -> u32 {
        let file = self
            .dir
            .join("state/io.containerd.runtime.v2.task/k8s.io")
            .join(id)
            .join("init.pid");
        wait_for(&format!("container {id} to run"), || {
            std::fs::read_to_string(&file).ok()?.trim().parse().ok()
        })
    }

    /// A busybox rootfs for one container.
    fn rootfs(&self, id: &str) -> PathBuf {
        let root = self.dir.join("rootfs").join(id);
        std::fs::create_dir_all(root.join("bin")).expect("rootfs");
        std::fs::copy(BUSYBOX, root.join("bin/busybox")).expect("copy busybox");
        symlink("busybox", root.join("bin/sh")).expect("sh");
        root
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: signalling our own child by its PID.
            unsafe { libc::kill(i32::try_from(self.child.id()).expect("pid"), libc::SIGTERM) };
            if wait_exit(&mut self.child, Duration::from_secs(20)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A pod as the CRI plugin makes it: a sandbox in a new network namespace and one app
/// container in it, both annotated with the pod. Removed on drop.
pub struct Pod<'a> {
    ctd: &'a Containerd,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub sandbox_id: String,
    pub container_id: String,
    pub container_name: String,
    /// The sandbox's first process: its `/proc/PID/ns/net` is the pod's namespace.
    pub sandbox_pid: u32,
}

impl<'a> Pod<'a> {
    pub fn run(ctd: &'a Containerd, namespace: &str, name: &str, container: &str) -> Pod<'a> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let id = |kind: u32| format!("{:032x}{:024x}{:08x}", 0xd7_u128 << 96, pid, kind << 16 | n);
        let (sandbox_id, container_id) = (id(1), id(2));
        let uid = format!("0b6c4f0e-{:04x}-4c2a-9d3e-{:012x}", n, pid);
        let pod_annotations = [
            format!("io.kubernetes.cri.sandbox-id={sandbox_id}"),
            format!("io.kubernetes.cri.sandbox-name={name}"),
            format!("io.kubernetes.cri.sandbox-namespace={namespace}"),
            format!("io.kubernetes.cri.sandbox-uid={uid}"),
        ];
        let run = |id: &str, extra: &[String], with_ns: Option<String>| {
            let rootfs = ctd.rootfs(id);
            let mut args: Vec<String> = vec!["run".into(), "-d".into()];
            if let Some(ns) = with_ns {
                args.extend(["--with-ns".into(), ns]);
            }
            for a in pod_annotations.iter().chain(extra) {
                args.extend(["--annotation".into(), a.clone()]);
            }
            args.extend([
                "--rootfs".into(),
                rootfs.display().to_string(),
                id.into(),
                "/bin/busybox".into(),
                "sleep".into(),
                "3600".into(),
            ]);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            ctd.ctr(&args);
        };
        run(
            &sandbox_id,
            &["io.kubernetes.cri.container-type=sandbox".into()],
            None,
        );
        let mut pod = Pod {
            ctd,
            namespace: namespace.into(),
            name: name.into(),
            uid,
            sandbox_id: sandbox_id.clone(),
            container_id: container_id.clone(),
            container_name: container.into(),
            sandbox_pid: 0,
        };
        pod.sandbox_pid = ctd.init_pid(&sandbox_id);
        let own = std::fs::metadata("/proc/self/ns/net")
            .expect("own netns")
            .ino();
        wait_for("the sandbox's own network namespace", || {
            let ino = std::fs::metadata(pod.netns_path()).ok()?.ino();
            (ino != own).then_some(())
        });
        run(
            &container_id,
            &[
                "io.kubernetes.cri.container-type=container".into(),
                format!("io.kubernetes.cri.container-name={container}"),
                "io.kubernetes.cri.image-name=docker.io/library/busybox:1.35".into(),
            ],
            Some(format!("network:{}", pod.netns_path().display())),
        );
        let app = ctd.init_pid(&container_id);
        let inode = pod.netns_inode();
        wait_for("the container to join the pod's namespace", || {
            let ino = std::fs::metadata(format!("/proc/{app}/ns/net")).ok()?.ino();
            (ino == u64::from(inode)).then_some(())
        });
        pod
    }

    pub fn netns_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/net", self.sandbox_pid))
    }

    pub fn netns_inode(&self) -> u32 {
        u32::try_from(
            std::fs::metadata(self.netns_path())
                .expect("the pod's netns")
                .ino(),
        )
        .expect("inode")
    }

    /// `namespace/name`, as `--pod` takes it.
    pub fn arg(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Runs `f` on a thread inside the pod's network namespace.
    pub fn run_inside<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        crate::in_namespace(&self.netns_path(), f)
    }

    /// A counter of the pod's namespace from /proc/net/snmp, e.g. ("Udp", "NoPorts").
    pub fn snmp(&self, proto: &str, field: &str) -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{}/net/snmp", self.sandbox_pid))
            .expect("the pod's snmp");
        crate::snmp_value(&text, proto, field)
            .unwrap_or_else(|| panic!("no {proto} {field} in the pod's snmp"))
    }
}

/// A container a test started with `ctr run`: its task and container removed on drop,
/// so no shim or mount outlives the test.
pub struct Started<'a> {
    ctd: &'a Containerd,
    pub id: String,
}

impl<'a> Started<'a> {
    /// Runs `ctr run ARGS` (which must name the container `id`) and guards it.
    pub fn run(ctd: &'a Containerd, id: &str, args: &[&str]) -> Started<'a> {
        let started = Started { ctd, id: id.into() };
        ctd.ctr(args);
        started
    }

    /// Waits (bounded) for the task to stop by itself; its exit status from `ctr task ls`.
    pub fn wait_stopped(&self) {
        wait_for(&format!("container {} to stop", self.id), || {
            let tasks = self.ctd.ctr(&["task", "ls"]);
            tasks
                .lines()
                .any(|l| l.starts_with(&self.id) && l.contains("STOPPED"))
                .then_some(())
        });
    }
}

/// Waits (bounded) until no process holds `log` open: the shim copies a task's output to
/// its `file://` log after the task has stopped, so what the task wrote is all there only
/// once the shim has closed the file.
pub fn wait_log_closed(log: &Path) {
    let held = || -> bool {
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return false;
        };
        procs.flatten().any(|p| {
            std::fs::read_dir(p.path().join("fd")).is_ok_and(|fds| {
                fds.flatten()
                    .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t == log))
            })
        })
    };
    wait_for(&format!("{} to be closed", log.display()), || {
        (!held()).then_some(())
    });
}

impl Drop for Started<'_> {
    fn drop(&mut self) {
        for args in [
            ["task", "rm", "-f", self.id.as_str()],
            ["container", "rm", self.id.as_str(), ""],
        ] {
            let args: Vec<&str> = args.into_iter().filter(|a| !a.is_empty()).collect();
            let _ = self
                .ctd
                .ctr_command(&args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for Pod<'_> {
    fn drop(&mut self) {
        for id in [&self.container_id, &self.sandbox_id] {
            let _ = self
                .ctd
                .ctr_command(&["task", "rm", "-f", id])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let _ = self
                .ctd
                .ctr_command(&["container", "rm", id])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}
