//! Unit rows and similarity matrices with exactly the gradients that exist.
//!
//! candle's matmul backward always computes both operands' gradients and goes through strided
//! transposes. Against a constant queue `Q`, CrossCLR needs `A·[C; Q]ᵀ`, whose gradient for `Q` is
//! never needed (and `Q` can be 20× the batch). On the CPU the product is computed on detached,
//! contiguous operands and a small custom op attaches the right gradient; elsewhere the plain ops
//! are used. (The no-queue Gram matrix is fused with its NLL, see `nll::gram_nll`.)

use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, D, Device, Layout, Result, Shape, Tensor,
};

/// Smallest norm a row is divided by, as in `F.normalize` (eps = 1e-12).
const EPS: f64 = 1e-12;

/// Rows scaled to unit length: `x / max(‖x‖, 1e-12)`. On the CPU one fused op whose gradient is
/// `(g − x̂ (x̂·g)) / ‖x‖` (or `g / eps` for a clamped row); elsewhere composed from candle ops,
/// with the clamp under the square root so that a zero row gets a zero gradient, not NaN.
pub(crate) fn unit_rows(x: &Tensor) -> Result<Tensor> {
    match x.device() {
        Device::Cpu if matches!(x.dtype(), candle_core::DType::F32 | candle_core::DType::F64) => {
            x.contiguous()?.apply_op1(UnitRows)
        }
        _ => {
            let norm = x
                .sqr()?
                .sum_keepdim(D::Minus1)?
                .maximum(EPS * EPS)?
                .sqrt()?;
            x.broadcast_div(&norm)
        }
    }
}

struct UnitRows;
struct UnitRowsGrad;

/// A float the row kernels run on; sums are accumulated in f64.
trait RowFloat: Copy {
    fn widen(self) -> f64;
    fn narrow(value: f64) -> Self;
}

impl RowFloat for f32 {
    fn widen(self) -> f64 {
        self as f64
    }
    fn narrow(value: f64) -> Self {
        value as f32
    }
}

impl RowFloat for f64 {
    fn widen(self) -> f64 {
        self
    }
    fn narrow(value: f64) -> Self {
        value
    }
}

fn dot<T: RowFloat>(a: &[T], b: &[T]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x.widen() * y.widen()).sum()
}

fn unit_rows_of<T: RowFloat>(x: &[T], width: usize) -> Vec<T> {
    let mut out = vec![T::narrow(0.0); x.len()];
    for (row, dst) in x
        .chunks_exact(width.max(1))
        .zip(out.chunks_exact_mut(width.max(1)))
    {
        let inverse = 1.0 / dot(row, row).sqrt().max(EPS);
        let inverse = T::narrow(inverse).widen();
        for (d, v) in dst.iter_mut().zip(row) {
            *d = T::narrow(v.widen() * inverse);
        }
    }
    out
}

fn unit_rows_grad<T: RowFloat>(x: &[T], g: &[T], width: usize) -> Vec<T> {
    let mut out = vec![T::narrow(0.0); x.len()];
    let rows = x
        .chunks_exact(width.max(1))
        .zip(g.chunks_exact(width.max(1)));
    for ((row, grad), dst) in rows.zip(out.chunks_exact_mut(width.max(1))) {
        let squared = dot(row, row);
        let norm = squared.sqrt();
        if norm <= EPS {
            // x / eps is linear in x: its gradient is g / eps.
            for (d, v) in dst.iter_mut().zip(grad) {
                *d = T::narrow(v.widen() / EPS);
            }
            continue;
        }
        let along = dot(row, grad) / squared;
        for ((d, x), g) in dst.iter_mut().zip(row).zip(grad) {
            *d = T::narrow((g.widen() - x.widen() * along) / norm);
        }
    }
    out
}

fn contiguous<'a, T>(data: &'a [T], layout: &Layout) -> Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("unit rows need a contiguous tensor"),
    }
}

fn width_of(layout: &Layout) -> usize {
    layout.shape().dims().last().copied().unwrap_or(1)
}

impl CustomOp1 for UnitRows {
    fn name(&self) -> &'static str {
        "crossclr-unit-rows"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let width = width_of(layout);
        let out = match storage {
            CpuStorage::F32(x) => CpuStorage::F32(unit_rows_of(contiguous(x, layout)?, width)),
            CpuStorage::F64(x) => CpuStorage::F64(unit_rows_of(contiguous(x, layout)?, width)),
            _ => candle_core::bail!("unit rows need f32 or f64"),
        };
        Ok((out, layout.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            arg.apply_op2_no_bwd(&grad.contiguous()?, &UnitRowsGrad)?,
        ))
    }
}

impl CustomOp2 for UnitRowsGrad {
    fn name(&self) -> &'static str {
        "crossclr-unit-rows-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let width = width_of(l1);
        let out = match (s1, s2) {
            (CpuStorage::F32(x), CpuStorage::F32(g)) => CpuStorage::F32(unit_rows_grad(
                contiguous(x, l1)?,
                contiguous(g, l2)?,
                width,
            )),
            (CpuStorage::F64(x), CpuStorage::F64(g)) => CpuStorage::F64(unit_rows_grad(
                contiguous(x, l1)?,
                contiguous(g, l2)?,
                width,
            )),
            _ => candle_core::bail!("unit-rows gradient needs matching f32 or f64"),
        };
        Ok((out, l1.shape().clone()))
    }
}

/// `anchors · [candidates; bank]ᵀ`: `candidates` gets its gradient, the constant `bank` does not.
pub(crate) fn similarity(
    anchors: &Tensor,
    candidates: &Tensor,
    bank: Option<&Tensor>,
) -> Result<Tensor> {
    let rhs = match bank {
        Some(bank) => Tensor::cat(&[&candidates.detach(), &bank.detach()], 0)?,
        None => candidates.detach(),
    };
    if !matches!(anchors.device(), Device::Cpu) {
        let rhs = match bank {
            Some(bank) => Tensor::cat(&[candidates, &bank.detach()], 0)?,
            None => candidates.clone(),
        };
        return anchors.matmul(&rhs.t()?);
    }
    let product = anchors.detach().matmul(&rhs.t()?.contiguous()?)?;
    product.apply_op3(
        anchors,
        candidates,
        AttachSimilarity {
            rhs,
            candidates: candidates.dim(0)?,
        },
    )
}

/// The forward value of the op: a copy of the product computed outside.
fn copy_of(storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("similarity product must be contiguous");
    };
    let out = match storage {
        CpuStorage::F32(v) => CpuStorage::F32(v[start..end].to_vec()),
        CpuStorage::F64(v) => CpuStorage::F64(v[start..end].to_vec()),
        CpuStorage::BF16(v) => CpuStorage::BF16(v[start..end].to_vec()),
        CpuStorage::F16(v) => CpuStorage::F16(v[start..end].to_vec()),
        _ => candle_core::bail!("similarity of non-float embeddings"),
    };
    Ok((out, layout.shape().clone()))
}

struct AttachSimilarity {
    /// `[candidates; bank]`, detached and contiguous.
    rhs: Tensor,
    candidates: usize,
}

impl CustomOp3 for AttachSimilarity {
    fn name(&self) -> &'static str {
        "crossclr-similarity"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        copy_of(s1, l1)
    }

    fn bwd(
        &self,
        _product: &Tensor,
        anchors: &Tensor,
        _candidates: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad_anchors = grad.matmul(&self.rhs)?;
        let grad_candidates = grad
            .narrow(1, 0, self.candidates)?
            .t()?
            .contiguous()?
            .matmul(&anchors.detach())?;
        Ok((None, Some(grad_anchors), Some(grad_candidates)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Var};

    fn grads_of(loss: Tensor, vars: &[&Var]) -> Vec<Vec<f64>> {
        let g = loss.backward().unwrap();
        vars.iter()
            .map(|v| {
                g.get(v.as_tensor())
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_dtype(DType::F64)
                    .unwrap()
                    .to_vec1()
                    .unwrap()
            })
            .collect()
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    fn assert_close(a: &[f64], b: &[f64], tolerance: f64) {
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= tolerance * y.abs().max(1.0), "{x} vs {y}");
        }
    }

    fn weights(rows: usize, cols: usize) -> Tensor {
        let w: Vec<f64> = (0..rows * cols)
            .map(|k| ((k * 7919) % 13) as f64 / 13.0 - 0.4)
            .collect();
        Tensor::from_vec(w, (rows, cols), &Device::Cpu).unwrap()
    }

    #[test]
    fn unit_rows_match_the_composed_ops_with_gradients() {
        let mut data = weights(5, 4).to_vec2::<f64>().unwrap();
        data[2] = vec![0.0; 4]; // a zero row: clamped norm, finite gradient
        let x = Var::from_tensor(&Tensor::new(data, &Device::Cpu).unwrap()).unwrap();
        let w = weights(5, 4);
        let fused = unit_rows(x.as_tensor()).unwrap();
        let norm = x
            .as_tensor()
            .sqr()
            .unwrap()
            .sum_keepdim(1)
            .unwrap()
            .maximum(1e-24)
            .unwrap()
            .sqrt()
            .unwrap();
        let composed = x.as_tensor().broadcast_div(&norm).unwrap();
        assert!(max_abs_diff(&fused, &composed) < 1e-15);
        let g1 = grads_of((fused * &w).unwrap().sum_all().unwrap(), &[&x]);
        let g2 = grads_of((composed * &w).unwrap().sum_all().unwrap(), &[&x]);
        assert_close(&g1[0], &g2[0], 1e-12);
    }

    #[test]
    fn similarity_gradient_equals_plain_matmul_and_skips_the_bank() {
        let a = Var::from_tensor(&weights(5, 4)).unwrap();
        let c = Var::from_tensor(&(weights(3, 4) * 0.5).unwrap()).unwrap();
        let bank = (weights(7, 4) * -1.5).unwrap();
        let w = weights(5, 10);
        let ours = similarity(a.as_tensor(), c.as_tensor(), Some(&bank)).unwrap();
        let plain = a
            .as_tensor()
            .matmul(
                &Tensor::cat(&[c.as_tensor(), &bank], 0)
                    .unwrap()
                    .t()
                    .unwrap(),
            )
            .unwrap();
        assert!(max_abs_diff(&ours, &plain) < 1e-12);
        let g1 = grads_of((ours * &w).unwrap().sum_all().unwrap(), &[&a, &c]);
        let g2 = grads_of((plain * &w).unwrap().sum_all().unwrap(), &[&a, &c]);
        assert_close(&g1.concat(), &g2.concat(), 1e-12);
    }
}
