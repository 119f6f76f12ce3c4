//! The daily SIT index for one tier: pure functions, no I/O, no clock, no floats.
//!
//! Steps (index-methodology.md states them in full):
//! 1. Bucket the tier's observations by endpoint and UTC hour, over the day and the trailing
//!    eligibility window before it.
//! 2. For each hourly partition, decide each endpoint's eligibility over the trailing window
//!    (enough attempts, availability floor, quality threshold) and its partition price
//!    (ratio of sums: cost / delivered SIT).
//! 3. Across eligible endpoints: total order (price, endpoint id), cut floor(trim * n) from
//!    each end, mean of the rest; fewer than `min_endpoints` makes the partition invalid.
//! 4. Daily value: time-weighted mean of the valid partitions (1.0.0), or from 1.1.0 the
//!    chain-linked index of the endpoints' day prices ([`chain`]); fewer than
//!    `min_valid_partitions` valid gives CONTINGENCY with the previous final value carried.
//!
//! Every division rounds half to even at the [`Fixed`] scale (9 places). Also here: the
//! methodology versions' parameters ([`Methodology`]), the rows a day reads from stored
//! observations ([`rows_for`], [`day_window`]) and the Merkle root of its inputs ([`merkle`]).

pub mod chain;
pub mod interval;
pub mod merkle;

use crate::fixed::{div_round_half_even, sit_price, Fixed, ONE};
use crate::time::{Date, HOUR_MS};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Versioned index parameters. Their canonical JSON is hashed into every determination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Methodology {
    /// The version (`1.0.0`, ...).
    pub version: String,
    /// Partitions of a UTC day (24).
    pub partitions_per_day: u32,
    /// Hours per partition (1).
    pub partition_hours: u32,
    /// The trailing window over which eligibility is judged, in hours, the partition's
    /// own hour included.
    pub eligibility_window_hours: u32,
    /// Fewest attempts an endpoint needs in the window to be eligible.
    pub min_attempts_in_window: u32,
    /// Lowest share of the window's attempts that must be answered (a [`Fixed`] fraction:
    /// 0.9).
    pub availability_floor: Fixed,
    /// Fewest eligible endpoints a valid partition needs (and, chained, the fewest
    /// relatives or day prices that set a value).
    pub min_endpoints: u32,
    /// Share of the ordered values trimmed from each end (a [`Fixed`] fraction: 0.2).
    pub trim_fraction: Fixed,
    /// Largest weight one endpoint may carry in a value (a [`Fixed`] fraction); above it
    /// there is no value.
    pub max_endpoint_weight: Fixed,
    /// Fewest valid partitions a day needs for a value (else CONTINGENCY).
    pub min_valid_partitions: u32,
    /// SIT size weight of each reference prompt token.
    pub sit_w_in: u64,
    /// SIT size weight of each token of the tier's output budget.
    pub sit_w_out: u64,
    /// Decimal places of every value (9, the [`Fixed`] scale).
    pub fixed_scale: u32,
    /// The rounding rule: `half_to_even`.
    pub rounding: String,
    /// The quantile rule of the endpoint price quartiles: `nearest_rank`.
    pub quantiles: String,
    /// How `dispersion` is computed, in words.
    pub dispersion: String,
    /// A restatement is material when `|new - old| > materiality_threshold x |old|` (a
    /// [`Fixed`] fraction: 0.001).
    pub materiality_threshold: Fixed,
    /// A published day may be restated until this many hours after the day ends.
    pub restatement_cutoff_hours: u32,
    /// The unit of every value: `USD per 1,000,000 SIT`.
    pub unit: String,
    /// The chained matched-panel index (1.1 and later); absent in 1.0.0, whose parameters
    /// and hash are unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<chain::ChainParams>,
    /// 1.3.0 and later: a day is determined no earlier than this many minutes after it ends
    /// (at least the probes' total timeout), so that every attempt sent in the day is stored
    /// and inside the Merkle root when the day is signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settlement_lag_minutes: Option<u32>,
    /// 1.3.0 and later: after this many CONTINGENCY days in a row the status is SUSPENDED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_contingency_days: Option<u32>,
    /// 1.3.0 and later: what holds while the index is SUSPENDED (IOSCO Principle 13).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// 1.3.0 and later: a CONTINGENCY or SUSPENDED record that becomes computable (FINAL) is
    /// always restated before the cutoff, whatever the size of the change.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restate_contingency: bool,
    /// 1.3.0 and later: no provider's endpoints together weigh more than this in a day's
    /// value (the excess goes to the others pro rata).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_provider_weight: Option<Fixed>,
    /// 1.3.0 and later: a value needs at least this many distinct providers carrying weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_providers: Option<u32>,
    /// 1.4.0 and later: attempts are costed when the day is determined, from the price book
    /// as it stood then (its version and hash are recorded), not at probe time.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub costs_at_determination: bool,
    /// 1.4.0 and later: endpoints serving the same weights at the same list price count as
    /// one price source for the provider cap (grouped with their providers).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub group_price_sources: bool,
}

impl Methodology {
    /// Methodology 1.0.0 (in force since the first published day).
    pub fn v1_0_0() -> Self {
        Methodology {
            version: "1.0.0".into(),
            partitions_per_day: 24,
            partition_hours: 1,
            eligibility_window_hours: 24,
            min_attempts_in_window: 6,
            availability_floor: Fixed(900_000_000),
            min_endpoints: 5,
            trim_fraction: Fixed(200_000_000),
            max_endpoint_weight: Fixed(340_000_000),
            min_valid_partitions: 18,
            sit_w_in: 1,
            sit_w_out: 4,
            fixed_scale: crate::fixed::SCALE,
            rounding: "half_to_even".into(),
            quantiles: "nearest_rank".into(),
            dispersion: "(p75 - p25) / p50 of endpoint day prices".into(),
            materiality_threshold: Fixed(1_000_000),
            restatement_cutoff_hours: 24,
            unit: "USD per 1,000,000 SIT".into(),
            chain: None,
            settlement_lag_minutes: None,
            max_contingency_days: None,
            fallback: None,
            restate_contingency: false,
            max_provider_weight: None,
            min_providers: None,
            costs_at_determination: false,
            group_price_sources: false,
        }
    }

    /// Methodology 1.1.0: the daily value is a chain-linked, matched-panel geometric mean of
    /// the endpoints' price relatives (see [`chain`]); partitions, eligibility, sufficiency,
    /// trimming fraction, weight cap and contingency as in 1.0.0.
    pub fn v1_1_0() -> Self {
        Methodology {
            version: "1.1.0".into(),
            chain: Some(chain::ChainParams {
                method: "chain-linked geometric mean of matched price relatives (endpoint day price / its own previous valid day price), trimmed by relative".into(),
                max_reference_age_days: 7,
                min_price_partitions: 12,
                base: "a chain continues the previous published level; where no relative can be matched it carries that level and restarts the references; with no previous level it starts at the trimmed geometric mean of the day prices".into(),
                quality_window_days: None,
                anchor_base: false,
                time_weighted_day_price: false,
            }),
            ..Methodology::v1_0_0()
        }
    }

    /// Methodology 1.2.0: 1.1.0 with each endpoint's delivered share pooled over a 7-day
    /// window in its day price ([`chain::pooled_price`]), and the anchor day where a chain
    /// starts published as BASE, not as a settlement value.
    pub fn v1_2_0() -> Self {
        let mut m = Methodology::v1_1_0();
        m.version = "1.2.0".into();
        let cp = m.chain.as_mut().expect("1.1.0 is chained");
        cp.method = "chain-linked geometric mean of matched price relatives (endpoint day price / its own previous valid day price; day price = cost per attempted SIT over the delivered share pooled over the quality window), trimmed by relative".into();
        cp.base = "a chain continues the previous published level; where no relative can be matched it carries that level and restarts the references; with no previous level it starts at the trimmed geometric mean of the day prices, published with status BASE (the anchor, not a settlement value)".into();
        cp.quality_window_days = Some(7);
        cp.anchor_base = true;
        m
    }

    /// Methodology 1.3.0: 1.2.0 with the settlement path's integrity rules: a settlement lag
    /// before a day is determined, SUSPENDED after three CONTINGENCY days in a row with a
    /// stated fallback, and a CONTINGENCY day that becomes computable always restated.
    pub fn v1_3_0() -> Self {
        Methodology {
            version: "1.3.0".into(),
            settlement_lag_minutes: Some(5),
            max_contingency_days: Some(3),
            fallback: Some(FALLBACK.into()),
            restate_contingency: true,
            max_provider_weight: Some(Fixed(250_000_000)),
            min_providers: Some(4),
            ..Methodology::v1_2_0()
        }
    }

    /// Methodology 1.4.0: 1.3.0 with costs computed at determination time from the
    /// versioned price book, and endpoints serving the same weights at the same list price
    /// counted as one price source for the provider cap.
    pub fn v1_4_0() -> Self {
        Methodology {
            version: "1.4.0".into(),
            costs_at_determination: true,
            group_price_sources: true,
            ..Methodology::v1_3_0()
        }
    }

    /// Methodology 1.5.0: 1.4.0 with a time-weighted day price, as the design brief describes
    /// the index ("trimmed, time-weighted"): an endpoint's day price is the mean of its eligible
    /// hours' prices (each hour's cost per attempted SIT) over the pooled delivered share, not
    /// the day's summed cost over its summed SIT, so that an hour weighs by its duration and not
    /// by the cost and SIT it happened to carry ([`chain::time_weighted_price`]). Measured
    /// against 1.4.0 by `sit bench stability` (BENCHMARKS.md): the same leave-one-out, closer
    /// tracking of the true price.
    pub fn v1_5_0() -> Self {
        let mut m = Methodology {
            version: "1.5.0".into(),
            ..Methodology::v1_4_0()
        };
        if let Some(cp) = m.chain.as_mut() {
            cp.time_weighted_day_price = true;
            cp.method = "chain-linked geometric mean of matched price relatives (endpoint day price / its own previous valid day price; day price = the mean over its eligible hours of each hour's cost per attempted SIT, over the delivered share pooled over the quality window), trimmed by relative".into();
        }
        m
    }

    /// blake3 (hex) of the RFC 8785 canonical JSON of the parameters. (For every version so
    /// far these are the bytes `serde_json` wrote before: sorted keys, ASCII strings, integer
    /// numbers; a regression test pins each version's hash.)
    pub fn hash(&self) -> String {
        let v = serde_json::to_value(self).expect("methodology serialises");
        blake3::hash(&crate::signing::canonical(&v))
            .to_hex()
            .to_string()
    }

    /// Refuse parameters this code does not implement (a methodology is a promise: a value
    /// that would be silently ignored, such as two-hour partitions, must not be published as
    /// if it applied). The error names the version and every problem found.
    pub fn validate(&self) -> Result<(), String> {
        let one = crate::fixed::ONE;
        let mut bad = Vec::new();
        let mut need = |ok: bool, what: &str| {
            if !ok {
                bad.push(what.to_string());
            }
        };
        need(
            self.partition_hours == 1,
            "partition_hours must be 1 (hourly partitions are what the code computes)",
        );
        need(
            self.partitions_per_day == 24,
            "partitions_per_day must be 24",
        );
        need(
            self.eligibility_window_hours >= 1 && self.eligibility_window_hours <= 24 * 7,
            "eligibility_window_hours must be 1 to 168",
        );
        need(
            (0..=one).contains(&self.availability_floor.0),
            "availability_floor must be within 0 and 1",
        );
        need(self.min_endpoints >= 1, "min_endpoints must be at least 1");
        need(
            (0..one / 2).contains(&self.trim_fraction.0),
            "trim_fraction must be at least 0 and below 0.5",
        );
        need(
            self.max_endpoint_weight.0 > 0 && self.max_endpoint_weight.0 <= one,
            "max_endpoint_weight must be above 0 and at most 1",
        );
        need(
            self.min_valid_partitions >= 1 && self.min_valid_partitions <= self.partitions_per_day,
            "min_valid_partitions must be 1 to partitions_per_day",
        );
        need(
            self.sit_w_in >= 1 && self.sit_w_out >= 1,
            "SIT weights must be at least 1",
        );
        need(
            self.fixed_scale == crate::fixed::SCALE,
            "fixed_scale must be the code's scale (9 places)",
        );
        need(
            self.rounding == "half_to_even",
            "rounding must be half_to_even",
        );
        need(
            self.quantiles == "nearest_rank",
            "quantiles must be nearest_rank",
        );
        need(
            self.materiality_threshold.0 >= 0,
            "materiality_threshold must not be negative",
        );
        need(
            self.unit == "USD per 1,000,000 SIT",
            "unit must be USD per 1,000,000 SIT",
        );
        if let Some(cp) = &self.chain {
            need(
                cp.max_reference_age_days >= 1,
                "chain.max_reference_age_days must be at least 1",
            );
            need(
                cp.min_price_partitions >= 1 && cp.min_price_partitions <= self.partitions_per_day,
                "chain.min_price_partitions must be 1 to partitions_per_day",
            );
            need(
                cp.quality_window_days.is_none_or(|w| (1..=31).contains(&w)),
                "chain.quality_window_days must be 1 to 31",
            );
        }
        need(
            self.settlement_lag_minutes
                .is_none_or(|l| (2..=24 * 60).contains(&l)),
            "settlement_lag_minutes must be 2 (the probes' default total timeout) to 1440",
        );
        need(
            self.max_contingency_days.is_none_or(|d| d >= 1),
            "max_contingency_days must be at least 1",
        );
        need(
            self.max_provider_weight
                .is_none_or(|c| c.0 > 0 && c.0 <= one),
            "max_provider_weight must be above 0 and at most 1",
        );
        need(
            !self.group_price_sources || self.max_provider_weight.is_some(),
            "group_price_sources needs the provider cap",
        );
        need(
            self.max_provider_weight.is_some() == self.min_providers.is_some(),
            "max_provider_weight and min_providers go together",
        );
        need(
            match (self.max_provider_weight, self.min_providers) {
                (Some(c), Some(n)) => c.0 * n as i128 >= one,
                _ => true,
            },
            "min_providers x max_provider_weight must be at least 1 (else the cap cannot hold)",
        );
        need(
            self.max_provider_weight.is_none() || self.chain.is_some(),
            "the provider cap needs a chained methodology",
        );
        need(
            self.max_contingency_days.is_some() == self.fallback.is_some(),
            "a SUSPENDED status needs its fallback stated, and a fallback its limit",
        );
        // With a settlement lag, a day's restatement window must close before the next day
        // can be published (its end plus the lag): then restating D can never leave D+1,
        // which chains from or carries D's value, computed from a superseded record.
        need(self.settlement_lag_minutes.is_none() || self.restatement_cutoff_hours <= 24, "restatement_cutoff_hours must be at most 24 with a settlement lag (a day's window closes before the next day is published)");
        if bad.is_empty() {
            Ok(())
        } else {
            Err(format!("methodology {}: {}", self.version, bad.join("; ")))
        }
    }
}

/// What holds while the index is SUSPENDED (methodology 1.3.0 and later; signed text).
pub const FALLBACK: &str = "After more than max_contingency_days CONTINGENCY days in a row the index is SUSPENDED: each record still carries the last value set from data, for reference only; it is not a settlement value. A contract referencing a SUSPENDED day settles by the fallback its rules name; the administrator publishes a notice with the cause and reviews the panel; the index resumes at the first computable day, chained from the last value set from data.";

/// What the index needs of one observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexObs {
    /// Index into the sorted endpoint list of the [`DayInput`].
    pub endpoint: u32,
    /// When the request was sent, UTC milliseconds.
    pub at_ms: i64,
    /// The attempt's cost, pico-USD.
    pub cost_pusd: i128,
    /// The SIT it delivered.
    pub delivered_sit: u64,
    /// The SIT the attempt would have delivered (the probe's size), delivered or not.
    pub attempted_sit: u64,
    /// A scheduled probe that was never sent: no attempt, only counted (`counts.missed`).
    pub missed: bool,
    /// The attempt completed without a failure.
    pub succeeded: bool,
    /// The answer was graded correct.
    pub correct: bool,
    /// blake3 of the stored observation bytes (Merkle leaf).
    pub hash: [u8; 32],
    /// The vantage the attempt was made from: 1 + its index in [`DayInput::vantages`], 0 for
    /// none (the embedded worker). Only counted (`counts.vantages`).
    pub vantage: u32,
}

/// The index rows of one tier's observations made with one suite and sent in `[from_ms,
/// to_ms)`, with their endpoint universe (sorted, unique: the total order's tie-breaker).
/// Observations of another tier, another suite or outside the window are left out: mixing
/// suites would mix units.
pub fn input_rows<'a>(
    observations: impl IntoIterator<Item = (&'a crate::observation::Observation, &'a [u8; 32])>,
    tier: &str,
    suite_hash: &str,
    from_ms: i64,
    to_ms: i64,
) -> (Vec<String>, Vec<IndexObs>) {
    let (endpoints, _, rows) =
        input_rows_with_providers(observations, tier, suite_hash, from_ms, to_ms);
    (endpoints, rows)
}

/// [`input_rows`] with each endpoint's provider: the one its latest observation in the window
/// names (ties by the provider's name; empty for a record that names none, such as a missed
/// probe of an endpoint no longer configured). Costs are as the observations recorded them
/// (methodologies before 1.4.0).
pub fn input_rows_with_providers<'a>(
    observations: impl IntoIterator<Item = (&'a crate::observation::Observation, &'a [u8; 32])>,
    tier: &str,
    suite_hash: &str,
    from_ms: i64,
    to_ms: i64,
) -> (Vec<String>, Vec<String>, Vec<IndexObs>) {
    let r = rows(observations, tier, suite_hash, from_ms, to_ms, None, false);
    (r.endpoints, r.providers, r.rows)
}

/// What a day's determination reads from its observations, under its methodology.
#[derive(Debug, Clone)]
pub struct Rows {
    /// Sorted, unique: the total order's tie-breaker.
    pub endpoints: Vec<String>,
    /// Each endpoint's provider, or from 1.4.0 its price-source group (same order).
    pub providers: Vec<String>,
    /// One row per observation read, in the order given.
    pub rows: Vec<IndexObs>,
    /// 1.4.0 and later: the price book version and hash the costs come from.
    pub prices: Option<PricesUsed>,
    /// The vantages the rows were made from (sorted, unique; empty without a probe network).
    pub vantages: Vec<String>,
}

/// The price book a determination costed its attempts from (methodology 1.4.0 and later).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricesUsed {
    /// The book's first `version` entries: every entry recorded when the day was determined.
    pub version: u64,
    /// blake3 of the canonical JSON of those entries.
    pub hash: String,
    /// Attempts of the window the book had no price for, costed as their observation
    /// recorded (0 in a healthy oracle: the book is written before anything is probed).
    pub costed_as_observed: u64,
    /// blake3 of the excerpt of the book the day's window needs at `version`
    /// ([`crate::price::PriceExcerpt::hash`]): what lets a bundle carry only those entries.
    /// Absent in records made before bundles carried excerpts (their bundles carry the book).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excerpt: Option<String>,
}

/// The index rows of a (tier, day) under methodology `m`: under 1.4.0 and later each attempt
/// is costed from `book` (the price book as it stood when the day is determined; `None`
/// reads as an empty book) and endpoints serving the same weights at the same list price are
/// grouped into one price source; before 1.4.0, [`input_rows_with_providers`].
pub fn rows_for<'a>(
    m: &Methodology,
    observations: impl IntoIterator<Item = (&'a crate::observation::Observation, &'a [u8; 32])>,
    tier: &str,
    suite_hash: &str,
    (from_ms, to_ms): (i64, i64),
    book: Option<&crate::price::BookView>,
) -> Rows {
    let empty;
    let book = if m.costs_at_determination {
        Some(match book {
            Some(b) => b,
            None => {
                empty = crate::price::BookView::new(&Default::default(), 0);
                &empty
            }
        })
    } else {
        None
    };
    rows(
        observations,
        tier,
        suite_hash,
        from_ms,
        to_ms,
        book,
        m.group_price_sources,
    )
}

fn rows<'a>(
    observations: impl IntoIterator<Item = (&'a crate::observation::Observation, &'a [u8; 32])>,
    tier: &str,
    suite_hash: &str,
    from_ms: i64,
    to_ms: i64,
    book: Option<&crate::price::BookView>,
    group_sources: bool,
) -> Rows {
    let kept: Vec<_> = observations
        .into_iter()
        .filter(|(o, _)| {
            o.tier == tier && o.suite_hash == suite_hash && o.at_ms >= from_ms && o.at_ms < to_ms
        })
        .collect();
    let mut endpoints: Vec<String> = kept.iter().map(|(o, _)| o.endpoint.clone()).collect();
    endpoints.sort();
    endpoints.dedup();
    let mut vantages: Vec<String> = kept.iter().filter_map(|(o, _)| o.vantage.clone()).collect();
    vantages.sort();
    vantages.dedup();
    let mut costed_as_observed = 0u64;
    let rows = kept
        .iter()
        .map(|(o, h)| {
            let cost_pusd = match book {
                Some(b) if !o.missed() => match b.in_force(&o.endpoint, o.at_ms) {
                    Some(p) => crate::sit::cost(&o.tokens, p).0,
                    None => {
                        costed_as_observed += 1;
                        o.cost.0
                    }
                },
                _ => o.cost.0,
            };
            IndexObs {
                endpoint: endpoints
                    .binary_search(&o.endpoint)
                    .expect("endpoint in universe") as u32,
                at_ms: o.at_ms,
                cost_pusd,
                delivered_sit: o.delivered_sit,
                attempted_sit: o.sit_size,
                missed: o.missed(),
                succeeded: o.succeeded(),
                correct: o.correct,
                hash: **h,
                vantage: o
                    .vantage
                    .as_ref()
                    .map(|v| vantages.binary_search(v).expect("vantage listed") as u32 + 1)
                    .unwrap_or(0),
            }
        })
        .collect();
    // each endpoint's latest record naming a provider: its provider, weights and list price
    let mut latest: Vec<Option<(i64, &str, &crate::observation::Observation)>> =
        vec![None; endpoints.len()];
    for (o, _) in &kept {
        if o.provider.is_empty() {
            continue;
        }
        let e = endpoints
            .binary_search(&o.endpoint)
            .expect("endpoint in universe");
        let here = (o.at_ms, o.provider.as_str(), *o);
        if latest[e].is_none_or(|l| (here.0, here.1) > (l.0, l.1)) {
            latest[e] = Some(here);
        }
    }
    let mut providers: Vec<String> = latest
        .iter()
        .map(|l| l.map(|(_, p, _)| p.to_string()).unwrap_or_default())
        .collect();
    if group_sources {
        let sources: Vec<Option<(String, crate::price::PriceEntry)>> = latest
            .iter()
            .enumerate()
            .map(|(e, l)| {
                let o = l.as_ref()?.2;
                let weights = o.weights.clone().unwrap_or_else(|| o.model.clone());
                let mut price = match book {
                    Some(b) => b.in_force(&endpoints[e], to_ms - 1).cloned(),
                    None => o.price.clone(),
                }?;
                // the same price is the same rates, whenever each host started charging it
                price.effective_from_ms = 0;
                Some((weights, price))
            })
            .collect();
        providers = chain::price_source_groups(&providers, &sources);
    }
    Rows {
        endpoints,
        providers,
        rows,
        prices: book.map(|b| PricesUsed {
            version: b.version,
            hash: b.hash.clone(),
            costed_as_observed,
            excerpt: b.excerpt.clone(),
        }),
        vantages,
    }
}

/// The window of observations a day's determination reads: the trailing eligibility window
/// before the day and the day itself, `[from_ms, to_ms)`.
pub fn day_window(m: &Methodology, date: Date) -> (i64, i64) {
    (
        date.start_ms() - (m.eligibility_window_hours as i64 - 1) * HOUR_MS,
        date.start_ms() + m.partitions_per_day as i64 * HOUR_MS,
    )
}

/// Everything one (tier, day) computation depends on.
#[derive(Debug, Clone)]
pub struct DayInput<'a> {
    /// The tier's id.
    pub tier: &'a str,
    /// The UTC day to determine.
    pub date: Date,
    /// The tier's pass threshold: eligibility needs at least this share of answered attempts
    /// in the window graded correct.
    pub pass_threshold: Fixed,
    /// Endpoint ids sorted ascending and unique: the total order's tie-breaker.
    pub endpoints: &'a [String],
    /// Each endpoint's provider (same order; empty: each endpoint is its own provider). The
    /// provider cap of 1.3.0 groups by it.
    pub providers: &'a [String],
    /// The vantages [`IndexObs::vantage`] points into (empty without a probe network).
    pub vantages: &'a [String],
    /// Observations of this tier; those outside the window are ignored.
    pub observations: &'a [IndexObs],
    /// The last value set from data (FINAL, RESTATED or BASE) before this day, for
    /// carry-forward.
    pub previous_final: Option<(Date, Fixed)>,
    /// The probe suite the observations were made with (recorded).
    pub suite_hash: &'a str,
    /// The record's sequence number (recorded; see [`Determination::sequence`]).
    pub sequence: u64,
    /// When the caller computed this (recorded, never used in the arithmetic).
    pub computed_at: &'a str,
    /// Chained methodologies: the state the day starts from (None: the chain starts here).
    pub chain: Option<&'a chain::ChainLink>,
    /// 1.4.0 and later: the price book the rows were costed from ([`rows_for`]), recorded.
    pub prices: Option<&'a PricesUsed>,
}

/// A determination's status (serialised in capitals: `FINAL`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// The day set its value from its own data: a settlement value.
    Final,
    /// Too little data for a value: the last value set from data is carried (when there is
    /// one), with the reason.
    Contingency,
    /// A published day's record replaced before the restatement cutoff, with a value set
    /// from data.
    Restated,
    /// Methodology 1.2.0 and later: where a chained index starts (no earlier level: a new data
    /// folder, a new tier), the day's value is the chain's anchor, a statistic of the day's
    /// price *levels*. It is published, signed and chained from like a FINAL value, but it is
    /// not a settlement value: with a panel whose prices span 15-50x, one endpoint more or less
    /// moves an anchor by 10-30% (a level statistic's sensitivity), while a chained day moves
    /// by well under 2%.
    /// A restatement of a base day that is still where the chain starts is BASE again.
    Base,
    /// Methodology 1.3.0 and later: more than `max_contingency_days` CONTINGENCY days in a
    /// row. The record carries the last value set from data for reference; the methodology's
    /// `fallback` says what holds.
    Suspended,
}

impl Status {
    /// The name as serialised: FINAL, CONTINGENCY, RESTATED, BASE, SUSPENDED.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Final => "FINAL",
            Status::Contingency => "CONTINGENCY",
            Status::Restated => "RESTATED",
            Status::Base => "BASE",
            Status::Suspended => "SUSPENDED",
        }
    }

    /// The day set its own value from its own data (FINAL, RESTATED or BASE): the value a
    /// later CONTINGENCY day carries and a chain continues from.
    pub fn sets_value(self) -> bool {
        !matches!(self, Status::Contingency | Status::Suspended)
    }

    /// The value may settle a contract (FINAL or RESTATED; not a CONTINGENCY carry, not the
    /// anchor of a chain).
    pub fn settles(self) -> bool {
        matches!(self, Status::Final | Status::Restated)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Leave-one-provider-out (methodology 1.3.0): the day without every endpoint of a provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaveOneProviderOut {
    /// The provider (from 1.4.0, its price-source group).
    pub provider: String,
    /// Share of the daily value carried by this provider's endpoints (after the cap).
    pub weight: Fixed,
    /// Daily value without this provider minus the daily value; None when the day would not
    /// be FINAL without it.
    pub delta: Option<Fixed>,
}

/// Why an endpoint had no price in a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExclusionReason {
    /// No attempt in this partition.
    NoAttempts,
    /// Fewer than `min_attempts_in_window` attempts in the trailing window.
    InsufficientAttempts,
    /// Availability in the window below the floor.
    LowAvailability,
    /// Quality pass rate in the window below the tier threshold.
    LowQuality,
    /// Attempts in the partition, but none delivered SIT: the price is undefined.
    NoDeliveredSit,
}

/// An endpoint's partitions of the day without a price, for one reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exclusion {
    /// The endpoint's id.
    pub endpoint: String,
    /// Why it had no price.
    pub reason: ExclusionReason,
    /// Number of the day's partitions excluded for this reason.
    pub partitions: u32,
}

/// Leave-one-out: one endpoint's weight in the day's value and the value without it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaveOneOut {
    /// The endpoint's id.
    pub endpoint: String,
    /// Share of the daily value carried by this endpoint.
    pub weight: Fixed,
    /// Daily value without this endpoint minus the daily value; None when the day would not
    /// be FINAL without it.
    pub delta: Option<Fixed>,
}

/// One hourly partition of the day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRecord {
    /// The partition's hour of the day (0-23, UTC).
    pub hour: u32,
    /// Endpoints eligible in it.
    pub eligible: u32,
    /// Prices trimmed from each end (1.0.0; 0 in chained methodologies).
    pub trimmed_each_side: u32,
    /// The partition's price level (1.0.0; `None` when invalid, and in chained
    /// methodologies, whose partitions set no value).
    pub value: Option<Fixed>,
    /// Why the partition is invalid (absent when valid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid_reason: Option<String>,
}

/// How much went into a day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Endpoints with at least one attempt in the day.
    pub endpoints_observed: u32,
    /// Endpoints eligible in at least one partition.
    pub endpoints_eligible: u32,
    /// Attempts in the day (missed probes are not attempts).
    pub attempts: u64,
    /// Observations in the Merkle root: the trailing window's and the day's, missed probes
    /// included.
    pub input_observations: u64,
    /// Partitions of the day.
    pub partitions: u32,
    /// Valid partitions.
    pub valid_partitions: u32,
    /// Scheduled probes of the day never sent (the service was down at their time); omitted
    /// when none, so records made before `sit run` keep their bytes.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub missed: u64,
    /// Probe network days: each vantage's attempts and missed probes of the day (SLA and
    /// latency are judged at the attempt's own vantage; prices pool all vantages). Omitted
    /// without a probe network, so other records keep their bytes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vantages: BTreeMap<String, VantageCounts>,
}

/// One vantage's share of a day's probes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VantageCounts {
    /// Attempts made from the vantage in the day.
    pub attempts: u64,
    /// The vantage's scheduled probes of the day never sent.
    pub missed: u64,
}

fn is_zero(x: &u64) -> bool {
    *x == 0
}

/// Why a day set no value from its own data, and what it carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contingency {
    /// The reason, in words (signed text).
    pub reason: String,
    /// The day of the value carried (`None`: there was none to carry).
    pub carried_from: Option<Date>,
}

/// The determination of one tier for one day (signature fields come with the publisher).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Determination {
    /// The tier's id.
    pub tier: String,
    /// The UTC day.
    pub date: Date,
    /// The day's status.
    pub status: Status,
    /// The value in USD per 1,000,000 SIT: set from the day's data (FINAL, RESTATED, BASE)
    /// or carried (CONTINGENCY, SUSPENDED); `None` when there is nothing to carry.
    pub value: Option<Fixed>,
    /// The methodology's unit.
    pub unit: String,
    /// Why the day set no value from its own data (CONTINGENCY, SUSPENDED).
    pub contingency: Option<Contingency>,
    /// The methodology's version.
    pub methodology_version: String,
    /// The methodology's hash ([`Methodology::hash`]).
    pub methodology_hash: String,
    /// The probe suite's hash.
    pub suite_hash: String,
    /// How much went into the day.
    pub counts: Counts,
    /// Nearest-rank 25th percentile of the endpoints' day prices (cost over delivered SIT in
    /// their priced partitions).
    pub endpoint_price_p25: Option<Fixed>,
    /// Their median.
    pub endpoint_price_p50: Option<Fixed>,
    /// Their 75th percentile.
    pub endpoint_price_p75: Option<Fixed>,
    /// `(p75 - p25) / p50` (`None` without the quartiles or with p50 = 0).
    pub dispersion: Option<Fixed>,
    /// The three largest endpoint weights, summed.
    pub top3_concentration: Fixed,
    /// Partitions without a price, per endpoint and reason.
    pub excluded: Vec<Exclusion>,
    /// Per endpoint eligible at some time of the day, by endpoint id.
    pub leave_one_out: Vec<LeaveOneOut>,
    /// Methodology 1.3.0 and later (absent before, so older records keep their bytes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leave_one_provider_out: Vec<LeaveOneProviderOut>,
    /// The day's partitions, by hour.
    pub partitions: Vec<PartitionRecord>,
    /// Merkle root (hex, [`merkle::root`]) of the observations read, ordered by (send time,
    /// hash).
    pub merkle_root: String,
    /// The publisher's running number of the tier's records (one more than the tier's last).
    pub sequence: u64,
    /// When it was computed (recorded, never used in the arithmetic).
    pub computed_at: String,
    /// Chained methodologies: the chain state, day prices and relatives (absent in 1.0.0, so
    /// 1.0.0 records keep their bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<chain::ChainRecord>,
    /// Methodology 1.4.0 and later: the price book version the day's costs come from (absent
    /// before, so older records keep their bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prices: Option<PricesUsed>,
    /// How far into the publisher's store the determination read: the stored records with a
    /// `seq` below this (records stored later, such as a late vantage's, are not its inputs;
    /// a replay leaves them out). Set by the publisher, never by [`compute_day`]; absent in
    /// records published before it was recorded, so they keep their bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_below_seq: Option<u64>,
    /// Observations of the day voided by an upheld dispute (issue 30): left out of the rows
    /// the day is determined from (and of its Merkle root), so a replay leaves them out too.
    /// Set by the publisher, never by [`compute_day`]; absent when none is, so every record
    /// before it keeps its bytes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub voided: Vec<Voided>,
}

/// One observation left out of a day by an upheld dispute.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Voided {
    /// The observation's record hash (64 hex digits).
    pub observation: String,
    /// The dispute that voided it (`S-000001`).
    pub dispute: String,
}

#[derive(Clone, Copy, Default)]
struct Agg {
    attempts: u32,
    succeeded: u32,
    correct: u32,
    cost: i128,
    delivered: u128,
    attempted: u128,
}

impl Agg {
    fn add(&mut self, o: &Agg) {
        self.attempts += o.attempts;
        self.succeeded += o.succeeded;
        self.correct += o.correct;
        self.cost += o.cost;
        self.delivered += o.delivered;
        self.attempted += o.attempted;
    }
}

/// Trim count for `n` endpoints: floor(trim_fraction * n).
pub fn trim_count(trim_fraction: Fixed, n: usize) -> usize {
    (trim_fraction.0 * n as i128 / ONE) as usize
}

/// Outcome of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionOutcome {
    /// Prices in the partition.
    pub eligible: usize,
    /// Prices trimmed from each end.
    pub trimmed_each_side: usize,
    /// The trimmed mean, or why the partition is invalid.
    pub value: Result<Fixed, String>,
    /// Endpoints kept after trimming.
    pub kept: Vec<u32>,
}

/// The trimmed mean of one partition. `prices` need not be sorted: they are put in the total
/// order (price, endpoint index) here, so ties are broken by endpoint id.
pub fn trimmed_mean(m: &Methodology, prices: &[(Fixed, u32)]) -> PartitionOutcome {
    let mut v = prices.to_vec();
    v.sort_unstable();
    let n = v.len();
    if n < m.min_endpoints as usize {
        return PartitionOutcome {
            eligible: n,
            trimmed_each_side: 0,
            value: Err(format!(
                "FEWER_THAN_MIN_ENDPOINTS: {n} eligible, {} needed",
                m.min_endpoints
            )),
            kept: vec![],
        };
    }
    let k = trim_count(m.trim_fraction, n);
    let kept = &v[k..n - k];
    let mm = kept.len() as i128;
    // equal weights 1/mm; the cap must hold: 1/mm <= max_endpoint_weight
    if ONE > m.max_endpoint_weight.0 * mm {
        return PartitionOutcome {
            eligible: n,
            trimmed_each_side: k,
            value: Err(format!(
                "WEIGHT_CAP: {mm} endpoints after trimming give each more than {}",
                m.max_endpoint_weight
            )),
            kept: vec![],
        };
    }
    let sum: i128 = kept.iter().map(|(p, _)| p.0).sum();
    PartitionOutcome {
        eligible: n,
        trimmed_each_side: k,
        value: Ok(Fixed(div_round_half_even(sum, mm))),
        kept: kept.iter().map(|(_, e)| *e).collect(),
    }
}

/// Time-weighted mean of valid partitions: sum(d_p * x_p) / sum(d_p), durations in hours.
pub fn time_weighted_mean(values: &[(Fixed, u32)]) -> Option<Fixed> {
    let total: i128 = values.iter().map(|(_, d)| *d as i128).sum();
    if total == 0 {
        return None;
    }
    let sum: i128 = values.iter().map(|(v, d)| v.0 * *d as i128).sum();
    Some(Fixed(div_round_half_even(sum, total)))
}

/// Nearest-rank quantile of sorted values: element ceil(q * n) - 1 (q in (0, 1]).
pub fn nearest_rank(sorted: &[Fixed], q: Fixed) -> Option<Fixed> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len() as i128;
    let rank = ((q.0 * n + ONE - 1) / ONE).clamp(1, n);
    Some(sorted[(rank - 1) as usize])
}

struct DayCore {
    partitions: Vec<PartitionOutcome>,
    value: Option<Fixed>,
    valid: usize,
}

fn aggregate(m: &Methodology, eligible: &[Vec<(Fixed, u32)>], exclude: Option<u32>) -> DayCore {
    let mut partitions = Vec::with_capacity(eligible.len());
    let mut vals = Vec::new();
    for prices in eligible {
        let p: Vec<(Fixed, u32)> = match exclude {
            Some(x) => prices.iter().copied().filter(|(_, e)| *e != x).collect(),
            None => prices.clone(),
        };
        let out = trimmed_mean(m, &p);
        if let Ok(v) = out.value {
            vals.push((v, m.partition_hours));
        }
        partitions.push(out);
    }
    let valid = vals.len();
    let value = if valid >= m.min_valid_partitions as usize {
        time_weighted_mean(&vals)
    } else {
        None
    };
    DayCore {
        partitions,
        value,
        valid,
    }
}

/// Compute the determination of `input.tier` for `input.date`.
pub fn compute_day(m: &Methodology, input: &DayInput) -> Determination {
    let e_count = input.endpoints.len();
    let parts = m.partitions_per_day as usize;
    let win = m.eligibility_window_hours as usize;
    let hours = parts + win - 1;
    let day_start = input.date.start_ms();
    let window_start = day_start - (win as i64 - 1) * HOUR_MS;
    let day_end = day_start + parts as i64 * HOUR_MS;

    // 1. buckets [endpoint][hour]
    let mut buckets = vec![Agg::default(); e_count * hours];
    let mut leaves: Vec<(i64, [u8; 32])> = Vec::new();
    let mut attempts_day = 0u64;
    let mut missed_day = 0u64;
    let mut observed = vec![false; e_count];
    let mut per_vantage = vec![VantageCounts::default(); input.vantages.len()];
    for o in input.observations {
        if o.at_ms < window_start || o.at_ms >= day_end || (o.endpoint as usize) >= e_count {
            continue;
        }
        leaves.push((o.at_ms, o.hash));
        let vc = (o.vantage as usize)
            .checked_sub(1)
            .and_then(|i| per_vantage.get_mut(i));
        if o.at_ms >= day_start {
            if let Some(vc) = vc {
                if o.missed {
                    vc.missed += 1;
                } else {
                    vc.attempts += 1;
                }
            }
        }
        if o.missed {
            missed_day += (o.at_ms >= day_start) as u64;
            continue;
        }
        let h = ((o.at_ms - window_start) / HOUR_MS) as usize;
        let b = &mut buckets[o.endpoint as usize * hours + h];
        b.attempts += 1;
        b.succeeded += o.succeeded as u32;
        b.correct += (o.succeeded && o.correct) as u32;
        b.cost += o.cost_pusd;
        b.delivered += o.delivered_sit as u128;
        b.attempted += o.attempted_sit as u128;
        if o.at_ms >= day_start {
            attempts_day += 1;
            observed[o.endpoint as usize] = true;
        }
    }

    // 2. eligibility and partition prices
    let mut eligible: Vec<Vec<(Fixed, u32)>> = vec![Vec::new(); parts];
    let mut excl: BTreeMap<(u32, ExclusionReason), u32> = BTreeMap::new();
    let mut day_agg = vec![Agg::default(); e_count]; // over partitions where priced
                                                     // each priced partition's (cost, attempted SIT), for a time-weighted day price
    let mut hourly: Vec<Vec<(i128, u128)>> = vec![Vec::new(); e_count];
    for e in 0..e_count {
        if !observed[e] {
            continue;
        }
        let row = &buckets[e * hours..(e + 1) * hours];
        for (p, elig) in eligible.iter_mut().enumerate() {
            let hp = win - 1 + p;
            let mut w = Agg::default();
            for b in &row[hp + 1 - win..=hp] {
                w.add(b);
            }
            let part = row[hp];
            let reason = if part.attempts == 0 {
                Some(ExclusionReason::NoAttempts)
            } else if w.attempts < m.min_attempts_in_window {
                Some(ExclusionReason::InsufficientAttempts)
            } else if (w.succeeded as i128) * ONE < m.availability_floor.0 * w.attempts as i128 {
                Some(ExclusionReason::LowAvailability)
            } else if w.succeeded == 0
                || (w.correct as i128) * ONE < input.pass_threshold.0 * w.succeeded as i128
            {
                Some(ExclusionReason::LowQuality)
            } else if part.delivered == 0 {
                Some(ExclusionReason::NoDeliveredSit)
            } else {
                None
            };
            match reason {
                Some(r) => *excl.entry((e as u32, r)).or_default() += 1,
                None => {
                    let price = sit_price(part.cost, part.delivered).expect("delivered > 0");
                    elig.push((price, e as u32));
                    day_agg[e].add(&part);
                    hourly[e].push((part.cost, part.attempted));
                }
            }
        }
    }

    // endpoint day prices and their spread
    let mut day_prices: Vec<Fixed> = day_agg
        .iter()
        .filter_map(|a| sit_price(a.cost, a.delivered))
        .collect();
    day_prices.sort_unstable();
    let q = |x: i128| nearest_rank(&day_prices, Fixed(x));
    let (p25, p50, p75) = (q(250_000_000), q(500_000_000), q(750_000_000));
    let dispersion = match (p25, p50, p75) {
        (Some(a), Some(b), Some(c)) if b.0 > 0 => Some(Fixed::ratio(c.0 - a.0, b.0)),
        _ => None,
    };
    // endpoints that were ever eligible in the day
    let mut ever = vec![false; e_count];
    for p in &eligible {
        for (_, e) in p {
            ever[*e as usize] = true;
        }
    }

    // 3-4. partitions and the day, by the methodology's aggregation
    let v = match &m.chain {
        None => levels_day(m, &eligible, e_count),
        Some(cp) => chained_day(m, cp, input, &eligible, &day_agg, &hourly),
    };
    let mut sorted_w: Vec<Fixed> = v.weights.clone();
    sorted_w.sort_unstable_by(|a, b| b.cmp(a));
    let top3 = Fixed(sorted_w.iter().take(3).map(|w| w.0).sum());
    let leave_one_out: Vec<LeaveOneOut> = (0..e_count)
        .filter(|e| ever[*e])
        .map(|e| LeaveOneOut {
            endpoint: input.endpoints[e].clone(),
            weight: v.weights[e],
            delta: v.deltas[e],
        })
        .collect();

    let base_rules = m.chain.as_ref().is_some_and(|cp| cp.anchor_base);
    let anchor = base_rules
        && v.chain
            .as_ref()
            .is_some_and(|c| c.basis == chain::BASE_LEVELS);
    // The reason is signed text: 1.0.0 and 1.1.0 keep their words; from 1.2.0 the carried
    // value may be a BASE value, so it is not called final.
    let (carried, nothing) = if base_rules {
        ("the last value set from data, that", "value set from data")
    } else {
        ("the final value", "final value")
    };
    let (status, value, contingency) = match v.value {
        Ok(x) if anchor => (Status::Base, Some(x), None),
        Ok(x) => (Status::Final, Some(x), None),
        Err(why) => match input.previous_final {
            Some((d, x))
                if m.max_contingency_days
                    .is_some_and(|n| input.date.0 - d.0 > n as i32) =>
            {
                let n = m.max_contingency_days.expect("checked");
                (
                    Status::Suspended,
                    Some(x),
                    Some(Contingency {
                        reason: format!(
                            "{why}; no value set from data for more than {n} days (the last, of {d}, is carried for reference only): the index is SUSPENDED and the methodology's fallback applies"
                        ),
                        carried_from: Some(d),
                    }),
                )
            }
            Some((d, x)) => (
                Status::Contingency,
                Some(x),
                Some(Contingency {
                    reason: format!("{why}; carried forward {carried} of {d}"),
                    carried_from: Some(d),
                }),
            ),
            None => (
                Status::Contingency,
                None,
                Some(Contingency {
                    reason: format!("{why}; no earlier {nothing} exists to carry forward"),
                    carried_from: None,
                }),
            ),
        },
    };

    leaves.sort_unstable();
    let merkle_root = merkle::root(leaves.iter().map(|(_, h)| *h));

    Determination {
        tier: input.tier.to_string(),
        date: input.date,
        status,
        value,
        unit: m.unit.clone(),
        contingency,
        methodology_version: m.version.clone(),
        methodology_hash: m.hash(),
        suite_hash: input.suite_hash.to_string(),
        counts: Counts {
            endpoints_observed: observed.iter().filter(|x| **x).count() as u32,
            endpoints_eligible: ever.iter().filter(|x| **x).count() as u32,
            attempts: attempts_day,
            input_observations: leaves.len() as u64,
            partitions: parts as u32,
            valid_partitions: v.valid as u32,
            missed: missed_day,
            vantages: input.vantages.iter().cloned().zip(per_vantage).collect(),
        },
        endpoint_price_p25: p25,
        endpoint_price_p50: p50,
        endpoint_price_p75: p75,
        dispersion,
        top3_concentration: top3,
        excluded: excl
            .into_iter()
            .map(|((e, reason), partitions)| Exclusion {
                endpoint: input.endpoints[e as usize].clone(),
                reason,
                partitions,
            })
            .collect(),
        leave_one_out,
        leave_one_provider_out: v.provider_deltas,
        partitions: v.partitions,
        merkle_root,
        sequence: input.sequence,
        computed_at: input.computed_at.to_string(),
        chain: v.chain,
        prices: if m.costs_at_determination {
            input.prices.cloned()
        } else {
            None
        },
        read_below_seq: None,
        voided: Vec::new(),
    }
}

/// The aggregation-specific part of a day.
struct DayValue {
    /// The day's value, or why there is none (the CONTINGENCY reason).
    value: Result<Fixed, String>,
    valid: usize,
    partitions: Vec<PartitionRecord>,
    /// Per endpoint index.
    weights: Vec<Fixed>,
    deltas: Vec<Option<Fixed>>,
    provider_deltas: Vec<LeaveOneProviderOut>,
    chain: Option<chain::ChainRecord>,
}

/// A day's SIT sum as recorded (u64): one endpoint's SIT in a day is far below 2^64; a sum that
/// is not is a corrupted input, not a value to truncate.
fn sit_u64(x: u128) -> u64 {
    u64::try_from(x).expect("one endpoint's SIT in a day fits in u64")
}

fn insufficient(m: &Methodology, valid: usize) -> String {
    format!(
        "only {} of {} partitions valid (minimum {})",
        valid, m.partitions_per_day, m.min_valid_partitions
    )
}

/// Methodology 1.0.0: trimmed mean of partition price levels, time-weighted over the day.
fn levels_day(m: &Methodology, eligible: &[Vec<(Fixed, u32)>], e_count: usize) -> DayValue {
    let core = aggregate(m, eligible, None);
    let mut valid_weights = vec![0i128; e_count];
    for p in core.partitions.iter().filter(|p| p.value.is_ok()) {
        let w = div_round_half_even(ONE, p.kept.len() as i128);
        for e in &p.kept {
            valid_weights[*e as usize] += w;
        }
    }
    let weights: Vec<Fixed> = valid_weights
        .iter()
        .map(|w| {
            if core.valid == 0 {
                Fixed::ZERO
            } else {
                Fixed(div_round_half_even(*w, core.valid as i128))
            }
        })
        .collect();
    let deltas = (0..e_count)
        .map(|e| {
            let without = aggregate(m, eligible, Some(e as u32)).value;
            match (without, core.value) {
                (Some(w), Some(v)) => Some(Fixed(w.0 - v.0)),
                _ => None,
            }
        })
        .collect();
    DayValue {
        provider_deltas: Vec::new(),
        value: core.value.ok_or_else(|| insufficient(m, core.valid)),
        valid: core.valid,
        partitions: core
            .partitions
            .iter()
            .enumerate()
            .map(|(h, p)| PartitionRecord {
                hour: h as u32,
                eligible: p.eligible as u32,
                trimmed_each_side: p.trimmed_each_side as u32,
                value: p.value.as_ref().ok().copied(),
                invalid_reason: p.value.as_ref().err().cloned(),
            })
            .collect(),
        weights,
        deltas,
        chain: None,
    }
}

/// Methodology 1.1: a partition is valid when at least `min_endpoints` endpoints are eligible
/// in it (its value is not computed: the day's value is the chained level); the day needs
/// `min_valid_partitions` valid partitions, then [`chain::chain_day`] sets the value from the
/// endpoints' day prices (eligible partitions only, at least `min_price_partitions` of them).
fn chained_day(
    m: &Methodology,
    cp: &chain::ChainParams,
    input: &DayInput,
    eligible: &[Vec<(Fixed, u32)>],
    day_agg: &[Agg],
    hourly: &[Vec<(i128, u128)>],
) -> DayValue {
    let e_count = input.endpoints.len();
    let mut priced = vec![0u32; e_count];
    for p in eligible {
        for (_, e) in p {
            priced[*e as usize] += 1;
        }
    }
    let partitions: Vec<PartitionRecord> = eligible
        .iter()
        .enumerate()
        .map(|(h, p)| PartitionRecord {
            hour: h as u32,
            eligible: p.len() as u32,
            trimmed_each_side: 0,
            value: None,
            invalid_reason: (p.len() < m.min_endpoints as usize).then(|| {
                format!(
                    "FEWER_THAN_MIN_ENDPOINTS: {} eligible, {} needed",
                    p.len(),
                    m.min_endpoints
                )
            }),
        })
        .collect();
    let valid = partitions
        .iter()
        .filter(|p| p.invalid_reason.is_none())
        .count();
    let start = chain::ChainLink::default();
    let link = input.chain.unwrap_or(&start);
    // 1.2.0: the endpoint's quality window, today included
    let window = |e: usize| -> Option<Vec<chain::QualityDay>> {
        let w = cp.quality_window_days?;
        let first = Date(input.date.0 + 1 - w as i32);
        let earlier = link
            .references
            .binary_search_by(|r| r.endpoint.as_str().cmp(&input.endpoints[e]))
            .ok()
            .map(|i| link.references[i].quality.as_slice())
            .unwrap_or_default();
        Some(
            earlier
                .iter()
                .filter(|q| q.date >= first && q.date < input.date)
                .cloned()
                .chain([chain::QualityDay {
                    date: input.date,
                    delivered_sit: sit_u64(day_agg[e].delivered),
                    attempted_sit: sit_u64(day_agg[e].attempted),
                }])
                .collect(),
        )
    };
    let windows: Vec<Option<Vec<chain::QualityDay>>> = (0..e_count)
        .map(|e| {
            (priced[e] >= cp.min_price_partitions)
                .then(|| window(e))
                .flatten()
        })
        .collect();
    let prices: Vec<Option<(Fixed, u32)>> = (0..e_count)
        .map(|e| {
            if priced[e] < cp.min_price_partitions || day_agg[e].delivered == 0 {
                return None;
            }
            match (&windows[e], cp.time_weighted_day_price) {
                (Some(w), true) => chain::time_weighted_price(&hourly[e], w),
                (None, true) => chain::time_weighted_price(
                    &hourly[e],
                    &[chain::QualityDay {
                        date: input.date,
                        delivered_sit: sit_u64(day_agg[e].delivered),
                        attempted_sit: sit_u64(day_agg[e].attempted),
                    }],
                ),
                (Some(w), false) => {
                    chain::pooled_price(day_agg[e].cost, sit_u64(day_agg[e].attempted), w)
                }
                (None, false) => sit_price(day_agg[e].cost, day_agg[e].delivered),
            }
            .map(|p| (p, priced[e]))
        })
        .collect();
    // Providers as groups (1.3.0's cap): each endpoint's provider, by index in sorted order.
    let provider_of = |e: usize| -> &str {
        match input.providers.get(e) {
            Some(p) if !p.is_empty() => p.as_str(),
            _ => input.endpoints[e].as_str(),
        }
    };
    let provider_names: Vec<&str> = {
        let mut v: Vec<&str> = (0..e_count).map(provider_of).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let groups: Vec<u32> = (0..e_count)
        .map(|e| {
            provider_names
                .binary_search(&provider_of(e))
                .expect("listed") as u32
        })
        .collect();
    let mut day = chain::chain_day(m, cp, link, input.date, input.endpoints, &groups, &prices);
    if cp.quality_window_days.is_some() {
        for dp in &mut day.record.day_prices {
            let e = input
                .endpoints
                .binary_search(&dp.endpoint)
                .expect("a priced endpoint is in the universe");
            let w = windows[e].as_ref().expect("priced under a quality window");
            let (s, a) = w.iter().fold((0u128, 0u128), |(s, a), q| {
                (s + q.delivered_sit as u128, a + q.attempted_sit as u128)
            });
            dp.delivered_sit = Some(sit_u64(day_agg[e].delivered));
            dp.attempted_sit = Some(sit_u64(day_agg[e].attempted));
            dp.pooled_share = Some(Fixed::ratio(s as i128, a as i128));
        }
    }
    let priced_providers = (0..e_count)
        .filter(|&e| prices[e].is_some_and(|(p, _)| p.0 > 0))
        .map(|e| groups[e])
        .collect::<std::collections::BTreeSet<u32>>()
        .len();
    let value = if valid < m.min_valid_partitions as usize {
        Err(insufficient(m, valid))
    } else if m
        .min_providers
        .is_some_and(|n| priced_providers < n as usize)
    {
        Err(format!(
            "FEWER_THAN_MIN_PROVIDERS: {priced_providers} providers with a day price, {} needed",
            m.min_providers.expect("checked")
        ))
    } else {
        day.value.ok_or_else(|| {
            format!(
                "fewer than {} endpoints with a day price (at least {} eligible partitions) and no matched relatives",
                m.min_endpoints, cp.min_price_partitions
            )
        })
    };
    let ok = value.is_ok();
    let mut record = day.record;
    if !ok {
        // A CONTINGENCY day sets no level: its record keeps the starting state and the day
        // prices (for readers), but no mean, no weights and basis `insufficient`.
        record.geometric_mean = None;
        record.basis = "insufficient".into();
        for r in &mut record.relatives {
            r.weight = Fixed::ZERO;
        }
    }
    DayValue {
        value,
        valid,
        partitions,
        weights: if ok {
            day.weights
        } else {
            vec![Fixed::ZERO; e_count]
        },
        deltas: if ok {
            // without an endpoint the day must still have enough valid partitions
            let valid_without = |e: usize| {
                eligible
                    .iter()
                    .filter(|p| {
                        let here = p.iter().any(|(_, x)| *x as usize == e) as usize;
                        p.len() - here >= m.min_endpoints as usize
                    })
                    .count()
            };
            day.deltas
                .iter()
                .enumerate()
                .map(|(e, d)| {
                    (valid_without(e) >= m.min_valid_partitions as usize)
                        .then_some(*d)
                        .flatten()
                })
                .collect()
        } else {
            vec![None; e_count]
        },
        provider_deltas: if ok {
            let valid_without = |g: u32| {
                eligible
                    .iter()
                    .filter(|p| {
                        let here = p.iter().filter(|(_, x)| groups[*x as usize] == g).count();
                        p.len() - here >= m.min_endpoints as usize
                    })
                    .count()
            };
            day.provider_deltas
                .iter()
                .map(|(g, w, d)| LeaveOneProviderOut {
                    provider: provider_names[*g as usize].to_string(),
                    weight: *w,
                    delta: (valid_without(*g) >= m.min_valid_partitions as usize)
                        .then_some(*d)
                        .flatten(),
                })
                .collect()
        } else {
            Vec::new()
        },
        chain: Some(record),
    }
}

#[cfg(test)]
mod tests;
