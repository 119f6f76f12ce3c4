//! How long a rate-limited provider asks us to wait, from its response headers. Pure.
//!
//! In order of precedence:
//! - `Retry-After`: seconds (integer or decimal); an HTTP date is not used by the providers we
//!   probe and is ignored;
//! - OpenAI-style `x-ratelimit-reset-requests` / `x-ratelimit-reset-tokens`: Go-style durations
//!   such as `20ms`, `1s`, `6m0s`, `1h2m3.5s` (the longer of the two);
//! - Anthropic-style `anthropic-ratelimit-requests-reset` / `-tokens-reset` /
//!   `-input-tokens-reset` / `-output-tokens-reset`: RFC 3339 instants, minus `now_ms`.

/// A Go-style duration (`6m0s`, `1.5s`, `20ms`, `1h`) in milliseconds.
pub fn parse_duration_ms(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&i| i > 0)?;
        let value: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let factor = match &rest[..u] {
            "ms" => 1.0,
            "s" => 1000.0,
            "m" => 60_000.0,
            "h" => 3_600_000.0,
            "us" | "µs" => 0.001,
            _ => return None,
        };
        total += value * factor;
        rest = &rest[u..];
    }
    Some(total.ceil() as u64)
}

/// The wait the headers ask for, in milliseconds, if any. `get` looks a header up by its
/// lower-case name.
pub fn wait_ms<'a>(get: impl Fn(&str) -> Option<&'a str>, now_ms: i64) -> Option<u64> {
    if let Some(v) = get("retry-after") {
        if let Ok(secs) = v.trim().parse::<f64>() {
            if secs >= 0.0 && secs.is_finite() {
                return Some((secs * 1000.0).ceil() as u64);
            }
        }
    }
    let openai = ["x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"]
        .iter()
        .filter_map(|h| get(h).and_then(parse_duration_ms))
        .max();
    if openai.is_some() {
        return openai;
    }
    [
        "anthropic-ratelimit-requests-reset",
        "anthropic-ratelimit-tokens-reset",
        "anthropic-ratelimit-input-tokens-reset",
        "anthropic-ratelimit-output-tokens-reset",
    ]
    .iter()
    .filter_map(|h| get(h))
    .filter_map(|v| sit_core::time::parse_utc_ms(v.trim()).ok())
    .map(|at| (at - now_ms).max(0) as u64)
    .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration_ms("6m0s"), Some(360_000));
        assert_eq!(parse_duration_ms("1s"), Some(1000));
        assert_eq!(parse_duration_ms("20ms"), Some(20));
        assert_eq!(parse_duration_ms("1.5s"), Some(1500));
        assert_eq!(parse_duration_ms("1h2m3.5s"), Some(3_723_500));
        assert_eq!(parse_duration_ms("17us"), Some(1));
        for bad in ["", "s", "5", "5x", "1m-2s"] {
            assert_eq!(parse_duration_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn precedence_retry_after_then_openai_then_anthropic() {
        let h = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|p| p.0 == k).map(|p| p.1)
        };
        assert_eq!(
            wait_ms(
                h(&[("retry-after", "2"), ("x-ratelimit-reset-requests", "6m0s")]),
                0
            ),
            Some(2000)
        );
        assert_eq!(
            wait_ms(
                h(&[
                    ("x-ratelimit-reset-requests", "1s"),
                    ("x-ratelimit-reset-tokens", "6m0s")
                ]),
                0
            ),
            Some(360_000)
        );
        let now = sit_core::time::parse_utc_ms("2026-01-05T00:00:00Z").unwrap();
        assert_eq!(
            wait_ms(
                h(&[("anthropic-ratelimit-requests-reset", "2026-01-05T00:00:30Z")]),
                now
            ),
            Some(30_000)
        );
        assert_eq!(wait_ms(h(&[]), now), None);
    }
}
