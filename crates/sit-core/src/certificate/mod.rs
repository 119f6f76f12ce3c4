//! The certificate: what was measured, the verdict per tier, and the rules that connect them.
//! Pure: built from observations, checked by recomputation, no I/O.
//!
//! Verdict of a tier (all checks must pass; each check is stated, passing or not):
//! 1. `attempts`: at least the fewest attempts with which a perfect score could reach the
//!    threshold (t1 16, t2 9, t3 4 at the shipped thresholds);
//! 2. `quality`: the Wilson 95% lower bound of the pass rate (correct answers among answered
//!    attempts, as in the index) is at least the tier's pass threshold;
//! 3. `availability`: the Wilson 95% lower bound of answered / attempted is at least the
//!    methodology's availability floor (0.90);
//! 4. `sla_ttft`, `sla_e2e`: the p90 time to first answer token and the p90 end-to-end time of
//!    answered attempts are within the tier's SLA.
//!
//! Flags never change a verdict; they tell a buyer what to look at: reported output usage
//! (reasoning excluded) above 1.15x the reference tokenizer's count, attempts without usage,
//! cached tokens despite the per-request nonce, content before the role, streams without their
//! end marker.
//!
//! [`stats`] holds the integer statistics (Wilson bounds, latency histograms); [`challenge`]
//! the oracle-issued challenges a certification's seed can derive from.

pub mod challenge;
pub mod stats;

use crate::fixed::{Fixed, ONE};
use crate::observation::{FailureClass, Observation};
use crate::probes::Suite;
use serde::{Deserialize, Serialize};
use stats::{attempts_needed, min_attempts, rate, wilson_lower, Hist, Percentiles};
use std::collections::BTreeMap;

/// Schema tag of a signed certificate.
pub const SCHEMA: &str = "sit-certificate/1";

/// Reported/reference output ratio above which usage is flagged as inflated.
pub const INFLATION_FLAG: Fixed = Fixed(1_150_000_000);

/// The endpoint certified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointInfo {
    /// The endpoint's id.
    pub id: String,
    /// Its provider.
    pub provider: String,
    /// The API base URL probed.
    pub base_url: String,
    /// The API dialect spoken.
    pub dialect: String,
    /// The model name sent in every request.
    pub model_requested: String,
    /// Model names the server returned, with how many answers carried each.
    pub models_returned: BTreeMap<String, u64>,
}

/// A version the certificate was made under: the probe suite or the methodology.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    /// Its version string.
    pub version: String,
    /// Its hash (what identifies it).
    pub hash: String,
}

/// When the certification ran, and its seed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// When the run started (RFC 3339, UTC).
    pub started_at: String,
    /// When it finished (RFC 3339, UTC).
    pub finished_at: String,
    /// Master seed of the probe seeds and nonces (fresh per run; recorded for replay).
    pub seed: String,
}

/// One probe family's counts within a tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FamilyFigures {
    /// The family's id.
    pub family: String,
    /// Attempts of this family.
    pub attempts: u64,
    /// Attempts that completed without a failure.
    pub answered: u64,
    /// Answered attempts graded correct.
    pub correct: u64,
    /// `correct / answered` ([`Fixed`], 9 places; 0 with nothing answered).
    pub pass_rate: Fixed,
    /// The Wilson 95% lower bound of the pass rate.
    pub pass_rate_lower95: Fixed,
}

/// Latency and speed percentiles of a tier's answered attempts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latency {
    /// Time to the first body byte, microseconds.
    pub ttfb_us: Percentiles,
    /// Time to the first answer token, microseconds.
    pub ttft_us: Percentiles,
    /// End to end (last byte), microseconds.
    pub e2e_us: Percentiles,
    /// Reference tokens per second after the first token, x1000.
    pub output_speed_milli_tps: Percentiles,
}

/// One check of a tier's verdict, stated whether it passed or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// `attempts`, `quality`, `availability`, `sla_ttft` or `sla_e2e`.
    pub name: String,
    /// Whether the check passed.
    pub ok: bool,
    /// The figures it compared, in words.
    pub detail: String,
}

/// A tier's verdict: met when every check passes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// Every check passed.
    pub pass: bool,
    /// The checks, in the order of the module documentation.
    pub checks: Vec<Check>,
    /// When quality fell short only for lack of attempts: attempts needed at the observed rate.
    pub attempts_needed: Option<u64>,
}

/// What was measured in one tier, and the verdict that follows. Rates and bounds are
/// [`Fixed`] fractions (9 places).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierFigures {
    /// The tier's id.
    pub tier: String,
    /// The tier's pass threshold (from the suite).
    pub pass_threshold: Fixed,
    /// The availability floor (from the methodology).
    pub availability_floor: Fixed,
    /// The tier's SLA for time to first answer token, milliseconds.
    pub sla_ttft_ms: u64,
    /// The tier's SLA for end-to-end time, milliseconds.
    pub sla_e2e_ms: u64,
    /// The fewest attempts with which a perfect score reaches the threshold
    /// ([`stats::min_attempts`]).
    pub min_attempts: u64,
    /// Attempts made in the tier.
    pub attempts: u64,
    /// Attempts that completed without a failure.
    pub answered: u64,
    /// Answered attempts graded correct.
    pub correct: u64,
    /// `correct / answered`.
    pub pass_rate: Fixed,
    /// The Wilson 95% lower bound of the pass rate.
    pub pass_rate_lower95: Fixed,
    /// `answered / attempts`.
    pub availability: Fixed,
    /// The Wilson 95% lower bound of the availability.
    pub availability_lower95: Fixed,
    /// Answered attempts within both SLA limits.
    pub within_sla: u64,
    /// Per family, in the tier's order.
    pub families: Vec<FamilyFigures>,
    /// Percentiles of the answered attempts.
    pub latency: Latency,
    /// Failed attempts by failure class name.
    pub failures: BTreeMap<String, u64>,
    /// The verdict ([`verdict`] of these figures).
    pub verdict: Verdict,
}

/// Token usage as the provider reported it, beside the reference tokenizer's counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenFigures {
    /// Every attempt that reported usage (answered or not) and what it reported: what the
    /// provider would bill, to compare with its own counters.
    pub attempts_with_usage: u64,
    /// Input tokens reported by those attempts.
    pub reported_input_all: u64,
    /// Output tokens reported by those attempts.
    pub reported_output_all: u64,
    /// Answered attempts.
    pub answered: u64,
    /// Answered attempts that reported input and output usage (the sums below are theirs).
    pub answered_with_usage: u64,
    /// Input tokens they reported.
    pub reported_input: u64,
    /// Their reference input tokens (the request's message text).
    pub reference_input: u64,
    /// Output tokens they reported.
    pub reported_output: u64,
    /// Reasoning tokens they reported.
    pub reported_reasoning: u64,
    /// Their reference output tokens (the answer text).
    pub reference_output: u64,
    /// reported input / reference input (answers with usage).
    pub input_ratio: Option<Fixed>,
    /// (reported output - reported reasoning) / reference output (answers with usage).
    pub output_ratio: Option<Fixed>,
    /// Answers that reported reasoning tokens.
    pub answers_with_reasoning: u64,
    /// Answers that reported cached input tokens.
    pub answers_with_cached: u64,
    /// Cached input tokens the answers reported.
    pub reported_cached: u64,
}

/// Streaming conformance of the attempts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conformance {
    /// Attempts that got a 2xx stream.
    pub streams: u64,
    /// Streams that carried a usage chunk.
    pub usage_chunk: u64,
    /// Streams that ended without the dialect's end marker.
    pub missing_end_marker: u64,
    /// Streams that sent content before announcing the assistant role.
    pub content_before_role: u64,
}

/// Something a buyer should look at; it never changes a verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flag {
    /// `usage_inflated`, `usage_missing`, `cached_despite_nonce`, `content_before_role` or
    /// `missing_end_marker`.
    pub code: String,
    /// The figures behind it, in words.
    pub detail: String,
}

/// Everything measured (the certificate without its signing facts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Figures {
    /// Every attempt, all tiers.
    pub attempts: u64,
    /// Per tier, in the order asked for.
    pub tiers: Vec<TierFigures>,
    /// Failed attempts by failure class name, all tiers.
    pub failures: BTreeMap<String, u64>,
    /// Token usage.
    pub tokens: TokenFigures,
    /// Streaming conformance.
    pub conformance: Conformance,
    /// The flags that follow from `tokens` and `conformance` ([`flags`]).
    pub flags: Vec<Flag>,
}

/// The signed certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    /// [`SCHEMA`].
    pub schema: String,
    /// The endpoint certified.
    pub endpoint: EndpointInfo,
    /// The probe suite the attempts were made with.
    pub suite: Reference,
    /// The methodology whose availability floor the verdicts use.
    pub methodology: Reference,
    /// When the run took place, and its seed.
    pub window: Window,
    /// Everything measured (its members inline in the certificate).
    #[serde(flatten)]
    pub figures: Figures,
    /// When the certificate was signed (RFC 3339, UTC).
    pub certified_at: String,
    /// The certifier's key id.
    pub key_id: String,
    /// How the master seed was chosen: `self-seeded` (the certifier chose it, and could have
    /// run until it liked the result) or `oracle challenge` (absent in older certificates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seeding: Option<String>,
    /// The oracle's challenge the seed derives from, as the exact signed document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge: Option<String>,
}

fn pct(v: Fixed) -> String {
    format!("{}%", Fixed(v.0 * 100).round_dp(1))
}

fn ms(us: u64) -> String {
    format!("{}.{:03} ms", us / 1000, us % 1000)
}

/// The verdict that follows from a tier's figures. `sit verify-cert` calls this too.
pub fn verdict(t: &TierFigures) -> Verdict {
    let mut checks = Vec::new();
    let mut check = |name: &str, ok: bool, detail: String| {
        checks.push(Check {
            name: name.into(),
            ok,
            detail,
        })
    };
    check(
        "attempts",
        t.attempts >= t.min_attempts,
        format!(
            "{} attempts; at least {} are needed for a perfect score's 95% lower bound to reach {}",
            t.attempts,
            t.min_attempts,
            pct(t.pass_threshold)
        ),
    );
    check(
        "quality",
        t.answered > 0 && t.pass_rate_lower95 >= t.pass_threshold,
        format!(
            "pass rate {} ({} of {} answered), 95% lower bound {} vs threshold {}",
            pct(t.pass_rate),
            t.correct,
            t.answered,
            pct(t.pass_rate_lower95),
            pct(t.pass_threshold)
        ),
    );
    check(
        "availability",
        t.availability_lower95 >= t.availability_floor,
        format!(
            "{} of {} attempts answered ({}), 95% lower bound {} vs floor {}",
            t.answered,
            t.attempts,
            pct(t.availability),
            pct(t.availability_lower95),
            pct(t.availability_floor)
        ),
    );
    let answered = t.latency.ttft_us.count > 0;
    check(
        "sla_ttft",
        answered && t.latency.ttft_us.p90 <= t.sla_ttft_ms * 1000,
        if answered {
            format!(
                "p90 time to first token {} vs SLA {} ms",
                ms(t.latency.ttft_us.p90),
                t.sla_ttft_ms
            )
        } else {
            "no answered attempt to time".into()
        },
    );
    check(
        "sla_e2e",
        answered && t.latency.e2e_us.p90 <= t.sla_e2e_ms * 1000,
        if answered {
            format!(
                "p90 end-to-end {} vs SLA {} ms",
                ms(t.latency.e2e_us.p90),
                t.sla_e2e_ms
            )
        } else {
            "no answered attempt to time".into()
        },
    );
    let quality_short = !checks[1].ok;
    Verdict {
        pass: checks.iter().all(|c| c.ok),
        checks,
        attempts_needed: if quality_short {
            attempts_needed(t.correct, t.answered, t.pass_threshold)
        } else {
            None
        },
    }
}

fn answered(o: &Observation) -> bool {
    o.failure.is_none()
}

fn ratio(num: u64, den: u64) -> Option<Fixed> {
    (den > 0).then(|| {
        Fixed(crate::fixed::div_round_half_even(
            num as i128 * ONE,
            den as i128,
        ))
    })
}

fn count_failures<'a>(obs: impl Iterator<Item = &'a Observation>) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for o in obs {
        if let Some(f) = &o.failure {
            *m.entry(f.class.as_str().to_string()).or_insert(0) += 1;
        }
    }
    m
}

/// Everything a certificate states, from the attempts made. `tiers` fixes the order.
pub fn figures(
    suite: &Suite,
    availability_floor: Fixed,
    tiers: &[String],
    obs: &[Observation],
) -> Figures {
    let mut out_tiers = Vec::new();
    for tid in tiers {
        let tier = suite.tier(tid).expect("tiers checked by the caller");
        let these: Vec<&Observation> = obs.iter().filter(|o| &o.tier == tid).collect();
        let attempts = these.len() as u64;
        let answered_n = these.iter().filter(|o| answered(o)).count() as u64;
        let correct = these.iter().filter(|o| answered(o) && o.correct).count() as u64;
        let families = tier
            .families
            .iter()
            .map(|f| {
                let fo: Vec<&&Observation> = these.iter().filter(|o| &o.family == f).collect();
                let a = fo.iter().filter(|o| answered(o)).count() as u64;
                let c = fo.iter().filter(|o| answered(o) && o.correct).count() as u64;
                FamilyFigures {
                    family: f.clone(),
                    attempts: fo.len() as u64,
                    answered: a,
                    correct: c,
                    pass_rate: rate(c, a),
                    pass_rate_lower95: wilson_lower(c, a),
                }
            })
            .collect();
        let (mut ttfb, mut ttft, mut e2e, mut speed) = (
            Hist::default(),
            Hist::default(),
            Hist::default(),
            Hist::default(),
        );
        let mut within = 0;
        for o in these.iter().filter(|o| answered(o)) {
            let t = &o.timings;
            if let Some(v) = t.first_byte_ns {
                ttfb.record(v / 1000);
            }
            if let Some(v) = t.first_token_ns {
                ttft.record(v / 1000);
            }
            if let Some(v) = t.last_byte_ns {
                e2e.record(v / 1000);
            }
            if let (Some(a), Some(b)) = (t.first_token_ns, t.last_byte_ns) {
                let out = o.tokens.ref_output;
                if out > 1 && b > a {
                    speed.record(((out - 1) as u128 * 1_000_000_000_000 / (b - a) as u128) as u64);
                }
            }
            within += crate::sit::within_sla(t, tier) as u64;
        }
        let mut tf = TierFigures {
            tier: tid.clone(),
            pass_threshold: tier.pass_threshold,
            availability_floor,
            sla_ttft_ms: tier.sla_ttft_ms,
            sla_e2e_ms: tier.sla_e2e_ms,
            min_attempts: min_attempts(tier.pass_threshold),
            attempts,
            answered: answered_n,
            correct,
            pass_rate: rate(correct, answered_n),
            pass_rate_lower95: wilson_lower(correct, answered_n),
            availability: rate(answered_n, attempts),
            availability_lower95: wilson_lower(answered_n, attempts),
            within_sla: within,
            families,
            latency: Latency {
                ttfb_us: ttfb.summary(),
                ttft_us: ttft.summary(),
                e2e_us: e2e.summary(),
                output_speed_milli_tps: speed.summary(),
            },
            failures: count_failures(these.iter().copied()),
            verdict: Verdict {
                pass: false,
                checks: vec![],
                attempts_needed: None,
            },
        };
        tf.verdict = verdict(&tf);
        out_tiers.push(tf);
    }

    let mut tk = TokenFigures::default();
    let mut cf = Conformance::default();
    for o in obs {
        let stream = o.http_status.is_some_and(|s| (200..300).contains(&s));
        if stream {
            cf.streams += 1;
            cf.usage_chunk += o.tokens.usage_reported as u64;
            cf.missing_end_marker +=
                o.failure
                    .as_ref()
                    .is_some_and(|f| f.class == FailureClass::Truncated) as u64;
            cf.content_before_role += o.content_before_role as u64;
        }
        let t = &o.tokens;
        if t.usage_reported {
            tk.attempts_with_usage += 1;
            tk.reported_input_all += t.reported_input.unwrap_or(0);
            tk.reported_output_all += t.reported_output.unwrap_or(0);
        }
        if !answered(o) {
            continue;
        }
        tk.answered += 1;
        if let (true, Some(i), Some(out)) = (t.usage_reported, t.reported_input, t.reported_output)
        {
            tk.answered_with_usage += 1;
            tk.reported_input += i;
            tk.reference_input += t.ref_input;
            tk.reported_output += out;
            tk.reported_reasoning += t.reported_reasoning.unwrap_or(0);
            tk.reference_output += t.ref_output;
        }
        tk.answers_with_reasoning += (t.reported_reasoning.unwrap_or(0) > 0) as u64;
        tk.answers_with_cached += (t.reported_cached.unwrap_or(0) > 0) as u64;
        tk.reported_cached += t.reported_cached.unwrap_or(0);
    }
    tk.input_ratio = ratio(tk.reported_input, tk.reference_input);
    tk.output_ratio = ratio(
        tk.reported_output.saturating_sub(tk.reported_reasoning),
        tk.reference_output,
    );
    let flags = flags(&tk, &cf);
    Figures {
        attempts: obs.len() as u64,
        tiers: out_tiers,
        failures: count_failures(obs.iter()),
        tokens: tk,
        conformance: cf,
        flags,
    }
}

/// The flags that follow from the token and conformance figures.
pub fn flags(tk: &TokenFigures, cf: &Conformance) -> Vec<Flag> {
    let mut f = Vec::new();
    let mut flag = |code: &str, detail: String| {
        f.push(Flag {
            code: code.into(),
            detail,
        })
    };
    if let Some(r) = tk.output_ratio.filter(|r| *r > INFLATION_FLAG) {
        flag(
            "usage_inflated",
            format!(
                "reported output tokens (reasoning excluded) are {}x the reference tokenizer's count (flag above {}x)",
                r.round_dp(3),
                INFLATION_FLAG.round_dp(2)
            ),
        );
    }
    if tk.answered > tk.answered_with_usage {
        flag(
            "usage_missing",
            format!(
                "{} of {} answers carried no usage",
                tk.answered - tk.answered_with_usage,
                tk.answered
            ),
        );
    }
    if tk.answers_with_cached > 0 {
        flag(
            "cached_despite_nonce",
            format!(
                "{} answers reported {} cached prompt tokens although every prompt carried a fresh nonce",
                tk.answers_with_cached, tk.reported_cached
            ),
        );
    }
    if cf.content_before_role > 0 {
        flag(
            "content_before_role",
            format!(
                "{} streams sent content before the assistant role",
                cf.content_before_role
            ),
        );
    }
    if cf.missing_end_marker > 0 {
        flag(
            "missing_end_marker",
            format!(
                "{} streams ended without the end marker",
                cf.missing_end_marker
            ),
        );
    }
    f
}

/// Internal consistency of a certificate: every derived figure and every verdict recomputed
/// from the counts. Returns the first inconsistency found.
pub fn check_consistency(c: &Certificate, suite: &Suite) -> Result<(), String> {
    if c.schema != SCHEMA {
        return Err(format!("schema is `{}`, expected `{SCHEMA}`", c.schema));
    }
    if c.suite.hash != suite.hash {
        return Err(format!(
            "made with probe suite {} but this build's suite is {}; it cannot vouch for other probes",
            c.suite.hash, suite.hash
        ));
    }
    let f = &c.figures;
    let mut tier_attempts = 0;
    for t in &f.tiers {
        let at = |what: &str| format!("tier {}: {what}", t.tier);
        let spec = suite
            .tier(&t.tier)
            .ok_or_else(|| at("not a tier of this suite"))?;
        if (t.pass_threshold, t.sla_ttft_ms, t.sla_e2e_ms)
            != (spec.pass_threshold, spec.sla_ttft_ms, spec.sla_e2e_ms)
        {
            return Err(at("thresholds or SLA differ from the suite's"));
        }
        if t.min_attempts != min_attempts(t.pass_threshold) {
            return Err(at("min_attempts does not follow from the threshold"));
        }
        if t.correct > t.answered || t.answered > t.attempts {
            return Err(at(
                "counts are impossible (correct <= answered <= attempts)",
            ));
        }
        let fam_sum = |g: fn(&FamilyFigures) -> u64| t.families.iter().map(g).sum::<u64>();
        if (
            fam_sum(|x| x.attempts),
            fam_sum(|x| x.answered),
            fam_sum(|x| x.correct),
        ) != (t.attempts, t.answered, t.correct)
        {
            return Err(at("family counts do not add up to the tier's"));
        }
        for x in &t.families {
            if x.pass_rate != rate(x.correct, x.answered)
                || x.pass_rate_lower95 != wilson_lower(x.correct, x.answered)
            {
                return Err(at(&format!(
                    "family {}: pass rate or bound does not follow from its counts",
                    x.family
                )));
            }
        }
        if t.pass_rate != rate(t.correct, t.answered)
            || t.pass_rate_lower95 != wilson_lower(t.correct, t.answered)
        {
            return Err(at("pass rate or its bound does not follow from the counts"));
        }
        if t.availability != rate(t.answered, t.attempts)
            || t.availability_lower95 != wilson_lower(t.answered, t.attempts)
        {
            return Err(at(
                "availability or its bound does not follow from the counts",
            ));
        }
        if t.failures.values().sum::<u64>() != t.attempts - t.answered {
            return Err(at("failure classes do not add up to the failed attempts"));
        }
        if t.latency.ttft_us.count > t.answered || t.within_sla > t.answered {
            return Err(at("more timed answers than answers"));
        }
        if verdict(t) != t.verdict {
            return Err(at("the verdict does not follow from the figures"));
        }
        tier_attempts += t.attempts;
    }
    if tier_attempts != f.attempts {
        return Err("tier attempts do not add up to the total".into());
    }
    let mut all = BTreeMap::new();
    for t in &f.tiers {
        for (k, v) in &t.failures {
            *all.entry(k.clone()).or_insert(0) += v;
        }
    }
    if all != f.failures {
        return Err("failure classes do not add up across tiers".into());
    }
    let tk = &f.tokens;
    if tk.input_ratio != ratio(tk.reported_input, tk.reference_input)
        || tk.output_ratio
            != ratio(
                tk.reported_output.saturating_sub(tk.reported_reasoning),
                tk.reference_output,
            )
    {
        return Err("token ratios do not follow from the token counts".into());
    }
    if flags(tk, &f.conformance) != f.flags {
        return Err("flags do not follow from the token and conformance figures".into());
    }
    Ok(())
}
