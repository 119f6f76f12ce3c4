//! Ed25519 signing keys: generated here, stored as PKCS#8 PEM (private, mode 0600) and
//! SubjectPublicKeyInfo PEM (public), so that openssl, Python `cryptography` and anything else
//! that speaks the standard formats can use them.
//!
//! Why the mode check: a signing key that other local users can read lets them sign a
//! settlement value in our name. The publisher refuses such a key rather than warn.

use crate::sys::durable::Access;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use sit_core::signing::{hex, key_id, parse_public};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// File names written by [`generate`].
pub const PRIVATE_FILE: &str = "signing-key.pem";
pub const PUBLIC_FILE: &str = "public-key.pem";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a PKCS#8 PEM Ed25519 private key ({why})\n  hint: create one with `sit keys generate --out DIR`")]
    BadPrivate { path: PathBuf, why: String },
    #[error("{path} is not an Ed25519 public key ({why})\n  hint: pass the public-key.pem written by `sit keys generate`, or 64 hex characters")]
    BadPublic { path: PathBuf, why: String },
    #[error("private key {path} can be read by other users (mode {mode:04o}); refusing to sign with it\n  hint: chmod 600 {path}")]
    Exposed { path: PathBuf, mode: u32 },
    #[error("{path} already exists; refusing to overwrite a key\n  hint: choose another --out folder or move the old key away first")]
    Exists { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no system randomness for a new key: {0}")]
    Random(String),
}

/// What [`generate`] wrote.
#[derive(Debug, Clone)]
pub struct Generated {
    pub private_path: PathBuf,
    pub public_path: PathBuf,
    pub key_id: String,
    pub public_hex: String,
}

fn write_new(path: &Path, access: Access, bytes: &[u8]) -> Result<(), KeyError> {
    crate::sys::durable::create_once(path, bytes, access).map_err(|source| match source.kind() {
        std::io::ErrorKind::AlreadyExists => KeyError::Exists {
            path: path.to_path_buf(),
        },
        _ => KeyError::Write {
            path: path.to_path_buf(),
            source,
        },
    })
}

/// Generate a key pair into `dir` (created if missing). Never overwrites an existing key.
pub fn generate(dir: &Path) -> Result<Generated, KeyError> {
    std::fs::create_dir_all(dir).map_err(|source| KeyError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let private_path = dir.join(PRIVATE_FILE);
    let public_path = dir.join(PUBLIC_FILE);
    for p in [&private_path, &public_path] {
        if p.exists() {
            return Err(KeyError::Exists { path: p.clone() });
        }
    }
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
    let sk = SigningKey::from_bytes(&seed);
    // PKCS#8 v1 (RFC 8410, no embedded public key): the form OpenSSL 3.0 and every other
    // tool read; v2 with the public key is refused by some.
    let v1 = ed25519_dalek::pkcs8::KeypairBytes {
        secret_key: seed,
        public_key: None,
    };
    seed.fill(0);
    let pem = v1
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| KeyError::Random(format!("PKCS#8 encoding failed: {e}")))?;
    write_new(&private_path, Access::Private, pem.as_bytes())?;
    let vk = sk.verifying_key();
    let pub_pem = vk
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| KeyError::Random(format!("SPKI encoding failed: {e}")))?;
    write_new(&public_path, Access::Public, pub_pem.as_bytes())?;
    Ok(Generated {
        private_path,
        public_path,
        key_id: key_id(&vk),
        public_hex: hex(vk.as_bytes()),
    })
}

/// Load a private key, refusing one that group or others can read or write.
pub fn load_signing(path: &Path) -> Result<SigningKey, KeyError> {
    let read_err = |source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Exposed {
            path: path.to_path_buf(),
            mode,
        });
    }
    let text = std::fs::read_to_string(path).map_err(read_err)?;
    SigningKey::from_pkcs8_pem(&text).map_err(|e| KeyError::BadPrivate {
        path: path.to_path_buf(),
        why: e.to_string(),
    })
}

/// Load a public key: a file holding SPKI PEM or the 32 raw bytes as 64 hex characters, or
/// those 64 hex characters given in place of the file name.
pub fn load_public(path: &Path) -> Result<VerifyingKey, KeyError> {
    // The key itself, as the help says it may be given: 64 hex characters (no file by that
    // name).
    if let Some(hex) = path
        .to_str()
        .filter(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        if !path.exists() {
            return parse_public(hex).map_err(|why| KeyError::BadPublic {
                path: path.to_path_buf(),
                why,
            });
        }
    }
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_public(&text).map_err(|why| KeyError::BadPublic {
        path: path.to_path_buf(),
        why,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_writes_0600_private_key_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let g = generate(dir.path()).unwrap();
        let mode = std::fs::metadata(&g.private_path)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let sk = load_signing(&g.private_path).unwrap();
        let vk = load_public(&g.public_path).unwrap();
        assert_eq!(sk.verifying_key(), vk);
        assert_eq!(key_id(&vk), g.key_id);
        assert_eq!(parse_public(&g.public_hex).unwrap(), vk);
        // regression (issue 26): `--key <64 hex>` was read as a file name
        assert_eq!(load_public(Path::new(&g.public_hex)).unwrap(), vk);
        assert!(std::fs::read_to_string(&g.private_path)
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----"));
    }

    #[test]
    fn generate_refuses_to_overwrite_a_key() {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path()).unwrap();
        assert!(matches!(generate(dir.path()), Err(KeyError::Exists { .. })));
    }

    #[test]
    fn world_readable_private_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let g = generate(dir.path()).unwrap();
        for mode in [0o644, 0o604, 0o640] {
            std::fs::set_permissions(&g.private_path, std::fs::Permissions::from_mode(mode))
                .unwrap();
            let e = load_signing(&g.private_path).unwrap_err();
            assert!(matches!(e, KeyError::Exposed { .. }), "{mode:o}");
            assert!(e.to_string().contains("chmod 600"));
        }
    }
}
