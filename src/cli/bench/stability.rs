//! `sit bench stability`: how candidate index methods behave on a simulated market whose true
//! price is known.
//!
//! The market (floats: this is analytics, not settlement): a common log-price factor (the
//! paper's mean-reverting jump-diffusion: demand and supply shocks that move every provider),
//! persistent level differences (cheapest to dearest about 40x per SIT), idiosyncratic
//! deviations per provider (their own mean-reverting path and rare price cuts), and panel
//! events (endpoints entering, leaving, and down for hours). Probes are drawn as the worker
//! would record them: 3 per endpoint and hour, each costed at the provider's price with token
//! noise, answered correctly with the provider's quality, failing at its fault rate.
//!
//! Methods, each over the same observations:
//! - `1.0.0`, `1.1.0`, `1.2.0`, `1.4.0`, `1.5.0`: the published methodologies
//!   (`sit_core::index::compute_day`, the real code); 1.5.0's day price is time-weighted (the
//!   mean of the hours' prices), 1.4.0's the ratio of the day's sums;
//! - `chain-geo-relatives`: matched-panel price relatives, each endpoint's day price against
//!   its own previous valid day price (at most 7 days old), trimmed 20% each side by relative,
//!   geometric mean, chain-linked from the first day's 1.0.0 value;
//! - `log-trimmed-levels`: exp of the 20%-trimmed mean of log day prices;
//! - `weighted-median`: the median of day prices weighted by delivered SIT.
//!
//! Figures, per method: leave-one-out |value without an endpoint - value| / value over every
//! (day, endpoint), largest and p95; the jump on panel-change days (an entrant's effect on its
//! entry day and the next; a leaver's effect on its exit day, against the counterfactual that it
//! had stayed at its last price); tracking of the true factor (correlation of daily log
//! changes with the factor's daily mean, RMSE of the log level after rebasing both to day 1).

use sit_core::index::chain::{link_after, ChainLink};
use sit_core::index::{compute_day, DayInput, IndexObs, Methodology};
use sit_core::rng::Rng;
use sit_core::time::{Date, HOUR_MS};
use std::collections::BTreeMap;

/// One simulated endpoint of the panel.
struct Member {
    /// Mean price, USD per 1M SIT.
    level: f64,
    quality_permille: u32,
    fault_permille: u32,
    /// Days it is in the panel: [from, to).
    from_day: u32,
    to_day: u32,
    /// (day, first hour, hours) it is down.
    outages: Vec<(u32, u32, u32)>,
    /// Idiosyncratic log-price path, hourly.
    idio: Vec<f64>,
}

/// The simulated panel market and its true common factor.
pub struct PanelMarket {
    members: Vec<Member>,
    /// Common log factor, hourly.
    factor: Vec<f64>,
    days: u32,
}

use crate::sim::mrjd;

impl PanelMarket {
    /// `n` endpoints over `days` days, seeded. About one endpoint in four enters late, one in
    /// four leaves early, and one in three has an outage of 3-12 hours.
    pub fn new(seed: u64, days: u32, n: usize) -> PanelMarket {
        let hours = days as usize * 24;
        let mut r = Rng::new(seed ^ 0x5354_4142);
        // Common factor: slower reversion than a single provider's deviations, and the
        // demand/supply shocks of the paper (about one a week, mostly down, some up).
        let factor = mrjd(&mut r, hours, 0.004, 0.010, 0.006, -0.06, 0.10);
        let members = (0..n)
            .map(|i| {
                // levels log-uniform over about 40x: 0.05 .. 2.0 USD per 1M SIT
                let level = 0.05 * (40f64).powf(r.unit_f64());
                let from_day = if i % 4 == 1 {
                    r.range(2, days as i64 / 2) as u32
                } else {
                    0
                };
                let to_day = if i % 4 == 2 {
                    r.range(days as i64 / 2, days as i64 - 2) as u32
                } else {
                    days
                };
                let outages = if i % 3 == 0 {
                    let d = r.range(from_day as i64 + 1, to_day as i64 - 1).max(0) as u32;
                    vec![(d, r.range(0, 12) as u32, r.range(3, 12) as u32)]
                } else {
                    vec![]
                };
                let idio = mrjd(&mut r, hours, 0.02, 0.004, 0.001, -0.12, 0.05);
                Member {
                    level,
                    quality_permille: 880 + r.range(0, 110) as u32,
                    fault_permille: 5 + r.range(0, 25) as u32,
                    from_day,
                    to_day,
                    outages,
                    idio,
                }
            })
            .collect();
        PanelMarket {
            members,
            factor,
            days,
        }
    }

    fn down(&self, e: usize, day: u32, hour: u32) -> bool {
        let m = &self.members[e];
        day < m.from_day
            || day >= m.to_day
            || m.outages
                .iter()
                .any(|&(d, h, n)| d == day && hour >= h && hour < h + n)
    }

    /// The true factor's level on each day: the mean of exp(factor) over its hours.
    pub fn true_daily(&self) -> Vec<f64> {
        self.factor
            .chunks(24)
            .map(|c| c.iter().map(|x| x.exp()).sum::<f64>() / c.len() as f64)
            .collect()
    }

    /// The observations the worker would record: 3 probes per endpoint and hour. With
    /// families (`schedule` other than `Uniform`), each probe is one of 4 families of different
    /// size (150 to 1,200 SIT: a one-line sum to a long retrieval), and each endpoint is
    /// relatively dearer or cheaper on each family (a fixed factor exp(0.35 z) per endpoint and
    /// family: input-heavy and output-heavy work are priced differently by different
    /// providers); the families are drawn per endpoint (`Independent`, schedule version 1) or
    /// once per hour for every endpoint (`Paired`, version 2).
    fn observations(&self, seed: u64, start: Date, schedule: Schedule) -> Vec<IndexObs> {
        let mut r = Rng::new(seed ^ 0x4f42_5345);
        let mut fam_rng = Rng::new(seed ^ 0x4641_4d49);
        // per endpoint and family: its relative price of that kind of work
        let rel: Vec<[f64; 4]> = (0..self.members.len())
            .map(|_| {
                std::array::from_fn(|_| {
                    let z: f64 = (0..12).map(|_| fam_rng.unit_f64()).sum::<f64>() - 6.0;
                    (0.35 * z).exp()
                })
            })
            .collect();
        const SIZE: [u64; 4] = [150, 300, 600, 1200];
        let mut out = Vec::new();
        let mut n = 0u64;
        for day in 0..self.days {
            // stratified: 72 slots a day, each family 18 times, in a shuffled order (drawn
            // only for this schedule, so the others keep their recorded figures)
            let mut balanced: Vec<usize> = (0..72).map(|i| i % 4).collect();
            if schedule == Schedule::Stratified {
                for i in (1..balanced.len()).rev() {
                    let j = fam_rng.range(0, i as i64) as usize;
                    balanced.swap(i, j);
                }
            }
            for hour in 0..24u32 {
                let h = (day * 24 + hour) as usize;
                let paired: [usize; 3] = match schedule {
                    Schedule::Stratified => {
                        std::array::from_fn(|k| balanced[hour as usize * 3 + k])
                    }
                    _ => std::array::from_fn(|_| fam_rng.range(0, 3) as usize),
                };
                for (e, m) in self.members.iter().enumerate() {
                    if self.down(e, day, hour) {
                        continue;
                    }
                    let price = m.level * (self.factor[h] + m.idio[h]).exp();
                    for k in 0..3 {
                        n += 1;
                        let (sit, price) = match schedule {
                            Schedule::Uniform => (300 + r.range(0, 200) as u64, price),
                            Schedule::Independent | Schedule::Paired | Schedule::Stratified => {
                                let f = if schedule != Schedule::Independent {
                                    paired[k as usize]
                                } else {
                                    fam_rng.range(0, 3) as usize
                                };
                                let base = SIZE[f];
                                (
                                    base * 4 / 5 + r.range(0, (base * 2 / 5) as i64) as u64,
                                    price * rel[e][f],
                                )
                            }
                        };
                        let succeeded = !r.chance_permille(m.fault_permille);
                        let correct = succeeded && r.chance_permille(m.quality_permille);
                        // token counts vary around the budget: +-15% cost noise
                        let noise = 1.0 + 0.15 * (r.unit_f64() * 2.0 - 1.0);
                        let cost = if succeeded {
                            price * sit as f64 * noise
                        } else {
                            0.0
                        };
                        let mut hash = [0u8; 32];
                        hash[..8].copy_from_slice(&n.to_le_bytes());
                        out.push(IndexObs {
                            endpoint: e as u32,
                            at_ms: start.start_ms()
                                + h as i64 * HOUR_MS
                                + k * 1_200_000
                                + r.range(0, 1_000_000),
                            // price USD/1M SIT x SIT = micro-USD; in pico-USD
                            cost_pusd: (cost * 1e6).round() as i128,
                            delivered_sit: if correct { sit } else { 0 },
                            attempted_sit: sit,
                            missed: false,
                            succeeded,
                            correct,
                            hash,
                            vantage: 0,
                        });
                    }
                }
            }
        }
        out
    }
}

/// An endpoint's price on one day: cost over delivered SIT of its attempts that day, when it
/// was eligible (at least 6 attempts, availability >= 0.90, quality >= the tier threshold).
fn day_prices(obs: &[IndexObs], n: usize, threshold: f64) -> BTreeMap<u32, (f64, u64)> {
    let mut agg = vec![(0u32, 0u32, 0u32, 0i128, 0u64); n];
    for o in obs {
        let a = &mut agg[o.endpoint as usize];
        a.0 += 1;
        a.1 += o.succeeded as u32;
        a.2 += o.correct as u32;
        a.3 += o.cost_pusd;
        a.4 += o.delivered_sit;
    }
    agg.iter()
        .enumerate()
        .filter(|(_, a)| {
            a.0 >= 6
                && a.1 as f64 >= 0.9 * a.0 as f64
                && a.2 as f64 >= threshold * a.1.max(1) as f64
                && a.4 > 0
        })
        .map(|(e, a)| (e as u32, (a.3 as f64 / 1e6 / a.4 as f64, a.4)))
        .collect()
}

fn trimmed(mut v: Vec<(f64, u32)>, trim: f64) -> Vec<(f64, u32)> {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    let k = (trim * v.len() as f64).floor() as usize;
    v[k..v.len() - k].to_vec()
}

fn geo_mean(v: &[(f64, u32)]) -> f64 {
    (v.iter().map(|(x, _)| x.ln()).sum::<f64>() / v.len() as f64).exp()
}

/// The candidate methods that work on day prices.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Candidate {
    ChainGeo,
    LogTrimmed,
    WeightedMedian,
}

impl Candidate {
    fn name(self) -> &'static str {
        match self {
            Candidate::ChainGeo => "chain-geo-relatives",
            Candidate::LogTrimmed => "log-trimmed-levels",
            Candidate::WeightedMedian => "weighted-median",
        }
    }

    /// Today's value from day prices, the previous level and each endpoint's reference
    /// (its last valid price and the day it was seen). `skip`: leave this endpoint out.
    fn value(
        self,
        prices: &BTreeMap<u32, (f64, u64)>,
        prev: Option<f64>,
        refs: &BTreeMap<u32, (f64, u32)>,
        day: u32,
        skip: Option<u32>,
    ) -> Option<f64> {
        let live: Vec<(u32, f64, u64)> = prices
            .iter()
            .filter(|(e, _)| Some(**e) != skip)
            .map(|(e, (p, w))| (*e, *p, *w))
            .collect();
        match self {
            Candidate::ChainGeo => {
                let prev = prev?;
                let rel: Vec<(f64, u32)> = live
                    .iter()
                    .filter_map(|(e, p, _)| {
                        let (r, d) = refs.get(e)?;
                        (day - d <= 7).then_some((p / r, *e))
                    })
                    .collect();
                if rel.len() < 5 {
                    return None;
                }
                Some(prev * geo_mean(&trimmed(rel, 0.2)))
            }
            Candidate::LogTrimmed => {
                let v: Vec<(f64, u32)> = live.iter().map(|(e, p, _)| (*p, *e)).collect();
                (v.len() >= 5).then(|| geo_mean(&trimmed(v, 0.2)))
            }
            Candidate::WeightedMedian => {
                let mut v: Vec<(f64, u64)> = live.iter().map(|(_, p, w)| (*p, *w)).collect();
                if v.len() < 5 {
                    return None;
                }
                v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
                let total: u64 = v.iter().map(|x| x.1).sum();
                let mut acc = 0;
                v.iter()
                    .find(|(_, w)| {
                        acc += w;
                        2 * acc >= total
                    })
                    .map(|x| x.0)
            }
        }
    }
}

/// The figures of one method.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MethodFigures {
    pub method: String,
    pub days: usize,
    pub loo_max: f64,
    pub loo_p95: f64,
    pub panel_jump_max: f64,
    pub corr_daily_log_changes: f64,
    pub rmse_log_level: f64,
    /// Chained methods: the largest |leave-one-out| / value on the chain's base day (the
    /// anchor), which the LOO figures above leave out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_day_loo_max: Option<f64>,
}

fn p95(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[((v.len() as f64 * 0.95).ceil() as usize).clamp(1, v.len()) - 1]
}

fn tracking(values: &[Option<f64>], truth: &[f64]) -> (f64, f64) {
    let pairs: Vec<(f64, f64)> = values
        .iter()
        .zip(truth)
        .filter_map(|(v, t)| v.map(|v| (v, *t)))
        .collect();
    if pairs.len() < 3 {
        return (f64::NAN, f64::NAN);
    }
    let (v0, t0) = pairs[0];
    let rmse = (pairs
        .iter()
        .map(|(v, t)| ((v / v0).ln() - (t / t0).ln()).powi(2))
        .sum::<f64>()
        / pairs.len() as f64)
        .sqrt();
    let d: Vec<(f64, f64)> = pairs
        .windows(2)
        .map(|w| ((w[1].0 / w[0].0).ln(), (w[1].1 / w[0].1).ln()))
        .collect();
    let n = d.len() as f64;
    let (mx, my) = (
        d.iter().map(|x| x.0).sum::<f64>() / n,
        d.iter().map(|x| x.1).sum::<f64>() / n,
    );
    let cov: f64 = d.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let vx: f64 = d.iter().map(|(x, _)| (x - mx).powi(2)).sum();
    let vy: f64 = d.iter().map(|(_, y)| (y - my).powi(2)).sum();
    (cov / (vx * vy).sqrt(), rmse)
}

/// How probes are drawn in the simulated panel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Schedule {
    /// One kind of work, sizes 300-500 SIT (the model before probe families were simulated).
    Uniform,
    /// Four families of different size and relative price, drawn per endpoint (schedule v1).
    Independent,
    /// The same families for every endpoint in an hour (schedule v2, paired probes).
    Paired,
    /// Paired, and each day's families a shuffled balanced list: every endpoint gets each
    /// family equally often every day (schedule v3).
    Stratified,
}

/// Run every method over `days` simulated days of a `n`-endpoint panel.
pub fn run(days: u32, seed: u64, n: usize, schedule: Schedule) -> Vec<MethodFigures> {
    let market = PanelMarket::new(seed, days + 1, n);
    let start = Date::parse("2026-01-01").expect("date");
    let obs = market.observations(seed, start, schedule);
    let truth = market.true_daily();
    let threshold = 0.8;
    let ids: Vec<String> = (0..n).map(|i| format!("ep{i:02}")).collect();
    let mut by_day: Vec<Vec<IndexObs>> = vec![Vec::new(); days as usize + 1];
    for o in &obs {
        by_day[((o.at_ms - start.start_ms()) / (24 * HOUR_MS)) as usize].push(*o);
    }
    let members_on = |d: u32| -> Vec<u32> {
        (0..n as u32)
            .filter(|e| (0..24).any(|h| !market.down(*e as usize, d, h)))
            .collect()
    };
    // Day 0 is the trailing window of day 1; figures are over days 1..=days.
    // A chain's base day (no previous level: the anchor is the trimmed geometric mean of the
    // day's levels) is as sensitive to the panel as any level method; its figures are kept
    // apart (`base_day_loo_max`) from those of the chained days.
    let published = |m: &Methodology| -> (Vec<Option<f64>>, Vec<f64>, Vec<f64>, f64) {
        let mut base_day_loo = 0f64;
        let mut values: Vec<Option<f64>> = vec![None];
        let (mut loo, mut jump) = (Vec::new(), Vec::new());
        let mut previous_final = None;
        let mut link: Option<ChainLink> = None;
        for d in 1..=days {
            let date = Date(start.0 + d as i32);
            let mut window = by_day[d as usize - 1].clone();
            window.extend_from_slice(&by_day[d as usize]);
            let input = DayInput {
                tier: "t1",
                date,
                pass_threshold: sit_core::fixed::Fixed(800_000_000),
                endpoints: &ids,
                providers: &[],
                vantages: &[],
                observations: &window,
                previous_final,
                suite_hash: "bench",
                sequence: d as u64,
                computed_at: "bench",
                chain: link.as_ref(),
                prices: None,
            };
            let det = compute_day(m, &input);
            link = m.chain.as_ref().map(|cp| link_after(cp, Some(&det)));
            if !det.status.sets_value() {
                values.push(None);
                continue;
            }
            previous_final = det.value.map(|v| (date, v));
            let v = det.value.expect("final has a value").0 as f64 / 1e9;
            let changed = panel_changes(&members_on, d);
            if det
                .chain
                .as_ref()
                .is_some_and(|c| c.basis == sit_core::index::chain::BASE_LEVELS)
            {
                for l in &det.leave_one_out {
                    if let Some(delta) = l.delta {
                        base_day_loo = base_day_loo.max((delta.0 as f64 / 1e9).abs() / v);
                    }
                }
                values.push(Some(v));
                continue;
            }
            for l in &det.leave_one_out {
                if let Some(delta) = l.delta {
                    let x = (delta.0 as f64 / 1e9).abs() / v;
                    loo.push(x);
                    let e = ids.iter().position(|i| *i == l.endpoint).expect("id") as u32;
                    if changed.contains(&e) {
                        jump.push(x);
                    }
                }
            }
            values.push(Some(v));
        }
        (values, loo, jump, base_day_loo)
    };
    let figures = |name: &str, values: &[Option<f64>], loo: Vec<f64>, jump: Vec<f64>| {
        let (corr, rmse) = tracking(&values[1..], &truth[1..=days as usize]);
        MethodFigures {
            method: name.into(),
            days: days as usize,
            loo_max: loo.iter().cloned().fold(0.0, f64::max),
            loo_p95: p95(loo),
            panel_jump_max: jump.iter().cloned().fold(0.0, f64::max),
            corr_daily_log_changes: corr,
            rmse_log_level: rmse,
            base_day_loo_max: None,
        }
    };
    let (base_values, loo, jump, _) = published(&Methodology::v1_0_0());
    let mut out = vec![figures(
        "1.0.0 (trimmed mean of levels)",
        &base_values,
        loo,
        jump,
    )];
    // issue 29, item 5: the current methodology's day price (the ratio of the day's summed
    // cost to its summed SIT) against the time-weighted form (the mean of the hours' prices)
    for (name, m) in [
        (
            "1.5.0 (current: time-weighted day price)",
            Methodology::v1_5_0(),
        ),
        ("1.4.0 (day price = ratio of sums)", Methodology::v1_4_0()),
        ("1.2.0 (chained, pooled quality)", Methodology::v1_2_0()),
        ("1.1.0 (chained relatives, integer)", Methodology::v1_1_0()),
    ] {
        let (v, loo, jump, base_day_loo) = published(&m);
        let mut f = figures(name, &v, loo, jump);
        f.base_day_loo_max = Some(base_day_loo);
        out.push(f);
    }
    for c in [
        Candidate::ChainGeo,
        Candidate::LogTrimmed,
        Candidate::WeightedMedian,
    ] {
        let mut refs: BTreeMap<u32, (f64, u32)> = BTreeMap::new();
        let mut prev: Option<f64> = None;
        let mut values: Vec<Option<f64>> = vec![None];
        let (mut loo, mut jump) = (Vec::new(), Vec::new());
        for d in 1..=days {
            let prices = day_prices(&by_day[d as usize], n, threshold);
            let v = match (c, prev) {
                // the chain starts from the first published value (or, without one, from the
                // trimmed geometric mean of the day's levels)
                (Candidate::ChainGeo, None) => base_values[d as usize]
                    .or_else(|| Candidate::LogTrimmed.value(&prices, None, &refs, d, None)),
                _ => c.value(&prices, prev, &refs, d, None),
            };
            if let (Some(v), true) = (v, prev.is_some() || c != Candidate::ChainGeo) {
                let changed = panel_changes(&members_on, d);
                for e in prices.keys() {
                    if let Some(w) = c.value(&prices, prev, &refs, d, Some(*e)) {
                        let x = (w - v).abs() / v;
                        loo.push(x);
                        if changed.contains(e) {
                            jump.push(x);
                        }
                    }
                }
                // leavers: the counterfactual that they had stayed at their last price
                for e in changed.iter().filter(|e| !prices.contains_key(e)) {
                    if let Some((p, _)) = refs.get(e) {
                        let mut with = prices.clone();
                        with.insert(*e, (*p, 1000));
                        if let Some(w) = c.value(&with, prev, &refs, d, None) {
                            jump.push((w - v).abs() / v);
                        }
                    }
                }
            }
            values.push(v);
            if v.is_some() {
                prev = v;
            }
            for (e, (p, _)) in &prices {
                refs.insert(*e, (*p, d));
            }
        }
        out.push(figures(c.name(), &values, loo, jump));
    }
    out
}

/// Endpoints whose membership changes on day `d` or `d - 1` (entry days count twice: the
/// entrant's first day and, for chained methods, its first relative).
fn panel_changes(on: &dyn Fn(u32) -> Vec<u32>, d: u32) -> Vec<u32> {
    let (a, b, c) = (on(d.saturating_sub(2)), on(d - 1), on(d));
    let mut v: Vec<u32> = c
        .iter()
        .filter(|e| !b.contains(e) || !a.contains(e))
        .chain(b.iter().filter(|e| !c.contains(e)))
        .copied()
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The table of `run`.
pub fn render(rows: &[MethodFigures], seed: u64, n: usize) -> String {
    let mut s = format!(
        "{} simulated days, {n} endpoints (entries, exits, outages), seed {seed}\n\n{:<36} {:>9} {:>9} {:>11} {:>8} {:>9}\n",
        rows.first().map(|r| r.days).unwrap_or(0),
        "method", "LOO max", "LOO p95", "panel jump", "corr", "RMSE log"
    );
    for r in rows {
        s.push_str(&format!(
            "{:<36} {:>8.2}% {:>8.2}% {:>10.2}% {:>8.3} {:>9.4}\n",
            r.method,
            r.loo_max * 100.0,
            r.loo_p95 * 100.0,
            r.panel_jump_max * 100.0,
            r.corr_daily_log_changes,
            r.rmse_log_level
        ));
    }
    for r in rows {
        if let Some(b) = r.base_day_loo_max {
            s.push_str(&format!(
                "\n{}: LOO figures are over chained days; on the base day (the anchor: trimmed geometric mean of the day's levels) the largest LOO is {:.2}%.\n",
                r.method,
                b * 100.0
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The figures issue 17 asks of the chosen method, on the seeded simulated market, next to
    /// the 1.0.0 baseline that motivated it (deterministic: seeded, no clock).
    #[test]
    fn chained_relatives_meet_the_stability_goals_where_levels_do_not() {
        let rows = run(60, 1, 16, Schedule::Uniform);
        let by = |m: &str| rows.iter().find(|r| r.method.starts_with(m)).unwrap();
        let chain = by("1.2.0");
        let previous = by("1.1.0");
        assert!(previous.loo_max <= 0.02, "{previous:?}");
        let proto = by("chain-geo-relatives");
        assert!(
            proto.loo_max <= 0.02 && proto.corr_daily_log_changes >= 0.95,
            "{proto:?}"
        );
        assert!(chain.loo_max <= 0.02, "{chain:?}");
        assert!(chain.panel_jump_max <= 0.01, "{chain:?}");
        assert!(chain.corr_daily_log_changes >= 0.95, "{chain:?}");
        // the current methodology (time-weighted day prices) meets them too
        for current in [by("1.5.0"), by("1.4.0")] {
            assert!(current.loo_max <= 0.02, "{current:?}");
            assert!(current.panel_jump_max <= 0.01, "{current:?}");
            assert!(current.corr_daily_log_changes >= 0.95, "{current:?}");
        }
        let base = by("1.0.0");
        assert!(base.loo_max > 0.05, "{base:?}");
        assert_eq!(rows.len(), 8);
    }

    /// With probe families (different size and relative price per endpoint) the chained index
    /// stays within a few percent of one endpoint under both schedules, and the schedules do
    /// draw different work (BENCHMARKS.md has the 5-seed figures).
    #[test]
    fn family_schedules_run_and_differ() {
        let m = PanelMarket::new(2, 21, 16);
        let start = Date::parse("2026-01-01").unwrap();
        let a = m.observations(2, start, Schedule::Independent);
        let b = m.observations(2, start, Schedule::Paired);
        assert_ne!(
            a.iter().map(|o| o.attempted_sit).collect::<Vec<_>>(),
            b.iter().map(|o| o.attempted_sit).collect::<Vec<_>>()
        );
        // paired: in each hour every endpoint's k-th probe is of the same family, so its
        // size lies in that family's band (sizes of one family never overlap another's)
        let band = |s: u64| {
            [120..=180, 240..=360, 480..=720, 960..=1440]
                .iter()
                .position(|r| r.contains(&s))
                .unwrap()
        };
        let mut by_slot: BTreeMap<(i64, i64), std::collections::BTreeSet<usize>> = BTreeMap::new();
        for o in &b {
            let hour = (o.at_ms - start.start_ms()) / HOUR_MS;
            let k = (o.at_ms - start.start_ms() - hour * HOUR_MS) / 1_200_000;
            by_slot
                .entry((hour, k))
                .or_default()
                .insert(band(o.attempted_sit));
        }
        assert!(by_slot.values().all(|f| f.len() == 1));
        for s in [Schedule::Independent, Schedule::Paired] {
            let rows = run(21, 2, 16, s);
            let chain = rows.iter().find(|r| r.method.starts_with("1.2.0")).unwrap();
            assert!(chain.loo_max <= 0.03, "{s:?}: {chain:?}");
        }
    }

    #[test]
    fn panel_has_entries_exits_and_outages_and_a_factor_that_moves() {
        let m = PanelMarket::new(1, 30, 16);
        assert!(m.members.iter().any(|x| x.from_day > 0));
        assert!(m.members.iter().any(|x| x.to_day < 30));
        assert!(m.members.iter().any(|x| !x.outages.is_empty()));
        let levels: Vec<f64> = m.members.iter().map(|x| x.level).collect();
        let (lo, hi) = levels
            .iter()
            .fold((f64::MAX, 0f64), |(a, b), x| (a.min(*x), b.max(*x)));
        assert!(hi / lo > 10.0, "levels {lo}..{hi}");
        let t = m.true_daily();
        assert!(
            t.iter().cloned().fold(0f64, f64::max) / t.iter().cloned().fold(f64::MAX, f64::min)
                > 1.05
        );
    }
}
