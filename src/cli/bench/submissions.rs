//! `sit bench submissions`: what registered parties' submissions cost the oracle, and whether a
//! flood from one party slows the reads exchanges settle on.
//!
//! One process: a server on loopback over a fresh archive (one signed day of t1) with an intake
//! of `parties` registered parties. Three phases, each reported as read latency percentiles
//! (GET /v1/index/t1/latest, `readers` concurrent clients) and what the submitters got:
//!
//! 1. reads alone;
//! 2. reads while one party floods validly signed submissions as fast as it can (refused past
//!    its rate: 429), and a stranger floods badly signed ones (401);
//! 3. accepted submissions: every party submits within its rate, each one fsynced to the
//!    register before its receipt (the throughput the fsync allows).
//!
//! Compare the phases' ratios within one run: these machines are noisy.

use crate::oversight::attest::fresh_nonce;
use crate::sys::clock::{Clock, SystemClock};
use sit_core::oversight::{Body, Dispute, Parties, Party, Role, Subject};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn subject() -> Subject {
    Subject::settlement("SIT-T1-M", "2026-02")
}

fn dispute(i: u64) -> Body {
    Body::Dispute(Dispute {
        subject: subject(),
        reason: format!("benchmark dispute {i}"),
        evidence: None,
        public: false,
    })
}

fn pct(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * q).round() as usize]
}

/// `readers` clients reading for `dur`; latencies in ms.
async fn read_for(url: &str, readers: usize, dur: Duration) -> Vec<f64> {
    let client = reqwest::Client::new();
    let stop = Instant::now() + dur;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..readers {
        let (client, url) = (client.clone(), url.to_string());
        tasks.spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < stop {
                let t0 = Instant::now();
                if let Ok(r) = client.get(&url).send().await {
                    let ok = r.status().is_success();
                    let _ = r.bytes().await;
                    if ok {
                        lat.push(t0.elapsed().as_secs_f64() * 1000.0);
                    }
                }
            }
            lat
        });
    }
    let mut all = Vec::new();
    while let Some(r) = tasks.join_next().await {
        all.extend(r.unwrap_or_default());
    }
    all
}

fn line(name: &str, mut lat: Vec<f64>, dur: Duration, extra: &str) -> String {
    let n = lat.len();
    format!(
        "{name:<28} reads {:>7.0}/s  p50 {:>6.2} ms  p99 {:>6.2} ms  {extra}",
        n as f64 / dur.as_secs_f64(),
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99),
    )
}

/// Run the benchmark; one report line per phase.
pub async fn run(secs: u64, readers: usize, parties: usize) -> Result<String, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let data = dir.path().join("data");
    let oracle = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
    let archive = crate::archive::Archive::for_data(&data);
    // one signed day, so that reads answer a record
    let date = sit_core::time::Date::parse("2026-01-05").expect("date");
    let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/bundle-2026-01-05/determinations/t1.v1.json");
    let mut v: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&golden).map_err(|e| format!("{}: {e}", golden.display()))?,
    )
    .map_err(|e| e.to_string())?;
    if let Some(o) = v.as_object_mut() {
        o.remove("signature");
    }
    let mut p: sit_core::record::Publication =
        serde_json::from_value(v).map_err(|e| e.to_string())?;
    p.key_id = sit_core::signing::key_id(&oracle.verifying_key());
    let bytes = sit_core::record::sign(&p, &oracle);
    let lock = archive.lock().map_err(|e| e.to_string())?;
    let entry = crate::archive::LogEntry {
        tier: "t1".into(),
        date,
        version: 1,
        sequence: 1,
        status: p.determination.status,
        value: p.determination.value,
        published_at: p.published_at.clone(),
        key_id: p.key_id.clone(),
        file: crate::archive::Archive::file_name("t1", date, 1),
        record_hash: sit_core::record::record_hash(&bytes),
    };
    archive
        .append(
            &lock,
            &bytes,
            &entry,
            &sit_core::signing::public_pem(&oracle.verifying_key()),
        )
        .map_err(|e| e.to_string())?;
    drop(lock);
    let keys: Vec<ed25519_dalek::SigningKey> = (0..parties.max(1))
        .map(|i| {
            let mut seed = [7u8; 32];
            seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
            ed25519_dalek::SigningKey::from_bytes(&seed)
        })
        .collect();
    let registry = Parties {
        parties: keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                Party::new(
                    &format!("party-{i}"),
                    Role::Provider,
                    k.verifying_key(),
                    None,
                    None,
                )
            })
            .collect(),
    };
    let intake = Arc::new(
        crate::oversight::Intake::new(
            oracle.clone(),
            registry,
            archive.clone(),
            None,
            Arc::new(SystemClock),
        )
        .map_err(|e| e.to_string())?,
    );
    let server = crate::server::start_with(
        archive.clone(),
        "127.0.0.1:0".parse().expect("addr"),
        None,
        Default::default(),
        None,
        Some(intake.clone()),
    )
    .await
    .map_err(|e| e.to_string())?;
    let base = format!("http://{}", server.addr);
    let read_url = format!("{base}/v1/index/t1/latest");
    let post_url = format!("{base}/v1/submissions");
    let dur = Duration::from_secs(secs.max(1));
    let mut out = vec![format!(
        "sit bench submissions: {readers} readers of /v1/index/t1/latest, {} s a phase, {} registered parties, PER_PARTY_PER_MINUTE {}",
        dur.as_secs(),
        keys.len(),
        crate::oversight::PER_PARTY_PER_MINUTE
    )];
    // warm up
    read_for(&read_url, readers, Duration::from_millis(300)).await;
    // 1. reads alone
    let alone = read_for(&read_url, readers, dur).await;
    out.push(line("reads alone", alone, dur, ""));
    // 2. reads under a flood from one party and a stranger
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new([AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]);
    let mut flooders = tokio::task::JoinSet::new();
    for who in 0..4u64 {
        let (stop, counts, url) = (stop.clone(), counts.clone(), post_url.clone());
        // two flooders sign with the first party's key, two with a stranger's
        let key = if who < 2 {
            keys[0].clone()
        } else {
            ed25519_dalek::SigningKey::from_bytes(&[9; 32])
        };
        flooders.spawn(async move {
            let client = reqwest::Client::new();
            let mut i = who << 32;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let doc = sit_core::oversight::sign_submission(
                    dispute(i),
                    &key,
                    SystemClock.now_ms(),
                    &fresh_nonce(),
                );
                if let Ok(r) = client.post(&url).body(doc).send().await {
                    let slot = match r.status().as_u16() {
                        201 => 0,
                        429 => 1,
                        _ => 2,
                    };
                    counts[slot].fetch_add(1, Ordering::Relaxed);
                    let _ = r.bytes().await;
                }
            }
        });
    }
    let flooded = read_for(&read_url, readers, dur).await;
    stop.store(true, Ordering::Relaxed);
    while flooders.join_next().await.is_some() {}
    let (acc, lim, bad) = (
        counts[0].load(Ordering::Relaxed),
        counts[1].load(Ordering::Relaxed),
        counts[2].load(Ordering::Relaxed),
    );
    out.push(line(
        "reads under a flood",
        flooded,
        dur,
        &format!(
            "flood: {:.0}/s answered ({acc} accepted, {lim} rate-limited 429, {bad} refused unsigned/unknown)",
            (acc + lim + bad) as f64 / dur.as_secs_f64()
        ),
    ));
    // 3. accepted submissions, each fsynced before its receipt, every party within its rate
    let client = reqwest::Client::new();
    let t0 = Instant::now();
    let mut accepted = 0u64;
    let mut lat = Vec::new();
    let share = (crate::oversight::PER_PARTY_PER_MINUTE as usize).saturating_sub(1);
    for k in keys.iter().skip(1) {
        for i in 0..share as u64 {
            let doc = sit_core::oversight::sign_submission(
                dispute(i),
                k,
                SystemClock.now_ms(),
                &fresh_nonce(),
            );
            let s = Instant::now();
            let r = client
                .post(&post_url)
                .body(doc)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if r.status().as_u16() == 201 {
                accepted += 1;
                lat.push(s.elapsed().as_secs_f64() * 1000.0);
            }
            let _ = r.bytes().await;
        }
    }
    let took = t0.elapsed();
    out.push(format!(
        "{:<28} {accepted} accepted one at a time in {:.2} s: {:.0}/s, receipt p50 {:.2} ms p99 {:.2} ms (register fsync before each)",
        "accepted submissions",
        took.as_secs_f64(),
        accepted as f64 / took.as_secs_f64(),
        pct(&mut lat.clone(), 0.5),
        pct(&mut lat, 0.99),
    ));
    server.shutdown().await.map_err(|e| e.to_string())?;
    Ok(out.join("\n"))
}
