//! Every methodology and probe-suite version this build knows, by hash.
//!
//! A stored observation names the suite it was probed with (`suite_hash`); a determination
//! names its methodology and suite (`methodology_hash`, `suite_hash`). When the rules change,
//! days made under the old rules must still recompute, export and replay with *those* rules:
//! callers look versions up here by the hash a record names instead of assuming the current
//! default. The current version (the last one registered) is what new days are computed with;
//! `Methodology::default()` is the current methodology of [`Registry::embedded`].
//!
//! Hashes, not version strings, are the keys: two parameter sets that differ in any way have
//! different hashes, so a record can never be recomputed under rules it was not made with.

use crate::index::Methodology;
use crate::probes::Suite;
use std::sync::OnceLock;

/// A hash that names no version this build knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// No methodology has this hash.
    #[error("methodology {hash} is not known to this build (known: {known}); use the `sit` release that published it, or add its parameters to sit_core::versions")]
    UnknownMethodology {
        /// The hash asked for.
        hash: String,
        /// The known methodologies (version and hash prefix), comma-separated.
        known: String,
    },
    /// No probe suite has this hash.
    #[error("probe suite {hash} is not known to this build (known: {known}); use the `sit` release that probed it")]
    UnknownSuite {
        /// The hash asked for.
        hash: String,
        /// The known suites (version and hash prefix), comma-separated.
        known: String,
    },
    /// A methodology or suite registered twice (which one).
    #[error("version registered twice: {0}")]
    Duplicate(String),
    /// No methodology or no suite given.
    #[error("a registry needs at least one methodology and one suite")]
    Empty,
    /// A methodology that fails [`Methodology::validate`] (its message).
    #[error("{0}")]
    Invalid(String),
}

impl Default for Methodology {
    /// The current methodology (see [`Registry`] for every version by hash).
    fn default() -> Self {
        Registry::embedded().current_methodology().clone()
    }
}

/// The known versions; the last of each list is the current one.
#[derive(Debug, Clone)]
pub struct Registry {
    methodologies: Vec<(String, Methodology)>,
    suites: Vec<Suite>,
}

impl Registry {
    /// The versions embedded in this build: every methodology ever published, oldest first,
    /// and every probe suite (1.0.0, 1.1.0, then the current one).
    pub fn embedded() -> &'static Registry {
        static R: OnceLock<Registry> = OnceLock::new();
        R.get_or_init(|| {
            Registry::new(
                vec![
                    Methodology::v1_0_0(),
                    Methodology::v1_1_0(),
                    Methodology::v1_2_0(),
                    Methodology::v1_3_0(),
                    Methodology::v1_4_0(),
                    Methodology::v1_5_0(),
                ],
                vec![
                    Suite::v1_0_0().clone(),
                    Suite::v1_1_0().clone(),
                    Suite::embedded().clone(),
                ],
            )
            .expect("embedded versions are distinct")
        })
    }

    /// A registry of the given versions (oldest first; the last is current). Errors:
    /// [`VersionError::Empty`], [`VersionError::Duplicate`], or [`VersionError::Invalid`] for a
    /// methodology that fails [`Methodology::validate`].
    pub fn new(
        methodologies: Vec<Methodology>,
        suites: Vec<Suite>,
    ) -> Result<Registry, VersionError> {
        if methodologies.is_empty() || suites.is_empty() {
            return Err(VersionError::Empty);
        }
        let mut r = Registry {
            methodologies: Vec::new(),
            suites: Vec::new(),
        };
        for m in methodologies {
            r = r.with_methodology(m)?;
        }
        for s in suites {
            if r.suites.iter().any(|k| k.hash == s.hash) {
                return Err(VersionError::Duplicate(format!("suite {}", s.hash)));
            }
            r.suites.push(s);
        }
        Ok(r)
    }

    /// This registry with `m` added as the current methodology. Errors:
    /// [`VersionError::Invalid`] when `m` fails [`Methodology::validate`],
    /// [`VersionError::Duplicate`] when its hash is registered already.
    pub fn with_methodology(mut self, m: Methodology) -> Result<Registry, VersionError> {
        m.validate().map_err(VersionError::Invalid)?;
        let h = m.hash();
        if self.methodologies.iter().any(|(k, _)| *k == h) {
            return Err(VersionError::Duplicate(format!(
                "methodology {} ({h})",
                m.version
            )));
        }
        self.methodologies.push((h, m));
        Ok(self)
    }

    /// The methodology new days are computed with.
    pub fn current_methodology(&self) -> &Methodology {
        &self.methodologies.last().expect("never empty").1
    }

    /// The suite new probes are generated from.
    pub fn current_suite(&self) -> &Suite {
        self.suites.last().expect("never empty")
    }

    /// The methodology with this hash ([`VersionError::UnknownMethodology`] when none).
    pub fn methodology(&self, hash: &str) -> Result<&Methodology, VersionError> {
        self.methodologies
            .iter()
            .find(|(h, _)| h == hash)
            .map(|(_, m)| m)
            .ok_or_else(|| VersionError::UnknownMethodology {
                hash: hash.to_string(),
                known: self
                    .methodologies
                    .iter()
                    .map(|(h, m)| format!("{} {}", m.version, &h[..12]))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The suite with this hash ([`VersionError::UnknownSuite`] when none).
    pub fn suite(&self, hash: &str) -> Result<&Suite, VersionError> {
        self.suites
            .iter()
            .find(|s| s.hash == hash)
            .ok_or_else(|| VersionError::UnknownSuite {
                hash: hash.to_string(),
                known: self
                    .suites
                    .iter()
                    .map(|s| format!("{} {}", s.version, &s.hash[..12]))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Every probe suite, oldest first (the last is current).
    pub fn suites(&self) -> &[Suite] {
        &self.suites
    }

    /// Every methodology, oldest first, with its hash.
    pub fn methodologies(&self) -> impl Iterator<Item = (&str, &Methodology)> {
        self.methodologies.iter().map(|(h, m)| (h.as_str(), m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hash of methodology 1.0.0 as published in every 1.0.0 determination (golden
    /// bundle): changing a parameter of a published version must fail here.
    const V1_0_0_HASH: &str = "033f9c9df90298bce686670709c7fd9211d421ce6af5ae79ab9b5f96081e1cc8";

    #[test]
    fn embedded_registry_finds_versions_by_hash() {
        let r = Registry::embedded();
        let m = r.current_methodology();
        assert_eq!(r.methodology(&m.hash()).unwrap(), m);
        assert_eq!(
            r.suite(&Suite::embedded().hash).unwrap().hash,
            Suite::embedded().hash
        );
        let e = r.methodology("00").unwrap_err().to_string();
        assert!(
            e.contains("methodology 00 is not known") && e.contains("1.0.0"),
            "{e}"
        );
        assert!(r.suite("00").is_err());
    }

    #[test]
    fn methodology_1_0_0_keeps_its_published_hash() {
        assert_eq!(Methodology::v1_0_0().hash(), V1_0_0_HASH);
        assert!(Registry::embedded().methodology(V1_0_0_HASH).is_ok());
    }

    #[test]
    fn a_new_version_becomes_current_and_the_old_one_stays_reachable() {
        let old = Methodology::v1_0_0();
        let mut new = old.clone();
        new.version = "9.9.9-test".into();
        new.min_endpoints = 3;
        let r = Registry::embedded()
            .clone()
            .with_methodology(new.clone())
            .unwrap();
        assert_eq!(r.current_methodology(), &new);
        assert_eq!(r.methodology(&old.hash()).unwrap(), &old);
        assert!(matches!(
            r.clone().with_methodology(new),
            Err(VersionError::Duplicate(_))
        ));
    }

    /// `validate` refuses what the code does not implement, and every embedded version passes.
    #[test]
    fn validate_refuses_parameters_the_code_ignores() {
        for (_, m) in Registry::embedded().methodologies() {
            m.validate().unwrap();
        }
        let mut m = Methodology::v1_3_0();
        m.partition_hours = 2;
        assert!(m
            .validate()
            .unwrap_err()
            .contains("partition_hours must be 1"));
        let mut m = Methodology::v1_3_0();
        m.fallback = None;
        assert!(m
            .validate()
            .unwrap_err()
            .contains("needs its fallback stated"));
        let mut m = Methodology::v1_3_0();
        m.settlement_lag_minutes = Some(1);
        assert!(m.validate().unwrap_err().contains("settlement_lag_minutes"));
        let mut m = Methodology::v1_3_0();
        m.restatement_cutoff_hours = 25;
        assert!(m
            .validate()
            .unwrap_err()
            .contains("restatement_cutoff_hours must be at most 24"));
        let mut m = Methodology::v1_0_0();
        m.trim_fraction = crate::fixed::Fixed::parse("0.5").unwrap();
        assert!(m.validate().unwrap_err().contains("trim_fraction"));
        assert!(matches!(
            Registry::embedded().clone().with_methodology(m),
            Err(VersionError::Invalid(_))
        ));
    }
}
