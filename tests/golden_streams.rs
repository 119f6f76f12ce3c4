//! Golden captured streams, one per dialect (and, since issue 13, one per shape real providers
//! send that the worker once parsed wrong, written from the providers' API references): OpenAI and Anthropic recorded from the real
//! llama-server with SmolLM2 (tests/golden/streams/*-llama.sse), Gemini from the simulator
//! (gemini-sim.sse). Each is parsed by its adapter, fed whole and split at every byte, to the
//! text, usage, finish and first-token event that an independent reading of the file gives.

use sit::config::Dialect;
use sit::dialect::sse::SseDecoder;
use sit_core::derive::{StreamState, Usage};
use std::path::Path;

fn capture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden/streams")
            .join(name),
    )
    .unwrap()
}

/// The JSON payloads of the `data:` lines, read without the project's decoder.
fn payloads(bytes: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8(bytes.to_vec())
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

/// Feed `bytes` in two pieces split at `at`; returns the state and the index of the first
/// event that carried answer text.
fn parse(d: Dialect, bytes: &[u8], at: usize) -> (StreamState, Option<usize>) {
    let mut dec = SseDecoder::new();
    let mut events = Vec::new();
    dec.feed(&bytes[..at], &mut events).unwrap();
    dec.feed(&bytes[at..], &mut events).unwrap();
    dec.finish(&mut events).unwrap();
    let mut st = StreamState::default();
    let mut first = None;
    for (i, ev) in events.iter().enumerate() {
        let eff = d.on_event(ev, &mut st);
        if eff.answer && first.is_none() {
            first = Some(i);
        }
        if st.done || st.failure.is_some() {
            break;
        }
    }
    (st, first)
}

fn check(d: Dialect, file: &str, text: String, usage: Usage, first_answer_event: usize) {
    let bytes = capture(file);
    for at in 0..=bytes.len() {
        let (st, first) = parse(d, &bytes, at);
        assert_eq!(st.text, text, "{file} split at {at}");
        assert_eq!(st.usage.as_ref(), Some(&usage), "{file} split at {at}");
        assert_eq!(st.finish_reason.as_deref(), Some("stop"), "{file}");
        assert!(
            st.done && st.failure.is_none() && !st.content_before_role,
            "{file}"
        );
        assert_eq!(
            first,
            Some(first_answer_event),
            "{file}: first answer event"
        );
    }
    // The whole-body replay used by auditors agrees.
    let st = d.replay(&bytes).unwrap();
    assert_eq!((st.text, st.usage), (text, Some(usage)));
}

#[test]
fn openai_stream_from_llama_server() {
    let p = payloads(&capture("openai-llama.sse"));
    let text: String = p
        .iter()
        .filter_map(|v| v["choices"][0]["delta"]["content"].as_str())
        .collect();
    // The role-only first chunk (content "") is not the first token.
    let first = p
        .iter()
        .position(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|c| !c.is_empty())
        })
        .unwrap();
    assert!(first >= 1, "llama-server opens with a role-only chunk");
    let last = p.last().unwrap();
    let usage = Usage {
        input: last["usage"]["prompt_tokens"].as_u64(),
        output: last["usage"]["completion_tokens"].as_u64(),
        reasoning: None,
        cached: last["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64(),
        total: last["usage"]["total_tokens"].as_u64(),
    };
    assert_eq!((usage.input, usage.output), (Some(40), Some(12)));
    check(Dialect::Openai, "openai-llama.sse", text, usage, first);
}

#[test]
fn anthropic_stream_from_llama_server() {
    let p = payloads(&capture("anthropic-llama.sse"));
    let text: String = p
        .iter()
        .filter(|v| v["delta"]["type"] == "text_delta")
        .filter_map(|v| v["delta"]["text"].as_str())
        .collect();
    let first = p
        .iter()
        .position(|v| v["delta"]["type"] == "text_delta")
        .unwrap();
    let start = &p[0]["message"]["usage"];
    let output = p
        .iter()
        .rev()
        .filter(|v| v["type"] == "message_delta")
        .find_map(|v| v["usage"]["output_tokens"].as_u64());
    // Anthropic reports cache reads apart from input_tokens; the recorded input is their sum
    // (as OpenAI's prompt_tokens includes cached tokens). This capture hit llama-server's
    // prompt cache: 1 new token + 39 read.
    let cached = start["cache_read_input_tokens"].as_u64();
    let usage = Usage {
        input: Some(start["input_tokens"].as_u64().unwrap() + cached.unwrap_or(0)),
        output,
        reasoning: None,
        cached,
        total: None,
    };
    assert_eq!((usage.input, output), (Some(40), Some(12)));
    check(
        Dialect::Anthropic,
        "anthropic-llama.sse",
        text,
        usage,
        first,
    );
}

#[test]
fn gemini_stream_from_the_simulator() {
    let p = payloads(&capture("gemini-sim.sse"));
    let text: String = p
        .iter()
        .filter_map(|v| v["candidates"][0]["content"]["parts"][0]["text"].as_str())
        .collect();
    let um = &p.last().unwrap()["usageMetadata"];
    // exactly as reported: candidates apart from thoughts
    let usage = Usage {
        input: um["promptTokenCount"].as_u64(),
        output: um["candidatesTokenCount"].as_u64(),
        reasoning: um["thoughtsTokenCount"].as_u64(),
        cached: None,
        total: um["totalTokenCount"].as_u64(),
    };
    check(Dialect::Gemini, "gemini-sim.sse", text, usage, 0);
}

// Shapes real providers send that the worker once got wrong (issue 13). Each file is written
// from the provider's public API reference; each is fed whole and split at every byte.

/// Chat-completions `delta.content` as a list of typed parts (Mistral's reasoning models):
/// text parts are the answer, thinking parts (themselves lists of text parts) are reasoning.
/// Regression: the text parts were dropped and a correct answer recorded as empty_completion.
#[test]
fn content_as_typed_parts_is_answer_and_reasoning() {
    let usage = Usage {
        input: Some(31),
        output: Some(24),
        reasoning: None,
        cached: None,
        total: Some(55),
    };
    check(
        Dialect::Openai,
        "openai-content-parts.sse",
        "936".into(),
        usage,
        3,
    );
    let (st, _) = parse(Dialect::Openai, &capture("openai-content-parts.sse"), 0);
    assert_eq!(
        st.reasoning_chars,
        ("The user asks for 347 + 589.".len() + " 347 + 589 = 936.".len()) as u64
    );
}

/// xAI reports reasoning apart from `completion_tokens`: the usage is kept as reported; the
/// endpoint's convention (reasoning_in_output = false) bills 2 + 290 output tokens.
/// Regression: 290 reasoning tokens went unbilled.
#[test]
fn xai_reasoning_is_reported_apart_and_billed_on_top() {
    let usage = Usage {
        input: Some(25),
        output: Some(2),
        reasoning: Some(290),
        cached: Some(0),
        total: Some(317),
    };
    check(
        Dialect::Openai,
        "xai-reasoning-apart.sse",
        "936".into(),
        usage,
        2,
    );
    let mut t = sit_core::observation::Tokens {
        usage_reported: true,
        reported_input: Some(25),
        reported_output: Some(2),
        reported_reasoning: Some(290),
        reasoning_in_output: Some(sit::config::Endpoint::default_reasoning_in_output(
            Dialect::Openai,
            "xai",
        )),
        ..Default::default()
    };
    sit_core::sit::billed(&mut t);
    assert_eq!((t.reported_output, t.billed_output), (Some(2), 292));
}

/// Anthropic restates usage in `message_delta` (input and cache fields too): the latest
/// values supersede `message_start`'s. Regression: the first input count was kept.
#[test]
fn anthropic_usage_is_taken_from_the_latest_event() {
    let usage = Usage {
        input: Some(30 + 1024 + 2048),
        output: Some(5),
        reasoning: None,
        cached: Some(1024),
        total: None,
    };
    check(
        Dialect::Anthropic,
        "anthropic-usage-restated.sse",
        "936".into(),
        usage,
        3,
    );
}

/// Gemini's thoughts: reported apart from candidates and kept so (the reported output is what
/// Gemini reported); billed on top by the Gemini convention. Regression: output + thoughts
/// was stored as the reported output.
#[test]
fn gemini_thoughts_are_reported_apart_and_billed_on_top() {
    let usage = Usage {
        input: Some(20),
        output: Some(2),
        reasoning: Some(340),
        cached: None,
        total: Some(362),
    };
    check(
        Dialect::Gemini,
        "gemini-thoughts.sse",
        "936".into(),
        usage,
        1,
    );
    let mut t = sit_core::observation::Tokens {
        usage_reported: true,
        reported_output: Some(2),
        reported_reasoning: Some(340),
        reasoning_in_output: Some(sit::config::Endpoint::default_reasoning_in_output(
            Dialect::Gemini,
            "google",
        )),
        ..Default::default()
    };
    sit_core::sit::billed(&mut t);
    assert_eq!(t.billed_output, 342);
    // OpenAI's convention: reasoning already inside completion_tokens, not billed twice
    t.reasoning_in_output = Some(sit::config::Endpoint::default_reasoning_in_output(
        Dialect::Openai,
        "openai",
    ));
    t.reported_output = Some(342);
    sit_core::sit::billed(&mut t);
    assert_eq!(t.billed_output, 342);
}

/// The OpenAI Responses API (issue 13): reasoning summary text is reasoning, output text is the
/// answer, usage comes with `response.completed` (output tokens include the reasoning tokens,
/// detailed apart).
#[test]
fn openai_responses_stream() {
    let usage = Usage {
        input: Some(38),
        output: Some(212),
        reasoning: Some(192),
        cached: Some(0),
        total: Some(250),
    };
    // the first answer text is the 10th event (after created, in_progress and the
    // reasoning item's events)
    check(
        Dialect::OpenaiResponses,
        "openai-responses.sse",
        "936".into(),
        usage,
        9,
    );
    let (st, _) = parse(
        Dialect::OpenaiResponses,
        &capture("openai-responses.sse"),
        0,
    );
    assert_eq!(st.server_model.as_deref(), Some("gpt-5-mini-2025-08-07"));
    assert_eq!(st.reasoning_chars, "**Adding** 347 and 589.".len() as u64);
}

/// What an attempt answered with `file`'s stream derives to, under the endpoint convention
/// `reasoning_in_output` (the worker's own derivation: grade, tokens, cost).
fn derived(d: Dialect, file: &str, reasoning_in_output: Option<bool>) -> sit_core::derive::Derived {
    let suite = sit_core::probes::Suite::parse(sit_core::probes::SUITE_TOML).unwrap();
    let tier = suite.tier("t1").unwrap().clone();
    let family = sit_core::probes::Family::from_id("t1.arith").unwrap();
    let inst = suite.instance(&tier, family, 7, 1, 4);
    let (st, _) = parse(d, &capture(file), 0);
    let price = sit_core::price::PriceEntry {
        effective_from_ms: 0,
        input: sit_core::fixed::Rate::parse("1").unwrap(),
        output: sit_core::fixed::Rate::parse("1").unwrap(),
        cached_input: sit_core::fixed::Rate::parse("1").unwrap(),
        request_fee: sit_core::fixed::Pusd(0),
    };
    sit_core::derive::derive(
        &inst,
        &tier,
        "",
        Some(200),
        None,
        &st,
        &Default::default(),
        &price,
        reasoning_in_output,
    )
}

/// Issue 29: xAI's totals (317 = 25 + 2 + 290) say reasoning is reported apart: billed on top
/// with no provider name or convention configured (an `openai` endpoint defaults to reasoning
/// inside the output), and the conflict with that convention recorded on the observation.
#[test]
fn reasoning_is_billed_as_the_stream_totals_say_whatever_the_convention() {
    for convention in [None, Some(true), Some(false)] {
        let d = derived(Dialect::Openai, "xai-reasoning-apart.sse", convention);
        let t = &d.tokens;
        assert_eq!(
            (t.reported_total, t.reasoning_from_totals, t.billed_output),
            (Some(317), Some(false), 292),
            "convention {convention:?}"
        );
        assert_eq!(t.convention_conflict(), convention == Some(true));
        // 25 input + 292 output tokens at 1 USD per million each
        assert_eq!(d.cost, sit_core::fixed::Pusd(317_000_000));
    }
    // OpenAI's Responses totals (250 = 38 + 212) say reasoning is inside the output: not
    // billed again, even under a convention that says otherwise
    for convention in [None, Some(true), Some(false)] {
        let d = derived(Dialect::OpenaiResponses, "openai-responses.sse", convention);
        let t = &d.tokens;
        assert_eq!(
            (t.reasoning_from_totals, t.billed_output),
            (Some(true), 212),
            "convention {convention:?}"
        );
        assert_eq!(t.convention_conflict(), convention == Some(false));
    }
    // totals without reasoning say nothing: the convention decides, no conflict
    let d = derived(Dialect::Openai, "openai-llama.sse", Some(true));
    assert_eq!(
        (d.tokens.reported_total, d.tokens.reasoning_from_totals),
        (Some(52), None)
    );
    assert!(!d.tokens.convention_conflict());
}
