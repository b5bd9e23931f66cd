//! The event ring: a bounded, lock-free, broadcast ring of small `Copy` events.
//!
//! Policies publish transitions, threshold changes, SLO burn and evictions here; the agent and
//! any number of [`Subscription`]s read them, each at its own pace. Publishing never blocks and
//! never allocates: when a subscriber falls more than the ring's capacity behind, it skips ahead
//! and counts what it missed; when two publishers collide on one slot (a whole lap of the ring
//! during one write) the later event is dropped and counted.
//!
//! Each slot is a small seqlock: `seq` is 0 before the first write, `2p + 1` while position `p`
//! is being written and `2p + 2` once it is complete. Payload words are atomics, so a reader
//! racing a writer reads stale or torn words — never undefined behaviour — and throws them
//! away when `seq` changed under it.
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
    seq: AtomicU64,
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
                seq: AtomicU64::new(0),
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

    /// How many events were dropped because two publishers collided on one slot.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Publishes an event. Never blocks, never allocates.
    pub fn publish(&self, event: Event) {
        let inner = &*self.inner;
        let cap = inner.slots.len() as u64;
        // Relaxed: the position only has to be unique; the slot's `seq` carries the ordering.
        let p = inner.head.fetch_add(1, Ordering::Relaxed);
        let slot = &inner.slots[(p & inner.mask) as usize];
        let writing = 2 * p + 1;
        let newest_allowed = if p >= cap { 2 * (p - cap) + 2 } else { 0 };
        let mut s = slot.seq.load(Ordering::Relaxed);
        loop {
            // Odd: another publisher is mid-write on this slot (the ring lapped during its
            // write). Newer than our lap: we are the late one. Either way, drop and count.
            if s & 1 == 1 || s > newest_allowed {
                inner.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            // Acquire pairs with the previous writer's Release, so our payload stores are
            // ordered after its ones.
            match slot
                .seq
                .compare_exchange_weak(s, writing, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => s = now,
            }
        }
        let [a, b, c] = event.kind.encode();
        let words = [event.source, event.at_ns, a, b, c];
        for (w, v) in slot.words.iter().zip(words) {
            w.store(v, Ordering::Relaxed);
        }
        // Release: a reader that sees `2p + 2` sees the payload above.
        slot.seq.store(writing + 1, Ordering::Release);
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

/// A reader of an [`EventRing`] with its own cursor.
#[derive(Debug)]
pub struct Subscription {
    ring: EventRing,
    cursor: u64,
    missed: u64,
}

impl Subscription {
    /// The next event, or `None` when this subscription has caught up.
    pub fn poll(&mut self) -> Option<Event> {
        let inner = &*self.ring.inner;
        let cap = inner.slots.len() as u64;
        loop {
            let head = inner.head.load(Ordering::Acquire);
            if self.cursor >= head {
                return None;
            }
            if head - self.cursor > cap {
                // Lapped: the events between are gone.
                self.missed += head - cap - self.cursor;
                self.cursor = head - cap;
            }
            let slot = &inner.slots[(self.cursor & inner.mask) as usize];
            let done = 2 * self.cursor + 2;
            let s1 = slot.seq.load(Ordering::Acquire);
            if s1 == done {
                let mut w = [0u64; WORDS];
                for (dst, src) in w.iter_mut().zip(&slot.words) {
                    *dst = src.load(Ordering::Relaxed);
                }
                // The payload loads must not move after the re-check of `seq`.
                crate::sync::fence_acquire();
                if slot.seq.load(Ordering::Relaxed) != s1 {
                    continue; // overwritten while reading: lapped, the next round skips ahead
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
                    None => {
                        self.missed += 1;
                        continue;
                    }
                }
            } else if s1 > done {
                // A later lap already reused the slot.
                self.missed += 1;
                self.cursor += 1;
            } else {
                // Still being written (or its write was dropped and the slot waits for its
                // next lap): come back later.
                return None;
            }
        }
    }

    /// Events this subscription skipped because it fell behind (or could not decode).
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
