//! The masked, multi-positive negative log-likelihood every loss here ends in:
//! `ℓ_i = −log Σ_j softmax(L_i)_j · t_ij`, the softmax taken over the entries of row i that are not
//! removed. An entry can also be *zeroed*: it takes part with the constant logit 0 (the released
//! code's quirk for pruned cross entries and the self-similarity).
//!
//! It is evaluated as `ℓ = softplus(log N − log P)` with `N = Σ_j (1 − t_ij) e^{L_ij}` and
//! `P = Σ_j t_ij e^{L_ij}`, each shifted by its own maximum: small losses keep their relative
//! precision (no `log Σ − log Σ` cancellation) and the denominator never underflows.
//!
//! On the CPU this is one fused kernel (forward and backward, rows in parallel); on other devices
//! it is composed from candle ops. Both give the same numbers (tested).

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Result, Shape, Tensor};

/// What an entry of the raw similarity matrix is. Cross and intra entries get their own affine
/// transform into a logit (`1/τ` for cross; `1/τ` and `+ ln λ`, or `λ/τ`, for intra).
pub(crate) const REMOVED: u8 = 0;
pub(crate) const CROSS: u8 = 1;
pub(crate) const INTRA: u8 = 2;
/// Takes part with the constant logit 0 (the released code's pruned cross entries and self-similarity).
pub(crate) const ZEROED: u8 = 3;

/// `logit = scale · similarity + offset`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Affine {
    pub scale: f64,
    pub offset: f64,
}

impl Affine {
    pub fn scale(scale: f64) -> Self {
        Self { scale, offset: 0.0 }
    }
}

/// The constant part of a logit matrix: what every entry is, how it becomes a logit, and the
/// positives of each row.
#[derive(Debug, Clone)]
pub(crate) struct RowTargets {
    pub rows: usize,
    pub cols: usize,
    /// Row-major [`REMOVED`] / [`CROSS`] / [`INTRA`] / [`ZEROED`].
    pub status: Vec<u8>,
    /// For each row, its positive columns and their target weights (> 0).
    pub positives: Vec<Vec<(usize, f64)>>,
    pub cross: Affine,
    pub intra: Affine,
}

impl RowTargets {
    /// Every entry a cross-modal candidate with logit `scale · similarity`.
    pub fn cross_only(rows: usize, cols: usize, scale: f64) -> Self {
        Self {
            rows,
            cols,
            status: vec![CROSS; rows * cols],
            positives: vec![Vec::new(); rows],
            cross: Affine::scale(scale),
            intra: Affine::scale(scale),
        }
    }

    pub fn remove(&mut self, row: usize, col: usize) {
        self.status[row * self.cols + col] = REMOVED;
    }

    /// Sets the target weight of (row, col), replacing an earlier one.
    pub fn set_positive(&mut self, row: usize, col: usize, weight: f64) {
        let positives = &mut self.positives[row];
        match positives.iter_mut().find(|(c, _)| *c == col) {
            Some(entry) => entry.1 = weight,
            None => positives.push((col, weight)),
        }
    }

    /// The positives of a row that take part in its softmax (a removed positive contributes nothing).
    fn live_positives(&self, row: usize) -> impl Iterator<Item = (usize, f64)> + '_ {
        self.positives[row]
            .iter()
            .copied()
            .filter(move |&(col, weight)| {
                weight > 0.0 && self.status[row * self.cols + col] != REMOVED
            })
    }

    /// Scale applied to each status (0 for removed and zeroed entries, whose logits are constants).
    fn scales(&self) -> [f64; 4] {
        [0.0, self.cross.scale, self.intra.scale, 0.0]
    }

    fn offsets(&self) -> [f64; 4] {
        [0.0, self.cross.offset, self.intra.offset, 0.0]
    }
}

/// Per-row losses (shape `rows`) of the raw similarity matrix `raw` (rows × cols) under `targets`.
pub(crate) fn masked_nll(raw: &Tensor, targets: RowTargets) -> Result<Tensor> {
    let (rows, cols) = raw.dims2()?;
    if (rows, cols) != (targets.rows, targets.cols) {
        candle_core::bail!(
            "logits are {rows}×{cols} but their targets describe {}×{}",
            targets.rows,
            targets.cols
        );
    }
    if (0..rows).any(|row| targets.live_positives(row).next().is_none()) {
        candle_core::bail!("every row needs a positive that is not removed");
    }
    match raw.device() {
        Device::Cpu => raw.contiguous()?.apply_op1(FusedNll {
            targets: Arc::new(targets),
            local_gradient: Mutex::new(None),
        }),
        _ => composed_nll(raw, &targets),
    }
}

// ------------------------------------------------------------------------------------- fused CPU

struct FusedNll {
    targets: Arc<RowTargets>,
    /// `dℓ_i/dS_ij`, written by the forward pass for the backward one.
    local_gradient: Mutex<Option<Tensor>>,
}

/// A real type the kernel runs on. The f32 versions keep 16 independent lanes so that the loops
/// vectorise; the f64 versions (used by the CLI and the tests) are plain.
trait Real: Copy + Send + Sync + 'static {
    fn to_f64(self) -> f64;
    fn from_f64(value: f64) -> Self;
    /// `out[j]` = the logit of entry j, −∞ where it is removed.
    fn logits(raw: &[Self], status: &[u8], scales: [f64; 4], offsets: [f64; 4], out: &mut [Self]);
    fn max(values: &[Self]) -> f64;
    /// `values[j] = e^{values[j] − shift}` (0 for −∞).
    fn exp_shifted(values: &mut [Self], shift: f64);
    fn sum(values: &[Self]) -> f64;
    /// `out[j] = factor · scales[status[j]] · exps[j]`.
    fn scaled(exps: &[Self], status: &[u8], scales: [f64; 4], factor: f64, out: &mut [Self]);
    fn wrap(values: Vec<Self>) -> LocalGradient;
}

const LANES: usize = 16;

impl Real for f32 {
    fn wrap(values: Vec<Self>) -> LocalGradient {
        LocalGradient::F32(values)
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(value: f64) -> Self {
        value as f32
    }
    fn logits(raw: &[f32], status: &[u8], scales: [f64; 4], offsets: [f64; 4], out: &mut [f32]) {
        let (cross_scale, cross_offset) = (
            scales[CROSS as usize] as f32,
            offsets[CROSS as usize] as f32,
        );
        let (intra_scale, intra_offset) = (
            scales[INTRA as usize] as f32,
            offsets[INTRA as usize] as f32,
        );
        // Selects rather than a table lookup, so that the loop vectorises.
        for ((o, &v), &s) in out.iter_mut().zip(raw).zip(status) {
            let cross = v * cross_scale + cross_offset;
            let intra = v * intra_scale + intra_offset;
            let logit = if s == INTRA { intra } else { cross };
            let logit = if s == ZEROED { 0.0 } else { logit };
            *o = if s == REMOVED {
                f32::NEG_INFINITY
            } else {
                logit
            };
        }
    }
    fn max(values: &[f32]) -> f64 {
        let mut lanes = [f32::NEG_INFINITY; LANES];
        let mut chunks = values.chunks_exact(LANES);
        for chunk in &mut chunks {
            for l in 0..LANES {
                lanes[l] = if chunk[l] > lanes[l] {
                    chunk[l]
                } else {
                    lanes[l]
                };
            }
        }
        lanes
            .iter()
            .chain(chunks.remainder())
            .copied()
            .fold(f32::NEG_INFINITY, f32::max) as f64
    }
    fn exp_shifted(values: &mut [f32], shift: f64) {
        let shift = shift as f32;
        for v in values.iter_mut() {
            *v = exp_f32(*v - shift);
        }
    }
    fn sum(values: &[f32]) -> f64 {
        let mut lanes = [0.0f32; LANES];
        let mut chunks = values.chunks_exact(LANES);
        for chunk in &mut chunks {
            for l in 0..LANES {
                lanes[l] += chunk[l];
            }
        }
        lanes.iter().map(|&x| x as f64).sum::<f64>()
            + chunks.remainder().iter().map(|&x| x as f64).sum::<f64>()
    }
    fn scaled(exps: &[f32], status: &[u8], scales: [f64; 4], factor: f64, out: &mut [f32]) {
        let cross = (scales[CROSS as usize] * factor) as f32;
        let intra = (scales[INTRA as usize] * factor) as f32;
        for ((o, &e), &s) in out.iter_mut().zip(exps).zip(status) {
            let scale = if s == INTRA { intra } else { cross };
            let scale = if s == CROSS || s == INTRA { scale } else { 0.0 };
            *o = scale * e;
        }
    }
}

impl Real for f64 {
    fn wrap(values: Vec<Self>) -> LocalGradient {
        LocalGradient::F64(values)
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f64(value: f64) -> Self {
        value
    }
    fn logits(raw: &[f64], status: &[u8], scales: [f64; 4], offsets: [f64; 4], out: &mut [f64]) {
        for ((o, &v), &s) in out.iter_mut().zip(raw).zip(status) {
            *o = match s {
                REMOVED => f64::NEG_INFINITY,
                s => v * scales[s as usize] + offsets[s as usize],
            };
        }
    }
    fn max(values: &[f64]) -> f64 {
        values.iter().copied().fold(f64::NEG_INFINITY, f64::max)
    }
    fn exp_shifted(values: &mut [f64], shift: f64) {
        for v in values.iter_mut() {
            *v = (*v - shift).exp();
        }
    }
    fn sum(values: &[f64]) -> f64 {
        values.iter().sum()
    }
    fn scaled(exps: &[f64], status: &[u8], scales: [f64; 4], factor: f64, out: &mut [f64]) {
        for ((o, &e), &s) in out.iter_mut().zip(exps).zip(status) {
            *o = factor * scales[s as usize] * e;
        }
    }
}

/// `e^x` for x ≤ 0 in f32, written so that the compiler vectorises the loop around it:
/// Cody–Waite reduction to `2^n e^r`, |r| ≤ ln2/2, and Cephes' degree-6 polynomial for `e^r`
/// (relative error below 2.5e-7 against f64, see the test). Underflows to 0 below −87.3.
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2^23: adding it rounds to an integer
    let clamped = x.clamp(-87.3, 88.0);
    let n = (clamped * LOG2E + ROUND) - ROUND;
    let r = clamped - n * LN2_HI - n * LN2_LO;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let er = p * r * r + r + 1.0;
    let scale = f32::from_bits((((n as i32) + 127) as u32) << 23);
    if x < -87.3 { 0.0 } else { er * scale }
}

/// What the forward pass knows about a row, enough to write its loss or its gradient. On return
/// `scratch` holds `e^{logit − shift}` of every entry.
struct RowStats {
    /// Σ e^{logit − shift} over the live entries (shift = their maximum).
    total: f64,
    loss: f64,
    /// log Σ_p t_p e^{logit_p}.
    log_positive: f64,
    /// The positives' logits.
    positive_logits: Vec<f64>,
}

fn row_stats<T: Real>(
    raw: &[T],
    status: &[u8],
    targets: &RowTargets,
    positives: &[(usize, f64)],
    scratch: &mut [T],
) -> RowStats {
    T::logits(raw, status, targets.scales(), targets.offsets(), scratch);
    let positive_logits: Vec<f64> = positives
        .iter()
        .map(|&(j, _)| scratch[j].to_f64())
        .collect();
    let shift = T::max(scratch);
    T::exp_shifted(scratch, shift);
    let total = T::sum(scratch);
    // N = Σ over non-positives + Σ_p (1 − t_p) e_p, summed around the positives so that a
    // dominant positive does not swallow the negatives' mass.
    let negatives_of_positives: f64 = positives
        .iter()
        .map(|&(j, t)| (1.0 - t) * scratch[j].to_f64())
        .sum();
    let mut positive_cols: Vec<usize> = positives.iter().map(|p| p.0).collect();
    positive_cols.sort_unstable();
    let mut others = 0.0;
    let mut next = 0;
    for &p in &positive_cols {
        others += T::sum(&scratch[next..p]);
        next = p + 1;
    }
    others += T::sum(&scratch[next..]);
    let negatives = others + negatives_of_positives;
    let positive_shift = positive_logits
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    let positive_sum: f64 = positives
        .iter()
        .zip(&positive_logits)
        .map(|(&(_, t), &logit)| t * (logit - positive_shift).exp())
        .sum();
    let log_positive = positive_sum.ln() + positive_shift;
    let log_negative = if negatives > 0.0 {
        negatives.ln() + shift
    } else {
        f64::NEG_INFINITY
    };
    let z = log_negative - log_positive;
    RowStats {
        total,
        loss: z.max(0.0) + (-z.abs()).exp().ln_1p(),
        log_positive,
        positive_logits,
    }
}

fn cpu_slice<'a, T: candle_core::WithDType>(storage: &'a [T], layout: &Layout) -> Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&storage[start..end]),
        None => candle_core::bail!("the fused NLL needs contiguous logits"),
    }
}

/// Runs `work(row, loss, local_gradient_row, scratch)` for every row on candle's own worker pool
/// (a second pool would fight it for the cores) and gathers the losses and the local gradient.
fn per_rows<T: Real>(
    rows: usize,
    cols: usize,
    work: impl Fn(usize, &mut T, &mut [T], &mut [T]) + Sync,
) -> (Vec<T>, Vec<T>) {
    let pieces = Mutex::new(Vec::new());
    candle_core::utils::barrier_pool().execute_chunked(rows, |range| {
        let zero = T::from_f64(0.0);
        let mut losses = vec![zero; range.len()];
        let mut local = vec![zero; range.len() * cols];
        let mut scratch = vec![zero; cols];
        for (k, row) in range.clone().enumerate() {
            work(
                row,
                &mut losses[k],
                &mut local[k * cols..(k + 1) * cols],
                &mut scratch,
            );
        }
        pieces
            .lock()
            .expect("no worker panicked")
            .push((range.start, losses, local));
    });
    let mut pieces = pieces.into_inner().expect("no worker panicked");
    pieces.sort_by_key(|(start, _, _)| *start);
    let mut losses = Vec::with_capacity(rows);
    let mut local = Vec::with_capacity(rows * cols);
    for (_, l, g) in pieces {
        losses.extend_from_slice(&l);
        local.extend_from_slice(&g);
    }
    (losses, local)
}

/// Per-row losses and, in the same pass, the local gradient `dℓ_i/dS_ij = a_ij (p_ij − q_ij)`:
/// the softmax over live entries minus the posterior over positives, times the entry's scale `a`
/// (0 for removed and zeroed entries, whose logits are constants).
fn forward<T: Real>(raw: &[T], targets: &RowTargets) -> (Vec<T>, Vec<T>) {
    let cols = targets.cols;
    let scales = targets.scales();
    per_rows(
        targets.rows,
        cols,
        |row, loss: &mut T, local: &mut [T], scratch: &mut [T]| {
            let span = row * cols..(row + 1) * cols;
            let status = &targets.status[span.clone()];
            let positives: Vec<(usize, f64)> = targets.live_positives(row).collect();
            let stats = row_stats(&raw[span], status, targets, &positives, scratch);
            *loss = T::from_f64(stats.loss);
            T::scaled(scratch, status, scales, 1.0 / stats.total, local);
            for (&(j, t), &logit) in positives.iter().zip(&stats.positive_logits) {
                let q = t * (logit - stats.log_positive).exp();
                let scale = scales[status[j] as usize];
                local[j] = T::from_f64(local[j].to_f64() - q * scale);
            }
        },
    )
}

impl FusedNll {
    fn run<T: Real + candle_core::WithDType>(&self, raw: &[T]) -> Vec<T> {
        let (losses, local) = forward(raw, &self.targets);
        let shape = (self.targets.rows, self.targets.cols);
        if let Ok(tensor) = Tensor::from_vec(local, shape, &Device::Cpu) {
            *self
                .local_gradient
                .lock()
                .expect("no panic while holding the lock") = Some(tensor);
        }
        losses
    }
}

impl CustomOp1 for FusedNll {
    fn name(&self) -> &'static str {
        "crossclr-masked-nll"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let rows = self.targets.rows;
        let out = match storage {
            CpuStorage::F32(data) => CpuStorage::F32(self.run(cpu_slice(data, layout)?)),
            CpuStorage::F64(data) => CpuStorage::F64(self.run(cpu_slice(data, layout)?)),
            _ => candle_core::bail!("masked NLL needs f32 or f64 logits"),
        };
        Ok((out, Shape::from(rows)))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let local = self
            .local_gradient
            .lock()
            .expect("no panic while holding the lock")
            .clone();
        let Some(local) = local else {
            candle_core::bail!("masked NLL: backward before the forward pass finished");
        };
        Ok(Some(local.broadcast_mul(&grad_res.unsqueeze(1)?)?))
    }
}

// -------------------------------------------------------------------- fused Gram + NLL (CPU)

/// Per-row losses of the Gram matrix `E·Eᵀ` of `embeddings` under `targets`: the no-queue
/// CrossCLR, whose rows and columns both run over `[v̂; t̂]`. On the CPU the product, the NLL and
/// the backward `dE = (M + Mᵀ)·E`, `M = g ⊙ dℓ/dS`, are one op with no intermediate tensors.
pub(crate) fn gram_nll(embeddings: &Tensor, targets: RowTargets) -> Result<Tensor> {
    let on_cpu = matches!(embeddings.device(), Device::Cpu)
        && matches!(embeddings.dtype(), DType::F32 | DType::F64);
    if !on_cpu {
        return masked_nll(&embeddings.matmul(&embeddings.t()?)?, targets);
    }
    let rows = embeddings.dim(0)?;
    if (rows, rows) != (targets.rows, targets.cols) {
        candle_core::bail!(
            "a Gram matrix of {rows} rows but targets for {}×{}",
            targets.rows,
            targets.cols
        );
    }
    embeddings.contiguous()?.apply_op1(GramNll {
        targets: Arc::new(targets),
        local_gradient: Mutex::new(None),
    })
}

struct GramNll {
    targets: Arc<RowTargets>,
    /// `dℓ_i/dS_ij` (rows × rows, host), written by the forward pass.
    local_gradient: Mutex<Option<LocalGradient>>,
}

enum LocalGradient {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl GramNll {
    fn run<T: Real + candle_core::WithDType>(
        &self,
        embeddings: &[T],
        layout: &Layout,
    ) -> Result<Vec<T>> {
        let e = Tensor::from_slice(embeddings, layout.shape(), &Device::Cpu)?;
        let gram = e.matmul(&e.t()?.contiguous()?)?;
        let raw: Vec<T> = gram.flatten_all()?.to_vec1()?;
        let (losses, local) = forward(&raw, &self.targets);
        *self
            .local_gradient
            .lock()
            .expect("no panic while holding the lock") = Some(T::wrap(local));
        Ok(losses)
    }
}

/// `S = M + Mᵀ` with `M_ij = g_i · L_ij`, computed by row blocks on candle's pool.
fn symmetric_upstream<T: Real>(local: &[T], upstream: &[T], n: usize) -> Vec<T> {
    let pieces = Mutex::new(Vec::new());
    candle_core::utils::barrier_pool().execute_chunked(n, |range| {
        let mut out = vec![T::from_f64(0.0); range.len() * n];
        for (k, i) in range.clone().enumerate() {
            let gi = upstream[i].to_f64();
            let row = &mut out[k * n..(k + 1) * n];
            for (j, value) in row.iter_mut().enumerate() {
                *value = T::from_f64(
                    gi * local[i * n + j].to_f64()
                        + upstream[j].to_f64() * local[j * n + i].to_f64(),
                );
            }
        }
        pieces
            .lock()
            .expect("no worker panicked")
            .push((range.start, out));
    });
    let mut pieces = pieces.into_inner().expect("no worker panicked");
    pieces.sort_by_key(|(start, _)| *start);
    let mut all = Vec::with_capacity(n * n);
    for (_, out) in pieces {
        all.extend_from_slice(&out);
    }
    all
}

impl CustomOp1 for GramNll {
    fn name(&self) -> &'static str {
        "crossclr-gram-nll"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let slice = |layout: &Layout| {
            layout.contiguous_offsets().ok_or_else(|| {
                candle_core::Error::Msg("Gram NLL needs contiguous embeddings".into())
            })
        };
        let (start, end) = slice(layout)?;
        let out = match storage {
            CpuStorage::F32(e) => CpuStorage::F32(self.run(&e[start..end], layout)?),
            CpuStorage::F64(e) => CpuStorage::F64(self.run(&e[start..end], layout)?),
            _ => candle_core::bail!("Gram NLL needs f32 or f64 embeddings"),
        };
        Ok((out, Shape::from(self.targets.rows)))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let n = self.targets.rows;
        let guard = self
            .local_gradient
            .lock()
            .expect("no panic while holding the lock");
        let symmetric = match (&*guard, arg.dtype()) {
            (Some(LocalGradient::F32(local)), DType::F32) => {
                let upstream: Vec<f32> = grad_res.to_vec1()?;
                Tensor::from_vec(
                    symmetric_upstream(local, &upstream, n),
                    (n, n),
                    &Device::Cpu,
                )?
            }
            (Some(LocalGradient::F64(local)), DType::F64) => {
                let upstream: Vec<f64> = grad_res.to_vec1()?;
                Tensor::from_vec(
                    symmetric_upstream(local, &upstream, n),
                    (n, n),
                    &Device::Cpu,
                )?
            }
            _ => candle_core::bail!("Gram NLL: backward before the forward pass finished"),
        };
        Ok(Some(symmetric.matmul(&arg.detach().contiguous()?)?))
    }
}

// ------------------------------------------------------------------------------ composed ops

fn composed_nll(raw: &Tensor, targets: &RowTargets) -> Result<Tensor> {
    let device = raw.device();
    let dtype = raw.dtype();
    let shape = (targets.rows, targets.cols);
    let dense = |values: [f64; 4]| -> Result<Tensor> {
        let v: Vec<f64> = targets.status.iter().map(|&s| values[s as usize]).collect();
        Tensor::from_vec(v, shape, device)?.to_dtype(dtype)
    };
    let logits = raw
        .mul(&dense(targets.scales())?)?
        .add(&dense(targets.offsets())?)?;
    let live: Vec<u8> = targets
        .status
        .iter()
        .map(|&s| u8::from(s != REMOVED))
        .collect();
    let live = Tensor::from_vec(live, shape, device)?;
    let neg_inf = scalar(f64::NEG_INFINITY, dtype, device)?.broadcast_as(shape)?;

    let mut target = vec![0.0; targets.rows * targets.cols];
    for row in 0..targets.rows {
        for (col, weight) in targets.live_positives(row) {
            target[row * targets.cols + col] = weight;
        }
    }
    let kept = live.where_cond(&logits, &neg_inf)?;
    let shift = kept.max_keepdim(1)?.detach();
    let exps = kept.broadcast_sub(&shift)?.exp()?;
    let negative_weight: Vec<f64> = target.iter().map(|t| 1.0 - t).collect();
    let negative_weight = Tensor::from_vec(negative_weight, shape, device)?.to_dtype(dtype)?;
    let negatives = (exps * negative_weight)?.sum_keepdim(1)?;
    let tiny = match dtype {
        DType::F64 => f64::MIN_POSITIVE,
        _ => f32::MIN_POSITIVE as f64,
    };
    let log_negatives = (negatives.maximum(tiny)?.log()? + shift)?;

    let target = Tensor::from_vec(target, shape, device)?.to_dtype(dtype)?;
    let positive_logits = target.gt(0.0)?.where_cond(&logits, &neg_inf)?;
    let positive_shift = positive_logits.max_keepdim(1)?.detach();
    let positive_sum =
        (positive_logits.broadcast_sub(&positive_shift)?.exp()? * target)?.sum_keepdim(1)?;
    let log_positives = (positive_sum.log()? + positive_shift)?;
    softplus(&(log_negatives - log_positives)?)?.squeeze(1)
}

fn scalar(value: f64, dtype: DType, device: &Device) -> Result<Tensor> {
    Tensor::new(value, device)?.to_dtype(dtype)
}

/// `log(1 + e^z)`, exact for large |z| of either sign.
fn softplus(z: &Tensor) -> Result<Tensor> {
    z.relu()? + log1p(&z.abs()?.neg()?.exp()?)?
}

/// `log(1 + y)` for `y ≥ 0`, with the rounding of `1 + y` corrected (Goldberg's trick).
fn log1p(y: &Tensor) -> Result<Tensor> {
    let u = y.affine(1.0, 1.0)?;
    let rounding = ((u.affine(1.0, -1.0)? - y)? / &u)?;
    u.log()? - rounding
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(logits: &[f64], live: &[u8], target: &[f64]) -> f64 {
        let max = logits
            .iter()
            .zip(live)
            .filter(|(_, k)| **k == 1)
            .map(|(l, _)| *l)
            .fold(f64::NEG_INFINITY, f64::max);
        let all: f64 = logits
            .iter()
            .zip(live)
            .filter(|(_, k)| **k == 1)
            .map(|(l, _)| (l - max).exp())
            .sum();
        let pos: f64 = logits
            .iter()
            .zip(target)
            .map(|(l, t)| t * (l - max).exp())
            .sum();
        (all / pos).ln()
    }

    fn both_paths(logits: &Tensor, targets: &RowTargets) -> (Vec<f64>, Vec<f64>) {
        let fused = masked_nll(logits, targets.clone()).unwrap();
        let composed = composed_nll(logits, targets).unwrap();
        let f64s = |t: Tensor| t.to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap();
        (f64s(fused), f64s(composed))
    }

    /// Evaluates `fused` and `composed` on a variable holding `values` in f64 and f32 and checks
    /// that the per-row losses and the gradients of `Σ_r r·ℓ_r` agree (1e-12 in f64).
    fn compare_fused_and_composed(
        values: &[f64],
        shape: (usize, usize),
        fused: impl Fn(&Tensor) -> Tensor,
        composed: impl Fn(&Tensor) -> Tensor,
        f32_tolerance: f64,
    ) {
        for dtype in [DType::F64, DType::F32] {
            let input = Tensor::from_vec(values.to_vec(), shape, &Device::Cpu)
                .and_then(|t| t.to_dtype(dtype))
                .unwrap();
            let var = candle_core::Var::from_tensor(&input).unwrap();
            let run = |losses: Tensor| -> Vec<f64> {
                let rows = losses.dim(0).unwrap();
                let weights = Tensor::arange(1u32, rows as u32 + 1, &Device::Cpu)
                    .and_then(|w| w.to_dtype(dtype))
                    .unwrap();
                let grads = (&losses * &weights)
                    .and_then(|l| l.sum_all())
                    .and_then(|l| l.backward())
                    .unwrap();
                let gradient = grads.get(var.as_tensor()).unwrap();
                [losses, gradient.flatten_all().unwrap()]
                    .iter()
                    .flat_map(|t| t.to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap())
                    .collect()
            };
            let a = run(fused(var.as_tensor()));
            let b = run(composed(var.as_tensor()));
            let tolerance = if dtype == DType::F64 {
                1e-12
            } else {
                f32_tolerance
            };
            for (x, y) in a.iter().zip(&b) {
                assert!(
                    (x - y).abs() <= tolerance * y.abs().max(1.0),
                    "{dtype:?}: {x} vs {y}"
                );
            }
        }
    }

    #[test]
    fn matches_cross_entropy_with_removed_entries_and_multiple_positives() {
        let logits = [2.0, -1.0, 0.5, 3.0, 1.0, 0.0, -2.0, 4.0];
        let mut targets = RowTargets::cross_only(2, 4, 1.0);
        targets.remove(0, 3);
        targets.set_positive(0, 0, 1.0);
        targets.set_positive(1, 1, 1.0);
        targets.set_positive(1, 3, 0.15);
        let t = Tensor::from_slice(&logits, (2, 4), &Device::Cpu).unwrap();
        let expected0 = reference(&logits[..4], &[1, 1, 1, 0], &[1.0, 0.0, 0.0, 0.0]);
        let expected1 = reference(&logits[4..], &[1, 1, 1, 1], &[0.0, 1.0, 0.0, 0.15]);
        let (fused, composed) = both_paths(&t, &targets);
        for got in [fused, composed] {
            assert!((got[0] - expected0).abs() < 1e-12, "{got:?} vs {expected0}");
            assert!((got[1] - expected1).abs() < 1e-12, "{got:?} vs {expected1}");
        }
    }

    #[test]
    fn zeroed_entries_take_part_with_logit_zero() {
        let logits = [2.0, 5.0, -1.0];
        let mut targets = RowTargets::cross_only(1, 3, 1.0);
        targets.status[1] = ZEROED;
        targets.set_positive(0, 0, 1.0);
        let t = Tensor::from_slice(&logits, (1, 3), &Device::Cpu).unwrap();
        let expected = reference(&[2.0, 0.0, -1.0], &[1, 1, 1], &[1.0, 0.0, 0.0]);
        let (fused, composed) = both_paths(&t, &targets);
        assert!((fused[0] - expected).abs() < 1e-12 && (composed[0] - expected).abs() < 1e-12);
    }

    #[test]
    fn tiny_losses_keep_their_relative_precision_in_f32() {
        // The positive dominates by 20 nats: the loss is ~4e-9, far below f32's epsilon of 1.
        let logits = [20.0f32, 0.0, 0.0];
        let mut targets = RowTargets::cross_only(1, 3, 1.0);
        targets.set_positive(0, 0, 1.0);
        let t = Tensor::from_slice(&logits, (1, 3), &Device::Cpu).unwrap();
        let expected = (2.0 * (-20.0f64).exp()).ln_1p();
        let (fused, composed) = both_paths(&t, &targets);
        for got in [fused[0], composed[0]] {
            assert!(
                ((got - expected) / expected).abs() < 1e-5,
                "{got} vs {expected}"
            );
        }
    }

    #[test]
    fn a_positive_far_below_the_maximum_still_gives_a_finite_loss_in_f32() {
        let logits = [-150.0f32, 150.0];
        let mut targets = RowTargets::cross_only(1, 2, 1.0);
        targets.set_positive(0, 0, 1.0);
        let t = Tensor::from_slice(&logits, (1, 2), &Device::Cpu).unwrap();
        let (fused, composed) = both_paths(&t, &targets);
        assert!((fused[0] - 300.0).abs() < 1e-3, "{fused:?}");
        assert!((composed[0] - 300.0).abs() < 1e-3, "{composed:?}");
    }

    #[test]
    fn fused_gradient_matches_the_composed_one() {
        // Random-ish logits, removed and zeroed entries, one row with extra positives.
        let (rows, cols) = (6, 9);
        let values: Vec<f64> = (0..rows * cols)
            .map(|k| ((k * 37 % 23) as f64 - 11.0) * 0.7)
            .collect();
        // Columns 6.. are intra-modal with their own transform, as in paper mode.
        let mut targets = RowTargets::cross_only(rows, cols, 1.0 / 0.3);
        targets.intra = Affine {
            scale: 1.0 / 0.3,
            offset: 0.8f64.ln(),
        };
        for r in 0..rows {
            for c in 6..cols {
                targets.status[r * cols + c] = INTRA;
            }
            targets.set_positive(r, r, 1.0);
            targets.remove(r, (r + 3) % cols);
            if r % 2 == 0 {
                targets.status[r * cols + (r + 5) % cols] = ZEROED;
            }
        }
        targets.set_positive(1, 7, 0.15);
        targets.set_positive(1, 8, 0.3);
        compare_fused_and_composed(
            &values,
            (rows, cols),
            |x| masked_nll(x, targets.clone()).unwrap(),
            |x| composed_nll(x, &targets).unwrap(),
            1e-5,
        );
    }

    #[test]
    fn fused_gram_nll_matches_the_composed_path_with_gradients() {
        // Rows and columns over [4 videos; 4 texts], statuses as CrossCLR lays them out.
        let n = 8;
        let data: Vec<f64> = (0..n * 5)
            .map(|k| ((k * 53 % 17) as f64 - 8.0) * 0.21)
            .collect();
        let mut targets = RowTargets::cross_only(n, n, 1.0 / 0.2);
        targets.intra = Affine {
            scale: 1.0 / 0.2,
            offset: 0.65f64.ln(),
        };
        for r in 0..n {
            let (intra_at, cross_at, i) = if r < 4 { (0, 4, r) } else { (4, 0, r - 4) };
            for c in 0..4 {
                targets.status[r * n + intra_at + c] = INTRA;
            }
            targets.status[r * n + intra_at + i] = REMOVED;
            targets.set_positive(r, cross_at + i, 1.0);
        }
        targets.status[2 * n + 4 + 1] = REMOVED; // a pruned cross candidate
        targets.status[5 * n + 2] = ZEROED;
        targets.set_positive(6, 1, 0.15);
        compare_fused_and_composed(
            &data,
            (n, 5),
            |e| gram_nll(e, targets.clone()).unwrap(),
            |e| composed_nll(&e.matmul(&e.t().unwrap()).unwrap(), &targets).unwrap(),
            2e-5,
        );
    }

    #[test]
    fn fast_exp_is_accurate_to_a_few_ulps() {
        let mut worst: f64 = 0.0;
        for k in 0..=200_000 {
            let x = -87.0 * k as f32 / 200_000.0;
            let got = exp_f32(x) as f64;
            let want = (x as f64).exp();
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 2.5e-7, "worst relative error {worst:e}");
        assert_eq!(exp_f32(-90.0), 0.0);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(0.0), 1.0);
    }
}
