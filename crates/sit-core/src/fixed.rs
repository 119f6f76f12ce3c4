//! Integer fixed-point arithmetic for the settlement path.
//!
//! Why not floats: two machines must produce identical bytes for a determination, and an
//! auditor must be able to re-derive them by hand. Every quantity on the settlement path is an
//! integer at a stated scale, and every division rounds **half to even** through
//! [`div_round_half_even`]. Nothing here allocates on the hot path or reads the clock.
//!
//! Scales used across the crate:
//! - [`Fixed`]: 9 decimal places (`SCALE = 9`): index prices in USD per 1,000,000 SIT, ratios.
//! - [`Rate`]: 6 decimal places: list prices in USD per 1,000,000 tokens.
//! - [`Pusd`]: 12 decimal places (pico-USD): the cost of one attempt, exact.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Decimal places of [`Fixed`].
pub const SCALE: u32 = 9;
/// `1.0` as a [`Fixed`] raw value.
pub const ONE: i128 = 1_000_000_000;

/// Errors from parsing a decimal string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    /// Not digits with an optional sign and at most one `.` (the text given).
    #[error("`{0}` is not a decimal number (expected digits with an optional sign and one '.')")]
    Syntax(String),
    /// More decimal places than the scale holds (the text given, the scale's places).
    #[error("`{0}` has more than {1} decimal places; round it to {1} places")]
    TooPrecise(String, u32),
    /// The value does not fit in an `i128` at the scale (the text given).
    #[error("`{0}` is too large")]
    Overflow(String),
}

/// Divide `n` by `d` rounding half to even. `d` must be non-zero.
///
/// This is the only rounding rule on the settlement path (IEEE 754 "roundTiesToEven", also
/// called banker's rounding): it is unbiased over many roundings, which a mean of means needs.
pub fn div_round_half_even(n: i128, d: i128) -> i128 {
    assert!(d != 0, "division by zero in fixed-point arithmetic");
    let (n, d) = if d < 0 { (-n, -d) } else { (n, d) };
    let q = n.div_euclid(d);
    let r = n.rem_euclid(d); // 0 <= r < d
    let twice = r * 2;
    if twice > d || (twice == d && q.rem_euclid(2) == 1) {
        q + 1
    } else {
        q
    }
}

/// Parse a plain decimal string (`-12.345`; optional sign, surrounding whitespace ignored)
/// into an integer at `scale` decimal places, refusing strings with more places than the
/// scale holds (never rounds silently). Errors: [`DecimalError`].
pub fn parse_scaled(s: &str, scale: u32) -> Result<i128, DecimalError> {
    let t = s.trim();
    let err = || DecimalError::Syntax(s.to_string());
    let (neg, body) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (int_part, frac_part) = match body.split_once('.') {
        Some((i, f)) => (i, f),
        None => (body, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(err());
    }
    if !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(err());
    }
    let frac_trimmed = frac_part.trim_end_matches('0');
    if frac_trimmed.len() > scale as usize {
        return Err(DecimalError::TooPrecise(s.to_string(), scale));
    }
    let mut v: i128 = 0;
    for b in int_part.bytes().chain(frac_trimmed.bytes()) {
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add((b - b'0') as i128))
            .ok_or_else(|| DecimalError::Overflow(s.to_string()))?;
    }
    let pad = scale - frac_trimmed.len() as u32;
    v = v
        .checked_mul(10i128.pow(pad))
        .ok_or_else(|| DecimalError::Overflow(s.to_string()))?;
    Ok(if neg { -v } else { v })
}

/// Format an integer at `scale` decimal places as a canonical decimal string with exactly
/// `scale` places (`1.500000000`). Canonical means: one spelling per value, so the string can
/// go into signed bytes.
pub fn format_scaled(v: i128, scale: u32) -> String {
    let p = 10i128.pow(scale);
    let sign = if v < 0 { "-" } else { "" };
    let a = v.unsigned_abs();
    let p = p as u128;
    if scale == 0 {
        return format!("{sign}{a}");
    }
    format!("{sign}{}.{:0width$}", a / p, a % p, width = scale as usize)
}

/// Round an integer at `from` places to `to` places (`to <= from`), half to even.
pub fn rescale(v: i128, from: u32, to: u32) -> i128 {
    debug_assert!(to <= from);
    div_round_half_even(v, 10i128.pow(from - to))
}

macro_rules! decimal_type {
    ($name:ident, $scale:expr, $doc:expr) => {
        #[doc = $doc]
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub i128);

        impl $name {
            /// Decimal places of this type.
            pub const SCALE: u32 = $scale;
            /// Zero.
            pub const ZERO: Self = Self(0);
            /// Parse exactly (see [`parse_scaled`]).
            pub fn parse(s: &str) -> Result<Self, DecimalError> {
                parse_scaled(s, $scale).map(Self)
            }
            /// Canonical string with exactly `SCALE` places.
            pub fn to_canonical(self) -> String {
                format_scaled(self.0, $scale)
            }
            /// Human string rounded (half to even) to `dp` places.
            pub fn round_dp(self, dp: u32) -> String {
                let dp = dp.min($scale);
                format_scaled(rescale(self.0, $scale, dp), dp)
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_canonical())
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_canonical())
            }
        }
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_canonical())
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

decimal_type!(
    Fixed,
    9,
    "A decimal with 9 places: index prices (USD per 1,000,000 SIT), ratios and weights."
);
decimal_type!(
    Rate,
    6,
    "A list price in USD per 1,000,000 tokens, 6 decimal places."
);
decimal_type!(
    Pusd,
    12,
    "An amount of USD with 12 decimal places (pico-USD): attempt costs."
);

impl Fixed {
    /// `n / d` as a `Fixed`, rounded half to even.
    pub fn ratio(n: i128, d: i128) -> Fixed {
        Fixed(div_round_half_even(n * ONE, d))
    }
    /// Mean of values, rounded half to even. `None` for an empty slice.
    pub fn mean(values: &[Fixed]) -> Option<Fixed> {
        if values.is_empty() {
            return None;
        }
        let sum: i128 = values.iter().map(|v| v.0).sum();
        Some(Fixed(div_round_half_even(sum, values.len() as i128)))
    }
}

/// Price of standard work: `cost / sit * 1,000,000`, in USD per 1,000,000 SIT at [`Fixed`]
/// scale. `cost` is in pico-USD. Returns `None` when no SIT was delivered (the price is
/// undefined, not infinite: the index records the reason instead).
///
/// Derivation: cost_usd = C * 1e-12; price = cost_usd / S * 1e6 = C * 1e-6 / S USD;
/// in units of 1e-9 USD that is C * 1e3 / S.
pub fn sit_price(cost_pusd: i128, delivered_sit: u128) -> Option<Fixed> {
    if delivered_sit == 0 {
        return None;
    }
    Some(Fixed(div_round_half_even(
        cost_pusd * 1000,
        delivered_sit as i128,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_even_golden_vectors() {
        // (n, d, expected) — ties go to the even neighbour, others to nearest.
        let cases = [
            (5, 2, 2),   // 2.5 -> 2
            (7, 2, 4),   // 3.5 -> 4
            (-5, 2, -2), // -2.5 -> -2
            (-7, 2, -4), // -3.5 -> -4
            (1, 3, 0),   // 0.333 -> 0
            (2, 3, 1),   // 0.667 -> 1
            (-2, 3, -1), // -0.667 -> -1
            (10, 4, 2),  // 2.5 -> 2
            (14, 4, 4),  // 3.5 -> 4
            (15, 4, 4),  // 3.75 -> 4
            (0, 7, 0),
            (5, -2, -2), // negative divisor
            (
                1_000_000_000_000_000_000_001,
                2,
                500_000_000_000_000_000_000,
            ),
        ];
        for (n, d, want) in cases {
            assert_eq!(div_round_half_even(n, d), want, "{n}/{d}");
        }
    }

    #[test]
    fn parse_and_format_are_exact() {
        assert_eq!(Fixed::parse("1.5").unwrap().0, 1_500_000_000);
        assert_eq!(Fixed::parse("-0.000000001").unwrap().0, -1);
        assert_eq!(Fixed::parse("12").unwrap().to_canonical(), "12.000000000");
        assert_eq!(Rate::parse("0.075").unwrap().0, 75_000);
        assert_eq!(Rate::parse("2.50").unwrap().to_canonical(), "2.500000");
        assert_eq!(Pusd(1).to_canonical(), "0.000000000001");
        assert_eq!(Fixed(-1_500_000_000).to_canonical(), "-1.500000000");
        // trailing zeros beyond the scale are not extra precision
        assert_eq!(Rate::parse("1.2500000000").unwrap().0, 1_250_000);
        assert!(matches!(
            Rate::parse("0.0000001"),
            Err(DecimalError::TooPrecise(..))
        ));
        for bad in ["", "-", ".", "1.2.3", "1e5", "abc", "1,5", " - 1"] {
            assert!(Fixed::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn round_dp_is_half_even() {
        assert_eq!(Fixed(2_500_000_000).round_dp(0), "2");
        assert_eq!(Fixed(3_500_000_000).round_dp(0), "4");
        assert_eq!(Fixed(1_234_565_000).round_dp(5), "1.23456");
        assert_eq!(Fixed(1_234_575_000).round_dp(5), "1.23458");
    }

    #[test]
    fn sit_price_golden() {
        // 0.000350 USD for 350 SIT = 1 USD per 1M SIT
        assert_eq!(sit_price(350_000_000, 350), Some(Fixed(ONE)));
        // 1 pico-USD over 3 SIT: 1e3/3 = 333.33 -> 333 (1e-9 units)
        assert_eq!(sit_price(1, 3), Some(Fixed(333)));
        assert_eq!(sit_price(5, 0), None);
    }

    #[test]
    fn mean_rounds_half_even() {
        assert_eq!(Fixed::mean(&[Fixed(1), Fixed(2)]), Some(Fixed(2))); // 1.5 -> 2
        assert_eq!(Fixed::mean(&[Fixed(1), Fixed(4)]), Some(Fixed(2))); // 2.5 -> 2
        assert_eq!(Fixed::mean(&[]), None);
    }
}
