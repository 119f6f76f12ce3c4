//! The signed record: a determination plus its publication facts, in canonical bytes.
//!
//! The signature scheme is [`crate::signing`]'s: RFC 8785 canonical bytes of the record
//! without `signature`, Ed25519, hex. The stored and served bytes are the canonical form of the
//! whole record, signature included, so the record hash (blake3 of those bytes) is stable and
//! can be linked to.

use crate::fixed::Fixed;
use crate::index::{Determination, Status};
use crate::signing::key_id;
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

/// Schema tag of a signed determination.
pub const SCHEMA: &str = "sit-determination/1";

/// A determination as published: the computed record plus the publication facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publication {
    /// [`SCHEMA`].
    pub schema: String,
    /// The day's determination (its members inline in the record).
    #[serde(flatten)]
    pub determination: Determination,
    /// 1 for the first publication of (tier, date); each restatement adds one.
    pub version: u32,
    /// When the record was published (RFC 3339, UTC).
    pub published_at: String,
    /// For a restatement: the record it replaces. Links form a chain back to version 1.
    pub restates: Option<Restates>,
    /// The signing key's id ([`key_id`]).
    pub key_id: String,
}

/// The link from a restatement to the record it replaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restates {
    /// The replaced record's version.
    pub version: u32,
    /// The replaced record's sequence number (see [`Determination::sequence`]).
    pub sequence: u64,
    /// The replaced record's status.
    pub status: Status,
    /// The replaced record's value.
    pub value: Option<Fixed>,
    /// blake3 (hex) of the replaced record's bytes.
    pub record_hash: String,
}

pub use crate::signing::{canonical, VerifyError};

/// Sign a publication: returns the bytes to store and serve (canonical JSON with `signature`).
pub fn sign(p: &Publication, key: &SigningKey) -> Vec<u8> {
    debug_assert_eq!(p.key_id, key_id(&key.verifying_key()));
    crate::signing::sign_value(
        serde_json::to_value(p).expect("publication serialises"),
        key,
    )
}

/// What a successful verification established.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The record, read as a publication.
    pub publication: Publication,
    /// The bytes the signature covers.
    pub signed_bytes: Vec<u8>,
    /// The signature, 128 lowercase hex digits.
    pub signature_hex: String,
}

/// Check a record's signature against `key`, offline (see [`crate::signing::verify_value`]),
/// then read it as a publication ([`VerifyError::Schema`] when it is not one).
pub fn verify(record: &[u8], key: &VerifyingKey) -> Result<Verified, VerifyError> {
    let v = crate::signing::verify_value(record, key)?;
    let publication =
        serde_json::from_value(v.value).map_err(|e| VerifyError::Schema(e.to_string()))?;
    Ok(Verified {
        publication,
        signed_bytes: v.signed_bytes,
        signature_hex: v.signature_hex,
    })
}

/// Parse stored bytes without checking the signature (the archive checks hashes instead).
/// Errors: the JSON parser's message.
pub fn parse(record: &[u8]) -> Result<Publication, String> {
    serde_json::from_slice(record).map_err(|e| e.to_string())
}

/// blake3 (hex) of record bytes: the record hash used in links, logs and ETags.
pub fn record_hash(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample(sk: &SigningKey) -> Publication {
        // t1 on 2026-01-05 with no observations: CONTINGENCY carrying 2026-01-04's value.
        let d = crate::index::compute_day(
            &crate::index::Methodology::v1_0_0(),
            &crate::index::DayInput {
                tier: "t1",
                date: crate::time::Date::parse("2026-01-05").unwrap(),
                pass_threshold: Fixed(800_000_000),
                endpoints: &[],
                providers: &[],
                vantages: &[],
                observations: &[],
                previous_final: Some((
                    crate::time::Date::parse("2026-01-04").unwrap(),
                    Fixed(281_583_000),
                )),
                suite_hash: "suite",
                sequence: 7,
                computed_at: "2026-01-06T00:10:00.000Z",
                chain: None,
                prices: None,
            },
        );
        Publication {
            schema: SCHEMA.into(),
            determination: d,
            version: 1,
            published_at: "2026-01-06T00:10:00.000Z".into(),
            restates: None,
            key_id: key_id(&sk.verifying_key()),
        }
    }

    fn key(b: u8) -> SigningKey {
        SigningKey::from_bytes(&[b; 32])
    }

    #[test]
    fn signed_record_verifies_and_round_trips() {
        let sk = key(1);
        let p = sample(&sk);
        let bytes = sign(&p, &sk);
        let v = verify(&bytes, &sk.verifying_key()).unwrap();
        assert_eq!(v.publication, p);
        // The stored form is canonical: re-canonicalising changes nothing.
        let reparsed: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(canonical(&reparsed), bytes);
        // Only the exact signed bytes verify: a pretty-printed copy is refused, with the byte
        // where it departs from the canonical form (a consumer must read what was signed).
        let pretty = serde_json::to_vec_pretty(&reparsed).unwrap();
        assert_eq!(
            verify(&pretty, &sk.verifying_key()).unwrap_err(),
            crate::signing::VerifyError::NotCanonical(1)
        );
    }

    /// Regression guard for issue 16: a fake member placed before the genuine one (a parser
    /// keeping the first would read 9.999999999) made the record verify as VALID.
    #[test]
    fn a_duplicate_member_at_any_depth_is_refused() {
        let sk = key(3);
        let vk = sk.verifying_key();
        let bytes = sign(&sample(&sk), &sk);
        let text = String::from_utf8(bytes.clone()).unwrap();
        let fake = format!("{{\"value\":\"9.999999999\",{}", &text[1..]);
        let e = verify(fake.as_bytes(), &vk).unwrap_err();
        assert!(
            matches!(&e, crate::signing::VerifyError::Duplicate(m) if m.starts_with("`value`")),
            "{e}"
        );
        // nested: inside the determination's counts
        let nested = text.replacen("\"counts\":{", "\"counts\":{\"attempts\":1,", 1);
        assert_ne!(nested, text, "the sample has counts");
        let e = verify(nested.as_bytes(), &vk).unwrap_err();
        assert!(
            matches!(&e, crate::signing::VerifyError::Duplicate(m) if m.starts_with("`attempts`")),
            "{e}"
        );
    }

    /// Regression guard for issue 16: upper-case signature hex was accepted although the
    /// format says lower case.
    #[test]
    fn upper_case_signature_hex_is_refused() {
        let sk = key(4);
        let bytes = sign(&sample(&sk), &sk);
        let text = String::from_utf8(bytes).unwrap();
        let i = text.find("\"signature\":\"").unwrap() + 13;
        let mut upper = text.clone();
        upper.replace_range(i..i + 128, &text[i..i + 128].to_uppercase());
        assert_ne!(upper, text);
        assert_eq!(
            verify(upper.as_bytes(), &sk.verifying_key()).unwrap_err(),
            crate::signing::VerifyError::BadSignatureEncoding
        );
    }

    #[test]
    fn every_single_byte_flip_in_the_signed_part_fails() {
        let sk = key(2);
        let bytes = sign(&sample(&sk), &sk);
        let vk = sk.verifying_key();
        let mut failures = 0;
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            if verify(&b, &vk).is_err() {
                failures += 1;
            }
        }
        // Every flip either breaks the JSON, the signature encoding, or the signature.
        assert_eq!(failures, bytes.len());
    }

    #[test]
    fn another_key_is_named_not_silently_accepted() {
        let sk = key(3);
        let bytes = sign(&sample(&sk), &sk);
        let e = verify(&bytes, &key(4).verifying_key()).unwrap_err();
        assert!(matches!(e, VerifyError::WrongKey { .. }), "{e}");
    }

    #[test]
    fn contingency_record_states_the_carried_value_and_reason() {
        let sk = key(5);
        let p = sample(&sk);
        assert_eq!(p.determination.status, Status::Contingency);
        let v: serde_json::Value = serde_json::from_slice(&sign(&p, &sk)).unwrap();
        assert_eq!(v["status"], "CONTINGENCY");
        assert_eq!(v["value"], "0.281583000");
        assert_eq!(v["contingency"]["carried_from"], "2026-01-04");
        assert!(v["contingency"]["reason"]
            .as_str()
            .unwrap()
            .contains("valid"));
    }

    #[test]
    fn floats_are_refused() {
        let sk = key(6);
        let mut v: serde_json::Value = serde_json::from_slice(&sign(&sample(&sk), &sk)).unwrap();
        v["version"] = serde_json::json!(1.5);
        let e = verify(&serde_json::to_vec(&v).unwrap(), &sk.verifying_key()).unwrap_err();
        assert_eq!(e, VerifyError::Float("$.version".into()));
    }
}
