//! `sit bench`: performance measurements recorded in BENCHMARKS.md (never timed assertions).

use crate::clock::{Date, HOUR_MS};
use crate::index::{compute_day, DayInput, IndexObs, Methodology};
use crate::rng::Rng;
use crate::store::Store;
use std::time::Instant;

/// Synthetic observations of one day for one tier: `n` rows over `endpoints` endpoints at
/// random times of the day and the trailing window, prices scattered around 1 USD/1M SIT,
/// 3% failures and 8% wrong answers.
pub fn synthetic_day(date: Date, n: usize, endpoints: u32, seed: u64) -> Vec<IndexObs> {
    let mut r = Rng::new(seed);
    let from = date.start_ms() - 23 * HOUR_MS;
    let span = 47 * HOUR_MS;
    (0..n)
        .map(|i| {
            let e = r.range(0, endpoints as i64 - 1) as u32;
            let succeeded = !r.chance_permille(30);
            let correct = succeeded && !r.chance_permille(80);
            let sit = 300 + r.range(0, 200) as u64;
            let mut hash = [0u8; 32];
            hash[..8].copy_from_slice(&(i as u64).to_le_bytes());
            hash[8..16].copy_from_slice(&r.next_u64().to_le_bytes());
            IndexObs {
                endpoint: e,
                at_ms: from + r.range(0, span - 1),
                cost_pusd: (sit as i128)
                    * (500_000 + (e as i128) * 40_000 + r.range(0, 100_000) as i128),
                delivered_sit: if correct { sit } else { 0 },
                succeeded,
                correct,
                hash,
            }
        })
        .collect()
}

/// Compute one day for 3 tiers from `total` synthetic observations; returns a report line.
pub fn index_bench(total: usize, endpoints: u32, repeats: u32) -> String {
    let m = Methodology::default();
    let date = Date::parse("2026-01-05").expect("date");
    let ids: Vec<String> = (0..endpoints).map(|i| format!("ep{i:03}")).collect();
    let tiers = ["t1", "t2", "t3"];
    let per_tier = total / tiers.len();
    let data: Vec<Vec<IndexObs>> = (0..tiers.len())
        .map(|t| synthetic_day(date, per_tier, endpoints, t as u64 + 1))
        .collect();
    let mut best = f64::MAX;
    let mut times = Vec::new();
    let mut values = Vec::new();
    for _ in 0..repeats.max(1) {
        let t0 = Instant::now();
        values.clear();
        for (t, tier) in tiers.iter().enumerate() {
            let d = compute_day(
                &m,
                &DayInput {
                    tier,
                    date,
                    pass_threshold: crate::fixed::Fixed(700_000_000),
                    endpoints: &ids,
                    observations: &data[t],
                    previous_final: None,
                    suite_hash: "bench",
                    sequence: 1,
                    computed_at: "bench",
                },
            );
            values.push(d.value.map(|v| v.to_string()).unwrap_or_default());
        }
        let s = t0.elapsed().as_secs_f64();
        best = best.min(s);
        times.push(s);
    }
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    format!(
        "index: {} observations ({} per tier), {} endpoints, 3 tiers: best {:.3} s, mean {:.3} s over {} runs; {:.0} observations/s; values {:?}",
        per_tier * 3,
        per_tier,
        endpoints,
        best,
        mean,
        times.len(),
        (per_tier * 3) as f64 / best,
        values
    )
}

/// Append `total` realistic observations to a fresh store in batches of `batch`, flushing each
/// batch; returns a report line.
pub fn ingest_bench(
    dir: &std::path::Path,
    total: usize,
    batch: usize,
) -> crate::error::Result<String> {
    let store = Store::open(dir)?;
    let template = sample_observation();
    let start = Date::parse("2026-01-05").expect("date").start_ms();
    let t0 = Instant::now();
    let mut done = 0;
    while done < total {
        let n = batch.min(total - done);
        let mut b: Vec<_> = (0..n)
            .map(|i| {
                let mut o = template.clone();
                o.at_ms = start + ((done + i) as i64 * 86_400_000 / total as i64);
                o.seed = (done + i) as u64;
                o
            })
            .collect();
        store.append(&mut b)?;
        done += n;
    }
    let s = t0.elapsed().as_secs_f64();
    let bytes = serde_json::to_vec(&template).map(|v| v.len()).unwrap_or(0);
    Ok(format!(
        "ingest: {total} observations (~{bytes} bytes JSON each) in batches of {batch}, flushed per batch: {s:.3} s, {:.0} observations/s",
        total as f64 / s
    ))
}

fn sample_observation() -> crate::observation::Observation {
    use crate::observation::*;
    Observation {
        seq: 0,
        prev_hash: String::new(),
        worker: "w1".into(),
        endpoint: "sim-atlas".into(),
        provider: "sim-atlas".into(),
        model: "sim-atlas-chat".into(),
        dialect: "openai".into(),
        region: "loopback".into(),
        tier: "t1".into(),
        family: "t1.arith".into(),
        family_version: 1,
        seed: 0,
        nonce: "0123456789abcdef".into(),
        suite_hash: "0".repeat(64),
        at_ms: 0,
        clock: "system".into(),
        retry: 0,
        http_status: Some(200),
        failure: None,
        timings: Timings {
            headers_ns: Some(1_000_000),
            first_byte_ns: Some(1_100_000),
            first_content_ns: Some(120_000_000),
            first_token_ns: Some(120_000_000),
            last_byte_ns: Some(150_000_000),
            event_ns: vec![
                1_100_000,
                120_000_000,
                130_000_000,
                140_000_000,
                150_000_000,
            ],
        },
        answer: "1136".into(),
        finish_reason: Some("stop".into()),
        server_model: Some("sim-atlas-chat".into()),
        correct: true,
        within_sla: true,
        tokens: Tokens {
            usage_reported: true,
            reported_input: Some(40),
            reported_output: Some(2),
            ref_input: 40,
            ref_output: 2,
            billed_input: 40,
            billed_output: 2,
            ..Default::default()
        },
        price: None,
        cost: crate::fixed::Pusd(7_200_000),
        sit_size: 80,
        delivered_sit: 80,
        evidence: None,
        content_before_role: false,
    }
}

/// Recompute `days` archived days of `per_day` observations each (3 tiers), in order, carrying
/// the last FINAL value into CONTINGENCY days, as an auditor does from extracted index rows.
pub fn recompute_bench(days: u32, per_day: usize, endpoints: u32) -> String {
    let m = Methodology::default();
    let first = Date::parse("2026-01-05").expect("date");
    let ids: Vec<String> = (0..endpoints).map(|i| format!("ep{i:03}")).collect();
    let tiers = ["t1", "t2", "t3"];
    let archive: Vec<Vec<Vec<IndexObs>>> = (0..days)
        .map(|d| {
            let date = Date(first.0 + d as i32);
            (0..tiers.len())
                .map(|t| {
                    synthetic_day(
                        date,
                        per_day / tiers.len(),
                        endpoints,
                        (d * 3 + t as u32) as u64 + 1,
                    )
                })
                .collect()
        })
        .collect();
    let t0 = Instant::now();
    let mut finals = 0;
    for (t, tier) in tiers.iter().enumerate() {
        let mut previous = None;
        for (d, day) in archive.iter().enumerate() {
            let date = Date(first.0 + d as i32);
            let det = compute_day(
                &m,
                &DayInput {
                    tier,
                    date,
                    pass_threshold: crate::fixed::Fixed(700_000_000),
                    endpoints: &ids,
                    observations: &day[t],
                    previous_final: previous,
                    suite_hash: "bench",
                    sequence: d as u64 + 1,
                    computed_at: "bench",
                },
            );
            if det.status == crate::index::Status::Final {
                previous = det.value.map(|v| (date, v));
                finals += 1;
            }
        }
    }
    let s = t0.elapsed().as_secs_f64();
    format!(
        "recompute: {days} days x {} observations (3 tiers, {endpoints} endpoints) = {} observations in {s:.3} s ({:.0} observations/s); {finals} of {} determinations FINAL",
        per_day / tiers.len() * tiers.len(),
        days as usize * (per_day / tiers.len()) * tiers.len(),
        (days as usize * per_day) as f64 / s,
        days as usize * tiers.len()
    )
}

/// Re-derive every observation of an audit bundle from its raw evidence (decompress, decode
/// the stream, re-grade, re-count with the reference tokenizer, re-cost) `repeats` times.
pub fn rederive_bench(bundle: &std::path::Path, repeats: u32) -> Result<String, String> {
    let b = crate::audit::bundle::Bundle::load(bundle).map_err(|e| e.to_string())?;
    crate::tokenizer::warm_up();
    let mut best = f64::MAX;
    let mut tokens = 0;
    for _ in 0..repeats.max(1) {
        let t0 = Instant::now();
        let (_, diffs, t) = crate::audit::bundle::rederive_all(&b);
        best = best.min(t0.elapsed().as_secs_f64());
        tokens = t;
        if !diffs.is_empty() {
            return Err(format!("the bundle does not re-derive: {}", diffs[0]));
        }
    }
    Ok(format!(
        "rederive: {} observations, {tokens} reference tokens, best {best:.3} s of {} runs: {:.0} reference tokens/s, {:.0} observations/s ({} threads)",
        b.records.len(),
        repeats.max(1),
        tokens as f64 / best,
        b.records.len() as f64 / best,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    ))
}

/// `streams` concurrent probes against one simulated provider with an exact first-token delay:
/// how many complete, and the error of the measured time to first token against the delay the
/// server injected (`ttft_ms` + prompt tokens / 40 ms, no jitter).
pub async fn streams_bench(streams: usize, ttft_ms: u64) -> Result<String, String> {
    use crate::clock::{Clock, SystemClock};
    use crate::probes::{Family, Suite};
    use crate::sim::{Market, SimProvider};
    use crate::worker::{ProbeSpec, Worker};
    use std::sync::Arc;
    crate::tokenizer::warm_up();
    let provider = SimProvider {
        id: "sim-bench".into(),
        base_input: 0.1,
        base_output: 0.4,
        quality_permille: [1000; 3],
        ttft_ms,
        tokens_per_sec: 100,
        inflation_permille: 1000,
        reasoning_tokens: 0,
        fault_permille: 0,
        seed: 1,
        dialect: crate::config::Dialect::Openai,
        ttft_jitter_permille: 0,
        scripted: None,
    };
    let now = SystemClock.now_ms();
    let until = Date::of_ms(now).succ();
    let market = Market::single(provider);
    let running = crate::sim::server::start(market.clone(), until)
        .await
        .map_err(|e| e.to_string())?;
    let ep = market.endpoints(&running.base_urls(), until).remove(0);
    let defaults = crate::config::Defaults {
        concurrency: streams as u32,
        first_token_timeout_ms: 60_000,
        total_timeout_ms: 120_000,
        stall_timeout_ms: 60_000,
        ..Default::default()
    };
    let worker = Worker::new(defaults, Arc::new(SystemClock), Methodology::default())
        .map_err(|e| e.to_string())?
        .with_id("bench");
    let suite = Suite::embedded();
    let tier = suite.tier("t1").expect("t1").clone();
    let mut r = Rng::new(7);
    let ep = Arc::new(ep);
    let start = Arc::new(tokio::sync::Barrier::new(streams));
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..streams {
        let (w, ep, start) = (worker.clone(), ep.clone(), start.clone());
        let spec = ProbeSpec {
            tier: tier.clone(),
            family: Family::from_id("t1.arith").expect("family"),
            seed: r.next_u64(),
            nonce: r.hex(8),
            retry: 0,
        };
        tasks.spawn(async move {
            start.wait().await;
            w.probe(&ep, None, &spec).await
        });
    }
    let mut err_us = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)
        .map_err(|e| e.to_string())?;
    let (mut ok, mut failed, mut late, mut early) = (0u64, BTreeMapCount::default(), 0u64, 0u64);
    while let Some(j) = tasks.join_next().await {
        let o = j.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
        if let Some(f) = &o.failure {
            failed.add(f.class.as_str());
            continue;
        }
        ok += 1;
        let injected_us = (ttft_ms + o.tokens.ref_input / 40) * 1000;
        let measured_us = o.timings.first_token_ns.unwrap_or(0) / 1000;
        if measured_us >= injected_us {
            late += 1;
            err_us.saturating_record((measured_us - injected_us).max(1));
        } else {
            early += 1;
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    running.shutdown().await;
    Ok(format!(
        "streams: {streams} concurrent OpenAI streams, injected first-token delay {ttft_ms} ms + prompt/40: {ok} complete, failures {:?}, in {wall:.2} s; TTFT error (measured - injected): p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({late} at or after, {early} before the injected delay)",
        failed.0,
        err_us.value_at_quantile(0.5) as f64 / 1000.0,
        err_us.value_at_quantile(0.9) as f64 / 1000.0,
        err_us.value_at_quantile(0.99) as f64 / 1000.0,
        err_us.max() as f64 / 1000.0,
    ))
}

/// Counts by name, in name order.
#[derive(Default)]
struct BTreeMapCount(std::collections::BTreeMap<String, u64>);

impl BTreeMapCount {
    fn add(&mut self, k: &str) {
        *self.0.entry(k.to_string()).or_insert(0) += 1;
    }
}

/// Client CPU per SSE event: decode + adapter, timed per event over a synthetic OpenAI stream
/// of `events` content chunks, repeated `repeats` times.
pub fn event_overhead_bench(events: usize, repeats: u32) -> String {
    use crate::config::Dialect;
    use crate::dialect::sse::SseDecoder;
    use crate::dialect::StreamState;
    let mut body = String::from("data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}],\"model\":\"m\"}\n\n");
    for i in 0..events {
        body.push_str(&format!(
            "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"tok{i} \"}},\"finish_reason\":null}}]}}\n\n"
        ));
    }
    let chunks: Vec<&[u8]> = body.as_bytes().split_inclusive(|b| *b == b'\n').collect();
    let mut h =
        hdrhistogram::Histogram::<u64>::new_with_bounds(1, 1_000_000_000, 3).expect("bounds");
    let mut evs = Vec::new();
    for _ in 0..repeats.max(1) {
        let mut dec = SseDecoder::new();
        let mut st = StreamState::default();
        // one network read per event (the worst case: a chunk per event)
        let mut pending: Vec<u8> = Vec::new();
        for c in &chunks {
            pending.extend_from_slice(c);
            if *c != b"\n" {
                continue;
            }
            let t = Instant::now();
            evs.clear();
            dec.feed(&pending, &mut evs).expect("utf-8");
            for ev in &evs {
                Dialect::Openai.on_event(ev, &mut st);
            }
            let ns = t.elapsed().as_nanos() as u64;
            if !evs.is_empty() {
                h.saturating_record((ns / evs.len() as u64).max(1));
            }
            pending.clear();
        }
        std::hint::black_box(&st);
    }
    format!(
        "event overhead: {} events x {} runs, decode + OpenAI adapter per event: p50 {:.2} us, p99 {:.2} us, max {:.2} us",
        events,
        repeats.max(1),
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.max() as f64 / 1000.0
    )
}
