//! HTTP servers of the simulated providers (axum, one listener per provider on 127.0.0.1:0).
//!
//! `POST /v1/chat/completions` streams like an OpenAI-compatible server: role-only first
//! chunk, (hidden reasoning time), content chunks at the provider's speed, a finish chunk, a
//! usage chunk with empty `choices` when `stream_options.include_usage` is set, then `[DONE]`.
//! Faults: 429 with Retry-After, 500, a stream cut before `[DONE]`, a malformed chunk.
//! `GET /sim/stats` reports what the server received and did (for tests);
//! `GET /sim/prices` the provider's price schedule.

use super::solve::solve_any;
use super::{Market, ScriptedFault, SimProvider};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Serialize;
use sit_core::rng::Rng;
use sit_core::tokenizer;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Counters of one simulated provider.
#[derive(Debug, Default, Serialize)]
pub struct Stats {
    pub requests: AtomicU64,
    pub ok: AtomicU64,
    pub rate_limited: AtomicU64,
    pub server_errors: AtomicU64,
    pub truncated: AtomicU64,
    pub malformed: AtomicU64,
    pub bad_requests: AtomicU64,
    pub prompt_tokens_reported: AtomicU64,
    pub completion_tokens_reported: AtomicU64,
}

struct Shared {
    provider: SimProvider,
    stats: Stats,
    schedule: sit_core::price::PriceSchedule,
    /// Server-side instants of each streamed answer, when logging is on (benchmarks).
    served: Option<std::sync::Mutex<Vec<Served>>>,
}

/// What the server did for one streamed answer, on the monotonic clock of this process: the
/// reference for measuring how much a client's time-to-first-token adds to the server's own.
#[derive(Debug, Clone)]
pub struct Served {
    /// The probe nonce the request carried ([`probe_nonce`]; empty when none).
    pub nonce: String,
    /// The handler started (request head and body read).
    pub received: std::time::Instant,
    /// The injected first-token delay, ms.
    pub injected_ms: u64,
    /// The first answer piece was handed to the HTTP layer.
    pub first_token: std::time::Instant,
}

/// A running simulated market.
pub struct RunningMarket {
    pub market: Market,
    pub addrs: Vec<SocketAddr>,
    shared: Vec<Arc<Shared>>,
    shutdown: Vec<tokio::sync::oneshot::Sender<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningMarket {
    /// OpenAI-style base URLs (`http://127.0.0.1:PORT/v1`), in provider order.
    pub fn base_urls(&self) -> Vec<String> {
        self.addrs
            .iter()
            .map(|a| format!("http://{a}/v1"))
            .collect()
    }
    pub fn stats(&self, i: usize) -> &Stats {
        &self.shared[i].stats
    }
    /// Taken log of served answers of provider `i` (empty unless started with logging).
    pub fn take_served(&self, i: usize) -> Vec<Served> {
        self.shared[i]
            .served
            .as_ref()
            .map(|m| std::mem::take(&mut *m.lock().unwrap_or_else(|p| p.into_inner())))
            .unwrap_or_default()
    }
    /// Stop all servers and wait for them to finish.
    pub async fn shutdown(self) {
        for s in self.shutdown {
            let _ = s.send(());
        }
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Start every provider of `market` on its own loopback port. `priced_until` bounds the
/// schedule served at `/sim/prices`.
pub async fn start(
    market: Market,
    priced_until: sit_core::time::Date,
) -> std::io::Result<RunningMarket> {
    start_with(market, priced_until, false).await
}

/// [`start`], optionally logging the server-side instants of every streamed answer
/// ([`RunningMarket::take_served`]).
pub async fn start_with(
    market: Market,
    priced_until: sit_core::time::Date,
    log_served: bool,
) -> std::io::Result<RunningMarket> {
    use axum::serve::ListenerExt;
    tokenizer::warm_up();
    let mut addrs = Vec::new();
    let mut shared = Vec::new();
    let mut shutdown = Vec::new();
    let mut tasks = Vec::new();
    for (i, p) in market.providers.iter().enumerate() {
        let listener = crate::sys::net::listen(([127, 0, 0, 1], 0).into())?;
        addrs.push(listener.local_addr()?);
        // Answers are many small writes: never hold one back waiting for an ACK (Nagle).
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let sh = Arc::new(Shared {
            provider: p.clone(),
            stats: Stats::default(),
            schedule: market.schedule(i, priced_until),
            served: log_served.then(|| std::sync::Mutex::new(Vec::new())),
        });
        shared.push(sh.clone());
        let app = Router::new()
            .route("/v1/chat/completions", post(openai_chat))
            .route("/v1/messages", post(anthropic_messages))
            .route("/v1/responses", post(openai_responses))
            .route("/v1beta/models/{action}", post(gemini_generate))
            .route("/v1/models", get(models))
            .route("/sim/stats", get(stats))
            .route("/sim/served", get(served))
            .route("/sim/prices", get(prices))
            .with_state(sh);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        shutdown.push(tx);
        tasks.push(tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        }));
    }
    Ok(RunningMarket {
        market,
        addrs,
        shared,
        shutdown,
        tasks,
    })
}

async fn models(State(sh): State<Arc<Shared>>) -> Json<serde_json::Value> {
    Json(
        serde_json::json!({"object": "list", "data": [{"id": format!("{}-chat", sh.provider.id), "object": "model"}]}),
    )
}

/// The served-answer log (taken: each record is returned once), for a benchmark that runs the
/// simulator in another process. Durations only: instants do not cross processes.
async fn served(State(sh): State<Arc<Shared>>) -> Json<serde_json::Value> {
    let taken = sh
        .served
        .as_ref()
        .map(|m| std::mem::take(&mut *m.lock().unwrap_or_else(|p| p.into_inner())))
        .unwrap_or_default();
    Json(serde_json::Value::Array(
        taken
            .iter()
            .map(|s| {
                serde_json::json!({
                    "nonce": s.nonce,
                    "injected_ms": s.injected_ms,
                    "server_ttft_ns": s.first_token.duration_since(s.received).as_nanos() as u64,
                })
            })
            .collect(),
    ))
}

async fn stats(State(sh): State<Arc<Shared>>) -> Json<serde_json::Value> {
    Json(serde_json::to_value(&sh.stats).unwrap_or_default())
}

async fn prices(State(sh): State<Arc<Shared>>) -> Json<serde_json::Value> {
    Json(serde_json::to_value(&sh.schedule).unwrap_or_default())
}

fn error(status: StatusCode, typ: &str, msg: &str) -> Response {
    (
        status,
        Json(serde_json::json!({"error": {"message": msg, "type": typ}})),
    )
        .into_response()
}

fn chunk(id: &str, model: &str, delta: serde_json::Value, finish: Option<&str>) -> Bytes {
    let v = serde_json::json!({
        "id": id, "object": "chat.completion.chunk", "created": 0, "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    });
    Bytes::from(format!("data: {v}\n\n"))
}

/// How a dialect frames the same simulated answer on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Openai,
    Anthropic,
    Gemini,
    /// OpenAI Responses: named events, usage in `response.completed`.
    Responses,
}

/// Token counts of one answer, as the provider reports them.
#[derive(Debug, Clone, Copy)]
struct Counts {
    prompt: u64,
    /// Output including hidden reasoning.
    completion: u64,
    reasoning: u64,
}

fn sse(v: &serde_json::Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

fn sse_event(name: &str, v: &serde_json::Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {v}\n\n"))
}

/// The probe nonce a request carries: the first run of exactly 16 lowercase hex digits in its
/// system or user text (wherever the suite's framing put it; prompts carry no such run).
pub fn probe_nonce(system: &str, user: &str) -> String {
    for text in [system, user] {
        let b = text.as_bytes();
        let hex = |c: u8| c.is_ascii_digit() || (b'a'..=b'f').contains(&c);
        let mut i = 0;
        while i < b.len() {
            if hex(b[i]) {
                let j = (i..b.len()).find(|&j| !hex(b[j])).unwrap_or(b.len());
                let before = i.checked_sub(1).map(|k| b[k]);
                if j - i == 16 && !before.is_some_and(|c| c.is_ascii_alphanumeric()) {
                    return text[i..j].to_string();
                }
                i = j;
            } else {
                i += 1;
            }
        }
    }
    String::new()
}

impl Framing {
    /// (system, user, stream?, include usage?) of a request in this dialect.
    fn parse(self, req: &serde_json::Value) -> Option<(String, String, bool, bool)> {
        let s = |v: &serde_json::Value| v.as_str().map(str::to_string);
        match self {
            Framing::Openai => {
                let messages = req.get("messages")?.as_array()?;
                let text_of = |role: &str| -> String {
                    messages
                        .iter()
                        .filter(|m| m.get("role").and_then(|r| r.as_str()) == Some(role))
                        .filter_map(|m| m.get("content").and_then(|c| c.as_str()))
                        .collect::<Vec<_>>()
                        .join("\n")
                };
                Some((
                    text_of("system"),
                    text_of("user"),
                    req.get("stream").and_then(|x| x.as_bool()).unwrap_or(false),
                    req.pointer("/stream_options/include_usage")
                        .and_then(|x| x.as_bool())
                        .unwrap_or(false),
                ))
            }
            Framing::Anthropic => Some((
                s(&req["system"]).unwrap_or_default(),
                s(&req["messages"][0]["content"])?,
                true,
                true,
            )),
            Framing::Responses => {
                let user = match &req["input"] {
                    serde_json::Value::String(t) => Some(t.clone()),
                    serde_json::Value::Array(items) => items
                        .iter()
                        .find(|m| m["role"] == "user")
                        .and_then(|m| s(&m["content"])),
                    _ => None,
                }?;
                Some((
                    s(&req["instructions"]).unwrap_or_default(),
                    user,
                    req.get("stream").and_then(|x| x.as_bool()).unwrap_or(false),
                    true,
                ))
            }
            Framing::Gemini => Some((
                s(&req["systemInstruction"]["parts"][0]["text"]).unwrap_or_default(),
                s(&req["contents"][0]["parts"][0]["text"])?,
                true,
                true,
            )),
        }
    }

    /// An HTTP error body in this dialect's shape. `kind`: rate_limit, server, bad_request.
    fn error(self, status: StatusCode, kind: &str, msg: &str) -> Response {
        let body = match self {
            Framing::Openai | Framing::Responses => {
                serde_json::json!({"error": {"message": msg, "type": match kind {
                "rate_limit" => "rate_limit_error", "server" => "server_error", _ => "invalid_request_error" }}})
            }
            Framing::Anthropic => {
                serde_json::json!({"type": "error", "error": {"message": msg, "type": match kind {
                "rate_limit" => "rate_limit_error", "server" => "api_error", _ => "invalid_request_error" }}})
            }
            Framing::Gemini => {
                serde_json::json!({"error": {"code": status.as_u16(), "message": msg, "status": match kind {
                "rate_limit" => "RESOURCE_EXHAUSTED", "server" => "INTERNAL", _ => "INVALID_ARGUMENT" }}})
            }
        };
        (status, Json(body)).into_response()
    }

    /// Frames sent before the first token (the role, the message start).
    fn start(self, id: &str, model: &str, c: Counts) -> Vec<Bytes> {
        match self {
            Framing::Openai => vec![chunk(
                id,
                model,
                serde_json::json!({"role": "assistant", "content": ""}),
                None,
            )],
            Framing::Anthropic => vec![
                sse_event(
                    "message_start",
                    &serde_json::json!({"type": "message_start", "message": {
                    "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
                    "usage": {"input_tokens": c.prompt, "output_tokens": 1}}}),
                ),
                sse_event(
                    "content_block_start",
                    &serde_json::json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "text", "text": ""}}),
                ),
                sse_event("ping", &serde_json::json!({"type": "ping"})),
            ],
            Framing::Gemini => vec![],
            Framing::Responses => {
                let resp = serde_json::json!({"id": id, "object": "response", "model": model,
                    "status": "in_progress", "output": []});
                vec![
                    sse_event(
                        "response.created",
                        &serde_json::json!({"type": "response.created", "sequence_number": 0, "response": resp}),
                    ),
                    sse_event(
                        "response.output_item.added",
                        &serde_json::json!({"type": "response.output_item.added", "sequence_number": 1,
                        "output_index": 0, "item": {"id": format!("msg_{id}"), "type": "message",
                        "status": "in_progress", "role": "assistant", "content": []}}),
                    ),
                    sse_event(
                        "response.content_part.added",
                        &serde_json::json!({"type": "response.content_part.added", "sequence_number": 2,
                        "item_id": format!("msg_{id}"), "output_index": 0, "content_index": 0,
                        "part": {"type": "output_text", "text": "", "annotations": []}}),
                    ),
                ]
            }
        }
    }

    fn piece(self, id: &str, model: &str, text: &str) -> Bytes {
        match self {
            Framing::Openai => chunk(id, model, serde_json::json!({"content": text}), None),
            Framing::Anthropic => sse_event(
                "content_block_delta",
                &serde_json::json!({"type": "content_block_delta",
                "index": 0, "delta": {"type": "text_delta", "text": text}}),
            ),
            Framing::Gemini => sse(
                &serde_json::json!({"candidates": [{"content": {"role": "model",
                "parts": [{"text": text}]}, "index": 0}], "modelVersion": model}),
            ),
            Framing::Responses => sse_event(
                "response.output_text.delta",
                &serde_json::json!({"type": "response.output_text.delta", "item_id": format!("msg_{id}"),
                "output_index": 0, "content_index": 0, "delta": text}),
            ),
        }
    }

    /// An error object inside the stream after HTTP 200, in this dialect's shape.
    fn error_event(self) -> Bytes {
        match self {
            Framing::Openai => sse(&serde_json::json!({"error": {
                "message": "The server had an error while processing your request.",
                "type": "server_error", "param": null, "code": null}})),
            Framing::Anthropic => sse_event(
                "error",
                &serde_json::json!({"type": "error", "error": {
                "type": "api_error", "message": "Internal server error"}}),
            ),
            Framing::Gemini => sse(&serde_json::json!({"error": {
                "code": 500, "message": "Internal error encountered.", "status": "INTERNAL"}})),
            Framing::Responses => sse_event(
                "error",
                &serde_json::json!({"type": "error", "code": "server_error",
                "message": "The server had an error while processing your request.", "param": null}),
            ),
        }
    }

    /// An answer piece whose text is two bytes that are not UTF-8.
    fn invalid_utf8_piece(self, id: &str, model: &str) -> Bytes {
        const MARK: &str = "@@NOT-UTF8@@";
        let good = self.piece(id, model, MARK);
        let at = good
            .windows(MARK.len())
            .position(|w| w == MARK.as_bytes())
            .expect("the marker is in the piece");
        let mut v = good[..at].to_vec();
        v.extend_from_slice(&[0xff, 0xfe]);
        v.extend_from_slice(&good[at + MARK.len()..]);
        Bytes::from(v)
    }

    fn malformed(self) -> Bytes {
        match self {
            Framing::Openai => Bytes::from_static(b"data: {\"choices\":[{\"delta\":{\"content\":\n\n"),
            Framing::Anthropic => Bytes::from_static(b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":\n\n"),
            Framing::Gemini => Bytes::from_static(b"data: {\"candidates\":[{\"content\":\n\n"),
            Framing::Responses => Bytes::from_static(b"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\n\n"),
        }
    }

    /// Frames after the last token: finish, usage, end marker.
    /// `stop` replaces the dialect's normal finish reason (the echoing provider).
    fn finish(
        self,
        id: &str,
        model: &str,
        c: Counts,
        include_usage: bool,
        stop: Option<&str>,
    ) -> Vec<Bytes> {
        match self {
            Framing::Openai => {
                let mut v = vec![chunk(
                    id,
                    model,
                    serde_json::json!({}),
                    Some(stop.unwrap_or("stop")),
                )];
                if include_usage {
                    let usage = serde_json::json!({
                        "prompt_tokens": c.prompt, "completion_tokens": c.completion,
                        "total_tokens": c.prompt + c.completion,
                        "completion_tokens_details": {"reasoning_tokens": c.reasoning},
                        "prompt_tokens_details": {"cached_tokens": 0},
                    });
                    v.push(sse(
                        &serde_json::json!({"id": id, "object": "chat.completion.chunk",
                        "created": 0, "model": model, "choices": [], "usage": usage}),
                    ));
                }
                v.push(Bytes::from_static(b"data: [DONE]\n\n"));
                v
            }
            Framing::Anthropic => vec![
                sse_event(
                    "content_block_stop",
                    &serde_json::json!({"type": "content_block_stop", "index": 0}),
                ),
                sse_event(
                    "message_delta",
                    &serde_json::json!({"type": "message_delta",
                    "delta": {"stop_reason": stop.unwrap_or("end_turn"), "stop_sequence": null},
                    "usage": {"output_tokens": c.completion}}),
                ),
                sse_event("message_stop", &serde_json::json!({"type": "message_stop"})),
            ],
            Framing::Gemini => vec![sse(&serde_json::json!({
                "candidates": [{"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": stop.unwrap_or("STOP"), "index": 0}],
                "usageMetadata": {"promptTokenCount": c.prompt, "candidatesTokenCount": c.completion - c.reasoning,
                    "thoughtsTokenCount": c.reasoning, "totalTokenCount": c.prompt + c.completion},
                "modelVersion": model}))],
            Framing::Responses => {
                // output_tokens include reasoning, detailed apart (as OpenAI reports them)
                let usage = serde_json::json!({
                    "input_tokens": c.prompt, "input_tokens_details": {"cached_tokens": 0},
                    "output_tokens": c.completion,
                    "output_tokens_details": {"reasoning_tokens": c.reasoning},
                    "total_tokens": c.prompt + c.completion});
                let _ = include_usage; // the Responses API always reports usage
                let (kind, status, details) = match stop {
                    None => ("response.completed", "completed", serde_json::Value::Null),
                    Some(reason) => (
                        "response.incomplete",
                        "incomplete",
                        serde_json::json!({"reason": reason}),
                    ),
                };
                vec![
                    sse_event(
                        "response.output_text.done",
                        &serde_json::json!({"type": "response.output_text.done", "item_id": format!("msg_{id}"),
                        "output_index": 0, "content_index": 0}),
                    ),
                    sse_event(
                        kind,
                        &serde_json::json!({"type": kind, "response": {"id": id, "object": "response",
                        "model": model, "status": status, "incomplete_details": details, "usage": usage}}),
                    ),
                ]
            }
        }
    }
}

async fn openai_chat(State(sh): State<Arc<Shared>>, h: HeaderMap, body: Bytes) -> Response {
    chat(sh, Framing::Openai, &h, body).await
}

async fn anthropic_messages(State(sh): State<Arc<Shared>>, h: HeaderMap, body: Bytes) -> Response {
    chat(sh, Framing::Anthropic, &h, body).await
}

async fn openai_responses(State(sh): State<Arc<Shared>>, h: HeaderMap, body: Bytes) -> Response {
    chat(sh, Framing::Responses, &h, body).await
}

async fn gemini_generate(State(sh): State<Arc<Shared>>, h: HeaderMap, body: Bytes) -> Response {
    chat(sh, Framing::Gemini, &h, body).await
}

/// The API key a request carries, in whichever header its dialect uses.
fn key_of(h: &HeaderMap) -> Option<String> {
    let get = |k: &str| h.get(k).and_then(|v| v.to_str().ok()).map(str::to_string);
    get("authorization")
        .map(|a| a.trim_start_matches("Bearer ").to_string())
        .or_else(|| get("x-api-key"))
        .or_else(|| get("x-goog-api-key"))
}

fn model_lane() -> &'static crate::sys::lane::Lane {
    static LANE: std::sync::OnceLock<crate::sys::lane::Lane> = std::sync::OnceLock::new();
    LANE.get_or_init(|| crate::sys::lane::Lane::start("sit-sim-model", 19))
}

/// One step of a streamed answer.
enum Step {
    Frame(Bytes),
    /// Wait for the first answer piece's instant (the precise timer).
    FirstTokenAt(std::time::Instant),
    Sleep(Duration),
    /// Note the first answer piece in the served log (benchmarks).
    LogServed,
    Count(Counter),
}

enum Counter {
    Ok {
        prompt_tokens: u64,
        completion_tokens: u64,
    },
    Truncated,
    Malformed,
}

/// Plays a plan of steps as a response body.
struct Player {
    sh: Arc<Shared>,
    steps: std::vec::IntoIter<Step>,
    nonce: String,
    received: std::time::Instant,
    injected_ms: u64,
}

impl Player {
    /// The next frame to write, after the waits and bookkeeping before it; None at the end.
    async fn next_frame(&mut self) -> Option<Bytes> {
        loop {
            match self.steps.next()? {
                Step::Frame(b) => return Some(b),
                Step::FirstTokenAt(at) => super::timer::sleep_until(at).await,
                Step::Sleep(d) => tokio::time::sleep(d).await,
                Step::LogServed => {
                    if let Some(log) = &self.sh.served {
                        log.lock().unwrap_or_else(|p| p.into_inner()).push(Served {
                            nonce: std::mem::take(&mut self.nonce),
                            received: self.received,
                            injected_ms: self.injected_ms,
                            // the piece before this step has just been handed to hyper
                            first_token: std::time::Instant::now(),
                        });
                    }
                }
                Step::Count(c) => {
                    let st = &self.sh.stats;
                    match c {
                        Counter::Ok {
                            prompt_tokens,
                            completion_tokens,
                        } => {
                            st.ok.fetch_add(1, Ordering::Relaxed);
                            st.prompt_tokens_reported
                                .fetch_add(prompt_tokens, Ordering::Relaxed);
                            st.completion_tokens_reported
                                .fetch_add(completion_tokens, Ordering::Relaxed);
                        }
                        Counter::Truncated => {
                            st.truncated.fetch_add(1, Ordering::Relaxed);
                        }
                        Counter::Malformed => {
                            st.malformed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        }
    }
}

/// Keys starting with this are refused with a 401 that echoes the key, as some real providers
/// do: the secrets test proves the echo never reaches a record, a log or an export.
pub const ECHO_KEY_PREFIX: &str = "sk-sim-echo-";

/// Keys starting with this are accepted, and the answer echoes the key everywhere a provider
/// can put text: in the answer, the model name and the finish reason (a compromised or buggy
/// provider): the secrets test proves none of it is stored or printed.
pub const ECHO_OK_KEY_PREFIX: &str = "sk-sim-echo-ok-";

/// Keys starting with this are accepted and echoed at the end of the answer in one stream
/// event (not split across events like [`ECHO_OK_KEY_PREFIX`]'s), so that byte-level
/// redaction finds it and the record keeps its (redacted) body: the secrets test proves such
/// a record replays identically.
pub const ECHO_WHOLE_KEY_PREFIX: &str = "sk-sim-echo-ok-whole-";

/// A wrong answer of the same shape: change the last digit, or alter the text.
fn corrupt(answer: &str, r: &mut Rng) -> String {
    if let Some(pos) = answer.rfind(|c: char| c.is_ascii_digit()) {
        let d = answer.as_bytes()[pos] - b'0';
        let nd = (d + 1 + r.range(0, 7) as u8) % 10;
        let mut s = answer.to_string();
        s.replace_range(pos..pos + 1, &nd.to_string());
        s
    } else {
        format!("{}x", answer.chars().rev().collect::<String>())
    }
}

async fn chat(sh: Arc<Shared>, framing: Framing, headers: &HeaderMap, body: Bytes) -> Response {
    let received = std::time::Instant::now();
    let st = &sh.stats;
    st.requests.fetch_add(1, Ordering::Relaxed);
    let echo = key_of(headers).filter(|k| k.starts_with(ECHO_OK_KEY_PREFIX));
    if let Some(k) = key_of(headers)
        .filter(|k| k.starts_with(ECHO_KEY_PREFIX) && !k.starts_with(ECHO_OK_KEY_PREFIX))
    {
        return framing.error(
            StatusCode::UNAUTHORIZED,
            "auth",
            &format!("Incorrect API key provided: {k}. You can find your API key in your account settings."),
        );
    }
    let req: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => {
            st.bad_requests.fetch_add(1, Ordering::Relaxed);
            return framing.error(StatusCode::BAD_REQUEST, "bad_request", "body is not JSON");
        }
    };
    let Some((system, user, stream, include_usage)) = framing.parse(&req) else {
        st.bad_requests.fetch_add(1, Ordering::Relaxed);
        return framing.error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the request has no user message",
        );
    };
    let p = &sh.provider;
    let mut r = Rng::from_bytes(&[&p.seed.to_le_bytes(), &body]);

    // faults first: a real overloaded server refuses before it thinks
    let fault = if r.chance_permille(p.fault_permille) {
        Some(r.range(0, 3))
    } else {
        None
    };
    match fault {
        Some(0) => {
            st.rate_limited.fetch_add(1, Ordering::Relaxed);
            let mut resp = framing.error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit",
                "Rate limit reached; retry later",
            );
            resp.headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
            return resp;
        }
        Some(1) => {
            st.server_errors.fetch_add(1, Ordering::Relaxed);
            return framing.error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server",
                "The server had an error processing your request",
            );
        }
        _ => {}
    }

    // Solving and counting tokens stand in for the provider's model, which runs on the
    // provider's machines: here on a lane of its own at low priority, so that neither the
    // simulated servers' I/O nor a probe worker in the same process waits behind it.
    let quality = p.quality_permille;
    let (sys_c, user_c) = (system.clone(), user.clone());
    let (answer, tier_idx, prompt_ref, answer_ref, mut r) = model_lane()
        .run(move || {
            let (system, user) = (sys_c, user_c);
            let (answer, tier_idx) = match solve_any(&user) {
                Some((fam, correct)) => {
                    let tier_idx = match &fam.id()[..2] {
                        "t1" => 0,
                        "t2" => 1,
                        _ => 2,
                    };
                    let good = r.chance_permille(quality[tier_idx]);
                    (
                        if good {
                            correct
                        } else {
                            corrupt(&correct, &mut r)
                        },
                        tier_idx,
                    )
                }
                None => (
                    "I am a simulated model and cannot answer that.".to_string(),
                    0,
                ),
            };
            let prompt_ref = tokenizer::count(&system) + tokenizer::count(&user);
            let answer_ref = tokenizer::count(&answer);
            (answer, tier_idx, prompt_ref, answer_ref, r)
        })
        .await;
    let infl = |n: u64| (n * p.inflation_permille as u64).div_ceil(1000);
    let reasoning = p.reasoning_tokens as u64 * [1, 2, 4][tier_idx];
    let prompt_tokens = infl(prompt_ref);
    let completion_tokens = infl(answer_ref) + reasoning;
    let counts = Counts {
        prompt: prompt_tokens,
        completion: completion_tokens,
        reasoning,
    };
    let (model, answer) = match &echo {
        Some(k) => (format!("{}-chat {k}", p.id), format!("{answer} (key {k})")),
        None => (format!("{}-chat", p.id), answer),
    };
    let id = format!("chatcmpl-{}", r.hex(8));
    let usage = serde_json::json!({
        "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "completion_tokens_details": {"reasoning_tokens": reasoning},
        "prompt_tokens_details": {"cached_tokens": 0},
    });
    // first-token delay: lognormal around the median, plus prefill and reasoning time
    // (the noise is drawn even when unused, so the rest of the request's randomness is the same)
    let noise = r.normal();
    let ttft = (p.ttft_ms as f64 * (p.ttft_jitter_permille as f64 / 1000.0 * noise).exp()) as u64
        + prompt_ref / 40
        + reasoning / 20;
    let per_token = Duration::from_micros(1_000_000 / p.tokens_per_sec.max(1) as u64);

    if !stream {
        tokio::time::sleep(Duration::from_millis(ttft) + per_token * answer_ref as u32).await;
        st.ok.fetch_add(1, Ordering::Relaxed);
        st.prompt_tokens_reported
            .fetch_add(prompt_tokens, Ordering::Relaxed);
        st.completion_tokens_reported
            .fetch_add(completion_tokens, Ordering::Relaxed);
        return Json(serde_json::json!({
            "id": id, "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
            "usage": usage,
        }))
        .into_response();
    }

    // split the answer into pieces of about one token (4 characters); a whole-echo key is
    // sent as one more piece of its own
    let whole_echo = echo
        .as_deref()
        .filter(|k| k.starts_with(ECHO_WHOLE_KEY_PREFIX));
    let pieces: Vec<String> = {
        let text = match whole_echo {
            Some(k) => answer
                .strip_suffix(&format!(" (key {k})"))
                .unwrap_or(&answer),
            None => answer.as_str(),
        };
        let chars: Vec<char> = text.chars().collect();
        let mut v: Vec<String> = chars.chunks(4).map(|c| c.iter().collect()).collect();
        if let Some(k) = whole_echo {
            v.push(format!(" (key {k})"));
        }
        v
    };
    // The answer as a plan of steps, played by the response body itself: the HTTP connection
    // task wakes straight from the first-token timer and writes, with no task in between.
    let mut plan: Vec<Step> = framing
        .start(&id, &model, counts)
        .into_iter()
        .map(Step::Frame)
        .collect();
    // The injected delay counts from the request's arrival, not from the end of this
    // handler's own work (parsing, solving, counting tokens), on a sub-millisecond timer.
    plan.push(Step::FirstTokenAt(received + Duration::from_millis(ttft)));
    let cut = if fault == Some(2) {
        pieces.len().div_ceil(2)
    } else {
        usize::MAX
    };
    let mut completed = true;
    for (k, piece) in pieces.iter().enumerate() {
        if k == cut {
            plan.push(Step::Count(Counter::Truncated)); // connection closes without [DONE]
            completed = false;
            break;
        }
        if k == 0 && fault == Some(3) {
            plan.push(Step::Count(Counter::Malformed));
            plan.push(Step::Frame(framing.malformed()));
            completed = false;
            break;
        }
        if k > 0 {
            plan.push(Step::Sleep(per_token));
        }
        plan.push(Step::Frame(match (k, p.scripted) {
            (0, Some(ScriptedFault::InvalidUtf8)) => framing.invalid_utf8_piece(&id, &model),
            _ => framing.piece(&id, &model, piece),
        }));
        if k == 0 {
            plan.push(Step::LogServed);
        }
        if k == 0 && p.scripted == Some(ScriptedFault::ErrorEvent) {
            plan.push(Step::Frame(framing.error_event()));
            completed = false;
            break;
        }
    }
    if completed {
        plan.extend(
            framing
                .finish(&id, &model, counts, include_usage, echo.as_deref())
                .into_iter()
                .map(Step::Frame),
        );
        plan.push(Step::Count(Counter::Ok {
            prompt_tokens,
            completion_tokens,
        }));
    }
    let player = Player {
        sh: sh.clone(),
        steps: plan.into_iter(),
        nonce: probe_nonce(&system, &user),
        received,
        injected_ms: ttft,
    };
    let body = futures_util::stream::unfold(player, |mut pl| async move {
        let frame = pl.next_frame().await?;
        Some((Ok::<_, Infallible>(frame), pl))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| {
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "response build failed",
            )
        })
}
