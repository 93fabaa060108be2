//! Helpers the integration tests share: the shared fixtures, tolerance checks, the binary, and
//! (in `media` and `model`) videos made by FFmpeg and small heads.
#![allow(dead_code)]

pub mod media;
pub mod model;

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

/// Cosine similarity of two vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

/// A fixture's matrix (a JSON list of rows) as a tensor of `dtype`.
pub fn matrix(value: &serde_json::Value, dtype: candle_core::DType) -> candle_core::Tensor {
    let rows: Vec<Vec<f64>> = serde_json::from_value(value.clone()).expect("matrix of numbers");
    let (n, m) = (rows.len(), rows[0].len());
    let flat: Vec<f64> = rows.into_iter().flatten().collect();
    candle_core::Tensor::from_vec(flat, (n, m), &candle_core::Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}
