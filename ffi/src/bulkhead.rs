//! `surgewall_bulkhead` and `surgewall_keyed_bulkhead`: concurrency limits over the C ABI.

use std::sync::Arc;
use std::time::Duration;

use engine::bulkhead::keyed::{KeyedBulkhead, KeyedRawPermit, KeyedRejected};
use engine::clock::Clock;
use engine::registry::Overflow;
use engine::{Bulkhead, BulkheadConfig, ConfigError};

use crate::breaker::ns;
use crate::builder::{consume, set, Builder};
use crate::clock::surgewall_mock_clock;
use crate::config::duration;
use crate::error::{report, report_config, surgewall_error};
use crate::handle::{opaque_handle, Handle};
use crate::keys::{KeySeed, SURGEWALL_OVERFLOW_KEY};
use crate::status::{boundary, bytes, non_null, write, Status};

/// A bulkhead: at most `max_concurrent` calls in flight. Thread-safe; reference counted with
/// `surgewall_bulkhead_clone` / `surgewall_bulkhead_free`.
pub struct surgewall_bulkhead {
    _private: [u8; 0],
}

opaque_handle!(surgewall_bulkhead => Arc<Bulkhead>, tag 6);

/// A snapshot of a bulkhead.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct surgewall_bulkhead_stats {
    /// Calls in flight now (never above `max_concurrent`).
    pub active: u64,
    /// Callers blocked waiting for a slot now.
    pub waiting: u64,
    /// The limit.
    pub max_concurrent: u64,
    /// Calls admitted, ever.
    pub accepted: u64,
    /// Calls refused without waiting, ever.
    pub rejected: u64,
    /// Calls that waited their whole wait and were refused, ever.
    pub timed_out: u64,
    /// Calls that had to wait, ever.
    pub waited: u64,
    /// Nanoseconds all waiting calls spent waiting.
    pub total_wait_ns: u64,
    /// The longest single wait, in nanoseconds.
    pub max_wait_ns: u64,
    /// Releases that found nothing acquired.
    pub unexpected_releases: u64,
}

fn mock_or_coarse(clock: *const surgewall_mock_clock) -> Result<Clock, Status> {
    if clock.is_null() {
        Ok(Clock::coarse())
    } else {
        Ok(surgewall_mock_clock::get(clock)?.clock.clone())
    }
}

/// Creates a bulkhead named `name` (UTF-8 without NUL: an embedded NUL is
/// `SURGEWALL_INVALID_ARG`) admitting `max_concurrent` calls; blocking acquires wait up
/// to `max_wait_ns` (0: never wait). `clock` may be NULL (the coarse clock) or a mock clock.
/// The bulkhead joins the catalog the agent serves (see `surgewall_breaker_new`).
#[no_mangle]
pub extern "C" fn surgewall_bulkhead_new(
    name: *const u8,
    name_len: usize,
    max_concurrent: u32,
    max_wait_ns: i64,
    clock: *const surgewall_mock_clock,
    out: *mut *mut surgewall_bulkhead,
    err_out: *mut *mut surgewall_error,
) -> Status {
    boundary(|| {
        non_null(out).map_err(|s| report(err_out, s, "out", "out is NULL"))?;
        let name = crate::status::name(name, name_len)
            .map_err(|(s, why)| report(err_out, s, "name", why))?;
        let clock = mock_or_coarse(clock)
            .map_err(|s| report(err_out, s, "clock", "the clock handle is invalid"))?;
        let config = duration("max_wait", max_wait_ns)
            .and_then(|w| {
                BulkheadConfig::builder()
                    .max_concurrent(max_concurrent)
                    .max_wait(w)
                    .build()
            })
            .map_err(|e| report_config(err_out, &e))?;
        let b = Arc::new(Bulkhead::builder(name, config).clock(clock).build());
        engine::catalog::Catalog::global().join_bulkhead(&b);
        write(out, surgewall_bulkhead::insert(b)?)
    })
}

/// A second handle to the same bulkhead.
#[no_mangle]
pub extern "C" fn surgewall_bulkhead_clone(
    b: *const surgewall_bulkhead,
    out: *mut *mut surgewall_bulkhead,
) -> Status {
    surgewall_bulkhead::clone_into(b, out)
}

/// Frees one handle. NULL is a no-op; a second free is `SURGEWALL_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn surgewall_bulkhead_free(b: *mut surgewall_bulkhead) -> Status {
    surgewall_bulkhead::free(b)
}

/// Takes a slot without waiting: `SURGEWALL_OK` or `SURGEWALL_BULKHEAD_FULL`. Lock-free.
/// Every OK must be followed by exactly one `surgewall_bulkhead_release`.
#[no_mangle]
pub extern "C" fn surgewall_bulkhead_try_acquire(b: *const surgewall_bulkhead) -> Status {
    boundary(|| {
        surgewall_bulkhead::get(b)?
            .try_acquire_raw()
            .map_err(|_| Status::SURGEWALL_BULKHEAD_FULL)
    })
}

/// Takes a slot, blocking this thread up to `timeout_ns` (negative: the bulkhead's own
/// `max_wait`) in FIFO order with other waiters. `SURGEWALL_OK`, `SURGEWALL_TIMEOUT` after a
/// wait, `SURGEWALL_BULKHEAD_FULL` when it could not wait, or `SURGEWALL_CLOSED` when
/// `surgewall_bulkhead_close` sent the waiter away (or came before the wait).
#[no_mangle]
pub extern "C" fn surgewall_bulkhead_acquire(
    b: *const surgewall_bulkhead,
    timeout_ns: i64,
) -> Status {
    boundary(|| {
        let b = surgewall_bulkhead::get(b)?;
        let wait = match u64::try_from(timeout_ns) {
            Ok(n) => Duration::from_nanos(n),
            Err(_) => b.config().max_wait(),
        };
        b.acquire_timeout_raw(wait).map_err(|full| {
            if full.closed {
                Status::SURGEWALL_CLOSED
            } else if full.timed_out {
                Status::SURGEWALL_TIMEOUT
            } else {
                Status::SURGEWALL_BULKHEAD_FULL
            }
        })
    })
}

/// Wakes every thread waiting in `surgewall_bulkhead_acquire` on this bulkhead (through any
/// handle); each returns `SURGEWALL_CLOSED`, and so do later waits. `try_acquire` and
/// `release` are unchanged, so slots held can still be given back. It does not free the
/// handle: a binding calls it before `surgewall_bulkhead_free`, and frees once the calls it
/// woke have returned (freeing a handle while another thread is inside a call on it is the
/// caller's bug, see the handle rules).
#[no_mangle]
pub extern "C" fn surgewall_bulkhead_close(b: *const surgewall_bulkhead) -> Status {
    boundary(|| {
        surgewall_bulkhead::get(b)?.close();
        Ok(())
    })
}

/// Changes `max_concurrent` live (1..=16777215; otherwise `SURGEWALL_INVALID_ARG` and nothing
/// changes); the previous limit goes to `*old_out` if not NULL. Growing admits the threads
/// waiting in `surgewall_bulkhead_acquire`, oldest first; shrinking leaves the slots held
/// valid, and new admissions wait until fewer than the new limit are in flight.
#[no_mangle]
pub extern "C" fn surgewall_bulkhead_set_max_concurrent(
    b: *const surgewall_bulkhead,
    max_concurrent: u32,
    old_out: *mut u32,
) -> Status {
    boundary(|| {
        let old = surgewall_bulkhead::get(b)?
            .set_max_concurrent(max_concurrent)
            .map_err(|_| Status::SURGEWALL_INVALID_ARG)?;
        if old_out.is_null() {
            return Ok(());
        }
        write(old_out, old)
    })
}

/// Gives a slot back. `SURGEWALL_UNEXPECTED_RESULT` when nothing was acquired (nothing changes).
#[no_mangle]
pub extern "C" fn surgewall_bulkhead_release(b: *const surgewall_bulkhead) -> Status {
    boundary(|| {
        surgewall_bulkhead::get(b)?
            .release_raw()
            .map_err(|_| Status::SURGEWALL_UNEXPECTED_RESULT)
    })
}

/// Fills `*out` with a snapshot.
#[no_mangle]
pub extern "C" fn surgewall_bulkhead_metrics(
    b: *const surgewall_bulkhead,
    out: *mut surgewall_bulkhead_stats,
) -> Status {
    boundary(|| {
        non_null(out)?;
        let m = surgewall_bulkhead::get(b)?.metrics();
        write(
            out,
            surgewall_bulkhead_stats {
                active: m.active,
                waiting: m.waiting,
                max_concurrent: m.max_concurrent,
                accepted: m.accepted,
                rejected: m.rejected,
                timed_out: m.timed_out,
                waited: m.waited,
                total_wait_ns: ns(m.total_wait),
                max_wait_ns: ns(m.max_wait),
                unexpected_releases: m.unexpected_releases,
            },
        )
    })
}

// ---- keyed (per-user) bulkheads -----------------------------------------------------------

/// A keyed bulkhead under construction (single owner; consumed by
/// `surgewall_keyed_bulkhead_new`).
pub struct surgewall_keyed_bulkhead_config {
    _private: [u8; 0],
}

/// What a keyed-bulkhead config handle holds.
pub struct KeyedConfig {
    per_key_max: u32,
    global_max: Option<u32>,
    limits: Vec<(u64, u32)>,
    max_keys: Option<(usize, bool)>,
    idle_ttl: Option<Duration>,
    clock: Clock,
    seed: KeySeed,
    /// The catalog name (`_set_name`); unnamed keyed bulkheads are not listed.
    name: Option<String>,
}

opaque_handle!(surgewall_keyed_bulkhead_config => Builder<KeyedConfig>, tag 7);

/// Per-key concurrency limits (a tenant, a user) with an optional limit across all keys.
/// Thread-safe; reference counted with `surgewall_keyed_bulkhead_clone` /
/// `surgewall_keyed_bulkhead_free`. Keys are `uint64_t`; string keys go through `_str`
/// functions, which hash them (with a random seed drawn when the configuration was made).
pub struct surgewall_keyed_bulkhead {
    _private: [u8; 0],
}

/// What a keyed-bulkhead handle holds.
pub struct KeyedObj {
    inner: KeyedBulkhead<u64>,
    clock: Clock,
    seed: KeySeed,
}

opaque_handle!(surgewall_keyed_bulkhead => KeyedObj, tag 8);

/// What the agent reads; idle time is measured on the keyed bulkhead's own clock.
impl engine::catalog::KeyedBulkheadView for KeyedObj {
    fn id(&self) -> u64 {
        self.inner.id()
    }
    fn metrics(&self) -> engine::bulkhead::keyed::KeyedBulkheadMetrics {
        self.inner.metrics()
    }
    fn sweep_now(&self) -> usize {
        self.inner.sweep(self.clock.now_ns())
    }
    fn page(&self, busy_only: bool, offset: usize, limit: usize) -> engine::catalog::KeyLoadPage {
        engine::catalog::KeyedBulkheadView::page(&self.inner, busy_only, offset, limit)
    }
    fn key(&self, key: &str) -> Option<(u64, u32)> {
        engine::catalog::KeyedBulkheadView::key(&self.inner, key)
    }
}

/// The slot a keyed acquire took; give it back with `surgewall_keyed_bulkhead_release`,
/// exactly once. A plain value (8 bytes, passed in a register); a zeroed one was never issued.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct surgewall_keyed_permit {
    /// Opaque: the key's cell.
    pub slot: u32,
    /// Opaque: the cell's generation when the permit was issued (never 0). It moves on when
    /// the cell is given to another key, so a release of this permit after its key was
    /// evicted is refused.
    pub generation: u32,
}

/// Why a keyed acquire was refused (written by `surgewall_keyed_bulkhead_try_acquire`).
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum surgewall_keyed_rejection {
    /// The key is at its own limit.
    KeyFull = 1,
    /// All keys together are at the global limit.
    GlobalFull = 2,
    /// The key is new and the key cap is reached (overflow policy: reject).
    TooManyKeys = 3,
}

/// A snapshot of a keyed bulkhead.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct surgewall_keyed_bulkhead_stats {
    /// Calls in flight across keys (counted only when a global limit is set, else 0).
    pub global_active: u64,
    /// The global limit, or 0 for none.
    pub global_max: u32,
    /// The default per-key limit.
    pub per_key_max: u32,
    /// Refusals at a key's limit, ever.
    pub rejected_key: u64,
    /// Refusals at the global limit, ever.
    pub rejected_global: u64,
    /// Releases that found nothing acquired, ever.
    pub unexpected_releases: u64,
    /// Keys held now.
    pub keys: u64,
    /// The key cap (at least 1; 10 000 unless set).
    pub max_keys: u64,
    /// Keys created, ever.
    pub created: u64,
    /// Keys evicted by sweeps, ever.
    pub evicted: u64,
    /// New keys routed to the shared overflow entry, ever.
    pub overflowed: u64,
    /// New keys refused at the cap, ever.
    pub refused_keys: u64,
}

#[track_caller]
fn keyed_set(
    cfg: *mut surgewall_keyed_bulkhead_config,
    f: impl FnOnce(&mut KeyedConfig) -> Result<(), ConfigError>,
) -> Status {
    set(cfg, f)
}

/// Creates a keyed-bulkhead configuration: `per_key_max` calls in flight per key.
#[no_mangle]
pub extern "C" fn surgewall_keyed_bulkhead_config_new(
    per_key_max: u32,
    out: *mut *mut surgewall_keyed_bulkhead_config,
) -> Status {
    boundary(|| {
        non_null(out)?;
        let c = KeyedConfig {
            per_key_max,
            global_max: None,
            limits: Vec::new(),
            max_keys: None,
            idle_ttl: None,
            clock: Clock::coarse(),
            seed: KeySeed::new(),
            name: None,
        };
        write(
            out,
            surgewall_keyed_bulkhead_config::insert(Builder::new(c))?,
        )
    })
}

/// Frees a configuration that was never consumed. NULL is a no-op.
#[no_mangle]
pub extern "C" fn surgewall_keyed_bulkhead_config_free(
    cfg: *mut surgewall_keyed_bulkhead_config,
) -> Status {
    surgewall_keyed_bulkhead_config::free(cfg)
}

/// At most `n` calls in flight across all keys.
#[no_mangle]
pub extern "C" fn surgewall_keyed_bulkhead_config_set_global_max(
    cfg: *mut surgewall_keyed_bulkhead_config,
    n: u32,
) -> Status {
    keyed_set(cfg, |c| {
        c.global_max = Some(n);
        Ok(())
    })
}

/// A per-key override: key `key` gets `n` slots instead of `per_key_max`.
#[no_mangle]
pub extern "C" fn surgewall_keyed_bulkhead_config_set_limit_for(
    cfg: *mut surgewall_keyed_bulkhead_config,
    key: u64,
    n: u32,
) -> Status {
    keyed_set(cfg, |c| {
        c.limits.push((key, n));
        Ok(())
    })
}

/// `surgewall_keyed_bulkhead_config_set_limit_for` for a byte-string key (hashed as the keyed
/// bulkhead made from this configuration hashes it in `_try_acquire_str`).
#[no_mangle]
pub extern "C" fn surgewall_keyed_bulkhead_config_set_limit_for_str(
    cfg: *mut surgewall_keyed_bulkhead_config,
    key: *const u8,
    key_len: usize,
    n: u32,
) -> Status {
    boundary(|| {
        let key = bytes(key, key_len)?;
        surgewall_keyed_bulkhead_config::get(cfg)?.update(|c| {
            c.limits.push((c.seed.key_of(key), n));
            Ok(())
        });
        Ok(())
    })
}

/// Caps the number of keys at `max_keys` (at least 1; default 10 000: there is always a cap);
/// new keys beyond it are refused (`shared_overflow` false) or all share one overflow entry
/// (true). 0 fails `surgewall_keyed_bulkhead_new` with `SURGEWALL_INVALID_CONFIG` naming
/// `max_keys`.
#[no_mangle]
pub extern "C" fn surgewall_keyed_bulkhead_config_set_max_keys(
    cfg: *mut surgewall_keyed_bulkhead_config,
    max_keys: usize,
    shared_overflow: bool,
) -> Status {
    keyed_set(cfg, |c| {
        c.max_keys = Some((crate::keys::key_cap(max_keys)?, shared_overflow));
        Ok(())
    })
}

/// Lists the keyed bulkhead made from `cfg` in the catalog the agent serves, as `name` (see
/// `surgewall_keyed_breaker_config_set_name`).
#[no_mangle]
pub extern "C" fn surgewall_keyed_bulkhead_config_set_name(
    cfg: *mut surgewall_keyed_bulkhead_config,
    name: *const u8,
    name_len: usize,
) -> Status {
    set(cfg, |c: &mut KeyedConfig| {
        c.name = Some(crate::agent::catalog_name(name, name_len)?);
        Ok(())
    })
}

/// Evict keys idle for `ns` (by `surgewall_keyed_bulkhead_sweep`); a key with calls in flight
/// is never evicted.
#[no_mangle]
pub extern "C" fn surgewall_keyed_bulkhead_config_set_idle_ttl(
    cfg: *mut surgewall_keyed_bulkhead_config,
    ns: i64,
) -> Status {
    keyed_set(cfg, |c| {
        c.idle_ttl = Some(duration("idle_ttl", ns)?);
        Ok(())
    })
}

/// Drive sweeps with a mock clock (tests).
#[no_mangle]
pub extern "C" fn surgewall_keyed_bulkhead_config_set_mock_clock(
    cfg: *mut surgewall_keyed_bulkhead_config,
    clock: *const surgewall_mock_clock,
) -> Status {
    boundary(|| {
        let clock = surgewall_mock_clock::get(clock)?.clock.clone();
        surgewall_keyed_bulkhead_config::get(cfg)?.update(|c| {
            c.clock = clock;
            Ok(())
        });
        Ok(())
    })
}

/// Creates a keyed bulkhead from `cfg` (consumed whatever the outcome). Keyed bulkheads
/// publish evictions to the process-wide event ring.
#[no_mangle]
pub extern "C" fn surgewall_keyed_bulkhead_new(
    cfg: *mut surgewall_keyed_bulkhead_config,
    out: *mut *mut surgewall_keyed_bulkhead,
    err_out: *mut *mut surgewall_error,
) -> Status {
    boundary(|| {
        let c = consume(cfg, out, err_out)?;
        // Eviction events carry the caller's own key (string keys: see `_key_of`).
        let mut b = KeyedBulkhead::<u64>::builder(c.per_key_max)
            .events(engine::breaker::default_events())
            .event_key(|k| *k);
        if let Some(g) = c.global_max {
            b = b.global_max(g);
        }
        for (k, n) in c.limits {
            b = b.limit_for(k, n);
        }
        if let Some((n, shared)) = c.max_keys {
            b = b.max_keys(n).overflow(if shared {
                Overflow::Shared(SURGEWALL_OVERFLOW_KEY)
            } else {
                Overflow::Reject
            });
        }
        if let Some(t) = c.idle_ttl {
            b = b.idle_ttl(t);
        }
        let kb = b.build().map_err(|e| report_config(err_out, &e))?;
        let obj = Arc::new(KeyedObj {
            inner: kb,
            clock: c.clock,
            seed: c.seed,
        });
        if let Some(name) = &c.name {
            let view: Arc<dyn engine::catalog::KeyedBulkheadView> = obj.clone();
            engine::catalog::Catalog::global().join_keyed_bulkhead(name, &view);
        }
        write(out, surgewall_keyed_bulkhead::insert_arc(obj)?)
    })
}

/// A second handle to the same keyed bulkhead.
#[no_mangle]
pub extern "C" fn surgewall_keyed_bulkhead_clone(
    kb: *const surgewall_keyed_bulkhead,
    out: *mut *mut surgewall_keyed_bulkhead,
) -> Status {
    surgewall_keyed_bulkhead::clone_into(kb, out)
}

/// Frees one handle (the keyed bulkhead lives while other handles do). NULL is a no-op.
#[no_mangle]
pub extern "C" fn surgewall_keyed_bulkhead_free(kb: *mut surgewall_keyed_bulkhead) -> Status {
    surgewall_keyed_bulkhead::free(kb)
}

fn keyed_acquire(
    kb: *const surgewall_keyed_bulkhead,
    key: impl FnOnce(&KeyedObj) -> Result<u64, Status>,
    permit_out: *mut surgewall_keyed_permit,
    rejection_out: *mut surgewall_keyed_rejection,
) -> Status {
    boundary(|| {
        non_null(permit_out)?;
        let obj = surgewall_keyed_bulkhead::get(kb)?;
        let key = key(obj)?;
        match obj.inner.try_acquire_raw(&key) {
            Ok(p) => write(
                permit_out,
                surgewall_keyed_permit {
                    slot: p.slot,
                    generation: p.generation,
                },
            ),
            Err(r) => {
                let (why, status) = match r {
                    KeyedRejected::KeyFull { .. } => (
                        surgewall_keyed_rejection::KeyFull,
                        Status::SURGEWALL_BULKHEAD_FULL,
                    ),
                    KeyedRejected::GlobalFull { .. } => (
                        surgewall_keyed_rejection::GlobalFull,
                        Status::SURGEWALL_BULKHEAD_FULL,
                    ),
                    KeyedRejected::TooManyKeys(_) => (
                        surgewall_keyed_rejection::TooManyKeys,
                        Status::SURGEWALL_REGISTRY_FULL,
                    ),
                };
                if !rejection_out.is_null() {
                    write(rejection_out, why)?;
                }
                Err(status)
            }
        }
    })
}

/// Takes a slot for `key` without waiting: `SURGEWALL_OK` (writes `*permit_out`),
/// `SURGEWALL_BULKHEAD_FULL` or `SURGEWALL_REGISTRY_FULL` (writes `*rejection_out` if not NULL).
#[no_mangle]
pub extern "C" fn surgewall_keyed_bulkhead_try_acquire(
    kb: *const surgewall_keyed_bulkhead,
    key: u64,
    permit_out: *mut surgewall_keyed_permit,
    rejection_out: *mut surgewall_keyed_rejection,
) -> Status {
    keyed_acquire(kb, |_| Ok(key), permit_out, rejection_out)
}

/// `surgewall_keyed_bulkhead_try_acquire` for a byte-string key (any bytes, UTF-8 or not; hashed to 64 bits).
#[no_mangle]
pub extern "C" fn surgewall_keyed_bulkhead_try_acquire_str(
    kb: *const surgewall_keyed_bulkhead,
    key: *const u8,
    key_len: usize,
    permit_out: *mut surgewall_keyed_permit,
    rejection_out: *mut surgewall_keyed_rejection,
) -> Status {
    keyed_acquire(
        kb,
        |obj| Ok(obj.seed.key_of(bytes(key, key_len)?)),
        permit_out,
        rejection_out,
    )
}

/// The 64-bit key a byte-string key maps to in this keyed bulkhead (for `_active`, events).
#[no_mangle]
pub extern "C" fn surgewall_keyed_bulkhead_key_of(
    kb: *const surgewall_keyed_bulkhead,
    key: *const u8,
    key_len: usize,
    out: *mut u64,
) -> Status {
    boundary(|| {
        non_null(out)?;
        let obj = surgewall_keyed_bulkhead::get(kb)?;
        write(out, obj.seed.key_of(bytes(key, key_len)?))
    })
}

/// Gives a keyed slot back. `SURGEWALL_UNEXPECTED_RESULT` (counted in
/// `unexpected_releases`; nothing changes) for a permit released twice, one whose key was
/// evicted since (its cell now serves another key, whose calls are never taken off), or one
/// this keyed bulkhead never issued (zeroed, forged). Limit: permits are counted per key, not
/// named, so a second release of a permit while other permits of the same key are out takes
/// one of theirs off (as with `surgewall_bulkhead_release`); and the generation is 24 bits, so
/// a permit kept through 16,777,215 reuses of its cell (each an eviction by a sweep) would
/// match again.
#[no_mangle]
pub extern "C" fn surgewall_keyed_bulkhead_release(
    kb: *const surgewall_keyed_bulkhead,
    permit: surgewall_keyed_permit,
) -> Status {
    boundary(|| {
        surgewall_keyed_bulkhead::get(kb)?
            .inner
            .release_raw(KeyedRawPermit {
                slot: permit.slot,
                generation: permit.generation,
            })
            .map_err(|_| Status::SURGEWALL_UNEXPECTED_RESULT)
    })
}

/// Calls in flight for `key` (0 for a key the bulkhead does not hold).
#[no_mangle]
pub extern "C" fn surgewall_keyed_bulkhead_active(
    kb: *const surgewall_keyed_bulkhead,
    key: u64,
    out: *mut u64,
) -> Status {
    boundary(|| {
        non_null(out)?;
        let obj = surgewall_keyed_bulkhead::get(kb)?;
        write(out, obj.inner.active(&key).unwrap_or(0))
    })
}

/// Evicts keys idle for longer than the configured `idle_ttl`; `*evicted_out` (if not NULL)
/// receives how many. Run it periodically (the agent does).
#[no_mangle]
pub extern "C" fn surgewall_keyed_bulkhead_sweep(
    kb: *const surgewall_keyed_bulkhead,
    evicted_out: *mut u64,
) -> Status {
    boundary(|| {
        let obj = surgewall_keyed_bulkhead::get(kb)?;
        let n = obj.inner.sweep(obj.clock.now_ns()) as u64;
        if !evicted_out.is_null() {
            write(evicted_out, n)?;
        }
        Ok(())
    })
}

/// Calls `f(user, key, active, limit)` for every key held (do not call back into this keyed
/// bulkhead from `f`).
#[no_mangle]
pub extern "C" fn surgewall_keyed_bulkhead_for_each(
    kb: *const surgewall_keyed_bulkhead,
    f: Option<extern "C" fn(user: *mut std::ffi::c_void, key: u64, active: u64, limit: u32)>,
    user: *mut std::ffi::c_void,
) -> Status {
    boundary(|| {
        let f = f.ok_or(Status::SURGEWALL_NULL_ARG)?;
        let obj = surgewall_keyed_bulkhead::get(kb)?;
        obj.inner
            .for_each(|k, active, limit| f(user, *k, active, limit));
        Ok(())
    })
}

/// Fills `*out` with a snapshot.
#[no_mangle]
pub extern "C" fn surgewall_keyed_bulkhead_metrics(
    kb: *const surgewall_keyed_bulkhead,
    out: *mut surgewall_keyed_bulkhead_stats,
) -> Status {
    boundary(|| {
        non_null(out)?;
        let m = surgewall_keyed_bulkhead::get(kb)?.inner.metrics();
        write(
            out,
            surgewall_keyed_bulkhead_stats {
                global_active: m.global_active.unwrap_or(0),
                global_max: m.global_max.unwrap_or(0),
                per_key_max: m.per_key_max,
                rejected_key: m.rejected_key,
                rejected_global: m.rejected_global,
                unexpected_releases: m.unexpected_releases,
                keys: m.registry.keys as u64,
                max_keys: m.registry.max_keys as u64,
                created: m.registry.created,
                evicted: m.registry.evicted,
                overflowed: m.registry.overflowed,
                refused_keys: m.registry.rejected,
            },
        )
    })
}

/// The keyed bulkhead's process-unique id: the `source` of its eviction events.
#[no_mangle]
pub extern "C" fn surgewall_keyed_bulkhead_id(
    kb: *const surgewall_keyed_bulkhead,
    id_out: *mut u64,
) -> Status {
    boundary(|| {
        non_null(id_out)?;
        write(id_out, surgewall_keyed_bulkhead::get(kb)?.inner.id())
    })
}
