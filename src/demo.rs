//! `sit demo`: the whole pipeline on the embedded simulated market, and the probe runner it
//! shares with `sit probe`.

use crate::clock::{format_utc_ms, Clock, CompressedClock, Date};
use crate::commit::{commitment_of, salt_of, Commitment, Reveal};
use crate::config::{ApiKey, Defaults, Endpoint};
use crate::determine;
use crate::error::{Error, Result};
use crate::index::{Determination, Methodology};
use crate::observation::Observation;
use crate::probes::Suite;
use crate::schedule::{day_schedule, day_seed, Slot};
use crate::sim::{self, Market};
use crate::store::Store;
use crate::worker::pace::Pacer;
use crate::worker::recorder::Recorder;
use crate::worker::{retry, ProbeSpec, Worker};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

/// Options of `sit demo`.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub days: u32,
    /// First simulated day; default: 2026-01-05, or the day after the last stored day.
    pub start: Option<Date>,
    /// Real milliseconds per simulated hour.
    pub hour_ms: u64,
    pub seed: u64,
    pub per_hour: u32,
    /// Use only the first N simulated providers (None: all 12). Small bundles for tests.
    pub market_size: Option<usize>,
    pub progress: bool,
    /// Print `ack SEQ` on stdout each time an observation is durably recorded (kill tests).
    pub print_acks: bool,
}

/// What a run of probes did.
#[derive(Debug, Default, Clone)]
pub struct RunSummary {
    pub attempts: u64,
    pub recorded: u64,
    pub delivered: u64,
    /// Per endpoint: attempts, failures by class, correct.
    pub per_endpoint: BTreeMap<String, EndpointSummary>,
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct EndpointSummary {
    pub attempts: u64,
    pub succeeded: u64,
    pub correct: u64,
    pub delivered: u64,
    pub failures: BTreeMap<String, u64>,
}

fn progress_bar(total: u64, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(total);
    pb.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} probes  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb
}

/// Run scheduled probes: each at its clock time, per-endpoint concurrency, every observation
/// recorded (durably) before it counts.
pub async fn run_slots(
    worker: &Worker,
    endpoints: &[Arc<(Endpoint, Option<ApiKey>)>],
    suite: &'static Suite,
    slots: Vec<Slot>,
    recorder: &Recorder,
    pb: &ProgressBar,
    print_acks: bool,
) -> Result<RunSummary> {
    let sems: Vec<Arc<Semaphore>> = endpoints
        .iter()
        .map(|e| Arc::new(Semaphore::new(e.0.concurrency as usize)))
        .collect();
    let pacers: Vec<Option<Arc<Pacer>>> = endpoints
        .iter()
        .map(|e| Pacer::new(e.0.requests_per_minute).map(Arc::new))
        .collect();
    let summary = Arc::new(Mutex::new(RunSummary::default()));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let recorded = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for slot in slots {
        let wait = worker.clock().real_until(slot.at_ms);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        pb.set_message(format_utc_ms(worker.clock().now_ms()));
        let (w, ep, sem, pacer, rec, pb, summary, errors, recorded) = (
            worker.clone(),
            endpoints[slot.endpoint].clone(),
            sems[slot.endpoint].clone(),
            pacers[slot.endpoint].clone(),
            recorder.clone(),
            pb.clone(),
            summary.clone(),
            errors.clone(),
            recorded.clone(),
        );
        let tier = suite.tiers[slot.tier].clone();
        tasks.spawn(async move {
            let _permit = sem.acquire_owned().await;
            let mut spec = ProbeSpec {
                tier,
                family: slot.family,
                seed: slot.seed,
                nonce: slot.nonce,
                retry: 0,
            };
            // Each retry is its own recorded attempt; Retry-After is a minimum wait.
            loop {
                if let Some(p) = &pacer {
                    p.wait().await;
                }
                let obs = match w.probe(&ep.0, ep.1.as_ref(), &spec).await {
                    Ok(obs) => obs,
                    Err(e) => {
                        errors.lock().unwrap().push(e.to_string());
                        break;
                    }
                };
                note(&summary, &obs);
                let wait =
                    retry::delay(&retry::Policy::default(), obs.failure.as_ref(), spec.retry);
                match rec.record(obs).await {
                    Ok(seq) => {
                        recorded.fetch_add(1, Ordering::Relaxed);
                        if print_acks {
                            println!("ack {seq}");
                        }
                    }
                    Err(e) => {
                        errors
                            .lock()
                            .unwrap()
                            .push(format!("recording failed: {e}"));
                        break;
                    }
                }
                match wait {
                    Some(d) => {
                        tokio::time::sleep(d).await;
                        spec.retry += 1;
                    }
                    None => break,
                }
            }
            pb.inc(1);
        });
        while let Some(r) = tasks.try_join_next() {
            r.map_err(|e| Error::Failed(format!("probe task failed: {e}")))?;
        }
    }
    while let Some(r) = tasks.join_next().await {
        r.map_err(|e| Error::Failed(format!("probe task failed: {e}")))?;
    }
    let errs = errors.lock().unwrap().clone();
    if let Some(first) = errs.first() {
        return Err(Error::Failed(format!(
            "{} probes could not run; first: {first}",
            errs.len()
        )));
    }
    let mut s = summary.lock().unwrap().clone();
    s.recorded = recorded.load(Ordering::Relaxed);
    Ok(s)
}

fn note(summary: &Mutex<RunSummary>, o: &Observation) {
    let mut s = summary.lock().unwrap();
    s.attempts += 1;
    s.delivered += (o.delivered_sit > 0) as u64;
    let e = s.per_endpoint.entry(o.endpoint.clone()).or_default();
    e.attempts += 1;
    e.succeeded += o.succeeded() as u64;
    e.correct += o.correct as u64;
    e.delivered += (o.delivered_sit > 0) as u64;
    if let Some(f) = &o.failure {
        *e.failures.entry(f.class.as_str().to_string()).or_default() += 1;
    }
}

/// The result of a demo run.
pub struct DemoReport {
    pub days: Vec<Date>,
    pub summary: RunSummary,
    pub determinations: Vec<Determination>,
}

/// Run the demo: start the market, probe `days` simulated days, store, compute.
pub async fn run(data: &Path, opts: &DemoOptions) -> Result<DemoReport> {
    if opts.days == 0 || opts.hour_ms == 0 || opts.per_hour == 0 {
        return Err(Error::Usage(
            "--days, --hour-ms and --per-hour must be at least 1".into(),
        ));
    }
    std::fs::create_dir_all(data)?;
    let store = Arc::new(Store::open(data)?);
    let start = match opts.start {
        Some(d) => d,
        None => {
            let default = Date::parse("2026-01-05").expect("date");
            match store.days()?.last() {
                Some(last) if last.succ() > default => last.succ(),
                _ => default,
            }
        }
    };
    let days: Vec<Date> = (0..opts.days as i32).map(|i| Date(start.0 + i)).collect();
    let until = *days.last().expect("at least one day");
    let suite = Suite::embedded();
    let m = Methodology::default();
    crate::tokenizer::warm_up();

    let mut market = Market::default_market(opts.seed);
    if let Some(n) = opts.market_size {
        market.providers.truncate(n.max(1));
    }
    let running = sim::server::start(market.clone(), until).await?;
    let endpoints = market.endpoints(&running.base_urls(), until);
    for e in &endpoints {
        store.put_prices(&e.id, &e.prices)?;
    }
    let eps: Vec<Arc<(Endpoint, Option<ApiKey>)>> =
        endpoints.into_iter().map(|e| Arc::new((e, None))).collect();

    let factor = (crate::clock::HOUR_MS as u64 / opts.hour_ms).max(1);
    let clock: Arc<dyn Clock> = Arc::new(CompressedClock::new(start.start_ms(), factor));
    let worker = Worker::new(Defaults::default(), clock, m.clone())?.with_id("demo");
    let (recorder, rec_task) = Recorder::start(store.clone());

    // Commit each day's schedule seed before probing starts; reveal after the days end.
    let archive = crate::publisher::archive::Archive::for_data(data);
    let ids: Vec<String> = eps.iter().map(|e| e.0.id.clone()).collect();
    for d in &days {
        let seed = day_seed(opts.seed, *d);
        archive
            .put_commitment(&Commitment {
                date: *d,
                commitment: commitment_of(*d, seed, &salt_of(opts.seed, *d)),
                endpoints: ids.clone(),
                per_hour: opts.per_hour,
                suite_hash: suite.hash.clone(),
                committed_at: format_utc_ms(worker.clock().now_ms()),
            })
            .map_err(|e| Error::Failed(e.to_string()))?;
    }
    let mut slots = Vec::new();
    for d in &days {
        slots.extend(day_schedule(
            suite,
            eps.len(),
            *d,
            day_seed(opts.seed, *d),
            opts.per_hour,
        ));
    }
    if opts.progress {
        eprintln!(
            "sit demo: {} simulated providers on 127.0.0.1, {} day(s) from {start}, 1 simulated hour = {} ms, {} probes",
            eps.len(),
            days.len(),
            opts.hour_ms,
            slots.len()
        );
    }
    let pb = progress_bar(slots.len() as u64, opts.progress);
    let summary = run_slots(&worker, &eps, suite, slots, &recorder, &pb, opts.print_acks).await;
    pb.finish_and_clear();
    drop(recorder);
    rec_task
        .await
        .map_err(|e| Error::Failed(format!("recorder task failed: {e}")))??;
    running.shutdown().await;
    let summary = summary?;
    for d in &days {
        archive
            .put_reveal(&Reveal {
                date: *d,
                seed: format!("{:016x}", day_seed(opts.seed, *d)),
                salt: crate::publisher::keys::hex(&salt_of(opts.seed, *d)),
                revealed_at: format_utc_ms(worker.clock().now_ms().max(d.succ().start_ms())),
            })
            .map_err(|e| Error::Failed(e.to_string()))?;
    }

    let computed_at = format_utc_ms(crate::clock::SystemClock.now_ms());
    let determinations = determine::all_days(&store, suite, &m, &suite.tier_ids(), &computed_at)?;
    Ok(DemoReport {
        days,
        summary,
        determinations,
    })
}

/// A human table of a run's attempts per endpoint: availability, correct and delivered as
/// shares of attempts, failures by class.
pub fn render_summary(s: &RunSummary) -> String {
    let width = s
        .per_endpoint
        .keys()
        .map(|k| k.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let mut out = format!(
        "{:<width$} {:>8} {:>9} {:>8} {:>9}  failures\n",
        "endpoint", "attempts", "available", "correct", "delivered"
    );
    for (id, e) in &s.per_endpoint {
        let pct = |n: u64| format!("{:.1}%", 100.0 * n as f64 / e.attempts.max(1) as f64);
        let fails: Vec<String> = e.failures.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out.push_str(&format!(
            "{:<width$} {:>8} {:>9} {:>8} {:>9}  {}\n",
            id,
            e.attempts,
            pct(e.succeeded),
            pct(e.correct),
            pct(e.delivered),
            fails.join(" ")
        ));
    }
    out
}

/// A human table of determinations.
pub fn render_table(ds: &[Determination]) -> String {
    let mut s = format!(
        "{:<10}  {:<4}  {:>14}  {:<11}  {:>9}  {:>7}  {:>10}\n",
        "date", "tier", "USD/1M SIT", "status", "endpoints", "valid", "dispersion"
    );
    for d in ds {
        let status = serde_json::to_value(d.status)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        s.push_str(&format!(
            "{:<10}  {:<4}  {:>14}  {:<11}  {:>4}/{:<4}  {:>4}/24  {:>10}\n",
            d.date.to_string(),
            d.tier,
            d.value.map(|v| v.round_dp(6)).unwrap_or_else(|| "-".into()),
            status,
            d.counts.endpoints_eligible,
            d.counts.endpoints_observed,
            d.counts.valid_partitions,
            d.dispersion
                .map(|v| v.round_dp(4))
                .unwrap_or_else(|| "-".into()),
        ));
        if let Some(c) = &d.contingency {
            s.push_str(&format!("            ^ {}\n", c.reason));
        }
    }
    s
}
