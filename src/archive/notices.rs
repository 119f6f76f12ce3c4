//! Published notices (`sit_core::notice`): `<data>/published/notices/N-NNNN.json`, each the
//! canonical signed bytes, created once and fsynced, numbered in publication order. Nothing
//! rewrites or removes one: a change of plan is a later notice.

use super::{io, ArchiveError};
use crate::sys::durable;
use sit_core::notice::Notice;
use std::path::{Path, PathBuf};

/// The notices folder of an archive root (`<data>/published`).
pub fn dir(root: &Path) -> PathBuf {
    root.join("notices")
}

/// A published notice: what it says, and its bytes as signed.
#[derive(Debug, Clone)]
pub struct Published {
    pub notice: Notice,
    pub bytes: Vec<u8>,
}

/// Parse a notice's signed bytes (the signature member aside; it is checked by the verifier,
/// not here).
pub fn parse(bytes: &[u8]) -> Result<Notice, String> {
    let mut v = sit_core::signing::parse_strict(bytes).map_err(|e| e.to_string())?;
    let obj = v
        .as_object_mut()
        .ok_or_else(|| "a notice is a JSON object".to_string())?;
    obj.remove("signature")
        .ok_or_else(|| "a published notice is signed (no `signature` member)".to_string())?;
    serde_json::from_value(v).map_err(|e| e.to_string())
}

/// Every published notice, in id order. A file that does not parse, or whose name is not its
/// id, is an error naming it.
pub fn all(root: &Path) -> Result<Vec<Published>, ArchiveError> {
    let d = dir(root);
    let mut names: Vec<String> = match std::fs::read_dir(&d) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("N-") && n.ends_with(".json"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(&d)(e)),
    };
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let p = d.join(name);
        let bytes = std::fs::read(&p).map_err(io(&p))?;
        let notice = parse(&bytes).map_err(|why| ArchiveError::Corrupt {
            path: p.clone(),
            line: 1,
            why,
        })?;
        let want = format!("N-{i:04}");
        if notice.id != want || *name != format!("{want}.json") {
            return Err(ArchiveError::Corrupt {
                path: p,
                line: 1,
                why: format!(
                    "notice {} in file {name}: notices are numbered N-0000, N-0001, ... with no gap",
                    notice.id
                ),
            });
        }
        out.push(Published { notice, bytes });
    }
    Ok(out)
}

/// How many notices are published (files named `N-*.json`): the server reloads when it grows
/// (notices are append-only, so a count is a fingerprint).
pub fn count(root: &Path) -> usize {
    std::fs::read_dir(dir(root))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| {
                    let n = e.file_name();
                    let n = n.to_string_lossy();
                    n.starts_with("N-") && n.ends_with(".json")
                })
                .count()
        })
        .unwrap_or(0)
}

/// Publish a notice: its signed bytes written once as `notices/<id>.json` (an existing file
/// of that id is never touched: `AlreadyExists`).
pub fn put(root: &Path, id: &str, bytes: &[u8]) -> Result<PathBuf, ArchiveError> {
    let d = dir(root);
    std::fs::create_dir_all(&d).map_err(io(&d))?;
    let p = d.join(format!("{id}.json"));
    durable::create_once(&p, bytes, durable::Access::Shared).map_err(io(&p))?;
    Ok(p)
}
