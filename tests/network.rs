//! The probe network against a real `nats-server` with JetStream (started here on a free
//! loopback port with a temporary store folder), the real simulator and the real binary:
//! three `sit worker`s on a compressed clock and one `sit collect`. Every observation that
//! JetStream acknowledged is stored exactly once: with all parts up, with the collector
//! killed five times, with the NATS server down for 20 s. Batches signed by an unknown key,
//! with a broken chain, or replayed are refused or deduplicated, with the reason on record.
//!
//! Needs `nats-server` on PATH (`.ci/run` installs it and sets `SIT_REQUIRE_NATS=1`, which
//! makes its absence a failure); without it each test prints SKIPPED.

mod common;
use common::net::{check_exactly_once, stored_so_far, wait_workers, Nats, Proc};
use common::{sim, sit, text, Sim};

use sit_core::observation::Observation;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const START: &str = "2026-01-05";
const UNTIL: &str = "2026-01-06";
const VANTAGES: [&str; 3] = ["eu", "us", "ap"];

/// The tests of this file run one at a time: each runs a NATS server, a simulator, three
/// workers and a collector on a compressed clock, and two of those sets on two cores make
/// simulated hours late.
static SERIAL: Mutex<()> = Mutex::new(());

struct Net {
    _serial: std::sync::MutexGuard<'static, ()>,
    dir: tempfile::TempDir,
    _sim: Sim,
    nats: Nats,
}

impl Net {
    /// NATS, the simulator with `endpoints` endpoints, three worker keys and workers.toml.
    fn new() -> Option<Net> {
        Net::with_endpoints(3)
    }

    fn with_endpoints(endpoints: usize) -> Option<Net> {
        let serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let nats = Nats::start(dir.path())?;
        let sim = sim(&dir.path().join("providers.toml"), endpoints, "");
        let mut rows = String::new();
        for v in VANTAGES {
            let o = sit(&[
                "keys",
                "generate",
                "--out",
                dir.path().join(v).to_str().unwrap(),
            ]);
            assert!(o.status.success(), "{}", text(&o));
            rows.push_str(&format!(
                "[[worker]]\nvantage = \"{v}\"\npublic_key = \"{v}/public-key.pem\"\nregion = \"{v}-1\"\n\n"
            ));
        }
        std::fs::write(dir.path().join("workers.toml"), rows).unwrap();
        Some(Net {
            _serial: serial,
            dir,
            _sim: sim,
            nats,
        })
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn worker(&self, vantage: &str, hour_ms: u64) -> Proc {
        self.worker_via(vantage, hour_ms, &self.nats.url(), 60)
    }

    /// A worker reaching NATS at `url` (a relay), draining for `drain_secs` at its end.
    fn worker_via(&self, vantage: &str, hour_ms: u64, url: &str, drain_secs: u64) -> Proc {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sit"));
        c.arg("--data")
            .arg(self.path(&format!("spool-{vantage}")))
            .arg("--providers")
            .arg(self.path("providers.toml"))
            .args(["worker", "--vantage", vantage, "--nats", url])
            .arg("--key")
            .arg(self.path(&format!("{vantage}/signing-key.pem")))
            .args(["--start", START, "--hour-ms", &hour_ms.to_string()])
            .args(["--until", UNTIL, "--per-hour", "1"])
            .args(["--drain-secs", &drain_secs.to_string()]);
        Proc::spawn(c)
    }

    /// A publishing collector (a fresh oracle key) on the workers' compressed clock, until
    /// [`UNTIL`]; with `log`, its log lines are collected too.
    fn publishing_collector(&self, hour_ms: u64, log: bool) -> Proc {
        let o = sit(&[
            "keys",
            "generate",
            "--out",
            self.path("oracle").to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", text(&o));
        let mut c = Command::new(env!("CARGO_BIN_EXE_sit"));
        c.arg("--data")
            .arg(self.path("collector"))
            .arg("--providers")
            .arg(self.path("providers.toml"))
            .args(["collect", "--nats", &self.nats.url()])
            .arg("--workers")
            .arg(self.path("workers.toml"))
            .arg("--key")
            .arg(self.path("oracle/signing-key.pem"))
            .args(["--start", START, "--hour-ms", &hour_ms.to_string()])
            .args(["--until", UNTIL]);
        Proc::spawn_with(c, log)
    }

    fn collector(&self) -> Proc {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sit"));
        c.arg("--data")
            .arg(self.path("collector"))
            .args(["collect", "--nats", &self.nats.url(), "--print-acks"])
            .arg("--workers")
            .arg(self.path("workers.toml"));
        Proc::spawn(c)
    }

    /// The collector's stored observations (it must be stopped).
    fn stored(&self) -> Vec<Observation> {
        common::stored_observations(&self.path("collector"))
    }
}

fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < limit, "condition not met within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn three_workers_ship_every_acknowledged_observation_exactly_once() {
    let Some(net) = Net::new() else { return };
    let mut collector = net.collector();
    let workers: Vec<(String, Proc)> = VANTAGES
        .iter()
        .map(|v| (v.to_string(), net.worker(v, 100)))
        .collect();
    let acks = wait_workers(workers, 90);
    let total: u64 = acks.values().sum();
    assert!(total > 0);
    // every worker's commitment and reveal reach the collector too (filed per vantage, about
    // once a second)
    let filed = |v: &str| {
        net.path(&format!(
            "collector/vantages/{v}/commitments/{START}.reveal.json"
        ))
        .exists()
    };
    wait_for(Duration::from_secs(30), || {
        stored_so_far(&collector) >= total && VANTAGES.iter().all(|v| filed(v))
    });
    collector.signal(libc::SIGTERM);
    let (status, lines) = collector.wait(Duration::from_secs(30));
    assert!(status.success(), "{lines:?}");
    let stored = net.stored();
    assert_eq!(stored.len() as u64, total, "{acks:?}");
    check_exactly_once(&stored, &acks);
    for v in VANTAGES {
        let d = net.path(&format!("collector/vantages/{v}/commitments"));
        for kind in ["commit", "reveal"] {
            assert!(
                d.join(format!("{START}.{kind}.json")).exists(),
                "{v}: no {kind} filed"
            );
        }
    }
}

#[test]
fn killing_the_collector_five_times_loses_nothing_and_duplicates_nothing() {
    let Some(net) = Net::new() else { return };
    let workers: Vec<(String, Proc)> = VANTAGES
        .iter()
        .map(|v| (v.to_string(), net.worker(v, 150)))
        .collect();
    let t0 = Instant::now();
    for at in [400u64, 1100, 1900, 2600, 3300] {
        let mut c = net.collector();
        std::thread::sleep(
            Duration::from_millis(at)
                .saturating_sub(t0.elapsed())
                .max(Duration::from_millis(250)),
        );
        c.signal(libc::SIGKILL);
        let _ = c.wait(Duration::from_secs(10));
    }
    let acks = wait_workers(workers, 90);
    let total: u64 = acks.values().sum();
    // Redeliveries of what the killed collectors stored but never acknowledged come after
    // JetStream's ack wait (10 s); they must be recognised, not stored again. Wait past it,
    // then until the collector has been quiet for 2 s.
    let mut collector = net.collector();
    std::thread::sleep(Duration::from_secs(13));
    let mut n = collector.lines().len();
    loop {
        std::thread::sleep(Duration::from_secs(2));
        let m = collector.lines().len();
        if m == n {
            break;
        }
        n = m;
    }
    collector.signal(libc::SIGTERM);
    let (status, lines) = collector.wait(Duration::from_secs(30));
    assert!(status.success(), "{lines:?}");
    let stored = net.stored();
    assert_eq!(stored.len() as u64, total, "{acks:?}");
    check_exactly_once(&stored, &acks);
}

#[test]
fn nats_down_for_20_seconds_workers_spool_and_drain_in_order() {
    let Some(mut net) = Net::new() else { return };
    let mut collector = net.collector();
    // one simulated day = 36 s: the outage falls in the middle of it
    let workers: Vec<(String, Proc)> = VANTAGES
        .iter()
        .map(|v| (v.to_string(), net.worker(v, 1500)))
        .collect();
    std::thread::sleep(Duration::from_secs(6));
    let before = stored_so_far(&collector);
    assert!(before > 0, "nothing stored before the outage");
    net.nats.down();
    std::thread::sleep(Duration::from_secs(20));
    net.nats.up();
    let acks = wait_workers(workers, 120);
    let total: u64 = acks.values().sum();
    wait_for(Duration::from_secs(60), || {
        stored_so_far(&collector) >= total
    });
    collector.signal(libc::SIGTERM);
    let (status, lines) = collector.wait(Duration::from_secs(30));
    assert!(status.success(), "{lines:?}");
    let stored = net.stored();
    assert_eq!(stored.len() as u64, total, "{acks:?}");
    check_exactly_once(&stored, &acks);
}

/// Publish raw messages to the stream, as a hostile or broken worker would.
async fn publish_raw(url: &str, msgs: Vec<(String, Vec<u8>, String)>) {
    let client = async_nats::connect(url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    sit::network::ensure_streams(&js, 1).await.unwrap();
    for (subject, payload, id) in msgs {
        use async_nats::jetstream::message::PublishMessage;
        js.send_publish(
            subject,
            PublishMessage::build()
                .payload(payload.into())
                .message_id(id),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
}

/// Issue 28: registering a worker needed a collector restart. `workers.toml` is read again
/// when it changes; a worker registered while the collector runs ships, and is stored.
#[test]
fn a_worker_registered_while_the_collector_runs_is_stored_without_a_restart() {
    let Some(net) = Net::new() else { return };
    let file = net.path("workers.toml");
    let all = std::fs::read_to_string(&file).unwrap();
    // ap is not registered at first
    let first: String = all
        .split("\n\n")
        .filter(|t| !t.contains("\"ap\""))
        .map(|t| format!("{t}\n\n"))
        .collect();
    std::fs::write(&file, &first).unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_sit"));
    c.env("RUST_LOG", "info")
        .arg("--data")
        .arg(net.path("collector"))
        .args(["collect", "--nats", &net.nats.url(), "--print-acks"])
        .arg("--workers")
        .arg(&file);
    let mut collector = Proc::spawn_with(c, true);
    wait_for(Duration::from_secs(30), || {
        collector
            .lines()
            .iter()
            .any(|l| l.contains("2 workers registered"))
    });
    // a bad edit changes nothing (said in the log), then ap is registered
    std::fs::write(&file, format!("{first}[[worker]]\nvantage = \"ap\"\n")).unwrap();
    wait_for(Duration::from_secs(30), || {
        collector
            .lines()
            .iter()
            .any(|l| l.contains("the workers registered stay as they were"))
    });
    std::fs::write(&file, &all).unwrap();
    wait_for(Duration::from_secs(30), || {
        collector
            .lines()
            .iter()
            .any(|l| l.contains("changed: 3 workers registered (ap, eu, us; were eu, us)"))
    });
    let workers: Vec<(String, Proc)> = ["eu", "ap"]
        .iter()
        .map(|v| (v.to_string(), net.worker(v, 100)))
        .collect();
    let acks = wait_workers(workers, 90);
    let total: u64 = acks.values().sum();
    assert!(acks["ap"] > 0, "{acks:?}");
    wait_for(Duration::from_secs(30), || {
        stored_so_far(&collector) >= total
    });
    collector.signal(libc::SIGTERM);
    let (status, lines) = collector.wait(Duration::from_secs(30));
    assert!(status.success(), "{lines:?}");
    let stored = net.stored();
    check_exactly_once(&stored, &acks);
    let store = sit::store::Store::open(&net.path("collector")).unwrap();
    let dead = sit::network::collect::Collector::dead_letters(&store).unwrap();
    assert!(dead.is_empty(), "{dead:?}");
}

#[test]
fn unknown_keys_broken_chains_and_replays_are_refused_or_deduplicated_with_the_reason() {
    use sit_core::batch::{self, genesis_hex, RecordText};
    let Some(net) = Net::new() else { return };
    let eu = sit::archive::keys::load_signing(&net.path("eu/signing-key.pem")).unwrap();
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    // a chain of four records of `eu`, as its worker would store them
    let record = |seq: u64, prev: &str| {
        let mut o = sit_core::observation::sample();
        o.worker = "eu".into();
        o.vantage = Some("eu".into());
        o.seq = seq;
        o.prev_hash = prev.to_string();
        let text = serde_json::to_string(&o).unwrap();
        let hash = sit_core::signing::hex(blake3::hash(text.as_bytes()).as_bytes());
        (RecordText { seq, text }, hash)
    };
    let mut prev = genesis_hex();
    let mut hashes = vec![];
    let mut recs = vec![];
    for seq in 0..4 {
        let (r, h) = record(seq, &prev);
        recs.push(r);
        hashes.push(h.clone());
        prev = h;
    }
    let good1 = batch::sign("eu", "c1", &eu, &genesis_hex(), &recs[..2]);
    let good2 = batch::sign("eu", "c1", &eu, &hashes[1], &recs[2..]);
    let unknown = batch::sign("xx", "c9", &stranger, &genesis_hex(), &recs[..1]);
    let forged = batch::sign("eu", "c1", &stranger, &genesis_hex(), &recs[..1]);
    // records 0 and 1, with record 1's link broken (signed by the right key)
    let broken = vec![recs[0].clone(), record(1, &"f".repeat(64)).0];
    let broken = batch::sign("eu", "c1", &eu, &genesis_hex(), &broken);
    // a gap: record 3 alone after only 0-1 are stored
    let gap = batch::sign("eu", "c1", &eu, &hashes[2], &recs[3..]);
    // the same records 0-1 from a re-installed worker (an empty spool: a new chain)
    let reinstalled = batch::sign("eu", "c2", &eu, &genesis_hex(), &recs[..2]);
    let id = |d: &[u8]| batch::id(d);
    let msgs = vec![
        ("sit.obs.eu".to_string(), good1.clone(), id(&good1)),
        ("sit.obs.xx".to_string(), unknown.clone(), id(&unknown)),
        ("sit.obs.eu".to_string(), forged.clone(), id(&forged)),
        ("sit.obs.eu".to_string(), broken.clone(), id(&broken)),
        ("sit.obs.eu".to_string(), gap.clone(), id(&gap)),
        // replayed: same batch, a new message id (past JetStream's deduplication)
        (
            "sit.obs.eu".to_string(),
            good1.clone(),
            "replayed-1".to_string(),
        ),
        (
            "sit.obs.eu".to_string(),
            reinstalled.clone(),
            id(&reinstalled),
        ),
        // another vantage's subject
        (
            "sit.obs.us".to_string(),
            good2.clone(),
            "on-another-subject".to_string(),
        ),
        ("sit.obs.eu".to_string(), good2.clone(), id(&good2)),
        (
            "sit.obs.eu".to_string(),
            b"not json".to_vec(),
            "junk".to_string(),
        ),
    ];
    let url = net.nats.url();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(publish_raw(&url, msgs));
    let mut collector = net.collector();
    // read in stream order, where a worker's batches are in chain order: record 3 before
    // record 2 is a gap in the chain, refused (its payload kept)
    wait_for(Duration::from_secs(30), || {
        collector
            .lines()
            .iter()
            .any(|l| l.starts_with("stored 4 duplicates 1 refused 7"))
    });
    collector.signal(libc::SIGTERM);
    let (status, lines) = collector.wait(Duration::from_secs(30));
    assert!(status.success(), "{lines:?}");
    assert!(
        lines
            .last()
            .unwrap()
            .contains("4 observations stored, 1 duplicate batches, 7 refused;"),
        "{lines:?}"
    );
    let stored = net.stored();
    assert_eq!(stored.len(), 4);
    let store = sit::store::Store::open(&net.path("collector")).unwrap();
    let dead = sit::network::collect::Collector::dead_letters(&store).unwrap();
    let reasons: Vec<&str> = dead.iter().map(|d| d.reason.as_str()).collect();
    assert_eq!(dead.len(), 7, "{reasons:?}");
    for (i, want) in [
        "unknown worker: vantage `xx`",
        "signature of vantage `eu` does not verify",
        "broken chain",
        "gap in the chain of vantage `eu`: records 2-2",
        "empty spool",
        "published on sit.obs.us",
        "not a batch",
    ]
    .iter()
    .enumerate()
    {
        assert!(reasons[i].contains(want), "{i}: {reasons:?}");
    }
    // the refused payloads are kept beside their records
    let payloads = store.metas("deadpayload/").unwrap();
    assert_eq!(payloads.len(), 7);
    assert_eq!(payloads[6].1, b"not json");
}

#[test]
fn a_workers_file_with_a_missing_key_or_a_bad_vantage_is_named_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("workers.toml");
    std::fs::write(
        &f,
        "[[worker]]\nvantage = \"eu\"\npublic_key = \"nope.pem\"\n",
    )
    .unwrap();
    let o = sit(&[
        "--data",
        dir.path().join("c").to_str().unwrap(),
        "collect",
        "--nats",
        "nats://127.0.0.1:1",
        "--workers",
        f.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("worker `eu`") && text(&o).contains("public-key.pem"),
        "{}",
        text(&o)
    );
    std::fs::write(
        &f,
        "[[worker]]\nvantage = \"e.u\"\npublic_key = \"k.pem\"\n",
    )
    .unwrap();
    let o = sit(&[
        "collect",
        "--nats",
        "nats://127.0.0.1:1",
        "--workers",
        f.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("vantage `e.u`"), "{}", text(&o));
}

/// The collector publishes the day from three vantages while one of them is down for six
/// simulated hours: the day stays FINAL, the determination lists each vantage's attempts and
/// the down vantage's missed probes, and the day's bundle verifies (each vantage's records
/// against its own commitment) and replays identically.
#[test]
fn collector_publishes_a_final_day_with_one_vantage_down_six_hours_and_it_verifies() {
    // six endpoints: enough for valid partitions (as tests/run.rs)
    let Some(net) = Net::with_endpoints(6) else {
        return;
    };
    let hour_ms = 200u64;
    let collector = net.publishing_collector(hour_ms, false);
    let t0 = Instant::now();
    let eu = net.worker("eu", hour_ms);
    let us = net.worker("us", hour_ms);
    let mut ap = net.worker("ap", hour_ms);
    // ap goes down at about 09:00 and comes back at about 15:00
    std::thread::sleep(Duration::from_millis(9 * hour_ms).saturating_sub(t0.elapsed()));
    ap.signal(libc::SIGKILL);
    let _ = ap.wait(Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(15 * hour_ms).saturating_sub(t0.elapsed()));
    let ap = net.worker("ap", hour_ms);
    for (v, w) in [("eu", eu), ("us", us), ("ap", ap)] {
        let (status, lines) = w.wait(Duration::from_secs(90));
        assert!(status.success(), "{v}: {lines:?}");
    }
    let (status, lines) = collector.wait(Duration::from_secs(90));
    assert!(status.success(), "{lines:?}");
    assert!(
        lines.last().unwrap().ends_with("3 records published"),
        "{lines:?}"
    );
    for tier in ["t1", "t2", "t3"] {
        let f = net.path(&format!("collector/published/{tier}/{START}.v1.json"));
        let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        let d = r.get("determination").unwrap_or(&r);
        // set from data: BASE is the chained index's first day, FINAL any later one
        assert!(
            d["status"] == "FINAL" || d["status"] == "BASE",
            "{tier}: {d}"
        );
        assert!(
            d["counts"]["valid_partitions"].as_u64().unwrap() >= 18,
            "{tier}: {d}"
        );
        let v = &d["counts"]["vantages"];
        for name in VANTAGES {
            assert!(v[name]["attempts"].as_u64().unwrap() > 0, "{tier}: {v}");
        }
        assert_eq!(v["eu"]["missed"].as_u64().unwrap_or(0), 0, "{tier}: {v}");
        // about six of 24 hours of ap's probes were missed while it was down
        let missed = v["ap"]["missed"].as_u64().unwrap_or(0);
        let attempts = v["ap"]["attempts"].as_u64().unwrap();
        assert!(
            missed * 8 >= attempts && missed <= attempts,
            "{tier}: ap missed {missed} of {}: {v}",
            missed + attempts
        );
    }
    let b = net.path(&format!("collector/archive/{START}"));
    let o = sit(&["audit", "verify", b.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).starts_with("VERIFIED"), "{}", text(&o));
    let o = sit(&["audit", "replay", b.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(text(&o).matches(": identical").count(), 3, "{}", text(&o));
    // each vantage's own commitment and reveal are in the bundle
    for v in VANTAGES {
        assert!(b
            .join(format!("commitments/{START}.{v}.commit.json"))
            .exists());
        assert!(b
            .join(format!("commitments/{START}.{v}.reveal.json"))
            .exists());
    }
}

/// A TCP relay to the NATS server whose traffic can be held (a worker's link cut while the
/// worker goes on probing and spooling), then let through again.
struct Relay {
    port: u16,
    held: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Relay {
    fn to(port: u16) -> Relay {
        use std::sync::atomic::Ordering;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let held = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let r = Relay {
            port: l.local_addr().unwrap().port(),
            held: held.clone(),
        };
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(a) = c else { return };
                let Ok(b) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
                    continue;
                };
                for (mut from, mut to) in [(a.try_clone().unwrap(), b.try_clone().unwrap()), (b, a)]
                {
                    let held = held.clone();
                    std::thread::spawn(move || {
                        use std::io::{Read, Write};
                        let mut buf = [0u8; 16384];
                        loop {
                            while held.load(Ordering::SeqCst) {
                                std::thread::sleep(Duration::from_millis(20));
                            }
                            match from.read(&mut buf) {
                                Ok(0) | Err(_) => return,
                                Ok(n) => {
                                    if to.write_all(&buf[..n]).is_err() {
                                        return;
                                    }
                                }
                            }
                        }
                    });
                }
            }
        });
        r
    }

    fn hold(&self, on: bool) {
        self.held.store(on, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Issue 28: a day determined before a vantage's records and reveal arrived (the worker's link
/// cut across the collector's reveal wait) kept a bundle without that vantage's schedule, which
/// `sit audit verify` then failed. The bundle is now written once the vantage is complete: it
/// holds the late records (counted in the manifest; not the inputs of the records published
/// before them) and the vantage's reveal, and it verifies and replays identical.
#[test]
fn a_vantage_whose_records_arrive_after_the_determination_keeps_a_verifying_bundle() {
    let Some(net) = Net::with_endpoints(6) else {
        return;
    };
    let hour_ms = 200u64;
    let collector = net.publishing_collector(hour_ms, true);
    let t0 = Instant::now();
    let eu = net.worker("eu", hour_ms);
    let us = net.worker("us", hour_ms);
    // ap reaches NATS through a relay: its link is cut at about 20:00 of the day (it goes on
    // probing and spooling) until the collector has determined the day without it
    let port: u16 = net.nats.url().rsplit(':').next().unwrap().parse().unwrap();
    let relay = Relay::to(port);
    let ap = net.worker_via(
        "ap",
        hour_ms,
        &format!("nats://127.0.0.1:{}", relay.port),
        90,
    );
    std::thread::sleep(Duration::from_millis(20 * hour_ms).saturating_sub(t0.elapsed()));
    relay.hold(true);
    wait_for(Duration::from_secs(120), || {
        collector.lines().iter().any(|l| {
            l.contains(&format!(
                "{START}: determined without the complete records of ap"
            ))
        })
    });
    let bundle = net.path(&format!("collector/archive/{START}"));
    assert!(!bundle.exists(), "the bundle waits for ap");
    relay.hold(false);
    wait_for(Duration::from_secs(120), || {
        bundle.join("manifest.json").exists()
    });
    let (status, lines) = collector.wait(Duration::from_secs(120));
    assert!(status.success(), "{lines:?}");
    for (v, w) in [("eu", eu), ("us", us), ("ap", ap)] {
        let (status, lines) = w.wait(Duration::from_secs(120));
        assert!(status.success(), "{v}: {lines:?}");
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("manifest.json")).unwrap()).unwrap();
    assert!(
        manifest["late_records"].as_u64().unwrap_or(0) > 0,
        "ap's records of the day after the determination are counted: {manifest}"
    );
    assert!(bundle
        .join(format!("commitments/{START}.ap.reveal.json"))
        .exists());
    let o = sit(&["audit", "verify", bundle.to_str().unwrap()]);
    assert!(text(&o).starts_with("VERIFIED"), "{}", text(&o));
    let o = sit(&["audit", "replay", bundle.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(text(&o).matches(": identical").count(), 3, "{}", text(&o));
}
