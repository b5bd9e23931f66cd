//! Time over the C ABI: the coarse-clock tick, and mock clocks for tests.

use engine::clock::{Clock, MockClock};

use crate::handle::{opaque_handle, Handle};
use crate::status::{boundary, write, Status};

/// The value behind a `surgewall_mock_clock` handle.
pub struct MockObj {
    pub(crate) clock: Clock,
    time: MockClock,
}

/// A clock that moves only when told (`surgewall_mock_clock_advance`). Give it to a
/// config with `surgewall_breaker_config_set_mock_clock` to drive a breaker in tests.
pub struct surgewall_mock_clock {
    _private: [u8; 0],
}

opaque_handle!(surgewall_mock_clock => MockObj, tag 2);

/// Refreshes the coarse clock every breaker reads by default. Call it every 0.5-1 ms from one
/// thread (the agent does); without it coarse reads fall back to precise ones.
#[no_mangle]
pub extern "C" fn surgewall_clock_tick() {
    let _ = boundary(|| {
        engine::clock::tick();
        Ok(())
    });
}

/// Tells coarse clocks that nobody ticks any more (call it when the ticking thread stops, and
/// in a child after `fork()`).
#[no_mangle]
pub extern "C" fn surgewall_clock_stop_ticking() {
    let _ = boundary(|| {
        engine::clock::stop_ticking();
        Ok(())
    });
}

/// Creates a mock clock (it starts at 1 s).
#[no_mangle]
pub extern "C" fn surgewall_mock_clock_new(out: *mut *mut surgewall_mock_clock) -> Status {
    boundary(|| {
        crate::status::non_null(out)?;
        let (clock, time) = Clock::mock();
        write(out, surgewall_mock_clock::insert(MockObj { clock, time })?)
    })
}

/// Moves a mock clock forward by `ns` nanoseconds (negative is `SURGEWALL_INVALID_ARG`). The
/// clock saturates at `UINT64_MAX` ns (584 years) instead of wrapping: however far it is pushed
/// (say `INT64_MAX` twice), it never reads an earlier time.
#[no_mangle]
pub extern "C" fn surgewall_mock_clock_advance(
    clock: *const surgewall_mock_clock,
    ns: i64,
) -> Status {
    boundary(|| {
        let c = surgewall_mock_clock::get(clock)?;
        let ns = u64::try_from(ns).map_err(|_| Status::SURGEWALL_INVALID_ARG)?;
        c.time.advance(std::time::Duration::from_nanos(ns));
        Ok(())
    })
}

/// The mock clock's current time in nanoseconds.
#[no_mangle]
pub extern "C" fn surgewall_mock_clock_now(
    clock: *const surgewall_mock_clock,
    ns_out: *mut u64,
) -> Status {
    boundary(|| {
        crate::status::non_null(ns_out)?;
        let c = surgewall_mock_clock::get(clock)?;
        write(ns_out, c.time.now_ns())
    })
}

/// Frees a mock clock (breakers using it keep their own reference). NULL is a no-op.
#[no_mangle]
pub extern "C" fn surgewall_mock_clock_free(clock: *mut surgewall_mock_clock) -> Status {
    surgewall_mock_clock::free(clock)
}
