//! Audit bundles through the real binary, each command a separate process working on a copy of
//! the bundle in a new folder (no store anywhere near it):
//! - the committed golden bundle replays to its committed determination bytes exactly (this
//!   fails if anything on the index path changes its output) and verifies;
//! - a fresh bundle exported from a live demo store replays and verifies;
//! - each tampering (a price edited, a record deleted, inserted, two reordered, the revealed
//!   seed changed) is named by `sit audit verify`, and replay no longer says identical.
//!
//! The golden bundle was made with (regenerate it only when the suite, methodology or index
//! output change on purpose, and say so in the commit):
//! `sit --data d demo --days 1 --hour-ms 150 --per-hour 1 --market-size 6` then
//! `sit --data d audit export --date 2026-01-05 --out tests/golden/bundle-2026-01-05`.

mod common;
use common::{copy_dir, demo, sit, text};

use std::path::{Path, PathBuf};
use std::process::Output;

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/bundle-2026-01-05")
}

/// A copy of the golden bundle in a new folder.
fn copy_golden() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("bundle");
    copy_dir(&golden(), &dir);
    (t, dir)
}

fn replay(dir: &Path) -> Output {
    sit(&["audit", "replay", dir.to_str().unwrap()])
}

fn verify(dir: &Path) -> Output {
    sit(&["audit", "verify", dir.to_str().unwrap()])
}

fn first_failure(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .find(|l| l.starts_with("FAILED"))
        .unwrap_or("")
        .to_string()
}

#[test]
fn golden_bundle_replays_to_the_committed_bytes_and_verifies() {
    let (_t, dir) = copy_golden();
    let o = replay(&dir);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    for t in ["t1", "t2", "t3"] {
        assert!(
            out.contains(&format!("determinations/{t}.v1.json: identical")),
            "{out}"
        );
    }
    // each value set from data has its bootstrap interval (issue 29), drawn from the bundle's
    // revealed seed: pinned, as anyone replaying the bundle gets it
    for (t, lo, hi) in [
        ("t1", "0.311292123", "0.311292123"),
        ("t2", "0.224690361", "0.227664594"),
    ] {
        assert!(
            out.contains(&format!(
                "determinations/{t}.v1.json: 95% interval [{lo}, {hi}] from 200 bootstrap resamples"
            )),
            "{out}"
        );
    }
    assert!(
        !out.contains("t3.v1.json: 95% interval"),
        "CONTINGENCY has none: {out}"
    );
    let o = verify(&dir);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("VERIFIED"));
    // The golden day has two FINAL tiers and a CONTINGENCY one: both paths are pinned.
    let status = |t: &str| {
        let v: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.join(format!("determinations/{t}.v1.json"))).unwrap(),
        )
        .unwrap();
        v["status"].as_str().unwrap().to_string()
    };
    assert_eq!(
        [status("t1"), status("t2"), status("t3")],
        ["FINAL", "FINAL", "CONTINGENCY"]
    );
}

#[test]
fn bundle_exported_from_a_live_store_replays_identically() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    demo(
        &data,
        &[
            "--days",
            "2",
            "--hour-ms",
            "150",
            "--per-hour",
            "2",
            "--market-size",
            "6",
        ],
    );
    // The second day is chained (methodology 1.1): its bundle carries the first day's records,
    // the state each chained record starts from is checked against them.
    let out = t.path().join("bundle");
    let o = sit(&[
        "--data",
        data.to_str().unwrap(),
        "audit",
        "export",
        "--date",
        "2026-01-06",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("3 published determinations"));
    assert!(out.join("previous/t1.json").exists());
    let key = sit::archive::keys::load_signing(&data.join("demo-key/signing-key.pem")).unwrap();
    // The replay works from a copy in a new folder, the store out of reach.
    let elsewhere = t.path().join("elsewhere/bundle");
    copy_dir(&out, &elsewhere);
    let index = text(&sit(&["--data", data.to_str().unwrap(), "index"]));
    std::fs::remove_dir_all(&data).unwrap();
    let o = replay(&elsewhere);
    assert!(o.status.success(), "{}", text(&o));
    let o = verify(&elsewhere);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("not pinned"), "{}", text(&o));

    // Against the pinned root: the bundle carries the notices the key set follows from; every
    // record re-signed with another key (its keys/ and manifest rewritten to match) still
    // verifies against the bundle's own keys, and fails against the root, naming both keys.
    assert!(elsewhere.join("notices/N-0000.json").exists());
    let root_hex = sit_core::signing::hex(&key.verifying_key().to_bytes());
    let root_id = sit_core::signing::key_id(&key.verifying_key());
    let o = sit(&[
        "audit",
        "verify",
        elsewhere.to_str().unwrap(),
        "--key",
        &root_hex,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(&format!(
            "{root_id} (followed from the pinned root {root_id} through N-0000)"
        )),
        "{}",
        text(&o)
    );
    assert!(
        text(&o).contains("schedule 4 commitments and reveals signed by the key set"),
        "{}",
        text(&o)
    );
    // A commitment whose signature was stripped (the manifest rewritten) is named.
    let stripped = t.path().join("stripped/bundle");
    copy_dir(&elsewhere, &stripped);
    let cf = "commitments/2026-01-06.commit.json";
    let mut c: serde_json::Value =
        serde_json::from_slice(&std::fs::read(stripped.join(cf)).unwrap()).unwrap();
    assert!(c["signature"].is_string(), "{c}");
    c.as_object_mut().unwrap().remove("signature");
    c.as_object_mut().unwrap().remove("key_id");
    let bytes = serde_json::to_vec_pretty(&c).unwrap();
    std::fs::write(stripped.join(cf), &bytes).unwrap();
    let mf = stripped.join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&mf).unwrap()).unwrap();
    m["files"][cf] = serde_json::json!(blake3::hash(&bytes).to_hex().to_string());
    std::fs::write(&mf, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    let o = sit(&[
        "audit",
        "verify",
        stripped.to_str().unwrap(),
        "--key",
        &root_hex,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        first_failure(&o).contains("the commitment of 2026-01-06 is not signed"),
        "{}",
        text(&o)
    );
    let resigned = t.path().join("resigned/bundle");
    copy_dir(&elsewhere, &resigned);
    let other = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let other_id = sit_core::signing::key_id(&other.verifying_key());
    let mf = resigned.join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&mf).unwrap()).unwrap();
    std::fs::remove_dir_all(resigned.join("keys")).unwrap();
    std::fs::create_dir(resigned.join("keys")).unwrap();
    let files = m["files"].as_object_mut().unwrap();
    files.retain(|k, _| !k.starts_with("keys/"));
    for sub in ["determinations", "previous"] {
        for e in std::fs::read_dir(resigned.join(sub)).unwrap() {
            let f = e.unwrap().path();
            let mut v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
            v.as_object_mut().unwrap().remove("signature");
            v["key_id"] = other_id.clone().into();
            let bytes = sit_core::signing::sign_value(v, &other);
            std::fs::write(&f, &bytes).unwrap();
            let name = format!("{sub}/{}", f.file_name().unwrap().to_str().unwrap());
            files.insert(name, blake3::hash(&bytes).to_hex().to_string().into());
        }
    }
    let pem = sit_core::signing::public_pem(&other.verifying_key());
    let kf = format!("keys/{}.pem", other_id.replace(':', "-"));
    std::fs::write(resigned.join(&kf), &pem).unwrap();
    files.insert(kf, blake3::hash(pem.as_bytes()).to_hex().to_string().into());
    std::fs::write(&mf, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    let o = verify(&resigned);
    assert!(
        o.status.success(),
        "unpinned, the bundle's own keys vouch for it: {}",
        text(&o)
    );
    let o = sit(&[
        "audit",
        "verify",
        resigned.to_str().unwrap(),
        "--key",
        &root_hex,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        first_failure(&o).contains(&format!(
            "signed by key {other_id} but the key given is {root_id}"
        )),
        "{}",
        text(&o)
    );
    let o = sit(&[
        "audit",
        "replay",
        resigned.to_str().unwrap(),
        "--key",
        &root_hex,
    ]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains(&other_id), "{}", text(&o));

    // The bundle carries the part of the price book the day needs, not the whole book: each
    // record commits to its window's excerpt, and an altered excerpt is named by replay.
    assert!(!elsewhere.join("price-book.json").exists());
    let ex_path = elsewhere.join("price-excerpt.json");
    let mut ex: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&ex_path).unwrap()).unwrap();
    for t in ["t1", "t2", "t3"] {
        let v: serde_json::Value = serde_json::from_slice(
            &std::fs::read(elsewhere.join(format!("determinations/{t}.v1.json"))).unwrap(),
        )
        .unwrap();
        assert!(v["prices"]["excerpt"].is_string(), "{t}: {}", v["prices"]);
    }
    let tampered = t.path().join("tampered/bundle");
    copy_dir(&elsewhere, &tampered);
    for e in ex["entries"].as_array_mut().unwrap() {
        e["source"] = "a price page that never said this".into();
    }
    let bytes = serde_json::to_vec_pretty(&ex).unwrap();
    std::fs::write(tampered.join("price-excerpt.json"), &bytes).unwrap();
    let mf = tampered.join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&mf).unwrap()).unwrap();
    m["files"]["price-excerpt.json"] = serde_json::json!(blake3::hash(&bytes).to_hex().to_string());
    std::fs::write(&mf, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    let o = replay(&tampered);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("an entry the day needs is missing or altered"),
        "{}",
        text(&o)
    );

    // A record whose stated starting level does not follow from the previous record, signed
    // by the publisher's own key (the manifest updated too): named by verify, and replay is
    // no longer identical although the record recomputes from its own (wrong) link.
    let forged = t.path().join("forged/bundle");
    copy_dir(&elsewhere, &forged);
    // (The schedule's seeds come from the OS, so which tiers chain varies: take one that does.)
    let (tier, f, mut v) = ["t1", "t2", "t3"]
        .iter()
        .find_map(|t| {
            let f = forged.join(format!("determinations/{t}.v1.json"));
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
            (v["chain"]["basis"] == "chained").then_some((*t, f, v))
        })
        .unwrap_or_else(|| panic!("no chained tier on the second day: {index}"));
    v["chain"]["link"]["level"] = serde_json::json!("9.000000000");
    v.as_object_mut().unwrap().remove("signature");
    let bytes = sit_core::signing::sign_value(v, &key);
    std::fs::write(&f, &bytes).unwrap();
    let mf = forged.join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&mf).unwrap()).unwrap();
    m["files"][format!("determinations/{tier}.v1.json")] =
        serde_json::json!(blake3::hash(&bytes).to_hex().to_string());
    std::fs::write(&mf, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    let o = verify(&forged);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let first = first_failure(&o);
    assert!(
        first.starts_with("FAILED  link:")
            && first.contains(&format!("{tier}.v1.json starts from level")),
        "{}",
        text(&o)
    );
    let o = replay(&forged);
    assert!(!o.status.success(), "{}", text(&o));
    // Exporting into a folder that is not empty is refused.
    let o = sit(&[
        "audit",
        "export",
        "--date",
        "2026-01-05",
        "--out",
        elsewhere.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
}

fn edit_lines(dir: &Path, f: impl FnOnce(&mut Vec<String>)) {
    let p = dir.join("observations.jsonl");
    let mut lines: Vec<String> = std::fs::read_to_string(&p)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    f(&mut lines);
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
}

/// Line 206 of the golden observations is seq 205, an answered t1 probe in the middle of the day.
const LINE: usize = 205;

#[test]
fn edited_price_is_named_and_breaks_the_replay() {
    let (_t, dir) = copy_golden();
    edit_lines(&dir, |l| {
        let mut o: serde_json::Value = serde_json::from_str(&l[LINE]).unwrap();
        assert_eq!(o["seq"], 205);
        o["price"]["input"] = "9.000000".into();
        o["cost"] = "0.000123000000".into();
        l[LINE] = serde_json::to_string(&o).unwrap();
    });
    let v = verify(&dir);
    assert_eq!(v.status.code(), Some(1));
    assert!(
        first_failure(&v).contains("seq 206 does not link to seq 205: seq 205 was altered"),
        "{}",
        text(&v)
    );
    let r = replay(&dir);
    assert!(!r.status.success());
    assert!(text(&r).contains("OBSERVATION  seq 205"), "{}", text(&r));
}

#[test]
fn deleted_record_is_named_and_breaks_the_replay() {
    let (_t, dir) = copy_golden();
    edit_lines(&dir, |l| {
        l.remove(LINE);
    });
    let v = verify(&dir);
    assert_eq!(v.status.code(), Some(1));
    assert!(
        first_failure(&v).contains("record 205 is missing (deleted)"),
        "{}",
        text(&v)
    );
    assert!(
        text(&v).contains("merkle:"),
        "the Merkle root also catches it"
    );
    assert!(!replay(&dir).status.success());
}

#[test]
fn inserted_record_is_named_and_breaks_the_replay() {
    let (_t, dir) = copy_golden();
    edit_lines(&dir, |l| {
        let mut o: serde_json::Value = serde_json::from_str(&l[LINE]).unwrap();
        o["nonce"] = "feedfacefeedface".into();
        o["seq"] = 206.into();
        l.insert(LINE + 1, serde_json::to_string(&o).unwrap());
    });
    let v = verify(&dir);
    assert_eq!(v.status.code(), Some(1));
    let f = first_failure(&v);
    assert!(
        f.contains("line 207: seq 206 does not link to seq 205"),
        "{}",
        text(&v)
    );
    assert!(!replay(&dir).status.success());
}

#[test]
fn reordered_records_are_named_and_break_the_replay() {
    let (_t, dir) = copy_golden();
    edit_lines(&dir, |l| l.swap(LINE, LINE + 1));
    let v = verify(&dir);
    assert_eq!(v.status.code(), Some(1));
    assert!(
        first_failure(&v).contains("line 206: seq 206 follows seq 204"),
        "{}",
        text(&v)
    );
    let r = replay(&dir);
    assert!(!r.status.success());
    assert!(text(&r).contains("STRUCTURE"), "{}", text(&r));
}

#[test]
fn changed_revealed_seed_is_named_and_breaks_the_replay() {
    let (_t, dir) = copy_golden();
    let p = dir.join("commitments/2026-01-05.reveal.json");
    let mut r: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    let seed = u64::from_str_radix(r["seed"].as_str().unwrap(), 16).unwrap();
    r["seed"] = format!("{:016x}", seed ^ 1).into();
    std::fs::write(&p, serde_json::to_vec_pretty(&r).unwrap()).unwrap();
    let v = verify(&dir);
    assert_eq!(v.status.code(), Some(1));
    assert!(
        first_failure(&v)
            .contains("commitment: 2026-01-05: the revealed seed does not match the commitment"),
        "{}",
        text(&v)
    );
    let r = replay(&dir);
    assert!(!r.status.success());
    assert!(
        text(&r).contains("revealed seed does not match"),
        "{}",
        text(&r)
    );
}

#[test]
fn a_cherry_picked_probe_is_named_by_the_commitment_check() {
    // Re-chain a record whose prompt seed was swapped (as if a favourable probe replaced the
    // scheduled one), fixing every hash after it: only the commitment can tell.
    let (_t, dir) = copy_golden();
    edit_lines(&dir, |l| {
        let mut prev: Option<String> = None;
        for (i, line) in l.iter_mut().enumerate() {
            let mut o: serde_json::Value = serde_json::from_str(line).unwrap();
            if i == LINE {
                o["seed"] = (o["seed"].as_u64().unwrap() ^ 1).into();
            }
            if let Some(p) = &prev {
                o["prev_hash"] = p.clone().into();
            }
            // Re-serialise exactly as the store does (field order preserved by the struct).
            let rec: sit_core::observation::Observation = serde_json::from_value(o).unwrap();
            *line = serde_json::to_string(&rec).unwrap();
            prev = Some(blake3::hash(line.as_bytes()).to_hex().to_string());
        }
    });
    // chain.json's last hash would give it away too; the forger fixes that as well.
    let last = std::fs::read_to_string(dir.join("observations.jsonl")).unwrap();
    let last_line = last.lines().last().unwrap();
    let cp = dir.join("chain.json");
    let mut c: serde_json::Value = serde_json::from_slice(&std::fs::read(&cp).unwrap()).unwrap();
    c["last_hash"] = blake3::hash(last_line.as_bytes())
        .to_hex()
        .to_string()
        .into();
    std::fs::write(&cp, serde_json::to_vec_pretty(&c).unwrap()).unwrap();
    let v = verify(&dir);
    assert_eq!(v.status.code(), Some(1));
    let out = text(&v);
    assert!(
        out.contains("observation seq 205") && out.contains("is not in the committed schedule"),
        "{out}"
    );
}

/// Issue 28: a day determined before a late vantage's records arrived got a bundle whose
/// Merkle roots no longer matched once those records were stored (the export read the whole
/// window, and replay used them). The determination now records how far into the store it
/// read, and replay and verify leave out what was stored later: the late records are counted,
/// and the bundle verifies.
#[test]
fn a_late_vantages_records_stored_after_the_determination_leave_the_bundle_verifying() {
    use sit::publisher::{publish, Request};
    use sit_core::time::{Date, HOUR_MS};
    let g = common::golden_bundle();
    let day = Date::parse("2026-01-05").unwrap();
    // the day's records from its last two hours on arrive after the determination
    let held = g
        .records
        .iter()
        .position(|(_, _, o)| o.at_ms >= day.succ().start_ms() - 2 * HOUR_MS)
        .unwrap();
    let mut early = common::golden_bundle();
    early.records.truncate(held);
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let (store, archive) = common::store_from(&early, &data);
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let at = day.succ().start_ms() + 600_000;
    let versions = sit_core::versions::Registry::embedded();
    let mut published = Vec::new();
    for tier in ["t1", "t2", "t3"] {
        let req = Request {
            tier,
            date: day,
            now_ms: at,
            key: &key,
            allow_empty: false,
        };
        let p = publish(&store, &archive, versions, &req).unwrap();
        let rec = sit_core::record::parse(&std::fs::read(&p.path).unwrap()).unwrap();
        assert_eq!(
            rec.determination.read_below_seq,
            Some(held as u64),
            "{tier}: the record says how far it read"
        );
        published.push(rec.determination);
    }
    // the late records are stored (the same bytes as in the golden bundle)
    for (_, hash, o) in &g.records[held..] {
        let h = store.append(&mut [o.clone()]).unwrap();
        assert_eq!(&h[0], hash);
    }
    let n_late = g.records[held..]
        .iter()
        .filter(|(_, _, o)| o.at_ms < day.succ().start_ms())
        .count() as u64;
    assert!(n_late > 0);
    // they would change what the day says (else this test could not fail)
    let m = versions
        .methodology(&published[0].methodology_hash)
        .unwrap();
    let suite = versions.suite(&published[0].suite_hash).unwrap();
    let now = sit::determine::one_day(
        &store,
        suite,
        m,
        "t1",
        day,
        None,
        None,
        1,
        "2026-01-06T00:10:00.000Z",
        i64::MAX,
        None,
        &[],
    )
    .unwrap();
    assert_ne!(now.merkle_root, published[0].merkle_root);

    let out = t.path().join("bundle");
    let e = sit::audit::bundle::export(&store, &archive, versions, day, &out, at).unwrap();
    assert_eq!(e.late_records, n_late);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["late_records"], n_late);
    let o = verify(&out);
    assert!(text(&o).starts_with("VERIFIED"), "{}", text(&o));
    let o = replay(&out);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(text(&o).matches(": identical").count(), 3, "{}", text(&o));
}
