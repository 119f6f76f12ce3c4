//! OpenAI-compatible chat completions, streamed.
//!
//! Request: `POST {base_url}/chat/completions` with `stream: true` and
//! `stream_options.include_usage: true`, so the last chunk before `[DONE]` carries `usage`
//! (with empty `choices`). Reasoning models report `completion_tokens_details.reasoning_tokens`
//! inside `completion_tokens`; some servers stream reasoning text as `delta.reasoning_content`
//! or `delta.reasoning`. A role-only first chunk (`delta: {role: assistant, content: ""}`) is
//! not content and never starts the first-token clock.

use super::sse::SseEvent;
use super::{truncate, ChatRequest, EventEffect, HttpRequest, StreamState, Usage};
use crate::config::{ApiKey, Endpoint};
use serde_json::Value;
use sit_core::observation::FailureClass;

/// (system, user) of a request body this adapter built (system empty when it sent none).
pub fn request_texts(body: &Value) -> (String, String) {
    let of = |role: &str| {
        body["messages"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["role"] == role))
            .and_then(|m| m["content"].as_str())
            .unwrap_or("")
            .to_string()
    };
    (of("system"), of("user"))
}

pub fn build(endpoint: &Endpoint, req: &ChatRequest, key: Option<&ApiKey>) -> HttpRequest {
    // An empty system text is no system message (suite 1.1.0 frames some probes without one).
    let mut messages = Vec::new();
    if !req.system.is_empty() {
        messages.push(serde_json::json!({"role": "system", "content": req.system}));
    }
    messages.push(serde_json::json!({"role": "user", "content": req.user}));
    let body = serde_json::json!({
        "model": req.model,
        "messages": messages,
        "max_tokens": req.max_tokens,
        "temperature": 0,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    bearer_request(
        format!("{}/chat/completions", endpoint.base_url),
        &body,
        key,
    )
}

/// A streaming JSON POST with the key as a bearer token (OpenAI's chat completions and
/// Responses APIs).
pub(crate) fn bearer_request(url: String, body: &Value, key: Option<&ApiKey>) -> HttpRequest {
    let mut headers = vec![
        ("content-type".to_string(), "application/json".to_string()),
        ("accept".to_string(), "text/event-stream".to_string()),
    ];
    if let Some(k) = key {
        headers.push((
            "authorization".to_string(),
            format!("Bearer {}", k.expose()),
        ));
    }
    HttpRequest {
        url,
        headers,
        body: serde_json::to_vec(body).expect("request serialises"),
    }
}

/// The unsigned integer at `path`.
pub(crate) fn u(v: &Value, path: &[&str]) -> Option<u64> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_u64()
}

/// OpenAI's error classes (chat completions and Responses): by the error's type and code.
pub(crate) fn classify_error(err: &Value) -> FailureClass {
    let t = |k: &str| {
        err.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    let (typ, code) = (t("type"), t("code"));
    if typ.contains("overloaded") || code.contains("overloaded") {
        FailureClass::Overloaded
    } else if typ.contains("quota") || code.contains("quota") || typ.contains("billing") {
        FailureClass::Quota
    } else if typ.contains("rate_limit") || code.contains("rate_limit") {
        FailureClass::RateLimited
    } else {
        FailureClass::ErrorEvent
    }
}

/// Answer text arrived.
fn answer_text(t: &str, st: &mut StreamState, eff: &mut EventEffect) {
    if !t.is_empty() {
        st.content_before_role |= !st.role_seen;
        st.text.push_str(t);
        eff.content = true;
        eff.answer = true;
    }
}

/// Reasoning text arrived: content (it shows the model is working) but not the answer.
fn reasoning_text(t: &str, st: &mut StreamState, eff: &mut EventEffect) {
    if !t.is_empty() {
        st.reasoning_chars += t.chars().count() as u64;
        eff.content = true;
    }
}

/// Apply one event of the stream.
pub fn on_event(ev: &SseEvent, st: &mut StreamState) -> EventEffect {
    if ev.data.trim() == "[DONE]" {
        st.done = true;
        return EventEffect::default();
    }
    let Some(v) = super::event_json(ev, st) else {
        return EventEffect::default();
    };
    if let Some(err) = v.get("error") {
        super::record_error(err, st, classify_error);
        return EventEffect::default();
    }
    if !v.is_object() {
        st.failure = Some((FailureClass::Malformed, "chunk is not a JSON object".into()));
        return EventEffect::default();
    }
    if st.server_model.is_none() {
        if let Some(m) = v.get("model").and_then(|m| m.as_str()) {
            st.server_model = Some(truncate(m, 200));
        }
    }
    let mut eff = EventEffect::default();
    if let Some(choice) = v
        .get("choices")
        .and_then(|c| c.as_array())
        .and_then(|c| c.first())
    {
        if let Some(delta) = choice.get("delta") {
            if delta.get("role").and_then(|r| r.as_str()).is_some() {
                st.role_seen = true;
            }
            match delta.get("content") {
                Some(Value::String(t)) => answer_text(t, st, &mut eff),
                // Some providers stream content as typed parts: text parts are the answer,
                // thinking/reasoning parts are reasoning, anything else is not counted.
                Some(Value::Array(parts)) => {
                    for p in parts {
                        let text = |k: &str| p.get(k).and_then(|t| t.as_str()).unwrap_or("");
                        match p.get("type").and_then(|t| t.as_str()).unwrap_or("") {
                            "text" | "output_text" => answer_text(text("text"), st, &mut eff),
                            "thinking" | "reasoning" => {
                                // the thinking is a string, or itself a list of text parts
                                let mut t =
                                    [text("thinking"), text("reasoning"), text("text")].concat();
                                for k in ["thinking", "reasoning"] {
                                    let inner = p.get(k).and_then(|v| v.as_array());
                                    for q in inner.into_iter().flatten() {
                                        t.push_str(
                                            q.get("text").and_then(|x| x.as_str()).unwrap_or(""),
                                        );
                                    }
                                }
                                reasoning_text(&t, st, &mut eff);
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
            for k in ["reasoning_content", "reasoning"] {
                if let Some(t) = delta.get(k).and_then(|c| c.as_str()) {
                    reasoning_text(t, st, &mut eff);
                }
            }
        }
        if let Some(f) = choice.get("finish_reason").and_then(|f| f.as_str()) {
            st.finish_reason = Some(f.to_string());
        }
    }
    if let Some(us) = v.get("usage").filter(|u| u.is_object()) {
        st.usage = Some(Usage {
            input: u(us, &["prompt_tokens"]),
            output: u(us, &["completion_tokens"]),
            reasoning: u(us, &["completion_tokens_details", "reasoning_tokens"]),
            cached: u(us, &["prompt_tokens_details", "cached_tokens"]),
            total: u(us, &["total_tokens"]),
        });
    }
    eff
}

/// Detail of an error body and whether it says "quota".
pub fn error_detail(body: &[u8]) -> (String, bool) {
    super::error_body(body, classify_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::dialect::data_event as ev;

    #[test]
    fn content_before_the_role_is_noted_and_after_it_is_not() {
        let mut st = StreamState::default();
        on_event(&ev(r#"{"choices":[{"delta":{"content":"4"}}]}"#), &mut st);
        assert!(st.content_before_role);
        let mut st = StreamState::default();
        on_event(
            &ev(r#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#),
            &mut st,
        );
        on_event(&ev(r#"{"choices":[{"delta":{"content":"4"}}]}"#), &mut st);
        assert!(st.role_seen && !st.content_before_role);
    }

    #[test]
    fn role_only_and_empty_chunks_are_not_content() {
        let mut st = StreamState::default();
        let e = on_event(
            &ev(
                r#"{"model":"m1","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
            ),
            &mut st,
        );
        assert_eq!(e, EventEffect::default());
        let e = on_event(
            &ev(r#"{"choices":[{"delta":{"reasoning_content":"hmm"}}]}"#),
            &mut st,
        );
        assert_eq!(
            e,
            EventEffect {
                content: true,
                answer: false
            }
        );
        let e = on_event(&ev(r#"{"choices":[{"delta":{"content":"42"}}]}"#), &mut st);
        assert_eq!(
            e,
            EventEffect {
                content: true,
                answer: true
            }
        );
        on_event(
            &ev(r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#),
            &mut st,
        );
        on_event(
            &ev(
                r#"{"choices":[],"usage":{"prompt_tokens":30,"completion_tokens":12,"completion_tokens_details":{"reasoning_tokens":10},"prompt_tokens_details":{"cached_tokens":0}}}"#,
            ),
            &mut st,
        );
        on_event(&ev("[DONE]"), &mut st);
        assert_eq!(st.text, "42");
        assert_eq!(st.server_model.as_deref(), Some("m1"));
        assert_eq!(st.finish_reason.as_deref(), Some("stop"));
        assert_eq!(
            st.usage,
            Some(Usage {
                input: Some(30),
                output: Some(12),
                reasoning: Some(10),
                cached: Some(0),
                total: None,
            })
        );
        assert!(st.done && st.failure.is_none());
    }

    #[test]
    fn error_after_200_and_malformed_chunks_are_failures() {
        let mut st = StreamState::default();
        on_event(
            &ev(r#"{"error":{"message":"Overloaded","type":"overloaded_error"}}"#),
            &mut st,
        );
        assert_eq!(st.failure.as_ref().unwrap().0, FailureClass::Overloaded);
        let mut st = StreamState::default();
        on_event(&ev(r#"{"choices":[{"delta":{"content":"#), &mut st);
        assert_eq!(st.failure.as_ref().unwrap().0, FailureClass::Malformed);
        let mut st = StreamState::default();
        on_event(&ev("[1,2]"), &mut st);
        assert_eq!(st.failure.as_ref().unwrap().0, FailureClass::Malformed);
    }
}
