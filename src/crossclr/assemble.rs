//! The part of CrossCLR shared by the no-queue and queue variants: from normalised embeddings,
//! intra-modal banks and the connectivity of anchors and candidates to the similarity matrix, the
//! status of its entries, the per-sample losses, the weights and the report.

use candle_core::Tensor;

use super::connectivity::{influential_mask, normalised_scores, sample_weights};
use super::logits::{similarity, unit_rows};
use super::nll::{Affine, CROSS, INTRA, REMOVED, RowTargets, ZEROED, gram_nll, masked_nll};
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

/// Where the intra-modal candidates of the anchors come from.
pub(crate) enum Banks<'a> {
    /// The batch itself: one Gram matrix of `[v̂; t̂]` holds every block.
    Batch,
    /// The filled queue slots (F×d each), constants.
    Queue { video: &'a Tensor, text: &'a Tensor },
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
    let negatives = NegativeSets::prune(
        mode,
        config.gamma,
        &inputs.connectivity,
        &inputs.intra_connectivity,
        inputs.own_intra.clone(),
        inputs.intra_source,
    );
    let influential = influential_mask(&inputs.connectivity, config.gamma, mode);
    SidePlan {
        normalised: normalised_scores(&inputs.connectivity, mode),
        weights: sample_weights(&inputs.connectivity, config.kappa, mode),
        influential,
        negatives,
        inputs,
    }
}

/// Row-wise L2 normalisation with the rule of `F.normalize`: `x / max(‖x‖, 1e-12)`.
pub(crate) fn l2_normalise(x: &Tensor) -> candle_core::Result<Tensor> {
    unit_rows(x)
}

/// Writes the statuses and positives of one direction's rows: rows `row_offset..row_offset + B`,
/// whose cross candidates sit at columns `cross_at..cross_at + B` and intra candidates at
/// `intra_at..intra_at + M`.
fn fill_direction(
    config: &CrossClrConfig,
    plan: &SidePlan,
    targets: &mut RowTargets,
    row_offset: usize,
    cross_at: usize,
    intra_at: usize,
) {
    let official = config.mode == Mode::Official;
    let cols = targets.cols;
    // Pruning is per candidate, so one template row serves every anchor of the direction.
    let mut template = vec![REMOVED; cols];
    for (j, &pruned) in plan.negatives.cross_pruned.iter().enumerate() {
        template[cross_at + j] = match (pruned, official) {
            (false, _) => CROSS,
            (true, true) => ZEROED,
            (true, false) => REMOVED,
        };
    }
    for (k, &pruned) in plan.negatives.intra_pruned.iter().enumerate() {
        template[intra_at + k] = if pruned { REMOVED } else { INTRA };
    }
    let beta = config.multi_positive.map_or(0.0, |m| m.beta);
    for (i, own) in plan.negatives.own_intra.iter().enumerate() {
        let row = row_offset + i;
        let status = &mut targets.status[row * cols..(row + 1) * cols];
        status.copy_from_slice(&template);
        status[cross_at + i] = CROSS; // the positive is never pruned
        if let Some(own) = own {
            let entry = &mut status[intra_at + own];
            *entry = match (*entry, official) {
                (REMOVED, _) => REMOVED,
                (_, true) => ZEROED,
                (_, false) => REMOVED,
            };
        }
        targets.set_positive(row, cross_at + i, 1.0);
        if let Some(extra) = &plan.inputs.extra_positives {
            for &j in &extra[i] {
                targets.set_positive(row, cross_at + j, beta);
            }
        }
    }
}

/// Evaluates CrossCLR for normalised embeddings `video`, `text` (B×d) against intra-modal banks.
pub(crate) fn crossclr_report(
    config: &CrossClrConfig,
    video: &Tensor,
    text: &Tensor,
    banks: Banks<'_>,
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
    let mut targets = RowTargets::cross_only(2 * batch, cols, 1.0 / config.tau);
    targets.intra = match config.mode {
        Mode::Paper => Affine {
            scale: 1.0 / config.tau,
            offset: config.lambda.ln(),
        },
        Mode::Official => Affine::scale(config.lambda / config.tau),
    };
    let per_sample = match banks {
        // Rows and columns both run over [videos; texts]: video rows see the videos as intra
        // candidates and the texts as cross ones, text rows the other way round.
        Banks::Batch => {
            fill_direction(config, &video_plan, &mut targets, 0, batch, 0);
            fill_direction(config, &text_plan, &mut targets, batch, 0, batch);
            gram_nll(&Tensor::cat(&[video, text], 0)?, targets)?
        }
        // Every row sees [the other modality's batch | its own modality's queue].
        Banks::Queue {
            video: video_bank,
            text: text_bank,
        } => {
            fill_direction(config, &video_plan, &mut targets, 0, 0, batch);
            fill_direction(config, &text_plan, &mut targets, batch, 0, batch);
            let video_rows = similarity(video, text, Some(video_bank))?;
            let text_rows = similarity(text, video, Some(text_bank))?;
            masked_nll(&Tensor::cat(&[&video_rows, &text_rows], 0)?, targets)?
        }
    };
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
