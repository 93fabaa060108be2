//! Exact ranking over an in-memory matrix of L2-normalised rows: one pass over the matrix per
//! query, split across threads by rows, each keeping its own top-k, merged in row order. The
//! scan is memory-bound, so it reads the matrix once and writes no score vector.

use crate::project::EmbeddingMatrix;

/// Rows scaled to unit length (all-zero rows stay zero), row-major f32.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitRows {
    rows: usize,
    cols: usize,
    data: Vec<f32>,
}

/// Rows per thread below which splitting the scan costs more than it saves.
const MIN_ROWS_PER_THREAD: usize = 4096;

impl UnitRows {
    /// Normalises each row of `data` (`rows × cols`, row-major) in place.
    pub fn new(rows: usize, cols: usize, mut data: Vec<f32>) -> Self {
        assert_eq!(
            rows * cols,
            data.len(),
            "UnitRows data does not match its shape"
        );
        for row in data.chunks_exact_mut(cols.max(1)) {
            let norm = row
                .iter()
                .map(|v| f64::from(*v) * f64::from(*v))
                .sum::<f64>()
                .sqrt();
            if norm > 0.0 {
                let scale = (1.0 / norm) as f32;
                row.iter_mut().for_each(|v| *v *= scale);
            }
        }
        Self { rows, cols, data }
    }

    pub fn from_matrix(matrix: &EmbeddingMatrix) -> Self {
        Self::new(matrix.rows, matrix.cols, matrix.data.clone())
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    /// The `k` rows with the largest dot product with `query`, best first; ties go to the lower
    /// row. Rows for which `skip` is true are left out. The same input gives the same list
    /// whatever the number of threads: every score is one row's own dot product.
    pub fn top_k(
        &self,
        query: &[f32],
        k: usize,
        skip: impl Fn(usize) -> bool + Sync,
    ) -> Vec<(usize, f32)> {
        assert_eq!(query.len(), self.cols, "query width differs from the rows'");
        if k == 0 || self.rows == 0 {
            return Vec::new();
        }
        let threads = num_cpus::get()
            .min(self.rows.div_ceil(MIN_ROWS_PER_THREAD))
            .max(1);
        let per_thread = self.rows.div_ceil(threads);
        let scan = |start: usize| {
            let end = (start + per_thread).min(self.rows);
            let mut best = TopK::new(k);
            for i in start..end {
                if !skip(i) {
                    best.offer(i, dot(self.row(i), query));
                }
            }
            best.into_sorted()
        };
        let parts: Vec<Vec<(usize, f32)>> = if threads == 1 {
            vec![scan(0)]
        } else {
            std::thread::scope(|scope| {
                let handles: Vec<_> = (0..threads)
                    .map(|t| {
                        let scan = &scan;
                        scope.spawn(move || scan(t * per_thread))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("a ranking thread panicked"))
                    .collect()
            })
        };
        let mut merged = TopK::new(k);
        for (i, score) in parts.into_iter().flatten() {
            merged.offer(i, score);
        }
        merged.into_sorted()
    }
}

/// The best `k` (index, score) pairs seen so far: larger score first, then lower index.
#[derive(Debug)]
pub(crate) struct TopK {
    k: usize,
    /// Kept sorted best first; at most `k` long.
    items: Vec<(usize, f32)>,
}

fn better(a: (usize, f32), b: (usize, f32)) -> bool {
    a.1 > b.1 || (a.1 == b.1 && a.0 < b.0)
}

impl TopK {
    pub(crate) fn new(k: usize) -> Self {
        Self {
            k,
            items: Vec::with_capacity(k + 1),
        }
    }

    #[inline]
    pub(crate) fn offer(&mut self, index: usize, score: f32) {
        if score.is_nan() {
            return;
        }
        let item = (index, score);
        if self.items.len() == self.k {
            // The common case on a long scan: worse than the worst kept.
            if !better(item, self.items[self.k - 1]) {
                return;
            }
            self.items.pop();
        }
        let at = self.items.partition_point(|&kept| better(kept, item));
        self.items.insert(at, item);
    }

    pub(crate) fn into_sorted(self) -> Vec<(usize, f32)> {
        self.items
    }
}

/// A dot product with 16 independent accumulators, so the compiler can keep them in vector
/// registers (a single running sum would be one long dependency chain).
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut acc = [0f32; LANES];
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (a_rest, b_rest) = (a_chunks.remainder(), b_chunks.remainder());
    for (x, y) in a_chunks.zip(b_chunks) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    let mut sum = 0f32;
    for (x, y) in a_rest.iter().zip(b_rest) {
        sum += x * y;
    }
    // Pairwise, in a fixed order.
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for l in 0..width {
            acc[l] += acc[l + width];
        }
    }
    acc[0] + sum
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(rows: usize, cols: usize, seed: u64) -> UnitRows {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let data = (0..rows * cols)
            .map(|_| rng.random::<f32>() - 0.5)
            .collect();
        UnitRows::new(rows, cols, data)
    }

    #[test]
    fn top_k_matches_a_full_sort_with_ties_to_the_lower_row() {
        let rows = matrix(20_000, 37, 1);
        let query: Vec<f32> = rows.row(5).to_vec();
        let mut all: Vec<(usize, f32)> = (0..rows.rows())
            .map(|i| (i, dot(rows.row(i), &query)))
            .collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        assert_eq!(rows.top_k(&query, 10, |_| false), all[..10].to_vec());
        assert_eq!(rows.top_k(&query, 10, |_| false)[0].0, 5);
        let without_self = rows.top_k(&query, 3, |i| i == 5);
        assert_eq!(without_self, all[1..4].to_vec());

        let ties = UnitRows::new(4, 2, vec![1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0]);
        let order: Vec<usize> = ties
            .top_k(&[1.0, 0.0], 4, |_| false)
            .iter()
            .map(|h| h.0)
            .collect();
        assert_eq!(order, vec![0, 2, 3, 1]);
    }

    #[test]
    fn rows_are_unit_length_and_zero_rows_stay_zero() {
        let rows = UnitRows::new(2, 2, vec![3.0, 4.0, 0.0, 0.0]);
        assert_eq!(rows.row(0), &[0.6, 0.8]);
        assert_eq!(rows.row(1), &[0.0, 0.0]);
    }
}
