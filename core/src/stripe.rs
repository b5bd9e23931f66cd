//! Striped counters: a `LongAdder` for the hot path.
//!
//! A single shared counter caps a breaker at one cache-line transfer per call, whatever the
//! number of cores. A [`Striped`] counter gives each thread its own cache-padded cell (chosen
//! once per thread, see [`crate::sync`]) and sums the cells only when somebody reads the total,
//! which happens on failures, rollovers and scrapes, never on a success.

use crossbeam_utils::CachePadded;

use crate::sync::{thread_stripe, AtomicU64, Ordering};

/// Up to `LANES` independent counters per stripe, so the counters a call touches together
/// (successes, rejections, ...) share the thread's own cache line.
pub(crate) struct Striped<const LANES: usize> {
    cells: Box<[CachePadded<[AtomicU64; LANES]>]>,
    mask: usize,
}

impl<const LANES: usize> Striped<LANES> {
    /// Creates a counter with one stripe per available core (rounded up to a power of two,
    /// at most 64).
    pub(crate) fn new() -> Self {
        Self::with_stripes(default_stripes())
    }

    /// Creates a counter with `stripes` cells (rounded up to a power of two, at least 1).
    pub(crate) fn with_stripes(stripes: usize) -> Self {
        let n = stripes.clamp(1, 64).next_power_of_two();
        let cells = (0..n)
            .map(|_| CachePadded::new(std::array::from_fn(|_| AtomicU64::new(0))))
            .collect::<Vec<_>>()
            .into_boxed_slice();
        Self { cells, mask: n - 1 }
    }

    /// Adds `n` to counter `lane` in this thread's stripe.
    ///
    /// `Relaxed`: the counters carry no data other threads must see in order; readers sum
    /// them and accept a value that is at most a few in-flight increments behind.
    #[inline]
    pub(crate) fn add(&self, lane: usize, n: u64) {
        let i = thread_stripe() & self.mask;
        debug_assert!(i < self.cells.len());
        // SAFETY: `cells` has `mask + 1` stripes (a power of two, set in `with_stripes` and
        // never changed), so `i <= mask` is in bounds. Unchecked so that the success path has
        // no panic branch: a binding can then run it outside its panic boundary's frame.
        let cell = unsafe { self.cells.get_unchecked(i) };
        cell[lane].fetch_add(n, Ordering::Relaxed);
    }

    /// The sum of counter `lane` over all stripes.
    pub(crate) fn sum(&self, lane: usize) -> u64 {
        self.cells
            .iter()
            .map(|c| c[lane].load(Ordering::Relaxed))
            .fold(0u64, u64::wrapping_add)
    }
}

pub(crate) fn default_stripes() -> usize {
    #[cfg(not(surgewall_loom))]
    {
        use std::sync::OnceLock;
        static N: OnceLock<usize> = OnceLock::new();
        *N.get_or_init(|| std::thread::available_parallelism().map_or(4, |n| n.get()))
    }
    #[cfg(surgewall_loom)]
    {
        2
    }
}

#[cfg(all(test, not(surgewall_loom)))]
mod tests {
    use super::*;

    #[test]
    fn sums_over_threads_and_lanes() {
        let s = std::sync::Arc::new(Striped::<2>::with_stripes(4));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        s.add(0, 1);
                        s.add(1, 2);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(s.sum(0), 8000);
        assert_eq!(s.sum(1), 16000);
    }
}
