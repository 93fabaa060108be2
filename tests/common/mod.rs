//! Helpers shared by the integration tests: the shared fixtures and tolerance checks.
#![allow(dead_code)]

use std::path::PathBuf;

/// `../shared` beside the repository root, where the fixtures and reference live
/// (`CROSSCLR_SHARED_DIR` overrides it).
pub fn shared_dir() -> PathBuf {
    let dir = std::env::var_os("CROSSCLR_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    assert!(
        dir.join("fixtures").is_dir(),
        "the shared fixtures are not at {} (set CROSSCLR_SHARED_DIR to the folder holding fixtures/)",
        dir.display()
    );
    dir
}

/// Relative error of `got` against `expected`, with `floor` as the smallest denominator.
pub fn relative_error(got: f64, expected: f64, floor: f64) -> f64 {
    if got == expected {
        return 0.0;
    }
    (got - expected).abs() / expected.abs().max(floor)
}
