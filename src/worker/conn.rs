//! Connection phases (TCP connect, TLS handshake) and warm/cold marking.
//!
//! reqwest does not report how a request got its connection, so the worker watches the two
//! places where that happens:
//! - a connector layer ([`TimingLayer`]) times every new connection, from the connector call
//!   to a ready connection, and files it under its socket pair (local, remote address);
//! - the TLS client's key-exchange groups are wrapped ([`tls_config`]) so that the first key
//!   share of a handshake notes the instant the TLS phase began: rustls builds it for the
//!   ClientHello, right after the TCP connection is up. The instant travels through a tokio
//!   task-local set around that connection's connect future, so concurrent handshakes never
//!   mix.
//!
//! After the response headers, the worker looks up the response's socket pair
//! ([`ConnLog::claim`]): a connection whose connect began during this request and was never
//! used is **cold** (this request paid for connect and TLS, and the observation carries both
//! phases); anything else is **warm** (pooled, or opened in the background by another request).

use hyper_util::client::legacy::connect::{Connection, HttpInfo};
use rustls::crypto::{ActiveKeyExchange, SupportedKxGroup};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

tokio::task_local! {
    /// Set around one connection attempt: where the TLS phase's start instant goes.
    static TLS_START: Arc<Mutex<Option<Instant>>>;
}

/// One connection as the connector saw it.
#[derive(Debug, Clone)]
struct ConnRecord {
    started: Instant,
    tls_started: Option<Instant>,
    ready: Instant,
    uses: u64,
    last_used: Instant,
}

/// The (local, remote) socket pair of a response's connection.
pub fn socket_pair(ext: &http::Extensions) -> Option<(SocketAddr, SocketAddr)> {
    ext.get::<HttpInfo>()
        .map(|i| (i.local_addr(), i.remote_addr()))
}

/// How one request got its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnUse {
    /// A connection opened during this request and used for the first time.
    pub cold: bool,
    /// For a cold connection: connector call to TCP connected (DNS included), ns.
    pub connect_ns: Option<u64>,
    /// For a cold TLS connection: handshake start to connection ready, ns.
    pub tls_ns: Option<u64>,
}

/// Connections opened by one worker's client, by socket pair.
#[derive(Debug, Default)]
pub struct ConnLog {
    conns: Mutex<BTreeMap<(SocketAddr, SocketAddr), ConnRecord>>,
}

/// Records not used for this long belong to connections the pool has closed (its idle timeout
/// is 30 s); they are forgotten so that the log stays small.
const FORGET_AFTER: Duration = Duration::from_secs(120);

impl ConnLog {
    fn insert(&self, key: (SocketAddr, SocketAddr), rec: ConnRecord) {
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        // Forget closed connections now and then (not on every insert: a cold round of
        // thousands of connections would rescan the whole log each time).
        if conns.len() % 1024 == 1023 {
            let now = rec.ready;
            conns.retain(|_, r| now.saturating_duration_since(r.last_used) < FORGET_AFTER);
        }
        conns.insert(key, rec);
    }

    /// Classify the connection a response came on (its socket pair, from the response's
    /// [`HttpInfo`]), for a request sent at `t0`. `None` without socket information.
    pub fn claim(&self, pair: Option<(SocketAddr, SocketAddr)>, t0: Instant) -> Option<ConnUse> {
        let pair = pair?;
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        let Some(r) = conns.get_mut(&pair) else {
            // opened before this log existed, or forgotten: certainly not opened for us
            return Some(ConnUse {
                cold: false,
                connect_ns: None,
                tls_ns: None,
            });
        };
        let cold = r.uses == 0 && r.started >= t0;
        r.uses += 1;
        r.last_used = Instant::now();
        if !cold {
            return Some(ConnUse {
                cold: false,
                connect_ns: None,
                tls_ns: None,
            });
        }
        let tcp_end = r.tls_started.unwrap_or(r.ready);
        let ns = |d: Duration| d.as_nanos() as u64;
        Some(ConnUse {
            cold: true,
            connect_ns: Some(ns(tcp_end.saturating_duration_since(r.started))),
            tls_ns: r
                .tls_started
                .map(|t| ns(r.ready.saturating_duration_since(t))),
        })
    }
}

/// The connector layer that times and files every new connection.
#[derive(Clone)]
pub struct TimingLayer {
    log: Arc<ConnLog>,
}

impl TimingLayer {
    pub fn new(log: Arc<ConnLog>) -> TimingLayer {
        TimingLayer { log }
    }
}

impl<S> tower_layer::Layer<S> for TimingLayer {
    type Service = Timing<S>;
    fn layer(&self, inner: S) -> Timing<S> {
        Timing {
            inner,
            log: self.log.clone(),
        }
    }
}

/// See [`TimingLayer`].
#[derive(Clone)]
pub struct Timing<S> {
    inner: S,
    log: Arc<ConnLog>,
}

impl<S, R> tower_service::Service<R> for Timing<S>
where
    S: tower_service::Service<R>,
    S::Response: Connection + Send + 'static,
    S::Error: Send + 'static,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let started = Instant::now();
        let fut = self.inner.call(req);
        let log = self.log.clone();
        let tls = Arc::new(Mutex::new(None));
        Box::pin(TLS_START.scope(tls.clone(), async move {
            let conn = fut.await?;
            let ready = Instant::now();
            let mut ext = http::Extensions::new();
            conn.connected().get_extras(&mut ext);
            if let Some(info) = ext.get::<HttpInfo>() {
                let tls_started = *tls.lock().unwrap_or_else(|p| p.into_inner());
                log.insert(
                    (info.local_addr(), info.remote_addr()),
                    ConnRecord {
                        started,
                        tls_started,
                        ready,
                        uses: 0,
                        last_used: ready,
                    },
                );
            }
            Ok(conn)
        }))
    }
}

/// A key-exchange group that notes when a handshake starts (see the module doc).
#[derive(Debug)]
struct TimedKx(&'static dyn SupportedKxGroup);

impl SupportedKxGroup for TimedKx {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, rustls::Error> {
        let _ = TLS_START.try_with(|t| {
            t.lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert_with(Instant::now);
        });
        self.0.start()
    }
    fn ffdhe_group(&self) -> Option<rustls::ffdhe_groups::FfdheGroup<'static>> {
        self.0.ffdhe_group()
    }
    fn name(&self) -> rustls::NamedGroup {
        self.0.name()
    }
    fn fips(&self) -> bool {
        self.0.fips()
    }
    fn usable_for_version(&self, version: rustls::ProtocolVersion) -> bool {
        self.0.usable_for_version(version)
    }
}

/// The ring provider with timed key-exchange groups (built once per process).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    static P: OnceLock<Arc<rustls::crypto::CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| {
        let mut p = rustls::crypto::ring::default_provider();
        p.kx_groups = p
            .kx_groups
            .into_iter()
            .map(|g| &*Box::leak(Box::new(TimedKx(g))) as &'static dyn SupportedKxGroup)
            .collect();
        Arc::new(p)
    })
    .clone()
}

/// The worker's TLS client configuration: the Mozilla roots (webpki-roots, as reqwest's
/// default), plus `extra_roots` (a private gateway's CA), HTTP/1.1, timed handshakes.
pub fn tls_config(
    extra_roots: &[rustls::pki_types::CertificateDer<'static>],
) -> Result<rustls::ClientConfig, rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for c in extra_roots {
        roots.add(c.clone())?;
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(local: u16) -> (SocketAddr, SocketAddr) {
        (
            SocketAddr::from(([127, 0, 0, 1], local)),
            SocketAddr::from(([127, 0, 0, 1], 443)),
        )
    }

    fn rec(started: Instant, tls: Option<Instant>, ready: Instant) -> ConnRecord {
        ConnRecord {
            started,
            tls_started: tls,
            ready,
            uses: 0,
            last_used: ready,
        }
    }

    #[test]
    fn first_use_of_a_connection_opened_during_the_request_is_cold_with_its_phases() {
        let log = ConnLog::default();
        let t0 = Instant::now();
        let started = t0 + Duration::from_millis(1);
        let tls = started + Duration::from_millis(3);
        let ready = tls + Duration::from_millis(7);
        log.insert(pair(5000), rec(started, Some(tls), ready));
        let u = log.claim(Some(pair(5000)), t0).unwrap();
        assert_eq!(
            u,
            ConnUse {
                cold: true,
                connect_ns: Some(3_000_000),
                tls_ns: Some(7_000_000)
            }
        );
        // the second request on it is warm
        let u = log.claim(Some(pair(5000)), Instant::now()).unwrap();
        assert!(!u.cold && u.connect_ns.is_none() && u.tls_ns.is_none());
    }

    #[test]
    fn a_connection_opened_before_the_request_began_is_warm_and_plain_tcp_has_no_tls_phase() {
        let log = ConnLog::default();
        let started = Instant::now();
        let ready = started + Duration::from_millis(2);
        log.insert(pair(5001), rec(started, None, ready));
        log.insert(
            pair(5002),
            rec(ready, None, ready + Duration::from_millis(2)),
        );
        // opened by another request's race before this one started: no connect cost here
        let later = ready + Duration::from_millis(1);
        assert!(!log.claim(Some(pair(5001)), later).unwrap().cold);
        let u = log.claim(Some(pair(5002)), started).unwrap();
        assert_eq!(
            (u.cold, u.connect_ns, u.tls_ns),
            (true, Some(2_000_000), None)
        );
        // unknown pair (opened before the log existed): warm; no socket info: unknown
        assert!(!log.claim(Some(pair(6000)), started).unwrap().cold);
        assert_eq!(log.claim(None, started), None);
    }
}
