//! Self-certification against the simulator on loopback, through the real `sit` binary:
//! a 95%-quality endpoint certifies t1, a 50% one does not, a slow first token fails the SLA
//! with that reason, inflated usage is flagged; the figures agree with what the simulated
//! server itself counted; tampering, a foreign key and Ctrl-C are handled.

mod common;
use common::{sit, text};

use sit::sim::{self, Market, SimProvider};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn provider(
    id: &str,
    quality: u32,
    ttft_ms: u64,
    inflation_permille: u32,
    seed: u64,
) -> SimProvider {
    SimProvider {
        id: id.into(),
        base_input: 0.1,
        base_output: 0.4,
        quality_permille: [quality; 3],
        ttft_ms,
        tokens_per_sec: 400,
        inflation_permille,
        reasoning_tokens: 0,
        fault_permille: 0,
        seed,
        dialect: sit::config::Dialect::Openai,
        ttft_jitter_permille: 350,
        scripted: None,
    }
}

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    providers: PathBuf,
    key: PathBuf,
    public: PathBuf,
    running: sim::server::RunningMarket,
}

impl Fixture {
    async fn new() -> Fixture {
        let market = Market {
            seed: 7,
            providers: vec![
                provider("sim-good", 950, 60, 1000, 11),
                provider("sim-poor", 500, 60, 1000, 12),
                provider("sim-slow", 990, 2600, 1000, 13),
                provider("sim-inflating", 990, 60, 1400, 14),
                SimProvider {
                    dialect: sit::config::Dialect::OpenaiResponses,
                    reasoning_tokens: 40,
                    ..provider("sim-responses", 950, 60, 1000, 15)
                },
            ],
        };
        use sit::sys::clock::Clock;
        let now = sit::sys::clock::SystemClock.now_ms();
        let until = sit_core::time::Date::of_ms(now).succ();
        let running = sim::server::start(market.clone(), until).await.unwrap();
        let eps = market.endpoints(&running.base_urls(), until);
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let providers = dir.join("providers.toml");
        std::fs::write(&providers, sim::providers_toml(&eps, now)).unwrap();
        let o = sit(&[
            "keys",
            "generate",
            "--out",
            dir.join("keys").to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", text(&o));
        Fixture {
            providers,
            key: dir.join("keys/signing-key.pem"),
            public: dir.join("keys/public-key.pem"),
            dir,
            running,
            _tmp: tmp,
        }
    }

    /// `sit certify` in a blocking thread (the simulator runs on this runtime), seed 42.
    async fn certify(&self, endpoint: &str, attempts: u32) -> (Output, PathBuf) {
        self.certify_with(endpoint, attempts, &["--seed", "42"], endpoint)
            .await
    }

    /// `sit certify` with the given seeding options, writing `{out}.json`.
    async fn certify_with(
        &self,
        endpoint: &str,
        attempts: u32,
        seeding: &[&str],
        out: &str,
    ) -> (Output, PathBuf) {
        let out = self.dir.join(format!("{out}.json"));
        let mut args: Vec<String> = [
            "--providers",
            self.providers.to_str().unwrap(),
            "certify",
            "--endpoint",
            endpoint,
            "--tier",
            "t1",
            "--attempts",
            &attempts.to_string(),
            "--key",
            self.key.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(seeding.iter().map(|s| s.to_string()));
        let o = tokio::task::spawn_blocking(move || {
            let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
            sit(&a)
        })
        .await
        .unwrap();
        (o, out)
    }

    fn verify(&self, cert: &Path, key: &Path) -> Output {
        sit(&[
            "verify-cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ])
    }
}

/// `sit certify` exits 0 when every tier certified is met, 4 when one is not (regression,
/// issue 26: it exited 0 on "DOES NOT MEET"); the certificate is written either way.
fn assert_exit_follows_the_verdict(o: &Output, cert: &Path) {
    let c = json(cert);
    let all_met = c["tiers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["verdict"]["pass"] == true);
    let want = if all_met { 0 } else { 4 };
    assert_eq!(o.status.code(), Some(want), "{}", text(o));
}

/// An oracle serving `archive` on 127.0.0.1:0 that issues certification challenges signed
/// with `key`.
async fn oracle(
    archive: &sit::archive::Archive,
    key: ed25519_dalek::SigningKey,
) -> sit::server::Running {
    sit::server::start_with(
        archive.clone(),
        "127.0.0.1:0".parse().unwrap(),
        None,
        Default::default(),
        Some(std::sync::Arc::new(
            sit::certify::challenge::Challenger::new(key, archive),
        )),
        None,
    )
    .await
    .unwrap()
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn check<'a>(cert: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    cert["tiers"][0]["verdict"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certify_verdicts_flags_and_server_agreement_on_the_simulator() {
    let fx = Fixture::new().await;

    // 95% quality: certifies t1.
    let (o, good) = fx.certify("sim-good", 100).await;
    assert_exit_follows_the_verdict(&o, &good);
    let c = json(&good);
    assert_eq!(c["schema"], "sit-certificate/1");
    assert_eq!(c["tiers"][0]["tier"], "t1");
    assert_eq!(c["tiers"][0]["attempts"], 100);
    assert_eq!(c["tiers"][0]["verdict"]["pass"], true, "{}", text(&o));
    assert_eq!(c["endpoint"]["models_returned"]["sim-good-chat"], 100);
    assert_eq!(c["suite"]["hash"], sit_core::probes::Suite::embedded().hash);
    assert!(c["flags"].as_array().unwrap().is_empty(), "{}", c["flags"]);
    let v = fx.verify(&good, &fx.public);
    assert!(v.status.success(), "{}", text(&v));
    // Regression guard for issue 16: a duplicated `endpoint` member verified as VALID.
    let bytes = std::fs::read_to_string(&good).unwrap();
    let dup = fx.dir.join("dup.json");
    std::fs::write(
        &dup,
        format!("{{\"endpoint\":{{\"id\":\"someone-else\"}},{}", &bytes[1..]),
    )
    .unwrap();
    let v = fx.verify(&dup, &fx.public);
    assert!(!v.status.success(), "{}", text(&v));
    assert!(
        text(&v).contains("duplicate member `endpoint`"),
        "{}",
        text(&v)
    );
    // A reformatted copy is not the signed document either.
    let pretty = fx.dir.join("pretty.json");
    std::fs::write(&pretty, serde_json::to_vec_pretty(&json(&good)).unwrap()).unwrap();
    let v = fx.verify(&pretty, &fx.public);
    assert!(!v.status.success(), "{}", text(&v));
    assert!(text(&v).contains("not the canonical form"), "{}", text(&v));
    assert!(fx.dir.join("sim-good.md").exists() && fx.dir.join("sim-good.html").exists());
    // Regression (issue 26): the reports never said whether the seed was self-chosen or drawn
    // from the oracle.
    let md = std::fs::read_to_string(fx.dir.join("sim-good.md")).unwrap();
    assert!(
        md.contains("- Seeding: self-seeded: the certifier chose the seed 000000000000002a"),
        "{md}"
    );
    let html = std::fs::read_to_string(fx.dir.join("sim-good.html")).unwrap();
    assert!(html.contains("<svg") && !html.contains("<script"));
    // What the certificate counted is what the server saw and billed.
    let stats = fx.running.stats(0);
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(stats.requests.load(Relaxed), 100);
    assert_eq!(
        stats.ok.load(Relaxed),
        c["tiers"][0]["answered"].as_u64().unwrap()
    );
    assert_eq!(
        stats.prompt_tokens_reported.load(Relaxed),
        c["tokens"]["reported_input_all"].as_u64().unwrap()
    );
    assert_eq!(
        stats.completion_tokens_reported.load(Relaxed),
        c["tokens"]["reported_output_all"].as_u64().unwrap()
    );

    // 50% quality: does not, and says it is the quality.
    let (o, poor) = fx.certify("sim-poor", 100).await;
    assert_exit_follows_the_verdict(&o, &poor);
    assert_eq!(
        o.status.code(),
        Some(4),
        "a tier not met exits 4: {}",
        text(&o)
    );
    let c = json(&poor);
    assert_eq!(c["tiers"][0]["verdict"]["pass"], false);
    assert_eq!(check(&c, "quality")["ok"], false);
    assert_eq!(check(&c, "availability")["ok"], true);
    assert!(fx.verify(&poor, &fx.public).status.success());

    // Slow first token: answers are right, the SLA is not met, with that reason.
    let (o, slow) = fx.certify("sim-slow", 40).await;
    assert_exit_follows_the_verdict(&o, &slow);
    let c = json(&slow);
    assert_eq!(c["tiers"][0]["verdict"]["pass"], false);
    assert_eq!(check(&c, "quality")["ok"], true, "{}", check(&c, "quality"));
    let sla = check(&c, "sla_ttft");
    assert_eq!(sla["ok"], false);
    assert!(sla["detail"]
        .as_str()
        .unwrap()
        .contains("time to first token"));
    assert!(c["tiers"][0]["latency"]["ttft_us"]["p90"].as_u64().unwrap() > 1_500_000);

    // Inflated usage: flagged (the verdict is about quality and time, the flag about billing).
    let (o, infl) = fx.certify("sim-inflating", 40).await;
    assert_exit_follows_the_verdict(&o, &infl);
    let c = json(&infl);
    let flags: Vec<&str> = c["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert_eq!(flags, ["usage_inflated"]);
    let ratio: f64 = c["tokens"]["output_ratio"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(ratio > 1.3, "{ratio}");
    assert!(text(&o).contains("flag usage_inflated"));

    // Tampering: an edited figure fails the signature; a consistent-looking edit re-signed
    // with the same key fails the consistency check; another key is refused.
    let mut t = json(&poor);
    t["tiers"][0]["verdict"]["pass"] = true.into();
    let edited = fx.dir.join("edited.json");
    std::fs::write(&edited, serde_json::to_vec(&t).unwrap()).unwrap();
    let v = fx.verify(&edited, &fx.public);
    assert_eq!(v.status.code(), Some(1));
    assert!(
        text(&v).contains("signature does not match"),
        "{}",
        text(&v)
    );
    t.as_object_mut().unwrap().remove("signature");
    let sk = sit::archive::keys::load_signing(&fx.key).unwrap();
    std::fs::write(&edited, sit_core::signing::sign_value(t, &sk)).unwrap();
    let v = fx.verify(&edited, &fx.public);
    assert_eq!(v.status.code(), Some(1));
    assert!(text(&v).contains("verdict does not follow"), "{}", text(&v));
    let mut t = json(&good);
    t["tiers"][0]["correct"] = (t["tiers"][0]["correct"].as_u64().unwrap() - 1).into();
    t.as_object_mut().unwrap().remove("signature");
    std::fs::write(&edited, sit_core::signing::sign_value(t, &sk)).unwrap();
    let v = fx.verify(&edited, &fx.public);
    assert_eq!(v.status.code(), Some(1));
    assert!(
        text(&v).contains("does not follow from the counts") || text(&v).contains("add up"),
        "{}",
        text(&v)
    );
    let other = fx.dir.join("other");
    sit(&["keys", "generate", "--out", other.to_str().unwrap()]);
    let v = fx.verify(&good, &other.join("public-key.pem"));
    assert_eq!(v.status.code(), Some(1));
    assert!(text(&v).contains("but the key given is"), "{}", text(&v));

    fx.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_writes_an_incomplete_report_and_no_certificate() {
    let fx = Fixture::new().await;
    let out = fx.dir.join("cut.json");
    let child = Command::new(env!("CARGO_BIN_EXE_sit"))
        .args([
            "--providers",
            fx.providers.to_str().unwrap(),
            "certify",
            "--endpoint",
            "sim-slow",
            "--tier",
            "t1",
            "--attempts",
            "400",
            "--concurrency",
            "4",
            "--key",
            fx.key.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Let some attempts finish (each takes about 2.6 s), then interrupt.
    tokio::time::sleep(std::time::Duration::from_millis(6000)).await;
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let o = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", text(&o));
    assert!(!out.exists(), "no certificate for an interrupted run");
    let md = std::fs::read_to_string(fx.dir.join("cut.partial.md")).unwrap();
    assert!(md.starts_with("# INCOMPLETE"), "{md}");
    assert!(md.contains("of 400 attempts. No certificate was issued"));
    let html = std::fs::read_to_string(fx.dir.join("cut.partial.html")).unwrap();
    assert!(html.contains("INCOMPLETE"));
    assert!(text(&o).contains("no certificate issued"));
    fx.running.shutdown().await;
}

/// Issue 12: the oracle picks the seed. A certificate made with `--challenge` embeds the
/// oracle's signed challenge, its seed derives from it, the oracle recorded the draw, and
/// `sit verify-cert --oracle-key --oracle` checks all of it and counts the key's draws; a
/// certificate without one says self-seeded; a forged challenge (another key) and a seed
/// that does not follow from the challenge are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenge_seeded_certificate_is_checked_against_the_oracle() {
    let fx = Fixture::new().await;
    // The oracle: its own key, serving challenges.
    let oracle_dir = fx.dir.join("oracle");
    let o = sit(&[
        "keys",
        "generate",
        "--out",
        oracle_dir.join("keys").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let oracle_key =
        sit::archive::keys::load_signing(&oracle_dir.join("keys/signing-key.pem")).unwrap();
    let archive = sit::archive::Archive::for_data(&oracle_dir.join("data"));
    let server = oracle(&archive, oracle_key).await;
    let url = format!("http://{}", server.addr);

    let (o, out) = fx
        .certify_with("sim-good", 20, &["--challenge", &url], "challenged")
        .await;
    assert_exit_follows_the_verdict(&o, &out);
    let c = json(&out);
    assert_eq!(c["seeding"], "oracle challenge");
    let md = std::fs::read_to_string(out.with_extension("md")).unwrap();
    assert!(md.contains("- Seeding: oracle challenge: the seed"), "{md}");
    let doc = c["challenge"].as_str().unwrap().to_string();
    let seed = sit_core::certificate::challenge::seed_of(doc.as_bytes()).unwrap();
    assert_eq!(c["window"]["seed"], format!("{seed:016x}"));

    let oracle_pub = oracle_dir.join("keys/public-key.pem");
    let verify = |cert: &Path, oracle_pub: &Path, with_url: bool| {
        let mut a = vec![
            "verify-cert".to_string(),
            cert.to_str().unwrap().to_string(),
            "--key".into(),
            fx.public.to_str().unwrap().to_string(),
            "--oracle-key".into(),
            oracle_pub.to_str().unwrap().to_string(),
        ];
        if with_url {
            a.extend(["--oracle".into(), url.clone()]);
        }
        a
    };
    let args = verify(&out, &oracle_pub, true);
    let v = tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        sit(&a)
    })
    .await
    .unwrap();
    assert!(v.status.success(), "{}", text(&v));
    assert!(text(&v).contains("oracle challenge 1 of"), "{}", text(&v));
    assert!(
        text(&v).contains("this key drew 1 challenge(s)"),
        "{}",
        text(&v)
    );
    // The oracle's log holds the draw.
    let log = std::fs::read_to_string(archive.root().join("challenges.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 1);
    assert_eq!(log.lines().next().unwrap(), doc);

    // Another oracle key does not verify the challenge.
    let other = fx.dir.join("other-keys");
    let o = sit(&["keys", "generate", "--out", other.to_str().unwrap()]);
    assert!(o.status.success());
    let v = sit(&verify(&out, &other.join("public-key.pem"), false)
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>());
    assert!(!v.status.success(), "{}", text(&v));
    assert!(text(&v).contains("challenge:"), "{}", text(&v));
    // Regression (issue 26): with the wrong --oracle-key the full VALID block was printed
    // before INVALID; VALID is printed only when every check asked for passed.
    assert!(!text(&v).contains("VALID  certificate"), "{}", text(&v));
    assert!(text(&v).contains("INVALID"), "{}", text(&v));
    // Without --oracle-key on a challenged certificate: refused (exit 2), nothing judged valid.
    let v = sit(&[
        "verify-cert",
        out.to_str().unwrap(),
        "--key",
        fx.public.to_str().unwrap(),
    ]);
    assert_eq!(v.status.code(), Some(2), "{}", text(&v));
    assert!(!text(&v).contains("VALID"), "{}", text(&v));
    assert!(text(&v).contains("--oracle-key"), "{}", text(&v));

    // A certificate whose seed does not follow from its challenge (re-signed by the
    // certifier, who chose another seed) is refused.
    let mut forged = c.clone();
    forged["window"]["seed"] = serde_json::json!("0000000000000001");
    forged.as_object_mut().unwrap().remove("signature");
    let sk = sit::archive::keys::load_signing(&fx.key).unwrap();
    let bytes = sit_core::signing::sign_value(forged, &sk);
    let fpath = fx.dir.join("forged.json");
    std::fs::write(&fpath, bytes).unwrap();
    let v = sit(&verify(&fpath, &oracle_pub, false)
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>());
    assert!(!v.status.success(), "{}", text(&v));
    assert!(
        text(&v).contains("not the one the challenge fixes"),
        "{}",
        text(&v)
    );

    // Without a challenge, the certificate says it is self-seeded.
    let (o, plain) = fx.certify("sim-good", 10).await;
    assert_exit_follows_the_verdict(&o, &plain);
    assert_eq!(json(&plain)["seeding"], "self-seeded");
    let v = fx.verify(&plain, &fx.public);
    assert!(v.status.success(), "{}", text(&v));
    assert!(text(&v).contains("self-seeded"), "{}", text(&v));
    server.shutdown().await.unwrap();
}

/// Issue 13: the OpenAI Responses dialect certifies like the others: a 95%-quality endpoint
/// speaking `/v1/responses` passes t1, and the certificate's token figures are what the
/// simulated server reported (output tokens with reasoning inside, as the Responses API
/// reports them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_responses_dialect_certifies_and_agrees_with_the_server() {
    let fx = Fixture::new().await;
    let (o, cert) = fx.certify("sim-responses", 60).await;
    assert_exit_follows_the_verdict(&o, &cert);
    let c = json(&cert);
    assert_eq!(c["tiers"][0]["attempts"], 60);
    assert_eq!(c["tiers"][0]["verdict"]["pass"], true, "{}", text(&o));
    assert_eq!(c["endpoint"]["models_returned"]["sim-responses-chat"], 60);
    assert!(fx.verify(&cert, &fx.public).status.success());
    let stats = fx.running.stats(4);
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(stats.requests.load(Relaxed), 60);
    assert_eq!(
        stats.completion_tokens_reported.load(Relaxed),
        c["tokens"]["reported_output_all"].as_u64().unwrap()
    );
    assert_eq!(
        stats.prompt_tokens_reported.load(Relaxed),
        c["tokens"]["reported_input_all"].as_u64().unwrap()
    );
}

/// Regression (issue 26): anyone could make the oracle write. `GET
/// /v1/certify/challenge?key_id=<any 16 hex>` recorded a durable challenge for any key id,
/// registered or not (5,864 in 5 s from one wrk client). A challenge is now issued only to a
/// POSTed request signed by the key it names, on time, once, within a rate per key; every
/// refusal is the API's JSON error, and nothing is written for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenge_is_written_only_for_a_post_signed_by_the_key_it_names() {
    use sit::sys::clock::Clock;
    let dir = tempfile::tempdir().unwrap();
    let oracle_key = ed25519_dalek::SigningKey::from_bytes(&[21; 32]);
    let archive = sit::archive::Archive::for_data(&dir.path().join("data"));
    let server = oracle(&archive, oracle_key).await;
    let url = format!("http://{}/v1/certify/challenge", server.addr);
    let log = archive.root().join("challenges.jsonl");
    let written = || {
        std::fs::read_to_string(&log)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    let http = reqwest::Client::new();
    let post = |body: Vec<u8>| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let r = http.post(&url).body(body).send().await.unwrap();
            let status = r.status().as_u16();
            let text = r.text().await.unwrap();
            (status, text)
        }
    };
    let code = |body: &str| -> String {
        let v: serde_json::Value =
            serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
        v["error"]["code"].as_str().unwrap_or_default().to_string()
    };
    // The old way: a GET with any key id. Refused, nothing written.
    let r = http
        .get(format!("{url}?key_id=ed25519:0123456789abcdef"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    assert_eq!(code(&r.text().await.unwrap()), "method_not_allowed");
    assert_eq!(written(), 0);

    let certifier = ed25519_dalek::SigningKey::from_bytes(&[22; 32]);
    let now = sit::sys::clock::SystemClock.now_ms();
    let nonce = |i: u32| format!("{i:032x}");
    use sit_core::certificate::challenge::request;
    // Not a request; a request naming another key; a stale one: refused, nothing written.
    let (s, b) = post(b"{\"key_id\":\"ed25519:0123456789abcdef\"}".to_vec()).await;
    assert_eq!((s, code(&b)), (400, "bad_request".to_string()), "{b}");
    let mut v: serde_json::Value =
        serde_json::from_slice(&request(&certifier, now, &nonce(1))).unwrap();
    v["key_id"] = "ed25519:0123456789abcdef".into();
    let (s, b) = post(serde_json::to_vec(&v).unwrap()).await;
    assert_eq!((s, code(&b)), (401, "not_signed".to_string()), "{b}");
    let (s, b) = post(request(&certifier, now - 3_600_000, &nonce(2))).await;
    assert_eq!((s, code(&b)), (400, "stale_request".to_string()), "{b}");
    assert_eq!(written(), 0);

    // A signed request: a challenge for that key, recorded; the same request again: refused.
    let doc = request(&certifier, now, &nonce(3));
    let (s, b) = post(doc.clone()).await;
    assert_eq!(s, 200, "{b}");
    let c: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert_eq!(
        c["certifier"],
        sit_core::signing::key_id(&certifier.verifying_key())
    );
    assert_eq!(written(), 1);
    let (s, b) = post(doc).await;
    assert_eq!((s, code(&b)), (409, "replayed".to_string()), "{b}");
    assert_eq!(written(), 1);

    // At most PER_KEY_PER_HOUR for one key in a clock hour (this one may straddle an hour's
    // turn: then the key's count starts again, and at most one more is issued).
    let mut issued = 1;
    let mut limited = false;
    for i in 0..sit::certify::challenge::PER_KEY_PER_HOUR + 1 {
        let (s, b) = post(request(&certifier, now, &nonce(100 + i))).await;
        match s {
            200 => issued += 1,
            429 => {
                assert_eq!(code(&b), "rate_limited", "{b}");
                limited = true;
                break;
            }
            _ => panic!("{s}: {b}"),
        }
    }
    assert!(limited, "no rate limit after {issued} challenges");
    assert!(issued <= sit::certify::challenge::PER_KEY_PER_HOUR as usize + 1);
    assert_eq!(written(), issued);
    server.shutdown().await.unwrap();
}

/// Regression (issue 26): a certificate of an endpoint given with `--base-url` was always
/// named "direct". `--name` names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_base_url_certificate_takes_the_name_given() {
    let fx = Fixture::new().await;
    let cfg = sit::config::load(&fx.providers).unwrap();
    let e = cfg.endpoint("sim-good").unwrap().clone();
    let out = fx.dir.join("named.json");
    let args = vec![
        "certify".to_string(),
        "--base-url".into(),
        e.base_url.clone(),
        "--dialect".into(),
        e.dialect.to_string(),
        "--model".into(),
        e.model.clone(),
        "--name".into(),
        "my-gateway-eu".into(),
        "--tier".into(),
        "t1".into(),
        "--attempts".into(),
        "10".into(),
        "--seed".into(),
        "7".into(),
        "--key".into(),
        fx.key.to_str().unwrap().to_string(),
        "--out".into(),
        out.to_str().unwrap().to_string(),
    ];
    let o = tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        sit(&a)
    })
    .await
    .unwrap();
    assert_exit_follows_the_verdict(&o, &out);
    assert_eq!(
        json(&out)["endpoint"]["id"],
        "my-gateway-eu",
        "{}",
        text(&o)
    );
    // a name that is not an endpoint id is refused before anything runs
    let o = sit(&[
        "certify",
        "--base-url",
        &e.base_url,
        "--dialect",
        "openai",
        "--model",
        "m",
        "--name",
        "Not A Name",
        "--key",
        fx.key.to_str().unwrap(),
        "--out",
        fx.dir.join("bad.json").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("is not a valid endpoint id"),
        "{}",
        text(&o)
    );
}
