//! The registry of keyed breakers and keyed bulkheads: each key and its state side by side in
//! one arena slot, found through a sharded table of 4-byte slot indices.
//!
//! ## Why not a map of values
//!
//! A keyed call needs the key's state right after finding the key. Here a shard's table
//! ([`Table`]) is a flat array of 4-byte buckets, each a slot index with 6 bits of its key's
//! hash, and the slot holds the key *and* the state: a lookup reads one cache line of the
//! table, then compares the key in the cache line the call works on next (a slot is 32 bytes
//! for a `u64`-keyed breaker and arena chunks start on a cache line). A map of
//! `(key, index)` plus a separate arena costs a third cache miss per call and about 20 more
//! bytes per key; a map of `(key, state)` moves the state when the table grows, so a permit
//! could not keep a reference to it.
//!
//! ## Slots
//!
//! A slot's **value** (`V`, the key's state: atomics only) lives as long as the registry. An
//! evicted key leaves it in place and the next key to get the slot renews it, so a permit
//! that keeps `&V` after its call stays memory-safe and is fenced by the value's own
//! generation or counts. A slot's **key** is written by the thread creating the key, under
//! the shard's write lock and before its index enters the table; it is read only under a lock
//! of the shard whose table holds the index; and it is dropped by the sweep that removes the
//! index, under the write lock, before the index goes back to the arena (whose mutex orders
//! the next writer after that drop). Keys with a per-key configuration (and the shared
//! overflow key) get reserved slots at build, written once and dropped with the registry:
//! their slot index says which configuration they use ([`CompactRegistry::class_of`]), so a
//! slot needs no room for it.
//!
//! ## Shards
//!
//! `parking_lot::RwLock<Table>` shards, cache-padded, four per core (as DashMap does). A
//! lookup hashes the key once (foldhash, seeded per registry) and takes the shard from bits
//! 32 and up of the hash, the position in the table from the low bits and the bucket's tag
//! from the top 6, so the three are independent; it then probes that shard under its read
//! lock.

use std::cell::UnsafeCell;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::mem::MaybeUninit;

use crossbeam_utils::CachePadded;
use parking_lot::RwLock;

use super::arena::{Arena, Zeroable};
use super::ledger::{Ledger, Options};
use super::table::{Table, MAX_SLOTS};
use super::{Entry, Overflow, RegistryFull, RegistryHasher, RegistryStats};
use crate::error::ConfigError;

/// A key's state in a compact registry: atomics, valid at all-zero (a vacant cell), kept for
/// the registry's life and renewed for each new key.
pub(crate) trait Cell: Entry + Zeroable {
    /// Readies the cell for a new key of configuration `class` (an opaque number of the
    /// registry's owner: the default class, or the class given to the key). Runs under the shard's write lock, before the key can be
    /// found; it must fence whatever permits of the slot's previous key are still out.
    fn renew(&self, class: u32);
}

/// One key and its state.
struct Slot<K, V> {
    value: V,
    key: UnsafeCell<MaybeUninit<K>>,
}

// SAFETY: all-zero is a valid `V` (`V: Zeroable`) and a valid `MaybeUninit<K>`.
unsafe impl<K, V: Zeroable> Zeroable for Slot<K, V> {
    fn zeroed() -> Self {
        Slot {
            value: V::zeroed(),
            key: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }
}

// SAFETY: `value` is `Sync`; `key` is only written or dropped by a thread that holds the
// write lock of the one shard whose table may hold the slot's index (or owns the registry),
// and read under a lock of that shard (see the module docs), so shared access to it is
// `&K` from several threads (hence `K: Sync`) and a key may be dropped on another thread
// than the one that wrote it (hence `K: Send`).
unsafe impl<K: Send + Sync, V: Sync> Sync for Slot<K, V> {}

impl<K, V> Slot<K, V> {
    /// # Safety
    /// The caller holds a lock of the shard whose table holds this slot's index (or the slot
    /// is reserved, whose key never changes).
    #[inline]
    unsafe fn key(&self) -> &K {
        // SAFETY: the key was written before the index could be found (see above).
        unsafe { (*self.key.get()).assume_init_ref() }
    }

    /// # Safety
    /// The slot is not reachable by any other thread (fresh from the arena, not in a table).
    unsafe fn write_key(&self, key: K) {
        // SAFETY: nobody else reads or writes the key (see above).
        unsafe { (*self.key.get()).write(key) };
    }

    /// # Safety
    /// The slot's key was written and is reachable by no other thread (its index was just
    /// removed under the write lock, or the registry is being dropped).
    unsafe fn drop_key(&self) {
        // SAFETY: as above; the key is not used again until the next `write_key`.
        unsafe { (*self.key.get()).assume_init_drop() };
    }
}

/// The bytes of one slot (a key and its cell).
#[cfg(test)]
pub(crate) const fn slot_bytes<K, V>() -> usize {
    std::mem::size_of::<Slot<K, V>>()
}

/// Keys mapped to compact cells; see the [module docs](self).
pub(crate) struct CompactRegistry<K, V> {
    shards: Box<[CachePadded<RwLock<Table>>]>,
    /// `(hash >> 32) & shard_mask` is the shard of a hash.
    shard_mask: usize,
    hasher: RegistryHasher,
    slots: Arena<Slot<K, V>>,
    /// Keys with a per-key configuration, and their reserved slots.
    reserved: HashMap<K, u32, RegistryHasher>,
    /// The configuration class of reserved slot `i` (slots `0..classes.len()`); other slots
    /// are of `default_class`.
    classes: Box<[u32]>,
    default_class: u32,
    /// The reserved slot of the shared overflow entry.
    overflow: Option<u32>,
    ledger: Ledger<K>,
}

/// Takes the next slot of a fresh arena for `key`, renewed for `class`, and notes its class.
fn reserve<K, V: Cell>(
    slots: &Arena<Slot<K, V>>,
    class_of: &mut Vec<u32>,
    key: K,
    class: u32,
) -> u32 {
    let i = slots.alloc();
    debug_assert_eq!(i as usize, class_of.len(), "reserved slots come first");
    let slot = slots.get(i).expect("allocated above");
    // SAFETY: a fresh slot of an arena no other thread sees yet.
    unsafe { slot.write_key(key) };
    slot.value.renew(class);
    class_of.push(class);
    i
}

fn shard_count() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    (cores * 4).next_power_of_two()
}

impl<K, V> CompactRegistry<K, V>
where
    K: Eq + Hash + Clone + Send + Sync,
    V: Cell,
{
    /// A registry with `options` whose keys are of `default_class`, except those `classes`
    /// gives their own (a later entry for the same key wins).
    pub(crate) fn new(
        options: Options<K>,
        default_class: u32,
        classes: Vec<(K, u32)>,
    ) -> Result<Self, ConfigError> {
        let shards = shard_count();
        let per_shard = options.capacity.div_ceil(shards);
        let slots = Arena::default();
        // A later class for the same key wins; reserved slots keep the keys' first order.
        let mut class_by_key: HashMap<K, u32, RegistryHasher> = HashMap::default();
        let mut keys = Vec::new();
        for (key, class) in classes {
            if class_by_key.insert(key.clone(), class).is_none() {
                keys.push(key);
            }
        }
        let slots_needed = options.max_keys.saturating_add(keys.len() + 1);
        if slots_needed > MAX_SLOTS as usize {
            return Err(ConfigError::new(
                "max_keys",
                format!(
                    "with its {} per-key configurations a keyed registry holds at most {} keys, got {}",
                    keys.len(),
                    MAX_SLOTS as usize - keys.len() - 1,
                    options.max_keys
                ),
            ));
        }
        let mut class_of = Vec::with_capacity(keys.len() + 1);
        let mut reserved = HashMap::with_capacity_and_hasher(keys.len(), RegistryHasher::default());
        for key in keys {
            let class = class_by_key[&key];
            let i = reserve(&slots, &mut class_of, key.clone(), class);
            reserved.insert(key, i);
        }
        let overflow = match &options.overflow {
            Overflow::Reject => None,
            Overflow::Shared(key) => {
                let class = class_by_key.get(key).copied().unwrap_or(default_class);
                Some(reserve(&slots, &mut class_of, key.clone(), class))
            }
        };
        Ok(CompactRegistry {
            shards: (0..shards)
                .map(|_| CachePadded::new(RwLock::new(Table::with_capacity(per_shard))))
                .collect(),
            shard_mask: shards - 1,
            hasher: RegistryHasher::default(),
            slots,
            reserved,
            classes: class_of.into_boxed_slice(),
            default_class,
            overflow,
            ledger: Ledger::new(&options),
        })
    }

    #[inline]
    fn shard(&self, hash: u64) -> &RwLock<Table> {
        &self.shards[(hash >> 32) as usize & self.shard_mask]
    }

    #[inline]
    fn slot(&self, i: u32) -> &Slot<K, V> {
        self.slots.get(i).expect("a mapped index has a slot")
    }

    /// Runs `f` on the key's slot index and cell, creating the key first if it is new. `f`
    /// runs under the shard's lock, so the key cannot be evicted meanwhile (keep `f` short and
    /// never call back into the registry from it); the cell itself may be kept beyond it.
    /// Beyond the cap, `f` runs on the shared overflow cell or the call fails.
    #[inline]
    pub(crate) fn with<'a, R>(
        &'a self,
        key: &K,
        f: impl FnOnce(u32, &'a V) -> R,
    ) -> Result<R, RegistryFull> {
        let hash = self.hasher.hash_one(key);
        let table = self.shard(hash).read();
        // SAFETY: key reads under the shard's read lock, of indices in its table.
        if let Some(i) = table.find(hash, |i| unsafe { self.slot(i).key() } == key) {
            return Ok(f(i, &self.slot(i).value));
        }
        drop(table);
        self.with_new(key, hash, f)
    }

    #[cold]
    #[inline(never)]
    fn with_new<'a, R>(
        &'a self,
        key: &K,
        hash: u64,
        f: impl FnOnce(u32, &'a V) -> R,
    ) -> Result<R, RegistryFull> {
        let mut table = self.shard(hash).write();
        // SAFETY: key reads under the shard's write lock, of indices in its table.
        if let Some(i) = table.find(hash, |i| unsafe { self.slot(i).key() } == key) {
            // Another thread created it between our read and our write lock.
            return Ok(f(i, &self.slot(i).value));
        }
        if let Some(i) = self.overflow_slot_of(key) {
            // The shared overflow entry's own key names it (it never enters a table).
            return Ok(f(i, &self.slot(i).value));
        }
        if !self.ledger.reserve() {
            drop(table);
            self.ledger.refuse(self.overflow.is_some())?;
            let i = self.overflow.expect("refuse fails without a shared entry");
            return Ok(f(i, &self.slot(i).value));
        }
        let i = match self.reserved.get(key) {
            Some(&i) => i,
            None => {
                let i = self.slots.alloc();
                // SAFETY: a free slot: in no table, and its previous key was dropped before
                // it was freed.
                unsafe { self.slot(i).write_key(key.clone()) };
                i
            }
        };
        let slot = self.slot(i);
        slot.value.renew(self.class_of(i));
        table.insert(hash, i, |j| {
            // SAFETY: rehashing the shard's own indices under its write lock.
            self.hasher.hash_one(unsafe { self.slot(j).key() })
        });
        Ok(f(i, &slot.value))
    }

    /// The cell of slot `i`, for a permit that kept its index: any index of an existing chunk
    /// names a valid cell (vacant if never handed out); `None` past the arena.
    #[inline]
    pub(crate) fn cell(&self, i: u32) -> Option<&V> {
        self.slots.get(i).map(|s| &s.value)
    }

    /// The configuration class of slot `i`.
    #[inline]
    pub(crate) fn class_of(&self, i: u32) -> u32 {
        self.classes
            .get(i as usize)
            .copied()
            .unwrap_or(self.default_class)
    }

    /// The key's slot and cell if the key is held, or is the shared overflow entry's key
    /// (never creates it).
    pub(crate) fn peek(&self, key: &K) -> Option<(u32, &V)> {
        let hash = self.hasher.hash_one(key);
        let table = self.shard(hash).read();
        // SAFETY: under the shard's read lock, of indices in its table.
        let i = table
            .find(hash, |i| unsafe { self.slot(i).key() } == key)
            .or_else(|| self.overflow_slot_of(key))?;
        Some((i, &self.slot(i).value))
    }

    /// The shared overflow entry's slot, if `key` is its key.
    fn overflow_slot_of(&self, key: &K) -> Option<u32> {
        let i = self.overflow?;
        // SAFETY: a reserved slot's key is written at build and dropped with the registry.
        (unsafe { self.slot(i).key() } == key).then_some(i)
    }

    /// Calls `f` for every key held (the overflow entry excluded), one shard at a time under
    /// its read lock. Never call back into the registry from `f`.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&K, u32, &V)) {
        for shard in self.shards.iter() {
            let table = shard.read();
            for i in table.iter() {
                let slot = self.slot(i);
                // SAFETY: under the shard's read lock, of an index in its table.
                f(unsafe { slot.key() }, i, &slot.value);
            }
        }
    }

    /// Evicts every key whose cell is not busy and has been idle for `idle_ttl` at `now_ns`;
    /// publishes one eviction event each and returns how many. Each shard is write-locked
    /// while it is swept.
    pub(crate) fn sweep(&self, now_ns: u64) -> usize {
        let mut evicted = 0;
        for shard in self.shards.iter() {
            let mut table = shard.write();
            table.retain(|i| {
                let slot = self.slot(i);
                let due = slot
                    .value
                    .idle_since(now_ns)
                    .is_some_and(|since| self.ledger.expired(since, now_ns))
                    && slot.value.try_evict();
                if due {
                    evicted += 1;
                    // SAFETY: under the write lock, of an index still in the table.
                    self.ledger.evicted(unsafe { slot.key() }, now_ns);
                    if !self.is_reserved(i) {
                        // SAFETY: the index leaves the table now, under the write lock: no
                        // thread can reach the key through the table any more, only the next
                        // owner of the freed index writes it again, and `key_at` reads it
                        // only under the arena's lock, which `free_with` holds here.
                        self.slots.free_with(i, || unsafe { slot.drop_key() });
                    }
                }
                !due
            });
        }
        self.ledger.swept(evicted);
        evicted
    }

    /// The event key (see `Options::event_key`) of the key that owns `cell`, for a caller
    /// that holds no shard lock (a result recorded through a permit): `owned(cell)` says,
    /// under the arena's lock, whether the cell still belongs to the key the caller knows
    /// (say, by its generation); `None` when it does not, or `cell` is not this registry's.
    ///
    /// Sound because a sweep drops an evicted key under that same lock (`Arena::free_with`)
    /// after its evicting CAS, which `owned` then sees; a reserved slot's key never changes.
    pub(crate) fn key_at(&self, cell: &V, owned: impl FnOnce(&V) -> bool) -> Option<u64> {
        let i = self.slots.index_of(cell as *const V)?;
        let slot = self.slots.get(i)?;
        if !std::ptr::eq(&slot.value, cell) {
            return None;
        }
        if self.is_reserved(i) {
            // SAFETY: a reserved slot's key is written at build and dropped with the registry.
            return Some(self.ledger.event_key_of(unsafe { slot.key() }));
        }
        self.slots.locked(|| {
            // SAFETY: the key is not dropped while the arena's lock is held (see above), and
            // `owned` confirms that it was written and not yet dropped: the caller's key.
            owned(&slot.value).then(|| self.ledger.event_key_of(unsafe { slot.key() }))
        })
    }

    fn is_reserved(&self, i: u32) -> bool {
        (i as usize) < self.classes.len()
    }

    /// Keys held (the overflow entry excluded).
    pub(crate) fn len(&self) -> usize {
        self.ledger.len()
    }

    pub(crate) fn id(&self) -> u64 {
        self.ledger.id()
    }

    /// The `u64` events name `key` by.
    pub(crate) fn event_key_of(&self, key: &K) -> u64 {
        self.ledger.event_key_of(key)
    }

    pub(crate) fn stats(&self) -> RegistryStats {
        self.ledger.stats()
    }
}

impl<K, V> Drop for CompactRegistry<K, V> {
    fn drop(&mut self) {
        if !std::mem::needs_drop::<K>() {
            return;
        }
        let reserved = self.classes.len() as u32;
        let slots = &self.slots;
        let drop_key = |i: u32| {
            if let Some(slot) = slots.get(i) {
                // SAFETY: the registry is being dropped: no other thread can reach it, and
                // every index below is a slot whose key was written and not yet dropped
                // (mapped indices, and the reserved ones).
                unsafe { slot.drop_key() };
            }
        };
        for shard in self.shards.iter_mut() {
            for i in shard.get_mut().iter() {
                if i >= reserved {
                    drop_key(i);
                }
            }
        }
        (0..reserved).for_each(drop_key);
    }
}

#[cfg(all(test, not(surgewall_loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU32, Ordering};
    use std::sync::{Arc, Barrier};

    /// A cell that remembers its class and how often it was renewed.
    #[derive(Default)]
    struct Probe {
        class: AtomicU32,
        renewals: AtomicU32,
        busy: AtomicBool,
    }

    // SAFETY: atomics only.
    unsafe impl Zeroable for Probe {
        fn zeroed() -> Self {
            Probe::default()
        }
    }

    impl Entry for Probe {
        fn idle_since(&self, _: u64) -> Option<u64> {
            (!self.busy.load(Ordering::Relaxed)).then_some(0)
        }
    }

    impl Cell for Probe {
        fn renew(&self, class: u32) {
            self.class.store(class, Ordering::Relaxed);
            self.renewals.fetch_add(1, Ordering::Relaxed);
            self.busy.store(false, Ordering::Relaxed);
        }
    }

    /// A key that counts its live copies, to catch a leaked or twice-dropped key.
    #[derive(Debug)]
    struct Key {
        id: u64,
        live: Arc<AtomicIsize>,
    }

    impl Key {
        fn new(id: u64, live: &Arc<AtomicIsize>) -> Self {
            live.fetch_add(1, Ordering::SeqCst);
            Key {
                id,
                live: live.clone(),
            }
        }
    }

    impl Clone for Key {
        fn clone(&self) -> Self {
            Key::new(self.id, &self.live)
        }
    }

    impl Drop for Key {
        fn drop(&mut self) {
            self.live.fetch_sub(1, Ordering::SeqCst);
        }
    }

    impl PartialEq for Key {
        fn eq(&self, other: &Self) -> bool {
            self.id == other.id
        }
    }

    impl Eq for Key {}

    impl std::hash::Hash for Key {
        fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
            self.id.hash(state);
        }
    }

    fn options<K>(max_keys: usize, overflow: Overflow<K>) -> Options<K> {
        Options {
            max_keys,
            overflow,
            idle_ttl: Duration::ZERO,
            ..Options::default()
        }
    }

    fn class_of_key(r: &CompactRegistry<u64, Probe>, key: u64) -> (u32, u32) {
        r.with(&key, |slot, cell| {
            (slot, cell.class.load(Ordering::Relaxed))
        })
        .unwrap()
    }

    use std::time::Duration;

    #[test]
    fn keys_get_their_class_and_the_last_override_wins() {
        let r = CompactRegistry::<u64, Probe>::new(
            options(10, Overflow::Shared(99)),
            7,
            vec![(1, 100), (2, 200), (1, 101), (99, 900)],
        )
        .unwrap();
        assert_eq!(class_of_key(&r, 1).1, 101);
        assert_eq!(class_of_key(&r, 2).1, 200);
        assert_eq!(
            class_of_key(&r, 3).1,
            7,
            "other keys are of the default class"
        );
        let shared = r.overflow.unwrap();
        assert_eq!(
            r.class_of(shared),
            900,
            "the overflow entry takes its key's class"
        );
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn beyond_the_cap_keys_share_the_overflow_cell_or_are_refused() {
        let shared =
            CompactRegistry::<u64, Probe>::new(options(2, Overflow::Shared(0)), 0, vec![]).unwrap();
        let a = class_of_key(&shared, 1).0;
        let b = class_of_key(&shared, 2).0;
        let c = class_of_key(&shared, 3).0;
        let d = class_of_key(&shared, 4).0;
        assert_ne!(a, b);
        assert_eq!((c, d), (shared.overflow.unwrap(), shared.overflow.unwrap()));
        assert_eq!(shared.stats().overflowed, 2);
        assert!(shared.peek(&3).is_none(), "an overflowed key is not held");

        let reject =
            CompactRegistry::<u64, Probe>::new(options(1, Overflow::Reject), 0, vec![]).unwrap();
        reject.with(&1, |_, _| ()).unwrap();
        assert_eq!(
            reject.with(&2, |_, _| ()).unwrap_err(),
            RegistryFull { max_keys: 1 }
        );
        assert_eq!(reject.stats().rejected, 1);
    }

    #[test]
    fn an_evicted_override_key_comes_back_to_its_slot_and_others_reuse_freed_ones() {
        let r = CompactRegistry::<u64, Probe>::new(options(10, Overflow::Reject), 0, vec![(5, 50)])
            .unwrap();
        let (reserved, _) = class_of_key(&r, 5);
        let (plain, _) = class_of_key(&r, 6);
        r.with(&7, |_, cell| cell.busy.store(true, Ordering::Relaxed))
            .unwrap();
        assert_eq!(r.sweep(1), 2, "the busy key stays");
        assert!(r.peek(&5).is_none() && r.peek(&6).is_none() && r.peek(&7).is_some());
        // The override key returns to its reserved slot, renewed with its class.
        let (again, class) = class_of_key(&r, 5);
        assert_eq!((again, class), (reserved, 50));
        // Renewed at build, at its first use and at its return.
        assert_eq!(
            r.cell(reserved).unwrap().renewals.load(Ordering::Relaxed),
            3
        );
        // A new key takes the freed plain slot.
        assert_eq!(class_of_key(&r, 8).0, plain);
        let s = r.stats();
        assert_eq!((s.keys, s.created, s.evicted), (3, 5, 2));
    }

    #[test]
    fn key_at_names_the_owner_of_a_cell_only_while_it_owns_it() {
        let mut o = options(10, Overflow::Shared(99));
        o.event_key = Some(|k| *k * 10);
        let r = CompactRegistry::<u64, Probe>::new(o, 0, vec![(5, 1)]).unwrap();
        let cell = r.with(&7, |_, c| c).unwrap();
        assert_eq!(r.key_at(cell, |_| true), Some(70));
        assert_eq!(
            r.key_at(cell, |_| false),
            None,
            "not the caller's key any more"
        );
        // Reserved slots (an override key, the overflow entry) need no confirmation.
        let special = r.with(&5, |_, c| c).unwrap();
        assert_eq!(r.key_at(special, |_| false), Some(50));
        let overflow = r.cell(r.overflow.unwrap()).unwrap();
        assert_eq!(r.key_at(overflow, |_| false), Some(990));
        // A cell of another registry is not this one's.
        let other =
            CompactRegistry::<u64, Probe>::new(options(10, Overflow::Reject), 0, vec![]).unwrap();
        let foreign = other.with(&7, |_, c| c).unwrap();
        assert_eq!(r.key_at(foreign, |_| true), None);
    }

    #[test]
    fn keys_are_dropped_once_through_eviction_reuse_and_drop() {
        let live = Arc::new(AtomicIsize::new(0));
        {
            let r = CompactRegistry::<Key, Probe>::new(
                options(100, Overflow::Shared(Key::new(0, &live))),
                0,
                vec![(Key::new(1, &live), 1)],
            )
            .unwrap();
            for id in 1..50 {
                r.with(&Key::new(id, &live), |_, _| ()).unwrap();
            }
            assert_eq!(r.sweep(1), 49);
            for id in 30..80 {
                r.with(&Key::new(id, &live), |_, _| ()).unwrap();
            }
            // 50 keys in plain slots; key 1 in its reserved slot and in the map of reserved
            // keys; the overflow key 0 in its slot.
            assert_eq!(live.load(Ordering::SeqCst), 53);
        }
        assert_eq!(
            live.load(Ordering::SeqCst),
            0,
            "every key dropped exactly once"
        );
    }

    #[test]
    fn racing_threads_get_one_slot_per_key() {
        let r = Arc::new(
            CompactRegistry::<u64, Probe>::new(options(10_000, Overflow::Reject), 0, vec![])
                .unwrap(),
        );
        let threads = 4;
        let barrier = Arc::new(Barrier::new(threads));
        let seen: Vec<Vec<u32>> = (0..threads)
            .map(|_| {
                let (r, barrier) = (r.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    (0..2_000u64)
                        .map(|k| r.with(&k, |slot, _| slot).unwrap())
                        .collect()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        assert!(seen.iter().all(|s| *s == seen[0]));
        let mut slots = seen[0].clone();
        slots.sort_unstable();
        slots.dedup();
        assert_eq!(slots.len(), 2_000);
        assert_eq!(r.stats().created, 2_000);
    }

    #[test]
    fn a_cap_beyond_the_slot_space_is_refused_naming_max_keys() {
        let err =
            CompactRegistry::<u64, Probe>::new(options(usize::MAX, Overflow::Reject), 0, vec![])
                .err()
                .unwrap();
        assert_eq!(err.field(), "max_keys");
    }
}
