//! Warm starts: a new layout that begins where an earlier one ended, so that a map made after
//! retraining keeps its points where the user last saw them.

use std::collections::HashMap;

use rayon::prelude::*;

use super::TsneError;
use crate::analysis::matrix::{Matrix, squared_distance};

/// Initial positions for a warm start, and how they were found.
#[derive(Debug, Clone, PartialEq)]
pub struct WarmStart {
    /// N×2, row-major, in the order of the keys asked for.
    pub positions: Vec<f32>,
    /// Keys found in the earlier layout.
    pub matched: usize,
    /// Keys that were not, each placed at its nearest matched neighbour's position.
    pub placed: usize,
}

/// Matches `keys` (one per row of `data`) against an earlier layout's keys and positions
/// (`previous` is M×2, row-major). A key found there keeps its position; a new key starts at the
/// position of its nearest neighbour in `data` among the matched rows (exact search, so
/// O(new × matched) distances). Keys of the earlier layout that are gone are ignored.
pub fn warm_start(
    keys: &[String],
    data: Matrix<'_>,
    previous_keys: &[String],
    previous: &[f32],
) -> Result<WarmStart, TsneError> {
    if keys.len() != data.rows() {
        return Err(TsneError::KeyCount {
            keys: keys.len(),
            rows: data.rows(),
        });
    }
    if previous.len() != 2 * previous_keys.len() {
        return Err(TsneError::InitShape {
            expected: previous_keys.len(),
            got: previous.len() / 2,
        });
    }
    let at: HashMap<&str, usize> = previous_keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect();
    let found: Vec<Option<usize>> = keys.iter().map(|k| at.get(k.as_str()).copied()).collect();
    let matched_rows: Vec<usize> = (0..keys.len()).filter(|&i| found[i].is_some()).collect();
    if matched_rows.is_empty() {
        return Err(TsneError::NoKeyInCommon);
    }
    let position_of = |row: usize| {
        let p = found[row].expect("a matched row");
        [previous[2 * p], previous[2 * p + 1]]
    };
    let positions: Vec<f32> = (0..keys.len())
        .into_par_iter()
        .flat_map_iter(|i| match found[i] {
            Some(_) => position_of(i),
            None => {
                let xi = data.row(i);
                let nearest = matched_rows
                    .iter()
                    .map(|&j| (squared_distance(xi, data.row(j)), j))
                    .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)))
                    .expect("at least one matched row")
                    .1;
                position_of(nearest)
            }
        })
        .collect();
    if let Some(row) = (0..keys.len())
        .find(|&i| !(positions[2 * i].is_finite() && positions[2 * i + 1].is_finite()))
    {
        return Err(TsneError::InitNonFinite { row });
    }
    Ok(WarmStart {
        positions,
        matched: matched_rows.len(),
        placed: keys.len() - matched_rows.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn known_keys_keep_their_positions_and_new_ones_join_their_nearest_neighbour() {
        let data = [0f32, 0., 10., 10., 0.5, 0.2, 9.0, 9.5];
        let start = warm_start(
            &keys(&["a", "b", "new1", "new2"]),
            Matrix::new(&data, 4, 2).unwrap(),
            &keys(&["gone", "b", "a"]),
            &[7., 7., -3., 4., 1., 2.],
        )
        .unwrap();
        assert_eq!(start.positions, [1., 2., -3., 4., 1., 2., -3., 4.]);
        assert_eq!((start.matched, start.placed), (2, 2));
    }

    #[test]
    fn a_layout_with_no_key_in_common_is_refused() {
        let data = [0f32; 8];
        let error = warm_start(
            &keys(&["a", "b", "c", "d"]),
            Matrix::new(&data, 4, 2).unwrap(),
            &keys(&["x"]),
            &[0., 0.],
        )
        .unwrap_err();
        assert!(matches!(error, TsneError::NoKeyInCommon), "{error}");
    }
}
