//! Every path under the data folder (`--data`, default `sit-data`; a worker's spool,
//! default `sit-spool`, has the same shape), named once:
//!
//! ```text
//! DATA/
//!   conf, db, blobs/        the observation store (sled's own files; crate::store)
//!   run-clock.json          the clock this folder was first run with (sit run, sit collect)
//!   run/secrets/DATE.json   a day's schedule seed and salt, mode 0600, revealed after the day
//!   published/              the publication archive (crate::archive::Archive)
//!     log.jsonl  .lock  TIER/DATE.vN.json  keys/ID.pem  commitments/DATE.{commit,reveal}.json
//!     settlements/CONTRACT/PERIOD[.indicative].json   (crate::archive::settlements)
//!     challenges.jsonl      certification challenges issued by the server
//!     register.jsonl        the oversight register: submissions, receipts, outcomes (crate::archive::register)
//!   archive/DATE/           a day's audit bundle (archive/.DATE.partial while written)
//!   vantages/VANTAGE/       a collector's archive of one vantage's commitments and reveals
//!   demo-key/               the demo's signing key (sit demo only)
//! ```

use sit_core::time::Date;
use std::path::{Path, PathBuf};

/// The folder the observation store (sled) opens: the data folder itself.
pub fn store(data: &Path) -> &Path {
    data
}

/// `DATA/run-clock.json`: the clock of the folder's timeline.
pub fn run_clock(data: &Path) -> PathBuf {
    data.join("run-clock.json")
}

/// `DATA/run/secrets/DATE.json`: the day's schedule secret (private until revealed).
pub fn day_secret(data: &Path, date: Date) -> PathBuf {
    data.join("run/secrets").join(format!("{date}.json"))
}

/// `DATA/published/`: the publication archive.
pub fn published(data: &Path) -> PathBuf {
    data.join("published")
}

/// The data folder of a publication archive at `DATA/published/` (`None` when the archive
/// is a folder of another name: served alone, with no bundles beside it).
pub fn data_of(published: &Path) -> Option<&Path> {
    (published.file_name()? == "published").then(|| published.parent())?
}

/// `DATA/archive/`: the audit bundles.
pub fn bundles(data: &Path) -> PathBuf {
    data.join("archive")
}

/// `DATA/archive/DATE/`: the audit bundle of a day.
pub fn bundle(data: &Path, date: Date) -> PathBuf {
    bundles(data).join(date.to_string())
}

/// `DATA/archive/.DATE.partial/`: a day's audit bundle while it is written.
pub fn bundle_partial(data: &Path, date: Date) -> PathBuf {
    bundles(data).join(format!(".{date}.partial"))
}

/// `DATA/vantages/`: the collector's per-vantage archives.
pub fn vantages(data: &Path) -> PathBuf {
    data.join("vantages")
}

/// `DATA/vantages/VANTAGE/`.
pub fn vantage(data: &Path, vantage: &str) -> PathBuf {
    vantages(data).join(vantage)
}

/// `DATA/demo-key/`: the key `sit demo` signs with.
pub fn demo_key(data: &Path) -> PathBuf {
    data.join("demo-key")
}

/// `published/challenges.jsonl` of an archive root: the certification challenges issued.
pub fn challenges(published: &Path) -> PathBuf {
    published.join("challenges.jsonl")
}
