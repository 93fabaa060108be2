//! The part of CrossCLR shared by the no-queue and queue variants: from normalised embeddings,
//! intra-modal banks and the connectivity of anchors and candidates to the logits, their masks,
//! the per-sample losses, the weights and the report.

use candle_core::{D, Tensor};

use super::connectivity::{
    influential_mask, normalised_scores, official_kept_intra, sample_weights,
};
use super::nll::{RowTargets, masked_nll};
use super::{CrossClrConfig, IntraSource, LossError, LossReport, Mode, NegativeSets, SideReport};

/// What one direction needs besides the embeddings.
#[derive(Debug, Clone)]
pub(crate) struct SideInputs {
    /// Connectivity of the anchors (B): sample weights, influence, cross-modal pruning.
    pub connectivity: Vec<f64>,
    /// Connectivity of the intra-modal candidates (M): intra-modal pruning.
    pub intra_connectivity: Vec<f64>,
    /// The intra column each anchor treats as itself.
    pub own_intra: Vec<Option<usize>>,
    pub intra_source: IntraSource,
    /// Extra positives of each anchor (multiple positives), as batch indices.
    pub extra_positives: Option<Vec<Vec<usize>>>,
}

struct SidePlan {
    inputs: SideInputs,
    normalised: Vec<f64>,
    influential: Vec<bool>,
    weights: Vec<f64>,
    negatives: NegativeSets,
}

fn plan_side(config: &CrossClrConfig, inputs: SideInputs) -> SidePlan {
    let mode = config.mode;
    let influential = influential_mask(&inputs.connectivity, config.gamma, mode);
    let intra_pruned = match mode {
        Mode::Paper => influential_mask(&inputs.intra_connectivity, config.gamma, mode),
        Mode::Official => official_kept_intra(&inputs.intra_connectivity, config.gamma)
            .into_iter()
            .map(|kept| !kept)
            .collect(),
    };
    let negatives = NegativeSets {
        cross_pruned: influential.clone(),
        intra_pruned,
        own_intra: inputs.own_intra.clone(),
        intra_source: inputs.intra_source,
    };
    SidePlan {
        normalised: normalised_scores(&inputs.connectivity, mode),
        weights: sample_weights(&inputs.connectivity, config.kappa, mode),
        influential,
        negatives,
        inputs,
    }
}

/// Row-wise L2 normalisation with the rule of `F.normalize`: `x / max(‖x‖, 1e-12)`.
/// The clamp sits under the square root so that a zero row has a zero gradient, not NaN.
pub(crate) fn l2_normalise(x: &Tensor) -> candle_core::Result<Tensor> {
    let norm = x.sqr()?.sum_keepdim(D::Minus1)?.maximum(1e-24)?.sqrt()?;
    x.broadcast_div(&norm)
}

/// Logits of one direction, `[cross | intra]`, and the constants that go with them.
fn direction_logits(
    config: &CrossClrConfig,
    anchors: &Tensor,
    cross: &Tensor,
    bank: &Tensor,
    plan: &SidePlan,
    targets: &mut RowTargets,
    row_offset: usize,
) -> candle_core::Result<Tensor> {
    let batch = plan.negatives.cross_pruned.len();
    let intra = anchors.matmul(&bank.t()?)?;
    let official = config.mode == Mode::Official;
    let (cross, intra) = match config.mode {
        Mode::Paper => (
            cross.affine(1.0 / config.tau, 0.0)?,
            intra.affine(1.0 / config.tau, config.lambda.ln())?,
        ),
        Mode::Official => (
            cross.affine(1.0 / config.tau, 0.0)?,
            intra.affine(config.lambda / config.tau, 0.0)?,
        ),
    };
    for i in 0..batch {
        let row = row_offset + i;
        for (j, &pruned) in plan.negatives.cross_pruned.iter().enumerate() {
            if pruned && j != i {
                if official {
                    targets.zero(row, j);
                } else {
                    targets.remove(row, j);
                }
            }
        }
        for (k, &pruned) in plan.negatives.intra_pruned.iter().enumerate() {
            if pruned {
                targets.remove(row, batch + k);
            }
        }
        if let Some(own) = plan.negatives.own_intra[i] {
            if official {
                targets.zero(row, batch + own);
            } else {
                targets.remove(row, batch + own);
            }
        }
        targets.set_positive(row, i, 1.0);
        if let Some(extra) = &plan.inputs.extra_positives {
            let beta = config.multi_positive.map_or(0.0, |m| m.beta);
            for &j in &extra[i] {
                targets.set_positive(row, j, beta);
            }
        }
    }
    Tensor::cat(&[&cross, &intra], 1)
}

/// Evaluates CrossCLR for normalised embeddings `video`, `text` (B×d) against intra-modal banks
/// (M×d: the batch itself, or the queue).
pub(crate) fn crossclr_report(
    config: &CrossClrConfig,
    video: &Tensor,
    text: &Tensor,
    video_bank: &Tensor,
    text_bank: &Tensor,
    video_side: SideInputs,
    text_side: SideInputs,
) -> Result<LossReport, LossError> {
    let batch = video.dim(0)?;
    let video_plan = plan_side(config, video_side);
    let text_plan = plan_side(config, text_side);
    let candidates = video_plan.negatives.intra_pruned.len();
    if text_plan.negatives.intra_pruned.len() != candidates {
        return Err(LossError::Config(format!(
            "the video side has {candidates} intra-modal candidates but the text side has {}",
            text_plan.negatives.intra_pruned.len()
        )));
    }
    let cols = batch + candidates;
    let mut targets = RowTargets::new(2 * batch, cols);
    let cross = video.matmul(&text.t()?)?;
    let cross_t = cross.t()?;
    let video_rows = direction_logits(
        config,
        video,
        &cross,
        video_bank,
        &video_plan,
        &mut targets,
        0,
    )?;
    let text_rows = direction_logits(
        config,
        text,
        &cross_t,
        text_bank,
        &text_plan,
        &mut targets,
        batch,
    )?;
    let logits = Tensor::cat(&[&video_rows, &text_rows], 0)?;
    let per_sample = masked_nll(&logits, &targets)?;
    let weights: Vec<f64> = video_plan
        .weights
        .iter()
        .chain(&text_plan.weights)
        .copied()
        .collect();
    let weight_tensor =
        Tensor::from_vec(weights, 2 * batch, per_sample.device())?.to_dtype(per_sample.dtype())?;
    let loss = (per_sample.mul(&weight_tensor)?.sum_all()? * 0.5)?;
    let side = |plan: SidePlan, per_sample: Tensor| SideReport {
        per_sample,
        weights: plan.weights,
        connectivity: plan.inputs.connectivity,
        normalised: plan.normalised,
        influential: plan.influential,
        negatives: plan.negatives,
    };
    Ok(LossReport {
        loss,
        video: side(video_plan, per_sample.narrow(0, 0, batch)?),
        text: side(text_plan, per_sample.narrow(0, batch, batch)?),
    })
}
