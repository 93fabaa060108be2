//! Row normalisation with its gradient.
//!
//! candle-nn's fast `layer_norm` (what `LayerNorm::forward` uses on contiguous input) is a custom op
//! *without* a backward pass: gradients silently stop at it. The heads need LayerNorm everywhere,
//! so the normalisation `x̂ = (x − μ)/√(σ² + ε)` is done here. On the CPU (f32) it is one fused op
//! whose gradient is written out, `dx = (g − mean(g) − x̂·mean(g ⊙ x̂)) / √(σ² + ε)`, rows in
//! parallel on candle's worker pool; elsewhere it is composed from candle ops (tested to agree).
//! The affine part (gain and bias) stays in candle ops, which give the parameters their gradients.

use std::sync::Mutex;

use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, D, DType, Device, Layout, Result, Shape, Tensor,
};

/// Normalises the last dimension of `x` to zero mean and unit (biased) variance.
pub(crate) fn normalise_rows(x: &Tensor, eps: f64) -> Result<Tensor> {
    match (x.device(), x.dtype()) {
        (Device::Cpu, DType::F32) => x.contiguous()?.apply_op1(NormaliseRows { eps }),
        _ => normalise_rows_composed(x, eps),
    }
}

/// The same normalisation from candle ops (any device and dtype).
pub(crate) fn normalise_rows_composed(x: &Tensor, eps: f64) -> Result<Tensor> {
    let centred = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
    let variance = centred.sqr()?.mean_keepdim(D::Minus1)?;
    centred.broadcast_div(&(variance + eps)?.sqrt()?)
}

struct NormaliseRows {
    eps: f64,
}

struct NormaliseRowsGrad {
    eps: f64,
}

const LANES: usize = 16;

/// Sum with independent lanes so that the loop vectorises (a plain float sum cannot be reordered).
fn sum(values: &[f32]) -> f32 {
    let mut lanes = [0f32; LANES];
    let mut chunks = values.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (lane, v) in lanes.iter_mut().zip(chunk) {
            *lane += v;
        }
    }
    lanes.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

/// `Σ (x − mean)·g`.
fn centred_dot(values: &[f32], grad: &[f32], mean: f32) -> f32 {
    let mut lanes = [0f32; LANES];
    let mut chunks = values.chunks_exact(LANES);
    let mut grads = grad.chunks_exact(LANES);
    for (chunk, g) in (&mut chunks).zip(&mut grads) {
        for ((lane, v), g) in lanes.iter_mut().zip(chunk).zip(g) {
            *lane += (v - mean) * g;
        }
    }
    let rest: f32 = chunks
        .remainder()
        .iter()
        .zip(grads.remainder())
        .map(|(v, g)| (v - mean) * g)
        .sum();
    lanes.iter().sum::<f32>() + rest
}

fn centred_square_sum(values: &[f32], mean: f32) -> f32 {
    let mut lanes = [0f32; LANES];
    let mut chunks = values.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (lane, v) in lanes.iter_mut().zip(chunk) {
            let c = v - mean;
            *lane += c * c;
        }
    }
    let rest: f32 = chunks
        .remainder()
        .iter()
        .map(|v| (v - mean) * (v - mean))
        .sum();
    lanes.iter().sum::<f32>() + rest
}

/// Mean and `1/√(σ² + ε)` of one row (two passes: no cancellation for rows far from 0).
fn row_moments(row: &[f32], eps: f64) -> (f32, f32) {
    let width = row.len() as f32;
    let mean = sum(row) / width;
    let variance = centred_square_sum(row, mean) / width;
    (mean, (1.0 / (variance as f64 + eps).sqrt()) as f32)
}

/// Runs `work(row, out_row)` over the rows of `out` on candle's worker pool (a second pool would
/// fight it for the cores). Blocks of rows are handed out behind uncontended locks so that each
/// worker writes straight into the output.
fn par_rows(out: &mut [f32], width: usize, work: impl Fn(usize, &mut [f32]) + Sync) {
    const ROWS_PER_BLOCK: usize = 32;
    let width = width.max(1);
    let blocks: Vec<Mutex<&mut [f32]>> = out
        .chunks_mut(ROWS_PER_BLOCK * width)
        .map(Mutex::new)
        .collect();
    candle_core::utils::barrier_pool().execute_chunked(blocks.len(), |range| {
        for b in range {
            let mut block = blocks[b].lock().expect("no worker panicked");
            for (k, row) in block.chunks_exact_mut(width).enumerate() {
                work(b * ROWS_PER_BLOCK + k, row);
            }
        }
    });
}

fn contiguous<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("row normalisation runs on f32");
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("row normalisation needs a contiguous tensor"),
    }
}

fn width_of(layout: &Layout) -> usize {
    layout.shape().dims().last().copied().unwrap_or(1)
}

impl CustomOp1 for NormaliseRows {
    fn name(&self) -> &'static str {
        "crossclr-normalise-rows"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(storage, layout)?;
        let width = width_of(layout);
        let mut out = vec![0f32; x.len()];
        par_rows(&mut out, width, |r, dst| {
            let row = &x[r * width..(r + 1) * width];
            let (mean, inverse) = row_moments(row, self.eps);
            for (d, v) in dst.iter_mut().zip(row) {
                *d = (v - mean) * inverse;
            }
        });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(arg.apply_op2_no_bwd(
            &grad.contiguous()?,
            &NormaliseRowsGrad { eps: self.eps },
        )?))
    }
}

impl CustomOp2 for NormaliseRowsGrad {
    fn name(&self) -> &'static str {
        "crossclr-normalise-rows-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(s1, l1)?;
        let g = contiguous(s2, l2)?;
        let width = width_of(l1);
        let mut out = vec![0f32; x.len()];
        par_rows(&mut out, width, |r, dst| {
            let span = r * width..(r + 1) * width;
            let (row, grad) = (&x[span.clone()], &g[span]);
            let (mean, inverse) = row_moments(row, self.eps);
            let w = width as f32;
            let mean_grad = sum(grad) / w;
            let along = centred_dot(row, grad, mean) * inverse / w;
            for ((d, v), g) in dst.iter_mut().zip(row).zip(grad) {
                let normalised = (v - mean) * inverse;
                *d = inverse * (g - mean_grad - normalised * along);
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> Tensor {
        let data: Vec<f32> = (0..5 * 7)
            .map(|i| ((i as f32) * 0.37).sin() * 3.0 + 10.0)
            .collect();
        Tensor::from_vec(data, (5, 7), &Device::Cpu).unwrap()
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn fused_rows_match_the_composed_ops() {
        let x = input();
        let fused = normalise_rows(&x, 1e-5).unwrap();
        let composed = normalise_rows_composed(&x, 1e-5).unwrap();
        assert!(max_abs_diff(&fused, &composed) < 1e-5);
        let row: Vec<f32> = fused.get(2).unwrap().to_vec1().unwrap();
        let mean: f32 = row.iter().sum::<f32>() / 7.0;
        let variance: f32 = row.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 7.0;
        assert!(mean.abs() < 1e-6 && (variance - 1.0).abs() < 1e-4);
    }

    #[test]
    fn fused_gradient_matches_the_composed_ops() {
        let x = candle_core::Var::from_tensor(&input()).unwrap();
        // A non-trivial upstream gradient: weights differ per entry.
        let weights = Tensor::from_vec(
            (0..35).map(|i| (i as f32 * 0.91).cos()).collect::<Vec<_>>(),
            (5, 7),
            &Device::Cpu,
        )
        .unwrap();
        let grad_of = |f: fn(&Tensor, f64) -> Result<Tensor>| {
            let y = f(x.as_tensor(), 1e-5).unwrap();
            let loss = (y * &weights).unwrap().sum_all().unwrap();
            loss.backward().unwrap().get(&x).unwrap().clone()
        };
        let fused = grad_of(normalise_rows);
        let composed = grad_of(normalise_rows_composed);
        assert!(max_abs_diff(&fused, &composed) < 1e-5);
        // Normalisation is shift-invariant per row, so each row's gradient sums to 0.
        let sums: Vec<f32> = fused.sum(1).unwrap().to_vec1().unwrap();
        assert!(sums.iter().all(|s| s.abs() < 1e-5), "{sums:?}");
        assert!(max_abs_diff(&fused, &fused.zeros_like().unwrap()) > 1e-3);
    }
}
