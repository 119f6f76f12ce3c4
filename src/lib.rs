//! SIT oracle: a Standard Inference Token benchmark and settlement-index oracle.
//!
//! Data flows one way: probe -> observation -> store -> index -> determination -> publish.
//! Everything that computes or checks a settlement value (fixed point, SIT maths, probe suite,
//! index, signed documents, commitments) lives in the pure [`sit_core`] crate and is
//! re-exported here under its old paths; this crate adds what talks to the world: the worker
//! and its dialects, the store, the publisher and its server, certification runs, audit
//! commands and the simulator.

pub mod archive;
pub mod audit;
pub mod certify;
pub mod cli;

pub mod config;
pub mod contracts;
pub mod determine;
pub mod dialect;
pub mod hedge;

pub mod network;
pub mod prices;
pub mod publisher;
pub mod server;
pub mod service;
pub mod sim;
pub mod store;
pub mod sys;
pub mod worker;
