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

use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Device, Layout, Result, Shape, Tensor};

/// Status of one logit entry.
pub(crate) const REMOVED: u8 = 0;
pub(crate) const KEPT: u8 = 1;
pub(crate) const ZEROED: u8 = 2;

/// The constant part of a logit matrix: the status of every entry and the positives of each row.
#[derive(Debug, Clone)]
pub(crate) struct RowTargets {
    pub rows: usize,
    pub cols: usize,
    /// Row-major [`REMOVED`] / [`KEPT`] / [`ZEROED`].
    pub status: Vec<u8>,
    /// For each row, its positive columns and their target weights (> 0).
    pub positives: Vec<Vec<(usize, f64)>>,
}

impl RowTargets {
    pub fn new(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            status: vec![KEPT; rows * cols],
            positives: vec![Vec::new(); rows],
        }
    }

    pub fn remove(&mut self, row: usize, col: usize) {
        self.status[row * self.cols + col] = REMOVED;
    }

    pub fn zero(&mut self, row: usize, col: usize) {
        let at = row * self.cols + col;
        if self.status[at] == KEPT {
            self.status[at] = ZEROED;
        }
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
}

/// Per-row losses (shape `rows`) of `logits` (rows × cols) under `targets`.
pub(crate) fn masked_nll(logits: &Tensor, targets: &RowTargets) -> Result<Tensor> {
    let (rows, cols) = logits.dims2()?;
    if (rows, cols) != (targets.rows, targets.cols) {
        candle_core::bail!(
            "logits are {rows}×{cols} but their targets describe {}×{}",
            targets.rows,
            targets.cols
        );
    }
    if targets
        .positives
        .iter()
        .enumerate()
        .any(|(row, _)| targets.live_positives(row).next().is_none())
    {
        candle_core::bail!("every row needs a positive that is not removed");
    }
    match logits.device() {
        Device::Cpu => logits.contiguous()?.apply_op1(FusedNll {
            targets: Arc::new(targets.clone()),
        }),
        _ => composed_nll(logits, targets),
    }
}

// ------------------------------------------------------------------------------------- fused CPU

struct FusedNll {
    targets: Arc<RowTargets>,
}

struct FusedNllGrad {
    targets: Arc<RowTargets>,
}

/// What the forward pass knows about a row, enough to write its loss or its gradient.
struct RowStats {
    /// Σ e^{v − shift} over all entries that are not removed (shift = their maximum).
    total: f64,
    loss: f64,
    /// log Σ_p t_p e^{v_p}.
    log_positive: f64,
}

/// A real type the kernel runs on. The f32 versions keep 16 independent lanes so that the loops
/// vectorise; the f64 versions (used by the CLI and the tests) are plain.
trait Real: Copy + Send + Sync + 'static {
    fn to_f64(self) -> f64;
    fn from_f64(value: f64) -> Self;
    /// Maximum over entries that are not removed (zeroed entries count as logit 0).
    fn live_max(row: &[Self], status: &[u8]) -> f64;
    /// `out[j] = e^{v_j − shift}` for live entries (zeroed entries count as logit 0), 0 if removed.
    fn shifted_exps(row: &[Self], status: &[u8], shift: f64, out: &mut [Self]);
    fn sum(values: &[Self]) -> f64;
    /// `out[j] = scale · exps[j]` where the entry is kept, 0 otherwise.
    fn scaled_kept(exps: &[Self], status: &[u8], scale: f64, out: &mut [Self]);
}

const LANES: usize = 16;

impl Real for f32 {
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(value: f64) -> Self {
        value as f32
    }
    fn live_max(row: &[f32], status: &[u8]) -> f64 {
        let mut lanes = [f32::NEG_INFINITY; LANES];
        let mut rows = row.chunks_exact(LANES);
        let mut states = status.chunks_exact(LANES);
        for (values, states) in (&mut rows).zip(&mut states) {
            for l in 0..LANES {
                let v = if states[l] == ZEROED { 0.0 } else { values[l] };
                let v = if states[l] == REMOVED {
                    f32::NEG_INFINITY
                } else {
                    v
                };
                lanes[l] = if v > lanes[l] { v } else { lanes[l] };
            }
        }
        let mut top = lanes.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for (&v, &s) in rows.remainder().iter().zip(states.remainder()) {
            if s != REMOVED {
                top = top.max(if s == ZEROED { 0.0 } else { v });
            }
        }
        top as f64
    }
    fn shifted_exps(row: &[f32], status: &[u8], shift: f64, out: &mut [f32]) {
        let shift = shift as f32;
        for ((o, &v), &s) in out.iter_mut().zip(row).zip(status) {
            let v = if s == ZEROED { 0.0 } else { v };
            let e = exp_f32(v - shift);
            *o = if s == REMOVED { 0.0 } else { e };
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
    fn scaled_kept(exps: &[f32], status: &[u8], scale: f64, out: &mut [f32]) {
        let scale = scale as f32;
        for ((o, &e), &s) in out.iter_mut().zip(exps).zip(status) {
            *o = if s == KEPT { scale * e } else { 0.0 };
        }
    }
}

impl Real for f64 {
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f64(value: f64) -> Self {
        value
    }
    fn live_max(row: &[f64], status: &[u8]) -> f64 {
        row.iter()
            .zip(status)
            .filter(|(_, s)| **s != REMOVED)
            .map(|(&v, &s)| if s == ZEROED { 0.0 } else { v })
            .fold(f64::NEG_INFINITY, f64::max)
    }
    fn shifted_exps(row: &[f64], status: &[u8], shift: f64, out: &mut [f64]) {
        for ((o, &v), &s) in out.iter_mut().zip(row).zip(status) {
            let v = if s == ZEROED { 0.0 } else { v };
            *o = if s == REMOVED { 0.0 } else { (v - shift).exp() };
        }
    }
    fn sum(values: &[f64]) -> f64 {
        values.iter().sum()
    }
    fn scaled_kept(exps: &[f64], status: &[u8], scale: f64, out: &mut [f64]) {
        for ((o, &e), &s) in out.iter_mut().zip(exps).zip(status) {
            *o = if s == KEPT { scale * e } else { 0.0 };
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
        + 5.000_000_1e-1;
    let er = p * r * r + r + 1.0;
    let scale = f32::from_bits((((n as i32) + 127) as u32) << 23);
    if x < -87.3 { 0.0 } else { er * scale }
}

fn row_stats<T: Real>(
    row: &[T],
    status: &[u8],
    positives: &[(usize, f64)],
    scratch: &mut [T],
) -> RowStats {
    let value = |j: usize| {
        if status[j] == ZEROED {
            0.0
        } else {
            row[j].to_f64()
        }
    };
    let shift = T::live_max(row, status);
    T::shifted_exps(row, status, shift, scratch);
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
    let positive_shift = positives
        .iter()
        .map(|&(j, _)| value(j))
        .fold(f64::NEG_INFINITY, f64::max);
    let positive_sum: f64 = positives
        .iter()
        .map(|&(j, t)| t * (value(j) - positive_shift).exp())
        .sum();
    let log_positive = positive_sum.ln() + positive_shift;
    let log_negative = if negatives > 0.0 {
        negatives.ln() + shift
    } else {
        f64::NEG_INFINITY
    };
    let z = log_negative - log_positive;
    let loss = z.max(0.0) + (-z.abs()).exp().ln_1p();
    RowStats {
        total,
        loss,
        log_positive,
    }
}

fn cpu_slice<'a, T: candle_core::WithDType>(storage: &'a [T], layout: &Layout) -> Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&storage[start..end]),
        None => candle_core::bail!("the fused NLL needs contiguous logits"),
    }
}

/// Runs `work(row, output, scratch)` for every row on candle's own worker pool (a second pool
/// would fight it for the cores), then gathers the outputs, `width` values a row, into one vector.
fn per_rows<T: Real>(
    rows: usize,
    width: usize,
    scratch_width: usize,
    work: impl Fn(usize, &mut [T], &mut [T]) + Sync,
) -> Vec<T> {
    let pieces = Mutex::new(Vec::new());
    candle_core::utils::barrier_pool().execute_chunked(rows, |range| {
        let mut out = vec![T::from_f64(0.0); range.len() * width];
        let mut scratch = vec![T::from_f64(0.0); scratch_width];
        for (k, row) in range.clone().enumerate() {
            work(row, &mut out[k * width..(k + 1) * width], &mut scratch);
        }
        pieces
            .lock()
            .expect("no worker panicked")
            .push((range.start, out));
    });
    let mut all = vec![T::from_f64(0.0); rows * width];
    for (start, out) in pieces.into_inner().expect("no worker panicked") {
        all[start * width..start * width + out.len()].copy_from_slice(&out);
    }
    all
}

fn forward<T: Real>(logits: &[T], targets: &RowTargets) -> Vec<T> {
    let cols = targets.cols;
    per_rows(
        targets.rows,
        1,
        cols,
        |row, out: &mut [T], scratch: &mut [T]| {
            let positives: Vec<(usize, f64)> = targets.live_positives(row).collect();
            let stats = row_stats(
                &logits[row * cols..(row + 1) * cols],
                &targets.status[row * cols..(row + 1) * cols],
                &positives,
                scratch,
            );
            out[0] = T::from_f64(stats.loss);
        },
    )
}

/// dℓ_i/dL_ij = p_ij − q_ij: the softmax over live entries minus the posterior over positives;
/// zero for removed and zeroed entries, whose logits are not the input's.
fn backward<T: Real>(logits: &[T], upstream: &[T], targets: &RowTargets) -> Vec<T> {
    let cols = targets.cols;
    per_rows(
        targets.rows,
        cols,
        cols,
        |row, out: &mut [T], scratch: &mut [T]| {
            let status = &targets.status[row * cols..(row + 1) * cols];
            let values = &logits[row * cols..(row + 1) * cols];
            let positives: Vec<(usize, f64)> = targets.live_positives(row).collect();
            let stats = row_stats(values, status, &positives, scratch);
            let g = upstream[row].to_f64();
            T::scaled_kept(scratch, status, g / stats.total, out);
            for &(j, t) in &positives {
                if status[j] == KEPT {
                    let q = t * (values[j].to_f64() - stats.log_positive).exp();
                    out[j] = T::from_f64(out[j].to_f64() - g * q);
                }
            }
        },
    )
}

impl CustomOp1 for FusedNll {
    fn name(&self) -> &'static str {
        "crossclr-masked-nll"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let rows = self.targets.rows;
        let out = match storage {
            CpuStorage::F32(data) => {
                CpuStorage::F32(forward(cpu_slice(data, layout)?, &self.targets))
            }
            CpuStorage::F64(data) => {
                CpuStorage::F64(forward(cpu_slice(data, layout)?, &self.targets))
            }
            _ => candle_core::bail!("masked NLL needs f32 or f64 logits"),
        };
        Ok((out, Shape::from(rows)))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let grad = arg.apply_op2_no_bwd(
            &grad_res.contiguous()?,
            &FusedNllGrad {
                targets: self.targets.clone(),
            },
        )?;
        Ok(Some(grad))
    }
}

impl CustomOp2 for FusedNllGrad {
    fn name(&self) -> &'static str {
        "crossclr-masked-nll-grad"
    }

    fn cpu_fwd(
        &self,
        logits: &CpuStorage,
        logits_layout: &Layout,
        upstream: &CpuStorage,
        upstream_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let shape = Shape::from((self.targets.rows, self.targets.cols));
        let out = match (logits, upstream) {
            (CpuStorage::F32(l), CpuStorage::F32(u)) => CpuStorage::F32(backward(
                cpu_slice(l, logits_layout)?,
                cpu_slice(u, upstream_layout)?,
                &self.targets,
            )),
            (CpuStorage::F64(l), CpuStorage::F64(u)) => CpuStorage::F64(backward(
                cpu_slice(l, logits_layout)?,
                cpu_slice(u, upstream_layout)?,
                &self.targets,
            )),
            _ => {
                candle_core::bail!("masked NLL gradient: logits and upstream must share f32 or f64")
            }
        };
        Ok((out, shape))
    }
}

// ------------------------------------------------------------------------------ composed ops

fn composed_nll(logits: &Tensor, targets: &RowTargets) -> Result<Tensor> {
    let device = logits.device();
    let dtype = logits.dtype();
    let shape = (targets.rows, targets.cols);
    let live: Vec<u8> = targets
        .status
        .iter()
        .map(|&s| u8::from(s != REMOVED))
        .collect();
    let live = Tensor::from_vec(live, shape, device)?;
    let neg_inf = scalar(f64::NEG_INFINITY, dtype, device)?.broadcast_as(shape)?;
    let logits = if targets.status.contains(&ZEROED) {
        let keep: Vec<f64> = targets
            .status
            .iter()
            .map(|&s| if s == ZEROED { 0.0 } else { 1.0 })
            .collect();
        (logits * Tensor::from_vec(keep, shape, device)?.to_dtype(dtype)?)?
    } else {
        logits.clone()
    };

    let mut dense = vec![0.0; targets.rows * targets.cols];
    for row in 0..targets.rows {
        for (col, weight) in targets.live_positives(row) {
            dense[row * targets.cols + col] = weight;
        }
    }
    let kept = live.where_cond(&logits, &neg_inf)?;
    let shift = kept.max_keepdim(1)?.detach();
    let exps = kept.broadcast_sub(&shift)?.exp()?;
    let negative_weight: Vec<f64> = dense.iter().map(|t| 1.0 - t).collect();
    let negative_weight = Tensor::from_vec(negative_weight, shape, device)?.to_dtype(dtype)?;
    let negatives = (exps * negative_weight)?.sum_keepdim(1)?;
    let tiny = match dtype {
        DType::F64 => f64::MIN_POSITIVE,
        _ => f32::MIN_POSITIVE as f64,
    };
    let log_negatives = (negatives.maximum(tiny)?.log()? + shift)?;

    let target = Tensor::from_vec(dense, shape, device)?.to_dtype(dtype)?;
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
        let fused = masked_nll(logits, targets).unwrap();
        let composed = composed_nll(logits, targets).unwrap();
        let f64s = |t: Tensor| t.to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap();
        (f64s(fused), f64s(composed))
    }

    #[test]
    fn matches_cross_entropy_with_removed_entries_and_multiple_positives() {
        let logits = [2.0, -1.0, 0.5, 3.0, 1.0, 0.0, -2.0, 4.0];
        let mut targets = RowTargets::new(2, 4);
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
        let mut targets = RowTargets::new(1, 3);
        targets.zero(0, 1);
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
        let mut targets = RowTargets::new(1, 3);
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
        let mut targets = RowTargets::new(1, 2);
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
        let mut targets = RowTargets::new(rows, cols);
        for r in 0..rows {
            targets.set_positive(r, r, 1.0);
            targets.remove(r, (r + 3) % cols);
            if r % 2 == 0 {
                targets.zero(r, (r + 5) % cols);
            }
        }
        targets.set_positive(1, 7, 0.15);
        targets.set_positive(1, 8, 0.3);
        for dtype in [DType::F64, DType::F32] {
            let var = candle_core::Var::from_tensor(
                &Tensor::from_vec(values.clone(), (rows, cols), &Device::Cpu)
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap(),
            )
            .unwrap();
            let weights = Tensor::from_vec(
                (1..=rows).map(|r| r as f64).collect::<Vec<_>>(),
                rows,
                &Device::Cpu,
            )
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
            let grad = |loss: Tensor| -> Vec<f64> {
                let g = (loss * &weights)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap();
                g.get(var.as_tensor())
                    .unwrap()
                    .to_dtype(DType::F64)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap()
            };
            let fused = grad(masked_nll(var.as_tensor(), &targets).unwrap());
            let composed = grad(composed_nll(var.as_tensor(), &targets).unwrap());
            let tolerance = if dtype == DType::F64 { 1e-12 } else { 1e-5 };
            for (a, b) in fused.iter().zip(&composed) {
                assert!(
                    (a - b).abs() <= tolerance * b.abs().max(1.0),
                    "{dtype:?}: {a} vs {b}"
                );
            }
        }
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
