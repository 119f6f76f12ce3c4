//! Deterministic graders. No LLM judge anywhere: each grader is a pure function of the answer
//! text and the expected value, so an auditor re-grades a stored answer and gets the same verdict.
//! Numbers are compared as exact decimals (never floats).

use crate::fixed::{parse_scaled, Fixed};
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// How an answer is checked against the expected value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Grader {
    /// The answer, trimmed of surrounding whitespace, equals the expected text.
    Exact,
    /// Equal after [`normalise`]: lowercase, no whitespace, no surrounding quotes, backticks
    /// or final full stop.
    NormalisedExact,
    /// The last number in the answer is within `tolerance` of the expected number.
    FinalNumber {
        /// The largest accepted difference.
        tolerance: Fixed,
    },
    /// The answer holds a JSON object whose listed fields match the expected object: strings
    /// after [`normalise`], numbers within `tolerance`.
    JsonFields {
        /// The fields compared (all must match).
        fields: Vec<String>,
        /// The largest accepted difference of a number.
        tolerance: Fixed,
    },
    /// The answer matches this regular expression (anchor it to match the whole answer); an
    /// invalid pattern grades every answer wrong.
    Regex {
        /// The regular expression (Rust `regex` syntax).
        pattern: String,
    },
    /// Suite 1.2.0's answer-style decisions around the family's grader `of`
    /// ([`super::styles`]): the answers the answer states are read out of its presentation
    /// ([`super::styles::stated_answers`]) and every one must pass `of`, so two different
    /// ones fail; a number is the last of its stated answer, and a hedge between two numbers
    /// fails ([`super::styles::stated_number`]).
    Tolerant {
        /// The family's grader, applied to each stated answer.
        of: Box<Grader>,
    },
}

/// Lowercase, drop whitespace, strip wrapping quotes/backticks/asterisks and a final full stop.
pub fn normalise(s: &str) -> String {
    let mut t = s.trim();
    loop {
        let before = t.len();
        t = t
            .trim_matches(|c: char| matches!(c, '"' | '\'' | '`' | '*'))
            .trim();
        t = t.strip_suffix('.').unwrap_or(t).trim();
        if t.len() == before {
            break;
        }
    }
    t.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(|c| c.to_lowercase())
        .collect()
}

fn number_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+").unwrap())
}

/// Parse a decimal allowing thousands separators; more than 9 places are rounded half to even
/// (answers are free text; the tolerance decides).
pub(crate) fn parse_number(s: &str) -> Option<Fixed> {
    let clean: String = s.chars().filter(|c| *c != ',').collect();
    let (int, frac) = match clean.split_once('.') {
        Some((i, f)) => (i.to_string(), f.to_string()),
        None => (clean.clone(), String::new()),
    };
    if frac.len() <= 9 {
        return parse_scaled(&clean, 9).ok().map(Fixed);
    }
    // round to 9 places, half to even, on the digit string
    let extra = frac.len() - 9;
    let whole = parse_scaled(&format!("{int}{frac}"), 0).ok()?;
    Some(Fixed(crate::fixed::div_round_half_even(
        whole,
        10i128.pow(extra as u32),
    )))
}

/// The last number appearing in `s`.
pub(crate) fn final_number(s: &str) -> Option<Fixed> {
    number_re()
        .find_iter(s)
        .last()
        .and_then(|m| parse_number(m.as_str().trim_end_matches(',')))
}

/// Find the JSON object in an answer: the text between the first `{` and the last `}`
/// (so code fences and a leading sentence do not matter).
fn json_object(s: &str) -> Option<BTreeMap<String, Box<serde_json::value::RawValue>>> {
    let a = s.find('{')?;
    let b = s.rfind('}')?;
    if b < a {
        return None;
    }
    serde_json::from_str(&s[a..=b]).ok()
}

fn field_matches(
    got: &serde_json::value::RawValue,
    want: &serde_json::value::RawValue,
    tol: Fixed,
) -> bool {
    let (g, w) = (got.get().trim(), want.get().trim());
    if w.starts_with('"') {
        match (
            serde_json::from_str::<String>(g),
            serde_json::from_str::<String>(w),
        ) {
            (Ok(g), Ok(w)) => normalise(&g) == normalise(&w),
            _ => false,
        }
    } else {
        // numbers compared as exact decimals from their JSON text; a quoted number is accepted
        let g = serde_json::from_str::<String>(g).unwrap_or_else(|_| g.to_string());
        match (parse_number(&g), parse_number(w)) {
            (Some(g), Some(w)) => (g.0 - w.0).abs() <= tol.0,
            _ => false,
        }
    }
}

impl Grader {
    /// Grade `answer` against `expected`. Total: never panics, whatever the answer holds.
    pub fn grade(&self, answer: &str, expected: &str) -> bool {
        match self {
            Grader::Exact => answer.trim() == expected.trim(),
            Grader::NormalisedExact => normalise(answer) == normalise(expected),
            Grader::FinalNumber { tolerance } => {
                match (final_number(answer), parse_number(expected)) {
                    (Some(g), Some(w)) => (g.0 - w.0).abs() <= tolerance.0,
                    _ => false,
                }
            }
            Grader::JsonFields { fields, tolerance } => {
                let (Some(got), Some(want)) = (json_object(answer), json_object(expected)) else {
                    return false;
                };
                fields.iter().all(|f| match (got.get(f), want.get(f)) {
                    (Some(g), Some(w)) => field_matches(g, w, *tolerance),
                    _ => false,
                })
            }
            Grader::Regex { pattern } => compiled(pattern)
                .map(|re| re.is_match(answer))
                .unwrap_or(false),
            Grader::Tolerant { of } => {
                super::styles::stated_answers(answer)
                    .into_iter()
                    .all(|stated| match of.as_ref() {
                        Grader::FinalNumber { tolerance } => {
                            match (super::styles::stated_number(stated), parse_number(expected)) {
                                (Some(g), Some(w)) => (g.0 - w.0).abs() <= tolerance.0,
                                _ => false,
                            }
                        }
                        Grader::Tolerant { .. } => false,
                        other => other.grade(stated, expected),
                    })
            }
        }
    }
}

/// A grading regex, compiled once per process (a suite has a handful; graders run per attempt
/// and per re-derivation). An invalid pattern stays `None`: it grades every answer wrong.
fn compiled(pattern: &str) -> Option<Regex> {
    static CACHE: std::sync::OnceLock<
        std::sync::Mutex<std::collections::BTreeMap<String, Option<Regex>>>,
    > = std::sync::OnceLock::new();
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(r) = cache.get(pattern) {
        return r.clone();
    }
    let r = Regex::new(pattern).ok();
    cache.insert(pattern.to_string(), r.clone());
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graders_golden() {
        let fnum = Grader::FinalNumber {
            tolerance: Fixed::parse("0.01").unwrap(),
        };
        assert!(fnum.grade("The answer is 1,234.50.", "1234.5"));
        assert!(fnum.grade("first 3 then 12.005", "12.0"));
        assert!(!fnum.grade("12.02", "12.0"));
        assert!(!fnum.grade("no digits", "1"));
        assert!(fnum.grade("-5", "-5"));
        assert!(Grader::NormalisedExact.grade("  \"Bob@Example.com\". ", "bob@example.com"));
        assert!(Grader::NormalisedExact.grade("5, 12, 34", "5,12,34"));
        assert!(!Grader::Exact.grade("APPLE", "apple"));
        assert!(Grader::Exact.grade(" APPLE\n", "APPLE"));
        let j = Grader::JsonFields {
            fields: vec!["name".into(), "age".into()],
            tolerance: Fixed::ZERO,
        };
        assert!(j.grade(
            "```json\n{\"name\": \"Maria\", \"age\": 41, \"x\": 1}\n```",
            r#"{"name":"maria","age":41}"#
        ));
        assert!(j.grade(
            r#"{"name": "Maria", "age": "41"}"#,
            r#"{"name":"maria","age":41}"#
        ));
        assert!(!j.grade(
            r#"{"name": "Maria", "age": 42}"#,
            r#"{"name":"maria","age":41}"#
        ));
        assert!(!j.grade(r#"{"name": "Maria"}"#, r#"{"name":"maria","age":41}"#));
        assert!(!j.grade("not json {", r#"{"name":"maria","age":41}"#));
        let r = Grader::Regex {
            pattern: r"^\s*07/03/2024\s*\.?\s*$".into(),
        };
        assert!(r.grade(" 07/03/2024.", ""));
        assert!(!r.grade("7/3/2024", ""));
    }

    /// Suite 1.2.0's grader around a family's: presentation removed, case kept, every stated
    /// answer must pass, a hedge between numbers fails; it serialises (into the suite hash)
    /// around the family's grader.
    #[test]
    fn tolerant_reads_presentation_and_keeps_the_instruction() {
        let up = Grader::Tolerant {
            of: Box::new(Grader::Exact),
        };
        assert_eq!(
            serde_json::to_string(&up).unwrap(),
            r#"{"kind":"tolerant","of":{"kind":"exact"}}"#
        );
        for a in [
            "\"APPLE PIE\".",
            "**APPLE PIE**",
            "```text\nAPPLE PIE\n```",
            "The answer is **APPLE PIE**.",
            "$\\boxed{APPLE PIE}$",
        ] {
            assert!(up.grade(a, "APPLE PIE"), "{a}");
            assert!(!Grader::Exact.grade(a, "APPLE PIE"), "{a}");
        }
        for a in [
            "**apple pie**",
            "Apple Pie",
            "APPLE PIE or APPLE PIES",
            "Answer: APPLE PIES\nAnswer: APPLE PIE",
        ] {
            assert!(!up.grade(a, "APPLE PIE"), "{a}");
        }
        let n = Grader::Tolerant {
            of: Box::new(Grader::FinalNumber {
                tolerance: Fixed::ZERO,
            }),
        };
        assert!(n.grade("347 + 589 = 936", "936"));
        assert!(n.grade("The answer is **$1,234**.", "1234"));
        assert!(n.grade("-$12", "-12"));
        assert!(!n.grade("935 or 936", "936"));
        assert!(!n.grade("\\boxed{935} \\boxed{936}", "936"));
        // inside JSON a thousands separator or a currency sign is not a JSON number
        let j = Grader::Tolerant {
            of: Box::new(Grader::JsonFields {
                fields: vec!["units".into(), "total".into()],
                tolerance: Fixed::parse("0.01").unwrap(),
            }),
        };
        let want = r#"{"units":12,"total":1234.50}"#;
        assert!(j.grade(&format!("The answer is \\boxed{{{want}}}."), want));
        assert!(!j.grade(r#"{"units":12,"total":1,234.50}"#, want));
        assert!(!j.grade(r#"{"units":12,"total":$1234.50}"#, want));
        // the family's grader alone reads the last number
        assert!(Grader::FinalNumber {
            tolerance: Fixed::ZERO
        }
        .grade("935 or 936", "936"));
    }

    #[test]
    fn parse_number_rounds_long_fractions_half_even() {
        assert_eq!(parse_number("0.1234567895").unwrap(), Fixed(123_456_790));
        assert_eq!(parse_number("0.1234567885").unwrap(), Fixed(123_456_788));
        assert_eq!(
            parse_number("1,000").unwrap(),
            Fixed(1000 * crate::fixed::ONE)
        );
    }
}
