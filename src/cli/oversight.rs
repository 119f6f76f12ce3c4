//! Parties' commands (issue 30): `sit submit` (a provider, exchange or auditor's dispute or
//! consultation response), `sit dispute resolve|list` (the administrator), `sit consultation
//! close` (the oracle's outcome of a consultation) and `sit attest` (an auditor's independent
//! replay of every published day). A submission the oracle refuses exits 2 with its error
//! and hint; nothing is stored.

use super::{parse_date, Command, ConsultationWhat, DisputeWhat, Paths, SubmitWhat};
use crate::cli::error::{Error, Result};
use crate::oversight::attest::{fresh_nonce, post_submission, Attester};
use crate::sys::clock::{Clock, SystemClock};
use sit_core::oversight::{
    self, Body, ConsultationResponse, Decision, Dispute, Resolution, Subject, SubjectKind,
};
use std::collections::BTreeMap;
use std::path::Path;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .expect("an HTTP client")
}

/// Sign `body`, post it, check the receipt against `oracle_key` when given; print the receipt.
async fn send(
    oracle: &str,
    key: &Path,
    oracle_key: Option<&Path>,
    body: Body,
) -> Result<oversight::Receipt> {
    let k = crate::archive::keys::load_signing(key)?;
    // every key read before anything is sent
    let oracle_vk = oracle_key
        .map(crate::archive::keys::load_public)
        .transpose()?;
    let doc = oversight::sign_submission(body, &k, SystemClock.now_ms(), &fresh_nonce());
    let (receipt, bytes) = post_submission(&client(), oracle, &doc).await?;
    let checked = match oracle_vk {
        Some(vk) => {
            oversight::verify_receipt(&bytes, &vk, Some(&doc)).map_err(|e| {
                Error::Failed(format!(
                    "the receipt does not verify against the oracle key given: {e}"
                ))
            })?;
            "signature checked against --oracle-key"
        }
        None => "signature not checked: pass --oracle-key KEY (the oracle's public key)",
    };
    println!("{}", String::from_utf8_lossy(&bytes));
    eprintln!(
        "{} {} received at {}{} ({checked})",
        receipt.kind,
        receipt.id,
        receipt.received_at,
        receipt
            .respond_by
            .as_deref()
            .map(|t| format!(", to be answered by {t}"))
            .unwrap_or_default()
    );
    Ok(receipt)
}

fn subject(
    about: &str,
    tier: Option<String>,
    date: Option<String>,
    observation: Option<String>,
    certificate: Option<String>,
    contract: Option<String>,
    period: Option<String>,
) -> Result<Subject> {
    let kind = match about {
        "observation" => SubjectKind::Observation,
        "determination" => SubjectKind::Determination,
        "certificate" => SubjectKind::Certificate,
        "settlement" => SubjectKind::Settlement,
        other => {
            return Err(Error::Usage(format!(
                "--about {other}: dispute an observation, a determination, a certificate or a settlement"
            )))
        }
    };
    Ok(Subject {
        kind,
        tier,
        date: date.as_deref().map(parse_date).transpose()?,
        observation,
        certificate,
        contract,
        period,
    })
}

async fn get_json(url: &str) -> Result<serde_json::Value> {
    let r = client().get(url).send().await?;
    let status = r.status();
    let body = r.bytes().await?;
    let v: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| Error::Failed(format!("{url}: not JSON: {e}")))?;
    if !status.is_success() {
        return Err(Error::Usage(format!(
            "{url}: {status}: {}",
            v["error"]["message"].as_str().unwrap_or("")
        )));
    }
    Ok(v)
}

/// Run a command of this family.
pub(super) async fn run(cli: &Paths, command: Command) -> Result<()> {
    match command {
        Command::Submit {
            oracle,
            key,
            oracle_key,
            what,
        } => {
            let body = match what {
                SubmitWhat::Dispute {
                    about,
                    tier,
                    date,
                    observation,
                    certificate,
                    contract,
                    period,
                    reason,
                    evidence,
                    public,
                } => Body::Dispute(Dispute {
                    subject: subject(
                        &about,
                        tier,
                        date,
                        observation,
                        certificate,
                        contract,
                        period,
                    )?,
                    reason,
                    evidence,
                    public,
                }),
                SubmitWhat::Response {
                    notice,
                    text,
                    public,
                } => Body::ConsultationResponse(ConsultationResponse {
                    notice,
                    response: text,
                    public,
                }),
            };
            send(&oracle, &key, oracle_key.as_deref(), body).await?;
            Ok(())
        }
        Command::Dispute {
            what:
                DisputeWhat::Resolve {
                    id,
                    upheld,
                    rejected: _,
                    reason,
                    oracle,
                    key,
                    oracle_key,
                },
        } => {
            let decision = if upheld {
                Decision::Upheld
            } else {
                Decision::Rejected
            };
            let body = Body::Resolution(Resolution {
                dispute: id.clone(),
                decision,
                reason,
            });
            send(&oracle, &key, oracle_key.as_deref(), body).await?;
            let v = get_json(&format!(
                "{}/v1/disputes/{id}",
                oracle.trim_end_matches('/')
            ))
            .await?;
            let o = &v["outcome"];
            if let Some(p) = &oracle_key {
                let vk = crate::archive::keys::load_public(p)?;
                let bytes = sit_core::signing::canonical(o);
                sit_core::signing::verify_value(&bytes, &vk)
                    .map_err(|e| Error::Failed(format!("the outcome does not verify: {e}")))?;
            }
            println!("{}", serde_json::to_string_pretty(o).expect("json"));
            for r in o["restated"].as_array().into_iter().flatten() {
                eprintln!(
                    "restated {} {} as version {} (record {})",
                    r["tier"].as_str().unwrap_or(""),
                    r["date"].as_str().unwrap_or(""),
                    r["version"],
                    r["record_hash"].as_str().unwrap_or("")
                );
            }
            for s in o["stands"].as_array().into_iter().flatten() {
                eprintln!("stands: {}", s.as_str().unwrap_or(""));
            }
            Ok(())
        }
        Command::Dispute {
            what: DisputeWhat::List { oracle },
        } => {
            let v = get_json(&format!("{}/v1/disputes", oracle.trim_end_matches('/'))).await?;
            for d in v["disputes"].as_array().into_iter().flatten() {
                println!(
                    "{}  {:<9} {}  received {}  respond by {}",
                    d["id"].as_str().unwrap_or(""),
                    d["status"].as_str().unwrap_or(""),
                    d["about"].as_str().unwrap_or(""),
                    d["received_at"].as_str().unwrap_or(""),
                    d["respond_by"].as_str().unwrap_or("")
                );
            }
            Ok(())
        }
        Command::Consultation {
            what:
                ConsultationWhat::Close {
                    notice,
                    decision,
                    key,
                    parties,
                },
        } => {
            let archive = crate::archive::Archive::for_data(&cli.data);
            let parties = crate::config::parties::load(&parties)?;
            let k = crate::archive::keys::load_signing(&key)?;
            // the folder's clock, as the intake judges the consultation's window
            let clock =
                crate::sys::clock::recorded_clock(&crate::archive::layout::run_clock(&cli.data))
                    .map_err(|e| Error::Failed(e.to_string()))?;
            let (o, bytes) = crate::oversight::consult::close(
                &archive,
                &parties,
                &k,
                &notice,
                &decision,
                clock.now_ms(),
            )
            .map_err(Error::Usage)?;
            println!("{}", String::from_utf8_lossy(&bytes));
            eprintln!(
                "the consultation on {} is closed: {} responses listed, outcome published",
                o.notice,
                o.responses.len()
            );
            Ok(())
        }
        Command::Attest {
            oracle,
            key,
            since,
            follow,
            every_ms,
        } => attest(&oracle, &key, since.as_deref(), follow, every_ms).await,
        _ => unreachable!("dispatched by cli::run"),
    }
}

/// `sit attest`: each day's bundle once (again when its manifest changes: a restatement).
async fn attest(
    oracle: &str,
    key: &Path,
    since: Option<&str>,
    follow: bool,
    every_ms: u64,
) -> Result<()> {
    let since = since.map(parse_date).transpose()?;
    let k = crate::archive::keys::load_signing(key)?;
    let mine = sit_core::signing::key_id(&k.verifying_key());
    let a = Attester::new(oracle, k);
    let base = oracle.trim_end_matches('/').to_string();
    // the manifest each day was attested from: a new manifest (a restated day) is attested again
    let mut seen: BTreeMap<sit_core::time::Date, String> = BTreeMap::new();
    let (mut attested, mut differ) = (0usize, 0usize);
    loop {
        let days = match a.days().await {
            Ok(d) => d,
            Err(e) if follow => {
                eprintln!("sit attest: {e}; trying again");
                tokio::time::sleep(std::time::Duration::from_millis(every_ms)).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        for day in days.into_iter().filter(|d| since.is_none_or(|s| *d >= s)) {
            let manifest = client()
                .get(format!("{base}/v1/bundles/{day}"))
                .send()
                .await?
                .bytes()
                .await?;
            let mh = blake3::hash(&manifest).to_hex().to_string();
            if seen.get(&day) == Some(&mh) {
                continue;
            }
            let checked = match a.check_day(day).await {
                Ok(c) => c,
                Err(e) if follow => {
                    eprintln!("sit attest: {day}: {e}; trying again");
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            for att in checked {
                // a record this key attested before (an earlier run) is not attested twice
                let listed = get_json(&format!("{base}/v1/attestations/{}/{day}", att.tier))
                    .await
                    .unwrap_or_default();
                let done = listed["attestations"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|x| {
                        x["attestation"]["key_id"] == mine.as_str()
                            && x["attestation"]["body"]["record_hash"] == att.record_hash.as_str()
                    });
                if done {
                    continue;
                }
                let line = format!(
                    "{} {} v{} {}",
                    att.tier,
                    att.date,
                    att.version,
                    match &att.first_difference {
                        None => "reproduced".to_string(),
                        Some(d) => format!("DIFFERS: {d}"),
                    }
                );
                if att.first_difference.is_some() {
                    differ += 1;
                }
                let id = a.submit(att, SystemClock.now_ms()).await?;
                attested += 1;
                println!("{line} (attestation {id})");
            }
            seen.insert(day, mh);
        }
        if !follow {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(every_ms)).await;
    }
    eprintln!("sit attest: {attested} records attested, {differ} differ");
    if differ > 0 {
        return Err(Error::Failed(format!(
            "{differ} records did not reproduce from their bundles (attested as differing)"
        )));
    }
    Ok(())
}
