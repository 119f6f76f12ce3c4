//! `contracts.toml`: the futures listed on the index, read with the same care as
//! `providers.toml` (every error names file:line:column, the key and the fix).

use crate::config::ConfigError;
use serde::Deserialize;
use sit_core::fixed::Fixed;
use sit_core::settlement::{Contract, Cycle, SuspendedFallback};
use std::path::Path;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    contract: Vec<RawContract>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContract {
    id: Spanned<String>,
    tier: Spanned<String>,
    cycle: Spanned<String>,
    unit_sit: Spanned<i64>,
    tick: Spanned<String>,
    scale: Spanned<i64>,
    suspended: Spanned<String>,
    #[serde(default)]
    last_trading_days_before_end: Option<Spanned<i64>>,
    #[serde(default)]
    min_attestations: Option<Spanned<i64>>,
}

const KEYS: &str =
    "id, tier, cycle, unit_sit, tick, scale, suspended, last_trading_days_before_end, min_attestations";

fn at(
    file: &str,
    text: &str,
    offset: usize,
    key: &str,
    message: String,
    hint: &str,
) -> ConfigError {
    crate::config::Ctx { file, text }.at(offset, key, message, hint)
}

/// Load and check a contracts file. `tiers`: the suite's tier ids.
pub fn load(path: &Path, tiers: &[String]) -> Result<Vec<Contract>, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: file.clone(),
        line: 0,
        column: 0,
        key: "(file)".into(),
        message: format!("cannot read: {e}"),
        hint: "pass --contracts FILE with a readable contracts.toml (the repository has one)"
            .into(),
    })?;
    parse(&file, &text, tiers)
}

/// The repository's `contracts.toml`, built in: what `sit run` settles on when given no file.
pub const EMBEDDED: &str = include_str!("../contracts.toml");

/// The built-in contracts ([`EMBEDDED`]).
pub fn embedded(tiers: &[String]) -> Vec<Contract> {
    parse("contracts.toml (built in)", EMBEDDED, tiers).expect("the built-in contracts.toml loads")
}

/// `path` when given, else the built-in contracts.
pub fn load_or_embedded(
    path: Option<&Path>,
    tiers: &[String],
) -> Result<Vec<Contract>, ConfigError> {
    match path {
        Some(p) => load(p, tiers),
        None => Ok(embedded(tiers)),
    }
}

/// [`load`] from text (`file` names it in errors).
pub fn parse(file: &str, text: &str, tiers: &[String]) -> Result<Vec<Contract>, ConfigError> {
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let offset = e.span().map(|s| s.start).unwrap_or(0);
        at(
            file,
            text,
            offset,
            "(file)",
            e.message().to_string(),
            &format!("one [[contract]] table per contract with {KEYS}"),
        )
    })?;
    let mut out: Vec<Contract> = Vec::new();
    for r in raw.contract {
        let err = |s: usize, key: &str, msg: String, hint: &str| at(file, text, s, key, msg, hint);
        let id = r.id.get_ref();
        if id.is_empty()
            || id.len() > 32
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(err(
                r.id.span().start,
                "id",
                format!("`{id}` is not a contract id"),
                "1 to 32 letters, digits, '-' or '_' (it names the settlement folder), e.g. \"SIT-T2-M\"",
            ));
        }
        if out.iter().any(|c| c.id == *r.id.get_ref()) {
            return Err(err(
                r.id.span().start,
                "id",
                format!("contract `{}` is listed twice", r.id.get_ref()),
                "give each contract its own id",
            ));
        }
        if !tiers.contains(r.tier.get_ref()) {
            return Err(err(
                r.tier.span().start,
                "tier",
                format!("unknown tier `{}`", r.tier.get_ref()),
                &format!("one of {}", tiers.join(", ")),
            ));
        }
        let cycle = match r.cycle.get_ref().as_str() {
            "monthly" => Cycle::Monthly,
            "quarterly" => Cycle::Quarterly,
            other => {
                return Err(err(
                    r.cycle.span().start,
                    "cycle",
                    format!("unknown cycle `{other}`"),
                    "monthly or quarterly",
                ))
            }
        };
        let unit = *r.unit_sit.get_ref();
        if unit <= 0 {
            return Err(err(
                r.unit_sit.span().start,
                "unit_sit",
                format!("{unit} is not a positive number of SIT"),
                "e.g. 1000000000 (1,000 x 1,000,000 SIT)",
            ));
        }
        let tick = Fixed::parse(r.tick.get_ref())
            .ok()
            .filter(|t| t.0 > 0)
            .ok_or_else(|| {
                err(
                    r.tick.span().start,
                    "tick",
                    format!("`{}` is not a positive decimal", r.tick.get_ref()),
                    "a decimal string in USD per 1M SIT, e.g. \"0.0001\"",
                )
            })?;
        let scale = *r.scale.get_ref();
        if !(0..=9).contains(&scale) {
            return Err(err(
                r.scale.span().start,
                "scale",
                format!("{scale} decimal places"),
                "0 to 9 (the index's own precision is 9)",
            ));
        }
        let step = 10i128.pow(9 - scale as u32);
        if tick.0 % step != 0 {
            return Err(err(
                r.tick.span().start,
                "tick",
                format!(
                    "tick {} is finer than the settlement scale of {scale} decimals",
                    r.tick.get_ref()
                ),
                "make the tick a multiple of 10^-scale",
            ));
        }
        let suspended = match r.suspended.get_ref().as_str() {
            "carry" => SuspendedFallback::Carry,
            "exclude" => SuspendedFallback::Exclude,
            other => {
                return Err(err(
                    r.suspended.span().start,
                    "suspended",
                    format!("unknown fallback `{other}`"),
                    "carry (the last value set from data) or exclude (the day leaves the mean)",
                ))
            }
        };
        let ltd = match &r.last_trading_days_before_end {
            None => 0,
            Some(s) if (0..=27).contains(s.get_ref()) => *s.get_ref() as u32,
            Some(s) => {
                return Err(err(
                    s.span().start,
                    "last_trading_days_before_end",
                    format!("{}", s.get_ref()),
                    "0 to 27 days",
                ))
            }
        };
        let min_attestations = match &r.min_attestations {
            None => 0,
            Some(s) if (0..=16).contains(s.get_ref()) => *s.get_ref() as u32,
            Some(s) => {
                return Err(err(
                    s.span().start,
                    "min_attestations",
                    format!("{}", s.get_ref()),
                    "0 to 16 distinct auditors (0: the FINAL record waits for none)",
                ))
            }
        };
        out.push(Contract {
            id: r.id.into_inner(),
            tier: r.tier.into_inner(),
            cycle,
            unit_sit: unit as u64,
            tick,
            scale: scale as u32,
            suspended,
            last_trading_days_before_end: ltd,
            min_attestations,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiers() -> Vec<String> {
        vec!["t1".into(), "t2".into(), "t3".into()]
    }

    #[test]
    fn the_repositorys_contracts_file_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("contracts.toml");
        let c = load(&path, &tiers()).unwrap();
        assert!(c
            .iter()
            .any(|c| c.tier == "t2" && c.cycle == Cycle::Monthly));
        assert!(c.iter().any(|c| c.cycle == Cycle::Quarterly));
        assert_eq!(embedded(&tiers()), c, "the built-in copy is the file");
    }

    #[test]
    fn a_bad_value_is_named_with_its_line_and_the_fix() {
        let text = "[[contract]]\nid = \"A\"\ntier = \"t9\"\ncycle = \"monthly\"\nunit_sit = 1\ntick = \"0.01\"\nscale = 2\nsuspended = \"carry\"\n";
        let e = parse("contracts.toml", text, &tiers()).unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (3, "tier"), "{e}");
        assert!(e.to_string().contains("one of t1, t2, t3"), "{e}");
        let text = text.replace("t9", "t1").replace("scale = 2", "scale = 1");
        let e = parse("contracts.toml", &text, &tiers()).unwrap_err();
        assert_eq!(e.key, "tick", "{e}");
        let bad_id = text.replace("id = \"A\"", "id = \"../x\"");
        let e = parse("contracts.toml", &bad_id, &tiers()).unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (2, "id"), "{e}");
        let e = parse("contracts.toml", "[[contract]]\nid = 1\n", &tiers()).unwrap_err();
        assert_eq!(e.line, 2, "{e}");
    }
}
