//! The waiting path: a FIFO of parked threads.
//!
//! Not loom-modelled: it uses `std::sync::Mutex` and thread parking. What it must guarantee —
//! FIFO hand-off, no waiter left parked while a slot is free, the gauges back to zero — is
//! checked by the multi-thread tests in `tests.rs` (`waiters_*`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering as StdOrdering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::Thread;
use std::time::Duration;

use super::{Bulkhead, BulkheadFull, ACTIVE_MASK, COMPLETED_ONE};
use crate::clock::{duration_ns, ClockMode};
use crate::sync::Ordering;

/// How often a waiter re-reads a mock clock (mock time does not wake a parked thread).
const MOCK_POLL: Duration = Duration::from_millis(1);

/// What became of a waiter: still waiting, handed a slot, or sent away by `close`.
const WAITING: u8 = 0;
const GRANTED: u8 = 1;
const CLOSED: u8 = 2;

struct Waiter {
    thread: Thread,
    /// `WAITING`, then `GRANTED` or `CLOSED`, set once under the queue lock.
    answer: AtomicU8,
}

impl Waiter {
    fn answer(&self, answer: u8) {
        // Release: the waiter that sees `GRANTED` owns the slot (and whatever the releaser
        // wrote before giving it up).
        self.answer.store(answer, StdOrdering::Release);
        self.thread.unpark();
    }

    fn grant(&self) {
        self.answer(GRANTED);
    }

    fn answered(&self) -> u8 {
        self.answer.load(StdOrdering::Acquire)
    }
}

/// The waiters, oldest first, and whether the bulkhead was closed (no more waiting).
#[derive(Default)]
pub(super) struct WaitQueue {
    waiters: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    waiters: VecDeque<Arc<Waiter>>,
    closed: bool,
}

impl std::ops::Deref for Queue {
    type Target = VecDeque<Arc<Waiter>>;
    fn deref(&self) -> &Self::Target {
        &self.waiters
    }
}

impl std::ops::DerefMut for Queue {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.waiters
    }
}

impl WaitQueue {
    fn lock(&self) -> MutexGuard<'_, Queue> {
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
            answer: AtomicU8::new(WAITING),
        });
        {
            let mut queue = self.queue.lock();
            if queue.closed {
                return Err(self.closed_while_waiting(0));
            }
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
            match me.answered() {
                GRANTED => {
                    self.record_wait(now.saturating_sub(start));
                    return Ok(());
                }
                CLOSED => return Err(self.closed_while_waiting(now.saturating_sub(start))),
                _ => {}
            }
            if now >= deadline {
                let mut queue = self.queue.lock();
                // A release may have granted us the slot (or `close` sent us away) while we
                // were looking at the clock: answers are given under this lock, so this one is
                // final.
                match me.answered() {
                    GRANTED => {
                        drop(queue);
                        self.record_wait(now.saturating_sub(start));
                        return Ok(());
                    }
                    CLOSED => {
                        drop(queue);
                        return Err(self.closed_while_waiting(now.saturating_sub(start)));
                    }
                    _ => {}
                }
                queue.retain(|w| !Arc::ptr_eq(w, &me));
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                drop(queue);
                let waited = now.saturating_sub(start);
                self.record_wait(waited);
                self.timed_out.fetch_add(1, StdOrdering::Relaxed);
                return Err(BulkheadFull {
                    max_concurrent: self.max_concurrent(),
                    timed_out: true,
                    waited: Duration::from_nanos(waited),
                    closed: false,
                });
            }
            let left = Duration::from_nanos(deadline - now);
            std::thread::park_timeout(if mock { left.min(MOCK_POLL) } else { left });
        }
    }

    /// The refusal of a waiter sent away by [`Bulkhead::close`] (or arriving after it).
    fn closed_while_waiting(&self, waited_ns: u64) -> BulkheadFull {
        BulkheadFull {
            max_concurrent: self.max_concurrent(),
            timed_out: false,
            waited: Duration::from_nanos(waited_ns),
            closed: true,
        }
    }

    /// Wakes every waiter with a refusal (`BulkheadFull::closed`) and makes later waits fail
    /// at once; what does not wait (`try_acquire`, `release`) is unchanged, so slots held now
    /// can still be given back. For a binding that is about to free its handle: once this has
    /// returned and the calls that were inside have come out, nobody is parked on it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use surgewall::{Bulkhead, BulkheadConfig};
    ///
    /// let b = Bulkhead::new("db", BulkheadConfig::builder().max_concurrent(1).build()?);
    /// let held = b.try_acquire()?;
    /// std::thread::scope(|s| {
    ///     let waiter = s.spawn(|| b.acquire_timeout(Duration::from_secs(60)).map(drop));
    ///     while b.metrics().waiting == 0 {
    ///         std::thread::yield_now();
    ///     }
    ///     b.close();
    ///     assert!(waiter.join().unwrap().unwrap_err().closed);
    /// });
    /// assert!(b.acquire_timeout(Duration::from_secs(60)).unwrap_err().closed);
    /// drop(held);
    /// assert_eq!(b.metrics().active, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn close(&self) {
        let mut queue = self.queue.lock();
        queue.closed = true;
        while let Some(waiter) = queue.pop_front() {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            waiter.answer(CLOSED);
        }
    }

    /// With waiters queued, a release gives its slot to the oldest one instead of freeing it.
    /// Returns false when there was nobody to hand to (or nothing held: a misuse that the
    /// caller then reports).
    #[cold]
    pub(super) fn hand_off_own_slot(&self) -> bool {
        let mut queue = self.queue.lock();
        // Never conjure a slot for a waiter out of a release with nothing acquired, and after
        // a shrink never hand over while the count, this release taken off, is at or above
        // the limit (read under the lock a resize holds while it changes it): that release
        // frees its slot instead, and the waiters get slots once `active < max`.
        let active = self.word.load(Ordering::Relaxed) & ACTIVE_MASK;
        if active == 0 || active > self.max.load(Ordering::Relaxed) {
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

    /// A resize's change of the limit, under the queue lock (a hand-off to a waiter reads the
    /// limit under it); returns the previous limit.
    pub(super) fn swap_limit(&self, n: u64) -> u64 {
        let _queue = self.queue.lock();
        // SeqCst, and the word's SeqCst RMW after it: a `take` that reads the moved word
        // (Acquire) reads this limit.
        let old = self.max.swap(n, Ordering::SeqCst);
        // The phantom completion that moves the word on (see the module docs of `bulkhead`).
        self.word.fetch_add(COMPLETED_ONE, Ordering::SeqCst);
        // Release: a metrics reading that sees this count sees the phantom completion.
        self.resizes.fetch_add(1, Ordering::Release);
        old
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
