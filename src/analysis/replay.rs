//! A run's training batches formed again: the same videos at each epoch and step
//! (`train::epoch_batches`), the same pooled input features (`train::make_batch`), fed through the
//! run's own objective (`train::Objective`, queue included), so the pruning each step reports is
//! the one the loss applied while training.
//!
//! Pruning depends only on the input features, never on the embeddings, so the objective is fed
//! zeros of the heads' widths: what it prunes, the queue's input features, its pointer and fill
//! are exactly the training loop's. The queue's *embeddings* are not (they were the weights of
//! each step's model), and nothing here reads them.

use candle_core::{DType, Device, Tensor};

use super::AnalysisError;
use crate::crossclr::{HostMatrix, LossReport, QueueState};
use crate::jobs::CancelToken;
use crate::model::Embeddings;
use crate::project::{Project, RunName, SplitFeatures};
use crate::train::objective::Objective;
use crate::train::{
    CorpusView, SplitRole, TrainConfig, epoch_batches, load_split, make_batch, run_settings,
    training_view,
};

/// Everything needed to form a run's batches again.
#[derive(Debug)]
pub struct RunReplay {
    pub run: RunName,
    pub settings: TrainConfig,
    /// The training split (all of it; [`RunReplay::corpus`] is the part trained on).
    pub features: SplitFeatures,
    selection: crate::project::config::Selection,
}

/// Which slot of the queue holds which training clip.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueSlots {
    /// Per slot the training split's clip index; `None` for a slot never written (the noise an
    /// official-mode queue starts with).
    pub clips: Vec<Option<usize>>,
    pub pointer: usize,
    pub filled: usize,
}

/// One step of a run, formed again.
#[derive(Debug)]
pub struct ReplayedStep {
    /// Counted from 1.
    pub epoch: usize,
    pub step: usize,
    /// The videos of the batch (training corpus indices) and their clips (training split clip
    /// indices), in batch order: row r of every matrix here is clip `clips[r]`.
    pub videos: Vec<usize>,
    pub clips: Vec<usize>,
    pub clip_video_in: HostMatrix,
    pub clip_text_in: HostMatrix,
    /// What the clip-level loss (with its queue) and the video-level loss did.
    pub local: LossReport,
    pub global: LossReport,
    /// The queue after the step (the batch is enqueued first), when the run has one.
    pub queue: Option<(QueueSlots, QueueState)>,
}

impl RunReplay {
    /// The run's settings (`run.json`) and its training split as the project has it now.
    pub fn open(project: &Project, run: &RunName) -> Result<Self, AnalysisError> {
        let settings = run_settings(project, run)?;
        let config = project.config();
        let features = load_split(project, &config.train.train_split, SplitRole::Train)?;
        let selection = config.train.selection(&project.splits()?);
        Ok(Self {
            run: run.clone(),
            settings,
            features,
            selection,
        })
    }

    /// The part of the training split the run trained on.
    pub fn corpus(&self) -> CorpusView<'_> {
        training_view(&self.features, &self.selection)
    }

    pub fn steps_per_epoch(&self) -> usize {
        self.corpus()
            .num_videos()
            .div_ceil(self.settings.videos_per_batch.max(1))
    }

    /// Checks an (epoch, step) pair, both from 1.
    pub fn check_step(&self, epoch: usize, step: usize) -> Result<(), AnalysisError> {
        let steps = self.steps_per_epoch();
        if epoch == 0 || epoch > self.settings.epochs || step == 0 || step > steps {
            return Err(AnalysisError::Settings(format!(
                "run `{}` has epochs 1..={} of steps 1..={steps} (counted from 1); epoch {epoch}, step {step} is not one of them",
                self.run, self.settings.epochs
            )));
        }
        Ok(())
    }

    /// Forms every step from epoch 1, step 1 through (`epoch`, `step`) — with a queue the whole
    /// history fills it; without, only the steps asked for are formed — and hands each formed
    /// step from `first` on to `visit`. `progress(done, total)` counts steps.
    pub fn replay(
        &self,
        first: (usize, usize),
        last: (usize, usize),
        visit: &mut dyn FnMut(ReplayedStep) -> Result<(), AnalysisError>,
        progress: &mut dyn FnMut(usize, usize),
        cancel: &CancelToken,
    ) -> Result<(), AnalysisError> {
        self.check_step(first.0, first.1)?;
        self.check_step(last.0, last.1)?;
        let corpus = self.corpus();
        let steps = self.steps_per_epoch();
        let index = |(e, s): (usize, usize)| (e - 1) * steps + (s - 1);
        let queue = self.settings.loss.uses_queue();
        let start = if queue { 0 } else { index(first) };
        let total = index(last) + 1 - start;
        let mut objective = Objective::new(&self.settings.loss, self.settings.seed)?;
        let capacity = self.settings.loss.queue;
        let mut slots = QueueSlots {
            clips: vec![None; if queue { capacity } else { 0 }],
            pointer: 0,
            filled: 0,
        };
        let device = Device::Cpu;
        let head = &self.settings.head;
        let mut done = 0;
        // With a queue every earlier step filled it; without, each step stands alone.
        let first_epoch = if queue { 1 } else { first.0 };
        for epoch in first_epoch..=last.0 {
            let batches = epoch_batches(&self.settings, corpus.num_videos(), epoch);
            for (b, videos) in batches.iter().enumerate() {
                let at = index((epoch, b + 1));
                if at < start {
                    continue;
                }
                if at > index(last) {
                    break;
                }
                if cancel.is_cancelled() {
                    return Err(AnalysisError::Cancelled);
                }
                let batch = make_batch(&corpus, videos, self.settings.limits(), &device)?;
                let clips_in_batch = batch.clips.len();
                let zeros =
                    |rows: usize, cols: usize| Tensor::zeros((rows, cols), DType::F32, &device);
                let embeddings = Embeddings {
                    clip: zeros(clips_in_batch, head.local_dim())?,
                    sentence: zeros(clips_in_batch, head.local_dim())?,
                    video: zeros(videos.len(), head.global_dim())?,
                    paragraph: zeros(videos.len(), head.global_dim())?,
                };
                let report = objective.forward(&embeddings, &batch)?;
                // The corpus' clip indices are offsets into the training split: the held-out
                // tail (if any) comes after every trained clip.
                let clips = batch.clips.clone();
                if queue {
                    // The queue writes the batch at its pointer and drops what runs past its end.
                    let written = clips_in_batch.min(capacity - slots.pointer);
                    for (r, &clip) in clips.iter().take(written).enumerate() {
                        slots.clips[slots.pointer + r] = Some(clip);
                    }
                    slots.pointer = (slots.pointer + clips_in_batch) % capacity;
                }
                done += 1;
                progress(done, total);
                if at < index(first) {
                    continue;
                }
                let queue_state = if queue {
                    let state = objective.queue_state().ok_or_else(|| {
                        AnalysisError::Settings(
                            "the run's objective has no queue state after a step".into(),
                        )
                    })?;
                    if state.pointer != slots.pointer {
                        return Err(AnalysisError::Settings(format!(
                            "replaying run `{}`: the queue's pointer is {} where its slots say {}",
                            self.run, state.pointer, slots.pointer
                        )));
                    }
                    slots.filled = state.filled;
                    Some((slots.clone(), state))
                } else {
                    None
                };
                visit(ReplayedStep {
                    epoch,
                    step: b + 1,
                    videos: videos.clone(),
                    clips,
                    clip_video_in: HostMatrix::from_tensor(&batch.clip_video_in, "clip_video_in")?,
                    clip_text_in: HostMatrix::from_tensor(&batch.clip_text_in, "clip_text_in")?,
                    local: report.local,
                    global: report.global,
                    queue: queue_state,
                })?;
            }
        }
        Ok(())
    }

    /// The one step (`epoch`, `step`).
    pub fn step(
        &self,
        epoch: usize,
        step: usize,
        progress: &mut dyn FnMut(usize, usize),
        cancel: &CancelToken,
    ) -> Result<ReplayedStep, AnalysisError> {
        let mut found = None;
        self.replay(
            (epoch, step),
            (epoch, step),
            &mut |s| {
                found = Some(s);
                Ok(())
            },
            progress,
            cancel,
        )?;
        found.ok_or_else(|| {
            AnalysisError::Settings(format!("epoch {epoch}, step {step} was not formed"))
        })
    }
}
