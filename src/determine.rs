//! From the store to determinations: reads the observations a (tier, day) needs and hands
//! them to the pure index. The I/O side of the index, kept separate so that the index itself
//! stays pure and replayable.

use crate::clock::Date;
use crate::index::chain::{link_after, ChainLink};
use crate::index::{compute_day, DayInput, Determination, Methodology};
use crate::price::BookView;
use crate::probes::Suite;
use crate::store::{Store, StoreError};
use crate::versions::Registry;

/// The rows a (tier, day) is determined from under `m`; from 1.4.0 costed from the price book
/// as it stood at `prices_as_of_ms` (every entry recorded by then).
pub fn day_rows(
    store: &Store,
    suite: &Suite,
    m: &Methodology,
    tier: &str,
    day: Date,
    prices_as_of_ms: i64,
) -> Result<crate::index::Rows, StoreError> {
    let window = crate::index::day_window(m, day);
    let raw = store
        .scan(window.0, window.1)
        .collect::<Result<Vec<_>, _>>()?;
    let view = if m.costs_at_determination {
        let book = store.book()?;
        Some(BookView::new(&book, book.version_at(prices_as_of_ms)))
    } else {
        None
    };
    Ok(crate::index::rows_for(
        m,
        raw.iter().map(|s| (&s.obs, &s.hash)),
        tier,
        &suite.hash,
        window,
        view.as_ref(),
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
                i64::MAX,
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
/// From methodology 1.4.0 the attempts are costed from the price book as it stood at
/// `prices_as_of_ms` (the determination's own time).
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
    prices_as_of_ms: i64,
) -> Result<Determination, StoreError> {
    let tier = suite
        .tier(tier_id)
        .unwrap_or_else(|| panic!("tier `{tier_id}` checked by the caller"));
    let rows = day_rows(store, suite, m, tier_id, day, prices_as_of_ms)?;
    Ok(compute_day(
        m,
        &DayInput {
            tier: tier_id,
            date: day,
            pass_threshold: tier.pass_threshold,
            endpoints: &rows.endpoints,
            providers: &rows.providers,
            observations: &rows.rows,
            previous_final,
            suite_hash: &suite.hash,
            sequence,
            computed_at,
            chain,
            prices: rows.prices.as_ref(),
        },
    ))
}
