//! Command-line options (clap, all in one place) and dispatch. Exit codes: 0 ok, 1 failure
//! (including a record that does not verify), 2 usage or bad input (including a bad
//! providers.toml or key file), 3 publication refused by policy (the record in force stands).
//!
//! One file per command family: `pipeline` (demo, run, sim, probe, index, suite, check,
//! prices), `publish` (keys, publish, serve, verify), `settle`, `certify` (certify,
//! verify-cert), `audit`, `hedge`, `network` (worker, collect), `observations` and
//! `bench`; `demo` runs `sit run` on the embedded simulator, `report` renders the tables
//! people read. `error` is where each layer's error becomes an exit code, and nowhere else.

mod audit;
mod bench;
mod certify;
pub mod demo;
pub mod error;
mod hedge;
mod mirror;
mod network;
mod notice;
mod observations;
mod oversight;
mod pipeline;
pub mod publish;
pub mod report;
mod settle;

use crate::cli::error::{Error, Result};
use clap::{Parser, Subcommand};
use sit_core::time::Date;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "sit",
    version,
    about = "Standard Inference Token (SIT) benchmark and settlement-index oracle"
)]
pub struct Cli {
    /// Folder of the sled store (default `sit-data`; `sit worker`: its spool, default
    /// `sit-spool`).
    #[arg(long, global = true, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Endpoints and price schedules.
    #[arg(
        long,
        global = true,
        default_value = "providers.toml",
        value_name = "FILE"
    )]
    pub providers: PathBuf,
    /// How `sit run`, `collect`, `worker` and `serve` write their log on standard error:
    /// `text` (the message alone), `full` (time, level, target, message) or `json` (one
    /// object a line). `SIT_LOG` filters (default `info`; e.g. `warn`, `sit::server=debug`).
    #[arg(
        long,
        global = true,
        default_value = "text",
        value_parser = crate::sys::log::Format::NAMES,
        env = "SIT_LOG_FORMAT",
        value_name = "FORMAT"
    )]
    pub log_format: String,
    #[command(subcommand)]
    pub command: Command,
}

/// `sit notice` subcommands.
#[derive(Subcommand, Debug)]
pub enum NoticeWhat {
    /// Write a notice draft (JSON) from flags; prints the earliest effective day its class
    /// allows if published now.
    Draft(NoticeDraft),
    /// Check a draft against the rules and every published notice, as if published now.
    Check {
        /// The draft (from `sit notice draft --out FILE`).
        file: PathBuf,
        /// The listed contracts (default: the built-in contracts.toml).
        #[arg(long, value_name = "FILE")]
        contracts: Option<PathBuf>,
    },
    /// Publish a draft: numbered, stamped with the clock's time, checked, signed, written once.
    Publish {
        /// The draft.
        file: PathBuf,
        /// The publisher's signing key (PKCS#8 PEM): for a rotation, the outgoing key.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// For a key rotation: the incoming signing key (PKCS#8 PEM), which accepts it.
        #[arg(long, value_name = "FILE")]
        accept_key: Option<PathBuf>,
        /// The listed contracts (default: the built-in contracts.toml).
        #[arg(long, value_name = "FILE")]
        contracts: Option<PathBuf>,
    },
    /// The published notices (and what is in force now).
    List {
        /// Only those not yet in force.
        #[arg(long)]
        upcoming: bool,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
}

/// What `sit notice draft` announces.
#[derive(clap::Args, Debug)]
pub struct NoticeDraft {
    /// patch (5 business days' notice), minor (30 days), major (90 days, with a
    /// consultation), emergency (the day after next; its reason is required and it is flagged).
    #[arg(long)]
    pub class: String,
    /// The UTC day it takes effect (YYYY-MM-DD): days from this one on are made under it.
    #[arg(long)]
    pub effective: String,
    /// Why (published with it).
    #[arg(long)]
    pub reason: String,
    /// A methodology version (or hash) this build knows.
    #[arg(long)]
    pub methodology: Option<String>,
    /// A probe suite version (or hash) this build knows.
    #[arg(long)]
    pub suite: Option<String>,
    /// An endpoint joins the panel: ENDPOINT=PROVIDER (repeatable).
    #[arg(long, value_name = "ENDPOINT=PROVIDER")]
    pub add: Vec<String>,
    /// An endpoint leaves the panel (repeatable).
    #[arg(long, value_name = "ENDPOINT")]
    pub remove: Vec<String>,
    /// An endpoint is grouped under another provider: ENDPOINT=PROVIDER (repeatable).
    #[arg(long, value_name = "ENDPOINT=PROVIDER")]
    pub regroup: Vec<String>,
    /// A contract of contracts.toml is listed (repeatable).
    #[arg(long, value_name = "ID")]
    pub list_contract: Vec<String>,
    /// A listed contract's terms change (repeatable).
    #[arg(long, value_name = "ID")]
    pub change_contract: Vec<String>,
    /// A contract is delisted (repeatable).
    #[arg(long, value_name = "ID")]
    pub delist: Vec<String>,
    /// The publisher's new public key (PEM or 64 hex characters): a rotation.
    #[arg(long, value_name = "PUBKEY")]
    pub rotate_to: Option<PathBuf>,
    /// The key id in force that the rotation replaces.
    #[arg(long, value_name = "KEY_ID")]
    pub rotate_from: Option<String>,
    /// Days after the rotation takes effect during which the outgoing key's signatures stay
    /// valid.
    #[arg(long, value_name = "DAYS", default_value_t = 7)]
    pub overlap_days: u32,
    /// A key id whose signatures from --void-after on are void (repeatable).
    #[arg(long, value_name = "KEY_ID")]
    pub revoke: Vec<String>,
    /// With --revoke: from when (UTC, RFC 3339, or a day YYYY-MM-DD for its start; may be in
    /// the past for a leaked key). Default: the effective time.
    #[arg(long, value_name = "TIME")]
    pub void_after: Option<String>,
    /// A tier no longer determined from the effective day on (repeatable).
    #[arg(long, value_name = "TIER")]
    pub cease: Vec<String>,
    /// A major change's consultation closes at the start of this UTC day (it opens when the
    /// notice is published).
    #[arg(long, value_name = "DATE")]
    pub consultation_closes: Option<String>,
    /// Write the draft here (default: standard output).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// A compressed clock (tests, demos): `--start DATE --hour-ms N`, or neither (the system clock).
#[derive(clap::Args, Debug, Clone)]
pub struct ClockArgs {
    /// Compressed clock (tests, demos): the simulated day the timeline starts at.
    #[arg(long, requires = "hour_ms")]
    pub start: Option<String>,
    /// Compressed clock: real milliseconds per simulated hour.
    #[arg(long, requires = "start")]
    pub hour_ms: Option<u64>,
}

impl ClockArgs {
    /// The start day, parsed.
    pub fn start(&self) -> Result<Option<Date>> {
        self.start.as_deref().map(parse_date).transpose()
    }
}

/// What `sit submit` sends.
#[derive(Subcommand, Debug)]
pub enum SubmitWhat {
    /// Dispute an observation, a determination, a certificate or a settlement record.
    Dispute {
        /// observation, determination, certificate or settlement.
        #[arg(long, value_name = "KIND")]
        about: String,
        /// The tier (a determination; optionally an observation's).
        #[arg(long)]
        tier: Option<String>,
        /// The day (an observation, a determination), YYYY-MM-DD.
        #[arg(long)]
        date: Option<String>,
        /// The observation's record hash (64 hex digits; the day's bundle lists them).
        #[arg(long, value_name = "HASH")]
        observation: Option<String>,
        /// The certificate's hash (64 hex digits).
        #[arg(long, value_name = "HASH")]
        certificate: Option<String>,
        /// The contract (a settlement record).
        #[arg(long)]
        contract: Option<String>,
        /// The contract period, YYYY-MM or YYYY-Qn (a settlement record).
        #[arg(long)]
        period: Option<String>,
        /// Why.
        #[arg(long)]
        reason: String,
        /// Evidence (text, or a URL and the file's hash).
        #[arg(long)]
        evidence: Option<String>,
        /// Let the register show the reason and evidence publicly (default: only the subject,
        /// dates and status are public).
        #[arg(long)]
        public: bool,
    },
    /// Respond to a major notice's open consultation.
    Response {
        /// The notice (N-0003).
        #[arg(long)]
        notice: String,
        /// The response.
        #[arg(long)]
        text: String,
        /// Let the outcome quote it (default: listed by party and hash only).
        #[arg(long)]
        public: bool,
    },
}

/// `sit dispute ...`
#[derive(Subcommand, Debug)]
pub enum DisputeWhat {
    /// Resolve a dispute as the administrator (a signed resolution to the oracle): an upheld
    /// dispute about a day inside its restatement window restates it.
    Resolve {
        /// The dispute's id (S-000001).
        id: String,
        /// The dispute is right.
        #[arg(
            long,
            conflicts_with = "rejected",
            required_unless_present = "rejected"
        )]
        upheld: bool,
        /// The dispute is wrong, or the value stands regardless.
        #[arg(long)]
        rejected: bool,
        /// Why (published in the outcome).
        #[arg(long)]
        reason: String,
        /// The oracle's base URL.
        #[arg(long, value_name = "URL")]
        oracle: String,
        /// The administrator's party key (Ed25519 private key, PKCS#8 PEM).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The oracle's public key, to check the receipt and the outcome against.
        #[arg(long, value_name = "KEY")]
        oracle_key: Option<PathBuf>,
    },
    /// The oracle's register of disputes.
    List {
        /// The oracle's base URL.
        #[arg(long, value_name = "URL")]
        oracle: String,
    },
}

/// `sit consultation ...`
#[derive(Subcommand, Debug)]
pub enum ConsultationWhat {
    /// Publish a major notice's consultation outcome (every response received, and the
    /// decision), signed with the oracle's key: after the consultation closes, before the
    /// change takes effect.
    Close {
        /// The notice (N-0003).
        notice: String,
        /// The decision, and how the responses were taken into account.
        #[arg(long)]
        decision: String,
        /// The oracle's signing key.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The parties file (names the responding parties).
        #[arg(long, value_name = "FILE")]
        parties: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// `sit run` on the embedded simulated market (no keys, no network) with a compressed
    /// clock: probe, publish and archive `--days` simulated days, then show the index.
    Demo {
        /// Simulated days to probe.
        #[arg(long, default_value_t = 2)]
        days: u32,
        /// First simulated day (YYYY-MM-DD); default 2026-01-05 or the day after the stored data.
        #[arg(long)]
        start: Option<String>,
        /// Real milliseconds per simulated hour.
        #[arg(long, default_value_t = 2500)]
        hour_ms: u64,
        /// The simulated market's seed (schedule seeds come from the OS, as in production).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Probes per endpoint, tier and hour.
        #[arg(long, default_value_t = 3)]
        per_hour: u32,
        /// Print `ack SEQ` on stdout as each observation becomes durable (for kill tests).
        #[arg(long, hide = true)]
        print_acks: bool,
        /// Use only the first N simulated providers (small audit bundles for tests).
        #[arg(long, hide = true)]
        market_size: Option<usize>,
    },
    /// Run the oracle: commit each day's schedule before it, probe it, publish each day by
    /// itself once it is complete, reveal the seed and write the day's audit bundle; resumes
    /// after a restart without losing or inventing a probe.
    Run {
        /// The publisher's ed25519 signing key (see `sit keys`).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Probes per endpoint, tier and hour.
        #[arg(long, default_value_t = 3)]
        per_hour: u32,
        #[command(flatten)]
        clock: ClockArgs,
        /// Stop cleanly after publishing the day before this one (YYYY-MM-DD).
        #[arg(long)]
        until: Option<String>,
        /// Serve the API and page here too, with the service's /healthz and /metrics.
        #[arg(long, value_name = "ADDR")]
        serve: Option<std::net::SocketAddr>,
        #[command(flatten)]
        limits: LimitArgs,
        /// Print `ack SEQ` on stdout as each observation becomes durable (for kill tests).
        #[arg(long, hide = true)]
        print_acks: bool,
        /// The listed futures to settle after each publication (default: the built-in copy
        /// of the repository's contracts.toml).
        #[arg(long, value_name = "FILE")]
        contracts: Option<PathBuf>,
        /// With --serve: the parties (parties.toml) whose signed submissions (disputes,
        /// consultation responses, attestations, resolutions) `POST /v1/submissions` takes.
        #[arg(long, value_name = "FILE", requires = "serve")]
        parties: Option<PathBuf>,
    },
    /// A probe network worker: probe the committed schedule of its own vantage (its own seed,
    /// revealed after each day), keep the observations in its spool (`--data`, default
    /// `sit-spool`), sign them in batches and publish them to NATS JetStream; a spooled
    /// observation is deleted only after JetStream's ack. Ctrl-C or SIGTERM: stop probing,
    /// drain, print `N acked`.
    Worker {
        /// The vantage point this worker probes from (names its chain and NATS subject).
        #[arg(long)]
        vantage: String,
        /// The worker's ed25519 signing key (`sit keys generate`); its public key goes in
        /// the collector's workers.toml.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// NATS server URL (JetStream enabled), e.g. nats://127.0.0.1:4222; a cluster's servers separated by commas.
        #[arg(long, value_name = "URL[,URL...]")]
        nats: String,
        /// Probes per endpoint, tier and hour.
        #[arg(long, default_value_t = 3)]
        per_hour: u32,
        #[command(flatten)]
        clock: ClockArgs,
        /// Stop after the day before this one is probed and revealed (YYYY-MM-DD).
        #[arg(long)]
        until: Option<String>,
        /// After a stop, keep shipping the spool for at most this many seconds.
        #[arg(long, default_value_t = 10)]
        drain_secs: u64,
        /// Serve /healthz and /metrics here.
        #[arg(long, value_name = "ADDR")]
        serve: Option<std::net::SocketAddr>,
        #[command(flatten)]
        limits: LimitArgs,
        /// Print `ack SEQ` as each observation is spooled durably (tests).
        #[arg(long, hide = true)]
        print_acks: bool,
    },
    /// The probe network's collector: consume the workers' batches from NATS JetStream,
    /// check each (registered worker, signature, chain continuity), store what passes once
    /// (refused messages become dead-letter records), acknowledge after the store's flush.
    Collect {
        /// NATS server URL (JetStream enabled); a cluster's servers separated by commas.
        #[arg(long, value_name = "URL[,URL...]")]
        nats: String,
        /// The registered workers: one [[worker]] table each with vantage, public_key, region.
        #[arg(long, value_name = "FILE")]
        workers: PathBuf,
        /// Serve /healthz and /metrics (per vantage: stored, refused, lag, spool depth).
        #[arg(long, value_name = "ADDR")]
        serve: Option<std::net::SocketAddr>,
        #[command(flatten)]
        limits: LimitArgs,
        /// Publish days too, signed with this key (`sit keys generate`): each day once it
        /// has ended and every vantage's records up to its reveal are stored.
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        #[command(flatten)]
        clock: ClockArgs,
        /// Stop after publishing the day before this one (YYYY-MM-DD); needs --key.
        #[arg(long, requires = "key")]
        until: Option<String>,
        /// Print `stored N` after each flush (kill tests).
        #[arg(long, hide = true)]
        print_acks: bool,
        /// Run as one of several collectors, named NAME: its own durable consumers (every
        /// collector stores every batch), the publication log applied to its archive, and
        /// with --key, publication while it holds the publisher lease.
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// Copies of each JetStream stream created (3 on a three-server cluster); with --name.
        #[arg(long, default_value_t = 1, value_name = "N")]
        replicas: usize,
        /// How long the publisher lease outlives its last renewal (default 10); with --name.
        #[arg(long, value_name = "SECONDS")]
        lease_secs: Option<f64>,
    },
    /// A futures contract period's final settlement value (the arithmetic mean of the month's
    /// daily values, contracts.toml): FINAL once every day is in and the final settlement time
    /// has passed (signed and archived with --key), else INDICATIVE month to date.
    Settle {
        /// The index tier.
        #[arg(long)]
        tier: String,
        /// The contract month (YYYY-MM); a quarterly contract takes any month of its quarter.
        #[arg(long)]
        month: String,
        /// The contract id (default: the tier's monthly contract).
        #[arg(long)]
        contract: Option<String>,
        /// The listed contracts.
        #[arg(long, default_value = "contracts.toml", value_name = "FILE")]
        contracts: PathBuf,
        /// Sign and archive a FINAL value with this key (refused before the month is final).
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
    },
    /// Mirror the data folder's publication archive and audit bundles to S3-compatible object
    /// storage: content-addressed, create-only (If-None-Match: *), retried until acknowledged.
    /// The endpoint and credentials come from the environment (AWS_ENDPOINT_URL,
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ALLOW_HTTP).
    Mirror {
        /// Where: s3://BUCKET or s3://BUCKET/PREFIX.
        #[arg(long, value_name = "S3_URL")]
        to: String,
        /// Look for new files this often (seconds, 1-3600).
        #[arg(long, default_value_t = 10, value_name = "SECS")]
        every: u64,
        /// One pass, then exit (0 when everything is acknowledged).
        #[arg(long)]
        once: bool,
        /// Instead: write the mirror's latest snapshot into this folder (a new or empty one),
        /// each file checked against its content address.
        #[arg(long, value_name = "DIR", conflicts_with_all = ["every", "once"])]
        restore: Option<PathBuf>,
    },
    /// Hedge analytics (floats, not settlement): how well the tier's futures would have hedged
    /// your own cost per unit of work (minimum-variance ratio h*, Ederington effectiveness,
    /// basis, rolling h* and R², SVG chart); `sit hedge simulate` runs the paper's scenario.
    Hedge {
        #[command(subcommand)]
        what: Option<HedgeWhat>,
        #[command(flatten)]
        args: HedgeArgs,
    },
    /// Serve the simulated market on loopback and print a providers.toml for it.
    Sim {
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Stop after this many seconds (default: run until Ctrl-C).
        #[arg(long)]
        for_secs: Option<u64>,
        /// Serve only the streams benchmark's provider with this first-token delay, logging
        /// served answers at /sim/served (used by `sit bench streams --separate-process`).
        #[arg(long, hide = true)]
        bench_ttft_ms: Option<u64>,
        #[arg(long, hide = true, default_value_t = 0)]
        bench_jitter_permille: u32,
    },
    /// Print determinations computed from the store.
    Index {
        /// Only this day (YYYY-MM-DD).
        #[arg(long)]
        date: Option<String>,
        /// Only this tier.
        #[arg(long)]
        tier: Option<String>,
        /// One JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// List stored observations: a table, or JSON lines (`--json`, evidence left out unless
    /// `--evidence`).
    Observations {
        /// Only attempts sent on this day (YYYY-MM-DD, UTC).
        #[arg(long)]
        date: Option<String>,
        /// Only this endpoint.
        #[arg(long, value_name = "ID")]
        endpoint: Option<String>,
        /// Only this tier.
        #[arg(long)]
        tier: Option<String>,
        /// Only failed attempts (any failure class, missed probes included).
        #[arg(long)]
        failed: bool,
        /// One JSON object per line: each stored record as it is stored.
        #[arg(long)]
        json: bool,
        /// With `--json`: keep the raw evidence (request sent, response bytes).
        #[arg(long, requires = "json")]
        evidence: bool,
    },
    /// Probe configured endpoints now and store the observations.
    Probe {
        /// Endpoint id from the providers file.
        #[arg(long, conflicts_with = "all", required_unless_present = "all")]
        endpoint: Option<String>,
        /// Every endpoint whose key is available.
        #[arg(long)]
        all: bool,
        /// Rounds of one probe per tier family.
        #[arg(long, default_value_t = 1)]
        rounds: u32,
        /// Only this tier.
        #[arg(long)]
        tier: Option<String>,
        /// Summary as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Show the probe suite: tiers, families, SLAs and the suite hash.
    Suite {
        #[arg(long)]
        json: bool,
    },
    /// Check the providers file and exit.
    Check,
    /// The providers file's list prices against a public catalogue (genai-prices, exported by
    /// scripts/export-genai-prices.py).
    Prices {
        #[command(subcommand)]
        what: PricesWhat,
    },
    /// Announced, effective-dated changes (methodology, suite, panel, contracts, keys,
    /// cessation): draft, check, publish (signed, at the clock's time) and list.
    Notice {
        #[command(subcommand)]
        what: NoticeWhat,
    },
    /// Signing keys for the publisher (and certificates).
    Keys {
        #[command(subcommand)]
        what: KeysWhat,
    },
    /// Compute, sign and archive the determination of a day (write-once; restatements only
    /// within policy).
    Publish {
        /// The UTC day to publish (YYYY-MM-DD); it must have ended.
        #[arg(long)]
        date: String,
        /// Only this tier (default: every tier).
        #[arg(long)]
        tier: Option<String>,
        /// The Ed25519 private key (PKCS#8 PEM, mode 0600) from `sit keys generate`.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Publish a day with no stored observations as CONTINGENCY (a full outage).
        #[arg(long)]
        allow_empty: bool,
    },
    /// Serve the published determinations over HTTP (read-only), with a human page at `/`.
    Serve {
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: std::net::SocketAddr,
        #[command(flatten)]
        limits: LimitArgs,
        /// The oracle's signing key: enables certification challenges
        /// (`POST /v1/certify/challenge`, a request signed by the certifier's key), each
        /// recorded before it is issued.
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// With --key: the parties (parties.toml) whose signed submissions `POST
        /// /v1/submissions` takes. This server has no store, so it cannot uphold a dispute
        /// about a day (the publishing `sit run --serve --parties` does).
        #[arg(long, value_name = "FILE", requires = "key")]
        parties: Option<PathBuf>,
    },
    /// Check a signed record (a file, or an http:// URL) against a public key, offline.
    Verify {
        /// A record file, a history document, or a URL serving one.
        #[arg(value_name = "RECORD")]
        source: String,
        /// The publisher's root public key (PEM, or 64 hex characters), obtained out of band:
        /// the key its genesis notice N-0000 names. Without --archive only it is trusted.
        #[arg(long, value_name = "PUBKEY")]
        key: PathBuf,
        /// The oracle's archive (a data folder, its published/ folder, the publisher's base
        /// URL, or its mirror s3://BUCKET/PREFIX with the endpoint and credentials in AWS_*
        /// variables): the key set is followed from --key through its notices (rotations,
        /// revocations); for a settlement record, each day it lists is checked against the
        /// oracle's daily records.
        #[arg(long, value_name = "DATA|URL|S3_URL")]
        archive: Option<String>,
    },
    /// As a registered party, send the oracle a signed submission (a dispute, or a response
    /// to a major notice's consultation) and print its signed receipt.
    Submit {
        /// The oracle's base URL, e.g. http://127.0.0.1:8080.
        #[arg(long, value_name = "URL")]
        oracle: String,
        /// Your party key (Ed25519 private key, PKCS#8 PEM, from `sit keys generate`), the one
        /// the oracle's parties.toml registers.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The oracle's public key (PEM file or 64 hex digits), obtained out of band: the
        /// receipt's signature is checked against it.
        #[arg(long, value_name = "KEY")]
        oracle_key: Option<PathBuf>,
        #[command(subcommand)]
        what: SubmitWhat,
    },
    /// Disputes: the administrator's resolution (signed), and the register.
    Dispute {
        #[command(subcommand)]
        what: DisputeWhat,
    },
    /// Consultations on major notices: publish a consultation's outcome.
    Consultation {
        #[command(subcommand)]
        what: ConsultationWhat,
    },
    /// An auditor's independent process: fetch each published day's audit bundle from the
    /// oracle, verify and replay it with no store, and submit a signed attestation per record.
    Attest {
        /// The oracle's base URL, e.g. http://127.0.0.1:8080.
        #[arg(long, value_name = "URL")]
        oracle: String,
        /// The auditor's party key (Ed25519 private key, PKCS#8 PEM), registered as an auditor.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Only days from this one (YYYY-MM-DD).
        #[arg(long)]
        since: Option<String>,
        /// Keep going: attest each newly published (or restated) day as its bundle appears.
        #[arg(long)]
        follow: bool,
        /// With --follow, how often to look for new bundles, in milliseconds.
        #[arg(long, default_value_t = 5000, value_name = "MS")]
        every_ms: u64,
    },
    /// Run the tier suite against an endpoint and issue a signed certificate of what it meets.
    Certify {
        /// Endpoint id from the providers file.
        #[arg(
            long,
            conflicts_with = "base_url",
            required_unless_present = "base_url"
        )]
        endpoint: Option<String>,
        /// Or an endpoint given directly: its base URL (with --dialect and --model).
        #[arg(long, requires_all = ["dialect", "model"])]
        base_url: Option<String>,
        /// openai, openai-responses, anthropic or gemini (with --base-url).
        #[arg(long)]
        dialect: Option<String>,
        /// Model name to request (with --base-url).
        #[arg(long)]
        model: Option<String>,
        /// Environment variable holding the API key (with --base-url).
        #[arg(long, value_name = "VAR")]
        api_key_env: Option<String>,
        /// The endpoint's id in the certificate and reports (with --base-url): 1-64 lower-case
        /// letters, digits, '.', '_' or '-'.
        #[arg(
            long,
            value_name = "ID",
            default_value = "direct",
            conflicts_with = "endpoint"
        )]
        name: String,
        /// t1, t2, t3 or all.
        #[arg(long, default_value = "all")]
        tier: String,
        /// Attempts per tier. 100 lets a 95% pass rate show a lower bound of about 0.89.
        #[arg(long, default_value_t = 100)]
        attempts: u32,
        /// The certifier's Ed25519 private key (from `sit keys generate`).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Certificate file; the reports go beside it (.md, .html).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Master seed of the probes (default: fresh from the system's randomness). The
        /// certificate then says `self-seeded`.
        #[arg(long, conflicts_with = "challenge")]
        seed: Option<u64>,
        /// Take the seed from a challenge drawn from the oracle at this URL (e.g.
        /// http://127.0.0.1:8080): the oracle records it, the certificate embeds it.
        #[arg(long, value_name = "URL")]
        challenge: Option<String>,
        /// Concurrent attempts (default: the endpoint's concurrency).
        #[arg(long)]
        concurrency: Option<u32>,
    },
    /// Check a certificate: signature, probe-suite hash and that the verdicts follow from the
    /// figures.
    VerifyCert {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The certifier's public key (PEM, or 64 hex characters).
        #[arg(long, value_name = "PUBKEY")]
        key: PathBuf,
        /// The oracle's public key (PEM, or 64 hex characters): checks the certificate's
        /// challenge.
        #[arg(long, value_name = "PUBKEY")]
        oracle_key: Option<PathBuf>,
        /// The oracle's URL: also shows how many challenges the certifier's key drew.
        #[arg(long, value_name = "URL")]
        oracle: Option<String>,
    },
    /// Auditors' tools.
    Audit {
        #[command(subcommand)]
        what: AuditWhat,
    },
    /// Documents about the benchmark, from the archive of the data folder.
    Report {
        #[command(subcommand)]
        what: ReportWhat,
    },
    /// Performance benchmarks (results go to BENCHMARKS.md by hand, with the command).
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
}

/// `sit report` subcommands.
#[derive(Subcommand, Debug)]
pub enum ReportWhat {
    /// The benchmark statement (EU 2018/1643 art. 1): what each tier measures, the market its
    /// panel describes and its concentration, the input data, each point of discretion and
    /// who exercises it, insufficient data, changes, cessation and the notices in force.
    /// Fields only a person can fill are marked, never invented. Reads `--providers` for the
    /// panel's regions, models and price sources.
    Statement {
        /// The date it speaks as of (default: the latest day published): records and notices
        /// published by the end of that day.
        #[arg(long, value_name = "DATE")]
        as_of: Option<String>,
        /// `md`, `html`, or `json` (the figures behind it).
        #[arg(long, default_value = "md", value_parser = ["md", "html", "json"])]
        format: String,
    },
    /// The suitability analysis (CFTC Part 38 Appendix C): per tier, daily counts,
    /// concentration and price sources, dispersion, leave-one-out and leave-one-provider-out,
    /// each provider's influence by recomputation (the largest move its own prices can cause,
    /// the change it needs to move a value by a contract tick and by 1%), CONTINGENCY,
    /// SUSPENDED and restatement frequency, the index against a plain list-price average, the
    /// signed intervals' widths, each probe family's difficulty and band, every figure
    /// against the methodology's thresholds (section 12). Reads each day's audit bundle.
    Suitability {
        /// The first day (default: 29 days before --to, or the first day published if later).
        #[arg(long, value_name = "DATE")]
        from: Option<String>,
        /// The last day (default: the latest day published).
        #[arg(long, value_name = "DATE")]
        to: Option<String>,
        /// `md`, `html` (charts inline), or `json` (the figures).
        #[arg(long, default_value = "md", value_parser = ["md", "html", "json"])]
        format: String,
        /// Also write suitability.md, .html, .json and the charts (SVG) to this folder.
        #[arg(long, value_name = "DIR")]
        out: Option<std::path::PathBuf>,
    },
}

/// `sit audit` subcommands.
#[derive(Subcommand, Debug)]
pub enum AuditWhat {
    /// Write a self-contained bundle of one day: observations with raw evidence, prices, suite,
    /// methodology, seed commitment and reveal, published determinations, keys, manifest.
    Export {
        #[arg(long)]
        date: String,
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Re-grade, re-count, re-cost and recompute every determination of a bundle (no store).
    Replay {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        #[arg(long)]
        json: bool,
        /// The publisher's root public key (PEM or 64 hex digits, obtained out of band):
        /// signatures are checked against the key set followed from it through the bundle's
        /// notices, not against the keys the bundle carries.
        #[arg(long, value_name = "PUBKEY")]
        key: Option<PathBuf>,
    },
    /// Check a bundle: manifest, hash chain, Merkle roots, seed commitment, signatures, and
    /// with --key the versions and key in force.
    Verify {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// The publisher's root public key (PEM or 64 hex digits, obtained out of band):
        /// signatures are checked against the key set followed from it through the bundle's
        /// notices, not against the keys the bundle carries.
        #[arg(long, value_name = "PUBKEY")]
        key: Option<PathBuf>,
    },
    /// Reproduce the Standard Token Cost Index from its price tape, exactly, and compare with
    /// what it published.
    Stci {
        /// Folder of YYYY-MM-DD.jsonl price observations.
        #[arg(long, value_name = "DIR")]
        observations: PathBuf,
        /// STCI's methodology.yaml.
        #[arg(long, value_name = "FILE")]
        methodology: PathBuf,
        /// Folder of published YYYY-MM-DD.json index files to compare with.
        #[arg(long, value_name = "DIR")]
        published: Option<PathBuf>,
        /// One JSON document: one object per day and index.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum PricesWhat {
    /// List the store's price book: every version of every endpoint's prices, with when it
    /// was recorded and its source (methodology 1.4.0 costs each day from it).
    Book {
        /// Only this endpoint's entries.
        #[arg(long, value_name = "ID")]
        endpoint: Option<String>,
    },
    /// Compare each endpoint's price in force now with the catalogue's.
    Diff {
        #[arg(value_name = "CATALOGUE", default_value = "prices/genai-prices.json")]
        catalogue: PathBuf,
    },
    /// Print `[[endpoints.prices]]` entries that bring each differing endpoint to the
    /// catalogue's price (append each under its endpoint; nothing is written).
    Import {
        #[arg(value_name = "CATALOGUE", default_value = "prices/genai-prices.json")]
        catalogue: PathBuf,
        /// When the new prices take effect (RFC 3339 UTC; default: the start of today, UTC).
        #[arg(long, value_name = "TIME")]
        effective_from: Option<String>,
    },
}

/// `sit hedge` on your own costs.
#[derive(clap::Args, Debug, Clone)]
pub struct HedgeArgs {
    /// Your costs: CSV with columns date,cost,units, one row per day (YYYY-MM-DD) or per month
    /// (YYYY-MM).
    #[arg(long, value_name = "FILE.csv")]
    pub costs: Option<PathBuf>,
    /// The index tier to hedge with.
    #[arg(long)]
    pub tier: Option<String>,
    /// The index history as CSV (date and value columns, e.g. /v1/index/{tier}.csv) instead
    /// of the archive in --data.
    #[arg(long, value_name = "FILE.csv")]
    pub index: Option<PathBuf>,
    /// Changes per window of the rolling h* and R² (default 30 for daily costs, 12 monthly).
    #[arg(long)]
    pub window: Option<usize>,
    /// Write the chart here.
    #[arg(long, value_name = "FILE.svg", default_value = "hedge.svg")]
    pub svg: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `sit hedge` subcommands.
#[derive(Subcommand, Debug, Clone)]
pub enum HedgeWhat {
    /// Monte Carlo of the paper's demand-explosion scenario (mean-reverting jump-diffusion
    /// spot price, a buyer's exploding monthly volume, monthly futures hedged with h*): the
    /// volatility reduction with its 95% interval, against the paper's 62-78%; a fan chart.
    Simulate {
        /// Monte Carlo paths (half estimate h*, half evaluate it).
        #[arg(long, default_value_t = 10_000)]
        paths: usize,
        #[arg(long, default_value_t = 20260101)]
        seed: u64,
        /// A scenario file (default: the built-in scenarios/demand-explosion.toml).
        #[arg(long, value_name = "FILE")]
        scenario: Option<PathBuf>,
        /// Write the fan chart and cost distributions here.
        #[arg(long, value_name = "FILE.svg", default_value = "hedge-simulate.svg")]
        svg: PathBuf,
        /// Print the outcome as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeysWhat {
    /// Write a new Ed25519 key pair: signing-key.pem (PKCS#8, mode 0600) and public-key.pem.
    Generate {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum BenchWhat {
    /// Candidate index methods on a simulated market with a known true price: leave-one-out,
    /// panel-change jumps, tracking of the true factor.
    Stability {
        #[arg(long, default_value_t = 90)]
        days: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 16)]
        endpoints: usize,
        #[arg(long)]
        json: bool,
        /// How probes are drawn: one kind of work (`uniform`, the earlier model), four
        /// families per endpoint (`independent`) or the same families for every endpoint in an
        /// hour (`paired`).
        #[arg(long, value_enum, default_value = "uniform")]
        schedule: crate::cli::bench::stability::Schedule,
    },
    /// Compute one day for 3 tiers from synthetic observations.
    Index {
        #[arg(long, default_value_t = 1_000_000)]
        observations: usize,
        #[arg(long, default_value_t = 40)]
        endpoints: u32,
        #[arg(long, default_value_t = 5)]
        repeats: u32,
    },
    /// Recompute archived days (3 tiers each) from index rows, carrying CONTINGENCY values.
    Recompute {
        #[arg(long, default_value_t = 30)]
        days: u32,
        #[arg(long, default_value_t = 300_000)]
        observations: usize,
        #[arg(long, default_value_t = 40)]
        endpoints: u32,
    },
    /// The service's own CPU per 1,000 probes: one compressed day of `sit run` against the
    /// simulator in a separate process (measured apart).
    Run {
        #[arg(long, default_value_t = 2500)]
        hour_ms: u64,
        #[arg(long, default_value_t = 3)]
        per_hour: u32,
    },
    /// Re-derive every observation of an audit bundle from its raw evidence.
    Rederive {
        #[arg(long, value_name = "DIR")]
        bundle: PathBuf,
        #[arg(long, default_value_t = 5)]
        repeats: u32,
    },
    /// The probe network's data path against a real nats-server (started here; needs
    /// `nats-server` on PATH): collector ingest from JetStream into sled with flush before
    /// ack, and end-to-end latency from a worker's record to the collector's ack.
    Collect {
        /// Observations published first, then ingested.
        #[arg(long, default_value_t = 200_000)]
        observations: usize,
        /// Observations per second for the latency run.
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        /// Seconds of the latency run.
        #[arg(long, default_value_t = 10)]
        secs: u64,
    },
    /// Concurrent streams against the simulator: completion and time-to-first-token error.
    Streams {
        #[arg(long, default_value_t = 1000)]
        streams: usize,
        /// Median injected first-token delay, ms.
        #[arg(long, default_value_t = 1000)]
        ttft_ms: u64,
        /// Spread of the injected delays (lognormal sigma x 1000; 0: every stream's first token
        /// is due at the same instant, the worst burst).
        #[arg(long, default_value_t = 0)]
        jitter_permille: u32,
        /// Spread the stream starts evenly over this many ms (0: all at once, the worst burst).
        #[arg(long, default_value_t = 1000)]
        ramp_ms: u64,
        /// Run the simulator as a child process instead of in this one.
        #[arg(long)]
        separate_process: bool,
    },
    /// Client CPU per SSE event (decoder + adapter).
    Events {
        #[arg(long, default_value_t = 10_000)]
        events: usize,
        #[arg(long, default_value_t = 20)]
        repeats: u32,
    },
    /// Read latency with and without a flood of submissions from one party, and accepted
    /// submissions' throughput (each fsynced before its receipt).
    Submissions {
        /// Seconds per phase.
        #[arg(long, default_value_t = 5)]
        secs: u64,
        /// Concurrent readers.
        #[arg(long, default_value_t = 8)]
        readers: usize,
        /// Registered parties (the accepted phase submits each one's share of a minute).
        #[arg(long, default_value_t = 11)]
        parties: usize,
    },
    /// Append observations to a fresh sled store.
    Ingest {
        #[arg(long, default_value_t = 200_000)]
        observations: usize,
        #[arg(long, default_value_t = 1000)]
        batch: usize,
    },
}

/// Connection limits of the HTTP server (`sit serve`, `sit run --serve`).
#[derive(clap::Args, Debug, Clone)]
pub struct LimitArgs {
    /// Most connections open at once; at the cap the one idle longest is closed to make room.
    #[arg(long, default_value_t = 1024)]
    pub max_connections: usize,
    /// A request's head must arrive within this many ms of its first byte.
    #[arg(long, default_value_t = 10_000)]
    pub header_timeout_ms: u64,
    /// A connection with no request in progress is closed after this many ms.
    #[arg(long, default_value_t = 30_000)]
    pub idle_timeout_ms: u64,
}

impl LimitArgs {
    pub fn limits(&self) -> Result<crate::server::listen::Limits> {
        if self.max_connections == 0 || self.header_timeout_ms == 0 || self.idle_timeout_ms == 0 {
            return Err(Error::Usage(
                "--max-connections, --header-timeout-ms and --idle-timeout-ms must be at least 1"
                    .into(),
            ));
        }
        Ok(crate::server::listen::Limits {
            max_connections: self.max_connections,
            header_timeout: std::time::Duration::from_millis(self.header_timeout_ms),
            idle_timeout: std::time::Duration::from_millis(self.idle_timeout_ms),
            ..Default::default()
        })
    }
}

/// The global paths.
pub struct Paths {
    pub data: PathBuf,
    pub providers: PathBuf,
}

fn parse_date(s: &str) -> Result<Date> {
    Date::parse(s).map_err(|e| Error::Usage(e.to_string()))
}

/// A `--tier` that the current suite knows, else a usage error naming the tiers.
fn check_tier(tier: Option<&str>) -> Result<()> {
    let suite = sit_core::probes::Suite::embedded();
    match tier {
        Some(t) if suite.tier(t).is_none() => Err(Error::Usage(format!(
            "unknown tier `{t}`; tiers are {}",
            suite.tier_ids().join(", ")
        ))),
        _ => Ok(()),
    }
}

/// The store folder, which a read-only command needs to exist.
fn existing_store(data: &std::path::Path) -> Result<()> {
    if data.exists() {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "no store at {}; run `sit demo` first or pass --data DIR",
            data.display()
        )))
    }
}

/// Entry point used by `main`: parse, run, print errors, return the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    if !matches!(
        cli.command,
        Command::Run { .. }
            | Command::Serve { .. }
            | Command::Collect { .. }
            | Command::Worker { .. }
            | Command::Demo { .. }
            | Command::Sim { .. }
    ) {
        crate::sys::shutdown::end_quietly_on_a_closed_pipe();
    }
    let format = crate::sys::log::Format::parse(&cli.log_format).unwrap_or_default();
    if let Err(e) = crate::sys::log::init(format) {
        eprintln!("error: {e}");
        return 2;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

/// Run a parsed command.
pub async fn run(cli: Cli) -> Result<()> {
    let Cli {
        data,
        providers,
        command,
        ..
    } = cli;
    let data = data.unwrap_or_else(|| {
        PathBuf::from(match command {
            Command::Worker { .. } => "sit-spool",
            _ => "sit-data",
        })
    });
    let paths = Paths { data, providers };
    match command {
        c @ (Command::Demo { .. }
        | Command::Run { .. }
        | Command::Sim { .. }
        | Command::Index { .. }
        | Command::Probe { .. }
        | Command::Suite { .. }
        | Command::Prices { .. }
        | Command::Check) => pipeline::run(&paths, c).await,
        c @ (Command::Keys { .. }
        | Command::Publish { .. }
        | Command::Serve { .. }
        | Command::Verify { .. }) => publish::run(&paths, c).await,
        c @ (Command::Certify { .. } | Command::VerifyCert { .. }) => certify::run(&paths, c).await,
        c @ Command::Audit { .. } => audit::run(&paths, c).await,
        Command::Report { what } => report::run(&paths, what),
        c @ Command::Observations { .. } => observations::run(&paths, c),
        c @ (Command::Worker { .. } | Command::Collect { .. }) => network::run(&paths, c).await,
        c @ Command::Settle { .. } => settle::run(&paths, c),
        c @ Command::Mirror { .. } => mirror::run(&paths, c).await,
        c @ Command::Notice { .. } => notice::run(&paths, c),
        c @ (Command::Submit { .. }
        | Command::Dispute { .. }
        | Command::Consultation { .. }
        | Command::Attest { .. }) => oversight::run(&paths, c).await,
        Command::Hedge { what, args } => hedge::run(&paths, what, args),
        Command::Bench { what } => bench::run(what).await,
    }
}
