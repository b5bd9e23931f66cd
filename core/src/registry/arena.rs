//! A growable arena of small cells with stable addresses, for compact registries.
//!
//! A compact registry keeps a 4-byte index in its hash table and the key with its state here:
//! no allocation (and no allocator header or `Arc` counts) per key. Chunks double in size and
//! are never moved or freed while the arena lives, so a `&T` stays valid; freed indices are
//! reused for new keys. Chunks are allocated zeroed, so the pages of cells never handed out
//! are never touched and cost no resident memory.

use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::{OnceLock, PoisonError};

use crate::sync::Mutex;

const FIRST: u64 = 64;
/// 64 * (2^26 - 1) cells: more than a u32 index can name.
const CHUNKS: usize = 26;

/// A type for which all-zero bytes are a valid value (the arena's cells start that way).
///
/// # Safety
///
/// An all-zero bit pattern must be a valid, safe-to-use value of the type, equal to
/// [`zeroed`](Self::zeroed): atomics, integers, `MaybeUninit`, and structs made only of those.
pub(crate) unsafe trait Zeroable {
    /// The all-zero value, built: under loom, whose atomics are not plain memory, the arena
    /// builds its cells with it instead of zeroing them.
    #[cfg_attr(not(surgewall_loom), allow(dead_code))]
    fn zeroed() -> Self;
}

/// Chunks start on a cache line, so cells whose size divides 64 never straddle two lines.
const CHUNK_ALIGN: usize = 64;

pub(crate) struct Arena<T> {
    chunks: [OnceLock<Chunk<T>>; CHUNKS],
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

/// `len` zeroed cells on a cache line, dropped and freed with the arena.
struct Chunk<T> {
    ptr: NonNull<T>,
    len: usize,
}

// SAFETY: a chunk owns its cells like a `Box<[T]>`.
unsafe impl<T: Send> Send for Chunk<T> {}
// SAFETY: as for `Box<[T]>`: shared access hands out `&T` only.
unsafe impl<T: Sync> Sync for Chunk<T> {}

fn chunk_layout<T>(len: usize) -> Layout {
    Layout::array::<T>(len)
        .and_then(|l| l.align_to(CHUNK_ALIGN))
        .expect("arena chunk size")
}

impl<T: Zeroable> Chunk<T> {
    fn zeroed(len: usize) -> Self {
        let layout = chunk_layout::<T>(len);
        let raw = if layout.size() == 0 {
            NonNull::dangling().as_ptr()
        } else {
            // SAFETY: the layout has a non-zero size.
            unsafe { std::alloc::alloc_zeroed(layout) }.cast::<T>()
        };
        let Some(ptr) = NonNull::new(raw) else {
            std::alloc::handle_alloc_error(layout)
        };
        // All-zero bytes are valid cells (`T: Zeroable`); loom's atomics must be built.
        #[cfg(surgewall_loom)]
        for o in 0..len {
            // SAFETY: `o < len` cells fit in the allocation; writing over zeroed bytes drops
            // nothing.
            unsafe { ptr.as_ptr().add(o).write(T::zeroed()) };
        }
        Chunk { ptr, len }
    }
}

impl<T> Chunk<T> {
    #[inline]
    fn get(&self, o: usize) -> Option<&T> {
        // SAFETY: `o < len` cells were allocated and zero-initialised, and live as long as the
        // chunk.
        (o < self.len).then(|| unsafe { &*self.ptr.as_ptr().add(o) })
    }
}

impl<T> Drop for Chunk<T> {
    fn drop(&mut self) {
        let layout = chunk_layout::<T>(self.len);
        // SAFETY: the cells are initialised (zeroed, then used through `&T` only) and owned by
        // this chunk; the memory was allocated with this layout (or is dangling for size 0).
        unsafe {
            std::ptr::drop_in_place(std::ptr::slice_from_raw_parts_mut(
                self.ptr.as_ptr(),
                self.len,
            ));
            if layout.size() != 0 {
                std::alloc::dealloc(self.ptr.as_ptr().cast(), layout);
            }
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
    /// The cell at `i`, if its chunk exists (every index ever handed out has one).
    #[inline]
    pub(crate) fn get(&self, i: u32) -> Option<&T> {
        let (c, o) = locate(i);
        self.chunks.get(c)?.get()?.get(o)
    }
}

impl<T: Zeroable> Arena<T> {
    /// A free cell: a reused one (as its last user left it), or a new, zeroed one.
    pub(crate) fn alloc(&self) -> u32 {
        let mut a = self.alloc.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = a.free.pop() {
            return i;
        }
        let i = a.next;
        a.next = i.checked_add(1).expect("arena index space exhausted");
        let (c, _) = locate(i);
        self.chunks[c].get_or_init(|| Chunk::zeroed((FIRST << c) as usize));
        i
    }

    /// Gives cell `i` back for reuse, running `last` (the cell's last use by its old owner)
    /// under the allocation lock first, so that whoever holds [`locked`](Self::locked) sees
    /// the cell either before `last` or after it, never during. The caller guarantees nobody
    /// reaches the cell through its old owner any more (values that outlive their owner, such
    /// as permits, are fenced otherwise).
    pub(crate) fn free_with(&self, i: u32, last: impl FnOnce()) {
        let mut a = self.alloc.lock().unwrap_or_else(PoisonError::into_inner);
        last();
        a.free.push(i);
    }

    /// Runs `f` under the allocation lock: no cell is freed (and so none handed to a new
    /// owner) meanwhile.
    pub(crate) fn locked<R>(&self, f: impl FnOnce() -> R) -> R {
        let _a = self.alloc.lock().unwrap_or_else(PoisonError::into_inner);
        f()
    }
}

impl<T> Arena<T> {
    /// The index of the cell that contains the address `p` (any address inside the cell),
    /// if it is in one of this arena's chunks. Compares addresses only, so a pointer from
    /// elsewhere gives `None`.
    pub(crate) fn index_of<U>(&self, p: *const U) -> Option<u32> {
        let size = std::mem::size_of::<T>();
        if size == 0 {
            return None;
        }
        let addr = p as usize;
        for (c, chunk) in self.chunks.iter().enumerate() {
            let Some(chunk) = chunk.get() else { break };
            let start = chunk.ptr.as_ptr() as usize;
            if (start..start + chunk.len * size).contains(&addr) {
                let i = FIRST * ((1 << c) - 1) + ((addr - start) / size) as u64;
                return u32::try_from(i).ok();
            }
        }
        None
    }
}

#[cfg(all(test, not(surgewall_loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    struct Counter(AtomicU64);
    // SAFETY: an atomic integer is valid at zero.
    unsafe impl Zeroable for Counter {
        fn zeroed() -> Self {
            Counter(AtomicU64::new(0))
        }
    }

    #[test]
    fn indices_map_to_stable_distinct_zeroed_cells_and_are_reused() {
        assert_eq!(locate(0), (0, 0));
        assert_eq!(locate(63), (0, 63));
        assert_eq!(locate(64), (1, 0));
        assert_eq!(locate(191), (1, 127));
        assert_eq!(locate(192), (2, 0));
        let arena = Arena::<Counter>::default();
        let ids: Vec<u32> = (0..300).map(|_| arena.alloc()).collect();
        for (n, &i) in ids.iter().enumerate() {
            let cell = arena.get(i).unwrap();
            assert_eq!(
                cell.0.load(Ordering::Relaxed),
                0,
                "a new cell starts zeroed"
            );
            cell.0.store(n as u64, Ordering::Relaxed);
        }
        let first = arena.get(0).unwrap() as *const Counter;
        for (n, &i) in ids.iter().enumerate() {
            assert_eq!(arena.get(i).unwrap().0.load(Ordering::Relaxed), n as u64);
        }
        assert_eq!(arena.get(0).unwrap() as *const Counter, first);
        assert!(arena.get(100_000).is_none());
        for &i in &ids {
            let inner = &arena.get(i).unwrap().0 as *const AtomicU64;
            assert_eq!(arena.index_of(inner), Some(i));
        }
        assert_eq!(arena.index_of(&ids as *const Vec<u32>), None);
        let mut ran = false;
        arena.free_with(ids[5], || ran = true);
        assert!(ran);
        let again = arena.alloc();
        assert_eq!(again, ids[5]);
        assert_eq!(arena.get(again).unwrap().0.load(Ordering::Relaxed), 5);
    }
}
