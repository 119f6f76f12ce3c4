//! Probes that look like traffic (suite 1.1.0, issue 12).
//!
//! Under suite 1.0.0 every request carried the same system line and one public template per
//! family, so a provider could recognise probes by their text and route them to a better
//! model or a fast lane. Here each family has three phrasings of its instruction *and* of
//! its data (the needle's record lines, the code's variable names), and the request framing
//! is drawn per probe: a system message in one of several wordings or none, the nonce in the
//! system message, before the prompt or after it, with different words around it.
//!
//! Both are drawn from the probe's seed (its own stream, so the family's data and the
//! phrasing are independent): the probes of one (family, seed) in an hour are the same
//! request at every endpoint but for the nonce (paired probes, index-methodology.md section 3), and an auditor derives
//! the exact request from the observation alone.
//!
//! The measure (tested on generated instances): across a day's requests of a tier, no run of
//! 30 characters of message text occurs in more than 25% of the requests.

use super::families::{compound_answer, json_order_answer, modpow, money, Family, Generated};
use super::families::{CITIES, DOMAINS, FIRST, ITEMS, LAST, WEEKDAYS, WORDS};
use super::grader::Grader;
use crate::fixed::Fixed;
use crate::rng::Rng;

/// Phrasings per family.
pub const PHRASINGS: u64 = 3;

/// The texts of one request: the system message (`None`: the request has none) and the user
/// message, plus the text besides the probe's prompt (the framing, counted in the reference
/// input tokens beside the prompt's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestText {
    /// The system message (`None`: none is sent).
    pub system: Option<String>,
    /// The user message: the prompt with any framing around it.
    pub user: String,
    /// Every text of the request besides the prompt, concatenated.
    pub framing: String,
}

/// The nonce as sent: a retry is a distinct request (its own cache-buster), same probe.
pub(crate) fn nonce_text(nonce: &str, retry: u32) -> String {
    if retry == 0 {
        nonce.to_string()
    } else {
        format!("{nonce}-r{retry}")
    }
}

/// Suite 1.0.0's framing: one system line carrying the nonce, the prompt as the user message.
pub fn fixed_framing(prompt: &str, nonce: &str, retry: u32) -> RequestText {
    let system = format!(
        "Request {}. Answer the user's request exactly as instructed.",
        nonce_text(nonce, retry)
    );
    RequestText {
        framing: system.clone(),
        system: Some(system),
        user: prompt.to_string(),
    }
}

/// Suite 1.1.0's framing of `prompt`, drawn from (family, seed).
pub fn framing(family: Family, seed: u64, prompt: &str, nonce: &str, retry: u32) -> RequestText {
    let mut r = Rng::from_bytes(&[b"sit-framing", family.id().as_bytes(), &seed.to_le_bytes()]);
    let n = nonce_text(nonce, retry);
    let sys = |s: String| (Some(s), String::new(), String::new());
    let (system, before, after) = match r.range(0, 7) {
        0 => sys(format!(
            "Request {n}. Answer the user's request exactly as instructed."
        )),
        1 => sys(format!("You are a helpful assistant. (session {n})")),
        2 => sys(format!(
            "Conversation {n}: follow the user's instructions precisely and keep answers short."
        )),
        3 => sys(format!("ref={n}")),
        4 => (None, format!("[{n}] "), String::new()),
        5 => (None, String::new(), format!("\n\n(ticket {n})")),
        6 => (None, format!("Ticket {n}.\n"), String::new()),
        _ => (
            Some("Be concise.".to_string()),
            String::new(),
            format!(" [{n}]"),
        ),
    };
    let framing = [system.as_deref().unwrap_or(""), &before, &after].concat();
    RequestText {
        user: format!("{before}{prompt}{after}"),
        system,
        framing,
    }
}

/// The instance of `family` for `seed` under suite 1.1.0: its own data stream, one of
/// [`PHRASINGS`] phrasings.
pub fn generate(family: Family, seed: u64) -> Generated {
    let mut r = Rng::from_bytes(&[b"sit-varied", family.id().as_bytes(), &seed.to_le_bytes()]);
    let v = r.range(0, PHRASINGS as i64 - 1);
    let exact0 = Grader::FinalNumber {
        tolerance: Fixed::ZERO,
    };
    let g = |prompt: String, expected: String, grader: Grader| Generated {
        prompt,
        expected,
        grader,
    };
    match family {
        Family::Arith => {
            let a = r.range(100, 999);
            let b = r.range(100, 999);
            let (op, x) = if r.range(0, 1) == 0 {
                ('+', a + b)
            } else {
                ('-', a - b)
            };
            let p = match v {
                0 => format!("Compute {a} {op} {b}. Reply with the number only."),
                1 => format!("What is {a} {op} {b}? Answer with just the result."),
                _ => format!("Calculate {a} {op} {b} and give only the number, nothing else."),
            };
            g(p, x.to_string(), exact0)
        }
        Family::ExtractEmail => {
            let (f, l, d) = (r.pick(FIRST), r.pick(LAST), r.pick(DOMAINS));
            let n = r.range(1, 99);
            let email = format!("{}.{}{}@{}", f.to_lowercase(), l.to_lowercase(), n, d);
            let day = r.pick(WEEKDAYS);
            let p = match v {
                0 => format!("Extract the email address from the text below and reply with the address only.\nText: \"Hi team, please send the signed forms to {f} {l} at {email} before {day}. Thanks!\""),
                1 => format!("Find the e-mail address in this message and return it alone.\nMessage: \"{f} {l} here - reach me at {email} until {day}, cheers.\""),
                _ => format!("Which email address appears in the note below? Output only that address.\nNote: \"Reminder from {f} {l}: questions go to {email}; office closed {day}.\""),
            };
            g(p, email, Grader::NormalisedExact)
        }
        Family::Uppercase => {
            let (a, b) = (r.pick(WORDS), r.pick(WORDS));
            let p = match v {
                0 => format!("Write the phrase \"{a} {b}\" in uppercase letters. Reply with the phrase only."),
                1 => format!("Convert \"{a} {b}\" to capital letters and output nothing but the result."),
                _ => format!("Give me \"{a} {b}\" in ALL CAPS, with no other text."),
            };
            g(
                p,
                format!("{} {}", a.to_uppercase(), b.to_uppercase()),
                Grader::Exact,
            )
        }
        Family::DateFormat => {
            let (y, m, d) = (r.range(1990, 2035), r.range(1, 12), r.range(1, 28));
            let expected = format!("{d:02}/{m:02}/{y}");
            let p = match v {
                0 => format!("Rewrite the date {y}-{m:02}-{d:02} in the format DD/MM/YYYY. Reply with the date only."),
                1 => format!("Express {y}-{m:02}-{d:02} as DD/MM/YYYY (day, month, year); answer with the date alone."),
                _ => format!("Reformat this ISO date as day/month/year, DD/MM/YYYY: {y}-{m:02}-{d:02}. Only the date, please."),
            };
            let pattern = format!(r"^\s*{}\s*\.?\s*$", regex::escape(&expected));
            g(p, expected, Grader::Regex { pattern })
        }
        Family::WordProblem => {
            let item = r.pick(ITEMS);
            let (p, a, b) = (r.range(2, 19), r.range(12, 80), r.range(3, 30));
            let text = match v {
                0 => format!("A shop sells {item} at {p} dollars each. On Monday it sells {a} of them, and on Tuesday it sells {b} more than on Monday. What is the total revenue in dollars over the two days? Reply with the final number."),
                1 => format!("Each of the {item} in a shop costs {p} dollars. {a} are sold on Monday; Tuesday's sales exceed Monday's by {b}. Give the revenue in dollars for both days together, as a final number."),
                _ => format!("A market stall prices {item} at {p} dollars apiece. It sold {a} on day one and {b} more than that on day two. How many dollars did it take in total over those two days? End with the number."),
            };
            g(text, (p * (a + a + b)).to_string(), exact0)
        }
        Family::JsonRecord => {
            let name = format!("{} {}", r.pick(FIRST), r.pick(LAST));
            let age = r.range(18, 90);
            let city = r.pick(CITIES);
            let p = match v {
                0 => format!("Return only a JSON object with the keys \"name\" (string), \"age\" (integer) and \"city\" (string) describing this person: {name} is {age} years old and lives in {city}."),
                1 => format!("Describe this person as a JSON object with exactly the keys \"name\", \"age\" and \"city\" (age as an integer), and output only the JSON: {name}, aged {age}, resides in {city}."),
                _ => format!("Output JSON only. Fields: \"name\" (text), \"age\" (whole number), \"city\" (text). Person: {name}; {age} years of age; home city {city}."),
            };
            g(
                p,
                serde_json::json!({"name": name, "age": age, "city": city}).to_string(),
                Grader::JsonFields {
                    fields: vec!["name".into(), "age".into(), "city".into()],
                    tolerance: Fixed::ZERO,
                },
            )
        }
        Family::CodeRead => {
            let (n, c, k) = (r.range(4, 12), r.range(1, 20), r.range(2, 9));
            let p = match v {
                0 => format!("What does this Python function return for f({n})?\n```python\ndef f(n):\n    total = {c}\n    for i in range(n):\n        total += i * {k}\n    return total\n```\nReply with the number only."),
                1 => format!("Given the Python code below, what is the value of f({n})? Answer with the number only.\n```python\ndef f(n):\n    acc = {c}\n    for j in range(n):\n        acc = acc + j * {k}\n    return acc\n```"),
                _ => format!("```python\ndef f(x):\n    s = {c}\n    for t in range(x):\n        s += {k} * t\n    return s\n```\nEvaluate f({n}) and reply with just the integer."),
            };
            g(p, (c + k * n * (n - 1) / 2).to_string(), exact0)
        }
        Family::SortNumbers => {
            let mut nums: Vec<i64> = Vec::new();
            while nums.len() < 6 {
                let x = r.range(1, 999);
                if !nums.contains(&x) {
                    nums.push(x);
                }
            }
            let shown = join(&nums, ", ");
            nums.sort_unstable();
            let p = match v {
                0 => format!("Sort these numbers in ascending order and reply with them separated by commas: {shown}"),
                1 => format!("Arrange from smallest to largest, comma-separated, nothing else: {shown}"),
                _ => format!("Put the following numbers in increasing order and list them with commas between them. Numbers: {shown}"),
            };
            g(p, join(&nums, ","), Grader::NormalisedExact)
        }
        Family::Compound => {
            let (p, gain, l, w) = (
                r.range(10, 99) * 100,
                r.range(2, 30),
                r.range(1, 20),
                r.range(1, 50) * 10,
            );
            let text = match v {
                0 => format!("A fund starts with {p} dollars. It gains {gain} percent in the first year, loses {l} percent in the second year, and then {w} dollars are withdrawn. How many dollars remain? Give the answer rounded to 2 decimal places."),
                1 => format!("An account holds {p} dollars. Over year one it grows by {gain} percent; over year two it shrinks by {l} percent; afterwards {w} dollars are taken out. What is the balance in dollars, to 2 decimal places?"),
                _ => format!("Start: {p} dollars. Year 1: +{gain} percent. Year 2: -{l} percent. Then a withdrawal of {w} dollars. Report the remaining dollars rounded to two decimals."),
            };
            g(
                text,
                compound_answer(p, gain, l, w),
                Grader::FinalNumber {
                    tolerance: Fixed::parse("0.01").expect("a decimal"),
                },
            )
        }
        Family::Needle => {
            let n = 120;
            let target = r.range(1, n);
            let mut lines = String::new();
            let mut code_of_target = String::new();
            for k in 1..=n {
                let code = r.hex(3).to_uppercase();
                if k == target {
                    code_of_target = code.clone();
                }
                lines.push_str(&match v {
                    0 => format!("Record {k}: the access code is {code}.\n"),
                    1 => format!("Entry #{k} -> key {code}\n"),
                    _ => format!("{code} is the passcode for item {k}.\n"),
                });
            }
            let p = match v {
                0 => format!("Below is a list of records.\n{lines}\nWhat is the access code of record {target}? Reply with the code only."),
                1 => format!("Here is a table of entries.\n{lines}\nWhich key belongs to entry #{target}? Answer with the key alone."),
                _ => format!("Passcodes follow, one per line.\n{lines}\nGive the passcode for item {target}, and nothing else."),
            };
            g(p, code_of_target, Grader::NormalisedExact)
        }
        Family::ModPow => {
            let (a, b, m) = (r.range(2, 99), r.range(5, 40), r.range(7, 997));
            let p = match v {
                0 => format!("Compute ({a}^{b}) mod {m}. Reply with the number only."),
                1 => format!("What is the remainder when {a} raised to the power {b} is divided by {m}? Give just the number."),
                _ => format!("Find {a}^{b} modulo {m}, answering with only the integer."),
            };
            g(p, modpow(a, b, m).to_string(), exact0)
        }
        Family::JsonOrder => {
            let i1 = r.pick(ITEMS);
            let mut i2 = r.pick(ITEMS);
            if i2 == i1 {
                i2 =
                    &ITEMS[(ITEMS.iter().position(|x| x == i1).expect("listed") + 1) % ITEMS.len()];
            }
            let (n1, n2) = (r.range(2, 20), r.range(2, 20));
            let (p1, p2) = (r.range(150, 2500), r.range(150, 2500));
            let d = r.range(1, 10) * 100;
            let (m1, m2, md) = (money(p1 as i128), money(p2 as i128), money(d as i128));
            let p = match v {
                0 => format!("An order contains {n1} {i1} at {m1} dollars each and {n2} {i2} at {m2} dollars each, with a discount of {md} dollars on the whole order. Return only a JSON object with the keys \"units\" (total number of units, integer) and \"total\" (amount due in dollars, number)."),
                1 => format!("Order: {n1} {i1} priced {m1} dollars each, {n2} {i2} priced {m2} dollars each, less a {md} dollar discount on the total. Reply with a JSON object only, keys \"units\" (integer count of items) and \"total\" (dollars owed, a number)."),
                _ => format!("Return only JSON with \"units\" and \"total\" for this purchase: {n1} {i1} at {m1} dollars apiece plus {n2} {i2} at {m2} dollars apiece, minus {md} dollars off the whole. units is the item count; total is what is due in dollars."),
            };
            g(
                p,
                json_order_answer(n1, p1, n2, p2, d),
                Grader::JsonFields {
                    fields: vec!["units".into(), "total".into()],
                    tolerance: Fixed::parse("0.01").expect("a decimal"),
                },
            )
        }
    }
}

fn join(v: &[i64], sep: &str) -> String {
    v.iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(sep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::FAMILIES;

    #[test]
    fn every_family_has_all_its_phrasings_and_refuses_a_non_answer() {
        for f in FAMILIES {
            let mut seen = std::collections::BTreeSet::new();
            for seed in 0..300u64 {
                let g = generate(*f, seed);
                assert!(
                    g.grader.grade(&g.expected, &g.expected),
                    "{} seed {seed}",
                    f.id()
                );
                assert!(!g.grader.grade("I don't know", &g.expected));
                seen.insert(g.prompt.chars().take(12).collect::<String>());
            }
            assert!(seen.len() >= PHRASINGS as usize, "{}: {seen:?}", f.id());
        }
    }

    #[test]
    fn framing_is_drawn_from_the_seed_and_carries_the_nonce_once() {
        let mut kinds = std::collections::BTreeSet::new();
        for seed in 0..200u64 {
            let a = framing(Family::Arith, seed, "P", "00ff00ff00ff00ff", 0);
            assert_eq!(a, framing(Family::Arith, seed, "P", "00ff00ff00ff00ff", 0));
            let all = format!("{}\n{}", a.system.clone().unwrap_or_default(), a.user);
            assert_eq!(all.matches("00ff00ff00ff00ff").count(), 1, "{all}");
            assert!(a.user.contains('P'));
            let r = framing(Family::Arith, seed, "P", "00ff00ff00ff00ff", 2);
            assert!(format!("{:?}{}", r.system, r.user).contains("00ff00ff00ff00ff-r2"));
            kinds.insert((a.system.is_some(), a.user.starts_with('P')));
        }
        // a system message, none with the nonce before the prompt, none with it after
        assert_eq!(kinds.len(), 3, "{kinds:?}");
    }
}
