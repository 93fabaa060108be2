//! BERT-family sentence encoders (all-MiniLM-L6-v2 and its kin) from a local folder laid out as
//! sentence-transformers saves it: `config.json`, `tokenizer.json`, `model.safetensors`, and
//! optionally `modules.json` (with a pooling module's `config.json`) and
//! `sentence_bert_config.json`.
//!
//! The output is what sentence-transformers computes: the last hidden states of the tokens
//! (special tokens included, padding excluded), averaged with the attention mask, then
//! L2-normalised when `modules.json` lists a `Normalize` module. The token features are those
//! hidden states before pooling, so a sentence's mean token row is its embedding before
//! normalisation. Without `modules.json` the folder is taken as a plain BERT: mean pooling,
//! no normalisation.

use std::cmp::Reverse;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use serde::Deserialize;
use tokenizers::{Encoding, Tokenizer, TruncationParams};

use super::folder::{read_json, read_weights};
use super::{EncodeError, TextEncoder, TextFeatures};
use crate::project::Sequences;

/// Tokens per sentence when the folder does not say (sentence-transformers' `max_seq_length`).
pub const DEFAULT_MAX_LENGTH: usize = 256;

/// Sentences per forward pass unless [`BertTextEncoder::with_batch_size`] says otherwise.
pub const DEFAULT_BATCH_SIZE: usize = 32;

pub struct BertTextEncoder {
    name: String,
    folder: PathBuf,
    model: BertModel,
    tokenizer: Tokenizer,
    dim: usize,
    max_length: usize,
    normalize: bool,
    pad_id: u32,
    batch_size: usize,
    device: Device,
}

impl std::fmt::Debug for BertTextEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BertTextEncoder")
            .field("name", &self.name)
            .field("folder", &self.folder)
            .field("dim", &self.dim)
            .field("max_length", &self.max_length)
            .field("normalize", &self.normalize)
            .field("batch_size", &self.batch_size)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Module {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    path: String,
}

#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

impl BertTextEncoder {
    /// Loads the model in `folder` onto `device`; named `bert:<folder>`.
    pub fn load(folder: &Path, device: &Device) -> Result<Self, EncodeError> {
        let config_path = folder.join("config.json");
        let config: Config = read_json(&config_path, "the model's config")?;
        let normalize = read_modules(folder)?;

        let sentence_config = folder.join("sentence_bert_config.json");
        let max_length = if sentence_config.exists() {
            let sentence: SentenceBertConfig =
                read_json(&sentence_config, "sentence-transformers' config")?;
            sentence.max_seq_length.unwrap_or(DEFAULT_MAX_LENGTH)
        } else {
            DEFAULT_MAX_LENGTH
        }
        .min(config.max_position_embeddings);
        // [CLS] and [SEP] take two places; a sentence needs at least one more.
        if max_length < 3 {
            return Err(EncodeError::Unsupported {
                path: folder.to_path_buf(),
                what: format!(
                    "a maximum length of {max_length} tokens (sentence_bert_config.json's \
                     max_seq_length, capped by config.json's max_position_embeddings)"
                ),
                reason: "a sentence needs at least 3 tokens".into(),
            });
        }

        let tokenizer_path = folder.join("tokenizer.json");
        if !tokenizer_path.exists() {
            return Err(EncodeError::MissingFile {
                path: tokenizer_path,
                what: "the tokenizer",
            });
        }
        let mut tokenizer =
            Tokenizer::from_file(&tokenizer_path).map_err(|e| EncodeError::BadFile {
                path: tokenizer_path.clone(),
                reason: e.to_string(),
            })?;
        // The file may pad to a fixed length and truncate shorter (MiniLM's says 128); batches
        // here are padded to their longest sentence, and truncated where sentence-transformers does.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length,
                ..TruncationParams::default()
            }))
            .map_err(|e| EncodeError::BadFile {
                path: tokenizer_path.clone(),
                reason: e.to_string(),
            })?;

        let weights_path = folder.join("model.safetensors");
        let weights = read_weights(&weights_path)?;
        let model = VarBuilder::from_buffered_safetensors(weights, DType::F32, device)
            .and_then(|vb| BertModel::load(vb, &config))
            .map_err(|source| EncodeError::Weights {
                path: weights_path,
                source,
            })?;
        Ok(Self {
            name: format!("bert:{}", folder.display()),
            folder: folder.to_path_buf(),
            model,
            tokenizer,
            dim: config.hidden_size,
            max_length,
            normalize,
            pad_id: config.pad_token_id as u32,
            batch_size: DEFAULT_BATCH_SIZE,
            device: device.clone(),
        })
    }

    /// The same encoder under the name a project records for it.
    pub(super) fn with_name(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// Sentences per forward pass (at least 1). Larger batches are faster per sentence up to a
    /// point and cost memory quadratic in the longest sentence.
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// Tokens kept per sentence, special tokens included.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Whether sentence embeddings are L2-normalised (the folder's modules say `Normalize`).
    pub fn normalizes(&self) -> bool {
        self.normalize
    }

    /// The token ids each sentence is encoded from, special tokens included.
    pub fn token_ids(&self, sentences: &[&str]) -> Result<Vec<Vec<u32>>, EncodeError> {
        Ok(self
            .tokenize(sentences)?
            .iter()
            .map(|encoding| encoding.get_ids().to_vec())
            .collect())
    }

    fn tokenize(&self, sentences: &[&str]) -> Result<Vec<Encoding>, EncodeError> {
        sentences
            .iter()
            .enumerate()
            .map(|(index, sentence)| {
                self.tokenizer
                    .encode(*sentence, true)
                    .map_err(|e| EncodeError::Tokenize {
                        index,
                        reason: e.to_string(),
                    })
            })
            .collect()
    }

    /// Last hidden states of one padded batch: per sentence, its tokens' rows (`len × dim`).
    fn forward(&self, batch: &[&Encoding]) -> Result<Vec<Vec<f32>>, EncodeError> {
        let longest = batch.iter().map(|e| e.len()).max().unwrap_or(0);
        let mut ids = vec![self.pad_id; batch.len() * longest];
        let mut mask = vec![0.0f32; batch.len() * longest];
        for (row, encoding) in batch.iter().enumerate() {
            let start = row * longest;
            ids[start..start + encoding.len()].copy_from_slice(encoding.get_ids());
            mask[start..start + encoding.len()].fill(1.0);
        }
        let shape = (batch.len(), longest);
        let ids = Tensor::from_vec(ids, shape, &self.device)?;
        let types = ids.zeros_like()?;
        let mask = Tensor::from_vec(mask, shape, &self.device)?;
        let hidden = self
            .model
            .forward(&ids, &types, Some(&mask))?
            .to_dtype(DType::F32)?
            .to_vec3::<f32>()?;
        Ok(hidden
            .into_iter()
            .zip(batch)
            .map(|(rows, encoding)| rows.into_iter().take(encoding.len()).flatten().collect())
            .collect())
    }

    /// sentence-transformers' mean pooling, and `F.normalize` (norm floored at 1e-12) when asked.
    fn pool(&self, rows: &[f32]) -> Vec<f32> {
        let count = (rows.len() / self.dim) as f32;
        let mut mean = vec![0.0f32; self.dim];
        for row in rows.chunks(self.dim) {
            mean.iter_mut().zip(row).for_each(|(m, v)| *m += v);
        }
        mean.iter_mut().for_each(|m| *m /= count.max(1e-9));
        if self.normalize {
            let norm = mean.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            mean.iter_mut().for_each(|v| *v /= norm);
        }
        mean
    }
}

impl TextEncoder for BertTextEncoder {
    fn name(&self) -> &str {
        &self.name
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn encode(&self, sentences: &[&str]) -> Result<TextFeatures, EncodeError> {
        let encodings = self.tokenize(sentences)?;
        let truncated = encodings
            .iter()
            .enumerate()
            .filter(|(_, encoding)| !encoding.get_overflowing().is_empty())
            .map(|(i, _)| i)
            .collect();
        // Longest first, as sentence-transformers does, so that a batch pads little.
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| Reverse(encodings[i].len()));
        let mut token_rows = vec![Vec::new(); encodings.len()];
        for chunk in order.chunks(self.batch_size) {
            let batch: Vec<&Encoding> = chunk.iter().map(|&i| &encodings[i]).collect();
            for (&i, rows) in chunk.iter().zip(self.forward(&batch)?) {
                token_rows[i] = rows;
            }
        }
        let mut embeddings = Vec::with_capacity(sentences.len() * self.dim);
        let mut tokens = Sequences::new(self.dim);
        for rows in &token_rows {
            embeddings.extend(self.pool(rows));
            tokens.push(rows);
        }
        Ok(TextFeatures {
            sentences: embeddings,
            tokens,
            truncated,
        })
    }
}

/// Whether `modules.json`, if there is one, normalises; pooling other than the mean and modules
/// other than these three are refused.
fn read_modules(folder: &Path) -> Result<bool, EncodeError> {
    let modules_path = folder.join("modules.json");
    if !modules_path.exists() {
        return Ok(false);
    }
    let modules: Vec<Module> = read_json(&modules_path, "sentence-transformers' module list")?;
    let normalize = modules.iter().any(|m| m.kind.ends_with(".Normalize"));
    for module in modules.iter().filter(|m| m.kind.ends_with(".Pooling")) {
        let path = folder.join(&module.path).join("config.json");
        let pooling: serde_json::Map<String, serde_json::Value> =
            read_json(&path, "the pooling module's config")?;
        let modes: Vec<&str> = pooling
            .iter()
            .filter(|(key, value)| {
                key.starts_with("pooling_mode_") && value.as_bool() == Some(true)
            })
            .map(|(key, _)| key.as_str())
            .collect();
        if modes != ["pooling_mode_mean_tokens"] {
            return Err(EncodeError::Unsupported {
                path,
                what: format!("pooling {modes:?}"),
                reason: "only mean pooling (pooling_mode_mean_tokens alone) is implemented".into(),
            });
        }
    }
    if let Some(other) = modules.iter().find(|m| {
        !m.kind.ends_with(".Transformer")
            && !m.kind.ends_with(".Pooling")
            && !m.kind.ends_with(".Normalize")
    }) {
        return Err(EncodeError::Unsupported {
            path: modules_path,
            what: format!("module `{}`", other.kind),
            reason: "only Transformer, Pooling and Normalize modules are implemented".into(),
        });
    }
    Ok(normalize)
}
