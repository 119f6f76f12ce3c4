//! `sit settle`: a contract period's settlement value from the archived daily records (see
//! [`crate::settlement`] for the rule).

use super::{Command, Paths};
use crate::clock::{format_utc_ms, Clock, SystemClock};
use crate::error::{Error, Result};
use crate::settlement::{
    mean_value, rule_text, sign_record, DayValue, Period, SettlementRecord, SettlementStatus,
    SCHEMA,
};

/// The records a settlement uses: for each day of `period`, the version of `tier`'s record in
/// force at `final_ms` (the latest published by then; a restatement after it never counts).
pub fn days_in_force(
    entries: &[crate::publisher::archive::LogEntry],
    tier: &str,
    period: Period,
    final_ms: i64,
) -> Vec<DayValue> {
    let until = format_utc_ms(final_ms);
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

pub(super) fn run(cli: &Paths, c: Command) -> Result<()> {
    let Command::Settle {
        tier,
        month,
        contract,
        contracts,
        key,
    } = c
    else {
        return Err(Error::Usage("not a settle command".into()));
    };
    let suite = crate::probes::Suite::embedded();
    let all = crate::contracts::load(&contracts, &suite.tier_ids())?;
    let (y, m) = month
        .split_once('-')
        .and_then(|(y, m)| Some((y.parse::<i32>().ok()?, m.parse::<u32>().ok()?)))
        .filter(|(_, m)| (1..=12).contains(m))
        .ok_or_else(|| Error::Usage(format!("--month {month}: use YYYY-MM, e.g. 2026-02")))?;
    let c = all
        .iter()
        .find(|c| match &contract {
            Some(id) => c.id == *id,
            None => c.tier == tier && c.cycle == crate::settlement::Cycle::Monthly,
        })
        .filter(|c| c.tier == tier)
        .ok_or_else(|| {
            Error::Usage(format!(
                "{}: no {} contract on tier {tier}; listed: {}",
                contracts.display(),
                contract.as_deref().unwrap_or("monthly"),
                all.iter()
                    .map(|c| format!("{} ({})", c.id, c.tier))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?
        .clone();
    let period = Period::of(c.cycle, y, m).expect("checked month");
    let m_now = crate::versions::Registry::embedded().current_methodology();
    let final_ms = crate::publisher::policy::cutoff_ms(m_now, period.last);
    let now = SystemClock.now_ms();
    let archive = crate::publisher::archive::Archive::for_data(&cli.data);
    let entries = archive
        .entries()
        .map_err(|e| Error::Failed(format!("reading the archive: {e}")))?;
    let days = days_in_force(&entries, &tier, period, final_ms);
    let complete = now >= final_ms;
    if !complete && key.is_some() {
        return Err(Error::Refused(format!(
            "{} {month} is not final until {} ({} of {} days published); an indicative value is never signed as final",
            c.id,
            format_utc_ms(final_ms),
            days.len(),
            period.days().count()
        )));
    }
    let (value, n) = mean_value(&c, period, &days, complete)
        .map_err(|e| Error::Refused(format!("{} {month}: cannot settle: {e}", c.id)))?;
    let status = if complete {
        SettlementStatus::Final
    } else {
        SettlementStatus::Indicative
    };
    let record = SettlementRecord {
        schema: SCHEMA.into(),
        rule: rule_text(&c),
        contract: c.clone(),
        period,
        days,
        days_counted: n,
        value,
        status,
        final_settlement_time: format_utc_ms(final_ms),
        computed_at: format_utc_ms(now),
        key_id: None,
    };
    let total = period.days().count();
    match (status, key) {
        (SettlementStatus::Indicative, _) => {
            println!(
                "{} {month} INDICATIVE {} (month to date: {} of {total} days; final at {})",
                c.id,
                value,
                record.days.len(),
                format_utc_ms(final_ms)
            );
            Ok(())
        }
        (SettlementStatus::Final, None) => {
            println!(
                "{} {month} FINAL {} ({n} days counted; sign and archive it with --key)",
                c.id, value
            );
            Ok(())
        }
        (SettlementStatus::Final, Some(k)) => {
            let key = crate::publisher::keys::load_signing(&k)?;
            let bytes = sign_record(&record, &key);
            let path = cli
                .data
                .join("published/settlements")
                .join(&c.id)
                .join(format!("{y:04}-{m:02}.json"));
            if let Ok(old) = std::fs::read(&path) {
                // A final settlement value never changes: the archived one stands.
                let old_rec: serde_json::Value = serde_json::from_slice(&old)
                    .map_err(|e| Error::Failed(format!("{}: {e}", path.display())))?;
                println!(
                    "{} {month} FINAL {} (already archived at {}; it stands)",
                    c.id,
                    old_rec["value"].as_str().unwrap_or("?"),
                    path.display()
                );
                return Ok(());
            }
            crate::service::write_durably(&path, &bytes, false)?;
            println!(
                "{} {month} FINAL {} ({n} days counted) signed: {}",
                c.id,
                value,
                path.display()
            );
            Ok(())
        }
    }
}
