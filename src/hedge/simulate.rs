//! The paper's scenario, made explicit: a Monte Carlo of a mean-reverting jump-diffusion spot
//! SIT price, a buyer whose monthly volume explodes, and that buyer's monthly futures settled
//! on the simulated monthly average, hedged with the minimum-variance ratio. Analytics, not
//! settlement: f64, one seeded stream, paths in order, so a seed reproduces every figure.
//!
//! The model (all parameters in a scenario file under `scenarios/`, each with its source):
//! - spot: x = ln S follows dx = κ(θ - x)dt + σ dW + J dN, N Poisson of intensity λ,
//!   J ~ Normal(μ_J, σ_J²). Stepped exactly for the diffusion (an Ornstein-Uhlenbeck step)
//!   with the step's jumps added at its end. Stationary moments (the closed form the test
//!   checks): E[x] = θ + λμ_J/κ, Var[x] = (σ² + λ(μ_J² + σ_J²)) / 2κ.
//! - the buyer: month m's volume Q_m = V_0 (1+g)^m e^{σ_Q Z - σ_Q²/2} (millions of SIT; the
//!   forecast is the median growth path, the error its spread), paying Q_m A_m B_m where A_m is
//!   the month's average spot price (the contract's settlement value) and B_m = e^{σ_B Z -
//!   σ_B²/2} the buyer's own basis (its provider mix against the index).
//! - the hedge: at the start, long h × E[Q_m] of month m's future at F_m = E[A_m] (the model's
//!   fair price, no risk premium), settled at A_m. h is the minimum-variance ratio of the total
//!   cost on the futures' total P&L, estimated on the first half of the paths and evaluated
//!   on the second (out of sample).
//! - the figure: volatility reduction 1 - sd(hedged total cost) / sd(unhedged total cost) over
//!   the horizon, with a 95% bootstrap interval over the evaluation paths.

use serde::{Deserialize, Serialize};
use sit_core::rng::Rng;
use std::collections::BTreeMap;

/// One parameter with where its value comes from.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Param {
    pub value: f64,
    #[serde(default)]
    pub unit: Option<String>,
    pub source: String,
}

/// A scenario file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub parameters: BTreeMap<String, Param>,
    /// The volatility reduction band the scenario is meant to reproduce (low, high), and why.
    pub band: Band,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Band {
    pub low: f64,
    pub high: f64,
    pub source: String,
}

/// The parameters a scenario must give, with their admissible ranges.
pub const PARAMETERS: [(&str, f64, f64); 13] = [
    ("s0", 1e-9, 1e9),
    ("theta_level", 1e-9, 1e9),
    ("kappa", 1e-6, 1e3),
    ("sigma", 0.0, 10.0),
    ("jump_intensity", 0.0, 1e3),
    ("jump_mean", -5.0, 5.0),
    ("jump_sd", 0.0, 5.0),
    ("months", 1.0, 600.0),
    ("steps_per_month", 1.0, 1000.0),
    ("volume0", 1e-9, 1e15),
    ("volume_growth", -0.99, 10.0),
    ("volume_sd", 0.0, 5.0),
    ("basis_sd", 0.0, 5.0),
];

/// The scenario shipped with the repository (the paper's demand explosion).
pub const DEMAND_EXPLOSION: &str = include_str!("../../scenarios/demand-explosion.toml");

impl Scenario {
    /// Parse and check a scenario (`file` names it in errors): every parameter present, in
    /// range, with a non-empty source; nothing unknown.
    pub fn parse(file: &str, text: &str) -> Result<Scenario, String> {
        let s: Scenario = toml::from_str(text).map_err(|e| format!("{file}: {e}"))?;
        for (name, lo, hi) in PARAMETERS {
            let p = s.parameters.get(name).ok_or_else(|| {
                format!(
                    "{file}: [parameters] has no `{name}`; give {name} = {{ value = ..., source = \"...\" }}"
                )
            })?;
            if !(p.value.is_finite() && p.value >= lo && p.value <= hi) {
                return Err(format!(
                    "{file}: parameters.{name} = {} is outside {lo}..{hi}",
                    p.value
                ));
            }
            if p.source.trim().is_empty() {
                return Err(format!(
                    "{file}: parameters.{name} has no source; state where the value comes from or why it was chosen"
                ));
            }
        }
        if let Some(extra) = s
            .parameters
            .keys()
            .find(|k| !PARAMETERS.iter().any(|(n, _, _)| n == k))
        {
            return Err(format!(
                "{file}: parameters.{extra} is not a parameter of the model; known: {}",
                PARAMETERS.map(|p| p.0).join(", ")
            ));
        }
        for name in ["months", "steps_per_month"] {
            if s.parameters[name].value.fract() != 0.0 {
                return Err(format!("{file}: parameters.{name} must be a whole number"));
            }
        }
        let p = |k: &str| s.parameters[k].value;
        if p("sigma") == 0.0
            && (p("jump_intensity") == 0.0 || (p("jump_mean") == 0.0 && p("jump_sd") == 0.0))
        {
            return Err(format!(
                "{file}: the spot price never moves (sigma = 0 and no jumps): there is nothing to hedge"
            ));
        }
        if !(0.0..=1.0).contains(&s.band.low) || s.band.low > s.band.high || s.band.high > 1.0 {
            return Err(format!("{file}: band must satisfy 0 <= low <= high <= 1"));
        }
        Ok(s)
    }

    fn p(&self, name: &str) -> f64 {
        self.parameters[name].value
    }

    /// (κ, λ, μ_J, σ_J, σ).
    fn spot(&self) -> (f64, f64, f64, f64, f64) {
        (
            self.p("kappa"),
            self.p("jump_intensity"),
            self.p("jump_mean"),
            self.p("jump_sd"),
            self.p("sigma"),
        )
    }

    /// The exact stationary mean and variance of the simulated chain (an exact OU step of
    /// length `dt` years, then the step's jumps): θ + λdt·μ_J/(1 - d) and σ²/2κ +
    /// λdt(μ_J² + σ_J²)/(1 - d²), d = e^{-κdt}. They tend to [`Scenario::stationary`] as dt -> 0.
    pub fn stationary_chain(&self) -> (f64, f64) {
        let dt = 1.0 / (12.0 * self.p("steps_per_month"));
        let (k, l, mj, sj, s) = self.spot();
        let d = (-k * dt).exp();
        (
            self.p("theta_level").ln() + l * dt * mj / (1.0 - d),
            s * s / (2.0 * k) + l * dt * (mj * mj + sj * sj) / (1.0 - d * d),
        )
    }

    /// Closed-form stationary mean and variance of x = ln S (the continuous process).
    pub fn stationary(&self) -> (f64, f64) {
        let (k, l, mj, sj, s) = self.spot();
        (
            self.p("theta_level").ln() + l * mj / k,
            (s * s + l * (mj * mj + sj * sj)) / (2.0 * k),
        )
    }
}

/// Quantiles of a month's average price across paths (for the fan chart).
#[derive(Debug, Clone, Serialize)]
pub struct Fan {
    pub month: usize,
    pub p05: f64,
    pub p25: f64,
    pub p50: f64,
    pub p75: f64,
    pub p95: f64,
}

/// What `sit hedge simulate` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub scenario: String,
    pub seed: u64,
    pub paths: usize,
    pub months: usize,
    /// The minimum-variance ratio (estimated on the calibration half).
    pub h: f64,
    /// 1 - sd(hedged) / sd(unhedged) of the horizon's total cost, evaluation half.
    pub reduction: f64,
    pub reduction_ci95: (f64, f64),
    pub band: (f64, f64),
    pub in_band: bool,
    /// The same, month by month (mean over months).
    pub monthly_reduction_mean: f64,
    pub total_cost_unhedged: Summary,
    pub total_cost_hedged: Summary,
    /// ln S at the horizon's last step across all paths, against the stationary closed form.
    pub moments: Moments,
    pub fan: Vec<Fan>,
    /// A few spot paths (monthly averages), for the chart.
    pub sample_paths: Vec<Vec<f64>>,
    /// Total cost of each evaluation path (unhedged, hedged), for the histogram.
    #[serde(skip)]
    pub totals: Vec<(f64, f64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub mean: f64,
    pub sd: f64,
    pub p05: f64,
    pub p95: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Moments {
    pub mean: f64,
    /// The continuous process's stationary mean.
    pub mean_closed_form: f64,
    /// The simulated step chain's stationary mean ([`Scenario::stationary_chain`]).
    pub mean_step_chain: f64,
    pub mean_se: f64,
    pub variance: f64,
    pub variance_closed_form: f64,
    pub variance_step_chain: f64,
    pub variance_se: f64,
}

use super::analysis::{cov, mean};

fn var(x: &[f64]) -> f64 {
    cov(x, x)
}

/// The `q` quantile (linear between order statistics) of sorted `x`.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (i, f) = (pos.floor() as usize, pos.fract());
    if i + 1 < sorted.len() {
        sorted[i] * (1.0 - f) + sorted[i + 1] * f
    } else {
        sorted[i]
    }
}

fn sorted(x: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut v: Vec<f64> = x.collect();
    v.sort_by(f64::total_cmp);
    v
}

fn summary(x: &[f64]) -> Summary {
    let s = sorted(x.iter().copied());
    Summary {
        mean: mean(x),
        sd: var(x).sqrt(),
        p05: quantile(&s, 0.05),
        p95: quantile(&s, 0.95),
    }
}

/// Poisson draw by inversion (the intensity per step is small).
fn poisson(rng: &mut Rng, mean: f64) -> u32 {
    let u = rng.unit_f64();
    let mut p = (-mean).exp();
    let (mut cum, mut k) = (p, 0u32);
    while u > cum && k < 1000 {
        k += 1;
        p *= mean / k as f64;
        cum += p;
    }
    k
}

/// Run `paths` paths of `scenario` from `seed`. `paths` is at least 100 (two halves of 50).
pub fn run(scenario: &Scenario, paths: usize, seed: u64) -> Outcome {
    let paths = paths.max(100);
    let months = scenario.p("months") as usize;
    let spm = scenario.p("steps_per_month") as usize;
    let dt = 1.0 / (12.0 * spm as f64);
    let (kappa, lam, mj, sj, sigma) = scenario.spot();
    let theta = scenario.p("theta_level").ln();
    let decay = (-kappa * dt).exp();
    let step_sd = sigma * ((1.0 - (-2.0 * kappa * dt).exp()) / (2.0 * kappa)).sqrt();
    let (v0, g, qsd, bsd) = (
        scenario.p("volume0"),
        scenario.p("volume_growth"),
        scenario.p("volume_sd"),
        scenario.p("basis_sd"),
    );
    let expected_q: Vec<f64> = (0..months).map(|m| v0 * (1.0 + g).powi(m as i32)).collect();
    let mut rng = Rng::new(seed);
    // per path: monthly average prices, volumes, bases; the last ln S
    let mut avg = vec![0.0; paths * months];
    let mut cost = vec![0.0; paths * months];
    let mut last_x = vec![0.0; paths];
    for p in 0..paths {
        let mut x = scenario.p("s0").ln();
        for m in 0..months {
            let mut acc = 0.0;
            for _ in 0..spm {
                x = theta + (x - theta) * decay + step_sd * rng.normal();
                let n = poisson(&mut rng, lam * dt);
                if n > 0 {
                    x += n as f64 * mj + sj * (n as f64).sqrt() * rng.normal();
                }
                acc += x.exp();
            }
            let a = acc / spm as f64;
            let q = expected_q[m] * (qsd * rng.normal() - qsd * qsd / 2.0).exp();
            let b = (bsd * rng.normal() - bsd * bsd / 2.0).exp();
            avg[p * months + m] = a;
            cost[p * months + m] = q * a * b;
        }
        last_x[p] = x;
    }
    let half = paths / 2;
    // futures prices: the model's expectation of each month's average (calibration half)
    let fut: Vec<f64> = (0..months)
        .map(|m| (0..half).map(|p| avg[p * months + m]).sum::<f64>() / half as f64)
        .collect();
    let total = |p: usize| (0..months).map(|m| cost[p * months + m]).sum::<f64>();
    let hedge_pnl = |p: usize| {
        (0..months)
            .map(|m| expected_q[m] * (avg[p * months + m] - fut[m]))
            .sum::<f64>()
    };
    let (cal_c, cal_x): (Vec<f64>, Vec<f64>) = (0..half).map(|p| (total(p), hedge_pnl(p))).unzip();
    let h = cov(&cal_c, &cal_x) / var(&cal_x);
    let eval: Vec<(f64, f64)> = (half..paths)
        .map(|p| {
            let c = total(p);
            (c, c - h * hedge_pnl(p))
        })
        .collect();
    let reduction_of = |idx: &mut dyn Iterator<Item = usize>| {
        let (u, g): (Vec<f64>, Vec<f64>) = idx.map(|i| eval[i]).unzip();
        1.0 - (var(&g) / var(&u)).sqrt()
    };
    let reduction = reduction_of(&mut (0..eval.len()));
    // bootstrap: 1,000 resamples of the evaluation paths, on their own seeded stream
    let mut boot_rng = Rng::new(seed ^ 0xB007_5743_9000_0001);
    let n = eval.len();
    let boots = sorted((0..1000).map(|_| {
        let picks: Vec<usize> = (0..n)
            .map(|_| (boot_rng.next_u64() % n as u64) as usize)
            .collect();
        reduction_of(&mut picks.into_iter())
    }));
    let monthly: Vec<f64> = (0..months)
        .map(|m| {
            let (u, g): (Vec<f64>, Vec<f64>) = (half..paths)
                .map(|p| {
                    let c = cost[p * months + m];
                    (c, c - h * expected_q[m] * (avg[p * months + m] - fut[m]))
                })
                .unzip();
            1.0 - (var(&g) / var(&u)).sqrt()
        })
        .collect();
    let (mc, vc) = scenario.stationary();
    let (md, vd) = scenario.stationary_chain();
    let vx = var(&last_x);
    let m4 = {
        let mx = mean(&last_x);
        last_x.iter().map(|v| (v - mx).powi(4)).sum::<f64>() / paths as f64
    };
    let fan = (0..months)
        .map(|m| {
            let s = sorted((0..paths).map(|p| avg[p * months + m]));
            Fan {
                month: m + 1,
                p05: quantile(&s, 0.05),
                p25: quantile(&s, 0.25),
                p50: quantile(&s, 0.50),
                p75: quantile(&s, 0.75),
                p95: quantile(&s, 0.95),
            }
        })
        .collect();
    let (u, g): (Vec<f64>, Vec<f64>) = eval.iter().copied().unzip();
    Outcome {
        scenario: scenario.name.clone(),
        seed,
        paths,
        months,
        h,
        reduction,
        reduction_ci95: (quantile(&boots, 0.025), quantile(&boots, 0.975)),
        band: (scenario.band.low, scenario.band.high),
        in_band: (scenario.band.low..=scenario.band.high).contains(&reduction),
        monthly_reduction_mean: mean(&monthly),
        total_cost_unhedged: summary(&u),
        total_cost_hedged: summary(&g),
        moments: Moments {
            mean: mean(&last_x),
            mean_closed_form: mc,
            mean_step_chain: md,
            mean_se: (vx / paths as f64).sqrt(),
            variance: vx,
            variance_closed_form: vc,
            variance_step_chain: vd,
            // the standard error of a sample variance: sqrt((m4 - σ⁴) / n)
            variance_se: ((m4 - vx * vx).max(0.0) / paths as f64).sqrt(),
        },
        fan,
        sample_paths: (0..12.min(paths))
            .map(|p| avg[p * months..(p + 1) * months].to_vec())
            .collect(),
        totals: eval,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario() -> Scenario {
        Scenario::parse("demand-explosion.toml", DEMAND_EXPLOSION).unwrap()
    }

    #[test]
    fn the_shipped_scenario_states_a_source_for_every_parameter() {
        let s = scenario();
        assert_eq!(s.parameters.len(), PARAMETERS.len());
        assert!(s.parameters.values().all(|p| p.source.len() > 20));
        let e = Scenario::parse(
            "x.toml",
            &DEMAND_EXPLOSION.replace("kappa = {", "kappa_typo = {"),
        )
        .unwrap_err();
        assert!(e.contains("has no `kappa`"), "{e}");
    }

    #[test]
    fn poisson_draws_have_their_mean() {
        let mut r = Rng::new(3);
        let n = 200_000;
        let m: f64 = (0..n).map(|_| poisson(&mut r, 0.3) as f64).sum::<f64>() / n as f64;
        assert!((m - 0.3).abs() < 0.005, "{m}");
    }

    /// With no volume or basis risk the cost is V·A exactly: the total cost is the futures'
    /// P&L plus a constant, so h* = 1 and the hedge removes all of its volatility.
    #[test]
    fn without_volume_or_basis_risk_the_hedge_is_perfect() {
        let mut s = scenario();
        for k in ["volume_sd", "basis_sd", "volume_growth"] {
            s.parameters.get_mut(k).unwrap().value = 0.0;
        }
        s.parameters.get_mut("months").unwrap().value = 6.0;
        s.parameters.get_mut("steps_per_month").unwrap().value = 5.0;
        let o = run(&s, 400, 1);
        assert!((o.h - 1.0).abs() < 1e-9, "{}", o.h);
        assert!(o.reduction > 0.999_999, "{}", o.reduction);
    }
}
