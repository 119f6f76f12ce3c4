//! Methodology 1.1: a chain-linked, matched-panel index of price relatives.
//!
//! Each endpoint contributes its own price *change*: its day price against its own previous
//! valid day price (its reference). The relatives are put in the total order (relative,
//! endpoint id), `trim_fraction` of them is trimmed from each end with fractional weights at
//! the cut-offs ([`trim_weights`]), and their weighted geometric mean moves the previous level:
//! `level_d = level_prev * G_d`. An endpoint that enters has no
//! reference on its first day, so it cannot move the level; one that leaves simply has no
//! relative; one that was down for hours or days is compared with its last valid price (at most
//! `max_reference_age_days` old). That is how statistical agencies keep an elementary
//! aggregate's level continuous while the panel changes (Jevons index of matched relatives,
//! chain-linked), and why one endpoint's entry, exit or outage no longer swings the value.
//!
//! Everything is integer: relatives are [`Fixed`] ratios rounded half to even; with weights
//! `c_i / D` (small integers: `D = 3k` at the 20% trim), the geometric mean is the integer
//! `D`-th root of the exact product `prod r_i ^ c_i` (a big integer), rounded to the nearest
//! unit of 10^-9 (a tie cannot occur: `(2r + 1)^D` is odd, `2^D * P` is even); the new level is
//! `level * G` rounded half to even at 10^-9.
//!
//! The chain state a day starts from ([`ChainLink`]: the previous level and every endpoint's
//! reference) is written into the day's determination, so a replay needs nothing but the
//! record and its observations, and [`next_link`] derives the next day's state from it.
//!
//! Later versions build on it: 1.2.0 pools each endpoint's delivered share over a quality
//! window ([`pooled_price`]); 1.3.0 caps each provider's weight ([`capped_geometric_mean`]);
//! 1.4.0 counts endpoints selling the same weights at the same list price as one price source
//! ([`price_source_groups`]).

use crate::fixed::{div_round_half_even, Fixed, ONE};
use crate::time::Date;
use num_bigint::BigUint;
use num_traits::{One, ToPrimitive, Zero};
use serde::{Deserialize, Serialize};

/// Parameters of the chained index (present in methodology 1.1 and later).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainParams {
    /// The aggregation, stated in words for readers of the methodology document.
    pub method: String,
    /// A reference older than this many days is not used (the endpoint re-enters).
    pub max_reference_age_days: u32,
    /// An endpoint's day price needs at least this many partitions in which it was eligible.
    pub min_price_partitions: u32,
    /// How the level is anchored where a chain starts.
    pub base: String,
    /// 1.2.0: an endpoint's day price pools its delivered share (delivered SIT / attempted
    /// SIT) over its priced days in this many trailing days, today included (see
    /// [`pooled_price`]). Absent in 1.1.0 (the share of the day alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality_window_days: Option<u32>,
    /// 1.2.0: the anchor day where a chain starts is published with status BASE (not a
    /// settlement value). Absent (false) in 1.1.0, whose anchor days are FINAL.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub anchor_base: bool,
    /// 1.5.0: an endpoint's day price is time-weighted, the mean over its eligible
    /// partitions of each partition's cost per attempted SIT (each partition is one hour, so
    /// the mean is weighted by duration), over the pooled delivered share
    /// ([`time_weighted_price`]), instead of the day's summed cost over its summed SIT.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub time_weighted_day_price: bool,
}

/// One priced day of an endpoint in the quality window: its delivered and attempted SIT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QualityDay {
    /// The day.
    pub date: Date,
    /// SIT delivered in the partitions where the endpoint was priced.
    pub delivered_sit: u64,
    /// SIT attempted in those partitions (the probes' sizes, delivered or not).
    pub attempted_sit: u64,
}

/// An endpoint's reference: its last valid day price and that day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    /// The endpoint's id.
    pub endpoint: String,
    /// Its last valid day price, USD per 1,000,000 SIT.
    pub price: Fixed,
    /// The day of that price.
    pub date: Date,
    /// 1.2.0: the endpoint's priced days still inside the quality window, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quality: Vec<QualityDay>,
}

/// The chain state a day starts from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainLink {
    /// The previous level (absent where the chain starts).
    pub level: Option<Fixed>,
    /// The day that set it.
    pub level_date: Option<Date>,
    /// References, sorted by endpoint id.
    pub references: Vec<Reference>,
}

/// One endpoint's day price: cost over delivered SIT in the partitions where it was eligible.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayPrice {
    /// The endpoint's id.
    pub endpoint: String,
    /// The day price, USD per 1,000,000 SIT.
    pub price: Fixed,
    /// Partitions in which the endpoint was eligible (and so priced).
    pub partitions: u32,
    /// 1.2.0: the day's delivered SIT in those partitions (the next day's quality window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_sit: Option<u64>,
    /// 1.2.0: the day's attempted SIT in those partitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempted_sit: Option<u64>,
    /// 1.2.0: the delivered share pooled over the quality window that `price` used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pooled_share: Option<Fixed>,
}

/// One endpoint's relative: day price / reference price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relative {
    /// The endpoint's id.
    pub endpoint: String,
    /// Day price / reference price.
    pub relative: Fixed,
    /// The reference's day.
    pub reference_date: Date,
    /// Its weight in the geometric mean (0 when trimmed; a fraction at the cut-offs).
    pub weight: Fixed,
}

/// What a chained day records besides the common determination fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainRecord {
    /// The state the day started from.
    pub link: ChainLink,
    /// Every endpoint with a day price (the next day's references), by endpoint id.
    pub day_prices: Vec<DayPrice>,
    /// Matched relatives, in the total order (relative, endpoint id).
    pub relatives: Vec<Relative>,
    /// The trimmed geometric mean of the relatives (absent on a base day).
    pub geometric_mean: Option<Fixed>,
    /// How the value was set: `chained`, `base_carried` (too few matched relatives: the
    /// previous level carries and the references restart) or `base_levels` (no previous level:
    /// the trimmed geometric mean of the day prices).
    pub basis: String,
}

/// An endpoint's day price with its delivered share pooled over the quality window (1.2.0):
/// with today's cost `C` (pico-USD), delivered `S` and attempted `A` SIT, and the window's
/// sums `S_w`, `A_w` (today included), the price is `(C / A) / (S_w / A_w)`: today's cost per
/// attempted SIT over the pooled share, in USD per 1,000,000 SIT, computed as one exact
/// rational `C * 1000 * A_w / (A * S_w)` rounded half to even at 10^-9. With a window of the
/// day alone it is exactly the 1.1.0 day price `C * 1000 / S`. Why: the share an endpoint
/// delivers is a sample (72 probes a day at t3 with pass rates of 0.6-0.9 move it by 5-10% from
/// day to day), and in a relative that sampling noise, not the market, made the largest
/// leave-one-out effects; pooled over 7 days the relative keeps one-seventh of it, while a
/// lasting change of quality still passes into the chained level in full within the window
/// (the quality factors of successive relatives telescope).
pub fn pooled_price(cost_pusd: i128, attempted: u64, window: &[QualityDay]) -> Option<Fixed> {
    let s_w: u128 = window.iter().map(|q| q.delivered_sit as u128).sum();
    let a_w: u128 = window.iter().map(|q| q.attempted_sit as u128).sum();
    if attempted == 0 || s_w == 0 {
        return None;
    }
    // Checked: a product past i128 is refused (no price) rather than wrapped. Realistic sums
    // stay near 1e26, far below i128's 1.7e38.
    let num = cost_pusd
        .checked_mul(1000)?
        .checked_mul(i128::try_from(a_w).ok()?)?;
    let den = (attempted as i128).checked_mul(i128::try_from(s_w).ok()?)?;
    Some(Fixed(div_round_half_even(num, den)))
}

/// The time-weighted day price ([`ChainParams::time_weighted_day_price`]): with each eligible
/// partition's cost `C_h` and attempted SIT `A_h`, and the window's sums `S_w`, `A_w`, the
/// price is `mean_h(C_h / A_h) / (S_w / A_w)` in USD per 1,000,000 SIT: each hourly term
/// `C_h * 1000 / A_h` is kept at 10^-18 (rounded half to even), then
/// `sum_h(term) * A_w / (n * 10^9 * S_w)` is rounded half to even at 10^-9. `None` without a partition, or with no SIT delivered in the
/// window.
pub fn time_weighted_price(hours: &[(i128, u128)], window: &[QualityDay]) -> Option<Fixed> {
    let s_w: u128 = window.iter().map(|q| q.delivered_sit as u128).sum();
    let a_w: u128 = window.iter().map(|q| q.attempted_sit as u128).sum();
    if hours.is_empty() || s_w == 0 || hours.iter().any(|(_, a)| *a == 0) {
        return None;
    }
    const L: i128 = 1_000_000_000;
    let mut sum: i128 = 0;
    for (c, a) in hours {
        let a = i128::try_from(*a).ok()?;
        sum = sum.checked_add(div_round_half_even(c.checked_mul(1000 * L)?, a))?;
    }
    let num = sum.checked_mul(i128::try_from(a_w).ok()?)?;
    let den = (hours.len() as i128)
        .checked_mul(L)?
        .checked_mul(i128::try_from(s_w).ok()?)?;
    Some(Fixed(div_round_half_even(num, den)))
}

/// `basis` of a chain's anchor day (its status is BASE).
pub const BASE_LEVELS: &str = "base_levels";

/// Nearest integer to the `k`-th root of `p` (k >= 1). No ties exist (see the module doc).
pub(crate) fn nth_root_nearest(p: &BigUint, k: u32) -> BigUint {
    if k == 1 || p.is_zero() {
        return p.clone();
    }
    let r = p.nth_root(k); // floor
                           // round up iff p > (r + 1/2)^k  <=>  2^k p > (2r + 1)^k
    let lhs = p << k as usize;
    let rhs = (r.clone() * 2u32 + 1u32).pow(k);
    if lhs > rhs {
        r + 1u32
    } else {
        r
    }
}

/// The geometric mean of positive fixed-point values, rounded to the nearest 10^-9.
pub fn geometric_mean(values: &[Fixed]) -> Option<Fixed> {
    if values.is_empty() || values.iter().any(|v| v.0 <= 0) {
        return None;
    }
    let mut p = BigUint::one();
    for v in values {
        p *= BigUint::from(v.0 as u128);
    }
    let g = nth_root_nearest(&p, values.len() as u32);
    Some(Fixed(g.to_i128().expect("the mean of i128 values fits")))
}

/// The weights of a fractionally trimmed mean of `n` ordered values: element `i` covers
/// `[i, i + 1)` and keeps its overlap with the span `[t, n - t]`, `t = trim * n`, so the
/// elements at the cut-offs keep a fraction of a weight (as in the Cleveland Fed's trimmed-mean
/// CPI). Removing one value then moves the cut-offs by `trim` of an element, not by a whole
/// one. Returns integer numerators over a common denominator, reduced; `None` when nothing is
/// kept or the reduced denominator would exceed 100,000 (a trim fraction with many digits).
pub fn trim_weights(trim: Fixed, n: usize) -> Option<(Vec<u64>, u64)> {
    let t = trim.0 * n as i128;
    let top = n as i128 * ONE - t;
    let c: Vec<i128> = (0..n as i128)
        .map(|i| ((i + 1) * ONE).min(top) - (i * ONE).max(t))
        .map(|x| x.max(0))
        .collect();
    let d: i128 = c.iter().sum();
    if d <= 0 {
        return None;
    }
    let g = c.iter().fold(d, |a, b| gcd(a, *b));
    let (c, d): (Vec<u64>, u64) = (c.iter().map(|x| (x / g) as u64).collect(), (d / g) as u64);
    (d <= 100_000).then_some((c, d))
}

fn gcd(a: i128, b: i128) -> i128 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The fractionally trimmed geometric mean of values already in the total order:
/// `(prod x_i ^ c_i) ^ (1 / D)` with the weights `c_i / D` of [`trim_weights`], the root taken
/// to the nearest 10^-9. `None` with fewer than `min` values, when a weight would exceed the
/// cap, or a value is not positive. Also returns each position's weight.
pub fn trimmed_geometric_mean(
    sorted: &[Fixed],
    trim: Fixed,
    min: usize,
    cap: Fixed,
) -> Option<(Fixed, Vec<Fixed>)> {
    let n = sorted.len();
    if n < min.max(1) || sorted.iter().any(|v| v.0 <= 0) {
        return None;
    }
    let (c, d) = trim_weights(trim, n)?;
    weighted_mean(sorted, &c, d, cap)
}

/// `(prod x_i ^ c_i) ^ (1 / d)` to the nearest 10^-9, with each weight `c_i / d`; `None` when
/// a weight exceeds `cap`.
fn weighted_mean(sorted: &[Fixed], c: &[u64], d: u64, cap: Fixed) -> Option<(Fixed, Vec<Fixed>)> {
    let max = *c.iter().max()?;
    if (max as i128) * ONE > cap.0 * d as i128 {
        return None;
    }
    let mut p = BigUint::one();
    for (v, e) in sorted.iter().zip(c) {
        if *e > 0 {
            p *= BigUint::from(v.0 as u128).pow(*e as u32);
        }
    }
    let g = nth_root_nearest(&p, d as u32);
    let weights = c
        .iter()
        .map(|e| Fixed::ratio(*e as i128, d as i128))
        .collect();
    Some((
        Fixed(g.to_i128().expect("the mean of i128 values fits")),
        weights,
    ))
}

/// Units of the capped weights (methodology 1.3.0): weights are whole ten-thousandths once a
/// provider cap binds, so the exact root stays small (a 10,000th root).
pub const CAP_UNITS: u64 = 10_000;

/// Split `total` units over `shares` in proportion, largest remainder first (ties to the
/// lower position): the parts sum to `total` exactly.
fn apportion(total: u64, shares: &[u64]) -> Vec<u64> {
    let sum: u128 = shares.iter().map(|x| *x as u128).sum();
    if sum == 0 {
        return vec![0; shares.len()];
    }
    let mut parts: Vec<u64> = shares
        .iter()
        .map(|x| (*x as u128 * total as u128 / sum) as u64)
        .collect();
    let mut left = total - parts.iter().sum::<u64>();
    let mut order: Vec<usize> = (0..shares.len()).collect();
    order.sort_by_key(|&i| {
        (
            std::cmp::Reverse(shares[i] as u128 * total as u128 % sum),
            i,
        )
    });
    for i in order {
        if left == 0 {
            break;
        }
        if shares[i] > 0 {
            parts[i] += 1;
            left -= 1;
        }
    }
    parts
}

/// Price sources (methodology 1.4.0): endpoints of one provider are one source, and so are
/// endpoints serving the same weights at the same list price (one open model at one
/// catalogue price behind several hosts is one price, however many hosts resell it); the
/// relation is closed transitively. `providers[e]` is endpoint `e`'s provider (empty: its
/// own), `sources[e]` its (weights, list price in force) when known. Returns each endpoint's
/// group label: its members' providers, sorted, unique, joined by `+` (an endpoint with no
/// provider keeps an empty label, which the cap reads as the endpoint itself).
pub fn price_source_groups(
    providers: &[String],
    sources: &[Option<(String, crate::price::PriceEntry)>],
) -> Vec<String> {
    let n = providers.len();
    let mut parent: Vec<usize> = (0..n).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let join = |parent: &mut Vec<usize>, a: usize, b: usize| {
        let (ra, rb) = (root(parent, a), root(parent, b));
        if ra != rb {
            parent[ra.max(rb)] = ra.min(rb);
        }
    };
    for a in 0..n {
        for b in a + 1..n {
            let same_provider = !providers[a].is_empty() && providers[a] == providers[b];
            let same_price = !providers[a].is_empty()
                && !providers[b].is_empty()
                && sources[a].is_some()
                && sources[a] == sources[b];
            if same_provider || same_price {
                join(&mut parent, a, b);
            }
        }
    }
    let mut members: std::collections::BTreeMap<usize, std::collections::BTreeSet<&str>> =
        Default::default();
    for (e, p) in providers.iter().enumerate() {
        if !p.is_empty() {
            let r = root(&mut parent, e);
            members.entry(r).or_default().insert(p.as_str());
        }
    }
    (0..n)
        .map(|e| {
            if providers[e].is_empty() {
                return String::new();
            }
            let r = root(&mut parent, e);
            members[&r].iter().copied().collect::<Vec<_>>().join("+")
        })
        .collect()
}

/// Cap each group's (provider's) total weight at `cap` (methodology 1.3.0): `c / d` are the
/// trimmed weights by position, `group[i]` the position's group. Returns `Err` when fewer than
/// `min_groups` groups keep weight (no value), `Ok(None)` when no group exceeds the cap (the
/// weights stand as they are), else the capped weights in [`CAP_UNITS`]: each group over the
/// cap is brought down to it (its members keeping their proportions), the excess going to the
/// other groups in proportion to their weights, until no group exceeds the cap.
pub fn cap_groups(
    c: &[u64],
    d: u64,
    group: &[u32],
    cap: Fixed,
    min_groups: u32,
) -> Result<Option<Vec<u64>>, String> {
    let groups: std::collections::BTreeMap<u32, u128> =
        c.iter()
            .zip(group)
            .fold(Default::default(), |mut m, (x, g)| {
                *m.entry(*g).or_default() += *x as u128;
                m
            });
    let kept = groups.values().filter(|x| **x > 0).count();
    if kept < min_groups as usize {
        return Err(format!(
            "FEWER_THAN_MIN_PROVIDERS: {kept} providers carry weight, {min_groups} needed"
        ));
    }
    if groups
        .values()
        .all(|g| g * ONE as u128 <= cap.0 as u128 * d as u128)
    {
        return Ok(None);
    }
    let cap_u = (cap.0 as u128 * CAP_UNITS as u128 / ONE as u128) as u64;
    let mut u = apportion(CAP_UNITS, c);
    let mut capped = std::collections::BTreeSet::new();
    loop {
        let total = |u: &[u64], g: u32| -> u64 {
            u.iter()
                .zip(group)
                .filter(|(_, x)| **x == g)
                .map(|(v, _)| *v)
                .sum()
        };
        let over: Vec<u32> = groups
            .keys()
            .copied()
            .filter(|g| !capped.contains(g) && total(&u, *g) > cap_u)
            .collect();
        if over.is_empty() {
            return Ok(Some(u));
        }
        let mut excess = 0u64;
        for g in over {
            let idx: Vec<usize> = (0..u.len()).filter(|&i| group[i] == g).collect();
            excess += total(&u, g) - cap_u;
            let parts = apportion(cap_u, &idx.iter().map(|&i| u[i]).collect::<Vec<_>>());
            for (k, &i) in idx.iter().enumerate() {
                u[i] = parts[k];
            }
            capped.insert(g);
        }
        let free: Vec<usize> = (0..u.len())
            .filter(|&i| !capped.contains(&group[i]))
            .collect();
        let add = apportion(excess, &free.iter().map(|&i| u[i]).collect::<Vec<_>>());
        if add.iter().sum::<u64>() < excess {
            // nowhere to put it: the cap cannot hold with these groups
            return Err(format!(
                "PROVIDER_CAP_INFEASIBLE: {} providers cannot each stay within {cap}",
                groups.len()
            ));
        }
        for (k, &i) in free.iter().enumerate() {
            u[i] += add[k];
        }
    }
}

/// [`trimmed_geometric_mean`] with a provider cap (methodology 1.3.0): `groups[i]` is the
/// sorted position's provider; `provider` is (cap, min providers).
///
/// The cap applies to the weights that enter the trimmed mean: every position starts with
/// weight 1; a provider holding more than `cap` of the total is brought down to `cap` (its
/// positions keeping equal shares) and the excess goes to the others pro rata
/// ([`cap_groups`], in [`CAP_UNITS`]). The trim then removes `trim` of the total weight from
/// each end (element `i` covers its span of the cumulative weight and keeps its overlap with
/// `[t, W - t]`), as the unweighted fractional trim does with equal weights. With no provider
/// over the cap this is exactly [`trimmed_geometric_mean`]. `None` with fewer than `min`
/// values or `min providers` providers, or when a kept weight exceeds `endpoint_cap`.
pub fn capped_geometric_mean(
    sorted: &[Fixed],
    groups: &[u32],
    trim: Fixed,
    min: usize,
    endpoint_cap: Fixed,
    provider: Option<(Fixed, u32)>,
) -> Option<(Fixed, Vec<Fixed>)> {
    let Some((cap, min_groups)) = provider else {
        return trimmed_geometric_mean(sorted, trim, min, endpoint_cap);
    };
    let n = sorted.len();
    if n < min.max(1) || sorted.iter().any(|v| v.0 <= 0) {
        return None;
    }
    let u = match cap_groups(&vec![1; n], n as u64, groups, cap, min_groups) {
        Err(_) => return None,
        Ok(None) => return trimmed_geometric_mean(sorted, trim, min, endpoint_cap),
        Ok(Some(u)) => u,
    };
    let total = CAP_UNITS as i128;
    let t = trim.0 * total / ONE;
    let mut cum = 0i128;
    let kept: Vec<i128> = u
        .iter()
        .map(|x| {
            let (lo, hi) = (cum, cum + *x as i128);
            cum = hi;
            (hi.min(total - t) - lo.max(t)).max(0)
        })
        .collect();
    let d: i128 = kept.iter().sum();
    if d <= 0 {
        return None;
    }
    let g = kept.iter().fold(d, |a, b| gcd(a, *b));
    let (c, d): (Vec<u64>, u64) = (
        kept.iter().map(|x| (x / g) as u64).collect(),
        (d / g) as u64,
    );
    weighted_mean(sorted, &c, d, endpoint_cap)
}

/// `level * g`, rounded half to even at 10^-9.
pub fn scale(level: Fixed, g: Fixed) -> Fixed {
    Fixed(div_round_half_even(level.0 * g.0, ONE))
}

/// The outcome of a chained day (before the common determination fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChainDay {
    pub value: Option<Fixed>,
    pub record: ChainRecord,
    /// Per endpoint index: weight in the value (1/kept for kept relatives, else 0).
    pub weights: Vec<Fixed>,
    /// Per endpoint index: the value without it minus the value (None: no value without it).
    pub deltas: Vec<Option<Fixed>>,
    /// With a provider cap (1.3.0): per provider index, its total weight and the value
    /// without all its endpoints minus the value.
    pub provider_deltas: Vec<(u32, Fixed, Option<Fixed>)>,
}

/// Compute a chained day. `prices[e]` is endpoint `e`'s day price with its partition count
/// (already filtered by `min_price_partitions`); `ids[e]` its id. The day is assumed
/// sufficient (enough valid partitions): the caller decides CONTINGENCY before.
///
/// A day price must be positive (a geometric mean has no place for 0): a zero price is left
/// out as if the endpoint had none. Leave-one-out deltas are the whole day recomputed without
/// the endpoint, base rules included (None when that leaves no value).
pub(crate) fn chain_day(
    m: &super::Methodology,
    p: &ChainParams,
    link: &ChainLink,
    date: Date,
    ids: &[String],
    groups: &[u32],
    prices: &[Option<(Fixed, u32)>],
) -> ChainDay {
    let prices: Vec<Option<(Fixed, u32)>> =
        prices.iter().map(|x| x.filter(|(v, _)| v.0 > 0)).collect();
    let mut day = chain_core(m, p, link, date, ids, groups, &prices);
    let Some(v) = day.value else {
        return day;
    };
    let without = |drop: &dyn Fn(usize) -> bool| -> Option<Fixed> {
        let rest: Vec<Option<(Fixed, u32)>> = (0..ids.len())
            .map(|e| if drop(e) { None } else { prices[e] })
            .collect();
        chain_core(m, p, link, date, ids, groups, &rest)
            .value
            .map(|w| Fixed(w.0 - v.0))
    };
    day.deltas = (0..ids.len())
        .map(|e| {
            if prices[e].is_none() {
                return Some(Fixed::ZERO);
            }
            without(&|x| x == e)
        })
        .collect();
    if m.max_provider_weight.is_some() {
        let provs: std::collections::BTreeSet<u32> = (0..ids.len())
            .filter(|&e| prices[e].is_some())
            .map(|e| groups[e])
            .collect();
        day.provider_deltas = provs
            .into_iter()
            .map(|g| {
                let w: i128 = (0..ids.len())
                    .filter(|&e| groups[e] == g)
                    .map(|e| day.weights[e].0)
                    .sum();
                (g, Fixed(w), without(&|x| groups[x] == g))
            })
            .collect();
    }
    day
}

/// [`chain_day`] without the leave-one-out deltas (all None).
fn chain_core(
    m: &super::Methodology,
    p: &ChainParams,
    link: &ChainLink,
    date: Date,
    ids: &[String],
    groups: &[u32],
    prices: &[Option<(Fixed, u32)>],
) -> ChainDay {
    let provider = m
        .max_provider_weight
        .map(|cap| (cap, m.min_providers.unwrap_or(1)));
    let n = ids.len();
    let min = m.min_endpoints as usize;
    let day_prices: Vec<DayPrice> = (0..n)
        .filter_map(|e| {
            prices[e].map(|(price, partitions)| DayPrice {
                endpoint: ids[e].clone(),
                price,
                partitions,
                delivered_sit: None,
                attempted_sit: None,
                pooled_share: None,
            })
        })
        .collect();
    // matched relatives against fresh references
    let oldest = Date(date.0 - p.max_reference_age_days as i32);
    let mut rel: Vec<(Fixed, u32, Date)> = (0..n)
        .filter_map(|e| {
            let (price, _) = prices[e]?;
            let r = link
                .references
                .binary_search_by(|r| r.endpoint.as_str().cmp(&ids[e]))
                .ok()
                .map(|i| &link.references[i])?;
            (r.date >= oldest && r.date < date && r.price.0 > 0)
                .then(|| (Fixed::ratio(price.0, r.price.0), e as u32, r.date))
        })
        .collect();
    rel.sort_unstable();
    let sorted: Vec<Fixed> = rel.iter().map(|r| r.0).collect();
    let rel_groups: Vec<u32> = rel.iter().map(|r| groups[r.1 as usize]).collect();
    let chained = link.level.and_then(|_| {
        capped_geometric_mean(
            &sorted,
            &rel_groups,
            m.trim_fraction,
            min,
            m.max_endpoint_weight,
            provider,
        )
    });
    let mut weights = vec![Fixed::ZERO; n];
    let deltas: Vec<Option<Fixed>> = vec![None; n];
    let mut rel_weights = vec![Fixed::ZERO; rel.len()];
    let (value, geo, basis) = match (chained, link.level) {
        (Some((g, w)), Some(level)) => {
            let v = scale(level, g);
            for (r, x) in rel.iter().zip(&w) {
                weights[r.1 as usize] = *x;
            }
            rel_weights = w;
            (Some(v), Some(g), "chained")
        }
        (_, Some(level)) if day_prices.len() >= min => (Some(level), None, "base_carried"),
        (_, None) if day_prices.len() >= min => {
            let mut lv: Vec<(Fixed, u32)> = (0..n)
                .filter_map(|e| prices[e].map(|(x, _)| (x, e as u32)))
                .collect();
            lv.sort_unstable();
            let sorted_lv: Vec<Fixed> = lv.iter().map(|x| x.0).collect();
            let lv_groups: Vec<u32> = lv.iter().map(|x| groups[x.1 as usize]).collect();
            match capped_geometric_mean(
                &sorted_lv,
                &lv_groups,
                m.trim_fraction,
                min,
                m.max_endpoint_weight,
                provider,
            ) {
                Some((g, w)) => {
                    for (x, wx) in lv.iter().zip(&w) {
                        weights[x.1 as usize] = *wx;
                    }
                    (Some(g), None, BASE_LEVELS)
                }
                None => (None, None, "insufficient"),
            }
        }
        _ => (None, None, "insufficient"),
    };
    let relatives = rel
        .iter()
        .enumerate()
        .map(|(i, (r, e, d))| Relative {
            endpoint: ids[*e as usize].clone(),
            relative: *r,
            reference_date: *d,
            weight: rel_weights[i],
        })
        .collect();
    ChainDay {
        value,
        record: ChainRecord {
            link: link.clone(),
            day_prices,
            relatives,
            geometric_mean: geo,
            basis: basis.into(),
        },
        weights,
        deltas,
        provider_deltas: Vec::new(),
    }
}

/// The state the next day starts from. A day that set a value (FINAL or RESTATED) moves the
/// level and refreshes the references of every endpoint it priced (references older than
/// `max_reference_age_days` are dropped); a CONTINGENCY day passes its own starting state on
/// unchanged, so the next valid day's relatives span the gap.
pub fn next_link(
    p: &ChainParams,
    record: &ChainRecord,
    date: Date,
    value: Option<Fixed>,
    set_value: bool,
) -> ChainLink {
    if !set_value {
        return record.link.clone();
    }
    let oldest = Date(date.0 + 1 - p.max_reference_age_days as i32);
    let previous = |e: &str| {
        record
            .link
            .references
            .binary_search_by(|r| r.endpoint.as_str().cmp(e))
            .ok()
            .map(|i| &record.link.references[i])
    };
    let mut refs: Vec<Reference> = record
        .link
        .references
        .iter()
        .filter(|r| !record.day_prices.iter().any(|d| d.endpoint == r.endpoint))
        .cloned()
        .chain(record.day_prices.iter().map(|d| {
            Reference {
                endpoint: d.endpoint.clone(),
                price: d.price,
                date,
                // only a methodology with a quality window carries one
                quality: match (p.quality_window_days, d.delivered_sit, d.attempted_sit) {
                    (Some(_), Some(s), Some(a)) => previous(&d.endpoint)
                        .map(|r| r.quality.clone())
                        .unwrap_or_default()
                        .into_iter()
                        .chain([QualityDay {
                            date,
                            delivered_sit: s,
                            attempted_sit: a,
                        }])
                        .collect(),
                    _ => vec![],
                },
            }
        }))
        .filter(|r| r.date >= oldest)
        .collect();
    // keep the quality days the next day's window can still use: [next - w + 1, next - 1]
    // (none without a window: a 1.1.0 chain never carries them)
    let first = match p.quality_window_days {
        Some(w) => Date(date.0 + 2 - w as i32),
        None => Date(i32::MAX),
    };
    for r in &mut refs {
        r.quality.retain(|q| q.date >= first);
    }
    refs.sort_by(|a, b| a.endpoint.cmp(&b.endpoint));
    ChainLink {
        level: value,
        level_date: Some(date),
        references: refs,
    }
}

/// The chain state a day starts from, given the determination in force of the latest earlier
/// day of its tier (None: the chain starts). A chained record hands on [`next_link`]; a record
/// made without a chain (1.0.0) hands on its last final value with no references (a FINAL or
/// RESTATED day its own value, a CONTINGENCY day the value it carried and where from).
pub fn link_after(p: &ChainParams, previous: Option<&super::Determination>) -> ChainLink {
    use super::Status;
    let Some(d) = previous else {
        return ChainLink::default();
    };
    match &d.chain {
        Some(rec) => next_link(p, rec, d.date, d.value, d.status.sets_value()),
        None => {
            let from = match d.status {
                Status::Contingency => d.contingency.as_ref().and_then(|c| c.carried_from),
                _ => Some(d.date),
            };
            let value = from.and(d.value);
            ChainLink {
                level: value,
                level_date: value.and(from),
                references: vec![],
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Methodology 1.3.0 golden: a provider over the cap is brought down to it, its members
    /// keeping their proportions, the excess going to the others pro rata; a cap that does
    /// not bind changes nothing; too few providers give no value.
    #[test]
    fn golden_provider_cap() {
        let cap = Fixed(250_000_000);
        // six equal weights, three of them one provider's (half the weight)
        let u = cap_groups(&[1; 6], 6, &[0, 0, 0, 1, 2, 3], cap, 4)
            .unwrap()
            .unwrap();
        assert_eq!(u, vec![834, 833, 833, 2500, 2500, 2500]);
        assert_eq!(u.iter().sum::<u64>(), CAP_UNITS);
        // every provider alone: no group exceeds 1/4 of six equal weights
        assert_eq!(
            cap_groups(&[1; 6], 6, &[0, 1, 2, 3, 4, 5], cap, 4),
            Ok(None)
        );
        // exactly at the cap does not bind
        assert_eq!(
            cap_groups(&[1; 8], 8, &[0, 0, 1, 1, 2, 2, 3, 3], cap, 4),
            Ok(None)
        );
        // three providers cannot satisfy a minimum of four
        let e = cap_groups(&[1; 6], 6, &[0, 0, 1, 1, 2, 2], cap, 4).unwrap_err();
        assert!(e.starts_with("FEWER_THAN_MIN_PROVIDERS: 3"), "{e}");
        // trimmed weights (zero at the ends) do not count as weight
        let e = cap_groups(&[0, 1, 1, 1, 1, 0], 4, &[9, 0, 1, 2, 2, 3], cap, 4).unwrap_err();
        assert!(e.starts_with("FEWER_THAN_MIN_PROVIDERS: 3"), "{e}");
    }

    #[test]
    fn golden_provider_cap_through_a_chained_day() {
        let m = super::super::Methodology::v1_3_0();
        let cp = m.chain.clone().unwrap();
        let l = link(8, 1_000_000_000, "2026-01-04");
        // Three endpoints of one provider moved +10%; five others (five providers) 0%.
        let p = prices(&[
            Some(1_100_000_000),
            Some(1_100_000_000),
            Some(1_100_000_000),
            Some(1_000_000_000),
            Some(1_000_000_000),
            Some(1_000_000_000),
            Some(1_000_000_000),
            Some(1_000_000_000),
        ]);
        let day = d("2026-01-05");
        let grouped = chain_day(&m, &cp, &l, day, &ids(8), &[0, 0, 0, 1, 2, 3, 4, 5], &p);
        let alone = chain_day(&m, &cp, &l, day, &ids(8), &[0, 1, 2, 3, 4, 5, 6, 7], &p);
        let (vg, va) = (grouped.value.unwrap(), alone.value.unwrap());
        // Alone: 3 of 8 equal weights moved, trimmed 1.6 each side: (1.1)^(1.4/4.8) (Python
        // Decimal: 1.0281887945...).
        assert_eq!(va, Fixed(1_028_188_795));
        // Capped: the provider weighs 1/4 before the trim (others 3/20 each); the trim takes
        // 1/5 of the weight from each end, all of it from the +10% end's first 0.2: the kept
        // +10% weight is 0.05 of 0.6, so the value moves by (1.1)^(1/12).
        assert_eq!(vg, Fixed(1_007_974_140));
        let w0: i128 = grouped.weights[..3].iter().map(|w| w.0).sum();
        assert_eq!(Fixed(w0), Fixed::ratio(1, 12));
        // leave-one-provider-out: six providers, the +10% one's delta brings it back to 1
        assert_eq!(grouped.provider_deltas.len(), 6);
        let (g, w, delta) = grouped.provider_deltas[0];
        assert_eq!((g, w), (0, Fixed(w0)));
        assert_eq!(delta, Some(Fixed(1_000_000_000 - vg.0)));
        // Fewer than four providers: no chained value (the level carries).
        let few = chain_day(&m, &cp, &l, day, &ids(8), &[0, 0, 0, 1, 1, 2, 2, 2], &p);
        assert_eq!(few.record.basis, "base_carried");
    }

    #[test]
    fn nth_root_rounds_to_nearest() {
        let b = |x: u128| BigUint::from(x);
        assert_eq!(nth_root_nearest(&b(27), 3), b(3));
        assert_eq!(nth_root_nearest(&b(26), 3), b(3)); // 2.962
        assert_eq!(nth_root_nearest(&b(42), 3), b(3)); // 3.476 -> 3
        assert_eq!(nth_root_nearest(&b(43), 3), b(4)); // 3.503 -> 4
        assert_eq!(nth_root_nearest(&b(2), 2), b(1)); // 1.414
        assert_eq!(nth_root_nearest(&b(3), 2), b(2)); // 1.732
        assert_eq!(nth_root_nearest(&b(0), 5), b(0));
    }

    #[test]
    fn geometric_mean_golden() {
        // sqrt(1.000000000 * 1.210000000) = 1.1 exactly
        assert_eq!(
            geometric_mean(&[Fixed(1_000_000_000), Fixed(1_210_000_000)]),
            Some(Fixed(1_100_000_000))
        );
        // (1.01 * 0.99 * 1.02)^(1/3) = 1.00658915435126244... (Python decimal, 50 digits)
        assert_eq!(
            geometric_mean(&[
                Fixed(1_010_000_000),
                Fixed(990_000_000),
                Fixed(1_020_000_000)
            ]),
            Some(Fixed(1_006_589_154))
        );
        assert_eq!(geometric_mean(&[]), None);
        assert_eq!(geometric_mean(&[Fixed(0)]), None);
    }

    // Golden vectors of methodology 1.1 (index-methodology.md section 5): a panel of six endpoints
    // a..f whose references are all 1.000000000 of 2026-01-04, level 1.000000000.
    use crate::index::Methodology;

    fn d(s: &str) -> Date {
        Date::parse(s).unwrap()
    }
    fn ids(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| ((b'a' + i as u8) as char).to_string())
            .collect()
    }
    fn link(n: usize, level: i128, date: &str) -> ChainLink {
        ChainLink {
            level: Some(Fixed(level)),
            level_date: Some(d("2026-01-04")),
            references: ids(n)
                .into_iter()
                .map(|e| Reference {
                    endpoint: e,
                    price: Fixed(ONE),
                    date: d(date),
                    quality: vec![],
                })
                .collect(),
        }
    }
    fn prices(v: &[Option<i128>]) -> Vec<Option<(Fixed, u32)>> {
        v.iter().map(|p| p.map(|x| (Fixed(x), 24))).collect()
    }
    fn run(l: &ChainLink, n: usize, p: &[Option<i128>]) -> ChainDay {
        let m = Methodology::v1_1_0();
        let cp = m.chain.clone().unwrap();
        let groups: Vec<u32> = (0..n as u32).collect();
        chain_day(&m, &cp, l, d("2026-01-05"), &ids(n), &groups, &prices(p))
    }

    #[test]
    fn golden_common_move_and_ties_broken_by_endpoint_id() {
        // every price +10%: trim 1 each side of 6, G = 1.1, level 1.1; no endpoint matters
        let c = run(&link(6, ONE, "2026-01-04"), 6, &[Some(1_100_000_000); 6]);
        assert_eq!(c.value, Some(Fixed(1_100_000_000)));
        assert_eq!(c.record.basis, "chained");
        assert!(c.deltas.iter().all(|x| *x == Some(Fixed::ZERO)));
        // ties: a and b at 1.0, c d e at 1.2 (f missing): the order (relative, id) trims a
        // (first of the 1.0s) and e (last of the 1.2s); G = (1.0 * 1.2 * 1.2)^(1/3)
        let c = run(
            &link(6, ONE, "2026-01-04"),
            6,
            &[
                Some(ONE),
                Some(ONE),
                Some(1_200_000_000),
                Some(1_200_000_000),
                Some(1_200_000_000),
                None,
            ],
        );
        assert_eq!(c.record.geometric_mean, Some(Fixed(1_129_243_235)));
        let kept: Vec<(&str, bool)> = c
            .record
            .relatives
            .iter()
            .map(|r| (r.endpoint.as_str(), r.weight.0 > 0))
            .collect();
        assert_eq!(
            kept,
            [
                ("a", false),
                ("b", true),
                ("c", true),
                ("d", true),
                ("e", false)
            ]
        );
        assert_eq!(c.weights[1], Fixed(333_333_333));
        assert_eq!(c.weights[0], Fixed::ZERO);
    }

    #[test]
    fn golden_fractional_trim_at_the_cut_offs() {
        // 6 relatives: t = 1.2, weights 0, 0.8, 1, 1, 0.8, 0 (x5: 0 4 5 5 4 0 over 18):
        // (0.95^4 * 1.00^5 * 1.05^5 * 1.10^4)^(1/18) = 1.023608729 (Python decimal, 80 digits)
        assert_eq!(
            trim_weights(Fixed(200_000_000), 6),
            Some((vec![0, 4, 5, 5, 4, 0], 18))
        );
        let c = run(
            &link(6, ONE, "2026-01-04"),
            6,
            &[
                Some(900_000_000),
                Some(950_000_000),
                Some(ONE),
                Some(1_050_000_000),
                Some(1_100_000_000),
                Some(1_300_000_000),
            ],
        );
        assert_eq!(c.record.geometric_mean, Some(Fixed(1_023_608_729)));
        assert_eq!(c.weights[1], Fixed(222_222_222)); // 4/18
        assert_eq!(c.weights[2], Fixed(277_777_778)); // 5/18
                                                      // without the 1.30: t = 1.0 exactly, kept 0.95 1.00 1.05: 0.999165971
        assert_eq!(c.deltas[5], Some(Fixed(999_165_971 - 1_023_608_729)));
        assert_eq!(
            trim_weights(Fixed(200_000_000), 5),
            Some((vec![0, 1, 1, 1, 0], 3))
        );
        assert_eq!(trim_weights(Fixed(500_000_000), 4), None);
    }

    #[test]
    fn golden_exit_and_rounding_of_the_level() {
        // f leaves: 5 relatives d .95 c 1.00 a 1.05 b 1.10 e 1.20, trim 1 each side,
        // G = (1.00 * 1.05 * 1.10)^(1/3) = 1.049205749; level 0.5 * G = 0.5246028745 -> even
        let c = run(
            &link(6, 500_000_000, "2026-01-04"),
            6,
            &[
                Some(1_050_000_000),
                Some(1_100_000_000),
                Some(ONE),
                Some(950_000_000),
                Some(1_200_000_000),
                None,
            ],
        );
        assert_eq!(c.record.geometric_mean, Some(Fixed(1_049_205_749)));
        assert_eq!(c.value, Some(Fixed(524_602_874)));
        // any further removal leaves 4 < min_endpoints: no value without it
        assert_eq!(c.deltas[0], None);
        assert_eq!(c.deltas[5], Some(Fixed::ZERO)); // f: no relative, no effect
    }

    #[test]
    fn golden_entry_has_no_effect_until_its_second_day() {
        let base = [Some(1_100_000_000); 6];
        let mut with_g = base.to_vec();
        with_g.push(Some(5 * ONE)); // g enters at 5x the others' level
        let l = link(6, ONE, "2026-01-04");
        let a = run(&l, 6, &base);
        let b = run(&l, 7, &with_g);
        assert_eq!(a.value, b.value);
        assert_eq!(b.deltas[6], Some(Fixed::ZERO));
        assert_eq!(b.weights[6], Fixed::ZERO);
        assert_eq!(b.record.relatives.len(), 6);
        // the next day starts with g's reference, dated the entry day
        let cp = Methodology::v1_1_0().chain.unwrap();
        let next = next_link(&cp, &b.record, d("2026-01-05"), b.value, true);
        let g = next.references.iter().find(|r| r.endpoint == "g").unwrap();
        assert_eq!((g.price, g.date), (Fixed(5 * ONE), d("2026-01-05")));
        assert_eq!(next.level, Some(Fixed(1_100_000_000)));
    }

    #[test]
    fn golden_outage_uses_the_last_valid_price_up_to_seven_days() {
        // references of 2026-01-01 (4 days old) still match; of 2025-12-28 (8 days) do not
        let fresh = run(&link(6, ONE, "2026-01-01"), 6, &[Some(1_100_000_000); 6]);
        assert_eq!(fresh.record.relatives.len(), 6);
        let stale = run(&link(6, ONE, "2025-12-28"), 6, &[Some(1_100_000_000); 6]);
        assert!(stale.record.relatives.is_empty());
        // no matched relative: the level carries and the references restart
        assert_eq!(stale.value, Some(Fixed(ONE)));
        assert_eq!(stale.record.basis, "base_carried");
        // a CONTINGENCY day passes its starting state on unchanged
        let cp = Methodology::v1_1_0().chain.unwrap();
        assert_eq!(
            next_link(&cp, &fresh.record, d("2026-01-05"), None, false),
            link(6, ONE, "2026-01-01")
        );
    }

    #[test]
    fn golden_chain_start_is_the_trimmed_geometric_mean_of_levels() {
        // no previous level: prices 0.1 0.2 0.4 0.8 1.6 3.2 (trim 1 each side):
        // (0.2 * 0.4 * 0.8 * 1.6)^(1/4) = 0.565685425 (sqrt(0.32))
        let p: Vec<Option<i128>> = [100, 200, 400, 800, 1600, 3200]
            .iter()
            .map(|x| Some(x * 1_000_000))
            .collect();
        let c = run(&ChainLink::default(), 6, &p);
        assert_eq!(c.record.basis, "base_levels");
        assert_eq!(c.value, Some(Fixed(565_685_425)));
    }

    #[test]
    fn regression_a_zero_day_price_is_left_out_not_freezing_the_level() {
        // review of issue 17: one endpoint priced at 0 made the geometric mean fail
        let mut p = vec![Some(0i128)];
        p.extend([Some(1_100_000_000); 7]);
        let c = run(&link(8, ONE, "2026-01-04"), 8, &p);
        assert_eq!(
            (c.record.basis.as_str(), c.value),
            ("chained", Some(Fixed(1_100_000_000)))
        );
        assert_eq!(c.deltas[0], Some(Fixed::ZERO));
    }

    #[test]
    fn regression_leave_one_out_recomputes_the_whole_day_base_rules_included() {
        // five matched a..e and an entrant f, all +10%: without a, only 4 relatives remain,
        // so the day would carry the level (1.0): delta -0.1, not None
        let mut l = link(5, ONE, "2026-01-04");
        l.references.truncate(5);
        let c = run(&l, 6, &[Some(1_100_000_000); 6]);
        assert_eq!(c.value, Some(Fixed(1_100_000_000)));
        assert_eq!(c.deltas[0], Some(Fixed(-100_000_000)));
        assert_eq!(c.deltas[5], Some(Fixed::ZERO)); // the entrant
    }

    fn q(date: &str, s: u64, a: u64) -> QualityDay {
        QualityDay {
            date: Date::parse(date).unwrap(),
            delivered_sit: s,
            attempted_sit: a,
        }
    }

    /// Golden vectors of methodology 1.2.0's pooled-quality day price (index-methodology.md section 4).
    #[test]
    fn golden_pooled_price() {
        // the day alone: exactly 1.1.0's cost over delivered SIT
        let today = q("2026-01-06", 300, 400);
        assert_eq!(
            pooled_price(1_000_000_000, 400, std::slice::from_ref(&today)),
            Some(Fixed(3_333_333_333))
        );
        assert_eq!(
            pooled_price(1_000_000_000, 400, std::slice::from_ref(&today)),
            crate::fixed::sit_price(1_000_000_000, 300)
        );
        // pooled with yesterday: 1e9 * 1000 * 800 / (400 * 660)
        let two = [q("2026-01-05", 360, 400), today.clone()];
        assert_eq!(
            pooled_price(1_000_000_000, 400, &two),
            Some(Fixed(3_030_303_030))
        );
        // half to even: 62.5 -> 62, 187.5 -> 188 (units of 10^-9)
        let w = [q("2026-01-06", 16, 16)];
        assert_eq!(pooled_price(1, 16, &w), Some(Fixed(62)));
        assert_eq!(pooled_price(3, 16, &w), Some(Fixed(188)));
        // nothing delivered in the window, or nothing attempted today: no price
        assert_eq!(pooled_price(5, 16, &[q("2026-01-06", 0, 16)]), None);
        assert_eq!(pooled_price(5, 0, &w), None);
    }

    /// 1.2.0: a day appends its (delivered, attempted) to the references of the endpoints it
    /// priced and keeps only the days the next day's 7-day window can use.
    #[test]
    fn next_link_carries_the_quality_window_and_drops_what_falls_out() {
        let mut cp = Methodology::v1_2_0().chain.unwrap();
        let date = Date::parse("2026-01-10").unwrap();
        let record = ChainRecord {
            link: ChainLink {
                level: Some(Fixed(ONE)),
                level_date: Some(Date(date.0 - 1)),
                references: vec![Reference {
                    endpoint: "a".into(),
                    price: Fixed(ONE),
                    date: Date(date.0 - 1),
                    // 6 and 5 days before today: the next day's window is [d - 5, d + 1]
                    quality: vec![q("2026-01-04", 1, 2), q("2026-01-05", 3, 4)],
                }],
            },
            day_prices: vec![DayPrice {
                endpoint: "a".into(),
                price: Fixed(2 * ONE),
                partitions: 24,
                delivered_sit: Some(5),
                attempted_sit: Some(6),
                pooled_share: Some(Fixed(ONE)),
            }],
            relatives: vec![],
            geometric_mean: None,
            basis: "chained".into(),
        };
        let next = next_link(&cp, &record, date, Some(Fixed(ONE)), true);
        assert_eq!(
            next.references[0].quality,
            vec![q("2026-01-05", 3, 4), q("2026-01-10", 5, 6)]
        );
        assert_eq!(next.references[0].price, Fixed(2 * ONE));
        // 1.1.0 records no quality window: its references keep their old bytes
        cp.quality_window_days = None;
        let mut r11 = record.clone();
        r11.link.references[0].quality.clear();
        r11.day_prices[0].delivered_sit = None;
        r11.day_prices[0].attempted_sit = None;
        let next = next_link(&cp, &r11, date, Some(Fixed(ONE)), true);
        assert!(next.references[0].quality.is_empty());
        let json = serde_json::to_string(&next.references[0]).unwrap();
        assert!(!json.contains("quality"), "{json}");
    }

    /// 1.1.0's parameters serialise exactly as before 1.2.0 added optional members (its hash,
    /// which every published 1.1.0 record names, must not move).
    #[test]
    fn regression_v1_1_0_parameters_keep_their_bytes() {
        let v = serde_json::to_value(Methodology::v1_1_0()).unwrap();
        let chain = v["chain"].as_object().unwrap();
        let keys: Vec<&str> = chain.keys().map(|k| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "base",
                "max_reference_age_days",
                "method",
                "min_price_partitions"
            ]
        );
        assert_eq!(
            Methodology::v1_1_0().hash(),
            "4163508155dcb18361739311ec9cc9e226cd6a0da31e6680359971bbc0c7c54e"
        );
    }
}
