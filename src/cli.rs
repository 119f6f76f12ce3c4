//! Command-line options (clap, all in one place) and dispatch. Exit codes: 0 ok, 1 failure
//! (including a record that does not verify), 2 usage or bad input (including a bad
//! providers.toml or key file), 3 publication refused by policy (the record in force stands).

use crate::clock::{format_utc_ms, Clock, Date, SystemClock};
use crate::config::{self, ApiKey, Endpoint};
use crate::demo::{self, DemoOptions};
use crate::error::{Error, Result};
use crate::index::Methodology;
use crate::probes::{Family, Suite};
use crate::store::Store;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser, Debug)]
#[command(
    name = "sit",
    version,
    about = "Standard Inference Token (SIT) benchmark and settlement-index oracle"
)]
pub struct Cli {
    /// Folder of the sled store.
    #[arg(long, global = true, default_value = "sit-data", value_name = "DIR")]
    pub data: PathBuf,
    /// Endpoints and price schedules.
    #[arg(
        long,
        global = true,
        default_value = "providers.toml",
        value_name = "FILE"
    )]
    pub providers: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the whole pipeline on the embedded simulated market (no keys, no network).
    Demo {
        /// Simulated days to probe.
        #[arg(long, default_value_t = 2)]
        days: u32,
        /// First simulated day (YYYY-MM-DD); default 2026-01-05 or the day after the stored data.
        #[arg(long)]
        start: Option<String>,
        /// Real milliseconds per simulated hour.
        #[arg(long, default_value_t = 2500)]
        hour_ms: u64,
        /// Market and schedule seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Probes per endpoint, tier and hour.
        #[arg(long, default_value_t = 3)]
        per_hour: u32,
        /// Print `ack SEQ` on stdout as each observation becomes durable (for kill tests).
        #[arg(long, hide = true)]
        print_acks: bool,
        /// Use only the first N simulated providers (small audit bundles for tests).
        #[arg(long, hide = true)]
        market_size: Option<usize>,
        /// Do not sign and publish the demo days (by default they are published with a demo
        /// key kept in DATA/demo-key/, so that `sit serve` has something to serve).
        #[arg(long)]
        no_publish: bool,
    },
    /// Serve the simulated market on loopback and print a providers.toml for it.
    Sim {
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Stop after this many seconds (default: run until Ctrl-C).
        #[arg(long)]
        for_secs: Option<u64>,
        /// Serve only the streams benchmark's provider with this first-token delay, logging
        /// served answers at /sim/served (used by `sit bench streams --separate-process`).
        #[arg(long, hide = true)]
        bench_ttft_ms: Option<u64>,
        #[arg(long, hide = true, default_value_t = 0)]
        bench_jitter_permille: u32,
    },
    /// Print determinations computed from the store.
    Index {
        /// Only this day (YYYY-MM-DD).
        #[arg(long)]
        date: Option<String>,
        /// Only this tier.
        #[arg(long)]
        tier: Option<String>,
        /// One JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Probe configured endpoints now and store the observations.
    Probe {
        /// Endpoint id from the providers file.
        #[arg(long, conflicts_with = "all", required_unless_present = "all")]
        endpoint: Option<String>,
        /// Every endpoint whose key is available.
        #[arg(long)]
        all: bool,
        /// Rounds of one probe per tier family.
        #[arg(long, default_value_t = 1)]
        rounds: u32,
        /// Only this tier.
        #[arg(long)]
        tier: Option<String>,
        /// Summary as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Show the probe suite: tiers, families, SLAs and the suite hash.
    Suite {
        #[arg(long)]
        json: bool,
    },
    /// Check the providers file and exit.
    Check,
    /// Signing keys for the publisher (and certificates).
    Keys {
        #[command(subcommand)]
        what: KeysWhat,
    },
    /// Compute, sign and archive the determination of a day (write-once; restatements only
    /// within policy).
    Publish {
        /// The UTC day to publish (YYYY-MM-DD); it must have ended.
        #[arg(long)]
        date: String,
        /// Only this tier (default: every tier).
        #[arg(long)]
        tier: Option<String>,
        /// The Ed25519 private key (PKCS#8 PEM, mode 0600) from `sit keys generate`.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Publish a day with no stored observations as CONTINGENCY (a full outage).
        #[arg(long)]
        allow_empty: bool,
        /// Publication time (RFC 3339 UTC) instead of now: for backfills and tests.
        #[arg(long, hide = true, value_name = "TIME")]
        at: Option<String>,
    },
    /// Serve the published determinations over HTTP (read-only), with a human page at `/`.
    Serve {
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: std::net::SocketAddr,
    },
    /// Check a signed record (a file, or an http:// URL) against a public key, offline.
    Verify {
        /// A record file, a history document, or a URL serving one.
        #[arg(value_name = "RECORD")]
        source: String,
        /// The publisher's public key (PEM, or 64 hex characters).
        #[arg(long, value_name = "PUBKEY")]
        key: PathBuf,
    },
    /// Run the tier suite against an endpoint and issue a signed certificate of what it meets.
    Certify {
        /// Endpoint id from the providers file.
        #[arg(
            long,
            conflicts_with = "base_url",
            required_unless_present = "base_url"
        )]
        endpoint: Option<String>,
        /// Or an endpoint given directly: its base URL (with --dialect and --model).
        #[arg(long, requires_all = ["dialect", "model"])]
        base_url: Option<String>,
        /// openai, anthropic or gemini (with --base-url).
        #[arg(long)]
        dialect: Option<String>,
        /// Model name to request (with --base-url).
        #[arg(long)]
        model: Option<String>,
        /// Environment variable holding the API key (with --base-url).
        #[arg(long, value_name = "VAR")]
        api_key_env: Option<String>,
        /// t1, t2, t3 or all.
        #[arg(long, default_value = "all")]
        tier: String,
        /// Attempts per tier. 100 lets a 95% pass rate show a lower bound of about 0.89.
        #[arg(long, default_value_t = 100)]
        attempts: u32,
        /// The certifier's Ed25519 private key (from `sit keys generate`).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Certificate file; the reports go beside it (.md, .html).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Master seed of the probes (default: fresh from the system's randomness).
        #[arg(long)]
        seed: Option<u64>,
        /// Concurrent attempts (default: the endpoint's concurrency).
        #[arg(long)]
        concurrency: Option<u32>,
    },
    /// Check a certificate: signature, probe-suite hash and that the verdicts follow from the
    /// figures.
    VerifyCert {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The certifier's public key.
        #[arg(long, value_name = "PUBKEY")]
        key: PathBuf,
    },
    /// Auditors' tools.
    Audit {
        #[command(subcommand)]
        what: AuditWhat,
    },
    /// Performance benchmarks (results go to BENCHMARKS.md by hand, with the command).
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuditWhat {
    /// Write a self-contained bundle of one day: observations with raw evidence, prices, suite,
    /// methodology, seed commitment and reveal, published determinations, keys, manifest.
    Export {
        #[arg(long)]
        date: String,
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Re-grade, re-count, re-cost and recompute every determination of a bundle (no store).
    Replay {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Check a bundle: manifest, hash chain, Merkle roots, seed commitment, signatures.
    Verify {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Reproduce the Standard Token Cost Index from its price tape, exactly, and compare with
    /// what it published.
    Stci {
        /// Folder of YYYY-MM-DD.jsonl price observations.
        #[arg(long, value_name = "DIR")]
        observations: PathBuf,
        /// STCI's methodology.yaml.
        #[arg(long, value_name = "FILE")]
        methodology: PathBuf,
        /// Folder of published YYYY-MM-DD.json index files to compare with.
        #[arg(long, value_name = "DIR")]
        published: Option<PathBuf>,
        /// One JSON document: one object per day and index.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeysWhat {
    /// Write a new Ed25519 key pair: signing-key.pem (PKCS#8, mode 0600) and public-key.pem.
    Generate {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum BenchWhat {
    /// Compute one day for 3 tiers from synthetic observations.
    Index {
        #[arg(long, default_value_t = 1_000_000)]
        observations: usize,
        #[arg(long, default_value_t = 40)]
        endpoints: u32,
        #[arg(long, default_value_t = 5)]
        repeats: u32,
    },
    /// Recompute archived days (3 tiers each) from index rows, carrying CONTINGENCY values.
    Recompute {
        #[arg(long, default_value_t = 30)]
        days: u32,
        #[arg(long, default_value_t = 300_000)]
        observations: usize,
        #[arg(long, default_value_t = 40)]
        endpoints: u32,
    },
    /// Re-derive every observation of an audit bundle from its raw evidence.
    Rederive {
        #[arg(long, value_name = "DIR")]
        bundle: PathBuf,
        #[arg(long, default_value_t = 5)]
        repeats: u32,
    },
    /// Concurrent streams against the simulator: completion and time-to-first-token error.
    Streams {
        #[arg(long, default_value_t = 1000)]
        streams: usize,
        /// Median injected first-token delay, ms.
        #[arg(long, default_value_t = 1000)]
        ttft_ms: u64,
        /// Spread of the injected delays (lognormal sigma x 1000; 0: every stream's first token
        /// is due at the same instant, the worst burst).
        #[arg(long, default_value_t = 0)]
        jitter_permille: u32,
        /// Spread the stream starts evenly over this many ms (0: all at once, the worst burst).
        #[arg(long, default_value_t = 1000)]
        ramp_ms: u64,
        /// Run the simulator as a child process instead of in this one.
        #[arg(long)]
        separate_process: bool,
    },
    /// Client CPU per SSE event (decoder + adapter).
    Events {
        #[arg(long, default_value_t = 10_000)]
        events: usize,
        #[arg(long, default_value_t = 20)]
        repeats: u32,
    },
    /// Append observations to a fresh sled store.
    Ingest {
        #[arg(long, default_value_t = 200_000)]
        observations: usize,
        #[arg(long, default_value_t = 1000)]
        batch: usize,
    },
}

/// The global paths.
pub struct Paths {
    pub data: PathBuf,
    pub providers: PathBuf,
}

fn parse_date(s: &str) -> Result<Date> {
    Date::parse(s).map_err(|e| Error::Usage(e.to_string()))
}

/// Entry point used by `main`: parse, run, print errors, return the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

/// Run a parsed command.
pub async fn run(cli: Cli) -> Result<()> {
    let Cli {
        data,
        providers,
        command,
    } = cli;
    let cli = Paths { data, providers };
    match command {
        Command::Demo {
            days,
            start,
            hour_ms,
            seed,
            per_hour,
            print_acks,
            no_publish,
            market_size,
        } => {
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
            print!("{}", demo::render_summary(s));
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
            print!("{}", demo::render_table(&shown));
            if !no_publish {
                demo_publish(&cli.data, &report.days)?;
            }
            println!(
                "\nData is in {}/ (sled). Next (sit is ./target/release/sit):\n  sit --data {} serve                     serve the signed values: http://127.0.0.1:8080/\n  sit --data {} index --json               every determination as JSON\n  sit --data {} index --date {} --tier t1  one day, one tier\n  sit suite                                  the probe suite and its hash\n  sit demo                                   probe the next simulated days into the same store",
                cli.data.display(),
                cli.data.display(),
                cli.data.display(),
                cli.data.display(),
                report.days[0]
            );
            Ok(())
        }
        Command::Sim {
            seed,
            for_secs,
            bench_ttft_ms,
            bench_jitter_permille,
        } => {
            let market = match bench_ttft_ms {
                Some(t) => crate::sim::Market::single(crate::bench::bench_provider(
                    t,
                    bench_jitter_permille,
                )),
                None => crate::sim::Market::default_market(seed),
            };
            let now = SystemClock.now_ms();
            let until = Date::of_ms(now).succ();
            let running =
                crate::sim::server::start_with(market.clone(), until, bench_ttft_ms.is_some())
                    .await?;
            let eps = market.endpoints(&running.base_urls(), until);
            println!("{}", crate::sim::providers_toml(&eps, now));
            eprintln!(
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
        Command::Index { date, tier, json } => {
            let date = date.as_deref().map(parse_date).transpose()?;
            let suite = Suite::embedded();
            if let Some(t) = &tier {
                if suite.tier(t).is_none() {
                    return Err(Error::Usage(format!(
                        "unknown tier `{t}`; tiers are {}",
                        suite.tier_ids().join(", ")
                    )));
                }
            }
            if !cli.data.exists() {
                return Err(Error::Usage(format!(
                    "no store at {}; run `sit demo` first or pass --data DIR",
                    cli.data.display()
                )));
            }
            let store = Store::open(&cli.data)?;
            let computed_at = format_utc_ms(SystemClock.now_ms());
            let all = crate::determine::all_days(
                &store,
                suite,
                &Methodology::default(),
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
                print!("{}", demo::render_table(&ds));
            }
            Ok(())
        }
        Command::Probe {
            endpoint,
            all,
            rounds,
            tier,
            json,
        } => probe(&cli, endpoint, all, rounds, tier, json).await,
        Command::Suite { json } => {
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
        Command::Check => {
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
                    (Some(var), Err(_)) => format!("skipped until {var} is set"),
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
                    e.base_url
                );
            }
            Ok(())
        }
        Command::Keys {
            what: KeysWhat::Generate { out },
        } => {
            let g = crate::publisher::keys::generate(&out)?;
            println!("key id      {}", g.key_id);
            println!(
                "private key {} (mode 0600; keep it secret)",
                g.private_path.display()
            );
            println!("public key  {}", g.public_path.display());
            println!("public hex  {}", g.public_hex);
            Ok(())
        }
        Command::Publish {
            date,
            tier,
            key,
            allow_empty,
            at,
        } => publish(&cli, &date, tier, &key, allow_empty, at.as_deref()),
        Command::Serve { addr } => {
            let archive = crate::publisher::archive::Archive::for_data(&cli.data);
            let running = crate::publisher::serve::start(archive.clone(), addr)
                .await
                .map_err(|e| Error::Failed(format!("cannot serve on {addr}: {e}")))?;
            eprintln!(
                "sit serve: http://{} (archive {}; Ctrl-C to stop)",
                running.addr,
                archive.root().display()
            );
            let _ = tokio::signal::ctrl_c().await;
            eprintln!("sit serve: shutting down");
            running.shutdown().await?;
            Ok(())
        }
        Command::Verify { source, key } => verify(&source, &key).await,
        Command::Certify {
            endpoint,
            base_url,
            dialect,
            model,
            api_key_env,
            tier,
            attempts,
            key,
            out,
            seed,
            concurrency,
        } => {
            let target = match (endpoint, base_url) {
                (Some(id), _) => CertifyTarget::Configured(id),
                (None, Some(url)) => CertifyTarget::Direct {
                    url,
                    dialect: dialect.unwrap_or_default(),
                    model: model.unwrap_or_default(),
                    api_key_env,
                },
                (None, None) => unreachable!("clap requires one"),
            };
            certify(&cli, target, &tier, attempts, &key, &out, seed, concurrency).await
        }
        Command::VerifyCert { file, key } => verify_cert(&file, &key),
        Command::Audit {
            what: AuditWhat::Export { date, out },
        } => {
            let date = parse_date(&date)?;
            if !cli.data.exists() {
                return Err(Error::Usage(format!(
                    "no store at {}; pass --data DIR",
                    cli.data.display()
                )));
            }
            let store = Store::open(&cli.data)?;
            let archive = crate::publisher::archive::Archive::for_data(&cli.data);
            let e =
                crate::audit::bundle::export(&store, &archive, date, &out, SystemClock.now_ms())
                    .map_err(|e| Error::Failed(e.to_string()))?;
            println!(
                "bundle {}: {} observations, {} published determinations, {} files",
                out.display(),
                e.observations,
                e.determinations,
                e.files
            );
            Ok(())
        }
        Command::Audit {
            what: AuditWhat::Replay { dir, json },
        } => {
            let b = crate::audit::bundle::Bundle::load(&dir)
                .map_err(|e| Error::Usage(e.to_string()))?;
            let t0 = std::time::Instant::now();
            let r = crate::audit::bundle::replay(&b);
            let secs = t0.elapsed().as_secs_f64();
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&r).map_err(|e| Error::Failed(e.to_string()))?
                );
            } else {
                for s in &r.structure {
                    println!("STRUCTURE  {s}");
                }
                for d in &r.observation_differences {
                    println!("OBSERVATION  {d}");
                }
                for (name, outcome) in &r.determinations {
                    println!("{name}: {outcome}");
                }
                eprintln!(
                    "re-derived {} observations ({} reference tokens) in {:.2} s",
                    r.observations_rederived, r.reference_tokens, secs
                );
            }
            if r.identical() {
                Ok(())
            } else {
                Err(Error::Failed("replay is not identical".into()))
            }
        }
        Command::Audit {
            what: AuditWhat::Verify { dir },
        } => {
            let b = crate::audit::bundle::Bundle::load(&dir)
                .map_err(|e| Error::Usage(e.to_string()))?;
            let problems = crate::audit::bundle::verify(&b);
            if problems.is_empty() {
                println!(
                    "VERIFIED  {}: manifest, hash chain (seq {}..{}), Merkle roots and signatures of {} determinations, schedule commitment of {}",
                    dir.display(),
                    b.chain.first_seq,
                    b.chain.last_seq,
                    b.determinations.len(),
                    b.manifest.date
                );
                Ok(())
            } else {
                for p in &problems {
                    println!("FAILED  {p}");
                }
                Err(Error::Failed(format!(
                    "{} checks failed; first: {}",
                    problems.len(),
                    problems[0]
                )))
            }
        }
        Command::Audit {
            what:
                AuditWhat::Stci {
                    observations,
                    methodology,
                    published,
                    json,
                },
        } => {
            let rows = crate::audit::stci_replay(&observations, &methodology, published.as_deref())
                .map_err(|e| Error::Usage(e.to_string()))?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&rows)
                        .map_err(|e| Error::Failed(e.to_string()))?
                );
            } else {
                print!("{}", crate::audit::render_stci(&rows));
            }
            let bad = rows.iter().filter(|r| r.matches == Some(false)).count();
            if bad > 0 {
                return Err(Error::Failed(format!(
                    "{bad} index values differ from the published ones"
                )));
            }
            Ok(())
        }
        Command::Bench { what } => {
            match what {
                BenchWhat::Index {
                    observations,
                    endpoints,
                    repeats,
                } => {
                    println!(
                        "{}",
                        crate::bench::index_bench(observations, endpoints, repeats)
                    )
                }
                BenchWhat::Recompute {
                    days,
                    observations,
                    endpoints,
                } => println!(
                    "{}",
                    crate::bench::recompute_bench(days, observations, endpoints)
                ),
                BenchWhat::Streams {
                    streams,
                    ttft_ms,
                    jitter_permille,
                    ramp_ms,
                    separate_process,
                } => println!(
                    "{}",
                    crate::bench::streams_bench(
                        streams,
                        ttft_ms,
                        jitter_permille,
                        ramp_ms,
                        separate_process
                    )
                    .await
                    .map_err(Error::Failed)?
                ),
                BenchWhat::Events { events, repeats } => {
                    println!("{}", crate::bench::event_overhead_bench(events, repeats))
                }
                BenchWhat::Rederive { bundle, repeats } => println!(
                    "{}",
                    crate::bench::rederive_bench(&bundle, repeats).map_err(Error::Failed)?
                ),
                BenchWhat::Ingest {
                    observations,
                    batch,
                } => {
                    let dir = std::env::temp_dir()
                        .join(format!("sit-bench-ingest-{}", std::process::id()));
                    let r = crate::bench::ingest_bench(&dir, observations, batch);
                    let _ = std::fs::remove_dir_all(&dir);
                    println!("{}", r?);
                }
            }
            Ok(())
        }
    }
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
    for e in &eps {
        store.put_prices(&e.0.id, &e.0.prices)?;
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let now = clock.now_ms();
    let mut r = crate::rng::Rng::from_bytes(&[
        b"sit-probe",
        &now.to_le_bytes(),
        &std::process::id().to_le_bytes(),
    ]);
    let mut slots = Vec::new();
    for _ in 0..rounds {
        for e in 0..eps.len() {
            for &t in &tiers {
                for fam in &suite.tiers[t].families {
                    slots.push(crate::schedule::Slot {
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
    let summary = demo::run_slots(&worker, &eps, suite, slots, &recorder, &pb, false).await;
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
        print!("{}", demo::render_summary(&s));
        println!(
            "{} observations stored in {}/",
            s.recorded,
            cli.data.display()
        );
    }
    Ok(())
}

fn publish(
    cli: &Paths,
    date: &str,
    tier: Option<String>,
    key: &std::path::Path,
    allow_empty: bool,
    at: Option<&str>,
) -> Result<()> {
    use crate::publisher::{self, archive::Archive};
    let date = parse_date(date)?;
    let suite = Suite::embedded();
    let tiers = match tier {
        Some(t) => vec![t],
        None => suite.tier_ids(),
    };
    let now_ms = match at {
        Some(t) => {
            crate::clock::parse_utc_ms(t).map_err(|e| Error::Usage(format!("--at `{t}`: {e}")))?
        }
        None => SystemClock.now_ms(),
    };
    let sk = publisher::keys::load_signing(key)?;
    if !cli.data.exists() {
        return Err(Error::Usage(format!(
            "no store at {}; run `sit demo` first or pass --data DIR",
            cli.data.display()
        )));
    }
    let store = Store::open(&cli.data)?;
    let archive = Archive::for_data(&cli.data);
    let m = Methodology::default();
    let mut refused = Vec::new();
    for t in &tiers {
        let req = publisher::Request {
            tier: t,
            date,
            now_ms,
            key: &sk,
            allow_empty,
        };
        match publisher::publish(&store, &archive, suite, &m, &req) {
            Ok(p) => {
                println!("published {}", p.line());
                if let Some(r) = p.contingency_reason {
                    println!("          {r}");
                }
            }
            Err(publisher::PublishError::Refused(r)) => {
                eprintln!("refused: {r}");
                refused.push(r.to_string());
            }
            Err(e) => return Err(e.into()),
        }
    }
    if refused.is_empty() {
        Ok(())
    } else {
        Err(Error::Refused(format!(
            "{} of {} publications refused; the records in force stand",
            refused.len(),
            tiers.len()
        )))
    }
}

/// Read a record from a file or an http(s) URL.
async fn read_source(source: &str) -> Result<Vec<u8>> {
    if source.starts_with("http://") || source.starts_with("https://") {
        let r = reqwest::Client::new().get(source).send().await?;
        let status = r.status();
        let body = r.bytes().await?;
        if !status.is_success() {
            return Err(Error::Failed(format!(
                "{source} answered {status}: {}",
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(300)
                    .collect::<String>()
            )));
        }
        Ok(body.to_vec())
    } else {
        std::fs::read(source).map_err(|e| Error::Usage(format!("cannot read {source}: {e}")))
    }
}

async fn verify(source: &str, key: &std::path::Path) -> Result<()> {
    use crate::publisher::keys;
    use crate::record;
    let vk = keys::load_public(key)?;
    let bytes = read_source(source).await?;
    // A history document holds records; verify each of them.
    let records: Vec<Vec<u8>> = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(o)) if o.contains_key("records") => o["records"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|r| serde_json::to_vec(r).unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default(),
        _ => vec![bytes],
    };
    if records.is_empty() {
        return Err(Error::Failed(format!("{source}: no records to verify")));
    }
    let mut bad = 0;
    for (i, r) in records.iter().enumerate() {
        let label = if records.len() > 1 {
            format!("{source} record {}", i + 1)
        } else {
            source.to_string()
        };
        match record::verify(r, &vk) {
            Ok(v) => {
                let p = &v.publication;
                let d = &p.determination;
                println!(
                    "VALID  {} {} {} {}  (version {}, sequence {})",
                    d.tier,
                    d.date,
                    d.status.as_str(),
                    crate::publisher::show_value(d.value),
                    p.version,
                    d.sequence
                );
                println!("  key        {} (the key given)", p.key_id);
                println!(
                    "  signed     {} canonical bytes (RFC 8785, record without `signature`), blake3 {}",
                    v.signed_bytes.len(),
                    record::record_hash(&v.signed_bytes)
                );
                println!("  signature  Ed25519 ok");
                println!(
                    "  inputs     methodology {} ({}), suite {}, merkle root {}",
                    d.methodology_version, d.methodology_hash, d.suite_hash, d.merkle_root
                );
                if let Some(r) = &p.restates {
                    println!(
                        "  restates   version {} (value {}, record {})",
                        r.version,
                        r.value
                            .map(|x| x.to_string())
                            .unwrap_or_else(|| "none".into()),
                        r.record_hash
                    );
                }
            }
            Err(e) => {
                bad += 1;
                println!("INVALID  {label}: {e}");
            }
        }
    }
    if bad > 0 {
        Err(Error::Failed(format!(
            "{bad} of {} records did not verify",
            records.len()
        )))
    } else {
        Ok(())
    }
}

/// Sign and publish the demo's days with a demo key kept beside the store.
fn demo_publish(data: &std::path::Path, days: &[Date]) -> Result<()> {
    use crate::publisher::{self, archive::Archive, keys};
    let dir = data.join("demo-key");
    let key_path = dir.join(keys::PRIVATE_FILE);
    if !key_path.exists() {
        keys::generate(&dir)?;
    }
    let sk = keys::load_signing(&key_path)?;
    let store = Store::open(data)?;
    let archive = Archive::for_data(data);
    let suite = Suite::embedded();
    let m = Methodology::default();
    println!(
        "\nPublished and signed with the demo key {} ({}):",
        key_path.display(),
        keys::key_id(&sk.verifying_key())
    );
    for day in days {
        for tier in suite.tier_ids() {
            let req = publisher::Request {
                tier: &tier,
                date: *day,
                now_ms: SystemClock.now_ms(),
                key: &sk,
                allow_empty: false,
            };
            match publisher::publish(&store, &archive, suite, &m, &req) {
                Ok(p) => println!("  {}", p.line()),
                Err(publisher::PublishError::Refused(r)) => println!("  not published: {r}"),
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

enum CertifyTarget {
    Configured(String),
    Direct {
        url: String,
        dialect: String,
        model: String,
        api_key_env: Option<String>,
    },
}

/// Exit code of an interrupted certification (128 + SIGINT).
const INTERRUPTED: i32 = 130;

#[allow(clippy::too_many_arguments)]
async fn certify(
    cli: &Paths,
    target: CertifyTarget,
    tier: &str,
    attempts: u32,
    key: &std::path::Path,
    out: &std::path::Path,
    seed: Option<u64>,
    concurrency: Option<u32>,
) -> Result<()> {
    use crate::certify::{self, report};
    let suite = Suite::embedded();
    let tiers = if tier == "all" {
        suite.tier_ids()
    } else if suite.tier(tier).is_some() {
        vec![tier.to_string()]
    } else {
        return Err(Error::Usage(format!(
            "unknown tier `{tier}`; use one of {} or all",
            suite.tier_ids().join(", ")
        )));
    };
    if attempts == 0 {
        return Err(Error::Usage("--attempts must be at least 1".into()));
    }
    let sk = crate::publisher::keys::load_signing(key)?;
    let (defaults, endpoint) = match target {
        CertifyTarget::Configured(id) => {
            let cfg = config::load(&cli.providers)?;
            let e = cfg.endpoint(&id).cloned().ok_or_else(|| {
                Error::Usage(format!(
                    "no endpoint `{id}` in {}; `sit check` lists them",
                    cli.providers.display()
                ))
            })?;
            (cfg.defaults.clone(), e)
        }
        CertifyTarget::Direct {
            url,
            dialect,
            model,
            api_key_env,
        } => (
            config::Defaults::default(),
            config::direct_endpoint(&url, &dialect, &model, api_key_env.as_deref())?,
        ),
    };
    if !endpoint.dialect.supported() {
        return Err(Error::Usage(format!(
            "dialect `{}` has no adapter in this build yet",
            endpoint.dialect
        )));
    }
    let api_key = endpoint
        .api_key()
        .map_err(|e| Error::Usage(e.to_string()))?;
    let seed = match seed {
        Some(s) => s,
        None => {
            let mut b = [0u8; 8];
            getrandom::getrandom(&mut b).map_err(|e| Error::Failed(e.to_string()))?;
            u64::from_le_bytes(b)
        }
    };
    let plan = certify::Plan {
        tiers,
        attempts,
        seed,
        concurrency: concurrency.unwrap_or(endpoint.concurrency).max(1) as usize,
    };
    let total = (plan.attempts as usize * plan.tiers.len()) as u64;
    eprintln!(
        "sit certify: {} ({}), tiers {}, {} attempts per tier, seed {:016x}",
        endpoint.id,
        endpoint.base_url,
        plan.tiers.join(", "),
        plan.attempts,
        plan.seed
    );
    let pb = indicatif::ProgressBar::new(total);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let worker = crate::worker::Worker::new(defaults, clock, Methodology::default())?;
    let ep = Arc::new((endpoint.clone(), api_key));
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let run = certify::run(&worker, ep, &plan, &pb, stop).await?;
    pb.finish_and_clear();
    let window = (run.started_at.as_str(), run.finished_at.as_str());
    let with_ext = |ext: &str| out.with_extension(ext);
    let write = |p: &std::path::Path, bytes: &[u8]| {
        std::fs::write(p, bytes)
            .map_err(|e| Error::Failed(format!("cannot write {}: {e}", p.display())))
    };
    if run.interrupted {
        let f = certify::measure(&plan, &run);
        let info = certify::endpoint_info(&endpoint, &run.observations);
        let status = report::Status::Incomplete {
            done: run.observations.len(),
            planned: run.planned,
        };
        let md = with_ext("partial.md");
        let html = with_ext("partial.html");
        write(&md, report::markdown(&info, &f, window, &status).as_bytes())?;
        write(
            &html,
            report::html(&info, &f, window, &status, &run.observations).as_bytes(),
        )?;
        eprintln!(
            "interrupted after {} of {} attempts: no certificate issued; partial report (marked INCOMPLETE) in {} and {}",
            run.observations.len(),
            run.planned,
            md.display(),
            html.display()
        );
        std::process::exit(INTERRUPTED);
    }
    let (cert, bytes) = certify::certify(&endpoint, &plan, &run, &sk);
    write(out, &bytes)?;
    let file = out.display().to_string();
    let status = report::Status::Certified {
        key_id: &cert.key_id,
        file: &file,
    };
    let f = &cert.figures;
    write(
        &with_ext("md"),
        report::markdown(&cert.endpoint, f, window, &status).as_bytes(),
    )?;
    write(
        &with_ext("html"),
        report::html(&cert.endpoint, f, window, &status, &run.observations).as_bytes(),
    )?;
    for t in &f.tiers {
        println!(
            "{} {:<13} pass rate {} (lower bound {}), availability {}, p90 ttft {} us, p90 e2e {} us",
            t.tier,
            if t.verdict.pass { "MEETS" } else { "DOES NOT MEET" },
            t.pass_rate.round_dp(3),
            t.pass_rate_lower95.round_dp(3),
            t.availability.round_dp(3),
            t.latency.ttft_us.p90,
            t.latency.e2e_us.p90
        );
        for c in t.verdict.checks.iter().filter(|c| !c.ok) {
            println!("   {}: {}", c.name, c.detail);
        }
    }
    for x in &f.flags {
        println!("flag {}: {}", x.code, x.detail);
    }
    println!(
        "certificate {} (reports {}, {})",
        out.display(),
        with_ext("md").display(),
        with_ext("html").display()
    );
    Ok(())
}

fn verify_cert(file: &std::path::Path, key: &std::path::Path) -> Result<()> {
    use crate::certificate::{check_consistency, Certificate};
    let vk = crate::publisher::keys::load_public(key)?;
    let bytes = std::fs::read(file)
        .map_err(|e| Error::Usage(format!("cannot read {}: {e}", file.display())))?;
    let invalid = |why: String| {
        println!("INVALID  {}: {why}", file.display());
        Error::Failed(format!("{} is not a valid certificate", file.display()))
    };
    let v = crate::signing::verify_value(&bytes, &vk).map_err(|e| invalid(e.to_string()))?;
    let cert: Certificate =
        serde_json::from_value(v.value).map_err(|e| invalid(format!("not a certificate: {e}")))?;
    check_consistency(&cert, Suite::embedded()).map_err(invalid)?;
    println!(
        "VALID  certificate of {} ({}) by {}",
        cert.endpoint.id, cert.endpoint.base_url, cert.key_id
    );
    println!(
        "  measured   {} to {}, {} attempts, probe suite {} ({})",
        cert.window.started_at,
        cert.window.finished_at,
        cert.figures.attempts,
        cert.suite.version,
        cert.suite.hash
    );
    for t in &cert.figures.tiers {
        println!(
            "  {}         {} (verdict follows from the figures)",
            t.tier,
            if t.verdict.pass {
                "MEETS"
            } else {
                "DOES NOT MEET"
            }
        );
    }
    println!("  signature  Ed25519 ok; consistency ok");
    Ok(())
}
