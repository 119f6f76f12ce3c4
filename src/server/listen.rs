//! The publisher's HTTP/1.1 connections, with the limits that keep slow, idle or hostile
//! clients from holding the server away from everyone else.
//!
//! Why our own accept loop instead of `axum::serve`: that one reads headers for as long as a
//! client cares to send them, keeps idle connections forever and accepts until the process
//! runs out of file descriptors; and errors found before routing (a request line too long,
//! too many headers, a malformed request line) go out with empty bodies. Here:
//! - **header timeout**: a request's head must arrive within `header_timeout` of its first
//!   byte (slowloris);
//! - **idle timeout**: a connection with no request in progress is closed after
//!   `idle_timeout` (from its accept or its last response);
//! - **connection cap**: at `max_connections`, the connection idle longest (or slowest to send
//!   its head) is closed to make room, so a new client is served while the cap holds; if
//!   every connection is busy the newcomer gets a 503;
//! - **head limits** checked on the bytes as they arrive, before the HTTP parser sees them:
//!   a request line over `max_request_line` bytes is answered 414, a head over
//!   `max_header_bytes` or with more than `max_headers` fields 431, a request line that is not
//!   `METHOD target HTTP/1.x` 400, a header with a control character (NUL) or a Content-Length
//!   that is not a number (or two that differ) 400, a Content-Length over `max_body_bytes`
//!   413 — each with the API's JSON error body (the HTTP parser would answer these with an
//!   empty one);
//! - **refusals that arrive**: after such an answer the write side is shut and what the client
//!   still sends is read and dropped (up to 2 s and 16 MiB) before the socket closes: closing
//!   with unread bytes resets the connection, and a client still sending a 1 MB URL saw the
//!   reset instead of its 414.
//!
//! The connection cap is kept below the process's open-file limit by the server
//! ([`super::Capacity`]), which first raises the soft limit to the hard one.

use axum::Router;
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// Connection limits of `sit serve` and `sit run --serve`.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_request_line: usize,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    /// The largest request body accepted (a Content-Length above it is answered 413).
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_request_line: 8 * 1024,
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            max_body_bytes: 64 * 1024,
        }
    }
}

const IDLE: u8 = 0;
const HEAD: u8 = 1;
const BUSY: u8 = 2;

/// What one connection is doing, and since when (ms since the server started).
struct ConnState {
    phase: AtomicU8,
    since_ms: AtomicU64,
    epoch: Instant,
}

impl ConnState {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
    fn set(&self, phase: u8) {
        self.since_ms.store(self.now(), Ordering::Relaxed);
        self.phase.store(phase, Ordering::Relaxed);
    }
}

struct Entry {
    state: Arc<ConnState>,
    abort: tokio::task::AbortHandle,
}

type Registry = Arc<Mutex<BTreeMap<u64, Entry>>>;

fn lock(r: &Registry) -> std::sync::MutexGuard<'_, BTreeMap<u64, Entry>> {
    r.lock().unwrap_or_else(|p| p.into_inner())
}

/// A JSON error response in the API's documented shape, then the connection closes.
fn error_response(status: u16, reason: &str, code: &str, message: &str, hint: &str) -> Vec<u8> {
    let body = serde_json::json!({
        "error": {"status": status, "code": code, "message": message, "hint": hint}
    })
    .to_string();
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Scans a request head as its bytes arrive (state between reads).
#[derive(Default)]
struct HeadScan {
    /// Bytes of the current head seen so far, and of its current line.
    head_bytes: usize,
    line_bytes: usize,
    lines: usize,
    /// The first line, kept until it ends (to check its shape).
    first_line: Vec<u8>,
    /// The current header line (bounded by the head limits), checked when it ends.
    header_line: Vec<u8>,
    /// A Content-Length seen in this head (to refuse a second, different one).
    content_length: Option<u64>,
    /// The last bytes seen, to find the blank line across reads.
    tail: u32,
    /// The head ended; bytes after it belong to the request (or the next one).
    done: bool,
}

impl HeadScan {
    /// Feed bytes; Err with the response to send when a limit is crossed.
    fn feed(&mut self, bytes: &[u8], l: &Limits) -> Result<(), Vec<u8>> {
        for &b in bytes {
            if self.done {
                return Ok(());
            }
            self.head_bytes += 1;
            self.tail = (self.tail << 8) | b as u32;
            if self.lines == 0 {
                if b != b'\n' {
                    self.first_line.push(b);
                }
                if self.first_line.len() > l.max_request_line {
                    return Err(error_response(
                        414,
                        "URI Too Long",
                        "uri_too_long",
                        &format!(
                            "the request line is longer than {} bytes",
                            l.max_request_line
                        ),
                        "the API's paths and queries are short; see /v1/openapi.json",
                    ));
                }
            }
            if self.lines > 0 && b != b'\n' {
                self.header_line.push(b);
            }
            if b == b'\n' {
                if self.lines > 0 {
                    let line = std::mem::take(&mut self.header_line);
                    self.check_header(&line, l)?;
                }
                if self.lines == 0 && !request_line_ok(&self.first_line) {
                    return Err(error_response(
                        400,
                        "Bad Request",
                        "bad_request",
                        "the request line is not `METHOD target HTTP/1.x`",
                        "send an HTTP/1.1 request, e.g. GET /v1/index/t1/latest HTTP/1.1",
                    ));
                }
                self.lines += 1;
                self.line_bytes = 0;
                if self.tail == 0x0d0a_0d0a || self.tail & 0xffff == 0x0a0a {
                    self.done = true;
                    continue;
                }
                if self.lines > l.max_headers + 1 {
                    return Err(error_response(
                        431,
                        "Request Header Fields Too Large",
                        "headers_too_large",
                        &format!("more than {} header fields", l.max_headers),
                        "send only the headers the request needs",
                    ));
                }
            } else {
                self.line_bytes += 1;
            }
            if self.head_bytes > l.max_header_bytes + l.max_request_line {
                return Err(error_response(
                    431,
                    "Request Header Fields Too Large",
                    "headers_too_large",
                    &format!(
                        "the request head is larger than {} bytes",
                        l.max_header_bytes
                    ),
                    "send only the headers the request needs",
                ));
            }
        }
        Ok(())
    }
}

impl HeadScan {
    /// One header line (without its `\n`): no control bytes, and a Content-Length the API
    /// can take. Hyper refuses these too, but with an empty body; here they get the API's
    /// JSON error.
    fn check_header(&mut self, line: &[u8], l: &Limits) -> Result<(), Vec<u8>> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return Ok(()); // the blank line that ends the head
        }
        if line.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(error_response(
                400,
                "Bad Request",
                "bad_header",
                "a header holds a control character (NUL, CR, or another byte below 0x20)",
                "send header values of printable characters",
            ));
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(error_response(
                400,
                "Bad Request",
                "bad_header",
                "a header line has no `:` (`Name: value`)",
                "send each header as `Name: value`",
            ));
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if name.eq_ignore_ascii_case(b"content-length") {
            let v = std::str::from_utf8(value).unwrap_or("").trim();
            let n = match v.parse::<u64>() {
                Ok(n) if v.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => {
                    return Err(error_response(
                        400,
                        "Bad Request",
                        "bad_header",
                        "Content-Length is not a whole number of bytes",
                        "send Content-Length as the body's size in bytes, or no body at all",
                    ))
                }
            };
            if self.content_length.is_some_and(|m| m != n) {
                return Err(error_response(
                    400,
                    "Bad Request",
                    "bad_header",
                    "two different Content-Length headers",
                    "send one Content-Length",
                ));
            }
            self.content_length = Some(n);
            if n > l.max_body_bytes as u64 {
                return Err(error_response(
                    413,
                    "Content Too Large",
                    "body_too_large",
                    &format!(
                        "a body of {n} bytes; the API takes at most {} bytes",
                        l.max_body_bytes
                    ),
                    "the API's reads take no body; send the request without one",
                ));
            }
        }
        Ok(())
    }
}

fn request_line_ok(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.split(|&b| b == b' ');
    let (Some(m), Some(t), Some(v), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    !m.is_empty()
        && m.len() <= 16
        && m.iter().all(|b| b.is_ascii_uppercase())
        && !t.is_empty()
        && (v == b"HTTP/1.1" || v == b"HTTP/1.0")
}

/// The socket as the HTTP parser sees it: every read passes the head scan and marks the
/// connection's phase.
struct Guarded {
    inner: TcpStream,
    state: Arc<ConnState>,
    limits: Arc<Limits>,
    scan: HeadScan,
    /// A refusal being written; then the reader sees the end of the stream.
    refusal: Option<Refusal>,
}

/// How long, and how much, a refused client may still send after its answer: what it sends is
/// read and dropped, so that closing the socket does not reset the connection (a close with
/// unread bytes sends a TCP reset, and the client's kernel may drop the answer before the
/// client reads it: a 414 for a 1 MB URL reached the client as a reset).
const DRAIN_FOR: Duration = Duration::from_secs(2);
const DRAIN_MAX: usize = 16 << 20;

/// An error answer sent before routing, then the write side shut, then the rest drained.
struct Refusal {
    resp: Vec<u8>,
    sent: usize,
    /// The write side is shut (the client reads the end of the answer).
    shut: bool,
    /// The client is gone (a write failed): nothing to drain.
    gone: bool,
    drained: usize,
    until: Pin<Box<tokio::time::Sleep>>,
}

impl Refusal {
    fn new(resp: Vec<u8>) -> Refusal {
        Refusal {
            resp,
            sent: 0,
            shut: false,
            gone: false,
            drained: 0,
            until: Box::pin(tokio::time::sleep(DRAIN_FOR)),
        }
    }

    /// Write the answer, shut the write side, drain; Ready once the connection may close.
    fn poll(&mut self, inner: &mut TcpStream, cx: &mut Context<'_>) -> Poll<()> {
        use std::future::Future;
        while !self.gone && self.sent < self.resp.len() {
            match Pin::new(&mut *inner).poll_write(cx, &self.resp[self.sent..]) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => self.gone = true,
                Poll::Ready(Ok(n)) => self.sent += n,
                Poll::Pending => return Poll::Pending,
            }
        }
        if self.gone {
            return Poll::Ready(());
        }
        if !self.shut {
            match Pin::new(&mut *inner).poll_shutdown(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(_) => self.shut = true,
            }
        }
        let mut scratch = [0u8; 16 * 1024];
        loop {
            if self.drained > DRAIN_MAX || self.until.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
            let mut rb = ReadBuf::new(&mut scratch);
            match Pin::new(&mut *inner).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) if rb.filled().is_empty() => return Poll::Ready(()),
                Poll::Ready(Ok(())) => self.drained += rb.filled().len(),
                Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = &mut *self;
        if let Some(r) = &mut me.refusal {
            return match r.poll(&mut me.inner, cx) {
                // end of stream: the parser gives up, we close
                Poll::Ready(()) => Poll::Ready(Ok(())),
                Poll::Pending => Poll::Pending,
            };
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut me.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            let new = &buf.filled()[before..];
            if !new.is_empty() {
                let phase = me.state.phase.load(Ordering::Relaxed);
                if phase == IDLE {
                    me.scan = HeadScan::default();
                    me.state.set(HEAD);
                }
                if phase != BUSY {
                    if let Err(resp) = me.scan.feed(new, &me.limits) {
                        buf.set_filled(before);
                        me.refusal = Some(Refusal::new(resp));
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                }
            }
        }
        r
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        b: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, b)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Serve `app` on `listener` under `limits` until `shutdown` fires; then stop accepting, close
/// idle connections and give busy ones up to five seconds to finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) -> io::Result<()> {
    let limits = Arc::new(limits);
    let registry: Registry = Arc::default();
    let epoch = Instant::now();
    let sweeper = {
        let (reg, l) = (registry.clone(), limits.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                let now = epoch.elapsed().as_millis() as u64;
                lock(&reg).retain(|_, e| {
                    let since = e.state.since_ms.load(Ordering::Relaxed);
                    let limit = match e.state.phase.load(Ordering::Relaxed) {
                        IDLE => l.idle_timeout,
                        HEAD => l.header_timeout,
                        _ => return true,
                    };
                    let keep = now.saturating_sub(since) <= limit.as_millis() as u64;
                    if !keep {
                        e.abort.abort();
                    }
                    keep
                });
            }
        })
    };
    let mut next_id = 0u64;
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            a = listener.accept() => a,
        };
        let (mut stream, _) = match accepted {
            Ok(s) => s,
            Err(_) => {
                // Out of descriptors or a connection reset before accept: let a moment pass.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        {
            let mut reg = lock(&registry);
            if reg.len() >= limits.max_connections {
                // Make room: close the connection that has waited longest without a request
                // in progress (idle, or still sending its head).
                let victim = reg
                    .iter()
                    .filter(|(_, e)| e.state.phase.load(Ordering::Relaxed) != BUSY)
                    .min_by_key(|(_, e)| e.state.since_ms.load(Ordering::Relaxed))
                    .map(|(id, _)| *id);
                match victim {
                    Some(id) => {
                        if let Some(e) = reg.remove(&id) {
                            e.abort.abort();
                        }
                    }
                    None => {
                        drop(reg);
                        let resp = error_response(
                            503,
                            "Service Unavailable",
                            "overloaded",
                            "every connection is serving a request",
                            "retry in a moment",
                        );
                        tokio::spawn(async move {
                            use tokio::io::AsyncWriteExt;
                            let _ = tokio::time::timeout(
                                Duration::from_secs(1),
                                stream.write_all(&resp),
                            )
                            .await;
                        });
                        continue;
                    }
                }
            }
        }
        let state = Arc::new(ConnState {
            phase: AtomicU8::new(IDLE),
            since_ms: AtomicU64::new(epoch.elapsed().as_millis() as u64),
            epoch,
        });
        let io = Guarded {
            inner: stream,
            state: state.clone(),
            limits: limits.clone(),
            scan: HeadScan::default(),
            refusal: None,
        };
        let svc = {
            let (app, state) = (app.clone(), state.clone());
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                state.set(BUSY);
                let mut app = app.clone();
                let state = state.clone();
                async move {
                    let r = tower_service::Service::call(&mut app, req).await;
                    state.set(IDLE);
                    r
                }
            })
        };
        let id = next_id;
        next_id += 1;
        let reg = registry.clone();
        let task = tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(io), svc);
            let _ = conn.await;
            lock(&reg).remove(&id);
        });
        lock(&registry).insert(
            id,
            Entry {
                state,
                abort: task.abort_handle(),
            },
        );
    }
    // Shutdown: no new connections; idle ones go now, busy ones get a few seconds.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let busy = {
            let mut reg = lock(&registry);
            reg.retain(|_, e| {
                let busy = e.state.phase.load(Ordering::Relaxed) == BUSY;
                if !busy {
                    e.abort.abort();
                }
                busy
            });
            reg.len()
        };
        if busy == 0 || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (_, e) in std::mem::take(&mut *lock(&registry)) {
        e.abort.abort();
    }
    sweeper.abort();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(s: &[u8]) -> Result<(), String> {
        HeadScan::default()
            .feed(s, &Limits::default())
            .map_err(|r| String::from_utf8_lossy(&r).into_owned())
    }

    #[test]
    fn head_limits_answer_with_the_api_error_body() {
        assert!(feed(b"GET /v1/tiers HTTP/1.1\r\nHost: x\r\n\r\n").is_ok());
        let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(9000));
        let e = feed(long.as_bytes()).unwrap_err();
        assert!(
            e.starts_with("HTTP/1.1 414 ") && e.contains("\"code\":\"uri_too_long\""),
            "{e}"
        );
        let many: String = (0..200).map(|i| format!("X-{i}: y\r\n")).collect();
        let e = feed(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()).unwrap_err();
        assert!(
            e.starts_with("HTTP/1.1 431 ") && e.contains("headers_too_large"),
            "{e}"
        );
        let e = feed(b"HELLO\r\n").unwrap_err();
        assert!(
            e.starts_with("HTTP/1.1 400 ") && e.contains("bad_request"),
            "{e}"
        );
        let e = feed(b"GET / HTTP/2.0\r\n").unwrap_err();
        assert!(e.starts_with("HTTP/1.1 400 "), "{e}");
    }

    #[test]
    fn a_head_split_across_reads_is_scanned_as_one() {
        let mut s = HeadScan::default();
        let l = Limits::default();
        for chunk in [
            &b"GET /v1/ti"[..],
            b"ers HTTP/1.1\r",
            b"\nHost: x\r\n\r",
            b"\n",
        ] {
            s.feed(chunk, &l).unwrap();
        }
        assert!(s.done);
    }
}
