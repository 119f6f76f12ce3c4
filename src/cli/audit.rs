//! Auditors' commands: `sit audit export|replay|verify|stci`.

use super::{parse_date, AuditWhat, Command, Paths};
use crate::cli::error::{Error, Result};
use crate::store::Store;
use crate::sys::clock::{Clock, SystemClock};

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
            Ok(())
        }
        Command::Audit {
            what: AuditWhat::Replay { dir, json },
        } => {
            let b = crate::audit::bundle::Bundle::load(&dir)
                .map_err(|e| Error::Usage(e.to_string()))?;
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
            what: AuditWhat::Verify { dir },
        } => {
            let b = crate::audit::bundle::Bundle::load(&dir)
                .map_err(|e| Error::Usage(e.to_string()))?;
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
