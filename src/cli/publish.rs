//! Publishing for exchanges: `sit keys`, `sit publish`, `sit serve`, `sit verify`.

use super::{parse_date, Command, KeysWhat, Paths};
use crate::cli::error::{Error, Result};
use crate::sys::clock::SystemClock;
use sit_core::probes::Suite;

/// Run a command of this family.
pub(super) async fn run(cli: &Paths, command: Command) -> Result<()> {
    match command {
        Command::Keys {
            what: KeysWhat::Generate { out },
        } => {
            let g = crate::archive::keys::generate(&out)?;
            println!("key id      {}", g.key_id);
            println!(
                "private key {} (mode 0600; keep it secret)",
                g.private_path.display()
            );
            println!("public key  {}", g.public_path.display());
            println!("public hex  {}", g.public_hex);
            Ok(())
        }
        Command::Publish {
            date,
            tier,
            key,
            allow_empty,
        } => {
            let date = parse_date(&date)?;
            let tiers = match tier {
                Some(t) => vec![t],
                None => Suite::embedded().tier_ids(),
            };
            publish_days(
                &cli.data,
                date,
                &tiers,
                &key,
                allow_empty,
                &SystemClock,
                &mut std::io::stdout(),
                &mut std::io::stderr(),
            )
        }
        Command::Serve {
            addr,
            limits,
            key,
            parties,
        } => {
            let archive = crate::archive::Archive::for_data(&cli.data);
            let key = key
                .map(|k| crate::archive::keys::load_signing(&k))
                .transpose()?;
            let challenger = key.as_ref().map(|k| {
                std::sync::Arc::new(crate::certify::challenge::Challenger::new(
                    k.clone(),
                    &archive,
                ))
            });
            let intake = match (&key, parties) {
                (Some(k), Some(p)) => Some(std::sync::Arc::new(
                    crate::oversight::Intake::new(
                        k.clone(),
                        crate::config::parties::load(&p)?,
                        archive.clone(),
                        None,
                        crate::sys::clock::recorded_clock(&crate::archive::layout::run_clock(
                            &cli.data,
                        ))
                        .map_err(|e| Error::Failed(e.to_string()))?,
                    )
                    .map_err(|e| Error::Failed(e.to_string()))?,
                )),
                _ => None,
            };
            let running = crate::server::start_with(
                archive.clone(),
                addr,
                None,
                limits.limits()?,
                challenger,
                intake,
            )
            .await
            .map_err(|e| Error::Failed(format!("cannot serve on {addr}: {e}")))?;
            tracing::info!(
                target: "sit::server",
                "sit serve: http://{} (archive {}; Ctrl-C to stop)",
                running.addr,
                archive.root().display()
            );
            tracing::info!(target: "sit::server", "sit serve: {}", running.capacity.describe());
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!(target: "sit::server", "sit serve: shutting down");
            running.shutdown().await?;
            Ok(())
        }
        Command::Verify {
            source,
            key,
            archive,
        } => verify(&source, &key, archive.as_deref()).await,
        _ => unreachable!("dispatched by cli::run"),
    }
}

/// Read a record from a file or an http(s) URL.
async fn read_source(source: &str) -> Result<Vec<u8>> {
    if source.starts_with("http://") || source.starts_with("https://") {
        let r = reqwest::Client::new().get(source).send().await?;
        let status = r.status();
        let body = r.bytes().await?;
        if !status.is_success() {
            return Err(Error::Failed(format!(
                "{source} answered {status}: {}",
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(300)
                    .collect::<String>()
            )));
        }
        Ok(body.to_vec())
    } else {
        std::fs::read(source).map_err(|e| Error::Usage(format!("cannot read {source}: {e}")))
    }
}

/// The publisher's key set as a verifier sees it: the pinned root `key` followed through
/// the notices of `archive` (a data folder's `published/notices/`, or the `chain` of the
/// publisher's `GET /v1/keys`); the root alone without an archive.
async fn key_set(key: &std::path::Path, archive: Option<&str>) -> Result<sit_core::keyset::KeySet> {
    let root = crate::archive::keys::load_public(key)?;
    let notices: Vec<Vec<u8>> = match archive {
        None => Vec::new(),
        Some(a) if a.starts_with("http://") || a.starts_with("https://") => {
            let url = format!("{}/v1/keys", a.trim_end_matches('/'));
            let body = read_source(&url).await?;
            #[derive(serde::Deserialize)]
            struct Keys<'a> {
                #[serde(borrow, default)]
                chain: Vec<&'a serde_json::value::RawValue>,
            }
            let k: Keys = serde_json::from_slice(&body)
                .map_err(|e| Error::Failed(format!("{url}: not a key set: {e}")))?;
            k.chain
                .iter()
                .map(|r| r.get().as_bytes().to_vec())
                .collect()
        }
        Some(a) => {
            let dir = std::path::Path::new(a);
            let root = if dir.join("published").is_dir() {
                dir.join("published")
            } else {
                dir.to_path_buf()
            };
            crate::archive::notices::all(&root)
                .map_err(|e| Error::Failed(format!("--archive {a}: {e}")))?
                .into_iter()
                .map(|p| p.bytes)
                .collect()
        }
    };
    sit_core::keyset::KeySet::follow(&root, &notices).map_err(|e| {
        Error::Failed(format!(
            "{e}\n  hint: --key is the publisher's root key (the one its genesis notice N-0000 names), obtained out of band"
        ))
    })
}

/// The key of `set` that signed `doc`, valid when `doc` says it was published.
fn signer(
    set: &sit_core::keyset::KeySet,
    doc: &[u8],
) -> std::result::Result<sit_core::keyset::Key, String> {
    set.verify(doc).map(|(_, k)| k.clone()).map_err(|e| match e {
        sit_core::keyset::KeySetError::UnknownKey { .. } if set.chain.is_empty() => format!(
            "{e}\n  hint: a key rotated to after the pinned root is followed through the publisher's notices: give --archive DATA|URL"
        ),
        e => e.to_string(),
    })
}

fn key_line(k: &sit_core::keyset::Key, set: &sit_core::keyset::KeySet) -> String {
    let how = if set.chain.is_empty() {
        "the key given".to_string()
    } else if k.brought_by == "N-0000" {
        format!("the pinned root; valid {}", k.validity())
    } else {
        format!(
            "followed from the pinned root through {}; valid {}",
            set.chain.join(", "),
            k.validity()
        )
    };
    let demo = if k.demo {
        "; DEMO KEY (made by `sit demo`): not for settlement"
    } else {
        ""
    };
    format!("{} ({how}{demo})", k.key_id)
}

async fn verify(source: &str, key: &std::path::Path, archive: Option<&str>) -> Result<()> {
    use sit_core::record;
    // a mirror in object storage: its latest snapshot's publication archive, each file
    // checked against its content address, in a scratch folder read like a data folder
    let restored;
    let mirrored;
    let named = archive;
    let archive = match archive {
        Some(a) if crate::archive::mirror::Location::is_s3(a) => {
            restored = tempfile::tempdir()?;
            let m = crate::archive::mirror::Mirror::open(a).await?;
            let (n, files) = m.restore(restored.path(), "published/").await?;
            eprintln!("--archive {a}: snapshot {n}, {files} files of published/ read and checked");
            mirrored = restored.path().to_string_lossy().into_owned();
            Some(mirrored.as_str())
        }
        other => other,
    };
    let set = key_set(key, archive).await?;
    let bytes = read_source(source).await?;
    // A settlement record: the signature, and the value recomputed from the days it lists.
    if let Ok(serde_json::Value::Object(o)) = sit_core::signing::parse_strict(&bytes) {
        if o.get("schema").and_then(|s| s.as_str()) == Some(sit_core::settlement::SCHEMA) {
            // FINAL or INDICATIVE: both are checked the same way; the status line says which.
            let signed = signer(&set, &bytes);
            let r = match signed
                .clone()
                .and_then(|k| sit_core::settlement::verify_any(&bytes, k.verifying_key()))
            {
                Ok(r) => r,
                Err(e) => {
                    println!("INVALID  {source}: {e}");
                    return Err(Error::Failed(format!(
                        "{source}: the settlement record did not verify"
                    )));
                }
            };
            let against = match archive.zip(named) {
                Some((a, shown)) => {
                    let problems = days_against_archive(&r, a, &set).await?;
                    if !problems.is_empty() {
                        println!("INVALID  {source}: the days listed are not the archive's records in force:");
                        for p in &problems {
                            println!("  {p}");
                        }
                        return Err(Error::Failed(format!(
                            "{source}: {} listed days differ from {shown}",
                            problems.len()
                        )));
                    }
                    Some(shown)
                }
                None => None,
            };
            let status = match r.status {
                sit_core::settlement::SettlementStatus::Final => "FINAL",
                sit_core::settlement::SettlementStatus::Indicative => "INDICATIVE",
            };
            println!(
                "VALID  settlement {} {}..{} {status} {}  ({} days counted; final settlement time {})",
                r.contract.id,
                r.period.first,
                r.period.last,
                r.value.round_dp(r.contract.scale),
                r.days_counted,
                r.final_settlement_time
            );
            println!("  rule       {}", r.rule);
            if let Ok(k) = &signed {
                println!("  key        {}", key_line(k, &set));
            }
            println!(
                "  signature  Ed25519 ok; value recomputed from the {} daily values listed",
                r.days.len()
            );
            if status == "INDICATIVE" {
                println!(
                    "  status     INDICATIVE: the period to date, not a final settlement value"
                );
            }
            if let Some(a) = against {
                println!(
                    "  archive    each listed day is {a}'s record in force at {} (hash, signature, status, value)",
                    if status == "FINAL" { r.final_settlement_time.as_str() } else { r.computed_at.as_str() }
                );
            }
            return Ok(());
        }
    }
    // A history document holds records; verify each of them, as the exact bytes it embeds.
    let records: Vec<Vec<u8>> = match sit_core::signing::parse_strict(&bytes) {
        Ok(serde_json::Value::Object(o))
            if o.contains_key("records") && !o.contains_key("signature") =>
        {
            #[derive(serde::Deserialize)]
            struct History<'a> {
                #[serde(borrow)]
                records: Vec<&'a serde_json::value::RawValue>,
            }
            let h: History = serde_json::from_slice(&bytes)
                .map_err(|e| Error::Failed(format!("{source}: not a history document: {e}")))?;
            h.records
                .iter()
                .map(|r| r.get().as_bytes().to_vec())
                .collect()
        }
        _ => vec![bytes],
    };
    if records.is_empty() {
        return Err(Error::Failed(format!("{source}: no records to verify")));
    }
    let mut bad = 0;
    for (i, r) in records.iter().enumerate() {
        let label = if records.len() > 1 {
            format!("{source} record {}", i + 1)
        } else {
            source.to_string()
        };
        let k = match signer(&set, r) {
            Ok(k) => k,
            Err(e) => {
                bad += 1;
                println!("INVALID  {label}: {e}");
                continue;
            }
        };
        match record::verify(r, k.verifying_key()) {
            Ok(v) => {
                let p = &v.publication;
                let d = &p.determination;
                println!(
                    "VALID  {} {} {} {}  (version {}, sequence {})",
                    d.tier,
                    d.date,
                    d.status.as_str(),
                    crate::publisher::show_value(d.value),
                    p.version,
                    d.sequence
                );
                println!("  key        {}", key_line(&k, &set));
                println!(
                    "  signed     {} canonical bytes (RFC 8785, record without `signature`), blake3 {}",
                    v.signed_bytes.len(),
                    record::record_hash(&v.signed_bytes)
                );
                println!("  signature  Ed25519 ok");
                let f = sit_core::verify::finality(d, sit_core::versions::Registry::embedded());
                println!(
                    "  settlement value: {} ({}); in a contract period: {}",
                    if f.settles { "yes" } else { "no" },
                    f.reason,
                    f.contract_use
                );
                println!(
                    "  final at   {}",
                    f.final_at.as_deref().unwrap_or(
                        "unknown: the record's methodology is not known to this build (end of the day + its restatement_cutoff_hours)"
                    )
                );
                println!(
                    "  inputs     methodology {} ({}), suite {}, merkle root {}",
                    d.methodology_version, d.methodology_hash, d.suite_hash, d.merkle_root
                );
                if let Some(r) = &p.restates {
                    println!(
                        "  restates   version {} (value {}, record {})",
                        r.version,
                        r.value
                            .map(|x| x.to_string())
                            .unwrap_or_else(|| "none".into()),
                        r.record_hash
                    );
                }
            }
            Err(e) => {
                bad += 1;
                println!("INVALID  {label}: {e}");
            }
        }
    }
    if bad > 0 {
        Err(Error::Failed(format!(
            "{bad} of {} records did not verify",
            records.len()
        )))
    } else {
        Ok(())
    }
}

/// The oracle's daily records to check a settlement against: a publisher's URL (one client
/// for every request), or a data folder (its log read once).
enum DailyRecords {
    Url(String, reqwest::Client),
    Dir(crate::archive::Archive, Vec<crate::archive::LogEntry>),
}

impl DailyRecords {
    fn open(archive: &str) -> Result<DailyRecords> {
        if archive.starts_with("http://") || archive.starts_with("https://") {
            return Ok(DailyRecords::Url(
                archive.trim_end_matches('/').to_string(),
                reqwest::Client::new(),
            ));
        }
        let dir = std::path::Path::new(archive);
        let a = if dir.join("published").is_dir() {
            crate::archive::Archive::for_data(dir)
        } else {
            crate::archive::Archive::new(dir.to_path_buf())
        };
        let entries = a.entries().map_err(|e| {
            Error::Usage(format!(
                "--archive {archive}: {e} (give a data folder, its published/ folder, or the publisher's URL)"
            ))
        })?;
        Ok(DailyRecords::Dir(a, entries))
    }

    /// One published version of a day's record: its bytes, or None when it does not exist.
    async fn version(
        &self,
        tier: &str,
        date: sit_core::time::Date,
        version: u32,
    ) -> Result<Option<Vec<u8>>> {
        match self {
            DailyRecords::Url(base, client) => {
                let url = format!("{base}/v1/index/{tier}/{date}?version={version}");
                let r = client.get(&url).send().await?;
                if r.status() == reqwest::StatusCode::NOT_FOUND {
                    return Ok(None);
                }
                if !r.status().is_success() {
                    return Err(Error::Failed(format!("{url} answered {}", r.status())));
                }
                Ok(Some(r.bytes().await?.to_vec()))
            }
            DailyRecords::Dir(a, entries) => match entries
                .iter()
                .find(|e| e.tier == tier && e.date == date && e.version == version)
            {
                None => Ok(None),
                Some(e) => a
                    .read(e)
                    .map(Some)
                    .map_err(|x| Error::Failed(format!("--archive {}: {x}", a.root().display()))),
            },
        }
    }
}

/// Check each day a settlement record lists against the oracle's records: that version exists
/// with the listed hash, verifies under `vk`, states the listed status and value, was
/// published by the record's cut-off (the final settlement time; for an INDICATIVE record,
/// the time it was computed) and was not replaced by then. Returns what differs.
async fn days_against_archive(
    r: &sit_core::settlement::SettlementRecord,
    archive: &str,
    set: &sit_core::keyset::KeySet,
) -> Result<Vec<String>> {
    let cut = match r.status {
        sit_core::settlement::SettlementStatus::Final => &r.final_settlement_time,
        sit_core::settlement::SettlementStatus::Indicative => &r.computed_at,
    };
    let tier = &r.contract.tier;
    let records = DailyRecords::open(archive)?;
    let mut problems = Vec::new();
    let expected = sit_core::time::format_utc_ms(crate::publisher::settle::final_time_ms(r.period));
    if r.final_settlement_time != expected {
        problems.push(format!(
            "final settlement time {} stated, the methodology's restatement cutoff of {} gives {expected}",
            r.final_settlement_time, r.period.last
        ));
    }
    for d in &r.days {
        let Some(bytes) = records.version(tier, d.date, d.version).await? else {
            problems.push(format!("{} v{}: not in the archive", d.date, d.version));
            continue;
        };
        let hash = sit_core::record::record_hash(&bytes);
        if hash != d.record_hash {
            problems.push(format!(
                "{} v{}: record hash {hash}, the settlement lists {}",
                d.date, d.version, d.record_hash
            ));
            continue;
        }
        let p = match signer(set, &bytes).and_then(|k| {
            sit_core::record::verify(&bytes, k.verifying_key()).map_err(|e| e.to_string())
        }) {
            Ok(v) => v.publication,
            Err(e) => {
                problems.push(format!("{} v{}: {e}", d.date, d.version));
                continue;
            }
        };
        let det = &p.determination;
        if (det.status, det.value) != (d.status, d.value) {
            problems.push(format!(
                "{} v{}: the record says {} {:?}, the settlement lists {} {:?}",
                d.date,
                d.version,
                det.status.as_str(),
                det.value.map(|v| v.to_string()),
                d.status.as_str(),
                d.value.map(|v| v.to_string())
            ));
        }
        if p.published_at.as_str() > cut.as_str() {
            problems.push(format!(
                "{} v{}: published at {}, after the cut-off {cut}",
                d.date, d.version, p.published_at
            ));
        }
        if let Some(next) = records.version(tier, d.date, d.version + 1).await? {
            match signer(set, &next).and_then(|k| {
                sit_core::record::verify(&next, k.verifying_key()).map_err(|e| e.to_string())
            }) {
                Ok(n) if n.publication.published_at.as_str() <= cut.as_str() => {
                    problems.push(format!(
                        "{} v{}: version {} replaced it at {}, before the cut-off {cut}",
                        d.date,
                        d.version,
                        d.version + 1,
                        n.publication.published_at
                    ))
                }
                Ok(_) => {}
                // unverifiable: whether it was in force cannot be told, so it is not passed
                Err(e) => problems.push(format!(
                    "{} v{}: version {} exists but does not verify ({e}); cannot tell whether it was in force",
                    d.date,
                    d.version,
                    d.version + 1
                )),
            }
        }
    }
    Ok(problems)
}

/// `sit publish`: publish `date` for each of `tiers` at the time `clock` reads, writing one
/// line per record (and the reason of a CONTINGENCY) to `out`. Refusals are reported on `err`, the
/// records in force stand, and the result is [`Error::Refused`] (exit 3).
///
/// The publication time comes from the clock only: the binary passes the system clock, and
/// tests that need another instant pass their own clock here, never a flag.
#[allow(clippy::too_many_arguments)]
pub fn publish_days(
    data: &std::path::Path,
    date: sit_core::time::Date,
    tiers: &[String],
    key: &std::path::Path,
    allow_empty: bool,
    clock: &dyn crate::sys::clock::Clock,
    out: &mut dyn std::io::Write,
    err: &mut dyn std::io::Write,
) -> Result<()> {
    let now_ms = clock.now_ms();
    let sk = crate::archive::keys::load_signing(key)?;
    if !data.exists() {
        return Err(Error::Usage(format!(
            "no store at {}; run `sit demo` first or pass --data DIR",
            data.display()
        )));
    }
    let store = crate::store::Store::open(data)?;
    let archive = crate::archive::Archive::for_data(data);
    let mut refused = Vec::new();
    for t in tiers {
        let req = crate::publisher::Request {
            tier: t,
            date,
            now_ms,
            key: &sk,
            allow_empty,
        };
        match crate::publisher::publish(
            &store,
            &archive,
            sit_core::versions::Registry::embedded(),
            &req,
        ) {
            Ok(p) => {
                writeln!(out, "published {}", p.line())?;
                if let Some(r) = p.contingency_reason {
                    writeln!(out, "          {r}")?;
                }
            }
            Err(crate::publisher::PublishError::Refused(r)) => {
                writeln!(err, "refused: {r}")?;
                refused.push(r.to_string());
            }
            Err(e) => return Err(e.into()),
        }
    }
    if refused.is_empty() {
        Ok(())
    } else {
        Err(Error::Refused(format!(
            "{} of {} publications refused; the records in force stand",
            refused.len(),
            tiers.len()
        )))
    }
}
