//! Observation batches: what a probe worker at one vantage signs and ships to the collector,
//! and the collector's checks before anything reaches its store. Pure: no network, no clock.
//!
//! A batch is one signed header line and the records, one per line:
//!
//! ```text
//! {"chain":..,"count":N,"first_seq":S,"key_id":..,"kind":"sit-observation-batch","prev_hash":..,"records_blake3":..,"signature":..,"vantage":..}
//! <record S>
//! <record S+1>
//! ...
//! ```
//!
//! `chain` names the worker's chain (drawn at random when its spool is created): a worker
//! re-installed with an empty spool starts a new chain at seq 0, which must not pass for a
//! repeat of records already stored.
//!
//! The header is a signed document of the [`crate::signing`] scheme (canonical JSON, Ed25519).
//! The records are the worker's stored records **as it hashed them** into its chain (one JSON
//! object per line; JSON text never holds a raw newline), so the collector recomputes every
//! hash from what was signed rather than from a re-serialisation that another build might
//! order differently. `records_blake3` is blake3 over the records' 32-byte hashes in order:
//! the signature covers every record through it, and the collector needs those hashes for the
//! chain anyway. Why not sign one JSON document holding the records: canonicalising and
//! SHA-512-hashing half a megabyte per batch cost more than storing it (measured with
//! `sit bench collect`).
//!
//! The collector keeps, per vantage, the tip of the chain it has stored ([`Tip`]: the next
//! worker seq it expects and the hash of the last record). A batch then either extends the
//! tip, repeats records already stored (a publish retried after a lost ack, a redelivery after
//! a collector crash: the stored prefix is skipped, the rest appended, nothing twice), comes
//! early (records before it are still on their way: a message redelivered after a collector
//! crash arrives after newer ones; it waits, never refused), or does not join (a fork:
//! refused, with the reason, never stored).
//!
//! The batch id (JetStream's `Nats-Msg-Id`) is the blake3 of the signed bytes, so the same
//! batch published twice is the same message to the server's deduplication as well.

use crate::observation::Observation;
use crate::signing::{hex, key_id, sign_value, verify_value, VerifyError};
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

/// The `kind` member of every batch.
pub const KIND: &str = "sit-observation-batch";

/// The chain anchor of a worker's first record (32 zero bytes, hex).
pub fn genesis_hex() -> String {
    "0".repeat(64)
}

/// One record as the worker stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordText {
    /// The worker's seq (its own chain position).
    pub seq: u64,
    /// The record's bytes (observation JSON); its hash is blake3 of these.
    pub text: String,
}

/// Sign a batch of consecutive records of `vantage`'s chain (`prev_hash`: the hash of the
/// record before the first, hex). Returns the batch's bytes.
pub fn sign(
    vantage: &str,
    chain: &str,
    key: &SigningKey,
    prev_hash: &str,
    records: &[RecordText],
) -> Vec<u8> {
    let first_seq = records.first().map(|r| r.seq).unwrap_or(0);
    let mut digest = blake3::Hasher::new();
    for r in records {
        digest.update(blake3::hash(r.text.as_bytes()).as_bytes());
    }
    let v = serde_json::json!({
        "kind": KIND,
        "vantage": vantage,
        "chain": chain,
        "key_id": key_id(&key.verifying_key()),
        "first_seq": first_seq,
        "prev_hash": prev_hash,
        "count": records.len(),
        "records_blake3": digest.finalize().to_hex().to_string(),
    });
    let mut out = sign_value(v, key);
    for r in records {
        out.push(b'\n');
        out.extend_from_slice(r.text.as_bytes());
    }
    out
}

/// A batch's id: blake3 of its signed bytes, hex (JetStream's `Nats-Msg-Id`).
pub fn id(doc: &[u8]) -> String {
    blake3::hash(doc).to_hex().to_string()
}

/// One record of a batch that passed [`open`].
#[derive(Debug, Clone)]
pub struct Opened {
    /// The record's seq in the worker's chain.
    pub seq: u64,
    /// blake3 of the record's bytes (the worker's chain hash).
    pub hash: [u8; 32],
    /// The record, parsed.
    pub obs: Observation,
    /// Where the record's bytes are in the batch document.
    pub text: std::ops::Range<usize>,
}

/// A batch whose signature, sender and inner chain checked out.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The sending worker's vantage.
    pub vantage: String,
    /// The worker's chain name.
    pub chain: String,
    /// The seq of the batch's first record.
    pub first_seq: u64,
    /// The hash of the record before the first (hex; the genesis anchor at seq 0).
    pub prev_hash: String,
    /// The records, in chain order.
    pub records: Vec<Opened>,
}

/// Why a batch is refused (into the dead-letter record, never the store).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not a batch: unparsable header or record, wrong kind, or wrong record count (why).
    #[error("not a batch: {0}")]
    Malformed(String),
    /// The vantage has no registered key (the vantage).
    #[error("unknown worker: vantage `{0}` is not in workers.toml")]
    UnknownWorker(String),
    /// The header's signature, or the records' digest under it, does not verify.
    #[error("signature of vantage `{vantage}` does not verify: {why}")]
    Signature {
        /// The vantage the batch names.
        vantage: String,
        /// Why it does not verify.
        why: String,
    },
    /// The records do not link into the vantage's chain, or fork from what is stored (why).
    #[error("broken chain: {0}")]
    BrokenChain(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    kind: String,
    // read before verification (the key depends on it), and covered by the signature
    #[allow(dead_code)]
    vantage: String,
    #[allow(dead_code)]
    key_id: String,
    chain: String,
    first_seq: u64,
    prev_hash: String,
    count: u64,
    records_blake3: String,
}

/// Check a batch: it parses, names a known vantage (`key_of` gives its registered key), its
/// signature verifies with that key, and its records are consecutive links of that vantage's
/// chain from `prev_hash`, each naming the vantage as its worker. Errors: the first
/// [`Refusal`] that applies.
pub fn open(doc: &[u8], key_of: impl Fn(&str) -> Option<VerifyingKey>) -> Result<Checked, Refusal> {
    // checked once here, so that each record is parsed as text (a fifth faster than bytes)
    let doc_text = std::str::from_utf8(doc)
        .map_err(|e| Refusal::Malformed(format!("the batch is not UTF-8 ({e})")))?;
    let mut lines = doc_text.split('\n');
    let head = lines.next().unwrap_or_default().as_bytes();
    let v = crate::signing::parse_strict(head).map_err(|e| Refusal::Malformed(e.to_string()))?;
    let vantage = v
        .get("vantage")
        .and_then(|x| x.as_str())
        .ok_or_else(|| Refusal::Malformed("no `vantage` member".into()))?
        .to_string();
    let key = key_of(&vantage).ok_or_else(|| Refusal::UnknownWorker(vantage.clone()))?;
    let verified = verify_value(head, &key).map_err(|e: VerifyError| Refusal::Signature {
        vantage: vantage.clone(),
        why: e.to_string(),
    })?;
    let w: Header = serde_json::from_value(verified.value)
        .map_err(|e| Refusal::Malformed(format!("batch of `{vantage}`: {e}")))?;
    if w.kind != KIND {
        return Err(Refusal::Malformed(format!(
            "kind `{}`, not `{KIND}`",
            w.kind
        )));
    }
    let texts: Vec<&str> = lines.collect();
    if texts.len() as u64 != w.count {
        return Err(Refusal::Malformed(format!(
            "batch of `{vantage}` says {} records and holds {}",
            w.count,
            texts.len()
        )));
    }
    let hashes: Vec<[u8; 32]> = texts
        .iter()
        .map(|t| *blake3::hash(t.as_bytes()).as_bytes())
        .collect();
    let mut digest = blake3::Hasher::new();
    for h in &hashes {
        digest.update(h);
    }
    if digest.finalize().to_hex().as_str() != w.records_blake3 {
        return Err(Refusal::Signature {
            vantage,
            why: "the records are not the ones signed (records_blake3 differs)".into(),
        });
    }
    let mut prev: Option<&[u8; 32]> = None;
    let mut records = Vec::with_capacity(texts.len());
    for (i, (text, hash)) in texts.iter().zip(&hashes).enumerate() {
        let seq = w.first_seq + i as u64;
        let obs: Observation = serde_json::from_str(text)
            .map_err(|e| Refusal::Malformed(format!("record {seq} of `{vantage}`: {e}")))?;
        if obs.worker != vantage {
            return Err(Refusal::BrokenChain(format!(
                "record {seq} names worker `{}`, the batch is `{vantage}`'s",
                obs.worker
            )));
        }
        if obs.seq != seq {
            return Err(Refusal::BrokenChain(format!(
                "record {i} of the batch has seq {}, expected {seq}",
                obs.seq
            )));
        }
        let links = match prev {
            None => obs.prev_hash == w.prev_hash,
            Some(h) => blake3::Hash::from(*h).to_hex().as_str() == obs.prev_hash,
        };
        if !links {
            return Err(Refusal::BrokenChain(format!(
                "record {seq} of `{vantage}` does not link to the record before it"
            )));
        }
        prev = Some(hash);
        let start = text.as_ptr() as usize - doc.as_ptr() as usize;
        records.push(Opened {
            seq,
            hash: *hash,
            obs,
            text: start..start + text.len(),
        });
    }
    Ok(Checked {
        vantage,
        chain: w.chain,
        first_seq: w.first_seq,
        prev_hash: w.prev_hash,
        records,
    })
}

/// Where the collector's copy of one vantage's chain ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tip {
    /// The worker seq the next record must have.
    pub next_seq: u64,
    /// Hash of the last stored record (the genesis anchor before any), hex.
    pub hash: String,
    /// The chain's name (empty before its first record is stored).
    #[serde(default)]
    pub chain: String,
}

impl Default for Tip {
    fn default() -> Tip {
        Tip {
            next_seq: 0,
            hash: genesis_hex(),
            chain: String::new(),
        }
    }
}

/// How a checked batch meets the stored chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fit {
    /// Store the records from this index on (0: the batch extends the tip; more: its first
    /// records are stored already).
    Append {
        /// How many of the batch's first records are stored already.
        skip: usize,
    },
    /// Every record is stored already (a retried publish, a redelivery).
    Duplicate,
    /// The batch starts after the stored tip: records `tip.next_seq..first_seq` have not
    /// arrived yet. Take it again later (JetStream redelivers a message it was told to).
    Early {
        /// The first missing seq (the tip's `next_seq`).
        missing_from: u64,
        /// The last missing seq (the one before the batch's first).
        missing_to: u64,
    },
}

/// Fit a checked batch onto the tip of its vantage's stored chain. Errors:
/// [`Refusal::BrokenChain`] when the batch is of another chain than the one stored, or forks
/// from it.
pub fn fit(tip: &Tip, b: &Checked) -> Result<Fit, Refusal> {
    if !tip.chain.is_empty() && tip.chain != b.chain {
        return Err(Refusal::BrokenChain(format!(
            "`{}` sent records of chain {}, but its stored chain is {}: a worker started again with an empty spool? Register it under a new vantage name",
            b.vantage, b.chain, tip.chain
        )));
    }
    let n = b.records.len() as u64;
    let end = b.first_seq + n;
    if end <= tip.next_seq {
        // all stored already; the last one must be the stored one where they overlap
        return Ok(Fit::Duplicate);
    }
    if b.first_seq > tip.next_seq {
        return Ok(Fit::Early {
            missing_from: tip.next_seq,
            missing_to: b.first_seq - 1,
        });
    }
    let skip = (tip.next_seq - b.first_seq) as usize;
    let anchor = if skip == 0 {
        b.prev_hash.clone()
    } else {
        hex(&b.records[skip - 1].hash)
    };
    if anchor != tip.hash {
        return Err(Refusal::BrokenChain(format!(
            "`{}` record {} does not link to the stored record {}: a fork of the chain",
            b.vantage,
            tip.next_seq,
            tip.next_seq.wrapping_sub(1)
        )));
    }
    Ok(Fit::Append { skip })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    /// A chain of `n` records of `vantage` from seq 0, as a worker stores them.
    fn chain(vantage: &str, n: u64) -> Vec<RecordText> {
        let mut prev = genesis_hex();
        (0..n)
            .map(|seq| {
                let mut o = crate::observation::sample();
                o.worker = vantage.into();
                o.seq = seq;
                o.prev_hash = prev.clone();
                let text = serde_json::to_string(&o).unwrap();
                prev = hex(blake3::hash(text.as_bytes()).as_bytes());
                RecordText { seq, text }
            })
            .collect()
    }

    fn prev_of(c: &[RecordText], i: usize) -> String {
        if i == 0 {
            genesis_hex()
        } else {
            hex(blake3::hash(c[i - 1].text.as_bytes()).as_bytes())
        }
    }

    #[test]
    fn a_signed_batch_opens_and_extends_then_repeats_as_a_duplicate() {
        let k = key(1);
        let c = chain("eu", 5);
        let doc = sign("eu", "c1", &k, &prev_of(&c, 0), &c[..3]);
        let vk = k.verifying_key();
        let b = open(&doc, |v| (v == "eu").then_some(vk)).unwrap();
        assert_eq!((b.first_seq, b.records.len()), (0, 3));
        let mut tip = Tip::default();
        assert_eq!(fit(&tip, &b), Ok(Fit::Append { skip: 0 }));
        tip = Tip {
            next_seq: 3,
            hash: hex(&b.records[2].hash),
            chain: "c1".into(),
        };
        assert_eq!(fit(&tip, &b), Ok(Fit::Duplicate));
        // a re-batch overlapping the stored part: the stored prefix is skipped
        let doc2 = sign("eu", "c1", &k, &prev_of(&c, 1), &c[1..5]);
        let b2 = open(&doc2, |_| Some(vk)).unwrap();
        assert_eq!(fit(&tip, &b2), Ok(Fit::Append { skip: 2 }));
        // the id is the same for the same bytes
        assert_eq!(
            id(&doc),
            id(&sign("eu", "c1", &k, &prev_of(&c, 0), &c[..3]))
        );
    }

    #[test]
    fn unknown_workers_bad_signatures_and_broken_chains_are_refused_and_early_batches_wait() {
        let (k, other) = (key(1), key(2));
        let c = chain("eu", 4);
        let doc = sign("eu", "c1", &k, &prev_of(&c, 0), &c[..2]);
        assert_eq!(
            open(&doc, |_| None).unwrap_err(),
            Refusal::UnknownWorker("eu".into())
        );
        let wrong = other.verifying_key();
        assert!(matches!(
            open(&doc, |_| Some(wrong)).unwrap_err(),
            Refusal::Signature { .. }
        ));
        // a record altered after signing: the signature no longer verifies
        let tampered = String::from_utf8(doc.clone())
            .unwrap()
            .replacen("1136", "1137", 1);
        let vk = k.verifying_key();
        assert!(matches!(
            open(tampered.as_bytes(), |_| Some(vk)).unwrap_err(),
            Refusal::Signature { .. }
        ));
        // signed, but not a chain: record 2 missing between 1 and 3
        let holey = vec![c[0].clone(), c[1].clone(), c[3].clone()];
        let doc = sign("eu", "c1", &k, &prev_of(&c, 0), &holey);
        assert!(matches!(
            open(&doc, |_| Some(vk)).unwrap_err(),
            Refusal::BrokenChain(_)
        ));
        // another vantage's records under this vantage's name
        let us = chain("us", 1);
        let doc = sign("eu", "c1", &k, &genesis_hex(), &us);
        assert!(matches!(
            open(&doc, |_| Some(vk)).unwrap_err(),
            Refusal::BrokenChain(_)
        ));
        // a gap between the stored tip and the batch: early, not refused
        let doc = sign("eu", "c1", &k, &prev_of(&c, 3), &c[3..4]);
        let b = open(&doc, |_| Some(vk)).unwrap();
        assert_eq!(
            fit(&Tip::default(), &b),
            Ok(Fit::Early {
                missing_from: 0,
                missing_to: 2
            })
        );
        // a fork: a different record 0 than the one stored
        let b = open(&sign("eu", "c1", &k, &prev_of(&c, 0), &c[..1]), |_| {
            Some(vk)
        })
        .unwrap();
        let forked = Tip {
            next_seq: 0,
            hash: "1".repeat(64),
            chain: String::new(),
        };
        assert!(matches!(fit(&forked, &b), Err(Refusal::BrokenChain(m)) if m.contains("fork")));
        // a re-installed worker (empty spool, a new chain from seq 0) is no repeat of records
        // stored already: refused
        let stored = Tip {
            next_seq: 4,
            hash: prev_of(&c, 4),
            chain: "c1".into(),
        };
        let again = open(&sign("eu", "c2", &k, &prev_of(&c, 0), &c[..2]), |_| {
            Some(vk)
        })
        .unwrap();
        assert!(
            matches!(fit(&stored, &again), Err(Refusal::BrokenChain(m)) if m.contains("empty spool"))
        );
    }
}
