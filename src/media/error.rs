use std::path::PathBuf;

use thiserror::Error;

use crate::project::ProjectError;

/// Why a video could not be read, sampled or written. Every variant about a file names it and
/// says what was wrong with it, so a batch can list its bad files with reasons.
#[derive(Debug, Error)]
pub enum MediaError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: the file is empty (0 bytes)", path.display())]
    Empty { path: PathBuf },
    #[error("{}: not a media file FFmpeg can read ({detail})", path.display())]
    NotMedia { path: PathBuf, detail: String },
    #[error("{}: damaged or truncated {container} file ({detail})", path.display())]
    Damaged {
        path: PathBuf,
        container: &'static str,
        detail: String,
    },
    #[error("{}: no video stream (it holds {streams})", path.display())]
    NoVideo { path: PathBuf, streams: String },
    #[error("{}: this FFmpeg build has no decoder for the video codec `{codec}`", path.display())]
    UnsupportedCodec { path: PathBuf, codec: String },
    #[error(
        "{}: truncated: the video data ends at {data_ends_s:.2} s but frames were asked for up to {wanted_s:.2} s{}",
        path.display(),
        duration_s.map(|d| format!(" of a stated {d:.2} s")).unwrap_or_default()
    )]
    Truncated {
        path: PathBuf,
        data_ends_s: f64,
        wanted_s: f64,
        duration_s: Option<f64>,
    },
    #[error("{}: decoding failed: {detail}", path.display())]
    Decode { path: PathBuf, detail: String },
    #[error("{}: {detail}", path.display())]
    BadRequest { path: PathBuf, detail: String },
    #[error("{}: encoding failed: {detail}", path.display())]
    Encode { path: PathBuf, detail: String },
    #[error(transparent)]
    Store(#[from] ProjectError),
    #[error("cancelled")]
    Cancelled,
}

impl MediaError {
    pub(crate) fn decode(path: impl Into<PathBuf>, detail: impl ToString) -> Self {
        Self::Decode {
            path: path.into(),
            detail: detail.to_string(),
        }
    }

    pub(crate) fn encode(path: impl Into<PathBuf>, detail: impl ToString) -> Self {
        Self::Encode {
            path: path.into(),
            detail: detail.to_string(),
        }
    }

    pub(crate) fn bad_request(path: impl Into<PathBuf>, detail: impl ToString) -> Self {
        Self::BadRequest {
            path: path.into(),
            detail: detail.to_string(),
        }
    }

    /// True for the errors that say the file itself is unusable (as opposed to a cancelled job,
    /// a bad request or a failure to write the cache).
    pub fn is_bad_file(&self) -> bool {
        matches!(
            self,
            Self::Io { .. }
                | Self::Empty { .. }
                | Self::NotMedia { .. }
                | Self::Damaged { .. }
                | Self::NoVideo { .. }
                | Self::UnsupportedCodec { .. }
                | Self::Truncated { .. }
                | Self::Decode { .. }
        )
    }
}
