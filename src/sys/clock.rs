//! The [`Clock`] that stamps attempts (UTC days and timestamps are `sit_core::time`'s).
//!
//! Computations never read the clock: they take timestamps as input. Only the worker asks a
//! [`Clock`] "what time is it", and the record says which clock answered, so a compressed demo
//! run is never mistaken for a real-time one. Latency is always measured with the monotonic
//! [`std::time::Instant`], never with this clock.

use serde::{Deserialize, Serialize};
use sit_core::time::{format_utc_ms, Date, HOUR_MS};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where attempt timestamps come from.
pub trait Clock: Send + Sync {
    /// Current UTC time in milliseconds, as this clock sees it.
    fn now_ms(&self) -> i64;
    /// The real duration until this clock reads `target_ms` (zero if already past).
    fn real_until(&self, target_ms: i64) -> Duration;
    /// A short description recorded in every observation (`system`, `compressed:...`).
    fn describe(&self) -> String;
}

/// The machine's UTC clock.
#[derive(Debug, Default, Clone)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
    fn real_until(&self, target_ms: i64) -> Duration {
        Duration::from_millis((target_ms - self.now_ms()).max(0) as u64)
    }
    fn describe(&self) -> String {
        "system".into()
    }
}

/// A simulated clock that runs `factor` times faster than real time from `sim_start_ms`.
///
/// The demo uses it to fit days of hourly partitions into minutes. Probe *timestamps* are
/// compressed; probe *latencies* are still measured in real time, so SLAs stay honest.
#[derive(Debug, Clone)]
pub struct CompressedClock {
    real_start: Instant,
    sim_start_ms: i64,
    factor: u64,
}

impl CompressedClock {
    pub fn new(sim_start_ms: i64, factor: u64) -> Self {
        CompressedClock {
            real_start: Instant::now(),
            sim_start_ms,
            factor: factor.max(1),
        }
    }
}

impl Clock for CompressedClock {
    fn now_ms(&self) -> i64 {
        let real = self.real_start.elapsed().as_micros() as i64;
        self.sim_start_ms + real * self.factor as i64 / 1000
    }
    fn real_until(&self, target_ms: i64) -> Duration {
        let sim_ahead_ms = target_ms - self.now_ms();
        if sim_ahead_ms <= 0 {
            return Duration::ZERO;
        }
        Duration::from_micros(sim_ahead_ms as u64 * 1000 / self.factor)
    }
    fn describe(&self) -> String {
        format!(
            "compressed:{}x from {}",
            self.factor,
            format_utc_ms(self.sim_start_ms)
        )
    }
}

/// A compressed clock anchored to the machine's UTC clock instead of to the process: it reads
/// `sim_start_ms + (unix_now - real_anchor_ms) * factor`. `sit run` writes the anchor into the
/// data folder at first start, so a restarted service continues the same simulated timeline
/// (time passes while it is down, as it does in production).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AnchoredClock {
    pub real_anchor_ms: i64,
    pub sim_start_ms: i64,
    pub factor: u64,
}

impl Clock for AnchoredClock {
    fn now_ms(&self) -> i64 {
        let real_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(0)
            - self.real_anchor_ms * 1000;
        self.sim_start_ms + real_us * self.factor.max(1) as i64 / 1000
    }
    fn real_until(&self, target_ms: i64) -> Duration {
        let ahead = target_ms - self.now_ms();
        if ahead <= 0 {
            return Duration::ZERO;
        }
        Duration::from_micros(ahead as u64 * 1000 / self.factor.max(1))
    }
    fn describe(&self) -> String {
        format!(
            "compressed:{}x from {}",
            self.factor.max(1),
            format_utc_ms(self.sim_start_ms)
        )
    }
}

/// A clock that always reads the same instant: how tests publish "at" a given time (the
/// binary has no flag for it; publication time comes from the clock only).
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub i64);

impl Clock for FixedClock {
    fn now_ms(&self) -> i64 {
        self.0
    }
    fn real_until(&self, _target_ms: i64) -> Duration {
        Duration::ZERO
    }
    fn describe(&self) -> String {
        format!("fixed:{}", format_utc_ms(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_clock_maps_sim_to_real() {
        let c = CompressedClock::new(1_000_000, 1000);
        // 1000 sim seconds ahead is one real second away
        let d = c.real_until(c.now_ms() + 1_000_000);
        assert!(d <= Duration::from_secs(1) && d > Duration::from_millis(900));
        assert!(c.describe().starts_with("compressed:1000x"));
    }
}

/// Why a data folder's clock cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum FolderClockError {
    /// The clock asked for is not the folder's, or the flags do not make a clock.
    #[error("{0}")]
    Usage(String),
    /// The folder's clock file does not parse.
    #[error("{0}")]
    Damaged(String),
    /// The clock file could not be written.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// The clock a data folder runs on, fixed at its first `sit run`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
enum RunClock {
    System,
    Compressed(AnchoredClock),
}

/// The clock of the data folder `data`, kept in `path` (its `run-clock.json`): the one recorded
/// at its first run (`sit run`, `sit collect`), which later runs must ask for again (a
/// compressed and a real-time timeline never mix in one store). `start` and `hour_ms` ask for
/// a compressed clock, neither for the system clock; `new_timeline` re-anchors a compressed
/// one. Returns the clock and whether it was anchored now (a timeline that begins now).
pub fn folder_clock(
    data: &Path,
    path: &Path,
    start: Option<Date>,
    hour_ms: Option<u64>,
    new_timeline: bool,
) -> Result<(Arc<dyn Clock>, bool), FolderClockError> {
    let wanted = match (start, hour_ms) {
        (None, None) => RunClock::System,
        (Some(start), Some(ms)) if ms > 0 => RunClock::Compressed(AnchoredClock {
            real_anchor_ms: SystemClock.now_ms(),
            sim_start_ms: start.start_ms(),
            factor: (HOUR_MS as u64 / ms).max(1),
        }),
        _ => {
            return Err(FolderClockError::Usage(
                "--start and --hour-ms go together (a compressed clock), and --hour-ms must be at least 1; give neither for the system clock".into(),
            ))
        }
    };
    let (clock, fresh) = match std::fs::read(path) {
        Ok(bytes) => {
            let kept: RunClock = serde_json::from_slice(&bytes).map_err(|e| {
                FolderClockError::Damaged(format!("{} is damaged: {e}", path.display()))
            })?;
            if new_timeline && matches!(kept, RunClock::Compressed(_)) {
                let bytes = serde_json::to_vec_pretty(&wanted).expect("json");
                super::durable::replace(path, &bytes, super::durable::Access::Shared)?;
                return Ok((into_clock(wanted), true));
            }
            let same = match (&kept, &wanted) {
                (RunClock::System, RunClock::System) => true,
                (RunClock::Compressed(a), RunClock::Compressed(b)) => {
                    a.sim_start_ms == b.sim_start_ms && a.factor == b.factor
                }
                _ => false,
            };
            if !same {
                return Err(FolderClockError::Usage(format!(
                    "{} was first run with another clock ({}); run it with the same --start/--hour-ms (or none), or use a new --data folder",
                    data.display(),
                    describe(&kept)
                )));
            }
            (kept, false)
        }
        Err(_) => {
            let bytes = serde_json::to_vec_pretty(&wanted).expect("json");
            super::durable::replace(path, &bytes, super::durable::Access::Shared)?;
            (wanted, true)
        }
    };
    Ok((into_clock(clock), fresh))
}

/// The clock a data folder runs on, as its clock file (`path`) records it, without anchoring
/// anything: the system clock when the folder has none yet. How a command that only reads the
/// time (`sit notice publish`) takes it from the same timeline as the service.
pub fn recorded_clock(path: &Path) -> Result<Arc<dyn Clock>, FolderClockError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let kept: RunClock = serde_json::from_slice(&bytes).map_err(|e| {
                FolderClockError::Damaged(format!("{} is damaged: {e}", path.display()))
            })?;
            Ok(into_clock(kept))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Arc::new(SystemClock)),
        Err(e) => Err(e.into()),
    }
}

fn into_clock(c: RunClock) -> Arc<dyn Clock> {
    match c {
        RunClock::System => Arc::new(SystemClock),
        RunClock::Compressed(c) => Arc::new(c),
    }
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
