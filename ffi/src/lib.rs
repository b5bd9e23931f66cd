//! The C ABI of surgewall: `libsurgewall.so` / `libsurgewall.a` and `include/surgewall.h`.
//!
//! Glue only: every policy decision is made in the core crate. Conventions (DESIGN.md §6):
//!
//! * Every fallible function returns a `surgewall_status` (0 is `SURGEWALL_OK`); out-params
//!   are written only on success (the exceptions say so: `retry_after` on a rejection, the
//!   needed length on `SURGEWALL_BUFFER_TOO_SMALL`).
//! * Every export runs inside a panic boundary and checks its pointers: no panic crosses the
//!   ABI, and NULL, freed, foreign or consumed handles are reported, never undefined (I11).
//! * Handles are typed opaque pointers resolved through generational tables ([`handle`]).
//! * Strings come in as pointer + length and are validated as UTF-8.
//! * No thread-local "last error": constructors return an owned `surgewall_error`.

#![allow(clippy::missing_safety_doc)]
// the C contract of each function is in its doc comment
// Exports take raw pointers from C: they check them (NULL, handle tables) and document the
// rest of their contract; marking them `unsafe` would change nothing for C callers.
#![allow(clippy::not_unsafe_ptr_arg_deref)]
#![allow(non_camel_case_types)] // C names: surgewall_breaker, surgewall_state, ...

mod agent;
mod breaker;
mod builder;
mod bulkhead;
mod clock;
mod config;
mod defaults;
mod error;
mod events;
mod handle;
mod keyed_breaker;
mod keys;
mod retry;
mod slo;
mod status;
mod version;

#[cfg(test)]
mod tests;

pub use agent::*;
pub use breaker::*;
pub use bulkhead::*;
pub use clock::*;
pub use config::*;
pub use defaults::*;
pub use error::*;
pub use events::*;
pub use keyed_breaker::*;
pub use keys::*;
pub use retry::*;
pub use slo::*;
pub use status::*;
pub use version::*;
