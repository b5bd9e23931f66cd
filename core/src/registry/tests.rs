use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use super::*;
use crate::bulkhead::{Bulkhead, BulkheadConfig};
use crate::events::EventKind;

const SEC: u64 = 1_000_000_000;

fn config(max: u32) -> BulkheadConfig {
    BulkheadConfig::builder()
        .max_concurrent(max)
        .build()
        .unwrap()
}

fn builder() -> RegistryBuilder<u64, Arc<Bulkhead>, BulkheadConfig> {
    Registry::builder(config(2), |k: &u64, c: &BulkheadConfig| {
        Arc::new(Bulkhead::new(k.to_string(), *c))
    })
    .event_key(|k| *k)
}

#[test]
fn racing_threads_get_exactly_one_instance_per_key() {
    let made = Arc::new(AtomicU64::new(0));
    let counter = made.clone();
    let r = Registry::builder(config(1), move |k: &u64, c: &BulkheadConfig| {
        counter.fetch_add(1, Ordering::SeqCst);
        Arc::new(Bulkhead::new(k.to_string(), *c))
    })
    .build();
    const THREADS: usize = 8;
    let barrier = Barrier::new(THREADS);
    let got: Vec<Vec<Arc<Bulkhead>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let (r, barrier) = (&r, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    (0..50u64).map(|k| r.get(&k).unwrap()).collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for other in &got[1..] {
        for (k, (a, b)) in got[0].iter().zip(other).enumerate() {
            assert!(Arc::ptr_eq(a, b), "key {k} has two instances");
        }
    }
    assert_eq!(made.load(Ordering::SeqCst), 50);
    assert_eq!(r.stats().created, 50);
    assert_eq!(r.len(), 50);
}

#[test]
fn overrides_replace_the_template_for_their_key() {
    let r = builder().override_key(7, config(9)).build();
    assert_eq!(r.get(&1).unwrap().max_concurrent(), 2);
    assert_eq!(r.get(&7).unwrap().max_concurrent(), 9);
}

#[test]
fn the_cap_rejects_new_keys_and_counts_them() {
    let r = builder().max_keys(2).build();
    r.get(&1).unwrap();
    r.get(&2).unwrap();
    let err = r.get(&3).unwrap_err();
    assert_eq!(err, RegistryFull { max_keys: 2 });
    assert!(err.to_string().contains("maximum of 2 keys"));
    r.get(&1).unwrap(); // known keys still work
    let s = r.stats();
    assert_eq!((s.keys, s.created, s.rejected, s.overflowed), (2, 2, 1, 0));
    assert!(r.peek(&3).is_none());
}

#[test]
fn the_cap_can_route_new_keys_to_one_shared_entry() {
    let r = builder()
        .max_keys(1)
        .overflow(Overflow::Shared(u64::MAX))
        .build();
    let own = r.get(&1).unwrap();
    let a = r.get(&2).unwrap();
    let b = r.get(&3).unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    assert!(!Arc::ptr_eq(&a, &own));
    assert_eq!(a.name(), u64::MAX.to_string());
    let (key, shared) = r.overflow_entry().unwrap();
    assert_eq!(*key, u64::MAX);
    assert!(Arc::ptr_eq(shared, &a));
    let s = r.stats();
    assert_eq!((s.keys, s.created, s.overflowed, s.rejected), (1, 1, 2, 0));
}

#[test]
fn sweep_evicts_idle_entries_only_and_publishes_events() {
    let ring = EventRing::new(64);
    let mut sub = ring.subscribe();
    let r = builder()
        .idle_ttl(Duration::from_secs(10))
        .events(ring.clone())
        .max_keys(3)
        .build();
    let busy = r.get(&1).unwrap();
    let permit = busy.try_acquire().unwrap();
    let used = r.get(&2).unwrap();
    let idle = r.get(&3).unwrap();

    assert_eq!(r.sweep(SEC), 0); // first look marks them
    used.call(|| ()).unwrap(); // used between sweeps: its mark restarts
    assert_eq!(r.sweep(11 * SEC), 1); // only 3 has been idle for 10 s
    let ev = sub.poll().unwrap();
    assert_eq!(ev.kind, EventKind::Evicted { key: 3 });
    assert_eq!((ev.source, ev.at_ns), (r.id(), 11 * SEC));
    assert!(sub.poll().is_none());

    assert_eq!(r.sweep(100 * SEC), 1); // 2 is idle now; 1 holds a permit: never evicted
    assert!(r.peek(&1).is_some());
    assert!(r.peek(&2).is_none());
    drop(permit);
    assert_eq!(r.sweep(200 * SEC), 0); // 1 was used: marked again
    assert_eq!(r.sweep(210 * SEC), 1);
    assert!(r.is_empty());
    assert_eq!(r.stats().evicted, 3);

    // Handles outlive eviction and keep working; the key gets a fresh instance.
    assert_eq!(idle.call(|| 5), Ok(5));
    let again = r.get(&3).unwrap();
    assert!(!Arc::ptr_eq(&again, &idle));
    assert_eq!(r.stats().created, 4);
}

#[test]
fn eviction_frees_room_under_the_cap() {
    let r = builder().max_keys(1).idle_ttl(Duration::ZERO).build();
    r.get(&1).unwrap();
    assert!(r.get(&2).is_err());
    assert_eq!(r.sweep(SEC), 1);
    assert!(r.get(&2).is_ok());
}

#[test]
fn a_waiting_caller_keeps_its_bulkhead() {
    let r = builder().idle_ttl(Duration::ZERO).build();
    let b = r.get(&1).unwrap();
    let held: Vec<_> = (0..2).map(|_| b.try_acquire_raw().unwrap()).collect();
    std::thread::scope(|s| {
        let w = s.spawn(|| b.acquire_timeout(Duration::from_secs(30)).map(drop));
        while b.metrics().waiting == 0 {
            std::thread::yield_now();
        }
        assert_eq!(r.sweep(SEC), 0); // calls in flight and a waiter: busy
        for _ in held {
            b.release_raw().unwrap();
        }
        w.join().unwrap().unwrap();
    });
    assert_eq!(r.sweep(2 * SEC), 1);
}

#[test]
fn iteration_sees_every_key_and_default_event_keys_are_stable_hashes() {
    let r = Registry::builder(config(1), |_: &String, c: &BulkheadConfig| {
        Arc::new(Bulkhead::new("x", *c))
    })
    .build();
    for name in ["a", "b", "c"] {
        r.get(&name.to_string()).unwrap();
    }
    let mut seen = Vec::new();
    r.for_each(|k, v| seen.push((k.clone(), v.max_concurrent())));
    seen.sort();
    assert_eq!(
        seen,
        vec![("a".into(), 1), ("b".into(), 1), ("c".into(), 1)]
    );
    let k = "a".to_string();
    assert_eq!(r.event_key_of(&k), r.event_key_of(&k.clone()));
    assert_ne!(r.event_key_of(&k), r.event_key_of(&"b".to_string()));
}
