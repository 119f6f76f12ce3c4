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
}
