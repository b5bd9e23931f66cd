//! A tiny seedable generator (SplitMix64) for jitter: deterministic under a seed, lock-free,
//! allocation-free. Not for cryptography.

use crate::sync::{AtomicU64, Ordering};

/// A shared SplitMix64 stream: each draw is one `fetch_add` on the state.
pub(crate) struct SplitMix {
    state: AtomicU64,
}

const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

impl SplitMix {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            state: AtomicU64::new(seed),
        }
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&self) -> u64 {
        // Relaxed: draws only need to be distinct, not ordered with anything else.
        mix(self
            .state
            .fetch_add(GAMMA, Ordering::Relaxed)
            .wrapping_add(GAMMA))
    }

    /// What the next [`next_u64`](Self::next_u64) would return, without drawing it.
    pub(crate) fn peek_u64(&self) -> u64 {
        mix(self.state.load(Ordering::Relaxed).wrapping_add(GAMMA))
    }

    /// A uniform float in [0, 1).
    pub(crate) fn next_f64(&self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// The SplitMix64 finaliser.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seed for generators nobody seeded: differs per process and per call.
pub(crate) fn entropy_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(GAMMA);
    h.finish()
}
