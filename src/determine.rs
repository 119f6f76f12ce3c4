//! From the store to determinations: reads the observations a (tier, day) needs and hands
//! them to the pure index. The I/O side of the index, kept separate so that the index itself
//! stays pure and replayable.

use crate::clock::Date;
use crate::index::chain::{next_link, ChainLink};
use crate::index::{compute_day, DayInput, Determination, IndexObs, Methodology, Status};
use crate::probes::Suite;
use crate::store::{Store, StoreError};

/// Observations of one tier in a window, as index rows with their endpoint universe.
pub fn index_rows(
    store: &Store,
    suite: &Suite,
    tier: &str,
    from_ms: i64,
    to_ms: i64,
) -> Result<(Vec<String>, Vec<IndexObs>), StoreError> {
    let raw = store.scan(from_ms, to_ms).collect::<Result<Vec<_>, _>>()?;
    Ok(crate::index::input_rows(
        raw.iter().map(|s| (&s.obs, &s.hash)),
        tier,
        &suite.hash,
        from_ms,
        to_ms,
    ))
}

/// Determinations for every stored day (ascending) and every tier in `tiers`, carrying the
/// last FINAL value forward into CONTINGENCY days. `computed_at` is recorded as given.
pub fn all_days(
    store: &Store,
    suite: &Suite,
    m: &Methodology,
    tiers: &[String],
    computed_at: &str,
) -> Result<Vec<Determination>, StoreError> {
    let days = store.days()?;
    let mut out = Vec::new();
    for tier_id in tiers {
        if suite.tier(tier_id).is_none() {
            continue;
        }
        let mut previous: Option<(Date, crate::fixed::Fixed)> = None;
        let mut link: Option<ChainLink> = None;
        for (i, day) in days.iter().enumerate() {
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
            if d.status == Status::Final {
                previous = d.value.map(|v| (*day, v));
            }
            if let (Some(cp), Some(rec)) = (&m.chain, &d.chain) {
                link = Some(next_link(
                    cp,
                    rec,
                    *day,
                    d.value,
                    d.status != Status::Contingency,
                ));
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
    let (endpoints, rows) = index_rows(store, suite, tier_id, from, to)?;
    Ok(compute_day(
        m,
        &DayInput {
            tier: tier_id,
            date: day,
            pass_threshold: tier.pass_threshold,
            endpoints: &endpoints,
            observations: &rows,
            previous_final,
            suite_hash: &suite.hash,
            sequence,
            computed_at,
            chain,
        },
    ))
}
