//! Answer styles (suite 1.2.0, issue 29): how real models present an answer, and how a suite
//! with `answer_styles = "tolerant"` reads the answer out of its presentation.
//!
//! Models wrap an answer in quotes, bold or a code fence, end it with a full stop, lead with
//! "The answer is" or "Answer:", put it in `\boxed{}`, write thousands separators and units.
//! The decisions (index-methodology.md section 3, "Answer styles", one per style, the same for
//! every family) are: presentation is removed before the family's grader compares; what the
//! instruction asks for (capitals, a date's form, JSON) is still graded; an answer that states
//! two different answers is wrong. Suites 1.0.0 and 1.1.0 grade as they always did
//! ([`super::AnswerStyles::AsGraded`]).
//!
//! [`stated_answers`] and [`stated_number`] are the reading (used by
//! [`Grader::Tolerant`](super::Grader::Tolerant)); [`Style`] and [`hedges`] render the corpus
//! of styles, which the answer-style test grades in every family and suite 1.2.0's hash covers
//! (the verdicts on it), so a change of the reading is a new suite.

use super::grader::{parse_number, Grader};
use crate::fixed::Fixed;
use regex::Regex;
use std::sync::OnceLock;

/// Wrappers removed when they open and close an answer (longest first).
const PAIRS: &[(&str, &str)] = &[
    ("**", "**"),
    ("__", "__"),
    ("*", "*"),
    ("_", "_"),
    ("`", "`"),
    ("\"", "\""),
    ("'", "'"),
    ("\u{201c}", "\u{201d}"),
    ("\u{2018}", "\u{2019}"),
];

/// A number as answers write it: optional sign and currency sign (`-$12`, `$-12`), digits
/// with comma thousands separators, optional decimals.
const NUMBER: &str =
    r"[-\x{2212}]?[$\x{20ac}\x{a3}]?[-\x{2212}]?\d[\d,]*(?:\.\d+)?|[-\x{2212}]?\.\d+";

fn number_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(NUMBER).expect("number pattern"))
}

/// Two numbers joined by "or" (`12 or 13`, `$12, or maybe $13`).
fn or_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(&format!(
            r"(?i)({NUMBER})[^\w\n]*?\bor\b(?:\s+(?:maybe|perhaps|possibly)\b)?[^\w\n]*?({NUMBER})"
        ))
        .expect("or pattern")
    })
}

/// Where an answer says which part is its answer: "the answer is", "final answer:" anywhere;
/// "Answer:" (optionally bold, after a heading mark) at the start of a line.
fn marker_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"(?im)(?:\b(?:the\s+)?(?:final\s+)?answer(?:\*\*|__)?\s+is\b(?:[ \t]*:)?|\bfinal\s+answer(?:\*\*|__)?[ \t]*:|^[ \t]*(?:[#>*_]+[ \t]*)?answer(?:\*\*|__)?[ \t]*:)(?:\*\*|__)?",
        )
        .expect("marker pattern")
    })
}

/// The body of a code fence that is the whole of `t` (its language tag, if any, dropped).
fn fenced(t: &str) -> Option<&str> {
    let inner = t.strip_prefix("```")?.strip_suffix("```")?;
    match inner.split_once('\n') {
        Some((tag, body))
            if !body.trim().is_empty()
                && tag
                    .trim()
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_+-.#".contains(c)) =>
        {
            Some(body)
        }
        _ => Some(inner),
    }
}

/// `s` without its presentation: surrounding whitespace, a code fence around the whole (with
/// or without a language tag), wrappers that open and close it (`**`, `__`, `*`, `_`, a
/// backtick, straight or curly quotes) and one final full stop, removed again and again (so
/// `"**X**".` is `X`). What is inside is left as it is: case, inner spaces, the answer's form.
pub fn strip_presentation(s: &str) -> &str {
    let mut t = s.trim();
    loop {
        let before = t.len();
        if let Some(inner) = fenced(t) {
            t = inner.trim();
        }
        if let Some((open, close)) = PAIRS
            .iter()
            .find(|(o, c)| t.len() >= o.len() + c.len() && t.starts_with(o) && t.ends_with(c))
        {
            t = t[open.len()..t.len() - close.len()].trim();
        }
        if let Some(x) = t.strip_suffix('.') {
            if !x.ends_with('.') {
                t = x.trim_end();
            }
        }
        if t.len() == before {
            return t;
        }
    }
}

/// The contents of every `\boxed{...}` in `s` (braces balanced), in order.
fn boxed(s: &str) -> Vec<&str> {
    const OPEN: &str = "\\boxed{";
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = s[from..].find(OPEN) {
        let start = from + i + OPEN.len();
        let mut depth = 1;
        let mut end = None;
        for (j, c) in s[start..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(start + j);
                        break;
                    }
                }
                _ => {}
            }
        }
        let Some(e) = end else { break };
        out.push(&s[start..e]);
        from = e + 1;
    }
    out
}

/// The answers `answer` states, each without its presentation ([`strip_presentation`]): the
/// contents of every `\boxed{}` if it has any; else, if it marks its answer ("The answer is",
/// "Answer:", "Final answer:"), what follows each mark to the end of its line (or, when the
/// line is empty there, up to the next mark); else the whole answer. Never empty.
pub fn stated_answers(answer: &str) -> Vec<&str> {
    let b = boxed(answer);
    if !b.is_empty() {
        return b.into_iter().map(strip_presentation).collect();
    }
    let marks: Vec<regex::Match> = marker_re().find_iter(answer).collect();
    if marks.is_empty() {
        return vec![strip_presentation(answer)];
    }
    marks
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let end = marks.get(i + 1).map_or(answer.len(), |n| n.start());
            let rest = &answer[m.end()..end];
            let line = &rest[..rest.find('\n').unwrap_or(rest.len())];
            strip_presentation(if line.trim().is_empty() { rest } else { line })
        })
        .collect()
}

fn parse(n: &str) -> Option<Fixed> {
    let clean: String = n
        .trim_end_matches(',')
        .chars()
        .filter(|c| !matches!(c, '$' | '\u{20ac}' | '\u{a3}'))
        .map(|c| if c == '\u{2212}' { '-' } else { c })
        .collect();
    parse_number(&clean)
}

/// The number a stated answer gives: its last number (a currency sign and comma thousands
/// separators read), or `None` when it has none or hedges between different numbers: it is
/// nothing but numbers (with punctuation, "or", "and") and they differ (`12 or 13`, `12\n13`),
/// or its last line joins two different numbers with "or".
pub fn stated_number(stated: &str) -> Option<Fixed> {
    let values: Vec<Fixed> = number_re()
        .find_iter(stated)
        .filter_map(|m| parse(m.as_str()))
        .collect();
    let last = *values.last()?;
    if values.iter().any(|v| *v != last) {
        let rest = number_re().replace_all(stated, " ").to_lowercase();
        let bare = rest
            .split(|c: char| !c.is_alphanumeric())
            .all(|w| w.is_empty() || w == "or" || w == "and")
            && rest
                .chars()
                .all(|c| c.is_alphanumeric() || c.is_whitespace() || ",;/|().".contains(c));
        let last_line = stated.lines().rev().find(|l| !l.trim().is_empty());
        let or_joined = last_line.is_some_and(|l| {
            or_re()
                .captures_iter(l)
                .any(|c| parse(&c[1]).is_some() && parse(&c[1]) != parse(&c[2]))
        });
        if bare || or_joined {
            return None;
        }
    }
    Some(last)
}

/// What a family's expected answer is, for the styles that apply to numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerKind {
    /// Text compared as text (exact, normalised or by pattern).
    Text,
    /// A number (graded by its value).
    Number,
    /// A JSON object (its fields graded).
    Json,
}

impl AnswerKind {
    /// The kind of answer `grader` grades.
    pub fn of(grader: &Grader) -> AnswerKind {
        match grader {
            Grader::FinalNumber { .. } => AnswerKind::Number,
            Grader::JsonFields { .. } => AnswerKind::Json,
            Grader::Tolerant { of } => AnswerKind::of(of),
            _ => AnswerKind::Text,
        }
    }
}

/// One answer style of the corpus (index-methodology.md section 3, "Answer styles").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Style {
    /// `X`
    Bare,
    /// `"X"`
    DoubleQuotes,
    /// `'X'`
    SingleQuotes,
    /// `“X”`
    CurlyQuotes,
    /// `**X**`
    Bold,
    /// `*X*`
    Italic,
    /// `X.`
    FullStop,
    /// `"X".`
    QuotedFullStop,
    /// a code fence without a language tag
    CodeFence,
    /// a code fence with a language tag (`text`; `json` for a JSON answer)
    CodeFenceTagged,
    /// `` `X` ``
    Backticks,
    /// `The answer is X.`
    TheAnswerIs,
    /// `The answer is **X**.`
    TheAnswerIsBold,
    /// `Answer: X`
    AnswerColon,
    /// `**Answer:** X`
    BoldAnswerLabel,
    /// `\boxed{X}`
    Boxed,
    /// `The final answer is $\boxed{X}$.`
    BoxedSentence,
    /// `1,234` (numbers of 1,000 or more)
    Thousands,
    /// `$1234` (`-$12` for a negative number)
    CurrencySign,
    /// `1234 dollars`
    UnitWord,
    /// `\n  X  \n\n`
    Whitespace,
    /// `Sure! Here it is:\n\nX` (prose around the answer, no mark saying which part it is)
    Preamble,
}

/// Every style, in table order.
pub const STYLES: &[Style] = &[
    Style::Bare,
    Style::DoubleQuotes,
    Style::SingleQuotes,
    Style::CurlyQuotes,
    Style::Bold,
    Style::Italic,
    Style::FullStop,
    Style::QuotedFullStop,
    Style::CodeFence,
    Style::CodeFenceTagged,
    Style::Backticks,
    Style::TheAnswerIs,
    Style::TheAnswerIsBold,
    Style::AnswerColon,
    Style::BoldAnswerLabel,
    Style::Boxed,
    Style::BoxedSentence,
    Style::Thousands,
    Style::CurrencySign,
    Style::UnitWord,
    Style::Whitespace,
    Style::Preamble,
];

/// `n` (a decimal as text) with comma thousands separators.
fn with_thousands(n: &str) -> String {
    let (sign, digits) = n.strip_prefix('-').map_or(("", n), |d| ("-", d));
    let (int, frac) = digits
        .split_once('.')
        .map_or((digits, None), |(i, f)| (i, Some(f)));
    let mut out = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    match frac {
        Some(f) => format!("{sign}{out}.{f}"),
        None => format!("{sign}{out}"),
    }
}

impl Style {
    /// The style's id (its row in the methodology's table).
    pub fn id(self) -> &'static str {
        match self {
            Style::Bare => "bare",
            Style::DoubleQuotes => "double_quotes",
            Style::SingleQuotes => "single_quotes",
            Style::CurlyQuotes => "curly_quotes",
            Style::Bold => "bold",
            Style::Italic => "italic",
            Style::FullStop => "full_stop",
            Style::QuotedFullStop => "quoted_full_stop",
            Style::CodeFence => "code_fence",
            Style::CodeFenceTagged => "code_fence_tagged",
            Style::Backticks => "backticks",
            Style::TheAnswerIs => "the_answer_is",
            Style::TheAnswerIsBold => "the_answer_is_bold",
            Style::AnswerColon => "answer_colon",
            Style::BoldAnswerLabel => "bold_answer_label",
            Style::Boxed => "boxed",
            Style::BoxedSentence => "boxed_sentence",
            Style::Thousands => "thousands",
            Style::CurrencySign => "currency_sign",
            Style::UnitWord => "unit_word",
            Style::Whitespace => "whitespace",
            Style::Preamble => "preamble",
        }
    }

    /// Whether the style is about how a number is written (it applies to numeric answers and
    /// to the numbers inside a JSON answer).
    pub fn numeric(self) -> bool {
        matches!(
            self,
            Style::Thousands | Style::CurrencySign | Style::UnitWord
        )
    }

    /// How a number `n` is written in this (numeric) style; `None` where it does not apply
    /// (thousands separators to a number below 1,000).
    fn number(self, n: &str) -> Option<String> {
        match self {
            Style::Thousands => {
                let t = with_thousands(n);
                (t != n).then_some(t)
            }
            Style::CurrencySign => Some(match n.strip_prefix('-') {
                Some(abs) => format!("-${abs}"),
                None => format!("${n}"),
            }),
            Style::UnitWord => Some(format!("{n} dollars")),
            _ => Some(n.to_string()),
        }
    }

    /// `x` (an answer of `kind`) written in this style; `None` where the style does not apply:
    /// a numeric style to a text answer, thousands separators where no number reaches 1,000.
    /// In a JSON answer the numeric styles write the object's numbers so.
    pub fn render(self, x: &str, kind: AnswerKind) -> Option<String> {
        if self.numeric() {
            return match kind {
                AnswerKind::Text => None,
                AnswerKind::Number => self.number(x),
                AnswerKind::Json => {
                    let v: serde_json::Map<String, serde_json::Value> =
                        serde_json::from_str(x).ok()?;
                    let mut changed = false;
                    let fields = v
                        .iter()
                        .map(|(k, v)| {
                            let key = serde_json::to_string(k).expect("a key serialises");
                            let val = match v {
                                serde_json::Value::Number(n) => {
                                    let s = n.to_string();
                                    let r = self.number(&s).unwrap_or(s.clone());
                                    changed |= r != s;
                                    r
                                }
                                other => other.to_string(),
                            };
                            format!("{key}:{val}")
                        })
                        .collect::<Vec<_>>();
                    changed.then(|| format!("{{{}}}", fields.join(",")))
                }
            };
        }
        let tag = if kind == AnswerKind::Json {
            "json"
        } else {
            "text"
        };
        Some(match self {
            Style::Bare => x.to_string(),
            Style::DoubleQuotes => format!("\"{x}\""),
            Style::SingleQuotes => format!("'{x}'"),
            Style::CurlyQuotes => format!("\u{201c}{x}\u{201d}"),
            Style::Bold => format!("**{x}**"),
            Style::Italic => format!("*{x}*"),
            Style::FullStop => format!("{x}."),
            Style::QuotedFullStop => format!("\"{x}\"."),
            Style::CodeFence => format!("```\n{x}\n```"),
            Style::CodeFenceTagged => format!("```{tag}\n{x}\n```"),
            Style::Backticks => format!("`{x}`"),
            Style::TheAnswerIs => format!("The answer is {x}."),
            Style::TheAnswerIsBold => format!("The answer is **{x}**."),
            Style::AnswerColon => format!("Answer: {x}"),
            Style::BoldAnswerLabel => format!("**Answer:** {x}"),
            Style::Boxed => format!("\\boxed{{{x}}}"),
            Style::BoxedSentence => format!("The final answer is $\\boxed{{{x}}}$."),
            Style::Whitespace => format!("\n  {x}  \n\n"),
            Style::Preamble => format!("Sure! Here it is:\n\n{x}"),
            Style::Thousands | Style::CurrencySign | Style::UnitWord => unreachable!("numeric"),
        })
    }
}

/// Answers that give two different candidates, `x` and `y`, in either order: joined by "or",
/// on two lines, in two "The answer is" sentences, two `Answer:` lines, two boxes. Each must
/// be graded wrong when `x != y`, whichever of them is right.
pub fn hedges(x: &str, y: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (a, b) in [(x, y), (y, x)] {
        out.push(format!("{a} or {b}"));
        out.push(format!("{a}\n{b}"));
        out.push(format!("The answer is {a}. The answer is {b}."));
        out.push(format!("Answer: {a}\nAnswer: {b}"));
        out.push(format!("\\boxed{{{a}}} or \\boxed{{{b}}}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presentation_is_removed_and_the_content_kept() {
        for (a, want) in [
            ("  \"**BANANA RIVER**\".\n", "BANANA RIVER"),
            ("```text\nBANANA RIVER\n```", "BANANA RIVER"),
            ("```\n07/03/2024\n```", "07/03/2024"),
            ("\u{201c}banana river\u{201d}", "banana river"),
            ("`a.b@c.com`.", "a.b@c.com"),
            ("wait...", "wait..."),
            ("```BANANA RIVER```", "BANANA RIVER"),
        ] {
            assert_eq!(strip_presentation(a), want, "{a:?}");
        }
    }

    #[test]
    fn stated_answers_are_found_by_box_then_mark_then_whole() {
        assert_eq!(stated_answers("so $\\boxed{{\"a\":1}}$"), vec!["{\"a\":1}"]);
        assert_eq!(
            stated_answers("Working...\n**Final answer:** `X`\n"),
            vec!["X"]
        );
        assert_eq!(stated_answers("The answer is:\n```\nX\n```"), vec!["X"]);
        assert_eq!(
            stated_answers("To find the answer: add"),
            vec!["To find the answer: add"]
        );
        assert_eq!(stated_answers("Answer: A\nAnswer: B"), vec!["A", "B"]);
        assert_eq!(stated_answers("The answer is **X**."), vec!["X"]);
        assert_eq!(stated_answers("**The answer is:** X"), vec!["X"]);
    }

    #[test]
    fn stated_numbers_read_signs_and_separators_and_refuse_hedges() {
        let n = stated_number;
        let f = |s: &str| Fixed::parse(s).ok();
        assert_eq!(n("-$1,234.50"), f("-1234.5"));
        assert_eq!(n("$-12"), f("-12"));
        assert_eq!(n("347 + 589 = 936"), f("936"));
        assert_eq!(n("936 or 936"), f("936"));
        assert_eq!(n("935 or 936"), None);
        assert_eq!(n("935\n936"), None);
        assert_eq!(n("It is 935, or maybe 936"), None);
        assert_eq!(n("no number"), None);
    }
}
