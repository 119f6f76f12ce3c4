//! `sit demo`: `sit run` on the embedded simulated market, with a compressed clock and an
//! end. Same scheduler, committer, publisher and archive as the service; only the endpoints
//! (the simulator on loopback, no keys) and the signing key (a demo key kept in
//! `DATA/demo-key/`) are the demo's own.

use crate::archive::{keys, Archive};
use crate::cli::error::{Error, Result};
use crate::config::Defaults;
use crate::service::{self, Endpoints, RunOptions};
use crate::sim::{self, Market};
use crate::store::Store;
use crate::worker::runner::RunSummary;
use sit_core::index::Determination;
use sit_core::probes::Suite;
use sit_core::time::Date;
use std::path::{Path, PathBuf};

/// Options of `sit demo`.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub days: u32,
    /// First simulated day; default: 2026-01-05, or the day after the last stored day.
    pub start: Option<Date>,
    /// Real milliseconds per simulated hour.
    pub hour_ms: u64,
    /// The simulated market's seed (the schedules' seeds come from the OS, as in production).
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
    /// One line per record published (signed with the demo key).
    pub published: Vec<String>,
    pub key: PathBuf,
    /// Every stored day's determination, recomputed (the preview `sit index` shows).
    pub determinations: Vec<Determination>,
}

/// Run the demo: start the market, run the oracle over `days` simulated days, then preview.
pub async fn run(data: &Path, opts: &DemoOptions) -> Result<DemoReport> {
    if opts.days == 0 || opts.hour_ms == 0 || opts.per_hour == 0 {
        return Err(Error::Usage(
            "--days, --hour-ms and --per-hour must be at least 1".into(),
        ));
    }
    std::fs::create_dir_all(data)?;
    let start = match opts.start {
        Some(d) => d,
        None => {
            let default = Date::parse("2026-01-05").expect("date");
            // Opened only to look: the service opens the store itself.
            let last = Store::open(data)?.days()?.last().copied();
            match last {
                Some(last) if last.succ() > default => last.succ(),
                _ => default,
            }
        }
    };
    let until = Date(start.0 + opts.days as i32);
    let last_day = Date(until.0 - 1);
    sit_core::tokenizer::warm_up();

    let mut market = Market::default_market(opts.seed);
    if let Some(n) = opts.market_size {
        market.providers.truncate(n.max(1));
    }
    let running = sim::server::start(market.clone(), last_day).await?;
    let endpoints = market.endpoints(&running.base_urls(), last_day);
    let key_dir = crate::archive::layout::demo_key(data);
    let key = key_dir.join(keys::PRIVATE_FILE);
    if !key.exists() {
        keys::generate(&key_dir)?;
    }
    if opts.progress {
        eprintln!(
            "sit demo: {} simulated providers on 127.0.0.1, {} day(s) from {start}, 1 simulated hour = {} ms",
            endpoints.len(),
            opts.days,
            opts.hour_ms,
        );
    }
    let run_opts = RunOptions {
        key: key.clone(),
        per_hour: opts.per_hour,
        start: Some(start),
        hour_ms: Some(opts.hour_ms),
        until: Some(until),
        progress: opts.progress,
        print_acks: opts.print_acks,
        serve: None,
        limits: Default::default(),
        new_timeline: true,
        contracts: None,
        parties: None,
        network: None,
        demo_key: true,
    };
    let ran = service::run(
        data,
        Endpoints::Given {
            defaults: Defaults::default(),
            endpoints: endpoints.into_iter().map(|e| (e, None)).collect(),
        },
        &run_opts,
    )
    .await;
    running.shutdown().await;
    let ran = ran?;

    let store = Store::open(data)?;
    let computed_at = sit_core::time::format_utc_ms(crate::sys::clock::Clock::now_ms(
        &crate::sys::clock::SystemClock,
    ));
    let determinations = crate::publisher::recompute_all(
        &store,
        &Archive::for_data(data),
        sit_core::versions::Registry::embedded(),
        &Suite::embedded().tier_ids(),
        &computed_at,
    )?;
    Ok(DemoReport {
        days: ran.days,
        summary: ran.summary,
        published: ran.published,
        key,
        determinations,
    })
}
