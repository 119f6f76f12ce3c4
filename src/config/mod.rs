//! `providers.toml`: the endpoints to probe and their price schedules.
//!
//! A bad config is refused before any work starts, with the file, the line, the key and a
//! hint. API keys are never in this file: an endpoint names the *environment variable* that
//! holds its key, and the key is read at request time only (see [`Endpoint::api_key`]).

use serde::{Deserialize, Serialize};
use sit_core::fixed::{Pusd, Rate};
use sit_core::time::{format_utc_ms, parse_utc_ms};
use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use toml::Spanned;

pub mod parties;
mod raw;
mod validate;

/// The wire dialect an endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// OpenAI chat completions (`POST {base}/chat/completions`), streaming with usage.
    Openai,
    /// Anthropic Messages (`POST {base}/v1/messages`).
    Anthropic,
    /// Google Gemini `streamGenerateContent?alt=sse`.
    Gemini,
    /// OpenAI Responses (`POST {base}/responses`), streaming events with usage.
    #[serde(rename = "openai-responses")]
    OpenaiResponses,
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dialect::Openai => "openai",
            Dialect::Anthropic => "anthropic",
            Dialect::Gemini => "gemini",
            Dialect::OpenaiResponses => "openai-responses",
        })
    }
}

use sit_core::price::{PriceEntry, PriceSchedule};

/// A configured endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: String,
    pub provider: String,
    pub model: String,
    pub dialect: Dialect,
    pub base_url: String,
    pub region: String,
    /// Name of the env var holding the API key; `None` for endpoints that need no key.
    pub api_key_env: Option<String>,
    pub concurrency: u32,
    /// Most requests started per minute (retries included); `None`: no pacing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u32>,
    /// The model weights served (one open model behind several hosts: the same name at each);
    /// `None`: the model is the provider's own. Methodology 1.4.0 counts endpoints serving the
    /// same weights at the same list price as one price source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<String>,
    /// Whether the provider's reported output tokens include its reasoning tokens (OpenAI,
    /// Anthropic: yes) or report them apart, to be billed on top (Gemini's thoughts, xAI).
    /// Default: [`Endpoint::default_reasoning_in_output`].
    pub reasoning_in_output: bool,
    pub prices: PriceSchedule,
    /// Each price entry's source, by its `effective_from` (recorded in the price book).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub price_sources: std::collections::BTreeMap<i64, String>,
}

impl Endpoint {
    /// The documented default of `reasoning_in_output`: Gemini reports thoughts apart from
    /// candidates, and so does xAI (`completion_tokens` without
    /// `completion_tokens_details.reasoning_tokens`); OpenAI's chat completions and Responses
    /// and Anthropic's Messages count reasoning inside the output tokens.
    pub fn default_reasoning_in_output(dialect: Dialect, provider: &str) -> bool {
        !(dialect == Dialect::Gemini || provider.eq_ignore_ascii_case("xai"))
    }

    /// The source `providers.toml` names for the entry in force from `effective_from_ms`.
    pub fn source_of(&self, p: &PriceEntry) -> Option<String> {
        self.price_sources.get(&p.effective_from_ms).cloned()
    }
}

/// Why an endpoint cannot be used right now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("endpoint `{endpoint}` skipped: environment variable {var} is not set (export {var}=... to probe it)")]
    Unset { endpoint: String, var: String },
    #[error("endpoint `{endpoint}` skipped: its base_url holds the value of {var} (the API key belongs in the header the dialect sends, never in a URL, where logs and proxies keep it)")]
    InUrl { endpoint: String, var: String },
}

/// A key read from the environment. Its `Debug` and `Display` never show the value.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn new(s: String) -> ApiKey {
        ApiKey(s)
    }
}
impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl Endpoint {
    /// The API key from the named env var. `Ok(None)` when the endpoint needs no key.
    pub fn api_key(&self) -> Result<Option<ApiKey>, KeyError> {
        match &self.api_key_env {
            None => Ok(None),
            Some(var) => match std::env::var(var) {
                Ok(v) if !v.is_empty() && v.len() >= 8 && self.base_url.contains(&v) => {
                    Err(KeyError::InUrl {
                        endpoint: self.id.clone(),
                        var: var.clone(),
                    })
                }
                Ok(v) if !v.is_empty() => Ok(Some(ApiKey(v))),
                _ => Err(KeyError::Unset {
                    endpoint: self.id.clone(),
                    var: var.clone(),
                }),
            },
        }
    }
}

/// Defaults for all endpoints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Defaults {
    pub concurrency: u32,
    /// Most requests started per minute per endpoint; `None`: no pacing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u32>,
    pub connect_timeout_ms: u64,
    pub first_token_timeout_ms: u64,
    pub total_timeout_ms: u64,
    /// No body bytes for this long is a `stall`.
    pub stall_timeout_ms: u64,
    /// Largest response body kept; larger is a `body_too_large` failure.
    pub max_body_bytes: u64,
    /// Extra CA certificates (PEM) trusted besides the Mozilla roots: a private gateway's.
    /// Relative paths are relative to the providers file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca_file: Option<std::path::PathBuf>,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            concurrency: 8,
            requests_per_minute: None,
            connect_timeout_ms: 5_000,
            first_token_timeout_ms: 30_000,
            total_timeout_ms: 120_000,
            stall_timeout_ms: 15_000,
            max_body_bytes: 4 * 1024 * 1024,
            tls_ca_file: None,
        }
    }
}

/// The whole checked config.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Config {
    pub defaults: Defaults,
    pub endpoints: Vec<Endpoint>,
}

impl Config {
    pub fn endpoint(&self, id: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.id == id)
    }
}

/// A config error pointing at a place in the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: `{key}`: {message}\n  hint: {hint}")]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub key: String,
    pub message: String,
    pub hint: String,
}

/// A file being read: errors name their place in it (also used for contracts.toml).
pub(crate) struct Ctx<'a> {
    pub(crate) file: &'a str,
    pub(crate) text: &'a str,
}

impl Ctx<'_> {
    /// The error at byte `offset` of the file: its line and column, the key, what is wrong
    /// and the fix.
    pub(crate) fn at(
        &self,
        offset: usize,
        key: &str,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> ConfigError {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = offset - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
        ConfigError {
            file: self.file.to_string(),
            line,
            column,
            key: key.to_string(),
            message: message.into(),
            hint: hint.into(),
        }
    }
    fn span<T>(
        &self,
        s: &Spanned<T>,
        key: &str,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> ConfigError {
        self.at(s.span().start, key, message, hint)
    }
}

/// The largest list price accepted unless `defaults.max_price_per_million` says otherwise
/// (USD per 1M tokens; today's dearest models list well under 1,000).
pub const MAX_PRICE_PER_MILLION: &str = "10000";
/// The largest per-request fee accepted (USD).
pub const MAX_REQUEST_FEE: &str = "100";

/// Whether a string looks like an API key rather than a name or a URL part, judged by its own
/// content: a known key prefix followed by key material (a random-looking run), or a long
/// token mixing upper case, lower case and digits (identifiers in URLs are single-case: hex
/// account ids, UUIDs, model names). A prefix alone proves nothing: gateway paths carry
/// segments such as `xai-text`, `sk-team-prod` or `key-vault-eastus2`.
pub fn looks_like_key(s: &str) -> bool {
    const PREFIXES: [&str; 12] = [
        "sk-", "sk_", "pk_", "rk_", "AIza", "xai-", "gsk_", "ghp_", "hf_", "key-", "Bearer",
        "sess-",
    ];
    let keyish = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if let Some(p) = PREFIXES.iter().find(|p| s.starts_with(**p)) {
        let rest = &s[p.len()..];
        if rest.len() >= 16 && rest.chars().all(keyish) && key_material(rest) {
            return true;
        }
    }
    s.len() >= 32
        && s.chars().all(keyish)
        && s.chars().any(|c| c.is_ascii_uppercase())
        && s.chars().any(|c| c.is_ascii_lowercase())
        && s.chars().any(|c| c.is_ascii_digit())
}

/// Random-looking: upper case, lower case and digits mixed, or a run of 16 or more letters
/// and digits with a digit in it (a hex or base-36 secret). Words joined by `-` or `_` are
/// neither.
fn key_material(s: &str) -> bool {
    let mixed = s.chars().any(|c| c.is_ascii_uppercase())
        && s.chars().any(|c| c.is_ascii_lowercase())
        && s.chars().any(|c| c.is_ascii_digit());
    mixed
        || s.split(['-', '_']).any(|run| {
            run.len() >= 16
                && run.chars().any(|c| c.is_ascii_digit())
                && run.chars().any(|c| c.is_ascii_alphabetic())
        })
}

/// The CA certificates of a PEM file (the worker trusts them besides the Mozilla roots);
/// `sit check` reads them the same way, so a bad file is found before any probe.
pub fn read_ca_file(
    path: &Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
        .map_err(|e| e.to_string())?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no CERTIFICATE block in the file".into());
    }
    Ok(certs)
}

/// The shortest API key accepted (issue 13: a one-character key redacted every occurrence of
/// that character in the stored evidence).
pub const MIN_KEY_CHARS: usize = 16;

const ENDPOINT_KEYS: &str =
    "id, provider, model, weights, dialect, base_url, region, api_key_env, concurrency, requests_per_minute, reasoning_in_output, prices";
const PRICE_KEYS: &str = "effective_from, input, output, cached_input, request_fee, source";

/// Load and check a providers file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| ConfigError {
        file: file.clone(),
        line: 0,
        column: 0,
        key: "(file)".into(),
        message: format!("cannot read: {e}"),
        hint: "pass --providers FILE with a readable providers.toml".into(),
    })?;
    let not_text = |offset: usize, what: String| {
        let valid = std::str::from_utf8(&bytes[..offset]).unwrap_or("");
        let cx = Ctx {
            file: &file,
            text: valid,
        };
        let mut e = cx.at(
            offset,
            "(file)",
            what,
            "providers.toml is UTF-8 TOML text; is --providers pointing at the right file (not a binary, a compressed or a UTF-16 file)?",
        );
        e.message = format!("{} (byte offset {offset})", e.message);
        e
    };
    let text = String::from_utf8(bytes.clone()).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        not_text(at, format!("not UTF-8 text: byte 0x{:02x}", bytes[at]))
    })?;
    if let Some(at) = text.find('\0') {
        return Err(not_text(at, "binary data: a NUL byte".into()));
    }
    parse(&file, &text)
}

/// Parse and check providers-file text; `file` is used in error messages.
/// An endpoint given on the command line (`sit certify --base-url ...`), validated by the same
/// rules as providers.toml. It carries a zero price: certification measures, it does not cost.
pub fn direct_endpoint(
    id: &str,
    base_url: &str,
    dialect: &str,
    model: &str,
    api_key_env: Option<&str>,
) -> Result<Endpoint, ConfigError> {
    // JSON string literals are valid TOML basic strings.
    let q = |s: &str| serde_json::to_string(s).expect("a string serialises");
    let mut t = format!(
        "[[endpoints]]\nid = {}\nprovider = \"direct\"\nmodel = {}\ndialect = {}\nbase_url = {}\nregion = \"unknown\"\n",
        q(id),
        q(model),
        q(dialect),
        q(base_url)
    );
    if let Some(v) = api_key_env {
        t.push_str(&format!("api_key_env = {}\n", q(v)));
    }
    t.push_str("\n[[endpoints.prices]]\neffective_from = \"1970-01-01T00:00:00Z\"\ninput = \"0\"\noutput = \"0\"\n");
    let mut c = parse(
        "command line (--name, --base-url, --dialect, --model, --api-key-env)",
        &t,
    )?;
    Ok(c.endpoints.remove(0))
}

/// Parse and check `text`, the content of the providers file `file`: the TOML read into its
/// raw shape (`raw.rs`), then every value checked and the configuration derived from it
/// (`validate.rs`).
pub fn parse(file: &str, text: &str) -> Result<Config, ConfigError> {
    let cx = Ctx { file, text };
    let raw = raw::read(&cx)?;
    validate::config(&cx, raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_prefix_alone_does_not_make_a_path_segment_a_key() {
        for part in [
            "xai-text",
            "sk-team-analytics-prod",
            "key-vault-eastus2",
            "hf_inference",
            "sess-eu-west-1",
            "0123456789abcdef0123456789abcdef", // a gateway's hex account id
            "gpt-4o-mini-2024-07-18",
            "Bearer",
        ] {
            assert!(!looks_like_key(part), "{part} taken for a key");
        }
        // Key-shaped strings are made at run time: no key-like literal sits in the source.
        for key in [
            fake_key("sk-proj-", 24, true),
            fake_key("sk_live_", 24, true),
            fake_key("xai-", 40, true),
            fake_key("gsk_", 32, true),
            fake_key("AIza", 35, true),
            fake_key("ghp_", 36, true),
            fake_key("key-", 32, false),
            fake_key("", 34, true),
        ] {
            assert!(looks_like_key(&key), "{key} not taken for a key");
        }
    }

    /// `prefix` then `n` pseudo-random characters: upper and lower case and digits (`mixed`),
    /// else lower case and digits, as the providers' keys are.
    fn fake_key(prefix: &str, n: usize, mixed: bool) -> String {
        let alphabet: &[u8] = if mixed {
            b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz0123456789"
        } else {
            b"abcdefghijkmnopqrstuvwxyz0123456789"
        };
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ n as u64;
        let body: String = (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                alphabet[(x % alphabet.len() as u64) as usize] as char
            })
            .collect();
        format!("{prefix}{body}")
    }

    const GOOD: &str = r#"
[[endpoints]]
id = "a"
provider = "p"
model = "m"
dialect = "openai"
base_url = "https://api.example.com/v1"
region = "us"
api_key_env = "EXAMPLE_KEY"

[[endpoints.prices]]
effective_from = "2026-01-01T00:00:00Z"
input = "0.15"
output = 0.6

[[endpoints.prices]]
effective_from = "2026-02-01T00:00:00Z"
input = "0.10"
output = "0.40"
cached_input = "0.05"
request_fee = "0.0001"
"#;

    #[test]
    fn good_config_parses_and_schedule_lookup_works() {
        let c = parse("p.toml", GOOD).unwrap();
        let e = &c.endpoints[0];
        assert_eq!(e.prices.0.len(), 2);
        assert_eq!(e.prices.0[0].output, Rate(600_000));
        assert_eq!(e.prices.0[0].cached_input, Rate(150_000));
        let jan = parse_utc_ms("2026-01-15T00:00:00Z").unwrap();
        let feb = parse_utc_ms("2026-02-01T00:00:00Z").unwrap();
        assert_eq!(e.prices.in_force(jan).unwrap().input, Rate(150_000));
        assert_eq!(e.prices.in_force(feb).unwrap().input, Rate(100_000));
        assert!(e
            .prices
            .in_force(jan - 40 * sit_core::time::DAY_MS)
            .is_none());
    }

    fn err(text: &str) -> ConfigError {
        parse("providers.toml", text).unwrap_err()
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let e = err(&GOOD.replace("region = \"us\"", "region = \"us\"\nregoin = \"eu\""));
        assert_eq!(
            (e.file.as_str(), e.line, e.key.as_str()),
            ("providers.toml", 9, "regoin"),
            "{e}"
        );
        assert!(e.to_string().contains("providers.toml:9"), "{e}");
    }

    #[test]
    fn bad_values_are_refused_with_their_line() {
        let cases = [
            (GOOD.replace("input = \"0.15\"", "input = \"-0.15\""), "input", 13),
            (GOOD.replace("output = 0.6", "output = \"abc\""), "output", 14),
            (GOOD.replace("https://api.example.com/v1", "ftp//nope"), "base_url", 7),
            (GOOD.replace("dialect = \"openai\"", "dialect = \"cohere\""), "dialect", 6),
            (GOOD.replace("EXAMPLE_KEY", "sk-live key"), "api_key_env", 9),
            (GOOD.replace("2026-02-01T00:00:00Z", "2026-02-01"), "effective_from", 17),
            (GOOD.replace("input = \"0.15\"", "input = \"0.1234567\""), "input", 13),
            (format!("{GOOD}\n{}", GOOD.split("[[endpoints.prices]]").next().unwrap().to_string()
                + "[[endpoints.prices]]\neffective_from = \"2026-01-01T00:00:00Z\"\ninput = 1\noutput = 2\n"), "id", 25),
        ];
        for (text, key, line) in cases {
            let e = err(&text);
            assert_eq!((e.key.as_str(), e.line), (key, line), "{e}");
            assert!(!e.hint.is_empty());
        }
    }

    #[test]
    fn requests_per_minute_defaults_and_overrides_and_is_checked() {
        assert_eq!(
            parse("p.toml", GOOD).unwrap().endpoints[0].requests_per_minute,
            None
        );
        let with_default = format!("[defaults]\nrequests_per_minute = 500\n{GOOD}");
        let c = parse("p.toml", &with_default).unwrap();
        assert_eq!(c.endpoints[0].requests_per_minute, Some(500));
        let own = with_default.replace(
            "region = \"us\"",
            "region = \"us\"\nrequests_per_minute = 60",
        );
        assert_eq!(
            parse("p.toml", &own).unwrap().endpoints[0].requests_per_minute,
            Some(60)
        );
        let e = err(&own.replace("requests_per_minute = 60", "requests_per_minute = 0"));
        assert_eq!(e.key, "requests_per_minute", "{e}");
        assert!(e.hint.contains("per minute"), "{e}");
        let e = err(&with_default.replace("= 500", "= -3"));
        assert_eq!(e.key, "defaults.requests_per_minute", "{e}");
    }

    #[test]
    fn missing_price_field_is_named() {
        let e = err(&GOOD.replace("output = 0.6\n", ""));
        assert_eq!(e.key, "output", "{e}");
    }

    #[test]
    fn api_key_debug_is_redacted() {
        let k = ApiKey("sk-secret-value".into());
        assert!(!format!("{k:?}").contains("secret"));
    }
}
