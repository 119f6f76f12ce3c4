//! `sit run`: the oracle as one long-running service, from the committed schedule to the
//! published value.
//!
//! For each UTC day, in order: commit the day's schedule seed (drawn fresh from the OS, kept in
//! `DATA/run/secrets/`, written durably *before* the commitment is) and the next day's ahead
//! of time; probe the committed schedule; once every scheduled probe of the day is observed
//! or missed and nothing is in flight (the watermark), determine, sign and archive each tier,
//! reveal the seed and write the day's audit bundle to `DATA/archive/DATE/`.
//!
//! Everything the loop needs to resume is on disk, so `kill -9` at any moment and the same
//! command again continue where it stopped: probes already recorded are not sent again,
//! scheduled probes whose time passed while the service was down are recorded as *missed*
//! (a record in the hash chain naming the probe and why, counted as no attempt), and each
//! publication step is skipped when its output already exists. The clock's anchor is kept
//! in the data folder too (`run-clock.json`), so a compressed timeline continues across
//! restarts as real time does.

use crate::archive::Archive;
use crate::config::{self, ApiKey, Endpoint};
use crate::publisher::day::DayPublisher;
use crate::store::Store;
use crate::sys::clock::Clock;
use crate::sys::durable::Access;
use crate::worker::recorder::{OnAck, Recorder};
use crate::worker::runner::{progress_bar, run_slots, RunSummary};
use crate::worker::{ProbeSpec, Worker};
use error::Result;
use serde::{Deserialize, Serialize};
use sit_core::commit::{commitment_of, Commitment};
use sit_core::index::Methodology;
use sit_core::probes::Suite;
use sit_core::schedule::Slot;
use sit_core::time::{format_utc_ms, Date, DAY_MS, HOUR_MS};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub mod error;
pub use error::Error;
pub mod status;
use status::Status;

/// An endpoint with its key (None: it needs none).
type Usable = (Endpoint, Option<ApiKey>);

/// Options of `sit run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The publisher's ed25519 signing key (PKCS#8 PEM, not world-readable).
    pub key: PathBuf,
    /// Probes per endpoint, tier and hour.
    pub per_hour: u32,
    /// Compressed clock: the simulated day the timeline starts at, and real ms per hour.
    pub start: Option<Date>,
    pub hour_ms: Option<u64>,
    /// Stop cleanly after publishing the day before this one.
    pub until: Option<Date>,
    pub progress: bool,
    /// Print `ack SEQ` on stdout as each observation becomes durable (kill tests).
    pub print_acks: bool,
    /// Serve the API, page, `/healthz` and `/metrics` in the same process.
    pub serve: Option<std::net::SocketAddr>,
    /// Connection limits of that server.
    pub limits: crate::server::listen::Limits,
    /// Begin a new compressed timeline at `start` even if the folder ran another one (the
    /// demo: each run probes the days after the stored ones). Never for a real-time folder.
    pub new_timeline: bool,
    /// `sit worker`: probe as one vantage of the probe network and ship the observations
    /// over NATS JetStream instead of publishing (the data folder is the worker's spool).
    pub network: Option<WorkerNet>,
    /// The listed futures (`contracts.toml`; None: the built-in copy), settled after each
    /// publication: the period to date (INDICATIVE) and each FINAL value once due.
    pub contracts: Option<PathBuf>,
    /// `parties.toml`: the parties whose signed submissions `--serve` takes (none: no
    /// submissions route).
    pub parties: Option<PathBuf>,
    /// The key was made by `sit demo`: the genesis marks it so (not for settlement).
    pub demo_key: bool,
}

/// A probe network worker's settings (`sit worker`).
#[derive(Debug, Clone)]
pub struct WorkerNet {
    pub vantage: String,
    pub nats: String,
    /// How long to keep draining the spool after a stop signal.
    pub drain: std::time::Duration,
}

/// What a `sit run` did (it returns only with `--until`).
#[derive(Debug, Default)]
pub struct RunReport {
    /// One line per published record.
    pub published: Vec<String>,
    /// The days published in this run.
    pub days: Vec<Date>,
    pub probes: u64,
    pub missed: u64,
    /// What the probes sent in this run did.
    pub summary: RunSummary,
    /// `sit worker`: what the shipper did.
    pub shipped: Option<crate::network::ship::Shipped>,
}

/// The day's secret: seed and salt, from the OS, never derived from anything else.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct DaySecret {
    date: Date,
    seed: String,
    salt: String,
}

impl DaySecret {
    fn seed(&self) -> u64 {
        u64::from_str_radix(&self.seed, 16).expect("written by this module")
    }
    fn salt(&self) -> [u8; 32] {
        let v = sit_core::signing::unhex(&self.salt).expect("written by this module");
        v.try_into().expect("32 bytes")
    }
}

fn failed(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Failed(format!("{what}: {e}"))
}

/// The clock of this data folder: the one recorded at its first `sit run`, which later runs
/// must ask for again (a compressed and a real-time timeline never mix in one store).
/// Returns the clock and whether it was anchored now (a timeline that begins with this run).
fn run_clock(data: &Path, opts: &RunOptions) -> Result<(Arc<dyn Clock>, bool)> {
    Ok(crate::sys::clock::folder_clock(
        data,
        &crate::archive::layout::run_clock(data),
        opts.start,
        opts.hour_ms,
        opts.new_timeline,
    )?)
}

/// The store refuses to mix observations of two clocks: the latest stored day's
/// observations must have been stamped by this clock.
fn check_store_clock(store: &Store, clock: &dyn Clock) -> Result<()> {
    let Some(last) = store.days()?.last().copied() else {
        return Ok(());
    };
    let here = clock.describe();
    for r in store.scan(last.start_ms(), last.start_ms() + DAY_MS) {
        let o = r?.obs;
        if o.clock != here {
            return Err(Error::Usage(format!(
                "the store already holds observations stamped by another clock (`{}`, {}); `sit run` with `{here}` would mix two timelines: use a new --data folder",
                o.clock, last
            )));
        }
    }
    Ok(())
}

/// A new compressed timeline (the demo's) may begin only after every stored day, and never in
/// a store of real-time observations.
fn check_new_timeline(store: &Store, start: Option<Date>) -> Result<()> {
    let Some(start) = start else {
        return Err(Error::Usage(
            "a new timeline needs a compressed clock (--start, --hour-ms)".into(),
        ));
    };
    let Some(last) = store.days()?.last().copied() else {
        return Ok(());
    };
    if last >= start {
        return Err(Error::Usage(format!(
            "the store already holds {last}; a new simulated timeline must start after it (--start {} or later)",
            last.succ()
        )));
    }
    for r in store.scan(last.start_ms(), last.start_ms() + DAY_MS) {
        let o = r?.obs;
        if !o.clock.starts_with("compressed:") {
            return Err(Error::Usage(format!(
                "the store holds real-time observations (clock `{}`, {last}); a simulated timeline would mix with them: use a new --data folder",
                o.clock
            )));
        }
    }
    Ok(())
}

/// A day's secret, created (from the OS) and stored durably the first time it is asked for.
fn day_secret(data: &Path, date: Date) -> Result<DaySecret> {
    let path = crate::archive::layout::day_secret(data, date);
    if let Ok(bytes) = std::fs::read(&path) {
        return serde_json::from_slice(&bytes)
            .map_err(|e| failed(&format!("{} is damaged", path.display()), e));
    }
    let mut b = [0u8; 40];
    getrandom::getrandom(&mut b).map_err(|e| failed("the OS random source", e))?;
    let s = DaySecret {
        date,
        seed: format!("{:016x}", u64::from_le_bytes(b[..8].try_into().expect("8"))),
        salt: sit_core::signing::hex(&b[8..]),
    };
    crate::sys::durable::replace(
        &path,
        &serde_json::to_vec(&s).expect("json"),
        Access::Private,
    )?;
    Ok(s)
}

/// The probe suite of `day` by the notices must be the one this build probes with: the
/// service has one suite for its workers, so a day whose notices put another suite in force
/// is refused here, naming both, rather than probed under the wrong one. (A build that knows
/// a newer suite than the one in force is run when the suite's notice takes effect.)
fn check_suite_in_force(archive: &Archive, day: Date, suite: &Suite) -> Result<()> {
    let state = crate::publisher::notices::in_force(archive, day.start_ms())
        .map_err(|e| failed("reading the notices", e))?;
    match state.and_then(|s| s.suite) {
        Some((hash, version)) if hash != suite.hash => Err(Error::Failed(format!(
            "the notices put probe suite {version} ({}) in force on {day}, and this build probes with suite {} ({}): run a build whose suite is {version} until a notice changes it",
            &hash[..12.min(hash.len())],
            suite.version,
            &suite.hash[..12.min(suite.hash.len())]
        ))),
        _ => Ok(()),
    }
}

/// Commit `date` (once): its secret exists durably before its commitment is written.
fn commit(
    data: &Path,
    archive: &Archive,
    date: Date,
    endpoints: &[String],
    per_hour: u32,
    suite: &Suite,
    key: &ed25519_dalek::SigningKey,
    now_ms: i64,
) -> Result<Commitment> {
    if let Some(c) = archive.commitment(date) {
        return Ok(c);
    }
    check_suite_in_force(archive, date, suite)?;
    let s = day_secret(data, date)?;
    let c = Commitment {
        date,
        commitment: commitment_of(date, s.seed(), &s.salt()),
        endpoints: endpoints.to_vec(),
        per_hour,
        suite_hash: suite.hash.clone(),
        committed_at: format_utc_ms(now_ms),
        schedule: sit_core::schedule::SCHEDULE_STRATIFIED,
        key_id: None,
        signature: None,
    };
    let c = sit_core::commit::sign(&c, key);
    archive
        .put_commitment(&c)
        .map_err(|e| failed(&format!("committing {date}"), e))?;
    Ok(c)
}

/// The endpoints day `day`'s schedule commits to: the usable ones (`ids`) in the panel the
/// notices put in force at the day's start; every usable one in a data folder without notices.
/// A configured endpoint outside the panel, or a panel endpoint that is not configured, is a
/// panel change no notice covers: held (not applied), named in the log and in `/healthz`
/// with the notice that would make it.
fn panel_endpoints(
    archive: &Archive,
    ids: &[String],
    day: Date,
    status: &Status,
) -> Result<Vec<String>> {
    let state = crate::publisher::notices::in_force(archive, day.start_ms())
        .map_err(|e| failed("reading the notices", e))?;
    let Some(state) = state else {
        return Ok(ids.to_vec());
    };
    let mut held = Vec::new();
    for id in ids.iter().filter(|id| !state.panel.contains_key(*id)) {
        held.push(format!(
            "endpoint {id} is configured but not in the panel in force on {day}: held until a notice adds it (sit notice draft --class minor --add {id}=PROVIDER --effective DAY ...)"
        ));
    }
    for id in state.panel.keys().filter(|id| !ids.contains(id)) {
        held.push(format!(
            "endpoint {id} is in the panel in force on {day} but not usable here (not in the providers file, or its key is missing): its probes are not scheduled; a notice removes it (sit notice draft --class minor --remove {id} ...)"
        ));
    }
    for h in &held {
        tracing::warn!("sit run: {h}");
    }
    status.held(held);
    Ok(ids
        .iter()
        .filter(|id| state.panel.contains_key(*id))
        .cloned()
        .collect())
}

/// Publish the data folder's genesis notice (what is in force from `from` on) if it has no
/// notice yet: the build's methodology and suite, the usable endpoints as the panel, the
/// listed contracts and the signing key.
fn ensure_genesis(
    archive: &Archive,
    usable: &[Usable],
    contracts: &[sit_core::settlement::Contract],
    key: &ed25519_dalek::SigningKey,
    demo: bool,
    from: Date,
    now_ms: i64,
) -> Result<()> {
    use crate::publisher::notices;
    if !notices::published(archive)
        .map_err(|e| failed("reading the notices", e))?
        .is_empty()
    {
        return Ok(());
    }
    let registry = sit_core::versions::Registry::embedded();
    let panel = usable
        .iter()
        .map(|(e, _)| (e.id.clone(), e.provider.clone()))
        .collect();
    let listed = contracts.iter().map(|c| c.id.clone()).collect();
    let g = notices::genesis(registry, &panel, &listed, key, demo, from);
    let ctx = notices::Context::new(
        registry,
        usable.iter().map(|(e, _)| e.id.clone()),
        contracts.iter().map(|c| c.id.clone()),
    );
    let (n, _) = notices::publish(&g, archive, &ctx, key, None, now_ms)
        .map_err(|e| failed("publishing the genesis notice", e))?;
    tracing::info!(
        "sit run: genesis notice {} published: {} endpoints in the panel, methodology {}, in force from {}",
        n.id,
        panel_len(&n),
        registry.current_methodology().version,
        n.effective_at
    );
    Ok(())
}

fn panel_len(n: &sit_core::notice::Notice) -> usize {
    n.changes
        .iter()
        .filter(|c| matches!(c, sit_core::notice::Change::PanelAdd { .. }))
        .count()
}

/// The endpoints `sit run` can probe: every configured endpoint with a supported dialect
/// whose key (if it needs one) is in the environment. The others are named once, here, and
/// left out of the commitments made from now on.
fn usable_endpoints(providers: &Path) -> Result<(config::Defaults, Vec<Usable>)> {
    let c = config::load(providers)?;
    let mut out = Vec::new();
    for e in c.endpoints {
        if !e.dialect.supported() {
            tracing::warn!(
                "sit run: endpoint `{}` left out: no {} adapter yet",
                e.id,
                e.dialect
            );
            continue;
        }
        match e.api_key() {
            Ok(k) => out.push((e, k)),
            Err(why) => tracing::warn!("sit run: {why}; left out of the commitments"),
        }
    }
    if out.is_empty() {
        return Err(Error::Usage(format!(
            "{}: no endpoint can be probed (see above)",
            providers.display()
        )));
    }
    out.sort_by(|a, b| a.0.id.cmp(&b.0.id));
    Ok((c.defaults, out))
}

/// Whether every output of a day's publication exists (a worker's: its reveal).
fn finished(
    archive: &Archive,
    data: &Path,
    suite: &Suite,
    date: Date,
    worker_role: bool,
) -> Result<bool> {
    if worker_role {
        return Ok(archive.reveal(date).is_some());
    }
    let entries = archive
        .entries()
        .map_err(|e| failed("reading the archive", e))?;
    let published = suite
        .tier_ids()
        .iter()
        .all(|t| entries.iter().any(|e| e.tier == *t && e.date == date));
    Ok(published && archive.reveal(date).is_some() && bundle_dir(data, date).exists())
}

fn bundle_dir(data: &Path, date: Date) -> PathBuf {
    crate::archive::layout::bundle(data, date)
}

/// Where the endpoints come from: a providers file (keys from the environment), or given
/// directly (the demo's embedded simulator).
pub enum Endpoints {
    File(PathBuf),
    Given {
        defaults: config::Defaults,
        endpoints: Vec<Usable>,
    },
}

/// Open the data folder's store; a second process on it is refused (exit 2).
fn open_store(data: &Path) -> Result<Store> {
    std::fs::create_dir_all(data)?;
    Store::open(data).map_err(|e| {
        let msg = e.to_string();
        if msg.contains("lock") || msg.contains("temporarily unavailable") {
            Error::Usage(format!(
                "{} is in use by another process (is `sit run` already running on it?): {msg}",
                data.display()
            ))
        } else {
            Error::Store(e)
        }
    })
}

/// Run the oracle. Returns only with `--until`, on Ctrl-C (SIGINT) or SIGTERM, or on an error.
pub async fn run(data: &Path, endpoints: Endpoints, opts: &RunOptions) -> Result<RunReport> {
    if opts.per_hour == 0 {
        return Err(Error::Usage("--per-hour must be at least 1".into()));
    }
    let store = Arc::new(open_store(data)?);
    let key = crate::archive::keys::load_signing(&opts.key)?;
    let contracts = crate::contracts::load_or_embedded(
        opts.contracts.as_deref(),
        &Suite::embedded().tier_ids(),
    )?;
    if opts.new_timeline {
        check_new_timeline(&store, opts.start)?;
    }
    // Load the reference tokenizer and the versions (the current suite's hash covers the
    // tokenizer's vocabulary) before the clock starts: a commitment is due in the day's first
    // minutes, and on a compressed clock a third of a second is more than an hour.
    sit_core::tokenizer::warm_up();
    let _ = sit_core::versions::Registry::embedded();
    let (clock, fresh) = run_clock(data, opts)?;
    if !(fresh && opts.new_timeline) {
        check_store_clock(&store, clock.as_ref())?;
    }
    let providers = match &endpoints {
        Endpoints::File(p) => Some(p.clone()),
        Endpoints::Given { .. } => None,
    };
    let (defaults, usable) = match endpoints {
        Endpoints::File(p) => usable_endpoints(&p)?,
        Endpoints::Given {
            defaults,
            endpoints,
        } => (defaults, endpoints),
    };
    record_configured_prices(&store, &usable, clock.now_ms())?;
    let price_version = store.book()?.version();
    let suite = Suite::embedded();
    let worker = Worker::new(defaults, clock.clone(), Methodology::default())?
        .with_price_version(price_version);
    let worker = match &opts.network {
        Some(n) => worker.at_vantage(&n.vantage),
        None => worker.with_id("run"),
    };
    // A network worker ships every record it makes: the queue starts with what the spool
    // holds unshipped, before the recorder adds to it.
    let ship_queue = match &opts.network {
        Some(_) => Some(crate::network::ship::queue_from_spool(&store)?),
        None => None,
    };
    let archive = Archive::for_data(data);
    // A timeline that begins now began when its clock was anchored: nothing of it was missed.
    let started_ms = match (fresh, opts.start) {
        (true, Some(start)) => start.start_ms(),
        _ => clock.now_ms(),
    };
    let status = Status::new(clock.clone(), started_ms);
    // A data folder begins with its genesis notice (a worker's spool publishes nothing).
    if opts.network.is_none() {
        ensure_genesis(
            &archive,
            &usable,
            &contracts,
            &key,
            opts.demo_key,
            Date::of_ms(started_ms),
            clock.now_ms(),
        )?;
    }
    let on_ack: OnAck = {
        let (s, q) = (status.clone(), ship_queue.clone());
        Arc::new(move |o| {
            s.recorded(o);
            if let Some(q) = &q {
                q.push(o);
            }
        })
    };
    let (recorder, rec_task) = Recorder::start_observed(store.clone(), Some(on_ack));
    let ids: Vec<String> = usable.iter().map(|(e, _)| e.id.clone()).collect();
    let publisher = DayPublisher::new(
        data,
        store.clone(),
        key.clone(),
        clock.clone(),
        providers,
        ids.clone(),
        contracts,
    );
    // a worker of the probe network publishes nothing: it cannot restate a disputed day
    let restater = opts.network.is_none().then(|| publisher.clone());
    let server = serve_beside(opts, &archive, &status, &key, restater, clock.clone()).await?;
    let svc = Svc {
        publisher,
        data: data.to_path_buf(),
        clock: clock.clone(),
        status: status.clone(),
        worker_role: opts.network.is_some(),
    };
    let mut report = RunReport::default();
    let (stop_ship, ship_stopped) = tokio::sync::watch::channel(false);
    let shipper = start_shipper(opts, &ship_queue, &svc, &store, &clock, ship_stopped).await?;

    let mut day = resume_day(
        &svc,
        suite,
        Date::of_ms(started_ms),
        opts.new_timeline && fresh,
    )?;
    let main = async {
        // The day before, still finishing its last probes (its retries may run past midnight
        // while this day is already being probed).
        let mut prev: Option<(Date, DaySecret, AbortOnDrop<ProbeResult>, AbortOnDrop<()>)> = None;
        loop {
            if opts.until.is_some_and(|u| day >= u) {
                break;
            }
            let c = commit(
                data,
                svc.publisher.archive(),
                day,
                &panel_endpoints(svc.publisher.archive(), &ids, day, &status)?,
                opts.per_hour,
                suite,
                &key,
                clock.now_ms(),
            )?;
            // the next day's schedule is committed a day ahead
            if opts.until.is_none_or(|u| day.succ() < u) {
                commit(
                    data,
                    svc.publisher.archive(),
                    day.succ(),
                    &panel_endpoints(svc.publisher.archive(), &ids, day.succ(), &status)?,
                    opts.per_hour,
                    suite,
                    &key,
                    clock.now_ms(),
                )?;
            }
            let secret = day_secret(data, day)?;
            let slots = c.slots(suite, secret.seed());
            let probing = {
                let (worker, store, recorder, usable, opts, status) = (
                    worker.clone(),
                    store.clone(),
                    recorder.clone(),
                    usable.clone(),
                    opts.clone(),
                    status.clone(),
                );
                AbortOnDrop(tokio::spawn(async move {
                    probe_day(
                        &worker, &store, &recorder, &usable, &c, slots, started_ms, &opts, &status,
                    )
                    .await
                }))
            };
            // The previous day's restatement window closes at the end of this one: recompute
            // it once more just before.
            let restating = AbortOnDrop(tokio::spawn(
                svc.clone().restate_before_cutoff(Date(day.0 - 1)),
            ));
            if let Some((d, s, p, r)) = prev.take() {
                finish_day(&svc, d, s, p, r, &mut report).await?;
            }
            prev = Some((day, secret, probing, restating));
            let wait = clock.real_until(day.succ().start_ms());
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            status.awaiting(day);
            day = day.succ();
        }
        if let Some((d, s, p, r)) = prev.take() {
            finish_day(&svc, d, s, p, r, &mut report).await?;
        }
        Ok::<(), Error>(())
    };
    let result = tokio::select! {
        r = main => r,
        _ = crate::sys::shutdown::signal() => {
            tracing::info!("sit run: stopping (signal); what is recorded stays, the rest resumes at the next start");
            Ok(())
        }
    };
    drop(recorder);
    rec_task
        .await
        .map_err(|e| failed("the recorder task", e))??;
    if let Some(task) = shipper {
        // Probing has stopped: drain what the link takes within the drain time.
        let _ = stop_ship.send(true);
        let shipped = task.await.map_err(|e| failed("the shipper task", e))??;
        report.shipped = Some(shipped);
    }
    if let Some(s) = server {
        let _ = s.shutdown().await;
    }
    result.map(|_| report)
}

/// The price book learns the configured schedules (a changed entry is a correction, a new
/// version recorded now); determinations cost attempts from the book as it then stands.
fn record_configured_prices(store: &Store, usable: &[Usable], now_ms: i64) -> Result<()> {
    let recorded = store.record_prices(
        usable.iter().map(|(e, _)| (e.id.as_str(), &e.prices)),
        now_ms,
        |id, p| {
            usable
                .iter()
                .find(|(e, _)| e.id == id)
                .and_then(|(e, _)| e.source_of(p))
        },
    )?;
    if let (Some(first), Some(last)) = (recorded.first(), recorded.last()) {
        let mut eps: Vec<&str> = recorded.iter().map(|b| b.endpoint.as_str()).collect();
        eps.dedup();
        tracing::info!(
            "sit run: price book v{}-v{} recorded at {}: {} entries of {} endpoints",
            first.version,
            last.version,
            sit_core::time::format_utc_ms(first.recorded_at_ms),
            recorded.len(),
            eps.len()
        );
    }
    Ok(())
}

/// `--serve ADDR`: the HTTP server beside the service, with its health and metrics, the
/// certification challenges signed with the oracle's key and, with `--parties`, registered
/// parties' submissions (an upheld dispute about a day restated by `publisher`).
async fn serve_beside(
    opts: &RunOptions,
    archive: &Archive,
    status: &Arc<Status>,
    key: &ed25519_dalek::SigningKey,
    publisher: Option<DayPublisher>,
    clock: Arc<dyn Clock>,
) -> Result<Option<crate::server::Running>> {
    match opts.serve {
        Some(addr) => {
            let svc: Arc<dyn crate::server::Service> = status.clone();
            let intake = match &opts.parties {
                Some(p) => Some(Arc::new(
                    crate::oversight::Intake::new(
                        key.clone(),
                        crate::config::parties::load(p).map_err(|e| failed("parties", e))?,
                        archive.clone(),
                        publisher,
                        clock,
                    )
                    .map_err(|e| failed("the oversight register", e))?,
                )),
                None => None,
            };
            let r = crate::server::start_with(
                archive.clone(),
                addr,
                Some(svc),
                opts.limits.clone(),
                Some(Arc::new(crate::certify::challenge::Challenger::new(
                    key.clone(),
                    archive,
                ))),
                intake,
            )
            .await
            .map_err(|e| failed(&format!("cannot serve on {addr}"), e))?;
            tracing::info!(
                "sit run: serving http://{} (/healthz, /metrics; {})",
                r.addr,
                r.capacity.describe()
            );
            Ok(Some(r))
        }
        None => Ok(None),
    }
}

/// `sit worker`: the shipper of the spool's records to the probe network (None for `sit run`).
async fn start_shipper(
    opts: &RunOptions,
    ship_queue: &Option<Arc<crate::network::ship::Queue>>,
    svc: &Svc,
    store: &Arc<Store>,
    clock: &Arc<dyn Clock>,
    ship_stopped: tokio::sync::watch::Receiver<bool>,
) -> Result<Option<tokio::task::JoinHandle<crate::network::Result<crate::network::ship::Shipped>>>>
{
    match (&opts.network, &ship_queue) {
        (Some(n), Some(q)) => {
            let client =
                crate::network::connect(&n.nats, &format!("sit-worker-{}", n.vantage)).await?;
            let shipper = crate::network::ship::Shipper {
                store: store.clone(),
                queue: q.clone(),
                vantage: n.vantage.clone(),
                key: svc.publisher.key().clone(),
                js: async_nats::jetstream::new(client),
                archive: svc.publisher.archive().clone(),
                clock: clock.clone(),
            };
            tracing::info!(
                "sit worker: vantage {}, shipping to {} ({} observations spooled)",
                n.vantage,
                n.nats,
                q.depth()
            );
            Ok(Some(tokio::spawn(shipper.run(ship_stopped, n.drain))))
        }
        _ => Ok(None),
    }
}

/// Where the loop resumes: the earliest committed day of the last week that is not finished
/// (not before the timeline's own start: none when the timeline begins now), else `today`.
fn resume_day(svc: &Svc, suite: &Suite, today: Date, new_timeline: bool) -> Result<Date> {
    if new_timeline {
        return Ok(today);
    }
    for back in (1..=7).rev() {
        let d = Date(today.0 - back);
        if archive_has_unfinished(svc, suite, d)? {
            return Ok(d);
        }
    }
    Ok(today)
}

type ProbeResult = Result<(u64, u64, RunSummary)>;

/// A task aborted when its handle is dropped (the service stopping on a signal must not
/// leave a day's probing running behind it).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A day has ended: wait for its watermark (every scheduled probe observed or missed, nothing
/// in flight: its probing task is done), let the previous day's last recomputation run first
/// (its cutoff is this day's end), then determine, sign and archive the day, reveal its seed
/// and write its audit bundle.
async fn finish_day(
    svc: &Svc,
    day: Date,
    secret: DaySecret,
    mut probing: AbortOnDrop<ProbeResult>,
    mut restating: AbortOnDrop<()>,
    report: &mut RunReport,
) -> Result<()> {
    let (probes, missed, summary) = (&mut probing.0)
        .await
        .map_err(|e| failed(&format!("probing {day}"), e))??;
    report.probes += probes;
    report.missed += missed;
    report.summary.merge(summary);
    // Not before the day's end plus the settlement lag (methodology 1.3.0).
    // (A network worker reveals as soon as its day is probed: the collector waits.)
    if let Some(lag) = svc
        .publisher
        .registry()
        .current_methodology()
        .settlement_lag_minutes
        .filter(|_| !svc.worker_role)
    {
        let at = day.succ().start_ms() + lag as i64 * 60_000;
        tokio::time::sleep(svc.clock.real_until(at)).await;
    }
    let _ = (&mut restating.0).await;
    let s2 = svc.clone();
    let lines = tokio::task::spawn_blocking(move || s2.publish_day(day, Some(&secret)))
        .await
        .map_err(|e| failed(&format!("publishing {day}"), e))??;
    report.published.extend(lines);
    report.days.push(day);
    Ok(())
}

fn archive_has_unfinished(svc: &Svc, suite: &Suite, d: Date) -> Result<bool> {
    Ok(svc.publisher.archive().commitment(d).is_some()
        && !finished(
            svc.publisher.archive(),
            &svc.data,
            suite,
            d,
            svc.worker_role,
        )?)
}

/// What the publication steps share (cloned into blocking tasks): the publisher, and what
/// `sit run` adds around it (its status, and a network worker's role: reveal, never determine).
#[derive(Clone)]
struct Svc {
    publisher: DayPublisher,
    data: PathBuf,
    clock: Arc<dyn Clock>,
    status: Arc<Status>,
    /// `sit worker`: a finished day is revealed (and shipped), never determined here.
    worker_role: bool,
}

impl Svc {
    /// Publish a finished day (a network worker: reveal its seed; the collector determines
    /// it), then mark it published in the status.
    fn publish_day(&self, day: Date, secret: Option<&DaySecret>) -> Result<Vec<String>> {
        let lines = if self.worker_role {
            if let Some(s) = secret {
                self.publisher.reveal(day, &s.seed, &s.salt)?;
            }
            vec![]
        } else {
            self.publisher
                .publish_day(day, secret.map(|s| (s.seed.as_str(), s.salt.as_str())))?
        };
        self.status.published(day, self.clock.now_ms());
        Ok(lines)
    }

    /// Recompute `day` once more just before its restatement cutoff (not on a worker).
    async fn restate_before_cutoff(self, day: Date) {
        if !self.worker_role {
            self.publisher.restate_before_cutoff(day).await
        }
    }
}

impl crate::server::Service for Status {
    fn health(&self) -> (Vec<String>, serde_json::Value) {
        Status::health(self)
    }
    fn metrics(&self, out: &mut String) {
        Status::metrics(self, out)
    }
}

/// Probe what remains of a day's committed schedule; record as missed what the service was
/// not running for. Returns (probes sent now, probes recorded as missed now).
#[allow(clippy::too_many_arguments)]
async fn probe_day(
    worker: &Worker,
    store: &Store,
    recorder: &Recorder,
    usable: &[(Endpoint, Option<ApiKey>)],
    c: &Commitment,
    slots: Vec<Slot>,
    started_ms: i64,
    opts: &RunOptions,
    status: &Status,
) -> Result<(u64, u64, RunSummary)> {
    let suite = Suite::embedded();
    // What is already recorded (a probe of the day's last seconds may be sent after midnight).
    let from = c.date.start_ms();
    let mut done: BTreeSet<(u64, String)> = BTreeSet::new();
    for r in store.scan(from, from + DAY_MS + HOUR_MS) {
        let o = r?.obs;
        if o.suite_hash == suite.hash {
            done.insert((o.seed, o.nonce));
        }
    }
    // The committed endpoints in schedule order; one no longer usable has all its probes
    // missed (with the reason), never silently dropped.
    let eps: Vec<Option<Arc<Usable>>> = c
        .endpoints
        .iter()
        .map(|id| {
            usable
                .iter()
                .find(|(e, _)| e.id == *id)
                .map(|x| Arc::new(x.clone()))
        })
        .collect();
    let mut missed = 0u64;
    let mut todo = Vec::new();
    for s in slots {
        if done.contains(&(s.seed, s.nonce.clone())) {
            continue;
        }
        let why = match &eps[s.endpoint] {
            None => Some(format!(
                "endpoint {} is no longer usable (removed from the providers file, or its key is gone)",
                c.endpoints[s.endpoint]
            )),
            Some(_) if s.at_ms < started_ms => Some(format!(
                "scheduled at {}, before this run of the service started at {}",
                format_utc_ms(s.at_ms),
                format_utc_ms(started_ms)
            )),
            Some(_) => None,
        };
        match why {
            Some(why) => {
                let spec = ProbeSpec {
                    tier: suite.tiers[s.tier].clone(),
                    family: s.family,
                    seed: s.seed,
                    nonce: s.nonce.clone(),
                    retry: 0,
                };
                let obs = match &eps[s.endpoint] {
                    Some(e) => worker.missed(&e.0, &spec, s.at_ms, &why),
                    None => {
                        // Only its id is known (from the commitment): say nothing else.
                        let mut o = worker.missed(&usable[0].0, &spec, s.at_ms, &why);
                        o.endpoint = c.endpoints[s.endpoint].clone();
                        (o.provider, o.model, o.dialect, o.region) =
                            (String::new(), String::new(), String::new(), String::new());
                        o
                    }
                };
                let seq = recorder
                    .record(obs)
                    .await
                    .map_err(|e| failed("recording a missed probe", e))?;
                if opts.print_acks {
                    println!("ack {seq}");
                }
                missed += 1;
            }
            None => todo.push(s),
        }
    }
    // Slots run against the usable endpoints only: renumber into their order.
    let mut live: Vec<Arc<Usable>> = Vec::new();
    let index: Vec<Option<usize>> = eps
        .iter()
        .map(|e| {
            e.as_ref().map(|e| {
                live.push(e.clone());
                live.len() - 1
            })
        })
        .collect();
    let todo: Vec<Slot> = todo
        .into_iter()
        .map(|mut s| {
            s.endpoint = index[s.endpoint].expect("usable");
            s
        })
        .collect();
    let n = todo.len() as u64;
    let pb = progress_bar(n, opts.progress);
    pb.set_prefix(c.date.to_string());
    status.probing(c.date, todo.iter().map(|s| s.at_ms).collect());
    let summary = run_slots(
        worker,
        &live,
        suite,
        todo,
        recorder,
        &pb,
        opts.print_acks,
        true,
    )
    .await?;
    pb.finish_and_clear();
    Ok((n, missed, summary))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publisher::notices::{self, Context};
    use sit_core::versions::Registry;

    #[test]
    fn a_day_whose_notices_name_another_suite_is_not_probed_under_this_one() {
        let dir = tempfile::tempdir().unwrap();
        let archive = Archive::for_data(dir.path());
        let suite = Suite::embedded();
        let day = Date::parse("2026-01-05").unwrap();
        // no notices: the build's suite
        check_suite_in_force(&archive, day, suite).unwrap();
        let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
        let reg = Registry::embedded();
        let g = notices::genesis(
            reg,
            &Default::default(),
            &Default::default(),
            &key,
            false,
            day,
        );
        let ctx = Context::new(reg, Vec::<String>::new(), Vec::<String>::new());
        notices::publish(&g, &archive, &ctx, &key, None, day.start_ms()).unwrap();
        check_suite_in_force(&archive, day, suite).unwrap();
        let old = reg
            .suites()
            .iter()
            .find(|s| s.hash != suite.hash)
            .expect("an older suite");
        let e = check_suite_in_force(&archive, day, old)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("this build probes with suite {}", old.version))
                && e.contains(&suite.version),
            "{e}"
        );
    }

    /// Issue 29: suite 1.2.0 (the answer-style decisions) takes force in a data folder begun
    /// under 1.1.0 only by a notice: the 1.1.0 build probes until the notice's effective day,
    /// this build from that day on, never both and never before.
    #[test]
    fn suite_1_2_0_takes_force_in_a_1_1_0_folder_by_a_minor_notice() {
        use sit_core::notice::{Change, Class, Notice};
        let dir = tempfile::tempdir().unwrap();
        let archive = Archive::for_data(dir.path());
        let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
        let (v110, v120) = (Suite::v1_1_0(), Suite::embedded());
        assert_eq!(
            (v110.version.as_str(), v120.version.as_str()),
            ("1.1.0", "1.2.0")
        );
        // the folder's genesis, as a build whose current suite was 1.1.0 made it
        let then = Registry::new(
            vec![sit_core::index::Methodology::v1_4_0()],
            vec![Suite::v1_0_0().clone(), v110.clone()],
        )
        .unwrap();
        let day = Date::parse("2026-01-05").unwrap();
        let g = notices::genesis(
            &then,
            &Default::default(),
            &Default::default(),
            &key,
            false,
            day,
        );
        let ctx = Context::new(
            Registry::embedded(),
            Vec::<String>::new(),
            Vec::<String>::new(),
        );
        notices::publish(&g, &archive, &ctx, &key, None, day.start_ms()).unwrap();
        let effective = Date(day.0 + 31);
        let switch = Notice {
            kind: sit_core::notice::KIND.into(),
            id: String::new(),
            class: Class::Minor,
            changes: vec![Change::Suite {
                version: v120.version.clone(),
                hash: v120.hash.clone(),
            }],
            reason: "probe suite 1.2.0: answers graded by the written answer-style decisions"
                .into(),
            published_at: String::new(),
            effective_at: sit_core::time::format_utc_ms(effective.start_ms()),
            consultation: None,
            key_id: String::new(),
            acceptance: None,
        };
        // less than a minor notice's 30 days is refused
        let early = Notice {
            effective_at: sit_core::time::format_utc_ms(Date(day.0 + 10).start_ms()),
            ..switch.clone()
        };
        assert!(notices::publish(&early, &archive, &ctx, &key, None, day.start_ms()).is_err());
        notices::publish(&switch, &archive, &ctx, &key, None, day.start_ms()).unwrap();
        let before = Date(effective.0 - 1);
        check_suite_in_force(&archive, before, v110).unwrap();
        assert!(check_suite_in_force(&archive, before, v120).is_err());
        check_suite_in_force(&archive, effective, v120).unwrap();
        assert!(check_suite_in_force(&archive, effective, v110).is_err());
    }
}
