//! Exact ranking over an in-memory matrix of L2-normalised rows: one pass over the matrix per
//! query, split across threads by rows, each keeping its own top-k, merged in row order. The
//! scan is memory-bound, so it reads the matrix once and writes no score vector, and a large
//! matrix lives on huge pages ([`RowStorage`]).

use crate::project::EmbeddingMatrix;

/// Rows scaled to unit length (all-zero rows stay zero), row-major f32.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitRows {
    rows: usize,
    cols: usize,
    data: RowStorage,
}

/// Matrices at least this large go on huge pages (four of them).
const HUGE_PAGE_MIN_BYTES: usize = 8 << 20;
const HUGE_PAGE_BYTES: usize = 2 << 20;

/// The matrix's f32 storage. On Linux a large one is an anonymous mapping advised onto
/// transparent huge pages (2 MiB), which the kernel grants only on request where THP is in
/// `madvise` mode (Debian's default): on 4 KiB pages a scan of 100,000 × 384 spent a third of its
/// time walking page tables (12.1 ms against 8.0 ms on huge pages, here). Elsewhere, or when the
/// mapping fails, a plain vector.
enum RowStorage {
    Heap(Vec<f32>),
    #[cfg(target_os = "linux")]
    Mapped {
        map: memmap2::MmapMut,
        /// Bytes from the mapping's start to the first huge-page boundary, where the data starts.
        offset: usize,
        len: usize,
    },
}

impl RowStorage {
    fn from_vec(data: Vec<f32>) -> Self {
        #[cfg(target_os = "linux")]
        if data.len() * 4 >= HUGE_PAGE_MIN_BYTES
            && let Some(mut mapped) = Self::mapped(data.len())
        {
            mapped.as_mut_slice().copy_from_slice(&data);
            return mapped;
        }
        Self::Heap(data)
    }

    /// `len` zeros on huge pages, or None when the kernel refuses the mapping.
    #[cfg(target_os = "linux")]
    fn mapped(len: usize) -> Option<Self> {
        let map = memmap2::MmapMut::map_anon(len * 4 + HUGE_PAGE_BYTES).ok()?;
        let address = map.as_ptr() as usize;
        let offset = (HUGE_PAGE_BYTES - address % HUGE_PAGE_BYTES) % HUGE_PAGE_BYTES;
        // Advice only: without THP the pages stay small and everything still works.
        let _ = map.advise(memmap2::Advice::HugePage);
        Some(Self::Mapped { map, offset, len })
    }

    fn as_slice(&self) -> &[f32] {
        match self {
            Self::Heap(data) => data,
            #[cfg(target_os = "linux")]
            Self::Mapped { map, offset, len } => {
                bytemuck::cast_slice(&map[*offset..*offset + *len * 4])
            }
        }
    }

    fn as_mut_slice(&mut self) -> &mut [f32] {
        match self {
            Self::Heap(data) => data,
            #[cfg(target_os = "linux")]
            Self::Mapped { map, offset, len } => {
                bytemuck::cast_slice_mut(&mut map[*offset..*offset + *len * 4])
            }
        }
    }
}

impl Clone for RowStorage {
    fn clone(&self) -> Self {
        Self::from_vec(self.as_slice().to_vec())
    }
}

impl PartialEq for RowStorage {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl std::fmt::Debug for RowStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            Self::Heap(_) => "heap",
            #[cfg(target_os = "linux")]
            Self::Mapped { .. } => "huge pages",
        };
        write!(f, "RowStorage({} floats, {kind})", self.as_slice().len())
    }
}

/// Rows per thread below which splitting the scan costs more than it saves.
const MIN_ROWS_PER_THREAD: usize = 4096;

impl UnitRows {
    /// Normalises each row of `data` (`rows × cols`, row-major) in place.
    pub fn new(rows: usize, cols: usize, mut data: Vec<f32>) -> Self {
        assert_eq!(
            rows * cols,
            data.len(),
            "UnitRows data does not match its shape"
        );
        for row in data.chunks_exact_mut(cols.max(1)) {
            let norm = row
                .iter()
                .map(|v| f64::from(*v) * f64::from(*v))
                .sum::<f64>()
                .sqrt();
            if norm > 0.0 {
                let scale = (1.0 / norm) as f32;
                row.iter_mut().for_each(|v| *v *= scale);
            }
        }
        Self {
            rows,
            cols,
            data: RowStorage::from_vec(data),
        }
    }

    pub fn from_matrix(matrix: &EmbeddingMatrix) -> Self {
        Self::new(matrix.rows, matrix.cols, matrix.data.clone())
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.data.as_slice()[i * self.cols..(i + 1) * self.cols]
    }

    pub fn as_slice(&self) -> &[f32] {
        self.data.as_slice()
    }

    /// The `k` rows with the largest dot product with `query`, best first; ties go to the lower
    /// row. Rows for which `skip` is true are left out. The same input gives the same list
    /// whatever the number of threads: every score is one row's own dot product.
    pub fn top_k(
        &self,
        query: &[f32],
        k: usize,
        skip: impl Fn(usize) -> bool + Sync,
    ) -> Vec<(usize, f32)> {
        assert_eq!(query.len(), self.cols, "query width differs from the rows'");
        if k == 0 || self.rows == 0 {
            return Vec::new();
        }
        let threads = num_cpus::get()
            .min(self.rows.div_ceil(MIN_ROWS_PER_THREAD))
            .max(1);
        let per_thread = self.rows.div_ceil(threads);
        let scan = |start: usize| {
            let rows = start..(start + per_thread).min(self.rows);
            scan_rows(self, rows, query, k, &skip)
        };
        let parts: Vec<Vec<(usize, f32)>> = if threads == 1 {
            vec![scan(0)]
        } else {
            // The calling thread scans the first part itself: one thread fewer to start.
            std::thread::scope(|scope| {
                let handles: Vec<_> = (1..threads)
                    .map(|t| {
                        let scan = &scan;
                        scope.spawn(move || scan(t * per_thread))
                    })
                    .collect();
                let first = scan(0);
                std::iter::once(first)
                    .chain(
                        handles
                            .into_iter()
                            .map(|h| h.join().expect("a ranking thread panicked")),
                    )
                    .collect()
            })
        };
        let mut merged = TopK::new(k);
        for (i, score) in parts.into_iter().flatten() {
            merged.offer(i, score);
        }
        merged.into_sorted()
    }
}

/// The best `k` of `rows` (see [`UnitRows::top_k`]), with the dot product compiled for AVX-512
/// where the CPU has it: the same operations in the same order on wider registers, so the same
/// bits (no fused multiply-add). At 100,000 × 384 the matrix fits this machine's L3 cache, and
/// the baseline SSE2 code could not keep up with it.
fn scan_rows(
    matrix: &UnitRows,
    rows: std::ops::Range<usize>,
    query: &[f32],
    k: usize,
    skip: &(impl Fn(usize) -> bool + Sync),
) -> Vec<(usize, f32)> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        #[allow(unsafe_code)]
        // SAFETY: the CPU has AVX-512F, detected just now.
        return unsafe { scan_rows_avx512(matrix, rows, query, k, skip) };
    }
    scan_rows_portable(matrix, rows, query, k, skip)
}

/// Four rows at a time ([`dot_rows`]): their accumulators fit AVX-512's 32 registers (not
/// SSE2's 16), and four streams side by side read the matrix faster than one.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn scan_rows_avx512(
    matrix: &UnitRows,
    rows: std::ops::Range<usize>,
    query: &[f32],
    k: usize,
    skip: &(impl Fn(usize) -> bool + Sync),
) -> Vec<(usize, f32)> {
    const AT_ONCE: usize = 4;
    let mut best = TopK::new(k);
    let mut i = rows.start;
    while i + AT_ONCE <= rows.end {
        let scores = dot_rows::<AT_ONCE>(std::array::from_fn(|r| matrix.row(i + r)), query);
        for (r, score) in scores.into_iter().enumerate() {
            if !skip(i + r) {
                best.offer(i + r, score);
            }
        }
        i += AT_ONCE;
    }
    offer_rows(&mut best, matrix, i..rows.end, query, skip);
    best.into_sorted()
}

#[inline(always)]
fn scan_rows_portable(
    matrix: &UnitRows,
    rows: std::ops::Range<usize>,
    query: &[f32],
    k: usize,
    skip: &(impl Fn(usize) -> bool + Sync),
) -> Vec<(usize, f32)> {
    let mut best = TopK::new(k);
    offer_rows(&mut best, matrix, rows, query, skip);
    best.into_sorted()
}

/// Offers each row of `rows` that `skip` keeps, one [`dot`] at a time.
#[inline(always)]
fn offer_rows(
    best: &mut TopK,
    matrix: &UnitRows,
    rows: std::ops::Range<usize>,
    query: &[f32],
    skip: &(impl Fn(usize) -> bool + Sync),
) {
    for i in rows {
        if !skip(i) {
            best.offer(i, dot(matrix.row(i), query));
        }
    }
}

/// The best `k` (index, score) pairs seen so far: larger score first, then lower index.
#[derive(Debug)]
pub(crate) struct TopK {
    k: usize,
    /// Kept sorted best first; at most `k` long.
    items: Vec<(usize, f32)>,
}

fn better(a: (usize, f32), b: (usize, f32)) -> bool {
    a.1 > b.1 || (a.1 == b.1 && a.0 < b.0)
}

impl TopK {
    pub(crate) fn new(k: usize) -> Self {
        Self {
            k,
            items: Vec::with_capacity(k + 1),
        }
    }

    #[inline]
    pub(crate) fn offer(&mut self, index: usize, score: f32) {
        if score.is_nan() {
            return;
        }
        let item = (index, score);
        if self.items.len() == self.k {
            // The common case on a long scan: worse than the worst kept.
            if !better(item, self.items[self.k - 1]) {
                return;
            }
            self.items.pop();
        }
        let at = self.items.partition_point(|&kept| better(kept, item));
        self.items.insert(at, item);
    }

    pub(crate) fn into_sorted(self) -> Vec<(usize, f32)> {
        self.items
    }
}

/// Accumulators per dot product.
const LANES: usize = 16;

/// A dot product with 16 independent accumulators, so the compiler can keep them in vector
/// registers (a single running sum would be one long dependency chain): lane `l` sums elements
/// `l, l + 16, …`, the remainder is summed alone, the lanes pairwise. Written as whole-array
/// steps on array chunks: as an indexed loop over slices LLVM vectorised it two floats at a time,
/// at every instruction set.
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let (a_chunks, a_rest) = a.as_chunks::<LANES>();
    let (b_chunks, b_rest) = b.as_chunks::<LANES>();
    for (x, y) in a_chunks.iter().zip(b_chunks) {
        let products: [f32; LANES] = std::array::from_fn(|l| x[l] * y[l]);
        acc = std::array::from_fn(|l| acc[l] + products[l]);
    }
    let mut sum = 0f32;
    for (x, y) in a_rest.iter().zip(b_rest) {
        sum += x * y;
    }
    sum_lanes(&acc, sum)
}

/// The lanes of a dot product summed pairwise in a fixed order, then the remainder's `sum`.
#[inline(always)]
fn sum_lanes(acc: &[f32; LANES], sum: f32) -> f32 {
    let eights: [f32; 8] = std::array::from_fn(|l| acc[l] + acc[l + 8]);
    let fours: [f32; 4] = std::array::from_fn(|l| eights[l] + eights[l + 4]);
    let twos: [f32; 2] = std::array::from_fn(|l| fours[l] + fours[l + 2]);
    (twos[0] + twos[1]) + sum
}

/// [`dot`] of `R` rows with one query in one pass, each row summed exactly as `dot` sums it
/// (the same bits).
#[inline(always)]
fn dot_rows<const R: usize>(rows: [&[f32]; R], query: &[f32]) -> [f32; R] {
    let mut acc = [[0f32; LANES]; R];
    let (query_chunks, query_rest) = query.as_chunks::<LANES>();
    let chunks: [&[[f32; LANES]]; R] = std::array::from_fn(|r| rows[r].as_chunks::<LANES>().0);
    for (c, y) in query_chunks.iter().enumerate() {
        for r in 0..R {
            let x = &chunks[r][c];
            let products: [f32; LANES] = std::array::from_fn(|l| x[l] * y[l]);
            acc[r] = std::array::from_fn(|l| acc[r][l] + products[l]);
        }
    }
    std::array::from_fn(|r| {
        let rest = &rows[r][query_chunks.len() * LANES..];
        let mut sum = 0f32;
        for (x, y) in rest.iter().zip(query_rest) {
            sum += x * y;
        }
        sum_lanes(&acc[r], sum)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(rows: usize, cols: usize, seed: u64) -> UnitRows {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let data = (0..rows * cols)
            .map(|_| rng.random::<f32>() - 0.5)
            .collect();
        UnitRows::new(rows, cols, data)
    }

    #[test]
    fn top_k_matches_a_full_sort_with_ties_to_the_lower_row() {
        let rows = matrix(20_000, 37, 1);
        let query: Vec<f32> = rows.row(5).to_vec();
        let mut all: Vec<(usize, f32)> = (0..rows.rows())
            .map(|i| (i, dot(rows.row(i), &query)))
            .collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        assert_eq!(rows.top_k(&query, 10, |_| false), all[..10].to_vec());
        assert_eq!(rows.top_k(&query, 10, |_| false)[0].0, 5);
        let without_self = rows.top_k(&query, 3, |i| i == 5);
        assert_eq!(without_self, all[1..4].to_vec());

        let ties = UnitRows::new(4, 2, vec![1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0]);
        let order: Vec<usize> = ties
            .top_k(&[1.0, 0.0], 4, |_| false)
            .iter()
            .map(|h| h.0)
            .collect();
        assert_eq!(order, vec![0, 2, 3, 1]);
    }

    #[test]
    fn a_large_matrix_on_huge_pages_reads_and_clones_like_a_small_one() {
        let cols = 256;
        let rows = HUGE_PAGE_MIN_BYTES / 4 / cols + 3;
        let big = matrix(rows, cols, 2);
        if cfg!(target_os = "linux") {
            assert!(format!("{:?}", big.data).contains("huge pages"));
        }
        let heap = UnitRows {
            rows,
            cols,
            data: RowStorage::Heap(big.as_slice().to_vec()),
        };
        assert_eq!(big, heap);
        assert_eq!(big.clone(), big);
        assert_eq!(big.as_slice().len(), rows * cols);
        let query = big.row(rows - 1).to_vec();
        assert_eq!(
            big.top_k(&query, 5, |_| false),
            heap.top_k(&query, 5, |_| false)
        );
        assert_eq!(big.top_k(&query, 1, |_| false)[0].0, rows - 1);
    }

    /// The order `dot` promises, written as plain loops.
    fn dot_in_plain_loops(a: &[f32], b: &[f32]) -> f32 {
        let mut acc = [0f32; 16];
        let whole = a.len() / 16 * 16;
        for i in 0..whole {
            acc[i % 16] += a[i] * b[i];
        }
        let mut sum = 0f32;
        for i in whole..a.len() {
            sum += a[i] * b[i];
        }
        let mut width = 16;
        while width > 1 {
            width /= 2;
            for l in 0..width {
                acc[l] += acc[l + width];
            }
        }
        acc[0] + sum
    }

    #[test]
    fn the_dot_product_sums_in_its_stated_order_bit_for_bit() {
        for cols in [1, 15, 16, 17, 37, 256, 384, 1000] {
            let rows = matrix(2, cols, cols as u64);
            let (a, b) = (rows.row(0), rows.row(1));
            assert_eq!(
                dot(a, b).to_bits(),
                dot_in_plain_loops(a, b).to_bits(),
                "{cols} columns"
            );
            let both = dot_rows([a, b], b);
            assert_eq!(
                both[0].to_bits(),
                dot(a, b).to_bits(),
                "{cols} columns, two rows"
            );
            assert_eq!(
                both[1].to_bits(),
                dot(b, b).to_bits(),
                "{cols} columns, two rows"
            );
            // Through the scan (four rows at a time where the CPU has AVX-512).
            let nine = matrix(9, cols, cols as u64 + 1);
            let query = nine.row(8);
            for (row, score) in nine.top_k(query, 9, |_| false) {
                let expected = dot_in_plain_loops(nine.row(row), query);
                assert_eq!(
                    score.to_bits(),
                    expected.to_bits(),
                    "{cols} columns, row {row}"
                );
            }
        }
    }

    #[test]
    fn rows_are_unit_length_and_zero_rows_stay_zero() {
        let rows = UnitRows::new(2, 2, vec![3.0, 4.0, 0.0, 0.0]);
        assert_eq!(rows.row(0), &[0.6, 0.8]);
        assert_eq!(rows.row(1), &[0.0, 0.0]);
    }
}
