//! Per-endpoint request pacing: at most `requests_per_minute` request starts per minute.
//!
//! Why a pacer and not a window counter: providers enforce their limits as token buckets that
//! refill continuously, so a burst of a whole minute's allowance in the first second is exactly
//! what earns 429s. Spacing starts evenly (one every `60 s / rpm`) never exceeds the limit in
//! any window and keeps the probe's own load out of the measured latency. Retries go through
//! the same pacer: they are requests like any other.

use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Hands out evenly spaced start instants; shared by every task probing one endpoint.
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    next: Mutex<Option<Instant>>,
}

impl Pacer {
    /// A pacer for `rpm` requests per minute; `None` (no pacing) when `rpm` is `None`.
    pub fn new(rpm: Option<u32>) -> Option<Pacer> {
        let rpm = rpm.filter(|&r| r > 0)?;
        Some(Pacer {
            interval: Duration::from_micros(60_000_000 / rpm as u64),
            next: Mutex::new(None),
        })
    }

    /// The spacing between two request starts.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Reserve the next start slot and sleep until it. Slots are handed out in call order; a
    /// caller that arrives after a quiet spell starts at once.
    pub async fn wait(&self) {
        let slot = {
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let slot = next.map_or(now, |n| n.max(now));
            *next = Some(slot + self.interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_start_one_interval_apart() {
        let p = Arc::new(Pacer::new(Some(600)).unwrap()); // one every 100 ms
        assert_eq!(p.interval(), Duration::from_millis(100));
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let p = p.clone();
            tasks.push(tokio::spawn(async move {
                p.wait().await;
                Instant::now() - t0
            }));
        }
        let mut starts = Vec::new();
        for t in tasks {
            starts.push(t.await.unwrap());
        }
        starts.sort();
        let ms: Vec<u128> = starts.iter().map(|d| d.as_millis()).collect();
        assert_eq!(ms, vec![0, 100, 200, 300, 400]);
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_quiet_spell_the_next_request_starts_at_once() {
        let p = Pacer::new(Some(60)).unwrap(); // one per second
        p.wait().await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let t = Instant::now();
        p.wait().await;
        assert_eq!(
            Instant::now() - t,
            Duration::ZERO,
            "no debt from the quiet spell"
        );
        let t = Instant::now();
        p.wait().await;
        assert_eq!(Instant::now() - t, Duration::from_secs(1));
    }

    #[test]
    fn no_limit_means_no_pacer() {
        assert!(Pacer::new(None).is_none());
        assert!(Pacer::new(Some(0)).is_none());
        // integer microseconds: 7 per minute is 8.571428 s
        assert_eq!(
            Pacer::new(Some(7)).unwrap().interval(),
            Duration::from_micros(8_571_428)
        );
    }
}
