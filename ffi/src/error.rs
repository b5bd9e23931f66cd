//! `surgewall_error`: an owned error with a message, returned by constructors and config.

use std::ffi::{c_char, CString};

use crate::handle::{opaque_handle, Handle};
use crate::status::Status;

/// The value behind a `surgewall_error` handle.
pub struct ErrorObj {
    status: Status,
    field: CString,
    message: CString,
}

/// An error returned by a constructor: its status, the configuration field it is about
/// (may be empty) and a message. Free it with `surgewall_error_free`.
pub struct surgewall_error {
    _private: [u8; 0],
}

opaque_handle!(surgewall_error => ErrorObj, tag 1);

fn c_string(s: &str) -> CString {
    // Messages never contain NUL; if one did, cut it there rather than fail.
    CString::new(s.split('\0').next().unwrap_or_default()).unwrap_or_default()
}

/// Hands an error to the caller through an optional `err_out`, and returns its status.
pub(crate) fn report(
    err_out: *mut *mut surgewall_error,
    status: Status,
    field: &str,
    message: &str,
) -> Status {
    if !err_out.is_null() {
        let obj = ErrorObj {
            status,
            field: c_string(field),
            message: c_string(message),
        };
        if let Ok(h) = surgewall_error::insert(obj) {
            // SAFETY: non-null; the caller promises a writable pointer (C contract).
            unsafe { err_out.write(h) };
        }
    }
    status
}

impl From<engine::ConfigError> for ErrorObj {
    fn from(e: engine::ConfigError) -> Self {
        ErrorObj {
            status: Status::SURGEWALL_INVALID_CONFIG,
            field: c_string(e.field()),
            message: c_string(e.reason()),
        }
    }
}

pub(crate) fn report_config(err_out: *mut *mut surgewall_error, e: &engine::ConfigError) -> Status {
    report(
        err_out,
        Status::SURGEWALL_INVALID_CONFIG,
        e.field(),
        e.reason(),
    )
}

/// The error's status.
#[no_mangle]
pub extern "C" fn surgewall_error_status(err: *const surgewall_error) -> i32 {
    match surgewall_error::get(err) {
        Ok(e) => e.status as i32,
        Err(s) => s as i32,
    }
}

/// The error's message, NUL-terminated, valid until the error is freed; a static message
/// when `err` is not a live error handle.
#[no_mangle]
pub extern "C" fn surgewall_error_message(err: *const surgewall_error) -> *const c_char {
    match surgewall_error::get(err) {
        Ok(e) => e.message.as_ptr(),
        Err(s) => s.message().as_ptr(),
    }
}

/// The configuration field the error is about (`"failure_rate"`, ...), or `""`.
#[no_mangle]
pub extern "C" fn surgewall_error_field(err: *const surgewall_error) -> *const c_char {
    match surgewall_error::get(err) {
        Ok(e) => e.field.as_ptr(),
        Err(_) => c"".as_ptr(),
    }
}

/// Frees an error. NULL is a no-op; a second free is `SURGEWALL_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn surgewall_error_free(err: *mut surgewall_error) -> Status {
    surgewall_error::free(err)
}
