//! `parties.toml`: the providers, exchanges, auditors and administrators registered to write
//! to the oracle (issue 30), each with a role and an Ed25519 public key, read with the same care
//! as `providers.toml` (every error names file:line:column, the key and the fix).
//!
//! ```toml
//! [[party]]
//! id = "acme-inference"            # letters, digits, '-', '_'
//! role = "provider"                # provider, exchange, auditor or administrator
//! public_key = "3b6a27bc..."       # 64 hex digits (sit keys generate prints it)
//! valid_from = "2026-01-01T00:00:00Z"   # optional: submissions from then on
//! valid_until = "2027-01-01T00:00:00Z"  # optional: ... and before then
//! ```
//!
//! A key belongs to one party: a key listed twice is refused, so a submission's key names
//! exactly one party and role.

use super::{ConfigError, Ctx};
use serde::Deserialize;
use sit_core::oversight::{Parties, Party, Role};
use sit_core::time::parse_utc_ms;
use std::path::Path;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    party: Vec<RawParty>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParty {
    id: Spanned<String>,
    role: Spanned<String>,
    public_key: Spanned<String>,
    #[serde(default)]
    valid_from: Option<Spanned<String>>,
    #[serde(default)]
    valid_until: Option<Spanned<String>>,
}

const KEYS: &str = "id, role, public_key, valid_from, valid_until";

/// Load and check a parties file.
pub fn load(path: &Path) -> Result<Parties, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: file.clone(),
        line: 0,
        column: 0,
        key: "(file)".into(),
        message: format!("cannot read: {e}"),
        hint: "pass --parties FILE with a readable parties.toml (docs/oversight.md shows one)"
            .into(),
    })?;
    parse(&file, &text)
}

/// [`load`] from text (`file` names it in errors).
pub fn parse(file: &str, text: &str) -> Result<Parties, ConfigError> {
    let ctx = Ctx { file, text };
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        ctx.at(
            e.span().map(|s| s.start).unwrap_or(0),
            "(file)",
            e.message().to_string(),
            format!("one [[party]] table per party with {KEYS}"),
        )
    })?;
    let mut out = Parties::default();
    for r in raw.party {
        let id = r.id.get_ref();
        if id.is_empty()
            || id.len() > 64
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ctx.at(
                r.id.span().start,
                "id",
                format!("`{id}` is not a party id"),
                "1 to 64 letters, digits, '-' or '_', e.g. \"acme-inference\"",
            ));
        }
        if out.parties.iter().any(|p| p.id == *id) {
            return Err(ctx.at(
                r.id.span().start,
                "id",
                format!("party `{id}` is listed twice"),
                "give each party one [[party]] table (a new key for a party: a new id, or valid_until on the old entry and a new entry)",
            ));
        }
        let role = Role::parse(r.role.get_ref()).ok_or_else(|| {
            ctx.at(
                r.role.span().start,
                "role",
                format!("unknown role `{}`", r.role.get_ref()),
                "provider, exchange, auditor or administrator",
            )
        })?;
        let vk = sit_core::signing::parse_public(r.public_key.get_ref())
            .ok()
            .filter(|_| r.public_key.get_ref().trim().len() == 64)
            .ok_or_else(|| {
                ctx.at(
                    r.public_key.span().start,
                    "public_key",
                    "not an Ed25519 public key",
                    "64 hex digits: the `public hex` line `sit keys generate` prints",
                )
            })?;
        let time = |t: &Option<Spanned<String>>, key: &str| -> Result<Option<i64>, ConfigError> {
            match t {
                None => Ok(None),
                Some(s) => parse_utc_ms(s.get_ref()).map(Some).map_err(|e| {
                    ctx.at(
                        s.span().start,
                        key,
                        e.to_string(),
                        "an RFC 3339 UTC time, e.g. \"2026-01-01T00:00:00Z\"",
                    )
                }),
            }
        };
        let from = time(&r.valid_from, "valid_from")?;
        let until = time(&r.valid_until, "valid_until")?;
        if let (Some(f), Some(u), Some(s)) = (from, until, &r.valid_until) {
            if u <= f {
                return Err(ctx.at(
                    s.span().start,
                    "valid_until",
                    "valid_until is not after valid_from",
                    "a key is valid from valid_from up to (not including) valid_until",
                ));
            }
        }
        let party = Party::new(id, role, vk, from, until);
        if let Some(other) = out.parties.iter().find(|p| p.key_id == party.key_id) {
            return Err(ctx.at(
                r.public_key.span().start,
                "public_key",
                format!("the key {} is already party `{}`'s", party.key_id, other.id),
                "each party signs with a key of its own: a submission's key must name one party and one role",
            ));
        }
        out.parties.push(party);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex_of(b: u8) -> String {
        let k = ed25519_dalek::SigningKey::from_bytes(&[b; 32]);
        sit_core::signing::hex(k.verifying_key().as_bytes())
    }

    #[test]
    fn a_parties_file_loads_with_roles_and_validity() {
        let text = format!(
            "[[party]]\nid = \"acme\"\nrole = \"provider\"\npublic_key = \"{}\"\n\n[[party]]\nid = \"audit-1\"\nrole = \"auditor\"\npublic_key = \"{}\"\nvalid_from = \"2026-01-01T00:00:00Z\"\n",
            hex_of(1),
            hex_of(2)
        );
        let p = parse("parties.toml", &text).unwrap();
        assert_eq!(p.parties.len(), 2);
        assert_eq!(p.parties[1].role, Role::Auditor);
        assert!(!p.parties[1].valid_at(0));
        assert!(p.by_key(&p.parties[0].key_id).is_some());
    }

    #[test]
    fn a_bad_party_is_named_with_its_line_and_the_fix() {
        let good = format!(
            "[[party]]\nid = \"acme\"\nrole = \"provider\"\npublic_key = \"{}\"\n",
            hex_of(1)
        );
        let e = parse("parties.toml", &good.replace("provider", "trader")).unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (3, "role"), "{e}");
        assert!(e
            .to_string()
            .contains("provider, exchange, auditor or administrator"));
        let e = parse("parties.toml", &good.replace(&hex_of(1), "abcd")).unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (4, "public_key"), "{e}");
        let twice = format!("{good}\n{}", good.replace("acme", "other"));
        let e = parse("parties.toml", &twice).unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (9, "public_key"), "{e}");
        assert!(e.to_string().contains("already party `acme`'s"), "{e}");
        let e = parse("parties.toml", &format!("{good}\n{good}")).unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (7, "id"), "{e}");
        let e = parse("parties.toml", &format!("{good}colour = 1\n")).unwrap_err();
        assert_eq!(e.line, 5, "{e}");
        let e = parse(
            "parties.toml",
            &format!("{good}valid_from = \"2026-02-01T00:00:00Z\"\nvalid_until = \"2026-01-01T00:00:00Z\"\n"),
        )
        .unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (6, "valid_until"), "{e}");
    }
}
