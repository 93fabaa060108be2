//! The project directory (DESIGN §2): `crossclr.toml`, `manifest.jsonl`, the per-split feature
//! store, and where runs and maps go. Every file is written atomically.
//!
//! It uses no other module of the crate but the setting types of `crossclr` (the loss) and
//! `model` (the head, encoders, device) that `crossclr.toml` holds: everything downstream
//! (training, analysis, the app) reads projects through it.

pub mod atomic;
pub mod captions;
pub mod config;
pub mod coot;
pub mod create;
pub mod encoders;
mod error;
pub mod features;
#[doc(hidden)]
pub mod fuzzing;
pub mod import;
pub mod manifest;
#[cfg(test)]
mod mutation_tests;
pub mod runs;
pub mod video_folder;
pub mod videos;

use std::path::{Path, PathBuf};

pub use atomic::{
    STALE_TEMPORARY_AGE, remove_stale_temporaries, replace_atomic, write_atomic, write_atomic_with,
    write_safetensors_atomic,
};
pub use config::ProjectConfig;
use config::SourceKind;
pub use error::ProjectError;
pub use features::{Sequences, SplitFeatures};
pub use manifest::{LineProblem, Manifest, ManifestEntry};
pub use runs::{EmbeddingMatrix, RunDir, RunEmbeddings, RunLock, RunName};

pub const CONFIG_FILE: &str = "crossclr.toml";
pub const MANIFEST_FILE: &str = "manifest.jsonl";
pub const FEATURES_DIR: &str = "features";
pub const RUNS_DIR: &str = "runs";
pub const MAPS_DIR: &str = "maps";
pub const CACHE_DIR: &str = "cache";

/// A source path as `crossclr.toml` records it: absolute, so the record still means something
/// from another working directory.
pub fn recorded_path(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// Split names become file names (`features/{split}.safetensors`), so they are kept to a safe
/// alphabet and may not hide (leading `.`) or climb (`..`).
pub fn is_valid_split_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Split names in the order people expect to read them: train, val, test, then the rest by name.
pub fn sort_splits(splits: &mut [String]) {
    let rank = |s: &str| match s {
        "train" => 0,
        "val" => 1,
        "test" => 2,
        _ => 3,
    };
    splits.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
}

/// An open project directory.
#[derive(Debug, Clone)]
pub struct Project {
    dir: PathBuf,
    config: ProjectConfig,
}

impl Project {
    /// Makes a new project in `dir`, which must be missing or empty (an existing project, or
    /// anything else, is never overwritten), and writes its `crossclr.toml`. An empty project
    /// name is replaced by the directory's name.
    pub fn create(dir: &Path, mut config: ProjectConfig) -> Result<Self, ProjectError> {
        if dir.exists() {
            let mut entries =
                std::fs::read_dir(dir).map_err(|e| ProjectError::io("read", dir, e))?;
            if entries.next().is_some() {
                return Err(ProjectError::NotEmpty {
                    dir: dir.to_path_buf(),
                });
            }
        }
        for sub in ["", FEATURES_DIR, RUNS_DIR, MAPS_DIR] {
            let path = dir.join(sub);
            std::fs::create_dir_all(&path).map_err(|e| ProjectError::io("create", &path, e))?;
        }
        if config.project.name.is_empty() {
            config.project.name = dir
                .canonicalize()
                .ok()
                .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_default();
        }
        let project = Self {
            dir: dir.to_path_buf(),
            config,
        };
        project.config.save(&project.config_path())?;
        Ok(project)
    }

    /// Creates the project like [`Project::create`], then lets `fill` write its contents. If
    /// `fill` fails part-way (a full disk), everything this call wrote is removed again, so the
    /// same command can simply be rerun.
    pub fn create_filled<F>(
        dir: &Path,
        config: ProjectConfig,
        fill: F,
    ) -> Result<Self, ProjectError>
    where
        F: FnOnce(&Project) -> Result<(), ProjectError>,
    {
        let existed = dir.exists();
        let project = Self::create(dir, config)?;
        if let Err(error) = fill(&project) {
            // `create` succeeded, so the directory was missing or empty: everything in it is ours.
            let _ = if existed {
                std::fs::read_dir(dir).map(|entries| {
                    for entry in entries.flatten() {
                        let path = entry.path();
                        let _ = if path.is_dir() {
                            std::fs::remove_dir_all(&path)
                        } else {
                            std::fs::remove_file(&path)
                        };
                    }
                })
            } else {
                std::fs::remove_dir_all(dir)
            };
            return Err(error);
        }
        Ok(project)
    }

    /// Opens the project in `dir` and reads its `crossclr.toml`.
    pub fn open(dir: &Path) -> Result<Self, ProjectError> {
        let config_path = dir.join(CONFIG_FILE);
        if !config_path.is_file() {
            return Err(ProjectError::NotAProject {
                dir: dir.to_path_buf(),
                config: config_path,
            });
        }
        let config = ProjectConfig::load(&config_path)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &ProjectConfig {
        &self.config
    }

    /// Replaces the settings and writes them.
    pub fn set_config(&mut self, config: ProjectConfig) -> Result<(), ProjectError> {
        config.save(&self.config_path())?;
        self.config = config;
        Ok(())
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join(CONFIG_FILE)
    }

    pub fn manifest_path(&self) -> PathBuf {
        self.dir.join(MANIFEST_FILE)
    }

    pub fn features_dir(&self) -> PathBuf {
        self.dir.join(FEATURES_DIR)
    }

    pub fn features_path(&self, split: &str) -> PathBuf {
        self.features_dir().join(format!("{split}.safetensors"))
    }

    pub fn runs_dir(&self) -> PathBuf {
        self.dir.join(RUNS_DIR)
    }

    pub fn maps_dir(&self) -> PathBuf {
        self.dir.join(MAPS_DIR)
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.dir.join(CACHE_DIR)
    }

    /// The splits that have a feature file, train/val/test first.
    pub fn splits(&self) -> Result<Vec<String>, ProjectError> {
        let dir = self.features_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(ProjectError::io("read", &dir, e)),
        };
        let mut splits = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| ProjectError::io("read", &dir, e))?;
            let name = entry.file_name();
            let Some(split) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".safetensors"))
                .filter(|s| is_valid_split_name(s))
            else {
                continue;
            };
            splits.push(split.to_string());
        }
        sort_splits(&mut splits);
        Ok(splits)
    }

    /// Reads and checks the features of `split`.
    pub fn load_split(&self, split: &str) -> Result<SplitFeatures, ProjectError> {
        check_split_name(split)?;
        let path = self.features_path(split);
        if !path.is_file() {
            return Err(ProjectError::NoSuchSplit {
                split: split.to_string(),
                path,
            });
        }
        let features = SplitFeatures::load(&path)?;
        if features.split != split {
            return Err(ProjectError::file(
                &path,
                format!(
                    "holds split `{}` (metadata `split`); expected `{split}`",
                    features.split
                ),
            ));
        }
        Ok(features)
    }

    /// Writes the features of one split (replacing any earlier ones) atomically.
    pub fn save_split(&self, features: &SplitFeatures) -> Result<(), ProjectError> {
        check_split_name(&features.split)?;
        features.save(&self.features_path(&features.split))
    }

    /// Checks that the project has features to train on: encoders recorded and at least one
    /// split's file. A project made from videos has none until `crossclr ingest`, which the
    /// error says.
    pub fn check_features(&self) -> Result<(), ProjectError> {
        let encoders = &self.config.encoders;
        if encoders.video.is_some() && encoders.text.is_some() && !self.splits()?.is_empty() {
            return Ok(());
        }
        let next_step = match self.config.source.kind {
            SourceKind::Videos => format!(
                "run `crossclr ingest {}` first to decode its videos and encode its captions",
                self.dir.display()
            ),
            SourceKind::Features | SourceKind::Coot => {
                "make it again with `crossclr new` from its feature files".to_string()
            }
        };
        Err(ProjectError::NoFeatures {
            dir: self.dir.clone(),
            next_step,
        })
    }

    /// The video file of a manifest entry: its `path`, relative to the project's
    /// `source.videos` folder. A path that would leave that folder (absolute, or climbing out
    /// with `..`; see [`manifest::check_video_path`]) names no file: `None`, as without a path.
    pub fn video_path(&self, entry: &ManifestEntry) -> Option<PathBuf> {
        let path = entry.path.as_deref()?;
        manifest::check_video_path(path).ok()?;
        let path = Path::new(path);
        Some(match &self.config.source.videos {
            Some(folder) => Path::new(folder).join(path),
            None => path.to_path_buf(),
        })
    }

    /// Reads the manifest; bad lines come back as problems, not errors.
    pub fn read_manifest(&self) -> Result<Manifest, ProjectError> {
        manifest::read_manifest(&self.manifest_path())
    }

    pub fn write_manifest(&self, entries: &[ManifestEntry]) -> Result<(), ProjectError> {
        manifest::write_manifest(&self.manifest_path(), entries)
    }
}

fn check_split_name(split: &str) -> Result<(), ProjectError> {
    if is_valid_split_name(split) {
        Ok(())
    } else {
        Err(ProjectError::SplitName {
            name: split.to_string(),
        })
    }
}
