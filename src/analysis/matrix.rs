//! A borrowed row-major `f32` matrix: one point per row, which is how embeddings and features are
//! stored on disk, so that laying out 100,000 rows never copies them.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum MatrixError {
    #[error("a {rows}×{cols} matrix needs {expected} values, got {got}")]
    Shape {
        rows: usize,
        cols: usize,
        expected: usize,
        got: usize,
    },
}

#[derive(Debug, Clone, Copy)]
pub struct Matrix<'a> {
    values: &'a [f32],
    rows: usize,
    cols: usize,
}

impl<'a> Matrix<'a> {
    pub fn new(values: &'a [f32], rows: usize, cols: usize) -> Result<Self, MatrixError> {
        let expected = rows.saturating_mul(cols);
        if values.len() != expected {
            return Err(MatrixError::Shape {
                rows,
                cols,
                expected,
                got: values.len(),
            });
        }
        Ok(Self { values, rows, cols })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn values(&self) -> &'a [f32] {
        self.values
    }

    pub fn row(&self, i: usize) -> &'a [f32] {
        &self.values[i * self.cols..(i + 1) * self.cols]
    }

    /// The first non-finite value as (row, column), if any.
    pub fn first_non_finite(&self) -> Option<(usize, usize)> {
        let at = self.values.iter().position(|v| !v.is_finite())?;
        Some((at / self.cols.max(1), at % self.cols.max(1)))
    }
}

/// Squared Euclidean distance, accumulated in eight independent lanes so that the compiler
/// vectorises it; the lane order is fixed, so the value never depends on the caller's threads.
pub fn squared_distance(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (a8, a_rest) = a.split_at(a.len() - a.len() % 8);
    let (b8, b_rest) = b.split_at(a8.len());
    for (x, y) in a8.chunks_exact(8).zip(b8.chunks_exact(8)) {
        for l in 0..8 {
            let d = x[l] - y[l];
            lanes[l] += d * d;
        }
    }
    let mut tail = 0f32;
    for (x, y) in a_rest.iter().zip(b_rest) {
        let d = x - y;
        tail += d * d;
    }
    ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5]))
        + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]))
        + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_matrix_of_the_wrong_length_is_refused() {
        let values = [0f32; 5];
        assert_eq!(
            Matrix::new(&values, 2, 3).unwrap_err(),
            MatrixError::Shape {
                rows: 2,
                cols: 3,
                expected: 6,
                got: 5
            }
        );
    }

    #[test]
    fn the_first_non_finite_value_is_named_by_row_and_column() {
        let values = [0., 1., 2., 3., f32::NAN, 5., f32::INFINITY, 0., 0.];
        let m = Matrix::new(&values, 3, 3).unwrap();
        assert_eq!(m.first_non_finite(), Some((1, 1)));
    }

    #[test]
    fn squared_distance_matches_the_plain_sum() {
        let a: Vec<f32> = (0..21).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..21).map(|i| (i * i) as f32 * 0.1).collect();
        let plain: f32 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
        assert!((squared_distance(&a, &b) - plain).abs() <= 1e-4 * plain);
    }
}
