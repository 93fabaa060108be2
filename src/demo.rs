//! The built-in demo project, made by library calls so that the CLI and the app make it the same
//! way: the collection rendered (`media::demo`), a project of its videos and captions
//! (`project::videos`), ingested (`ingest`) and trained (`train`). Every step keeps what an
//! earlier, interrupted call finished, reports progress as [`DemoEvent`]s and stops on a
//! [`CancelToken`].

use std::path::{Path, PathBuf};
use std::time::Instant;

use thiserror::Error;

use crate::encode::EncodeError;
use crate::ingest::{IngestError, IngestOptions, IngestProgress, choose_encoders, ingest};
use crate::jobs::{CancelToken, ProgressSender, relay};
use crate::media::MediaError;
use crate::media::batch::BatchProgress;
use crate::media::demo::{CAPTIONS_FILE, DemoConfig, plan, write_collection};
use crate::model::HeadKind;
use crate::project::config::ProjectConfig;
use crate::project::videos::{SplitFractions, import_videos};
use crate::project::{Project, ProjectError, RunName};
use crate::train::{Outcome, PreparedRun, RunRequest, RunSummary, TrainError, TrainEvent};

/// The run the demo trains.
pub const DEMO_RUN: &str = "demo";

/// What the demo is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoSettings {
    /// Seeds the collection and the training.
    pub seed: u64,
    /// Videos of the collection (3–5 clips each).
    pub videos: usize,
    /// Training epochs; 0 makes the project without training it.
    pub epochs: usize,
}

impl Default for DemoSettings {
    /// 160 videos, about 630 clips, 25 epochs: under three minutes on two cores.
    fn default() -> Self {
        Self {
            seed: 0,
            videos: DemoConfig::default().videos,
            epochs: 25,
        }
    }
}

/// Progress of [`make_demo`], step by step.
#[derive(Debug, Clone, PartialEq)]
pub enum DemoEvent {
    Rendering(BatchProgress),
    Rendered {
        folder: PathBuf,
        videos: usize,
        clips: usize,
        seconds: f64,
    },
    /// Said about a choice the user may want to change (a default encoder that is missing).
    Note(String),
    Ingesting(IngestProgress),
    Ingested {
        visual: String,
        text: String,
        seconds: f64,
    },
    /// The run about to be trained (or continued).
    Training(Box<RunSummary>),
    Train(TrainEvent),
    /// The run had finished every epoch already (`Trained` follows).
    AlreadyTrained,
    Trained {
        seconds: f64,
    },
}

#[derive(Debug, Error)]
pub enum DemoError {
    #[error("rendering the demo videos")]
    Render(#[source] MediaError),
    #[error("cannot create the demo project in {}", dir.display())]
    Create {
        dir: PathBuf,
        #[source]
        source: ProjectError,
    },
    #[error(transparent)]
    Project(#[from] ProjectError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error("cannot remove the outdated demo project {}", dir.display())]
    Remove {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the demo's own video {video} failed to ingest: {reason}")]
    IngestFailed { video: String, reason: String },
    #[error(transparent)]
    Train(Box<TrainError>),
    #[error("stopped; run the same command again to go on where it stopped")]
    Cancelled,
}

impl From<TrainError> for DemoError {
    fn from(error: TrainError) -> Self {
        Self::Train(Box::new(error))
    }
}

/// Where the demo lives under `dir`: the collection (videos and captions) and the project.
pub fn collection_dir(dir: &Path) -> PathBuf {
    dir.join("collection")
}

pub fn project_dir(dir: &Path) -> PathBuf {
    dir.join("project")
}

/// The demo's place in the user's data directory (`$CROSSCLR_DATA_DIR` overrides it).
pub fn default_demo_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("CROSSCLR_DATA_DIR") {
        return Some(PathBuf::from(dir).join("demo"));
    }
    dirs::data_dir().map(|dir| dir.join("crossclr").join("demo"))
}

/// The demo project's settings: the import's, with the head and batches the demo is meant for.
fn demo_settings(config: &mut ProjectConfig, seed: u64) {
    config.project.name = "crossclr demo".into();
    // Token-level caption features and frame sequences: the demo shows the COOT head.
    config.model.head = HeadKind::Coot;
    config.train.seed = seed;
    // A few hundred clips: small batches give the optimiser steps to take.
    config.train.batch_size = 8;
}

/// Makes (or finishes) the demo under `dir` and returns the project directory.
pub fn make_demo(
    dir: &Path,
    settings: DemoSettings,
    events: &ProgressSender<DemoEvent>,
    cancel: &CancelToken,
) -> Result<PathBuf, DemoError> {
    match make_demo_once(dir, settings, events, cancel) {
        // Made by a crossclr whose encoders differ (a descriptor of another width): the demo's
        // project is generated data, so it is made again rather than refused.
        Err(DemoError::Ingest(IngestError::StagedWithOther { earlier, now, .. })) => {
            events.send_important(DemoEvent::Note(format!(
                "the demo project was made with {earlier}; this crossclr uses {now}, so it is made again"
            )));
            let project = project_dir(dir);
            std::fs::remove_dir_all(&project).map_err(|source| DemoError::Remove {
                dir: project,
                source,
            })?;
            make_demo_once(dir, settings, events, cancel)
        }
        other => other,
    }
}

fn make_demo_once(
    dir: &Path,
    settings: DemoSettings,
    events: &ProgressSender<DemoEvent>,
    cancel: &CancelToken,
) -> Result<PathBuf, DemoError> {
    let started = Instant::now();
    let collection = collection_dir(dir);
    let project_dir = project_dir(dir);
    let config = DemoConfig {
        seed: settings.seed,
        videos: settings.videos,
        ..DemoConfig::default()
    };
    let plan = plan(&config);
    let written = relay(
        "demo-render-progress",
        events,
        DemoEvent::Rendering,
        |progress| write_collection(&collection, &plan, &config, 0, cancel, Some(progress)),
    );
    let written = match written {
        Ok(written) => written,
        Err(MediaError::Cancelled) => return Err(DemoError::Cancelled),
        Err(error) => return Err(DemoError::Render(error)),
    };
    events.send_important(DemoEvent::Rendered {
        folder: collection.clone(),
        videos: written.rendered + written.kept,
        clips: written.clips,
        seconds: started.elapsed().as_secs_f64(),
    });

    if !project_dir.join(crate::project::CONFIG_FILE).is_file() {
        let captions = collection.join(CAPTIONS_FILE);
        let import = import_videos(&collection, &captions, SplitFractions::default())?;
        let mut project_config = ProjectConfig::default();
        import.configure(&mut project_config, &collection, &captions);
        demo_settings(&mut project_config, settings.seed);
        import
            .write(&project_dir, project_config)
            .map_err(|source| DemoError::Create {
                dir: project_dir.clone(),
                source,
            })?;
    }
    let mut project = Project::open(&project_dir)?;
    let encoders = choose_encoders(&project.config().encoders, None, None)?;
    if let Some(note) = &encoders.note {
        events.send_important(DemoEvent::Note(note.clone()));
    }
    let report = relay(
        "demo-ingest-progress",
        events,
        DemoEvent::Ingesting,
        |progress| {
            ingest(
                &mut project,
                &*encoders.visual,
                &*encoders.text,
                &IngestOptions::default(),
                cancel,
                Some(progress),
            )
        },
    )?;
    if report.cancelled {
        return Err(DemoError::Cancelled);
    }
    if let Some((video, reason)) = report.failed.into_iter().next() {
        return Err(DemoError::IngestFailed { video, reason });
    }
    events.send_important(DemoEvent::Ingested {
        visual: encoders.visual.name().to_string(),
        text: encoders.text.name().to_string(),
        seconds: started.elapsed().as_secs_f64(),
    });

    if settings.epochs == 0 {
        return Ok(project_dir);
    }
    let name = RunName::new(DEMO_RUN)?;
    let mut run_config = project.config().clone();
    run_config.train.epochs = settings.epochs;
    let resume = project.run(&name).has_state();
    let prepared = PreparedRun::prepare(&project, &run_config, RunRequest { name, resume })?;
    events.send_important(DemoEvent::Training(Box::new(prepared.summary())));
    let outcome = relay(
        "demo-train-progress",
        events,
        |event: TrainEvent| {
            if let TrainEvent::Started {
                first_epoch,
                epochs,
                ..
            } = event
                && first_epoch > epochs
            {
                DemoEvent::AlreadyTrained
            } else {
                DemoEvent::Train(event)
            }
        },
        |progress| prepared.train(progress, cancel),
    )?;
    match outcome {
        Outcome::Cancelled { .. } => Err(DemoError::Cancelled),
        Outcome::Completed => {
            events.send_important(DemoEvent::Trained {
                seconds: started.elapsed().as_secs_f64(),
            });
            Ok(project_dir)
        }
    }
}
