//! The waiting path: a FIFO of parked threads.
//!
//! Not loom-modelled: it uses `std::sync::Mutex` and thread parking. What it must guarantee —
//! FIFO hand-off, no waiter left parked while a slot is free, the gauges back to zero — is
//! checked by the multi-thread tests in `tests.rs` (`waiters_*`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering as StdOrdering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::Thread;
use std::time::Duration;

use super::{Bulkhead, BulkheadFull, ACTIVE_MASK, COMPLETED_ONE};
use crate::clock::{duration_ns, ClockMode};
use crate::sync::Ordering;

/// How often a waiter re-reads a mock clock (mock time does not wake a parked thread).
const MOCK_POLL: Duration = Duration::from_millis(1);

struct Waiter {
    thread: Thread,
    granted: AtomicBool,
}

impl Waiter {
    fn grant(&self) {
        // Release: the waiter that sees `granted` owns the slot (and whatever the releaser
        // wrote before giving it up).
        self.granted.store(true, StdOrdering::Release);
        self.thread.unpark();
    }

    fn granted(&self) -> bool {
        self.granted.load(StdOrdering::Acquire)
    }
}

/// The waiters, oldest first.
#[derive(Default)]
pub(super) struct WaitQueue {
    waiters: Mutex<VecDeque<Arc<Waiter>>>,
}

impl WaitQueue {
    fn lock(&self) -> MutexGuard<'_, VecDeque<Arc<Waiter>>> {
        // Nothing panics while the lock is held; a poisoned queue is still consistent.
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Bulkhead {
    /// The slow path of `acquire_timeout`: queue, park, and either get a slot handed over or
    /// give up at the deadline.
    #[cold]
    pub(super) fn wait_for_slot(&self, max_wait: Duration) -> Result<(), BulkheadFull> {
        let start = self.clock.now_ns();
        let deadline = start.saturating_add(duration_ns(max_wait));
        let me = Arc::new(Waiter {
            thread: std::thread::current(),
            granted: AtomicBool::new(false),
        });
        {
            let mut queue = self.queue.lock();
            // SeqCst, then a SeqCst try: the other half of the Dekker pair in `release_raw`.
            // Either this try sees a release's decrement, or that release sees us waiting.
            self.waiting.fetch_add(1, Ordering::SeqCst);
            if self.take(Ordering::SeqCst) {
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                return Ok(());
            }
            queue.push_back(me.clone());
        }
        let mock = self.clock.mode() == ClockMode::Mock;
        loop {
            let now = self.clock.now_ns();
            if me.granted() {
                self.record_wait(now.saturating_sub(start));
                return Ok(());
            }
            if now >= deadline {
                let mut queue = self.queue.lock();
                // A release may have granted us the slot while we were looking at the clock:
                // grants happen under this lock, so this answer is final.
                if me.granted() {
                    drop(queue);
                    self.record_wait(now.saturating_sub(start));
                    return Ok(());
                }
                queue.retain(|w| !Arc::ptr_eq(w, &me));
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                drop(queue);
                let waited = now.saturating_sub(start);
                self.record_wait(waited);
                self.timed_out.fetch_add(1, StdOrdering::Relaxed);
                return Err(BulkheadFull {
                    max_concurrent: self.config.max_concurrent,
                    timed_out: true,
                    waited: Duration::from_nanos(waited),
                });
            }
            let left = Duration::from_nanos(deadline - now);
            std::thread::park_timeout(if mock { left.min(MOCK_POLL) } else { left });
        }
    }

    /// With waiters queued, a release gives its slot to the oldest one instead of freeing it.
    /// Returns false when there was nobody to hand to (or nothing held: a misuse that the
    /// caller then reports).
    #[cold]
    pub(super) fn hand_off_own_slot(&self) -> bool {
        let mut queue = self.queue.lock();
        // Never conjure a slot for a waiter out of a release with nothing acquired.
        if self.word.load(Ordering::Relaxed) & ACTIVE_MASK == 0 {
            return false;
        }
        let Some(waiter) = queue.pop_front() else {
            return false;
        };
        // The slot changes hands: one call completed, the in-flight count stays. Release:
        // publishes the releaser's completion like the CAS of an ordinary release.
        self.word.fetch_add(COMPLETED_ONE, Ordering::Release);
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        waiter.grant();
        true
    }

    /// After freeing a slot a release saw waiters: take free slots for them, oldest first.
    #[cold]
    pub(super) fn grant_free_slots(&self) {
        let mut queue = self.queue.lock();
        while !queue.is_empty() && self.take(Ordering::SeqCst) {
            let waiter = queue.pop_front().expect("checked not empty");
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            waiter.grant();
        }
    }
}
