//! The certification challenge issuer: the oracle draws a fresh nonce for a certifier's key,
//! signs it, and records it durably before answering (`GET /v1/certify/challenge`), so a
//! certificate can prove its probes were drawn from a seed the certifier could not choose.
//! The document format is [`sit_core::certificate::challenge`]'s.

use crate::archive::Archive;
use sit_core::time::format_utc_ms;

/// Issues certification challenges (`sit serve --key`, `sit run --serve`): the oracle's key
/// and its append-only log of every challenge issued.
pub struct Challenger {
    key: ed25519_dalek::SigningKey,
    log: std::sync::Mutex<std::path::PathBuf>,
}

impl Challenger {
    /// A challenger signing with `key` and logging to `archive`'s `challenges.jsonl`.
    pub fn new(key: ed25519_dalek::SigningKey, archive: &Archive) -> Challenger {
        Challenger {
            key,
            log: std::sync::Mutex::new(crate::archive::layout::challenges(archive.root())),
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

    /// Draw, sign and durably record a challenge for `certifier`; then return it.
    pub fn issue(&self, certifier: &str, now_ms: i64) -> std::io::Result<Vec<u8>> {
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
