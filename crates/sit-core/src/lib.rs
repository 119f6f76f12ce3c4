//! The SIT oracle's settlement kernel: everything that decides or checks a settlement value,
//! and nothing that talks to a network, a database or a clock.
//!
//! - [`fixed`]: integer fixed point with half-to-even rounding (prices, ratios, costs).
//! - [`time`]: UTC days and millisecond timestamps (the settlement calendar).
//! - [`price`]: list-price schedules and the versioned price book; [`sit`]: SIT size, cost and
//!   delivered SIT.
//! - [`probes`]: the tiered probe suite (families, generators, graders, suite hash);
//!   [`tokenizer`]: the reference tokenizer; [`rng`]: the seeded generator behind probes and
//!   schedules.
//! - [`observation`]: one probe attempt as recorded; [`derive`](mod@derive): its figures from
//!   recorded facts; [`batch`]: signed batches of observations from probe-network workers.
//! - [`index`]: the daily index and the Merkle root of its inputs; [`versions`]: every
//!   methodology and suite by hash.
//! - [`settlement`]: contract periods, the final settlement rule and settlement records.
//! - [`signing`], [`record`], [`certificate`]: signed documents; [`verify`] is the one entry
//!   point an exchange or auditor needs to check what the oracle signs.
//! - [`oversight`]: registered parties, their signed submissions (disputes, consultation
//!   responses, attestations, resolutions), the oracle's receipts and published outcomes.
//! - [`schedule`], [`commit`]: the probe schedule and its seed commitment.
//! - [`stci`]: the peer replay of the Standard Token Cost Index.
//!
//! The `sit` crate (worker, dialects, store, publisher, server, simulator) depends on this one;
//! never the other way.

#![warn(missing_docs)]

pub mod batch;
pub mod certificate;
pub mod commit;
pub mod derive;
pub mod fixed;
pub mod index;
pub mod keyset;
pub mod notice;
pub mod observation;
pub mod oversight;
pub mod price;
pub mod probes;
pub mod record;
pub mod rng;
pub mod schedule;
pub mod settlement;
pub mod signing;
pub mod sit;
pub mod stci;
pub mod time;
pub mod tokenizer;
pub mod verify;
pub mod versions;
