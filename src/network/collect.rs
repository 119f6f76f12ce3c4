//! The collector's side of the probe network (`sit collect`): read the workers' batches
//! from JetStream in stream order, check each one and store what passes.
//!
//! Checks, in order ([`sit_core::batch`]): the subject names the batch's vantage; the vantage
//! is registered in `workers.toml`; the signature verifies with its key; the records are
//! consecutive links of that vantage's chain; the batch joins the chain stored so far (a
//! repeat is recognised and stored nothing; a gap or a fork is refused). A refused message
//! becomes a dead-letter record (`dead/N` in the store's state, with the reason, the subject,
//! the message id and the payload itself kept beside it), never an observation.
//!
//! Order and idempotence: batches are read in [`OBS_STREAM`] sequence order from the store's
//! cursor ([`CURSOR`], the next sequence to read), and the records of all accepted batches of
//! one fetch, the new chain tips, the dead letters and the cursor are one atomic, flushed
//! store write ([`Store::append_with_meta`]). A crash before it reads the same messages
//! again; nothing is stored twice or skipped. Every collector of a cluster reads the same
//! stream in the same order, so their stores hold the same records with the same numbers.
//!
//! Stored records are linked into the collector's own copy of each worker's chain (a new
//! `seq` and `prev_hash`, so that an audit bundle's chain check runs unchanged) and keep
//! their place in the worker's chain as signed in `origin`.

use super::error::{Error, Result};
use super::{Workers, COMMIT_STREAM, OBS_STREAM};
use crate::store::Store;
use sit_core::batch::{self, Fit, Tip};
use sit_core::observation::{Observation, Origin};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One message as the collector received it.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub subject: String,
    pub payload: bytes::Bytes,
    /// `Nats-Msg-Id`, if any.
    pub msg_id: Option<String>,
    /// `Sit-Spool-Depth`: the worker's spool depth when it sent the batch.
    pub spool_depth: Option<u64>,
    /// Its sequence number in [`OBS_STREAM`], when read from there: batches are then taken
    /// in stream order, and the next one to read is stored with each write ([`CURSOR`]).
    pub stream_seq: Option<u64>,
}

/// The store's state name of the next [`OBS_STREAM`] sequence to read.
pub const CURSOR: &str = "cursor/obs";

/// A refused message, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeadLetter {
    /// The collector's clock when it was refused.
    pub at: String,
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg_id: Option<String>,
    /// blake3 of the payload, hex (the payload is kept under `deadpayload/N`).
    pub payload_blake3: String,
    pub payload_bytes: u64,
    pub reason: String,
}

/// What one call of [`Collector::ingest`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Ingested {
    pub batches: u64,
    /// Observations stored.
    pub stored: u64,
    /// Batches whose records were all stored already (retries, redeliveries).
    pub duplicates: u64,
    /// Records skipped because stored already (overlapping re-batches).
    pub skipped_records: u64,
    pub refused: u64,
    /// Batches that came before earlier records of their chain (a redelivery still on its
    /// way): not stored, to be delivered again ([`Ingested::later`]).
    pub early: u64,
    /// Indices (into the messages given) of the early ones.
    pub later: Vec<usize>,
    /// What was stored: (vantage, first worker seq, last worker seq) per batch.
    pub stored_ranges: Vec<(String, u64, u64)>,
}

/// Per-vantage figures for `/metrics`.
#[derive(Debug, Default, Clone)]
pub struct VantageStats {
    pub stored: u64,
    pub duplicates: u64,
    pub refused: u64,
    /// Batches that waited for earlier records (redelivered later).
    pub early: u64,
    /// Observations stored after their day was determined (not its inputs).
    pub late: u64,
    /// `at_ms` of the latest stored record.
    pub last_at_ms: Option<i64>,
    pub spool_depth: Option<u64>,
}

/// Each batch of a fetch opened ([`Collector::open`]): checked and parsed, with each record's
/// bytes when they are its exact serialisation (the store's template), or why not.
pub type Opened = Vec<std::result::Result<(batch::Checked, Vec<bool>), batch::Refusal>>;

/// The checking and storing half of the collector, free of NATS (so that tests and the
/// ingest benchmark drive it directly).
pub struct Collector {
    store: Arc<Store>,
    /// Read by the consume loop for every fetch; replaced when `workers.toml` changes.
    workers: Arc<std::sync::RwLock<Workers>>,
    /// The end (ms) of the latest day determined: a record stored with an earlier time is late.
    determined_below: Arc<std::sync::atomic::AtomicI64>,
    tips: BTreeMap<String, Tip>,
    next_dead: u64,
    /// (subject, payload blake3) of every dead letter: a message refused once is not
    /// recorded again when read again (a store from before the cursor reads the stream anew).
    dead_seen: std::collections::BTreeSet<(String, String)>,
    cursor: u64,
    clock: Arc<dyn crate::sys::clock::Clock>,
    pub stats: Arc<Mutex<BTreeMap<String, VantageStats>>>,
}

fn tip_name(vantage: &str) -> String {
    format!("tip/{vantage}")
}

fn revealed_name(vantage: &str, day: sit_core::time::Date) -> String {
    format!("revealed/{vantage}/{day}")
}

impl Collector {
    pub fn new(
        store: Arc<Store>,
        workers: Workers,
        clock: Arc<dyn crate::sys::clock::Clock>,
    ) -> Result<Collector> {
        let mut tips = BTreeMap::new();
        for (name, v) in store.metas("tip/")? {
            let t: Tip = serde_json::from_slice(&v)
                .map_err(|e| Error::Failed(format!("stored chain tip {name} is damaged: {e}")))?;
            tips.insert(name["tip/".len()..].to_string(), t);
        }
        let dead = Collector::dead_letters(&store)?;
        let next_dead = dead.len() as u64;
        let dead_seen = dead
            .into_iter()
            .map(|d| (d.subject, d.payload_blake3))
            .collect();
        let cursor = match store.meta(CURSOR)? {
            None => 1,
            Some(b) => std::str::from_utf8(&b)
                .ok()
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| Error::Failed(format!("stored {CURSOR} is damaged")))?,
        };
        Ok(Collector {
            store,
            workers: Arc::new(std::sync::RwLock::new(workers)),
            determined_below: Arc::new(std::sync::atomic::AtomicI64::new(i64::MIN)),
            tips,
            next_dead,
            dead_seen,
            cursor,
            clock,
            stats: Arc::default(),
        })
    }

    /// The stored tip of a vantage's chain.
    pub fn tip(&self, vantage: &str) -> Tip {
        self.tips.get(vantage).cloned().unwrap_or_default()
    }

    /// The next [`OBS_STREAM`] sequence to read (1 for a store that never read the stream).
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// The workers whose batches are accepted (what [`Collector::open`] checks against).
    pub fn workers(&self) -> Workers {
        self.workers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The registered workers as the consume loop reads them (replaced when `workers.toml`
    /// changes: [`reload_workers`]).
    pub fn workers_handle(&self) -> Arc<std::sync::RwLock<Workers>> {
        self.workers.clone()
    }

    /// Where the late records begin: `day` is determined, so a record of it (or earlier)
    /// stored from now on is counted late.
    pub fn determined_handle(&self) -> Arc<std::sync::atomic::AtomicI64> {
        self.determined_below.clone()
    }

    /// The first half of [`Collector::ingest`], which needs no chain state: every batch's
    /// signature, record hashes and records parsed, on every core. The consume loop runs it
    /// for one fetch while the previous fetch is being stored.
    pub fn open(workers: &Workers, msgs: &[Incoming]) -> Opened {
        crate::sys::lane::par_map(msgs, 1, |m| {
            batch::open(&m.payload, |v| workers.key_of(v)).map(|b| {
                // which records' bytes are the store's serialisation already (then stored
                // from them, not serialised again)
                let canonical = b
                    .records
                    .iter()
                    .map(|r| {
                        r.obs.origin.is_none() && r.obs.serialises_to(&m.payload[r.text.clone()])
                    })
                    .collect();
                (b, canonical)
            })
        })
    }

    /// Check and store the batches of one fetch (see the module doc). When this returns Ok,
    /// everything it accepted or refused is durable and the messages may be acknowledged.
    pub fn ingest(&mut self, msgs: &[Incoming]) -> Result<Ingested> {
        let opened = Collector::open(&self.workers(), msgs);
        self.ingest_opened(msgs, opened)
    }

    /// [`Collector::ingest`] of batches already opened ([`Collector::open`] of `msgs`): each
    /// fitted into its vantage's chain in order, then one atomic, flushed store write.
    pub fn ingest_opened(&mut self, msgs: &[Incoming], opened: Opened) -> Result<Ingested> {
        let mut out = Ingested::default();
        let mut tips: BTreeMap<String, Tip> = BTreeMap::new();
        let records: usize = opened
            .iter()
            .map(|o| o.as_ref().map_or(0, |(b, _)| b.records.len()))
            .sum();
        let mut obs: Vec<Observation> = Vec::with_capacity(records);
        let mut templates: Vec<Option<&[u8]>> = Vec::with_capacity(records);
        let mut meta: Vec<(String, Vec<u8>)> = Vec::new();
        let mut stat: BTreeMap<String, VantageStats> = BTreeMap::new();
        let now = self.clock.now_ms();
        let determined_below = self
            .determined_below
            .load(std::sync::atomic::Ordering::Relaxed);
        let first_dead = self.next_dead;
        let mut new_dead = std::collections::BTreeSet::new();
        for (i, (m, opened)) in msgs.iter().zip(opened).enumerate() {
            out.batches += 1;
            let subject_vantage = m.subject.strip_prefix("sit.obs.").unwrap_or("");
            let checked = opened.and_then(|(b, t)| {
                if b.vantage != subject_vantage {
                    return Err(batch::Refusal::Malformed(format!(
                        "batch of `{}` published on {}",
                        b.vantage, m.subject
                    )));
                }
                let tip = tips
                    .get(&b.vantage)
                    .cloned()
                    .unwrap_or_else(|| self.tip(&b.vantage));
                batch::fit(&tip, &b).map(|f| ((b, t), f))
            });
            let s = stat.entry(subject_vantage.to_string()).or_default();
            if m.spool_depth.is_some() {
                s.spool_depth = m.spool_depth;
            }
            match checked {
                Ok((_, Fit::Duplicate)) => {
                    out.duplicates += 1;
                    s.duplicates += 1;
                }
                Ok((_, Fit::Early { .. })) if m.stream_seq.is_none() => {
                    out.early += 1;
                    s.early += 1;
                    out.later.push(i);
                }
                Ok((
                    (b, _),
                    Fit::Early {
                        missing_from,
                        missing_to,
                    },
                )) => {
                    // read in stream order, where a worker's batches are in chain order:
                    // the records before it are not in the stream before it, so never come
                    out.refused += 1;
                    s.refused += 1;
                    let why = format!(
                        "gap in the chain of vantage `{}`: records {missing_from}-{missing_to} are not in {OBS_STREAM} before this batch (stream sequence {})",
                        b.vantage,
                        m.stream_seq.unwrap_or_default()
                    );
                    meta.extend(self.dead_letter(m, why, now, &mut new_dead));
                }
                Ok(((b, t), Fit::Append { skip })) => {
                    out.skipped_records += skip as u64;
                    let last = b.records.last().expect("a batch that fits has records");
                    out.stored_ranges
                        .push((b.vantage.clone(), b.records[skip].seq, last.seq));
                    tips.insert(
                        b.vantage.clone(),
                        Tip {
                            next_seq: last.seq + 1,
                            hash: sit_core::signing::hex(&last.hash),
                            chain: b.chain.clone(),
                        },
                    );
                    for (r, canonical) in b.records.into_iter().zip(t).skip(skip) {
                        let t = canonical.then(|| &m.payload[r.text.clone()]);
                        let mut o = r.obs;
                        o.origin = Some(Origin {
                            seq: r.seq,
                            hash: sit_core::signing::hex(&r.hash),
                        });
                        s.stored += 1;
                        if o.at_ms < determined_below {
                            s.late += 1;
                        }
                        s.last_at_ms = Some(s.last_at_ms.unwrap_or(i64::MIN).max(o.at_ms));
                        obs.push(o);
                        templates.push(t);
                    }
                }
                Err(why) => {
                    out.refused += 1;
                    s.refused += 1;
                    meta.extend(self.dead_letter(m, why.to_string(), now, &mut new_dead));
                }
            }
        }
        for (v, t) in &tips {
            meta.push((tip_name(v), serde_json::to_vec(t).expect("json")));
        }
        let cursor = msgs
            .iter()
            .filter_map(|m| m.stream_seq)
            .max()
            .map(|s| s + 1);
        if let Some(c) = cursor {
            meta.push((CURSOR.to_string(), c.to_string().into_bytes()));
        }
        out.stored = obs.len() as u64;
        if let Err(e) = self.store.append_templated(&mut obs, templates, &meta) {
            // nothing of this fetch is stored: the dead-letter numbers are free again
            self.next_dead = first_dead;
            return Err(e.into());
        }
        self.tips.extend(tips);
        self.dead_seen.extend(new_dead);
        if let Some(c) = cursor {
            self.cursor = self.cursor.max(c);
        }
        let mut all = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        for (v, s) in stat {
            let a = all.entry(v.clone()).or_default();
            a.stored += s.stored;
            a.duplicates += s.duplicates;
            a.refused += s.refused;
            a.early += s.early;
            a.late += s.late;
            if s.late > 0 {
                tracing::warn!(
                    "sit collect: {} records of vantage `{v}` stored after their day was determined: not its inputs (counted in sit_collect_late_total; a recomputation before the cutoff takes them in)",
                    s.late
                );
            }
            if s.last_at_ms.is_some() {
                a.last_at_ms = a.last_at_ms.max(s.last_at_ms);
            }
            if s.spool_depth.is_some() {
                a.spool_depth = s.spool_depth;
            }
        }
        Ok(out)
    }

    /// The dead-letter record of a refused message and its payload, as state entries to write
    /// (`dead/N`, `deadpayload/N`; N is taken here); none when the same message (subject and
    /// payload) is recorded already.
    fn dead_letter(
        &mut self,
        m: &Incoming,
        reason: String,
        now_ms: i64,
        new: &mut std::collections::BTreeSet<(String, String)>,
    ) -> Vec<(String, Vec<u8>)> {
        let payload_blake3 = blake3::hash(&m.payload).to_hex().to_string();
        let key = (m.subject.clone(), payload_blake3.clone());
        if self.dead_seen.contains(&key) || !new.insert(key) {
            return vec![];
        }
        let n = self.next_dead;
        self.next_dead += 1;
        let d = DeadLetter {
            at: sit_core::time::format_utc_ms(now_ms),
            subject: m.subject.clone(),
            msg_id: m.msg_id.clone(),
            payload_blake3,
            payload_bytes: m.payload.len() as u64,
            reason,
        };
        tracing::warn!(
            "sit collect: refused a message on {}: {}",
            m.subject,
            d.reason
        );
        vec![
            (
                format!("dead/{n:020}"),
                serde_json::to_vec(&d).expect("json"),
            ),
            (format!("deadpayload/{n:020}"), m.payload.to_vec()),
        ]
    }

    /// Whether every record `vantage` made up to its reveal of `day` is stored (false before
    /// the reveal arrives).
    pub fn vantage_complete(&self, vantage: &str, day: sit_core::time::Date) -> Result<bool> {
        let Some(b) = self.store.meta(&revealed_name(vantage, day))? else {
            return Ok(false);
        };
        let next = u64::from_be_bytes(b[..8].try_into().map_err(|_| {
            Error::Failed(format!(
                "stored reveal marker of {vantage} {day} is damaged"
            ))
        })?);
        Ok(self.tip(vantage).next_seq >= next)
    }

    /// The registered vantages.
    pub fn vantages(&self) -> Vec<String> {
        self.workers().0.keys().cloned().collect()
    }

    /// The dead-letter records, in order.
    pub fn dead_letters(store: &Store) -> Result<Vec<DeadLetter>> {
        store
            .metas("dead/")?
            .into_iter()
            .map(|(k, v)| {
                serde_json::from_slice(&v)
                    .map_err(|e| Error::Failed(format!("dead letter {k} is damaged: {e}")))
            })
            .collect()
    }

    /// Check and file one schedule document (a vantage's commitment or reveal) in
    /// `DATA/vantages/VANTAGE/`. Refused documents become dead letters like batches.
    pub fn file_schedule_doc(&mut self, data: &std::path::Path, m: &Incoming) -> Result<bool> {
        let subject_vantage = m.subject.strip_prefix("sit.commit.").unwrap_or("");
        let checked = (|| {
            let key = self.workers().key_of(subject_vantage).ok_or_else(|| {
                format!("unknown worker: vantage `{subject_vantage}` is not in workers.toml")
            })?;
            let v = sit_core::signing::verify_value(&m.payload, &key)
                .map_err(|e| {
                    format!("signature of vantage `{subject_vantage}` does not verify: {e}")
                })?
                .value;
            if v.get("vantage").and_then(|x| x.as_str()) != Some(subject_vantage) {
                return Err(format!("a document of another vantage on {}", m.subject));
            }
            let doc = v.get("doc").cloned().unwrap_or_default();
            let archive = crate::archive::vantages::archive(data, subject_vantage);
            match v.get("kind").and_then(|k| k.as_str()) {
                Some("sit-commitment") => {
                    let c: sit_core::commit::Commitment =
                        serde_json::from_value(doc).map_err(|e| format!("commitment: {e}"))?;
                    archive.put_commitment(&c).map_err(|e| e.to_string())
                }
                Some("sit-reveal") => {
                    let r: sit_core::commit::Reveal =
                        serde_json::from_value(doc).map_err(|e| format!("reveal: {e}"))?;
                    let next = v
                        .get("chain_next_seq")
                        .and_then(|n| n.as_u64())
                        .ok_or("a reveal without chain_next_seq")?;
                    archive.put_reveal(&r).map_err(|e| e.to_string())?;
                    self.store
                        .append_with_meta(
                            &mut [],
                            &[(
                                revealed_name(subject_vantage, r.date),
                                next.to_be_bytes().to_vec(),
                            )],
                        )
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                }
                other => Err(format!("unknown document kind {other:?}")),
            }
        })();
        match checked {
            Ok(()) => Ok(true),
            Err(reason) => {
                let first_dead = self.next_dead;
                let mut new = std::collections::BTreeSet::new();
                let entries = self.dead_letter(m, reason, self.clock.now_ms(), &mut new);
                if let Err(e) = self.store.append_with_meta(&mut [], &entries) {
                    self.next_dead = first_dead;
                    return Err(e.into());
                }
                self.dead_seen.extend(new);
                Ok(false)
            }
        }
    }
}

/// The durable consumers' names (of a collector without `--name`; a named collector of a
/// cluster has its own pair, [`consumer_names`]). Batches are read without a durable
/// consumer (from the store's [`CURSOR`]); the first name is that of the durable consumer
/// collectors used before, removed at start.
pub const OBS_CONSUMER: &str = "sit-collector";
pub const COMMIT_CONSUMER: &str = "sit-collector-schedules";

/// The durable consumers of a collector: its own pair when it is one of a cluster's (every
/// collector reads every batch), the one pair otherwise.
pub fn consumer_names(name: Option<&str>) -> (String, String) {
    match name {
        Some(n) => (
            format!("sit-collector-{n}"),
            format!("sit-collector-{n}-schedules"),
        ),
        None => (OBS_CONSUMER.to_string(), COMMIT_CONSUMER.to_string()),
    }
}
/// How long JetStream waits for an ack before redelivering (a collector killed mid-fetch).
pub const ACK_WAIT: Duration = Duration::from_secs(10);
/// At most this many batches per store write.
pub const MAX_FETCH: usize = 256;

async fn consumer(
    js: &async_nats::jetstream::Context,
    stream: &str,
    name: &str,
) -> Result<async_nats::jetstream::consumer::PullConsumer> {
    use async_nats::jetstream::consumer::{pull, AckPolicy};
    let s = js
        .get_stream(stream)
        .await
        .map_err(|e| Error::Failed(format!("JetStream stream {stream}: {e}")))?;
    s.get_or_create_consumer(
        name,
        pull::Config {
            durable_name: Some(name.to_string()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: ACK_WAIT,
            max_ack_pending: 100_000,
            ..Default::default()
        },
    )
    .await
    .map_err(|e| Error::Failed(format!("JetStream consumer {name}: {e}")))
}

fn incoming(m: &async_nats::jetstream::Message, stream_seq: Option<u64>) -> Incoming {
    let h = m.headers.as_ref();
    let get = |k: &str| h.and_then(|h| h.get(k)).map(|v| v.as_str().to_string());
    Incoming {
        subject: m.subject.to_string(),
        payload: m.payload.clone(),
        msg_id: get("Nats-Msg-Id"),
        spool_depth: get("Sit-Spool-Depth").and_then(|v| v.parse().ok()),
        stream_seq,
    }
}

/// A reader of [`OBS_STREAM`] from sequence `next` on: an ephemeral consumer without acks
/// (the collector's place in the stream is its store's [`CURSOR`], written with what it
/// stored, not a server's ack floor). Messages the stream no longer holds (older than
/// [`super::RETAIN_DAYS`]) are skipped with a warning, `next` moved past them.
async fn reader(
    js: &async_nats::jetstream::Context,
    next: &mut u64,
) -> Result<async_nats::jetstream::consumer::pull::Stream> {
    use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
    let failed = |e: &dyn std::fmt::Display| Error::Failed(format!("reading {OBS_STREAM}: {e}"));
    let mut s = js.get_stream(OBS_STREAM).await.map_err(|e| failed(&e))?;
    let first = s.info().await.map_err(|e| failed(&e))?.state.first_sequence;
    if first > *next {
        if *next > 1 {
            tracing::warn!(
                "sit collect: {OBS_STREAM} no longer holds sequences {}-{} (older than {} days); reading from {first}",
                *next,
                first - 1,
                super::RETAIN_DAYS
            );
        }
        *next = first;
    }
    s.create_consumer(pull::Config {
        deliver_policy: DeliverPolicy::ByStartSequence {
            start_sequence: (*next).max(1),
        },
        ack_policy: AckPolicy::None,
        inactive_threshold: Duration::from_secs(60),
        ..Default::default()
    })
    .await
    .map_err(|e| failed(&e))?
    .stream()
    // a bounded amount in flight
    .max_messages_per_batch(64)
    .max_bytes_per_batch(16 << 20)
    .heartbeat(Duration::from_secs(2))
    .messages()
    .await
    .map_err(|e| failed(&e))
}

/// Read, check, store: until `stop` turns true. `on_stored` is told after each flush (the
/// kill tests print from it).
///
/// Batches are taken in [`OBS_STREAM`] order, from the store's cursor on, whatever the
/// fetches (the stream holds each worker's batches in chain order: one in flight at a time).
/// So every collector of a cluster stores the same records in the same order and its store
/// numbers them alike: the same record bytes, the same Merkle roots, bundles that verify
/// against whichever collector published. A restart reads on from the cursor; a batch read
/// but not stored before a crash is read again.
pub async fn consume(
    js: async_nats::jetstream::Context,
    data: std::path::PathBuf,
    collector: Arc<Mutex<Collector>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    on_stored: Arc<dyn Fn(&Ingested) + Send + Sync>,
    names: (String, String),
    replicas: usize,
) -> Result<()> {
    let (obs_name, commit_name) = names;
    use futures_util::StreamExt;
    let mut backoff = Duration::from_millis(100);
    let mut consumers = None;
    let mut last_docs = std::time::Instant::now() - Duration::from_secs(2);
    let (workers, mut next) = {
        let c = collector.lock().unwrap_or_else(|p| p.into_inner());
        (c.workers_handle(), c.cursor())
    };
    // whether the reader was made since the last message: a gap then is the stream's own
    let mut fresh = false;
    let mut legacy_removed = false;
    let mut storing: Option<Storing> = None;
    while !*stop.borrow() {
        if consumers.is_none() {
            let made = async {
                super::ensure_streams(&js, replicas).await?;
                if !legacy_removed {
                    // the durable consumer collectors read with before the cursor
                    if let Ok(s) = js.get_stream(OBS_STREAM).await {
                        let _ = s.delete_consumer(&obs_name).await;
                    }
                }
                let obs = reader(&js, &mut next).await?;
                Ok::<_, Error>((obs, consumer(&js, COMMIT_STREAM, &commit_name).await?))
            };
            match made.await {
                Ok(c) => {
                    consumers = Some(c);
                    fresh = true;
                    legacy_removed = true;
                }
                Err(e) => {
                    tracing::warn!("sit collect: {e}; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.changed() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            }
        }
        let (obs_c, commit_c) = consumers.as_mut().expect("made above");
        // schedule documents (few) about once a second, then a fetch of batches
        let docs_due = last_docs.elapsed() >= Duration::from_secs(1);
        let busy = storing.is_some();
        let fetched = async {
            let mut docs = Vec::new();
            if docs_due {
                let mut b = commit_c
                    .fetch()
                    .max_messages(64)
                    .expires(Duration::from_millis(50))
                    .messages()
                    .await
                    .map_err(|e| e.to_string())?;
                while let Some(m) = b.next().await {
                    docs.push(m.map_err(|e| e.to_string())?);
                }
            }
            // the first batch as soon as it comes (or none within 250 ms), then whatever else
            // is already here: low latency when quiet, large store writes under load
            // (with a fetch being stored, nothing is waited for)
            let mut msgs = Vec::new();
            let wait = if busy {
                Duration::ZERO
            } else {
                Duration::from_millis(250)
            };
            let first = tokio::select! {
                biased;
                m = obs_c.next() => m,
                _ = tokio::time::sleep(wait) => None,
            };
            if let Some(m) = first {
                msgs.push(m.map_err(|e| e.to_string())?);
                while msgs.len() < MAX_FETCH {
                    use futures_util::FutureExt;
                    match obs_c.next().now_or_never() {
                        Some(Some(m)) => msgs.push(m.map_err(|e| e.to_string())?),
                        _ => break,
                    }
                }
            }
            Ok::<_, String>((docs, msgs))
        };
        let (docs, msgs) = match fetched.await {
            Ok(x) => {
                backoff = Duration::from_millis(100);
                if docs_due {
                    last_docs = std::time::Instant::now();
                }
                x
            }
            Err(e) => {
                tracing::warn!("sit collect: fetching from JetStream failed ({e}); retrying");
                consumers = None;
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        if !docs.is_empty() {
            let inc: Vec<Incoming> = docs.iter().map(|m| incoming(m, None)).collect();
            let (c, d) = (collector.clone(), data.clone());
            tokio::task::spawn_blocking(move || {
                let mut c = c.lock().unwrap_or_else(|p| p.into_inner());
                inc.iter()
                    .try_for_each(|m| c.file_schedule_doc(&d, m).map(|_| ()))
            })
            .await
            .map_err(|e| Error::Failed(format!("filing schedule documents: {e}")))??;
            for m in &docs {
                if let Err(e) = m.ack().await {
                    tracing::warn!("sit collect: ack failed ({e}); the document comes again");
                }
            }
        }
        // in stream order from `next`, or the reader is made again from `next`
        let mut inc: Vec<Incoming> = Vec::with_capacity(msgs.len());
        for m in &msgs {
            let seq = match m.info() {
                Ok(i) => i.stream_sequence,
                Err(e) => {
                    tracing::warn!("sit collect: a message without its stream sequence ({e}); reading again from {next}");
                    consumers = None;
                    break;
                }
            };
            if seq < next {
                continue;
            }
            if seq > next && !fresh {
                tracing::warn!(
                    "sit collect: read {OBS_STREAM} sequence {seq} where {next} was next; reading again from {next}"
                );
                consumers = None;
                break;
            }
            if seq > next {
                tracing::warn!(
                    "sit collect: {OBS_STREAM} holds no sequences {next}-{} (deleted); reading on from {seq}",
                    seq - 1
                );
            }
            fresh = false;
            next = seq + 1;
            inc.push(incoming(m, Some(seq)));
        }
        if inc.is_empty() {
            if let Some(prev) = storing.take() {
                finish(prev, &on_stored).await?;
            }
            continue;
        }
        // Two stages: this fetch is opened (signatures, hashes, parsing) while the previous
        // one is stored.
        let w = workers.read().unwrap_or_else(|p| p.into_inner()).clone();
        let opening = tokio::task::spawn_blocking(move || (Collector::open(&w, &inc), inc));
        if let Some(prev) = storing.take() {
            finish(prev, &on_stored).await?;
        }
        let (opened, inc) = opening
            .await
            .map_err(|e| Error::Failed(format!("checking batches: {e}")))?;
        let c = collector.clone();
        storing = Some(tokio::task::spawn_blocking(move || {
            c.lock()
                .unwrap_or_else(|p| p.into_inner())
                .ingest_opened(&inc, opened)
        }));
    }
    if let Some(prev) = storing.take() {
        finish(prev, &on_stored).await?;
    }
    Ok(())
}

/// A fetch being stored.
type Storing = tokio::task::JoinHandle<Result<Ingested>>;

/// Wait for a fetch's store write, then tell `on_stored`.
async fn finish(store: Storing, on_stored: &Arc<dyn Fn(&Ingested) + Send + Sync>) -> Result<()> {
    let r = store
        .await
        .map_err(|e| Error::Failed(format!("storing batches: {e}")))??;
    on_stored(&r);
    Ok(())
}

/// Options of `sit collect`.
#[derive(Debug, Clone)]
pub struct CollectOptions {
    pub nats: String,
    pub workers: std::path::PathBuf,
    /// Serve `/healthz` and `/metrics` (per vantage) here.
    pub serve: Option<std::net::SocketAddr>,
    pub limits: crate::server::listen::Limits,
    /// Print `stored N` on stdout after each flush (kill tests).
    pub print_acks: bool,
    /// Publish days (determine, sign, archive, bundle) with this signing key; without it the
    /// collector only collects.
    pub key: Option<std::path::PathBuf>,
    /// The endpoints' price schedules (recorded in the price book, read before every
    /// determination).
    pub providers: std::path::PathBuf,
    /// Compressed clock, as the workers': the simulated day it starts at, real ms per hour.
    pub start: Option<sit_core::time::Date>,
    pub hour_ms: Option<u64>,
    /// Stop after publishing the day before this one.
    pub until: Option<sit_core::time::Date>,
    /// One of a cluster's collectors ([`super::cluster`]); None: the only one.
    pub cluster: Option<super::cluster::ClusterOptions>,
}

/// How long after a day's end (service clock) the collector waits for every vantage's reveal
/// (and the records it covers) before it determines the day with what it has...
pub const REVEAL_WAIT_MS: i64 = 4 * sit_core::time::HOUR_MS;
/// ...and at least this long in real time: links are slow in real seconds whatever the clock
/// (a compressed test clock makes four hours a fraction of a second).
pub const REVEAL_WAIT_REAL: Duration = Duration::from_secs(30);

/// What a `sit collect` did before it stopped.
#[derive(Debug, Default, Clone)]
pub struct CollectReport {
    pub ingested: Ingested,
    /// One line per published record.
    pub published: Vec<String>,
}

/// Publish each day once it has ended and every vantage's records up to its reveal are
/// stored (or [`REVEAL_WAIT_MS`] has passed: the day is determined with what arrived, and
/// the log names the vantages that were incomplete). Returns at `until`.
///
/// In a cluster (`cluster`), the collector holding the publisher lease publishes; the others
/// wait for the day's records to arrive through the publication log and write the day's
/// bundle from their own store. A publication that fails (the lease lost, the log fenced it,
/// a server changing over) is decided again from the log, by whichever collector holds the
/// lease then.
async fn publish_days(
    publisher: crate::publisher::day::DayPublisher,
    collector: Arc<Mutex<Collector>>,
    determined: Arc<std::sync::atomic::AtomicI64>,
    clock: Arc<dyn crate::sys::clock::Clock>,
    first: sit_core::time::Date,
    until: Option<sit_core::time::Date>,
    cluster: Option<Arc<super::cluster::Replication>>,
) -> Result<Vec<String>> {
    use sit_core::time::HOUR_MS;
    let lag = sit_core::versions::Registry::embedded()
        .current_methodology()
        .settlement_lag_minutes
        .unwrap_or(0) as i64
        * 60_000;
    let mut day = first;
    let mut lines = Vec::new();
    let mut restating = Vec::new();
    // bundles of days determined without a vantage, written when it is complete
    let mut bundling: Vec<AbortOnDrop> = Vec::new();
    let blocking =
        |what: &'static str| move |e: tokio::task::JoinError| Error::Failed(format!("{what}: {e}"));
    loop {
        if until.is_some_and(|u| day >= u) {
            break;
        }
        if let Some(c) = &cluster {
            if let Err(e) = c.catch_up().await {
                tracing::warn!("sit collect: {e}; tried again");
            }
        }
        let p = publisher.clone();
        if tokio::task::spawn_blocking(move || p.finished(day))
            .await
            .map_err(blocking("publishing"))??
        {
            // published before a restart (or by another collector): its recomputation before
            // the cutoff is still due here
            determined.fetch_max(day.succ().start_ms(), std::sync::atomic::Ordering::Relaxed);
            restate_later(&mut restating, &publisher, day);
            day = day.succ();
            continue;
        }
        tokio::time::sleep(clock.real_until(day.succ().start_ms() + lag)).await;
        let deadline = day.succ().start_ms() + REVEAL_WAIT_MS;
        let real_deadline = std::time::Instant::now() + REVEAL_WAIT_REAL;
        let incomplete = loop {
            let pending: Vec<String> = {
                let c = collector.lock().unwrap_or_else(|p| p.into_inner());
                let mut p = Vec::new();
                for v in c.vantages() {
                    if !c.vantage_complete(&v, day)? {
                        p.push(v);
                    }
                }
                p
            };
            if pending.is_empty() {
                break pending;
            }
            if clock.now_ms() >= deadline && std::time::Instant::now() >= real_deadline {
                tracing::warn!(
                    "sit collect: {day}: determined without the complete records of {} (no reveal, or records missing, {} h after the day); its bundle is written when they are in",
                    pending.join(", "),
                    REVEAL_WAIT_MS / HOUR_MS
                );
                break pending;
            }
            let step = clock.real_until(clock.now_ms() + HOUR_MS / 60);
            tokio::time::sleep(step.max(Duration::from_millis(20))).await;
        };
        let bundle_now = incomplete.is_empty();
        let mut failing = false;
        loop {
            if let Some(c) = &cluster {
                if let Err(e) = c.catch_up().await {
                    tracing::warn!("sit collect: {e}; tried again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                if c.term().is_none() {
                    // a standby: the day comes through the log; its bundle is written here
                    let p = publisher.clone();
                    let done = tokio::task::spawn_blocking(move || {
                        if p.published(day)? {
                            if bundle_now {
                                p.write_bundle(day)?;
                            }
                            return Ok::<_, crate::publisher::day::DayError>(true);
                        }
                        Ok(false)
                    })
                    .await
                    .map_err(blocking("writing the bundle"))?;
                    match done {
                        Ok(true) => break,
                        Ok(false) => {}
                        // a standby never stops over one day's bundle: said, tried again
                        Err(e) => {
                            if !failing {
                                tracing::warn!("sit collect: {day}: {e}; tried again");
                            }
                            failing = true;
                        }
                    }
                    tokio::time::sleep(super::cluster::APPLY_EVERY).await;
                    continue;
                }
            }
            let p = publisher.clone();
            match tokio::task::spawn_blocking(move || p.publish_day_bundling(day, None, bundle_now))
                .await
                .map_err(blocking("publishing"))?
            {
                Ok(published) => {
                    lines.extend(published);
                    break;
                }
                Err(e) if cluster.is_some() => {
                    if !failing {
                        tracing::warn!("sit collect: publishing {day}: {e}; decided again from the publication log");
                    }
                    failing = true;
                    tokio::time::sleep(super::cluster::APPLY_EVERY).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        determined.fetch_max(day.succ().start_ms(), std::sync::atomic::Ordering::Relaxed);
        bundling.retain(|t| !t.0.is_finished());
        if !bundle_now {
            bundling.push(AbortOnDrop(tokio::spawn(bundle_when_complete(
                publisher.clone(),
                collector.clone(),
                clock.clone(),
                day,
                incomplete,
            ))));
        }
        restate_later(&mut restating, &publisher, day);
        day = day.succ();
    }
    // --until: the days asked for are published; so are their bundles (a deferred one is
    // written when its vantages are complete, or gives up waiting by itself)
    for mut t in bundling {
        let _ = (&mut t.0).await;
    }
    Ok(lines)
}

/// Write the bundle of a day determined without the complete records of `incomplete` once
/// each of them has its reveal and the records it covers stored (the bundle then holds the
/// vantage's schedule, so `sit audit verify` checks its records against it; its late
/// records are in the bundle, and not the inputs of the records that read less), or, if that
/// never happens, just before the day's restatement cutoff (and at least twice
/// [`REVEAL_WAIT_REAL`] later), with what arrived (the log says so, and verify names the
/// vantage).
async fn bundle_when_complete(
    publisher: crate::publisher::day::DayPublisher,
    collector: Arc<Mutex<Collector>>,
    clock: Arc<dyn crate::sys::clock::Clock>,
    day: sit_core::time::Date,
    incomplete: Vec<String>,
) {
    let m = sit_core::index::Methodology::default();
    let last = crate::publisher::policy::cutoff_ms(&m, day)
        - crate::publisher::day::RESTATE_BEFORE_CUTOFF_MS;
    // and at least this long in real time (a compressed test clock passes the cutoff in
    // seconds)
    let real_last = std::time::Instant::now() + 2 * REVEAL_WAIT_REAL;
    loop {
        let missing: Vec<String> = {
            let c = collector.lock().unwrap_or_else(|p| p.into_inner());
            incomplete
                .iter()
                .filter(|v| !c.vantage_complete(v, day).unwrap_or(false))
                .cloned()
                .collect()
        };
        if missing.is_empty() || (clock.now_ms() >= last && std::time::Instant::now() >= real_last)
        {
            if !missing.is_empty() {
                tracing::warn!(
                    "sit collect: {day}: the bundle is written without the complete records of {} (the restatement cutoff is near)",
                    missing.join(", ")
                );
            }
            let p = publisher.clone();
            match tokio::task::spawn_blocking(move || p.write_bundle(day)).await {
                Ok(Ok(())) => tracing::info!(
                    "sit collect: {day}: bundle written, with the records that came late"
                ),
                Ok(Err(e)) => tracing::error!(
                    "sit collect: {day}: writing the bundle: {e}; written at the next start"
                ),
                Err(e) => tracing::error!("sit collect: {day}: writing the bundle: {e}"),
            }
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// How often `workers.toml` is looked at for changes.
pub const WORKERS_RELOAD: Duration = Duration::from_secs(1);

/// Register workers without a restart: `workers.toml` is read again whenever it changes
/// (its size or modification time), and batches are checked against the new set from the
/// next fetch on. A file that no longer loads leaves the set as it was, with the error in
/// the log (a bad edit must not stop collection). In a cluster, register a worker in every
/// collector's file before the worker starts: a batch of a vantage a collector does not
/// know yet is refused by that collector alone, and the stores would differ.
async fn reload_workers(
    path: std::path::PathBuf,
    registered: Arc<std::sync::RwLock<Workers>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let stamp = |p: &std::path::Path| {
        std::fs::metadata(p)
            .ok()
            .map(|m| (m.len(), m.modified().ok()))
    };
    let mut seen = stamp(&path);
    while !*stop.borrow() {
        tokio::select! {
            _ = tokio::time::sleep(WORKERS_RELOAD) => {}
            _ = stop.changed() => break,
        }
        let now = stamp(&path);
        if now == seen {
            continue;
        }
        seen = now;
        match Workers::load(&path) {
            Ok(w) => {
                let before = registered.read().unwrap_or_else(|p| p.into_inner()).clone();
                let names = |w: &Workers| w.0.keys().cloned().collect::<Vec<_>>().join(", ");
                tracing::info!(
                    "sit collect: {} changed: {} workers registered ({}; were {})",
                    path.display(),
                    w.0.len(),
                    names(&w),
                    names(&before)
                );
                *registered.write().unwrap_or_else(|p| p.into_inner()) = w;
            }
            Err(e) => tracing::error!("sit collect: {e}; the workers registered stay as they were"),
        }
    }
}

/// Recompute `day` just before its restatement cutoff (in the background; the last two days'
/// passes are kept, older ones are past their cutoff).
fn restate_later(
    restating: &mut Vec<AbortOnDrop>,
    publisher: &crate::publisher::day::DayPublisher,
    day: sit_core::time::Date,
) {
    restating.push(AbortOnDrop(tokio::spawn(
        publisher.clone().restate_before_cutoff(day),
    )));
    if restating.len() > 2 {
        restating.remove(0);
    }
}

/// A task aborted when its handle is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The collector's `/healthz` and `/metrics`.
struct CollectStatus {
    stats: Arc<Mutex<BTreeMap<String, VantageStats>>>,
    workers: Arc<std::sync::RwLock<Workers>>,
    clock: Arc<dyn crate::sys::clock::Clock>,
}

impl CollectStatus {
    fn vantages(&self) -> Vec<String> {
        let w = self.workers.read().unwrap_or_else(|p| p.into_inner());
        w.0.keys().cloned().collect()
    }
}

impl crate::server::Service for CollectStatus {
    fn health(&self) -> (Vec<String>, serde_json::Value) {
        let stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        let v: serde_json::Map<String, serde_json::Value> = self
            .vantages()
            .iter()
            .map(|w| {
                let s = stats.get(w).cloned().unwrap_or_default();
                (
                    w.clone(),
                    serde_json::json!({
                        "stored": s.stored,
                        "refused": s.refused,
                        "duplicates": s.duplicates,
                        "late": s.late,
                        "spool_depth": s.spool_depth,
                        "last_record": s.last_at_ms.map(sit_core::time::format_utc_ms),
                    }),
                )
            })
            .collect();
        (vec![], serde_json::json!({ "vantages": v }))
    }

    fn metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.clock.now_ms();
        type Get = fn(&VantageStats, i64) -> Option<i64>;
        let families: [(&str, &str, &str, Get); 6] = [
            ("sit_collect_stored_total", "counter", "Observations stored, by vantage.", |s, _| Some(s.stored as i64)),
            ("sit_collect_refused_total", "counter", "Messages refused into dead letters, by vantage (subject).", |s, _| Some(s.refused as i64)),
            ("sit_collect_duplicates_total", "counter", "Batches received again and stored nothing, by vantage.", |s, _| Some(s.duplicates as i64)),
            ("sit_collect_late_total", "counter", "Observations stored after their day was determined (not its inputs; a recomputation before the cutoff takes them in), by vantage.", |s, _| Some(s.late as i64)),
            ("sit_collect_lag_seconds", "gauge", "Service clock minus the time of the vantage's latest stored record.", |s, now| s.last_at_ms.map(|at| (now - at).max(0) / 1000)),
            ("sit_collect_spool_depth", "gauge", "Observations waiting in the worker's spool, as its latest batch reported.", |s, _| s.spool_depth.map(|d| d as i64)),
        ];
        // registered vantages, then any other subject a message came on (refused ones)
        let registered = self.vantages();
        let mut names: Vec<&String> = registered.iter().collect();
        names.extend(stats.keys().filter(|k| !registered.contains(k)));
        for (name, kind, help, get) in families {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for w in &names {
                let s = stats.get(*w).cloned().unwrap_or_default();
                if let Some(v) = get(&s, now) {
                    let _ = writeln!(out, "{name}{{vantage=\"{w}\"}} {v}");
                }
            }
        }
    }
}

/// Run the collector until Ctrl-C or SIGTERM.
pub async fn run(data: &std::path::Path, opts: &CollectOptions) -> Result<CollectReport> {
    let workers = Workers::load(&opts.workers)?;
    let key = match &opts.key {
        Some(k) => Some(crate::archive::keys::load_signing(k)?),
        None => None,
    };
    std::fs::create_dir_all(data)?;
    let store = Arc::new(Store::open(data)?);
    sit_core::tokenizer::warm_up();
    let (clock, fresh) = crate::sys::clock::folder_clock(
        data,
        &crate::archive::layout::run_clock(data),
        opts.start,
        opts.hour_ms,
        false,
    )?;
    let collector = Collector::new(store.clone(), workers.clone(), clock.clone())?;
    let stats = collector.stats.clone();
    let registered = collector.workers_handle();
    let determined = collector.determined_handle();
    let collector = Arc::new(Mutex::new(collector));
    let client = super::connect(&opts.nats, "sit-collector").await?;
    let js = async_nats::jetstream::new(client);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut background = vec![tokio::spawn(reload_workers(
        opts.workers.clone(),
        registered,
        stop_rx.clone(),
    ))];
    let replication = match &opts.cluster {
        Some(c) => {
            let mut backoff = Duration::from_millis(100);
            loop {
                match super::cluster::ensure(&js, c.replicas, c.lease).await {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::warn!("sit collect: {e}; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = crate::sys::shutdown::signal() => return Ok(CollectReport::default()),
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                    }
                }
            }
            let r = super::cluster::Replication::open(js.clone(), &c.name, data, store.clone())?;
            background.push(tokio::spawn(r.clone().follow(stop_rx.clone())));
            if key.is_some() {
                background.push(tokio::spawn(r.clone().hold_lease(c.lease, stop_rx.clone())));
            }
            tracing::info!(
                "sit collect: {} of a cluster ({} replicas, lease {} s{})",
                c.name,
                c.replicas,
                c.lease.as_secs_f64(),
                if key.is_some() {
                    ""
                } else {
                    "; not a publisher: no --key"
                }
            );
            Some(r)
        }
        None => None,
    };
    let server = match opts.serve {
        Some(addr) => {
            let svc: Arc<dyn crate::server::Service> = Arc::new(CollectStatus {
                stats: stats.clone(),
                workers: collector
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .workers_handle(),
                clock: clock.clone(),
            });
            let archive = crate::archive::Archive::for_data(data);
            let r = crate::server::start_with(
                archive,
                addr,
                Some(svc),
                opts.limits.clone(),
                None,
                None,
            )
            .await
            .map_err(|e| Error::Failed(format!("cannot serve on {addr}: {e}")))?;
            tracing::info!(
                "sit collect: serving http://{} (/healthz, /metrics; {})",
                r.addr,
                r.capacity.describe()
            );
            Some(r)
        }
        None => None,
    };
    tracing::info!(
        "sit collect: {} workers registered ({}); consuming {} on {}",
        workers.0.len(),
        workers.0.keys().cloned().collect::<Vec<_>>().join(", "),
        OBS_STREAM,
        opts.nats
    );
    let total = Arc::new(Mutex::new(Ingested::default()));
    let print = opts.print_acks;
    let on_stored: Arc<dyn Fn(&Ingested) + Send + Sync> = {
        let total = total.clone();
        Arc::new(move |r: &Ingested| {
            let mut t = total.lock().unwrap_or_else(|p| p.into_inner());
            t.batches += r.batches;
            t.stored += r.stored;
            t.duplicates += r.duplicates;
            t.skipped_records += r.skipped_records;
            t.refused += r.refused;
            t.early += r.early;
            if print {
                println!(
                    "stored {} duplicates {} refused {} early {}",
                    t.stored, t.duplicates, t.refused, t.early
                );
            }
        })
    };
    let task = tokio::spawn(consume(
        js,
        data.to_path_buf(),
        collector.clone(),
        stop_rx,
        on_stored,
        consumer_names(opts.cluster.as_ref().map(|c| c.name.as_str())),
        opts.cluster.as_ref().map(|c| c.replicas).unwrap_or(1),
    ));
    let publishing = match key {
        Some(key) => {
            let mut publisher = crate::publisher::day::DayPublisher::with_price_book(
                data,
                store.clone(),
                key,
                clock.clone(),
                &opts.providers,
                replication.is_none(),
            )?;
            if let Some(r) = &replication {
                publisher = publisher.replicated(r.clone());
            }
            let today = sit_core::time::Date::of_ms(clock.now_ms());
            // a new timeline starts at its first day; a restart resumes at the earliest
            // unfinished stored day of the last week
            let first = match (fresh, opts.start) {
                (true, Some(s)) => s,
                _ => store
                    .days()?
                    .into_iter()
                    .filter(|d| d.0 >= today.0 - 7 && *d <= today)
                    .find(|d| !publisher.finished(*d).unwrap_or(false))
                    .unwrap_or(today),
            };
            Some(tokio::spawn(publish_days(
                publisher,
                collector.clone(),
                determined,
                clock.clone(),
                first,
                opts.until,
                replication.clone(),
            )))
        }
        None => None,
    };
    let mut published = Vec::new();
    let stopping =
        "sit collect: stopping (signal); batches read but not stored are read again at the next start";
    match publishing {
        Some(mut p) => tokio::select! {
            r = &mut p => {
                published = r.map_err(|e| Error::Failed(format!("the publication task: {e}")))??;
                tracing::info!("sit collect: published the days before {} as asked; stopping", opts.until.map(|d| d.to_string()).unwrap_or_default());
            }
            _ = crate::sys::shutdown::signal() => {
                p.abort();
                tracing::info!("{stopping}");
            }
        },
        None => {
            crate::sys::shutdown::signal().await;
            tracing::info!("{stopping}");
        }
    }
    let _ = stop_tx.send(true);
    task.await
        .map_err(|e| Error::Failed(format!("the consumer task: {e}")))??;
    for t in background {
        let _ = t.await;
    }
    if let Some(s) = server {
        let _ = s.shutdown().await;
    }
    let ingested = total.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Ok(CollectReport {
        ingested,
        published,
    })
}
