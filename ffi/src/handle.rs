//! Handles: what C holds instead of pointers.
//!
//! A handle is a typed opaque pointer (`const surgewall_breaker *`, ...) whose value is not an
//! address but an encoded slot of a per-type table:
//!
//! ```text
//!  63      56 55                32 31                         0
//! +----------+--------------------+----------------------------+
//! | type tag | generation (24)    | slot index + 1 (32)        |
//! +----------+--------------------+----------------------------+
//! ```
//!
//! Looking one up checks the tag (a bulkhead passed as a breaker), the slot (garbage), and the
//! generation (a handle used after `_free`, a double `_free`, a builder used after the
//! constructor consumed it): each is reported as `SURGEWALL_INVALID_HANDLE`, never undefined
//! behaviour. The lookup is a few loads on the hot path and takes no lock; creating and freeing
//! take the table's mutex. A slot holds an `Arc<T>` as a raw pointer to the `T` itself, so a
//! lookup lands on the object with no further indirection, and `_clone` is a reference count.
//! Beside it, in what would otherwise be padding, a slot keeps a 32-bit word the handle type
//! derives from the value when the handle is made ([`Handle::aux`]): breakers keep their permit
//! salt there, so checking a permit reads nothing the lookup has not already read.
//!
//! The first [`SEGMENT`] slots of a type live in its static, at a fixed address: looking up one
//! of those handles reads the slot directly, without first loading a segment pointer. The
//! statics are zeroed (a zeroed slot was never handed out: its key matches no handle, since
//! every handle carries its non-zero type tag), so they cost no file size and, untouched, no
//! memory.
//!
//! `fork()`: creating and freeing take a mutex per handle type (its free list). So that a
//! child forked while another thread held one can still create and free handles, the first
//! handle made registers `pthread_atfork` handlers ([`fork`]): `prepare` finishes the
//! process-wide lazy values (`engine::init_process_globals`) and takes every type's lock,
//! `parent` and `child` release them, so the fork happens while no other thread holds one.
//!
//! One rule remains the caller's: a handle must not be freed while another thread is still
//! using it (as with any C object). Freeing it afterwards, twice, or using it later is caught.
//!
//! A slot's generation never wraps: the free that ends its last generation (16,777,215)
//! retires the slot for the life of the process (its key matches no handle and it never
//! returns to the free list), so no freed handle can become valid again. The bound: a type's
//! table holds 4,194,304 slots, so a process can make about 7 × 10^13 handles of one type
//! (`_new` and `_clone` each make one) before `SURGEWALL_LIMIT_EXCEEDED`; each retired slot
//! keeps its 16 bytes.

use std::marker::PhantomData;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use crate::status::Status;

#[cfg(not(target_pointer_width = "64"))]
compile_error!("surgewall's C ABI encodes handles in 64-bit pointers");

const SEGMENT: usize = 1024;
const SEGMENTS: usize = 4096; // up to 4M live handles per type
const GEN_MASK: u32 = 0x00FF_FFFF;

struct Entry<T> {
    /// The upper half of the live handle: `tag << 24 | generation`, so one compare checks
    /// both the type and the generation.
    key: AtomicU32,
    /// [`Handle::aux`] of the value: written before the value is published (Release), read
    /// after it (Acquire), so a lookup that sees the value sees its word.
    aux: AtomicU32,
    value: AtomicPtr<T>,
}

impl<T> Entry<T> {
    /// A slot never handed out: key 0 matches no handle.
    const fn unused() -> Self {
        Entry {
            key: AtomicU32::new(0),
            aux: AtomicU32::new(0),
            value: AtomicPtr::new(null_mut()),
        }
    }
}

type Segment<T> = [Entry<T>; SEGMENT];

/// The slots of one handle type, all zero bits when new (so its static lives in `.bss`).
pub(crate) struct Slots<T> {
    /// Slots `0..SEGMENT`, at a fixed address.
    first: Segment<T>,
    /// Segment `i` (from 1) holds slots `i * SEGMENT..`, allocated on first use.
    segments: [AtomicPtr<Segment<T>>; SEGMENTS],
}

impl<T> Slots<T> {
    pub(crate) const fn new() -> Self {
        Slots {
            first: [const { Entry::unused() }; SEGMENT],
            segments: [const { AtomicPtr::new(null_mut()) }; SEGMENTS],
        }
    }
}

/// Free slots and the next never-used one; only touched when creating and freeing.
pub(crate) type FreeSlots = Mutex<(Vec<u32>, u32)>;

/// Type tags are below this.
pub(crate) const TAGS: usize = 32;

/// The free lists of every handle type, by type tag: one array, so the fork handlers can take
/// them all (in tag order, while no thread of the library holds two).
pub(crate) static FREE_LISTS: [FreeSlots; TAGS] = [const { Mutex::new((Vec::new(), 0)) }; TAGS];

/// A table of `Arc<T>` addressed by generational handles.
///
/// The slab itself holds no interior mutability (only references to the statics that do), so
/// its static is a constant the compiler folds: `slots` is a fixed address in the hot path.
pub(crate) struct Slab<T: 'static> {
    tag: u8,
    slots: &'static Slots<T>,
    free: &'static FreeSlots,
    _owns: PhantomData<Arc<T>>,
}

// SAFETY: the slab hands out `&T` to any thread and moves `Arc<T>` between threads, so it is
// Sync/Send exactly when T is.
unsafe impl<T: Send + Sync> Sync for Slab<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Send for Slab<T> {}
// SAFETY: as above (the slots hold `Arc<T>`s as raw pointers).
unsafe impl<T: Send + Sync> Sync for Slots<T> {}

impl<T> Slab<T> {
    /// The slab of handles tagged `tag`, over its own statics (`Slots::new()`, an empty
    /// `FreeSlots`).
    pub(crate) const fn new(tag: u8, slots: &'static Slots<T>, free: &'static FreeSlots) -> Self {
        Slab {
            tag,
            slots,
            free,
            _owns: PhantomData,
        }
    }

    #[inline(always)]
    fn entry(&self, index: u32) -> Option<&Entry<T>> {
        let i = index as usize;
        if let Some(e) = self.slots.first.get(i) {
            return Some(e);
        }
        let seg = self
            .slots
            .segments
            .get(i / SEGMENT)?
            .load(Ordering::Acquire);
        if seg.is_null() {
            return None;
        }
        // SAFETY: segments are allocated once, published with Release, and never freed.
        Some(unsafe { &(*seg)[i % SEGMENT] })
    }

    /// The slot index and the expected entry key of `handle`.
    #[inline(always)]
    fn decode(&self, handle: u64) -> Result<(u32, u32), Status> {
        if handle == 0 {
            return Err(Status::SURGEWALL_NULL_ARG);
        }
        // Slot 0 wraps to u32::MAX, which `entry` rejects as out of range.
        Ok(((handle as u32).wrapping_sub(1), (handle >> 32) as u32))
    }

    fn key(&self, generation: u32) -> u32 {
        u32::from(self.tag) << 24 | generation & GEN_MASK
    }

    /// Stores `value`, with `aux` beside it, and returns its handle.
    pub(crate) fn insert(&self, value: Arc<T>, aux: u32) -> Result<u64, Status> {
        // Before any free-list lock can be held: see `fork`.
        fork::register();
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        let index = match free.0.pop() {
            Some(i) => i,
            None => {
                let i = free.1;
                if i as usize >= SEGMENT * SEGMENTS {
                    return Err(Status::SURGEWALL_LIMIT_EXCEEDED);
                }
                if i as usize >= SEGMENT {
                    let slot = &self.slots.segments[i as usize / SEGMENT];
                    if slot.load(Ordering::Acquire).is_null() {
                        let seg: Box<Segment<T>> =
                            Box::new(std::array::from_fn(|_| Entry::unused()));
                        slot.store(Box::into_raw(seg), Ordering::Release);
                    }
                }
                // A slot's first handle has generation 1 (the slot was zeroed, unused).
                self.entry(i)
                    .expect("allocated above")
                    .key
                    .store(self.key(1), Ordering::Relaxed);
                free.1 += 1;
                i
            }
        };
        let entry = self.entry(index).expect("allocated above");
        entry.aux.store(aux, Ordering::Relaxed);
        entry
            .value
            .store(Arc::into_raw(value).cast_mut(), Ordering::Release);
        let key = entry.key.load(Ordering::Relaxed);
        Ok(u64::from(key) << 32 | u64::from(index + 1))
    }

    /// The value behind `handle`.
    ///
    /// The reference is valid until the handle is freed; freeing it while another thread uses
    /// it is the one misuse this cannot catch (see the module comment).
    #[inline(always)]
    pub(crate) fn get(&self, handle: u64) -> Result<&T, Status> {
        self.get_with_aux(handle).map(|(value, _)| value)
    }

    /// The value behind `handle` and the word kept beside it (see [`Handle::aux`]).
    #[inline(always)]
    pub(crate) fn get_with_aux(&self, handle: u64) -> Result<(&T, u32), Status> {
        let (index, key) = self.decode(handle)?;
        let entry = self.entry(index).ok_or(Status::SURGEWALL_INVALID_HANDLE)?;
        // Acquire pairs with the Release in `insert`: seeing the key means seeing the value.
        if entry.key.load(Ordering::Acquire) != key {
            return Err(Status::SURGEWALL_INVALID_HANDLE);
        }
        let p = entry.value.load(Ordering::Acquire);
        if p.is_null() {
            return Err(Status::SURGEWALL_INVALID_HANDLE);
        }
        // Relaxed: ordered after the Acquire load of the value, which `insert` published after
        // storing the word.
        let aux = entry.aux.load(Ordering::Relaxed);
        // SAFETY: non-null values are live `Arc`s owned by the slab until `remove`.
        Ok((unsafe { &*p }, aux))
    }

    /// A new reference to the value behind `handle` (for `_clone` and for objects that keep
    /// another one alive).
    pub(crate) fn get_arc(&self, handle: u64) -> Result<Arc<T>, Status> {
        let value: *const T = self.get(handle)?;
        // SAFETY: `value` came from `Arc::into_raw` and the slab's own reference keeps it alive
        // while we add ours (under the caller's promise not to free the handle concurrently).
        unsafe {
            Arc::increment_strong_count(value);
            Ok(Arc::from_raw(value))
        }
    }

    /// Takes the value out (freeing or consuming the handle). A second call with the same
    /// handle fails with `InvalidHandle`.
    pub(crate) fn remove(&self, handle: u64) -> Result<Arc<T>, Status> {
        let (index, key) = self.decode(handle)?;
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        let entry = self.entry(index).ok_or(Status::SURGEWALL_INVALID_HANDLE)?;
        if entry.key.load(Ordering::Acquire) != key {
            return Err(Status::SURGEWALL_INVALID_HANDLE);
        }
        let p = entry.value.swap(null_mut(), Ordering::AcqRel);
        if p.is_null() {
            return Err(Status::SURGEWALL_INVALID_HANDLE);
        }
        if key & GEN_MASK == GEN_MASK {
            // The slot's last generation: wrapping would make its first handle (and every
            // later one) valid again, so the slot retires. Key 0 matches no handle (every
            // handle carries a non-zero type tag), and the slot never returns to the free list.
            entry.key.store(0, Ordering::Release);
        } else {
            entry.key.store(key + 1, Ordering::Release);
            free.0.push(index);
        }
        // SAFETY: `p` came from `Arc::into_raw` in `insert` and was swapped out exactly once.
        Ok(unsafe { Arc::from_raw(p) })
    }
}

/// `fork()` in a threaded process: the `pthread_atfork` handlers that keep the handle tables
/// usable in the child.
///
/// Without them, a child forked while another thread was inside a create or a free inherits
/// that type's free-list mutex locked by a thread that does not exist in the child, and its
/// first create or free of that type hangs. `prepare` takes every free-list lock (tag order)
/// on the forking thread, after waiting for any process-wide lazy value another thread is
/// initializing, so the fork happens between two creates or frees of every other thread; `parent` and `child` release them (in the child the forking thread is the one that
/// continues, and it owns them). The catalog's locks are held the same way. Only the handle
/// tables and the catalog are covered: an object another thread
/// was using at the fork (a keyed registry creating a key, a blocking bulkhead wait, a
/// subscription or retry schedule being polled, the shared retry budget registry) may hold
/// its own lock in the child; a child should make its own objects or use ones no other thread
/// was using.
pub(crate) mod fork {
    use std::cell::RefCell;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{MutexGuard, PoisonError};

    use engine::catalog::{Catalog, CatalogLocks};

    use super::{FREE_LISTS, TAGS};

    type Guard = MutexGuard<'static, (Vec<u32>, u32)>;

    thread_local! {
        /// The locks `prepare` took, released by `parent` / `child` on the same thread.
        static HELD: RefCell<[Option<Guard>; TAGS]> = const { RefCell::new([const { None }; TAGS]) };
        /// The catalog's locks (constructors join the catalog; the agent reads it).
        static CATALOG: RefCell<Option<CatalogLocks<'static>>> = const { RefCell::new(None) };
    }

    extern "C" fn prepare() {
        // First wait for any process-wide lazy value another thread is making (the child
        // would inherit it half-made); their initializers take no lock of ours. A panic
        // must not unwind out of a C callback.
        let _ = std::panic::catch_unwind(engine::init_process_globals);
        // Idempotent: a child that had to register again (see `register`) may have the
        // handlers twice, and the second `prepare` finds the locks already held.
        HELD.with(|held| {
            let mut held = held.borrow_mut();
            for (slot, lock) in held.iter_mut().zip(FREE_LISTS.iter()) {
                if slot.is_none() {
                    *slot = Some(lock.lock().unwrap_or_else(PoisonError::into_inner));
                }
            }
        });
        // Never nested with a free-list lock (a constructor joins the catalog, then inserts
        // its handle), so the order between the two sets does not matter.
        CATALOG.with(|c| {
            let mut c = c.borrow_mut();
            if c.is_none() {
                *c = Some(Catalog::global().lock_all());
            }
        });
    }

    extern "C" fn release() {
        CATALOG.with(|c| c.borrow_mut().take());
        HELD.with(|held| {
            // Released in reverse order of taking (any order would do: nobody waits for two).
            for slot in held.borrow_mut().iter_mut().rev() {
                slot.take();
            }
        });
    }

    /// `[registrar's pid : 32 | state : 2]`, state 0: not registered, 1: being registered by
    /// that process, 2: registered.
    static STATE: AtomicU64 = AtomicU64::new(0);

    /// Registers the handlers once per process, before the caller takes any lock of ours: a
    /// thread that finds another one registering waits for it (a lock taken before the
    /// handlers are in place could be inherited held by a child forked meanwhile, as
    /// `fork.c` saw). `pthread_atfork` and `fork()` exclude each other in libc, so a fork
    /// lands before or after a registration, never inside it; a child forked while another
    /// thread of its parent was registering finds the parent's pid in the word and registers
    /// again itself (the handlers are idempotent, so having them twice is harmless).
    #[inline]
    pub(crate) fn register() {
        // Acquire/Release: nothing is published through STATE but the election itself.
        if STATE.load(Ordering::Acquire) & 3 == 2 {
            return;
        }
        register_slow();
    }

    #[cold]
    fn register_slow() {
        let me = u64::from(std::process::id());
        loop {
            let w = STATE.load(Ordering::Acquire);
            let registering_here = w & 3 == 1 && w >> 2 == me;
            match w & 3 {
                2 => return,
                1 if registering_here => std::thread::yield_now(),
                // 0, or 1 left behind by a thread of the process this child was forked from.
                _ => {
                    if STATE
                        .compare_exchange(w, me << 2 | 1, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                    {
                        #[cfg(unix)]
                        // SAFETY: three `extern "C" fn()` that never unwind (they only lock
                        // and unlock, and catch any panic of the lazy initializers).
                        unsafe {
                            libc::pthread_atfork(Some(prepare), Some(release), Some(release));
                        }
                        STATE.store(me << 2 | 2, Ordering::Release);
                        return;
                    }
                }
            }
        }
    }
}

/// Ties a C opaque type to the slab of the Rust value behind it.
pub(crate) trait Handle: Sized {
    /// The Rust value.
    type Target: 'static;
    fn slab() -> &'static Slab<Self::Target>;

    /// A word kept in the handle's slot beside the value, computed once when a handle is made
    /// (`_new`, `_clone`) and read by [`get_with_aux`](Self::get_with_aux) with no further
    /// load. Must depend on the value only, so that every handle to it has the same word.
    fn aux(_value: &Self::Target) -> u32 {
        0
    }

    #[inline]
    fn get<'a>(ptr: *const Self) -> Result<&'a Self::Target, Status> {
        Self::slab().get(ptr as usize as u64)
    }

    #[inline(always)]
    fn get_with_aux<'a>(ptr: *const Self) -> Result<(&'a Self::Target, u32), Status> {
        Self::slab().get_with_aux(ptr as usize as u64)
    }

    fn get_arc(ptr: *const Self) -> Result<Arc<Self::Target>, Status> {
        Self::slab().get_arc(ptr as usize as u64)
    }

    fn insert(value: Self::Target) -> Result<*mut Self, Status> {
        Self::insert_arc(Arc::new(value))
    }

    fn insert_arc(value: Arc<Self::Target>) -> Result<*mut Self, Status> {
        let aux = Self::aux(&value);
        Self::slab()
            .insert(value, aux)
            .map(|h| h as usize as *mut Self)
    }

    fn remove(ptr: *const Self) -> Result<Arc<Self::Target>, Status> {
        Self::slab().remove(ptr as usize as u64)
    }

    /// The body of every `_free`: NULL is a no-op; a freed, consumed or foreign handle is
    /// `SURGEWALL_INVALID_HANDLE`.
    fn free(ptr: *const Self) -> Status {
        if ptr.is_null() {
            return Status::SURGEWALL_OK;
        }
        crate::status::boundary(|| Self::remove(ptr).map(drop))
    }

    /// The body of every `_clone`: a second handle to the value behind `ptr` into `*out`.
    fn clone_into(ptr: *const Self, out: *mut *mut Self) -> Status {
        crate::status::boundary(|| {
            crate::status::non_null(out)?;
            let shared = Self::get_arc(ptr)?;
            crate::status::write(out, Self::insert_arc(shared)?)
        })
    }

    /// Removes a single-owner value (a builder being consumed) and takes it out of its `Arc`.
    fn take(ptr: *const Self) -> Result<Self::Target, Status> {
        Arc::into_inner(Self::remove(ptr)?).ok_or(Status::SURGEWALL_INVALID_HANDLE)
    }
}

/// Ties an opaque C type (declared by hand, so cbindgen sees it) to a slab of `$target`;
/// `aux f` names the `fn(&$target) -> u32` whose word each slot keeps (see [`Handle::aux`]).
macro_rules! opaque_handle {
    ($name:ident => $target:ty, tag $tag:literal $(, aux $aux:path)?) => {
        impl $crate::handle::Handle for $name {
            type Target = $target;
            #[inline(always)]
            fn slab() -> &'static $crate::handle::Slab<$target> {
                static SLOTS: $crate::handle::Slots<$target> = $crate::handle::Slots::new();
                static SLAB: $crate::handle::Slab<$target> = $crate::handle::Slab::new(
                    $tag,
                    &SLOTS,
                    &$crate::handle::FREE_LISTS[$tag],
                );
                &SLAB
            }
            $(
                fn aux(value: &$target) -> u32 {
                    $aux(value)
                }
            )?
        }
    };
}
pub(crate) use opaque_handle;

#[cfg(test)]
mod tests {
    use super::*;

    fn leaked_slab(tag: u8) -> Slab<String> {
        Slab::new(
            tag,
            Box::leak(Box::new(Slots::new())),
            Box::leak(Box::new(Mutex::new((Vec::new(), 0)))),
        )
    }

    #[test]
    fn stale_double_and_foreign_handles_are_caught() {
        let (a, b) = (leaked_slab(1), leaked_slab(2));
        let h = a.insert(Arc::new("one".into()), 11).unwrap();
        assert_eq!(a.get(h).unwrap(), "one");
        assert_eq!(a.get_with_aux(h).unwrap().1, 11);
        assert_eq!(
            b.get(h).err(),
            Some(Status::SURGEWALL_INVALID_HANDLE),
            "wrong type"
        );
        assert_eq!(*a.remove(h).unwrap(), "one");
        assert_eq!(
            a.get(h).err(),
            Some(Status::SURGEWALL_INVALID_HANDLE),
            "use after free"
        );
        assert_eq!(
            a.remove(h).err(),
            Some(Status::SURGEWALL_INVALID_HANDLE),
            "double free"
        );
        let h2 = a.insert(Arc::new("two".into()), 22).unwrap();
        assert_ne!(h, h2, "the slot is reused under a new generation");
        assert_eq!(
            a.get_with_aux(h2).map(|(v, aux)| (v.as_str(), aux)),
            Ok(("two", 22)),
            "the reused slot carries the new value's word"
        );
        assert_eq!(a.get(h).err(), Some(Status::SURGEWALL_INVALID_HANDLE));
        assert_eq!(a.get(0).err(), Some(Status::SURGEWALL_NULL_ARG));
        assert_eq!(
            a.get(0xdead_beef).err(),
            Some(Status::SURGEWALL_INVALID_HANDLE)
        );
        assert_eq!(
            a.get(h2 | 0xFFFF_FFFF).err(),
            Some(Status::SURGEWALL_INVALID_HANDLE)
        );
        // a slot never handed out, even under the generation its first handle will have
        let unused = 1u64 << 56 | 1 << 32 | 5;
        assert_eq!(a.get(unused).err(), Some(Status::SURGEWALL_INVALID_HANDLE));
    }

    /// Issue 15 item 6: a slot's generation wrapped after 16,777,215 frees, after which the
    /// slot's first (freed) handle was valid again and freeing it freed the live value. The
    /// slot now retires. The test starts the slot near its last generation instead of running
    /// 16M real cycles; every step after that is the real insert/remove path.
    #[test]
    fn a_slot_retires_instead_of_wrapping_its_generation() {
        let a = leaked_slab(4);
        let first = a.insert(Arc::new("first".into()), 0).unwrap();
        a.remove(first).unwrap();
        let index = (first as u32 - 1) as usize;
        // The free slot's next handle will have generation GEN_MASK - 1.
        a.slots.first[index]
            .key
            .store(a.key(GEN_MASK - 1), Ordering::Relaxed);
        let h1 = a.insert(Arc::new("one".into()), 0).unwrap();
        assert_eq!(h1 as u32, first as u32, "the same slot");
        a.remove(h1).unwrap();
        let last = a.insert(Arc::new("last".into()), 0).unwrap();
        assert_eq!(
            last as u32, first as u32,
            "the same slot, its last generation"
        );
        assert_eq!((last >> 32) as u32 & GEN_MASK, GEN_MASK);
        a.remove(last).unwrap();
        // Every handle the slot ever had is dead, and a new value gets another slot.
        let live = a.insert(Arc::new("live".into()), 0).unwrap();
        assert_ne!(live as u32, first as u32, "a retired slot is never reused");
        for h in [first, h1, last] {
            assert_eq!(a.get(h).err(), Some(Status::SURGEWALL_INVALID_HANDLE));
            assert_eq!(a.remove(h).err(), Some(Status::SURGEWALL_INVALID_HANDLE));
        }
        // In particular the handle of generation 1 (where a wrap would land) stays dead.
        let wrapped = first & !(u64::from(GEN_MASK) << 32) | 1 << 32;
        assert_eq!(a.get(wrapped).err(), Some(Status::SURGEWALL_INVALID_HANDLE));
        assert_eq!(a.get(live).unwrap(), "live");
        assert!(!a.free.lock().unwrap().0.contains(&(index as u32)));
    }

    #[test]
    fn slots_past_the_first_segment_live_in_allocated_segments() {
        let a = leaked_slab(3);
        let handles: Vec<u64> = (0..SEGMENT as u32 * 2 + 5)
            .map(|i| a.insert(Arc::new(i.to_string()), i).unwrap())
            .collect();
        for (i, &h) in handles.iter().enumerate() {
            assert_eq!(h as u32 as usize, i + 1, "slots are handed out in order");
            let (v, aux) = a.get_with_aux(h).unwrap();
            assert_eq!((v.as_str(), aux as usize), (i.to_string().as_str(), i));
        }
        let last = *handles.last().unwrap();
        assert_eq!(*a.remove(last).unwrap(), (SEGMENT * 2 + 4).to_string());
        assert_eq!(a.get(last).err(), Some(Status::SURGEWALL_INVALID_HANDLE));
        let again = a.insert(Arc::new("again".into()), 7).unwrap();
        assert_eq!(again as u32, last as u32, "the freed slot is reused");
        assert_ne!(again, last);
        assert_eq!(a.get(again).unwrap(), "again");
    }
}
