//! Certification challenges (issue 12): the oracle, not the provider, picks a certification's
//! seed.
//!
//! A provider that chooses its own seed can run certification until it likes the result and
//! publish only that one. With a challenge, the oracle issues a signed, expiring document
//! naming the certifier's key; the certification's master seed is derived from it; the
//! certificate embeds it; and the oracle keeps a log of every challenge it issued, so anyone
//! can see how many challenges a key drew (one published certificate out of twenty draws says
//! something). A certificate without a challenge says `self-seeded`.

use crate::signing::{canonical, verify_value, VerifyError};
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

/// Schema of a challenge document.
pub const SCHEMA: &str = "sit-challenge/1";

/// How long a challenge stays valid: a certification must start before it expires.
pub const VALID_MS: i64 = 60 * 60 * 1000;

/// A certificate's `seeding` when the certifier chose the seed.
pub const SELF_SEEDED: &str = "self-seeded";
/// A certificate's `seeding` when the seed derives from an oracle challenge ([`seed_of`]).
pub const ORACLE_CHALLENGE: &str = "oracle challenge";

/// A challenge as signed by the oracle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    /// [`SCHEMA`].
    pub schema: String,
    /// 64 hex digits from the oracle's OS random source.
    pub nonce: String,
    /// The certifier's key id the challenge was drawn for.
    pub certifier: String,
    /// Sequence number of the challenge in the oracle's log (1, 2, ...).
    pub sequence: u64,
    /// When it was issued (RFC 3339, UTC).
    pub issued_at: String,
    /// When it expires (RFC 3339, UTC): a certification must start by then.
    pub expires_at: String,
    /// The oracle's key id.
    pub key_id: String,
}

/// Sign a challenge: the canonical bytes of the document with its signature.
pub fn sign(c: &Challenge, oracle: &SigningKey) -> Vec<u8> {
    crate::signing::sign_value(serde_json::to_value(c).expect("serialises"), oracle)
}

/// Check a challenge's signature (with the strict reader) and schema.
pub fn verify(doc: &[u8], oracle: &VerifyingKey) -> Result<Challenge, VerifyError> {
    let v = verify_value(doc, oracle)?;
    let c: Challenge =
        serde_json::from_value(v.value).map_err(|e| VerifyError::Schema(e.to_string()))?;
    if c.schema != SCHEMA {
        return Err(VerifyError::Schema(format!(
            "schema `{}`, expected `{SCHEMA}`",
            c.schema
        )));
    }
    Ok(c)
}

/// The certification's master seed a challenge commits to: the first 8 bytes (little-endian)
/// of blake3 over a domain tag and the challenge's signed canonical bytes.
pub fn seed_of(doc: &[u8]) -> Result<u64, VerifyError> {
    let v = crate::signing::parse_strict(doc)?;
    let mut h = blake3::Hasher::new();
    h.update(b"sit-challenge-seed-v1\n");
    h.update(&canonical(&v));
    let b = h.finalize();
    Ok(u64::from_le_bytes(
        b.as_bytes()[..8].try_into().expect("8 bytes"),
    ))
}

/// Schema of a certifier's request for a challenge (`POST /v1/certify/challenge`).
pub const REQUEST_SCHEMA: &str = "sit-challenge-request/1";

/// How far a request's `requested_at` may be from the oracle's clock, either way.
pub const REQUEST_SKEW_MS: i64 = 5 * 60 * 1000;

/// A certifier's request for a challenge, signed with the certifier's own key: only a party
/// that holds a key can make the oracle write a challenge for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeRequest {
    /// [`REQUEST_SCHEMA`].
    pub schema: String,
    /// The certifier's key id (`ed25519:` and 16 hex digits of its public key's hash): the
    /// key that signs the request, and the one the challenge is drawn for.
    pub key_id: String,
    /// The certifier's Ed25519 public key, 64 hex digits: the request is signed with it.
    pub public_key: String,
    /// When the request was made (RFC 3339, UTC), within [`REQUEST_SKEW_MS`] of the
    /// oracle's clock.
    pub requested_at: String,
    /// 32 hex digits, fresh per request: a request is honoured once.
    pub nonce: String,
}

/// Why a challenge request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Not a signed request document of this schema, or its fields are malformed.
    #[error("not a challenge request: {0}")]
    Malformed(String),
    /// The key id does not name the public key, or the signature is not by it.
    #[error("the request is not signed by the key it names: {0}")]
    Signature(String),
    /// `requested_at` is too far from the oracle's clock.
    #[error("requested_at {at} is more than {} minutes from the oracle's clock", REQUEST_SKEW_MS / 60_000)]
    Stale {
        /// The request's time as written.
        at: String,
    },
}

/// Sign a request: the canonical bytes of the document with the certifier's signature.
pub fn sign_request(r: &ChallengeRequest, certifier: &SigningKey) -> Vec<u8> {
    crate::signing::sign_value(serde_json::to_value(r).expect("serialises"), certifier)
}

/// A request for `certifier`'s key at `at_ms`, with `nonce` (32 hex digits), signed.
pub fn request(certifier: &SigningKey, at_ms: i64, nonce: &str) -> Vec<u8> {
    let vk = certifier.verifying_key();
    let r = ChallengeRequest {
        schema: REQUEST_SCHEMA.into(),
        key_id: crate::signing::key_id(&vk),
        public_key: crate::signing::hex(vk.as_bytes()),
        requested_at: crate::time::format_utc_ms(at_ms),
        nonce: nonce.to_string(),
    };
    sign_request(&r, certifier)
}

/// Check a request at the oracle's time `now_ms`: its schema and fields, that its key id names
/// its public key and the signature is that key's, and that it was made within
/// [`REQUEST_SKEW_MS`]. (Whether its nonce was seen before, and the rate of requests, are the
/// oracle's to check: they need its memory.)
pub fn verify_request(doc: &[u8], now_ms: i64) -> Result<ChallengeRequest, RequestError> {
    let v =
        crate::signing::parse_strict(doc).map_err(|e| RequestError::Malformed(e.to_string()))?;
    let mut unsigned = v.clone();
    if let Some(o) = unsigned.as_object_mut() {
        o.remove("signature");
    }
    let r: ChallengeRequest =
        serde_json::from_value(unsigned).map_err(|e| RequestError::Malformed(e.to_string()))?;
    if r.schema != REQUEST_SCHEMA {
        return Err(RequestError::Malformed(format!(
            "schema `{}`, expected `{REQUEST_SCHEMA}`",
            r.schema
        )));
    }
    if r.nonce.len() != 32
        || !r
            .nonce
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(RequestError::Malformed(
            "nonce must be 32 lower-case hex digits".into(),
        ));
    }
    let vk = crate::signing::parse_public(&r.public_key)
        .map_err(|e| RequestError::Malformed(format!("public_key: {e}")))?;
    if crate::signing::key_id(&vk) != r.key_id {
        return Err(RequestError::Signature(format!(
            "key_id {} is not the id of public_key (that is {})",
            r.key_id,
            crate::signing::key_id(&vk)
        )));
    }
    verify_value(doc, &vk).map_err(|e| RequestError::Signature(e.to_string()))?;
    let at = crate::time::parse_utc_ms(&r.requested_at)
        .map_err(|e| RequestError::Malformed(format!("requested_at: {e}")))?;
    if (at - now_ms).abs() > REQUEST_SKEW_MS {
        return Err(RequestError::Stale {
            at: r.requested_at.clone(),
        });
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(oracle: &SigningKey) -> Challenge {
        Challenge {
            schema: SCHEMA.into(),
            nonce: "ab".repeat(32),
            certifier: "ed25519:0123456789abcdef".into(),
            sequence: 1,
            issued_at: "2026-11-30T10:00:00.000Z".into(),
            expires_at: "2026-11-30T11:00:00.000Z".into(),
            key_id: crate::signing::key_id(&oracle.verifying_key()),
        }
    }

    #[test]
    fn a_challenge_verifies_and_fixes_the_seed() {
        let sk = SigningKey::from_bytes(&[5; 32]);
        let doc = sign(&sample(&sk), &sk);
        assert_eq!(verify(&doc, &sk.verifying_key()).unwrap(), sample(&sk));
        let s = seed_of(&doc).unwrap();
        assert_eq!(s, seed_of(&doc).unwrap());
        // another nonce, another seed
        let mut other = sample(&sk);
        other.nonce = "cd".repeat(32);
        assert_ne!(seed_of(&sign(&other, &sk)).unwrap(), s);
        // another key does not verify it
        let wrong = SigningKey::from_bytes(&[6; 32]);
        assert!(verify(&doc, &wrong.verifying_key()).is_err());
    }

    #[test]
    fn a_request_verifies_only_signed_by_the_key_it_names_and_on_time() {
        let sk = SigningKey::from_bytes(&[7; 32]);
        let now = crate::time::parse_utc_ms("2026-12-04T10:00:00Z").unwrap();
        let nonce = "0123456789abcdef0123456789abcdef";
        let doc = request(&sk, now, nonce);
        let r = verify_request(&doc, now + 60_000).unwrap();
        assert_eq!(r.key_id, crate::signing::key_id(&sk.verifying_key()));
        assert!(matches!(
            verify_request(&doc, now + REQUEST_SKEW_MS + 1),
            Err(RequestError::Stale { .. })
        ));
        // the same request naming another key: refused
        let other = SigningKey::from_bytes(&[8; 32]);
        let mut v: serde_json::Value = serde_json::from_slice(&doc).unwrap();
        v["key_id"] = crate::signing::key_id(&other.verifying_key()).into();
        let forged = serde_json::to_vec(&v).unwrap();
        assert!(matches!(
            verify_request(&forged, now),
            Err(RequestError::Signature(_)) | Err(RequestError::Malformed(_))
        ));
        // signed by another key than the one it carries
        let mut r2 = r.clone();
        r2.key_id = crate::signing::key_id(&other.verifying_key());
        let by_other = sign_request(&r2, &other);
        assert!(matches!(
            verify_request(&by_other, now),
            Err(RequestError::Signature(_))
        ));
        assert!(matches!(
            verify_request(b"{}", now),
            Err(RequestError::Malformed(_))
        ));
    }
}
