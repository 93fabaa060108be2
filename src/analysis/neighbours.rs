//! The nearest clips of one clip, in input space (the encoders' pooled features) or in a run's
//! joint space: what the explorer's inspector lists beside a selected sample.

use serde::Serialize;

use super::AnalysisError;
use super::rank::UnitRows;
use super::samples::{Level, Modality, Samples, Space, joint_embeddings, manifest_of};
use crate::jobs::CancelToken;
use crate::project::{Project, RunName};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Neighbour {
    pub key: String,
    pub video: String,
    pub caption: Option<String>,
    pub split: String,
    /// Cosine similarity to the clip asked about.
    pub score: f32,
}

/// `crossclr neighbours --json` prints this object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NeighbourReport {
    pub key: String,
    pub space: Space,
    pub modality: Modality,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    pub results: Vec<Neighbour>,
}

/// The `top` clips of the project (every split) nearest to clip `key`, itself excluded, by the
/// cosine of `modality`'s rows in `space` (joint space needs `run`).
pub fn neighbours(
    project: &Project,
    run: Option<&RunName>,
    key: &str,
    space: Space,
    modality: Modality,
    top: usize,
    cancel: &CancelToken,
) -> Result<NeighbourReport, AnalysisError> {
    let samples = Samples::load(project, &[], Level::Clip, cancel)?;
    let anchor = samples.index_of(key)?;
    let rows = match space {
        Space::Input => UnitRows::from_matrix(samples.input(modality)),
        Space::Joint => {
            let run = run.ok_or_else(|| {
                AnalysisError::Settings("joint space needs a trained run: the project has none (train one, or use --space input)".into())
            })?;
            let (video, text) = joint_embeddings(project, run, &samples, cancel)?;
            UnitRows::from_matrix(match modality {
                Modality::Video => &video,
                Modality::Text => &text,
            })
        }
    };
    let entries = project.read_manifest()?.entries;
    let manifest = manifest_of(&entries, &samples.keys);
    let results = rows
        .top_k(rows.row(anchor), top, |i| i == anchor)
        .into_iter()
        .map(|(i, score)| Neighbour {
            key: samples.keys[i].clone(),
            video: samples.videos[i].clone(),
            caption: manifest[i].and_then(|e| e.caption.clone()),
            split: samples.splits[i].clone(),
            score,
        })
        .collect();
    Ok(NeighbourReport {
        key: key.to_string(),
        space,
        modality,
        run: match space {
            Space::Joint => run.map(|r| r.to_string()),
            Space::Input => None,
        },
        results,
    })
}
