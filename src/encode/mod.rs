//! Encoders (DESIGN §3): what turns captions and frames into the input features the heads read.
//!
//! Two traits, each with a built-in encoder that needs no weights and one that loads a pretrained
//! network from a local folder of safetensors:
//!
//! | trait            | built-in                     | pretrained                                 |
//! |------------------|------------------------------|--------------------------------------------|
//! | [`TextEncoder`]  | [`HashedTextEncoder`] (`hashed`) | [`BertTextEncoder`] (`minilm`, `bert:<folder>`) |
//! | [`VisualEncoder`]| [`DescriptorVisualEncoder`] (`descriptor`) | [`ClipVisualEncoder`] (`clip:<folder>`) |
//!
//! An encoder is named by the string in `crossclr.toml`'s `[encoders]` ([`text_encoder`],
//! [`visual_encoder`] build one from it), and [`crate::project::encoders::check_encoders`] says how a project's encoders
//! differ from a checkpoint's or from live ones.
//!
//! Model folders live under [`models_dir`]: `$CROSSCLR_MODELS_DIR`, else the platform cache
//! directory plus `crossclr/models` (Linux: `$XDG_CACHE_HOME` or `~/.cache`; macOS:
//! `~/Library/Caches`). `scripts/setup.sh` puts all-MiniLM-L6-v2 there by the same rule.

mod bert;
mod check;
mod clip;
mod descriptor;
mod error;
mod folder;
mod hashed;
mod resample;
mod spec;

use std::path::PathBuf;

pub use bert::BertTextEncoder;
pub use check::live_encoders;
pub use clip::ClipVisualEncoder;
pub use descriptor::DescriptorVisualEncoder;
pub use error::EncodeError;
pub use hashed::HashedTextEncoder;
pub use spec::{text_encoder, visual_encoder};

use crate::media::RgbFrame;
use crate::project::Sequences;

/// The environment variable that overrides where model folders live.
pub const MODELS_DIR_VAR: &str = "CROSSCLR_MODELS_DIR";

/// The folder name of all-MiniLM-L6-v2 under [`models_dir`].
pub const MINILM_FOLDER: &str = "all-MiniLM-L6-v2";

/// Where model folders live: `$CROSSCLR_MODELS_DIR`, else `<platform cache dir>/crossclr/models`.
pub fn models_dir() -> Result<PathBuf, EncodeError> {
    match std::env::var_os(MODELS_DIR_VAR) {
        Some(dir) if !dir.is_empty() => Ok(PathBuf::from(dir)),
        _ => dirs::cache_dir()
            .map(|cache| cache.join("crossclr").join("models"))
            .ok_or(EncodeError::NoModelsDir),
    }
}

/// The all-MiniLM-L6-v2 folder `scripts/setup.sh` installs.
pub fn minilm_dir() -> Result<PathBuf, EncodeError> {
    Ok(models_dir()?.join(MINILM_FOLDER))
}

/// Captions in, features out.
pub trait TextEncoder: Send + Sync + std::fmt::Debug {
    /// The name recorded in projects and checkpoints; [`text_encoder`] rebuilds the encoder from it.
    fn name(&self) -> &str;
    /// Width of a sentence embedding and of a token's features.
    fn dim(&self) -> usize;
    /// Encodes `sentences`; the result holds one embedding and one token sequence per sentence,
    /// in order. Every sentence yields at least one token row.
    fn encode(&self, sentences: &[&str]) -> Result<TextFeatures, EncodeError>;
}

/// What a [`TextEncoder`] makes of a batch of sentences.
#[derive(Debug, Clone, PartialEq)]
pub struct TextFeatures {
    /// One sentence embedding per sentence, row-major, `tokens.dim` wide (the `mlp` head's input).
    pub sentences: Vec<f32>,
    /// Each sentence's token features (`L_i × D`, the `coot` head's input).
    pub tokens: Sequences,
    /// Indices of the sentences that were cut to the encoder's maximum length.
    pub truncated: Vec<usize>,
}

impl TextFeatures {
    pub fn dim(&self) -> usize {
        self.tokens.dim
    }

    /// Number of sentences.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Sentence `i`'s embedding.
    pub fn sentence(&self, i: usize) -> &[f32] {
        let dim = self.dim();
        &self.sentences[i * dim..(i + 1) * dim]
    }
}

/// The frame size a visual encoder looks at. Frames of any size are accepted (CLIP scales the
/// shortest side to it and crops the centre; the descriptor averages the whole frame down to it),
/// so a decoder that hands over frames about this size only saves the encoder work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputSize {
    pub width: u32,
    pub height: u32,
}

/// A clip's frames in, per-frame features out.
pub trait VisualEncoder: Send + Sync + std::fmt::Debug {
    /// The name recorded in projects and checkpoints; [`visual_encoder`] rebuilds the encoder from it.
    fn name(&self) -> &str;
    /// Width of one frame's features.
    fn dim(&self) -> usize;
    fn input_size(&self) -> InputSize;
    /// Features of the frames of one clip, in order: `frames.len() × dim()`, row-major. The frames
    /// are one clip's because an encoder may look at a frame's predecessor (motion).
    fn encode(&self, frames: &[RgbFrame]) -> Result<Vec<f32>, EncodeError>;
}

/// A frame whose fields disagree (they are public) is refused by index instead of read out of bounds.
fn check_frames(frames: &[RgbFrame]) -> Result<(), EncodeError> {
    for (index, frame) in frames.iter().enumerate() {
        let expected = frame.width as usize * frame.height as usize * 3;
        if frame.width == 0 || frame.height == 0 || frame.pixels.len() != expected {
            return Err(EncodeError::BadFrame {
                index,
                reason: format!(
                    "{}×{} needs {expected} RGB bytes but has {}",
                    frame.width,
                    frame.height,
                    frame.pixels.len()
                ),
            });
        }
    }
    Ok(())
}

/// Scales `values` to unit L2 norm; an all-zero vector stays zero.
fn normalize_l2(values: &mut [f32]) {
    let norm = values.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        values.iter_mut().for_each(|v| *v /= norm);
    }
}
