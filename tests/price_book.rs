//! Methodology 1.4.0 (issue 12, "frozen costs"): attempts are costed when a day is determined,
//! from the price book as it then stands. A list price corrected (backdated) before the day's
//! restatement cutoff restates the day; the same correction after the cutoff leaves the day as
//! published; the exported bundle carries every book version and replays every published
//! version of the day exactly.
//!
//! The store is the committed golden bundle's (real simulator exchanges of 2026-01-05), its
//! schedules read into the price book; the archive is fresh, so the day is determined under
//! the current methodology.

mod common;
use common::{golden_bundle, store_from};

use sit::audit::bundle::{self, Bundle};
use sit::publisher::policy::Refusal;
use sit::publisher::{publish, PublishError, Request};
use sit_core::fixed::Fixed;
use sit_core::index::Status;
use sit_core::price::{PriceEntry, PriceSchedule};
use sit_core::time::{Date, HOUR_MS};
use sit_core::versions::Registry;

/// Every entry of `schedule` in force during `day`, with its rates scaled by `num/den`
/// (a backdated correction: same `effective_from`, other prices).
fn corrected(schedule: &PriceSchedule, day: Date, num: i128, den: i128) -> PriceSchedule {
    let (from, to) = (day.start_ms() - 24 * HOUR_MS, day.succ().start_ms());
    PriceSchedule(
        schedule
            .0
            .iter()
            .filter(|e| {
                e.effective_from_ms < to
                    && schedule
                        .0
                        .iter()
                        .find(|n| n.effective_from_ms > e.effective_from_ms)
                        .is_none_or(|n| n.effective_from_ms > from)
            })
            .map(|e| PriceEntry {
                input: sit_core::fixed::Rate(e.input.0 * num / den),
                output: sit_core::fixed::Rate(e.output.0 * num / den),
                cached_input: sit_core::fixed::Rate(e.cached_input.0 * num / den),
                ..e.clone()
            })
            .collect(),
    )
}

#[test]
fn a_backdated_price_correction_restates_before_the_cutoff_and_not_after() {
    let versions = Registry::embedded();
    assert!(versions.current_methodology().costs_at_determination);
    let g = golden_bundle();
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let (store, archive) = store_from(&g, &data);
    let day = Date::parse("2026-01-05").unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let req = |now_ms: i64| Request {
        tier: "t1",
        date: day,
        now_ms,
        key: &key,
        allow_empty: false,
    };
    let end = day.succ().start_ms();
    let original: Vec<(String, PriceSchedule)> = g
        .prices
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();

    // 1. Published ten minutes after the day (past the settlement lag).
    let p1 = publish(&store, &archive, versions, &req(end + 600_000)).unwrap();
    let r1 = sit_core::record::parse(&std::fs::read(&p1.path).unwrap()).unwrap();
    let d1 = &r1.determination;
    assert_eq!(d1.status, Status::Base, "a fresh archive starts the chain");
    let used1 = d1.prices.clone().expect("1.4.0 names its price book");
    assert_eq!(used1.costed_as_observed, 0);
    let v1 = d1.value.unwrap();

    // 2. A correction recorded an hour later, before the cutoff (the next day's end): every
    // price in force in the day (and its window) was 1.5x what the book said.
    for (ep, s) in &original {
        let n = store
            .record_prices(
                [(ep.as_str(), &corrected(s, day, 3, 2))],
                end + HOUR_MS,
                |_, _| Some("price page, corrected".into()),
            )
            .unwrap();
        assert!(!n.is_empty(), "{ep}: nothing corrected");
    }
    let p2 = publish(&store, &archive, versions, &req(end + 2 * HOUR_MS)).unwrap();
    let r2 = sit_core::record::parse(&std::fs::read(&p2.path).unwrap()).unwrap();
    let d2 = &r2.determination;
    assert_eq!(r2.version, 2, "restated");
    assert_eq!(d2.status, Status::Base, "a restated anchor is BASE again");
    let used2 = d2.prices.clone().unwrap();
    assert!(used2.version > used1.version);
    assert_ne!(used2.hash, used1.hash);
    // every rate is 1.5x (rounded down to the rate's unit, a few parts per million of the
    // simulator's rates), so every day price and their trimmed geometric mean are 1.5x
    let v2 = d2.value.unwrap();
    let want = Fixed(v1.0 * 3 / 2);
    assert!(
        (v2.0 - want.0).abs() * 100_000 <= want.0,
        "restated value {v2} is not 1.5 x {v1}"
    );

    // 3. Another correction (2x the original) recorded after the cutoff: the day stands.
    let late = day.succ().succ().start_ms() + HOUR_MS;
    for (ep, s) in &original {
        store
            .record_prices([(ep.as_str(), &corrected(s, day, 2, 1))], late, |_, _| None)
            .unwrap();
    }
    let e = publish(&store, &archive, versions, &req(late + HOUR_MS)).unwrap_err();
    assert!(
        matches!(e, PublishError::Refused(Refusal::CutoffPassed { .. })),
        "{e}"
    );

    // 4. The bundle carries every version of the book; both published versions replay
    // exactly from the book version each names.
    let out = t.path().join("bundle");
    bundle::export(&store, &archive, versions, day, &out, late + 2 * HOUR_MS).unwrap();
    let b = Bundle::load(&out).unwrap();
    assert_eq!(
        b.book.as_ref().unwrap().version(),
        store.book().unwrap().version()
    );
    let r = bundle::replay(&b);
    assert_eq!(r.determinations.len(), 2, "{r:?}");
    assert!(r.identical(), "{r:?}");
    assert!(bundle::verify(&b).is_empty(), "{:?}", bundle::verify(&b));

    // 5. A bundle whose book was edited is caught by the hash its records name.
    let edited = t.path().join("edited");
    common::copy_dir(&out, &edited);
    let path = edited.join("price-book.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let first_input = text.find("\"input\": \"").unwrap() + 10;
    let mut bytes = text.into_bytes();
    bytes[first_input] = if bytes[first_input] == b'9' {
        b'8'
    } else {
        b'9'
    };
    std::fs::write(&path, bytes).unwrap();
    let b = Bundle::load(&edited).unwrap();
    let r = bundle::replay(&b);
    assert!(!r.identical());
    assert!(
        r.determinations
            .iter()
            .all(|(_, o)| o.contains("price book version")),
        "{r:?}"
    );
}
