//! How well would a hedge on the index have worked for one buyer's own cost? Pure: series in,
//! figures out. Analytics, not settlement: f64 throughout.
//!
//! With S the buyer's cost per unit of work and F the index, over consecutive observations:
//! - the minimum-variance hedge ratio h* = Cov(ΔS, ΔF) / Var(ΔF) (sample moments, n - 1);
//! - hedge effectiveness (Ederington 1979) 1 - Var(ΔS - h*ΔF) / Var(ΔS), which in sample equals
//!   the R² of ΔS on ΔF;
//! - the basis S - h*F (level, spread and how much it moves);
//! - h* and R² over a rolling window, to see whether the relation is stable;
//! - cumulative cost changes, unhedged (ΣΔS) and hedged (Σ(ΔS - h*ΔF)).
//!
//! Units: S is USD per unit of work and F USD per 1,000,000 SIT, so h* is in millions of SIT
//! per unit of work: the SIT-equivalent of one unit of the buyer's work, as a hedge sees it.

use serde::Serialize;

/// One dated observation (dates as `YYYY-MM-DD` or `YYYY-MM`, sortable as text).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    pub date: String,
    pub value: f64,
}

/// Summary statistics of a series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    pub mean: f64,
    pub sd: f64,
    pub min: f64,
    pub max: f64,
}

/// One window of the rolling estimate (ending at `date`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rolling {
    pub date: String,
    pub h: f64,
    pub r2: f64,
}

/// Everything `sit hedge` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Observations on dates both series have.
    pub observations: usize,
    pub first: String,
    pub last: String,
    /// The minimum-variance hedge ratio (millions of SIT per unit of work).
    pub h: f64,
    /// Ederington hedge effectiveness, 1 - Var(hedged) / Var(unhedged).
    pub effectiveness: f64,
    /// R² of ΔS on ΔF (equal to the effectiveness in sample: a check).
    pub r2: f64,
    /// Correlation of ΔS and ΔF.
    pub correlation: f64,
    pub sd_unhedged: f64,
    pub sd_hedged: f64,
    /// Basis S - h*F, and its changes.
    pub basis: Stats,
    pub basis_change_sd: f64,
    pub window: usize,
    pub rolling: Vec<Rolling>,
    /// (date, cost per unit, index) on the common dates.
    pub aligned: Vec<(String, f64, f64)>,
    /// Cumulative cost change since the first date: (date, unhedged, hedged).
    pub pnl: Vec<(String, f64, f64)>,
}

/// Why a hedge cannot be estimated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HedgeError {
    #[error(
        "only {0} dates are common to the costs and the index; at least 3 are needed (2 changes)"
    )]
    TooFew(usize),
    #[error("the index does not move over the common dates (Var(ΔF) = 0): no hedge ratio exists")]
    FlatIndex,
    #[error(
        "the cost per unit does not move over the common dates (Var(ΔS) = 0): nothing to hedge"
    )]
    FlatCost,
}

pub(crate) fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

/// Sample covariance (n - 1).
pub(crate) fn cov(x: &[f64], y: &[f64]) -> f64 {
    let (mx, my) = (mean(x), mean(y));
    x.iter()
        .zip(y)
        .map(|(a, b)| (a - mx) * (b - my))
        .sum::<f64>()
        / (x.len() as f64 - 1.0)
}

fn stats(x: &[f64]) -> Stats {
    Stats {
        mean: mean(x),
        sd: if x.len() > 1 { cov(x, x).sqrt() } else { 0.0 },
        min: x.iter().copied().fold(f64::INFINITY, f64::min),
        max: x.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    }
}

/// h* and R² of `ds` on `df` (None when either does not move).
fn fit(ds: &[f64], df: &[f64]) -> Option<(f64, f64)> {
    let (vs, vf) = (cov(ds, ds), cov(df, df));
    if vf <= 0.0 || vs <= 0.0 {
        return None;
    }
    let c = cov(ds, df);
    Some((c / vf, c * c / (vs * vf)))
}

/// The hedge of `cost` (per unit of work) by `index`, on their common dates, with a rolling
/// window of `window` changes.
pub fn analyse(cost: &[Point], index: &[Point], window: usize) -> Result<Report, HedgeError> {
    let idx: std::collections::BTreeMap<&str, f64> =
        index.iter().map(|p| (p.date.as_str(), p.value)).collect();
    let mut aligned: Vec<(String, f64, f64)> = cost
        .iter()
        .filter_map(|p| {
            idx.get(p.date.as_str())
                .map(|f| (p.date.clone(), p.value, *f))
        })
        .collect();
    aligned.sort_by(|a, b| a.0.cmp(&b.0));
    if aligned.len() < 3 {
        return Err(HedgeError::TooFew(aligned.len()));
    }
    let ds: Vec<f64> = aligned.windows(2).map(|w| w[1].1 - w[0].1).collect();
    let df: Vec<f64> = aligned.windows(2).map(|w| w[1].2 - w[0].2).collect();
    if cov(&df, &df) <= 0.0 {
        return Err(HedgeError::FlatIndex);
    }
    if cov(&ds, &ds) <= 0.0 {
        return Err(HedgeError::FlatCost);
    }
    let (h, r2) = fit(&ds, &df).expect("both vary");
    let hedged: Vec<f64> = ds.iter().zip(&df).map(|(s, f)| s - h * f).collect();
    let (vu, vh) = (cov(&ds, &ds), cov(&hedged, &hedged));
    let basis: Vec<f64> = aligned.iter().map(|(_, s, f)| s - h * f).collect();
    let basis_change: Vec<f64> = basis.windows(2).map(|w| w[1] - w[0]).collect();
    let window = window.max(3);
    let rolling = if ds.len() >= window {
        (window..=ds.len())
            .filter_map(|end| {
                fit(&ds[end - window..end], &df[end - window..end]).map(|(h, r2)| Rolling {
                    date: aligned[end].0.clone(),
                    h,
                    r2,
                })
            })
            .collect()
    } else {
        vec![]
    };
    let mut pnl = vec![(aligned[0].0.clone(), 0.0, 0.0)];
    let (mut u, mut g) = (0.0, 0.0);
    for (i, (s, f)) in ds.iter().zip(&df).enumerate() {
        u += s;
        g += s - h * f;
        pnl.push((aligned[i + 1].0.clone(), u, g));
    }
    Ok(Report {
        observations: aligned.len(),
        first: aligned[0].0.clone(),
        last: aligned[aligned.len() - 1].0.clone(),
        h,
        effectiveness: 1.0 - vh / vu,
        r2,
        correlation: cov(&ds, &df) / (vu * cov(&df, &df)).sqrt(),
        sd_unhedged: vu.sqrt(),
        sd_hedged: vh.sqrt(),
        basis: stats(&basis),
        basis_change_sd: if basis_change.len() > 1 {
            cov(&basis_change, &basis_change).sqrt()
        } else {
            0.0
        },
        window,
        rolling,
        aligned,
        pnl,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pts(v: &[(&str, f64)]) -> Vec<Point> {
        v.iter()
            .map(|(d, x)| Point {
                date: d.to_string(),
                value: *x,
            })
            .collect()
    }

    /// Golden, by hand: F = 1, 2, 4, 3; S = 2F + 1 exactly: ΔF = 1, 2, -1; ΔS = 2, 4, -2.
    /// h* = 2, effectiveness 1, basis S - 2F = 1 everywhere.
    #[test]
    fn an_exact_linear_cost_has_its_slope_as_the_ratio_and_a_perfect_hedge() {
        let f = pts(&[
            ("2026-01", 1.0),
            ("2026-02", 2.0),
            ("2026-03", 4.0),
            ("2026-04", 3.0),
        ]);
        let s = pts(&[
            ("2026-01", 3.0),
            ("2026-02", 5.0),
            ("2026-03", 9.0),
            ("2026-04", 7.0),
        ]);
        let r = analyse(&s, &f, 2).unwrap();
        assert!((r.h - 2.0).abs() < 1e-12, "{}", r.h);
        assert!((r.effectiveness - 1.0).abs() < 1e-12);
        assert!((r.basis.mean - 1.0).abs() < 1e-12 && r.basis.sd < 1e-12);
        assert_eq!(r.pnl.last().unwrap().1, 4.0, "unhedged: 7 - 3");
        assert!(
            r.pnl.last().unwrap().2.abs() < 1e-12,
            "hedged: nothing left"
        );
        // rolling over 3 changes: one window, ending at the last date
        assert_eq!(r.rolling.len(), 1);
        assert_eq!(r.rolling[0].date, "2026-04");
    }

    /// Golden, by hand: ΔF = 1, -1, 1, -1 (mean 0) and ΔS = 1, 0, 1, 0 (mean 0.5).
    /// Cov = (0.5 + 0.5 + 0.5 + 0.5) / 3 = 2/3; Var(ΔF) = 4/3; h* = 0.5; Var(ΔS) = 1/3;
    /// R² = (2/3)² / ((1/3)(4/3)) = 1.
    #[test]
    fn sample_moments_match_a_hand_computation() {
        let f = pts(&[
            ("a1", 0.0),
            ("a2", 1.0),
            ("a3", 0.0),
            ("a4", 1.0),
            ("a5", 0.0),
        ]);
        let s = pts(&[
            ("a1", 0.0),
            ("a2", 1.0),
            ("a3", 1.0),
            ("a4", 2.0),
            ("a5", 2.0),
        ]);
        let r = analyse(&s, &f, 3).unwrap();
        assert!((r.h - 0.5).abs() < 1e-12, "{}", r.h);
        assert!((r.effectiveness - 1.0).abs() < 1e-12, "{}", r.effectiveness);
        assert!((r.sd_unhedged - (1.0f64 / 3.0).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn too_few_common_dates_or_a_flat_index_is_named() {
        let f = pts(&[("2026-01", 1.0), ("2026-02", 2.0)]);
        let s = pts(&[("2026-01", 1.0), ("2026-02", 2.0), ("2026-03", 2.0)]);
        assert_eq!(analyse(&s, &f, 3), Err(HedgeError::TooFew(2)));
        let f = pts(&[("2026-01", 1.0), ("2026-02", 1.0), ("2026-03", 1.0)]);
        assert_eq!(analyse(&s, &f, 3), Err(HedgeError::FlatIndex));
    }
}
