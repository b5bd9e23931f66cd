//! The one place atomics come from.
//!
//! Every atomic in the engine is imported from here, so that building with
//! `RUSTFLAGS="--cfg surgewall_loom"` swaps them all for loom's model-checked versions (the
//! pattern of tokio's `loom` module and crossbeam's `primitive` module). The cfg is named after
//! the crate so that turning it on does not switch loom on inside other crates.

#[cfg(not(surgewall_loom))]
#[allow(unused_imports)] // AtomicUsize: for policies that count in usize
pub(crate) use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
#[cfg(not(surgewall_loom))]
#[allow(unused_imports)]
pub(crate) use std::sync::Arc;

#[cfg(surgewall_loom)]
#[allow(unused_imports)]
pub(crate) use loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
#[cfg(surgewall_loom)]
pub(crate) use loom::sync::Arc;

// A lock that a model's threads take around modelled atomics (the keyed registry's arena):
// loom's, so that a thread parked on it lets the model run the holder.
#[cfg(surgewall_loom)]
pub(crate) use loom::sync::Mutex;
#[cfg(not(surgewall_loom))]
pub(crate) use std::sync::Mutex;

/// The stripe a thread should use for striped counters: a small per-thread number handed out
/// round-robin on first use, so threads spread over the stripes without hashing on every call.
#[cfg(not(surgewall_loom))]
#[inline]
pub(crate) fn thread_stripe() -> usize {
    use std::cell::Cell;
    use std::sync::atomic::AtomicUsize as StdAtomicUsize;

    static NEXT: StdAtomicUsize = StdAtomicUsize::new(0);
    thread_local! {
        static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    STRIPE.with(|s| {
        let v = s.get();
        if v != usize::MAX {
            return v;
        }
        let v = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        s.set(v);
        v
    })
}

/// Under loom every thread of a model gets its own stripe too, so the models exercise the
/// summing of stripes and not only a single cell.
#[cfg(surgewall_loom)]
#[inline]
pub(crate) fn thread_stripe() -> usize {
    use std::cell::Cell;
    loom::thread_local! {
        static STRIPE: Cell<usize> = Cell::new(usize::MAX);
    }
    loom::lazy_static! {
        static ref NEXT: AtomicUsize = AtomicUsize::new(0);
    }
    STRIPE.with(|s| {
        let v = s.get();
        if v != usize::MAX {
            return v;
        }
        let v = NEXT.fetch_add(1, Ordering::Relaxed);
        s.set(v);
        v
    })
}

/// An acquire fence (loom-aware).
#[inline]
pub(crate) fn fence_acquire() {
    #[cfg(not(surgewall_loom))]
    std::sync::atomic::fence(Ordering::Acquire);
    #[cfg(surgewall_loom)]
    loom::sync::atomic::fence(Ordering::Acquire);
}

/// A release fence (loom-aware).
#[inline]
pub(crate) fn fence_release() {
    #[cfg(not(surgewall_loom))]
    std::sync::atomic::fence(Ordering::Release);
    #[cfg(surgewall_loom)]
    loom::sync::atomic::fence(Ordering::Release);
}
