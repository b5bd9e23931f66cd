//! # surgewall
//!
//! The engine of surgewall: lock-free circuit breakers and the policies around them, in pure
//! Rust with no I/O and no threads. Hot paths are one atomic load to admit a call and one
//! striped `fetch_add` to record a success; nothing on them allocates.
//!
//! ```
//! use std::time::Duration;
//! use surgewall::{Breaker, BreakerConfig, State, clock::Clock};
//!
//! let config = BreakerConfig::builder()
//!     .failure_rate(0.5)
//!     .minimum_calls(4)
//!     .count_window(10)
//!     .open_for(Duration::from_secs(5))
//!     .build()?;
//! let (clock, time) = Clock::mock();
//! let breaker = Breaker::builder("payments", config).clock(clock).build();
//!
//! for _ in 0..4 {
//!     breaker.acquire()?.failure();
//! }
//! assert_eq!(breaker.state(), State::Open);
//! let rejected = breaker.acquire().unwrap_err();
//! assert_eq!(rejected.retry_after, Duration::from_secs(5));
//!
//! time.advance(Duration::from_secs(5));
//! breaker.acquire()?.success(); // the first probe
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

pub mod breaker;
pub mod bulkhead;
pub mod catalog;
pub mod clock;
mod error;
pub mod events;
pub mod fallback;
pub mod histogram;
pub mod registry;
pub mod retry;
pub(crate) mod rng;
pub mod slo;
mod source_id;
mod stripe;
mod sync;
pub mod threshold;

/// Initializes now every process-wide value surgewall otherwise creates on first use: the
/// stripe count, the precise clock's calibration, the default event ring and the shared
/// retry-budget registry. Idempotent and cheap after the first call.
///
/// For `fork()`: a child forked while another thread was initializing one of them inherits
/// it half-made and would wait for it for ever. The C library calls this in its
/// `pthread_atfork` prepare handler, so a fork waits for any initialization in progress; a
/// Rust program that forks while other threads may be using surgewall for the first time can
/// call it before forking.
///
/// ```
/// surgewall::init_process_globals();
/// surgewall::init_process_globals(); // again: nothing left to do
/// ```
pub fn init_process_globals() {
    let _ = stripe::default_stripes();
    clock::init();
    let _ = breaker::default_events();
    let _ = RetryBudgetRegistry::global();
    let _ = catalog::Catalog::global();
}

pub use breaker::{
    Breaker, BreakerBuilder, BreakerConfig, BreakerConfigBuilder, BreakerMetrics, Outcome, Permit,
    RawPermit, Recorded, RejectReason, Rejected, State, TransitionError, TransitionReason, Window,
    HALF_OPEN_RETRY_HINT_MAX, MAX_WAIT,
};
pub use bulkhead::{
    Bulkhead, BulkheadBuilder, BulkheadConfig, BulkheadConfigBuilder, BulkheadFull,
    BulkheadMetrics, BulkheadPermit, NotAcquired,
};
pub use error::ConfigError;
pub use fallback::Fallback;
pub use retry::{
    AttemptOutcome, Backoff, BreakerWait, Decision, Hint, Jitter, RetryBudget, RetryBudgetConfig,
    RetryBudgetRegistry, RetryError, RetryPolicy, RetrySchedule, StopReason,
};
pub use slo::{SloConfig, SloMetrics, SloTracker};
pub use threshold::{ThresholdAdjuster, ThresholdConfig};
