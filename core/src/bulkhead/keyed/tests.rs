use crate::registry::Overflow;
use std::sync::atomic::{AtomicU64 as StdAtomicU64, Ordering as StdOrdering};
use std::sync::Barrier;
use std::time::Duration;

use super::*;
use crate::events::EventKind;

const SEC: u64 = 1_000_000_000;

#[test]
fn one_tenant_holding_its_slots_does_not_block_the_others() {
    let t = KeyedBulkhead::<u64>::builder(2)
        .global_max(5)
        .build()
        .unwrap();
    let hog: Vec<_> = (0..2).map(|_| t.try_acquire(&666).unwrap()).collect();
    for _ in 0..3 {
        assert_eq!(
            t.try_acquire(&666).unwrap_err(),
            KeyedRejected::KeyFull { limit: 2 }
        );
    }
    let others: Vec<_> = (1..=3).map(|k| t.try_acquire(&k).unwrap()).collect();
    // 5 in flight: the global limit now protects everybody.
    let err = t.try_acquire(&4).unwrap_err();
    assert_eq!(err, KeyedRejected::GlobalFull { limit: 5 });
    assert!(err.to_string().contains("across all keys"));
    // The refused key was not charged.
    assert_eq!(t.active(&4), Some(0));
    drop(others);
    assert!(t.try_acquire(&4).is_ok());
    let m = t.metrics();
    assert_eq!((m.rejected_key, m.rejected_global), (3, 1));
    assert_eq!(m.global_active, Some(2));
    drop(hog);
    assert_eq!(t.metrics().global_active, Some(0));
    let mut all = Vec::new();
    t.for_each(|k, active, limit| all.push((*k, active, limit)));
    all.sort();
    assert_eq!(
        all,
        vec![(1, 0, 2), (2, 0, 2), (3, 0, 2), (4, 0, 2), (666, 0, 2)]
    );
}

#[test]
fn overrides_and_bad_limits() {
    let t = KeyedBulkhead::<u64>::builder(1)
        .limit_for(9, 3)
        .build()
        .unwrap();
    let held: Vec<_> = (0..3).map(|_| t.try_acquire(&9).unwrap()).collect();
    assert_eq!(
        t.try_acquire(&9).unwrap_err(),
        KeyedRejected::KeyFull { limit: 3 }
    );
    drop(held);
    let field = |b: KeyedBulkheadBuilder<u64>| b.build().unwrap_err().field();
    assert_eq!(
        field(KeyedBulkhead::builder(1).global_max(0)),
        "global_max_concurrent"
    );
    assert_eq!(
        field(KeyedBulkhead::builder(1).limit_for(3, 0)),
        "max_concurrent"
    );
    assert_eq!(
        field(KeyedBulkhead::builder(MAX_CONCURRENT_LIMIT + 1)),
        "max_concurrent"
    );
}

#[test]
fn raw_releases_beyond_acquires_are_reported_and_never_underflow() {
    let t = KeyedBulkhead::<u64>::builder(2)
        .global_max(4)
        .build()
        .unwrap();
    let p = t.try_acquire_raw(&1).unwrap();
    let q = t.try_acquire_raw(&2).unwrap();
    assert_eq!(t.release_raw(p), Ok(()));
    assert_eq!(t.release_raw(p), Err(NotAcquired));
    assert_eq!(
        t.release_raw(KeyedRawPermit {
            slot: 1 << 30,
            generation: 1
        }),
        Err(NotAcquired)
    );
    // A zeroed permit and one with another generation of a live key's slot were never issued.
    assert_eq!(
        t.release_raw(KeyedRawPermit {
            slot: 0,
            generation: 0
        }),
        Err(NotAcquired)
    );
    let forged = KeyedRawPermit {
        generation: q.generation + 1,
        ..q
    };
    assert_eq!(t.release_raw(forged), Err(NotAcquired));
    let m = t.metrics();
    assert_eq!((m.unexpected_releases, m.global_active), (4, Some(1)));
    assert_eq!(t.active(&2), Some(1));
    assert_eq!(t.active(&1), Some(0));
    t.release_raw(q).unwrap();
    assert_eq!(t.metrics().global_active, Some(0));
}

#[test]
fn sweeps_keep_busy_keys_evict_idle_ones_and_reuse_their_cells() {
    let ring = EventRing::new(16);
    let mut sub = ring.subscribe();
    let t = KeyedBulkhead::<u64>::builder(1)
        .limit_for(3, 7)
        .idle_ttl(Duration::from_secs(5))
        .events(ring)
        .event_key(|k| *k)
        .max_keys(2)
        .build()
        .unwrap();
    let busy = t.try_acquire(&1).unwrap();
    t.try_acquire(&2).unwrap().release();
    assert!(matches!(
        t.try_acquire(&3),
        Err(KeyedRejected::TooManyKeys(_))
    ));
    assert_eq!(t.sweep(SEC), 0);
    assert_eq!(t.sweep(6 * SEC), 1);
    assert_eq!(sub.poll().unwrap().kind, EventKind::Evicted { key: 2 });
    assert_eq!(t.active(&1), Some(1));
    assert_eq!(t.active(&2), None);
    // Key 3 reuses key 2's cell, with its own limit and nothing in flight.
    let held: Vec<_> = (0..7).map(|_| t.try_acquire(&3).unwrap()).collect();
    assert!(t.try_acquire(&3).is_err());
    drop(held);
    drop(busy);
    assert_eq!(t.sweep(7 * SEC), 0); // key 1 was used since the last sweep
    assert_eq!(t.sweep(12 * SEC), 2);
    assert!(t.is_empty());
    assert_eq!(t.metrics().registry.evicted, 3);
}

/// Issue 15 item 4: a permit released once, whose key is then evicted and whose slot goes
/// to another key, must not take a call off that key when released again (before, it did:
/// key 2 then admitted 2 callers against its limit of 1, the gauge reading 1).
#[test]
fn a_stale_permit_never_releases_the_key_that_reuses_its_slot() {
    for (per_key, overrides) in [(1, vec![]), (5, vec![(1, 1), (2, 1)])] {
        let t = overrides
            .into_iter()
            .fold(KeyedBulkhead::<u64>::builder(per_key), |b, (k, n)| {
                b.limit_for(k, n)
            })
            .global_max(10)
            .idle_ttl(Duration::ZERO)
            .build()
            .unwrap();
        let stale = t.try_acquire_raw(&1).unwrap();
        t.release_raw(stale).unwrap();
        assert_eq!(t.sweep(SEC), 1);
        let held = t.try_acquire_raw(&2).unwrap();
        if per_key == 1 {
            assert_eq!(held.slot, stale.slot, "key 2 reuses key 1's slot");
            assert_ne!(held.generation, stale.generation);
        }
        assert_eq!(t.release_raw(stale), Err(NotAcquired));
        assert_eq!(t.active(&2), Some(1));
        assert_eq!(
            t.try_acquire(&2).unwrap_err(),
            KeyedRejected::KeyFull { limit: 1 }
        );
        let m = t.metrics();
        assert_eq!((m.unexpected_releases, m.global_active), (1, Some(1)));
        t.release_raw(held).unwrap();
        assert_eq!(t.release_raw(held), Err(NotAcquired));
        // Key 1 comes back (its reserved slot, or a fresh one): the old permit stays stale.
        assert_eq!(t.sweep(2 * SEC), 1);
        let again = t.try_acquire_raw(&1).unwrap();
        assert_eq!(t.release_raw(stale), Err(NotAcquired));
        assert_eq!(t.active(&1), Some(1));
        t.release_raw(again).unwrap();
        assert_eq!(t.metrics().global_active, Some(0));
    }
}

#[test]
fn the_generation_skips_zero_when_it_wraps() {
    let t = KeyedBulkhead::<u64>::builder(1).build().unwrap();
    let p = t.try_acquire_raw(&1).unwrap();
    t.release_raw(p).unwrap();
    let cell = t.cell(p.slot).unwrap();
    cell.word.store(GEN_MASK << GEN_SHIFT, Ordering::Relaxed);
    compact::Cell::renew(cell, 1);
    assert_eq!(
        (cell.word.load(Ordering::Relaxed) >> GEN_SHIFT) & GEN_MASK,
        1
    );
}

#[test]
fn keys_beyond_the_cap_can_share_one_overflow_slot() {
    let t = KeyedBulkhead::<u64>::builder(2)
        .max_keys(1)
        .overflow(Overflow::Shared(u64::MAX))
        .build()
        .unwrap();
    let _own = t.try_acquire(&1).unwrap();
    let a = t.try_acquire(&10).unwrap();
    let b = t.try_acquire(&11).unwrap();
    assert_eq!(
        t.try_acquire(&12).unwrap_err(),
        KeyedRejected::KeyFull { limit: 2 }
    );
    drop((a, b));
    assert_eq!(t.metrics().registry.overflowed, 3); // keys 10, 11, 12
    assert_eq!(t.len(), 1);
}

/// Many threads race on a few new keys: one cell per key, never more than the per-key or the
/// global limit in flight, and every gauge back to zero at the end (I9).
#[test]
fn racing_threads_keep_both_limits_and_return_to_zero() {
    const THREADS: usize = 6;
    let t = KeyedBulkhead::<u64>::builder(2)
        .global_max(5)
        .build()
        .unwrap();
    let inside: Vec<StdAtomicU64> = (0..4).map(|_| StdAtomicU64::new(0)).collect();
    let total = StdAtomicU64::new(0);
    let peak_key = StdAtomicU64::new(0);
    let peak_total = StdAtomicU64::new(0);
    let barrier = Barrier::new(THREADS);
    std::thread::scope(|s| {
        for n in 0..THREADS {
            let (t, inside, total, peak_key, peak_total, barrier) =
                (&t, &inside, &total, &peak_key, &peak_total, &barrier);
            s.spawn(move || {
                barrier.wait();
                for i in 0..5000u64 {
                    let key = (i + n as u64) % 4;
                    if let Ok(p) = t.try_acquire(&key) {
                        let k = inside[key as usize].fetch_add(1, StdOrdering::SeqCst) + 1;
                        let all = total.fetch_add(1, StdOrdering::SeqCst) + 1;
                        peak_key.fetch_max(k, StdOrdering::SeqCst);
                        peak_total.fetch_max(all, StdOrdering::SeqCst);
                        total.fetch_sub(1, StdOrdering::SeqCst);
                        inside[key as usize].fetch_sub(1, StdOrdering::SeqCst);
                        drop(p);
                    }
                }
            });
        }
    });
    assert!(peak_key.load(StdOrdering::SeqCst) <= 2);
    assert!(peak_total.load(StdOrdering::SeqCst) <= 5);
    let m = t.metrics();
    assert_eq!(m.global_active, Some(0));
    assert_eq!(m.registry.created, 4);
    assert_eq!(t.len(), 4);
    t.for_each(|_, active, _| assert_eq!(active, 0));
}

#[test]
fn an_idle_key_is_small() {
    // The per-key state: one 16-byte cell beside the key (a 24-byte slot with a u64 key),
    // and a 4-byte index in the table.
    assert_eq!(std::mem::size_of::<Cell>(), 16);
    assert_eq!(crate::registry::compact::slot_bytes::<u64, Cell>(), 24);
}
