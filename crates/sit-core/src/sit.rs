//! SIT normalisation: cost, size and delivered SIT of one attempt. Pure, integer-only.
//!
//! - size = `w_in * ref_tokens(prompt) + w_out * budget_out(tier)` (computed with the probe
//!   instance, see [`crate::probes::Suite::instance`]).
//! - delivered = size when the attempt succeeded, its answer is graded correct **and** it met
//!   the tier SLA (time to first answer token and end to end), else 0.
//! - cost = (billed input - cached) x input price + cached x cached price + billed output x
//!   output price + request fee, with the schedule entry in force at the attempt's time.
//! - the billing basis: the provider's reported usage, or the reference counts when it
//!   reported none ([`billed`]).
//!
//! Units: one raw unit of a [`Rate`](crate::fixed::Rate) is 1e-6 USD per 1,000,000 tokens,
//! i.e. exactly 1e-12 USD = 1 pico-USD per token, so `tokens * rate.0` is the exact cost in
//! pico-USD. No rounding happens here.

use crate::fixed::Pusd;
use crate::observation::{Timings, Tokens};
use crate::price::PriceEntry;
use crate::probes::Tier;

/// Weights of the SIT size formula (integers; see index-methodology.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SitWeights {
    /// Weight of each reference prompt token.
    pub w_in: u64,
    /// Weight of each token of the tier's output budget.
    pub w_out: u64,
}

/// Exact cost of an attempt in pico-USD. The request fee is charged only when something was
/// billed (a refused request with no usage costs nothing).
pub fn cost(tokens: &Tokens, price: &PriceEntry) -> Pusd {
    let cached = tokens.billed_cached.min(tokens.billed_input) as i128;
    let uncached = tokens.billed_input as i128 - cached;
    let out = tokens.billed_output as i128;
    let mut c = uncached * price.input.0 + cached * price.cached_input.0 + out * price.output.0;
    if tokens.billed_input + tokens.billed_output > 0 {
        c += price.request_fee.0;
    }
    Pusd(c)
}

/// Whether the attempt met the tier's latency SLA.
pub fn within_sla(t: &Timings, tier: &Tier) -> bool {
    match (t.first_token_ns, t.last_byte_ns) {
        (Some(ft), Some(end)) => {
            ft <= tier.sla_ttft_ms * 1_000_000 && end <= tier.sla_e2e_ms * 1_000_000
        }
        _ => false,
    }
}

/// Delivered SIT: the size if correct, on time and complete; 0 otherwise.
pub fn delivered(sit_size: u64, succeeded: bool, correct: bool, on_time: bool) -> u64 {
    if succeeded && correct && on_time {
        sit_size
    } else {
        0
    }
}

/// What a reported total's arithmetic says of reasoning (see
/// [`Tokens::reasoning_from_totals`]): `Some(false)` when total = input + output + reasoning,
/// `Some(true)` when total = input + output, `None` when there is no total, no reasoning (or
/// zero: then both sums agree and say nothing) or neither sum holds. Checked arithmetic: a
/// reported figure near `u64::MAX` says nothing either.
pub fn reasoning_from_totals(u: &crate::derive::Usage) -> Option<bool> {
    let (input, output, reasoning, total) = (u.input?, u.output?, u.reasoning?, u.total?);
    if reasoning == 0 {
        return None;
    }
    let visible = input.checked_add(output)?;
    if visible == total {
        Some(true)
    } else if visible.checked_add(reasoning) == Some(total) {
        Some(false)
    } else {
        None
    }
}

/// Billing basis from provider usage, falling back to reference counts when the provider did
/// not report usage (the fallback is flagged by `usage_reported = false`). Reasoning reported
/// apart from the output is billed as output: apart as the stream's totals say
/// (`reasoning_from_totals = Some(false)`), or, when they say nothing, as the endpoint's
/// convention says (`reasoning_in_output = Some(false)`).
pub fn billed(t: &mut Tokens) {
    if t.usage_reported {
        t.billed_input = t.reported_input.unwrap_or(0);
        t.billed_output = t.reported_output.unwrap_or(0)
            + match t.reasoning_from_totals.or(t.reasoning_in_output) {
                Some(false) => t.reported_reasoning.unwrap_or(0),
                _ => 0,
            };
        t.billed_cached = t.reported_cached.unwrap_or(0);
    } else {
        t.billed_input = t.ref_input;
        t.billed_output = t.ref_output;
        t.billed_cached = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixed::Rate;

    fn price() -> PriceEntry {
        PriceEntry {
            effective_from_ms: 0,
            input: Rate::parse("0.15").unwrap(),
            output: Rate::parse("0.60").unwrap(),
            cached_input: Rate::parse("0.075").unwrap(),
            request_fee: Pusd::parse("0.0001").unwrap(),
        }
    }

    #[test]
    fn cost_golden() {
        let t = Tokens {
            billed_input: 1000,
            billed_output: 200,
            billed_cached: 400,
            ..Default::default()
        };
        // 600*0.15e-6 + 400*0.075e-6 + 200*0.6e-6 + 1e-4 = 9e-5 + 3e-5 + 1.2e-4 + 1e-4 = 3.4e-4
        assert_eq!(cost(&t, &price()).to_canonical(), "0.000340000000");
        let none = Tokens::default();
        assert_eq!(cost(&none, &price()), Pusd::ZERO);
    }

    #[test]
    fn delivered_needs_all_three() {
        assert_eq!(delivered(300, true, true, true), 300);
        assert_eq!(delivered(300, true, false, true), 0);
        assert_eq!(delivered(300, true, true, false), 0);
        assert_eq!(delivered(300, false, true, true), 0);
    }

    #[test]
    fn billed_falls_back_to_reference_counts() {
        let mut t = Tokens {
            ref_input: 50,
            ref_output: 7,
            ..Default::default()
        };
        billed(&mut t);
        assert_eq!((t.billed_input, t.billed_output), (50, 7));
        let mut t = Tokens {
            usage_reported: true,
            reported_input: Some(60),
            reported_output: Some(90),
            reported_cached: Some(10),
            ref_input: 50,
            ref_output: 7,
            ..Default::default()
        };
        billed(&mut t);
        assert_eq!(
            (t.billed_input, t.billed_output, t.billed_cached),
            (60, 90, 10)
        );
    }

    proptest::proptest! {
        /// Issue 13: the token triple means one thing whatever the dialect. `reported_*` are
        /// kept as reported; billed input and cached are the reported ones; billed output is
        /// the reported output, plus the reported reasoning exactly when the endpoint's
        /// convention reports reasoning apart; without usage, the reference counts.
        #[test]
        fn billed_fields_obey_their_definitions(
            input in proptest::option::of(0u64..1_000_000),
            output in proptest::option::of(0u64..1_000_000),
            reasoning in proptest::option::of(0u64..1_000_000),
            cached in proptest::option::of(0u64..1_000_000),
            reported in proptest::bool::ANY,
            convention in proptest::option::of(proptest::bool::ANY),
            ref_in in 0u64..10_000,
            ref_out in 0u64..10_000,
        ) {
            let mut t = Tokens {
                usage_reported: reported,
                reported_input: input,
                reported_output: output,
                reported_reasoning: reasoning,
                reported_cached: cached,
                ref_input: ref_in,
                ref_output: ref_out,
                reasoning_in_output: convention,
                ..Default::default()
            };
            let before = t.clone();
            billed(&mut t);
            // nothing reported is rewritten
            proptest::prop_assert_eq!(
                (t.reported_input, t.reported_output, t.reported_reasoning, t.reported_cached),
                (input, output, reasoning, cached)
            );
            proptest::prop_assert_eq!(t.reasoning_in_output, before.reasoning_in_output);
            if reported {
                proptest::prop_assert_eq!(t.billed_input, input.unwrap_or(0));
                proptest::prop_assert_eq!(t.billed_cached, cached.unwrap_or(0));
                let apart = if convention == Some(false) { reasoning.unwrap_or(0) } else { 0 };
                proptest::prop_assert_eq!(t.billed_output, output.unwrap_or(0) + apart);
            } else {
                proptest::prop_assert_eq!((t.billed_input, t.billed_output, t.billed_cached), (ref_in, ref_out, 0));
            }
        }
    }
}
