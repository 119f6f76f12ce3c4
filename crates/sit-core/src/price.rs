//! Price schedules: list prices in force from a UTC instant on.
//!
//! Every observation carries the entry in force when it was sent, so its cost can be
//! re-derived without the configuration that produced it.

use crate::fixed::{Pusd, Rate};
use serde::{Deserialize, Serialize};

/// One entry of a price schedule: list prices in force from `effective_from_ms` on.
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
