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

/// Schedule version 1: each endpoint's probes drawn independently.
pub const SCHEDULE_INDEPENDENT: u32 = 1;
/// Schedule version 2 (`sit run` from issue 12): paired probes.
pub const SCHEDULE_PAIRED: u32 = 2;

/// The day's schedule under a schedule version (recorded in the day's commitment).
pub fn schedule(
    suite: &Suite,
    endpoints: usize,
    date: Date,
    seed: u64,
    per_hour: u32,
    version: u32,
) -> Vec<Slot> {
    match version {
        SCHEDULE_INDEPENDENT => day_schedule(suite, endpoints, date, seed, per_hour),
        _ => paired_schedule(suite, endpoints, date, seed, per_hour),
    }
}

/// Paired probes: in each hour of each tier, every endpoint gets the same `per_hour` (family,
/// seed) probes, each with its own nonce and its own random send time. Why: drawn
/// independently, one endpoint could be priced on a long retrieval prompt and another on a
/// one-line sum in the same hour; paired, every endpoint does the same work, so price
/// relatives compare like with like and a provider cannot be lucky in its draw.
pub fn paired_schedule(
    suite: &Suite,
    endpoints: usize,
    date: Date,
    seed: u64,
    per_hour: u32,
) -> Vec<Slot> {
    let mut r = Rng::from_bytes(&[b"sit-schedule-paired-v2", &seed.to_le_bytes()]);
    let mut out = Vec::with_capacity(endpoints * suite.tiers.len() * 24 * per_hour as usize);
    for h in 0..24i64 {
        for (t, tier) in suite.tiers.iter().enumerate() {
            let probes: Vec<(Family, u64)> = (0..per_hour)
                .map(|_| {
                    let fam = Family::from_id(r.pick(&tier.families).as_str())
                        .expect("suite families are known");
                    (fam, r.next_u64())
                })
                .collect();
            for e in 0..endpoints {
                for &(family, probe_seed) in &probes {
                    let off = r.range(0, HOUR_MS * 995 / 1000);
                    out.push(Slot {
                        at_ms: date.start_ms() + h * HOUR_MS + off,
                        endpoint: e,
                        tier: t,
                        family,
                        seed: probe_seed,
                        nonce: r.hex(8),
                    });
                }
            }
        }
    }
    out.sort_by(|a, b| {
        (a.at_ms, a.endpoint, a.tier, &a.nonce).cmp(&(b.at_ms, b.endpoint, b.tier, &b.nonce))
    });
    out
}

/// `per_hour` probes per (endpoint, tier, hour), at random times, sorted by time (schedule
/// version 1).
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

    /// Issue 12 golden: paired probes give every endpoint the same (family, seed) set in each
    /// hour of each tier, with distinct nonces and send times; (seed, nonce) stays unique.
    #[test]
    fn paired_schedule_gives_every_endpoint_the_same_work() {
        let s = Suite::embedded();
        let d = Date::parse("2026-01-05").unwrap();
        let a = schedule(s, 5, d, 42, 3, SCHEDULE_PAIRED);
        assert_eq!(a, schedule(s, 5, d, 42, 3, SCHEDULE_PAIRED));
        assert_ne!(a, schedule(s, 5, d, 42, 3, SCHEDULE_INDEPENDENT));
        assert_eq!(a.len(), 24 * 5 * 3 * 3);
        for h in 0..24 {
            for t in 0..s.tiers.len() {
                let work = |e: usize| {
                    let mut w: Vec<(String, u64)> = a
                        .iter()
                        .filter(|x| {
                            x.endpoint == e
                                && x.tier == t
                                && (x.at_ms - d.start_ms()) / HOUR_MS == h
                        })
                        .map(|x| (x.family.id().to_string(), x.seed))
                        .collect();
                    w.sort();
                    w
                };
                let w0 = work(0);
                assert_eq!(w0.len(), 3);
                for e in 1..5 {
                    assert_eq!(work(e), w0, "hour {h} tier {t} endpoint {e}");
                }
            }
        }
        let keys: std::collections::BTreeSet<(u64, &str)> =
            a.iter().map(|x| (x.seed, x.nonce.as_str())).collect();
        assert_eq!(keys.len(), a.len(), "(seed, nonce) identifies a slot");
        let times: std::collections::BTreeSet<(i64, usize)> =
            a.iter().map(|x| (x.at_ms, x.tier)).collect();
        assert!(
            times.len() > a.len() * 9 / 10,
            "send times are each endpoint's own"
        );
    }

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
