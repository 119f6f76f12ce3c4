//! February 2026 of tier t1 as real signed daily records in a data folder's archive: the
//! settlement tests and the mirror test settle and verify it.

use super::{sit, text};
use sit::archive::{Archive, LogEntry};
use sit_core::fixed::Fixed;
use sit_core::index::Status;
use sit_core::time::Date;
use std::path::Path;

/// February 2026 of t1 as real signed daily records (the golden bundle's t1 determination with
/// each day's date, value and status set, signed with a key of `sit keys generate`): every day
/// FINAL at 0.1000, day 5 restated to 0.2000 on 2026-02-06 (before the final settlement time),
/// day 28 restated to 0.9000 on 2026-03-05 (after it). Returns the key folder.
pub fn signed_february(data: &Path, keys: &Path) -> ed25519_dalek::SigningKey {
    use sit_core::record::{Publication, Restates};
    let g = sit(&["keys", "generate", "--out", keys.to_str().unwrap()]);
    assert!(g.status.success(), "{}", text(&g));
    let key = sit::archive::keys::load_signing(&keys.join("signing-key.pem")).unwrap();
    let vk = key.verifying_key();
    let golden = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/bundle-2026-01-05/determinations/t1.v1.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(golden).unwrap()).unwrap();
    v.as_object_mut().unwrap().remove("signature");
    let template: Publication = serde_json::from_value(v).unwrap();
    let a = Archive::for_data(data);
    let lock = a.lock().unwrap();
    let mut hashes: std::collections::BTreeMap<String, (u64, String)> = Default::default();
    let mut seq = 0;
    let mut put = |date: &str, version: u32, value: &str, at: &str| {
        seq += 1;
        let mut p = template.clone();
        let date_v = Date::parse(date).unwrap();
        p.determination.date = date_v;
        p.determination.status = if version == 1 {
            Status::Final
        } else {
            Status::Restated
        };
        p.determination.value = Some(Fixed::parse(value).unwrap());
        p.determination.sequence = seq;
        p.version = version;
        p.published_at = at.into();
        p.key_id = sit_core::signing::key_id(&vk);
        p.restates = hashes.get(date).map(|(s, h)| Restates {
            version: version - 1,
            sequence: *s,
            status: Status::Final,
            value: Some(Fixed::parse("0.1").unwrap()),
            record_hash: h.clone(),
        });
        let bytes = sit_core::record::sign(&p, &key);
        let e = LogEntry {
            tier: "t1".into(),
            date: date_v,
            version,
            sequence: seq,
            status: p.determination.status,
            value: p.determination.value,
            published_at: at.into(),
            key_id: p.key_id.clone(),
            file: Archive::file_name("t1", date_v, version),
            record_hash: sit_core::record::record_hash(&bytes),
        };
        hashes.insert(date.into(), (seq, e.record_hash.clone()));
        a.append(&lock, &bytes, &e, &sit_core::signing::public_pem(&vk))
            .unwrap();
    };
    for d in 1..=28 {
        let date = format!("2026-02-{d:02}");
        put(&date, 1, "0.1", &format!("{date}T00:10:00.000Z"));
        if d == 6 {
            put("2026-02-05", 2, "0.2", "2026-02-06T12:00:00.000Z");
        }
    }
    put("2026-02-28", 2, "0.9", "2026-03-05T12:00:00.000Z");
    key
}
