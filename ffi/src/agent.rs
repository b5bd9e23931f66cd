//! `surgewall_agent`: the background agent (metrics, admin API, coarse-clock ticker, idle
//! sweeps) started and stopped from C, and the catalog it serves.
//!
//! Breakers and bulkheads made through this ABI join the process-wide catalog when they are
//! created (`surgewall_*_unlist` takes one off), so the agent serves them whatever language
//! made them; so do shared retry budgets, and keyed breakers, keyed bulkheads and SLO trackers
//! whose configuration names them (`_config_set_name`). The library is built with the agent by
//! default (cargo feature `agent`); built without it, these functions exist and answer
//! `SURGEWALL_UNSUPPORTED`.

use std::sync::Mutex;

use engine::catalog::Catalog;

use crate::breaker::surgewall_breaker;
use crate::bulkhead::surgewall_bulkhead;
use crate::error::{report, surgewall_error};
use crate::handle::{opaque_handle, Handle};
use crate::status::{boundary, copy_out, non_null, utf8, write, Status};

/// The name a `_config_set_name` setter records: UTF-8 without NUL, checked as every name is.
pub(crate) fn catalog_name(ptr: *const u8, len: usize) -> Result<String, engine::ConfigError> {
    crate::status::name(ptr, len)
        .map(str::to_owned)
        .map_err(|(_, why)| engine::ConfigError::new("name", why))
}

#[cfg(feature = "agent")]
type AgentObj = Mutex<Option<surgewall_agent_crate::Agent>>;
#[cfg(not(feature = "agent"))]
type AgentObj = Mutex<Option<()>>;

/// A running agent. Stop it (and free the handle) with `surgewall_agent_stop`.
pub struct surgewall_agent {
    _private: [u8; 0],
}

opaque_handle!(surgewall_agent => AgentObj, tag 18);

/// Starts the agent on `bind` (`bind_len` bytes of UTF-8 such as `"127.0.0.1:9464"`; NULL and
/// 0 mean that default, loopback only; port 0 picks a free port, see `surgewall_agent_port`).
/// One agent per process: a second start is `SURGEWALL_ALREADY_RUNNING` while the first runs
/// (in a child made by `fork()`, the parent's agent does not run: start one there if needed).
/// An address that cannot be bound is `SURGEWALL_IO_ERROR`, an unparsable one
/// `SURGEWALL_INVALID_ARG`; `*err_out` (if not NULL) then receives an error object that says why.
/// Changes (POST) need the bearer token in `SURGEWALL_AGENT_TOKEN` (or the file named by
/// `SURGEWALL_AGENT_TOKEN_FILE`) when one is set, and are refused on a bind beyond loopback
/// without one; an empty or unreadable token is `SURGEWALL_INVALID_CONFIG` (field `token`).
/// With `SURGEWALL_AGENT_TLS_CERT` and `SURGEWALL_AGENT_TLS_KEY` naming PEM files, the port
/// serves HTTPS; one without the other, or files that make no TLS server, is
/// `SURGEWALL_INVALID_CONFIG` (field `tls`).
#[no_mangle]
pub extern "C" fn surgewall_agent_start(
    bind: *const u8,
    bind_len: usize,
    out: *mut *mut surgewall_agent,
    err_out: *mut *mut surgewall_error,
) -> Status {
    boundary(|| {
        non_null(out).map_err(|s| report(err_out, s, "out", "out is NULL"))?;
        let bind = utf8(bind, bind_len)
            .map_err(|s| report(err_out, s, "bind", "the address must be valid UTF-8"))?;
        start(bind, out, err_out)
    })
}

#[cfg(feature = "agent")]
fn start(
    bind: &str,
    out: *mut *mut surgewall_agent,
    err_out: *mut *mut surgewall_error,
) -> Result<(), Status> {
    use surgewall_agent_crate::{Agent, AgentError};
    let mut builder = Agent::builder();
    if !bind.is_empty() {
        let addr = bind.parse().map_err(|_| {
            let msg = format!("{bind:?} is not an address such as 127.0.0.1:9464");
            report(err_out, Status::SURGEWALL_INVALID_ARG, "bind", &msg)
        })?;
        builder = builder.bind(addr);
    }
    let agent = builder.start().map_err(|e| {
        let (status, field) = match e {
            AgentError::AlreadyRunning => (Status::SURGEWALL_ALREADY_RUNNING, "bind"),
            AgentError::Bind { .. } | AgentError::Runtime(_) => {
                (Status::SURGEWALL_IO_ERROR, "bind")
            }
            AgentError::Panicked => (Status::SURGEWALL_PANIC, "agent"),
            AgentError::Token(_) => (Status::SURGEWALL_INVALID_CONFIG, "token"),
            AgentError::Tls(_) => (Status::SURGEWALL_INVALID_CONFIG, "tls"),
        };
        report(err_out, status, field, &e.to_string())
    })?;
    write(out, surgewall_agent::insert(Mutex::new(Some(agent)))?)
}

#[cfg(not(feature = "agent"))]
fn start(
    _bind: &str,
    _out: *mut *mut surgewall_agent,
    err_out: *mut *mut surgewall_error,
) -> Result<(), Status> {
    let msg = "this libsurgewall was built without the agent (cargo feature `agent`)";
    Err(report(err_out, Status::SURGEWALL_UNSUPPORTED, "agent", msg))
}

/// The port the agent serves on (the one chosen when port 0 was asked for). In a child made by
/// `fork()` the parent's agent does not run: its handle answers `SURGEWALL_INVALID_HANDLE`
/// here, and `surgewall_agent_stop` only releases it.
#[no_mangle]
pub extern "C" fn surgewall_agent_port(agent: *const surgewall_agent, out: *mut u16) -> Status {
    boundary(|| {
        non_null(out)?;
        let slot = surgewall_agent::get(agent)?;
        let guard = slot.lock().unwrap_or_else(|e| e.into_inner());
        #[cfg(feature = "agent")]
        let port = guard
            .as_ref()
            .filter(|a| a.is_alive())
            .map(|a| a.local_addr().port());
        #[cfg(not(feature = "agent"))]
        let port: Option<u16> = guard.map(|()| 0);
        write(out, port.ok_or(Status::SURGEWALL_INVALID_HANDLE)?)
    })
}

/// Stops the agent (requests in progress finish), joins its thread and frees the handle.
/// NULL is a no-op; a freed handle is `SURGEWALL_INVALID_HANDLE`. Safe to call while other
/// threads use breakers: they never wait on the agent.
#[no_mangle]
pub extern "C" fn surgewall_agent_stop(agent: *mut surgewall_agent) -> Status {
    if agent.is_null() {
        return Status::SURGEWALL_OK;
    }
    boundary(|| {
        let slot = surgewall_agent::remove(agent)?;
        let taken = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        #[cfg(feature = "agent")]
        if let Some(a) = taken {
            a.stop().map_err(|_| Status::SURGEWALL_PANIC)?;
        }
        #[cfg(not(feature = "agent"))]
        drop(taken);
        Ok(())
    })
}

/// Renders the metrics of every listed policy, as `GET /metrics` serves them, into `buf`
/// (NUL-terminated): for a service that already serves its own `/metrics`. `openmetrics`
/// chooses OpenMetrics 1.0 text over Prometheus text 0.0.4. When `cap` is too small, fails
/// with `SURGEWALL_BUFFER_TOO_SMALL` and writes the needed length (without the NUL) to
/// `*len_out`; ask with `cap` 0 first, and again with room to spare (metrics move).
#[no_mangle]
pub extern "C" fn surgewall_metrics_render(
    openmetrics: bool,
    buf: *mut u8,
    cap: usize,
    len_out: *mut usize,
) -> Status {
    boundary(|| {
        #[cfg(feature = "agent")]
        {
            use surgewall_agent_crate::metrics::{render, Format};
            let format = if openmetrics {
                Format::OpenMetrics
            } else {
                Format::Text
            };
            copy_out(&render(Catalog::global(), format), buf, cap, len_out)
        }
        #[cfg(not(feature = "agent"))]
        {
            let _ = (openmetrics, buf, cap, len_out, copy_out);
            Err(Status::SURGEWALL_UNSUPPORTED)
        }
    })
}

/// Takes a breaker off the catalog: the agent no longer shows it (for tests and internal
/// breakers). Its other handles and its behaviour are unchanged.
#[no_mangle]
pub extern "C" fn surgewall_breaker_unlist(b: *const surgewall_breaker) -> Status {
    boundary(|| {
        Catalog::global().leave_breaker(&surgewall_breaker::get_arc(b)?);
        Ok(())
    })
}

/// Takes a bulkhead off the catalog (see `surgewall_breaker_unlist`).
#[no_mangle]
pub extern "C" fn surgewall_bulkhead_unlist(b: *const surgewall_bulkhead) -> Status {
    boundary(|| {
        Catalog::global().leave_bulkhead(&surgewall_bulkhead::get(b)?.clone());
        Ok(())
    })
}
