//! Peer replay of the Standard Token Cost Index from its real price tape
//! (a copy in tests/data/stci, MIT, see its README): every published figure of every day reproduced exactly by the real
//! binary, a doctored published value caught, and further days computed from the tape alone.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn stci() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/stci");
    assert!(
        p.join("observations").is_dir(),
        "the STCI tape is expected at {} (part of the repository)",
        p.display()
    );
    p
}

fn audit(obs: &Path, published: Option<&Path>, json: bool) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sit"));
    c.args(["audit", "stci", "--observations"])
        .arg(obs)
        .arg("--methodology")
        .arg(stci().join("methodology.yaml"));
    if let Some(p) = published {
        c.arg("--published").arg(p);
    }
    if json {
        c.arg("--json");
    }
    c.output().unwrap()
}

#[test]
fn stci_replay_matches_every_published_value_of_every_day() {
    let d = stci();
    let o = audit(&d.join("observations"), Some(&d.join("indices")), true);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    let days: std::collections::BTreeSet<&str> =
        rows.iter().map(|r| r["date"].as_str().unwrap()).collect();
    let files = std::fs::read_dir(d.join("indices")).unwrap().count();
    assert_eq!(days.len(), files, "every published day replayed");
    assert_eq!(days.len(), 44);
    // every index value STCI published is compared and matches in every field
    let published: usize = std::fs::read_dir(d.join("indices"))
        .unwrap()
        .map(|e| {
            let v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(e.unwrap().path()).unwrap()).unwrap();
            v["indices"].as_object().unwrap().len()
        })
        .sum();
    assert_eq!(rows.len(), published);
    for r in &rows {
        assert_eq!(r["match"], true, "{r}");
        assert!(r["computed"]["blended_rate"].is_string());
    }
    let first = &rows[0];
    assert_eq!(
        (first["date"].as_str(), first["index"].as_str()),
        (Some("2026-01-02"), Some("STCI-ALL"))
    );
    assert_eq!(first["computed"]["input_rate"], "1.93");
    assert_eq!(first["computed"]["output_rate"], "7.51");
    assert_eq!(first["computed"]["blended_rate"], "6.11");
    assert_eq!(first["computed"]["model_count"], 316);
    assert_eq!(first["computed"]["dispersion"], "9.11");
}

#[test]
fn stci_replay_names_a_doctored_value_and_computes_further_days() {
    let d = stci();
    let tmp = tempfile::tempdir().unwrap();
    let (obs, published) = (tmp.path().join("obs"), tmp.path().join("pub"));
    std::fs::create_dir_all(&obs).unwrap();
    std::fs::create_dir_all(&published).unwrap();
    for day in ["2026-01-02", "2026-01-03"] {
        std::fs::copy(
            d.join(format!("observations/{day}.jsonl")),
            obs.join(format!("{day}.jsonl")),
        )
        .unwrap();
        std::fs::copy(
            d.join(format!("indices/{day}.json")),
            published.join(format!("{day}.json")),
        )
        .unwrap();
    }
    // a further day in the same format, with no published file: computed, not compared
    std::fs::copy(
        d.join("observations/2026-02-14.jsonl"),
        obs.join("2026-02-15.jsonl"),
    )
    .unwrap();
    // doctor one published blended rate by one cent
    let f = published.join("2026-01-03.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
    let b = v["indices"]["STCI-ALL"]["blended_rate"].as_f64().unwrap();
    v["indices"]["STCI-ALL"]["blended_rate"] =
        serde_json::json!(((b * 100.0).round() + 1.0) / 100.0);
    std::fs::write(&f, serde_json::to_vec(&v).unwrap()).unwrap();

    let o = audit(&obs, Some(&published), false);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    let line = out
        .lines()
        .find(|l| l.starts_with("2026-01-03  STCI-ALL"))
        .unwrap();
    assert!(line.ends_with("MISMATCH: blended_rate"), "{line}");
    assert!(out
        .lines()
        .any(|l| l.starts_with("2026-01-02  STCI-ALL") && l.ends_with("match")));
    let further: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("2026-02-15"))
        .collect();
    assert_eq!(further.len(), 4, "{out}");
    assert!(further.iter().all(|l| l.ends_with(" -")), "{further:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("1 index values differ"));
}
