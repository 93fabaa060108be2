use serde::{Deserialize, Serialize};

use super::ModelError;

/// Which embedding head to build (DESIGN.md §5). A project's import picks the one its features
/// suit (`project::import`): COOT's transformers when clips have frames, the MLP otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum HeadKind {
    /// Per modality LayerNorm → Linear → GELU → Linear on pooled features; the video (paragraph)
    /// embedding is the mean of its clip (sentence) embeddings.
    #[default]
    Mlp,
    /// COOT's local/global transformers (Ging et al., NeurIPS 2020): CrossCLR's backbone, for
    /// frame and token features.
    Coot,
}

impl std::fmt::Display for HeadKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HeadKind::Mlp => "mlp",
            HeadKind::Coot => "coot",
        })
    }
}

/// The shape of an embedding head. Defaults are the paper's YouCook2 setting (attention dim 384,
/// 8 local and 8 global heads, dropout 5%) on 512-d video and 768-d text features, with the
/// default head kind.
///
/// Unknown fields are rejected so that a misspelt setting in a project file is an error, not a
/// silently ignored line.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HeadConfig {
    pub kind: HeadKind,
    /// Width of the video features fed to the head (one row per frame, or per clip when pooled).
    pub video_dim: usize,
    /// Width of the text features (one row per token, or per sentence when pooled).
    pub text_dim: usize,
    /// Output width of the mlp head.
    pub joint_dim: usize,
    /// Transformer width A of the coot head: local embeddings are A wide, global ones 2A.
    pub attention_dim: usize,
    /// Attention heads of the local (clip/sentence) transformers.
    pub local_heads: usize,
    /// Attention heads of the global (video/paragraph) transformers and their context attention.
    pub global_heads: usize,
    /// Heads of the attention-aware pooling (GenPool).
    pub pool_heads: usize,
    /// Dropout probability, applied only in [`super::Mode::Train`].
    pub dropout: f64,
    /// Rows of the sinusoidal position table: the longest sequence the coot head accepts.
    pub max_positions: usize,
}

impl Default for HeadConfig {
    fn default() -> Self {
        Self {
            kind: HeadKind::default(),
            video_dim: 512,
            text_dim: 768,
            joint_dim: 384,
            attention_dim: 384,
            local_heads: 8,
            global_heads: 8,
            pool_heads: 2,
            dropout: 0.05,
            max_positions: 1024,
        }
    }
}

impl HeadConfig {
    /// Width of the clip and sentence embeddings.
    pub fn local_dim(&self) -> usize {
        match self.kind {
            HeadKind::Mlp => self.joint_dim,
            HeadKind::Coot => self.attention_dim,
        }
    }

    /// Width of the video and paragraph embeddings (the coot head appends its context vector).
    pub fn global_dim(&self) -> usize {
        match self.kind {
            HeadKind::Mlp => self.joint_dim,
            HeadKind::Coot => 2 * self.attention_dim,
        }
    }

    /// Checks the settings the chosen head depends on, naming the one at fault.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |message: String| Err(ModelError::Config(message));
        if self.video_dim == 0 || self.text_dim == 0 {
            return bad(format!(
                "video_dim ({}) and text_dim ({}) must be positive",
                self.video_dim, self.text_dim
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("dropout must be in [0, 1), got {}", self.dropout));
        }
        match self.kind {
            HeadKind::Mlp => {
                if self.joint_dim == 0 {
                    return bad("joint_dim must be positive".into());
                }
            }
            HeadKind::Coot => {
                let a = self.attention_dim;
                if a == 0 {
                    return bad("attention_dim must be positive".into());
                }
                for (name, heads) in [
                    ("local_heads", self.local_heads),
                    ("global_heads", self.global_heads),
                    ("pool_heads", self.pool_heads),
                ] {
                    if heads == 0 || !a.is_multiple_of(heads) {
                        return bad(format!(
                            "{name} ({heads}) must be positive and divide attention_dim ({a})"
                        ));
                    }
                }
                if self.max_positions == 0 {
                    return bad("max_positions must be positive".into());
                }
            }
        }
        Ok(())
    }
}

/// Where a head runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    #[default]
    Cpu,
    /// The first CUDA device; needs a build with the `cuda` feature.
    Cuda,
}

impl std::fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DeviceKind::Cpu => "cpu",
            DeviceKind::Cuda => "cuda",
        })
    }
}

impl DeviceKind {
    /// Opens the device, saying why CUDA cannot be used where it cannot.
    pub fn open(self) -> Result<candle_core::Device, ModelError> {
        match self {
            DeviceKind::Cpu => Ok(candle_core::Device::Cpu),
            DeviceKind::Cuda if !candle_core::utils::cuda_is_available() => {
                Err(ModelError::Config(
                    "device cuda: this build has no CUDA support (build with `--features cuda`)"
                        .into(),
                ))
            }
            DeviceKind::Cuda => {
                candle_core::Device::new_cuda(0).map_err(|source| ModelError::Device {
                    device: "CUDA device 0".into(),
                    source,
                })
            }
        }
    }
}
