//! What the loss keeps and prunes for one anchor: over a whole split taken as one batch (the
//! paper's Fig. 4), or inside the batch a run's training loop formed at an epoch and step, queue
//! included ([`super::replay`]). The sets come from `crossclr::NegativeSets` — the loss's own rule.

use serde::Serialize;
use serde::ser::SerializeMap;

use super::AnalysisError;
use super::replay::RunReplay;
use super::samples::{Level, Modality, Samples, host_matrix};
use crate::crossclr::{
    AnchorNegatives, HostMatrix, IntraSource, LossSettings, Mode, NegativeSets, batch_connectivity,
    extra_positives_of, normalised_scores, queue_connectivity,
};
use crate::jobs::CancelToken;
use crate::project::{Project, RunName};
use crate::train::{epoch_batches, run_settings};

/// Which batch the anchor is explained in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The whole split as one batch, no queue.
    Set,
    /// The batch run's training loop formed at `epoch`, `step` (both from 1).
    Batch { epoch: usize, step: usize },
    /// The batch of `epoch` (from 1) that holds the anchor, whichever step that is.
    AnchorBatch { epoch: usize },
}

/// What to explain.
#[derive(Debug, Clone)]
pub struct NegativesRequest {
    pub anchor: String,
    /// The split of the set scope (default: `train.train_split`; the batch scope always replays
    /// the training split).
    pub split: Option<String>,
    pub modality: Modality,
    /// Default: the run's (else the project's) loss settings.
    pub mode: Option<Mode>,
    pub gamma: Option<f64>,
    pub scope: Scope,
    /// The run whose settings apply (required by the batch scope).
    pub run: Option<RunName>,
}

/// A negative candidate of the anchor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    /// The clip; `null` for a queue slot that holds the noise an official-mode queue starts with.
    pub key: Option<String>,
    /// The queue slot, for intra-modal candidates from the queue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<usize>,
    /// `c/max c` of the candidate (among the batch, or among the filled queue slots).
    pub score: f64,
    /// Cosine of its pooled input features to the anchor's, in the anchor's modality.
    pub similarity: f64,
}

/// (key, value) pairs written as one JSON object, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Keyed(pub Vec<(String, f64)>);

impl Serialize for Keyed {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// The queue at the explained step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QueueInfo {
    pub capacity: usize,
    pub filled: usize,
    pub pointer: usize,
}

/// One anchor explained (`crossclr negatives --json` prints this object).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnchorExplanation {
    pub anchor: String,
    pub modality: Modality,
    pub scope: &'static str,
    pub mode: Mode,
    pub gamma: f64,
    pub split: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
    /// Samples in the batch (the split's size for the set scope).
    pub batch: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueInfo>,
    /// The anchor's pair, then its extra positives when the loss has multiple positives.
    pub positive: Vec<String>,
    /// Batch members whose score exceeds γ.
    pub influential: Vec<String>,
    /// Cross-modal negatives kept.
    pub kept: Vec<Candidate>,
    /// Intra-modal negatives kept (batch members, or queue slots).
    pub kept_intra: Vec<Candidate>,
    pub pruned_cross: Vec<Candidate>,
    pub pruned_intra: Vec<Candidate>,
    /// Connectivity `c` of every batch member, in the anchor's modality.
    pub connectivity: Keyed,
}

/// The loss settings that apply: the run's when there is one, else the project's.
pub fn loss_settings(
    project: &Project,
    run: Option<&RunName>,
) -> Result<LossSettings, AnalysisError> {
    Ok(match run {
        Some(run) => run_settings(project, run)?.loss,
        None => project.config().loss.settings(),
    })
}

fn check_gamma(gamma: f64) -> Result<f64, AnalysisError> {
    if gamma.is_finite() {
        Ok(gamma)
    } else {
        Err(AnalysisError::Settings(format!(
            "--gamma {gamma}: expected a finite threshold (0.9 in the paper)"
        )))
    }
}

fn cosine64(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = (a.iter().map(|x| x * x).sum::<f64>() * b.iter().map(|y| y * y).sum::<f64>()).sqrt();
    if norm > 0.0 { dot / norm } else { 0.0 }
}

/// The pieces an explanation is assembled from, in the batch's index space.
struct Batch<'a> {
    keys: Vec<String>,
    inputs: &'a HostMatrix,
    connectivity: Vec<f64>,
    /// Intra-modal candidates: their keys (or none for noise slots), inputs and connectivity.
    intra_keys: Vec<Option<String>>,
    intra_inputs: &'a HostMatrix,
    intra_connectivity: Vec<f64>,
    sets: NegativeSets,
}

fn explain(
    batch: Batch<'_>,
    anchor: usize,
    mode: Mode,
    extra_positives: Option<usize>,
) -> (Vec<String>, Vec<String>, [Vec<Candidate>; 4], Keyed) {
    let score = normalised_scores(&batch.connectivity, mode);
    let intra_score = normalised_scores(&batch.intra_connectivity, mode);
    let x = batch.inputs.row(anchor);
    let queue = batch.sets.intra_source == IntraSource::Queue;
    let cross = |j: usize| Candidate {
        key: Some(batch.keys[j].clone()),
        slot: None,
        score: score[j],
        similarity: cosine64(x, batch.inputs.row(j)),
    };
    let intra = |k: usize| Candidate {
        key: batch.intra_keys[k].clone(),
        slot: queue.then_some(k),
        score: intra_score[k],
        similarity: cosine64(x, batch.intra_inputs.row(k)),
    };
    let sets = batch.sets.for_anchor(anchor);
    let mut positive = vec![batch.keys[anchor].clone()];
    if let Some(k) = extra_positives {
        let dots: Vec<f64> = (0..batch.inputs.rows())
            .map(|j| batch.inputs.row(j).iter().zip(x).map(|(a, b)| a * b).sum())
            .collect();
        positive.extend(
            extra_positives_of(&dots, anchor, k, mode)
                .into_iter()
                .map(|j| batch.keys[j].clone()),
        );
    }
    let influential = batch
        .sets
        .cross_pruned
        .iter()
        .enumerate()
        .filter(|&(_, &p)| p)
        .map(|(j, _)| batch.keys[j].clone())
        .collect();
    let lists = [
        sets.cross_kept.iter().map(|&j| cross(j)).collect(),
        sets.intra_kept.iter().map(|&k| intra(k)).collect(),
        sets.cross_pruned.iter().map(|&j| cross(j)).collect(),
        sets.intra_pruned.iter().map(|&k| intra(k)).collect(),
    ];
    let connectivity = Keyed(
        batch
            .keys
            .iter()
            .cloned()
            .zip(batch.connectivity.iter().copied())
            .collect(),
    );
    (positive, influential, lists, connectivity)
}

/// One anchor's positive and negatives when the batch is a whole split held in memory, from the
/// loss's own rule: `connectivity` is the split's (one modality), `anchor` an index into it. The
/// explorer's pruning view calls this on every γ change, so it allocates nothing N×N.
pub fn split_negatives(
    connectivity: &[f64],
    anchor: usize,
    mode: Mode,
    gamma: f64,
) -> AnchorNegatives {
    NegativeSets::of_batch(mode, gamma, connectivity).for_anchor(anchor)
}

/// Explains the request's anchor.
pub fn explain_anchor(
    project: &Project,
    request: &NegativesRequest,
    progress: &mut dyn FnMut(usize, usize),
    cancel: &CancelToken,
) -> Result<AnchorExplanation, AnalysisError> {
    let settings = loss_settings(project, request.run.as_ref())?;
    let mode = request.mode.unwrap_or(settings.crossclr.mode);
    let gamma = check_gamma(request.gamma.unwrap_or(settings.crossclr.gamma))?;
    let extra = settings.crossclr.multi_positive.map(|m| m.k);
    match request.scope {
        Scope::Set => {
            let split = request
                .split
                .clone()
                .unwrap_or_else(|| project.config().train.train_split.clone());
            let samples =
                Samples::load(project, std::slice::from_ref(&split), Level::Clip, cancel)?;
            let anchor = samples.index_of(&request.anchor)?;
            let inputs = host_matrix(samples.input(request.modality));
            let connectivity = batch_connectivity(&inputs);
            let sets = NegativeSets::of_batch(mode, gamma, &connectivity);
            let batch = Batch {
                keys: samples.keys.clone(),
                inputs: &inputs,
                connectivity: connectivity.clone(),
                intra_keys: samples.keys.iter().cloned().map(Some).collect(),
                intra_inputs: &inputs,
                intra_connectivity: connectivity,
                sets,
            };
            let size = samples.len();
            let (
                positive,
                influential,
                [kept, kept_intra, pruned_cross, pruned_intra],
                connectivity,
            ) = explain(batch, anchor, mode, extra);
            Ok(AnchorExplanation {
                anchor: request.anchor.clone(),
                modality: request.modality,
                scope: "set",
                mode,
                gamma,
                split,
                run: request.run.as_ref().map(|r| r.to_string()),
                epoch: None,
                step: None,
                batch: size,
                queue: None,
                positive,
                influential,
                kept,
                kept_intra,
                pruned_cross,
                pruned_intra,
                connectivity,
            })
        }
        Scope::Batch { epoch, .. } | Scope::AnchorBatch { epoch } => {
            let asked_step = match request.scope {
                Scope::Batch { step, .. } => Some(step),
                _ => None,
            };
            let run = request.run.as_ref().ok_or_else(|| {
                AnalysisError::Settings("--scope batch replays a run's training batches: the project has no run (train one, or name it with --run)".into())
            })?;
            if mode != settings.crossclr.mode {
                return Err(AnalysisError::Settings(format!(
                    "run `{run}` was trained in {} mode; its batches cannot be replayed in {mode} mode (use --scope set to compare modes)",
                    settings.crossclr.mode
                )));
            }
            let replay = RunReplay::open(project, run)?;
            replay.check_step(epoch, asked_step.unwrap_or(1))?;
            let train_split = replay.features.split.clone();
            if let Some(split) = &request.split
                && *split != train_split
            {
                return Err(AnalysisError::Settings(format!(
                    "--scope batch explains the training split `{train_split}` the run's batches come from, not `{split}`"
                )));
            }
            let keys = &replay.features.clip_keys;
            let Some(anchor_clip) = keys.iter().position(|k| *k == request.anchor) else {
                return Err(AnalysisError::UnknownKey {
                    what: "clip",
                    key: request.anchor.clone(),
                    place: format!("the training split `{train_split}`"),
                    hint: keys.first().map(|k| format!("keys look like `{k}`")),
                });
            };
            let corpus = replay.corpus();
            let video = corpus.groups.iter().position(|g| g.contains(&anchor_clip));
            let Some(video) = video else {
                return Err(AnalysisError::Settings(format!(
                    "clip `{}` is in the videos held out of training to select the checkpoint; run `{run}` never trained on it",
                    request.anchor
                )));
            };
            let holding = epoch_batches(&replay.settings, corpus.num_videos(), epoch)
                .iter()
                .position(|b| b.contains(&video))
                .map(|s| s + 1)
                .unwrap_or(0);
            if holding == 0 {
                return Err(AnalysisError::Settings(format!(
                    "clip `{}` is in no batch of epoch {epoch} of run `{run}`",
                    request.anchor
                )));
            }
            let step = asked_step.unwrap_or(holding);
            if holding != step {
                return Err(AnalysisError::Settings(format!(
                    "clip `{}` is not in the batch of epoch {epoch}, step {step}; in epoch {epoch} it is in step {holding}",
                    request.anchor
                )));
            }
            let formed = replay.step(epoch, step, progress, cancel)?;
            let anchor = formed
                .clips
                .iter()
                .position(|&c| c == anchor_clip)
                .expect("the anchor's video is in the batch");
            let side = match request.modality {
                Modality::Video => &formed.local.video,
                Modality::Text => &formed.local.text,
            };
            let inputs = match request.modality {
                Modality::Video => &formed.clip_video_in,
                Modality::Text => &formed.clip_text_in,
            };
            let batch_keys: Vec<String> = formed.clips.iter().map(|&c| keys[c].clone()).collect();
            let connectivity = side.connectivity.clone();
            let run_gamma = settings.crossclr.gamma;
            let (batch, queue) = match &formed.queue {
                Some((slots, state)) => {
                    let bank = match request.modality {
                        Modality::Video => &state.video_in,
                        Modality::Text => &state.text_in,
                    };
                    let (_, intra_connectivity) = queue_connectivity(inputs, bank, state.filled);
                    // The loss's own sets, or the same rule at another γ.
                    let sets = if gamma == run_gamma {
                        side.negatives.clone()
                    } else {
                        NegativeSets::prune(
                            mode,
                            gamma,
                            &connectivity,
                            &intra_connectivity,
                            side.negatives.own_intra.clone(),
                            IntraSource::Queue,
                        )
                    };
                    let intra_keys = slots.clips[..state.filled]
                        .iter()
                        .map(|c| c.map(|c| keys[c].clone()))
                        .collect();
                    let info = QueueInfo {
                        capacity: state.capacity,
                        filled: state.filled,
                        pointer: state.pointer,
                    };
                    (
                        Batch {
                            keys: batch_keys,
                            inputs,
                            connectivity,
                            intra_keys,
                            intra_inputs: bank,
                            intra_connectivity,
                            sets,
                        },
                        Some(info),
                    )
                }
                None => {
                    let sets = if gamma == run_gamma {
                        side.negatives.clone()
                    } else {
                        NegativeSets::of_batch(mode, gamma, &connectivity)
                    };
                    let intra_keys = batch_keys.iter().cloned().map(Some).collect();
                    (
                        Batch {
                            keys: batch_keys,
                            inputs,
                            intra_connectivity: connectivity.clone(),
                            connectivity,
                            intra_keys,
                            intra_inputs: inputs,
                            sets,
                        },
                        None,
                    )
                }
            };
            let size = formed.clips.len();
            let (
                positive,
                influential,
                [kept, kept_intra, pruned_cross, pruned_intra],
                connectivity,
            ) = explain(batch, anchor, mode, extra);
            Ok(AnchorExplanation {
                anchor: request.anchor.clone(),
                modality: request.modality,
                scope: "batch",
                mode,
                gamma,
                split: train_split,
                run: Some(run.to_string()),
                epoch: Some(epoch),
                step: Some(step),
                batch: size,
                queue,
                positive,
                influential,
                kept,
                kept_intra,
                pruned_cross,
                pruned_intra,
                connectivity,
            })
        }
    }
}
