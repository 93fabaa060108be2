use std::path::PathBuf;

use thiserror::Error;

use crate::crossclr::LossError;
use crate::project::ProjectError;
use crate::train::TrainError;

use super::SearchError;

/// Why a graph, an explanation of the negatives, an audit, a neighbour list or an export could not
/// be made. Messages name the file, key or setting at fault and what was expected.
#[derive(Debug, Error)]
pub enum AnalysisError {
    #[error("no {what} `{key}` in {place}{}", hint.as_deref().map(|h| format!("; {h}")).unwrap_or_default())]
    UnknownKey {
        what: &'static str,
        key: String,
        place: String,
        hint: Option<String>,
    },
    #[error("{0}")]
    Settings(String),
    #[error("{}: {what}", path.display())]
    File { path: PathBuf, what: String },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cancelled; nothing was written")]
    Cancelled,
    #[error(transparent)]
    Train(Box<TrainError>),
    #[error(transparent)]
    Project(Box<ProjectError>),
    #[error(transparent)]
    Search(Box<SearchError>),
    #[error(transparent)]
    Loss(#[from] LossError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl From<TrainError> for AnalysisError {
    fn from(error: TrainError) -> Self {
        Self::Train(Box::new(error))
    }
}

impl From<ProjectError> for AnalysisError {
    fn from(error: ProjectError) -> Self {
        Self::Project(Box::new(error))
    }
}

impl From<SearchError> for AnalysisError {
    fn from(error: SearchError) -> Self {
        Self::Search(Box::new(error))
    }
}

impl AnalysisError {
    pub(crate) fn write(
        path: impl Into<PathBuf>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Write {
            path: path.into(),
            source: Box::new(source),
        }
    }

    pub(crate) fn file(path: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        Self::File {
            path: path.into(),
            what: what.into(),
        }
    }
}
