//! The [`Clock`] that stamps attempts (UTC days and timestamps are `sit_core::time`'s).
//!
//! Computations never read the clock: they take timestamps as input. Only the worker asks a
//! [`Clock`] "what time is it", and the record says which clock answered, so a compressed demo
//! run is never mistaken for a real-time one. Latency is always measured with the monotonic
//! [`std::time::Instant`], never with this clock.

pub use sit_core::time::*;
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
