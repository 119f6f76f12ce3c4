//! The API's routes: each handler reads the current snapshot and answers from its
//! pre-rendered bytes; every answer is counted per route and status for `/metrics`.

use super::api::{conditional, not_determined, parse_date, query, segment, static_json, ApiError};
use super::snapshot::{etag_of, Served, Snapshot};
use super::{oversight, Service, OPENAPI};
use crate::archive::Archive;
use crate::certify::challenge::Challenger;
use crate::publisher::policy::cutoff_ms;
use crate::sys::clock::{Clock, SystemClock};
use axum::extract::{RawQuery, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::Uri;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use sit_core::index::Methodology;
use sit_core::probes::Suite;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// Route labels for metrics.
#[derive(Clone, Copy)]
pub(super) enum Route {
    Page,
    Healthz,
    Metrics,
    Tiers,
    Methodology,
    Keys,
    OpenApi,
    History,
    Latest,
    ByDate,
    NotFound,
    MethodNotAllowed,
    Commitments,
    Challenge,
    Settlement,
    Notices,
    Versions,
    Submissions,
    Disputes,
    Attestations,
    Consultations,
    Bundles,
    Parties,
}

const ROUTES: [&str; 23] = [
    "page",
    "healthz",
    "metrics",
    "tiers",
    "methodology",
    "keys",
    "openapi",
    "history",
    "latest",
    "by_date",
    "not_found",
    "method_not_allowed",
    "commitments",
    "challenge",
    "settlement",
    "notices",
    "versions",
    "submissions",
    "disputes",
    "attestations",
    "consultations",
    "bundles",
    "parties",
];
const STATUSES: [u16; 13] = [
    200, 201, 304, 400, 401, 403, 404, 405, 409, 413, 429, 503, 0,
];

/// Request counters by route and status: fixed arrays of atomics, no lock on the hot path.
pub(super) struct Metrics {
    pub(super) counts: [[AtomicU64; 13]; 23],
    pub(super) reloads: AtomicU64,
}

impl Metrics {
    fn hit(&self, r: Route, status: StatusCode) {
        let s = STATUSES
            .iter()
            .position(|&x| x == status.as_u16())
            .unwrap_or(STATUSES.len() - 1);
        self.counts[r as usize][s].fetch_add(1, Ordering::Relaxed);
    }
}

pub(super) struct AppState {
    pub(super) challenger: Option<Arc<Challenger>>,
    pub(super) intake: Option<Arc<crate::oversight::Intake>>,
    pub(super) service: Option<Arc<dyn Service>>,
    pub(super) archive: Archive,
    pub(super) snap: RwLock<Arc<Snapshot>>,
    pub(super) metrics: Metrics,
    pub(super) methodology_json: Bytes,
    pub(super) methodology: Methodology,
    pub(super) suite: &'static Suite,
}

impl AppState {
    pub(super) fn snap(&self) -> Arc<Snapshot> {
        self.snap.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

pub(super) fn done(st: &AppState, r: Route, resp: Response) -> Response {
    st.metrics.hit(r, resp.status());
    resp
}

/// A JSON body that caches may keep for a minute (the lists and versions that change only when
/// something is published).
pub(super) fn json_minute(body: Vec<u8>) -> Response {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (
                CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=60"),
            ),
        ],
        body,
    )
        .into_response()
}

pub(super) fn check_tier(st: &AppState, tier: &str) -> Result<(), ApiError> {
    if st.suite.tier(tier).is_some() {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_tier",
        format!("no tier `{tier}`"),
        &format!(
            "tiers are {}; see /v1/tiers",
            st.suite.tier_ids().join(", ")
        ),
    ))
}

async fn latest(State(st): State<Arc<AppState>>, uri: Uri, headers: HeaderMap) -> Response {
    let tier = segment(&uri, 3);
    let r = (|| {
        check_tier(&st, &tier)?;
        let snap = st.snap();
        let s = snap
            .latest(&tier)
            .ok_or_else(|| not_determined(&tier, "has been published".into(), &snap))?;
        Ok::<_, ApiError>(conditional(
            &headers,
            &s.etag,
            "application/json",
            "public, max-age=0, must-revalidate",
            s.bytes.clone(),
            None,
        ))
    })();
    done(
        &st,
        Route::Latest,
        r.unwrap_or_else(IntoResponse::into_response),
    )
}

fn version_links(tier: &str, versions: &[Arc<Served>], shown: u32) -> Option<String> {
    let links: Vec<String> = versions
        .iter()
        .filter(|v| v.entry.version != shown)
        .map(|v| {
            let rel = if v.entry.version < shown {
                "predecessor-version"
            } else {
                "successor-version"
            };
            format!(
                "</v1/index/{tier}/{}?version={}>; rel=\"{rel}\"",
                v.entry.date, v.entry.version
            )
        })
        .collect();
    (!links.is_empty()).then(|| links.join(", "))
}

async fn by_date(
    State(st): State<Arc<AppState>>,
    uri: Uri,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let (tier, date) = (segment(&uri, 3), segment(&uri, 4));
    let r = (|| {
        check_tier(&st, &tier)?;
        let date = parse_date(&date, "date")?;
        let q = query(q, &["version", "as_of"])?;
        let as_of = parse_as_of(&q)?;
        if as_of.is_some() && q.contains_key("version") {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_query",
                "give version or as_of, not both".into(),
                "version picks a version; as_of the one in force at a time",
            ));
        }
        let snap = st.snap();
        let versions = snap
            .records
            .get(&tier)
            .and_then(|d| d.get(&date))
            .ok_or_else(|| not_determined(&tier, format!("for {date}"), &snap))?;
        let (s, cache) = match q.get("version") {
            // point in time: what was in force then (the versions published by then)
            None if as_of.is_some() => {
                let s = in_force_at(versions, as_of).ok_or_else(|| {
                    ApiError::new(
                        StatusCode::NOT_FOUND,
                        "not_determined",
                        format!("no {tier} record of {date} was published by {}", q["as_of"]),
                        &format!(
                            "its first version was published at {}",
                            versions[0].entry.published_at
                        ),
                    )
                })?;
                (s, "public, max-age=60")
            }
            None => {
                let cutoff = cutoff_ms(&st.methodology, date);
                // Before the cutoff a restatement may still replace the record in force.
                let cache = if SystemClock.now_ms() >= cutoff {
                    "public, max-age=31536000, immutable"
                } else {
                    "public, max-age=60"
                };
                (versions.last().expect("non-empty"), cache)
            }
            Some(v) => {
                let n: u32 = v.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "bad_version",
                        format!("version `{v}` is not a positive integer"),
                        "versions are numbered from 1",
                    )
                })?;
                let s = versions
                    .iter()
                    .find(|s| s.entry.version == n)
                    .ok_or_else(|| {
                        ApiError::new(
                            StatusCode::NOT_FOUND,
                            "unknown_version",
                            format!("{tier} {date} has no version {n}"),
                            &format!("versions 1 to {} exist", versions.len()),
                        )
                    })?;
                // A given version never changes.
                (s, "public, max-age=31536000, immutable")
            }
        };
        Ok::<_, ApiError>(conditional(
            &headers,
            &s.etag,
            "application/json",
            cache,
            s.bytes.clone(),
            version_links(&tier, versions, s.entry.version),
        ))
    })();
    done(
        &st,
        Route::ByDate,
        r.unwrap_or_else(IntoResponse::into_response),
    )
}

/// `as_of`: an RFC 3339 UTC time (`2026-01-07T12:00:00Z`), or a day (`2026-01-07`: its start).
fn parse_as_of(q: &std::collections::BTreeMap<String, String>) -> Result<Option<i64>, ApiError> {
    let Some(raw) = q.get("as_of") else {
        return Ok(None);
    };
    let ms = sit_core::time::parse_utc_ms(raw)
        .ok()
        .or_else(|| sit_core::time::Date::parse(raw).ok().map(|d| d.start_ms()));
    ms.map(Some).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_as_of",
            format!(
                "as_of `{}` is not a UTC time",
                raw.chars().take(40).collect::<String>()
            ),
            "give as_of as an RFC 3339 UTC time, e.g. 2026-01-07T12:00:00Z, or a day, e.g. 2026-01-07 (its start)",
        )
    })
}

/// The version of a day in force at `as_of` (the latest published by then), or the latest.
fn in_force_at(versions: &[Arc<Served>], as_of: Option<i64>) -> Option<&Arc<Served>> {
    match as_of {
        None => versions.last(),
        Some(t) => versions
            .iter()
            .rfind(|s| sit_core::time::parse_utc_ms(&s.entry.published_at).is_ok_and(|p| p <= t)),
    }
}

/// CSV columns of the history endpoint.
pub const CSV_HEADER: &str = "tier,date,version,status,value,sequence,carried_from,valid_partitions,partitions,endpoints_eligible,attempts,methodology_version,methodology_hash,suite_hash,merkle_root,published_at,key_id,record_hash,final_at,settles";

fn csv_row(s: &Served) -> String {
    let p = &s.publication;
    let d = &p.determination;
    let fin = sit_core::verify::finality(d, sit_core::versions::Registry::embedded());
    let f = [
        d.tier.clone(),
        d.date.to_string(),
        p.version.to_string(),
        d.status.as_str().to_string(),
        d.value.map(|v| v.to_string()).unwrap_or_default(),
        d.sequence.to_string(),
        d.contingency
            .as_ref()
            .and_then(|c| c.carried_from)
            .map(|x| x.to_string())
            .unwrap_or_default(),
        d.counts.valid_partitions.to_string(),
        d.counts.partitions.to_string(),
        d.counts.endpoints_eligible.to_string(),
        d.counts.attempts.to_string(),
        d.methodology_version.clone(),
        d.methodology_hash.clone(),
        d.suite_hash.clone(),
        d.merkle_root.clone(),
        p.published_at.clone(),
        p.key_id.clone(),
        s.entry.record_hash.clone(),
        fin.final_at.unwrap_or_default(),
        fin.settles.to_string(),
    ];
    let cells: Vec<String> = f
        .iter()
        .map(|c| {
            if c.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", c.replace('"', "\"\""))
            } else {
                c.clone()
            }
        })
        .collect();
    cells.join(",")
}

async fn history(
    State(st): State<Arc<AppState>>,
    uri: Uri,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let tier = segment(&uri, 3);
    let r = (|| {
        let (tier, csv_suffix) = match tier.strip_suffix(".csv") {
            Some(t) => (t.to_string(), true),
            None => (tier.clone(), false),
        };
        check_tier(&st, &tier)?;
        let q = query(q, &["from", "to", "as_of"])?;
        let as_of = parse_as_of(&q)?;
        let from = q.get("from").map(|s| parse_date(s, "from")).transpose()?;
        let to = q.get("to").map(|s| parse_date(s, "to")).transpose()?;
        if let (Some(f), Some(t)) = (from, to) {
            if f > t {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_range",
                    format!("from {f} is after to {t}"),
                    "give from <= to",
                ));
            }
        }
        let csv = csv_suffix
            || headers
                .get(axum::http::header::ACCEPT)
                .and_then(|a| a.to_str().ok())
                .is_some_and(|a| a.contains("text/csv"));
        let snap = st.snap();
        let chosen: Vec<&Arc<Served>> = snap
            .records
            .get(&tier)
            .into_iter()
            .flat_map(|days| days.iter())
            .filter(|(d, _)| from.is_none_or(|f| **d >= f) && to.is_none_or(|t| **d <= t))
            .filter_map(|(_, v)| in_force_at(v, as_of))
            .collect();
        let (body, ct) = if csv {
            let mut s = String::from(CSV_HEADER);
            s.push('\n');
            for r in &chosen {
                s.push_str(&csv_row(r));
                s.push('\n');
            }
            (Bytes::from(s), "text/csv; charset=utf-8")
        } else {
            // The records are embedded byte for byte, so each can be verified as served.
            let mut b = format!(
                "{{\"tier\":\"{tier}\",\"from\":{},\"to\":{},\"count\":{},\"records\":[",
                from.map(|d| format!("\"{d}\"")).unwrap_or("null".into()),
                to.map(|d| format!("\"{d}\"")).unwrap_or("null".into()),
                chosen.len()
            )
            .into_bytes();
            for (i, r) in chosen.iter().enumerate() {
                if i > 0 {
                    b.push(b',');
                }
                b.extend_from_slice(&r.bytes);
            }
            b.extend_from_slice(b"]}");
            (Bytes::from(b), "application/json")
        };
        Ok(conditional(
            &headers,
            &etag_of(&body),
            ct,
            "public, max-age=60",
            body,
            None,
        ))
    })();
    done(
        &st,
        Route::History,
        r.unwrap_or_else(IntoResponse::into_response),
    )
}

/// A settlement record of `tier`: `{period}` is `YYYY-MM` (the monthly contract), `YYYY-Qn`
/// (the quarterly one) or `latest` (the latest FINAL monthly value); `.csv` (or `Accept:
/// text/csv`) gives one row per day used. A period with a FINAL record serves it; before that,
/// the period to date as `sit run` last signed it (INDICATIVE). `?contract=ID` picks one of
/// several contracts of the same tier and cycle.
async fn settlement(
    State(st): State<Arc<AppState>>,
    uri: Uri,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    use sit_core::settlement::{Period, SettlementStatus};
    let (tier, raw) = (segment(&uri, 3), segment(&uri, 4));
    let r = (|| {
        check_tier(&st, &tier)?;
        let q = query(q, &["contract"])?;
        let (label, csv_suffix) = match raw.strip_suffix(".csv") {
            Some(l) => (l.to_string(), true),
            None => (raw.clone(), false),
        };
        let csv = csv_suffix
            || headers
                .get(axum::http::header::ACCEPT)
                .and_then(|a| a.to_str().ok())
                .is_some_and(|a| a.contains("text/csv"));
        let wanted = if label == "latest" {
            None
        } else {
            Some(Period::parse_label(&label).ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_month",
                    format!("`{label}` is not a contract period"),
                    "use YYYY-MM (monthly contract, e.g. 2026-02), YYYY-Qn (quarterly, e.g. 2026-Q1) or latest",
                )
            })?)
        };
        let contract_ok = |a: &crate::archive::settlements::Archived| match q.get("contract") {
            Some(id) => a.record.contract.id == *id,
            None => true,
        };
        // From the snapshot (reloaded when the settlement files change), never the disk.
        let snap = st.snap();
        let (finals, to_date) = snap
            .settlement_records
            .get(&tier)
            .map(|(f, i)| (f.as_slice(), i.as_slice()))
            .unwrap_or_default();
        let found = match wanted {
            None => finals.iter().rfind(|a| {
                contract_ok(a)
                    && (q.contains_key("contract")
                        || a.record.contract.cycle == sit_core::settlement::Cycle::Monthly)
            }),
            Some((cycle, period)) => {
                let fits = |a: &&crate::archive::settlements::Archived| {
                    a.record.contract.cycle == cycle && a.record.period == period && contract_ok(a)
                };
                finals
                    .iter()
                    .find(fits)
                    .or_else(|| to_date.iter().find(fits))
            }
        };
        let a = found.ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_settled",
                format!(
                    "no settlement value of {tier}{} for {label}",
                    q.get("contract").map(|c| format!(" ({c})")).unwrap_or_default()
                ),
                "a period is settled FINAL once its final settlement time has passed (sit run, or sit settle --key); before that, sit run publishes it to date after each day",
            )
        })?;
        // A FINAL record never changes; an INDICATIVE one is replaced after each publication.
        let cache = match a.record.status {
            SettlementStatus::Final if label != "latest" => "public, max-age=31536000, immutable",
            _ => "public, max-age=60",
        };
        let (ct, body) = if csv {
            (
                "text/csv; charset=utf-8",
                Bytes::from(sit_core::settlement::to_csv(&a.record)),
            )
        } else {
            ("application/json", a.bytes.clone())
        };
        Ok::<_, ApiError>(conditional(
            &headers,
            &etag_of(&body),
            ct,
            cache,
            body,
            None,
        ))
    })();
    done(
        &st,
        Route::Settlement,
        r.unwrap_or_else(IntoResponse::into_response),
    )
}

/// The probe-schedule commitment of a day (published before it) and, once the day is over,
/// its reveal: auditors check every probe of the day against the schedule the seed fixes.
async fn commitments(State(st): State<Arc<AppState>>, uri: Uri) -> Response {
    let date = segment(&uri, 3);
    let r = (|| {
        let date = parse_date(&date, "date")?;
        let c = st.archive.commitment(date).ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_committed",
                format!("no probe-schedule commitment for {date}"),
                "commitments are published before each probed day",
            )
        })?;
        let body = serde_json::json!({
            "date": date,
            "commitment": c,
            "reveal": st.archive.reveal(date),
            "scheme": "commitment = blake3(\"sit-seed-commit-v1\" || date || seed (8 bytes LE) || salt (32 bytes)); the schedule is sit_core::schedule::schedule(seed) under the commitment's schedule version (1: independent draws, the default when absent; 2: paired probes, every endpoint the same (family, seed) set per hour and tier)",
        });
        Ok::<_, ApiError>(json_minute(serde_json::to_vec_pretty(&body).expect("json")))
    })();
    done(
        &st,
        Route::Commitments,
        r.unwrap_or_else(IntoResponse::into_response),
    )
}

/// `GET /v1/notices[?upcoming=true]`: every published notice (or those not yet in force), as
/// signed, and what is in force now; `GET /v1/notices/{id}`: one notice's signed bytes.
async fn notices(State(st): State<Arc<AppState>>, uri: Uri) -> Response {
    use crate::archive::notices as stored;
    let id = segment(&uri, 3);
    let r = (|| {
        let all = stored::all(st.archive.root()).map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "notices_unreadable",
                e.to_string(),
                "the operator must restore the notices folder from a backup",
            )
        })?;
        if !id.is_empty() {
            let p = all.iter().find(|p| p.notice.id == id).ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "no_notice",
                    format!("no notice {id}"),
                    "GET /v1/notices lists them (ids N-0000, N-0001, ...)",
                )
            })?;
            return Ok::<_, ApiError>(json_minute(p.bytes.clone()));
        }
        let q = query(uri.query().map(String::from), &["upcoming"])?;
        let upcoming = match q.get("upcoming").map(String::as_str) {
            None | Some("false") => false,
            Some("true") => true,
            Some(v) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_query",
                    format!("upcoming={v}"),
                    "upcoming=true or upcoming=false",
                ))
            }
        };
        let now = crate::sys::clock::Clock::now_ms(&crate::sys::clock::SystemClock);
        let notices: Vec<&stored::Published> = all
            .iter()
            .filter(|p| !upcoming || p.notice.effective_ms().is_ok_and(|e| e > now))
            .collect();
        let list: Vec<serde_json::Value> = notices
            .iter()
            .filter_map(|p| serde_json::from_slice(&p.bytes).ok())
            .collect();
        let plain: Vec<sit_core::notice::Notice> = all.iter().map(|p| p.notice.clone()).collect();
        let in_force = sit_core::notice::State::at(&plain, now).ok();
        let body = serde_json::json!({
            "notices": list,
            "in_force": in_force,
            "rules": "index-methodology.md, governance: minimum notice patch 5 business days (Mon-Fri UTC), minor 30 days, major 90 days with a consultation closing at least 30 days before; an emergency may take effect at the start of the day after next (the next day's schedule is already committed), with its reason, and is flagged",
        });
        Ok(json_minute(serde_json::to_vec_pretty(&body).expect("json")))
    })();
    done(
        &st,
        Route::Notices,
        r.unwrap_or_else(IntoResponse::into_response),
    )
}

/// `GET /v1/methodology/{hash}` and `GET /v1/suite/{hash}`: a version this build knows, by
/// hash, with the notice that brought it into force (if any).
async fn versions(State(st): State<Arc<AppState>>, uri: Uri) -> Response {
    let (what, hash) = (segment(&uri, 2), segment(&uri, 3));
    let r = (|| {
        let registry = sit_core::versions::Registry::embedded();
        let brought_by = crate::archive::notices::all(st.archive.root())
            .unwrap_or_default()
            .into_iter()
            .find(|p| {
                p.notice.changes.iter().any(|c| match c {
                    sit_core::notice::Change::Methodology { hash: h, .. }
                    | sit_core::notice::Change::Suite { hash: h, .. } => *h == hash,
                    _ => false,
                })
            })
            .map(|p| {
                serde_json::json!({"id": p.notice.id, "class": p.notice.class, "effective_at": p.notice.effective_at})
            });
        let body = if what == "methodology" {
            let m = registry.methodology(&hash).map_err(|e| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "unknown_version",
                    e.to_string(),
                    "GET /v1/methodology lists every version this build knows",
                )
            })?;
            serde_json::json!({
                "version": m.version, "hash": hash, "parameters": m, "notice": brought_by,
                "document": "index-methodology.md (its version history names what each version changed)",
            })
        } else {
            let s = registry.suite(&hash).map_err(|e| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "unknown_version",
                    e.to_string(),
                    "GET /v1/methodology names the suites this build knows",
                )
            })?;
            serde_json::json!({
                "version": s.version, "hash": hash, "tiers": s.tier_ids(), "notice": brought_by,
            })
        };
        Ok::<_, ApiError>(json_minute(serde_json::to_vec_pretty(&body).expect("json")))
    })();
    done(
        &st,
        Route::Versions,
        r.unwrap_or_else(IntoResponse::into_response),
    )
}

/// `POST /v1/certify/challenge` with a certifier's signed request
/// ([`sit_core::certificate::challenge::ChallengeRequest`]): a fresh signed challenge for its
/// key, recorded before it is returned. `GET /v1/certify/challenges?key_id=K`: every challenge
/// that key drew (read-only).
async fn challenge(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    use crate::certify::challenge::IssueError;
    use sit_core::certificate::challenge::RequestError;
    let r = (|| {
        let Some(c) = &st.challenger else {
            return Err(no_challenger());
        };
        let doc = c.issue_for(&body, SystemClock.now_ms()).map_err(|e| {
            let (status, code, hint) = match &e {
                IssueError::Request(RequestError::Malformed(_)) => (
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "POST a challenge request signed with the certifier's key (schema sit-challenge-request/1); sit certify --challenge does",
                ),
                IssueError::Request(RequestError::Signature(_)) => (
                    StatusCode::UNAUTHORIZED,
                    "not_signed",
                    "sign the request with the key whose id and public key it names",
                ),
                IssueError::Request(RequestError::Stale { .. }) => (
                    StatusCode::BAD_REQUEST,
                    "stale_request",
                    "set requested_at to the current UTC time (check the certifier's clock)",
                ),
                IssueError::Replayed(_) => (
                    StatusCode::CONFLICT,
                    "replayed",
                    "sign a new request with a fresh nonce",
                ),
                IssueError::KeyRate { .. } | IssueError::Rate => (
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    "draw again in the next clock hour",
                ),
                IssueError::Io(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", "retry later"),
            };
            ApiError::new(status, code, e.to_string(), hint)
        })?;
        Ok((
            [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            doc,
        )
            .into_response())
    })();
    done(
        &st,
        Route::Challenge,
        r.unwrap_or_else(IntoResponse::into_response),
    )
}

fn no_challenger() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "this server issues no certification challenges".into(),
        "the oracle issues them when it runs with its key (sit run --serve, or sit serve --key FILE)",
    )
}

async fn challenges(State(st): State<Arc<AppState>>, RawQuery(q): RawQuery) -> Response {
    let r = (|| {
        let q = query(q, &["key_id"])?;
        let Some(c) = &st.challenger else {
            return Err(no_challenger());
        };
        let key_id = q.get("key_id").cloned().unwrap_or_default();
        let ok = key_id.strip_prefix("ed25519:").is_some_and(|h| {
            h.len() == 16 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        });
        if !ok {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_query",
                "key_id must be the certifier's key id, ed25519: and 16 lower-case hex digits"
                    .into(),
                "sit keys generate prints it",
            ));
        }
        let drawn: Vec<serde_json::Value> = c
            .issued()
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["certifier"] == key_id.as_str())
            .collect();
        let body = serde_json::json!({"key_id": key_id, "count": drawn.len(), "challenges": drawn});
        Ok((
            [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            body.to_string(),
        )
            .into_response())
    })();
    done(
        &st,
        Route::Challenge,
        r.unwrap_or_else(IntoResponse::into_response),
    )
}

/// `POST /v1/submissions`: a registered party's signed submission
/// ([`sit_core::oversight::Submission`]), checked, stored in the register and answered with
/// the oracle's signed receipt (201). Refusals write nothing and are counted in `/metrics`.
async fn submissions(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    let Some(intake) = st.intake.clone() else {
        let r = ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "this server takes no submissions".into(),
            "the oracle takes them when it runs with its key and a parties file (sit run --serve --parties FILE, or sit serve --key FILE --parties FILE)",
        )
        .into_response();
        return done(&st, Route::Submissions, r);
    };
    let now = SystemClock.now_ms();
    let r = tokio::task::spawn_blocking(move || intake.submit(&body, now)).await;
    let r = match r {
        Ok(Ok(receipt)) => (
            StatusCode::CREATED,
            [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            receipt,
        )
            .into_response(),
        Ok(Err(e)) => oversight::refusal(&e).into_response(),
        Err(e) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
            "retry later",
        )
        .into_response(),
    };
    done(&st, Route::Submissions, r)
}

async fn tiers(State(st): State<Arc<AppState>>) -> Response {
    let r = static_json(&st.snap().tiers_json);
    done(&st, Route::Tiers, r)
}

async fn keys_handler(State(st): State<Arc<AppState>>) -> Response {
    let r = static_json(&st.snap().keys_json);
    done(&st, Route::Keys, r)
}

async fn methodology(State(st): State<Arc<AppState>>) -> Response {
    let r = static_json(&st.methodology_json);
    done(&st, Route::Methodology, r)
}

async fn openapi(State(st): State<Arc<AppState>>) -> Response {
    let r = static_json(&Bytes::from_static(OPENAPI.as_bytes()));
    done(&st, Route::OpenApi, r)
}

async fn page(State(st): State<Arc<AppState>>) -> Response {
    let snap = st.snap();
    // stale by the wall clock: decided per request, as time passes with nothing published
    let body = match super::page::stale_banner(
        &snap,
        SystemClock.now_ms(),
        36 * sit_core::time::HOUR_MS,
    ) {
        Some(banner) => {
            let page = String::from_utf8_lossy(&snap.page);
            Bytes::from(page.replacen("</h1>", &format!("</h1>\n{banner}"), 1))
        }
        None => snap.page.clone(),
    };
    let r = (
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (
                CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=60"),
            ),
        ],
        body,
    )
        .into_response();
    done(&st, Route::Page, r)
}

async fn healthz(State(st): State<Arc<AppState>>) -> Response {
    let snap = st.snap();
    let (reasons, facts) = match &st.service {
        Some(s) => {
            let (r, f) = s.health();
            (r, Some(f))
        }
        None => (Vec::new(), None),
    };
    let ok = snap.errors.is_empty() && reasons.is_empty();
    let mut body = serde_json::json!({
        "status": if ok { "ok" } else { "degraded" },
        "records": snap.count,
        "loaded_at": snap.loaded_at,
        "errors": snap.errors,
    });
    // disputes past their deadline and consultations without an outcome are shown, not a
    // reason to take the server out of rotation: what it serves is still right
    body["oversight"] = oversight::health(&st);
    if let Some(f) = facts {
        body["reasons"] = serde_json::json!(reasons);
        body["service"] = f;
    }
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let r = (
        status,
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body.to_string(),
    )
        .into_response();
    done(&st, Route::Healthz, r)
}

async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    use std::fmt::Write;
    let snap = st.snap();
    let mut s = String::new();
    s.push_str("# HELP sit_http_requests_total HTTP requests answered, by route and status.\n# TYPE sit_http_requests_total counter\n");
    for (ri, route) in ROUTES.iter().enumerate() {
        for (si, status) in STATUSES.iter().enumerate() {
            let n = st.metrics.counts[ri][si].load(Ordering::Relaxed);
            if n > 0 {
                let status = if *status == 0 {
                    "other".to_string()
                } else {
                    status.to_string()
                };
                let _ = writeln!(
                    s,
                    "sit_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
    }
    let _ = writeln!(s, "# HELP sit_published_records Signed records being served.\n# TYPE sit_published_records gauge\nsit_published_records {}", snap.count);
    let _ = writeln!(s, "# HELP sit_archive_errors Archive records refused at load (see /healthz).\n# TYPE sit_archive_errors gauge\nsit_archive_errors {}", snap.errors.len());
    let _ = writeln!(s, "# HELP sit_archive_reloads_total Times the archive was reloaded after a publish.\n# TYPE sit_archive_reloads_total counter\nsit_archive_reloads_total {}", st.metrics.reloads.load(Ordering::Relaxed));
    s.push_str("# HELP sit_index_value Latest published value per tier (USD per 1,000,000 SIT; exact value in the record).\n# TYPE sit_index_value gauge\n");
    for t in &st.suite.tiers {
        if let Some(l) = snap.latest(&t.id) {
            if let Some(v) = l.entry.value {
                let _ = writeln!(
                    s,
                    "sit_index_value{{tier=\"{}\",date=\"{}\",status=\"{}\"}} {v}",
                    t.id,
                    l.entry.date,
                    l.entry.status.as_str()
                );
            }
        }
    }
    oversight::metrics(&st, &mut s);
    if let Some(svc) = &st.service {
        svc.metrics(&mut s);
    }
    let r = (
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        s,
    )
        .into_response();
    done(&st, Route::Metrics, r)
}

async fn not_found(State(st): State<Arc<AppState>>, uri: Uri) -> Response {
    let r = ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no resource at {}", uri.path()),
        "see /v1/openapi.json for the endpoints",
    )
    .into_response();
    done(&st, Route::NotFound, r)
}

async fn method_not_allowed(State(st): State<Arc<AppState>>, uri: Uri) -> Response {
    // The one route that writes takes only POST; every other is read-only.
    let (message, hint, allow) = if uri.path() == "/v1/submissions" {
        (
            "a submission is accepted only as a POSTed document signed by a registered party's key",
            "POST a sit-submission/1 document (sit submit does); GET /v1/disputes and /v1/attestations read the register",
            "POST",
        )
    } else if uri.path() == "/v1/certify/challenge" {
        (
            "a challenge is issued only to a POSTed request signed by the certifier's key",
            "POST a sit-challenge-request/1 document (sit certify --challenge does)",
            "POST",
        )
    } else {
        ("this API is read-only", "use GET (or HEAD)", "GET, HEAD")
    };
    let mut r = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        message.into(),
        hint,
    )
    .into_response();
    r.headers_mut()
        .insert(axum::http::header::ALLOW, HeaderValue::from_static(allow));
    done(&st, Route::MethodNotAllowed, r)
}

/// The router over an initial snapshot (exposed for tests that want no reload task).
pub(super) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/tiers", get(tiers))
        .route("/v1/methodology", get(methodology))
        .route("/v1/keys", get(keys_handler))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/commitments/{date}", get(commitments))
        .route("/v1/notices", get(notices))
        .route("/v1/notices/{id}", get(notices))
        .route("/v1/methodology/{hash}", get(versions))
        .route("/v1/suite/{hash}", get(versions))
        .route("/v1/certify/challenge", post(challenge))
        .route("/v1/certify/challenges", get(challenges))
        .route("/v1/submissions", post(submissions))
        .route("/v1/parties", get(oversight::parties))
        .route("/v1/disputes", get(oversight::disputes))
        .route("/v1/disputes/{id}", get(oversight::disputes))
        .route(
            "/v1/attestations/{tier}/{date}",
            get(oversight::attestations),
        )
        .route("/v1/consultations", get(oversight::consultations))
        .route("/v1/bundles", get(oversight::bundles))
        .route("/v1/bundles/{date}", get(oversight::bundles))
        .route("/v1/bundles/{date}/{*file}", get(oversight::bundles))
        .route("/v1/index/{tier}", get(history))
        .route("/v1/index/{tier}/latest", get(latest))
        .route("/v1/index/{tier}/{date}", get(by_date))
        .route("/v1/settlement/{tier}/latest", get(settlement))
        .route("/v1/settlement/{tier}/{period}", get(settlement))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}
