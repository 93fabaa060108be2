//! Every clip of a project as points to look at: its joint embeddings under a run's head at all
//! four levels, or — before any training — its pooled input features (pooled as training pools
//! them, `samples`), so that a project can be looked at the moment it has features. The map, the
//! search and the inspector start here.

use std::ops::Range;

use super::AnalysisError;
use super::samples::{Level, Samples, embed_splits, resolve_splits};
use crate::jobs::CancelToken;
use crate::project::{EmbeddingMatrix, Project, RunName};

/// The clips and videos of one split, as ranges into [`ProjectPoints`]' rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitRange {
    pub split: String,
    pub clips: Range<usize>,
    pub videos: Range<usize>,
}

/// Where a project's points come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PointSource {
    /// A trained run's head: clips share the joint space with sentences, videos with paragraphs.
    Run(RunName),
    /// The pooled input features: clips are mean frames, sentences mean tokens (two different
    /// spaces), videos and paragraphs the means over their whole frames and tokens.
    InputFeatures,
}

/// Every clip and video of a project, all splits in train/val/test order.
#[derive(Debug, Clone)]
pub struct ProjectPoints {
    pub source: PointSource,
    pub splits: Vec<SplitRange>,
    pub clip_keys: Vec<String>,
    pub video_keys: Vec<String>,
    /// The video (row of `video`) each clip belongs to.
    pub video_of_clip: Vec<usize>,
    pub clip: EmbeddingMatrix,
    pub sentence: EmbeddingMatrix,
    pub video: EmbeddingMatrix,
    pub paragraph: EmbeddingMatrix,
    /// The pooled input features CrossCLR measures proximity with (whatever the source).
    pub clip_video_in: EmbeddingMatrix,
    pub clip_text_in: EmbeddingMatrix,
}

impl ProjectPoints {
    pub fn clips(&self) -> usize {
        self.clip_keys.len()
    }

    /// The split of clip `i`.
    pub fn split_of_clip(&self, i: usize) -> &str {
        self.splits
            .iter()
            .find(|s| s.clips.contains(&i))
            .map_or("", |s| s.split.as_str())
    }
}

/// Where each split's rows start and end in `splits` (samples in split order).
fn ranges(names: &[String], split_of_row: &[String]) -> Vec<Range<usize>> {
    names
        .iter()
        .map(|name| {
            let start = split_of_row.iter().position(|s| s == name).unwrap_or(0);
            let len = split_of_row.iter().filter(|s| *s == name).count();
            start..start + len
        })
        .collect()
}

/// Embeds every clip of `project` with `run`'s head, or takes the pooled input features when
/// `run` is `None`; stops between splits when `cancel` is set.
pub fn project_points(
    project: &Project,
    run: Option<&RunName>,
    cancel: &CancelToken,
) -> Result<ProjectPoints, AnalysisError> {
    let splits = resolve_splits(project, &[])?;
    let clips = Samples::load(project, &splits, Level::Clip, cancel)?;
    let videos = Samples::load(project, &splits, Level::Video, cancel)?;
    let clip_ranges = ranges(&splits, &clips.splits);
    let video_ranges = ranges(&splits, &videos.splits);
    // Video keys are unique within a split: a clip's video is looked up in its own split.
    let video_index: std::collections::HashMap<(&str, &str), usize> = (0..videos.len())
        .map(|v| ((videos.splits[v].as_str(), videos.keys[v].as_str()), v))
        .collect();
    let video_of_clip = (0..clips.len())
        .map(|i| video_index[&(clips.splits[i].as_str(), clips.videos[i].as_str())])
        .collect();
    let (source, clip, sentence, video, paragraph) = match run {
        Some(run) => {
            let joint = embed_splits(project, run, &splits, cancel)?;
            (
                PointSource::Run(run.clone()),
                joint.clip,
                joint.sentence,
                joint.video,
                joint.paragraph,
            )
        }
        None => (
            PointSource::InputFeatures,
            clips.video_in.clone(),
            clips.text_in.clone(),
            videos.video_in,
            videos.text_in,
        ),
    };
    Ok(ProjectPoints {
        source,
        splits: splits
            .iter()
            .zip(clip_ranges.into_iter().zip(video_ranges))
            .map(|(split, (clips, videos))| SplitRange {
                split: split.clone(),
                clips,
                videos,
            })
            .collect(),
        clip_keys: clips.keys,
        video_keys: videos.keys,
        video_of_clip,
        clip,
        sentence,
        video,
        paragraph,
        clip_video_in: clips.video_in,
        clip_text_in: clips.text_in,
    })
}
