//! The training objective: a loss at the clip/sentence level (with CrossCLR's queue) plus a
//! weighted loss at the video/paragraph level (without), `L_local + w · L_global` (w = 0.6).

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use super::data::TrainBatch;
use crate::crossclr::{
    ContrastiveLoss, CrossClr, CrossClrConfig, CrossClrQueue, InfoNce, LossError, LossReport,
    MaxMargin, Mode, PairBatch, QueueInit, QueueState, XmlNet,
};
use crate::model::Embeddings;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LossKind {
    Crossclr,
    Infonce,
    Maxmargin,
    Xmlnet,
}

impl std::fmt::Display for LossKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LossKind::Crossclr => "crossclr",
            LossKind::Infonce => "infonce",
            LossKind::Maxmargin => "maxmargin",
            LossKind::Xmlnet => "xmlnet",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossSettings {
    pub kind: LossKind,
    /// τ, κ, λ, γ, mode and multiple positives (τ also serves InfoNCE and X-MLNet).
    pub crossclr: CrossClrConfig,
    /// Queue length at the local level (0: no queue). CrossCLR only.
    pub queue: usize,
    pub global_weight: f64,
    /// Margin of the max-margin loss.
    pub margin: f64,
}

impl Default for LossSettings {
    fn default() -> Self {
        Self {
            kind: LossKind::Crossclr,
            crossclr: CrossClrConfig::default(),
            queue: 5000,
            global_weight: 0.6,
            margin: 0.2,
        }
    }
}

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

fn plain(settings: &LossSettings) -> Result<Box<dyn ContrastiveLoss>, LossError> {
    let tau = settings.crossclr.tau;
    Ok(match settings.kind {
        LossKind::Crossclr => Box::new(CrossClr::new(settings.crossclr)?),
        LossKind::Infonce => Box::new(InfoNce::new(tau)?),
        LossKind::Maxmargin => Box::new(MaxMargin::new(settings.margin)?),
        LossKind::Xmlnet => Box::new(XmlNet::with_tau(tau)?),
    })
}

impl Objective {
    /// `seed` seeds the noise an official-mode queue starts from.
    pub fn new(settings: &LossSettings, seed: u64) -> Result<Self, LossError> {
        let local = if settings.kind == LossKind::Crossclr && settings.queue > 0 {
            let init = match settings.crossclr.mode {
                Mode::Paper => QueueInit::Empty,
                Mode::Official => QueueInit::Noise { seed },
            };
            LocalLoss::Queue(Box::new(CrossClrQueue::new(
                settings.crossclr,
                settings.queue,
                init,
            )?))
        } else {
            LocalLoss::Plain(plain(settings)?)
        };
        Ok(Self {
            local,
            global: plain(settings)?,
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
