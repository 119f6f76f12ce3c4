//! The publisher: turns a stored day into a signed, write-once determination in the archive,
//! and everything that follows a day's end.
//!
//! - this module: [`publish`] one (tier, date) under the version the day was made with, the
//!   chain link to the record before it, and [`recompute_all`] (what `sit index` shows);
//! - [`policy`]: when a day may be published or restated (pure);
//! - [`day`]: a finished day's publication for `sit run` and `sit collect` (each tier, the
//!   reveal, the audit bundle, settlement) and the recomputation before its cutoff;
//! - [`settle`]: which settlement records are due, and their values from the archive log;
//! - [`notices`]: publishing a notice, a data folder's genesis, and what is in force on a day.
//!
//! The records' bytes and signatures are [`sit_core::record`]'s; the files are
//! [`crate::archive`]'s; serving them is the server's, a layer above.

pub mod day;
pub mod notices;
pub mod policy;
pub mod settle;

use crate::archive::{in_force, Archive, ArchiveError, LogEntry};
use crate::store::{Store, StoreError};
use ed25519_dalek::SigningKey;
use policy::{Decision, Refusal};
use sit_core::fixed::Fixed;
use sit_core::index::chain::{link_after, ChainLink, ChainParams};
use sit_core::index::Status;
use sit_core::probes::Suite;
use sit_core::record::{self, Publication, Restates, SCHEMA};
use sit_core::time::{format_utc_ms, Date};
use sit_core::versions::Registry;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("{0}")]
    Refused(#[from] Refusal),
    #[error("unknown tier `{tier}`; tiers are {known}")]
    UnknownTier { tier: String, known: String },
    #[error("no observations stored for {date}; nothing to determine\n  hint: check --date and --data; to publish an outage day as CONTINGENCY anyway, pass --allow-empty")]
    NoObservations { date: Date },
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Archive(#[from] ArchiveError),
    #[error("{0}")]
    Version(#[from] sit_core::versions::VersionError),
    #[error("the record in force {file} does not parse: {why}")]
    Record { file: String, why: String },
    #[error("what the notices put in force cannot be read: {0}")]
    Notices(String),
}

/// What one publish wrote.
#[derive(Debug, Clone)]
pub struct Published {
    pub entry: LogEntry,
    pub path: PathBuf,
    pub restated: bool,
    pub contingency_reason: Option<String>,
}

impl Published {
    /// One line for people: tier, date, status, value, version, sequence, file.
    pub fn line(&self) -> String {
        let e = &self.entry;
        format!(
            "{} {} {:<11} {:>14}  version {} sequence {}  {}",
            e.tier,
            e.date,
            e.status.as_str(),
            show_value(e.value),
            e.version,
            e.sequence,
            self.path.display()
        )
    }
}

/// A value for people: the decimal, or `no value` (a CONTINGENCY day with nothing to carry).
pub fn show_value(v: Option<Fixed>) -> String {
    v.map(|x| x.to_string())
        .unwrap_or_else(|| "no value".into())
}

/// A CONTINGENCY determination of t1 for 2026-01-05 (no observations) carrying `previous`
/// from 2026-01-04: the fixture of the publisher's unit tests.
#[cfg(test)]
pub(crate) fn carried_day(previous: Fixed) -> sit_core::index::Determination {
    sit_core::index::compute_day(
        &sit_core::index::Methodology::v1_0_0(),
        &sit_core::index::DayInput {
            tier: "t1",
            date: Date::parse("2026-01-05").unwrap(),
            pass_threshold: Fixed(800_000_000),
            endpoints: &[],
            providers: &[],
            vantages: &[],
            observations: &[],
            previous_final: Some((Date::parse("2026-01-04").unwrap(), previous)),
            suite_hash: "suite",
            sequence: 7,
            computed_at: "2026-01-06T00:10:00.000Z",
            chain: None,
            prices: None,
        },
    )
}

/// One publish request.
pub struct Request<'a> {
    pub tier: &'a str,
    pub date: Date,
    /// Publication time (the caller's clock; recorded and used for the policy, never in the
    /// index arithmetic).
    pub now_ms: i64,
    pub key: &'a SigningKey,
    /// Publish even when the store holds no observation of the day (an outage: CONTINGENCY).
    pub allow_empty: bool,
}

/// The last value a CONTINGENCY day of `tier` before `date` may carry: the record in force of
/// the latest earlier day that set its own value (FINAL, RESTATED or BASE).
pub fn previous_final(entries: &[LogEntry], tier: &str, date: Date) -> Option<(Date, Fixed)> {
    in_force(entries)
        .into_iter()
        .filter(|((t, d), e)| t == tier && *d < date && e.status.sets_value())
        .filter_map(|((_, d), e)| e.value.map(|v| (d, v)))
        .next_back()
}

/// The methodology hash each (tier, day) in force was published under: what a recomputation
/// of a published day must use (see [`crate::determine::all_days`]).
pub fn published_methodologies(
    archive: &Archive,
) -> Result<std::collections::BTreeMap<(String, Date), String>, PublishError> {
    let entries = archive.entries()?;
    let mut out = std::collections::BTreeMap::new();
    for (k, e) in in_force(&entries) {
        let p = record::parse(&archive.read(e)?).map_err(|why| PublishError::Record {
            file: e.file.clone(),
            why,
        })?;
        out.insert(k, p.determination.methodology_hash);
    }
    Ok(out)
}

/// Every stored day of `tiers`, recomputed from the store with each published day under the
/// methodology its record names ([`crate::determine::all_days`]): what `sit index` and the
/// demo table show.
pub fn recompute_all(
    store: &Store,
    archive: &Archive,
    versions: &Registry,
    tiers: &[String],
    computed_at: &str,
) -> Result<Vec<sit_core::index::Determination>, PublishError> {
    let published = published_methodologies(archive)?;
    let made_with = |tier: &str, date: Date| published.get(&(tier.to_string(), date)).cloned();
    crate::determine::all_days(store, versions, tiers, computed_at, &made_with).map_err(|e| match e
    {
        crate::determine::DetermineError::Store(s) => PublishError::Store(s),
        crate::determine::DetermineError::Version(v) => PublishError::Version(v),
    })
}

/// The chain state a chained day of `tier` starts from: [`link_after`] the record in force of
/// the latest earlier day (none: the chain starts).
pub fn chain_link_before(
    archive: &Archive,
    entries: &[LogEntry],
    cp: &ChainParams,
    tier: &str,
    date: Date,
) -> Result<ChainLink, PublishError> {
    let forced = in_force(entries);
    let Some(e) = forced
        .iter()
        .filter(|((t, d), _)| t == tier && *d < date)
        .map(|(_, e)| *e)
        .next_back()
    else {
        return Ok(ChainLink::default());
    };
    let p = record::parse(&archive.read(e)?).map_err(|why| PublishError::Record {
        file: e.file.clone(),
        why,
    })?;
    Ok(link_after(cp, Some(&p.determination)))
}

/// Compute, decide, sign and archive one (tier, date). Holds the archive lock throughout, so
/// two publishers cannot both take the same version or sequence number.
///
/// A day is computed under the methodology and suite it was first published with (named by
/// hash in the record in force, looked up in `versions`), so a restatement after the rules
/// changed recomputes under the old rules; a day published for the first time uses the
/// current versions.
/// The methodology a day not yet published is determined with: the one the notices put in
/// force at the day's start, or, in a data folder without notices, this build's current one.
/// A notice naming a methodology this build does not know stops the day (with the hash).
pub fn methodology_in_force<'v>(
    archive: &Archive,
    versions: &'v Registry,
    date: sit_core::time::Date,
) -> Result<&'v sit_core::index::Methodology, PublishError> {
    match notices::in_force(archive, date.start_ms())
        .map_err(|e| PublishError::Notices(e.to_string()))?
        .and_then(|s| s.methodology)
    {
        Some((hash, _)) => Ok(versions.methodology(&hash)?),
        None => Ok(versions.current_methodology()),
    }
}

pub fn publish(
    store: &Store,
    archive: &Archive,
    versions: &Registry,
    req: &Request,
) -> Result<Published, PublishError> {
    let unknown_tier = |suite: &Suite| PublishError::UnknownTier {
        tier: req.tier.into(),
        known: suite.tier_ids().join(", "),
    };
    if versions.current_suite().tier(req.tier).is_none() {
        return Err(unknown_tier(versions.current_suite()));
    }
    if !req.allow_empty && !store.days()?.contains(&req.date) {
        return Err(PublishError::NoObservations { date: req.date });
    }
    let lock = archive.lock()?;
    // The key must be the publisher's, valid now, by the notices' key set.
    let key_set = notices::key_set(archive).map_err(|e| PublishError::Notices(e.to_string()))?;
    notices::may_sign_in(key_set.as_ref(), req.key, req.now_ms)
        .map_err(|e| PublishError::Notices(e.to_string()))?;
    let entries = archive.entries()?;
    let forced = in_force(&entries);
    let current = forced.get(&(req.tier.to_string(), req.date)).copied();
    // A day of a period settled FINAL is never restated: the final value lists the record in
    // force at its final time, and the lock keeps this check and the settlement in order.
    if let Some(cur) = current {
        if let Some(a) = crate::archive::settlements::final_holding(archive, req.tier, req.date) {
            return Err(PublishError::Refused(policy::Refusal::Settled {
                tier: req.tier.into(),
                date: req.date,
                contract: a.record.contract.id.clone(),
                period: a.label.clone(),
                value: a.record.value.round_dp(a.record.contract.scale),
                version: cur.version,
            }));
        }
    }
    let (m, suite) = match current {
        Some(e) => {
            let p = record::parse(&archive.read(e)?).map_err(|why| PublishError::Record {
                file: e.file.clone(),
                why,
            })?;
            (
                versions.methodology(&p.determination.methodology_hash)?,
                versions.suite(&p.determination.suite_hash)?,
            )
        }
        None => (
            {
                // A tier ceased by notice is not determined from the notice's effective day.
                let state = notices::in_force(archive, req.date.start_ms())
                    .map_err(|e| PublishError::Notices(e.to_string()))?;
                if state.is_some_and(|s| s.ceased.contains(req.tier)) {
                    return Err(PublishError::Notices(format!(
                        "{} {} is not determined: the tier has ceased by notice (GET /v1/notices, `sit notice list`); days before the notice's effective day stay published",
                        req.tier, req.date
                    )));
                }
                methodology_in_force(archive, versions, req.date)?
            },
            crate::determine::day_suite(
                store,
                versions,
                archive
                    .commitment(req.date)
                    .as_ref()
                    .map(|c| c.suite_hash.as_str()),
                req.date,
            )?,
        ),
    };
    if suite.tier(req.tier).is_none() {
        return Err(unknown_tier(suite));
    }
    let sequence = entries
        .iter()
        .filter(|e| e.tier == req.tier)
        .map(|e| e.sequence)
        .max()
        .unwrap_or(0)
        + 1;
    let at = format_utc_ms(req.now_ms);
    let link = match &m.chain {
        Some(cp) => Some(chain_link_before(
            archive, &entries, cp, req.tier, req.date,
        )?),
        None => None,
    };
    // what is stored now is what the day is determined from: a record stored later (a late
    // vantage's) is not an input, and the record says where the read stopped
    let read_below = store.head()?.0;
    // the observations upheld disputes voided (the restatement path, issue 30): those among
    // the day's inputs are left out
    let voided = crate::archive::register::Register::read(archive.root())?.voided();
    let mut d = crate::determine::one_day(
        store,
        suite,
        m,
        req.tier,
        req.date,
        previous_final(&entries, req.tier, req.date),
        link.as_ref(),
        sequence,
        &at,
        req.now_ms,
        Some(read_below),
        &voided,
    )?;
    // The record in force signed by a key the key set voids (revoked) is replaced by the
    // recomputation under a valid key while the day's window is open.
    let void_key = match (current, &key_set) {
        (Some(e), Some(set)) => {
            let at = sit_core::time::parse_utc_ms(&e.published_at).map_err(|why| {
                PublishError::Record {
                    file: e.file.clone(),
                    why: format!("published_at: {why}"),
                }
            })?;
            set.valid(&e.key_id, at).is_err().then(|| e.key_id.clone())
        }
        _ => None,
    };
    let decision = match (current, &void_key) {
        (Some(e), Some(k)) => {
            policy::decide_replacement(m, &d, (e.version, e.status, e.value), k, req.now_ms)?
        }
        _ => policy::decide(
            m,
            &d,
            current.map(|e| (e.version, e.status, e.value)),
            req.now_ms,
        )?,
    };
    let (version, restates) = match decision {
        Decision::First => (1, None),
        Decision::Restate { version } => {
            let cur = current.expect("a restatement has a record in force");
            if d.status == Status::Final {
                d.status = Status::Restated;
            }
            (
                version,
                Some(Restates {
                    version: cur.version,
                    sequence: cur.sequence,
                    status: cur.status,
                    value: cur.value,
                    record_hash: cur.record_hash.clone(),
                }),
            )
        }
    };
    let vk = req.key.verifying_key();
    let contingency_reason = d.contingency.as_ref().map(|c| c.reason.clone());
    let p = Publication {
        schema: SCHEMA.into(),
        determination: d,
        version,
        published_at: at.clone(),
        restates,
        key_id: sit_core::signing::key_id(&vk),
    };
    let bytes = record::sign(&p, req.key);
    let entry = LogEntry {
        tier: req.tier.into(),
        date: req.date,
        version,
        sequence,
        status: p.determination.status,
        value: p.determination.value,
        published_at: at,
        key_id: p.key_id.clone(),
        file: Archive::file_name(req.tier, req.date, version),
        record_hash: record::record_hash(&bytes),
    };
    let path = archive.append(&lock, &bytes, &entry, &sit_core::signing::public_pem(&vk))?;
    Ok(Published {
        entry,
        path,
        restated: version > 1,
        contingency_reason,
    })
}
