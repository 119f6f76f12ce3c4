//! What a running `sit run` knows about itself, for `/healthz` and `/metrics` when it serves
//! in the same process (`--serve`).
//!
//! Health must mean something to whoever is paged by it, so it is judged on the service's own
//! clock (compressed or real), from two facts an operator cannot see from outside:
//! - probes are due (scheduled at or before now and not yet observed) and no observation has
//!   been recorded for [`SILENCE_MS`]: the worker is stuck, the store is not writing, or every
//!   provider hangs;
//! - a day ended more than [`PUBLICATION_GRACE_MS`] ago and is not yet published: the
//!   watermark never came, or publication fails.
//!
//! Counters are fed by the recorder's acknowledgement hook, so they count only what is durable.

use crate::sys::clock::Clock;
use sit_core::observation::Observation;
use sit_core::time::{format_utc_ms, Date};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};

/// No observation for this long (service clock) while probes are due: unhealthy.
pub const SILENCE_MS: i64 = 10 * 60 * 1000;
/// A day not published this long after it ended (service clock): unhealthy.
pub const PUBLICATION_GRACE_MS: i64 = 60 * 60 * 1000;

/// The running service's state, shared with the HTTP server.
pub struct Status {
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    started_ms: i64,
    last_obs_ms: Option<i64>,
    /// Recorded observations by (endpoint, class); class `ok` when the attempt did not fail.
    probes: BTreeMap<(String, String), u64>,
    missed: u64,
    /// Recorded observations whose stream totals contradicted the endpoint's configured
    /// reasoning convention, by endpoint.
    conflicts: BTreeMap<String, u64>,
    /// The day being probed and the times of the probes this run sends for it (sorted).
    day: Option<Date>,
    due: Vec<i64>,
    /// First attempts of `due` recorded so far.
    sent: usize,
    /// The oldest day that ended and is not yet published.
    unpublished: Option<Date>,
    /// The last day published: (day, milliseconds from its end to its publication).
    last_publication: Option<(Date, i64)>,
    /// Panel changes in providers.toml that no notice in force covers (held, not applied).
    held: Vec<String>,
}

impl Status {
    pub fn new(clock: Arc<dyn Clock>, started_ms: i64) -> Arc<Status> {
        Arc::new(Status {
            clock,
            inner: Mutex::new(Inner {
                started_ms,
                ..Inner::default()
            }),
        })
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The recorder acknowledged `o` (it is durable).
    pub fn recorded(&self, o: &Observation) {
        let mut i = self.inner();
        let class = match &o.failure {
            None => "ok",
            Some(f) => f.class.as_str(),
        };
        *i.probes
            .entry((o.endpoint.clone(), class.to_string()))
            .or_default() += 1;
        if o.tokens.convention_conflict() {
            *i.conflicts.entry(o.endpoint.clone()).or_default() += 1;
        }
        if o.missed() {
            i.missed += 1;
            return;
        }
        i.last_obs_ms = Some(self.clock.now_ms());
        if o.retry == 0 && i.day == Some(Date::of_ms(o.at_ms)) {
            i.sent += 1;
        }
    }

    /// Probing of `day` starts: `due` are the times of the probes this run will send.
    pub fn probing(&self, day: Date, mut due: Vec<i64>) {
        due.sort_unstable();
        let mut i = self.inner();
        i.day = Some(day);
        i.due = due;
        i.sent = 0;
    }

    /// `day` ended and waits for its publication (kept if an older day still waits).
    pub fn awaiting(&self, day: Date) {
        let mut i = self.inner();
        i.day = None;
        i.due.clear();
        if i.unpublished.is_none_or(|d| d > day) {
            i.unpublished = Some(day);
        }
    }

    /// Every record of `day` is published (at `now_ms`).
    pub fn published(&self, day: Date, now_ms: i64) {
        let mut i = self.inner();
        if i.unpublished == Some(day) {
            i.unpublished = None;
        }
        i.last_publication = Some((day, now_ms - day.succ().start_ms()));
    }

    /// The panel changes held on the day being committed (see [`Inner::held`]).
    pub fn held(&self, what: Vec<String>) {
        self.inner().held = what;
    }

    /// Why the service is unhealthy, if it is, with the facts behind the judgement.
    pub fn health(&self) -> (Vec<String>, serde_json::Value) {
        let now = self.clock.now_ms();
        let i = self.inner();
        let mut reasons = Vec::new();
        let due_now = i.due.partition_point(|&t| t <= now);
        let outstanding = due_now.saturating_sub(i.sent);
        let quiet_since = i.last_obs_ms.unwrap_or(i.started_ms);
        if outstanding > 0 && now - quiet_since > SILENCE_MS {
            reasons.push(format!(
                "no observation recorded since {} ({} min of the service's clock) while {outstanding} scheduled probes are due",
                format_utc_ms(quiet_since),
                (now - quiet_since) / 60_000
            ));
        }
        if let Some(d) = i.unpublished {
            let late = now - d.succ().start_ms();
            if late > PUBLICATION_GRACE_MS {
                reasons.push(format!(
                    "{d} ended {} min ago (service clock) and is not yet published",
                    late / 60_000
                ));
            }
        }
        let facts = serde_json::json!({
            "clock": self.clock.describe(),
            "now": format_utc_ms(now),
            "probing": i.day.map(|d| d.to_string()),
            "probes_due_outstanding": outstanding,
            "last_observation": i.last_obs_ms.map(format_utc_ms),
            "missed": i.missed,
            "awaiting_publication": i.unpublished.map(|d| d.to_string()),
            "last_published_day": i.last_publication.map(|(d, _)| d.to_string()),
            "held_panel_changes": i.held,
        });
        (reasons, facts)
    }

    /// Prometheus text lines of the service (appended to the server's own).
    pub fn metrics(&self, s: &mut String) {
        let now = self.clock.now_ms();
        let i = self.inner();
        s.push_str("# HELP sit_run_probes_total Recorded probe attempts by endpoint and class (ok, a failure class, or missed).\n# TYPE sit_run_probes_total counter\n");
        for ((e, c), n) in &i.probes {
            let _ = writeln!(
                s,
                "sit_run_probes_total{{endpoint=\"{}\",class=\"{c}\"}} {n}",
                label(e)
            );
        }
        let _ = writeln!(s, "# HELP sit_run_missed_probes_total Scheduled probes recorded as missed (not sent: the service was down, or the endpoint is gone).\n# TYPE sit_run_missed_probes_total counter\nsit_run_missed_probes_total {}", i.missed);
        s.push_str("# HELP sit_run_reasoning_convention_conflicts_total Recorded attempts whose stream totals said the opposite of the endpoint's configured reasoning convention (billed by the totals): a provider changed its accounting, or providers.toml is wrong.\n# TYPE sit_run_reasoning_convention_conflicts_total counter\n");
        for (e, n) in &i.conflicts {
            let _ = writeln!(
                s,
                "sit_run_reasoning_convention_conflicts_total{{endpoint=\"{}\"}} {n}",
                label(e)
            );
        }
        let due_now = i.due.partition_point(|&t| t <= now);
        let _ = writeln!(s, "# HELP sit_run_probes_due_outstanding Probes of the current day scheduled at or before now and not yet recorded.\n# TYPE sit_run_probes_due_outstanding gauge\nsit_run_probes_due_outstanding {}", due_now.saturating_sub(i.sent));
        if let Some(t) = i.last_obs_ms {
            let _ = writeln!(s, "# HELP sit_run_last_observation_age_seconds Service-clock seconds since the last recorded observation.\n# TYPE sit_run_last_observation_age_seconds gauge\nsit_run_last_observation_age_seconds {}", (now - t).max(0) / 1000);
        }
        if let Some((d, lag)) = i.last_publication {
            let _ = writeln!(s, "# HELP sit_run_publication_lag_seconds Service-clock seconds from the end of the last published day to its publication.\n# TYPE sit_run_publication_lag_seconds gauge\nsit_run_publication_lag_seconds{{date=\"{d}\"}} {}", lag.max(0) / 1000);
        }
        let waiting = i
            .unpublished
            .map_or(0, |d| (now - d.succ().start_ms()).max(0) / 1000);
        let _ = writeln!(s, "# HELP sit_run_unpublished_age_seconds Service-clock seconds since the oldest ended, unpublished day ended (0: none waits).\n# TYPE sit_run_unpublished_age_seconds gauge\nsit_run_unpublished_age_seconds {waiting}");
    }
}

/// A Prometheus label value: backslash, quote and newline escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicI64, Ordering};

    /// A clock the test sets by hand.
    struct Manual(AtomicI64);
    impl Clock for Manual {
        fn now_ms(&self) -> i64 {
            self.0.load(Ordering::SeqCst)
        }
        fn real_until(&self, _: i64) -> std::time::Duration {
            std::time::Duration::ZERO
        }
        fn describe(&self) -> String {
            "manual".into()
        }
    }

    fn obs(at_ms: i64, retry: u32) -> Observation {
        let mut o = crate::worker::sample_observation();
        o.at_ms = at_ms;
        o.retry = retry;
        o.failure = None;
        o
    }

    #[test]
    fn silence_while_probes_are_due_is_unhealthy_and_an_idle_hour_is_not() {
        let day = Date::parse("2026-01-05").unwrap();
        let t0 = day.start_ms();
        let clock = Arc::new(Manual(AtomicI64::new(t0)));
        let s = Status::new(clock.clone(), t0);
        s.probing(day, vec![t0 + 60_000, t0 + 2 * 3_600_000]);
        // Nothing due for the first two hours but one probe, which was recorded.
        clock.0.store(t0 + 70_000, Ordering::SeqCst);
        s.recorded(&obs(t0 + 60_000, 0));
        clock.0.store(t0 + 3_600_000, Ordering::SeqCst);
        assert!(s.health().0.is_empty(), "idle between probes is healthy");
        // The second probe is due and nothing arrives for 10 minutes and a millisecond.
        clock
            .0
            .store(t0 + 70_000 + SILENCE_MS + 1, Ordering::SeqCst);
        assert!(s.health().0.is_empty(), "not yet due");
        clock.0.store(t0 + 2 * 3_600_000 + 1, Ordering::SeqCst);
        let (why, facts) = s.health();
        assert_eq!(why.len(), 1, "{why:?}");
        assert!(why[0].contains("1 scheduled probes are due"), "{why:?}");
        assert_eq!(facts["probes_due_outstanding"], 1);
        // A retry does not count as the due probe; its first attempt does.
        s.recorded(&obs(t0 + 2 * 3_600_000, 0));
        assert!(s.health().0.is_empty());
    }

    #[test]
    fn a_day_unpublished_an_hour_after_its_end_is_unhealthy() {
        let day = Date::parse("2026-01-05").unwrap();
        let end = day.succ().start_ms();
        let clock = Arc::new(Manual(AtomicI64::new(end)));
        let s = Status::new(clock.clone(), day.start_ms());
        s.awaiting(day);
        clock.0.store(end + PUBLICATION_GRACE_MS, Ordering::SeqCst);
        assert!(
            s.health().0.is_empty(),
            "exactly at the grace: still healthy"
        );
        clock
            .0
            .store(end + PUBLICATION_GRACE_MS + 1, Ordering::SeqCst);
        let (why, _) = s.health();
        assert!(why[0].contains("2026-01-05 ended 60 min ago"), "{why:?}");
        s.published(day, end + PUBLICATION_GRACE_MS + 1);
        assert!(s.health().0.is_empty());
        let mut m = String::new();
        s.metrics(&mut m);
        assert!(
            m.contains("sit_run_publication_lag_seconds{date=\"2026-01-05\"} 3600"),
            "{m}"
        );
        assert!(m.contains("sit_run_unpublished_age_seconds 0"), "{m}");
    }

    #[test]
    fn metrics_count_probes_by_endpoint_and_class() {
        let day = Date::parse("2026-01-05").unwrap();
        let clock = Arc::new(Manual(AtomicI64::new(day.start_ms())));
        let s = Status::new(clock, day.start_ms());
        let mut o = obs(day.start_ms(), 0);
        o.endpoint = "a\"b".into();
        s.recorded(&o);
        s.recorded(&o);
        let mut m = String::new();
        s.metrics(&mut m);
        assert!(
            m.contains("sit_run_probes_total{endpoint=\"a\\\"b\",class=\"ok\"} 2"),
            "{m}"
        );
        assert!(m.contains("sit_run_missed_probes_total 0"), "{m}");
        assert!(
            !m.contains("sit_run_reasoning_convention_conflicts_total{"),
            "{m}"
        );
        // a stream whose totals contradict the configured convention is counted
        o.tokens.reasoning_in_output = Some(true);
        o.tokens.reasoning_from_totals = Some(false);
        s.recorded(&o);
        o.tokens.reasoning_from_totals = Some(true);
        s.recorded(&o);
        let mut m = String::new();
        s.metrics(&mut m);
        assert!(
            m.contains("sit_run_reasoning_convention_conflicts_total{endpoint=\"a\\\"b\"} 1"),
            "{m}"
        );
    }
}
