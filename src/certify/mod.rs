//! Self-certification: a provider runs the probe suite against its own endpoint and gets a
//! signed certificate stating what was measured, with honest uncertainty.
//!
//! - [`sit_core::certificate::stats`]: Wilson bounds and latency percentiles, in integers
//!   (pure);
//! - [`sit_core::certificate`]: figures, verdict rules, flags and the consistency check (pure);
//! - [`report`]: the Markdown and HTML reports;
//! - [`challenge`]: the oracle's side, issuing signed challenges that seed a certification;
//! - this module: the run itself (fresh seeds, bounded concurrency, Ctrl-C) and signing.
//!
//! Certification never writes to the index store: its attempts are not index observations.

pub mod report;

pub mod challenge;

use crate::config::{ApiKey, Endpoint};
use crate::sys::clock::{Clock, SystemClock};
use sit_core::certificate::{self, Certificate, EndpointInfo, Figures, Reference, Window, SCHEMA};
use sit_core::time::format_utc_ms;
/// Why a certification run stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A run that no caller can repair (the message says what failed).
    #[error("{0}")]
    Failed(String),
}

type Result<T> = std::result::Result<T, Error>;
use crate::worker::{ProbeSpec, Worker};
use ed25519_dalek::SigningKey;
use sit_core::index::Methodology;
use sit_core::observation::Observation;
use sit_core::probes::{Family, Suite};
use std::future::Future;
use std::sync::{Arc, Mutex};

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub tiers: Vec<String>,
    /// Attempts per tier, spread evenly over the tier's families.
    pub attempts: u32,
    /// Master seed of every probe seed and nonce.
    pub seed: u64,
    /// The oracle's challenge the seed was derived from (None: self-seeded).
    pub challenge: Option<String>,
    pub concurrency: usize,
}

/// The attempts made, and whether the run was cut short.
pub struct Run {
    pub observations: Vec<Observation>,
    pub planned: usize,
    pub interrupted: bool,
    pub started_at: String,
    pub finished_at: String,
}

/// Run the plan against one endpoint until done or until `stop` resolves (Ctrl-C). Attempts
/// of all tiers are interleaved, so an interrupted run still covers every tier.
pub async fn run(
    worker: &Worker,
    endpoint: Arc<(Endpoint, Option<ApiKey>)>,
    plan: &Plan,
    pb: &indicatif::ProgressBar,
    stop: impl Future<Output = ()>,
) -> Result<Run> {
    let suite = Suite::embedded();
    let mut rng = sit_core::rng::Rng::from_bytes(&[b"sit-certify", &plan.seed.to_le_bytes()]);
    let mut specs = Vec::new();
    for i in 0..plan.attempts as usize {
        for tid in &plan.tiers {
            let tier = suite.tier(tid).expect("tiers checked by the caller");
            let fam = &tier.families[i % tier.families.len()];
            specs.push(ProbeSpec {
                tier: tier.clone(),
                family: Family::from_id(fam).expect("suite family"),
                seed: rng.next_u64(),
                nonce: rng.hex(8),
                retry: 0,
            });
        }
    }
    let planned = specs.len();
    let started_at = format_utc_ms(SystemClock.now_ms());
    let done = Arc::new(Mutex::new(Vec::with_capacity(planned)));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let sem = Arc::new(tokio::sync::Semaphore::new(plan.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let all = async {
        for spec in specs {
            let permit = sem.clone().acquire_owned().await.expect("semaphore open");
            let (w, ep, done, errors, pb) = (
                worker.clone(),
                endpoint.clone(),
                done.clone(),
                errors.clone(),
                pb.clone(),
            );
            tasks.spawn(async move {
                let _permit = permit;
                match w.probe(&ep.0, ep.1.as_ref(), &spec).await {
                    Ok(o) => done.lock().unwrap().push(o),
                    Err(e) => errors.lock().unwrap().push(e.to_string()),
                }
                pb.inc(1);
            });
            while tasks.try_join_next().is_some() {}
        }
        while tasks.join_next().await.is_some() {}
    };
    let interrupted = tokio::select! {
        _ = all => false,
        _ = stop => true,
    };
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    if let Some(e) = errors.lock().unwrap().first() {
        return Err(Error::Failed(format!("probes could not run: {e}")));
    }
    let mut observations = std::mem::take(&mut *done.lock().unwrap());
    // Completion order depends on timing; the certificate's inputs do not.
    observations.sort_by(|a, b| (&a.tier, a.seed).cmp(&(&b.tier, b.seed)));
    Ok(Run {
        observations,
        planned,
        interrupted,
        started_at,
        finished_at: format_utc_ms(SystemClock.now_ms()),
    })
}

/// The figures of a run (complete or not).
pub fn measure(plan: &Plan, run: &Run) -> Figures {
    certificate::figures(
        Suite::embedded(),
        Methodology::default().availability_floor,
        &plan.tiers,
        &run.observations,
    )
}

/// The endpoint facts a certificate states.
pub fn endpoint_info(e: &Endpoint, obs: &[Observation]) -> EndpointInfo {
    let mut models = std::collections::BTreeMap::new();
    for o in obs {
        if let Some(m) = &o.server_model {
            *models.entry(m.clone()).or_insert(0) += 1;
        }
    }
    EndpointInfo {
        id: e.id.clone(),
        provider: e.provider.clone(),
        base_url: e.base_url.clone(),
        dialect: e.dialect.to_string(),
        model_requested: e.model.clone(),
        models_returned: models,
    }
}

/// Build and sign the certificate of a complete run: returns it and its canonical bytes.
pub fn certify(
    endpoint: &Endpoint,
    plan: &Plan,
    run: &Run,
    key: &SigningKey,
) -> (Certificate, Vec<u8>) {
    let suite = Suite::embedded();
    let m = Methodology::default();
    let cert = Certificate {
        schema: SCHEMA.into(),
        endpoint: endpoint_info(endpoint, &run.observations),
        suite: Reference {
            version: suite.version.clone(),
            hash: suite.hash.clone(),
        },
        methodology: Reference {
            version: m.version.clone(),
            hash: m.hash(),
        },
        window: Window {
            started_at: run.started_at.clone(),
            finished_at: run.finished_at.clone(),
            seed: format!("{:016x}", plan.seed),
        },
        figures: measure(plan, run),
        certified_at: format_utc_ms(SystemClock.now_ms()),
        key_id: sit_core::signing::key_id(&key.verifying_key()),
        seeding: Some(
            if plan.challenge.is_some() {
                sit_core::certificate::challenge::ORACLE_CHALLENGE
            } else {
                sit_core::certificate::challenge::SELF_SEEDED
            }
            .into(),
        ),
        challenge: plan.challenge.clone(),
    };
    let bytes = sit_core::signing::sign_value(
        serde_json::to_value(&cert).expect("certificate serialises"),
        key,
    );
    (cert, bytes)
}
