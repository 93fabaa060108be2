//! crossclr patch: f32/f64 matrix products through the system OpenBLAS (the `openblas`
//! feature). On the 2-core AVX-512 machine crossclr is measured on, the `gemm` crate reached
//! 64–95 GFLOP/s at the shapes CrossCLR and MiniLM multiply, OpenBLAS 230–300 GFLOP/s.

use crate::{DType, Layout, WithDType};

#[link(name = "openblas")]
extern "C" {
    fn cblas_sgemm(
        order: i32,
        trans_a: i32,
        trans_b: i32,
        m: i32,
        n: i32,
        k: i32,
        alpha: f32,
        a: *const f32,
        lda: i32,
        b: *const f32,
        ldb: i32,
        beta: f32,
        c: *mut f32,
        ldc: i32,
    );
    fn cblas_dgemm(
        order: i32,
        trans_a: i32,
        trans_b: i32,
        m: i32,
        n: i32,
        k: i32,
        alpha: f64,
        a: *const f64,
        lda: i32,
        b: *const f64,
        ldb: i32,
        beta: f64,
        c: *mut f64,
        ldc: i32,
    );
    fn openblas_set_num_threads(threads: i32);
}

const ROW_MAJOR: i32 = 101;
const NO_TRANS: i32 = 111;
const TRANS: i32 = 112;

/// Sets OpenBLAS's thread count (it starts with one per core, or `OPENBLAS_NUM_THREADS`).
pub fn set_num_threads(threads: usize) {
    // SAFETY: a plain setter of OpenBLAS's global state.
    unsafe { openblas_set_num_threads(threads.max(1) as i32) }
}

/// How a row-major matrix of `rows × cols` with the last two `strides` is read by BLAS: as is
/// (`N`, leading dimension = the row stride) or transposed (`T`, leading dimension = the column
/// stride). None for any other striding.
fn operand(rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> Option<(i32, usize)> {
    if (col_stride == 1 || cols == 1) && (row_stride >= cols.max(1) || rows == 1) {
        Some((NO_TRANS, if rows == 1 { cols.max(1) } else { row_stride }))
    } else if (row_stride == 1 || rows == 1) && (col_stride >= rows.max(1) || cols == 1) {
        Some((TRANS, if cols == 1 { rows.max(1) } else { col_stride }))
    } else {
        None
    }
}

/// `lhs · rhs` for a batch of `b` products of `m × k` by `k × n`, or None when OpenBLAS cannot
/// take these operands (another dtype, an empty product, a striding BLAS has no word for): the
/// caller then uses the `gemm` crate.
pub(crate) fn matmul<T: WithDType>(
    (b, m, n, k): (usize, usize, usize, usize),
    (a_skip, b_skip): (usize, usize),
    lhs: &[T],
    lhs_l: &Layout,
    rhs: &[T],
    rhs_l: &Layout,
) -> Option<Vec<T>> {
    if !matches!(T::DTYPE, DType::F32 | DType::F64) || b * m * n * k == 0 {
        return None;
    }
    let too_big = |v: usize| v > i32::MAX as usize;
    if [m, n, k].into_iter().any(too_big) {
        return None;
    }
    let (ls, rs) = (lhs_l.stride(), rhs_l.stride());
    let rank = ls.len();
    let (trans_a, lda) = operand(m, k, ls[rank - 2], ls[rank - 1])?;
    let (trans_b, ldb) = operand(k, n, rs[rank - 2], rs[rank - 1])?;
    if too_big(lda) || too_big(ldb) {
        return None;
    }
    let lhs = &lhs[lhs_l.start_offset()..];
    let rhs = &rhs[rhs_l.start_offset()..];
    // The last element each product reads must be inside the slices.
    let extent = |rows: usize, cols: usize, rs: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs + 1;
    let lhs_needed = (b - 1) * a_skip + extent(m, k, ls[rank - 2], ls[rank - 1]);
    let rhs_needed = (b - 1) * b_skip + extent(k, n, rs[rank - 2], rs[rank - 1]);
    if lhs.len() < lhs_needed || rhs.len() < rhs_needed {
        return None;
    }
    let mut dst = vec![T::zero(); b * m * n];
    for step in 0..b {
        let a = lhs[step * a_skip..].as_ptr();
        let bp = rhs[step * b_skip..].as_ptr();
        let c = dst[step * m * n..].as_mut_ptr();
        // SAFETY: T is f32 or f64 (checked above), so the casts are to the same type; the
        // operands' extents were checked against the slices, and c holds m·n elements.
        unsafe {
            match T::DTYPE {
                DType::F32 => cblas_sgemm(
                    ROW_MAJOR, trans_a, trans_b, m as i32, n as i32, k as i32, 1.0,
                    a as *const f32, lda as i32, bp as *const f32, ldb as i32, 0.0,
                    c as *mut f32, n as i32,
                ),
                _ => cblas_dgemm(
                    ROW_MAJOR, trans_a, trans_b, m as i32, n as i32, k as i32, 1.0,
                    a as *const f64, lda as i32, bp as *const f64, ldb as i32, 0.0,
                    c as *mut f64, n as i32,
                ),
            }
        }
    }
    Some(dst)
}
