//! An archive off the machine: `sit mirror` copies a data folder's publication archive to an
//! S3-compatible server (moto in server mode, which `.ci/run` installs; it honours
//! `If-None-Match: *`, and `sit mirror` checks that before it mirrors anything), and
//! `sit verify --archive s3://...` checks a settlement month against the mirror alone, the data
//! folder gone. A blob altered in the bucket is named; `--restore` writes the archive back byte
//! for byte.
//!
//! Needs moto's server (`$SIT_MOTO`, else `moto_server` on PATH; `.ci/run` installs it and sets
//! `SIT_REQUIRE_MOTO=1`, which makes its absence a failure); without it the test prints SKIPPED.

mod common;
use common::february::signed_february;
use common::net::free_port;
use common::{text, tree};

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BUCKET: &str = "sit-archive";
const SETTLEMENT: &str = "published/settlements/SIT-T1-M/2026-02.json";

struct Moto {
    child: Child,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    fn start() -> Option<Moto> {
        let bin = std::env::var("SIT_MOTO").unwrap_or_else(|_| "moto_server".into());
        let port = free_port();
        let child = match Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                assert!(
                    std::env::var_os("SIT_REQUIRE_MOTO").is_none(),
                    "SIT_REQUIRE_MOTO is set but {bin} does not start: {e}"
                );
                eprintln!("SKIPPED: no moto server ({bin}: {e}; pip install 'moto[server]')");
                return None;
            }
        };
        let m = Moto { child, port };
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(t0.elapsed() < Duration::from_secs(30), "moto did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(m)
    }

    /// The Python of moto's environment (boto3 is one of moto's dependencies).
    fn python(&self) -> PathBuf {
        match std::env::var("SIT_MOTO") {
            Ok(bin) => Path::new(&bin).with_file_name("python"),
            Err(_) => "python3".into(),
        }
    }

    /// One plain HTTP request (moto checks no signature): the status code.
    fn http(&self, method: &str, path: &str, body: &[u8]) -> u16 {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.port,
            body.len()
        )
        .unwrap();
        s.write_all(body).unwrap();
        let mut r = String::new();
        let _ = s.read_to_string(&mut r);
        r.split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    }

    /// The real binary, with the endpoint and credentials in the environment.
    fn sit(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_sit"))
            .env(
                "AWS_ENDPOINT_URL",
                format!("http://127.0.0.1:{}", self.port),
            )
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .args(args)
            .output()
            .unwrap()
    }
}

#[test]
fn a_settlement_month_verifies_against_the_mirror_alone_and_an_altered_object_is_named() {
    let Some(moto) = Moto::start() else { return };
    assert_eq!(moto.http("PUT", &format!("/{BUCKET}"), b""), 200, "bucket");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let keys = dir.path().join("keys");
    signed_february(&data, &keys);
    let contracts = Path::new(env!("CARGO_MANIFEST_DIR")).join("contracts.toml");
    let d = data.to_str().unwrap();
    let o = moto.sit(&[
        "--data",
        d,
        "settle",
        "--contracts",
        contracts.to_str().unwrap(),
        "--tier",
        "t1",
        "--month",
        "2026-02",
        "--key",
        keys.join("signing-key.pem").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let url = format!("s3://{BUCKET}/oracle");

    // bad input is named with the fix
    let o = moto.sit(&[
        "--data",
        d,
        "mirror",
        "--to",
        "sit-archive/oracle",
        "--once",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("s3://BUCKET/PREFIX"), "{}", text(&o));

    // mirrored: every file a blob, then a snapshot; again: nothing new
    let o = moto.sit(&["--data", d, "mirror", "--to", &url, "--once"]);
    assert!(o.status.success(), "{}", text(&o));
    let files = tree(&data.join("published")).len();
    assert!(
        text(&o).contains(&format!("mirrored {files} files to {url}:"))
            && text(&o).contains("snapshot 1 written"),
        "{}",
        text(&o)
    );
    let o = moto.sit(&["--data", d, "mirror", "--to", &url, "--once"]);
    assert!(
        text(&o).contains(": 0 new objects (0 bytes); snapshot 1 current"),
        "{}",
        text(&o)
    );

    // restored byte for byte into an empty folder
    let back = dir.path().join("restored");
    let o = moto.sit(&["mirror", "--to", &url, "--restore", back.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(tree(&back.join("published")), tree(&data.join("published")));

    // the data folder gone: the settlement month checks against the mirror alone
    let record = dir.path().join("2026-02.json");
    std::fs::copy(data.join(SETTLEMENT), &record).unwrap();
    let snapshot: serde_json::Value = {
        let list = tree(&back.join("published"));
        assert!(!list.is_empty());
        // the snapshot's paths and hashes, as the restore wrote them
        let mut files = serde_json::Map::new();
        for (p, b) in list {
            files.insert(
                format!("published/{p}"),
                blake3::hash(&b).to_hex().to_string().into(),
            );
        }
        files.into()
    };
    std::fs::remove_dir_all(&data).unwrap();
    let pubkey = keys.join("public-key.pem");
    let verify = || {
        moto.sit(&[
            "verify",
            record.to_str().unwrap(),
            "--key",
            pubkey.to_str().unwrap(),
            "--archive",
            &url,
        ])
    };
    let o = verify();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).starts_with("VALID  settlement SIT-T1-M 2026-02-01..2026-02-28 FINAL")
            && text(&o).contains(&format!(
                "  archive    each listed day is {url}'s record in force"
            )),
        "{}",
        text(&o)
    );

    // an object altered in the bucket (a bucket without object lock lets its owner do that,
    // with a plain signed PUT; boto3 from moto's own environment): named, nothing verifies
    let hash = snapshot["published/t1/2026-02-10.v1.json"]
        .as_str()
        .unwrap();
    let o = Command::new(moto.python())
        .args([
            "-c",
            &format!(
                "import boto3; boto3.client('s3', endpoint_url='http://127.0.0.1:{}', aws_access_key_id='test', aws_secret_access_key='test', region_name='us-east-1').put_object(Bucket='{BUCKET}', Key='oracle/blobs/{hash}', Body=b'{{\"not\": \"the record\"}}')",
                moto.port
            ),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let o = verify();
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains(&format!(
            "blobs/{hash} (the mirror of published/t1/2026-02-10.v1.json)"
        )) && text(&o).contains("the object was altered"),
        "{}",
        text(&o)
    );
}
