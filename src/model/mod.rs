//! The embedding heads and their checkpoints (DESIGN.md §5).
//!
//! Two heads map encoder features into the joint space the loss works in:
//! - [`MlpHead`] (`mlp`), for pooled features: per modality LayerNorm → Linear → GELU → Linear;
//! - [`CootHead`] (`coot`), COOT's local/global transformers: clips and sentences from their frames
//!   and tokens, videos and paragraphs from their clips and sentences plus a context vector.
//!
//! Both are built candle-nn style from a [`candle_nn::VarBuilder`] and give the same
//! [`Embeddings`]: clip/sentence (local) and video/paragraph (global) level. Build through
//! `VarBuilder::from_varmap`, then [`initialise`] the `VarMap` from a seed: candle's own random
//! initialisation is not seeded. Dropout is drawn from the generator passed in [`Mode::Train`], so
//! training is reproducible from seeds too. Checkpoints are safetensors bytes plus a JSON sidecar
//! ([`checkpoint_bytes`], [`load_checkpoint`]).

mod checkpoint;
mod config;
mod coot;
mod error;
mod init;
mod input;
mod layers;
mod mlp;
mod ops;

use std::collections::HashMap;
use std::ops::Range;

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{VarBuilder, VarMap};
use rand_chacha::ChaCha8Rng;

pub use checkpoint::{
    CheckpointMeta, EncoderSpec, checkpoint_bytes, load_checkpoint, parameter_shapes,
};
pub use config::{DeviceKind, HeadConfig, HeadKind};
pub use coot::CootHead;
pub use error::{ModelError, TensorMismatch};
pub use init::{INIT_STD, InitRule, init_rule, initialise};
pub use input::{ModelInput, SequenceBatch};
pub use mlp::MlpHead;

use input::Grouping;

/// Whether a forward pass trains: dropout is active only in `Train`, with its masks drawn from
/// `rng` in a fixed order (video side first, then text), so the same generator state gives the
/// same step.
#[derive(Debug)]
pub enum Mode<'a> {
    Eval,
    Train { rng: &'a mut ChaCha8Rng },
}

/// The embeddings of one batch.
#[derive(Debug, Clone)]
pub struct Embeddings {
    /// (n_clips, d_local)
    pub clip: Tensor,
    /// (n_clips, d_local), row i is clip i's sentence.
    pub sentence: Tensor,
    /// (n_videos, d_global)
    pub video: Tensor,
    /// (n_videos, d_global)
    pub paragraph: Tensor,
}

/// One modality's embeddings: local (clips or sentences) and global (videos or paragraphs).
#[derive(Debug, Clone)]
pub struct SideEmbeddings {
    pub local: Tensor,
    pub global: Tensor,
}

/// Which side of the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Video,
    Text,
}

impl Side {
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Side::Video => ("video_clips", "video_context"),
            Side::Text => ("text_sentences", "text_context"),
        }
    }
}

/// A head of either kind, chosen by [`HeadConfig::kind`].
// A program holds one or two heads, never a collection of them: the size difference of the
// variants costs nothing, and unboxed variants keep `EmbeddingHead::Coot(head)` patterns plain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum EmbeddingHead {
    Mlp(MlpHead),
    Coot(CootHead),
}

impl EmbeddingHead {
    /// Builds the head `cfg` describes; parameters are named under `vb`'s prefix (`video.*` and
    /// `text.*` for mlp; `video_local.*`, `video_global.*`, `text_local.*`, `text_global.*` for coot).
    pub fn new(vb: VarBuilder, cfg: &HeadConfig) -> Result<Self> {
        Ok(match cfg.kind {
            HeadKind::Mlp => EmbeddingHead::Mlp(MlpHead::new(vb, cfg)?),
            HeadKind::Coot => EmbeddingHead::Coot(CootHead::new(vb, cfg)?),
        })
    }

    /// The head `cfg` describes over the *current* weights of `varmap`, detached: its forward
    /// passes record no gradient graph, so every intermediate is freed as soon as it is used
    /// (a graph keeps all of them alive until the outputs are dropped). For evaluation, embedding
    /// export and search. The tensors share storage with the variables, so later optimiser steps
    /// (which update variables in place) are seen without rebuilding.
    pub fn frozen(varmap: &VarMap, cfg: &HeadConfig, device: &Device) -> Result<Self> {
        let tensors: HashMap<String, Tensor> = varmap
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("the variable map's lock is poisoned".into()))?
            .iter()
            .map(|(name, var)| (name.clone(), var.as_tensor().detach()))
            .collect();
        Self::new(VarBuilder::from_tensors(tensors, DType::F32, device), cfg)
    }

    pub fn config(&self) -> &HeadConfig {
        match self {
            EmbeddingHead::Mlp(head) => head.config(),
            EmbeddingHead::Coot(head) => head.config(),
        }
    }

    /// Embeds a batch: clips and sentences, videos and paragraphs.
    pub fn forward(&self, input: &ModelInput, mode: Mode) -> Result<Embeddings> {
        let mut mode = mode;
        let clips = input.video_clips.len();
        let sentences = input.text_sentences.len();
        if clips != sentences {
            candle_core::bail!(
                "video_clips has {clips} rows but text_sentences has {sentences}: \
                 row i of both must be the same clip"
            );
        }
        let grouping = Grouping::new(&input.groups, clips, input.video_clips.values.device())?;
        let video = self.side(
            Side::Video,
            &input.video_clips,
            input.video_context.as_ref(),
            &grouping,
            &mut mode,
        )?;
        let text = self.side(
            Side::Text,
            &input.text_sentences,
            input.text_context.as_ref(),
            &grouping,
            &mut mode,
        )?;
        Ok(Embeddings {
            clip: video.local,
            sentence: text.local,
            video: video.global,
            paragraph: text.global,
        })
    }

    /// The video side alone: clip embeddings and the video embedding of each group.
    pub fn encode_video(
        &self,
        clips: &SequenceBatch,
        context: Option<&SequenceBatch>,
        groups: &[Range<usize>],
        mode: Mode,
    ) -> Result<SideEmbeddings> {
        let mut mode = mode;
        let grouping = Grouping::new(groups, clips.len(), clips.values.device())?;
        self.side(Side::Video, clips, context, &grouping, &mut mode)
    }

    /// The text side alone (e.g. a search query as a one-sentence paragraph): sentence
    /// embeddings and the paragraph embedding of each group.
    pub fn encode_text(
        &self,
        sentences: &SequenceBatch,
        context: Option<&SequenceBatch>,
        groups: &[Range<usize>],
        mode: Mode,
    ) -> Result<SideEmbeddings> {
        let mut mode = mode;
        let grouping = Grouping::new(groups, sentences.len(), sentences.values.device())?;
        self.side(Side::Text, sentences, context, &grouping, &mut mode)
    }

    fn side(
        &self,
        side: Side,
        items: &SequenceBatch,
        context: Option<&SequenceBatch>,
        grouping: &Grouping,
        mode: &mut Mode,
    ) -> Result<SideEmbeddings> {
        let cfg = self.config();
        let width = match side {
            Side::Video => cfg.video_dim,
            Side::Text => cfg.text_dim,
        };
        let (items_name, context_name) = side.names();
        items.check(items_name, Some(width))?;
        if let Some(context) = context {
            let (rows, _) = context.check(context_name, Some(width))?;
            if rows != grouping.videos {
                candle_core::bail!(
                    "{context_name} has {rows} rows but there are {} groups: one row per video",
                    grouping.videos
                );
            }
        }
        match self {
            EmbeddingHead::Mlp(head) => {
                let tower = match side {
                    Side::Video => &head.video,
                    Side::Text => &head.text,
                };
                MlpHead::encode_side(tower, items, grouping, mode)
            }
            EmbeddingHead::Coot(head) => {
                let (local, global) = match side {
                    Side::Video => (&head.video_local, &head.video_global),
                    Side::Text => (&head.text_local, &head.text_global),
                };
                CootHead::encode_side(local, global, items, context, grouping, mode)
            }
        }
    }
}

impl ModelInput {
    /// Pooled features, one step per clip and sentence: video (n, Dv), text (n, Dt), no contexts.
    pub fn pooled(video: &Tensor, text: &Tensor, groups: Vec<Range<usize>>) -> Result<Self> {
        Ok(Self {
            video_clips: SequenceBatch::pooled(video)?,
            text_sentences: SequenceBatch::pooled(text)?,
            video_context: None,
            text_context: None,
            groups,
        })
    }
}

#[cfg(test)]
mod tests;
