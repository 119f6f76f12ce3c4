//! `sit attest`: an auditor's independent process. It fetches each published day's audit
//! bundle over HTTP (`GET /v1/bundles/{date}` for its manifest, then every file the manifest
//! names, each checked against its blake3 there), verifies and replays it with no store, and
//! submits one signed attestation per record: reproduced, or differs with the first
//! difference. What it attests is what anyone can check: the oracle answers each attestation
//! with a receipt, and serves every record's attestations.

use crate::audit::bundle::{self, Bundle};
use ed25519_dalek::SigningKey;
use sit_core::oversight::{self, Attestation, Body, Reproduced};
use sit_core::time::Date;
use std::path::Path;

/// Why a day could not be attested (the next pass tries again).
#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    /// The oracle could not be reached or answered an error.
    #[error("{url}: {why}")]
    Http {
        /// What was fetched or posted.
        url: String,
        /// What went wrong (the API's error, when it sent one).
        why: String,
    },
    /// The oracle refused a submission (a 4xx answer: the submitter must fix it).
    #[error("{url}: refused: {why}")]
    Refused {
        /// Where it was posted.
        url: String,
        /// The API's error and hint.
        why: String,
    },
    /// A file does not hash to what the bundle's manifest says.
    #[error("{file} of the {date} bundle hashes to {actual}, its manifest says {expected}: the transfer or the bundle was altered")]
    Altered {
        /// The day.
        date: Date,
        /// The file.
        file: String,
        /// The manifest's hash.
        expected: String,
        /// The file's.
        actual: String,
    },
    /// The bundle as fetched is not a bundle.
    #[error("the {date} bundle: {why}")]
    Bundle {
        /// The day.
        date: Date,
        /// The loader's error.
        why: String,
    },
    /// A local file operation failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// One record's attestation, submitted.
#[derive(Debug, Clone)]
pub struct Attested {
    /// What was attested.
    pub attestation: Attestation,
    /// The oracle's receipt id.
    pub receipt: String,
}

/// An auditor attesting one oracle's publications.
pub struct Attester {
    base: String,
    key: SigningKey,
    client: reqwest::Client,
}

fn http(url: &str) -> impl FnOnce(reqwest::Error) -> AttestError + '_ {
    move |e| AttestError::Http {
        url: url.to_string(),
        why: e.to_string(),
    }
}

impl Attester {
    /// An attester of the oracle at `base` (`http://host:port`), signing with `key`.
    pub fn new(base: &str, key: SigningKey) -> Attester {
        Attester {
            base: base.trim_end_matches('/').to_string(),
            key,
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(60))
                .build()
                .expect("an HTTP client"),
        }
    }

    async fn get(&self, path: &str) -> Result<Option<bytes::Bytes>, AttestError> {
        let url = format!("{}{path}", self.base);
        let r = self.client.get(&url).send().await.map_err(http(&url))?;
        if r.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !r.status().is_success() {
            let status = r.status();
            let body = r.text().await.unwrap_or_default();
            return Err(AttestError::Http {
                url,
                why: format!("{status}: {}", body.trim()),
            });
        }
        Ok(Some(r.bytes().await.map_err(http(&url))?))
    }

    /// The days with a bundle, ascending.
    pub async fn days(&self) -> Result<Vec<Date>, AttestError> {
        let body = self.get("/v1/bundles").await?.unwrap_or_default();
        let v: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| AttestError::Http {
                url: format!("{}/v1/bundles", self.base),
                why: format!("not the bundle list: {e}"),
            })?;
        let mut days: Vec<Date> = v["bundles"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d.as_str().and_then(|s| Date::parse(s).ok()))
            .collect();
        days.sort();
        Ok(days)
    }

    /// Fetch `date`'s bundle into `dir`, each file checked against the manifest.
    pub async fn fetch(&self, date: Date, dir: &Path) -> Result<(), AttestError> {
        let url = format!("/v1/bundles/{date}");
        let manifest = self.get(&url).await?.ok_or_else(|| AttestError::Bundle {
            date,
            why: "the oracle serves no bundle for the day".into(),
        })?;
        let m: bundle::Manifest =
            serde_json::from_slice(&manifest).map_err(|e| AttestError::Bundle {
                date,
                why: format!("manifest.json: {e}"),
            })?;
        std::fs::write(dir.join("manifest.json"), &manifest)?;
        for (name, want) in &m.files {
            // the oracle is not trusted: a name that could leave the bundle's folder is refused
            let inside = !name.is_empty()
                && Path::new(name)
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)));
            if !inside {
                return Err(AttestError::Bundle {
                    date,
                    why: format!(
                        "the manifest names `{}`, which is not a relative path inside the bundle",
                        name.chars().take(200).collect::<String>()
                    ),
                });
            }
            let bytes =
                self.get(&format!("{url}/{name}"))
                    .await?
                    .ok_or_else(|| AttestError::Bundle {
                        date,
                        why: format!("the manifest names {name}, which the oracle does not serve"),
                    })?;
            let got = blake3::hash(&bytes).to_hex().to_string();
            if got != *want {
                return Err(AttestError::Altered {
                    date,
                    file: name.clone(),
                    expected: want.clone(),
                    actual: got,
                });
            }
            let p = dir.join(name);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(p, &bytes)?;
        }
        if let Some(b) = self.get(&format!("{url}/{}", bundle::INTERVALS)).await? {
            std::fs::write(dir.join(bundle::INTERVALS), &b)?;
        }
        Ok(())
    }

    /// Fetch, verify and replay `date`'s bundle, and the attestation of each of its records
    /// (not yet submitted). Blocking work (the replay) runs off the async threads.
    pub async fn check_day(&self, date: Date) -> Result<Vec<Attestation>, AttestError> {
        let dir = tempfile::tempdir()?;
        self.fetch(date, dir.path()).await?;
        let path = dir.path().to_path_buf();
        let checked = tokio::task::spawn_blocking(move || check_bundle(&path, date))
            .await
            .map_err(|e| AttestError::Bundle {
                date,
                why: e.to_string(),
            })??;
        // a record that leaves observations out names the disputes that voided them: each
        // must be in the oracle's register, upheld, about that observation
        let mut out = Vec::new();
        for (mut a, voided) in checked {
            for v in voided {
                let why = match self.get(&format!("/v1/disputes/{}", v.dispute)).await? {
                    None => Some(format!(
                        "voids observation {} by dispute {}, which the register does not hold",
                        v.observation, v.dispute
                    )),
                    Some(body) => {
                        let d: serde_json::Value =
                            serde_json::from_slice(&body).unwrap_or_default();
                        let upheld = d["outcome"]["decision"] == "upheld"
                            && d["subject"]["observation"] == v.observation.as_str();
                        (!upheld).then(|| {
                            format!(
                                "voids observation {} by dispute {}, which the register does not show upheld about it",
                                v.observation, v.dispute
                            )
                        })
                    }
                };
                if let (Some(why), None) = (why, &a.first_difference) {
                    a.result = Reproduced::Differs;
                    a.first_difference = Some(why);
                }
            }
            out.push(a);
        }
        Ok(out)
    }

    /// Sign and submit one attestation; the oracle's receipt id.
    pub async fn submit(&self, a: Attestation, now_ms: i64) -> Result<String, AttestError> {
        let doc =
            oversight::sign_submission(Body::Attestation(a), &self.key, now_ms, &fresh_nonce());
        let (receipt, _) = post_submission(&self.client, &self.base, &doc).await?;
        Ok(receipt.id)
    }
}

/// 32 hex digits from the OS random source.
pub fn fresh_nonce() -> String {
    let mut n = [0u8; 16];
    getrandom::getrandom(&mut n).expect("the OS random source");
    sit_core::signing::hex(&n)
}

/// POST a signed submission to the oracle at `base`; its receipt (parsed; its signature is
/// checked by the caller who holds the oracle's key).
pub async fn post_submission(
    client: &reqwest::Client,
    base: &str,
    doc: &[u8],
) -> Result<(sit_core::oversight::Receipt, Vec<u8>), AttestError> {
    let url = format!("{}/v1/submissions", base.trim_end_matches('/'));
    let r = client
        .post(&url)
        .header("content-type", "application/json")
        .body(doc.to_vec())
        .send()
        .await
        .map_err(http(&url))?;
    let status = r.status();
    let body = r.bytes().await.map_err(http(&url))?;
    if !status.is_success() {
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let e = &v["error"];
        let why = match (
            e["code"].as_str(),
            e["message"].as_str(),
            e["hint"].as_str(),
        ) {
            (Some(code), Some(m), h) => format!(
                "{status} {code}: {m}{}",
                h.map(|h| format!("\n  hint: {h}")).unwrap_or_default()
            ),
            _ => format!("{status}: {}", String::from_utf8_lossy(&body).trim()),
        };
        if status.is_client_error() {
            return Err(AttestError::Refused { url, why });
        }
        return Err(AttestError::Http { url, why });
    }
    let mut v = sit_core::signing::parse_strict(&body).map_err(|e| AttestError::Http {
        url: url.clone(),
        why: format!("the receipt is not a signed document: {e}"),
    })?;
    if let Some(o) = v.as_object_mut() {
        o.remove("signature");
    }
    let r = serde_json::from_value(v).map_err(|e| AttestError::Http {
        url,
        why: format!("not a receipt: {e}"),
    })?;
    Ok((r, body.to_vec()))
}

/// Verify and replay the bundle at `dir` (no store): one attestation per record it carries,
/// with the observations the record voids (each to be checked against the oracle's register).
pub fn check_bundle(
    dir: &Path,
    date: Date,
) -> Result<Vec<(Attestation, Vec<sit_core::index::Voided>)>, AttestError> {
    let b = Bundle::load(dir).map_err(|e| AttestError::Bundle {
        date,
        why: e.to_string(),
    })?;
    let problems = bundle::verify(&b);
    let replay = bundle::replay(&b);
    let pubs = b
        .publications()
        .map_err(|why| AttestError::Bundle { date, why })?;
    let mut out = Vec::new();
    for (name, p, _) in pubs {
        // the record's hash is over its file's bytes as published (with the signature)
        let bytes = b
            .determinations
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, bytes)| bytes.clone())
            .unwrap_or_default();
        let verdict = replay
            .determinations
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| "not recomputed".into());
        // a structural problem (chain, commitment) or a verification failure is a difference
        let first = replay
            .structure
            .first()
            .or(problems.first())
            .or(replay.observation_differences.first())
            .cloned()
            .or_else(|| (verdict != "identical").then(|| verdict.clone()));
        let d = &p.determination;
        out.push((
            Attestation {
                tier: d.tier.clone(),
                date: d.date,
                version: p.version,
                record_hash: sit_core::record::record_hash(&bytes),
                merkle_root: d.merkle_root.clone(),
                result: if first.is_none() {
                    Reproduced::Reproduced
                } else {
                    Reproduced::Differs
                },
                first_difference: first,
            },
            d.voided.clone(),
        ));
    }
    Ok(out)
}
