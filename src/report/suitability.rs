//! `sit report suitability`: is the index readily susceptible to manipulation, and does it
//! measure what it says (CFTC Part 38 Appendix C; CF Benchmarks' suitability analyses)? From
//! the archive over a period, per tier: the panel's size and concentration day by day, the
//! dispersion of prices, the leave-one-out and leave-one-provider-out sensitivities, each
//! provider's **influence** (how far it can move a value by its own prices alone, and how much
//! it must change them to move the value by a contract tick or by 1%), how often days were
//! CONTINGENCY, SUSPENDED or restated, the index against a plain list-price average of its
//! panel, the width of the signed 95% intervals, and each probe family's difficulty with the
//! families out of their tier's band flagged. Every figure is set against a threshold the
//! methodology states ([`THRESHOLDS`], index-methodology.md section 15).
//!
//! Influence is measured by recomputation, never by formula: the day's own rows (as its
//! publisher read them, from its audit bundle) with one provider's costs scaled by a factor
//! `k` (its list prices times `k`: a cost is tokens times prices, so the scaled cost is the
//! cost the scaled prices give, rounded half to even to the pico-dollar) are determined again
//! by the kernel itself ([`sit_core::index::compute_day`]). A day's value does not fall when
//! one provider's prices rise (a trimmed mean of relatives or levels, with weights that do not
//! depend on the prices, is nondecreasing in each of them), and once the provider's relative
//! leaves the trimmed range a further change moves nothing: the largest move is where the
//! value levels off. It is searched over factors from 1/1000 to 1000 (the first factor that
//! reaches it is reported); the change needed for a target move is found by bisection between
//! the two factors of the search that bracket it.
//!
//! The distributions, the influence and the thresholds are over the days that settle (FINAL,
//! RESTATED): a BASE day is the chain's anchor, a level statistic whose sensitivity is not a
//! settlement value's (methodology section 8), listed in the day table but not counted.
//!
//! Figures about the settlement path (values, moves, shares) are fixed point; the family
//! difficulty statistics (Wilson intervals, a one-parameter item-response fit) and the charts
//! are analytics, in floating point, and settle nothing.

use super::doc::{Block, Doc, Section};
use super::statement::{concentration, Concentration};
use crate::audit::bundle::DayParts;
use serde::Serialize;
use sit_core::fixed::{div_round_half_even, Fixed};
use sit_core::index::interval::Interval;
use sit_core::index::{compute_day, nearest_rank, Determination, Methodology, Status};
use sit_core::time::Date;
use std::collections::{BTreeMap, BTreeSet};

const ONE: i128 = 1_000_000_000;

/// A threshold the methodology states for a suitability figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threshold {
    /// The figure's id (the JSON's `checks[].id`).
    pub id: &'static str,
    /// What the figure is, in words.
    pub figure: &'static str,
    /// `true`: the figure must be at most `limit`; `false`: at least.
    pub at_most: bool,
    /// The limit, as a decimal.
    pub limit: &'static str,
}

/// The thresholds of methodology section 15, in its order (a test checks the two agree).
pub const THRESHOLDS: &[Threshold] = &[
    Threshold {
        id: "hhi_max",
        figure: "largest daily HHI of the providers' weights (0-10,000)",
        at_most: true,
        limit: "2500",
    },
    Threshold {
        id: "top1_max",
        figure: "largest daily weight of one provider (the provider cap)",
        at_most: true,
        limit: "0.25",
    },
    Threshold {
        id: "sources_min",
        figure: "fewest price sources carrying weight on a day that settles",
        at_most: false,
        limit: "4",
    },
    Threshold {
        id: "loo_p95",
        figure: "p95 of the largest leave-one-out move of a day, share of its value",
        at_most: true,
        limit: "0.01",
    },
    Threshold {
        id: "lopo_p95",
        figure: "p95 of the largest leave-one-provider-out move of a day, share of its value",
        at_most: true,
        limit: "0.02",
    },
    Threshold {
        id: "influence_max",
        figure: "largest move of a value one provider can cause by its own prices alone, share of the value",
        at_most: true,
        limit: "0.05",
    },
    Threshold {
        id: "change_for_1pct_min",
        figure: "smallest change of one provider's own prices that moves a value by 1%",
        at_most: false,
        limit: "0.05",
    },
    Threshold {
        id: "contingency_share",
        figure: "share of days CONTINGENCY",
        at_most: true,
        limit: "0.05",
    },
    Threshold {
        id: "suspended_days",
        figure: "days SUSPENDED",
        at_most: true,
        limit: "0",
    },
    Threshold {
        id: "restated_share",
        figure: "share of days restated",
        at_most: true,
        limit: "0.05",
    },
    Threshold {
        id: "interval_width_p95",
        figure: "p95 of the signed 95% interval's width, share of the value",
        at_most: true,
        limit: "0.10",
    },
    Threshold {
        id: "families_out_of_band",
        figure: "probe families out of their tier's band",
        at_most: true,
        limit: "0",
    },
];

/// What a day is recomputed from: its bundle's rows, methodology and suite.
#[derive(Debug, Clone)]
pub struct Recompute {
    pub parts: DayParts,
    pub methodology: Methodology,
    pub suite_hash: String,
}

/// One (tier, day) as the report reads it.
#[derive(Debug, Clone)]
pub struct DayIn {
    /// The version in force (the last published).
    pub determination: Determination,
    /// Versions published.
    pub versions: u32,
    /// Its signed 95% interval, when its bundle carries one.
    pub interval: Option<Interval>,
    /// From its audit bundle, when the folder has one holding this version.
    pub recompute: Option<Recompute>,
}

/// Answered and correct attempts of one (tier, family, endpoint) in the period.
pub type FamilyCounts = BTreeMap<(String, String, String), (u64, u64)>;

/// What the report is written from.
pub struct Inputs<'a> {
    pub from: Date,
    pub to: Date,
    /// Tier ids in the suite's order (lowest first), with their families.
    pub tiers: Vec<(String, Vec<String>)>,
    /// Per tier, per date.
    pub days: BTreeMap<String, BTreeMap<Date, DayIn>>,
    /// Per tier: the smallest tick of its contracts (USD per 1M SIT).
    pub ticks: BTreeMap<String, Fixed>,
    pub families: FamilyCounts,
    /// Where the figures come from, for the report's first section.
    pub source: &'a str,
}

/// p50, p95 and max of a figure over days (nearest rank).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dist {
    pub n: usize,
    pub p50: Option<Fixed>,
    pub p95: Option<Fixed>,
    pub max: Option<Fixed>,
}

impl Dist {
    fn of(mut v: Vec<Fixed>) -> Dist {
        v.sort();
        Dist {
            n: v.len(),
            p50: nearest_rank(&v, Fixed(500_000_000)),
            p95: nearest_rank(&v, Fixed(950_000_000)),
            max: v.last().copied(),
        }
    }
}

/// One provider's influence on one day's value, by recomputation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Influence {
    /// The provider (from methodology 1.4.0, its price-source group).
    pub provider: String,
    /// Its published weight in the day's value.
    pub weight: Fixed,
    /// The largest rise of the value it can cause (a share of the value) and the price factor
    /// that causes it.
    pub max_up: Fixed,
    pub max_up_factor: Fixed,
    /// The largest fall (a negative share) and its factor.
    pub max_down: Fixed,
    pub max_down_factor: Fixed,
    /// The smallest change of its prices (a share: 0.05 = 5% dearer; negative: cheaper) that
    /// moves the value by one contract tick up, or down; `None`: no change of its prices can.
    pub tick_up: Option<Fixed>,
    pub tick_down: Option<Fixed>,
    /// The same for a move of 1% of the value.
    pub pct_up: Option<Fixed>,
    pub pct_down: Option<Fixed>,
}

/// One (tier, day)'s figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayFigures {
    pub date: Date,
    pub status: Status,
    pub versions: u32,
    pub value: Option<Fixed>,
    pub dispersion: Option<Fixed>,
    pub endpoints_observed: u32,
    pub endpoints_eligible: u32,
    pub valid_partitions: u32,
    /// Providers (price sources) carrying weight.
    pub price_sources: usize,
    pub concentration: Option<Concentration>,
    /// The largest |leave-one-out delta| and |leave-one-provider-out delta|, shares of the
    /// value.
    pub loo_max: Option<Fixed>,
    pub lopo_max: Option<Fixed>,
    /// The signed interval's width, a share of the value.
    pub interval_width: Option<Fixed>,
    /// The plain average over the panel's endpoints of their list-price cost per attempted
    /// SIT in the day (USD per 1M SIT): no quality, delivery, trim, cap or chain.
    pub list_average: Option<Fixed>,
    /// The kernel, run again on the bundle's rows, gives the published value.
    pub recomputed: Option<bool>,
    pub influence: Vec<Influence>,
}

/// One provider's influence over the period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderSummary {
    pub provider: String,
    pub days: usize,
    /// The largest |move| it could cause on any day (share of the value).
    pub max_move: Fixed,
    /// The smallest |change of its prices| that moved a value by a tick / by 1%, over days
    /// and directions (`None`: none could).
    pub min_change_for_tick: Option<Fixed>,
    pub min_change_for_1pct: Option<Fixed>,
}

/// One tier's figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TierFigures {
    pub tier: String,
    pub tick: Option<Fixed>,
    pub days: Vec<DayFigures>,
    pub status_days: BTreeMap<String, usize>,
    pub restated_days: usize,
    pub hhi: Dist,
    pub top1: Dist,
    pub price_sources_min: Option<usize>,
    pub dispersion: Dist,
    pub loo: Dist,
    pub lopo: Dist,
    pub interval_width: Dist,
    /// The index over the list-price average, day by day.
    pub index_over_list: Dist,
    pub providers: Vec<ProviderSummary>,
}

/// One probe family's difficulty.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FamilyFigures {
    pub tier: String,
    pub family: String,
    pub answered: u64,
    pub correct: u64,
    pub pass_rate: f64,
    /// Wilson 95% interval of the pass rate.
    pub low: f64,
    pub high: f64,
    /// The one-parameter item-response (Rasch) difficulty: higher is harder, the mean of the
    /// families fitted is 0; `None` where the data does not allow a fit.
    pub difficulty: Option<f64>,
    /// The weakest endpoint's pass rate on it.
    pub weakest_pass: Option<f64>,
    /// Why it is out of its tier's band (absent when in band).
    pub out_of_band: Option<String>,
}

/// A figure against its threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub id: String,
    pub tier: Option<String>,
    pub figure: String,
    pub value: Option<String>,
    pub threshold: String,
    /// `within`, `beyond`, or `no data`.
    pub result: String,
}

/// The whole report's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub kind: &'static str,
    pub from: Date,
    pub to: Date,
    pub source: String,
    pub tiers: Vec<TierFigures>,
    /// The endpoint with the lowest pass rate over the period (the band check's reference).
    pub weakest_endpoint: Option<String>,
    pub families: Vec<FamilyFigures>,
    pub checks: Vec<Check>,
}

/// `(a - b) / b` as a 9-place share, half to even (`b` > 0).
fn rel(a: Fixed, b: Fixed) -> Fixed {
    Fixed(div_round_half_even((a.0 - b.0) * ONE, b.0))
}

fn abs(f: Fixed) -> Fixed {
    Fixed(f.0.abs())
}

/// The price factors searched for the largest moves, below and above 1 (9-place).
const DOWN: [i128; 14] = [
    990_000_000,
    980_000_000,
    970_000_000,
    950_000_000,
    930_000_000,
    900_000_000,
    850_000_000,
    800_000_000,
    700_000_000,
    500_000_000,
    300_000_000,
    100_000_000,
    10_000_000,
    1_000_000,
];
const UP: [i128; 14] = [
    1_010_000_000,
    1_020_000_000,
    1_030_000_000,
    1_050_000_000,
    1_070_000_000,
    1_100_000_000,
    1_150_000_000,
    1_250_000_000,
    1_500_000_000,
    2 * ONE,
    3 * ONE,
    10 * ONE,
    100 * ONE,
    1000 * ONE,
];
/// Bisection steps between two bracketing factors.
const STEPS: u32 = 24;

/// A day's value with provider `members`' costs scaled by `k` (9-place), by the kernel.
pub fn value_with_factor(
    r: &Recompute,
    d: &Determination,
    members: &[bool],
    k: i128,
) -> Option<Fixed> {
    let rows: Vec<_> = r
        .parts
        .rows
        .iter()
        .map(|o| {
            let mut o = *o;
            if members[o.endpoint as usize] {
                o.cost_pusd = div_round_half_even(o.cost_pusd * k, ONE);
            }
            o
        })
        .collect();
    let c = compute_day(&r.methodology, &r.parts.input_with(d, &r.suite_hash, &rows));
    c.status.sets_value().then_some(c.value).flatten()
}

/// Which endpoints (by index) belong to `provider` in the day's grouping.
fn members(parts: &DayParts, provider: &str) -> Vec<bool> {
    parts
        .endpoints
        .iter()
        .enumerate()
        .map(|(i, e)| match parts.providers.get(i) {
            Some(p) if !p.is_empty() => p == provider,
            _ => e == provider,
        })
        .collect()
}

/// The smallest change of the members' prices that moves the value by at least `target` (a
/// share of `base`) upward (`up`) or downward; `None` when no searched factor does.
fn change_for(
    f: &mut impl FnMut(i128) -> Option<Fixed>,
    base: Fixed,
    target: Fixed,
    up: bool,
) -> Option<Fixed> {
    let reaches = |v: Option<Fixed>| {
        v.is_some_and(|v| {
            let r = rel(v, base);
            if up {
                r >= target
            } else {
                Fixed(-r.0) >= target
            }
        })
    };
    let grid: &[i128] = if up { &UP } else { &DOWN };
    let mut near = ONE; // does not reach
    let mut far = None;
    for &k in grid {
        if reaches(f(k)) {
            far = Some(k);
            break;
        }
        near = k;
    }
    let mut far = far?;
    for _ in 0..STEPS {
        let mid = (near + far) / 2;
        if mid == near || mid == far {
            break;
        }
        if reaches(f(mid)) {
            far = mid;
        } else {
            near = mid;
        }
    }
    Some(Fixed(far - ONE))
}

/// The largest move (a share of `base`, signed) over the factors of `grid` (walking away
/// from 1), and the first factor that gives it.
fn largest_move(
    f: &mut impl FnMut(i128) -> Option<Fixed>,
    base: Fixed,
    grid: &[i128],
    up: bool,
) -> (Fixed, Fixed) {
    let mut best = (Fixed(0), Fixed(ONE));
    for &k in grid {
        if let Some(x) = f(k).map(|v| rel(v, base)) {
            if (up && x > best.0) || (!up && x < best.0) {
                best = (x, Fixed(k));
            }
        }
    }
    best
}

/// One provider's [`Influence`] on the day `d`, recomputed from `r`, moves measured from `base`
/// (the day's value recomputed from `r` unaltered); `None` when the day sets no value or the
/// provider has no endpoint in it.
pub fn influence(
    r: &Recompute,
    d: &Determination,
    base: Option<Fixed>,
    provider: &str,
    weight: Fixed,
    tick: Option<Fixed>,
) -> Option<Influence> {
    let m = members(&r.parts, provider);
    if !m.iter().any(|x| *x) {
        return None;
    }
    let base = base.filter(|v| v.0 > 0)?;
    let mut cache: BTreeMap<i128, Option<Fixed>> = BTreeMap::new();
    let mut f = |k: i128| {
        *cache
            .entry(k)
            .or_insert_with(|| value_with_factor(r, d, &m, k))
    };
    let max_up = largest_move(&mut f, base, &UP, true);
    let max_down = largest_move(&mut f, base, &DOWN, false);
    let tick_share = tick.map(|t| Fixed(div_round_half_even(t.0 * ONE, base.0)));
    let pct = Fixed(10_000_000);
    Some(Influence {
        provider: provider.to_string(),
        weight,
        max_up: max_up.0,
        max_up_factor: max_up.1,
        max_down: max_down.0,
        max_down_factor: max_down.1,
        tick_up: tick_share.and_then(|t| change_for(&mut f, base, t, true)),
        tick_down: tick_share.and_then(|t| change_for(&mut f, base, t, false)),
        pct_up: change_for(&mut f, base, pct, true),
        pct_down: change_for(&mut f, base, pct, false),
    })
}

/// The plain list-price average of the day's panel (see [`DayFigures::list_average`]).
fn list_average(r: &Recompute, date: Date) -> Option<Fixed> {
    let (from, to) = (date.start_ms(), date.start_ms() + sit_core::time::DAY_MS);
    let mut per: BTreeMap<u32, (i128, i128)> = BTreeMap::new();
    for o in &r.parts.rows {
        if o.missed || o.at_ms < from || o.at_ms >= to || o.attempted_sit == 0 {
            continue;
        }
        let e = per.entry(o.endpoint).or_default();
        e.0 += o.cost_pusd;
        e.1 += o.attempted_sit as i128;
    }
    if per.is_empty() {
        return None;
    }
    // pUSD per SIT x 10^6 SIT / 10^12 pUSD per USD, at 9 places: cost x 1000 / sit
    let sum: i128 = per
        .values()
        .map(|(c, s)| div_round_half_even(c * 1000, *s))
        .sum();
    Some(Fixed(div_round_half_even(sum, per.len() as i128)))
}

fn day_figures(day: &DayIn, tick: Option<Fixed>) -> DayFigures {
    let d = &day.determination;
    // figures of a settlement value only (see the module's note on BASE days)
    let sets = d.status.settles();
    let value = d.value.filter(|v| v.0 > 0);
    let share = |delta: Option<Fixed>| value.zip(delta).map(|(v, x)| abs(rel(Fixed(v.0 + x.0), v)));
    let weighted: Vec<_> = d
        .leave_one_provider_out
        .iter()
        .filter(|l| l.weight.0 > 0)
        .collect();
    let weights: Vec<Fixed> = weighted.iter().map(|l| l.weight).collect();
    let loo_max = sets
        .then(|| d.leave_one_out.iter().filter_map(|l| share(l.delta)).max())
        .flatten();
    let lopo_max = sets
        .then(|| {
            d.leave_one_provider_out
                .iter()
                .filter_map(|l| share(l.delta))
                .max()
        })
        .flatten();
    let interval_width = day.interval.as_ref().and_then(|i| {
        let (lo, hi, v) = (i.low?, i.high?, value?);
        Some(Fixed(div_round_half_even((hi.0 - lo.0) * ONE, v.0)))
    });
    let (recomputed, influence, list) = match &day.recompute {
        Some(r) => {
            // the day recomputed once: the published value's check and every provider's base
            let all = vec![false; r.parts.endpoints.len()];
            let again = value_with_factor(r, d, &all, ONE);
            let inf = if sets {
                weighted
                    .iter()
                    .filter_map(|l| influence(r, d, again, &l.provider, l.weight, tick))
                    .collect()
            } else {
                Vec::new()
            };
            (
                Some(!sets || again == d.value),
                inf,
                list_average(r, d.date),
            )
        }
        None => (None, Vec::new(), None),
    };
    DayFigures {
        date: d.date,
        status: d.status,
        versions: day.versions,
        value: d.value,
        dispersion: d.dispersion,
        endpoints_observed: d.counts.endpoints_observed,
        endpoints_eligible: d.counts.endpoints_eligible,
        valid_partitions: d.counts.valid_partitions,
        price_sources: weights.len(),
        concentration: sets.then(|| concentration(&weights)).flatten(),
        loo_max,
        lopo_max,
        interval_width,
        list_average: list,
        recomputed,
        influence,
    }
}

fn tier_figures(tier: &str, days: &BTreeMap<Date, DayIn>, tick: Option<Fixed>) -> TierFigures {
    // the days are independent: two at a time on this machine's cores
    let list: Vec<&DayIn> = days.values().collect();
    let lanes = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .max(1);
    let chunk = list.len().div_ceil(lanes).max(1);
    let figures: Vec<DayFigures> = std::thread::scope(|s| {
        let handles: Vec<_> = list
            .chunks(chunk)
            .map(|c| s.spawn(move || c.iter().map(|d| day_figures(d, tick)).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a day's figures do not panic"))
            .collect()
    });
    let mut status_days: BTreeMap<String, usize> = BTreeMap::new();
    for f in &figures {
        *status_days
            .entry(f.status.as_str().to_string())
            .or_default() += 1;
    }
    let set: Vec<&DayFigures> = figures.iter().filter(|f| f.status.settles()).collect();
    let of = |g: &dyn Fn(&DayFigures) -> Option<Fixed>| {
        Dist::of(set.iter().filter_map(|f| g(f)).collect())
    };
    let mut providers: BTreeMap<String, ProviderSummary> = BTreeMap::new();
    for f in &figures {
        for i in &f.influence {
            let p = providers
                .entry(i.provider.clone())
                .or_insert_with(|| ProviderSummary {
                    provider: i.provider.clone(),
                    days: 0,
                    max_move: Fixed(0),
                    min_change_for_tick: None,
                    min_change_for_1pct: None,
                });
            p.days += 1;
            p.max_move = p.max_move.max(abs(i.max_up)).max(abs(i.max_down));
            let least = |cur: Option<Fixed>, a: Option<Fixed>, b: Option<Fixed>| {
                [cur, a.map(abs), b.map(abs)].into_iter().flatten().min()
            };
            p.min_change_for_tick = least(p.min_change_for_tick, i.tick_up, i.tick_down);
            p.min_change_for_1pct = least(p.min_change_for_1pct, i.pct_up, i.pct_down);
        }
    }
    TierFigures {
        tier: tier.to_string(),
        tick,
        status_days,
        restated_days: figures.iter().filter(|f| f.versions > 1).count(),
        hhi: of(&|f| f.concentration.as_ref().map(|c| Fixed(c.hhi as i128 * ONE))),
        top1: of(&|f| f.concentration.as_ref().map(|c| c.top1)),
        price_sources_min: set.iter().map(|f| f.price_sources).min(),
        dispersion: of(&|f| f.dispersion),
        loo: of(&|f| f.loo_max),
        lopo: of(&|f| f.lopo_max),
        interval_width: of(&|f| f.interval_width),
        index_over_list: of(&|f| {
            let (v, l) = (f.value?, f.list_average?);
            (l.0 > 0).then(|| Fixed(div_round_half_even(v.0 * ONE, l.0)))
        }),
        providers: providers.into_values().collect(),
        days: figures,
    }
}

/// Wilson's 95% interval of `k` successes in `n`.
pub fn wilson(k: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (n, p, z) = (n as f64, k as f64 / n as f64, 1.959_963_984_540_054);
    let den = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / den;
    let half = z * ((p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt()) / den;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// A one-parameter item-response (Rasch) fit by joint maximum likelihood: `P(correct) =
/// 1 / (1 + exp(b_family - theta_endpoint))`, diagonal Newton steps, parameters clamped to
/// +-8, the families' difficulties centred on 0. Returns each family's difficulty; empty
/// when fewer than 2 endpoints or 2 families have answers.
pub fn rasch(counts: &BTreeMap<(String, String), (u64, u64)>) -> BTreeMap<String, f64> {
    let endpoints: BTreeSet<&String> = counts.keys().map(|(e, _)| e).collect();
    let families: BTreeSet<&String> = counts.keys().map(|(_, f)| f).collect();
    if endpoints.len() < 2 || families.len() < 2 {
        return BTreeMap::new();
    }
    let mut theta: BTreeMap<&String, f64> = endpoints.iter().map(|e| (*e, 0.0)).collect();
    let mut b: BTreeMap<&String, f64> = families.iter().map(|f| (*f, 0.0)).collect();
    for _ in 0..300 {
        let mut gt: BTreeMap<&String, (f64, f64)> = BTreeMap::new();
        let mut gb: BTreeMap<&String, (f64, f64)> = BTreeMap::new();
        for ((e, f), (n, c)) in counts {
            let p = 1.0 / (1.0 + (b[f] - theta[e]).exp());
            let (g, h) = (*c as f64 - *n as f64 * p, *n as f64 * p * (1.0 - p));
            let t = gt.entry(e).or_default();
            t.0 += g;
            t.1 += h;
            let u = gb.entry(f).or_default();
            u.0 -= g;
            u.1 += h;
        }
        for (e, (g, h)) in gt {
            let t = theta.get_mut(e).expect("known");
            *t = (*t + g / h.max(1e-9)).clamp(-8.0, 8.0);
        }
        for (f, (g, h)) in gb {
            let t = b.get_mut(f).expect("known");
            *t = (*t + g / h.max(1e-9)).clamp(-8.0, 8.0);
        }
        let mean = b.values().sum::<f64>() / b.len() as f64;
        for v in b.values_mut() {
            *v -= mean;
        }
    }
    b.into_iter().map(|(f, v)| (f.clone(), v)).collect()
}

/// Families' difficulty and the band check; and the weakest endpoint.
fn family_figures(
    tiers: &[(String, Vec<String>)],
    counts: &FamilyCounts,
) -> (Option<String>, Vec<FamilyFigures>) {
    // the weakest endpoint: the lowest pass rate over all its answered attempts (at least 10)
    let mut per_endpoint: BTreeMap<&String, (u64, u64)> = BTreeMap::new();
    for ((_, _, e), (n, c)) in counts {
        let x = per_endpoint.entry(e).or_default();
        x.0 += n;
        x.1 += c;
    }
    let weakest = per_endpoint
        .iter()
        .filter(|(_, (n, _))| *n >= 10)
        // c/n ascending, compared exactly (c1 n2 < c2 n1); ties by name
        .min_by(|a, b| {
            ((a.1 .1 as u128) * (b.1 .0 as u128))
                .cmp(&((b.1 .1 as u128) * (a.1 .0 as u128)))
                .then(a.0.cmp(b.0))
        })
        .map(|(e, _)| (*e).clone());
    let pooled = |tier: &str, family: Option<&str>, endpoint: Option<&str>| {
        counts
            .iter()
            .filter(|((t, f, e), _)| {
                t == tier && family.is_none_or(|x| x == f) && endpoint.is_none_or(|x| x == e)
            })
            .fold((0u64, 0u64), |a, (_, (n, c))| (a.0 + n, a.1 + c))
    };
    let rate = |(n, c): (u64, u64)| (n > 0).then(|| c as f64 / n as f64);
    let mut out = Vec::new();
    for (i, (tier, families)) in tiers.iter().enumerate() {
        let by: BTreeMap<(String, String), (u64, u64)> = counts
            .iter()
            .filter(|((t, _, _), _)| t == tier)
            .map(|((_, f, e), v)| ((e.clone(), f.clone()), *v))
            .collect();
        let difficulty = rasch(&by);
        let lower = i
            .checked_sub(1)
            .map(|j| &tiers[j].0)
            .and_then(|lt| Some((lt, rate(pooled(lt, None, weakest.as_deref()))?)));
        for f in families {
            let (n, c) = pooled(tier, Some(f), None);
            let (low, high) = wilson(c, n);
            let weak = weakest
                .as_deref()
                .and_then(|w| rate(pooled(tier, Some(f), Some(w))));
            let out_of_band = match (weak, lower) {
                (Some(w), Some((lt, l))) if w > l => Some(format!(
                    "the weakest endpoint ({}) passes it {:.0}% of the time, more than the lower tier {lt}'s families ({:.0}%)",
                    weakest.as_deref().unwrap_or(""),
                    w * 100.0,
                    l * 100.0
                )),
                _ => None,
            };
            out.push(FamilyFigures {
                tier: tier.clone(),
                family: f.clone(),
                answered: n,
                correct: c,
                pass_rate: rate((n, c)).unwrap_or(0.0),
                low,
                high,
                difficulty: difficulty.get(f).copied(),
                weakest_pass: weak,
                out_of_band,
            });
        }
    }
    (weakest, out)
}

fn check(t: &Threshold, tier: Option<&str>, value: Option<Fixed>) -> Check {
    let limit = Fixed::parse(t.limit).expect("thresholds are decimals");
    Check {
        id: t.id.to_string(),
        tier: tier.map(String::from),
        figure: t.figure.to_string(),
        value: value.map(|v| v.round_dp(4)),
        threshold: format!("{} {}", if t.at_most { "<=" } else { ">=" }, t.limit),
        result: match value {
            None => "no data".into(),
            Some(v) if (t.at_most && v <= limit) || (!t.at_most && v >= limit) => "within".into(),
            Some(_) => "beyond".into(),
        },
    }
}

fn threshold(id: &str) -> &'static Threshold {
    THRESHOLDS
        .iter()
        .find(|t| t.id == id)
        .expect("a threshold of section 15")
}

fn share_of(k: usize, n: usize) -> Option<Fixed> {
    (n > 0).then(|| Fixed(div_round_half_even(k as i128 * ONE, n as i128)))
}

fn checks(tiers: &[TierFigures], families: &[FamilyFigures]) -> Vec<Check> {
    let mut out = Vec::new();
    for t in tiers {
        let n = t.days.len();
        let tier = Some(t.tier.as_str());
        let days_of = |s: &str| t.status_days.get(s).copied().unwrap_or(0);
        let infl_max = t.providers.iter().map(|p| p.max_move).max();
        let change_min = t
            .providers
            .iter()
            .map(|p| p.min_change_for_1pct.unwrap_or(Fixed(i128::MAX)))
            .min()
            .filter(|_| !t.providers.is_empty());
        for (id, v) in [
            ("hhi_max", t.hhi.max.map(|h| Fixed(h.0 / ONE * ONE))),
            ("top1_max", t.top1.max),
            (
                "sources_min",
                t.price_sources_min.map(|s| Fixed(s as i128 * ONE)),
            ),
            ("loo_p95", t.loo.p95),
            ("lopo_p95", t.lopo.p95),
            ("influence_max", infl_max),
            ("change_for_1pct_min", change_min),
            ("contingency_share", share_of(days_of("CONTINGENCY"), n)),
            (
                "suspended_days",
                (n > 0).then(|| Fixed(days_of("SUSPENDED") as i128 * ONE)),
            ),
            ("restated_share", share_of(t.restated_days, n)),
            ("interval_width_p95", t.interval_width.p95),
        ] {
            let mut c = check(threshold(id), tier, v);
            if id == "change_for_1pct_min" && v == Some(Fixed(i128::MAX)) {
                c.value = Some("no change of one provider's prices moves a value by 1%".into());
                c.result = "within".into();
            }
            out.push(c);
        }
    }
    let oob = families.iter().filter(|f| f.out_of_band.is_some()).count();
    out.push(check(
        threshold("families_out_of_band"),
        None,
        (!families.is_empty()).then(|| Fixed(oob as i128 * ONE)),
    ));
    out
}

/// Compute every figure.
pub fn build(i: &Inputs) -> Report {
    let tiers: Vec<TierFigures> = i
        .tiers
        .iter()
        .filter_map(|(t, _)| Some(tier_figures(t, i.days.get(t)?, i.ticks.get(t).copied())))
        .collect();
    let (weakest, families) = family_figures(&i.tiers, &i.families);
    Report {
        kind: "sit-suitability",
        from: i.from,
        to: i.to,
        source: i.source.to_string(),
        checks: checks(&tiers, &families),
        tiers,
        weakest_endpoint: weakest,
        families,
    }
}

/// A tier's charts: its value against the list-price average, and its concentration.
fn charts(t: &TierFigures) -> Vec<Block> {
    let f = |v: Fixed| v.0 as f64 / ONE as f64;
    let points = |g: &dyn Fn(&DayFigures) -> Option<f64>| -> Vec<(Date, f64)> {
        t.days
            .iter()
            .filter_map(|d| Some((d.date, g(d)?)))
            .collect()
    };
    let values = super::chart::lines(
        &format!(
            "{}: the index and a plain list-price average of its panel",
            t.tier
        ),
        "USD per 1M SIT",
        &[
            ("index value".into(), points(&|d| d.value.map(f))),
            (
                "list-price average (per attempted SIT)".into(),
                points(&|d| d.list_average.map(f)),
            ),
        ],
        &[false, true],
    );
    let hhi = super::chart::lines(
        &format!(
            "{}: concentration (HHI of weights) and price sources",
            t.tier
        ),
        "HHI / 1000; sources",
        &[
            (
                "HHI / 1000".into(),
                points(&|d| d.concentration.as_ref().map(|c| c.hhi as f64 / 1000.0)),
            ),
            (
                "price sources".into(),
                points(&|d| d.status.settles().then_some(d.price_sources as f64)),
            ),
        ],
        &[false, true],
    );
    [
        ("values", "The index and the list-price average", values),
        ("concentration", "Concentration and price sources", hhi),
    ]
    .into_iter()
    .filter(|(_, _, svg)| !svg.is_empty())
    .map(|(name, caption, svg)| Block::Figure {
        file: format!("suitability-{}-{name}.svg", t.tier),
        caption: format!("{}: {caption}", t.tier),
        svg,
    })
    .collect()
}

fn pct(f: Option<Fixed>) -> String {
    f.map(|v| format!("{}%", Fixed(v.0 * 100).round_dp(2)))
        .unwrap_or_else(|| "—".into())
}

fn signed_pct(f: Option<Fixed>) -> String {
    match f {
        Some(v) if v.0 > 0 => format!("+{}", pct(Some(v))),
        other => pct(other).replace("—", "none can"),
    }
}

fn num(f: Option<Fixed>, dp: u32) -> String {
    f.map(|v| v.round_dp(dp)).unwrap_or_else(|| "—".into())
}

/// The report as a document (charts are added by the caller: [`charts`]).
pub fn doc(r: &Report) -> Doc {
    let mut sections = vec![Section {
        title: "Scope".into(),
        blocks: vec![
            Block::Para(format!(
                "Days {} to {} (UTC), {}. Every figure comes from the published records in force and, for the recomputations (influence, the list-price average, the check that each value recomputes), from each day's audit bundle. Thresholds: index-methodology.md section 15.",
                r.from, r.to, r.source
            )),
            Block::Para("Influence is measured by recomputation: the day's own rows with one provider's costs scaled by a price factor, determined again by the kernel; the largest move is searched over factors 1/1000 to 1000, the change needed for a move by bisection. Shares are of the day's value; a price change of +5% means the provider's list prices 5% dearer.".into()),
        ],
    }];
    // thresholds first: what a reader checks
    sections.push(Section {
        title: "Figures against the methodology's thresholds".into(),
        blocks: vec![Block::Table {
            head: vec![
                "tier".into(),
                "figure".into(),
                "value".into(),
                "threshold".into(),
                "result".into(),
            ],
            rows: r
                .checks
                .iter()
                .map(|c| {
                    vec![
                        c.tier.clone().unwrap_or_else(|| "all".into()),
                        c.figure.clone(),
                        c.value.clone().unwrap_or_else(|| "—".into()),
                        c.threshold.clone(),
                        c.result.clone(),
                    ]
                })
                .collect(),
        }],
    });
    for t in &r.tiers {
        let statuses: Vec<String> = t
            .status_days
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect();
        let dist = |name: &str, d: &Dist, f: &dyn Fn(Option<Fixed>) -> String| {
            vec![
                name.to_string(),
                d.n.to_string(),
                f(d.p50),
                f(d.p95),
                f(d.max),
            ]
        };
        let mut blocks = vec![
            Block::Para(format!(
                "{} days: {}; restated {}. Fewest price sources carrying weight on a day that settles: {}. Contract tick: {}.",
                t.days.len(),
                statuses.join(", "),
                t.restated_days,
                t.price_sources_min.map(|n| n.to_string()).unwrap_or_else(|| "—".into()),
                num(t.tick, 9)
            )),
            Block::Table {
                head: vec!["figure (days that settle)".into(), "n".into(), "p50".into(), "p95".into(), "max".into()],
                rows: vec![
                    dist("HHI of weights", &t.hhi, &|f| num(f, 0)),
                    dist("largest provider weight", &t.top1, &pct),
                    dist("dispersion", &t.dispersion, &|f| num(f, 4)),
                    dist("largest leave-one-out move", &t.loo, &pct),
                    dist("largest leave-one-provider-out move", &t.lopo, &pct),
                    dist("95% interval width", &t.interval_width, &pct),
                    dist("index / list-price average", &t.index_over_list, &|f| num(f, 4)),
                ],
            },
            Block::Para("Influence of each provider over the period (by recomputation): the largest move of a value it could cause by its own prices alone, and the smallest change of its prices that moved a value by one contract tick and by 1%.".into()),
            Block::Table {
                head: vec!["provider".into(), "days".into(), "largest move".into(), "change for a tick".into(), "change for 1%".into()],
                rows: t
                    .providers
                    .iter()
                    .map(|p| {
                        vec![
                            p.provider.clone(),
                            p.days.to_string(),
                            pct(Some(p.max_move)),
                            pct(p.min_change_for_tick).replace("—", "none can"),
                            pct(p.min_change_for_1pct).replace("—", "none can"),
                        ]
                    })
                    .collect(),
            },
        ];
        blocks.push(Block::Table {
            head: vec![
                "date".into(),
                "status".into(),
                "v".into(),
                "value".into(),
                "list avg".into(),
                "eligible".into(),
                "valid h".into(),
                "sources".into(),
                "HHI".into(),
                "top-1".into(),
                "LOO max".into(),
                "LOPO max".into(),
                "95% width".into(),
                "recomputes".into(),
            ],
            rows: t
                .days
                .iter()
                .map(|d| {
                    vec![
                        d.date.to_string(),
                        d.status.as_str().to_string(),
                        d.versions.to_string(),
                        num(d.value, 6),
                        num(d.list_average, 6),
                        format!("{}/{}", d.endpoints_eligible, d.endpoints_observed),
                        d.valid_partitions.to_string(),
                        d.price_sources.to_string(),
                        d.concentration
                            .as_ref()
                            .map(|c| c.hhi.to_string())
                            .unwrap_or_else(|| "—".into()),
                        pct(d.concentration.as_ref().map(|c| c.top1)),
                        pct(d.loo_max),
                        pct(d.lopo_max),
                        pct(d.interval_width),
                        match d.recomputed {
                            Some(true) => "yes".into(),
                            Some(false) => "NO".into(),
                            None => "no bundle".into(),
                        },
                    ]
                })
                .collect(),
        });
        blocks.extend(charts(t));
        if let Some(last) = t.days.iter().rev().find(|d| !d.influence.is_empty()) {
            blocks.push(Block::Para(format!(
                "Influence on {} by provider (price factor searched 1/1000 to 1000):",
                last.date
            )));
            blocks.push(Block::Table {
                head: vec![
                    "provider".into(),
                    "weight".into(),
                    "max up (factor)".into(),
                    "max down (factor)".into(),
                    "tick up".into(),
                    "tick down".into(),
                    "1% up".into(),
                    "1% down".into(),
                ],
                rows: last
                    .influence
                    .iter()
                    .map(|i| {
                        vec![
                            i.provider.clone(),
                            pct(Some(i.weight)),
                            format!("{} (x{})", pct(Some(i.max_up)), i.max_up_factor.round_dp(3)),
                            format!(
                                "{} (x{})",
                                pct(Some(i.max_down)),
                                i.max_down_factor.round_dp(3)
                            ),
                            signed_pct(i.tick_up),
                            signed_pct(i.tick_down),
                            signed_pct(i.pct_up),
                            signed_pct(i.pct_down),
                        ]
                    })
                    .collect(),
            });
        }
        sections.push(Section {
            title: format!("Tier {}", t.tier),
            blocks,
        });
    }
    sections.push(Section {
        title: "Probe families: difficulty and band".into(),
        blocks: vec![
            Block::Para(format!(
                "Pass rate = correct / answered attempts over the period, with its Wilson 95% interval; difficulty from a one-parameter item-response (Rasch) fit per tier over endpoints and families (higher is harder, the tier's mean 0; a family every endpoint passed or failed sits at the fit's bound, ±8 before centring). A family is out of band when the weakest endpoint ({}) passes it more often than the families of the tier below.",
                r.weakest_endpoint.as_deref().unwrap_or("none with 10 answers")
            )),
            Block::Table {
                head: vec!["tier".into(), "family".into(), "answered".into(), "pass rate (95%)".into(), "difficulty".into(), "weakest endpoint".into(), "band".into()],
                rows: r
                    .families
                    .iter()
                    .map(|f| {
                        vec![
                            f.tier.clone(),
                            f.family.clone(),
                            f.answered.to_string(),
                            if f.answered == 0 {
                                "—".into()
                            } else {
                                format!("{:.1}% ({:.1}-{:.1}%)", f.pass_rate * 100.0, f.low * 100.0, f.high * 100.0)
                            },
                            f.difficulty.map(|d| format!("{d:.2}")).unwrap_or_else(|| "—".into()),
                            f.weakest_pass.map(|w| format!("{:.0}%", w * 100.0)).unwrap_or_else(|| "—".into()),
                            f.out_of_band.clone().map(|w| format!("OUT OF BAND: {w}")).unwrap_or_else(|| "in band".into()),
                        ]
                    })
                    .collect(),
            },
        ],
    });
    Doc {
        title: format!("SIT index suitability analysis, {} to {}", r.from, r.to),
        sections,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_the_textbook_values() {
        // 4 of 5: 0.376-0.964 (Wilson 1927, as computed by statsmodels proportion_confint)
        let (lo, hi) = wilson(4, 5);
        assert!(
            (lo - 0.3755).abs() < 1e-3 && (hi - 0.9638).abs() < 1e-3,
            "{lo} {hi}"
        );
        assert_eq!(wilson(0, 0), (0.0, 1.0));
    }

    #[test]
    fn rasch_orders_families_by_how_often_they_are_failed() {
        let mut c = BTreeMap::new();
        for (e, skill) in [("a", 0.9), ("b", 0.6), ("c", 0.3)] {
            for (f, ease) in [("easy", 1.0), ("mid", 0.7), ("hard", 0.4)] {
                let n = 100u64;
                let k = (n as f64 * skill * ease) as u64;
                c.insert((e.to_string(), f.to_string()), (n, k));
            }
        }
        let b = rasch(&c);
        assert!(b["hard"] > b["mid"] && b["mid"] > b["easy"], "{b:?}");
        assert!(b.values().sum::<f64>().abs() < 1e-9);
        assert!(rasch(&BTreeMap::new()).is_empty());
    }

    #[test]
    fn a_family_the_weakest_endpoint_passes_more_than_the_tier_below_is_out_of_band() {
        let tiers = vec![
            ("t1".to_string(), vec!["a".to_string()]),
            ("t2".to_string(), vec!["b".to_string(), "c".to_string()]),
        ];
        let mut c = FamilyCounts::new();
        let mut put = |t: &str, f: &str, e: &str, n, k| {
            c.insert((t.into(), f.into(), e.into()), (n, k));
        };
        put("t1", "a", "weak", 20, 5);
        put("t1", "a", "strong", 20, 20);
        put("t2", "b", "weak", 20, 16);
        put("t2", "b", "strong", 20, 20);
        put("t2", "c", "weak", 20, 1);
        put("t2", "c", "strong", 20, 15);
        let (weakest, f) = family_figures(&tiers, &c);
        assert_eq!(weakest.as_deref(), Some("weak"));
        let oob: Vec<&str> = f
            .iter()
            .filter(|x| x.out_of_band.is_some())
            .map(|x| x.family.as_str())
            .collect();
        assert_eq!(oob, ["b"]);
    }

    /// The methodology's table (section 15) states each threshold the report applies.
    #[test]
    fn thresholds_are_the_methodologys() {
        let doc = include_str!("../../index-methodology.md");
        let sec = &doc[doc.find("## 15. Suitability").expect("section 15")..];
        let sec = &sec[..sec[3..].find("\n## ").map_or(sec.len(), |i| i + 3)];
        let rows: Vec<&str> = sec.lines().filter(|l| l.starts_with("| `")).collect();
        assert_eq!(rows.len(), THRESHOLDS.len());
        for (row, t) in rows.iter().zip(THRESHOLDS) {
            let want = format!(
                "| `{}` | {} | {} {} |",
                t.id,
                t.figure,
                if t.at_most { "<=" } else { ">=" },
                t.limit
            );
            assert_eq!(*row, want);
        }
    }

    #[test]
    fn checks_compare_each_figure_with_its_stated_bound() {
        let t = threshold("sources_min");
        assert_eq!(check(t, None, Some(Fixed(4 * ONE))).result, "within");
        assert_eq!(check(t, None, Some(Fixed(3 * ONE))).result, "beyond");
        assert_eq!(check(threshold("hhi_max"), None, None).result, "no data");
    }
}
