//! `sit hedge` and `sit hedge simulate`: the analytics of [`crate::hedge`], printed and
//! charted.

use super::{HedgeArgs, HedgeWhat, Paths};
use crate::cli::error::{Error, Result};
use crate::hedge::{self, analysis, simulate, Frequency};

pub(super) fn run(cli: &Paths, what: Option<HedgeWhat>, args: HedgeArgs) -> Result<()> {
    match what {
        Some(HedgeWhat::Simulate {
            paths,
            seed,
            scenario,
            svg,
            json,
        }) => run_simulate(paths, seed, scenario.as_deref(), &svg, json),
        None => run_analysis(cli, args),
    }
}

fn run_analysis(cli: &Paths, a: HedgeArgs) -> Result<()> {
    let (Some(costs), Some(tier)) = (a.costs, a.tier) else {
        return Err(Error::Usage(
            "sit hedge needs --costs FILE.csv (date,cost,units) and --tier T; or run `sit hedge simulate`".into(),
        ));
    };
    let suite = sit_core::probes::Suite::embedded();
    if !suite.tier_ids().contains(&tier) {
        return Err(Error::Usage(format!(
            "--tier {tier}: unknown; one of {}",
            suite.tier_ids().join(", ")
        )));
    }
    let (freq, cost) = hedge::read_costs(&costs).map_err(Error::Usage)?;
    let daily = match &a.index {
        Some(p) => hedge::read_index_csv(p, &tier).map_err(Error::Usage)?,
        None => hedge::index_from_archive(&crate::archive::Archive::for_data(&cli.data), &tier)
            .map_err(Error::Failed)?,
    };
    if daily.is_empty() {
        return Err(Error::Usage(format!(
            "no {tier} index values in {}; pass --data with a published archive or --index FILE.csv (from /v1/index/{tier}.csv)",
            a.index
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| cli.data.display().to_string())
        )));
    }
    let index = match freq {
        Frequency::Daily => daily,
        Frequency::Monthly => hedge::monthly_means(&daily),
    };
    let window = a.window.unwrap_or(match freq {
        Frequency::Daily => 30,
        Frequency::Monthly => 12,
    });
    let r = analysis::analyse(&cost, &index, window)
        .map_err(|e| Error::Refused(format!("{}: {e}", costs.display())))?;
    std::fs::write(&a.svg, hedge::chart::analysis_svg(&r, &tier))
        .map_err(|e| Error::Failed(format!("writing {}: {e}", a.svg.display())))?;
    let freq_name = match freq {
        Frequency::Daily => "daily",
        Frequency::Monthly => "monthly",
    };
    if a.json {
        let v = serde_json::json!({
            "tier": tier,
            "costs": costs.display().to_string(),
            "frequency": freq_name,
            "chart": a.svg.display().to_string(),
            "report": r,
        });
        println!("{}", serde_json::to_string_pretty(&v).expect("serialises"));
        return Ok(());
    }
    println!(
        "sit hedge: {} against the {tier} index ({freq_name}, {} common dates {}..{})",
        costs.display(),
        r.observations,
        r.first,
        r.last
    );
    println!(
        "  h*              {:.6} (million SIT per unit of work: a unit of your work hedges like {:.0} SIT)",
        r.h,
        r.h * 1e6
    );
    println!(
        "  effectiveness   {:.1}% (Ederington: 1 - Var(hedged) / Var(unhedged) of the changes); correlation {:.3}",
        100.0 * r.effectiveness,
        r.correlation
    );
    println!(
        "  sd of changes   unhedged {:.6}, hedged {:.6} (USD per unit)",
        r.sd_unhedged, r.sd_hedged
    );
    println!(
        "  basis S - h*F   mean {:.6}, sd {:.6}, min {:.6}, max {:.6}; sd of its changes {:.6}",
        r.basis.mean, r.basis.sd, r.basis.min, r.basis.max, r.basis_change_sd
    );
    match (r.rolling.first(), r.rolling.last()) {
        (Some(_), Some(last)) => {
            let (hs, rs): (Vec<f64>, Vec<f64>) = r.rolling.iter().map(|w| (w.h, w.r2)).unzip();
            let span = |v: &[f64]| {
                (
                    v.iter().copied().fold(f64::INFINITY, f64::min),
                    v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                )
            };
            let ((h0, h1), (r0, r1)) = (span(&hs), span(&rs));
            println!(
                "  rolling ({} changes, {} windows)  h* {h0:.6}..{h1:.6}, R² {r0:.3}..{r1:.3}; last ({}): h* {:.6}, R² {:.3}",
                r.window,
                r.rolling.len(),
                last.date,
                last.h,
                last.r2
            );
        }
        _ => println!(
            "  rolling         none: fewer than {} changes (--window)",
            r.window
        ),
    }
    println!("  chart           {}", a.svg.display());
    Ok(())
}

fn run_simulate(
    paths: usize,
    seed: u64,
    scenario: Option<&std::path::Path>,
    svg: &std::path::Path,
    json: bool,
) -> Result<()> {
    let s = match scenario {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| {
                Error::Usage(format!(
                    "{}: cannot read: {e}; scenarios/ has the shipped ones",
                    p.display()
                ))
            })?;
            simulate::Scenario::parse(&p.display().to_string(), &text)
        }
        None => simulate::Scenario::parse(
            "scenarios/demand-explosion.toml (built in)",
            simulate::DEMAND_EXPLOSION,
        ),
    }
    .map_err(Error::Usage)?;
    if paths < 100 {
        return Err(Error::Usage(format!(
            "--paths {paths}: at least 100 (half estimate the hedge ratio, half evaluate it)"
        )));
    }
    let o = simulate::run(&s, paths, seed);
    std::fs::write(svg, hedge::chart::simulate_svg(&o))
        .map_err(|e| Error::Failed(format!("writing {}: {e}", svg.display())))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&o).expect("serialises"));
        return Ok(());
    }
    println!(
        "sit hedge simulate: {}, {} paths, seed {}, {} months",
        o.scenario, o.paths, o.seed, o.months
    );
    println!(
        "  h*                    {:.4} (minimum variance, estimated on {} paths)",
        o.h,
        o.paths / 2
    );
    println!(
        "  volatility reduction  {:.1}% (95% CI {:.1}-{:.1}%) of the total cost over {} months, on the other {} paths",
        100.0 * o.reduction,
        100.0 * o.reduction_ci95.0,
        100.0 * o.reduction_ci95.1,
        o.months,
        o.paths - o.paths / 2
    );
    println!(
        "  the paper's band      {:.0}-{:.0}%: {}",
        100.0 * o.band.0,
        100.0 * o.band.1,
        if o.in_band { "inside" } else { "OUTSIDE" }
    );
    println!(
        "  month by month        mean reduction {:.1}% (a single month keeps its volume surprise)",
        100.0 * o.monthly_reduction_mean
    );
    for (name, c) in [
        ("unhedged", &o.total_cost_unhedged),
        ("hedged", &o.total_cost_hedged),
    ] {
        println!(
            "  total cost {name:<10} mean {:.0}, sd {:.0}, 5-95% {:.0}..{:.0} USD",
            c.mean, c.sd, c.p05, c.p95
        );
    }
    let m = &o.moments;
    println!(
        "  ln S at the horizon   mean {:.4} (se {:.4}; closed form {:.4}, daily step chain {:.4}); variance {:.4} (se {:.4}; closed form {:.4}, step chain {:.4})",
        m.mean,
        m.mean_se,
        m.mean_closed_form,
        m.mean_step_chain,
        m.variance,
        m.variance_se,
        m.variance_closed_form,
        m.variance_step_chain
    );
    println!("  chart                 {}", svg.display());
    Ok(())
}
