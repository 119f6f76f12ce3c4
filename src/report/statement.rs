//! `sit report statement`: the benchmark statement (EU Delegated Regulation 2018/1643 art. 1)
//! as of a date, from the archive: what each tier measures and in what unit, the market its
//! panel describes (providers, endpoints, price sources, models, regions, vantages) and how
//! concentrated it is, the input data, each point of discretion and who exercises it, what
//! happens when data is insufficient, changes and cessation, the versions and notices in force.
//!
//! Concentration is measured on the weights each determination publishes per provider
//! (`leave_one_provider_out[].weight`, summing to 1): HHI = 10,000 x the sum of squared
//! shares, computed in integers from the 9-place weights and rounded half to even; top-1 and
//! top-3 are the largest shares. Price sources count as methodology 1.4.0 counts them for the
//! provider cap: endpoints serving the same open weights at the same list price are one source.

use super::doc::{Block, Doc, Section};
use super::NEEDS_A_PERSON;
use crate::config::Config;
use sit_core::fixed::Fixed;
use sit_core::index::{Determination, Methodology, Status};
use sit_core::notice::{Notice, State};
use sit_core::probes::Suite;
use sit_core::record::Publication;
use sit_core::time::Date;
use std::collections::{BTreeMap, BTreeSet};

/// Days before the as-of date (inclusive) over which concentration and statuses are summarised.
pub const WINDOW_DAYS: i32 = 30;

/// What a statement is written from.
pub struct Inputs<'a> {
    pub as_of: Date,
    /// Per tier, per date: the version in force at the end of `as_of` (dates up to `as_of`).
    pub records: BTreeMap<String, BTreeMap<Date, Publication>>,
    /// Every notice published by the end of `as_of`.
    pub notices: Vec<Notice>,
    /// `providers.toml`, when the panel's endpoints are in it.
    pub config: Option<&'a Config>,
    pub suite: &'a Suite,
    /// The methodology the latest determinations name.
    pub methodology: &'a Methodology,
    /// The signed 95% intervals of the stated days' values, per (tier, date), where their
    /// bundles carry them.
    pub intervals: BTreeMap<(String, Date), sit_core::index::interval::Interval>,
}

/// Concentration of one day's weights.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Concentration {
    /// 0-10,000.
    pub hhi: u32,
    /// Largest provider's share of weight.
    pub top1: Fixed,
    /// The three largest providers' share.
    pub top3: Fixed,
}

/// HHI and top shares of `weights` (9-place fractions of 1). `None` without weight.
pub fn concentration(weights: &[Fixed]) -> Option<Concentration> {
    let total: i128 = weights.iter().map(|w| w.0).sum();
    if total <= 0 {
        return None;
    }
    // shares as the published weights (they sum to 1 up to rounding); HHI on the shares
    // normalised by their sum, so a rounding residue does not move it
    let sq: i128 = weights.iter().map(|w| w.0 * w.0).sum();
    // 10_000 * sq / total^2, half to even
    let hhi = sit_core::fixed::div_round_half_even(10_000 * sq, total * total);
    let mut sorted: Vec<i128> = weights.iter().map(|w| w.0).collect();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    let share = |n: usize| {
        let top: i128 = sorted.iter().take(n).sum();
        Fixed(sit_core::fixed::div_round_half_even(
            top * 1_000_000_000,
            total,
        ))
    };
    Some(Concentration {
        hhi: hhi as u32,
        top1: share(1),
        top3: share(3),
    })
}

/// The panel of one tier on one day, as its determination and the configuration describe it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Panel {
    pub date: Date,
    pub status: Status,
    pub endpoints_observed: u32,
    pub endpoints_eligible: u32,
    /// Providers with weight, and their weights.
    pub providers: BTreeMap<String, Fixed>,
    /// Endpoints with weight.
    pub endpoints: Vec<String>,
    pub price_sources: Option<usize>,
    pub models: Option<usize>,
    pub regions: BTreeSet<String>,
    pub vantages: BTreeSet<String>,
    /// Endpoints with weight that providers.toml does not describe.
    pub not_configured: Vec<String>,
    pub concentration: Option<Concentration>,
}

fn panel(d: &Determination, config: Option<&Config>) -> Panel {
    let endpoints: Vec<String> = d
        .leave_one_out
        .iter()
        .filter(|l| l.weight.0 > 0)
        .map(|l| l.endpoint.clone())
        .collect();
    let providers: BTreeMap<String, Fixed> = d
        .leave_one_provider_out
        .iter()
        .filter(|p| p.weight.0 > 0)
        .map(|p| (p.provider.clone(), p.weight))
        .collect();
    let at = d.date.start_ms();
    let described: Vec<&crate::config::Endpoint> = endpoints
        .iter()
        .filter_map(|e| config.and_then(|c| c.endpoint(e)))
        .collect();
    let not_configured: Vec<String> = endpoints
        .iter()
        .filter(|e| config.and_then(|c| c.endpoint(e)).is_none())
        .cloned()
        .collect();
    let complete = not_configured.is_empty();
    let sources: BTreeSet<String> = described
        .iter()
        .map(|e| match &e.weights {
            Some(w) => {
                let p = e.prices.in_force(at);
                format!(
                    "{w}@{}",
                    p.map(|p| format!("{}/{}/{}", p.input, p.output, p.cached_input))
                        .unwrap_or_default()
                )
            }
            None => format!("endpoint:{}", e.id),
        })
        .collect();
    let models: BTreeSet<String> = described
        .iter()
        .map(|e| match &e.weights {
            Some(w) => format!("open:{w}"),
            None => format!("{}:{}", e.provider, e.model),
        })
        .collect();
    let weights: Vec<Fixed> = providers.values().copied().collect();
    Panel {
        date: d.date,
        status: d.status,
        endpoints_observed: d.counts.endpoints_observed,
        endpoints_eligible: d.counts.endpoints_eligible,
        concentration: concentration(&weights),
        providers,
        endpoints,
        price_sources: complete.then_some(sources.len()),
        models: complete.then_some(models.len()),
        regions: described.iter().map(|e| e.region.clone()).collect(),
        vantages: d.counts.vantages.keys().cloned().collect(),
        not_configured,
    }
}

/// A tier's figures over the window ending at the as-of date.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TierFigures {
    pub tier: String,
    /// The latest day's panel.
    pub latest: Option<Panel>,
    pub days: usize,
    /// Days by status.
    pub statuses: BTreeMap<String, usize>,
    /// Restated days (a version above 1 in force).
    pub restated: usize,
    /// HHI over the window's days with weights: min, median (lower), max.
    pub hhi_range: Option<(u32, u32, u32)>,
    pub input_observations: u64,
    pub attempts: u64,
}

fn status_name(s: Status) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// The figures of every tier of the suite.
pub fn figures(i: &Inputs) -> Vec<TierFigures> {
    let from = Date(i.as_of.0 - (WINDOW_DAYS - 1));
    i.suite
        .tier_ids()
        .into_iter()
        .map(|tier| {
            let days: Vec<&Publication> = i
                .records
                .get(&tier)
                .map(|m| m.range(from..=i.as_of).map(|(_, p)| p).collect())
                .unwrap_or_default();
            let mut statuses = BTreeMap::new();
            let mut hhis = Vec::new();
            let (mut obs, mut attempts, mut restated) = (0, 0, 0);
            for p in &days {
                let d = &p.determination;
                *statuses.entry(status_name(d.status)).or_insert(0) += 1;
                if p.version > 1 {
                    restated += 1;
                }
                obs += d.counts.input_observations;
                attempts += d.counts.attempts;
                let w: Vec<Fixed> = d.leave_one_provider_out.iter().map(|p| p.weight).collect();
                if let Some(c) = concentration(&w) {
                    hhis.push(c.hhi);
                }
            }
            hhis.sort_unstable();
            TierFigures {
                latest: days.last().map(|p| panel(&p.determination, i.config)),
                days: days.len(),
                statuses,
                restated,
                hhi_range: (!hhis.is_empty())
                    .then(|| (hhis[0], hhis[(hhis.len() - 1) / 2], hhis[hhis.len() - 1])),
                input_observations: obs,
                attempts,
                tier,
            }
        })
        .collect()
}

fn pct(f: Fixed) -> String {
    format!("{}%", Fixed(f.0 * 100).round_dp(1))
}

fn person(what: &str) -> String {
    format!("{NEEDS_A_PERSON}: {what}")
}

/// The statement.
pub fn statement(i: &Inputs) -> Doc {
    let figs = figures(i);
    let state = State::at(&i.notices, Date(i.as_of.0 + 1).start_ms()).ok();
    let m = i.methodology;
    let mut sections = Vec::new();

    sections.push(Section {
        title: "1. The benchmark and its administrator".into(),
        blocks: vec![
            Block::List(vec![
                "Name: the SIT index, one daily value per capability tier.".into(),
                "Unit: USD per 1,000,000 SIT. A Standard Inference Token (SIT) is a unit of standard work: a probe's reference input tokens weighted and its answer allowance (the methodology's section 1), priced by what providers charge for it when the answer is correct and on time.".into(),
                format!(
                    "Methodology in force: {} (hash {}); probe suite {} (hash {}).",
                    m.version,
                    m.hash(),
                    i.suite.version,
                    i.suite.hash
                ),
                person("the administrator's legal name, address and the oversight function"),
                person("the contact for complaints and consultation responses"),
            ]),
        ],
    });

    let mut rows = Vec::new();
    for t in &i.suite.tiers {
        rows.push(vec![
            t.id.clone(),
            t.name.clone(),
            t.description.clone(),
            t.families.join(", "),
            pct(t.pass_threshold),
            format!("{} / {} ms", t.sla_ttft_ms, t.sla_e2e_ms),
        ]);
    }
    sections.push(Section {
        title: "2. What each tier measures".into(),
        blocks: vec![
            Block::Para("Each tier is the price of correct, timely answers to deterministic probe families with deterministic graders; a failed, wrong or late answer costs what it cost and delivers no SIT.".into()),
            Block::Table {
                head: ["tier", "name", "what it tests", "families", "pass threshold", "latency limits (first token / end to end)"]
                    .map(String::from)
                    .to_vec(),
                rows,
            },
        ],
    });

    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for f in &figs {
        let Some(p) = &f.latest else {
            let mut row = vec![f.tier.clone(), "no day published".into()];
            row.resize(9, "-".into());
            rows.push(row);
            continue;
        };
        let c = p.concentration.as_ref();
        let opt = |n: Option<usize>| {
            n.map(|n| n.to_string())
                .unwrap_or_else(|| "see note".into())
        };
        rows.push(vec![
            f.tier.clone(),
            format!(
                "{} ({}){}",
                p.date,
                status_name(p.status),
                match i.intervals.get(&(f.tier.clone(), p.date)) {
                    Some(iv) => format!(
                        ": {} (95% interval {} - {})",
                        i.records
                            .get(&f.tier)
                            .and_then(|m| m.get(&p.date))
                            .and_then(|r| r.determination.value)
                            .map(|v| v.to_string())
                            .unwrap_or_else(|| "-".into()),
                        iv.low.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
                        iv.high.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
                    ),
                    None => String::new(),
                }
            ),
            format!("{} of {} observed", p.endpoints.len(), p.endpoints_observed),
            format!(
                "{}: {}",
                p.providers.len(),
                p.providers.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
            opt(p.price_sources),
            opt(p.models),
            c.map(|c| c.hhi.to_string()).unwrap_or_else(|| "-".into()),
            c.map(|c| format!("{} / {}", pct(c.top1), pct(c.top3)))
                .unwrap_or_else(|| "-".into()),
            f.hhi_range
                .map(|(a, b, c)| format!("{a} / {b} / {c}"))
                .unwrap_or_else(|| "-".into()),
        ]);
        if !p.not_configured.is_empty() {
            notes.push(format!(
                "{}: price sources, models and regions need providers.toml entries for {} (run with --providers naming the panel's file)",
                f.tier,
                p.not_configured.join(", ")
            ));
        }
    }
    let regions: BTreeSet<&String> = figs
        .iter()
        .filter_map(|f| f.latest.as_ref())
        .flat_map(|p| &p.regions)
        .collect();
    let vantages: BTreeSet<&String> = figs
        .iter()
        .filter_map(|f| f.latest.as_ref())
        .flat_map(|p| &p.vantages)
        .collect();
    let mut blocks = vec![
        Block::Para("The market measured: LLM inference sold per token through public APIs, as the panel's endpoints offer it at their list prices. Weights are the determination's own: each provider's weight in the day's trimmed mean after the provider cap (the methodology's section 5), so concentration is measured on what actually sets the value.".into()),
        Block::Table {
            head: [
                "tier",
                "latest day: value (95% interval, as signed in its bundle)",
                "endpoints with weight",
                "providers with weight",
                "price sources",
                "distinct models",
                "HHI",
                "top-1 / top-3 share",
                &format!("HHI over {WINDOW_DAYS} days (min / median / max)"),
            ]
            .map(String::from)
            .to_vec(),
            rows,
        },
        Block::List(vec![
            format!(
                "Geography: endpoints in {}; probed from {}.",
                if regions.is_empty() {
                    "regions not described (see the notes)".to_string()
                } else {
                    regions.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                },
                if vantages.is_empty() {
                    "one vantage (the publisher's own)".to_string()
                } else {
                    format!(
                        "{} vantages: {}",
                        vantages.len(),
                        vantages.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                    )
                }
            ),
            "Participants: the providers above sell the tokens; the buyers are anyone with an API key (no transaction data is used).".into(),
            "Price sources: endpoints serving the same open weights at the same list price count as one (methodology 1.4.0); a provider's own model is its own source.".into(),
            person("who made each open model (providers.toml records the weights' name, not their maker)"),
        ]),
    ];
    if !notes.is_empty() {
        blocks.push(Block::List(notes));
    }
    sections.push(Section {
        title: "3. The market the panel describes".into(),
        blocks,
    });

    let mut rows = Vec::new();
    for f in &figs {
        rows.push(vec![
            f.tier.clone(),
            f.days.to_string(),
            f.attempts.to_string(),
            f.input_observations.to_string(),
            f.statuses
                .iter()
                .map(|(s, n)| format!("{s} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
            f.restated.to_string(),
        ]);
    }
    sections.push(Section {
        title: "4. Input data".into(),
        blocks: vec![
            Block::List(vec![
                "Observations: every probe attempt the oracle's workers send to each endpoint (hourly, on a schedule committed before the day and revealed after it), with its HTTP outcome, failure class, timings, the provider's reported tokens, the grade and the cost at list price. Transaction data is not used: the index is a price of delivered work, measured.".into(),
                "List prices: each endpoint's published price schedule, recorded in an append-only price book with its source; corrections restate days inside the restatement window.".into(),
                "Each determination names the Merkle root of its input observations and the price-book version it used; its audit bundle lets anyone replay it.".into(),
            ]),
            Block::Table {
                head: [
                    "tier",
                    &format!("days in the last {WINDOW_DAYS}"),
                    "attempts",
                    "input observations",
                    "statuses",
                    "restated days",
                ]
                .map(String::from)
                .to_vec(),
                rows,
            },
        ],
    });

    sections.push(Section {
        title: "5. Discretion, and who exercises it".into(),
        blocks: vec![Block::Table {
            head: ["point of discretion", "who", "how it is bounded"].map(String::from).to_vec(),
            rows: [
                ["The panel: which endpoints are probed and under which provider", "the administrator", "a notice (panel_add, panel_remove, panel_regroup; minor or patch class, 30 or 5 business days ahead)"],
                ["The methodology and the probe suite", "the administrator", "a notice; a new methodology is major (90 days ahead, with a public consultation)"],
                ["List-price corrections", "the administrator", "recorded in the append-only price book with a source; a day restates only inside its restatement window and above the materiality threshold"],
                ["Publishing a day with no observations", "the administrator", "`sit publish --allow-empty`: the day is CONTINGENCY or SUSPENDED by the same rules, never a value"],
                ["Emergency changes", "the administrator", "an emergency notice with its reason, effective at the start of the day after next, flagged wherever it applies"],
                ["Signing keys: rotation and revocation", "the administrator", "notices; verifiers follow the key set from the genesis key"],
                ["Ceasing a tier", "the administrator", "a cessation notice (major: 90 days ahead, with a consultation)"],
                ["Eligibility, trimming, weights, contingency", "nobody", "automatic, by the methodology's parameters, every day"],
            ]
            .iter()
            .map(|r| r.iter().map(|c| c.to_string()).collect())
            .collect(),
        }],
    });

    sections.push(Section {
        title: "6. When data is insufficient".into(),
        blocks: vec![Block::List(vec![
            format!(
                "A partition (hour) is valid with at least {} eligible endpoints; an endpoint is eligible with at least {} attempts in its {}-hour window and availability at least {}.",
                m.min_endpoints, m.min_attempts_in_window, m.eligibility_window_hours, pct(m.availability_floor)
            ),
            format!(
                "A day is set from data with at least {} of {} partitions valid; otherwise it is CONTINGENCY and carries the last value set from data forward, or SUSPENDED when there is none. Neither is a value set from data, and the status says so on every record.",
                m.min_valid_partitions, m.partitions_per_day
            ),
            format!(
                "Trimming: {} of the endpoint prices each side; no endpoint weighs more than {}.",
                pct(m.trim_fraction), pct(m.max_endpoint_weight)
            ),
        ])],
    });

    let ceased: Vec<String> = state
        .as_ref()
        .map(|s| s.ceased.iter().cloned().collect())
        .unwrap_or_default();
    let mut notice_rows = Vec::new();
    for n in &i.notices {
        notice_rows.push(vec![
            n.id.clone(),
            n.class.name().to_string(),
            n.published_at.clone(),
            n.effective_at.clone(),
            n.reason.clone(),
        ]);
    }
    let mut blocks = vec![Block::List(vec![
        "Every change of what the index is made of is announced by a signed notice before it takes effect (minimum notice by class: patch 5 business days, minor 30 days, major 90 days with a consultation); a day is always determined under the rules in force at its start and replays under them for ever.".into(),
        "Cessation: a tier ceases by a major notice (90 days ahead, with a consultation); its published days stay served and verifiable, and contracts on it settle on the days published before the cessation.".into(),
        person("the plan for the benchmark's orderly cessation as a whole (successor administrator, archive custody)"),
        if ceased.is_empty() {
            "Ceased tiers: none.".into()
        } else {
            format!("Ceased tiers: {}.", ceased.join(", "))
        },
    ])];
    if notice_rows.is_empty() {
        blocks.push(Block::Para(
            "No notices were published by this date (a data folder made before notices existed)."
                .into(),
        ));
    } else {
        blocks.push(Block::Table {
            head: ["notice", "class", "published", "effective", "reason"]
                .map(String::from)
                .to_vec(),
            rows: notice_rows,
        });
    }
    if let Some(s) = &state {
        blocks.push(Block::List(vec![
            format!(
                "In force: methodology {}, suite {}, {} panel endpoints, signing keys {}.",
                s.methodology
                    .as_ref()
                    .map(|(h, v)| format!("{v} ({})", &h[..h.len().min(16)]))
                    .unwrap_or_else(|| "as built".into()),
                s.suite
                    .as_ref()
                    .map(|(h, v)| format!("{v} ({})", &h[..h.len().min(16)]))
                    .unwrap_or_else(|| "as built".into()),
                s.panel.len(),
                s.keys.join(", ")
            ),
            if s.emergencies.is_empty() {
                "Emergency notices in force: none.".into()
            } else {
                format!("Emergency notices in force: {}.", s.emergencies.join(", "))
            },
        ]));
    }
    sections.push(Section {
        title: "7. Changes, cessation, and the notices in force".into(),
        blocks,
    });

    Doc {
        title: format!("Benchmark statement: the SIT index, as of {}", i.as_of),
        sections,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(s: &str) -> Fixed {
        Fixed::parse(s).unwrap()
    }

    #[test]
    fn concentration_is_hhi_and_top_shares_by_hand() {
        // shares 0.5, 0.3, 0.2: HHI = 2500 + 900 + 400 = 3800; top-1 50%, top-3 100%
        let c = concentration(&[f("0.3"), f("0.5"), f("0.2")]).unwrap();
        assert_eq!(c.hhi, 3800);
        assert_eq!((c.top1, c.top3), (f("0.5"), f("1")));
        // four equal shares: 2500; top-3 75%
        let c = concentration(&[f("0.25"); 4]).unwrap();
        assert_eq!((c.hhi, c.top3), (2500, f("0.75")));
        // one provider: 10,000
        assert_eq!(concentration(&[f("1")]).unwrap().hhi, 10_000);
        // weights that sum to 1 up to rounding: normalised by their sum
        let third = f("0.333333333");
        assert_eq!(concentration(&[third; 3]).unwrap().hhi, 3333);
        assert!(concentration(&[]).is_none());
        assert!(concentration(&[Fixed(0)]).is_none());
    }
}
