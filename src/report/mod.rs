//! Documents about the benchmark for the people who list it and rely on it, written from the
//! archive: what it measures, the market it describes and how concentrated that is, where
//! the administrator exercises discretion (the benchmark statement, EU 2018/1643 art. 1), and
//! whether it is readily susceptible to manipulation (the suitability analysis: what an
//! exchange files under CFTC Part 38 Appendix C).
//!
//! Why a module of its own: a statement reads everything the oracle publishes (records,
//! notices, the panel's configuration, the methodology and suite in force) and computes
//! nothing that settles. It sits above the server, whose checked archive snapshot it reuses,
//! and below the command line.
//!
//! Every field the data can fill is filled; a field only a person can fill (who the
//! administrator is, who made an open model) is marked [`NEEDS_A_PERSON`], never invented.

pub mod chart;
pub mod doc;
pub mod statement;
pub mod suitability;

/// The mark of a field the data cannot fill.
pub const NEEDS_A_PERSON: &str = "TO BE COMPLETED BY THE ADMINISTRATOR";
