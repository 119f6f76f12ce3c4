//! No single machine stops a publication: three real `nats-server`s routed as one JetStream
//! cluster (every stream R3), two `sit collect`ors holding the publisher lease in turn, three
//! `sit worker`s, the real simulator, a compressed clock. The leader collector is killed
//! (SIGKILL) during a day and again during a publication, one NATS server is killed, and the
//! old leader is paused (SIGSTOP) across the lease's expiry and resumed. Afterwards every
//! acknowledged observation is stored exactly once in each collector, in the same order with
//! the same bytes (both read the stream in its order), each (tier, date) is published once
//! per version, both collectors' archives are byte-identical, every day's bundle in each
//! collector verifies and replays identical (whichever collector determined the day), and the
//! paused leader said its term was over. The failover times (kill to the other's lease) are
//! printed: BENCHMARKS.md.
//!
//! Needs `nats-server` on PATH (`.ci/run` installs it and sets `SIT_REQUIRE_NATS=1`, which
//! makes its absence a failure); without it the test prints SKIPPED.

mod common;
use common::net::{check_exactly_once, wait_workers, Nats, Proc};
use common::{sim, sit, text, tree};

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const START: &str = "2026-01-05";
const DAY2: &str = "2026-01-06";
const UNTIL: &str = "2026-01-07";
const VANTAGES: [&str; 3] = ["eu", "us", "ap"];
const HOUR_MS: u64 = 250;
const LEASE_SECS: &str = "2";

struct Cluster {
    root: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    nats: Vec<Nats>,
}

impl Cluster {
    fn urls(&self) -> String {
        self.nats
            .iter()
            .map(|n| n.url())
            .collect::<Vec<_>>()
            .join(",")
    }

    fn path(&self, p: &str) -> PathBuf {
        self.root.join(p)
    }

    fn collector(&self, name: &str) -> Proc {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sit"));
        c.env("RUST_LOG", "info")
            .arg("--data")
            .arg(self.path(&format!("collector-{name}")))
            .arg("--providers")
            .arg(self.path("providers.toml"))
            .args(["collect", "--nats", &self.urls(), "--print-acks"])
            .args([
                "--name",
                name,
                "--replicas",
                "3",
                "--lease-secs",
                LEASE_SECS,
            ])
            .arg("--workers")
            .arg(self.path("workers.toml"))
            .arg("--key")
            .arg(self.path("oracle/signing-key.pem"))
            .args(["--start", START, "--hour-ms", &HOUR_MS.to_string()])
            .args(["--until", UNTIL]);
        Proc::spawn_with(c, true)
    }

    fn worker(&self, vantage: &str) -> Proc {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sit"));
        c.arg("--data")
            .arg(self.path(&format!("spool-{vantage}")))
            .arg("--providers")
            .arg(self.path("providers.toml"))
            .args(["worker", "--vantage", vantage, "--nats", &self.urls()])
            .arg("--key")
            .arg(self.path(&format!("{vantage}/signing-key.pem")))
            .args(["--start", START, "--hour-ms", &HOUR_MS.to_string()])
            .args(["--until", UNTIL, "--per-hour", "1", "--drain-secs", "60"]);
        Proc::spawn(c)
    }
}

/// Whether the process's latest word on the lease is that it holds it.
fn holds_lease(p: &Proc) -> bool {
    p.lines()
        .iter()
        .rev()
        .find_map(|l| {
            if l.contains("holds the publisher lease") {
                Some(true)
            } else if l.contains("lost the publisher lease") || l.contains("gave up the publisher")
            {
                Some(false)
            } else {
                None
            }
        })
        .unwrap_or(false)
}

/// The failover time, printed for BENCHMARKS.md (measured, never asserted).
fn failover(how: &str, since: Instant) {
    eprintln!(
        "failover: the leader {how}: a collector holds the lease again after {:.2} s (lease {LEASE_SECS} s)",
        since.elapsed().as_secs_f64()
    );
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn killed_paused_and_partitioned_collectors_publish_every_day_once_with_identical_archives() {
    let tmp = tempfile::tempdir().unwrap();
    // SIT_KEEP_TEST_DIR=1: the folder stays, to look at after a failure
    let (root, guard) = if std::env::var_os("SIT_KEEP_TEST_DIR").is_some() {
        let root = tmp.keep();
        eprintln!("test folder kept: {}", root.display());
        (root, None)
    } else {
        (tmp.path().to_path_buf(), Some(tmp))
    };
    let Some(nats) = Nats::cluster(&root) else {
        return;
    };
    let mut net = Cluster {
        root,
        _tmp: guard,
        nats,
    };
    // six endpoints: enough for valid partitions (as tests/run.rs)
    let _sim = sim(&net.path("providers.toml"), 6, "");
    let mut rows = String::new();
    for v in VANTAGES.iter().chain(&["oracle"]) {
        let o = sit(&["keys", "generate", "--out", net.path(v).to_str().unwrap()]);
        assert!(o.status.success(), "{}", text(&o));
        if *v != "oracle" {
            rows.push_str(&format!(
                "[[worker]]\nvantage = \"{v}\"\npublic_key = \"{v}/public-key.pem\"\n\n"
            ));
        }
    }
    std::fs::write(net.path("workers.toml"), rows).unwrap();

    // two collectors and three workers, started together (their clocks run alike)
    let mut cs: Vec<(&str, Proc)> = vec![("a", net.collector("a")), ("b", net.collector("b"))];
    let t0 = Instant::now();
    let workers: Vec<(String, Proc)> = VANTAGES
        .iter()
        .map(|v| (v.to_string(), net.worker(v)))
        .collect();
    let leader = |cs: &[(&str, Proc)]| cs.iter().position(|(_, p)| holds_lease(p));
    let restart = |cs: &mut Vec<(&str, Proc)>, i: usize| {
        let name = cs[i].0;
        cs[i].1.signal(libc::SIGKILL);
        let old = std::mem::replace(&mut cs[i].1, net.collector(name));
        let _ = old.wait(Duration::from_secs(10));
    };
    // the cluster forms, makes its streams, and one collector takes the lease
    wait_for(
        "a collector takes the lease",
        Duration::from_secs(60),
        || leader(&cs).is_some(),
    );

    // 1. the leader killed during the first day; it comes back as the standby
    std::thread::sleep(Duration::from_millis(8 * HOUR_MS).saturating_sub(t0.elapsed()));
    let l = leader(&cs).unwrap();
    let killed = Instant::now();
    restart(&mut cs, l);
    wait_for("a new leader", Duration::from_secs(20), || {
        leader(&cs).is_some()
    });
    failover("killed during a day", killed);

    // 2. the leader killed during a publication: as soon as the day's first record is in its
    //    archive (the other tiers, the bundle and the settlements still to come)
    wait_for(
        "the first day's publication",
        Duration::from_secs(60),
        || {
            ["a", "b"].iter().any(|c| {
                net.path(&format!("collector-{c}/published/t1/{START}.v1.json"))
                    .exists()
            })
        },
    );
    let killed = Instant::now();
    if let Some(l) = leader(&cs) {
        restart(&mut cs, l);
    }
    wait_for("a new leader", Duration::from_secs(20), || {
        leader(&cs).is_some()
    });
    failover("killed during a publication", killed);

    // 3. one NATS server of three lost for the rest of the run
    net.nats[2].down();

    // 4. the leader paused across the lease's expiry, then resumed: the other publishes
    //    meanwhile; the paused one wakes with its term over and writes nothing
    std::thread::sleep(Duration::from_millis(36 * HOUR_MS).saturating_sub(t0.elapsed()));
    let paused = leader(&cs).unwrap();
    let stopped = Instant::now();
    cs[paused].1.signal(libc::SIGSTOP);
    wait_for(
        "the other takes over from the paused one",
        Duration::from_secs(20),
        || holds_lease(&cs[1 - paused].1),
    );
    failover("paused (SIGSTOP)", stopped);
    std::thread::sleep(Duration::from_millis(1000));
    cs[paused].1.signal(libc::SIGCONT);
    wait_for(
        "the paused one learns it lost the lease",
        Duration::from_secs(20),
        || !holds_lease(&cs[paused].1),
    );

    let acked = wait_workers(workers, 120);
    let mut said = Vec::new();
    for (name, p) in cs {
        let (status, lines) = p.wait(Duration::from_secs(120));
        assert!(status.success(), "{name}: {lines:?}");
        said.push(lines);
    }

    // every acknowledged observation stored exactly once, in each collector, and the two
    // stores hold the same records in the same order, byte for byte
    let mut stores = Vec::new();
    for c in ["a", "b"] {
        let stored = common::stored_observations(&net.path(&format!("collector-{c}")));
        check_exactly_once(&stored, &acked);
        stores.push(stored);
    }
    assert_eq!(stores[0].len(), stores[1].len());
    for (x, y) in stores[0].iter().zip(&stores[1]) {
        assert_eq!(
            serde_json::to_string(x).unwrap(),
            serde_json::to_string(y).unwrap(),
            "the collectors' stores differ at seq {}",
            x.seq
        );
    }
    // each (tier, date) published once per version, every day and tier
    let mut archives = Vec::new();
    for c in ["a", "b"] {
        let root = net.path(&format!("collector-{c}/published"));
        let log = std::fs::read_to_string(root.join("log.jsonl")).unwrap();
        let mut seen = BTreeSet::new();
        for l in log.lines() {
            let e: serde_json::Value = serde_json::from_str(l).unwrap();
            let k = (
                e["tier"].as_str().unwrap().to_string(),
                e["date"].as_str().unwrap().to_string(),
                e["version"].as_u64().unwrap(),
            );
            assert!(seen.insert(k.clone()), "{c}: {k:?} published twice:\n{log}");
        }
        for day in [START, DAY2] {
            for t in ["t1", "t2", "t3"] {
                assert!(
                    seen.contains(&(t.to_string(), day.to_string(), 1)),
                    "{c}: {t} {day} not published:\n{log}"
                );
            }
        }
        archives.push(tree(&root));
    }
    // byte for byte the same archive (records, log, keys, settlement records)
    let names = |t: &BTreeMap<String, Vec<u8>>| t.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&archives[0]), names(&archives[1]));
    for (k, v) in &archives[0] {
        assert!(archives[1][k] == *v, "{k} differs between the collectors");
    }
    // every day's bundle in each collector verifies against the published records (which
    // either collector determined) and replays identical
    for c in ["a", "b"] {
        for day in [START, DAY2] {
            let b = net.path(&format!("collector-{c}/archive/{day}"));
            assert!(b.join("manifest.json").exists(), "{c} {day}: no bundle");
            let o = sit(&["audit", "verify", b.to_str().unwrap()]);
            assert!(
                o.status.success() && text(&o).starts_with("VERIFIED"),
                "{c} {day}: {}",
                text(&o)
            );
            let o = sit(&["audit", "replay", b.to_str().unwrap()]);
            assert!(o.status.success(), "{c} {day}: {}", text(&o));
            assert_eq!(
                text(&o).matches(": identical").count(),
                3,
                "{c} {day}: {}",
                text(&o)
            );
        }
    }
    // the paused leader's term was over: it said so, and published nothing after waking
    assert!(
        said[paused]
            .iter()
            .any(|l| l.contains("lost the publisher lease")),
        "{:?}",
        said[paused]
    );
}
