//! loom models of the event ring (`core/src/events.rs`, issue 15 item 2): with publishers
//! racing each other and a reader, over a ring small enough to be lapped, every published
//! event is delivered to the reader or counted in its `missed`, a dropped event is counted in
//! the ring's `dropped`, and no delivered event mixes the words of two events.
//!
//! Run with:
//! `RUSTFLAGS="--cfg surgewall_loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p surgewall --release --test loom_events`
#![cfg(surgewall_loom)]

use loom::thread;
use surgewall::events::{Event, EventKind, EventRing, Subscription};

/// An event whose words all derive from `id` (publisher in the high half, index in the low),
/// so that a torn one (words of two events) is seen.
fn event(id: u64) -> Event {
    Event {
        source: id,
        at_ns: !id,
        kind: EventKind::Evicted {
            key: id.rotate_left(7),
        },
    }
}

/// What the reader saw: delivered count, last index delivered per publisher (+1).
struct Seen {
    delivered: u64,
    last: [u64; 2],
}

impl Seen {
    fn new() -> Self {
        Seen {
            delivered: 0,
            last: [0; 2],
        }
    }

    fn poll(&mut self, sub: &mut Subscription) -> bool {
        match sub.poll() {
            Some(e) => {
                assert_eq!(e, event(e.source), "a torn event was delivered");
                let (t, i) = ((e.source >> 32) as usize, e.source & 0xffff_ffff);
                assert!(
                    i + 1 > self.last[t],
                    "publisher {t}: {i} after {}",
                    self.last[t]
                );
                self.last[t] = i + 1;
                self.delivered += 1;
                true
            }
            None => false,
        }
    }
}

/// `n` events from publisher `t`.
fn publisher(ring: &EventRing, t: u64, n: u64) -> thread::JoinHandle<()> {
    let ring = ring.clone();
    thread::spawn(move || {
        for i in 0..n {
            ring.publish(event(t << 32 | i));
        }
    })
}

/// Once every publisher is done, a drain must settle every position: what the reader did not
/// get it counts as missed, and the ring's own drops are among those.
fn settle(ring: &EventRing, sub: &mut Subscription, seen: &mut Seen, published: u64) {
    while seen.poll(sub) {}
    assert_eq!(ring.published(), published);
    assert_eq!(
        seen.delivered + sub.missed(),
        published,
        "{} delivered, {} missed, {} dropped",
        seen.delivered,
        sub.missed(),
        ring.dropped()
    );
    assert!(sub.missed() >= ring.dropped());
    // Settled means settled: the next event comes out of the next poll.
    ring.publish(event(1 << 32 | 99));
    assert_eq!(sub.poll().map(|e| e.source), Some(1 << 32 | 99));
    assert!(sub.poll().is_none());
}

/// Two publishers lap a ring of two slots (three events) while the reader polls: a writer can
/// be overtaken before it claims its slot (the other takes positions 1 and 2, and 2 the same
/// slot), while it stores its payload, or before it commits.
#[test]
fn racing_publishers_and_a_reader_account_for_every_event() {
    loom::model(|| {
        let ring = EventRing::new(2);
        let mut sub = ring.subscribe();
        let a = publisher(&ring, 0, 1);
        let b = publisher(&ring, 1, 2);
        let mut seen = Seen::new();
        seen.poll(&mut sub);
        a.join().unwrap();
        b.join().unwrap();
        settle(&ring, &mut sub, &mut seen, 3);
    });
}

/// One publisher overwrites the slot the reader is reading (three events on two slots): the
/// reader must never return a mix of the old and the new event, and what it loses it counts.
#[test]
fn a_reader_overrun_mid_read_never_returns_a_torn_event() {
    loom::model(|| {
        let ring = EventRing::new(2);
        let mut sub = ring.subscribe();
        ring.publish(event(0));
        let a = publisher(&ring, 1, 2);
        let mut seen = Seen::new();
        seen.poll(&mut sub);
        seen.poll(&mut sub);
        a.join().unwrap();
        settle(&ring, &mut sub, &mut seen, 3);
    });
}

/// Two publishers of two events each on a ring of two slots: every position's slot is wanted
/// by two writers, in every order, so each can meet the other claiming, storing or committing.
/// The reader comes once they are done and must account for all four (with a concurrent reader
/// too this model takes minutes; `racing_publishers_and_a_reader_...` has the reader).
#[test]
fn publishers_overrunning_each_other_leave_every_event_accounted_for() {
    loom::model(|| {
        let ring = EventRing::new(2);
        let mut sub = ring.subscribe();
        let a = publisher(&ring, 0, 2);
        let b = publisher(&ring, 1, 2);
        a.join().unwrap();
        b.join().unwrap();
        settle(&ring, &mut sub, &mut Seen::new(), 4);
    });
}
