//! Reading a model folder's files, with errors that name the file and what it should have held.

use std::path::Path;

use serde::de::DeserializeOwned;

use super::EncodeError;

fn read_error(path: &Path, what: &'static str, error: std::io::Error) -> EncodeError {
    match error.kind() {
        std::io::ErrorKind::NotFound => EncodeError::MissingFile {
            path: path.to_path_buf(),
            what,
        },
        _ => EncodeError::BadFile {
            path: path.to_path_buf(),
            reason: error.to_string(),
        },
    }
}

/// Parses the JSON file at `path`.
pub(super) fn read_json<T: DeserializeOwned>(
    path: &Path,
    what: &'static str,
) -> Result<T, EncodeError> {
    let text = std::fs::read_to_string(path).map_err(|e| read_error(path, what, e))?;
    serde_json::from_str(&text).map_err(|e| EncodeError::BadFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// The bytes of a weights file. Read whole rather than memory-mapped: mapping is `unsafe` (the
/// file could change underneath), and these models are small.
pub(super) fn read_weights(path: &Path) -> Result<Vec<u8>, EncodeError> {
    std::fs::read(path).map_err(|e| read_error(path, "the model's weights", e))
}
