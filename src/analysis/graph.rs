//! The sample-similarity graph the explorer draws: per modality, the kNN or threshold edges by
//! cosine similarity (in input or joint space), each node's degree, and CrossCLR's view of the
//! nodes — connectivity `c_i`, the normalised score `c_i/max c` and the influential flag at γ —
//! computed by the loss's own functions over the whole node set taken as one batch.
//!
//! The N×N similarities are computed in blocks of rows (one matrix product per block, at most
//! [`BLOCK_ENTRIES`] similarities alive), so 100,000 samples never hold an N×N matrix.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{Device, Tensor};
use safetensors::tensor::{Dtype, TensorView};
use serde::Serialize;

use super::AnalysisError;
use super::rank::{TopK, UnitRows};
use super::samples::{Level, Samples, Space, host_matrix};
use crate::crossclr::{Mode, NegativeSets, batch_connectivity, normalised_scores};
use crate::jobs::CancelToken;
use crate::project::{EmbeddingMatrix, write_safetensors_atomic};

/// Similarities held at once while the graph is built: 16M f32 (64 MB), plus their copy.
pub const BLOCK_ENTRIES: usize = 1 << 24;

/// The `format` of a graph file.
pub const GRAPH_FORMAT: &str = "crossclr-graph";

/// The one metadata entry of a graph file: a JSON object of strings (`format`, `version`,
/// `keys` — a JSON list —, `level`, `space`, `k` or `threshold`, `gamma`, `mode`, and the caller's
/// `run`, `splits`).
pub const METADATA_KEY: &str = "graph";

/// Which pairs become edges.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EdgeRule {
    /// Each node's `k` most similar other nodes (directed i → j).
    Knn(usize),
    /// Every pair with cosine ≥ the threshold (each pair once, i < j).
    Threshold(f32),
}

/// How a graph is built.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GraphSettings {
    pub space: Space,
    pub edges: EdgeRule,
    /// The pruning threshold γ of the influential flag.
    pub gamma: f64,
    pub mode: Mode,
    /// A threshold graph with more edges than this is refused (raise the threshold or use kNN).
    pub max_edges: usize,
}

impl GraphSettings {
    pub const DEFAULT_MAX_EDGES: usize = 50_000_000;
}

/// One modality's graph and CrossCLR's view of its nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct ModalityGraph {
    /// Edge endpoints and cosine similarity, sorted by source then by rank (kNN) or target.
    pub from: Vec<u32>,
    pub to: Vec<u32>,
    pub similarity: Vec<f32>,
    /// Distinct neighbours of each node, edges taken as undirected.
    pub degree: Vec<u32>,
    /// `c_i = (1/N) Σ_{j≠i} x_i·x_j` on the pooled input features.
    pub connectivity: Vec<f64>,
    /// `c_i / max c` (mode's rule when `max c ≤ 0`).
    pub score: Vec<f64>,
    /// `score > γ`: what the loss would prune from every other anchor's negatives.
    pub influential: Vec<bool>,
}

/// The graph of a set of samples, both modalities.
#[derive(Debug, Clone, PartialEq)]
pub struct SimilarityGraph {
    pub level: Level,
    pub keys: Vec<String>,
    pub settings: GraphSettings,
    pub video: ModalityGraph,
    pub text: ModalityGraph,
}

/// CrossCLR's connectivity, score and influence of every sample of `inputs` (one batch).
pub fn influence(
    inputs: &EmbeddingMatrix,
    gamma: f64,
    mode: Mode,
) -> (Vec<f64>, Vec<f64>, Vec<bool>) {
    let connectivity = batch_connectivity(&host_matrix(inputs));
    let score = normalised_scores(&connectivity, mode);
    let influential = NegativeSets::of_batch(mode, gamma, &connectivity).cross_pruned;
    (connectivity, score, influential)
}

/// Builds the graph of `samples`; `edge_space` gives the rows edges are measured on (video side,
/// text side): the pooled inputs for [`Space::Input`], a run's embeddings for [`Space::Joint`].
/// `progress(done, total)` is called after each block of rows.
pub fn similarity_graph(
    samples: &Samples,
    edge_space: (&EmbeddingMatrix, &EmbeddingMatrix),
    settings: GraphSettings,
    progress: &mut dyn FnMut(usize, usize),
    cancel: &CancelToken,
) -> Result<SimilarityGraph, AnalysisError> {
    let n = samples.len();
    if n < 2 {
        return Err(AnalysisError::Settings(format!(
            "a graph needs at least 2 samples; the chosen splits hold {n}"
        )));
    }
    if let EdgeRule::Knn(0) = settings.edges {
        return Err(AnalysisError::Settings("--k must be at least 1".into()));
    }
    let total = 2 * n.div_ceil(block_rows(n));
    let mut done = 0;
    let mut side = |inputs: &EmbeddingMatrix, space: &EmbeddingMatrix| {
        let (from, to, similarity) = edges(
            space,
            settings,
            &mut |_| {
                done += 1;
                progress(done, total);
            },
            cancel,
        )?;
        let degree = degrees(n, &from, &to);
        let (connectivity, score, influential) = influence(inputs, settings.gamma, settings.mode);
        Ok::<_, AnalysisError>(ModalityGraph {
            from,
            to,
            similarity,
            degree,
            connectivity,
            score,
            influential,
        })
    };
    let video = side(&samples.video_in, edge_space.0)?;
    let text = side(&samples.text_in, edge_space.1)?;
    Ok(SimilarityGraph {
        level: samples.level,
        keys: samples.keys.clone(),
        settings,
        video,
        text,
    })
}

/// Each row's `k` most similar other rows by cosine, and every node's degree: the graph the
/// explorer draws over its map (one space, no CrossCLR view; [`similarity_graph`] adds that).
#[derive(Debug, Clone, PartialEq)]
pub struct KnnEdges {
    pub from: Vec<u32>,
    pub to: Vec<u32>,
    pub similarity: Vec<f32>,
    pub degree: Vec<u32>,
}

/// The kNN graph of `features`' rows (directed i → j, sorted by source then rank).
pub fn knn_edges(
    features: &EmbeddingMatrix,
    k: usize,
    cancel: &CancelToken,
) -> Result<KnnEdges, AnalysisError> {
    let n = features.rows;
    if n < 2 || k == 0 {
        return Ok(KnnEdges {
            from: Vec::new(),
            to: Vec::new(),
            similarity: Vec::new(),
            degree: vec![0; n],
        });
    }
    let settings = GraphSettings {
        space: Space::Input,
        edges: EdgeRule::Knn(k),
        gamma: 1.0,
        mode: Mode::Paper,
        max_edges: GraphSettings::DEFAULT_MAX_EDGES,
    };
    let (from, to, similarity) = edges(features, settings, &mut |_| {}, cancel)?;
    let degree = degrees(n, &from, &to);
    Ok(KnnEdges {
        from,
        to,
        similarity,
        degree,
    })
}

fn block_rows(n: usize) -> usize {
    (BLOCK_ENTRIES / n.max(1)).clamp(1, n.max(1))
}

type Edges = (Vec<u32>, Vec<u32>, Vec<f32>);

/// The edges among the rows of `features` by cosine similarity, in row blocks.
fn edges(
    features: &EmbeddingMatrix,
    settings: GraphSettings,
    block_done: &mut dyn FnMut(usize),
    cancel: &CancelToken,
) -> Result<Edges, AnalysisError> {
    let n = features.rows;
    let unit = UnitRows::from_matrix(features);
    let all = Tensor::from_slice(unit.as_slice(), (n, unit.cols()), &Device::Cpu)?;
    let all_t = all.t()?;
    let step = block_rows(n);
    let (mut from, mut to, mut similarity) = (Vec::new(), Vec::new(), Vec::new());
    for (b, start) in (0..n).step_by(step).enumerate() {
        if cancel.is_cancelled() {
            return Err(AnalysisError::Cancelled);
        }
        let rows = step.min(n - start);
        let block: Vec<f32> = all
            .narrow(0, start, rows)?
            .matmul(&all_t)?
            .flatten_all()?
            .to_vec1()?;
        let per_row = rows_in_parallel(rows, |r| {
            let i = start + r;
            let sims = &block[r * n..(r + 1) * n];
            match settings.edges {
                EdgeRule::Knn(k) => {
                    let mut best = TopK::new(k.min(n - 1));
                    for (j, &s) in sims.iter().enumerate() {
                        if j != i {
                            best.offer(j, s);
                        }
                    }
                    best.into_sorted()
                }
                EdgeRule::Threshold(t) => sims
                    .iter()
                    .enumerate()
                    .skip(i + 1)
                    .filter(|&(_, &s)| s >= t)
                    .map(|(j, &s)| (j, s))
                    .collect(),
            }
        });
        for (r, list) in per_row.into_iter().enumerate() {
            for (j, s) in list {
                from.push((start + r) as u32);
                to.push(j as u32);
                similarity.push(s);
            }
        }
        if from.len() > settings.max_edges {
            return Err(AnalysisError::Settings(format!(
                "the threshold graph already has {} edges after {} of {n} rows (limit {}); raise --threshold or use --k",
                from.len(),
                start + rows,
                settings.max_edges
            )));
        }
        block_done(b);
    }
    Ok((from, to, similarity))
}

/// `work(r)` for r in 0..rows, split across the cores, results in row order.
fn rows_in_parallel<T: Send>(rows: usize, work: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let threads = num_cpus::get().clamp(1, rows.max(1));
    let per = rows.div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let work = &work;
                scope.spawn(move || {
                    (t * per..((t + 1) * per).min(rows))
                        .map(work)
                        .collect::<Vec<T>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a graph thread panicked"))
            .collect()
    })
}

/// Distinct neighbours per node, edges taken as undirected.
fn degrees(n: usize, from: &[u32], to: &[u32]) -> Vec<u32> {
    let mut pairs: Vec<(u32, u32)> = from
        .iter()
        .zip(to)
        .map(|(&a, &b)| (a.min(b), a.max(b)))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    let mut degree = vec![0u32; n];
    for (a, b) in pairs {
        degree[a as usize] += 1;
        degree[b as usize] += 1;
    }
    degree
}

fn bytes<T: Copy>(values: &[T], to_le: impl Fn(T) -> Vec<u8>) -> Vec<u8> {
    values.iter().flat_map(|&v| to_le(v)).collect()
}

impl SimilarityGraph {
    /// Writes the graph as safetensors (atomically): per modality `M` (`video`, `text`)
    /// `M_edges` (E×2 u32: from, to), `M_similarity` (E f32), `M_degree` (N u32),
    /// `M_connectivity` and `M_score` (N f64), `M_influential` (N u8); the keys and settings in the
    /// metadata.
    pub fn save(&self, path: &Path, extra: &[(&str, String)]) -> Result<(), AnalysisError> {
        let n = self.keys.len();
        let mut buffers: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
        for (name, graph) in [("video", &self.video), ("text", &self.text)] {
            let edges: Vec<u32> = graph
                .from
                .iter()
                .zip(&graph.to)
                .flat_map(|(&a, &b)| [a, b])
                .collect();
            let e = graph.from.len();
            buffers.push((
                format!("{name}_edges"),
                Dtype::U32,
                vec![e, 2],
                bytes(&edges, |v: u32| v.to_le_bytes().to_vec()),
            ));
            buffers.push((
                format!("{name}_similarity"),
                Dtype::F32,
                vec![e],
                bytes(&graph.similarity, |v: f32| v.to_le_bytes().to_vec()),
            ));
            buffers.push((
                format!("{name}_degree"),
                Dtype::U32,
                vec![n],
                bytes(&graph.degree, |v: u32| v.to_le_bytes().to_vec()),
            ));
            buffers.push((
                format!("{name}_connectivity"),
                Dtype::F64,
                vec![n],
                bytes(&graph.connectivity, |v: f64| v.to_le_bytes().to_vec()),
            ));
            buffers.push((
                format!("{name}_score"),
                Dtype::F64,
                vec![n],
                bytes(&graph.score, |v: f64| v.to_le_bytes().to_vec()),
            ));
            let flags: Vec<u8> = graph.influential.iter().map(|&f| u8::from(f)).collect();
            buffers.push((format!("{name}_influential"), Dtype::U8, vec![n], flags));
        }
        let mut views = Vec::new();
        for (name, dtype, shape, data) in &buffers {
            let view = TensorView::new(*dtype, shape.clone(), data)
                .map_err(|e| AnalysisError::write(path, e))?;
            views.push((name.clone(), view));
        }
        let mut metadata = BTreeMap::from([
            ("format".to_string(), GRAPH_FORMAT.to_string()),
            ("version".to_string(), "1".to_string()),
            ("keys".to_string(), json(&self.keys)),
            ("level".to_string(), self.level.to_string()),
            ("space".to_string(), self.settings.space.to_string()),
            ("gamma".to_string(), self.settings.gamma.to_string()),
            ("mode".to_string(), self.settings.mode.to_string()),
        ]);
        match self.settings.edges {
            EdgeRule::Knn(k) => metadata.insert("k".into(), k.to_string()),
            EdgeRule::Threshold(t) => metadata.insert("threshold".into(), t.to_string()),
        };
        for (key, value) in extra {
            metadata.insert((*key).to_string(), value.clone());
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| AnalysisError::write(parent, e))?;
        }
        // One metadata entry holding an ordered map: safetensors writes its metadata map in
        // hash order, which would make the same graph come out as different bytes.
        let metadata = HashMap::from([(METADATA_KEY.to_string(), json(&metadata))]);
        Ok(write_safetensors_atomic(path, views, Some(metadata))?)
    }

    /// Reads back what [`SimilarityGraph::save`] wrote.
    pub fn load(path: &Path) -> Result<Self, AnalysisError> {
        let bytes = std::fs::read(path)
            .map_err(|e| AnalysisError::file(path, format!("cannot read: {e}")))?;
        let file = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| AnalysisError::file(path, format!("not a safetensors file: {e}")))?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| AnalysisError::file(path, format!("not a safetensors file: {e}")))?;
        let metadata: BTreeMap<String, String> = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get(METADATA_KEY))
            .and_then(|m| serde_json::from_str(m).ok())
            .ok_or_else(|| {
                AnalysisError::file(path, format!("metadata `{METADATA_KEY}` is missing or not a JSON object; expected a graph file written by `crossclr graph`"))
            })?;
        let meta = |key: &str| {
            metadata.get(key).cloned().ok_or_else(|| {
                AnalysisError::file(path, format!("metadata `{key}` is missing; expected a graph file written by `crossclr graph`"))
            })
        };
        if meta("format")? != GRAPH_FORMAT {
            return Err(AnalysisError::file(
                path,
                format!("metadata `format` is not `{GRAPH_FORMAT}`"),
            ));
        }
        let keys: Vec<String> = serde_json::from_str(&meta("keys")?).map_err(|e| {
            AnalysisError::file(
                path,
                format!("metadata `keys` is not a JSON list of strings: {e}"),
            )
        })?;
        let n = keys.len();
        let tensor =
            |name: &str, dtype: Dtype, len: Option<usize>| -> Result<Vec<u8>, AnalysisError> {
                let view = file.tensor(name).map_err(|_| {
                    AnalysisError::file(path, format!("tensor `{name}` is missing"))
                })?;
                let count: usize = view.shape().iter().product();
                if view.dtype() != dtype || len.is_some_and(|l| count != l) {
                    return Err(AnalysisError::file(
                        path,
                        format!(
                            "tensor `{name}` is {:?} {:?}; expected {dtype:?}{}",
                            view.dtype(),
                            view.shape(),
                            len.map(|l| format!(" with {l} values")).unwrap_or_default()
                        ),
                    ));
                }
                Ok(view.data().to_vec())
            };
        let u32s = |b: Vec<u8>| {
            b.chunks_exact(4)
                .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
                .collect::<Vec<u32>>()
        };
        let f32s = |b: Vec<u8>| {
            b.chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect::<Vec<f32>>()
        };
        let f64s = |b: Vec<u8>| {
            b.chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                .collect::<Vec<f64>>()
        };
        let mut sides = Vec::new();
        for name in ["video", "text"] {
            let edges = u32s(tensor(&format!("{name}_edges"), Dtype::U32, None)?);
            let similarity = f32s(tensor(
                &format!("{name}_similarity"),
                Dtype::F32,
                Some(edges.len() / 2),
            )?);
            sides.push(ModalityGraph {
                from: edges.iter().step_by(2).copied().collect(),
                to: edges.iter().skip(1).step_by(2).copied().collect(),
                similarity,
                degree: u32s(tensor(&format!("{name}_degree"), Dtype::U32, Some(n))?),
                connectivity: f64s(tensor(
                    &format!("{name}_connectivity"),
                    Dtype::F64,
                    Some(n),
                )?),
                score: f64s(tensor(&format!("{name}_score"), Dtype::F64, Some(n))?),
                influential: tensor(&format!("{name}_influential"), Dtype::U8, Some(n))?
                    .into_iter()
                    .map(|b| b != 0)
                    .collect(),
            });
        }
        let parse = |key: &str| -> Result<f64, AnalysisError> {
            meta(key)?
                .parse()
                .map_err(|_| AnalysisError::file(path, format!("metadata `{key}` is not a number")))
        };
        let edges = match metadata.get("k") {
            Some(k) => EdgeRule::Knn(
                k.parse()
                    .map_err(|_| AnalysisError::file(path, "metadata `k` is not a count"))?,
            ),
            None => EdgeRule::Threshold(parse("threshold")? as f32),
        };
        let level = match meta("level")?.as_str() {
            "clip" => Level::Clip,
            "video" => Level::Video,
            other => {
                return Err(AnalysisError::file(
                    path,
                    format!("metadata `level` is `{other}`; expected clip or video"),
                ));
            }
        };
        let space = match meta("space")?.as_str() {
            "input" => Space::Input,
            "joint" => Space::Joint,
            other => {
                return Err(AnalysisError::file(
                    path,
                    format!("metadata `space` is `{other}`; expected input or joint"),
                ));
            }
        };
        let mode = meta("mode")?
            .parse()
            .map_err(|e: String| AnalysisError::file(path, e))?;
        let text = sides.pop().expect("two sides");
        let video = sides.pop().expect("two sides");
        Ok(Self {
            level,
            keys,
            settings: GraphSettings {
                space,
                edges,
                gamma: parse("gamma")?,
                mode,
                max_edges: GraphSettings::DEFAULT_MAX_EDGES,
            },
            video,
            text,
        })
    }
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(points: &[[f32; 2]]) -> Samples {
        let n = points.len();
        let data: Vec<f32> = points.iter().flatten().copied().collect();
        let matrix = EmbeddingMatrix {
            rows: n,
            cols: 2,
            data,
        };
        Samples {
            level: Level::Clip,
            keys: (0..n).map(|i| format!("c{i}")).collect(),
            splits: vec!["train".into(); n],
            videos: (0..n).map(|i| format!("v{i}")).collect(),
            video_in: matrix.clone(),
            text_in: matrix,
        }
    }

    fn settings(edges: EdgeRule) -> GraphSettings {
        GraphSettings {
            space: Space::Input,
            edges,
            gamma: 0.9,
            mode: Mode::Paper,
            max_edges: GraphSettings::DEFAULT_MAX_EDGES,
        }
    }

    #[test]
    fn knn_and_threshold_edges_follow_cosine_and_degrees_count_distinct_neighbours() {
        // Three points near the x axis, one on the y axis.
        let s = samples(&[[1.0, 0.0], [1.0, 0.1], [1.0, -0.2], [0.0, 1.0]]);
        let space = (&s.video_in, &s.text_in);
        let knn = similarity_graph(
            &s,
            space,
            settings(EdgeRule::Knn(1)),
            &mut |_, _| {},
            &CancelToken::new(),
        )
        .unwrap();
        assert_eq!(knn.video.from, vec![0, 1, 2, 3]);
        assert_eq!(knn.video.to, vec![1, 0, 0, 1]);
        // 0–1 counted once; 2–0 and 3–1 add one each.
        assert_eq!(knn.video.degree, vec![2, 2, 1, 1]);
        let threshold = similarity_graph(
            &s,
            space,
            settings(EdgeRule::Threshold(0.9)),
            &mut |_, _| {},
            &CancelToken::new(),
        )
        .unwrap();
        assert_eq!(threshold.video.from, vec![0, 0, 1]);
        assert_eq!(threshold.video.to, vec![1, 2, 2]);
        assert_eq!(threshold.video.degree, vec![2, 2, 2, 0]);
        let expected = batch_connectivity(&host_matrix(&s.video_in));
        assert_eq!(knn.video.connectivity, expected);
    }

    #[test]
    fn a_graph_reads_back_as_written() {
        let s = samples(&[[1.0, 0.0], [1.0, 0.1], [0.5, 0.5], [0.0, 1.0], [0.2, 0.9]]);
        let graph = similarity_graph(
            &s,
            (&s.video_in, &s.text_in),
            settings(EdgeRule::Knn(2)),
            &mut |_, _| {},
            &CancelToken::new(),
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.safetensors");
        graph.save(&path, &[]).unwrap();
        assert_eq!(SimilarityGraph::load(&path).unwrap(), graph);
    }

    #[test]
    fn a_threshold_graph_past_its_edge_limit_is_refused() {
        let s = samples(&[[1.0, 0.0], [1.0, 0.1], [1.0, 0.2], [1.0, 0.3]]);
        let mut tight = settings(EdgeRule::Threshold(0.0));
        tight.max_edges = 2;
        let error = similarity_graph(
            &s,
            (&s.video_in, &s.text_in),
            tight,
            &mut |_, _| {},
            &CancelToken::new(),
        )
        .unwrap_err();
        assert!(error.to_string().contains("raise --threshold"), "{error}");
    }
}
