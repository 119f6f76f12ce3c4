use super::*;
use proptest::prelude::*;

const DAY: &str = "2026-01-05";

fn f(s: &str) -> Fixed {
    Fixed::parse(s).unwrap()
}

fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("ep{i:02}")).collect()
}

/// `per_hour` attempts per hour for `hours` hours ending at the end of DAY, each delivering
/// 1000 SIT at `price` (so cost_pusd = price.0) — unless `correct` is false.
fn series(
    e: u32,
    price: Fixed,
    hours: std::ops::Range<i64>,
    per_hour: i64,
    correct: bool,
) -> Vec<IndexObs> {
    let start = Date::parse(DAY).unwrap().start_ms();
    let mut v = Vec::new();
    for h in hours {
        for k in 0..per_hour {
            let at = start + h * HOUR_MS + k * 60_000 + e as i64;
            let mut hash = [0u8; 32];
            hash[..8].copy_from_slice(&at.to_le_bytes());
            hash[8..12].copy_from_slice(&e.to_le_bytes());
            v.push(IndexObs {
                endpoint: e,
                at_ms: at,
                cost_pusd: price.0,
                delivered_sit: if correct { 1000 } else { 0 },
                attempted_sit: 1000,
                missed: false,
                succeeded: true,
                correct,
                hash,
                vantage: 0,
            });
        }
    }
    v
}

fn input<'a>(
    endpoints: &'a [String],
    obs: &'a [IndexObs],
    prev: Option<(Date, Fixed)>,
) -> DayInput<'a> {
    DayInput {
        tier: "t1",
        date: Date::parse(DAY).unwrap(),
        pass_threshold: f("0.8"),
        endpoints,
        providers: &[],
        vantages: &[],
        observations: obs,
        previous_final: prev,
        suite_hash: "suite",
        sequence: 1,
        computed_at: "2026-01-06T00:00:00.000Z",
        chain: None,
        prices: None,
    }
}

#[test]
fn trimmed_mean_golden_and_ties_broken_by_endpoint_id() {
    let m = Methodology::v1_0_0();
    let p = |v: &[(i64, u32)]| {
        v.iter()
            .map(|(x, e)| (Fixed(*x as i128 * ONE), *e))
            .collect::<Vec<_>>()
    };
    // n=5: cut 1 each side of [1..5] -> mean(2,3,4) = 3
    let out = trimmed_mean(&m, &p(&[(5, 0), (1, 1), (3, 2), (2, 3), (4, 4)]));
    assert_eq!(
        (out.value.clone().unwrap(), out.trimmed_each_side),
        (Fixed(3 * ONE), 1)
    );
    // ties at price 2: order by endpoint index, so the kept set is fixed
    let out = trimmed_mean(&m, &p(&[(2, 3), (2, 1), (2, 2), (1, 0), (9, 4)]));
    assert_eq!(out.kept, vec![1, 2, 3]);
    assert_eq!(out.value.unwrap(), Fixed(2 * ONE));
    // n=10: cut 2 each side
    let ten: Vec<(i64, u32)> = (0..10).map(|i| (i as i64 + 1, i)).collect();
    let out = trimmed_mean(&m, &p(&ten));
    assert_eq!(out.trimmed_each_side, 2);
    assert_eq!(out.value.unwrap(), f("5.5"));
    // n=9: floor(1.8) = 1
    assert_eq!(trim_count(m.trim_fraction, 9), 1);
    assert_eq!(trim_count(m.trim_fraction, 4), 0);
    // n below the minimum: invalid, with the reason
    let out = trimmed_mean(&m, &p(&[(1, 0), (2, 1), (3, 2), (4, 3)]));
    assert!(out
        .value
        .unwrap_err()
        .starts_with("FEWER_THAN_MIN_ENDPOINTS"));
    // half-even rounding of the mean: (1 + 2) e-9 / 2 = 1.5e-9 -> 2e-9
    let tiny = vec![
        (Fixed(0), 0),
        (Fixed(1), 1),
        (Fixed(2), 2),
        (Fixed(5), 3),
        (Fixed(9), 4),
    ];
    // kept 1, 2, 5 -> 8/3 = 2.67 -> 3
    assert_eq!(trimmed_mean(&m, &tiny).value.unwrap(), Fixed(3));
}

#[test]
fn time_weighted_mean_golden() {
    assert_eq!(
        time_weighted_mean(&[(f("1"), 1), (f("2"), 1), (f("4"), 2)]),
        Some(f("2.75"))
    );
    assert_eq!(
        time_weighted_mean(&[(Fixed(1), 1), (Fixed(2), 1)]),
        Some(Fixed(2))
    ); // 1.5 -> 2
    assert_eq!(
        time_weighted_mean(&[(Fixed(1), 1), (Fixed(4), 1)]),
        Some(Fixed(2))
    ); // 2.5 -> 2
    assert_eq!(time_weighted_mean(&[]), None);
}

#[test]
fn nearest_rank_golden() {
    let v: Vec<Fixed> = (1..=10).map(Fixed).collect();
    assert_eq!(nearest_rank(&v, f("0.25")), Some(Fixed(3)));
    assert_eq!(nearest_rank(&v, f("0.5")), Some(Fixed(5)));
    assert_eq!(nearest_rank(&v, f("0.75")), Some(Fixed(8)));
    assert_eq!(nearest_rank(&v[..1], f("0.25")), Some(Fixed(1)));
}

fn six_endpoint_day() -> (Vec<String>, Vec<IndexObs>) {
    let e = ids(6);
    let mut obs = Vec::new();
    for (i, p) in ["1", "2", "3", "4", "5", "100"].iter().enumerate() {
        obs.extend(series(i as u32, f(p), -23..24, 3, true));
    }
    (e, obs)
}

#[test]
fn full_day_is_final_with_golden_value() {
    let m = Methodology::v1_0_0();
    let (e, obs) = six_endpoint_day();
    let d = compute_day(&m, &input(&e, &obs, None));
    // n=6, cut 1 each side: mean(2,3,4,5) = 3.5 every hour
    assert_eq!(d.status, Status::Final);
    assert_eq!(d.value, Some(f("3.5")));
    assert_eq!(d.counts.valid_partitions, 24);
    assert_eq!(d.counts.attempts, 6 * 24 * 3);
    assert_eq!(d.counts.input_observations, 6 * 47 * 3);
    assert_eq!(d.counts.endpoints_eligible, 6);
    assert_eq!(
        (
            d.endpoint_price_p25,
            d.endpoint_price_p50,
            d.endpoint_price_p75
        ),
        (Some(f("2")), Some(f("3")), Some(f("5")))
    );
    assert_eq!(d.dispersion, Some(f("1"))); // (5-2)/3
    assert_eq!(d.top3_concentration, f("0.75"));
    // leave-one-out: without ep05 (100) -> n=5 cut 1: mean(2,3,4)=3 -> delta -0.5
    let loo = d
        .leave_one_out
        .iter()
        .find(|l| l.endpoint == "ep05")
        .unwrap();
    assert_eq!(loo.delta, Some(f("-0.5")));
    assert_eq!(loo.weight, Fixed::ZERO);
    // the outlier is trimmed, not excluded
    assert!(d.excluded.is_empty());
    // same input, same bytes
    let again = compute_day(&m, &input(&e, &obs, None));
    assert_eq!(
        serde_json::to_vec(&d).unwrap(),
        serde_json::to_vec(&again).unwrap()
    );
}

#[test]
fn observation_order_does_not_matter() {
    let m = Methodology::v1_0_0();
    let (e, mut obs) = six_endpoint_day();
    let a = compute_day(&m, &input(&e, &obs, None));
    obs.reverse();
    let b = compute_day(&m, &input(&e, &obs, None));
    assert_eq!(a, b);
}

#[test]
fn contingency_carries_previous_final_forward_and_says_why() {
    let m = Methodology::v1_0_0();
    let e = ids(6);
    let mut obs = Vec::new();
    for i in 0..6u32 {
        // data only in hours 0..17 of the day (plus the trailing window): 17 valid partitions
        obs.extend(series(i, f("2"), -23..17, 3, true));
    }
    let prev = (Date::parse("2026-01-04").unwrap(), f("7.25"));
    let d = compute_day(&m, &input(&e, &obs, Some(prev)));
    assert_eq!(d.status, Status::Contingency);
    assert_eq!(d.value, Some(f("7.25")));
    let c = d.contingency.unwrap();
    assert_eq!(c.carried_from, Some(prev.0));
    assert!(
        c.reason.contains("only 17 of 24 partitions valid"),
        "{}",
        c.reason
    );
    // no previous final: no value, and the reason says so
    let d = compute_day(&m, &input(&e, &obs, None));
    assert_eq!((d.status, d.value), (Status::Contingency, None));
    assert!(d
        .contingency
        .unwrap()
        .reason
        .contains("no earlier final value"));
    // 18 valid is enough
    let mut obs = Vec::new();
    for i in 0..6u32 {
        obs.extend(series(i, f("2"), -23..18, 3, true));
    }
    let d = compute_day(&m, &input(&e, &obs, None));
    assert_eq!(
        (d.status, d.value, d.counts.valid_partitions),
        (Status::Final, Some(f("2")), 18)
    );
}

#[test]
fn exclusion_reasons_are_recorded() {
    let m = Methodology::v1_0_0();
    let e = ids(7);
    let mut obs = Vec::new();
    for i in 0..5u32 {
        obs.extend(series(i, f("2"), -23..24, 3, true));
    }
    obs.extend(series(5, f("1"), -23..24, 3, false)); // always wrong
    let mut flaky = series(6, f("1"), -23..24, 3, true);
    for (k, o) in flaky.iter_mut().enumerate() {
        if k % 3 == 0 {
            o.succeeded = false;
            o.delivered_sit = 0;
        }
    }
    obs.extend(flaky);
    let d = compute_day(&m, &input(&e, &obs, None));
    assert_eq!(d.value, Some(f("2")));
    let reasons: Vec<(&str, ExclusionReason, u32)> = d
        .excluded
        .iter()
        .map(|x| (x.endpoint.as_str(), x.reason, x.partitions))
        .collect();
    assert_eq!(
        reasons,
        vec![
            ("ep05", ExclusionReason::LowQuality, 24),
            ("ep06", ExclusionReason::LowAvailability, 24)
        ]
    );
}

#[test]
fn first_hours_without_window_history_are_insufficient() {
    let m = Methodology::v1_0_0();
    let e = ids(5);
    let mut obs = Vec::new();
    for i in 0..5u32 {
        obs.extend(series(i, f("3"), 0..24, 3, true)); // no previous day
    }
    let d = compute_day(&m, &input(&e, &obs, None));
    // hour 0 has 3 attempts in the window (< 6): invalid; from hour 1 on, 6 or more
    assert_eq!(d.counts.valid_partitions, 23);
    assert_eq!(d.partitions[0].value, None);
    assert!(d
        .excluded
        .iter()
        .all(|x| x.reason == ExclusionReason::InsufficientAttempts && x.partitions == 1));
}

#[test]
fn methodology_hash_is_stable_and_sensitive() {
    let m = Methodology::v1_0_0();
    assert_eq!(m.hash(), Methodology::v1_0_0().hash());
    let mut m2 = m.clone();
    m2.min_endpoints = 6;
    assert_ne!(m.hash(), m2.hash());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// Up to floor(0.2 n) endpoints reporting absurd prices cannot move the value outside the
    /// range of the honest endpoints' prices.
    #[test]
    fn value_stays_in_honest_range_under_absurd_outliers(
        honest in proptest::collection::vec(1_000i64..1_000_000, 5..12),
        absurd_high in proptest::bool::ANY,
        frac_outliers in 0usize..=100,
    ) {
        let m = Methodology::v1_0_0();
        let n_honest = honest.len();
        // total n = honest + outliers, outliers <= floor(0.2 n)
        let mut k = 0;
        while (k + 1) <= trim_count(m.trim_fraction, n_honest + k + 1) { k += 1; }
        let outliers = k * frac_outliers / 100;
        let e = ids(n_honest + outliers);
        let mut obs = Vec::new();
        for (i, p) in honest.iter().enumerate() {
            obs.extend(series(i as u32, Fixed(*p as i128 * 1000), 0..24, 6, true));
        }
        for j in 0..outliers {
            let p = if absurd_high { Fixed(1_000_000_000 * ONE) } else { Fixed(0) };
            obs.extend(series((n_honest + j) as u32, p, 0..24, 6, true));
        }
        let d = compute_day(&m, &input(&e, &obs, None));
        let lo = Fixed(*honest.iter().min().unwrap() as i128 * 1000);
        let hi = Fixed(*honest.iter().max().unwrap() as i128 * 1000);
        let v = d.value.unwrap();
        prop_assert!(v >= lo && v <= hi, "value {} outside [{}, {}]", v, lo, hi);
    }
}

/// Methodology 1.1 end to end through `compute_day`: six endpoints priced all day, a level
/// of 0.5 and references 10% below today's prices give a chained value of 0.55; a day
/// without observations is CONTINGENCY, sets no level and passes its starting state on.
#[test]
fn chained_day_through_compute_day_and_its_contingency() {
    use chain::{next_link, ChainLink, Reference};
    let m = Methodology::v1_1_0();
    let cp = m.chain.clone().unwrap();
    let eps = ids(6);
    let prices = ["0.11", "0.22", "0.33", "0.44", "0.55", "0.66"];
    let mut obs = Vec::new();
    for (e, p) in prices.iter().enumerate() {
        obs.extend(series(e as u32, f(p), -23..24, 1, true));
    }
    let prev = Date::parse("2026-01-04").unwrap();
    let link = ChainLink {
        level: Some(f("0.5")),
        level_date: Some(prev),
        references: eps
            .iter()
            .zip(["0.1", "0.2", "0.3", "0.4", "0.5", "0.6"])
            .map(|(e, p)| Reference {
                endpoint: e.clone(),
                price: f(p),
                date: prev,
                quality: vec![],
            })
            .collect(),
    };
    let mut i = input(&eps, &obs, Some((prev, f("0.5"))));
    i.chain = Some(&link);
    let d = compute_day(&m, &i);
    assert_eq!(d.status, Status::Final);
    assert_eq!(d.value, Some(f("0.55")));
    let c = d.chain.clone().unwrap();
    assert_eq!(c.basis, "chained");
    assert_eq!(c.geometric_mean, Some(f("1.1")));
    assert_eq!(c.day_prices.len(), 6);
    assert_eq!(d.methodology_version, "1.1.0");
    assert!(d.partitions.iter().all(|p| p.value.is_none()));
    let next = next_link(&cp, &c, d.date, d.value, true);
    assert_eq!(next.level, Some(f("0.55")));
    assert!(next.references.iter().all(|r| r.date == d.date));

    let mut empty = input(&eps, &[], Some((prev, f("0.5"))));
    empty.chain = Some(&link);
    let d = compute_day(&m, &empty);
    assert_eq!(d.status, Status::Contingency);
    assert_eq!(d.value, Some(f("0.5")));
    let c = d.chain.unwrap();
    assert_eq!((c.basis.as_str(), c.geometric_mean), ("insufficient", None));
    assert_eq!(next_link(&cp, &c, d.date, d.value, false), link);
}

/// Issue 17: where a chain starts the value is a level statistic (10-30% leave-one-out on a
/// heterogeneous panel); it is published as BASE, chained from and carried, never a settlement
/// value. The next day, chained from it, is FINAL.
#[test]
fn chain_start_is_base_and_not_a_settlement_value() {
    use chain::next_link;
    let m = Methodology::v1_2_0();
    let cp = m.chain.clone().unwrap();
    let eps = ids(6);
    let prices = ["0.1", "0.2", "0.4", "0.8", "1.6", "3.2"];
    let mut obs = Vec::new();
    for (e, p) in prices.iter().enumerate() {
        obs.extend(series(e as u32, f(p), -23..24, 1, true));
    }
    let d = compute_day(&m, &input(&eps, &obs, None));
    assert_eq!(d.status, Status::Base);
    assert_eq!(d.status.as_str(), "BASE");
    assert!(d.status.sets_value() && !d.status.settles());
    assert_eq!(d.chain.as_ref().unwrap().basis, chain::BASE_LEVELS);
    assert_eq!(d.value, Some(f("0.565685425")), "golden: sqrt(0.32)");
    assert_eq!(
        serde_json::to_value(d.status).unwrap(),
        serde_json::json!("BASE")
    );
    // the next day chains from the anchor and is FINAL
    let link = next_link(&cp, d.chain.as_ref().unwrap(), d.date, d.value, true);
    let next_day = Date(d.date.0 + 1);
    let mut obs2 = Vec::new();
    for (e, p) in prices.iter().enumerate() {
        let mut s = series(e as u32, f(p), -23..24, 1, true);
        for o in &mut s {
            o.at_ms += crate::time::DAY_MS;
            o.cost_pusd = o.cost_pusd * 11 / 10;
        }
        obs2.extend(s);
    }
    let mut i = input(&eps, &obs2, Some((d.date, d.value.unwrap())));
    i.date = next_day;
    i.chain = Some(&link);
    let d2 = compute_day(&m, &i);
    assert_eq!(d2.status, Status::Final);
    assert!(d2.status.settles());
    assert_eq!(d2.chain.as_ref().unwrap().basis, "chained");
    assert_eq!(
        d2.value,
        Some(f("0.622253968")),
        "0.565685425 * 1.1, half to even"
    );
    // 1.0.0 and 1.1.0 never make a BASE day (their published anchors stay FINAL)
    for old in [Methodology::v1_0_0(), Methodology::v1_1_0()] {
        assert_eq!(
            compute_day(&old, &input(&eps, &obs, None)).status,
            Status::Final
        );
    }
}

/// Methodology 1.2.0 through compute_day: an endpoint's day price pools its delivered share
/// over its priced days of the last 7 (today included) as carried by the link; a day 7 days
/// old is outside the window; the next link keeps only what the next window can use.
#[test]
fn pooled_quality_window_through_compute_day() {
    use chain::{next_link, ChainLink, QualityDay, Reference};
    let m = Methodology::v1_2_0();
    let cp = m.chain.clone().unwrap();
    let eps = ids(6);
    let mut obs = Vec::new();
    for e in 0..6u32 {
        obs.extend(series(e, f("0.3"), -23..24, 1, true));
    }
    let today = Date::parse(DAY).unwrap();
    let ago = |n: i32| Date(today.0 - n);
    let qd = |n: i32, s: u64| QualityDay {
        date: ago(n),
        delivered_sit: s,
        attempted_sit: 24_000,
    };
    let link = ChainLink {
        level: Some(f("2")),
        level_date: Some(ago(1)),
        references: eps
            .iter()
            .enumerate()
            .map(|(e, id)| Reference {
                endpoint: id.clone(),
                // ep00 delivered half of what it attempted 6 days ago: its pooled share is
                // (24000 + 12000) / (24000 + 24000) = 0.75 and its price 0.3 / 0.75 = 0.4; the
                // day 7 days ago (nothing delivered) is out of the window.
                price: if e == 0 { f("0.4") } else { f("0.3") },
                date: ago(1),
                quality: if e == 0 {
                    vec![qd(7, 0), qd(6, 12_000)]
                } else {
                    vec![]
                },
            })
            .collect(),
    };
    let mut i = input(&eps, &obs, Some((ago(1), f("2"))));
    i.chain = Some(&link);
    let d = compute_day(&m, &i);
    assert_eq!(d.status, Status::Final);
    let c = d.chain.clone().unwrap();
    let p0 = &c.day_prices[0];
    assert_eq!(
        (
            p0.price,
            p0.pooled_share,
            p0.delivered_sit,
            p0.attempted_sit
        ),
        (f("0.4"), Some(f("0.75")), Some(24_000), Some(24_000))
    );
    assert_eq!(c.day_prices[1].pooled_share, Some(f("1")));
    assert_eq!(c.geometric_mean, Some(f("1")));
    assert_eq!(d.value, Some(f("2")));
    // the next day's window is [today - 5, today + 1]: the 6-day-old day is dropped
    let next = next_link(&cp, &c, today, d.value, true);
    assert_eq!(
        next.references[0].quality,
        vec![QualityDay {
            date: today,
            delivered_sit: 24_000,
            attempted_sit: 24_000,
        }]
    );
    // under 1.1.0 the same day prices ep00 at its day's own share: 0.3, a relative of 0.75
    let d11 = compute_day(&Methodology::v1_1_0(), &i);
    let c11 = d11.chain.unwrap();
    assert_eq!(c11.day_prices[0].price, f("0.3"));
    assert_eq!(c11.day_prices[0].pooled_share, None);
}

/// A data folder whose last day was published under 1.1.0 continues under 1.2.0: the 1.1.0
/// record (no quality window) hands on its level and references, the first 1.2.0 day is a
/// FINAL chained day (not a new anchor), and its pooled share is that of the day alone.
#[test]
fn first_1_2_0_day_chains_from_a_1_1_0_record() {
    use chain::link_after;
    let eps = ids(6);
    let prices = ["0.1", "0.2", "0.4", "0.8", "1.6", "3.2"];
    let mut obs = Vec::new();
    for (e, p) in prices.iter().enumerate() {
        obs.extend(series(e as u32, f(p), -23..24, 1, true));
    }
    let d11 = compute_day(&Methodology::v1_1_0(), &input(&eps, &obs, None));
    assert_eq!(d11.status, Status::Final);
    let m = Methodology::v1_2_0();
    let link = link_after(m.chain.as_ref().unwrap(), Some(&d11));
    assert_eq!(link.level, d11.value);
    assert!(link.references.iter().all(|r| r.quality.is_empty()));
    let mut obs2 = Vec::new();
    for (e, p) in prices.iter().enumerate() {
        let mut s = series(e as u32, f(p), -23..24, 1, true);
        for o in &mut s {
            o.at_ms += crate::time::DAY_MS;
        }
        obs2.extend(s);
    }
    let mut i = input(&eps, &obs2, Some((d11.date, d11.value.unwrap())));
    i.date = Date(d11.date.0 + 1);
    i.chain = Some(&link);
    let d = compute_day(&m, &i);
    assert_eq!(d.status, Status::Final);
    let c = d.chain.unwrap();
    assert_eq!(c.basis, "chained");
    assert_eq!(
        d.value, d11.value,
        "same prices: the level carries on unchanged"
    );
    assert!(c.day_prices.iter().all(|p| p.pooled_share == Some(f("1"))));
}

/// Review of issue 17: a leave-one-out delta must be None when the day would not have enough
/// valid partitions without the endpoint (as in 1.0.0).
#[test]
fn regression_chained_leave_one_out_respects_partition_sufficiency() {
    use chain::{ChainLink, Reference};
    let m = Methodology::v1_1_0();
    let eps = ids(6);
    let mut obs = Vec::new();
    for e in 0..5u32 {
        obs.extend(series(e, f("0.11"), -23..24, 1, true));
    }
    // f is priced in hours 0..16 only: hours 17..23 have exactly 5 eligible endpoints
    obs.extend(series(5, f("0.11"), -23..17, 1, true));
    let prev = Date::parse("2026-01-04").unwrap();
    let link = ChainLink {
        level: Some(f("1")),
        level_date: Some(prev),
        references: eps
            .iter()
            .map(|e| Reference {
                endpoint: e.clone(),
                price: f("0.1"),
                date: prev,
                quality: vec![],
            })
            .collect(),
    };
    let mut i = input(&eps, &obs, Some((prev, f("1"))));
    i.chain = Some(&link);
    let d = compute_day(&m, &i);
    assert_eq!(d.status, Status::Final);
    assert_eq!(d.value, Some(f("1.1")));
    let delta = |e: &str| {
        d.leave_one_out
            .iter()
            .find(|l| l.endpoint == e)
            .unwrap()
            .delta
    };
    // without ep00 only 17 partitions stay valid: no value
    assert_eq!(delta("ep00"), None);
    // without ep05 all 24 partitions keep 5 endpoints; 5 relatives of 1.1 remain
    assert_eq!(delta("ep05"), Some(Fixed::ZERO));
}

/// Methodology 1.3.0: after `max_contingency_days` (3) CONTINGENCY days in a row the status
/// is SUSPENDED; the last value set from data is carried for reference, never for settlement.
#[test]
fn suspended_after_three_contingency_days_in_a_row() {
    let m = Methodology::v1_3_0();
    let e = ids(6);
    let mut obs = Vec::new();
    for i in 0..6u32 {
        obs.extend(series(i, f("2"), -23..17, 3, true)); // 17 valid partitions: no value
    }
    let day = Date::parse(DAY).unwrap();
    // The last value set from data is 3 days back: this is the third CONTINGENCY day.
    let d = compute_day(&m, &input(&e, &obs, Some((Date(day.0 - 3), f("7.25")))));
    assert_eq!((d.status, d.value), (Status::Contingency, Some(f("7.25"))));
    // 4 days back: the fourth day without a value of its own is SUSPENDED.
    let d = compute_day(&m, &input(&e, &obs, Some((Date(day.0 - 4), f("7.25")))));
    assert_eq!((d.status, d.value), (Status::Suspended, Some(f("7.25"))));
    assert_eq!(d.status.as_str(), "SUSPENDED");
    assert!(!d.status.sets_value() && !d.status.settles());
    let c = d.contingency.unwrap();
    assert_eq!(c.carried_from, Some(Date(day.0 - 4)));
    assert!(
        c.reason
            .contains("the index is SUSPENDED and the methodology's fallback applies"),
        "{}",
        c.reason
    );
    // 1.2.0 has no limit: still CONTINGENCY however long.
    let d = compute_day(
        &Methodology::v1_2_0(),
        &input(&e, &obs, Some((Date(day.0 - 30), f("7.25")))),
    );
    assert_eq!(d.status, Status::Contingency);
}

/// Regression guard for issue 12 ("hashes that can drift"): the hash is blake3 of the RFC 8785
/// bytes, and every published version keeps the hash its records name.
#[test]
fn methodology_hashes_are_rfc8785_and_pinned() {
    let pinned = [
        (
            Methodology::v1_1_0(),
            "4163508155dcb18361739311ec9cc9e226cd6a0da31e6680359971bbc0c7c54e",
        ),
        (
            Methodology::v1_2_0(),
            "d3a36b4706aac20181556ba848c03776e52605543a6f75478d43def3400646ac",
        ),
        // as published by the 1.3.0 demo days (their records name it)
        (
            Methodology::v1_3_0(),
            "d305110b96b90e14340b23ef600f32ca3dc0dcd81c0e1e9d79b9077d1ded94d8",
        ),
        (
            Methodology::v1_4_0(),
            "423e1a7b74d4b8de5fbea97158f0f45b543efc39fe7959e230ff022eda4b7bf3",
        ),
        (
            Methodology::v1_5_0(),
            "04b204a61c5a4c39bbc09fee5a27e6ba766efe62bc96cbe197e3e52ed947cc8b",
        ),
    ];
    for (m, h) in pinned {
        assert_eq!(m.hash(), h, "{}", m.version);
        // the bytes serde_json wrote before are the canonical bytes
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v.to_string().into_bytes(), crate::signing::canonical(&v));
    }
    assert_ne!(Methodology::v1_3_0().hash(), Methodology::v1_2_0().hash());
}

/// Methodology 1.4.0 (issue 12): one open model at one list price behind several hosts is
/// one price source for the provider cap; the relation is transitive and a different price
/// or different weights keep hosts apart.
#[test]
fn golden_price_source_groups() {
    let price = |input: &str| crate::price::PriceEntry {
        effective_from_ms: 0,
        input: crate::fixed::Rate::parse(input).unwrap(),
        output: crate::fixed::Rate::parse("0.79").unwrap(),
        cached_input: crate::fixed::Rate::parse(input).unwrap(),
        request_fee: crate::fixed::Pusd::ZERO,
    };
    let s = |w: &str, p: &str| Some((w.to_string(), price(p)));
    let providers: Vec<String> = [
        "together",
        "fireworks",
        "groq",
        "openai",
        "openai",
        "",
        "deepinfra",
    ]
    .iter()
    .map(|p| p.to_string())
    .collect();
    let sources = vec![
        s("llama-3.3-70b", "0.59"),
        s("llama-3.3-70b", "0.59"),
        s("llama-3.3-70b", "0.60"), // same weights, another price: its own source
        s("gpt-4o-mini", "0.15"),
        s("gpt-4.1-mini", "0.40"),
        s("llama-3.3-70b", "0.59"), // no provider named: never grouped
        None,                       // no price known: only its provider groups it
    ];
    assert_eq!(
        chain::price_source_groups(&providers, &sources),
        vec![
            "fireworks+together",
            "fireworks+together",
            "groq",
            "openai",
            "openai",
            "",
            "deepinfra"
        ]
    );
    // transitive: a shares a price with b, b's provider has c, c shares a price with d
    let providers: Vec<String> = ["p1", "p2", "p2", "p3"]
        .iter()
        .map(|p| p.to_string())
        .collect();
    let sources = vec![s("x", "1"), s("x", "1"), s("y", "2"), s("y", "2")];
    assert_eq!(
        chain::price_source_groups(&providers, &sources),
        vec!["p1+p2+p3"; 4]
    );
}

fn probe_obs(
    endpoint: &str,
    provider: &str,
    at_ms: i64,
    input_tokens: u64,
) -> crate::observation::Observation {
    let probe_price = crate::price::PriceEntry {
        effective_from_ms: 0,
        input: crate::fixed::Rate::parse("1").unwrap(),
        output: crate::fixed::Rate::parse("1").unwrap(),
        cached_input: crate::fixed::Rate::parse("1").unwrap(),
        request_fee: crate::fixed::Pusd::ZERO,
    };
    let tokens = crate::observation::Tokens {
        usage_reported: true,
        billed_input: input_tokens,
        billed_output: 0,
        ..Default::default()
    };
    crate::observation::Observation {
        seq: 0,
        prev_hash: String::new(),
        worker: String::new(),
        endpoint: endpoint.into(),
        provider: provider.into(),
        model: format!("{endpoint}-model"),
        dialect: "openai".into(),
        region: "us".into(),
        tier: "t1".into(),
        family: "t1.arith".into(),
        family_version: 1,
        seed: 1,
        nonce: "n".into(),
        suite_hash: "suite".into(),
        at_ms,
        clock: "test".into(),
        retry: 0,
        http_status: Some(200),
        failure: None,
        timings: Default::default(),
        answer: "1".into(),
        finish_reason: Some("stop".into()),
        server_model: None,
        correct: true,
        within_sla: true,
        cost: crate::sit::cost(&tokens, &probe_price),
        tokens,
        price: Some(probe_price),
        sit_size: 1000,
        delivered_sit: 1000,
        evidence: None,
        content_before_role: false,
        price_version: Some(1),
        weights: None,
        vantage: None,
        origin: None,
    }
}

/// Methodology 1.4.0 (issue 12): an attempt is costed from the price book as it stood when
/// the day is determined, not from the price recorded at probe time; the record names the
/// book version and hash; a backdated correction moves the value only for a determination
/// that knows it; a methodology before 1.4.0 ignores the book.
#[test]
fn costs_at_determination_come_from_the_book_version_named() {
    use crate::price::{BookEntry, BookView, PriceBook, PriceEntry};
    let day = Date::parse(DAY).unwrap();
    let m = Methodology::v1_4_0();
    let (from, to) = day_window(&m, day);
    let eps = ["a", "b", "c", "d", "e"];
    let mut obs = Vec::new();
    for (i, ep) in eps.iter().enumerate() {
        for h in 0..24 {
            for k in 0..6 {
                obs.push(probe_obs(
                    ep,
                    &format!("prov-{ep}"),
                    day.start_ms() + h * HOUR_MS + k * 60_000 + i as i64,
                    1_000,
                ));
            }
        }
    }
    let hashes: Vec<[u8; 32]> = (0..obs.len())
        .map(|i| *blake3::hash(&(i as u64).to_le_bytes()).as_bytes())
        .collect();
    let rate = |s: &str| crate::fixed::Rate::parse(s).unwrap();
    let entry = |v: u64, rec: i64, ep: &str, from_ms: i64, input: &str| BookEntry {
        version: v,
        recorded_at_ms: rec,
        endpoint: ep.into(),
        price: PriceEntry {
            effective_from_ms: from_ms,
            input: rate(input),
            output: rate(input),
            cached_input: rate(input),
            request_fee: crate::fixed::Pusd::ZERO,
        },
        source: None,
    };
    let mut entries: Vec<BookEntry> = eps
        .iter()
        .enumerate()
        .map(|(i, ep)| entry(i as u64 + 1, 0, ep, 0, ["1", "2", "3", "4", "5"][i]))
        .collect();
    // a correction of endpoint c's price, backdated to the start of time, recorded later
    entries.push(entry(6, day.start_ms() + 30 * HOUR_MS, "c", 0, "9"));
    let book = PriceBook::new(entries).unwrap();
    let day_of = |version: u64, m: &Methodology| {
        let view = BookView::new(&book, version);
        let rows = rows_for(
            m,
            obs.iter().zip(hashes.iter()),
            "t1",
            "suite",
            (from, to),
            Some(&view),
        );
        compute_day(
            m,
            &DayInput {
                tier: "t1",
                date: day,
                pass_threshold: f("0.8"),
                endpoints: &rows.endpoints,
                providers: &rows.providers,
                vantages: &[],
                observations: &rows.rows,
                previous_final: None,
                suite_hash: "suite",
                sequence: 1,
                computed_at: "x",
                chain: None,
                prices: rows.prices.as_ref(),
            },
        )
    };
    let before = day_of(book.version_at(day.start_ms() + 24 * HOUR_MS), &m);
    let after = day_of(book.version_at(day.start_ms() + 31 * HOUR_MS), &m);
    // an anchor day: the trimmed geometric mean of the day prices (1..5 USD per 1M input
    // tokens, 1000 tokens per 1000 SIT: USD per 1M SIT equal to the rate) moves when c is 9
    assert_eq!(before.prices.as_ref().unwrap().version, 5);
    assert_eq!(after.prices.as_ref().unwrap().version, 6);
    assert_eq!(before.prices.as_ref().unwrap().costed_as_observed, 0);
    assert_ne!(
        before.prices.as_ref().unwrap().hash,
        after.prices.as_ref().unwrap().hash
    );
    assert_eq!(before.status, Status::Base);
    assert_ne!(
        before.value, after.value,
        "the correction must move the value"
    );
    let ep_price = |d: &Determination, ep: &str| {
        d.chain
            .as_ref()
            .unwrap()
            .day_prices
            .iter()
            .find(|p| p.endpoint == ep)
            .unwrap()
            .price
    };
    assert_eq!(ep_price(&before, "c"), f("3"));
    assert_eq!(ep_price(&after, "c"), f("9"));
    // 1.3.0 costs as probed (1 USD per 1M for everyone) and records no book
    let old = day_of(6, &Methodology::v1_3_0());
    assert!(old.prices.is_none());
    assert_eq!(ep_price(&old, "c"), f("1"));
    // a book without the endpoint: costed as observed, and counted
    let empty = PriceBook::default();
    let view = BookView::new(&empty, 0);
    let rows = rows_for(
        &m,
        obs.iter().zip(hashes.iter()),
        "t1",
        "suite",
        (from, to),
        Some(&view),
    );
    assert_eq!(rows.prices.unwrap().costed_as_observed, obs.len() as u64);
}

/// A day whose observations' costs vary (each endpoint's price 1..6 +- up to 40%, by a fixed
/// pattern), `per_hour` attempts an hour: what the bootstrap has to measure.
fn noisy_day(per_hour: i64) -> (Vec<String>, Vec<IndexObs>) {
    let e = ids(6);
    let mut obs = Vec::new();
    for i in 0..6u32 {
        let mut s = series(i, f(&(i + 1).to_string()), -23..24, per_hour, true);
        for (k, o) in s.iter_mut().enumerate() {
            // -40% .. +40% in steps of 10%, a pattern with no period in common with the hours
            let pct = ((k as i128 * 7 + i as i128 * 3) % 9 - 4) * 10;
            o.cost_pusd += o.cost_pusd * pct / 100;
        }
        obs.extend(s);
    }
    (e, obs)
}

#[test]
fn interval_of_a_day_without_noise_is_its_value() {
    let m = Methodology::v1_0_0();
    let (e, obs) = six_endpoint_day();
    let d = compute_day(&m, &input(&e, &obs, None));
    let i = interval::interval(&m, &input(&e, &obs, None), "seed", 50);
    assert_eq!((i.low, i.high), (d.value, d.value));
    assert_eq!((i.resamples, i.not_set, i.level), (50, 0, f("0.95")));
    // 6 endpoints x 47 hours (the day and its trailing window), 3 probes each
    assert_eq!((i.strata, i.single), (6 * 47, 0));
}

#[test]
fn interval_is_reproducible_golden_and_narrows_with_more_probes() {
    let m = Methodology::v1_0_0();
    let (e, obs) = noisy_day(3);
    let day = input(&e, &obs, None);
    let d = compute_day(&m, &day);
    let i = interval::interval(&m, &day, "7f3a", interval::RESAMPLES);
    let (lo, hi) = (i.low.unwrap(), i.high.unwrap());
    let v = d.value.unwrap();
    assert!(lo < v && v < hi, "{lo} {v} {hi}");
    // golden: the draws are specified, so the bounds are too
    assert_eq!(
        (lo.to_string(), hi.to_string()),
        (GOLDEN_LOW.into(), GOLDEN_HIGH.into())
    );
    // the same seed gives the same interval, bit for bit; the input's order does not matter
    let mut shuffled = obs.clone();
    shuffled.reverse();
    let again = interval::interval(&m, &input(&e, &shuffled, None), "7f3a", interval::RESAMPLES);
    assert_eq!(i, again);
    // another seed draws other resamples
    assert_ne!(
        i,
        interval::interval(&m, &day, "other", interval::RESAMPLES)
    );
    // each endpoint's delivered share: its day's delivered over attempted SIT, by hand, inside
    // its own interval; one endpoint fails to deliver one attempt in five, golden
    let mut obs = obs.clone();
    for (k, o) in obs.iter_mut().filter(|o| o.endpoint == 2).enumerate() {
        if k % 5 == 0 {
            o.delivered_sit = 0;
            o.correct = false;
        }
    }
    let day = input(&e, &obs, None);
    let i = interval::interval(&m, &day, "7f3a", interval::RESAMPLES);
    assert_eq!(i.shares.len(), e.len());
    for (k, id) in e.iter().enumerate() {
        let mine: Vec<_> = obs
            .iter()
            .filter(|o| {
                o.endpoint as usize == k
                    && !o.missed
                    && day.date == crate::time::Date::of_ms(o.at_ms)
            })
            .collect();
        let d: i128 = mine.iter().map(|o| o.delivered_sit as i128).sum();
        let a: i128 = mine.iter().map(|o| o.attempted_sit as i128).sum();
        let s = &i.shares[id];
        assert_eq!(
            s.share,
            Fixed(crate::fixed::div_round_half_even(d * 1_000_000_000, a))
        );
        assert!(s.low <= s.share && s.share <= s.high, "{id}: {s:?}");
    }
    let third = &i.shares[&e[2]];
    assert_eq!(
        (
            third.share.to_string(),
            third.low.to_string(),
            third.high.to_string()
        ),
        (
            "0.791666667".to_string(),
            "0.708333333".to_string(),
            "0.888888889".to_string()
        )
    );
    // four times the probes: a narrower interval
    let (e4, obs4) = noisy_day(12);
    let i4 = interval::interval(&m, &input(&e4, &obs4, None), "7f3a", interval::RESAMPLES);
    let width = |i: &interval::Interval| i.high.unwrap().0 - i.low.unwrap().0;
    assert!(width(&i4) * 3 < width(&i) * 2, "{i4:?} vs {i:?}");
}

const GOLDEN_LOW: &str = "3.354166667";
const GOLDEN_HIGH: &str = "3.569791667";

/// Methodology 1.5.0 (issue 29, item 5): the time-weighted day price, by hand. Two eligible
/// hours: 2,000,000 pUSD over 1,000 attempted SIT (2,000 pUSD per SIT) and 3,000,000 over
/// 2,000 (1,500): their mean is 1,750 pUSD per SIT, 0.00175 USD per 1M SIT; over a pooled
/// delivered share of 2,400 / 3,000 = 0.8 it is 0.0021875. The ratio of the sums (1.4.0) is
/// 5,000,000 / 3,000 = 1,666.67 pUSD per SIT: 0.002083333 over the same share.
#[test]
fn golden_time_weighted_day_price() {
    use crate::index::chain::{pooled_price, time_weighted_price, QualityDay};
    let window = [QualityDay {
        date: crate::time::Date(0),
        delivered_sit: 2400,
        attempted_sit: 3000,
    }];
    let hours = [(2_000_000i128, 1000u128), (3_000_000, 2000)];
    assert_eq!(time_weighted_price(&hours, &window), Some(Fixed(2_187_500)));
    assert_eq!(
        pooled_price(5_000_000, 3000, &window),
        Some(Fixed(2_083_333))
    );
    // equal hours: the two forms agree
    let even = [(2_000_000i128, 1000u128), (3_000_000, 1000)];
    assert_eq!(
        time_weighted_price(&even, &window),
        pooled_price(5_000_000, 2000, &window)
    );
    assert_eq!(time_weighted_price(&[], &window), None);
    assert_eq!(time_weighted_price(&[(1, 0)], &window), None);
}
