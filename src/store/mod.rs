//! The store: sled on disk, append-only and hash-chained. The only module that touches sled.
//!
//! Layout (one sled tree, prefixed keys, so a batch is atomic across all of them):
//! - `o` + time key (8 bytes, big-endian, sign bit flipped) + seq (8 bytes BE) ->
//!   32-byte blake3 of the record bytes + the record bytes (observation JSON).
//! - `h` -> next seq (8 bytes BE) + hash of the last record (32 bytes).
//! - `w` + worker id -> hash of that worker's last record: each worker's records form their
//!   own chain (`prev_hash` is the hash of the same worker's previous record), while `seq` is
//!   global, so a gap in `seq` shows a deleted record whichever worker made it.
//! - `y` + day (4 bytes BE) -> marker: a day that has observations.
//! - `b` + version (8 bytes BE) -> price book entry JSON (append-only; methodology 1.4.0
//!   costs attempts from it when a day is determined).
//! - `p` + endpoint id + 0x00 + effective-from time key -> price entry JSON: the write-once
//!   schedules of stores made before the price book, read as the book's first entries.
//! - `m` + name -> a service's small durable state, written in the same atomic batch as the
//!   records it describes: a probe network worker's shipping cursor, the collector's tip of
//!   each worker's chain and its dead-letter records (written by the probe network's collector).
//!
//! Why: time-ordered keys make "all observations of a window" one range scan; the chain
//! (each record holds the previous record's hash) lets an auditor prove nothing was dropped,
//! inserted or edited. [`Store::append`] assigns seq and prev_hash, applies one atomic batch,
//! and **flushes before returning**: a returned append is durable (sled 0.34 otherwise only
//! flushes every 500 ms).

use sit_core::observation::Observation;
use sit_core::price::{BookEntry, PriceBook};
use sit_core::price::{PriceEntry, PriceSchedule};
use sit_core::time::Date;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {path}: {source}\n  hint: is another `sit` process using it? Use --data DIR for a different folder")]
    Open { path: PathBuf, source: sled::Error },
    #[error("store I/O error: {0}")]
    Sled(#[from] sled::Error),
    #[error("corrupt record at key {key}: {why}")]
    Corrupt { key: String, why: String },
}

/// A stored observation with its record hash.
#[derive(Debug, Clone)]
pub struct Stored {
    pub hash: [u8; 32],
    pub obs: Observation,
}

pub struct Store {
    db: sled::Db,
    tree: sled::Tree,
    path: PathBuf,
    append_lock: Mutex<()>,
}

/// Big-endian with the sign bit flipped: orders i64 correctly as bytes.
fn time_key(ms: i64) -> [u8; 8] {
    ((ms as u64) ^ (1 << 63)).to_be_bytes()
}

fn obs_key(at_ms: i64, seq: u64) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = b'o';
    k[1..9].copy_from_slice(&time_key(at_ms));
    k[9..17].copy_from_slice(&seq.to_be_bytes());
    k
}

fn meta_key(name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + name.len());
    k.push(b'm');
    k.extend_from_slice(name.as_bytes());
    k
}

/// How long [`Store::open`] waits for another handle to release the store's lock.
pub const LOCK_WAIT_MS: u64 = 5_000;

/// The genesis "previous hash" of a chain.
pub const GENESIS: [u8; 32] = [0u8; 32];

impl Store {
    /// Open (or create) the store in `dir`.
    ///
    /// sled holds an exclusive file lock for as long as a process has the database open. A
    /// process that has just dropped its handle may still hold the lock for a moment (sled's
    /// background flusher lets go last), so a busy lock is retried for up to
    /// [`LOCK_WAIT_MS`] before giving up with the "another process" hint.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let mut waited_ms = 0;
        let db = loop {
            match sled::Config::new()
                .path(dir)
                .mode(sled::Mode::HighThroughput)
                .open()
            {
                Ok(db) => break db,
                // sled wraps the flock failure in a message, not an error kind.
                Err(sled::Error::Io(e))
                    if e.to_string().contains("could not acquire lock")
                        && waited_ms < LOCK_WAIT_MS =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    waited_ms += 50;
                }
                Err(source) => {
                    return Err(StoreError::Open {
                        path: dir.to_path_buf(),
                        source,
                    })
                }
            }
        };
        let tree = db.open_tree("sit-v1")?;
        Ok(Store {
            db,
            tree,
            path: dir.to_path_buf(),
            append_lock: Mutex::new(()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// (next seq, hash of the last record).
    pub fn head(&self) -> Result<(u64, [u8; 32]), StoreError> {
        match self.tree.get(b"h")? {
            None => Ok((0, GENESIS)),
            Some(v) if v.len() == 40 => Ok((
                u64::from_be_bytes(v[..8].try_into().unwrap()),
                v[8..40].try_into().unwrap(),
            )),
            Some(_) => Err(StoreError::Corrupt {
                key: "h".into(),
                why: "chain head has the wrong length".into(),
            }),
        }
    }

    /// Hash of the last record of `worker` (the genesis hash when it has none).
    pub fn worker_head(&self, worker: &str) -> Result<[u8; 32], StoreError> {
        let mut k = vec![b'w'];
        k.extend_from_slice(worker.as_bytes());
        match self.tree.get(&k)? {
            None => Ok(GENESIS),
            Some(v) => v[..].try_into().map_err(|_| StoreError::Corrupt {
                key: format!("w{worker}"),
                why: "worker head has the wrong length".into(),
            }),
        }
    }

    /// Append observations as one atomic, flushed batch. Assigns `seq` and `prev_hash` and
    /// returns the stored records' hashes. When this returns Ok, the records are on disk.
    pub fn append(&self, batch: &mut [Observation]) -> Result<Vec<[u8; 32]>, StoreError> {
        self.append_with_meta(batch, &[])
    }

    /// [`Store::append`], with named state values (`m` keys) written in the same atomic,
    /// flushed batch: the state and the records it describes are durable together or not at
    /// all. An empty `batch` with state is allowed.
    pub fn append_with_meta(
        &self,
        batch: &mut [Observation],
        meta: &[(String, Vec<u8>)],
    ) -> Result<Vec<[u8; 32]>, StoreError> {
        if batch.is_empty() {
            if !meta.is_empty() {
                let mut b = sled::Batch::default();
                for (k, v) in meta {
                    b.insert(meta_key(k), &v[..]);
                }
                self.tree.apply_batch(b)?;
                self.db.flush()?;
            }
            return Ok(vec![]);
        }
        let _g = self.append_lock.lock().unwrap_or_else(|p| p.into_inner());
        let (mut seq, mut prev) = self.head()?;
        let mut b = sled::Batch::default();
        let mut hashes = Vec::with_capacity(batch.len());
        let mut days = std::collections::BTreeSet::new();
        let mut heads: std::collections::BTreeMap<String, [u8; 32]> = Default::default();
        for o in batch.iter_mut() {
            let wprev = match heads.get(&o.worker) {
                Some(h) => *h,
                None => self.worker_head(&o.worker)?,
            };
            o.seq = seq;
            o.prev_hash = blake3::Hash::from(wprev).to_hex().to_string();
            let bytes = serde_json::to_vec(o).expect("observation serialises");
            let h = *blake3::hash(&bytes).as_bytes();
            let mut v = Vec::with_capacity(32 + bytes.len());
            v.extend_from_slice(&h);
            v.extend_from_slice(&bytes);
            b.insert(&obs_key(o.at_ms, seq)[..], v);
            days.insert(Date::of_ms(o.at_ms));
            hashes.push(h);
            heads.insert(o.worker.clone(), h);
            prev = h;
            seq += 1;
        }
        for (w, h) in &heads {
            let mut k = vec![b'w'];
            k.extend_from_slice(w.as_bytes());
            b.insert(k, &h[..]);
        }
        for d in days {
            let mut k = vec![b'y'];
            k.extend_from_slice(&(d.0 as u32).to_be_bytes());
            b.insert(k, &[][..]);
        }
        let mut head = Vec::with_capacity(40);
        head.extend_from_slice(&seq.to_be_bytes());
        head.extend_from_slice(&prev);
        b.insert(&b"h"[..], head);
        for (k, v) in meta {
            b.insert(meta_key(k), &v[..]);
        }
        self.tree.apply_batch(b)?;
        self.db.flush()?;
        Ok(hashes)
    }

    /// A named state value (see [`Store::append_with_meta`]).
    pub fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree.get(meta_key(name))?.map(|v| v.to_vec()))
    }

    /// Every state value whose name starts with `prefix`, in name order.
    pub fn metas(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for r in self.tree.scan_prefix(meta_key(prefix)) {
            let (k, v) = r?;
            out.push((String::from_utf8_lossy(&k[1..]).into_owned(), v.to_vec()));
        }
        Ok(out)
    }

    /// Delete the observations recorded before `before_ms` whose seq is below `below_seq`
    /// (a probe network worker's spool, once JetStream has acknowledged them). Flushed.
    /// The chain heads stay: the next record still links to the last one made. Returns how
    /// many were deleted.
    pub fn prune(&self, before_ms: i64, below_seq: u64) -> Result<u64, StoreError> {
        let _g = self.append_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut b = sled::Batch::default();
        let mut n = 0;
        for r in self.tree.range(obs_key(i64::MIN, 0)..obs_key(before_ms, 0)) {
            let (k, _) = r?;
            if k.len() == 17 && u64::from_be_bytes(k[9..17].try_into().unwrap()) < below_seq {
                b.remove(k);
                n += 1;
            }
        }
        if n > 0 {
            self.tree.apply_batch(b)?;
            self.db.flush()?;
        }
        Ok(n)
    }

    /// Observations with `from_ms <= at_ms < to_ms`, in time order.
    pub fn scan(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> impl Iterator<Item = Result<Stored, StoreError>> + '_ {
        let lo = obs_key(from_ms, 0);
        let hi = obs_key(to_ms, 0);
        self.tree.range(lo..hi).map(|r| {
            let (k, v) = r?;
            let key = || k.iter().map(|b| format!("{b:02x}")).collect::<String>();
            if v.len() < 32 {
                return Err(StoreError::Corrupt {
                    key: key(),
                    why: "record shorter than its hash".into(),
                });
            }
            let hash: [u8; 32] = v[..32].try_into().unwrap();
            let obs: Observation =
                serde_json::from_slice(&v[32..]).map_err(|e| StoreError::Corrupt {
                    key: key(),
                    why: e.to_string(),
                })?;
            Ok(Stored { hash, obs })
        })
    }

    /// Days that have at least one observation, ascending.
    pub fn days(&self) -> Result<Vec<Date>, StoreError> {
        let mut out = Vec::new();
        for r in self.tree.scan_prefix(b"y") {
            let (k, _) = r?;
            if k.len() == 5 {
                out.push(Date(u32::from_be_bytes(k[1..5].try_into().unwrap()) as i32));
            }
        }
        Ok(out)
    }

    /// Record endpoints' price schedules in the price book at `recorded_at_ms`: every entry
    /// the book does not already hold as it stands (new, or a correction of an entry with the
    /// same `effective_from`) is appended as the next version, with its source. Nothing is
    /// ever removed. One read of the book and one flushed batch for all of them; returns what
    /// was appended.
    pub fn record_prices<'a>(
        &self,
        schedules: impl IntoIterator<Item = (&'a str, &'a PriceSchedule)>,
        recorded_at_ms: i64,
        source: impl Fn(&str, &PriceEntry) -> Option<String>,
    ) -> Result<Vec<BookEntry>, StoreError> {
        let _g = self.append_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut book = self.book()?;
        // recorded in time order: a clock behind the book's last entry records at that entry's time
        let at = recorded_at_ms.max(book.entries().last().map_or(i64::MIN, |e| e.recorded_at_ms));
        let mut b = sled::Batch::default();
        let mut all = Vec::new();
        for (endpoint, schedule) in schedules {
            let new = book.changes(endpoint, schedule, at, |p| source(endpoint, p));
            for e in new {
                push_entry(&mut book, &mut b, &e)?;
                all.push(e);
            }
        }
        self.tree.apply_batch(b)?;
        self.db.flush()?;
        Ok(all)
    }

    /// Append entries of another book (an audit bundle's, when a store is rebuilt from it):
    /// versions this book already holds must be identical, the rest must continue it.
    pub fn import_book(&self, entries: &[BookEntry]) -> Result<u64, StoreError> {
        let _g = self.append_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut book = self.book()?;
        let mut b = sled::Batch::default();
        for e in entries {
            match book.entries().get(e.version as usize - 1) {
                Some(have) if have == e => continue,
                Some(_) => {
                    return Err(StoreError::Corrupt {
                        key: format!("price book {}", e.version),
                        why: "differs from the entry being imported".into(),
                    })
                }
                None => {}
            }
            push_entry(&mut book, &mut b, e)?;
        }
        self.tree.apply_batch(b)?;
        self.db.flush()?;
        Ok(book.version())
    }

    /// The price book: every entry ever recorded, in version order. A store written before
    /// the book existed has write-once schedules instead; they read as the book's first
    /// entries (by effective time, then endpoint), recorded when they took effect.
    pub fn book(&self) -> Result<PriceBook, StoreError> {
        let mut entries = Vec::new();
        for r in self.tree.scan_prefix([b'b']) {
            let (k, v) = r?;
            let e: BookEntry = serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                key: String::from_utf8_lossy(&k).into_owned(),
                why: e.to_string(),
            })?;
            entries.push(e);
        }
        let mut legacy = Vec::new();
        for r in self.tree.scan_prefix([b'p']) {
            let (k, v) = r?;
            let corrupt = |why: String| StoreError::Corrupt {
                key: String::from_utf8_lossy(&k).into_owned(),
                why,
            };
            let e: PriceEntry = serde_json::from_slice(&v).map_err(|e| corrupt(e.to_string()))?;
            let end = k
                .iter()
                .position(|b| *b == 0)
                .ok_or_else(|| corrupt("no endpoint end".into()))?;
            let endpoint =
                String::from_utf8(k[1..end].to_vec()).map_err(|e| corrupt(e.to_string()))?;
            legacy.push((e.effective_from_ms, endpoint, e));
        }
        legacy.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let mut all: Vec<BookEntry> = legacy
            .into_iter()
            .enumerate()
            .map(|(i, (at, endpoint, price))| BookEntry {
                version: i as u64 + 1,
                recorded_at_ms: at,
                endpoint,
                price,
                source: Some("write-once schedule of a store made before the price book".into()),
            })
            .collect();
        // book entries are numbered after the legacy ones (nothing writes those any more)
        all.extend(entries);
        PriceBook::new(all).map_err(|why| StoreError::Corrupt {
            key: "price book".into(),
            why: why.to_string(),
        })
    }

    /// An endpoint's price schedule as the book stands now.
    pub fn prices(&self, endpoint: &str) -> Result<PriceSchedule, StoreError> {
        let book = self.book()?;
        Ok(book.schedule(endpoint, book.version()))
    }
}

/// Add `e` to the book in memory and to the batch that stores it.
fn push_entry(book: &mut PriceBook, b: &mut sled::Batch, e: &BookEntry) -> Result<(), StoreError> {
    book.push(e.clone()).map_err(|why| StoreError::Corrupt {
        key: format!("price book {}", e.version),
        why: why.to_string(),
    })?;
    b.insert(
        &book_key(e.version)[..],
        serde_json::to_vec(e).expect("entry serialises"),
    );
    Ok(())
}

/// `b` + version (8 bytes BE): the price book's entries, in version order.
fn book_key(version: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = b'b';
    k[1..].copy_from_slice(&version.to_be_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample(at_ms: i64) -> Observation {
        Observation {
            seq: 0,
            prev_hash: String::new(),
            worker: String::new(),
            endpoint: "e".into(),
            provider: "p".into(),
            model: "m".into(),
            dialect: "openai".into(),
            region: "r".into(),
            tier: "t1".into(),
            family: "t1.arith".into(),
            family_version: 1,
            seed: 1,
            nonce: "n".into(),
            suite_hash: "s".into(),
            at_ms,
            clock: "system".into(),
            retry: 0,
            http_status: Some(200),
            failure: None,
            timings: Default::default(),
            answer: "42".into(),
            finish_reason: Some("stop".into()),
            server_model: None,
            correct: true,
            within_sla: true,
            tokens: Default::default(),
            price: None,
            cost: sit_core::fixed::Pusd(5),
            sit_size: 10,
            delivered_sit: 10,
            evidence: None,
            content_before_role: false,
            price_version: None,
            weights: None,
            vantage: None,
            origin: None,
        }
    }

    #[test]
    fn each_worker_chains_its_own_records_across_batches() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let day = Date::parse("2026-01-05").unwrap().start_ms();
        let w = |name: &str, t: i64| {
            let mut o = sample(day + t);
            o.worker = name.into();
            o
        };
        let mut a = vec![w("a", 1), w("b", 2), w("a", 3)];
        let ha = s.append(&mut a).unwrap();
        let mut b = vec![w("b", 4), w("a", 5)];
        let hb = s.append(&mut b).unwrap();
        let hex = |h: [u8; 32]| blake3::Hash::from(h).to_hex().to_string();
        let genesis = hex(GENESIS);
        assert_eq!(a[0].prev_hash, genesis);
        assert_eq!(a[1].prev_hash, genesis, "b starts its own chain");
        assert_eq!(a[2].prev_hash, hex(ha[0]));
        assert_eq!(b[0].prev_hash, hex(ha[1]), "b continues after a's records");
        assert_eq!(b[1].prev_hash, hex(ha[2]));
        assert_eq!(
            a.iter().chain(&b).map(|o| o.seq).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4],
            "seq is global"
        );
        assert_eq!(s.worker_head("a").unwrap(), hb[1]);
        assert_eq!(s.worker_head("b").unwrap(), hb[0]);
    }

    #[test]
    fn append_chains_and_scans_in_time_order() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let day = Date::parse("2026-01-05").unwrap().start_ms();
        let mut a = vec![sample(day + 5000), sample(day + 1000)];
        let ha = s.append(&mut a).unwrap();
        let mut b = vec![sample(day + 3000)];
        let hb = s.append(&mut b).unwrap();
        assert_eq!(
            a[1].prev_hash,
            blake3::Hash::from(ha[0]).to_hex().to_string()
        );
        assert_eq!(
            b[0].prev_hash,
            blake3::Hash::from(ha[1]).to_hex().to_string()
        );
        assert_eq!(s.head().unwrap(), (3, hb[0]));
        let got: Vec<i64> = s
            .scan(day, day + 10_000)
            .map(|r| r.unwrap().obs.at_ms)
            .collect();
        assert_eq!(got, vec![day + 1000, day + 3000, day + 5000]);
        assert_eq!(s.days().unwrap(), vec![Date::of_ms(day)]);
        // the stored hash is the hash of the stored bytes
        for r in s.scan(day, day + 10_000) {
            let st = r.unwrap();
            assert_eq!(
                st.hash,
                *blake3::hash(&serde_json::to_vec(&st.obs).unwrap()).as_bytes()
            );
        }
    }

    #[test]
    fn open_waits_for_a_handle_that_is_being_released() {
        // Regression: a test dropped its handle and immediately ran `sit publish`, which
        // failed with "could not acquire lock" while sled's flusher still held it.
        let dir = tempfile::tempdir().unwrap();
        let first = Store::open(dir.path()).unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            drop(first);
        });
        let second = Store::open(dir.path());
        release.join().unwrap();
        assert!(second.is_ok(), "{:?}", second.err());
    }

    #[test]
    fn data_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            s.append(&mut [sample(1000)]).unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.scan(0, 2000).count(), 1);
        assert_eq!(s.head().unwrap().0, 1);
    }

    #[test]
    fn price_book_appends_corrections_and_never_forgets() {
        let dir = tempfile::tempdir().unwrap();
        let e = |inp: &str| PriceEntry {
            effective_from_ms: 0,
            input: sit_core::fixed::Rate::parse(inp).unwrap(),
            output: sit_core::fixed::Rate::parse("1").unwrap(),
            cached_input: sit_core::fixed::Rate::parse(inp).unwrap(),
            request_fee: sit_core::fixed::Pusd::ZERO,
        };
        {
            let s = Store::open(dir.path()).unwrap();
            let src = |_: &str, _: &PriceEntry| Some("page".to_string());
            let one = |p: &str| PriceSchedule(vec![e(p)]);
            assert_eq!(
                s.record_prices([("a", &one("0.5"))], 10, src)
                    .unwrap()
                    .len(),
                1
            );
            assert!(s
                .record_prices([("a", &one("0.5"))], 20, src)
                .unwrap()
                .is_empty());
            // a correction is the next version; a clock behind the book records at the book's time
            let c = s.record_prices([("a", &one("0.6"))], 5, src).unwrap();
            assert_eq!((c[0].version, c[0].recorded_at_ms), (2, 10));
        }
        let s = Store::open(dir.path()).unwrap();
        let book = s.book().unwrap();
        assert_eq!(book.version(), 2);
        assert_eq!(book.schedule("a", 1).0, vec![e("0.5")]);
        assert_eq!(s.prices("a").unwrap().0, vec![e("0.6")]);
    }

    /// A store written before the price book keeps its write-once schedules: they read as the
    /// book's first versions, and new entries follow them.
    #[test]
    fn legacy_write_once_prices_read_as_the_first_book_versions() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let e = PriceEntry {
            effective_from_ms: 1_000,
            input: sit_core::fixed::Rate::parse("2").unwrap(),
            output: sit_core::fixed::Rate::parse("3").unwrap(),
            cached_input: sit_core::fixed::Rate::parse("2").unwrap(),
            request_fee: sit_core::fixed::Pusd::ZERO,
        };
        let mut k = vec![b'p'];
        k.extend_from_slice(b"old");
        k.push(0);
        k.extend_from_slice(&time_key(1_000));
        s.tree.insert(k, serde_json::to_vec(&e).unwrap()).unwrap();
        let b = s.book().unwrap();
        assert_eq!((b.version(), b.entries()[0].recorded_at_ms), (1, 1_000));
        let more = PriceSchedule(vec![PriceEntry {
            effective_from_ms: 5_000,
            ..e.clone()
        }]);
        let n = s
            .record_prices([("old", &more)], 6_000, |_, _| None)
            .unwrap();
        assert_eq!(n[0].version, 2);
        assert_eq!(s.book().unwrap().version(), 2);
        assert_eq!(s.prices("old").unwrap().0.len(), 2);
    }
}
