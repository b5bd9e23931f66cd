//! The hash table of a compact registry's shard: slot indices with a few bits of their key's
//! hash, in one flat array, so that a lookup reads one cache line of the table and then the
//! slot itself.
//!
//! A bucket is a `u32`: `[tag 6 | slot + 1 : 26]`, 0 for an empty bucket and all ones for a
//! removed one (a tombstone: lookups go on past it). The tag is the top 6 bits of the key's
//! hash, so a lookup compares the key of only about one slot in 64 that it passes over. Linear
//! probing from `hash & mask`, at most 3/4 full counting tombstones; a table that reaches it
//! is rebuilt, twice as large when it holds more than 3/8 of its capacity in live entries.
//! Sixteen buckets share a cache line, so a probe rarely leaves the first one.
//!
//! The table keeps no keys and no hashes: the caller compares keys (`eq`) and recomputes a
//! slot's hash when the table is rebuilt (`rehash`). It is not synchronised: the registry
//! holds it under its shard's lock.

const INDEX_BITS: u32 = 26;
const INDEX_MASK: u32 = (1 << INDEX_BITS) - 1;
/// How many slots a table can name: `slot + 1` fits in 26 bits and is never all ones (so no
/// bucket is mistaken for a tombstone).
pub(crate) const MAX_SLOTS: u32 = INDEX_MASK - 1;
const EMPTY: u32 = 0;
const TOMBSTONE: u32 = u32::MAX;
const MIN_BUCKETS: usize = 16;

#[inline]
fn tag(hash: u64) -> u32 {
    ((hash >> 58) as u32) << INDEX_BITS
}

/// Slot indices by key hash.
#[derive(Debug)]
pub(crate) struct Table {
    buckets: Box<[u32]>,
    /// Live entries.
    len: usize,
    /// Live entries plus tombstones.
    used: usize,
}

impl Table {
    /// A table with room for `n` entries before it grows.
    pub(crate) fn with_capacity(n: usize) -> Self {
        let buckets = (n.saturating_mul(4) / 3 + 1)
            .next_power_of_two()
            .max(MIN_BUCKETS);
        Table {
            buckets: vec![EMPTY; buckets].into_boxed_slice(),
            len: 0,
            used: 0,
        }
    }

    #[inline]
    fn mask(&self) -> usize {
        self.buckets.len() - 1
    }

    /// The slot whose key `eq` accepts, among those filed under `hash`.
    #[inline]
    pub(crate) fn find(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        let tag = tag(hash);
        let mask = self.mask();
        let mut p = hash as usize & mask;
        loop {
            let b = self.buckets[p];
            if b == EMPTY {
                return None;
            }
            if b != TOMBSTONE && b & !INDEX_MASK == tag && eq((b & INDEX_MASK) - 1) {
                return Some((b & INDEX_MASK) - 1);
            }
            p = (p + 1) & mask;
        }
    }

    /// Files `slot` under `hash`; the caller has checked that its key is not in the table
    /// (`find`). `rehash` gives the hash of a slot already in the table, for a rebuild.
    pub(crate) fn insert(&mut self, hash: u64, slot: u32, rehash: impl Fn(u32) -> u64) {
        assert!(slot < MAX_SLOTS, "slot index beyond the table's 26 bits");
        if (self.used + 1) * 4 > self.buckets.len() * 3 {
            let grow = (self.len + 1) * 8 > self.buckets.len() * 3;
            self.rebuild(
                if grow {
                    self.buckets.len() * 2
                } else {
                    self.buckets.len()
                },
                &rehash,
            );
        }
        let mask = self.mask();
        let mut p = hash as usize & mask;
        while self.buckets[p] != EMPTY && self.buckets[p] != TOMBSTONE {
            p = (p + 1) & mask;
        }
        if self.buckets[p] == EMPTY {
            self.used += 1;
        }
        self.buckets[p] = tag(hash) | (slot + 1);
        self.len += 1;
    }

    fn rebuild(&mut self, buckets: usize, rehash: &impl Fn(u32) -> u64) {
        let old = std::mem::replace(&mut self.buckets, vec![EMPTY; buckets].into_boxed_slice());
        let mask = buckets - 1;
        for b in old
            .iter()
            .copied()
            .filter(|&b| b != EMPTY && b != TOMBSTONE)
        {
            let mut p = rehash((b & INDEX_MASK) - 1) as usize & mask;
            while self.buckets[p] != EMPTY {
                p = (p + 1) & mask;
            }
            self.buckets[p] = b;
        }
        self.used = self.len;
    }

    /// Keeps the slots `keep` accepts and removes the others.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(u32) -> bool) {
        for b in self.buckets.iter_mut() {
            if *b != EMPTY && *b != TOMBSTONE && !keep((*b & INDEX_MASK) - 1) {
                *b = TOMBSTONE;
                self.len -= 1;
            }
        }
    }

    /// The slots in the table.
    pub(crate) fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.buckets
            .iter()
            .filter(|&&b| b != EMPTY && b != TOMBSTONE)
            .map(|&b| (b & INDEX_MASK) - 1)
    }

    /// Live entries.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Buckets (live, removed and empty).
    #[cfg(test)]
    pub(crate) fn buckets(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(all(test, not(surgewall_loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;
    use std::hash::BuildHasher;

    /// Keys are `u64`s kept in a vector indexed by slot; colliding hashes are forced by a
    /// hasher that keeps only a few bits.
    fn hash_of(key: u64, bits: u32) -> u64 {
        let h = foldhash::fast::FixedState::with_seed(7).hash_one(key);
        if bits == 64 {
            h
        } else {
            h & ((1u64 << bits) - 1) | h & (0x3f << 58)
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u64),
        Remove(u64),
        Find(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u64..200).prop_map(Op::Insert),
            (0u64..200).prop_map(Op::Remove),
            (0u64..200).prop_map(Op::Find),
        ]
    }

    proptest! {
        /// The table agrees with a `HashMap` through inserts, removals (tombstones), growth
        /// and rebuilds, with full hashes and with hashes of 3 bits (long probe chains).
        #[test]
        fn behaves_as_a_map(ops in proptest::collection::vec(op(), 1..400), bits in prop_oneof![Just(3u32), Just(64u32)]) {
            let mut table = Table::with_capacity(0);
            let mut model: HashMap<u64, u32> = HashMap::new();
            let mut keys: Vec<u64> = Vec::new(); // slot -> key
            for op in ops {
                match op {
                    Op::Insert(k) => {
                        let h = hash_of(k, bits);
                        let found = table.find(h, |s| keys[s as usize] == k);
                        prop_assert_eq!(found, model.get(&k).copied());
                        if found.is_none() {
                            let slot = keys.len() as u32;
                            keys.push(k);
                            table.insert(h, slot, |s| hash_of(keys[s as usize], bits));
                            model.insert(k, slot);
                        }
                    }
                    Op::Remove(k) => {
                        table.retain(|s| keys[s as usize] != k);
                        model.remove(&k);
                    }
                    Op::Find(k) => {
                        let found = table.find(hash_of(k, bits), |s| keys[s as usize] == k);
                        prop_assert_eq!(found, model.get(&k).copied());
                    }
                }
                prop_assert_eq!(table.len(), model.len());
                prop_assert!(table.used * 4 <= table.buckets() * 3);
            }
            let mut listed: Vec<u32> = table.iter().collect();
            listed.sort_unstable();
            let mut expected: Vec<u32> = model.values().copied().collect();
            expected.sort_unstable();
            prop_assert_eq!(listed, expected);
        }
    }

    #[test]
    fn tombstones_are_reclaimed_without_growing() {
        let mut table = Table::with_capacity(10);
        let buckets = table.buckets();
        // Insert and remove far more keys than the table holds: it rebuilds in place.
        for k in 0..10_000u32 {
            let h = hash_of(u64::from(k), 64);
            table.insert(h, k, |s| hash_of(u64::from(s), 64));
            table.retain(|s| s != k);
        }
        assert_eq!((table.len(), table.buckets()), (0, buckets));
    }
}
