//! `sit report suitability` on a demo store (issue 29): its figures agree with an independent
//! recomputation. Concentration by hand from the records in force; influence by scaling one
//! provider's costs in the day's own rows (its prices times a factor) and determining the day
//! again with the kernel: at the change the report states, the value has moved by the target,
//! and just short of it, not; beyond the trim, the largest move it states.

mod common;
use common::{demo, sit, text};

use sit_core::fixed::Fixed;
use sit_core::index::compute_day;
use std::path::Path;

/// The record in force for (tier, date): the highest version.
fn in_force(data: &Path, tier: &str, date: &str) -> serde_json::Value {
    let dir = data.join("published").join(tier);
    let mut best: Option<(u32, std::path::PathBuf)> = None;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        if let Some(v) = name
            .strip_prefix(&format!("{date}.v"))
            .and_then(|r| r.strip_suffix(".json"))
            .and_then(|v| v.parse::<u32>().ok())
        {
            if best.as_ref().is_none_or(|(b, _)| v > *b) {
                best = Some((v, p));
            }
        }
    }
    serde_json::from_slice(&std::fs::read(best.unwrap().1).unwrap()).unwrap()
}

fn fixed(v: &serde_json::Value) -> Fixed {
    Fixed::parse(v.as_str().unwrap_or_else(|| panic!("a decimal: {v}"))).unwrap()
}

/// The day's value with `provider`'s costs times `k` (9 places), recomputed here from the
/// bundle's rows by the kernel.
fn value_at(
    b: &sit::audit::bundle::Bundle,
    p: &sit_core::record::Publication,
    provider: &str,
    k: i128,
) -> Fixed {
    let parts =
        sit::audit::bundle::day_parts(b, b.records.iter().map(|(_, h, o)| (o, h)), p).unwrap();
    let rows: Vec<_> = parts
        .rows
        .iter()
        .map(|o| {
            let mut o = *o;
            let group = &parts.providers[o.endpoint as usize];
            if group == provider {
                // half to even, by hand
                let n = o.cost_pusd * k;
                let (q, r) = (n.div_euclid(1_000_000_000), n.rem_euclid(1_000_000_000));
                o.cost_pusd = q + i128::from(r > 500_000_000 || (r == 500_000_000 && q % 2 == 1));
            }
            o
        })
        .collect();
    let d = &p.determination;
    let c = compute_day(&b.methodology, &parts.input_with(d, &b.suite.hash, &rows));
    c.value.unwrap()
}

#[test]
fn report_suitability_agrees_with_recomputation_by_hand_and_by_the_kernel() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    demo(&data, &["--days", "3", "--hour-ms", "300"]);
    let out = t.path().join("report");
    let o = sit(&[
        "--data",
        data.to_str().unwrap(),
        "report",
        "suitability",
        "--format",
        "json",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["kind"], "sit-suitability");
    assert_eq!(r["from"], "2026-01-05");
    // the files: the same report three ways, and its charts
    let md = std::fs::read_to_string(out.join("suitability.md")).unwrap();
    assert!(
        md.contains("## Figures against the methodology's thresholds"),
        "{md}"
    );
    assert!(md.contains("![t1: The index and the list-price average](suitability-t1-values.svg)"));
    let svg = std::fs::read_to_string(out.join("suitability-t1-values.svg")).unwrap();
    assert!(svg.starts_with("<svg"), "{svg}");
    let html = std::fs::read_to_string(out.join("suitability.html")).unwrap();
    assert!(html.contains("<figure><svg"), "charts inline");
    assert_eq!(
        std::fs::read_to_string(out.join("suitability.json"))
            .unwrap()
            .trim(),
        String::from_utf8_lossy(&o.stdout).trim()
    );

    let mut influence_checked = 0;
    for tier in r["tiers"].as_array().unwrap() {
        let tid = tier["tier"].as_str().unwrap();
        for day in tier["days"].as_array().unwrap() {
            let date = day["date"].as_str().unwrap();
            // every day the demo published recomputes from its bundle
            assert_eq!(day["recomputed"], true, "{tid} {date}");
            let rec = in_force(&data, tid, date);
            let d = rec.get("determination").unwrap_or(&rec);
            assert_eq!(day["status"], d["status"]);
            if !matches!(d["status"].as_str(), Some("FINAL" | "RESTATED")) {
                assert!(day["concentration"].is_null());
                continue;
            }
            // HHI by hand: 10,000 x sum of squared shares of the published weights
            let w: Vec<f64> = d["leave_one_provider_out"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["weight"].as_str().unwrap().parse::<f64>().unwrap())
                .filter(|w| *w > 0.0)
                .collect();
            let total: f64 = w.iter().sum();
            let hhi = 10_000.0 * w.iter().map(|x| (x / total).powi(2)).sum::<f64>();
            let stated = day["concentration"]["hhi"].as_f64().unwrap();
            assert!(
                (hhi - stated).abs() <= 0.5,
                "{tid} {date}: HHI {hhi} by hand, {stated} stated"
            );
            assert_eq!(day["price_sources"], w.len());

            // influence, by the kernel on the bundle's rows
            let b = sit::audit::bundle::Bundle::load(&data.join("archive").join(date)).unwrap();
            let pubs = b.publications().unwrap();
            let (_, p, _) = pubs
                .iter()
                .filter(|(_, p, _)| p.determination.tier == tid)
                .max_by_key(|(_, p, _)| p.version)
                .unwrap();
            let base = p.determination.value.unwrap();
            let moved = |v: Fixed| (v.0 - base.0) as f64 / base.0 as f64;
            for i in day["influence"].as_array().unwrap() {
                let provider = i["provider"].as_str().unwrap();
                // the largest rise it states is where the value levels off: 1000x its prices
                // moves it no further
                let max_up = fixed(&i["max_up"]).0 as f64 / 1e9;
                let at_1000 = moved(value_at(&b, p, provider, 1000 * 1_000_000_000));
                assert!(
                    (at_1000 - max_up).abs() < 2e-9,
                    "{tid} {date} {provider}: {at_1000} at x1000, {max_up} stated"
                );
                // the change for a tick: reached at the stated change, not at 99% of it
                let tick = fixed(&tier["tick"]).0 as f64 / base.0 as f64;
                for (key, target, up) in [
                    ("tick_up", tick, true),
                    ("pct_up", 0.01, true),
                    ("tick_down", tick, false),
                    ("pct_down", 0.01, false),
                ] {
                    let Some(c) = i[key].as_str() else {
                        // none can: not even the largest move reaches it
                        let max = if up {
                            max_up
                        } else {
                            -(fixed(&i["max_down"]).0 as f64 / 1e9)
                        };
                        assert!(max < target + 1e-9, "{tid} {date} {provider} {key}: none can, yet the largest move is {max}");
                        continue;
                    };
                    let c = Fixed::parse(c).unwrap().0;
                    // (the report compares shares rounded to 9 places: 1e-9 is one unit)
                    let at = |change: i128| {
                        let m = moved(value_at(&b, p, provider, 1_000_000_000 + change));
                        if up {
                            m
                        } else {
                            -m
                        }
                    };
                    assert!(
                        at(c) >= target - 1e-9,
                        "{tid} {date} {provider} {key}: {c} moves it {}",
                        at(c)
                    );
                    let short = c * 99 / 100;
                    assert!(
                        at(short) < target,
                        "{tid} {date} {provider} {key}: 99% of {c} already moves it {}",
                        at(short)
                    );
                    influence_checked += 1;
                }
            }
        }
    }
    assert!(
        influence_checked > 0,
        "no FINAL day with a reachable target: {}",
        text(&o)
    );
    // thresholds: every figure of section 15 set against its bound
    let checks = r["checks"].as_array().unwrap();
    assert!(checks
        .iter()
        .any(|c| c["id"] == "influence_max" && c["tier"] == "t1"));
    assert!(checks
        .iter()
        .all(|c| ["within", "beyond", "no data"].contains(&c["result"].as_str().unwrap())));
    // families: each of the suite's, with its difficulty
    assert_eq!(r["families"].as_array().unwrap().len(), 12);

    // a period with nothing published is named
    let o = sit(&[
        "--data",
        data.to_str().unwrap(),
        "report",
        "suitability",
        "--from",
        "2025-01-01",
        "--to",
        "2025-01-31",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains(
            "no day is published and nothing is stored between 2025-01-01 and 2025-01-31"
        ),
        "{}",
        text(&o)
    );
    let o = sit(&[
        "--data",
        data.to_str().unwrap(),
        "report",
        "suitability",
        "--from",
        "2026-01-07",
        "--to",
        "2026-01-05",
    ]);
    assert!(
        text(&o).contains("--from 2026-01-07 is after --to 2026-01-05"),
        "{}",
        text(&o)
    );
}
