//! The probe suite: capability tiers, their probe families, and the suite hash.
//!
//! The suite is defined by `probes/suite.toml` (embedded in the binary) plus the generators in
//! [`families`] (suite 1.0.0's phrasing) and [`varied`] (suite 1.1.0's phrasings and request
//! framings), graded by [`grader`] (from suite 1.2.0 through the answer-style decisions of
//! [`styles`]). Its hash covers them all: the file's bytes and, for every family, its id,
//! version and the instances it generates for seeds 0..8 (for 1.1.0 also the reference
//! tokenizer's fingerprint and the varied instances and framings; for 1.2.0 also the verdicts
//! of its graders on the answer-style corpus). So a change to a template, a generator or a
//! grader changes the hash, and every observation and determination says which suite made it.
//!
//! Reading answers back out of prompts (what the simulator does to play a model that knows
//! them) is not here: it is the simulator's (`src/sim/solve.rs` in the `sit` crate).

pub mod families;
pub mod grader;
pub mod styles;
pub mod varied;

use crate::fixed::Fixed;
pub use families::{Family, Generated, FAMILIES};
pub use grader::Grader;
use serde::{Deserialize, Serialize};

/// The embedded suite definition (the current suite).
pub const SUITE_TOML: &str = include_str!("../../../../probes/suite.toml");

/// Suite 1.0.0, byte for byte as it was published (its hash covers these bytes).
pub const SUITE_1_0_0_TOML: &str = include_str!("../../../../probes/suite-1.0.0.toml");

/// Suite 1.1.0, byte for byte as it was published (its hash covers these bytes).
pub const SUITE_1_1_0_TOML: &str = include_str!("../../../../probes/suite-1.1.0.toml");

/// How a suite words its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeText {
    /// Suite 1.0.0: one phrasing per family, one system line carrying the nonce.
    #[default]
    Fixed,
    /// Suite 1.1.0: phrasings and framing drawn per probe ([`varied`]).
    Varied,
}

/// How a suite's graders treat an answer's presentation (quotes, bold, a code fence, "The
/// answer is", `\boxed{}`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerStyles {
    /// Suites 1.0.0 and 1.1.0: each family's grader reads the answer as it comes (some strip
    /// quotes and a final full stop, `t1.uppercase` compares exactly).
    #[default]
    AsGraded,
    /// Suite 1.2.0: the written answer-style decisions, the same for every family
    /// ([`styles`], [`Grader::Tolerant`]).
    Tolerant,
}

/// One capability tier.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// The tier's id (`t1`, `t2`, `t3`).
    pub id: String,
    /// Its name, for people.
    pub name: String,
    /// What it measures, for people.
    pub description: String,
    /// The pass rate an endpoint needs, as a [`Fixed`] fraction (0.8 = 80%).
    pub pass_threshold: Fixed,
    /// The output budget in the SIT size formula (`w_out * budget_out`), tokens.
    pub budget_out: u32,
    /// The `max_tokens` sent with each request.
    pub max_tokens: u32,
    /// SLA: time to first answer token, milliseconds.
    pub sla_ttft_ms: u64,
    /// SLA: end-to-end time, milliseconds.
    pub sla_e2e_ms: u64,
    /// The tier's probe family ids (at least four).
    pub families: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteFile {
    suite_version: String,
    #[serde(default)]
    probe_text: ProbeText,
    #[serde(default)]
    answer_styles: AnswerStyles,
    tiers: Vec<Tier>,
}

/// The loaded, checked suite with its hash.
#[derive(Debug, Clone)]
pub struct Suite {
    /// The suite's version (`suite_version`).
    pub version: String,
    /// How it words its requests.
    pub probe_text: ProbeText,
    /// How its graders treat an answer's presentation.
    pub answer_styles: AnswerStyles,
    /// Its tiers, in file order.
    pub tiers: Vec<Tier>,
    /// Lowercase hex blake3.
    pub hash: String,
    /// The TOML text the suite was parsed from (exported into audit bundles).
    pub source: String,
}

/// Why a suite definition is refused ([`Suite::parse`]).
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    /// Not valid TOML of the suite's form (the parser's message).
    #[error("probes/suite.toml: {0}")]
    Parse(String),
    /// A tier names a family this build does not have.
    #[error(
        "probes/suite.toml: tier `{tier}` names unknown family `{family}`; known families: {known}"
    )]
    UnknownFamily {
        /// The tier's id.
        tier: String,
        /// The family named.
        family: String,
        /// Every known family id, comma-separated.
        known: String,
    },
    /// A tier with fewer than 4 families (the tier's id).
    #[error("probes/suite.toml: tier `{0}` needs at least 4 families")]
    TooFewFamilies(String),
    /// Two tiers with one id (the id).
    #[error("probes/suite.toml: duplicate tier `{0}`")]
    DuplicateTier(String),
}

/// A probe instance ready to send: generated prompt plus its SIT size.
#[derive(Debug, Clone)]
pub struct ProbeInstance {
    /// The probe's family.
    pub family: Family,
    /// The probe's seed.
    pub seed: u64,
    /// Its prompt, expected answer and grader.
    pub generated: Generated,
    /// Reference-tokenizer tokens of the prompt (the user message, without the nonce).
    pub ref_prompt_tokens: u64,
    /// `w_in * ref_prompt_tokens + w_out * budget_out`.
    pub sit_size: u64,
}

impl Suite {
    /// The suite embedded in this binary.
    pub fn embedded() -> &'static Suite {
        static S: std::sync::OnceLock<Suite> = std::sync::OnceLock::new();
        S.get_or_init(|| {
            Suite::parse(SUITE_TOML).expect("embedded probes/suite.toml is valid (tested)")
        })
    }

    /// Suite 1.0.0 (kept so that its observations and days replay).
    pub fn v1_0_0() -> &'static Suite {
        static S: std::sync::OnceLock<Suite> = std::sync::OnceLock::new();
        S.get_or_init(|| {
            Suite::parse(SUITE_1_0_0_TOML).expect("embedded probes/suite-1.0.0.toml is valid")
        })
    }

    /// Suite 1.1.0 (kept so that its observations and days replay).
    pub fn v1_1_0() -> &'static Suite {
        static S: std::sync::OnceLock<Suite> = std::sync::OnceLock::new();
        S.get_or_init(|| {
            Suite::parse(SUITE_1_1_0_TOML).expect("embedded probes/suite-1.1.0.toml is valid")
        })
    }

    /// Parse and check a suite definition (TOML) and compute its hash: over the text, every
    /// family's generated instances for seeds 0..8, and for a varied suite the reference
    /// tokenizer's fingerprint and the varied instances and framings. Errors: the
    /// [`SuiteError`] found first.
    pub fn parse(text: &str) -> Result<Suite, SuiteError> {
        let f: SuiteFile = toml::from_str(text).map_err(|e| SuiteError::Parse(e.to_string()))?;
        let known = FAMILIES
            .iter()
            .map(|f| f.id())
            .collect::<Vec<_>>()
            .join(", ");
        let mut seen = std::collections::BTreeSet::new();
        for t in &f.tiers {
            if !seen.insert(t.id.clone()) {
                return Err(SuiteError::DuplicateTier(t.id.clone()));
            }
            if t.families.len() < 4 {
                return Err(SuiteError::TooFewFamilies(t.id.clone()));
            }
            for fam in &t.families {
                if Family::from_id(fam).is_none() {
                    return Err(SuiteError::UnknownFamily {
                        tier: t.id.clone(),
                        family: fam.clone(),
                        known,
                    });
                }
            }
        }
        let mut h = blake3::Hasher::new();
        h.update(b"sit-suite-v1\n");
        h.update(text.as_bytes());
        for fam in FAMILIES {
            h.update(format!("\nfamily {} v{}\n", fam.id(), fam.version()).as_bytes());
            for seed in 0..8u64 {
                let g = fam.generate(seed);
                let grader = serde_json::to_string(&g.grader).expect("grader serialises");
                for part in [g.prompt.as_str(), g.expected.as_str(), grader.as_str()] {
                    h.update(&(part.len() as u64).to_le_bytes());
                    h.update(part.as_bytes());
                }
            }
        }
        if f.probe_text == ProbeText::Varied {
            // What 1.1.0 adds: the reference tokenizer (every SIT size depends on its
            // vocabulary) and the phrasings and framings the suite generates.
            h.update(b"\ntokenizer ");
            h.update(crate::tokenizer::fingerprint().as_bytes());
            for fam in FAMILIES {
                h.update(format!("\nvaried {} v2\n", fam.id()).as_bytes());
                for seed in 0..8u64 {
                    let g = varied::generate(*fam, seed);
                    let r = varied::framing(*fam, seed, &g.prompt, "0123456789abcdef", 0);
                    let grader = serde_json::to_string(&g.grader).expect("grader serialises");
                    let system = r.system.unwrap_or_default();
                    for part in [
                        g.prompt.as_str(),
                        g.expected.as_str(),
                        grader.as_str(),
                        system.as_str(),
                        r.user.as_str(),
                    ] {
                        h.update(&(part.len() as u64).to_le_bytes());
                        h.update(part.as_bytes());
                    }
                }
            }
        }
        if f.answer_styles == AnswerStyles::Tolerant {
            // What 1.2.0 adds: every family's grader read through the answer-style decisions,
            // and their verdicts on the answer-style corpus (right and wrong answers in every
            // style, hedges), so a change of the reading is a new suite.
            h.update(b"\nanswer styles tolerant v1\n");
            for fam in FAMILIES {
                for seed in 0..8u64 {
                    let g = generate(f.probe_text, f.answer_styles, *fam, seed);
                    let wrong = generate(f.probe_text, f.answer_styles, *fam, seed + 8).expected;
                    let kind = styles::AnswerKind::of(&g.grader);
                    let mut parts =
                        vec![serde_json::to_string(&g.grader).expect("grader serialises")];
                    let mut answers = Vec::new();
                    for style in styles::STYLES {
                        answers.extend(style.render(&g.expected, kind));
                        answers.extend(style.render(&wrong, kind));
                    }
                    answers.extend(styles::hedges(&g.expected, &wrong));
                    for a in answers {
                        let verdict = g.grader.grade(&a, &g.expected);
                        parts.push(format!("{}{a}", if verdict { '+' } else { '-' }));
                    }
                    for part in parts {
                        h.update(&(part.len() as u64).to_le_bytes());
                        h.update(part.as_bytes());
                    }
                }
            }
        }
        Ok(Suite {
            version: f.suite_version,
            probe_text: f.probe_text,
            answer_styles: f.answer_styles,
            tiers: f.tiers,
            hash: h.finalize().to_hex().to_string(),
            source: text.to_string(),
        })
    }

    /// The tier with this id.
    pub fn tier(&self, id: &str) -> Option<&Tier> {
        self.tiers.iter().find(|t| t.id == id)
    }

    /// The tiers' ids, in order.
    pub fn tier_ids(&self) -> Vec<String> {
        self.tiers.iter().map(|t| t.id.clone()).collect()
    }

    /// Build the instance for (family, seed) in `tier`, sized with the reference tokenizer.
    pub fn instance(
        &self,
        tier: &Tier,
        family: Family,
        seed: u64,
        w_in: u64,
        w_out: u64,
    ) -> ProbeInstance {
        let generated = generate(self.probe_text, self.answer_styles, family, seed);
        let ref_prompt_tokens = crate::tokenizer::count(&generated.prompt);
        ProbeInstance {
            family,
            seed,
            sit_size: w_in * ref_prompt_tokens + w_out * tier.budget_out as u64,
            ref_prompt_tokens,
            generated,
        }
    }
}

/// The instance of (family, seed) a suite with these parameters generates: its phrasing, and
/// its grader read through the answer-style decisions when the suite has them.
fn generate(text: ProbeText, answer_styles: AnswerStyles, family: Family, seed: u64) -> Generated {
    let mut g = match text {
        ProbeText::Fixed => family.generate(seed),
        ProbeText::Varied => varied::generate(family, seed),
    };
    if answer_styles == AnswerStyles::Tolerant {
        g.grader = Grader::Tolerant {
            of: Box::new(g.grader),
        };
    }
    g
}

impl Suite {
    /// The generator version an observation of `family` under this suite records.
    pub fn family_version(&self, family: Family) -> u32 {
        match self.probe_text {
            ProbeText::Fixed => family.version(),
            ProbeText::Varied => 2,
        }
    }

    /// The texts of the request probing `inst` with `nonce` (try `retry`): what the worker
    /// sends and what a replay checks the recorded request against.
    pub fn request(&self, inst: &ProbeInstance, nonce: &str, retry: u32) -> varied::RequestText {
        match self.probe_text {
            ProbeText::Fixed => varied::fixed_framing(&inst.generated.prompt, nonce, retry),
            ProbeText::Varied => {
                varied::framing(inst.family, inst.seed, &inst.generated.prompt, nonce, retry)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_suite_is_valid_with_three_tiers_of_four_families() {
        let s = Suite::embedded();
        assert_eq!(s.tier_ids(), vec!["t1", "t2", "t3"]);
        for t in &s.tiers {
            assert!(t.families.len() >= 4);
            assert!(t.pass_threshold > Fixed::ZERO && t.pass_threshold.0 <= crate::fixed::ONE);
        }
        assert_eq!(s.hash.len(), 64);
    }

    /// Suite 1.0.0 keeps the hash its observations and the golden bundle name, and 1.1.0's
    /// hash covers the reference tokenizer (issue 12, "hashes that can drift").
    #[test]
    fn suite_hashes_are_pinned_and_cover_the_tokenizer() {
        assert_eq!(
            Suite::v1_0_0().hash,
            "2bf33f9980714a24f135e95d3436bfd95601659a7463e5ebcf05191ac0926764"
        );
        assert_eq!(Suite::v1_0_0().probe_text, ProbeText::Fixed);
        assert_eq!(Suite::v1_0_0().answer_styles, AnswerStyles::AsGraded);
        // suite 1.1.0 keeps the hash its observations name (issue 29 made 1.2.0 current)
        let v11 = Suite::v1_1_0();
        assert_eq!(
            v11.hash,
            "2ddfc6c39b2008400528285e53f6d7df8b69997c8b22ef71f917fd77e6e9f711"
        );
        assert_eq!(
            (v11.version.as_str(), v11.probe_text, v11.answer_styles),
            ("1.1.0", ProbeText::Varied, AnswerStyles::AsGraded)
        );
        let s = Suite::embedded();
        assert_eq!(
            (s.version.as_str(), s.probe_text, s.answer_styles),
            ("1.2.0", ProbeText::Varied, AnswerStyles::Tolerant)
        );
        assert_eq!(
            s.hash,
            "84e6393523b8b651f97fe23f844f712360e9fe5d3faca60789b53c25125ab632"
        );
    }

    /// Suite 1.2.0 grades through the answer-style decisions; 1.0.0 and 1.1.0 grade as they
    /// did (their graders are the families' own), so their observations re-grade the same.
    #[test]
    fn only_a_tolerant_suite_reads_answer_styles() {
        let tier = Suite::embedded().tier("t1").unwrap().clone();
        for (suite, tolerant) in [
            (Suite::v1_0_0(), false),
            (Suite::v1_1_0(), false),
            (Suite::embedded(), true),
        ] {
            for seed in 0..20 {
                let g = suite
                    .instance(&tier, Family::Uppercase, seed, 1, 4)
                    .generated;
                assert_eq!(
                    matches!(g.grader, Grader::Tolerant { .. }),
                    tolerant,
                    "{}",
                    suite.version
                );
                assert_eq!(
                    g.grader.grade(&format!("**{}**", g.expected), &g.expected),
                    tolerant
                );
                assert!(!g.grader.grade(&g.expected.to_lowercase(), &g.expected));
            }
        }
    }

    #[test]
    fn suite_hash_changes_with_any_parameter() {
        let a = Suite::parse(SUITE_TOML).unwrap();
        let b = Suite::parse(&SUITE_TOML.replace("budget_out = 16", "budget_out = 17")).unwrap();
        assert_ne!(a.hash, b.hash);
        assert_eq!(a.hash, Suite::parse(SUITE_TOML).unwrap().hash);
    }

    #[test]
    fn unknown_family_is_named() {
        let bad = SUITE_TOML.replace("\"t1.uppercase\"", "\"t1.nope\"");
        let e = Suite::parse(&bad).unwrap_err().to_string();
        assert!(e.contains("t1.nope") && e.contains("t1.arith"), "{e}");
    }
}
