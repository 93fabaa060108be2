use candle_core::{DType, Tensor};

use super::LossError;

/// A row-major f64 matrix on the host. Input features live here: they are constants of the loss,
/// and connectivity computed in f64 decides pruning exactly as the f64 reference does.
#[derive(Debug, Clone, PartialEq)]
pub struct HostMatrix {
    rows: usize,
    cols: usize,
    data: Vec<f64>,
}

impl HostMatrix {
    pub fn new(rows: usize, cols: usize, data: Vec<f64>) -> Self {
        assert_eq!(
            rows * cols,
            data.len(),
            "HostMatrix data does not match its shape"
        );
        Self { rows, cols, data }
    }

    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self::new(rows, cols, vec![0.0; rows * cols])
    }

    /// Copies a rank-2 float tensor to the host, checking that every value is finite.
    pub fn from_tensor(tensor: &Tensor, name: &str) -> Result<Self, LossError> {
        let (rows, cols) = tensor.dims2().map_err(|_| LossError::Shape {
            name: name.to_string(),
            shape: tensor.dims().to_vec(),
            expected: "a matrix (rank 2)".into(),
        })?;
        let flat = tensor.flatten_all()?;
        let data: Vec<f64> = match tensor.dtype() {
            DType::F64 => flat.to_vec1::<f64>()?,
            DType::F32 => flat.to_vec1::<f32>()?.into_iter().map(f64::from).collect(),
            _ => flat.to_dtype(DType::F64)?.to_vec1::<f64>()?,
        };
        if let Some(at) = data.iter().position(|v| !v.is_finite()) {
            return Err(LossError::NonFinite {
                name: name.to_string(),
                row: at / cols.max(1),
                col: at % cols.max(1),
                value: data[at],
            });
        }
        Ok(Self { rows, cols, data })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    pub fn row_mut(&mut self, i: usize) -> &mut [f64] {
        &mut self.data[i * self.cols..(i + 1) * self.cols]
    }

    pub fn as_slice(&self) -> &[f64] {
        &self.data
    }

    /// Σ_i row_i over the first `rows` rows.
    pub fn column_sums(&self, rows: usize) -> Vec<f64> {
        let mut sums = vec![0.0; self.cols];
        for i in 0..rows.min(self.rows) {
            for (s, v) in sums.iter_mut().zip(self.row(i)) {
                *s += v;
            }
        }
        sums
    }

    /// x xᵀ.
    pub fn gram(&self) -> HostMatrix {
        let n = self.rows;
        let mut out = vec![0.0; n * n];
        for i in 0..n {
            for j in i..n {
                let value = dot(self.row(i), self.row(j));
                out[i * n + j] = value;
                out[j * n + i] = value;
            }
        }
        HostMatrix::new(n, n, out)
    }

    /// The matrix as a tensor of the given dtype on the given device.
    pub fn to_tensor(
        &self,
        dtype: DType,
        device: &candle_core::Device,
    ) -> candle_core::Result<Tensor> {
        Tensor::from_slice(&self.data, (self.rows, self.cols), device)?.to_dtype(dtype)
    }
}

pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
