//! SIT oracle: a Standard Inference Token benchmark and settlement-index oracle.
//!
//! Everything that computes or checks a settlement value (fixed point, SIT maths, the probe
//! suite, the index, signed documents, commitments, the settlement rule) lives in the pure
//! [`sit_core`] crate; this crate adds what talks to the world. Data flows one way:
//!
//! ```text
//! probe -> observation -> store -> determination -> publication -> settlement -> HTTP
//! ```
//!
//! The layers, lowest first. A module imports only `sit_core` and the modules of the rows above
//! its own, never one below, and modules on one row import neither way (`tests/layers.rs`
//! checks this table against the code):
//!
//! | layer | what |
//! |---|---|
//! | [`sys`] | durable writes (every fsync), the shutdown signal, clocks, CPU lanes, listening sockets |
//! | [`config`] | `providers.toml`: its raw TOML shape apart from checking it and deriving the configuration |
//! | [`prices`], [`contracts`] | list prices against the genai-prices catalogue; the listed futures (`contracts.toml`) |
//! | [`store`] | the observation log: sled, append-only, hash-chained (the only module that touches sled) |
//! | [`sim`] | the simulated market and its HTTP servers (and reading answers back out of prompts) |
//! | [`dialect`] | the SSE decoder and the four streaming dialects (their tests run against the simulator) |
//! | [`worker`] | one probe attempt, retries, pacing, connections with kernel receive stamps, the probe runner |
//! | [`determine`] | store -> index rows -> determinations |
//! | [`archive`] | everything on disk after a determination: records, settlement files, keys, vantages; `layout` names every path |
//! | [`audit`] | audit bundles (export, replay, verify) and the STCI replay over files |
//! | [`publisher`] | what happens after a day: determine, decide (policy), sign, archive, reveal, bundle, settle, restate |
//! | [`certify`] | certification runs, reports and the challenge issuer |
//! | [`oversight`] | registered parties' submissions (disputes, consultation responses, attestations, resolutions): the intake, the restatement path of an upheld dispute, consultations, `sit attest` |
//! | [`server`] | the HTTP API and page: accept loop and limits, snapshot, routes, API errors |
//! | [`report`] | documents about the benchmark for those who list and rely on it: the benchmark statement, the suitability analysis |
//! | [`network`] | the probe network over NATS JetStream: a worker's shipping, the collector |
//! | [`service`] | `sit run`: the probe loop, its schedule and status |
//! | [`hedge`] | hedge analytics and simulation (floats, never on the settlement path) |
//! | [`cli`] | the command line, one file per command family; `cli::error` maps each layer's error to an exit code |
//!
//! Each layer that can fail owns its error type, composed from the errors of the layers below
//! (`publisher::PublishError`, `publisher::day::DayError`, `network::Error`,
//! `service::Error`, ...); exit codes are decided once, in `cli::error`.

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
pub mod oversight;
pub mod prices;
pub mod publisher;
pub mod report;
pub mod server;
pub mod service;
pub mod sim;
pub mod store;
pub mod sys;
pub mod worker;
