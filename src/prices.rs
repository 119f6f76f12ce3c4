//! List prices against a public catalogue: `sit prices diff` and `sit prices import`.
//!
//! `providers.toml`'s prices were typed in by hand; nothing said when they went stale. The
//! `genai-prices` package (PyPI, maintained by Pydantic) keeps dated list prices per provider and
//! model; `scripts/export-genai-prices.py` exports the models `providers.toml` names to JSON
//! (`prices/genai-prices.json`, with the package version and export time). Here an endpoint is
//! matched to a catalogue model by its provider id and model name, and the price in force now is
//! compared exactly (decimal strings parsed to the same fixed point), field by field.

use crate::config::{Config, Endpoint};
use serde::Deserialize;
use sit_core::fixed::Rate;

/// The exported catalogue.
#[derive(Debug, Clone, Deserialize)]
pub struct Catalogue {
    pub source: String,
    pub exported_at: String,
    pub providers: Vec<CatProvider>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CatProvider {
    pub id: String,
    pub models: Vec<CatModel>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CatModel {
    pub id: String,
    /// Every model name the catalogue matches to this model.
    pub names: Vec<String>,
    /// Oldest first; the first may have no start.
    pub prices: Vec<CatPrice>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CatPrice {
    pub effective_from: Option<String>,
    pub input: Option<String>,
    pub output: Option<String>,
    pub cached_input: Option<String>,
}

/// A catalogue price in the oracle's units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub model: String,
    pub since: Option<String>,
    pub input: Rate,
    pub output: Rate,
    /// The catalogue's cache-read price, or the input price where it lists none.
    pub cached_input: Rate,
}

/// How an endpoint's configured price compares with the catalogue's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Comparison {
    NotListed,
    NotConfigured,
    Same(Listed),
    /// The catalogue's price and the fields that differ (`input 0.15 -> 0.20`, ...).
    Differs(Listed, Vec<String>),
}

impl Catalogue {
    pub fn load(path: &std::path::Path) -> Result<Catalogue, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            format!(
                "{}: not a price catalogue export ({e}); make one with scripts/export-genai-prices.py",
                path.display()
            )
        })
    }

    /// The catalogue's price for `e` in force at `at` (RFC 3339 UTC), if it lists the model.
    pub fn listed(&self, e: &Endpoint, at: &str) -> Result<Option<Listed>, String> {
        let name = e.model.trim_start_matches("accounts/fireworks/models/");
        let Some(m) = self
            .providers
            .iter()
            .filter(|p| p.id == e.provider)
            .flat_map(|p| &p.models)
            .find(|m| m.names.iter().any(|n| n == name))
        else {
            return Ok(None);
        };
        // RFC 3339 UTC strings of one shape order as their instants.
        let Some(p) = m
            .prices
            .iter()
            .rev()
            .find(|p| p.effective_from.as_deref().is_none_or(|f| f <= at))
        else {
            return Ok(None);
        };
        let rate = |what: &str, v: &Option<String>| -> Result<Option<Rate>, String> {
            v.as_deref()
                .map(|s| {
                    Rate::parse(s).map_err(|err| format!("catalogue {} {what} `{s}`: {err}", m.id))
                })
                .transpose()
        };
        let (Some(input), Some(output)) = (rate("input", &p.input)?, rate("output", &p.output)?)
        else {
            return Ok(None);
        };
        Ok(Some(Listed {
            model: m.id.clone(),
            since: p.effective_from.clone(),
            input,
            output,
            cached_input: rate("cached_input", &p.cached_input)?.unwrap_or(input),
        }))
    }

    /// Compare every endpoint's price in force at `now_ms` with the catalogue's.
    pub fn compare(&self, c: &Config, now_ms: i64) -> Result<Vec<(Endpoint, Comparison)>, String> {
        let at = sit_core::time::format_utc_ms(now_ms);
        c.endpoints
            .iter()
            .map(|e| {
                let cmp = match (self.listed(e, &at)?, e.prices.in_force(now_ms)) {
                    (None, _) => Comparison::NotListed,
                    (Some(_), None) => Comparison::NotConfigured,
                    (Some(l), Some(p)) => {
                        let mut d = Vec::new();
                        for (what, mine, theirs) in [
                            ("input", p.input, l.input),
                            ("output", p.output, l.output),
                            ("cached_input", p.cached_input, l.cached_input),
                        ] {
                            if mine != theirs {
                                d.push(format!(
                                    "{what} {} -> {}",
                                    mine.round_dp(6),
                                    theirs.round_dp(6)
                                ));
                            }
                        }
                        if d.is_empty() {
                            Comparison::Same(l)
                        } else {
                            Comparison::Differs(l, d)
                        }
                    }
                };
                Ok((e.clone(), cmp))
            })
            .collect()
    }
}

/// A `[[endpoints.prices]]` entry taking the catalogue's price from `effective_from`.
pub fn proposal(e: &Endpoint, l: &Listed, effective_from: &str, source: &str) -> String {
    let trim = |r: Rate| {
        let s = r.to_canonical();
        let s = s.trim_end_matches('0');
        s.trim_end_matches('.').to_string()
    };
    format!(
        "# under [[endpoints]] id = \"{}\" (catalogue model {})\n[[endpoints.prices]]\neffective_from = \"{effective_from}\"\ninput = \"{}\"\noutput = \"{}\"\ncached_input = \"{}\"\nsource = \"{source}\"\n",
        e.id,
        l.model,
        trim(l.input),
        trim(l.output),
        trim(l.cached_input),
    )
}
