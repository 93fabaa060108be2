//! Text → clip search with a trained run: the query is encoded by the project's text encoder and
//! the run's text side; every clip of every split by its video side; results ranked by cosine
//! similarity (exact, over an in-memory normalised matrix).

use candle_core::{D, Device, Tensor};
use thiserror::Error;

use crate::encode::{EncodeError, TextEncoder, text_encoder};
use crate::model::{EmbeddingHead, Mode, ModelError, SequenceBatch};
use crate::project::config::PRECOMPUTED;
use crate::project::{ManifestEntry, Project, ProjectError, RunName};
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

/// One found clip.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub clip: String,
    pub split: String,
    pub score: f32,
    pub caption: Option<String>,
    pub video: String,
    pub start: Option<f64>,
}

/// A run's head with every clip of the project embedded, ready for queries.
#[derive(Debug)]
pub struct SearchIndex {
    head: EmbeddingHead,
    text: Box<dyn TextEncoder>,
    /// (clips, d), L2-normalised rows.
    clips: Tensor,
    keys: Vec<(String, String)>,
    manifest: Vec<ManifestEntry>,
}

impl SearchIndex {
    /// Embeds every clip of `project` with run `run`'s head (on the CPU).
    pub fn open(project: &Project, run: &RunName) -> Result<Self, SearchError> {
        project.check_features()?;
        let config = project.config();
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
        let mut parts = Vec::new();
        let mut keys = Vec::new();
        for split in project.splits()? {
            let features = load_split(project, &split, SplitRole::Named)?;
            let embeddings = embed_split(&head, config, &features, &device)?;
            parts.push(embeddings.clip);
            keys.extend(
                features
                    .clip_keys
                    .iter()
                    .map(|k| (k.clone(), split.clone())),
            );
        }
        let clips = normalise(&Tensor::cat(&parts, 0)?)?;
        Ok(Self {
            head,
            text,
            clips,
            keys,
            manifest: project.read_manifest()?.entries,
        })
    }

    /// The `top` clips closest to `query`, best first (ties by clip order).
    pub fn search(&self, query: &str, top: usize) -> Result<Vec<Hit>, SearchError> {
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
        let query = normalise(&embedded.local)?;
        let scores: Vec<f32> = self.clips.matmul(&query.t()?)?.flatten_all()?.to_vec1()?;
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        Ok(order
            .into_iter()
            .take(top)
            .map(|i| {
                let (clip, split) = &self.keys[i];
                let entry = self.manifest.iter().find(|e| &e.clip == clip);
                Hit {
                    clip: clip.clone(),
                    split: split.clone(),
                    score: scores[i],
                    caption: entry.and_then(|e| e.caption.clone()),
                    video: entry.map_or_else(String::new, |e| e.video.clone()),
                    start: entry.and_then(|e| e.start),
                }
            })
            .collect())
    }
}

fn normalise(rows: &Tensor) -> Result<Tensor, candle_core::Error> {
    let norms = rows
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .sqrt()?
        .clamp(1e-12, f64::MAX)?;
    rows.broadcast_div(&norms)
}
