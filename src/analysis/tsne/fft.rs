//! The repulsive forces by polynomial interpolation on an equispaced grid (Linderman et al. 2019,
//! "FIt-SNE"; openTSNE's `fft` method): each point's charges are spread onto the nodes of its grid
//! box by Lagrange weights, the kernel 1/(1+d²)² is applied to the whole grid at once as a
//! convolution by FFT, and the potentials are interpolated back. O(N + G log G) for G grid nodes,
//! where Barnes–Hut costs O(N log N) with a much larger constant.
//!
//! Four charges per point (1, x, y, x²+y²) give both the forces Σ_j q_ij² (y_i − y_j) and the
//! normalisation Z = Σ_{i≠j} q_ij with the one squared kernel, since q²(1 + |y_i − y_j|²) = q.

use std::sync::Arc;

use rayon::prelude::*;
use realfft::num_complex::Complex;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};
use rustfft::{Fft, FftPlanner};

/// Interpolation nodes per box and axis; three is FIt-SNE's and openTSNE's default.
const NODES: usize = 3;
/// Boxes per axis at least (openTSNE's `min_num_intervals`)…
pub const MIN_BOXES: usize = 50;
/// …and one box per unit of layout extent above that (`ints_in_interval = 1`), up to a cap that
/// keeps the grid's spectra near 50 MB each; layouts of a few million points would reach it.
pub const MAX_BOXES: usize = 400;

pub(crate) struct FftRepulsion {
    real: RealFftPlanner<f64>,
    complex: FftPlanner<f64>,
    /// Boxes per unit of layout extent (openTSNE's 1 / `ints_in_interval`).
    pub(crate) boxes_per_unit: f64,
}

impl std::fmt::Debug for FftRepulsion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FftRepulsion")
    }
}

struct Plans {
    size: usize,
    r2c: Arc<dyn RealToComplex<f64>>,
    c2r: Arc<dyn ComplexToReal<f64>>,
    forward: Arc<dyn Fft<f64>>,
    inverse: Arc<dyn Fft<f64>>,
}

/// Where a point sits on the grid: the first node of its box on each axis, and the Lagrange
/// weights of the box's three nodes.
#[derive(Clone, Copy)]
struct Interp {
    gx: usize,
    gy: usize,
    wx: [f64; NODES],
    wy: [f64; NODES],
}

/// Weights of the nodes at (j + ½)/3 of the box, for a point at fraction `t` of it.
fn lagrange(t: f64) -> [f64; NODES] {
    const N0: f64 = 1.0 / 6.0;
    const N1: f64 = 0.5;
    const N2: f64 = 5.0 / 6.0;
    [
        (t - N1) * (t - N2) * 4.5,
        (t - N0) * (t - N2) * -9.0,
        (t - N0) * (t - N1) * 4.5,
    ]
}

/// The smallest 2^a·3^b·5^c at least `x`: FFT sizes rustfft handles fastest.
fn smooth_at_least(x: usize) -> usize {
    (x..)
        .find(|&v| {
            let mut v = v;
            for p in [2, 3, 5] {
                while v.is_multiple_of(p) {
                    v /= p;
                }
            }
            v == 1
        })
        .expect("a 5-smooth number exists above any size")
}

/// Boxes per axis for a layout spanning `extent`.
pub(crate) fn boxes_for(extent: f64, boxes_per_unit: f64) -> usize {
    let wanted = extent * boxes_per_unit;
    let wanted = if wanted.is_finite() {
        wanted.ceil() as usize
    } else {
        MAX_BOXES
    };
    smooth_at_least(wanted.max(MIN_BOXES)).min(MAX_BOXES)
}

impl FftRepulsion {
    pub(crate) fn new() -> Self {
        Self {
            real: RealFftPlanner::new(),
            complex: FftPlanner::new(),
            boxes_per_unit: 1.0,
        }
    }

    fn plans(&mut self, size: usize) -> Plans {
        Plans {
            size,
            r2c: self.real.plan_fft_forward(size),
            c2r: self.real.plan_fft_inverse(size),
            forward: self.complex.plan_fft_forward(size),
            inverse: self.complex.plan_fft_inverse(size),
        }
    }

    /// Writes Σ_j q_ij² (y_i − y_j) into `rep` (N×2) and returns Z = Σ_{i≠j} q_ij, where
    /// q_ij = 1/(1 + |y_i − y_j|²).
    pub(crate) fn repulsion(&mut self, y: &[f64], rep: &mut [f64]) -> f64 {
        let n = y.len() / 2;
        let (lo, hi) = y
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        // Coincident points still need a grid of positive width.
        let extent = (hi - lo).max(1e-12);
        let boxes = boxes_for(extent, self.boxes_per_unit);
        let width = extent / boxes as f64;
        let side = NODES * boxes;
        let spacing = width / NODES as f64;
        let plans = self.plans(2 * side);

        let locate = |v: f64| {
            let u = (v - lo) / width;
            let b = (u.floor().max(0.0) as usize).min(boxes - 1);
            (NODES * b, lagrange(u - b as f64))
        };
        let interps: Vec<Interp> = (0..n)
            .into_par_iter()
            .map(|i| {
                let (gx, wx) = locate(y[2 * i]);
                let (gy, wy) = locate(y[2 * i + 1]);
                Interp { gx, gy, wx, wy }
            })
            .collect();

        // The charges on the grid, one plane per term. Sequential: N·9·4 additions are a small
        // part of the step, and a fixed order keeps the sums the same on any number of threads.
        let plane = side * side;
        let mut charges = vec![0.0; 4 * plane];
        for (i, p) in interps.iter().enumerate() {
            let (x, z) = (y[2 * i], y[2 * i + 1]);
            let terms = [1.0, x, z, x * x + z * z];
            for a in 0..NODES {
                let row = (p.gy + a) * side + p.gx;
                for b in 0..NODES {
                    let w = p.wy[a] * p.wx[b];
                    for (t, &term) in terms.iter().enumerate() {
                        charges[t * plane + row + b] += w * term;
                    }
                }
            }
        }

        let kernel = kernel_spectrum(&plans, side, spacing);
        let potentials: Vec<Vec<f64>> = (0..4)
            .into_par_iter()
            .map(|t| convolve(&plans, &charges[t * plane..(t + 1) * plane], &kernel, side))
            .collect();

        let partial_z: Vec<f64> = rep
            .par_chunks_mut(2)
            .zip(interps.par_iter())
            .enumerate()
            .map(|(i, (out, p))| {
                let mut phi = [0.0; 4];
                for a in 0..NODES {
                    let row = (p.gy + a) * side + p.gx;
                    for b in 0..NODES {
                        let w = p.wy[a] * p.wx[b];
                        for (t, v) in phi.iter_mut().enumerate() {
                            *v += w * potentials[t][row + b];
                        }
                    }
                }
                let (x, z) = (y[2 * i], y[2 * i + 1]);
                out[0] = x * phi[0] - phi[1];
                out[1] = z * phi[0] - phi[2];
                (1.0 + x * x + z * z) * phi[0] - 2.0 * (x * phi[1] + z * phi[2]) + phi[3]
            })
            .collect();
        // The sum includes each point with itself (q_ii = 1).
        partial_z.iter().sum::<f64>() - n as f64
    }
}

/// The 2-D spectrum of the kernel on a circulant grid: offset d at index d and −d at size − d.
fn kernel_spectrum(plans: &Plans, side: usize, spacing: f64) -> Vec<Complex<f64>> {
    let size = plans.size;
    let offset = |i: usize| -> Option<f64> {
        match i.cmp(&side) {
            std::cmp::Ordering::Less => Some(i as f64 * spacing),
            std::cmp::Ordering::Equal => None,
            std::cmp::Ordering::Greater => Some((size - i) as f64 * spacing),
        }
    };
    forward_2d(plans, size, |r, row| {
        let dy = offset(r);
        for (c, v) in row.iter_mut().enumerate() {
            *v = match (dy, offset(c)) {
                (Some(dy), Some(dx)) => {
                    let q = 1.0 / (1.0 + dx * dx + dy * dy);
                    q * q
                }
                _ => 0.0,
            };
        }
    })
}

/// The spectrum of a `size`×`size` real grid whose first `rows` rows `fill` writes (the rest are
/// zero), stored column by column so that the column transforms work on contiguous memory.
fn forward_2d<F>(plans: &Plans, rows: usize, fill: F) -> Vec<Complex<f64>>
where
    F: Fn(usize, &mut [f64]) + Sync,
{
    let size = plans.size;
    let half = size / 2 + 1;
    let mut row_spectra = vec![Complex::default(); rows * half];
    row_spectra.par_chunks_mut(half).enumerate().for_each_init(
        || (vec![0.0; size], plans.r2c.make_scratch_vec()),
        |(input, scratch), (r, out)| {
            fill(r, input);
            plans
                .r2c
                .process_with_scratch(input, out, scratch)
                .expect("buffers sized by the plan");
        },
    );
    let mut columns = vec![Complex::default(); half * size];
    columns.par_chunks_mut(size).enumerate().for_each_init(
        || vec![Complex::default(); plans.forward.get_inplace_scratch_len()],
        |scratch, (c, column)| {
            for r in 0..rows {
                column[r] = row_spectra[r * half + c];
            }
            plans.forward.process_with_scratch(column, scratch);
        },
    );
    columns
}

/// The circular convolution of the `side`×`side` grid `charges` (zero-padded to twice its size)
/// with the kernel, read back on the grid.
fn convolve(plans: &Plans, charges: &[f64], kernel: &[Complex<f64>], side: usize) -> Vec<f64> {
    let size = plans.size;
    let half = size / 2 + 1;
    let mut columns = forward_2d(plans, side, |r, row| {
        row[..side].copy_from_slice(&charges[r * side..(r + 1) * side]);
        row[side..].fill(0.0);
    });
    columns
        .par_chunks_mut(size)
        .zip(kernel.par_chunks(size))
        .for_each_init(
            || vec![Complex::default(); plans.inverse.get_inplace_scratch_len()],
            |scratch, (column, k)| {
                for (v, k) in column.iter_mut().zip(k) {
                    *v *= k;
                }
                plans.inverse.process_with_scratch(column, scratch);
            },
        );
    let scale = 1.0 / (size * size) as f64;
    let mut out = vec![0.0; side * side];
    out.par_chunks_mut(side).enumerate().for_each_init(
        || {
            (
                vec![Complex::default(); half],
                vec![0.0; size],
                plans.c2r.make_scratch_vec(),
            )
        },
        |(spectrum, signal, scratch), (r, row)| {
            for (c, v) in spectrum.iter_mut().enumerate() {
                *v = columns[c * size + r];
            }
            // Real input has real first and last coefficients; drop the rounding residue that
            // the column transforms leave there.
            spectrum[0].im = 0.0;
            spectrum[half - 1].im = 0.0;
            plans
                .c2r
                .process_with_scratch(spectrum, signal, scratch)
                .expect("a spectrum of a real signal");
            for (o, s) in row.iter_mut().zip(&signal[..side]) {
                *o = s * scale;
            }
        },
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lagrange_weights_reproduce_quadratics() {
        for t in [0.0, 0.1, 0.5, 0.77, 1.0] {
            let w = lagrange(t);
            let nodes = [1.0 / 6.0, 0.5, 5.0 / 6.0];
            let f = |x: f64| 3.0 * x * x - x + 2.0;
            let interpolated: f64 = w.iter().zip(nodes).map(|(w, x)| w * f(x)).sum();
            assert!((interpolated - f(t)).abs() < 1e-12);
        }
    }

    #[test]
    fn grid_sizes_are_smooth_and_bounded() {
        assert_eq!(boxes_for(3.0, 1.0), 50);
        assert_eq!(boxes_for(61.2, 1.0), 64);
        assert_eq!(boxes_for(30.0, 4.0), 120);
        assert_eq!(boxes_for(1e9, 1.0), MAX_BOXES);
        assert_eq!(boxes_for(f64::NAN, 1.0), MAX_BOXES);
        assert_eq!(smooth_at_least(121), 125);
    }
}
