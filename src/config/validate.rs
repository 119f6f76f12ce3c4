//! Checking the providers file: every value of its raw shape bounded and checked, and the
//! configuration derived from it (parsing is [`super::raw`]'s).

use super::raw::{DecimalText, RawDefaults, RawEndpoint, RawFile};
use super::*;

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
/// Check every value of the raw file and derive the configuration: bounds, ids, URLs, key
/// variables, price schedules; the first problem is refused with its place and a fix.
pub(super) fn config(cx: &Ctx<'_>, raw: RawFile) -> Result<Config, ConfigError> {
    let (defaults, max_price) = match &raw.defaults {
        Some(d) => defaults(cx, d)?,
        None => (
            Defaults::default(),
            Rate::parse(MAX_PRICE_PER_MILLION).expect("a decimal"),
        ),
    };

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
        endpoints.push(endpoint(
            cx, e, &defaults, max_price, &mut ids, &id_re, &env_re,
        )?);
    }
    Ok(Config {
        defaults,
        endpoints,
    })
}

/// The `[defaults]` table checked: the settings every endpoint inherits, and the largest list
/// price accepted.
fn defaults(cx: &Ctx<'_>, d: &RawDefaults) -> Result<(Defaults, Rate), ConfigError> {
    let mut defaults = Defaults::default();
    let mut max_price = Rate::parse(MAX_PRICE_PER_MILLION).expect("a decimal");
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
        defaults.requests_per_minute = Some(rpm(cx, v, "defaults.requests_per_minute")?);
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
        let base = Path::new(cx.file).parent().unwrap_or(Path::new(""));
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
    Ok((defaults, max_price))
}

/// One `[[endpoints]]` table checked: its id (unique in `ids`), names, dialect, URL, key
/// variable, limits and price schedule.
fn endpoint(
    cx: &Ctx<'_>,
    e: RawEndpoint,
    defaults: &Defaults,
    max_price: Rate,
    ids: &mut BTreeSet<String>,
    id_re: &regex::Regex,
    env_re: &regex::Regex,
) -> Result<Endpoint, ConfigError> {
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
        Some(v) => Some(rpm(cx, v, "requests_per_minute")?),
        None => defaults.requests_per_minute,
    };
    let (prices, sources) = prices(cx, &e, &id, max_price)?;
    let provider = e.provider.get_ref().clone();
    Ok(Endpoint {
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
        prices,
        price_sources: sources,
    })
}

/// An endpoint's `[[endpoints.prices]]` entries checked (each rate within 0 and `max_price`,
/// one entry per effective time), in effective order, with the sources they name.
fn prices(
    cx: &Ctx<'_>,
    e: &RawEndpoint,
    id: &str,
    max_price: Rate,
) -> Result<(PriceSchedule, std::collections::BTreeMap<i64, String>), ConfigError> {
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
    Ok((PriceSchedule(entries), sources))
}
