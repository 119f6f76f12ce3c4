//! Self-certification: `sit certify`, `sit verify-cert`.

use super::{Command, Paths};
use crate::cli::error::{Error, Result};
use crate::config::{self};
use crate::sys::clock::{Clock, SystemClock};
use sit_core::index::Methodology;
use sit_core::probes::Suite;
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
            name,
            tier,
            attempts,
            key,
            out,
            seed,
            challenge,
            concurrency,
        } => {
            let target = match (endpoint, base_url) {
                (Some(id), _) => CertifyTarget::Configured(id),
                (None, Some(url)) => CertifyTarget::Direct {
                    name,
                    url,
                    dialect: dialect.unwrap_or_default(),
                    model: model.unwrap_or_default(),
                    api_key_env,
                },
                (None, None) => unreachable!("clap requires one"),
            };
            certify(
                cli,
                target,
                &tier,
                attempts,
                &key,
                &out,
                seed,
                challenge,
                concurrency,
            )
            .await
        }
        Command::VerifyCert {
            file,
            key,
            oracle_key,
            oracle,
        } => verify_cert(&file, &key, oracle_key.as_deref(), oracle.as_deref()).await,
        _ => unreachable!("dispatched by cli::run"),
    }
}

enum CertifyTarget {
    Configured(String),
    Direct {
        name: String,
        url: String,
        dialect: String,
        model: String,
        api_key_env: Option<String>,
    },
}

/// POST `{base}/v1/certify/challenge` with a request signed by the certifier's key: the
/// oracle's signed challenge, as its bytes.
async fn draw_challenge(base: &str, certifier: &ed25519_dalek::SigningKey) -> Result<String> {
    let url = format!("{}/v1/certify/challenge", base.trim_end_matches('/'));
    let fail = |e: String| Error::Failed(format!("cannot draw a challenge from {base}: {e}"));
    let mut nonce = [0u8; 16];
    getrandom::getrandom(&mut nonce).map_err(|e| fail(e.to_string()))?;
    let request = sit_core::certificate::challenge::request(
        certifier,
        SystemClock.now_ms(),
        &sit_core::signing::hex(&nonce),
    );
    let r = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .body(request)
        .send()
        .await
        .map_err(|e| fail(e.to_string()))?;
    let status = r.status();
    let body = r.text().await.map_err(|e| fail(e.to_string()))?;
    if !status.is_success() {
        return Err(fail(format!("HTTP {status}: {body}")));
    }
    Ok(body)
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
    challenge_url: Option<String>,
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
    let sk = crate::archive::keys::load_signing(key)?;
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
            name,
            url,
            dialect,
            model,
            api_key_env,
        } => (
            config::Defaults::default(),
            config::direct_endpoint(&name, &url, &dialect, &model, api_key_env.as_deref())?,
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
    // The oracle's challenge fixes the seed (and the oracle records that this key drew it);
    // otherwise the seed is the certifier's own and the certificate says so.
    let challenge = match &challenge_url {
        Some(url) => Some(draw_challenge(url, &sk).await?),
        None => None,
    };
    let seed = match (&challenge, seed) {
        (Some(doc), _) => sit_core::certificate::challenge::seed_of(doc.as_bytes())
            .map_err(|e| Error::Failed(format!("the oracle's challenge: {e}")))?,
        (None, Some(s)) => s,
        (None, None) => {
            let mut b = [0u8; 8];
            getrandom::getrandom(&mut b).map_err(|e| Error::Failed(e.to_string()))?;
            u64::from_le_bytes(b)
        }
    };
    let plan = certify::Plan {
        tiers,
        attempts,
        seed,
        challenge,
        concurrency: concurrency.unwrap_or(endpoint.concurrency).max(1) as usize,
    };
    // What the statistics allow: the fewest attempts at which each check can pass at all
    // (every attempt answered and correct), so a run too short to pass says so before it
    // starts (regression, issue 26: 30 of 30 answered failed availability, and nothing had
    // said that about 35 attempts are the least that can pass it).
    let floor = Methodology::default().availability_floor;
    let need_avail = sit_core::certificate::stats::min_attempts(floor);
    for t in &plan.tiers {
        let tier = suite.tier(t).expect("checked above");
        let need_quality = sit_core::certificate::stats::min_attempts(tier.pass_threshold);
        let need = need_quality.max(need_avail);
        eprintln!(
            "sit certify: {t} can pass from {need} attempts (quality: {need_quality}, the 95% lower bound of a perfect run reaching {}; availability: {need_avail}, reaching {}){}",
            tier.pass_threshold.round_dp(2),
            floor.round_dp(2),
            if u64::from(plan.attempts) < need {
                format!("; with {} it cannot pass", plan.attempts)
            } else {
                String::new()
            }
        );
    }
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
    // How the seed was chosen, for the reports (the certificate states it as `seeding`).
    let seeding = match &plan.challenge {
        Some(doc) => {
            let c: serde_json::Value = serde_json::from_str(doc).unwrap_or_default();
            format!(
                "oracle challenge: the seed {:016x} derives from challenge {} the oracle `{}` signed for this key (issued {}); `sit verify-cert --oracle-key` checks it",
                plan.seed,
                c["sequence"],
                c["key_id"].as_str().unwrap_or("?"),
                c["issued_at"].as_str().unwrap_or("?")
            )
        }
        None => format!(
            "self-seeded: the certifier chose the seed {:016x} (and could have run until it liked the result); `--challenge URL` draws it from the oracle",
            plan.seed
        ),
    };
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
        write(
            &md,
            report::markdown(&info, &f, window, &status, &seeding).as_bytes(),
        )?;
        write(
            &html,
            report::html(&info, &f, window, &status, &seeding, &run.observations).as_bytes(),
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
        report::markdown(&cert.endpoint, f, window, &status, &seeding).as_bytes(),
    )?;
    write(
        &with_ext("html"),
        report::html(
            &cert.endpoint,
            f,
            window,
            &status,
            &seeding,
            &run.observations,
        )
        .as_bytes(),
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
    let not_met: Vec<&str> = f
        .tiers
        .iter()
        .filter(|t| !t.verdict.pass)
        .map(|t| t.tier.as_str())
        .collect();
    if !not_met.is_empty() {
        return Err(Error::NotMet(format!(
            "{} not met (exit 4); the certificate {} records the figures and why",
            not_met.join(", "),
            out.display()
        )));
    }
    Ok(())
}

async fn verify_cert(
    file: &std::path::Path,
    key: &std::path::Path,
    oracle_key: Option<&std::path::Path>,
    oracle: Option<&str>,
) -> Result<()> {
    use sit_core::certificate::{check_consistency, Certificate};
    let vk = crate::archive::keys::load_public(key)?;
    let bytes = std::fs::read(file)
        .map_err(|e| Error::Usage(format!("cannot read {}: {e}", file.display())))?;
    let invalid = |why: String| {
        println!("INVALID  {}: {why}", file.display());
        Error::Failed(format!("{} is not a valid certificate", file.display()))
    };
    let v = sit_core::signing::verify_value(&bytes, &vk).map_err(|e| invalid(e.to_string()))?;
    let cert: Certificate =
        serde_json::from_value(v.value).map_err(|e| invalid(format!("not a certificate: {e}")))?;
    check_consistency(&cert, Suite::embedded()).map_err(invalid)?;
    // Every check asked for is made before anything is printed: VALID is printed only when
    // all of them passed (regression, issue 26: with the wrong --oracle-key the full VALID
    // block came first, then INVALID).
    let seeding = match (&cert.challenge, oracle_key) {
        (None, _) => format!(
            "self-seeded: the certifier chose the seed {} (and could have run until it liked the result); certify with --challenge for an oracle-drawn seed",
            cert.window.seed
        ),
        (Some(_), None) => {
            return Err(Error::Usage(
                "the certificate embeds an oracle challenge: pass --oracle-key with the oracle's public key to check it (nothing was judged valid)".into(),
            ))
        }
        (Some(_), Some(ok)) => {
            let ovk = crate::archive::keys::load_public(ok)?;
            let c = sit_core::verify::certificate_challenge(&cert, &ovk)
                .map_err(|e| invalid(e.to_string()))?
                .expect("a challenge is embedded");
            format!(
                "oracle challenge {} of {} (issued {}, expires {}), drawn for this key; seed {} derives from it",
                c.challenge.sequence,
                c.challenge.key_id,
                c.challenge.issued_at,
                c.challenge.expires_at,
                cert.window.seed
            )
        }
    };
    let draws = match oracle {
        Some(base) => {
            let url = format!(
                "{}/v1/certify/challenges?key_id={}",
                base.trim_end_matches('/'),
                cert.key_id
            );
            let body = reqwest::get(&url)
                .await
                .map_err(|e| Error::Failed(format!("{url}: {e}")))?
                .text()
                .await
                .map_err(|e| Error::Failed(format!("{url}: {e}")))?;
            let v: serde_json::Value = serde_json::from_str(&body)
                .map_err(|e| Error::Failed(format!("{url}: not JSON: {e}")))?;
            Some(v["count"].clone())
        }
        None => None,
    };
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
    let challenge_ok = if cert.challenge.is_some() {
        "; oracle challenge ok"
    } else {
        ""
    };
    println!("  signature  Ed25519 ok; consistency ok{challenge_ok}");
    println!("  seeding    {seeding}");
    if let Some(n) = draws {
        println!("  draws      this key drew {n} challenge(s) from the oracle");
    }
    Ok(())
}
