//! Hostile and careless providers files (issue 16): each is refused by `sit check` (the real
//! binary) with exit 2, the file, line and key, and a hint; a key written where it does not
//! belong is never echoed back.

mod common;
use common::text;
use std::process::Command;

const ENDPOINT: &str = "[[endpoints]]\nid = \"a\"\nprovider = \"p\"\nmodel = \"m\"\ndialect = \"openai\"\nbase_url = \"https://api.example.com/v1\"\nregion = \"r\"\napi_key_env = \"EXAMPLE_KEY\"\n\n[[endpoints.prices]]\neffective_from = \"2026-01-01T00:00:00Z\"\ninput = \"0.15\"\noutput = \"0.60\"\n";

/// `sit check` on `bytes` (written to providers.toml in a fresh folder, with `extra` files
/// beside it); returns (exit code, stdout + stderr).
fn check(bytes: &[u8], extra: &[(&str, &[u8])], env: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("providers.toml");
    std::fs::write(&p, bytes).unwrap();
    for (name, b) in extra {
        std::fs::write(dir.path().join(name), b).unwrap();
    }
    let mut c = Command::new(env!("CARGO_BIN_EXE_sit"));
    c.arg("--providers").arg(&p).arg("check");
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    (o.status.code().unwrap_or(-1), text(&o))
}

fn refused(bytes: &[u8], wants: &[&str]) -> String {
    refused_with(bytes, &[], wants)
}

fn refused_with(bytes: &[u8], extra: &[(&str, &[u8])], wants: &[&str]) -> String {
    let (code, out) = check(bytes, extra, &[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("providers.toml:"), "names the file: {out}");
    assert!(out.contains("hint:"), "gives a hint: {out}");
    for w in wants {
        assert!(out.contains(w), "wanted {w:?} in:\n{out}");
    }
    out
}

#[test]
fn the_base_file_is_accepted() {
    let (code, out) = check(
        ENDPOINT.as_bytes(),
        &[],
        &[("EXAMPLE_KEY", "sk-example-0123456789")],
    );
    assert_eq!(code, 0, "{out}");
}

/// Regression guard (issue 13): with a one-character API key, redaction replaced every
/// occurrence of that character in the stored evidence. Keys shorter than 16 characters are
/// refused when the providers file is loaded (exit 2), without printing the value; 16 is
/// accepted.
#[test]
fn a_key_shorter_than_16_characters_is_refused_at_load() {
    for short in ["x", "abc", "fifteen-chars!!"] {
        let (code, out) = check(ENDPOINT.as_bytes(), &[], &[("EXAMPLE_KEY", short)]);
        assert_eq!(code, 2, "{short}: {out}");
        assert!(
            out.contains(":8:")
                && out.contains("EXAMPLE_KEY")
                && out.contains("shorter than 16 characters"),
            "{out}"
        );
        assert!(out.contains("hint:"), "{out}");
        if short.len() > 1 {
            assert!(!out.contains(short), "the value is echoed: {out}");
        }
    }
    let (code, out) = check(
        ENDPOINT.as_bytes(),
        &[],
        &[("EXAMPLE_KEY", "sixteen-chars-ok")],
    );
    assert_eq!(code, 0, "{out}");
}

/// Regression guard: a 30-digit price passed `sit check` and a real probe then stored a cost
/// of 3.7e25 USD; a price of 1e15 passed too.
#[test]
fn prices_above_the_stated_bound_are_refused_and_the_bound_is_configurable() {
    let huge = ENDPOINT.replace(
        "input = \"0.15\"",
        "input = \"123456789012345678901234567890\"",
    );
    refused(
        huge.as_bytes(),
        &[":12:", "`input`", "above the largest accepted, 10000"],
    );
    let big = ENDPOINT.replace("output = \"0.60\"", "output = 1000000000000000");
    refused(
        big.as_bytes(),
        &[":13:", "`output`", "above the largest accepted"],
    );
    let fee = format!("{ENDPOINT}request_fee = \"1000\"\n");
    refused(fee.as_bytes(), &["`request_fee`", "outside 0 to 100 USD"]);
    // A deliberate higher bound lets a dear model through.
    let dear = format!(
        "[defaults]\nmax_price_per_million = \"50000\"\n\n{}",
        ENDPOINT.replace("input = \"0.15\"", "input = \"20000\"")
    );
    let (code, out) = check(dear.as_bytes(), &[], &[]);
    assert_eq!(code, 0, "{out}");
}

/// Regression guard: `connect_timeout_ms` = i64::MAX and `concurrency` = 1e11 passed.
#[test]
fn timeouts_and_concurrency_outside_their_bounds_are_refused() {
    let t = format!("[defaults]\nconnect_timeout_ms = 9223372036854775807\n\n{ENDPOINT}");
    refused(
        t.as_bytes(),
        &[
            ":2:",
            "`defaults.connect_timeout_ms`",
            "between 1 and 300000",
        ],
    );
    let c = format!("[defaults]\nconcurrency = 100000000000\n\n{ENDPOINT}");
    refused(
        c.as_bytes(),
        &["`defaults.concurrency`", "between 1 and 10000"],
    );
    let e = ENDPOINT.replace("region = \"r\"\n", "region = \"r\"\nconcurrency = 0\n");
    refused(e.as_bytes(), &["`concurrency`", "between 1 and 10000"]);
    let s = format!("[defaults]\nstall_timeout_ms = 0\n\n{ENDPOINT}");
    refused(
        s.as_bytes(),
        &["`defaults.stall_timeout_ms`", "between 1 and 3600000"],
    );
}

/// Regression guard: an API key in the URL path passed `sit check` (which printed it), and an
/// `api_key_env` holding a key (`sk_live_...`) was printed back.
#[test]
fn a_key_in_the_url_or_in_api_key_env_is_refused_and_never_echoed() {
    // Key-shaped strings are made at run time: no key-like literal sits in the source.
    let key = format!("{}{}", "sk-proj-", "AbCdEf0123456789XyZ");
    let in_path = ENDPOINT.replace(
        "https://api.example.com/v1",
        &format!("https://api.example.com/v1/{key}"),
    );
    let out = refused(in_path.as_bytes(), &["`base_url`", "looks like an API key"]);
    assert!(!out.contains("AbCdEf0123456789"), "{out}");
    let host: String = "VuTs0Rq1Po2Nm3Lk4Ji5Hg6Fe7Dc8Ba9xZ".chars().rev().collect();
    let in_host = ENDPOINT.replace(
        "https://api.example.com/v1",
        &format!("https://{host}.example.com/v1"),
    );
    let out = refused(in_host.as_bytes(), &["`base_url`", "looks like an API key"]);
    assert!(!out.contains("Zx9aB8cD7eF6"), "{out}");
    let q = ENDPOINT.replace("/v1\"", "/v1?key=abc\"");
    refused(q.as_bytes(), &["`base_url`", "must not contain a query"]);
    let live_body: String = "Qm7Tz2Wk9Lp4Xv8Rn3Bc6Hd1Fj5Gs0Ya".chars().rev().collect();
    let live = format!("{}{live_body}", "sk_live_");
    let env = ENDPOINT.replace("EXAMPLE_KEY", &live);
    let out = refused(
        env.as_bytes(),
        &[":8:", "`api_key_env`", "looks like an API key itself"],
    );
    assert!(!out.contains(&live_body), "{out}");
    let dashed = ENDPOINT.replace("EXAMPLE_KEY", "my-key-value");
    let out = refused(
        dashed.as_bytes(),
        &["`api_key_env`", "not an environment variable name"],
    );
    assert!(!out.contains("my-key-value"), "{out}");
    // A key that looks like nothing in particular, found in the URL once it is known.
    let secret = "plainvalue123456";
    let url = ENDPOINT.replace("/v1\"", &format!("/v1/{secret}\""));
    let (code, out) = check(url.as_bytes(), &[], &[("EXAMPLE_KEY", secret)]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("the base_url holds the value of EXAMPLE_KEY"),
        "{out}"
    );
    assert_eq!(out.matches(secret).count(), 0, "{out}");
}

/// Regression guard: an empty or comments-only file was "0 endpoints OK".
#[test]
fn a_file_without_endpoints_is_refused() {
    refused(b"", &["`endpoints`", "no [[endpoints]]"]);
    refused(
        b"# only a comment\n\n# and another\n",
        &["no [[endpoints]]"],
    );
    refused(b"[defaults]\nconcurrency = 4\n", &["no [[endpoints]]"]);
}

/// Regression guard: a `tls_ca_file` that is not PEM was found only at probe time, without
/// file:line.
#[test]
fn a_tls_ca_file_that_is_not_pem_is_refused_at_check_time() {
    let cfg = format!("[defaults]\ntls_ca_file = \"ca.pem\"\n\n{ENDPOINT}");
    refused_with(
        cfg.as_bytes(),
        &[("ca.pem", b"this is not a certificate\n")],
        &[
            ":2:",
            "`defaults.tls_ca_file`",
            "is not a PEM file of CA certificates",
        ],
    );
    refused_with(
        cfg.as_bytes(),
        &[(
            "ca.pem",
            b"-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n",
        )],
        &["is not a PEM file of CA certificates"],
    );
}

/// Regression guard: binary garbage was reported at `0:0` with no hint.
#[test]
fn binary_and_non_utf8_files_are_named_with_the_byte_offset() {
    let mut b = ENDPOINT.as_bytes()[..40].to_vec();
    b.extend_from_slice(&[0xff, 0xfe, 0x00, 0x01]);
    refused(&b, &["not UTF-8 text: byte 0xff (byte offset 40)", ":3:"]);
    let mut n = ENDPOINT.as_bytes().to_vec();
    n.extend_from_slice(b"\n\0\0\0");
    let at = ENDPOINT.len() + 1;
    refused(
        &n,
        &[&format!("binary data: a NUL byte (byte offset {at})")],
    );
    // UTF-16 (a file saved by some editors) starts with a byte-order mark that is not UTF-8.
    let utf16: Vec<u8> = [0xff, 0xfe]
        .into_iter()
        .chain("[[endpoints]]".encode_utf16().flat_map(|u| u.to_le_bytes()))
        .collect();
    refused(&utf16, &["(byte offset 0)", "UTF-16"]);
}

/// Regression (issue 26): `sit check` refused `http://127.0.0.1:33867/xai-text/v1` as "holds
/// what looks like an API key": a path segment that merely starts with a key prefix is not a
/// key. Real gateway URLs, with per-account and per-deployment segments, pass; a key in the
/// path is still refused.
#[test]
fn gateway_urls_whose_segments_start_with_a_key_prefix_pass() {
    for url in [
        "http://127.0.0.1:33867/xai-text/v1",
        "https://gateway.ai.cloudflare.com/v1/0123456789abcdef0123456789abcdef/my-gateway/openai",
        "https://my-resource.openai.azure.com/openai/deployments/gpt-4o-mini-prod",
        "https://gw.example.com/sk-team-analytics-prod/v1",
        "https://api.example.com/key-vault-eastus2/v1",
        "https://bedrock-runtime.us-east-1.amazonaws.com",
    ] {
        let f = ENDPOINT.replace("https://api.example.com/v1", url);
        let (code, out) = check(
            f.as_bytes(),
            &[],
            &[("EXAMPLE_KEY", "sk-example-0123456789")],
        );
        assert_eq!(code, 0, "{url}: {out}");
    }
    // a key-shaped segment, made at run time (no key-like literal in the source)
    let body: String = "Zk9QmLp7Rt4Vx8Bn3Cd6Fg1Hj5Kl0Mz".chars().rev().collect();
    let f = ENDPOINT.replace(
        "https://api.example.com/v1",
        &format!("https://gw.example.com/{}{body}/v1", "xai-"),
    );
    let out = refused(f.as_bytes(), &["`base_url`", "looks like an API key"]);
    assert!(!out.contains(&body[..12]), "{out}");
}

/// `sit notice list | head -2` panicked ("failed printing to stdout: Broken pipe") with a
/// backtrace when its reader stopped early. A command's output cut short by its reader now
/// ends it quietly, as a Unix tool does (SIGPIPE's default action): no panic, nothing on stderr.
#[test]
fn output_cut_short_by_its_reader_ends_quietly_not_with_a_panic() {
    use std::os::unix::process::ExitStatusExt;
    // the reader is gone before the first byte is written: the first write meets a closed pipe
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let o = Command::new(env!("CARGO_BIN_EXE_sit"))
        .args(["suite", "--json"])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        o.status.signal(),
        Some(13),
        "ended by SIGPIPE: {:?} {err}",
        o.status
    );
}
