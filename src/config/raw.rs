//! The providers file's raw shape, as TOML gives it (with spans, so that every later error
//! names its place): no value is checked here beyond its type.

use super::{ConfigError, Ctx, ENDPOINT_KEYS, PRICE_KEYS};
use serde::Deserialize;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    #[serde(default)]
    pub(super) defaults: Option<RawDefaults>,
    #[serde(default)]
    pub(super) endpoints: Vec<RawEndpoint>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDefaults {
    pub(super) concurrency: Option<Spanned<i64>>,
    pub(super) requests_per_minute: Option<Spanned<i64>>,
    pub(super) connect_timeout_ms: Option<Spanned<i64>>,
    pub(super) first_token_timeout_ms: Option<Spanned<i64>>,
    pub(super) total_timeout_ms: Option<Spanned<i64>>,
    pub(super) stall_timeout_ms: Option<Spanned<i64>>,
    pub(super) max_body_bytes: Option<Spanned<i64>>,
    pub(super) tls_ca_file: Option<Spanned<String>>,
    pub(super) max_price_per_million: Option<Spanned<DecimalText>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEndpoint {
    pub(super) id: Spanned<String>,
    pub(super) provider: Spanned<String>,
    pub(super) model: Spanned<String>,
    pub(super) dialect: Spanned<String>,
    pub(super) base_url: Spanned<String>,
    pub(super) region: Spanned<String>,
    pub(super) api_key_env: Option<Spanned<String>>,
    pub(super) concurrency: Option<Spanned<i64>>,
    pub(super) requests_per_minute: Option<Spanned<i64>>,
    pub(super) weights: Option<Spanned<String>>,
    pub(super) reasoning_in_output: Option<Spanned<bool>>,
    #[serde(default)]
    pub(super) prices: Vec<RawPrice>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPrice {
    pub(super) effective_from: Spanned<String>,
    pub(super) input: Spanned<DecimalText>,
    pub(super) output: Spanned<DecimalText>,
    pub(super) cached_input: Option<Spanned<DecimalText>>,
    pub(super) request_fee: Option<Spanned<DecimalText>>,
    /// Where the price comes from (a catalogue and its date, a pricing page): recorded with
    /// the entry in the price book.
    pub(super) source: Option<Spanned<String>>,
}

/// A decimal written as a TOML string (`"0.15"`, preferred) or number (`0.15`). Numbers are
/// turned into their shortest decimal spelling, which is the text the author typed.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum DecimalText {
    Str(String),
    Int(i64),
    Float(f64),
}

impl DecimalText {
    pub(super) fn text(&self) -> String {
        match self {
            DecimalText::Str(s) => s.clone(),
            DecimalText::Int(i) => i.to_string(),
            DecimalText::Float(f) => format!("{f}"),
        }
    }
}

/// Read `cx`'s TOML into its raw shape; a syntax error, an unknown or a missing key is refused
/// with its place and a hint.
pub(super) fn read(cx: &Ctx<'_>) -> Result<RawFile, ConfigError> {
    let text = cx.text;
    toml::from_str(text).map_err(|e| {
        let offset = e.span().map(|s| s.start).unwrap_or(0);
        let msg = e.message().trim().to_string();
        let key = regex::Regex::new(r"(?:unknown|missing) field `([^`]+)`")
            .unwrap()
            .captures(&msg)
            .map(|c| c[1].to_string())
            .unwrap_or_else(|| key_at(text, offset));
        let hint = if msg.contains("unknown field") {
            format!("remove `{key}` or fix its spelling; an endpoint takes {ENDPOINT_KEYS}; a [[endpoints.prices]] entry takes {PRICE_KEYS}")
        } else if msg.contains("missing field") {
            format!("add `{key} = ...` to this table")
        } else {
            "check the TOML syntax and the value's type at this place".to_string()
        };
        cx.at(offset, &key, msg, hint)
    })
}

/// Best-effort name of the key at `offset` (the text before `=` on that line).
fn key_at(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let start = text[..offset].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let end = text[start..]
        .find('\n')
        .map(|i| start + i)
        .unwrap_or(text.len());
    let line = &text[start..end];
    line.split_once('=')
        .map(|(k, _)| k.trim().to_string())
        .unwrap_or_else(|| line.trim().to_string())
}
