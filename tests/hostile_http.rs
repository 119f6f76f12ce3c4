//! Hostile HTTP against the real `sit serve` (issue 16), run with a file-descriptor limit of
//! 256 and tight connection limits: slow and idle sockets past the limit do not keep normal
//! requests from being served; errors found before routing (414, 431, 400) carry the API's
//! JSON error body; a repeated query parameter is `bad_query`; a date before 1970 says which
//! range is served.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `sit serve` on a port the OS picks (`--addr 127.0.0.1:0`; the server says which on its
/// first line), under `ulimit -n 256`. (A port found free and then handed over could be
/// taken by another test's server in between: regression, the test once reached another
/// process's server, which then exited.)
fn server() -> Server {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 256 && exec '{}' --data '{}' serve --addr 127.0.0.1:0 --max-connections 200 --header-timeout-ms 1500 --idle-timeout-ms 2500",
            env!("CARGO_BIN_EXE_sit"),
            dir.path().join("data").display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines
        .next()
        .expect("sit serve says where it listens")
        .unwrap();
    // "sit serve: http://127.0.0.1:PORT (archive ...)"
    let addr = first
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_string();
    // keep draining its log so that it never blocks on a full pipe
    std::thread::spawn(move || for _ in lines {});
    let t0 = Instant::now();
    while TcpStream::connect(&addr).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "sit serve did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Server {
        child,
        addr,
        _dir: dir,
    }
}

/// Send raw bytes on a new connection and read the whole answer: (status, body).
fn raw(addr: &str, req: &[u8]) -> (u16, String) {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The server may answer and close before all of a huge request is written.
    let _ = c.write_all(req);
    let mut r = Vec::new();
    let _ = c.read_to_end(&mut r);
    let r = String::from_utf8_lossy(&r).into_owned();
    assert!(r.starts_with("HTTP/1.1 "), "no HTTP answer: {r:?}");
    let status = r[9..12].parse().unwrap();
    let body = r
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_string();
    (status, body)
}

fn get(addr: &str, path: &str) -> (u16, String) {
    raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

fn code(body: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body:?}"));
    v["error"]["code"].as_str().unwrap_or_default().to_string()
}

#[test]
fn errors_before_routing_carry_the_json_error_body() {
    let s = server();
    let (st, body) = get(&s.addr, &format!("/{}", "a".repeat(100_000)));
    assert_eq!(
        (st, code(&body)),
        (414, "uri_too_long".to_string()),
        "{body}"
    );
    let headers: String = (0..10_000).map(|i| format!("X-H{i}: v\r\n")).collect();
    let (st, body) = raw(
        &s.addr,
        format!("GET /v1/tiers HTTP/1.1\r\nHost: x\r\n{headers}\r\n").as_bytes(),
    );
    assert_eq!(
        (st, code(&body)),
        (431, "headers_too_large".to_string()),
        "{body}"
    );
    let (st, body) = raw(&s.addr, b"THIS IS NOT HTTP\r\n\r\n");
    assert_eq!(
        (st, code(&body)),
        (400, "bad_request".to_string()),
        "{body}"
    );
    // Repeated query parameters are refused, not silently resolved.
    let (st, body) = get(&s.addr, "/v1/index/t1?from=2026-01-01&from=2026-01-02");
    assert_eq!((st, code(&body)), (400, "bad_query".to_string()), "{body}");
    assert!(body.contains("more than once"), "{body}");
    // Dates before 1970 are dates: the error says which range is served.
    let (st, body) = get(&s.addr, "/v1/index/t1/1969-12-31");
    assert_eq!((st, code(&body)), (400, "bad_date".to_string()), "{body}");
    assert!(body.contains("1970-01-01 to 9999-12-31"), "{body}");
    // And the server still answers normally.
    assert_eq!(get(&s.addr, "/v1/tiers").0, 200);
}

#[test]
fn slow_and_idle_sockets_past_the_fd_limit_do_not_stop_normal_requests() {
    let s = server();
    // 400 attackers against a 256-descriptor process capped at 200 connections: half send a
    // partial request line and stall, half connect and say nothing.
    let mut hold = Vec::new();
    for i in 0..400 {
        let Ok(mut c) = TcpStream::connect(&s.addr) else {
            continue;
        };
        if i % 2 == 0 {
            let _ = c.write_all(b"GET /v1/tiers HTTP/1.1\r\nX-Slow: ");
        }
        hold.push(c);
    }
    // Normal clients are served, promptly, while the attackers hold their sockets.
    let t0 = Instant::now();
    for _ in 0..20 {
        let (st, _) = get(&s.addr, "/v1/tiers");
        assert_eq!(st, 200);
    }
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(8), "20 requests took {took:?}");
    // The server closes what it holds of them within its timeouts: a held socket reads the
    // end of the stream (or a reset) instead of hanging.
    let c = hold.last_mut().unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut b = [0u8; 64];
    let t0 = Instant::now();
    let r = c.read(&mut b);
    assert!(
        matches!(r, Ok(0) | Err(_)) && t0.elapsed() < Duration::from_secs(9),
        "{r:?} after {:?}",
        t0.elapsed()
    );
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let s = server();
    let mut c = TcpStream::connect(&s.addr).unwrap();
    c.write_all(b"GET /v1/tiers HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let mut b = [0u8; 4096];
    let t0 = Instant::now();
    loop {
        match c.read(&mut b) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&b[..n]),
        }
    }
    let idle = t0.elapsed();
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
    assert!(
        idle >= Duration::from_millis(2000) && idle < Duration::from_secs(6),
        "closed after {idle:?}"
    );
}
