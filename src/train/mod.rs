//! Training: batches of whole videos, the objective (CrossCLR or a baseline at the clip and video
//! levels), RAdam with warm-up and reduce-on-plateau, validation, checkpoints and resumable state.
//! Files are written by the caller through [`RunStore`]; progress goes out as [`TrainEvent`]s.

pub mod data;
pub mod evaluate;
pub mod objective;
pub mod radam;
pub mod run;
pub mod runs;
pub mod schedule;
pub mod state;

pub use data::{BatchLimits, CorpusView, PackedView, TrainBatch, make_batch};
pub use evaluate::{RetrievalReport, SplitEmbeddings, embed_corpus, retrieval};
pub use objective::Objective;
pub use radam::{RAdam, RAdamConfig};
pub use run::{
    EpochRecord, MemoryStore, Outcome, RunStore, TrainConfig, TrainEvent, epoch_batches, train,
};
pub use runs::{
    EvaluatedRun, PreparedRun, RunRequest, RunSummary, SplitRole, default_run_name, embed_split,
    evaluate_run, load_run_head, load_split, run_settings, training_view,
};
pub use schedule::{LrSchedule, Plateau, PlateauConfig};

use std::path::PathBuf;

use thiserror::Error;

use crate::project::ProjectError;
use crate::project::config::SettingError;
use crate::project::encoders::EncoderMismatch;

/// Why a run could not be trained, continued, loaded or evaluated. Epochs and steps are counted
/// from 1, as the progress lines and `metrics.jsonl` count them.
#[derive(Debug, Error)]
pub enum TrainError {
    #[error(
        "epoch {epoch}, step {step}: the loss is not finite; first non-finite value in {culprit}. {}",
        match kept {
            Some(best) => format!("The checkpoint of epoch {best} and the state saved before this epoch are kept."),
            None => "Nothing was saved: no epoch had finished.".to_string(),
        }
    )]
    NonFinite {
        epoch: usize,
        step: usize,
        culprit: String,
        /// The epoch whose checkpoint is on disk, if any.
        kept: Option<usize>,
    },
    #[error("training data: {0}")]
    Data(String),
    #[error("training settings: {0}")]
    Config(String),
    #[error("settings: {0}")]
    Settings(#[from] SettingError),
    #[error("the saved run state: {0}")]
    State(String),
    #[error("the saved run state: {what}")]
    StateFormat {
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(
        "run `{run}` exists in {}; continue it with --resume, or name a new one with --run",
        dir.display()
    )]
    RunExists { run: String, dir: PathBuf },
    #[error(
        "run `{run}` has nothing to resume: no saved state in {}; start it without --resume",
        dir.display()
    )]
    NothingToResume { run: String, dir: PathBuf },
    #[error(transparent)]
    NoSplit(Box<MissingSplit>),
    #[error("the {0} thread panicked")]
    Panicked(&'static str),
    #[error(transparent)]
    Encoders(#[from] EncoderMismatch),
    #[error(transparent)]
    Project(Box<ProjectError>),
    #[error(transparent)]
    Loss(#[from] crate::crossclr::LossError),
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl From<ProjectError> for TrainError {
    fn from(error: ProjectError) -> Self {
        Self::Project(Box::new(error))
    }
}

/// A split a run needs that the project does not have.
#[derive(Debug, Error)]
#[error(
    "the {role} split `{split}` is not in {} (splits: {}); {hint}",
    dir.display(),
    if splits.is_empty() { "none".to_string() } else { splits.join(", ") }
)]
pub struct MissingSplit {
    pub role: &'static str,
    pub split: String,
    pub dir: PathBuf,
    pub splits: Vec<String>,
    pub hint: String,
}
