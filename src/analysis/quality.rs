//! How faithful a layout is to its input: the figures the t-SNE benchmark reports beside
//! openTSNE's, computed the same way for both.

use super::knn::{self, KnnGraph};

/// The mean fraction of each point's `k` nearest input neighbours that are also among its `k`
/// nearest in the layout (`layout` is N×2, row-major; `input` has a list for every point).
pub fn neighbour_preservation(input: &KnnGraph, layout: &[f32], k: usize) -> f64 {
    let all: Vec<u32> = (0..input.len() as u32).collect();
    sampled_neighbour_preservation(&all, input, layout, k)
}

/// [`neighbour_preservation`] over the points `queries` only; row r of `input` is the list of
/// `queries[r]` (see [`knn::exact_for`]).
pub fn sampled_neighbour_preservation(
    queries: &[u32],
    input: &KnnGraph,
    layout: &[f32],
    k: usize,
) -> f64 {
    assert_eq!(input.len(), queries.len(), "one input list per query");
    assert!(
        k <= input.k(),
        "the input graph holds {} neighbours, not {k}",
        input.k()
    );
    let planar = layout_knn(layout, k);
    let kept: usize = queries
        .iter()
        .enumerate()
        .map(|(r, &i)| {
            let near = &input.neighbours(r)[..k];
            planar
                .neighbours(i as usize)
                .iter()
                .filter(|j| near.contains(j))
                .count()
        })
        .sum();
    kept as f64 / (queries.len() * k) as f64
}

/// The fraction of points whose label is the majority label of their `k` nearest neighbours in
/// the layout (ties go to the smallest label).
pub fn knn_label_accuracy(layout: &[f32], labels: &[u32], k: usize) -> f64 {
    let n = layout.len() / 2;
    assert_eq!(labels.len(), n, "one label per point");
    let planar = layout_knn(layout, k);
    let correct = (0..n)
        .filter(|&i| {
            let mut votes: Vec<u32> = planar
                .neighbours(i)
                .iter()
                .map(|&j| labels[j as usize])
                .collect();
            votes.sort_unstable();
            let mut best = (0usize, u32::MAX);
            let mut run = 0;
            for (at, &label) in votes.iter().enumerate() {
                run = if at > 0 && votes[at - 1] == label {
                    run + 1
                } else {
                    1
                };
                if run > best.0 {
                    best = (run, label);
                }
            }
            best.1 == labels[i]
        })
        .count();
    correct as f64 / n as f64
}

fn layout_knn(layout: &[f32], k: usize) -> KnnGraph {
    knn::planar(layout, k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::matrix::Matrix;

    #[test]
    fn a_layout_equal_to_its_input_preserves_every_neighbour() {
        let layout: Vec<f32> = (0..40)
            .map(|i| ((i * i) % 17) as f32 + i as f32 * 0.01)
            .collect();
        let input = knn::exact(Matrix::new(&layout, 20, 2).unwrap(), 3);
        assert_eq!(neighbour_preservation(&input, &layout, 3), 1.0);
    }

    #[test]
    fn label_accuracy_counts_majority_votes() {
        // Two tight groups far apart, one point of group 0 labelled 1 by mistake.
        let layout = [
            0., 0., 0., 1., 1., 0., 1., 1., 50., 50., 50., 51., 51., 50., 51., 51.,
        ];
        let labels = [0, 0, 0, 1, 1, 1, 1, 1];
        assert_eq!(knn_label_accuracy(&layout, &labels, 3), 7.0 / 8.0);
    }
}
