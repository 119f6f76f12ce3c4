//! What happens after a day, for `sit run` and the probe network's collector alike: determine,
//! sign and archive each tier of a finished day, reveal its schedule seed, write its audit
//! bundle, settle the listed futures; and recompute the day once more just before its
//! restatement cutoff, restating it if the policy allows.
//!
//! Every step is skipped when its output exists, so a kill anywhere in a day's publication is
//! harmless: the same call again finishes it. One publication runs at a time (a day's and the
//! previous day's restatement pass share a lock).

use super::{policy, publish, PublishError, Published, Request};
use crate::archive::{layout, Archive, ArchiveError};
use crate::config::ConfigError;
use crate::store::{Store, StoreError};
use crate::sys::clock::Clock;
use sit_core::commit::Reveal;
use sit_core::index::Methodology;
use sit_core::probes::Suite;
use sit_core::settlement::Contract;
use sit_core::time::{format_utc_ms, Date};
use sit_core::versions::Registry;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How long before a day's restatement cutoff (service clock) it is recomputed once more.
pub const RESTATE_BEFORE_CUTOFF_MS: i64 = 10 * 60 * 1000;

/// Why a day's publication stopped (the next attempt resumes it).
#[derive(Debug, thiserror::Error)]
pub enum DayError {
    /// A tier could not be published (or the policy refused it).
    #[error("{0}")]
    Publish(#[from] PublishError),
    /// The providers file does not load.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The observation store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The archive could not be read or written (`what` was being done).
    #[error("{what}: {source}")]
    Archive {
        /// What was being done.
        what: String,
        /// The archive's error.
        source: ArchiveError,
    },
    /// The published notices could not be read or do not fold.
    #[error("reading the notices: {0}")]
    Notices(String),
    /// The day's audit bundle could not be written.
    #[error("writing the audit bundle of {day}: {why}")]
    Bundle {
        /// The day.
        day: Date,
        /// The bundle writer's error.
        why: String,
    },
    /// A file or folder operation failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

fn archive_err(what: impl Into<String>) -> impl FnOnce(ArchiveError) -> DayError {
    move |source| DayError::Archive {
        what: what.into(),
        source,
    }
}

/// The publication steps of finished days, over one data folder (cheap to clone into
/// blocking tasks).
#[derive(Clone)]
pub struct DayPublisher {
    data: PathBuf,
    store: Arc<Store>,
    archive: Archive,
    registry: &'static Registry,
    key: Arc<ed25519_dalek::SigningKey>,
    clock: Arc<dyn Clock>,
    /// One publication at a time (a day's and the previous day's restatement pass).
    publishing: Arc<std::sync::Mutex<()>>,
    /// The providers file: its price schedules are read again before every determination, so
    /// a corrected price is recorded in the price book without a restart.
    providers: Option<PathBuf>,
    /// The endpoints probed (sorted ids): the ones whose prices are recorded.
    probed: Arc<Vec<String>>,
    /// The listed futures, settled after each publication.
    contracts: Arc<Vec<Contract>>,
}

impl DayPublisher {
    /// A publisher of `data`'s days, signing with `key` at `clock`'s time. `providers`: the
    /// file whose price schedules of the `probed` endpoints are recorded in the price book
    /// before every determination (None: the book is left as it is).
    pub fn new(
        data: &Path,
        store: Arc<Store>,
        key: ed25519_dalek::SigningKey,
        clock: Arc<dyn Clock>,
        providers: Option<PathBuf>,
        probed: Vec<String>,
        contracts: Vec<Contract>,
    ) -> DayPublisher {
        DayPublisher {
            data: data.to_path_buf(),
            store,
            archive: Archive::for_data(data),
            registry: Registry::embedded(),
            key: Arc::new(key),
            clock,
            publishing: Arc::new(std::sync::Mutex::new(())),
            providers,
            probed: Arc::new(probed),
            contracts: Arc::new(contracts),
        }
    }

    /// The probe network collector's publisher: every endpoint of `providers` is priced, its
    /// schedules recorded in the store's price book now (`record_now`; a cluster's collectors
    /// record only through the publication log) and read again before every determination;
    /// the embedded contracts are settled.
    pub fn with_price_book(
        data: &Path,
        store: Arc<Store>,
        key: ed25519_dalek::SigningKey,
        clock: Arc<dyn Clock>,
        providers: &Path,
        record_now: bool,
    ) -> Result<DayPublisher, DayError> {
        let c = crate::config::load(providers)?;
        if record_now {
            store.record_prices(
                c.endpoints.iter().map(|e| (e.id.as_str(), &e.prices)),
                clock.now_ms(),
                |id, p| {
                    c.endpoints
                        .iter()
                        .find(|e| e.id == id)
                        .and_then(|e| e.source_of(p))
                },
            )?;
        }
        Ok(DayPublisher::new(
            data,
            store,
            key,
            clock,
            Some(providers.to_path_buf()),
            c.endpoints.iter().map(|e| e.id.clone()).collect(),
            crate::contracts::embedded(&Suite::embedded().tier_ids()),
        ))
    }

    /// This publisher with its archive writes going through `replica` (a collector of a
    /// cluster: [`crate::network::cluster`]).
    pub fn replicated(mut self, replica: Arc<dyn crate::archive::Replica>) -> DayPublisher {
        self.archive = self.archive.replicated(replica);
        self
    }

    /// The publication archive written to.
    pub fn archive(&self) -> &Archive {
        &self.archive
    }

    /// The signing key.
    pub fn key(&self) -> &Arc<ed25519_dalek::SigningKey> {
        &self.key
    }

    /// The methodology and suite versions this build knows.
    pub fn registry(&self) -> &'static Registry {
        self.registry
    }

    /// Publish (or restate) one tier of `day` now. A day without observations is published
    /// as an outage (CONTINGENCY): the service was running; a restatement recomputing as
    /// CONTINGENCY is refused by the policy.
    fn publish(&self, tier: &str, day: Date) -> Result<Published, PublishError> {
        publish(
            &self.store,
            &self.archive,
            self.registry,
            &Request {
                tier,
                date: day,
                now_ms: self.clock.now_ms(),
                key: &self.key,
                allow_empty: true,
            },
        )
    }

    /// Record what the providers file now says about prices (a correction, a new entry) in
    /// the price book, at the service's clock. A file that no longer loads leaves the book as
    /// it is, with the error in the log: a bad edit must not stop publication.
    fn reread_prices(&self) {
        let Some(path) = &self.providers else { return };
        match crate::config::load(path) {
            Ok(c) => {
                let probed = c.endpoints.iter().filter(|e| self.probed.contains(&e.id));
                let schedules = probed.map(|e| (e.id.as_str(), &e.prices));
                let source = |id: &str, p: &sit_core::price::PriceEntry| {
                    c.endpoints
                        .iter()
                        .find(|e| e.id == id)
                        .and_then(|e| e.source_of(p))
                };
                let now = self.clock.now_ms();
                let r = match self.archive.replica() {
                    // a cluster's publisher: through the publication log, into every store
                    Some(replica) => self
                        .store
                        .price_changes(schedules, now, source)
                        .map_err(|e| e.to_string())
                        .and_then(|new| {
                            if !new.is_empty() {
                                replica
                                    .record_prices(new.clone())
                                    .map_err(|e| e.to_string())?;
                            }
                            Ok(new)
                        }),
                    None => self
                        .store
                        .record_prices(schedules, now, source)
                        .map_err(|e| e.to_string()),
                };
                match r {
                    Ok(new) if !new.is_empty() => tracing::info!(
                        "sit run: {}: {} price entries recorded in the book (v{}-v{})",
                        path.display(),
                        new.len(),
                        new[0].version,
                        new[new.len() - 1].version
                    ),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::error!(
                            "sit run: recording {}'s prices failed: {e}",
                            path.display()
                        )
                    }
                }
            }
            Err(e) => tracing::error!("sit run: {e}; the price book stays as it is"),
        }
    }

    /// Publish a finished day: each tier not yet published, then the reveal of its schedule
    /// seed (`secret`: seed and salt, hex; None where the day had no committed schedule
    /// here), then the bundle, then the listed futures' settlement. Blocking. Returns one
    /// line per tier published.
    pub fn publish_day(
        &self,
        day: Date,
        secret: Option<(&str, &str)>,
    ) -> Result<Vec<String>, DayError> {
        self.publish_day_bundling(day, secret, true)
    }

    /// [`DayPublisher::publish_day`], writing the day's bundle only with `bundle` (a collector
    /// that determined the day without a vantage's reveal writes it once the reveal is in,
    /// so that the bundle can show that vantage's schedule: [`DayPublisher::write_bundle`]).
    pub fn publish_day_bundling(
        &self,
        day: Date,
        secret: Option<(&str, &str)>,
        bundle: bool,
    ) -> Result<Vec<String>, DayError> {
        let _one = self.publishing.lock().unwrap_or_else(|p| p.into_inner());
        self.reread_prices();
        let suite = Suite::embedded();
        let entries = self
            .archive
            .entries()
            .map_err(archive_err("reading the archive"))?;
        let ceased = self.ceased(day)?;
        let mut lines = Vec::new();
        for tier in suite.tier_ids() {
            if entries.iter().any(|e| e.tier == tier && e.date == day) {
                continue;
            }
            if ceased.contains(&tier) {
                tracing::info!(
                    "sit run: {tier} {day} is not determined: the tier has ceased by notice (GET /v1/notices)"
                );
                continue;
            }
            let p = self.publish(&tier, day)?;
            let line = p.line();
            tracing::info!("sit run: published {line}");
            lines.push(line);
        }
        if let Some((seed, salt)) = secret {
            self.reveal(day, seed, salt)?;
        }
        if bundle {
            self.write_bundle(day)?;
        }
        self.settle(day);
        // the day's transient structures are gone: their memory goes back to the system
        crate::sys::mem::release_free();
        Ok(lines)
    }

    /// Recompute `tier`'s `day` now and restate it if the policy allows: the restatement path
    /// of an upheld dispute (issue 30; the observations the register voids are left out).
    /// A restated day's audit bundle is written again, so that it carries the new record.
    /// One publication at a time, like a day's own.
    pub fn restate_now(&self, tier: &str, day: Date) -> Result<Published, DayError> {
        let _one = self.publishing.lock().unwrap_or_else(|p| p.into_inner());
        if !self.archive.may_write() {
            return Err(DayError::Archive {
                what: format!("restating {tier} {day}"),
                source: ArchiveError::Replica(
                    "this collector does not hold the publisher's lease".into(),
                ),
            });
        }
        self.reread_prices();
        let p = self.publish(tier, day)?;
        tracing::info!("sit run: restated after an upheld dispute: {}", p.line());
        // the restatement is published whatever follows: a bundle not rewritten is written
        // by the next pass, and the period to date is settled again now
        if let Err(e) = self.rewrite_bundle(day) {
            tracing::error!("sit run: {day} restated, but its bundle was not written again: {e}");
        }
        self.settle(day);
        Ok(p)
    }

    /// Write `day`'s audit bundle again (after a restatement): the old one is moved aside, the
    /// new one written (aside, then renamed into place), the old one removed. A kill in
    /// between leaves no bundle, which the next pass writes (the day is not `finished` without
    /// one).
    fn rewrite_bundle(&self, day: Date) -> Result<(), DayError> {
        let out = layout::bundle(&self.data, day);
        if out.exists() {
            let old = out.with_file_name(format!(".{day}.superseded"));
            if old.exists() {
                std::fs::remove_dir_all(&old)?;
            }
            std::fs::rename(&out, &old)?;
            self.write_bundle(day)?;
            std::fs::remove_dir_all(&old)?;
            return Ok(());
        }
        self.write_bundle(day)
    }

    /// Write `day`'s audit bundle from this folder's store and archive, unless it exists.
    pub fn write_bundle(&self, day: Date) -> Result<(), DayError> {
        let out = layout::bundle(&self.data, day);
        if !out.exists() {
            // Written aside and renamed into place: a bundle cut short by a kill is never
            // taken for a finished one, and is written again from the start.
            let tmp = layout::bundle_partial(&self.data, day);
            if tmp.exists() {
                std::fs::remove_dir_all(&tmp)?;
            }
            let e = crate::audit::bundle::export(
                &self.store,
                &self.archive,
                self.registry,
                day,
                &tmp,
                self.clock.now_ms(),
            )
            .map_err(|e| DayError::Bundle {
                day,
                why: e.to_string(),
            })?;
            if e.late_records > 0 {
                tracing::warn!(
                    "sit run: {day}: {} records of the day were stored after it was determined (a late vantage's); in its bundle but not its inputs (a recomputation before the cutoff takes them in)",
                    e.late_records
                );
            }
            // each value's interval, signed, once the bundle replays identically
            match crate::audit::bundle::add_intervals(&tmp, &self.key) {
                Ok(_) => {}
                Err(e) => tracing::warn!("sit run: {day}: the bundle carries no intervals: {e}"),
            }
            crate::sys::durable::rename_into_place(&tmp, &out)?;
        }
        Ok(())
    }

    /// The tiers that have ceased by notice at `day`'s start (none in a folder without
    /// notices).
    fn ceased(&self, day: Date) -> Result<std::collections::BTreeSet<String>, DayError> {
        crate::publisher::notices::in_force(&self.archive, day.start_ms())
            .map(|s| s.map(|s| s.ceased).unwrap_or_default())
            .map_err(|e| DayError::Notices(e.to_string()))
    }

    /// Whether every tier of `day` (but those ceased by notice) is published and its audit
    /// bundle written.
    pub fn finished(&self, day: Date) -> Result<bool, DayError> {
        Ok(self.published(day)? && layout::bundle(&self.data, day).exists())
    }

    /// Whether every tier of `day` (but those ceased by notice) is published.
    pub fn published(&self, day: Date) -> Result<bool, DayError> {
        let suite = Suite::embedded();
        let ceased = self.ceased(day)?;
        let entries = self
            .archive
            .entries()
            .map_err(archive_err("reading the archive"))?;
        Ok(suite
            .tier_ids()
            .iter()
            .filter(|t| !ceased.contains(*t))
            .all(|t| entries.iter().any(|e| e.tier == *t && e.date == day)))
    }

    /// Settle the listed futures as of the latest published day (after an attestation
    /// arrives: a FINAL record waiting for it is signed now, not at the next publication).
    pub fn settle_latest(&self) {
        let _one = self.publishing.lock().unwrap_or_else(|p| p.into_inner());
        if !self.archive.may_write() {
            return;
        }
        if let Some(day) = self
            .archive
            .entries()
            .ok()
            .and_then(|es| es.iter().map(|e| e.date).max())
        {
            self.settle(day);
        }
    }

    /// Settle the listed futures after `day`'s publication: the period holding it to date
    /// (INDICATIVE) and every period whose final settlement time has passed (FINAL, once). A
    /// failure is logged and tried again after the next publication: it never stops the index.
    fn settle(&self, day: Date) {
        // Only the contracts a notice lists at the day's start (all of contracts.toml in a
        // folder without notices); one configured but not listed is held, like a panel change.
        let listed = match crate::publisher::notices::in_force(&self.archive, day.start_ms()) {
            Ok(Some(state)) => {
                let (listed, held): (Vec<_>, Vec<_>) = self
                    .contracts
                    .iter()
                    .cloned()
                    .partition(|c| state.contracts.contains(&c.id));
                for c in held {
                    tracing::info!(
                        "sit run: contract {} is in contracts.toml but not listed by a notice in force on {day}: held, not settled (sit notice draft --class minor --list-contract {} ...)",
                        c.id,
                        c.id
                    );
                }
                listed
            }
            Ok(None) => self.contracts.as_ref().clone(),
            Err(e) => {
                tracing::error!("sit run: settling after {day}: reading the notices: {e}");
                return;
            }
        };
        match super::settle::settle_due(
            &self.archive,
            &listed,
            &self.key,
            day,
            self.clock.now_ms(),
        ) {
            Ok(lines) => {
                for l in lines {
                    tracing::info!("sit run: settlement {l}");
                }
            }
            Err(e) => tracing::error!(
                "sit run: settling the listed contracts after {day} failed: reading the archive: {e}"
            ),
        }
    }

    /// Reveal `day`'s schedule seed and salt (hex), once.
    pub fn reveal(&self, day: Date, seed: &str, salt: &str) -> Result<(), DayError> {
        if self.archive.reveal(day).is_none() {
            self.archive
                .put_reveal(&sit_core::commit::sign(
                    &Reveal {
                        date: day,
                        seed: seed.to_string(),
                        salt: salt.to_string(),
                        revealed_at: format_utc_ms(self.clock.now_ms()),
                        key_id: None,
                        signature: None,
                    },
                    &self.key,
                ))
                .map_err(archive_err(format!("revealing {day}")))?;
        }
        Ok(())
    }

    /// Just before `day`'s restatement window closes, recompute each tier once more and
    /// restate it if the policy allows (a material change on a full day); otherwise the
    /// record in force stands, and the log says why. A day never published is left alone.
    pub async fn restate_before_cutoff(self, day: Date) {
        let m = Methodology::default();
        let at = policy::cutoff_ms(&m, day) - RESTATE_BEFORE_CUTOFF_MS;
        if self.clock.now_ms() >= at {
            return;
        }
        tokio::time::sleep(self.clock.real_until(at)).await;
        let _ = tokio::task::spawn_blocking(move || self.restate(day)).await;
    }

    fn restate(&self, day: Date) {
        let _one = self.publishing.lock().unwrap_or_else(|p| p.into_inner());
        if !self.archive.may_write() {
            tracing::info!(
                "sit collect: {day} is not recomputed before its cutoff here: another collector publishes"
            );
            return;
        }
        self.reread_prices();
        let Ok(entries) = self.archive.entries() else {
            return;
        };
        for tier in Suite::embedded().tier_ids() {
            if !entries.iter().any(|e| e.tier == tier && e.date == day) {
                continue;
            }
            let r = self.publish(&tier, day);
            match r {
                Ok(p) => tracing::info!("sit run: restated at the cutoff: {}", p.line()),
                Err(PublishError::Refused(policy::Refusal::Unchanged { version, .. })) => tracing::info!(
                    "sit run: recomputed {tier} {day} before its cutoff: unchanged, version {version} stands"
                ),
                Err(PublishError::Refused(why)) => {
                    tracing::info!("sit run: recomputed {tier} {day} before its cutoff: {why}")
                }
                Err(e) => tracing::error!("sit run: recomputing {tier} {day} before its cutoff failed: {e}"),
            }
        }
    }
}
