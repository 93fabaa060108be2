//! A project's runs as library calls, for the CLI, the demo and the app alike: a project's
//! settings as a [`TrainConfig`], training a run (prepared, locked, resumable, cancellable, with
//! progress events), loading a run's head, and evaluating it on a split.

use candle_core::Device;

use super::data::{BatchLimits, CorpusView};
use super::evaluate::{RetrievalReport, SplitEmbeddings, embed_corpus, retrieval};
use super::radam::RAdamConfig;
use super::run::{EpochRecord, Outcome, RunStore, TrainConfig, TrainEvent, train};
use super::schedule::PlateauConfig;
use super::{MissingSplit, TrainError};
use crate::crossclr::LossKind;
use crate::jobs::{CancelToken, ProgressSender};
use crate::model::{CheckpointMeta, EmbeddingHead, HeadKind};
use crate::project::config::{EncodersSection, ModelSection, Selection, TrainSection};
use crate::project::encoders::check_encoders;
use crate::project::{
    EmbeddingMatrix, Project, ProjectConfig, RunDir, RunEmbeddings, RunLock, RunName,
    SplitFeatures, write_atomic,
};

impl TrainConfig {
    /// A project's settings as a run's: its head on its encoders' features, its loss, optimizer
    /// and schedule.
    pub fn from_project(config: &ProjectConfig) -> Result<Self, TrainError> {
        let (Some(video), Some(text)) = (&config.encoders.video, &config.encoders.text) else {
            return Err(TrainError::Data(
                "the project has no features yet (crossclr.toml names no encoders): import or ingest first"
                    .into(),
            ));
        };
        let train = &config.train;
        let limits = BatchLimits::of(&config.model);
        Ok(TrainConfig {
            head: config.model.head_config(video.dim, text.dim),
            loss: config.loss.settings(),
            optimizer: RAdamConfig::of(train),
            epochs: train.epochs,
            videos_per_batch: train.batch_size,
            warmup_epochs: train.warmup_epochs,
            plateau: PlateauConfig::of(train),
            seed: train.seed,
            max_steps: limits.max_steps,
            max_context_steps: limits.max_context_steps,
            video_encoder: video.clone(),
            text_encoder: text.clone(),
        })
    }
}

impl BatchLimits {
    /// How many frames (tokens) per clip and per video context a project's model reads.
    pub fn of(model: &ModelSection) -> Self {
        Self {
            max_steps: model.max_frames,
            max_context_steps: model.max_context_frames,
        }
    }
}

impl RAdamConfig {
    pub fn of(train: &TrainSection) -> Self {
        Self {
            lr: train.lr,
            beta1: train.beta1,
            beta2: train.beta2,
            eps: 1e-8,
            weight_decay: train.weight_decay,
        }
    }
}

impl PlateauConfig {
    pub fn of(train: &TrainSection) -> Self {
        Self {
            patience: train.plateau_patience,
            cooldown: train.plateau_cooldown,
            factor: train.plateau_factor,
            min_lr: train.min_lr,
            threshold: 1e-4,
        }
    }
}

impl<'a> CorpusView<'a> {
    /// A split as training reads it (borrowed, no copy).
    pub fn of(features: &'a SplitFeatures) -> Self {
        let packed = |sequences: &'a crate::project::Sequences| super::data::PackedView {
            dim: sequences.dim,
            data: &sequences.data,
            offsets: &sequences.offsets,
        };
        CorpusView {
            video: packed(&features.video),
            text: packed(&features.text),
            groups: (0..features.num_videos())
                .map(|v| features.clips_of_video(v))
                .collect(),
        }
    }
}

/// The name a run gets when none is given: its loss, mode and seed.
pub fn default_run_name(config: &ProjectConfig) -> String {
    let loss = &config.loss;
    match loss.kind {
        LossKind::Crossclr => format!("{}-{}-s{}", loss.kind, loss.mode, config.train.seed),
        _ => format!("{}-s{}", loss.kind, config.train.seed),
    }
}

/// What a split is loaded for: it decides which setting the error points at when it is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitRole {
    /// `train.train_split`.
    Train,
    /// `train.val_split`, where checkpoints are selected.
    Selection,
    /// The split results are reported on (`train.report_split`, else `train.val_split`).
    Report,
    /// A split the caller named (`--split`).
    Named,
}

impl SplitRole {
    fn describe(self) -> (&'static str, &'static str) {
        match self {
            SplitRole::Train => ("training", "set `train.train_split` in crossclr.toml"),
            SplitRole::Selection => ("selection", "set `train.val_split` in crossclr.toml"),
            SplitRole::Report => (
                "report",
                "set `train.report_split` or `train.val_split` in crossclr.toml, or name one with --split",
            ),
            SplitRole::Named => ("requested", "name one of those"),
        }
    }
}

/// Loads a split, with an error that says which splits exist and what to set when it does not.
pub fn load_split(
    project: &Project,
    split: &str,
    role: SplitRole,
) -> Result<SplitFeatures, TrainError> {
    let splits = project.splits()?;
    if !splits.iter().any(|s| s == split) {
        let (role, hint) = role.describe();
        return Err(TrainError::NoSplit(Box::new(MissingSplit {
            role,
            split: split.to_string(),
            dir: project.dir().to_path_buf(),
            splits,
            hint: hint.to_string(),
        })));
    }
    Ok(project.load_split(split)?)
}

/// Embeds every clip, sentence, video and paragraph of a split with a trained head, reading the
/// frames and batches the project's settings allow.
pub fn embed_split(
    head: &EmbeddingHead,
    config: &ProjectConfig,
    features: &SplitFeatures,
    device: &Device,
) -> Result<SplitEmbeddings, TrainError> {
    Ok(embed_corpus(
        head,
        &CorpusView::of(features),
        BatchLimits::of(&config.model),
        config.train.batch_size,
        device,
    )?)
}

/// A run's best checkpoint as a frozen head (no gradient graph), with its description; the
/// errors name the run and the file that is missing or unreadable, or the encoders where the
/// project's features now come from others than the run was trained on.
pub fn load_run_head(
    project: &Project,
    name: &RunName,
    device: &Device,
) -> Result<(EmbeddingHead, CheckpointMeta), TrainError> {
    let run = project.run(name);
    let (weights, sidecar) = run.read_checkpoint()?;
    let (_, varmap, meta) = crate::model::load_checkpoint(&weights, &sidecar, device)?;
    let trained = EncodersSection {
        video: Some(meta.video_encoder.clone()),
        text: Some(meta.text_encoder.clone()),
    };
    check_encoders(
        &project.config().encoders,
        &trained,
        &format!("run `{name}`"),
    )?;
    let head = EmbeddingHead::frozen(&varmap, &meta.head, device)?;
    Ok((head, meta))
}

/// A run evaluated on one split: its metrics at both levels and the embeddings they came from.
#[derive(Debug, Clone)]
pub struct EvaluatedRun {
    pub run: RunName,
    pub split: String,
    /// The checkpoint's epoch (1-based).
    pub epoch: usize,
    pub clips: usize,
    pub videos: usize,
    pub report: RetrievalReport,
    pub embeddings: RunEmbeddings,
}

/// Evaluates run `name` on `split` (default: the report split, else the val split). Nothing is
/// written: [`RunDir::write_embeddings`] keeps the embeddings beside the run.
pub fn evaluate_run(
    project: &Project,
    name: &RunName,
    split: Option<&str>,
    device: &Device,
) -> Result<EvaluatedRun, TrainError> {
    project.check_features()?;
    let config = project.config();
    let (head, meta) = load_run_head(project, name, device)?;
    let (split, role) = match split {
        Some(split) => (split.to_string(), SplitRole::Named),
        None => (
            config.train.report_split_in(&project.splits()?).to_string(),
            SplitRole::Report,
        ),
    };
    let features = load_split(project, &split, role)?;
    let embedded = embed_split(&head, config, &features, device)?;
    let report = retrieval(&embedded)?;
    Ok(EvaluatedRun {
        run: name.clone(),
        epoch: meta.epoch,
        clips: features.num_clips(),
        videos: features.num_videos(),
        report,
        embeddings: RunEmbeddings {
            run: name.to_string(),
            split: split.clone(),
            epoch: meta.epoch,
            clip_keys: features.clip_keys.clone(),
            video_keys: features.video_keys.clone(),
            clip: matrix(&embedded.clip)?,
            sentence: matrix(&embedded.sentence)?,
            video: matrix(&embedded.video)?,
            paragraph: matrix(&embedded.paragraph)?,
        },
        split,
    })
}

fn matrix(tensor: &candle_core::Tensor) -> Result<EmbeddingMatrix, TrainError> {
    let (rows, cols) = tensor.dims2()?;
    Ok(EmbeddingMatrix {
        rows,
        cols,
        data: tensor
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1()?,
    })
}

/// How many of the training split's last videos select the checkpoint when the project has no
/// separate selection split.
fn held_out_videos(videos: usize) -> usize {
    videos.div_ceil(10)
}

/// The part of the training split `train` a run trains on: all of it when checkpoints are
/// selected on another split, else all but the last tenth of its videos (held out for selection).
pub fn training_view<'a>(train: &'a SplitFeatures, selection: &Selection) -> CorpusView<'a> {
    let whole = CorpusView::of(train);
    match selection {
        Selection::Split(_) => whole,
        Selection::TrainTail => whole.split_off_tail(held_out_videos(whole.num_videos())).0,
    }
}

/// The settings run `name` was trained with (`runs/<name>/run.json`).
pub fn run_settings(project: &Project, name: &RunName) -> Result<TrainConfig, TrainError> {
    let path = project.run(name).run_config();
    let text = std::fs::read_to_string(&path)
        .map_err(|e| crate::project::ProjectError::io("read", &path, e))?;
    serde_json::from_str(&text).map_err(|e| {
        TrainError::Config(format!(
            "{}: not the settings of a run ({e}); expected the run.json `crossclr train` writes",
            path.display()
        ))
    })
}

/// Which run to train, and whether to continue it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRequest {
    pub name: RunName,
    /// Continue from the saved state (from the start when the run was begun but saved none);
    /// refused for a run that was never begun.
    pub resume: bool,
}

/// What a prepared run will do, for the user to read before it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    pub run: RunName,
    pub head: HeadKind,
    pub loss: LossKind,
    pub train_videos: usize,
    pub selection_videos: usize,
    pub selection: Selection,
    pub train_split: String,
    pub val_split: String,
    pub report_split: String,
    pub resume: bool,
    /// Resumed, but no state had been saved yet: it trains from the first epoch.
    pub starts_over: bool,
}

impl RunSummary {
    /// Where the checkpoint is chosen, in words.
    pub fn selection_text(&self) -> String {
        match &self.selection {
            Selection::Split(split) => format!("`{split}`"),
            Selection::TrainTail => format!(
                "the last of `{}`; no `{}` split, so `{}` is kept for reporting",
                self.train_split, self.report_split, self.val_split
            ),
        }
    }
}

/// A run ready to train: settings checked, splits loaded, the run directory locked and its
/// `run.json` written. Everything that can be refused was refused before the directory was made.
#[derive(Debug)]
pub struct PreparedRun {
    pub run: RunDir,
    pub settings: TrainConfig,
    pub selection: Selection,
    resume: bool,
    starts_over: bool,
    train_split: String,
    val_split: String,
    report_split: String,
    device: Device,
    train: SplitFeatures,
    selection_split: Option<SplitFeatures>,
    _lock: RunLock,
}

impl PreparedRun {
    /// Checks `config` (the project's settings, with any overrides) and takes the run.
    pub fn prepare(
        project: &Project,
        config: &ProjectConfig,
        request: RunRequest,
    ) -> Result<Self, TrainError> {
        config.validate()?;
        project.check_features()?;
        let settings = TrainConfig::from_project(config)?;
        let device = config.train.device.open()?;
        let run = project.run(&request.name);
        let refuse = |run: &RunDir| -> Result<(), TrainError> {
            let (name, dir) = (run.name().to_string(), run.dir().to_path_buf());
            match (request.resume, run.has_state() || run.has_checkpoint()) {
                // A run whose folder exists was started: killed before its first state was
                // saved (even between epoch 1's checkpoint and its state, when a plain rerun
                // is refused for the checkpoint), it resumes from the start. Only a name that
                // was never trained has nothing to resume, most likely a typo.
                (true, _) if !run.has_state() && !run.dir().is_dir() => {
                    Err(TrainError::NothingToResume { run: name, dir })
                }
                (false, true) => Err(TrainError::RunExists { run: name, dir }),
                _ => Ok(()),
            }
        };
        refuse(&run)?;
        let splits = project.splits()?;
        let train = load_split(project, &config.train.train_split, SplitRole::Train)?;
        let selection = config.train.selection(&splits);
        let selection_split = match &selection {
            Selection::Split(split) => Some(load_split(project, split, SplitRole::Selection)?),
            Selection::TrainTail => None,
        };
        let lock = run.lock()?;
        // Checked again under the lock: another writer may have finished in between.
        refuse(&run)?;
        let starts_over = request.resume && !run.has_state();
        // A checkpoint or state caught mid-write by `kill -9` left its temporary behind.
        crate::project::remove_stale_temporaries(run.dir(), crate::project::STALE_TEMPORARY_AGE);
        let json = serde_json::to_string_pretty(&settings)
            .map_err(|e| TrainError::Config(format!("cannot write the run's settings: {e}")))?;
        write_atomic(&run.run_config(), json.as_bytes())?;
        Ok(Self {
            run,
            settings,
            selection,
            resume: request.resume,
            starts_over,
            train_split: config.train.train_split.clone(),
            val_split: config.train.val_split.clone(),
            report_split: config.train.report_split.clone(),
            device,
            train,
            selection_split,
            _lock: lock,
        })
    }

    /// The training and the selection corpus.
    fn views(&self) -> (CorpusView<'_>, CorpusView<'_>) {
        let whole_train = CorpusView::of(&self.train);
        match &self.selection_split {
            Some(selection) => (
                training_view(&self.train, &self.selection),
                CorpusView::of(selection),
            ),
            None => whole_train.split_off_tail(held_out_videos(whole_train.num_videos())),
        }
    }

    pub fn summary(&self) -> RunSummary {
        let (train, selection) = self.views();
        RunSummary {
            run: self.run.name().clone(),
            head: self.settings.head.kind,
            loss: self.settings.loss.kind,
            train_videos: train.num_videos(),
            selection_videos: selection.num_videos(),
            selection: self.selection.clone(),
            train_split: self.train_split.clone(),
            val_split: self.val_split.clone(),
            report_split: self.report_split.clone(),
            resume: self.resume,
            starts_over: self.starts_over,
        }
    }

    /// Trains on this thread until the last epoch or `cancel`, sending progress to `events`.
    pub fn train(
        &self,
        events: &ProgressSender<TrainEvent>,
        cancel: &CancelToken,
    ) -> Result<Outcome, TrainError> {
        let (train_view, selection_view) = self.views();
        let mut store = self.run.clone();
        train(
            &self.settings,
            &train_view,
            &selection_view,
            &self.device,
            &mut store,
            events,
            cancel,
            self.resume,
        )
    }
}

impl RunStore for RunDir {
    fn append_metrics(&mut self, record: &EpochRecord) -> Result<(), TrainError> {
        let path = self.metrics();
        let mut text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(crate::project::ProjectError::io("read", &path, e).into()),
        };
        // On resume, lines of epochs about to be written again go: the file says what the run did.
        text = text
            .lines()
            .filter(|line| {
                serde_json::from_str::<serde_json::Value>(line)
                    .ok()
                    .and_then(|v| v["epoch"].as_u64())
                    .is_some_and(|epoch| (epoch as usize) < record.epoch)
            })
            .map(|line| format!("{line}\n"))
            .collect();
        let line = serde_json::to_string(record)
            .map_err(|e| TrainError::Config(format!("cannot write the epoch's metrics: {e}")))?;
        text.push_str(&line);
        text.push('\n');
        Ok(write_atomic(&path, text.as_bytes())?)
    }

    fn save_checkpoint(&mut self, weights: &[u8], sidecar: &str) -> Result<(), TrainError> {
        // The weights first: a sidecar never describes weights that are not there yet.
        write_atomic(&self.checkpoint(), weights)?;
        Ok(write_atomic(
            &self.checkpoint_sidecar(),
            sidecar.as_bytes(),
        )?)
    }

    fn save_state(&mut self, state: &[u8]) -> Result<(), TrainError> {
        Ok(write_atomic(&self.state(), state)?)
    }

    fn load_state(&mut self) -> Result<Option<Vec<u8>>, TrainError> {
        match std::fs::read(self.state()) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(crate::project::ProjectError::io("read", self.state(), e).into()),
        }
    }
}
