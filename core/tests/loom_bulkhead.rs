//! Invariant I9 for the bulkhead's non-waiting path, over all interleavings (loom).
//!
//! Run: `RUSTFLAGS="--cfg surgewall_loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p surgewall
//! --release --test loom_bulkhead`.
//!
//! The waiting path (`acquire_timeout` with a non-zero wait) parks threads on std primitives
//! and is not modelled here; the multi-thread stress tests in `core/src/bulkhead/tests.rs`
//! cover it. The release path's look at the `waiting` gauge *is* modelled (it reads zero).
//!
//! The keyed bulkhead's generation (issue 15): a permit kept past its key's eviction, released
//! while another key holds its slot, races that key's calls. Only one thread touches the
//! registry's map (its shard locks are not modelled); releases find the cell by slot.
//! A resize (`set_max_concurrent`) is modelled against racing tries and releases; with one
//! resizing thread its queue lock is never contended.
#![cfg(surgewall_loom)]

use std::time::Duration;

use loom::sync::atomic::{AtomicU64, Ordering};
use loom::sync::Arc;
use loom::thread;
use surgewall::bulkhead::keyed::{KeyedBulkhead, KeyedRejected};
use surgewall::{Bulkhead, BulkheadConfig, NotAcquired};

fn bulkhead(max: u32) -> Bulkhead {
    Bulkhead::new(
        "loom",
        BulkheadConfig::builder()
            .max_concurrent(max)
            .build()
            .unwrap(),
    )
}

/// Each thread tries once and, if admitted, checks the in-flight count against the limit and
/// releases.
fn try_and_release(b: &Bulkhead, inside: &AtomicU64, max: u64) -> bool {
    match b.try_acquire() {
        Ok(permit) => {
            let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
            assert!(now <= max, "{now} calls inside a bulkhead of {max}");
            assert!(b.active() <= max);
            inside.fetch_sub(1, Ordering::SeqCst);
            drop(permit);
            true
        }
        Err(full) => {
            assert_eq!(u64::from(full.max_concurrent), max);
            false
        }
    }
}

#[test]
fn three_threads_on_one_slot_never_overlap_and_return_to_zero() {
    loom::model(|| {
        let b = Arc::new(bulkhead(1));
        let inside = Arc::new(AtomicU64::new(0));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let (b, inside) = (b.clone(), inside.clone());
                thread::spawn(move || try_and_release(&b, &inside, 1))
            })
            .collect();
        let mine = u64::from(try_and_release(&b, &inside, 1));
        let admitted: u64 = mine
            + handles
                .into_iter()
                .map(|h| u64::from(h.join().unwrap()))
                .sum::<u64>();
        let m = b.metrics();
        assert!(admitted >= 1, "the first caller always gets the free slot");
        assert_eq!(m.active, 0);
        assert_eq!(m.accepted, admitted);
        assert_eq!(m.accepted + m.rejected, 3);
        assert!(b.is_idle());
    });
}

#[test]
fn two_slots_two_threads_both_admitted() {
    loom::model(|| {
        let b = Arc::new(bulkhead(2));
        let inside = Arc::new(AtomicU64::new(0));
        let t = {
            let (b, inside) = (b.clone(), inside.clone());
            thread::spawn(move || try_and_release(&b, &inside, 2))
        };
        assert!(try_and_release(&b, &inside, 2));
        assert!(t.join().unwrap());
        let m = b.metrics();
        assert_eq!((m.active, m.accepted, m.rejected), (0, 2, 0));
    });
}

/// A raw caller releasing more than it acquired races a legitimate holder: the count never
/// goes below zero, exactly one release is reported, and the slot comes back.
#[test]
fn a_stray_release_racing_a_real_one_never_underflows() {
    loom::model(|| {
        let b = Arc::new(bulkhead(1));
        b.try_acquire_raw().unwrap();
        let stray = {
            let b = b.clone();
            thread::spawn(move || b.release_raw())
        };
        let mine = b.release_raw();
        let theirs = stray.join().unwrap();
        let errors = [mine, theirs]
            .iter()
            .filter(|r| **r == Err(NotAcquired))
            .count();
        assert_eq!(errors, 1);
        let m = b.metrics();
        assert_eq!((m.active, m.unexpected_releases), (0, 1));
        assert!(b.try_acquire_raw().is_ok());
    });
}

/// A stale release (key 1's permit, after key 1 was evicted and key 2 took its slot) racing
/// key 2's own release and a new call on key 2: the stale one is always refused, key 2 never
/// has more than its limit in flight, and both gauges come back to zero.
#[test]
fn a_stale_keyed_release_never_frees_the_next_keys_place() {
    loom::model(|| {
        let b = Arc::new(
            KeyedBulkhead::<u64>::builder(1)
                .global_max(2)
                .idle_ttl(Duration::ZERO)
                .build()
                .unwrap(),
        );
        let stale = b.try_acquire_raw(&1).unwrap();
        b.release_raw(stale).unwrap();
        assert_eq!(b.sweep(1_000_000_000), 1);
        let held = b.try_acquire_raw(&2).unwrap();
        assert_eq!(held.slot, stale.slot, "key 2 reuses key 1's slot");
        let stray = {
            let b = b.clone();
            thread::spawn(move || b.release_raw(stale))
        };
        let owner = {
            let b = b.clone();
            thread::spawn(move || b.release_raw(held))
        };
        let again = b.try_acquire_raw(&2);
        assert_eq!(stray.join().unwrap(), Err(NotAcquired));
        assert_eq!(owner.join().unwrap(), Ok(()));
        match again {
            Ok(p) => {
                // Admitted once key 2's first call was out: its limit of 1, never 2.
                assert_eq!(b.active(&2), Some(1));
                assert_eq!(
                    b.try_acquire(&2).unwrap_err(),
                    KeyedRejected::KeyFull { limit: 1 }
                );
                b.release_raw(p).unwrap();
            }
            Err(e) => assert_eq!(e, KeyedRejected::KeyFull { limit: 1 }),
        }
        let m = b.metrics();
        assert_eq!(b.active(&2), Some(0));
        assert_eq!((m.global_active, m.unexpected_releases), (Some(0), 1));
    });
}

/// A try racing a shrink: once the resize has returned and a reading shows the try had not
/// landed, the try is decided under the new limit (a try that read the old limit before the
/// resize must not land its CAS after it).
#[test]
fn a_try_racing_a_shrink_is_never_admitted_under_the_old_limit_after_it() {
    loom::model(|| {
        let b = Arc::new(bulkhead(2));
        b.try_acquire_raw().unwrap();
        let resizer = {
            let b = b.clone();
            thread::spawn(move || {
                assert_eq!(b.set_max_concurrent(1), Ok(2));
                b.active()
            })
        };
        let admitted = b.try_acquire_raw().is_ok();
        let seen_after_resize = resizer.join().unwrap();
        assert!(
            !(admitted && seen_after_resize == 1),
            "admitted after the shrink to 1 with 1 in flight"
        );
        let m = b.metrics();
        assert_eq!(m.active, 1 + u64::from(admitted));
        assert_eq!((m.accepted, m.max_concurrent), (m.active, 1));
    });
}

/// A growth racing a release and a try: never more inside than the new limit, `accepted`
/// counts the admissions only (not the resize), and every slot comes back.
#[test]
fn a_growth_racing_a_release_and_a_try_keeps_the_counts() {
    loom::model(|| {
        let b = Arc::new(bulkhead(1));
        b.try_acquire_raw().unwrap();
        let resizer = {
            let b = b.clone();
            thread::spawn(move || b.set_max_concurrent(2).unwrap())
        };
        let releaser = {
            let b = b.clone();
            thread::spawn(move || b.release_raw())
        };
        let admitted = b.try_acquire_raw().is_ok();
        assert!(b.active() <= 2);
        assert_eq!(resizer.join().unwrap(), 1);
        assert_eq!(releaser.join().unwrap(), Ok(()));
        let m = b.metrics();
        assert_eq!(m.active, u64::from(admitted));
        assert_eq!(m.accepted, 1 + u64::from(admitted));
        assert_eq!(m.rejected, u64::from(!admitted));
        if admitted {
            b.release_raw().unwrap();
        }
        assert!(b.is_idle());
    });
}
