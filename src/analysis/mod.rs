//! What the explorer draws, computed headless: the search index (and, as the analysis issue
//! lands, layouts, the similarity graph and the pruning audit). Uses the library below it —
//! projects, encoders, heads, training's embedding of a split, the loss, eval, jobs — never the
//! app or the CLI.

pub mod audit;
mod error;
pub mod export;
pub mod graph;
pub mod negatives;
pub mod neighbours;
pub mod rank;
pub mod replay;
pub mod samples;
pub mod search;

pub use error::AnalysisError;
pub use search::{Hit, SearchError, SearchIndex};
