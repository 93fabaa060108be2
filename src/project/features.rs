//! The feature store: `features/{split}.safetensors`, one file per split, holding every clip's
//! frame features and its caption's token features as packed variable-length sequences.
//!
//! Tensors (all little-endian, row-major):
//!
//! | name            | dtype | shape   | holds                                                  |
//! |-----------------|-------|---------|--------------------------------------------------------|
//! | `video`         | F32   | F × Dv  | frames of all clips, clip after clip                    |
//! | `video_offsets` | I64   | N + 1   | clip i's frames are rows `video_offsets[i]..[i+1]`     |
//! | `text`          | F32   | L × Dt  | tokens of all captions, caption after caption           |
//! | `text_offsets`  | I64   | N + 1   | clip i's tokens are rows `text_offsets[i]..[i+1]`      |
//! | `video_of_clip` | U32   | N       | index of clip i's video in `video_keys`                 |
//!
//! Offsets are I64 because that is what numpy and torch index with, so the file reads as-is in
//! Python, and a split may exceed 2³² rows. `__metadata__` holds `format` (`crossclr-features`),
//! `version` (`1`), `split`, and `clip_keys` and `video_keys` as JSON arrays of strings.
//!
//! Invariants, checked on save and on load: at least one clip; every clip has at least one frame
//! and one token; values are finite; the clips of a video are consecutive and videos appear in
//! index order, so `video_of_clip` starts at 0 and steps by 0 or 1 — which lets
//! [`SplitFeatures::clips_of_video`] return a range. A video's clips are in temporal order: the
//! COOT importer sorts them by start time, and a `--features` file is trusted to list them so
//! (it carries no times to check).

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use super::atomic::write_safetensors_atomic;
use super::error::ProjectError;
use super::is_valid_split_name;

/// The `format` value in a feature file's metadata.
pub const FEATURES_FORMAT: &str = "crossclr-features";
/// The feature file layout this program writes and reads.
pub const FEATURES_VERSION: &str = "1";

/// Variable-length sequences of `dim`-wide rows, packed: sequence i is rows
/// `offsets[i]..offsets[i + 1]` of `data` (row-major, `dim` values per row).
#[derive(Debug, Clone, PartialEq)]
pub struct Sequences {
    pub dim: usize,
    pub data: Vec<f32>,
    /// `len() + 1` entries, starting at 0 and ending at the number of rows.
    pub offsets: Vec<usize>,
}

impl Sequences {
    /// No sequences yet, rows `dim` wide.
    pub fn new(dim: usize) -> Self {
        Self {
            dim,
            data: Vec::new(),
            offsets: vec![0],
        }
    }

    /// Appends one sequence. `rows` must hold a positive whole number of `dim`-wide rows; callers
    /// check shapes before they get here, so anything else is a bug and panics.
    pub fn push(&mut self, rows: &[f32]) {
        assert!(
            self.dim > 0 && !rows.is_empty() && rows.len().is_multiple_of(self.dim),
            "a sequence of {} values is not a positive number of rows of width {}",
            rows.len(),
            self.dim
        );
        self.data.extend_from_slice(rows);
        self.offsets.push(self.data.len() / self.dim);
    }

    /// Number of sequences.
    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rows of sequence `i` (frames of a clip, tokens of a caption).
    pub fn rows(&self, i: usize) -> usize {
        self.offsets[i + 1] - self.offsets[i]
    }

    /// Rows of all sequences together.
    pub fn total_rows(&self) -> usize {
        self.offsets.last().copied().unwrap_or(0)
    }

    /// Sequence `i` as `rows(i) × dim` values, row-major.
    pub fn get(&self, i: usize) -> &[f32] {
        &self.data[self.offsets[i] * self.dim..self.offsets[i + 1] * self.dim]
    }

    /// Mean over the rows of sequence `i` (the pooled feature CrossCLR measures proximity with).
    pub fn pooled(&self, i: usize) -> Vec<f32> {
        let mut sum = vec![0f64; self.dim];
        let rows = self.get(i);
        for row in rows.chunks_exact(self.dim) {
            for (s, &x) in sum.iter_mut().zip(row) {
                *s += f64::from(x);
            }
        }
        let n = self.rows(i).max(1) as f64;
        sum.into_iter().map(|s| (s / n) as f32).collect()
    }

    /// Checks the invariants; the error says whether the offsets or the rows are at fault and
    /// names the sequence or row.
    pub fn validate(&self) -> Result<(), SequenceError> {
        use SequenceError::{Data, Offsets};
        if self.dim == 0 {
            return Err(Data("rows are 0 wide".into()));
        }
        if !self.data.len().is_multiple_of(self.dim) {
            return Err(Data(format!(
                "{} values are not whole rows of width {}",
                self.data.len(),
                self.dim
            )));
        }
        let rows = self.data.len() / self.dim;
        match self.offsets.first() {
            None => {
                return Err(Offsets(
                    "empty; expected N + 1 entries starting at 0".into(),
                ));
            }
            Some(&first) if first != 0 => {
                return Err(Offsets(format!("starts at {first}; expected 0")));
            }
            Some(_) => {}
        }
        for (i, pair) in self.offsets.windows(2).enumerate() {
            if pair[1] < pair[0] {
                return Err(Offsets(format!(
                    "decreases at sequence {i} ({} then {}); expected non-decreasing offsets",
                    pair[0], pair[1]
                )));
            }
            if pair[1] == pair[0] {
                return Err(Offsets(format!(
                    "sequence {i} is empty (offset {} twice); every clip needs at least one row",
                    pair[0]
                )));
            }
        }
        let last = self.total_rows();
        if last != rows {
            return Err(Offsets(format!(
                "ends at {last} but the data has {rows} rows; expected them to be equal"
            )));
        }
        if let Some(index) = self.data.iter().position(|x| !x.is_finite()) {
            let row = index / self.dim;
            // The sequence is the last one starting at or before the row.
            let sequence = self.offsets.partition_point(|&o| o <= row) - 1;
            return Err(Data(format!(
                "row {row} (sequence {sequence}) holds {} at column {}; expected finite values",
                self.data[index],
                index % self.dim
            )));
        }
        Ok(())
    }
}

/// What is wrong with a [`Sequences`]: its offsets, or its rows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    #[error("{0}")]
    Offsets(String),
    #[error("{0}")]
    Data(String),
}

impl SequenceError {
    fn tensor(&self, data: &'static str, offsets: &'static str) -> &'static str {
        match self {
            Self::Offsets(_) => offsets,
            Self::Data(_) => data,
        }
    }
}

/// The features of one split.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitFeatures {
    pub split: String,
    /// One per clip, unique.
    pub clip_keys: Vec<String>,
    /// One per video, unique.
    pub video_keys: Vec<String>,
    /// For each clip, the index of its video in `video_keys`.
    pub video_of_clip: Vec<u32>,
    /// Frame features, one sequence per clip.
    pub video: Sequences,
    /// Token features of the caption, one sequence per clip.
    pub text: Sequences,
}

impl SplitFeatures {
    pub fn num_clips(&self) -> usize {
        self.clip_keys.len()
    }

    pub fn num_videos(&self) -> usize {
        self.video_keys.len()
    }

    /// The clips of video `v`, in temporal order; empty if there is no such video.
    pub fn clips_of_video(&self, v: usize) -> Range<usize> {
        let start = self
            .video_of_clip
            .partition_point(|&video| (video as usize) < v);
        let end = self
            .video_of_clip
            .partition_point(|&video| (video as usize) <= v);
        start..end
    }

    /// Checks every invariant of the store; the error names the tensor (or metadata key) at fault.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !is_valid_split_name(&self.split) {
            return Err((
                "split",
                format!(
                    "{:?} cannot be a split name; expected letters, digits, `_`, `-` or `.`",
                    self.split
                ),
            ));
        }
        let n = self.clip_keys.len();
        if n == 0 {
            return Err(("clip_keys", "no clips; a split needs at least one".into()));
        }
        self.video
            .validate()
            .map_err(|e| (e.tensor("video", "video_offsets"), e.to_string()))?;
        self.text
            .validate()
            .map_err(|e| (e.tensor("text", "text_offsets"), e.to_string()))?;
        for (name, len) in [
            ("video", self.video.len()),
            ("text", self.text.len()),
            ("video_of_clip", self.video_of_clip.len()),
        ] {
            if len != n {
                return Err((
                    name,
                    format!("holds {len} clips but there are {n} clip keys"),
                ));
            }
        }
        check_keys(&self.clip_keys).map_err(|m| ("clip_keys", m))?;
        check_keys(&self.video_keys).map_err(|m| ("video_keys", m))?;
        let videos = self.video_keys.len();
        let mut expected_next = 0usize;
        for (clip, &v) in self.video_of_clip.iter().enumerate() {
            let v = v as usize;
            if v >= videos {
                return Err((
                    "video_of_clip",
                    format!("clip {clip} belongs to video {v}, but there are {videos} videos"),
                ));
            }
            // Same video as the previous clip, or the next new one: consecutive clips per
            // video, videos in index order, none without clips.
            if clip == 0 && v != 0 {
                return Err((
                    "video_of_clip",
                    format!("the first clip belongs to video {v}; expected video 0"),
                ));
            }
            if clip > 0 && v + 1 != expected_next && v != expected_next {
                return Err((
                    "video_of_clip",
                    format!(
                        "clip {clip} belongs to video {v}, but the previous clip belongs to video \
                         {}; expected the clips of each video to be consecutive and videos in \
                         order (0, 0, 1, 2, 2, …)",
                        expected_next - 1
                    ),
                ));
            }
            expected_next = v + 1;
        }
        if expected_next != videos {
            return Err((
                "video_of_clip",
                format!(
                    "only videos 0..{expected_next} have clips, but there are {videos} video keys"
                ),
            ));
        }
        Ok(())
    }

    /// Writes the split to `path` atomically, after checking it.
    pub fn save(&self, path: &Path) -> Result<(), ProjectError> {
        self.validate().map_err(|(tensor, message)| {
            ProjectError::tensor(path, tensor, format!("not saved: {message}"))
        })?;
        let f32_bytes =
            |values: &[f32]| -> Vec<u8> { values.iter().flat_map(|x| x.to_le_bytes()).collect() };
        let i64_bytes = |values: &[usize]| -> Vec<u8> {
            values
                .iter()
                .flat_map(|&x| (x as i64).to_le_bytes())
                .collect()
        };
        let video = f32_bytes(&self.video.data);
        let text = f32_bytes(&self.text.data);
        let video_offsets = i64_bytes(&self.video.offsets);
        let text_offsets = i64_bytes(&self.text.offsets);
        let video_of_clip: Vec<u8> = self
            .video_of_clip
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let n = self.num_clips();
        let specs: [(&str, Dtype, Vec<usize>, &[u8]); 5] = [
            (
                "video",
                Dtype::F32,
                vec![self.video.total_rows(), self.video.dim],
                &video,
            ),
            ("video_offsets", Dtype::I64, vec![n + 1], &video_offsets),
            (
                "text",
                Dtype::F32,
                vec![self.text.total_rows(), self.text.dim],
                &text,
            ),
            ("text_offsets", Dtype::I64, vec![n + 1], &text_offsets),
            ("video_of_clip", Dtype::U32, vec![n], &video_of_clip),
        ];
        let mut views = Vec::with_capacity(specs.len());
        for (name, dtype, shape, bytes) in specs {
            let view = TensorView::new(dtype, shape, bytes).map_err(|e| {
                ProjectError::tensor(path, name, format!("cannot be serialized: {e}"))
            })?;
            views.push((name, view));
        }
        let json = |keys: &[String]| serde_json::to_string(keys).unwrap_or_default();
        let metadata = HashMap::from([
            ("format".to_string(), FEATURES_FORMAT.to_string()),
            ("version".to_string(), FEATURES_VERSION.to_string()),
            ("split".to_string(), self.split.clone()),
            ("clip_keys".to_string(), json(&self.clip_keys)),
            ("video_keys".to_string(), json(&self.video_keys)),
        ]);
        write_safetensors_atomic(path, views, Some(metadata))
    }

    /// Reads and checks the split stored at `path`.
    pub fn load(path: &Path) -> Result<Self, ProjectError> {
        let bytes = std::fs::read(path).map_err(|e| ProjectError::io("read", path, e))?;
        let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| {
            ProjectError::file(path, format!("not a readable safetensors file: {e}"))
        })?;
        let tensors = SafeTensors::deserialize(&bytes).map_err(|e| {
            ProjectError::file(path, format!("not a readable safetensors file: {e}"))
        })?;
        let empty = HashMap::new();
        let metadata = header.metadata().as_ref().unwrap_or(&empty);
        let meta = |key: &str| -> Result<&String, ProjectError> {
            metadata.get(key).ok_or_else(|| {
                ProjectError::file(
                    path,
                    format!("metadata key `{key}` is missing; is this a crossclr feature file?"),
                )
            })
        };
        let format = meta("format")?;
        if format != FEATURES_FORMAT {
            return Err(ProjectError::file(
                path,
                format!("metadata `format` is {format:?}; expected {FEATURES_FORMAT:?}"),
            ));
        }
        let version = meta("version")?;
        if version != FEATURES_VERSION {
            return Err(ProjectError::file(
                path,
                format!(
                    "metadata `version` is {version:?}; this program reads version \
                     {FEATURES_VERSION}"
                ),
            ));
        }
        let keys = |key: &str| -> Result<Vec<String>, ProjectError> {
            serde_json::from_str(meta(key)?).map_err(|e| {
                ProjectError::file(
                    path,
                    format!("metadata `{key}` is not a JSON array of strings: {e}"),
                )
            })
        };
        let clip_keys = keys("clip_keys")?;
        let video_keys = keys("video_keys")?;
        let split = meta("split")?.clone();

        let tensor = |name: &str, dtype: Dtype, rank: usize| {
            let view = tensors.tensor(name).map_err(|_| {
                let mut names = tensors.names();
                names.sort();
                ProjectError::tensor(
                    path,
                    name,
                    format!("missing (the file holds: {})", names.join(", ")),
                )
            })?;
            if view.dtype() != dtype {
                return Err(ProjectError::tensor(
                    path,
                    name,
                    format!("has dtype {:?}; expected {dtype:?}", view.dtype()),
                ));
            }
            if view.shape().len() != rank {
                return Err(ProjectError::tensor(
                    path,
                    name,
                    format!("has shape {:?}; expected rank {rank}", view.shape()),
                ));
            }
            Ok(view)
        };
        let sequences = |data_name: &str, offsets_name: &str| -> Result<Sequences, ProjectError> {
            let data = tensor(data_name, Dtype::F32, 2)?;
            let offsets = tensor(offsets_name, Dtype::I64, 1)?;
            let mut converted = Vec::with_capacity(offsets.shape()[0]);
            for (i, chunk) in offsets.data().chunks_exact(8).enumerate() {
                let value = i64::from_le_bytes(chunk.try_into().expect("8-byte chunk"));
                let value = usize::try_from(value).map_err(|_| {
                    ProjectError::tensor(
                        path,
                        offsets_name,
                        format!("entry {i} is {value}; expected offsets ≥ 0"),
                    )
                })?;
                converted.push(value);
            }
            let sequences = Sequences {
                dim: data.shape()[1],
                data: data
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().expect("4-byte chunk")))
                    .collect(),
                offsets: converted,
            };
            sequences.validate().map_err(|e| {
                let name = match e {
                    SequenceError::Offsets(_) => offsets_name,
                    SequenceError::Data(_) => data_name,
                };
                ProjectError::tensor(path, name, e.to_string())
            })?;
            Ok(sequences)
        };
        let video = sequences("video", "video_offsets")?;
        let text = sequences("text", "text_offsets")?;
        let video_of_clip = tensor("video_of_clip", Dtype::U32, 1)?
            .data()
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4-byte chunk")))
            .collect();
        let features = Self {
            split,
            clip_keys,
            video_keys,
            video_of_clip,
            video,
            text,
        };
        features
            .validate()
            .map_err(|(tensor, message)| ProjectError::tensor(path, tensor, message))?;
        Ok(features)
    }
}

fn check_keys(keys: &[String]) -> Result<(), String> {
    let mut seen = HashSet::with_capacity(keys.len());
    for (i, key) in keys.iter().enumerate() {
        if key.is_empty() {
            return Err(format!("key {i} is empty"));
        }
        if !seen.insert(key.as_str()) {
            return Err(format!("key {key:?} appears twice"));
        }
    }
    Ok(())
}
