//! A small seeded PRNG (SplitMix64) for probe generation, schedules and the simulator.
//!
//! Why our own: probe instances must be identical for the same (family, seed) on every machine
//! and in every future version of the binary; depending on an external RNG crate's stream
//! stability would put the suite hash at the mercy of its semver. SplitMix64 is 10 lines and
//! its output sequence is fixed forever.

/// SplitMix64 (Steele, Lea, Flood 2014).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator whose state starts at `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    /// A generator seeded from arbitrary bytes: the first 8 bytes (little-endian) of blake3
    /// over the parts, each preceded by its length (u64 little-endian).
    pub fn from_bytes(parts: &[&[u8]]) -> Rng {
        let mut h = blake3::Hasher::new();
        for p in parts {
            h.update(&(p.len() as u64).to_le_bytes());
            h.update(p);
        }
        let out = h.finalize();
        Rng(u64::from_le_bytes(out.as_bytes()[..8].try_into().unwrap()))
    }
    /// The next 64 bits of the SplitMix64 stream.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform integer in `lo..=hi` (Lemire-free modulo; the tiny bias is irrelevant here and
    /// keeps the stream simple to re-implement).
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        debug_assert!(hi >= lo);
        let span = (hi - lo) as u64 + 1;
        lo + (self.next_u64() % span) as i64
    }
    /// A uniformly drawn element of `items` (through [`Rng::range`]); panics when empty.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.range(0, items.len() as i64 - 1) as usize]
    }
    /// True with probability `permille / 1000`.
    pub fn chance_permille(&mut self, permille: u32) -> bool {
        (self.next_u64() % 1000) < permille as u64
    }
    /// Uniform in [0, 1) — for the simulator only, never on the settlement path.
    pub fn unit_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Standard normal (Box–Muller) — simulator only.
    pub fn normal(&mut self) -> f64 {
        let u1 = self.unit_f64().max(1e-12);
        let u2 = self.unit_f64();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
    /// Lowercase hex string of `n` bytes.
    pub fn hex(&mut self, n: usize) -> String {
        let mut s = String::with_capacity(n * 2);
        while s.len() < n * 2 {
            s.push_str(&format!("{:016x}", self.next_u64()));
        }
        s.truncate(n * 2);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn splitmix_golden_stream() {
        // Reference values of SplitMix64 seeded with 0.
        let mut r = Rng::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(r.next_u64(), 0x06C4_5D18_8009_454F);
    }
}
