//! The probe schedule of a day: which probe goes to which endpoint when. Pure.
//!
//! Anti-gaming: times are uniformly random within each hourly partition (never aligned to the
//! clock) and prompts come from fresh seeds; everything derives from the day seed, so the
//! schedule is replayable once the seed is revealed, and cannot be predicted before.
//!
//! Three schedule versions, the one used recorded in the day's commitment:
//! [`SCHEDULE_INDEPENDENT`], [`SCHEDULE_PAIRED`] and [`SCHEDULE_STRATIFIED`]; [`schedule`]
//! expands a seed under any of them.

use crate::probes::{Family, Suite};
use crate::rng::Rng;
use crate::time::{Date, HOUR_MS};

/// One scheduled probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// When to send it, UTC milliseconds.
    pub at_ms: i64,
    /// Index into the day's endpoint list (the commitment's order).
    pub endpoint: usize,
    /// Index into the suite's tiers.
    pub tier: usize,
    /// The probe's family.
    pub family: Family,
    /// The probe's seed.
    pub seed: u64,
    /// The probe's nonce, 16 hex digits.
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
/// Schedule version 3 (`sit run` from issue 12's measurement): paired and stratified.
pub const SCHEDULE_STRATIFIED: u32 = 3;

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
        SCHEDULE_STRATIFIED => stratified_schedule(suite, endpoints, date, seed, per_hour),
        _ => paired_schedule(suite, endpoints, date, seed, per_hour),
    }
}

/// Paired and stratified probes (schedule version 3): as [`paired_schedule`], and each tier's
/// families over the day are a shuffled balanced list (family `i mod n`, for the day's
/// `24 x per_hour` probes), so every endpoint is probed with each family equally often every
/// day (exactly, when `24 x per_hour` is a multiple of the tier's families). Why: a chained day
/// price compares an endpoint with its own previous day, and with families drawn at random its
/// day-to-day noise is its own family mix changing from one day to the next; pairing alone
/// leaves that mix random. Measured with `sit bench stability --schedule` (BENCHMARKS.md, 5
/// seeds): the largest leave-one-out effect averages 0.81% stratified, 1.46% paired, 1.13%
/// independent.
pub(crate) fn stratified_schedule(
    suite: &Suite,
    endpoints: usize,
    date: Date,
    seed: u64,
    per_hour: u32,
) -> Vec<Slot> {
    let mut r = Rng::from_bytes(&[b"sit-schedule-stratified-v3", &seed.to_le_bytes()]);
    let per_day = 24 * per_hour as usize;
    // each tier's family for each of the day's probe positions
    let balanced: Vec<Vec<Family>> = suite
        .tiers
        .iter()
        .map(|tier| {
            let fams: Vec<Family> = tier
                .families
                .iter()
                .map(|f| Family::from_id(f).expect("suite families are known"))
                .collect();
            let mut list: Vec<Family> = (0..per_day).map(|i| fams[i % fams.len()]).collect();
            for i in (1..list.len()).rev() {
                let j = r.range(0, i as i64) as usize;
                list.swap(i, j);
            }
            list
        })
        .collect();
    let ph = per_hour as usize;
    paired_slots(suite, endpoints, date, per_hour, &mut r, |r, h, t| {
        (0..ph)
            .map(|k| (balanced[t][h * ph + k], r.next_u64()))
            .collect()
    })
}

/// Paired probes: in each hour of each tier, every endpoint gets the same `per_hour` (family,
/// seed) probes, each with its own nonce and its own random send time. Why: drawn
/// independently, one endpoint could be priced on a long retrieval prompt and another on a
/// one-line sum in the same hour; paired, every endpoint does the same work, so price
/// relatives compare like with like and a provider cannot be lucky in its draw.
pub(crate) fn paired_schedule(
    suite: &Suite,
    endpoints: usize,
    date: Date,
    seed: u64,
    per_hour: u32,
) -> Vec<Slot> {
    let mut r = Rng::from_bytes(&[b"sit-schedule-paired-v2", &seed.to_le_bytes()]);
    paired_slots(suite, endpoints, date, per_hour, &mut r, |r, _, t| {
        (0..per_hour)
            .map(|_| {
                let fam = Family::from_id(r.pick(&suite.tiers[t].families).as_str())
                    .expect("suite families are known");
                (fam, r.next_u64())
            })
            .collect()
    })
}

/// The slots of a paired schedule (versions 2 and 3): for each hour and tier, `draw` gives the
/// hour's (family, seed) probes, and every endpoint gets each of them with its own send time
/// and nonce, drawn from `r` in that order (so each version's draws stay exactly as committed).
fn paired_slots(
    suite: &Suite,
    endpoints: usize,
    date: Date,
    per_hour: u32,
    r: &mut Rng,
    mut draw: impl FnMut(&mut Rng, usize, usize) -> Vec<(Family, u64)>,
) -> Vec<Slot> {
    let mut out = Vec::with_capacity(endpoints * suite.tiers.len() * 24 * per_hour as usize);
    for h in 0..24i64 {
        for t in 0..suite.tiers.len() {
            let probes = draw(r, h as usize, t);
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
pub(crate) fn day_schedule(
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

    /// Schedule version 3: paired as version 2, and every endpoint gets each of a tier's
    /// families exactly equally often in the day (72 probes, 4 families: 18 each), in an order
    /// that differs from day to day.
    #[test]
    fn stratified_schedule_is_paired_and_balanced_per_day() {
        let s = Suite::embedded();
        let d = Date::parse("2026-01-05").unwrap();
        let a = schedule(s, 5, d, 42, 3, SCHEDULE_STRATIFIED);
        assert_eq!(a, schedule(s, 5, d, 42, 3, SCHEDULE_STRATIFIED));
        assert_ne!(a, schedule(s, 5, d, 42, 3, SCHEDULE_PAIRED));
        assert_eq!(a.len(), 24 * 5 * 3 * 3);
        let order = |sched: &[Slot], e: usize, t: usize| -> Vec<(i64, String, u64)> {
            let mut w: Vec<(i64, String, u64)> = sched
                .iter()
                .filter(|x| x.endpoint == e && x.tier == t)
                .map(|x| {
                    (
                        (x.at_ms - d.start_ms()) / HOUR_MS,
                        x.family.id().to_string(),
                        x.seed,
                    )
                })
                .collect();
            w.sort();
            w
        };
        for (t, tier) in s.tiers.iter().enumerate() {
            let w0 = order(&a, 0, t);
            for e in 1..5 {
                assert_eq!(order(&a, e, t), w0, "paired: tier {t} endpoint {e}");
            }
            for f in &tier.families {
                assert_eq!(w0.iter().filter(|x| &x.1 == f).count(), 18, "{f}");
            }
        }
        let b = schedule(s, 5, d.succ(), 43, 3, SCHEDULE_STRATIFIED);
        let fams = |sched: &[Slot]| -> Vec<String> {
            order(sched, 0, 0).into_iter().map(|x| x.1).collect()
        };
        assert_ne!(fams(&a), fams(&b), "the order is drawn per day");
        let keys: std::collections::BTreeSet<(u64, &str)> =
            a.iter().map(|x| (x.seed, x.nonce.as_str())).collect();
        assert_eq!(keys.len(), a.len(), "(seed, nonce) identifies a slot");
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

    /// The most requests any run of 30 characters of message text occurs in, as a share of
    /// the requests, and that run.
    fn max_run_share(requests: &[String]) -> (usize, String) {
        let mut count: std::collections::BTreeMap<&str, usize> = Default::default();
        for r in requests {
            let mut seen = std::collections::BTreeSet::new();
            let idx: Vec<usize> = r.char_indices().map(|(i, _)| i).chain([r.len()]).collect();
            for w in idx.windows(31) {
                seen.insert(&r[w[0]..w[30]]);
            }
            for s in seen {
                *count.entry(s).or_default() += 1;
            }
        }
        count
            .into_iter()
            .max_by_key(|(s, n)| (*n, std::cmp::Reverse(*s)))
            .map(|(s, n)| (n, s.to_string()))
            .unwrap_or_default()
    }

    /// Issue 12's measure: across one day's requests of a tier (the schedule `sit run` commits,
    /// paired and stratified, 24 hours x 4 probes per endpoint-hour, 8 endpoints), no run of 30 characters
    /// of message text (system and user messages) is in more than 25% of the requests. Under
    /// suite 1.0.0 the system line alone is in all of them.
    #[test]
    fn no_30_character_run_is_in_more_than_a_quarter_of_a_tier_days_requests() {
        use crate::probes::Suite;
        let day = crate::time::Date::parse("2026-11-30").unwrap();
        for (suite, limit_pct) in [(Suite::embedded(), 25), (Suite::v1_0_0(), 100)] {
            let slots = crate::schedule::schedule(
                suite,
                8,
                day,
                0x5eed,
                4,
                crate::schedule::SCHEDULE_STRATIFIED,
            );
            for (t, tier) in suite.tiers.iter().enumerate() {
                let texts: Vec<String> = slots
                    .iter()
                    .filter(|s| s.tier == t)
                    .map(|s| {
                        let inst = suite.instance(tier, s.family, s.seed, 1, 4);
                        let r = suite.request(&inst, &s.nonce, 0);
                        format!("{}\n{}", r.system.unwrap_or_default(), r.user)
                    })
                    .collect();
                assert!(texts.len() >= 24 * 4 * 8, "{}", texts.len());
                let (n, run) = max_run_share(&texts);
                let pct = n * 100 / texts.len();
                println!(
                    "suite {} {}: {} requests, most common 30-char run in {n} ({pct}%): {run:?}",
                    suite.version,
                    tier.id,
                    texts.len()
                );
                if limit_pct == 25 {
                    assert!(
                        n * 4 <= texts.len(),
                        "{}: {run:?} in {n} of {}",
                        tier.id,
                        texts.len()
                    );
                } else {
                    assert_eq!(n, texts.len(), "1.0.0's system line is in every request");
                }
            }
        }
    }
}
