//! Signed JSON documents: determinations (publisher) and certificates (certify) share one
//! scheme, so one verifier checks both.
//!
//! - the document is one JSON object; every member except `signature` is signed;
//! - the signed bytes are the RFC 8785 (JCS) canonical form of the object without `signature`
//!   (documents hold no floating-point numbers, so these equal Python's
//!   `json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`);
//! - `signature` is the Ed25519 signature over those bytes, as 128 lowercase hex digits;
//! - `key_id` (signed) names the key (see [`key_id`]).
//!
//! Verification is strict, so that every consumer reads the same document the signature
//! covers: the input must parse with no duplicate member at any depth (a parser that keeps the
//! first of two `value` members would otherwise read a value nobody signed), and its bytes
//! must be exactly the canonical form of the signed document with its signature (stored and
//! served as signed), with the signature in lower-case hex.

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePublicKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

/// Why a document did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Not JSON, or not an object (the parser's message).
    #[error("not a JSON object: {0}")]
    NotJson(String),
    /// A member named twice in one object (the member, with where the parser found it).
    #[error("duplicate member {0}: a signed document names each member once (a reader keeping the first or the last would read different documents)")]
    Duplicate(String),
    /// The bytes are not the canonical form (the first byte offset that differs).
    #[error("the bytes are not the canonical form the document was signed in (RFC 8785, as stored and served; first difference at byte {0}): pass the document exactly as published")]
    NotCanonical(usize),
    /// No `signature` string member.
    #[error("no `signature` member (a string of 128 hex digits) in the document")]
    NoSignature,
    /// `signature` is not 128 lowercase hex digits.
    #[error("`signature` is not 128 lower-case hex digits")]
    BadSignatureEncoding,
    /// A floating-point number (its JSON path, such as `$.counts.attempts`).
    #[error("the document holds a floating-point number at {0}; signed documents never do")]
    Float(String),
    /// The document's `key_id` is not the given key's.
    #[error("signed by key {record} but the key given is {given}")]
    WrongKey {
        /// The `key_id` the document names.
        record: String,
        /// The id of the key given.
        given: String,
    },
    /// The signature does not verify over the canonical bytes.
    #[error("signature does not match the canonical bytes: the document was altered or signed by another key")]
    Mismatch,
    /// The signature holds but the document is not of the expected form (why).
    #[error("signature valid, but the document does not parse: {0}")]
    Schema(String),
}

/// RFC 8785 canonical bytes of a JSON value.
pub fn canonical(v: &serde_json::Value) -> Vec<u8> {
    serde_json_canonicalizer::to_vec(v).expect("a serde_json::Value always canonicalises")
}

fn find_float(v: &serde_json::Value, at: &str) -> Option<String> {
    match v {
        serde_json::Value::Number(n) if !(n.is_i64() || n.is_u64()) => Some(at.to_string()),
        serde_json::Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, x)| find_float(x, &format!("{at}[{i}]"))),
        serde_json::Value::Object(o) => o
            .iter()
            .find_map(|(k, x)| find_float(x, &format!("{at}.{k}"))),
        _ => None,
    }
}

/// Sign a JSON object (which must carry `key_id` and no `signature`): returns the canonical
/// bytes of the object with `signature` added.
pub fn sign_value(mut v: serde_json::Value, key: &SigningKey) -> Vec<u8> {
    debug_assert!(
        find_float(&v, "$").is_none(),
        "signed documents hold no floats"
    );
    debug_assert_eq!(
        v.get("key_id").and_then(|k| k.as_str()),
        Some(key_id(&key.verifying_key()).as_str())
    );
    let msg = canonical(&v);
    let sig = key.sign(&msg);
    v.as_object_mut()
        .expect("a signed document is a JSON object")
        .insert("signature".into(), hex(&sig.to_bytes()).into());
    canonical(&v)
}

/// A JSON value that refuses duplicate object members at any depth (serde_json's own
/// `Value` keeps the last one silently).
struct Strict(serde_json::Value);

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = serde_json::Value;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        serde_json::Number::from_f64(v)
            .map(serde_json::Value::Number)
            .ok_or_else(|| E::custom("a number that is not finite"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = a.next_element()? {
            out.push(v);
        }
        Ok(serde_json::Value::Array(out))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(k) = a.next_key::<String>()? {
            let Strict(v) = a.next_value()?;
            if out.contains_key(&k) {
                return Err(serde::de::Error::custom(format!("{DUPLICATE}`{k}`")));
            }
            out.insert(k, v);
        }
        Ok(serde_json::Value::Object(out))
    }
}

const DUPLICATE: &str = "duplicate member ";

/// Parse JSON refusing duplicate members at any depth (the reader for every signed
/// document; also usable for documents that wrap them).
pub fn parse_strict(doc: &[u8]) -> Result<serde_json::Value, VerifyError> {
    serde_json::from_slice::<Strict>(doc)
        .map(|s| s.0)
        .map_err(|e| {
            let msg = e.to_string();
            match msg.strip_prefix(DUPLICATE) {
                Some(rest) => VerifyError::Duplicate(rest.to_string()),
                None => VerifyError::NotJson(msg),
            }
        })
}

/// A document whose signature checked out.
#[derive(Debug, Clone)]
pub struct VerifiedValue {
    /// The document without `signature`.
    pub value: serde_json::Value,
    /// The bytes the signature covers.
    pub signed_bytes: Vec<u8>,
    /// The signature, 128 lowercase hex digits.
    pub signature_hex: String,
}

/// Check a document's signature against `key`, offline. The document must be exactly as
/// signed: no duplicate member, the canonical bytes (RFC 8785) of the document with its
/// signature, lower-case hex (see the module documentation for why). Errors: the
/// [`VerifyError`] of the first check that fails.
pub fn verify_value(doc: &[u8], key: &VerifyingKey) -> Result<VerifiedValue, VerifyError> {
    let mut v = parse_strict(doc)?;
    if let Some(at) = find_float(&v, "$") {
        return Err(VerifyError::Float(at));
    }
    if v.is_object() {
        let c = canonical(&v);
        if c != doc {
            let at = c
                .iter()
                .zip(doc)
                .position(|(a, b)| a != b)
                .unwrap_or(c.len().min(doc.len()));
            return Err(VerifyError::NotCanonical(at));
        }
    }
    let obj = v
        .as_object_mut()
        .ok_or_else(|| VerifyError::NotJson("top level is not an object".into()))?;
    let sig_hex = match obj.remove("signature") {
        Some(serde_json::Value::String(s)) => s,
        _ => return Err(VerifyError::NoSignature),
    };
    if let Some(at) = find_float(&v, "$") {
        return Err(VerifyError::Float(at));
    }
    if sig_hex.len() != 128
        || !sig_hex
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(VerifyError::BadSignatureEncoding);
    }
    let sig_bytes: [u8; 64] = unhex(&sig_hex)
        .and_then(|b| b.try_into().ok())
        .ok_or(VerifyError::BadSignatureEncoding)?;
    let given = key_id(key);
    if let Some(recorded) = v.get("key_id").and_then(|k| k.as_str()) {
        if recorded != given {
            return Err(VerifyError::WrongKey {
                record: recorded.to_string(),
                given,
            });
        }
    }
    let msg = canonical(&v);
    key.verify_strict(&msg, &Signature::from_bytes(&sig_bytes))
        .map_err(|_| VerifyError::Mismatch)?;
    Ok(VerifiedValue {
        value: v,
        signed_bytes: msg,
        signature_hex: sig_hex,
    })
}
/// The key id that travels with every signature: `ed25519:` + 16 hex digits of blake3 of the
/// 32 raw public-key bytes. Short enough to read, long enough not to collide by accident.
pub fn key_id(vk: &VerifyingKey) -> String {
    format!("ed25519:{}", &blake3::hash(vk.as_bytes()).to_hex()[..16])
}

/// Parse a public key from SPKI PEM or 64 hex characters.
pub fn parse_public(text: &str) -> Result<VerifyingKey, String> {
    let t = text.trim();
    if t.starts_with("-----BEGIN") {
        return VerifyingKey::from_public_key_pem(t).map_err(|e| e.to_string());
    }
    let bytes = unhex(t).ok_or("neither PEM nor 64 hex characters")?;
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| "a raw Ed25519 public key is 32 bytes (64 hex characters)".to_string())?;
    VerifyingKey::from_bytes(&arr).map_err(|e| e.to_string())
}

/// The public key as SPKI PEM.
pub fn public_pem(vk: &VerifyingKey) -> String {
    vk.to_public_key_pem(LineEnding::LF)
        .expect("SPKI encoding of a valid key")
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(D[(b >> 4) as usize] as char);
        s.push(D[(b & 15) as usize] as char);
    }
    s
}

/// Parse hex (either case); None on odd length or a non-hex character.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let v = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(v(p[0])? << 4 | v(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        assert_eq!(hex(&[0, 15, 255]), "000fff");
        assert_eq!(unhex("000FfF").unwrap(), vec![0, 15, 255]);
        assert!(unhex("0g").is_none());
        assert!(unhex("abc").is_none());
    }
}
