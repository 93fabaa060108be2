//! What training reads: borrowed views of packed variable-length sequences (the caller owns the
//! storage; no copy is made), and the padded batches the heads take.

use std::ops::Range;

use candle_core::{Device, Result, Tensor};

use crate::model::{ModelInput, SequenceBatch};

/// Sequences packed row-major: sequence `i` is rows `offsets[i]..offsets[i + 1]` of `data`
/// (each row `dim` values).
#[derive(Debug, Clone, Copy)]
pub struct PackedView<'a> {
    pub dim: usize,
    pub data: &'a [f32],
    pub offsets: &'a [usize],
}

impl<'a> PackedView<'a> {
    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rows of sequence `i`.
    pub fn rows(&self, i: usize) -> usize {
        self.offsets[i + 1] - self.offsets[i]
    }

    /// Sequence `i`, `rows(i) × dim` values.
    pub fn get(&self, i: usize) -> &'a [f32] {
        &self.data[self.offsets[i] * self.dim..self.offsets[i + 1] * self.dim]
    }
}

/// One split as training sees it: per clip its frames and its sentence's tokens, and the clips of
/// each video (consecutive, in order).
#[derive(Debug, Clone)]
pub struct CorpusView<'a> {
    pub video: PackedView<'a>,
    pub text: PackedView<'a>,
    pub groups: Vec<Range<usize>>,
}

impl<'a> CorpusView<'a> {
    pub fn num_videos(&self) -> usize {
        self.groups.len()
    }

    pub fn num_clips(&self) -> usize {
        self.video.len()
    }

    /// The first videos and the last `count` videos as two views of the same storage (for a
    /// selection split held out of the training split). `count` is clamped to `0..=num_videos`.
    pub fn split_off_tail(&self, count: usize) -> (CorpusView<'a>, CorpusView<'a>) {
        let keep = self.num_videos() - count.min(self.num_videos());
        let boundary = self.groups.get(keep).map_or(self.num_clips(), |g| g.start);
        let part = |packed: &PackedView<'a>, clips: Range<usize>| PackedView {
            dim: packed.dim,
            data: packed.data,
            offsets: &packed.offsets[clips.start..=clips.end],
        };
        let head = CorpusView {
            video: part(&self.video, 0..boundary),
            text: part(&self.text, 0..boundary),
            groups: self.groups[..keep].to_vec(),
        };
        let tail = CorpusView {
            video: part(&self.video, boundary..self.num_clips()),
            text: part(&self.text, boundary..self.num_clips()),
            groups: self.groups[keep..]
                .iter()
                .map(|g| g.start - boundary..g.end - boundary)
                .collect(),
        };
        (head, tail)
    }

    /// Checks that the pieces agree; the message says which does not.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.video.len() != self.text.len() {
            return Err(format!(
                "{} clips have video features but {} have text features",
                self.video.len(),
                self.text.len()
            ));
        }
        let mut next = 0;
        for (v, group) in self.groups.iter().enumerate() {
            if group.start != next || group.is_empty() {
                return Err(format!(
                    "video {v} holds clips {group:?}; clips of a video must be consecutive and non-empty"
                ));
            }
            next = group.end;
        }
        if next != self.video.len() {
            return Err(format!(
                "the videos hold {next} clips but there are {}",
                self.video.len()
            ));
        }
        for i in 0..self.video.len() {
            if self.video.rows(i) == 0 || self.text.rows(i) == 0 {
                return Err(format!("clip {i} has no frames or no tokens"));
            }
        }
        Ok(())
    }
}

/// Limits applied while batching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Frames (tokens) kept per clip (sentence), evenly spaced when longer.
    pub max_steps: usize,
    /// Frames (tokens) kept per whole video (paragraph) for the context.
    pub max_context_steps: usize,
}

/// `count` indices spread evenly over `0..len` (all of them when `len ≤ count`).
pub fn even_indices(len: usize, count: usize) -> Vec<usize> {
    if len <= count {
        return (0..len).collect();
    }
    (0..count)
        .map(|k| ((k as f64 + 0.5) * len as f64 / count as f64).floor() as usize)
        .map(|i| i.min(len - 1))
        .collect()
}

/// Pads the chosen rows of each sequence into (n, t_max, dim) with a (n, t_max) mask.
fn pad(sequences: &[Vec<&[f32]>], dim: usize, device: &Device) -> Result<SequenceBatch> {
    let n = sequences.len();
    let steps = sequences.iter().map(Vec::len).max().unwrap_or(1).max(1);
    let mut values = vec![0f32; n * steps * dim];
    let mut mask = vec![0f32; n * steps];
    for (i, rows) in sequences.iter().enumerate() {
        for (t, row) in rows.iter().enumerate() {
            let at = (i * steps + t) * dim;
            values[at..at + dim].copy_from_slice(row);
            mask[i * steps + t] = 1.0;
        }
    }
    Ok(SequenceBatch {
        values: Tensor::from_vec(values, (n, steps, dim), device)?,
        mask: Tensor::from_vec(mask, (n, steps), device)?,
    })
}

fn rows_of<'a>(view: &PackedView<'a>, i: usize, limit: usize) -> Vec<&'a [f32]> {
    let all = view.get(i);
    even_indices(view.rows(i), limit)
        .into_iter()
        .map(|r| &all[r * view.dim..(r + 1) * view.dim])
        .collect()
}

/// Every row of the clips `clips`, in order: a whole video's frames or a paragraph's tokens.
fn rows_of_video<'a>(view: &PackedView<'a>, clips: Range<usize>) -> Vec<&'a [f32]> {
    clips.flat_map(|c| rows_of(view, c, usize::MAX)).collect()
}

/// Mean of rows (f64 accumulation).
fn mean_rows(rows: &[&[f32]], dim: usize) -> Vec<f32> {
    let mut sum = vec![0f64; dim];
    for row in rows {
        for (s, v) in sum.iter_mut().zip(row.iter()) {
            *s += *v as f64;
        }
    }
    sum.iter()
        .map(|s| (s / rows.len().max(1) as f64) as f32)
        .collect()
}

/// A batch of whole videos: the model's input, and the pooled input features CrossCLR measures
/// proximity with, at both levels.
#[derive(Debug)]
pub struct TrainBatch {
    pub input: ModelInput,
    /// Mean over each clip's frames (n_clips × Dv) and each sentence's tokens (n_clips × Dt).
    pub clip_video_in: Tensor,
    pub clip_text_in: Tensor,
    /// Mean over each video's frames (n_videos × Dv) and each paragraph's tokens (n_videos × Dt).
    pub video_in: Tensor,
    pub paragraph_in: Tensor,
    /// The corpus' clip indices in batch order.
    pub clips: Vec<usize>,
}

/// Builds the batch of the given videos.
pub fn make_batch(
    corpus: &CorpusView<'_>,
    videos: &[usize],
    limits: BatchLimits,
    device: &Device,
) -> Result<TrainBatch> {
    let mut clips = Vec::new();
    let mut groups = Vec::with_capacity(videos.len());
    for &v in videos {
        let start = clips.len();
        clips.extend(corpus.groups[v].clone());
        groups.push(start..clips.len());
    }
    let frames: Vec<Vec<&[f32]>> = clips
        .iter()
        .map(|&c| rows_of(&corpus.video, c, limits.max_steps))
        .collect();
    let tokens: Vec<Vec<&[f32]>> = clips
        .iter()
        .map(|&c| rows_of(&corpus.text, c, limits.max_steps))
        .collect();
    let (dv, dt) = (corpus.video.dim, corpus.text.dim);

    // Pooled inputs use every frame and token, not just the kept ones.
    let pooled = |view: &PackedView<'_>, dim: usize| -> Vec<f32> {
        clips
            .iter()
            .flat_map(|&c| mean_rows(&rows_of(view, c, usize::MAX), dim))
            .collect()
    };
    let clip_video_in = Tensor::from_vec(pooled(&corpus.video, dv), (clips.len(), dv), device)?;
    let clip_text_in = Tensor::from_vec(pooled(&corpus.text, dt), (clips.len(), dt), device)?;

    let mut context_video = Vec::with_capacity(videos.len());
    let mut context_text = Vec::with_capacity(videos.len());
    let mut video_in = Vec::with_capacity(videos.len() * dv);
    let mut paragraph_in = Vec::with_capacity(videos.len() * dt);
    for &v in videos {
        let frames_of_video = rows_of_video(&corpus.video, corpus.groups[v].clone());
        let tokens_of_paragraph = rows_of_video(&corpus.text, corpus.groups[v].clone());
        video_in.extend(mean_rows(&frames_of_video, dv));
        paragraph_in.extend(mean_rows(&tokens_of_paragraph, dt));
        let pick = |rows: &[&'_ [f32]]| -> Vec<usize> {
            even_indices(rows.len(), limits.max_context_steps)
        };
        context_video.push(
            pick(&frames_of_video)
                .into_iter()
                .map(|i| frames_of_video[i])
                .collect(),
        );
        context_text.push(
            pick(&tokens_of_paragraph)
                .into_iter()
                .map(|i| tokens_of_paragraph[i])
                .collect(),
        );
    }
    let input = ModelInput {
        video_clips: pad(&frames, dv, device)?,
        text_sentences: pad(&tokens, dt, device)?,
        video_context: Some(pad(&context_video, dv, device)?),
        text_context: Some(pad(&context_text, dt, device)?),
        groups,
    };
    Ok(TrainBatch {
        input,
        clip_video_in,
        clip_text_in,
        video_in: Tensor::from_vec(video_in, (videos.len(), dv), device)?,
        paragraph_in: Tensor::from_vec(paragraph_in, (videos.len(), dt), device)?,
        clips,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_indices_spread_and_keep_short_sequences_whole() {
        assert_eq!(even_indices(3, 5), vec![0, 1, 2]);
        assert_eq!(even_indices(10, 4), vec![1, 3, 6, 8]);
        assert_eq!(even_indices(100, 1), vec![50]);
    }

    #[test]
    fn batch_pads_masks_and_pools() {
        // Two videos: clips {0, 1} and {2}; video frames dim 2, text dim 1.
        let video = [1.0f32, 1.0, 3.0, 3.0, 5.0, 5.0, 7.0, 7.0];
        let video_offsets = [0usize, 2, 3, 4];
        let text = [1.0f32, 2.0, 3.0, 4.0, 5.0];
        let text_offsets = [0usize, 1, 3, 5];
        let corpus = CorpusView {
            video: PackedView {
                dim: 2,
                data: &video,
                offsets: &video_offsets,
            },
            text: PackedView {
                dim: 1,
                data: &text,
                offsets: &text_offsets,
            },
            groups: vec![0..2, 2..3],
        };
        corpus.validate().unwrap();
        let (first, last) = corpus.split_off_tail(1);
        first.validate().unwrap();
        last.validate().unwrap();
        assert_eq!((first.num_videos(), first.num_clips()), (1, 2));
        assert_eq!((last.num_videos(), last.num_clips()), (1, 1));
        assert_eq!(last.video.get(0), &[7.0, 7.0]);
        assert_eq!(last.text.get(0), &[4.0, 5.0]);
        assert_eq!(first.text.get(1), &[2.0, 3.0]);
        let (empty, whole) = corpus.split_off_tail(5);
        assert_eq!((empty.num_videos(), whole.num_videos()), (0, 2));
        empty.validate().unwrap();
        whole.validate().unwrap();
        let limits = BatchLimits {
            max_steps: 8,
            max_context_steps: 8,
        };
        let batch = make_batch(&corpus, &[1, 0], limits, &Device::Cpu).unwrap();
        assert_eq!(batch.clips, vec![2, 0, 1]);
        assert_eq!(batch.input.groups, vec![0..1, 1..3]);
        assert_eq!(batch.input.video_clips.values.dims(), &[3, 2, 2]);
        let mask: Vec<Vec<f32>> = batch.input.video_clips.mask.to_vec2().unwrap();
        assert_eq!(mask, vec![vec![1.0, 0.0], vec![1.0, 1.0], vec![1.0, 0.0]]);
        let pooled: Vec<Vec<f32>> = batch.clip_video_in.to_vec2().unwrap();
        assert_eq!(pooled, vec![vec![7.0, 7.0], vec![2.0, 2.0], vec![5.0, 5.0]]);
        let paragraphs: Vec<Vec<f32>> = batch.paragraph_in.to_vec2().unwrap();
        assert_eq!(paragraphs, vec![vec![4.5], vec![2.0]]);
        let context: Vec<Vec<f32>> = batch.input.video_context.unwrap().mask.to_vec2().unwrap();
        assert_eq!(context, vec![vec![1.0, 0.0, 0.0], vec![1.0, 1.0, 1.0]]);
    }

    #[test]
    fn validation_names_what_disagrees() {
        let video = [1.0f32; 4];
        let offsets = [0usize, 1, 2, 3, 4];
        let corpus = CorpusView {
            video: PackedView {
                dim: 1,
                data: &video,
                offsets: &offsets,
            },
            text: PackedView {
                dim: 1,
                data: &video,
                offsets: &offsets,
            },
            groups: vec![0..2, 3..4],
        };
        assert!(
            corpus
                .validate()
                .unwrap_err()
                .contains("video 1 holds clips 3..4")
        );
    }
}
