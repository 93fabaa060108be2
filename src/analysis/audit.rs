//! The pruning audit: over a sweep of γ, how many of the negatives the loss prunes are true
//! semantic duplicates of their anchor (precision) and how many of the true duplicates among the
//! negatives it prunes (recall), averaged over anchors. The truth is the planted topic of a
//! `synth` project's captions, or the cosine of the captions' text-encoder features above a
//! threshold. Pruning comes from `crossclr::NegativeSets`, the loss's rule, at each γ.

use serde::Serialize;

use super::AnalysisError;
use super::negatives::loss_settings;
use super::rank::UnitRows;
use super::replay::RunReplay;
use super::samples::{Level, Samples, host_matrix};
use crate::crossclr::{IntraSource, Mode, NegativeSets, batch_connectivity, queue_connectivity};
use crate::jobs::CancelToken;
use crate::project::{Project, RunName};
use crate::synth::topic_of_caption;

/// What counts as a true duplicate of an anchor.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Truth {
    /// The same planted topic (captions of a `synth` project name it).
    Topic,
    /// Cosine of the captions' pooled text features at least `threshold`.
    Caption { threshold: f64 },
}

/// How the truth is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TruthChoice {
    /// Topics when every caption names one (a `synth` project), else captions at `threshold`.
    Auto {
        threshold: f64,
    },
    Given(Truth),
}

/// Where the pruning is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditScope {
    /// The split as one batch.
    Set,
    /// Every step of a run's epoch (from 1), as its training loop formed them, queue included.
    Run { epoch: usize },
}

/// The γ values of the default sweep: 0.5, 0.55, …, 1.0.
pub fn default_gammas() -> Vec<f64> {
    (0..=10).map(|i| 0.5 + 0.05 * f64::from(i)).collect()
}

#[derive(Debug, Clone)]
pub struct AuditRequest {
    pub scope: AuditScope,
    /// The split of the set scope (default: `train.train_split`).
    pub split: Option<String>,
    pub truth: TruthChoice,
    pub gammas: Vec<f64>,
    pub mode: Option<Mode>,
    pub run: Option<RunName>,
}

/// Precision and recall of one kind of pruning at one γ.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PruningScore {
    /// Mean over anchors with a pruned negative of (pruned true duplicates / pruned); `None` when
    /// nothing was pruned.
    pub precision: Option<f64>,
    /// Mean over anchors with a true duplicate among their negatives of (pruned true duplicates /
    /// true duplicates); `None` when no anchor has one.
    pub recall: Option<f64>,
    /// Mean pruned negatives and mean true duplicates per anchor.
    pub pruned: f64,
    pub duplicates: f64,
}

/// Both kinds of negatives of one modality's anchors.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SideScore {
    pub cross: PruningScore,
    pub intra: PruningScore,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GammaRow {
    pub gamma: f64,
    pub video: SideScore,
    pub text: SideScore,
}

/// The audit (`crossclr negatives --audit --json` prints this object).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditReport {
    pub scope: &'static str,
    pub split: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<usize>,
    pub mode: Mode,
    pub truth: Truth,
    /// Anchors per modality (clips of the split, or clip appearances over the epoch's steps).
    pub anchors: usize,
    pub sweep: Vec<GammaRow>,
}

/// Running sums of one (γ, modality, kind).
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    precision: f64,
    with_pruned: usize,
    recall: f64,
    with_duplicates: usize,
    pruned: usize,
    duplicates: usize,
    anchors: usize,
}

impl Tally {
    fn add(&mut self, pruned: usize, duplicates: usize, hits: usize) {
        self.anchors += 1;
        self.pruned += pruned;
        self.duplicates += duplicates;
        if pruned > 0 {
            self.with_pruned += 1;
            self.precision += hits as f64 / pruned as f64;
        }
        if duplicates > 0 {
            self.with_duplicates += 1;
            self.recall += hits as f64 / duplicates as f64;
        }
    }

    fn score(&self) -> PruningScore {
        let mean = |sum: f64, n: usize| (n > 0).then(|| sum / n as f64);
        let per_anchor = |total: usize| total as f64 / self.anchors.max(1) as f64;
        PruningScore {
            precision: mean(self.precision, self.with_pruned),
            recall: mean(self.recall, self.with_duplicates),
            pruned: per_anchor(self.pruned),
            duplicates: per_anchor(self.duplicates),
        }
    }
}

/// [modality][kind: cross, intra] per γ.
type Tallies = Vec<[[Tally; 2]; 2]>;

/// The truth over the samples of one split.
enum Judge {
    Topic(Vec<u32>),
    Caption { unit: UnitRows, threshold: f32 },
}

impl Judge {
    fn duplicate(&self, a: usize, b: usize) -> bool {
        match self {
            Judge::Topic(topics) => topics[a] == topics[b],
            Judge::Caption { unit, threshold } => {
                super::rank::dot(unit.row(a), unit.row(b)) >= *threshold
            }
        }
    }
}

fn judge(
    project: &Project,
    samples: &Samples,
    choice: TruthChoice,
) -> Result<(Judge, Truth), AnalysisError> {
    let entries = project.read_manifest()?.entries;
    let captions = super::samples::manifest_of(&entries, &samples.keys);
    let topics: Option<Vec<u32>> = captions
        .iter()
        .map(|e| {
            e.and_then(|e| e.caption.as_deref())
                .and_then(topic_of_caption)
        })
        .collect();
    let caption = |threshold: f64| {
        if !(threshold.is_finite() && (-1.0..=1.0).contains(&threshold)) {
            return Err(AnalysisError::Settings(format!(
                "--duplicate-threshold {threshold}: expected a cosine in [-1, 1]"
            )));
        }
        Ok((
            Judge::Caption {
                unit: UnitRows::from_matrix(&samples.text_in),
                threshold: threshold as f32,
            },
            Truth::Caption { threshold },
        ))
    };
    match (choice, topics) {
        (TruthChoice::Auto { .. } | TruthChoice::Given(Truth::Topic), Some(topics)) => {
            Ok((Judge::Topic(topics), Truth::Topic))
        }
        (TruthChoice::Given(Truth::Topic), None) => Err(AnalysisError::Settings(
            "--truth topic needs captions that name a planted topic (a `crossclr synth` project); this project's do not: use --truth caption".into(),
        )),
        (TruthChoice::Auto { threshold }, None) => caption(threshold),
        (TruthChoice::Given(Truth::Caption { threshold }), _) => caption(threshold),
    }
}

/// Runs the audit.
pub fn audit(
    project: &Project,
    request: &AuditRequest,
    progress: &mut dyn FnMut(usize, usize),
    cancel: &CancelToken,
) -> Result<AuditReport, AnalysisError> {
    let settings = loss_settings(project, request.run.as_ref())?;
    let mode = request.mode.unwrap_or(settings.crossclr.mode);
    if request.gammas.is_empty() || request.gammas.iter().any(|g| !g.is_finite()) {
        return Err(AnalysisError::Settings(
            "the γ sweep needs finite values".into(),
        ));
    }
    let gammas = &request.gammas;
    let mut tallies: Tallies = vec![Default::default(); gammas.len()];
    let (split, anchors, truth, epoch) = match request.scope {
        AuditScope::Set => {
            let split = request
                .split
                .clone()
                .unwrap_or_else(|| project.config().train.train_split.clone());
            let samples =
                Samples::load(project, std::slice::from_ref(&split), Level::Clip, cancel)?;
            let (judge, truth) = judge(project, &samples, request.truth)?;
            for (m, inputs) in [&samples.video_in, &samples.text_in]
                .into_iter()
                .enumerate()
            {
                let connectivity = batch_connectivity(&host_matrix(inputs));
                let sets: Vec<NegativeSets> = gammas
                    .iter()
                    .map(|&g| NegativeSets::of_batch(mode, g, &connectivity))
                    .collect();
                set_scope(
                    &judge,
                    &sets,
                    m,
                    &mut tallies,
                    &mut |done, total| progress(m * total + done, 2 * total),
                    cancel,
                )?;
            }
            (split, samples.len(), truth, None)
        }
        AuditScope::Run { epoch } => {
            let run = request.run.as_ref().ok_or_else(|| {
                AnalysisError::Settings(
                    "an audit of a run's batches needs a run (train one, or name it with --run)"
                        .into(),
                )
            })?;
            if mode != settings.crossclr.mode {
                return Err(AnalysisError::Settings(format!(
                    "run `{run}` was trained in {} mode; its batches cannot be replayed in {mode} mode",
                    settings.crossclr.mode
                )));
            }
            let replay = RunReplay::open(project, run)?;
            let split = replay.features.split.clone();
            let samples =
                Samples::load(project, std::slice::from_ref(&split), Level::Clip, cancel)?;
            let (judge, truth) = judge(project, &samples, request.truth)?;
            let steps = replay.steps_per_epoch();
            let mut anchors = 0;
            replay.check_step(epoch, 1)?;
            replay.replay(
                (epoch, 1),
                (epoch, steps),
                &mut |formed| {
                    anchors += formed.clips.len();
                    let sides = [
                        (&formed.local.video, &formed.clip_video_in),
                        (&formed.local.text, &formed.clip_text_in),
                    ];
                    for (m, (side, inputs)) in sides.into_iter().enumerate() {
                        let (intra_clips, intra_connectivity, source): (Vec<Option<usize>>, Vec<f64>, IntraSource) =
                            match &formed.queue {
                                Some((slots, state)) => {
                                    let bank = if m == 0 { &state.video_in } else { &state.text_in };
                                    let (_, of_slots) = queue_connectivity(inputs, bank, state.filled);
                                    (slots.clips[..state.filled].to_vec(), of_slots, IntraSource::Queue)
                                }
                                None => (formed.clips.iter().map(|&c| Some(c)).collect(), side.connectivity.clone(), IntraSource::Batch),
                            };
                        for (g, &gamma) in gammas.iter().enumerate() {
                            let sets = NegativeSets::prune(
                                mode,
                                gamma,
                                &side.connectivity,
                                &intra_connectivity,
                                side.negatives.own_intra.clone(),
                                source,
                            );
                            for (a, &clip) in formed.clips.iter().enumerate() {
                                let anchor = sets.for_anchor(a);
                                let count = |pruned: &[usize], kept: &[usize], of: &dyn Fn(usize) -> Option<usize>| {
                                    let dup = |j: usize| of(j).is_some_and(|c| judge.duplicate(clip, c));
                                    let hits = pruned.iter().filter(|&&j| dup(j)).count();
                                    let missed = kept.iter().filter(|&&j| dup(j)).count();
                                    (pruned.len(), hits + missed, hits)
                                };
                                let batch_clip = |j: usize| Some(formed.clips[j]);
                                let slot_clip = |k: usize| intra_clips[k];
                                let (p, d, h) = count(&anchor.cross_pruned, &anchor.cross_kept, &batch_clip);
                                tallies[g][m][0].add(p, d, h);
                                let (p, d, h) = count(&anchor.intra_pruned, &anchor.intra_kept, &slot_clip);
                                tallies[g][m][1].add(p, d, h);
                            }
                        }
                    }
                    Ok(())
                },
                progress,
                cancel,
            )?;
            (split, anchors, truth, Some(epoch))
        }
    };
    let sweep = gammas
        .iter()
        .zip(&tallies)
        .map(|(&gamma, t)| GammaRow {
            gamma,
            video: SideScore {
                cross: t[0][0].score(),
                intra: t[0][1].score(),
            },
            text: SideScore {
                cross: t[1][0].score(),
                intra: t[1][1].score(),
            },
        })
        .collect();
    Ok(AuditReport {
        scope: match request.scope {
            AuditScope::Set => "set",
            AuditScope::Run { .. } => "batch",
        },
        split,
        run: request.run.as_ref().map(|r| r.to_string()),
        epoch,
        mode,
        truth,
        anchors,
        sweep,
    })
}

/// The split as one batch: per anchor, per γ, the pruned negatives (every other influential
/// sample) and the true duplicates among all other samples. Topics are counted per topic; caption
/// similarity is computed a block of anchors at a time.
fn set_scope(
    judge: &Judge,
    sets: &[NegativeSets],
    modality: usize,
    tallies: &mut Tallies,
    progress: &mut dyn FnMut(usize, usize),
    cancel: &CancelToken,
) -> Result<(), AnalysisError> {
    let n = sets[0].anchors();
    let masks = |s: &NegativeSets| [s.cross_pruned.clone(), s.intra_pruned.clone()];
    let masks: Vec<[Vec<bool>; 2]> = sets.iter().map(masks).collect();
    let totals: Vec<[usize; 2]> = masks
        .iter()
        .map(|m| {
            [
                m[0].iter().filter(|&&p| p).count(),
                m[1].iter().filter(|&&p| p).count(),
            ]
        })
        .collect();
    match judge {
        Judge::Topic(topics) => {
            let topic_count = topics.iter().copied().max().map_or(0, |t| t as usize + 1);
            let mut members = vec![0usize; topic_count];
            for &t in topics {
                members[t as usize] += 1;
            }
            for (g, mask) in masks.iter().enumerate() {
                for kind in 0..2 {
                    let mut pruned_in = vec![0usize; topic_count];
                    for (i, &p) in mask[kind].iter().enumerate() {
                        if p {
                            pruned_in[topics[i] as usize] += 1;
                        }
                    }
                    for a in 0..n {
                        let own = usize::from(mask[kind][a]);
                        let t = topics[a] as usize;
                        tallies[g][modality][kind].add(
                            totals[g][kind] - own,
                            members[t] - 1,
                            pruned_in[t] - own,
                        );
                    }
                }
                progress(g + 1, masks.len());
            }
        }
        Judge::Caption { unit, threshold } => {
            let block = (super::graph::BLOCK_ENTRIES / n.max(1)).clamp(1, n.max(1));
            for start in (0..n).step_by(block) {
                if cancel.is_cancelled() {
                    return Err(AnalysisError::Cancelled);
                }
                for a in start..(start + block).min(n) {
                    let duplicates: Vec<usize> = (0..n)
                        .filter(|&j| {
                            j != a && super::rank::dot(unit.row(a), unit.row(j)) >= *threshold
                        })
                        .collect();
                    for (g, mask) in masks.iter().enumerate() {
                        for kind in 0..2 {
                            let own = usize::from(mask[kind][a]);
                            let hits = duplicates.iter().filter(|&&j| mask[kind][j]).count();
                            tallies[g][modality][kind].add(
                                totals[g][kind] - own,
                                duplicates.len(),
                                hits,
                            );
                        }
                    }
                }
                progress((start + block).min(n), n);
            }
        }
    }
    Ok(())
}
