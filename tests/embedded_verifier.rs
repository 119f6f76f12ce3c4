//! The embeddable verifier: `crates/sit-core/examples/verify_record.rs` (which depends on
//! `sit-core` alone) checks a record that the real `sit` binary published, and rejects it once
//! a single byte is flipped or when another key is given.

mod common;
use common::{golden_bundle, sit, store_from, text};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The example's binary, built from the source every time (a no-op when it is fresh): a
/// binary left in `target/` from an earlier build once hid the example's source being deleted.
fn example() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let bin = profile_dir.join("examples").join("verify_record");
    let mut c = Command::new(env!("CARGO"));
    c.args(["build", "-p", "sit-core", "--example", "verify_record"]);
    if profile_dir.ends_with("release") {
        c.arg("--release");
    }
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    bin
}

fn check(record: &Path, key: &Path) -> Output {
    Command::new(example())
        .arg(record)
        .arg(key)
        .output()
        .unwrap()
}

#[test]
fn example_verifier_accepts_a_published_record_and_rejects_a_flipped_byte() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    drop(store_from(&golden_bundle(), &data));
    let keys = t.path().join("keys");
    let o = sit(&["keys", "generate", "--out", keys.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let signing = keys.join("signing-key.pem");
    let public = keys.join("public-key.pem");
    let o = sit(&[
        "--data",
        data.to_str().unwrap(),
        "publish",
        "--date",
        "2026-01-05",
        "--tier",
        "t1",
        "--key",
        signing.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let record = data.join("published/t1/2026-01-05.v1.json");

    let o = check(&record, &public);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    // The first day of the demo store is the chain's anchor (BASE).
    assert!(out.starts_with("VALID t1 2026-01-05 BASE "), "{out}");
    // ... which is not a settlement value, final at its restatement cutoff.
    assert!(
        out.contains("settlement value: no (BASE: the anchor of a chain: no earlier price to compare); in a contract period: refused"),
        "{out}"
    );
    assert!(out.contains("final at 2026-01-07T00:00:00.000Z"), "{out}");
    let current = sit_core::index::Methodology::default();
    assert!(
        out.contains(&format!(
            "methodology {} {}",
            current.version,
            current.hash()
        )),
        "{out}"
    );

    // One flipped byte inside the value: rejected, exit 1.
    let bytes = std::fs::read(&record).unwrap();
    let at = bytes.windows(9).position(|w| w == b"\"value\":\"").unwrap() + 10;
    let mut bad = bytes.clone();
    bad[at] = if bad[at] == b'1' { b'2' } else { b'1' };
    let flipped = t.path().join("flipped.json");
    std::fs::write(&flipped, &bad).unwrap();
    let o = check(&flipped, &public);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with("INVALID"),
        "{}",
        text(&o)
    );

    // Another key: rejected and named.
    let other = t.path().join("other");
    assert!(sit(&["keys", "generate", "--out", other.to_str().unwrap()])
        .status
        .success());
    let o = check(&record, &other.join("public-key.pem"));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("signed by key"), "{}", text(&o));
}
