//! What the explorer draws, computed headless: the t-SNE layout of a set of embeddings and the
//! nearest-neighbour graphs under it, the similarity graph, the negatives of an anchor and the
//! pruning audit, neighbours, the search index and exports. Uses the library below it —
//! projects, encoders, heads, training's embedding and batching, the loss, eval, jobs — never the
//! app or the CLI.
//!
//! Every random step takes a seed, and every parallel loop writes per-item results that are
//! reduced in a fixed order, so the same input and seed give the same bytes whatever the number
//! of threads.

pub mod audit;
pub mod clusters;
pub mod compare;
pub mod demo_queries;
mod error;
pub mod export;
pub mod force_layout;
pub mod graph;
pub mod knn;
pub mod matrix;
pub mod negatives;
pub mod neighbours;
pub mod points;
mod quadtree;
pub mod quality;
pub mod rank;
pub mod replay;
pub mod samples;
pub mod search;
pub mod tsne;

pub use error::AnalysisError;
pub use knn::{KnnGraph, KnnMethod};
pub use matrix::{Matrix, MatrixError};
pub use points::{PointSource, ProjectPoints, SplitRange, project_points};
pub use search::{Hit, SearchError, SearchIndex};
pub use tsne::{
    Init, LearningRate, Method, Snapshot, Tsne, TsneConfig, TsneError, TsneJob, TsneOutcome,
    WarmStart, warm_start,
};
