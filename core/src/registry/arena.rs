//! A growable arena of small cells with stable addresses, for compact registry values.
//!
//! A registry of compact values keeps a 4-byte index in its map and the value's state here:
//! no allocation (and no allocator header or `Arc` counts) per key. Chunks double in size and
//! are never moved or freed while the arena lives, so a `&T` stays valid; freed indices are
//! reused for new keys.

use std::sync::{Mutex, OnceLock, PoisonError};

const FIRST: u64 = 64;
/// 64 * (2^26 - 1) cells: more than a u32 index can name.
const CHUNKS: usize = 26;

pub(crate) struct Arena<T> {
    chunks: [OnceLock<Box<[T]>>; CHUNKS],
    alloc: Mutex<Alloc>,
}

#[derive(Default)]
struct Alloc {
    next: u32,
    free: Vec<u32>,
}

impl<T> Default for Arena<T> {
    fn default() -> Self {
        Self {
            chunks: std::array::from_fn(|_| OnceLock::new()),
            alloc: Mutex::new(Alloc::default()),
        }
    }
}

/// Chunk `c` holds `64 << c` cells starting at index `64 * (2^c - 1)`.
#[inline]
fn locate(i: u32) -> (usize, usize) {
    let j = u64::from(i) / FIRST + 1;
    let c = 63 - j.leading_zeros() as usize;
    let base = FIRST * ((1 << c) - 1);
    (c, (u64::from(i) - base) as usize)
}

impl<T> Arena<T> {
    /// The cell at `i`, if `i` was ever handed out.
    #[inline]
    pub(crate) fn get(&self, i: u32) -> Option<&T> {
        let (c, o) = locate(i);
        self.chunks.get(c)?.get()?.get(o)
    }

    /// A free cell: a reused one, or a new one (growing the arena). `init` resets it.
    pub(crate) fn alloc(&self, new: impl Fn() -> T, init: impl FnOnce(&T)) -> u32 {
        let mut a = self.alloc.lock().unwrap_or_else(PoisonError::into_inner);
        let i = match a.free.pop() {
            Some(i) => i,
            None => {
                let i = a.next;
                a.next = i.checked_add(1).expect("arena index space exhausted");
                let (c, _) = locate(i);
                self.chunks[c].get_or_init(|| (0..FIRST << c).map(|_| new()).collect());
                i
            }
        };
        drop(a);
        init(self.get(i).expect("allocated above"));
        i
    }

    /// Gives cell `i` back for reuse. The caller guarantees nobody uses it any more.
    pub(crate) fn free(&self, i: u32) {
        self.alloc
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .free
            .push(i);
    }
}

#[cfg(all(test, not(surgewall_loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn indices_map_to_stable_distinct_cells_and_are_reused() {
        assert_eq!(locate(0), (0, 0));
        assert_eq!(locate(63), (0, 63));
        assert_eq!(locate(64), (1, 0));
        assert_eq!(locate(191), (1, 127));
        assert_eq!(locate(192), (2, 0));
        let arena = Arena::<AtomicU64>::default();
        let ids: Vec<u32> = (0..300)
            .map(|n| arena.alloc(|| AtomicU64::new(0), |c| c.store(n, Ordering::Relaxed)))
            .collect();
        let first = arena.get(0).unwrap() as *const AtomicU64;
        for (n, &i) in ids.iter().enumerate() {
            assert_eq!(arena.get(i).unwrap().load(Ordering::Relaxed), n as u64);
        }
        assert_eq!(arena.get(0).unwrap() as *const AtomicU64, first);
        assert!(arena.get(100_000).is_none());
        arena.free(ids[5]);
        let again = arena.alloc(|| AtomicU64::new(0), |c| c.store(99, Ordering::Relaxed));
        assert_eq!(again, ids[5]);
        assert_eq!(arena.get(again).unwrap().load(Ordering::Relaxed), 99);
    }
}
