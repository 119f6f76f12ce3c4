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
    let (as_of, format) = match what {
        super::ReportWhat::Statement { as_of, format } => (as_of, format),
        super::ReportWhat::Suitability {
            from,
            to,
            format,
            out,
        } => return suitability(paths, from, to, &format, out.as_deref()),
    };
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

/// `sit report suitability`: the figures of [`crate::report::suitability`] over `--from` to
/// `--to` (default: the 30 days up to the latest published), from the archive and each day's
/// audit bundle.
fn suitability(
    paths: &super::Paths,
    from: Option<String>,
    to: Option<String>,
    format: &str,
    out: Option<&std::path::Path>,
) -> crate::cli::error::Result<()> {
    use crate::cli::error::Error;
    use crate::report::suitability::{self as su, DayIn, Recompute};
    use sit_core::time::{Date, DAY_MS};
    use std::collections::BTreeMap;
    let archive = crate::archive::Archive::for_data(&paths.data);
    let registry = sit_core::versions::Registry::embedded();
    let snap = crate::server::snapshot::load(&archive, registry.current_suite());
    for e in &snap.errors {
        eprintln!("warning: {e}");
    }
    let date = |flag: &str, d: &str| {
        Date::parse(d).map_err(|e| Error::Usage(format!("{flag} `{d}`: {e} (a date: YYYY-MM-DD)")))
    };
    // the families' answers come from the store when it opens (every attempt of the period,
    // published or not: a store filled by `sit probe` has no day published), else from the
    // bundles (a store held by a running `sit run`)
    let store_dir = crate::archive::layout::store(&paths.data);
    let store = if store_dir.join("conf").exists() {
        crate::store::Store::open(store_dir)
            .map_err(|e| eprintln!("note: the store does not open ({e}): the families' answers come from the audit bundles"))
            .ok()
    } else {
        None
    };
    let stored_days = store
        .as_ref()
        .and_then(|s| s.days().ok())
        .unwrap_or_default();
    let latest = snap
        .records
        .values()
        .filter_map(|m| m.keys().next_back())
        .max()
        .copied()
        .or_else(|| stored_days.last().copied());
    let to = match to {
        Some(d) => date("--to", &d)?,
        None => latest.ok_or_else(|| {
            Error::Usage(format!(
                "no day is published in {} yet: nothing to analyse (publish days, or name another --data folder)",
                archive.root().display()
            ))
        })?,
    };
    let from = match from {
        Some(d) => date("--from", &d)?,
        // the 30 days up to --to, from the first day published
        None => {
            let first = snap
                .records
                .values()
                .filter_map(|m| m.keys().next())
                .min()
                .copied()
                .or_else(|| stored_days.first().copied());
            Date(to.0 - 29).max(first.unwrap_or(to))
        }
    };
    if from > to {
        return Err(Error::Usage(format!(
            "--from {from} is after --to {to}: name a period that runs forward"
        )));
    }
    let suite = registry.current_suite();
    let tiers: Vec<(String, Vec<String>)> = suite
        .tiers
        .iter()
        .map(|t| (t.id.clone(), t.families.clone()))
        .collect();
    let contracts = crate::contracts::embedded(&suite.tier_ids());
    let ticks: BTreeMap<String, sit_core::fixed::Fixed> = suite
        .tier_ids()
        .into_iter()
        .filter_map(|t| {
            let tick = contracts
                .iter()
                .filter(|c| c.tier == t)
                .map(|c| c.tick)
                .min()?;
            Some((t, tick))
        })
        .collect();
    let mut days: BTreeMap<String, BTreeMap<Date, DayIn>> = BTreeMap::new();
    let mut families = su::FamilyCounts::new();
    let mut without_bundle = Vec::new();
    for d in (from.0..=to.0).map(Date) {
        let in_force: Vec<(
            &String,
            &std::sync::Arc<crate::server::snapshot::Served>,
            u32,
        )> = snap
            .records
            .iter()
            .filter_map(|(t, m)| {
                let v = m.get(&d)?;
                Some((t, v.last()?, v.len() as u32))
            })
            .collect();
        if in_force.is_empty() {
            continue;
        }
        let dir = crate::archive::layout::bundle(&paths.data, d);
        let bundle = if dir.exists() {
            match crate::audit::bundle::Bundle::load(&dir) {
                Ok(b) => Some(b),
                Err(e) => {
                    eprintln!(
                        "warning: {}: {e}: the day's figures are from its records alone",
                        dir.display()
                    );
                    None
                }
            }
        } else {
            without_bundle.push(d.to_string());
            None
        };
        let pubs = bundle
            .as_ref()
            .and_then(|b| {
                b.publications()
                    .map_err(|e| eprintln!("warning: {}: {e}", dir.display()))
                    .ok()
            })
            .unwrap_or_default();
        for (tier, served, versions) in in_force {
            let recompute = bundle.as_ref().and_then(|b| {
                let (_, p, _) = pubs.iter().find(|(_, p, _)| {
                    p.determination.tier == *tier && p.version == served.entry.version
                })?;
                let parts =
                    crate::audit::bundle::day_parts(b, b.records.iter().map(|(_, h, o)| (o, h)), p)
                        .map_err(|e| eprintln!("warning: {} {tier}: {e}", dir.display()))
                        .ok()?;
                Some(Recompute {
                    parts,
                    methodology: b.methodology.clone(),
                    suite_hash: b.suite.hash.clone(),
                })
            });
            days.entry(tier.clone()).or_default().insert(
                d,
                DayIn {
                    determination: served.publication.determination.clone(),
                    versions,
                    interval: snap
                        .intervals
                        .get(&(tier.clone(), d, served.entry.version))
                        .cloned(),
                    recompute,
                },
            );
        }
        // the day's own answers (a bundle also holds the trailing window's, counted on their day)
        if let (None, Some(b)) = (&store, &bundle) {
            let (start, end) = (d.start_ms(), d.start_ms() + DAY_MS);
            for (_, _, o) in b
                .records
                .iter()
                .filter(|(_, _, o)| o.at_ms >= start && o.at_ms < end)
            {
                answer(&mut families, o);
            }
        }
    }
    if let Some(s) = &store {
        for r in s.scan(from.start_ms(), to.start_ms() + DAY_MS) {
            match r {
                Ok(stored) => answer(&mut families, &stored.obs),
                Err(e) => {
                    eprintln!("warning: the store: {e}: the families' counts stop there");
                    break;
                }
            }
        }
    }
    if days.is_empty() && families.is_empty() {
        return Err(Error::Usage(format!(
            "no day is published and nothing is stored between {from} and {to} in {}: name a period with published days or stored probes",
            paths.data.display()
        )));
    }
    if days.is_empty() {
        eprintln!("note: no day is published between {from} and {to}: the report has the probe families alone");
    }
    if !without_bundle.is_empty() {
        eprintln!(
            "note: no audit bundle for {} day(s) ({}): their influence, list-price average and families are not computed",
            without_bundle.len(),
            without_bundle.join(", ")
        );
    }
    let source = format!("from {}", paths.data.display());
    let report = su::build(&su::Inputs {
        from,
        to,
        tiers,
        days,
        ticks,
        families,
        source: &source,
    });
    let doc = su::doc(&report);
    let json = serde_json::to_string_pretty(&report).expect("figures serialise");
    if let Some(dir) = out {
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::Usage(format!(
                "--out {}: {e} (name a folder you may write)",
                dir.display()
            ))
        })?;
        let mut files = vec![
            ("suitability.md".to_string(), doc.markdown()),
            ("suitability.html".to_string(), doc.html()),
            ("suitability.json".to_string(), json.clone()),
        ];
        for s in &doc.sections {
            for b in &s.blocks {
                if let crate::report::doc::Block::Figure { file, svg, .. } = b {
                    files.push((file.clone(), svg.clone()));
                }
            }
        }
        for (name, text) in &files {
            let p = dir.join(name);
            std::fs::write(&p, text)
                .map_err(|e| Error::Usage(format!("cannot write {}: {e}", p.display())))?;
        }
        eprintln!("wrote {} files to {}", files.len(), dir.display());
    }
    match format {
        "json" => println!("{json}"),
        "html" => print!("{}", doc.html()),
        _ => print!("{}", doc.markdown()),
    }
    Ok(())
}

/// Count an answered attempt (not missed, no failure) towards its (tier, family, endpoint).
fn answer(
    families: &mut crate::report::suitability::FamilyCounts,
    o: &sit_core::observation::Observation,
) {
    if o.missed() || o.failure.is_some() {
        return;
    }
    let c = families
        .entry((o.tier.clone(), o.family.clone(), o.endpoint.clone()))
        .or_default();
    c.0 += 1;
    c.1 += o.correct as u64;
}
