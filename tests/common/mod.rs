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

/// Runs the built `crossclr` binary with `args`: whether it succeeded, its stdout and its stderr.
pub fn crossclr<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> (bool, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_crossclr"))
        .args(args)
        .output()
        .expect("run crossclr");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
