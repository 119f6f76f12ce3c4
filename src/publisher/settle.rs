//! Settling the listed futures after a publication: which settlement records are due, and
//! their values computed from the archive log (the daily records in force).
//!
//! The rule is [`sit_core::settlement`]'s (pure); the files are [`crate::archive::settlements`]'.

use crate::archive::settlements::{path, write_final, write_indicative, Written};
use crate::archive::{Archive, ArchiveError, LogEntry};
use sit_core::settlement::{
    mean_value, rule_text, Contract, DayValue, Period, SettleError, SettlementRecord,
    SettlementStatus, SCHEMA,
};
use sit_core::time::{format_utc_ms, Date};
use sit_core::versions::Registry;

/// For each day of `period`, the version of `tier`'s record in force at `at_ms` (the latest
/// published by then; a restatement after it never counts).
pub fn days_in_force(
    entries: &[LogEntry],
    tier: &str,
    period: Period,
    at_ms: i64,
) -> Vec<DayValue> {
    let until = format_utc_ms(at_ms);
    period
        .days()
        .filter_map(|d| {
            entries
                .iter()
                .filter(|e| e.tier == tier && e.date == d && e.published_at <= until)
                .max_by_key(|e| e.version)
                .map(|e| DayValue {
                    date: d,
                    status: e.status,
                    value: e.value,
                    version: e.version,
                    record_hash: e.record_hash.clone(),
                })
        })
        .collect()
}

/// The final settlement time of `period`: the restatement cutoff of its last day (the
/// current methodology's), after which no record of the period can change.
pub fn final_time_ms(period: Period) -> i64 {
    super::policy::cutoff_ms(Registry::embedded().current_methodology(), period.last)
}

/// `contract`'s settlement record of `period` as it stands at `now_ms`: FINAL (every day in
/// force at the final settlement time) once that time has passed, else INDICATIVE (the days
/// published so far). Unsigned.
pub fn compute(
    entries: &[LogEntry],
    contract: &Contract,
    period: Period,
    now_ms: i64,
) -> Result<SettlementRecord, SettleError> {
    let final_ms = final_time_ms(period);
    let complete = now_ms >= final_ms;
    let days = days_in_force(entries, &contract.tier, period, now_ms.min(final_ms));
    let (value, n) = mean_value(contract, period, &days, complete)?;
    Ok(SettlementRecord {
        schema: SCHEMA.into(),
        contract: contract.clone(),
        period,
        rule: rule_text(contract),
        days,
        days_counted: n,
        value,
        status: if complete {
            SettlementStatus::Final
        } else {
            SettlementStatus::Indicative
        },
        final_settlement_time: format_utc_ms(final_ms),
        computed_at: format_utc_ms(now_ms),
        attestations: None,
        key_id: None,
    })
}

/// The listed days whose record in force has fewer than the contract's `min_attestations`
/// distinct auditors' attestations that it reproduced (a register that cannot be read
/// attests nothing).
pub fn awaiting(archive: &Archive, c: &Contract, days: &[DayValue]) -> Vec<Date> {
    let reg = crate::archive::register::Register::read(archive.root()).unwrap_or_default();
    days.iter()
        .filter(|d| {
            reg.reproduced_by(&c.tier, d.date, &d.record_hash) < c.min_attestations as usize
        })
        .map(|d| d.date)
        .collect()
}

/// What `sit run` settles after each publication (and at each restatement cutoff), at
/// `now_ms`: every period of a listed contract whose final time has passed and that has no
/// final record yet (signed FINAL now), and the period holding `day` to date (INDICATIVE).
/// Returns one line per record written, and per period that cannot be settled (why).
///
/// A period that can never settle (it holds the chain's BASE day, or a day was never
/// published) is reported only within a week of its final time, so the log does not repeat
/// it forever.
pub fn settle_due(
    archive: &Archive,
    contracts: &[Contract],
    key: &ed25519_dalek::SigningKey,
    day: Date,
    now_ms: i64,
) -> Result<Vec<String>, ArchiveError> {
    // Under the publisher lock: no restatement is appended while the records are chosen.
    let lock = archive.lock()?;
    let entries = archive.entries()?;
    let mut lines = Vec::new();
    for c in contracts {
        // the periods with a published day of this tier, in order
        let mut periods: Vec<Period> = entries
            .iter()
            .filter(|e| e.tier == c.tier)
            .map(|e| Period::holding(c.cycle, e.date))
            .collect();
        periods.push(Period::holding(c.cycle, day));
        periods.sort_by_key(|p| p.first);
        periods.dedup();
        for p in periods {
            let label = p.label(c.cycle);
            let final_ms = final_time_ms(p);
            if now_ms >= final_ms {
                if path(archive, c, p, SettlementStatus::Final).exists() {
                    continue;
                }
                match compute(&entries, c, p, now_ms) {
                    Ok(mut r) if c.min_attestations > 0 => {
                        // FINAL only once every listed day's record is attested (issue 30):
                        // until then the period to date, saying what it waits for
                        let waiting = awaiting(archive, c, &r.days);
                        r.attestations = Some(sit_core::settlement::AttestationWait {
                            required: c.min_attestations,
                            waiting_for: waiting.clone(),
                        });
                        if waiting.is_empty() {
                            match write_final(archive, &lock, &r, key) {
                                Ok(Written::New(_)) => lines.push(format!(
                                    "{} {label} FINAL {} ({} days counted, every one attested as reproduced: min_attestations {})",
                                    c.id,
                                    r.value.round_dp(c.scale),
                                    r.days_counted,
                                    c.min_attestations
                                )),
                                Ok(Written::Stands(..)) => {}
                                Err(e) => {
                                    lines.push(format!("{} {label} FINAL not written: {e}", c.id))
                                }
                            }
                        } else {
                            r.status = SettlementStatus::Indicative;
                            match write_indicative(archive, &r, key) {
                                Ok(_) => lines.push(format!(
                                    "{} {label} waits for attestations of {} of its {} days (min_attestations {}); FINAL is signed once they arrive",
                                    c.id,
                                    waiting.len(),
                                    r.days.len(),
                                    c.min_attestations
                                )),
                                Err(e) => lines.push(format!(
                                    "{} {label} INDICATIVE not written: {e}",
                                    c.id
                                )),
                            }
                        }
                    }
                    Ok(r) => match write_final(archive, &lock, &r, key) {
                        Ok(Written::New(_)) => lines.push(format!(
                            "{} {label} FINAL {} ({} days counted)",
                            c.id,
                            r.value.round_dp(c.scale),
                            r.days_counted
                        )),
                        Ok(Written::Stands(..)) => {}
                        Err(e) => lines.push(format!("{} {label} FINAL not written: {e}", c.id)),
                    },
                    Err(e) if now_ms - final_ms < 7 * sit_core::time::DAY_MS => {
                        lines.push(format!("{} {label} cannot settle: {e}", c.id))
                    }
                    Err(_) => {}
                }
            } else if p == Period::holding(c.cycle, day) {
                match compute(&entries, c, p, now_ms) {
                    Ok(r) => match write_indicative(archive, &r, key) {
                        Ok(_) => lines.push(format!(
                            "{} {label} INDICATIVE {} ({} days to date)",
                            c.id,
                            r.value.round_dp(c.scale),
                            r.days.len()
                        )),
                        Err(e) => {
                            lines.push(format!("{} {label} INDICATIVE not written: {e}", c.id))
                        }
                    },
                    // The chain's first month holds its BASE anchor: no contract settles on it
                    // (index methodology section 12), nothing to report each day.
                    Err(SettleError::Base(_)) => {}
                    Err(e) => lines.push(format!("{} {label} no value to date: {e}", c.id)),
                }
            }
        }
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sit_core::fixed::Fixed;
    use sit_core::index::Status;

    fn entry(date: &str, version: u32, value: &str, at: &str) -> LogEntry {
        let date = Date::parse(date).unwrap();
        LogEntry {
            tier: "t1".into(),
            date,
            version,
            sequence: date.0 as u64,
            status: if version == 1 {
                Status::Final
            } else {
                Status::Restated
            },
            value: Some(Fixed::parse(value).unwrap()),
            published_at: at.into(),
            key_id: "ed25519:0000000000000000".into(),
            file: Archive::file_name("t1", date, version),
            record_hash: format!("{:064x}", date.0 as u64 * 10 + version as u64),
        }
    }

    fn contract() -> Contract {
        crate::contracts::embedded(&["t1".into(), "t2".into(), "t3".into()])
            .into_iter()
            .find(|c| c.id == "SIT-T1-M")
            .unwrap()
    }

    /// Golden: three days of March 2026 at 0.1, 0.2, 0.4 (day 2 restated from 0.3 before the
    /// time asked): month to date (0.1 + 0.2 + 0.4) / 3 = 0.2333... -> 0.2333; asked before the
    /// restatement, (0.1 + 0.3 + 0.4) / 3 = 0.2667.
    #[test]
    fn month_to_date_uses_the_records_in_force_at_the_time_asked() {
        let es = vec![
            entry("2026-03-01", 1, "0.1", "2026-03-02T00:10:00.000Z"),
            entry("2026-03-02", 1, "0.3", "2026-03-03T00:10:00.000Z"),
            entry("2026-03-03", 1, "0.4", "2026-03-04T00:10:00.000Z"),
            entry("2026-03-02", 2, "0.2", "2026-03-04T12:00:00.000Z"),
        ];
        let p = Period::of(sit_core::settlement::Cycle::Monthly, 2026, 3).unwrap();
        let at = |s: &str| sit_core::time::parse_utc_ms(s).unwrap();
        let r = compute(&es, &contract(), p, at("2026-03-05T00:00:00Z")).unwrap();
        assert_eq!(r.status, SettlementStatus::Indicative);
        assert_eq!(
            (r.value, r.days_counted),
            (Fixed::parse("0.2333").unwrap(), 3)
        );
        let r = compute(&es, &contract(), p, at("2026-03-04T06:00:00Z")).unwrap();
        assert_eq!(r.value, Fixed::parse("0.2667").unwrap());
        // after the final time the month needs every day
        let e = compute(&es, &contract(), p, at("2026-05-01T00:00:00Z")).unwrap_err();
        assert_eq!(
            e,
            SettleError::MissingDay(Date::parse("2026-03-04").unwrap())
        );
    }

    /// A FINAL record is written once: a second write, even of another value, leaves the
    /// first bytes and says so.
    #[test]
    fn a_final_record_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let a = Archive::new(dir.path().to_path_buf());
        let es: Vec<LogEntry> = (1..=31)
            .map(|d| {
                let date = format!("2026-03-{d:02}");
                entry(&date, 1, "0.1", &format!("{date}T00:10:00.000Z"))
            })
            .collect();
        let p = Period::of(sit_core::settlement::Cycle::Monthly, 2026, 3).unwrap();
        let at = sit_core::time::parse_utc_ms("2026-04-03T00:00:00Z").unwrap();
        let r = compute(&es, &contract(), p, at).unwrap();
        assert_eq!(r.status, SettlementStatus::Final);
        let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
        let lock = a.lock().unwrap();
        let Written::New(path) = write_final(&a, &lock, &r, &key).unwrap() else {
            panic!("first write")
        };
        let first = std::fs::read(&path).unwrap();
        let mut other = r.clone();
        other.computed_at = "2026-04-04T00:00:00.000Z".into();
        match write_final(&a, &lock, &other, &key).unwrap() {
            Written::Stands(p2, bytes) => assert_eq!((p2, bytes), (path.clone(), first.clone())),
            Written::New(_) => panic!("replaced"),
        }
        assert_eq!(std::fs::read(&path).unwrap(), first);
        // no temporary file is left behind
        let names: Vec<String> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["2026-03.json".to_string()]);
    }
}
