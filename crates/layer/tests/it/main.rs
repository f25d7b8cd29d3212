//! Integration tests for hoist-layer: real directories, real archives, real tools.
//!
//! One test binary (see uv's `crates/uv/tests/it`): modules per area.

mod common;
mod craft;
mod determinism;
mod hostile;
mod roundtrip;
mod tools;
mod whiteouts;
