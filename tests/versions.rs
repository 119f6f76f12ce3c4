//! Versions by hash: a day made under an older methodology recomputes, exports and replays
//! under *that* methodology after the default has changed.
//!
//! The store is rebuilt from the committed golden bundle (its records start at seq 0 with a
//! zero anchor, so the rebuilt store holds byte-identical records), the day is published under
//! methodology 1.0.0, then a registry whose current methodology is a different (test) version
//! takes over: a restatement attempt recomputes under 1.0.0 (same value: refused as unchanged,
//! where the new rules would have given another value), a day published for the first time
//! uses the new rules, and the bundle exported for the old day carries 1.0.0 and replays
//! identical.

mod common;
use common::{golden_bundle, store_from};

use sit::audit::bundle::{self, Bundle};
use sit::publisher::policy::Refusal;
use sit::publisher::{publish, PublishError, Request};
use sit_core::fixed::Fixed;
use sit_core::index::{Methodology, Status};
use sit_core::time::Date;
use sit_core::versions::Registry;

/// Methodology 1.0.0 with other trimming and a lower endpoint floor: a different hash and,
/// on the golden day, a different value.
fn changed_rules() -> Methodology {
    let mut m = Methodology::v1_0_0();
    m.version = "1.0.1-test".into();
    m.trim_fraction = Fixed(0);
    m.max_endpoint_weight = Fixed(1_000_000_000);
    m.min_endpoints = 3;
    m
}

#[test]
fn a_day_made_under_an_older_methodology_recomputes_under_it_after_the_default_changed() {
    let g = golden_bundle();
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let (store, archive) = store_from(&g, &data);
    let day = Date::parse("2026-01-05").unwrap();
    let published: serde_json::Value = serde_json::from_slice(
        &g.determinations
            .iter()
            .find(|(n, _)| n.ends_with("t1.v1.json"))
            .unwrap()
            .1,
    )
    .unwrap();
    // Ten minutes after the day ends: well inside the restatement window.
    let at = day.succ().start_ms() + 600_000;
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let req = |tier: &'static str, date: Date, now_ms: i64| Request {
        tier,
        date,
        now_ms,
        key: &key,
        allow_empty: false,
    };

    // 1. Published by a build whose current methodology is 1.0.0: the golden value, Merkle
    // root and hash.
    let old = &Registry::new(
        vec![Methodology::v1_0_0()],
        vec![sit_core::probes::Suite::v1_0_0().clone()], // the suite the golden day was probed with
    )
    .unwrap();
    let p = publish(&store, &archive, old, &req("t1", day, at)).unwrap();
    let rec = sit_core::record::parse(&std::fs::read(&p.path).unwrap()).unwrap();
    for field in [
        "value",
        "merkle_root",
        "methodology_hash",
        "suite_hash",
        "status",
    ] {
        assert_eq!(
            serde_json::to_value(&rec.determination).unwrap()[field],
            published[field],
            "{field}"
        );
    }
    let v1_hash = Methodology::v1_0_0().hash();
    assert_eq!(rec.determination.methodology_hash, v1_hash);

    // The new rules really give another value for this day (else this test could not fail).
    let new_rules = changed_rules();
    let suite = old.current_suite();
    let under_new = sit::determine::one_day(
        &store,
        suite,
        &new_rules,
        "t1",
        day,
        None,
        None,
        1,
        "2026-01-06T00:00:00.000Z",
        i64::MAX,
        None,
        &[],
    )
    .unwrap();
    assert_eq!(under_new.status, Status::Final);
    let (a, b) = (
        under_new.value.unwrap().0,
        rec.determination.value.unwrap().0,
    );
    assert!(
        (a - b).abs() * 1000 > b,
        "new rules {a} vs 1.0.0 {b}: not a material change"
    );

    // A preview of the store (`sit index`) recomputes the published day under 1.0.0 and
    // an unpublished one under the current methodology.
    let published = sit::publisher::published_methodologies(&archive).unwrap();
    let made_with = |tier: &str, date: Date| published.get(&(tier.to_string(), date)).cloned();
    let preview = sit::determine::all_days(
        &store,
        Registry::embedded(),
        &["t1".to_string(), "t2".to_string()],
        "2026-01-06T00:00:00.000Z",
        &made_with,
    )
    .unwrap();
    let of = |t: &str| {
        preview
            .iter()
            .find(|d| d.tier == t && d.date == day)
            .unwrap()
    };
    assert_eq!(of("t1").methodology_hash, v1_hash);
    assert_eq!(of("t1").value, rec.determination.value);
    assert_eq!(
        of("t2").methodology_hash,
        Registry::embedded().current_methodology().hash()
    );

    // 2. The default changes.
    let new = old.clone().with_methodology(new_rules.clone()).unwrap();
    assert_eq!(new.current_methodology(), &new_rules);

    // A restatement attempt within the window recomputes under 1.0.0: same value, refused.
    let e = publish(&store, &archive, &new, &req("t1", day, at + 3_600_000)).unwrap_err();
    assert!(
        matches!(e, PublishError::Refused(Refusal::Unchanged { .. })),
        "recomputed under the new default instead of 1.0.0: {e}"
    );

    // A day published for the first time uses the new rules (an outage day here: the bundle
    // holds no observations of 2026-01-04).
    let mut first = req("t3", Date::parse("2026-01-04").unwrap(), at);
    first.allow_empty = true;
    let p = publish(&store, &archive, &new, &first).unwrap();
    let rec3 = sit_core::record::parse(&std::fs::read(&p.path).unwrap()).unwrap();
    assert_eq!(rec3.determination.methodology_hash, new_rules.hash());
    assert_eq!(rec3.determination.methodology_version, "1.0.1-test");

    // 3. Export of the old day under the new default carries 1.0.0, and replays identical.
    let out = t.path().join("bundle");
    bundle::export(&store, &archive, &new, day, &out, at + 7_200_000).unwrap();
    let exported = Bundle::load(&out).unwrap();
    assert_eq!(exported.methodology.hash(), v1_hash);
    let r = bundle::replay(&exported);
    assert!(r.identical(), "{r:?}");
    assert!(
        bundle::verify(&exported).is_empty(),
        "{:?}",
        bundle::verify(&exported)
    );

    // An unknown methodology hash is named, not guessed.
    let e = Registry::new(vec![new_rules], vec![suite.clone()])
        .unwrap()
        .methodology(&v1_hash)
        .unwrap_err();
    assert!(e.to_string().contains(&v1_hash), "{e}");
}
