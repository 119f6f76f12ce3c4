//! One fixture per failure class: the real `sit probe` against real servers on loopback, and
//! the class it records for every attempt.
//!
//! Driven by the fault-injecting mock `llmock` (PyPI; `.ci/run` installs it into a venv and
//! sets `SIT_LLMOCK` to its executable and `SIT_REQUIRE_LLMOCK=1`). Where llmock cannot produce
//! a class, by our own simulator (`error_event`, `invalid_utf8`), a closed port (`connect`), or a
//! raw TCP server that reads the request and hangs up (`connection_closed`).
//!
//! The table covers every class in `FailureClass::ALL`, across all four dialects; a class
//! added without a fixture fails `every_class_has_a_fixture`.

mod common;

use serde_json::json;
use sit_core::observation::{FailureClass, Observation};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How a fixture endpoint is served.
#[derive(Clone, Copy)]
enum Via {
    /// llmock, with these behaviours (each matched to the fixture's model, every request).
    Llmock(fn() -> Vec<serde_json::Value>),
    /// Our simulator with a scripted fault.
    Sim(sit::sim::ScriptedFault),
    /// A port nobody listens on.
    ClosedPort,
    /// A TCP server that reads the request and closes the connection.
    HangUp,
}

/// Timeout set of a probe run (timeouts are per run, in `[defaults]`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Timeouts {
    /// first token 1 s, stall 5 s, total 2.5 s.
    Quick,
    /// first token 5 s, stall 0.7 s, total 10 s: a stall trips before any deadline.
    ShortStall,
}

struct Case {
    id: &'static str,
    dialect: &'static str,
    via: Via,
    timeouts: Timeouts,
    expect: FailureClass,
}

fn fail(status: u16) -> Vec<serde_json::Value> {
    vec![json!({"type": "fail", "status": status})]
}

fn cases() -> Vec<Case> {
    use FailureClass as F;
    use Timeouts::*;
    use Via::*;
    let c = |id, dialect, via, expect| Case {
        id,
        dialect,
        via,
        timeouts: Quick,
        expect,
    };
    vec![
        c("fx-connect", "openai", ClosedPort, F::Connect),
        c("fx-hangup", "anthropic", HangUp, F::ConnectionClosed),
        c(
            "fx-delay",
            "openai",
            Llmock(|| vec![json!({"type": "delay", "seconds": 2.0})]),
            F::TimeoutHeaders,
        ),
        c(
            "fx-slow-first",
            "anthropic",
            Llmock(|| vec![json!({"type": "slow_first_token", "seconds": 2.0})]),
            F::TimeoutFirstToken,
        ),
        c(
            "fx-slow-total",
            "openai",
            Llmock(|| {
                vec![
                    json!({"type": "stream_fault", "kind": "stall", "after_chunks": 2, "stall_seconds": 4.0}),
                ]
            }),
            F::TimeoutTotal,
        ),
        Case {
            id: "fx-stall",
            dialect: "anthropic",
            via: Llmock(|| {
                vec![
                    json!({"type": "stream_fault", "kind": "stall", "after_chunks": 2, "stall_seconds": 3.0}),
                ]
            }),
            timeouts: ShortStall,
            expect: F::Stall,
        },
        c("fx-401", "anthropic", Llmock(|| fail(401)), F::Auth),
        c("fx-403", "gemini", Llmock(|| fail(403)), F::Auth),
        c("fx-402", "anthropic", Llmock(|| fail(402)), F::Quota),
        c(
            "fx-quota-429",
            "openai",
            Llmock(|| {
                vec![
                    json!({"type": "fail", "status": 429, "code": "insufficient_quota",
            "message": "You exceeded your current quota, please check your plan and billing details."}),
                ]
            }),
            F::Quota,
        ),
        c(
            "fx-quota-gemini",
            "gemini",
            Llmock(|| {
                vec![json!({"type": "fail", "status": 429,
            "message": "You exceeded your current quota, please check your plan and billing details."})]
            }),
            F::Quota,
        ),
        c("fx-404", "gemini", Llmock(|| fail(404)), F::ModelNotFound),
        c(
            "fx-context",
            "openai",
            Llmock(|| {
                vec![
                    json!({"type": "fail", "status": 400, "code": "context_length_exceeded",
            "message": "This model's maximum context length is 8192 tokens."}),
                ]
            }),
            F::BadRequest,
        ),
        c("fx-413", "anthropic", Llmock(|| fail(413)), F::BadRequest),
        c(
            "fx-429",
            "anthropic",
            Llmock(|| vec![json!({"type": "fail", "status": 429, "retry_after": 1})]),
            F::RateLimited,
        ),
        c("fx-500", "gemini", Llmock(|| fail(500)), F::ServerError),
        c("fx-503", "openai", Llmock(|| fail(503)), F::ServerError),
        c("fx-529", "anthropic", Llmock(|| fail(529)), F::Overloaded),
        c(
            "fx-error-event",
            "openai",
            Sim(sit::sim::ScriptedFault::ErrorEvent),
            F::ErrorEvent,
        ),
        c(
            "fx-error-event-a",
            "anthropic",
            Sim(sit::sim::ScriptedFault::ErrorEvent),
            F::ErrorEvent,
        ),
        c(
            "fx-truncate",
            "gemini",
            Llmock(|| vec![json!({"type": "stream_fault", "kind": "truncate", "after_chunks": 2})]),
            F::Truncated,
        ),
        c(
            "fx-disconnect",
            "openai",
            Llmock(|| {
                vec![json!({"type": "stream_fault", "kind": "disconnect", "after_chunks": 2})]
            }),
            F::Truncated,
        ),
        c(
            "fx-empty",
            "openai",
            Llmock(|| vec![json!({"type": "reply", "text": ""})]),
            F::EmptyCompletion,
        ),
        c(
            "fx-length",
            "anthropic",
            Llmock(|| {
                vec![json!({"type": "reply", "text": "The answer is", "finish_reason": "length"})]
            }),
            F::FinishLength,
        ),
        c(
            "fx-filter",
            "gemini",
            Llmock(|| {
                vec![
                    json!({"type": "reply", "text": "I cannot", "finish_reason": "content_filter"}),
                ]
            }),
            F::ContentFilter,
        ),
        c(
            "fx-malformed",
            "openai",
            Llmock(|| {
                vec![json!({"type": "stream_fault", "kind": "malformed", "after_chunks": 1})]
            }),
            F::Malformed,
        ),
        c(
            "fx-malformed-a",
            "anthropic",
            Llmock(|| {
                vec![json!({"type": "stream_fault", "kind": "malformed", "after_chunks": 1})]
            }),
            F::Malformed,
        ),
        c(
            "fx-big",
            "anthropic",
            Llmock(|| vec![json!({"type": "reply", "text": "forty-two ".repeat(4000)})]),
            F::BodyTooLarge,
        ),
        c(
            "fx-not-utf8",
            "gemini",
            Sim(sit::sim::ScriptedFault::InvalidUtf8),
            F::InvalidUtf8,
        ),
        c("fx-418", "openai", Llmock(|| fail(418)), F::OtherHttp),
        // the OpenAI Responses dialect (issue 13), against llmock's /v1/responses and our sim
        c(
            "fx-r-429",
            "openai-responses",
            Llmock(|| vec![json!({"type": "fail", "status": 429, "retry_after": 1})]),
            F::RateLimited,
        ),
        c(
            "fx-r-500",
            "openai-responses",
            Llmock(|| fail(500)),
            F::ServerError,
        ),
        c(
            "fx-r-truncate",
            "openai-responses",
            Llmock(|| vec![json!({"type": "stream_fault", "kind": "truncate", "after_chunks": 2})]),
            F::Truncated,
        ),
        c(
            "fx-r-malformed",
            "openai-responses",
            Llmock(|| {
                vec![json!({"type": "stream_fault", "kind": "malformed", "after_chunks": 1})]
            }),
            F::Malformed,
        ),
        c(
            "fx-r-length",
            "openai-responses",
            Llmock(|| {
                vec![json!({"type": "reply", "text": "The answer is", "finish_reason": "length"})]
            }),
            F::FinishLength,
        ),
        c(
            "fx-r-empty",
            "openai-responses",
            Llmock(|| vec![json!({"type": "reply", "text": ""})]),
            F::EmptyCompletion,
        ),
        c(
            "fx-r-error-event",
            "openai-responses",
            Sim(sit::sim::ScriptedFault::ErrorEvent),
            F::ErrorEvent,
        ),
    ]
}

#[test]
fn every_class_has_a_fixture() {
    let covered: std::collections::BTreeSet<FailureClass> =
        cases().iter().map(|c| c.expect).collect();
    for class in FailureClass::ALL {
        assert!(
            covered.contains(&class),
            "no fixture produces `{}`",
            class.as_str()
        );
    }
}

/// A running llmock; killed on drop.
struct Llmock {
    child: Child,
    port: u16,
}

impl Drop for Llmock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.0 request; (status, body).
fn http(port: u16, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    Ok((status, body))
}

/// Start llmock, or None (skipped) when it is not installed and not required.
fn start_llmock() -> Option<Llmock> {
    let required = std::env::var("SIT_REQUIRE_LLMOCK").is_ok_and(|v| v == "1");
    let exe = std::env::var_os("SIT_LLMOCK").map(PathBuf::from);
    let Some(exe) = exe.filter(|p| p.exists()) else {
        assert!(
            !required,
            "SIT_REQUIRE_LLMOCK=1 but SIT_LLMOCK does not name the llmock executable"
        );
        eprintln!("SKIPPED: llmock not installed (set SIT_LLMOCK=/path/to/venv/bin/llmock)");
        return None;
    };
    let port = free_port();
    let child = Command::new(&exe)
        .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
    let mock = Llmock { child, port };
    let t0 = Instant::now();
    while http(port, "GET", "/health", "").map(|r| r.0).ok() != Some(200) {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "llmock did not come up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(mock)
}

/// A server that accepts, reads the request head, and closes without answering.
fn start_hang_up_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                drop(s);
            });
        }
    });
    port
}

fn base_path(dialect: &str) -> &'static str {
    match dialect {
        "openai" | "openai-responses" => "/v1",
        "anthropic" => "/anthropic",
        _ => "/gemini",
    }
}

fn endpoint_toml(id: &str, dialect: &str, model: &str, base_url: &str) -> String {
    format!(
        "\n[[endpoints]]\nid = \"{id}\"\nprovider = \"fixture\"\nmodel = \"{model}\"\ndialect = \"{dialect}\"\n\
         base_url = \"{base_url}\"\nregion = \"loopback\"\n\n[[endpoints.prices]]\n\
         effective_from = \"2020-01-01T00:00:00Z\"\ninput = \"1\"\noutput = \"2\"\n"
    )
}

fn defaults_toml(t: Timeouts) -> &'static str {
    match t {
        Timeouts::Quick => "[defaults]\nconcurrency = 4\nconnect_timeout_ms = 1000\nfirst_token_timeout_ms = 1000\nstall_timeout_ms = 5000\ntotal_timeout_ms = 2500\nmax_body_bytes = 16384\n",
        Timeouts::ShortStall => "[defaults]\nconcurrency = 4\nconnect_timeout_ms = 1000\nfirst_token_timeout_ms = 5000\nstall_timeout_ms = 700\ntotal_timeout_ms = 10000\nmax_body_bytes = 16384\n",
    }
}

#[test]
fn every_failure_class_is_recorded_from_a_real_server() {
    let Some(mock) = start_llmock() else {
        return;
    };
    let cases = cases();

    // llmock: one behaviour list per fixture model, every request ("times": null).
    let mut behaviors = Vec::new();
    for c in &cases {
        if let Via::Llmock(b) = c.via {
            for mut v in b() {
                v["times"] = serde_json::Value::Null;
                v["match"] = json!({"model": c.id});
                behaviors.push(v);
            }
        }
    }
    let (status, body) = http(
        mock.port,
        "POST",
        "/_llmock/scenario",
        &json!({ "behaviors": behaviors }).to_string(),
    )
    .unwrap();
    assert!(
        status == 200 || status == 201,
        "llmock refused the scenario ({status}): {body}"
    );

    // Our simulator, one provider per scripted fault, speaking the fixture's dialect.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let base = sit::sim::Market::default_market(1).providers[0].clone();
    let sim_cases: Vec<&Case> = cases
        .iter()
        .filter(|c| matches!(c.via, Via::Sim(_)))
        .collect();
    let market = sit::sim::Market {
        seed: 1,
        providers: sim_cases
            .iter()
            .map(|c| {
                let Via::Sim(f) = c.via else { unreachable!() };
                let mut p = base.clone();
                p.id = c.id.to_string();
                p.dialect = match c.dialect {
                    "openai" => sit::config::Dialect::Openai,
                    "openai-responses" => sit::config::Dialect::OpenaiResponses,
                    "anthropic" => sit::config::Dialect::Anthropic,
                    _ => sit::config::Dialect::Gemini,
                };
                p.fault_permille = 0;
                p.ttft_ms = 10;
                p.ttft_jitter_permille = 0;
                p.scripted = Some(f);
                p
            })
            .collect(),
    };
    let until = sit_core::time::Date::parse("2099-01-01").unwrap();
    let sim = rt.block_on(sit::sim::server::start(market, until)).unwrap();
    let sim_urls = sim.base_urls();

    let closed_port = free_port();
    let hang_up_port = start_hang_up_server();

    // One providers file and one `sit probe --all` per timeout set, run side by side.
    let dir = tempfile::tempdir().unwrap();
    let mut groups: BTreeMap<Timeouts, String> = BTreeMap::new();
    for c in &cases {
        let url = match c.via {
            Via::Llmock(_) => format!("http://127.0.0.1:{}{}", mock.port, base_path(c.dialect)),
            Via::Sim(_) => {
                let i = sim_cases.iter().position(|s| s.id == c.id).unwrap();
                match c.dialect {
                    "openai" | "openai-responses" => sim_urls[i].clone(),
                    _ => sim_urls[i].trim_end_matches("/v1").to_string(),
                }
            }
            Via::ClosedPort => format!("http://127.0.0.1:{closed_port}/v1"),
            Via::HangUp => format!("http://127.0.0.1:{hang_up_port}"),
        };
        groups
            .entry(c.timeouts)
            .or_insert_with(|| defaults_toml(c.timeouts).to_string())
            .push_str(&endpoint_toml(c.id, c.dialect, c.id, &url));
    }
    let runs: Vec<(Timeouts, PathBuf, Child)> = groups
        .iter()
        .map(|(t, toml)| {
            let providers = dir.path().join(format!("{t:?}.toml"));
            std::fs::write(&providers, toml).unwrap();
            let data = dir.path().join(format!("{t:?}-data"));
            let child = Command::new(env!("CARGO_BIN_EXE_sit"))
                .arg("--data")
                .arg(&data)
                .arg("--providers")
                .arg(&providers)
                .args(["probe", "--all", "--rounds", "1", "--tier", "t1", "--json"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (*t, data, child)
        })
        .collect();
    let mut by_endpoint: BTreeMap<String, Vec<Observation>> = BTreeMap::new();
    for (t, data, child) in runs {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{t:?} run: {}", common::text(&out));
        for o in common::stored_observations(&data) {
            by_endpoint.entry(o.endpoint.clone()).or_default().push(o);
        }
    }
    rt.block_on(sim.shutdown());

    let mut wrong = Vec::new();
    for c in &cases {
        let obs = by_endpoint.get(c.id).map(Vec::as_slice).unwrap_or(&[]);
        let firsts: Vec<&Observation> = obs.iter().filter(|o| o.retry == 0).collect();
        if firsts.len() != 4 {
            wrong.push(format!(
                "{}: {} first attempts, expected 4",
                c.id,
                firsts.len()
            ));
            continue;
        }
        for o in obs {
            let got = o.failure.as_ref().map(|f| f.class);
            if got != Some(c.expect) {
                wrong.push(format!(
                    "{} ({}): expected {}, got {:?} (retry {}, status {:?}, detail {:?})",
                    c.id,
                    c.dialect,
                    c.expect.as_str(),
                    got.map(|g| g.as_str()),
                    o.retry,
                    o.http_status,
                    o.failure.as_ref().map(|f| &f.detail)
                ));
            }
            assert_eq!(o.delivered_sit, 0, "a failed attempt delivers nothing");
        }
        // Retries: retryable classes are retried twice more, the others never.
        let max_retry = obs.iter().map(|o| o.retry).max().unwrap_or(0);
        let expect_retry = if sit::worker::retry::retryable(c.expect) {
            2
        } else {
            0
        };
        if max_retry != expect_retry || obs.len() != 4 * (1 + expect_retry as usize) {
            wrong.push(format!(
                "{}: {} attempts, highest retry {max_retry}; expected {} and {expect_retry}",
                c.id,
                obs.len(),
                4 * (1 + expect_retry)
            ));
        }
    }
    assert!(wrong.is_empty(), "misclassified:\n{}", wrong.join("\n"));

    // The 429's Retry-After is parsed and honoured as a minimum wait between attempts.
    let rl = &by_endpoint["fx-429"];
    for o in rl {
        assert_eq!(
            o.failure.as_ref().unwrap().retry_after_ms,
            Some(1000),
            "{o:?}"
        );
    }
    for first in rl.iter().filter(|o| o.retry == 0) {
        let chain: Vec<&Observation> = rl.iter().filter(|o| o.seed == first.seed).collect();
        let mut at: Vec<(u32, i64)> = chain.iter().map(|o| (o.retry, o.at_ms)).collect();
        at.sort();
        for w in at.windows(2) {
            assert!(
                w[1].1 - w[0].1 >= 1000,
                "retry {} started {} ms after the previous attempt, before Retry-After",
                w[1].0,
                w[1].1 - w[0].1
            );
        }
    }
    // Refused before any body: nothing is billed. Streamed failures keep what was billed.
    for id in [
        "fx-401",
        "fx-404",
        "fx-429",
        "fx-529",
        "fx-connect",
        "fx-hangup",
    ] {
        assert!(by_endpoint[id].iter().all(|o| o.cost.0 == 0), "{id} cost");
    }
    assert!(
        by_endpoint["fx-length"].iter().all(|o| o.cost.0 > 0),
        "a length-cut answer was billed"
    );
}
