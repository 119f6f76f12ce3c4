//! The worker's side of the probe network: every observation the worker records in its local
//! spool (a [`Store`] in `--data`) is queued here in chain order, signed in batches and
//! published to JetStream; the spool keeps it until JetStream has acknowledged it.
//!
//! Order and idempotence: one batch is in flight at a time, and a batch that got no ack is
//! sent again unchanged (same bytes, same `Nats-Msg-Id`), so the stream holds the chain in
//! order and a retried publish is stored once (JetStream's deduplication within its window,
//! the collector's chain check beyond it). The cursor (next seq to ship and the hash before
//! it) is written after each ack; after a crash, what was acked but not yet noted is sent
//! again and recognised as a duplicate.
//!
//! Pruning: records older than [`KEEP_MS`] whose seq is below the cursor are deleted from the
//! spool (the current and previous day stay: a restarted worker reads them to know which
//! probes of the day it already made).

use super::error::{Error, Result};
use crate::store::Store;
use sit_core::batch::{self, RecordText, Tip};
use sit_core::observation::Observation;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// At most this many records per batch.
pub const MAX_RECORDS: usize = 512;
/// At most about this many record bytes per batch (NATS's default message limit is 1 MiB).
pub const MAX_BYTES: usize = 512 * 1024;
/// Shipped records younger than this stay in the spool (two days).
pub const KEEP_MS: i64 = 2 * 86_400_000;
/// How long one publish may wait for its ack before it is sent again.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// The spool's state name of the shipping cursor.
const CURSOR: &str = "ship/cursor";
/// The spool's state name of its chain's name (drawn once, when the spool is new).
const CHAIN: &str = "ship/chain";

/// The name of the spool's chain: drawn from the OS when the spool is new, kept after.
pub fn chain_name(store: &Store) -> Result<String> {
    if let Some(b) = store.meta(CHAIN)? {
        return Ok(String::from_utf8_lossy(&b).into_owned());
    }
    let mut r = [0u8; 16];
    getrandom::getrandom(&mut r)
        .map_err(|e| Error::Failed(format!("the OS random source: {e}")))?;
    let name = sit_core::signing::hex(&r);
    store.append_with_meta(&mut [], &[(CHAIN.to_string(), name.clone().into_bytes())])?;
    Ok(name)
}

/// Records recorded but not yet acknowledged by JetStream, in chain order.
#[derive(Default)]
pub struct Queue {
    records: Mutex<VecDeque<(RecordText, [u8; 32])>>,
    notify: Notify,
    /// Records queued (spool depth), for the worker's report and the batches' header.
    depth: AtomicU64,
}

impl Queue {
    /// Queue a record just made durable (the recorder's ack callback).
    pub fn push(&self, o: &Observation) {
        let text = serde_json::to_string(o).expect("observation serialises");
        let hash = *blake3::hash(text.as_bytes()).as_bytes();
        let mut q = self.records.lock().unwrap_or_else(|p| p.into_inner());
        q.push_back((RecordText { seq: o.seq, text }, hash));
        self.depth.store(q.len() as u64, Ordering::Relaxed);
        drop(q);
        self.notify.notify_one();
    }

    pub fn depth(&self) -> u64 {
        self.depth.load(Ordering::Relaxed)
    }

    /// The next batch: up to [`MAX_RECORDS`] records and about [`MAX_BYTES`] bytes.
    fn peek(&self) -> Vec<(RecordText, [u8; 32])> {
        let q = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        let mut bytes = 0;
        for r in q.iter() {
            if out.len() == MAX_RECORDS || (bytes > 0 && bytes + r.0.text.len() > MAX_BYTES) {
                break;
            }
            bytes += r.0.text.len();
            out.push(r.clone());
        }
        out
    }

    fn pop(&self, n: usize) {
        let mut q = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let n = n.min(q.len());
        q.drain(..n);
        self.depth.store(q.len() as u64, Ordering::Relaxed);
    }
}

/// The shipping cursor stored in the spool (the collector's [`Tip`] as the worker sees it).
pub fn cursor(store: &Store) -> Result<Tip> {
    match store.meta(CURSOR)? {
        None => Ok(Tip::default()),
        Some(b) => serde_json::from_slice(&b)
            .map_err(|e| Error::Failed(format!("the spool's shipping cursor is damaged: {e}"))),
    }
}

/// A queue holding every spooled record not yet shipped (read before the recorder starts, so
/// that the records it adds follow in order).
pub fn queue_from_spool(store: &Store) -> Result<Arc<Queue>> {
    let from = cursor(store)?.next_seq;
    let mut rest: Vec<(RecordText, [u8; 32])> = Vec::new();
    for raw in store.records_by_seq(from, u64::MAX)? {
        let (seq, hash) = (raw.seq, raw.hash);
        let text = String::from_utf8(raw.bytes().to_vec()).ok();
        match text {
            Some(text) if blake3::hash(text.as_bytes()).as_bytes() == &hash => {
                rest.push((RecordText { seq, text }, hash))
            }
            _ => {
                return Err(Error::Failed(format!(
                    "spooled record seq {seq} does not match its hash"
                )))
            }
        }
    }
    rest.sort_by_key(|r| r.0.seq);
    let q = Queue::default();
    q.depth.store(rest.len() as u64, Ordering::Relaxed);
    *q.records.lock().unwrap_or_else(|p| p.into_inner()) = rest.into();
    Ok(Arc::new(q))
}

/// What the shipper did.
#[derive(Debug, Default, Clone)]
pub struct Shipped {
    /// Observations JetStream acknowledged.
    pub acked: u64,
    pub batches: u64,
    /// Publishes sent again after no ack (a link down, a server restarting).
    pub retries: u64,
    /// Left in the spool when it stopped.
    pub left: u64,
}

/// The shipper of one worker.
pub struct Shipper {
    pub store: Arc<Store>,
    pub queue: Arc<Queue>,
    pub vantage: String,
    pub key: Arc<ed25519_dalek::SigningKey>,
    pub js: async_nats::jetstream::Context,
    /// The worker's archive: its commitments and reveals are shipped too.
    pub archive: crate::archive::Archive,
    pub clock: Arc<dyn crate::sys::clock::Clock>,
}

impl Shipper {
    /// Ship until `stop` turns true, then drain for at most `drain` and return.
    pub async fn run(self, mut stop: watch::Receiver<bool>, drain: Duration) -> Result<Shipped> {
        let subject = super::obs_subject(&self.vantage);
        let chain = chain_name(&self.store)?;
        let mut tip = cursor(&self.store)?;
        let mut out = Shipped::default();
        let mut deadline: Option<tokio::time::Instant> = None;
        let mut down_since: Option<tokio::time::Instant> = None;
        let mut backoff = Duration::from_millis(100);
        let mut next_schedule_check = tokio::time::Instant::now();
        loop {
            if deadline.is_none() && *stop.borrow() {
                deadline = Some(tokio::time::Instant::now() + drain);
            }
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                break;
            }
            if tokio::time::Instant::now() >= next_schedule_check {
                // commitments and reveals: few, checked about once a second
                let _ = self.ship_schedule_docs().await;
                next_schedule_check = tokio::time::Instant::now() + Duration::from_secs(1);
            }
            let batch = self.queue.peek();
            if batch.is_empty() {
                if deadline.is_some() {
                    // the last reveal is written just before the stop: ship it too
                    if self.ship_schedule_docs().await.is_ok() {
                        break;
                    }
                    tokio::time::sleep(backoff).await;
                    continue;
                }
                tokio::select! {
                    _ = self.queue.notify.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            let records: Vec<RecordText> = batch.iter().map(|r| r.0.clone()).collect();
            let doc = batch::sign(&self.vantage, &chain, &self.key, &tip.hash, &records);
            let id = batch::id(&doc);
            match self.publish(&subject, &id, doc).await {
                Ok(()) => {
                    let (last, hash) = batch.last().map(|r| (r.0.seq, r.1)).expect("non-empty");
                    tip = Tip {
                        next_seq: last + 1,
                        hash: sit_core::signing::hex(&hash),
                        chain: chain.clone(),
                    };
                    let store = self.store.clone();
                    let t = serde_json::to_vec(&tip).expect("json");
                    let before = self.clock.now_ms() - KEEP_MS;
                    let below = tip.next_seq;
                    tokio::task::spawn_blocking(move || {
                        store.append_with_meta(&mut [], &[(CURSOR.to_string(), t)])?;
                        store.prune(before, below)
                    })
                    .await
                    .map_err(|e| Error::Failed(format!("the spool: {e}")))??;
                    self.queue.pop(batch.len());
                    out.acked += batch.len() as u64;
                    out.batches += 1;
                    backoff = Duration::from_millis(100);
                    if let Some(t) = down_since.take() {
                        tracing::info!(
                            "sit worker: JetStream reachable again after {:.1} s; draining {} spooled observations",
                            t.elapsed().as_secs_f64(),
                            self.queue.depth()
                        );
                    }
                }
                Err(e) => {
                    out.retries += 1;
                    if down_since.is_none() {
                        down_since = Some(tokio::time::Instant::now());
                        tracing::warn!(
                            "sit worker: publishing to JetStream failed ({e}); probing goes on, observations stay in the spool"
                        );
                    }
                    let wait = match deadline {
                        Some(d) => {
                            backoff.min(d.saturating_duration_since(tokio::time::Instant::now()))
                        }
                        None => backoff,
                    };
                    tokio::time::sleep(wait).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
        out.left = self.queue.depth();
        Ok(out)
    }

    async fn publish(
        &self,
        subject: &str,
        id: &str,
        doc: Vec<u8>,
    ) -> std::result::Result<(), String> {
        use async_nats::jetstream::message::PublishMessage;
        let msg = PublishMessage::build()
            .payload(doc.into())
            .message_id(id)
            .header("Sit-Spool-Depth", self.queue.depth().to_string().as_str());
        let ack = tokio::time::timeout(ACK_TIMEOUT, async {
            self.js
                .send_publish(subject.to_string(), msg)
                .await
                .map_err(|e| e.to_string())?
                .await
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|_| format!("no ack within {} s", ACK_TIMEOUT.as_secs()))??;
        let _ = ack;
        Ok(())
    }

    /// Publish the commitments and reveals of the last days not yet acknowledged.
    async fn ship_schedule_docs(&self) -> std::result::Result<(), String> {
        let today = sit_core::time::Date::of_ms(self.clock.now_ms());
        let subject = super::commit_subject(&self.vantage);
        for d in (today.0 - 3)..=(today.0 + 1) {
            let date = sit_core::time::Date(d);
            let docs = [
                (
                    "sit-commitment",
                    self.archive
                        .commitment(date)
                        .map(|c| serde_json::to_value(c).expect("json")),
                ),
                (
                    "sit-reveal",
                    self.archive
                        .reveal(date)
                        .map(|r| serde_json::to_value(r).expect("json")),
                ),
            ];
            for (kind, doc) in docs {
                let Some(doc) = doc else { continue };
                let name = format!("ship/{kind}/{date}");
                if self.store.meta(&name).map_err(|e| e.to_string())?.is_some() {
                    continue;
                }
                let next = match kind {
                    "sit-reveal" => Some(self.store.head().map_err(|e| e.to_string())?.0),
                    _ => None,
                };
                let bytes = super::sign_schedule_doc(&self.vantage, &self.key, kind, doc, next);
                let id = blake3::hash(&bytes).to_hex().to_string();
                self.publish(&subject, &id, bytes).await?;
                let store = self.store.clone();
                tokio::task::spawn_blocking(move || {
                    store.append_with_meta(&mut [], &[(name, b"1".to_vec())])
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }
}
