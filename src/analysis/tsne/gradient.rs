//! The t-SNE gradient, split as FIt-SNE and openTSNE split it (and without the constant factor 4
//! of the paper, which both fold into the learning rate):
//!
//!   ∂C/∂y_i = α Σ_j p_ij q_ij (y_i − y_j) − (1/Z) Σ_j q_ij² (y_i − y_j),   q_ij = 1/(1 + |y_i − y_j|²)
//!
//! The attraction runs over the sparse P; the repulsion over all pairs is exact, Barnes–Hut or
//! interpolated.

use rayon::prelude::*;

use super::affinity::Affinities;

/// Σ_j q_ij² (y_i − y_j) over all pairs, exactly: O(N²), for small N and as the reference the
/// approximations are checked against.
pub(crate) fn exact_repulsion(y: &[f64], rep: &mut [f64]) -> f64 {
    let n = y.len() / 2;
    let partial_z: Vec<f64> = rep
        .par_chunks_mut(2)
        .enumerate()
        .map(|(i, out)| {
            let (x, z) = (y[2 * i], y[2 * i + 1]);
            let (mut fx, mut fz, mut sum_q) = (0.0, 0.0, 0.0);
            for j in (0..n).filter(|&j| j != i) {
                let (dx, dz) = (x - y[2 * j], z - y[2 * j + 1]);
                let q = 1.0 / (1.0 + dx * dx + dz * dz);
                sum_q += q;
                fx += q * q * dx;
                fz += q * q * dz;
            }
            out[0] = fx;
            out[1] = fz;
            sum_q
        })
        .collect();
    partial_z.iter().sum()
}

/// Puts the gradient into `grad` from the repulsion `rep` and its `z`; returns the KL divergence
/// KL(P‖Q) of the un-exaggerated P when `with_kl`.
pub(crate) fn combine(
    p: &Affinities,
    y: &[f64],
    rep: &[f64],
    z: f64,
    exaggeration: f64,
    grad: &mut [f64],
    with_kl: bool,
) -> Option<f64> {
    // Z is a sum of positive terms; an approximation that rounds it to zero or below must not
    // turn the step into NaN.
    let z = z.max(f64::MIN_POSITIVE);
    let partial: Vec<f64> = grad
        .par_chunks_mut(2)
        .enumerate()
        .map(|(i, out)| {
            let (x, w) = (y[2 * i], y[2 * i + 1]);
            let (columns, values) = p.row(i);
            let (mut ax, mut aw, mut kl) = (0.0, 0.0, 0.0);
            for (&j, &pij) in columns.iter().zip(values) {
                let (dx, dw) = (x - y[2 * j as usize], w - y[2 * j as usize + 1]);
                let q = 1.0 / (1.0 + dx * dx + dw * dw);
                ax += pij * q * dx;
                aw += pij * q * dw;
                if with_kl && pij > 0.0 {
                    kl += pij * (pij / q).ln();
                }
            }
            out[0] = exaggeration * ax - rep[2 * i] / z;
            out[1] = exaggeration * aw - rep[2 * i + 1] / z;
            kl
        })
        .collect();
    // Σ p log(p / (q/Z)) = Σ p log(p/q) + log Z, since Σ p = 1.
    with_kl.then(|| partial.iter().sum::<f64>() + z.ln())
}
