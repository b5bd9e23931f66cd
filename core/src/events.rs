//! The event ring: a bounded, lock-free, broadcast ring of small `Copy` events.
//!
//! Policies publish transitions, threshold changes, SLO burn and evictions here; the agent and
//! any number of [`Subscription`]s read them, each at its own pace. Publishing never waits and
//! never allocates, and every published event is, for every subscription that was there when it
//! was published, either delivered or counted in [`Subscription::missed`]: a subscriber that falls
//! more than the ring's capacity behind skips ahead and counts what it skipped, and an event whose
//! writer was overtaken (a whole lap of the ring during its write) is dropped, counted in
//! [`EventRing::dropped`] and, by every subscriber, in its `missed`.
//!
//! # Protocol
//!
//! `head` hands out positions (`fetch_add`); position `p` lives in slot `p % capacity`. Each slot
//! has five payload words and a `stamp`:
//!
//! ```text
//! stamp = (p + 1) << 2 | abandoned << 1 | busy       (0: never claimed)
//!   lap  = stamp >> 2     the newest position that has taken the slot, plus one
//!   BUSY      (bit 0)     a writer is storing payload words; only it clears the bit
//!   ABANDONED (bit 1)     position `lap - 1` was dropped: its event will never be here
//!
//!   lap|BUSY              position lap-1 is being written         reader: pending
//!   lap                   position lap-1 is complete              reader: read it (seqlock)
//!   lap|ABANDONED|BUSY    lap-1 dropped; an older writer is still storing   reader: missed
//!   lap|ABANDONED         lap-1 dropped; the slot is free         reader: missed
//! ```
//!
//! A writer of position `p` loads the stamp and, in one CAS loop:
//! - if a newer position already took the slot (`lap > p + 1`), drops its event;
//! - if the slot is `BUSY` (an older writer is still storing), marks it `p+1|ABANDONED|BUSY`
//!   and drops its event: it never stores a payload word while another writer may;
//! - otherwise claims it (`p+1|BUSY`), stores the payload and commits with a CAS
//!   `p+1|BUSY` → `p+1`. When that CAS fails a later position abandoned itself on the slot while
//!   we stored: our event is dropped too, and we clear `BUSY` (`fetch_and`), which hands the slot
//!   to the next claimant. Laps only grow (a writer only claims or abandons a slot whose lap is
//!   older than its own), so a stamp value never repeats and the reader's re-check below has no
//!   ABA.
//!
//! A reader at position `c` (with `head > c`) loads the stamp: `lap < c + 1` means `c`'s writer
//! took its position but has not reached the slot yet (a few instructions: pending, come back);
//! `lap > c + 1` or `ABANDONED` means `c` is gone (missed); `c+1|BUSY` means `c` is being
//! written (pending: it ends as complete, or as gone when a later lap abandons itself on it);
//! `c+1` means complete: the reader loads the words, then re-checks the stamp. So a reader waits
//! only on a writer that is between its `fetch_add` and its commit, and never longer than one lap
//! (once `head` is more than a capacity ahead, the reader skips and counts). After the last
//! publisher returns, one drain settles every position: delivered + missed == published.
//!
//! Orderings, and why:
//! - claim CAS: Acquire. It reads the stamp the previous payload writer left with Release
//!   (commit or `fetch_and`), so our payload stores come after that writer's in every word: a
//!   late store of an older writer can never land on our event.
//! - fence(Release) after the claim, before the Relaxed payload stores; the reader's
//!   fence(Acquire) after its Relaxed payload loads, before its Relaxed re-check of the stamp. If
//!   the reader loaded any word of a later writer, the fences synchronise, the re-check sees that
//!   writer's claim (or later) and the reader retries: it never accepts a torn event.
//! - commit CAS and the `BUSY` clear: Release, so that a reader (Acquire load of the stamp) sees
//!   every payload word, and the next claimant stores after us.
//! - `head`: Relaxed. A position only has to be unique; the stamps carry every ordering, and a
//!   reader with a stale `head` only answers "no event" a moment early.
//!
//! A writer that never finishes (its thread stopped inside `publish`, or a child process forked
//! while another thread was publishing) holds readers at its position until the ring laps it.
//! Positions are 62-bit: the ring is good for 2^62 events.
//!
//! ```
//! use surgewall::events::{Event, EventKind, EventRing};
//!
//! let ring = EventRing::new(64);
//! let mut sub = ring.subscribe();
//! ring.publish(Event { source: 7, at_ns: 1, kind: EventKind::Evicted { key: 42 } });
//! assert_eq!(sub.poll().unwrap().source, 7);
//! assert!(sub.poll().is_none());
//! ```

use crate::breaker::{State, TransitionReason};
use crate::sync::{Arc, AtomicU64, Ordering};

const WORDS: usize = 5;
/// Stamp bit 0: a writer is storing payload words into the slot.
const BUSY: u64 = 1;
/// Stamp bit 1: the stamp's position was dropped; its event will never be in the slot.
const ABANDONED: u64 = 2;

/// One event.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Event {
    /// The id of the object that published it ([`crate::Breaker::id`] and friends).
    pub source: u64,
    /// When, in the publishing object's clock nanoseconds.
    pub at_ns: u64,
    /// What happened.
    pub kind: EventKind,
}

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum EventKind {
    /// A breaker changed state.
    Transition {
        /// The state it left.
        from: State,
        /// The state it entered.
        to: State,
        /// The generation the new state runs under.
        generation: u64,
        /// Why.
        reason: TransitionReason,
    },
    /// A dynamic threshold moved a breaker's failure-rate threshold.
    ThresholdChanged {
        /// The threshold before.
        old: f64,
        /// The threshold after.
        new: f64,
    },
    /// An SLO's burn rate crossed an alerting threshold (`fast` tells which window pair).
    SloBurn {
        /// The fast pair (true) or the slow pair (false).
        fast: bool,
        /// The burn that decided: the slower of the pair's two burns (both reached the threshold).
        burn_rate: f64,
    },
    /// An SLO's burn rate fell under its recovery line (`threshold * recovery_factor`), with calls
    /// in the short window (an empty window recovers nothing).
    SloRecovered {
        /// The fast pair (true) or the slow pair (false).
        fast: bool,
        /// The burn that decided: the slower of the pair's two burns (under the recovery line).
        burn_rate: f64,
    },
    /// A keyed registry evicted an idle entry (the key's 64-bit hash or numeric key).
    Evicted {
        /// The key, or its hash for non-numeric keys.
        key: u64,
    },
    /// A retry budget refused a retry.
    RetryBudgetExhausted,
    /// One key's breaker in a keyed breaker changed state. (Should the key be evicted between
    /// the transition and its event, a rare race, the event is a plain [`EventKind::Transition`]
    /// from the same source.)
    KeyedTransition {
        /// The key (its 64-bit form, as in [`EventKind::Evicted`]).
        key: u64,
        /// The state it left.
        from: State,
        /// The state it entered.
        to: State,
        /// The generation the new state runs under.
        generation: u64,
        /// Why.
        reason: TransitionReason,
    },
}

impl EventKind {
    fn encode(&self) -> [u64; 3] {
        match *self {
            EventKind::Transition {
                from,
                to,
                generation,
                reason,
            } => [
                1 | (from as u64) << 8 | (to as u64) << 16 | (reason as u64) << 24,
                generation,
                0,
            ],
            EventKind::ThresholdChanged { old, new } => [2, old.to_bits(), new.to_bits()],
            EventKind::SloBurn { fast, burn_rate } => {
                [3 | (fast as u64) << 8, burn_rate.to_bits(), 0]
            }
            EventKind::SloRecovered { fast, burn_rate } => {
                [4 | (fast as u64) << 8, burn_rate.to_bits(), 0]
            }
            EventKind::Evicted { key } => [5, key, 0],
            EventKind::RetryBudgetExhausted => [6, 0, 0],
            EventKind::KeyedTransition {
                key,
                from,
                to,
                generation,
                reason,
            } => [
                7 | (from as u64) << 8 | (to as u64) << 16 | (reason as u64) << 24,
                generation,
                key,
            ],
        }
    }

    fn decode(w: [u64; 3]) -> Option<Self> {
        let byte = |i: u32| (w[0] >> (8 * i)) as u8;
        Some(match byte(0) {
            1 => EventKind::Transition {
                from: State::from_u8(byte(1))?,
                to: State::from_u8(byte(2))?,
                generation: w[1],
                reason: TransitionReason::from_u8(byte(3))?,
            },
            2 => EventKind::ThresholdChanged {
                old: f64::from_bits(w[1]),
                new: f64::from_bits(w[2]),
            },
            3 => EventKind::SloBurn {
                fast: byte(1) != 0,
                burn_rate: f64::from_bits(w[1]),
            },
            4 => EventKind::SloRecovered {
                fast: byte(1) != 0,
                burn_rate: f64::from_bits(w[1]),
            },
            5 => EventKind::Evicted { key: w[1] },
            6 => EventKind::RetryBudgetExhausted,
            7 => EventKind::KeyedTransition {
                key: w[2],
                from: State::from_u8(byte(1))?,
                to: State::from_u8(byte(2))?,
                generation: w[1],
                reason: TransitionReason::from_u8(byte(3))?,
            },
            _ => return None,
        })
    }
}

struct Slot {
    /// See the module docs: `(p + 1) << 2 | ABANDONED | BUSY`.
    stamp: AtomicU64,
    words: [AtomicU64; WORDS],
}

struct Inner {
    slots: Box<[Slot]>,
    mask: u64,
    head: AtomicU64,
    dropped: AtomicU64,
}

/// A bounded broadcast ring of [`Event`]s. Cheap to clone (an `Arc`).
#[derive(Clone)]
pub struct EventRing {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EventRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventRing")
            .field("capacity", &self.capacity())
            .field("published", &self.published())
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl Default for EventRing {
    fn default() -> Self {
        Self::new(1024)
    }
}

impl EventRing {
    /// A ring holding the last `capacity` events (rounded up to a power of two, at least 2).
    pub fn new(capacity: usize) -> Self {
        let n = capacity.clamp(2, 1 << 20).next_power_of_two();
        let slots = (0..n)
            .map(|_| Slot {
                stamp: AtomicU64::new(0),
                words: std::array::from_fn(|_| AtomicU64::new(0)),
            })
            .collect::<Vec<_>>()
            .into_boxed_slice();
        Self {
            inner: Arc::new(Inner {
                slots,
                mask: n as u64 - 1,
                head: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
            }),
        }
    }

    /// How many events the ring holds.
    pub fn capacity(&self) -> usize {
        self.inner.slots.len()
    }

    /// How many events were ever published (including dropped ones).
    pub fn published(&self) -> u64 {
        self.inner.head.load(Ordering::Relaxed)
    }

    /// How many published events never reached the ring: their writer was overtaken by a whole
    /// lap of the ring while publishing. Every subscription counts them in its `missed` too.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Publishes an event. Never waits, never allocates.
    #[inline]
    pub fn publish(&self, event: Event) {
        if let Some(w) = self.claim() {
            w.write(&event);
            w.commit();
        }
    }

    /// Takes a position and claims its slot, or drops the event (counted) when the slot is taken
    /// by a newer position or still being written by an older one.
    #[inline]
    fn claim(&self) -> Option<Writer<'_>> {
        // Relaxed: the position only has to be unique; the slot's stamp carries the ordering.
        self.claim_at(self.inner.head.fetch_add(1, Ordering::Relaxed))
    }

    /// [`EventRing::claim`] for position `p`, once taken from `head`.
    #[inline]
    fn claim_at(&self, p: u64) -> Option<Writer<'_>> {
        let inner = &*self.inner;
        let slot = &inner.slots[(p & inner.mask) as usize];
        let lap = p + 1;
        let mut s = slot.stamp.load(Ordering::Relaxed);
        loop {
            if s >> 2 > lap {
                // A later lap took the slot before we got here: our event is gone.
                inner.dropped.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            // BUSY: an older writer is still storing. We may not store beside it, and readers
            // must not wait for us: say so in the stamp (and leave BUSY to its owner).
            let next = if s & BUSY != 0 {
                lap << 2 | ABANDONED | BUSY
            } else {
                lap << 2 | BUSY
            };
            // Acquire: pairs with the Release of the previous payload writer's commit or BUSY
            // clear, so that our payload stores come after its ones in every word.
            match slot
                .stamp
                .compare_exchange_weak(s, next, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) if s & BUSY != 0 => {
                    inner.dropped.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
                Ok(_) => break,
                Err(now) => s = now,
            }
        }
        // Release fence: a reader that loads any payload word stored below also sees our claim
        // when it re-checks the stamp (after its Acquire fence), and throws the words away.
        crate::sync::fence_release();
        Some(Writer {
            inner,
            slot,
            claimed: lap << 2 | BUSY,
        })
    }

    /// A subscription that reads events published from now on.
    pub fn subscribe(&self) -> Subscription {
        Subscription {
            ring: self.clone(),
            cursor: self.inner.head.load(Ordering::Acquire),
            missed: 0,
        }
    }

    /// A subscription that starts with the oldest event still in the ring.
    pub fn subscribe_from_oldest(&self) -> Subscription {
        let head = self.inner.head.load(Ordering::Acquire);
        Subscription {
            ring: self.clone(),
            cursor: head.saturating_sub(self.capacity() as u64),
            missed: 0,
        }
    }
}

/// A claimed slot: its owner is the only one storing payload words until it commits.
struct Writer<'a> {
    inner: &'a Inner,
    slot: &'a Slot,
    claimed: u64,
}

impl Writer<'_> {
    /// Stores the payload (Relaxed: the claim's fence and the commit's Release order them).
    #[inline]
    fn write(&self, event: &Event) {
        let [a, b, c] = event.kind.encode();
        let words = [event.source, event.at_ns, a, b, c];
        for (w, v) in self.slot.words.iter().zip(words) {
            w.store(v, Ordering::Relaxed);
        }
    }

    /// Publishes the payload, or, when a later lap abandoned itself on the slot meanwhile,
    /// drops it (counted) and hands the slot on.
    #[inline]
    fn commit(self) {
        // Release: a reader that sees the complete stamp (Acquire) sees the payload.
        let done = self.claimed & !BUSY;
        if self
            .slot
            .stamp
            .compare_exchange(self.claimed, done, Ordering::Release, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
        // Only abandonments (`ABANDONED | BUSY` under a later lap) can have happened while we
        // held BUSY: readers already count our position as missed. Release: the next claimant
        // (Acquire) stores after our stores.
        self.inner.dropped.fetch_add(1, Ordering::Relaxed);
        self.slot.stamp.fetch_and(!BUSY, Ordering::Release);
    }
}

/// A reader of an [`EventRing`] with its own cursor.
#[derive(Debug)]
pub struct Subscription {
    ring: EventRing,
    cursor: u64,
    missed: u64,
}

impl Subscription {
    /// The next event, or `None` when this subscription has caught up (or the next event's
    /// writer is still storing it: a few instructions, and never longer than one lap).
    pub fn poll(&mut self) -> Option<Event> {
        let inner = &*self.ring.inner;
        let cap = inner.slots.len() as u64;
        loop {
            // Relaxed: see the module docs (the stamps carry the ordering).
            let head = inner.head.load(Ordering::Relaxed);
            if self.cursor >= head {
                return None;
            }
            if head - self.cursor > cap {
                // Lapped: the slots of the events between are (being) reused.
                self.missed += head - cap - self.cursor;
                self.cursor = head - cap;
            }
            let slot = &inner.slots[(self.cursor & inner.mask) as usize];
            let lap = self.cursor + 1;
            // Acquire: pairs with the commit's Release (the payload is visible).
            let s = slot.stamp.load(Ordering::Acquire);
            if s >> 2 < lap {
                // Our position's writer has not reached its slot yet: pending.
                return None;
            }
            if s >> 2 > lap || s & ABANDONED != 0 {
                // A later lap took the slot, or our position was dropped.
                self.missed += 1;
                self.cursor += 1;
                continue;
            }
            if s & BUSY != 0 {
                // Being written: pending until it commits or a later lap abandons itself here.
                return None;
            }
            let mut w = [0u64; WORDS];
            for (dst, src) in w.iter_mut().zip(&slot.words) {
                *dst = src.load(Ordering::Relaxed);
            }
            // Pairs with the claim's Release fence: if any word above came from a later
            // writer, the re-check sees its claim. The payload loads stay before it.
            crate::sync::fence_acquire();
            if slot.stamp.load(Ordering::Relaxed) != s {
                continue; // reclaimed while we read: the next round counts it as missed
            }
            self.cursor += 1;
            match EventKind::decode([w[2], w[3], w[4]]) {
                Some(kind) => {
                    return Some(Event {
                        source: w[0],
                        at_ns: w[1],
                        kind,
                    })
                }
                None => self.missed += 1,
            }
        }
    }

    /// Events this subscription will never deliver: those it skipped because it fell more than
    /// the ring's capacity behind, those dropped while being published ([`EventRing::dropped`])
    /// and any it could not decode. Once the publishers are done and [`Subscription::poll`] has
    /// returned `None`, delivered + missed == the events published since it subscribed.
    pub fn missed(&self) -> u64 {
        self.missed
    }

    /// The ring this subscription reads.
    pub fn ring(&self) -> &EventRing {
        &self.ring
    }
}

impl Iterator for Subscription {
    type Item = Event;
    fn next(&mut self) -> Option<Event> {
        self.poll()
    }
}

#[cfg(all(test, not(surgewall_loom)))]
mod tests {
    use super::*;

    fn ev(n: u64) -> Event {
        Event {
            source: n,
            at_ns: n * 10,
            kind: EventKind::Evicted { key: n },
        }
    }

    #[test]
    fn every_kind_round_trips() {
        let ring = EventRing::new(16);
        let mut sub = ring.subscribe();
        let kinds = [
            EventKind::Transition {
                from: State::Closed,
                to: State::Open,
                generation: 1 << 39,
                reason: TransitionReason::FailureRate,
            },
            EventKind::ThresholdChanged {
                old: 0.5,
                new: 0.25,
            },
            EventKind::SloBurn {
                fast: true,
                burn_rate: 14.4,
            },
            EventKind::SloRecovered {
                fast: false,
                burn_rate: 0.5,
            },
            EventKind::Evicted { key: u64::MAX },
            EventKind::RetryBudgetExhausted,
            EventKind::KeyedTransition {
                key: u64::MAX - 1,
                from: State::HalfOpen,
                to: State::Closed,
                generation: (1 << 40) - 1,
                reason: TransitionReason::ProbesSucceeded,
            },
        ];
        for (i, k) in kinds.iter().enumerate() {
            ring.publish(Event {
                source: i as u64,
                at_ns: 3,
                kind: *k,
            });
        }
        for (i, k) in kinds.iter().enumerate() {
            let e = sub.poll().unwrap();
            assert_eq!((e.source, e.kind), (i as u64, *k));
        }
        assert!(sub.poll().is_none());
    }

    #[test]
    fn a_lagging_subscriber_skips_ahead_and_counts() {
        let ring = EventRing::new(4);
        let mut sub = ring.subscribe();
        for n in 0..10 {
            ring.publish(ev(n));
        }
        let got: Vec<u64> = sub.by_ref().map(|e| e.source).collect();
        assert_eq!(got, vec![6, 7, 8, 9]);
        assert_eq!(sub.missed(), 6);
        assert_eq!(ring.dropped(), 0);
    }

    #[test]
    fn subscribers_are_independent() {
        let ring = EventRing::new(8);
        let mut a = ring.subscribe();
        ring.publish(ev(1));
        let mut b = ring.subscribe();
        ring.publish(ev(2));
        assert_eq!(a.poll().unwrap().source, 1);
        assert_eq!(a.poll().unwrap().source, 2);
        assert_eq!(b.poll().unwrap().source, 2);
        let mut c = ring.subscribe_from_oldest();
        assert_eq!(c.poll().unwrap().source, 1);
    }

    /// Drains `sub`, returning the sources it delivered.
    fn drain(sub: &mut Subscription) -> Vec<u64> {
        sub.by_ref().map(|e| e.source).collect()
    }

    #[test]
    fn a_slow_writer_holds_readers_only_until_it_commits() {
        let ring = EventRing::new(4);
        let mut sub = ring.subscribe();
        ring.publish(ev(0));
        let slow = ring.claim().unwrap(); // position 1, mid-write
        slow.write(&ev(1));
        ring.publish(ev(2));
        assert_eq!(drain(&mut sub), vec![0]); // 1 is pending, and 2 waits behind it
        slow.commit();
        assert_eq!(drain(&mut sub), vec![1, 2]);
        assert_eq!((sub.missed(), ring.dropped()), (0, 0));
    }

    #[test]
    fn a_writer_lapped_mid_write_is_dropped_counted_and_blinds_nobody() {
        // The issue's blindness: position 1 is being written when position 5 (its slot's next
        // lap) comes; then 5 used to be dropped without trace and readers waited on slot 1
        // until 9 came.
        let ring = EventRing::new(4);
        let mut sub = ring.subscribe();
        ring.publish(ev(0));
        let slow = ring.claim().unwrap(); // position 1
        slow.write(&ev(1));
        for n in 2..=5 {
            ring.publish(ev(n)); // 5 meets the busy slot: dropped
        }
        assert_eq!(ring.dropped(), 1);
        // Lapped: 0 and 1 are skipped, 2..=4 delivered, 5 counted as missed at once.
        assert_eq!(drain(&mut sub), vec![2, 3, 4]);
        assert_eq!(sub.missed(), 3);
        slow.commit(); // its slot now belongs to position 5: dropped too
        assert_eq!(ring.dropped(), 2);
        assert_eq!(drain(&mut sub), Vec::<u64>::new());
        // Quiet from here: the next events, up to the one in the very slot of 1 and 5 (9),
        // come out at once.
        for n in 6..=9 {
            ring.publish(ev(n));
        }
        assert_eq!(drain(&mut sub), vec![6, 7, 8, 9]);
        assert_eq!((sub.missed(), ring.dropped()), (3, 2));
        assert_eq!(3 + 4 + sub.missed(), ring.published());
    }

    #[test]
    fn a_writer_lapped_before_it_claims_drops_its_event() {
        let ring = EventRing::new(2);
        let mut sub = ring.subscribe();
        // Take position 0 without reaching the slot (a writer between fetch_add and claim)...
        let p = ring.inner.head.fetch_add(1, Ordering::Relaxed);
        assert_eq!(p, 0);
        assert_eq!(drain(&mut sub), Vec::<u64>::new()); // pending: no event yet
        ring.publish(ev(1));
        ring.publish(ev(2)); // position 2 takes slot 0
        assert_eq!(drain(&mut sub), vec![1, 2]);
        assert_eq!(sub.missed(), 1);
        // ...now position 0's writer arrives: a later lap has its slot, so it drops.
        assert!(ring.claim_at(0).is_none());
        assert_eq!(ring.dropped(), 1);
        assert_eq!(ring.inner.slots[0].stamp.load(Ordering::Relaxed), 3 << 2);
    }

    #[test]
    fn concurrent_publishers_lose_nothing_that_fits() {
        let ring = EventRing::new(4096);
        let mut sub = ring.subscribe();
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let ring = ring.clone();
                s.spawn(move || {
                    for i in 0..500 {
                        ring.publish(ev(t * 1000 + i));
                    }
                });
            }
        });
        let mut seen: Vec<u64> = sub.by_ref().map(|e| e.source).collect();
        seen.sort_unstable();
        assert_eq!(seen.len(), 2000);
        seen.dedup();
        assert_eq!(seen.len(), 2000);
        assert_eq!(ring.dropped(), 0);
    }
}
