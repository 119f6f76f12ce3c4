//! Probe families: a template with a seeded generator and a grader.
//!
//! From (family, seed) a family derives the prompt, the expected answer and the grader,
//! deterministically (suite 1.0.0's one phrasing; suite 1.1.0's phrasings are in
//! [`super::varied`], built on the word lists and answer helpers here). The answer helpers
//! ([`compound_answer`], [`json_order_answer`], [`modpow`]) are public because the simulator,
//! which reads answers back out of prompts, computes answers the same way.

use super::grader::Grader;
use crate::fixed::{div_round_half_even, format_scaled, Fixed};
use crate::rng::Rng;

/// One generated probe instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// The prompt: the user message without framing or nonce.
    pub prompt: String,
    /// The correct answer, as the grader compares it.
    pub expected: String,
    /// How an answer is graded against `expected`.
    pub grader: Grader,
}

/// All families, in suite order.
pub const FAMILIES: &[Family] = &[
    Family::Arith,
    Family::ExtractEmail,
    Family::Uppercase,
    Family::DateFormat,
    Family::WordProblem,
    Family::JsonRecord,
    Family::CodeRead,
    Family::SortNumbers,
    Family::Compound,
    Family::Needle,
    Family::ModPow,
    Family::JsonOrder,
];

/// A probe family (its id is [`Family::id`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// `t1.arith`: add or subtract two three-digit numbers.
    Arith,
    /// `t1.extract_email`: pick the email address out of a short text.
    ExtractEmail,
    /// `t1.uppercase`: write a two-word phrase in capitals.
    Uppercase,
    /// `t1.date_format`: rewrite an ISO date as DD/MM/YYYY.
    DateFormat,
    /// `t2.word_problem`: two days' revenue of a shop.
    WordProblem,
    /// `t2.json_record`: a person described as a JSON object.
    JsonRecord,
    /// `t2.code_read`: the value a short Python loop returns.
    CodeRead,
    /// `t2.sort_numbers`: six numbers in ascending order.
    SortNumbers,
    /// `t3.compound`: a fund after a gain, a loss and a withdrawal, to the cent.
    Compound,
    /// `t3.needle`: one access code among 120 records.
    Needle,
    /// `t3.modpow`: `a^b mod m`.
    ModPow,
    /// `t3.json_order`: units and total due of an order, as JSON.
    JsonOrder,
}

pub(crate) const FIRST: &[&str] = &[
    "Maria", "James", "Aiko", "Lars", "Fatima", "Diego", "Chloe", "Ravi", "Olga", "Kwame", "Ines",
    "Tomas",
];
pub(crate) const LAST: &[&str] = &[
    "Silva", "Okafor", "Tanaka", "Berg", "Haddad", "Moreno", "Dubois", "Iyer", "Petrova", "Mensah",
    "Costa", "Novak",
];
pub(crate) const DOMAINS: &[&str] = &[
    "example.com",
    "mail.test",
    "corp.example.org",
    "uni.example.edu",
    "shop.example.net",
];
pub(crate) const CITIES: &[&str] = &[
    "Lisbon", "Osaka", "Nairobi", "Oslo", "Lima", "Toronto", "Hanoi", "Dublin", "Cairo", "Perth",
];
pub(crate) const WORDS: &[&str] = &[
    "banana", "river", "lantern", "copper", "meadow", "falcon", "harbor", "violet", "thunder",
    "pepper", "glacier", "marble", "orchard", "compass", "saffron", "ember",
];
pub(crate) const ITEMS: &[&str] = &[
    "loaves",
    "muffins",
    "notebooks",
    "candles",
    "mugs",
    "scarves",
    "lamps",
    "kites",
];
pub(crate) const WEEKDAYS: &[&str] = &["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"];

pub(crate) fn money(v_cents: i128) -> String {
    format_scaled(v_cents, 2)
}

impl Family {
    /// The family's id in suite files and observations (`t1.arith`, ...).
    pub fn id(self) -> &'static str {
        match self {
            Family::Arith => "t1.arith",
            Family::ExtractEmail => "t1.extract_email",
            Family::Uppercase => "t1.uppercase",
            Family::DateFormat => "t1.date_format",
            Family::WordProblem => "t2.word_problem",
            Family::JsonRecord => "t2.json_record",
            Family::CodeRead => "t2.code_read",
            Family::SortNumbers => "t2.sort_numbers",
            Family::Compound => "t3.compound",
            Family::Needle => "t3.needle",
            Family::ModPow => "t3.modpow",
            Family::JsonOrder => "t3.json_order",
        }
    }

    /// Generator version: bump when the generator's output for any seed changes.
    pub fn version(self) -> u32 {
        1
    }

    /// The family with this id.
    pub fn from_id(id: &str) -> Option<Family> {
        FAMILIES.iter().copied().find(|f| f.id() == id)
    }

    /// Derive the instance for `seed`. Pure and total.
    pub fn generate(self, seed: u64) -> Generated {
        let mut r = Rng::from_bytes(&[self.id().as_bytes(), &seed.to_le_bytes()]);
        let exact0 = Grader::FinalNumber {
            tolerance: Fixed::ZERO,
        };
        match self {
            Family::Arith => {
                let a = r.range(100, 999);
                let b = r.range(100, 999);
                let plus = r.range(0, 1) == 0;
                let (op, v) = if plus { ('+', a + b) } else { ('-', a - b) };
                Generated {
                    prompt: format!("Compute {a} {op} {b}. Reply with the number only."),
                    expected: v.to_string(),
                    grader: exact0,
                }
            }
            Family::ExtractEmail => {
                let f = r.pick(FIRST);
                let l = r.pick(LAST);
                let d = r.pick(DOMAINS);
                let n = r.range(1, 99);
                let email = format!("{}.{}{}@{}", f.to_lowercase(), l.to_lowercase(), n, d);
                let day = r.pick(WEEKDAYS);
                Generated {
                    prompt: format!(
                        "Extract the email address from the text below and reply with the address only.\n\
                         Text: \"Hi team, please send the signed forms to {f} {l} at {email} before {day}. Thanks!\""
                    ),
                    expected: email,
                    grader: Grader::NormalisedExact,
                }
            }
            Family::Uppercase => {
                let a = r.pick(WORDS);
                let b = r.pick(WORDS);
                Generated {
                    prompt: format!("Write the phrase \"{a} {b}\" in uppercase letters. Reply with the phrase only."),
                    expected: format!("{} {}", a.to_uppercase(), b.to_uppercase()),
                    grader: Grader::Exact,
                }
            }
            Family::DateFormat => {
                let y = r.range(1990, 2035);
                let m = r.range(1, 12);
                let d = r.range(1, 28);
                let expected = format!("{d:02}/{m:02}/{y}");
                Generated {
                    prompt: format!(
                        "Rewrite the date {y}-{m:02}-{d:02} in the format DD/MM/YYYY. Reply with the date only."
                    ),
                    grader: Grader::Regex { pattern: format!(r"^\s*{}\s*\.?\s*$", regex::escape(&expected)) },
                    expected,
                }
            }
            Family::WordProblem => {
                let item = r.pick(ITEMS);
                let p = r.range(2, 19);
                let a = r.range(12, 80);
                let b = r.range(3, 30);
                let total = p * (a + a + b);
                Generated {
                    prompt: format!(
                        "A shop sells {item} at {p} dollars each. On Monday it sells {a} of them, and on Tuesday it \
                         sells {b} more than on Monday. What is the total revenue in dollars over the two days? \
                         Reply with the final number."
                    ),
                    expected: total.to_string(),
                    grader: exact0,
                }
            }
            Family::JsonRecord => {
                let name = format!("{} {}", r.pick(FIRST), r.pick(LAST));
                let age = r.range(18, 90);
                let city = r.pick(CITIES);
                Generated {
                    prompt: format!(
                        "Return only a JSON object with the keys \"name\" (string), \"age\" (integer) and \"city\" \
                         (string) describing this person: {name} is {age} years old and lives in {city}."
                    ),
                    expected: serde_json::json!({"name": name, "age": age, "city": city}).to_string(),
                    grader: Grader::JsonFields {
                        fields: vec!["name".into(), "age".into(), "city".into()],
                        tolerance: Fixed::ZERO,
                    },
                }
            }
            Family::CodeRead => {
                let n = r.range(4, 12);
                let c = r.range(1, 20);
                let k = r.range(2, 9);
                let v = c + k * n * (n - 1) / 2;
                Generated {
                    prompt: format!(
                        "What does this Python function return for f({n})?\n```python\ndef f(n):\n    total = {c}\n    \
                         for i in range(n):\n        total += i * {k}\n    return total\n```\nReply with the number only."
                    ),
                    expected: v.to_string(),
                    grader: exact0,
                }
            }
            Family::SortNumbers => {
                let mut nums: Vec<i64> = Vec::new();
                while nums.len() < 6 {
                    let x = r.range(1, 999);
                    if !nums.contains(&x) {
                        nums.push(x);
                    }
                }
                let shown = nums
                    .iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                nums.sort_unstable();
                Generated {
                    prompt: format!(
                        "Sort these numbers in ascending order and reply with them separated by commas: {shown}"
                    ),
                    expected: nums.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(","),
                    grader: Grader::NormalisedExact,
                }
            }
            Family::Compound => {
                let p = r.range(10, 99) * 100;
                let g = r.range(2, 30);
                let l = r.range(1, 20);
                let w = r.range(1, 50) * 10;
                Generated {
                    expected: compound_answer(p, g, l, w),
                    prompt: format!(
                        "A fund starts with {p} dollars. It gains {g} percent in the first year, loses {l} percent in \
                         the second year, and then {w} dollars are withdrawn. How many dollars remain? Give the answer \
                         rounded to 2 decimal places."
                    ),
                    grader: Grader::FinalNumber { tolerance: Fixed::parse("0.01").unwrap() },
                }
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
                    lines.push_str(&format!("Record {k}: the access code is {code}.\n"));
                }
                Generated {
                    prompt: format!(
                        "Below is a list of records.\n{lines}\nWhat is the access code of record {target}? \
                         Reply with the code only."
                    ),
                    expected: code_of_target,
                    grader: Grader::NormalisedExact,
                }
            }
            Family::ModPow => {
                let a = r.range(2, 99);
                let b = r.range(5, 40);
                let m = r.range(7, 997);
                Generated {
                    prompt: format!("Compute ({a}^{b}) mod {m}. Reply with the number only."),
                    expected: modpow(a, b, m).to_string(),
                    grader: exact0,
                }
            }
            Family::JsonOrder => {
                let i1 = r.pick(ITEMS);
                let mut i2 = r.pick(ITEMS);
                if i2 == i1 {
                    i2 = &ITEMS[(ITEMS.iter().position(|x| x == i1).unwrap() + 1) % ITEMS.len()];
                }
                let n1 = r.range(2, 20);
                let n2 = r.range(2, 20);
                let p1 = r.range(150, 2500); // cents
                let p2 = r.range(150, 2500);
                let d = r.range(1, 10) * 100;
                Generated {
                    prompt: format!(
                        "An order contains {n1} {i1} at {} dollars each and {n2} {i2} at {} dollars each, with a \
                         discount of {} dollars on the whole order. Return only a JSON object with the keys \"units\" \
                         (total number of units, integer) and \"total\" (amount due in dollars, number).",
                        money(p1 as i128),
                        money(p2 as i128),
                        money(d as i128)
                    ),
                    expected: json_order_answer(n1, p1, n2, p2, d),
                    grader: Grader::JsonFields {
                        fields: vec!["units".into(), "total".into()],
                        tolerance: Fixed::parse("0.01").unwrap(),
                    },
                }
            }
        }
    }
}

/// The compound family's answer: p * (100+g)/100 * (100-l)/100 - w dollars, rounded half
/// to even to cents, exactly (as "123.45").
pub fn compound_answer(p: i64, g: i64, l: i64, w: i64) -> String {
    let num = p as i128 * (100 + g as i128) * (100 - l as i128) * 100; // in cents * 10_000
    let cents = div_round_half_even(num, 10_000) - w as i128 * 100;
    money(cents)
}

/// The JSON order family's answer: `{"units":N,"total":"T"}` for n1 items at p1 cents, n2
/// at p2 cents, less a discount of d cents.
pub fn json_order_answer(n1: i64, p1: i64, n2: i64, p2: i64, d: i64) -> String {
    let total = (n1 * p1 + n2 * p2 - d) as i128;
    format!("{{\"units\":{},\"total\":{}}}", n1 + n2, money(total))
}

/// a^b mod m by square-and-multiply (the inputs the family draws keep every product in i64).
pub fn modpow(a: i64, b: i64, m: i64) -> i64 {
    let (mut r, mut base, mut e) = (1i64, a % m, b);
    while e > 0 {
        if e & 1 == 1 {
            r = r * base % m;
        }
        base = base * base % m;
        e >>= 1;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_family_and_seed_give_same_instance() {
        for f in FAMILIES {
            for seed in [0u64, 1, 42, u64::MAX] {
                assert_eq!(f.generate(seed), f.generate(seed), "{}", f.id());
            }
            assert_ne!(
                f.generate(1).prompt,
                f.generate(2).prompt,
                "{} ignores its seed",
                f.id()
            );
        }
    }

    #[test]
    fn golden_instances() {
        // Guards generator stability: changing these changes the suite hash and old replays.
        assert_eq!(compound_answer(1000, 10, 10, 0), "990.00");
        assert_eq!(compound_answer(1005, 3, 7, 10), "952.69"); // 1005*1.03*0.93 = 962.6895 -> 962.69, - 10
        assert_eq!(modpow(4, 13, 497), 445);
    }
}
