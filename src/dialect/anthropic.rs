//! Anthropic Messages, streamed.
//!
//! Request: `POST {base_url}/v1/messages` with `stream: true`, the key in `x-api-key` and
//! `anthropic-version`. Events carry their type in `data.type`:
//! - `message_start`: the assistant message begins (the role); `message.usage.input_tokens`
//!   (cache reads and writes reported apart; input here is their sum, cached the reads);
//! - `content_block_delta`: `text_delta` is answer, `thinking_delta` is reasoning content;
//! - `message_delta`: `stop_reason` and the **cumulative** `usage.output_tokens`;
//! - `message_stop`: the end marker; `ping`: keep-alive, nothing;
//! - `error`: `overloaded_error` (as HTTP 529), `rate_limit_error`, others.
//!
//! Thinking tokens are not reported apart: they are inside `output_tokens`.

use super::sse::SseEvent;
use super::{truncate, ChatRequest, EventEffect, HttpRequest, StreamState, Usage};
use crate::config::{ApiKey, Endpoint};
use serde_json::Value;
use sit_core::observation::FailureClass;

pub const VERSION: &str = "2023-06-01";

pub fn build(endpoint: &Endpoint, req: &ChatRequest, key: Option<&ApiKey>) -> HttpRequest {
    let mut body = serde_json::json!({
        "model": req.model,
        "messages": [{"role": "user", "content": req.user}],
        "max_tokens": req.max_tokens,
        "temperature": 0,
        "stream": true,
    });
    // An empty system text is no system prompt (suite 1.1.0 frames some probes without one).
    if !req.system.is_empty() {
        body["system"] = Value::String(req.system.clone());
    }
    let mut headers = vec![
        ("content-type".to_string(), "application/json".to_string()),
        ("accept".to_string(), "text/event-stream".to_string()),
        ("anthropic-version".to_string(), VERSION.to_string()),
    ];
    if let Some(k) = key {
        headers.push(("x-api-key".to_string(), k.expose().to_string()));
    }
    HttpRequest {
        url: format!("{}/v1/messages", endpoint.base_url),
        headers,
        body: serde_json::to_vec(&body).expect("request serialises"),
    }
}

/// (system, user) of a request body this adapter built.
pub fn request_texts(body: &Value) -> (String, String) {
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    (s(&body["system"]), s(&body["messages"][0]["content"]))
}

fn classify(err: &Value) -> FailureClass {
    match err.get("type").and_then(|t| t.as_str()).unwrap_or("") {
        "overloaded_error" => FailureClass::Overloaded,
        "rate_limit_error" => FailureClass::RateLimited,
        "billing_error" => FailureClass::Quota,
        _ => FailureClass::ErrorEvent,
    }
}

fn u(v: &Value, k: &str) -> Option<u64> {
    v.get(k).and_then(|x| x.as_u64())
}

/// Apply one event of the stream.
pub fn on_event(ev: &SseEvent, st: &mut StreamState) -> EventEffect {
    let Some(v) = super::event_json(ev, st) else {
        return EventEffect::default();
    };
    let mut eff = EventEffect::default();
    match v.get("type").and_then(|t| t.as_str()).unwrap_or("") {
        "message_start" => {
            st.role_seen = true;
            let m = &v["message"];
            if let Some(model) = m.get("model").and_then(|x| x.as_str()) {
                st.server_model = Some(truncate(model, 200));
            }
            let us = &m["usage"];
            let read = u(us, "cache_read_input_tokens");
            st.cache_creation = u(us, "cache_creation_input_tokens");
            let input = u(us, "input_tokens")
                .map(|i| i + read.unwrap_or(0) + st.cache_creation.unwrap_or(0));
            st.usage = Some(Usage {
                input,
                output: u(us, "output_tokens"),
                reasoning: None,
                cached: read,
                total: None,
            });
        }
        "content_block_delta" => {
            let d = &v["delta"];
            match d.get("type").and_then(|t| t.as_str()).unwrap_or("") {
                "text_delta" => {
                    if let Some(t) = d.get("text").and_then(|t| t.as_str()) {
                        if !t.is_empty() {
                            st.content_before_role |= !st.role_seen;
                            st.text.push_str(t);
                            eff.content = true;
                            eff.answer = true;
                        }
                    }
                }
                "thinking_delta" => {
                    if let Some(t) = d.get("thinking").and_then(|t| t.as_str()) {
                        if !t.is_empty() {
                            st.reasoning_chars += t.chars().count() as u64;
                            eff.content = true;
                        }
                    }
                }
                _ => {}
            }
        }
        "message_delta" => {
            if let Some(r) = v["delta"].get("stop_reason").and_then(|r| r.as_str()) {
                st.finish_reason = Some(
                    match r {
                        "end_turn" | "stop_sequence" => "stop",
                        "max_tokens" => "length",
                        "refusal" => "content_filter",
                        other => other,
                    }
                    .to_string(),
                );
            }
            // Usage is cumulative and may be restated: every field the latest event carries
            // supersedes the earlier value (output_tokens always; input and cache fields when
            // the server sends them again).
            let us = &v["usage"];
            if us.is_object() {
                let usage = st.usage.get_or_insert_with(Usage::default);
                if let Some(out) = u(us, "output_tokens") {
                    usage.output = Some(out);
                }
                let read = u(us, "cache_read_input_tokens");
                if let Some(c) = u(us, "cache_creation_input_tokens") {
                    st.cache_creation = Some(c);
                }
                if read.is_some() {
                    usage.cached = read;
                }
                // input is all input tokens: uncached, cache reads and cache writes
                if let Some(i) = u(us, "input_tokens") {
                    usage.input =
                        Some(i + usage.cached.unwrap_or(0) + st.cache_creation.unwrap_or(0));
                }
            }
        }
        "message_stop" => st.done = true,
        "error" => super::record_error(&v["error"], st, classify),
        // ping, content_block_start/stop and future event types carry nothing we count
        _ => {}
    }
    eff
}

/// Detail of an error body and whether it is a billing (quota) error.
pub fn error_detail(body: &[u8]) -> (String, bool) {
    super::error_body(body, classify)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::dialect::data_event as ev;

    #[test]
    fn a_full_stream_with_thinking_cumulative_usage_and_ping() {
        let mut st = StreamState::default();
        let events = [
            r#"{"type":"message_start","message":{"model":"claude-x","usage":{"input_tokens":20,"cache_read_input_tokens":5,"output_tokens":1}}}"#,
            r#"{"type":"ping"}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"4"}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"2"}}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":7}}"#,
            r#"{"type":"message_delta","delta":{},"usage":{"output_tokens":9}}"#,
            r#"{"type":"message_stop"}"#,
        ];
        let effects: Vec<EventEffect> = events.iter().map(|e| on_event(&ev(e), &mut st)).collect();
        assert!(
            effects[3].content && !effects[3].answer,
            "thinking is content, not answer"
        );
        assert!(effects[4].answer);
        assert_eq!(st.text, "42");
        assert_eq!(st.server_model.as_deref(), Some("claude-x"));
        assert_eq!(st.finish_reason.as_deref(), Some("stop"));
        assert!(st.done && st.role_seen && !st.content_before_role);
        assert_eq!(
            st.usage,
            Some(Usage {
                input: Some(25),
                output: Some(9),
                reasoning: None,
                cached: Some(5),
                total: None,
            })
        );
    }

    #[test]
    fn error_events_are_classified() {
        for (t, class) in [
            ("overloaded_error", FailureClass::Overloaded),
            ("rate_limit_error", FailureClass::RateLimited),
            ("api_error", FailureClass::ErrorEvent),
        ] {
            let mut st = StreamState::default();
            on_event(
                &ev(&format!(
                    r#"{{"type":"error","error":{{"type":"{t}","message":"m"}}}}"#
                )),
                &mut st,
            );
            assert_eq!(st.failure.unwrap().0, class);
        }
        let mut st = StreamState::default();
        on_event(&ev("{not json"), &mut st);
        assert_eq!(st.failure.unwrap().0, FailureClass::Malformed);
    }
}
