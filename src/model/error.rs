use thiserror::Error;

/// Why a head could not be built, saved or loaded. Every variant names the setting or tensor at fault.
#[derive(Debug, Error)]
pub enum ModelError {
    #[error("invalid head configuration: {0}")]
    Config(String),
    #[error("the checkpoint sidecar is not a valid checkpoint description: {0}")]
    Sidecar(#[from] serde_json::Error),
    #[error("the checkpoint weights are not a valid safetensors file: {0}")]
    Weights(#[from] safetensors::SafeTensorError),
    /// Every tensor that does not fit the head, collected so that one error tells the whole story.
    #[error("{}", mismatch_text(.0))]
    Mismatch(Vec<TensorMismatch>),
    #[error("cannot open {device}")]
    Device {
        device: String,
        #[source]
        source: candle_core::Error,
    },
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// One tensor of a checkpoint that does not fit the head its sidecar describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TensorMismatch {
    /// The head has this parameter, the weights do not.
    Missing { name: String, expected: Vec<usize> },
    /// The weights hold a tensor the head has no parameter for.
    Unexpected { name: String, found: Vec<usize> },
    /// Both have it, with different shapes.
    Shape {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    /// The tensor is not floating-point, so it cannot be a weight.
    DType { name: String, dtype: String },
}

impl TensorMismatch {
    pub fn name(&self) -> &str {
        match self {
            TensorMismatch::Missing { name, .. }
            | TensorMismatch::Unexpected { name, .. }
            | TensorMismatch::Shape { name, .. }
            | TensorMismatch::DType { name, .. } => name,
        }
    }
}

impl std::fmt::Display for TensorMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TensorMismatch::Missing { name, expected } => {
                write!(f, "{name}: expected {expected:?}, missing from the weights")
            }
            TensorMismatch::Unexpected { name, found } => {
                write!(f, "{name}: not a parameter of this head, found {found:?}")
            }
            TensorMismatch::Shape {
                name,
                expected,
                found,
            } => write!(f, "{name}: expected {expected:?}, found {found:?}"),
            TensorMismatch::DType { name, dtype } => {
                write!(f, "{name}: dtype {dtype} is not floating-point")
            }
        }
    }
}

fn mismatch_text(problems: &[TensorMismatch]) -> String {
    let mut text = format!(
        "the weights do not fit the head their sidecar describes ({} tensor{}):",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for problem in problems {
        text.push_str("\n  ");
        text.push_str(&problem.to_string());
    }
    text
}
