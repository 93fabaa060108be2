//! Retrieval metrics with COOT's protocol (DESIGN.md §6): rank of the true match per query
//! (0-based), R@k = mean(rank < k) for k ∈ {1, 5, 10, 50}, MdR = floor(median rank) + 1,
//! MnR = mean rank + 1. Ties are counted with an explicit [`TiePolicy`], pessimistic by default.

use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
pub enum EvalError {
    #[error(
        "similarity matrix is {rows}×{cols}; expected at least one query and no more queries than candidates (true match of query i is candidate i)"
    )]
    Shape { rows: usize, cols: usize },
    #[error("similarity[{row}, {col}] is {value}; expected finite scores")]
    NonFinite { row: usize, col: usize, value: f64 },
    #[error("{found} similarity values for a {rows}×{cols} matrix")]
    Length {
        found: usize,
        rows: usize,
        cols: usize,
    },
}

/// How a candidate scoring exactly as high as the true match is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TiePolicy {
    /// Every other candidate scoring ≥ the true match ranks above it (a constant scorer gets the
    /// worst rank, never a perfect one).
    #[default]
    Pessimistic,
    /// Only candidates scoring strictly higher rank above it.
    Optimistic,
}

impl std::fmt::Display for TiePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TiePolicy::Pessimistic => "pessimistic",
            TiePolicy::Optimistic => "optimistic",
        })
    }
}

/// Recalls as fractions in [0, 1]; ranks are 1-based as in the literature.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RetrievalMetrics {
    pub r1: f64,
    pub r5: f64,
    pub r10: f64,
    pub r50: f64,
    pub median_rank: f64,
    pub mean_rank: f64,
}

/// A row-major similarity matrix: rows are queries, columns candidates, the true match of query i
/// is candidate i.
#[derive(Debug, Clone, Copy)]
pub struct Similarity<'a> {
    values: &'a [f64],
    rows: usize,
    cols: usize,
}

impl<'a> Similarity<'a> {
    pub fn new(values: &'a [f64], rows: usize, cols: usize) -> Result<Self, EvalError> {
        if values.len() != rows * cols {
            return Err(EvalError::Length {
                found: values.len(),
                rows,
                cols,
            });
        }
        if rows == 0 || rows > cols {
            return Err(EvalError::Shape { rows, cols });
        }
        if let Some(at) = values.iter().position(|v| !v.is_finite()) {
            return Err(EvalError::NonFinite {
                row: at / cols,
                col: at % cols,
                value: values[at],
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

    fn row(&self, i: usize) -> &'a [f64] {
        &self.values[i * self.cols..(i + 1) * self.cols]
    }

    /// 0-based rank of the true match of every query.
    pub fn ranks(&self, ties: TiePolicy) -> Vec<usize> {
        (0..self.rows)
            .map(|i| rank_in_row(self.row(i), i, ties))
            .collect()
    }

    /// The metrics of this direction.
    pub fn metrics(&self, ties: TiePolicy) -> RetrievalMetrics {
        metrics_from_ranks(&self.ranks(ties))
    }

    /// The transposed matrix (the other retrieval direction), owned.
    pub fn transposed(&self) -> Vec<f64> {
        transpose(self.values, self.rows, self.cols)
            .expect("a checked matrix has rows × cols values")
    }
}

/// The `cols × rows` transpose of the row-major `rows × cols` matrix in `values`: the other
/// retrieval direction. It needs no query-count check of its own, so a matrix with more rows
/// than columns can be read the other way (its columns as the queries).
pub fn transpose(values: &[f64], rows: usize, cols: usize) -> Result<Vec<f64>, EvalError> {
    if values.len() != rows * cols {
        return Err(EvalError::Length {
            found: values.len(),
            rows,
            cols,
        });
    }
    let mut out = vec![0.0; values.len()];
    for i in 0..rows {
        for j in 0..cols {
            out[j * rows + i] = values[i * cols + j];
        }
    }
    Ok(out)
}

/// 0-based rank of column `truth` in `row`: how many other candidates score above it.
fn rank_in_row<T: Copy + PartialOrd>(row: &[T], truth: usize, ties: TiePolicy) -> usize {
    let target = row[truth];
    row.iter()
        .enumerate()
        .filter(|&(j, &score)| {
            j != truth
                && match ties {
                    TiePolicy::Pessimistic => score >= target,
                    TiePolicy::Optimistic => score > target,
                }
        })
        .count()
}

/// Ranks of a block of queries of a larger similarity matrix, so that a large evaluation never
/// holds the whole matrix: `values` holds rows `first_query..first_query + rows` (each `cols`
/// scores, f32 or f64), and the true match of the block's row r is column `first_query + r`.
pub fn block_ranks<T: Copy + PartialOrd + Into<f64>>(
    values: &[T],
    rows: usize,
    cols: usize,
    first_query: usize,
    ties: TiePolicy,
) -> Result<Vec<usize>, EvalError> {
    if values.len() != rows * cols {
        return Err(EvalError::Length {
            found: values.len(),
            rows,
            cols,
        });
    }
    if first_query + rows > cols {
        return Err(EvalError::Shape {
            rows: first_query + rows,
            cols,
        });
    }
    if let Some(at) = values.iter().position(|v| !(*v).into().is_finite()) {
        return Err(EvalError::NonFinite {
            row: first_query + at / cols,
            col: at % cols,
            value: values[at].into(),
        });
    }
    Ok((0..rows)
        .map(|r| rank_in_row(&values[r * cols..(r + 1) * cols], first_query + r, ties))
        .collect())
}

/// Metrics from 0-based ranks (an empty slice gives NaN metrics; [`Similarity::new`] always has a row).
pub fn metrics_from_ranks(ranks: &[usize]) -> RetrievalMetrics {
    let n = ranks.len() as f64;
    let recall = |k: usize| ranks.iter().filter(|&&r| r < k).count() as f64 / n;
    let mut sorted = ranks.to_vec();
    sorted.sort_unstable();
    let median = match sorted.len() {
        0 => f64::NAN,
        len if len % 2 == 1 => sorted[len / 2] as f64,
        len => (sorted[len / 2 - 1] + sorted[len / 2]) as f64 / 2.0,
    };
    RetrievalMetrics {
        r1: recall(1),
        r5: recall(5),
        r10: recall(10),
        r50: recall(50),
        median_rank: median.floor() + 1.0,
        mean_rank: ranks.iter().sum::<usize>() as f64 / n + 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_matrix_with_ties() {
        // Query 0: true 0.9, others 0.1 0.9 0.2 -> pessimistic rank 1 (tie), optimistic 0.
        // Query 1: true 0.5, others 0.6 0.7 0.1 -> rank 2.
        // Query 2: true 0.3, others 0.3 0.3 0.3 -> pessimistic 3, optimistic 0.
        // Query 3: true 1.0, others 0.0 0.0 0.0 -> rank 0.
        let s = [
            0.9, 0.1, 0.9, 0.2, //
            0.6, 0.5, 0.7, 0.1, //
            0.3, 0.3, 0.3, 0.3, //
            0.0, 0.0, 0.0, 1.0,
        ];
        let sim = Similarity::new(&s, 4, 4).unwrap();
        assert_eq!(sim.ranks(TiePolicy::Pessimistic), vec![1, 2, 3, 0]);
        assert_eq!(sim.ranks(TiePolicy::Optimistic), vec![0, 2, 0, 0]);
        let m = sim.metrics(TiePolicy::Pessimistic);
        assert_eq!(m.r1, 0.25);
        assert_eq!(m.r5, 1.0);
        // sorted ranks 0 1 2 3: median 1.5 -> floor 1 -> MdR 2; mean 1.5 -> MnR 2.5
        assert_eq!(m.median_rank, 2.0);
        assert_eq!(m.mean_rank, 2.5);
        let o = sim.metrics(TiePolicy::Optimistic);
        assert_eq!((o.r1, o.median_rank, o.mean_rank), (0.75, 1.0, 1.5));
    }

    #[test]
    fn a_tall_matrix_transposes_into_a_valid_one() {
        // 3 rows over 2 columns: too many queries, but 2 queries over 3 candidates transposed.
        let tall = [1.0, 0.0, 0.0, 1.0, 0.5, 0.5];
        assert!(Similarity::new(&tall, 3, 2).is_err());
        let wide = transpose(&tall, 3, 2).unwrap();
        assert_eq!(wide, [1.0, 0.0, 0.5, 0.0, 1.0, 0.5]);
        let metrics = Similarity::new(&wide, 2, 3)
            .unwrap()
            .metrics(TiePolicy::Pessimistic);
        assert_eq!(metrics.r1, 1.0);
        assert!(transpose(&tall, 2, 2).is_err());
    }

    #[test]
    fn a_constant_scorer_gets_the_worst_rank() {
        let s = vec![0.5; 9];
        let m = Similarity::new(&s, 3, 3)
            .unwrap()
            .metrics(TiePolicy::Pessimistic);
        assert_eq!((m.r1, m.median_rank, m.mean_rank), (0.0, 3.0, 3.0));
    }

    #[test]
    fn recall_at_k_counts_ranks_strictly_below_k() {
        let ranks: Vec<usize> = vec![0, 4, 5, 9, 10, 49, 50, 100];
        let m = metrics_from_ranks(&ranks);
        assert_eq!(m.r1, 1.0 / 8.0);
        assert_eq!(m.r5, 2.0 / 8.0);
        assert_eq!(m.r10, 4.0 / 8.0);
        assert_eq!(m.r50, 6.0 / 8.0);
        // sorted: 0 4 5 9 10 49 50 100 -> median (9+10)/2 = 9.5 -> 9 + 1
        assert_eq!(m.median_rank, 10.0);
        assert_eq!(m.mean_rank, 227.0 / 8.0 + 1.0);
    }

    #[test]
    fn rectangular_galleries_and_transposition() {
        let s = [1.0, 0.0, 2.0, 0.5, 0.4, 0.3];
        let sim = Similarity::new(&s, 2, 3).unwrap();
        assert_eq!(sim.ranks(TiePolicy::Pessimistic), vec![1, 1]);
        assert_eq!(sim.transposed(), vec![1.0, 0.5, 0.0, 0.4, 2.0, 0.3]);
        assert_eq!(
            Similarity::new(&s, 3, 2).unwrap_err(),
            EvalError::Shape { rows: 3, cols: 2 }
        );
    }

    #[test]
    fn block_ranks_agree_with_the_whole_matrix() {
        let s: Vec<f64> = (0..30).map(|k| ((k * 7) % 11) as f64).collect(); // 5×6, ties included
        let whole = Similarity::new(&s, 5, 6)
            .unwrap()
            .ranks(TiePolicy::Pessimistic);
        let top = block_ranks(&s[..12], 2, 6, 0, TiePolicy::Pessimistic).unwrap();
        let bottom = block_ranks(&s[12..], 3, 6, 2, TiePolicy::Pessimistic).unwrap();
        assert_eq!([top, bottom].concat(), whole);
        let single: Vec<f32> = s[12..18].iter().map(|&v| v as f32).collect();
        assert_eq!(
            block_ranks(&single, 1, 6, 2, TiePolicy::Pessimistic).unwrap(),
            vec![whole[2]]
        );
        assert!(block_ranks(&s[..6], 1, 6, 6, TiePolicy::Pessimistic).is_err());
    }

    #[test]
    fn non_finite_scores_are_named() {
        let s = [1.0, 0.0, f64::NAN, 0.5];
        let err = Similarity::new(&s, 2, 2).unwrap_err();
        assert_eq!(
            err.to_string(),
            "similarity[1, 0] is NaN; expected finite scores"
        );
    }
}
