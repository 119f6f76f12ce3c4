//! SIT oracle: a Standard Inference Token benchmark and settlement-index oracle.
//!
//! Data flows one way: probe -> observation -> store -> index -> determination -> publish.
//! Modules that compute ([`fixed`], [`sit`], [`index`], [`probes`]) do no I/O, so they can be
//! tested with golden vectors and replayed by auditors.

pub mod audit;
pub mod bench;
pub mod certify;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod determine;
pub mod dialect;
pub mod error;
pub mod fixed;
pub mod index;
pub mod lane;
pub mod net;
pub mod observation;
pub mod probes;
pub mod publisher;
pub mod rng;
pub mod signing;
pub mod sim;
pub mod sit;
pub mod store;
pub mod tokenizer;
pub mod worker;
