//! Self-certification: `sit certify`, `sit verify-cert`.

use super::{Command, Paths};
use crate::clock::{Clock, SystemClock};
use crate::config::{self};
use crate::error::{Error, Result};
use crate::index::Methodology;
use crate::probes::Suite;
use std::sync::Arc;

/// Run a command of this family.
pub(super) async fn run(cli: &Paths, command: Command) -> Result<()> {
    match command {
        Command::Certify {
            endpoint,
            base_url,
            dialect,
            model,
            api_key_env,
            tier,
            attempts,
            key,
            out,
            seed,
            concurrency,
        } => {
            let target = match (endpoint, base_url) {
                (Some(id), _) => CertifyTarget::Configured(id),
                (None, Some(url)) => CertifyTarget::Direct {
                    url,
                    dialect: dialect.unwrap_or_default(),
                    model: model.unwrap_or_default(),
                    api_key_env,
                },
                (None, None) => unreachable!("clap requires one"),
            };
            certify(cli, target, &tier, attempts, &key, &out, seed, concurrency).await
        }
        Command::VerifyCert { file, key } => verify_cert(&file, &key),
        _ => unreachable!("dispatched by cli::run"),
    }
}

enum CertifyTarget {
    Configured(String),
    Direct {
        url: String,
        dialect: String,
        model: String,
        api_key_env: Option<String>,
    },
}

/// Exit code of an interrupted certification (128 + SIGINT).
const INTERRUPTED: i32 = 130;

#[allow(clippy::too_many_arguments)]
async fn certify(
    cli: &Paths,
    target: CertifyTarget,
    tier: &str,
    attempts: u32,
    key: &std::path::Path,
    out: &std::path::Path,
    seed: Option<u64>,
    concurrency: Option<u32>,
) -> Result<()> {
    use crate::certify::{self, report};
    let suite = Suite::embedded();
    let tiers = if tier == "all" {
        suite.tier_ids()
    } else if suite.tier(tier).is_some() {
        vec![tier.to_string()]
    } else {
        return Err(Error::Usage(format!(
            "unknown tier `{tier}`; use one of {} or all",
            suite.tier_ids().join(", ")
        )));
    };
    if attempts == 0 {
        return Err(Error::Usage("--attempts must be at least 1".into()));
    }
    let sk = crate::publisher::keys::load_signing(key)?;
    let (defaults, endpoint) = match target {
        CertifyTarget::Configured(id) => {
            let cfg = config::load(&cli.providers)?;
            let e = cfg.endpoint(&id).cloned().ok_or_else(|| {
                Error::Usage(format!(
                    "no endpoint `{id}` in {}; `sit check` lists them",
                    cli.providers.display()
                ))
            })?;
            (cfg.defaults.clone(), e)
        }
        CertifyTarget::Direct {
            url,
            dialect,
            model,
            api_key_env,
        } => (
            config::Defaults::default(),
            config::direct_endpoint(&url, &dialect, &model, api_key_env.as_deref())?,
        ),
    };
    if !endpoint.dialect.supported() {
        return Err(Error::Usage(format!(
            "dialect `{}` has no adapter in this build yet",
            endpoint.dialect
        )));
    }
    let api_key = endpoint
        .api_key()
        .map_err(|e| Error::Usage(e.to_string()))?;
    let seed = match seed {
        Some(s) => s,
        None => {
            let mut b = [0u8; 8];
            getrandom::getrandom(&mut b).map_err(|e| Error::Failed(e.to_string()))?;
            u64::from_le_bytes(b)
        }
    };
    let plan = certify::Plan {
        tiers,
        attempts,
        seed,
        concurrency: concurrency.unwrap_or(endpoint.concurrency).max(1) as usize,
    };
    let total = (plan.attempts as usize * plan.tiers.len()) as u64;
    eprintln!(
        "sit certify: {} ({}), tiers {}, {} attempts per tier, seed {:016x}",
        endpoint.id,
        endpoint.base_url,
        plan.tiers.join(", "),
        plan.attempts,
        plan.seed
    );
    let pb = indicatif::ProgressBar::new(total);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let worker = crate::worker::Worker::new(defaults, clock, Methodology::default())?;
    let ep = Arc::new((endpoint.clone(), api_key));
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let run = certify::run(&worker, ep, &plan, &pb, stop).await?;
    pb.finish_and_clear();
    let window = (run.started_at.as_str(), run.finished_at.as_str());
    let with_ext = |ext: &str| out.with_extension(ext);
    let write = |p: &std::path::Path, bytes: &[u8]| {
        std::fs::write(p, bytes)
            .map_err(|e| Error::Failed(format!("cannot write {}: {e}", p.display())))
    };
    if run.interrupted {
        let f = certify::measure(&plan, &run);
        let info = certify::endpoint_info(&endpoint, &run.observations);
        let status = report::Status::Incomplete {
            done: run.observations.len(),
            planned: run.planned,
        };
        let md = with_ext("partial.md");
        let html = with_ext("partial.html");
        write(&md, report::markdown(&info, &f, window, &status).as_bytes())?;
        write(
            &html,
            report::html(&info, &f, window, &status, &run.observations).as_bytes(),
        )?;
        eprintln!(
            "interrupted after {} of {} attempts: no certificate issued; partial report (marked INCOMPLETE) in {} and {}",
            run.observations.len(),
            run.planned,
            md.display(),
            html.display()
        );
        std::process::exit(INTERRUPTED);
    }
    let (cert, bytes) = certify::certify(&endpoint, &plan, &run, &sk);
    write(out, &bytes)?;
    let file = out.display().to_string();
    let status = report::Status::Certified {
        key_id: &cert.key_id,
        file: &file,
    };
    let f = &cert.figures;
    write(
        &with_ext("md"),
        report::markdown(&cert.endpoint, f, window, &status).as_bytes(),
    )?;
    write(
        &with_ext("html"),
        report::html(&cert.endpoint, f, window, &status, &run.observations).as_bytes(),
    )?;
    for t in &f.tiers {
        println!(
            "{} {:<13} pass rate {} (lower bound {}), availability {}, p90 ttft {} us, p90 e2e {} us",
            t.tier,
            if t.verdict.pass { "MEETS" } else { "DOES NOT MEET" },
            t.pass_rate.round_dp(3),
            t.pass_rate_lower95.round_dp(3),
            t.availability.round_dp(3),
            t.latency.ttft_us.p90,
            t.latency.e2e_us.p90
        );
        for c in t.verdict.checks.iter().filter(|c| !c.ok) {
            println!("   {}: {}", c.name, c.detail);
        }
    }
    for x in &f.flags {
        println!("flag {}: {}", x.code, x.detail);
    }
    println!(
        "certificate {} (reports {}, {})",
        out.display(),
        with_ext("md").display(),
        with_ext("html").display()
    );
    Ok(())
}

fn verify_cert(file: &std::path::Path, key: &std::path::Path) -> Result<()> {
    use crate::certificate::{check_consistency, Certificate};
    let vk = crate::publisher::keys::load_public(key)?;
    let bytes = std::fs::read(file)
        .map_err(|e| Error::Usage(format!("cannot read {}: {e}", file.display())))?;
    let invalid = |why: String| {
        println!("INVALID  {}: {why}", file.display());
        Error::Failed(format!("{} is not a valid certificate", file.display()))
    };
    let v = crate::signing::verify_value(&bytes, &vk).map_err(|e| invalid(e.to_string()))?;
    let cert: Certificate =
        serde_json::from_value(v.value).map_err(|e| invalid(format!("not a certificate: {e}")))?;
    check_consistency(&cert, Suite::embedded()).map_err(invalid)?;
    println!(
        "VALID  certificate of {} ({}) by {}",
        cert.endpoint.id, cert.endpoint.base_url, cert.key_id
    );
    println!(
        "  measured   {} to {}, {} attempts, probe suite {} ({})",
        cert.window.started_at,
        cert.window.finished_at,
        cert.figures.attempts,
        cert.suite.version,
        cert.suite.hash
    );
    for t in &cert.figures.tiers {
        println!(
            "  {}         {} (verdict follows from the figures)",
            t.tier,
            if t.verdict.pass {
                "MEETS"
            } else {
                "DOES NOT MEET"
            }
        );
    }
    println!("  signature  Ed25519 ok; consistency ok");
    Ok(())
}
