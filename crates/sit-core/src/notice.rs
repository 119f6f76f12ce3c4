//! Notices: announced, effective-dated changes to what the index is made of.
//!
//! An exchange lists a futures contract on a benchmark only when users are told before the
//! benchmark changes (IOSCO Principles 11-13; EU BMR art. 5). Here nothing that makes a day's
//! value changes without a signed notice that says, machine-readably, what changes, its class,
//! why, when it was published (the oracle's clock) and when it takes effect:
//!
//! - the methodology (by hash) and the probe suite (by hash) a day is determined with;
//! - the panel: which endpoints are probed and counted, and the provider (price source) each
//!   is grouped under;
//! - the listed contracts (added, changed, delisted);
//! - the publisher's signing keys (rotation, revocation);
//! - the cessation of a tier.
//!
//! A change takes effect at the start of a UTC day: day D is determined with what is in force
//! at D's start ([`State::at`]), so a day is made under one set of rules, and the day before a
//! change under the old ones. The minimum notice depends on the class ([`Governance`]): patch
//! 5 business days (Mon-Fri, UTC), minor 30 days, major 90 days with a public consultation
//! that closes at least 30 days before the change; an emergency change may take effect at the
//! start of the day after next (the next day's probe schedule is already committed), must
//! state its reason and is flagged wherever it applies. A data folder
//! begins with a genesis notice: what was in force when it started. Notices are append-only:
//! a later notice may supersede an earlier one's change before it takes effect (a notice that
//! changes the same thing at a later time), never rewrite it.
//!
//! This module is pure: it checks a draft against the notices already published
//! ([`check`]) and folds the published ones into what is in force at any time ([`State`]).

use crate::time::{format_utc_ms, parse_utc_ms, Date, DAY_MS};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The document kind of a notice.
pub const KIND: &str = "sit-notice/1";

/// How large a change is, which sets how long before it takes effect it must be announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// What was in force when the data folder began (no notice period: nothing changes).
    Genesis,
    /// Corrections that change no value's meaning (a regrouping, a typo in a contract).
    Patch,
    /// A change users must prepare for (an endpoint added or removed, a new suite).
    Minor,
    /// A change of the rules (a new methodology, a tier ceasing): consulted on first.
    Major,
    /// A change that cannot wait (a leaked key, an endpoint gone rogue): its reason stated.
    Emergency,
}

impl Class {
    /// The class's name as written in notices.
    pub fn name(self) -> &'static str {
        match self {
            Class::Genesis => "genesis",
            Class::Patch => "patch",
            Class::Minor => "minor",
            Class::Major => "major",
            Class::Emergency => "emergency",
        }
    }
}

/// One thing a notice changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "what", rename_all = "snake_case", deny_unknown_fields)]
pub enum Change {
    /// Days from the effective time on are determined under this methodology.
    Methodology {
        /// Its version string (for people).
        version: String,
        /// Its hash (what decides).
        hash: String,
    },
    /// Days from the effective time on are probed with this suite.
    Suite {
        /// Its version string.
        version: String,
        /// Its hash.
        hash: String,
    },
    /// An endpoint joins the panel (probed and counted), under a provider (price source).
    PanelAdd {
        /// The endpoint's id (`providers.toml`).
        endpoint: String,
        /// The provider it is grouped under.
        provider: String,
    },
    /// An endpoint leaves the panel.
    PanelRemove {
        /// The endpoint's id.
        endpoint: String,
    },
    /// An endpoint of the panel is grouped under another provider.
    PanelRegroup {
        /// The endpoint's id.
        endpoint: String,
        /// The provider it is grouped under from now on.
        provider: String,
    },
    /// A contract is listed.
    ContractAdd {
        /// The contract's id (`contracts.toml`).
        id: String,
    },
    /// A listed contract's terms change.
    ContractChange {
        /// The contract's id.
        id: String,
    },
    /// A contract is delisted.
    ContractDelist {
        /// The contract's id.
        id: String,
    },
    /// The publisher's first signing key (a genesis only; later keys come by rotation).
    SigningKey {
        /// The key's id.
        id: String,
        /// The public key, 64 hex digits.
        public_key: String,
        /// A key made by `sit demo`: not for settlement (left out of the JSON when false).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        demo: bool,
    },
    /// The publisher signs with a new key from the effective time on; the old key's
    /// signatures made before it stay valid.
    /// The notice is signed by the outgoing key and carries the incoming key's acceptance
    /// ([`Notice::acceptance`]), so neither key alone can rotate.
    KeyRotation {
        /// The outgoing key's id.
        from: String,
        /// The incoming key's id.
        to: String,
        /// The incoming public key, 64 hex digits.
        public_key: String,
        /// Days after the effective time during which documents the outgoing key signs are
        /// still valid (late restatements, a second publisher still switching).
        overlap_days: u32,
    },
    /// A key's signatures on documents published at or after `void_after` are void (it may be
    /// in the past: a leaked key).
    KeyRevocation {
        /// The key's id.
        key: String,
        /// From when its signatures are void (UTC, RFC 3339 with milliseconds).
        void_after: String,
    },
    /// A tier is no longer determined from the effective time on.
    Cessation {
        /// The tier.
        tier: String,
    },
}

impl Change {
    /// What the change is about, for "two notices change the same thing" checks.
    fn subject(&self) -> String {
        match self {
            Change::Methodology { .. } => "methodology".into(),
            Change::Suite { .. } => "suite".into(),
            Change::PanelAdd { endpoint, .. }
            | Change::PanelRemove { endpoint }
            | Change::PanelRegroup { endpoint, .. } => format!("panel endpoint {endpoint}"),
            Change::ContractAdd { id }
            | Change::ContractChange { id }
            | Change::ContractDelist { id } => format!("contract {id}"),
            Change::KeyRotation { .. } | Change::SigningKey { .. } => "signing key".into(),
            Change::KeyRevocation { key, .. } => format!("key {key}"),
            Change::Cessation { tier } => format!("tier {tier}"),
        }
    }

    /// One line for people.
    pub fn describe(&self) -> String {
        match self {
            Change::Methodology { version, hash } => {
                format!("methodology {version} ({})", short(hash))
            }
            Change::Suite { version, hash } => format!("probe suite {version} ({})", short(hash)),
            Change::PanelAdd { endpoint, provider } => {
                format!("endpoint {endpoint} joins the panel (provider {provider})")
            }
            Change::PanelRemove { endpoint } => format!("endpoint {endpoint} leaves the panel"),
            Change::PanelRegroup { endpoint, provider } => {
                format!("endpoint {endpoint} is grouped under provider {provider}")
            }
            Change::ContractAdd { id } => format!("contract {id} is listed"),
            Change::ContractChange { id } => format!("contract {id} changes"),
            Change::ContractDelist { id } => format!("contract {id} is delisted"),
            Change::SigningKey { id, .. } => format!("signing key {id}"),
            Change::KeyRotation { from, to, .. } => format!("signing key {from} -> {to}"),
            Change::KeyRevocation { key, void_after } => {
                format!("key {key} is revoked: its signatures from {void_after} on are void")
            }
            Change::Cessation { tier } => format!("tier {tier} ceases"),
        }
    }
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

/// A consultation: when comments are taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consultation {
    /// When it opens (UTC, RFC 3339 with milliseconds).
    pub opens: String,
    /// When it closes.
    pub closes: String,
}

/// A notice, as signed (the `signature` member is added by [`crate::signing::sign_value`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notice {
    /// [`KIND`].
    pub kind: String,
    /// `N-` and its sequence number, 4 digits (`N-0000` is the genesis).
    pub id: String,
    /// Its class.
    pub class: Class,
    /// What changes, in the order applied.
    pub changes: Vec<Change>,
    /// Why.
    pub reason: String,
    /// When it was published: the oracle's clock (UTC, RFC 3339 with milliseconds).
    pub published_at: String,
    /// When it takes effect: the start of a UTC day.
    pub effective_at: String,
    /// A major change's consultation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consultation: Option<Consultation>,
    /// The key that signs it.
    pub key_id: String,
    /// For a key rotation: the incoming key's Ed25519 signature (128 hex digits) over the
    /// notice's canonical bytes without `signature` and `acceptance` ([`acceptance_message`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acceptance: Option<String>,
}

/// Whether `acceptance` (hex) is `incoming`'s signature of [`acceptance_message`] of `n`.
pub fn accepted(n: &Notice, acceptance: &str, incoming: &ed25519_dalek::VerifyingKey) -> bool {
    crate::signing::unhex(acceptance)
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
        .map(|b| {
            incoming
                .verify_strict(
                    &acceptance_message(n),
                    &ed25519_dalek::Signature::from_bytes(&b),
                )
                .is_ok()
        })
        .unwrap_or(false)
}

/// What the incoming key of a rotation signs to accept it: the notice's canonical bytes
/// without `acceptance` (and unsigned).
pub fn acceptance_message(n: &Notice) -> Vec<u8> {
    let mut n = n.clone();
    n.acceptance = None;
    crate::signing::canonical(&serde_json::to_value(&n).expect("a notice serialises"))
}

impl Notice {
    /// Its effective time, UTC ms.
    pub fn effective_ms(&self) -> Result<i64, String> {
        parse_utc_ms(&self.effective_at).map_err(|e| format!("effective_at: {e}"))
    }

    /// Its published time, UTC ms.
    pub fn published_ms(&self) -> Result<i64, String> {
        parse_utc_ms(&self.published_at).map_err(|e| format!("published_at: {e}"))
    }

    /// The day it takes effect.
    pub fn effective_day(&self) -> Result<Date, String> {
        Ok(Date::of_ms(self.effective_ms()?))
    }
}

/// The minimum notice by class (the governance parameters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Governance {
    /// Patch: business days (Mon-Fri, UTC) between publication and effect.
    pub patch_business_days: u32,
    /// Minor: calendar days.
    pub minor_days: u32,
    /// Major: calendar days.
    pub major_days: u32,
    /// Major: the consultation lasts at least this many days ...
    pub consultation_days: u32,
    /// ... and closes at least this many days before the change takes effect.
    pub consultation_before_days: u32,
}

impl Default for Governance {
    fn default() -> Governance {
        Governance {
            patch_business_days: 5,
            minor_days: 30,
            major_days: 90,
            consultation_days: 30,
            consultation_before_days: 30,
        }
    }
}

/// Monday = 0 ... Sunday = 6.
fn weekday(d: Date) -> i32 {
    // 1970-01-01 was a Thursday
    (d.0 + 3).rem_euclid(7)
}

impl Governance {
    /// The earliest effective time a notice of `class` published at `published_ms` may have:
    /// the start of the first day at least the class's notice after publication (an
    /// emergency: the next day's start; the genesis: its own day's start).
    pub fn earliest_effective_ms(&self, class: Class, published_ms: i64) -> i64 {
        let day = Date::of_ms(published_ms);
        // the first day start at or after `t`
        let at_or_after = |t: i64| {
            let d = Date::of_ms(t);
            if t > d.start_ms() {
                d.succ().start_ms()
            } else {
                d.start_ms()
            }
        };
        match class {
            Class::Genesis => day.start_ms(),
            // the next day's schedule is committed a day ahead: the first day whose schedule
            // is still to be committed is the day after next
            Class::Emergency => day.succ().succ().start_ms(),
            Class::Minor => at_or_after(published_ms + self.minor_days as i64 * DAY_MS),
            Class::Major => at_or_after(published_ms + self.major_days as i64 * DAY_MS),
            Class::Patch => {
                // count business days after the day of publication
                let mut d = day;
                let mut left = self.patch_business_days;
                while left > 0 {
                    d = d.succ();
                    if weekday(d) < 5 {
                        left -= 1;
                    }
                }
                d.succ().start_ms()
            }
        }
    }

    /// The smallest class a notice with these changes may have.
    pub fn least_class(changes: &[Change]) -> Class {
        changes
            .iter()
            .map(|c| match c {
                Change::Methodology { .. } | Change::Cessation { .. } => Class::Major,
                Change::Suite { .. }
                | Change::PanelAdd { .. }
                | Change::PanelRemove { .. }
                | Change::ContractAdd { .. }
                | Change::ContractChange { .. }
                | Change::ContractDelist { .. }
                | Change::KeyRotation { .. } => Class::Minor,
                Change::PanelRegroup { .. } | Change::KeyRevocation { .. } => Class::Patch,
                Change::SigningKey { .. } => Class::Genesis,
            })
            .max()
            .unwrap_or(Class::Patch)
    }
}

/// What is in force at a time: the fold of every notice effective by then.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct State {
    /// The methodology's hash (and version).
    pub methodology: Option<(String, String)>,
    /// The suite's hash (and version).
    pub suite: Option<(String, String)>,
    /// The panel: endpoint -> provider.
    pub panel: BTreeMap<String, String>,
    /// Listed contracts.
    pub contracts: std::collections::BTreeSet<String>,
    /// Publisher keys in force, in order of rotation (the last signs).
    pub keys: Vec<String>,
    /// Revoked keys and the time from which their signatures are void.
    pub revoked: BTreeMap<String, i64>,
    /// Tiers no longer determined.
    pub ceased: std::collections::BTreeSet<String>,
    /// Emergency notices in force (their ids).
    pub emergencies: Vec<String>,
    /// Every notice folded, by id.
    pub notices: Vec<String>,
}

impl State {
    /// What `notices` (any order) put in force at `at_ms`: those effective at or before it,
    /// applied in effective order (then id).
    pub fn at(notices: &[Notice], at_ms: i64) -> Result<State, String> {
        let mut sorted: Vec<(i64, &Notice)> = Vec::new();
        for n in notices {
            let e = n.effective_ms().map_err(|e| format!("{}: {e}", n.id))?;
            if e <= at_ms {
                sorted.push((e, n));
            }
        }
        sorted.sort_by(|a, b| (a.0, &a.1.id).cmp(&(b.0, &b.1.id)));
        let mut s = State::default();
        for (e, n) in sorted {
            s.apply(n, e)?;
        }
        Ok(s)
    }

    fn apply(&mut self, n: &Notice, effective_ms: i64) -> Result<(), String> {
        for c in &n.changes {
            let bad = |why: String| format!("{}: {}: {why}", n.id, c.describe());
            match c {
                Change::Methodology { version, hash } => {
                    self.methodology = Some((hash.clone(), version.clone()))
                }
                Change::Suite { version, hash } => {
                    self.suite = Some((hash.clone(), version.clone()))
                }
                Change::PanelAdd { endpoint, provider } => {
                    if self.panel.contains_key(endpoint) {
                        return Err(bad("the endpoint is in the panel already".into()));
                    }
                    self.panel.insert(endpoint.clone(), provider.clone());
                }
                Change::PanelRemove { endpoint } => {
                    if self.panel.remove(endpoint).is_none() {
                        return Err(bad("the endpoint is not in the panel".into()));
                    }
                }
                Change::PanelRegroup { endpoint, provider } => match self.panel.get_mut(endpoint) {
                    Some(p) => *p = provider.clone(),
                    None => return Err(bad("the endpoint is not in the panel".into())),
                },
                Change::ContractAdd { id } => {
                    if !self.contracts.insert(id.clone()) {
                        return Err(bad("the contract is listed already".into()));
                    }
                }
                Change::ContractChange { id } => {
                    if !self.contracts.contains(id) {
                        return Err(bad("the contract is not listed".into()));
                    }
                }
                Change::ContractDelist { id } => {
                    if !self.contracts.remove(id) {
                        return Err(bad("the contract is not listed".into()));
                    }
                }
                Change::KeyRotation { from, to, .. } => {
                    if self.keys.last() != Some(from) {
                        return Err(bad(format!(
                            "the signing key in force is {}",
                            self.keys.last().map(String::as_str).unwrap_or("none")
                        )));
                    }
                    self.keys.push(to.clone());
                }
                Change::KeyRevocation { key, void_after } => {
                    if !self.keys.contains(key) {
                        return Err(bad("the key is not one of the publisher's".into()));
                    }
                    let t =
                        parse_utc_ms(void_after).map_err(|e| bad(format!("void_after: {e}")))?;
                    if t > effective_ms {
                        return Err(bad("void_after is at or before the notice's effective time (a later end is a rotation)".into()));
                    }
                    self.revoked.insert(key.clone(), t);
                }
                Change::SigningKey { id, .. } => {
                    if !self.keys.is_empty() {
                        return Err(bad(
                            "the first signing key is set once; later keys come by rotation".into(),
                        ));
                    }
                    self.keys.push(id.clone());
                }
                Change::Cessation { tier } => {
                    self.ceased.insert(tier.clone());
                }
            }
        }
        if n.class == Class::Emergency {
            self.emergencies.push(n.id.clone());
        }
        self.notices.push(n.id.clone());
        Ok(())
    }

    /// The key that signs at this state (the last rotated to), if any.
    pub fn signing_key(&self) -> Option<&str> {
        self.keys.last().map(String::as_str)
    }
}

/// Why a draft notice is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{rule}{}", earliest.map(|e| format!(" (earliest allowed effective time: {})", format_utc_ms(e))).unwrap_or_default())]
pub struct Refusal {
    /// The rule broken, and how.
    pub rule: String,
    /// The earliest effective time the rules allow, where the time is what is wrong.
    pub earliest: Option<i64>,
}

fn refuse(rule: impl Into<String>) -> Refusal {
    Refusal {
        rule: rule.into(),
        earliest: None,
    }
}

/// What the checks know beyond the notices: the versions this build has and the endpoints,
/// contracts and tiers that exist.
pub struct Known<'a> {
    /// Methodology hash -> version.
    pub methodologies: &'a BTreeMap<String, String>,
    /// Suite hash -> version.
    pub suites: &'a BTreeMap<String, String>,
    /// Endpoint ids configured (`providers.toml`).
    pub endpoints: &'a std::collections::BTreeSet<String>,
    /// Contract ids configured (`contracts.toml`).
    pub contracts: &'a std::collections::BTreeSet<String>,
    /// The suite's tiers.
    pub tiers: &'a std::collections::BTreeSet<String>,
}

/// Check `draft` against the notices already published and the rules: its form, its class
/// against its changes, its effective time against its class's notice, a major change's
/// consultation, what it names, and that it follows from what will be in force when it takes
/// effect (and does not break a later notice). `draft.published_at` is the clock's time.
pub fn check(
    draft: &Notice,
    published: &[Notice],
    g: &Governance,
    known: &Known<'_>,
) -> Result<(), Refusal> {
    if draft.kind != KIND {
        return Err(refuse(format!("kind must be `{KIND}`")));
    }
    let want_id = format!("N-{:04}", published.len());
    if draft.id != want_id {
        return Err(refuse(format!(
            "the next notice is {want_id} (notices are numbered in publication order), not {}",
            draft.id
        )));
    }
    if draft.changes.is_empty() {
        return Err(refuse("a notice changes at least one thing"));
    }
    if draft.reason.trim().len() < 10 {
        return Err(refuse(
            "a notice states its reason (at least 10 characters): users are owed the why",
        ));
    }
    let published_ms = draft.published_ms().map_err(refuse)?;
    let effective_ms = draft.effective_ms().map_err(refuse)?;
    if effective_ms.rem_euclid(DAY_MS) != 0 {
        return Err(Refusal {
            rule: "a change takes effect at the start of a UTC day (00:00:00.000Z)".into(),
            earliest: Some(Date::of_ms(effective_ms).succ().start_ms()),
        });
    }
    if draft.class == Class::Genesis {
        if !published.is_empty() {
            return Err(refuse(
                "only the first notice of a data folder is its genesis",
            ));
        }
    } else {
        if published.is_empty() {
            return Err(refuse("the first notice of a data folder is its genesis"));
        }
        let least = Governance::least_class(&draft.changes);
        if draft.class != Class::Emergency && draft.class < least {
            return Err(refuse(format!(
                "a notice changing {} is at least {} (this one says {})",
                draft
                    .changes
                    .iter()
                    .find(|c| Governance::least_class(std::slice::from_ref(c)) == least)
                    .map(Change::describe)
                    .unwrap_or_default(),
                least.name(),
                draft.class.name()
            )));
        }
        let earliest = g.earliest_effective_ms(draft.class, published_ms);
        if effective_ms < earliest {
            let why = if effective_ms <= published_ms {
                "the effective time is in the past: nothing already in force changes".to_string()
            } else {
                format!(
                    "a {} change needs its notice period ({})",
                    draft.class.name(),
                    match draft.class {
                        Class::Patch => format!("{} business days", g.patch_business_days),
                        Class::Minor => format!("{} days", g.minor_days),
                        Class::Major => format!("{} days", g.major_days),
                        _ => "to the day after next".into(),
                    }
                )
            };
            return Err(Refusal {
                rule: why,
                earliest: Some(earliest),
            });
        }
    }
    match (&draft.consultation, draft.class) {
        (Some(c), Class::Major) => {
            let opens =
                parse_utc_ms(&c.opens).map_err(|e| refuse(format!("consultation opens: {e}")))?;
            let closes =
                parse_utc_ms(&c.closes).map_err(|e| refuse(format!("consultation closes: {e}")))?;
            if opens < published_ms {
                return Err(refuse(
                    "the consultation opens when the notice is published, or later",
                ));
            }
            if closes - opens < g.consultation_days as i64 * DAY_MS {
                return Err(refuse(format!(
                    "a consultation lasts at least {} days",
                    g.consultation_days
                )));
            }
            let latest = effective_ms - g.consultation_before_days as i64 * DAY_MS;
            if closes > latest {
                return Err(refuse(format!(
                    "the consultation closes at least {} days before the change takes effect (by {})",
                    g.consultation_before_days,
                    format_utc_ms(latest)
                )));
            }
        }
        (None, Class::Major) => {
            return Err(refuse(
                "a major change is consulted on: give its consultation window (opens, closes)",
            ))
        }
        (Some(_), _) => {
            return Err(refuse("only a major change has a consultation"));
        }
        (None, _) => {}
    }
    // what it names exists
    for c in &draft.changes {
        let unknown = |what: &str| refuse(format!("{}: unknown {what}", c.describe()));
        match c {
            Change::Methodology { version, hash } => match known.methodologies.get(hash) {
                Some(v) if v == version => {}
                Some(v) => {
                    return Err(refuse(format!(
                        "methodology {hash} is version {v}, not {version}"
                    )))
                }
                None => return Err(unknown("methodology hash: this build does not know it")),
            },
            Change::Suite { version, hash } => match known.suites.get(hash) {
                Some(v) if v == version => {}
                Some(v) => {
                    return Err(refuse(format!(
                        "suite {hash} is version {v}, not {version}"
                    )))
                }
                None => return Err(unknown("suite hash: this build does not know it")),
            },
            Change::PanelAdd { endpoint, .. } | Change::PanelRegroup { endpoint, .. } => {
                if !known.endpoints.contains(endpoint) {
                    return Err(unknown("endpoint: it is not in providers.toml"));
                }
            }
            Change::ContractAdd { id } | Change::ContractChange { id } => {
                if !known.contracts.contains(id) {
                    return Err(unknown("contract: it is not in contracts.toml"));
                }
            }
            Change::Cessation { tier } => {
                if !known.tiers.contains(tier) {
                    return Err(unknown("tier"));
                }
            }
            Change::SigningKey { .. } if draft.class != Class::Genesis => return Err(refuse(
                "the first signing key is named by the genesis only; a new key comes by a rotation",
            )),
            Change::KeyRotation { public_key, to, .. }
            | Change::SigningKey {
                public_key, id: to, ..
            } => {
                let ok = crate::signing::unhex(public_key)
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .and_then(|b| ed25519_dalek::VerifyingKey::from_bytes(&b).ok())
                    .map(|vk| crate::signing::key_id(&vk) == *to);
                if ok != Some(true) {
                    return Err(refuse(format!(
                        "{}: public_key is not the 64 hex digits of key {to}",
                        c.describe()
                    )));
                }
            }
            Change::PanelRemove { .. }
            | Change::ContractDelist { .. }
            | Change::KeyRevocation { .. } => {}
        }
        if let Change::KeyRotation {
            from, public_key, ..
        } = c
        {
            if draft.key_id != *from {
                return Err(refuse(format!(
                    "{}: a rotation is signed by the outgoing key {from}, not {}",
                    c.describe(),
                    draft.key_id
                )));
            }
            if let Some(a) = &draft.acceptance {
                let vk = crate::signing::parse_public(public_key).map_err(refuse)?;
                if !accepted(draft, a, &vk) {
                    return Err(refuse(format!(
                        "{}: the acceptance is not the incoming key's signature of this notice",
                        c.describe()
                    )));
                }
            }
        }
    }
    // it follows from what is in force when it takes effect, and every later notice still
    // follows with it
    let mut all: Vec<Notice> = published.to_vec();
    all.push(draft.clone());
    let mut times: Vec<i64> = all.iter().filter_map(|n| n.effective_ms().ok()).collect();
    times.sort_unstable();
    times.dedup();
    for t in times.into_iter().filter(|t| *t >= effective_ms) {
        State::at(&all, t).map_err(|e| {
            refuse(format!(
                "it contradicts what is in force on {}: {e}",
                Date::of_ms(t)
            ))
        })?;
    }
    // two notices changing the same thing at the same time: the later would silently win
    for n in published {
        if n.effective_ms().ok() == Some(effective_ms) {
            for c in &draft.changes {
                if n.changes.iter().any(|d| d.subject() == c.subject()) {
                    return Err(refuse(format!(
                        "{} changes {} at the same time; publish one notice per change and time",
                        n.id,
                        c.subject()
                    )));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(
        id: &str,
        class: Class,
        published: &str,
        effective: &str,
        changes: Vec<Change>,
    ) -> Notice {
        Notice {
            kind: KIND.into(),
            id: id.into(),
            class,
            changes,
            reason: "a reason long enough to read".into(),
            published_at: published.into(),
            effective_at: effective.into(),
            consultation: None,
            key_id: "ed25519:0000000000000000".into(),
            acceptance: None,
        }
    }

    fn known() -> (
        BTreeMap<String, String>,
        BTreeMap<String, String>,
        std::collections::BTreeSet<String>,
        std::collections::BTreeSet<String>,
        std::collections::BTreeSet<String>,
    ) {
        (
            [
                ("mh1".to_string(), "1.4.0".to_string()),
                ("mh2".into(), "1.5.0".into()),
            ]
            .into(),
            [("sh1".to_string(), "1.1.0".to_string())].into(),
            ["a".to_string(), "b".into(), "c".into()].into(),
            ["SIT-T1-M".to_string()].into(),
            ["t1".to_string(), "t2".into()].into(),
        )
    }

    fn genesis() -> Notice {
        notice(
            "N-0000",
            Class::Genesis,
            "2026-03-02T09:00:00.000Z",
            "2026-03-02T00:00:00.000Z",
            vec![
                Change::Methodology {
                    version: "1.4.0".into(),
                    hash: "mh1".into(),
                },
                Change::PanelAdd {
                    endpoint: "a".into(),
                    provider: "pa".into(),
                },
                Change::PanelAdd {
                    endpoint: "b".into(),
                    provider: "pb".into(),
                },
            ],
        )
    }

    #[test]
    fn notice_periods_by_class() {
        let g = Governance::default();
        // Monday 2026-03-02 09:00: five business days later is Monday 03-09, in force from
        // Tuesday 03-10's start
        let p = parse_utc_ms("2026-03-02T09:00:00.000Z").unwrap();
        assert_eq!(weekday(Date::of_ms(p)), 0);
        assert_eq!(
            format_utc_ms(g.earliest_effective_ms(Class::Patch, p)),
            "2026-03-10T00:00:00.000Z"
        );
        // Friday: the weekend does not count
        let f = parse_utc_ms("2026-03-06T23:59:00.000Z").unwrap();
        assert_eq!(
            format_utc_ms(g.earliest_effective_ms(Class::Patch, f)),
            "2026-03-14T00:00:00.000Z"
        );
        assert_eq!(
            format_utc_ms(g.earliest_effective_ms(Class::Minor, p)),
            "2026-04-02T00:00:00.000Z"
        );
        assert_eq!(
            format_utc_ms(g.earliest_effective_ms(Class::Major, p)),
            "2026-06-01T00:00:00.000Z"
        );
        assert_eq!(
            format_utc_ms(g.earliest_effective_ms(Class::Emergency, p)),
            "2026-03-04T00:00:00.000Z"
        );
    }

    #[test]
    fn drafts_are_checked_against_the_rules_and_what_is_in_force() {
        let g = Governance::default();
        let (m, s, e, c, t) = known();
        let k = Known {
            methodologies: &m,
            suites: &s,
            endpoints: &e,
            contracts: &c,
            tiers: &t,
        };
        let gen = genesis();
        check(&gen, &[], &g, &k).unwrap();
        let done = vec![gen];
        let add_c = |effective: &str| {
            notice(
                "N-0001",
                Class::Minor,
                "2026-03-02T10:00:00.000Z",
                effective,
                vec![Change::PanelAdd {
                    endpoint: "c".into(),
                    provider: "pc".into(),
                }],
            )
        };
        check(&add_c("2026-04-02T00:00:00.000Z"), &done, &g, &k).unwrap();
        let early = check(&add_c("2026-03-20T00:00:00.000Z"), &done, &g, &k).unwrap_err();
        assert!(early.rule.contains("notice period"), "{early}");
        assert_eq!(
            early.earliest.map(format_utc_ms).as_deref(),
            Some("2026-04-02T00:00:00.000Z")
        );
        let past = check(&add_c("2026-03-01T00:00:00.000Z"), &done, &g, &k).unwrap_err();
        assert!(past.rule.contains("in the past"), "{past}");
        let midday = check(&add_c("2026-04-02T12:00:00.000Z"), &done, &g, &k).unwrap_err();
        assert!(midday.rule.contains("start of a UTC day"), "{midday}");
        // a patch cannot add an endpoint
        let mut n = add_c("2026-04-02T00:00:00.000Z");
        n.class = Class::Patch;
        assert!(check(&n, &done, &g, &k)
            .unwrap_err()
            .rule
            .contains("at least minor"));
        // unknown names
        let mut n = add_c("2026-04-02T00:00:00.000Z");
        n.changes = vec![Change::PanelAdd {
            endpoint: "zz".into(),
            provider: "p".into(),
        }];
        assert!(check(&n, &done, &g, &k)
            .unwrap_err()
            .rule
            .contains("not in providers.toml"));
        // contradictions: adding an endpoint that is in already, removing one that is not
        n.changes = vec![Change::PanelAdd {
            endpoint: "a".into(),
            provider: "p".into(),
        }];
        assert!(check(&n, &done, &g, &k)
            .unwrap_err()
            .rule
            .contains("in the panel already"));
        n.changes = vec![Change::PanelRemove {
            endpoint: "c".into(),
        }];
        assert!(check(&n, &done, &g, &k)
            .unwrap_err()
            .rule
            .contains("not in the panel"));
        // a major change needs its consultation, closing 30 days before
        let mut mj = notice(
            "N-0001",
            Class::Major,
            "2026-03-02T10:00:00.000Z",
            "2026-06-01T00:00:00.000Z",
            vec![Change::Methodology {
                version: "1.5.0".into(),
                hash: "mh2".into(),
            }],
        );
        assert!(check(&mj, &done, &g, &k)
            .unwrap_err()
            .rule
            .contains("consulted"));
        mj.consultation = Some(Consultation {
            opens: "2026-03-02T10:00:00.000Z".into(),
            closes: "2026-05-15T00:00:00.000Z".into(),
        });
        assert!(check(&mj, &done, &g, &k)
            .unwrap_err()
            .rule
            .contains("closes at least 30 days"));
        mj.consultation = Some(Consultation {
            opens: "2026-03-02T10:00:00.000Z".into(),
            closes: "2026-04-15T00:00:00.000Z".into(),
        });
        check(&mj, &done, &g, &k).unwrap();
        // an emergency may take effect the day after next
        let em = notice(
            "N-0001",
            Class::Emergency,
            "2026-03-02T10:00:00.000Z",
            "2026-03-04T00:00:00.000Z",
            vec![Change::PanelRemove {
                endpoint: "b".into(),
            }],
        );
        check(&em, &done, &g, &k).unwrap();
        // the numbering
        let mut wrong = em.clone();
        wrong.id = "N-0007".into();
        assert!(check(&wrong, &done, &g, &k)
            .unwrap_err()
            .rule
            .contains("N-0001"));
    }

    #[test]
    fn what_is_in_force_changes_at_each_effective_day_start() {
        let gen = genesis();
        let add = notice(
            "N-0001",
            Class::Minor,
            "2026-03-02T10:00:00.000Z",
            "2026-04-02T00:00:00.000Z",
            vec![Change::PanelAdd {
                endpoint: "c".into(),
                provider: "pc".into(),
            }],
        );
        let all = vec![gen, add];
        let before = State::at(&all, parse_utc_ms("2026-04-01T23:59:59.999Z").unwrap()).unwrap();
        let after = State::at(&all, parse_utc_ms("2026-04-02T00:00:00.000Z").unwrap()).unwrap();
        assert_eq!(before.panel.len(), 2);
        assert_eq!(after.panel.len(), 3);
        assert_eq!(after.methodology.as_ref().unwrap().0, "mh1");
        assert_eq!(after.notices, ["N-0000", "N-0001"]);
    }
}
