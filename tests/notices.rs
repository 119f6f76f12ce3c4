//! Nothing changes without notice (issue 27): `sit run` on a compressed clock against the
//! simulator, in a data folder that begins with its genesis notice. An emergency notice
//! published during the first day switches the methodology and removes an endpoint from the
//! panel from the third day on: the second day is made under the old rules and probes the old
//! panel, the third under the new, and both replay identically. Early, backdated and unknown
//! drafts are refused naming the rule and the earliest allowed time; an endpoint added to the
//! providers file without a notice is held, never probed. The notices are served.

mod common;
use common::{sim, sit, text};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const START: &str = "2026-01-05";
const UNTIL: &str = "2026-01-08";

fn record(data: &Path, tier: &str, day: &str) -> serde_json::Value {
    serde_json::from_slice(
        &std::fs::read(data.join(format!("published/{tier}/{day}.v1.json"))).unwrap(),
    )
    .unwrap()
}

fn committed(data: &Path, day: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(
        &std::fs::read(data.join(format!("published/commitments/{day}.commit.json"))).unwrap(),
    )
    .unwrap();
    v["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_takes_effect_exactly_on_its_effective_day_and_nothing_changes_unannounced() {
    let dir = tempfile::tempdir().unwrap();
    let providers = dir.path().join("providers.toml");
    let _sim = sim(&providers, 6, "");
    let keys = dir.path().join("keys");
    let o = sit(&["keys", "generate", "--out", keys.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let key = keys.join("signing-key.pem");
    let data = dir.path().join("data");
    let d = data.to_str().unwrap().to_string();
    let p = providers.to_str().unwrap().to_string();
    let run = |until: &str| {
        Command::new(env!("CARGO_BIN_EXE_sit"))
            .args(["--data", &d, "--providers", &p, "run", "--key"])
            .arg(&key)
            .args(["--start", START, "--hour-ms", "400", "--until", until])
            .args(["--per-hour", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let child = run(UNTIL);
    // the genesis is published at start
    let genesis = data.join("published/notices/N-0000.json");
    let t0 = Instant::now();
    while !genesis.exists() {
        assert!(t0.elapsed() < Duration::from_secs(30), "no genesis notice");
        std::thread::sleep(Duration::from_millis(20));
    }
    let g: serde_json::Value = serde_json::from_slice(&std::fs::read(&genesis).unwrap()).unwrap();
    assert_eq!(g["class"], "genesis");
    assert_eq!(g["effective_at"], "2026-01-05T00:00:00.000Z");
    let panel: Vec<String> = g["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["what"] == "panel_add")
        .map(|c| c["endpoint"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(panel.len(), 6, "{g}");
    let removed = panel[5].clone();

    // During the first day: an emergency switching to methodology 1.3.0 and removing an
    // endpoint, in force from the day after next (the next day's schedule is committed).
    let draft = dir.path().join("emergency.json");
    let o = sit(&[
        "--data",
        &d,
        "--providers",
        &p,
        "notice",
        "draft",
        "--class",
        "emergency",
        "--effective",
        "2026-01-07",
        "--methodology",
        "1.3.0",
        "--remove",
        &removed,
        "--reason",
        "the endpoint serves another model than it names; the rules go back until it is resolved",
        "--out",
        draft.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = sit(&[
        "--data",
        &d,
        "--providers",
        &p,
        "notice",
        "publish",
        draft.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("published N-0001 (emergency)"),
        "{}",
        text(&o)
    );

    // Refused, nothing written: the day after tomorrow is the earliest for an emergency, a
    // minor change needs 30 days, a backdated notice changes nothing, unknown names.
    let refused = |args: &[&str], want: &str| {
        let f = dir.path().join("refused.json");
        let mut a = vec!["--data", &d, "--providers", &p, "notice", "draft"];
        a.extend_from_slice(args);
        a.extend_from_slice(&[
            "--reason",
            "a reason that is long enough",
            "--out",
            f.to_str().unwrap(),
        ]);
        let o = sit(&a);
        if !o.status.success() {
            assert!(text(&o).contains(want), "{}", text(&o));
            return;
        }
        let o = sit(&[
            "--data",
            &d,
            "--providers",
            &p,
            "notice",
            "publish",
            f.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(text(&o).contains(want), "{}", text(&o));
    };
    refused(
        &[
            "--class",
            "emergency",
            "--effective",
            "2026-01-06",
            "--remove",
            &panel[0],
        ],
        "earliest allowed effective time: 2026-01-0",
    );
    refused(
        &[
            "--class",
            "minor",
            "--effective",
            "2026-01-20",
            "--remove",
            &panel[0],
        ],
        "needs its notice period (30 days) (earliest allowed effective time: 2026-02-0",
    );
    refused(
        &[
            "--class",
            "emergency",
            "--effective",
            "2026-01-04",
            "--remove",
            &panel[0],
        ],
        "in the past",
    );
    refused(
        &[
            "--class",
            "emergency",
            "--effective",
            "2026-01-09",
            "--add",
            "sim-nowhere=x",
        ],
        "not in providers.toml",
    );
    refused(
        &[
            "--class",
            "emergency",
            "--effective",
            "2026-01-09",
            "--methodology",
            "9.9.9",
        ],
        "this build knows",
    );
    assert!(!data.join("published/notices/N-0002.json").exists());

    // A rotation draft checks (as if signed by its outgoing key), nothing written.
    let keys2 = dir.path().join("keys2");
    let o = sit(&["keys", "generate", "--out", keys2.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let rot = dir.path().join("rotation.json");
    let o = sit(&[
        "--data",
        &d,
        "--providers",
        &p,
        "notice",
        "draft",
        "--class",
        "minor",
        "--effective",
        "2026-03-01",
        "--rotate-to",
        keys2.join("public-key.pem").to_str().unwrap(),
        "--rotate-from",
        g["key_id"].as_str().unwrap(),
        "--reason",
        "the signing key is rotated on schedule",
        "--out",
        rot.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = sit(&["--data", &d, "notice", "check", rot.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("a rotation: publish it with --key (the outgoing key"),
        "{}",
        text(&o)
    );
    assert!(!data.join("published/notices/N-0002.json").exists());

    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{log}");

    // The day before the change is made under the old rules and probes the old panel; the
    // effective day under the new.
    let m = sit_core::versions::Registry::embedded();
    let hash_of = |v: &str| {
        m.methodologies()
            .find(|(_, x)| x.version == v)
            .map(|(h, _)| h.to_string())
            .unwrap()
    };
    for tier in ["t1", "t2", "t3"] {
        assert_eq!(
            record(&data, tier, "2026-01-06")["methodology_hash"],
            m.current_methodology().hash()
        );
        assert_eq!(
            record(&data, tier, "2026-01-07")["methodology_hash"],
            hash_of("1.3.0")
        );
    }
    assert!(committed(&data, "2026-01-06").contains(&removed));
    assert!(!committed(&data, "2026-01-07").contains(&removed));
    assert_eq!(committed(&data, "2026-01-07").len(), 5);
    for day in ["2026-01-06", "2026-01-07"] {
        let b = data.join("archive").join(day);
        let o = sit(&["audit", "replay", b.to_str().unwrap()]);
        assert!(o.status.success(), "{day}: {}", text(&o));
    }

    // An endpoint added to the providers file without a notice: held, never committed.
    let providers2 = dir.path().join("providers2.toml");
    let _sim2 = sim(&providers2, 7, "");
    std::fs::copy(&providers2, &providers).unwrap();
    let added = {
        let t = std::fs::read_to_string(&providers).unwrap();
        let ids: Vec<String> = t
            .lines()
            .filter_map(|l| l.strip_prefix("id = \""))
            .map(|l| l.trim_end_matches('"').to_string())
            .collect();
        ids.into_iter().find(|i| !panel.contains(i)).unwrap()
    };
    // A tier ceased by an emergency notice: from its effective day it is not determined,
    // and the days around it are finished without it.
    let cease = dir.path().join("cease.json");
    let o = sit(&[
        "--data",
        &d,
        "--providers",
        &p,
        "notice",
        "draft",
        "--class",
        "emergency",
        "--effective",
        "2026-01-10",
        "--cease",
        "t3",
        "--delist",
        "SIT-T3-M",
        "--add",
        &format!("{added}={added}"),
        "--reason",
        "the tier's probes no longer separate the endpoints; it ends",
        "--out",
        cease.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = sit(&[
        "--data",
        &d,
        "--providers",
        &p,
        "notice",
        "publish",
        cease.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let out = run("2026-01-11").wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{log}");
    assert!(data.join("published/t3/2026-01-09.v1.json").exists());
    // the held endpoint, announced by the same notice, joins the panel exactly on its day
    assert!(!committed(&data, "2026-01-09").contains(&added));
    assert!(committed(&data, "2026-01-10").contains(&added), "{log}");
    assert!(
        data.join("published/t1/2026-01-10.v1.json").exists(),
        "{log}"
    );
    assert!(!data.join("published/t3/2026-01-10.v1.json").exists());
    assert!(
        log.contains("t3 2026-01-10 is not determined: the tier has ceased by notice"),
        "{log}"
    );
    assert!(
        data.join("archive/2026-01-10").exists(),
        "the day is finished without t3"
    );
    // its contract, delisted by the same notice, is no longer settled (held, named)
    assert!(
        log.contains("contract SIT-T3-M is in contracts.toml but not listed by a notice in force on 2026-01-10: held, not settled"),
        "{log}"
    );
    assert!(
        !log.contains("contract SIT-T1-M is in contracts.toml but not listed"),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "endpoint {added} is configured but not in the panel in force"
        )),
        "{log}"
    );
    for day in ["2026-01-08", "2026-01-09"] {
        if data
            .join(format!("published/commitments/{day}.commit.json"))
            .exists()
        {
            assert!(!committed(&data, day).contains(&added), "{day}");
        }
    }

    // Served: the list, one notice's signed bytes, every methodology version by hash.
    let archive = sit::archive::Archive::for_data(&data);
    let running = sit::server::start(archive, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let base = format!("http://{}", running.addr);
    let list: serde_json::Value = serde_json::from_slice(
        &reqwest::get(format!("{base}/v1/notices"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(list["notices"].as_array().unwrap().len(), 3, "{list}");
    assert_eq!(list["notices"][1]["class"], "emergency");
    let one = reqwest::get(format!("{base}/v1/notices/N-0001"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(
        &one[..],
        &std::fs::read(data.join("published/notices/N-0001.json")).unwrap()[..]
    );
    // The page lists them, the emergency flagged, beside the table of statuses.
    let page = reqwest::get(format!("{base}/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(
            r#"<a href="/v1/notices/N-0001">N-0001</a></td><td class="emergency">emergency</td>"#
        ),
        "{page}"
    );
    assert!(page.contains(r#"<td class="st SUSPENDED">SUSPENDED</td>"#));
    // each tier's latest row says whether it is a settlement value and when it is final
    assert!(page.contains("final at 2026-01-1"), "{page}");
    assert!(page.contains(" 00:00 UTC</small>"), "{page}");
    let pubkey = sit::archive::keys::load_signing(&key)
        .unwrap()
        .verifying_key();
    sit_core::signing::verify_value(&one, &pubkey).expect("the notice verifies");
    for (h, mm) in m.methodologies() {
        let r = reqwest::get(format!("{base}/v1/methodology/{h}"))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        assert_eq!(v["version"], mm.version);
        if mm.version == "1.3.0" {
            assert_eq!(v["notice"]["id"], "N-0001", "{v}");
        }
    }
    let r = reqwest::get(format!("{base}/v1/methodology/0000"))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    running.shutdown().await.unwrap();
}
