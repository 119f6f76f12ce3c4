//! When a (tier, date) may be published, and when it may be restated. Pure: the caller passes
//! the publication time, so every boundary is testable to the millisecond.
//!
//! Rules (index-methodology.md, "Publication and restatement"):
//! - a day is published only after it has ended (UTC);
//! - a published record is never overwritten; a **restatement** is a new record, version + 1,
//!   status RESTATED, linking to the record it replaces, and is allowed only when
//!   1. it is made strictly before the cutoff: end of the day + `restatement_cutoff_hours`;
//!   2. the recomputed determination is FINAL (a restatement never introduces a carried value);
//!   3. the change is material: |new - old| > materiality_threshold x |old|, compared exactly
//!      in integers (no rounding at the boundary). A change exactly at the threshold is refused.
//!      From methodology 1.3.0 a CONTINGENCY or SUSPENDED record that becomes computable is
//!      always restated (its status is the change);
//! - from methodology 1.3.0, a day is published no earlier than its end plus the settlement
//!   lag.

use sit_core::fixed::{Fixed, ONE};
use sit_core::index::{Determination, Methodology, Status};
use sit_core::time::{format_utc_ms, Date, DAY_MS, HOUR_MS};

/// What publishing (tier, date) now would be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The first record for (tier, date).
    First,
    /// A restatement of the record in force, as version `version`.
    Restate { version: u32 },
}

/// Why publishing was refused. Each names what stands and what would change it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{tier} {date} cannot be published before the day ends at {ends} (UTC)")]
    DayNotOver {
        tier: String,
        date: Date,
        ends: String,
    },
    #[error("{tier} {date} cannot be published before {until} (UTC): the day's end plus the methodology's settlement lag of {minutes} minutes, so that every attempt sent in the day is stored and inside the Merkle root")]
    SettlementLag {
        tier: String,
        date: Date,
        until: String,
        minutes: u32,
    },
    #[error("{tier} {date} is already published (version {version}, value {value}) and the recomputation gives the same value; published records are never overwritten")]
    Unchanged {
        tier: String,
        date: Date,
        version: u32,
        value: String,
    },
    #[error("{tier} {date}: {contract} {period} is settled FINAL at {value}; no day of a settled period is restated, version {version} stands")]
    Settled {
        tier: String,
        date: Date,
        contract: String,
        period: String,
        value: String,
        version: u32,
    },
    #[error("{tier} {date}: the restatement window closed at {cutoff}; version {version} (value {value}) stands")]
    CutoffPassed {
        tier: String,
        date: Date,
        cutoff: String,
        version: u32,
        value: String,
    },
    #[error("{tier} {date}: version {version} (value {value}) is signed by {key}, whose signatures are void (revoked), and the restatement window closed at {cutoff}: it cannot be replaced; say so to the users of the day (a notice)")]
    VoidPastCutoff {
        tier: String,
        date: Date,
        key: String,
        cutoff: String,
        version: u32,
        value: String,
    },
    #[error("{tier} {date}: the recomputation is {status}, not FINAL (or BASE); a restatement must rest on a full day, so version {version} stands")]
    NotFinal {
        tier: String,
        date: Date,
        status: Status,
        version: u32,
    },
    #[error("{tier} {date}: the change from {old} to {new} is not above the materiality threshold of {threshold} of the published value; version {version} stands")]
    NotMaterial {
        tier: String,
        date: Date,
        old: String,
        new: String,
        threshold: String,
        version: u32,
    },
}

/// The instant restatements of `date` stop being accepted.
pub fn cutoff_ms(m: &Methodology, date: Date) -> i64 {
    date.start_ms() + DAY_MS + m.restatement_cutoff_hours as i64 * HOUR_MS
}

/// Exact materiality test: |new - old| * ONE > threshold * |old|. A value appearing where
/// there was none is material; a value disappearing is handled by [`Refusal::NotFinal`].
pub fn is_material(threshold: Fixed, old: Option<Fixed>, new: Fixed) -> bool {
    match old {
        None => true,
        Some(old) => (new.0 - old.0).abs() * ONE > threshold.0 * old.0.abs(),
    }
}

fn show(v: Option<Fixed>) -> String {
    v.map(|x| x.to_string()).unwrap_or_else(|| "none".into())
}

/// Decide whether `new` may be published at `now_ms`, given the record in force, if any:
/// its (version, status, value).
pub fn decide(
    m: &Methodology,
    new: &Determination,
    in_force: Option<(u32, Status, Option<Fixed>)>,
    now_ms: i64,
) -> Result<Decision, Refusal> {
    let (tier, date) = (new.tier.clone(), new.date);
    let ends = date.start_ms() + DAY_MS;
    if now_ms < ends {
        return Err(Refusal::DayNotOver {
            tier,
            date,
            ends: format_utc_ms(ends),
        });
    }
    if let Some(minutes) = m.settlement_lag_minutes {
        let until = ends + minutes as i64 * 60_000;
        if now_ms < until {
            return Err(Refusal::SettlementLag {
                tier,
                date,
                until: format_utc_ms(until),
                minutes,
            });
        }
    }
    let Some((version, old_status, old)) = in_force else {
        return Ok(Decision::First);
    };
    // 1.3.0: a day that carried a value (CONTINGENCY, SUSPENDED) and is now computable is
    // always restated: its status changes even where its value would not.
    let from_carry = m.restate_contingency && !old_status.sets_value();
    if !new.status.sets_value() {
        return Err(Refusal::NotFinal {
            tier,
            date,
            status: new.status,
            version,
        });
    }
    let value = new
        .value
        .expect("a FINAL or BASE determination has a value");
    if old == Some(value) && !from_carry {
        return Err(Refusal::Unchanged {
            tier,
            date,
            version,
            value: value.to_string(),
        });
    }
    let cutoff = cutoff_ms(m, date);
    if now_ms >= cutoff {
        return Err(Refusal::CutoffPassed {
            tier,
            date,
            cutoff: format_utc_ms(cutoff),
            version,
            value: show(old),
        });
    }
    if !from_carry && !is_material(m.materiality_threshold, old, value) {
        return Err(Refusal::NotMaterial {
            tier,
            date,
            old: show(old),
            new: value.to_string(),
            threshold: format!("{}%", Fixed(m.materiality_threshold.0 * 100).round_dp(2)),
            version,
        });
    }
    Ok(Decision::Restate {
        version: version + 1,
    })
}

/// The record in force of a day is signed by a key whose signatures the key set voids (a
/// revoked key, from its `void_after`): it is replaced by the recomputation signed with a
/// valid key, as version + 1 linking to it, whatever the value, status or materiality,
/// provided the restatement window is still open. Outside it the void record stands, and the
/// refusal says so.
pub fn decide_replacement(
    m: &Methodology,
    new: &Determination,
    in_force: (u32, Status, Option<Fixed>),
    void_key: &str,
    now_ms: i64,
) -> Result<Decision, Refusal> {
    let (version, _, old) = in_force;
    let cutoff = cutoff_ms(m, new.date);
    if now_ms >= cutoff {
        return Err(Refusal::VoidPastCutoff {
            tier: new.tier.clone(),
            date: new.date,
            key: void_key.to_string(),
            cutoff: format_utc_ms(cutoff),
            version,
            value: show(old),
        });
    }
    Ok(Decision::Restate {
        version: version + 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_3_settlement_lag_and_contingency_restatement() {
        let m = Methodology::v1_3_0();
        let d = det(true, ONE);
        // Not before the day's end plus 5 minutes; exactly then, yes.
        let e = decide(&m, &d, None, day_end() + 5 * 60_000 - 1).unwrap_err();
        assert!(
            matches!(e, Refusal::SettlementLag { minutes: 5, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("2026-01-06T00:05:00.000Z"), "{e}");
        assert_eq!(
            decide(&m, &d, None, day_end() + 5 * 60_000),
            Ok(Decision::First)
        );
        // 1.2.0 has no lag.
        assert_eq!(
            decide(&Methodology::v1_2_0(), &d, None, day_end()),
            Ok(Decision::First)
        );
        // A CONTINGENCY record that becomes computable is restated even with a tiny change,
        // or none; a FINAL one still needs a material change.
        let at = day_end() + HOUR_MS;
        let carried = Some((1, Status::Contingency, Some(Fixed(ONE))));
        assert_eq!(
            decide(&m, &det(true, ONE + 1), carried, at),
            Ok(Decision::Restate { version: 2 })
        );
        assert_eq!(
            decide(&m, &det(true, ONE), carried, at),
            Ok(Decision::Restate { version: 2 })
        );
        let suspended = Some((1, Status::Suspended, Some(Fixed(ONE))));
        assert_eq!(
            decide(&m, &det(true, ONE + 1), suspended, at),
            Ok(Decision::Restate { version: 2 })
        );
        assert!(matches!(
            decide(&m, &det(true, ONE + 1), OLD, at),
            Err(Refusal::NotMaterial { .. })
        ));
        // Under 1.2.0 the carry rule is the old one.
        assert!(matches!(
            decide(&Methodology::v1_2_0(), &det(true, ONE + 1), carried, at),
            Err(Refusal::NotMaterial { .. })
        ));
        // Still never after the cutoff.
        let late = cutoff_ms(&m, Date::parse("2026-01-05").unwrap());
        assert!(matches!(
            decide(&m, &det(true, ONE + 1), carried, late),
            Err(Refusal::CutoffPassed { .. })
        ));
    }

    fn det(status_final: bool, value: i128) -> Determination {
        let mut d = crate::publisher::carried_day(Fixed(value));
        if status_final {
            d.status = Status::Final;
            d.contingency = None;
        }
        d
    }

    fn day_end() -> i64 {
        Date::parse("2026-01-06").unwrap().start_ms()
    }

    const OLD: Option<(u32, Status, Option<Fixed>)> = Some((1, Status::Final, Some(Fixed(ONE))));

    #[test]
    fn first_publication_only_after_the_day_ends() {
        let m = Methodology::v1_0_0();
        let d = det(true, ONE);
        assert!(matches!(
            decide(&m, &d, None, day_end() - 1),
            Err(Refusal::DayNotOver { .. })
        ));
        assert_eq!(decide(&m, &d, None, day_end()), Ok(Decision::First));
    }

    #[test]
    fn materiality_boundary_is_exact() {
        let m = Methodology::v1_0_0(); // 0.10% = 0.001000000
        let at = day_end() + 1;
        // Exactly 0.10% above: refused. One unit of the last place more: allowed.
        let e = decide(&m, &det(true, ONE + 1_000_000), OLD, at).unwrap_err();
        assert!(matches!(e, Refusal::NotMaterial { .. }), "{e}");
        assert_eq!(
            decide(&m, &det(true, ONE + 1_000_001), OLD, at),
            Ok(Decision::Restate { version: 2 })
        );
        // Same below.
        assert!(decide(&m, &det(true, ONE - 1_000_000), OLD, at).is_err());
        assert!(decide(&m, &det(true, ONE - 1_000_001), OLD, at).is_ok());
    }

    #[test]
    fn cutoff_boundary_is_exact() {
        let m = Methodology::v1_0_0();
        let cutoff = cutoff_ms(&m, Date::parse("2026-01-05").unwrap());
        assert_eq!(cutoff, day_end() + 24 * HOUR_MS);
        let d = det(true, 2 * ONE);
        assert_eq!(
            decide(&m, &d, OLD, cutoff - 1),
            Ok(Decision::Restate { version: 2 })
        );
        let e = decide(&m, &d, OLD, cutoff).unwrap_err();
        assert!(matches!(e, Refusal::CutoffPassed { .. }));
        assert!(e.to_string().contains("2026-01-07T00:00:00.000Z"), "{e}");
    }

    #[test]
    fn identical_recomputation_is_refused_even_before_the_cutoff() {
        let m = Methodology::v1_0_0();
        let e = decide(&m, &det(true, ONE), OLD, day_end() + 1).unwrap_err();
        assert!(matches!(e, Refusal::Unchanged { .. }));
        assert!(e.to_string().contains("never overwritten"));
    }

    #[test]
    fn restatement_must_be_final() {
        let m = Methodology::v1_0_0();
        let e = decide(&m, &det(false, 3 * ONE), OLD, day_end() + 1).unwrap_err();
        assert!(matches!(e, Refusal::NotFinal { .. }));
    }

    /// Issue 17: a chain's anchor day (BASE) can be restated like a FINAL one, under the same
    /// cutoff and materiality rules; a CONTINGENCY recomputation still cannot replace it.
    #[test]
    fn a_base_day_may_be_restated_under_the_same_rules() {
        let m = Methodology::v1_2_0();
        let base = Some((1, Status::Base, Some(Fixed(ONE))));
        let mut d = det(true, 2 * ONE);
        d.status = Status::Base;
        assert_eq!(
            decide(&m, &d, base, day_end() + 1),
            Ok(Decision::Restate { version: 2 })
        );
        let cutoff = cutoff_ms(&m, Date::parse("2026-01-05").unwrap());
        assert!(matches!(
            decide(&m, &d, base, cutoff),
            Err(Refusal::CutoffPassed { .. })
        ));
        d.value = Some(Fixed(ONE + 1_000_000));
        assert!(matches!(
            decide(&m, &d, base, day_end() + 1),
            Err(Refusal::NotMaterial { .. })
        ));
        let e = decide(&m, &det(false, 3 * ONE), base, day_end() + 1).unwrap_err();
        assert!(e.to_string().contains("not FINAL (or BASE)"), "{e}");
    }

    #[test]
    fn value_where_there_was_none_is_material() {
        let m = Methodology::v1_0_0();
        let none = Some((1, Status::Contingency, None));
        assert_eq!(
            decide(&m, &det(true, ONE), none, day_end()),
            Ok(Decision::Restate { version: 2 })
        );
        assert!(is_material(m.materiality_threshold, None, Fixed(0)));
        assert!(!is_material(
            m.materiality_threshold,
            Some(Fixed(0)),
            Fixed(0)
        ));
        assert!(is_material(
            m.materiality_threshold,
            Some(Fixed(0)),
            Fixed(1)
        ));
    }

    #[test]
    fn finality_is_the_restatement_cutoff_and_the_status_table() {
        use sit_core::verify::finality;
        let registry = sit_core::versions::Registry::embedded();
        let m = registry.current_methodology();
        let date = Date::parse("2026-01-05").unwrap();
        let mut d = det(true, ONE);
        d.date = date;
        d.methodology_hash = m.hash();
        let f = finality(&d, registry);
        assert_eq!(f.final_at.as_deref(), Some("2026-01-07T00:00:00.000Z"));
        assert_eq!(f.final_at, Some(format_utc_ms(cutoff_ms(m, date))));
        let rows: Vec<(Status, bool, &str)> = [
            Status::Final,
            Status::Restated,
            Status::Contingency,
            Status::Suspended,
            Status::Base,
        ]
        .into_iter()
        .map(|s| {
            d.status = s;
            let f = finality(&d, registry);
            (s, f.settles, f.contract_use)
        })
        .collect();
        assert_eq!(
            rows,
            [
                (Status::Final, true, "value"),
                (Status::Restated, true, "value"),
                (Status::Contingency, false, "carried value"),
                (Status::Suspended, false, "fallback"),
                (Status::Base, false, "refused"),
            ]
        );
        d.methodology_hash = "00".repeat(32);
        assert_eq!(finality(&d, registry).final_at, None);
    }
}
