//! `sit settle` on an archive: the final settlement value of a contract month from the
//! records in force at the final settlement time (a restatement before it counts, one after it
//! does not), signed and archived once; a month not yet final is INDICATIVE and refuses --key.

mod common;
use common::february::signed_february;
use common::{sit, text};

use sit::archive::{Archive, LogEntry};
use sit_core::fixed::Fixed;
use sit_core::index::Status;
use sit_core::time::Date;
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
    let vk = sit::archive::keys::load_public(&keys.join("public-key.pem")).unwrap();
    let r = sit_core::settlement::verify_record(&bytes, &vk).unwrap();
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
    let running = sit::server::start(
        sit::archive::Archive::for_data(&data),
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

fn utc(s: &str) -> i64 {
    sit_core::time::parse_utc_ms(s).unwrap()
}

/// The Python interpreter for the independent checks: $SIT_PYTHON, else python3. None (the
/// test prints SKIPPED) when absent, unless SIT_REQUIRE_PYTHON is set (CI sets it).
fn python() -> Option<String> {
    let py = std::env::var("SIT_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = std::process::Command::new(&py)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(py);
    }
    assert!(
        std::env::var_os("SIT_REQUIRE_PYTHON").is_none(),
        "SIT_REQUIRE_PYTHON is set but {py} does not run"
    );
    None
}

/// The service's settlement step on real signed records: mid-month the period to date is
/// signed INDICATIVE and served as such (monthly and, for a quarterly contract, by quarter);
/// after the final settlement time the FINAL value is signed once and served instead, by
/// period, as the latest and as CSV; the page shows both; an independent Python program
/// recomputes the served value from the served daily records; `sit verify --archive` checks the
/// listed days against the folder and the URL, and refuses records that list a wrong hash or a
/// day version not in force at the final time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settlements_are_published_to_date_then_final_served_verified_and_recomputed_independently()
{
    use sit::publisher::settle::{compute, settle_due};
    use sit_core::settlement::{sign_record, Cycle, Period, SettlementStatus};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let keys = dir.path().join("keys");
    let key = signed_february(&data, &keys);
    let archive = Archive::for_data(&data);
    let tiers = sit_core::probes::Suite::embedded().tier_ids();
    let mut contracts = sit::contracts::embedded(&tiers);
    let mut quarterly = contracts[0].clone();
    quarterly.id = "SIT-T1-Q".into();
    quarterly.cycle = Cycle::Quarterly;
    contracts.push(quarterly);
    let feb15 = Date::parse("2026-02-15").unwrap();

    // mid-February (after day 14 was published at 2026-02-14T00:10, before day 15's): INDICATIVE
    let lines = settle_due(
        &archive,
        &contracts,
        &key,
        feb15,
        utc("2026-02-14T12:00:00Z"),
    )
    .unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("SIT-T1-M 2026-02 INDICATIVE 0.1071 (14 days to date)")),
        "{lines:?}"
    );
    // (13 x 0.1 + 0.2) / 14 = 0.107142... -> 0.1071; the quarter to date is the same days
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("SIT-T1-Q 2026-Q1 INDICATIVE 0.1071")),
        "{lines:?}"
    );
    let running = sit::server::start(archive.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let base = format!("http://{}", running.addr);
    let c = reqwest::Client::new();
    let get = |path: &str| {
        let c = c.clone();
        let url = format!("{base}{path}");
        async move {
            let r = c.get(&url).send().await.unwrap();
            let s = r.status().as_u16();
            let ct = r
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            (s, ct, r.bytes().await.unwrap().to_vec())
        }
    };
    let (s, _, body) = get("/v1/settlement/t1/2026-02").await;
    assert_eq!(s, 200);
    let vk = key.verifying_key();
    // an INDICATIVE record verifies only as such: never as a settlement value
    assert!(sit_core::settlement::verify_record(&body, &vk)
        .unwrap_err()
        .contains("INDICATIVE"));
    let r = sit_core::settlement::verify_indicative(&body, &vk).unwrap();
    assert_eq!(
        (r.status, r.value, r.days.len()),
        (
            SettlementStatus::Indicative,
            Fixed::parse("0.1071").unwrap(),
            14
        )
    );
    let (s, _, body) = get("/v1/settlement/t1/2026-Q1").await;
    assert_eq!(s, 200);
    let q = sit_core::settlement::verify_indicative(&body, &vk).unwrap();
    assert_eq!(
        (q.contract.id.as_str(), q.period.last.to_string().as_str()),
        ("SIT-T1-Q", "2026-03-31")
    );
    // no final value yet
    assert_eq!(get("/v1/settlement/t1/latest").await.0, 404);

    // after the final settlement time (2026-03-02T00:00Z, the cutoff of 2026-02-28): FINAL once
    let mar3 = Date::parse("2026-03-03").unwrap();
    let lines = settle_due(
        &archive,
        &contracts,
        &key,
        mar3,
        utc("2026-03-03T00:10:00Z"),
    )
    .unwrap();
    assert!(
        lines.contains(&"SIT-T1-M 2026-02 FINAL 0.1036 (28 days counted)".to_string()),
        "{lines:?}"
    );
    let again = settle_due(
        &archive,
        &contracts,
        &key,
        mar3,
        utc("2026-03-04T00:10:00Z"),
    )
    .unwrap();
    assert!(!again.iter().any(|l| l.contains("FINAL")), "{again:?}");
    let final_bytes = std::fs::read(data.join(SIGNED)).unwrap();
    // the server serves from its snapshot, reloaded when the settlement files change
    let mut served = Vec::new();
    for _ in 0..100 {
        let (s, _, b) = get("/v1/settlement/t1/2026-02").await;
        if s == 200 && b == final_bytes {
            served = b;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        served, final_bytes,
        "the FINAL record replaces the indicative one"
    );
    assert_eq!(get("/v1/settlement/t1/latest").await.2, final_bytes);
    let (s, ct, csv) = get("/v1/settlement/t1/2026-02.csv").await;
    assert_eq!((s, ct.as_str()), (200, "text/csv; charset=utf-8"));
    let csv = String::from_utf8(csv).unwrap();
    assert_eq!(
        csv.lines().next().unwrap(),
        sit_core::settlement::CSV_HEADER
    );
    assert_eq!(csv.lines().count(), 29, "{csv}");
    assert!(
        csv.contains("SIT-T1-M,t1,2026-02-01,2026-02-28,FINAL,0.103600000,28,2026-03-02T00:00:00.000Z,2026-02-05,RESTATED,0.200000000,2,"),
        "{csv}"
    );
    // the page comes from the same snapshot: the FINAL value is in its own column
    let page = String::from_utf8(get("/").await.2).unwrap();
    assert!(page.contains("Futures settlement"), "page");
    assert!(
        page.contains("SIT-T1-M") && page.contains("class=\"st FINAL\">0.1036<"),
        "{page}"
    );
    assert!(
        page.contains("SIT-T1-Q"),
        "the quarter to date is on the page"
    );

    // independent recomputation from the served records
    match python() {
        None => println!("SKIPPED: no python3 for the independent recomputation"),
        Some(py) => {
            let script =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/recompute_settlement.py");
            for period in ["2026-02", "2026-Q1"] {
                let o = std::process::Command::new(&py)
                    .args([script.to_str().unwrap(), &base, "t1", period])
                    .output()
                    .unwrap();
                assert!(o.status.success(), "{period}: {}", text(&o));
                let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
                let expect = "0.1036"; // by 2026-03-04 the quarter to date is February
                assert_eq!(v["value"], expect, "{period}: {v}");
            }
        }
    }

    // sit verify --archive: against the folder and against the server
    let f = data.join(SIGNED);
    let pubkey = keys.join("public-key.pem");
    let verify = move |file: &Path, against: &str| {
        sit(&[
            "verify",
            file.to_str().unwrap(),
            "--key",
            pubkey.to_str().unwrap(),
            "--archive",
            against,
        ])
    };
    let (f2, d2, b2) = (f.clone(), data.clone(), base.clone());
    let verify2 = verify.clone();
    let (by_dir, by_url) = tokio::task::spawn_blocking(move || {
        (verify2(&f2, d2.to_str().unwrap()), verify2(&f2, &b2))
    })
    .await
    .unwrap();
    for o in [&by_dir, &by_url] {
        assert!(o.status.success(), "{}", text(o));
        assert!(
            text(o).contains("  archive    each listed day is"),
            "{}",
            text(o)
        );
    }
    // a record signed with the right key and a consistent value, but listing day 28's
    // restatement published after the final time: refused against the archive
    let p = Period::of(Cycle::Monthly, 2026, 2).unwrap();
    let entries = archive.entries().unwrap();
    let late = compute(&entries, &contracts[0], p, utc("2026-03-06T00:00:00Z")).unwrap();
    let mut forged = late.clone();
    forged.days =
        sit::publisher::settle::days_in_force(&entries, "t1", p, utc("2026-03-06T00:00:00Z"));
    let (v, n) = sit_core::settlement::mean_value(&forged.contract, p, &forged.days, true).unwrap();
    forged.value = v;
    forged.days_counted = n;
    assert_eq!(
        forged.value,
        Fixed::parse("0.1321").unwrap(),
        "(26 x 0.1 + 0.2 + 0.9) / 28"
    );
    let forged_file = dir.path().join("forged.json");
    std::fs::write(&forged_file, sign_record(&forged, &key)).unwrap();
    // and one listing day 3 with another record's hash
    let mut wrong_hash = late;
    wrong_hash.days[2].record_hash = wrong_hash.days[3].record_hash.clone();
    let wrong_file = dir.path().join("wrong-hash.json");
    std::fs::write(&wrong_file, sign_record(&wrong_hash, &key)).unwrap();
    let (ff, wf, d2, b2) = (
        forged_file.clone(),
        wrong_file.clone(),
        data.clone(),
        base.clone(),
    );
    let outs = tokio::task::spawn_blocking(move || {
        (
            verify(&ff, d2.to_str().unwrap()),
            verify(&ff, &b2),
            verify(&wf, d2.to_str().unwrap()),
        )
    })
    .await
    .unwrap();
    for o in [&outs.0, &outs.1] {
        assert_eq!(o.status.code(), Some(1), "{}", text(o));
        assert!(
            text(o).contains("2026-02-28 v2: published at 2026-03-05T12:00:00.000Z, after the cut-off 2026-03-02T00:00:00.000Z"),
            "{}",
            text(o)
        );
    }
    assert_eq!(outs.2.status.code(), Some(1), "{}", text(&outs.2));
    assert!(
        text(&outs.2).contains("2026-02-03 v1: record hash"),
        "{}",
        text(&outs.2)
    );
    running.shutdown().await.unwrap();
}
