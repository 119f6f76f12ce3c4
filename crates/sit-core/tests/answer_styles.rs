//! The answer-style corpus (issue 29): the styles real models answer in, run through the
//! grader of every family of every tier of the current suite, each graded as its one written
//! decision says (index-methodology.md section 3, "Answer styles"; this file's [`ROWS`] is that
//! table, and a test checks the two agree).
//!
//! For every family and several seeds (every phrasing), the expected answer is written in each
//! style ([`styles::Style::render`]) and must grade as decided; a wrong answer in every style
//! must fail; an answer giving two different candidates must fail ([`styles::hedges`]).

use sit_core::probes::styles::{self, AnswerKind, Style, STYLES};
use sit_core::probes::{Family, Generated, Suite};
use std::collections::{BTreeMap, BTreeSet};

/// Seeds per family: enough for every phrasing of every family (three each) and for the
/// numeric families to reach 1,000 (thousands separators).
const SEEDS: u64 = 48;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Accepted,
    InstructionFailure,
}
use Decision::*;

/// One row of the methodology's table: the style (or control), its decision, the exceptions
/// (for a JSON answer, for a text answer) and the decision cell as written there.
struct Row {
    id: &'static str,
    decision: Decision,
    json: Option<Decision>,
    text: Option<Decision>,
    cell: &'static str,
}

const fn row(id: &'static str, decision: Decision, cell: &'static str) -> Row {
    Row {
        id,
        decision,
        json: None,
        text: None,
        cell,
    }
}

/// The decisions, one per style, as index-methodology.md states them.
const ROWS: &[Row] = &[
    row("bare", Accepted, "accepted"),
    row("double_quotes", Accepted, "accepted"),
    row("single_quotes", Accepted, "accepted"),
    row("curly_quotes", Accepted, "accepted"),
    row("bold", Accepted, "accepted"),
    row("italic", Accepted, "accepted"),
    row("full_stop", Accepted, "accepted"),
    row("quoted_full_stop", Accepted, "accepted"),
    row("code_fence", Accepted, "accepted"),
    row("code_fence_tagged", Accepted, "accepted"),
    row("backticks", Accepted, "accepted"),
    row("the_answer_is", Accepted, "accepted"),
    row("the_answer_is_bold", Accepted, "accepted"),
    row("answer_colon", Accepted, "accepted"),
    row("bold_answer_label", Accepted, "accepted"),
    row("boxed", Accepted, "accepted"),
    row("boxed_sentence", Accepted, "accepted"),
    Row {
        json: Some(InstructionFailure),
        ..row(
            "thousands",
            Accepted,
            "accepted; inside JSON: instruction failure",
        )
    },
    Row {
        json: Some(InstructionFailure),
        ..row(
            "currency_sign",
            Accepted,
            "accepted; inside JSON: instruction failure",
        )
    },
    Row {
        json: Some(InstructionFailure),
        ..row(
            "unit_word",
            Accepted,
            "accepted; inside JSON: instruction failure",
        )
    },
    row("whitespace", Accepted, "accepted"),
    Row {
        text: Some(InstructionFailure),
        ..row(
            "preamble",
            Accepted,
            "accepted for a number or JSON; instruction failure for a text answer",
        )
    },
];

/// The controls of the table (not styles: they change the answer, not its presentation).
const CONTROLS: &[(&str, &str)] = &[
    ("wrong", "wrong, in every style"),
    ("two_candidates", "wrong"),
    (
        "lowercase",
        "accepted; `t1.uppercase`: instruction failure, in every style",
    ),
];

fn row_of(style: Style) -> &'static Row {
    ROWS.iter()
        .find(|r| r.id == style.id())
        .unwrap_or_else(|| panic!("style {} has no decision", style.id()))
}

fn decided(style: Style, kind: AnswerKind) -> Decision {
    let r = row_of(style);
    match kind {
        AnswerKind::Json => r.json.unwrap_or(r.decision),
        AnswerKind::Text => r.text.unwrap_or(r.decision),
        AnswerKind::Number => r.decision,
    }
}

/// Every (tier, family) of `suite`, with the family's instances for seeds 0..SEEDS and for
/// each a wrong answer of the same family (another seed's answer the grader refuses bare).
/// A tier's id, a family, and its instances with a wrong answer each.
type Cases = (String, Family, Vec<(Generated, String)>);

fn instances(suite: &Suite) -> Vec<Cases> {
    let mut out = Vec::new();
    for tier in &suite.tiers {
        for id in &tier.families {
            let family = Family::from_id(id).expect("a known family");
            let gen = |seed| suite.instance(tier, family, seed, 1, 4).generated;
            let cases = (0..SEEDS)
                .map(|seed| {
                    let g = gen(seed);
                    let wrong = (1..)
                        .map(|k| gen(seed + k * 1000).expected)
                        .find(|w| !g.grader.grade(w, &g.expected))
                        .expect("a wrong answer");
                    (g, wrong)
                })
                .collect();
            out.push((tier.id.clone(), family, cases));
        }
    }
    out
}

#[test]
fn every_style_is_graded_as_decided_in_every_family_of_every_tier() {
    let suite = Suite::embedded();
    let mut applied: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut failures = Vec::new();
    for (tier, family, cases) in instances(suite) {
        for (g, wrong) in &cases {
            let kind = AnswerKind::of(&g.grader);
            for style in STYLES {
                if let Some(a) = style.render(&g.expected, kind) {
                    applied.entry(style.id()).or_default().insert(family.id());
                    let got = g.grader.grade(&a, &g.expected);
                    let want = decided(*style, kind) == Accepted;
                    if got != want {
                        failures.push(format!(
                            "{tier} {} {}: {a:?} graded {got}, decided {want}",
                            family.id(),
                            style.id()
                        ));
                    }
                }
                if let Some(w) = style.render(wrong, kind) {
                    if g.grader.grade(&w, &g.expected) {
                        failures.push(format!(
                            "{tier} {} {}: the wrong answer {w:?} passes (expected {:?})",
                            family.id(),
                            style.id(),
                            g.expected
                        ));
                    }
                }
            }
            for h in styles::hedges(&g.expected, wrong) {
                if g.grader.grade(&h, &g.expected) {
                    failures.push(format!(
                        "{tier} {}: two candidates {h:?} pass (expected {:?})",
                        family.id(),
                        g.expected
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} verdicts differ from the decisions:\n{}",
        failures.len(),
        failures[..failures.len().min(40)].join("\n")
    );
    // every style was applied: the non-numeric ones to every family, the numeric ones to
    // every numeric and JSON family (thousands separators where a number reaches 1,000)
    let all: BTreeSet<&str> = suite
        .tiers
        .iter()
        .flat_map(|t| t.families.iter().map(String::as_str))
        .collect();
    for style in STYLES {
        let got = applied.get(style.id()).cloned().unwrap_or_default();
        if !style.numeric() {
            assert_eq!(got, all, "{}", style.id());
        } else {
            assert!(!got.is_empty(), "{} applied nowhere", style.id());
        }
        println!(
            "{:<20} {}",
            style.id(),
            got.into_iter().collect::<Vec<_>>().join(" ")
        );
    }
}

/// Case is the instruction of `t1.uppercase` (capitals): a lowercase answer fails there in
/// every style; elsewhere (an email address, an access code, a JSON record's name) case is
/// not asked for and a lowercase answer is accepted.
#[test]
fn case_is_graded_only_where_the_instruction_asks_for_it() {
    let suite = Suite::embedded();
    let mut checked = BTreeSet::new();
    for (_, family, cases) in instances(suite) {
        for (g, _) in &cases {
            let lower = g.expected.to_lowercase();
            if lower == g.expected {
                continue;
            }
            let kind = AnswerKind::of(&g.grader);
            checked.insert(family.id());
            for style in STYLES {
                let Some(a) = style.render(&lower, kind) else {
                    continue;
                };
                let want = family != Family::Uppercase && decided(*style, kind) == Accepted;
                assert_eq!(
                    g.grader.grade(&a, &g.expected),
                    want,
                    "{} {}: {a:?}",
                    family.id(),
                    style.id()
                );
            }
        }
    }
    assert!(
        checked.contains("t1.uppercase") && checked.len() >= 3,
        "{checked:?}"
    );
}

/// What changed from suite 1.1.0 (whose graders are 1.0.0's): per family, the styles and
/// controls whose verdicts differ on the corpus, `+` now accepted, `-` now wrong, as the
/// methodology's appendix (probe suite 1.2.0) lists them.
const CHANGED_FROM_1_1_0: &[(&str, &str)] = &[
    ("t1.arith", "currency_sign+ two_candidates-"),
    ("t1.date_format", "answer_colon+ backticks+ bold+ bold_answer_label+ boxed+ boxed_sentence+ code_fence+ code_fence_tagged+ curly_quotes+ double_quotes+ italic+ quoted_full_stop+ single_quotes+ the_answer_is+ the_answer_is_bold+"),
    ("t1.extract_email", "answer_colon+ bold_answer_label+ boxed+ boxed_sentence+ code_fence_tagged+ curly_quotes+ the_answer_is+ the_answer_is_bold+"),
    ("t1.uppercase", "answer_colon+ backticks+ bold+ bold_answer_label+ boxed+ boxed_sentence+ code_fence+ code_fence_tagged+ curly_quotes+ double_quotes+ full_stop+ italic+ quoted_full_stop+ single_quotes+ the_answer_is+ the_answer_is_bold+"),
    ("t2.code_read", "two_candidates-"),
    ("t2.json_record", "boxed+ boxed_sentence+"),
    ("t2.sort_numbers", "answer_colon+ bold_answer_label+ boxed+ boxed_sentence+ code_fence_tagged+ curly_quotes+ the_answer_is+ the_answer_is_bold+"),
    ("t2.word_problem", "two_candidates-"),
    ("t3.compound", "two_candidates-"),
    ("t3.json_order", "boxed+ boxed_sentence+"),
    ("t3.modpow", "two_candidates-"),
    ("t3.needle", "answer_colon+ bold_answer_label+ boxed+ boxed_sentence+ code_fence_tagged+ curly_quotes+ the_answer_is+ the_answer_is_bold+"),
];

#[test]
fn changes_from_suite_1_1_0_are_the_listed_ones() {
    let (old, new) = (Suite::v1_1_0(), Suite::embedded());
    let (o, n) = (instances(old), instances(new));
    let mut changed: BTreeMap<(&str, String), (usize, usize, usize)> = BTreeMap::new();
    for ((_, family, oc), (_, _, nc)) in o.iter().zip(&n) {
        for ((og, wrong), (ng, _)) in oc.iter().zip(nc) {
            assert_eq!((&og.prompt, &og.expected), (&ng.prompt, &ng.expected));
            let kind = AnswerKind::of(&ng.grader);
            let mut answers: Vec<(String, String)> = Vec::new();
            for style in STYLES {
                if let Some(a) = style.render(&ng.expected, kind) {
                    answers.push((style.id().to_string(), a));
                }
                if let Some(w) = style.render(wrong, kind) {
                    answers.push(("wrong".into(), w));
                }
            }
            for h in styles::hedges(&ng.expected, wrong) {
                answers.push(("two_candidates".into(), h));
            }
            for (what, a) in answers {
                let (was, is) = (
                    og.grader.grade(&a, &og.expected),
                    ng.grader.grade(&a, &ng.expected),
                );
                let e = changed.entry((family.id(), what)).or_default();
                e.0 += 1;
                if was != is {
                    if is {
                        e.1 += 1
                    } else {
                        e.2 += 1
                    }
                }
            }
        }
    }
    let mut got: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for ((f, s), (_, up, down)) in &changed {
        let sign = match (*up > 0, *down > 0) {
            (false, false) => continue,
            (true, false) => "+",
            (false, true) => "-",
            (true, true) => "+-",
        };
        got.entry(f).or_default().push(format!("{s}{sign}"));
    }
    let got: Vec<(&str, String)> = got.into_iter().map(|(f, v)| (f, v.join(" "))).collect();
    let want: Vec<(&str, String)> = CHANGED_FROM_1_1_0
        .iter()
        .map(|(f, s)| (*f, s.to_string()))
        .collect();
    for ((f, s), (total, up, down)) in &changed {
        if up + down > 0 {
            println!(
                "{f:<18} {s:<20} {total:>4} answers: {up:>3} now accepted, {down:>3} now wrong"
            );
        }
    }
    assert_eq!(got, want);
}

/// The methodology's table says what [`ROWS`] and [`CONTROLS`] say, one row per style.
#[test]
fn the_decisions_are_the_methodologys() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../index-methodology.md");
    let text = std::fs::read_to_string(path).unwrap();
    let start = text
        .find("### Answer styles")
        .expect("index-methodology.md has a section `### Answer styles`");
    let mut table = BTreeMap::new();
    for line in text[start..].lines().skip(1) {
        if line.starts_with("###") || line.starts_with("## ") {
            break;
        }
        let cells: Vec<&str> = line.split(" | ").map(str::trim).collect();
        if let Some(id) = cells
            .first()
            .and_then(|c| c.strip_prefix("| `"))
            .and_then(|c| c.strip_suffix('`'))
        {
            assert!(cells.len() >= 4, "{line}");
            table.insert(id.to_string(), cells[2].to_string());
        }
    }
    let mut want: BTreeMap<String, String> = ROWS
        .iter()
        .map(|r| (r.id.to_string(), r.cell.to_string()))
        .collect();
    want.extend(CONTROLS.iter().map(|(c, d)| (c.to_string(), d.to_string())));
    assert_eq!(table, want);
    for s in STYLES {
        row_of(*s);
    }
    assert_eq!(ROWS.len(), STYLES.len());
}
