//! The training objective: a loss at the clip/sentence level (with CrossCLR's queue) plus a
//! weighted loss at the video/paragraph level (without), `L_local + w · L_global` (w = 0.6).

use candle_core::Tensor;

use super::data::TrainBatch;
use crate::crossclr::{
    ContrastiveLoss, CrossClrQueue, LossError, LossReport, LossSettings, PairBatch, QueueInit,
    QueueState,
};
use crate::model::Embeddings;

enum LocalLoss {
    Queue(Box<CrossClrQueue>),
    Plain(Box<dyn ContrastiveLoss>),
}

pub struct Objective {
    local: LocalLoss,
    global: Box<dyn ContrastiveLoss>,
    global_weight: f64,
}

impl std::fmt::Debug for Objective {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Objective")
            .field("global", &self.global.name())
            .field("global_weight", &self.global_weight)
            .finish_non_exhaustive()
    }
}

/// One evaluation of the objective.
#[derive(Debug)]
pub struct ObjectiveReport {
    pub total: Tensor,
    pub local: LossReport,
    pub global: LossReport,
}

impl Objective {
    /// `seed` seeds the noise an official-mode queue starts from.
    pub fn new(settings: &LossSettings, seed: u64) -> Result<Self, LossError> {
        let init = QueueInit::for_mode(settings.crossclr.mode, seed);
        let local = match settings.build_queue(init)? {
            Some(queue) => LocalLoss::Queue(Box::new(queue)),
            None => LocalLoss::Plain(settings.build()?),
        };
        Ok(Self {
            local,
            global: settings.build()?,
            global_weight: settings.global_weight,
        })
    }

    pub fn forward(
        &mut self,
        embeddings: &Embeddings,
        batch: &TrainBatch,
    ) -> Result<ObjectiveReport, LossError> {
        let local_batch = PairBatch::new(
            embeddings.clip.clone(),
            embeddings.sentence.clone(),
            batch.clip_video_in.clone(),
            batch.clip_text_in.clone(),
        )?;
        let global_batch = PairBatch::new(
            embeddings.video.clone(),
            embeddings.paragraph.clone(),
            batch.video_in.clone(),
            batch.paragraph_in.clone(),
        )?;
        let local = match &mut self.local {
            LocalLoss::Queue(queue) => queue.forward(&local_batch)?,
            LocalLoss::Plain(loss) => loss.forward(&local_batch)?,
        };
        let global = self.global.forward(&global_batch)?;
        let total = (&local.loss + (&global.loss * self.global_weight)?)?;
        Ok(ObjectiveReport {
            total,
            local,
            global,
        })
    }

    pub fn queue_state(&self) -> Option<QueueState> {
        match &self.local {
            LocalLoss::Queue(queue) => queue.state(),
            LocalLoss::Plain(_) => None,
        }
    }

    pub fn restore_queue(&mut self, state: QueueState) -> Result<(), LossError> {
        match &mut self.local {
            LocalLoss::Queue(queue) => queue.restore(state),
            LocalLoss::Plain(_) => Err(LossError::Config(
                "the saved run has a queue but this objective has none".into(),
            )),
        }
    }
}
