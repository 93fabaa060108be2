//! The mlp head, for pooled features: per modality a masked mean over the steps, then
//! LayerNorm → Linear → GELU → Linear. A video (paragraph) is the mean of its clips (sentences).

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::input::{Grouping, SequenceBatch};
use super::layers::{LayerNorm, Linear, gelu_dropout, linear};
use super::{HeadConfig, Mode, SideEmbeddings};

/// One modality's tower. Dropout (the head's `dropout`, Train mode only) follows the GELU.
#[derive(Debug, Clone)]
pub(crate) struct Tower {
    norm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    dropout: f64,
}

impl Tower {
    fn new(vb: VarBuilder, input_dim: usize, cfg: &HeadConfig) -> Result<Self> {
        Ok(Self {
            norm: LayerNorm::new(input_dim, vb.pp("norm"))?,
            fc1: linear(input_dim, cfg.joint_dim, vb.pp("fc1"))?,
            fc2: linear(cfg.joint_dim, cfg.joint_dim, vb.pp("fc2"))?,
            dropout: cfg.dropout,
        })
    }

    fn forward(&self, items: &SequenceBatch, mode: &mut Mode) -> Result<Tensor> {
        // The masked mean makes pooled input (t = 1) and padded frames/tokens the same case.
        let x = self.norm.forward(&items.masked_mean()?)?;
        let x = gelu_dropout(&self.fc1.forward(&x)?, mode, self.dropout)?;
        self.fc2.forward(&x)
    }
}

/// The flat head: `video` and `text` towers into one joint space of width `joint_dim`.
#[derive(Debug, Clone)]
pub struct MlpHead {
    cfg: HeadConfig,
    pub(crate) video: Tower,
    pub(crate) text: Tower,
}

impl MlpHead {
    pub fn new(vb: VarBuilder, cfg: &HeadConfig) -> Result<Self> {
        cfg.validate().map_err(candle_core::Error::wrap)?;
        Ok(Self {
            cfg: cfg.clone(),
            video: Tower::new(vb.pp("video"), cfg.video_dim, cfg)?,
            text: Tower::new(vb.pp("text"), cfg.text_dim, cfg)?,
        })
    }

    pub fn config(&self) -> &HeadConfig {
        &self.cfg
    }

    /// Local embeddings of `items`, and each group's mean of them. The context sequences, which
    /// only the coot head reads, are not needed.
    pub(crate) fn encode_side(
        tower: &Tower,
        items: &SequenceBatch,
        grouping: &Grouping,
        mode: &mut Mode,
    ) -> Result<SideEmbeddings> {
        let local = tower.forward(items, mode)?;
        let global = grouping.mean(&local)?;
        Ok(SideEmbeddings { local, global })
    }
}
