//! Connectivity, influence and sample weights: the parts of CrossCLR computed from the *input*
//! features. They are constants of the loss (no gradient flows through them), so they are computed
//! on the host in f64, where pruning decisions match the f64 reference exactly.

use super::host::dot;
use super::{HostMatrix, Mode};

/// In-batch connectivity `c_i = (1/B) Σ_{j≠i} x_i·x_j` (DESIGN.md §4), in O(B·D):
/// `Σ_{j≠i} x_i·x_j = x_i·(Σ_j x_j) − ‖x_i‖²`.
pub fn batch_connectivity(features: &HostMatrix) -> Vec<f64> {
    let total = features.column_sums(features.rows());
    let count = features.rows() as f64;
    (0..features.rows())
        .map(|i| {
            let row = features.row(i);
            (dot(row, &total) - dot(row, row)) / count
        })
        .collect()
}

/// Connectivity against the first `filled` queue slots (the ones holding data): for every batch
/// item `x_i·(Σ_k q_k)/F`, and for every filled slot `q_k·(Σ_l q_l)/F` (own slot included, as in
/// the released code).
pub fn queue_connectivity(
    batch: &HostMatrix,
    slots: &HostMatrix,
    filled: usize,
) -> (Vec<f64>, Vec<f64>) {
    let filled = filled.min(slots.rows());
    let total = slots.column_sums(filled);
    let count = filled.max(1) as f64;
    let of_batch = (0..batch.rows())
        .map(|i| dot(batch.row(i), &total) / count)
        .collect();
    let of_slots = (0..filled)
        .map(|k| dot(slots.row(k), &total) / count)
        .collect();
    (of_batch, of_slots)
}

fn max_of(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

/// The score compared with γ: `c / max(c)`. In paper mode an all-non-positive connectivity has no
/// meaningful ranking, and every score is 0; official mode divides as written, whatever the sign.
pub fn normalised_scores(connectivity: &[f64], mode: Mode) -> Vec<f64> {
    let top = max_of(connectivity);
    match mode {
        Mode::Paper if !(top.is_finite() && top > 0.0) => vec![0.0; connectivity.len()],
        _ => connectivity.iter().map(|c| c / top).collect(),
    }
}

/// The influential set `{j : c_j / max(c) > γ}`, empty in paper mode when `max(c) ≤ 0`.
pub fn influential_mask(connectivity: &[f64], gamma: f64, mode: Mode) -> Vec<bool> {
    let top = max_of(connectivity);
    if mode == Mode::Paper && !(top.is_finite() && top > 0.0) {
        return vec![false; connectivity.len()];
    }
    connectivity.iter().map(|c| c / top > gamma).collect()
}

/// Official mode keeps an intra-modal negative only when `c/max(c) < γ` (a score equal to γ is
/// neither kept nor counted influential, as in the released code).
pub(crate) fn official_kept_intra(connectivity: &[f64], gamma: f64) -> Vec<bool> {
    let top = max_of(connectivity);
    connectivity.iter().map(|c| c / top < gamma).collect()
}

/// Sample weights `ω = softmax(c / Σc / κ)`. Paper mode computes them stably and falls back to
/// uniform weights when `Σc ≤ 0`; official mode computes `exp(w/κ) / Σ exp(w/κ)` literally in f64,
/// as the released code does, overflow included.
pub fn sample_weights(connectivity: &[f64], kappa: f64, mode: Mode) -> Vec<f64> {
    let n = connectivity.len();
    if n == 0 {
        return Vec::new();
    }
    let total: f64 = connectivity.iter().sum();
    let scaled: Vec<f64> = connectivity.iter().map(|c| c / total / kappa).collect();
    match mode {
        Mode::Paper => {
            if !(total.is_finite() && total > 0.0) {
                return vec![1.0 / n as f64; n];
            }
            let top = max_of(&scaled);
            let exps: Vec<f64> = scaled.iter().map(|z| (z - top).exp()).collect();
            let sum: f64 = exps.iter().sum();
            exps.iter().map(|e| e / sum).collect()
        }
        Mode::Official => {
            let exps: Vec<f64> = scaled.iter().map(|z| z.exp()).collect();
            let sum: f64 = exps.iter().sum();
            exps.iter().map(|e| e / sum).collect()
        }
    }
}

/// For every anchor, the `k` samples whose input features are most similar to its own (by dot
/// product), largest first, ties to the lower index. Paper mode never picks the anchor itself;
/// official mode ranks the row of `x xᵀ` with its diagonal zeroed, as the released code does, so
/// the anchor can be picked when all its other similarities are negative.
pub(crate) fn nearest_by_input(features: &HostMatrix, k: usize, mode: Mode) -> Vec<Vec<usize>> {
    let gram = features.gram();
    (0..gram.rows())
        .map(|i| extra_positives_of(gram.row(i), i, k, mode))
        .collect()
}

/// The extra positives of one anchor (multiple positives) from its row of input dot products
/// `x_anchor · x_j` over the batch: the rule of [`nearest_by_input`] for a single row, so that
/// one anchor of a large set needs no Gram matrix.
pub fn extra_positives_of(dots: &[f64], anchor: usize, k: usize, mode: Mode) -> Vec<usize> {
    let mut row: Vec<(usize, f64)> = dots.iter().copied().enumerate().collect();
    match mode {
        Mode::Paper => row.retain(|&(j, _)| j != anchor),
        Mode::Official => row[anchor].1 = 0.0,
    }
    row.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    row.iter().take(k).map(|&(j, _)| j).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(rows: &[&[f64]]) -> HostMatrix {
        let cols = rows[0].len();
        HostMatrix::new(
            rows.len(),
            cols,
            rows.iter().flat_map(|r| r.iter().copied()).collect(),
        )
    }

    #[test]
    fn batch_connectivity_is_mean_of_off_diagonal_dots() {
        let x = matrix(&[&[1.0, 0.0], &[1.0, 1.0], &[0.0, 2.0]]);
        // dots: x0·x1 = 1, x0·x2 = 0, x1·x2 = 2
        assert_eq!(
            batch_connectivity(&x),
            vec![1.0 / 3.0, 3.0 / 3.0, 2.0 / 3.0]
        );
    }

    #[test]
    fn paper_influence_is_empty_when_connectivity_is_not_positive() {
        assert_eq!(
            influential_mask(&[-1.0, -0.5], 0.1, Mode::Paper),
            vec![false, false]
        );
        assert_eq!(
            influential_mask(&[1.0, 0.95, 0.5], 0.9, Mode::Paper),
            vec![true, true, false]
        );
        assert_eq!(
            influential_mask(&[1.0, 0.95], 1.0, Mode::Paper),
            vec![false, false]
        );
    }

    #[test]
    fn paper_weights_are_uniform_when_sum_is_not_positive() {
        assert_eq!(
            sample_weights(&[1.0, -2.0], 0.01, Mode::Paper),
            vec![0.5, 0.5]
        );
        let w = sample_weights(&[1.0, 3.0], 1.0, Mode::Paper);
        let expected_first = (0.25f64).exp() / ((0.25f64).exp() + (0.75f64).exp());
        assert!((w[0] - expected_first).abs() < 1e-15);
    }

    #[test]
    fn official_weights_overflow_as_written() {
        let w = sample_weights(&[1.0, 1e-9], 1e-3, Mode::Official);
        assert!(
            w[0].is_nan(),
            "exp(1000) overflows f64 and inf/inf is NaN: {w:?}"
        );
        let w = sample_weights(&[1.0, 1e-9], 1e-3, Mode::Paper);
        assert_eq!(w, vec![1.0, 0.0]);
    }

    #[test]
    fn nearest_by_input_excludes_self_in_paper_mode() {
        let x = matrix(&[&[1.0, 0.0], &[-1.0, 0.0], &[-2.0, 0.0]]);
        // row 0: dots to 1 and 2 are -1 and -2; official ranks its zeroed diagonal first.
        assert_eq!(nearest_by_input(&x, 1, Mode::Paper)[0], vec![1]);
        assert_eq!(nearest_by_input(&x, 1, Mode::Official)[0], vec![0]);
        assert_eq!(nearest_by_input(&x, 2, Mode::Paper)[1], vec![2, 0]);
    }
}
