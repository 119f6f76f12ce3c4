//! The record chunks of the store's layout 2 (see the module doc of [`crate::store`]).
//!
//! A chunk holds the records of one append that fall in one UTC hour, in the order they were
//! appended, each as a frame: `len` (u32 BE, the record's byte length), `at_ms` (i64 BE),
//! `seq` (u64 BE), blake3 of the record bytes (32), the record bytes (observation JSON,
//! exactly the bytes that were hashed). The frame header repeats what the record says so a
//! scan can choose records by time or seq without parsing them.
//!
//! Why chunks: one record a sled key held ingest at 27,000-48,000 records/s (sled 0.34 pays
//! per insert); the store now writes an append's chunks into its observation log and gives
//! sled one small key per chunk (BENCHMARKS.md, "Store ingest"). A chunk closes at
//! [`crate::store::CHUNK_BYTES`], so a chunk read back is small.

use sit_core::time::HOUR_MS;

/// Bytes of a frame's header before the record: len, at_ms, seq, hash.
pub const HEADER: usize = 4 + 8 + 8 + 32;

/// One record of a chunk, borrowed from the chunk's bytes.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    pub at_ms: i64,
    pub seq: u64,
    pub hash: [u8; 32],
    pub bytes: &'a [u8],
}

/// Append a frame to `out`.
pub fn push(out: &mut Vec<u8>, at_ms: i64, seq: u64, hash: &[u8; 32], bytes: &[u8]) {
    out.reserve(HEADER + bytes.len());
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(&at_ms.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(hash);
    out.extend_from_slice(bytes);
}

/// The frames of a chunk, in order; an error names the byte offset of a damaged frame.
pub fn frames(chunk: &[u8]) -> impl Iterator<Item = Result<Frame<'_>, String>> + '_ {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        if at >= chunk.len() {
            return None;
        }
        let rest = &chunk[at..];
        if rest.len() < HEADER {
            at = chunk.len();
            return Some(Err(format!("a frame header is cut short at byte {at}")));
        }
        let len = u32::from_be_bytes(rest[0..4].try_into().unwrap()) as usize;
        if rest.len() < HEADER + len {
            let off = at;
            at = chunk.len();
            return Some(Err(format!(
                "the frame at byte {off} says {len} bytes, {} remain",
                rest.len() - HEADER
            )));
        }
        let f = Frame {
            at_ms: i64::from_be_bytes(rest[4..12].try_into().unwrap()),
            seq: u64::from_be_bytes(rest[12..20].try_into().unwrap()),
            hash: rest[20..52].try_into().unwrap(),
            bytes: &rest[HEADER..HEADER + len],
        };
        at += HEADER + len;
        Some(Ok(f))
    })
}

/// A template: the serialisation of a record with another `seq` and `prev_hash` and no
/// `origin`, from which [`push_spliced`] writes the record's own serialisation without
/// serialising it again. `None` when the bytes do not have that shape (then the record is
/// serialised whole).
#[derive(Debug, Clone, Copy)]
pub struct Template<'a> {
    bytes: &'a [u8],
    /// Where the members after `prev_hash` begin.
    body: usize,
}

const SEQ: &[u8] = b"{\"seq\":";
const PREV: &[u8] = b",\"prev_hash\":\"";

impl<'a> Template<'a> {
    pub fn new(bytes: &'a [u8]) -> Option<Template<'a>> {
        let digits = bytes
            .get(SEQ.len()..)?
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let prev_at = SEQ.len() + digits;
        let body = prev_at + PREV.len() + 64 + 1;
        (bytes.starts_with(SEQ)
            && digits > 0
            && bytes.get(prev_at..prev_at + PREV.len())? == PREV
            && bytes.get(body - 1)? == &b'"'
            && bytes.last()? == &b'}'
            && body < bytes.len())
        .then_some(Template { bytes, body })
    }

    /// Bytes of the record written from this template, without `origin` (an upper bound).
    pub fn len(&self) -> usize {
        self.bytes.len() + 20
    }

    /// Write the record: the template with `seq` and `prev_hash` (`prev_hex`, 64 characters)
    /// replaced and `origin`, the record's last member, added.
    fn write(
        &self,
        out: &mut Vec<u8>,
        seq: u64,
        prev_hex: &str,
        origin: Option<&sit_core::observation::Origin>,
    ) {
        use std::io::Write;
        assert_eq!(prev_hex.len(), 64, "a prev_hash is 64 hex characters");
        out.extend_from_slice(SEQ);
        write!(out, "{seq}").expect("writing to a Vec");
        out.extend_from_slice(PREV);
        out.extend_from_slice(prev_hex.as_bytes());
        out.push(b'"');
        out.extend_from_slice(&self.bytes[self.body..self.bytes.len() - 1]);
        if let Some(o) = origin {
            out.extend_from_slice(b",\"origin\":");
            serde_json::to_writer(&mut *out, o).expect("origin serialises");
        }
        out.push(b'}');
    }
}

/// Append the frame of a record written from `template` (see [`Template`]) straight into
/// `out`, without a copy of the record of its own; returns the record's hash.
pub fn push_spliced(
    out: &mut Vec<u8>,
    at_ms: i64,
    seq: u64,
    template: Template<'_>,
    prev_hex: &str,
    origin: Option<&sit_core::observation::Origin>,
) -> [u8; 32] {
    let start = out.len();
    out.reserve(HEADER + template.len() + 128);
    out.extend_from_slice(&[0; HEADER]);
    template.write(out, seq, prev_hex, origin);
    let bytes = &out[start + HEADER..];
    let hash = *blake3::hash(bytes).as_bytes();
    let len = bytes.len() as u32;
    let head = &mut out[start..start + HEADER];
    head[0..4].copy_from_slice(&len.to_be_bytes());
    head[4..12].copy_from_slice(&at_ms.to_be_bytes());
    head[12..20].copy_from_slice(&seq.to_be_bytes());
    head[20..52].copy_from_slice(&hash);
    hash
}

/// The hour a record is filed under.
pub fn hour(at_ms: i64) -> i64 {
    at_ms.div_euclid(HOUR_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The record [`push_spliced`] writes from `template`, and its frame's hash checked.
    fn splice(
        template: &[u8],
        seq: u64,
        prev_hex: &str,
        origin: Option<&sit_core::observation::Origin>,
    ) -> Option<Vec<u8>> {
        let t = Template::new(template)?;
        let mut c = vec![7u8; 3];
        let h = push_spliced(&mut c, -1, seq, t, prev_hex, origin);
        let f = frames(&c[3..]).next().unwrap().unwrap();
        assert_eq!((f.at_ms, f.seq, f.hash), (-1, seq, h));
        assert_eq!(&h, blake3::hash(f.bytes).as_bytes());
        assert_eq!(c[..3], [7, 7, 7], "what was in the chunk before stays");
        Some(f.bytes.to_vec())
    }

    #[test]
    fn a_spliced_record_is_the_record_serialised() {
        let mut o = sit_core::observation::sample();
        o.seq = 41;
        o.prev_hash = "a".repeat(64);
        o.origin = None;
        let template = serde_json::to_vec(&o).unwrap();
        o.seq = 123_456;
        o.prev_hash = "0".repeat(64);
        o.origin = Some(sit_core::observation::Origin {
            seq: 41,
            hash: "b".repeat(64),
        });
        let got = splice(&template, o.seq, &o.prev_hash, o.origin.as_ref()).unwrap();
        assert_eq!(
            String::from_utf8(got).unwrap(),
            serde_json::to_string(&o).unwrap()
        );
        o.origin = None;
        let got = splice(&template, o.seq, &o.prev_hash, None).unwrap();
        assert_eq!(got, serde_json::to_vec(&o).unwrap());
        // anything else is serialised whole
        assert!(splice(b"{\"prev_hash\":\"x\"}", 1, &o.prev_hash, None).is_none());
        assert!(splice(b"{\"seq\":1}", 1, &o.prev_hash, None).is_none());
        assert!(splice(&template[..template.len() - 1], 1, &o.prev_hash, None).is_none());
    }

    #[test]
    fn frames_round_trip_and_a_cut_chunk_is_named() {
        let mut c = Vec::new();
        push(&mut c, -5, 7, &[1; 32], b"{\"a\":1}");
        push(&mut c, 9, 8, &[2; 32], b"");
        let got: Vec<_> = frames(&c).map(|f| f.unwrap()).collect();
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].at_ms, got[0].seq, got[0].bytes),
            (-5, 7, &b"{\"a\":1}"[..])
        );
        assert_eq!((got[1].at_ms, got[1].seq, got[1].hash), (9, 8, [2; 32]));
        let cut = &c[..c.len() - HEADER + 3];
        let r: Vec<_> = frames(cut).collect();
        assert!(r[1].as_ref().unwrap_err().contains("cut short"), "{r:?}");
        assert_eq!(hour(-1), -1);
        assert_eq!(hour(HOUR_MS), 1);
    }
}
