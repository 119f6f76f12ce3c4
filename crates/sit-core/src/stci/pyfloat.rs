//! STCI's arithmetic as its reference implementation does it, reproduced exactly with integers.
//!
//! STCI computes in Python (`services/indexer/indexer.py`): rates are read from JSON as IEEE-754
//! binary64 doubles; `statistics.mean` sums the doubles exactly and converts the exact mean to
//! the nearest double; the blend `(avg_in + r * avg_out) / (1 + r)` is three double operations;
//! `statistics.stdev` (Python >= 3.11) takes the exact sample variance of the doubles and its
//! correctly rounded square root; and `round(x, 2)` rounds the double's exact *binary* value
//! half to even. So a mean that is exactly a decimal half (1.075) is first the double
//! 1.07499999999999995559..., and rounds to 1.07, where half-to-even on the decimal gives 1.08.
//!
//! Every step here is exact integer arithmetic on the doubles' values `m * 2^e`, with
//! round-to-nearest, ties-to-even wherever IEEE-754 or Python rounds. No float is used, so the
//! replay does not depend on the machine's floating-point unit. Rates are far from the
//! subnormal and overflow ranges; values outside them are refused rather than mis-rounded.

use num_bigint::{BigInt, BigUint, Sign};
use num_integer::Integer;
use num_traits::{One, Signed, Zero};

/// A binary64 value, exactly: `(-1)^neg * m * 2^e` with `m < 2^53` (`m == 0` is zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Double {
    /// The sign: `true` for negative.
    pub neg: bool,
    /// The significand, below 2^53 (53 bits for a non-zero value made here).
    pub m: u64,
    /// The binary exponent.
    pub e: i64,
}

const ZERO: Double = Double {
    neg: false,
    m: 0,
    e: 0,
};

/// Normal binary64 exponents of `m * 2^e` with a 53-bit `m`.
const E_MIN: i64 = -1074;
const E_MAX: i64 = 971;

/// Why a value cannot be reproduced as the peer computed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} is outside the normal binary64 range this replay reproduces")]
pub struct RangeError(pub String);

fn big(m: u64) -> BigUint {
    BigUint::from(m)
}

/// The nearest double (ties to even) of `num / den * 2^exp`, `den > 0`.
fn nearest(neg: bool, num: &BigUint, den: &BigUint, exp: i64) -> Result<Double, RangeError> {
    if num.is_zero() {
        return Ok(ZERO);
    }
    // Scale so that the quotient has at least 55 bits: 53 kept, a rounding bit, one more.
    let s = (55 + den.bits() as i64 - num.bits() as i64).max(0);
    let (q, r) = (num << s as usize).div_rem(den);
    let t = q.bits() as i64 - 53; // >= 2
    let mask = (BigUint::one() << t as usize) - 1u32;
    let rem = &q & &mask;
    let half = BigUint::one() << (t - 1) as usize;
    let mut m: u64 = (&q >> t as usize).try_into().expect("53 bits");
    let mut t = t;
    if rem > half || (rem == half && (!r.is_zero() || m & 1 == 1)) {
        m += 1;
        if m == 1 << 53 {
            m >>= 1;
            t += 1;
        }
    }
    let e = exp - s + t;
    if !(E_MIN..=E_MAX).contains(&e) || (e == E_MIN && m < 1 << 52) {
        return Err(RangeError(format!(
            "{}{m} * 2^{e}",
            if neg { "-" } else { "" }
        )));
    }
    Ok(Double { neg, m, e })
}

fn signed(d: &Double) -> BigInt {
    BigInt::from_biguint(if d.neg { Sign::Minus } else { Sign::Plus }, big(d.m))
}

fn from_signed(v: BigInt, den: &BigUint, exp: i64) -> Result<Double, RangeError> {
    let neg = v.is_negative();
    nearest(neg, v.magnitude(), den, exp)
}

impl Double {
    /// The double nearest to the decimal `v * 10^-places` (what Python's `float()` and
    /// `json.loads` produce for that literal: correctly rounded, ties to even).
    pub fn from_decimal(v: i128, places: u32) -> Result<Double, RangeError> {
        let den = BigUint::from(10u32).pow(places);
        nearest(v < 0, &BigUint::from(v.unsigned_abs()), &den, 0)
    }

    /// The double nearest to `num / den` (`den > 0`): what Python's YAML reader makes of a
    /// decimal such as `3.0` whose exact value is `num / den`.
    pub fn from_ratio(num: i128, den: i128) -> Result<Double, RangeError> {
        if den <= 0 {
            return Err(RangeError(format!("{num}/{den}")));
        }
        nearest(
            num < 0,
            &BigUint::from(num.unsigned_abs()),
            &BigUint::from(den as u128),
            0,
        )
    }

    /// A small integer as a double (exact).
    pub fn from_int(v: i64) -> Double {
        nearest(v < 0, &BigUint::from(v.unsigned_abs()), &BigUint::one(), 0)
            .expect("small integers are normal doubles")
    }

    /// `statistics.mean` of doubles: the exact mean, converted to the nearest double.
    pub fn mean(xs: &[Double]) -> Result<Double, RangeError> {
        let (sum, _, emin) = exact_sums(xs, false);
        from_signed(sum, &BigUint::from(xs.len().max(1) as u64), emin)
    }

    /// `a + b`, rounded to the nearest double.
    pub fn plus(self, b: Double) -> Result<Double, RangeError> {
        let emin = self.e.min(b.e);
        let v = (signed(&self) << (self.e - emin) as usize) + (signed(&b) << (b.e - emin) as usize);
        from_signed(v, &BigUint::one(), emin)
    }

    /// `a * b`, rounded to the nearest double.
    pub fn times(self, b: Double) -> Result<Double, RangeError> {
        nearest(
            self.neg != b.neg,
            &(big(self.m) * big(b.m)),
            &BigUint::one(),
            self.e + b.e,
        )
    }

    /// `a / b`, rounded to the nearest double (`b` non-zero).
    pub fn over(self, b: Double) -> Result<Double, RangeError> {
        if b.m == 0 {
            return Err(RangeError("a division by zero".into()));
        }
        nearest(self.neg != b.neg, &big(self.m), &big(b.m), self.e - b.e)
    }

    /// `statistics.stdev` (Python >= 3.11): the square root, correctly rounded, of the exact
    /// sample variance of the doubles. `None` for fewer than two values.
    pub fn stdev(xs: &[Double]) -> Result<Option<Double>, RangeError> {
        let n = xs.len() as u64;
        if n < 2 {
            return Ok(None);
        }
        // x_i = X_i * 2^emin; variance = (n ΣX² - (ΣX)²) / (n (n - 1)) * 2^(2 emin)
        let (sum, sum_sq, emin) = exact_sums(xs, true);
        let num = BigInt::from(n) * sum_sq - &sum * &sum;
        let num = num.to_biguint().expect("n ΣX² >= (ΣX)²");
        let den = BigUint::from(n) * BigUint::from(n - 1);
        sqrt_nearest(&num, &den, emin).map(Some)
    }

    /// Python's `round(x, places)`: the exact binary value rounded half to even at `places`
    /// decimals, as an integer count of `10^-places`.
    pub fn round_places(self, places: u32) -> i128 {
        let n = big(self.m) * BigUint::from(10u32).pow(places);
        let q = if self.e >= 0 {
            n << self.e as usize
        } else {
            let k = (-self.e) as usize;
            let q = &n >> k;
            let rem = &n - (&q << k);
            let half = BigUint::one() << (k - 1);
            if rem > half || (rem == half && q.is_odd()) {
                q + 1u32
            } else {
                q
            }
        };
        let v: i128 = q
            .try_into()
            .expect("a rate rounded to a few places fits in i128");
        if self.neg {
            -v
        } else {
            v
        }
    }
}

/// ΣX and (optionally) ΣX² of the values on their common exponent `emin` (x_i = X_i * 2^emin).
fn exact_sums(xs: &[Double], squares: bool) -> (BigInt, BigInt, i64) {
    let emin = xs
        .iter()
        .filter(|x| x.m != 0)
        .map(|x| x.e)
        .min()
        .unwrap_or(0);
    let mut sum = BigInt::zero();
    let mut sum_sq = BigInt::zero();
    for x in xs.iter().filter(|x| x.m != 0) {
        let v = signed(x) << (x.e - emin) as usize;
        if squares {
            sum_sq += &v * &v;
        }
        sum += v;
    }
    (sum, sum_sq, emin)
}

/// The nearest double of `sqrt(num / den) * 2^exp`.
fn sqrt_nearest(num: &BigUint, den: &BigUint, exp: i64) -> Result<Double, RangeError> {
    if num.is_zero() {
        return Ok(ZERO);
    }
    // X = floor(num * 4^s / den) with at least 112 bits, so sqrt(X) has at least 56.
    let s = ((112 + den.bits() as i64 - num.bits() as i64 + 1) / 2).max(0);
    let (x, r) = (num << (2 * s) as usize).div_rem(den);
    let y = x.sqrt();
    let exact = r.is_zero() && &y * &y == x;
    let t = y.bits() as i64 - 53;
    let mask = (BigUint::one() << t as usize) - 1u32;
    let rem = &y & &mask;
    let half = BigUint::one() << (t - 1) as usize;
    let mut m: u64 = (&y >> t as usize).try_into().expect("53 bits");
    let mut t = t;
    // The true root lies in [y, y + 1) * 2^-s: below the midpoint unless rem >= half.
    if rem > half || (rem == half && (!exact || m & 1 == 1)) {
        m += 1;
        if m == 1 << 53 {
            m >>= 1;
            t += 1;
        }
    }
    let e = exp - s + t;
    if !(E_MIN..=E_MAX).contains(&e) {
        return Err(RangeError(format!("{m} * 2^{e}")));
    }
    Ok(Double { neg: false, m, e })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bits of an f64 literal, as (m, e): the tests' independent reference (the code
    /// under test uses no float).
    fn of(x: f64) -> Double {
        if x == 0.0 {
            return ZERO;
        }
        let b = x.to_bits();
        let exp = ((b >> 52) & 0x7ff) as i64;
        let frac = b & ((1 << 52) - 1);
        let (mut m, mut e) = (frac | (1 << 52), exp - 1075);
        while m & 1 == 0 {
            m >>= 1;
            e += 1;
        }
        // normalise to a 53-bit mantissa as `nearest` returns
        while m < 1 << 52 {
            m <<= 1;
            e -= 1;
        }
        Double { neg: x < 0.0, m, e }
    }

    #[test]
    fn decimals_parse_to_the_same_double_as_the_literal() {
        for (v, lit) in [
            (150_000i128, 0.15f64),
            (1_075_000, 1.075),
            (1, 0.000001),
            (2_500_000_000, 2500.0),
            (333_333, 0.333333),
            (123_456_789, 123.456789),
        ] {
            assert_eq!(Double::from_decimal(v, 6).unwrap(), of(lit), "{lit}");
        }
    }

    #[test]
    fn a_decimal_half_rounds_by_its_binary_value_as_python_does() {
        // round(1.075, 2) == 1.07 in Python; half-to-even on the decimal would give 1.08.
        assert_eq!(
            Double::from_decimal(1_075_000, 6).unwrap().round_places(2),
            107
        );
        // round(1.125, 2) == 1.12: 1.125 is exact in binary, a true tie, to even.
        assert_eq!(
            Double::from_decimal(1_125_000, 6).unwrap().round_places(2),
            112
        );
        // round(1.375, 2) == 1.38 (tie, to even)
        assert_eq!(
            Double::from_decimal(1_375_000, 6).unwrap().round_places(2),
            138
        );
        // round(2.675, 2) == 2.67 (the documented Python example)
        assert_eq!(
            Double::from_decimal(2_675_000, 6).unwrap().round_places(2),
            267
        );
        // round(0.285, 2) == 0.28 but round(0.145, 2) == 0.14 and round(1.005, 2) == 1.0
        assert_eq!(
            Double::from_decimal(285_000, 6).unwrap().round_places(2),
            28
        );
        assert_eq!(
            Double::from_decimal(1_005_000, 6).unwrap().round_places(2),
            100
        );
    }

    #[test]
    fn mean_is_the_exact_mean_rounded_once() {
        // mean([0.1, 0.2, 0.3, 0.4]) == 0.25 exactly in Python (exact sum of the doubles).
        let xs: Vec<Double> = [100_000i128, 200_000, 300_000, 400_000]
            .iter()
            .map(|v| Double::from_decimal(*v, 6).unwrap())
            .collect();
        assert_eq!(Double::mean(&xs).unwrap(), of(0.25));
        // mean([1.07, 1.08]) == 1.0750000000000002 in CPython (above the half): 1.08.
        let xs = [
            Double::from_decimal(1_070_000, 6).unwrap(),
            Double::from_decimal(1_080_000, 6).unwrap(),
        ];
        let m = Double::mean(&xs).unwrap();
        assert_eq!(m, of(1.0750000000000002));
        assert_eq!(m.round_places(2), 108);
        // mean([1.13, 1.14]) == 1.135 (the double below the half): 1.13.
        let xs = [
            Double::from_decimal(1_130_000, 6).unwrap(),
            Double::from_decimal(1_140_000, 6).unwrap(),
        ];
        assert_eq!(Double::mean(&xs).unwrap().round_places(2), 113);
    }

    #[test]
    fn arithmetic_matches_ieee_double_operations() {
        let vals = [0.1f64, 0.7, 3.0, 1.075, 123.456789, 0.000001, 15.0, 2.5];
        for &a in &vals {
            for &b in &vals {
                let (x, y) = (of(a), of(b));
                assert_eq!(x.plus(y).unwrap(), of(a + b), "{a} + {b}");
                assert_eq!(x.times(y).unwrap(), of(a * b), "{a} * {b}");
                assert_eq!(x.over(y).unwrap(), of(a / b), "{a} / {b}");
            }
        }
    }

    #[test]
    fn stdev_is_the_correctly_rounded_root_of_the_exact_variance() {
        // statistics.stdev([1.0, 2.0, 3.0, 4.0]) == 1.2909944487358056
        let xs: Vec<Double> = [1.0, 2.0, 3.0, 4.0].iter().map(|x| of(*x)).collect();
        assert_eq!(Double::stdev(&xs).unwrap().unwrap(), of(1.2909944487358056));
        // statistics.stdev([2.0, 4.0]) == 1.4142135623730951 (sqrt(2))
        let xs = [of(2.0), of(4.0)];
        assert_eq!(
            Double::stdev(&xs).unwrap().unwrap(),
            of(std::f64::consts::SQRT_2)
        );
        // exact square: stdev([1.0, 3.0]) == sqrt(2)... and stdev([0.0, 2.0, 4.0]) == 2.0
        let xs = [of(0.0), of(2.0), of(4.0)];
        assert_eq!(Double::stdev(&xs).unwrap().unwrap(), of(2.0));
        assert_eq!(Double::stdev(&[of(1.0)]).unwrap(), None);
    }
}
