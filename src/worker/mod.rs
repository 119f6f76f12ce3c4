//! The probe worker: sends one probe to one endpoint and records what happened.
//!
//! Timing is in nanoseconds on the monotonic clock from the moment the request is handed to
//! the HTTP client: response headers, first body byte, first content of any kind, first answer
//! token, every SSE event, last byte. Each received-byte instant is the kernel's receive stamp
//! of the read that delivered the bytes where the kernel gives one ([`rxstamp`]), else the
//! moment the worker noticed them; the observation records which. Every way an attempt can go wrong ends as an
//! [`Observation`] with a [`FailureClass`]; nothing a server sends can panic the worker.
//! The API key is attached to the request and scrubbed from anything recorded.

use crate::config::{ApiKey, Defaults, Endpoint};
use crate::dialect::sse::SseDecoder;
use crate::dialect::ChatRequest;
use crate::sys::clock::Clock;
use sit_core::derive::StreamState;
use sit_core::index::Methodology;
use sit_core::observation::{Evidence, Failure, FailureClass, Observation, Timings};
use sit_core::probes::{Family, Suite, Tier};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub mod conn;
pub mod pace;
pub mod post;
pub mod ratelimit;
pub mod recorder;
pub mod retry;
pub mod runner;
pub mod rxstamp;

/// Why a probe could not even be attempted (nothing was sent, nothing is recorded).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreflightError {
    #[error("endpoint `{0}` has no price in force at {1}; add a [[endpoints.prices]] entry that starts earlier")]
    NoPrice(String, String),
    #[error("endpoint `{0}` skipped: dialect `{1}` has no adapter in this build yet")]
    UnsupportedDialect(String, String),
}

use sit_core::derive::derive;

/// `hay` with every occurrence of `needle` replaced.
fn replace_bytes(hay: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(needle) {
            out.extend_from_slice(with);
            i += needle.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

/// Whether a request error means the server closed or reset the connection after the request
/// went out (hyper's "connection closed before message completed", a reset, a broken pipe),
/// as opposed to a connection that could not be made at all.
fn closed_before_headers(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if let Some(h) = s.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() || h.is_closed() || h.is_canceled() {
                return true;
            }
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(
                io.kind(),
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
            ) {
                return true;
            }
        }
        src = s.source();
    }
    false
}

/// The worker's HTTP client: hyper's pool over the worker's own connector ([`conn`]).
type HttpClient =
    hyper_util::client::legacy::Client<conn::Connector, http_body_util::Full<bytes::Bytes>>;

fn http_client(connector: conn::Connector) -> HttpClient {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_timer(hyper_util::rt::TokioTimer::new())
        .build(connector)
}

const USER_AGENT: &str = concat!("sit-oracle/", env!("CARGO_PKG_VERSION"));

/// The next data frame of a response body (trailers are skipped); `None` at the end.
async fn next_chunk(
    body: &mut hyper::body::Incoming,
) -> Result<Option<bytes::Bytes>, hyper::Error> {
    use http_body_util::BodyExt;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            return Ok(Some(data));
        }
    }
    Ok(None)
}

/// An error and its causes, `: `-joined (hyper's own message is terse: "client error
/// (Connect)"). Never holds the URL's query or the key: requests carry the key in a header.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let m = s.to_string();
        if !out.contains(&m) {
            out.push_str(": ");
            out.push_str(&m);
        }
        src = s.source();
    }
    out
}

/// Shared probe machinery: one HTTP client (connection pool), timeouts, suite, clock.
#[derive(Clone)]
pub struct Worker {
    /// Names this worker's hash chain in the store.
    id: String,
    /// The vantage point named in its records (probe network workers).
    vantage: Option<String>,
    client: HttpClient,
    connector: conn::Connector,
    defaults: Defaults,
    clock: Arc<dyn Clock>,
    suite: &'static Suite,
    methodology: Methodology,
    /// The price book version the endpoints' schedules were recorded at (stated in each
    /// observation; `None` where no book is kept).
    price_version: Option<u64>,
}

/// The worker's HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("cannot use tls_ca_file {path}: {why}\n  hint: point defaults.tls_ca_file at a PEM file of CA certificates, or remove it")]
    CaFile { path: String, why: String },
}

/// The certificates of a PEM file (a private gateway's CA).
fn read_ca_file(
    path: &std::path::Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, ClientError> {
    crate::config::read_ca_file(path).map_err(|why| ClientError::CaFile {
        path: path.display().to_string(),
        why,
    })
}

/// One probe to run.
#[derive(Debug, Clone)]
pub struct ProbeSpec {
    pub tier: Tier,
    pub family: Family,
    pub seed: u64,
    pub nonce: String,
    pub retry: u32,
}

impl Worker {
    pub fn new(
        defaults: Defaults,
        clock: Arc<dyn Clock>,
        methodology: Methodology,
    ) -> Result<Worker, ClientError> {
        let extra_roots = match &defaults.tls_ca_file {
            Some(path) => read_ca_file(path)?,
            None => Vec::new(),
        };
        let connector = conn::Connector::new(
            conn::tls_config(&extra_roots)?,
            Duration::from_millis(defaults.connect_timeout_ms),
        );
        Ok(Worker {
            id: "w1".into(),
            vantage: None,
            client: http_client(connector.clone()),
            connector,
            defaults,
            clock,
            suite: Suite::embedded(),
            methodology,
            price_version: None,
        })
    }

    /// A worker that reads its sockets without kernel receive stamps (every received-byte
    /// instant from the monotonic clock, recorded as such), with its own connection pool: the
    /// comparison `sit bench streams` measures.
    pub fn without_kernel_stamps(mut self) -> Worker {
        self.connector = self.connector.without_kernel_stamps();
        self.client = http_client(self.connector.clone());
        self
    }

    /// State the price book version this worker's schedules come from in its records.
    pub fn with_price_version(mut self, version: u64) -> Worker {
        self.price_version = Some(version);
        self
    }

    /// A probe network worker at `vantage`: its records name it, and form the chain of that
    /// name.
    pub fn at_vantage(mut self, vantage: &str) -> Worker {
        self.id = vantage.to_string();
        self.vantage = Some(vantage.to_string());
        self
    }

    /// Name this worker (its records form their own hash chain).
    pub fn with_id(mut self, id: &str) -> Worker {
        self.id = id.to_string();
        self
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// What every record of a probe of `spec` to `endpoint` at `at_ms` says before anything
    /// happened: who, what, when, and no response, answer, cost or delivery. [`Worker::probe`]
    /// fills in what the exchange produced; [`Worker::missed`] says why there was none.
    fn record_of(
        &self,
        endpoint: &Endpoint,
        spec: &ProbeSpec,
        at_ms: i64,
        sit_size: u64,
    ) -> Observation {
        Observation {
            seq: 0,
            prev_hash: String::new(),
            worker: self.id.clone(),
            endpoint: endpoint.id.clone(),
            provider: endpoint.provider.clone(),
            model: endpoint.model.clone(),
            dialect: endpoint.dialect.to_string(),
            region: endpoint.region.clone(),
            tier: spec.tier.id.clone(),
            family: spec.family.id().to_string(),
            family_version: self.suite.family_version(spec.family),
            seed: spec.seed,
            nonce: spec.nonce.clone(),
            suite_hash: self.suite.hash.clone(),
            at_ms,
            clock: self.clock.describe(),
            retry: spec.retry,
            http_status: None,
            failure: None,
            timings: Timings::default(),
            answer: String::new(),
            finish_reason: None,
            server_model: None,
            evidence: None,
            content_before_role: false,
            price_version: self.price_version,
            weights: endpoint.weights.clone(),
            vantage: self.vantage.clone(),
            origin: None,
            correct: false,
            within_sla: false,
            tokens: Default::default(),
            price: None,
            cost: sit_core::fixed::Pusd::ZERO,
            sit_size,
            delivered_sit: 0,
        }
    }

    /// The record of a scheduled probe that was never sent (its time passed while the service
    /// was down, or before it started): `why` says which. No request, no answer, no cost.
    /// `at_ms` is the time it was due, so it belongs to its day wherever it is recorded.
    pub fn missed(
        &self,
        endpoint: &Endpoint,
        spec: &ProbeSpec,
        at_ms: i64,
        why: &str,
    ) -> Observation {
        let inst = self.suite.instance(
            &spec.tier,
            spec.family,
            spec.seed,
            self.methodology.sit_w_in,
            self.methodology.sit_w_out,
        );
        Observation {
            retry: 0,
            failure: Some(sit_core::observation::Failure {
                class: sit_core::observation::FailureClass::Missed,
                detail: why.to_string(),
                retry_after_ms: None,
            }),
            ..self.record_of(endpoint, spec, at_ms, inst.sit_size)
        }
    }

    /// Run one probe against `endpoint`. Returns the observation (seq and chain fields are
    /// filled in by the store).
    pub async fn probe(
        &self,
        endpoint: &Endpoint,
        key: Option<&ApiKey>,
        spec: &ProbeSpec,
    ) -> Result<Observation, PreflightError> {
        // Generating the probe counts its tokens: CPU work, kept off the I/O threads too.
        let inst = {
            let (suite, tier, family, seed) =
                (self.suite, spec.tier.clone(), spec.family, spec.seed);
            let (w_in, w_out) = (self.methodology.sit_w_in, self.methodology.sit_w_out);
            post::run(move || suite.instance(&tier, family, seed, w_in, w_out)).await
        };
        // The suite words the request: 1.0.0 one system line with the nonce, 1.1.0 a framing
        // drawn from the seed (a retry is a distinct request: its own cache-buster).
        let text = self.suite.request(&inst, &spec.nonce, spec.retry);
        let req = ChatRequest {
            model: endpoint.model.clone(),
            system: text.system.clone().unwrap_or_default(),
            user: text.user.clone(),
            max_tokens: spec.tier.max_tokens,
        };
        let http = endpoint.dialect.build(endpoint, &req, key).ok_or_else(|| {
            PreflightError::UnsupportedDialect(endpoint.id.clone(), endpoint.dialect.to_string())
        })?;
        let at_ms = self.clock.now_ms();
        let price = endpoint.prices.in_force(at_ms).cloned().ok_or_else(|| {
            PreflightError::NoPrice(endpoint.id.clone(), sit_core::time::format_utc_ms(at_ms))
        })?;

        let mut timings = Timings::default();
        let mut st = StreamState::default();
        let mut raw = Vec::new();
        let request_body = http.body.clone();
        let (status, failure) = self
            .exchange(endpoint, http, &mut timings, &mut st, &mut raw)
            .await;
        // Grading, tokenizing, costing and compressing the evidence are CPU work: done on the
        // low-priority post-processing thread, so that the I/O threads keep reading other
        // streams on time (a first-token instant is only as accurate as the thread noticing it).
        let key_bytes = key
            .map(|k| k.expose().to_string())
            .filter(|k| !k.is_empty());
        let (tier, system, dialect) = (spec.tier.clone(), text.framing, endpoint.dialect);
        let reasoning_in_output = endpoint.reasoning_in_output;
        let (inst_c, st_c, timings_c, price_c) =
            (inst.clone(), st.clone(), timings.clone(), price.clone());
        let post = move || {
            let mut raw = raw;
            let mut st_c = st_c;
            // A provider may echo the key in an error body: evidence never keeps it.
            if let Some(k) = &key_bytes {
                let redacted = replace_bytes(
                    &raw,
                    k.as_bytes(),
                    sit_core::observation::REDACTED.as_bytes(),
                );
                if redacted != raw {
                    raw = redacted;
                    // The figures are derived from what is stored, as a replay derives them:
                    // the stream read again from the redacted bytes (regression, issue 26:
                    // the reference tokens of the echoed key were counted, and the replay
                    // of the stored, redacted text was not identical).
                    if status.is_some_and(|s| s < 300) {
                        if let Ok(replayed) = dialect.replay(&raw) {
                            st_c = replayed;
                        }
                    }
                }
            }
            let d = derive(
                &inst_c,
                &tier,
                &system,
                status,
                failure,
                &st_c,
                &timings_c,
                &price_c,
                Some(reasoning_in_output),
            );
            // An echo of the key split across stream events survives the byte-level
            // redaction above and would come back whole on re-derivation: keep no body then.
            let split_echo = key_bytes.as_ref().is_some_and(|k| {
                d.answer.contains(k.as_str())
                    && dialect
                        .replay(&raw)
                        .is_ok_and(|st| st.text.contains(k.as_str()))
            });
            let evidence = if split_echo {
                Evidence::withheld(
                    &request_body,
                    "the provider echoed the API key in text split across stream events",
                )
            } else {
                Evidence::new(&request_body, &raw)
            };
            (evidence, d)
        };
        let (evidence, d) = post::run(post).await;
        let failure = d.failure;
        let mut obs = Observation {
            http_status: status,
            failure,
            timings,
            answer: d.answer,
            finish_reason: st.finish_reason,
            server_model: st.server_model,
            evidence: Some(evidence),
            content_before_role: st.content_before_role,
            correct: d.correct,
            within_sla: d.on_time,
            tokens: d.tokens,
            price: Some(price),
            cost: d.cost,
            delivered_sit: d.delivered,
            ..self.record_of(endpoint, spec, at_ms, inst.sit_size)
        };
        // A provider may echo the key anywhere (answer, model name, finish reason, an error
        // text): no stored or printed string keeps it.
        if let Some(k) = key.map(|k| k.expose()).filter(|k| !k.is_empty()) {
            obs.redact(k);
        }
        Ok(obs)
    }

    /// Send the request and read the stream into `st`. Returns the HTTP status (if any) and a
    /// transport-level failure (if any).
    async fn exchange(
        &self,
        endpoint: &Endpoint,
        http: crate::dialect::HttpRequest,
        t: &mut Timings,
        st: &mut StreamState,
        raw: &mut Vec<u8>,
    ) -> (Option<u16>, Option<Failure>) {
        let fail = |class, detail: String| {
            Some(Failure {
                class,
                detail,
                retry_after_ms: None,
            })
        };
        let mut rb = http::Request::post(&http.url).header(http::header::USER_AGENT, USER_AGENT);
        for (k, v) in &http.headers {
            rb = rb.header(k, v);
        }
        let req = match rb.body(http_body_util::Full::new(bytes::Bytes::from(http.body))) {
            Ok(r) => r,
            Err(e) => {
                let detail = format!("cannot build the request to {}: {e}", endpoint.base_url);
                return (None, fail(FailureClass::Connect, detail));
            }
        };
        let t0 = Instant::now();
        // Received-byte instants: kernel stamps of the response's connection where it has them.
        let mut rx = rxstamp::RxTimeline::new(t0);
        let first_token_deadline = t0 + Duration::from_millis(self.defaults.first_token_timeout_ms);
        let total_deadline = t0 + Duration::from_millis(self.defaults.total_timeout_ms);
        let stall = Duration::from_millis(self.defaults.stall_timeout_ms);

        let resp =
            match tokio::time::timeout_at(first_token_deadline.into(), self.client.request(req))
                .await
            {
                Ok(Ok(r)) => r,
                Err(_) => {
                    let detail = "no response headers before the first-token timeout";
                    return (None, fail(FailureClass::TimeoutHeaders, detail.into()));
                }
                Ok(Err(e)) => {
                    let cause = error_chain(&e);
                    let (class, detail) = if e.is_connect() {
                        (
                            FailureClass::Connect,
                            format!("cannot connect to {}: {cause}", endpoint.base_url),
                        )
                    } else if closed_before_headers(&e) {
                        (
                            FailureClass::ConnectionClosed,
                            format!("the connection closed before response headers: {cause}"),
                        )
                    } else {
                        (FailureClass::Connect, format!("request failed: {cause}"))
                    };
                    return (None, fail(class, detail));
                }
            };
        if let Some(m) = resp.extensions().get::<Arc<conn::ConnMeta>>() {
            rx.attach(Some(m.rx.clone()));
            let u = m.claim(t0);
            t.warm = Some(!u.cold);
            t.connect_ns = u.connect_ns;
            t.tls_ns = u.tls_ns;
        }
        t.headers_ns = Some(rx.received().0);
        t.rx_clock = rx.source();
        let status = resp.status().as_u16();
        if status >= 300 {
            let f = self
                .error_response(endpoint, resp, stall, &mut rx, t, raw)
                .await;
            return (Some(status), Some(f));
        }

        let mut resp = resp.into_body();
        let mut dec = SseDecoder::new();
        let mut events = Vec::new();
        let mut body_bytes: u64 = 0;
        let mut last_src = None;
        loop {
            let deadline = if t.first_token_ns.is_none() {
                first_token_deadline
            } else {
                total_deadline
            };
            // past the deadline (checked before waiting, and again if the wait timed out)
            let expired = || {
                let class = if t.first_token_ns.is_none() {
                    FailureClass::TimeoutFirstToken
                } else {
                    FailureClass::TimeoutTotal
                };
                (
                    Some(status),
                    fail(class, "deadline passed while streaming".into()),
                )
            };
            let now = Instant::now();
            if now >= deadline {
                return expired();
            }
            let wait = (deadline - now).min(stall);
            let chunk = match tokio::time::timeout(wait, next_chunk(&mut resp)).await {
                Err(_) if Instant::now() >= deadline => return expired(),
                Err(_) => {
                    return (
                        Some(status),
                        fail(
                            FailureClass::Stall,
                            format!("no bytes for {} ms", stall.as_millis()),
                        ),
                    )
                }
                Ok(Err(e)) => {
                    // connection dropped mid-body: keep what we have; it is a truncated stream
                    // unless the end marker already came
                    if st.done {
                        break;
                    }
                    return (
                        Some(status),
                        fail(
                            FailureClass::Truncated,
                            format!("body read failed: {}", error_chain(&e)),
                        ),
                    );
                }
                Ok(Ok(None)) => break,
                Ok(Ok(Some(c))) => c,
            };
            let (at, src) = rx.received();
            last_src = Some(src);
            t.rx_clock = rx.source();
            t.first_byte_ns.get_or_insert(at);
            t.last_byte_ns = Some(at);
            body_bytes += chunk.len() as u64;
            if body_bytes > self.defaults.max_body_bytes {
                return (
                    Some(status),
                    fail(
                        FailureClass::BodyTooLarge,
                        format!("body over {} bytes", self.defaults.max_body_bytes),
                    ),
                );
            }
            raw.extend_from_slice(&chunk);
            events.clear();
            if dec.feed(&chunk, &mut events).is_err() {
                return (
                    Some(status),
                    fail(
                        FailureClass::InvalidUtf8,
                        "event stream is not valid UTF-8".into(),
                    ),
                );
            }
            let had_token = t.first_token_ns.is_some();
            let over = self.apply(endpoint, &events, at, t, st);
            if !had_token && t.first_token_ns.is_some() {
                t.first_token_clock = Some(src);
            }
            if over {
                // Events after the end are not applied (Dialect::replay does the same).
                return (Some(status), None);
            }
        }
        events.clear();
        if dec.finish(&mut events).is_err() {
            return (
                Some(status),
                fail(
                    FailureClass::InvalidUtf8,
                    "event stream is not valid UTF-8".into(),
                ),
            );
        }
        let end = t.last_byte_ns.unwrap_or(0);
        let had_token = t.first_token_ns.is_some();
        self.apply(endpoint, &events, end, t, st);
        if !had_token && t.first_token_ns.is_some() {
            t.first_token_clock = last_src;
        }
        (Some(status), None)
    }

    /// An HTTP error answer (status 300 and above): up to 64 KiB of its body read (into `raw`)
    /// for the provider's message, and its failure class, with any rate-limit wait it asks for.
    async fn error_response(
        &self,
        endpoint: &Endpoint,
        resp: http::Response<hyper::body::Incoming>,
        stall: Duration,
        rx: &mut rxstamp::RxTimeline,
        t: &mut Timings,
        raw: &mut Vec<u8>,
    ) -> Failure {
        let status = resp.status().as_u16();
        let hs = resp.headers();
        let retry_after_ms = ratelimit::wait_ms(
            |k| hs.get(k).and_then(|v| v.to_str().ok()),
            self.clock.now_ms(),
        );
        let mut body = Vec::new();
        let mut resp = resp.into_body();
        while let Ok(Ok(Some(c))) = tokio::time::timeout(stall, next_chunk(&mut resp)).await {
            body.extend_from_slice(&c);
            if body.len() > 64 * 1024 {
                break;
            }
        }
        t.last_byte_ns = Some(rx.received().0);
        t.rx_clock = rx.source();
        raw.extend_from_slice(&body);
        let (detail, quota) = endpoint.dialect.error_detail(&body);
        let class = match status {
            401 | 403 => FailureClass::Auth,
            402 => FailureClass::Quota,
            429 if quota => FailureClass::Quota,
            429 => FailureClass::RateLimited,
            404 => FailureClass::ModelNotFound,
            400 | 413 | 422 => FailureClass::BadRequest,
            529 => FailureClass::Overloaded,
            500..=599 => FailureClass::ServerError,
            _ => FailureClass::OtherHttp,
        };
        Failure {
            class,
            detail: format!("HTTP {status}: {detail}"),
            retry_after_ms,
        }
    }

    /// Apply decoded events; true when the stream is over (end marker or failure).
    fn apply(
        &self,
        endpoint: &Endpoint,
        events: &[crate::dialect::sse::SseEvent],
        at: u64,
        t: &mut Timings,
        st: &mut StreamState,
    ) -> bool {
        for ev in events {
            t.event_ns.push(at);
            let eff = endpoint.dialect.on_event(ev, st);
            if eff.content {
                t.first_content_ns.get_or_insert(at);
            }
            if eff.answer {
                t.first_token_ns.get_or_insert(at);
            }
            if st.failure.is_some() || st.done {
                return true;
            }
        }
        false
    }
}

/// A plausible recorded observation (benchmarks and unit tests start from it).
pub(crate) fn sample_observation() -> sit_core::observation::Observation {
    sit_core::observation::sample()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression guard (issue 13): redaction replaces exact occurrences of the key only;
    /// text sharing characters or prefixes with it is stored untouched.
    #[test]
    fn redaction_replaces_only_exact_occurrences_of_the_key() {
        let key = b"sk-abcdefghijklmnop";
        let text =
            b"sk-abc, abcdefghijklmno and sk-abcdefghijklmno: kept; sk-abcdefghijklmnop: gone";
        let out = replace_bytes(text, key, sit_core::observation::REDACTED.as_bytes());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!(
                "sk-abc, abcdefghijklmno and sk-abcdefghijklmno: kept; {}: gone",
                sit_core::observation::REDACTED
            )
        );
    }
}
