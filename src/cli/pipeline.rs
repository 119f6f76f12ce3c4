//! Probing and previewing: `sit demo`, `sit sim`, `sit probe`, `sit index`, `sit suite`, `sit check`.

use super::{parse_date, Command, Paths};
use crate::cli::demo::{self, DemoOptions};
use crate::cli::error::{Error, Result};
use crate::config::{self, ApiKey, Endpoint};
use crate::store::Store;
use crate::sys::clock::{Clock, SystemClock};
use sit_core::index::Methodology;
use sit_core::probes::{Family, Suite};
use sit_core::time::{format_utc_ms, Date};
use std::sync::Arc;

/// Run a command of this family.
pub(super) async fn run(cli: &Paths, command: Command) -> Result<()> {
    match command {
        c @ Command::Demo { .. } => demo_command(cli, c).await,
        c @ Command::Run { .. } => run_command(cli, c).await,
        c @ Command::Sim { .. } => sim_command(c).await,
        c @ Command::Index { .. } => index_command(cli, c),
        Command::Probe {
            endpoint,
            all,
            rounds,
            tier,
            json,
        } => probe(cli, endpoint, all, rounds, tier, json).await,
        c @ Command::Suite { .. } => suite_command(c),
        Command::Prices { what } => prices(cli, what),
        Command::Check => check_command(cli),
        _ => unreachable!("dispatched by cli::run"),
    }
}

/// `sit demo`: `sit run` on the embedded simulator, then the tables.
async fn demo_command(cli: &Paths, command: Command) -> Result<()> {
    let Command::Demo {
        days,
        start,
        hour_ms,
        seed,
        per_hour,
        print_acks,
        market_size,
    } = command
    else {
        unreachable!("dispatched on Command::Demo")
    };
    let start = start.as_deref().map(parse_date).transpose()?;
    let opts = DemoOptions {
        days,
        start,
        hour_ms,
        seed,
        per_hour,
        market_size,
        progress: !print_acks,
        print_acks,
    };
    let t0 = std::time::Instant::now();
    let report = demo::run(&cli.data, &opts).await?;
    let s = &report.summary;
    println!(
        "\nProbed {} attempts on {} simulated providers in {:.0} s; {} recorded durably, {} delivered their SIT.\n",
        s.attempts,
        s.per_endpoint.len(),
        t0.elapsed().as_secs_f64(),
        s.recorded,
        s.delivered
    );
    print!("{}", crate::cli::report::render_summary(s));
    let shown: Vec<_> = report
        .determinations
        .iter()
        .filter(|d| report.days.contains(&d.date))
        .cloned()
        .collect();
    println!(
        "\nDaily SIT index (USD per 1,000,000 SIT), methodology {}:\n",
        Methodology::default().version
    );
    print!("{}", crate::cli::report::render_table(&shown));
    println!(
        "\nPublished by `sit run` as each day ended, signed with the demo key {} (audit bundles in {}/archive/):",
        report.key.display(),
        cli.data.display()
    );
    for line in &report.published {
        println!("  {line}");
    }
    let first = report
        .days
        .first()
        .map(|d| d.to_string())
        .unwrap_or_default();
    println!(
        "\nData is in {}/ (sled). Next (sit is {}):\n  sit --data {} serve                     serve the signed values: http://127.0.0.1:8080/\n  sit --data {} index --json               every determination as JSON\n  sit --data {} index --date {} --tier t1  one day, one tier\n  sit audit verify {}/archive/{} --key {}/demo-key/public-key.pem   check a day's audit bundle against the key\n  sit suite                                  the probe suite and its hash\n  sit demo                                   probe the next simulated days into the same store",
        cli.data.display(),
        this_binary(),
        cli.data.display(),
        cli.data.display(),
        cli.data.display(),
        first,
        cli.data.display(),
        first,
        cli.data.display(),
    );
    Ok(())
}

/// This binary as the user can call it from where they are: relative to the current folder
/// when it is below it (`./target/release/sit`), else its full path (regression, issue 26:
/// the demo's hint named `./target/release/sit` whatever folder it ran from).
fn this_binary() -> String {
    match (std::env::current_exe(), std::env::current_dir()) {
        (Ok(exe), Ok(here)) => binary_as_seen_from(&exe, &here),
        (Ok(exe), Err(_)) => exe.display().to_string(),
        _ => "the sit binary".into(),
    }
}

fn binary_as_seen_from(exe: &std::path::Path, here: &std::path::Path) -> String {
    match exe.strip_prefix(here) {
        Ok(rel) => format!("./{}", rel.display()),
        Err(_) => exe.display().to_string(),
    }
}

/// `sit run`: the oracle as a service, on the providers file.
async fn run_command(cli: &Paths, command: Command) -> Result<()> {
    let Command::Run {
        key,
        per_hour,
        clock,
        until,
        serve,
        limits,
        print_acks,
        contracts,
        parties,
    } = command
    else {
        unreachable!("dispatched on Command::Run")
    };
    let opts = crate::service::RunOptions {
        key,
        per_hour,
        start: clock.start()?,
        hour_ms: clock.hour_ms,
        until: until.as_deref().map(parse_date).transpose()?,
        progress: !print_acks,
        print_acks,
        serve,
        limits: limits.limits()?,
        new_timeline: false,
        network: None,
        demo_key: false,
        contracts,
        parties,
    };
    let report = crate::service::run(
        &cli.data,
        crate::service::Endpoints::File(cli.providers.clone()),
        &opts,
    )
    .await?;
    println!(
        "sit run: stopped{}; {} probes sent, {} recorded as missed, {} records published in this run",
        opts.until.map(|d| format!(" before {d} as asked")).unwrap_or_default(),
        report.probes,
        report.missed,
        report.published.len()
    );
    Ok(())
}

/// `sit sim`: the simulated market on loopback, its providers file on stdout.
async fn sim_command(command: Command) -> Result<()> {
    let Command::Sim {
        seed,
        for_secs,
        bench_ttft_ms,
        bench_jitter_permille,
    } = command
    else {
        unreachable!("dispatched on Command::Sim")
    };
    let market = match bench_ttft_ms {
        Some(t) => {
            crate::sim::Market::single(super::bench::bench_provider(t, bench_jitter_permille))
        }
        None => crate::sim::Market::default_market(seed),
    };
    let now = SystemClock.now_ms();
    let until = Date::of_ms(now).succ();
    let running =
        crate::sim::server::start_with(market.clone(), until, bench_ttft_ms.is_some()).await?;
    let eps = market.endpoints(&running.base_urls(), until);
    println!("{}", crate::sim::providers_toml(&eps, now));
    tracing::info!(
        target: "sit::sim",
        "sit sim: {} providers on 127.0.0.1 (Ctrl-C to stop)",
        eps.len()
    );
    match for_secs {
        Some(s) => tokio::time::sleep(std::time::Duration::from_secs(s)).await,
        None => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    running.shutdown().await;
    Ok(())
}

/// `sit index`: the determinations recomputed from the store (published days under their own methodology).
fn index_command(cli: &Paths, command: Command) -> Result<()> {
    let Command::Index { date, tier, json } = command else {
        unreachable!("dispatched on Command::Index")
    };
    let date = date.as_deref().map(parse_date).transpose()?;
    let suite = Suite::embedded();
    super::check_tier(tier.as_deref())?;
    super::existing_store(&cli.data)?;
    let store = Store::open(&cli.data)?;
    let computed_at = format_utc_ms(SystemClock.now_ms());
    // Published days are recomputed under the methodology their record names.
    let all = crate::publisher::recompute_all(
        &store,
        &crate::archive::Archive::for_data(&cli.data),
        sit_core::versions::Registry::embedded(),
        &suite.tier_ids(),
        &computed_at,
    )?;
    let ds: Vec<_> = all
        .into_iter()
        .filter(|d| {
            date.map(|x| d.date == x).unwrap_or(true)
                && tier.as_ref().map(|t| &d.tier == t).unwrap_or(true)
        })
        .collect();
    if let Some(d) = date {
        if ds.is_empty() {
            return Err(Error::Failed(format!("no observations stored for {d}")));
        }
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&ds).map_err(|e| Error::Failed(e.to_string()))?
        );
    } else {
        print!("{}", crate::cli::report::render_table(&ds));
    }
    Ok(())
}

/// `sit suite`: the probe suite and its hash.
fn suite_command(command: Command) -> Result<()> {
    let Command::Suite { json } = command else {
        unreachable!("dispatched on Command::Suite")
    };
    let s = Suite::embedded();
    if json {
        let v = serde_json::json!({"version": s.version, "hash": s.hash, "tiers": s.tiers});
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        println!("probe suite {} (hash {})", s.version, s.hash);
        for t in &s.tiers {
            println!(
                "  {} {:<9} pass >= {}  budget_out {:>3}  SLA ttft {} ms, e2e {} ms  families: {}",
                t.id,
                t.name,
                t.pass_threshold.round_dp(2),
                t.budget_out,
                t.sla_ttft_ms,
                t.sla_e2e_ms,
                t.families.join(", ")
            );
        }
    }
    Ok(())
}

/// `sit check`: the providers file checked, each endpoint's key availability (never the key).
fn check_command(cli: &Paths) -> Result<()> {
    let c = config::load(&cli.providers)?;
    println!(
        "{}: {} endpoints OK",
        cli.providers.display(),
        c.endpoints.len()
    );
    for e in &c.endpoints {
        let key = match (&e.api_key_env, e.api_key()) {
            (None, _) => "no key needed".to_string(),
            (Some(_), Ok(_)) => "key available".to_string(),
            (Some(var), Err(config::KeyError::Unset { .. })) => {
                format!("skipped until {var} is set")
            }
            (Some(var), Err(config::KeyError::InUrl { .. })) => format!(
                "skipped: the base_url holds the value of {var}; move the key out of the URL"
            ),
        };
        // Never print a key, even one written into the URL by mistake.
        let url = match e.api_key_env.as_ref().and_then(|v| std::env::var(v).ok()) {
            Some(k) if !k.is_empty() && e.base_url.contains(&k) => {
                e.base_url.replace(&k, sit_core::observation::REDACTED)
            }
            _ => e.base_url.clone(),
        };
        let key = if e.dialect.supported() {
            key
        } else {
            format!("{key}; no {} adapter yet", e.dialect)
        };
        println!(
            "  {:<28} {:<9} {}  ({key})",
            e.id,
            e.dialect.to_string(),
            url
        );
    }
    Ok(())
}

/// `sit prices diff|import`.
fn prices(cli: &Paths, what: super::PricesWhat) -> Result<()> {
    use crate::prices::{proposal, Catalogue, Comparison};
    if let super::PricesWhat::Book { endpoint } = &what {
        let store = Store::open(&cli.data)?;
        let book = store.book()?;
        println!(
            "price book of {}: {} versions (USD per 1M tokens: input / cached input / output; fee USD per request)",
            cli.data.display(),
            book.version()
        );
        for e in book
            .entries()
            .iter()
            .filter(|e| endpoint.as_ref().is_none_or(|x| *x == e.endpoint))
        {
            let p = &e.price;
            println!(
                "v{:<6} recorded {}  {:<28} from {}  {} / {} / {}  fee {}{}",
                e.version,
                sit_core::time::format_utc_ms(e.recorded_at_ms),
                e.endpoint,
                sit_core::time::format_utc_ms(p.effective_from_ms),
                p.input,
                p.cached_input,
                p.output,
                p.request_fee,
                e.source
                    .as_ref()
                    .map(|s| format!("  ({s})"))
                    .unwrap_or_default()
            );
        }
        return Ok(());
    }
    let c = config::load(&cli.providers)?;
    let now = SystemClock.now_ms();
    let (catalogue, import, effective_from) = match what {
        super::PricesWhat::Diff { catalogue } => (catalogue, false, None),
        super::PricesWhat::Book { .. } => unreachable!("listed above"),
        super::PricesWhat::Import {
            catalogue,
            effective_from,
        } => (catalogue, true, effective_from),
    };
    let cat = Catalogue::load(&catalogue).map_err(Error::Usage)?;
    let from = match effective_from {
        Some(t) => {
            sit_core::time::parse_utc_ms(&t)
                .map_err(|e| Error::Usage(format!("--effective-from: {e}")))?;
            t
        }
        None => format!("{}T00:00:00Z", Date::of_ms(now)),
    };
    let source = format!(
        "{} (exported {})",
        cat.source,
        cat.exported_at.get(..10).unwrap_or(&cat.exported_at)
    );
    let rows = cat.compare(&c, now).map_err(Error::Failed)?;
    if !import {
        println!(
            "{}: prices in force now against {source}",
            cli.providers.display()
        );
    }
    let mut differ = 0;
    for (e, cmp) in &rows {
        match cmp {
            Comparison::Differs(l, fields) => {
                differ += 1;
                if import {
                    println!("{}", proposal(e, l, &from, &source));
                } else {
                    println!("  {:<30} DIFFERS  {}", e.id, fields.join(", "));
                }
            }
            _ if import => {}
            Comparison::Same(l) => println!("  {:<30} same     ({})", e.id, l.model),
            Comparison::NotListed => println!(
                "  {:<30} not in the catalogue (provider `{}`, model `{}`)",
                e.id, e.provider, e.model
            ),
            Comparison::NotConfigured => {
                println!("  {:<30} no configured price in force now", e.id)
            }
        }
    }
    eprintln!("{differ} of {} endpoints differ from {source}", rows.len());
    Ok(())
}

async fn probe(
    cli: &Paths,
    endpoint: Option<String>,
    all: bool,
    rounds: u32,
    tier: Option<String>,
    json: bool,
) -> Result<()> {
    let cfg = config::load(&cli.providers)?;
    let suite = Suite::embedded();
    let tiers: Vec<usize> = match &tier {
        Some(t) => vec![suite.tiers.iter().position(|x| &x.id == t).ok_or_else(|| {
            Error::Usage(format!(
                "unknown tier `{t}`; tiers are {}",
                suite.tier_ids().join(", ")
            ))
        })?],
        None => (0..suite.tiers.len()).collect(),
    };
    let chosen: Vec<&Endpoint> = if all {
        cfg.endpoints.iter().collect()
    } else {
        let id = endpoint.unwrap_or_default();
        vec![cfg.endpoint(&id).ok_or_else(|| {
            Error::Usage(format!(
                "no endpoint `{id}` in {}; `sit check` lists them",
                cli.providers.display()
            ))
        })?]
    };
    let mut eps: Vec<Arc<(Endpoint, Option<ApiKey>)>> = Vec::new();
    for e in chosen {
        if !e.dialect.supported() {
            eprintln!(
                "endpoint `{}` skipped: dialect `{}` has no adapter in this build yet",
                e.id, e.dialect
            );
            continue;
        }
        match e.api_key() {
            Ok(k) => eps.push(Arc::new((e.clone(), k))),
            Err(err) => eprintln!("{err}"),
        }
    }
    if eps.is_empty() {
        return Err(Error::Usage(
            "no endpoint can be probed (see the lines above)".into(),
        ));
    }
    std::fs::create_dir_all(&cli.data)?;
    let store = Arc::new(Store::open(&cli.data)?);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    store.record_prices(
        eps.iter().map(|e| (e.0.id.as_str(), &e.0.prices)),
        clock.now_ms(),
        |id, p| {
            eps.iter()
                .find(|e| e.0.id == id)
                .and_then(|e| e.0.source_of(p))
        },
    )?;
    let now = clock.now_ms();
    let mut r = sit_core::rng::Rng::from_bytes(&[
        b"sit-probe",
        &now.to_le_bytes(),
        &std::process::id().to_le_bytes(),
    ]);
    let mut slots = Vec::new();
    for _ in 0..rounds {
        for e in 0..eps.len() {
            for &t in &tiers {
                for fam in &suite.tiers[t].families {
                    slots.push(sit_core::schedule::Slot {
                        at_ms: now,
                        endpoint: e,
                        tier: t,
                        family: Family::from_id(fam).expect("suite family"),
                        seed: r.next_u64(),
                        nonce: r.hex(8),
                    });
                }
            }
        }
    }
    let worker = crate::worker::Worker::new(cfg.defaults.clone(), clock, Methodology::default())?
        .with_id("probe");
    let (recorder, rec_task) = crate::worker::recorder::Recorder::start(store.clone());
    let pb = if json {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(slots.len() as u64)
    };
    let summary =
        crate::worker::runner::run_slots(&worker, &eps, suite, slots, &recorder, &pb, false, false)
            .await;
    pb.finish_and_clear();
    drop(recorder);
    rec_task
        .await
        .map_err(|e| Error::Failed(format!("recorder task failed: {e}")))??;
    let s = summary?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&s.per_endpoint)
                .map_err(|e| Error::Failed(e.to_string()))?
        );
    } else {
        print!("{}", crate::cli::report::render_summary(&s));
        println!(
            "{} observations stored in {}/",
            s.recorded,
            cli.data.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// Regression (issue 26): the demo's closing hint named `./target/release/sit` whatever
    /// folder it was run from; it names this binary as it can be called from here.
    #[test]
    fn the_demo_hint_names_a_binary_that_exists_from_here() {
        let named = super::this_binary();
        assert!(std::path::Path::new(&named).is_file(), "{named}");
        let exe = std::path::Path::new("/work/repo/target/release/sit");
        assert_eq!(
            super::binary_as_seen_from(exe, std::path::Path::new("/work/repo")),
            "./target/release/sit"
        );
        assert_eq!(
            super::binary_as_seen_from(exe, std::path::Path::new("/tmp/elsewhere")),
            "/work/repo/target/release/sit"
        );
    }
}
