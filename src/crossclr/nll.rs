//! The masked, multi-positive negative log-likelihood every loss here ends in:
//! `ℓ_i = −log Σ_j softmax(L_i)_j · t_ij`, the softmax taken over the kept entries of row i only.
//!
//! It is evaluated as `ℓ = softplus(log N − log P)` with `N = Σ_j (1 − t_ij) e^{L_ij}` over kept
//! entries and `P = Σ_j t_ij e^{L_ij}`, each shifted by its own maximum. That keeps small losses
//! accurate to the last bits (no `log Σ − log Σ` cancellation) and never divides by an underflowed
//! denominator, whatever the temperature.

use candle_core::{DType, Device, Result, Tensor};

/// The constant part of a logit matrix: which entries enter the softmax and the positives of each row.
#[derive(Debug, Clone)]
pub(crate) struct RowTargets {
    pub rows: usize,
    pub cols: usize,
    /// Row-major, 1 where the entry takes part in the softmax.
    pub keep: Vec<u8>,
    /// For each row, its positive columns and their target weights (> 0). Positives must be kept.
    pub positives: Vec<Vec<(usize, f64)>>,
}

impl RowTargets {
    pub fn new(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            keep: vec![1; rows * cols],
            positives: vec![Vec::new(); rows],
        }
    }

    pub fn remove(&mut self, row: usize, col: usize) {
        self.keep[row * self.cols + col] = 0;
    }

    /// Sets the target weight of (row, col), replacing an earlier one.
    pub fn set_positive(&mut self, row: usize, col: usize, weight: f64) {
        let positives = &mut self.positives[row];
        match positives.iter_mut().find(|(c, _)| *c == col) {
            Some(entry) => entry.1 = weight,
            None => positives.push((col, weight)),
        }
    }

    fn single_unit_positive(&self) -> Option<Vec<u32>> {
        self.positives
            .iter()
            .enumerate()
            .map(|(row, p)| match p.as_slice() {
                [(col, w)] if *w == 1.0 && self.keep[row * self.cols + col] == 1 => {
                    Some(*col as u32)
                }
                _ => None,
            })
            .collect()
    }

    fn dense_targets(&self) -> Vec<f64> {
        let mut t = vec![0.0; self.rows * self.cols];
        for (row, positives) in self.positives.iter().enumerate() {
            // A positive that was removed from the softmax contributes nothing.
            for &(col, weight) in positives {
                let at = row * self.cols + col;
                if self.keep[at] == 1 {
                    t[at] = weight;
                }
            }
        }
        t
    }
}

/// Per-row losses (shape `rows`) of `logits` (rows × cols) under `targets`.
pub(crate) fn masked_nll(logits: &Tensor, targets: &RowTargets) -> Result<Tensor> {
    let device = logits.device();
    let dtype = logits.dtype();
    let shape = (targets.rows, targets.cols);
    let keep = Tensor::from_slice(&targets.keep, shape, device)?;
    let neg_inf = scalar(f64::NEG_INFINITY, dtype, device)?.broadcast_as(shape)?;

    let kept = keep.where_cond(logits, &neg_inf)?;
    let shift = kept.max_keepdim(1)?.detach();
    let exps = kept.broadcast_sub(&shift)?.exp()?;
    let dense = targets.dense_targets();
    let negative_weight: Vec<f64> = dense.iter().map(|t| 1.0 - t).collect();
    let negative_weight = Tensor::from_vec(negative_weight, shape, device)?.to_dtype(dtype)?;
    let negatives = (exps * negative_weight)?.sum_keepdim(1)?;
    let tiny = match dtype {
        DType::F64 => f64::MIN_POSITIVE,
        _ => f32::MIN_POSITIVE as f64,
    };
    let log_negatives = (negatives.maximum(tiny)?.log()? + shift)?;

    let log_positives = match targets.single_unit_positive() {
        Some(columns) => {
            let index = Tensor::from_vec(columns, (targets.rows, 1), device)?;
            logits.gather(&index, 1)?
        }
        None => {
            let target = Tensor::from_vec(dense, shape, device)?.to_dtype(dtype)?;
            let is_positive = target.gt(0.0)?;
            let positive_logits = is_positive.where_cond(logits, &neg_inf)?;
            let shift = positive_logits.max_keepdim(1)?.detach();
            let sum = (positive_logits.broadcast_sub(&shift)?.exp()? * target)?.sum_keepdim(1)?;
            (sum.log()? + shift)?
        }
    };
    softplus(&(log_negatives - log_positives)?)?.squeeze(1)
}

fn scalar(value: f64, dtype: DType, device: &Device) -> Result<Tensor> {
    Tensor::new(value, device)?.to_dtype(dtype)
}

/// `log(1 + e^z)`, exact for large |z| of either sign.
pub(crate) fn softplus(z: &Tensor) -> Result<Tensor> {
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

    fn reference(logits: &[f64], keep: &[u8], target: &[f64]) -> f64 {
        let max = logits
            .iter()
            .zip(keep)
            .filter(|(_, k)| **k == 1)
            .map(|(l, _)| *l)
            .fold(f64::NEG_INFINITY, f64::max);
        let all: f64 = logits
            .iter()
            .zip(keep)
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

    #[test]
    fn matches_cross_entropy_with_removed_entries_and_multiple_positives() -> Result<()> {
        let logits = [2.0, -1.0, 0.5, 3.0, 1.0, 0.0, -2.0, 4.0];
        let mut targets = RowTargets::new(2, 4);
        targets.remove(0, 3);
        targets.set_positive(0, 0, 1.0);
        targets.set_positive(1, 1, 1.0);
        targets.set_positive(1, 3, 0.15);
        let t = Tensor::from_slice(&logits, (2, 4), &Device::Cpu)?;
        let got = masked_nll(&t, &targets)?.to_vec1::<f64>()?;
        let expected0 = reference(&logits[..4], &[1, 1, 1, 0], &[1.0, 0.0, 0.0, 0.0]);
        let expected1 = reference(&logits[4..], &[1, 1, 1, 1], &[0.0, 1.0, 0.0, 0.15]);
        assert!((got[0] - expected0).abs() < 1e-12, "{got:?} vs {expected0}");
        assert!((got[1] - expected1).abs() < 1e-12, "{got:?} vs {expected1}");
        Ok(())
    }

    #[test]
    fn tiny_losses_keep_their_relative_precision_in_f32() -> Result<()> {
        // The positive dominates by 20 nats: the loss is ~2e-9, far below f32's epsilon of 1.
        let logits = [20.0f32, 0.0, 0.0];
        let mut targets = RowTargets::new(1, 3);
        targets.set_positive(0, 0, 1.0);
        let t = Tensor::from_slice(&logits, (1, 3), &Device::Cpu)?;
        let got = masked_nll(&t, &targets)?.to_vec1::<f32>()?[0] as f64;
        let expected = (2.0 * (-20.0f64).exp()).ln_1p();
        assert!(
            ((got - expected) / expected).abs() < 1e-5,
            "{got} vs {expected}"
        );
        Ok(())
    }

    #[test]
    fn a_positive_far_below_the_maximum_still_gives_a_finite_loss_in_f32() -> Result<()> {
        let logits = [-150.0f32, 150.0];
        let mut targets = RowTargets::new(1, 2);
        targets.set_positive(0, 0, 1.0);
        let t = Tensor::from_slice(&logits, (1, 2), &Device::Cpu)?;
        let got = masked_nll(&t, &targets)?.to_vec1::<f32>()?[0];
        assert!((got - 300.0).abs() < 1e-3, "{got}");
        Ok(())
    }
}
