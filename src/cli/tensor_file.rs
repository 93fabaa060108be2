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
}
