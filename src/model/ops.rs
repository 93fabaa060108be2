//! Fused CPU kernels for the heads' hot elementwise chains, each with its gradient written out.
//!
//! Why they exist (measured on the paper-size step, 8192 rows × 384 channels per network):
//! - candle-nn's fast `layer_norm` has *no* backward pass (gradients silently stop at it), and the
//!   composed one costs ~10 ops;
//! - a bias broadcast over (n, t, A) is reduced back over both leading dimensions in the backward
//!   pass, which candle does with a slow strided reduction (30 ms per linear layer);
//! - candle's unary ops (GELU, exp) run on one thread, and every op allocates its output.
//!
//! So: bias add, LayerNorm (normalisation and affine), GELU, the attention softmax with its key
//! mask, and the attention-aware pooling's softmax-over-steps-and-sum are single ops on the CPU,
//! rows in parallel on candle's worker pool, column sums per fixed block of rows added in block
//! order (so results do not depend on thread timing). On other devices, or other dtypes, the
//! same functions compose candle ops; the tests check both agree, values and gradients.

use std::ops::Range;
use std::sync::{Arc, Mutex};

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, D, DType, Device, Layout, Result, Shape, Storage,
    Tensor,
};

#[cfg(test)]
thread_local! {
    /// Makes this thread take the composed path everywhere: the path other devices take, so that
    /// the tests can run a whole head through it on the CPU.
    pub(crate) static FORCE_COMPOSED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the fused kernels apply: f32 on the CPU.
fn fused(tensors: &[&Tensor]) -> bool {
    #[cfg(test)]
    if FORCE_COMPOSED.with(|forced| forced.get()) {
        return false;
    }
    tensors
        .iter()
        .all(|t| matches!(t.device(), Device::Cpu) && t.dtype() == DType::F32)
}

// ------------------------------------------------------------------------------ parallel helpers

/// Elements per block of rows handed to a worker (~64 KiB of f32).
const BLOCK_ELEMENTS: usize = 16 * 1024;

/// Runs `work(block, rows)` for fixed blocks of `per_block` rows on candle's worker pool (a second
/// pool would fight it for the cores) and returns the results in block order.
fn par_blocks<P: Send>(
    rows: usize,
    per_block: usize,
    work: impl Fn(usize, Range<usize>) -> P + Sync,
) -> Vec<P> {
    let per_block = per_block.max(1);
    let blocks = rows.div_ceil(per_block);
    let results: Vec<Mutex<Option<P>>> = (0..blocks).map(|_| Mutex::new(None)).collect();
    candle_core::utils::barrier_pool().execute_chunked(blocks, |range| {
        for b in range {
            let span = b * per_block..((b + 1) * per_block).min(rows);
            let partial = work(b, span);
            *results[b].lock().expect("no worker panicked") = Some(partial);
        }
    });
    results
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .expect("no worker panicked")
                .expect("every block ran")
        })
        .collect()
}

/// Rows per block for rows of `width` elements.
fn rows_per_block(width: usize) -> usize {
    (BLOCK_ELEMENTS / width.max(1)).max(1)
}

/// Like [`par_blocks`], each block also writing its rows of `out` (rows of `width`): the output is
/// split up front and each block's slice sits behind its own, uncontended, lock.
fn par_rows<P: Send>(
    out: &mut [f32],
    width: usize,
    work: impl Fn(Range<usize>, &mut [f32]) -> P + Sync,
) -> Vec<P> {
    let width = width.max(1);
    let rows = out.len() / width;
    let per_block = rows_per_block(width);
    let slots: Vec<Mutex<&mut [f32]>> = out.chunks_mut(per_block * width).map(Mutex::new).collect();
    par_blocks(rows, per_block, |b, span| {
        let mut slot = slots[b].lock().expect("no worker panicked");
        work(span, &mut slot)
    })
}

/// Adds per-block partial column sums in block order.
fn add_partials(partials: Vec<Vec<f32>>, width: usize) -> Vec<f32> {
    let mut total = vec![0f32; width];
    for partial in partials {
        for (t, p) in total.iter_mut().zip(partial) {
            *t += p;
        }
    }
    total
}

fn slice<'a>(storage: &'a CpuStorage, layout: &Layout, what: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{what} runs on f32");
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{what} needs contiguous tensors"),
    }
}

fn last_dim(layout: &Layout) -> usize {
    layout.shape().dims().last().copied().unwrap_or(1)
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

/// `Σ a·b`, vectorised like [`sum`].
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; LANES];
    let mut chunks = a.chunks_exact(LANES);
    let mut others = b.chunks_exact(LANES);
    for (x, y) in (&mut chunks).zip(&mut others) {
        for ((lane, x), y) in lanes.iter_mut().zip(x).zip(y) {
            *lane += x * y;
        }
    }
    let rest: f32 = chunks
        .remainder()
        .iter()
        .zip(others.remainder())
        .map(|(x, y)| x * y)
        .sum();
    lanes.iter().sum::<f32>() + rest
}

/// `Σ (x − mean)²`.
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

// ------------------------------------------------------------------------------------ bias add

/// `y + b` with `b` broadcast along the last dimension of `y`.
pub(crate) fn add_bias(y: &Tensor, bias: &Tensor) -> Result<Tensor> {
    if fused(&[y, bias]) {
        y.contiguous()?.apply_op2(&bias.contiguous()?, AddBias)
    } else {
        y.broadcast_add(bias)
    }
}

struct AddBias;

impl CustomOp2 for AddBias {
    fn name(&self) -> &'static str {
        "crossclr-add-bias"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let y = slice(s1, l1, "bias add")?;
        let bias = slice(s2, l2, "bias add")?;
        let width = last_dim(l1);
        if bias.len() != width {
            candle_core::bail!("bias of {} for rows of {width}", bias.len());
        }
        let mut out = vec![0f32; y.len()];
        par_rows(&mut out, width, |rows, dst| {
            let src = &y[rows.start * width..rows.end * width];
            for (d_row, s_row) in dst.chunks_exact_mut(width).zip(src.chunks_exact(width)) {
                for ((d, s), b) in d_row.iter_mut().zip(s_row).zip(bias) {
                    *d = s + b;
                }
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _y: &Tensor,
        _bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((
            Some(grad.clone()),
            Some(grad.contiguous()?.apply_op1_no_bwd(&ColumnSums)?),
        ))
    }
}

/// Sums over every dimension but the last.
struct ColumnSums;

impl CustomOp1 for ColumnSums {
    fn name(&self) -> &'static str {
        "crossclr-column-sums"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = slice(storage, layout, "column sums")?;
        let width = last_dim(layout).max(1);
        let partials = par_blocks(g.len() / width, rows_per_block(width), |_, rows| {
            let mut partial = vec![0f32; width];
            for row in g[rows.start * width..rows.end * width].chunks_exact(width) {
                for (p, v) in partial.iter_mut().zip(row) {
                    *p += v;
                }
            }
            partial
        });
        Ok((
            CpuStorage::F32(add_partials(partials, width)),
            Shape::from(width),
        ))
    }
}

// ------------------------------------------------------------------------------------- dropout

/// Dropout multipliers for `count` entries: 0 (dropped, probability `p`) or 1/(1 − p) (kept).
/// Entries are drawn in fixed blocks of [`BLOCK_ELEMENTS`], block b from the ChaCha8 stream b of
/// `seed` (one u32 per entry, kept when ≥ p·2³²), so the mask depends only on `seed`, never on
/// how the blocks were spread over threads.
pub(crate) fn keep_multipliers(seed: u64, count: usize, p: f64) -> Vec<f32> {
    let threshold = (p * 4_294_967_296.0) as u64;
    let scale = (1.0 / (1.0 - p)) as f32;
    let mut out = vec![0f32; count];
    // Rows of width 1: a block is a run of BLOCK_ELEMENTS entries.
    par_rows(&mut out, 1, |span, dst| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream((span.start / BLOCK_ELEMENTS) as u64);
        for d in dst.iter_mut() {
            *d = if rng.next_u32() as u64 >= threshold {
                scale
            } else {
                0.0
            };
        }
    });
    out
}

// ----------------------------------------------------------------------------------- LayerNorm

/// Dropout multipliers: 0 (dropped) or 1/(1 − p) (kept), one per entry; `None` = keep all.
pub(crate) type Keep = Option<Arc<Vec<f32>>>;

/// `LN(base + k ⊙ y)` over the last dimension, `LN(s) = (s − μ)/√(σ² + ε) · γ + β` (biased
/// variance): the input LayerNorm after input dropout (no base) and the post-norm residual
/// `LN(x + Dropout(sublayer(x)))` of a transformer layer, each one op.
///
/// Fused gradient: with `x̂` the normalised row and `g' = g ⊙ γ`,
/// `ds = (g' − mean(g') − x̂·mean(g' ⊙ x̂)) / √(σ² + ε)`; `dbase = ds`, `dy = ds ⊙ k`,
/// `dγ = Σ_rows g ⊙ x̂`, `dβ = Σ_rows g`.
pub(crate) fn layer_norm(
    base: Option<&Tensor>,
    y: &Tensor,
    keep: Keep,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
) -> Result<Tensor> {
    if let Some(base) = base
        && base.dims() != y.dims()
    {
        candle_core::bail!("residual {:?} beside {:?}", base.dims(), y.dims());
    }
    if keep.as_ref().is_some_and(|k| k.len() != y.elem_count()) {
        candle_core::bail!("dropout mask of the wrong size for {:?}", y.dims());
    }
    let all: Vec<&Tensor> = base.into_iter().chain([y, gamma, beta]).collect();
    if !fused(&all) {
        return layer_norm_composed(base, y, keep, gamma, beta, eps);
    }
    // γ and β travel as one (2, W) argument: candle's custom ops take at most three.
    let affine = Tensor::stack(&[gamma, beta], 0)?;
    let op = Norm {
        keep,
        eps,
        residual: base.is_some(),
    };
    match base {
        Some(base) => base.contiguous()?.apply_op3(&y.contiguous()?, &affine, op),
        None => y.contiguous()?.apply_op2(&affine, op),
    }
}

/// The same from candle ops (any device and dtype).
pub(crate) fn layer_norm_composed(
    base: Option<&Tensor>,
    y: &Tensor,
    keep: Keep,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
) -> Result<Tensor> {
    let y = match keep {
        Some(keep) => {
            (y * Tensor::from_vec(keep.to_vec(), y.shape(), y.device())?.to_dtype(y.dtype())?)?
        }
        None => y.clone(),
    };
    let s = match base {
        Some(base) => (base + y)?,
        None => y,
    };
    let centred = s.broadcast_sub(&s.mean_keepdim(D::Minus1)?)?;
    let variance = centred.sqr()?.mean_keepdim(D::Minus1)?;
    centred
        .broadcast_div(&(variance + eps)?.sqrt()?)?
        .broadcast_mul(gamma)?
        .broadcast_add(beta)
}

struct Norm {
    keep: Keep,
    eps: f64,
    residual: bool,
}

/// Mean and `1/√(σ² + ε)` of one row (two passes: no cancellation for rows far from 0).
fn row_moments(row: &[f32], eps: f64) -> (f32, f32) {
    let width = row.len() as f32;
    let mean = sum(row) / width;
    let variance = centred_square_sum(row, mean) / width;
    (mean, (1.0 / (variance as f64 + eps).sqrt()) as f32)
}

/// The rows the norm sees: `s = base + k ⊙ y`, row `r` written into `out`.
fn norm_input(base: Option<&[f32]>, y: &[f32], keep: Option<&[f32]>, r: usize, out: &mut [f32]) {
    let width = out.len();
    let span = r * width..(r + 1) * width;
    out.copy_from_slice(&y[span.clone()]);
    if let Some(keep) = keep {
        for (o, k) in out.iter_mut().zip(&keep[span.clone()]) {
            *o *= k;
        }
    }
    if let Some(base) = base {
        for (o, b) in out.iter_mut().zip(&base[span]) {
            *o += b;
        }
    }
}

impl Norm {
    fn forward(
        &self,
        base: Option<&[f32]>,
        y: &[f32],
        affine: &[f32],
        shape: &Shape,
    ) -> Result<(CpuStorage, Shape)> {
        let width = shape.dims().last().copied().unwrap_or(1);
        if affine.len() != 2 * width {
            candle_core::bail!(
                "layer norm of width {width} with {} affine values",
                affine.len()
            );
        }
        let (gamma, beta) = affine.split_at(width);
        let keep = self.keep.as_deref().map(|k| k.as_slice());
        let mut out = vec![0f32; y.len()];
        par_rows(&mut out, width, |rows, dst| {
            for (k, d_row) in dst.chunks_exact_mut(width).enumerate() {
                norm_input(base, y, keep, rows.start + k, d_row);
                let (mean, inverse) = row_moments(d_row, self.eps);
                for ((d, g), b) in d_row.iter_mut().zip(gamma).zip(beta) {
                    *d = (*d - mean) * inverse * g + b;
                }
            }
        });
        Ok((CpuStorage::F32(out), shape.clone()))
    }

    /// `[ds ⊙ k; dγ; dβ]`, and `ds` ahead of them when there is a base.
    fn backward(
        &self,
        base: Option<&Tensor>,
        y: &Tensor,
        affine: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Tensor, Tensor)> {
        let width = y.dim(D::Minus1)?;
        let rows = y.elem_count() / width.max(1);
        let op = NormGrad {
            keep: self.keep.clone(),
            eps: self.eps,
            grad: grad.contiguous()?,
        };
        let all = match base {
            Some(base) => base.apply_op3_no_bwd(y, affine, &op)?,
            None => y.apply_op2_no_bwd(affine, &op)?,
        };
        let offset = if base.is_some() { rows } else { 0 };
        let d_base = match base {
            Some(base) => Some(all.narrow(0, 0, rows)?.reshape(base.shape())?),
            None => None,
        };
        let d_y = all.narrow(0, offset, rows)?.reshape(y.shape())?;
        Ok((d_base, d_y, all.narrow(0, offset + rows, 2)?))
    }
}

impl CustomOp2 for Norm {
    fn name(&self) -> &'static str {
        "crossclr-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let y = slice(s1, l1, "layer norm")?;
        let affine = slice(s2, l2, "layer norm")?;
        self.forward(None, y, affine, l1.shape())
    }

    fn bwd(
        &self,
        y: &Tensor,
        affine: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (_, d_y, d_affine) = self.backward(None, y, affine, grad)?;
        Ok((Some(d_y), Some(d_affine)))
    }
}

impl CustomOp3 for Norm {
    fn name(&self) -> &'static str {
        "crossclr-residual-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let base = slice(s1, l1, "layer norm")?;
        let y = slice(s2, l2, "layer norm")?;
        let affine = slice(s3, l3, "layer norm")?;
        self.forward(Some(base), y, affine, l2.shape())
    }

    fn bwd(
        &self,
        base: &Tensor,
        y: &Tensor,
        affine: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        debug_assert!(self.residual);
        let (d_base, d_y, d_affine) = self.backward(Some(base), y, affine, grad)?;
        Ok((d_base, Some(d_y), Some(d_affine)))
    }
}

/// Inputs: (base,) y, affine; the output gradient rides in the op.
struct NormGrad {
    keep: Keep,
    eps: f64,
    grad: Tensor,
}

impl NormGrad {
    fn run(
        &self,
        base: Option<&[f32]>,
        y: &[f32],
        affine: &[f32],
        width: usize,
    ) -> Result<Vec<f32>> {
        with_f32(&self.grad, |g| Ok(self.run_with(base, y, affine, g, width)))
    }

    fn run_with(
        &self,
        base: Option<&[f32]>,
        y: &[f32],
        affine: &[f32],
        g: &[f32],
        width: usize,
    ) -> Vec<f32> {
        let (gamma, _) = affine.split_at(width);
        let keep = self.keep.as_deref().map(|k| k.as_slice());
        let w = width as f32;
        let leading = if base.is_some() { 2 } else { 1 };
        let mut out = vec![0f32; leading * y.len() + 2 * width];
        let (d_rows, tail) = out.split_at_mut(leading * y.len());
        let (d_base, d_y) = if base.is_some() {
            let (a, b) = d_rows.split_at_mut(y.len());
            (Some(a), b)
        } else {
            (None, d_rows)
        };
        let work = |span: Range<usize>, ds: &mut [f32]| {
            let mut d_gamma = vec![0f32; width];
            let mut d_beta = vec![0f32; width];
            let mut normalised = vec![0f32; width];
            let mut scaled = vec![0f32; width];
            for (k, ds_row) in ds.chunks_exact_mut(width).enumerate() {
                let r = span.start + k;
                let grad = &g[r * width..(r + 1) * width];
                norm_input(base, y, keep, r, &mut normalised);
                let (mean, inverse) = row_moments(&normalised, self.eps);
                for j in 0..width {
                    normalised[j] = (normalised[j] - mean) * inverse;
                    scaled[j] = grad[j] * gamma[j];
                    d_gamma[j] += grad[j] * normalised[j];
                    d_beta[j] += grad[j];
                }
                let mean_scaled = sum(&scaled) / w;
                let along = dot(&scaled, &normalised) / w;
                for ((d, s), n) in ds_row.iter_mut().zip(&scaled).zip(&normalised) {
                    *d = inverse * (s - mean_scaled - n * along);
                }
            }
            (d_gamma, d_beta)
        };
        let partials = match d_base {
            Some(d_base) => {
                // ds goes to the base rows; dy = ds ⊙ k to the same block of the y rows.
                let d_y_slots: Vec<Mutex<&mut [f32]>> = d_y
                    .chunks_mut(rows_per_block(width) * width)
                    .map(Mutex::new)
                    .collect();
                par_rows(d_base, width, |span, ds| {
                    let partial = work(span.clone(), ds);
                    let block = span.start / rows_per_block(width);
                    let mut dy = d_y_slots[block].lock().expect("no worker panicked");
                    dy.copy_from_slice(ds);
                    if let Some(keep) = keep {
                        for (d, k) in dy
                            .iter_mut()
                            .zip(&keep[span.start * width..span.end * width])
                        {
                            *d *= k;
                        }
                    }
                    partial
                })
            }
            None => par_rows(d_y, width, |span, ds| {
                let partial = work(span.clone(), ds);
                if let Some(keep) = keep {
                    for (d, k) in ds
                        .iter_mut()
                        .zip(&keep[span.start * width..span.end * width])
                    {
                        *d *= k;
                    }
                }
                partial
            }),
        };
        let (gammas, betas): (Vec<_>, Vec<_>) = partials.into_iter().unzip();
        tail[..width].copy_from_slice(&add_partials(gammas, width));
        tail[width..].copy_from_slice(&add_partials(betas, width));
        out
    }
}

impl CustomOp2 for NormGrad {
    fn name(&self) -> &'static str {
        "crossclr-layer-norm-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let y = slice(s1, l1, "layer norm gradient")?;
        let affine = slice(s2, l2, "layer norm gradient")?;
        let width = last_dim(l1);
        let out = self.run(None, y, affine, width)?;
        let rows = out.len() / width;
        Ok((CpuStorage::F32(out), Shape::from((rows, width))))
    }
}

impl CustomOp3 for NormGrad {
    fn name(&self) -> &'static str {
        "crossclr-residual-layer-norm-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let base = slice(s1, l1, "layer norm gradient")?;
        let y = slice(s2, l2, "layer norm gradient")?;
        let affine = slice(s3, l3, "layer norm gradient")?;
        let width = last_dim(l2);
        let out = self.run(Some(base), y, affine, width)?;
        let rows = out.len() / width;
        Ok((CpuStorage::F32(out), Shape::from((rows, width))))
    }
}

// ---------------------------------------------------------------------------------------- GELU

/// `GELU(x) ⊙ k`: GELU in the exact (erf) form, as PyTorch's `nn.GELU()` that COOT uses, with the
/// dropout that follows it in every place the heads use it. The fused kernel evaluates erf with
/// Abramowitz & Stegun 7.1.26 (absolute error ≤ 1.5e-7, below f32's resolution of Φ) so that it
/// vectorises; its gradient is `g ⊙ k ⊙ (Φ(x) + x·φ(x))`.
pub(crate) fn gelu(x: &Tensor, keep: Keep) -> Result<Tensor> {
    if keep.as_ref().is_some_and(|k| k.len() != x.elem_count()) {
        candle_core::bail!("dropout mask of the wrong size for {:?}", x.dims());
    }
    if fused(&[x]) {
        x.contiguous()?.apply_op1(Gelu { keep })
    } else {
        let y = x.gelu_erf()?;
        match keep {
            Some(keep) => {
                y * Tensor::from_vec(keep.to_vec(), x.shape(), x.device())?.to_dtype(x.dtype())?
            }
            None => Ok(y),
        }
    }
}

/// `(Φ(x), φ(x))` of the standard normal.
#[inline]
fn normal_cdf_pdf(x: f32) -> (f32, f32) {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [
        0.254_829_6,
        -0.284_496_74,
        1.421_413_8,
        -1.453_152_1,
        1.061_405_4,
    ];
    const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;
    let z = x.abs() * std::f32::consts::FRAC_1_SQRT_2;
    let t = 1.0 / (1.0 + P * z);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    let gauss = (-z * z).exp(); // e^{−x²/2}
    let erf = 1.0 - poly * gauss;
    let erf = if x < 0.0 { -erf } else { erf };
    (0.5 * (1.0 + erf), gauss * FRAC_1_SQRT_2PI)
}

struct Gelu {
    keep: Keep,
}

struct GeluGrad {
    keep: Keep,
}

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "crossclr-gelu"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(storage, layout, "gelu")?;
        let keep = self.keep.as_deref().map(|k| k.as_slice());
        let mut out = vec![0f32; x.len()];
        // Elementwise: rows of width 1, so a block is a run of elements.
        par_rows(&mut out, 1, |span, dst| {
            for (d, &v) in dst.iter_mut().zip(&x[span.clone()]) {
                *d = v * normal_cdf_pdf(v).0;
            }
            if let Some(keep) = keep {
                for (d, k) in dst.iter_mut().zip(&keep[span]) {
                    *d *= k;
                }
            }
        });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(arg.apply_op2_no_bwd(
            &grad.contiguous()?,
            &GeluGrad {
                keep: self.keep.clone(),
            },
        )?))
    }
}

impl CustomOp2 for GeluGrad {
    fn name(&self) -> &'static str {
        "crossclr-gelu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = slice(s1, l1, "gelu gradient")?;
        let g = slice(s2, l2, "gelu gradient")?;
        let keep = self.keep.as_deref().map(|k| k.as_slice());
        let mut out = vec![0f32; x.len()];
        par_rows(&mut out, 1, |span, dst| {
            for ((d, &v), &g) in dst.iter_mut().zip(&x[span.clone()]).zip(&g[span.clone()]) {
                let (cdf, pdf) = normal_cdf_pdf(v);
                *d = g * (cdf + v * pdf);
            }
            if let Some(keep) = keep {
                for (d, k) in dst.iter_mut().zip(&keep[span]) {
                    *d *= k;
                }
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

// ------------------------------------------------------------------------- positions, heads

/// `x + table[step]` for x (n·t, A) whose row r is step `r mod t`; the table (≥ t, A) is a
/// constant and gets no gradient.
pub(crate) fn add_positions(x: &Tensor, table: &Tensor, steps: usize) -> Result<Tensor> {
    let (rows, width) = x.dims2()?;
    let (table_rows, table_width) = table.dims2()?;
    if steps == 0 || rows % steps != 0 || steps > table_rows || width != table_width {
        candle_core::bail!(
            "positions: {rows}×{width} rows of {steps} steps against a {table_rows}×{table_width} table"
        );
    }
    if fused(&[x, table]) {
        x.contiguous()?
            .apply_op2(&table.narrow(0, 0, steps)?.contiguous()?, AddPositions)
    } else {
        x.reshape((rows / steps, steps, width))?
            .broadcast_add(&table.narrow(0, 0, steps)?)?
            .reshape((rows, width))
    }
}

struct AddPositions;

impl CustomOp2 for AddPositions {
    fn name(&self) -> &'static str {
        "crossclr-add-positions"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = slice(s1, l1, "positions")?;
        let table = slice(s2, l2, "positions")?;
        let width = last_dim(l1);
        let steps = table.len() / width.max(1);
        let mut out = vec![0f32; x.len()];
        par_rows(&mut out, width, |rows, dst| {
            for (k, d_row) in dst.chunks_exact_mut(width).enumerate() {
                let r = rows.start + k;
                let step = r % steps;
                let (src, pos) = (
                    &x[r * width..(r + 1) * width],
                    &table[step * width..(step + 1) * width],
                );
                for ((d, s), p) in d_row.iter_mut().zip(src).zip(pos) {
                    *d = s + p;
                }
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _table: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(grad.clone()), None))
    }
}

/// Swaps the two middle axes of `x` read as contiguous `[batch, a, b, c]` and multiplies by
/// `scale`, returning the result with shape `out`: the head split (n, t, H, d) → (n, H, t, d) and
/// merge of attention, and the head-major layout of the pooling's second layer, each one copy
/// with no reshape nodes around it. Its gradient is the inverse swap, scaled alike.
pub(crate) fn swap_axes(x: &Tensor, dims: [usize; 4], scale: f64, out: &[usize]) -> Result<Tensor> {
    let [batch, a, b, c] = dims;
    if batch * a * b * c != x.elem_count() || out.iter().product::<usize>() != x.elem_count() {
        candle_core::bail!("cannot read {:?} as {dims:?} and write {out:?}", x.dims());
    }
    if fused(&[x]) {
        x.contiguous()?.apply_op1(SwapAxes {
            dims,
            scale: scale as f32,
            out: out.to_vec(),
        })
    } else {
        let swapped = x.reshape((batch, a, b, c))?.transpose(1, 2)?.contiguous()?;
        let swapped = if scale == 1.0 {
            swapped
        } else {
            (swapped * scale)?
        };
        swapped.reshape(out)
    }
}

struct SwapAxes {
    dims: [usize; 4],
    scale: f32,
    out: Vec<usize>,
}

impl CustomOp1 for SwapAxes {
    fn name(&self) -> &'static str {
        "crossclr-swap-axes"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(storage, layout, "axis swap")?;
        let [_, a, b, c] = self.dims;
        let mut out = vec![0f32; x.len()];
        // Output row (batch, j, i) of c values is input row (batch, i, j).
        par_rows(&mut out, c, |rows, dst| {
            for (k, d_row) in dst.chunks_exact_mut(c).enumerate() {
                let r = rows.start + k;
                let (batch, rest) = (r / (a * b), r % (a * b));
                let (j, i) = (rest / a, rest % a);
                let src = ((batch * a + i) * b + j) * c;
                for (d, s) in d_row.iter_mut().zip(&x[src..src + c]) {
                    *d = s * self.scale;
                }
            }
        });
        Ok((CpuStorage::F32(out), Shape::from(self.out.clone())))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let [batch, a, b, c] = self.dims;
        Ok(Some(swap_axes(
            &grad.detach(),
            [batch, b, a, c],
            self.scale as f64,
            arg.dims(),
        )?))
    }
}

// ------------------------------------------------------------------------ attention softmax

/// `softmax(logits + bias)` over the last dimension, for attention logits (n·heads, tq, tk) and a
/// key bias (n, tk) (0 for real keys, a large negative number for padding). The bias is a
/// constant: it gets no gradient. Fused gradient: `dlogits = p ⊙ (g − Σ p ⊙ g)`.
pub(crate) fn masked_softmax(logits: &Tensor, key_bias: &Tensor, heads: usize) -> Result<Tensor> {
    let (batch, tq, tk) = logits.dims3()?;
    let n = batch / heads.max(1);
    if key_bias.dims() != [n, tk] || n * heads != batch {
        candle_core::bail!(
            "key bias {:?} does not fit attention logits {:?} of {heads} heads",
            key_bias.dims(),
            logits.dims()
        );
    }
    if fused(&[logits, key_bias]) {
        logits.contiguous()?.apply_op2(
            &key_bias.contiguous()?,
            MaskedSoftmax {
                rows_per_sequence: heads * tq,
            },
        )
    } else {
        let biased = logits
            .reshape((n, heads, tq, tk))?
            .broadcast_add(&key_bias.reshape((n, 1, 1, tk))?)?;
        softmax_composed(&biased, 3)?.reshape((batch, tq, tk))
    }
}

/// Softmax along `dim` from candle ops. The shift by the maximum is detached: softmax does not
/// depend on it, so its gradient is exactly zero and need not flow through the max.
pub(crate) fn softmax_composed(x: &Tensor, dim: usize) -> Result<Tensor> {
    let shifted = x.broadcast_sub(&x.max_keepdim(dim)?.detach())?;
    let exp = shifted.exp()?;
    exp.broadcast_div(&exp.sum_keepdim(dim)?)
}

struct MaskedSoftmax {
    /// Rows of logits per row of the bias: heads · tq.
    rows_per_sequence: usize,
}

struct SoftmaxGrad;

impl CustomOp2 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "crossclr-masked-softmax"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let logits = slice(s1, l1, "masked softmax")?;
        let bias = slice(s2, l2, "masked softmax")?;
        let width = last_dim(l1);
        let mut out = vec![0f32; logits.len()];
        par_rows(&mut out, width, |rows, dst| {
            for (k, d_row) in dst.chunks_exact_mut(width).enumerate() {
                let r = rows.start + k;
                let row = &logits[r * width..(r + 1) * width];
                let b = r / self.rows_per_sequence;
                let key_bias = &bias[b * width..(b + 1) * width];
                let mut max = f32::NEG_INFINITY;
                for ((d, l), kb) in d_row.iter_mut().zip(row).zip(key_bias) {
                    *d = l + kb;
                    max = max.max(*d);
                }
                for d in d_row.iter_mut() {
                    *d = (*d - max).exp();
                }
                let inverse = 1.0 / sum(d_row);
                for d in d_row.iter_mut() {
                    *d *= inverse;
                }
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _logits: &Tensor,
        _bias: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((
            Some(res.apply_op2_no_bwd(&grad.contiguous()?, &SoftmaxGrad)?),
            None,
        ))
    }
}

impl CustomOp2 for SoftmaxGrad {
    fn name(&self) -> &'static str {
        "crossclr-softmax-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let p = slice(s1, l1, "softmax gradient")?;
        let g = slice(s2, l2, "softmax gradient")?;
        let width = last_dim(l1);
        let mut out = vec![0f32; p.len()];
        par_rows(&mut out, width, |rows, dst| {
            for (k, d_row) in dst.chunks_exact_mut(width).enumerate() {
                let r = rows.start + k;
                let (p_row, g_row) = (
                    &p[r * width..(r + 1) * width],
                    &g[r * width..(r + 1) * width],
                );
                let along = dot(p_row, g_row);
                for ((d, p), g) in d_row.iter_mut().zip(p_row).zip(g_row) {
                    *d = p * (g - along);
                }
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

// -------------------------------------------------------------------- attention-aware pooling

/// The tail of attention-aware pooling: per sequence and channel, a softmax over the steps of
/// `logits + step_bias` (logits (n·t, c), step row r = step `r mod t` of sequence `r / t`;
/// step_bias (n, t)), optionally multiplied by a dropout keep-mask, then the weighted sum of the
/// step features `x` (n·t, c) → (n, c).
///
/// Fused gradient, with w the softmax weights, k the keep-mask and y the output:
/// `dx = w ⊙ k ⊙ g`, `dlogits = w ⊙ g ⊙ (k ⊙ x − y)`. The bias gets none.
pub(crate) fn pool_steps(
    logits: &Tensor,
    x: &Tensor,
    step_bias: &Tensor,
    keep: Keep,
) -> Result<Tensor> {
    let (rows, c) = logits.dims2()?;
    let (n, t) = step_bias.dims2()?;
    if x.dims() != [rows, c] || rows != n * t {
        candle_core::bail!(
            "pooling logits {:?}, features {:?} and step bias {:?} do not fit",
            logits.dims(),
            x.dims(),
            step_bias.dims()
        );
    }
    if keep.as_ref().is_some_and(|k| k.len() != rows * c) {
        candle_core::bail!(
            "dropout mask of the wrong size for pooling weights {:?}",
            logits.dims()
        );
    }
    if fused(&[logits, x, step_bias]) {
        logits.contiguous()?.apply_op3(
            &x.contiguous()?,
            &step_bias.contiguous()?,
            PoolSteps { keep },
        )
    } else {
        let weights = pool_weights_composed(&logits.reshape((n, t, c))?, step_bias)?;
        let weights = match keep {
            Some(keep) => (weights * Tensor::from_vec(keep.to_vec(), (n, t, c), logits.device())?)?,
            None => weights,
        };
        (weights * x.reshape((n, t, c))?)?.sum(1)
    }
}

/// The pooling weights from candle ops: softmax over the steps (dim 1) of `logits + step_bias`.
pub(crate) fn pool_weights_composed(logits: &Tensor, step_bias: &Tensor) -> Result<Tensor> {
    softmax_composed(&logits.broadcast_add(&step_bias.unsqueeze(2)?)?, 1)
}

struct PoolSteps {
    keep: Keep,
}

/// The softmax weights of one sequence, (t, c) row-major, written into `weights`.
fn step_weights(
    logits: &[f32],
    bias: &[f32],
    c: usize,
    weights: &mut [f32],
    max: &mut [f32],
    total: &mut [f32],
) {
    max.fill(f32::NEG_INFINITY);
    for ((w_row, l_row), b) in weights
        .chunks_exact_mut(c)
        .zip(logits.chunks_exact(c))
        .zip(bias)
    {
        for ((w, l), m) in w_row.iter_mut().zip(l_row).zip(max.iter_mut()) {
            *w = l + b;
            *m = m.max(*w);
        }
    }
    total.fill(0.0);
    for w_row in weights.chunks_exact_mut(c) {
        for ((w, m), s) in w_row.iter_mut().zip(max.iter()).zip(total.iter_mut()) {
            *w = (*w - m).exp();
            *s += *w;
        }
    }
    for s in total.iter_mut() {
        *s = 1.0 / *s;
    }
    for w_row in weights.chunks_exact_mut(c) {
        for (w, s) in w_row.iter_mut().zip(total.iter()) {
            *w *= s;
        }
    }
}

impl CustomOp3 for PoolSteps {
    fn name(&self) -> &'static str {
        "crossclr-pool-steps"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let logits = slice(s1, l1, "pooling")?;
        let x = slice(s2, l2, "pooling")?;
        let bias = slice(s3, l3, "pooling")?;
        let (_, c) = l1.shape().dims2()?;
        let (n, t) = l3.shape().dims2()?;
        let keep = self.keep.as_deref().map(|k| k.as_slice());
        let mut out = vec![0f32; n * c];
        par_rows(&mut out, c, |rows, dst| {
            let (mut weights, mut max, mut total) =
                (vec![0f32; t * c], vec![0f32; c], vec![0f32; c]);
            for (k, d_row) in dst.chunks_exact_mut(c).enumerate() {
                let s = rows.start + k;
                let span = s * t * c..(s + 1) * t * c;
                step_weights(
                    &logits[span.clone()],
                    &bias[s * t..(s + 1) * t],
                    c,
                    &mut weights,
                    &mut max,
                    &mut total,
                );
                if let Some(keep) = keep {
                    for (w, k) in weights.iter_mut().zip(&keep[span.clone()]) {
                        *w *= k;
                    }
                }
                d_row.fill(0.0);
                for (w_row, x_row) in weights.chunks_exact(c).zip(x[span.clone()].chunks_exact(c)) {
                    for ((d, w), v) in d_row.iter_mut().zip(w_row).zip(x_row) {
                        *d += w * v;
                    }
                }
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((n, c))))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        x: &Tensor,
        bias: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        // One pass gives both, stacked: [dlogits; dx] (2·n·t, c). The small (n, c) output and its
        // gradient ride in the op rather than as arguments.
        let both = logits.apply_op3_no_bwd(
            x,
            bias,
            &PoolStepsGrad {
                keep: self.keep.clone(),
                output: res.contiguous()?,
                grad: grad.contiguous()?,
            },
        )?;
        let rows = logits.dim(0)?;
        Ok((
            Some(both.narrow(0, 0, rows)?),
            Some(both.narrow(0, rows, rows)?),
            None,
        ))
    }
}

/// Inputs: logits and x (n·t, c), the bias (n, t). Output `[dlogits; dx]` (2·n·t, c).
struct PoolStepsGrad {
    keep: Keep,
    /// The forward output y (n, c), contiguous.
    output: Tensor,
    /// Its gradient g (n, c), contiguous.
    grad: Tensor,
}

/// Runs `work` on the f32 data of a contiguous CPU tensor that is *not* an argument of the running
/// op (an op takes at most three; a gradient rides in the op instead). Only read locks are taken.
fn with_f32<R>(tensor: &Tensor, work: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let (storage, layout) = tensor.storage_and_layout();
    let Storage::Cpu(storage) = &*storage else {
        candle_core::bail!("the fused kernels run on the CPU");
    };
    work(slice(storage, layout, "fused kernel")?)
}

impl CustomOp3 for PoolStepsGrad {
    fn name(&self) -> &'static str {
        "crossclr-pool-steps-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let logits = slice(s1, l1, "pooling gradient")?;
        let x = slice(s2, l2, "pooling gradient")?;
        let bias = slice(s3, l3, "pooling gradient")?;
        let (_, c) = l1.shape().dims2()?;
        let (n, t) = l3.shape().dims2()?;
        let (y, g) = (
            with_f32(&self.output, |v| Ok(v.to_vec()))?,
            with_f32(&self.grad, |v| Ok(v.to_vec()))?,
        );
        let keep = self.keep.as_deref().map(|k| k.as_slice());
        let mut out = vec![0f32; 2 * n * t * c];
        let (d_logits, d_x) = out.split_at_mut(n * t * c);
        // Sequence s owns rows s·t .. (s+1)·t of both outputs: hand out whole sequences.
        let d_x_slots: Vec<Mutex<&mut [f32]>> = d_x.chunks_mut(t * c).map(Mutex::new).collect();
        par_rows(d_logits, t * c, |rows, dst| {
            let (mut weights, mut max, mut total) =
                (vec![0f32; t * c], vec![0f32; c], vec![0f32; c]);
            for (k, dl) in dst.chunks_exact_mut(t * c).enumerate() {
                let s = rows.start + k;
                let span = s * t * c..(s + 1) * t * c;
                step_weights(
                    &logits[span.clone()],
                    &bias[s * t..(s + 1) * t],
                    c,
                    &mut weights,
                    &mut max,
                    &mut total,
                );
                let (y_row, g_row) = (&y[s * c..(s + 1) * c], &g[s * c..(s + 1) * c]);
                let mut dx = d_x_slots[s].lock().expect("no worker panicked");
                let x_rows = x[span.clone()].chunks_exact(c);
                for (step, ((dl_row, dx_row), x_row)) in dl
                    .chunks_exact_mut(c)
                    .zip(dx.chunks_exact_mut(c))
                    .zip(x_rows)
                    .enumerate()
                {
                    let w_row = &weights[step * c..(step + 1) * c];
                    match keep {
                        Some(keep) => {
                            let k_row = &keep[s * t * c + step * c..s * t * c + (step + 1) * c];
                            for j in 0..c {
                                let wg = w_row[j] * g_row[j];
                                dx_row[j] = wg * k_row[j];
                                dl_row[j] = wg * (k_row[j] * x_row[j] - y_row[j]);
                            }
                        }
                        None => {
                            for j in 0..c {
                                let wg = w_row[j] * g_row[j];
                                dx_row[j] = wg;
                                dl_row[j] = wg * (x_row[j] - y_row[j]);
                            }
                        }
                    }
                }
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((2 * n * t, c))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    fn grid(shape: &[usize], a: f32, b: f32) -> Tensor {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|i| (a * i as f32 + b).sin() * 2.0).collect();
        Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    fn largest(a: &Tensor) -> f32 {
        a.abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    /// Value and gradients (for `vars`) of `Σ f(vars) ⊙ weights` for a fused and a composed `f`.
    fn compare(
        vars: &[Tensor],
        fused: &dyn Fn(&[Tensor]) -> Tensor,
        composed: &dyn Fn(&[Tensor]) -> Tensor,
        tolerance: f32,
    ) {
        let vars: Vec<Var> = vars.iter().map(|t| Var::from_tensor(t).unwrap()).collect();
        let tensors: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let run = |f: &dyn Fn(&[Tensor]) -> Tensor| {
            let y = f(&tensors);
            let weights = grid(y.dims(), 0.91, 0.3);
            let grads = (&y * weights)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let grads: Vec<Tensor> = vars.iter().map(|v| grads.get(v).unwrap().clone()).collect();
            (y, grads)
        };
        let (y_fused, g_fused) = run(fused);
        let (y_composed, g_composed) = run(composed);
        assert_eq!(y_fused.dims(), y_composed.dims());
        let d = max_abs_diff(&y_fused, &y_composed);
        assert!(d < tolerance, "values differ by {d}");
        for (i, (a, b)) in g_fused.iter().zip(&g_composed).enumerate() {
            assert_eq!(a.dims(), b.dims());
            let d = max_abs_diff(a, b);
            assert!(
                d < tolerance * largest(b).max(1.0),
                "gradient {i} differs by {d}"
            );
            assert!(largest(b) > 1e-3, "gradient {i} is trivially zero");
        }
    }

    #[test]
    fn bias_add_matches_broadcast_add() {
        compare(
            &[grid(&[3, 70, 5], 0.37, 0.1), grid(&[5], 1.3, 0.2)],
            &|v| add_bias(&v[0], &v[1]).unwrap(),
            &|v| v[0].broadcast_add(&v[1]).unwrap(),
            1e-6,
        );
    }

    fn keep_mask(count: usize, every: usize) -> Keep {
        Some(Arc::new(
            (0..count)
                .map(|i| if i % every == 3 { 0.0 } else { 1.0 / 0.9 })
                .collect(),
        ))
    }

    #[test]
    fn layer_norm_matches_the_composed_ops() {
        // Rows far from 0 and of a width that is not a multiple of the lanes; more rows than one
        // block, so that the column sums of γ and β add partials.
        let (rows, width) = (600, 37);
        let x = grid(&[rows, width], 0.37, 0.1).affine(3.0, 10.0).unwrap();
        let y = grid(&[rows, width], 0.19, 0.7);
        let (gamma, beta) = (grid(&[width], 0.7, 1.0), grid(&[width], 1.1, 0.5));
        for keep in [None, keep_mask(rows * width, 7)] {
            compare(
                &[x.clone(), gamma.clone(), beta.clone()],
                &|v| layer_norm(None, &v[0], keep.clone(), &v[1], &v[2], 1e-5).unwrap(),
                &|v| layer_norm_composed(None, &v[0], keep.clone(), &v[1], &v[2], 1e-5).unwrap(),
                2e-5,
            );
            compare(
                &[x.clone(), y.clone(), gamma.clone(), beta.clone()],
                &|v| layer_norm(Some(&v[0]), &v[1], keep.clone(), &v[2], &v[3], 1e-5).unwrap(),
                &|v| {
                    layer_norm_composed(Some(&v[0]), &v[1], keep.clone(), &v[2], &v[3], 1e-5)
                        .unwrap()
                },
                2e-5,
            );
        }
        let ones = Tensor::ones(width, DType::F32, &Device::Cpu).unwrap();
        let zeros = ones.zeros_like().unwrap();
        let y = layer_norm(None, &x, None, &ones, &zeros, 1e-5).unwrap();
        let row: Vec<f32> = y.get(1).unwrap().to_vec1().unwrap();
        let mean = row.iter().sum::<f32>() / width as f32;
        let variance = row.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / width as f32;
        assert!(mean.abs() < 1e-6 && (variance - 1.0).abs() < 1e-4);
    }

    #[test]
    fn gelu_matches_candles_erf_gelu() {
        // Beyond one block, and with a ragged tail.
        let count = BLOCK_ELEMENTS + 123;
        let x = grid(&[count], 0.013, 0.2).affine(1.5, 0.0).unwrap();
        for keep in [None, keep_mask(count, 5)] {
            compare(
                std::slice::from_ref(&x),
                &|v| gelu(&v[0], keep.clone()).unwrap(),
                &|v| {
                    let y = v[0].gelu_erf().unwrap();
                    match &keep {
                        Some(k) => (y * Tensor::new(k.as_slice(), &Device::Cpu).unwrap()).unwrap(),
                        None => y,
                    }
                },
                1e-6,
            );
        }
        let y: Vec<f32> = gelu(
            &Tensor::new(&[-3f32, 0.0, 1.0], &Device::Cpu).unwrap(),
            None,
        )
        .unwrap()
        .to_vec1()
        .unwrap();
        // PyTorch: gelu(-3) = -0.0040497, gelu(1) = 0.8413447.
        assert!((y[0] + 0.004_049_7).abs() < 1e-6);
        assert!(y[1] == 0.0 && (y[2] - 0.841_344_7).abs() < 1e-6);
    }

    #[test]
    fn positions_are_added_per_step_and_need_no_gradient() {
        let table = grid(&[10, 6], 0.7, 0.0);
        compare(
            &[grid(&[12, 6], 0.37, 0.1)],
            &|v| add_positions(&v[0], &table, 4).unwrap(),
            &|v| {
                v[0].reshape((3, 4, 6))
                    .unwrap()
                    .broadcast_add(&table.narrow(0, 0, 4).unwrap())
                    .unwrap()
                    .reshape((12, 6))
                    .unwrap()
            },
            1e-6,
        );
        assert!(add_positions(&grid(&[12, 6], 0.37, 0.1), &table, 5).is_err());
    }

    #[test]
    fn axis_swaps_match_transposes() {
        let x = grid(&[2 * 3 * 4 * 5], 0.37, 0.1);
        compare(
            &[x],
            &|v| swap_axes(&v[0], [2, 3, 4, 5], 0.5, &[8, 3, 5]).unwrap(),
            &|v| {
                (v[0]
                    .reshape((2, 3, 4, 5))
                    .unwrap()
                    .transpose(1, 2)
                    .unwrap()
                    .contiguous()
                    .unwrap()
                    * 0.5)
                    .unwrap()
                    .reshape((8, 3, 5))
                    .unwrap()
            },
            1e-7,
        );
    }

    fn key_bias(n: usize, t: usize, lengths: &[usize]) -> Tensor {
        let data: Vec<f32> = (0..n * t)
            .map(|i| if i % t < lengths[i / t] { 0.0 } else { -1e9 })
            .collect();
        Tensor::from_vec(data, (n, t), &Device::Cpu).unwrap()
    }

    #[test]
    fn masked_softmax_matches_the_composed_ops_and_ignores_padding() {
        let bias = key_bias(3, 6, &[6, 2, 4]);
        let logits = grid(&[3 * 2, 6, 6], 0.53, 0.4);
        compare(
            std::slice::from_ref(&logits),
            &|v| masked_softmax(&v[0], &bias, 2).unwrap(),
            &|v| {
                let biased = v[0]
                    .reshape((3, 2, 6, 6))
                    .unwrap()
                    .broadcast_add(&bias.reshape((3, 1, 1, 6)).unwrap())
                    .unwrap();
                softmax_composed(&biased, 3)
                    .unwrap()
                    .reshape((6, 6, 6))
                    .unwrap()
            },
            1e-6,
        );
        let p = masked_softmax(&logits, &bias, 2).unwrap();
        // Sequence 1 (heads 2 and 3) has 2 real keys.
        let second: Vec<f32> = p
            .narrow(0, 2, 2)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        for row in second.chunks(6) {
            assert!(row[2..].iter().all(|&w| w == 0.0));
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
    }

    #[test]
    fn pooling_matches_the_composed_ops_with_and_without_dropout() {
        let (n, t, c) = (3, 5, 20);
        let bias = key_bias(n, t, &[5, 1, 3]);
        for keep in [None, keep_mask(n * t * c, 7)] {
            compare(
                &[grid(&[n * t, c], 0.53, 0.4), grid(&[n * t, c], 0.31, 1.4)],
                &|v| pool_steps(&v[0], &v[1], &bias, keep.clone()).unwrap(),
                &|v| {
                    let w =
                        pool_weights_composed(&v[0].reshape((n, t, c)).unwrap(), &bias).unwrap();
                    let w = match &keep {
                        Some(k) => (w * Tensor::from_vec(k.to_vec(), (n, t, c), &Device::Cpu)
                            .unwrap())
                        .unwrap(),
                        None => w,
                    };
                    (w * v[1].reshape((n, t, c)).unwrap())
                        .unwrap()
                        .sum(1)
                        .unwrap()
                },
                1e-5,
            );
        }
        // A one-step sequence pools to exactly its step.
        let x = grid(&[n * t, c], 0.31, 1.4);
        let y = pool_steps(&grid(&[n * t, c], 0.53, 0.4), &x, &bias, None).unwrap();
        assert_eq!(
            y.get(1).unwrap().to_vec1::<f32>().unwrap(),
            x.get(t).unwrap().to_vec1::<f32>().unwrap()
        );
    }

    #[test]
    fn dropout_masks_depend_on_the_seed_only() {
        let count = 3 * BLOCK_ELEMENTS + 17;
        let a = keep_multipliers(5, count, 0.25);
        assert_eq!(a, keep_multipliers(5, count, 0.25));
        assert_ne!(a, keep_multipliers(6, count, 0.25));
        assert!(a.iter().all(|&k| k == 0.0 || (k - 4.0 / 3.0).abs() < 1e-6));
        let dropped = a.iter().filter(|&&k| k == 0.0).count() as f64 / count as f64;
        assert!((dropped - 0.25).abs() < 0.01, "{dropped}");
        // Each block has its own stream.
        assert_ne!(a[..BLOCK_ELEMENTS], a[BLOCK_ELEMENTS..2 * BLOCK_ELEMENTS]);
    }

    #[test]
    fn column_sums_do_not_depend_on_thread_timing() {
        let g = grid(&[4000, 33], 0.0137, 0.2);
        let a: Vec<f32> = g.apply_op1_no_bwd(&ColumnSums).unwrap().to_vec1().unwrap();
        for _ in 0..5 {
            let b: Vec<f32> = g.apply_op1_no_bwd(&ColumnSums).unwrap().to_vec1().unwrap();
            assert_eq!(a, b);
        }
        let reference: Vec<f32> = g.sum(0).unwrap().to_vec1().unwrap();
        for (x, y) in a.iter().zip(&reference) {
            assert!((x - y).abs() < 1e-3, "{x} vs {y}");
        }
    }
}
