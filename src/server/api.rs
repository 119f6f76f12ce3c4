//! The API's errors and request parsing: every error is JSON
//! `{"error": {"status", "code", "message", "hint"}}`, 400 for malformed input and 404 for what
//! does not exist; bad input never produces a 500. Conditional requests (ETag) too.

use super::snapshot::Snapshot;
use axum::body::Body;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH, LINK, VARY};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use sit_core::time::Date;
use std::collections::BTreeMap;

/// A documented API error: `{"error": {"status", "code", "message", "hint"}}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub hint: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: String, hint: &str) -> ApiError {
        ApiError {
            status,
            code,
            message,
            hint: hint.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": {
                "status": self.status.as_u16(),
                "code": self.code,
                "message": self.message,
                "hint": self.hint,
            }
        });
        (
            self.status,
            [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            body.to_string(),
        )
            .into_response()
    }
}

pub(super) fn etag_matches(inm: &HeaderValue, etag: &HeaderValue) -> bool {
    let Ok(s) = inm.to_str() else { return false };
    let want = etag.as_bytes();
    s.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t).as_bytes() == want)
}

/// A 200 with the bytes, or a 304 when the client already has them.
pub(super) fn conditional(
    headers: &HeaderMap,
    etag: &HeaderValue,
    content_type: &'static str,
    cache: &'static str,
    body: Bytes,
    link: Option<String>,
) -> Response {
    let fresh = headers
        .get(IF_NONE_MATCH)
        .map(|v| etag_matches(v, etag))
        .unwrap_or(false);
    let mut b = Response::builder()
        .header(ETAG, etag.clone())
        .header(CACHE_CONTROL, cache)
        .header(VARY, "Accept");
    if let Some(l) = link.and_then(|l| HeaderValue::from_str(&l).ok()) {
        b = b.header(LINK, l);
    }
    let r = if fresh {
        b.status(StatusCode::NOT_MODIFIED).body(Body::empty())
    } else {
        b.status(StatusCode::OK)
            .header(CONTENT_TYPE, content_type)
            .body(Body::from(body))
    };
    r.expect("valid response parts")
}

pub(super) fn static_json(body: &Bytes) -> Response {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (
                CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=60"),
            ),
        ],
        body.clone(),
    )
        .into_response()
}

pub(super) fn parse_date(s: &str, what: &str) -> Result<Date, ApiError> {
    Date::parse(s).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_date",
            format!("{what}: {e}"),
            "write dates as YYYY-MM-DD (UTC) from 1970-01-01 to 9999-12-31, for example 2026-01-05",
        )
    })
}

/// Query parameters, refusing any not in `allowed` (a typo like `form=` must not silently
/// return everything).
pub(super) fn query(
    raw: Option<String>,
    allowed: &[&str],
) -> Result<BTreeMap<String, String>, ApiError> {
    let mut out = BTreeMap::new();
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        if !allowed.contains(&k.as_ref()) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_query",
                format!("unknown query parameter `{k}`"),
                &format!("this endpoint takes: {}", allowed.join(", ")),
            ));
        }
        if out.contains_key(k.as_ref()) {
            // `?version=1&version=2` must not silently mean one of them.
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_query",
                format!("query parameter `{k}` is given more than once"),
                "give each parameter once",
            ));
        }
        out.insert(k.into_owned(), v.into_owned());
    }
    Ok(out)
}

pub(super) fn not_determined(tier: &str, what: String, snap: &Snapshot) -> ApiError {
    let hint = match snap.latest(tier) {
        Some(s) => format!(
            "the latest published {tier} determination is for {}",
            s.entry.date
        ),
        None => format!("nothing has been published for {tier} yet"),
    };
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_determined",
        format!("no {tier} determination {what}"),
        &hint,
    )
}

/// The raw (still percent-encoded) segment `i` of the path. Tiers and dates never contain
/// escapes, so matching raw segments is exact and cannot fail on invalid UTF-8 the way a
/// decoding extractor would (which would answer a plain-text 400 instead of our JSON).
pub(super) fn segment(uri: &Uri, i: usize) -> String {
    uri.path().split('/').nth(i).unwrap_or("").to_string()
}
