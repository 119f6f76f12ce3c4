//! Challenge and oversight documents (issue 30): what registered parties submit to the oracle,
//! the oracle's signed receipts, and the outcomes it publishes.
//!
//! A party (a provider, an exchange, an auditor, the administrator) is registered with a role
//! and an Ed25519 key ([`Parties`], read from `parties.toml` by the `sit` crate). It writes to
//! the oracle only by a [`Submission`]: a document of a known kind, signed by its key, with a
//! fresh time and a nonce. Pure: checking a submission takes the oracle's time and the registry
//! as arguments; whether a nonce was seen, the rate of a party and the durable log are the
//! oracle's (they need its memory).
//!
//! - a [`Dispute`] challenges an observation, a determination, a certificate or a settlement
//!   record, with a reason and optional evidence;
//! - a [`Resolution`] (administrator only) upholds or rejects a dispute, with its reason; the
//!   oracle then publishes a [`DisputeOutcome`]: for an upheld dispute about a day inside its
//!   restatement window, the restated records (an upheld observation dispute voids that
//!   observation in the day's determination: [`crate::index::Voided`]); outside it, why the
//!   value stands;
//! - a [`ConsultationResponse`] answers a major notice's consultation while it is open; the
//!   administrator closes it with a [`ConsultationOutcome`] listing every response;
//! - an [`Attestation`] (auditor only) says that an auditor replayed a published record from
//!   its bundle, and whether it reproduced it.

use crate::signing::{key_id, parse_public, sign_value, verify_value, VerifyError};
use crate::time::{format_utc_ms, parse_utc_ms, Date};
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

/// Schema of a submission.
pub const SUBMISSION_SCHEMA: &str = "sit-submission/1";
/// Schema of the oracle's receipt for a submission.
pub const RECEIPT_SCHEMA: &str = "sit-receipt/1";
/// Schema of a dispute's published outcome.
pub const OUTCOME_SCHEMA: &str = "sit-dispute-outcome/1";
/// Schema of a consultation's published outcome.
pub const CONSULTATION_OUTCOME_SCHEMA: &str = "sit-consultation-outcome/1";

/// The largest submission the oracle reads, in bytes (below the server's request body limit,
/// so that an oversized submission is refused, and counted, as one).
pub const MAX_BYTES: usize = 32 * 1024;
/// The longest reason, response or evidence text, in bytes.
pub const MAX_TEXT: usize = 8 * 1024;
/// How far a submission's `submitted_at` may be from the oracle's clock, either way.
pub const SKEW_MS: i64 = 5 * 60 * 1000;
/// How long the administrator has to resolve a dispute (the receipt's `respond_by`): ten
/// calendar days, the complaints procedure's stated deadline (index-methodology.md, oversight).
pub const DISPUTE_RESPONSE_MS: i64 = 10 * crate::time::DAY_MS;

/// What a registered party is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// An inference provider whose endpoints are probed.
    Provider,
    /// An exchange that lists contracts on the index.
    Exchange,
    /// An independent auditor that replays and attests published values.
    Auditor,
    /// The benchmark's administrator (oversight function): resolves disputes, closes
    /// consultations.
    Administrator,
}

impl Role {
    /// Its name in `parties.toml` and documents.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Provider => "provider",
            Role::Exchange => "exchange",
            Role::Auditor => "auditor",
            Role::Administrator => "administrator",
        }
    }

    /// The role named `s`.
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "provider" => Role::Provider,
            "exchange" => Role::Exchange,
            "auditor" => Role::Auditor,
            "administrator" => Role::Administrator,
            _ => return None,
        })
    }
}

/// One registered party.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Party {
    /// Its name (letters, digits, '-', '_').
    pub id: String,
    /// Its role.
    pub role: Role,
    /// Its key id ([`key_id`]).
    pub key_id: String,
    /// Its public key, 64 hex digits.
    pub public_key: String,
    /// Submissions from this time (UTC ms) on; None: from the beginning.
    #[serde(skip)]
    pub from_ms: Option<i64>,
    /// ... and before this time; None: no end.
    #[serde(skip)]
    pub until_ms: Option<i64>,
    #[serde(skip)]
    vk: Option<VerifyingKey>,
}

impl Party {
    /// A party with key `vk`, valid in `[from_ms, until_ms)`.
    pub fn new(
        id: &str,
        role: Role,
        vk: VerifyingKey,
        from_ms: Option<i64>,
        until_ms: Option<i64>,
    ) -> Party {
        Party {
            id: id.to_string(),
            role,
            key_id: key_id(&vk),
            public_key: crate::signing::hex(vk.as_bytes()),
            from_ms,
            until_ms,
            vk: Some(vk),
        }
    }

    /// Whether a submission made at `at_ms` may carry this party's signature.
    pub fn valid_at(&self, at_ms: i64) -> bool {
        self.from_ms.is_none_or(|f| at_ms >= f) && self.until_ms.is_none_or(|u| at_ms < u)
    }

    /// Its public key.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.vk
            .unwrap_or_else(|| parse_public(&self.public_key).expect("checked when registered"))
    }
}

/// The registered parties (from `parties.toml`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Parties {
    /// Every party, in the file's order.
    pub parties: Vec<Party>,
}

impl Parties {
    /// The party whose key is `key_id`.
    pub fn by_key(&self, key_id: &str) -> Option<&Party> {
        self.parties.iter().find(|p| p.key_id == key_id)
    }
}

/// What a dispute is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKind {
    /// One stored observation (probe attempt), by its hash, of a day.
    Observation,
    /// A published determination (tier and date).
    Determination,
    /// A tier certificate, by its hash.
    Certificate,
    /// A settlement record (contract and period).
    Settlement,
}

/// The thing a dispute challenges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    /// What it is.
    pub kind: SubjectKind,
    /// The tier (a determination; optional for an observation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// The day (an observation, a determination).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<Date>,
    /// The observation's record hash, 64 hex digits (an observation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observation: Option<String>,
    /// The certificate's hash, 64 hex digits (a certificate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// The contract id (a settlement record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<String>,
    /// The contract period, `YYYY-MM` or `YYYY-Qn` (a settlement record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
}

impl Subject {
    /// A settlement record: `contract`'s `period` (`YYYY-MM` or `YYYY-Qn`).
    pub fn settlement(contract: &str, period: &str) -> Subject {
        Subject {
            kind: SubjectKind::Settlement,
            tier: None,
            date: None,
            observation: None,
            certificate: None,
            contract: Some(contract.into()),
            period: Some(period.into()),
        }
    }

    /// One line for people.
    pub fn describe(&self) -> String {
        match self.kind {
            SubjectKind::Observation => format!(
                "observation {} of {}",
                self.observation.as_deref().unwrap_or("?"),
                self.date.map(|d| d.to_string()).unwrap_or_default()
            ),
            SubjectKind::Determination => format!(
                "determination {} {}",
                self.tier.as_deref().unwrap_or("?"),
                self.date.map(|d| d.to_string()).unwrap_or_default()
            ),
            SubjectKind::Certificate => {
                format!("certificate {}", self.certificate.as_deref().unwrap_or("?"))
            }
            SubjectKind::Settlement => format!(
                "settlement {} {}",
                self.contract.as_deref().unwrap_or("?"),
                self.period.as_deref().unwrap_or("?")
            ),
        }
    }

    fn check(&self) -> Result<(), String> {
        let need = |what: &str, v: bool| {
            if v {
                Ok(())
            } else {
                Err(format!(
                    "a dispute about a {} names its {what}",
                    self.kind_str()
                ))
            }
        };
        match self.kind {
            SubjectKind::Observation => {
                need("date", self.date.is_some())?;
                need(
                    "observation (its 64-hex record hash)",
                    self.observation.as_deref().is_some_and(is_hash),
                )
            }
            SubjectKind::Determination => {
                need("tier", self.tier.is_some())?;
                need("date", self.date.is_some())
            }
            SubjectKind::Certificate => need(
                "certificate (its 64-hex hash)",
                self.certificate.as_deref().is_some_and(is_hash),
            ),
            SubjectKind::Settlement => {
                need("contract", self.contract.is_some())?;
                need(
                    "period (YYYY-MM or YYYY-Qn)",
                    self.period
                        .as_deref()
                        .is_some_and(|p| crate::settlement::Period::parse_label(p).is_some()),
                )
            }
        }
    }

    fn kind_str(&self) -> &'static str {
        match self.kind {
            SubjectKind::Observation => "observation",
            SubjectKind::Determination => "determination",
            SubjectKind::Certificate => "certificate",
            SubjectKind::Settlement => "settlement record",
        }
    }
}

fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A dispute: a challenge to something the oracle recorded or published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dispute {
    /// What is challenged.
    pub subject: Subject,
    /// Why, in the submitter's words.
    pub reason: String,
    /// Evidence (text, or a URL and hash of a file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
    /// Whether the reason and evidence may be shown in the public register (else only the
    /// subject, dates and status are).
    #[serde(default)]
    pub public: bool,
}

/// A consultation response to a major notice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsultationResponse {
    /// The notice consulted on (`N-0003`).
    pub notice: String,
    /// The response.
    pub response: String,
    /// Whether the response may be quoted in the published outcome (else it is listed by
    /// party and hash only).
    #[serde(default)]
    pub public: bool,
}

/// Whether an auditor's replay reproduced a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reproduced {
    /// Recomputed from the bundle, byte for byte the published determination.
    Reproduced,
    /// The recomputation differs (the first difference is given).
    Differs,
}

/// An auditor's attestation of one published record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attestation {
    /// The record's tier.
    pub tier: String,
    /// Its day.
    pub date: Date,
    /// Its version.
    pub version: u32,
    /// blake3 (hex) of the record's bytes.
    pub record_hash: String,
    /// The Merkle root of its inputs.
    pub merkle_root: String,
    /// The replay's result.
    pub result: Reproduced,
    /// Where the recomputation first differs (with [`Reproduced::Differs`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_difference: Option<String>,
}

/// The administrator's decision on a dispute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The dispute is right.
    Upheld,
    /// The dispute is wrong (or the thing stands regardless).
    Rejected,
}

impl Decision {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Upheld => "upheld",
            Decision::Rejected => "rejected",
        }
    }
}

/// The administrator's resolution of a dispute (signed by an administrator's key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resolution {
    /// The dispute's id (its receipt id, `S-000001`).
    pub dispute: String,
    /// Upheld or rejected.
    pub decision: Decision,
    /// Why (published).
    pub reason: String,
}

/// What a submission says, by kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Body {
    /// A dispute.
    Dispute(Dispute),
    /// A consultation response.
    ConsultationResponse(ConsultationResponse),
    /// An attestation.
    Attestation(Attestation),
    /// A resolution.
    Resolution(Resolution),
}

impl Body {
    /// The kind's name.
    pub fn kind(&self) -> &'static str {
        match self {
            Body::Dispute(_) => "dispute",
            Body::ConsultationResponse(_) => "consultation_response",
            Body::Attestation(_) => "attestation",
            Body::Resolution(_) => "resolution",
        }
    }

    /// The roles that may submit it.
    pub fn roles(&self) -> &'static [Role] {
        match self {
            Body::Dispute(_) => &[Role::Provider, Role::Exchange, Role::Auditor],
            Body::ConsultationResponse(_) => &[Role::Provider, Role::Exchange, Role::Auditor],
            Body::Attestation(_) => &[Role::Auditor],
            Body::Resolution(_) => &[Role::Administrator],
        }
    }
}

/// The kinds a submission may be.
pub const KINDS: [&str; 4] = [
    "dispute",
    "consultation_response",
    "attestation",
    "resolution",
];

/// A party's signed submission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Submission {
    /// [`SUBMISSION_SCHEMA`].
    pub schema: String,
    /// The party's key id: the key that signs it.
    pub key_id: String,
    /// When it was made (RFC 3339 UTC), within [`SKEW_MS`] of the oracle's clock.
    pub submitted_at: String,
    /// 32 hex digits, fresh per submission: a submission is accepted once.
    pub nonce: String,
    /// What it says.
    pub body: Body,
}

/// Sign `body` as `party` at `at_ms` with `nonce` (32 hex digits).
pub fn sign_submission(body: Body, party: &SigningKey, at_ms: i64, nonce: &str) -> Vec<u8> {
    let s = Submission {
        schema: SUBMISSION_SCHEMA.into(),
        key_id: key_id(&party.verifying_key()),
        submitted_at: format_utc_ms(at_ms),
        nonce: nonce.to_string(),
        body,
    };
    sign_value(serde_json::to_value(&s).expect("serialises"), party)
}

/// Why a submission is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmissionError {
    /// Larger than [`MAX_BYTES`].
    #[error("the submission is {0} bytes; the most accepted is {MAX_BYTES}")]
    TooLarge(usize),
    /// Not a submission document, or a field is malformed.
    #[error("not a submission: {0}")]
    Malformed(String),
    /// A kind this oracle does not know.
    #[error(
        "unknown kind `{0}`; kinds are dispute, consultation_response, attestation, resolution"
    )]
    UnknownKind(String),
    /// The key is not a registered party's (or not valid now).
    #[error("key {0} is not a registered party's key valid now")]
    UnknownParty(String),
    /// The signature is not the named key's (or the bytes are not canonical).
    #[error("the submission is not signed by the key it names: {0}")]
    Signature(#[from] VerifyError),
    /// `submitted_at` is too far from the oracle's clock.
    #[error("submitted_at {0} is more than {mins} minutes from the oracle's clock", mins = SKEW_MS / 60_000)]
    Stale(String),
    /// The party's role may not submit this kind.
    #[error("a {role} may not submit a {kind}")]
    Role {
        /// The party's role.
        role: &'static str,
        /// The kind.
        kind: &'static str,
    },
}

/// A submission that checked out, with the party that made it.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The submission.
    pub submission: Submission,
    /// The party.
    pub party: Party,
    /// blake3 (hex) of the submitted bytes.
    pub hash: String,
}

/// Check a submission at the oracle's time `now_ms` against the registry: size, form, kind,
/// party and signature, time, role. (The nonce, the rate and what the body refers to are the
/// oracle's to check.)
pub fn verify_submission(
    doc: &[u8],
    now_ms: i64,
    parties: &Parties,
) -> Result<Checked, SubmissionError> {
    if doc.len() > MAX_BYTES {
        return Err(SubmissionError::TooLarge(doc.len()));
    }
    let v =
        crate::signing::parse_strict(doc).map_err(|e| SubmissionError::Malformed(e.to_string()))?;
    let obj = v
        .as_object()
        .ok_or_else(|| SubmissionError::Malformed("not a JSON object".into()))?;
    if obj.get("schema").and_then(|s| s.as_str()) != Some(SUBMISSION_SCHEMA) {
        return Err(SubmissionError::Malformed(format!(
            "schema must be `{SUBMISSION_SCHEMA}`"
        )));
    }
    let kind = obj
        .get("body")
        .and_then(|b| b.get("kind"))
        .and_then(|k| k.as_str())
        .ok_or_else(|| SubmissionError::Malformed("body.kind is missing".into()))?;
    if !KINDS.contains(&kind) {
        return Err(SubmissionError::UnknownKind(
            kind.chars().take(64).collect(),
        ));
    }
    let key = obj
        .get("key_id")
        .and_then(|k| k.as_str())
        .ok_or_else(|| SubmissionError::Malformed("key_id is missing".into()))?;
    let party = parties
        .by_key(key)
        .filter(|p| p.valid_at(now_ms))
        .ok_or_else(|| SubmissionError::UnknownParty(key.chars().take(40).collect()))?;
    let verified = verify_value(doc, &party.verifying_key())?;
    let s: Submission = serde_json::from_value(verified.value)
        .map_err(|e| SubmissionError::Malformed(e.to_string()))?;
    if s.nonce.len() != 32
        || !s
            .nonce
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(SubmissionError::Malformed(
            "nonce must be 32 lower-case hex digits".into(),
        ));
    }
    let at = parse_utc_ms(&s.submitted_at)
        .map_err(|e| SubmissionError::Malformed(format!("submitted_at: {e}")))?;
    if (at - now_ms).abs() > SKEW_MS {
        return Err(SubmissionError::Stale(s.submitted_at.clone()));
    }
    if !s.body.roles().contains(&party.role) {
        return Err(SubmissionError::Role {
            role: party.role.as_str(),
            kind: s.body.kind(),
        });
    }
    let text_ok = |t: &str| t.len() <= MAX_TEXT;
    match &s.body {
        Body::Dispute(d) => {
            d.subject.check().map_err(SubmissionError::Malformed)?;
            if d.reason.trim().is_empty() {
                return Err(SubmissionError::Malformed(
                    "a dispute gives its reason".into(),
                ));
            }
            if !text_ok(&d.reason) || !d.evidence.as_deref().is_none_or(text_ok) {
                return Err(SubmissionError::Malformed(format!(
                    "reason and evidence are at most {MAX_TEXT} bytes each"
                )));
            }
        }
        Body::ConsultationResponse(r) => {
            if r.response.trim().is_empty() || !text_ok(&r.response) {
                return Err(SubmissionError::Malformed(format!(
                    "a response is 1 to {MAX_TEXT} bytes"
                )));
            }
        }
        Body::Attestation(a) => {
            if !is_hash(&a.record_hash) {
                return Err(SubmissionError::Malformed(
                    "record_hash must be 64 lower-case hex digits".into(),
                ));
            }
        }
        Body::Resolution(r) => {
            if r.reason.trim().is_empty() || !text_ok(&r.reason) {
                return Err(SubmissionError::Malformed(format!(
                    "a resolution gives its reason, 1 to {MAX_TEXT} bytes"
                )));
            }
        }
    }
    Ok(Checked {
        hash: blake3::hash(doc).to_hex().to_string(),
        submission: s,
        party: party.clone(),
    })
}

/// The oracle's receipt for an accepted submission (signed by the oracle's key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// [`RECEIPT_SCHEMA`].
    pub schema: String,
    /// The submission's id in the oracle's register (`S-000001`, in order of receipt).
    pub id: String,
    /// The submission's kind.
    pub kind: String,
    /// The party's key id.
    pub party: String,
    /// When the oracle stored it (RFC 3339 UTC).
    pub received_at: String,
    /// blake3 (hex) of the submission's bytes as received.
    pub submission_hash: String,
    /// When the oracle will have answered it (a dispute: resolved), if it owes an answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub respond_by: Option<String>,
    /// The oracle's key id.
    pub key_id: String,
}

/// Sign a receipt.
pub fn sign_receipt(r: &Receipt, oracle: &SigningKey) -> Vec<u8> {
    sign_value(serde_json::to_value(r).expect("serialises"), oracle)
}

/// Check a receipt's signature against the oracle's key, and that it is for `submission`
/// (the bytes as sent), when given.
pub fn verify_receipt(
    doc: &[u8],
    oracle: &VerifyingKey,
    submission: Option<&[u8]>,
) -> Result<Receipt, VerifyError> {
    let v = verify_value(doc, oracle)?;
    let r: Receipt =
        serde_json::from_value(v.value).map_err(|e| VerifyError::Schema(e.to_string()))?;
    if r.schema != RECEIPT_SCHEMA {
        return Err(VerifyError::Schema(format!(
            "schema `{}`, expected `{RECEIPT_SCHEMA}`",
            r.schema
        )));
    }
    if let Some(s) = submission {
        let h = blake3::hash(s).to_hex().to_string();
        if h != r.submission_hash {
            return Err(VerifyError::Schema(format!(
                "the receipt is for a submission hashing to {}, not this one ({h})",
                r.submission_hash
            )));
        }
    }
    Ok(r)
}

/// A record restated because of an upheld dispute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restated {
    /// Its tier.
    pub tier: String,
    /// Its day.
    pub date: Date,
    /// The new version.
    pub version: u32,
    /// blake3 (hex) of the new record's bytes.
    pub record_hash: String,
}

/// A dispute's outcome as the oracle publishes it (signed by the oracle's key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisputeOutcome {
    /// [`OUTCOME_SCHEMA`].
    pub schema: String,
    /// The dispute's id.
    pub dispute: String,
    /// What it was about.
    pub subject: Subject,
    /// Upheld or rejected.
    pub decision: Decision,
    /// The administrator's reason.
    pub reason: String,
    /// The resolution's id in the register.
    pub resolution: String,
    /// The administrator's key id.
    pub resolved_by: String,
    /// When the oracle recorded the outcome (RFC 3339 UTC).
    pub resolved_at: String,
    /// The records restated because of it (the restatement path).
    pub restated: Vec<Restated>,
    /// Why a value stands although the dispute was upheld (a closed window, a settled period,
    /// an immaterial change), one line per tier; or why nothing was recomputed.
    pub stands: Vec<String>,
    /// The oracle's key id.
    pub key_id: String,
}

/// Sign an outcome.
pub fn sign_outcome(o: &DisputeOutcome, oracle: &SigningKey) -> Vec<u8> {
    sign_value(serde_json::to_value(o).expect("serialises"), oracle)
}

/// One response as listed in a consultation's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listed {
    /// The response's id in the register.
    pub id: String,
    /// The party's name.
    pub party: String,
    /// Its role.
    pub role: Role,
    /// When it was received.
    pub received_at: String,
    /// blake3 (hex) of the submission's bytes.
    pub submission_hash: String,
    /// The response's text, when the party let it be quoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
}

/// A consultation's outcome (signed by the oracle's key), published before the notice takes
/// effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsultationOutcome {
    /// [`CONSULTATION_OUTCOME_SCHEMA`].
    pub schema: String,
    /// The notice consulted on.
    pub notice: String,
    /// When its consultation closed.
    pub closed_at: String,
    /// Every response received while it was open (empty: no responses).
    pub responses: Vec<Listed>,
    /// The decision, and how the responses were taken into account.
    pub decision: String,
    /// When the outcome was published.
    pub published_at: String,
    /// The oracle's key id.
    pub key_id: String,
}

/// Sign a consultation outcome.
pub fn sign_consultation_outcome(o: &ConsultationOutcome, oracle: &SigningKey) -> Vec<u8> {
    sign_value(serde_json::to_value(o).expect("serialises"), oracle)
}

/// When a dispute received at `received_ms` is due.
pub fn respond_by(received_ms: i64) -> i64 {
    received_ms + DISPUTE_RESPONSE_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> SigningKey {
        SigningKey::from_bytes(&[b; 32])
    }

    fn registry() -> Parties {
        Parties {
            parties: vec![
                Party::new("acme", Role::Provider, key(1).verifying_key(), None, None),
                Party::new("audit", Role::Auditor, key(2).verifying_key(), None, None),
                Party::new(
                    "admin",
                    Role::Administrator,
                    key(3).verifying_key(),
                    None,
                    Some(2_000_000_000_000),
                ),
            ],
        }
    }

    const NOW: i64 = 1_780_000_000_000;

    fn dispute() -> Body {
        Body::Dispute(Dispute {
            subject: Subject {
                kind: SubjectKind::Observation,
                tier: None,
                date: Some(Date::of_ms(NOW)),
                observation: Some("ab".repeat(32)),
                certificate: None,
                contract: None,
                period: None,
            },
            reason: "the answer `42.` was graded as a failure".into(),
            evidence: None,
            public: true,
        })
    }

    #[test]
    fn a_signed_submission_of_a_registered_party_checks_and_its_receipt_verifies() {
        let doc = sign_submission(dispute(), &key(1), NOW, &"0a".repeat(16));
        let c = verify_submission(&doc, NOW + 1000, &registry()).unwrap();
        assert_eq!(c.party.id, "acme");
        assert_eq!(c.submission.body.kind(), "dispute");
        let r = Receipt {
            schema: RECEIPT_SCHEMA.into(),
            id: "S-000001".into(),
            kind: "dispute".into(),
            party: c.party.key_id.clone(),
            received_at: format_utc_ms(NOW),
            submission_hash: c.hash.clone(),
            respond_by: Some(format_utc_ms(respond_by(NOW))),
            key_id: key_id(&key(9).verifying_key()),
        };
        let rb = sign_receipt(&r, &key(9));
        assert_eq!(
            verify_receipt(&rb, &key(9).verifying_key(), Some(&doc)).unwrap(),
            r
        );
        assert!(verify_receipt(&rb, &key(9).verifying_key(), Some(b"other")).is_err());
        assert!(verify_receipt(&rb, &key(8).verifying_key(), None).is_err());
    }

    #[test]
    fn hostile_submissions_are_refused_with_the_reason() {
        let reg = registry();
        let n = "0a".repeat(16);
        // unknown key
        let doc = sign_submission(dispute(), &key(7), NOW, &n);
        assert!(matches!(
            verify_submission(&doc, NOW, &reg),
            Err(SubmissionError::UnknownParty(_))
        ));
        // stale
        let doc = sign_submission(dispute(), &key(1), NOW - SKEW_MS - 1, &n);
        assert!(matches!(
            verify_submission(&doc, NOW, &reg),
            Err(SubmissionError::Stale(_))
        ));
        // tampered
        let doc = sign_submission(dispute(), &key(1), NOW, &n);
        let bad = String::from_utf8(doc)
            .unwrap()
            .replace("graded", "GRADED")
            .into_bytes();
        assert!(matches!(
            verify_submission(&bad, NOW, &reg),
            Err(SubmissionError::Signature(_))
        ));
        // unknown kind
        let mut v = serde_json::to_value(Submission {
            schema: SUBMISSION_SCHEMA.into(),
            key_id: key_id(&key(1).verifying_key()),
            submitted_at: format_utc_ms(NOW),
            nonce: n.clone(),
            body: dispute(),
        })
        .unwrap();
        v["body"]["kind"] = "complaint".into();
        let doc = sign_value(v, &key(1));
        assert!(matches!(
            verify_submission(&doc, NOW, &reg),
            Err(SubmissionError::UnknownKind(_))
        ));
        // oversized
        let big = vec![b' '; MAX_BYTES + 1];
        assert!(matches!(
            verify_submission(&big, NOW, &reg),
            Err(SubmissionError::TooLarge(_))
        ));
        // a provider may not resolve
        let r = Body::Resolution(Resolution {
            dispute: "S-000001".into(),
            decision: Decision::Upheld,
            reason: "mine".into(),
        });
        let doc = sign_submission(r.clone(), &key(1), NOW, &n);
        assert!(matches!(
            verify_submission(&doc, NOW, &reg),
            Err(SubmissionError::Role { .. })
        ));
        // the administrator may, while its key is valid
        let doc = sign_submission(r.clone(), &key(3), NOW, &n);
        assert!(verify_submission(&doc, NOW, &reg).is_ok());
        let late = 2_000_000_000_000;
        let doc = sign_submission(r, &key(3), late, &n);
        assert!(matches!(
            verify_submission(&doc, late, &reg),
            Err(SubmissionError::UnknownParty(_))
        ));
        // a dispute about an observation names it
        let mut d = dispute();
        if let Body::Dispute(x) = &mut d {
            x.subject.observation = None;
        }
        let doc = sign_submission(d, &key(1), NOW, &n);
        let e = verify_submission(&doc, NOW, &reg).unwrap_err();
        assert!(e.to_string().contains("names its observation"), "{e}");
    }
}
