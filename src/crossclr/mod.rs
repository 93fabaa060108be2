//! The CrossCLR loss (Zolfaghari et al., ICCV 2021) and the losses it is compared with.
//!
//! Everything here is a pure function of tensors (or, for the queue, of tensors and the queue's own
//! state). The pieces the loss is made of — connectivity, normalised scores, influential masks,
//! the kept and pruned negatives of each anchor, the sample weights, the per-sample losses — are
//! returned in a [`LossReport`], because the training loop, the `loss` command and the explorer's
//! pruning view must all show the same thing: this module is the single source of truth for
//! "which negatives get pruned".
//!
//! Two modes (DESIGN.md §4): [`Mode::Paper`] follows the paper's equations; [`Mode::Official`]
//! reproduces the authors' released code, quirks included.

mod assemble;
mod baselines;
mod config;
mod connectivity;
mod error;
mod host;
mod logits;
mod negatives;
mod nll;
mod pairwise;
mod queue;

pub use baselines::{InfoNce, MaxMargin, XmlNet};
pub use config::{CrossClrConfig, LossKind, LossSettings, Mode, MultiPositive};
pub use connectivity::{
    batch_connectivity, extra_positives_of, influential_mask, normalised_scores,
    queue_connectivity, sample_weights,
};
pub use error::LossError;
pub use host::HostMatrix;
pub use negatives::{AnchorNegatives, IntraSource, NegativeSets};
pub use pairwise::CrossClr;
pub use queue::{CrossClrQueue, QueueInit, QueueState};

use candle_core::Tensor;

/// One batch of B aligned video–text pairs: row i of every tensor belongs to pair i.
#[derive(Debug, Clone)]
pub struct PairBatch {
    /// Output embeddings of the video head, B×d.
    pub video_emb: Tensor,
    /// Output embeddings of the text head, B×d.
    pub text_emb: Tensor,
    /// Input features of the videos (pooled over frames), B×Dv: they measure proximity.
    pub video_in: Tensor,
    /// Input features of the captions (pooled over tokens), B×Dt.
    pub text_in: Tensor,
}

impl PairBatch {
    pub fn new(
        video_emb: Tensor,
        text_emb: Tensor,
        video_in: Tensor,
        text_in: Tensor,
    ) -> Result<Self, LossError> {
        let batch = Self {
            video_emb,
            text_emb,
            video_in,
            text_in,
        };
        batch.validate()?;
        Ok(batch)
    }

    /// Checks ranks, the shared batch size and the shared embedding width, naming the tensor at fault.
    pub fn validate(&self) -> Result<(), LossError> {
        let named = self.named();
        for (name, tensor) in named {
            if tensor.rank() != 2 {
                return Err(LossError::Shape {
                    name: name.to_string(),
                    shape: tensor.dims().to_vec(),
                    expected: "a matrix (rank 2): one row per pair".into(),
                });
            }
            if !tensor.dtype().is_float() {
                return Err(LossError::DType {
                    name: name.to_string(),
                    dtype: format!("{:?}", tensor.dtype()),
                });
            }
        }
        let rows = self.video_emb.dim(0)?;
        for (name, tensor) in named.iter().skip(1) {
            if tensor.dim(0)? != rows {
                return Err(LossError::BatchMismatch {
                    first: "video_emb".into(),
                    first_shape: self.video_emb.dims().to_vec(),
                    other: name.to_string(),
                    other_shape: tensor.dims().to_vec(),
                });
            }
        }
        if rows == 0 {
            return Err(LossError::Shape {
                name: "video_emb".into(),
                shape: self.video_emb.dims().to_vec(),
                expected: "at least one pair".into(),
            });
        }
        if self.video_emb.dim(1)? != self.text_emb.dim(1)? {
            return Err(LossError::Shape {
                name: "text_emb".into(),
                shape: self.text_emb.dims().to_vec(),
                expected: format!(
                    "the joint width d of video_emb {:?} (both heads embed into one space)",
                    self.video_emb.dims()
                ),
            });
        }
        if self.video_emb.dtype() != self.text_emb.dtype() {
            return Err(LossError::Config(format!(
                "video_emb is {:?} but text_emb is {:?}: the embeddings must share one dtype",
                self.video_emb.dtype(),
                self.text_emb.dtype()
            )));
        }
        Ok(())
    }

    /// Refuses an embedding that holds NaN or ±∞, naming the tensor, row and column: no loss
    /// of it is defined, and a queue would keep it for later batches. One reduction per
    /// embedding on its device; the host copy that finds the value is made only when there is
    /// one. (The input features are checked where they are copied to the host.)
    pub fn check_embeddings(&self) -> Result<(), LossError> {
        for (name, tensor) in [("video_emb", &self.video_emb), ("text_emb", &self.text_emb)] {
            let sum = tensor
                .sum_all()?
                .to_dtype(candle_core::DType::F64)?
                .to_scalar::<f64>()?;
            if !sum.is_finite() {
                // A sum of huge finite values can overflow; the host copy decides.
                HostMatrix::from_tensor(tensor, name)?;
            }
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.video_emb.dims().first().copied().unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn named(&self) -> [(&'static str, &Tensor); 4] {
        [
            ("video_emb", &self.video_emb),
            ("text_emb", &self.text_emb),
            ("video_in", &self.video_in),
            ("text_in", &self.text_in),
        ]
    }
}

/// What the loss did to one direction of a batch: video→text rows ([`LossReport::video`]) or
/// text→video rows ([`LossReport::text`]).
#[derive(Debug, Clone)]
pub struct SideReport {
    /// Per-anchor loss ℓ_i, shape (B,), differentiable.
    pub per_sample: Tensor,
    /// Sample weights ω_i (they sum to 1).
    pub weights: Vec<f64>,
    /// Connectivity c_i of each anchor (empty for losses that do not use it).
    pub connectivity: Vec<f64>,
    /// c_i / max(c): the score compared with γ (empty for losses that do not use it).
    pub normalised: Vec<f64>,
    /// Anchors whose normalised score exceeds γ: the influential samples.
    pub influential: Vec<bool>,
    /// Which negatives each anchor kept and which were pruned.
    pub negatives: NegativeSets,
}

/// The result of one loss evaluation: the differentiable scalar and its explanation.
#[derive(Debug, Clone)]
pub struct LossReport {
    /// The scalar loss to minimise (rank 0).
    pub loss: Tensor,
    /// Video anchors against text candidates (and intra-modal video negatives).
    pub video: SideReport,
    /// Text anchors against video candidates (and intra-modal text negatives).
    pub text: SideReport,
}

impl LossReport {
    /// The loss as a plain number.
    pub fn value(&self) -> Result<f64, LossError> {
        Ok(self
            .loss
            .to_dtype(candle_core::DType::F64)?
            .to_scalar::<f64>()?)
    }

    /// Fraction of all candidate negatives (both directions, cross- and intra-modal) that were pruned.
    pub fn pruned_fraction(&self) -> f64 {
        let (pruned_v, total_v) = self.video.negatives.pruned_and_total();
        let (pruned_t, total_t) = self.text.negatives.pruned_and_total();
        let total = total_v + total_t;
        if total == 0 {
            0.0
        } else {
            (pruned_v + pruned_t) as f64 / total as f64
        }
    }
}

/// The interface every contrastive loss here shares: CrossCLR (with or without a queue) and the
/// alternatives it is compared with. `forward` takes `&mut self` because a queue changes with
/// every batch.
pub trait ContrastiveLoss: Send {
    /// A short name for tables and logs.
    fn name(&self) -> String;
    /// Evaluates the loss on one batch.
    fn forward(&mut self, batch: &PairBatch) -> Result<LossReport, LossError>;
}
