//! The single-owner configuration handles (`surgewall_*_config`) share one shape: setters
//! record values and remember the ones they could not even represent (a negative duration, an
//! override the keyed breaker cannot take), and the constructor consumes the handle, reporting
//! the first such value still in force or the core's validation error through a
//! `surgewall_error` that names the field.
//!
//! A later call of the same setter replaces an earlier one, rejected values included: each
//! kept rejection is tagged with the setter that made it (its call site in this crate, plus
//! the key for per-key setters), and the next call of that setter drops it. So a corrected
//! duration no longer fails the build, as a corrected rate never did, and a replaced invalid
//! override no longer fails the constructor.

use std::panic::Location;
use std::sync::Mutex;

use engine::ConfigError;

use crate::error::{report, report_config, surgewall_error};
use crate::handle::Handle;
use crate::status::{boundary, non_null, Status};

/// Which setter call a kept rejection came from: the setter's call site, and a key for
/// per-key setters (0 otherwise).
type Setter = (&'static Location<'static>, u64);

/// What a configuration handle holds: the state being built and the rejected values still in
/// force, in the order they were made.
pub struct Builder<S> {
    inner: Mutex<(S, Vec<(Setter, ConfigError)>)>,
}

impl<S> Builder<S> {
    pub(crate) fn new(state: S) -> Self {
        Builder {
            inner: Mutex::new((state, Vec::new())),
        }
    }

    /// Applies `f` to the state for the setter calling this; an error is kept for the
    /// constructor until the same setter is called again.
    #[track_caller]
    pub(crate) fn update(&self, f: impl FnOnce(&mut S) -> Result<(), ConfigError>) {
        self.update_as((Location::caller(), 0), f);
    }

    /// [`update`](Self::update) for the setter `setter` (a call site and a key).
    pub(crate) fn update_as(
        &self,
        setter: Setter,
        f: impl FnOnce(&mut S) -> Result<(), ConfigError>,
    ) {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (state, bad) = &mut *guard;
        // This call replaces the setter's previous one, whatever that was.
        bad.retain(|(s, _)| *s != setter);
        if let Err(e) = f(state) {
            bad.push((setter, e));
        }
    }

    /// Reads the state (for a setter that needs it before it updates, such as a key's hash).
    pub(crate) fn read<R>(&self, f: impl FnOnce(&S) -> R) -> R {
        let guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&guard.0)
    }

    pub(crate) fn finish(self) -> Result<S, ConfigError> {
        let (state, bad) = self.inner.into_inner().unwrap_or_else(|p| p.into_inner());
        match bad.into_iter().next() {
            Some((_, e)) => Err(e),
            None => Ok(state),
        }
    }
}

/// The body of every setter: `f` on the builder behind `cfg`, for the setter calling this
/// (through wrappers that are `#[track_caller]` too).
#[track_caller]
pub(crate) fn set<H, S>(cfg: *const H, f: impl FnOnce(&mut S) -> Result<(), ConfigError>) -> Status
where
    H: Handle<Target = Builder<S>>,
{
    let setter = (Location::caller(), 0);
    boundary(|| {
        H::get(cfg)?.update_as(setter, f);
        Ok(())
    })
}

/// The prologue of every constructor: consumes `cfg` (whatever happens next), checks `out`,
/// and reports a value a setter rejected. Every failure leaves an error in `*err_out`.
pub(crate) fn consume<H, S, O>(
    cfg: *const H,
    out: *mut *mut O,
    err_out: *mut *mut surgewall_error,
) -> Result<S, Status>
where
    H: Handle<Target = Builder<S>>,
{
    let builder = H::take(cfg).map_err(|s| {
        report(
            err_out,
            s,
            "config",
            "the config is NULL, freed, or already consumed",
        )
    })?;
    non_null(out).map_err(|s| report(err_out, s, "out", "out is NULL"))?;
    builder.finish().map_err(|e| report_config(err_out, &e))
}
