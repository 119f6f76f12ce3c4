//! Ambiguous signed documents (issue 16), through the real binary and the real server: a
//! record with a fake member before the genuine one, a reformatted copy, upper-case signature
//! hex. `sit verify` refuses each with the reason; `sit serve` does not serve them.

mod common;
use common::{demo, sit, text};
use std::path::Path;

/// One published record and its public key, from a one-day demo on a small market.
fn published(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let data = dir.join("data");
    demo(
        &data,
        &[
            "--days",
            "1",
            "--hour-ms",
            "60",
            "--per-hour",
            "1",
            "--market-size",
            "6",
        ],
    );
    (
        data.join("published/t1/2026-01-05.v1.json"),
        data.join("demo-key/public-key.pem"),
    )
}

fn verify(record: &Path, key: &Path) -> (i32, String) {
    let o = sit(&[
        "verify",
        record.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]);
    (o.status.code().unwrap_or(-1), text(&o))
}

#[test]
fn ambiguous_records_are_refused_by_verify_and_not_served() {
    let t = tempfile::tempdir().unwrap();
    let (record, key) = published(t.path());
    let (code, out) = verify(&record, &key);
    assert_eq!(code, 0, "{out}");
    let genuine = std::fs::read_to_string(&record).unwrap();

    // A fake `value` placed before the genuine record's members.
    let fake = t.path().join("fake.json");
    std::fs::write(
        &fake,
        format!("{{\"value\":\"9.999999999\",{}", &genuine[1..]),
    )
    .unwrap();
    let (code, out) = verify(&fake, &key);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("INVALID") && out.contains("duplicate member `value`"),
        "{out}"
    );

    // Reformatted: the same members, other bytes.
    let pretty = t.path().join("pretty.json");
    let v: serde_json::Value = serde_json::from_str(&genuine).unwrap();
    std::fs::write(&pretty, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    let (code, out) = verify(&pretty, &key);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not the canonical form"), "{out}");

    // Upper-case signature hex.
    let i = genuine.find("\"signature\":\"").unwrap() + 13;
    let mut upper = genuine.clone();
    upper.replace_range(i..i + 128, &genuine[i..i + 128].to_uppercase());
    let up = t.path().join("upper.json");
    std::fs::write(&up, &upper).unwrap();
    let (code, out) = verify(&up, &key);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("lower-case hex"), "{out}");

    // The server's loader uses the same reader: the altered file in the archive is refused
    // (not served, named by /healthz).
    // (The log's hash of the file is updated too, as an insider with write access would, so
    // that the signature check is what refuses it.)
    let altered = format!("{{\"value\":\"9.999999999\",{}", &genuine[1..]);
    std::fs::write(&record, &altered).unwrap();
    let log = t.path().join("data/published/log.jsonl");
    let old = blake3::hash(genuine.as_bytes()).to_hex().to_string();
    let new = blake3::hash(altered.as_bytes()).to_hex().to_string();
    let l = std::fs::read_to_string(&log).unwrap();
    assert!(l.contains(&old), "the log names the record by its blake3");
    std::fs::write(&log, l.replace(&old, &new)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let archive = sit::archive::Archive::for_data(&t.path().join("data"));
        let snap = sit::server::load(&archive, sit_core::probes::Suite::embedded());
        assert!(
            snap.errors
                .iter()
                .any(|e| e.contains("duplicate member `value`")),
            "{:?}",
            snap.errors
        );
        assert!(snap
            .in_force("t1", sit_core::time::Date::parse("2026-01-05").unwrap())
            .is_none());
    });
}
