//! The certification challenge issuer: the oracle draws a fresh nonce for a certifier's key,
//! signs it, and records it durably before answering (`POST /v1/certify/challenge`), so a
//! certificate can prove its probes were drawn from a seed the certifier could not choose.
//! The document formats are [`sit_core::certificate::challenge`]'s.
//!
//! Nothing is written for anyone who asks: a challenge is issued only for a request signed by
//! the key it names (proof that the certifier holds it), made within five minutes of the
//! oracle's clock, honoured once (its nonce), and within a rate per key and overall
//! ([`PER_KEY_PER_HOUR`], [`PER_HOUR`]). Regression (issue 26): `GET
//! /v1/certify/challenge?key_id=<any>` wrote a durable challenge, with an fsync, for any key
//! id: 1,172 a second from one client.

use crate::archive::Archive;
use sit_core::certificate::challenge::{verify_request, RequestError, REQUEST_SKEW_MS};
use sit_core::time::format_utc_ms;
use std::collections::BTreeMap;

/// The most challenges one key draws in a clock hour.
pub const PER_KEY_PER_HOUR: u32 = 10;
/// The most challenges the oracle issues in a clock hour, over all keys.
pub const PER_HOUR: u32 = 600;

/// Why no challenge was issued (nothing was written).
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The request is not a signed, timely request of the key it names.
    #[error("{0}")]
    Request(#[from] RequestError),
    /// This request (its nonce) was honoured before.
    #[error("this request was already honoured (nonce {0}); sign a new one")]
    Replayed(String),
    /// The key drew its hourly share.
    #[error("{key} drew {PER_KEY_PER_HOUR} challenges this hour, the most one key may")]
    KeyRate {
        /// The certifier's key id.
        key: String,
    },
    /// The oracle issued its hourly share.
    #[error("the oracle issued {PER_HOUR} challenges this hour, the most it issues")]
    Rate,
    /// The challenge could not be recorded.
    #[error("cannot record the challenge: {0}")]
    Io(#[from] std::io::Error),
}

/// What the issuer remembers: the clock hour's counts and the nonces honoured recently.
#[derive(Default)]
struct Issued {
    hour: i64,
    per_key: BTreeMap<String, u32>,
    total: u32,
    /// nonce -> the time after which a request carrying it is stale anyway
    nonces: BTreeMap<String, i64>,
}

/// Issues certification challenges (`sit serve --key`, `sit run --serve`): the oracle's key
/// and its append-only log of every challenge issued.
pub struct Challenger {
    key: ed25519_dalek::SigningKey,
    log: std::sync::Mutex<std::path::PathBuf>,
    issued: std::sync::Mutex<Issued>,
}

impl Challenger {
    /// A challenger signing with `key` and logging to `archive`'s `challenges.jsonl`.
    pub fn new(key: ed25519_dalek::SigningKey, archive: &Archive) -> Challenger {
        Challenger {
            key,
            log: std::sync::Mutex::new(crate::archive::layout::challenges(archive.root())),
            issued: Default::default(),
        }
    }

    /// The challenges issued so far (each line one signed document, in order).
    pub fn issued(&self) -> Vec<String> {
        let path = self.log.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Self::read_log(&path)
    }

    fn read_log(path: &std::path::Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .map(|t| t.lines().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// Check a certifier's signed request (`doc`) at `now_ms`, then draw, sign and durably
    /// record a challenge for its key and return it. A refused request writes nothing.
    pub fn issue_for(&self, doc: &[u8], now_ms: i64) -> Result<Vec<u8>, IssueError> {
        let r = verify_request(doc, now_ms)?;
        let mut st = self.issued.lock().unwrap_or_else(|p| p.into_inner());
        let hour = now_ms.div_euclid(sit_core::time::HOUR_MS);
        if st.hour != hour {
            st.hour = hour;
            st.per_key.clear();
            st.total = 0;
        }
        st.nonces.retain(|_, until| *until >= now_ms);
        if st.nonces.contains_key(&r.nonce) {
            return Err(IssueError::Replayed(r.nonce));
        }
        if st.per_key.get(&r.key_id).copied().unwrap_or(0) >= PER_KEY_PER_HOUR {
            return Err(IssueError::KeyRate { key: r.key_id });
        }
        if st.total >= PER_HOUR {
            return Err(IssueError::Rate);
        }
        let out = self.issue(&r.key_id, now_ms)?;
        *st.per_key.entry(r.key_id).or_default() += 1;
        st.total += 1;
        // a request is stale two skews after the oracle's time at the latest
        st.nonces.insert(r.nonce, now_ms + 2 * REQUEST_SKEW_MS);
        Ok(out)
    }

    /// Draw, sign and durably record a challenge for `certifier`; then return it.
    fn issue(&self, certifier: &str, now_ms: i64) -> std::io::Result<Vec<u8>> {
        use sit_core::certificate::challenge::{self, Challenge};
        let path = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let sequence = Challenger::read_log(&path).len() as u64 + 1;
        let mut nonce = [0u8; 32];
        getrandom::getrandom(&mut nonce).map_err(|e| std::io::Error::other(e.to_string()))?;
        let c = Challenge {
            schema: challenge::SCHEMA.into(),
            nonce: sit_core::signing::hex(&nonce),
            certifier: certifier.to_string(),
            sequence,
            issued_at: format_utc_ms(now_ms),
            expires_at: format_utc_ms(now_ms + challenge::VALID_MS),
            key_id: sit_core::signing::key_id(&self.key.verifying_key()),
        };
        let doc = challenge::sign(&c, &self.key);
        crate::sys::durable::append_line(&path, &doc)?;
        Ok(doc)
    }
}
