//! Every integration test in one binary: each test binary links the whole crate (candle, FFmpeg,
//! and soon the GUI stack), so one link instead of twenty keeps CI's build time and disk down.
//! Run one group with `cargo test --test suite <module>::`.

mod support;

mod analysis_cli;
// The in-process explorer tests need the app, which a build without `explorer` lacks.
#[cfg(feature = "explorer")]
mod app_ui;
mod app_window;
mod cli;
mod crossclr_fixtures;
mod crossclr_losses;
mod encode_builtin;
mod encode_minilm;
mod encode_weights;
mod faults;
mod ingest_cli;
#[cfg(target_os = "linux")]
mod ingest_memory;
mod media_decode;
mod media_files;
mod model_checkpoint;
mod model_heads;
mod model_overfit;
mod model_timing;
mod project_captions;
mod project_cli;
mod project_coot;
mod project_store;
mod train_cli;
mod train_synth;
