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

use crate::clock::{format_utc_ms, AnchoredClock, Clock, Date, SystemClock, DAY_MS, HOUR_MS};
use crate::commit::{commitment_of, Commitment, Reveal};
use crate::config::{self, ApiKey, Endpoint};
use crate::error::{Error, Result};
use crate::index::Methodology;
use crate::probes::Suite;
use crate::publisher::archive::Archive;
use crate::schedule::{day_schedule, Slot};
use crate::store::Store;
use crate::versions::Registry;
use crate::worker::recorder::Recorder;
use crate::worker::runner::{progress_bar, run_slots};
use crate::worker::{ProbeSpec, Worker};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
}

/// What a `sit run` did (it returns only with `--until`).
#[derive(Debug, Default)]
pub struct RunReport {
    /// One line per published record.
    pub published: Vec<String>,
    pub probes: u64,
    pub missed: u64,
}

/// The clock a data folder runs on, fixed at its first `sit run`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
enum RunClock {
    System,
    Compressed(AnchoredClock),
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
        let v = crate::signing::unhex(&self.salt).expect("written by this module");
        v.try_into().expect("32 bytes")
    }
}

fn failed(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Failed(format!("{what}: {e}"))
}

/// Write `bytes` to `path` durably: a temporary file, fsync, rename, fsync of the folder.
fn write_durably(path: &Path, bytes: &[u8], private: bool) -> Result<()> {
    let dir = path.parent().expect("a file in a folder");
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    {
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        if private {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        let mut f = o.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// The clock of this data folder: the one recorded at its first `sit run`, which later runs
/// must ask for again (a compressed and a real-time timeline never mix in one store).
fn run_clock(data: &Path, opts: &RunOptions) -> Result<Arc<dyn Clock>> {
    let wanted = match (opts.start, opts.hour_ms) {
        (None, None) => RunClock::System,
        (Some(start), Some(ms)) if ms > 0 => RunClock::Compressed(AnchoredClock {
            real_anchor_ms: SystemClock.now_ms(),
            sim_start_ms: start.start_ms(),
            factor: (HOUR_MS as u64 / ms).max(1),
        }),
        _ => {
            return Err(Error::Usage(
                "--start and --hour-ms go together (a compressed clock), and --hour-ms must be at least 1; give neither for the system clock".into(),
            ))
        }
    };
    let path = data.join("run-clock.json");
    let clock = match std::fs::read(&path) {
        Ok(bytes) => {
            let kept: RunClock = serde_json::from_slice(&bytes)
                .map_err(|e| failed(&format!("{} is damaged", path.display()), e))?;
            let same = match (&kept, &wanted) {
                (RunClock::System, RunClock::System) => true,
                (RunClock::Compressed(a), RunClock::Compressed(b)) => {
                    a.sim_start_ms == b.sim_start_ms && a.factor == b.factor
                }
                _ => false,
            };
            if !same {
                return Err(Error::Usage(format!(
                    "{} was first run with another clock ({}); run it with the same --start/--hour-ms (or none), or use a new --data folder",
                    data.display(),
                    describe(&kept)
                )));
            }
            kept
        }
        Err(_) => {
            let bytes = serde_json::to_vec_pretty(&wanted).expect("json");
            write_durably(&path, &bytes, false)?;
            wanted
        }
    };
    Ok(match clock {
        RunClock::System => Arc::new(SystemClock),
        RunClock::Compressed(c) => Arc::new(c),
    })
}

fn describe(c: &RunClock) -> String {
    match c {
        RunClock::System => "the system clock".into(),
        RunClock::Compressed(c) => format!(
            "--start {} --hour-ms {}",
            Date::of_ms(c.sim_start_ms),
            HOUR_MS as u64 / c.factor.max(1)
        ),
    }
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

/// A day's secret, created (from the OS) and stored durably the first time it is asked for.
fn day_secret(data: &Path, date: Date) -> Result<DaySecret> {
    let path = data.join("run/secrets").join(format!("{date}.json"));
    if let Ok(bytes) = std::fs::read(&path) {
        return serde_json::from_slice(&bytes)
            .map_err(|e| failed(&format!("{} is damaged", path.display()), e));
    }
    let mut b = [0u8; 40];
    getrandom::getrandom(&mut b).map_err(|e| failed("the OS random source", e))?;
    let s = DaySecret {
        date,
        seed: format!("{:016x}", u64::from_le_bytes(b[..8].try_into().expect("8"))),
        salt: crate::signing::hex(&b[8..]),
    };
    write_durably(&path, &serde_json::to_vec(&s).expect("json"), true)?;
    Ok(s)
}

/// Commit `date` (once): its secret exists durably before its commitment is written.
fn commit(
    data: &Path,
    archive: &Archive,
    date: Date,
    endpoints: &[String],
    per_hour: u32,
    suite: &Suite,
    now_ms: i64,
) -> Result<Commitment> {
    if let Some(c) = archive.commitment(date) {
        return Ok(c);
    }
    let s = day_secret(data, date)?;
    let c = Commitment {
        date,
        commitment: commitment_of(date, s.seed(), &s.salt()),
        endpoints: endpoints.to_vec(),
        per_hour,
        suite_hash: suite.hash.clone(),
        committed_at: format_utc_ms(now_ms),
    };
    archive
        .put_commitment(&c)
        .map_err(|e| failed(&format!("committing {date}"), e))?;
    Ok(c)
}

/// The endpoints `sit run` can probe: every configured endpoint with a supported dialect
/// whose key (if it needs one) is in the environment. The others are named once, here, and
/// left out of the commitments made from now on.
fn usable_endpoints(providers: &Path) -> Result<(config::Defaults, Vec<Usable>)> {
    let c = config::load(providers)?;
    let mut out = Vec::new();
    for e in c.endpoints {
        if !e.dialect.supported() {
            eprintln!(
                "sit run: endpoint `{}` left out: no {} adapter yet",
                e.id, e.dialect
            );
            continue;
        }
        match e.api_key() {
            Ok(k) => out.push((e, k)),
            Err(why) => eprintln!("sit run: {why}; left out of the commitments"),
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

/// Whether every output of a day's publication exists.
fn finished(archive: &Archive, data: &Path, suite: &Suite, date: Date) -> Result<bool> {
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
    data.join("archive").join(date.to_string())
}

/// Run the oracle. Returns only with `--until` (or on an error).
pub async fn run(data: &Path, providers: &Path, opts: &RunOptions) -> Result<RunReport> {
    if opts.per_hour == 0 {
        return Err(Error::Usage("--per-hour must be at least 1".into()));
    }
    std::fs::create_dir_all(data)?;
    let store = Arc::new(Store::open(data).map_err(|e| {
        let msg = e.to_string();
        if msg.contains("lock") || msg.contains("temporarily unavailable") {
            Error::Usage(format!(
                "{} is in use by another process (is `sit run` already running on it?): {msg}",
                data.display()
            ))
        } else {
            Error::Store(e)
        }
    })?);
    let key = crate::publisher::keys::load_signing(&opts.key)?;
    let clock = run_clock(data, opts)?;
    check_store_clock(&store, clock.as_ref())?;
    let (defaults, usable) = usable_endpoints(providers)?;
    for (e, _) in &usable {
        store.put_prices(&e.id, &e.prices)?;
    }
    let suite = Suite::embedded();
    let registry = Registry::embedded();
    let worker = Worker::new(defaults, clock.clone(), Methodology::default())?.with_id("run");
    let archive = Archive::for_data(data);
    let (recorder, rec_task) = Recorder::start(store.clone());
    let started_ms = clock.now_ms();
    let ids: Vec<String> = usable.iter().map(|(e, _)| e.id.clone()).collect();
    let mut report = RunReport::default();

    // Resume at the earliest committed day of the last week that is not finished.
    let today = Date::of_ms(started_ms);
    let mut day = today;
    for back in (1..=7).rev() {
        let d = Date(today.0 - back);
        if archive.commitment(d).is_some() && !finished(&archive, data, suite, d)? {
            day = d;
            break;
        }
    }
    let result: Result<()> = async {
        loop {
            if opts.until.is_some_and(|u| day >= u) {
                return Ok(());
            }
            let c = commit(
                data,
                &archive,
                day,
                &ids,
                opts.per_hour,
                suite,
                clock.now_ms(),
            )?;
            if opts.until.is_none_or(|u| day.succ() < u) {
                commit(
                    data,
                    &archive,
                    day.succ(),
                    &ids,
                    opts.per_hour,
                    suite,
                    clock.now_ms(),
                )?;
            }
            let secret = day_secret(data, day)?;
            let slots = day_schedule(suite, c.endpoints.len(), day, secret.seed(), c.per_hour);
            let (probes, missed) = probe_day(
                &worker, &store, &recorder, &usable, &c, slots, started_ms, opts,
            )
            .await?;
            report.probes += probes;
            report.missed += missed;
            // Watermark: every slot is observed or missed and nothing is in flight
            // (probe_day awaited them all); the day must also be over.
            let end = day.succ().start_ms();
            let wait = clock.real_until(end);
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            publish_day(
                data,
                &store,
                &archive,
                registry,
                &key,
                day,
                &secret,
                clock.as_ref(),
                &mut report,
            )?;
            day = day.succ();
        }
    }
    .await;
    drop(recorder);
    rec_task
        .await
        .map_err(|e| failed("the recorder task", e))??;
    result.map(|_| report)
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
) -> Result<(u64, u64)> {
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
    run_slots(worker, &live, suite, todo, recorder, &pb, opts.print_acks).await?;
    pb.finish_and_clear();
    Ok((n, missed))
}

/// Publish a finished day: each tier not yet published, then the reveal, then the bundle.
#[allow(clippy::too_many_arguments)]
fn publish_day(
    data: &Path,
    store: &Store,
    archive: &Archive,
    registry: &Registry,
    key: &ed25519_dalek::SigningKey,
    day: Date,
    secret: &DaySecret,
    clock: &dyn Clock,
    report: &mut RunReport,
) -> Result<()> {
    let suite = Suite::embedded();
    let entries = archive
        .entries()
        .map_err(|e| failed("reading the archive", e))?;
    for tier in suite.tier_ids() {
        if entries.iter().any(|e| e.tier == tier && e.date == day) {
            continue;
        }
        let p = crate::publisher::publish(
            store,
            archive,
            registry,
            &crate::publisher::Request {
                tier: &tier,
                date: day,
                now_ms: clock.now_ms(),
                key,
                // The service was running: a day without observations is an outage.
                allow_empty: true,
            },
        )?;
        let line = p.line();
        eprintln!("sit run: published {line}");
        report.published.push(line);
    }
    if archive.reveal(day).is_none() {
        archive
            .put_reveal(&Reveal {
                date: day,
                seed: secret.seed.clone(),
                salt: secret.salt.clone(),
                revealed_at: format_utc_ms(clock.now_ms()),
            })
            .map_err(|e| failed(&format!("revealing {day}"), e))?;
    }
    let out = bundle_dir(data, day);
    if !out.exists() {
        // Written aside and renamed into place: a bundle cut short by a kill is never taken
        // for a finished one, and is written again from the start.
        let tmp = data.join("archive").join(format!(".{day}.partial"));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        crate::audit::bundle::export(store, archive, registry, day, &tmp, clock.now_ms())
            .map_err(|e| failed(&format!("writing the audit bundle of {day}"), e))?;
        std::fs::rename(&tmp, &out)?;
        std::fs::File::open(out.parent().expect("in archive/"))?.sync_all()?;
    }
    Ok(())
}
