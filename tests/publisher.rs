//! The publisher end to end: a real store filled by `sit demo` on the simulated market (its
//! own publications removed), the library's `sit publish` at instants set by an injected
//! clock (the binary has no flag for the time), the real `sit` binary verifying, the real HTTP server on 127.0.0.1:0, and an
//! independent Ed25519 check (openssl, and Python `cryptography` where installed) over bytes
//! canonicalised by Python's json module rather than by our code.

mod common;
use common::{copy_dir, demo, sit, text};

use sit::archive::Archive;
use sit::server;
use sit::store::Store;
use sit_core::fixed::Fixed;
use sit_core::observation::Observation;
use sit_core::time::Date;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const D1: &str = "2026-01-05";
const D2: &str = "2026-01-06";

/// A store with two simulated days, made once per test binary; each test copies it.
fn seed_store() -> &'static Path {
    static SEED: OnceLock<PathBuf> = OnceLock::new();
    SEED.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("sit-publisher-seed-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let data = dir.join("data");
        demo(&data, &["--days", "2", "--hour-ms", "300"]);
        // The store and the commitments stay; what the demo published goes, so each test
        // publishes the days itself.
        for e in std::fs::read_dir(data.join("published")).unwrap() {
            let p = e.unwrap().path();
            if p.file_name().unwrap() != "commitments" {
                if p.is_dir() {
                    std::fs::remove_dir_all(&p).unwrap();
                } else {
                    std::fs::remove_file(&p).unwrap();
                }
            }
        }
        std::fs::remove_dir_all(data.join("archive")).unwrap();
        data
    })
}

struct Env {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    key: PathBuf,
    public: PathBuf,
}

impl Env {
    fn new() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        copy_dir(seed_store(), &data);
        let keys = tmp.path().join("keys");
        let o = sit(&["keys", "generate", "--out", keys.to_str().unwrap()]);
        assert!(o.status.success(), "{}", text(&o));
        Env {
            data,
            key: keys.join("signing-key.pem"),
            public: keys.join("public-key.pem"),
            _tmp: tmp,
        }
    }

    /// `sit publish` as the binary runs it, with the clock reading `at`: the same output,
    /// messages and exit code.
    fn publish(&self, date: &str, tier: Option<&str>, at: &str, extra: &[&str]) -> Output {
        use std::os::unix::process::ExitStatusExt;
        let tiers: Vec<String> = match tier {
            Some(t) => vec![t.to_string()],
            None => sit_core::probes::Suite::embedded().tier_ids(),
        };
        let clock = sit::sys::clock::FixedClock(sit_core::time::parse_utc_ms(at).unwrap());
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let r = sit::cli::publish::publish_days(
            &self.data,
            Date::parse(date).unwrap(),
            &tiers,
            &self.key,
            extra.contains(&"--allow-empty"),
            &clock,
            &mut stdout,
            &mut stderr,
        );
        let code = match r {
            Ok(()) => 0,
            Err(e) => {
                stderr.extend(format!("error: {e}\n").into_bytes());
                e.exit_code()
            }
        };
        Output {
            status: std::process::ExitStatus::from_raw(code << 8),
            stdout,
            stderr,
        }
    }

    fn archive(&self) -> Archive {
        Archive::for_data(&self.data)
    }

    fn record(&self, tier: &str, date: &str, version: u32) -> serde_json::Value {
        let p = self.archive().root().join(Archive::file_name(
            tier,
            Date::parse(date).unwrap(),
            version,
        ));
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    }
}

/// Move the t1 value of `date` materially: copy two endpoints' t1 observations (the day and
/// its trailing window) under new endpoint ids at `factor` times the cost. Real store appends.
fn shift_t1_prices(data: &Path, date: &str, suffix: &str, factor: i128) {
    let store = Store::open(data).unwrap();
    let day = Date::parse(date).unwrap();
    let from = day.start_ms() - 23 * sit_core::time::HOUR_MS;
    let to = day.start_ms() + sit_core::time::DAY_MS;
    let mut copies: Vec<Observation> = store
        .scan(from, to)
        .map(|r| r.unwrap().obs)
        .filter(|o| o.tier == "t1" && (o.endpoint == "sim-atlas" || o.endpoint == "sim-boreal"))
        .map(|mut o| {
            // A suffix makes new endpoints (entrants); none adds attempts to existing ones.
            if !suffix.is_empty() {
                o.endpoint = format!("{}-{suffix}", o.endpoint);
            }
            // 4x the billed tokens is 4x the cost whether the day is costed as observed
            // (1.0.0-1.3.0) or from the price book (1.4.0)
            o.cost = sit_core::fixed::Pusd(o.cost.0 * factor);
            let t = &mut o.tokens;
            t.billed_input *= factor as u64;
            t.billed_output *= factor as u64;
            t.billed_cached *= factor as u64;
            o
        })
        .collect();
    assert!(copies.len() > 100, "seed store has t1 observations");
    store.append(&mut copies).unwrap();
}

#[test]
fn publish_is_write_once_restatements_follow_the_policy_and_link_back() {
    let env = Env::new();
    // Not before the day ends.
    let o = env.publish(D1, Some("t1"), "2026-01-05T23:59:59.999Z", &[]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("before the day ends"), "{}", text(&o));

    let o = env.publish(D1, None, "2026-01-06T00:30:00Z", &[]);
    assert!(o.status.success(), "{}", text(&o));
    let v1 = env.record("t1", D1, 1);
    assert_eq!(v1["version"], 1);
    // The first day of the store is where t1's chain starts: the anchor, status BASE.
    assert_eq!(v1["status"], "BASE");
    assert_eq!(v1["sequence"], 1);
    let v1_bytes = std::fs::read(env.archive().root().join("t1/2026-01-05.v1.json")).unwrap();

    // Overwrite refused: the same data again.
    let o = env.publish(D1, Some("t1"), "2026-01-06T01:00:00Z", &[]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("never overwritten"), "{}", text(&o));

    // Late data moves the value: a restatement before the cutoff is allowed.
    shift_t1_prices(&env.data, D1, "late", 4);
    let o = env.publish(D1, Some("t1"), "2026-01-06T12:00:00Z", &[]);
    assert!(o.status.success(), "{}", text(&o));
    let v2 = env.record("t1", D1, 2);
    // A restated anchor stays BASE (never a settlement value); `restates` says what it replaces.
    assert_eq!(v2["status"], "BASE");
    assert_eq!(v2["version"], 2);
    assert_eq!(
        v2["sequence"], 2,
        "sequence increases per tier, restatements included"
    );
    assert_eq!(v2["restates"]["version"], 1);
    assert_eq!(v2["restates"]["value"], v1["value"]);
    assert_eq!(
        v2["restates"]["record_hash"].as_str().unwrap(),
        blake3::hash(&v1_bytes).to_hex().as_str()
    );
    assert_ne!(v2["value"], v1["value"]);
    // The original is untouched and still verifies.
    assert_eq!(
        std::fs::read(env.archive().root().join("t1/2026-01-05.v1.json")).unwrap(),
        v1_bytes
    );

    // Exactly at the cutoff (end of day + 24 h): refused; one millisecond before: allowed.
    shift_t1_prices(&env.data, D1, "later", 9);
    let o = env.publish(D1, Some("t1"), "2026-01-07T00:00:00.000Z", &[]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("restatement window closed at 2026-01-07T00:00:00.000Z"));
    let o = env.publish(D1, Some("t1"), "2026-01-06T23:59:59.999Z", &[]);
    assert!(o.status.success(), "{}", text(&o));
    let v3 = env.record("t1", D1, 3);
    assert_eq!(v3["restates"]["version"], 2);
    assert_eq!(v3["restates"]["value"], v2["value"]);

    // Every version verifies with the publisher's key, through the real binary.
    for v in 1..=3 {
        let f = env.archive().root().join(format!("t1/{D1}.v{v}.json"));
        let o = sit(&[
            "verify",
            f.to_str().unwrap(),
            "--key",
            env.public.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", text(&o));
    }
}

#[test]
fn contingency_day_carries_the_previous_final_value_with_its_reason() {
    let env = Env::new();
    let o = env.publish(D2, Some("t2"), "2026-01-07T00:05:00Z", &[]);
    assert!(o.status.success(), "{}", text(&o));
    let final_value = env.record("t2", D2, 1)["value"].clone();
    // 2026-01-08 has no observations: refused unless declared an outage. (Not 2026-01-07: a
    // probe of the demo's last seconds may land there on a loaded machine.)
    let o = env.publish("2026-01-08", Some("t2"), "2026-01-09T00:05:00Z", &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--allow-empty"));
    let o = env.publish(
        "2026-01-08",
        Some("t2"),
        "2026-01-09T00:05:00Z",
        &["--allow-empty"],
    );
    assert!(o.status.success(), "{}", text(&o));
    // (2026-01-06 is t2's first published day here: its BASE value, the last value set from data)
    assert!(text(&o).contains("carried forward the last value set from data, that of 2026-01-06"));
    let c = env.record("t2", "2026-01-08", 1);
    assert_eq!(c["status"], "CONTINGENCY");
    assert_eq!(c["value"], final_value);
    assert_eq!(c["contingency"]["carried_from"], D2);
    assert_eq!(c["counts"]["valid_partitions"], 0);
    // Methodology 1.3.0: more than 3 days without a value set from data is SUSPENDED; the
    // record still carries the last value set from data (for reference) and its date.
    let o = env.publish(
        "2026-01-20",
        Some("t2"),
        "2026-01-21T00:05:00Z",
        &["--allow-empty"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("the index is SUSPENDED"), "{}", text(&o));
    let c2 = env.record("t2", "2026-01-20", 1);
    assert_eq!(c2["status"], "SUSPENDED");
    assert_eq!(c2["value"], final_value);
    assert_eq!(c2["contingency"]["carried_from"], D2);
    assert_eq!(c2["sequence"], 3);
    // Not before the day's end plus the settlement lag (5 minutes).
    let o = env.publish(
        "2026-01-21",
        Some("t2"),
        "2026-01-22T00:04:59.999Z",
        &["--allow-empty"],
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains("settlement lag of 5 minutes"),
        "{}",
        text(&o)
    );
    // A first day with nothing before it: CONTINGENCY with no value, and it says so.
    let o = env.publish(
        "2026-01-02",
        Some("t3"),
        "2026-01-03T00:05:00Z",
        &["--allow-empty"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let n = env.record("t3", "2026-01-02", 1);
    assert_eq!(n["value"], serde_json::Value::Null);
    assert!(n["contingency"]["reason"]
        .as_str()
        .unwrap()
        .contains("no earlier value set from data"));
}

#[test]
fn publish_refuses_a_world_readable_key_and_an_unknown_tier() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let o = env.publish(D1, Some("t9"), "2026-01-06T00:30:00Z", &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("unknown tier `t9`"), "{}", text(&o));
    std::fs::set_permissions(&env.key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = env.publish(D1, Some("t1"), "2026-01-06T00:30:00Z", &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("chmod 600"), "{}", text(&o));
    assert!(
        env.archive().entries().unwrap().is_empty(),
        "nothing published"
    );
}

/// Python's json module as the independent canonicaliser, openssl as the independent
/// Ed25519 verifier. Returns whether openssl accepted the signature.
fn independent_verify(record: &[u8], public_pem: &Path, work: &Path) -> bool {
    let rec = work.join("record.json");
    std::fs::write(&rec, record).unwrap();
    let py = format!(
        r#"
import json, sys
r = json.load(open({rec:?}))
sig = bytes.fromhex(r.pop("signature"))
msg = json.dumps(r, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
open({msg:?}, "wb").write(msg)
open({sig:?}, "wb").write(sig)
try:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
except ImportError:
    sys.exit(0)
try:
    load_pem_public_key(open({key:?}, "rb").read()).verify(sig, msg)
    print("cryptography: valid")
except Exception:
    print("cryptography: INVALID")
"#,
        rec = rec.to_str().unwrap(),
        msg = work.join("msg.bin").to_str().unwrap(),
        sig = work.join("sig.bin").to_str().unwrap(),
        key = public_pem.to_str().unwrap(),
    );
    let o = Command::new("python3").arg("-c").arg(py).output().unwrap();
    assert!(o.status.success(), "python: {}", text(&o));
    let py_says = String::from_utf8_lossy(&o.stdout).to_string();
    let o = Command::new("openssl")
        .args(["pkeyutl", "-verify", "-pubin", "-rawin", "-inkey"])
        .arg(public_pem)
        .arg("-in")
        .arg(work.join("msg.bin"))
        .arg("-sigfile")
        .arg(work.join("sig.bin"))
        .output()
        .expect("openssl is installed");
    let openssl_ok = o.status.success();
    if py_says.contains("cryptography:") {
        assert_eq!(
            py_says.contains("cryptography: valid"),
            openssl_ok,
            "python cryptography and openssl disagree"
        );
    }
    openssl_ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_record_verifies_independently_and_one_flipped_byte_fails_both() {
    let env = Env::new();
    let o = env.publish(D1, None, "2026-01-06T00:30:00Z", &[]);
    assert!(o.status.success(), "{}", text(&o));
    // openssl can also read the private key we wrote (standard PKCS#8).
    let o = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&env.key)
        .output()
        .unwrap();
    assert_eq!(o.stdout, std::fs::read(&env.public).unwrap());

    let running = server::start(env.archive(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let url = format!("http://{}/v1/index/t1/latest", running.addr);
    let body = reqwest::get(&url).await.unwrap().bytes().await.unwrap();
    let work = tempfile::tempdir().unwrap();
    assert!(independent_verify(&body, &env.public, work.path()));
    // `sit verify` with the URL (the binary fetches over loopback).
    let pubkey = env.public.to_str().unwrap().to_string();
    let u = url.clone();
    let o = tokio::task::spawn_blocking(move || sit(&["verify", &u, "--key", &pubkey]))
        .await
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("VALID  t1 2026-01-05"));
    assert!(
        text(&o).contains("settlement value: no (BASE: the anchor of a chain: no earlier price to compare); in a contract period: refused"),
        "{}",
        text(&o)
    );
    assert!(
        text(&o).contains("final at   2026-01-07T00:00:00.000Z"),
        "{}",
        text(&o)
    );
    // Regression (issue 26): the help says the key may be given as 64 hex characters, and
    // `--key <hex>` was read as a file name.
    let hex = sit_core::signing::hex(
        sit::archive::keys::load_public(&env.public)
            .unwrap()
            .as_bytes(),
    );
    let u = url.clone();
    let o = tokio::task::spawn_blocking(move || sit(&["verify", &u, "--key", &hex]))
        .await
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("VALID  t1 2026-01-05"));

    // Flip one byte inside the value: both must now fail.
    let s = String::from_utf8(body.to_vec()).unwrap();
    let i = s.find("\"value\":\"").unwrap() + 10;
    let mut bytes = body.to_vec();
    bytes[i] = if bytes[i] == b'9' { b'8' } else { bytes[i] + 1 };
    assert!(!independent_verify(&bytes, &env.public, work.path()));
    let f = work.path().join("flipped.json");
    std::fs::write(&f, &bytes).unwrap();
    let o = sit(&[
        "verify",
        f.to_str().unwrap(),
        "--key",
        env.public.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("INVALID"));
    // Another key: refused by name.
    let other = tempfile::tempdir().unwrap();
    sit(&["keys", "generate", "--out", other.path().to_str().unwrap()]);
    let rec = work.path().join("good.json");
    std::fs::write(&rec, &body).unwrap();
    let o = sit(&[
        "verify",
        rec.to_str().unwrap(),
        "--key",
        other.path().join("public-key.pem").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("but the key given is"), "{}", text(&o));
    running.shutdown().await.unwrap();
}

/// Serve the env's archive on 127.0.0.1:0.
async fn serve(env: &Env) -> (server::Running, Http) {
    let running = server::start(env.archive(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let http = Http {
        client: reqwest::Client::new(),
        base: format!("http://{}", running.addr),
    };
    (running, http)
}

struct Http {
    client: reqwest::Client,
    base: String,
}

impl Http {
    async fn get(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, String) {
        let mut r = self.client.get(format!("{}{path}", self.base));
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let h = resp.headers().clone();
        (status, h, resp.text().await.unwrap())
    }

    /// Assert a documented JSON error.
    async fn error(&self, path: &str, status: u16, code: &str) -> serde_json::Value {
        let (s, h, body) = self.get(path, &[]).await;
        assert_eq!(s, status, "{path}: {body}");
        assert_eq!(h["content-type"], "application/json", "{path}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"]["code"], code, "{path}: {body}");
        assert_eq!(v["error"]["status"], status);
        assert!(!v["error"]["message"].as_str().unwrap().is_empty());
        assert!(!v["error"]["hint"].as_str().unwrap().is_empty());
        v
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_api_serves_records_csv_304_and_documented_errors() {
    let env = Env::new();
    for (d, at) in [(D1, "2026-01-06T00:30:00Z"), (D2, "2026-01-07T00:30:00Z")] {
        let o = env.publish(d, None, at, &[]);
        assert!(o.status.success(), "{}", text(&o));
    }
    // Late attempts of two existing endpoints at 4x the cost: under methodology 1.1 a chained
    // day moves with existing endpoints' prices (entrants would not move it until their
    // second day).
    shift_t1_prices(&env.data, D2, "", 4);
    let o = env.publish(D2, Some("t1"), "2026-01-07T06:00:00Z", &[]);
    assert!(o.status.success(), "{}", text(&o));

    let (running, http) = serve(&env).await;

    // latest, ETag and 304.
    let (s, h, body) = http.get("/v1/index/t1/latest", &[]).await;
    assert_eq!(s, 200);
    let rec: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (rec["date"].as_str(), rec["version"].as_u64()),
        (Some(D2), Some(2))
    );
    let etag = h["etag"].to_str().unwrap().to_string();
    assert!(h["cache-control"]
        .to_str()
        .unwrap()
        .contains("must-revalidate"));
    for inm in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"x\", {etag}"),
        "*".into(),
    ] {
        let (s, h2, body) = http
            .get("/v1/index/t1/latest", &[("if-none-match", &inm)])
            .await;
        assert_eq!(s, 304, "{inm}");
        assert!(body.is_empty());
        assert_eq!(h2["etag"].to_str().unwrap(), etag);
    }
    let (s, _, _) = http
        .get("/v1/index/t1/latest", &[("if-none-match", "\"other\"")])
        .await;
    assert_eq!(s, 200);

    // A date: the record in force, with links to the earlier version.
    let (s, h, body) = http.get(&format!("/v1/index/t1/{D2}"), &[]).await;
    assert_eq!(s, 200);
    let v2: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v2["status"], "RESTATED");
    assert_eq!(
        h["link"].to_str().unwrap(),
        format!("</v1/index/t1/{D2}?version=1>; rel=\"predecessor-version\"")
    );
    // The dated record's cutoff is long past: immutable caching.
    assert!(h["cache-control"].to_str().unwrap().contains("immutable"));
    let (s, h, body) = http.get(&format!("/v1/index/t1/{D2}?version=1"), &[]).await;
    assert_eq!(s, 200);
    let v1: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v1["status"], "FINAL");
    assert_eq!(v1["value"], v2["restates"]["value"]);
    assert!(h["link"].to_str().unwrap().contains("successor-version"));
    let (s, _, _) = http
        .get(
            &format!("/v1/index/t1/{D2}?version=1"),
            &[("if-none-match", h["etag"].to_str().unwrap())],
        )
        .await;
    assert_eq!(s, 304);

    // Point in time (issue 31): what was in force at a time is the latest version published
    // by then, for a day and for the history (JSON and CSV).
    for (as_of, want) in [
        ("2026-01-07T03:00:00Z", 1),
        ("2026-01-07T06:00:00Z", 2),
        ("2026-01-08", 2),
    ] {
        let (s, _, body) = http
            .get(&format!("/v1/index/t1/{D2}?as_of={as_of}"), &[])
            .await;
        assert_eq!(s, 200, "{as_of}: {body}");
        let r: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(r["version"], want, "{as_of}");
        let (_, _, csv) = http
            .get(&format!("/v1/index/t1.csv?as_of={as_of}"), &[])
            .await;
        let row = csv
            .lines()
            .find(|l| l.starts_with(&format!("t1,{D2},")))
            .unwrap();
        assert!(
            row.starts_with(&format!("t1,{D2},{want},")),
            "{as_of}: {row}"
        );
    }
    let (s, _, body) = http
        .get("/v1/index/t1?as_of=2026-01-07T03:00:00Z", &[])
        .await;
    assert_eq!(s, 200);
    let h: serde_json::Value = serde_json::from_str(&body).unwrap();
    let versions: Vec<u64> = h["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, vec![1, 1], "{body}");
    // before its first version: not determined then; bad input named
    let (s, _, body) = http
        .get(
            &format!("/v1/index/t1/{D2}?as_of=2026-01-07T00:00:00Z"),
            &[],
        )
        .await;
    assert_eq!(s, 404, "{body}");
    assert!(body.contains("was published by"), "{body}");
    for q in [
        "as_of=yesterday",
        "as_of=2026-01-07T00:00:00%2B01:00",
        "as_of=2026-01-07&version=1",
    ] {
        let (s, _, body) = http.get(&format!("/v1/index/t1/{D2}?{q}"), &[]).await;
        assert_eq!(s, 400, "{q}: {body}");
        assert!(body.contains("as_of"), "{q}: {body}");
    }

    // History as JSON (records embedded byte for byte) and as CSV two ways.
    let (s, _, body) = http
        .get("/v1/index/t1?from=2026-01-01&to=2026-01-31", &[])
        .await;
    assert_eq!(s, 200);
    let hist: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(hist["count"], 2);
    assert_eq!(hist["records"][1]["version"], 2, "the record in force");
    let (_, _, only) = http.get(&format!("/v1/index/t1?from={D2}"), &[]).await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&only).unwrap()["count"],
        1
    );
    let (s, h, csv) = http.get("/v1/index/t1", &[("accept", "text/csv")]).await;
    assert_eq!(s, 200);
    assert!(h["content-type"].to_str().unwrap().starts_with("text/csv"));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], server::routes::CSV_HEADER);
    assert_eq!(lines.len(), 3);
    assert!(lines[2].starts_with(&format!(
        "t1,{D2},2,RESTATED,{},",
        v2["value"].as_str().unwrap()
    )));
    // Finality beside each row: the restatement cutoff (00:00 two days after the date) and
    // whether the day's own value is a daily settlement value.
    let d2 = sit_core::time::Date::parse(D2).unwrap();
    let cutoff = sit_core::time::format_utc_ms(d2.start_ms() + 2 * sit_core::time::DAY_MS);
    assert!(
        lines[2].ends_with(&format!(",{cutoff},true")),
        "{}",
        lines[2]
    );
    let (_, _, csv2) = http.get("/v1/index/t1.csv", &[]).await;
    assert_eq!(csv, csv2);

    // Every documented error, with its status and JSON body.
    http.error("/v1/index/t9/latest", 404, "unknown_tier").await;
    http.error("/v1/index/t9", 404, "unknown_tier").await;
    http.error(&format!("/v1/index/t9/{D1}"), 404, "unknown_tier")
        .await;
    let e = http
        .error("/v1/index/t1/2027-01-01", 404, "not_determined")
        .await;
    assert!(e["error"]["hint"].as_str().unwrap().contains(D2));
    for bad in ["2026-13-01", "2026-1-5", "yesterday", "2026-02-30", "%FF"] {
        http.error(&format!("/v1/index/t1/{bad}"), 400, "bad_date")
            .await;
    }
    http.error("/v1/index/t1?from=2026-01-xx", 400, "bad_date")
        .await;
    http.error(
        "/v1/index/t1?from=2026-02-01&to=2026-01-01",
        400,
        "bad_range",
    )
    .await;
    http.error("/v1/index/t1?form=2026-01-01", 400, "bad_query")
        .await;
    http.error(&format!("/v1/index/t1/{D2}?version=0"), 400, "bad_version")
        .await;
    http.error(&format!("/v1/index/t1/{D2}?version=x"), 400, "bad_version")
        .await;
    http.error(
        &format!("/v1/index/t1/{D2}?version=9"),
        404,
        "unknown_version",
    )
    .await;
    http.error("/v2/anything", 404, "not_found").await;
    http.error("/v1/commitments/2027-01-01", 404, "not_committed")
        .await;
    http.error("/v1/commitments/tomorrow", 400, "bad_date")
        .await;
    // The demo committed its days' schedules: served with the reveal, which matches.
    let (s, _, c) = http.get(&format!("/v1/commitments/{D1}"), &[]).await;
    assert_eq!(s, 200, "{c}");
    let c: serde_json::Value = serde_json::from_str(&c).unwrap();
    let reveal: sit_core::commit::Reveal = serde_json::from_value(c["reveal"].clone()).unwrap();
    assert_eq!(
        sit_core::commit::commitment_of(
            Date::parse(D1).unwrap(),
            reveal.seed_u64().unwrap(),
            &reveal.salt_bytes().unwrap()
        ),
        c["commitment"]["commitment"].as_str().unwrap()
    );
    let r = http
        .client
        .post(format!("{}/v1/index/t1/latest", http.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    let v: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(v["error"]["code"], "method_not_allowed");

    // Tiers, methodology, keys, health, metrics, page.
    let (_, _, t) = http.get("/v1/tiers", &[]).await;
    let t: serde_json::Value = serde_json::from_str(&t).unwrap();
    assert_eq!(t["tiers"][0]["latest"]["date"], D2);
    assert_eq!(t["tiers"][0]["latest"]["version"], 2);
    let (_, _, m) = http.get("/v1/methodology", &[]).await;
    let m: serde_json::Value = serde_json::from_str(&m).unwrap();
    assert_eq!(m["hash"], sit_core::index::Methodology::default().hash());
    assert_eq!(m["hash"], v2["methodology_hash"]);
    // every version by hash, 1.0.0 included, each with its parameters
    let versions = m["versions"].as_array().unwrap();
    for want in [
        sit_core::index::Methodology::v1_0_0(),
        sit_core::index::Methodology::v1_1_0(),
        sit_core::index::Methodology::v1_2_0(),
    ] {
        let v = versions.iter().find(|v| v["hash"] == want.hash()).unwrap();
        assert_eq!(v["version"], want.version.as_str());
        assert_eq!(v["parameters"], serde_json::to_value(&want).unwrap());
    }
    let (_, _, k) = http.get("/v1/keys", &[]).await;
    let k: serde_json::Value = serde_json::from_str(&k).unwrap();
    assert_eq!(k["keys"].as_array().unwrap().len(), 1);
    assert_eq!(k["keys"][0]["key_id"], v2["key_id"]);
    assert_eq!(k["keys"][0]["valid_until"], serde_json::Value::Null);
    assert_eq!(
        k["keys"][0]["public_key_pem"].as_str().unwrap(),
        std::fs::read_to_string(&env.public).unwrap()
    );
    let (s, _, hz) = http.get("/healthz", &[]).await;
    assert_eq!(s, 200, "{hz}");
    let (_, h, metrics) = http.get("/metrics", &[]).await;
    assert!(h["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    assert!(
        metrics.contains("sit_http_requests_total{route=\"latest\",status=\"304\"} 4"),
        "{metrics}"
    );
    assert!(
        // 7, and the 3 bad as_of requests
        metrics.contains("sit_http_requests_total{route=\"by_date\",status=\"400\"} 10"),
        "{metrics}"
    );
    assert!(metrics.contains("sit_published_records 7"), "{metrics}");
    assert!(metrics.contains(&format!(
        "sit_index_value{{tier=\"t1\",date=\"{D2}\",status=\"RESTATED\"}} {}",
        v2["value"].as_str().unwrap()
    )));
    let (s, h, page) = http.get("/", &[]).await;
    assert_eq!(s, 200);
    assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(page.contains("<svg") && page.contains("RESTATED") && !page.contains("<script"));
    // issue 31, the page as a risk officer reads it: when each value was published, its change
    // from the day before, and that the data is stale by this server's clock (January 2026)
    assert!(page.contains("published 2026-01-07 06:00 UTC"), "{page}");
    assert!(page.contains(&format!("% vs {D1}")), "{page}");
    assert!(page.contains("<strong>Stale.</strong>"), "{page}");
    assert!(
        !page.contains("Simulated data."),
        "not signed by a demo key"
    );
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_matches_the_server() {
    let env = Env::new();
    let o = env.publish(D1, None, "2026-01-06T00:30:00Z", &[]);
    assert!(o.status.success(), "{}", text(&o));
    let (running, http) = serve(&env).await;
    let (s, _, doc) = http.get("/v1/openapi.json", &[]).await;
    assert_eq!(s, 200);
    let doc: serde_json::Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let resolve = |p: &serde_json::Value| -> serde_json::Value {
        match p.get("$ref").and_then(|r| r.as_str()) {
            Some(r) => {
                let ptr = r.trim_start_matches('#');
                doc.pointer(ptr)
                    .unwrap_or_else(|| panic!("dangling {r}"))
                    .clone()
            }
            None => p.clone(),
        }
    };
    let paths = doc["paths"].as_object().unwrap();
    assert_eq!(paths.len(), 28, "every route is documented");
    for (path, item) in paths {
        // A route that writes takes only POST (the certification challenge): a GET of it is
        // a documented 405.
        if item.get("get").is_none() {
            let op = &item["post"];
            assert!(op.is_object(), "{path}: neither GET nor POST documented");
            let (s, _, body) = http.get(path, &[]).await;
            assert_eq!(s, 405, "{path}: {body}");
            assert!(
                op["responses"].get("405").is_some(),
                "{path} must document 405"
            );
            continue;
        }
        let op = &item["get"];
        let params: Vec<serde_json::Value> = op["parameters"]
            .as_array()
            .map(|a| a.iter().map(resolve).collect())
            .unwrap_or_default();
        // Substitute examples: path parameters and every documented query parameter.
        let mut url = path.clone();
        let mut q = Vec::new();
        for p in &params {
            let ex = p["example"].to_string().trim_matches('"').to_string();
            match p["in"].as_str().unwrap() {
                "path" => url = url.replace(&format!("{{{}}}", p["name"].as_str().unwrap()), &ex),
                _ => q.push(format!("{}={ex}", p["name"].as_str().unwrap())),
            }
        }
        if !q.is_empty() {
            url = format!("{url}?{}", q.join("&"));
        }
        let (s, h, _) = http.get(&url, &[]).await;
        let responses = op["responses"].as_object().unwrap();
        assert!(
            responses.contains_key(&s.to_string()),
            "{url} answered {s}, not documented"
        );
        let documented = resolve(&responses[&s.to_string()]);
        if let Some(content) = documented["content"].as_object() {
            let ct = h["content-type"].to_str().unwrap();
            assert!(
                content.keys().any(|k| ct.starts_with(k.as_str())),
                "{url}: content-type {ct} not among {:?}",
                content.keys().collect::<Vec<_>>()
            );
        }
        // Every templated path answers a documented 404 for an unknown tier.
        if path.contains("{tier}") {
            let bad = path.replace("{tier}", "t9").replace("{date}", D1);
            let (s, _, _) = http.get(&bad, &[]).await;
            assert_eq!(s, 404);
            assert!(responses.contains_key("404"), "{path} must document 404");
        }
    }
    // The record schema lists every member a served record has, and no more are required.
    let (_, _, rec) = http.get("/v1/index/t1/latest", &[]).await;
    let rec: serde_json::Value = serde_json::from_str(&rec).unwrap();
    let schema = &doc["components"]["schemas"]["Determination"];
    let props = schema["properties"].as_object().unwrap();
    for k in rec.as_object().unwrap().keys() {
        assert!(
            props.contains_key(k),
            "record member `{k}` is not documented"
        );
    }
    for r in schema["required"].as_array().unwrap() {
        assert!(
            rec.get(r.as_str().unwrap()).is_some(),
            "documented `{r}` missing"
        );
    }
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_picks_up_new_publications_and_refuses_altered_records() {
    let env = Env::new();
    let o = env.publish(D1, Some("t1"), "2026-01-06T00:30:00Z", &[]);
    assert!(o.status.success(), "{}", text(&o));
    let running = server::start(env.archive(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let base = format!("http://{}", running.addr);
    let latest = || async {
        let r = reqwest::get(format!("{base}/v1/index/t1/latest"))
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        v["date"].as_str().unwrap().to_string()
    };
    assert_eq!(latest().await, D1);
    // Publish while the server runs (separate process, same archive).
    let o = env.publish(D2, Some("t1"), "2026-01-07T00:30:00Z", &[]);
    assert!(o.status.success(), "{}", text(&o));
    let mut seen = String::new();
    for _ in 0..40 {
        seen = latest().await;
        if seen == D2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(seen, D2, "new publication served after a reload");
    running.shutdown().await.unwrap();

    // Alter a published value on disk: a fresh server refuses to serve it and reports why.
    let f = env.archive().root().join(format!("t1/{D2}.v1.json"));
    let s = std::fs::read_to_string(&f).unwrap();
    let v = Fixed::parse(
        serde_json::from_str::<serde_json::Value>(&s).unwrap()["value"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    std::fs::write(&f, s.replace(&v.to_string(), &Fixed(v.0 + 1).to_string())).unwrap();
    let running = server::start(env.archive(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let base = format!("http://{}", running.addr);
    let r = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(r.status().as_u16(), 503);
    let h: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert!(h["errors"][0].as_str().unwrap().contains("altered"), "{h}");
    let r = reqwest::get(format!("{base}/v1/index/t1/{D2}"))
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        404,
        "an altered record is never served"
    );
    running.shutdown().await.unwrap();
}

/// Regression guard for issue 11: the publication time comes from the clock only; the binary
/// has no flag to set it (a published `published_at` and the restatement cutoff would rest
/// on the operator's word).
#[test]
fn publish_has_no_flag_to_set_the_publication_time() {
    let env = Env::new();
    let o = sit(&[
        "--data",
        env.data.to_str().unwrap(),
        "publish",
        "--date",
        D1,
        "--key",
        env.key.to_str().unwrap(),
        "--at",
        "2026-01-06T00:30:00Z",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("unexpected argument '--at'"),
        "{}",
        text(&o)
    );
    assert!(
        env.archive().entries().unwrap().is_empty(),
        "nothing published"
    );
}

/// Regression guard (review of issue 15): once a period is settled FINAL, no day of it is
/// restated, even inside its restatement window, so the final value's listed records stay the
/// ones in force. The check runs under the publisher lock, like the settlement.
#[test]
fn a_day_of_a_period_settled_final_is_never_restated() {
    use sit_core::settlement::{rule_text, Period, SettlementRecord, SettlementStatus, SCHEMA};
    let env = Env::new();
    let o = env.publish(D1, Some("t1"), "2026-01-06T00:30:00Z", &[]);
    assert!(o.status.success(), "{}", text(&o));
    let contract = sit::contracts::embedded(&sit_core::probes::Suite::embedded().tier_ids())
        .into_iter()
        .find(|c| c.id == "SIT-T1-M")
        .unwrap();
    let period = Period::of(contract.cycle, 2026, 1).unwrap();
    let record = SettlementRecord {
        schema: SCHEMA.into(),
        rule: rule_text(&contract),
        contract,
        period,
        days: vec![],
        days_counted: 31,
        value: Fixed::parse("0.1").unwrap(),
        status: SettlementStatus::Final,
        final_settlement_time: "2026-02-01T00:00:00.000Z".into(),
        computed_at: "2026-02-01T00:10:00.000Z".into(),
        attestations: None,
        key_id: None,
    };
    let key = sit::archive::keys::load_signing(&env.key).unwrap();
    let archive = env.archive();
    let lock = archive.lock().unwrap();
    sit::archive::settlements::write_final(&archive, &lock, &record, &key).unwrap();
    drop(lock);
    let o = env.publish(D1, Some("t1"), "2026-01-06T12:00:00Z", &[]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains("SIT-T1-M 2026-01 is settled FINAL at 0.1000; no day of a settled period is restated, version 1 stands"),
        "{}",
        text(&o)
    );
    assert!(!env
        .archive()
        .root()
        .join(Archive::file_name("t1", Date::parse(D1).unwrap(), 2))
        .exists());
}

/// Issue 29: `sit report statement` on a published store. Its concentration figures agree
/// with a recomputation by hand from the records in force (HHI = 10,000 x the sum of squared
/// provider shares), it speaks as of the latest publication (or `--as-of`, leaving out what
/// was published later), fields that need a person are marked, and the HTML carries the same.
#[test]
fn report_statement_fills_what_data_can_and_agrees_with_a_recomputation_by_hand() {
    let env = Env::new();
    for (d, at) in [(D1, "2026-01-06T00:30:00Z"), (D2, "2026-01-07T00:30:00Z")] {
        let o = env.publish(d, None, at, &[]);
        assert!(o.status.success(), "{}", text(&o));
    }
    let data = env.data.to_str().unwrap();
    let o = sit(&["--data", data, "report", "statement", "--format", "json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["as_of"], "2026-01-07",
        "the day of the latest publication"
    );
    for t in v["tiers"].as_array().unwrap() {
        let tier = t["tier"].as_str().unwrap();
        let latest = &t["latest"];
        assert_eq!(latest["date"], D2, "{tier}");
        let r = env.record(tier, D2, 1);
        let weights: Vec<f64> = r["leave_one_provider_out"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["weight"].as_str().unwrap().parse::<f64>().unwrap())
            .filter(|w| *w > 0.0)
            .collect();
        let total: f64 = weights.iter().sum();
        let hhi: f64 = weights.iter().map(|w| (w / total).powi(2)).sum::<f64>() * 10_000.0;
        let got = latest["concentration"]["hhi"].as_f64().unwrap();
        assert!((got - hhi).abs() <= 0.5 + 1e-6, "{tier}: {got} vs {hhi}");
        let mut sorted = weights.clone();
        sorted.sort_by(|a, b| b.partial_cmp(a).unwrap());
        let top1: f64 = latest["concentration"]["top1"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((top1 - sorted[0] / total).abs() < 1e-8, "{tier}");
        assert_eq!(
            latest["providers"].as_object().unwrap().len(),
            weights.len()
        );
        // the simulated market describes the panel: every endpoint its own price source
        assert_eq!(
            latest["price_sources"].as_u64().unwrap() as usize,
            latest["endpoints"].as_array().unwrap().len(),
            "{tier}"
        );
        assert_eq!(t["days"], 2, "{tier}");
    }
    // as of the first day: the second day's records (published on 01-07) are not in it
    let o = sit(&["--data", data, "report", "statement", "--as-of", D2]);
    assert!(o.status.success(), "{}", text(&o));
    let md = String::from_utf8(o.stdout).unwrap();
    assert!(
        md.starts_with("# Benchmark statement: the SIT index, as of 2026-01-06\n"),
        "{md}"
    );
    assert!(md.contains(&format!("| t1 | {D1} (BASE)")), "{md}");
    assert!(!md.contains(&format!("{D2} (")), "{md}");
    assert!(
        md.matches("TO BE COMPLETED BY THE ADMINISTRATOR").count() >= 3,
        "{md}"
    );
    for section in [
        "## 2. What each tier measures",
        "## 5. Discretion",
        "## 6. When data is insufficient",
        "## 7. Changes, cessation",
        "No notices were published by this date",
    ] {
        assert!(md.contains(section), "{section}: {md}");
    }
    let o = sit(&["--data", data, "report", "statement", "--format", "html"]);
    let html = String::from_utf8(o.stdout).unwrap();
    assert!(
        html.contains("<h2>3. The market the panel describes</h2>"),
        "{html}"
    );
    // bad input names the thing and the fix
    let o = sit(&[
        "--data",
        data,
        "report",
        "statement",
        "--as-of",
        "2026-13-01",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--as-of `2026-13-01`"), "{}", text(&o));
}
