use std::path::PathBuf;

use thiserror::Error;

/// Why a project file could not be read or written. Every variant names the file, and where it
/// applies the tensor, key or line at fault and what was expected.
#[derive(Debug, Error)]
pub enum ProjectError {
    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
    /// Writing a safetensors file failed; the source says why (the OS's reason for an I/O
    /// error such as a full disk).
    #[error("cannot write {}", path.display())]
    WriteSafetensors {
        path: PathBuf,
        #[source]
        source: safetensors::SafeTensorError,
    },
    #[error("{}: {setting}", path.display())]
    Setting {
        path: PathBuf,
        setting: super::config::SettingError,
    },
    #[error("{}: not saved: {setting}", path.display())]
    NotSaved {
        path: PathBuf,
        setting: super::config::SettingError,
    },
    #[error("{}:{line}: {message}", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{}: tensor `{tensor}`: {message}", path.display())]
    Tensor {
        path: PathBuf,
        tensor: String,
        message: String,
    },
    #[error("cannot {action} {}", path.display())]
    Hdf5 {
        action: String,
        path: PathBuf,
        #[source]
        source: hdf5_metno::Error,
    },
    #[error(
        "{} already exists and is not empty; a new project needs a missing or empty directory",
        dir.display()
    )]
    NotEmpty { dir: PathBuf },
    #[error("{} is not a crossclr project: {} is missing", dir.display(), config.display())]
    NotAProject { dir: PathBuf, config: PathBuf },
    #[error(
        "`{name}` cannot be a split name; use letters, digits, `_`, `-` and `.`, not starting with `.`"
    )]
    SplitName { name: String },
    #[error("{} has no features yet; {next_step}", dir.display())]
    NoFeatures { dir: PathBuf, next_step: String },
    #[error("split `{split}` has no feature file {}", path.display())]
    NoSuchSplit { split: String, path: PathBuf },
    #[error("`{name}` cannot be a run name: {problem}")]
    RunName { name: String, problem: &'static str },
    #[error(
        "run `{run}` is being written by another crossclr ({}); wait for it to finish or stop it, or name another run with --run ({})",
        if holder.is_empty() { "a process that is starting" } else { holder.as_str() },
        dir.display()
    )]
    RunLocked {
        run: String,
        dir: PathBuf,
        holder: String,
    },
    #[error("run `{run}` has no checkpoint at {}", path.display())]
    NoCheckpoint {
        run: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no run in {} has a checkpoint yet: run `crossclr train` first", dir.display())]
    NoRuns { dir: PathBuf },
}

impl ProjectError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::File {
            path: path.into(),
            message: message.into(),
        }
    }

    pub(crate) fn tensor(
        path: impl Into<PathBuf>,
        tensor: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::Tensor {
            path: path.into(),
            tensor: tensor.into(),
            message: message.into(),
        }
    }
}
