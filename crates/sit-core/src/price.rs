//! Price schedules: list prices in force from a UTC instant on.
//!
//! Every observation carries the entry in force when it was sent, so its cost can be
//! re-derived without the configuration that produced it. From methodology 1.4.0 a day's
//! attempts are costed from the versioned, append-only [`PriceBook`] as it stood when the day
//! was determined ([`BookView`]).

use crate::fixed::{Pusd, Rate};
use serde::{Deserialize, Serialize};

/// One entry of a price schedule: list prices in force from `effective_from_ms` on. Rates are
/// [`Rate`]s (USD per 1,000,000 tokens, 6 places), the fee a [`Pusd`] (USD, 12 places).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceEntry {
    /// UTC milliseconds.
    pub effective_from_ms: i64,
    /// USD per 1M input tokens.
    pub input: Rate,
    /// USD per 1M output tokens (reasoning tokens included).
    pub output: Rate,
    /// USD per 1M cached input tokens (defaults to `input` when the provider has no discount).
    pub cached_input: Rate,
    /// USD per request.
    pub request_fee: Pusd,
}

/// A price schedule, sorted by `effective_from_ms`, no duplicates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PriceSchedule(pub Vec<PriceEntry>);

impl PriceSchedule {
    /// The entry in force at `at_ms`: the last one whose `effective_from_ms <= at_ms`.
    pub fn in_force(&self, at_ms: i64) -> Option<&PriceEntry> {
        let i = self.0.partition_point(|e| e.effective_from_ms <= at_ms);
        if i == 0 {
            None
        } else {
            Some(&self.0[i - 1])
        }
    }
}

/// One entry of the price book: an endpoint's list prices from `effective_from_ms` on, as
/// recorded at `recorded_at_ms`. The book is append-only; `version` is the entry's position
/// (1-based), so "the book at version N" is its first N entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookEntry {
    /// The entry's position in the book, from 1.
    pub version: u64,
    /// UTC milliseconds (the recording clock's, never used in arithmetic but to say which
    /// entries were known at a determination).
    pub recorded_at_ms: i64,
    /// The endpoint priced.
    pub endpoint: String,
    /// The list prices and when they take effect.
    #[serde(flatten)]
    pub price: PriceEntry,
    /// Where the price comes from (a catalogue and its version, a price page and its date).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Why entries cannot join a price book.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BookError {
    /// The entry's version is not the next one.
    #[error(
        "price book entry {got} out of order: the next version is {want} (the book is append-only)"
    )]
    Version {
        /// The version the next entry must have.
        want: u64,
        /// The version it has.
        got: u64,
    },
    /// The entry is recorded before the entry before it.
    #[error("price book entry {version} is recorded at {at_ms} ms, before the entry before it ({prev_ms} ms): the book is recorded in time order")]
    RecordedBackwards {
        /// The entry's version.
        version: u64,
        /// Its `recorded_at_ms`.
        at_ms: i64,
        /// The previous entry's `recorded_at_ms`.
        prev_ms: i64,
    },
}

/// The versioned, append-only price book of every endpoint (methodology 1.4.0 and later):
/// a determination costs each attempt from the entry in force at the attempt's time *as the
/// book stood when the day was determined*, and names that book version, so a correction
/// recorded before the restatement cutoff restates the day, one recorded after it does not,
/// and a replay with the book's first N entries reproduces the published value exactly.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PriceBook(Vec<BookEntry>);

impl PriceBook {
    /// A book of entries numbered 1, 2, ... and recorded in time order.
    pub fn new(entries: Vec<BookEntry>) -> Result<PriceBook, BookError> {
        let mut b = PriceBook::default();
        for e in entries {
            b.push(e)?;
        }
        Ok(b)
    }

    /// Append the next entry (its version must be `len + 1`, its `recorded_at_ms` not before
    /// the last entry's).
    pub fn push(&mut self, e: BookEntry) -> Result<(), BookError> {
        let want = self.0.len() as u64 + 1;
        if e.version != want {
            return Err(BookError::Version {
                want,
                got: e.version,
            });
        }
        if let Some(prev) = self.0.last() {
            if e.recorded_at_ms < prev.recorded_at_ms {
                return Err(BookError::RecordedBackwards {
                    version: e.version,
                    at_ms: e.recorded_at_ms,
                    prev_ms: prev.recorded_at_ms,
                });
            }
        }
        self.0.push(e);
        Ok(())
    }

    /// Every entry, in version order.
    pub fn entries(&self) -> &[BookEntry] {
        &self.0
    }

    /// The number of entries (the latest version; 0 for an empty book).
    pub fn version(&self) -> u64 {
        self.0.len() as u64
    }

    /// The latest version recorded at or before `at_ms` (0: nothing was known then).
    pub fn version_at(&self, at_ms: i64) -> u64 {
        self.0.partition_point(|e| e.recorded_at_ms <= at_ms) as u64
    }

    /// The book as it stood at `version` (its first `version` entries).
    pub fn at(&self, version: u64) -> PriceBook {
        PriceBook(self.0[..(version.min(self.version()) as usize)].to_vec())
    }

    /// blake3 (hex) of the canonical JSON of the entries up to `version`: what a record
    /// names beside the version, so a bundle with a different book is caught.
    pub fn hash(&self, version: u64) -> String {
        canonical_list_hash(&self.0[..(version.min(self.version()) as usize)])
    }

    /// An endpoint's schedule as the book stood at `version`: for each `effective_from`, the
    /// latest entry recorded (a correction replaces what it corrects; nothing is deleted).
    pub fn schedule(&self, endpoint: &str, version: u64) -> PriceSchedule {
        schedule_of(&self.0, endpoint, version)
    }

    /// The entries that answer every question [`PriceBook::schedule`] can be asked about
    /// `cover`'s times and versions (see [`PriceExcerpt`]).
    pub fn excerpt(&self, cover: Cover) -> PriceExcerpt {
        PriceExcerpt {
            cover,
            entries: excerpt_of(&self.0, cover),
        }
    }

    /// Every endpoint the book prices, sorted.
    pub fn endpoints(&self) -> Vec<String> {
        let mut v: Vec<String> = self.0.iter().map(|e| e.endpoint.clone()).collect();
        v.sort();
        v.dedup();
        v
    }

    /// The entries that would bring the book's view of `endpoint` to `schedule` (entries
    /// missing or different), numbered after the book's end and recorded at `recorded_at_ms`.
    /// Entries the book has and the schedule lacks are not removed: the book only grows.
    pub fn changes(
        &self,
        endpoint: &str,
        schedule: &PriceSchedule,
        recorded_at_ms: i64,
        source: impl Fn(&PriceEntry) -> Option<String>,
    ) -> Vec<BookEntry> {
        let now: std::collections::BTreeMap<i64, PriceEntry> = self
            .schedule(endpoint, self.version())
            .0
            .into_iter()
            .map(|q| (q.effective_from_ms, q))
            .collect();
        let mut out = Vec::new();
        for p in &schedule.0 {
            if now.get(&p.effective_from_ms) != Some(p) {
                out.push(BookEntry {
                    version: self.version() + 1 + out.len() as u64,
                    recorded_at_ms,
                    endpoint: endpoint.to_string(),
                    price: p.clone(),
                    source: source(p),
                });
            }
        }
        out
    }
}

/// blake3 (hex) of the canonical JSON (RFC 8785) of a list of entries, streamed: the
/// canonical form of an array is its members' canonical forms between `[` and `]`, joined by
/// `,`, so a book of any size is hashed one entry at a time instead of as one JSON tree.
fn canonical_list_hash(entries: &[BookEntry]) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"[");
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            h.update(b",");
        }
        let v = serde_json::to_value(e).expect("entry serialises");
        h.update(&crate::signing::canonical(&v));
    }
    h.update(b"]");
    h.finalize().to_hex().to_string()
}

/// `endpoint`'s schedule from the `entries` (in version order) of versions up to `version`:
/// for each `effective_from`, the latest entry recorded.
fn schedule_of(entries: &[BookEntry], endpoint: &str, version: u64) -> PriceSchedule {
    let mut by_from: std::collections::BTreeMap<i64, &PriceEntry> = Default::default();
    for e in entries.iter().take_while(|e| e.version <= version) {
        if e.endpoint == endpoint {
            by_from.insert(e.price.effective_from_ms, &e.price);
        }
    }
    PriceSchedule(by_from.into_values().cloned().collect())
}

/// The times and book versions a price lookup may ask about: `from_ms <= at < to_ms`,
/// `min_version <= version <= max_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cover {
    /// First instant covered (UTC ms).
    pub from_ms: i64,
    /// First instant after the cover (UTC ms).
    pub to_ms: i64,
    /// Earliest book version covered.
    pub min_version: u64,
    /// Latest book version covered.
    pub max_version: u64,
}

impl Cover {
    /// Whether a lookup at `at_ms` in the book at `version` is covered.
    pub fn covers(&self, at_ms: i64, version: u64) -> bool {
        (self.from_ms..self.to_ms).contains(&at_ms)
            && (self.min_version..=self.max_version).contains(&version)
    }

    /// Whether every lookup `inner` covers is covered here.
    pub fn contains(&self, inner: &Cover) -> bool {
        self.from_ms <= inner.from_ms
            && inner.to_ms <= self.to_ms
            && self.min_version <= inner.min_version
            && inner.max_version <= self.max_version
    }
}

/// Per endpoint, the entries of versions up to `max_version` that take effect before `to_ms`
/// and not before the entry in force at `from_ms` in the book at `min_version` (all of them
/// when none is). Why this answers every covered lookup as the whole book does: an entry in
/// force at a covered time and version takes effect no earlier than that one (a later time
/// or a later version can only bring a later `effective_from`), and every recorded
/// correction of it is kept.
fn excerpt_of(entries: &[BookEntry], cover: Cover) -> Vec<BookEntry> {
    let mut floor: std::collections::BTreeMap<&str, Option<i64>> = Default::default();
    for e in entries {
        floor.entry(&e.endpoint).or_insert_with(|| {
            schedule_of(entries, &e.endpoint, cover.min_version)
                .in_force(cover.from_ms)
                .map(|p| p.effective_from_ms)
        });
    }
    entries
        .iter()
        .take_while(|e| e.version <= cover.max_version)
        .filter(|e| {
            let f = e.price.effective_from_ms;
            f < cover.to_ms && floor[e.endpoint.as_str()].map_or(true, |lo| f >= lo)
        })
        .cloned()
        .collect()
}

/// The part of the price book that a day's bundle carries: every entry any lookup inside its
/// [`Cover`] can use, in version order, each with its version. Looked up as the book is
/// ([`PriceExcerpt::schedule`]); a lookup outside the cover is refused, never answered
/// wrongly. A determination commits to its own excerpt (the day's window at the book version
/// it costed from) by [`PriceExcerpt::hash`] in `prices.excerpt`, so an auditor sees from the
/// bundle alone that no entry the day needs is missing or altered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceExcerpt {
    /// What lookups it answers.
    pub cover: Cover,
    /// The entries, in version order.
    pub entries: Vec<BookEntry>,
}

impl PriceExcerpt {
    /// `endpoint`'s schedule at `version`, as the book gives it, for times inside the cover.
    pub fn schedule(&self, endpoint: &str, version: u64) -> PriceSchedule {
        schedule_of(&self.entries, endpoint, version)
    }

    /// The excerpt of this excerpt for `cover`, which must lie inside this one's: the same
    /// entries [`PriceBook::excerpt`] gives for it.
    pub fn excerpt(&self, cover: Cover) -> Result<PriceExcerpt, String> {
        if !self.cover.contains(&cover) {
            return Err(format!(
                "the prices carried cover {} to {} ms, book versions {} to {}; {} to {} ms at versions {} to {} are asked for",
                self.cover.from_ms,
                self.cover.to_ms,
                self.cover.min_version,
                self.cover.max_version,
                cover.from_ms,
                cover.to_ms,
                cover.min_version,
                cover.max_version
            ));
        }
        Ok(PriceExcerpt {
            cover,
            entries: excerpt_of(&self.entries, cover),
        })
    }

    /// blake3 (hex) of the canonical JSON of the entries (the cover is not hashed: the record
    /// that names the hash says which day and version it is of).
    pub fn hash(&self) -> String {
        canonical_list_hash(&self.entries)
    }

    /// Every endpoint priced, sorted.
    pub fn endpoints(&self) -> Vec<String> {
        let mut v: Vec<String> = self.entries.iter().map(|e| e.endpoint.clone()).collect();
        v.sort();
        v.dedup();
        v
    }
}

/// An index into a price book as it stood at one version: how a determination costs an
/// attempt (built once per day, looked up per attempt).
#[derive(Debug, Clone)]
pub struct BookView {
    /// The book version viewed (at most the book's latest).
    pub version: u64,
    /// The book's hash at that version ([`PriceBook::hash`]).
    pub hash: String,
    /// The hash of the excerpt of the day's window at that version ([`PriceExcerpt::hash`]),
    /// when the view was made for a window ([`BookView::for_window`]).
    pub excerpt: Option<String>,
    schedules: std::collections::BTreeMap<String, PriceSchedule>,
}

impl BookView {
    /// The view of `book` at `version` (a version past the book's end reads as its latest).
    pub fn new(book: &PriceBook, version: u64) -> BookView {
        let version = version.min(book.version());
        BookView {
            version,
            hash: book.hash(version),
            excerpt: None,
            schedules: book
                .endpoints()
                .into_iter()
                .map(|e| {
                    let s = book.schedule(&e, version);
                    (e, s)
                })
                .collect(),
        }
    }

    /// The view of `book` at `version` for a day's window `[from_ms, to_ms)`, naming the hash
    /// of the window's excerpt (what a determination commits to).
    pub fn for_window(book: &PriceBook, version: u64, (from_ms, to_ms): (i64, i64)) -> BookView {
        let mut v = BookView::new(book, version);
        v.excerpt = Some(
            book.excerpt(Cover {
                from_ms,
                to_ms,
                min_version: v.version,
                max_version: v.version,
            })
            .hash(),
        );
        v
    }

    /// The view an excerpt gives of the book at `version` for the window `[from_ms, to_ms)`
    /// (which it must cover), with the whole book's `hash` as stated by the record that names
    /// it: all a bundle can check of that hash is the excerpt's own.
    pub fn from_excerpt(
        ex: &PriceExcerpt,
        version: u64,
        (from_ms, to_ms): (i64, i64),
        stated_hash: &str,
    ) -> Result<BookView, String> {
        let day = ex.excerpt(Cover {
            from_ms,
            to_ms,
            min_version: version,
            max_version: version,
        })?;
        Ok(BookView {
            version,
            hash: stated_hash.to_string(),
            excerpt: Some(day.hash()),
            schedules: day
                .endpoints()
                .into_iter()
                .map(|e| {
                    let s = day.schedule(&e, version);
                    (e, s)
                })
                .collect(),
        })
    }

    /// The entry in force for `endpoint` at `at_ms`, as this version of the book says.
    pub fn in_force(&self, endpoint: &str, at_ms: i64) -> Option<&PriceEntry> {
        self.schedules.get(endpoint).and_then(|s| s.in_force(at_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(v: u64, rec: i64, ep: &str, from: i64, input: &str) -> BookEntry {
        BookEntry {
            version: v,
            recorded_at_ms: rec,
            endpoint: ep.into(),
            price: PriceEntry {
                effective_from_ms: from,
                input: Rate::parse(input).unwrap(),
                output: Rate::parse("1").unwrap(),
                cached_input: Rate::parse(input).unwrap(),
                request_fee: Pusd::ZERO,
            },
            source: None,
        }
    }

    #[test]
    fn a_correction_replaces_what_it_corrects_from_its_version_on() {
        let book = PriceBook::new(vec![
            entry(1, 100, "a", 0, "1"),
            entry(2, 100, "b", 0, "2"),
            entry(3, 500, "a", 0, "1.5"), // correction, backdated to 0
            entry(4, 600, "a", 1_000, "3"),
        ])
        .unwrap();
        assert_eq!(book.version_at(99), 0);
        assert_eq!(book.version_at(100), 2);
        assert_eq!(book.version_at(550), 3);
        let before = BookView::new(&book, 2);
        let after = BookView::new(&book, 3);
        assert_eq!(
            before.in_force("a", 50).unwrap().input,
            Rate::parse("1").unwrap()
        );
        assert_eq!(
            after.in_force("a", 50).unwrap().input,
            Rate::parse("1.5").unwrap()
        );
        assert_eq!(
            after.in_force("a", 2_000).unwrap().input,
            Rate::parse("1.5").unwrap()
        );
        let all = BookView::new(&book, 4);
        assert_eq!(
            all.in_force("a", 2_000).unwrap().input,
            Rate::parse("3").unwrap()
        );
        assert!(all.in_force("c", 0).is_none());
        assert_ne!(before.hash, after.hash);
        assert_eq!(before.hash, BookView::new(&book.at(2), 9).hash);
    }

    /// Every lookup an excerpt covers gives what the whole book gives, an excerpt of an
    /// excerpt is the book's excerpt, and what lies outside is refused.
    #[test]
    fn an_excerpt_answers_what_it_covers_as_the_book_does() {
        // endpoint a: hourly price moves, a correction of an old entry recorded late, and a
        // backdated entry; b: one price since the start; c: priced only after the window
        let mut es = Vec::new();
        let mut v = 0;
        let mut push = |rec: i64, ep: &str, from: i64, input: &str| {
            v += 1;
            es.push(entry(v, rec, ep, from, input));
        };
        push(0, "b", 0, "9");
        for h in 0..48 {
            push(h * 100, "a", h * 100, &format!("{}", 1 + h % 5));
        }
        push(4_800, "a", 1_000, "7.5"); // corrects the entry from 1_000
        push(4_900, "a", 2_450, "8"); // backdated into the window
        push(5_000, "c", 6_000, "3");
        let book = PriceBook::new(es).unwrap();
        let cover = Cover {
            from_ms: 2_050,
            to_ms: 3_000,
            min_version: 10,
            max_version: book.version(),
        };
        let ex = book.excerpt(cover);
        assert!(
            ex.entries.len() < book.entries().len() / 2,
            "{}",
            ex.entries.len()
        );
        for version in cover.min_version..=cover.max_version {
            for at in (cover.from_ms..cover.to_ms).step_by(25) {
                for ep in ["a", "b", "c"] {
                    assert_eq!(
                        ex.schedule(ep, version).in_force(at),
                        book.schedule(ep, version).in_force(at),
                        "{ep} at {at}, version {version}"
                    );
                }
            }
        }
        let day = Cover {
            from_ms: 2_100,
            to_ms: 2_900,
            min_version: book.version(),
            max_version: book.version(),
        };
        assert_eq!(ex.excerpt(day).unwrap(), book.excerpt(day));
        let wider = Cover {
            to_ms: 3_001,
            ..day
        };
        assert!(ex.excerpt(wider).unwrap_err().contains("cover"));
        // a view for the day from the book and from the excerpt commit to the same entries
        let full = BookView::for_window(&book, book.version(), (2_100, 2_900));
        let part = BookView::from_excerpt(&ex, book.version(), (2_100, 2_900), &full.hash).unwrap();
        assert_eq!(full.excerpt, part.excerpt);
        assert_eq!(full.in_force("a", 2_500), part.in_force("a", 2_500));
        // an entry missing from the excerpt changes its hash
        let mut short = ex.clone();
        short.entries.retain(|e| e.version != 51);
        let lacking = BookView::from_excerpt(&short, book.version(), (2_100, 2_900), &full.hash);
        assert_ne!(lacking.unwrap().excerpt, full.excerpt);
    }

    /// The streamed hash is the hash of the canonical JSON of the whole list, as it was
    /// computed before (records name it).
    #[test]
    fn the_streamed_hash_is_the_canonical_hash_of_the_list() {
        let mut es: Vec<BookEntry> = (1..=40)
            .map(|v| {
                entry(
                    v,
                    v as i64,
                    if v % 3 == 0 { "b" } else { "a" },
                    v as i64 * 7,
                    "1.25",
                )
            })
            .collect();
        es[5].source = Some("a \"quoted\" page, é".into());
        let book = PriceBook::new(es).unwrap();
        for version in [0, 1, 17, 40] {
            let v = serde_json::to_value(&book.at(version).0).unwrap();
            let whole = blake3::hash(&crate::signing::canonical(&v))
                .to_hex()
                .to_string();
            assert_eq!(book.hash(version), whole, "version {version}");
        }
    }

    #[test]
    fn the_book_only_grows_in_order() {
        let mut b = PriceBook::default();
        assert_eq!(
            b.push(entry(2, 0, "a", 0, "1")),
            Err(BookError::Version { want: 1, got: 2 })
        );
        b.push(entry(1, 10, "a", 0, "1")).unwrap();
        assert!(matches!(
            b.push(entry(2, 9, "a", 0, "1")),
            Err(BookError::RecordedBackwards { .. })
        ));
        // the same schedule again changes nothing; a corrected entry is one change
        let s = b.schedule("a", 1);
        assert!(b.changes("a", &s, 20, |_| None).is_empty());
        let mut s2 = s.clone();
        s2.0[0].input = Rate::parse("2").unwrap();
        let c = b.changes("a", &s2, 20, |_| Some("fix".into()));
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].version, c[0].recorded_at_ms), (2, 20));
    }
}
