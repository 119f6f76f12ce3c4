//! The reference tokenizer: tiktoken `o200k_base`, pinned through tiktoken-rs's bundled BPE.
//!
//! Every SIT size and every "reference count" in the token triple uses this one tokenizer, so
//! providers with different native tokenizers are measured in the same unit. It is loaded once
//! per process (loading takes a moment) and shared read-only.

use tiktoken_rs::CoreBPE;

/// The reference tokenizer's name (hashed into [`fingerprint`], so a change of tokenizer
/// changes the fingerprint and the suite hashes that cover it).
pub const REFERENCE_TOKENIZER: &str = "o200k_base";

fn bpe() -> &'static CoreBPE {
    tiktoken_rs::o200k_base_singleton()
}

/// Load the tokenizer now (call at start-up so the first probe is not slowed by it).
pub fn warm_up() {
    let _ = bpe();
}

/// Number of `o200k_base` tokens in `text` (ordinary text: special-token strings are counted
/// as plain text, which is what a provider bills for user content).
pub fn count(text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    bpe().encode_ordinary(text).len() as u64
}

/// blake3 (hex) of the reference tokenizer's vocabulary as this build loads it: every rank's
/// bytes, in rank order, until the first rank that does not exist, then the ranks of a few
/// texts that exercise the split pattern.
/// Equal vocabularies give equal fingerprints; a changed BPE file or pattern does not.
pub fn fingerprint() -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"sit-tokenizer-v1\n");
    h.update(REFERENCE_TOKENIZER.as_bytes());
    let mut rank = 0u32;
    while let Ok(b) = bpe().decode_bytes(&[rank]) {
        h.update(&(b.len() as u32).to_le_bytes());
        h.update(&b);
        rank += 1;
    }
    h.update(&rank.to_le_bytes());
    // The split pattern is not public: fingerprint its effect on texts that exercise it.
    for t in [
        "Compute 347 + 589. Reply with the number only.",
        "  leading spaces, CamelCaseWords, don't, I'm, 12345678, 3.14159\n\n\ttabs",
        "Ünïcödé – “quotes” 你好，世界 🙂 <|endoftext|>",
    ] {
        for r in bpe().encode_ordinary(t) {
            h.update(&r.to_le_bytes());
        }
    }
    h.finalize().to_hex().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression guard for issue 12 ("hashes that can drift"): every SIT size depends on the
    /// reference tokenizer's vocabulary, which comes from tiktoken-rs's bundled BPE file; the
    /// crate is pinned exactly, and this pins what it loads. A different vocabulary is a new
    /// suite version, never a silent change.
    #[test]
    fn reference_tokenizer_vocabulary_is_pinned() {
        assert_eq!(
            fingerprint(),
            "a04996d0883f67d8ce44219bd27e6dad752cca5741c027fd9a775f5efb2ccbd5"
        );
    }

    #[test]
    fn o200k_golden_counts() {
        // Cross-checked with Python tiktoken's o200k_base.
        assert_eq!(count(""), 0);
        assert_eq!(count("hello world"), 2);
        assert_eq!(count("<|endoftext|>"), count("<|endoftext|>"));
        assert!(count("Compute 347 + 589. Reply with the number only.") > 8);
    }
}
