//! The losses CrossCLR is compared with, behind the same [`ContrastiveLoss`] interface. For every
//! loss here the scalar is `½ (Σ_i ω^v_i ℓ^v_i + Σ_i ω^t_i ℓ^t_i)`; these baselines weigh samples
//! uniformly (ω = 1/B).

use candle_core::{D, Tensor};

use super::assemble::l2_normalise;
use super::connectivity::{influential_mask, normalised_scores};
use super::logits::similarity;
use super::nll::{RowTargets, masked_nll};
use super::{
    ContrastiveLoss, IntraSource, LossError, LossReport, Mode, NegativeSets, PairBatch, SideReport,
};

fn positive(name: &str, value: f64) -> Result<(), LossError> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(LossError::Config(format!(
            "{name} = {value}; expected a finite number > 0"
        )))
    }
}

fn uniform(batch: usize) -> Vec<f64> {
    vec![1.0 / batch as f64; batch]
}

fn plain_side(per_sample: Tensor, batch: usize) -> SideReport {
    SideReport {
        per_sample,
        weights: uniform(batch),
        connectivity: Vec::new(),
        normalised: Vec::new(),
        influential: vec![false; batch],
        negatives: NegativeSets::none(batch, 0, IntraSource::Batch),
    }
}

/// Mean over both directions of `½(mean ℓ^v + mean ℓ^t)` from 2B per-sample losses.
fn symmetric_mean(per_sample: &Tensor) -> candle_core::Result<Tensor> {
    per_sample.mean_all()
}

/// Cross-modal cosine similarities `[v̂ t̂ᵀ ; t̂ v̂ᵀ]` (2B×B), the pair on the diagonal of each block.
fn cross_similarities(batch: &PairBatch) -> candle_core::Result<(Tensor, usize)> {
    let video = l2_normalise(&batch.video_emb)?;
    let text = l2_normalise(&batch.text_emb)?;
    let size = video.dim(0)?;
    let cross = similarity(&video, &text, None)?;
    Ok((Tensor::cat(&[&cross, &cross.t()?], 0)?, size))
}

/// Symmetric InfoNCE (CLIP): cross-entropy over the in-batch candidates of the other modality.
#[derive(Debug, Clone)]
pub struct InfoNce {
    pub tau: f64,
}

impl InfoNce {
    pub fn new(tau: f64) -> Result<Self, LossError> {
        positive("tau", tau)?;
        Ok(Self { tau })
    }
}

impl ContrastiveLoss for InfoNce {
    fn name(&self) -> String {
        "infonce".into()
    }

    fn forward(&mut self, batch: &PairBatch) -> Result<LossReport, LossError> {
        batch.validate()?;
        batch.check_embeddings()?;
        let (similarities, size) = cross_similarities(batch)?;
        let mut targets = RowTargets::cross_only(2 * size, size, 1.0 / self.tau);
        for i in 0..size {
            targets.set_positive(i, i, 1.0);
            targets.set_positive(size + i, i, 1.0);
        }
        let per_sample = masked_nll(&similarities, targets)?;
        Ok(LossReport {
            loss: symmetric_mean(&per_sample)?,
            video: plain_side(per_sample.narrow(0, 0, size)?, size),
            text: plain_side(per_sample.narrow(0, size, size)?, size),
        })
    }
}

/// COOT's max-margin (VSE hinge) loss: `(Σ_{i≠j} [m + s_ij − s_ii]₊ + [m + s_ij − s_jj]₊) / B²` on
/// cosine similarities. Per-sample values are `2/B` times each anchor's hinge sum, so that the
/// shared `½ Σ ω ℓ` rule gives COOT's normalisation.
#[derive(Debug, Clone)]
pub struct MaxMargin {
    pub margin: f64,
}

impl MaxMargin {
    /// The margin COOT trains with.
    pub const COOT_MARGIN: f64 = 0.2;

    pub fn new(margin: f64) -> Result<Self, LossError> {
        if !(margin.is_finite() && margin >= 0.0) {
            return Err(LossError::Config(format!(
                "margin = {margin}; expected a finite number >= 0 (COOT uses 0.2)"
            )));
        }
        Ok(Self { margin })
    }
}

impl Default for MaxMargin {
    fn default() -> Self {
        Self {
            margin: Self::COOT_MARGIN,
        }
    }
}

impl ContrastiveLoss for MaxMargin {
    fn name(&self) -> String {
        "maxmargin".into()
    }

    fn forward(&mut self, batch: &PairBatch) -> Result<LossReport, LossError> {
        batch.validate()?;
        batch.check_embeddings()?;
        let video = l2_normalise(&batch.video_emb)?;
        let text = l2_normalise(&batch.text_emb)?;
        let size = video.dim(0)?;
        let scores = video.matmul(&text.t()?)?;
        let matched = (&video * &text)?.sum_keepdim(D::Minus1)?; // s_ii, B×1
        let off_diagonal = Tensor::eye(size, scores.dtype(), scores.device())?.affine(-1.0, 1.0)?;
        let video_anchor = scores
            .broadcast_sub(&matched)?
            .affine(1.0, self.margin)?
            .relu()?
            .mul(&off_diagonal)?;
        let text_anchor = scores
            .broadcast_sub(&matched.t()?)?
            .affine(1.0, self.margin)?
            .relu()?
            .mul(&off_diagonal)?;
        let scale = 2.0 / size as f64;
        let video_loss = video_anchor.sum(1)?.affine(scale, 0.0)?;
        let text_loss = text_anchor.sum(0)?.affine(scale, 0.0)?;
        let loss = ((video_loss.sum_all()? + text_loss.sum_all()?)? * (0.5 / size as f64))?;
        Ok(LossReport {
            loss,
            video: plain_side(video_loss, size),
            text: plain_side(text_loss, size),
        })
    }
}

/// InfoNCE that excludes likely false negatives, after X-MLNet: a sample whose mean in-batch cosine
/// to its own modality (output embeddings) is above a threshold once normalised by the maximum is
/// removed from the cross-modal negatives (0.8 for video, 0.6 for text).
#[derive(Debug, Clone)]
pub struct XmlNet {
    pub tau: f64,
    pub video_threshold: f64,
    pub text_threshold: f64,
}

impl XmlNet {
    pub fn new(tau: f64, video_threshold: f64, text_threshold: f64) -> Result<Self, LossError> {
        positive("tau", tau)?;
        for (name, value) in [
            ("video threshold", video_threshold),
            ("text threshold", text_threshold),
        ] {
            if !value.is_finite() {
                return Err(LossError::Config(format!(
                    "{name} = {value}; expected a finite number"
                )));
            }
        }
        Ok(Self {
            tau,
            video_threshold,
            text_threshold,
        })
    }

    pub fn with_tau(tau: f64) -> Result<Self, LossError> {
        Self::new(tau, 0.8, 0.6)
    }
}

/// Row means of the cosine-similarity matrix of `embeddings` (detached): the output-space
/// connectivity X-MLNet thresholds.
fn output_connectivity(embeddings: &Tensor) -> Result<Vec<f64>, LossError> {
    let unit = l2_normalise(&embeddings.detach())?;
    Ok(unit
        .matmul(&unit.t()?)?
        .mean(1)?
        .to_dtype(candle_core::DType::F64)?
        .to_vec1::<f64>()?)
}

impl ContrastiveLoss for XmlNet {
    fn name(&self) -> String {
        "xmlnet".into()
    }

    fn forward(&mut self, batch: &PairBatch) -> Result<LossReport, LossError> {
        batch.validate()?;
        batch.check_embeddings()?;
        let (similarities, size) = cross_similarities(batch)?;
        let video_connectivity = output_connectivity(&batch.video_emb)?;
        let text_connectivity = output_connectivity(&batch.text_emb)?;
        let video_excluded =
            influential_mask(&video_connectivity, self.video_threshold, Mode::Paper);
        let text_excluded = influential_mask(&text_connectivity, self.text_threshold, Mode::Paper);
        let mut targets = RowTargets::cross_only(2 * size, size, 1.0 / self.tau);
        for (offset, excluded) in [(0, &video_excluded), (size, &text_excluded)] {
            for i in 0..size {
                targets.set_positive(offset + i, i, 1.0);
                for (j, &out) in excluded.iter().enumerate() {
                    if out && j != i {
                        targets.remove(offset + i, j);
                    }
                }
            }
        }
        let per_sample = masked_nll(&similarities, targets)?;
        let side = |per_sample: Tensor, connectivity: Vec<f64>, excluded: Vec<bool>| SideReport {
            per_sample,
            weights: uniform(size),
            normalised: normalised_scores(&connectivity, Mode::Paper),
            connectivity,
            negatives: NegativeSets {
                cross_pruned: excluded.clone(),
                ..NegativeSets::none(size, 0, IntraSource::Batch)
            },
            influential: excluded,
        };
        Ok(LossReport {
            loss: symmetric_mean(&per_sample)?,
            video: side(
                per_sample.narrow(0, 0, size)?,
                video_connectivity,
                video_excluded,
            ),
            text: side(
                per_sample.narrow(0, size, size)?,
                text_connectivity,
                text_excluded,
            ),
        })
    }
}
