//! The run directory, `runs/<name>/`: every file a run writes is named here, the lock that keeps
//! two writers apart, which run is the latest, and the format of the embeddings file that
//! evaluation writes and the explorer reads.

use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use super::atomic::write_safetensors_atomic;
use super::error::ProjectError;
use super::{Project, is_valid_split_name};

/// The longest run name accepted: it becomes a folder name.
const MAX_RUN_NAME: usize = 100;

/// A run's name: one folder under `runs/`, so it may not be empty, hide (leading `.`), climb
/// (`..`) or nest (`a/b`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RunName(String);

impl RunName {
    pub fn new(name: &str) -> Result<Self, ProjectError> {
        let problem = if name.is_empty() {
            Some("it is empty")
        } else if name.len() > MAX_RUN_NAME {
            Some("it is longer than 100 bytes")
        } else if !is_valid_split_name(name) {
            Some("use letters, digits, `_`, `-` and `.`, not starting with `.`")
        } else {
            None
        };
        match problem {
            Some(problem) => Err(ProjectError::RunName {
                name: name.to_string(),
                problem,
            }),
            None => Ok(Self(name.to_string())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RunName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for RunName {
    type Err = ProjectError;
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::new(name)
    }
}

/// The files of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    name: RunName,
    dir: PathBuf,
}

impl RunDir {
    pub fn new(runs_dir: &Path, name: RunName) -> Self {
        Self {
            dir: runs_dir.join(name.as_str()),
            name,
        }
    }

    pub fn name(&self) -> &RunName {
        &self.name
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// One line per epoch (`train::EpochRecord`).
    pub fn metrics(&self) -> PathBuf {
        self.dir.join("metrics.jsonl")
    }

    /// The best epoch's weights.
    pub fn checkpoint(&self) -> PathBuf {
        self.dir.join("checkpoint.safetensors")
    }

    /// What the checkpoint is (`model::CheckpointMeta`).
    pub fn checkpoint_sidecar(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    /// Everything `--resume` continues from.
    pub fn state(&self) -> PathBuf {
        self.dir.join("state.safetensors")
    }

    /// The settings the run was started with (`train::TrainConfig`).
    pub fn run_config(&self) -> PathBuf {
        self.dir.join("run.json")
    }

    /// The embeddings of the last evaluated split ([`RunEmbeddings`]).
    pub fn embeddings(&self) -> PathBuf {
        self.dir.join("embeddings.safetensors")
    }

    fn lock_path(&self) -> PathBuf {
        self.dir.join("lock")
    }

    pub fn has_state(&self) -> bool {
        self.state().is_file()
    }

    pub fn has_checkpoint(&self) -> bool {
        self.checkpoint().is_file()
    }

    /// Makes the run's folder (and `runs/`) if missing.
    pub fn create(&self) -> Result<(), ProjectError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| ProjectError::io("create", &self.dir, e))
    }

    /// Takes the run for writing, making its folder if needed. A second writer is refused with
    /// the holder's process id; the lock belongs to the open file, so the lock of a process that
    /// died (even by `kill -9`) is free again and simply taken over.
    pub fn lock(&self) -> Result<RunLock, ProjectError> {
        self.create()?;
        let path = self.lock_path();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| ProjectError::io("open", &path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                // The holder writes its id right after locking: an empty read is a holder that
                // has not written it yet.
                let _ = file.read_to_string(&mut holder);
                return Err(ProjectError::RunLocked {
                    run: self.name.to_string(),
                    dir: self.dir.clone(),
                    holder: holder.trim().to_string(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(ProjectError::io("lock", &path, e)),
        }
        let record = format!(
            "process {} since {} s after the epoch\n",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        );
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(record.as_bytes()))
            .map_err(|e| ProjectError::io("write", &path, e))?;
        Ok(RunLock { _file: file })
    }

    /// The best checkpoint's weights and sidecar, with errors that name the run and the file.
    pub fn read_checkpoint(&self) -> Result<(Vec<u8>, String), ProjectError> {
        let weights_path = self.checkpoint();
        let weights =
            std::fs::read(&weights_path).map_err(|source| ProjectError::NoCheckpoint {
                run: self.name.to_string(),
                path: weights_path.clone(),
                source,
            })?;
        let sidecar_path = self.checkpoint_sidecar();
        let sidecar = std::fs::read_to_string(&sidecar_path)
            .map_err(|e| ProjectError::io("read", &sidecar_path, e))?;
        Ok((weights, sidecar))
    }

    /// Writes the embeddings file atomically.
    pub fn write_embeddings(&self, embeddings: &RunEmbeddings) -> Result<(), ProjectError> {
        embeddings.save(&self.embeddings())
    }

    pub fn read_embeddings(&self) -> Result<RunEmbeddings, ProjectError> {
        RunEmbeddings::load(&self.embeddings())
    }
}

/// Held while a run is written; dropping it frees the run.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl Project {
    /// The run named `name` (it need not exist yet).
    pub fn run(&self, name: &RunName) -> RunDir {
        RunDir::new(&self.runs_dir(), name.clone())
    }

    /// The runs that have a checkpoint, by name.
    pub fn trained_runs(&self) -> Result<Vec<RunName>, ProjectError> {
        let mut runs: Vec<RunName> = self
            .checkpoint_times()?
            .into_iter()
            .map(|(_, name)| name)
            .collect();
        runs.sort();
        Ok(runs)
    }

    /// The run whose checkpoint was written last (by name when two were written at once).
    pub fn latest_run(&self) -> Result<RunName, ProjectError> {
        self.checkpoint_times()?
            .into_iter()
            .max()
            .map(|(_, name)| name)
            .ok_or_else(|| ProjectError::NoRuns {
                dir: self.runs_dir(),
            })
    }

    fn checkpoint_times(&self) -> Result<Vec<(std::time::SystemTime, RunName)>, ProjectError> {
        let runs = self.runs_dir();
        let entries = match std::fs::read_dir(&runs) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(ProjectError::io("read", &runs, e)),
        };
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| ProjectError::io("read", &runs, e))?;
            let Some(name) = entry
                .file_name()
                .to_str()
                .and_then(|name| RunName::new(name).ok())
            else {
                continue;
            };
            let run = self.run(&name);
            if let Ok(modified) = std::fs::metadata(run.checkpoint()).and_then(|m| m.modified()) {
                found.push((modified, name));
            }
        }
        Ok(found)
    }
}

/// A row-major f32 matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingMatrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
}

impl EmbeddingMatrix {
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }
}

/// A run's embeddings of one split, as `embeddings.safetensors` holds them: tensors `clip`,
/// `sentence` (one row per clip, in the split's clip order), `video`, `paragraph` (one row per
/// video), f32; metadata `run`, `split`, `epoch` (1-based, the checkpoint's), and `clip_keys`,
/// `video_keys` as JSON lists.
#[derive(Debug, Clone, PartialEq)]
pub struct RunEmbeddings {
    pub run: String,
    pub split: String,
    pub epoch: usize,
    pub clip_keys: Vec<String>,
    pub video_keys: Vec<String>,
    pub clip: EmbeddingMatrix,
    pub sentence: EmbeddingMatrix,
    pub video: EmbeddingMatrix,
    pub paragraph: EmbeddingMatrix,
}

const EMBEDDING_TENSORS: [&str; 4] = ["clip", "sentence", "video", "paragraph"];

impl RunEmbeddings {
    fn matrices(&self) -> [&EmbeddingMatrix; 4] {
        [&self.clip, &self.sentence, &self.video, &self.paragraph]
    }

    /// Writes the file atomically, after checking that rows and keys agree.
    pub fn save(&self, path: &Path) -> Result<(), ProjectError> {
        for (name, matrix) in EMBEDDING_TENSORS.iter().zip(self.matrices()) {
            let keys = if matches!(*name, "clip" | "sentence") {
                self.clip_keys.len()
            } else {
                self.video_keys.len()
            };
            if matrix.rows != keys || matrix.data.len() != matrix.rows * matrix.cols {
                return Err(ProjectError::tensor(
                    path,
                    *name,
                    format!(
                        "{}×{} with {} values for {keys} keys; not written",
                        matrix.rows,
                        matrix.cols,
                        matrix.data.len()
                    ),
                ));
            }
        }
        let bytes: Vec<Vec<u8>> = self
            .matrices()
            .iter()
            .map(|m| m.data.iter().flat_map(|v| v.to_le_bytes()).collect())
            .collect();
        let mut views = Vec::new();
        for ((name, matrix), bytes) in EMBEDDING_TENSORS.iter().zip(self.matrices()).zip(&bytes) {
            let view = TensorView::new(Dtype::F32, vec![matrix.rows, matrix.cols], bytes)
                .map_err(|e| ProjectError::tensor(path, *name, e.to_string()))?;
            views.push((*name, view));
        }
        let json = |value: &Vec<String>| {
            serde_json::to_string(value).map_err(|e| ProjectError::file(path, e.to_string()))
        };
        let metadata = HashMap::from([
            ("run".to_string(), self.run.clone()),
            ("split".to_string(), self.split.clone()),
            ("epoch".to_string(), self.epoch.to_string()),
            ("clip_keys".to_string(), json(&self.clip_keys)?),
            ("video_keys".to_string(), json(&self.video_keys)?),
        ]);
        write_safetensors_atomic(path, views, Some(metadata))
    }

    pub fn load(path: &Path) -> Result<Self, ProjectError> {
        let bytes = std::fs::read(path).map_err(|e| ProjectError::io("read", path, e))?;
        let not_safetensors =
            |e: safetensors::SafeTensorError| ProjectError::file(path, format!("{e}"));
        let (_, header) = SafeTensors::read_metadata(&bytes).map_err(not_safetensors)?;
        let empty = HashMap::new();
        let metadata = header.metadata().as_ref().unwrap_or(&empty);
        let text = |key: &str| {
            metadata
                .get(key)
                .cloned()
                .ok_or_else(|| ProjectError::file(path, format!("metadata `{key}` is missing")))
        };
        let keys = |key: &str| -> Result<Vec<String>, ProjectError> {
            serde_json::from_str(&text(key)?).map_err(|e| {
                ProjectError::file(
                    path,
                    format!("metadata `{key}` is not a JSON list of keys: {e}"),
                )
            })
        };
        let epoch = text("epoch")?.parse().map_err(|_| {
            ProjectError::file(path, "metadata `epoch` is not a whole number".to_string())
        })?;
        let tensors = SafeTensors::deserialize(&bytes).map_err(not_safetensors)?;
        let matrix = |name: &str, rows: usize| -> Result<EmbeddingMatrix, ProjectError> {
            let view = tensors
                .tensor(name)
                .map_err(|_| ProjectError::tensor(path, name, "missing"))?;
            let shape = view.shape();
            if view.dtype() != Dtype::F32 || shape.len() != 2 || shape[0] != rows {
                return Err(ProjectError::tensor(
                    path,
                    name,
                    format!(
                        "{:?} {shape:?}; expected F32 with {rows} rows (one per key)",
                        view.dtype()
                    ),
                ));
            }
            Ok(EmbeddingMatrix {
                rows,
                cols: shape[1],
                data: view
                    .data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            })
        };
        let clip_keys = keys("clip_keys")?;
        let video_keys = keys("video_keys")?;
        Ok(Self {
            run: text("run")?,
            split: text("split")?,
            epoch,
            clip: matrix("clip", clip_keys.len())?,
            sentence: matrix("sentence", clip_keys.len())?,
            video: matrix("video", video_keys.len())?,
            paragraph: matrix("paragraph", video_keys.len())?,
            clip_keys,
            video_keys,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_names_that_would_escape_hide_or_nest_are_refused() {
        for bad in [
            "",
            "../../escape",
            "a/b",
            ".hidden",
            "..",
            "a b",
            &"x".repeat(101),
        ] {
            let error = RunName::new(bad).unwrap_err();
            assert!(
                error.to_string().contains("cannot be a run name"),
                "{bad:?}: {error}"
            );
        }
        for good in ["demo", "crossclr-paper-s0", "r_1.2"] {
            assert_eq!(RunName::new(good).unwrap().as_str(), good);
        }
    }

    #[test]
    fn a_second_writer_is_refused_with_the_holders_id_and_a_freed_lock_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path(), RunName::new("r").unwrap());
        let held = run.lock().unwrap();
        let error = run.lock().unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains(&format!("process {}", std::process::id())),
            "{message}"
        );
        assert!(message.contains("run `r`"), "{message}");
        drop(held);
        // A lock file left by a process that is gone holds no lock.
        std::fs::write(
            run.lock_path(),
            "process 999999999 since 0 s after the epoch\n",
        )
        .unwrap();
        let _again = run.lock().unwrap();
    }

    #[test]
    fn embeddings_read_back_and_disagreeing_rows_are_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let matrix = |rows: usize, offset: f32| EmbeddingMatrix {
            rows,
            cols: 3,
            data: (0..rows * 3).map(|i| i as f32 + offset).collect(),
        };
        let embeddings = RunEmbeddings {
            run: "r".into(),
            split: "val".into(),
            epoch: 4,
            clip_keys: vec!["v#0".into(), "v#1".into(), "w#0".into()],
            video_keys: vec!["v".into(), "w".into()],
            clip: matrix(3, 0.0),
            sentence: matrix(3, 0.5),
            video: matrix(2, 1.0),
            paragraph: matrix(2, 1.5),
        };
        let path = dir.path().join("e.safetensors");
        embeddings.save(&path).unwrap();
        assert_eq!(RunEmbeddings::load(&path).unwrap(), embeddings);
        assert_eq!(embeddings.sentence.row(1), &[3.5, 4.5, 5.5]);

        let mut broken = embeddings.clone();
        broken.video = matrix(3, 0.0);
        let error = broken.save(&dir.path().join("b.safetensors")).unwrap_err();
        assert!(error.to_string().contains("`video`"), "{error}");
        assert!(!dir.path().join("b.safetensors").exists());
    }
}
