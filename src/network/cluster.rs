//! More than one collector: every one collects and holds the same archive; one at a time
//! publishes.
//!
//! Why: with one collector, the machine it runs on is a single point of failure for the
//! publication (a month's last days published after the final settlement time never settle
//! FINAL). Every collector of a cluster (`sit collect --name NAME`) consumes every batch with a
//! durable consumer of its own, so each holds the whole observation log; the one holding the
//! publisher lease determines, signs and writes; every collector's publication archive is
//! materialised from one replicated log of those writes, in order, byte for byte.
//!
//! The parts, all in JetStream (replicated over the cluster's servers):
//! - **The lease**: the last message on subject [`LEASE_SUBJECT`] of stream [`LEASE_STREAM`],
//!   whose messages expire [`lease`](ClusterOptions::lease) after they were written (a
//!   key-value entry with a time to live, built on the stream itself: `Nats-Expected-Last-
//!   Subject-Sequence` is the compare-and-set). A collector takes it by writing the subject
//!   when it is empty (or holds a release) and keeps it by writing it again at the sequence it
//!   last wrote, every quarter of the lease; a collector that stops, dies or pauses stops
//!   rewriting it, and it lapses. Its sequence when taken is the term's fencing token.
//! - **The fence**: a publisher that takes the lease first appends a term marker to the
//!   publication log ([`TERM_SUBJECT`], with the lease revision as fencing token) and applies
//!   the log through it. Every write it makes afterwards is appended with
//!   `Nats-Expected-Last-Sequence` = the last sequence it applied: the log takes the write only
//!   if nothing was appended since, so a write decided on a stale archive (an old leader waking
//!   from a pause, after the new one's term marker) is refused and written nowhere. Two
//!   publishers can therefore never both publish a version, nor fork a tier's chain.
//! - **The publication log**: stream [`PUB_STREAM`], subject [`WRITE_SUBJECT`], one
//!   [`Write`] per message (a record with its log line, a write-once file, an indicative
//!   settlement record rewritten), kept without limit and never deleted. Every collector
//!   applies it in sequence order ([`Replication::catch_up`]); the publisher applies its own
//!   write right after the log acknowledged it, through the same [`Archive::apply`]. The last
//!   sequence applied is kept in `DATA/replica.json`; applying is idempotent, so a crash
//!   between the two is mended by applying again.
//!
//! A publisher also holds the lease only while its own monotonic clock says the lease cannot
//! have lapsed (four fifths of the lease after the write that renewed it): a paused process
//! wakes with its term over and writes nothing even before the log refuses it.
//!
//! Failover: a standby takes the lease at most a lease plus a quarter of it after the
//! publisher's last renewal, appends its term marker, applies the log, and resumes the
//! unfinished work (days not yet published, their bundles, the settlements) from its archive.

use super::error::{Error, Result};
use crate::archive::{Archive, ArchiveError, Replica, Write};
use async_nats::jetstream::{self, context::PublishErrorKind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The publication log.
pub const PUB_STREAM: &str = "SIT_PUB";
/// Subject of the writes in the publication log.
pub const WRITE_SUBJECT: &str = "sit.pub.write";
/// Subject of the price book entries in the publication log (imported into every
/// collector's store: the book is an input of every determination).
pub const PRICES_SUBJECT: &str = "sit.pub.prices";
/// Subject of the term markers (a publisher's start; the fence).
pub const TERM_SUBJECT: &str = "sit.pub.term";
/// The stream of the publisher lease.
pub const LEASE_STREAM: &str = "SIT_LEASE";
/// The lease's subject.
pub const LEASE_SUBJECT: &str = "sit.lease.publisher";
/// The default lease.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);
/// How often every collector reads the publication log.
pub const APPLY_EVERY: Duration = Duration::from_millis(250);

/// A collector's part in a cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// The collector's name (its durable consumers, the lease holder's name).
    pub name: String,
    /// Copies of each stream (3 on a three-server cluster).
    pub replicas: usize,
    /// How long the lease outlives its last renewal.
    pub lease: Duration,
}

/// A term as publisher: the lease's fencing token, and until when (this process's monotonic
/// clock) it may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Term {
    pub fence: u64,
    pub until: Instant,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Applied {
    stream: String,
    applied: u64,
}

/// The publication log of one collector: appends its writes while it publishes, applies
/// everyone's to its archive.
pub struct Replication {
    js: jetstream::Context,
    name: String,
    archive: Archive,
    store: Arc<crate::store::Store>,
    state: PathBuf,
    /// The last sequence applied; held while applying or appending.
    applied: tokio::sync::Mutex<u64>,
    term: tokio::sync::watch::Sender<Option<Term>>,
    rt: tokio::runtime::Handle,
}

fn failed(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Failed(format!("{what}: {e}"))
}

/// Create the publication log and the lease bucket if they do not exist.
pub async fn ensure(js: &jetstream::Context, replicas: usize, lease: Duration) -> Result<()> {
    use jetstream::stream::{Config, StorageType};
    js.get_or_create_stream(Config {
        name: PUB_STREAM.to_string(),
        subjects: vec!["sit.pub.>".to_string()],
        storage: StorageType::File,
        num_replicas: replicas,
        deny_delete: true,
        deny_purge: true,
        ..Default::default()
    })
    .await
    .map_err(|e| failed("JetStream stream SIT_PUB", e))?;
    let made = js
        .get_or_create_stream(Config {
            name: LEASE_STREAM.to_string(),
            subjects: vec!["sit.lease.>".to_string()],
            storage: StorageType::File,
            num_replicas: replicas,
            max_age: lease,
            max_messages_per_subject: 1,
            duplicate_window: lease.min(Duration::from_secs(120)),
            ..Default::default()
        })
        .await
        .map_err(|e| failed("JetStream stream SIT_LEASE", e))?;
    if made.cached_info().config.max_age != lease {
        return Err(Error::Usage(format!(
            "--lease-secs {}: the cluster's lease is {} s (every collector must use the same; change it for all by deleting the stream SIT_LEASE while none runs)",
            lease.as_secs_f64(),
            made.cached_info().config.max_age.as_secs_f64()
        )));
    }
    Ok(())
}

impl Replication {
    /// The replication of `data`'s archive (`DATA/replica.json` says how far it was applied).
    pub fn open(
        js: jetstream::Context,
        name: &str,
        data: &Path,
        store: Arc<crate::store::Store>,
    ) -> Result<Arc<Replication>> {
        let state = data.join("replica.json");
        let applied = match std::fs::read(&state) {
            Ok(b) => {
                let a: Applied = serde_json::from_slice(&b).map_err(|e| {
                    Error::Failed(format!(
                        "{} is damaged ({e}); delete it and the archive is applied again from the log's start",
                        state.display()
                    ))
                })?;
                a.applied
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(Error::Failed(format!("{}: {e}", state.display()))),
        };
        let (term, _) = tokio::sync::watch::channel(None);
        Ok(Arc::new(Replication {
            js,
            name: name.to_string(),
            archive: Archive::for_data(data),
            store,
            state,
            applied: tokio::sync::Mutex::new(applied),
            term,
            rt: tokio::runtime::Handle::current(),
        }))
    }

    /// The current term, if this collector publishes now.
    pub fn term(&self) -> Option<Term> {
        self.term.borrow().filter(|t| Instant::now() < t.until)
    }

    /// Follow the term (for the publication loop).
    pub fn watch(&self) -> tokio::sync::watch::Receiver<Option<Term>> {
        self.term.subscribe()
    }

    fn save(&self, applied: u64) -> Result<()> {
        let b = serde_json::to_vec(&Applied {
            stream: PUB_STREAM.to_string(),
            applied,
        })
        .expect("json");
        crate::sys::durable::replace(&self.state, &b, crate::sys::durable::Access::Shared)
            .map_err(|e| Error::Failed(format!("{}: {e}", self.state.display())))
    }

    /// Apply every write of the log not applied yet, in order. Returns the last sequence
    /// applied.
    pub async fn catch_up(&self) -> Result<u64> {
        let mut applied = self.applied.lock().await;
        let stream = self
            .js
            .get_stream(PUB_STREAM)
            .await
            .map_err(|e| failed("the publication log", e))?;
        let last = stream
            .get_info()
            .await
            .map_err(|e| failed("the publication log", e))?
            .state
            .last_sequence;
        if last < *applied {
            return Err(Error::Failed(format!(
                "the publication log ends at sequence {last} but this archive applied {}: another NATS cluster? (point --nats at the cluster this data folder was written from)",
                *applied
            )));
        }
        while *applied < last {
            let upto = last.min(*applied + 256);
            let mut writes = Vec::new();
            for seq in *applied + 1..=upto {
                let m = stream.get_raw_message(seq).await.map_err(|e| {
                    Error::Failed(format!("reading the publication log at {seq}: {e}"))
                })?;
                let parsed = match m.subject.as_str() {
                    WRITE_SUBJECT => serde_json::from_slice(&m.payload).map(Logged::Write),
                    PRICES_SUBJECT => serde_json::from_slice(&m.payload).map(Logged::Prices),
                    _ => continue,
                };
                let w = parsed.map_err(|e| {
                    Error::Failed(format!(
                        "the publication log's message {seq} does not parse: {e}"
                    ))
                })?;
                writes.push((seq, w));
            }
            let (archive, store) = (self.archive.clone(), self.store.clone());
            tokio::task::spawn_blocking(move || {
                for (seq, w) in &writes {
                    let done = match w {
                        Logged::Write(w) => archive.apply(w).map_err(|e| e.to_string()),
                        Logged::Prices(p) => {
                            store.import_book(p).map(|_| ()).map_err(|e| e.to_string())
                        }
                    };
                    done.map_err(|e| {
                        Error::Failed(format!("applying the publication log's message {seq}: {e}"))
                    })?;
                }
                Ok::<_, Error>(())
            })
            .await
            .map_err(|e| Error::Failed(format!("applying the publication log: {e}")))??;
            *applied = upto;
            self.save(upto)?;
        }
        Ok(*applied)
    }

    /// Apply the log every [`APPLY_EVERY`] until `stop`; a failure is logged and tried again.
    pub async fn follow(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut failing = false;
        while !*stop.borrow() {
            match self.catch_up().await {
                Ok(_) => failing = false,
                Err(e) if !failing => {
                    tracing::warn!("sit collect: {e}; tried again");
                    failing = true;
                }
                Err(_) => {}
            }
            tokio::select! {
                _ = tokio::time::sleep(APPLY_EVERY) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Write the lease subject if its last message is at `expected` (0: none); the new
    /// message's sequence.
    async fn write_lease(&self, expected: u64, released: bool) -> Result<u64> {
        let v = serde_json::json!({ "holder": self.name, "released": released });
        let ack = self
            .js
            .send_publish(
                LEASE_SUBJECT,
                jetstream::message::PublishMessage::build()
                    .payload(serde_json::to_vec(&v).expect("json").into())
                    .expected_last_subject_sequence(expected),
            )
            .await
            .map_err(|e| Error::Failed(e.to_string()))?
            .await
            .map_err(|e| {
                if e.kind() == PublishErrorKind::WrongLastSequence {
                    Error::Usage("another collector holds the lease".into())
                } else {
                    Error::Failed(e.to_string())
                }
            })?;
        Ok(ack.sequence)
    }

    /// The lease free to take: the sequence to write it at (0: nobody ever held it or it
    /// lapsed; a release's), or None while someone holds it.
    async fn lease_free(&self) -> Result<Option<u64>> {
        let stream = self
            .js
            .get_stream(LEASE_STREAM)
            .await
            .map_err(|e| Error::Failed(e.to_string()))?;
        match stream.get_last_raw_message_by_subject(LEASE_SUBJECT).await {
            Ok(m) => {
                let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap_or_default();
                Ok((v["released"] == true).then_some(m.sequence))
            }
            Err(e) if e.kind() == jetstream::stream::LastRawMessageErrorKind::NoMessageFound => {
                Ok(Some(0))
            }
            Err(e) => Err(Error::Failed(e.to_string())),
        }
    }

    /// Hold the publisher lease whenever it is free, until `stop`; on leaving, give it up.
    pub async fn hold_lease(
        self: Arc<Self>,
        lease: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let tick = lease / 4;
        let margin = lease / 5;
        let mut held: Option<(u64, u64)> = None; // fence, sequence last written
        while !*stop.borrow() {
            let sent = Instant::now();
            match held {
                None => {
                    let taken = match self.lease_free().await {
                        Ok(Some(at)) => self.write_lease(at, false).await.ok(),
                        _ => None,
                    };
                    if let Some(rev) = taken {
                        match self.begin_term(rev).await {
                            Ok(()) => {
                                held = Some((rev, rev));
                                self.term.send_replace(Some(Term {
                                    fence: rev,
                                    until: sent + lease - margin,
                                }));
                                tracing::info!(
                                    "sit collect: {} holds the publisher lease (fence {rev})",
                                    self.name
                                );
                            }
                            Err(e) => {
                                tracing::warn!("sit collect: taking the lease: {e}");
                                let _ = self.write_lease(rev, true).await;
                            }
                        }
                    }
                }
                Some((fence, rev)) => match self.write_lease(rev, false).await {
                    Ok(r) => {
                        held = Some((fence, r));
                        self.term.send_replace(Some(Term {
                            fence,
                            until: sent + lease - margin,
                        }));
                    }
                    Err(Error::Usage(_)) => {
                        held = None;
                        self.term.send_replace(None);
                        tracing::warn!(
                            "sit collect: {} lost the publisher lease (it lapsed; another collector took it); publishing stops here",
                            self.name
                        );
                    }
                    // a server may be changing over: the term runs out by itself
                    Err(e) => tracing::warn!("sit collect: renewing the lease: {e}"),
                },
            }
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = stop.changed() => {}
            }
        }
        self.term.send_replace(None);
        if let Some((_, rev)) = held {
            // handed over at once: the standby need not wait for it to lapse
            if self.write_lease(rev, true).await.is_ok() {
                tracing::info!("sit collect: {} gave up the publisher lease", self.name);
            }
        }
    }

    /// The fence: a term marker appended to the log, then the log applied through it.
    async fn begin_term(&self, fence: u64) -> Result<()> {
        let marker = serde_json::json!({ "publisher": self.name, "fence": fence });
        let ack = self
            .js
            .send_publish(
                TERM_SUBJECT,
                jetstream::message::PublishMessage::build()
                    .payload(serde_json::to_vec(&marker).expect("json").into())
                    .header("Sit-Fence", fence.to_string().as_str()),
            )
            .await
            .map_err(|e| failed("the term marker", e))?
            .await
            .map_err(|e| failed("the term marker", e))?;
        let applied = self.catch_up().await?;
        if applied < ack.sequence {
            return Err(Error::Failed(format!(
                "the publication log was applied through {applied}, before the term marker {}",
                ack.sequence
            )));
        }
        Ok(())
    }
}

/// A message of the publication log, as applied.
enum Logged {
    Write(Write),
    Prices(Vec<sit_core::price::BookEntry>),
}

impl Replication {
    /// Append one message to the log, fenced (see the module doc), then apply it here with
    /// `apply`. Called from a blocking thread.
    fn append(
        &self,
        subject: &str,
        payload: Vec<u8>,
        apply: impl FnOnce() -> std::result::Result<(), ArchiveError>,
    ) -> std::result::Result<(), ArchiveError> {
        let Some(term) = self.term() else {
            return Err(ArchiveError::Replica(format!(
                "{} does not hold the publisher lease",
                self.name
            )));
        };
        let mut applied = self.applied.blocking_lock();
        let expected = *applied;
        let acked = self.rt.block_on(async {
            self.js
                .send_publish(
                    subject.to_string(),
                    jetstream::message::PublishMessage::build()
                        .payload(payload.into())
                        .expected_last_sequence(expected)
                        .header("Sit-Fence", term.fence.to_string().as_str())
                        .header("Sit-Publisher", self.name.as_str()),
                )
                .await?
                .await
        });
        let ack = match acked {
            Ok(a) => a,
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                return Err(ArchiveError::Replica(format!(
                    "fenced: the publication log has writes after sequence {expected} that {} has not applied (another publisher wrote); nothing written",
                    self.name
                )))
            }
            Err(e) => {
                return Err(ArchiveError::Replica(format!(
                    "the publication log did not acknowledge the write ({e}); decided again once the log is applied"
                )))
            }
        };
        // In the log now: applied here whatever happens next (a failure is mended by the
        // next catch-up, which applies it again).
        apply()?;
        *applied = ack.sequence;
        self.save(ack.sequence)
            .map_err(|e| ArchiveError::Replica(e.to_string()))
    }
}

impl Replica for Replication {
    fn write(&self, w: Write) -> std::result::Result<(), ArchiveError> {
        let payload = serde_json::to_vec(&w).expect("a write serialises");
        self.append(WRITE_SUBJECT, payload, || self.archive.apply(&w))
    }

    fn record_prices(
        &self,
        entries: Vec<sit_core::price::BookEntry>,
    ) -> std::result::Result<(), ArchiveError> {
        let payload = serde_json::to_vec(&entries).expect("entries serialise");
        self.append(PRICES_SUBJECT, payload, || {
            self.store
                .import_book(&entries)
                .map(|_| ())
                .map_err(|e| ArchiveError::Replica(format!("importing the price book: {e}")))
        })
    }

    fn may_write(&self) -> bool {
        self.term().is_some()
    }
}
