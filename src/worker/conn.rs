//! The worker's connections: opened by its own connector, so that it knows each one's phases
//! (TCP connect, TLS handshake) and can read kernel receive stamps on its socket.
//!
//! Why its own connector: a first-token instant is only as good as the moment the bytes are
//! noticed, and the kernel's receive stamp ([`super::rxstamp`]) needs the socket read with
//! `recvmsg`. Owning the connection also makes the phases plain: the connector times the TCP
//! connect (DNS included) and the TLS handshake itself, and hands both to every response that
//! comes on the connection ([`ConnMeta`], a hyper "extra").
//!
//! A connection whose connect began during this request and was never used before is **cold**
//! (this request paid for connect and TLS, and the observation carries both phases); anything
//! else is **warm** (pooled, or opened in the background by another request).

use super::rxstamp::{RxStamp, StampedTcp};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// One connection as its connector opened it (handed to every response on it).
#[derive(Debug)]
pub struct ConnMeta {
    started: Instant,
    tls_started: Option<Instant>,
    ready: Instant,
    uses: AtomicU64,
    /// The socket's kernel receive stamps.
    pub rx: Arc<RxStamp>,
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

impl ConnMeta {
    /// Classify this connection for the request sent at `t0` (counts one use).
    pub fn claim(&self, t0: Instant) -> ConnUse {
        let first = self.uses.fetch_add(1, Ordering::AcqRel) == 0;
        if !(first && self.started >= t0) {
            return ConnUse {
                cold: false,
                connect_ns: None,
                tls_ns: None,
            };
        }
        let ns = |d: Duration| d.as_nanos() as u64;
        let tcp_end = self.tls_started.unwrap_or(self.ready);
        ConnUse {
            cold: true,
            connect_ns: Some(ns(tcp_end.saturating_duration_since(self.started))),
            tls_ns: self
                .tls_started
                .map(|t| ns(self.ready.saturating_duration_since(t))),
        }
    }
}

/// The byte stream under one connection: plain TCP or TLS over TCP, both kernel-stamped.
#[allow(clippy::large_enum_variant)]
enum Stream {
    Plain(StampedTcp),
    Tls(tokio_rustls::client::TlsStream<StampedTcp>),
}

/// One connection, as hyper's client pool holds it.
pub struct Conn {
    io: TokioIo<Stream>,
    meta: Arc<ConnMeta>,
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        Connected::new().extra(self.meta.clone())
    }
}

macro_rules! both {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Stream::Plain($s) => $e,
            Stream::Tls($s) => $e,
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        both!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        both!(self, s => Pin::new(s).poll_write(cx, buf))
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        both!(self, s => Pin::new(s).poll_flush(cx))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        both!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}

impl hyper::rt::Read for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Why a connection could not be opened (hyper reports it as a connect error).
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("unsupported URL scheme `{0}` (http or https)")]
    Scheme(String),
    #[error("the URL has no host")]
    NoHost,
    #[error("`{0}` resolves to no address")]
    NoAddress(String),
    #[error("invalid TLS server name `{0}`")]
    ServerName(String),
    #[error("no connection within {0} ms")]
    Timeout(u64),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The worker's connector: DNS, TCP (no Nagle), kernel receive stamps, TLS for `https`.
#[derive(Clone)]
pub struct Connector {
    tls: tokio_rustls::TlsConnector,
    connect_timeout: Duration,
    kernel_stamps: bool,
}

impl Connector {
    pub fn new(tls: rustls::ClientConfig, connect_timeout: Duration) -> Connector {
        Connector {
            tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
            connect_timeout,
            kernel_stamps: true,
        }
    }

    /// Read sockets without kernel receive stamps (every instant from the monotonic clock):
    /// what `sit bench streams` compares against.
    pub fn without_kernel_stamps(mut self) -> Connector {
        self.kernel_stamps = false;
        self
    }

    async fn open(self, uri: http::Uri) -> Result<Conn, ConnectError> {
        let started = Instant::now();
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") | None => false,
            Some(other) => return Err(ConnectError::Scheme(other.to_string())),
        };
        let host = uri
            .host()
            .ok_or(ConnectError::NoHost)?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let timeout_ms = self.connect_timeout.as_millis() as u64;
        let deadline = tokio::time::Instant::from_std(started + self.connect_timeout);
        let open = async {
            let mut last = None;
            for addr in tokio::net::lookup_host((host.as_str(), port)).await? {
                match tokio::net::TcpStream::connect(addr).await {
                    Ok(s) => return Ok(s),
                    Err(e) => last = Some(e),
                }
            }
            Err(match last {
                Some(e) => ConnectError::Io(e),
                None => ConnectError::NoAddress(host.clone()),
            })
        };
        let tcp = tokio::time::timeout_at(deadline, open)
            .await
            .map_err(|_| ConnectError::Timeout(timeout_ms))??;
        tcp.set_nodelay(true)?;
        let tcp = StampedTcp::new(tcp, self.kernel_stamps);
        let rx = tcp.stamp();
        let (stream, tls_started) = if https {
            let tls_started = Instant::now();
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|_| ConnectError::ServerName(host.clone()))?;
            let s = tokio::time::timeout_at(deadline, self.tls.connect(name, tcp))
                .await
                .map_err(|_| ConnectError::Timeout(timeout_ms))??;
            (Stream::Tls(s), Some(tls_started))
        } else {
            (Stream::Plain(tcp), None)
        };
        Ok(Conn {
            io: TokioIo::new(stream),
            meta: Arc::new(ConnMeta {
                started,
                tls_started,
                ready: Instant::now(),
                uses: AtomicU64::new(0),
                rx,
            }),
        })
    }
}

impl tower_service::Service<http::Uri> for Connector {
    type Response = Conn;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        Box::pin(self.clone().open(uri))
    }
}

/// The ring crypto provider (built once per process).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    static P: OnceLock<Arc<rustls::crypto::CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// The worker's TLS client configuration: the Mozilla roots (webpki-roots), plus
/// `extra_roots` (a private gateway's CA), HTTP/1.1.
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

    fn meta(started: Instant, tls: Option<Instant>, ready: Instant) -> ConnMeta {
        ConnMeta {
            started,
            tls_started: tls,
            ready,
            uses: AtomicU64::new(0),
            rx: Arc::default(),
        }
    }

    #[test]
    fn first_use_of_a_connection_opened_during_the_request_is_cold_with_its_phases() {
        let t0 = Instant::now();
        let started = t0 + Duration::from_millis(1);
        let tls = started + Duration::from_millis(3);
        let ready = tls + Duration::from_millis(7);
        let m = meta(started, Some(tls), ready);
        assert_eq!(
            m.claim(t0),
            ConnUse {
                cold: true,
                connect_ns: Some(3_000_000),
                tls_ns: Some(7_000_000)
            }
        );
        // the second request on it is warm
        let u = m.claim(Instant::now());
        assert!(!u.cold && u.connect_ns.is_none() && u.tls_ns.is_none());
    }

    #[test]
    fn a_connection_opened_before_the_request_began_is_warm_and_plain_tcp_has_no_tls_phase() {
        let started = Instant::now();
        let ready = started + Duration::from_millis(2);
        // opened by another request's race before this one started: no connect cost here
        let m = meta(started, None, ready);
        assert!(!m.claim(ready + Duration::from_millis(1)).cold);
        let m = meta(ready, None, ready + Duration::from_millis(2));
        let u = m.claim(started);
        assert_eq!(
            (u.cold, u.connect_ns, u.tls_ns),
            (true, Some(2_000_000), None)
        );
    }
}
