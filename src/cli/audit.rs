//! Auditors' commands: `sit audit export|replay|verify|stci`.

use super::{parse_date, AuditWhat, Command, Paths};
use crate::cli::error::{Error, Result};
use crate::store::Store;
use crate::sys::clock::{Clock, SystemClock};

/// A bundle, its key set pinned to `key` when given. Without one the bundle's own keys are
/// used, and the reader is told what that does not prove.
fn load_pinned(
    dir: &std::path::Path,
    key: Option<&std::path::Path>,
) -> Result<crate::audit::bundle::Bundle> {
    let mut b = crate::audit::bundle::Bundle::load(dir).map_err(|e| Error::Usage(e.to_string()))?;
    match key {
        Some(k) => {
            let root = crate::archive::keys::load_public(k)?;
            b.pin(&root).map_err(|e| {
                Error::Failed(format!(
                    "{}: {e}\n  hint: --key is the publisher's root key (the one its genesis notice N-0000 names), obtained out of band",
                    dir.display()
                ))
            })?;
        }
        None => eprintln!(
            "note: signatures are checked against the keys the bundle carries (keys/), which prove nothing about who signed: give --key ROOT, the publisher's key obtained out of band"
        ),
    }
    Ok(b)
}

/// The keys that signed the bundle's records, and how they are trusted.
fn signers(b: &crate::audit::bundle::Bundle) -> String {
    let mut ids: Vec<String> = b
        .determinations
        .iter()
        .chain(&b.previous)
        .filter_map(|(_, bytes)| {
            serde_json::from_slice::<serde_json::Value>(bytes)
                .ok()?
                .get("key_id")?
                .as_str()
                .map(String::from)
        })
        .collect();
    ids.sort();
    ids.dedup();
    match &b.pinned {
        Some(set) => format!(
            "{} (followed from the pinned root {}{})",
            ids.join(", "),
            set.keys.first().map(|k| k.key_id.as_str()).unwrap_or("?"),
            if set.chain.is_empty() {
                String::new()
            } else {
                format!(" through {}", set.chain.join(", "))
            }
        ),
        None => format!("{} (the bundle's own keys/: not pinned)", ids.join(", ")),
    }
}

/// Run a command of this family.
pub(super) async fn run(cli: &Paths, command: Command) -> Result<()> {
    match command {
        Command::Audit {
            what: AuditWhat::Export { date, out },
        } => {
            let date = parse_date(&date)?;
            if !cli.data.exists() {
                return Err(Error::Usage(format!(
                    "no store at {}; pass --data DIR",
                    cli.data.display()
                )));
            }
            let store = Store::open(&cli.data)?;
            let archive = crate::archive::Archive::for_data(&cli.data);
            let e = crate::audit::bundle::export(
                &store,
                &archive,
                sit_core::versions::Registry::embedded(),
                date,
                &out,
                SystemClock.now_ms(),
            )
            .map_err(|e| Error::Failed(e.to_string()))?;
            println!(
                "bundle {}: {} observations, {} published determinations, {} files",
                out.display(),
                e.observations,
                e.determinations,
                e.files
            );
            if e.late_records > 0 {
                println!(
                    "  {} records of {date} were stored after it was determined (a late vantage's): in the bundle, not its inputs",
                    e.late_records
                );
            }
            Ok(())
        }
        Command::Audit {
            what: AuditWhat::Replay { dir, json, key },
        } => {
            let b = load_pinned(&dir, key.as_deref())?;
            let t0 = std::time::Instant::now();
            let r = crate::audit::bundle::replay(&b);
            let secs = t0.elapsed().as_secs_f64();
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&r).map_err(|e| Error::Failed(e.to_string()))?
                );
            } else {
                for s in &r.structure {
                    println!("STRUCTURE  {s}");
                }
                for d in &r.observation_differences {
                    println!("OBSERVATION  {d}");
                }
                for (name, outcome) in &r.determinations {
                    println!("{name}: {outcome}");
                }
                for (name, i) in &r.intervals {
                    let show = |v: Option<sit_core::fixed::Fixed>| {
                        v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
                    };
                    println!(
                        "{name}: 95% interval [{}, {}] from {} bootstrap resamples of its probes ({} not set from data; {} of {} endpoint-hours hold one probe and cannot vary)",
                        show(i.low),
                        show(i.high),
                        i.resamples,
                        i.not_set,
                        i.single,
                        i.strata
                    );
                }
                eprintln!(
                    "re-derived {} observations ({} reference tokens) in {:.2} s",
                    r.observations_rederived, r.reference_tokens, secs
                );
                if r.evidence_withheld > 0 {
                    eprintln!(
                        "{} of them had their response withheld (the provider echoed the API key across stream events): their recorded figures are taken as stated",
                        r.evidence_withheld
                    );
                }
            }
            if r.identical() {
                Ok(())
            } else {
                Err(Error::Failed("replay is not identical".into()))
            }
        }
        Command::Audit {
            what: AuditWhat::Verify { dir, key },
        } => {
            let b = load_pinned(&dir, key.as_deref())?;
            let problems = crate::audit::bundle::verify(&b);
            if problems.is_empty() {
                println!(
                    "VERIFIED  {}: manifest, hash chain (seq {}..{}), Merkle roots and signatures of {} determinations, schedule commitment of {}",
                    dir.display(),
                    b.chain.first_seq,
                    b.chain.last_seq,
                    b.determinations.len(),
                    b.manifest.date
                );
                println!("  keys     {}", signers(&b));
                if b.pinned.is_some() {
                    let (signed, unsigned) = b.check_schedule_signatures().unwrap_or((0, 0));
                    println!(
                        "  schedule {signed} commitments and reveals signed by the key set{}",
                        if unsigned > 0 {
                            format!(", {unsigned} unsigned (made before the folder's notices)")
                        } else {
                            String::new()
                        }
                    );
                }
                if b.pinned.is_some() && !b.notices.is_empty() {
                    println!(
                        "  in force the methodology and suite of every record are those in force on its day by the bundle's notices ({})",
                        b.notices.len()
                    );
                }
                Ok(())
            } else {
                for p in &problems {
                    println!("FAILED  {p}");
                }
                Err(Error::Failed(format!(
                    "{} checks failed; first: {}",
                    problems.len(),
                    problems[0]
                )))
            }
        }
        Command::Audit {
            what:
                AuditWhat::Stci {
                    observations,
                    methodology,
                    published,
                    json,
                },
        } => {
            let rows = crate::audit::stci_replay(&observations, &methodology, published.as_deref())
                .map_err(|e| Error::Usage(e.to_string()))?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&rows)
                        .map_err(|e| Error::Failed(e.to_string()))?
                );
            } else {
                print!("{}", crate::audit::render_stci(&rows));
            }
            let bad = rows.iter().filter(|r| r.matches == Some(false)).count();
            if bad > 0 {
                return Err(Error::Failed(format!(
                    "{bad} index values differ from the published ones"
                )));
            }
            Ok(())
        }
        _ => unreachable!("dispatched by cli::run"),
    }
}
