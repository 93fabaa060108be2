//! Helpers shared by the integration tests: the shared fixtures and tolerance checks.
#![allow(dead_code)]

use std::path::PathBuf;

/// `../shared` beside the repository root, where the fixtures and reference live.
pub fn shared_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared")
}

/// Relative error of `got` against `expected`, with `floor` as the smallest denominator.
pub fn relative_error(got: f64, expected: f64, floor: f64) -> f64 {
    if got == expected {
        return 0.0;
    }
    (got - expected).abs() / expected.abs().max(floor)
}
