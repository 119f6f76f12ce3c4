//! Verify a signed SIT determination (or certificate) with nothing but `sit-core`: no HTTP
//! client, no server, no database, no async runtime. Copy this into your settlement system.
//!
//! ```sh
//! cargo run -p sit-core --example verify_record -- RECORD.json PUBLIC-KEY.pem
//! ```
//!
//! RECORD.json is the body of `GET /v1/index/{tier}/{date}` (or a certificate written by
//! `sit certify`); PUBLIC-KEY.pem is the publisher's key (SPKI PEM or 64 hex digits), obtained
//! out of band and cross-checked with `GET /v1/keys`. Exit 0 when valid, 1 when not, 2 on
//! bad usage.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [record, key] = &args[..] else {
        eprintln!("usage: verify_record RECORD.json PUBLIC-KEY.pem");
        return ExitCode::from(2);
    };
    let read = |p: &str| std::fs::read(p).map_err(|e| format!("cannot read {p}: {e}"));
    let (bytes, key_text) = match (read(record), read(key)) {
        (Ok(b), Ok(k)) => (b, String::from_utf8_lossy(&k).into_owned()),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let key = match sit_core::verify::public_key(&key_text) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("{key}: {e}");
            return ExitCode::from(2);
        }
    };
    let is_certificate = serde_json::from_slice::<serde_json::Value>(&bytes)
        .map(|v| v["schema"] == "sit-certificate/1")
        .unwrap_or(false);
    let verdict = if is_certificate {
        sit_core::verify::certificate(&bytes, &key).map(|c| {
            let met: Vec<&str> = c
                .figures
                .tiers
                .iter()
                .filter(|t| t.verdict.pass)
                .map(|t| t.tier.as_str())
                .collect();
            format!("certificate of {} (tiers met: {met:?})", c.endpoint.id)
        })
    } else {
        sit_core::verify::determination(&bytes, &key).map(|v| {
            let d = &v.publication.determination;
            // Whether the day's own value may settle, and when no later version can replace
            // it (index-methodology.md section 8).
            let f = sit_core::verify::finality(d, sit_core::versions::Registry::embedded());
            format!(
                "{} {} {} {} {} (version {}, methodology {} {})\n  settlement value: {} ({}); in a contract period: {}\n  final at {}",
                d.tier,
                d.date,
                d.status,
                d.value
                    .map(|x| x.to_string())
                    .unwrap_or_else(|| "no value".into()),
                d.unit,
                v.publication.version,
                d.methodology_version,
                d.methodology_hash,
                if f.settles { "yes" } else { "no" },
                f.reason,
                f.contract_use,
                f.final_at.as_deref().unwrap_or("unknown (methodology not known to this build)")
            )
        })
    };
    match verdict {
        Ok(what) => {
            println!("VALID {what}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("INVALID {record}: {e}");
            ExitCode::from(1)
        }
    }
}
