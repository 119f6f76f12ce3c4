//! The probe network: workers at several vantage points ship signed batches of their
//! observations over NATS JetStream; one collector checks and stores them.
//!
//! Why JetStream: the links between workers (in several regions and clouds) and the collector
//! drop, and the collector restarts. JetStream is a proven, durable stream with publish
//! acknowledgements, server-side deduplication by message id and durable consumers with
//! explicit acks: a worker deletes nothing it has not seen acknowledged, and the collector
//! acknowledges nothing it has not flushed to its store. A home-made queue would have to get
//! all of that right again.
//!
//! Subjects and streams:
//! - `sit.obs.<vantage>`: signed observation batches ([`sit_core::batch`]), stream
//!   [`OBS_STREAM`], `Nats-Msg-Id` = the batch id (blake3 of its signed bytes);
//! - `sit.commit.<vantage>`: the vantage's signed schedule commitments and seed reveals,
//!   stream [`COMMIT_STREAM`].
//!
//! - `sit.pub.write`, `sit.pub.term`: the publication log, stream [`cluster::PUB_STREAM`]:
//!   every write to the publication archive, appended by the one collector holding the
//!   publisher lease (bucket [`cluster::LEASE_BUCKET`]) and applied by every collector
//!   ([`cluster`]).
//!
//! The observation streams use file storage and keep messages for [`RETAIN_DAYS`] days whether
//! or not they were consumed (a second collector, or a rebuilt one, can read them again); the
//! publication log keeps everything. On a cluster of three servers every stream is created
//! with three replicas (`sit collect --replicas 3`): one server lost loses nothing.
//!
//! - [`ship`]: the worker's side (`sit worker`): spool, sign, publish, delete after the ack.
//! - [`collect`]: the collector's side (`sit collect`): consume, check, store, then ack.
//! - [`cluster`]: more than one collector: the publisher lease, the fenced publication log,
//!   every collector's archive materialised from it.

use ed25519_dalek::VerifyingKey;
pub use error::{Error, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod cluster;
pub mod collect;
pub mod error;
pub mod ship;

/// The stream of observation batches.
pub const OBS_STREAM: &str = "SIT_OBS";
/// The stream of schedule commitments and reveals.
pub const COMMIT_STREAM: &str = "SIT_COMMIT";
/// How long both streams keep messages.
pub const RETAIN_DAYS: u64 = 14;
/// JetStream's deduplication window (same `Nats-Msg-Id` within it: stored once). The
/// collector's own chain check deduplicates beyond it.
pub const DEDUP_WINDOW: Duration = Duration::from_secs(10 * 60);

/// The subject a vantage's batches go to.
pub fn obs_subject(vantage: &str) -> String {
    format!("sit.obs.{vantage}")
}

/// The subject a vantage's commitments and reveals go to.
pub fn commit_subject(vantage: &str) -> String {
    format!("sit.commit.{vantage}")
}

/// Whether `name` can be a vantage: it becomes a NATS subject token and a chain name.
pub fn check_vantage(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "vantage `{name}`: use 1-64 letters, digits, `-` or `_` (it names a NATS subject and the worker's chain)"
        )))
    }
}

/// The servers of a `--nats` value: one URL, or several separated by commas (the servers of
/// one cluster; the client connects to any and moves to another when it is lost).
pub fn server_urls(list: &str) -> Result<Vec<String>> {
    let urls: Vec<String> = list
        .split(',')
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty())
        .collect();
    if urls.is_empty() {
        return Err(Error::Usage(
            "--nats: no server URL (nats://HOST:PORT, or several separated by commas)".into(),
        ));
    }
    for u in &urls {
        u.parse::<async_nats::ServerAddr>().map_err(|e| {
            Error::Usage(format!(
                "--nats: `{u}` is not a NATS server URL ({e}); use nats://HOST:PORT, several separated by commas"
            ))
        })?;
    }
    Ok(urls)
}

/// Connect to NATS at `url` (one URL or a comma-separated list of a cluster's servers),
/// retrying in the background until one answers (a worker starts probing whether or not the
/// link is up). The client reconnects by itself afterwards, to any server of the list.
pub async fn connect(url: &str, name: &str) -> Result<async_nats::Client> {
    let urls = server_urls(url)?;
    async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis((100 * (attempts as u64 + 1)).min(2_000))
        })
        .connect(urls.as_slice())
        .await
        .map_err(|e| Error::Usage(format!("--nats {url}: {e}")))
}

/// Create the two observation streams if they do not exist, with `replicas` copies each (the
/// collector does this; a worker publishing before it gets "no responders" and retries). A
/// stream that exists keeps the replicas it was created with.
pub async fn ensure_streams(js: &async_nats::jetstream::Context, replicas: usize) -> Result<()> {
    use async_nats::jetstream::stream::{Config, StorageType};
    for (name, subjects) in [(OBS_STREAM, "sit.obs.>"), (COMMIT_STREAM, "sit.commit.>")] {
        js.get_or_create_stream(Config {
            name: name.to_string(),
            subjects: vec![subjects.to_string()],
            storage: StorageType::File,
            max_age: Duration::from_secs(RETAIN_DAYS * 86_400),
            duplicate_window: DEDUP_WINDOW,
            num_replicas: replicas,
            ..Default::default()
        })
        .await
        .map_err(|e| Error::Failed(format!("JetStream stream {name}: {e}")))?;
    }
    Ok(())
}

/// One registered worker (`workers.toml`).
#[derive(Debug, Clone)]
pub struct WorkerEntry {
    pub vantage: String,
    pub key: VerifyingKey,
    pub key_path: PathBuf,
    pub region: Option<String>,
}

/// The workers the collector accepts batches from, by vantage.
#[derive(Debug, Clone, Default)]
pub struct Workers(pub BTreeMap<String, WorkerEntry>);

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkersFile {
    #[serde(default)]
    worker: Vec<WorkerRow>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkerRow {
    vantage: String,
    public_key: PathBuf,
    #[serde(default)]
    region: Option<String>,
}

impl Workers {
    /// Read `workers.toml`: one `[[worker]]` table per worker with `vantage`, `public_key`
    /// (path of its PEM public key, relative to the file's folder) and optional `region`.
    pub fn load(path: &Path) -> Result<Workers> {
        let fix = "one [[worker]] table per worker: vantage = \"NAME\", public_key = \"PATH.pem\" (from `sit keys generate`), optional region";
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Usage(format!("--workers {}: {e}", path.display())))?;
        let f: WorkersFile = toml::from_str(&text)
            .map_err(|e| Error::Usage(format!("{}: {e}\n  hint: {fix}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut out = BTreeMap::new();
        for w in f.worker {
            check_vantage(&w.vantage)
                .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
            let key_path = base.join(&w.public_key);
            let key = crate::archive::keys::load_public(&key_path).map_err(|e| {
                Error::Usage(format!(
                    "{}: worker `{}`: {e}\n  hint: public_key is the worker's public-key.pem",
                    path.display(),
                    w.vantage
                ))
            })?;
            if out.contains_key(&w.vantage) {
                return Err(Error::Usage(format!(
                    "{}: vantage `{}` is registered twice; one key per vantage (rotate by replacing it)",
                    path.display(),
                    w.vantage
                )));
            }
            out.insert(
                w.vantage.clone(),
                WorkerEntry {
                    vantage: w.vantage,
                    key,
                    key_path,
                    region: w.region,
                },
            );
        }
        if out.is_empty() {
            return Err(Error::Usage(format!(
                "{}: no worker registered\n  hint: {fix}",
                path.display()
            )));
        }
        Ok(Workers(out))
    }

    pub fn key_of(&self, vantage: &str) -> Option<VerifyingKey> {
        self.0.get(vantage).map(|w| w.key)
    }
}

/// A vantage's schedule document on the wire: its commitment or reveal, signed with the
/// worker's key. `kind` is `sit-commitment` or `sit-reveal`. A reveal also states
/// `chain_next_seq`: the worker's chain had this many records when it was shipped, so every
/// record of the revealed day is below it (the collector waits for them before it
/// determines the day).
pub fn sign_schedule_doc(
    vantage: &str,
    key: &ed25519_dalek::SigningKey,
    kind: &str,
    doc: serde_json::Value,
    chain_next_seq: Option<u64>,
) -> Vec<u8> {
    let mut v = serde_json::json!({
        "kind": kind,
        "vantage": vantage,
        "key_id": sit_core::signing::key_id(&key.verifying_key()),
        "doc": doc,
    });
    if let Some(n) = chain_next_seq {
        v["chain_next_seq"] = n.into();
    }
    sit_core::signing::sign_value(v, key)
}
