//! API keys: read from the named environment variable only, and never written anywhere — not
//! to stdout or stderr, stored observations (sled files), `--json` output, audit bundles or
//! the inflated response evidence — even when a provider echoes the key back in an error body
//! (the simulator does, for keys starting with `sk-sim-echo-`) or in a 200 answer, in every
//! field a provider controls: the answer, the model name and the finish reason (keys starting
//! with `sk-sim-echo-ok-`). All three dialects carry the key (Authorization, x-api-key,
//! x-goog-api-key).

mod common;
use common::{sit, text};
use sit::sim::{self, Market};
use std::path::Path;

const SECRET: &str = "SECRET-7f3a9c41d2";

fn files_containing(dir: &Path, needle: &[u8], out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files_containing(&p, needle, out);
        } else {
            let b = std::fs::read(&p).unwrap();
            if b.windows(needle.len()).any(|w| w == needle) {
                out.push(p.display().to_string());
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_never_appears_in_output_records_or_bundles() {
    use sit::sys::clock::Clock;
    let now = sit::sys::clock::SystemClock.now_ms();
    let today = sit_core::time::Date::of_ms(now);
    let market = Market::default_market(3);
    let running = sim::server::start(market.clone(), today.succ())
        .await
        .unwrap();
    let eps = market.endpoints(&running.base_urls(), today.succ());
    let dialects: std::collections::BTreeSet<String> =
        eps.iter().map(|e| e.dialect.to_string()).collect();
    assert_eq!(
        dialects.len(),
        4,
        "the key travels in all four dialects' headers"
    );
    let tmp = tempfile::tempdir().unwrap();
    let providers = tmp.path().join("providers.toml");
    let toml = sim::providers_toml(&eps, now).replace(
        "region = \"loopback\"\n",
        "region = \"loopback\"\napi_key_env = \"SIT_TEST_KEY\"\n",
    );
    std::fs::write(&providers, toml).unwrap();
    let data = tmp.path().join("data");
    let (d, p) = (
        data.to_str().unwrap().to_string(),
        providers.to_str().unwrap().to_string(),
    );

    let mut outputs = Vec::new();
    for key in [
        format!("{}{SECRET}", sit::sim::server::ECHO_KEY_PREFIX),
        format!("{}{SECRET}", sit::sim::server::ECHO_OK_KEY_PREFIX),
        format!("{}{SECRET}", sit::sim::server::ECHO_WHOLE_KEY_PREFIX),
        format!("sk-sim-ok-{SECRET}"),
    ] {
        let (d, p, key) = (d.clone(), p.clone(), key.clone());
        let o = tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_sit"))
                .env("SIT_TEST_KEY", &key)
                .args([
                    "--data",
                    &d,
                    "--providers",
                    &p,
                    "probe",
                    "--all",
                    "--tier",
                    "t1",
                    "--json",
                ])
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        outputs.push(text(&o));
    }
    // The service's log, in each format, at the most detailed level (issue 26: logs through
    // `tracing`): one compressed day of `sit run` with a key the simulator echoes back.
    let o = sit(&[
        "keys",
        "generate",
        "--out",
        tmp.path().join("keys").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    // (the providers file prices each endpoint from the current hour on: the compressed
    // timeline starts tomorrow)
    for (format, day) in [("json", today.succ()), ("full", today.succ())] {
        let run_data = tmp.path().join(format!("run-{format}"));
        let key = format!("{}{SECRET}", sit::sim::server::ECHO_WHOLE_KEY_PREFIX);
        let args: Vec<String> = [
            "--data",
            run_data.to_str().unwrap(),
            "--providers",
            &p,
            "--log-format",
            format,
            "run",
            "--key",
            tmp.path().join("keys/signing-key.pem").to_str().unwrap(),
            "--start",
            &day.to_string(),
            "--hour-ms",
            "60",
            "--until",
            &day.succ().to_string(),
            "--per-hour",
            "1",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        let o = tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_sit"))
                .env("SIT_TEST_KEY", &key)
                .env("SIT_LOG", "trace")
                .args(&args)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        if format == "json" {
            let lines: Vec<serde_json::Value> = err
                .lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
                .collect();
            assert!(
                lines.iter().any(|l| l["level"] == "INFO"
                    && l["target"] == "sit::publisher::day"
                    && l["fields"]["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("sit run: published"))),
                "{err}"
            );
        } else {
            assert!(
                err.contains(" INFO sit::publisher::day: sit run: published"),
                "{err}"
            );
        }
        outputs.push(text(&o));
        let mut found = Vec::new();
        files_containing(&run_data, SECRET.as_bytes(), &mut found);
        assert!(found.is_empty(), "the key is in {found:?}");
    }
    // A bad filter is refused, naming the variable.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_sit"))
        .env("SIT_LOG", "sit::server=loud")
        .args(["suite"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("SIT_LOG="), "{}", text(&o));
    // Without the variable the endpoints are skipped, naming the variable, not a value.
    let o = sit(&["--data", &d, "--providers", &p, "check"]);
    assert!(text(&o).contains("skipped until SIT_TEST_KEY is set"));
    outputs.push(text(&o));
    let o = sit(&["--data", &d, "index", "--json"]);
    outputs.push(text(&o));
    let bundle = tmp.path().join("bundle");
    let o = sit(&[
        "--data",
        &d,
        "audit",
        "export",
        "--date",
        &today.to_string(),
        "--out",
        bundle.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    outputs.push(text(&o));
    let o = sit(&["audit", "replay", bundle.to_str().unwrap()]);
    // The replay re-derives what it can and says which bodies were withheld; it never prints
    // the key (a body that carried it split across events is not kept).
    assert!(
        text(&o).contains("had their response withheld"),
        "{}",
        text(&o)
    );
    // Regression (issue 26): a record whose answer echoed the key is stored redacted, and its
    // replay was "not identical" (its figures counted the key's reference tokens). Figures
    // are now derived from what is stored: every observation replays identically. (The
    // bundle of a `sit probe` store has no schedule commitment, which the replay reports as
    // a structural finding of its own.)
    assert!(
        !text(&o).contains("OBSERVATION"),
        "observations not identical: {}",
        text(&o)
    );
    outputs.push(text(&o));

    // The echo really happened, and was redacted before it was recorded.
    let store = sit::store::Store::open(&data).unwrap();
    let obs: Vec<_> = store
        .scan(i64::MIN / 2, i64::MAX / 2)
        .map(|r| r.unwrap().obs)
        .collect();
    drop(store);
    let auth: Vec<_> = obs
        .iter()
        .filter(|o| {
            o.failure
                .as_ref()
                .is_some_and(|f| f.class == sit_core::observation::FailureClass::Auth)
        })
        .collect();
    assert_eq!(
        auth.len(),
        48,
        "every attempt with the echo key is refused (12 endpoints x 4)"
    );
    assert!(auth
        .iter()
        .all(|o| o.failure.as_ref().unwrap().detail.contains("<redacted>")));
    assert!(auth.iter().all(|o| String::from_utf8_lossy(
        &o.evidence.as_ref().unwrap().response().unwrap()
    )
    .contains("<redacted>")));
    assert!(
        obs.iter().any(|o| o.failure.is_none()),
        "the other key works"
    );
    // The echoing 200 answers: every field the provider filled names `<redacted>` instead.
    let echoed: Vec<_> = obs
        .iter()
        .filter(|o| {
            o.server_model
                .as_deref()
                .is_some_and(|m| m.contains("<redacted>"))
        })
        .collect();
    assert!(echoed.len() >= 40, "{} echoing answers", echoed.len());
    assert!(
        echoed.iter().any(|o| o
            .finish_reason
            .as_deref()
            .is_some_and(|f| f.contains("<redacted>"))),
        "finish reasons echoed the key"
    );
    // The key echoed whole in one event: the body is kept (redacted), and the figures were
    // derived from it, so the replay above re-derived these records identically.
    let kept: Vec<_> = echoed
        .iter()
        .filter(|o| {
            o.failure.is_none()
                && o.evidence.as_ref().is_some_and(|e| {
                    e.withheld.is_none()
                        && String::from_utf8_lossy(&e.response().unwrap())
                            .contains("(key <redacted>)")
                })
        })
        .collect();
    assert!(
        kept.len() >= 30,
        "{} answers kept with the key redacted",
        kept.len()
    );
    for o in &echoed {
        if o.failure.is_none() {
            assert!(o.answer.contains("(key <redacted>)"), "{}", o.answer);
        }
        if let Some(fr) = &o.finish_reason {
            assert!(fr.contains("<redacted>"), "finish reason {fr:?}");
        }
    }
    for o in &obs {
        if let Some(e) = &o.evidence {
            let body = e.response().unwrap();
            assert!(
                !body.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
                "the inflated evidence of seq {} holds the key",
                o.seq
            );
            assert!(!e.request.contains(SECRET));
        }
    }

    for (i, out) in outputs.iter().enumerate() {
        assert!(!out.contains(SECRET), "command {i} printed the key:\n{out}");
    }
    let mut hits = Vec::new();
    files_containing(&data, SECRET.as_bytes(), &mut hits);
    files_containing(&bundle, SECRET.as_bytes(), &mut hits);
    assert!(hits.is_empty(), "the key is in {hits:?}");
    running.shutdown().await;
}
