//! Hedge analytics for buyers of inference (`sit hedge`): how well the index's futures would
//! have hedged one buyer's own cost ([`analysis`]), and the paper's demand-explosion scenario
//! by Monte Carlo ([`simulate`]), with SVG charts ([`chart`]).
//!
//! Analytics, not settlement: floats are fine here (never on the settlement path), and every
//! figure is deterministic for its inputs (and seed).

pub mod analysis;
pub mod chart;
pub mod simulate;

use analysis::Point;
use std::path::Path;

/// How often a buyer's costs are observed (from the dates' form).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frequency {
    Daily,
    Monthly,
}

/// Columns of a CSV header: name -> position (names trimmed, lowercase).
fn columns(header: &str) -> Vec<String> {
    header
        .split(',')
        .map(|c| c.trim().trim_matches('"').to_ascii_lowercase())
        .collect()
}

fn column(cols: &[String], name: &str, file: &str, hint: &str) -> Result<usize, String> {
    cols.iter().position(|c| c == name).ok_or_else(|| {
        format!(
            "{file}:1: no `{name}` column (header: {}); {hint}",
            cols.join(",")
        )
    })
}

/// The cells of data line `n` (1-based), which must have as many as the header. Quoted cells
/// are refused: a spreadsheet's "1,234.50" would otherwise split into two numbers.
fn cells<'a>(l: &'a str, n: usize, width: usize, file: &str) -> Result<Vec<&'a str>, String> {
    if l.contains('"') {
        return Err(format!(
            "{file}:{n}: quoted cells are not read; export plain numbers (no thousands separators, no quotes)"
        ));
    }
    let c: Vec<&str> = l.split(',').map(str::trim).collect();
    if c.len() != width {
        return Err(format!(
            "{file}:{n}: {} cells, the header has {width}; one value per column",
            c.len()
        ));
    }
    Ok(c)
}

fn number(cell: Option<&str>, file: &str, line: usize, what: &str) -> Result<f64, String> {
    let c = cell.unwrap_or("").trim();
    c.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| format!("{file}:{line}: {what} `{c}` is not a number"))
}

/// A buyer's costs: CSV with columns `date,cost,units` (any order, others ignored), one row per
/// day (`YYYY-MM-DD`) or per month (`YYYY-MM`), all rows alike. The series is the cost per unit
/// of work, cost / units.
pub fn read_costs(path: &Path) -> Result<(Frequency, Vec<Point>), String> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!("{file}: cannot read: {e}; pass --costs FILE.csv with columns date,cost,units")
    })?;
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines
        .next()
        .ok_or_else(|| format!("{file}: empty; the first line is the header date,cost,units"))?;
    let cols = columns(header);
    let hint = "the header names date,cost,units";
    let (di, ci, ui) = (
        column(&cols, "date", &file, hint)?,
        column(&cols, "cost", &file, hint)?,
        column(&cols, "units", &file, hint)?,
    );
    let mut freq = None;
    let mut out: Vec<Point> = Vec::new();
    for (i, l) in lines {
        let n = i + 1;
        let cells = cells(l, n, cols.len(), &file)?;
        let date = cells.get(di).copied().unwrap_or("");
        let f = if date.len() == 10 && sit_core::time::Date::parse(date).is_ok() {
            Frequency::Daily
        } else if date.len() == 7
            && sit_core::settlement::Period::parse_label(date)
                .is_some_and(|(c, _)| c == sit_core::settlement::Cycle::Monthly)
        {
            Frequency::Monthly
        } else {
            return Err(format!(
                "{file}:{n}: date `{date}` is neither YYYY-MM-DD (daily) nor YYYY-MM (monthly)"
            ));
        };
        if *freq.get_or_insert(f) != f {
            return Err(format!(
                "{file}:{n}: `{date}` mixes daily and monthly dates; use one form in the whole file"
            ));
        }
        let cost = number(cells.get(ci).copied(), &file, n, "cost")?;
        let units = number(cells.get(ui).copied(), &file, n, "units")?;
        if cost < 0.0 || units <= 0.0 {
            return Err(format!(
                "{file}:{n}: cost {cost} and units {units}: the cost must be >= 0 and the units > 0"
            ));
        }
        if out.iter().any(|p| p.date == date) {
            return Err(format!(
                "{file}:{n}: {date} appears twice; give one row per date"
            ));
        }
        out.push(Point {
            date: date.to_string(),
            value: cost / units,
        });
    }
    let freq = freq.ok_or_else(|| format!("{file}: no rows after the header"))?;
    out.sort_by(|a, b| a.date.cmp(&b.date));
    Ok((freq, out))
}

/// The index from a CSV with `date` and `value` columns (the history endpoint's CSV,
/// `/v1/index/{tier}.csv`, has them): rows of another tier (a `tier` column) and rows without a
/// value are skipped.
pub fn read_index_csv(path: &Path, tier: &str) -> Result<Vec<Point>, String> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{file}: cannot read: {e}"))?;
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines.next().ok_or_else(|| format!("{file}: empty"))?;
    let cols = columns(header);
    let hint = "fetch it from /v1/index/{tier}.csv";
    let (di, vi) = (
        column(&cols, "date", &file, hint)?,
        column(&cols, "value", &file, hint)?,
    );
    let ti = cols.iter().position(|c| c == "tier");
    let mut out = Vec::new();
    for (i, l) in lines {
        let cells = cells(l, i + 1, cols.len(), &file)?;
        if ti.is_some_and(|t| cells.get(t).copied() != Some(tier)) {
            continue;
        }
        let v = cells.get(vi).copied().unwrap_or("");
        if v.is_empty() {
            continue;
        }
        let date = cells.get(di).copied().unwrap_or("");
        if sit_core::time::Date::parse(date).is_err() {
            return Err(format!("{file}:{}: date `{date}` is not YYYY-MM-DD", i + 1));
        }
        if out.iter().any(|p: &Point| p.date == date) {
            return Err(format!(
                "{file}:{}: {date} appears twice for {tier}; give one value per day",
                i + 1
            ));
        }
        out.push(Point {
            date: date.to_string(),
            value: number(Some(v), &file, i + 1, "value")?,
        });
    }
    out.sort_by(|a, b| a.date.cmp(&b.date));
    Ok(out)
}

/// The index of `tier` from an archive: each day's record in force that states a value.
pub fn index_from_archive(
    archive: &crate::archive::Archive,
    tier: &str,
) -> Result<Vec<Point>, String> {
    let entries = archive
        .entries()
        .map_err(|e| format!("reading the archive {}: {e}", archive.root().display()))?;
    Ok(crate::archive::in_force(&entries)
        .into_iter()
        .filter(|((t, _), _)| t == tier)
        .filter_map(|((_, d), e)| {
            e.value.map(|v| Point {
                date: d.to_string(),
                value: v.0 as f64 / 1e9,
            })
        })
        .collect())
}

/// Daily index values as monthly means (`YYYY-MM`), for monthly costs: the month's average
/// is what a monthly contract settles on.
pub fn monthly_means(daily: &[Point]) -> Vec<Point> {
    let mut by: std::collections::BTreeMap<&str, (f64, usize)> = Default::default();
    for p in daily {
        let e = by.entry(&p.date[..7]).or_default();
        e.0 += p.value;
        e.1 += 1;
    }
    by.into_iter()
        .map(|(m, (s, n))| Point {
            date: m.to_string(),
            value: s / n as f64,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_csv_errors_name_the_line_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.csv");
        let check = |text: &str, want: &str| {
            std::fs::write(&p, text).unwrap();
            let e = read_costs(&p).unwrap_err();
            assert!(e.contains(want), "{e}");
        };
        check("day,cost,units\n", "no `date` column");
        check(
            "date,cost,units\n2026-01-01,5,0\n",
            ":2: cost 5 and units 0",
        );
        check(
            "date,cost,units\n2026-01-01,x,1\n",
            ":2: cost `x` is not a number",
        );
        check(
            "date,cost,units\n2026-01-01,1,1\n2026-02,1,1\n",
            ":3: `2026-02` mixes daily and monthly",
        );
        check(
            "date,cost,units\n2026-01-01,1,1\n2026-01-01,1,1\n",
            "appears twice",
        );
        check("date,cost,units\n01/02/2026,1,1\n", "neither YYYY-MM-DD");
        check(
            "date,cost,units\n2026-01-01,\"1,234.50\",10\n",
            ":2: quoted cells are not read",
        );
        check(
            "date,cost,units\n2026-01-01,1,234.50,10\n",
            ":2: 4 cells, the header has 3",
        );
        std::fs::write(&p, "units,date,cost,note\n2,2026-02,10,x\n4,2026-01,10,y\n").unwrap();
        let (f, pts) = read_costs(&p).unwrap();
        assert_eq!(f, Frequency::Monthly);
        assert_eq!(
            pts.iter()
                .map(|p| (p.date.as_str(), p.value))
                .collect::<Vec<_>>(),
            vec![("2026-01", 2.5), ("2026-02", 5.0)]
        );
    }

    #[test]
    fn monthly_means_average_the_days_of_each_month() {
        let d = |date: &str, value: f64| Point {
            date: date.into(),
            value,
        };
        let m = monthly_means(&[
            d("2026-01-30", 1.0),
            d("2026-01-31", 2.0),
            d("2026-02-01", 4.0),
        ]);
        assert_eq!(m, vec![d("2026-01", 1.5), d("2026-02", 4.0)]);
    }
}
