//! Checking what the oracle signs, inside your own systems: one call per document.
//!
//! An exchange settling on the index, or an auditor, needs three things: the record's bytes
//! (as served by `GET /v1/index/{tier}/{date}`), the publisher's public key (as served by
//! `GET /v1/keys` and obtained out of band), and this module. Nothing here opens a socket or
//! a file.
//!
//! ```no_run
//! let record = std::fs::read("t1-2026-01-05.json").unwrap();
//! let key = sit_core::verify::public_key(&std::fs::read_to_string("public-key.pem").unwrap()).unwrap();
//! let v = sit_core::verify::determination(&record, &key).unwrap();
//! println!("{} {} {:?}", v.publication.determination.tier, v.publication.determination.date,
//!          v.publication.determination.value);
//! ```
//!
//! - [`determination`]: the Ed25519 signature over the record's RFC 8785 canonical bytes, the
//!   schema tag, and that the record parses as a determination (decimals as strings, no floats).
//! - [`certificate`]: the signature, then every derived figure and verdict recomputed from the
//!   certificate's own counts under the probe suite it names ([`certificate_with`]: under a
//!   registry of your choosing).
//! - [`certificate_challenge`]: a verified certificate's oracle challenge, if it has one.
//! - [`public_key`]: the publisher's key from SPKI PEM or hex.
//! - [`KeySet`]: the publisher's keys followed from one pinned root key through the signed
//!   rotation notices (`GET /v1/keys` serves them as `chain`); [`determination_in`] accepts a
//!   record only if its key was valid when it was published.
//! - [`finality`]: when a record becomes final and whether its status may settle a contract.

use crate::certificate::{check_consistency, Certificate};
use crate::index::{Determination, Status};
pub use crate::keyset::{Key, KeySet, KeySetError};
use crate::record::{Verified, SCHEMA};
use crate::signing::VerifyError;
use crate::time::{format_utc_ms, DAY_MS, HOUR_MS};
use crate::versions::Registry;
pub use ed25519_dalek::VerifyingKey;

/// Why a document is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The public key text is neither SPKI PEM nor 64 hex digits.
    #[error("public key: {0}")]
    Key(String),
    /// The signature does not hold (altered document, other key, not a signed document).
    #[error("{0}")]
    Signature(#[from] VerifyError),
    /// Signed, but not a document of the expected kind.
    #[error("signature valid, but the document is a `{found}`, not a `{expected}`")]
    Schema {
        /// The schema expected.
        expected: String,
        /// The schema the document names (empty when it names none).
        found: String,
    },
    /// Signed, but its figures do not follow from its counts (or its suite is unknown).
    #[error("signature valid, but the certificate is inconsistent: {0}")]
    Inconsistent(String),
}

/// Parse a public key given as SPKI PEM (`-----BEGIN PUBLIC KEY-----`) or 64 hex digits.
pub fn public_key(text: &str) -> Result<VerifyingKey, Error> {
    crate::signing::parse_public(text).map_err(Error::Key)
}

/// Verify a signed determination (`sit-determination/1`) against the publisher's key.
pub fn determination(record: &[u8], key: &VerifyingKey) -> Result<Verified, Error> {
    let v = crate::record::verify(record, key)?;
    if v.publication.schema != SCHEMA {
        return Err(Error::Schema {
            expected: SCHEMA.into(),
            found: v.publication.schema.clone(),
        });
    }
    Ok(v)
}

/// [`determination`] under a key set: the record's key must be one of the publisher's keys
/// followed from the pinned root and valid at the record's `published_at`. Returns the key.
pub fn determination_in<'k>(record: &[u8], keys: &'k KeySet) -> Result<(Verified, &'k Key), Error> {
    let (_, k) = keys.verify(record).map_err(|e| match e {
        KeySetError::Signature(s) => Error::Signature(s),
        other => Error::Key(other.to_string()),
    })?;
    Ok((determination(record, k.verifying_key())?, k))
}

/// Verify a signed certificate (`sit-certificate/1`): signature, then consistency of every
/// figure and verdict with its counts, under the suite version it names.
pub fn certificate(doc: &[u8], key: &VerifyingKey) -> Result<Certificate, Error> {
    certificate_with(doc, key, Registry::embedded())
}

/// [`certificate`] with an explicit registry of suite versions.
pub fn certificate_with(
    doc: &[u8],
    key: &VerifyingKey,
    versions: &Registry,
) -> Result<Certificate, Error> {
    let v = crate::signing::verify_value(doc, key)?;
    let found = v.value["schema"].as_str().unwrap_or("").to_string();
    if found != crate::certificate::SCHEMA {
        return Err(Error::Schema {
            expected: crate::certificate::SCHEMA.into(),
            found,
        });
    }
    let cert: Certificate = serde_json::from_value(v.value)
        .map_err(|e| Error::Inconsistent(format!("not a certificate: {e}")))?;
    let suite = versions
        .suite(&cert.suite.hash)
        .map_err(|e| Error::Inconsistent(e.to_string()))?;
    check_consistency(&cert, suite).map_err(Error::Inconsistent)?;
    Ok(cert)
}

/// What a certificate's challenge shows (see [`crate::certificate::challenge`]).
#[derive(Debug, Clone)]
pub struct ChallengeCheck {
    /// The challenge, verified.
    pub challenge: crate::certificate::challenge::Challenge,
}

/// Check a verified certificate's challenge against the oracle's key: the challenge's
/// signature (strict reader), that it was drawn for the certificate's key, that the
/// certificate's seed derives from it, and that the run started before it expired. A
/// certificate without a challenge is self-seeded: `Ok(None)`.
pub fn certificate_challenge(
    cert: &Certificate,
    oracle: &VerifyingKey,
) -> Result<Option<ChallengeCheck>, Error> {
    use crate::certificate::challenge;
    let Some(doc) = &cert.challenge else {
        return Ok(None);
    };
    let bad = |m: String| Error::Inconsistent(format!("challenge: {m}"));
    let c = challenge::verify(doc.as_bytes(), oracle).map_err(|e| bad(e.to_string()))?;
    if c.certifier != cert.key_id {
        return Err(bad(format!(
            "drawn for key {}, but the certificate is signed by {}",
            c.certifier, cert.key_id
        )));
    }
    let seed = challenge::seed_of(doc.as_bytes()).map_err(|e| bad(e.to_string()))?;
    if cert.window.seed != format!("{seed:016x}") {
        return Err(bad(format!(
            "the certificate's seed {} is not the one the challenge fixes ({seed:016x})",
            cert.window.seed
        )));
    }
    let (start, issued, expires) = (
        crate::time::parse_utc_ms(&cert.window.started_at),
        crate::time::parse_utc_ms(&c.issued_at),
        crate::time::parse_utc_ms(&c.expires_at),
    );
    match (start, issued, expires) {
        (Ok(s), Ok(i), Ok(x)) if s >= i && s <= x => {}
        _ => {
            return Err(bad(format!(
                "the run started at {}, outside the challenge's validity ({} to {})",
                cert.window.started_at, c.issued_at, c.expires_at
            )))
        }
    }
    if cert.seeding.as_deref() != Some(challenge::ORACLE_CHALLENGE) {
        return Err(bad(
            "the certificate does not say it was seeded by the challenge".into(),
        ));
    }
    Ok(Some(ChallengeCheck { challenge: c }))
}

/// What a published day means for settlement (index-methodology.md section 8): derived from
/// the record's status and its methodology (looked up by hash in `registry`), never stored
/// apart from it. The publisher's restatement cutoff is the same instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finality {
    /// The restatement cutoff (RFC 3339): from then on no version of the day can be published.
    /// None when the record's methodology is not known to this build.
    pub final_at: Option<String>,
    /// The day's own value is a daily settlement value ([`Status::settles`]).
    pub settles: bool,
    /// How a contract period uses the day: `value`, `carried value`, `fallback` or `refused`.
    pub contract_use: &'static str,
    /// Why, in words: the status and its reason.
    pub reason: String,
}

/// The [`Finality`] of `d`, its methodology looked up in `registry` by hash.
pub fn finality(d: &Determination, registry: &Registry) -> Finality {
    let final_at = registry.methodology(&d.methodology_hash).ok().map(|m| {
        format_utc_ms(d.date.start_ms() + DAY_MS + m.restatement_cutoff_hours as i64 * HOUR_MS)
    });
    let carried = || {
        d.contingency
            .as_ref()
            .map(|c| c.reason.clone())
            .unwrap_or_default()
    };
    let (contract_use, reason) = match d.status {
        Status::Final => ("value", "determined from the day's own data".to_string()),
        Status::Restated => (
            "value",
            "a later version, recomputed from the day's own data".to_string(),
        ),
        Status::Contingency => ("carried value", carried()),
        Status::Suspended => ("fallback", carried()),
        Status::Base => (
            "refused",
            "the anchor of a chain: no earlier price to compare".to_string(),
        ),
    };
    Finality {
        final_at,
        settles: d.status.settles(),
        contract_use,
        reason: format!("{}: {}", d.status.as_str(), reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    #[test]
    fn a_certificate_is_not_accepted_as_a_determination_and_back() {
        let sk = SigningKey::from_bytes(&[9; 32]);
        let doc = crate::signing::sign_value(
            serde_json::json!({"schema": "sit-certificate/1", "key_id": crate::signing::key_id(&sk.verifying_key())}),
            &sk,
        );
        assert!(determination(&doc, &sk.verifying_key()).is_err());
        let doc = crate::signing::sign_value(
            serde_json::json!({"schema": "sit-determination/1", "key_id": crate::signing::key_id(&sk.verifying_key())}),
            &sk,
        );
        let e = certificate(&doc, &sk.verifying_key()).unwrap_err();
        assert!(matches!(e, Error::Schema { .. }), "{e}");
    }

    #[test]
    fn keys_parse_from_pem_or_hex_and_garbage_is_named() {
        let vk = SigningKey::from_bytes(&[3; 32]).verifying_key();
        let pem = crate::signing::public_pem(&vk);
        assert_eq!(public_key(&pem).unwrap(), vk);
        assert_eq!(public_key(&crate::signing::hex(vk.as_bytes())).unwrap(), vk);
        assert!(matches!(public_key("nope"), Err(Error::Key(_))));
    }
}
