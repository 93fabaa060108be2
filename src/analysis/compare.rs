//! Two runs of one project side by side, on one split: their retrieval tables, how each clip's
//! rank of its own sentence moved from the first run to the second, and how much their joint
//! spaces agree about each clip's nearest clips (`crossclr compare`, the app's compare view).

use candle_core::Device;
use serde::Serialize;

use super::AnalysisError;
use super::rank::{UnitRows, dot};
use super::samples::manifest_of;
use crate::eval::{TiePolicy, block_ranks};
use crate::jobs::CancelToken;
use crate::project::{Project, RunEmbeddings, RunName};
use crate::train::{RetrievalReport, evaluate_run};

/// Neighbours compared per clip.
pub const OVERLAP_K: usize = 10;
/// Clips listed per direction of the largest rank changes.
pub const LARGEST_MOVES: usize = 10;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComparedRun {
    pub run: String,
    /// The checkpoint's epoch (1-based).
    pub epoch: usize,
    pub report: RetrievalReport,
}

/// One clip under both runs. Ranks are 1-based ranks of the clip's own sentence among the split's
/// sentences (clip → sentence, ties counted against it, as `eval` counts them).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClipChange {
    pub key: String,
    pub caption: Option<String>,
    pub rank_first: usize,
    pub rank_second: usize,
    /// Of the clip's [`OVERLAP_K`] nearest clips in each run's joint space, how many are the same.
    pub shared_neighbours: usize,
}

impl ClipChange {
    /// Positive when the second run ranks the clip's sentence higher.
    pub fn gain(&self) -> i64 {
        self.rank_first as i64 - self.rank_second as i64
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RankSummary {
    /// Clips whose sentence the second run ranks higher, lower, the same.
    pub better: usize,
    pub worse: usize,
    pub same: usize,
    /// Clips retrieved first (R@1) by one run and not the other.
    pub gained_top1: usize,
    pub lost_top1: usize,
    /// The largest gains and losses, largest first.
    pub largest_gains: Vec<ClipChange>,
    pub largest_losses: Vec<ClipChange>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OverlapSummary {
    pub k: usize,
    /// Mean share of shared neighbours over the split's clips, in [0, 1].
    pub mean: f64,
    /// `histogram[s]`: clips sharing exactly `s` of their `k` nearest clips.
    pub histogram: Vec<usize>,
}

/// `crossclr compare --json` prints this object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunComparison {
    pub split: String,
    pub clips: usize,
    pub videos: usize,
    pub first: ComparedRun,
    pub second: ComparedRun,
    pub ranks: RankSummary,
    pub overlap: OverlapSummary,
    /// Every clip of the split, in the split's order.
    pub per_clip: Vec<ClipChange>,
}

/// Compares runs `first` and `second` on `split` (default: the report split, else the val split).
/// Both are embedded afresh from their best checkpoints; nothing is written.
pub fn compare_runs(
    project: &Project,
    first: &RunName,
    second: &RunName,
    split: Option<&str>,
    cancel: &CancelToken,
) -> Result<RunComparison, AnalysisError> {
    if first == second {
        return Err(AnalysisError::Settings(format!(
            "both runs are `{first}`: name two different runs of the project"
        )));
    }
    let device = Device::Cpu;
    let a = evaluate_run(project, first, split, &device)?;
    if cancel.is_cancelled() {
        return Err(AnalysisError::Cancelled);
    }
    let b = evaluate_run(project, second, Some(&a.split), &device)?;
    if cancel.is_cancelled() {
        return Err(AnalysisError::Cancelled);
    }
    let entries = project.read_manifest()?.entries;
    let manifest = manifest_of(&entries, &a.embeddings.clip_keys);
    let ranks_a = sentence_ranks(&a.embeddings)?;
    let ranks_b = sentence_ranks(&b.embeddings)?;
    let neighbours_a = nearest_clips(&a.embeddings, OVERLAP_K, cancel)?;
    let neighbours_b = nearest_clips(&b.embeddings, OVERLAP_K, cancel)?;
    let per_clip: Vec<ClipChange> = a
        .embeddings
        .clip_keys
        .iter()
        .enumerate()
        .map(|(i, key)| ClipChange {
            key: key.clone(),
            caption: manifest[i].and_then(|e| e.caption.clone()),
            rank_first: ranks_a[i] + 1,
            rank_second: ranks_b[i] + 1,
            shared_neighbours: neighbours_a[i]
                .iter()
                .filter(|n| neighbours_b[i].contains(n))
                .count(),
        })
        .collect();
    let k = OVERLAP_K.min(per_clip.len().saturating_sub(1));
    let mut histogram = vec![0; k + 1];
    for change in &per_clip {
        histogram[change.shared_neighbours.min(k)] += 1;
    }
    let overlap = OverlapSummary {
        k,
        mean: if k == 0 {
            1.0
        } else {
            per_clip
                .iter()
                .map(|c| c.shared_neighbours as f64 / k as f64)
                .sum::<f64>()
                / per_clip.len() as f64
        },
        histogram,
    };
    Ok(RunComparison {
        split: a.split.clone(),
        clips: a.clips,
        videos: a.videos,
        ranks: rank_summary(&per_clip),
        overlap,
        first: ComparedRun {
            run: first.to_string(),
            epoch: a.epoch,
            report: a.report,
        },
        second: ComparedRun {
            run: second.to_string(),
            epoch: b.epoch,
            report: b.report,
        },
        per_clip,
    })
}

fn rank_summary(per_clip: &[ClipChange]) -> RankSummary {
    let count = |f: &dyn Fn(&ClipChange) -> bool| per_clip.iter().filter(|c| f(c)).count();
    // Stable sorts over the split's order: equal gains keep the clips' order.
    let mut gains: Vec<&ClipChange> = per_clip.iter().filter(|c| c.gain() > 0).collect();
    gains.sort_by_key(|c| std::cmp::Reverse(c.gain()));
    let mut losses: Vec<&ClipChange> = per_clip.iter().filter(|c| c.gain() < 0).collect();
    losses.sort_by_key(|c| c.gain());
    let first = |list: Vec<&ClipChange>| list.into_iter().take(LARGEST_MOVES).cloned().collect();
    RankSummary {
        better: count(&|c| c.gain() > 0),
        worse: count(&|c| c.gain() < 0),
        same: count(&|c| c.gain() == 0),
        gained_top1: count(&|c| c.rank_second == 1 && c.rank_first > 1),
        lost_top1: count(&|c| c.rank_first == 1 && c.rank_second > 1),
        largest_gains: first(gains),
        largest_losses: first(losses),
    }
}

/// Each clip's 0-based rank of its own sentence among all sentences, ties counted against it:
/// `eval`'s ranking, over blocks of the clip × sentence cosines.
fn sentence_ranks(embeddings: &RunEmbeddings) -> Result<Vec<usize>, AnalysisError> {
    const BLOCK: usize = 256;
    let clips = UnitRows::from_matrix(&embeddings.clip);
    let sentences = UnitRows::from_matrix(&embeddings.sentence);
    let cols = sentences.rows();
    let mut ranks = Vec::with_capacity(clips.rows());
    for start in (0..clips.rows()).step_by(BLOCK) {
        let rows = BLOCK.min(clips.rows() - start);
        let sentences = &sentences;
        let scores: Vec<f32> = (start..start + rows)
            .flat_map(|i| {
                let query = clips.row(i);
                (0..cols).map(move |j| dot(query, sentences.row(j)))
            })
            .collect();
        let block =
            block_ranks(&scores, rows, cols, start, TiePolicy::Pessimistic).map_err(|e| {
                AnalysisError::Settings(format!("run `{}`'s embeddings: {e}", embeddings.run))
            })?;
        ranks.extend(block);
    }
    Ok(ranks)
}

/// Each clip's `k` nearest other clips by the cosine of its clip embedding.
fn nearest_clips(
    embeddings: &RunEmbeddings,
    k: usize,
    cancel: &CancelToken,
) -> Result<Vec<Vec<usize>>, AnalysisError> {
    let clips = UnitRows::from_matrix(&embeddings.clip);
    let mut lists = Vec::with_capacity(clips.rows());
    for i in 0..clips.rows() {
        if i % 256 == 0 && cancel.is_cancelled() {
            return Err(AnalysisError::Cancelled);
        }
        lists.push(
            clips
                .top_k(clips.row(i), k, |j| j == i)
                .into_iter()
                .map(|(j, _)| j)
                .collect(),
        );
    }
    Ok(lists)
}

/// `moving` turned, flipped if that fits better, scaled and shifted onto `reference`: the turn
/// and flip of the least-squares (Procrustes) fit, the scale that gives it the reference's spread.
/// Two t-SNE maps of the same points are each unique only up to such a transform, so the second
/// is shown in the first's frame and a point's place on one map can be looked for in the same
/// place on the other. The least-squares scale is not used: it shrinks a map that agrees only
/// loosely with the reference towards its centre.
pub fn align_layout(reference: &[[f32; 2]], moving: &[[f32; 2]]) -> Vec<[f32; 2]> {
    let n = reference.len().min(moving.len());
    if n == 0 {
        return moving.to_vec();
    }
    let mean = |points: &[[f32; 2]]| {
        let (x, y) = points[..n].iter().fold((0.0f64, 0.0f64), |(x, y), p| {
            (x + f64::from(p[0]), y + f64::from(p[1]))
        });
        (x / n as f64, y / n as f64)
    };
    let (rx, ry) = mean(reference);
    let (mx, my) = mean(moving);
    // As complex numbers: w ≈ a·z (a turn and a scale) or w ≈ a·conj(z) (with a flip).
    let (mut turn, mut flip) = ((0.0f64, 0.0f64), (0.0f64, 0.0f64));
    let (mut norm, mut reference_norm) = (0.0f64, 0.0f64);
    for (w, z) in reference[..n].iter().zip(&moving[..n]) {
        let (wx, wy) = (f64::from(w[0]) - rx, f64::from(w[1]) - ry);
        let (zx, zy) = (f64::from(z[0]) - mx, f64::from(z[1]) - my);
        // conj(z)·w and z·w.
        turn.0 += zx * wx + zy * wy;
        turn.1 += zx * wy - zy * wx;
        flip.0 += zx * wx - zy * wy;
        flip.1 += zx * wy + zy * wx;
        norm += zx * zx + zy * zy;
        reference_norm += wx * wx + wy * wy;
    }
    if norm <= 0.0 {
        return vec![[rx as f32, ry as f32]; moving.len()];
    }
    let size = |(a, b): (f64, f64)| a * a + b * b;
    let flipped = size(flip) > size(turn);
    let (ax, ay) = if flipped { flip } else { turn };
    let length = (ax * ax + ay * ay).sqrt();
    let scale = (reference_norm / norm).sqrt();
    let (ax, ay) = if length > 0.0 {
        (scale * ax / length, scale * ay / length)
    } else {
        (scale, 0.0)
    };
    moving
        .iter()
        .map(|p| {
            let (zx, zy) = (f64::from(p[0]) - mx, f64::from(p[1]) - my);
            let zy = if flipped { -zy } else { zy };
            [
                (ax * zx - ay * zy + rx) as f32,
                (ax * zy + ay * zx + ry) as f32,
            ]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(key: &str, first: usize, second: usize) -> ClipChange {
        ClipChange {
            key: key.into(),
            caption: None,
            rank_first: first,
            rank_second: second,
            shared_neighbours: 0,
        }
    }

    #[test]
    fn rank_summary_counts_moves_and_lists_the_largest_first() {
        let clips = [
            change("a", 5, 1),
            change("b", 1, 3),
            change("c", 2, 2),
            change("d", 9, 2),
            change("e", 1, 1),
        ];
        let summary = rank_summary(&clips);
        assert_eq!((summary.better, summary.worse, summary.same), (2, 1, 2));
        assert_eq!((summary.gained_top1, summary.lost_top1), (1, 1));
        let keys = |list: &[ClipChange]| list.iter().map(|c| c.key.clone()).collect::<Vec<_>>();
        assert_eq!(keys(&summary.largest_gains), ["d", "a"]);
        assert_eq!(keys(&summary.largest_losses), ["b"]);
    }

    #[test]
    fn sentence_ranks_count_ties_against_the_clip() {
        let matrix = |data: Vec<f32>| crate::project::EmbeddingMatrix {
            rows: 3,
            cols: 2,
            data,
        };
        let embeddings = RunEmbeddings {
            run: "r".into(),
            split: "val".into(),
            epoch: 1,
            clip_keys: vec!["a".into(), "b".into(), "c".into()],
            video_keys: vec!["v".into()],
            clip: matrix(vec![1.0, 0.0, 0.0, 1.0, 1.0, 0.0]),
            sentence: matrix(vec![1.0, 0.0, 1.0, 0.0, 0.0, 1.0]),
            video: crate::project::EmbeddingMatrix {
                rows: 1,
                cols: 2,
                data: vec![1.0, 0.0],
            },
            paragraph: crate::project::EmbeddingMatrix {
                rows: 1,
                cols: 2,
                data: vec![1.0, 0.0],
            },
        };
        // Clip a ties with sentence b (rank 1); clip b is orthogonal to its own sentence but
        // matches sentence c (rank 2); clip c's sentence is orthogonal to it (rank 2: a, b beat it).
        assert_eq!(sentence_ranks(&embeddings).unwrap(), [1, 2, 2]);
    }

    #[test]
    fn a_turned_flipped_scaled_and_shifted_layout_is_fitted_back_onto_the_first_at_its_spread() {
        let reference: Vec<[f32; 2]> = (0..40)
            .map(|i| {
                let t = i as f32 * 0.37;
                [t.cos() * (1.0 + i as f32 * 0.05), t.sin() * 2.0 - 0.3 * t]
            })
            .collect();
        for flip in [false, true] {
            let (c, s) = (0.6f32.cos(), 0.6f32.sin());
            let moving: Vec<[f32; 2]> = reference
                .iter()
                .map(|p| {
                    let y = if flip { -p[1] } else { p[1] };
                    [
                        3.0 * (c * p[0] - s * y) + 10.0,
                        3.0 * (s * p[0] + c * y) - 4.0,
                    ]
                })
                .collect();
            let aligned = align_layout(&reference, &moving);
            for (a, r) in aligned.iter().zip(&reference) {
                assert!(
                    (a[0] - r[0]).abs() < 1e-4 && (a[1] - r[1]).abs() < 1e-4,
                    "flip {flip}: {a:?} vs {r:?}"
                );
            }
        }
        // A layout unrelated to the reference keeps the reference's spread, not a shrunk copy.
        let unrelated: Vec<[f32; 2]> = (0..40)
            .map(|i| [((i * 7) % 11) as f32, ((i * 5) % 13) as f32 * 0.1])
            .collect();
        let fitted = align_layout(&reference, &unrelated);
        let spread = |xs: &[[f32; 2]]| -> f32 {
            let n = xs.len() as f32;
            let (mx, my) = xs
                .iter()
                .fold((0.0, 0.0), |(x, y), p| (x + p[0] / n, y + p[1] / n));
            xs.iter()
                .map(|p| (p[0] - mx).powi(2) + (p[1] - my).powi(2))
                .sum::<f32>()
                .sqrt()
        };
        assert!((spread(&fitted) - spread(&reference)).abs() < 1e-3 * spread(&reference));
    }
}
