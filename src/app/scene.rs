//! The data the explorer shows, once loaded: every clip with its caption, video, split and
//! thumbnail, its embeddings at each level, and CrossCLR's connectivity of its input features
//! (from the loss's own functions), plus the colours points get.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::analysis::graph::{KnnEdges, knn_edges};
use crate::analysis::rank::UnitRows;
use crate::analysis::{AnalysisError, PointSource, ProjectPoints};
use crate::crossclr::{
    HostMatrix, LossSettings, Mode, batch_connectivity, influential_mask, normalised_scores,
};
use crate::jobs::CancelToken;
use crate::project::{EmbeddingMatrix, ManifestEntry, RunName};

use super::settings::{ColourBy, Level, Modality, Space};

/// Neighbours per clip in the drawn similarity graph.
pub const GRAPH_K: usize = 5;

/// Edges drawn at most; a larger graph is cut (sources in order) and the map says so.
pub const MAX_DRAWN_EDGES: usize = 400_000;

/// One clip as the explorer shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipInfo {
    pub key: String,
    pub video: String,
    pub split: String,
    pub caption: String,
    pub start: Option<f64>,
    pub end: Option<f64>,
    /// The cached thumbnail, when it exists on disk.
    pub thumbnail: Option<PathBuf>,
    /// Where the cache puts its thumbnail (an ingest still running may yet write it).
    pub thumbnail_slot: Option<PathBuf>,
    /// The clip's video, when the project has its file (not for imported features).
    pub video_file: Option<PathBuf>,
}

/// Where a clip's files would be (the scene keeps those that exist).
#[derive(Debug, Clone, Default)]
pub struct ClipFiles {
    pub thumbnail: Option<PathBuf>,
    pub video: Option<PathBuf>,
}

/// CrossCLR's connectivity of one modality over a split treated as one batch (DESIGN.md §4).
#[derive(Debug, Clone, PartialEq)]
pub struct Connectivity {
    pub connectivity: Vec<f64>,
    /// `c / max c` within the clip's split.
    pub normalised: Vec<f64>,
}

#[derive(Debug)]
pub struct Scene {
    pub project_dir: PathBuf,
    pub name: String,
    pub points: ProjectPoints,
    pub clips: Vec<ClipInfo>,
    pub video: Connectivity,
    pub text: Connectivity,
    /// Unit rows of each level's embeddings, for cosine scores.
    pub unit: HashMap<LevelMatrix, EmbeddingMatrix>,
    /// The loss settings of the shown run (else the project's): the pruning view's mode and γ.
    pub loss: LossSettings,
    /// The clips' kNN graph in input space (video features) and, with a run, in joint space.
    pub graph_input: KnnEdges,
    pub graph_joint: Option<KnnEdges>,
    /// Unit rows of the clips' video input features and, with a run, of their joint embeddings:
    /// the inspector's nearest neighbours.
    input_rows: UnitRows,
    joint_rows: Option<UnitRows>,
    /// Each video's first clip.
    first_clip: Vec<usize>,
}

/// The four embedding matrices of a scene.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LevelMatrix {
    Clip,
    Sentence,
    Video,
    Paragraph,
}

fn unit_rows(matrix: &EmbeddingMatrix) -> EmbeddingMatrix {
    let mut data = matrix.data.clone();
    for row in data.chunks_mut(matrix.cols.max(1)) {
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        row.iter_mut().for_each(|v| *v /= norm);
    }
    EmbeddingMatrix {
        rows: matrix.rows,
        cols: matrix.cols,
        data,
    }
}

fn host(matrix: &EmbeddingMatrix, rows: std::ops::Range<usize>) -> HostMatrix {
    let data = matrix.data[rows.start * matrix.cols..rows.end * matrix.cols]
        .iter()
        .map(|&v| f64::from(v))
        .collect();
    HostMatrix::new(rows.len(), matrix.cols, data)
}

/// Connectivity split by split: the whole split is the batch ("scope set").
fn connectivity(points: &ProjectPoints, features: &EmbeddingMatrix) -> Connectivity {
    let mut all = Vec::with_capacity(points.clips());
    let mut normalised = Vec::with_capacity(points.clips());
    for split in &points.splits {
        let c = batch_connectivity(&host(features, split.clips.clone()));
        normalised.extend(normalised_scores(&c, Mode::Paper));
        all.extend(c);
    }
    Connectivity {
        connectivity: all,
        normalised,
    }
}

impl Scene {
    pub fn new(
        project_dir: &Path,
        name: String,
        points: ProjectPoints,
        loss: LossSettings,
        manifest: &[ManifestEntry],
        files_of: impl Fn(&ManifestEntry) -> ClipFiles,
        cancel: &CancelToken,
    ) -> Result<Self, AnalysisError> {
        let by_key: HashMap<&str, &ManifestEntry> =
            manifest.iter().map(|e| (e.clip.as_str(), e)).collect();
        let clips = (0..points.clips())
            .map(|i| {
                let key = &points.clip_keys[i];
                let entry = by_key.get(key.as_str());
                let files = entry.map(|e| files_of(e));
                ClipInfo {
                    key: key.clone(),
                    video: points.video_keys[points.video_of_clip[i]].clone(),
                    split: points.split_of_clip(i).to_string(),
                    caption: entry.and_then(|e| e.caption.clone()).unwrap_or_default(),
                    start: entry.and_then(|e| e.start),
                    end: entry.and_then(|e| e.end),
                    thumbnail: files
                        .as_ref()
                        .and_then(|f| f.thumbnail.clone())
                        .filter(|p| p.is_file()),
                    thumbnail_slot: files.as_ref().and_then(|f| f.thumbnail.clone()),
                    video_file: files.and_then(|f| f.video).filter(|p| p.is_file()),
                }
            })
            .collect();
        let video = connectivity(&points, &points.clip_video_in);
        let text = connectivity(&points, &points.clip_text_in);
        let unit = [
            (LevelMatrix::Clip, &points.clip),
            (LevelMatrix::Sentence, &points.sentence),
            (LevelMatrix::Video, &points.video),
            (LevelMatrix::Paragraph, &points.paragraph),
        ]
        .into_iter()
        .map(|(level, matrix)| (level, unit_rows(matrix)))
        .collect();
        let mut first_clip = vec![0; points.video_keys.len()];
        for (clip, &v) in points.video_of_clip.iter().enumerate().rev() {
            first_clip[v] = clip;
        }
        let graph_input = knn_edges(&points.clip_video_in, GRAPH_K, cancel)?;
        let graph_joint = match points.source {
            PointSource::Run(_) => Some(knn_edges(&points.clip, GRAPH_K, cancel)?),
            PointSource::InputFeatures => None,
        };
        let input_rows = UnitRows::from_matrix(&points.clip_video_in);
        let joint_rows = graph_joint
            .as_ref()
            .map(|_| UnitRows::from_matrix(&points.clip));
        Ok(Self {
            input_rows,
            joint_rows,
            project_dir: project_dir.to_path_buf(),
            name,
            points,
            clips,
            video,
            text,
            unit,
            loss,
            graph_input,
            graph_joint,
            first_clip,
        })
    }

    /// The graph of `space` (the input graph when there is no run).
    pub fn graph(&self, space: Space) -> &KnnEdges {
        match space {
            Space::Joint => self.graph_joint.as_ref().unwrap_or(&self.graph_input),
            Space::Input => &self.graph_input,
        }
    }

    /// The rows of the split clip `clip` belongs to.
    pub fn split_range(&self, clip: usize) -> std::ops::Range<usize> {
        self.points
            .splits
            .iter()
            .find(|s| s.clips.contains(&clip))
            .map_or(clip..clip + 1, |s| s.clips.clone())
    }

    /// The connectivity of `side` (all splits, each computed over its own split).
    pub fn connectivity(&self, side: Modality) -> &Connectivity {
        match side {
            Modality::Video => &self.video,
            Modality::Text => &self.text,
        }
    }

    /// The `k` clips nearest `clip` by cosine in `space` (none in joint space without a run).
    pub fn neighbours(&self, clip: usize, space: Space, k: usize) -> Vec<(usize, f32)> {
        let rows = match space {
            Space::Input => Some(&self.input_rows),
            Space::Joint => self.joint_rows.as_ref(),
        };
        rows.map(|rows| rows.top_k(rows.row(clip), k, |j| j == clip))
            .unwrap_or_default()
    }

    /// The clip of each key.
    pub fn clip_of_key(&self, key: &str) -> Option<usize> {
        self.points.clip_keys.iter().position(|k| k == key)
    }

    /// The run whose head made the points (`None`: input features).
    pub fn run(&self) -> Option<RunName> {
        match &self.points.source {
            PointSource::Run(run) => Some(run.clone()),
            PointSource::InputFeatures => None,
        }
    }

    pub fn trained(&self) -> bool {
        matches!(self.points.source, PointSource::Run(_))
    }

    /// How many points a level draws.
    pub fn count(&self, level: Level) -> usize {
        match level {
            Level::Clip | Level::Sentence => self.clips.len(),
            Level::Video | Level::Paragraph => self.points.video_keys.len(),
            Level::Pairs => 2 * self.clips.len(),
        }
    }

    /// The clip a point of `level` stands for (a video's first clip at the video levels).
    pub fn clip_of_point(&self, level: Level, point: usize) -> usize {
        match level {
            Level::Clip | Level::Sentence => point,
            Level::Pairs => point % self.clips.len().max(1),
            Level::Video | Level::Paragraph => self.first_clip.get(point).copied().unwrap_or(0),
        }
    }

    /// The point of `level` that stands for clip `clip`.
    pub fn point_of_clip(&self, level: Level, clip: usize) -> usize {
        match level {
            Level::Clip | Level::Sentence | Level::Pairs => clip,
            Level::Video | Level::Paragraph => self.points.video_of_clip[clip],
        }
    }

    /// The data a level's layout is computed from: N×D, row-major.
    pub fn layout_input(&self, level: Level) -> EmbeddingMatrix {
        let unit = |m: LevelMatrix| self.unit[&m].clone();
        match level {
            Level::Clip => unit(LevelMatrix::Clip),
            Level::Sentence => unit(LevelMatrix::Sentence),
            Level::Video => unit(LevelMatrix::Video),
            Level::Paragraph => unit(LevelMatrix::Paragraph),
            Level::Pairs => {
                let (clips, sentences) = (unit(LevelMatrix::Clip), unit(LevelMatrix::Sentence));
                let mut data = clips.data;
                data.extend(sentences.data);
                EmbeddingMatrix {
                    rows: clips.rows + sentences.rows,
                    cols: clips.cols,
                    data,
                }
            }
        }
    }

    /// Whether a level can be laid out: pairs need clips and sentences in one space.
    pub fn level_available(&self, level: Level) -> bool {
        level != Level::Pairs
            || (self.trained() && self.points.clip.cols == self.points.sentence.cols)
    }

    /// Each point's colour and what the colours mean.
    pub fn colours(
        &self,
        level: Level,
        by: ColourBy,
        gamma: f64,
        scores: Option<&[f32]>,
    ) -> Colours {
        let n = self.count(level);
        let clip_of = |p: usize| self.clip_of_point(level, p);
        let mut legend = Vec::new();
        let rgba: Vec<[u8; 4]> = match by {
            ColourBy::Split => {
                let mut names: Vec<String> =
                    self.points.splits.iter().map(|s| s.split.clone()).collect();
                names.dedup();
                for (i, name) in names.iter().enumerate() {
                    legend.push((name.clone(), categorical(i)));
                }
                (0..n)
                    .map(|p| {
                        let split = &self.clips[clip_of(p)].split;
                        categorical(names.iter().position(|s| s == split).unwrap_or(0))
                    })
                    .collect()
            }
            ColourBy::Video => (0..n)
                .map(|p| categorical(self.points.video_of_clip[clip_of(p)]))
                .collect(),
            ColourBy::Connectivity => {
                legend.push(("c/max c = 0".into(), ramp(0.0)));
                legend.push(("c/max c = 1".into(), ramp(1.0)));
                (0..n)
                    .map(|p| ramp(self.video.normalised[clip_of(p)].clamp(0.0, 1.0) as f32))
                    .collect()
            }
            ColourBy::Influence => {
                let influential = self.influential(gamma);
                legend.push((
                    format!("influential (c/max c > γ = {gamma:.2})"),
                    INFLUENTIAL,
                ));
                legend.push(("not influential".into(), PLAIN));
                (0..n)
                    .map(|p| {
                        if influential[clip_of(p)] {
                            INFLUENTIAL
                        } else {
                            PLAIN
                        }
                    })
                    .collect()
            }
            ColourBy::SearchScore => match scores {
                Some(scores) => {
                    let (low, high) = scores
                        .iter()
                        .fold((f32::MAX, f32::MIN), |(l, h), &s| (l.min(s), h.max(s)));
                    legend.push((format!("cosine {low:.2}"), ramp(0.0)));
                    legend.push((format!("cosine {high:.2}"), ramp(1.0)));
                    let span = (high - low).max(1e-6);
                    (0..n)
                        .map(|p| ramp((scores[clip_of(p)] - low) / span))
                        .collect()
                }
                None => {
                    legend.push(("no search yet".into(), PLAIN));
                    vec![PLAIN; n]
                }
            },
        };
        Colours { rgba, legend }
    }

    /// Influential clips of the video modality at `gamma`, split by split.
    pub fn influential(&self, gamma: f64) -> Vec<bool> {
        let mut mask = Vec::with_capacity(self.clips.len());
        for split in &self.points.splits {
            mask.extend(influential_mask(
                &self.video.connectivity[split.clips.clone()],
                gamma,
                Mode::Paper,
            ));
        }
        mask
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Colours {
    pub rgba: Vec<[u8; 4]>,
    pub legend: Vec<(String, [u8; 4])>,
}

pub const PLAIN: [u8; 4] = [150, 160, 175, 255];
pub const INFLUENTIAL: [u8; 4] = [235, 90, 60, 255];

/// Tableau-like categorical colours, distinguishable on a dark background.
pub fn categorical(i: usize) -> [u8; 4] {
    const PALETTE: [[u8; 4]; 10] = [
        [78, 161, 230, 255],
        [242, 142, 43, 255],
        [89, 200, 120, 255],
        [225, 87, 89, 255],
        [176, 122, 220, 255],
        [237, 201, 72, 255],
        [255, 157, 167, 255],
        [118, 183, 178, 255],
        [190, 150, 110, 255],
        [200, 200, 200, 255],
    ];
    PALETTE[i % PALETTE.len()]
}

/// A perceptually even blue → yellow ramp (viridis-like) for values in [0, 1].
pub fn ramp(t: f32) -> [u8; 4] {
    const STOPS: [[f32; 3]; 5] = [
        [68.0, 1.0, 84.0],
        [59.0, 82.0, 139.0],
        [33.0, 145.0, 140.0],
        [94.0, 201.0, 98.0],
        [253.0, 231.0, 37.0],
    ];
    let t = t.clamp(0.0, 1.0) * (STOPS.len() - 1) as f32;
    let i = (t.floor() as usize).min(STOPS.len() - 2);
    let f = t - i as f32;
    let c = |k: usize| (STOPS[i][k] + (STOPS[i + 1][k] - STOPS[i][k]) * f).round() as u8;
    [c(0), c(1), c(2), 255]
}
