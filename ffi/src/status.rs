//! `surgewall_status`: what every fallible function returns.
//!
//! Numbers are stable and never reused: 0 is success, 1xx are usage errors (the caller passed
//! something wrong), 2xx are policy outcomes (the call was rejected, the result was late), 3xx
//! are I/O errors. A retired code stays here as a comment.

use std::ffi::{c_char, CStr};

/// The result of every fallible function. `SURGEWALL_OK` is 0.
///
/// cbindgen:prefix-with-name=false
/// cbindgen:rename-all=None
#[repr(i32)]
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum surgewall_status {
    /// Success.
    SURGEWALL_OK = 0,

    /// A required pointer argument was NULL.
    SURGEWALL_NULL_ARG = 100,
    /// A handle was freed, consumed, of another type, or never issued.
    SURGEWALL_INVALID_HANDLE = 101,
    /// An argument is out of range (a NaN, a negative duration, an unknown enum value, ...).
    SURGEWALL_INVALID_ARG = 102,
    /// A string argument is not valid UTF-8.
    SURGEWALL_INVALID_UTF8 = 103,
    /// A configuration was rejected; the error object names the field and the reason.
    SURGEWALL_INVALID_CONFIG = 104,
    /// A manual transition that is not allowed (CLOSED -> HALF_OPEN).
    SURGEWALL_INVALID_TRANSITION = 105,
    /// A permit this breaker did not issue (zeroed, forged, or from another breaker).
    SURGEWALL_INVALID_PERMIT = 106,
    /// A result no outstanding permit can explain: a half-open probe reported or released
    /// twice (each probe carries its number in the episode, so this holds whatever the other
    /// probes do), or a result for an OPEN breaker. Not caught in CLOSED: a permit recorded
    /// twice there is counted twice (the breaker keeps no record of permits out in CLOSED;
    /// that would cost every call a second atomic operation).
    SURGEWALL_UNEXPECTED_RESULT = 107,
    /// The caller's buffer is too small; the needed length was written.
    SURGEWALL_BUFFER_TOO_SMALL = 108,
    /// A table is full (too many live handles).
    SURGEWALL_LIMIT_EXCEEDED = 109,
    /// A panic was caught at the boundary: a bug in surgewall, please report it.
    SURGEWALL_PANIC = 110,
    /// Already running: one agent per process (stop the first).
    SURGEWALL_ALREADY_RUNNING = 111,
    /// This build of the library lacks the feature (the agent: cargo feature `agent`).
    SURGEWALL_UNSUPPORTED = 112,

    /// Rejected: the breaker is OPEN.
    SURGEWALL_REJECTED_OPEN = 200,
    /// Rejected: the breaker is HALF_OPEN and all probe slots are taken.
    SURGEWALL_REJECTED_HALF_OPEN = 201,
    /// Rejected: the breaker was forced open.
    SURGEWALL_REJECTED_FORCED_OPEN = 202,
    /// Rejected: the bulkhead is full.
    SURGEWALL_BULKHEAD_FULL = 203,
    /// A wait ran out of time.
    SURGEWALL_TIMEOUT = 204,
    /// A retry schedule has no attempts left.
    SURGEWALL_RETRIES_EXHAUSTED = 205,
    /// A retry budget refused the retry.
    SURGEWALL_RETRY_BUDGET_EXHAUSTED = 206,
    /// The result's permit is from an older generation: dropped and counted.
    SURGEWALL_LATE_RESULT = 207,
    /// No event is waiting.
    SURGEWALL_NO_EVENT = 208,
    /// A keyed registry is at its key cap and rejects new keys.
    SURGEWALL_REGISTRY_FULL = 209,
    /// A keyed registry holds no such key (it was never used, or was evicted).
    SURGEWALL_NOT_FOUND = 210,
    /// The object was closed while the caller waited on it (`surgewall_bulkhead_close`).
    SURGEWALL_CLOSED = 211,

    /// An operating-system call failed (an address that cannot be bound; see the error object).
    SURGEWALL_IO_ERROR = 300,
}

pub(crate) use surgewall_status as Status;

impl surgewall_status {
    /// A static, NUL-terminated description.
    pub(crate) fn message(self) -> &'static CStr {
        use surgewall_status::*;
        match self {
            SURGEWALL_OK => c"ok",
            SURGEWALL_NULL_ARG => c"a required pointer argument was NULL",
            SURGEWALL_INVALID_HANDLE => {
                c"invalid handle: freed, consumed, of another type, or never issued"
            }
            SURGEWALL_INVALID_ARG => c"an argument is out of range",
            SURGEWALL_INVALID_UTF8 => c"a string argument is not valid UTF-8",
            SURGEWALL_INVALID_CONFIG => c"invalid configuration (see the error object)",
            SURGEWALL_INVALID_TRANSITION => c"manual transition not allowed (closed -> half_open)",
            SURGEWALL_INVALID_PERMIT => c"the permit was not issued by this breaker",
            SURGEWALL_UNEXPECTED_RESULT => {
                c"no outstanding permit explains this result (recorded twice?)"
            }
            SURGEWALL_BUFFER_TOO_SMALL => c"the buffer is too small",
            SURGEWALL_LIMIT_EXCEEDED => c"too many live handles",
            SURGEWALL_PANIC => c"internal panic caught at the C boundary (a bug)",
            SURGEWALL_ALREADY_RUNNING => c"already running: one agent per process",
            SURGEWALL_UNSUPPORTED => c"not supported by this build of the library",
            SURGEWALL_REJECTED_OPEN => c"rejected: circuit open",
            SURGEWALL_REJECTED_HALF_OPEN => c"rejected: circuit half-open, all probe slots taken",
            SURGEWALL_REJECTED_FORCED_OPEN => c"rejected: circuit forced open",
            SURGEWALL_BULKHEAD_FULL => c"rejected: bulkhead full",
            SURGEWALL_TIMEOUT => c"timed out",
            SURGEWALL_RETRIES_EXHAUSTED => c"retries exhausted",
            SURGEWALL_RETRY_BUDGET_EXHAUSTED => c"retry budget exhausted",
            SURGEWALL_LATE_RESULT => c"late result dropped (permit from an older generation)",
            SURGEWALL_NO_EVENT => c"no event",
            SURGEWALL_REGISTRY_FULL => c"registry full: the key cap is reached",
            SURGEWALL_NOT_FOUND => c"not found: the registry holds no such key",
            SURGEWALL_CLOSED => c"closed while waiting",
            SURGEWALL_IO_ERROR => c"an operating-system call failed (see the error object)",
        }
    }

    /// The status for a raw number, if it is one.
    fn from_i32(v: i32) -> Option<Self> {
        use surgewall_status::*;
        const ALL: [surgewall_status; 27] = [
            SURGEWALL_OK,
            SURGEWALL_NULL_ARG,
            SURGEWALL_INVALID_HANDLE,
            SURGEWALL_INVALID_ARG,
            SURGEWALL_INVALID_UTF8,
            SURGEWALL_INVALID_CONFIG,
            SURGEWALL_INVALID_TRANSITION,
            SURGEWALL_INVALID_PERMIT,
            SURGEWALL_UNEXPECTED_RESULT,
            SURGEWALL_BUFFER_TOO_SMALL,
            SURGEWALL_LIMIT_EXCEEDED,
            SURGEWALL_PANIC,
            SURGEWALL_ALREADY_RUNNING,
            SURGEWALL_UNSUPPORTED,
            SURGEWALL_REJECTED_OPEN,
            SURGEWALL_REJECTED_HALF_OPEN,
            SURGEWALL_REJECTED_FORCED_OPEN,
            SURGEWALL_BULKHEAD_FULL,
            SURGEWALL_TIMEOUT,
            SURGEWALL_RETRIES_EXHAUSTED,
            SURGEWALL_RETRY_BUDGET_EXHAUSTED,
            SURGEWALL_LATE_RESULT,
            SURGEWALL_NO_EVENT,
            SURGEWALL_REGISTRY_FULL,
            SURGEWALL_NOT_FOUND,
            SURGEWALL_CLOSED,
            SURGEWALL_IO_ERROR,
        ];
        ALL.into_iter().find(|s| *s as i32 == v)
    }
}

/// A static, NUL-terminated message for `status` (also for numbers that are no status).
#[no_mangle]
pub extern "C" fn surgewall_status_str(status: i32) -> *const c_char {
    match surgewall_status::from_i32(status) {
        Some(s) => s.message().as_ptr(),
        None => c"unknown status".as_ptr(),
    }
}

/// The panic boundary: runs `body`, turning a panic into `SURGEWALL_PANIC`.
///
/// Every export goes through it (the breaker hot path through [`fast_or`], which puts each
/// half behind one), so no unwind ever crosses the C ABI (invariant I11).
#[inline(always)]
pub(crate) fn boundary(body: impl FnOnce() -> Result<(), Status>) -> Status {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(Ok(())) => Status::SURGEWALL_OK,
        Ok(Err(s)) => s,
        Err(_) => Status::SURGEWALL_PANIC,
    }
}

/// The panic boundary around a hot path split in two: `fast` runs inline and says whether it
/// handled the call (then `SURGEWALL_OK`); if it did not, `slow` does (an out-of-line function
/// with its own [`boundary`], so that its calls and landing pads stay out of the caller's
/// frame). `fast` must leave no trace when it returns false.
#[inline(always)]
pub(crate) fn fast_or(fast: impl FnOnce() -> bool, slow: impl FnOnce() -> Status) -> Status {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(fast)) {
        Ok(true) => Status::SURGEWALL_OK,
        Ok(false) => slow(),
        Err(_) => Status::SURGEWALL_PANIC,
    }
}

/// Writes `value` through `out`, or fails with `NULL_ARG`.
#[inline(always)]
pub(crate) fn write<T>(out: *mut T, value: T) -> Result<(), Status> {
    if out.is_null() {
        return Err(Status::SURGEWALL_NULL_ARG);
    }
    // SAFETY: non-null; the caller promises it points to a writable T (C contract).
    unsafe { out.write(value) };
    Ok(())
}

/// Checks an out-pointer before any work is done, so nothing happens when it is NULL.
#[inline(always)]
pub(crate) fn non_null<T>(p: *const T) -> Result<(), Status> {
    if p.is_null() {
        Err(Status::SURGEWALL_NULL_ARG)
    } else {
        Ok(())
    }
}

/// Reads bytes given as pointer + length (`ptr` may be NULL when `len` is 0).
pub(crate) fn bytes<'a>(ptr: *const u8, len: usize) -> Result<&'a [u8], Status> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Status::SURGEWALL_NULL_ARG);
    }
    if len > isize::MAX as usize {
        return Err(Status::SURGEWALL_INVALID_ARG);
    }
    // SAFETY: non-null, and the caller promises `len` readable bytes (C contract).
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Reads a UTF-8 string given as pointer + length (`ptr` may be NULL when `len` is 0).
pub(crate) fn utf8<'a>(ptr: *const u8, len: usize) -> Result<&'a str, Status> {
    std::str::from_utf8(bytes(ptr, len)?).map_err(|_| Status::SURGEWALL_INVALID_UTF8)
}

/// A name (of a breaker, a bulkhead, a shared retry budget): UTF-8 without NUL, since names come
/// back to C as NUL-terminated strings (`_name`, events, errors) and an embedded NUL would cut
/// them short. On failure the status and the message for the `name` field of an error.
pub(crate) fn name<'a>(ptr: *const u8, len: usize) -> Result<&'a str, (Status, &'static str)> {
    let s = utf8(ptr, len).map_err(|s| (s, "the name must be valid UTF-8"))?;
    if s.contains('\0') {
        return Err((
            Status::SURGEWALL_INVALID_ARG,
            "the name must not contain a NUL byte",
        ));
    }
    Ok(s)
}

/// Copies `s` into a caller buffer, NUL-terminated. When it does not fit, fails with
/// `BUFFER_TOO_SMALL` and writes the needed length (without the NUL) to `out_len`, so a caller
/// may ask with `cap` 0 first. On success `out_len` receives the length too.
pub(crate) fn copy_out(
    s: &str,
    buf: *mut u8,
    cap: usize,
    out_len: *mut usize,
) -> Result<(), Status> {
    non_null(out_len)?;
    if cap > 0 {
        non_null(buf)?;
    }
    // SAFETY: checked non-null above.
    unsafe { out_len.write(s.len()) };
    if cap < s.len() + 1 {
        return Err(Status::SURGEWALL_BUFFER_TOO_SMALL);
    }
    // SAFETY: `buf` is non-null with room for `cap >= len + 1` bytes (C contract).
    unsafe {
        std::ptr::copy_nonoverlapping(s.as_ptr(), buf, s.len());
        buf.add(s.len()).write(0);
    }
    Ok(())
}
