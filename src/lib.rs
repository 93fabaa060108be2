//! crossclr: train, evaluate and explore CrossCLR joint video–text embeddings.
//!
//! Data flows one way (DESIGN.md §3): media → features → model → embeddings → analysis → views.

pub mod analysis;
pub mod cli;
pub mod crossclr;
pub mod encode;
pub mod eval;
pub mod hash;
pub mod ingest;
pub mod jobs;
pub mod media;
pub mod model;
pub mod process;
pub mod project;
pub mod synth;
pub mod train;
