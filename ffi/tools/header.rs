//! Generates `include/surgewall.h` (shared by `examples/gen_header.rs` and
//! `tests/header_fresh.rs`, so the check and the generator can never disagree).

use std::path::{Path, PathBuf};

/// The crate directory of surgewall-ffi.
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where the committed header lives.
pub fn header_path() -> PathBuf {
    crate_dir().join("../include/surgewall.h")
}

/// The version macros, generated from the crate version (never written by hand).
fn version_macros() -> String {
    let (major, minor, patch) = (
        env!("CARGO_PKG_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MINOR"),
        env!("CARGO_PKG_VERSION_PATCH"),
    );
    let number: u32 = major.parse::<u32>().unwrap() * 10000
        + minor.parse::<u32>().unwrap() * 100
        + patch.parse::<u32>().unwrap();
    format!(
        r#"
/* The version of this header. Compare SURGEWALL_VERSION_NUMBER with surgewall_version_number()
 * at start-up to catch a header/library mismatch. */
#define SURGEWALL_VERSION_MAJOR {major}
#define SURGEWALL_VERSION_MINOR {minor}
#define SURGEWALL_VERSION_PATCH {patch}
#define SURGEWALL_VERSION_NUMBER {number} /* MAJOR * 10000 + MINOR * 100 + PATCH */
#define SURGEWALL_VERSION_STRING "{major}.{minor}.{patch}"

/*
 * Conventions
 * - Every fallible function returns a surgewall_status; SURGEWALL_OK is 0. Out-parameters are
 *   written only on SURGEWALL_OK, except where a function says otherwise.
 * - Handles are typed opaque pointers. A NULL, freed, consumed or foreign handle is reported
 *   (SURGEWALL_NULL_ARG, SURGEWALL_INVALID_HANDLE), never undefined behaviour. Freeing a handle
 *   while another thread still uses it is the caller's bug, as with any C object.
 * - Strings are passed as pointer + length and must be UTF-8.
 * - No function keeps a pointer you pass in after it returns.
 *
 * Thread safety
 * - Functions taking a `const` handle (breakers, subscriptions aside) may be called from any
 *   thread at any time; they are lock-free.
 * - Configuration builders (surgewall_breaker_config) are single-owner: use one from one thread.
 * - A subscription is polled from one thread at a time.
 */
"#
    )
}

/// The header as cbindgen generates it for the current sources.
pub fn generate() -> String {
    let dir = crate_dir();
    let mut config =
        cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("ffi/cbindgen.toml");
    config.after_includes = Some(version_macros());
    let bindings = cbindgen::Builder::new()
        .with_crate(&dir)
        .with_config(config)
        .generate()
        .expect("cbindgen could not generate the header");
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("the header is UTF-8")
}

/// Writes the header; returns whether it changed.
#[allow(dead_code)] // used by the generator, not by the freshness test
pub fn write(path: &Path) -> bool {
    let new = generate();
    let old = std::fs::read_to_string(path).unwrap_or_default();
    if old == new {
        return false;
    }
    std::fs::write(path, new).expect("write include/surgewall.h");
    true
}
