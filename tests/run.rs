//! `sit run`, the oracle as a service, against the real simulator in a separate process
//! (`sit sim`) on loopback, on a compressed clock (one simulated hour = 200 real ms, so a day
//! is 4.8 s): days publish by themselves, their bundles verify and replay identically, a
//! `kill -9` at any moment loses no acknowledged observation and sends no scheduled probe
//! twice, a second service on the same folder is refused, an endpoint without its key is
//! named and left out of the commitment.

mod common;
use common::{sim, sit, text, Sim};

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const START: &str = "2026-01-05";
const UNTIL: &str = "2026-01-07";
const HOUR_MS: &str = "200";

struct Env {
    dir: tempfile::TempDir,
    sim: Sim,
}

impl Env {
    fn new(n: usize, extra: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let sim = sim(&dir.path().join("providers.toml"), n, extra);
        let o = sit(&[
            "keys",
            "generate",
            "--out",
            dir.path().join("keys").to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", text(&o));
        Env { dir, sim }
    }
    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }
    fn run_cmd(&self) -> Command {
        self.run_cmd_at(HOUR_MS, "1")
    }
    /// `sit run` with `hour_ms` real milliseconds per simulated hour and `per_hour` probes per
    /// endpoint, tier and hour.
    fn run_cmd_at(&self, hour_ms: &str, per_hour: &str) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sit"));
        c.arg("--data")
            .arg(self.data())
            .arg("--providers")
            .arg(self.dir.path().join("providers.toml"))
            .arg("run")
            .arg("--key")
            .arg(self.dir.path().join("keys/signing-key.pem"))
            .args(["--start", START, "--hour-ms", hour_ms, "--until", UNTIL])
            .args(["--per-hour", per_hour, "--print-acks"]);
        c
    }
    fn bundle(&self, date: &str) -> PathBuf {
        self.data().join("archive").join(date)
    }
}

fn check_bundle(b: &Path) {
    let o = sit(&["audit", "verify", b.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).starts_with("VERIFIED"), "{}", text(&o));
    let o = sit(&["audit", "replay", b.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert_eq!(t.matches(": identical").count(), 3, "{t}");
}

/// Issue 29: a bundle `sit run` writes carries each value's 95% interval, signed; replay
/// recomputes them, and an interval that is not the one recomputed is named, even signed by
/// the publisher's own key.
fn intervals_are_signed_and_replayed(b: &Path, keys: &Path) -> bool {
    let o = sit(&["audit", "replay", b.to_str().unwrap()]);
    let t = text(&o);
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.join("intervals.json")).unwrap()).unwrap();
    assert_eq!(doc["kind"], "sit-intervals");
    // one for each value set from data (BASE, FINAL), none for CONTINGENCY or SUSPENDED
    let set_from_data = ["t1", "t2", "t3"]
        .iter()
        .filter(|t| {
            let r: serde_json::Value = serde_json::from_slice(
                &std::fs::read(b.join(format!("determinations/{t}.v1.json"))).unwrap(),
            )
            .unwrap();
            let d = r.get("determination").unwrap_or(&r);
            d["status"] == "BASE" || d["status"] == "FINAL"
        })
        .count();
    assert_eq!(
        doc["intervals"].as_object().unwrap().len(),
        set_from_data,
        "{doc}"
    );
    assert_eq!(t.matches(": 95% interval [").count(), set_from_data, "{t}");
    // (which tiers are set from data depends on the run's timing: the first that is)
    let Some((name, i)) = doc["intervals"].as_object().unwrap().iter().next() else {
        return false;
    };
    assert!(t.contains(&format!(
        "{name}: 95% interval [{}, {}]",
        i["low"].as_str().unwrap(),
        i["high"].as_str().unwrap()
    )));
    // a copy whose interval is moved and signed again with the publisher's key
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("bundle");
    common::copy_dir(b, &copy);
    let pem = std::fs::read_to_string(keys.join("signing-key.pem")).unwrap();
    let key =
        <ed25519_dalek::SigningKey as ed25519_dalek::pkcs8::DecodePrivateKey>::from_pkcs8_pem(&pem)
            .unwrap();
    let mut v = doc.clone();
    v.as_object_mut().unwrap().remove("signature");
    v["intervals"][name.as_str()]["low"] = "0.000000001".into();
    std::fs::write(
        copy.join("intervals.json"),
        sit_core::signing::sign_value(v, &key),
    )
    .unwrap();
    let o = sit(&["audit", "replay", copy.to_str().unwrap()]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(&format!(
            "intervals.json: the interval of {name} is not the one recomputed"
        )),
        "{}",
        text(&o)
    );
    // each value's interval states every endpoint's delivered share with its interval
    let (_, first) = doc["intervals"].as_object().unwrap().iter().next().unwrap();
    let shares = first["shares"].as_object().unwrap();
    assert!(!shares.is_empty(), "{first}");
    for (e, s) in shares {
        let f = |k: &str| s[k].as_str().unwrap().parse::<f64>().unwrap();
        assert!(
            f("low") <= f("share") && f("share") <= f("high"),
            "{e}: {s}"
        );
    }
    // a document of the first method (2026-12-07: no shares) still replays
    let mut v = doc.clone();
    v.as_object_mut().unwrap().remove("signature");
    v["method"] = sit_core::index::interval::METHOD_1.into();
    for i in v["intervals"].as_object_mut().unwrap().values_mut() {
        i.as_object_mut().unwrap().remove("shares");
    }
    std::fs::write(
        copy.join("intervals.json"),
        sit_core::signing::sign_value(v, &key),
    )
    .unwrap();
    let o = sit(&["audit", "replay", copy.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    // the same intervals signed by a stranger whose public key is put in the bundle's keys/:
    // replay against the bundle's own keys takes them; against the publisher's pinned root
    // (`--key`), the stranger is named
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let kid = sit_core::signing::key_id(&stranger.verifying_key());
    let mut v = doc.clone();
    v.as_object_mut().unwrap().remove("signature");
    v["key_id"] = kid.clone().into();
    std::fs::write(
        copy.join("intervals.json"),
        sit_core::signing::sign_value(v, &stranger),
    )
    .unwrap();
    let pem =
        <ed25519_dalek::VerifyingKey as ed25519_dalek::pkcs8::EncodePublicKey>::to_public_key_pem(
            &stranger.verifying_key(),
            Default::default(),
        )
        .unwrap();
    std::fs::write(
        copy.join(format!("keys/{}.pem", kid.replace(':', "-"))),
        pem,
    )
    .unwrap();
    let o = sit(&["audit", "replay", copy.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let root = keys.join("public-key.pem");
    let o = sit(&[
        "audit",
        "replay",
        copy.to_str().unwrap(),
        "--key",
        root.to_str().unwrap(),
    ]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(&format!(
            "intervals.json: signed by {kid}, which is not in the key set followed from the pinned root"
        )),
        "{}",
        text(&o)
    );
    let o = sit(&[
        "audit",
        "replay",
        b.to_str().unwrap(),
        "--key",
        root.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    true
}

#[test]
fn run_publishes_each_day_by_itself_and_its_bundles_verify() {
    let env = Env::new(6, "");
    let o = env.run_cmd().output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("6 records published"), "{}", text(&o));
    let mut checked = false;
    for (i, date) in ["2026-01-05", "2026-01-06"].iter().enumerate() {
        for tier in ["t1", "t2", "t3"] {
            let f = env.data().join(format!("published/{tier}/{date}.v1.json"));
            let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
            assert_eq!(r["sequence"], i as u64 + 1);
        }
        check_bundle(&env.bundle(date));
        checked |=
            intervals_are_signed_and_replayed(&env.bundle(date), &env.dir.path().join("keys"));
        if i == 1 {
            // the statement shows the latest day's signed intervals beside its values
            let o = sit(&[
                "--data",
                env.data().to_str().unwrap(),
                "--providers",
                env.dir.path().join("providers.toml").to_str().unwrap(),
                "report",
                "statement",
            ]);
            assert!(o.status.success(), "{}", text(&o));
            let md = String::from_utf8_lossy(&o.stdout).to_string();
            let doc: serde_json::Value = serde_json::from_slice(
                &std::fs::read(env.bundle(date).join("intervals.json")).unwrap(),
            )
            .unwrap();
            for (name, iv) in doc["intervals"].as_object().unwrap() {
                let tier = &name["determinations/".len()..][..2];
                let want = format!("| {tier} | {date} (");
                let row = md
                    .lines()
                    .find(|l| l.starts_with(&want))
                    .unwrap_or_else(|| panic!("{want}: {md}"));
                assert!(
                    row.contains(&format!(
                        "(95% interval {} - {})",
                        iv["low"].as_str().unwrap(),
                        iv["high"].as_str().unwrap()
                    )),
                    "{row}"
                );
            }
            // and so does the page `sit serve` renders from the folder
            let page = page_of(&env.data());
            let mut shown = 0;
            for iv in doc["intervals"].as_object().unwrap().values() {
                let (Some(lo), Some(hi)) = (iv["low"].as_str(), iv["high"].as_str()) else {
                    continue;
                };
                let six = |v: &str| sit_core::fixed::Fixed::parse(v).unwrap().round_dp(6);
                let want = format!("95%: {} – {}", six(lo), six(hi));
                assert!(page.contains(&want), "{want} not on the page");
                shown += 1;
            }
            assert!(page.matches("95%: ").count() >= shown, "{page}");
        }
        // committed before the day started (the second day during the first; the first at the
        // service's start, in its first simulated minutes), revealed after
        let c: serde_json::Value = serde_json::from_slice(
            &std::fs::read(
                env.data()
                    .join(format!("published/commitments/{date}.commit.json")),
            )
            .unwrap(),
        )
        .unwrap();
        assert!(
            *c["committed_at"].as_str().unwrap()
                <= *if i == 0 {
                    format!("{date}T00:05:00")
                } else {
                    format!("{date}T00:00:00")
                },
            "{c}"
        );
    }
    assert!(
        checked,
        "no day had a value set from data: no interval was checked"
    );
    // Just before the first day's restatement window closed (the end of the second day) the
    // service recomputed it once more; nothing had changed, so version 1 stands.
    for tier in ["t1", "t2", "t3"] {
        assert!(
            text(&o).contains(&format!("recomputed {tier} 2026-01-05 before its cutoff")),
            "{}",
            text(&o)
        );
    }
    assert!(!env.data().join("published/t1/2026-01-05.v2.json").exists());
    // The day after --until was committed by no one: the service stopped before it.
    assert!(!env.bundle(UNTIL).exists());
    // Running again does nothing more: every output exists.
    let o = env.run_cmd().output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("0 records published"), "{}", text(&o));
}

/// Regression guard (found 2026-12-07 with `sit demo --hour-ms 40`): a slot that its
/// endpoint's queue cannot send before its UTC day ends is recorded missed at its scheduled
/// time, never sent the next day. Before, such an attempt carried the next day's time: its own
/// day's bundle lacked it ("scheduled probe ... has no observation: dropped"), the bundle did
/// not replay, and no intervals were signed. At 40 ms a simulated hour the service cannot keep
/// up, so slots go late on every machine; every day must still verify and replay.
#[test]
fn a_slot_not_sent_within_its_day_is_recorded_missed_and_every_day_replays() {
    let env = Env::new(6, "");
    let o = env.run_cmd_at("40", "3").output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains("does not replay"), "{}", text(&o));
    for date in ["2026-01-05", "2026-01-06"] {
        check_bundle(&env.bundle(date));
    }
    let o = sit(&[
        "--data",
        env.data().to_str().unwrap(),
        "--providers",
        env.dir.path().join("providers.toml").to_str().unwrap(),
        "observations",
        "--failed",
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let late = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.contains("not sent within its day"))
        .count();
    assert!(
        late > 0,
        "no slot went late at 40 ms an hour: the guard tested nothing"
    );
}

/// Regression guard for issue 11: a restart never loses an acknowledged observation, never
/// sends a scheduled probe twice, and accounts for every scheduled probe (observed or
/// missed), so each day still publishes, verifies and replays.
#[test]
fn run_survives_kill_9_at_any_moment() {
    let env = Env::new(6, "");
    let mut acked: BTreeSet<u64> = BTreeSet::new();
    let t0 = Instant::now();
    // Real offsets from the first start: days end at 4.8 s and 9.6 s, so the fourth kill
    // falls around the first day's publication.
    for at in [900u64, 2100, 3300, 4850, 7000] {
        let mut child = env.run_cmd().stdout(Stdio::piped()).spawn().unwrap();
        let target = Duration::from_millis(at);
        let now = t0.elapsed();
        std::thread::sleep(target.saturating_sub(now).max(Duration::from_millis(300)));
        child.kill().unwrap(); // SIGKILL
        let out = child.wait_with_output().unwrap();
        for l in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some(s) = l.strip_prefix("ack ") {
                acked.insert(s.parse().unwrap());
            }
        }
    }
    let o = env.run_cmd().output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        acked.len() > 50,
        "the kills came too early to test anything"
    );
    // every acknowledged observation is there; no probe attempt twice
    let store = sit::store::Store::open(&env.data()).unwrap();
    let obs: Vec<_> = store
        .scan(i64::MIN / 2, i64::MAX / 2)
        .map(|r| r.unwrap().obs)
        .collect();
    let seqs: BTreeSet<u64> = obs.iter().map(|o| o.seq).collect();
    assert!(acked.is_subset(&seqs), "acknowledged observations lost");
    let mut attempts = BTreeSet::new();
    for o in &obs {
        assert!(
            attempts.insert((o.seed, o.nonce.clone(), o.retry)),
            "probe {} {} retry {} recorded twice",
            o.seed,
            o.nonce,
            o.retry
        );
    }
    let missed = obs.iter().filter(|o| o.missed()).count();
    assert!(missed > 0, "the kills should have made some probes miss");
    drop(store);
    for date in ["2026-01-05", "2026-01-06"] {
        check_bundle(&env.bundle(date));
    }
    let r: serde_json::Value = serde_json::from_slice(
        &std::fs::read(env.data().join("published/t1/2026-01-05.v1.json")).unwrap(),
    )
    .unwrap();
    assert!(
        r["counts"]["missed"].as_u64().unwrap() > 0,
        "{}",
        r["counts"]
    );
}

#[test]
fn a_second_run_on_the_same_folder_is_refused() {
    let env = Env::new(5, "");
    let mut first = env.run_cmd().stdout(Stdio::null()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let o = env.run_cmd().output().unwrap();
    let _ = first.kill();
    let _ = first.wait();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("in use by another process"),
        "{}",
        text(&o)
    );
    // and a different clock on the same folder is refused too
    let o = sit(&[
        "--data",
        env.data().to_str().unwrap(),
        "--providers",
        env.dir.path().join("providers.toml").to_str().unwrap(),
        "run",
        "--key",
        env.dir
            .path()
            .join("keys/signing-key.pem")
            .to_str()
            .unwrap(),
        "--until",
        UNTIL,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("was first run with another clock"),
        "{}",
        text(&o)
    );
}

#[test]
fn an_endpoint_without_its_key_is_named_and_left_out_of_the_commitment() {
    let extra = "\n[[endpoints]]\nid = \"keyless\"\nprovider = \"x\"\nmodel = \"m\"\ndialect = \"openai\"\nbase_url = \"http://127.0.0.1:9\"\nregion = \"r\"\napi_key_env = \"SIT_TEST_KEY_THAT_IS_NOT_SET\"\n\n[[endpoints.prices]]\neffective_from = \"2026-01-01T00:00:00Z\"\ninput = \"1\"\noutput = \"1\"\ncached_input = \"1\"\n";
    let env = Env::new(5, extra);
    let o = env
        .run_cmd()
        .env_remove("SIT_TEST_KEY_THAT_IS_NOT_SET")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert_eq!(t.matches("`keyless`").count(), 1, "named once: {t}");
    assert!(t.contains("SIT_TEST_KEY_THAT_IS_NOT_SET"), "{t}");
    let c: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            env.data()
                .join("published/commitments/2026-01-05.commit.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let eps: Vec<&str> = c["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert_eq!(eps.len(), 5);
    assert!(!eps.contains(&"keyless"));
    let store = sit::store::Store::open(&env.data()).unwrap();
    assert!(store
        .scan(i64::MIN / 2, i64::MAX / 2)
        .all(|r| r.unwrap().obs.endpoint != "keyless"));
}

/// A bare HTTP/1.0 GET on loopback: (status, body).
/// The page (`/`) that the real `sit serve` renders from the data folder `data`.
fn page_of(data: &Path) -> String {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_sit"))
        .arg("--data")
        .arg(data)
        .args(["serve", "--addr", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let (addr, _) = common::served_address(&mut lines);
    std::thread::spawn(move || for _ in lines {});
    let mut page = None;
    wait_for("sit serve answers /", 20, || {
        page = std::net::TcpStream::connect(&addr)
            .is_ok()
            .then(|| http_get(&addr, "/"))
            .filter(|(status, _)| *status == 200)
            .map(|(_, body)| body);
        page.is_some()
    });
    let _ = child.kill();
    let _ = child.wait();
    page.unwrap()
}

fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(c, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut r = String::new();
    c.read_to_string(&mut r).unwrap();
    let status = r[9..12].parse().unwrap();
    let body = r
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_string();
    (status, body)
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "{what}: not within {secs} s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn signal(pid: u32, sig: &str) {
    let s = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(s.success());
}

/// `--serve` in the same process: the API plus health that means something. With one
/// simulated hour = 36 s, ten simulated minutes are six real seconds: stopping the simulator
/// (SIGSTOP: connections hang, no observation arrives while probes are due) turns /healthz
/// 503 with the reason; letting it go again makes it healthy.
#[test]
fn run_health_turns_503_while_probes_are_due_and_none_is_recorded() {
    let env = Env::new(6, "");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sit"))
        .arg("--data")
        .arg(env.data())
        .arg("--providers")
        .arg(env.dir.path().join("providers.toml"))
        .arg("run")
        .arg("--key")
        .arg(env.dir.path().join("keys/signing-key.pem"))
        .args(["--start", START, "--hour-ms", "36000", "--per-hour", "4"])
        .args(["--serve", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stderr.take().unwrap()));
    let addr = loop {
        let l = lines.next().expect("sit run ended").unwrap();
        if let Some(rest) = l.strip_prefix("sit run: serving http://") {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    wait_for("a probe recorded", 30, || {
        http_get(&addr, "/metrics").1.contains("class=\"ok\"}")
    });
    let (status, body) = http_get(&addr, "/healthz");
    assert_eq!(status, 200, "{body}");
    let h: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(h["service"]["probing"], START, "{h}");
    let (_, m) = http_get(&addr, "/metrics");
    for name in [
        "sit_run_probes_total{endpoint=\"sim-",
        "sit_run_missed_probes_total 0",
        "sit_run_last_observation_age_seconds",
        "sit_run_unpublished_age_seconds 0",
        "sit_http_requests_total",
    ] {
        assert!(m.contains(name), "{name} missing from\n{m}");
    }

    signal(env.sim.child.id(), "-STOP");
    wait_for("503 while the simulator is stopped", 40, || {
        http_get(&addr, "/healthz").0 == 503
    });
    let (_, body) = http_get(&addr, "/healthz");
    let h: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(h["status"], "degraded", "{h}");
    assert!(
        h["reasons"][0]
            .as_str()
            .unwrap()
            .contains("scheduled probes are due"),
        "{h}"
    );
    signal(env.sim.child.id(), "-CONT");
    wait_for("healthy again", 60, || http_get(&addr, "/healthz").0 == 200);
    let _ = child.kill();
    let _ = child.wait();
}

/// Issue 12 ("frozen costs"): a list price corrected in providers.toml while `sit run` is
/// running is recorded in the price book at the next determination (no restart), and the
/// recomputation before the day's restatement cutoff restates the day: every price doubled,
/// backdated to the schedule's start, doubles the anchor. The exported bundle replays both
/// versions.
#[test]
fn a_price_corrected_while_running_restates_the_day_before_its_cutoff() {
    let env = Env::new(6, "");
    // Day 1 must be a full day (BASE): 3 probes per hour fill the eligibility window (6
    // attempts) after two hours, where 1 per hour leaves the first six hours invalid, and a
    // slower clock than the other tests here keeps SLAs while five other services share the
    // machine.
    let child = env
        .run_cmd_at("600", "3")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let v1 = env.data().join("published/t1/2026-01-05.v1.json");
    let t0 = Instant::now();
    while !v1.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "day 1 not published"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Double every rate of every entry (same effective_from: a correction).
    let path = env.dir.path().join("providers.toml");
    let toml = std::fs::read_to_string(&path).unwrap();
    let doubled: String = toml
        .lines()
        .map(|l| {
            for key in ["input = \"", "output = \"", "cached_input = \""] {
                if let Some(v) = l.strip_prefix(key) {
                    let x: f64 = v.trim_end_matches('"').parse().unwrap();
                    return format!("{key}{:.6}\"\n", x * 2.0);
                }
            }
            format!("{l}\n")
        })
        .collect();
    assert_ne!(doubled, toml);
    std::fs::write(&path, doubled).unwrap();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{log}");
    assert!(log.contains("price entries recorded in the book"), "{log}");
    // A tier whose first day was full (on a loaded machine one may miss its SLAs and be
    // CONTINGENCY, which no restatement replaces): every such tier is restated.
    let tier = ["t1", "t2", "t3"]
        .into_iter()
        .find(|t| log.contains(&format!("restated at the cutoff: {t} 2026-01-05")))
        .unwrap_or_else(|| panic!("no tier restated at the cutoff: {log}"));
    let value = |v: u32| -> f64 {
        let f = env
            .data()
            .join(format!("published/{tier}/2026-01-05.v{v}.json"));
        let r: serde_json::Value = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
        let d = r.get("determination").unwrap_or(&r);
        d["value"].as_str().unwrap().parse().unwrap()
    };
    let status = |v: u32| -> String {
        let f = env
            .data()
            .join(format!("published/{tier}/2026-01-05.v{v}.json"));
        let r: serde_json::Value = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
        let d = r.get("determination").unwrap_or(&r);
        d["status"].as_str().unwrap().to_string()
    };
    assert_eq!(status(1), "BASE", "{log}");
    assert_eq!(status(2), "BASE", "a restated anchor is BASE again: {log}");
    let (a, b) = (value(1), value(2));
    assert!((b / a - 2.0).abs() < 1e-4, "v1 {a}, v2 {b}: not doubled");
    let bundle = env.dir.path().join("bundle");
    let o = sit(&[
        "--data",
        env.data().to_str().unwrap(),
        "audit",
        "export",
        "--date",
        "2026-01-05",
        "--out",
        bundle.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = sit(&["audit", "replay", bundle.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).matches(": identical").count() >= 4 && !text(&o).contains("differs"),
        "{}",
        text(&o)
    );
}

/// `sit run` settles the listed futures after each publication: a run over a month's turn
/// (2026-01-30 and 31, where the chain starts: its BASE day, and the service's first day, which
/// may be an outage; then 2026-02-01) signs February's month to date as INDICATIVE with that
/// one day's value; the first quarter holds the chain's start and gets no value.
#[test]
fn run_publishes_the_month_to_date_of_each_contract_after_each_day() {
    let env = Env::new(6, "");
    let mut c = env.run_cmd_at(HOUR_MS, "3");
    let args: Vec<String> = c
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut c2 = Command::new(c.get_program());
    for a in &args {
        c2.arg(match a.as_str() {
            START => "2026-01-30",
            UNTIL => "2026-02-02",
            other => other,
        });
    }
    c = c2;
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("sit run: settlement SIT-T1-M 2026-02 INDICATIVE"),
        "{}",
        text(&o)
    );
    let s = env.data().join("published/settlements");
    let vk = sit::archive::keys::load_public(&env.dir.path().join("keys/public-key.pem")).unwrap();
    for (contract, tier) in [("SIT-T1-M", "t1"), ("SIT-T2-M", "t2"), ("SIT-T3-M", "t3")] {
        let bytes = std::fs::read(s.join(contract).join("2026-02.indicative.json"))
            .unwrap_or_else(|e| panic!("{contract}: {e}\n{}", text(&o)));
        let r = sit_core::settlement::verify_indicative(&bytes, &vk).unwrap();
        assert_eq!(r.days.len(), 1, "{contract}");
        let day: serde_json::Value = serde_json::from_slice(
            &std::fs::read(
                env.data()
                    .join(format!("published/{tier}/2026-02-01.v1.json")),
            )
            .unwrap(),
        )
        .unwrap();
        let v = sit_core::fixed::Fixed::parse(day["value"].as_str().unwrap()).unwrap();
        assert_eq!(r.value.round_dp(4), v.round_dp(4), "{contract}");
        assert!(!s.join(contract).join("2026-02.json").exists(), "not final");
    }
    assert!(
        !s.join("SIT-T2-Q/2026-Q1.indicative.json").exists(),
        "Q1 holds the BASE day"
    );
}
