//! `--method linfa`: the same data through linfa-tsne (Barnes–Hut, bhtsne 0.4 underneath), as an
//! independent implementation to compare layouts with. It runs in one call: it cannot be stepped,
//! cancelled or given our initialisation, and its randomness is its own (linfa's fixed seed).

use linfa::traits::Transformer;
use linfa_tsne::TSneParams;
use ndarray::Array2;

use super::{TsneConfig, TsneError};
use crate::analysis::matrix::Matrix;

/// The N×2 layout linfa-tsne makes with the config's perplexity, θ and number of iterations.
pub fn linfa_layout(data: Matrix<'_>, config: &TsneConfig) -> Result<Vec<f32>, TsneError> {
    let values: Vec<f64> = data.values().iter().map(|&v| v as f64).collect();
    let input = Array2::from_shape_vec((data.rows(), data.cols()), values)
        .expect("the matrix shape was checked");
    let layout = TSneParams::embedding_size(2)
        .perplexity(config.perplexity)
        .approx_threshold(config.theta)
        .max_iter(config.iterations)
        .transform(input)
        .map_err(TsneError::Linfa)?;
    Ok(layout.iter().map(|&v| v as f32).collect())
}
