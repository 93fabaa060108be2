//! The training loop: batches of whole videos, the objective, RAdam with warm-up and
//! reduce-on-plateau, validation every epoch, the best checkpoint by the validation split, and a
//! state saved at every epoch end (and on cancel) from which `--resume` continues exactly.

use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::TrainError;
use super::data::{BatchLimits, CorpusView, make_batch};
use super::evaluate::{RetrievalReport, embed_corpus, retrieval};
use super::objective::Objective;
use super::radam::{RAdam, RAdamConfig};
use super::schedule::{LrSchedule, PlateauConfig};
use super::state::{self, Accumulator, Best, Progress};
use crate::crossclr::LossSettings;
use crate::jobs::{CancelToken, ProgressSender};
use crate::model::{
    CheckpointMeta, EmbeddingHead, Embeddings, EncoderSpec, HeadConfig, Mode, checkpoint_bytes,
    initialise,
};

/// Everything a run is made of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub head: HeadConfig,
    pub loss: LossSettings,
    pub optimizer: RAdamConfig,
    pub epochs: usize,
    pub videos_per_batch: usize,
    pub warmup_epochs: usize,
    pub plateau: PlateauConfig,
    pub seed: u64,
    pub max_steps: usize,
    pub max_context_steps: usize,
    pub video_encoder: EncoderSpec,
    pub text_encoder: EncoderSpec,
}

impl TrainConfig {
    pub fn limits(&self) -> BatchLimits {
        BatchLimits {
            max_steps: self.max_steps,
            max_context_steps: self.max_context_steps,
        }
    }
}

/// What a run reports after each epoch (one line of `metrics.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Counted from 1, like every epoch a user sees.
    pub epoch: usize,
    pub lr: f64,
    pub loss: f64,
    pub loss_local: f64,
    pub loss_global: f64,
    /// Mean fraction of candidate negatives pruned per step, both levels and directions.
    pub pruned_fraction: f64,
    pub validation: RetrievalReport,
    /// Mean of R@1, R@5, R@10 over the four validation directions: what selects the checkpoint.
    pub score: f64,
    pub best: bool,
    pub steps: usize,
    /// Wall-clock seconds of the epoch's training steps in this process (after a resume, only
    /// those run since).
    pub seconds: f64,
}

/// Progress of a run. Epochs and steps are counted from 1.
#[derive(Debug, Clone, PartialEq)]
pub enum TrainEvent {
    Started {
        first_epoch: usize,
        epochs: usize,
        steps_per_epoch: usize,
        parameters: usize,
    },
    Step {
        epoch: usize,
        step: usize,
        steps: usize,
        /// `loss_local + global_weight · loss_global`.
        loss: f64,
        loss_local: f64,
        loss_global: f64,
        /// The step's fraction of candidate negatives pruned, both levels and directions.
        pruned: f64,
        lr: f64,
    },
    Validating {
        epoch: usize,
    },
    Epoch(Box<EpochRecord>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    /// Stopped on request in `epoch` (from 1) after `steps_done` of its steps; the state is saved.
    Cancelled {
        epoch: usize,
        steps_done: usize,
    },
}

/// Where a run keeps what it writes. The caller decides how (the CLI writes atomically into the
/// project's `runs/<name>/`).
pub trait RunStore {
    fn append_metrics(&mut self, record: &EpochRecord) -> Result<(), TrainError>;
    fn save_checkpoint(&mut self, weights: &[u8], sidecar: &str) -> Result<(), TrainError>;
    fn save_state(&mut self, state: &[u8]) -> Result<(), TrainError>;
    fn load_state(&mut self) -> Result<Option<Vec<u8>>, TrainError>;
}

/// Keeps what a run writes in memory, for tests, benchmarks and previews that need no files.
/// Metrics of an epoch that is written again (a resumed run) replace the earlier ones.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    pub metrics: Vec<EpochRecord>,
    /// Weights (safetensors bytes) and the JSON sidecar of the best epoch.
    pub checkpoint: Option<(Vec<u8>, String)>,
    pub state: Option<Vec<u8>>,
}

impl RunStore for MemoryStore {
    fn append_metrics(&mut self, record: &EpochRecord) -> Result<(), TrainError> {
        self.metrics.retain(|r| r.epoch < record.epoch);
        self.metrics.push(record.clone());
        Ok(())
    }
    fn save_checkpoint(&mut self, weights: &[u8], sidecar: &str) -> Result<(), TrainError> {
        self.checkpoint = Some((weights.to_vec(), sidecar.to_string()));
        Ok(())
    }
    fn save_state(&mut self, state: &[u8]) -> Result<(), TrainError> {
        self.state = Some(state.to_vec());
        Ok(())
    }
    fn load_state(&mut self) -> Result<Option<Vec<u8>>, TrainError> {
        Ok(self.state.clone())
    }
}

/// A 64-bit mix (SplitMix64's finaliser): independent seeds for each epoch and step.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn epoch_order(videos: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..videos).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(
        mix(seed ^ mix(epoch as u64)),
    ));
    order
}

/// The batches of epoch `epoch` (counted from 1): the videos of each step, in step order. The
/// training loop forms its batches here; replaying a run (`analysis`) asks it for the same ones.
pub fn epoch_batches(config: &TrainConfig, videos: usize, epoch: usize) -> Vec<Vec<usize>> {
    epoch_order(videos, config.seed, epoch.saturating_sub(1))
        .chunks(config.videos_per_batch.max(1))
        .map(<[usize]>::to_vec)
        .collect()
}

fn step_rng(seed: u64, epoch: usize, batch: usize) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(mix(
        mix(seed ^ 0x5eed) ^ mix(((epoch as u64) << 32) | batch as u64)
    ))
}

/// Names the first non-finite value among the embeddings, for the error of a diverged step.
fn non_finite_culprit(embeddings: &Embeddings) -> Result<Option<String>, TrainError> {
    let parts = [
        ("clip embeddings (video-local network)", &embeddings.clip),
        (
            "sentence embeddings (text-local network)",
            &embeddings.sentence,
        ),
        ("video embeddings (video-global network)", &embeddings.video),
        (
            "paragraph embeddings (text-global network)",
            &embeddings.paragraph,
        ),
    ];
    for (name, tensor) in parts {
        let rows: Vec<Vec<f32>> = tensor.to_dtype(DType::F32)?.to_vec2()?;
        for (r, row) in rows.iter().enumerate() {
            if let Some(c) = row.iter().position(|v| !v.is_finite()) {
                return Ok(Some(format!("{name}, row {r} column {c} = {}", row[c])));
            }
        }
    }
    Ok(None)
}

/// The model's variables, sorted by name (the order fixes optimizer and checkpoint layout).
fn named_vars(varmap: &VarMap) -> Vec<(String, Var)> {
    let data = varmap
        .data()
        .lock()
        .expect("no panic while holding the varmap");
    let mut vars: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

fn scalar(t: &Tensor) -> Result<f64, TrainError> {
    Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

/// Trains a head on `train`, selecting the checkpoint on `validation`.
#[allow(clippy::too_many_arguments)]
pub fn train(
    config: &TrainConfig,
    train: &CorpusView<'_>,
    validation: &CorpusView<'_>,
    device: &Device,
    store: &mut dyn RunStore,
    events: &ProgressSender<TrainEvent>,
    cancel: &CancelToken,
    resume: bool,
) -> Result<Outcome, TrainError> {
    for (name, corpus) in [("training", train), ("validation", validation)] {
        corpus
            .validate()
            .map_err(|e| TrainError::Data(format!("{name} split: {e}")))?;
        if corpus.num_videos() == 0 {
            return Err(TrainError::Data(format!("the {name} split has no videos")));
        }
    }
    if config.videos_per_batch == 0 || config.epochs == 0 {
        return Err(TrainError::Config(
            "epochs and batch size must be at least 1".into(),
        ));
    }
    let limits = config.limits();
    let varmap = VarMap::new();
    let head = EmbeddingHead::new(
        VarBuilder::from_varmap(&varmap, DType::F32, device),
        &config.head,
    )?;
    initialise(&varmap, config.seed)?;
    let vars = named_vars(&varmap);
    let parameters = vars.iter().map(|(_, v)| v.as_tensor().elem_count()).sum();
    let mut optimizer = RAdam::new(vars.clone(), config.optimizer)?;
    let mut objective = Objective::new(&config.loss, config.seed)?;
    let steps_per_epoch = train.num_videos().div_ceil(config.videos_per_batch);
    let fresh_progress = || {
        Progress::new(
            0,
            0,
            0,
            LrSchedule::new(
                config.optimizer.lr,
                config.warmup_epochs * steps_per_epoch,
                config.plateau,
            ),
            None,
            Accumulator::default(),
            config.head.clone(),
            config.loss.clone(),
            config.seed,
        )
    };
    let mut progress = fresh_progress();
    let saved_state = if resume { store.load_state()? } else { None };
    if let Some(bytes) = saved_state {
        let saved = state::decode(&bytes, device)?;
        if saved.progress.head != config.head
            || saved.progress.loss != config.loss
            || saved.progress.seed != config.seed
        {
            return Err(TrainError::Config(
                "the saved run was trained with other model, loss or seed settings; start a new run or restore them".into(),
            ));
        }
        if let Some(queue) = saved.restore(&vars, &mut optimizer)? {
            objective.restore_queue(queue)?;
        }
        progress = saved.progress;
    }
    events.send_important(TrainEvent::Started {
        first_epoch: progress.epoch + 1,
        epochs: config.epochs,
        steps_per_epoch,
        parameters,
    });

    let save_state = |progress: &Progress,
                      optimizer: &RAdam,
                      objective: &Objective,
                      store: &mut dyn RunStore| {
        let bytes = state::encode(progress, &vars, optimizer, objective.queue_state().as_ref())?;
        store.save_state(&bytes)
    };

    while progress.epoch < config.epochs {
        let epoch = progress.epoch;
        let mut seconds = 0.0;
        let batches = epoch_batches(config, train.num_videos(), epoch + 1);
        for (b, videos) in batches.iter().enumerate().skip(progress.next_batch) {
            if cancel.is_cancelled() {
                progress.next_batch = b;
                save_state(&progress, &optimizer, &objective, store)?;
                return Ok(Outcome::Cancelled {
                    epoch: epoch + 1,
                    steps_done: b,
                });
            }
            let started = Instant::now();
            let lr = progress.schedule.lr_at(optimizer.steps());
            optimizer.set_learning_rate(lr);
            let batch = make_batch(train, videos, limits, device)?;
            let mut rng = step_rng(config.seed, epoch, b);
            let embeddings = head.forward(&batch.input, Mode::Train { rng: &mut rng })?;
            let non_finite = |culprit: String| TrainError::NonFinite {
                epoch: epoch + 1,
                step: b + 1,
                culprit,
                kept: progress.best.map(|best| best.epoch + 1),
            };
            let report = match objective.forward(&embeddings, &batch) {
                Ok(report) => report,
                // The loss refuses non-finite embeddings; say which network made them.
                Err(error @ crate::crossclr::LossError::NonFinite { .. }) => {
                    return Err(match non_finite_culprit(&embeddings)? {
                        Some(culprit) => non_finite(culprit),
                        None => error.into(),
                    });
                }
                Err(error) => return Err(error.into()),
            };
            let loss = scalar(&report.total)?;
            if !loss.is_finite() {
                let culprit = match non_finite_culprit(&embeddings)? {
                    Some(culprit) => culprit,
                    None => format!(
                        "the loss itself (local {}, global {})",
                        scalar(&report.local.loss)?,
                        scalar(&report.global.loss)?
                    ),
                };
                return Err(non_finite(culprit));
            }
            let grads = report.total.backward()?;
            optimizer.step(&grads)?;
            let (loss_local, loss_global) =
                (scalar(&report.local.loss)?, scalar(&report.global.loss)?);
            let pruned = 0.5 * (report.local.pruned_fraction() + report.global.pruned_fraction());
            let accumulated = &mut progress.accumulated;
            accumulated.loss += loss;
            accumulated.local += loss_local;
            accumulated.global += loss_global;
            accumulated.pruned += pruned;
            accumulated.steps += 1;
            seconds += started.elapsed().as_secs_f64();
            events.send(TrainEvent::Step {
                epoch: epoch + 1,
                step: b + 1,
                steps: batches.len(),
                loss,
                loss_local,
                loss_global,
                pruned,
                lr,
            });
        }

        events.send_important(TrainEvent::Validating { epoch: epoch + 1 });
        // A frozen view of the current weights: no gradient graph is built while embedding.
        let frozen = EmbeddingHead::frozen(&varmap, &config.head, device)?;
        let embeddings =
            embed_corpus(&frozen, validation, limits, config.videos_per_batch, device)?;
        let validation_report = retrieval(&embeddings)?;
        let score = validation_report.score();
        progress.schedule.end_epoch(optimizer.steps(), score);
        let improved = progress.best.is_none_or(|best| score > best.score);
        let steps = progress.accumulated.steps.max(1) as f64;
        let record = EpochRecord {
            epoch: epoch + 1,
            lr: optimizer.learning_rate(),
            loss: progress.accumulated.loss / steps,
            loss_local: progress.accumulated.local / steps,
            loss_global: progress.accumulated.global / steps,
            pruned_fraction: progress.accumulated.pruned / steps,
            validation: validation_report,
            score,
            best: improved,
            steps: progress.accumulated.steps,
            seconds,
        };
        if improved {
            progress.best = Some(Best { score, epoch });
            // The sidecar holds what the checkpoint scored, not how long it took: the same seed
            // must give the same bytes.
            let metrics = serde_json::json!({
                "validation": record.validation,
                "score": record.score,
                "loss": record.loss,
                "pruned_fraction": record.pruned_fraction,
            });
            let meta = CheckpointMeta {
                head: config.head.clone(),
                video_encoder: config.video_encoder.clone(),
                text_encoder: config.text_encoder.clone(),
                loss: serde_json::to_value(&config.loss).map_err(|e| TrainError::StateFormat {
                    what: "writing the checkpoint's loss settings",
                    source: Box::new(e),
                })?,
                seed: config.seed,
                epoch: epoch + 1,
                metrics,
            };
            let (weights, sidecar) = checkpoint_bytes(&varmap, &meta)?;
            store.save_checkpoint(&weights, &sidecar)?;
        }
        store.append_metrics(&record)?;
        events.send_important(TrainEvent::Epoch(Box::new(record)));
        progress.epoch += 1;
        progress.next_batch = 0;
        progress.accumulated = Accumulator::default();
        save_state(&progress, &optimizer, &objective, store)?;
    }
    Ok(Outcome::Completed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_orders_are_seeded_permutations() {
        let a = epoch_order(50, 3, 0);
        assert_eq!(a, epoch_order(50, 3, 0));
        assert_ne!(a, epoch_order(50, 3, 1));
        assert_ne!(a, epoch_order(50, 4, 0));
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
    }
}
