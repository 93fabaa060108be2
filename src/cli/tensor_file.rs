//! Reading named tensors from safetensors files, with errors that name the file, the tensor and
//! what was expected.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use candle_core::{DType, Device, Tensor};

/// The tensors of one safetensors file.
#[derive(Debug)]
pub struct TensorFile {
    path: PathBuf,
    tensors: HashMap<String, Tensor>,
}

impl TensorFile {
    pub fn open(path: &Path) -> Result<Self> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
            .with_context(|| format!("{} is not a readable safetensors file", path.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
            tensors,
        })
    }

    fn names(&self) -> String {
        let mut names: Vec<String> = self
            .tensors
            .iter()
            .map(|(name, t)| format!("{name} {:?} {:?}", t.dims(), t.dtype()))
            .collect();
        names.sort();
        if names.is_empty() {
            "no tensors".into()
        } else {
            names.join(", ")
        }
    }

    /// A floating-point matrix named `name`, converted to f64.
    pub fn matrix(&self, name: &str) -> Result<Tensor> {
        let Some(tensor) = self.tensors.get(name) else {
            bail!(
                "{}: missing tensor `{name}` (the file holds: {})",
                self.path.display(),
                self.names()
            );
        };
        if !tensor.dtype().is_float() {
            bail!(
                "{}: tensor `{name}` has dtype {:?}; expected f32 or f64",
                self.path.display(),
                tensor.dtype()
            );
        }
        if tensor.rank() != 2 {
            bail!(
                "{}: tensor `{name}` has shape {:?}; expected a matrix (rank 2)",
                self.path.display(),
                tensor.dims()
            );
        }
        Ok(tensor.to_dtype(DType::F64)?)
    }

    /// As [`TensorFile::matrix`], and every value finite: a NaN or an infinity is an error naming
    /// the tensor and the first bad position.
    pub fn finite_matrix(&self, name: &str) -> Result<Tensor> {
        let matrix = self.matrix(name)?;
        let cols = matrix.dim(1)?;
        let values: Vec<f64> = matrix.flatten_all()?.to_vec1()?;
        if let Some(at) = values.iter().position(|v| !v.is_finite()) {
            let count = values.iter().filter(|v| !v.is_finite()).count();
            bail!(
                "{}: tensor `{name}` {:?} holds {} at [{}, {}] (row {}, column {}; {count} \
                 non-finite values in all); expected finite values",
                self.path.display(),
                matrix.dims(),
                values[at],
                at / cols,
                at % cols,
                at / cols,
                at % cols
            );
        }
        Ok(matrix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_finite_value_is_named_by_tensor_and_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.safetensors");
        let mut values = vec![0.5f32; 12];
        values[7] = f32::NAN;
        values[9] = f32::INFINITY;
        let tensors = HashMap::from([
            (
                "bad".to_string(),
                Tensor::from_vec(values, (3, 4), &Device::Cpu).unwrap(),
            ),
            (
                "good".to_string(),
                Tensor::ones((2, 2), DType::F32, &Device::Cpu).unwrap(),
            ),
        ]);
        candle_core::safetensors::save(&tensors, &path).unwrap();
        let file = TensorFile::open(&path).unwrap();
        assert!(file.finite_matrix("good").is_ok());
        let message = file.finite_matrix("bad").unwrap_err().to_string();
        assert!(
            message.contains("`bad`")
                && message.contains("NaN at [1, 3]")
                && message.contains("2 non-finite"),
            "{message}"
        );
    }
}
