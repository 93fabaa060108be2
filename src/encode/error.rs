use std::path::PathBuf;

use thiserror::Error;

use crate::project::encoders::EncoderMismatch;

#[derive(Debug, Error)]
pub enum EncodeError {
    #[error("{path} is missing ({what})")]
    MissingFile { path: PathBuf, what: &'static str },
    #[error("cannot read {path}: {reason}")]
    BadFile { path: PathBuf, reason: String },
    /// A weights file whose tensors do not fit the model its config describes; candle's message
    /// names the tensor.
    #[error("the weights in {path} do not fit the model: {source}")]
    Weights {
        path: PathBuf,
        source: candle_core::Error,
    },
    #[error("{path}: {what} is not supported ({reason})")]
    Unsupported {
        path: PathBuf,
        what: String,
        reason: String,
    },
    #[error("tokenizing sentence {index}: {reason}")]
    Tokenize { index: usize, reason: String },
    #[error("frame {index}: {reason}")]
    BadFrame { index: usize, reason: String },
    #[error(
        "no directory for model folders: set CROSSCLR_MODELS_DIR (no home directory was found)"
    )]
    NoModelsDir,
    #[error("unknown {side} encoder `{name}`: {reason}")]
    UnknownEncoder {
        side: &'static str,
        name: String,
        reason: String,
    },
    #[error("cannot make the {side} encoder `{name}`")]
    Build {
        side: &'static str,
        name: String,
        #[source]
        source: Box<EncodeError>,
    },
    #[error(transparent)]
    Mismatch(#[from] EncoderMismatch),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}
