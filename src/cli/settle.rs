//! `sit settle`: a contract period's settlement value from the archived daily records (see
//! [`sit_core::settlement`] for the rule).

use super::{Command, Paths};
use crate::archive::settlements::{self, Written};
use crate::cli::error::{Error, Result};
use crate::publisher::settle;
use crate::sys::clock::{Clock, SystemClock};
use sit_core::settlement::{Period, SettlementStatus};
use sit_core::time::format_utc_ms;

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
    let suite = sit_core::probes::Suite::embedded();
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
            None => c.tier == tier && c.cycle == sit_core::settlement::Cycle::Monthly,
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
    let label = period.label(c.cycle);
    let final_ms = settle::final_time_ms(period);
    let now = SystemClock.now_ms();
    let archive = crate::archive::Archive::for_data(&cli.data);
    // Under the publisher lock: no restatement is appended while the records are chosen and
    // the final value written.
    let lock = archive
        .lock()
        .map_err(|e| Error::Failed(format!("locking the archive: {e}")))?;
    let entries = archive
        .entries()
        .map_err(|e| Error::Failed(format!("reading the archive: {e}")))?;
    let total = period.days().count();
    if now < final_ms && key.is_some() {
        let n = settle::days_in_force(&entries, &tier, period, now).len();
        return Err(Error::Refused(format!(
            "{} {label} is not final until {} ({n} of {total} days published); an indicative value is never signed as final",
            c.id,
            format_utc_ms(final_ms),
        )));
    }
    let mut record = settle::compute(&entries, &c, period, now)
        .map_err(|e| Error::Refused(format!("{} {label}: cannot settle: {e}", c.id)))?;
    // a contract's min_attestations: FINAL only once every listed day is attested (issue 30)
    if c.min_attestations > 0 && record.status == SettlementStatus::Final {
        let waiting = settle::awaiting(&archive, &c, &record.days);
        if !waiting.is_empty() {
            return Err(Error::Refused(format!(
                "{} {label} waits for attestations: {} of its {total} days have fewer than {} (min_attestations) auditors' attestations that they reproduce (first {}; GET /v1/attestations/{tier}/DATE); a FINAL value is signed once they arrive",
                c.id,
                waiting.len(),
                c.min_attestations,
                waiting[0]
            )));
        }
        record.attestations = Some(sit_core::settlement::AttestationWait {
            required: c.min_attestations,
            waiting_for: Vec::new(),
        });
    }
    let (value, n) = (record.value.round_dp(c.scale), record.days_counted);
    match (record.status, key) {
        (SettlementStatus::Indicative, _) => {
            println!(
                "{} {label} INDICATIVE {value} (period to date: {} of {total} days; final at {})",
                c.id,
                record.days.len(),
                format_utc_ms(final_ms)
            );
            Ok(())
        }
        (SettlementStatus::Final, None) => {
            println!(
                "{} {label} FINAL {value} ({n} days counted; sign and archive it with --key)",
                c.id
            );
            Ok(())
        }
        (SettlementStatus::Final, Some(k)) => {
            let key = crate::archive::keys::load_signing(&k)?;
            crate::publisher::notices::may_sign(&archive, &key, now)?;
            match settlements::write_final(&archive, &lock, &record, &key)? {
                Written::New(path) => println!(
                    "{} {label} FINAL {value} ({n} days counted) signed: {}",
                    c.id,
                    path.display()
                ),
                // A final settlement value never changes: the archived one stands.
                Written::Stands(path, old) => {
                    let old: serde_json::Value = serde_json::from_slice(&old)
                        .map_err(|e| Error::Failed(format!("{}: {e}", path.display())))?;
                    println!(
                        "{} {label} FINAL {} (already archived at {}; it stands)",
                        c.id,
                        old["value"].as_str().unwrap_or("?"),
                        path.display()
                    );
                }
            }
            Ok(())
        }
    }
}
