//! Events over the C ABI: subscribe to the process-wide ring, poll into a caller struct.

use std::sync::Mutex;

use engine::events::{EventKind, Subscription};

use crate::breaker::surgewall_state;
use crate::handle::{opaque_handle, Handle};
use crate::status::{boundary, non_null, write, Status};

/// A reader of the event ring with its own cursor. Poll it from one thread at a time.
pub struct surgewall_subscription {
    _private: [u8; 0],
}

opaque_handle!(surgewall_subscription => Mutex<Subscription>, tag 5);

/// What an event is about.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum surgewall_event_kind {
    /// A breaker changed state: `from_state`, `to_state`, `reason`, `generation`.
    Transition = 1,
    /// A dynamic threshold moved: `value_a` old, `value_b` new.
    ThresholdChanged = 2,
    /// An SLO burn alert fired: `fast` says which pair, `value_a` the burn rate.
    SloBurn = 3,
    /// An SLO burn alert recovered: `fast`, `value_a` the burn rate.
    SloRecovered = 4,
    /// A keyed registry evicted `key`.
    Evicted = 5,
    /// A retry budget refused a retry.
    RetryBudgetExhausted = 6,
    /// One key of a keyed breaker changed state: `key`, `from_state`, `to_state`, `reason`,
    /// `generation` (should the key be evicted before its event went out, a rare race, the
    /// event is a `TRANSITION` without the key).
    KeyedTransition = 7,
}

/// One event, as `surgewall_subscription_poll` fills it. Fields a kind does not use are 0.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct surgewall_event {
    /// The id of the publisher (`surgewall_breaker_id`, ...).
    pub source: u64,
    /// When, in the publisher's clock nanoseconds.
    pub at_ns: u64,
    /// What happened.
    pub kind: surgewall_event_kind,
    /// Transitions: the state left.
    pub from_state: surgewall_state,
    /// Transitions: the state entered.
    pub to_state: surgewall_state,
    /// Transitions: why (`surgewall_transition_reason`).
    pub reason: i32,
    /// Transitions: the new generation.
    pub generation: u64,
    /// SLO events: 1 for the fast pair, 0 for the slow one.
    pub fast: i32,
    /// Threshold: the old value; SLO: the burn that decided (the slower of the pair's two).
    pub value_a: f64,
    /// Threshold: the new value.
    pub value_b: f64,
    /// Evictions and keyed transitions: the key (or its hash, `_key_of`).
    pub key: u64,
}

/// Why a transition happened.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum surgewall_transition_reason {
    /// The failure rate reached its threshold.
    FailureRate = 0,
    /// The slow-call rate reached its threshold.
    SlowCallRate = 1,
    /// The consecutive-failure limit was reached.
    ConsecutiveFailures = 2,
    /// The open wait ended.
    WaitOver = 3,
    /// The probes succeeded.
    ProbesSucceeded = 4,
    /// The probes failed.
    ProbesFailed = 5,
    /// A half-open episode timed out.
    HalfOpenTimeout = 6,
    /// A manual transition.
    Manual = 7,
}

fn convert(e: engine::events::Event) -> surgewall_event {
    let mut out = surgewall_event {
        source: e.source,
        at_ns: e.at_ns,
        kind: surgewall_event_kind::Transition,
        from_state: surgewall_state::Closed,
        to_state: surgewall_state::Closed,
        reason: 0,
        generation: 0,
        fast: 0,
        value_a: 0.0,
        value_b: 0.0,
        key: 0,
    };
    match e.kind {
        EventKind::Transition {
            from,
            to,
            generation,
            reason,
        } => {
            out.from_state = from.into();
            out.to_state = to.into();
            out.reason = reason as i32;
            out.generation = generation;
        }
        EventKind::ThresholdChanged { old, new } => {
            out.kind = surgewall_event_kind::ThresholdChanged;
            out.value_a = old;
            out.value_b = new;
        }
        EventKind::SloBurn { fast, burn_rate } => {
            out.kind = surgewall_event_kind::SloBurn;
            out.fast = fast.into();
            out.value_a = burn_rate;
        }
        EventKind::SloRecovered { fast, burn_rate } => {
            out.kind = surgewall_event_kind::SloRecovered;
            out.fast = fast.into();
            out.value_a = burn_rate;
        }
        EventKind::Evicted { key } => {
            out.kind = surgewall_event_kind::Evicted;
            out.key = key;
        }
        EventKind::RetryBudgetExhausted => out.kind = surgewall_event_kind::RetryBudgetExhausted,
        EventKind::KeyedTransition {
            key,
            from,
            to,
            generation,
            reason,
        } => {
            out.kind = surgewall_event_kind::KeyedTransition;
            out.key = key;
            out.from_state = from.into();
            out.to_state = to.into();
            out.reason = reason as i32;
            out.generation = generation;
        }
        _ => {}
    }
    out
}

/// Subscribes to the process-wide event ring (every breaker made through this ABI publishes
/// there), from now on.
#[no_mangle]
pub extern "C" fn surgewall_events_subscribe(out: *mut *mut surgewall_subscription) -> Status {
    boundary(|| {
        non_null(out)?;
        let sub = engine::breaker::default_events().subscribe();
        write(out, surgewall_subscription::insert(Mutex::new(sub))?)
    })
}

/// The next event into `*out`, or `SURGEWALL_NO_EVENT` when there is none yet (or the next
/// event's publisher is still writing it: a few instructions, never longer than one lap of the
/// ring; poll again later). Events arrive in the order they were published.
#[no_mangle]
pub extern "C" fn surgewall_subscription_poll(
    sub: *const surgewall_subscription,
    out: *mut surgewall_event,
) -> Status {
    boundary(|| {
        non_null(out)?;
        let sub = surgewall_subscription::get(sub)?;
        let next = sub.lock().unwrap_or_else(|p| p.into_inner()).poll();
        match next {
            Some(e) => write(out, convert(e)),
            None => Err(Status::SURGEWALL_NO_EVENT),
        }
    })
}

/// How many events this subscription will never deliver: those it skipped because it fell more
/// than the ring's 4096 events behind, and those dropped while being published (their
/// publisher was overtaken by a whole lap of the ring). Every event published since
/// `surgewall_events_subscribe` is either returned by `surgewall_subscription_poll` or counted
/// here: once the publishers are done and a poll returned `SURGEWALL_NO_EVENT`, delivered +
/// missed == published.
#[no_mangle]
pub extern "C" fn surgewall_subscription_missed(
    sub: *const surgewall_subscription,
    out: *mut u64,
) -> Status {
    boundary(|| {
        non_null(out)?;
        let sub = surgewall_subscription::get(sub)?;
        let missed = sub.lock().unwrap_or_else(|p| p.into_inner()).missed();
        write(out, missed)
    })
}

/// Frees a subscription. NULL is a no-op.
#[no_mangle]
pub extern "C" fn surgewall_subscription_free(sub: *mut surgewall_subscription) -> Status {
    surgewall_subscription::free(sub)
}
