//! The glue between a project (what is on disk) and training (what runs): the project's settings
//! as a [`TrainConfig`], its splits as corpus views, and a [`RunStore`] that writes atomically
//! into `runs/<name>/`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::crossclr::{CrossClrConfig, Mode, MultiPositive};
use crate::encode::check_encoders;
use crate::model::{CheckpointMeta, EmbeddingHead, Encoder, HeadConfig, HeadKind};
use crate::project::config::{
    EncoderSpec, EncodersSection, Head, LossKind as ProjectLoss, LossMode,
};
use crate::project::{Project, ProjectConfig, SplitFeatures, write_atomic};
use crate::train::{
    BatchLimits, CorpusView, EpochRecord, LossKind, LossSettings, PackedView, PlateauConfig,
    RAdamConfig, RunStore, SplitEmbeddings, TrainConfig, TrainError, embed_corpus,
};

/// Training settings from a project's `crossclr.toml`.
pub fn train_config(config: &ProjectConfig) -> Result<TrainConfig> {
    let (Some(video), Some(text)) = (&config.encoders.video, &config.encoders.text) else {
        bail!(
            "the project has no features yet (crossclr.toml names no encoders): import or ingest first"
        );
    };
    let model = &config.model;
    let loss = &config.loss;
    let train = &config.train;
    let limits = batch_limits(config);
    let head = HeadConfig {
        kind: match model.head {
            Head::Mlp => HeadKind::Mlp,
            Head::Coot => HeadKind::Coot,
        },
        video_dim: video.dim,
        text_dim: text.dim,
        joint_dim: model.joint_dim,
        attention_dim: model.attention_dim,
        local_heads: model.local_heads,
        global_heads: model.global_heads,
        pool_heads: model.pool_heads,
        dropout: model.dropout,
        max_positions: model.max_frames.max(model.max_context_frames).max(1),
    };
    let crossclr = CrossClrConfig {
        mode: match loss.mode {
            LossMode::Paper => Mode::Paper,
            LossMode::Official => Mode::Official,
        },
        tau: loss.tau,
        kappa: loss.kappa,
        lambda: loss.lambda,
        gamma: loss.gamma,
        multi_positive: (loss.multi_positive_k > 0).then_some(MultiPositive {
            k: loss.multi_positive_k,
            beta: loss.beta,
        }),
    };
    Ok(TrainConfig {
        head,
        loss: LossSettings {
            kind: match loss.kind {
                ProjectLoss::Crossclr => LossKind::Crossclr,
                ProjectLoss::Infonce => LossKind::Infonce,
                ProjectLoss::Maxmargin => LossKind::Maxmargin,
                ProjectLoss::Xmlnet => LossKind::Xmlnet,
            },
            crossclr,
            queue: loss.queue,
            global_weight: loss.global_weight,
            margin: loss.margin,
        },
        optimizer: RAdamConfig {
            lr: train.lr,
            beta1: train.beta1,
            beta2: train.beta2,
            eps: 1e-8,
            weight_decay: train.weight_decay,
        },
        epochs: train.epochs,
        videos_per_batch: train.batch_size,
        warmup_epochs: train.warmup_epochs,
        plateau: PlateauConfig {
            patience: train.plateau_patience,
            cooldown: train.plateau_cooldown,
            factor: train.plateau_factor,
            min_lr: train.min_lr,
            threshold: 1e-4,
        },
        seed: train.seed,
        max_steps: limits.max_steps,
        max_context_steps: limits.max_context_steps,
        video_encoder: Encoder {
            name: video.name.clone(),
            dim: video.dim,
        },
        text_encoder: Encoder {
            name: text.name.clone(),
            dim: text.dim,
        },
    })
}

/// How many frames (tokens) per clip and per video context the project's model reads.
fn batch_limits(config: &ProjectConfig) -> BatchLimits {
    BatchLimits {
        max_steps: config.model.max_frames,
        max_context_steps: config.model.max_context_frames,
    }
}

/// Embeds every clip, sentence, video and paragraph of a split with a trained head, reading
/// the frames and batches the project's settings allow.
pub fn embed_split(
    head: &EmbeddingHead,
    config: &ProjectConfig,
    features: &SplitFeatures,
    device: &candle_core::Device,
) -> Result<SplitEmbeddings> {
    Ok(embed_corpus(
        head,
        &corpus(features),
        batch_limits(config),
        config.train.batch_size,
        device,
    )?)
}

/// A split as training reads it (borrowed, no copy).
pub fn corpus(features: &SplitFeatures) -> CorpusView<'_> {
    CorpusView {
        video: PackedView {
            dim: features.video.dim,
            data: &features.video.data,
            offsets: &features.video.offsets,
        },
        text: PackedView {
            dim: features.text.dim,
            data: &features.text.data,
            offsets: &features.text.offsets,
        },
        groups: (0..features.num_videos())
            .map(|v| features.clips_of_video(v))
            .collect(),
    }
}

/// Loads a split, with an error that says which splits exist when it does not.
pub fn load_split(project: &Project, split: &str, role: &str) -> Result<SplitFeatures> {
    let splits = project.splits()?;
    if !splits.iter().any(|s| s == split) {
        bail!(
            "the {role} split `{split}` is not in {} (splits: {}); set train.{role}_split in crossclr.toml",
            project.dir().display(),
            if splits.is_empty() {
                "none".to_string()
            } else {
                splits.join(", ")
            }
        );
    }
    Ok(project.load_split(split)?)
}

/// The files of one run.
#[derive(Debug, Clone)]
pub struct RunFiles {
    pub dir: PathBuf,
}

impl RunFiles {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }
    pub fn metrics(&self) -> PathBuf {
        self.dir.join("metrics.jsonl")
    }
    pub fn checkpoint(&self) -> PathBuf {
        self.dir.join("checkpoint.safetensors")
    }
    pub fn checkpoint_sidecar(&self) -> PathBuf {
        self.dir.join("config.json")
    }
    pub fn state(&self) -> PathBuf {
        self.dir.join("state.safetensors")
    }
    pub fn run_config(&self) -> PathBuf {
        self.dir.join("run.json")
    }
    pub fn embeddings(&self) -> PathBuf {
        self.dir.join("embeddings.safetensors")
    }
}

fn store_error(path: &Path, error: impl std::fmt::Display) -> TrainError {
    TrainError::Store(format!("{}: {error}", path.display()))
}

impl RunStore for RunFiles {
    fn append_metrics(&mut self, record: &EpochRecord) -> Result<(), TrainError> {
        let path = self.metrics();
        let mut text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(store_error(&path, e)),
        };
        // On resume, lines of epochs about to be rewritten go: the file says what the run did.
        text = text
            .lines()
            .filter(|line| {
                serde_json::from_str::<serde_json::Value>(line)
                    .ok()
                    .and_then(|v| v["epoch"].as_u64())
                    .is_some_and(|epoch| (epoch as usize) < record.epoch)
            })
            .map(|line| format!("{line}\n"))
            .collect();
        text.push_str(&serde_json::to_string(record).map_err(|e| store_error(&path, e))?);
        text.push('\n');
        write_atomic(&path, text.as_bytes()).map_err(|e| store_error(&path, e))
    }

    fn save_checkpoint(&mut self, weights: &[u8], sidecar: &str) -> Result<(), TrainError> {
        // The weights first: a sidecar never describes weights that are not there yet.
        write_atomic(&self.checkpoint(), weights)
            .map_err(|e| store_error(&self.checkpoint(), e))?;
        write_atomic(&self.checkpoint_sidecar(), sidecar.as_bytes())
            .map_err(|e| store_error(&self.checkpoint_sidecar(), e))
    }

    fn save_state(&mut self, state: &[u8]) -> Result<(), TrainError> {
        write_atomic(&self.state(), state).map_err(|e| store_error(&self.state(), e))
    }

    fn load_state(&mut self) -> Result<Option<Vec<u8>>, TrainError> {
        match std::fs::read(self.state()) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(store_error(&self.state(), e)),
        }
    }
}

/// The device named in settings or on the command line.
pub fn device(name: &str) -> Result<candle_core::Device> {
    match name {
        "cpu" => Ok(candle_core::Device::Cpu),
        "cuda" => {
            if !candle_core::utils::cuda_is_available() {
                bail!(
                    "--device cuda: this build has no CUDA support (build with `--features cuda`)"
                );
            }
            candle_core::Device::new_cuda(0).context("opening CUDA device 0")
        }
        other => bail!("unknown device `{other}`; expected cpu or cuda"),
    }
}

/// Run `name`'s best checkpoint as a frozen head (no gradient graph), with the checkpoint's own
/// description; the errors name the run and the file that is missing or unreadable, or the
/// encoders where the project's features now come from others than the run was trained on.
pub fn load_run_head(
    project: &Project,
    name: &str,
    device: &candle_core::Device,
) -> Result<(EmbeddingHead, CheckpointMeta)> {
    let files = RunFiles::new(project.run_dir(name));
    let weights = std::fs::read(files.checkpoint()).with_context(|| {
        format!(
            "run `{name}` has no checkpoint at {}",
            files.checkpoint().display()
        )
    })?;
    let sidecar = std::fs::read_to_string(files.checkpoint_sidecar())
        .with_context(|| format!("reading {}", files.checkpoint_sidecar().display()))?;
    let (_, varmap, meta) = crate::model::load_checkpoint(&weights, &sidecar, device)
        .with_context(|| format!("loading {}", files.checkpoint().display()))?;
    let spec = |encoder: &Encoder| {
        Some(EncoderSpec {
            name: encoder.name.clone(),
            dim: encoder.dim,
        })
    };
    let trained = EncodersSection {
        video: spec(&meta.video_encoder),
        text: spec(&meta.text_encoder),
    };
    check_encoders(
        &project.config().encoders,
        &trained,
        &format!("run `{name}`"),
    )?;
    let head = EmbeddingHead::frozen(&varmap, &meta.head, device)?;
    Ok((head, meta))
}
