//! Notices as the publisher uses them: publishing one (checked against the rules and every
//! notice before it, signed at the clock's time, written once), the genesis a data folder
//! begins with, and what is in force on a day (the methodology it is determined with, the
//! panel its schedule commits to). The rules themselves are the kernel's
//! ([`sit_core::notice`]).

use crate::archive::{notices as stored, Archive, ArchiveError};
use ed25519_dalek::SigningKey;
use sit_core::keyset::KeySet;
use sit_core::notice::{self, Change, Class, Governance, Notice, State};
use sit_core::time::{format_utc_ms, Date};
use sit_core::versions::Registry;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// Why a notice was not published, or what is in force cannot be said.
#[derive(Debug, thiserror::Error)]
pub enum NoticeError {
    /// The draft breaks a rule (exit 2: nothing was written).
    #[error("notice refused: {0}")]
    Refused(#[from] notice::Refusal),
    /// The draft does not parse.
    #[error("{0}")]
    Draft(String),
    /// The archive could not be read or written.
    #[error("{0}")]
    Archive(#[from] ArchiveError),
    /// The published notices do not fold (an archive altered by hand).
    #[error("the published notices do not agree: {0}")]
    Inconsistent(String),
    /// The key given may not sign now (exit 2: nothing was written).
    #[error("{0}")]
    WrongKey(String),
}

/// What the checks know besides the notices: this build's versions and what is configured.
pub struct Context {
    pub methodologies: BTreeMap<String, String>,
    pub suites: BTreeMap<String, String>,
    pub endpoints: BTreeSet<String>,
    pub contracts: BTreeSet<String>,
    pub tiers: BTreeSet<String>,
}

impl Context {
    /// The context of this build's `registry` with the configured endpoints and contracts.
    pub fn new(
        registry: &Registry,
        endpoints: impl IntoIterator<Item = String>,
        contracts: impl IntoIterator<Item = String>,
    ) -> Context {
        Context {
            methodologies: registry
                .methodologies()
                .map(|(h, m)| (h.to_string(), m.version.clone()))
                .collect(),
            suites: registry
                .suites()
                .iter()
                .map(|s| (s.hash.clone(), s.version.clone()))
                .collect(),
            endpoints: endpoints.into_iter().collect(),
            contracts: contracts.into_iter().collect(),
            tiers: registry.current_suite().tier_ids().into_iter().collect(),
        }
    }

    fn known(&self) -> notice::Known<'_> {
        notice::Known {
            methodologies: &self.methodologies,
            suites: &self.suites,
            endpoints: &self.endpoints,
            contracts: &self.contracts,
            tiers: &self.tiers,
        }
    }
}

/// Every published notice, in order.
pub fn published(archive: &Archive) -> Result<Vec<Notice>, NoticeError> {
    Ok(stored::all(archive.root())?
        .into_iter()
        .map(|p| p.notice)
        .collect())
}

/// What the published notices put in force at `at_ms`, or `None` for a data folder without
/// notices (made before notices existed, and not yet given its genesis).
pub fn in_force(archive: &Archive, at_ms: i64) -> Result<Option<State>, NoticeError> {
    let all = published(archive)?;
    if all.is_empty() {
        return Ok(None);
    }
    State::at(&all, at_ms)
        .map(Some)
        .map_err(NoticeError::Inconsistent)
}

/// `draft` as it would be published now: numbered next, stamped with `now_ms`, naming `key`.
pub fn complete(
    draft: &Notice,
    archive: &Archive,
    now_ms: i64,
    key: &SigningKey,
) -> Result<Notice, NoticeError> {
    let n = published(archive)?.len();
    let mut d = draft.clone();
    d.kind = notice::KIND.into();
    d.id = format!("N-{n:04}");
    d.published_at = format_utc_ms(now_ms);
    d.key_id = sit_core::signing::key_id(&key.verifying_key());
    d.acceptance = None;
    if let Some(c) = &mut d.consultation {
        if c.opens.is_empty() {
            c.opens = d.published_at.clone();
        }
    }
    Ok(d)
}

/// Check `draft` (completed with [`complete`]) against the rules and every published notice.
pub fn check(draft: &Notice, archive: &Archive, ctx: &Context) -> Result<(), NoticeError> {
    let all = published(archive)?;
    notice::check(draft, &all, &Governance::default(), &ctx.known())?;
    Ok(())
}

/// The publisher's key set as its own notices make it: followed from the key its genesis
/// names (the publisher trusts its own archive; a verifier pins the root instead). A folder
/// without notices: `None`.
pub fn key_set(archive: &Archive) -> Result<Option<KeySet>, NoticeError> {
    key_set_of(&stored::all(archive.root())?)
}

/// [`key_set`] of notices already read.
pub fn key_set_of(all: &[stored::Published]) -> Result<Option<KeySet>, NoticeError> {
    let Some(first) = all.first() else {
        return Ok(None);
    };
    let root = first
        .notice
        .changes
        .iter()
        .find_map(|c| match c {
            Change::SigningKey { public_key, .. } => {
                sit_core::signing::parse_public(public_key).ok()
            }
            _ => None,
        })
        .ok_or_else(|| NoticeError::Inconsistent("the genesis names no signing key".into()))?;
    let docs: Vec<Vec<u8>> = all.iter().map(|p| p.bytes.clone()).collect();
    KeySet::follow(&root, &docs)
        .map(Some)
        .map_err(|e| NoticeError::Inconsistent(e.to_string()))
}

/// Whether `key` may sign what is published at `at_ms` (always, in a folder without
/// notices): named in the refusal otherwise, with the key that may.
pub fn may_sign(archive: &Archive, key: &SigningKey, at_ms: i64) -> Result<(), NoticeError> {
    may_sign_in(key_set(archive)?.as_ref(), key, at_ms)
}

/// [`may_sign`] against a key set already followed (`None`: a folder without notices).
pub fn may_sign_in(set: Option<&KeySet>, key: &SigningKey, at_ms: i64) -> Result<(), NoticeError> {
    let Some(set) = set else {
        return Ok(());
    };
    let id = sit_core::signing::key_id(&key.verifying_key());
    set.valid(&id, at_ms).map(|_| ()).map_err(|e| {
        let valid: Vec<&str> = set
            .keys
            .iter()
            .filter(|k| k.valid_at(at_ms))
            .map(|k| k.key_id.as_str())
            .collect();
        NoticeError::WrongKey(format!(
            "{e}; the key set (notices {}) lets {} sign now",
            set.chain.join(", "),
            if valid.is_empty() {
                "no key".to_string()
            } else {
                valid.join(" or ")
            }
        ))
    })
}

/// Publish `draft`: completed at `now_ms`, checked, signed with `key` (for a key rotation,
/// the outgoing key, with the incoming key's acceptance by `accept`) and written once, under
/// the archive's lock (one publisher at a time). Returns the notice and its file.
pub fn publish(
    draft: &Notice,
    archive: &Archive,
    ctx: &Context,
    key: &SigningKey,
    accept: Option<&SigningKey>,
    now_ms: i64,
) -> Result<(Notice, PathBuf), NoticeError> {
    let _lock = archive.lock()?;
    let mut n = complete(draft, archive, now_ms, key)?;
    if n.class != Class::Genesis {
        may_sign(archive, key, now_ms)?;
    }
    let incoming = n.changes.iter().find_map(|c| match c {
        Change::KeyRotation { to, .. } => Some(to.clone()),
        _ => None,
    });
    match (incoming, accept) {
        (Some(to), Some(a)) => {
            let given = sit_core::signing::key_id(&a.verifying_key());
            if given != to {
                return Err(NoticeError::Draft(format!(
                    "--accept-key is key {given}, but the rotation is to {to}"
                )));
            }
            use ed25519_dalek::Signer;
            let sig = a.sign(&notice::acceptance_message(&n));
            n.acceptance = Some(sit_core::signing::hex(&sig.to_bytes()));
        }
        (Some(to), None) => {
            return Err(NoticeError::Draft(format!(
                "a key rotation is accepted by the incoming key: give --accept-key with the private key of {to}"
            )))
        }
        (None, Some(_)) => {
            return Err(NoticeError::Draft(
                "--accept-key is for a key rotation, and this notice rotates no key".into(),
            ))
        }
        (None, None) => {}
    }
    check(&n, archive, ctx)?;
    let v = serde_json::to_value(&n).expect("a notice serialises");
    let bytes = sit_core::signing::sign_value(v, key);
    let path = stored::put(archive.root(), &n.id, &bytes)?;
    Ok((n, path))
}

/// The genesis of a data folder: what is in force from the day it starts (`from`): this
/// build's current methodology and suite, the configured panel (endpoint -> provider), the
/// listed contracts and the signing key. Published by `sit run` when the folder has no notice.
pub fn genesis(
    registry: &Registry,
    panel: &BTreeMap<String, String>,
    contracts: &BTreeSet<String>,
    key: &SigningKey,
    demo: bool,
    from: Date,
) -> Notice {
    let m = registry.current_methodology();
    let s = registry.current_suite();
    let mut changes = vec![
        Change::Methodology {
            version: m.version.clone(),
            hash: m.hash(),
        },
        Change::Suite {
            version: s.version.clone(),
            hash: s.hash.clone(),
        },
        Change::SigningKey {
            id: sit_core::signing::key_id(&key.verifying_key()),
            public_key: sit_core::signing::hex(key.verifying_key().as_bytes()),
            demo,
        },
    ];
    changes.extend(panel.iter().map(|(e, p)| Change::PanelAdd {
        endpoint: e.clone(),
        provider: p.clone(),
    }));
    changes.extend(
        contracts
            .iter()
            .map(|id| Change::ContractAdd { id: id.clone() }),
    );
    Notice {
        kind: notice::KIND.into(),
        id: String::new(),
        class: Class::Genesis,
        changes,
        reason: "what is in force when this data folder begins: the methodology, probe suite, panel, contracts and signing key it starts with".into(),
        published_at: String::new(),
        effective_at: format_utc_ms(from.start_ms()),
        consultation: None,
        key_id: String::new(),
        acceptance: None,
    }
}
