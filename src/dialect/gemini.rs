//! Google Gemini `streamGenerateContent?alt=sse`.
//!
//! Request: `POST {base_url}/v1beta/models/{model}:streamGenerateContent?alt=sse` with the key in
//! the `x-goog-api-key` header (never in the URL, so it cannot leak into logs of URLs). Each
//! event is a `GenerateContentResponse`: `candidates[0].content.parts[].text` (parts with
//! `thought: true` are reasoning), `finishReason` on the last candidate chunk, and
//! `usageMetadata` with `promptTokenCount`, `candidatesTokenCount`, `thoughtsTokenCount`
//! (counted apart from candidates) and `cachedContentTokenCount`. There is no end marker: the
//! stream ends at EOF; a `finishReason` is what marks a complete answer.
//!
//! Usage is kept exactly as reported: output = candidates, reasoning = thoughts. Thoughts are
//! billed as output: Gemini endpoints default to `reasoning_in_output = false`, so the billed
//! output is candidates + thoughts.

use super::sse::SseEvent;
use super::{truncate, ChatRequest, EventEffect, HttpRequest, StreamState, Usage};
use crate::config::{ApiKey, Endpoint};
use serde_json::Value;
use sit_core::observation::FailureClass;

pub fn build(endpoint: &Endpoint, req: &ChatRequest, key: Option<&ApiKey>) -> HttpRequest {
    let mut body = serde_json::json!({
        "contents": [{"role": "user", "parts": [{"text": req.user}]}],
        "generationConfig": {"maxOutputTokens": req.max_tokens, "temperature": 0},
    });
    // An empty system text is no system instruction (suite 1.1.0 frames some probes without one).
    if !req.system.is_empty() {
        body["systemInstruction"] = serde_json::json!({"parts": [{"text": req.system}]});
    }
    let mut headers = vec![
        ("content-type".to_string(), "application/json".to_string()),
        ("accept".to_string(), "text/event-stream".to_string()),
    ];
    if let Some(k) = key {
        headers.push(("x-goog-api-key".to_string(), k.expose().to_string()));
    }
    HttpRequest {
        url: format!(
            "{}/v1beta/models/{}:streamGenerateContent?alt=sse",
            endpoint.base_url, req.model
        ),
        headers,
        body: serde_json::to_vec(&body).expect("request serialises"),
    }
}

/// (system, user) of a request body this adapter built.
pub fn request_texts(body: &Value) -> (String, String) {
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    (
        s(&body["systemInstruction"]["parts"][0]["text"]),
        s(&body["contents"][0]["parts"][0]["text"]),
    )
}

fn classify(err: &Value) -> FailureClass {
    let status = err.get("status").and_then(|s| s.as_str()).unwrap_or("");
    let msg = err
        .get("message")
        .and_then(|s| s.as_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match status {
        "RESOURCE_EXHAUSTED" if msg.contains("quota") => FailureClass::Quota,
        "RESOURCE_EXHAUSTED" => FailureClass::RateLimited,
        "UNAVAILABLE" => FailureClass::Overloaded,
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
    if let Some(err) = v.get("error") {
        super::record_error(err, st, classify);
        return EventEffect::default();
    }
    if !v.is_object() {
        st.failure = Some((FailureClass::Malformed, "chunk is not a JSON object".into()));
        return EventEffect::default();
    }
    if st.server_model.is_none() {
        if let Some(m) = v.get("modelVersion").and_then(|m| m.as_str()) {
            st.server_model = Some(truncate(m, 200));
        }
    }
    let mut eff = EventEffect::default();
    if let Some(c) = v
        .get("candidates")
        .and_then(|c| c.as_array())
        .and_then(|c| c.first())
    {
        if c["content"].get("role").and_then(|r| r.as_str()).is_some() {
            st.role_seen = true;
        }
        if let Some(parts) = c["content"].get("parts").and_then(|p| p.as_array()) {
            for p in parts {
                let Some(t) = p.get("text").and_then(|t| t.as_str()) else {
                    continue;
                };
                if t.is_empty() {
                    continue;
                }
                eff.content = true;
                if p.get("thought").and_then(|x| x.as_bool()) == Some(true) {
                    st.reasoning_chars += t.chars().count() as u64;
                } else {
                    st.content_before_role |= !st.role_seen;
                    st.text.push_str(t);
                    eff.answer = true;
                }
            }
        }
        if let Some(f) = c.get("finishReason").and_then(|f| f.as_str()) {
            st.finish_reason = Some(
                match f {
                    "STOP" => "stop",
                    "MAX_TOKENS" => "length",
                    "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" => {
                        "content_filter"
                    }
                    other => other,
                }
                .to_string(),
            );
            // No end marker in this dialect: a finish reason completes the answer.
            st.done = true;
        }
    }
    if let Some(us) = v.get("usageMetadata").filter(|u| u.is_object()) {
        // Exactly as reported: candidatesTokenCount does not include thoughtsTokenCount; the
        // endpoint's convention (reasoning_in_output = false) bills them on top.
        st.usage = Some(Usage {
            input: u(us, "promptTokenCount"),
            output: u(us, "candidatesTokenCount"),
            reasoning: u(us, "thoughtsTokenCount"),
            cached: u(us, "cachedContentTokenCount"),
            total: u(us, "totalTokenCount"),
        });
    }
    eff
}

/// Detail of an error body and whether it is a quota error.
pub fn error_detail(body: &[u8]) -> (String, bool) {
    super::error_body(body, classify)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::dialect::data_event as ev;

    #[test]
    fn thoughts_are_reasoning_usage_counts_them_apart_and_finish_ends_the_answer() {
        let mut st = StreamState::default();
        let e1 = on_event(
            &ev(
                r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"let me see","thought":true}]}}],"modelVersion":"gemini-x"}"#,
            ),
            &mut st,
        );
        assert!(e1.content && !e1.answer);
        let e2 = on_event(
            &ev(r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"42"}]}}]}"#),
            &mut st,
        );
        assert!(e2.answer && !st.done);
        on_event(
            &ev(
                r#"{"candidates":[{"content":{"role":"model","parts":[{"text":""}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":12,"candidatesTokenCount":2,"thoughtsTokenCount":30,"totalTokenCount":44}}"#,
            ),
            &mut st,
        );
        assert!(st.done);
        assert_eq!(st.text, "42");
        assert_eq!(st.server_model.as_deref(), Some("gemini-x"));
        assert_eq!(st.finish_reason.as_deref(), Some("stop"));
        assert_eq!(
            st.usage,
            Some(Usage {
                input: Some(12),
                output: Some(2),
                reasoning: Some(30),
                cached: None,
                total: Some(44),
            })
        );
    }

    #[test]
    fn errors_and_limits_are_classified() {
        let mut st = StreamState::default();
        on_event(
            &ev(
                r#"{"error":{"code":429,"message":"Quota exceeded for metric","status":"RESOURCE_EXHAUSTED"}}"#,
            ),
            &mut st,
        );
        assert_eq!(st.failure.unwrap().0, FailureClass::Quota);
        let mut st = StreamState::default();
        on_event(
            &ev(
                r#"{"candidates":[{"content":{"role":"model","parts":[]},"finishReason":"MAX_TOKENS"}]}"#,
            ),
            &mut st,
        );
        assert_eq!(st.finish_reason.as_deref(), Some("length"));
    }
}
