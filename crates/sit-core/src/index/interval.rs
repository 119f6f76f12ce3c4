//! The uncertainty of a day's value: a 95% interval from a deterministic bootstrap over the
//! day's probes, so anyone reproduces it from the day's audit bundle.
//!
//! A value rests on a sample of probes: had other prompts been drawn at other instants, it
//! would have come out a little different. The bootstrap estimates by how much. Each resample
//! redraws, **within each stratum** (an endpoint's observations of one UTC hour at one
//! vantage), as many observations as the stratum holds, uniformly with replacement; so every
//! endpoint keeps its attempts per hour, and eligibility, validity and the trim see samples of
//! the shape the day had. The day is then determined again by the kernel itself
//! ([`super::compute_day`], the same chain link and prices), and the values of the resamples
//! set from data (BASE, FINAL) are sorted. The interval is
//! `[v[floor(0.025 (k - 1))], v[ceil(0.975 (k - 1))]]` of those `k` values. A resample that
//! is not set from data (too few valid partitions) counts in `not_set` and gives no value.
//!
//! Why hours and not the whole day: an endpoint's price enters every hourly partition, and a
//! resample that moved probes between hours left partitions without the endpoint (measured on
//! the demo: blocks of 4 hours left 106 of 200 t3 resamples not set from data). The price of
//! that choice: a stratum with one probe cannot vary. The interval says how many strata hold
//! one (`single`); probe more than once an hour per endpoint (`--per-hour`) for an interval
//! that measures the sampling.
//!
//! Determinism: the draws come from SplitMix64 seeded with the first 8 bytes (little-endian)
//! of blake3("sit-interval/1", seed, tier, date), where `seed` is the day's revealed schedule
//! seed; an index into `n` items is the high 64 bits of `draw * n` (128-bit product). Strata
//! are taken in (endpoint, vantage, hour) order and their observations in (time, hash)
//! order, so the input's order does not matter.
//! Integers throughout: the values are the kernel's own fixed-point results.
//!
//! `sit-interval/2` adds each endpoint's **delivered share** of the day (delivered SIT over
//! attempted SIT of its attempts sent in the day: what a buyer of that endpoint got for what it
//! asked) with the same order statistics over the same resamples' shares; a resample in which
//! an endpoint made no attempt of the day gives it no draw.

use super::{compute_day, DayInput, IndexObs, Methodology, Status};
use crate::fixed::Fixed;
use crate::time::HOUR_MS;
use std::collections::BTreeMap;

/// Resamples per day (`k` is at most this).
pub const RESAMPLES: u32 = 200;

/// The method, as a signed interval document names it.
pub const METHOD: &str = "sit-interval/2: 95%, 200 bootstrap resamples stratified by endpoint, vantage and hour, each determined by the kernel; SplitMix64 seeded from blake3 of the day's revealed schedule seed, tier and date; bounds the 2.5% and 97.5% order statistics of the resamples set from data; each endpoint's delivered share of the day with the same order statistics of every resample's share";

/// The method of the first signed interval documents (2026-12-07), which state no shares.
pub const METHOD_1: &str = "sit-interval/1: 95%, 200 bootstrap resamples stratified by endpoint, vantage and hour, each determined by the kernel; SplitMix64 seeded from blake3 of the day's revealed schedule seed, tier and date; bounds the 2.5% and 97.5% order statistics of the resamples set from data";

/// A day's value with its bootstrap interval.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Interval {
    /// Always `0.95`.
    pub level: Fixed,
    /// The lower bound (`None`: no resample was set from data).
    pub low: Option<Fixed>,
    /// The upper bound.
    pub high: Option<Fixed>,
    /// Resamples drawn.
    pub resamples: u32,
    /// Resamples not set from data (no value).
    pub not_set: u32,
    /// Strata (endpoint, vantage, hour) with observations.
    pub strata: u32,
    /// Of them, strata holding one observation: they cannot vary, so a day probed once an
    /// hour per endpoint has an interval that shows only what retries and failures add (its
    /// width understates the sampling uncertainty; the count says by how much to distrust it).
    pub single: u32,
    /// `sit-interval/2`: each endpoint's delivered share of the day (delivered over attempted
    /// SIT of its attempts sent in the day) with the 95% interval of the same resamples, by
    /// endpoint id. Absent in `sit-interval/1` documents.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub shares: BTreeMap<String, Share>,
}

/// An endpoint's delivered share of the day and its bootstrap interval.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Share {
    /// Delivered SIT over attempted SIT of the day's attempts (9 places, half to even).
    pub share: Fixed,
    /// The 2.5% order statistic of the resamples' shares.
    pub low: Fixed,
    /// The 97.5% order statistic.
    pub high: Fixed,
}

/// Each endpoint's delivered share of the day in `obs` (attempts sent in the day only).
fn shares_of(input: &DayInput, obs: &[IndexObs]) -> BTreeMap<u32, Fixed> {
    let (from, to) = (
        input.date.start_ms(),
        input.date.start_ms() + crate::time::DAY_MS,
    );
    let mut sums: BTreeMap<u32, (i128, i128)> = BTreeMap::new();
    for o in obs {
        if o.missed || o.at_ms < from || o.at_ms >= to {
            continue;
        }
        let e = sums.entry(o.endpoint).or_default();
        e.0 += o.delivered_sit as i128;
        e.1 += o.attempted_sit as i128;
    }
    sums.into_iter()
        .filter(|(_, (_, a))| *a > 0)
        .map(|(e, (d, a))| {
            (
                e,
                Fixed(crate::fixed::div_round_half_even(d * 1_000_000_000, a)),
            )
        })
        .collect()
}

/// The order statistics of a 95% interval over `k` sorted values: positions
/// `floor(0.025 (k - 1))` and `ceil(0.975 (k - 1))`.
fn bounds<T: Copy>(sorted: &[T]) -> Option<(T, T)> {
    let k = sorted.len();
    (k > 0).then(|| {
        (
            sorted[(25 * (k - 1)) / 1000],
            sorted[(975 * (k - 1)).div_ceil(1000)],
        )
    })
}

/// SplitMix64 (Steele, Lea, Flood 2014): small, fast, and specified in a dozen lines, so an
/// auditor in another language reproduces the draws.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// An index in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        ((self.next() as u128 * n as u128) >> 64) as usize
    }
}

fn rng(seed: &str, tier: &str, date: crate::time::Date) -> SplitMix64 {
    let mut h = blake3::Hasher::new();
    for part in [
        "sit-interval/1".as_bytes(),
        seed.as_bytes(),
        tier.as_bytes(),
        date.to_string().as_bytes(),
    ] {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part);
    }
    let b = h.finalize();
    SplitMix64(u64::from_le_bytes(
        b.as_bytes()[..8].try_into().expect("8 bytes"),
    ))
}

/// The 95% interval of the value `input` determines under `m`, from `resamples` bootstrap
/// resamples drawn from `seed` (the day's revealed schedule seed).
pub fn interval(m: &Methodology, input: &DayInput, seed: &str, resamples: u32) -> Interval {
    // strata: (endpoint, vantage, hour) -> observation positions
    let mut strata: BTreeMap<(u32, u32, i64), Vec<usize>> = BTreeMap::new();
    for (i, o) in input.observations.iter().enumerate() {
        strata
            .entry((o.endpoint, o.vantage, o.at_ms.div_euclid(HOUR_MS)))
            .or_default()
            .push(i);
    }
    // each stratum in a total order of its own (time, then hash), whatever the input's order
    for members in strata.values_mut() {
        let obs = input.observations;
        members.sort_unstable_by_key(|&i| (obs[i].at_ms, obs[i].hash));
    }
    let mut r = rng(seed, input.tier, input.date);
    let mut values = Vec::with_capacity(resamples as usize);
    let mut not_set = 0;
    let mut drawn: Vec<IndexObs> = Vec::with_capacity(input.observations.len());
    let mut share_draws: BTreeMap<u32, Vec<Fixed>> = BTreeMap::new();
    for _ in 0..resamples {
        drawn.clear();
        for members in strata.values() {
            for _ in 0..members.len() {
                drawn.push(input.observations[members[r.below(members.len())]].clone());
            }
        }
        for (e, v) in shares_of(input, &drawn) {
            share_draws.entry(e).or_default().push(v);
        }
        let d = compute_day(
            m,
            &DayInput {
                observations: &drawn,
                ..input.clone()
            },
        );
        match (d.status, d.value) {
            (Status::Base | Status::Final, Some(v)) => values.push(v),
            _ => not_set += 1,
        }
    }
    values.sort_unstable();
    let (low, high) = bounds(&values).unzip();
    // an endpoint's draws: one per resample in which it attempted in the day
    let shares = shares_of(input, input.observations)
        .into_iter()
        .filter_map(|(e, share)| {
            let mut v = share_draws.remove(&e)?;
            v.sort_unstable();
            let (low, high) = bounds(&v)?;
            Some((
                input.endpoints.get(e as usize)?.clone(),
                Share { share, low, high },
            ))
        })
        .collect();
    Interval {
        level: Fixed(950_000_000),
        low,
        high,
        resamples,
        not_set,
        strata: strata.len() as u32,
        single: strata.values().filter(|m| m.len() == 1).count() as u32,
        shares,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_is_the_published_sequence() {
        // the reference implementation's first outputs from seed 0
        let mut r = SplitMix64(0);
        assert_eq!(r.next(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(r.next(), 0x06C4_5D18_8009_454F);
        // indices stay in range, and every index comes up
        let mut seen = [false; 7];
        for _ in 0..1000 {
            seen[r.below(7)] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }
}
