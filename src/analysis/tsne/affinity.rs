//! The input affinities P: a Gaussian over each point's k nearest neighbours, its bandwidth
//! calibrated to the perplexity, then symmetrised and normalised to sum to one (van der Maaten
//! 2014; openTSNE and FIt-SNE do the same over 3·perplexity neighbours).

use rayon::prelude::*;

use crate::analysis::knn::KnnGraph;

/// A sparse symmetric matrix in compressed rows; columns sorted within each row.
#[derive(Debug, Clone, PartialEq)]
pub struct Affinities {
    pub(crate) offsets: Vec<usize>,
    pub(crate) columns: Vec<u32>,
    pub(crate) values: Vec<f64>,
}

impl Affinities {
    pub fn rows(&self) -> usize {
        self.offsets.len() - 1
    }

    pub fn row(&self, i: usize) -> (&[u32], &[f64]) {
        let range = self.offsets[i]..self.offsets[i + 1];
        (&self.columns[range.clone()], &self.values[range])
    }

    pub fn non_zeros(&self) -> usize {
        self.values.len()
    }
}

const ENTROPY_TOLERANCE: f64 = 1e-5;
const MAX_BISECTIONS: usize = 200;

/// One row of conditional probabilities p_{j|i} over the neighbours at squared distances `d2`,
/// with the entropy equal to ln(perplexity).
///
/// Distances are taken relative to the nearest, which leaves the normalised row unchanged but
/// keeps the nearest term at exp(0) = 1, so the sum never underflows to zero. When the row
/// cannot reach the perplexity (all neighbours equally far: duplicates), the bisection drives the
/// precision up and the row stays uniform over the equally near ones: defined, never NaN.
pub fn conditional_row(d2: &[f32], perplexity: f64, out: &mut [f64]) {
    let nearest = d2.iter().copied().fold(f32::INFINITY, f32::min) as f64;
    let target = perplexity.ln();
    let (mut beta, mut lo, mut hi) = (1.0f64, 0.0f64, f64::INFINITY);
    // Start at the scale of the distances, so that the bisection needs few steps.
    let spread: f64 = d2.iter().map(|&d| d as f64 - nearest).sum::<f64>() / d2.len() as f64;
    if spread > 0.0 {
        beta = 1.0 / spread;
    }
    for _ in 0..MAX_BISECTIONS {
        let mut sum = 0.0;
        let mut weighted = 0.0;
        for (o, &d) in out.iter_mut().zip(d2) {
            let e = beta * (d as f64 - nearest);
            let p = (-e).exp();
            *o = p;
            sum += p;
            if p > 0.0 {
                weighted += p * e;
            }
        }
        let entropy = sum.ln() + weighted / sum;
        let diff = entropy - target;
        if diff.abs() <= ENTROPY_TOLERANCE {
            break;
        }
        if diff > 0.0 {
            lo = beta;
            beta = if hi.is_finite() {
                (beta + hi) / 2.0
            } else {
                beta * 2.0
            };
        } else {
            hi = beta;
            beta = (beta + lo) / 2.0;
        }
    }
    let sum: f64 = out.iter().sum();
    for o in out.iter_mut() {
        *o /= sum;
    }
}

/// P = (P_cond + P_condᵀ) / 2N, from the kNN graph.
pub fn affinities(graph: &KnnGraph, perplexity: f64) -> Affinities {
    let n = graph.len();
    let k = graph.k();
    let conditional: Vec<f64> = (0..n)
        .into_par_iter()
        .flat_map_iter(|i| {
            let mut row = vec![0.0; k];
            conditional_row(graph.sq_distances(i), perplexity, &mut row);
            row
        })
        .collect();

    // The transpose by counting sort: entries of each transposed row arrive in increasing
    // source row, so its columns are sorted without a sort.
    let mut t_offsets = vec![0usize; n + 1];
    for i in 0..n {
        for &j in graph.neighbours(i) {
            t_offsets[j as usize + 1] += 1;
        }
    }
    for i in 0..n {
        t_offsets[i + 1] += t_offsets[i];
    }
    let mut fill = t_offsets.clone();
    let mut t_columns = vec![0u32; n * k];
    let mut t_values = vec![0f64; n * k];
    for i in 0..n {
        for (slot, &j) in graph.neighbours(i).iter().enumerate() {
            let at = fill[j as usize];
            t_columns[at] = i as u32;
            t_values[at] = conditional[i * k + slot];
            fill[j as usize] += 1;
        }
    }

    let scale = 1.0 / (2.0 * n as f64);
    let rows: Vec<Vec<(u32, f64)>> = (0..n)
        .into_par_iter()
        .map(|i| {
            let mut forward: Vec<(u32, f64)> = graph
                .neighbours(i)
                .iter()
                .zip(&conditional[i * k..(i + 1) * k])
                .map(|(&j, &p)| (j, p))
                .collect();
            forward.sort_unstable_by_key(|&(j, _)| j);
            let backward = (t_offsets[i]..t_offsets[i + 1]).map(|at| (t_columns[at], t_values[at]));
            let mut merged = Vec::with_capacity(forward.len() + t_offsets[i + 1] - t_offsets[i]);
            let mut backward = backward.peekable();
            let mut forward = forward.into_iter().peekable();
            loop {
                match (forward.peek().copied(), backward.peek().copied()) {
                    (Some((fj, fp)), Some((bj, bp))) if fj == bj => {
                        merged.push((fj, (fp + bp) * scale));
                        forward.next();
                        backward.next();
                    }
                    (Some((fj, fp)), Some((bj, _))) if fj < bj => {
                        merged.push((fj, fp * scale));
                        forward.next();
                    }
                    (_, Some((bj, bp))) => {
                        merged.push((bj, bp * scale));
                        backward.next();
                    }
                    (Some((fj, fp)), None) => {
                        merged.push((fj, fp * scale));
                        forward.next();
                    }
                    (None, None) => break,
                }
            }
            merged
        })
        .collect();

    let mut offsets = Vec::with_capacity(n + 1);
    offsets.push(0);
    let mut columns = Vec::new();
    let mut values = Vec::new();
    for row in rows {
        for (j, p) in row {
            columns.push(j);
            values.push(p);
        }
        offsets.push(columns.len());
    }
    Affinities {
        offsets,
        columns,
        values,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::knn;
    use crate::analysis::matrix::Matrix;

    #[test]
    fn a_calibrated_row_has_the_asked_perplexity() {
        let d2: Vec<f32> = (0..90).map(|i| (i as f32 * 0.37).powi(2) + 0.5).collect();
        let mut p = vec![0.0; 90];
        conditional_row(&d2, 30.0, &mut p);
        let entropy: f64 = -p
            .iter()
            .filter(|&&x| x > 0.0)
            .map(|x| x * x.ln())
            .sum::<f64>();
        assert!(
            (entropy.exp() - 30.0).abs() < 1e-3,
            "perplexity {}",
            entropy.exp()
        );
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn equally_near_neighbours_give_a_uniform_row() {
        let mut p = vec![0.0; 9];
        conditional_row(&[0.0; 9], 3.0, &mut p);
        for x in p {
            assert!((x - 1.0 / 9.0).abs() < 1e-12);
        }
    }

    #[test]
    fn affinities_are_symmetric_and_sum_to_one() {
        let values: Vec<f32> = (0..200).map(|i| ((i * 37) % 101) as f32 / 10.0).collect();
        let data = Matrix::new(&values, 100, 2).unwrap();
        let p = affinities(&knn::exact(data, 12), 4.0);
        let total: f64 = p.values.iter().sum();
        assert!((total - 1.0).abs() < 1e-12, "{total}");
        let value = |i: usize, j: u32| {
            let (cols, vals) = p.row(i);
            cols.binary_search(&j).map(|at| vals[at]).unwrap_or(0.0)
        };
        for i in 0..100 {
            let (cols, vals) = p.row(i);
            assert!(cols.windows(2).all(|w| w[0] < w[1]));
            for (&j, &v) in cols.iter().zip(vals) {
                assert_eq!(value(j as usize, i as u32), v);
            }
        }
    }
}
