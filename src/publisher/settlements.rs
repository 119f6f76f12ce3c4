//! Settlement records on disk: computed from the archive log (the daily records in force),
//! signed, and kept under `published/settlements/CONTRACT/`:
//! - `PERIOD.json`: the FINAL value, written once and never changed;
//! - `PERIOD.indicative.json`: the period to date (INDICATIVE), rewritten after each
//!   publication until the final one exists.
//!
//! `PERIOD` is `YYYY-MM` for a monthly contract, `YYYY-Qn` for a quarterly one. The rule itself
//! is [`crate::settlement`]'s (pure); this module only chooses the records and moves bytes.

use super::archive::{Archive, LogEntry};
use crate::sys::clock::{format_utc_ms, Date};
use crate::settlement::{
    mean_value, rule_text, sign_record, Contract, DayValue, Period, SettleError, SettlementRecord,
    SettlementStatus, SCHEMA,
};
use crate::versions::Registry;
use std::path::{Path, PathBuf};

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
        key_id: None,
    })
}

/// Where the record of `contract`'s `period` with `status` lives under the archive.
pub fn path(
    archive: &Archive,
    contract: &Contract,
    period: Period,
    status: SettlementStatus,
) -> PathBuf {
    let label = period.label(contract.cycle);
    let name = match status {
        SettlementStatus::Final => format!("{label}.json"),
        SettlementStatus::Indicative => format!("{label}.indicative.json"),
    };
    archive
        .root()
        .join("settlements")
        .join(&contract.id)
        .join(name)
}

/// What [`write_final`] did.
#[derive(Debug)]
pub enum Written {
    /// Signed and written now.
    New(PathBuf),
    /// A final value was already archived: it stands (its bytes).
    Stands(PathBuf, Vec<u8>),
}

/// Sign and archive a FINAL record, once: an archived final value is never replaced. The
/// caller holds the archive lock (`_lock`), so no restatement of the period's days is appended
/// while the record is chosen and written; the file is created with a hard link from a
/// uniquely named temporary file, which fails when the final file exists, so even a writer
/// outside the lock can never replace it.
pub fn write_final(
    archive: &Archive,
    _lock: &super::archive::ArchiveLock,
    record: &SettlementRecord,
    key: &ed25519_dalek::SigningKey,
) -> crate::error::Result<Written> {

    debug_assert_eq!(record.status, SettlementStatus::Final);
    let p = path(
        archive,
        &record.contract,
        record.period,
        SettlementStatus::Final,
    );
    match crate::sys::durable::link_once(&p, &sign_record(record, key))? {
        None => Ok(Written::New(p)),
        Some(old) => Ok(Written::Stands(p, old)),
    }
}

/// Sign and (re)write the INDICATIVE record of a period to date.
pub fn write_indicative(
    archive: &Archive,
    record: &SettlementRecord,
    key: &ed25519_dalek::SigningKey,
) -> crate::error::Result<PathBuf> {
    debug_assert_eq!(record.status, SettlementStatus::Indicative);
    let p = path(
        archive,
        &record.contract,
        record.period,
        SettlementStatus::Indicative,
    );
    crate::sys::durable::replace(&p, &sign_record(record, key), crate::sys::durable::Access::Shared)?;
    Ok(p)
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
) -> crate::error::Result<Vec<String>> {
    let failed = |e: super::archive::ArchiveError| {
        crate::error::Error::Failed(format!("reading the archive: {e}"))
    };
    // Under the publisher lock: no restatement is appended while the records are chosen.
    let lock = archive.lock().map_err(failed)?;
    let entries = archive.entries().map_err(failed)?;
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
                    Err(e) if now_ms - final_ms < 7 * crate::sys::clock::DAY_MS => {
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
                    // (index methodology §18), nothing to report each day.
                    Err(SettleError::Base(_)) => {}
                    Err(e) => lines.push(format!("{} {label} no value to date: {e}", c.id)),
                }
            }
        }
    }
    Ok(lines)
}

/// A settlement record as archived: its period name and bytes, parsed.
#[derive(Debug, Clone)]
pub struct Archived {
    pub label: String,
    /// As signed and archived (shared, so serving it copies nothing).
    pub bytes: bytes::Bytes,
    pub record: SettlementRecord,
}

/// Every archived settlement record of `tier` with `status` (any contract), in period order
/// then contract id. Files that do not parse are skipped (the verifier names them).
pub fn archived(root: &Path, tier: &str, status: SettlementStatus) -> Vec<Archived> {
    let suffix = match status {
        SettlementStatus::Final => ".json",
        SettlementStatus::Indicative => ".indicative.json",
    };
    let mut out = Vec::new();
    let Ok(dirs) = std::fs::read_dir(root.join("settlements")) else {
        return out;
    };
    for d in dirs.filter_map(|e| e.ok()) {
        let Ok(files) = std::fs::read_dir(d.path()) else {
            continue;
        };
        for f in files.filter_map(|e| e.ok()) {
            let name = f.file_name().to_string_lossy().into_owned();
            let Some(label) = name.strip_suffix(suffix) else {
                continue;
            };
            if status == SettlementStatus::Final && label.ends_with(".indicative") {
                continue;
            }
            let Ok(bytes) = std::fs::read(f.path()) else {
                continue;
            };
            let Ok(v) = crate::signing::parse_strict(&bytes) else {
                continue;
            };
            let mut v = v;
            if let Some(o) = v.as_object_mut() {
                o.remove("signature");
            }
            let Ok(record) = serde_json::from_value::<SettlementRecord>(v) else {
                continue;
            };
            if record.contract.tier == tier && record.status == status {
                out.push(Archived {
                    label: label.to_string(),
                    bytes: bytes.into(),
                    record,
                });
            }
        }
    }
    out.sort_by(|a, b| {
        (
            a.record.period.first,
            a.record.period.last,
            &a.record.contract.id,
        )
            .cmp(&(
                b.record.period.first,
                b.record.period.last,
                &b.record.contract.id,
            ))
    });
    out
}

/// A FINAL record of `tier` whose period holds `date`, if any.
pub fn final_holding(archive: &Archive, tier: &str, date: Date) -> Option<Archived> {
    archived(archive.root(), tier, SettlementStatus::Final)
        .into_iter()
        .find(|a| a.record.period.first <= date && date <= a.record.period.last)
}

/// A fingerprint of the settlement files (names, sizes, modification times): the server
/// reloads its page when it changes, since settlements are written after the log grows.
pub fn mark(root: &Path) -> u64 {
    let mut h = blake3::Hasher::new();
    let Ok(dirs) = std::fs::read_dir(root.join("settlements")) else {
        return 0;
    };
    let mut seen: Vec<(String, u64, u128)> = Vec::new();
    for d in dirs.filter_map(|e| e.ok()) {
        let Ok(files) = std::fs::read_dir(d.path()) else {
            continue;
        };
        for f in files.filter_map(|e| e.ok()) {
            let Ok(m) = f.metadata() else { continue };
            let t = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            seen.push((f.path().to_string_lossy().into_owned(), m.len(), t));
        }
    }
    seen.sort();
    for (p, n, t) in seen {
        h.update(p.as_bytes());
        h.update(&n.to_le_bytes());
        h.update(&t.to_le_bytes());
    }
    u64::from_le_bytes(h.finalize().as_bytes()[..8].try_into().expect("8 bytes"))
}

/// What the page shows of a tier's futures: per contract, the latest INDICATIVE record (the
/// period to date) unless that period is final, and its last three FINAL records.
#[derive(Debug, Clone, Default)]
pub struct Overview {
    pub to_date: Vec<Archived>,
    pub finals: Vec<Archived>,
}

/// [`Overview`] of one tier's archived FINAL and INDICATIVE records ([`archived`]).
pub fn overview(finals: &[Archived], indicatives: &[Archived]) -> Overview {
    let mut to_date: Vec<Archived> = Vec::new();
    for a in indicatives {
        let settled = finals.iter().any(|f| {
            f.record.contract.id == a.record.contract.id && f.record.period == a.record.period
        });
        if settled {
            continue;
        }
        // the latest period per contract
        to_date.retain(|t| t.record.contract.id != a.record.contract.id);
        to_date.push(a.clone());
    }
    // the last three of each contract (a quarterly contract sorts among the monthly ones)
    let mut kept: Vec<Archived> = Vec::new();
    for (i, f) in finals.iter().enumerate() {
        let later = finals[i + 1..]
            .iter()
            .filter(|g| g.record.contract.id == f.record.contract.id)
            .count();
        if later < 3 {
            kept.push(f.clone());
        }
    }
    Overview {
        to_date,
        finals: kept,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixed::Fixed;
    use crate::index::Status;

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
        let p = Period::of(crate::settlement::Cycle::Monthly, 2026, 3).unwrap();
        let at = |s: &str| crate::sys::clock::parse_utc_ms(s).unwrap();
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
        let p = Period::of(crate::settlement::Cycle::Monthly, 2026, 3).unwrap();
        let at = crate::sys::clock::parse_utc_ms("2026-04-03T00:00:00Z").unwrap();
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
