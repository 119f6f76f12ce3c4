//! Provider dialects: how a request is built and how a streamed answer is read.
//!
//! Each adapter turns dialect events into one accumulator, [`StreamState`]: text, reasoning,
//! usage, finish reason, end marker, in-stream error. The worker owns the clock and the socket;
//! adapters are pure functions of the bytes they are given, so captured streams can be replayed
//! through them in tests and audits.

pub mod anthropic;
pub mod gemini;
pub mod openai;
pub mod responses;
pub mod sse;

use crate::config::{ApiKey, Dialect, Endpoint};
use sit_core::observation::FailureClass;

/// What to send.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub model: String,
    pub system: String,
    pub user: String,
    pub max_tokens: u32,
}

/// A built HTTP request (the key is added by the worker, never stored).
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

use sit_core::derive::{StreamState, Usage};

/// What one event contributed, for timing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventEffect {
    /// It carried content of any kind (answer or reasoning).
    pub content: bool,
    /// It carried answer text.
    pub answer: bool,
}

impl Dialect {
    /// Build the streaming request for this dialect; `None` when this build has no adapter
    /// for it (the caller reports the endpoint as skipped; see [`Dialect::supported`]).
    pub fn build(
        self,
        endpoint: &Endpoint,
        req: &ChatRequest,
        key: Option<&ApiKey>,
    ) -> Option<HttpRequest> {
        Some(match self {
            Dialect::Openai => openai::build(endpoint, req, key),
            Dialect::Anthropic => anthropic::build(endpoint, req, key),
            Dialect::Gemini => gemini::build(endpoint, req, key),
            Dialect::OpenaiResponses => responses::build(endpoint, req, key),
        })
    }

    /// Whether this build can probe the dialect (all three can).
    pub fn supported(self) -> bool {
        true
    }

    /// (system, user) messages of a request body built by this dialect (for replay).
    pub fn request_texts(self, body: &serde_json::Value) -> (String, String) {
        match self {
            Dialect::Openai => openai::request_texts(body),
            Dialect::Anthropic => anthropic::request_texts(body),
            Dialect::Gemini => gemini::request_texts(body),
            Dialect::OpenaiResponses => responses::request_texts(body),
        }
    }

    /// Apply one SSE event to the state.
    pub fn on_event(self, ev: &sse::SseEvent, st: &mut StreamState) -> EventEffect {
        match self {
            Dialect::Openai => openai::on_event(ev, st),
            Dialect::Anthropic => anthropic::on_event(ev, st),
            Dialect::Gemini => gemini::on_event(ev, st),
            Dialect::OpenaiResponses => responses::on_event(ev, st),
        }
    }

    /// Re-derive the stream state from the raw body bytes of an attempt, exactly as the worker
    /// derived it while streaming: events are applied in order until the end marker or an
    /// in-stream failure. `Err` when the bytes are not valid UTF-8 (recorded as such).
    pub fn replay(self, raw: &[u8]) -> Result<StreamState, sse::SseError> {
        let mut dec = sse::SseDecoder::new();
        let mut events = Vec::new();
        dec.feed(raw, &mut events)?;
        dec.finish(&mut events)?;
        let mut st = StreamState::default();
        for ev in &events {
            self.on_event(ev, &mut st);
            if st.failure.is_some() || st.done {
                break;
            }
        }
        Ok(st)
    }

    /// Parse a non-streamed error body (HTTP status >= 400) for a short detail and whether it
    /// is a quota error. Never includes request content.
    pub fn error_detail(self, body: &[u8]) -> (String, bool) {
        match self {
            Dialect::Openai => openai::error_detail(body),
            Dialect::Anthropic => anthropic::error_detail(body),
            Dialect::Gemini => gemini::error_detail(body),
            Dialect::OpenaiResponses => responses::error_detail(body),
        }
    }
}

/// The JSON of one event's data: None for an empty event, or after recording a malformed one
/// as the attempt's failure.
pub(crate) fn event_json(ev: &sse::SseEvent, st: &mut StreamState) -> Option<serde_json::Value> {
    let data = ev.data.trim();
    if data.is_empty() {
        return None;
    }
    match serde_json::from_str(data) {
        Ok(v) => Some(v),
        Err(e) => {
            st.failure = Some((
                FailureClass::Malformed,
                format!("event data is not JSON: {e}"),
            ));
            None
        }
    }
}

/// Record an in-stream error object (`{"message": ...}`) with the dialect's classification.
pub(crate) fn record_error(
    err: &serde_json::Value,
    st: &mut StreamState,
    classify: fn(&serde_json::Value) -> FailureClass,
) {
    let msg = err
        .get("message")
        .and_then(|m| m.as_str())
        .unwrap_or("error event");
    st.failure = Some((classify(err), truncate(msg, 200)));
}

/// Short detail of a non-streamed error body and whether it is a quota (billing) error, with
/// the dialect's classification. Never includes request content.
pub(crate) fn error_body(
    body: &[u8],
    classify: fn(&serde_json::Value) -> FailureClass,
) -> (String, bool) {
    let text = String::from_utf8_lossy(&body[..body.len().min(4096)]);
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(v) => {
            let err = v.get("error").unwrap_or(&v);
            let msg = err
                .get("message")
                .and_then(|m| m.as_str())
                .unwrap_or("")
                .to_string();
            let quota =
                classify(err) == FailureClass::Quota || msg.to_ascii_lowercase().contains("quota");
            (truncate(&msg, 200), quota)
        }
        Err(_) => (truncate(text.trim(), 200), false),
    }
}

/// An event with only data (tests).
#[cfg(test)]
pub(crate) fn data_event(data: &str) -> sse::SseEvent {
    sse::SseEvent {
        data: data.into(),
        ..Default::default()
    }
}

/// Shorten `s` to at most `n` bytes (on a character boundary), marking the cut.
pub(crate) fn truncate(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let mut end = n;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    const DIALECTS: [Dialect; 4] = [
        Dialect::Openai,
        Dialect::Anthropic,
        Dialect::Gemini,
        Dialect::OpenaiResponses,
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Arbitrary bytes into every adapter: an error or a state, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            for d in DIALECTS {
                let _ = d.replay(&bytes);
                let _ = d.error_detail(&bytes);
            }
        }

        /// Arbitrary JSON-ish events (the shapes adapters look into, with wrong types and
        /// missing members) never panic either.
        #[test]
        fn arbitrary_json_events_never_panic(
            keys in proptest::collection::vec(prop_oneof![
                Just("type"), Just("choices"), Just("delta"), Just("usage"), Just("message"),
                Just("candidates"), Just("usageMetadata"), Just("error"), Just("content"),
                Just("parts"), Just("text"), Just("finishReason"), Just("stop_reason"),
            ], 1..6),
            vals in proptest::collection::vec(prop_oneof![
                Just("null"), Just("1"), Just("-5"), Just("1.5e400"), Just("\"x\""), Just("[]"),
                Just("{}"), Just("[{}]"), Just("\"message_start\""), Just("\"content_block_delta\""),
                Just("\"message_delta\""), Just("\"error\""), Just("[{\"delta\":{}}]"),
                Just("{\"type\":\"text_delta\",\"text\":5}"),
            ], 1..6),
        ) {
            let body: Vec<String> = keys.iter().zip(vals.iter().cycle()).map(|(k, v)| format!("\"{k}\":{v}")).collect();
            let stream = format!("data: {{{}}}\n\ndata: [DONE]\n\n", body.join(","));
            for d in DIALECTS {
                let _ = d.replay(stream.as_bytes());
            }
        }
    }
}
