//! Everything needed to continue a run exactly where it stopped — weights, optimizer moments, the
//! queue, the schedule, the position in the epoch — in one safetensors file whose metadata holds
//! the bookkeeping as JSON.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::TrainError;
use super::radam::RAdam;
use super::schedule::LrSchedule;
use crate::crossclr::LossSettings;
use crate::crossclr::{HostMatrix, QueueState};
use crate::model::HeadConfig;

const METADATA_KEY: &str = "crossclr_train_state";

/// Sums over the steps of the epoch in progress. Wall-clock time is deliberately not here: the
/// saved state must be the same bytes whenever the same seed reaches the same step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Accumulator {
    pub loss: f64,
    pub local: f64,
    pub global: f64,
    pub pruned: f64,
    pub steps: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Best {
    pub score: f64,
    pub epoch: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct QueueCursor {
    capacity: usize,
    pointer: usize,
    filled: usize,
}

/// The bookkeeping part of a saved run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The epoch in progress (0-based) and the next batch of it to run.
    pub epoch: usize,
    pub next_batch: usize,
    pub optimizer_steps: usize,
    pub schedule: LrSchedule,
    pub best: Option<Best>,
    pub accumulated: Accumulator,
    pub head: HeadConfig,
    pub loss: LossSettings,
    pub seed: u64,
    queue: Option<QueueCursor>,
}

impl Progress {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        epoch: usize,
        next_batch: usize,
        optimizer_steps: usize,
        schedule: LrSchedule,
        best: Option<Best>,
        accumulated: Accumulator,
        head: HeadConfig,
        loss: LossSettings,
        seed: u64,
    ) -> Self {
        Self {
            epoch,
            next_batch,
            optimizer_steps,
            schedule,
            best,
            accumulated,
            head,
            loss,
            seed,
            queue: None,
        }
    }
}

fn format_error(
    what: &'static str,
    source: impl std::error::Error + Send + Sync + 'static,
) -> TrainError {
    TrainError::StateFormat {
        what,
        source: Box::new(source),
    }
}

/// Serialises a run's state.
pub fn encode(
    progress: &Progress,
    vars: &[(String, Var)],
    optimizer: &RAdam,
    queue: Option<&QueueState>,
) -> Result<Vec<u8>, TrainError> {
    let mut progress = progress.clone();
    let mut tensors: Vec<(String, Tensor)> = vars
        .iter()
        .map(|(name, var)| (format!("model/{name}"), var.as_tensor().clone()))
        .collect();
    let (moments, steps) = optimizer.state();
    progress.optimizer_steps = steps;
    tensors.extend(
        moments
            .into_iter()
            .map(|(name, t)| (format!("optim/{name}"), t)),
    );
    if let Some(queue) = queue {
        progress.queue = Some(QueueCursor {
            capacity: queue.capacity,
            pointer: queue.pointer,
            filled: queue.filled,
        });
        let cpu = Device::Cpu;
        tensors.push(("queue/video_emb".into(), queue.video_emb.clone()));
        tensors.push(("queue/text_emb".into(), queue.text_emb.clone()));
        tensors.push((
            "queue/video_in".into(),
            queue.video_in.to_tensor(DType::F64, &cpu)?,
        ));
        tensors.push((
            "queue/text_in".into(),
            queue.text_in.to_tensor(DType::F64, &cpu)?,
        ));
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let json =
        serde_json::to_string(&progress).map_err(|e| format_error("writing the bookkeeping", e))?;
    let metadata = HashMap::from([(METADATA_KEY.to_string(), json)]);
    safetensors::serialize(tensors, Some(metadata))
        .map_err(|e| format_error("writing the tensors", e))
}

/// A decoded state: the bookkeeping and the named tensors.
#[derive(Debug)]
pub struct Saved {
    pub progress: Progress,
    tensors: HashMap<String, Tensor>,
}

pub fn decode(bytes: &[u8], device: &Device) -> Result<Saved, TrainError> {
    let (_, metadata) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| format_error("not a safetensors file", e))?;
    let json = metadata
        .metadata()
        .as_ref()
        .and_then(|m| m.get(METADATA_KEY))
        .ok_or_else(|| TrainError::State(format!("metadata `{METADATA_KEY}` is missing")))?;
    let progress: Progress =
        serde_json::from_str(json).map_err(|e| format_error("reading the bookkeeping", e))?;
    let tensors = candle_core::safetensors::load_buffer(bytes, device)?;
    Ok(Saved { progress, tensors })
}

impl Saved {
    fn take(&self, key: &str) -> Result<&Tensor, TrainError> {
        self.tensors
            .get(key)
            .ok_or_else(|| TrainError::State(format!("tensor `{key}` is missing")))
    }

    /// Puts the weights, the optimizer moments and the queue back.
    pub fn restore(
        &self,
        vars: &[(String, Var)],
        optimizer: &mut RAdam,
    ) -> Result<Option<QueueState>, TrainError> {
        for (name, var) in vars {
            let saved = self.take(&format!("model/{name}"))?;
            if saved.dims() != var.as_tensor().dims() {
                return Err(TrainError::State(format!(
                    "saved weight `{name}` has shape {:?}; the model has {:?}",
                    saved.dims(),
                    var.as_tensor().dims()
                )));
            }
            var.set(&saved.to_dtype(var.as_tensor().dtype())?)?;
        }
        let moments: HashMap<String, Tensor> = self
            .tensors
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("optim/").map(|k| (k.to_string(), v.clone())))
            .collect();
        optimizer.load_state(&moments, self.progress.optimizer_steps)?;
        let Some(cursor) = self.progress.queue else {
            return Ok(None);
        };
        let host = |key: &str| -> Result<HostMatrix, TrainError> {
            Ok(HostMatrix::from_tensor(self.take(key)?, key)?)
        };
        Ok(Some(QueueState {
            capacity: cursor.capacity,
            pointer: cursor.pointer,
            filled: cursor.filled,
            video_emb: self.take("queue/video_emb")?.clone(),
            text_emb: self.take("queue/text_emb")?.clone(),
            video_in: host("queue/video_in")?,
            text_in: host("queue/text_in")?,
        }))
    }
}
