//! The committed header must be exactly what cbindgen generates from the sources.

#[path = "../tools/header.rs"]
mod header;

#[test]
fn committed_header_is_fresh() {
    let committed = std::fs::read_to_string(header::header_path()).unwrap_or_default();
    let generated = header::generate();
    if committed != generated {
        let first = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(committed.lines().count().min(generated.lines().count()));
        panic!(
            "include/surgewall.h is stale (first difference at line {}): run `make header`",
            first + 1
        );
    }
}
