//! Everything the oracle keeps on disk after a determination: the publication archive
//! (signed records as write-once files plus an append-only log, schedule commitments and
//! reveals, the signers' public keys), settlement records ([`settlements`]), key files
//! ([`keys`]) and the vantages' archives ([`vantages`]); [`layout`] names every path under the
//! data folder; [`mirror`] copies it off the machine.
//!
//! The publication archive, under `<data>/published/`:
//! - `<tier>/<date>.v<N>.json` — one signed record (canonical bytes), created with O_EXCL and
//!   fsynced, never rewritten;
//! - `log.jsonl` — one line per record, appended and fsynced after the record file: tier, date,
//!   version, sequence, status, value, key id, file name and the record's blake3;
//! - `keys/<id>.pem` — the public key of every key that signed a record;
//! - `commitments/<date>.{commit,reveal}.json` — the day's schedule commitment and its reveal;
//! - `notices/N-NNNN.json` — the signed notices, write-once, numbered in order ([`notices`]);
//! - `.lock` — held (flock) by a publisher while it decides and writes.
//!
//! Replication ([`Replica`], [`Write`]): in the probe network's cluster the archive of every
//! collector is the same sequence of writes, taken from one replicated log in order. A
//! publisher's archive then hands every write to its replica, which appends it to the log (if
//! this publisher may still write) and applies it here through [`Archive::apply`], the one
//! path by which any collector's archive changes; an archive without a replica writes itself.
//!
//! Why files and not sled: sled allows one process per database, and the server must keep
//! serving while `sit publish` adds a record. The server only reads this folder; it notices new
//! records by the log growing. A record is published when its log line is complete: a crash
//! between the file and the line leaves an unlisted file, which the next publish reports.

pub mod keys;
pub mod layout;
pub mod mirror;
pub mod notices;
pub mod register;
pub mod settlements;
pub mod vantages;

use crate::sys::durable;
use serde::{Deserialize, Serialize};
use sit_core::fixed::Fixed;
use sit_core::index::Status;
use sit_core::record::record_hash;
use sit_core::time::Date;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("publication archive I/O at {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} line {line} is not a publication log entry: {why}\n  hint: the log is append-only; restore it from a backup rather than editing it")]
    Corrupt {
        path: PathBuf,
        line: usize,
        why: String,
    },
    #[error("{path} does not match its log entry (blake3 {actual}, log says {expected}); the archive was altered")]
    Altered {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("{path} exists but is not in the publication log (a publish was interrupted)\n  hint: check it with `sit verify`, then move it aside and publish again")]
    Unlisted { path: PathBuf },
    /// The replicated log did not take the write (this process is not the publisher, or
    /// another wrote first): nothing was written.
    #[error("not published: {0}")]
    Replica(String),
    /// A replicated write that cannot be applied here.
    #[error("replicated write refused: {0}")]
    BadWrite(String),
}

/// One write to the publication archive, as the replicated log carries it (JSON, tagged by
/// `op`). Every archived document is JSON text, carried as a string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Write {
    /// A record, its log line and its signer's public key (PEM).
    Record {
        entry: LogEntry,
        text: String,
        public_pem: String,
    },
    /// A write-once file (a commitment, a reveal, a final settlement record), `path` relative
    /// to the archive root.
    Once { path: String, text: String },
    /// A file rewritten in place (an indicative settlement record).
    Replace { path: String, text: String },
}

/// Where a publisher's writes go first (see the module doc).
pub trait Replica: Send + Sync {
    /// Append `w` to the replicated log and apply it to the archive, or refuse it (nothing
    /// written anywhere).
    fn write(&self, w: Write) -> Result<(), ArchiveError>;
    /// Whether a write would be taken now (this process holds the right to publish).
    fn may_write(&self) -> bool {
        true
    }
    /// Append price book entries (computed by [`crate::store::Store::price_changes`]) to the
    /// replicated log and import them into this folder's store, or refuse them: the price
    /// book is an input of every determination, so a cluster's collectors hold the same one.
    fn record_prices(&self, entries: Vec<sit_core::price::BookEntry>) -> Result<(), ArchiveError>;
}

fn text_of(bytes: &[u8], what: &Path) -> Result<String, ArchiveError> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| ArchiveError::BadWrite(format!("{} is not UTF-8 text", what.display())))
}

/// One line of `log.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub tier: String,
    pub date: Date,
    pub version: u32,
    pub sequence: u64,
    pub status: Status,
    pub value: Option<Fixed>,
    pub published_at: String,
    pub key_id: String,
    /// Path of the record relative to the archive root.
    pub file: String,
    pub record_hash: String,
}

/// The archive folder. Cheap to construct; touches the disk only when asked.
#[derive(Clone)]
pub struct Archive {
    root: PathBuf,
    replica: Option<std::sync::Arc<dyn Replica>>,
}

impl std::fmt::Debug for Archive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Archive")
            .field("root", &self.root)
            .field("replicated", &self.replica.is_some())
            .finish()
    }
}

/// Held while publishing: one publisher at a time decides and writes.
pub struct ArchiveLock {
    _file: File,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn sync_dir(dir: &Path) -> Result<(), ArchiveError> {
    durable::sync_dir(dir).map_err(io(dir))
}

impl Archive {
    /// The archive that belongs to a data folder.
    pub fn for_data(data: &Path) -> Archive {
        Archive::new(layout::published(data))
    }

    pub fn new(root: PathBuf) -> Archive {
        Archive {
            root,
            replica: None,
        }
    }

    /// This archive with its writes going through `replica` first.
    pub fn replicated(mut self, replica: std::sync::Arc<dyn Replica>) -> Archive {
        self.replica = Some(replica);
        self
    }

    /// The replica writes go through, if any.
    pub fn replica(&self) -> Option<&std::sync::Arc<dyn Replica>> {
        self.replica.as_ref()
    }

    /// Whether this archive may be written now (always, without a replica).
    pub fn may_write(&self) -> bool {
        self.replica.as_ref().is_none_or(|r| r.may_write())
    }

    /// A path relative to the root, as a replicated write names it.
    fn relative(&self, path: &Path) -> Result<String, ArchiveError> {
        path.strip_prefix(&self.root)
            .ok()
            .and_then(|p| p.to_str())
            .map(|p| p.to_string())
            .ok_or_else(|| {
                ArchiveError::BadWrite(format!("{} is outside the archive", path.display()))
            })
    }

    /// The file a replicated write names: relative, without `..` or empty parts.
    fn inside(&self, rel: &str) -> Result<PathBuf, ArchiveError> {
        let ok = !rel.is_empty()
            && !rel.starts_with('/')
            && rel
                .split('/')
                .all(|p| !p.is_empty() && p != "." && p != ".." && !p.starts_with('.'));
        if ok {
            Ok(self.root.join(rel))
        } else {
            Err(ArchiveError::BadWrite(format!(
                "`{rel}` is not a path inside the archive"
            )))
        }
    }

    /// Apply one replicated write here, idempotently: a write applied already (the same
    /// bytes, the same log line) is a no-op, so a log applied again after a crash leaves the
    /// archive as it was; different bytes at a write-once path are refused.
    pub fn apply(&self, w: &Write) -> Result<(), ArchiveError> {
        match w {
            Write::Record {
                entry,
                text,
                public_pem,
            } => {
                if entry.file != Self::file_name(&entry.tier, entry.date, entry.version)
                    || record_hash(text.as_bytes()) != entry.record_hash
                {
                    return Err(ArchiveError::BadWrite(format!(
                        "the record of {} {} v{} does not match its log line",
                        entry.tier, entry.date, entry.version
                    )));
                }
                let path = self.inside(&entry.file)?;
                if let Ok(old) = std::fs::read(&path) {
                    if old != text.as_bytes() {
                        return Err(ArchiveError::Altered {
                            path,
                            expected: entry.record_hash.clone(),
                            actual: record_hash(&old),
                        });
                    }
                    if self.entries()?.iter().any(|e| e == entry) {
                        return Ok(());
                    }
                    // the file landed, its line did not (a crash between): the line now
                    let lp = self.log_path();
                    let line = serde_json::to_vec(entry).expect("log entry serialises");
                    return durable::append_line(&lp, &line).map_err(io(&lp));
                }
                self.write_record(text.as_bytes(), entry, public_pem)
                    .map(|_| ())
            }
            Write::Once { path, text } => {
                let p = self.inside(path)?;
                self.create_once_at(p, text.as_bytes())
            }
            Write::Replace { path, text } => {
                let p = self.inside(path)?;
                durable::replace(&p, text.as_bytes(), durable::Access::Shared).map_err(io(&p))
            }
        }
    }

    /// Create `path` with `bytes` once (the same bytes again: nothing to do).
    fn create_once_at(&self, path: PathBuf, bytes: &[u8]) -> Result<(), ArchiveError> {
        if let Ok(old) = std::fs::read(&path) {
            if old == bytes {
                return Ok(());
            }
            return Err(ArchiveError::Altered {
                expected: record_hash(&old),
                actual: record_hash(bytes),
                path,
            });
        }
        let dir = path.parent().expect("a file in a folder");
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        write_once(&path, bytes)
    }

    /// Write a file once: through the replica when there is one.
    pub fn put_file_once(&self, path: &Path, bytes: &[u8]) -> Result<(), ArchiveError> {
        match &self.replica {
            Some(r) => {
                if std::fs::read(path).is_ok_and(|old| old == bytes) {
                    return Ok(());
                }
                r.write(Write::Once {
                    path: self.relative(path)?,
                    text: text_of(bytes, path)?,
                })
            }
            None => self.create_once_at(path.to_path_buf(), bytes),
        }
    }

    /// Create a file once, or say what it holds already (`Some(bytes)`): through the replica
    /// when there is one; otherwise by a hard link from a uniquely named temporary file, which
    /// fails when the file exists, so even a writer outside the lock never replaces it.
    pub fn link_file_once(
        &self,
        path: &Path,
        bytes: &[u8],
    ) -> Result<Option<Vec<u8>>, ArchiveError> {
        match &self.replica {
            Some(_) => {
                if let Ok(old) = std::fs::read(path) {
                    return Ok(Some(old));
                }
                self.put_file_once(path, bytes).map(|_| None)
            }
            None => durable::link_once(path, bytes).map_err(io(path)),
        }
    }

    /// Rewrite a file in place: through the replica when there is one.
    pub fn replace_file(&self, path: &Path, bytes: &[u8]) -> Result<(), ArchiveError> {
        match &self.replica {
            Some(r) => r.write(Write::Replace {
                path: self.relative(path)?,
                text: text_of(bytes, path)?,
            }),
            None => durable::replace(path, bytes, durable::Access::Shared).map_err(io(path)),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn log_path(&self) -> PathBuf {
        self.root.join("log.jsonl")
    }

    /// Size of the log in bytes (0 when absent): the server's cheap "anything new?" check.
    pub fn log_len(&self) -> u64 {
        std::fs::metadata(self.log_path())
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// Take the publisher lock (creating the archive folder if needed). Blocks while another
    /// publisher holds it.
    pub fn lock(&self) -> Result<ArchiveLock, ArchiveError> {
        std::fs::create_dir_all(&self.root).map_err(io(&self.root))?;
        let p = self.root.join(".lock");
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(io(&p))?;
        f.lock().map_err(io(&p))?;
        Ok(ArchiveLock { _file: f })
    }

    /// Every complete log line, in publication order. A final line without its newline was
    /// never acknowledged and is ignored.
    pub fn entries(&self) -> Result<Vec<LogEntry>, ArchiveError> {
        let p = self.log_path();
        let text = match std::fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(io(&p)(e)),
        };
        let complete = match text.rfind('\n') {
            Some(i) => &text[..=i],
            None => "",
        };
        complete
            .lines()
            .enumerate()
            .map(|(i, l)| {
                serde_json::from_str(l).map_err(|e| ArchiveError::Corrupt {
                    path: p.clone(),
                    line: i + 1,
                    why: e.to_string(),
                })
            })
            .collect()
    }

    /// The record bytes of a log entry, checked against the logged hash.
    pub fn read(&self, e: &LogEntry) -> Result<Vec<u8>, ArchiveError> {
        let p = self.root.join(&e.file);
        let bytes = std::fs::read(&p).map_err(io(&p))?;
        let actual = record_hash(&bytes);
        if actual != e.record_hash {
            return Err(ArchiveError::Altered {
                path: p,
                expected: e.record_hash.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Public key PEM of a key id, if a record signed by it was published here.
    pub fn key_pem(&self, key_id: &str) -> Option<String> {
        std::fs::read_to_string(self.key_path(key_id)).ok()
    }

    fn key_path(&self, key_id: &str) -> PathBuf {
        let name: String = key_id
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        self.root.join("keys").join(format!("{name}.pem"))
    }

    fn commitment_path(&self, date: Date, kind: &str) -> PathBuf {
        self.root
            .join("commitments")
            .join(format!("{date}.{kind}.json"))
    }

    /// Write a schedule document once; writing the same bytes again is a no-op, different
    /// bytes are refused (a commitment cannot change).
    fn put_once<T: Serialize>(&self, path: PathBuf, v: &T) -> Result<(), ArchiveError> {
        let bytes = sit_core::signing::canonical(&serde_json::to_value(v).expect("serialises"));
        self.put_file_once(&path, &bytes)
    }

    /// Publish a day's schedule commitment (before the day).
    pub fn put_commitment(&self, c: &sit_core::commit::Commitment) -> Result<(), ArchiveError> {
        self.put_once(self.commitment_path(c.date, "commit"), c)
    }

    /// Publish a day's seed reveal (after the day).
    pub fn put_reveal(&self, r: &sit_core::commit::Reveal) -> Result<(), ArchiveError> {
        self.put_once(self.commitment_path(r.date, "reveal"), r)
    }

    pub fn commitment(&self, date: Date) -> Option<sit_core::commit::Commitment> {
        serde_json::from_slice(&std::fs::read(self.commitment_path(date, "commit")).ok()?).ok()
    }

    pub fn reveal(&self, date: Date) -> Option<sit_core::commit::Reveal> {
        serde_json::from_slice(&std::fs::read(self.commitment_path(date, "reveal")).ok()?).ok()
    }

    /// The relative file name of a record.
    pub fn file_name(tier: &str, date: Date, version: u32) -> String {
        format!("{tier}/{date}.v{version}.json")
    }

    /// Write a record and its log line, durably, in that order. `entry.file` must be
    /// [`Archive::file_name`] of the entry.
    pub fn append(
        &self,
        _lock: &ArchiveLock,
        bytes: &[u8],
        entry: &LogEntry,
        public_pem: &str,
    ) -> Result<PathBuf, ArchiveError> {
        debug_assert_eq!(
            entry.file,
            Self::file_name(&entry.tier, entry.date, entry.version)
        );
        if let Some(r) = &self.replica {
            let path = self.root.join(&entry.file);
            r.write(Write::Record {
                entry: entry.clone(),
                text: text_of(bytes, &path)?,
                public_pem: public_pem.to_string(),
            })?;
            return Ok(path);
        }
        self.write_record(bytes, entry, public_pem)
    }

    /// [`Archive::append`] here, directly.
    fn write_record(
        &self,
        bytes: &[u8],
        entry: &LogEntry,
        public_pem: &str,
    ) -> Result<PathBuf, ArchiveError> {
        // The signer's public key first, so every listed record has its key beside it.
        let kp = self.key_path(&entry.key_id);
        if !kp.exists() {
            let dir = kp.parent().expect("keys folder");
            std::fs::create_dir_all(dir).map_err(io(dir))?;
            write_once(&kp, public_pem.as_bytes())?;
        }
        let path = self.root.join(&entry.file);
        let dir = path.parent().expect("tier folder");
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        write_once(&path, bytes).map_err(|e| match e {
            ArchiveError::Io { source, .. }
                if source.kind() == std::io::ErrorKind::AlreadyExists =>
            {
                ArchiveError::Unlisted { path: path.clone() }
            }
            e => e,
        })?;
        sync_dir(&self.root)?;

        let lp = self.log_path();
        let line = serde_json::to_vec(entry).expect("log entry serialises");
        durable::append_line(&lp, &line).map_err(io(&lp))?;
        Ok(path)
    }
}

fn write_once(path: &Path, bytes: &[u8]) -> Result<(), ArchiveError> {
    durable::create_once(path, bytes, durable::Access::Shared).map_err(io(path))
}

/// The latest version of each (tier, date), in (tier, date) order.
pub fn in_force(entries: &[LogEntry]) -> std::collections::BTreeMap<(String, Date), &LogEntry> {
    let mut m = std::collections::BTreeMap::new();
    for e in entries {
        let slot = m.entry((e.tier.clone(), e.date)).or_insert(e);
        if e.version > slot.version {
            *slot = e;
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(version: u32) -> LogEntry {
        let date = Date::parse("2026-01-05").unwrap();
        LogEntry {
            tier: "t1".into(),
            date,
            version,
            sequence: version as u64,
            status: Status::Final,
            value: Some(Fixed(1)),
            published_at: "2026-01-06T00:00:00.000Z".into(),
            key_id: "ed25519:00".into(),
            file: Archive::file_name("t1", date, version),
            record_hash: record_hash(format!("r{version}").as_bytes()),
        }
    }

    #[test]
    fn append_is_write_once_and_torn_lines_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let a = Archive::new(dir.path().join("published"));
        let lock = a.lock().unwrap();
        a.append(&lock, b"r1", &entry(1), "pem").unwrap();
        // A torn line from a crash mid-append.
        use std::io::Write;
        let mut f = OpenOptions::new().append(true).open(a.log_path()).unwrap();
        f.write_all(b"{\"tier\":\"t1\",\"da").unwrap();
        assert_eq!(a.entries().unwrap().len(), 1);
        a.append(&lock, b"r2", &entry(2), "pem").unwrap();
        let es = a.entries().unwrap();
        assert_eq!(es.iter().map(|e| e.version).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(a.read(&es[1]).unwrap(), b"r2");
        // The same file again: refused, nothing overwritten.
        let e = a.append(&lock, b"other", &entry(2), "pem").unwrap_err();
        assert!(matches!(e, ArchiveError::Unlisted { .. }), "{e}");
        assert_eq!(a.read(&es[1]).unwrap(), b"r2");
        assert_eq!(in_force(&es)[&("t1".to_string(), es[0].date)].version, 2);
    }

    #[test]
    fn altered_record_file_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let a = Archive::new(dir.path().to_path_buf());
        let lock = a.lock().unwrap();
        let p = a.append(&lock, b"r1", &entry(1), "pem").unwrap();
        std::fs::write(&p, b"r9").unwrap();
        let e = a.read(&a.entries().unwrap()[0]).unwrap_err();
        assert!(matches!(e, ArchiveError::Altered { .. }));
    }
}
