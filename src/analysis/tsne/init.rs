//! Initial layouts. PCA initialisation follows openTSNE: the first two principal components,
//! scaled so that the first has standard deviation 1e-4, plus jitter of 1% of that so that
//! duplicate points do not start on top of each other. Small initial spread matters: early
//! exaggeration then gathers clusters before the layout expands.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use rayon::prelude::*;

use crate::analysis::matrix::Matrix;

pub const INITIAL_STD: f64 = 1e-4;
const JITTER: f64 = 0.01;
/// Rows per partial sum: fixed, so that the sums are the same on any number of threads.
const CHUNK: usize = 2048;
/// Partial sums in flight at once: bounds memory to this many D×D matrices.
const GROUP: usize = 8;

/// Isotropic Gaussian positions of standard deviation 1e-4.
pub fn random(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let normal = Normal::new(0.0, INITIAL_STD).expect("a positive deviation");
    (0..2 * n).map(|_| normal.sample(&mut rng)).collect()
}

/// PCA positions, or `None` when the data has no spread along its first component (all points
/// identical up to rounding), where the scaling is undefined.
pub fn pca(data: Matrix<'_>, seed: u64) -> Option<Vec<f64>> {
    let (n, d) = (data.rows(), data.cols());
    let mean = column_means(data);
    let cov = covariance(data, &mean);
    let axes = top_eigenvectors(&cov, d, 2.min(d), seed);
    let mut y: Vec<f64> = (0..n)
        .into_par_iter()
        .flat_map_iter(|i| {
            let row = data.row(i);
            let mut out = [0.0; 2];
            for (c, axis) in axes.iter().enumerate() {
                out[c] = row
                    .iter()
                    .zip(&mean)
                    .zip(axis)
                    .map(|((&x, m), a)| (x as f64 - m) * a)
                    .sum();
            }
            out
        })
        .collect();
    let first: f64 = (0..n).map(|i| y[2 * i]).sum::<f64>() / n as f64;
    let var: f64 = (0..n).map(|i| (y[2 * i] - first).powi(2)).sum::<f64>() / n as f64;
    let std = var.sqrt();
    if !(std.is_finite() && std > 0.0) {
        return None;
    }
    let scale = INITIAL_STD / std;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let jitter = Normal::new(0.0, INITIAL_STD * JITTER).expect("a positive deviation");
    for v in y.iter_mut() {
        *v = *v * scale + jitter.sample(&mut rng);
    }
    Some(y)
}

fn row_chunks(n: usize) -> Vec<std::ops::Range<usize>> {
    (0..n.div_ceil(CHUNK))
        .map(|c| c * CHUNK..((c + 1) * CHUNK).min(n))
        .collect()
}

fn column_means(data: Matrix<'_>) -> Vec<f64> {
    let d = data.cols();
    let partials: Vec<Vec<f64>> = row_chunks(data.rows())
        .into_par_iter()
        .map(|rows| {
            let mut sum = vec![0.0; d];
            for i in rows {
                for (s, &x) in sum.iter_mut().zip(data.row(i)) {
                    *s += x as f64;
                }
            }
            sum
        })
        .collect();
    let mut mean = vec![0.0; d];
    for p in partials {
        for (m, s) in mean.iter_mut().zip(p) {
            *m += s;
        }
    }
    mean.iter_mut().for_each(|m| *m /= data.rows() as f64);
    mean
}

/// The upper triangle of Σ (x − μ)(x − μ)ᵀ, mirrored, as a dense D×D matrix.
fn covariance(data: Matrix<'_>, mean: &[f64]) -> Vec<f64> {
    let d = data.cols();
    let mut cov = vec![0.0; d * d];
    for group in row_chunks(data.rows()).chunks(GROUP) {
        let partials: Vec<Vec<f64>> = group
            .par_iter()
            .map(|rows| {
                let mut c = vec![0.0; d * d];
                let mut x = vec![0.0; d];
                for i in rows.clone() {
                    for ((v, &r), m) in x.iter_mut().zip(data.row(i)).zip(mean) {
                        *v = r as f64 - m;
                    }
                    for a in 0..d {
                        let xa = x[a];
                        for (cb, xb) in c[a * d + a..(a + 1) * d].iter_mut().zip(&x[a..]) {
                            *cb += xa * xb;
                        }
                    }
                }
                c
            })
            .collect();
        for p in partials {
            for (c, v) in cov.iter_mut().zip(p) {
                *c += v;
            }
        }
    }
    for a in 0..d {
        for b in 0..a {
            cov[a * d + b] = cov[b * d + a];
        }
    }
    cov
}

/// The `count` leading eigenvectors of the symmetric `cov` by subspace iteration with a few
/// extra vectors, then a Rayleigh–Ritz step. Each vector's sign is fixed so that its largest
/// entry is positive, as sklearn's `svd_flip` fixes it, so that the layout does not mirror
/// between runs.
fn top_eigenvectors(cov: &[f64], d: usize, count: usize, seed: u64) -> Vec<Vec<f64>> {
    let block = d.min(count + 4);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5ca1_ab1e);
    let normal = Normal::new(0.0, 1.0).expect("a positive deviation");
    let mut basis: Vec<Vec<f64>> = (0..block)
        .map(|_| (0..d).map(|_| normal.sample(&mut rng)).collect())
        .collect();
    orthonormalise(&mut basis);
    let multiply = |v: &[f64]| -> Vec<f64> {
        (0..d)
            .map(|a| {
                cov[a * d..(a + 1) * d]
                    .iter()
                    .zip(v)
                    .map(|(c, x)| c * x)
                    .sum()
            })
            .collect()
    };
    for _ in 0..300 {
        let mut next: Vec<Vec<f64>> = basis.iter().map(|v| multiply(v)).collect();
        orthonormalise(&mut next);
        let settled = next
            .iter()
            .zip(&basis)
            .take(count)
            .all(|(a, b)| (dot(a, b).abs() - 1.0).abs() < 1e-12);
        basis = next;
        if settled {
            break;
        }
    }
    // Rayleigh–Ritz: the eigenvectors of the block's projection of `cov`.
    let images: Vec<Vec<f64>> = basis.iter().map(|v| multiply(v)).collect();
    let mut h = vec![0.0; block * block];
    for a in 0..block {
        for b in 0..block {
            h[a * block + b] = dot(&basis[a], &images[b]);
        }
    }
    let (values, vectors) = jacobi_eigen(h, block);
    let mut by_value: Vec<usize> = (0..block).collect();
    by_value.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    by_value
        .into_iter()
        .take(count)
        .map(|e| {
            let mut v = vec![0.0; d];
            for (s, base) in basis.iter().enumerate() {
                let w = vectors[s * block + e];
                for (o, x) in v.iter_mut().zip(base) {
                    *o += w * x;
                }
            }
            let largest =
                v.iter().copied().fold(
                    0.0f64,
                    |best, x| if x.abs() > best.abs() { x } else { best },
                );
            if largest < 0.0 {
                v.iter_mut().for_each(|x| *x = -*x);
            }
            v
        })
        .collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Modified Gram–Schmidt, each projection done twice: the vectors of a subspace iteration are
/// nearly parallel to the ones before them, and one pass leaves them far from orthogonal. A
/// vector that vanishes (rank-deficient data) is replaced by a unit vector orthogonal to the rest.
fn orthonormalise(vectors: &mut [Vec<f64>]) {
    let d = vectors.first().map_or(0, Vec::len);
    for i in 0..vectors.len() {
        for attempt in 0..=d {
            for j in (0..i).chain(0..i) {
                let (done, rest) = vectors.split_at_mut(i);
                let proj = dot(&rest[0], &done[j]);
                for (x, y) in rest[0].iter_mut().zip(&done[j]) {
                    *x -= proj * y;
                }
            }
            let norm = dot(&vectors[i], &vectors[i]).sqrt();
            if norm > 1e-12 {
                vectors[i].iter_mut().for_each(|x| *x /= norm);
                break;
            }
            if attempt < d {
                vectors[i] = (0..d).map(|a| f64::from(u8::from(a == attempt))).collect();
            }
        }
    }
}

/// Eigen-decomposition of a small symmetric matrix by cyclic Jacobi rotations; returns the
/// eigenvalues and the eigenvectors as the columns of a row-major matrix.
fn jacobi_eigen(mut a: Vec<f64>, n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v: Vec<f64> = (0..n * n)
        .map(|i| f64::from(u8::from(i / n == i % n)))
        .collect();
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|p| (0..n).filter(move |&q| q != p).map(move |q| (p, q)))
            .map(|(p, q)| a[p * n + q] * a[p * n + q])
            .sum();
        let scale: f64 = (0..n).map(|p| a[p * n + p] * a[p * n + p]).sum::<f64>();
        if off <= 1e-30 * scale.max(f64::MIN_POSITIVE) {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i * n + i]).collect(), v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pca_finds_the_direction_of_largest_spread() {
        // Points along (1, 2, 0) with a little spread along (0, 0, 1).
        let values: Vec<f32> = (0..200)
            .flat_map(|i| {
                let t = i as f32 - 100.0;
                [t, 2.0 * t, ((i * 7) % 5) as f32 * 0.1]
            })
            .collect();
        let cov = covariance(
            Matrix::new(&values, 200, 3).unwrap(),
            &column_means(Matrix::new(&values, 200, 3).unwrap()),
        );
        let axes = top_eigenvectors(&cov, 3, 2, 1);
        let expected = [1.0 / 5f64.sqrt(), 2.0 / 5f64.sqrt(), 0.0];
        for (a, e) in axes[0].iter().zip(expected) {
            assert!((a - e).abs() < 1e-3, "{:?}", axes[0]);
        }
        assert!((axes[1][2].abs() - 1.0).abs() < 1e-3, "{:?}", axes[1]);
    }

    #[test]
    fn pca_positions_have_the_initial_spread() {
        let values: Vec<f32> = (0..300).map(|i| ((i * 13) % 29) as f32).collect();
        let y = pca(Matrix::new(&values, 100, 3).unwrap(), 4).unwrap();
        let first: Vec<f64> = y.iter().step_by(2).copied().collect();
        let mean = first.iter().sum::<f64>() / 100.0;
        let std = (first.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 100.0).sqrt();
        assert!((std - INITIAL_STD).abs() < 0.05 * INITIAL_STD, "{std}");
    }

    #[test]
    fn identical_points_have_no_pca_layout() {
        let values = vec![3f32; 40];
        assert!(pca(Matrix::new(&values, 10, 4).unwrap(), 0).is_none());
    }
}
