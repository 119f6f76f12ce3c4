//! The store: sled on disk, append-only and hash-chained. The only module that touches sled.
//!
//! Layout (one sled tree, prefixed keys, so a batch is atomic across all of them):
//! - `c` + hour (8 bytes, big-endian, sign bit flipped) + seq of its first record (8 bytes BE)
//!   -> where a chunk is in the observation log: segment number (u32 BE), offset (u64 BE),
//!   length (u32 BE). A chunk ([`chunk`]) holds the records of one append that fall in that
//!   UTC hour, each framed with its time, seq and blake3 hash before the record bytes
//!   (observation JSON, exactly the bytes hashed). Layout 2, written since 2026-12-07.
//! - `L` -> the log's active segment (u32 BE) and its committed length (u64 BE).
//! - `q` + seq of an append's first record (8 bytes BE) -> its last seq (8 bytes BE) and the
//!   keys of the chunks it wrote (16 bytes each): how records are found by seq.
//! - `o` + time key (8 bytes, big-endian, sign bit flipped) + seq (8 bytes BE) ->
//!   32-byte blake3 of the record bytes + the record bytes: layout 1, one record per key, as
//!   stores made before layout 2 hold them. Read (merged with the chunks in time order),
//!   never written any more; a store upgraded in place has its old records here and its new
//!   ones in chunks, and every seq in chunks is above every seq here.
//! - `h` -> next seq (8 bytes BE) + hash of the last record (32 bytes).
//! - `w` + worker id -> hash of that worker's last record: each worker's records form their
//!   own chain (`prev_hash` is the hash of the same worker's previous record), while `seq` is
//!   global, so a gap in `seq` shows a deleted record whichever worker made it.
//! - `y` + day (4 bytes BE) -> marker: a day that has observations.
//! - `B` + version of its first entry (8 bytes BE) -> up to 256 price book entries, JSON
//!   array (append-only; methodology 1.4.0 costs attempts from the book when a day is
//!   determined). Stores of 2026-11 hold one entry a key: `b` + version -> entry JSON.
//! - `p` + endpoint id + 0x00 + effective-from time key -> price entry JSON: the write-once
//!   schedules of stores made before the price book, read as the book's first entries.
//! - `m` + name -> a service's small durable state, written in the same atomic batch as the
//!   records it describes: a probe network worker's shipping cursor, the collector's tip of
//!   each worker's chain and its dead-letter records (written by the probe network's collector).
//!
//! The observation log is `observations/NNNNNNNN.log` beside sled's files: segments of at most
//! [`SEGMENT_BYTES`], written only at their committed end. An append writes its chunks there
//! and fsyncs them, then commits them with one sled batch (their places, the seq entry, the
//! chain head, `L`) and a sled flush: a crash between the two leaves bytes past `L`'s length,
//! which the next open cuts away (they were never acknowledged).
//!
//! Why: hour-filed chunks make "all observations of a window" one range scan (each hour's
//! records are put in time order as they are read), and writing record bytes once into a log
//! with a few small sled inserts per append, instead of one sled insert per record, is what
//! lets ingest pass 100,000 records/s (sled 0.34 pays per insert: a leaf holds 16 items and is
//! rewritten as it changes; BENCHMARKS.md, "Store ingest"); the chain (each record holds the
//! previous record's hash) lets an auditor prove nothing was dropped, inserted or edited.
//! [`Store::append`] assigns seq and prev_hash, applies one atomic batch, and **flushes before
//! returning**: a returned append is durable (sled 0.34 otherwise only flushes every 500 ms).
//! sled's page cache is bounded ([`CACHE_BYTES`]; sled's default is 1 GiB, which a long-running
//! service fills).

pub mod chunk;

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
    #[error("the store's observation log {path}: {source}")]
    Log {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A stored observation with its record hash.
#[derive(Debug, Clone)]
pub struct Stored {
    pub hash: [u8; 32],
    pub obs: Observation,
}

/// A stored record as it is on disk: its time, seq, hash and bytes (the observation JSON
/// that was hashed), before parsing.
#[derive(Debug, Clone)]
pub struct Raw {
    pub at_ms: i64,
    pub seq: u64,
    pub hash: [u8; 32],
    chunk: bytes::Bytes,
}

impl Raw {
    /// The record's bytes, exactly as hashed.
    pub fn bytes(&self) -> &[u8] {
        &self.chunk
    }

    /// The observation, parsed.
    pub fn parse(self) -> Result<Stored, StoreError> {
        let obs: Observation =
            serde_json::from_slice(self.bytes()).map_err(|e| StoreError::Corrupt {
                key: format!("record seq {}", self.seq),
                why: e.to_string(),
            })?;
        Ok(Stored {
            hash: self.hash,
            obs,
        })
    }
}

fn corrupt_key(k: &[u8], why: String) -> StoreError {
    StoreError::Corrupt {
        key: k.iter().map(|b| format!("{b:02x}")).collect(),
        why,
    }
}

/// A layout-1 record (`o` key: time key + seq; value: hash + bytes).
fn legacy_record(k: &[u8], v: sled::IVec) -> Result<Raw, StoreError> {
    if v.len() < 32 || k.len() != 17 {
        return Err(corrupt_key(k, "record shorter than its hash".into()));
    }
    Ok(Raw {
        at_ms: (u64::from_be_bytes(k[1..9].try_into().unwrap()) ^ (1 << 63)) as i64,
        seq: u64::from_be_bytes(k[9..17].try_into().unwrap()),
        hash: v[..32].try_into().unwrap(),
        chunk: bytes::Bytes::copy_from_slice(&v[32..]),
    })
}

/// The records of one chunk that `keep` chooses. Every frame is checked against its key
/// (its hour, a seq not below the chunk's first) and its record bytes against the frame's
/// blake3: a chunk damaged on disk is named, never read as if whole.
fn chunk_records(
    key: &[u8],
    chunk: &bytes::Bytes,
    keep: impl Fn(&chunk::Frame) -> bool,
) -> Result<Vec<Raw>, StoreError> {
    let mut out = Vec::new();
    let base = chunk.as_ptr() as usize;
    let (hour, first) = match key {
        [b'c', h @ .., _, _, _, _, _, _, _, _] if h.len() == 8 => (
            (u64::from_be_bytes(h.try_into().unwrap()) ^ (1 << 63)) as i64,
            u64::from_be_bytes(key[9..17].try_into().unwrap()),
        ),
        _ => return Err(corrupt_key(key, "not a chunk key".into())),
    };
    for f in chunk::frames(chunk) {
        let f = f.map_err(|why| corrupt_key(key, why))?;
        if chunk::hour(f.at_ms) != hour || f.seq < first {
            return Err(corrupt_key(
                key,
                format!(
                    "record seq {} at {} ms does not belong in this chunk",
                    f.seq, f.at_ms
                ),
            ));
        }
        if blake3::hash(f.bytes).as_bytes() != &f.hash {
            return Err(corrupt_key(
                key,
                format!(
                    "record seq {} does not match its hash (damaged on disk)",
                    f.seq
                ),
            ));
        }
        if keep(&f) {
            let start = f.bytes.as_ptr() as usize - base;
            out.push(Raw {
                at_ms: f.at_ms,
                seq: f.seq,
                hash: f.hash,
                chunk: chunk.slice(start..start + f.bytes.len()),
            });
        }
    }
    Ok(out)
}

/// The chunks of a time range, an hour at a time: each hour's records put in (time, seq)
/// order before they are handed on.
struct HourScan<'a> {
    store: &'a Store,
    range: Option<sled::Iter>,
    from_ms: i64,
    to_ms: i64,
    pending: Option<(sled::IVec, sled::IVec)>,
    ready: std::collections::VecDeque<Raw>,
}

impl Iterator for HourScan<'_> {
    type Item = Result<Raw, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(r) = self.ready.pop_front() {
                return Some(Ok(r));
            }
            let range = self.range.as_mut()?;
            let first = match self.pending.take() {
                Some(kv) => kv,
                None => match range.next()? {
                    Ok(kv) => kv,
                    Err(e) => {
                        self.range = None;
                        return Some(Err(e.into()));
                    }
                },
            };
            let hour = first.0.get(1..9).map(|h| h.to_vec());
            let mut hour_chunks = vec![first];
            loop {
                match range.next() {
                    None => {
                        self.range = None;
                        break;
                    }
                    Some(Err(e)) => {
                        self.range = None;
                        return Some(Err(e.into()));
                    }
                    Some(Ok(kv)) => {
                        if kv.0.get(1..9).map(|h| h.to_vec()) == hour {
                            hour_chunks.push(kv);
                        } else {
                            self.pending = Some(kv);
                            break;
                        }
                    }
                }
            }
            let mut recs = Vec::new();
            let (from, to) = (self.from_ms, self.to_ms);
            for (k, v) in &hour_chunks {
                let got = self
                    .store
                    .read_chunk(k, v)
                    .and_then(|c| chunk_records(k, &c, |f| f.at_ms >= from && f.at_ms < to));
                match got {
                    Ok(r) => recs.extend(r),
                    Err(e) => {
                        self.range = None;
                        return Some(Err(e));
                    }
                }
            }
            recs.sort_by_key(|r| (r.at_ms, r.seq));
            self.ready = recs.into();
        }
    }
}

/// Two (time, seq)-ordered record streams as one.
struct Merge<A: Iterator, B: Iterator> {
    a: std::iter::Peekable<A>,
    b: std::iter::Peekable<B>,
}

impl<A, B> Iterator for Merge<A, B>
where
    A: Iterator<Item = Result<Raw, StoreError>>,
    B: Iterator<Item = Result<Raw, StoreError>>,
{
    type Item = Result<Raw, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        let take_a = match (self.a.peek(), self.b.peek()) {
            (None, None) => return None,
            (Some(_), None) | (Some(Err(_)), _) => true,
            (None, Some(_)) | (_, Some(Err(_))) => false,
            (Some(Ok(x)), Some(Ok(y))) => (x.at_ms, x.seq) <= (y.at_ms, y.seq),
        };
        if take_a {
            self.a.next()
        } else {
            self.b.next()
        }
    }
}

/// The observation log's segment being written: its number, committed length and file.
struct Log {
    dir: PathBuf,
    active: u32,
    end: u64,
    /// [`SEGMENT_BYTES`] (smaller in tests, to see segments begun and dropped).
    segment_bytes: u64,
    file: std::sync::Arc<std::fs::File>,
}

/// Chunks being written at the log's end by one append (or prune): each chunk's bytes go to
/// the page cache as soon as it is complete, with the kernel's writeback started, so the disk
/// works while the rest is serialised; [`LogWriter::sync`] waits for all of it.
struct LogWriter<'a> {
    log: std::sync::MutexGuard<'a, Log>,
    /// The segment written to: the log's active one, or a new one begun by this writer (the
    /// log moves to it only once it is committed, so a failed append leaves the log as it was).
    segment: u32,
    file: std::sync::Arc<std::fs::File>,
    at: u64,
}

impl LogWriter<'_> {
    fn err(&self, source: std::io::Error) -> StoreError {
        StoreError::Log {
            path: segment_path(&self.log.dir, self.segment),
            source,
        }
    }

    /// Write one chunk; returns its place (`c` value).
    fn write(&mut self, chunk: &[u8]) -> Result<[u8; 16], StoreError> {
        use std::os::unix::fs::FileExt;
        self.file
            .write_all_at(chunk, self.at)
            .map_err(|e| self.err(e))?;
        crate::sys::durable::start_writeback(&self.file, self.at, chunk.len() as u64);
        let place = place_bytes(self.segment, self.at, chunk.len());
        self.at += chunk.len() as u64;
        Ok(place)
    }

    /// fsync what was written; returns the log position to commit (`L`).
    fn sync(&self) -> Result<[u8; 12], StoreError> {
        crate::sys::durable::persist(&self.file).map_err(|e| self.err(e))?;
        let mut pos = [0u8; 12];
        pos[0..4].copy_from_slice(&self.segment.to_be_bytes());
        pos[4..12].copy_from_slice(&self.at.to_be_bytes());
        Ok(pos)
    }

    /// The sled batch holding the position has been applied: the log's end (and segment)
    /// move there, and its bytes are never written over.
    fn committed(mut self) {
        self.log.active = self.segment;
        self.log.file = self.file.clone();
        self.log.end = self.at;
    }
}

/// A chunk is closed, and written, once it holds this many bytes (so a chunk read back is
/// small, and the disk starts on a large append before it is all serialised).
pub const CHUNK_BYTES: usize = 256 * 1024;

/// A segment of the observation log is closed once it holds this many bytes: the append
/// that passes it finishes there, the next one begins a new segment.
pub const SEGMENT_BYTES: u64 = 256 * 1024 * 1024;

fn segment_path(dir: &Path, n: u32) -> PathBuf {
    dir.join(format!("{n:08}.log"))
}

/// Where a chunk is in the log: segment, offset, length.
fn chunk_place(v: &[u8]) -> Option<(u32, u64, usize)> {
    (v.len() == 16).then(|| {
        (
            u32::from_be_bytes(v[0..4].try_into().unwrap()),
            u64::from_be_bytes(v[4..12].try_into().unwrap()),
            u32::from_be_bytes(v[12..16].try_into().unwrap()) as usize,
        )
    })
}

fn place_bytes(segment: u32, offset: u64, len: usize) -> [u8; 16] {
    let mut v = [0u8; 16];
    v[0..4].copy_from_slice(&segment.to_be_bytes());
    v[4..12].copy_from_slice(&offset.to_be_bytes());
    v[12..16].copy_from_slice(&(len as u32).to_be_bytes());
    v
}

pub struct Store {
    db: sled::Db,
    tree: sled::Tree,
    path: PathBuf,
    append_lock: Mutex<()>,
    log: Mutex<Log>,
    readers: Mutex<std::collections::BTreeMap<u32, std::sync::Arc<std::fs::File>>>,
    /// The price book as read or last written ([`Store::book`]).
    book_cache: Mutex<Option<std::sync::Arc<PriceBook>>>,
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

/// Layout 2: `c` + hour (sign-flipped BE) + seq of the chunk's first record.
fn chunk_key(hour: i64, first_seq: u64) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = b'c';
    k[1..9].copy_from_slice(&time_key(hour));
    k[9..17].copy_from_slice(&first_seq.to_be_bytes());
    k
}

/// Layout 2: `q` + seq of an append's first record.
fn seq_key(first_seq: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = b'q';
    k[1..].copy_from_slice(&first_seq.to_be_bytes());
    k
}

fn meta_key(name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + name.len());
    k.push(b'm');
    k.extend_from_slice(name.as_bytes());
    k
}

/// sled's page cache, in bytes. sled's default (1 GiB) grew a compressed-clock service by
/// about 5 MB a simulated day (BENCHMARKS.md, "Resident memory"); reads of a day's window
/// are sequential, so a small cache costs little.
pub const CACHE_BYTES: u64 = 32 * 1024 * 1024;

/// The observation log's folder, inside the store's.
pub const LOG_DIR: &str = "observations";

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
                .cache_capacity(CACHE_BYTES)
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
        let log_dir = dir.join(LOG_DIR);
        let (active, end) = match tree.get(b"L")? {
            None => (1, 0),
            Some(v) if v.len() == 12 => (
                u32::from_be_bytes(v[0..4].try_into().unwrap()),
                u64::from_be_bytes(v[4..12].try_into().unwrap()),
            ),
            Some(_) => {
                return Err(StoreError::Corrupt {
                    key: "L".into(),
                    why: "the log position has the wrong length".into(),
                })
            }
        };
        let path = segment_path(&log_dir, active);
        let file = std::sync::Arc::new(
            crate::sys::durable::open_segment(&path, end)
                .map_err(|source| StoreError::Log { path, source })?,
        );
        Ok(Store {
            db,
            tree,
            path: dir.to_path_buf(),
            append_lock: Mutex::new(()),
            log: Mutex::new(Log {
                dir: log_dir,
                active,
                end,
                segment_bytes: SEGMENT_BYTES,
                file: file.clone(),
            }),
            readers: Mutex::new([(active, file.clone())].into()),
            book_cache: Mutex::new(None),
        })
    }

    /// The bytes of the chunk whose place (`c` value) is `v`.
    fn read_chunk(&self, k: &[u8], v: &[u8]) -> Result<bytes::Bytes, StoreError> {
        use std::os::unix::fs::FileExt;
        let (segment, offset, len) = chunk_place(v)
            .ok_or_else(|| corrupt_key(k, "chunk place of the wrong length".into()))?;
        let path = segment_path(&self.path.join(LOG_DIR), segment);
        let file = {
            let mut readers = self.readers.lock().unwrap_or_else(|p| p.into_inner());
            match readers.get(&segment) {
                Some(f) => f.clone(),
                None => {
                    let f = match std::fs::File::open(&path) {
                        Ok(f) => f,
                        // a spool's prune let the segment go after this chunk's place was
                        // read: if the chunk is gone too, it holds nothing any more
                        Err(e)
                            if e.kind() == std::io::ErrorKind::NotFound
                                && self.tree.get(k)?.is_none() =>
                        {
                            return Ok(bytes::Bytes::new());
                        }
                        Err(source) => {
                            return Err(StoreError::Log {
                                path: path.clone(),
                                source,
                            })
                        }
                    };
                    let f = std::sync::Arc::new(f);
                    readers.insert(segment, f.clone());
                    f
                }
            }
        };
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, offset)
            .map_err(|source| StoreError::Log { path, source })?;
        Ok(bytes::Bytes::from(buf))
    }

    /// Begin writing chunks at the log's committed end (a new segment is begun once the
    /// active one has reached its size). Held for the whole append.
    fn log_writer(&self) -> Result<LogWriter<'_>, StoreError> {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        if log.end < log.segment_bytes {
            let (segment, file, at) = (log.active, log.file.clone(), log.end);
            return Ok(LogWriter {
                log,
                segment,
                file,
                at,
            });
        }
        // A segment of this number left by an append that failed is begun again (cut to 0).
        let next = log.active + 1;
        let path = segment_path(&log.dir, next);
        let f = std::sync::Arc::new(
            crate::sys::durable::open_segment(&path, 0)
                .map_err(|source| StoreError::Log { path, source })?,
        );
        self.readers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(next, f.clone());
        Ok(LogWriter {
            log,
            segment: next,
            file: f,
            at: 0,
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
        self.append_inner(batch, None, meta)
    }

    /// [`Store::append_with_meta`] of records whose bytes are mostly known already: each
    /// `templates[i]`, when given, is the exact serialisation of `batch[i]` as it came (its own
    /// `seq` and `prev_hash`, no `origin`), and the stored bytes are made from it by replacing
    /// those two members and adding `origin` (the last member) instead of serialising the
    /// record again. How the probe network's collector stores what workers sent, whose
    /// serialisation it checked while opening the batch, off the store's path.
    pub fn append_templated(
        &self,
        batch: &mut [Observation],
        templates: Vec<Option<&[u8]>>,
        meta: &[(String, Vec<u8>)],
    ) -> Result<Vec<[u8; 32]>, StoreError> {
        assert_eq!(batch.len(), templates.len(), "one template slot per record");
        self.append_inner(batch, Some(templates), meta)
    }

    fn append_inner(
        &self,
        batch: &mut [Observation],
        templates: Option<Vec<Option<&[u8]>>>,
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
        let first_seq = seq;
        let mut b = sled::Batch::default();
        let mut hashes = Vec::with_capacity(batch.len());
        let mut days = std::collections::BTreeSet::new();
        let mut heads: std::collections::BTreeMap<String, [u8; 32]> = Default::default();
        // one chunk per hour the records fall in, in the order appended
        let mut open: std::collections::BTreeMap<i64, ([u8; 17], Vec<u8>)> = Default::default();
        // The records are serialised on every core with a placeholder where `prev_hash` goes
        // (the second member, at an offset known from `seq`), then linked in order: each
        // worker's previous hash written over the placeholder, and the bytes hashed. A record
        // with a template is written from it straight into its chunk instead.
        const PLACEHOLDER: &str =
            "0000000000000000000000000000000000000000000000000000000000000000";
        let (mut texts, spliced): (Vec<Vec<u8>>, Vec<Option<chunk::Template>>) = match templates {
            None => {
                for (i, o) in batch.iter_mut().enumerate() {
                    o.seq = first_seq + i as u64;
                    o.prev_hash = PLACEHOLDER.to_string();
                }
                let texts = crate::sys::lane::par_map(batch, 256, |o| {
                    serde_json::to_vec(o).expect("observation serialises")
                });
                (texts, vec![None; batch.len()])
            }
            Some(t) => batch
                .iter_mut()
                .zip(t)
                .enumerate()
                .map(|(i, (o, t))| {
                    o.seq = first_seq + i as u64;
                    o.prev_hash = PLACEHOLDER.to_string();
                    match t.and_then(chunk::Template::new) {
                        Some(t) => (Vec::new(), Some(t)),
                        None => (serde_json::to_vec(o).expect("observation serialises"), None),
                    }
                })
                .unzip(),
        };
        // a chunk's room, so that filling it does not move it
        let room = texts
            .iter()
            .map(Vec::len)
            .chain(spliced.iter().flatten().map(|t| t.len() + 128))
            .map(|n| n + chunk::HEADER)
            .sum::<usize>()
            .min(CHUNK_BYTES + 4096);
        let mut log = self.log_writer()?;
        let mut written: Vec<([u8; 17], [u8; 16])> = Vec::new();
        for ((o, bytes), template) in batch.iter_mut().zip(texts.iter_mut()).zip(spliced) {
            let wprev = match heads.get(&o.worker) {
                Some(h) => *h,
                None => self.worker_head(&o.worker)?,
            };
            o.prev_hash = blake3::Hash::from(wprev).to_hex().to_string();
            let hour = chunk::hour(o.at_ms);
            let (_, c) = open
                .entry(hour)
                .or_insert_with(|| (chunk_key(hour, seq), Vec::with_capacity(room)));
            let h = match template {
                Some(t) => chunk::push_spliced(c, o.at_ms, seq, t, &o.prev_hash, o.origin.as_ref()),
                None => {
                    let at = format!("{{\"seq\":{},\"prev_hash\":\"", o.seq).len();
                    if bytes.get(at..at + 64) == Some(PLACEHOLDER.as_bytes())
                        && bytes.starts_with(b"{\"seq\":")
                    {
                        bytes[at..at + 64].copy_from_slice(o.prev_hash.as_bytes());
                    } else {
                        *bytes = serde_json::to_vec(o).expect("observation serialises");
                    }
                    let h = *blake3::hash(bytes).as_bytes();
                    chunk::push(c, o.at_ms, seq, &h, bytes);
                    h
                }
            };
            if c.len() >= CHUNK_BYTES {
                let (k, c) = open.remove(&hour).expect("just filled");
                written.push((k, log.write(&c)?));
            }
            days.insert(Date::of_ms(o.at_ms));
            hashes.push(h);
            match heads.get_mut(&o.worker) {
                Some(head) => *head = h,
                None => {
                    heads.insert(o.worker.clone(), h);
                }
            }
            prev = h;
            seq += 1;
        }
        for (k, c) in open.into_values() {
            written.push((k, log.write(&c)?));
        }
        let pos = log.sync()?;
        let mut q = Vec::with_capacity(8 + 16 * written.len());
        q.extend_from_slice(&(seq - 1).to_be_bytes());
        for (k, place) in &written {
            b.insert(&k[..], &place[..]);
            q.extend_from_slice(&k[1..]);
        }
        b.insert(&seq_key(first_seq)[..], q);
        b.insert(&b"L"[..], &pos[..]);
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
        // applied: whether or not the flush succeeds, the log's bytes up to `pos` are now
        // referenced and must never be written over
        log.committed();
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
    /// The chain heads stay: the next record still links to the last one made. A chunk goes
    /// when all its records may: records that share a chunk with one that must stay are kept
    /// until it goes too (nothing is rewritten). Returns how many records were deleted.
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
        let mut emptied = std::collections::BTreeSet::new();
        let hi = chunk_key(chunk::hour(before_ms).saturating_add(1), 0);
        for r in self.tree.range(chunk_key(i64::MIN / 2, 0)..hi) {
            let (k, v) = r?;
            let c = self.read_chunk(&k, &v)?;
            let records = chunk_records(&k, &c, |_| true)?;
            if records
                .iter()
                .all(|f| f.at_ms < before_ms && f.seq < below_seq)
            {
                n += records.len() as u64;
                b.remove(k.clone());
                emptied.insert(k.to_vec());
            }
        }
        // an append's seq entry goes when every chunk it wrote has
        for r in self.tree.range(seq_key(0)..seq_key(below_seq)) {
            let (k, v) = r?;
            let mut all_gone = true;
            for c in v.get(8..).unwrap_or_default().chunks(16) {
                let mut ck = vec![b'c'];
                ck.extend_from_slice(c);
                if !emptied.contains(&ck) && self.tree.contains_key(&ck)? {
                    all_gone = false;
                    break;
                }
            }
            if all_gone {
                b.remove(k);
            }
        }
        if n > 0 {
            self.tree.apply_batch(b)?;
            self.db.flush()?;
            self.drop_unused_segments()?;
        }
        Ok(n)
    }

    /// Delete the log's segments, other than the active one, that no chunk is in any more
    /// (a pruned spool's).
    fn drop_unused_segments(&self) -> Result<(), StoreError> {
        let mut used = std::collections::BTreeSet::new();
        for r in self.tree.scan_prefix([b'c']) {
            let (k, v) = r?;
            let (segment, _, _) = chunk_place(&v)
                .ok_or_else(|| corrupt_key(&k, "chunk place of the wrong length".into()))?;
            used.insert(segment);
        }
        // never the segment sled's committed position names (nor any after it)
        let (dir, active) = {
            let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
            (log.dir.clone(), log.active)
        };
        let committed = match self.tree.get(b"L")? {
            Some(v) if v.len() == 12 => u32::from_be_bytes(v[0..4].try_into().unwrap()),
            _ => 1,
        };
        for n in 1..active.min(committed) {
            let path = segment_path(&dir, n);
            if !used.contains(&n) && path.exists() {
                self.readers
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&n);
                std::fs::remove_file(&path).map_err(|source| StoreError::Log { path, source })?;
            }
        }
        Ok(())
    }

    /// Observations with `from_ms <= at_ms < to_ms`, in time order (then seq).
    pub fn scan(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> impl Iterator<Item = Result<Stored, StoreError>> + '_ {
        self.scan_raw(from_ms, to_ms)
            .map(|r| r.and_then(|raw| raw.parse()))
    }

    /// [`Store::scan`] without parsing: each record's time, seq, hash and stored bytes.
    pub fn scan_raw(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> impl Iterator<Item = Result<Raw, StoreError>> + '_ {
        let legacy = self
            .tree
            .range(obs_key(from_ms, 0)..obs_key(to_ms, 0))
            .map(|r| {
                let (k, v) = r?;
                legacy_record(&k, v)
            });
        let chunks = HourScan {
            store: self,
            range: if to_ms > from_ms {
                Some(self.tree.range(
                    chunk_key(chunk::hour(from_ms), 0)
                        ..chunk_key(chunk::hour(to_ms - 1).saturating_add(1), 0),
                ))
            } else {
                None
            },
            from_ms,
            to_ms,
            pending: None,
            ready: std::collections::VecDeque::new(),
        };
        Merge {
            a: legacy.peekable(),
            b: chunks.peekable(),
        }
    }

    /// The records with `lo <= seq <= hi`, in seq order (an audit bundle's run of the chain).
    /// Chunks are found through the appends' seq entries; records of layout 1 (stores made
    /// before it) are searched only when the run starts below the first chunked record.
    pub fn records_by_seq(&self, lo: u64, hi: u64) -> Result<Vec<Raw>, StoreError> {
        let mut out = Vec::new();
        if hi < lo {
            return Ok(out);
        }
        let first_chunked = match self.tree.scan_prefix([b'q']).next() {
            Some(r) => u64::from_be_bytes(r?.0[1..9].try_into().unwrap()),
            None => u64::MAX,
        };
        if lo < first_chunked {
            for r in self.tree.scan_prefix([b'o']) {
                let (k, v) = r?;
                let raw = legacy_record(&k, v)?;
                if raw.seq >= lo && raw.seq <= hi {
                    out.push(raw);
                }
            }
        }
        // the append holding `lo` starts at or before it
        let start = match self.tree.range(seq_key(0)..=seq_key(lo)).next_back() {
            Some(r) => r?.0,
            None => sled::IVec::from(&seq_key(0)[..]),
        };
        for r in self.tree.range(start..=sled::IVec::from(&seq_key(hi)[..])) {
            let (k, v) = r?;
            if v.len() < 8 || (v.len() - 8) % 16 != 0 {
                return Err(corrupt_key(&k, "seq entry of the wrong length".into()));
            }
            if u64::from_be_bytes(v[..8].try_into().unwrap()) < lo {
                continue;
            }
            for c in v[8..].chunks(16) {
                let mut ck = vec![b'c'];
                ck.extend_from_slice(c);
                // a pruned spool may have let the chunk go
                let Some(place) = self.tree.get(&ck)? else {
                    continue;
                };
                let c = self.read_chunk(&ck, &place)?;
                out.extend(chunk_records(&ck, &c, |f| f.seq >= lo && f.seq <= hi)?);
            }
        }
        out.sort_by_key(|r| r.seq);
        Ok(out)
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
    /// ever removed. One flushed batch for all of them; returns what was appended.
    pub fn record_prices<'a>(
        &self,
        schedules: impl IntoIterator<Item = (&'a str, &'a PriceSchedule)>,
        recorded_at_ms: i64,
        source: impl Fn(&str, &PriceEntry) -> Option<String>,
    ) -> Result<Vec<BookEntry>, StoreError> {
        let _g = self.append_lock.lock().unwrap_or_else(|p| p.into_inner());
        let book = self.book()?;
        let all = Store::changes_to(&book, schedules, recorded_at_ms, source);
        self.push_entries(book, &all)?;
        Ok(all)
    }

    /// What [`Store::record_prices`] would append now, without appending it (a cluster's
    /// publisher sends these through its publication log first; every collector then imports
    /// them with [`Store::import_book`]).
    pub fn price_changes<'a>(
        &self,
        schedules: impl IntoIterator<Item = (&'a str, &'a PriceSchedule)>,
        recorded_at_ms: i64,
        source: impl Fn(&str, &PriceEntry) -> Option<String>,
    ) -> Result<Vec<BookEntry>, StoreError> {
        Ok(Store::changes_to(
            &*self.book()?,
            schedules,
            recorded_at_ms,
            source,
        ))
    }

    fn changes_to<'a>(
        book: &PriceBook,
        schedules: impl IntoIterator<Item = (&'a str, &'a PriceSchedule)>,
        recorded_at_ms: i64,
        source: impl Fn(&str, &PriceEntry) -> Option<String>,
    ) -> Vec<BookEntry> {
        // recorded in time order: a clock behind the book's last entry records at that entry's time
        let at = recorded_at_ms.max(book.entries().last().map_or(i64::MIN, |e| e.recorded_at_ms));
        let mut all: Vec<BookEntry> = Vec::new();
        for (endpoint, schedule) in schedules {
            let mut new = book.changes(endpoint, schedule, at, |p| source(endpoint, p));
            let next = book.version() + 1 + all.len() as u64;
            for (i, e) in new.iter_mut().enumerate() {
                e.version = next + i as u64;
            }
            all.extend(new);
        }
        all
    }

    /// Append entries of another book (an audit bundle's, when a store is rebuilt from it):
    /// versions this book already holds must be identical, the rest must continue it.
    pub fn import_book(&self, entries: &[BookEntry]) -> Result<u64, StoreError> {
        let _g = self.append_lock.lock().unwrap_or_else(|p| p.into_inner());
        let book = self.book()?;
        let mut new = Vec::new();
        for e in entries {
            match book.entries().get(e.version as usize - 1) {
                Some(have) if have == e => continue,
                Some(_) => {
                    return Err(StoreError::Corrupt {
                        key: format!("price book {}", e.version),
                        why: "differs from the entry being imported".into(),
                    })
                }
                None => new.push(e.clone()),
            }
        }
        let v = book.version() + new.len() as u64;
        self.push_entries(book, &new)?;
        Ok(v)
    }

    /// Append `entries` (numbered after `book`'s last) to the book: checked in memory, stored
    /// as chunks of [`BOOK_CHUNK`] entries in one flushed batch, then the cached book updated.
    fn push_entries(
        &self,
        book: std::sync::Arc<PriceBook>,
        entries: &[BookEntry],
    ) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut book = std::sync::Arc::unwrap_or_clone(book);
        for e in entries {
            book.push(e.clone()).map_err(|why| StoreError::Corrupt {
                key: format!("price book {}", e.version),
                why: why.to_string(),
            })?;
        }
        let mut b = sled::Batch::default();
        for part in entries.chunks(BOOK_CHUNK) {
            b.insert(
                &book_chunk_key(part[0].version)[..],
                serde_json::to_vec(part).expect("entries serialise"),
            );
        }
        self.tree.apply_batch(b)?;
        // applied: the cache follows at once (a failed flush must not leave it behind)
        *self.book_cache.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(std::sync::Arc::new(book));
        self.db.flush()?;
        Ok(())
    }

    /// The price book: every entry ever recorded, in version order (read once, then kept in
    /// memory: only this process writes it). A store written before the book existed has
    /// write-once schedules instead; they read as the book's first entries (by effective
    /// time, then endpoint), recorded when they took effect.
    pub fn book(&self) -> Result<std::sync::Arc<PriceBook>, StoreError> {
        if let Some(b) = &*self.book_cache.lock().unwrap_or_else(|p| p.into_inner()) {
            return Ok(b.clone());
        }
        let corrupt = |k: &[u8], why: String| StoreError::Corrupt {
            key: String::from_utf8_lossy(k).into_owned(),
            why,
        };
        let mut entries = Vec::new();
        // one entry a key (stores of 2026-11), then chunks
        for r in self.tree.scan_prefix([b'b']) {
            let (k, v) = r?;
            let e: BookEntry =
                serde_json::from_slice(&v).map_err(|e| corrupt(&k, e.to_string()))?;
            entries.push(e);
        }
        for r in self.tree.scan_prefix([b'B']) {
            let (k, v) = r?;
            let part: Vec<BookEntry> =
                serde_json::from_slice(&v).map_err(|e| corrupt(&k, e.to_string()))?;
            entries.extend(part);
        }
        let mut legacy = Vec::new();
        for r in self.tree.scan_prefix([b'p']) {
            let (k, v) = r?;
            let e: PriceEntry =
                serde_json::from_slice(&v).map_err(|e| corrupt(&k, e.to_string()))?;
            let end = k
                .iter()
                .position(|b| *b == 0)
                .ok_or_else(|| corrupt(&k, "no endpoint end".into()))?;
            let endpoint =
                String::from_utf8(k[1..end].to_vec()).map_err(|e| corrupt(&k, e.to_string()))?;
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
        let book = std::sync::Arc::new(PriceBook::new(all).map_err(|why| StoreError::Corrupt {
            key: "price book".into(),
            why: why.to_string(),
        })?);
        // a book written while this one was read is newer: it stays
        let mut cache = self.book_cache.lock().unwrap_or_else(|p| p.into_inner());
        match &*cache {
            Some(c) if c.version() >= book.version() => Ok(c.clone()),
            _ => {
                *cache = Some(book.clone());
                Ok(book)
            }
        }
    }

    /// An endpoint's price schedule as the book stands now.
    pub fn prices(&self, endpoint: &str) -> Result<PriceSchedule, StoreError> {
        let book = self.book()?;
        Ok(book.schedule(endpoint, book.version()))
    }
}

/// Price book entries per stored chunk (`B` keys).
const BOOK_CHUNK: usize = 256;

/// `B` + version of its first entry (8 bytes BE): a chunk of the price book's entries (JSON
/// array), in version order. Stores of 2026-11 hold one entry a key (`b` + version).
fn book_chunk_key(first_version: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = b'B';
    k[1..].copy_from_slice(&first_version.to_be_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use sit_core::time::DAY_MS;

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
    fn records_stored_from_templates_are_the_records_appended() {
        // what the collector stores from the workers' bytes is what the store would have
        // serialised itself: the same bytes, hashes and chain, over several hours (chunks),
        // workers, with and without an origin, and with a record that has no template
        let day = Date::parse("2026-01-05").unwrap().start_ms();
        let records: Vec<Observation> = (0..40)
            .map(|i| {
                let mut o = sample(day + (i % 5) * 3_600_000 + i);
                o.worker = ["a", "b"][i as usize % 2].into();
                o.answer = format!("answer \"{i}\"\n é");
                o.origin = (i % 3 > 0).then(|| sit_core::observation::Origin {
                    seq: 1000 + i as u64,
                    hash: format!("{i:064x}"),
                });
                o
            })
            .collect();
        // a worker's bytes: its own seq and prev_hash, no origin
        let sent: Vec<Vec<u8>> = records
            .iter()
            .map(|o| {
                let mut w = o.clone();
                w.seq = 7_000 + o.at_ms as u64 % 100;
                w.prev_hash = "f".repeat(64);
                w.origin = None;
                serde_json::to_vec(&w).unwrap()
            })
            .collect();
        let stored = |templated: bool| {
            let dir = tempfile::tempdir().unwrap();
            let s = Store::open(dir.path()).unwrap();
            for part in [0..1, 1..25, 25..40] {
                let mut batch = records[part.clone()].to_vec();
                if templated {
                    let t = sent[part.clone()]
                        .iter()
                        .enumerate()
                        .map(|(i, b)| (part.start + i != 30).then_some(&b[..]))
                        .collect();
                    s.append_templated(&mut batch, t, &[]).unwrap();
                } else {
                    s.append(&mut batch).unwrap();
                }
            }
            let got: Vec<(u64, [u8; 32], Vec<u8>)> = s
                .scan_raw(day, day + DAY_MS)
                .map(|r| {
                    let r = r.unwrap();
                    (r.seq, r.hash, r.bytes().to_vec())
                })
                .collect();
            (got, s.head().unwrap())
        };
        let (plain, head) = stored(false);
        assert_eq!(plain.len(), 40);
        for (_, h, b) in &plain {
            assert_eq!(h, blake3::hash(b).as_bytes());
        }
        assert_eq!(stored(true), (plain, head));
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

    /// Write records the way layout 1 did (one `o` key each), for the upgrade tests.
    fn append_layout_1(s: &Store, batch: &mut [Observation]) {
        let (mut seq, mut prev) = s.head().unwrap();
        for o in batch.iter_mut() {
            let wprev = s.worker_head(&o.worker).unwrap();
            o.seq = seq;
            o.prev_hash = blake3::Hash::from(wprev).to_hex().to_string();
            let bytes = serde_json::to_vec(o).unwrap();
            let h = *blake3::hash(&bytes).as_bytes();
            let mut v = h.to_vec();
            v.extend_from_slice(&bytes);
            s.tree.insert(&obs_key(o.at_ms, seq)[..], v).unwrap();
            let mut k = vec![b'w'];
            k.extend_from_slice(o.worker.as_bytes());
            s.tree.insert(k, &h[..]).unwrap();
            let mut k = vec![b'y'];
            k.extend_from_slice(&(Date::of_ms(o.at_ms).0 as u32).to_be_bytes());
            s.tree.insert(k, &[][..]).unwrap();
            prev = h;
            seq += 1;
        }
        let mut head = seq.to_be_bytes().to_vec();
        head.extend_from_slice(&prev);
        s.tree.insert(&b"h"[..], head).unwrap();
        s.db.flush().unwrap();
    }

    fn hex(h: [u8; 32]) -> String {
        blake3::Hash::from(h).to_hex().to_string()
    }

    #[test]
    fn a_layout_1_store_stays_readable_and_continues_in_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let day = Date::parse("2026-01-05").unwrap().start_ms();
        let hour = sit_core::time::HOUR_MS;
        {
            let s = Store::open(dir.path()).unwrap();
            append_layout_1(&s, &mut [sample(day + 2 * hour), sample(day + 10)]);
        }
        let s = Store::open(dir.path()).unwrap();
        // the new records interleave in time with the old ones
        let mut b = vec![
            sample(day + 5),
            sample(day + 2 * hour + 1),
            sample(day + 3 * hour),
        ];
        s.append(&mut b).unwrap();
        assert_eq!(b[0].seq, 2, "seq continues");
        let old_head = s.scan(day + 10, day + 11).next().unwrap().unwrap();
        assert_eq!(old_head.obs.seq, 1);
        assert_eq!(b[0].prev_hash, hex(old_head.hash), "the chain continues");
        let got: Vec<(i64, u64)> = s
            .scan(day, day + DAY_MS)
            .map(|r| r.map(|x| (x.obs.at_ms - day, x.obs.seq)).unwrap())
            .collect();
        assert_eq!(
            got,
            [
                (5, 2),
                (10, 1),
                (2 * hour, 0),
                (2 * hour + 1, 3),
                (3 * hour, 4)
            ]
        );
        let run = s.records_by_seq(1, 3).unwrap();
        assert_eq!(run.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3]);
        for r in &run {
            assert_eq!(*blake3::hash(r.bytes()).as_bytes(), r.hash);
        }
        assert_eq!(s.records_by_seq(3, 10).unwrap().len(), 2);
        assert_eq!(s.days().unwrap(), vec![Date::of_ms(day)]);
    }

    #[test]
    fn bytes_a_crash_left_past_the_committed_end_are_cut_away() {
        let dir = tempfile::tempdir().unwrap();
        let day = Date::parse("2026-01-05").unwrap().start_ms();
        let seg = dir.path().join(LOG_DIR).join("00000001.log");
        let committed;
        {
            let s = Store::open(dir.path()).unwrap();
            s.append(&mut [sample(day + 1)]).unwrap();
            committed = std::fs::metadata(&seg).unwrap().len();
        }
        // an append that wrote its chunk but died before sled committed it
        {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
            f.write_all(&[0xAB; 300]).unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(std::fs::metadata(&seg).unwrap().len(), committed);
        s.append(&mut [sample(day + 2)]).unwrap();
        let got: Vec<u64> = s.scan(day, day + 10).map(|r| r.unwrap().obs.seq).collect();
        assert_eq!(got, [0, 1]);
        // and a log shorter than what was committed is named, not read as if whole
        drop(s);
        let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
        f.set_len(10).unwrap();
        let e = Store::open(dir.path()).err().expect("refused").to_string();
        assert!(e.contains("00000001.log") && e.contains("committed"), "{e}");
    }

    #[test]
    fn a_record_damaged_on_disk_is_named_not_read() {
        use std::os::unix::fs::FileExt;
        let dir = tempfile::tempdir().unwrap();
        let day = Date::parse("2026-01-05").unwrap().start_ms();
        let s = Store::open(dir.path()).unwrap();
        s.append(&mut [sample(day + 1), sample(day + 2)]).unwrap();
        drop(s);
        // one digit of the second record's cost, in place
        let seg = dir.path().join(LOG_DIR).join("00000001.log");
        let bytes = std::fs::read(&seg).unwrap();
        let at = bytes
            .windows(9)
            .rposition(|w| w == b"\"cost\":\"0")
            .expect("a cost");
        let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
        f.write_all_at(b"9", at as u64 + 8).unwrap();
        let s = Store::open(dir.path()).unwrap();
        let e = s
            .scan(day, day + 10)
            .find_map(|r| r.err())
            .expect("the damage is named")
            .to_string();
        assert!(e.contains("record seq 1 does not match its hash"), "{e}");
        assert!(s.records_by_seq(0, 1).is_err());
    }

    #[test]
    fn prune_deletes_only_what_was_asked_and_lets_empty_segments_go() {
        let dir = tempfile::tempdir().unwrap();
        let day = Date::parse("2026-01-05").unwrap().start_ms();
        let hour = sit_core::time::HOUR_MS;
        let s = Store::open(dir.path()).unwrap();
        s.log.lock().unwrap().segment_bytes = 2_000;
        for i in 0..6 {
            // two hours per append: each append writes two chunks
            s.append(&mut [sample(day + i), sample(day + hour + i)])
                .unwrap();
        }
        let segments = || std::fs::read_dir(dir.path().join(LOG_DIR)).unwrap().count();
        assert!(segments() > 2, "{}", segments());
        // acknowledged below seq 7, kept: anything from the second hour on
        let n = s.prune(day + hour, 7).unwrap();
        assert_eq!(n, 4, "seqs 0, 2, 4, 6");
        let left: Vec<u64> = s
            .scan(day, day + DAY_MS)
            .map(|r| r.unwrap().obs.seq)
            .collect();
        assert_eq!(left, [8, 10, 1, 3, 5, 7, 9, 11]);
        assert_eq!(
            s.records_by_seq(0, 100)
                .unwrap()
                .iter()
                .map(|r| r.seq)
                .collect::<Vec<_>>(),
            [1, 3, 5, 7, 8, 9, 10, 11]
        );
        // everything acknowledged: the first hour's records are gone, the rest kept
        assert_eq!(s.prune(day + 2 * hour, 12).unwrap(), 8);
        assert_eq!(s.scan(day, day + DAY_MS).count(), 0);
        assert_eq!(segments(), 1, "only the active segment stays");
        s.append(&mut [sample(day + 3 * hour)]).unwrap();
        drop(s);
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.scan(day, day + DAY_MS).count(), 1);
        assert_eq!(s.head().unwrap().0, 13);
        // a chunk that holds a record still to keep stays whole (nothing is rewritten)
        s.append(&mut [sample(day + 4 * hour), sample(day + 4 * hour + 1)])
            .unwrap();
        assert_eq!(
            s.prune(day + 5 * hour, 14).unwrap(),
            1,
            "only seq 12's chunk"
        );
        assert_eq!(s.scan(day + 4 * hour, day + 5 * hour).count(), 2);
        assert_eq!(s.prune(day + 5 * hour, 15).unwrap(), 2);
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

    /// A store of 2026-11 holds one book entry a `b` key: read first, continued in chunks.
    #[test]
    fn a_book_of_single_entries_stays_readable_and_continues_in_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let e = |from: i64, inp: &str| PriceEntry {
            effective_from_ms: from,
            input: sit_core::fixed::Rate::parse(inp).unwrap(),
            output: sit_core::fixed::Rate::parse("1").unwrap(),
            cached_input: sit_core::fixed::Rate::parse(inp).unwrap(),
            request_fee: sit_core::fixed::Pusd::ZERO,
        };
        {
            let s = Store::open(dir.path()).unwrap();
            for v in 1..=3u64 {
                let be = BookEntry {
                    version: v,
                    recorded_at_ms: 10,
                    endpoint: "a".into(),
                    price: e(v as i64 * 100, "0.5"),
                    source: None,
                };
                let mut k = vec![b'b'];
                k.extend_from_slice(&v.to_be_bytes());
                s.tree.insert(k, serde_json::to_vec(&be).unwrap()).unwrap();
            }
            s.db.flush().unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.book().unwrap().version(), 3);
        let many = PriceSchedule((0..600).map(|i| e(1_000 + i, "0.7")).collect());
        let added = s.record_prices([("a", &many)], 20, |_, _| None).unwrap();
        assert_eq!((added[0].version, added[599].version), (4, 603));
        drop(s);
        let s = Store::open(dir.path()).unwrap();
        let book = s.book().unwrap();
        assert_eq!(book.version(), 603);
        assert_eq!(s.prices("a").unwrap().0.len(), 603);
        assert_eq!(
            s.tree.scan_prefix([b'B']).count(),
            3,
            "600 entries in chunks of 256"
        );
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
