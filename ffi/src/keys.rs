//! The 64-bit keys of keyed registries over the C ABI.
//!
//! Keyed bulkheads and keyed breakers are keyed by `uint64_t`. A byte-string key (any bytes:
//! `_str` functions hash them as they are and do not require UTF-8; a user name,
//! an endpoint) is hashed to 64 bits with a seed drawn when the configuration is made, so a
//! per-key setting given as a string before the object exists lands on the same key as the
//! calls made later, and nobody outside the process can aim two keys at one number. The
//! top value is reserved for the shared overflow entry and never comes out of the hash.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// The key of the shared overflow entry. Under the shared-overflow policy
/// (`_set_max_keys(..., true)`) it names that entry (to look at it or reset it), never a key
/// of its own; under the reject policy there is no such entry and it is an ordinary key. Do
/// not use it for a key of your own (string keys never hash to it).
pub const SURGEWALL_OVERFLOW_KEY: u64 = u64::MAX;

/// How one keyed object turns byte strings into keys.
#[derive(Clone)]
pub(crate) struct KeySeed(RandomState);

impl KeySeed {
    pub(crate) fn new() -> Self {
        KeySeed(RandomState::new())
    }

    /// The key of `bytes`: never `SURGEWALL_OVERFLOW_KEY`.
    pub(crate) fn key_of(&self, bytes: &[u8]) -> u64 {
        let mut h = self.0.build_hasher();
        h.write(bytes);
        h.finish().min(SURGEWALL_OVERFLOW_KEY - 1)
    }
}

/// A key cap as given to `_set_max_keys`: at least 1 (the core would silently make 0 one key).
pub(crate) fn key_cap(max_keys: usize) -> Result<usize, engine::ConfigError> {
    if max_keys == 0 {
        return Err(engine::ConfigError::new(
            "max_keys",
            "must be at least 1 (a keyed registry always has a key cap), got 0",
        ));
    }
    Ok(max_keys)
}
