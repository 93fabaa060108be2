//! What the explorer draws, computed headless: the t-SNE layout of a set of embeddings, the
//! nearest-neighbour graphs under it, and the figures that say how faithful a layout is.
//!
//! Every random step takes a seed, and every parallel loop writes per-item results that are
//! reduced in a fixed order, so the same input and seed give the same bytes whatever the number
//! of threads.

pub mod knn;
pub mod matrix;
pub mod quality;
pub mod tsne;

pub use knn::{KnnGraph, KnnMethod};
pub use matrix::{Matrix, MatrixError};
pub use tsne::{
    Init, LearningRate, Method, Snapshot, Tsne, TsneConfig, TsneError, TsneJob, TsneOutcome,
    WarmStart, warm_start,
};
