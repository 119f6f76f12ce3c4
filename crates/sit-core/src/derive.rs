//! From recorded facts to an observation's figures: the one pure step shared by the worker
//! (as it records) and the auditor (as it replays).
//!
//! A dialect adapter turns the response bytes into a [`StreamState`]; [`derive`](fn@derive)
//! turns that state, the transport outcome, the timings and the price in force into the
//! failure class, the grade, the token triple, the cost and the delivered SIT. Nothing here
//! reads a clock, a socket or a file, so replaying the same facts gives the same figures on
//! any machine.

use crate::fixed::Pusd;
use crate::observation::{Failure, FailureClass, Timings, Tokens};
use crate::price::PriceEntry;
use crate::probes::{ProbeInstance, Tier};
use crate::{sit, tokenizer};

/// Answers longer than this are cut in the record, at a character boundary (the grade uses
/// the full text).
pub const ANSWER_CAP: usize = 64 * 1024;

/// Provider-reported usage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// Input tokens (cached ones included).
    pub input: Option<u64>,
    /// Output tokens, with or without reasoning as the endpoint's convention is (see
    /// [`Tokens::reasoning_in_output`]).
    pub output: Option<u64>,
    /// Reasoning tokens, when reported.
    pub reasoning: Option<u64>,
    /// The cached part of the input tokens.
    pub cached: Option<u64>,
    /// The total the provider reported (`total_tokens`, Gemini's `totalTokenCount`): its
    /// arithmetic says whether reasoning is counted in the output or apart
    /// ([`crate::sit::reasoning_from_totals`]).
    pub total: Option<u64>,
}

/// What an adapter learned from the stream so far.
#[derive(Debug, Clone, Default)]
pub struct StreamState {
    /// The answer text (visible content) so far.
    pub text: String,
    /// Characters of reasoning content seen (not part of the answer).
    pub reasoning_chars: u64,
    /// The usage the provider reported, if any.
    pub usage: Option<Usage>,
    /// The finish reason the provider gave (`stop`, `length`, `content_filter`, ...).
    pub finish_reason: Option<String>,
    /// The model name the server returned.
    pub server_model: Option<String>,
    /// The dialect's end marker was seen (`[DONE]`, `message_stop`, ...).
    pub done: bool,
    /// The assistant role was announced (OpenAI: `delta.role`).
    pub role_seen: bool,
    /// Content arrived before the role was announced (a streaming-conformance defect).
    pub content_before_role: bool,
    /// An in-stream failure (error event, malformed chunk): stop reading.
    pub failure: Option<(FailureClass, String)>,
    /// Anthropic: the cache-creation input tokens last reported (part of `usage.input`), so a
    /// later event restating only `input_tokens` keeps them.
    pub cache_creation: Option<u64>,
}

/// What follows from an attempt's stream and transport outcome: pure, so an auditor's replay
/// (`sit audit replay`) re-derives exactly what the worker recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derived {
    /// The attempt's failure (`None`: it succeeded).
    pub failure: Option<Failure>,
    /// Succeeded and graded correct.
    pub correct: bool,
    /// Within the tier's latency SLA.
    pub on_time: bool,
    /// The token triple and the billing basis.
    pub tokens: Tokens,
    /// The attempt's exact cost (pico-USD).
    pub cost: Pusd,
    /// The answer as recorded (cut at [`ANSWER_CAP`] bytes).
    pub answer: String,
    /// Delivered SIT: the probe's SIT size, or 0.
    pub delivered: u64,
}

/// Derive the recorded figures of an attempt. `transport` is the failure seen below the stream
/// (connect, timeouts, stall, HTTP status, body cap, UTF-8); stream-level failures (error
/// event, malformed, truncated, length, content filter, empty) are classified here.
#[allow(clippy::too_many_arguments)]
pub fn derive(
    inst: &ProbeInstance,
    tier: &Tier,
    system: &str,
    status: Option<u16>,
    transport: Option<Failure>,
    st: &StreamState,
    timings: &Timings,
    price: &PriceEntry,
    reasoning_in_output: Option<bool>,
) -> Derived {
    let fail = |class, detail: &str| {
        Some(Failure {
            class,
            detail: detail.into(),
            retry_after_ms: None,
        })
    };
    let failure = transport.or_else(|| {
        if let Some((class, detail)) = st.failure.clone() {
            fail(class, &detail)
        } else if !st.done {
            fail(
                FailureClass::Truncated,
                "stream ended without its end marker",
            )
        } else if st.finish_reason.as_deref() == Some("length") {
            fail(FailureClass::FinishLength, "answer cut at max_tokens")
        } else if st.finish_reason.as_deref() == Some("content_filter") {
            fail(
                FailureClass::ContentFilter,
                "answer withheld by a content filter",
            )
        } else if st.text.trim().is_empty() {
            fail(FailureClass::EmptyCompletion, "no answer text")
        } else {
            None
        }
    });
    let correct = failure.is_none()
        && inst
            .generated
            .grader
            .grade(&st.text, &inst.generated.expected);
    let on_time = sit::within_sla(timings, tier);
    let mut tokens = Tokens {
        usage_reported: st.usage.is_some(),
        ref_input: tokenizer::count(system) + inst.ref_prompt_tokens,
        ref_output: tokenizer::count(&st.text),
        reasoning_in_output,
        ..Default::default()
    };
    if let Some(u) = &st.usage {
        tokens.reported_input = u.input;
        tokens.reported_output = u.output;
        tokens.reported_reasoning = u.reasoning;
        tokens.reported_cached = u.cached;
        tokens.reported_total = u.total;
        tokens.reasoning_from_totals = sit::reasoning_from_totals(u);
    }
    // A request refused before any body (HTTP error, connect failure) is not billed.
    let billed_anything =
        st.usage.is_some() || (status.map(|s| s < 300).unwrap_or(false) && !st.text.is_empty());
    if billed_anything {
        sit::billed(&mut tokens);
    }
    let cost: Pusd = sit::cost(&tokens, price);
    let succeeded = failure.is_none();
    let mut answer = st.text.clone();
    if answer.len() > ANSWER_CAP {
        let mut end = ANSWER_CAP;
        while !answer.is_char_boundary(end) {
            end -= 1;
        }
        answer.truncate(end);
    }
    Derived {
        delivered: sit::delivered(inst.sit_size, succeeded, correct, on_time),
        failure,
        correct,
        on_time,
        tokens,
        cost,
        answer,
    }
}
