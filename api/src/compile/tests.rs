//! Golden tests live in `api/tests/golden.rs`; these cover compiler internals.
