//! The publisher's keys and their history, followed from one pinned root key.
//!
//! A verifier is given one public key out of band: the root, the key the data folder's
//! genesis notice names. Every later key comes by a rotation notice, signed by the outgoing key
//! and accepted (countersigned) by the incoming one, so neither key alone can hand the oracle's
//! name to a third. A revocation voids a key's signatures from a stated time (which may be in
//! the past: a leaked key). [`KeySet::follow`] checks the whole chain of notices in order,
//! each signed by a key valid at its published time, and yields each key's validity:
//!
//! - the root key: from the beginning;
//! - a rotated-to key: documents published from the rotation's effective time;
//! - a rotated-from key: until the effective time plus the rotation's `overlap_days`;
//! - a revoked key: never at or after its `void_after`.
//!
//! A document is accepted ([`KeySet::verify`]) only when it is signed by the key it names and
//! that key was valid at the time the document says it was published. What this cannot
//! prove: that a document signed by a key before its revocation was not backdated by whoever
//! leaked it; only a copy fetched before the leak proves that.

use crate::notice::{Change, Class, Notice};
use crate::signing::{key_id, parse_public, VerifiedValue, VerifyError};
use crate::time::{format_utc_ms, parse_utc_ms, DAY_MS};
use ed25519_dalek::VerifyingKey;
use serde::Serialize;

/// Why a chain of notices or a document is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeySetError {
    /// The chain of notices does not hold from the pinned root.
    #[error("key chain: {0}")]
    Chain(String),
    /// The document names a key the set does not have.
    #[error("signed by key {record} but the key given is {given}: not one of the publisher's keys followed from it (a forged or foreign signature, or the wrong key given)")]
    UnknownKey {
        /// The key the document names.
        record: String,
        /// The keys the set holds (the pinned root first), comma separated.
        given: String,
    },
    /// The key was not valid when the document says it was published.
    #[error("signed by key {key} at {at}, outside its validity ({validity})")]
    NotValid {
        /// The key.
        key: String,
        /// The document's time.
        at: String,
        /// The key's validity, for people.
        validity: String,
    },
    /// The document's signature or form.
    #[error("{0}")]
    Signature(#[from] VerifyError),
    /// The document has no time to check the key against.
    #[error("the document has no `{0}` time to check its key against")]
    NoTime(String),
}

/// One key of the set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Key {
    /// Its id ([`key_id`]).
    pub key_id: String,
    /// The public key, 64 hex digits.
    pub public_key_hex: String,
    /// Documents published from this time (UTC ms) on; None: from the beginning.
    #[serde(skip)]
    pub from_ms: Option<i64>,
    /// ... and before this time; None: while it is in force.
    #[serde(skip)]
    pub until_ms: Option<i64>,
    /// Revoked: its signatures on documents published at or after this time are void.
    #[serde(skip)]
    pub void_after_ms: Option<i64>,
    /// Valid from (RFC 3339), null for the root.
    pub valid_from: Option<String>,
    /// Valid until (RFC 3339), null while in force.
    pub valid_until: Option<String>,
    /// Revoked from (RFC 3339).
    pub void_after: Option<String>,
    /// A key made by `sit demo`: not for settlement.
    pub demo: bool,
    /// The notice that brought it in.
    pub brought_by: String,
    /// The notices that ended or revoked it.
    pub ended_by: Vec<String>,
    #[serde(skip)]
    vk: VerifyingKey,
}

impl Key {
    /// Whether a document published at `at_ms` may carry this key's signature.
    pub fn valid_at(&self, at_ms: i64) -> bool {
        self.from_ms.is_none_or(|f| at_ms >= f)
            && self.until_ms.is_none_or(|u| at_ms < u)
            && self.void_after_ms.is_none_or(|v| at_ms < v)
    }

    /// The validity, for people.
    pub fn validity(&self) -> String {
        let mut s = format!(
            "from {} until {}",
            self.valid_from.as_deref().unwrap_or("the beginning"),
            self.valid_until.as_deref().unwrap_or("now")
        );
        if let Some(v) = &self.void_after {
            s.push_str(&format!(", revoked from {v}"));
        }
        s
    }

    /// The public key.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.vk
    }
}

/// The publisher's keys, followed from a pinned root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeySet {
    /// Every key, in the order they came in.
    pub keys: Vec<Key>,
    /// The notices followed (ids, in order).
    pub chain: Vec<String>,
}

/// The time a signed document states it was published, by its kind: `published_at`
/// (determinations, notices), `computed_at` (settlements), `committed_at` (commitments),
/// `revealed_at` (reveals).
pub fn document_time(v: &serde_json::Value) -> Option<(&'static str, i64)> {
    ["published_at", "computed_at", "committed_at", "revealed_at"]
        .into_iter()
        .find_map(|f| {
            let t = v.get(f)?.as_str()?;
            Some((f, parse_utc_ms(t).ok()?))
        })
}

impl KeySet {
    /// Only the root: a data folder without notices (made before they existed).
    pub fn root_only(root: &VerifyingKey) -> KeySet {
        KeySet {
            keys: vec![Key {
                key_id: key_id(root),
                public_key_hex: crate::signing::hex(root.as_bytes()),
                from_ms: None,
                until_ms: None,
                void_after_ms: None,
                valid_from: None,
                valid_until: None,
                void_after: None,
                demo: false,
                brought_by: "pinned".into(),
                ended_by: Vec::new(),
                vk: *root,
            }],
            chain: Vec::new(),
        }
    }

    /// Follow `notices` (signed documents, any order; numbered N-0000, N-0001, ...) from the
    /// pinned `root`: the genesis must be signed by the root and name it; each later notice
    /// must be signed by a key valid at its published time; a rotation must be signed by the
    /// outgoing key and accepted by the incoming one. No notices: [`KeySet::root_only`].
    pub fn follow(root: &VerifyingKey, notices: &[Vec<u8>]) -> Result<KeySet, KeySetError> {
        let chain = |m: String| KeySetError::Chain(m);
        let mut read: Vec<(Notice, Vec<u8>)> = Vec::new();
        for doc in notices {
            let v = crate::signing::parse_strict(doc)
                .map_err(|e| chain(format!("a notice does not parse: {e}")))?;
            let mut v2 = v.clone();
            if let Some(o) = v2.as_object_mut() {
                o.remove("signature");
            }
            let n: Notice = serde_json::from_value(v2)
                .map_err(|e| chain(format!("a notice does not read as one: {e}")))?;
            read.push((n, doc.clone()));
        }
        read.sort_by(|a, b| a.0.id.cmp(&b.0.id));
        if read.is_empty() {
            return Ok(KeySet::root_only(root));
        }
        let root_id = key_id(root);
        let mut set = KeySet {
            keys: Vec::new(),
            chain: Vec::new(),
        };
        for (i, (n, doc)) in read.iter().enumerate() {
            let want = format!("N-{i:04}");
            if n.id != want {
                return Err(chain(format!(
                    "notice {want} is missing (found {} in its place)",
                    n.id
                )));
            }
            let at = n
                .published_ms()
                .map_err(|e| chain(format!("{}: {e}", n.id)))?;
            if i == 0 {
                if n.class != Class::Genesis {
                    return Err(chain("N-0000 is not a genesis".into()));
                }
                let named = n.changes.iter().find_map(|c| match c {
                    Change::SigningKey {
                        id,
                        public_key,
                        demo,
                    } => Some((id, public_key, *demo)),
                    _ => None,
                });
                let Some((id, hex, demo)) = named else {
                    return Err(chain("the genesis names no signing key".into()));
                };
                if *id != root_id || parse_public(hex).ok() != Some(*root) {
                    return Err(chain(format!(
                        "the genesis names key {id}, not the pinned root {root_id}"
                    )));
                }
                crate::signing::verify_value(doc, root)
                    .map_err(|e| chain(format!("N-0000 is not signed by the pinned root: {e}")))?;
                let mut k = KeySet::root_only(root).keys.remove(0);
                k.demo = demo;
                k.brought_by = n.id.clone();
                set.keys.push(k);
                set.chain.push(n.id.clone());
                continue;
            }
            // signed by a key valid at its published time
            let signer = set
                .keys
                .iter()
                .find(|k| k.key_id == n.key_id)
                .ok_or_else(|| {
                    chain(format!(
                        "{} is signed by key {}, not one of the publisher's (a forged notice)",
                        n.id, n.key_id
                    ))
                })?;
            if !signer.valid_at(at) {
                return Err(chain(format!(
                    "{} is signed by key {} at {}, outside its validity ({})",
                    n.id,
                    n.key_id,
                    n.published_at,
                    signer.validity()
                )));
            }
            crate::signing::verify_value(doc, &signer.vk)
                .map_err(|e| chain(format!("{}: {e}", n.id)))?;
            let effective = n
                .effective_ms()
                .map_err(|e| chain(format!("{}: {e}", n.id)))?;
            for c in &n.changes {
                match c {
                    Change::KeyRotation {
                        from,
                        to,
                        public_key,
                        overlap_days,
                    } => {
                        if n.key_id != *from {
                            return Err(chain(format!(
                                "{}: a rotation from {from} is signed by {}, not by the outgoing key",
                                n.id, n.key_id
                            )));
                        }
                        let vk = parse_public(public_key)
                            .ok()
                            .filter(|vk| key_id(vk) == *to)
                            .ok_or_else(|| {
                                chain(format!("{}: public_key is not key {to}", n.id))
                            })?;
                        let ok = n
                            .acceptance
                            .as_deref()
                            .is_some_and(|a| crate::notice::accepted(n, a, &vk));
                        if !ok {
                            return Err(chain(format!(
                                "{}: the rotation to {to} is not accepted by the incoming key (a forged rotation)",
                                n.id
                            )));
                        }
                        if set.keys.iter().any(|k| k.key_id == *to) {
                            return Err(chain(format!("{}: key {to} is in the set already", n.id)));
                        }
                        let until = effective + *overlap_days as i64 * DAY_MS;
                        let out = set
                            .keys
                            .iter_mut()
                            .find(|k| k.key_id == *from)
                            .expect("the signer is in the set");
                        out.until_ms = Some(until);
                        out.valid_until = Some(format_utc_ms(until));
                        out.ended_by.push(n.id.clone());
                        set.keys.push(Key {
                            key_id: to.clone(),
                            public_key_hex: crate::signing::hex(vk.as_bytes()),
                            from_ms: Some(effective),
                            until_ms: None,
                            void_after_ms: None,
                            valid_from: Some(format_utc_ms(effective)),
                            valid_until: None,
                            void_after: None,
                            demo: false,
                            brought_by: n.id.clone(),
                            ended_by: Vec::new(),
                            vk,
                        });
                    }
                    Change::KeyRevocation { key, void_after } => {
                        let t = parse_utc_ms(void_after)
                            .map_err(|e| chain(format!("{}: void_after: {e}", n.id)))?;
                        let k = set
                            .keys
                            .iter_mut()
                            .find(|k| k.key_id == *key)
                            .ok_or_else(|| chain(format!("{}: revokes unknown key {key}", n.id)))?;
                        if k.void_after_ms.is_none_or(|v| t < v) {
                            k.void_after_ms = Some(t);
                            k.void_after = Some(format_utc_ms(t));
                        }
                        k.ended_by.push(n.id.clone());
                    }
                    Change::SigningKey { .. } => {
                        return Err(chain(format!(
                            "{}: only the genesis names a signing key",
                            n.id
                        )))
                    }
                    _ => {}
                }
            }
            set.chain.push(n.id.clone());
        }
        Ok(set)
    }

    /// The key `id`, if the set has it.
    pub fn key(&self, id: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.key_id == id)
    }

    /// The key that may sign a document published at `at_ms` naming key `id`.
    pub fn valid(&self, id: &str, at_ms: i64) -> Result<&Key, KeySetError> {
        let k = self.key(id).ok_or_else(|| KeySetError::UnknownKey {
            record: id.to_string(),
            given: self
                .keys
                .iter()
                .map(|k| k.key_id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
        if !k.valid_at(at_ms) {
            return Err(KeySetError::NotValid {
                key: id.to_string(),
                at: format_utc_ms(at_ms),
                validity: k.validity(),
            });
        }
        Ok(k)
    }

    /// Verify a signed document (a determination, settlement, notice, commitment or reveal):
    /// the key it names must be in the set and valid at the time the document states
    /// ([`document_time`]), and the signature must hold under it. Returns the key too.
    pub fn verify(&self, doc: &[u8]) -> Result<(VerifiedValue, &Key), KeySetError> {
        let v = crate::signing::parse_strict(doc)?;
        let id = v
            .get("key_id")
            .and_then(|k| k.as_str())
            .ok_or(KeySetError::Signature(VerifyError::NoSignature))?
            .to_string();
        let (_, at) = document_time(&v).ok_or_else(|| {
            KeySetError::NoTime("published_at, computed_at, committed_at or revealed_at".into())
        })?;
        let k = self.valid(&id, at)?;
        let checked = crate::signing::verify_value(doc, &k.vk)?;
        Ok((checked, k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notice::{acceptance_message, KIND};
    use ed25519_dalek::{Signer, SigningKey};

    fn sk(b: u8) -> SigningKey {
        SigningKey::from_bytes(&[b; 32])
    }

    fn notice(id: &str, class: Class, signer: &SigningKey, changes: Vec<Change>) -> Notice {
        Notice {
            kind: KIND.into(),
            id: id.into(),
            class,
            changes,
            reason: "a reason long enough to read".into(),
            published_at: "2026-03-02T09:00:00.000Z".into(),
            effective_at: "2026-03-02T00:00:00.000Z".into(),
            consultation: None,
            key_id: key_id(&signer.verifying_key()),
            acceptance: None,
        }
    }

    fn sign(n: &Notice, k: &SigningKey) -> Vec<u8> {
        crate::signing::sign_value(serde_json::to_value(n).unwrap(), k)
    }

    fn genesis(root: &SigningKey) -> Vec<u8> {
        let n = notice(
            "N-0000",
            Class::Genesis,
            root,
            vec![Change::SigningKey {
                id: key_id(&root.verifying_key()),
                public_key: crate::signing::hex(root.verifying_key().as_bytes()),
                demo: false,
            }],
        );
        sign(&n, root)
    }

    fn rotation(from: &SigningKey, to: &SigningKey, accept_with: &SigningKey) -> Vec<u8> {
        let mut n = notice(
            "N-0001",
            Class::Minor,
            from,
            vec![Change::KeyRotation {
                from: key_id(&from.verifying_key()),
                to: key_id(&to.verifying_key()),
                public_key: crate::signing::hex(to.verifying_key().as_bytes()),
                overlap_days: 2,
            }],
        );
        n.published_at = "2026-03-03T09:00:00.000Z".into();
        n.effective_at = "2026-04-10T00:00:00.000Z".into();
        n.acceptance = Some(crate::signing::hex(
            &accept_with.sign(&acceptance_message(&n)).to_bytes(),
        ));
        sign(&n, from)
    }

    fn doc(k: &SigningKey, at: &str) -> Vec<u8> {
        crate::signing::sign_value(
            serde_json::json!({"published_at": at, "key_id": key_id(&k.verifying_key()), "x": 1}),
            k,
        )
    }

    #[test]
    fn a_rotation_hands_over_with_an_overlap() {
        let (a, b) = (sk(1), sk(2));
        let set = KeySet::follow(&a.verifying_key(), &[rotation(&a, &b, &b), genesis(&a)]).unwrap();
        assert_eq!(set.chain, vec!["N-0000", "N-0001"]);
        assert!(set.verify(&doc(&a, "2026-04-09T12:00:00.000Z")).is_ok());
        assert!(
            set.verify(&doc(&a, "2026-04-11T23:59:59.999Z")).is_ok(),
            "overlap"
        );
        let late = set
            .verify(&doc(&a, "2026-04-12T00:00:00.000Z"))
            .unwrap_err();
        assert!(late.to_string().contains("outside its validity"), "{late}");
        assert!(set.verify(&doc(&b, "2026-04-10T00:00:00.000Z")).is_ok());
        let early = set
            .verify(&doc(&b, "2026-04-09T23:59:59.999Z"))
            .unwrap_err();
        assert!(matches!(early, KeySetError::NotValid { .. }), "{early}");
    }

    #[test]
    fn a_forged_rotation_is_refused() {
        let (a, b, m) = (sk(1), sk(2), sk(3));
        // accepted by another key than the incoming one
        let e =
            KeySet::follow(&a.verifying_key(), &[genesis(&a), rotation(&a, &b, &m)]).unwrap_err();
        assert!(
            e.to_string().contains("not accepted by the incoming key"),
            "{e}"
        );
        // signed by a key not in the set
        let e =
            KeySet::follow(&a.verifying_key(), &[genesis(&a), rotation(&m, &b, &b)]).unwrap_err();
        assert!(e.to_string().contains("forged notice"), "{e}");
        // a genesis not naming the pinned root
        let e = KeySet::follow(&m.verifying_key(), &[genesis(&a)]).unwrap_err();
        assert!(e.to_string().contains("not the pinned root"), "{e}");
    }

    #[test]
    fn a_revoked_key_signs_nothing_after_void_after() {
        let (a, b) = (sk(1), sk(2));
        let mut n = notice(
            "N-0002",
            Class::Emergency,
            &b,
            vec![Change::KeyRevocation {
                key: key_id(&a.verifying_key()),
                void_after: "2026-04-05T00:00:00.000Z".into(),
            }],
        );
        n.published_at = "2026-04-10T01:00:00.000Z".into();
        n.effective_at = "2026-04-12T00:00:00.000Z".into();
        let set = KeySet::follow(
            &a.verifying_key(),
            &[genesis(&a), rotation(&a, &b, &b), sign(&n, &b)],
        )
        .unwrap();
        assert!(set.verify(&doc(&a, "2026-04-04T23:00:00.000Z")).is_ok());
        let e = set
            .verify(&doc(&a, "2026-04-06T00:00:00.000Z"))
            .unwrap_err();
        assert!(e.to_string().contains("revoked from 2026-04-05"), "{e}");
        let k = set.key(&key_id(&a.verifying_key())).unwrap();
        assert_eq!(k.ended_by, vec!["N-0001", "N-0002"]);
    }

    #[test]
    fn no_notices_trust_the_root_alone() {
        let (a, b) = (sk(1), sk(2));
        let set = KeySet::follow(&a.verifying_key(), &[]).unwrap();
        assert!(set.verify(&doc(&a, "2020-01-01T00:00:00.000Z")).is_ok());
        assert!(matches!(
            set.verify(&doc(&b, "2020-01-01T00:00:00.000Z"))
                .unwrap_err(),
            KeySetError::UnknownKey { .. }
        ));
    }
}
