//! Reading the correct answer back out of a probe prompt: what lets the simulator play a model
//! that "knows" the answer (and then chooses, with its configured quality, whether to give
//! it). Every family of both suites is understood, in every phrasing and framing.
//!
//! This is the simulator's alone: nothing on the settlement path reads answers out of
//! prompts, so it lives here and not in the kernel. The answers are computed with the
//! kernel's own helpers, the ones its generators use.

use regex::Regex;
use sit_core::probes::families::{compound_answer, json_order_answer, modpow};
use sit_core::probes::{Family, FAMILIES};

/// Solve any suite prompt: which family made it and its correct answer.
pub fn solve_any(prompt: &str) -> Option<(Family, String)> {
    FAMILIES
        .iter()
        .find_map(|f| solve(*f, prompt).map(|a| (*f, a)))
}

/// Read the correct answer back out of a prompt `family` generated, under either suite's
/// phrasing and framing; None when the prompt is not this family's.
pub fn solve(family: Family, prompt: &str) -> Option<String> {
    solve_fixed(family, prompt).or_else(|| solve_varied(family, prompt))
}

/// A solver's regex, compiled once per process (solving runs per simulated request, and
/// compiling a regex costs far more than matching it).
fn re(p: &'static str) -> Regex {
    static CACHE: std::sync::OnceLock<
        std::sync::Mutex<std::collections::BTreeMap<&'static str, Regex>>,
    > = std::sync::OnceLock::new();
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    cache
        .entry(p)
        .or_insert_with(|| Regex::new(p).expect("solver regex"))
        .clone()
}

fn join(v: &[i64], sep: &str) -> String {
    v.iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(sep)
}

/// Read the answer out of a prompt in suite 1.0.0's one phrasing, unframed.
fn solve_fixed(family: Family, prompt: &str) -> Option<String> {
    let num = |c: &regex::Captures, i: usize| c.get(i).unwrap().as_str().parse::<i64>().ok();
    match family {
        Family::Arith => {
            let c = re(r"Compute (\d+) ([+-]) (\d+)\. Reply").captures(prompt)?;
            let (a, b) = (num(&c, 1)?, num(&c, 3)?);
            Some(if &c[2] == "+" { a + b } else { a - b }.to_string())
        }
        Family::ExtractEmail => {
            if !prompt.starts_with("Extract the email address") {
                return None;
            }
            re(r"[a-z0-9.]+@[a-z0-9.]+[a-z]")
                .find(prompt)
                .map(|m| m.as_str().to_string())
        }
        Family::Uppercase => {
            let c = re(r#"Write the phrase "([a-z ]+)" in uppercase"#).captures(prompt)?;
            Some(c[1].to_uppercase())
        }
        Family::DateFormat => {
            let c =
                re(r"Rewrite the date (\d{4})-(\d{2})-(\d{2}) in the format").captures(prompt)?;
            Some(format!("{}/{}/{}", &c[3], &c[2], &c[1]))
        }
        Family::WordProblem => {
            let c = re(r"at (\d+) dollars each\. On Monday it sells (\d+) of them, and on Tuesday it sells (\d+) more")
                .captures(prompt)?;
            let (p, a, b) = (num(&c, 1)?, num(&c, 2)?, num(&c, 3)?);
            Some((p * (2 * a + b)).to_string())
        }
        Family::JsonRecord => {
            let c = re(r"describing this person: (.+) is (\d+) years old and lives in (\w+)\.")
                .captures(prompt)?;
            Some(serde_json::json!({"name": &c[1], "age": num(&c, 2)?, "city": &c[3]}).to_string())
        }
        Family::CodeRead => {
            let c = re(r"(?s)return for f\((\d+)\)\?.*total = (\d+).*total \+= i \* (\d+)")
                .captures(prompt)?;
            let (n, c0, k) = (num(&c, 1)?, num(&c, 2)?, num(&c, 3)?);
            Some((c0 + k * n * (n - 1) / 2).to_string())
        }
        Family::SortNumbers => {
            let rest = prompt.strip_prefix(
                "Sort these numbers in ascending order and reply with them separated by commas: ",
            )?;
            let mut v: Vec<i64> = rest
                .split(',')
                .filter_map(|s| s.trim().parse().ok())
                .collect();
            v.sort_unstable();
            Some(
                v.iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            )
        }
        Family::Compound => {
            let c = re(r"starts with (\d+) dollars\. It gains (\d+) percent .* loses (\d+) percent .* then (\d+) dollars are withdrawn")
                .captures(prompt)?;
            Some(compound_answer(
                num(&c, 1)?,
                num(&c, 2)?,
                num(&c, 3)?,
                num(&c, 4)?,
            ))
        }
        Family::Needle => {
            let c = re(r"What is the access code of record (\d+)\?").captures(prompt)?;
            let wanted = &c[1];
            re(r"Record (\d+): the access code is ([0-9A-F]+)\.")
                .captures_iter(prompt)
                .find(|r| &r[1] == wanted)
                .map(|r| r[2].to_string())
        }
        Family::ModPow => {
            let c = re(r"Compute \((\d+)\^(\d+)\) mod (\d+)\.").captures(prompt)?;
            Some(modpow(num(&c, 1)?, num(&c, 2)?, num(&c, 3)?).to_string())
        }
        Family::JsonOrder => {
            let c = re(r"contains (\d+) \w+ at (\d+)\.(\d\d) dollars each and (\d+) \w+ at (\d+)\.(\d\d) dollars each, with a discount of (\d+)\.(\d\d) dollars")
                .captures(prompt)?;
            let cents = |i: usize, j: usize| Some(num(&c, i)? * 100 + num(&c, j)?);
            Some(json_order_answer(
                num(&c, 1)?,
                cents(2, 3)?,
                num(&c, 4)?,
                cents(5, 6)?,
                cents(7, 8)?,
            ))
        }
    }
}

/// Read the answer out of any of suite 1.1.0's phrasings of `family`, framed or not.
fn solve_varied(family: Family, prompt: &str) -> Option<String> {
    let num = |c: &regex::Captures, i: usize| c.get(i)?.as_str().parse::<i64>().ok();
    let first = |patterns: &[&'static str]| patterns.iter().find_map(|p| re(p).captures(prompt));
    match family {
        Family::Arith => {
            let c = first(&[
                r"Compute (\d+) ([+-]) (\d+)\. Reply",
                r"What is (\d+) ([+-]) (\d+)\? Answer",
                r"Calculate (\d+) ([+-]) (\d+) and give",
            ])?;
            let (a, b) = (num(&c, 1)?, num(&c, 3)?);
            Some(if &c[2] == "+" { a + b } else { a - b }.to_string())
        }
        Family::ExtractEmail => {
            first(&[
                r"Extract the email address from the text below",
                r"Find the e-mail address in this message",
                r"Which email address appears in the note below",
            ])?;
            re(r"[a-z0-9.]+@[a-z0-9.]+[a-z]")
                .find(prompt)
                .map(|m| m.as_str().to_string())
        }
        Family::Uppercase => {
            let c = first(&[
                r#"Write the phrase "([a-z ]+)" in uppercase"#,
                r#"Convert "([a-z ]+)" to capital letters"#,
                r#"Give me "([a-z ]+)" in ALL CAPS"#,
            ])?;
            Some(c[1].to_uppercase())
        }
        Family::DateFormat => {
            let c = first(&[
                r"Rewrite the date (\d{4})-(\d{2})-(\d{2}) in the format",
                r"Express (\d{4})-(\d{2})-(\d{2}) as DD/MM/YYYY",
                r"as day/month/year, DD/MM/YYYY: (\d{4})-(\d{2})-(\d{2})\.",
            ])?;
            Some(format!("{}/{}/{}", &c[3], &c[2], &c[1]))
        }
        Family::WordProblem => {
            let c = first(&[
                r"at (\d+) dollars each\. On Monday it sells (\d+) of them, and on Tuesday it sells (\d+) more",
                r"costs (\d+) dollars\. (\d+) are sold on Monday; Tuesday's sales exceed Monday's by (\d+)\.",
                r"at (\d+) dollars apiece\. It sold (\d+) on day one and (\d+) more than that",
            ])?;
            let (p, a, b) = (num(&c, 1)?, num(&c, 2)?, num(&c, 3)?);
            Some((p * (2 * a + b)).to_string())
        }
        Family::JsonRecord => {
            let c = first(&[
                r"describing this person: (.+) is (\d+) years old and lives in (\w+)\.",
                r"output only the JSON: (.+), aged (\d+), resides in (\w+)\.",
                r"Person: (.+); (\d+) years of age; home city (\w+)\.",
            ])?;
            Some(serde_json::json!({"name": &c[1], "age": num(&c, 2)?, "city": &c[3]}).to_string())
        }
        Family::CodeRead => {
            let (n, c0, k) = if let Some(c) = first(&[
                r"(?s)return for f\((\d+)\)\?.*total = (\d+).*total \+= i \* (\d+)",
                r"(?s)value of f\((\d+)\)\?.*acc = (\d+)\n.*acc \+ j \* (\d+)",
            ]) {
                (num(&c, 1)?, num(&c, 2)?, num(&c, 3)?)
            } else {
                let c = first(&[r"(?s)s = (\d+)\n.*s \+= (\d+) \* t.*Evaluate f\((\d+)\)"])?;
                (num(&c, 3)?, num(&c, 1)?, num(&c, 2)?)
            };
            Some((c0 + k * n * (n - 1) / 2).to_string())
        }
        Family::SortNumbers => {
            let c = first(&[
                r"ascending order and reply with them separated by commas: (\d+(?:, \d+){5})",
                r"Arrange from smallest to largest, comma-separated, nothing else: (\d+(?:, \d+){5})",
                r"increasing order and list them with commas between them\. Numbers: (\d+(?:, \d+){5})",
            ])?;
            let mut v: Vec<i64> = c[1].split(", ").filter_map(|s| s.parse().ok()).collect();
            v.sort_unstable();
            Some(join(&v, ","))
        }
        Family::Compound => {
            let c = first(&[
                r"starts with (\d+) dollars\. It gains (\d+) percent .* loses (\d+) percent .* then (\d+) dollars are withdrawn",
                r"holds (\d+) dollars\. Over year one it grows by (\d+) percent; over year two it shrinks by (\d+) percent; afterwards (\d+) dollars",
                r"Start: (\d+) dollars\. Year 1: \+(\d+) percent\. Year 2: -(\d+) percent\. Then a withdrawal of (\d+) dollars",
            ])?;
            Some(compound_answer(
                num(&c, 1)?,
                num(&c, 2)?,
                num(&c, 3)?,
                num(&c, 4)?,
            ))
        }
        Family::Needle => {
            // (question, line, index of the record number in a line, of the code)
            let forms: [(&'static str, &'static str, usize, usize); 3] = [
                (
                    r"What is the access code of record (\d+)\?",
                    r"Record (\d+): the access code is ([0-9A-F]+)\.",
                    1,
                    2,
                ),
                (
                    r"Which key belongs to entry #(\d+)\?",
                    r"Entry #(\d+) -> key ([0-9A-F]+)\n",
                    1,
                    2,
                ),
                (
                    r"Give the passcode for item (\d+), and",
                    r"([0-9A-F]+) is the passcode for item (\d+)\.",
                    2,
                    1,
                ),
            ];
            forms.iter().find_map(|(q, line, k, code)| {
                let wanted = re(q).captures(prompt)?[1].to_string();
                re(line)
                    .captures_iter(prompt)
                    .find(|c| c[*k] == wanted)
                    .map(|c| c[*code].to_string())
            })
        }
        Family::ModPow => {
            let c = first(&[
                r"Compute \((\d+)\^(\d+)\) mod (\d+)\.",
                r"remainder when (\d+) raised to the power (\d+) is divided by (\d+)\?",
                r"Find (\d+)\^(\d+) modulo (\d+), answering",
            ])?;
            Some(modpow(num(&c, 1)?, num(&c, 2)?, num(&c, 3)?).to_string())
        }
        Family::JsonOrder => {
            let c = first(&[
                r"contains (\d+) \w+ at (\d+)\.(\d\d) dollars each and (\d+) \w+ at (\d+)\.(\d\d) dollars each, with a discount of (\d+)\.(\d\d) dollars",
                r"Order: (\d+) \w+ priced (\d+)\.(\d\d) dollars each, (\d+) \w+ priced (\d+)\.(\d\d) dollars each, less a (\d+)\.(\d\d) dollar discount",
                r"purchase: (\d+) \w+ at (\d+)\.(\d\d) dollars apiece plus (\d+) \w+ at (\d+)\.(\d\d) dollars apiece, minus (\d+)\.(\d\d) dollars off",
            ])?;
            let cents = |i: usize, j: usize| Some(num(&c, i)? * 100 + num(&c, j)?);
            Some(json_order_answer(
                num(&c, 1)?,
                cents(2, 3)?,
                num(&c, 4)?,
                cents(5, 6)?,
                cents(7, 8)?,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sit_core::probes::varied;

    #[test]
    fn solver_agrees_with_generator_and_grader() {
        for f in FAMILIES {
            for seed in 0..200u64 {
                let g = f.generate(seed);
                let solved = solve(*f, &g.prompt)
                    .unwrap_or_else(|| panic!("{} cannot solve seed {seed}", f.id()));
                assert!(
                    g.grader.grade(&solved, &g.expected),
                    "{} seed {seed}: {solved:?} vs {:?}",
                    f.id(),
                    g.expected
                );
                assert!(
                    !g.grader.grade("I don't know", &g.expected),
                    "{} accepts a non-answer",
                    f.id()
                );
            }
        }
    }

    #[test]
    fn solvers_only_claim_their_own_prompts() {
        for f in FAMILIES {
            let g = f.generate(7);
            for other in FAMILIES.iter().filter(|o| *o != f) {
                assert_eq!(
                    solve(*other, &g.prompt),
                    None,
                    "{} claims a {} prompt",
                    other.id(),
                    f.id()
                );
            }
        }
    }

    #[test]
    fn golden_instance_solves_to_its_expected_answer() {
        let g = Family::Arith.generate(1);
        assert_eq!(g.expected, solve(Family::Arith, &g.prompt).unwrap());
        assert_eq!(solve_any(&g.prompt), Some((Family::Arith, g.expected)));
    }

    #[test]
    fn every_phrasing_solves_grades_and_is_claimed_by_its_family_only() {
        for f in FAMILIES {
            for seed in 0..300u64 {
                let g = varied::generate(*f, seed);
                let framed =
                    varied::framing(*f, seed, &g.prompt, "0123456789abcdef", seed as u32 % 2);
                let solved = solve_varied(*f, &framed.user).unwrap_or_else(|| {
                    panic!("{} cannot solve seed {seed}: {}", f.id(), framed.user)
                });
                assert!(
                    g.grader.grade(&solved, &g.expected),
                    "{} seed {seed}",
                    f.id()
                );
                for other in FAMILIES.iter().filter(|o| *o != f) {
                    assert_eq!(
                        solve_varied(*other, &framed.user),
                        None,
                        "{} claims {}",
                        other.id(),
                        f.id()
                    );
                    assert_eq!(
                        solve(*other, &framed.user),
                        None,
                        "{} claims {}",
                        other.id(),
                        f.id()
                    );
                }
            }
        }
    }
}
