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

pub use sit_core::price::{PriceEntry, PriceSchedule};

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

// ---- raw file shape (with spans for errors) ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    defaults: Option<RawDefaults>,
    #[serde(default)]
    endpoints: Vec<RawEndpoint>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    concurrency: Option<Spanned<i64>>,
    requests_per_minute: Option<Spanned<i64>>,
    connect_timeout_ms: Option<Spanned<i64>>,
    first_token_timeout_ms: Option<Spanned<i64>>,
    total_timeout_ms: Option<Spanned<i64>>,
    stall_timeout_ms: Option<Spanned<i64>>,
    max_body_bytes: Option<Spanned<i64>>,
    tls_ca_file: Option<Spanned<String>>,
    max_price_per_million: Option<Spanned<DecimalText>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEndpoint {
    id: Spanned<String>,
    provider: Spanned<String>,
    model: Spanned<String>,
    dialect: Spanned<String>,
    base_url: Spanned<String>,
    region: Spanned<String>,
    api_key_env: Option<Spanned<String>>,
    concurrency: Option<Spanned<i64>>,
    requests_per_minute: Option<Spanned<i64>>,
    weights: Option<Spanned<String>>,
    reasoning_in_output: Option<Spanned<bool>>,
    #[serde(default)]
    prices: Vec<RawPrice>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrice {
    effective_from: Spanned<String>,
    input: Spanned<DecimalText>,
    output: Spanned<DecimalText>,
    cached_input: Option<Spanned<DecimalText>>,
    request_fee: Option<Spanned<DecimalText>>,
    /// Where the price comes from (a catalogue and its date, a pricing page): recorded with
    /// the entry in the price book.
    source: Option<Spanned<String>>,
}

/// A decimal written as a TOML string (`"0.15"`, preferred) or number (`0.15`). Numbers are
/// turned into their shortest decimal spelling, which is the text the author typed.
#[derive(Deserialize)]
#[serde(untagged)]
enum DecimalText {
    Str(String),
    Int(i64),
    Float(f64),
}

impl DecimalText {
    fn text(&self) -> String {
        match self {
            DecimalText::Str(s) => s.clone(),
            DecimalText::Int(i) => i.to_string(),
            DecimalText::Float(f) => format!("{f}"),
        }
    }
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

/// A requests-per-minute limit: 1 to 6,000,000 (100,000 per second).
fn rpm(cx: &Ctx<'_>, v: &Spanned<i64>, key: &str) -> Result<u32, ConfigError> {
    match *v.get_ref() {
        n @ 1..=6_000_000 => Ok(n as u32),
        _ => Err(cx.span(
            v,
            key,
            "must be between 1 and 6000000",
            "set the provider's published request limit per minute, e.g. 500, or remove the key for no pacing",
        )),
    }
}

/// Bounds of the numeric settings: (lowest, highest, unit).
const CONCURRENCY: (i64, i64, &str) = (1, 10_000, "requests in flight");
const CONNECT_TIMEOUT_MS: (i64, i64, &str) = (1, 300_000, "ms (5 minutes)");
const TIMEOUT_MS: (i64, i64, &str) = (1, 3_600_000, "ms (1 hour)");
const BODY_BYTES: (i64, i64, &str) = (1, 1 << 30, "bytes (1 GiB)");
/// The largest list price accepted unless `defaults.max_price_per_million` says otherwise
/// (USD per 1M tokens; today's dearest models list well under 1,000).
pub const MAX_PRICE_PER_MILLION: &str = "10000";
/// The largest per-request fee accepted (USD).
pub const MAX_REQUEST_FEE: &str = "100";

/// Whether a string looks like an API key rather than a name or a URL part: a known key
/// prefix, or a long token mixing upper case, lower case and digits (identifiers in URLs are
/// single-case: hex account ids, UUIDs, model names).
pub fn looks_like_key(s: &str) -> bool {
    const PREFIXES: [&str; 12] = [
        "sk-", "sk_", "pk_", "rk_", "AIza", "xai-", "gsk_", "ghp_", "hf_", "key-", "Bearer",
        "sess-",
    ];
    if PREFIXES.iter().any(|p| s.starts_with(p)) {
        return true;
    }
    s.len() >= 32
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && s.chars().any(|c| c.is_ascii_uppercase())
        && s.chars().any(|c| c.is_ascii_lowercase())
        && s.chars().any(|c| c.is_ascii_digit())
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
    base_url: &str,
    dialect: &str,
    model: &str,
    api_key_env: Option<&str>,
) -> Result<Endpoint, ConfigError> {
    // JSON string literals are valid TOML basic strings.
    let q = |s: &str| serde_json::to_string(s).expect("a string serialises");
    let mut t = format!(
        "[[endpoints]]\nid = \"direct\"\nprovider = \"direct\"\nmodel = {}\ndialect = {}\nbase_url = {}\nregion = \"unknown\"\n",
        q(model),
        q(dialect),
        q(base_url)
    );
    if let Some(v) = api_key_env {
        t.push_str(&format!("api_key_env = {}\n", q(v)));
    }
    t.push_str("\n[[endpoints.prices]]\neffective_from = \"1970-01-01T00:00:00Z\"\ninput = \"0\"\noutput = \"0\"\n");
    let mut c = parse(
        "command line (--base-url, --dialect, --model, --api-key-env)",
        &t,
    )?;
    Ok(c.endpoints.remove(0))
}

pub fn parse(file: &str, text: &str) -> Result<Config, ConfigError> {
    let cx = Ctx { file, text };
    let raw: RawFile = toml::from_str(text).map_err(|e| {
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
    })?;

    let mut defaults = Defaults::default();
    let mut max_price = Rate::parse(MAX_PRICE_PER_MILLION).expect("a decimal");
    if let Some(d) = &raw.defaults {
        let bounded = |v: &Option<Spanned<i64>>,
                       key: &str,
                       (lo, hi, unit): (i64, i64, &str),
                       out: &mut u64|
         -> Result<(), ConfigError> {
            if let Some(v) = v {
                if !(lo..=hi).contains(v.get_ref()) {
                    return Err(cx.span(
                        v,
                        key,
                        format!("must be between {lo} and {hi} {unit}"),
                        format!("set `{key}` within that range, or remove it for the default"),
                    ));
                }
                *out = *v.get_ref() as u64;
            }
            Ok(())
        };
        let mut c = defaults.concurrency as u64;
        bounded(&d.concurrency, "defaults.concurrency", CONCURRENCY, &mut c)?;
        defaults.concurrency = c as u32;
        if let Some(v) = &d.requests_per_minute {
            defaults.requests_per_minute = Some(rpm(&cx, v, "defaults.requests_per_minute")?);
        }
        bounded(
            &d.connect_timeout_ms,
            "defaults.connect_timeout_ms",
            CONNECT_TIMEOUT_MS,
            &mut defaults.connect_timeout_ms,
        )?;
        bounded(
            &d.first_token_timeout_ms,
            "defaults.first_token_timeout_ms",
            TIMEOUT_MS,
            &mut defaults.first_token_timeout_ms,
        )?;
        bounded(
            &d.total_timeout_ms,
            "defaults.total_timeout_ms",
            TIMEOUT_MS,
            &mut defaults.total_timeout_ms,
        )?;
        bounded(
            &d.stall_timeout_ms,
            "defaults.stall_timeout_ms",
            TIMEOUT_MS,
            &mut defaults.stall_timeout_ms,
        )?;
        bounded(
            &d.max_body_bytes,
            "defaults.max_body_bytes",
            BODY_BYTES,
            &mut defaults.max_body_bytes,
        )?;
        if let Some(v) = &d.max_price_per_million {
            let t = v.get_ref().text();
            match Rate::parse(&t) {
                Ok(r) if r.0 > 0 => max_price = r,
                _ => {
                    return Err(cx.span(
                        v,
                        "defaults.max_price_per_million",
                        format!("`{t}` is not a positive price"),
                        "the largest list price accepted, in USD per 1M tokens, e.g. \"10000\"",
                    ))
                }
            }
        }
        if let Some(ca) = &d.tls_ca_file {
            let base = Path::new(file).parent().unwrap_or(Path::new(""));
            let path = base.join(ca.get_ref());
            if !path.is_file() {
                return Err(cx.span(
                    ca,
                    "defaults.tls_ca_file",
                    format!("no file at {}", path.display()),
                    "point it at a PEM file of CA certificates (relative paths are relative to this file)",
                ));
            }
            if let Err(why) = read_ca_file(&path) {
                return Err(cx.span(
                    ca,
                    "defaults.tls_ca_file",
                    format!("{} is not a PEM file of CA certificates: {why}", path.display()),
                    "give a file of -----BEGIN CERTIFICATE----- blocks (PEM), e.g. the CA bundle of the private gateway",
                ));
            }
            defaults.tls_ca_file = Some(path);
        }
    }

    if raw.endpoints.is_empty() {
        return Err(cx.at(
            0,
            "endpoints",
            "no [[endpoints]] in the file: there is nothing to probe",
            "add at least one [[endpoints]] table (id, provider, model, dialect, base_url, region) with an [[endpoints.prices]] entry; see the shipped providers.toml",
        ));
    }
    let mut ids = BTreeSet::new();
    let mut endpoints = Vec::new();
    let id_re = regex::Regex::new(r"^[a-z0-9][a-z0-9._-]{0,63}$").unwrap();
    let env_re = regex::Regex::new(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$").unwrap();
    for e in raw.endpoints {
        let id = e.id.get_ref().clone();
        if !id_re.is_match(&id) {
            return Err(cx.span(&e.id, "id", format!("`{id}` is not a valid endpoint id"),
                "use 1-64 characters of lowercase letters, digits, '.', '_' or '-', starting with a letter or digit"));
        }
        if !ids.insert(id.clone()) {
            return Err(cx.span(
                &e.id,
                "id",
                format!("duplicate endpoint id `{id}`"),
                "give each [[endpoints]] a unique id",
            ));
        }
        for (v, key) in [
            (&e.provider, "provider"),
            (&e.model, "model"),
            (&e.region, "region"),
        ] {
            if v.get_ref().trim().is_empty() {
                return Err(cx.span(
                    v,
                    key,
                    "must not be empty",
                    format!("write the endpoint's {key}"),
                ));
            }
        }
        let dialect = match e.dialect.get_ref().as_str() {
            "openai" => Dialect::Openai,
            "anthropic" => Dialect::Anthropic,
            "gemini" => Dialect::Gemini,
            "openai-responses" => Dialect::OpenaiResponses,
            other => {
                return Err(cx.span(
                    &e.dialect,
                    "dialect",
                    format!("unknown dialect `{other}`"),
                    "use one of: openai, anthropic, gemini, openai-responses",
                ))
            }
        };
        let base_url = e.base_url.get_ref().trim_end_matches('/').to_string();
        // The URL is never echoed in these errors: it may hold a key.
        match url::Url::parse(&base_url) {
            Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host().is_some() => {
                if u.query().is_some()
                    || u.fragment().is_some()
                    || !u.username().is_empty()
                    || u.password().is_some()
                {
                    return Err(cx.span(&e.base_url, "base_url", "must not contain a query, a fragment or credentials",
                        "put credentials in the env var named by api_key_env, never in the URL"));
                }
                // The text as written (the parsed URL lower-cases the host).
                for part in base_url.split(['/', '.', ':', '@']) {
                    if looks_like_key(part) {
                        return Err(cx.span(&e.base_url, "base_url",
                            "holds what looks like an API key (in its host or path; not shown here)",
                            "remove it from the URL and put the key in the env var named by api_key_env"));
                    }
                }
            }
            _ => {
                return Err(cx.span(&e.base_url, "base_url", "is not an http(s) URL with a host (not shown here)",
                    "write it as the dialect's SDK takes it, e.g. https://api.openai.com/v1 or https://api.anthropic.com"))
            }
        }
        let api_key_env = match &e.api_key_env {
            // The value is never echoed: a key written here by mistake must not be printed.
            Some(v) if looks_like_key(v.get_ref()) => {
                return Err(cx.span(v, "api_key_env", "looks like an API key itself (not shown here), not the name of a variable holding one",
                    "write the variable's name (e.g. OPENAI_API_KEY) and export the key in it; if that key was committed anywhere, rotate it"));
            }
            Some(v) if !env_re.is_match(v.get_ref()) => {
                return Err(cx.span(v, "api_key_env", "is not an environment variable name (not shown here)",
                    "name the variable that holds the key, 1-64 letters, digits and '_', not starting with a digit (e.g. OPENAI_API_KEY), never the key itself"));
            }
            Some(v) => {
                // A short key would make redaction (every exact occurrence of the key in stored
                // evidence becomes <redacted>) eat ordinary text: one character long, it would
                // blank that character everywhere. No provider issues keys this short.
                let n = std::env::var(v.get_ref())
                    .map(|k| k.chars().count())
                    .unwrap_or(0);
                if n > 0 && n < MIN_KEY_CHARS {
                    return Err(cx.span(
                        v,
                        "api_key_env",
                        format!("{} holds a value of {n} characters (not shown here); keys shorter than {MIN_KEY_CHARS} characters are refused", v.get_ref()),
                        format!("export the whole key in {} (provider keys are 30-200 characters); a value this short is a placeholder or a truncated key, and redacting it from stored evidence would corrupt the evidence", v.get_ref()),
                    ));
                }
                Some(v.get_ref().clone())
            }
            None => None,
        };
        let concurrency = match &e.concurrency {
            Some(c) if !(CONCURRENCY.0..=CONCURRENCY.1).contains(c.get_ref()) => {
                return Err(cx.span(
                    c,
                    "concurrency",
                    format!("must be between {} and {}", CONCURRENCY.0, CONCURRENCY.1),
                    "set a small positive number such as 4",
                ));
            }
            Some(c) => *c.get_ref() as u32,
            None => defaults.concurrency,
        };
        let requests_per_minute = match &e.requests_per_minute {
            Some(v) => Some(rpm(&cx, v, "requests_per_minute")?),
            None => defaults.requests_per_minute,
        };
        let mut entries: Vec<PriceEntry> = Vec::new();
        let mut sources: std::collections::BTreeMap<i64, String> = Default::default();
        if e.prices.is_empty() {
            return Err(cx.span(
                &e.id,
                "prices",
                format!("endpoint `{id}` has no price schedule"),
                "add at least one [[endpoints.prices]] with effective_from, input and output",
            ));
        }
        for p in &e.prices {
            let eff = parse_utc_ms(p.effective_from.get_ref()).map_err(|err| {
                cx.span(
                    &p.effective_from,
                    "effective_from",
                    err.to_string(),
                    "write e.g. effective_from = \"2026-01-02T00:00:00Z\"",
                )
            })?;
            let rate = |v: &Spanned<DecimalText>, key: &str| -> Result<Rate, ConfigError> {
                let t = v.get_ref().text();
                let r = Rate::parse(&t).map_err(|err| {
                    cx.span(
                        v,
                        key,
                        err.to_string(),
                        format!("write `{key}` in USD per 1M tokens, e.g. {key} = \"0.15\""),
                    )
                })?;
                if r.0 < 0 {
                    return Err(cx.span(
                        v,
                        key,
                        format!("negative price {t}"),
                        "prices are USD per 1M tokens and must be >= 0",
                    ));
                }
                if r.0 > max_price.0 {
                    return Err(cx.span(
                        v,
                        key,
                        format!("price {t} is above the largest accepted, {max_price} USD per 1M tokens"),
                        "check the units (USD per 1M tokens, not per token or in cents); a real price above the bound needs defaults.max_price_per_million",
                    ));
                }
                Ok(r)
            };
            let input = rate(&p.input, "input")?;
            let output = rate(&p.output, "output")?;
            let cached_input = match &p.cached_input {
                Some(v) => rate(v, "cached_input")?,
                None => input,
            };
            let request_fee = match &p.request_fee {
                Some(v) => {
                    let t = v.get_ref().text();
                    let f = Pusd::parse(&t).map_err(|err| {
                        cx.span(
                            v,
                            "request_fee",
                            err.to_string(),
                            "write the fee in USD, e.g. request_fee = \"0.0001\"",
                        )
                    })?;
                    if f.0 < 0 || f > Pusd::parse(MAX_REQUEST_FEE).expect("a decimal") {
                        return Err(cx.span(
                            v,
                            "request_fee",
                            format!("fee {t} is outside 0 to {MAX_REQUEST_FEE} USD per request"),
                            "a per-request fee is in USD per request, e.g. request_fee = \"0.0001\"",
                        ));
                    }
                    f
                }
                None => Pusd::ZERO,
            };
            if entries.iter().any(|x| x.effective_from_ms == eff) {
                return Err(cx.span(
                    &p.effective_from,
                    "effective_from",
                    format!(
                        "two prices for `{id}` take effect at {}",
                        format_utc_ms(eff)
                    ),
                    "each schedule entry needs its own effective_from",
                ));
            }
            if let Some(src) = &p.source {
                sources.insert(eff, src.get_ref().clone());
            }
            entries.push(PriceEntry {
                effective_from_ms: eff,
                input,
                output,
                cached_input,
                request_fee,
            });
        }
        entries.sort_by_key(|p| p.effective_from_ms);
        let provider = e.provider.get_ref().clone();
        endpoints.push(Endpoint {
            id,
            provider: provider.clone(),
            model: e.model.into_inner(),
            dialect,
            base_url,
            region: e.region.into_inner(),
            api_key_env,
            concurrency,
            requests_per_minute,
            weights: e.weights.map(|w| w.into_inner()),
            reasoning_in_output: e
                .reasoning_in_output
                .map(|r| r.into_inner())
                .unwrap_or_else(|| Endpoint::default_reasoning_in_output(dialect, &provider)),
            prices: PriceSchedule(entries),
            price_sources: sources,
        });
    }
    Ok(Config {
        defaults,
        endpoints,
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

#[cfg(test)]
mod tests {
    use super::*;

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
