//! A new project from one of its three sources: a folder of videos with a captions file,
//! a safetensors file of features, or COOT's release. `crossclr new` and the explorer's New
//! project window both come here, and both list the same problems.

use std::path::{Path, PathBuf};

use super::captions::{CaptionProblem, Location};
use super::config::ProjectConfig;
use super::coot::{CootPaths, import_coot};
use super::import::{FeatureSource, Import, import_features};
use super::videos::{SplitFractions, VideoImport, import_videos};
use super::{Project, ProjectError};

/// Where a new project's clips come from.
#[derive(Debug, Clone, PartialEq)]
pub enum NewSource {
    /// Videos (searched recursively) and the captions that name them; encoded later by ingest.
    Videos {
        videos: PathBuf,
        captions: PathBuf,
        /// The seeded split of the videos whose split the captions do not give.
        fractions: SplitFractions,
    },
    /// A safetensors file of per-split features (see [`import_features`]).
    Features(PathBuf),
    /// COOT's `meta_all.json`, frame and token features and sentence splits; at most
    /// `max_frames` frames per clip (else the config's default), recorded as `model.max_frames`.
    Coot {
        paths: CootPaths,
        max_frames: Option<usize>,
    },
}

/// What to make: the directory (missing or empty), the project's name (else the directory's),
/// and the source.
#[derive(Debug, Clone, PartialEq)]
pub struct NewProject {
    pub dir: PathBuf,
    pub name: Option<String>,
    pub source: NewSource,
}

/// What the importer read, with what it skipped.
#[derive(Debug, Clone)]
pub enum Imported {
    Videos(VideoImport),
    Features(Import),
}

/// A project just made, and what went into it.
#[derive(Debug)]
pub struct Created {
    pub project: Project,
    pub imported: Imported,
}

/// One thing the import left out, as a user reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: ProblemKind,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProblemKind {
    /// A caption entry that could not be used (its file and line or JSON path named).
    BadEntry,
    /// Captions of a video that is not in the folder.
    MissingVideo,
    /// A video file that no caption names.
    Uncaptioned,
    /// A video whose path is not UTF-8.
    UnnamedFile,
    /// A clip, video or split of a features import.
    Skipped,
}

impl ProblemKind {
    /// A heading for a list of problems of this kind.
    pub fn heading(self) -> &'static str {
        match self {
            ProblemKind::BadEntry => "bad caption entries",
            ProblemKind::MissingVideo => "captions of videos not in the folder",
            ProblemKind::Uncaptioned => "video files without captions",
            ProblemKind::UnnamedFile => "video files whose path is not UTF-8",
            ProblemKind::Skipped => "skipped",
        }
    }
}

/// A caption entry's problem as `file:line: reason` (or `file: json.path: reason`).
pub fn describe_entry(file: &str, problem: &CaptionProblem) -> String {
    match &problem.location {
        Location::Line(line) => format!("{file}:{line}: {}", problem.reason),
        Location::Json(path) => format!("{file}: {path}: {}", problem.reason),
    }
}

impl Imported {
    /// Every problem of the import, grouped by kind in the order read.
    pub fn problems(&self, config: &ProjectConfig) -> Vec<Problem> {
        let problem = |kind, text| Problem { kind, text };
        match self {
            Imported::Features(import) => import
                .skipped
                .iter()
                .map(|s| problem(ProblemKind::Skipped, s.to_string()))
                .collect(),
            Imported::Videos(import) => {
                let file = config
                    .source
                    .captions
                    .as_deref()
                    .map(Path::new)
                    .and_then(Path::file_name)
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let mut problems: Vec<Problem> = import
                    .caption_problems
                    .iter()
                    .chain(&import.clip_problems)
                    .map(|p| problem(ProblemKind::BadEntry, describe_entry(&file, p)))
                    .collect();
                problems.extend(import.missing.iter().map(|m| {
                    let captions = if m.captions == 1 {
                        "1 caption".to_string()
                    } else {
                        format!("{} captions", m.captions)
                    };
                    problem(
                        ProblemKind::MissingVideo,
                        format!("{}: {captions}, no such video in the folder", m.key),
                    )
                }));
                problems.extend(import.uncaptioned.iter().map(|name| {
                    problem(
                        ProblemKind::Uncaptioned,
                        format!("{name}: no caption names it"),
                    )
                }));
                if import.unnamed_files > 0 {
                    problems.push(problem(
                        ProblemKind::UnnamedFile,
                        format!(
                            "{} video files whose path is not UTF-8 (no caption can name them)",
                            import.unnamed_files
                        ),
                    ));
                }
                problems
            }
        }
    }

    pub fn num_clips(&self) -> usize {
        match self {
            Imported::Videos(import) => import.num_clips(),
            Imported::Features(import) => import.num_clips(),
        }
    }

    /// Per split: name, clips, videos.
    pub fn split_counts(&self) -> Vec<(String, usize, usize)> {
        match self {
            Imported::Videos(import) => import.split_counts(),
            Imported::Features(import) => import
                .splits
                .iter()
                .map(|s| (s.split.clone(), s.num_clips(), s.num_videos()))
                .collect(),
        }
    }
}

/// Reads the source, checks it and writes the project; `progress(done, total)` follows a COOT
/// import's videos. A failed write leaves nothing behind.
pub fn create_project(
    request: &NewProject,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Created, ProjectError> {
    let mut config = ProjectConfig::default();
    if let Some(name) = &request.name {
        config.project.name = name.clone();
    }
    match &request.source {
        NewSource::Videos {
            videos,
            captions,
            fractions,
        } => {
            let import = import_videos(videos, captions, *fractions)?;
            import.configure(&mut config, videos, captions);
            let project = import.write(&request.dir, config)?;
            Ok(Created {
                project,
                imported: Imported::Videos(import),
            })
        }
        NewSource::Features(path) => {
            FeatureSource::Features(path).record(&mut config);
            let import = import_features(path)?;
            write_import(request, config, import)
        }
        NewSource::Coot { paths, max_frames } => {
            if let Some(max_frames) = max_frames {
                config.model.max_frames = *max_frames;
            }
            FeatureSource::Coot(paths).record(&mut config);
            let import = import_coot(paths, config.model.max_frames, progress)?;
            write_import(request, config, import)
        }
    }
}

fn write_import(
    request: &NewProject,
    mut config: ProjectConfig,
    import: Import,
) -> Result<Created, ProjectError> {
    import.configure(&mut config);
    let project = import.write(&request.dir, config)?;
    Ok(Created {
        project,
        imported: Imported::Features(import),
    })
}
