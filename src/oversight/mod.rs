//! Challenge and oversight (issue 30): the oracle's one authenticated way in for registered
//! parties, and what it does with what they submit.
//!
//! - this module: the [`Intake`] behind `POST /v1/submissions`: a submission is checked
//!   (signature of a registered party's key valid now, known kind, the party's role, a fresh
//!   time, a nonce never seen, the size, the party's rate), then what it refers to (a dispute
//!   to resolve, a record to attest, a consultation that is open), then stored durably in the
//!   register before the oracle answers with a signed receipt. A refused submission writes
//!   nothing and is counted by reason;
//! - a resolution upholding a dispute about a day goes down the restatement path
//!   ([`crate::publisher::day::DayPublisher::restate_now`]): the day is recomputed with the
//!   disputed observation voided and restated if the policy allows; the oracle then records
//!   a signed outcome (the records restated, or why the value stands);
//! - [`consult`]: closing a major notice's consultation with a signed outcome;
//! - [`attest`]: the auditor's side, `sit attest`: fetch each published day's bundle over
//!   HTTP, replay it with no store, submit an attestation per record.
//!
//! Nothing a submission says changes a published document but through the restatement path.

pub mod attest;
pub mod consult;

use crate::archive::register::{self, Register};
use crate::archive::{Archive, ArchiveError};
use crate::publisher::day::{DayError, DayPublisher};
use crate::publisher::{policy::Refusal, PublishError};
use ed25519_dalek::SigningKey;
use sit_core::oversight::{
    self, Body, Decision, DisputeOutcome, Parties, Receipt, Restated, SubjectKind, SubmissionError,
};
use sit_core::time::format_utc_ms;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The most submissions one party makes in a clock minute (the rest are refused, unread
/// beyond their signature, unstored).
pub const PER_PARTY_PER_MINUTE: u32 = 30;
/// The most submissions the oracle accepts in a clock minute, over all parties.
pub const PER_MINUTE: u32 = 600;

/// Why a submission was refused (nothing was written).
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// The document itself: form, size, kind, party, signature, time, role.
    #[error("{0}")]
    Submission(#[from] SubmissionError),
    /// This submission (its party and nonce) was accepted before.
    #[error("this submission was already accepted (nonce {0}); sign a new one")]
    Replayed(String),
    /// The party made its share of submissions this minute.
    #[error(
        "party {party} made {PER_PARTY_PER_MINUTE} submissions this minute, the most one party may"
    )]
    PartyRate {
        /// The party's id.
        party: String,
    },
    /// The oracle took its share this minute.
    #[error("the oracle accepted {PER_MINUTE} submissions this minute, the most it takes")]
    Rate,
    /// A resolution of a dispute the register does not hold.
    #[error("no dispute {0} in the register")]
    UnknownDispute(String),
    /// A resolution of a dispute already resolved.
    #[error("dispute {0} is already resolved; a resolution is final (a new dispute may challenge the outcome)")]
    AlreadyResolved(String),
    /// What the submission refers to is not published.
    #[error("{0}")]
    UnknownSubject(String),
    /// A consultation response outside an open consultation.
    #[error("{0}")]
    NotOpen(String),
    /// An upheld dispute about a day needs the publishing process.
    #[error("dispute {0} is about a day: upholding it recomputes the day, which only the publishing process (sit run --serve) can do")]
    NoPublisher(String),
    /// The register could not be read or written.
    #[error("the register: {0}")]
    Archive(#[from] ArchiveError),
}

impl IntakeError {
    /// Its label in `/metrics` (`sit_submissions_refused_total{reason=...}`).
    pub fn reason(&self) -> &'static str {
        match self {
            IntakeError::Submission(e) => match e {
                SubmissionError::TooLarge(_) => "too_large",
                SubmissionError::Malformed(_) => "malformed",
                SubmissionError::UnknownKind(_) => "unknown_kind",
                SubmissionError::UnknownParty(_) => "unknown_party",
                SubmissionError::Signature(_) => "bad_signature",
                SubmissionError::Stale(_) => "stale",
                SubmissionError::Role { .. } => "role",
            },
            IntakeError::Replayed(_) => "replayed",
            IntakeError::PartyRate { .. } | IntakeError::Rate => "rate_limited",
            IntakeError::UnknownDispute(_) => "unknown_dispute",
            IntakeError::AlreadyResolved(_) => "already_resolved",
            IntakeError::UnknownSubject(_) => "unknown_subject",
            IntakeError::NotOpen(_) => "not_open",
            IntakeError::NoPublisher(_) => "no_publisher",
            IntakeError::Archive(_) => "unavailable",
        }
    }
}

/// The refusal reasons, in `/metrics` order.
pub const REASONS: [&str; 14] = [
    "too_large",
    "malformed",
    "unknown_kind",
    "unknown_party",
    "bad_signature",
    "stale",
    "role",
    "replayed",
    "rate_limited",
    "unknown_dispute",
    "already_resolved",
    "unknown_subject",
    "not_open",
    "no_publisher",
];

#[derive(Default)]
struct Window {
    minute: i64,
    per_party: BTreeMap<String, u32>,
    total: u32,
}

/// The intake of `POST /v1/submissions` (`sit serve --key --parties`, `sit run --serve
/// --parties`).
pub struct Intake {
    key: SigningKey,
    parties: Parties,
    archive: Archive,
    publisher: Option<DayPublisher>,
    /// The oracle's clock (the folder's: compressed under `sit run --hour-ms`): receipts,
    /// deadlines, consultation windows and outcomes are on it. A submission's freshness is
    /// judged on the wall clock, which its signer's `submitted_at` comes from.
    clock: std::sync::Arc<dyn crate::sys::clock::Clock>,
    /// (party key, nonce) of every accepted submission: seeded from the register at start,
    /// so a replay is refused across a restart too.
    nonces: Mutex<BTreeSet<(String, String)>>,
    window: Mutex<Window>,
    /// One write to the register at a time (ids are assigned in order).
    writing: Mutex<()>,
    accepted: AtomicU64,
    refused: [AtomicU64; REASONS.len() + 1],
}

impl Intake {
    /// An intake signing receipts with `key`, for `parties`, storing in `archive`'s register,
    /// on `clock` (the folder's); with `publisher`, upheld disputes about a day go down the
    /// restatement path.
    pub fn new(
        key: SigningKey,
        parties: Parties,
        archive: Archive,
        publisher: Option<DayPublisher>,
        clock: std::sync::Arc<dyn crate::sys::clock::Clock>,
    ) -> Result<Intake, ArchiveError> {
        let reg = Register::read(archive.root())?;
        let nonces = reg
            .entries
            .iter()
            .map(|e| (e.submission.key_id.clone(), e.submission.nonce.clone()))
            .collect();
        Ok(Intake {
            key,
            parties,
            archive,
            publisher,
            clock,
            nonces: Mutex::new(nonces),
            window: Default::default(),
            writing: Mutex::new(()),
            accepted: AtomicU64::new(0),
            refused: Default::default(),
        })
    }

    /// The oracle's time (its clock's).
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The registered parties.
    pub fn parties(&self) -> &Parties {
        &self.parties
    }

    /// The oracle's public key (receipts and outcomes are signed with it).
    pub fn verifying_key(&self) -> ed25519_dalek::VerifyingKey {
        self.key.verifying_key()
    }

    /// Accepted submissions and refusals by reason, since start.
    pub fn counts(&self) -> (u64, Vec<(&'static str, u64)>) {
        (
            self.accepted.load(Ordering::Relaxed),
            REASONS
                .iter()
                .enumerate()
                .map(|(i, r)| (*r, self.refused[i].load(Ordering::Relaxed)))
                .chain(std::iter::once((
                    "unavailable",
                    self.refused[REASONS.len()].load(Ordering::Relaxed),
                )))
                .collect(),
        )
    }

    /// Check `doc` (fresh at the wall-clock time `wall_ms`), store it and return the signed
    /// receipt (a resolution is applied, and its outcome recorded, before the receipt is
    /// returned). Blocking (an fsync; a resolution may recompute a day).
    pub fn submit(&self, doc: &[u8], wall_ms: i64) -> Result<Vec<u8>, IntakeError> {
        let r = self.submit_inner(doc, wall_ms);
        match &r {
            Ok(_) => {
                self.accepted.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                let i = REASONS
                    .iter()
                    .position(|x| *x == e.reason())
                    .unwrap_or(REASONS.len());
                self.refused[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        r
    }

    /// The party a submission names, if it has already made its share of submissions this
    /// minute: refused before its signature is checked (a flood past its share costs no
    /// verification). Safe against forgery: only verified, stored submissions count toward a
    /// share, so a forger naming another party's key cannot bring that party to its limit.
    fn spent(&self, doc: &[u8], wall_ms: i64) -> Option<String> {
        #[derive(serde::Deserialize)]
        struct Peek {
            key_id: String,
        }
        let key = serde_json::from_slice::<Peek>(doc).ok()?.key_id;
        let party = self.parties.by_key(&key)?;
        let w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        (w.minute == wall_ms.div_euclid(60_000)
            && w.per_party.get(&party.id).copied().unwrap_or(0) >= PER_PARTY_PER_MINUTE)
            .then(|| party.id.clone())
    }

    fn submit_inner(&self, doc: &[u8], wall_ms: i64) -> Result<Vec<u8>, IntakeError> {
        if let Some(party) = self.spent(doc, wall_ms) {
            return Err(IntakeError::PartyRate { party });
        }
        let checked = oversight::verify_submission(doc, wall_ms, &self.parties)?;
        let now_ms = self.clock.now_ms();
        let s = &checked.submission;
        let nonce = (s.key_id.clone(), s.nonce.clone());
        if self
            .nonces
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&nonce)
        {
            return Err(IntakeError::Replayed(s.nonce.clone()));
        }
        {
            let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
            let minute = wall_ms.div_euclid(60_000);
            if w.minute != minute {
                *w = Window {
                    minute,
                    ..Default::default()
                };
            }
            if w.per_party.get(&checked.party.id).copied().unwrap_or(0) >= PER_PARTY_PER_MINUTE {
                return Err(IntakeError::PartyRate {
                    party: checked.party.id.clone(),
                });
            }
            if w.total >= PER_MINUTE {
                return Err(IntakeError::Rate);
            }
            *w.per_party.entry(checked.party.id.clone()).or_default() += 1;
            w.total += 1;
        }
        // a refusal from here on gives the party's slot back: only what is stored counts
        let refund = || {
            let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
            if w.minute == wall_ms.div_euclid(60_000) {
                if let Some(n) = w.per_party.get_mut(&checked.party.id) {
                    *n = n.saturating_sub(1);
                }
                w.total = w.total.saturating_sub(1);
            }
        };
        let stored = self.store(doc, &checked, now_ms);
        let (reg, receipt, bytes) = stored.inspect_err(|_| refund())?;
        if let Body::Resolution(res) = &s.body {
            self.apply(&reg, &receipt, res, &checked.party.key_id, now_ms)?;
        }
        // a FINAL settlement record that waited for this attestation is signed now
        if let (Body::Attestation(_), Some(p)) = (&s.body, &self.publisher) {
            p.settle_latest();
        }
        Ok(bytes)
    }

    /// Check what a checked submission refers to and store it with its signed receipt, under
    /// the archive's lock (one writer across processes: the register read, the id and the
    /// append are one step). Returns the register as it was before, the receipt and its bytes.
    fn store(
        &self,
        doc: &[u8],
        checked: &oversight::Checked,
        now_ms: i64,
    ) -> Result<(Register, Receipt, Vec<u8>), IntakeError> {
        let s = &checked.submission;
        let nonce = (s.key_id.clone(), s.nonce.clone());
        let _one = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let lock = self.archive.lock()?;
        let reg = Register::read(self.archive.root())?;
        // checked again under the locks, against the register itself: two copies of one
        // submission racing here, or one stored by another process
        let seen = self
            .nonces
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&nonce)
            || reg
                .entries
                .iter()
                .any(|e| e.submission.key_id == s.key_id && e.submission.nonce == s.nonce);
        if seen {
            return Err(IntakeError::Replayed(s.nonce.clone()));
        }
        self.refers(&reg, &s.body, now_ms)?;
        let receipt = Receipt {
            schema: oversight::RECEIPT_SCHEMA.into(),
            id: reg.next_id(),
            kind: s.body.kind().into(),
            party: s.key_id.clone(),
            received_at: format_utc_ms(now_ms),
            submission_hash: checked.hash.clone(),
            respond_by: matches!(s.body, Body::Dispute(_))
                .then(|| format_utc_ms(oversight::respond_by(now_ms))),
            key_id: sit_core::signing::key_id(&self.key.verifying_key()),
        };
        let bytes = oversight::sign_receipt(&receipt, &self.key);
        register::put_submission(self.archive.root(), &lock, &bytes, doc)?;
        self.nonces
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(nonce);
        Ok((reg, receipt, bytes))
    }

    /// Check what a submission refers to, against the register and the archive.
    fn refers(&self, reg: &Register, body: &Body, now_ms: i64) -> Result<(), IntakeError> {
        match body {
            Body::Resolution(r) => {
                let d = reg
                    .dispute(&r.dispute)
                    .ok_or_else(|| IntakeError::UnknownDispute(r.dispute.clone()))?;
                if d.outcome.is_some() || reg.resolution(&r.dispute).is_some() {
                    return Err(IntakeError::AlreadyResolved(r.dispute.clone()));
                }
                let s = &d.dispute().subject;
                let about_a_day = matches!(
                    s.kind,
                    SubjectKind::Observation | SubjectKind::Determination
                );
                if r.decision == Decision::Upheld && about_a_day && self.publisher.is_none() {
                    return Err(IntakeError::NoPublisher(r.dispute.clone()));
                }
                Ok(())
            }
            Body::Dispute(d) => {
                let s = &d.subject;
                if s.kind == SubjectKind::Determination {
                    let (tier, date) =
                        (s.tier.clone().unwrap_or_default(), s.date.expect("checked"));
                    let entries = self.archive.entries()?;
                    if !entries.iter().any(|e| e.tier == tier && e.date == date) {
                        return Err(IntakeError::UnknownSubject(format!(
                            "no determination of {tier} {date} is published"
                        )));
                    }
                }
                Ok(())
            }
            Body::Attestation(a) => {
                let entries = self.archive.entries()?;
                if !entries.iter().any(|e| {
                    e.tier == a.tier
                        && e.date == a.date
                        && e.version == a.version
                        && e.record_hash == a.record_hash
                }) {
                    return Err(IntakeError::UnknownSubject(format!(
                        "no published record {} {} version {} hashing to {}",
                        a.tier, a.date, a.version, a.record_hash
                    )));
                }
                Ok(())
            }
            Body::ConsultationResponse(c) => {
                consult::open(&self.archive, reg, &c.notice, now_ms).map_err(IntakeError::NotOpen)
            }
        }
    }

    /// Apply a stored resolution: an upheld dispute about a day goes down the restatement
    /// path; then the signed outcome is recorded.
    fn apply(
        &self,
        reg: &Register,
        resolution: &Receipt,
        res: &oversight::Resolution,
        admin: &str,
        now_ms: i64,
    ) -> Result<(), IntakeError> {
        let d = reg.dispute(&res.dispute).expect("checked by refers");
        let subject = d.dispute().subject.clone();
        let (mut restated, mut stands) = (Vec::new(), Vec::new());
        if res.decision == Decision::Upheld {
            match subject.kind {
                SubjectKind::Observation | SubjectKind::Determination => {
                    let date = subject.date.expect("checked");
                    let publisher = self.publisher.as_ref().expect("checked by refers");
                    // an observation is an input of its day and of the next (whose eligibility
                    // window reaches back into it): both are recomputed
                    let days = if subject.kind == SubjectKind::Observation {
                        vec![date, date.succ()]
                    } else {
                        vec![date]
                    };
                    let mut published: Vec<(sit_core::time::Date, String)> =
                        match self.archive.entries() {
                            Ok(es) => es
                                .iter()
                                .filter(|e| days.contains(&e.date))
                                .filter(|e| subject.tier.as_ref().is_none_or(|t| *t == e.tier))
                                .map(|e| (e.date, e.tier.clone()))
                                .collect(),
                            Err(e) => {
                                stands.push(format!(
                                    "{date}: the archive could not be read ({e}); nothing was recomputed"
                                ));
                                Vec::new()
                            }
                        };
                    published.sort();
                    published.dedup();
                    if published.is_empty() {
                        stands.push(format!(
                            "{date} is not published yet: it will be determined without the voided observation"
                        ));
                    }
                    for (day, tier) in published {
                        match publisher.restate_now(&tier, day) {
                            Ok(p) => restated.push(Restated {
                                tier: p.entry.tier.clone(),
                                date: day,
                                version: p.entry.version,
                                record_hash: p.entry.record_hash.clone(),
                            }),
                            Err(DayError::Publish(PublishError::Refused(why))) => {
                                stands.push(stands_because(&why))
                            }
                            Err(e) => stands.push(format!(
                                "{tier} {day}: the recomputation failed ({e}); the record in force stands"
                            )),
                        }
                    }
                }
                SubjectKind::Settlement => stands.push(format!(
                    "{}: a settlement record follows from the day records in force; a FINAL one is never restated, and one to date is signed again after the next publication",
                    subject.describe()
                )),
                SubjectKind::Certificate => stands.push(format!(
                    "{}: a certificate is its certifier's signed document, not the oracle's to change; the register records that the dispute was upheld",
                    subject.describe()
                )),
            }
        }
        let o = DisputeOutcome {
            schema: oversight::OUTCOME_SCHEMA.into(),
            dispute: res.dispute.clone(),
            subject,
            decision: res.decision,
            reason: res.reason.clone(),
            resolution: resolution.id.clone(),
            resolved_by: admin.to_string(),
            resolved_at: format_utc_ms(now_ms),
            restated,
            stands,
            key_id: sit_core::signing::key_id(&self.key.verifying_key()),
        };
        let lock = self.archive.lock()?;
        register::put_outcome(
            self.archive.root(),
            &lock,
            &oversight::sign_outcome(&o, &self.key),
        )?;
        Ok(())
    }
}

/// Why an upheld dispute's day stands, for the outcome.
fn stands_because(why: &Refusal) -> String {
    match why {
        Refusal::Unchanged { .. } => format!(
            "{why} (the recomputation without the disputed observation does not move the value beyond the materiality threshold)"
        ),
        _ => why.to_string(),
    }
}
