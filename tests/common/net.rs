//! A real `nats-server` (one, or three routed as a cluster) and real `sit` processes whose
//! output is collected as it comes: the probe network's tests.

use sit_core::observation::Observation;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A nats-server with JetStream on a loopback port, its store in a folder of its own.
pub struct Nats {
    child: Option<Child>,
    pub port: u16,
    store: PathBuf,
    /// In a cluster: this server's name, cluster port and the others' cluster ports.
    cluster: Option<(String, u16, Vec<u16>)>,
}

impl Nats {
    /// None (and SKIPPED printed) when nats-server is not installed, unless SIT_REQUIRE_NATS.
    pub fn start(dir: &Path) -> Option<Nats> {
        if !Nats::installed() {
            return None;
        }
        let mut n = Nats {
            child: None,
            port: free_port(),
            store: dir.join("nats-store"),
            cluster: None,
        };
        n.up();
        Some(n)
    }

    /// Three servers with JetStream on loopback ports, routed to each other as one cluster,
    /// each with its store folder of its own.
    pub fn cluster(dir: &Path) -> Option<Vec<Nats>> {
        if !Nats::installed() {
            return None;
        }
        let routes: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let mut out = Vec::new();
        for i in 0..3 {
            let mut n = Nats {
                child: None,
                port: free_port(),
                store: dir.join(format!("nats-{i}")),
                cluster: Some((format!("n{i}"), routes[i], routes.clone())),
            };
            n.up();
            out.push(n);
        }
        Some(out)
    }

    fn installed() -> bool {
        let found = Command::new("nats-server")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            assert!(
                std::env::var_os("SIT_REQUIRE_NATS").is_none(),
                "SIT_REQUIRE_NATS is set but nats-server is not on PATH"
            );
            eprintln!("SKIPPED: nats-server is not installed (apt-get install nats-server)");
        }
        found
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn up(&mut self) {
        let mut c = Command::new("nats-server");
        c.args([
            "-js",
            "-a",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-sd",
        ])
        .arg(&self.store);
        if let Some((name, port, routes)) = &self.cluster {
            let routes: Vec<String> = routes
                .iter()
                .map(|p| format!("nats://127.0.0.1:{p}"))
                .collect();
            c.args(["-n", name, "--cluster_name", "sit", "--cluster"])
                .arg(format!("nats://127.0.0.1:{port}"))
                .arg("--routes")
                .arg(routes.join(","));
        }
        let child = c
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "nats-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.down();
    }
}

/// A running `sit` process whose stdout lines are collected as they come.
pub struct Proc {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Proc {
    pub fn spawn(c: Command) -> Proc {
        Proc::spawn_with(c, false)
    }

    /// With `stderr`, its lines (the log) are collected too, after each is printed.
    pub fn spawn_with(mut c: Command, stderr: bool) -> Proc {
        let mut child = c
            .stdout(Stdio::piped())
            .stderr(if stderr {
                Stdio::piped()
            } else {
                Stdio::inherit()
            })
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(|l| l.ok()) {
                l.lock().unwrap().push(line);
            }
        });
        if let Some(err) = child.stderr.take() {
            let l = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(|l| l.ok()) {
                    eprintln!("{line}");
                    l.lock().unwrap().push(line);
                }
            });
        }
        Proc {
            child,
            lines,
            reader: Some(reader),
        }
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    pub fn signal(&mut self, sig: i32) {
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Wait for the process to exit; its stdout lines.
    pub fn wait(mut self, limit: Duration) -> (std::process::ExitStatus, Vec<String>) {
        let t0 = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if t0.elapsed() > limit {
                let _ = self.child.kill();
                panic!("process did not exit within {limit:?}: {:?}", self.lines());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let lines = self.lines();
        (status, lines)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `N acked` from a worker's last line.
pub fn acked(lines: &[String]) -> u64 {
    lines
        .iter()
        .rev()
        .find_map(|l| l.strip_suffix(" acked").and_then(|n| n.parse().ok()))
        .unwrap_or_else(|| panic!("no `N acked` line: {lines:?}"))
}

/// Wait for each worker to finish (successfully); what JetStream acknowledged of each.
pub fn wait_workers(workers: Vec<(String, Proc)>, secs: u64) -> BTreeMap<String, u64> {
    let mut acks = BTreeMap::new();
    for (v, w) in workers {
        let (status, lines) = w.wait(Duration::from_secs(secs));
        assert!(status.success(), "{v}: {lines:?}");
        acks.insert(v, acked(&lines));
    }
    acks
}

/// The latest `stored N` of a collector.
pub fn stored_so_far(p: &Proc) -> u64 {
    p.lines()
        .iter()
        .rev()
        .find_map(|l| {
            l.strip_prefix("stored ")
                .and_then(|n| n.split(' ').next())
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// Every acknowledged observation of every vantage is stored once: per vantage, the origins
/// are exactly seq 0..acked, the collector's copy of each chain links record to record, and
/// the records are the workers' own (their hash is the one the worker signed).
pub fn check_exactly_once(stored: &[Observation], acked: &BTreeMap<String, u64>) {
    let mut by: BTreeMap<&str, Vec<&Observation>> = BTreeMap::new();
    for o in stored {
        by.entry(o.worker.as_str()).or_default().push(o);
    }
    for (v, n) in acked {
        let recs = by.remove(v.as_str()).unwrap_or_default();
        let origins: Vec<u64> = recs
            .iter()
            .map(|o| o.origin.as_ref().unwrap().seq)
            .collect();
        let distinct: BTreeSet<u64> = origins.iter().copied().collect();
        assert_eq!(distinct.len(), origins.len(), "{v}: a record stored twice");
        // the worker may have spooled (and shipped) more after its last count; never less
        assert!(
            origins.len() as u64 >= *n,
            "{v}: {} stored, {n} acked",
            origins.len()
        );
        assert_eq!(
            distinct,
            (0..origins.len() as u64).collect::<BTreeSet<_>>(),
            "{v}: the stored records are not the chain from its start"
        );
        for o in &recs {
            assert_eq!(o.vantage.as_deref(), Some(v.as_str()));
        }
    }
    assert!(
        by.is_empty(),
        "records of unregistered workers: {:?}",
        by.keys()
    );
}
