//! OpenAI Responses API, streamed (`openai-responses`).
//!
//! Request: `POST {base_url}/responses` with `stream: true`, the system text as
//! `instructions` (omitted when empty), the prompt as a user input message,
//! `max_output_tokens`, and `store: false` (a probe is not kept on the provider's side).
//! Events are named by their `type` (also the SSE event name):
//! - `response.created` / `response.in_progress`: the response begins (the role);
//! - `response.output_text.delta` (`delta`): answer text;
//! - `response.reasoning_summary_text.delta`, `response.reasoning_text.delta`: reasoning;
//! - `response.refusal.delta`: the model refused: recorded as `content_filter`;
//! - `response.completed` / `response.incomplete` / `response.failed`: the end, with the
//!   final `response` object: `usage` (`input_tokens`, `input_tokens_details.cached_tokens`,
//!   `output_tokens` with reasoning included, `output_tokens_details.reasoning_tokens`),
//!   `incomplete_details.reason` (`max_output_tokens` → `length`, `content_filter`) or `error`;
//! - `error`: an in-stream error (`code`, `message`).
//!
//! Everything else (output_item/content_part added and done, text done) carries nothing
//! counted here. There is no `[DONE]`: a terminal `response.*` event ends the answer.

use super::openai::{classify_error as classify, u};
use super::sse::SseEvent;
use super::{truncate, ChatRequest, EventEffect, HttpRequest, StreamState, Usage};
use crate::config::{ApiKey, Endpoint};
use serde_json::Value;
use sit_core::observation::FailureClass;

/// (system, user) of a request body this adapter built (system empty when it sent none).
pub fn request_texts(body: &Value) -> (String, String) {
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let user = match &body["input"] {
        Value::String(t) => t.clone(),
        Value::Array(items) => items
            .iter()
            .find(|m| m["role"] == "user")
            .map(|m| s(&m["content"]))
            .unwrap_or_default(),
        _ => String::new(),
    };
    (s(&body["instructions"]), user)
}

pub fn build(endpoint: &Endpoint, req: &ChatRequest, key: Option<&ApiKey>) -> HttpRequest {
    let mut body = serde_json::json!({
        "model": req.model,
        "input": [{"role": "user", "content": req.user}],
        "max_output_tokens": req.max_tokens,
        "temperature": 0,
        "stream": true,
        "store": false,
    });
    if !req.system.is_empty() {
        body["instructions"] = Value::String(req.system.clone());
    }
    super::openai::bearer_request(format!("{}/responses", endpoint.base_url), &body, key)
}

/// The final `response` object: usage, finish reason, model.
fn terminal(resp: &Value, st: &mut StreamState) {
    if let Some(m) = resp.get("model").and_then(|m| m.as_str()) {
        st.server_model = Some(truncate(m, 200));
    }
    if let Some(us) = resp.get("usage").filter(|u| u.is_object()) {
        st.usage = Some(Usage {
            input: u(us, &["input_tokens"]),
            output: u(us, &["output_tokens"]),
            reasoning: u(us, &["output_tokens_details", "reasoning_tokens"]),
            cached: u(us, &["input_tokens_details", "cached_tokens"]),
            total: u(us, &["total_tokens"]),
        });
    }
}

/// Apply one event of the stream.
pub fn on_event(ev: &SseEvent, st: &mut StreamState) -> EventEffect {
    let Some(v) = super::event_json(ev, st) else {
        return EventEffect::default();
    };
    if !v.is_object() {
        st.failure = Some((FailureClass::Malformed, "event is not a JSON object".into()));
        return EventEffect::default();
    }
    let mut eff = EventEffect::default();
    let kind = v.get("type").and_then(|t| t.as_str()).unwrap_or("");
    match kind {
        "response.created" | "response.in_progress" => {
            st.role_seen = true;
            if let Some(m) = v["response"].get("model").and_then(|m| m.as_str()) {
                st.server_model = Some(truncate(m, 200));
            }
        }
        "response.output_text.delta" => {
            if let Some(t) = v.get("delta").and_then(|t| t.as_str()) {
                if !t.is_empty() {
                    st.content_before_role |= !st.role_seen;
                    st.text.push_str(t);
                    eff.content = true;
                    eff.answer = true;
                }
            }
        }
        "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
            if let Some(t) = v.get("delta").and_then(|t| t.as_str()) {
                if !t.is_empty() {
                    st.reasoning_chars += t.chars().count() as u64;
                    eff.content = true;
                }
            }
        }
        "response.refusal.delta" => {
            // A refusal is the model declining, not an answer.
            st.finish_reason = Some("content_filter".into());
            eff.content = true;
        }
        // A terminal response: `response.incomplete` says why it stopped early, and so may
        // a `response.completed` whose status is `incomplete` (some servers send that).
        "response.completed" | "response.incomplete" => {
            let r = &v["response"];
            terminal(r, st);
            let reason = r["incomplete_details"]["reason"].as_str();
            let incomplete = kind == "response.incomplete" || r["status"] == "incomplete";
            st.finish_reason = Some(
                match (incomplete, reason) {
                    (true, Some("max_output_tokens")) => "length",
                    (true, Some(other)) => other,
                    (true, None) => "incomplete",
                    // a refusal seen earlier stands
                    (false, _) => st.finish_reason.as_deref().unwrap_or("stop"),
                }
                .to_string(),
            );
            st.done = true;
        }
        "response.failed" => {
            let r = &v["response"];
            terminal(r, st);
            super::record_error(&r["error"], st, classify);
            if st.failure.is_none() {
                st.failure = Some((FailureClass::ErrorEvent, "response.failed".into()));
            }
        }
        // the error's fields at the top (`{"type":"error","code":..}`) or in an `error`
        // object (`{"type":"error","error":{"code":"insufficient_quota",..}}`)
        "error" => super::record_error(
            v.get("error").filter(|e| e.is_object()).unwrap_or(&v),
            st,
            classify,
        ),
        _ => {}
    }
    eff
}

/// Detail of an error body and whether it says "quota".
pub fn error_detail(body: &[u8]) -> (String, bool) {
    super::error_body(body, classify)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::data_event as ev;

    #[test]
    fn a_stream_with_reasoning_usage_and_completion() {
        let mut st = StreamState::default();
        for e in [
            r#"{"type":"response.created","response":{"id":"r1","model":"gpt-5-mini","status":"in_progress"}}"#,
            r#"{"type":"response.reasoning_summary_text.delta","delta":"Adding."}"#,
            r#"{"type":"response.output_text.delta","delta":"93"}"#,
            r#"{"type":"response.output_text.delta","delta":"6"}"#,
            r#"{"type":"response.completed","response":{"model":"gpt-5-mini-2025-08-07","status":"completed","usage":{"input_tokens":40,"input_tokens_details":{"cached_tokens":8},"output_tokens":120,"output_tokens_details":{"reasoning_tokens":112},"total_tokens":160}}}"#,
        ] {
            on_event(&ev(e), &mut st);
        }
        assert_eq!(st.text, "936");
        assert!(st.done && st.failure.is_none() && !st.content_before_role);
        assert_eq!(st.finish_reason.as_deref(), Some("stop"));
        assert_eq!(st.server_model.as_deref(), Some("gpt-5-mini-2025-08-07"));
        assert_eq!(
            st.usage,
            Some(Usage {
                input: Some(40),
                output: Some(120),
                reasoning: Some(112),
                cached: Some(8),
                total: Some(160),
            })
        );
    }

    #[test]
    fn incomplete_refused_failed_and_error_events_are_classified() {
        let mut st = StreamState::default();
        on_event(
            &ev(
                r#"{"type":"response.incomplete","response":{"status":"incomplete","incomplete_details":{"reason":"max_output_tokens"},"usage":{"input_tokens":5,"output_tokens":64}}}"#,
            ),
            &mut st,
        );
        assert_eq!(
            (st.finish_reason.as_deref(), st.done),
            (Some("length"), true)
        );
        let mut st = StreamState::default();
        on_event(
            &ev(r#"{"type":"response.refusal.delta","delta":"I can't help with that."}"#),
            &mut st,
        );
        on_event(
            &ev(r#"{"type":"response.completed","response":{"status":"completed"}}"#),
            &mut st,
        );
        assert_eq!(st.finish_reason.as_deref(), Some("content_filter"));
        assert!(st.text.is_empty());
        let mut st = StreamState::default();
        on_event(
            &ev(
                r#"{"type":"response.failed","response":{"status":"failed","error":{"code":"server_is_overloaded","message":"busy"}}}"#,
            ),
            &mut st,
        );
        assert_eq!(
            st.failure.as_ref().map(|f| f.0),
            Some(FailureClass::Overloaded)
        );
        let mut st = StreamState::default();
        on_event(
            &ev(r#"{"type":"error","code":"rate_limit_exceeded","message":"slow down"}"#),
            &mut st,
        );
        assert_eq!(
            st.failure.as_ref().map(|f| f.0),
            Some(FailureClass::RateLimited)
        );
        // issue 29: a quota error event, flat or with its fields in an `error` object, is
        // `quota` as in the chat dialect (it was `error_event`)
        for e in [
            r#"{"type":"error","code":"insufficient_quota","message":"You exceeded your current quota"}"#,
            r#"{"type":"error","sequence_number":1,"error":{"type":"insufficient_quota","code":"insufficient_quota","message":"You exceeded your current quota","param":null}}"#,
        ] {
            let mut st = StreamState::default();
            on_event(&ev(e), &mut st);
            assert_eq!(
                st.failure.as_ref().map(|f| (f.0, f.1.as_str())),
                Some((FailureClass::Quota, "You exceeded your current quota")),
                "{e}"
            );
        }
        let mut st = StreamState::default();
        on_event(
            &ev(r#"{"type":"response.output_text.delta","delta":"#),
            &mut st,
        );
        assert_eq!(
            st.failure.as_ref().map(|f| f.0),
            Some(FailureClass::Malformed)
        );
    }

    #[test]
    fn request_omits_empty_instructions_and_reads_back() {
        let e = crate::sim::Market::default_market(1).endpoints(
            &vec!["http://127.0.0.1:1/v1".to_string(); 12],
            sit_core::time::Date(20_000),
        )[0]
        .clone();
        let req = ChatRequest {
            model: "m".into(),
            system: String::new(),
            user: "Compute 1 + 1.".into(),
            max_tokens: 16,
        };
        let h = build(&e, &req, None);
        let body: Value = serde_json::from_slice(&h.body).unwrap();
        assert!(body.get("instructions").is_none());
        assert_eq!(
            request_texts(&body),
            (String::new(), "Compute 1 + 1.".into())
        );
        assert!(h.url.ends_with("/v1/responses"));
        let req = ChatRequest {
            system: "Be brief.".into(),
            ..req
        };
        let body: Value = serde_json::from_slice(&build(&e, &req, None).body).unwrap();
        assert_eq!(request_texts(&body).0, "Be brief.");
    }
}
