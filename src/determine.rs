//! From the store to determinations: reads the observations a (tier, day) needs and hands
//! them to the pure index. The I/O side of the index, kept separate so that the index itself
//! stays pure and replayable.

use crate::clock::Date;
use crate::index::chain::{link_after, ChainLink};
use crate::index::{compute_day, DayInput, Determination, IndexObs, Methodology};
use crate::probes::Suite;
use crate::store::{Store, StoreError};
use crate::versions::Registry;

/// Endpoint ids (sorted), each endpoint's provider (same order), and the index rows.
pub type Rows = (Vec<String>, Vec<String>, Vec<IndexObs>);

/// Observations of one tier in a window, as index rows with their endpoint universe and each
/// endpoint's provider.
pub fn index_rows(
    store: &Store,
    suite: &Suite,
    tier: &str,
    from_ms: i64,
    to_ms: i64,
) -> Result<Rows, StoreError> {
    let raw = store.scan(from_ms, to_ms).collect::<Result<Vec<_>, _>>()?;
    Ok(crate::index::input_rows_with_providers(
        raw.iter().map(|s| (&s.obs, &s.hash)),
        tier,
        &suite.hash,
        from_ms,
        to_ms,
    ))
}

/// Why the store's days could not be determined.
#[derive(Debug, thiserror::Error)]
pub enum DetermineError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Version(#[from] crate::versions::VersionError),
}

/// Determinations for every stored day (ascending) and every tier in `tiers`, carrying the
/// last FINAL value forward into CONTINGENCY days. `computed_at` is recorded as given.
///
/// Each (tier, day) is computed under the methodology `made_with` names for it (the hash in
/// its published record), else under the current one, so a preview agrees with what was
/// published under older rules. A chained day starts from the state the previous day hands
/// on; a day made without a chain (1.0.0) hands on its last final value with no references.
pub fn all_days(
    store: &Store,
    versions: &Registry,
    tiers: &[String],
    computed_at: &str,
    made_with: &dyn Fn(&str, Date) -> Option<String>,
) -> Result<Vec<Determination>, DetermineError> {
    let suite = versions.current_suite();
    let days = store.days()?;
    let mut out = Vec::new();
    for tier_id in tiers {
        if suite.tier(tier_id).is_none() {
            continue;
        }
        let mut previous: Option<(Date, crate::fixed::Fixed)> = None;
        let tier_start = out.len();
        for (i, day) in days.iter().enumerate() {
            let m = match made_with(tier_id, *day) {
                Some(h) => versions.methodology(&h)?,
                None => versions.current_methodology(),
            };
            // the state the previous day hands on, as the publisher derives it
            let link = m
                .chain
                .as_ref()
                .map(|cp| link_after(cp, out[tier_start..].last()));
            let d = one_day(
                store,
                suite,
                m,
                tier_id,
                *day,
                previous,
                link.as_ref(),
                i as u64 + 1,
                computed_at,
            )?;
            if d.status.sets_value() {
                previous = d.value.map(|v| (*day, v));
            }
            out.push(d);
        }
    }
    out.sort_by(|a, b| (a.date, &a.tier).cmp(&(b.date, &b.tier)));
    Ok(out)
}

/// The determination of one tier for one day, read from the store. `previous_final` is the
/// value a CONTINGENCY day carries forward; `sequence` and `computed_at` are recorded as given.
#[allow(clippy::too_many_arguments)]
pub fn one_day(
    store: &Store,
    suite: &Suite,
    m: &Methodology,
    tier_id: &str,
    day: Date,
    previous_final: Option<(Date, crate::fixed::Fixed)>,
    chain: Option<&ChainLink>,
    sequence: u64,
    computed_at: &str,
) -> Result<Determination, StoreError> {
    let tier = suite
        .tier(tier_id)
        .unwrap_or_else(|| panic!("tier `{tier_id}` checked by the caller"));
    let (from, to) = crate::index::day_window(m, day);
    let (endpoints, providers, rows) = index_rows(store, suite, tier_id, from, to)?;
    Ok(compute_day(
        m,
        &DayInput {
            tier: tier_id,
            date: day,
            pass_threshold: tier.pass_threshold,
            endpoints: &endpoints,
            providers: &providers,
            observations: &rows,
            previous_final,
            suite_hash: &suite.hash,
            sequence,
            computed_at,
            chain,
        },
    ))
}
