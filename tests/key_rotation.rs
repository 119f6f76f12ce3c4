//! Keys with a history (issue 27): the publisher's key rotates mid-month by a notice signed by
//! the outgoing key and accepted by the incoming one. February 2026 of t1 is published as
//! real signed records, days 1-14 by the root key A and days 15-28 by B; the month settles
//! FINAL signed by B, and `sit verify --archive` accepts it from the pinned root A alone. A
//! record signed by A after its revocation is refused, a forged rotation (signed by a key that
//! is not the publisher's, or not accepted by the incoming key) is refused, and a bundle-less
//! pin of the wrong root names both keys.

mod common;
use common::{sit, text};
use sit::archive::{Archive, LogEntry};
use sit::publisher::notices::{self, Context};
use sit_core::fixed::Fixed;
use sit_core::index::Status;
use sit_core::notice::{Change, Class, Notice, KIND};
use sit_core::time::{parse_utc_ms, Date};
use std::path::Path;

fn ms(s: &str) -> i64 {
    parse_utc_ms(s).unwrap()
}

fn keypair(dir: &Path) -> ed25519_dalek::SigningKey {
    let o = sit(&["keys", "generate", "--out", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    sit::archive::keys::load_signing(&dir.join("signing-key.pem")).unwrap()
}

fn draft(class: Class, effective: &str, changes: Vec<Change>) -> Notice {
    Notice {
        kind: KIND.into(),
        id: String::new(),
        class,
        changes,
        reason: "the signing key is rotated on schedule, as announced".into(),
        published_at: String::new(),
        effective_at: effective.into(),
        consultation: None,
        key_id: String::new(),
        acceptance: None,
    }
}

/// One signed t1 record of `date` (the golden bundle's t1 determination with the date, value
/// and status set), published at `at` by `key`, appended to the archive.
fn put(a: &Archive, key: &ed25519_dalek::SigningKey, date: &str, seq: u64, at: &str) {
    put_tier(a, "t1", key, date, seq, at)
}

/// [`put`] for another tier.
fn put_tier(
    a: &Archive,
    tier: &str,
    key: &ed25519_dalek::SigningKey,
    date: &str,
    seq: u64,
    at: &str,
) {
    use sit_core::record::Publication;
    let golden = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/bundle-2026-01-05/determinations/t1.v1.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(golden).unwrap()).unwrap();
    v.as_object_mut().unwrap().remove("signature");
    let mut p: Publication = serde_json::from_value(v).unwrap();
    let vk = key.verifying_key();
    let day = Date::parse(date).unwrap();
    p.determination.tier = tier.into();
    p.determination.date = day;
    p.determination.status = Status::Final;
    p.determination.value = Some(Fixed::parse("0.1").unwrap());
    p.determination.sequence = seq;
    p.version = 1;
    p.published_at = at.into();
    p.restates = None;
    p.key_id = sit_core::signing::key_id(&vk);
    let bytes = sit_core::record::sign(&p, key);
    let e = LogEntry {
        tier: tier.into(),
        date: day,
        version: 1,
        sequence: seq,
        status: Status::Final,
        value: p.determination.value,
        published_at: at.into(),
        key_id: p.key_id.clone(),
        file: Archive::file_name(tier, day, 1),
        record_hash: sit_core::record::record_hash(&bytes),
    };
    let lock = a.lock().unwrap();
    a.append(&lock, &bytes, &e, &sit_core::signing::public_pem(&vk))
        .unwrap();
}

#[test]
fn a_month_spanning_a_key_rotation_settles_and_verifies_from_the_pinned_root() {
    let dir = tempfile::tempdir().unwrap();
    let (ka, kb, km) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("m"),
    );
    let (a, b, m) = (keypair(&ka), keypair(&kb), keypair(&km));
    let data = dir.path().join("data");
    let archive = Archive::for_data(&data);
    let reg = sit_core::versions::Registry::embedded();
    let ctx = Context::new(reg, Vec::<String>::new(), Vec::<String>::new());
    // genesis: key A, from 2026-01-20
    let g = notices::genesis(
        reg,
        &Default::default(),
        &Default::default(),
        &a,
        false,
        Date::parse("2026-01-20").unwrap(),
    );
    notices::publish(&g, &archive, &ctx, &a, None, ms("2026-01-20T08:00:00.000Z")).unwrap();
    let rotation = draft(
        Class::Emergency,
        "2026-02-15T00:00:00.000Z",
        vec![Change::KeyRotation {
            from: sit_core::signing::key_id(&a.verifying_key()),
            to: sit_core::signing::key_id(&b.verifying_key()),
            public_key: sit_core::signing::hex(b.verifying_key().as_bytes()),
            overlap_days: 7,
        }],
    );
    // not accepted by the incoming key: refused, nothing written
    let e = notices::publish(
        &rotation,
        &archive,
        &ctx,
        &a,
        None,
        ms("2026-02-10T09:00:00.000Z"),
    )
    .unwrap_err();
    assert!(e.to_string().contains("--accept-key"), "{e}");
    let e = notices::publish(
        &rotation,
        &archive,
        &ctx,
        &a,
        Some(&m),
        ms("2026-02-10T09:00:00.000Z"),
    )
    .unwrap_err();
    assert!(e.to_string().contains("the rotation is to"), "{e}");
    // signed by a key that is not the publisher's: refused
    let e = notices::publish(
        &rotation,
        &archive,
        &ctx,
        &m,
        Some(&b),
        ms("2026-02-10T09:00:00.000Z"),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("not one of the publisher's keys"),
        "{e}"
    );
    assert_eq!(notices::published(&archive).unwrap().len(), 1);
    notices::publish(
        &rotation,
        &archive,
        &ctx,
        &a,
        Some(&b),
        ms("2026-02-10T09:00:00.000Z"),
    )
    .unwrap();

    // the month: A signs days 1-14 (published the next morning), B days 15-28
    for d in 1..=28u64 {
        let date = format!("2026-02-{d:02}");
        let at = format!("{}T00:10:00.000Z", Date::parse(&date).unwrap().succ());
        put(&archive, if d < 15 { &a } else { &b }, &date, d, &at);
    }
    let contracts = Path::new(env!("CARGO_MANIFEST_DIR")).join("contracts.toml");
    let d = data.to_str().unwrap();
    // A may no longer sign a final value long after the overlap: refused, naming the key
    let o = sit(&[
        "--data",
        d,
        "settle",
        "--tier",
        "t1",
        "--month",
        "2026-02",
        "--contracts",
        contracts.to_str().unwrap(),
        "--key",
        ka.join("signing-key.pem").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("outside its validity"), "{}", text(&o));
    assert!(
        text(&o).contains(&sit_core::signing::key_id(&b.verifying_key())),
        "{}",
        text(&o)
    );
    let o = sit(&[
        "--data",
        d,
        "settle",
        "--tier",
        "t1",
        "--month",
        "2026-02",
        "--contracts",
        contracts.to_str().unwrap(),
        "--key",
        kb.join("signing-key.pem").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let settled = data.join("published/settlements/SIT-T1-M/2026-02.json");
    assert!(settled.exists(), "{}", text(&o));

    // verified from the pinned root A, following the chain in the archive
    let root = ka.join("public-key.pem");
    let o = sit(&[
        "verify",
        settled.to_str().unwrap(),
        "--key",
        root.to_str().unwrap(),
        "--archive",
        d,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("VALID  settlement SIT-T1-M"),
        "{}",
        text(&o)
    );
    assert!(
        text(&o).contains("followed from the pinned root through N-0000, N-0001"),
        "{}",
        text(&o)
    );
    // a day signed by B verifies the same way; without the archive B is not known
    let day20 = data.join("published/t1/2026-02-20.v1.json");
    let o = sit(&[
        "verify",
        day20.to_str().unwrap(),
        "--key",
        root.to_str().unwrap(),
        "--archive",
        d,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = sit(&[
        "verify",
        day20.to_str().unwrap(),
        "--key",
        root.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("give --archive"), "{}", text(&o));
    // pinning B as the root: the genesis names A, both keys are named
    let o = sit(&[
        "verify",
        day20.to_str().unwrap(),
        "--key",
        kb.join("public-key.pem").to_str().unwrap(),
        "--archive",
        d,
    ]);
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    let (ia, ib) = (
        sit_core::signing::key_id(&a.verifying_key()),
        sit_core::signing::key_id(&b.verifying_key()),
    );
    assert!(
        text(&o).contains(&ia) && text(&o).contains(&ib),
        "{}",
        text(&o)
    );

    // A leaked: revoked from 2026-02-18 by B (emergency); a record A signs after that is void
    let revocation = draft(
        Class::Emergency,
        "2026-02-23T00:00:00.000Z",
        vec![Change::KeyRevocation {
            key: ia.clone(),
            void_after: "2026-02-18T00:00:00.000Z".into(),
        }],
    );
    notices::publish(
        &revocation,
        &archive,
        &ctx,
        &b,
        None,
        ms("2026-02-20T12:00:00.000Z"),
    )
    .unwrap();
    let forged = dir.path().join("forged.json");
    {
        use sit_core::record::Publication;
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&day20).unwrap()).unwrap();
        v.as_object_mut().unwrap().remove("signature");
        let mut p: Publication = serde_json::from_value(v).unwrap();
        p.determination.value = Some(Fixed::parse("9.9").unwrap());
        p.key_id = ia.clone();
        std::fs::write(&forged, sit_core::record::sign(&p, &a)).unwrap();
    }
    let o = sit(&[
        "verify",
        forged.to_str().unwrap(),
        "--key",
        root.to_str().unwrap(),
        "--archive",
        d,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("revoked from 2026-02-18T00:00:00.000Z"),
        "{}",
        text(&o)
    );
    // a day A signed before the revocation still verifies
    let day10 = data.join("published/t1/2026-02-10.v1.json");
    let o = sit(&[
        "verify",
        day10.to_str().unwrap(),
        "--key",
        root.to_str().unwrap(),
        "--archive",
        d,
    ]);
    assert!(o.status.success(), "{}", text(&o));

    // A record A signed in the overlap but after its void_after (t2 2026-02-19, published
    // 2026-02-20T00:30) is void: publishing the day again with B replaces it, as version 2
    // linking to it, while its window is open; a void record past its window stands, named.
    put_tier(
        &archive,
        "t2",
        &a,
        "2026-02-19",
        1,
        "2026-02-20T00:30:00.000Z",
    );
    put_tier(
        &archive,
        "t2",
        &a,
        "2026-02-18",
        2,
        "2026-02-19T00:30:00.000Z",
    );
    let store = sit::store::Store::open(&data).unwrap();
    let req = |date: &str, now: &str, key| sit::publisher::Request {
        tier: "t2",
        date: Date::parse(date).unwrap(),
        now_ms: ms(now),
        key,
        allow_empty: true,
    };
    let p = sit::publisher::publish(
        &store,
        &archive,
        reg,
        &req("2026-02-19", "2026-02-20T13:00:00.000Z", &b),
    )
    .unwrap();
    assert_eq!(p.entry.version, 2, "{:?}", p.entry);
    assert_eq!(p.entry.key_id, ib);
    let e = sit::publisher::publish(
        &store,
        &archive,
        reg,
        &req("2026-02-18", "2026-02-20T13:00:00.000Z", &b),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("signed by")
            && e.contains(&ia)
            && e.contains("void")
            && e.contains("window closed"),
        "{e}"
    );
    let v2 = data.join("published/t2/2026-02-19.v2.json");
    let o = sit(&[
        "verify",
        v2.to_str().unwrap(),
        "--key",
        root.to_str().unwrap(),
        "--archive",
        d,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("version 2"), "{}", text(&o));
    drop(store);

    // a forged rotation dropped into the archive by hand: M signs a rotation to itself
    let mut n = draft(
        Class::Emergency,
        "2026-02-25T00:00:00.000Z",
        vec![Change::KeyRotation {
            from: ib.clone(),
            to: sit_core::signing::key_id(&m.verifying_key()),
            public_key: sit_core::signing::hex(m.verifying_key().as_bytes()),
            overlap_days: 0,
        }],
    );
    n.id = "N-0003".into();
    n.published_at = "2026-02-22T00:00:00.000Z".into();
    n.key_id = sit_core::signing::key_id(&m.verifying_key());
    let bytes = sit_core::signing::sign_value(serde_json::to_value(&n).unwrap(), &m);
    std::fs::write(data.join("published/notices/N-0003.json"), bytes).unwrap();
    let o = sit(&[
        "verify",
        day20.to_str().unwrap(),
        "--key",
        root.to_str().unwrap(),
        "--archive",
        d,
    ]);
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("forged notice"), "{}", text(&o));
}
