//! `sit observations` (issue 13): what the store holds, listed by the real binary from a store
//! rebuilt from the golden bundle: the table counts every record; filters select by day,
//! endpoint, tier and failure; JSON lines are the stored records (evidence only on request).

mod common;
use common::{golden_bundle, store_from, text};
use std::process::Command;

fn sit(data: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sit"))
        .arg("--data")
        .arg(data)
        .arg("observations")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn observations_are_listed_filtered_and_exported_as_stored() {
    let g = golden_bundle();
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    drop(store_from(&g, &data));
    let stored: Vec<_> = g.records.iter().map(|(_, _, o)| o.clone()).collect();

    let o = sit(&data, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(
        out.ends_with(&format!("{} observations\n", stored.len())),
        "{out}"
    );
    assert_eq!(out.lines().count(), stored.len() + 2, "header, rows, count");

    // filters: day, endpoint, tier, failed (those of the golden store's first failure)
    let f = stored
        .iter()
        .find(|o| o.failure.is_some())
        .expect("the golden store has failures");
    let day = sit_core::time::Date::of_ms(f.at_ms);
    let want = stored
        .iter()
        .filter(|o| {
            o.endpoint == f.endpoint
                && o.tier == f.tier
                && o.failure.is_some()
                && sit_core::time::Date::of_ms(o.at_ms) == day
        })
        .count();
    let all_of_endpoint = stored.iter().filter(|o| o.endpoint == f.endpoint).count();
    assert!(want >= 1 && want < all_of_endpoint);
    let o = sit(
        &data,
        &[
            "--date",
            &day.to_string(),
            "--endpoint",
            &f.endpoint,
            "--tier",
            &f.tier,
            "--failed",
        ],
    );
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(out.ends_with(&format!("\n{want} observations\n")), "{out}");
    for row in out.lines().skip(1).take(want) {
        assert!(
            row.contains(&f.endpoint) && row.contains(&format!(" {} ", f.tier)),
            "{row}"
        );
        assert!(!row.contains(" ok "), "a success listed as failed: {row}");
    }

    // JSON lines: each the stored record, without its evidence unless asked for
    let o = sit(&data, &["--json", "--endpoint", "sim-atlas"]);
    assert!(o.status.success(), "{}", text(&o));
    let lines: Vec<sit_core::observation::Observation> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let atlas: Vec<_> = stored
        .iter()
        .filter(|o| o.endpoint == "sim-atlas")
        .collect();
    assert_eq!(lines.len(), atlas.len());
    for l in &lines {
        assert!(l.evidence.is_none());
        let s = atlas.iter().find(|o| o.seq == l.seq).unwrap();
        let mut s = (*s).clone();
        s.evidence = None;
        assert_eq!(*l, s);
    }
    let o = sit(&data, &["--json", "--evidence", "--endpoint", "sim-atlas"]);
    let first: sit_core::observation::Observation =
        serde_json::from_str(String::from_utf8(o.stdout).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(
        Some(&first),
        atlas.iter().find(|o| o.seq == first.seq).copied(),
        "with --evidence the record is byte for byte what is stored"
    );

    // bad input names the fix
    let o = sit(&data, &["--tier", "t9"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("tiers are t1, t2, t3"), "{}", text(&o));
    let o = sit(&t.path().join("nothing"), &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}
