//! Monotonic time, injectable.
//!
//! Every policy reads time through a [`Clock`], in nanoseconds on a monotonic scale whose
//! origin is the first read in the process. Three modes:
//!
//! * [`Clock::coarse`] (the default): one relaxed load of a process-wide "recent" timestamp
//!   (about a nanosecond). Somebody must refresh it with [`tick`] every millisecond or so —
//!   the agent does, `Ticker`-like loops in a host do, the benchmarks and the demo do.
//!   While nobody ticks (or after [`stop_ticking`]) a coarse read falls back to a precise one,
//!   so time never stands still (invariant I7: OPEN always ends).
//! * [`Clock::precise`]: a TSC read through `quanta` (10-30 ns), for slow-call timing.
//! * [`Clock::mock`]: a clock that only moves when a test moves it.
//!
//! Wall-clock time is never used, so a wall-clock jump changes nothing (invariant I8).
//!
//! ```
//! use std::time::Duration;
//! use surgewall::clock::Clock;
//!
//! let (clock, mock) = Clock::mock();
//! let t0 = clock.now_ns();
//! mock.advance(Duration::from_millis(5));
//! assert_eq!(clock.now_ns() - t0, 5_000_000);
//! ```

use std::sync::atomic::{AtomicU64 as StdAtomicU64, Ordering as StdOrdering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The process-wide recent timestamp (nanoseconds on the precise scale, plus one so that zero
/// can mean "nobody is ticking"). Deliberately a std atomic, even under loom: loom models use
/// the mock clock, and time is not part of what they check.
static RECENT_NS: StdAtomicU64 = StdAtomicU64::new(0);

fn quanta_clock() -> &'static (quanta::Clock, quanta::Instant) {
    static CLOCK: OnceLock<(quanta::Clock, quanta::Instant)> = OnceLock::new();
    CLOCK.get_or_init(|| {
        let c = quanta::Clock::new();
        let origin = c.now();
        (c, origin)
    })
}

/// Calibrates the precise clock now (see [`crate::init_process_globals`]).
pub(crate) fn init() {
    let _ = quanta_clock();
}

/// Nanoseconds since the process origin, read precisely.
#[inline]
fn precise_now() -> u64 {
    let (c, origin) = quanta_clock();
    // The origin is taken at first use, so a later read is never earlier; quanta saturates anyway.
    c.now().duration_since(*origin).as_nanos() as u64
}

/// A coarse read while nobody ticks: out of line, so the ticked path stays a load.
#[cold]
#[inline(never)]
fn untick_fallback() -> u64 {
    precise_now()
}

/// Refreshes the coarse clock. Call it from one background thread every 0.5-1 ms.
///
/// ```
/// surgewall::clock::tick();
/// assert!(surgewall::clock::Clock::coarse().now_ns() > 0);
/// surgewall::clock::stop_ticking();
/// ```
pub fn tick() {
    RECENT_NS.store(precise_now() + 1, StdOrdering::Relaxed);
}

/// Tells coarse clocks that nobody ticks any more: they fall back to precise reads until the
/// next [`tick`]. Call it when the ticking thread stops, and in a child after `fork()`.
pub fn stop_ticking() {
    RECENT_NS.store(0, StdOrdering::Relaxed);
}

/// Whether coarse reads are currently served by a ticker (rather than falling back).
pub fn is_ticking() -> bool {
    RECENT_NS.load(StdOrdering::Relaxed) != 0
}

/// A source of monotonic nanoseconds. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    kind: Kind,
}

#[derive(Clone, Debug, Default)]
enum Kind {
    #[default]
    Coarse,
    Precise,
    Mock(Arc<StdAtomicU64>),
}

/// Which kind of clock a [`Clock`] is; published numbers state it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockMode {
    /// The ticked process-wide timestamp (precise fallback while nobody ticks).
    Coarse,
    /// A TSC read on every call.
    Precise,
    /// Test time, moved by [`MockClock::advance`].
    Mock,
}

impl Clock {
    /// The coarse clock (the default).
    pub fn coarse() -> Self {
        Self { kind: Kind::Coarse }
    }

    /// The precise clock.
    pub fn precise() -> Self {
        Self {
            kind: Kind::Precise,
        }
    }

    /// A mock clock starting at 1 s, and the handle that moves it.
    pub fn mock() -> (Self, MockClock) {
        let t = Arc::new(StdAtomicU64::new(1_000_000_000));
        (
            Self {
                kind: Kind::Mock(t.clone()),
            },
            MockClock { t },
        )
    }

    /// The handle that moves this clock, when it is a mock: what a driver that waits on the
    /// clock it was given (a binding's retry loop) advances instead of sleeping.
    ///
    /// ```
    /// use std::time::Duration;
    /// use surgewall::clock::Clock;
    /// let (clock, _) = Clock::mock();
    /// clock.mock_handle().unwrap().advance(Duration::from_secs(2));
    /// assert_eq!(clock.now_ns(), 3_000_000_000);
    /// assert!(Clock::coarse().mock_handle().is_none());
    /// ```
    pub fn mock_handle(&self) -> Option<MockClock> {
        match &self.kind {
            Kind::Mock(t) => Some(MockClock { t: t.clone() }),
            _ => None,
        }
    }

    /// This clock's mode.
    pub fn mode(&self) -> ClockMode {
        match self.kind {
            Kind::Coarse => ClockMode::Coarse,
            Kind::Precise => ClockMode::Precise,
            Kind::Mock(_) => ClockMode::Mock,
        }
    }

    /// Monotonic nanoseconds.
    #[inline]
    pub fn now_ns(&self) -> u64 {
        match &self.kind {
            Kind::Coarse => match RECENT_NS.load(StdOrdering::Relaxed) {
                0 => untick_fallback(),
                t => t - 1,
            },
            Kind::Precise => precise_now(),
            Kind::Mock(t) => t.load(StdOrdering::Acquire),
        }
    }

    /// Monotonic nanoseconds when reading them takes no call (a ticked coarse clock, a mock
    /// clock); `None` for a precise clock and an unticked coarse one (then call
    /// [`now_ns`](Self::now_ns)). Lets a hot path keep every call out of line.
    #[inline(always)]
    pub(crate) fn now_ns_without_call(&self) -> Option<u64> {
        match &self.kind {
            Kind::Coarse => RECENT_NS.load(StdOrdering::Relaxed).checked_sub(1),
            Kind::Precise => None,
            Kind::Mock(t) => Some(t.load(StdOrdering::Acquire)),
        }
    }

    /// Monotonic nanoseconds at the best precision this clock has: the coarse clock reads
    /// precisely here, a mock clock stays mock. Used to time calls for slow-call detection.
    #[inline]
    pub fn precise_now_ns(&self) -> u64 {
        match &self.kind {
            Kind::Mock(t) => t.load(StdOrdering::Acquire),
            _ => precise_now(),
        }
    }
}

/// The handle that moves a mock [`Clock`]. Clones move the same clock.
#[derive(Clone, Debug)]
pub struct MockClock {
    t: Arc<StdAtomicU64>,
}

impl MockClock {
    /// Moves the clock forward, saturating at `u64::MAX` ns (584 years): a mock clock never
    /// wraps back to an earlier time, however far it is pushed (monotonic, like every
    /// [`Clock`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use surgewall::clock::Clock;
    /// let (clock, mock) = Clock::mock();
    /// mock.advance(Duration::MAX);
    /// mock.advance(Duration::from_secs(1));
    /// assert_eq!(clock.now_ns(), u64::MAX);
    /// ```
    pub fn advance(&self, d: Duration) {
        let ns = duration_ns(d);
        // A CAS loop rather than `fetch_add`, which would wrap.
        let _ = self
            .t
            .fetch_update(StdOrdering::AcqRel, StdOrdering::Acquire, |t| {
                Some(t.saturating_add(ns))
            });
    }

    /// The current mock time in nanoseconds.
    pub fn now_ns(&self) -> u64 {
        self.t.load(StdOrdering::Acquire)
    }
}

/// A duration in nanoseconds, saturating at `u64::MAX` (584 years).
pub(crate) fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coarse_reads_the_tick_and_falls_back_to_precise_without_one() {
        // The only test in this binary that ticks, so nothing else moves the coarse clock.
        let c = Clock::coarse();
        stop_ticking();
        assert!(!is_ticking());
        let a = c.now_ns();
        std::thread::sleep(Duration::from_millis(2));
        let b = c.now_ns();
        assert!(
            b - a >= 1_000_000,
            "without a ticker coarse reads are precise: {a} -> {b}"
        );

        tick();
        assert!(is_ticking());
        let t = c.now_ns();
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(
            c.now_ns(),
            t,
            "while ticking, coarse time moves only with the ticks"
        );
        assert!(t >= b, "a tick never goes back");

        stop_ticking();
        assert!(
            c.now_ns() > t,
            "after the ticker stops, time moves again (I7)"
        );
    }

    #[test]
    fn mock_moves_only_when_told() {
        let (c, m) = Clock::mock();
        let a = c.now_ns();
        assert_eq!(c.now_ns(), a);
        m.advance(Duration::from_secs(2));
        assert_eq!(c.now_ns(), a + 2_000_000_000);
        assert_eq!(c.precise_now_ns(), a + 2_000_000_000);
        assert_eq!(c.mode(), ClockMode::Mock);
    }

    /// Issue 15 item 6: advancing by `i64::MAX` ns twice wrapped the clock back to 1 s - 2 ns.
    #[test]
    fn a_mock_clock_saturates_instead_of_wrapping() {
        let (c, m) = Clock::mock();
        let big = Duration::from_nanos(i64::MAX as u64);
        m.advance(big);
        let first = c.now_ns();
        m.advance(big);
        assert_eq!(c.now_ns(), u64::MAX);
        assert!(c.now_ns() >= first);
        m.advance(Duration::from_nanos(1));
        assert_eq!(m.now_ns(), u64::MAX);
    }
}
