//! The event ring under contention (issue 15 item 2): every published event is either delivered
//! to a subscriber or counted in its `missed`, delivered events are never torn, and a quiet
//! ring delivers a new event at once. The loom model of the same protocol is `loom_events.rs`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::thread;

use surgewall::events::{Event, EventKind, EventRing, Subscription};

const PUBLISHERS: u64 = 8;
const SUBSCRIBERS: usize = 2;

/// An event whose words all derive from `id`, so a torn one (words of two events) is seen.
fn event(id: u64) -> Event {
    Event {
        source: id,
        at_ns: id.rotate_left(17) ^ 0x5555_5555_5555_5555,
        kind: EventKind::ThresholdChanged {
            old: f64::from_bits(id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 12),
            new: f64::from_bits(!id >> 12),
        },
    }
}

/// What one subscriber saw.
#[derive(Default)]
struct Seen {
    delivered: u64,
    /// The last index delivered per publisher (+1): one publisher's events arrive in order.
    last: Vec<u64>,
}

impl Seen {
    fn take(&mut self, e: Event) {
        assert_eq!(e, event(e.source), "a torn event was delivered");
        let (t, i) = ((e.source >> 32) as usize, e.source & 0xffff_ffff);
        assert!(
            i + 1 > self.last[t],
            "publisher {t}: event {i} after {}",
            self.last[t]
        );
        self.last[t] = i + 1;
        self.delivered += 1;
    }

    fn drain(&mut self, sub: &mut Subscription) {
        while let Some(e) = sub.poll() {
            self.take(e);
        }
    }
}

/// The recipe: `PUBLISHERS` threads publish `per_thread` events each into a ring of
/// `capacity` while `SUBSCRIBERS` threads poll; once the publishers are done every subscriber
/// drains. Returns the ring and each subscriber with what it saw.
fn contend(capacity: usize, per_thread: u64) -> (EventRing, Vec<(Subscription, Seen)>) {
    let ring = EventRing::new(capacity);
    let subs: Vec<Subscription> = (0..SUBSCRIBERS).map(|_| ring.subscribe()).collect();
    let start = Barrier::new(PUBLISHERS as usize + SUBSCRIBERS);
    let done = AtomicBool::new(false);
    let results = thread::scope(|s| {
        let readers: Vec<_> = subs
            .into_iter()
            .map(|mut sub| {
                let (start, done) = (&start, &done);
                s.spawn(move || {
                    let mut seen = Seen {
                        last: vec![0; PUBLISHERS as usize],
                        ..Seen::default()
                    };
                    start.wait();
                    while !done.load(Ordering::Acquire) {
                        match sub.poll() {
                            Some(e) => seen.take(e),
                            None => thread::yield_now(),
                        }
                    }
                    (sub, seen)
                })
            })
            .collect();
        let writers: Vec<_> = (0..PUBLISHERS)
            .map(|t| {
                let (ring, start) = (&ring, &start);
                s.spawn(move || {
                    start.wait();
                    for i in 0..per_thread {
                        ring.publish(event(t << 32 | i));
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, Ordering::Release);
        readers
            .into_iter()
            .map(|r| r.join().unwrap())
            .collect::<Vec<_>>()
    });
    let results = results
        .into_iter()
        .map(|(mut sub, mut seen)| {
            seen.drain(&mut sub);
            (sub, seen)
        })
        .collect();
    (ring, results)
}

#[test]
fn every_published_event_is_delivered_or_counted_as_missed() {
    for capacity in [16, 4096] {
        let (ring, subs) = contend(capacity, 200_000);
        let published = PUBLISHERS * 200_000;
        assert_eq!(ring.published(), published);
        for (i, (sub, seen)) in subs.iter().enumerate() {
            assert_eq!(
                seen.delivered + sub.missed(),
                published,
                "capacity {capacity}, subscriber {i}: {} delivered, {} missed, ring dropped {}",
                seen.delivered,
                sub.missed(),
                ring.dropped()
            );
            // A dropped event was never in the ring: no subscriber can have had it.
            assert!(sub.missed() >= ring.dropped());
        }
    }
}

#[test]
fn a_quiet_ring_delivers_the_next_event_at_once() {
    // Contention first (small ring: writers lap each other), then silence: one event must come
    // out of the very next poll of every subscriber, not 4096 events later.
    for round in 0..20 {
        let (ring, mut subs) = contend(4, 2_000);
        for (sub, _) in subs.iter_mut() {
            assert!(sub.poll().is_none());
        }
        let id = 7 << 32 | round;
        ring.publish(event(id));
        for (i, (sub, seen)) in subs.iter_mut().enumerate() {
            let got = sub.poll();
            assert_eq!(
                got.map(|e| e.source),
                Some(id),
                "round {round}, subscriber {i}: the quiet event did not come out \
                 ({} delivered, {} missed, ring dropped {})",
                seen.delivered,
                sub.missed(),
                ring.dropped()
            );
            assert!(sub.poll().is_none());
        }
    }
}
