//! UTC days and timestamps: the settlement calendar.
//!
//! The index partitions a UTC day into hours, so every attempt carries a UTC timestamp in
//! milliseconds. Computations never read a clock: they take timestamps as input (the
//! worker's clock lives in the `sit` crate).

use serde::{Deserialize, Serialize};
use std::fmt;

/// Milliseconds in an hour.
pub const HOUR_MS: i64 = 3_600_000;
/// Milliseconds in a (UTC) day: the calendar has no leap seconds.
pub const DAY_MS: i64 = 86_400_000;

/// A UTC calendar day, stored as days since 1970-01-01.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(pub i32);

/// Why a string is not a [`Date`] ([`Date::parse`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    /// Not `YYYY-MM-DD`, or no such calendar day (the text given).
    #[error("`{0}` is not a date; write it as YYYY-MM-DD, for example 2026-01-05")]
    Format(String),
    /// A real calendar date outside the days this system handles.
    #[error("`{0}` is a valid date but outside the range handled, {first} to {last} (UTC)", first = FIRST_DATE, last = LAST_DATE)]
    OutOfRange(String),
}

/// The first day handled (the Unix epoch's day).
pub const FIRST_DATE: &str = "1970-01-01";
/// The last day handled (the last day of the last four-digit year).
pub const LAST_DATE: &str = "9999-12-31";

/// A string that is not an RFC 3339 UTC timestamp ([`parse_utc_ms`]); holds the text given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a UTC time; write it as RFC 3339 in UTC, for example 2026-01-05T00:00:00Z")]
pub struct TimeError(pub String);

// Howard Hinnant's days_from_civil / civil_from_days (public domain), proleptic Gregorian.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

impl Date {
    /// The day `y-m-d` (proleptic Gregorian); `None` for no such day or a year outside
    /// 1970..=9999.
    pub fn from_ymd(y: i64, m: u32, d: u32) -> Option<Date> {
        if !(1..=12).contains(&m)
            || d == 0
            || d > days_in_month(y, m)
            || !(1970..=9999).contains(&y)
        {
            return None;
        }
        Some(Date(days_from_civil(y, m, d) as i32))
    }
    /// Parse `YYYY-MM-DD` (exactly ten characters). A real day before 1970 is
    /// [`DateError::OutOfRange`]; anything else that is not a day is [`DateError::Format`].
    pub fn parse(s: &str) -> Result<Date, DateError> {
        let err = || DateError::Format(s.to_string());
        let b = s.as_bytes();
        if b.len() != 10
            || b[4] != b'-'
            || b[7] != b'-'
            || !b
                .iter()
                .enumerate()
                .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
        {
            return Err(err());
        }
        let y: i64 = s[0..4].parse().map_err(|_| err())?;
        let m: u32 = s[5..7].parse().map_err(|_| err())?;
        let d: u32 = s[8..10].parse().map_err(|_| err())?;
        if (1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m) && y < 1970 {
            return Err(DateError::OutOfRange(s.to_string()));
        }
        Date::from_ymd(y, m, d).ok_or_else(err)
    }
    /// The day's (year, month 1-12, day of month 1-31).
    pub fn ymd(self) -> (i64, u32, u32) {
        civil_from_days(self.0 as i64)
    }
    /// Start of the day, in UTC milliseconds.
    pub fn start_ms(self) -> i64 {
        self.0 as i64 * DAY_MS
    }
    /// The UTC day holding the instant `ms` (UTC milliseconds).
    pub fn of_ms(ms: i64) -> Date {
        Date(ms.div_euclid(DAY_MS) as i32)
    }
    /// The next day.
    pub fn succ(self) -> Date {
        Date(self.0 + 1)
    }
    /// The day before.
    pub fn pred(self) -> Date {
        Date(self.0 - 1)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.ymd();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}
impl fmt::Debug for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Date({self})")
    }
}
impl Serialize for Date {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Date::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Parse an RFC 3339 UTC timestamp (`2026-01-05T00:00:00Z`, optional `.fff` fraction up to
/// milliseconds) into UTC milliseconds. Offsets other than `Z` are refused: the settlement
/// calendar is UTC and a local offset in a config file is almost always a mistake.
pub fn parse_utc_ms(s: &str) -> Result<i64, TimeError> {
    let err = || TimeError(s.to_string());
    let s_trim = s.trim();
    let body = s_trim.strip_suffix('Z').ok_or_else(err)?;
    let (date, time) = body.split_once('T').ok_or_else(err)?;
    let date = Date::parse(date).map_err(|_| err())?;
    let (hms, frac) = match time.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (time, None),
    };
    let parts: Vec<&str> = hms.split(':').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.len() != 2) {
        return Err(err());
    }
    let h: i64 = parts[0].parse().map_err(|_| err())?;
    let mi: i64 = parts[1].parse().map_err(|_| err())?;
    let se: i64 = parts[2].parse().map_err(|_| err())?;
    if h > 23 || mi > 59 || se > 59 {
        return Err(err());
    }
    let ms = match frac {
        None => 0,
        Some(f) if !f.is_empty() && f.len() <= 3 && f.bytes().all(|b| b.is_ascii_digit()) => {
            f.parse::<i64>().unwrap() * 10i64.pow(3 - f.len() as u32)
        }
        Some(_) => return Err(err()),
    };
    Ok(date.start_ms() + h * HOUR_MS + mi * 60_000 + se * 1000 + ms)
}

/// Format UTC milliseconds as RFC 3339 with millisecond precision.
pub fn format_utc_ms(ms: i64) -> String {
    let d = Date::of_ms(ms);
    let r = ms - d.start_ms();
    format!(
        "{}T{:02}:{:02}:{:02}.{:03}Z",
        d,
        r / HOUR_MS,
        (r % HOUR_MS) / 60_000,
        (r % 60_000) / 1000,
        r % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_golden() {
        assert_eq!(Date::parse("1970-01-01").unwrap().0, 0);
        assert_eq!(Date::parse("2026-01-02").unwrap().0, 20455);
        assert_eq!(Date::parse("2024-02-29").unwrap().to_string(), "2024-02-29");
        assert!(Date::parse("2025-02-29").is_err());
        assert!(Date::parse("2026-13-01").is_err());
        assert!(Date::parse("26-01-01").is_err());
        for d in 0..30000 {
            let date = Date(d);
            assert_eq!(Date::parse(&date.to_string()).unwrap(), date);
        }
    }

    #[test]
    fn utc_times_parse_and_format() {
        let ms = parse_utc_ms("2026-01-02T03:04:05.6Z").unwrap();
        assert_eq!(format_utc_ms(ms), "2026-01-02T03:04:05.600Z");
        assert_eq!(Date::of_ms(ms).to_string(), "2026-01-02");
        assert!(parse_utc_ms("2026-01-02T03:04:05+01:00").is_err());
        assert!(parse_utc_ms("2026-01-02 03:04:05Z").is_err());
        assert!(parse_utc_ms("2026-01-02T24:00:00Z").is_err());
    }
}
