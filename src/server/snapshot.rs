//! What the server serves, loaded from the publication archive: every listed record checked
//! (hash and signature) and pre-rendered, the settlement files, the tiers and keys documents.
//! Immutable once built; the server swaps in a new one when the archive changes.

use crate::archive::{in_force, Archive, LogEntry};
use crate::sys::clock::{Clock, SystemClock};
use axum::http::HeaderValue;
use bytes::Bytes;
use sit_core::index::Methodology;
use sit_core::probes::Suite;
use sit_core::record::{self, Publication};
use sit_core::time::{format_utc_ms, Date};
use std::collections::BTreeMap;
use std::sync::Arc;

/// One served record: its exact bytes and what the handlers need to know about it.
#[derive(Debug)]
pub struct Served {
    pub bytes: Bytes,
    pub etag: HeaderValue,
    pub entry: LogEntry,
    pub publication: Publication,
}

/// Everything the handlers read, rebuilt whenever the archive changes.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// tier -> date -> versions, ascending.
    pub records: BTreeMap<String, BTreeMap<Date, Vec<Arc<Served>>>>,
    pub tiers_json: Bytes,
    pub keys_json: Bytes,
    pub page: Bytes,
    pub count: usize,
    pub errors: Vec<String>,
    pub log_len: u64,
    /// [`crate::archive::settlements::mark`] when loaded.
    pub settle_mark: u64,
    /// Per tier: the futures' period to date and last final values (for the page).
    pub settlements: BTreeMap<String, crate::archive::settlements::Overview>,
    /// Per tier: every archived settlement record, FINAL then INDICATIVE (for the endpoint).
    pub settlement_records: BTreeMap<
        String,
        (
            Vec<crate::archive::settlements::Archived>,
            Vec<crate::archive::settlements::Archived>,
        ),
    >,
    pub loaded_at: String,
    /// [`crate::archive::notices::count`] when loaded.
    pub notice_count: usize,
    /// The published notices, in id order (for the page).
    pub notices: Vec<sit_core::notice::Notice>,
    /// Per (tier, date, version): the value's 95% interval, as signed in the day's audit bundle
    /// (`DATA/archive/DATE/intervals.json`, beside the archive at `DATA/published/`) by the key
    /// that signed the record. Days whose bundle has none are absent.
    pub intervals: BTreeMap<(String, Date, u32), sit_core::index::interval::Interval>,
    /// [`crate::archive::register::mark`] when loaded.
    pub register_mark: u64,
    /// The disputes not yet resolved, in order of receipt: (id, subject, received, due).
    pub open_disputes: Vec<(String, String, String, String)>,
    /// The key ids the notices mark as demo keys (`sit demo`): what they sign is simulated.
    pub demo_keys: std::collections::BTreeSet<String>,
    /// Disputes resolved so far.
    pub resolved_disputes: usize,
}

impl Snapshot {
    /// The record in force for (tier, date).
    pub fn in_force(&self, tier: &str, date: Date) -> Option<&Arc<Served>> {
        self.records.get(tier)?.get(&date)?.last()
    }

    pub fn latest(&self, tier: &str) -> Option<&Arc<Served>> {
        self.records.get(tier)?.values().next_back()?.last()
    }
}

pub(super) fn etag_of(bytes: &[u8]) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{}\"", &record::record_hash(bytes)[..32]))
        .expect("hex is a valid header value")
}

/// Load and check the whole archive. Never fails: problems are listed in `errors`. The page
/// is left empty: [`super::load`] renders it from the snapshot.
pub fn load(archive: &Archive, suite: &Suite) -> Snapshot {
    let log_len = archive.log_len();
    let settle_mark = crate::archive::settlements::mark(archive.root());
    let notice_count = crate::archive::notices::count(archive.root());
    // each tier's settlement files read once: the endpoint serves them, the page summarises
    let settlement_records: BTreeMap<_, _> = suite
        .tier_ids()
        .into_iter()
        .map(|t| {
            use crate::archive::settlements::archived;
            use sit_core::settlement::SettlementStatus::{Final, Indicative};
            let r = (
                archived(archive.root(), &t, Final),
                archived(archive.root(), &t, Indicative),
            );
            (t, r)
        })
        .collect();
    let mut snap = Snapshot {
        log_len,
        settle_mark,
        settlements: settlement_records
            .iter()
            .map(|(t, (f, i))| (t.clone(), crate::archive::settlements::overview(f, i)))
            .collect(),
        settlement_records,
        loaded_at: format_utc_ms(SystemClock.now_ms()),
        notice_count,
        ..Default::default()
    };
    let published = crate::archive::notices::all(archive.root()).unwrap_or_else(|e| {
        snap.errors.push(format!("notices: {e}"));
        Vec::new()
    });
    snap.notices = published.iter().map(|p| p.notice.clone()).collect();
    let entries = match archive.entries() {
        Ok(e) => e,
        Err(e) => {
            snap.errors.push(e.to_string());
            vec![]
        }
    };
    let mut key_cache: BTreeMap<String, Option<ed25519_dalek::VerifyingKey>> = BTreeMap::new();
    for e in &entries {
        let vk = *key_cache.entry(e.key_id.clone()).or_insert_with(|| {
            archive
                .key_pem(&e.key_id)
                .and_then(|p| sit_core::signing::parse_public(&p).ok())
        });
        let checked = archive
            .read(e)
            .map_err(|x| x.to_string())
            .and_then(|bytes| {
                let vk = vk.ok_or_else(|| {
                    format!(
                        "{}: public key {} missing from the archive",
                        e.file, e.key_id
                    )
                })?;
                let v = record::verify(&bytes, &vk).map_err(|x| format!("{}: {x}", e.file))?;
                Ok((bytes, v.publication))
            });
        match checked {
            Ok((bytes, publication)) => {
                let served = Arc::new(Served {
                    etag: etag_of(&bytes),
                    bytes: Bytes::from(bytes),
                    entry: e.clone(),
                    publication,
                });
                let versions = snap
                    .records
                    .entry(e.tier.clone())
                    .or_default()
                    .entry(e.date)
                    .or_default();
                versions.push(served);
                versions.sort_by_key(|s| s.entry.version);
                snap.count += 1;
            }
            Err(why) => snap.errors.push(format!("not served: {why}")),
        }
    }
    snap.intervals = intervals(archive, &snap.records, &mut key_cache);
    snap.register_mark = crate::archive::register::mark(archive.root());
    match crate::archive::register::Register::read(archive.root()) {
        Ok(reg) => {
            for d in &reg.disputes {
                if d.outcome.is_some() {
                    snap.resolved_disputes += 1;
                    continue;
                }
                let r = &d.entry.receipt;
                snap.open_disputes.push((
                    r.id.clone(),
                    d.dispute().subject.describe(),
                    r.received_at.clone(),
                    r.respond_by.clone().unwrap_or_default(),
                ));
            }
        }
        Err(e) => snap.errors.push(format!("the oversight register: {e}")),
    }
    snap.tiers_json = tiers_json(&snap, suite);
    snap.keys_json = keys_json(archive, &entries, &published);
    snap.demo_keys = serde_json::from_slice::<serde_json::Value>(&snap.keys_json)
        .ok()
        .and_then(|v| {
            v["keys"].as_array().map(|ks| {
                ks.iter()
                    .filter(|k| k["demo"] == true)
                    .filter_map(|k| k["key_id"].as_str().map(String::from))
                    .collect()
            })
        })
        .unwrap_or_default();
    snap
}

/// Each served record's signed interval, from its day's bundle (see [`Snapshot::intervals`]).
fn intervals(
    archive: &Archive,
    records: &BTreeMap<String, BTreeMap<Date, Vec<Arc<Served>>>>,
    keys: &mut BTreeMap<String, Option<ed25519_dalek::VerifyingKey>>,
) -> BTreeMap<(String, Date, u32), sit_core::index::interval::Interval> {
    let mut out = BTreeMap::new();
    let Some(data) = crate::archive::layout::data_of(archive.root()) else {
        return out;
    };
    let dates: std::collections::BTreeSet<Date> =
        records.values().flat_map(|d| d.keys().copied()).collect();
    for date in dates {
        let dir = crate::archive::layout::bundle(data, date);
        let key_of = |kid: &str| {
            *keys.entry(kid.to_string()).or_insert_with(|| {
                archive
                    .key_pem(kid)
                    .and_then(|p| sit_core::signing::parse_public(&p).ok())
            })
        };
        let Some((kid, stated)) = crate::audit::bundle::signed_intervals(&dir, key_of) else {
            continue;
        };
        for (tier, days) in records {
            for s in days.get(&date).into_iter().flatten() {
                let name = format!("determinations/{tier}.v{}.json", s.entry.version);
                // signed by the key of the record it describes
                if s.publication.key_id != kid {
                    continue;
                }
                if let Some(i) = stated.get(&name) {
                    out.insert((tier.clone(), date, s.entry.version), i.clone());
                }
            }
        }
    }
    out
}

fn tiers_json(snap: &Snapshot, suite: &Suite) -> Bytes {
    let tiers: Vec<_> = suite
        .tiers
        .iter()
        .map(|t| {
            let latest = snap.latest(&t.id).map(|s| {
                serde_json::json!({
                    "date": s.entry.date,
                    "status": s.entry.status,
                    "value": s.entry.value,
                    "version": s.entry.version,
                    "sequence": s.entry.sequence,
                })
            });
            serde_json::json!({
                "id": t.id,
                "name": t.name,
                "pass_threshold": t.pass_threshold,
                "latest": latest,
                "links": {
                    "latest": format!("/v1/index/{}/latest", t.id),
                    "history": format!("/v1/index/{}", t.id),
                    "history_csv": format!("/v1/index/{}.csv", t.id),
                },
            })
        })
        .collect();
    Bytes::from(
        serde_json::to_vec_pretty(&serde_json::json!({
            "unit": Methodology::default().unit,
            "tiers": tiers,
        }))
        .expect("json"),
    )
}

fn keys_json(
    archive: &Archive,
    entries: &[LogEntry],
    published: &[crate::archive::notices::Published],
) -> Bytes {
    // Validity: from the first record a key signed until the first record signed by a later
    // key (null while it is the key in use).
    let mut order: Vec<(String, String, usize)> = Vec::new(); // id, first use, records
    for e in entries {
        match order.iter_mut().find(|(id, _, _)| id == &e.key_id) {
            Some(k) => k.2 += 1,
            None => order.push((e.key_id.clone(), e.published_at.clone(), 1)),
        }
    }
    let keys: Vec<_> = order
        .iter()
        .enumerate()
        .map(|(i, (id, from, n))| {
            let pem = archive.key_pem(id);
            let hex = pem
                .as_deref()
                .and_then(|p| sit_core::signing::parse_public(p).ok())
                .map(|vk| sit_core::signing::hex(vk.as_bytes()));
            serde_json::json!({
                "key_id": id,
                "algorithm": "Ed25519",
                "public_key_hex": hex,
                "public_key_pem": pem,
                "valid_from": from,
                "valid_until": order.get(i + 1).map(|n| n.1.clone()),
                "records_signed": n,
            })
        })
        .collect();
    let Ok(Some(set)) = crate::publisher::notices::key_set_of(published) else {
        // a data folder without notices (or notices that do not fold: /healthz says so)
        return Bytes::from(
            serde_json::to_vec_pretty(&serde_json::json!({ "keys": keys })).expect("json"),
        );
    };
    // With notices: the key set they make, and the signed notices themselves (`chain`), so
    // that a verifier holding the root key follows every rotation.
    let keys: Vec<_> = set
        .keys
        .iter()
        .map(|k| {
            let vk = *k.verifying_key();
            serde_json::json!({
                "key_id": k.key_id,
                "algorithm": "Ed25519",
                "public_key_hex": k.public_key_hex,
                "public_key_pem": sit_core::signing::public_pem(&vk),
                "valid_from": k.valid_from,
                "valid_until": k.valid_until,
                "void_after": k.void_after,
                "demo": k.demo,
                "brought_by": k.brought_by,
                "ended_by": k.ended_by,
                "records_signed": order.iter().find(|o| o.0 == k.key_id).map(|o| o.2).unwrap_or(0),
            })
        })
        .collect();
    let chain: Vec<Box<serde_json::value::RawValue>> = published
        .iter()
        .filter_map(|p| {
            serde_json::value::RawValue::from_string(String::from_utf8(p.bytes.clone()).ok()?).ok()
        })
        .collect();
    Bytes::from(
        serde_json::to_vec_pretty(&serde_json::json!({
            "root": set.keys.first().map(|k| k.key_id.clone()),
            "keys": keys,
            "chain": chain,
            "rule": "a document is valid only if signed by a key of this set that was valid at the time the document states it was published; follow `chain` (the signed notices, in order) from the root key, obtained out of band: the genesis N-0000 names it, each rotation is signed by the outgoing key and accepted by the incoming one (`acceptance`), a revocation voids a key's signatures from `void_after`",
        }))
        .expect("json"),
    )
}

/// The latest record's bytes for a tier, as served (for the benchmark's nginx file).
pub fn latest_bytes(archive: &Archive, tier: &str) -> Option<Vec<u8>> {
    let entries = archive.entries().ok()?;
    let forced = in_force(&entries);
    let e = forced
        .iter()
        .filter(|((t, _), _)| t == tier)
        .map(|(_, e)| *e)
        .next_back()?;
    archive.read(e).ok()
}
