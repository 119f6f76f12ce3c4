//! `sit demo`: the whole pipeline on the embedded simulated market (the probe runner it shares
//! with `sit probe` is [`crate::worker::runner`]).

use crate::clock::{format_utc_ms, Clock, CompressedClock, Date};
use crate::commit::{commitment_of, salt_of, Commitment, Reveal};
use crate::config::{ApiKey, Defaults, Endpoint};
use crate::error::{Error, Result};
use crate::index::{Determination, Methodology};
use crate::probes::Suite;
use crate::schedule::{day_schedule, day_seed};
use crate::sim::{self, Market};
use crate::store::Store;
use crate::worker::recorder::Recorder;
use crate::worker::runner::{progress_bar, run_slots, RunSummary};
use crate::worker::Worker;
use std::path::Path;
use std::sync::Arc;

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
                salt: crate::signing::hex(&salt_of(opts.seed, *d)),
                revealed_at: format_utc_ms(worker.clock().now_ms().max(d.succ().start_ms())),
            })
            .map_err(|e| Error::Failed(e.to_string()))?;
    }

    let computed_at = format_utc_ms(crate::clock::SystemClock.now_ms());
    let determinations = crate::publisher::recompute_all(
        &store,
        &archive,
        crate::versions::Registry::embedded(),
        &suite.tier_ids(),
        &computed_at,
    )?;
    Ok(DemoReport {
        days,
        summary,
        determinations,
    })
}
