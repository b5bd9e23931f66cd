//! `surgewall_keyed_breaker`: circuit breakers by key (per endpoint, per host, per user) over
//! the C ABI, each key a few dozen bytes of state in one registry.
//!
//! Built from a template `surgewall_breaker_config` plus per-key overrides, capped with an
//! overflow policy, and swept for idle keys: the core's `KeyedBreaker<u64>`. String keys are
//! hashed to 64 bits (see `keys.rs`). The guarded call is `surgewall_keyed_breaker_acquire`
//! then `surgewall_keyed_breaker_record`, with the permit as a plain value in between.

use std::panic::Location;
use std::time::Duration;

use engine::breaker::keyed::{
    KeySnapshot, KeyedBreaker, KeyedRawPermit, KeyedRejected, MAX_KEYED_HALF_OPEN_CALLS,
};
use engine::catalog::{KeyPage, KeyedBreakerView};
use engine::clock::Clock;
use engine::registry::Overflow;
use engine::{BreakerConfig, ConfigError, Fallback, Outcome};

use crate::breaker::{
    ns, outcome, recorded, reject_status, salt_for, seal, surgewall_state, surgewall_window_counts,
    unsalt,
};
use crate::builder::{consume, set, Builder};
use crate::config::{duration, surgewall_breaker_config, ConfigState};
use crate::error::{report_config, surgewall_error};
use crate::handle::{opaque_handle, Handle};
use crate::keys::{KeySeed, SURGEWALL_OVERFLOW_KEY};
use crate::status::{boundary, bytes, non_null, write, Status};

/// A keyed breaker under construction (single owner; consumed by
/// `surgewall_keyed_breaker_new`).
pub struct surgewall_keyed_breaker_config {
    _private: [u8; 0],
}

/// What a keyed-breaker config handle holds.
pub struct KeyedBreakerConfig {
    template: BreakerConfig,
    clock: Clock,
    fallback: Option<Fallback>,
    overrides: Vec<(u64, BreakerConfig)>,
    max_keys: Option<(usize, bool)>,
    idle_ttl: Option<Duration>,
    seed: KeySeed,
    /// The catalog name (`_set_name`); unnamed keyed breakers are not listed.
    name: Option<String>,
}

opaque_handle!(surgewall_keyed_breaker_config => Builder<KeyedBreakerConfig>, tag 16);

/// Circuit breakers by key, from one template. Thread-safe: every function taking
/// `const surgewall_keyed_breaker *` may be called from any thread. Reference counted with
/// `surgewall_keyed_breaker_clone` / `surgewall_keyed_breaker_free`.
pub struct surgewall_keyed_breaker {
    _private: [u8; 0],
}

/// What a keyed-breaker handle holds.
pub struct KeyedBreakerObj {
    inner: KeyedBreaker<u64>,
    fallback: Option<Fallback>,
    seed: KeySeed,
    /// The keyed breaker's salt (as a named breaker's); a permit's token is
    /// `generation ^ slot_salt(salt, slot)`.
    salt: u64,
}

/// The salt of the permits of the key in `slot`: the keyed breaker's salt with the slot mixed
/// into its 24 bits, `salt ^ (slot * odd mod 2^24) << 40`. Multiplying by an odd number is a
/// bijection modulo 2^24, so two slots less than 2^24 apart never share a salt: a permit
/// presented with another key's slot fails the token check (`SURGEWALL_INVALID_PERMIT`)
/// instead of being counted on that key (unless the two salts differ by what reads as a
/// checked probe number of at most 14: a chance of 14 in 2^24). (For the one slot whose mix equals the salt the
/// token is the bare generation; a zeroed permit still fails there, since no key's permit
/// carries generation 0.)
#[inline]
fn slot_salt(salt: u64, slot: u32) -> u64 {
    salt ^ (u64::from(slot).wrapping_mul(0x9E37_79B1) & 0xFF_FFFF) << 40
}

opaque_handle!(surgewall_keyed_breaker => KeyedBreakerObj, tag 17);

/// What the agent reads: the keyed breaker itself (its `u64` keys as text).
impl KeyedBreakerView for KeyedBreakerObj {
    fn id(&self) -> u64 {
        self.inner.id()
    }
    fn metrics(&self) -> engine::breaker::keyed::KeyedBreakerMetrics {
        self.inner.metrics()
    }
    fn sweep_now(&self) -> usize {
        KeyedBreakerView::sweep_now(&self.inner)
    }
    fn page_where(
        &self,
        keep: &dyn Fn(engine::State) -> bool,
        offset: usize,
        limit: usize,
    ) -> KeyPage {
        self.inner.page_where(keep, offset, limit)
    }
    fn key(&self, key: &str) -> Option<KeySnapshot> {
        KeyedBreakerView::key(&self.inner, key)
    }
    fn reset_key(&self, key: &str) -> bool {
        self.inner.reset_key(key)
    }
    fn key_of_event(&self, event_key: u64, scan_limit: usize) -> Option<String> {
        self.inner.key_of_event(event_key, scan_limit)
    }
}

/// A keyed breaker's permit: what `surgewall_keyed_breaker_acquire` hands out and
/// `surgewall_keyed_breaker_record` takes back, exactly once. A plain value. It stays safe to
/// record after its key was evicted (the result is then late).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct surgewall_keyed_breaker_permit {
    /// `generation ^ salt`, as in `surgewall_permit` (a half-open probe's number included),
    /// with a salt of the key's slot: a zeroed or forged permit, another keyed breaker's, or
    /// one presented with another key's slot is refused (`SURGEWALL_INVALID_PERMIT`; slots
    /// less than 2^24 apart never share a salt). In HALF_OPEN a probe recorded twice is
    /// `SURGEWALL_UNEXPECTED_RESULT`, whatever the key's other probes do.
    pub token: u64,
    /// When the call started (clock ns), or 0 when the key's configuration does not time calls.
    pub start_ns: u64,
    /// The key's slot (opaque).
    pub slot: u32,
}

/// One key's breaker, as `surgewall_keyed_breaker_get` and `_for_each` see it.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct surgewall_keyed_breaker_key_stats {
    /// The key's state.
    pub state: surgewall_state,
    /// The key's generation (bumped by every transition).
    pub generation: u64,
    /// The episode's window: the sliding window in CLOSED and METRICS_ONLY, the probes that
    /// reported in HALF_OPEN, zero otherwise; rates NaN when absent (as a breaker's).
    pub window: surgewall_window_counts,
    /// `minimum_calls` of the key's configuration.
    pub minimum_calls: u64,
    /// Consecutive failures (CLOSED).
    pub consecutive_failures: u64,
    /// Openings since the key last closed.
    pub consecutive_opens: u64,
    /// Nanoseconds left of an OPEN or timed FORCED_OPEN wait (UINT64_MAX: without deadline), 0
    /// in every other state, HALF_OPEN included.
    pub retry_after_ns: u64,
}

impl From<&KeySnapshot> for surgewall_keyed_breaker_key_stats {
    fn from(s: &KeySnapshot) -> Self {
        surgewall_keyed_breaker_key_stats {
            state: s.state.into(),
            generation: s.generation,
            window: surgewall_window_counts::new(s.window, s.failure_rate(), s.slow_call_rate()),
            minimum_calls: s.minimum_calls,
            consecutive_failures: s.consecutive_failures,
            consecutive_opens: s.consecutive_opens,
            retry_after_ns: s.retry_after.map_or(0, ns),
        }
    }
}

/// Counters of a keyed breaker, over all its keys.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct surgewall_keyed_breaker_stats {
    /// `transitions[from][to]` over all keys, indexed by `surgewall_state`.
    pub transitions: [[u64; 6]; 6],
    /// Calls rejected by OPEN or FORCED_OPEN keys, ever.
    pub rejected_open: u64,
    /// Calls rejected by HALF_OPEN keys whose probes were all out, ever.
    pub rejected_half_open: u64,
    /// Permits released as ignored, ever.
    pub ignored: u64,
    /// Results dropped because their key moved on (or was evicted), ever.
    pub late_results: u64,
    /// Results no permit could explain, ever.
    pub unexpected_results: u64,
    /// Failures recorded, ever.
    pub failures: u64,
    /// Keys held now.
    pub keys: u64,
    /// The key cap.
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

/// A breaker configuration taken from its handle, with the clock and fallback set on it.
struct Taken {
    config: BreakerConfig,
    clock: Option<Clock>,
    fallback: Option<Fallback>,
}

/// Consumes a `surgewall_breaker_config` handle: its configuration, or the first value it
/// rejected.
fn take_breaker_config(
    cfg: *mut surgewall_breaker_config,
) -> Result<Result<Taken, ConfigError>, Status> {
    let builder = surgewall_breaker_config::take(cfg)?;
    Ok(builder.finish().and_then(|s: ConfigState| {
        Ok(Taken {
            config: s.builder.build()?,
            clock: s.clock,
            fallback: s.fallback,
        })
    }))
}

/// Creates a keyed-breaker configuration whose keys are breakers of `template_cfg` (consumed
/// whatever the outcome; its clock and fallback are the keyed breaker's). The template is
/// checked against the keyed layout by `surgewall_keyed_breaker_new`, which names the field:
/// at most 128 `minimum_calls`, 510 calls of count window, 255 `consecutive_failures`, 14
/// `half_open_calls` (a key's cell keeps a bit per probe number, so that a probe recorded twice
/// is `SURGEWALL_UNEXPECTED_RESULT`). A key's time window is two buckets told apart by their
/// number modulo 128 (64 windows) and by the idle mark sweeps leave (the agent's, or
/// `surgewall_keyed_breaker_sweep` with times on the breaker's clock), which empties a window
/// two buckets old: a swept key's old counts never come back after a silence. A key never
/// swept that records nothing for a multiple of 64 windows, give or take a bucket, sees its
/// old counts again.
#[no_mangle]
pub extern "C" fn surgewall_keyed_breaker_config_new(
    template_cfg: *mut surgewall_breaker_config,
    out: *mut *mut surgewall_keyed_breaker_config,
) -> Status {
    boundary(|| {
        let taken = take_breaker_config(template_cfg)?;
        non_null(out)?;
        let (template, clock, fallback, bad) = match taken {
            Ok(t) => (t.config, t.clock, t.fallback, None),
            Err(e) => (BreakerConfig::default(), None, None, Some(e)),
        };
        let builder = Builder::new(KeyedBreakerConfig {
            template,
            clock: clock.unwrap_or_else(Clock::coarse),
            fallback,
            overrides: Vec::new(),
            max_keys: None,
            idle_ttl: None,
            seed: KeySeed::new(),
            name: None,
        });
        if let Some(e) = bad {
            builder.update(|_| Err(e));
        }
        write(out, surgewall_keyed_breaker_config::insert(builder)?)
    })
}

/// Frees a configuration that was never consumed. NULL is a no-op.
#[no_mangle]
pub extern "C" fn surgewall_keyed_breaker_config_free(
    cfg: *mut surgewall_keyed_breaker_config,
) -> Status {
    surgewall_keyed_breaker_config::free(cfg)
}

/// Adds the override `config` (consumed whatever the outcome, so taken first) for the key
/// `key` gives to `cfg`.
fn add_override(
    cfg: *mut surgewall_keyed_breaker_config,
    key: impl FnOnce(&KeySeed) -> Result<u64, Status>,
    config: *mut surgewall_breaker_config,
) -> Result<(), Status> {
    let taken = take_breaker_config(config)?;
    let builder = surgewall_keyed_breaker_config::get(cfg)?;
    let key = builder.read(|c| key(&c.seed))?;
    // One setter per key (the same for `_set_override` and `_set_override_str`: this call
    // site): the last override of a key replaces the earlier ones, a rejected one included
    // (it no longer fails the constructor).
    builder.update_as((Location::caller(), key), |c| {
        // The key's earlier override, if any, is replaced.
        c.overrides.retain(|(k, _)| *k != key);
        let Taken {
            config,
            clock,
            fallback,
        } = taken.map_err(|e| e.within(format!("the override for key {key}")))?;
        if clock.is_some() {
            return Err(ConfigError::new(
                "clock",
                format!("the override for key {key} sets a clock; a keyed breaker has one, the template's"),
            ));
        }
        if fallback.is_some() {
            return Err(ConfigError::new(
                "fallback",
                format!("the override for key {key} sets a fallback; a keyed breaker has one, the template's"),
            ));
        }
        c.overrides.push((key, config));
        Ok(())
    });
    Ok(())
}

/// Key `key` uses the breaker configuration `override_cfg` (consumed whatever the outcome)
/// instead of the template; the last override of a key wins. An override cannot set a clock
/// or a fallback (the keyed breaker has the template's); bad values are reported by
/// `surgewall_keyed_breaker_new`, naming the field.
#[no_mangle]
pub extern "C" fn surgewall_keyed_breaker_config_set_override(
    cfg: *mut surgewall_keyed_breaker_config,
    key: u64,
    override_cfg: *mut surgewall_breaker_config,
) -> Status {
    boundary(|| add_override(cfg, |_| Ok(key), override_cfg))
}

/// `surgewall_keyed_breaker_config_set_override` for a byte-string key (hashed as the keyed
/// breaker made from this configuration hashes it in `_acquire_str`).
#[no_mangle]
pub extern "C" fn surgewall_keyed_breaker_config_set_override_str(
    cfg: *mut surgewall_keyed_breaker_config,
    key: *const u8,
    key_len: usize,
    override_cfg: *mut surgewall_breaker_config,
) -> Status {
    boundary(|| {
        add_override(
            cfg,
            |seed| Ok(seed.key_of(bytes(key, key_len)?)),
            override_cfg,
        )
    })
}

/// Caps the number of keys at `max_keys` (at least 1: 0 fails `surgewall_keyed_breaker_new`
/// with `SURGEWALL_INVALID_CONFIG` naming `max_keys`; default 10 000); new keys beyond it are refused
/// (`shared_overflow` false: `SURGEWALL_REGISTRY_FULL`) or all share one overflow breaker
/// (true), which lives under `SURGEWALL_OVERFLOW_KEY`.
#[no_mangle]
pub extern "C" fn surgewall_keyed_breaker_config_set_max_keys(
    cfg: *mut surgewall_keyed_breaker_config,
    max_keys: usize,
    shared_overflow: bool,
) -> Status {
    set(cfg, |c: &mut KeyedBreakerConfig| {
        c.max_keys = Some((crate::keys::key_cap(max_keys)?, shared_overflow));
        Ok(())
    })
}

/// Evict CLOSED keys idle for `ns` (default 10 minutes) when `surgewall_keyed_breaker_sweep`
/// runs; OPEN, HALF_OPEN and manually set keys are never evicted. Idle time is kept in
/// milliseconds, and in whole seconds (never early) once a key has been idle for 12 days, so
/// a key idle for months goes at its TTL, provided sweeps run at least every 37 days.
#[no_mangle]
pub extern "C" fn surgewall_keyed_breaker_config_set_idle_ttl(
    cfg: *mut surgewall_keyed_breaker_config,
    ns: i64,
) -> Status {
    set(cfg, |c: &mut KeyedBreakerConfig| {
        c.idle_ttl = Some(duration("idle_ttl", ns)?);
        Ok(())
    })
}

/// Lists the keyed breaker made from `cfg` in the catalog the agent serves, as `name` (UTF-8
/// without NUL; `name~2`... while another live keyed breaker has it). Its keys show as the
/// 64-bit keys the library holds (string keys as their hash). A bad name fails the constructor
/// with an error naming `name`.
#[no_mangle]
pub extern "C" fn surgewall_keyed_breaker_config_set_name(
    cfg: *mut surgewall_keyed_breaker_config,
    name: *const u8,
    name_len: usize,
) -> Status {
    set(cfg, |c: &mut KeyedBreakerConfig| {
        c.name = Some(crate::agent::catalog_name(name, name_len)?);
        Ok(())
    })
}

/// Creates a keyed breaker from `cfg` (consumed whatever the outcome). On
/// `SURGEWALL_INVALID_CONFIG`, `*err_out` (if not NULL) names the field. Transitions (as
/// `SURGEWALL_EVENT_KIND_KEYED_TRANSITION`, with the key) and evictions go to the
/// process-wide event ring, under `surgewall_keyed_breaker_id`.
#[no_mangle]
pub extern "C" fn surgewall_keyed_breaker_new(
    cfg: *mut surgewall_keyed_breaker_config,
    out: *mut *mut surgewall_keyed_breaker,
    err_out: *mut *mut surgewall_error,
) -> Status {
    boundary(|| {
        let c = consume(cfg, out, err_out)?;
        let mut b = KeyedBreaker::<u64>::builder(c.template)
            .clock(c.clock)
            .events(engine::breaker::default_events())
            .event_key(|k| *k);
        for (key, config) in c.overrides {
            b = b.override_key(key, config);
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
        let inner = b.build().map_err(|e| report_config(err_out, &e))?;
        let salt = salt_for(inner.id());
        let obj = std::sync::Arc::new(KeyedBreakerObj {
            inner,
            fallback: c.fallback,
            seed: c.seed,
            salt,
        });
        if let Some(name) = &c.name {
            let view: std::sync::Arc<dyn KeyedBreakerView> = obj.clone();
            engine::catalog::Catalog::global().join_keyed_breaker(name, &view);
        }
        write(out, surgewall_keyed_breaker::insert_arc(obj)?)
    })
}

/// A second handle to the same keyed breaker.
#[no_mangle]
pub extern "C" fn surgewall_keyed_breaker_clone(
    kb: *const surgewall_keyed_breaker,
    out: *mut *mut surgewall_keyed_breaker,
) -> Status {
    surgewall_keyed_breaker::clone_into(kb, out)
}

/// Frees one handle (the keyed breaker lives while other handles do). NULL is a no-op; a
/// second free is `SURGEWALL_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn surgewall_keyed_breaker_free(kb: *mut surgewall_keyed_breaker) -> Status {
    surgewall_keyed_breaker::free(kb)
}

fn acquire(
    kb: *const surgewall_keyed_breaker,
    key: impl FnOnce(&KeyedBreakerObj) -> Result<u64, Status>,
    permit_out: *mut surgewall_keyed_breaker_permit,
    retry_after_ns_out: *mut u64,
) -> Status {
    boundary(|| {
        non_null(permit_out)?;
        let obj = surgewall_keyed_breaker::get(kb)?;
        let key = key(obj)?;
        match obj.inner.try_acquire_raw(&key) {
            Ok(p) => write(
                permit_out,
                surgewall_keyed_breaker_permit {
                    token: seal(p.inner.generation) ^ slot_salt(obj.salt, p.slot),
                    start_ns: p.inner.start_ns,
                    slot: p.slot,
                },
            ),
            Err(KeyedRejected::Rejected(r)) => {
                if !retry_after_ns_out.is_null() {
                    write(retry_after_ns_out, ns(r.retry_after))?;
                }
                Err(reject_status(r.reason))
            }
            Err(KeyedRejected::TooManyKeys(_)) => Err(Status::SURGEWALL_REGISTRY_FULL),
        }
    })
}

/// Asks `key`'s breaker (created from the template or its override if the key is new) for a
/// permit. `SURGEWALL_OK` writes `*permit_out`; a `SURGEWALL_REJECTED_*` status writes
/// `*retry_after_ns_out` (if not NULL: nanoseconds until the key may admit, UINT64_MAX for an
/// indefinite forced open, a short hint when half-open is full, as
/// `surgewall_breaker_acquire`); `SURGEWALL_REGISTRY_FULL`: the key is new and the key cap refuses
/// it. Every OK must be followed by exactly one `surgewall_keyed_breaker_record` (or
/// `_release`).
#[no_mangle]
pub extern "C" fn surgewall_keyed_breaker_acquire(
    kb: *const surgewall_keyed_breaker,
    key: u64,
    permit_out: *mut surgewall_keyed_breaker_permit,
    retry_after_ns_out: *mut u64,
) -> Status {
    acquire(kb, |_| Ok(key), permit_out, retry_after_ns_out)
}

/// `surgewall_keyed_breaker_acquire` for a byte-string key (any bytes, UTF-8 or not; hashed to 64 bits; see
/// `surgewall_keyed_breaker_key_of`).
#[no_mangle]
pub extern "C" fn surgewall_keyed_breaker_acquire_str(
    kb: *const surgewall_keyed_breaker,
    key: *const u8,
    key_len: usize,
    permit_out: *mut surgewall_keyed_breaker_permit,
    retry_after_ns_out: *mut u64,
) -> Status {
    acquire(
        kb,
        |obj| Ok(obj.seed.key_of(bytes(key, key_len)?)),
        permit_out,
        retry_after_ns_out,
    )
}

/// The 64-bit key a byte-string key maps to in this keyed breaker (for `_get`, the manual
/// transitions, and the `key` of its events).
#[no_mangle]
pub extern "C" fn surgewall_keyed_breaker_key_of(
    kb: *const surgewall_keyed_breaker,
    key: *const u8,
    key_len: usize,
    out: *mut u64,
) -> Status {
    boundary(|| {
        non_null(out)?;
        let obj = surgewall_keyed_breaker::get(kb)?;
        write(out, obj.seed.key_of(bytes(key, key_len)?))
    })
}

/// The engine's permit behind `p`, if this keyed breaker issued it.
fn raw(obj: &KeyedBreakerObj, p: surgewall_keyed_breaker_permit) -> Result<KeyedRawPermit, Status> {
    Ok(KeyedRawPermit {
        slot: p.slot,
        inner: unsalt(slot_salt(obj.salt, p.slot), p.token, p.start_ns, || {
            MAX_KEYED_HALF_OPEN_CALLS
        })?,
    })
}

/// Records how the call made under `permit` ended (`outcome` is a `surgewall_outcome`); the
/// key's breaker times it when its configuration times calls. `SURGEWALL_LATE_RESULT`: the
/// key moved on (or was evicted) and the result was dropped; `SURGEWALL_INVALID_PERMIT`: not a
/// permit of this keyed breaker.
#[no_mangle]
pub extern "C" fn surgewall_keyed_breaker_record(
    kb: *const surgewall_keyed_breaker,
    permit: surgewall_keyed_breaker_permit,
    outcome: i32,
) -> Status {
    boundary(|| {
        let obj = surgewall_keyed_breaker::get(kb)?;
        let o = self::outcome(outcome)?;
        recorded(obj.inner.record_raw(raw(obj, permit)?, o))
    })
}

/// Records the outcome of a call that took `duration_ns` (negative is `SURGEWALL_INVALID_ARG`).
#[no_mangle]
pub extern "C" fn surgewall_keyed_breaker_record_timed(
    kb: *const surgewall_keyed_breaker,
    permit: surgewall_keyed_breaker_permit,
    outcome: i32,
    duration_ns: i64,
) -> Status {
    boundary(|| {
        let obj = surgewall_keyed_breaker::get(kb)?;
        let o = self::outcome(outcome)?;
        let d = u64::try_from(duration_ns).map_err(|_| Status::SURGEWALL_INVALID_ARG)?;
        recorded(
            obj.inner
                .record_raw_with_duration(raw(obj, permit)?, o, Duration::from_nanos(d)),
        )
    })
}

/// Releases a permit whose call was never made (counts nowhere; a probe slot comes back).
#[no_mangle]
pub extern "C" fn surgewall_keyed_breaker_release(
    kb: *const surgewall_keyed_breaker,
    permit: surgewall_keyed_breaker_permit,
) -> Status {
    boundary(|| {
        let obj = surgewall_keyed_breaker::get(kb)?;
        recorded(obj.inner.record_raw(raw(obj, permit)?, Outcome::Ignored))
    })
}

/// Fills `*out` with `key`'s breaker; `SURGEWALL_NOT_FOUND` when the keyed breaker does not
/// hold the key (never used, or evicted). Reads only: never creates the key.
#[no_mangle]
pub extern "C" fn surgewall_keyed_breaker_get(
    kb: *const surgewall_keyed_breaker,
    key: u64,
    out: *mut surgewall_keyed_breaker_key_stats,
) -> Status {
    boundary(|| {
        non_null(out)?;
        let snapshot = surgewall_keyed_breaker::get(kb)?
            .inner
            .get(&key)
            .ok_or(Status::SURGEWALL_NOT_FOUND)?;
        write(out, (&snapshot).into())
    })
}

/// A manual transition on `key` (created if new; `SURGEWALL_REGISTRY_FULL` beyond the cap).
fn manual(
    kb: *const surgewall_keyed_breaker,
    key: u64,
    f: impl FnOnce(
        &KeyedBreaker<u64>,
        &u64,
    ) -> Result<Result<(), Status>, engine::registry::RegistryFull>,
) -> Status {
    boundary(|| {
        let obj = surgewall_keyed_breaker::get(kb)?;
        f(&obj.inner, &key).map_err(|_| Status::SURGEWALL_REGISTRY_FULL)?
    })
}

/// Opens `key` by hand for `duration_ns` (then it probes), or until another manual transition
/// when `duration_ns` is negative or longer than 2^47 µs (about 4.46 years). A FORCED_OPEN key is never evicted.
#[no_mangle]
pub extern "C" fn surgewall_keyed_breaker_force_open(
    kb: *const surgewall_keyed_breaker,
    key: u64,
    duration_ns: i64,
) -> Status {
    let d = u64::try_from(duration_ns).ok().map(Duration::from_nanos);
    manual(kb, key, |b, k| b.force_open(k, d).map(Ok))
}

/// Opens `key` by hand as a trip would (created if new), unlike
/// `surgewall_keyed_breaker_force_open`: the open wait applies with the key's backoff of
/// consecutive opens, then the next caller starts probing. A no-op when it is OPEN.
#[no_mangle]
pub extern "C" fn surgewall_keyed_breaker_open(
    kb: *const surgewall_keyed_breaker,
    key: u64,
) -> Status {
    manual(kb, key, |b, k| b.open(k).map(Ok))
}

/// Every call on `key` passes, nothing is recorded (the key is not evicted).
#[no_mangle]
pub extern "C" fn surgewall_keyed_breaker_disable(
    kb: *const surgewall_keyed_breaker,
    key: u64,
) -> Status {
    manual(kb, key, |b, k| b.disable(k).map(Ok))
}

/// Every call on `key` passes and is recorded; it never trips (and is not evicted).
#[no_mangle]
pub extern "C" fn surgewall_keyed_breaker_metrics_only(
    kb: *const surgewall_keyed_breaker,
    key: u64,
) -> Status {
    manual(kb, key, |b, k| b.metrics_only(k).map(Ok))
}

/// Closes `key` with a fresh window (a no-op when it is CLOSED).
#[no_mangle]
pub extern "C" fn surgewall_keyed_breaker_close(
    kb: *const surgewall_keyed_breaker,
    key: u64,
) -> Status {
    manual(kb, key, |b, k| b.close(k).map(Ok))
}

/// Starts probing `key` now, from OPEN or FORCED_OPEN; `SURGEWALL_INVALID_TRANSITION` from
/// CLOSED.
#[no_mangle]
pub extern "C" fn surgewall_keyed_breaker_half_open(
    kb: *const surgewall_keyed_breaker,
    key: u64,
) -> Status {
    manual(kb, key, |b, k| {
        b.half_open(k)
            .map(|r| r.map_err(|_| Status::SURGEWALL_INVALID_TRANSITION))
    })
}

/// A fresh CLOSED episode for `key` from any state.
#[no_mangle]
pub extern "C" fn surgewall_keyed_breaker_reset(
    kb: *const surgewall_keyed_breaker,
    key: u64,
) -> Status {
    manual(kb, key, |b, k| b.reset(k).map(Ok))
}

/// Evicts the CLOSED keys idle for longer than the configured `idle_ttl` (never an OPEN,
/// HALF_OPEN or manually set one); `*evicted_out` (if not NULL) receives how many, and each
/// is published as an `SURGEWALL_EVENT_KIND_EVICTED` event. Run it periodically (the agent
/// does). An idle key goes at the first sweep `idle_ttl` after the sweep that first saw it
/// idle. Sweeps read the keyed breaker's own clock; the idle marks they leave also tell a key
/// idle for two buckets that its time window is empty.
#[no_mangle]
pub extern "C" fn surgewall_keyed_breaker_sweep(
    kb: *const surgewall_keyed_breaker,
    evicted_out: *mut u64,
) -> Status {
    boundary(|| {
        let inner = &surgewall_keyed_breaker::get(kb)?.inner;
        let n = inner.sweep(inner.clock().now_ns()) as u64;
        if !evicted_out.is_null() {
            write(evicted_out, n)?;
        }
        Ok(())
    })
}

/// Calls `f(user, key, stats)` for every key held, the overflow entry excluded (`stats` is
/// valid during the call only; do not call back into this keyed breaker from `f`).
#[no_mangle]
pub extern "C" fn surgewall_keyed_breaker_for_each(
    kb: *const surgewall_keyed_breaker,
    f: Option<
        extern "C" fn(
            user: *mut std::ffi::c_void,
            key: u64,
            stats: *const surgewall_keyed_breaker_key_stats,
        ),
    >,
    user: *mut std::ffi::c_void,
) -> Status {
    boundary(|| {
        let f = f.ok_or(Status::SURGEWALL_NULL_ARG)?;
        let obj = surgewall_keyed_breaker::get(kb)?;
        obj.inner.for_each(|k, s| {
            let stats = surgewall_keyed_breaker_key_stats::from(s);
            f(user, *k, &stats)
        });
        Ok(())
    })
}

/// Fills `*out` with the keyed breaker's counters.
#[no_mangle]
pub extern "C" fn surgewall_keyed_breaker_metrics(
    kb: *const surgewall_keyed_breaker,
    out: *mut surgewall_keyed_breaker_stats,
) -> Status {
    boundary(|| {
        non_null(out)?;
        let m = surgewall_keyed_breaker::get(kb)?.inner.metrics();
        write(
            out,
            surgewall_keyed_breaker_stats {
                transitions: m.transitions,
                rejected_open: m.rejected_open,
                rejected_half_open: m.rejected_half_open,
                ignored: m.ignored,
                late_results: m.late_results,
                unexpected_results: m.unexpected_results,
                failures: m.failures,
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

/// The keyed breaker's process-unique id: the `source` of its transition and eviction events.
#[no_mangle]
pub extern "C" fn surgewall_keyed_breaker_id(
    kb: *const surgewall_keyed_breaker,
    id_out: *mut u64,
) -> Status {
    boundary(|| {
        non_null(id_out)?;
        write(id_out, surgewall_keyed_breaker::get(kb)?.inner.id())
    })
}

/// The fallback payload of the keyed breaker (its template's): as `surgewall_breaker_fallback`.
#[no_mangle]
pub extern "C" fn surgewall_keyed_breaker_fallback(
    kb: *const surgewall_keyed_breaker,
    body: *mut *const u8,
    body_len: *mut usize,
    content_type: *mut *const u8,
    content_type_len: *mut usize,
) -> Status {
    boundary(|| {
        let obj = surgewall_keyed_breaker::get(kb)?;
        crate::breaker::write_fallback(
            obj.fallback.as_ref(),
            body,
            body_len,
            content_type,
            content_type_len,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::breaker::keyed::MAX_KEYED_COUNT_WINDOW;
    use engine::State;
    use std::ptr::null_mut;

    /// A state that is not a keyed breaker's admitting state still maps onto the C enum.
    #[test]
    fn key_stats_carry_the_snapshot() {
        let s = KeySnapshot {
            state: State::ForcedOpen,
            generation: 3,
            window: Default::default(),
            minimum_calls: 20,
            consecutive_failures: 0,
            consecutive_opens: 1,
            retry_after: Some(Duration::MAX),
        };
        let c = surgewall_keyed_breaker_key_stats::from(&s);
        assert_eq!(c.state, surgewall_state::ForcedOpen);
        assert_eq!(
            (c.generation, c.consecutive_opens, c.retry_after_ns),
            (3, 1, u64::MAX)
        );
        assert_eq!(c.minimum_calls, 20);
        assert!(
            c.window.failure_rate.is_nan() && c.window.slow_rate.is_nan(),
            "no window: absent"
        );
    }

    /// Issue 15 item 5: permits are tied to their key's slot, and permits no key was issued
    /// (generation 0, a vacant slot) are refused, with no transition.
    #[test]
    fn permits_are_tied_to_their_key_and_forged_ones_are_refused() {
        let mut cfg = null_mut();
        assert_eq!(
            crate::surgewall_breaker_config_new(&mut cfg),
            Status::SURGEWALL_OK
        );
        crate::surgewall_breaker_config_set_consecutive_failures(cfg, 1);
        let mut kcfg = null_mut();
        assert_eq!(
            surgewall_keyed_breaker_config_new(cfg, &mut kcfg),
            Status::SURGEWALL_OK
        );
        let mut kb = null_mut();
        assert_eq!(
            surgewall_keyed_breaker_new(kcfg, &mut kb, null_mut()),
            Status::SURGEWALL_OK
        );
        let mut p = [surgewall_keyed_breaker_permit {
            token: 0,
            start_ns: 0,
            slot: 0,
        }; 2];
        for (key, p) in [1, 2].into_iter().zip(p.iter_mut()) {
            assert_eq!(
                surgewall_keyed_breaker_acquire(kb, key, p, null_mut()),
                Status::SURGEWALL_OK
            );
        }
        let salt = surgewall_keyed_breaker::get(kb).unwrap().salt;
        for slot in 0..1 << 16 {
            let s = slot_salt(salt, slot);
            assert!(
                s & ((1 << 40) - 1) == 0 && (slot == 0 || s != salt),
                "slot {slot}"
            );
        }
        let moved = surgewall_keyed_breaker_permit {
            slot: p[1].slot,
            ..p[0]
        };
        let unused = p[1].slot + 9;
        let gen0 = surgewall_keyed_breaker_permit {
            token: slot_salt(salt, unused),
            start_ns: 0,
            slot: unused,
        };
        for forged in [moved, gen0] {
            for outcome in [0, 1, 2] {
                assert_eq!(
                    surgewall_keyed_breaker_record(kb, forged, outcome),
                    Status::SURGEWALL_INVALID_PERMIT,
                    "{forged:?} {outcome}"
                );
            }
        }
        let m = surgewall_keyed_breaker::get(kb).unwrap().inner.metrics();
        assert_eq!(m.transitions, [[0; 6]; 6], "no phantom transition");
        assert_eq!(m.failures, 0);
        for p in p {
            assert_eq!(surgewall_keyed_breaker_release(kb, p), Status::SURGEWALL_OK);
        }
        assert_eq!(surgewall_keyed_breaker_free(kb), Status::SURGEWALL_OK);
    }

    #[test]
    fn a_template_that_does_not_fit_is_reported_by_new_with_its_field() {
        let mut cfg = null_mut();
        assert_eq!(
            crate::surgewall_breaker_config_new(&mut cfg),
            Status::SURGEWALL_OK
        );
        crate::surgewall_breaker_config_set_count_window(cfg, MAX_KEYED_COUNT_WINDOW + 1);
        let mut kcfg = null_mut();
        assert_eq!(
            surgewall_keyed_breaker_config_new(cfg, &mut kcfg),
            Status::SURGEWALL_OK
        );
        let (mut kb, mut err) = (null_mut(), null_mut());
        assert_eq!(
            surgewall_keyed_breaker_new(kcfg, &mut kb, &mut err),
            Status::SURGEWALL_INVALID_CONFIG
        );
        // SAFETY: the error's field is a NUL-terminated string owned by the error.
        let field = unsafe { std::ffi::CStr::from_ptr(crate::surgewall_error_field(err)) };
        assert_eq!(field.to_str().unwrap(), "window.calls");
        assert_eq!(crate::surgewall_error_free(err), Status::SURGEWALL_OK);
        assert!(kb.is_null());
    }
}
