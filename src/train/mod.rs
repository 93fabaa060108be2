//! Training: batches of whole videos, the objective (CrossCLR or a baseline at the clip and video
//! levels), RAdam with warm-up and reduce-on-plateau, validation, checkpoints and resumable state.
//! Files are written by the caller through [`RunStore`]; progress goes out as [`TrainEvent`]s.

pub mod data;
pub mod evaluate;
pub mod objective;
pub mod radam;
pub mod run;
pub mod schedule;
pub mod state;

pub use data::{BatchLimits, CorpusView, PackedView, TrainBatch, make_batch};
pub use evaluate::{RetrievalReport, SplitEmbeddings, embed_corpus, retrieval};
pub use objective::{LossKind, LossSettings, Objective};
pub use radam::{RAdam, RAdamConfig};
pub use run::{EpochRecord, MemoryStore, Outcome, RunStore, TrainConfig, TrainEvent, train};
pub use schedule::{LrSchedule, Plateau, PlateauConfig};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum TrainError {
    #[error(
        "epoch {epoch}, step {step}: the loss is not finite; first non-finite value in {culprit}. The last good checkpoint and state are kept."
    )]
    NonFinite {
        epoch: usize,
        step: usize,
        culprit: String,
    },
    #[error("training data: {0}")]
    Data(String),
    #[error("training settings: {0}")]
    Config(String),
    #[error("saved run state: {0}")]
    State(String),
    #[error("writing the run: {0}")]
    Store(String),
    #[error(transparent)]
    Loss(#[from] crate::crossclr::LossError),
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}
