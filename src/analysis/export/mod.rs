//! Embeddings and what the analysis knows about each clip, for the tools researchers already use:
//! a Parquet table (pandas, pyarrow, polars, DuckDB) and TensorBoard's Embedding Projector.

mod parquet;
mod projector;

pub use parquet::write_parquet;
pub use projector::{ProjectorReport, write_projector};

use std::path::{Path, PathBuf};

use super::AnalysisError;
use super::graph::{EdgeRule, GraphSettings, SimilarityGraph, similarity_graph};
use super::negatives::loss_settings;
use super::samples::{Level, Samples, Space, joint_embeddings, manifest_of};
use crate::jobs::CancelToken;
use crate::media::{ThumbnailCache, clip_thumbnail_time};
use crate::project::{EmbeddingMatrix, Project, RunName};

/// Neighbours per clip of the input-space graph an export computes its degrees on, when no
/// `crossclr graph` file is there to read them from.
pub const EXPORT_GRAPH_K: usize = 10;

/// One row per clip of every split, with the run's joint embeddings.
#[derive(Debug, Clone)]
pub struct ClipTable {
    pub run: String,
    pub keys: Vec<String>,
    pub videos: Vec<String>,
    pub captions: Vec<Option<String>>,
    pub splits: Vec<String>,
    pub starts: Vec<Option<f64>>,
    pub ends: Vec<Option<f64>>,
    /// Thumbnail paths relative to the project directory, where the file exists.
    pub thumbnails: Vec<Option<String>>,
    /// Map coordinates from `maps/<run>/clip.safetensors`, when that file exists (`None` rows
    /// are clips the map does not hold).
    pub layout: Option<Vec<Option<[f32; 2]>>>,
    pub video_embedding: EmbeddingMatrix,
    pub text_embedding: EmbeddingMatrix,
    /// Input space, clip level: connectivity, score, influence and degree per modality.
    pub graph: SimilarityGraph,
    /// Where the degrees came from: a graph file, or computed now (kNN, k = 10).
    pub graph_source: String,
}

/// The layout file of a run's clip map, as `crossclr map` writes it.
pub fn layout_path(project: &Project, run: &RunName) -> PathBuf {
    project
        .maps_dir()
        .join(run.as_str())
        .join("clip.safetensors")
}

/// The input-space clip graph file of a run, as `crossclr graph` writes it.
pub fn graph_path(project: &Project, run: &RunName, space: Space, level: Level) -> PathBuf {
    project
        .maps_dir()
        .join(run.as_str())
        .join(format!("graph-{space}-{level}.safetensors"))
}

/// Reads a layout file: tensor `layout` (N×2 f32) and the JSON list `keys` in its metadata.
pub fn read_layout(path: &Path) -> Result<Vec<(String, [f32; 2])>, AnalysisError> {
    let bytes =
        std::fs::read(path).map_err(|e| AnalysisError::file(path, format!("cannot read: {e}")))?;
    let file = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| AnalysisError::file(path, format!("not a safetensors file: {e}")))?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| AnalysisError::file(path, format!("not a safetensors file: {e}")))?;
    let keys: Vec<String> = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get("keys"))
        .ok_or_else(|| {
            AnalysisError::file(
                path,
                "metadata `keys` is missing; expected the clip keys of the layout's rows",
            )
        })
        .and_then(|k| {
            serde_json::from_str(k).map_err(|e| {
                AnalysisError::file(
                    path,
                    format!("metadata `keys` is not a JSON list of strings: {e}"),
                )
            })
        })?;
    let layout = file
        .tensor("layout")
        .map_err(|_| AnalysisError::file(path, "tensor `layout` is missing"))?;
    if layout.dtype() != safetensors::Dtype::F32 || layout.shape() != [keys.len(), 2] {
        return Err(AnalysisError::file(
            path,
            format!(
                "tensor `layout` is {:?} {:?}; expected F32 [{}, 2] (one row per key)",
                layout.dtype(),
                layout.shape(),
                keys.len()
            ),
        ));
    }
    let values: Vec<f32> = layout
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect();
    Ok(keys
        .into_iter()
        .zip(values.chunks_exact(2).map(|p| [p[0], p[1]]))
        .collect())
}

impl ClipTable {
    /// Every clip of `project` with run `run`: embeddings, manifest, map and graph figures.
    pub fn build(
        project: &Project,
        run: &RunName,
        progress: &mut dyn FnMut(usize, usize),
        cancel: &CancelToken,
    ) -> Result<Self, AnalysisError> {
        let samples = Samples::load(project, &[], Level::Clip, cancel)?;
        let (video_embedding, text_embedding) = joint_embeddings(project, run, &samples, cancel)?;
        let entries = project.read_manifest()?.entries;
        let manifest = manifest_of(&entries, &samples.keys);
        let cache = ThumbnailCache::for_project(project.dir());
        let thumbnails = manifest
            .iter()
            .map(|entry| {
                let entry = (*entry)?;
                let path =
                    cache.path_for(&entry.video, clip_thumbnail_time(entry.start, entry.end));
                path.is_file().then(|| {
                    path.strip_prefix(project.dir())
                        .unwrap_or(&path)
                        .to_string_lossy()
                        .into_owned()
                })
            })
            .collect();
        let map = layout_path(project, run);
        let layout = if map.is_file() {
            let by_key: std::collections::HashMap<String, [f32; 2]> =
                read_layout(&map)?.into_iter().collect();
            Some(
                samples
                    .keys
                    .iter()
                    .map(|k| by_key.get(k).copied())
                    .collect(),
            )
        } else {
            None
        };
        let saved = graph_path(project, run, Space::Input, Level::Clip);
        let existing = if saved.is_file() {
            Some(SimilarityGraph::load(&saved)?).filter(|g| g.keys == samples.keys)
        } else {
            None
        };
        let (graph, graph_source) = match existing {
            Some(graph) => (graph, saved.display().to_string()),
            None => {
                let loss = loss_settings(project, Some(run))?;
                let settings = GraphSettings {
                    space: Space::Input,
                    edges: EdgeRule::Knn(EXPORT_GRAPH_K),
                    gamma: loss.crossclr.gamma,
                    mode: loss.crossclr.mode,
                    max_edges: GraphSettings::DEFAULT_MAX_EDGES,
                };
                let graph = similarity_graph(
                    &samples,
                    (&samples.video_in, &samples.text_in),
                    settings,
                    progress,
                    cancel,
                )?;
                (
                    graph,
                    format!("input-space kNN graph, k = {EXPORT_GRAPH_K}, computed now"),
                )
            }
        };
        Ok(Self {
            run: run.to_string(),
            captions: manifest
                .iter()
                .map(|e| e.and_then(|e| e.caption.clone()))
                .collect(),
            starts: manifest.iter().map(|e| e.and_then(|e| e.start)).collect(),
            ends: manifest.iter().map(|e| e.and_then(|e| e.end)).collect(),
            keys: samples.keys,
            videos: samples.videos,
            splits: samples.splits,
            thumbnails,
            layout,
            video_embedding,
            text_embedding,
            graph,
            graph_source,
        })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}
