//! `crossclr.toml`: what a project is (its source and encoders) and how to train it.
//!
//! Every section is `#[serde(default)]`, so a file written by an older version (missing keys or
//! whole sections) still loads, while an unknown key is an error naming it and its line: a typo
//! in a hyperparameter must not be silently ignored. The settings' kinds (loss, mode, head,
//! device) and their defaults are the loss's and the model's own types, used here directly; this
//! file only lays them out flat, as a user edits them.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::atomic::write_atomic;
use super::error::ProjectError;
use crate::crossclr::{CrossClrConfig, LossSettings, MultiPositive};
pub use crate::crossclr::{LossKind, Mode};
use crate::model::HeadConfig;
pub use crate::model::{DeviceKind, EncoderSpec, HeadKind};

/// The `crossclr.toml` format this program writes; files of a newer format are refused.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProjectConfig {
    pub project: ProjectSection,
    pub source: SourceSection,
    pub encoders: EncodersSection,
    pub model: ModelSection,
    pub loss: LossSection,
    pub train: TrainSection,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProjectSection {
    /// Shown in the app and in reports; `crossclr new` uses the directory's name.
    pub name: String,
    /// The format of this file, [`FORMAT_VERSION`] when written by this program.
    pub version: u32,
}

impl Default for ProjectSection {
    fn default() -> Self {
        Self {
            name: String::new(),
            version: FORMAT_VERSION,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// Precomputed features imported from a safetensors file.
    #[default]
    Features,
    /// COOT's meta_all.json with its video and text HDF5 feature files.
    Coot,
    /// Video files and captions, encoded by `crossclr ingest`.
    Videos,
}

/// Where the project's data came from. The feature paths are a record for the user; nothing
/// rereads them after `crossclr new` (the features are copied into the project). A project made
/// from videos keeps its videos where they are: the manifest's paths are relative to `videos`, so
/// moving the folder means editing that one key.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourceSection {
    pub kind: SourceKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub features: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coot_meta: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub video_h5: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_h5: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sentence_splits: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub videos: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub captions: Option<String>,
    /// How videos without a split in the captions file were split (by video, seeded); absent
    /// when the file gave every video's split.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub split_seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_fraction: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_fraction: Option<f64>,
}

/// The encoders whose outputs the features are. Absent until the features exist (a project made
/// from videos has none before `crossclr ingest`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EncodersSection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub video: Option<EncoderSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<EncoderSpec>,
}

/// The name recorded for features that were imported rather than computed here.
pub const PRECOMPUTED: &str = "precomputed";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSection {
    pub head: HeadKind,
    /// Output width of the `mlp` head.
    pub joint_dim: usize,
    pub attention_dim: usize,
    pub local_heads: usize,
    pub global_heads: usize,
    /// Heads of COOT's attention-aware pooling.
    pub pool_heads: usize,
    pub dropout: f64,
    /// Frames per clip fed to the local transformer; longer clips are sampled evenly.
    pub max_frames: usize,
    /// Frames of a whole video fed to the global context.
    pub max_context_frames: usize,
}

impl Default for ModelSection {
    fn default() -> Self {
        let head = HeadConfig::default();
        Self {
            head: head.kind,
            joint_dim: head.joint_dim,
            attention_dim: head.attention_dim,
            local_heads: head.local_heads,
            global_heads: head.global_heads,
            pool_heads: head.pool_heads,
            dropout: head.dropout,
            max_frames: 80,
            max_context_frames: 160,
        }
    }
}

impl ModelSection {
    /// The head these settings describe, reading features `video_dim` and `text_dim` wide.
    pub fn head_config(&self, video_dim: usize, text_dim: usize) -> HeadConfig {
        HeadConfig {
            kind: self.head,
            video_dim,
            text_dim,
            joint_dim: self.joint_dim,
            attention_dim: self.attention_dim,
            local_heads: self.local_heads,
            global_heads: self.global_heads,
            pool_heads: self.pool_heads,
            dropout: self.dropout,
            max_positions: self.max_frames.max(self.max_context_frames).max(1),
        }
    }
}

/// The loss settings; defaults are [`LossSettings::RECOMMENDED`] (`--preset paper-youcook2` gives
/// the paper's YouCook2 values, DESIGN §4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LossSection {
    pub kind: LossKind,
    pub mode: Mode,
    pub tau: f64,
    pub kappa: f64,
    pub lambda: f64,
    pub gamma: f64,
    /// Queue length at the local level; 0 turns the queue off.
    pub queue: usize,
    /// Weight of the video/paragraph-level loss against the clip/sentence level.
    pub global_weight: f64,
    /// Extra positives per anchor by input similarity; 0 turns multiple positives off.
    pub multi_positive_k: usize,
    pub beta: f64,
    /// Margin of the max-margin loss.
    pub margin: f64,
}

impl Default for LossSection {
    fn default() -> Self {
        Self::from_settings(&LossSettings::default())
    }
}

impl LossSection {
    /// The section that writes `settings` out.
    pub fn from_settings(settings: &LossSettings) -> Self {
        let crossclr = &settings.crossclr;
        Self {
            kind: settings.kind,
            mode: crossclr.mode,
            tau: crossclr.tau,
            kappa: crossclr.kappa,
            lambda: crossclr.lambda,
            gamma: crossclr.gamma,
            queue: settings.queue,
            global_weight: settings.global_weight,
            multi_positive_k: crossclr.multi_positive.map_or(0, |m| m.k),
            beta: crossclr
                .multi_positive
                .map_or(MultiPositive::DEFAULT_BETA, |m| m.beta),
            margin: settings.margin,
        }
    }

    /// The loss these settings describe.
    pub fn settings(&self) -> LossSettings {
        LossSettings {
            kind: self.kind,
            crossclr: CrossClrConfig {
                mode: self.mode,
                tau: self.tau,
                kappa: self.kappa,
                lambda: self.lambda,
                gamma: self.gamma,
                multi_positive: (self.multi_positive_k > 0).then_some(MultiPositive {
                    k: self.multi_positive_k,
                    beta: self.beta,
                }),
            },
            queue: self.queue,
            global_weight: self.global_weight,
            margin: self.margin,
        }
    }
}

/// A named set of loss, head and schedule settings, applied over a project's own
/// (`crossclr train --preset`, the app's Train panel). The paper's presets are its exact
/// hyperparameters per dataset (DESIGN.md §4); `recommended` is what a new project starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// The defaults a new project is written with ([`LossSettings::RECOMMENDED`]): paper mode
    /// without the queue, κ 0.1; the setting that trained well on every shipped project.
    Recommended,
    /// The paper's YouCook2 values: paper mode, τ 0.03, κ 0.0035, λ 0.8, γ 0.9, queue 5000;
    /// attention 384 wide, 8 local heads, dropout 5%.
    PaperYoucook2,
    /// The paper's LSMDC values: κ 0.0055, λ 0.65, queue 3000; attention 768 wide, 16 local
    /// heads, dropout 1%.
    PaperLsmdc,
}

impl Preset {
    pub const ALL: [Preset; 3] = [
        Preset::Recommended,
        Preset::PaperYoucook2,
        Preset::PaperLsmdc,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Preset::Recommended => "recommended",
            Preset::PaperYoucook2 => "paper-youcook2",
            Preset::PaperLsmdc => "paper-lsmdc",
        }
    }

    pub fn loss(self) -> LossSettings {
        match self {
            Preset::Recommended => LossSettings::default(),
            Preset::PaperYoucook2 => LossSettings::PAPER,
            Preset::PaperLsmdc => LossSettings::PAPER_LSMDC,
        }
    }

    /// Sets the loss, the head's width, heads and dropout and the learning-rate schedule to
    /// this preset's; the head kind, data, batch size, epochs, seed and device stay the project's.
    pub fn apply(self, config: &mut ProjectConfig) {
        let loss = LossSection::from_settings(&self.loss());
        config.loss = LossSection {
            margin: config.loss.margin,
            ..loss
        };
        let model = &mut config.model;
        let defaults = ModelSection::default();
        let (attention_dim, local_heads, dropout) = match self {
            Preset::Recommended | Preset::PaperYoucook2 => (
                defaults.attention_dim,
                defaults.local_heads,
                defaults.dropout,
            ),
            Preset::PaperLsmdc => (768, 16, 0.01),
        };
        model.attention_dim = attention_dim;
        model.local_heads = local_heads;
        model.global_heads = defaults.global_heads;
        model.dropout = dropout;
        let schedule = TrainSection::default();
        let train = &mut config.train;
        train.lr = schedule.lr;
        train.beta1 = schedule.beta1;
        train.beta2 = schedule.beta2;
        train.warmup_epochs = schedule.warmup_epochs;
        train.plateau_patience = schedule.plateau_patience;
        train.plateau_cooldown = schedule.plateau_cooldown;
        train.plateau_factor = schedule.plateau_factor;
    }
}

impl std::fmt::Display for Preset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainSection {
    pub epochs: usize,
    /// Videos per batch (their clips make the clip-level batch).
    pub batch_size: usize,
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub weight_decay: f64,
    pub warmup_epochs: usize,
    pub plateau_patience: usize,
    pub plateau_cooldown: usize,
    pub plateau_factor: f64,
    pub min_lr: f64,
    pub seed: u64,
    pub train_split: String,
    /// The split models are selected on.
    pub val_split: String,
    /// The split results are reported on; it may not exist (YouCook2 has no public test labels).
    pub report_split: String,
    pub device: DeviceKind,
}

impl Default for TrainSection {
    fn default() -> Self {
        Self {
            epochs: 30,
            batch_size: 64,
            lr: 7e-4,
            beta1: 0.56,
            beta2: 0.98,
            weight_decay: 0.0,
            warmup_epochs: 4,
            plateau_patience: 6,
            plateau_cooldown: 4,
            plateau_factor: 0.1,
            min_lr: 1e-7,
            seed: 0,
            train_split: "train".into(),
            val_split: "val".into(),
            report_split: "test".into(),
            device: DeviceKind::Cpu,
        }
    }
}

/// Where a run's checkpoint is chosen: never on the split its results are reported on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// On this split (`train.val_split`), kept apart from the reported one.
    Split(String),
    /// On the last tenth of the training videos, because the project has no separate report
    /// split (YouCook2 has only train and val): results are reported on val, which stays unseen.
    TrainTail,
}

impl TrainSection {
    /// The split results are reported on: `report_split` when the project has it, else
    /// `val_split`.
    pub fn report_split_in(&self, splits: &[String]) -> &str {
        if splits.contains(&self.report_split) {
            &self.report_split
        } else {
            &self.val_split
        }
    }

    /// Where the checkpoint is chosen, given the splits the project has.
    pub fn selection(&self, splits: &[String]) -> Selection {
        if splits.contains(&self.report_split) && self.report_split != self.val_split {
            Selection::Split(self.val_split.clone())
        } else {
            Selection::TrainTail
        }
    }
}

impl ProjectConfig {
    /// Reads and checks `path`. Syntax errors and unknown keys name the line; out-of-range values
    /// name the key (`section.key`).
    pub fn load(path: &Path) -> Result<Self, ProjectError> {
        let text = std::fs::read_to_string(path).map_err(|e| ProjectError::io("read", path, e))?;
        let config: Self = toml::from_str(&text).map_err(|e| match e.span() {
            Some(span) => ProjectError::Line {
                path: path.to_path_buf(),
                line: line_of(&text, span.start),
                message: e.message().trim_end().to_string(),
            },
            None => ProjectError::file(path, e.message().trim_end()),
        })?;
        config.validate().map_err(|setting| ProjectError::Setting {
            path: path.to_path_buf(),
            setting,
        })?;
        Ok(config)
    }

    /// Writes every key, defaults included, so the file documents what can be set. Atomic.
    pub fn save(&self, path: &Path) -> Result<(), ProjectError> {
        self.validate().map_err(|setting| ProjectError::NotSaved {
            path: path.to_path_buf(),
            setting,
        })?;
        let body = toml::to_string_pretty(self)
            .map_err(|e| ProjectError::file(path, format!("cannot serialize the settings: {e}")))?;
        let text = format!(
            "# crossclr project settings (format {FORMAT_VERSION}). Every key is listed; edit freely.\n\n{body}"
        );
        write_atomic(path, text.as_bytes())
    }

    /// Checks the values no component could use, naming the key and what was expected.
    pub fn validate(&self) -> Result<(), SettingError> {
        let bad = |key: &str, problem: String| {
            Err(SettingError {
                key: key.to_string(),
                problem,
            })
        };
        let version = self.project.version;
        if version == 0 || version > FORMAT_VERSION {
            return bad(
                "project.version",
                format!(
                    "is {version}; this program reads format 1 to {FORMAT_VERSION} \
                     (a newer crossclr wrote this project?)"
                ),
            );
        }
        for (key, spec) in [
            ("encoders.video", &self.encoders.video),
            ("encoders.text", &self.encoders.text),
        ] {
            if let Some(spec) = spec {
                if spec.name.is_empty() {
                    return bad(
                        &format!("{key}.name"),
                        "is empty; expected an encoder name".into(),
                    );
                }
                if spec.dim == 0 {
                    return bad(
                        &format!("{key}.dim"),
                        "is 0; expected the feature width".into(),
                    );
                }
            }
        }
        for (key, value) in [
            ("source.val_fraction", self.source.val_fraction),
            ("source.test_fraction", self.source.test_fraction),
        ] {
            if let Some(value) = value
                && !(0.0..1.0).contains(&value)
            {
                return bad(key, format!("is {value}; expected 0 ≤ fraction < 1"));
            }
        }
        let m = &self.model;
        for (key, value) in [
            ("model.joint_dim", m.joint_dim),
            ("model.attention_dim", m.attention_dim),
            ("model.local_heads", m.local_heads),
            ("model.global_heads", m.global_heads),
            ("model.pool_heads", m.pool_heads),
            ("model.max_frames", m.max_frames),
            ("model.max_context_frames", m.max_context_frames),
            ("train.epochs", self.train.epochs),
        ] {
            if value == 0 {
                return bad(key, "is 0; expected a positive integer".into());
            }
        }
        for (key, heads) in [
            ("model.local_heads", m.local_heads),
            ("model.global_heads", m.global_heads),
        ] {
            if !m.attention_dim.is_multiple_of(heads) {
                return bad(
                    key,
                    format!(
                        "= {heads} does not divide `model.attention_dim` = {}",
                        m.attention_dim
                    ),
                );
            }
        }
        if self.train.batch_size < 2 {
            return bad(
                "train.batch_size",
                format!(
                    "is {}; a contrastive batch needs at least 2 videos",
                    self.train.batch_size
                ),
            );
        }
        let l = &self.loss;
        let t = &self.train;
        for (key, value) in [
            ("loss.tau", l.tau),
            ("loss.kappa", l.kappa),
            ("loss.lambda", l.lambda),
            ("train.lr", t.lr),
            ("train.plateau_factor", t.plateau_factor),
            ("train.min_lr", t.min_lr),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return bad(key, format!("is {value}; expected a positive number"));
            }
        }
        for (key, value) in [
            ("loss.gamma", l.gamma),
            ("loss.global_weight", l.global_weight),
            ("loss.beta", l.beta),
            ("loss.margin", l.margin),
            ("train.weight_decay", t.weight_decay),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return bad(key, format!("is {value}; expected a number ≥ 0"));
            }
        }
        for (key, value) in [
            ("model.dropout", m.dropout),
            ("train.beta1", t.beta1),
            ("train.beta2", t.beta2),
        ] {
            if !(0.0..1.0).contains(&value) {
                return bad(key, format!("is {value}; expected 0 ≤ value < 1"));
            }
        }
        for (key, value) in [
            ("train.train_split", &t.train_split),
            ("train.val_split", &t.val_split),
            ("train.report_split", &t.report_split),
        ] {
            if !super::is_valid_split_name(value) {
                return bad(
                    key,
                    format!(
                        "is `{value}`; expected a split name (letters, digits, `_`, `-`, `.`, not starting with `.`)"
                    ),
                );
            }
        }
        Ok(())
    }
}

/// A value in the settings that no component could use: the key (`section.key`) and what is
/// wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{key}` {problem}")]
pub struct SettingError {
    pub key: String,
    pub problem: String,
}

fn line_of(text: &str, byte: usize) -> usize {
    1 + text.as_bytes()[..byte.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}
