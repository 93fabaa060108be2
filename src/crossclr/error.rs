use thiserror::Error;

/// Why a loss could not be evaluated. Every variant names the tensor or setting at fault.
#[derive(Debug, Error)]
pub enum LossError {
    #[error("tensor `{name}` has shape {shape:?}; expected {expected}")]
    Shape {
        name: String,
        shape: Vec<usize>,
        expected: String,
    },
    #[error("tensor `{name}` has dtype {dtype}; expected a floating-point tensor (f32 or f64)")]
    DType { name: String, dtype: String },
    #[error(
        "`{first}` has shape {first_shape:?} but `{other}` has shape {other_shape:?}: \
         every tensor of a batch needs the same number of rows B"
    )]
    BatchMismatch {
        first: String,
        first_shape: Vec<usize>,
        other: String,
        other_shape: Vec<usize>,
    },
    #[error("tensor `{name}` holds {value} at row {row}, column {col}; expected finite values")]
    NonFinite {
        name: String,
        row: usize,
        col: usize,
        value: f64,
    },
    #[error("invalid loss setting: {0}")]
    Config(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}
