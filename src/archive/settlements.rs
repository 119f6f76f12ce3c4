//! Settlement records on disk, under `published/settlements/CONTRACT/`:
//! - `PERIOD.json`: the FINAL value, written once and never changed;
//! - `PERIOD.indicative.json`: the period to date (INDICATIVE), rewritten after each
//!   publication until the final one exists.
//!
//! `PERIOD` is `YYYY-MM` for a monthly contract, `YYYY-Qn` for a quarterly one. Which records
//! to write is decided above, by the publisher; the rule itself is [`sit_core::settlement`]'s
//! (pure); this module only moves bytes.

use super::Archive;
use sit_core::settlement::{sign_record, Contract, Period, SettlementRecord, SettlementStatus};
use sit_core::time::Date;
use std::path::{Path, PathBuf};

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
    _lock: &super::ArchiveLock,
    record: &SettlementRecord,
    key: &ed25519_dalek::SigningKey,
) -> std::io::Result<Written> {
    debug_assert_eq!(record.status, SettlementStatus::Final);
    let p = path(
        archive,
        &record.contract,
        record.period,
        SettlementStatus::Final,
    );
    match archive
        .link_file_once(&p, &sign_record(record, key))
        .map_err(std::io::Error::other)?
    {
        None => Ok(Written::New(p)),
        Some(old) => Ok(Written::Stands(p, old)),
    }
}

/// Sign and (re)write the INDICATIVE record of a period to date.
pub fn write_indicative(
    archive: &Archive,
    record: &SettlementRecord,
    key: &ed25519_dalek::SigningKey,
) -> std::io::Result<PathBuf> {
    debug_assert_eq!(record.status, SettlementStatus::Indicative);
    let p = path(
        archive,
        &record.contract,
        record.period,
        SettlementStatus::Indicative,
    );
    archive
        .replace_file(&p, &sign_record(record, key))
        .map_err(std::io::Error::other)?;
    Ok(p)
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
            let Ok(v) = sit_core::signing::parse_strict(&bytes) else {
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
