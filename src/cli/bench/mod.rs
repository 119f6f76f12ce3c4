//! `sit bench`: the benchmarks behind BENCHMARKS.md (not part of the library's API).

pub(crate) mod stability;
mod submissions;

use crate::store::Store;
use sit_core::index::{compute_day, DayInput, IndexObs, Methodology};
use sit_core::rng::Rng;
use sit_core::time::{Date, HOUR_MS};
use std::time::{Duration, Instant};

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
                attempted_sit: sit,
                missed: false,
                succeeded,
                correct,
                hash,
                vantage: 0,
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
                    pass_threshold: sit_core::fixed::Fixed(700_000_000),
                    endpoints: &ids,
                    providers: &[],
                    vantages: &[],
                    observations: &data[t],
                    previous_final: None,
                    suite_hash: "bench",
                    sequence: 1,
                    computed_at: "bench",
                    chain: None,
                    prices: None,
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
) -> crate::cli::error::Result<String> {
    let store = Store::open(dir)?;
    let template = crate::worker::sample_observation();
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
    let (mut finals, mut bases) = (0, 0);
    for (t, tier) in tiers.iter().enumerate() {
        let mut previous = None;
        let mut link: Option<sit_core::index::chain::ChainLink> = None;
        for (d, day) in archive.iter().enumerate() {
            let date = Date(first.0 + d as i32);
            let det = compute_day(
                &m,
                &DayInput {
                    tier,
                    date,
                    pass_threshold: sit_core::fixed::Fixed(700_000_000),
                    endpoints: &ids,
                    providers: &[],
                    vantages: &[],
                    observations: &day[t],
                    previous_final: previous,
                    suite_hash: "bench",
                    sequence: d as u64 + 1,
                    computed_at: "bench",
                    chain: link.as_ref(),
                    prices: None,
                },
            );
            link = m
                .chain
                .as_ref()
                .map(|cp| sit_core::index::chain::link_after(cp, Some(&det)));
            if det.status.sets_value() {
                previous = det.value.map(|v| (date, v));
            }
            finals += det.status.settles() as u32;
            bases += (det.status == sit_core::index::Status::Base) as u32;
        }
    }
    let s = t0.elapsed().as_secs_f64();
    format!(
        "recompute: {days} days x {} observations (3 tiers, {endpoints} endpoints) = {} observations in {s:.3} s ({:.0} observations/s); {finals} of {} determinations FINAL, {bases} BASE (each tier's first day: the chain's anchor)",
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
    sit_core::tokenizer::warm_up();
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

/// `streams` concurrent probes against one simulated provider in this process, twice: a cold
/// round (every stream opens its connection) and a warm round (pooled connections).
///
/// Stream starts are spread evenly over `ramp_ms` and every first token is due at least
/// `ttft_ms` after its start, so with `ttft_ms >= ramp_ms` all streams are open when the first
/// tokens begin to arrive; answers (tier t2: JSON records, sorted lists, ...) then stream at 10
/// tokens/s, so streams stay open while the others' first tokens arrive. `ramp_ms = 0` releases
/// them all at once (a barrier): the worst burst, which measures queueing, not accuracy.
///
/// The simulator logs, per answer, when its handler started and when it handed the first answer
/// piece to the HTTP layer (same monotonic clock). Two errors per round:
/// - vs injected: the worker's time to first answer token minus the injected delay;
/// - client-added: the worker's time to first answer token minus the server's own
///   (first piece - request received): transport both ways plus the client's overhead.
///
/// `separate_process`: run the simulator as a child `sit sim` process (as a real provider is
/// on other machines), so that the worker's threads share nothing with the server's but the
/// two cores; the server's log then comes over HTTP (`/sim/served`, durations only).
pub async fn streams_bench(
    streams: usize,
    ttft_ms: u64,
    jitter_permille: u32,
    ramp_ms: u64,
    separate_process: bool,
) -> Result<String, String> {
    use crate::sim::Market;
    use crate::sys::clock::{Clock, SystemClock};
    use crate::worker::{ProbeSpec, Worker};
    use sit_core::probes::{Family, Suite};
    use std::sync::Arc;
    sit_core::tokenizer::warm_up();
    let now = SystemClock.now_ms();
    let until = Date::of_ms(now).succ();
    let market = Market::single(bench_provider(ttft_ms, jitter_permille));
    let server = if separate_process {
        SimServer::Child(SimChild::spawn(ttft_ms, jitter_permille)?)
    } else {
        SimServer::InProcess(
            crate::sim::server::start_with(market.clone(), until, true)
                .await
                .map_err(|e| e.to_string())?,
        )
    };
    let ep = Arc::new(market.endpoints(&[server.base_url()], until).remove(0));
    let defaults = crate::config::Defaults {
        concurrency: streams as u32,
        first_token_timeout_ms: 60_000,
        total_timeout_ms: 120_000,
        stall_timeout_ms: 60_000,
        ..Default::default()
    };
    let kernel = Worker::new(defaults, Arc::new(SystemClock), Methodology::default())
        .map_err(|e| e.to_string())?
        .with_id("bench");
    let monotonic = kernel.clone().without_kernel_stamps();
    let tier = Suite::embedded().tier("t2").expect("t2").clone();
    let families: Vec<Family> = tier
        .families
        .iter()
        .map(|f| Family::from_id(f).expect("suite family"))
        .collect();
    let mut r = Rng::new(7);
    let mut lines = vec![format!(
        "streams: {streams} OpenAI streams started over {ramp_ms} ms, injected first-token delay {ttft_ms} ms median (jitter {jitter_permille}/1000) + prompt tokens/40, answers at 10 tokens/s, simulator {}",
        if separate_process { "in a separate process" } else { "in this process" }
    )];
    // The same rounds twice: first-token instants from the kernel's receive stamps, then with
    // stamps off (the moment the worker noticed the bytes), on a fresh pool each.
    for (round, worker) in [
        ("cold, kernel stamps", &kernel),
        ("warm, kernel stamps", &kernel),
        ("cold, monotonic only", &monotonic),
        ("warm, monotonic only", &monotonic),
    ] {
        let start = Arc::new(tokio::sync::Barrier::new(streams));
        let t0 = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..streams {
            let (w, ep, start) = (worker.clone(), ep.clone(), start.clone());
            let spec = ProbeSpec {
                tier: tier.clone(),
                family: families[i % families.len()],
                seed: r.next_u64(),
                nonce: r.hex(8),
                retry: 0,
            };
            let at = t0 + Duration::from_micros(ramp_ms * 1000 * i as u64 / streams as u64);
            tasks.spawn(async move {
                if ramp_ms == 0 {
                    start.wait().await;
                } else {
                    tokio::time::sleep_until(at.into()).await;
                }
                let began = Instant::now();
                let o = w.probe(&ep, None, &spec).await;
                (began, Instant::now(), o)
            });
        }
        let mut obs = Vec::new();
        while let Some(j) = tasks.join_next().await {
            let (began, ended, o) = j.map_err(|e| e.to_string())?;
            obs.push((began, ended, o.map_err(|e| e.to_string())?));
        }
        let wall = t0.elapsed().as_secs_f64();
        let served = server.take_served().await?;
        let hist = || hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3);
        let (mut vs_injected, mut client_added, mut open_at_first) = (
            hist().map_err(|e| e.to_string())?,
            hist().map_err(|e| e.to_string())?,
            hist().map_err(|e| e.to_string())?,
        );
        let (mut failed, mut early, mut unmatched) = (BTreeMapCount::default(), 0u64, 0u64);
        let mut sources = BTreeMapCount::default();
        for (began, _, o) in &obs {
            if let Some(f) = &o.failure {
                failed.add(f.class.as_str());
                continue;
            }
            let Some(&(injected_ms, server_ns)) = served.get(&o.nonce) else {
                unmatched += 1;
                continue;
            };
            let measured_ns = o.timings.first_token_ns.unwrap_or(0);
            sources.add(match o.timings.first_token_clock {
                Some(sit_core::observation::RxClock::Kernel) => "kernel",
                Some(sit_core::observation::RxClock::Monotonic) => "monotonic",
                Some(sit_core::observation::RxClock::Mixed) => "mixed",
                None => "none",
            });
            let injected_ns = injected_ms * 1_000_000;
            if measured_ns < injected_ns {
                early += 1;
            }
            vs_injected.saturating_record((measured_ns.saturating_sub(injected_ns) / 1000).max(1));
            client_added.saturating_record((measured_ns.saturating_sub(server_ns) / 1000).max(1));
            // how many streams were open when this first token arrived
            let at = *began + Duration::from_nanos(measured_ns);
            let open = obs.iter().filter(|(b, e, _)| *b <= at && at <= *e).count();
            open_at_first.saturating_record(open as u64);
        }
        let q = |h: &hdrhistogram::Histogram<u64>| {
            format!(
                "p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
                h.value_at_quantile(0.5) as f64 / 1000.0,
                h.value_at_quantile(0.99) as f64 / 1000.0,
                h.max() as f64 / 1000.0
            )
        };
        lines.push(format!(
            "  {round}: {} complete, failures {:?}, {unmatched} unmatched, {early} before the injected delay, in {wall:.2} s; first-token instant from {:?}; streams open at a first token: min {}, p50 {}, max {}\n    TTFT error vs injected delay: {}\n    client-added (vs server's own first-token instant): {}",
            vs_injected.len(),
            failed.0,
            sources.0,
            open_at_first.min(),
            open_at_first.value_at_quantile(0.5),
            open_at_first.max(),
            q(&vs_injected),
            q(&client_added)
        ));
    }
    server.stop().await;
    Ok(lines.join("\n"))
}

/// The simulated provider of the streams benchmark (also served by `sit sim --bench-ttft-ms`).
pub fn bench_provider(ttft_ms: u64, jitter_permille: u32) -> crate::sim::SimProvider {
    use crate::sim::SimProvider;
    SimProvider {
        id: "sim-bench".into(),
        base_input: 0.1,
        base_output: 0.4,
        quality_permille: [1000; 3],
        ttft_ms,
        tokens_per_sec: 10,
        inflation_permille: 1000,
        reasoning_tokens: 0,
        fault_permille: 0,
        seed: 1,
        dialect: crate::config::Dialect::Openai,
        ttft_jitter_permille: jitter_permille,
        scripted: None,
    }
}

/// The streams benchmark's server: in this process, or a child `sit sim`.
enum SimServer {
    InProcess(crate::sim::server::RunningMarket),
    Child(SimChild),
}

impl SimServer {
    fn base_url(&self) -> String {
        match self {
            SimServer::InProcess(m) => m.base_urls().remove(0),
            SimServer::Child(c) => c.base_url.clone(),
        }
    }

    /// nonce -> (injected delay ms, server's own first-token time ns), taken from the log.
    async fn take_served(&self) -> Result<std::collections::BTreeMap<String, (u64, u64)>, String> {
        let mut out = std::collections::BTreeMap::new();
        match self {
            SimServer::InProcess(m) => {
                for s in m.take_served(0) {
                    let ns = s.first_token.duration_since(s.received).as_nanos() as u64;
                    out.insert(s.nonce, (s.injected_ms, ns));
                }
            }
            SimServer::Child(c) => {
                let url = format!("{}/sim/served", c.base_url.trim_end_matches("/v1"));
                let body = reqwest::get(&url)
                    .await
                    .map_err(|e| format!("GET {url}: {e}"))?
                    .bytes()
                    .await
                    .map_err(|e| format!("GET {url}: {e}"))?;
                let v: serde_json::Value =
                    serde_json::from_slice(&body).map_err(|e| format!("GET {url}: {e}"))?;
                for s in v.as_array().into_iter().flatten() {
                    if let (Some(n), Some(inj), Some(ns)) = (
                        s["nonce"].as_str().map(str::to_string),
                        s["injected_ms"].as_u64(),
                        s["server_ttft_ns"].as_u64(),
                    ) {
                        out.insert(n, (inj, ns));
                    }
                }
            }
        }
        Ok(out)
    }

    async fn stop(self) {
        match self {
            SimServer::InProcess(m) => m.shutdown().await,
            SimServer::Child(mut c) => {
                let _ = c.child.kill();
                let _ = c.child.wait();
            }
        }
    }
}

/// A child `sit sim --bench-ttft-ms ...` process.
struct SimChild {
    child: std::process::Child,
    base_url: String,
}

impl SimChild {
    fn spawn(ttft_ms: u64, jitter_permille: u32) -> Result<SimChild, String> {
        use std::io::BufRead;
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = std::process::Command::new(exe)
            .args([
                "sim",
                "--bench-ttft-ms",
                &ttft_ms.to_string(),
                "--bench-jitter-permille",
                &jitter_permille.to_string(),
                "--for-secs",
                "3600",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start the simulator process: {e}"))?;
        let stdout = child.stdout.take().ok_or("no simulator stdout")?;
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.map_err(|e| e.to_string())?;
            if let Some(url) = line.strip_prefix("base_url = \"") {
                return Ok(SimChild {
                    child,
                    base_url: url.trim_end_matches('"').to_string(),
                });
            }
        }
        let _ = child.kill();
        Err("the simulator process printed no base_url".into())
    }
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
    use sit_core::derive::StreamState;
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

mod network;
mod service;

/// Run `sit bench ...`.
pub(super) async fn run(what: super::BenchWhat) -> crate::cli::error::Result<()> {
    use super::BenchWhat;
    use crate::cli::error::Error;
    match what {
        BenchWhat::Index {
            observations,
            endpoints,
            repeats,
        } => {
            println!("{}", index_bench(observations, endpoints, repeats))
        }
        BenchWhat::Recompute {
            days,
            observations,
            endpoints,
        } => println!("{}", recompute_bench(days, observations, endpoints)),
        BenchWhat::Collect {
            observations,
            rate,
            secs,
        } => println!(
            "{}",
            network::collect_bench(observations, rate, secs)
                .await
                .map_err(Error::Failed)?
        ),
        BenchWhat::Run { hour_ms, per_hour } => println!(
            "{}",
            service::run_bench(hour_ms, per_hour)
                .await
                .map_err(Error::Failed)?
        ),
        BenchWhat::Streams {
            streams,
            ttft_ms,
            jitter_permille,
            ramp_ms,
            separate_process,
        } => println!(
            "{}",
            streams_bench(streams, ttft_ms, jitter_permille, ramp_ms, separate_process)
                .await
                .map_err(Error::Failed)?
        ),
        BenchWhat::Stability {
            days,
            seed,
            endpoints,
            json,
            schedule,
        } => {
            let rows = stability::run(days, seed, endpoints, schedule);
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&rows)
                        .map_err(|e| Error::Failed(e.to_string()))?
                );
            } else {
                print!("{}", stability::render(&rows, seed, endpoints));
            }
        }
        BenchWhat::Submissions {
            secs,
            readers,
            parties,
        } => println!(
            "{}",
            submissions::run(secs, readers, parties)
                .await
                .map_err(Error::Failed)?
        ),
        BenchWhat::Events { events, repeats } => {
            println!("{}", event_overhead_bench(events, repeats))
        }
        BenchWhat::Rederive { bundle, repeats } => println!(
            "{}",
            rederive_bench(&bundle, repeats).map_err(Error::Failed)?
        ),
        BenchWhat::Ingest {
            observations,
            batch,
        } => {
            let dir = std::env::temp_dir().join(format!("sit-bench-ingest-{}", std::process::id()));
            let r = ingest_bench(&dir, observations, batch);
            let _ = std::fs::remove_dir_all(&dir);
            println!("{}", r?);
        }
    }
    Ok(())
}
