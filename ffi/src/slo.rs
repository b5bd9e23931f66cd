//! SLO trackers and dynamic thresholds over the C ABI.

use std::sync::Arc;

use engine::clock::Clock;
use engine::{ConfigError, SloConfig, SloTracker, ThresholdAdjuster, ThresholdConfig};

use crate::breaker::{ns, outcome, surgewall_breaker};
use crate::builder::{consume, set, Builder};
use crate::clock::surgewall_mock_clock;
use crate::config::duration;
use crate::error::{report, report_config, surgewall_error};
use crate::handle::{opaque_handle, Handle};
use crate::status::{boundary, non_null, write, Status};

/// An SLO tracker under construction (single owner; consumed by `surgewall_slo_new`).
/// Defaults: objective 0.999 over 30 days; fast burn 14.4 over 1 h and 5 min; slow burn 6 over
/// 6 h and 30 min; burn buckets a tenth of the shortest burn window (30 s).
pub struct surgewall_slo_config {
    _private: [u8; 0],
}

/// What an SLO-config handle holds.
pub struct SloConfigState {
    builder: engine::slo::SloConfigBuilder,
    clock: Clock,
    breaker: Option<Arc<engine::Breaker>>,
    /// The catalog name (`_set_name`); unnamed trackers are not listed.
    name: Option<String>,
}

opaque_handle!(surgewall_slo_config => Builder<SloConfigState>, tag 13);

/// An SLO tracker: error budget and multi-window burn rates. Thread-safe.
pub struct surgewall_slo {
    _private: [u8; 0],
}

opaque_handle!(surgewall_slo => SloTracker, tag 14);

/// One burn-rate pair's view.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct surgewall_burn_stats {
    /// Burn rate over the long window.
    pub long_burn: f64,
    /// Burn rate over the short window.
    pub short_burn: f64,
    /// Calls in the long window.
    pub long_calls: u64,
    /// Calls in the short window (0: no data — the pair's state stays as it is).
    pub short_calls: u64,
    /// The pair's threshold.
    pub threshold: f64,
    /// Whether the pair is firing.
    pub burning: bool,
}

/// A snapshot of an SLO tracker.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct surgewall_slo_stats {
    /// The objective (e.g. 0.999).
    pub objective: f64,
    /// Calls in the SLO window.
    pub calls: u64,
    /// Bad calls in the SLO window.
    pub bad: u64,
    /// bad / calls.
    pub error_rate: f64,
    /// Bad calls the objective allows in the window.
    pub budget_allowed: f64,
    /// budget_allowed - bad (negative when overspent).
    pub budget_remaining: f64,
    /// budget_remaining / budget_allowed.
    pub budget_remaining_fraction: f64,
    /// The fast pair.
    pub fast: surgewall_burn_stats,
    /// The slow pair.
    pub slow: surgewall_burn_stats,
    /// Whether the tracker holds its linked breaker open.
    pub holding_breaker: bool,
    /// The burn bucket in force, in nanoseconds: a window of L reads the last L to
    /// L + burn_bucket_ns.
    pub burn_bucket_ns: u64,
}

#[track_caller]
fn slo_set(
    cfg: *mut surgewall_slo_config,
    f: impl FnOnce(&mut SloConfigState) -> Result<(), ConfigError>,
) -> Status {
    set(cfg, f)
}

/// Creates an SLO configuration with the defaults.
#[no_mangle]
pub extern "C" fn surgewall_slo_config_new(out: *mut *mut surgewall_slo_config) -> Status {
    boundary(|| {
        non_null(out)?;
        let state = SloConfigState {
            builder: SloConfig::builder(),
            clock: Clock::coarse(),
            breaker: None,
            name: None,
        };
        write(out, surgewall_slo_config::insert(Builder::new(state))?)
    })
}

/// Lists the tracker made from `cfg` in the catalog the agent serves, as `name` (see
/// `surgewall_keyed_breaker_config_set_name`).
#[no_mangle]
pub extern "C" fn surgewall_slo_config_set_name(
    cfg: *mut surgewall_slo_config,
    name: *const u8,
    name_len: usize,
) -> Status {
    set(cfg, |c: &mut SloConfigState| {
        c.name = Some(crate::agent::catalog_name(name, name_len)?);
        Ok(())
    })
}

/// Frees a configuration that was never consumed. NULL is a no-op.
#[no_mangle]
pub extern "C" fn surgewall_slo_config_free(cfg: *mut surgewall_slo_config) -> Status {
    surgewall_slo_config::free(cfg)
}

/// The objective: the fraction of good calls promised, in (0, 1).
#[no_mangle]
pub extern "C" fn surgewall_slo_config_set_objective(
    cfg: *mut surgewall_slo_config,
    objective: f64,
) -> Status {
    slo_set(cfg, |c| {
        c.builder = c.builder.objective(objective);
        Ok(())
    })
}

/// The rolling window the error budget is counted over.
#[no_mangle]
pub extern "C" fn surgewall_slo_config_set_window(
    cfg: *mut surgewall_slo_config,
    ns: i64,
) -> Status {
    slo_set(cfg, |c| {
        c.builder = c.builder.window(duration("window", ns)?);
        Ok(())
    })
}

/// The fast burn pair: alert when both windows burn at `threshold` x the sustainable rate.
#[no_mangle]
pub extern "C" fn surgewall_slo_config_set_fast_burn(
    cfg: *mut surgewall_slo_config,
    long_ns: i64,
    short_ns: i64,
    threshold: f64,
) -> Status {
    slo_set(cfg, |c| {
        let (l, s) = (
            duration("fast_burn.long", long_ns)?,
            duration("fast_burn.short", short_ns)?,
        );
        c.builder = c.builder.fast_burn(l, s, threshold);
        Ok(())
    })
}

/// The slow burn pair.
#[no_mangle]
pub extern "C" fn surgewall_slo_config_set_slow_burn(
    cfg: *mut surgewall_slo_config,
    long_ns: i64,
    short_ns: i64,
    threshold: f64,
) -> Status {
    slo_set(cfg, |c| {
        let (l, s) = (
            duration("slow_burn.long", long_ns)?,
            duration("slow_burn.short", short_ns)?,
        );
        c.builder = c.builder.slow_burn(l, s, threshold);
        Ok(())
    })
}

/// The time granularity of the burn windows. Default: a tenth of the shortest burn window; a
/// bucket longer than that is refused when the tracker is built (a window must span at least
/// 10 buckets, so it reads between its length and its length plus one bucket).
#[no_mangle]
pub extern "C" fn surgewall_slo_config_set_burn_bucket(
    cfg: *mut surgewall_slo_config,
    ns: i64,
) -> Status {
    slo_set(cfg, |c| {
        c.builder = c.builder.burn_bucket(duration("burn_bucket", ns)?);
        Ok(())
    })
}

/// A pair recovers when its burn falls under `factor` x its threshold (hysteresis, in (0, 1]).
#[no_mangle]
pub extern "C" fn surgewall_slo_config_set_recovery_factor(
    cfg: *mut surgewall_slo_config,
    factor: f64,
) -> Status {
    slo_set(cfg, |c| {
        c.builder = c.builder.recovery_factor(factor);
        Ok(())
    })
}

/// Calls needed in a long window before its pair may fire.
#[no_mangle]
pub extern "C" fn surgewall_slo_config_set_min_calls(
    cfg: *mut surgewall_slo_config,
    n: u64,
) -> Status {
    slo_set(cfg, |c| {
        c.builder = c.builder.min_calls(n);
        Ok(())
    })
}

/// The shortest time the tracker holds its linked breaker open.
#[no_mangle]
pub extern "C" fn surgewall_slo_config_set_min_open(
    cfg: *mut surgewall_slo_config,
    ns: i64,
) -> Status {
    slo_set(cfg, |c| {
        c.builder = c.builder.min_open(duration("min_open", ns)?);
        Ok(())
    })
}

/// Link a breaker: the tracker forces it open while the fast burn persists.
#[no_mangle]
pub extern "C" fn surgewall_slo_config_set_breaker(
    cfg: *mut surgewall_slo_config,
    breaker: *const surgewall_breaker,
) -> Status {
    boundary(|| {
        let b = surgewall_breaker::get_arc(breaker)?;
        surgewall_slo_config::get(cfg)?.update(|c| {
            c.breaker = Some(b);
            Ok(())
        });
        Ok(())
    })
}

/// Read time from a mock clock (tests).
#[no_mangle]
pub extern "C" fn surgewall_slo_config_set_mock_clock(
    cfg: *mut surgewall_slo_config,
    clock: *const surgewall_mock_clock,
) -> Status {
    boundary(|| {
        let clock = surgewall_mock_clock::get(clock)?.clock.clone();
        surgewall_slo_config::get(cfg)?.update(|c| {
            c.clock = clock;
            Ok(())
        });
        Ok(())
    })
}

/// Creates an SLO tracker from `cfg` (consumed whatever the outcome). It publishes its burn
/// events to the process-wide event ring.
#[no_mangle]
pub extern "C" fn surgewall_slo_new(
    cfg: *mut surgewall_slo_config,
    out: *mut *mut surgewall_slo,
    err_out: *mut *mut surgewall_error,
) -> Status {
    boundary(|| {
        let c = consume(cfg, out, err_out)?;
        let config = c.builder.build().map_err(|e| report_config(err_out, &e))?;
        let mut b = SloTracker::builder(config)
            .clock(c.clock)
            .events(engine::breaker::default_events());
        if let Some(br) = c.breaker {
            b = b.breaker(br);
        }
        let tracker = Arc::new(b.build());
        if let Some(name) = &c.name {
            engine::catalog::Catalog::global().join_slo(name, &tracker);
        }
        write(out, surgewall_slo::insert_arc(tracker)?)
    })
}

/// Frees an SLO tracker. NULL is a no-op.
#[no_mangle]
pub extern "C" fn surgewall_slo_free(s: *mut surgewall_slo) -> Status {
    surgewall_slo::free(s)
}

/// Records a call: `good` true for a call that met the objective.
#[no_mangle]
pub extern "C" fn surgewall_slo_record(s: *const surgewall_slo, good: bool) -> Status {
    boundary(|| {
        surgewall_slo::get(s)?.record(good);
        Ok(())
    })
}

/// Records a call by its breaker outcome (a `surgewall_outcome`; ignored counts nowhere).
#[no_mangle]
pub extern "C" fn surgewall_slo_record_outcome(s: *const surgewall_slo, o: i32) -> Status {
    boundary(|| {
        surgewall_slo::get(s)?.record_outcome(outcome(o)?);
        Ok(())
    })
}

fn stats(m: engine::SloMetrics) -> surgewall_slo_stats {
    let burn = |b: engine::slo::BurnMetrics| surgewall_burn_stats {
        long_burn: b.long_burn,
        short_burn: b.short_burn,
        long_calls: b.long_calls,
        short_calls: b.short_calls,
        threshold: b.threshold,
        burning: b.burning,
    };
    surgewall_slo_stats {
        objective: m.objective,
        calls: m.calls,
        bad: m.bad,
        error_rate: m.error_rate,
        budget_allowed: m.budget_allowed,
        budget_remaining: m.budget_remaining,
        budget_remaining_fraction: m.budget_remaining_fraction,
        fast: burn(m.fast),
        slow: burn(m.slow),
        holding_breaker: m.holding_breaker,
        burn_bucket_ns: ns(m.burn_bucket),
    }
}

/// Evaluates the burn rates now (publishing events, moving a linked breaker); run it on a
/// timer (every few seconds). `*out` (if not NULL) receives the snapshot.
#[no_mangle]
pub extern "C" fn surgewall_slo_tick(
    s: *const surgewall_slo,
    out: *mut surgewall_slo_stats,
) -> Status {
    boundary(|| {
        let m = surgewall_slo::get(s)?.tick();
        if !out.is_null() {
            write(out, stats(m))?;
        }
        Ok(())
    })
}

/// Fills `*out` with a snapshot (no side effects).
#[no_mangle]
pub extern "C" fn surgewall_slo_metrics(
    s: *const surgewall_slo,
    out: *mut surgewall_slo_stats,
) -> Status {
    boundary(|| {
        non_null(out)?;
        write(out, stats(surgewall_slo::get(s)?.metrics()))
    })
}

// ---- dynamic thresholds --------------------------------------------------------------------

/// Adapts a breaker's failure-rate threshold to the error rate it observes. Thread-safe.
pub struct surgewall_threshold_adjuster {
    _private: [u8; 0],
}

opaque_handle!(surgewall_threshold_adjuster => ThresholdAdjuster, tag 15);

/// A snapshot of a threshold adjuster.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct surgewall_threshold_stats {
    /// The breaker's threshold now.
    pub threshold: f64,
    /// The lower bound.
    pub min_threshold: f64,
    /// The upper bound.
    pub max_threshold: f64,
    /// The target error rate.
    pub target_error_rate: f64,
    /// The error rate the last tick with enough calls saw; NaN before any such tick (not
    /// measured yet, distinct from a measured 0).
    pub last_error_rate: f64,
    /// Ticks, ever.
    pub ticks: u64,
    /// Threshold changes, ever.
    pub changes: u64,
}

/// Creates an adjuster for `breaker`: above `target_error_rate` the threshold moves by `step`
/// toward `min_threshold`, below half the target toward `max_threshold`; `min_calls` calls are
/// needed in the window (0: the breaker's own `minimum_calls`). `target_error_rate` may not be
/// above `max_threshold` (the error names the field).
#[no_mangle]
pub extern "C" fn surgewall_threshold_adjuster_new(
    breaker: *const surgewall_breaker,
    target_error_rate: f64,
    min_threshold: f64,
    max_threshold: f64,
    step: f64,
    min_calls: u64,
    out: *mut *mut surgewall_threshold_adjuster,
    err_out: *mut *mut surgewall_error,
) -> Status {
    boundary(|| {
        non_null(out).map_err(|s| report(err_out, s, "out", "out is NULL"))?;
        let b = surgewall_breaker::get_arc(breaker)
            .map_err(|s| report(err_out, s, "breaker", "the breaker handle is invalid"))?;
        let mut config =
            ThresholdConfig::new(target_error_rate, min_threshold, max_threshold, step)
                .map_err(|e| report_config(err_out, &e))?;
        if min_calls > 0 {
            config = config.min_calls(min_calls);
        }
        let adj = ThresholdAdjuster::new(b, config).map_err(|e| report_config(err_out, &e))?;
        write(out, surgewall_threshold_adjuster::insert(adj)?)
    })
}

/// Frees an adjuster. NULL is a no-op.
#[no_mangle]
pub extern "C" fn surgewall_threshold_adjuster_free(
    a: *mut surgewall_threshold_adjuster,
) -> Status {
    surgewall_threshold_adjuster::free(a)
}

/// Evaluates now; when the threshold moved, `*changed_out` is true and `*old_out`/`*new_out`
/// (each may be NULL) receive the values.
#[no_mangle]
pub extern "C" fn surgewall_threshold_adjuster_tick(
    a: *const surgewall_threshold_adjuster,
    changed_out: *mut bool,
    old_out: *mut f64,
    new_out: *mut f64,
) -> Status {
    boundary(|| {
        non_null(changed_out)?;
        let moved = surgewall_threshold_adjuster::get(a)?.tick();
        write(changed_out, moved.is_some())?;
        if let Some((old, new)) = moved {
            if !old_out.is_null() {
                write(old_out, old)?;
            }
            if !new_out.is_null() {
                write(new_out, new)?;
            }
        }
        Ok(())
    })
}

/// Fills `*out` with a snapshot.
#[no_mangle]
pub extern "C" fn surgewall_threshold_adjuster_metrics(
    a: *const surgewall_threshold_adjuster,
    out: *mut surgewall_threshold_stats,
) -> Status {
    boundary(|| {
        non_null(out)?;
        let m = surgewall_threshold_adjuster::get(a)?.metrics();
        write(
            out,
            surgewall_threshold_stats {
                threshold: m.threshold,
                min_threshold: m.min_threshold,
                max_threshold: m.max_threshold,
                target_error_rate: m.target_error_rate,
                last_error_rate: m.last_error_rate.unwrap_or(f64::NAN),
                ticks: m.ticks,
                changes: m.changes,
            },
        )
    })
}

/// The SLO tracker's process-unique id: the `source` of its burn events. (A threshold
/// adjuster publishes under its breaker's id: `surgewall_breaker_id`.)
#[no_mangle]
pub extern "C" fn surgewall_slo_id(s: *const surgewall_slo, id_out: *mut u64) -> Status {
    boundary(|| {
        non_null(id_out)?;
        write(id_out, surgewall_slo::get(s)?.id())
    })
}
