//! Checkpoints: the weights as safetensors and a JSON sidecar that says what they are (DESIGN.md
//! §5). Both are bytes; the caller writes them (atomically, elsewhere).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use candle_core::safetensors::Load;
use candle_core::{DType, Device, Result as CandleResult, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use super::{EmbeddingHead, HeadConfig, ModelError, TensorMismatch};

/// A feature encoder: its name (`precomputed` for imported features) and the width of one
/// frame's (or token's) feature vector. Projects record theirs in `crossclr.toml`, checkpoints
/// the ones their head was trained on.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EncoderSpec {
    pub name: String,
    pub dim: usize,
}

impl EncoderSpec {
    pub fn new(name: impl Into<String>, dim: usize) -> Self {
        Self {
            name: name.into(),
            dim,
        }
    }
}

/// What a checkpoint is: the head, the encoders whose features it reads, the loss settings, the
/// seed, the epoch it was taken at and the metrics it had then.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct CheckpointMeta {
    pub head: HeadConfig,
    pub video_encoder: EncoderSpec,
    pub text_encoder: EncoderSpec,
    pub loss: serde_json::Value,
    pub seed: u64,
    /// The epoch the weights are from, counted from 1.
    pub epoch: usize,
    pub metrics: serde_json::Value,
}

impl CheckpointMeta {
    /// The head must be valid and read features as wide as its encoders write them.
    pub fn validate(&self) -> Result<(), ModelError> {
        self.head.validate()?;
        for (side, encoder, head_dim) in [
            ("video", &self.video_encoder, self.head.video_dim),
            ("text", &self.text_encoder, self.head.text_dim),
        ] {
            if encoder.dim != head_dim {
                return Err(ModelError::Config(format!(
                    "the {side} encoder `{}` writes {}-d features but the head's {side}_dim is {head_dim}",
                    encoder.name, encoder.dim
                )));
            }
        }
        Ok(())
    }
}

/// Records the name and shape of every parameter a head asks for and hands back a broadcast zero
/// (no allocation): the layout of a head without building its weights. The record is shared so
/// that it outlives the `VarBuilder` that owns the backend.
struct ShapeRecorder(Arc<Mutex<BTreeMap<String, Vec<usize>>>>);

impl SimpleBackend for ShapeRecorder {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        _init: Init,
        dtype: DType,
        device: &Device,
    ) -> CandleResult<Tensor> {
        self.0
            .lock()
            .map_err(|_| candle_core::Error::Msg("shape recorder lock poisoned".into()))?
            .insert(name.to_string(), shape.dims().to_vec());
        Tensor::zeros((), dtype, device)?.broadcast_as(shape)
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _device: &Device) -> CandleResult<Tensor> {
        candle_core::bail!("the shape recorder has no tensor `{name}`")
    }

    fn contains_tensor(&self, _name: &str) -> bool {
        false
    }
}

/// Every parameter of the head `cfg` describes, by name, with its shape.
pub fn parameter_shapes(cfg: &HeadConfig) -> Result<BTreeMap<String, Vec<usize>>, ModelError> {
    cfg.validate()?;
    let record = Arc::new(Mutex::new(BTreeMap::new()));
    let vb = VarBuilder::from_backend(
        Box::new(ShapeRecorder(record.clone())),
        DType::F32,
        Device::Cpu,
    );
    EmbeddingHead::new(vb, cfg)?;
    let shapes = record
        .lock()
        .map_err(|_| ModelError::Config("shape recorder lock poisoned".into()))?
        .clone();
    Ok(shapes)
}

/// Names and shapes found against names and shapes expected, every difference collected.
fn compare_layout(
    expected: &BTreeMap<String, Vec<usize>>,
    found: &BTreeMap<String, Vec<usize>>,
) -> Vec<TensorMismatch> {
    let mut problems = Vec::new();
    let names: BTreeSet<&String> = expected.keys().chain(found.keys()).collect();
    for name in names {
        match (expected.get(name), found.get(name)) {
            (Some(expected), None) => problems.push(TensorMismatch::Missing {
                name: name.clone(),
                expected: expected.clone(),
            }),
            (None, Some(found)) => problems.push(TensorMismatch::Unexpected {
                name: name.clone(),
                found: found.clone(),
            }),
            (Some(expected), Some(found)) if expected != found => {
                problems.push(TensorMismatch::Shape {
                    name: name.clone(),
                    expected: expected.clone(),
                    found: found.clone(),
                })
            }
            _ => {}
        }
    }
    problems
}

/// The checkpoint of `varmap` described by `meta`: safetensors bytes of every variable in f32
/// (names sorted, so identical weights give identical bytes) and the pretty-printed JSON sidecar.
///
/// The variables must be exactly those of the head `meta.head` describes, so that what is written
/// can be loaded back; otherwise every difference is reported.
pub fn checkpoint_bytes(
    varmap: &VarMap,
    meta: &CheckpointMeta,
) -> Result<(Vec<u8>, String), ModelError> {
    meta.validate()?;
    let tensors: BTreeMap<String, Tensor> = {
        let vars = varmap
            .data()
            .lock()
            .map_err(|_| ModelError::Config("the variable map's lock is poisoned".into()))?;
        vars.iter()
            .map(|(name, var)| {
                let tensor = var
                    .as_tensor()
                    .to_dtype(DType::F32)?
                    .to_device(&Device::Cpu)?
                    .contiguous()?;
                Ok((name.clone(), tensor))
            })
            .collect::<CandleResult<_>>()?
    };
    let found = tensors
        .iter()
        .map(|(name, t)| (name.clone(), t.dims().to_vec()))
        .collect();
    let problems = compare_layout(&parameter_shapes(&meta.head)?, &found);
    if !problems.is_empty() {
        return Err(ModelError::Mismatch(problems));
    }
    // No `__metadata__`: the sidecar carries the description, and a map there would be one more
    // thing whose order could vary.
    let weights = safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), None)?;
    let sidecar = serde_json::to_string_pretty(meta)?;
    Ok((weights, sidecar))
}

/// Rebuilds a head from a checkpoint: parses the sidecar, builds the head it describes on a fresh
/// `VarMap` on `device`, and fills every variable from `weights` (f16, bf16 and f64 are converted
/// to f32). Missing tensors, unexpected tensors, wrong shapes and non-float tensors are collected
/// and reported together in one [`ModelError::Mismatch`]; nothing is loaded unless all fit.
pub fn load_checkpoint(
    weights: &[u8],
    sidecar: &str,
    device: &Device,
) -> Result<(EmbeddingHead, VarMap, CheckpointMeta), ModelError> {
    let meta: CheckpointMeta = serde_json::from_str(sidecar)?;
    meta.validate()?;
    let varmap = VarMap::new();
    let head = EmbeddingHead::new(
        VarBuilder::from_varmap(&varmap, DType::F32, device),
        &meta.head,
    )?;
    let file = SafeTensors::deserialize(weights)?;
    {
        let vars = varmap
            .data()
            .lock()
            .map_err(|_| ModelError::Config("the variable map's lock is poisoned".into()))?;
        let expected = vars
            .iter()
            .map(|(name, var)| (name.clone(), var.dims().to_vec()))
            .collect();
        let views: BTreeMap<String, _> = file.tensors().into_iter().collect();
        let found = views
            .iter()
            .map(|(name, view)| (name.clone(), view.shape().to_vec()))
            .collect();
        let mut problems = compare_layout(&expected, &found);
        for (name, view) in &views {
            if !matches!(
                view.dtype(),
                Dtype::F16 | Dtype::BF16 | Dtype::F32 | Dtype::F64
            ) {
                problems.push(TensorMismatch::DType {
                    name: name.clone(),
                    dtype: format!("{:?}", view.dtype()),
                });
            }
        }
        if !problems.is_empty() {
            problems.sort_by(|a, b| a.name().cmp(b.name()));
            return Err(ModelError::Mismatch(problems));
        }
        for (name, view) in &views {
            let value = view.load(device)?.to_dtype(DType::F32)?;
            vars[name].set(&value)?;
        }
    }
    Ok((head, varmap, meta))
}
