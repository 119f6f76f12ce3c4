//! `sit notice`: draft, check, publish and list the notices that announce every change of
//! what the index is made of ([`sit_core::notice`] has the rules, [`crate::publisher::notices`]
//! the publishing).

use super::{Command, NoticeWhat, Paths};
use crate::archive::{layout, Archive};
use crate::cli::error::{Error, Result};
use crate::publisher::notices::{self, Context};
use sit_core::notice::{Change, Class, Consultation, Governance, Notice, State, KIND};
use sit_core::time::{format_utc_ms, parse_utc_ms, Date};
use sit_core::versions::Registry;

pub(super) fn run(cli: &Paths, c: Command) -> Result<()> {
    let Command::Notice { what } = c else {
        return Err(Error::Usage("not a notice command".into()));
    };
    let archive = Archive::for_data(&cli.data);
    let clock = crate::sys::clock::recorded_clock(&layout::run_clock(&cli.data))?;
    let now = clock.now_ms();
    match what {
        NoticeWhat::Draft(d) => {
            let draft = draft(&d)?;
            let text = serde_json::to_string_pretty(&draft).expect("a notice serialises");
            match &d.out {
                Some(p) => {
                    std::fs::write(p, format!("{text}\n"))?;
                    eprintln!(
                        "draft written to {}; check it with `sit notice check {}`",
                        p.display(),
                        p.display()
                    );
                }
                None => println!("{text}"),
            }
            let g = Governance::default();
            eprintln!(
                "earliest effective day if published now ({}): {} {}",
                format_utc_ms(now),
                draft.class.name(),
                Date::of_ms(g.earliest_effective_ms(draft.class, now))
            );
            Ok(())
        }
        NoticeWhat::Check { file, contracts } => {
            let d = read_draft(&file)?;
            let ctx = context(cli, contracts.as_deref())?;
            // checked as if published now, numbered next (the key is not needed to check)
            let key = ed25519_dalek::SigningKey::from_bytes(&[0; 32]);
            let mut n = notices::complete(&d, &archive, now, &key)?;
            // A rotation is signed by its outgoing key (and accepted by the incoming one at
            // publication): checked here as if so, the signatures by `publish`.
            let rotation = n.changes.iter().find_map(|c| match c {
                Change::KeyRotation { from, to, .. } => Some((from.clone(), to.clone())),
                _ => None,
            });
            if let Some((from, _)) = &rotation {
                n.key_id = from.clone();
            }
            notices::check(&n, &archive, &ctx)?;
            if let Some((from, to)) = &rotation {
                println!(
                    "a rotation: publish it with --key (the outgoing key {from}) and --accept-key (the incoming key {to})"
                );
            }
            println!(
                "OK: {} ({}), {} change(s), in force from {} if published now",
                n.id,
                n.class.name(),
                n.changes.len(),
                n.effective_at
            );
            Ok(())
        }
        NoticeWhat::Publish {
            file,
            key,
            accept_key,
            contracts,
        } => {
            let d = read_draft(&file)?;
            let ctx = context(cli, contracts.as_deref())?;
            let key = crate::archive::keys::load_signing(&key)?;
            let accept = accept_key
                .as_deref()
                .map(crate::archive::keys::load_signing)
                .transpose()?;
            let (n, path) = notices::publish(&d, &archive, &ctx, &key, accept.as_ref(), now)?;
            println!(
                "published {} ({}) at {}, in force from {}: {}",
                n.id,
                n.class.name(),
                n.published_at,
                n.effective_at,
                path.display()
            );
            for c in &n.changes {
                println!("  {}", c.describe());
            }
            Ok(())
        }
        NoticeWhat::List { upcoming, json } => {
            let all = notices::published(&archive)?;
            let shown: Vec<&Notice> = all
                .iter()
                .filter(|n| !upcoming || n.effective_ms().is_ok_and(|e| e > now))
                .collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&shown).expect("json"));
                return Ok(());
            }
            if shown.is_empty() {
                println!("no {}notices", if upcoming { "upcoming " } else { "" });
            }
            for n in &shown {
                println!(
                    "{}  {:<9}  published {}  in force from {}{}",
                    n.id,
                    n.class.name(),
                    n.published_at,
                    n.effective_at,
                    if n.class == Class::Emergency {
                        "  EMERGENCY"
                    } else {
                        ""
                    }
                );
                for c in &n.changes {
                    println!("    {}", c.describe());
                }
                println!("    why: {}", n.reason);
            }
            if !all.is_empty() {
                let s = State::at(&all, now).map_err(Error::Failed)?;
                println!(
                    "in force now: methodology {}, suite {}, {} endpoints in the panel, {} contracts, signing key {}",
                    s.methodology.as_ref().map(|m| m.1.as_str()).unwrap_or("-"),
                    s.suite.as_ref().map(|m| m.1.as_str()).unwrap_or("-"),
                    s.panel.len(),
                    s.contracts.len(),
                    s.signing_key().unwrap_or("-")
                );
            }
            Ok(())
        }
    }
}

/// The draft the flags describe.
fn draft(d: &super::NoticeDraft) -> Result<Notice> {
    let registry = Registry::embedded();
    let class = match d.class.as_str() {
        "patch" => Class::Patch,
        "minor" => Class::Minor,
        "major" => Class::Major,
        "emergency" => Class::Emergency,
        other => {
            return Err(Error::Usage(format!(
                "--class {other}: one of patch, minor, major, emergency"
            )))
        }
    };
    let mut changes = Vec::new();
    if let Some(v) = &d.methodology {
        let (hash, m) = registry
            .methodologies()
            .find(|(h, m)| m.version == *v || *h == v.as_str())
            .ok_or_else(|| {
                Error::Usage(format!(
                    "--methodology {v}: this build knows {}",
                    registry
                        .methodologies()
                        .map(|(_, m)| m.version.clone())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
        changes.push(Change::Methodology {
            version: m.version.clone(),
            hash: hash.to_string(),
        });
    }
    if let Some(v) = &d.suite {
        let s = registry
            .suites()
            .iter()
            .find(|s| s.version == *v || s.hash == *v)
            .ok_or_else(|| Error::Usage(format!("--suite {v}: not a suite this build knows")))?;
        changes.push(Change::Suite {
            version: s.version.clone(),
            hash: s.hash.clone(),
        });
    }
    let pair = |flag: &str, s: &str| -> Result<(String, String)> {
        s.split_once('=')
            .filter(|(a, b)| !a.is_empty() && !b.is_empty())
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .ok_or_else(|| Error::Usage(format!("--{flag} {s}: write ENDPOINT=PROVIDER")))
    };
    for a in &d.add {
        let (endpoint, provider) = pair("add", a)?;
        changes.push(Change::PanelAdd { endpoint, provider });
    }
    for r in &d.remove {
        changes.push(Change::PanelRemove {
            endpoint: r.clone(),
        });
    }
    for a in &d.regroup {
        let (endpoint, provider) = pair("regroup", a)?;
        changes.push(Change::PanelRegroup { endpoint, provider });
    }
    for id in &d.list_contract {
        changes.push(Change::ContractAdd { id: id.clone() });
    }
    for id in &d.change_contract {
        changes.push(Change::ContractChange { id: id.clone() });
    }
    for id in &d.delist {
        changes.push(Change::ContractDelist { id: id.clone() });
    }
    if let Some(p) = &d.rotate_to {
        let from = d.rotate_from.clone().ok_or_else(|| {
            Error::Usage("--rotate-to needs --rotate-from KEY_ID (the key in force)".into())
        })?;
        let vk = crate::archive::keys::load_public(p)?;
        changes.push(Change::KeyRotation {
            from,
            to: sit_core::signing::key_id(&vk),
            public_key: sit_core::signing::hex(vk.as_bytes()),
            overlap_days: d.overlap_days,
        });
    }
    let effective = Date::parse(&d.effective).map_err(|e| {
        Error::Usage(format!(
            "--effective {}: {e} (a UTC day, YYYY-MM-DD)",
            d.effective
        ))
    })?;
    let void_after = match &d.void_after {
        None => format_utc_ms(effective.start_ms()),
        Some(t) => match Date::parse(t) {
            Ok(day) => format_utc_ms(day.start_ms()),
            Err(_) => format_utc_ms(parse_utc_ms(t).map_err(|e| {
                Error::Usage(format!(
                    "--void-after {t}: {e} (RFC 3339 UTC, or a day YYYY-MM-DD)"
                ))
            })?),
        },
    };
    for k in &d.revoke {
        changes.push(Change::KeyRevocation {
            key: k.clone(),
            void_after: void_after.clone(),
        });
    }
    for t in &d.cease {
        changes.push(Change::Cessation { tier: t.clone() });
    }
    if changes.is_empty() {
        return Err(Error::Usage(
            "a notice changes something: give --methodology, --suite, --add, --remove, --regroup, --list-contract, --change-contract, --delist, --rotate-to, --revoke or --cease".into(),
        ));
    }
    let consultation = match &d.consultation_closes {
        None => None,
        Some(c) => {
            let closes = Date::parse(c)
                .map_err(|e| Error::Usage(format!("--consultation-closes {c}: {e}")))?;
            Some(Consultation {
                // opens when published: filled in then
                opens: String::new(),
                closes: format_utc_ms(closes.start_ms()),
            })
        }
    };
    Ok(Notice {
        kind: KIND.into(),
        id: String::new(),
        class,
        changes,
        reason: d.reason.clone(),
        published_at: String::new(),
        effective_at: format_utc_ms(effective.start_ms()),
        consultation,
        key_id: String::new(),
        acceptance: None,
    })
}

fn read_draft(path: &std::path::Path) -> Result<Notice> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
    let n: Notice = serde_json::from_str(&text).map_err(|e| {
        Error::Usage(format!(
            "{}: not a notice draft ({e}); make one with `sit notice draft ... --out FILE`",
            path.display()
        ))
    })?;
    if parse_utc_ms(&n.effective_at).is_err() {
        return Err(Error::Usage(format!(
            "{}: effective_at {:?} is not a UTC time",
            path.display(),
            n.effective_at
        )));
    }
    Ok(n)
}

/// What the checks know: this build's versions, the configured endpoints and contracts.
fn context(cli: &Paths, contracts: Option<&std::path::Path>) -> Result<Context> {
    let suite = sit_core::probes::Suite::embedded();
    let endpoints: Vec<String> = match crate::config::load(&cli.providers) {
        Ok(c) => c.endpoints.into_iter().map(|e| e.id).collect(),
        Err(e) if !cli.providers.exists() => {
            let _ = e;
            Vec::new()
        }
        Err(e) => return Err(e.into()),
    };
    let contracts = crate::contracts::load_or_embedded(contracts, &suite.tier_ids())?;
    Ok(Context::new(
        Registry::embedded(),
        endpoints,
        contracts.into_iter().map(|c| c.id),
    ))
}
