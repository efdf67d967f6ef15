//! A tiny seeded pseudo-random generator: every fault the device injects is
//! drawn from it, so one seed replays a whole run byte for byte.
//!
//! SplitMix64 (Steele, Lea and Flood): one add and two multiply-xorshift
//! rounds per output, any seed (0 included) gives a full-period stream, and
//! nearby seeds give unrelated streams, which matters because tests derive
//! seeds by adding small numbers to a printed one. Not for cryptography.

/// The SplitMix64 increment, the golden ratio in 64-bit fixed point.
const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// A deterministic stream of pseudo-random numbers.
#[derive(Debug, Clone)]
pub(crate) struct Rng {
    state: u64,
}

impl Rng {
    /// The stream for `seed`.
    pub(crate) const fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound`, by multiply-high (Lemire). The bias, at most
    /// `bound / 2^64`, does not matter for fault injection.
    ///
    /// # Panics
    ///
    /// When `bound` is 0: there is no number to pick.
    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0, "Rng::below(0)");
        let wide = u128::from(self.next_u64()) * u128::from(bound);
        // The high half of a product of two u64 values fits in a u64.
        #[allow(clippy::cast_possible_truncation)]
        let high = (wide >> 64) as u64;
        high
    }

    /// An index in `0..len`.
    ///
    /// # Panics
    ///
    /// When `len` is 0.
    pub(crate) fn index_below(&mut self, len: usize) -> usize {
        let bound = u64::try_from(len).unwrap_or(u64::MAX);
        // Below `len`, so it fits in a usize.
        usize::try_from(self.below(bound)).unwrap_or(0)
    }

    /// `true` with probability `1 / one_in`.
    pub(crate) fn one_in(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }

    /// Fills `buf` with random bytes.
    pub(crate) fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }

    /// Puts `items` in a uniformly random order (Fisher-Yates).
    pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
        for last in (1..items.len()).rev() {
            let pick = self.index_below(last + 1);
            items.swap(last, pick);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_splitmix64_stream() {
        // The first outputs for seed 0 in the reference implementation.
        let mut rng = Rng::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn the_same_seed_gives_the_same_stream() {
        let draw = |seed| {
            let mut rng = Rng::new(seed);
            let mut bytes = [0u8; 13];
            rng.fill(&mut bytes);
            (rng.next_u64(), rng.below(1000), bytes)
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8), "neighbouring seeds differ");
    }

    #[test]
    fn below_stays_in_range_and_reaches_both_ends() {
        let mut rng = Rng::new(3);
        let mut seen = [false; 5];
        for _ in 0..1000 {
            let value = rng.below(5);
            assert!(value < 5);
            seen[usize::try_from(value).unwrap()] = true;
        }
        assert_eq!(seen, [true; 5]);
        assert_eq!(Rng::new(9).below(1), 0);
    }

    #[test]
    fn shuffle_permutes() {
        let mut rng = Rng::new(11);
        let mut items: Vec<u32> = (0..50).collect();
        rng.shuffle(&mut items);
        assert_ne!(items, (0..50).collect::<Vec<_>>(), "moved something");
        items.sort_unstable();
        assert_eq!(items, (0..50).collect::<Vec<_>>(), "lost nothing");
    }
}
