//! The probe runner shared by `sit run` (and so the demo) and `sit probe`: slots at their clock times, per-
//! endpoint concurrency and pacing, retries as separate attempts, every observation recorded
//! durably before it counts.

use super::pace::Pacer;
use super::recorder::Recorder;
use super::{retry, ProbeSpec, Worker};
use crate::config::{ApiKey, Endpoint};
use sit_core::time::format_utc_ms;
/// Why a run of probes stopped: a probe task panicked, or probes could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A run that no caller can repair (the message says what failed).
    #[error("{0}")]
    Failed(String),
}

type Result<T> = std::result::Result<T, Error>;
use indicatif::{ProgressBar, ProgressStyle};
use sit_core::observation::Observation;
use sit_core::probes::Suite;
use sit_core::schedule::Slot;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

/// What a run of probes did.
#[derive(Debug, Default, Clone)]
pub struct RunSummary {
    pub attempts: u64,
    pub recorded: u64,
    pub delivered: u64,
    /// Per endpoint: attempts, failures by class, correct.
    pub per_endpoint: BTreeMap<String, EndpointSummary>,
}

impl RunSummary {
    /// Add another run's counts to these.
    pub fn merge(&mut self, o: RunSummary) {
        self.attempts += o.attempts;
        self.recorded += o.recorded;
        self.delivered += o.delivered;
        for (id, e) in o.per_endpoint {
            let m = self.per_endpoint.entry(id).or_default();
            m.attempts += e.attempts;
            m.succeeded += e.succeeded;
            m.correct += e.correct;
            m.delivered += e.delivered;
            for (c, n) in e.failures {
                *m.failures.entry(c).or_default() += n;
            }
        }
    }
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct EndpointSummary {
    pub attempts: u64,
    pub succeeded: u64,
    pub correct: u64,
    pub delivered: u64,
    pub failures: BTreeMap<String, u64>,
}

pub fn progress_bar(total: u64, show: bool) -> ProgressBar {
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
///
/// `days_close`: the slots are a committed day's schedule (`sit run`, a network worker). A slot
/// that cannot be sent before its UTC day ends (its endpoint's queue is that far behind) is
/// recorded **missed** at its scheduled time, and no retry is sent after its day ends: an
/// attempt sent the next day would be stamped with the next day's time, so its own day would
/// lack it ("dropped") and the next day would hold a probe of another schedule. Seen with a
/// compressed clock, where a slow endpoint's real-time timeouts span simulated days.
#[allow(clippy::too_many_arguments)]
pub async fn run_slots(
    worker: &Worker,
    endpoints: &[Arc<(Endpoint, Option<ApiKey>)>],
    suite: &'static Suite,
    slots: Vec<Slot>,
    recorder: &Recorder,
    pb: &ProgressBar,
    print_acks: bool,
    days_close: bool,
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
            let day_end = sit_core::time::Date::of_ms(slot.at_ms).succ().start_ms();
            // Each retry is its own recorded attempt; Retry-After is a minimum wait.
            loop {
                if let Some(p) = &pacer {
                    p.wait().await;
                }
                let late = days_close && w.clock().now_ms() >= day_end;
                if late && spec.retry > 0 {
                    // the day's attempts are over: the last one recorded stands
                    break;
                }
                let obs = if late {
                    let why = format!(
                        "not sent within its day: the endpoint's queue reached {} after the day ended",
                        format_utc_ms(w.clock().now_ms())
                    );
                    Ok(w.missed(&ep.0, &spec, slot.at_ms, &why))
                } else {
                    w.probe(&ep.0, ep.1.as_ref(), &spec).await
                };
                let obs = match obs {
                    Ok(obs) => obs,
                    Err(e) => {
                        errors.lock().unwrap().push(e.to_string());
                        break;
                    }
                };
                // a missed probe is no attempt; nothing follows it
                let wait = if late {
                    None
                } else {
                    note(&summary, &obs);
                    retry::delay(&retry::Policy::default(), obs.failure.as_ref(), spec.retry)
                };
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
