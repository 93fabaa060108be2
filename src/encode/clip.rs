//! CLIP's image tower from a local folder in Hugging Face's layout: `config.json` (a full CLIP
//! config with `vision_config`, or a vision-only one), `model.safetensors` (`vision_model.*` and
//! `visual_projection.weight`), and optionally `preprocessor_config.json`.
//!
//! Each frame is preprocessed as `CLIPImageProcessor` does: the shortest side scaled to 224 with
//! Pillow's bicubic filter and rounded to 8 bits, the centre 224×224 cropped, values scaled to
//! 0–1 and standardised with CLIP's mean and standard deviation (sizes, mean and standard deviation
//! from `preprocessor_config.json` when present). A frame's feature is the projected image
//! embedding, L2-normalised as CLIP compares them.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Linear, VarBuilder};
use candle_transformers::models::clip::text_model::Activation;
use candle_transformers::models::clip::vision_model::{ClipVisionConfig, ClipVisionTransformer};
use serde::Deserialize;

use super::folder::{read_json, read_weights};
use super::resample::{Filter, resample_rgb};
use super::{EncodeError, InputSize, VisualEncoder, check_frames, normalize_l2};
use crate::media::RgbFrame;

/// Frames per forward pass.
const BATCH: usize = 16;
/// The longest side a frame may have, in multiples of its shortest.
const MAX_ASPECT: usize = 16;
const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

/// `vision_config` of a Hugging Face CLIP config, with `CLIPVisionConfig`'s defaults.
#[derive(Deserialize)]
#[serde(default)]
struct VisionConfig {
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_channels: usize,
    image_size: usize,
    patch_size: usize,
    hidden_act: String,
    layer_norm_eps: f64,
    projection_dim: Option<usize>,
}

impl Default for VisionConfig {
    fn default() -> Self {
        Self {
            hidden_size: 768,
            intermediate_size: 3072,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            num_channels: 3,
            image_size: 224,
            patch_size: 32,
            hidden_act: "quick_gelu".into(),
            layer_norm_eps: 1e-5,
            projection_dim: None,
        }
    }
}

/// A size in `preprocessor_config.json`: a number, or an object of edges.
#[derive(Deserialize)]
#[serde(untagged)]
enum SizeSpec {
    Square(usize),
    Edges {
        shortest_edge: Option<usize>,
        height: Option<usize>,
        width: Option<usize>,
    },
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PreprocessorConfig {
    size: Option<SizeSpec>,
    crop_size: Option<SizeSpec>,
    image_mean: Option<[f32; 3]>,
    image_std: Option<[f32; 3]>,
}

#[derive(Debug, Clone, PartialEq)]
struct Preprocess {
    shortest_edge: usize,
    crop: usize,
    mean: [f32; 3],
    std: [f32; 3],
}

#[derive(Debug)]
pub struct ClipVisualEncoder {
    name: String,
    folder: PathBuf,
    vision: ClipVisionTransformer,
    projection: Linear,
    dim: usize,
    preprocess: Preprocess,
    device: Device,
}

impl ClipVisualEncoder {
    /// Loads the image tower in `folder` onto `device`; named `clip:<folder>`.
    pub fn load(folder: &Path, device: &Device) -> Result<Self, EncodeError> {
        let config_path = folder.join("config.json");
        let (config, projection_dim) = read_vision_config(&config_path)?;
        let preprocess = read_preprocess(folder, config.image_size)?;

        let weights_path = folder.join("model.safetensors");
        let weights = read_weights(&weights_path)?;
        let weights_error = |source| EncodeError::Weights {
            path: weights_path.clone(),
            source,
        };
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, device)
            .map_err(weights_error)?;
        // candle draws a random class embedding when the file lacks one; a missing tensor must
        // be an error instead.
        let class_embedding = "vision_model.embeddings.class_embedding";
        if !vb.contains_tensor(class_embedding) {
            return Err(weights_error(candle_core::Error::CannotFindTensor {
                path: class_embedding.into(),
            }));
        }
        let vision =
            ClipVisionTransformer::new(vb.pp("vision_model"), &config).map_err(weights_error)?;
        let projection =
            candle_nn::linear_no_bias(config.embed_dim, projection_dim, vb.pp("visual_projection"))
                .map_err(weights_error)?;
        Ok(Self {
            name: format!("clip:{}", folder.display()),
            folder: folder.to_path_buf(),
            vision,
            projection,
            dim: projection_dim,
            preprocess,
            device: device.clone(),
        })
    }

    /// The same encoder under the name a project records for it.
    pub(super) fn with_name(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// The folder the weights came from.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// One frame as the network's input: `3 × crop × crop`, channel-major, standardised.
    fn pixels(&self, index: usize, frame: &RgbFrame) -> Result<Vec<f32>, EncodeError> {
        let Preprocess {
            shortest_edge,
            crop,
            mean,
            std,
        } = self.preprocess;
        let (width, height) = (frame.width as usize, frame.height as usize);
        let (scaled_width, scaled_height) = if width <= height {
            (shortest_edge, shortest_edge * height / width)
        } else {
            (shortest_edge * width / height, shortest_edge)
        };
        // Scaling a sliver's shortest side up would make a huge image of the rest.
        if scaled_width.max(scaled_height) > MAX_ASPECT * shortest_edge {
            return Err(EncodeError::BadFrame {
                index,
                reason: format!(
                    "{width}×{height} is longer than {MAX_ASPECT}:1, not a video frame"
                ),
            });
        }
        let scaled = resample_rgb(
            &frame.pixels,
            width,
            height,
            scaled_width,
            scaled_height,
            Filter::Bicubic,
        );
        let top = (scaled_height - crop) / 2;
        let left = (scaled_width - crop) / 2;
        let mut out = vec![0.0f32; 3 * crop * crop];
        for y in 0..crop {
            for x in 0..crop {
                let at = ((top + y) * scaled_width + left + x) * 3;
                for c in 0..3 {
                    // Pillow hands back 8-bit pixels.
                    let value = scaled[at + c].round().clamp(0.0, 255.0) / 255.0;
                    out[(c * crop + y) * crop + x] = (value - mean[c]) / std[c];
                }
            }
        }
        Ok(out)
    }
}

impl VisualEncoder for ClipVisualEncoder {
    fn name(&self) -> &str {
        &self.name
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn input_size(&self) -> InputSize {
        let side = self.preprocess.crop as u32;
        InputSize {
            width: side,
            height: side,
        }
    }

    fn encode(&self, frames: &[RgbFrame]) -> Result<Vec<f32>, EncodeError> {
        check_frames(frames)?;
        let crop = self.preprocess.crop;
        let mut out = Vec::with_capacity(frames.len() * self.dim);
        for (first, chunk) in (0..).step_by(BATCH).zip(frames.chunks(BATCH)) {
            let mut pixels = Vec::with_capacity(chunk.len() * 3 * crop * crop);
            for (offset, frame) in chunk.iter().enumerate() {
                pixels.extend(self.pixels(first + offset, frame)?);
            }
            let input = Tensor::from_vec(pixels, (chunk.len(), 3, crop, crop), &self.device)?;
            let embeddings = self
                .projection
                .forward(&self.vision.forward(&input)?)?
                .to_dtype(DType::F32)?
                .to_vec2::<f32>()?;
            for mut row in embeddings {
                normalize_l2(&mut row);
                out.extend(row);
            }
        }
        Ok(out)
    }
}

/// candle's `ClipVisionConfig` from Hugging Face's `config.json`, and the projection width.
fn read_vision_config(path: &Path) -> Result<(ClipVisionConfig, usize), EncodeError> {
    let mut json: serde_json::Value = read_json(path, "the model's config")?;
    let top_projection = json.get("projection_dim").and_then(|v| v.as_u64());
    let vision_json = match json.get_mut("vision_config") {
        Some(vision) => vision.take(),
        None => json,
    };
    let vision: VisionConfig =
        serde_json::from_value(vision_json).map_err(|e| EncodeError::BadFile {
            path: path.to_path_buf(),
            reason: format!("vision_config: {e}"),
        })?;
    let unsupported = |what: String, reason: &str| EncodeError::Unsupported {
        path: path.to_path_buf(),
        what,
        reason: reason.into(),
    };
    if vision.hidden_act != "quick_gelu" {
        return Err(unsupported(
            format!("hidden_act `{}`", vision.hidden_act),
            "candle's CLIP implements quick_gelu only",
        ));
    }
    if (vision.layer_norm_eps - 1e-5).abs() > 1e-12 {
        return Err(unsupported(
            format!("layer_norm_eps {}", vision.layer_norm_eps),
            "candle's CLIP uses 1e-5",
        ));
    }
    if vision.patch_size == 0 || !vision.image_size.is_multiple_of(vision.patch_size) {
        return Err(unsupported(
            format!(
                "image_size {} with patch_size {}",
                vision.image_size, vision.patch_size
            ),
            "the image must be a whole number of patches",
        ));
    }
    if vision.num_attention_heads == 0
        || !vision
            .hidden_size
            .is_multiple_of(vision.num_attention_heads)
    {
        return Err(unsupported(
            format!(
                "hidden_size {} with {} heads",
                vision.hidden_size, vision.num_attention_heads
            ),
            "the width must split evenly between the heads",
        ));
    }
    let projection_dim = vision
        .projection_dim
        .or(top_projection.map(|p| p as usize))
        .unwrap_or(512);
    let config = ClipVisionConfig {
        embed_dim: vision.hidden_size,
        activation: Activation::QuickGelu,
        intermediate_size: vision.intermediate_size,
        num_hidden_layers: vision.num_hidden_layers,
        num_attention_heads: vision.num_attention_heads,
        projection_dim,
        num_channels: vision.num_channels,
        image_size: vision.image_size,
        patch_size: vision.patch_size,
    };
    Ok((config, projection_dim))
}

/// Preprocessing from `preprocessor_config.json`, or CLIP's at the model's image size.
fn read_preprocess(folder: &Path, image_size: usize) -> Result<Preprocess, EncodeError> {
    let path = folder.join("preprocessor_config.json");
    let config: PreprocessorConfig = if path.exists() {
        read_json(&path, "the image preprocessing")?
    } else {
        PreprocessorConfig::default()
    };
    let shortest_edge = match config.size {
        Some(SizeSpec::Square(side)) => side,
        Some(SizeSpec::Edges {
            shortest_edge: Some(side),
            ..
        }) => side,
        _ => image_size,
    };
    let crop = match config.crop_size {
        Some(SizeSpec::Square(side)) => side,
        Some(SizeSpec::Edges {
            height: Some(height),
            width: Some(width),
            ..
        }) if height == width => height,
        None => image_size,
        Some(_) => {
            return Err(EncodeError::Unsupported {
                path,
                what: "crop_size".into(),
                reason: "only square crops are implemented".into(),
            });
        }
    };
    if crop != image_size || shortest_edge < crop {
        return Err(EncodeError::Unsupported {
            path,
            what: format!("shortest edge {shortest_edge} and crop {crop}"),
            reason: format!(
                "the model reads {image_size}×{image_size} images, cropped from frames scaled at least that large"
            ),
        });
    }
    let std = config.image_std.unwrap_or(CLIP_STD);
    if std.iter().any(|s| *s <= 0.0) {
        return Err(EncodeError::Unsupported {
            path,
            what: format!("image_std {std:?}"),
            reason: "standard deviations must be positive".into(),
        });
    }
    Ok(Preprocess {
        shortest_edge,
        crop,
        mean: config.image_mean.unwrap_or(CLIP_MEAN),
        std,
    })
}
