//! The samples an analysis looks at: the clips (or videos) of some splits with their pooled input
//! features — pooled exactly as the training loop pools them (`train::make_batch`) — and, with a
//! run, their joint embeddings.

use candle_core::{DType, Device, Tensor};
use serde::Serialize;

use super::AnalysisError;
use crate::crossclr::HostMatrix;
use crate::jobs::CancelToken;
use crate::project::{EmbeddingMatrix, ManifestEntry, Project, RunName};
use crate::train::{
    BatchLimits, CorpusView, SplitRole, embed_split, load_run_head, load_split, make_batch,
};

/// Clips and sentences, or whole videos and paragraphs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Clip,
    Video,
}

/// Where similarity is measured: the encoders' pooled features, or a run's joint space.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Space {
    #[default]
    Input,
    Joint,
}

/// One side of the pairs.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Modality {
    #[default]
    Video,
    Text,
}

macro_rules! display_as_serde {
    ($($t:ty),*) => {$(
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let value = serde_json::to_value(self).map_err(|_| std::fmt::Error)?;
                f.write_str(value.as_str().unwrap_or_default())
            }
        }
    )*};
}
display_as_serde!(Level, Space, Modality);

/// The samples of some splits, in split order then corpus order.
#[derive(Debug, Clone)]
pub struct Samples {
    pub level: Level,
    /// Clip keys (clip level) or video keys (video level).
    pub keys: Vec<String>,
    /// The split of each sample.
    pub splits: Vec<String>,
    /// The video key of each sample (its own key at video level).
    pub videos: Vec<String>,
    /// Pooled input features: mean over a clip's frames / a sentence's tokens (clip level), or
    /// over a whole video's frames / a paragraph's tokens (video level).
    pub video_in: EmbeddingMatrix,
    pub text_in: EmbeddingMatrix,
}

/// Videos pooled per call of `make_batch`: bounds the padded batch it also builds.
const POOL_VIDEOS: usize = 64;

impl Samples {
    /// The samples of `splits` (every split of the project when empty).
    pub fn load(
        project: &Project,
        splits: &[String],
        level: Level,
        cancel: &CancelToken,
    ) -> Result<Self, AnalysisError> {
        project.check_features()?;
        let splits = resolve_splits(project, splits)?;
        let limits = BatchLimits::of(&project.config().model);
        let mut keys = Vec::new();
        let mut split_of = Vec::new();
        let mut videos = Vec::new();
        let (mut video_in, mut text_in) = (Vec::new(), Vec::new());
        let (mut video_dim, mut text_dim) = (0, 0);
        for split in &splits {
            let features = load_split(project, split, SplitRole::Named)?;
            let corpus = CorpusView::of(&features);
            video_dim = corpus.video.dim;
            text_dim = corpus.text.dim;
            let all: Vec<usize> = (0..corpus.num_videos()).collect();
            for chunk in all.chunks(POOL_VIDEOS) {
                if cancel.is_cancelled() {
                    return Err(AnalysisError::Cancelled);
                }
                let batch = make_batch(&corpus, chunk, limits, &Device::Cpu)?;
                let (v, t) = match level {
                    Level::Clip => (&batch.clip_video_in, &batch.clip_text_in),
                    Level::Video => (&batch.video_in, &batch.paragraph_in),
                };
                video_in.extend(flat(v)?);
                text_in.extend(flat(t)?);
            }
            match level {
                Level::Clip => {
                    keys.extend(features.clip_keys.iter().cloned());
                    videos.extend(
                        features
                            .video_of_clip
                            .iter()
                            .map(|&v| features.video_keys[v as usize].clone()),
                    );
                }
                Level::Video => {
                    keys.extend(features.video_keys.iter().cloned());
                    videos.extend(features.video_keys.iter().cloned());
                }
            }
            split_of.resize(keys.len(), split.clone());
        }
        let rows = keys.len();
        Ok(Self {
            level,
            keys,
            splits: split_of,
            videos,
            video_in: EmbeddingMatrix {
                rows,
                cols: video_dim,
                data: video_in,
            },
            text_in: EmbeddingMatrix {
                rows,
                cols: text_dim,
                data: text_in,
            },
        })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The row of `key`, or an error naming where it was looked for.
    pub fn index_of(&self, key: &str) -> Result<usize, AnalysisError> {
        self.keys
            .iter()
            .position(|k| k == key)
            .ok_or_else(|| AnalysisError::UnknownKey {
                what: match self.level {
                    Level::Clip => "clip",
                    Level::Video => "video",
                },
                key: key.to_string(),
                place: format!("split(s) {}", distinct(&self.splits).join(", ")),
                hint: self.keys.first().map(|k| format!("keys look like `{k}`")),
            })
    }

    /// One modality's pooled input features.
    pub fn input(&self, modality: Modality) -> &EmbeddingMatrix {
        match modality {
            Modality::Video => &self.video_in,
            Modality::Text => &self.text_in,
        }
    }
}

/// `splits`, checked, or every split of the project when empty.
pub fn resolve_splits(project: &Project, splits: &[String]) -> Result<Vec<String>, AnalysisError> {
    let existing = project.splits()?;
    if splits.is_empty() {
        return Ok(existing);
    }
    for split in splits.iter().filter(|s| !existing.contains(s)) {
        // Refused with the list of the splits there are.
        load_split(project, split, SplitRole::Named)?;
    }
    Ok(splits.to_vec())
}

fn distinct(values: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for value in values {
        if !out.contains(value) {
            out.push(value.clone());
        }
    }
    out
}

fn flat(tensor: &Tensor) -> Result<Vec<f32>, AnalysisError> {
    Ok(tensor.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?)
}

/// A run's joint embeddings of whole splits, rows in split order then corpus order.
#[derive(Debug, Clone)]
pub struct JointEmbeddings {
    pub clip: EmbeddingMatrix,
    pub sentence: EmbeddingMatrix,
    pub video: EmbeddingMatrix,
    pub paragraph: EmbeddingMatrix,
}

/// Embeds every clip and video of `splits` with run `run`'s head, in one pass per split.
pub fn embed_splits(
    project: &Project,
    run: &RunName,
    splits: &[String],
    cancel: &CancelToken,
) -> Result<JointEmbeddings, AnalysisError> {
    let device = Device::Cpu;
    let (head, _) = load_run_head(project, run, &device)?;
    let mut parts: [Vec<Tensor>; 4] = Default::default();
    for split in splits {
        if cancel.is_cancelled() {
            return Err(AnalysisError::Cancelled);
        }
        let features = load_split(project, split, SplitRole::Named)?;
        let embedded = embed_split(&head, project.config(), &features, &device)?;
        for (part, tensor) in parts.iter_mut().zip([
            embedded.clip,
            embedded.sentence,
            embedded.video,
            embedded.paragraph,
        ]) {
            part.push(tensor);
        }
    }
    let matrix = |parts: &[Tensor]| -> Result<EmbeddingMatrix, AnalysisError> {
        let all = Tensor::cat(parts, 0)?;
        let (rows, cols) = all.dims2()?;
        Ok(EmbeddingMatrix {
            rows,
            cols,
            data: flat(&all)?,
        })
    };
    Ok(JointEmbeddings {
        clip: matrix(&parts[0])?,
        sentence: matrix(&parts[1])?,
        video: matrix(&parts[2])?,
        paragraph: matrix(&parts[3])?,
    })
}

/// Run `run`'s joint embeddings of `samples` (same rows): the video side (clips or videos) and
/// the text side (sentences or paragraphs).
pub fn joint_embeddings(
    project: &Project,
    run: &RunName,
    samples: &Samples,
    cancel: &CancelToken,
) -> Result<(EmbeddingMatrix, EmbeddingMatrix), AnalysisError> {
    let joint = embed_splits(project, run, &distinct(&samples.splits), cancel)?;
    let (video, text) = match samples.level {
        Level::Clip => (joint.clip, joint.sentence),
        Level::Video => (joint.video, joint.paragraph),
    };
    if video.rows != samples.len() {
        return Err(AnalysisError::Settings(format!(
            "run `{run}` embedded {} samples where the features hold {}",
            video.rows,
            samples.len()
        )));
    }
    Ok((video, text))
}

/// A matrix of f32 rows as the f64 host matrix the loss's connectivity is computed on.
pub fn host_matrix(matrix: &EmbeddingMatrix) -> HostMatrix {
    HostMatrix::new(
        matrix.rows,
        matrix.cols,
        matrix.data.iter().map(|&v| f64::from(v)).collect(),
    )
}

/// The manifest entries of `keys` (clip level), `None` where the manifest has no such clip.
pub fn manifest_of<'a>(
    entries: &'a [ManifestEntry],
    keys: &[String],
) -> Vec<Option<&'a ManifestEntry>> {
    let by_key: std::collections::HashMap<&str, &ManifestEntry> =
        entries.iter().map(|e| (e.clip.as_str(), e)).collect();
    keys.iter()
        .map(|k| by_key.get(k.as_str()).copied())
        .collect()
}

/// Cosine of two rows (0 when either is all zeros).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut dot, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        dot += x * y;
        aa += x * x;
        bb += y * y;
    }
    let norm = (aa * bb).sqrt();
    if norm > 0.0 { dot / norm } else { 0.0 }
}
