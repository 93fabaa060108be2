//! The coot head: COOT's four transformers (Ging et al., NeurIPS 2020), the backbone CrossCLR
//! trains. Local networks embed the frames of a clip / tokens of a sentence; global networks embed
//! the clip (sentence) embeddings of a video (paragraph), with cross-attention from a context vector
//! that the local network computes from the whole video (paragraph).

use candle_core::{DType, Result, Tensor};
use candle_nn::VarBuilder;

use super::input::{Grouping, SequenceBatch};
use super::layers::{
    EncoderLayer, GenPool, LayerNorm, Linear, gelu_dropout, linear, sinusoid_table,
};
use super::ops;
use super::{HeadConfig, Mode, SideEmbeddings};

/// One of COOT's networks ("TransformerLegacy"): input dropout → LayerNorm → Linear + GELU →
/// positions → a post-norm encoder layer → attention-aware pooling, and for global networks a
/// context cross-attention layer whose output is appended to the pooled vector.
#[derive(Debug, Clone)]
pub(crate) struct Network {
    input_norm: LayerNorm,
    input_fc: Linear,
    /// (max_positions, A), a constant.
    positions: Tensor,
    layer: EncoderLayer,
    context: Option<EncoderLayer>,
    pool: GenPool,
    dropout: f64,
}

impl Network {
    pub fn new(
        vb: VarBuilder,
        input_dim: usize,
        cfg: &HeadConfig,
        positions: &Tensor,
        heads: usize,
        with_context: bool,
    ) -> Result<Self> {
        let width = cfg.attention_dim;
        Ok(Self {
            input_norm: LayerNorm::new(input_dim, vb.pp("input_norm"))?,
            input_fc: linear(input_dim, width, vb.pp("input_fc"))?,
            positions: positions.clone(),
            layer: EncoderLayer::new(width, heads, vb.pp("layer"))?,
            context: if with_context {
                Some(EncoderLayer::new(
                    width,
                    cfg.global_heads,
                    vb.pp("context"),
                )?)
            } else {
                None
            },
            pool: GenPool::new(width, cfg.pool_heads, vb.pp("pool"))?,
            dropout: cfg.dropout,
        })
    }

    /// Steps 1–3: the contextualised step features (n·t, A), the t steps of a sequence in
    /// consecutive rows.
    fn steps(&self, values: &Tensor, key_bias: &Tensor, mode: &mut Mode) -> Result<Tensor> {
        let (n, t, d) = values.dims3()?;
        let rows = self.positions.dim(0)?;
        if t > rows {
            candle_core::bail!(
                "a sequence of {t} steps is longer than the position table ({rows} rows, \
                 max_positions in the head configuration)"
            );
        }
        let x = values.reshape((n * t, d))?;
        let keep = mode.keep_mask(x.elem_count(), self.dropout);
        let x = self.input_norm.forward_dropped(&x, keep)?;
        let x = gelu_dropout(&self.input_fc.forward(&x)?, mode, self.dropout)?;
        let x = ops::add_positions(&x, &self.positions, t)?;
        self.layer.forward(&x, &x, key_bias, mode, self.dropout)
    }

    /// (n, t, D) with `key_bias` (n, t) → (n, A) for a local network, or (n, 2A) =
    /// [pooled | context attention] for a global one, which needs `context` (n, A).
    pub fn forward(
        &self,
        values: &Tensor,
        key_bias: &Tensor,
        context: Option<&Tensor>,
        mode: &mut Mode,
    ) -> Result<Tensor> {
        let steps = self.steps(values, key_bias, mode)?;
        let pooled = self.pool.forward(&steps, key_bias, mode, self.dropout)?;
        match (&self.context, context) {
            (None, None) => Ok(pooled),
            // The context vector is a one-step query (n·1 rows) over the n sequences' steps.
            (Some(layer), Some(context)) => {
                let attended = layer.forward(context, &steps, key_bias, mode, self.dropout)?;
                Tensor::cat(&[&pooled, &attended], 1)
            }
            (Some(_), None) => candle_core::bail!("a global network needs a context vector"),
            (None, Some(_)) => candle_core::bail!("a local network takes no context vector"),
        }
    }

    #[cfg(test)]
    pub fn layer(&self) -> &EncoderLayer {
        &self.layer
    }

    #[cfg(test)]
    pub fn pool(&self) -> &GenPool {
        &self.pool
    }

    #[cfg(test)]
    pub fn steps_for_test(
        &self,
        values: &Tensor,
        key_bias: &Tensor,
        mode: &mut Mode,
    ) -> Result<Tensor> {
        self.steps(values, key_bias, mode)
    }
}

/// COOT's head: video-local, video-global, text-local and text-global networks.
///
/// Local embeddings (clip, sentence) are A wide; global ones (video, paragraph) are 2A: the pooled
/// clip embeddings of the video followed by the context vector's cross-attention over them.
#[derive(Debug, Clone)]
pub struct CootHead {
    cfg: HeadConfig,
    pub(crate) video_local: Network,
    pub(crate) video_global: Network,
    pub(crate) text_local: Network,
    pub(crate) text_global: Network,
}

impl CootHead {
    pub fn new(vb: VarBuilder, cfg: &HeadConfig) -> Result<Self> {
        cfg.validate().map_err(candle_core::Error::wrap)?;
        let a = cfg.attention_dim;
        // One table for all four networks: it is a constant of (max_positions, A).
        let p = sinusoid_table(cfg.max_positions, a, vb.device())?;
        let (local, global) = (cfg.local_heads, cfg.global_heads);
        Ok(Self {
            cfg: cfg.clone(),
            video_local: Network::new(vb.pp("video_local"), cfg.video_dim, cfg, &p, local, false)?,
            video_global: Network::new(vb.pp("video_global"), a, cfg, &p, global, true)?,
            text_local: Network::new(vb.pp("text_local"), cfg.text_dim, cfg, &p, local, false)?,
            text_global: Network::new(vb.pp("text_global"), a, cfg, &p, global, true)?,
        })
    }

    pub fn config(&self) -> &HeadConfig {
        &self.cfg
    }

    /// One modality: local embeddings of `items` (clips or sentences), the context vector of each
    /// group from `context` (or, without one, from the mean of the group's pooled item features
    /// as a one-step sequence), then the global network over each group's local embeddings.
    pub(crate) fn encode_side(
        local: &Network,
        global: &Network,
        items: &SequenceBatch,
        context: Option<&SequenceBatch>,
        grouping: &Grouping,
        mode: &mut Mode,
    ) -> Result<SideEmbeddings> {
        let local_embeddings =
            local.forward(&items.values_f32()?, &items.key_bias()?, None, mode)?;
        let context = match context {
            Some(context) => {
                local.forward(&context.values_f32()?, &context.key_bias()?, None, mode)?
            }
            None => {
                // Without the whole video's frames, the video's context is what it is made of:
                // the mean of its clips' pooled input features, seen as a one-step sequence.
                let mean = grouping.mean(&items.masked_mean()?)?.unsqueeze(1)?;
                let bias = Tensor::zeros((grouping.videos, 1), DType::F32, mean.device())?;
                local.forward(&mean, &bias, None, mode)?
            }
        };
        let regrouped = grouping.regroup(&local_embeddings)?;
        let group_bias = super::input::key_bias(&grouping.mask)?;
        let global_embeddings = global.forward(&regrouped, &group_bias, Some(&context), mode)?;
        Ok(SideEmbeddings {
            local: local_embeddings,
            global: global_embeddings,
        })
    }
}
