//! The oversight register's read routes (issue 30) and the archived audit bundles:
//!
//! - `GET /v1/disputes[/{id}]`: the register of disputes (id, subject, dates, status, the
//!   signed outcome); the submitter's reason and evidence only where it marked them public;
//! - `GET /v1/attestations/{tier}/{date}`: every auditor's signed attestation of the day's
//!   records, and how many distinct auditors reproduced the record in force;
//! - `GET /v1/consultations`: each major notice's consultation, its responses (as the outcome
//!   may list them) and its signed outcome;
//! - `GET /v1/parties`: the registered parties' roles and public keys;
//! - `GET /v1/bundles[/{date}[/{file}]]`: the days with an audit bundle, a bundle's manifest,
//!   and each file the manifest names (what `sit attest` replays).
//!
//! The register is read from disk on each request: these routes are not on the settlement
//! hot path, and the register is small (one line per submission).

use super::api::{parse_date, segment, ApiError};
use super::routes::{check_tier, done, json_minute, AppState, Route};
use crate::archive::register::Register;
use crate::oversight::IntakeError;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use sit_core::oversight::{Body, SubmissionError};
use std::sync::Arc;

/// The API error for a refused submission.
pub(super) fn refusal(e: &IntakeError) -> ApiError {
    let (status, hint) = match e {
        IntakeError::Submission(s) => match s {
            SubmissionError::TooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "keep a submission under 32 KiB: give evidence as a URL and its hash",
            ),
            SubmissionError::Malformed(_) => (
                StatusCode::BAD_REQUEST,
                "POST a sit-submission/1 document, canonical JSON signed by your key (sit submit writes one)",
            ),
            SubmissionError::UnknownKind(_) => (
                StatusCode::BAD_REQUEST,
                "body.kind is dispute, consultation_response, attestation or resolution",
            ),
            SubmissionError::UnknownParty(_) => (
                StatusCode::UNAUTHORIZED,
                "sign with the key the oracle registered for you (GET /v1/parties); to be registered, ask the administrator",
            ),
            SubmissionError::Signature(_) => (
                StatusCode::UNAUTHORIZED,
                "sign the canonical bytes (RFC 8785) of the document without `signature` with the key key_id names",
            ),
            SubmissionError::Stale(_) => (
                StatusCode::BAD_REQUEST,
                "set submitted_at to the current UTC time (check your clock)",
            ),
            SubmissionError::Role { .. } => (
                StatusCode::FORBIDDEN,
                "disputes and consultation responses come from providers, exchanges and auditors; attestations from auditors; resolutions from the administrator",
            ),
        },
        IntakeError::Replayed(_) => (StatusCode::CONFLICT, "sign a new submission with a fresh nonce"),
        IntakeError::PartyRate { .. } | IntakeError::Rate => {
            (StatusCode::TOO_MANY_REQUESTS, "submit again in the next minute")
        }
        IntakeError::UnknownDispute(_) => (
            StatusCode::NOT_FOUND,
            "GET /v1/disputes lists the disputes (ids S-000001, ...)",
        ),
        IntakeError::AlreadyResolved(_) => (
            StatusCode::CONFLICT,
            "GET /v1/disputes/{id} shows its outcome",
        ),
        IntakeError::UnknownSubject(_) => (
            StatusCode::NOT_FOUND,
            "name a published record: GET /v1/index/{tier}/{date} shows it, with its version and record hash",
        ),
        IntakeError::NotOpen(_) => (
            StatusCode::CONFLICT,
            "GET /v1/consultations shows each consultation's window",
        ),
        IntakeError::NoPublisher(_) => (
            StatusCode::CONFLICT,
            "resolve it on the oracle that publishes (sit run --serve --parties FILE)",
        ),
        IntakeError::Archive(_) => (StatusCode::SERVICE_UNAVAILABLE, "retry later"),
    };
    ApiError::new(status, e.reason(), e.to_string(), hint)
}

/// The oracle's time: its intake's clock (the folder's), else the system clock.
fn now(st: &AppState) -> i64 {
    match &st.intake {
        Some(i) => i.now_ms(),
        None => crate::sys::clock::Clock::now_ms(&crate::sys::clock::SystemClock),
    }
}

fn register(st: &AppState) -> Result<Register, ApiError> {
    Register::read(st.archive.root()).map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "register_unreadable",
            e.to_string(),
            "the operator must restore the register from a backup",
        )
    })
}

fn signed(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap_or(serde_json::Value::Null)
}

/// `GET /v1/disputes` and `GET /v1/disputes/{id}`.
pub(super) async fn disputes(State(st): State<Arc<AppState>>, uri: Uri) -> Response {
    let id = segment(&uri, 3);
    let r = (|| {
        let reg = register(&st)?;
        let now = now(&st);
        let row = |d: &crate::archive::register::DisputeState| {
            let x = d.dispute();
            let r = &d.entry.receipt;
            let status = match &d.outcome {
                Some((o, _)) => o.decision.as_str(),
                None if d.overdue(now) => "overdue",
                None => "open",
            };
            let mut v = serde_json::json!({
                "id": r.id,
                "subject": x.subject,
                "about": x.subject.describe(),
                "submitted_by": r.party,
                "received_at": r.received_at,
                "respond_by": r.respond_by,
                "status": status,
                "receipt": signed(&d.entry.receipt_bytes),
                "outcome": d.outcome.as_ref().map(|(_, b)| signed(b)),
            });
            if x.public {
                v["reason"] = x.reason.clone().into();
                v["evidence"] = x.evidence.clone().into();
            }
            v
        };
        let body = if id.is_empty() {
            let list: Vec<serde_json::Value> = reg.disputes.iter().map(row).collect();
            serde_json::json!({
                "disputes": list,
                "open": reg.disputes.iter().filter(|d| d.outcome.is_none()).count(),
                "overdue": reg.disputes.iter().filter(|d| d.overdue(now)).count(),
                "procedure": "index-methodology.md, oversight: a dispute is answered within 10 days; an upheld dispute about a day inside its restatement window restates it (the observation voided), outside it the value stands and the outcome says why",
            })
        } else {
            let d = reg.dispute(&id).ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "unknown_dispute",
                    format!("no dispute {}", id.chars().take(40).collect::<String>()),
                    "GET /v1/disputes lists them (ids S-000001, ...)",
                )
            })?;
            row(d)
        };
        Ok::<_, ApiError>(json_minute(serde_json::to_vec_pretty(&body).expect("json")))
    })();
    done(
        &st,
        Route::Disputes,
        r.unwrap_or_else(IntoResponse::into_response),
    )
}

/// `GET /v1/attestations/{tier}/{date}`.
pub(super) async fn attestations(State(st): State<Arc<AppState>>, uri: Uri) -> Response {
    let (tier, date) = (segment(&uri, 3), segment(&uri, 4));
    let r = (|| {
        check_tier(&st, &tier)?;
        let date = parse_date(&date, "date")?;
        let reg = register(&st)?;
        let snap = st.snap();
        let in_force = snap.in_force(&tier, date).map(|s| s.entry.clone());
        let list: Vec<serde_json::Value> = reg
            .attestations(&tier, date)
            .map(|(e, _)| {
                serde_json::json!({
                    "id": e.receipt.id,
                    "received_at": e.receipt.received_at,
                    "attestation": signed(&e.submission_bytes),
                })
            })
            .collect();
        let body = serde_json::json!({
            "tier": tier,
            "date": date,
            "record_in_force": in_force.as_ref().map(|e| serde_json::json!({"version": e.version, "record_hash": e.record_hash})),
            "reproduced_by": in_force.as_ref().map(|e| reg.reproduced_by(&tier, date, &e.record_hash)).unwrap_or(0),
            "attestations": list,
        });
        Ok::<_, ApiError>(json_minute(serde_json::to_vec_pretty(&body).expect("json")))
    })();
    done(
        &st,
        Route::Attestations,
        r.unwrap_or_else(IntoResponse::into_response),
    )
}

/// `GET /v1/consultations`.
pub(super) async fn consultations(State(st): State<Arc<AppState>>) -> Response {
    let r = (|| {
        let reg = register(&st)?;
        let now = now(&st);
        let all = crate::archive::notices::all(st.archive.root()).map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "notices_unreadable",
                e.to_string(),
                "the operator must restore the notices folder from a backup",
            )
        })?;
        let list: Vec<serde_json::Value> = all
            .iter()
            .filter_map(|p| {
                let c = p.notice.consultation.as_ref()?;
                let open = crate::oversight::consult::open(&st.archive, &reg, &p.notice.id, now);
                Some(serde_json::json!({
                    "notice": p.notice.id,
                    "opens": c.opens,
                    "closes": c.closes,
                    "effective_at": p.notice.effective_at,
                    "open": open.is_ok(),
                    "responses": reg.responses(&p.notice.id).count(),
                    "outcome": reg.consultation_outcome(&p.notice.id).map(|(_, b)| signed(b)),
                }))
            })
            .collect();
        Ok::<_, ApiError>(json_minute(
            serde_json::to_vec_pretty(&serde_json::json!({"consultations": list})).expect("json"),
        ))
    })();
    done(
        &st,
        Route::Consultations,
        r.unwrap_or_else(IntoResponse::into_response),
    )
}

/// `GET /v1/parties`: who may submit, with what role and key.
pub(super) async fn parties(State(st): State<Arc<AppState>>) -> Response {
    let body = match &st.intake {
        Some(i) => serde_json::json!({
            "parties": i.parties().parties,
            "oracle_key_id": sit_core::signing::key_id(&i.verifying_key()),
            "kinds": sit_core::oversight::KINDS,
        }),
        None => serde_json::json!({"parties": [], "note": "this server takes no submissions"}),
    };
    let r = json_minute(serde_json::to_vec_pretty(&body).expect("json"));
    done(&st, Route::Parties, r)
}

/// `GET /v1/bundles`, `/v1/bundles/{date}` (its manifest) and `/v1/bundles/{date}/{file}`
/// (a file its manifest names, or its intervals). Nothing outside a bundle is reachable: a
/// file is served only by a name the manifest lists.
pub(super) async fn bundles(State(st): State<Arc<AppState>>, uri: Uri) -> Response {
    let date = segment(&uri, 3);
    let file: String = uri.path().splitn(5, '/').nth(4).unwrap_or("").to_string();
    let r = (|| {
        let Some(data) = crate::archive::layout::data_of(st.archive.root()) else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "no_bundles",
                "this archive has no data folder beside it".into(),
                "bundles are served by the oracle that writes them (sit run, sit serve --data)",
            ));
        };
        if date.is_empty() {
            let mut days: Vec<String> = std::fs::read_dir(crate::archive::layout::bundles(data))
                .map(|rd| {
                    rd.filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| sit_core::time::Date::parse(n).is_ok())
                        .collect()
                })
                .unwrap_or_default();
            days.sort();
            return Ok(json_minute(
                serde_json::to_vec_pretty(&serde_json::json!({"bundles": days})).expect("json"),
            ));
        }
        let d = parse_date(&date, "date")?;
        let dir = crate::archive::layout::bundle(data, d);
        let missing = || {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no_bundle",
                format!("no audit bundle for {d}"),
                "a day's bundle is written after it is published; GET /v1/bundles lists them",
            )
        };
        let manifest = std::fs::read(dir.join("manifest.json")).map_err(|_| missing())?;
        let name = if file.is_empty() {
            "manifest.json".to_string()
        } else {
            let m: crate::audit::bundle::Manifest =
                serde_json::from_slice(&manifest).map_err(|_| missing())?;
            if !m.files.contains_key(&file)
                && file != crate::audit::bundle::INTERVALS
                && file != "manifest.json"
            {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "no_file",
                    format!(
                        "the {d} bundle has no file `{}`",
                        file.chars().take(200).collect::<String>()
                    ),
                    "the manifest (GET /v1/bundles/{date}) names every file",
                ));
            }
            file.clone()
        };
        let bytes = std::fs::read(dir.join(&name)).map_err(|_| missing())?;
        let ct = if name.ends_with(".json") {
            "application/json"
        } else {
            "text/plain; charset=utf-8"
        };
        Ok((
            [
                (CONTENT_TYPE, HeaderValue::from_static(ct)),
                (
                    axum::http::header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=60"),
                ),
            ],
            bytes,
        )
            .into_response())
    })();
    done(
        &st,
        Route::Bundles,
        r.unwrap_or_else(IntoResponse::into_response),
    )
}

/// Lines for `/metrics`: submissions accepted and refused by reason, disputes open and past
/// their deadline.
pub(super) fn metrics(st: &AppState, out: &mut String) {
    use std::fmt::Write;
    if let Some(i) = &st.intake {
        let (accepted, refused) = i.counts();
        let _ = writeln!(out, "# HELP sit_submissions_accepted_total Submissions stored in the register.\n# TYPE sit_submissions_accepted_total counter\nsit_submissions_accepted_total {accepted}");
        out.push_str("# HELP sit_submissions_refused_total Submissions refused (nothing stored), by reason.\n# TYPE sit_submissions_refused_total counter\n");
        for (reason, n) in refused {
            let _ = writeln!(
                out,
                "sit_submissions_refused_total{{reason=\"{reason}\"}} {n}"
            );
        }
    }
    if let Ok(reg) = Register::read(st.archive.root()) {
        let now = now(st);
        let open = reg.disputes.iter().filter(|d| d.outcome.is_none()).count();
        let overdue = reg.disputes.iter().filter(|d| d.overdue(now)).count();
        let _ = writeln!(out, "# HELP sit_disputes_open Disputes not yet resolved.\n# TYPE sit_disputes_open gauge\nsit_disputes_open {open}\n# HELP sit_disputes_overdue Disputes unresolved past their deadline.\n# TYPE sit_disputes_overdue gauge\nsit_disputes_overdue {overdue}");
    }
}

/// The oversight facts for `/healthz`: open disputes, those past their deadline, and major
/// notices whose consultation closed without a published outcome.
pub(super) fn health(st: &AppState) -> serde_json::Value {
    let now = now(st);
    match Register::read(st.archive.root()) {
        Ok(reg) => {
            let overdue: Vec<serde_json::Value> = reg
                .disputes
                .iter()
                .filter(|d| d.overdue(now))
                .map(|d| {
                    serde_json::json!({"id": d.entry.receipt.id, "respond_by": d.entry.receipt.respond_by})
                })
                .collect();
            let pending: Vec<serde_json::Value> =
                crate::oversight::consult::pending(&st.archive, &reg, now)
                    .into_iter()
                    .map(|(id, eff, took)| {
                        serde_json::json!({"notice": id, "effective_at": eff, "in_effect": took})
                    })
                    .collect();
            serde_json::json!({
                "disputes_open": reg.disputes.iter().filter(|d| d.outcome.is_none()).count(),
                "disputes_overdue": overdue,
                "consultations_without_outcome": pending,
                "attestations": reg.entries.iter().filter(|e| matches!(e.submission.body, Body::Attestation(_))).count(),
            })
        }
        Err(e) => serde_json::json!({"error": e.to_string()}),
    }
}
