//! `sit settle` on an archive: the final settlement value of a contract month from the
//! records in force at the final settlement time (a restatement before it counts, one after it
//! does not), signed and archived once; a month not yet final is INDICATIVE and refuses --key.

mod common;
use common::{sit, text};

use sit::clock::Date;
use sit::fixed::Fixed;
use sit::index::Status;
use sit::publisher::archive::{Archive, LogEntry};
use std::path::Path;

fn entry(date: &str, version: u32, status: Status, value: &str, at: &str) -> LogEntry {
    let date = Date::parse(date).unwrap();
    LogEntry {
        tier: "t1".into(),
        date,
        version,
        sequence: date.0 as u64,
        status,
        value: Some(Fixed::parse(value).unwrap()),
        published_at: at.into(),
        key_id: "ed25519:0000000000000000".into(),
        file: Archive::file_name("t1", date, version),
        record_hash: format!("{:064x}", date.0 as u64 * 10 + version as u64),
    }
}

/// February 2026 of tier t1 in `data`'s archive: every day FINAL at 0.1000, day 5 restated
/// to 0.2000 on 2026-02-06 (before the final settlement time), day 28 restated to 0.9000 on
/// 2026-03-05 (after it).
fn february(data: &Path) {
    let a = Archive::for_data(data);
    let lock = a.lock().unwrap();
    let mut es = Vec::new();
    for d in 1..=28 {
        let date = format!("2026-02-{d:02}");
        es.push(entry(
            &date,
            1,
            Status::Final,
            "0.1",
            &format!("{date}T00:10:00.000Z"),
        ));
    }
    es.push(entry(
        "2026-02-05",
        2,
        Status::Restated,
        "0.2",
        "2026-02-06T12:00:00.000Z",
    ));
    es.push(entry(
        "2026-02-28",
        2,
        Status::Restated,
        "0.9",
        "2026-03-05T12:00:00.000Z",
    ));
    for e in &es {
        a.append(
            &lock,
            format!("record {} v{}", e.date, e.version).as_bytes(),
            e,
            "PEM",
        )
        .unwrap();
    }
}

fn settle(data: &Path, args: &[&str]) -> std::process::Output {
    let contracts = Path::new(env!("CARGO_MANIFEST_DIR")).join("contracts.toml");
    let mut a = vec![
        "--data",
        data.to_str().unwrap(),
        "settle",
        "--contracts",
        contracts.to_str().unwrap(),
    ];
    a.extend(args);
    sit(&a)
}

/// Where `sit settle --key` archives February 2026 of SIT-T1-M.
const SIGNED: &str = "published/settlements/SIT-T1-M/2026-02.json";

/// A key in `keys`, then February 2026 of t1 settled and signed with it: the archived bytes.
fn sign_february(data: &Path, keys: &Path) -> Vec<u8> {
    let g = sit(&["keys", "generate", "--out", keys.to_str().unwrap()]);
    assert!(g.status.success(), "{}", text(&g));
    let key = keys.join("signing-key.pem");
    let o = settle(
        data,
        &[
            "--tier",
            "t1",
            "--month",
            "2026-02",
            "--key",
            key.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    std::fs::read(data.join(SIGNED)).unwrap()
}

/// Golden, by hand: (27 x 0.1000 + 0.2000) / 28 = 2.9 / 28 = 0.103571428... -> 0.1036 at the
/// contract's 4 decimals, half to even. Day 28's restatement after the final time is not used.
#[test]
fn a_final_month_settles_on_the_records_in_force_at_the_final_time_signed_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    february(&data);
    let o = settle(&data, &["--tier", "t1", "--month", "2026-02"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).starts_with("SIT-T1-M 2026-02 FINAL 0.1036"),
        "{}",
        text(&o)
    );
    let keys = dir.path().join("keys");
    let bytes = sign_february(&data, &keys);
    let key = keys.join("signing-key.pem");
    let f = data.join(SIGNED);
    let vk = sit::publisher::keys::load_public(&keys.join("public-key.pem")).unwrap();
    let r = sit::settlement::verify_record(&bytes, &vk).unwrap();
    assert_eq!(r.value, Fixed::parse("0.1036").unwrap());
    assert_eq!(r.days_counted, 28);
    let d5 = r
        .days
        .iter()
        .find(|d| d.date == Date::parse("2026-02-05").unwrap())
        .unwrap();
    let d28 = r
        .days
        .iter()
        .find(|d| d.date == Date::parse("2026-02-28").unwrap())
        .unwrap();
    assert_eq!((d5.version, d28.version), (2, 1));
    // `sit verify` checks it with the public key alone: signature and recomputation
    let pubkey = keys.join("public-key.pem");
    let o = sit(&[
        "verify",
        f.to_str().unwrap(),
        "--key",
        pubkey.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).starts_with("VALID  settlement SIT-T1-M 2026-02-01..2026-02-28 FINAL"),
        "{}",
        text(&o)
    );
    // a listed day's value edited (the signature no longer covers it): refused
    let tampered = dir.path().join("tampered.json");
    let t =
        String::from_utf8(bytes.clone())
            .unwrap()
            .replacen("\"0.200000000\"", "\"0.300000000\"", 1);
    assert_ne!(t.as_bytes(), &bytes[..], "the record lists day 5 at 0.2");
    std::fs::write(&tampered, t).unwrap();
    let o = sit(&[
        "verify",
        tampered.to_str().unwrap(),
        "--key",
        pubkey.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("INVALID"), "{}", text(&o));
    // signing again never changes an archived final value
    let o = settle(
        &data,
        &[
            "--tier",
            "t1",
            "--month",
            "2026-02",
            "--key",
            key.to_str().unwrap(),
        ],
    );
    assert!(
        o.status.success() && text(&o).contains("it stands"),
        "{}",
        text(&o)
    );
    assert_eq!(std::fs::read(&f).unwrap(), bytes);
}

#[test]
fn a_month_with_a_missing_day_is_named_and_a_month_not_yet_final_refuses_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    february(&data);
    // March has no records: a past month with missing days cannot settle (exit 3)
    let o = settle(&data, &["--tier", "t1", "--month", "2026-03"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains("2026-03-01: no record in force"),
        "{}",
        text(&o)
    );
    // a month whose final time is in the future: INDICATIVE, never signed
    let o = settle(
        &data,
        &["--tier", "t1", "--month", "2099-01", "--key", "k.pem"],
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains("is not final until 2099-02-"),
        "{}",
        text(&o)
    );
    // bad input: exit 2 with the fix
    let o = settle(&data, &["--tier", "t1", "--month", "2026-13"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("use YYYY-MM"), "{}", text(&o));
    let o = settle(&data, &["--tier", "t9", "--month", "2026-02"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("listed: SIT-T1-M"), "{}", text(&o));
}

/// The archived final value is served as signed, by month and as the latest; a month not
/// settled, an unknown tier and a malformed month answer the documented errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_final_value_is_served_as_signed_at_the_settlement_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    february(&data);
    let (d, k) = (data.clone(), dir.path().join("keys"));
    let signed = tokio::task::spawn_blocking(move || sign_february(&d, &k))
        .await
        .unwrap();
    let running = sit::publisher::serve::start(
        sit::publisher::archive::Archive::for_data(&data),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let base = format!("http://{}", running.addr);
    let c = reqwest::Client::new();
    for path in ["/v1/settlement/t1/2026-02", "/v1/settlement/t1/latest"] {
        let r = c.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.bytes().await.unwrap().to_vec(), signed, "{path}");
    }
    for (path, status, code) in [
        ("/v1/settlement/t1/2026-03", 404, "not_settled"),
        ("/v1/settlement/t2/latest", 404, "not_settled"),
        ("/v1/settlement/t9/latest", 404, "unknown_tier"),
        ("/v1/settlement/t1/2026-3", 400, "bad_month"),
    ] {
        let r = c.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), status, "{path}");
        let body: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        assert_eq!(body["error"]["code"], code, "{path}: {body}");
    }
    running.shutdown().await.unwrap();
}
