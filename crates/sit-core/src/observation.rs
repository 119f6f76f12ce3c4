//! The observation: one probe attempt, as recorded.
//!
//! An observation holds the facts of an attempt (what was asked, what came back, when, what
//! the provider reported) and the SIT figures derived from them (cost, size, delivered). It has
//! no floating-point fields: its JSON bytes are hashed into the chain and must be identical
//! wherever they are re-serialised.

use crate::fixed::Pusd;
use crate::price::PriceEntry;
use serde::{Deserialize, Serialize};

/// The closed failure taxonomy. Every failed attempt has exactly one class.
///
/// Effect on the index (see index-methodology.md): every class counts as a failed attempt in
/// availability and delivers 0 SIT; whatever the provider billed before the failure still
/// counts as cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// TCP/TLS connection could not be made.
    Connect,
    /// The connection closed (or was reset) after the request was sent and before any
    /// response headers: often a kept-alive connection the server dropped under load.
    ConnectionClosed,
    /// No response headers within the first-token timeout.
    TimeoutHeaders,
    /// Headers came, but no answer token within the first-token timeout.
    TimeoutFirstToken,
    /// The whole response took longer than the total timeout.
    TimeoutTotal,
    /// The body stopped: no bytes for the stall timeout.
    Stall,
    /// 401 or 403.
    Auth,
    /// 402, or a quota / billing error (never retried).
    Quota,
    /// 404: model or path not found.
    ModelNotFound,
    /// 400, 413 or 422: the request was refused (often context length).
    BadRequest,
    /// 429 (Retry-After recorded).
    RateLimited,
    /// 500-599 except 529.
    ServerError,
    /// 529, or an `overloaded` error.
    Overloaded,
    /// An error object arrived inside the stream after HTTP 200.
    ErrorEvent,
    /// The stream ended without its end marker.
    Truncated,
    /// The stream completed with no answer text.
    EmptyCompletion,
    /// The answer was cut by the token limit (`finish_reason = length`).
    FinishLength,
    /// The answer was withheld by a content filter.
    ContentFilter,
    /// A chunk or body that is not the dialect's JSON.
    Malformed,
    /// The body exceeded the size cap.
    BodyTooLarge,
    /// The body is not valid UTF-8.
    InvalidUtf8,
    /// Any other HTTP status.
    OtherHttp,
    /// Not an attempt: a scheduled probe whose time passed while the service was down (or
    /// before it started), recorded so the commitment check accounts for every scheduled probe.
    /// It counts as no attempt in the index (it does not hurt the endpoint's availability).
    /// Not in [`FailureClass::ALL`], which lists what a provider's response can produce.
    Missed,
}

impl FailureClass {
    /// Every class, in declaration order (the fixture suite proves each one can be produced).
    pub const ALL: [FailureClass; 22] = [
        FailureClass::Connect,
        FailureClass::ConnectionClosed,
        FailureClass::TimeoutHeaders,
        FailureClass::TimeoutFirstToken,
        FailureClass::TimeoutTotal,
        FailureClass::Stall,
        FailureClass::Auth,
        FailureClass::Quota,
        FailureClass::ModelNotFound,
        FailureClass::BadRequest,
        FailureClass::RateLimited,
        FailureClass::ServerError,
        FailureClass::Overloaded,
        FailureClass::ErrorEvent,
        FailureClass::Truncated,
        FailureClass::EmptyCompletion,
        FailureClass::FinishLength,
        FailureClass::ContentFilter,
        FailureClass::Malformed,
        FailureClass::BodyTooLarge,
        FailureClass::InvalidUtf8,
        FailureClass::OtherHttp,
    ];

    /// The class's name as serialised (`snake_case`, e.g. `timeout_first_token`).
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Connect => "connect",
            FailureClass::ConnectionClosed => "connection_closed",
            FailureClass::TimeoutHeaders => "timeout_headers",
            FailureClass::TimeoutFirstToken => "timeout_first_token",
            FailureClass::TimeoutTotal => "timeout_total",
            FailureClass::Stall => "stall",
            FailureClass::Auth => "auth",
            FailureClass::Quota => "quota",
            FailureClass::ModelNotFound => "model_not_found",
            FailureClass::BadRequest => "bad_request",
            FailureClass::RateLimited => "rate_limited",
            FailureClass::ServerError => "server_error",
            FailureClass::Overloaded => "overloaded",
            FailureClass::ErrorEvent => "error_event",
            FailureClass::Truncated => "truncated",
            FailureClass::EmptyCompletion => "empty_completion",
            FailureClass::FinishLength => "finish_length",
            FailureClass::ContentFilter => "content_filter",
            FailureClass::Malformed => "malformed",
            FailureClass::BodyTooLarge => "body_too_large",
            FailureClass::InvalidUtf8 => "invalid_utf8",
            FailureClass::OtherHttp => "other_http",
            FailureClass::Missed => "missed",
        }
    }
}

/// A failure with its class and a short, key-free detail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The failure's class.
    pub class: FailureClass,
    /// What happened, in a few words (never a credential).
    pub detail: String,
    /// Parsed Retry-After, when the server sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

/// Monotonic timings in nanoseconds since the request was handed to the HTTP client.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timings {
    /// The response headers.
    pub headers_ns: Option<u64>,
    /// First byte of the response body.
    pub first_byte_ns: Option<u64>,
    /// First content of any kind (reasoning included). Role-only and empty chunks never count.
    pub first_content_ns: Option<u64>,
    /// First answer token (visible text).
    pub first_token_ns: Option<u64>,
    /// Last byte of the response body (end to end).
    pub last_byte_ns: Option<u64>,
    /// Arrival time (first byte) of every SSE event, in order.
    pub event_ns: Vec<u64>,
    /// Whether the request went out on a pooled connection (`true`) or on one opened for it
    /// (`false`); absent when unknown (no response, or older records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm: Option<bool>,
    /// Cold connections only: TCP connect time (DNS included), ns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_ns: Option<u64>,
    /// Cold TLS connections only: TLS handshake time, ns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ns: Option<u64>,
    /// Where the received-byte instants (headers, body bytes, events, first token, last byte)
    /// came from: the kernel's receive stamps, the monotonic clock when the worker noticed the
    /// bytes, or some of each. Absent in records made before the worker read kernel stamps
    /// (all monotonic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rx_clock: Option<RxClock>,
    /// The source of `first_token_ns` alone (absent with no first token, or in older records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_token_clock: Option<RxClock>,
}

/// The clock a received-byte instant was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RxClock {
    /// The kernel's receive timestamp of the packet (`SO_TIMESTAMPNS`), as an age subtracted
    /// from the monotonic clock.
    Kernel,
    /// The monotonic clock when the worker's task noticed the bytes (the kernel gave no stamp).
    Monotonic,
    /// Some instants from each (only in `rx_clock`).
    Mixed,
}

/// The token triple and the billing basis.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    /// Whether the provider reported usage at all.
    pub usage_reported: bool,
    /// Input tokens exactly as the provider reported them (cached ones included).
    pub reported_input: Option<u64>,
    /// Output tokens exactly as the provider reported them (with reasoning or without, as its
    /// convention is: see `reasoning_in_output`).
    pub reported_output: Option<u64>,
    /// Reasoning tokens as the provider reported them.
    pub reported_reasoning: Option<u64>,
    /// Cached input tokens as the provider reported them.
    pub reported_cached: Option<u64>,
    /// Reference-tokenizer count of the request's message text (system nonce + prompt).
    pub ref_input: u64,
    /// Reference-tokenizer count of the returned answer text.
    pub ref_output: u64,
    /// Billed input tokens, cached ones included.
    pub billed_input: u64,
    /// Output tokens billed: the reported output, plus the reported reasoning where the
    /// provider reports reasoning apart (`reasoning_in_output = false`).
    pub billed_output: u64,
    /// The cached part of `billed_input` (billed at the cached price).
    pub billed_cached: u64,
    /// The endpoint's convention: `true` when its reported output includes reasoning tokens
    /// (OpenAI, Anthropic), `false` when reasoning is reported apart and billed on top
    /// (Gemini's thoughts, xAI). Absent in records made before the convention was per
    /// endpoint: their billed output is the reported output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_in_output: Option<bool>,
    /// The total the provider reported, when it reported one (absent in records made before
    /// totals were read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_total: Option<u64>,
    /// What the reported total's own arithmetic says of reasoning: `false` when the total is
    /// input + output + reasoning (reasoning counted apart, billed on top), `true` when it is
    /// input + output (reasoning inside the output); absent when it says nothing (no total, no
    /// reasoning reported, or neither sum). When present it is the billing basis, whatever
    /// the configured convention (`reasoning_in_output`); see [`Tokens::convention_conflict`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_from_totals: Option<bool>,
}

impl Tokens {
    /// The stream's totals say the opposite of the endpoint's configured convention: a
    /// provider that changed its accounting, or a configuration that is wrong. Billed by the
    /// totals; counted in the service's metrics.
    pub fn convention_conflict(&self) -> bool {
        matches!(
            (self.reasoning_from_totals, self.reasoning_in_output),
            (Some(a), Some(b)) if a != b
        )
    }
}

/// One probe attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// Position in the store's hash chain (assigned by the store).
    pub seq: u64,
    /// blake3 (hex) of the previous stored observation's bytes (assigned by the store).
    pub prev_hash: String,
    /// The worker that made the attempt: each worker's records form their own hash chain
    /// (`prev_hash` is the hash of that worker's previous record). Omitted when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub worker: String,
    /// The endpoint's id (`providers.toml`).
    pub endpoint: String,
    /// The endpoint's provider.
    pub provider: String,
    /// The model name requested.
    pub model: String,
    /// The API dialect spoken (`openai`, `anthropic`, ...).
    pub dialect: String,
    /// The endpoint's region, as configured.
    pub region: String,
    /// The tier probed (`t1`, `t2`, `t3`).
    pub tier: String,
    /// The probe family's id (`t1.arith`, ...).
    pub family: String,
    /// The family's generator version under the suite ([`crate::probes::Suite::family_version`]).
    pub family_version: u32,
    /// The probe's seed: with the family and the suite it fixes the prompt.
    pub seed: u64,
    /// The probe's nonce as scheduled (a retry adds `-r<n>` when it is sent).
    pub nonce: String,
    /// The probe suite's hash.
    pub suite_hash: String,
    /// When the request was sent, UTC milliseconds, by `clock`.
    pub at_ms: i64,
    /// The clock `at_ms` was read from (its description).
    pub clock: String,
    /// 0 for a first try, n for the n-th retry of the same probe.
    pub retry: u32,
    /// The response's HTTP status (`None`: no response).
    pub http_status: Option<u16>,
    /// The failure (`None`: the attempt succeeded).
    pub failure: Option<Failure>,
    /// When the response's parts arrived.
    pub timings: Timings,
    /// The answer text (capped at 64 KiB).
    pub answer: String,
    /// The finish reason the provider gave.
    pub finish_reason: Option<String>,
    /// The model name the server returned.
    pub server_model: Option<String>,
    /// Succeeded and graded correct.
    pub correct: bool,
    /// Met the tier's latency SLA (time to first token and end to end).
    pub within_sla: bool,
    /// The token triple and the billing basis.
    pub tokens: Tokens,
    /// The price schedule entry in force at `at_ms` (None when the endpoint had none yet).
    pub price: Option<PriceEntry>,
    /// The attempt's cost in pico-USD, from `price`.
    pub cost: Pusd,
    /// The probe's SIT size: `w_in * ref_prompt_tokens + w_out * budget_out`.
    pub sit_size: u64,
    /// SIT delivered: `sit_size` when correct and on time, else 0.
    pub delivered_sit: u64,
    /// The raw exchange, so an auditor can re-derive the answer, usage, grade and cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
    /// Content arrived before the assistant role (streaming conformance; omitted when false,
    /// so records without the defect keep their bytes).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub content_before_role: bool,
    /// The price book version the attempt was probed under (methodology 1.4.0 costs each
    /// attempt at determination time; `price` and `cost` are then what was known at probe
    /// time). Omitted when unknown, so older records keep their bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_version: Option<u64>,
    /// The model weights the endpoint serves (`providers.toml` `weights`; e.g. one open
    /// model behind several hosts). Omitted when the endpoint names none: then `model`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<String>,
    /// The vantage point the attempt was made from (a probe network worker's `--vantage`);
    /// absent for the embedded worker of `sit run`. Latency and SLA are judged here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vantage: Option<String>,
    /// Where a collected record came from: its seq and hash in the worker's own chain, as the
    /// worker signed it (the collector's store gives it a new seq and links it into its own
    /// copy of that worker's chain). Absent for records made where they are stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
}

/// A collected record's position in the chain of the worker that made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The record's seq in the worker's chain.
    pub seq: u64,
    /// blake3 of the record's bytes at the worker, hex.
    pub hash: String,
}

/// What a redacted secret is replaced with.
pub const REDACTED: &str = "<redacted>";

impl Observation {
    /// Whether `bytes` is exactly this record's serialisation (`serde_json::to_vec`), found
    /// without making one: the serialiser's output is compared as it is written and stops at
    /// the first difference. How the collector knows a worker's bytes can be stored as they
    /// came.
    pub fn serialises_to(&self, bytes: &[u8]) -> bool {
        struct Same<'a>(&'a [u8]);
        impl std::io::Write for Same<'_> {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                match self.0.strip_prefix(buf) {
                    Some(rest) => {
                        self.0 = rest;
                        Ok(buf.len())
                    }
                    None => Err(std::io::ErrorKind::InvalidData.into()),
                }
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut same = Same(bytes);
        serde_json::to_writer(&mut same, self).is_ok() && same.0.is_empty()
    }

    /// Replace every occurrence of `secret` in every string field of the record with
    /// [`REDACTED`]: the answer, model names, finish reason, failure detail, the request in the
    /// evidence, and any string field added later. It walks the record's JSON form rather
    /// than a list of fields, so a new field cannot be forgotten. (The compressed response
    /// evidence cannot be searched here: the worker redacts the raw bytes before compressing
    /// them.) Returns whether anything was replaced.
    pub fn redact(&mut self, secret: &str) -> bool {
        if secret.is_empty() {
            return false;
        }
        /// Replace in every string; whether any held the secret.
        fn walk(v: &mut serde_json::Value, secret: &str) -> bool {
            match v {
                serde_json::Value::String(s) if s.contains(secret) => {
                    *s = s.replace(secret, REDACTED);
                    true
                }
                serde_json::Value::Array(a) => {
                    a.iter_mut().fold(false, |hit, x| walk(x, secret) | hit)
                }
                serde_json::Value::Object(o) => {
                    o.values_mut().fold(false, |hit, x| walk(x, secret) | hit)
                }
                _ => false,
            }
        }
        // One pass over the record's JSON form; it is turned back into a record only when a
        // field held the secret (rare), so the common case costs one serialisation.
        let mut v = serde_json::to_value(&*self).expect("an observation serialises");
        if !walk(&mut v, secret) {
            return false;
        }
        match serde_json::from_value(v) {
            Ok(o) => {
                *self = o;
                true
            }
            Err(_) => false,
        }
    }

    /// The attempt completed with an answer (availability numerator).
    pub fn succeeded(&self) -> bool {
        self.failure.is_none()
    }

    /// A scheduled probe that was never sent ([`FailureClass::Missed`]).
    pub fn missed(&self) -> bool {
        self.failure
            .as_ref()
            .is_some_and(|f| f.class == FailureClass::Missed)
    }
}

/// The raw evidence of an attempt: what was sent and every body byte that came back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// The request body as sent (JSON). Credentials travel in headers and are never in it.
    pub request: String,
    /// The response body bytes as received (up to the body cap), deflate-compressed, base64.
    pub response_deflate_b64: String,
    /// Length of the uncompressed response body.
    pub response_bytes: u64,
    /// Why the response body is not kept (then it is empty and the record's figures are
    /// taken as recorded): the provider echoed the API key in text split across stream
    /// events, where no byte-level redaction can find it, and keeping the body would keep
    /// the key. Absent in every other record, so their bytes are unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withheld: Option<String>,
}

impl Evidence {
    /// Evidence of `request` (read as UTF-8, invalid bytes replaced) and the `response` body
    /// bytes (deflate-compressed, base64).
    pub fn new(request: &[u8], response: &[u8]) -> Evidence {
        use base64::Engine;
        use std::io::Write;
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(6));
        z.write_all(response).expect("writing to memory");
        let packed = z.finish().expect("writing to memory");
        Evidence {
            request: String::from_utf8_lossy(request).into_owned(),
            response_deflate_b64: base64::engine::general_purpose::STANDARD.encode(packed),
            response_bytes: response.len() as u64,
            withheld: None,
        }
    }

    /// Evidence whose response body is withheld, with the reason (see [`Evidence::withheld`]).
    pub fn withheld(request: &[u8], why: &str) -> Evidence {
        Evidence {
            withheld: Some(why.to_string()),
            ..Evidence::new(request, b"")
        }
    }

    /// The response body bytes, checked against the recorded length.
    pub fn response(&self) -> Result<Vec<u8>, String> {
        use base64::Engine;
        use std::io::Read;
        let packed = base64::engine::general_purpose::STANDARD
            .decode(&self.response_deflate_b64)
            .map_err(|e| format!("response evidence is not base64: {e}"))?;
        let mut out = Vec::with_capacity(self.response_bytes as usize);
        flate2::read::DeflateDecoder::new(&packed[..])
            .take(self.response_bytes + 1)
            .read_to_end(&mut out)
            .map_err(|e| format!("response evidence does not inflate: {e}"))?;
        if out.len() as u64 != self.response_bytes {
            return Err(format!(
                "response evidence holds {} bytes, the record says {}",
                out.len(),
                self.response_bytes
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod evidence_tests {
    use super::Evidence;

    #[test]
    fn evidence_round_trips_and_detects_a_wrong_length() {
        let body = b"data: {\"choices\":[]}\n\ndata: [DONE]\n\n".repeat(20);
        let e = Evidence::new(b"{}", &body);
        assert!(e.response_deflate_b64.len() < body.len());
        assert_eq!(e.response().unwrap(), body);
        let mut bad = e.clone();
        bad.response_bytes -= 1;
        assert!(bad.response().is_err());
        assert!(Evidence::new(b"{}", b"").response().unwrap().is_empty());
    }
}

#[cfg(test)]
mod class_tests {
    use super::FailureClass;

    #[test]
    fn all_lists_every_class_once_with_its_serde_name() {
        // Adding a variant breaks this exhaustive match until ALL (and the fixture suite in
        // tests/failure_classes.rs) know about it.
        fn known(c: FailureClass) -> bool {
            use FailureClass::*;
            match c {
                Connect | ConnectionClosed | TimeoutHeaders | TimeoutFirstToken | TimeoutTotal
                | Stall | Auth | Quota | ModelNotFound | BadRequest | RateLimited | ServerError
                | Overloaded | ErrorEvent | Truncated | EmptyCompletion | FinishLength
                | ContentFilter | Malformed | BodyTooLarge | InvalidUtf8 | OtherHttp => true,
                Missed => false, // no response produces it: not in ALL
            }
        }
        let mut names: Vec<&str> = FailureClass::ALL.iter().map(|c| c.as_str()).collect();
        for c in FailureClass::ALL {
            assert!(known(c));
            assert_eq!(
                serde_json::to_value(c).unwrap(),
                serde_json::Value::from(c.as_str())
            );
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), FailureClass::ALL.len());
    }
}

/// A plausible recorded observation (benchmarks and unit tests start from it).
#[doc(hidden)]
pub fn sample() -> Observation {
    Observation {
        seq: 0,
        prev_hash: String::new(),
        worker: "w1".into(),
        endpoint: "sim-atlas".into(),
        provider: "sim-atlas".into(),
        model: "sim-atlas-chat".into(),
        dialect: "openai".into(),
        region: "loopback".into(),
        tier: "t1".into(),
        family: "t1.arith".into(),
        family_version: 1,
        seed: 0,
        nonce: "0123456789abcdef".into(),
        suite_hash: "0".repeat(64),
        at_ms: 0,
        clock: "system".into(),
        retry: 0,
        http_status: Some(200),
        failure: None,
        timings: Timings {
            headers_ns: Some(1_000_000),
            first_byte_ns: Some(1_100_000),
            first_content_ns: Some(120_000_000),
            first_token_ns: Some(120_000_000),
            last_byte_ns: Some(150_000_000),
            event_ns: vec![
                1_100_000,
                120_000_000,
                130_000_000,
                140_000_000,
                150_000_000,
            ],
            ..Default::default()
        },
        answer: "1136".into(),
        finish_reason: Some("stop".into()),
        server_model: Some("sim-atlas-chat".into()),
        correct: true,
        within_sla: true,
        tokens: Tokens {
            usage_reported: true,
            reported_input: Some(40),
            reported_output: Some(2),
            ref_input: 40,
            ref_output: 2,
            billed_input: 40,
            billed_output: 2,
            ..Default::default()
        },
        price: None,
        cost: crate::fixed::Pusd(7_200_000),
        sit_size: 80,
        delivered_sit: 80,
        evidence: None,
        content_before_role: false,
        price_version: None,
        weights: None,
        vantage: None,
        origin: None,
    }
}

#[cfg(test)]
mod serialises_to_tests {
    #[test]
    fn serialises_to_is_true_only_for_the_exact_serialisation() {
        let mut o = super::sample();
        o.answer = "a \"quoted\" answer\nwith é and \u{1}".into();
        let bytes = serde_json::to_vec(&o).unwrap();
        assert!(o.serialises_to(&bytes));
        assert!(!o.serialises_to(&bytes[..bytes.len() - 1]), "cut short");
        let mut longer = bytes.clone();
        longer.push(b' ');
        assert!(!o.serialises_to(&longer), "trailing bytes");
        let spaced = serde_json::to_vec_pretty(&o).unwrap();
        assert!(!o.serialises_to(&spaced), "same value, other form");
        let mut other = o.clone();
        other.seq += 1;
        assert!(!other.serialises_to(&bytes), "another value");
    }
}
