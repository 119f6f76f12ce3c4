//! Audit bundles: everything needed to check one day's determinations on another machine,
//! with no access to our store.
//!
//! Layout of a bundle folder:
//! - `observations.jsonl`: the stored observation records, byte for byte, in chain order: the
//!   contiguous run of sequence numbers that covers the day, its trailing eligibility window
//!   and the six hours after it ([`LATE_PROBES_MS`]: the day's late probes), each with its raw
//!   evidence (request sent, response bytes compressed);
//! - `chain.json`: the hash the first record links to, and the last record's hash;
//! - `prices.json`: the price schedule of every endpoint in the records (as the book stands),
//!   from the entry in force when the bundle's first record was made (the whole schedule in
//!   bundles made before 2026-12-07);
//! - `price-excerpt.json` (methodology 1.4.0 and later, records that commit to an excerpt):
//!   the entries of the price book that any lookup of the bundle's records and
//!   determinations uses ([`sit_core::price::PriceExcerpt`]), with what they cover; each
//!   determination names the book version it costed from and the hash of its window's
//!   excerpt, which replay recomputes from this file, so a missing or altered entry is found;
//! - `price-book.json` (instead, for days whose records name no excerpt): the whole price
//!   book, every version of every schedule with when it was recorded;
//! - `suite.toml`, `suite.json`: the probe suite and its hash;
//! - `methodology.json`: the index parameters and their hash;
//! - `commitments/`: the schedule-seed commitment and reveal of the day (and the day before);
//!   on a probe network collector, each vantage's own (`DATE.VANTAGE.commit.json`), checked
//!   against that vantage's records;
//! - `determinations/`: every published version of the day's determinations (signed);
//! - `keys/`: the public keys that signed them (for a reader without the publisher's key;
//!   `sit audit verify --key ROOT` ignores them and follows the publisher's key set instead);
//! - `notices/` (bundles made from 2026-12-07): every notice the data folder had published
//!   when the bundle was made, byte for byte as signed: the key set followed from the pinned
//!   root, and the methodology and suite in force on the day;
//! - `manifest.json`: blake3 of every other file.

use crate::archive::{Archive, LogEntry};
use crate::store::Store;
use serde::{Deserialize, Serialize};
use sit_core::commit::{check_day, Commitment, Reveal};
use sit_core::index::{compute_day, day_window, DayInput, Determination, Methodology, Status};
use sit_core::observation::{FailureClass, Observation};
use sit_core::price::PriceSchedule;
use sit_core::price::{BookView, Cover, PriceBook, PriceExcerpt};
use sit_core::probes::{Family, Suite};
use sit_core::record::Publication;
use sit_core::time::{format_utc_ms, Date, DAY_MS, HOUR_MS};
use sit_core::versions::Registry;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const SCHEMA: &str = "sit-audit-bundle/1";

/// How long after its day a probe of the day is still looked for (sent late or retried): the
/// bundle's records reach this far past the day's end.
pub const LATE_PROBES_MS: i64 = 6 * HOUR_MS;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Bundle(String),
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
    move |source| AuditError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub schema: String,
    pub date: Date,
    pub created_at: String,
    pub sit_version: String,
    /// Relative path -> blake3 hex.
    pub files: BTreeMap<String, String>,
    /// Records of the day stored after its (first) determination read the store (a late
    /// vantage's): in the bundle, not the inputs of a record that read less (absent when none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub late_records: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Where the bundle's records sit in the store's chains: `seq` is global and contiguous here;
/// each worker's records link to that worker's previous record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Chain {
    pub first_seq: u64,
    pub last_seq: u64,
    /// Per worker: the hash its first record in the bundle links to.
    pub anchors: BTreeMap<String, String>,
    /// Per worker: the hash of its last record in the bundle.
    pub heads: BTreeMap<String, String>,
}

/// The window of records a day's determination reads.
fn hex32(h: &[u8; 32]) -> String {
    blake3::Hash::from(*h).to_hex().to_string()
}

/// What an export wrote.
#[derive(Debug)]
pub struct Exported {
    pub observations: usize,
    pub determinations: usize,
    pub files: usize,
    /// Records of the day stored after it was determined ([`Manifest::late_records`]).
    pub late_records: u64,
}

/// Write the bundle of `date` into `out` (created; must be empty or absent).
///
/// The bundle carries the methodology and suite the day's published records name (looked up
/// by hash in `versions`), so a day made under older rules replays under those rules; a day
/// not yet published is exported with the current versions.
pub fn export(
    store: &Store,
    archive: &Archive,
    versions: &Registry,
    date: Date,
    out: &Path,
    now_ms: i64,
) -> Result<Exported, AuditError> {
    if out.exists() && std::fs::read_dir(out).map_err(io(out))?.next().is_some() {
        return Err(AuditError::Bundle(format!(
            "{} is not empty; choose a new folder for the bundle",
            out.display()
        )));
    }
    let entries = archive
        .entries()
        .map_err(|e| AuditError::Bundle(e.to_string()))?;
    let (m, suite) = day_versions(store, archive, &entries, versions, date)?;
    let (from, to) = day_window(&m, date);
    // The window, plus the first hours after the day: a probe of the day's last minutes may
    // be sent (or retried) well after midnight on a loaded machine (on a compressed clock an
    // hour is a fraction of a second), and the commitment check needs it to account for every
    // scheduled probe (the determination's inputs stay the window's; replay filters them).
    // The bundle holds the contiguous run of seqs that covers them (with whatever else was
    // stored in between, such as a late vantage's records), read by seq: the export reads the
    // run, never the whole store.
    //
    // Records stored after the day was determined (a late vantage's, a probe finished after
    // the determination) are not its inputs: every record published since it was recorded
    // says how far into the store it read (`read_below_seq`), and replay and verify leave
    // out what was stored later. They stay in the bundle (the commitment check accounts for
    // every scheduled probe) and are counted as late.
    let read_below = day_records(archive, &entries, date)?
        .iter()
        .filter_map(|p| p.determination.read_below_seq)
        .min();
    let (mut lo, mut hi, mut late) = (u64::MAX, 0u64, 0u64);
    for r in store.scan_raw(from, to + LATE_PROBES_MS) {
        let r = r?;
        if read_below.is_some_and(|b| r.seq >= b) && r.at_ms < to {
            late += 1;
        }
        lo = lo.min(r.seq);
        hi = hi.max(r.seq);
    }
    if lo > hi {
        return Err(AuditError::Bundle(format!(
            "no observations stored for {date} or its trailing window"
        )));
    }
    let mut run: Vec<(u64, [u8; 32], Observation)> = Vec::new();
    let mut lines = Vec::new();
    for raw in store.records_by_seq(lo, hi)? {
        let (seq, hash) = (raw.seq, raw.hash);
        let bytes = raw.bytes().to_vec();
        let o = raw.parse()?.obs;
        if blake3::hash(&bytes).as_bytes() != &hash
            || serde_json::to_vec(&o).expect("observation serialises") != bytes
        {
            return Err(AuditError::Bundle(format!(
                "stored record seq {seq} does not re-serialise to its hashed bytes"
            )));
        }
        lines.extend_from_slice(&bytes);
        lines.push(b'\n');
        run.push((seq, hash, o));
    }
    if run.len() as u64 != hi - lo + 1 {
        return Err(AuditError::Bundle(format!(
            "the store holds {} of the records seq {lo}..={hi}: the chain has a gap",
            run.len()
        )));
    }
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    files.insert("observations.jsonl".into(), lines);
    let mut anchors = BTreeMap::new();
    let mut heads = BTreeMap::new();
    for (_, hash, o) in &run {
        anchors
            .entry(o.worker.clone())
            .or_insert_with(|| o.prev_hash.clone());
        heads.insert(o.worker.clone(), hex32(hash));
    }
    let chain = Chain {
        first_seq: lo,
        last_seq: hi,
        anchors,
        heads,
    };
    let json = |v: &dyn erased::Ser| v.pretty();
    files.insert("chain.json".into(), json(&chain));
    // The book read once. What of it the bundle carries: when every record of the day
    // commits to its window's excerpt (and every observation names its book version), the
    // entries any lookup of the bundle needs; otherwise the whole book, as before.
    let book = store.book()?;
    let mut used: Vec<sit_core::index::PricesUsed> = Vec::new();
    for p in day_records(archive, &entries, date)? {
        used.extend(p.determination.prices);
    }
    let versions_of = |o: &Observation| o.price_version.unwrap_or_else(|| book.version_at(o.at_ms));
    let cover = Cover {
        from_ms: run
            .iter()
            .map(|r| r.2.at_ms)
            .min()
            .unwrap_or(from)
            .min(from),
        to_ms: run
            .iter()
            .map(|r| r.2.at_ms + 1)
            .max()
            .unwrap_or(to)
            .max(to),
        min_version: run
            .iter()
            .map(|r| versions_of(&r.2))
            .chain(used.iter().map(|u| u.version))
            .min()
            .unwrap_or(book.version()),
        max_version: used
            .iter()
            .map(|u| u.version)
            .chain(run.iter().map(|r| versions_of(&r.2)))
            .max()
            .unwrap_or(book.version()),
    };
    let excerpt = book.excerpt(cover);
    // each endpoint's schedule as the book stands, from the entry in force at the cover's start
    let latest = book.excerpt(Cover {
        min_version: book.version(),
        max_version: book.version(),
        ..cover
    });
    let mut prices: BTreeMap<String, PriceSchedule> = BTreeMap::new();
    for (_, _, o) in &run {
        if !prices.contains_key(&o.endpoint) {
            let s = latest.schedule(&o.endpoint, book.version());
            prices.insert(o.endpoint.clone(), s);
        }
    }
    files.insert("prices.json".into(), json(&prices));
    if m.costs_at_determination {
        let committed = used.iter().all(|u| u.excerpt.is_some())
            && run.iter().all(|r| r.2.price_version.is_some());
        if committed {
            files.insert("price-excerpt.json".into(), json(&excerpt));
        } else {
            // every version of every schedule: each determination names the version it used
            files.insert("price-book.json".into(), json(&*book));
        }
    }
    files.insert("suite.toml".into(), suite.source.as_bytes().to_vec());
    files.insert(
        "suite.json".into(),
        json(&serde_json::json!({"version": suite.version, "hash": suite.hash})),
    );
    files.insert(
        "methodology.json".into(),
        json(&serde_json::json!({"version": m.version, "hash": m.hash(), "parameters": m})),
    );
    for d in [date.pred(), date] {
        if let Some(c) = archive.commitment(d) {
            files.insert(format!("commitments/{d}.commit.json"), json(&c));
        }
        if let Some(r) = archive.reveal(d) {
            files.insert(format!("commitments/{d}.reveal.json"), json(&r));
        }
        // a probe network collector files each vantage's in DATA/vantages/VANTAGE/
        for (v, a) in crate::archive::vantages::all(store.path()) {
            if let Some(c) = a.commitment(d) {
                files.insert(format!("commitments/{d}.{v}.commit.json"), json(&c));
            }
            if let Some(r) = a.reveal(d) {
                files.insert(format!("commitments/{d}.{v}.reveal.json"), json(&r));
            }
        }
    }
    let mut determinations = 0;
    for e in entries.iter().filter(|e| e.date == date) {
        let bytes = archive
            .read(e)
            .map_err(|x| AuditError::Bundle(x.to_string()))?;
        files.insert(
            format!("determinations/{}.v{}.json", e.tier, e.version),
            bytes,
        );
        if let Some(pem) = archive.key_pem(&e.key_id) {
            files.insert(
                format!("keys/{}.pem", e.key_id.replace(':', "-")),
                pem.into_bytes(),
            );
        }
        determinations += 1;
    }
    // The record in force of each tier's latest earlier day: a chained determination starts
    // from the state it hands on, and `verify` checks that link.
    let forced = crate::archive::in_force(&entries);
    let tiers: std::collections::BTreeSet<&str> = entries
        .iter()
        .filter(|e| e.date == date)
        .map(|e| e.tier.as_str())
        .collect();
    for tier in tiers {
        if let Some(e) = forced
            .iter()
            .filter(|((t, d), _)| t == tier && *d < date)
            .map(|(_, e)| *e)
            .next_back()
        {
            let bytes = archive
                .read(e)
                .map_err(|x| AuditError::Bundle(x.to_string()))?;
            files.insert(format!("previous/{tier}.json"), bytes);
            if let Some(pem) = archive.key_pem(&e.key_id) {
                files.insert(
                    format!("keys/{}.pem", e.key_id.replace(':', "-")),
                    pem.into_bytes(),
                );
            }
        }
    }
    for n in crate::archive::notices::all(archive.root())
        .map_err(|x| AuditError::Bundle(x.to_string()))?
    {
        files.insert(format!("notices/{}.json", n.notice.id), n.bytes);
    }
    let manifest = Manifest {
        schema: SCHEMA.into(),
        date,
        created_at: format_utc_ms(now_ms),
        sit_version: env!("CARGO_PKG_VERSION").into(),
        files: files
            .iter()
            .map(|(k, v)| (k.clone(), blake3::hash(v).to_hex().to_string()))
            .collect(),
        late_records: late,
    };
    files.insert("manifest.json".into(), json(&manifest));
    for (name, bytes) in &files {
        let p = out.join(name);
        let dir = p.parent().expect("in the bundle");
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        std::fs::write(&p, bytes).map_err(io(&p))?;
    }
    Ok(Exported {
        observations: run.len(),
        determinations,
        files: files.len(),
        late_records: late,
    })
}

/// The methodology and suite `date` was made with: the ones its published records name, or
/// the current ones when nothing is published yet.
/// The published records of `date`, read from the archive and parsed, in the log's order.
fn day_records(
    archive: &Archive,
    entries: &[LogEntry],
    date: Date,
) -> Result<Vec<sit_core::record::Publication>, AuditError> {
    entries
        .iter()
        .filter(|e| e.date == date)
        .map(|e| {
            let bytes = archive
                .read(e)
                .map_err(|x| AuditError::Bundle(x.to_string()))?;
            sit_core::record::parse(&bytes)
                .map_err(|x| AuditError::Bundle(format!("{}: {x}", e.file)))
        })
        .collect()
}

fn day_versions<'v>(
    store: &Store,
    archive: &Archive,
    entries: &[LogEntry],
    versions: &'v Registry,
    date: Date,
) -> Result<(Methodology, &'v Suite), AuditError> {
    let mut named = std::collections::BTreeSet::new();
    for p in day_records(archive, entries, date)? {
        named.insert((p.determination.methodology_hash, p.determination.suite_hash));
    }
    let version = |e: sit_core::versions::VersionError| AuditError::Bundle(e.to_string());
    match named.len() {
        0 => Ok((
            versions.current_methodology().clone(),
            crate::determine::day_suite(
                store,
                versions,
                archive.commitment(date).as_ref().map(|c| c.suite_hash.as_str()),
                date,
            )?,
        )),
        1 => {
            let (mh, sh) = named.into_iter().next().expect("one");
            Ok((
                versions.methodology(&mh).map_err(version)?.clone(),
                versions.suite(&sh).map_err(version)?,
            ))
        }
        _ => Err(AuditError::Bundle(format!(
            "the records published for {date} name more than one (methodology, suite): {named:?}; export each version apart"
        ))),
    }
}

/// Pretty JSON of anything serialisable, without generic plumbing at every call.
mod erased {
    pub trait Ser {
        fn pretty(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Ser for T {
        fn pretty(&self) -> Vec<u8> {
            let mut v = serde_json::to_vec_pretty(self).expect("serialises");
            v.push(b'\n');
            v
        }
    }
}

/// A bundle read from disk.
pub struct Bundle {
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// (line bytes, record hash, parsed record), in file order.
    pub records: Vec<(Vec<u8>, [u8; 32], Observation)>,
    pub chain: Chain,
    pub prices: BTreeMap<String, PriceSchedule>,
    /// The price book (bundles of methodology 1.4.0 and later whose records name no
    /// excerpt).
    pub book: Option<PriceBook>,
    /// The part of the price book the bundle needs (bundles whose records name an excerpt).
    pub excerpt: Option<PriceExcerpt>,
    pub suite: Suite,
    pub methodology: Methodology,
    pub commitments: BTreeMap<Date, (Option<Commitment>, Option<Reveal>)>,
    /// Probe network bundles: each vantage's commitments and reveals.
    pub vantage_commitments: BTreeMap<String, Schedules>,
    /// (file name, bytes).
    pub determinations: Vec<(String, Vec<u8>)>,
    /// (file name, bytes): each tier's record in force of the latest earlier day (absent in
    /// bundles made before methodology 1.1, and where a chain starts).
    pub previous: Vec<(String, Vec<u8>)>,
    /// (file name, PEM).
    pub keys: Vec<(String, String)>,
    /// (file name, signed bytes): the notices, in id order (bundles made from 2026-12-07).
    pub notices: Vec<(String, Vec<u8>)>,
    /// The publisher's key set followed from a pinned root ([`Bundle::pin`]): when set,
    /// every signature is checked against it and the bundled `keys/` are not trusted.
    pub pinned: Option<sit_core::keyset::KeySet>,
}

fn read(dir: &Path, name: &str) -> Result<Vec<u8>, AuditError> {
    let p = dir.join(name);
    std::fs::read(&p).map_err(io(&p))
}

fn parse<T: serde::de::DeserializeOwned>(dir: &Path, name: &str) -> Result<T, AuditError> {
    serde_json::from_slice(&read(dir, name)?)
        .map_err(|e| AuditError::Bundle(format!("{name}: {e}")))
}

fn list(dir: &Path, sub: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir.join(sub))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| format!("{sub}/{}", e.file_name().to_string_lossy()))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

impl Bundle {
    pub fn load(dir: &Path) -> Result<Bundle, AuditError> {
        let manifest: Manifest = parse(dir, "manifest.json")?;
        if manifest.schema != SCHEMA {
            return Err(AuditError::Bundle(format!(
                "manifest schema `{}` is not {SCHEMA}",
                manifest.schema
            )));
        }
        let text = read(dir, "observations.jsonl")?;
        let mut records = Vec::new();
        for (i, line) in text.split(|b| *b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            let o: Observation = serde_json::from_slice(line).map_err(|e| {
                AuditError::Bundle(format!("observations.jsonl line {}: {e}", i + 1))
            })?;
            records.push((line.to_vec(), *blake3::hash(line).as_bytes(), o));
        }
        let suite_text = String::from_utf8(read(dir, "suite.toml")?)
            .map_err(|_| AuditError::Bundle("suite.toml is not UTF-8".into()))?;
        let suite = Suite::parse(&suite_text)
            .map_err(|e| AuditError::Bundle(format!("suite.toml: {e}")))?;
        #[derive(Deserialize)]
        struct M {
            parameters: Methodology,
        }
        let methodology = parse::<M>(dir, "methodology.json")?.parameters;
        let mut commitments: Schedules = BTreeMap::new();
        let mut vantage_commitments: BTreeMap<String, Schedules> = BTreeMap::new();
        for f in list(dir, "commitments") {
            // commitments/DATE.commit.json, or DATE.VANTAGE.commit.json for a vantage's
            let stem = f
                .trim_start_matches("commitments/")
                .trim_end_matches(".commit.json")
                .trim_end_matches(".reveal.json");
            let to = match stem.split_once('.') {
                Some((_, v)) => vantage_commitments.entry(v.to_string()).or_default(),
                None => &mut commitments,
            };
            if f.ends_with(".commit.json") {
                let c: Commitment = parse(dir, &f)?;
                let d = c.date;
                to.entry(d).or_default().0 = Some(c);
            } else if f.ends_with(".reveal.json") {
                let r: Reveal = parse(dir, &f)?;
                let d = r.date;
                to.entry(d).or_default().1 = Some(r);
            }
        }
        let mut determinations = Vec::new();
        for f in list(dir, "determinations") {
            determinations.push((f.clone(), read(dir, &f)?));
        }
        let mut previous = Vec::new();
        for f in list(dir, "previous") {
            previous.push((f.clone(), read(dir, &f)?));
        }
        let mut keys = Vec::new();
        for f in list(dir, "keys") {
            let pem = String::from_utf8(read(dir, &f)?)
                .map_err(|_| AuditError::Bundle(format!("{f} is not UTF-8")))?;
            keys.push((f, pem));
        }
        let mut notices = Vec::new();
        for f in list(dir, "notices") {
            notices.push((f.clone(), read(dir, &f)?));
        }
        Ok(Bundle {
            notices,
            pinned: None,
            dir: dir.to_path_buf(),
            chain: parse(dir, "chain.json")?,
            prices: parse(dir, "prices.json")?,
            book: if dir.join("price-book.json").exists() {
                Some(parse(dir, "price-book.json")?)
            } else {
                None
            },
            excerpt: if dir.join("price-excerpt.json").exists() {
                Some(parse(dir, "price-excerpt.json")?)
            } else {
                None
            },
            manifest,
            records,
            suite,
            methodology,
            commitments,
            vantage_commitments,
            determinations,
            previous,
            keys,
        })
    }

    /// The chain: records in sequence order, contiguous, each linking to the one before.
    /// Names the first record that breaks it.
    pub fn check_chain(&self) -> Result<(), String> {
        let mut last: BTreeMap<&str, (String, Option<u64>)> = self
            .chain
            .anchors
            .iter()
            .map(|(w, a)| (w.as_str(), (a.clone(), None)))
            .collect();
        let mut expect = self.chain.first_seq;
        for (i, (_, hash, o)) in self.records.iter().enumerate() {
            let line = i + 1;
            if o.seq != expect {
                return Err(if o.seq > expect {
                    format!("observations.jsonl line {line}: seq {} follows seq {}: record {expect} is missing (deleted)", o.seq, expect.wrapping_sub(1))
                } else {
                    format!("observations.jsonl line {line}: seq {} is out of order or duplicated (expected {expect}): records were reordered or inserted", o.seq)
                });
            }
            let Some((prev_hash, prev_seq)) = last.get_mut(o.worker.as_str()) else {
                return Err(format!(
                    "observations.jsonl line {line}: seq {} names worker `{}`, which has no chain in this bundle: inserted",
                    o.seq, o.worker
                ));
            };
            if &o.prev_hash != prev_hash {
                return Err(match prev_seq {
                    None => format!(
                        "observations.jsonl line {line}: seq {} does not link to worker `{}`'s chain anchor",
                        o.seq, o.worker
                    ),
                    Some(p) => format!(
                        "observations.jsonl line {line}: seq {} does not link to seq {p}: seq {p} was altered, or this record was inserted",
                        o.seq
                    ),
                });
            }
            *prev_hash = hex32(hash);
            *prev_seq = Some(o.seq);
            expect += 1;
        }
        if expect.wrapping_sub(1) != self.chain.last_seq {
            return Err(format!(
                "the records end at seq {}, chain.json says {}: records were removed or added at the end",
                expect.wrapping_sub(1),
                self.chain.last_seq
            ));
        }
        for (w, (h, _)) in &last {
            if self.chain.heads.get(*w) != Some(h) {
                return Err(format!(
                    "worker `{w}`'s last record hashes to {h}, chain.json says {}: its last record was altered",
                    self.chain.heads.get(*w).map(String::as_str).unwrap_or("nothing")
                ));
            }
        }
        Ok(())
    }

    /// Every file listed in the manifest has its hash; no file is unlisted.
    pub fn check_manifest(&self) -> Result<(), String> {
        let mut present = Vec::new();
        for sub in [
            "",
            "commitments",
            "determinations",
            "keys",
            "previous",
            "notices",
        ] {
            if sub.is_empty() {
                for e in std::fs::read_dir(&self.dir).map_err(|e| e.to_string())? {
                    let e = e.map_err(|e| e.to_string())?;
                    if e.file_type().map(|t| t.is_file()).unwrap_or(false) {
                        present.push(e.file_name().to_string_lossy().to_string());
                    }
                }
            } else {
                present.extend(list(&self.dir, sub));
            }
        }
        for (name, want) in &self.manifest.files {
            let got = std::fs::read(self.dir.join(name))
                .map(|b| blake3::hash(&b).to_hex().to_string())
                .map_err(|_| format!("{name} is listed in the manifest but missing"))?;
            if &got != want {
                return Err(format!("{name}: blake3 {got}, the manifest says {want}"));
            }
        }
        for p in present {
            if p != "manifest.json" && !self.manifest.files.contains_key(&p) {
                return Err(format!("{p} is not in the manifest (added to the bundle)"));
            }
        }
        Ok(())
    }

    /// The published determinations, verified against the bundled keys.
    pub fn publications(&self) -> Result<Vec<(String, Publication, Vec<u8>)>, String> {
        self.verified(&self.determinations)
    }

    /// The previous days' records (see [`Bundle::previous`]), each verified like
    /// [`Bundle::publications`].
    pub fn previous_publications(&self) -> Result<Vec<(String, Publication, Vec<u8>)>, String> {
        self.verified(&self.previous)
    }

    /// Trust the publisher's key set followed from `root` (the key its genesis notice names,
    /// obtained out of band) through the bundle's notices, not the keys the bundle carries.
    pub fn pin(&mut self, root: &ed25519_dalek::VerifyingKey) -> Result<(), String> {
        let notices: Vec<Vec<u8>> = self.notices.iter().map(|(_, b)| b.clone()).collect();
        self.pinned =
            Some(sit_core::keyset::KeySet::follow(root, &notices).map_err(|e| e.to_string())?);
        Ok(())
    }

    /// The notices the bundle carries, parsed (their signatures are checked by [`Bundle::pin`]).
    pub fn parsed_notices(&self) -> Result<Vec<sit_core::notice::Notice>, String> {
        self.notices
            .iter()
            .map(|(f, b)| crate::archive::notices::parse(b).map_err(|e| format!("{f}: {e}")))
            .collect()
    }

    /// With a pinned key set and notices: each record was made under the methodology and
    /// suite the notices put in force at its day's start, and signed by a key of the set
    /// valid when it was published (checked by [`Bundle::publications`]).
    pub fn check_in_force(&self) -> Result<(), String> {
        if self.pinned.is_none() || self.notices.is_empty() {
            return Ok(());
        }
        let notices = self.parsed_notices()?;
        for (name, p, _) in self.publications()? {
            let d = &p.determination;
            let state = sit_core::notice::State::at(&notices, d.date.start_ms())?;
            if let Some((h, v)) = &state.methodology {
                if *h != d.methodology_hash {
                    return Err(format!(
                        "{name}: made under methodology {} ({}), the notices put {v} ({h}) in force on {}",
                        d.methodology_version, d.methodology_hash, d.date
                    ));
                }
            }
            if let Some((h, v)) = &state.suite {
                if *h != d.suite_hash {
                    return Err(format!(
                        "{name}: made with probe suite {}, the notices put {v} ({h}) in force on {}",
                        d.suite_hash, d.date
                    ));
                }
            }
            if state.ceased.contains(&d.tier) {
                return Err(format!(
                    "{name}: tier {} had ceased by {} (a notice)",
                    d.tier, d.date
                ));
            }
        }
        Ok(())
    }

    /// With a pinned key set: the publisher's own schedule commitments and reveals of the
    /// bundle are signed by a key of the set valid when they were made. One made after the
    /// folder's genesis notice must be signed (this build signs them); one made before is
    /// unsigned (`Ok` says how many). A vantage's documents are its worker's, not checked here.
    pub fn check_schedule_signatures(&self) -> Result<(usize, usize), String> {
        let Some(set) = &self.pinned else {
            return Ok((0, 0));
        };
        let genesis_ms = self
            .parsed_notices()?
            .first()
            .and_then(|n| sit_core::time::parse_utc_ms(&n.published_at).ok());
        let (mut signed, mut unsigned) = (0, 0);
        let mut check = |what: String,
                         bytes: Vec<u8>,
                         has_sig: bool,
                         made: &str|
         -> Result<(), String> {
            if has_sig {
                set.verify(&bytes).map_err(|e| format!("{what}: {e}"))?;
                signed += 1;
                return Ok(());
            }
            let made_ms = sit_core::time::parse_utc_ms(made).map_err(|e| format!("{what}: {e}"))?;
            if genesis_ms.is_some_and(|g| made_ms >= g) {
                return Err(format!(
                    "{what} is not signed, though it was made at {made}, after the folder's genesis notice (a signature was stripped, or it was not made by the publisher)"
                ));
            }
            unsigned += 1;
            Ok(())
        };
        for (d, (c, r)) in &self.commitments {
            if let Some(c) = c {
                check(
                    format!("the commitment of {d}"),
                    sit_core::commit::bytes(c),
                    c.signature.is_some(),
                    &c.committed_at,
                )?;
            }
            if let Some(r) = r {
                check(
                    format!("the reveal of {d}"),
                    sit_core::commit::bytes(r),
                    r.signature.is_some(),
                    &r.revealed_at,
                )?;
            }
        }
        Ok((signed, unsigned))
    }

    /// The public key a signed document names (`key_id`), from the bundle's own `keys/`.
    fn own_key(&self, doc: &serde_json::Value) -> Result<ed25519_dalek::VerifyingKey, String> {
        let kid = doc["key_id"].as_str().unwrap_or("").replace(':', "-");
        let pem = self
            .keys
            .iter()
            .find(|(f, _)| f == &format!("keys/{kid}.pem"))
            .map(|(_, p)| p)
            .ok_or_else(|| format!("its public key {kid} is not in the bundle"))?;
        sit_core::signing::parse_public(pem).map_err(|e| e.to_string())
    }

    /// Check each signed record with the key it names: from the pinned key set when there is
    /// one (valid at the record's `published_at`), else from the bundle's own `keys/`.
    fn verified(
        &self,
        records: &[(String, Vec<u8>)],
    ) -> Result<Vec<(String, Publication, Vec<u8>)>, String> {
        let mut out = Vec::new();
        for (name, bytes) in records {
            if let Some(set) = &self.pinned {
                let (_, k) = set.verify(bytes).map_err(|e| format!("{name}: {e}"))?;
                let ver = sit_core::record::verify(bytes, k.verifying_key())
                    .map_err(|e| format!("{name}: {e}"))?;
                out.push((name.clone(), ver.publication, ver.signed_bytes));
                continue;
            }
            let v: serde_json::Value =
                serde_json::from_slice(bytes).map_err(|e| format!("{name}: {e}"))?;
            let vk = self.own_key(&v).map_err(|e| format!("{name}: {e}"))?;
            let ver = sit_core::record::verify(bytes, &vk).map_err(|e| format!("{name}: {e}"))?;
            out.push((name.clone(), ver.publication, ver.signed_bytes));
        }
        Ok(out)
    }

    /// The commitment check of the bundle's day: the reveal matches the commitment and every
    /// probe of the day comes from the schedule it fixes (none missing, none added). On a
    /// probe network (no commitment of its own, one per vantage) the check runs per vantage
    /// on that vantage's records, and every record of the day must belong to one of them.
    pub fn check_commitment(&self) -> Result<(), String> {
        let day = self.manifest.date;
        let has = |s: &Schedules| s.get(&day).is_some_and(|(c, _)| c.is_some());
        if has(&self.commitments) || !self.vantage_commitments.values().any(has) {
            return self.check_schedule(&self.commitments, |_| true);
        }
        for (v, s) in &self.vantage_commitments {
            self.check_schedule(s, |o| o.vantage.as_deref() == Some(v.as_str()))
                .map_err(|e| format!("vantage {v}: {e}"))?;
        }
        let day_end = day.start_ms() + DAY_MS;
        if let Some(o) = self.records.iter().map(|r| &r.2).find(|o| {
            o.at_ms >= day.start_ms()
                && o.at_ms < day_end
                && o.suite_hash == self.suite.hash
                && !o
                    .vantage
                    .as_ref()
                    .is_some_and(|v| self.vantage_commitments.get(v).is_some_and(has))
        }) {
            return Err(format!(
                "observation seq {} is of {}, which has no commitment for {day}",
                o.seq,
                o.vantage
                    .as_deref()
                    .map(|v| format!("vantage {v}"))
                    .unwrap_or_else(|| "no vantage".into())
            ));
        }
        Ok(())
    }

    /// [`Bundle::check_commitment`] for one set of schedules and the records `mine` selects.
    fn check_schedule(
        &self,
        schedules: &Schedules,
        mine: impl Fn(&Observation) -> bool,
    ) -> Result<(), String> {
        let day = self.manifest.date;
        let (Some(c), Some(r)) = schedules
            .get(&day)
            .map(|(c, r)| (c.clone(), r.clone()))
            .unwrap_or((None, None))
        else {
            return Err(format!(
                "{day}: no schedule commitment and reveal in the bundle"
            ));
        };
        // Spill-over records are matched when they belong to the day, ignored otherwise.
        let keys: std::collections::BTreeSet<(u64, String)> = r
            .seed_u64()
            .map(|s| {
                c.slots(&self.suite, s)
                    .into_iter()
                    .map(|s| (s.seed, s.nonce))
                    .collect()
            })
            .unwrap_or_default();
        // One of the previous day's last probes, or its retry, can be sent well after midnight
        // (a Retry-After, a loaded machine, a compressed clock where a minute is milliseconds):
        // it belongs to the previous day's schedule (committed and revealed in this bundle
        // too), not to this one's.
        let previous: std::collections::BTreeSet<(u64, String)> = schedules
            .get(&day.pred())
            .and_then(|(c, r)| {
                let (c, r) = (c.clone()?, r.as_ref()?);
                let (seed, salt) = (r.seed_u64()?, r.salt_bytes()?);
                // only a reveal that opens its commitment counts
                (sit_core::commit::commitment_of(c.date, seed, &salt) == c.commitment)
                    .then_some((c, seed))
            })
            .map(|(c, s)| {
                c.slots(&self.suite, s)
                    .into_iter()
                    .map(|s| (s.seed, s.nonce))
                    .collect()
            })
            .unwrap_or_default();
        let candidates = day_candidates(
            self.records
                .iter()
                .map(|r| &r.2)
                .filter(|o| o.suite_hash == self.suite.hash && mine(o)),
            day,
            &keys,
            &previous,
        );
        check_day(&self.suite, &c, &r, &candidates)
    }
}

/// Commitments and reveals by day.
pub type Schedules = BTreeMap<Date, (Option<Commitment>, Option<Reveal>)>;

/// The records a day's schedule is checked against: those sent within the day, and those
/// sent in its first minute or after it (spill-over) whose (seed, nonce) the day's schedule
/// holds (`keys`); a record of the previous day's schedule (`previous`) sent in the day
/// belongs to that day. In recording order (seq), so that a probe sent in the first minute
/// and retried after it is seen before its retry.
fn day_candidates<'a>(
    records: impl Iterator<Item = &'a Observation>,
    day: Date,
    keys: &std::collections::BTreeSet<(u64, String)>,
    previous: &std::collections::BTreeSet<(u64, String)>,
) -> Vec<&'a Observation> {
    let mut out: Vec<&Observation> = records
        .filter(|o| o.at_ms >= day.start_ms())
        .filter(|o| {
            let k = (o.seed, o.nonce.clone());
            let in_day = o.at_ms >= day.start_ms() + 60_000 && o.at_ms < day.start_ms() + DAY_MS;
            if in_day {
                !(previous.contains(&k) && !keys.contains(&k))
            } else {
                keys.contains(&k)
            }
        })
        .collect();
    out.sort_by_key(|o| o.seq);
    out
}

/// One re-derived observation that disagrees with its record.
fn rederive(b: &Bundle, o: &Observation) -> Result<Observation, String> {
    let at = |what: String| format!("seq {}: {what}", o.seq);
    let tier = b
        .suite
        .tier(&o.tier)
        .ok_or_else(|| at(format!("tier `{}` is not in the suite", o.tier)))?;
    let family =
        Family::from_id(&o.family).ok_or_else(|| at(format!("unknown family {}", o.family)))?;
    let m = &b.methodology;
    let inst = b
        .suite
        .instance(tier, family, o.seed, m.sit_w_in, m.sit_w_out);
    if o.missed() {
        // A probe never sent has nothing to re-derive: it must say so in every field (no
        // response, no answer, no cost, nothing delivered) and name the probe's size.
        let mut r = o.clone();
        r.http_status = None;
        r.timings = Default::default();
        r.answer = String::new();
        r.finish_reason = None;
        r.server_model = None;
        r.correct = false;
        r.within_sla = false;
        r.tokens = Default::default();
        r.price = None;
        r.cost = sit_core::fixed::Pusd::ZERO;
        r.sit_size = inst.sit_size;
        r.delivered_sit = 0;
        r.evidence = None;
        r.retry = 0;
        return Ok(r);
    }
    // The price the attempt was probed under: the book at the version the record names (else
    // as it stood when the attempt was sent), or the schedule of a bundle without a book.
    let from_book = match (&b.excerpt, &b.book) {
        (Some(ex), _) => {
            let v = o.price_version.ok_or_else(|| {
                at("names no price book version, and the bundle carries no whole book".into())
            })?;
            if !ex.cover.covers(o.at_ms, v) {
                return Err(at(format!(
                    "the bundle's prices cover {} to {} ms at book versions {} to {}, not {} at version {v}: an entry it needs is missing",
                    ex.cover.from_ms, ex.cover.to_ms, ex.cover.min_version, ex.cover.max_version, o.at_ms
                )));
            }
            Some(ex.schedule(&o.endpoint, v))
        }
        (None, Some(book)) => {
            let v = o.price_version.unwrap_or_else(|| book.version_at(o.at_ms));
            Some(book.schedule(&o.endpoint, v))
        }
        (None, None) => None,
    };
    let price = from_book
        .as_ref()
        .or_else(|| b.prices.get(&o.endpoint))
        .and_then(|s| s.in_force(o.at_ms))
        .ok_or_else(|| at(format!("no price of {} in force", o.endpoint)))?;
    let ev = o
        .evidence
        .as_ref()
        .ok_or_else(|| at("no raw evidence recorded".into()))?;
    if ev.withheld.is_some() {
        // No body to re-derive from (it carried the API key): the figures stand as
        // recorded, and the replay counts such records (`evidence_withheld`).
        return Ok(o.clone());
    }
    let req: serde_json::Value =
        serde_json::from_str(&ev.request).map_err(|e| at(format!("request evidence: {e}")))?;
    let dialect: crate::config::Dialect =
        serde_json::from_value(serde_json::Value::String(o.dialect.clone()))
            .map_err(|e| at(format!("dialect: {e}")))?;
    let (system, user) = dialect.request_texts(&req);
    // The text besides the prompt, counted in the reference input tokens. Suite 1.0.0 checks
    // the user message (its system line was free text with the nonce); from 1.1.0 the whole
    // request is the suite's framing of the probe, nonce and try.
    let framing = match b.suite.probe_text {
        sit_core::probes::ProbeText::Fixed => {
            if user != inst.generated.prompt {
                return Err(at(
                    "the request sent is not the probe (family, seed) generates".into(),
                ));
            }
            system
        }
        sit_core::probes::ProbeText::Varied => {
            let want = b.suite.request(&inst, &o.nonce, o.retry);
            if want.system.as_deref().unwrap_or("") != system || want.user != user {
                return Err(at(
                    "the request sent is not the one the suite frames for this probe, nonce and try".into(),
                ));
            }
            want.framing
        }
    };
    let system = framing.as_str();
    let raw = ev.response().map_err(at)?;
    let http_ok = o.http_status.is_some_and(|s| s < 300);
    // Failures below the stream (no 2xx, timeouts, stall, body cap, UTF-8) are recorded facts
    // of timing and transport; everything the stream itself says is re-derived.
    let transport = o.failure.clone().filter(|f| {
        !http_ok
            || matches!(
                f.class,
                FailureClass::Connect
                    | FailureClass::ConnectionClosed
                    | FailureClass::TimeoutHeaders
                    | FailureClass::TimeoutFirstToken
                    | FailureClass::TimeoutTotal
                    | FailureClass::Stall
                    | FailureClass::BodyTooLarge
                    | FailureClass::InvalidUtf8
            )
    });
    let mut st = if http_ok {
        dialect.replay(&raw).unwrap_or_default()
    } else {
        Default::default()
    };
    // Records made before the reasoning convention was per endpoint stored Gemini's output as
    // candidates + thoughts and billed exactly that: re-derive them as they were made.
    if o.tokens.reasoning_in_output.is_none() && dialect == crate::config::Dialect::Gemini {
        if let Some(u) = st.usage.as_mut() {
            u.output = u.output.map(|c| c + u.reasoning.unwrap_or(0));
        }
    }
    // Records made before totals were read billed by the convention alone: re-derive them so.
    // (A record made since has `reported_total` whenever its stream reported one.)
    if o.tokens.reported_total.is_none() {
        if let Some(u) = st.usage.as_mut() {
            u.total = None;
        }
    }
    let d = sit_core::derive::derive(
        &inst,
        tier,
        system,
        o.http_status,
        transport,
        &st,
        &o.timings,
        price,
        o.tokens.reasoning_in_output,
    );
    let mut r = o.clone();
    r.failure = d.failure.map(|mut f| {
        // Details are prose; the class is what counts.
        if let Some(orig) = &o.failure {
            f.detail = orig.detail.clone();
            f.retry_after_ms = orig.retry_after_ms;
        }
        f
    });
    r.correct = d.correct;
    r.within_sla = d.on_time;
    r.tokens = d.tokens;
    r.cost = d.cost;
    r.answer = d.answer;
    r.delivered_sit = d.delivered;
    r.sit_size = inst.sit_size;
    r.price = Some(price.clone());
    Ok(r)
}

/// First differing JSON path between two values.
pub fn first_difference(a: &serde_json::Value, b: &serde_json::Value, at: &str) -> Option<String> {
    use serde_json::Value::*;
    match (a, b) {
        (Object(x), Object(y)) => {
            let keys: std::collections::BTreeSet<&std::string::String> =
                x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| {
                first_difference(
                    x.get(k).unwrap_or(&Null),
                    y.get(k).unwrap_or(&Null),
                    &format!("{at}.{k}"),
                )
            })
        }
        (Array(x), Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| first_difference(p, q, &format!("{at}[{i}]"))),
        _ if a == b => None,
        _ => Some(format!("{at}: computed {a}, published {b}")),
    }
}

/// A record with its hash.
pub type Hashed = (Observation, [u8; 32]);

/// Re-derive every record from its evidence, on every core (results in record order, so the
/// outcome does not depend on scheduling). Returns the re-derived records with their hashes,
/// the first differences found, and the reference tokens counted.
pub fn rederive_all(b: &Bundle) -> (Vec<Hashed>, Vec<String>, u64) {
    type Outcome = (Observation, [u8; 32], Option<String>);
    let parts: Vec<Outcome> =
        crate::sys::lane::par_map(&b.records, 1, |(_, hash, o)| match rederive(b, o) {
            Ok(r) if &r == o => (r, *hash, None),
            Ok(r) => {
                let (x, y) = (
                    serde_json::to_value(&r).expect("serialises"),
                    serde_json::to_value(o).expect("serialises"),
                );
                let d = first_difference(&x, &y, "")
                    .map(|d| format!("seq {}: {}", o.seq, d.trim_start_matches('.')));
                (r, *hash, d)
            }
            Err(e) => (o.clone(), *hash, Some(e)),
        });
    let mut derived = Vec::with_capacity(b.records.len());
    let mut diffs = Vec::new();
    let mut tokens = 0u64;
    for (r, h, d) in parts {
        tokens += r.tokens.ref_input + r.tokens.ref_output;
        if let Some(d) = d {
            if diffs.len() < 20 {
                diffs.push(d);
            }
        }
        derived.push((r, h));
    }
    (derived, diffs, tokens)
}

/// The outcome of a replay.
#[derive(Debug, Serialize)]
pub struct Replay {
    /// Observations whose re-derived figures differ from the record (first few).
    pub observation_differences: Vec<String>,
    pub observations_rederived: usize,
    /// Records whose response body was withheld (it carried the API key): their figures
    /// are taken as recorded, not re-derived.
    pub evidence_withheld: usize,
    pub reference_tokens: u64,
    /// Per published record: `identical` or the first difference.
    pub determinations: Vec<(String, String)>,
    /// Structural problems found before recomputing (chain, commitment).
    pub structure: Vec<String>,
    /// Per published record set from data: its value's 95% interval
    /// ([`sit_core::index::interval`]), drawn from [`interval_seed`].
    pub intervals: Vec<(String, sit_core::index::interval::Interval)>,
}

/// The bundle file holding its values' 95% intervals ([`sit_core::index::interval`]), signed
/// by the publisher when it wrote the bundle (after the reveal their seed needs); `replay`
/// recomputes them and names any that differ. Bundles written before it have none.
pub const INTERVALS: &str = "intervals.json";

/// The `kind` of [`INTERVALS`].
pub const INTERVALS_KIND: &str = "sit-intervals";

/// Replay the bundle written at `dir` and, when it replays identically, add its values'
/// intervals as [`INTERVALS`], signed with `key`, and list the file in the manifest. Returns
/// how many values it holds.
pub fn add_intervals(dir: &Path, key: &ed25519_dalek::SigningKey) -> Result<usize, AuditError> {
    let b = Bundle::load(dir)?;
    let r = replay(&b);
    if !r.identical() {
        return Err(AuditError::Bundle(
            "the bundle does not replay identically: its intervals are not signed".into(),
        ));
    }
    let intervals = intervals_object(&r.intervals);
    let bytes = sit_core::signing::sign_value(
        serde_json::json!({
            "kind": INTERVALS_KIND,
            "date": b.manifest.date.to_string(),
            "method": sit_core::index::interval::METHOD,
            "intervals": intervals,
            "key_id": sit_core::signing::key_id(&key.verifying_key()),
        }),
        key,
    );
    let p = dir.join(INTERVALS);
    std::fs::write(&p, &bytes).map_err(io(&p))?;
    let mut m = b.manifest.clone();
    m.files
        .insert(INTERVALS.into(), blake3::hash(&bytes).to_hex().to_string());
    let p = dir.join("manifest.json");
    std::fs::write(&p, erased::Ser::pretty(&m)).map_err(io(&p))?;
    Ok(r.intervals.len())
}

/// The intervals a day's bundle at `dir` states ([`INTERVALS`]), by record name
/// (`determinations/TIER.vN.json`), with the key that signed them, when the file is there, is
/// of its kind and its signature holds under the key `key_of` gives for the id it names (the
/// page and the statement pass the archive's keys). `None` otherwise: an interval is shown only
/// as signed.
pub fn signed_intervals(
    dir: &Path,
    mut key_of: impl FnMut(&str) -> Option<ed25519_dalek::VerifyingKey>,
) -> Option<(
    String,
    BTreeMap<String, sit_core::index::interval::Interval>,
)> {
    let bytes = std::fs::read(dir.join(INTERVALS)).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    if v["kind"] != INTERVALS_KIND {
        return None;
    }
    let kid = v["key_id"].as_str()?.to_string();
    sit_core::signing::verify_value(&bytes, &key_of(&kid)?).ok()?;
    let all = v["intervals"]
        .as_object()?
        .iter()
        .filter_map(|(n, i)| Some((n.clone(), serde_json::from_value(i.clone()).ok()?)))
        .collect();
    Some((kid, all))
}

/// The seed of a day's bootstrap interval: the day's revealed schedule seed, or, in a probe
/// network's bundle, the vantages' revealed seeds in vantage order joined by `,`. `None`
/// before the reveal.
pub fn interval_seed(b: &Bundle, date: Date) -> Option<String> {
    if let Some((_, Some(r))) = b.commitments.get(&date) {
        return Some(r.seed.clone());
    }
    let seeds: Vec<&str> = b
        .vantage_commitments
        .values()
        .filter_map(|s| s.get(&date).and_then(|(_, r)| r.as_ref()))
        .map(|r| r.seed.as_str())
        .collect();
    (!seeds.is_empty()).then(|| seeds.join(","))
}

impl Replay {
    pub fn identical(&self) -> bool {
        self.structure.is_empty()
            && self.observation_differences.is_empty()
            && !self.determinations.is_empty()
            && self.determinations.iter().all(|(_, v)| v == "identical")
    }
}

/// Re-grade, re-count, re-cost every observation from its raw evidence and recompute every
/// published determination of the bundle from the re-derived figures.
pub fn replay(b: &Bundle) -> Replay {
    let mut structure = Vec::new();
    if let Err(e) = b.check_chain() {
        structure.push(e);
    }
    if let Err(e) = check_links(b) {
        structure.push(e);
    }
    if let Err(e) = b.check_commitment() {
        structure.push(e);
    }
    let (derived, diffs, ref_tokens) = rederive_all(b);
    let mut determinations = Vec::new();
    let mut intervals = Vec::new();
    let mut signers = std::collections::BTreeSet::new();
    match b.publications() {
        Err(e) => structure.push(e),
        Ok(pubs) => {
            for (name, p, signed) in pubs {
                signers.insert(p.key_id.clone());
                let seed = matches!(p.determination.status, Status::Base | Status::Final)
                    .then(|| interval_seed(b, p.determination.date))
                    .flatten();
                let outcome = recompute(b, &derived, &p, seed.as_deref())
                    .map(|(computed, interval)| {
                        if let Some(i) = interval {
                            intervals.push((name.clone(), i));
                        }
                        let mut q = p.clone();
                        q.determination = computed;
                        if p.determination.status == Status::Restated {
                            q.determination.status = Status::Restated;
                        }
                        let bytes =
                            sit_core::signing::canonical(&serde_json::to_value(&q).expect("json"));
                        if bytes == signed {
                            "identical".to_string()
                        } else {
                            let x = serde_json::to_value(&q.determination).expect("json");
                            let y = serde_json::to_value(&p.determination).expect("json");
                            first_difference(&x, &y, "")
                                .map(|d| format!("differs at {}", d.trim_start_matches('.')))
                                .unwrap_or_else(|| "differs in its canonical bytes".into())
                        }
                    })
                    .unwrap_or_else(|e| format!("cannot recompute: {e}"));
                determinations.push((name, outcome));
            }
        }
    }
    if let Some(why) = check_intervals(b, &intervals, &signers) {
        structure.push(why);
    }
    Replay {
        observation_differences: diffs,
        observations_rederived: b.records.len(),
        evidence_withheld: b
            .records
            .iter()
            .filter(|(_, _, o)| o.evidence.as_ref().is_some_and(|e| e.withheld.is_some()))
            .count(),
        reference_tokens: ref_tokens,
        determinations,
        structure,
        intervals,
    }
}

/// The `intervals` member of [`INTERVALS`]: each record's name and its interval.
fn intervals_object(
    intervals: &[(String, sit_core::index::interval::Interval)],
) -> serde_json::Map<String, serde_json::Value> {
    intervals
        .iter()
        .map(|(n, i)| {
            (
                n.clone(),
                serde_json::to_value(i).expect("an interval serialises"),
            )
        })
        .collect()
}

/// [`INTERVALS`], when the bundle has it: signed by a key the bundle carries (under a pinned
/// key set: by a key of the set that signed one of the bundle's records, checked against it),
/// and the intervals it states are the ones recomputed. `Some(why)` when not.
fn check_intervals(
    b: &Bundle,
    computed: &[(String, sit_core::index::interval::Interval)],
    signers: &std::collections::BTreeSet<String>,
) -> Option<String> {
    let p = b.dir.join(INTERVALS);
    let bytes = std::fs::read(&p).ok()?;
    let v: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => return Some(format!("{INTERVALS}: {e}")),
    };
    let vk = match &b.pinned {
        Some(set) => {
            let kid = v["key_id"].as_str().unwrap_or("");
            match set.key(kid) {
                Some(k) if signers.contains(kid) => *k.verifying_key(),
                Some(_) => {
                    return Some(format!(
                        "{INTERVALS}: signed by {kid}, which signed none of the bundle's records"
                    ))
                }
                None => {
                    return Some(format!(
                        "{INTERVALS}: signed by {kid}, which is not in the key set followed from the pinned root"
                    ))
                }
            }
        }
        None => match b.own_key(&v) {
            Ok(k) => k,
            Err(e) => return Some(format!("{INTERVALS}: {e}")),
        },
    };
    if let Err(e) = sit_core::signing::verify_value(&bytes, &vk) {
        return Some(format!("{INTERVALS}: the signature does not verify: {e}"));
    }
    let mut want = intervals_object(computed);
    match v["method"].as_str() {
        Some(sit_core::index::interval::METHOD) => {}
        // the first documents state no delivered shares
        Some(sit_core::index::interval::METHOD_1) => {
            for i in want.values_mut() {
                if let Some(o) = i.as_object_mut() {
                    o.remove("shares");
                }
            }
        }
        other => {
            return Some(format!(
                "{INTERVALS}: method {} is not known to this build (known: sit-interval/1, sit-interval/2)",
                other.unwrap_or("(none)")
            ))
        }
    }
    let stated = v["intervals"].as_object().cloned().unwrap_or_default();
    if stated == want {
        return None;
    }
    let name = want
        .keys()
        .chain(stated.keys())
        .find(|k| want.get(*k) != stated.get(*k))
        .cloned()
        .unwrap_or_default();
    Some(format!(
        "{INTERVALS}: the interval of {name} is not the one recomputed (stated {}, recomputed {})",
        stated
            .get(&name)
            .map(|v| v.to_string())
            .unwrap_or_else(|| "none".into()),
        want.get(&name)
            .map(|v| v.to_string())
            .unwrap_or_else(|| "none".into())
    ))
}

/// What a published record's day is computed from, owned: the rows of its window read as
/// its publisher read them (its price book version, `read_below_seq`), its endpoints,
/// providers and vantages, the tier's pass threshold and the value it may carry.
/// [`DayParts::input`] lends them as the kernel's [`DayInput`].
#[derive(Debug, Clone)]
pub struct DayParts {
    pub endpoints: Vec<String>,
    pub providers: Vec<String>,
    pub vantages: Vec<String>,
    pub rows: Vec<sit_core::index::IndexObs>,
    pub prices: Option<sit_core::index::PricesUsed>,
    pub pass_threshold: sit_core::fixed::Fixed,
    pub previous_final: Option<(Date, sit_core::fixed::Fixed)>,
}

impl DayParts {
    /// The kernel's input for the record `d` (its tier, date, sequence, chain link, suite).
    pub fn input<'a>(&'a self, d: &'a Determination, suite_hash: &'a str) -> DayInput<'a> {
        self.input_with(d, suite_hash, &self.rows)
    }

    /// [`DayParts::input`] over other rows (the same day's, altered: a resample, another
    /// provider's prices).
    pub fn input_with<'a>(
        &'a self,
        d: &'a Determination,
        suite_hash: &'a str,
        rows: &'a [sit_core::index::IndexObs],
    ) -> DayInput<'a> {
        DayInput {
            tier: &d.tier,
            date: d.date,
            pass_threshold: self.pass_threshold,
            endpoints: &self.endpoints,
            providers: &self.providers,
            vantages: &self.vantages,
            observations: rows,
            previous_final: self.previous_final,
            suite_hash,
            sequence: d.sequence,
            computed_at: &d.computed_at,
            // a chained day starts from the state its record states
            chain: d.chain.as_ref().map(|c| &c.link),
            prices: self.prices.as_ref(),
        }
    }
}

/// The [`DayParts`] of the published record `p` of bundle `b`, from `observations` (the
/// bundle's records, or the same re-derived from their evidence). Errors name what the bundle
/// lacks for it (a tier, a price book or excerpt, or one that is not the record's).
pub fn day_parts<'o>(
    b: &Bundle,
    observations: impl IntoIterator<Item = (&'o Observation, &'o [u8; 32])>,
    p: &Publication,
) -> Result<DayParts, String> {
    let d = &p.determination;
    let tier = b
        .suite
        .tier(&d.tier)
        .ok_or_else(|| format!("tier {} not in the suite", d.tier))?;
    let m = &b.methodology;
    // 1.4.0: the costs come from the price book as it stood at the version the record names,
    // and the bundle's book must be that book (its hash).
    let window = day_window(m, d.date);
    let view = match (&d.prices, &b.book, &b.excerpt) {
        // the record commits to its window's excerpt: recomputed from what the bundle carries
        (Some(used), _, Some(ex)) => {
            let Some(want) = &used.excerpt else {
                return Err("the record names no price excerpt, and the bundle carries no whole book (price-book.json)".into());
            };
            let v = BookView::from_excerpt(ex, used.version, window, &used.hash)?;
            if v.excerpt.as_ref() != Some(want) {
                return Err(format!(
                    "the prices the bundle carries for the day's window at book version {} hash to {}, the record commits to {want}: an entry the day needs is missing or altered",
                    used.version,
                    v.excerpt.unwrap_or_default()
                ));
            }
            Some(v)
        }
        (Some(used), Some(book), None) => {
            if used.version > book.version() {
                return Err(format!(
                    "the record costs from price book version {}, the bundle's book has {}",
                    used.version,
                    book.version()
                ));
            }
            // a record that commits to an excerpt is checked against the book's too
            let v = match used.excerpt {
                Some(_) => BookView::for_window(book, used.version, window),
                None => BookView::new(book, used.version),
            };
            if v.hash != used.hash {
                return Err(format!(
                    "price book version {} of the bundle hashes to {}, the record names {}",
                    used.version, v.hash, used.hash
                ));
            }
            if v.excerpt != used.excerpt {
                return Err(format!(
                    "the day's excerpt of the bundle's price book hashes to {}, the record commits to {}",
                    v.excerpt.clone().unwrap_or_default(),
                    used.excerpt.clone().unwrap_or_default()
                ));
            }
            Some(v)
        }
        (Some(_), None, None) => {
            return Err(
                "the record costs from a price book the bundle lacks (price-book.json or price-excerpt.json)".into(),
            )
        }
        (None, _, _) => None,
    };
    // the records the publisher had stored when it determined the day (all, for records
    // from before it said)
    let below = d.read_below_seq.unwrap_or(u64::MAX);
    // observations an upheld dispute voided are not the day's inputs (issue 30)
    let voided: std::collections::BTreeSet<&str> =
        d.voided.iter().map(|v| v.observation.as_str()).collect();
    let rows = sit_core::index::rows_for(
        m,
        observations.into_iter().filter(|(o, h)| {
            o.seq < below
                && (voided.is_empty() || !voided.contains(sit_core::signing::hex(&h[..]).as_str()))
        }),
        &d.tier,
        &b.suite.hash,
        window,
        view.as_ref(),
    );
    Ok(DayParts {
        endpoints: rows.endpoints,
        providers: rows.providers,
        vantages: rows.vantages,
        rows: rows.rows,
        prices: rows.prices,
        pass_threshold: tier.pass_threshold,
        previous_final: d
            .contingency
            .as_ref()
            .and_then(|c| c.carried_from.zip(d.value)),
    })
}

/// The determination of a published record, recomputed from re-derived observations.
fn recompute(
    b: &Bundle,
    derived: &[(Observation, [u8; 32])],
    p: &Publication,
    interval_seed: Option<&str>,
) -> Result<(Determination, Option<sit_core::index::interval::Interval>), String> {
    let d = &p.determination;
    let parts = day_parts(b, derived.iter().map(|(o, h)| (o, h)), p)?;
    let input = parts.input(d, &b.suite.hash);
    let mut computed = compute_day(&b.methodology, &input);
    computed.read_below_seq = d.read_below_seq;
    // the observations the record voids (upheld disputes) were left out by day_parts; the
    // disputes themselves are in the oracle's register (GET /v1/disputes/{id})
    computed.voided = d.voided.clone();
    let interval = interval_seed.map(|s| {
        sit_core::index::interval::interval(
            &b.methodology,
            &input,
            s,
            sit_core::index::interval::RESAMPLES,
        )
    });
    Ok((computed, interval))
}

/// Every chained determination starts from the state its tier's previous record hands on
/// ([`sit_core::index::chain::link_after`]); a stated link that does not follow is named.
fn check_links(b: &Bundle) -> Result<(), String> {
    let pubs = b.publications()?;
    let previous = b.previous_publications()?;
    for (name, p, _) in &pubs {
        let d = &p.determination;
        let Some(c) = &d.chain else { continue };
        let cp = b
            .methodology
            .chain
            .as_ref()
            .ok_or_else(|| format!("{name} is chained but the bundle's methodology is not"))?;
        let prev = previous
            .iter()
            .find(|(_, q, _)| q.determination.tier == d.tier)
            .map(|(_, q, _)| &q.determination);
        if prev.is_some_and(|q| q.date >= d.date) {
            return Err(format!(
                "{name}: the previous record is not of an earlier day"
            ));
        }
        let want = sit_core::index::chain::link_after(cp, prev);
        if c.link != want {
            return Err(format!(
                "{name} starts from level {:?} of {:?} with {} references, but {} hands on level {:?} of {:?} with {} references",
                c.link.level.map(|v| v.to_string()),
                c.link.level_date.map(|v| v.to_string()),
                c.link.references.len(),
                prev.map(|q| format!("the record of {}", q.date))
                    .unwrap_or_else(|| "no earlier record (the chain starts)".into()),
                want.level.map(|v| v.to_string()),
                want.level_date.map(|v| v.to_string()),
                want.references.len()
            ));
        }
    }
    Ok(())
}

/// Verify a bundle: manifest, chain, Merkle roots, seed commitment, signatures. Returns every
/// problem found, in that order; empty means verified.
pub fn verify(b: &Bundle) -> Vec<String> {
    let mut out = Vec::new();
    if let Err(e) = b.check_chain() {
        out.push(format!("chain: {e}"));
    }
    let recorded: Vec<(Observation, [u8; 32])> =
        b.records.iter().map(|(_, h, o)| (o.clone(), *h)).collect();
    match b.publications() {
        Err(e) => out.push(format!("signature: {e}")),
        Ok(pubs) => {
            for (name, p, _) in pubs {
                match recompute(b, &recorded, &p, None).map(|(c, _)| c) {
                    Ok(c) if c.merkle_root == p.determination.merkle_root => {}
                    Ok(c) => out.push(format!(
                        "merkle: {name}: the observations give root {}, the record says {}: an observation it used was added, dropped or edited",
                        c.merkle_root, p.determination.merkle_root
                    )),
                    Err(e) => out.push(format!("merkle: {name}: {e}")),
                }
            }
        }
    }
    if let Err(e) = check_links(b) {
        out.push(format!("link: {e}"));
    }
    if let Err(e) = b.check_commitment() {
        out.push(format!("commitment: {e}"));
    }
    if let Err(e) = b.check_in_force() {
        out.push(format!("in force: {e}"));
    }
    if let Err(e) = b.check_schedule_signatures() {
        out.push(format!("commitment signature: {e}"));
    }
    if let Err(e) = b.check_manifest() {
        out.push(format!("manifest: {e}"));
    }
    let mh = b.methodology.hash();
    if let Err(e) = Registry::embedded().methodology(&mh) {
        out.push(format!(
            "methodology: the bundle's parameters are no published version: {e}"
        ));
    }
    if let Ok(pubs) = b.publications() {
        for (name, p, _) in pubs {
            if p.determination.methodology_hash != mh {
                out.push(format!(
                    "methodology: {name} was made under methodology {}, the bundle carries {mh}",
                    p.determination.methodology_hash
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn observation(seq: u64, at_ms: i64, seed: u64, nonce: &str, retry: u32) -> Observation {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/golden/bundle-2026-01-05/observations.jsonl"
        ))
        .unwrap();
        let mut o: Observation = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        (o.seq, o.at_ms, o.seed, o.nonce, o.retry) = (seq, at_ms, seed, nonce.into(), retry);
        o
    }

    /// CI (2026-12-07, tests/run.rs): "observation seq 101 is retry 1 of a probe that was not
    /// attempted first": the first attempt was sent in the day's first minute (checked as a
    /// spill-over, after the day's records) and its retry after that minute.
    #[test]
    fn a_probe_sent_in_the_first_minute_and_retried_after_it_is_checked_before_its_retry() {
        let day = Date::parse("2026-01-05").unwrap();
        let t0 = day.start_ms();
        let first = observation(10, t0 + 30_000, 7, "n", 0);
        let retry = observation(11, t0 + 90_000, 7, "n", 1);
        let foreign_spill = observation(12, t0 + 40_000, 9, "x", 0);
        let previous_days = observation(13, t0 + 120_000, 5, "p", 0);
        let late = observation(14, t0 + DAY_MS + 5_000, 7, "n", 2);
        let keys: BTreeSet<(u64, String)> = [(7, "n".to_string())].into();
        let previous: BTreeSet<(u64, String)> = [(5, "p".to_string())].into();
        let got: Vec<u64> = day_candidates(
            [&first, &retry, &foreign_spill, &previous_days, &late].into_iter(),
            day,
            &keys,
            &previous,
        )
        .iter()
        .map(|o| o.seq)
        .collect();
        assert_eq!(got, [10, 11, 14]);
    }
}
