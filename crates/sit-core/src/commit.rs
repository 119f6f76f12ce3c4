//! Probe-schedule commitment: each day's schedule seed is committed before the day and
//! revealed after it, so an auditor can check that every probe of the day came from the
//! committed schedule (nothing cherry-picked, nothing dropped) without anyone being able to
//! predict probe times or prompts in advance. Pure.
//!
//! commitment = blake3("sit-seed-commit-v1" || date || seed (8 bytes LE) || salt (32 bytes)),
//! hex. The salt makes the 64-bit seed impossible to grind from the commitment.

use crate::observation::Observation;
use crate::probes::Suite;
use crate::time::Date;
use serde::{Deserialize, Serialize};

/// Published before the day: binds the seed and everything the schedule depends on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commitment {
    /// The day the schedule is for.
    pub date: Date,
    /// The commitment to the day's seed ([`commitment_of`]), 64 hex digits.
    pub commitment: String,
    /// Endpoint ids in schedule order.
    pub endpoints: Vec<String>,
    /// Probes per endpoint, tier and hour.
    pub per_hour: u32,
    /// The probe suite the schedule draws from (its hash).
    pub suite_hash: String,
    /// When the commitment was made (RFC 3339, UTC).
    pub committed_at: String,
    /// The schedule version the seed expands by ([`crate::schedule::schedule`]): 1,
    /// independent probes (left out of the JSON, so older commitments keep their bytes); 2,
    /// paired; 3, paired and stratified.
    #[serde(default = "schedule_v1", skip_serializing_if = "is_v1")]
    pub schedule: u32,
    /// The publisher's key id: commitments and reveals made by `sit run` from 2026-12-07 are
    /// signed (RFC 8785 bytes without `signature`, Ed25519, like a record); older ones and a
    /// probe network vantage's (signed by its worker in transit) carry none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The signature, 128 hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

fn schedule_v1() -> u32 {
    crate::schedule::SCHEDULE_INDEPENDENT
}

fn is_v1(v: &u32) -> bool {
    *v == crate::schedule::SCHEDULE_INDEPENDENT
}

impl Commitment {
    /// The committed schedule, once the seed is known.
    pub fn slots(&self, suite: &crate::probes::Suite, seed: u64) -> Vec<crate::schedule::Slot> {
        crate::schedule::schedule(
            suite,
            self.endpoints.len(),
            self.date,
            seed,
            self.per_hour,
            self.schedule,
        )
    }
}

/// Published after the day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reveal {
    /// The day the seed is for.
    pub date: Date,
    /// The day seed, 16 hex digits.
    pub seed: String,
    /// 64 hex digits.
    pub salt: String,
    /// When the seed was revealed (RFC 3339, UTC).
    pub revealed_at: String,
    /// The publisher's key id: commitments and reveals made by `sit run` from 2026-12-07 are
    /// signed (RFC 8785 bytes without `signature`, Ed25519, like a record); older ones and a
    /// probe network vantage's (signed by its worker in transit) carry none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The signature, 128 hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// `doc` signed with `key`: its `key_id` set and its `signature` over the canonical bytes of
/// the rest (a commitment or a reveal).
pub fn sign<T: Serialize + serde::de::DeserializeOwned>(
    doc: &T,
    key: &ed25519_dalek::SigningKey,
) -> T {
    let mut v = serde_json::to_value(doc).expect("serialises");
    let o = v.as_object_mut().expect("a schedule document is an object");
    o.remove("signature");
    o.insert(
        "key_id".into(),
        crate::signing::key_id(&key.verifying_key()).into(),
    );
    let bytes = crate::signing::sign_value(v, key);
    serde_json::from_slice(&bytes).expect("what was serialised parses")
}

/// The canonical bytes of a schedule document as published (signed or not).
pub fn bytes<T: Serialize>(doc: &T) -> Vec<u8> {
    crate::signing::canonical(&serde_json::to_value(doc).expect("serialises"))
}

/// The commitment to `seed` for `date` with `salt`: blake3 (hex) of the domain tag, the
/// date (`YYYY-MM-DD`), the seed (8 bytes little-endian) and the salt.
pub fn commitment_of(date: Date, seed: u64, salt: &[u8; 32]) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"sit-seed-commit-v1");
    h.update(date.to_string().as_bytes());
    h.update(&seed.to_le_bytes());
    h.update(salt);
    h.finalize().to_hex().to_string()
}

impl Reveal {
    /// The seed as a number (`None` when it is not hexadecimal that fits in 64 bits).
    pub fn seed_u64(&self) -> Option<u64> {
        u64::from_str_radix(&self.seed, 16).ok()
    }

    /// The salt's 32 bytes (`None` when it is not 64 hex digits).
    pub fn salt_bytes(&self) -> Option<[u8; 32]> {
        crate::signing::unhex(&self.salt)?.try_into().ok()
    }
}

/// Check a reveal against its commitment, and the day's observations against the schedule
/// the revealed seed produces. Returns the first problem, naming the record.
pub fn check_day(
    suite: &Suite,
    c: &Commitment,
    r: &Reveal,
    observations: &[&Observation],
) -> Result<(), String> {
    let (Some(seed), Some(salt)) = (r.seed_u64(), r.salt_bytes()) else {
        return Err(format!(
            "{}: the reveal is not a 16-hex seed and 64-hex salt",
            r.date
        ));
    };
    if commitment_of(c.date, seed, &salt) != c.commitment || r.date != c.date {
        return Err(format!(
            "{}: the revealed seed does not match the commitment published before the day",
            c.date
        ));
    }
    let slots = c.slots(suite, seed);
    let mut used = vec![false; slots.len()];
    // (seed, nonce) identify a slot; a BTreeMap keeps the lookup deterministic and fast.
    let by_key: std::collections::BTreeMap<(u64, &str), usize> = slots
        .iter()
        .enumerate()
        .map(|(i, s)| ((s.seed, s.nonce.as_str()), i))
        .collect();
    for o in observations {
        // A retry repeats its scheduled probe: it must follow the original attempt.
        if o.retry > 0 {
            match by_key.get(&(o.seed, o.nonce.as_str())) {
                Some(&i) if used[i] && o.at_ms >= slots[i].at_ms => continue,
                _ => {
                    return Err(format!(
                        "observation seq {} is retry {} of a probe that was not attempted first in the committed schedule of {}",
                        o.seq, o.retry, c.date
                    ))
                }
            }
        }
        let hit = by_key
            .get(&(o.seed, o.nonce.as_str()))
            .copied()
            .filter(|&i| {
                let s = &slots[i];
                !used[i]
                    && c.endpoints[s.endpoint] == o.endpoint
                    && suite.tiers[s.tier].id == o.tier
                    && s.family.id() == o.family
                    && o.at_ms >= s.at_ms
            });
        match hit {
            Some(i) => used[i] = true,
            None => {
                return Err(format!(
                    "observation seq {} ({} {} {}, seed {}) is not in the committed schedule of {}",
                    o.seq, o.endpoint, o.tier, o.family, o.seed, c.date
                ))
            }
        }
    }
    if let Some(i) = used.iter().position(|u| !u) {
        let s = &slots[i];
        return Err(format!(
            "{}: scheduled probe {} {} {} (seed {}) has no observation: dropped",
            c.date,
            c.endpoints[s.endpoint],
            suite.tiers[s.tier].id,
            s.family.id(),
            s.seed
        ));
    }
    Ok(())
}
