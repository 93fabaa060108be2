//! What the explorer remembers between sessions (eframe storage): the view's choices, not the
//! data. Every field has a default, so settings written by an older version still load.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use crate::analysis::samples::{Modality, Space};

/// Which embeddings the map lays out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Level {
    /// One point per clip (its video side).
    #[default]
    Clip,
    /// One point per caption (its text side).
    Sentence,
    /// One point per video.
    Video,
    /// One point per paragraph (a video's captions).
    Paragraph,
    /// Clips and their captions laid out together, each pair joined by a line.
    Pairs,
}

impl Level {
    pub const ALL: [Level; 5] = [
        Level::Clip,
        Level::Sentence,
        Level::Video,
        Level::Paragraph,
        Level::Pairs,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Level::Clip => "clips",
            Level::Sentence => "sentences",
            Level::Video => "videos",
            Level::Paragraph => "paragraphs",
            Level::Pairs => "clip–sentence pairs",
        }
    }
}

/// What a point's colour says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ColourBy {
    #[default]
    Split,
    /// The video a clip belongs to (a run of clips over one recording).
    Video,
    /// CrossCLR's normalised connectivity c/max c of the clip's video features.
    Connectivity,
    /// Influential (c/max c > γ) or not, per DESIGN.md §4.
    Influence,
    /// Cosine to the last search's query.
    SearchScore,
}

impl ColourBy {
    pub const ALL: [ColourBy; 5] = [
        ColourBy::Split,
        ColourBy::Video,
        ColourBy::Connectivity,
        ColourBy::Influence,
        ColourBy::SearchScore,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ColourBy::Split => "split",
            ColourBy::Video => "video",
            ColourBy::Connectivity => "connectivity",
            ColourBy::Influence => "influence",
            ColourBy::SearchScore => "search score",
        }
    }
}

/// Where the clips sit when the graph is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum GraphLayout {
    /// At their t-SNE map positions: the graph drawn over the embedding's geometry.
    #[default]
    Map,
    /// Placed by the graph's edges alone (ForceAtlas2): its communities, bridges and hubs.
    Force,
}

/// Where the pruning view takes the anchor's batch from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum PruningScope {
    /// The anchor's whole split as one batch (the paper's Fig. 4), recomputed at once.
    #[default]
    Split,
    /// The batch the run's training loop formed for the anchor at an epoch, queue included.
    TrainingBatch,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub level: Level,
    pub colour_by: ColourBy,
    /// CrossCLR's pruning threshold for the influence colours and the pruning view.
    pub gamma: f64,
    pub show_edges: bool,
    pub graph_space: Space,
    pub graph_layout: GraphLayout,
    /// Show the selected anchor's positive, kept and pruned negatives.
    pub show_pruning: bool,
    pub pruning_side: Modality,
    pub pruning_scope: PruningScope,
    /// The training batch scope's epoch (from 1).
    pub pruning_epoch: usize,
    /// Disc radius in points.
    pub point_radius: f32,
    /// Projects opened before, most recent first.
    pub recent_projects: Vec<PathBuf>,
    pub show_inspector: bool,
    /// The Train panel's window is open.
    pub show_train: bool,
    /// While a run trains, the map is laid out again under each new best checkpoint.
    pub map_follows_epochs: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            level: Level::default(),
            colour_by: ColourBy::default(),
            gamma: crate::crossclr::CrossClrConfig::PAPER.gamma,
            show_edges: true,
            graph_space: Space::Input,
            graph_layout: GraphLayout::default(),
            show_pruning: true,
            pruning_side: Modality::Video,
            pruning_scope: PruningScope::default(),
            pruning_epoch: 1,
            point_radius: 4.0,
            recent_projects: Vec::new(),
            show_inspector: true,
            show_train: false,
            map_follows_epochs: true,
        }
    }
}

impl Settings {
    /// Puts `project` first in the recent list (at most ten kept).
    pub fn remember(&mut self, project: PathBuf) {
        self.recent_projects.retain(|p| p != &project);
        self.recent_projects.insert(0, project);
        self.recent_projects.truncate(10);
    }
}
