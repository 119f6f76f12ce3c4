//! From the store to determinations: reads the observations a (tier, day) needs and hands
//! them to the pure index. The I/O side of the index, kept separate so that the index itself
//! stays pure and replayable.

use crate::store::{Store, StoreError};
use sit_core::index::chain::{link_after, ChainLink};
use sit_core::index::{compute_day, DayInput, Determination, Methodology};
use sit_core::price::BookView;
use sit_core::probes::Suite;
use sit_core::time::Date;
use sit_core::versions::Registry;

/// The probe suite a day not yet published is determined under: the one its schedule
/// commitment names (`committed`), else the one most of the day's observations name (ties to
/// the later version), else the current one. A day is priced in the units its probes were
/// made in: a store whose days were probed under suite 1.0.0 keeps determining them under
/// 1.0.0 after a build with a newer suite takes over.
pub fn day_suite<'v>(
    store: &Store,
    versions: &'v Registry,
    committed: Option<&str>,
    day: Date,
) -> Result<&'v Suite, StoreError> {
    if let Some(s) = committed.and_then(|h| versions.suite(h).ok()) {
        return Ok(s);
    }
    let mut counts: std::collections::BTreeMap<String, u64> = Default::default();
    for r in store.scan(day.start_ms(), day.succ().start_ms()) {
        *counts.entry(r?.obs.suite_hash).or_default() += 1;
    }
    let known = versions.suites();
    Ok(known
        .iter()
        .enumerate()
        .filter_map(|(i, s)| counts.get(&s.hash).map(|n| (*n, i, s)))
        .max_by_key(|(n, i, _)| (*n, *i))
        .map(|(_, _, s)| s)
        .unwrap_or_else(|| versions.current_suite()))
}

/// The rows a (tier, day) is determined from under `m`; from 1.4.0 costed from the price book
/// as it stood at `prices_as_of_ms` (every entry recorded by then). With `read_below`, only
/// the records stored before it (`seq` below it) are read; the observations in `voided` (record
/// hashes, hex: voided by an upheld dispute) are left out, and the hashes of those of `tier`
/// that the window held are returned beside the rows.
#[allow(clippy::too_many_arguments)]
pub fn day_rows(
    store: &Store,
    suite: &Suite,
    m: &Methodology,
    tier: &str,
    day: Date,
    prices_as_of_ms: i64,
    read_below: Option<u64>,
    voided: &std::collections::BTreeSet<String>,
) -> Result<(sit_core::index::Rows, std::collections::BTreeSet<String>), StoreError> {
    let window = sit_core::index::day_window(m, day);
    let below = read_below.unwrap_or(u64::MAX);
    let mut left_out = std::collections::BTreeSet::new();
    let mut raw = Vec::new();
    for r in store.scan(window.0, window.1) {
        let s = r?;
        if s.obs.seq >= below {
            continue;
        }
        if !voided.is_empty() {
            let h = sit_core::signing::hex(&s.hash[..]);
            if voided.contains(&h) {
                if s.obs.tier == tier {
                    left_out.insert(h);
                }
                continue;
            }
        }
        raw.push(s);
    }
    let view = if m.costs_at_determination {
        let book = store.book()?;
        Some(BookView::for_window(
            &book,
            book.version_at(prices_as_of_ms),
            window,
        ))
    } else {
        None
    };
    let rows = sit_core::index::rows_for(
        m,
        raw.iter().map(|s| (&s.obs, &s.hash)),
        tier,
        &suite.hash,
        window,
        view.as_ref(),
    );
    Ok((rows, left_out))
}

/// Why the store's days could not be determined.
#[derive(Debug, thiserror::Error)]
pub enum DetermineError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Version(#[from] sit_core::versions::VersionError),
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
    let days = store.days()?;
    let suites = days
        .iter()
        .map(|d| day_suite(store, versions, None, *d))
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::new();
    for tier_id in tiers {
        if versions.current_suite().tier(tier_id).is_none() {
            continue;
        }
        let mut previous: Option<(Date, sit_core::fixed::Fixed)> = None;
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
            let suite = suites[i];
            if suite.tier(tier_id).is_none() {
                continue;
            }
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
                None,
                &[],
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
/// `prices_as_of_ms` (the determination's own time). With `read_below` (the store's head when
/// the publisher began), only records stored before it are read, and the determination
/// records it ([`Determination::read_below_seq`]). The observations `voided` lists (by upheld
/// disputes) are left out, and the determination records those that were its inputs
/// ([`Determination::voided`]).
#[allow(clippy::too_many_arguments)]
pub fn one_day(
    store: &Store,
    suite: &Suite,
    m: &Methodology,
    tier_id: &str,
    day: Date,
    previous_final: Option<(Date, sit_core::fixed::Fixed)>,
    chain: Option<&ChainLink>,
    sequence: u64,
    computed_at: &str,
    prices_as_of_ms: i64,
    read_below: Option<u64>,
    voided: &[sit_core::index::Voided],
) -> Result<Determination, StoreError> {
    let tier = suite
        .tier(tier_id)
        .unwrap_or_else(|| panic!("tier `{tier_id}` checked by the caller"));
    let skip = voided.iter().map(|v| v.observation.clone()).collect();
    let (rows, left_out) = day_rows(
        store,
        suite,
        m,
        tier_id,
        day,
        prices_as_of_ms,
        read_below,
        &skip,
    )?;
    let mut d = compute_day(
        m,
        &DayInput {
            tier: tier_id,
            date: day,
            pass_threshold: tier.pass_threshold,
            endpoints: &rows.endpoints,
            providers: &rows.providers,
            vantages: &rows.vantages,
            observations: &rows.rows,
            previous_final,
            suite_hash: &suite.hash,
            sequence,
            computed_at,
            chain,
            prices: rows.prices.as_ref(),
        },
    );
    d.read_below_seq = read_below;
    // the record lists only the voided observations that were inputs of this tier and day
    // (an observation is in two days' windows: the eligibility window reaches into the day
    // before)
    d.voided = voided
        .iter()
        .filter(|v| left_out.contains(&v.observation))
        .cloned()
        .collect();
    Ok(d)
}
