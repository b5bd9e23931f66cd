//! The library version, as a string and as a number that matches the header's macros.

use std::ffi::c_char;

/// The version as "MAJOR.MINOR.PATCH", static and NUL-terminated.
#[no_mangle]
pub extern "C" fn surgewall_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The version as `MAJOR * 10000 + MINOR * 100 + PATCH`: compare it with
/// `SURGEWALL_VERSION_NUMBER` from the header to catch a header/library mismatch.
#[no_mangle]
pub extern "C" fn surgewall_version_number() -> u32 {
    version_number()
}

pub(crate) const fn version_number() -> u32 {
    parse(env!("CARGO_PKG_VERSION_MAJOR")) * 10000
        + parse(env!("CARGO_PKG_VERSION_MINOR")) * 100
        + parse(env!("CARGO_PKG_VERSION_PATCH"))
}

const fn parse(s: &str) -> u32 {
    let b = s.as_bytes();
    let mut i = 0;
    let mut n = 0;
    while i < b.len() {
        n = n * 10 + (b[i] - b'0') as u32;
        i += 1;
    }
    n
}
