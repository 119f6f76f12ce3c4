//! The oversight register (issue 30): `<data>/published/register.jsonl`, append-only and
//! fsynced line by line before anything is acknowledged, like the publication log. Each line
//! is one of:
//!
//! - `{"receipt":R,"submission":S}`: a submission a registered party made (its bytes as
//!   signed) and the oracle's signed receipt for it;
//! - `{"outcome":O}`: a dispute's signed outcome ([`sit_core::oversight::DisputeOutcome`]);
//! - `{"consultation_outcome":C}`: a consultation's signed outcome.
//!
//! The register is a fold over these lines ([`Register::read`]): disputes with their status,
//! attestations by record, consultation responses by notice. Nothing rewrites a line; a
//! refused submission writes none.

use super::{io, ArchiveError};
use crate::sys::durable;
use sit_core::index::Voided;
use sit_core::oversight::{
    Body, ConsultationOutcome, Decision, DisputeOutcome, Receipt, SubjectKind, Submission,
};
use sit_core::time::{parse_utc_ms, Date};
use std::path::{Path, PathBuf};

/// The register's file of an archive root (`<data>/published`).
pub fn path(root: &Path) -> PathBuf {
    root.join("register.jsonl")
}

/// One accepted submission: what the party signed and what the oracle answered.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The receipt (parsed).
    pub receipt: Receipt,
    /// The submission (parsed).
    pub submission: Submission,
    /// The receipt's signed bytes.
    pub receipt_bytes: Vec<u8>,
    /// The submission's signed bytes.
    pub submission_bytes: Vec<u8>,
}

/// A dispute and what became of it.
#[derive(Debug, Clone)]
pub struct DisputeState {
    /// The dispute as submitted.
    pub entry: Entry,
    /// Its outcome, once resolved.
    pub outcome: Option<(DisputeOutcome, Vec<u8>)>,
}

impl DisputeState {
    /// The dispute's body.
    pub fn dispute(&self) -> &sit_core::oversight::Dispute {
        match &self.entry.submission.body {
            Body::Dispute(d) => d,
            _ => unreachable!("only disputes are folded into DisputeState"),
        }
    }

    /// When it is due (UTC ms).
    pub fn due_ms(&self) -> Option<i64> {
        self.entry
            .receipt
            .respond_by
            .as_deref()
            .and_then(|t| parse_utc_ms(t).ok())
    }

    /// Whether it is unresolved past its deadline at `now_ms`.
    pub fn overdue(&self, now_ms: i64) -> bool {
        self.outcome.is_none() && self.due_ms().is_some_and(|d| now_ms > d)
    }
}

/// Everything in the register, folded.
#[derive(Debug, Clone, Default)]
pub struct Register {
    /// Every accepted submission, in order of receipt.
    pub entries: Vec<Entry>,
    /// The disputes, in order of receipt.
    pub disputes: Vec<DisputeState>,
    /// The consultations' outcomes (parsed, bytes).
    pub consultation_outcomes: Vec<(ConsultationOutcome, Vec<u8>)>,
}

fn parse_signed<T: serde::de::DeserializeOwned>(v: &serde_json::Value) -> Result<T, String> {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("signature");
    }
    serde_json::from_value(v).map_err(|e| e.to_string())
}

fn canonical_bytes(v: &serde_json::Value) -> Vec<u8> {
    sit_core::signing::canonical(v)
}

impl Register {
    /// Read and fold the register of archive root `root` (empty when there is none).
    pub fn read(root: &Path) -> Result<Register, ArchiveError> {
        let p = path(root);
        let text = match std::fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Register::default()),
            Err(e) => return Err(io(&p)(e)),
        };
        // a final line without its newline was torn by a crash during its append: it was never
        // acknowledged (no receipt went out), and the next append cuts it away
        let complete = match text.rfind('\n') {
            Some(i) => &text[..=i],
            None => "",
        };
        let mut r = Register::default();
        for (i, line) in complete.lines().enumerate() {
            let corrupt = |why: String| ArchiveError::Corrupt {
                path: p.clone(),
                line: i + 1,
                why,
            };
            let v: serde_json::Value =
                serde_json::from_str(line).map_err(|e| corrupt(e.to_string()))?;
            if let (Some(rv), Some(sv)) = (v.get("receipt"), v.get("submission")) {
                let e = Entry {
                    receipt: parse_signed(rv).map_err(&corrupt)?,
                    submission: parse_signed(sv).map_err(&corrupt)?,
                    receipt_bytes: canonical_bytes(rv),
                    submission_bytes: canonical_bytes(sv),
                };
                if matches!(e.submission.body, Body::Dispute(_)) {
                    r.disputes.push(DisputeState {
                        entry: e.clone(),
                        outcome: None,
                    });
                }
                r.entries.push(e);
            } else if let Some(ov) = v.get("outcome") {
                let o: DisputeOutcome = parse_signed(ov).map_err(&corrupt)?;
                let d = r
                    .disputes
                    .iter_mut()
                    .find(|d| d.entry.receipt.id == o.dispute)
                    .ok_or_else(|| {
                        corrupt(format!("an outcome of unknown dispute {}", o.dispute))
                    })?;
                d.outcome = Some((o, canonical_bytes(ov)));
            } else if let Some(cv) = v.get("consultation_outcome") {
                let c: ConsultationOutcome = parse_signed(cv).map_err(&corrupt)?;
                r.consultation_outcomes.push((c, canonical_bytes(cv)));
            } else {
                return Err(corrupt(
                    "neither a submission, an outcome nor a consultation outcome".into(),
                ));
            }
        }
        Ok(r)
    }

    /// The dispute with id `id`.
    pub fn dispute(&self, id: &str) -> Option<&DisputeState> {
        self.disputes.iter().find(|d| d.entry.receipt.id == id)
    }

    /// The resolution submitted for dispute `id`, if any.
    pub fn resolution(&self, id: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| matches!(&e.submission.body, Body::Resolution(r) if r.dispute == id))
    }

    /// Every observation voided by an upheld dispute (sorted, one per observation): a day's
    /// determination leaves out those among its inputs (an observation is an input of its
    /// own day and of the next, whose eligibility window reaches back into it).
    pub fn voided(&self) -> Vec<Voided> {
        let mut out: Vec<Voided> = self
            .disputes
            .iter()
            .filter(|d| d.dispute().subject.kind == SubjectKind::Observation)
            .filter(|d| {
                let id = &d.entry.receipt.id;
                self.resolution(id).is_some_and(|e| {
                    matches!(&e.submission.body, Body::Resolution(r) if r.decision == Decision::Upheld)
                })
            })
            .filter_map(|d| {
                d.dispute().subject.observation.clone().map(|o| Voided {
                    observation: o,
                    dispute: d.entry.receipt.id.clone(),
                })
            })
            .collect();
        out.sort();
        out.dedup_by(|a, b| a.observation == b.observation);
        out
    }

    /// The attestations of the record `(tier, date, record_hash)`: each entry's party and
    /// whether it reproduced the record.
    pub fn attestations<'a>(
        &'a self,
        tier: &'a str,
        date: Date,
    ) -> impl Iterator<Item = (&'a Entry, &'a sit_core::oversight::Attestation)> + 'a {
        self.entries
            .iter()
            .filter_map(move |e| match &e.submission.body {
                Body::Attestation(a) if a.tier == tier && a.date == date => Some((e, a)),
                _ => None,
            })
    }

    /// How many distinct auditors attested the record `record_hash` as reproduced.
    pub fn reproduced_by(&self, tier: &str, date: Date, record_hash: &str) -> usize {
        let mut keys: Vec<&str> = self
            .attestations(tier, date)
            .filter(|(_, a)| {
                a.record_hash == record_hash
                    && a.result == sit_core::oversight::Reproduced::Reproduced
            })
            .map(|(e, _)| e.submission.key_id.as_str())
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys.len()
    }

    /// The consultation responses to notice `notice`, in order of receipt.
    pub fn responses<'a>(&'a self, notice: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries.iter().filter(
            move |e| matches!(&e.submission.body, Body::ConsultationResponse(r) if r.notice == notice),
        )
    }

    /// The published outcome of notice `notice`'s consultation.
    pub fn consultation_outcome(&self, notice: &str) -> Option<&(ConsultationOutcome, Vec<u8>)> {
        self.consultation_outcomes
            .iter()
            .find(|(c, _)| c.notice == notice)
    }

    /// The id the next submission gets (`S-000001`, ...).
    pub fn next_id(&self) -> String {
        format!("S-{:06}", self.entries.len() + 1)
    }
}

fn append(
    root: &Path,
    _lock: &super::ArchiveLock,
    line: serde_json::Value,
) -> Result<(), ArchiveError> {
    let p = path(root);
    std::fs::create_dir_all(root).map_err(io(root))?;
    durable::append_line(&p, line.to_string().as_bytes()).map_err(io(&p))
}

fn value(bytes: &[u8]) -> Result<serde_json::Value, ArchiveError> {
    serde_json::from_slice(bytes).map_err(|e| ArchiveError::BadWrite(e.to_string()))
}

/// Append an accepted submission and its receipt (fsynced before it returns), under the
/// archive's lock (one writer across processes: ids are assigned in order under it).
pub fn put_submission(
    root: &Path,
    lock: &super::ArchiveLock,
    receipt: &[u8],
    submission: &[u8],
) -> Result<(), ArchiveError> {
    append(
        root,
        lock,
        serde_json::json!({"receipt": value(receipt)?, "submission": value(submission)?}),
    )
}

/// Append a dispute's signed outcome.
pub fn put_outcome(
    root: &Path,
    lock: &super::ArchiveLock,
    outcome: &[u8],
) -> Result<(), ArchiveError> {
    append(root, lock, serde_json::json!({"outcome": value(outcome)?}))
}

/// Append a consultation's signed outcome.
pub fn put_consultation_outcome(
    root: &Path,
    lock: &super::ArchiveLock,
    outcome: &[u8],
) -> Result<(), ArchiveError> {
    append(
        root,
        lock,
        serde_json::json!({"consultation_outcome": value(outcome)?}),
    )
}

/// The register's length in bytes (the server reloads what it shows when it grows).
pub fn mark(root: &Path) -> u64 {
    std::fs::metadata(path(root)).map(|m| m.len()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sit_core::oversight::{self, Body, Dispute, Subject};

    fn dispute_line(oracle: &ed25519_dalek::SigningKey, id: &str) -> (Vec<u8>, Vec<u8>) {
        let party = ed25519_dalek::SigningKey::from_bytes(&[2; 32]);
        let doc = oversight::sign_submission(
            Body::Dispute(Dispute {
                subject: Subject::settlement("SIT-T1-M", "2026-02"),
                reason: "why".into(),
                evidence: None,
                public: false,
            }),
            &party,
            1_780_000_000_000,
            &"0a".repeat(16),
        );
        let receipt = oversight::sign_receipt(
            &oversight::Receipt {
                schema: oversight::RECEIPT_SCHEMA.into(),
                id: id.into(),
                kind: "dispute".into(),
                party: sit_core::signing::key_id(&party.verifying_key()),
                received_at: "2026-05-28T20:26:40.000Z".into(),
                submission_hash: blake3::hash(&doc).to_hex().to_string(),
                respond_by: Some("2026-06-07T20:26:40.000Z".into()),
                key_id: sit_core::signing::key_id(&oracle.verifying_key()),
            },
            oracle,
        );
        (receipt, doc)
    }

    /// Regression (review of issue 30): a line torn by a crash during its append (no receipt
    /// went out for it) stopped every read of the register, and with it the intake and every
    /// publication; it is ignored, and the next append cuts it away.
    #[test]
    fn a_torn_last_line_is_ignored_and_cut_by_the_next_append() {
        let dir = tempfile::tempdir().unwrap();
        let archive = crate::archive::Archive::new(dir.path().to_path_buf());
        let oracle = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
        let (r, s) = dispute_line(&oracle, "S-000001");
        let lock = archive.lock().unwrap();
        put_submission(archive.root(), &lock, &r, &s).unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(path(archive.root()))
            .unwrap();
        std::io::Write::write_all(&mut f, b"{\"receipt\":{\"sche").unwrap();
        drop(f);
        let reg = Register::read(archive.root()).unwrap();
        assert_eq!(reg.entries.len(), 1);
        assert_eq!(reg.next_id(), "S-000002");
        let (r2, s2) = dispute_line(&oracle, "S-000002");
        put_submission(archive.root(), &lock, &r2, &s2).unwrap();
        let reg = Register::read(archive.root()).unwrap();
        assert_eq!(reg.disputes.len(), 2);
        assert_eq!(reg.disputes[1].entry.receipt.id, "S-000002");
        // a stored receipt still verifies from the register's copy
        oversight::verify_receipt(
            &reg.entries[0].receipt_bytes,
            &oracle.verifying_key(),
            Some(&reg.entries[0].submission_bytes),
        )
        .unwrap();
    }
}
