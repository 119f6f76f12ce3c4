//! Consultations (issue 30): a major notice opens one (its `consultation` window, checked when
//! the notice is published); registered parties respond through `POST /v1/submissions` while
//! it is open; after it closes, and before the change takes effect, the administrator
//! publishes its outcome: every response received (quoted where the party allowed it, else
//! by party and hash) or "no responses", and the decision (`sit consultation close`).

use crate::archive::register::{self, Register};
use crate::archive::Archive;
use ed25519_dalek::SigningKey;
use sit_core::notice::{Class, Notice};
use sit_core::oversight::{self, Body, ConsultationOutcome, Listed, Parties};
use sit_core::time::{format_utc_ms, parse_utc_ms};

fn notice(archive: &Archive, id: &str) -> Result<Notice, String> {
    let all = crate::archive::notices::all(archive.root()).map_err(|e| e.to_string())?;
    all.into_iter()
        .map(|p| p.notice)
        .find(|n| n.id == id)
        .ok_or_else(|| format!("no notice {id} is published (GET /v1/notices lists them)"))
}

/// A notice's consultation window (UTC ms), if it is a major notice with one.
fn window(n: &Notice) -> Result<(i64, i64), String> {
    match (&n.consultation, n.class) {
        (Some(c), Class::Major) => Ok((
            parse_utc_ms(&c.opens).map_err(|e| e.to_string())?,
            parse_utc_ms(&c.closes).map_err(|e| e.to_string())?,
        )),
        _ => Err(format!(
            "notice {} is {}, not a major notice: it opens no consultation",
            n.id,
            n.class.name()
        )),
    }
}

/// Whether notice `id`'s consultation takes responses at `now_ms` (else why not).
pub fn open(archive: &Archive, reg: &Register, id: &str, now_ms: i64) -> Result<(), String> {
    let n = notice(archive, id)?;
    let (opens, closes) = window(&n)?;
    if now_ms < opens {
        return Err(format!(
            "the consultation on {id} opens at {}",
            format_utc_ms(opens)
        ));
    }
    if now_ms >= closes || reg.consultation_outcome(id).is_some() {
        return Err(format!(
            "the consultation on {id} closed at {}",
            format_utc_ms(closes)
        ));
    }
    Ok(())
}

/// Close notice `id`'s consultation at `now_ms`: sign and record its outcome with `decision`.
/// Refused before the consultation closes, once the change has taken effect (the outcome
/// comes first), and when an outcome is published already.
pub fn close(
    archive: &Archive,
    parties: &Parties,
    key: &SigningKey,
    id: &str,
    decision: &str,
    now_ms: i64,
) -> Result<(ConsultationOutcome, Vec<u8>), String> {
    let n = notice(archive, id)?;
    let (_, closes) = window(&n)?;
    let effective = n.effective_ms().map_err(|e| e.to_string())?;
    if now_ms < closes {
        return Err(format!(
            "the consultation on {id} is open until {}: close it after that",
            format_utc_ms(closes)
        ));
    }
    if now_ms >= effective {
        return Err(format!(
            "{id} took effect at {} without a published consultation outcome; the outcome must come before the change (say so in a new notice)",
            n.effective_at
        ));
    }
    if decision.trim().is_empty() {
        return Err("give the decision (--decision TEXT)".into());
    }
    // under the archive's lock: one writer of the register across processes
    let lock = archive.lock().map_err(|e| e.to_string())?;
    let reg = Register::read(archive.root()).map_err(|e| e.to_string())?;
    if reg.consultation_outcome(id).is_some() {
        return Err(format!(
            "the outcome of the consultation on {id} is published already"
        ));
    }
    let responses = reg
        .responses(id)
        .map(|e| {
            let party = parties.by_key(&e.submission.key_id);
            let (text, public) = match &e.submission.body {
                Body::ConsultationResponse(r) => (r.response.clone(), r.public),
                _ => unreachable!("responses() yields consultation responses"),
            };
            Listed {
                id: e.receipt.id.clone(),
                party: party
                    .map(|p| p.id.clone())
                    .unwrap_or_else(|| e.submission.key_id.clone()),
                role: party
                    .map(|p| p.role)
                    .unwrap_or(sit_core::oversight::Role::Provider),
                received_at: e.receipt.received_at.clone(),
                submission_hash: e.receipt.submission_hash.clone(),
                response: public.then_some(text),
            }
        })
        .collect();
    let o = ConsultationOutcome {
        schema: oversight::CONSULTATION_OUTCOME_SCHEMA.into(),
        notice: id.to_string(),
        closed_at: format_utc_ms(closes),
        responses,
        decision: decision.to_string(),
        published_at: format_utc_ms(now_ms),
        key_id: sit_core::signing::key_id(&key.verifying_key()),
    };
    let bytes = oversight::sign_consultation_outcome(&o, key);
    register::put_consultation_outcome(archive.root(), &lock, &bytes).map_err(|e| e.to_string())?;
    Ok((o, bytes))
}

/// Major notices whose consultation has closed with no outcome published, at `now_ms`: (id,
/// effective time, whether it has taken effect already). `/healthz` names them.
pub fn pending(archive: &Archive, reg: &Register, now_ms: i64) -> Vec<(String, String, bool)> {
    let Ok(all) = crate::archive::notices::all(archive.root()) else {
        return Vec::new();
    };
    all.into_iter()
        .filter_map(|p| {
            let n = p.notice;
            let (_, closes) = window(&n).ok()?;
            let effective = n.effective_ms().ok()?;
            (now_ms >= closes && reg.consultation_outcome(&n.id).is_none())
                .then(|| (n.id.clone(), n.effective_at.clone(), now_ms >= effective))
        })
        .collect()
}
