//! The reference tokenizer: tiktoken `o200k_base`, pinned through tiktoken-rs's bundled BPE.
//!
//! Every SIT size and every "reference count" in the token triple uses this one tokenizer, so
//! providers with different native tokenizers are measured in the same unit. It is loaded once
//! per process (loading takes a moment) and shared read-only.

use tiktoken_rs::CoreBPE;

/// Name recorded with counts, so a future change of reference tokenizer is visible.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn o200k_golden_counts() {
        // Cross-checked with Python tiktoken's o200k_base.
        assert_eq!(count(""), 0);
        assert_eq!(count("hello world"), 2);
        assert_eq!(count("<|endoftext|>"), count("<|endoftext|>"));
        assert!(count("Compute 347 + 589. Reply with the number only.") > 8);
    }
}
