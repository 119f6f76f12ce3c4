//! End to end: the simulated market on loopback, the real worker and store, the real `sit`
//! binary for the published values, and an independent recomputation from the stored
//! observations (re-graded, re-costed, re-indexed with separate, deliberately plain code).

use sit::cli::demo::{self, DemoOptions};
use sit::store::Store;
use sit_core::observation::Observation;
use sit_core::probes::{Family, Suite};
use sit_core::time::{Date, HOUR_MS};
use std::collections::BTreeMap;
use std::process::Command;

fn sit_bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sit"))
}

/// Half-to-even division, written again here on purpose (independent of sit_core::fixed).
fn div_he(n: i128, d: i128) -> i128 {
    assert!(n >= 0 && d > 0, "only non-negative sums here");
    let (q, r) = (n / d, n % d);
    if 2 * r > d || (2 * r == d && q % 2 == 1) {
        q + 1
    } else {
        q
    }
}

/// Nearest integer to the weighted geometric mean (prod x_i^c_i)^(1/k), k = sum c_i, found
/// independently of sit_core: a float estimate, then corrected until 2^k P lies in
/// [(2c-1)^k, (2c+1)^k).
fn geo_mean(xs: &[(i128, u32)]) -> i128 {
    use num_bigint::BigUint;
    let k: u32 = xs.iter().map(|x| x.1).sum();
    let p: BigUint = xs
        .iter()
        .map(|(x, c)| BigUint::from(*x as u128).pow(*c))
        .product();
    let lhs = p << k as usize;
    let est = (xs
        .iter()
        .map(|(x, c)| *c as f64 * (*x as f64).ln())
        .sum::<f64>()
        / k as f64)
        .exp();
    let mut c = est.round() as u128;
    loop {
        let lo = (BigUint::from(2 * c) - 1u32).pow(k);
        let hi = (BigUint::from(2 * c) + 1u32).pow(k);
        if lhs < lo {
            c -= 1;
        } else if lhs >= hi {
            c += 1;
        } else {
            return c as i128;
        }
    }
}

/// One tier's day recomputed from raw observations, per index-methodology.md (methodology
/// 1.1: eligibility per partition as in 1.0.0, day prices over eligible partitions, then the
/// chained geometric mean of relatives, or the trimmed geometric mean of levels where the
/// chain starts). Returns the value and the day prices (the next day's references).
/// Per endpoint: its day price (10^-9 USD per 1M SIT).
type Prices = BTreeMap<String, i128>;
/// Per endpoint: its day's (delivered SIT, attempted SIT).
type Quality = BTreeMap<String, (i128, i128)>;
/// A day's value (None: CONTINGENCY), day prices and quality.
type Day = (Option<i128>, Prices, Quality);

fn recompute(
    obs: &[Observation],
    tier: &str,
    day: Date,
    pass_threshold_e9: i128,
    chain: Option<(i128, &Prices, &Quality)>,
) -> Day {
    let one = 1_000_000_000i128;
    let start = day.start_ms();
    // (endpoint, hour index relative to day start, may be negative) -> sums
    #[derive(Default, Clone, Copy)]
    struct S {
        n: i128,
        ok: i128,
        good: i128,
        cost: i128,
        sit: i128,
        attempted: i128,
    }
    let mut cells: BTreeMap<(String, i64), S> = BTreeMap::new();
    let mut seen_today: BTreeMap<String, bool> = BTreeMap::new();
    for o in obs.iter().filter(|o| o.tier == tier) {
        let h = (o.at_ms - start).div_euclid(HOUR_MS);
        if !(-23..24).contains(&h) {
            continue;
        }
        if h >= 0 {
            seen_today.insert(o.endpoint.clone(), true);
        }
        let c = cells.entry((o.endpoint.clone(), h)).or_default();
        c.n += 1;
        c.ok += o.failure.is_none() as i128;
        c.good += (o.failure.is_none() && o.correct) as i128;
        c.cost += o.cost.0;
        c.sit += o.delivered_sit as i128;
        c.attempted += o.sit_size as i128;
    }
    let mut valid_partitions = 0;
    // endpoint -> (eligible partitions, cost, sit, attempted sit, sum of the hours' cost per
    // attempted SIT at 10^-18) over eligible partitions
    let mut day_sums: BTreeMap<String, (u32, i128, i128, i128, i128)> = BTreeMap::new();
    for p in 0..24i64 {
        let mut eligible_here = 0;
        for ep in seen_today.keys() {
            let get = |h: i64| cells.get(&(ep.clone(), h)).copied().unwrap_or_default();
            let mut w = S::default();
            for h in p - 23..=p {
                let c = get(h);
                w.n += c.n;
                w.ok += c.ok;
                w.good += c.good;
            }
            let part = get(p);
            let eligible = part.n > 0
                && w.n >= 6
                && w.ok * 10 >= 9 * w.n
                && w.ok > 0
                && w.good * one >= pass_threshold_e9 * w.ok
                && part.sit > 0;
            if eligible {
                eligible_here += 1;
                let e = day_sums.entry(ep.clone()).or_default();
                e.0 += 1;
                e.1 += part.cost;
                e.2 += part.sit;
                e.3 += part.attempted;
                e.4 += div_he(part.cost * 1000 * one, part.attempted);
            }
        }
        if eligible_here >= 5 {
            valid_partitions += 1;
        }
    }
    // 1.2.0: the delivered share is pooled over the endpoint's priced days of the 7-day
    // window (here: yesterday, if it had a day price, and today). 1.5.0: the day's cost per
    // attempted SIT is the mean of its eligible hours' (time-weighted), not the ratio of sums.
    let priced: BTreeMap<String, (u32, i128, i128, i128)> = day_sums
        .iter()
        .filter(|(_, (n, _, sit, _, _))| *n >= 12 && *sit > 0)
        .map(|(ep, (n, _, sit, att, terms))| (ep.clone(), (*n, *terms, *sit, *att)))
        .collect();
    let prices: BTreeMap<String, i128> = priced
        .iter()
        .map(|(ep, (n, terms, sit, att))| {
            let (s0, a0) = chain
                .and_then(|(_, _, q)| q.get(ep).copied())
                .unwrap_or((0, 0));
            (
                ep.clone(),
                div_he(terms * (att + a0), *n as i128 * one * (sit + s0)),
            )
        })
        .collect();
    let quality: BTreeMap<String, (i128, i128)> = priced
        .iter()
        .map(|(ep, (_, _, sit, att))| (ep.clone(), (*sit, *att)))
        .collect();
    if valid_partitions < 18 {
        return (None, prices, quality);
    }
    // 20% trimmed from each end with fractional weights at the cut-offs: in fifths of an
    // element, element i covers [5i, 5i + 5) and the kept span is [n, 4n].
    let trimmed = |mut v: Vec<(i128, String)>| -> Option<i128> {
        v.sort();
        let n = v.len() as i64;
        if n < 5 {
            return None;
        }
        let w: Vec<(i128, u32)> = v
            .iter()
            .enumerate()
            .map(|(i, x)| {
                let i = i as i64;
                (x.0, ((5 * i + 5).min(4 * n) - (5 * i).max(n)).max(0) as u32)
            })
            .filter(|x| x.1 > 0)
            .collect();
        Some(geo_mean(&w))
    };
    let value = match chain {
        // the chain starts: trimmed geometric mean of the day prices
        None => trimmed(prices.iter().map(|(e, p)| (*p, e.clone())).collect()),
        Some((level, refs, _)) => {
            let rel: Vec<(i128, String)> = prices
                .iter()
                .filter_map(|(e, p)| refs.get(e).map(|r| (div_he(p * one, *r), e.clone())))
                .collect();
            match trimmed(rel) {
                Some(g) => Some(div_he(level * g, one)),
                None => Some(level),
            }
        }
    };
    (value, prices, quality)
}

fn fixed_str(v: i128) -> String {
    format!("{}.{:09}", v / 1_000_000_000, v % 1_000_000_000)
}

#[test]
fn pipeline_on_simulator_matches_independent_recomputation() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sit-data");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let opts = DemoOptions {
        days: 2,
        start: None,
        hour_ms: 400,
        seed: 11,
        per_hour: 3,
        market_size: None,
        progress: false,
        print_acks: false,
    };
    let report = rt.block_on(demo::run(&data, &opts)).expect("demo runs");
    let day = report.days[0];
    assert_eq!(day, Date::parse("2026-01-05").unwrap());
    let day2 = report.days[1];
    // Every scheduled probe, and every retry of a transient refusal, is recorded.
    assert_eq!(report.summary.recorded, report.summary.attempts);
    assert!(report.summary.attempts >= 12 * 3 * 3 * 24);

    // what the real binary publishes
    let out = sit_bin()
        .arg("--data")
        .arg(&data)
        .args(["index", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sit index failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let published: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is one JSON document");
    // A probe scheduled in the last simulated seconds of the day can be sent after midnight on a
    // loaded machine (one real millisecond is 9 simulated seconds here); it then belongs, by
    // its send time, to the next day. Only the demo's days are compared.
    let published: Vec<&serde_json::Value> = published
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["date"] == "2026-01-05" || d["date"] == "2026-01-06")
        .collect();
    assert_eq!(published.len(), 6, "one determination per tier and day");

    // independent recomputation from the raw stored observations
    let store = Store::open(&data).unwrap();
    let obs: Vec<Observation> = store
        .scan(i64::MIN / 2, i64::MAX / 2)
        .map(|r| r.unwrap().obs)
        .collect();
    drop(store);
    assert_eq!(obs.len() as u64, report.summary.recorded);
    let suite = Suite::embedded();
    for o in &obs {
        // re-grade from (family, seed) and re-cost from tokens x price in force
        let fam = Family::from_id(&o.family).unwrap();
        // the suite's own phrasing of (family, seed): suite 1.1.0 draws one of three
        let g = suite
            .instance(suite.tier(&o.tier).unwrap(), fam, o.seed, 1, 4)
            .generated;
        let regraded = o.failure.is_none() && g.grader.grade(&o.answer, &g.expected);
        assert_eq!(regraded, o.correct, "grade of seq {}", o.seq);
        let p = o.price.as_ref().unwrap();
        let t = &o.tokens;
        let cached = t.billed_cached.min(t.billed_input) as i128;
        let mut cost = (t.billed_input as i128 - cached) * p.input.0
            + cached * p.cached_input.0
            + t.billed_output as i128 * p.output.0;
        if t.billed_input + t.billed_output > 0 {
            cost += p.request_fee.0;
        }
        assert_eq!(cost, o.cost.0, "cost of seq {}", o.seq);
        let tier = suite.tier(&o.tier).unwrap();
        let on_time = matches!((o.timings.first_token_ns, o.timings.last_byte_ns),
            (Some(a), Some(b)) if a <= tier.sla_ttft_ms * 1_000_000 && b <= tier.sla_e2e_ms * 1_000_000);
        assert_eq!(o.within_sla, on_time);
        let delivered = if o.failure.is_none() && o.correct && on_time {
            o.sit_size
        } else {
            0
        };
        assert_eq!(delivered, o.delivered_sit);
        if o.failure.is_none() {
            assert!(o.timings.first_token_ns.unwrap() >= o.timings.headers_ns.unwrap());
            assert!(
                o.tokens.usage_reported,
                "the simulator always reports usage"
            );
        }
    }
    // the chain links every record to the previous one
    let mut by_seq = obs.clone();
    by_seq.sort_by_key(|o| o.seq);
    for w in by_seq.windows(2) {
        let h = blake3::hash(&serde_json::to_vec(&w[0]).unwrap())
            .to_hex()
            .to_string();
        assert_eq!(w[1].prev_hash, h, "chain broken at seq {}", w[1].seq);
    }

    let mut day_one: BTreeMap<String, Day> = BTreeMap::new();
    for (date, d) in published
        .iter()
        .map(|d| (d["date"].as_str().unwrap(), *d))
        .collect::<Vec<_>>()
    {
        let tier = d["tier"].as_str().unwrap();
        let thr =
            sit_core::fixed::Fixed::parse(&suite.tier(tier).unwrap().pass_threshold.to_string())
                .unwrap()
                .0;
        let (mine, prices, quality) = if date == "2026-01-05" {
            let r = recompute(&obs, tier, day, thr, None);
            day_one.insert(tier.to_string(), r.clone());
            r
        } else {
            let (level, refs, q) = day_one.get(tier).expect("day one first (sorted by date)");
            let link = level.map(|l| (l, refs, q));
            recompute(&obs, tier, day2, thr, link)
        };
        let theirs = d["value"].as_str().map(String::from);
        assert_eq!(
            theirs,
            mine.map(fixed_str),
            "{date} tier {tier}: published vs recomputed"
        );
        assert_eq!(d["methodology_version"], "1.5.0");
        // costed from the price book the demo recorded at its start (the simulator's
        // schedules, never corrected): every attempt priced by the book, so the costs the
        // recomputation takes from each observation's own price are the book's
        assert!(
            d["prices"]["version"].as_u64().unwrap() > 0,
            "{}",
            d["prices"]
        );
        assert_eq!(d["prices"]["costed_as_observed"], 0);
        let recorded: BTreeMap<String, (String, i128, i128)> = d["chain"]["day_prices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["endpoint"].as_str().unwrap().to_string(),
                    (
                        p["price"].as_str().unwrap().to_string(),
                        p["delivered_sit"].as_i64().unwrap() as i128,
                        p["attempted_sit"].as_i64().unwrap() as i128,
                    ),
                )
            })
            .collect();
        let expected: BTreeMap<String, (String, i128, i128)> = prices
            .iter()
            .map(|(e, p)| (e.clone(), (fixed_str(*p), quality[e].0, quality[e].1)))
            .collect();
        assert_eq!(recorded, expected, "{date} {tier}: day prices");
        // The first day of the data folder is the chain's anchor: BASE, not a settlement value.
        assert_eq!(
            d["status"],
            match (mine.is_some(), date == "2026-01-05") {
                (true, true) => "BASE",
                (true, false) => "FINAL",
                (false, _) => "CONTINGENCY",
            },
            "{date} {tier}"
        );
        assert!(
            d["counts"]["valid_partitions"].as_u64().unwrap() >= 18,
            "demo day should be FINAL: {d}"
        );
        // Regression guard for issue 17: on a chained day no single endpoint moves the value
        // much (under 1.0.0 one endpoint moved it by 36-93% on this market, under 1.1.0 t3
        // reached 2.6% at this compression); t1 and t2 stay within 2%, t3 within 4% (its
        // second day pools only two days of quality, and since `sit demo` runs `sit run` the
        // schedule's seed comes from the OS, so each run samples other probes: 1.0-3.1% seen;
        // the 2% goal is measured over 90 days by `sit bench stability`, BENCHMARKS.md).
        if date == "2026-01-06" {
            assert_eq!(d["chain"]["basis"], "chained", "{d}");
            let v = d["value"].as_str().unwrap().parse::<f64>().unwrap();
            let bound = if tier == "t3" { 0.04 } else { 0.02 };
            for l in d["leave_one_out"].as_array().unwrap() {
                if let Some(x) = l["delta"].as_str() {
                    let x: f64 = x.parse().unwrap();
                    assert!(
                        x.abs() <= bound * v,
                        "{date} {tier}: leave-one-out {l} of {v}"
                    );
                }
            }
        }
    }
}

/// `sit --providers FILE check`: exit code and stderr.
fn check(f: &std::path::Path) -> (Option<i32>, String) {
    let out = sit_bin()
        .arg("--providers")
        .arg(f)
        .arg("check")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_providers_toml_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.toml");
    std::fs::write(
        &f,
        "[[endpoints]]\nid = \"x\"\nprovider = \"p\"\nmodel = \"m\"\ndialect = \"openai\"\nbase_url = \"https://a.example/v1\"\nregion = \"us\"\nprice_per_token = 3\n",
    )
    .unwrap();
    let (code, err) = check(&f);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("bad.toml:8") && err.contains("price_per_token") && err.contains("hint:"),
        "{err}"
    );

    std::fs::write(
        &f,
        std::fs::read_to_string(&f)
            .unwrap()
            .replace("price_per_token = 3\n", ""),
    )
    .unwrap();
    let (code, err) = check(&f);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("no price schedule") && err.contains("bad.toml:2"),
        "{err}"
    );
}

#[test]
fn shipped_providers_toml_is_valid() {
    let c = sit::config::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/providers.toml"
    )))
    .unwrap();
    assert!(c.endpoints.len() >= 10);
    let providers: std::collections::BTreeSet<_> =
        c.endpoints.iter().map(|e| e.provider.as_str()).collect();
    for p in [
        "openai",
        "anthropic",
        "google",
        "together",
        "fireworks",
        "groq",
        "deepinfra",
        "mistral",
        "openrouter",
    ] {
        assert!(providers.contains(p), "missing {p}");
    }
}

#[test]
fn cli_exit_codes_mean_something() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("none");
    // usage error: bad date
    let out = sit_bin()
        .arg("--data")
        .arg(&data)
        .args(["index", "--date", "2026-13-01"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("YYYY-MM-DD"));
    // no store yet
    let out = sit_bin()
        .arg("--data")
        .arg(&data)
        .args(["index"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sit demo"));
    // unknown subcommand
    let out = sit_bin().arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    // suite
    let out = sit_bin().args(["suite", "--json"]).output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["hash"].as_str().unwrap(), Suite::embedded().hash);
}
