//! The statistics of a certificate, in integers so that `sit verify-cert` recomputes exactly
//! what the certifier wrote.
//!
//! - Wilson score lower bound at 95% (z = 1.959963985), as a [`Fixed`] (9 places). With k
//!   successes in n attempts:
//!   `lower = (k + z²/2 - z * sqrt(k(n-k)/n + z²/4)) / (n + z²)`.
//!   The square root is rounded **up** and the final division **down**, so rounding never
//!   overstates the bound.
//! - Latency percentiles come from an HdrHistogram of microseconds with 3 significant digits;
//!   `value_at_quantile` reports the highest value equivalent to the percentile's bucket.

use crate::fixed::{Fixed, ONE};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// z for a two-sided 95% interval, at the Fixed scale.
pub const Z: i128 = 1_959_963_985;
/// z², at the Fixed scale (rounded half to even from Z * Z).
pub const Z2: i128 = 3_841_458_822;

fn isqrt_ceil(v: i128) -> i128 {
    debug_assert!(v >= 0);
    let x = v.isqrt();
    if x * x == v {
        x
    } else {
        x + 1
    }
}

/// Wilson 95% lower bound of k successes in n trials (0 when n = 0).
pub fn wilson_lower(k: u64, n: u64) -> Fixed {
    if n == 0 {
        return Fixed(0);
    }
    debug_assert!(k <= n);
    let (k, n) = (k as i128, n as i128);
    // inner = k(n-k)/n + z²/4 at scale 10^18 (so its square root is at scale 10^9).
    let inner = k * (n - k) * ONE * ONE / n + Z2 * ONE / 4;
    let root = isqrt_ceil(inner);
    let num = k * ONE + Z2 / 2 - (Z * root + ONE - 1) / ONE; // z * root, rounded up
    let den = n * ONE + Z2;
    if num <= 0 {
        return Fixed(0);
    }
    Fixed(num * ONE / den)
}

/// `k / n` at the Fixed scale, half to even (0 when n = 0).
pub fn rate(k: u64, n: u64) -> Fixed {
    if n == 0 {
        return Fixed(0);
    }
    Fixed(crate::fixed::div_round_half_even(
        k as i128 * ONE,
        n as i128,
    ))
}

/// The fewest attempts with which a perfect score reaches `threshold` (the bound rises with n).
pub fn min_attempts(threshold: Fixed) -> u64 {
    (1..=1_000_000)
        .find(|&n| wilson_lower(n, n) >= threshold)
        .unwrap_or(u64::MAX)
}

/// When the observed rate is above `threshold` but its bound is not: the fewest attempts at the
/// same observed rate whose bound would reach it. None when the rate itself is too low.
pub fn attempts_needed(k: u64, n: u64, threshold: Fixed) -> Option<u64> {
    if n == 0 || rate(k, n) <= threshold {
        return None;
    }
    (n..=1_000_000).find(|&m| wilson_lower(k * m / n, m) >= threshold)
}

/// Percentiles of one latency (or speed) figure.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Values recorded.
    pub count: u64,
    /// The smallest value recorded (at the histogram's precision).
    pub min: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// The largest value recorded (at the histogram's precision).
    pub max: u64,
}

/// An HdrHistogram of positive integers up to 10^12 (over 11 days in microseconds) with 3
/// significant digits; values outside are clamped to the range.
pub struct Hist(Histogram<u64>);

impl Default for Hist {
    fn default() -> Self {
        Hist(Histogram::new_with_bounds(1, 1_000_000_000_000, 3).expect("valid bounds"))
    }
}

impl Hist {
    /// Record one value (0 counts as 1; above 10^12 is clamped).
    pub fn record(&mut self, v: u64) {
        self.0.saturating_record(v.max(1));
    }

    /// The recorded values' percentiles (all zero when nothing was recorded).
    pub fn summary(&self) -> Percentiles {
        if self.0.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: self.0.len(),
            min: self.0.min(),
            p50: self.0.value_at_quantile(0.50),
            p90: self.0.value_at_quantile(0.90),
            p99: self.0.value_at_quantile(0.99),
            max: self.0.max(),
        }
    }

    /// Counts in `buckets` equal-width bins over [min, max] (for the report's SVG).
    pub fn bins(&self, buckets: usize) -> Vec<(u64, u64)> {
        if self.0.is_empty() || buckets == 0 {
            return vec![];
        }
        let (lo, hi) = (self.0.min(), self.0.max());
        let width = ((hi - lo) / buckets as u64).max(1);
        let mut out: Vec<(u64, u64)> = (0..buckets as u64).map(|i| (lo + i * width, 0)).collect();
        for v in self.0.iter_recorded() {
            let i = (((v.value_iterated_to() - lo) / width) as usize).min(buckets - 1);
            out[i].1 += v.count_at_value();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn z_squared_is_consistent_with_z() {
        assert_eq!(
            crate::fixed::div_round_half_even(Z * Z, ONE),
            Z2,
            "Z2 is Z*Z rounded"
        );
    }

    #[test]
    fn wilson_lower_golden_values() {
        // floor(10^9 x the exact Wilson bound), computed with 60-digit decimals (Python
        // `decimal`) from the same z and z². Ours may be lower by rounding, never higher.
        let cases = [
            (95, 100, 888_249_530),
            (10, 10, 722_467_200),
            (50, 100, 403_831_530),
            (80, 100, 711_170_834),
            (1, 1, 206_549_314),
            (999, 1000, 994_357_441),
        ];
        for (k, n, exact) in cases {
            let w = wilson_lower(k, n).0;
            assert!(w <= exact && exact - w <= 2, "{k}/{n}: {w} vs {exact}");
        }
        assert_eq!(wilson_lower(0, 10), Fixed(0));
        assert_eq!(wilson_lower(0, 0), Fixed(0));
    }

    #[test]
    fn wilson_lower_is_monotone_in_successes_and_below_the_rate() {
        for n in [1u64, 7, 40, 100, 1000] {
            let mut last = Fixed(-1);
            for k in 0..=n {
                let w = wilson_lower(k, n);
                assert!(w > last || (k == 0 && w == Fixed(0)), "{k}/{n}");
                assert!(w <= rate(k, n), "{k}/{n}");
                last = w;
            }
        }
    }

    #[test]
    fn minimum_attempts_per_tier_threshold() {
        // n / (n + z²) >= t  <=>  n >= z² t / (1 - t)
        assert_eq!(min_attempts(Fixed(800_000_000)), 16);
        assert_eq!(min_attempts(Fixed(700_000_000)), 9);
        assert_eq!(min_attempts(Fixed(500_000_000)), 4);
        assert_eq!(min_attempts(Fixed(900_000_000)), 35);
    }

    #[test]
    fn attempts_needed_at_the_observed_rate() {
        // 9 of 10 is above 0.80 but its bound is not.
        assert!(wilson_lower(9, 10) < Fixed(800_000_000));
        let m = attempts_needed(9, 10, Fixed(800_000_000)).unwrap();
        assert!(wilson_lower(9 * m / 10, m) >= Fixed(800_000_000));
        assert!(wilson_lower(9 * (m - 1) / 10, m - 1) < Fixed(800_000_000));
        assert_eq!(attempts_needed(7, 10, Fixed(800_000_000)), None);
    }

    #[test]
    fn isqrt_ceil_is_exact() {
        for v in [0i128, 1, 2, 3, 4, 15, 16, 17, 10i128.pow(30) + 7] {
            let r = isqrt_ceil(v);
            assert!(r * r >= v && (r == 0 || (r - 1) * (r - 1) < v), "{v}");
        }
    }

    #[test]
    fn percentiles_from_the_histogram() {
        let mut h = Hist::default();
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        let p = h.summary();
        assert_eq!(p.count, 1000);
        // within HdrHistogram's 3 significant digits
        assert!((p.p50 as i64 - 500_000).abs() <= 500, "{p:?}");
        assert!((p.p99 as i64 - 990_000).abs() <= 1000, "{p:?}");
        assert_eq!(h.bins(10).iter().map(|b| b.1).sum::<u64>(), 1000);
    }
}
