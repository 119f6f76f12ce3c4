//! The archives a collector files each vantage's schedule commitments and reveals in
//! (`DATA/vantages/VANTAGE/`, laid out like the publication archive).

use super::{layout, Archive};
use std::path::Path;

/// The archive of `vantage`'s commitments and reveals under the data folder `data`.
pub fn archive(data: &Path, vantage: &str) -> Archive {
    Archive::new(layout::vantage(data, vantage))
}

/// Every vantage archive under `data`, by vantage name in order. Empty where no collector
/// filed any (a `sit run` data folder).
pub fn all(data: &Path) -> Vec<(String, Archive)> {
    let mut out: Vec<(String, Archive)> = std::fs::read_dir(layout::vantages(data))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| {
                    let v = e.file_name().to_string_lossy().into_owned();
                    let a = archive(data, &v);
                    (v, a)
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}
