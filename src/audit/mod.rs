//! Auditors' tools. [`stci`]: reproduce a peer index (the Standard Token Cost Index) from its
//! own price tape, exactly, as an independent check of our decimal machinery and of theirs.

pub mod bundle;

use sit_core::stci::{
    self, compute, differences, parse_methodology, parse_published, parse_tape, StciError,
};
use std::path::Path;

/// One (day, index) row of a peer replay.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StciRow {
    pub date: String,
    pub index: String,
    pub computed: Option<stci::IndexValue>,
    /// Whether a published value was given and every field matches (None: nothing to compare).
    #[serde(rename = "match")]
    pub matches: Option<bool>,
    /// Fields that differ, or `not published` / `not computed`.
    pub differences: Vec<String>,
}

fn read(p: &Path) -> Result<String, StciError> {
    std::fs::read_to_string(p).map_err(|source| StciError::Io {
        path: p.display().to_string(),
        source,
    })
}

/// Replay every `YYYY-MM-DD.jsonl` day in `observations`, compared with
/// `published/YYYY-MM-DD.json` when given.
pub fn stci_replay(
    observations: &Path,
    methodology: &Path,
    published: Option<&Path>,
) -> Result<Vec<StciRow>, StciError> {
    let m = parse_methodology(&methodology.display().to_string(), &read(methodology)?)?;
    let mut days: Vec<(String, std::path::PathBuf)> = std::fs::read_dir(observations)
        .map_err(|source| StciError::Io {
            path: observations.display().to_string(),
            source,
        })?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let day = name.strip_suffix(".jsonl")?.to_string();
            sit_core::time::Date::parse(&day).ok()?;
            Some((day, e.path()))
        })
        .collect();
    days.sort();
    let mut rows = Vec::new();
    for (day, path) in days {
        let tape = parse_tape(&path.display().to_string(), &read(&path)?)?;
        let computed = compute(&m, &tape)?;
        let pubd = match published {
            Some(dir) => {
                let f = dir.join(format!("{day}.json"));
                // A day without a published file (a further day) has nothing to compare.
                if f.exists() {
                    Some(parse_published(
                        &f.display().to_string(),
                        &read(&f)?,
                        m.output_places,
                    )?)
                } else {
                    None
                }
            }
            None => None,
        };
        let mut names: Vec<String> = m.indices.iter().map(|(n, _)| n.clone()).collect();
        if let Some(p) = &pubd {
            for k in p.keys() {
                if !names.contains(k) {
                    names.push(k.clone());
                }
            }
        }
        for name in names {
            let c = computed.iter().find(|v| v.index == name).cloned();
            let (matches, diffs) = match (&pubd, &c) {
                (None, _) => (None, vec![]),
                (Some(p), c) => match (p.get(&name), c) {
                    (None, None) => continue,
                    (Some(pv), Some(cv)) => {
                        let d: Vec<String> =
                            differences(cv, pv).into_iter().map(String::from).collect();
                        (Some(d.is_empty()), d)
                    }
                    (None, Some(_)) => (Some(false), vec!["not published".into()]),
                    (Some(_), None) => (
                        Some(false),
                        vec!["not computed (below basket coverage)".into()],
                    ),
                },
            };
            if c.is_none() && pubd.is_none() {
                continue;
            }
            rows.push(StciRow {
                date: day.clone(),
                index: name,
                computed: c,
                matches,
                differences: diffs,
            });
        }
    }
    Ok(rows)
}

/// The human table of a replay.
pub fn render_stci(rows: &[StciRow]) -> String {
    let mut s = format!(
        "{:<10}  {:<15} {:>8} {:>8} {:>8} {:>6} {:>10}  published\n",
        "date", "index", "input", "output", "blended", "models", "dispersion"
    );
    for r in rows {
        let (i, o, b, n, d) = match &r.computed {
            Some(c) => (
                c.input_rate.clone(),
                c.output_rate.clone(),
                c.blended_rate.clone(),
                c.model_count.to_string(),
                c.dispersion.clone().unwrap_or("-".into()),
            ),
            None => ("-".into(), "-".into(), "-".into(), "-".into(), "-".into()),
        };
        let m = match r.matches {
            None => "-".to_string(),
            Some(true) => "match".to_string(),
            Some(false) => format!("MISMATCH: {}", r.differences.join(", ")),
        };
        s.push_str(&format!(
            "{:<10}  {:<15} {:>8} {:>8} {:>8} {:>6} {:>10}  {m}\n",
            r.date, r.index, i, o, b, n, d
        ));
    }
    let compared = rows.iter().filter(|r| r.matches.is_some()).count();
    let ok = rows.iter().filter(|r| r.matches == Some(true)).count();
    let days: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.date.as_str()).collect();
    s.push_str(&format!(
        "\n{} days, {} index values; compared with the published files: {compared}, matching in every field: {ok}, mismatching: {}\n",
        days.len(),
        rows.len(),
        compared - ok
    ));
    s
}
