//! Tables for people: a run's attempts per endpoint and determinations, as `sit demo`,
//! `sit probe` and `sit index` print them (one renderer for all of them).

use crate::worker::runner::RunSummary;
use sit_core::index::Determination;

/// A human table of a run's attempts per endpoint: availability, correct and delivered as
/// shares of attempts, failures by class.
pub fn render_summary(s: &RunSummary) -> String {
    let width = s
        .per_endpoint
        .keys()
        .map(|k| k.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let mut out = format!(
        "{:<width$} {:>8} {:>9} {:>8} {:>9}  failures\n",
        "endpoint", "attempts", "available", "correct", "delivered"
    );
    for (id, e) in &s.per_endpoint {
        let pct = |n: u64| format!("{:.1}%", 100.0 * n as f64 / e.attempts.max(1) as f64);
        let fails: Vec<String> = e.failures.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out.push_str(&format!(
            "{:<width$} {:>8} {:>9} {:>8} {:>9}  {}\n",
            id,
            e.attempts,
            pct(e.succeeded),
            pct(e.correct),
            pct(e.delivered),
            fails.join(" ")
        ));
    }
    out
}

/// A human table of determinations.
pub fn render_table(ds: &[Determination]) -> String {
    let mut s = format!(
        "{:<10}  {:<4}  {:>14}  {:<11}  {:>9}  {:>7}  {:>10}\n",
        "date", "tier", "USD/1M SIT", "status", "endpoints", "valid", "dispersion"
    );
    for d in ds {
        let status = serde_json::to_value(d.status)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        s.push_str(&format!(
            "{:<10}  {:<4}  {:>14}  {:<11}  {:>4}/{:<4}  {:>4}/24  {:>10}\n",
            d.date.to_string(),
            d.tier,
            d.value.map(|v| v.round_dp(6)).unwrap_or_else(|| "-".into()),
            status,
            d.counts.endpoints_eligible,
            d.counts.endpoints_observed,
            d.counts.valid_partitions,
            d.dispersion
                .map(|v| v.round_dp(4))
                .unwrap_or_else(|| "-".into()),
        ));
        if let Some(c) = &d.contingency {
            s.push_str(&format!("            ^ {}\n", c.reason));
        } else if let Some(c) = &d.chain {
            match c.basis.as_str() {
                "base_levels" if d.status == sit_core::index::Status::Base => s.push_str(
                    "            ^ the chain starts here: the anchor (trimmed geometric mean of day prices), not for settlement\n",
                ),
                "base_levels" => s.push_str(
                    "            ^ the chain starts here: the anchor (trimmed geometric mean of day prices)\n",
                ),
                "base_carried" => s.push_str(
                    "            ^ too few matched relatives: the previous level carries, references restart\n",
                ),
                _ => {}
            }
        }
    }
    s
}
