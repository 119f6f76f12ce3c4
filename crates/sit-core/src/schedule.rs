//! The probe schedule of a day: which probe goes to which endpoint when. Pure.
//!
//! Anti-gaming: times are uniformly random within each hourly partition (never aligned to the
//! clock) and prompts come from fresh seeds; everything derives from the day seed, so the
//! schedule is replayable once the seed is revealed, and cannot be predicted before.

use crate::probes::{Family, Suite};
use crate::rng::Rng;
use crate::time::{Date, HOUR_MS};

/// One scheduled probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub at_ms: i64,
    pub endpoint: usize,
    pub tier: usize,
    pub family: Family,
    pub seed: u64,
    pub nonce: String,
}

/// A day seed derived from a master seed (tests only: `sit run` draws each day's seed fresh
/// from the OS, so one leaked day reveals nothing about another).
#[cfg(test)]
fn day_seed(master: u64, date: Date) -> u64 {
    Rng::from_bytes(&[
        b"sit-day-seed",
        &master.to_le_bytes(),
        date.to_string().as_bytes(),
    ])
    .next_u64()
}

/// `per_hour` probes per (endpoint, tier, hour), at random times, sorted by time.
pub fn day_schedule(
    suite: &Suite,
    endpoints: usize,
    date: Date,
    seed: u64,
    per_hour: u32,
) -> Vec<Slot> {
    let mut r = Rng::new(seed);
    let mut out = Vec::with_capacity(endpoints * suite.tiers.len() * 24 * per_hour as usize);
    for h in 0..24i64 {
        for e in 0..endpoints {
            for (t, tier) in suite.tiers.iter().enumerate() {
                for _ in 0..per_hour {
                    // keep clear of the last 0.5% of the hour so send jitter cannot cross it
                    let off = r.range(0, HOUR_MS * 995 / 1000);
                    let fam = Family::from_id(r.pick(&tier.families).as_str())
                        .expect("suite families are known");
                    out.push(Slot {
                        at_ms: date.start_ms() + h * HOUR_MS + off,
                        endpoint: e,
                        tier: t,
                        family: fam,
                        seed: r.next_u64(),
                        nonce: r.hex(8),
                    });
                }
            }
        }
    }
    out.sort_by_key(|a| (a.at_ms, a.endpoint, a.tier));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_is_seeded_random_within_hours_and_complete() {
        let s = Suite::embedded();
        let d = Date::parse("2026-01-05").unwrap();
        let a = day_schedule(s, 4, d, day_seed(1, d), 3);
        assert_eq!(a, day_schedule(s, 4, d, day_seed(1, d), 3));
        assert_ne!(a, day_schedule(s, 4, d, day_seed(2, d), 3));
        assert_eq!(a.len(), 24 * 4 * 3 * 3);
        for h in 0..24 {
            for e in 0..4 {
                let n = a
                    .iter()
                    .filter(|x| x.endpoint == e && (x.at_ms - d.start_ms()) / HOUR_MS == h)
                    .count();
                assert_eq!(n, 9);
            }
        }
        // not aligned to the clock: few times on whole minutes
        let aligned = a.iter().filter(|x| x.at_ms % 60_000 == 0).count();
        assert!(aligned < 5);
    }
}
