//! An archive off the machine: the publication archive (`published/`: records and their log,
//! settlement records, notices, keys, commitments) and the audit bundles (`archive/`) mirrored
//! to S3-compatible object storage, content-addressed, with create-only writes.
//!
//! Layout under `s3://BUCKET/PREFIX/`:
//! - `blobs/<blake3>`: a file's bytes, named by their blake3 (hex). Written with
//!   `If-None-Match: *`, so an object is never overwritten: "already there" means the same
//!   bytes, and a retry, a restart or a second mirror (the other collector of a cluster, whose
//!   archive is byte-identical) changes nothing.
//! - `snapshots/<N>.json` (N in 20 digits): the whole tree at one moment, each relative path
//!   with its blake3, written (create-only) once every blob it names is acknowledged. The
//!   latest is the greatest N.
//!
//! Why blobs and snapshots rather than objects by path: the log grows and an indicative
//! settlement record is replaced, and a create-only bucket (object lock in compliance mode)
//! keeps every version; a snapshot says which version of each path belonged together, and an
//! object is checked against its name when read back ([`Mirror::restore`]).
//!
//! Credentials and the endpoint come from the environment only (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`), never from
//! a flag or a file of ours, and are never printed. Before it trusts a bucket, the mirror
//! checks that it refuses to overwrite ([`Mirror::check_create_only`]): a server that ignores
//! `If-None-Match` would let any later write replace a published record silently.

use object_store::{path::Path as Key, ObjectStore, PutMode, PutOptions, PutPayload};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("{0}")]
    Usage(String),
    #[error("object storage {what}: {source}")]
    Store {
        what: String,
        source: object_store::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Damaged(String),
}

type Result<T> = std::result::Result<T, MirrorError>;

/// The schema of a snapshot.
pub const SNAPSHOT_SCHEMA: &str = "sit-mirror-snapshot/1";

/// The folders of a data folder that are mirrored.
pub const MIRRORED: [&str; 2] = ["published", "archive"];

/// `s3://BUCKET[/PREFIX]`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub bucket: String,
    pub prefix: String,
}

impl Location {
    pub fn parse(url: &str) -> Result<Location> {
        let fix = "give s3://BUCKET or s3://BUCKET/PREFIX (the endpoint and credentials come from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION)";
        let rest = url.strip_prefix("s3://").ok_or_else(|| {
            MirrorError::Usage(format!("`{url}` is not an s3:// location; {fix}"))
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !ok {
            return Err(MirrorError::Usage(format!(
                "`{url}`: `{bucket}` is not a bucket name (3-63 lowercase letters, digits, `-`, `.`); {fix}"
            )));
        }
        let prefix = prefix.trim_matches('/').to_string();
        if prefix.split('/').any(|p| p == ".." || p == ".") {
            return Err(MirrorError::Usage(format!(
                "`{url}`: the prefix may not hold `.` or `..`"
            )));
        }
        Ok(Location {
            bucket: bucket.to_string(),
            prefix,
        })
    }

    pub fn is_s3(s: &str) -> bool {
        s.starts_with("s3://")
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

/// A snapshot: the mirrored tree at one moment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    pub schema: String,
    /// Relative path (under the data folder) -> blake3 of its bytes.
    pub files: BTreeMap<String, String>,
}

/// What one [`Mirror::pass`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pass {
    pub files: usize,
    /// Blobs written now (new contents).
    pub uploaded: usize,
    pub uploaded_bytes: u64,
    /// The snapshot written, when the tree had changed.
    pub snapshot: Option<u64>,
}

/// A mirror of one data folder's archive to one location.
pub struct Mirror {
    store: Arc<dyn ObjectStore>,
    pub location: Location,
    /// Blobs known to be in the bucket.
    known: BTreeSet<String>,
    /// File path -> (length, modified, blake3): a file unchanged since the last pass is not
    /// read again.
    hashed: BTreeMap<PathBuf, (u64, std::time::SystemTime, String)>,
    /// The latest snapshot (number and tree) in the bucket.
    latest: Option<(u64, Snapshot)>,
}

impl Mirror {
    /// Connect to `url` (credentials and endpoint from the environment) and read what the
    /// bucket holds: its blobs and its latest snapshot.
    pub async fn open(url: &str) -> Result<Mirror> {
        let location = Location::parse(url)?;
        let store = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(&location.bucket)
            .with_conditional_put(object_store::aws::S3ConditionalPut::ETagMatch)
            .build()
            .map_err(|source| MirrorError::Store {
                what: format!("{location}"),
                source,
            })?;
        let mut m = Mirror {
            store: Arc::new(store),
            location,
            known: BTreeSet::new(),
            hashed: BTreeMap::new(),
            latest: None,
        };
        m.known = m.list("blobs").await?.into_iter().collect();
        m.latest = m.latest_snapshot().await?;
        Ok(m)
    }

    fn key(&self, name: &str) -> Key {
        if self.location.prefix.is_empty() {
            Key::from(name)
        } else {
            Key::from(format!("{}/{name}", self.location.prefix))
        }
    }

    fn failed(
        &self,
        what: impl std::fmt::Display,
    ) -> impl FnOnce(object_store::Error) -> MirrorError {
        let what = format!("{}: {what}", self.location);
        move |source| MirrorError::Store { what, source }
    }

    /// The names of the objects under `dir` (relative to it).
    async fn list(&self, dir: &str) -> Result<Vec<String>> {
        use futures_util::StreamExt;
        let prefix = self.key(dir);
        let mut out = Vec::new();
        let mut s = self.store.list(Some(&prefix));
        while let Some(m) = s.next().await {
            let m = m.map_err(self.failed(format!("listing {dir}/")))?;
            if let Some(name) = m.location.filename() {
                out.push(name.to_string());
            }
        }
        Ok(out)
    }

    async fn get(&self, name: &str) -> Result<bytes::Bytes> {
        let r = self
            .store
            .get_opts(&self.key(name), Default::default())
            .await
            .map_err(self.failed(format!("reading {name}")))?;
        r.bytes()
            .await
            .map_err(self.failed(format!("reading {name}")))
    }

    /// Write `bytes` as `name` unless an object of that name exists (`If-None-Match: *`).
    /// True when written, false when it was there already.
    async fn put_once(&self, name: &str, bytes: Vec<u8>) -> Result<bool> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&self.key(name), PutPayload::from(bytes), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(false),
            Err(e) => Err(self.failed(format!("writing {name}"))(e)),
        }
    }

    /// Check that the bucket refuses to overwrite an object written create-only: one probe
    /// object (named by a fresh random value) written twice with different bytes; the second
    /// must be refused and the first must stay.
    pub async fn check_create_only(&self) -> Result<()> {
        let mut r = [0u8; 16];
        getrandom::getrandom(&mut r)
            .map_err(|e| MirrorError::Damaged(format!("the OS random source: {e}")))?;
        let name = format!("probes/{}", sit_core::signing::hex(&r));
        if !self.put_once(&name, b"first".to_vec()).await? {
            return Err(MirrorError::Damaged(format!(
                "{}: a fresh probe object {name} was reported as existing",
                self.location
            )));
        }
        let second = self.put_once(&name, b"second".to_vec()).await?;
        let now = self.get(&name).await?;
        if second || &now[..] != b"first" {
            return Err(MirrorError::Damaged(format!(
                "{}: the server does not honour create-only writes (If-None-Match: *): a second write of {name} {}; a mirror there could be overwritten silently, so nothing is mirrored\n  hint: use a store that supports conditional writes (AWS S3 does, and so do recent MinIO and moto)",
                self.location,
                if second { "succeeded" } else { "changed its bytes" }
            )));
        }
        Ok(())
    }

    async fn latest_snapshot(&self) -> Result<Option<(u64, Snapshot)>> {
        let mut numbers: Vec<u64> = self
            .list("snapshots")
            .await?
            .iter()
            .filter_map(|n| n.strip_suffix(".json")?.parse().ok())
            .collect();
        numbers.sort_unstable();
        let Some(n) = numbers.last().copied() else {
            return Ok(None);
        };
        let name = snapshot_name(n);
        let bytes = self.get(&name).await?;
        let s: Snapshot = serde_json::from_slice(&bytes).map_err(|e| {
            MirrorError::Damaged(format!("{}: {name} is not a snapshot: {e}", self.location))
        })?;
        if s.schema != SNAPSHOT_SCHEMA {
            return Err(MirrorError::Damaged(format!(
                "{}: {name} has schema {:?}, this build reads {SNAPSHOT_SCHEMA}",
                self.location, s.schema
            )));
        }
        Ok(Some((n, s)))
    }

    /// The latest snapshot in the bucket, as last read.
    pub fn latest(&self) -> Option<&(u64, Snapshot)> {
        self.latest.as_ref()
    }

    /// Mirror `data`'s archive: every file not yet in the bucket as a blob (each write
    /// acknowledged before the next step), then a snapshot when the tree changed. An error
    /// leaves the bucket consistent (a snapshot only names acknowledged blobs); the next pass
    /// goes on from there.
    pub async fn pass(&mut self, data: &Path) -> Result<Pass> {
        let tree = self.tree(data)?;
        let mut out = Pass {
            files: tree.len(),
            ..Default::default()
        };
        for (rel, hash) in &tree {
            if self.known.contains(hash) {
                continue;
            }
            let path = data.join(rel);
            let bytes = std::fs::read(&path).map_err(|source| MirrorError::Io {
                path: path.clone(),
                source,
            })?;
            if blake3::hash(&bytes).to_hex().as_str() != hash {
                // changed since it was hashed (a log line appended): the next pass takes it
                self.hashed.remove(&path);
                continue;
            }
            let n = bytes.len() as u64;
            if self.put_once(&format!("blobs/{hash}"), bytes).await? {
                out.uploaded += 1;
                out.uploaded_bytes += n;
            }
            self.known.insert(hash.clone());
        }
        let tree: BTreeMap<String, String> = tree
            .into_iter()
            .filter(|(_, h)| self.known.contains(h))
            .collect();
        if self.latest.as_ref().is_some_and(|(_, s)| s.files == tree) {
            return Ok(out);
        }
        let snap = Snapshot {
            schema: SNAPSHOT_SCHEMA.into(),
            files: tree,
        };
        let bytes = serde_json::to_vec_pretty(&snap).expect("json");
        let mut n = self.latest.as_ref().map(|(n, _)| n + 1).unwrap_or(1);
        loop {
            if self.put_once(&snapshot_name(n), bytes.clone()).await? {
                break;
            }
            // another mirror wrote this number: the same tree is as good as ours
            if let Some((m, s)) = self.latest_snapshot().await? {
                if s == snap {
                    self.latest = Some((m, s));
                    return Ok(out);
                }
                n = n.max(m + 1);
            }
        }
        self.latest = Some((n, snap));
        out.snapshot = Some(n);
        Ok(out)
    }

    /// Every mirrored file of `data`, by relative path, with its blake3. Skipped: names that
    /// start with `.` (locks, partial bundles, files being written) and `*.tmp`.
    fn tree(&mut self, data: &Path) -> Result<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        let mut todo: Vec<PathBuf> = MIRRORED
            .iter()
            .map(|d| data.join(d))
            .filter(|d| d.is_dir())
            .collect();
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| MirrorError::Io { path, source }
        };
        while let Some(dir) = todo.pop() {
            for e in std::fs::read_dir(&dir).map_err(io(&dir))? {
                let e = e.map_err(io(&dir))?;
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') || name.ends_with(".tmp") {
                    continue;
                }
                let path = e.path();
                let meta = e.metadata().map_err(io(&path))?;
                if meta.is_dir() {
                    todo.push(path);
                    continue;
                }
                let stamp = (meta.len(), meta.modified().map_err(io(&path))?);
                let hash = match self.hashed.get(&path) {
                    Some((l, m, h)) if (*l, *m) == stamp => h.clone(),
                    _ => {
                        let bytes = std::fs::read(&path).map_err(io(&path))?;
                        let h = blake3::hash(&bytes).to_hex().to_string();
                        self.hashed
                            .insert(path.clone(), (stamp.0, stamp.1, h.clone()));
                        h
                    }
                };
                let rel = path
                    .strip_prefix(data)
                    .expect("under the data folder")
                    .to_string_lossy()
                    .replace('\\', "/");
                out.insert(rel, hash);
            }
        }
        Ok(out)
    }

    /// Write the latest snapshot's files whose path starts with `only` (all with "") under
    /// `out`, each checked against its name (blake3) as it is read. Returns the snapshot's
    /// number and the files written.
    pub async fn restore(&self, out: &Path, only: &str) -> Result<(u64, usize)> {
        let Some((n, snap)) = &self.latest else {
            return Err(MirrorError::Damaged(format!(
                "{}: no snapshot (nothing mirrored there yet)",
                self.location
            )));
        };
        let mut written = 0;
        for (rel, hash) in snap.files.iter().filter(|(p, _)| p.starts_with(only)) {
            let safe = !rel.is_empty()
                && !rel.starts_with('/')
                && rel
                    .split('/')
                    .all(|p| !p.is_empty() && p != "." && p != "..");
            if !safe {
                return Err(MirrorError::Damaged(format!(
                    "{}: {} names the path {rel:?}, outside a data folder",
                    self.location,
                    snapshot_name(*n)
                )));
            }
            let bytes = self.get(&format!("blobs/{hash}")).await?;
            let actual = blake3::hash(&bytes).to_hex().to_string();
            if &actual != hash {
                return Err(MirrorError::Damaged(format!(
                    "{}: blobs/{hash} (the mirror of {rel}) holds bytes whose blake3 is {actual}: the object was altered",
                    self.location
                )));
            }
            let path = out.join(rel);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|source| MirrorError::Io {
                    path: dir.to_path_buf(),
                    source,
                })?;
            }
            std::fs::write(&path, &bytes).map_err(|source| MirrorError::Io {
                path: path.clone(),
                source,
            })?;
            written += 1;
        }
        Ok((*n, written))
    }
}

fn snapshot_name(n: u64) -> String {
    format!("snapshots/{n:020}.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_with_the_fix_named() {
        assert_eq!(
            Location::parse("s3://sit-archive/oracle/eu/").unwrap(),
            Location {
                bucket: "sit-archive".into(),
                prefix: "oracle/eu".into()
            }
        );
        assert_eq!(Location::parse("s3://sit-archive").unwrap().prefix, "");
        for bad in [
            "sit-archive",
            "s3://",
            "s3://Upper",
            "s3://b",
            "s3://ok-name/../x",
        ] {
            let e = Location::parse(bad).unwrap_err().to_string();
            assert!(e.contains("s3://") || e.contains("prefix"), "{bad}: {e}");
        }
    }
}
