//! CrossCLR with a FIFO queue of the last K normalised embeddings and input features. Each batch is
//! enqueued first; the filled slots other than an anchor's own are its intra-modal negatives, pruned
//! by each slot's connectivity to the filled queue. Cross-modal negatives stay in-batch.

use candle_core::Tensor;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::assemble::{Banks, SideInputs, crossclr_report, l2_normalise};
use super::connectivity::queue_connectivity;
use super::pairwise::extra_positives;
use super::{
    ContrastiveLoss, CrossClrConfig, HostMatrix, IntraSource, LossError, LossReport, Mode,
    PairBatch,
};

/// How the queue starts.
#[derive(Debug, Clone)]
pub enum QueueInit {
    /// Empty: only filled slots are negatives (paper mode).
    Empty,
    /// Full, with Gaussian noise whose slots are L2-normalised, as the released code starts
    /// (official mode). The seed makes it reproducible.
    Noise { seed: u64 },
    /// Full, with the given buffers (official mode), one row per slot: `video_emb`, `text_emb`
    /// (K×d), `video_in` (K×Dv), `text_in` (K×Dt).
    Buffers {
        video_emb: Tensor,
        text_emb: Tensor,
        video_in: HostMatrix,
        text_in: HostMatrix,
    },
}

impl QueueInit {
    /// How each mode starts when no buffers are given: paper mode empty, official mode full of
    /// seeded noise, as the released code starts.
    pub fn for_mode(mode: Mode, seed: u64) -> Self {
        match mode {
            Mode::Paper => QueueInit::Empty,
            Mode::Official => QueueInit::Noise { seed },
        }
    }
}

#[derive(Debug, Clone)]
struct Buffers {
    video_emb: Tensor,
    text_emb: Tensor,
    video_in: HostMatrix,
    text_in: HostMatrix,
}

/// CrossCLR with a queue (`CrossCLRQueuePaper` / the released `CrossCLR` with queue).
#[derive(Debug, Clone)]
pub struct CrossClrQueue {
    pub config: CrossClrConfig,
    capacity: usize,
    pointer: usize,
    filled: usize,
    pending: QueueInit,
    buffers: Option<Buffers>,
}

impl CrossClrQueue {
    pub fn new(
        config: CrossClrConfig,
        capacity: usize,
        init: QueueInit,
    ) -> Result<Self, LossError> {
        config.validate()?;
        if capacity == 0 {
            return Err(LossError::Config("the queue needs a length K >= 1".into()));
        }
        match (&init, config.mode) {
            (QueueInit::Empty, Mode::Official) => {
                return Err(LossError::Config(
                    "official mode starts from a full queue: give initial buffers or a noise seed"
                        .into(),
                ));
            }
            (QueueInit::Noise { .. } | QueueInit::Buffers { .. }, Mode::Paper) => {
                return Err(LossError::Config(
                    "paper mode starts from an empty queue; initial buffers belong to official mode"
                        .into(),
                ));
            }
            (
                QueueInit::Buffers {
                    video_emb,
                    text_emb,
                    video_in,
                    text_in,
                },
                _,
            ) => {
                for (name, rows) in [
                    ("queue_video_emb", video_emb.dim(0)?),
                    ("queue_text_emb", text_emb.dim(0)?),
                    ("queue_video_in", video_in.rows()),
                    ("queue_text_in", text_in.rows()),
                ] {
                    if rows != capacity {
                        return Err(LossError::Shape {
                            name: name.into(),
                            shape: vec![rows],
                            expected: format!("{capacity} rows, one per queue slot"),
                        });
                    }
                }
                if video_emb.dim(1)? != text_emb.dim(1)? {
                    return Err(LossError::Shape {
                        name: "queue_text_emb".into(),
                        shape: text_emb.dims().to_vec(),
                        expected: format!("the width of queue_video_emb {:?}", video_emb.dims()),
                    });
                }
            }
            _ => {}
        }
        Ok(Self {
            config,
            capacity,
            pointer: 0,
            filled: 0,
            pending: init,
            buffers: None,
        })
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Slots holding data: [0, filled).
    pub fn filled(&self) -> usize {
        self.filled
    }

    /// Where the next batch will be written.
    pub fn pointer(&self) -> usize {
        self.pointer
    }

    fn initialise(&mut self, batch: &PairBatch) -> Result<(), LossError> {
        let capacity = self.capacity;
        let device = batch.video_emb.device().clone();
        let dtype = batch.video_emb.dtype();
        let width = batch.video_emb.dim(1)?;
        let (video_dim, text_dim) = (batch.video_in.dim(1)?, batch.text_in.dim(1)?);
        let buffers = match std::mem::replace(&mut self.pending, QueueInit::Empty) {
            QueueInit::Empty => Buffers {
                video_emb: Tensor::zeros((capacity, width), dtype, &device)?,
                text_emb: Tensor::zeros((capacity, width), dtype, &device)?,
                video_in: HostMatrix::zeros(capacity, video_dim),
                text_in: HostMatrix::zeros(capacity, text_dim),
            },
            QueueInit::Noise { seed } => {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                let mut noise = |dim: usize| unit_noise(&mut rng, capacity, dim);
                let (video_emb, text_emb) = (noise(width), noise(width));
                let (video_in, text_in) = (noise(video_dim), noise(text_dim));
                self.filled = capacity;
                Buffers {
                    video_emb: video_emb.to_tensor(dtype, &device)?,
                    text_emb: text_emb.to_tensor(dtype, &device)?,
                    video_in,
                    text_in,
                }
            }
            QueueInit::Buffers {
                video_emb,
                text_emb,
                video_in,
                text_in,
            } => {
                self.filled = capacity;
                Buffers {
                    video_emb: video_emb.to_dtype(dtype)?.to_device(&device)?.detach(),
                    text_emb: text_emb.to_dtype(dtype)?.to_device(&device)?.detach(),
                    video_in,
                    text_in,
                }
            }
        };
        self.buffers = Some(buffers);
        Ok(())
    }

    fn check_widths(&self, batch: &PairBatch) -> Result<(), LossError> {
        let Some(buffers) = &self.buffers else {
            return Ok(());
        };
        let expected = [
            ("video_emb", buffers.video_emb.dim(1)?, &batch.video_emb),
            ("text_emb", buffers.text_emb.dim(1)?, &batch.text_emb),
            ("video_in", buffers.video_in.cols(), &batch.video_in),
            ("text_in", buffers.text_in.cols(), &batch.text_in),
        ];
        for (name, width, tensor) in expected {
            if tensor.dim(1)? != width {
                return Err(LossError::Shape {
                    name: name.into(),
                    shape: tensor.dims().to_vec(),
                    expected: format!("{width} columns, the width of the queue's slots"),
                });
            }
        }
        Ok(())
    }

    /// Writes the batch at [pointer, pointer + n); at the end of the buffer the rest of the batch is
    /// dropped (as in the released code) and the pointer advances by the whole batch.
    fn enqueue(
        &mut self,
        video: &Tensor,
        text: &Tensor,
        video_in: &HostMatrix,
        text_in: &HostMatrix,
    ) -> Result<(usize, usize), LossError> {
        let batch = video.dim(0)?;
        let start = self.pointer;
        let written = batch.min(self.capacity - start);
        let buffers = self
            .buffers
            .as_mut()
            .expect("queue initialised before enqueue");
        buffers.video_emb =
            overwrite_rows(&buffers.video_emb, start, &video.narrow(0, 0, written)?)?;
        buffers.text_emb = overwrite_rows(&buffers.text_emb, start, &text.narrow(0, 0, written)?)?;
        for i in 0..written {
            buffers
                .video_in
                .row_mut(start + i)
                .copy_from_slice(video_in.row(i));
            buffers
                .text_in
                .row_mut(start + i)
                .copy_from_slice(text_in.row(i));
        }
        self.pointer = (start + batch) % self.capacity;
        self.filled = self.capacity.min(self.filled + written);
        Ok((start, written))
    }
}

/// Everything a queue holds, to save with a training run and restore on resume.
#[derive(Debug, Clone)]
pub struct QueueState {
    pub capacity: usize,
    pub pointer: usize,
    pub filled: usize,
    pub video_emb: Tensor,
    pub text_emb: Tensor,
    pub video_in: HostMatrix,
    pub text_in: HostMatrix,
}

impl CrossClrQueue {
    /// The queue's contents, or None before the first batch.
    pub fn state(&self) -> Option<QueueState> {
        let buffers = self.buffers.as_ref()?;
        Some(QueueState {
            capacity: self.capacity,
            pointer: self.pointer,
            filled: self.filled,
            video_emb: buffers.video_emb.clone(),
            text_emb: buffers.text_emb.clone(),
            video_in: buffers.video_in.clone(),
            text_in: buffers.text_in.clone(),
        })
    }

    /// Puts back a state from [`CrossClrQueue::state`] (of a queue with the same capacity).
    pub fn restore(&mut self, state: QueueState) -> Result<(), LossError> {
        let rows = [
            ("queue video_emb", state.video_emb.dim(0)?),
            ("queue text_emb", state.text_emb.dim(0)?),
            ("queue video_in", state.video_in.rows()),
            ("queue text_in", state.text_in.rows()),
        ];
        for (name, found) in rows {
            if found != self.capacity {
                return Err(LossError::Shape {
                    name: name.into(),
                    shape: vec![found],
                    expected: format!("{} rows, the queue's length", self.capacity),
                });
            }
        }
        if state.pointer >= self.capacity || state.filled > self.capacity {
            return Err(LossError::Config(format!(
                "queue state points at slot {} with {} filled, beyond its length {}",
                state.pointer, state.filled, self.capacity
            )));
        }
        self.pointer = state.pointer;
        self.filled = state.filled;
        self.pending = QueueInit::Empty;
        self.buffers = Some(Buffers {
            video_emb: state.video_emb.detach(),
            text_emb: state.text_emb.detach(),
            video_in: state.video_in,
            text_in: state.text_in,
        });
        Ok(())
    }
}

fn overwrite_rows(buffer: &Tensor, start: usize, rows: &Tensor) -> candle_core::Result<Tensor> {
    let total = buffer.dim(0)?;
    let written = rows.dim(0)?;
    let mut pieces = Vec::with_capacity(3);
    if start > 0 {
        pieces.push(buffer.narrow(0, 0, start)?);
    }
    pieces.push(rows.detach());
    if start + written < total {
        pieces.push(buffer.narrow(0, start + written, total - start - written)?);
    }
    Tensor::cat(&pieces, 0)
}

fn unit_noise(rng: &mut ChaCha8Rng, rows: usize, cols: usize) -> HostMatrix {
    let mut matrix = HostMatrix::zeros(rows, cols);
    for i in 0..rows {
        let row = matrix.row_mut(i);
        for value in row.iter_mut() {
            *value = StandardNormal.sample(rng);
        }
        let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
        row.iter_mut().for_each(|v| *v /= norm);
    }
    matrix
}

impl ContrastiveLoss for CrossClrQueue {
    fn name(&self) -> String {
        format!("crossclr-{}-queue{}", self.config.mode, self.capacity)
    }

    fn forward(&mut self, batch: &PairBatch) -> Result<LossReport, LossError> {
        batch.validate()?;
        batch.check_embeddings()?;
        if self.buffers.is_none() {
            self.initialise(batch)?;
        }
        self.check_widths(batch)?;
        let video_in = HostMatrix::from_tensor(&batch.video_in, "video_in")?;
        let text_in = HostMatrix::from_tensor(&batch.text_in, "text_in")?;
        let video = l2_normalise(&batch.video_emb)?;
        let text = l2_normalise(&batch.text_emb)?;
        let (start, written) = self.enqueue(&video, &text, &video_in, &text_in)?;
        let size = batch.len();
        let own_intra: Vec<Option<usize>> = match self.config.mode {
            Mode::Paper => (0..size)
                .map(|i| (i < written).then_some(start + i))
                .collect(),
            // The released code masks from the pointer *after* the enqueue.
            Mode::Official => {
                let masked = size.min(self.capacity - self.pointer);
                (0..size)
                    .map(|i| (i < masked).then_some(self.pointer + i))
                    .collect()
            }
        };
        let filled = self.filled;
        let buffers = self.buffers.as_ref().expect("initialised above");
        let side = |features: &HostMatrix, slots: &HostMatrix| {
            let (connectivity, intra_connectivity) = queue_connectivity(features, slots, filled);
            SideInputs {
                connectivity,
                intra_connectivity,
                own_intra: own_intra.clone(),
                intra_source: IntraSource::Queue,
                extra_positives: extra_positives(&self.config, features),
            }
        };
        let video_side = side(&video_in, &buffers.video_in);
        let text_side = side(&text_in, &buffers.text_in);
        let video_bank = buffers.video_emb.narrow(0, 0, filled)?;
        let text_bank = buffers.text_emb.narrow(0, 0, filled)?;
        crossclr_report(
            &self.config,
            &video,
            &text,
            Banks::Queue {
                video: &video_bank,
                text: &text_bank,
            },
            video_side,
            text_side,
        )
    }
}
