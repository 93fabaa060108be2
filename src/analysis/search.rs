//! Text → clip (or video) search with a trained run: the query is encoded by the project's text
//! encoder and the run's text side (as a sentence, or as a paragraph of one sentence); every clip
//! and video of every split by the video side; results ranked by cosine similarity (exact, one
//! pass over an in-memory normalised matrix: [`UnitRows::top_k`]).

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use thiserror::Error;

use super::points::ProjectPoints;
use super::rank::UnitRows;
use super::samples::Level;
use crate::encode::{EncodeError, TextEncoder, text_encoder};
use crate::media::ThumbnailCache;
use crate::model::{EmbeddingHead, Mode, ModelError, SequenceBatch};
use crate::project::config::PRECOMPUTED;
use crate::project::{EmbeddingMatrix, ManifestEntry, Project, ProjectError, RunName};
use crate::train::{SplitRole, TrainError, embed_split, load_run_head, load_split};

#[derive(Debug, Error)]
pub enum SearchError {
    #[error(
        "run `{run}` was trained on imported text features; a typed query needs the encoder that made them, which this project does not have"
    )]
    PrecomputedText { run: String },
    #[error("the text encoder `{name}`")]
    Encoder {
        name: String,
        #[source]
        source: Box<EncodeError>,
    },
    #[error("encoding the query")]
    Query(#[source] Box<EncodeError>),
    #[error("this index holds clip embeddings only; search at clip level")]
    NoVideoLevel,
    #[error(transparent)]
    Train(Box<TrainError>),
    #[error(transparent)]
    Project(#[from] ProjectError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl From<TrainError> for SearchError {
    fn from(error: TrainError) -> Self {
        Self::Train(Box::new(error))
    }
}

/// One found clip (or video).
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The clip's key (the video's at video level).
    pub clip: String,
    pub split: String,
    pub score: f32,
    /// The clip's caption; at video level its clips' captions in order, joined by spaces.
    pub caption: Option<String>,
    pub video: String,
    pub start: Option<f64>,
    /// The cached thumbnail (of the clip; of the video's first clip), when it exists.
    pub thumbnail: Option<PathBuf>,
}

/// Keys of one level: (key, split, video) per row.
#[derive(Debug, Clone, Default)]
struct Rows {
    unit: Option<UnitRows>,
    keys: Vec<(String, String, String)>,
}

/// A run's head with every clip and video of the project embedded, ready for queries.
#[derive(Debug)]
pub struct SearchIndex {
    head: EmbeddingHead,
    text: Box<dyn TextEncoder>,
    clips: Rows,
    videos: Rows,
    manifest: HashMap<String, ManifestEntry>,
    /// Clip keys of each video, in order.
    clips_of_video: HashMap<String, Vec<String>>,
    thumbnails: Option<ThumbnailCache>,
}

impl SearchIndex {
    /// Embeds every clip and video of `project` with run `run`'s head (on the CPU).
    pub fn open(project: &Project, run: &RunName) -> Result<Self, SearchError> {
        project.check_features()?;
        let config = project.config();
        let device = Device::Cpu;
        let (head, text) = Self::query_side(project, run)?;
        let (mut clip_parts, mut video_parts) = (Vec::new(), Vec::new());
        let (mut clip_keys, mut video_keys) = (Vec::new(), Vec::new());
        for split in project.splits()? {
            let features = load_split(project, &split, SplitRole::Named)?;
            let embeddings = embed_split(&head, config, &features, &device)?;
            clip_parts.push(embeddings.clip);
            video_parts.push(embeddings.video);
            clip_keys.extend(features.clip_keys.iter().zip(&features.video_of_clip).map(
                |(k, &v)| {
                    (
                        k.clone(),
                        split.clone(),
                        features.video_keys[v as usize].clone(),
                    )
                },
            ));
            video_keys.extend(
                features
                    .video_keys
                    .iter()
                    .map(|k| (k.clone(), split.clone(), k.clone())),
            );
        }
        let manifest = project.read_manifest()?.entries;
        let mut index = Self::new(head, text, matrix(&clip_parts)?, clip_keys, manifest);
        index.videos = Rows {
            unit: Some(UnitRows::from_matrix(&matrix(&video_parts)?)),
            keys: video_keys,
        };
        index.thumbnails = Some(ThumbnailCache::for_project(project.dir()));
        Ok(index)
    }

    /// The index of what `points` already embedded with run `run` (the explorer has them):
    /// clips and videos, with thumbnails.
    pub fn from_points(
        project: &Project,
        run: &RunName,
        points: &ProjectPoints,
    ) -> Result<Self, SearchError> {
        let (head, text) = Self::query_side(project, run)?;
        let clip_keys = (0..points.clips())
            .map(|i| {
                (
                    points.clip_keys[i].clone(),
                    points.split_of_clip(i).to_string(),
                    points.video_keys[points.video_of_clip[i]].clone(),
                )
            })
            .collect();
        let manifest = project.read_manifest()?.entries;
        let mut index = Self::new(head, text, points.clip.clone(), clip_keys, manifest);
        let video_keys = points
            .splits
            .iter()
            .flat_map(|s| {
                s.videos.clone().map(move |v| {
                    (
                        points.video_keys[v].clone(),
                        s.split.clone(),
                        points.video_keys[v].clone(),
                    )
                })
            })
            .collect();
        index.videos = Rows {
            unit: Some(UnitRows::from_matrix(&points.video)),
            keys: video_keys,
        };
        index.thumbnails = Some(ThumbnailCache::for_project(project.dir()));
        Ok(index)
    }

    /// The run's head and the text encoder its captions were encoded with.
    fn query_side(
        project: &Project,
        run: &RunName,
    ) -> Result<(EmbeddingHead, Box<dyn TextEncoder>), SearchError> {
        let device = Device::Cpu;
        let (head, meta) = load_run_head(project, run, &device)?;
        if meta.text_encoder.name == PRECOMPUTED {
            return Err(SearchError::PrecomputedText {
                run: run.to_string(),
            });
        }
        let text = text_encoder(&meta.text_encoder.name, &device).map_err(|source| {
            SearchError::Encoder {
                name: meta.text_encoder.name.clone(),
                source: Box::new(source),
            }
        })?;
        Ok((head, text))
    }

    /// The cosine of every clip (in index order) to `query`: what the explorer colours by.
    pub fn scores(&self, query: &str) -> Result<Vec<f32>, SearchError> {
        let (sentence, _) = self.encode_query(query)?;
        let Some(unit) = &self.clips.unit else {
            return Ok(Vec::new());
        };
        let query = UnitRows::new(1, sentence.len(), sentence);
        let q = query.row(0);
        Ok((0..unit.rows())
            .map(|i| unit.row(i).iter().zip(q).map(|(a, b)| a * b).sum())
            .collect())
    }

    /// An index over given clip embeddings (rows of `clips`, one per key: (clip, split, video)),
    /// queried through `head`'s text side and `text`; no video level, no thumbnails. For tools
    /// and benchmarks that hold embeddings of their own.
    pub fn new(
        head: EmbeddingHead,
        text: Box<dyn TextEncoder>,
        clips: EmbeddingMatrix,
        keys: Vec<(String, String, String)>,
        manifest: Vec<ManifestEntry>,
    ) -> Self {
        assert_eq!(clips.rows, keys.len(), "one key per clip embedding");
        let mut clips_of_video: HashMap<String, Vec<String>> = HashMap::new();
        for (clip, _, video) in &keys {
            clips_of_video
                .entry(video.clone())
                .or_default()
                .push(clip.clone());
        }
        Self {
            head,
            text,
            clips: Rows {
                unit: Some(UnitRows::from_matrix(&clips)),
                keys,
            },
            videos: Rows::default(),
            manifest: manifest.into_iter().map(|e| (e.clip.clone(), e)).collect(),
            clips_of_video,
            thumbnails: None,
        }
    }

    /// The query through the text encoder and the head's text side: its sentence (clip-level)
    /// and paragraph (video-level) embeddings, not normalised.
    pub fn encode_query(&self, query: &str) -> Result<(Vec<f32>, Vec<f32>), SearchError> {
        let features = self
            .text
            .encode(&[query])
            .map_err(|e| SearchError::Query(Box::new(e)))?;
        let tokens = features.tokens.get(0);
        let rows = tokens.len() / features.dim();
        let sequence = Tensor::from_slice(tokens, (rows, features.dim()), &Device::Cpu)?;
        let batch = SequenceBatch::from_sequences(&[sequence])?;
        // The query is a paragraph of one sentence.
        let paragraph = std::iter::once(0..1).collect::<Vec<_>>();
        let embedded = self
            .head
            .encode_text(&batch, Some(&batch), &paragraph, Mode::Eval)?;
        let flat = |t: &Tensor| -> Result<Vec<f32>, SearchError> {
            Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?)
        };
        Ok((flat(&embedded.local)?, flat(&embedded.global)?))
    }

    /// The `top` clips closest to `query`, best first (ties by clip order).
    pub fn search(&self, query: &str, top: usize) -> Result<Vec<Hit>, SearchError> {
        self.search_at(query, top, Level::Clip)
    }

    /// The `top` clips or videos closest to `query`, best first (ties by order).
    pub fn search_at(
        &self,
        query: &str,
        top: usize,
        level: Level,
    ) -> Result<Vec<Hit>, SearchError> {
        let (sentence, paragraph) = self.encode_query(query)?;
        let (rows, query) = match level {
            Level::Clip => (&self.clips, sentence),
            Level::Video => (&self.videos, paragraph),
        };
        let Some(unit) = &rows.unit else {
            return Err(SearchError::NoVideoLevel);
        };
        // Scores are cosines: the rows are unit length, so the query is made so too.
        let query = UnitRows::new(1, query.len(), query).as_slice().to_vec();
        Ok(unit
            .top_k(&query, top, |_| false)
            .into_iter()
            .map(|(i, score)| self.hit(&rows.keys[i], score, level))
            .collect())
    }

    fn hit(&self, (key, split, video): &(String, String, String), score: f32, level: Level) -> Hit {
        let clips: Vec<&ManifestEntry> = match level {
            Level::Clip => self.manifest.get(key).into_iter().collect(),
            Level::Video => self
                .clips_of_video
                .get(key)
                .into_iter()
                .flatten()
                .filter_map(|c| self.manifest.get(c))
                .collect(),
        };
        let captions: Vec<&str> = clips.iter().filter_map(|e| e.caption.as_deref()).collect();
        let first = clips.first();
        let thumbnail = match (&self.thumbnails, first) {
            (Some(cache), Some(entry)) => Some(cache.for_clip(entry)).filter(|p| p.is_file()),
            _ => None,
        };
        Hit {
            clip: key.clone(),
            split: split.clone(),
            score,
            caption: (!captions.is_empty()).then(|| captions.join(" ")),
            video: first.map_or_else(|| video.clone(), |e| e.video.clone()),
            start: first.and_then(|e| e.start),
            thumbnail,
        }
    }
}

fn matrix(parts: &[Tensor]) -> Result<EmbeddingMatrix, SearchError> {
    let all = Tensor::cat(parts, 0)?;
    let (rows, cols) = all.dims2()?;
    Ok(EmbeddingMatrix {
        rows,
        cols,
        data: all.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?,
    })
}
