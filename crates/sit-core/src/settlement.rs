//! Futures on the index: contract periods and the final settlement rule. Pure: the caller
//! hands in the daily records in force; no clock, no I/O, no floats.
//!
//! The rule (stated per contract in `contracts.toml`): the arithmetic mean of the daily values
//! of **every calendar day** of the contract period, rounded once, half to even, at the
//! contract's scale. A day counts with the value its record in force states:
//! - FINAL, RESTATED: the day's value;
//! - CONTINGENCY: the value it carries forward (a CONTINGENCY day with nothing to carry makes
//!   the period unsettleable: named);
//! - SUSPENDED: as the contract's `suspended` fallback says, `carry` (the last value set from
//!   data, which the record states) or `exclude` (the day leaves the mean);
//! - BASE: refused. A chain's anchor is a level statistic, not a settlement value (index
//!   methodology section 8): a contract period must start after the index's first chained day.
//!
//! Why one rounding of the exact mean: the sum of fixed-point daily values is exact in i128,
//! so the only rounding is the one the contract states; rounding a rounded mean again could
//! move the value by a tick.
//!
//! Also here: the settlement record ([`SettlementRecord`]), signed when FINAL
//! ([`sign_record`]), its checks ([`verify_record`], [`verify_indicative`]) and its CSV form
//! ([`to_csv`]).

use crate::fixed::{div_round_half_even, Fixed, ONE};
use crate::index::Status;
use crate::time::Date;
use serde::{Deserialize, Serialize};

/// How a contract's period runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cycle {
    /// A calendar month.
    Monthly,
    /// A calendar quarter (January-March, April-June, ...).
    Quarterly,
}

/// What a SUSPENDED day contributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SuspendedFallback {
    /// The last value set from data (stated in the SUSPENDED record).
    Carry,
    /// Left out of the mean.
    Exclude,
}

/// One listed contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contract {
    /// e.g. `SIT-T2-M` (monthly) or `SIT-T2-Q` (quarterly).
    pub id: String,
    /// The index tier it settles on.
    pub tier: String,
    /// How its period runs.
    pub cycle: Cycle,
    /// Contract unit, in SIT (e.g. 1,000 x 1,000,000 SIT).
    pub unit_sit: u64,
    /// Minimum price increment for trading, USD per 1M SIT.
    pub tick: Fixed,
    /// Decimal places of the final settlement value (at most 9).
    pub scale: u32,
    /// What a SUSPENDED day contributes.
    pub suspended: SuspendedFallback,
    /// Trading ends this many days before the period's last day (0: on it).
    pub last_trading_days_before_end: u32,
    /// The FINAL settlement record is signed only once each day it lists has been attested as
    /// reproduced by at least this many distinct registered auditors (issue 30); until then
    /// the period stays INDICATIVE and says what it waits for. 0 (absent): no wait.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub min_attestations: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A settlement record's attestation requirement and what it still waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestationWait {
    /// The contract's `min_attestations`.
    pub required: u32,
    /// The listed days whose record in force has fewer reproduced attestations (empty in a
    /// FINAL record: it is signed once none is missing).
    pub waiting_for: Vec<Date>,
}

/// A contract period: its first and last calendar day (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    /// The first day.
    pub first: Date,
    /// The last day.
    pub last: Date,
}

impl Period {
    /// The period of `cycle` that holds the month `year-month` (a quarterly contract's
    /// period is its calendar quarter).
    pub fn of(cycle: Cycle, year: i32, month: u32) -> Option<Period> {
        if !(1..=12).contains(&month) {
            return None;
        }
        let (m0, months) = match cycle {
            Cycle::Monthly => (month, 1),
            Cycle::Quarterly => ((month - 1) / 3 * 3 + 1, 3),
        };
        let first = Date::parse(&format!("{year:04}-{m0:02}-01")).ok()?;
        let (ny, nm) = if m0 + months > 12 {
            (year + 1, m0 + months - 12)
        } else {
            (year, m0 + months)
        };
        let next = Date::parse(&format!("{ny:04}-{nm:02}-01")).ok()?;
        Some(Period {
            first,
            last: next.pred(),
        })
    }

    /// Every day of the period, in order.
    pub fn days(&self) -> impl Iterator<Item = Date> {
        (self.first.0..=self.last.0).map(Date)
    }

    /// The period's name: `2026-02` (a month), `2026-Q1` (a quarter).
    pub fn label(&self, cycle: Cycle) -> String {
        let (y, m) = (&self.first.to_string()[..4], &self.first.to_string()[5..7]);
        match cycle {
            Cycle::Monthly => format!("{y}-{m}"),
            Cycle::Quarterly => {
                format!("{y}-Q{}", (m.parse::<u32>().expect("a month") - 1) / 3 + 1)
            }
        }
    }

    /// A period from its name ([`Period::label`]'s form): `YYYY-MM` or `YYYY-Qn`.
    pub fn parse_label(s: &str) -> Option<(Cycle, Period)> {
        let (y, rest) = s.split_once('-')?;
        if y.len() != 4
            || !s
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'-' || b == b'Q')
        {
            return None;
        }
        let y: i32 = y.parse().ok()?;
        match rest.strip_prefix('Q') {
            Some(q) if q.len() == 1 => {
                let q: u32 = q.parse().ok().filter(|q| (1..=4).contains(q))?;
                Some((Cycle::Quarterly, Period::of(Cycle::Quarterly, y, q * 3)?))
            }
            None if rest.len() == 2 => Some((
                Cycle::Monthly,
                Period::of(Cycle::Monthly, y, rest.parse().ok()?)?,
            )),
            _ => None,
        }
    }

    /// The period of `cycle` holding `day`.
    pub fn holding(cycle: Cycle, day: Date) -> Period {
        let s = day.to_string();
        Period::of(
            cycle,
            s[..4].parse().expect("a year"),
            s[5..7].parse().expect("a month"),
        )
        .expect("a valid date")
    }
}

/// One day's record in force, as the settlement uses it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayValue {
    /// The day.
    pub date: Date,
    /// The record's status.
    pub status: Status,
    /// The value the record states (for CONTINGENCY and SUSPENDED: the carried value).
    pub value: Option<Fixed>,
    /// The record's version (1, or more for a restatement).
    pub version: u32,
    /// blake3 (hex) of the record's bytes.
    pub record_hash: String,
}

/// Why a period cannot be settled (yet).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettleError {
    /// A day of the period has no record (a complete period only).
    #[error("{0}: no record in force for this day of the contract period")]
    MissingDay(Date),
    /// A day that should count has no value (typically CONTINGENCY with nothing to carry).
    #[error("{0}: CONTINGENCY with no value to carry (no earlier value set from data)")]
    NoValue(Date),
    /// A BASE day: not a settlement value.
    #[error("{0}: BASE (the chain's anchor) is not a settlement value; a contract period must start after the index's first chained day")]
    Base(Date),
    /// A record of a day outside the period.
    #[error("{0}: a record of another day was given")]
    OutsidePeriod(Date),
    /// A day listed twice or out of order (the later of the two).
    #[error("{0}: listed twice or out of date order (each day once, in order)")]
    Order(Date),
    /// Every day was left out of the mean.
    #[error("no day of the period counts (every day excluded)")]
    Empty,
    /// The contract's scale is above 9 decimal places.
    #[error("contract scale {0} is above 9 decimal places")]
    Scale(u32),
}

/// What a day contributes under `contract`'s rule: `None` when it is left out.
fn contribution(contract: &Contract, d: &DayValue) -> Result<Option<Fixed>, SettleError> {
    match d.status {
        Status::Final | Status::Restated => d.value.map(Some).ok_or(SettleError::NoValue(d.date)),
        Status::Contingency => d.value.map(Some).ok_or(SettleError::NoValue(d.date)),
        Status::Suspended => match contract.suspended {
            SuspendedFallback::Carry => d.value.map(Some).ok_or(SettleError::NoValue(d.date)),
            SuspendedFallback::Exclude => Ok(None),
        },
        Status::Base => Err(SettleError::Base(d.date)),
    }
}

/// The mean of `days` under `contract`'s rule, rounded once, half to even, at its scale.
/// Every day of `period` must be present when `complete`; otherwise (month to date) the days
/// given are the ones published so far. Returns the value and how many days counted.
///
/// Errors: [`SettleError::Scale`] for a scale above 9; [`SettleError::OutsidePeriod`] and
/// [`SettleError::Order`] for a day list that is not the period's days once each, in order;
/// [`SettleError::MissingDay`] for a gap when `complete`; [`SettleError::NoValue`] and
/// [`SettleError::Base`] for a day that cannot count; [`SettleError::Empty`] when none counts.
pub fn mean_value(
    contract: &Contract,
    period: Period,
    days: &[DayValue],
    complete: bool,
) -> Result<(Fixed, u32), SettleError> {
    if contract.scale > 9 {
        return Err(SettleError::Scale(contract.scale));
    }
    if let Some(d) = days
        .iter()
        .find(|d| d.date < period.first || d.date > period.last)
    {
        return Err(SettleError::OutsidePeriod(d.date));
    }
    if let Some(w) = days.windows(2).find(|w| w[1].date <= w[0].date) {
        return Err(SettleError::Order(w[1].date));
    }
    if complete {
        if let Some(missing) = period.days().find(|p| !days.iter().any(|d| d.date == *p)) {
            return Err(SettleError::MissingDay(missing));
        }
    }
    let mut sum: i128 = 0;
    let mut n: i128 = 0;
    for d in days {
        if let Some(v) = contribution(contract, d)? {
            sum += v.0;
            n += 1;
        }
    }
    if n == 0 {
        return Err(SettleError::Empty);
    }
    let step = 10i128.pow(9 - contract.scale);
    Ok((Fixed(div_round_half_even(sum, n * step) * step), n as u32))
}

/// The schema of settlement records.
pub const SCHEMA: &str = "sit-settlement/1";

/// A settlement value's standing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SettlementStatus {
    /// Every day of the period is in and the final settlement time has passed: signed, never
    /// changed afterwards.
    Final,
    /// Month (or quarter) to date: for information, never signed as final.
    Indicative,
}

/// A settlement record (signed when FINAL; the signature scheme of [`crate::signing`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettlementRecord {
    /// [`SCHEMA`].
    pub schema: String,
    /// The contract settled.
    pub contract: Contract,
    /// Its period.
    pub period: Period,
    /// The rule in words (the contract's, as applied).
    pub rule: String,
    /// The daily records used: the version of each day in force at the final settlement
    /// time, with its hash.
    pub days: Vec<DayValue>,
    /// How many days entered the mean.
    pub days_counted: u32,
    /// The settlement value ([`mean_value`]), USD per 1,000,000 SIT at the contract's scale.
    pub value: Fixed,
    /// FINAL or INDICATIVE.
    pub status: SettlementStatus,
    /// After it, no restatement of a day of the period changes this value.
    pub final_settlement_time: String,
    /// When the record was computed (RFC 3339, UTC).
    pub computed_at: String,
    /// With a contract's `min_attestations`: the requirement, and the days still waiting for
    /// attestations (absent for a contract without one, so earlier records keep their bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestations: Option<AttestationWait>,
    /// The signing key's id (set by [`sign_record`]; absent in an unsigned record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

/// The contract's rule in words.
pub fn rule_text(c: &Contract) -> String {
    format!(
        "arithmetic mean of the daily {} values of every calendar day of the {} period; a CONTINGENCY day counts with the value it carries; a SUSPENDED day {}; a BASE day is not a settlement value; rounded once, half to even, at {} decimal places",
        c.tier,
        match c.cycle {
            Cycle::Monthly => "monthly",
            Cycle::Quarterly => "quarterly",
        },
        match c.suspended {
            SuspendedFallback::Carry => "counts with the last value set from data",
            SuspendedFallback::Exclude => "is left out of the mean",
        },
        c.scale
    )
}

/// Sign a FINAL settlement record: the bytes to store and serve.
pub fn sign_record(r: &SettlementRecord, key: &ed25519_dalek::SigningKey) -> Vec<u8> {
    let mut r = r.clone();
    r.key_id = Some(crate::signing::key_id(&key.verifying_key()));
    crate::signing::sign_value(serde_json::to_value(&r).expect("serialises"), key)
}

/// Check a FINAL settlement record: the signature, the schema, FINAL, and the value
/// recomputed from the daily values it lists under its contract's rule (every day of the period
/// present, each once, in order). An INDICATIVE record is refused here: it is not a settlement
/// value (see [`verify_indicative`]). Checking that the listed days are the oracle's records in
/// force (their hashes) is the caller's, who holds the daily records.
pub fn verify_record(
    doc: &[u8],
    key: &ed25519_dalek::VerifyingKey,
) -> Result<SettlementRecord, String> {
    let r = verify_any(doc, key)?;
    if r.status != SettlementStatus::Final {
        return Err("INDICATIVE: a period-to-date value, not a final settlement value".into());
    }
    if let Some(w) = r
        .attestations
        .as_ref()
        .filter(|w| !w.waiting_for.is_empty())
    {
        return Err(format!(
            "FINAL while still waiting for attestations of {} days",
            w.waiting_for.len()
        ));
    }
    Ok(r)
}

/// Check an INDICATIVE (period-to-date) record the same way; a FINAL one is refused, so the
/// two can never be taken for each other.
pub fn verify_indicative(
    doc: &[u8],
    key: &ed25519_dalek::VerifyingKey,
) -> Result<SettlementRecord, String> {
    let r = verify_any(doc, key)?;
    if r.status != SettlementStatus::Indicative {
        return Err("FINAL, not INDICATIVE".into());
    }
    Ok(r)
}

/// Signature, schema, rule text and recomputation, whatever the status (a FINAL record must
/// list every day of its period).
pub fn verify_any(
    doc: &[u8],
    key: &ed25519_dalek::VerifyingKey,
) -> Result<SettlementRecord, String> {
    let v = crate::signing::verify_value(doc, key).map_err(|e| e.to_string())?;
    let r: SettlementRecord =
        serde_json::from_value(v.value).map_err(|e| format!("not a settlement record: {e}"))?;
    if r.schema != SCHEMA {
        return Err(format!("schema `{}`, not `{SCHEMA}`", r.schema));
    }
    let complete = r.status == SettlementStatus::Final;
    let (value, n) =
        mean_value(&r.contract, r.period, &r.days, complete).map_err(|e| e.to_string())?;
    if (value, n) != (r.value, r.days_counted) {
        return Err(format!(
            "the listed days give {value} over {n} days, the record says {} over {}",
            r.value, r.days_counted
        ));
    }
    if r.rule != rule_text(&r.contract) {
        return Err("the rule text is not the contract's".into());
    }
    if complete && r.computed_at < r.final_settlement_time {
        return Err(format!(
            "FINAL computed at {}, before its final settlement time {}",
            r.computed_at, r.final_settlement_time
        ));
    }
    Ok(r)
}

/// CSV columns of a settlement record: one row per day used, the record's facts repeated.
pub const CSV_HEADER: &str = "contract,tier,period_first,period_last,status,value,days_counted,final_settlement_time,date,day_status,day_value,day_version,day_record_hash";

/// A settlement record as CSV ([`CSV_HEADER`], then one row per listed day). No cell needs
/// quoting: ids, dates, statuses, decimals and hex only.
pub fn to_csv(r: &SettlementRecord) -> String {
    let mut s = String::from(CSV_HEADER);
    s.push('\n');
    for d in &r.days {
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            r.contract.id,
            r.contract.tier,
            r.period.first,
            r.period.last,
            match r.status {
                SettlementStatus::Final => "FINAL",
                SettlementStatus::Indicative => "INDICATIVE",
            },
            r.value,
            r.days_counted,
            r.final_settlement_time,
            d.date,
            d.status.as_str(),
            d.value.map(|v| v.to_string()).unwrap_or_default(),
            d.version,
            d.record_hash
        ));
    }
    s
}

const _: () = assert!(ONE == 1_000_000_000);

#[cfg(test)]
mod tests {
    use super::*;

    fn contract(scale: u32, suspended: SuspendedFallback) -> Contract {
        Contract {
            id: "SIT-T1-M".into(),
            tier: "t1".into(),
            cycle: Cycle::Monthly,
            unit_sit: 1_000_000_000,
            tick: Fixed(1_000_000),
            scale,
            suspended,
            last_trading_days_before_end: 0,
            min_attestations: 0,
        }
    }

    fn day(date: &str, status: Status, value: Option<&str>) -> DayValue {
        DayValue {
            date: Date::parse(date).unwrap(),
            status,
            value: value.map(|v| Fixed::parse(v).unwrap()),
            version: 1,
            record_hash: "h".into(),
        }
    }

    /// February 2026 (28 days) with every day FINAL at 0.100 + 0.001 x (day - 1).
    fn february() -> Vec<DayValue> {
        (1..=28)
            .map(|d| {
                day(
                    &format!("2026-02-{d:02}"),
                    Status::Final,
                    Some(&format!("0.{:03}", 100 + d - 1)),
                )
            })
            .collect()
    }

    #[test]
    fn periods_are_calendar_months_and_quarters() {
        let p = Period::of(Cycle::Monthly, 2026, 2).unwrap();
        assert_eq!(
            (p.first.to_string(), p.last.to_string()),
            ("2026-02-01".into(), "2026-02-28".into())
        );
        let p = Period::of(Cycle::Monthly, 2028, 12).unwrap();
        assert_eq!(p.last.to_string(), "2028-12-31");
        let p = Period::of(Cycle::Quarterly, 2026, 5).unwrap();
        assert_eq!(
            (p.first.to_string(), p.last.to_string()),
            ("2026-04-01".into(), "2026-06-30".into())
        );
        assert_eq!(p.days().count(), 91);
        assert!(Period::of(Cycle::Monthly, 2026, 13).is_none());
        // names, both ways
        assert_eq!(p.label(Cycle::Quarterly), "2026-Q2");
        assert_eq!(Period::parse_label("2026-Q2"), Some((Cycle::Quarterly, p)));
        let feb = Period::of(Cycle::Monthly, 2026, 2).unwrap();
        assert_eq!(feb.label(Cycle::Monthly), "2026-02");
        assert_eq!(Period::parse_label("2026-02"), Some((Cycle::Monthly, feb)));
        for bad in [
            "2026-13", "2026-Q5", "2026-Q0", "26-02", "2026-2", "2026", "latest",
        ] {
            assert_eq!(Period::parse_label(bad), None, "{bad}");
        }
        let d = Date::parse("2026-11-30").unwrap();
        assert_eq!(
            Period::holding(Cycle::Quarterly, d).label(Cycle::Quarterly),
            "2026-Q4"
        );
        assert_eq!(
            Period::holding(Cycle::Monthly, d).first.to_string(),
            "2026-11-01"
        );
    }

    /// Golden: hand-computed. Sum of 0.100..0.127 = 28 x 0.1135 = 3.178; mean 0.1135 exactly;
    /// at scale 3 half to even: 0.1135 -> 0.114 (the 3 is odd: round up to even 4).
    #[test]
    fn a_month_of_final_days_settles_on_the_mean_rounded_half_to_even_once() {
        let p = Period::of(Cycle::Monthly, 2026, 2).unwrap();
        let c = contract(3, SuspendedFallback::Carry);
        assert_eq!(
            mean_value(&c, p, &february(), true).unwrap(),
            (Fixed::parse("0.114").unwrap(), 28)
        );
        // at scale 4 the mean is exact
        let c4 = contract(4, SuspendedFallback::Carry);
        assert_eq!(
            mean_value(&c4, p, &february(), true).unwrap().0,
            Fixed::parse("0.1135").unwrap()
        );
        // 0.1125 at scale 3 goes to the even 0.112 (not 0.113)
        let mut days = february();
        for d in &mut days {
            d.value = Some(Fixed(d.value.unwrap().0 - 1_000_000));
        }
        assert_eq!(
            mean_value(&c, p, &days, true).unwrap().0,
            Fixed::parse("0.112").unwrap()
        );
    }

    /// Golden: days 10-12 CONTINGENCY carrying 0.200 (the last value set from data), the rest
    /// 0.100: (25 x 0.100 + 3 x 0.200) / 28 = 3.1 / 28 = 0.110714285... -> 0.111 at scale 3.
    #[test]
    fn contingency_days_count_with_their_carried_value_and_a_day_with_none_is_named() {
        let p = Period::of(Cycle::Monthly, 2026, 2).unwrap();
        let c = contract(3, SuspendedFallback::Carry);
        let mut days: Vec<DayValue> = (1..=28)
            .map(|d| day(&format!("2026-02-{d:02}"), Status::Final, Some("0.100")))
            .collect();
        for d in &mut days[9..12] {
            *d = day(&d.date.to_string(), Status::Contingency, Some("0.200"));
        }
        assert_eq!(
            mean_value(&c, p, &days, true).unwrap(),
            (Fixed::parse("0.111").unwrap(), 28)
        );
        days[3] = day("2026-02-04", Status::Contingency, None);
        assert_eq!(
            mean_value(&c, p, &days, true),
            Err(SettleError::NoValue(Date::parse("2026-02-04").unwrap()))
        );
    }

    #[test]
    fn suspended_days_follow_the_contracts_fallback_and_base_days_are_refused() {
        let p = Period::of(Cycle::Monthly, 2026, 2).unwrap();
        let mut days: Vec<DayValue> = (1..=28)
            .map(|d| day(&format!("2026-02-{d:02}"), Status::Final, Some("0.100")))
            .collect();
        days[27] = day("2026-02-28", Status::Suspended, Some("0.380"));
        // carry: (27 x 0.1 + 0.38) / 28 = 3.08 / 28 = 0.11
        let carry = contract(3, SuspendedFallback::Carry);
        assert_eq!(
            mean_value(&carry, p, &days, true).unwrap(),
            (Fixed::parse("0.110").unwrap(), 28)
        );
        // exclude: 27 days of 0.1
        let exclude = contract(3, SuspendedFallback::Exclude);
        assert_eq!(
            mean_value(&exclude, p, &days, true).unwrap(),
            (Fixed::parse("0.100").unwrap(), 27)
        );
        days[0] = day("2026-02-01", Status::Base, Some("0.100"));
        assert_eq!(
            mean_value(&carry, p, &days, true),
            Err(SettleError::Base(Date::parse("2026-02-01").unwrap()))
        );
    }

    #[test]
    fn a_final_value_needs_every_calendar_day_and_month_to_date_uses_the_days_so_far() {
        let p = Period::of(Cycle::Monthly, 2026, 2).unwrap();
        let c = contract(3, SuspendedFallback::Carry);
        let days = february();
        assert_eq!(
            mean_value(&c, p, &days[..10], true),
            Err(SettleError::MissingDay(Date::parse("2026-02-11").unwrap()))
        );
        // month to date: 0.100..0.109, mean 0.1045 -> 0.104 (half to even)
        assert_eq!(
            mean_value(&c, p, &days[..10], false).unwrap(),
            (Fixed::parse("0.104").unwrap(), 10)
        );
        let march = day("2026-03-01", Status::Final, Some("0.1"));
        assert_eq!(
            mean_value(&c, p, &[march], false),
            Err(SettleError::OutsidePeriod(
                Date::parse("2026-03-01").unwrap()
            ))
        );
    }

    #[test]
    fn a_signed_final_record_verifies_and_an_edited_value_or_day_does_not() {
        let p = Period::of(Cycle::Monthly, 2026, 2).unwrap();
        let c = contract(3, SuspendedFallback::Carry);
        let days = february();
        let (value, n) = mean_value(&c, p, &days, true).unwrap();
        let r = SettlementRecord {
            schema: SCHEMA.into(),
            rule: rule_text(&c),
            contract: c,
            period: p,
            days,
            days_counted: n,
            value,
            status: SettlementStatus::Final,
            final_settlement_time: "2026-03-02T00:00:00.000Z".into(),
            computed_at: "2026-03-02T00:10:00.000Z".into(),
            attestations: None,
            key_id: None,
        };
        let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
        let doc = sign_record(&r, &key);
        let back = verify_record(&doc, &key.verifying_key()).unwrap();
        assert_eq!(back.value, Fixed::parse("0.114").unwrap());
        // re-signed with a different value: the recomputation refuses it
        let mut bad = r.clone();
        bad.value = Fixed::parse("0.115").unwrap();
        let e = verify_record(&sign_record(&bad, &key), &key.verifying_key()).unwrap_err();
        assert!(e.contains("the listed days give"), "{e}");
        // the same days as an INDICATIVE record: verifies only as such
        let mut ind = r.clone();
        ind.status = SettlementStatus::Indicative;
        let doc_i = sign_record(&ind, &key);
        assert!(verify_record(&doc_i, &key.verifying_key())
            .unwrap_err()
            .contains("INDICATIVE"));
        assert!(verify_indicative(&doc_i, &key.verifying_key()).is_ok());
        assert!(verify_indicative(&doc, &key.verifying_key()).is_err());
        // a day listed twice (in place of another) is refused even with a consistent value
        let mut twice = r.clone();
        twice.days[1] = twice.days[0].clone();
        assert!(
            verify_record(&sign_record(&twice, &key), &key.verifying_key())
                .unwrap_err()
                .contains("listed twice")
        );
        // a day dropped from the list
        let mut short = r;
        short.days.pop();
        assert!(
            verify_record(&sign_record(&short, &key), &key.verifying_key())
                .unwrap_err()
                .contains("2026-02-28")
        );
    }
}
