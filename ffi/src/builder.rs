//! The single-owner configuration handles (`surgewall_*_config`) share one shape: setters
//! record values and remember the first one they could not even represent (a negative
//! duration), and the constructor consumes the handle, reporting that value or the core's
//! validation error through a `surgewall_error` that names the field.

use std::sync::Mutex;

use engine::ConfigError;

use crate::error::{report, report_config, surgewall_error};
use crate::handle::Handle;
use crate::status::{boundary, non_null, Status};

/// What a configuration handle holds: the state being built and the first rejected value.
pub struct Builder<S> {
    inner: Mutex<(S, Option<ConfigError>)>,
}

impl<S> Builder<S> {
    pub(crate) fn new(state: S) -> Self {
        Builder {
            inner: Mutex::new((state, None)),
        }
    }

    /// Applies `f` to the state; an error is kept (the first one wins) for the constructor.
    pub(crate) fn update(&self, f: impl FnOnce(&mut S) -> Result<(), ConfigError>) {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (state, bad) = &mut *guard;
        if let Err(e) = f(state) {
            bad.get_or_insert(e);
        }
    }

    pub(crate) fn finish(self) -> Result<S, ConfigError> {
        let (state, bad) = self.inner.into_inner().unwrap_or_else(|p| p.into_inner());
        match bad {
            Some(e) => Err(e),
            None => Ok(state),
        }
    }
}

/// The body of every setter: `f` on the builder behind `cfg`.
pub(crate) fn set<H, S>(cfg: *const H, f: impl FnOnce(&mut S) -> Result<(), ConfigError>) -> Status
where
    H: Handle<Target = Builder<S>>,
{
    boundary(|| {
        H::get(cfg)?.update(f);
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
