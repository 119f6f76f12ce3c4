//! Tables for people: a run's attempts per endpoint and determinations, as `sit demo`,
//! `sit probe` and `sit index` print them (one renderer for all of them); and `sit report`,
//! the documents of [`crate::report`] written from a data folder's archive.

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

/// `sit report`.
pub(super) fn run(paths: &super::Paths, what: super::ReportWhat) -> crate::cli::error::Result<()> {
    use crate::cli::error::Error;
    use sit_core::time::{parse_utc_ms, Date};
    let super::ReportWhat::Statement { as_of, format } = what;
    let archive = crate::archive::Archive::for_data(&paths.data);
    let registry = sit_core::versions::Registry::embedded();
    let snap = crate::server::snapshot::load(&archive, registry.current_suite());
    for e in &snap.errors {
        eprintln!("warning: {e}");
    }
    let latest_published = snap
        .records
        .values()
        .flat_map(|m| m.values().flatten())
        .filter_map(|v| parse_utc_ms(&v.publication.published_at).ok())
        .max()
        .map(Date::of_ms);
    let as_of = match as_of {
        Some(d) => Date::parse(&d).map_err(|e| {
            Error::Usage(format!("--as-of `{d}`: {e} (a date: YYYY-MM-DD)"))
        })?,
        // the day of the latest publication: everything published is in
        None => latest_published.ok_or_else(|| {
            Error::Usage(format!(
                "no day is published in {} yet: nothing to state (publish a day, or name another --data folder)",
                archive.root().display()
            ))
        })?,
    };
    let end = Date(as_of.0 + 1).start_ms();
    let by = |published_at: &str| parse_utc_ms(published_at).is_ok_and(|t| t < end);
    // per tier and date: the last version published by the end of the as-of day
    let records = snap
        .records
        .iter()
        .map(|(tier, days)| {
            let m = days
                .range(..=as_of)
                .filter_map(|(d, versions)| {
                    versions
                        .iter()
                        .rev()
                        .find(|v| by(&v.publication.published_at))
                        .map(|v| (*d, v.publication.clone()))
                })
                .collect();
            (tier.clone(), m)
        })
        .collect::<std::collections::BTreeMap<_, std::collections::BTreeMap<_, _>>>();
    let notices: Vec<_> = snap
        .notices
        .iter()
        .filter(|n| by(&n.published_at))
        .cloned()
        .collect();
    let mut config = match crate::config::load(&paths.providers) {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!(
                "warning: {e}: the statement leaves the panel's regions, models and price sources undescribed"
            );
            None
        }
    };
    // A demo's folder: its panel is the embedded simulated market's (described by the
    // simulator, not by providers.toml)
    let market = crate::sim::Market::default_market(1);
    let sim_ids: Vec<&str> = market.providers.iter().map(|p| p.id.as_str()).collect();
    // the endpoints the stated days name
    let panel: std::collections::BTreeSet<String> = records
        .values()
        .flat_map(|m| m.values())
        .flat_map(|p| &p.determination.leave_one_out)
        .map(|l| l.endpoint.clone())
        .collect();
    if !panel.is_empty() && panel.iter().all(|e| sim_ids.contains(&e.as_str())) {
        let urls: Vec<String> = sim_ids
            .iter()
            .map(|_| "http://127.0.0.1:9/v1".to_string())
            .collect();
        let sim = market.endpoints(&urls, Date(as_of.0 + 1));
        match &mut config {
            Some(c) => {
                let missing: Vec<_> = sim
                    .into_iter()
                    .filter(|e| c.endpoint(&e.id).is_none())
                    .collect();
                c.endpoints.extend(missing);
            }
            None => {
                let text = crate::sim::providers_toml(&sim, as_of.start_ms());
                config = crate::config::parse("(the simulated market)", &text).ok();
            }
        }
        eprintln!("note: the panel is the embedded simulated market's: described by the simulator");
    }
    // the methodology the latest day names
    let named = records
        .values()
        .filter_map(|m| m.values().next_back())
        .max_by_key(|p| p.determination.date)
        .map(|p| p.determination.methodology_hash.clone());
    let methodology = named
        .and_then(|h| registry.methodology(&h).ok())
        .unwrap_or_else(|| registry.current_methodology());
    // each tier's latest stated day: its interval as signed in its bundle, for the version
    // stated
    let intervals = records
        .iter()
        .filter_map(|(tier, days)| {
            let (date, p) = days.iter().next_back()?;
            let i = snap.intervals.get(&(tier.clone(), *date, p.version))?;
            Some(((tier.clone(), *date), i.clone()))
        })
        .collect();
    let inputs = crate::report::statement::Inputs {
        intervals,
        as_of,
        records,
        notices,
        config: config.as_ref(),
        suite: registry.current_suite(),
        methodology,
    };
    match format.as_str() {
        "json" => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "as_of": as_of.to_string(),
                "tiers": crate::report::statement::figures(&inputs),
                "statement": crate::report::statement::statement(&inputs),
            }))
            .expect("figures serialise")
        ),
        "html" => print!("{}", crate::report::statement::statement(&inputs).html()),
        _ => print!(
            "{}",
            crate::report::statement::statement(&inputs).markdown()
        ),
    }
    Ok(())
}
