//! Benchmarks of surgewall live in `benches/`; this crate is unpublished.
//!
//! Run them with `make bench` (or `cargo bench -p surgewall-benches`).
