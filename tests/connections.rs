//! Connection phases and warm/cold marking, through the real `sit probe` binary against a real
//! TLS server on loopback (tokio-rustls, a CA and a server certificate made by the `openssl`
//! command line) and the same server in plain TCP.
//!
//! With concurrency 1, the four probes of a round share one kept-alive connection: the first
//! is cold and carries its TCP connect and TLS handshake times, the next three are warm. The
//! server counts the connections it accepted, so the marking is checked against what happened.

mod common;

use sit_core::observation::RxClock;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the openssl command line is installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        common::text(&out)
    );
}

/// A CA (ca.pem) and a server certificate for 127.0.0.1 signed by it (server.pem, server.key).
fn make_certs(dir: &Path) {
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    for args in [
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "ca.key",
        ][..],
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "ca.key",
            "-days",
            "2",
            "-subj",
            "/CN=sit test CA",
            "-out",
            "ca.pem",
        ],
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "server.key",
        ],
        &[
            "req",
            "-new",
            "-key",
            "server.key",
            "-subj",
            "/CN=127.0.0.1",
            "-out",
            "server.csr",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ],
    ] {
        openssl(dir, args);
    }
}

const STREAM: &str = concat!(
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}],\"model\":\"m\"}\n\n",
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"4\"}}],\"model\":\"m\"}\n\n",
    "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"model\":\"m\"}\n\n",
    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":30,\"completion_tokens\":1,\"total_tokens\":31}}\n\n",
    "data: [DONE]\n\n",
);

/// Answer every request on the connection with STREAM (keep-alive, Content-Length).
async fn serve_conn<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match s.read(&mut tmp).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + len {
            match s.read(&mut tmp).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        }
        buf.drain(..head_end + len);
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\n\r\n{STREAM}",
            STREAM.len()
        );
        if s.write_all(resp.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Start the server (TLS when `tls` is given); returns its port and its accepted-connection count.
async fn start(tls: Option<tokio_rustls::TlsAcceptor>) -> (u16, Arc<AtomicUsize>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    Some(a) => {
                        if let Ok(s) = a.accept(tcp).await {
                            serve_conn(s).await
                        }
                    }
                    None => serve_conn(tcp).await,
                }
            });
        }
    });
    (port, accepted)
}

fn acceptor(dir: &Path) -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
}

fn probe(dir: &Path, name: &str, base_url: &str) -> Vec<sit_core::observation::Observation> {
    let providers = dir.join(format!("{name}.toml"));
    std::fs::write(
        &providers,
        format!(
            "[defaults]\ntls_ca_file = \"ca.pem\"\n\n[[endpoints]]\nid = \"{name}\"\nprovider = \"fixture\"\nmodel = \"m\"\n\
             dialect = \"openai\"\nbase_url = \"{base_url}\"\nregion = \"loopback\"\nconcurrency = 1\n\n\
             [[endpoints.prices]]\neffective_from = \"2020-01-01T00:00:00Z\"\ninput = \"1\"\noutput = \"2\"\n"
        ),
    )
    .unwrap();
    let data = dir.join(format!("{name}-data"));
    let out = Command::new(env!("CARGO_BIN_EXE_sit"))
        .arg("--data")
        .arg(&data)
        .arg("--providers")
        .arg(&providers)
        .args([
            "probe",
            "--endpoint",
            name,
            "--rounds",
            "1",
            "--tier",
            "t1",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::text(&out));
    let mut obs = common::stored_observations(&data);
    obs.sort_by_key(|o| o.seq);
    obs
}

/// Keep the kernel's receive timestamping switched on for the whole test, and wait until it
/// is. The kernel switches it on (through deferred work) when the first socket asks and off
/// again when the last one closes: between the TLS probe's process and the TCP probe's, no
/// socket asked, and the TCP probe's first packets arrived unstamped (regression: the test
/// failed once with `rx_clock: Monotonic` on the plain TCP endpoint). A worker in service
/// always has sockets open; here one held socket stands in for them.
async fn keep_kernel_stamps_on() -> Option<(sit::worker::rxstamp::StampedTcp, tokio::net::TcpStream)>
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if cfg!(not(target_os = "linux")) {
        return None;
    }
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (c, s) = tokio::join!(tokio::net::TcpStream::connect(addr), l.accept());
    let mut c = sit::worker::rxstamp::StampedTcp::new(c.unwrap(), true);
    let (mut s, _) = s.unwrap();
    let t = std::time::Instant::now();
    let mut buf = [0u8; 16];
    loop {
        s.write_all(b".").await.unwrap();
        let _ = c.read(&mut buf).await.unwrap();
        if c.stamp().latest().is_some() {
            return Some((c, s));
        }
        assert!(
            t.elapsed() < std::time::Duration::from_secs(5),
            "no kernel stamps within 5 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_request_on_a_connection_is_cold_with_connect_and_tls_phases_then_warm() {
    let _stamps_on = keep_kernel_stamps_on().await;
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    let (tls_port, tls_accepted) = start(Some(acceptor(dir.path()))).await;
    let (tcp_port, tcp_accepted) = start(None).await;
    let d = dir.path().to_path_buf();
    let (tls_obs, tcp_obs) = tokio::task::spawn_blocking(move || {
        (
            probe(&d, "tls", &format!("https://127.0.0.1:{tls_port}/v1")),
            probe(&d, "tcp", &format!("http://127.0.0.1:{tcp_port}/v1")),
        )
    })
    .await
    .unwrap();

    for (obs, tls, accepted) in [
        (&tls_obs, true, &tls_accepted),
        (&tcp_obs, false, &tcp_accepted),
    ] {
        assert_eq!(obs.len(), 4);
        assert!(obs.iter().all(|o| o.failure.is_none()), "{obs:?}");
        let cold: Vec<_> = obs
            .iter()
            .filter(|o| o.timings.warm == Some(false))
            .collect();
        let warm = obs.iter().filter(|o| o.timings.warm == Some(true)).count();
        // one connection per endpoint (concurrency 1, keep-alive): one cold, three warm
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "tls {tls}");
        assert_eq!(
            (cold.len(), warm),
            (1, 3),
            "tls {tls}: {:?}",
            obs.iter().map(|o| &o.timings).collect::<Vec<_>>()
        );
        let t = &cold[0].timings;
        let connect = t.connect_ns.expect("a cold connection has a connect phase");
        eprintln!(
            "tls {tls}: connect {connect} ns, tls {:?} ns, headers {:?} ns",
            t.tls_ns, t.headers_ns
        );
        assert!(connect > 0);
        match (tls, t.tls_ns) {
            (true, Some(h)) => {
                assert!(h > 0);
                // both phases happen before the response headers
                assert!(connect + h <= t.headers_ns.unwrap(), "{t:?}");
            }
            (false, None) => assert!(connect <= t.headers_ns.unwrap()),
            other => panic!("tls phase {other:?}"),
        }
        for o in obs.iter().filter(|o| o.timings.warm == Some(true)) {
            assert_eq!((o.timings.connect_ns, o.timings.tls_ns), (None, None));
        }
        // Issue 13: every received-byte instant, through TLS or not, is the kernel's receive
        // stamp, and the record says so.
        if cfg!(target_os = "linux") {
            for o in obs.iter() {
                let t = &o.timings;
                assert_eq!(t.rx_clock, Some(RxClock::Kernel), "tls {tls}: {t:?}");
                assert_eq!(
                    t.first_token_clock,
                    Some(RxClock::Kernel),
                    "tls {tls}: {t:?}"
                );
                let (h, f, l) = (
                    t.headers_ns.unwrap(),
                    t.first_token_ns.unwrap(),
                    t.last_byte_ns.unwrap(),
                );
                assert!(h <= f && f <= l, "instants in order: {t:?}");
            }
        }
    }
}

#[test]
fn a_missing_tls_ca_file_is_named_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.toml");
    std::fs::write(
        &p,
        "[defaults]\ntls_ca_file = \"nope.pem\"\n\n[[endpoints]]\nid = \"a\"\nprovider = \"p\"\nmodel = \"m\"\n\
         dialect = \"openai\"\nbase_url = \"https://127.0.0.1:1/v1\"\nregion = \"r\"\n\n\
         [[endpoints.prices]]\neffective_from = \"2020-01-01T00:00:00Z\"\ninput = \"1\"\noutput = \"2\"\n",
    )
    .unwrap();
    let out = common::sit(&["--providers", p.to_str().unwrap(), "check"]);
    assert_eq!(out.status.code(), Some(2), "{}", common::text(&out));
    let t = common::text(&out);
    assert!(
        t.contains("tls_ca_file") && t.contains("nope.pem") && t.contains("PEM"),
        "{t}"
    );
}
