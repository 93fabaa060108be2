//! What the heads read: padded sequences with masks, and the grouping of clips into videos.

use std::ops::Range;

use candle_core::{DType, Device, Result, Tensor};

/// Added to the attention (and pooling) logits of padded steps. Finite rather than −∞ so that no
/// arithmetic on the bias can make a NaN; `exp(−1e9 − max)` is exactly 0 in f32 and f64, so padded
/// steps still get exactly zero weight.
pub(crate) const MASKED_LOGIT: f64 = -1e9;

/// Padded sequences: `values` (n, t, d) f32, `mask` (n, t) f32 with 1 = real step, 0 = padding.
/// Every sequence has at least one real step. Padded values must be finite (zeros are usual): they
/// are multiplied by 0, never read.
#[derive(Debug, Clone)]
pub struct SequenceBatch {
    pub values: Tensor,
    pub mask: Tensor,
}

impl SequenceBatch {
    /// Checks that `values` is (n, t, d) and `mask` (n, t) with 0/1 entries and a real step per row.
    pub fn new(values: Tensor, mask: Tensor) -> Result<Self> {
        let batch = Self { values, mask };
        batch.check("sequence batch", None)?;
        Ok(batch)
    }

    /// Pooled features (n, d) as sequences of one real step each.
    pub fn pooled(features: &Tensor) -> Result<Self> {
        let (n, _) = features.dims2()?;
        let mask = Tensor::ones((n, 1), DType::F32, features.device())?;
        Self::new(features.unsqueeze(1)?, mask)
    }

    /// Pads sequences of different lengths, each (t_i, d), with zeros to the longest one.
    pub fn from_sequences(sequences: &[Tensor]) -> Result<Self> {
        let Some(first) = sequences.first() else {
            candle_core::bail!("a sequence batch needs at least one sequence");
        };
        let (_, d) = first.dims2()?;
        let device = first.device();
        let longest = sequences
            .iter()
            .map(|s| s.dims2().map(|(t, _)| t))
            .collect::<Result<Vec<_>>>()?;
        let t_max = longest.iter().copied().max().unwrap_or(0);
        let mut rows = Vec::with_capacity(sequences.len());
        let mut mask = Vec::with_capacity(sequences.len() * t_max);
        for (sequence, &t) in sequences.iter().zip(&longest) {
            if sequence.dim(1)? != d {
                candle_core::bail!(
                    "sequences of one batch must share their width: {:?} beside {:?}",
                    sequence.dims(),
                    first.dims()
                );
            }
            let sequence = sequence.to_dtype(DType::F32)?;
            rows.push(if t < t_max {
                Tensor::cat(
                    &[
                        &sequence,
                        &Tensor::zeros((t_max - t, d), DType::F32, device)?,
                    ],
                    0,
                )?
            } else {
                sequence
            });
            mask.extend((0..t_max).map(|k| if k < t { 1f32 } else { 0.0 }));
        }
        let mask = Tensor::from_vec(mask, (sequences.len(), t_max), device)?;
        Self::new(Tensor::stack(&rows, 0)?, mask)
    }

    /// Number of sequences n.
    pub fn len(&self) -> usize {
        self.values.dims().first().copied().unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks shapes and the mask, naming the batch as `what`; returns (n, t).
    pub(crate) fn check(&self, what: &str, width: Option<usize>) -> Result<(usize, usize)> {
        let (n, t, d) = match self.values.dims3() {
            Ok(dims) => dims,
            Err(_) => candle_core::bail!(
                "{what}: values have shape {:?}; expected (n, t, d)",
                self.values.dims()
            ),
        };
        if let Some(width) = width
            && d != width
        {
            candle_core::bail!(
                "{what}: values have shape {:?}; the head expects features of width {width}",
                self.values.dims()
            );
        }
        if self.mask.dims() != [n, t] {
            candle_core::bail!(
                "{what}: mask has shape {:?}; expected {:?} to match values {:?}",
                self.mask.dims(),
                [n, t],
                self.values.dims()
            );
        }
        if !self.values.dtype().is_float() {
            candle_core::bail!("{what}: values have dtype {:?}", self.values.dtype());
        }
        if n == 0 || t == 0 {
            candle_core::bail!("{what}: empty batch {:?}", self.values.dims());
        }
        let mask = self.mask.to_dtype(DType::F32)?.to_vec2::<f32>()?;
        for (row, steps) in mask.iter().enumerate() {
            if let Some(bad) = steps.iter().find(|&&m| m != 0.0 && m != 1.0) {
                candle_core::bail!("{what}: mask row {row} holds {bad}; expected 0 or 1");
            }
            if !steps.contains(&1.0) {
                candle_core::bail!("{what}: sequence {row} has no real step (its mask is all 0)");
            }
        }
        Ok((n, t))
    }

    /// Values as f32 (the heads compute in f32).
    pub(crate) fn values_f32(&self) -> Result<Tensor> {
        self.values.to_dtype(DType::F32)
    }

    /// (n, t): 0 for real steps, [`MASKED_LOGIT`] for padding.
    pub(crate) fn key_bias(&self) -> Result<Tensor> {
        key_bias(&self.mask)
    }

    /// Mean over the real steps of each sequence, (n, d).
    pub(crate) fn masked_mean(&self) -> Result<Tensor> {
        masked_mean(&self.values_f32()?, &self.mask)
    }
}

pub(crate) fn key_bias(mask: &Tensor) -> Result<Tensor> {
    (mask.to_dtype(DType::F32)? - 1.0)? * -MASKED_LOGIT
}

/// `Σ_t mask·values / Σ_t mask`: (n, t, d), (n, t) → (n, d). One-step sequences (pooled
/// features, whose single step is real by the batch's invariant) are returned as they are.
pub(crate) fn masked_mean(values: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let (n, t, _) = values.dims3()?;
    if t == 1 {
        return values.squeeze(1);
    }
    let mask = mask.to_dtype(values.dtype())?;
    let counts = mask.sum_keepdim(1)?; // (n, 1)
    let sums = mask.reshape((n, 1, t))?.matmul(values)?.squeeze(1)?;
    sums.broadcast_div(&counts)
}

/// Everything a head reads for one batch.
#[derive(Debug, Clone)]
pub struct ModelInput {
    /// One row per clip: its frames (t = 1 for pooled features).
    pub video_clips: SequenceBatch,
    /// One row per clip's sentence: its tokens, in the same order as the clips.
    pub text_sentences: SequenceBatch,
    /// One row per video: the frames of the whole video (coot's video context).
    pub video_context: Option<SequenceBatch>,
    /// One row per video: the tokens of the whole paragraph (coot's paragraph context).
    pub text_context: Option<SequenceBatch>,
    /// The clips of video v are the rows `groups[v]`.
    pub groups: Vec<Range<usize>>,
}

/// Rows regrouped per video: a gather index that pads every group to the longest one, and the mask
/// of real slots. Built once per forward; everything else is batched tensor work.
#[derive(Debug, Clone)]
pub(crate) struct Grouping {
    pub videos: usize,
    pub longest: usize,
    /// (videos · longest) u32 row indices; a padded slot repeats its group's first row (any real
    /// row would do: its weight is exactly 0).
    index: Tensor,
    /// (videos, longest): 1 = a real member, 0 = padding.
    pub mask: Tensor,
}

impl Grouping {
    pub fn new(groups: &[Range<usize>], rows: usize, device: &Device) -> Result<Self> {
        if groups.is_empty() {
            candle_core::bail!("groups: a batch needs at least one video");
        }
        for (v, group) in groups.iter().enumerate() {
            if group.is_empty() || group.end > rows {
                candle_core::bail!(
                    "groups[{v}] = {group:?}: every video needs at least one clip, within the {rows} rows of the batch"
                );
            }
        }
        let longest = groups.iter().map(|g| g.len()).max().unwrap_or(0);
        let mut index = Vec::with_capacity(groups.len() * longest);
        let mut mask = Vec::with_capacity(groups.len() * longest);
        for group in groups {
            for slot in 0..longest {
                let real = slot < group.len();
                index.push(if real {
                    group.start + slot
                } else {
                    group.start
                } as u32);
                mask.push(if real { 1f32 } else { 0.0 });
            }
        }
        Ok(Self {
            videos: groups.len(),
            longest,
            index: Tensor::from_vec(index, groups.len() * longest, device)?,
            mask: Tensor::from_vec(mask, (groups.len(), longest), device)?,
        })
    }

    /// (rows, d) → (videos, longest, d).
    pub fn regroup(&self, rows: &Tensor) -> Result<Tensor> {
        let d = rows.dim(1)?;
        rows.index_select(&self.index, 0)?
            .reshape((self.videos, self.longest, d))
    }

    /// Mean of each group's rows, (rows, d) → (videos, d).
    pub fn mean(&self, rows: &Tensor) -> Result<Tensor> {
        if self.longest == 1 {
            return rows.index_select(&self.index, 0);
        }
        masked_mean(&self.regroup(rows)?, &self.mask)
    }
}
