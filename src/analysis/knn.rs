//! k nearest neighbours under the squared Euclidean distance: exact for small sets, and for large
//! ones a random-projection forest refined by neighbour-of-neighbour joins (NN-descent's local
//! join, done per point so that no two threads ever write the same list).
//!
//! Lists are sorted by (distance, index): a total order, so ties between duplicate points are
//! broken the same way on every run.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::matrix::{Matrix, squared_distance};

/// Up to this many points `KnnMethod::Auto` searches exactly: at 10,000 × 256 that is about a
/// second on two cores, and the forest's approximation buys nothing at that size.
pub const EXACT_MAX_POINTS: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KnnMethod {
    /// Exact up to [`EXACT_MAX_POINTS`] points, approximate above.
    #[default]
    Auto,
    Exact,
    Approximate,
}

/// Each point's `k` nearest other points, nearest first.
#[derive(Debug, Clone, PartialEq)]
pub struct KnnGraph {
    k: usize,
    indices: Vec<u32>,
    sq_distances: Vec<f32>,
}

impl KnnGraph {
    pub fn k(&self) -> usize {
        self.k
    }

    pub fn len(&self) -> usize {
        self.indices.len() / self.k.max(1)
    }

    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    pub fn neighbours(&self, i: usize) -> &[u32] {
        &self.indices[i * self.k..(i + 1) * self.k]
    }

    /// Squared distances to [`KnnGraph::neighbours`], in the same order.
    pub fn sq_distances(&self, i: usize) -> &[f32] {
        &self.sq_distances[i * self.k..(i + 1) * self.k]
    }

    fn from_lists(k: usize, lists: Vec<Vec<(f32, u32)>>) -> Self {
        let mut indices = Vec::with_capacity(lists.len() * k);
        let mut sq_distances = Vec::with_capacity(lists.len() * k);
        for list in lists {
            debug_assert_eq!(list.len(), k);
            for (d, j) in list {
                indices.push(j);
                sq_distances.push(d);
            }
        }
        Self {
            k,
            indices,
            sq_distances,
        }
    }
}

/// The `k` nearest neighbours of every row; `k` must be below the number of rows.
pub fn knn(data: Matrix<'_>, k: usize, method: KnnMethod, seed: u64) -> KnnGraph {
    let exact_search = match method {
        KnnMethod::Exact => true,
        KnnMethod::Approximate => false,
        KnnMethod::Auto => data.rows() <= EXACT_MAX_POINTS,
    };
    if exact_search {
        exact(data, k)
    } else {
        approximate(data, k, seed)
    }
}

fn by_distance(a: &(f32, u32), b: &(f32, u32)) -> std::cmp::Ordering {
    a.0.total_cmp(&b.0).then(a.1.cmp(&b.1))
}

/// Keeps the `k` smallest of `candidates`, sorted.
fn keep_nearest(mut candidates: Vec<(f32, u32)>, k: usize) -> Vec<(f32, u32)> {
    if candidates.len() > k {
        candidates.select_nth_unstable_by(k - 1, by_distance);
        candidates.truncate(k);
    }
    candidates.sort_unstable_by(by_distance);
    candidates
}

/// Brute force, in blocks of rows so that each other row is read once per block.
pub fn exact(data: Matrix<'_>, k: usize) -> KnnGraph {
    let all: Vec<u32> = (0..data.rows() as u32).collect();
    exact_for(data, &all, k)
}

/// The exact lists of the rows `queries` only (row r of the graph is `queries[r]`'s), among all
/// rows: how a benchmark scores a sample of a set too large to search exactly.
pub fn exact_for(data: Matrix<'_>, queries: &[u32], k: usize) -> KnnGraph {
    const BLOCK: usize = 16;
    let n = data.rows();
    assert!(k < n, "k = {k} needs more than {n} points");
    let blocks: Vec<Vec<Vec<(f32, u32)>>> = queries
        .par_chunks(BLOCK)
        .map(|rows| {
            let mut distances: Vec<Vec<(f32, u32)>> =
                rows.iter().map(|_| Vec::with_capacity(n)).collect();
            for j in 0..n {
                let xj = data.row(j);
                for (slot, &i) in rows.iter().enumerate() {
                    if i as usize != j {
                        distances[slot]
                            .push((squared_distance(data.row(i as usize), xj), j as u32));
                    }
                }
            }
            distances
                .into_iter()
                .map(|candidates| keep_nearest(candidates, k))
                .collect()
        })
        .collect();
    KnnGraph::from_lists(k, blocks.into_iter().flatten().collect())
}

/// Random-projection trees: each split is the hyperplane halfway between two random points of
/// the node (as in Annoy and PyNNDescent), so leaves follow the data's density.
struct Tree {
    /// The points, permuted so that every leaf is a contiguous range.
    order: Vec<u32>,
    leaves: Vec<(u32, u32)>,
    leaf_of: Vec<u32>,
}

fn build_tree(data: Matrix<'_>, leaf_size: usize, seed: u64) -> Tree {
    let n = data.rows();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut leaves = Vec::new();
    let mut stack = vec![(0usize, n)];
    let mut normal = vec![0f32; data.cols()];
    let mut sides = Vec::new();
    while let Some((start, end)) = stack.pop() {
        if end - start <= leaf_size {
            leaves.push((start as u32, end as u32));
            continue;
        }
        let node = &mut order[start..end];
        let a = rng.random_range(0..node.len());
        let mut b = rng.random_range(0..node.len() - 1);
        if b >= a {
            b += 1;
        }
        let (xa, xb) = (data.row(node[a] as usize), data.row(node[b] as usize));
        let mut offset = 0f32;
        for ((w, &p), &q) in normal.iter_mut().zip(xa).zip(xb) {
            *w = p - q;
            offset -= *w * (p + q) * 0.5;
        }
        sides.clear();
        for &i in node.iter() {
            let margin = offset
                + normal
                    .iter()
                    .zip(data.row(i as usize))
                    .map(|(w, x)| w * x)
                    .sum::<f32>();
            sides.push(if margin == 0.0 {
                rng.random::<bool>()
            } else {
                margin > 0.0
            });
        }
        let left = sides.iter().filter(|&&s| s).count();
        if left == 0 || left == node.len() {
            // Every point on one side: duplicates, or a hyperplane through all of them. Halve
            // the node at random instead, so the recursion always ends.
            for s in sides.iter_mut() {
                *s = rng.random::<bool>();
            }
        }
        let mut ordered: Vec<u32> = node
            .iter()
            .zip(&sides)
            .filter(|(_, s)| **s)
            .map(|(&i, _)| i)
            .collect();
        let split = ordered.len();
        ordered.extend(
            node.iter()
                .zip(&sides)
                .filter(|(_, s)| !**s)
                .map(|(&i, _)| i),
        );
        let split = if split == 0 || split == node.len() {
            node.len() / 2
        } else {
            split
        };
        node.copy_from_slice(&ordered);
        stack.push((start + split, end));
        stack.push((start, start + split));
    }
    let mut leaf_of = vec![0u32; n];
    for (leaf, &(start, end)) in leaves.iter().enumerate() {
        for &i in &order[start as usize..end as usize] {
            leaf_of[i as usize] = leaf as u32;
        }
    }
    Tree {
        order,
        leaves,
        leaf_of,
    }
}

/// A random-projection forest for the first lists, then rounds of neighbour-of-neighbour joins
/// until almost nothing changes.
pub fn approximate(data: Matrix<'_>, k: usize, seed: u64) -> KnnGraph {
    let n = data.rows();
    assert!(k < n, "k = {k} needs more than {n} points");
    let n_trees = (5 + ((n as f64).sqrt() / 20.0).round() as usize).min(24);
    let leaf_size = (k + 1).max(32);
    let trees: Vec<Tree> = (0..n_trees)
        .into_par_iter()
        .map(|t| {
            build_tree(
                data,
                leaf_size,
                seed ^ (0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(t as u64 + 1)),
            )
        })
        .collect();

    let distances_to = |i: usize, candidates: &[u32]| -> Vec<(f32, u32)> {
        let xi = data.row(i);
        candidates
            .iter()
            .map(|&j| (squared_distance(xi, data.row(j as usize)), j))
            .collect()
    };

    let mut lists: Vec<Vec<(f32, u32)>> = (0..n)
        .into_par_iter()
        .map(|i| {
            let mut candidates = Vec::with_capacity(n_trees * leaf_size);
            for tree in &trees {
                let (start, end) = tree.leaves[tree.leaf_of[i] as usize];
                candidates.extend_from_slice(&tree.order[start as usize..end as usize]);
            }
            candidates.sort_unstable();
            candidates.dedup();
            candidates.retain(|&j| j as usize != i);
            // The leaves hold at least `k` others in practice; for a degenerate forest, fill up
            // with the following rows so every list has `k` entries for the joins to improve.
            let mut next = i;
            while candidates.len() < k {
                next = (next + 1) % n;
                let j = next as u32;
                if next != i && !candidates.contains(&j) {
                    candidates.push(j);
                }
            }
            keep_nearest(distances_to(i, &candidates), k)
        })
        .collect();
    drop(trees);

    // The joins look at the nearest `m` of each list only: the nearest neighbours of near
    // neighbours are where the missing ones are, and m² candidates per point keeps a round cheap.
    let m = k.min(12);
    for _round in 0..6 {
        let mut reverse_count = vec![0u32; n + 1];
        for list in &lists {
            for &(_, j) in &list[..m] {
                reverse_count[j as usize + 1] += 1;
            }
        }
        for i in 0..n {
            reverse_count[i + 1] += reverse_count[i];
        }
        let mut fill = reverse_count.clone();
        let mut reverse = vec![0u32; reverse_count[n] as usize];
        for (i, list) in lists.iter().enumerate() {
            for &(_, j) in &list[..m] {
                reverse[fill[j as usize] as usize] = i as u32;
                fill[j as usize] += 1;
            }
        }
        let updated: Vec<(Vec<(f32, u32)>, usize)> = (0..n)
            .into_par_iter()
            .map(|i| {
                let list = &lists[i];
                let reverse_i = &reverse[reverse_count[i] as usize..reverse_count[i + 1] as usize];
                let mut known: Vec<u32> = list.iter().map(|&(_, j)| j).collect();
                known.sort_unstable();
                let mut candidates = Vec::with_capacity(4 * m * m);
                for &j in list[..m]
                    .iter()
                    .map(|(_, j)| j)
                    .chain(reverse_i.iter().take(2 * m))
                {
                    for &(_, l) in &lists[j as usize][..m] {
                        if l as usize != i && known.binary_search(&l).is_err() {
                            candidates.push(l);
                        }
                    }
                    if reverse_i.binary_search(&j).is_ok() && known.binary_search(&j).is_err() {
                        candidates.push(j);
                    }
                }
                candidates.sort_unstable();
                candidates.dedup();
                if candidates.is_empty() {
                    return (list.clone(), 0);
                }
                let worst = list[k - 1];
                let mut merged = list.clone();
                let mut changed = 0;
                for c in distances_to(i, &candidates) {
                    if by_distance(&c, &worst).is_lt() {
                        merged.push(c);
                        changed += 1;
                    }
                }
                (keep_nearest(merged, k), changed)
            })
            .collect();
        let changes: usize = updated.iter().map(|(_, c)| c).sum();
        lists = updated.into_iter().map(|(list, _)| list).collect();
        if (changes as f64) < 0.001 * (n * k) as f64 {
            break;
        }
    }
    KnnGraph::from_lists(k, lists)
}

/// Exact neighbours of 2-D points (a layout) through a uniform grid: the same lists as
/// [`exact`], in O(N·k) instead of O(N²), so scoring a 100,000-point layout takes a moment.
pub fn planar(layout: &[f32], k: usize) -> KnnGraph {
    let n = layout.len() / 2;
    assert!(k < n, "k = {k} needs more than {n} points");
    let point = |i: usize| (layout[2 * i], layout[2 * i + 1]);
    let (mut lo, mut hi) = ([f32::INFINITY; 2], [f32::NEG_INFINITY; 2]);
    for i in 0..n {
        let (x, y) = point(i);
        lo = [lo[0].min(x), lo[1].min(y)];
        hi = [hi[0].max(x), hi[1].max(y)];
    }
    // About four points per cell.
    let side = ((n as f64 / 4.0).sqrt().ceil() as usize).max(1);
    let extent = (hi[0] - lo[0]).max(hi[1] - lo[1]).max(f32::MIN_POSITIVE);
    let width = extent / side as f32;
    let cell_of = |v: f32, axis: usize| (((v - lo[axis]) / width) as usize).min(side - 1);
    let mut start = vec![0u32; side * side + 1];
    let cells: Vec<usize> = (0..n)
        .map(|i| {
            let (x, y) = point(i);
            cell_of(y, 1) * side + cell_of(x, 0)
        })
        .collect();
    for &c in &cells {
        start[c + 1] += 1;
    }
    for c in 0..side * side {
        start[c + 1] += start[c];
    }
    let mut fill = start.clone();
    let mut members = vec![0u32; n];
    for (i, &c) in cells.iter().enumerate() {
        members[fill[c] as usize] = i as u32;
        fill[c] += 1;
    }
    let lists: Vec<Vec<(f32, u32)>> = (0..n)
        .into_par_iter()
        .map(|i| {
            let (x, y) = point(i);
            let (cx, cy) = (cells[i] % side, cells[i] / side);
            let mut found: Vec<(f32, u32)> = Vec::with_capacity(4 * k);
            let mut ring = 0usize;
            loop {
                let (x0, x1) = (cx.saturating_sub(ring), (cx + ring).min(side - 1));
                let (y0, y1) = (cy.saturating_sub(ring), (cy + ring).min(side - 1));
                for gy in y0..=y1 {
                    for gx in x0..=x1 {
                        let on_ring = gx + ring == cx
                            || gx == cx + ring
                            || gy + ring == cy
                            || gy == cy + ring;
                        if !on_ring {
                            continue;
                        }
                        let c = gy * side + gx;
                        for &j in &members[start[c] as usize..start[c + 1] as usize] {
                            if j as usize != i {
                                let (px, py) = point(j as usize);
                                let d = (px - x) * (px - x) + (py - y) * (py - y);
                                found.push((d, j));
                            }
                        }
                    }
                }
                let covered = ring >= side;
                if found.len() >= k {
                    // Only the k nearest so far can still be in the answer.
                    found = keep_nearest(found, k);
                    // Unsearched cells lie at least `reach` away; strictly nearer means no
                    // unsearched point can tie with a smaller index either.
                    let reach = ring as f32 * width;
                    if found[k - 1].0 < reach * reach || covered {
                        return found;
                    }
                }
                ring += 1;
            }
        })
        .collect();
    KnnGraph::from_lists(k, lists)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_distr::{Distribution, Normal};

    fn clustered(n: usize, dims: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let normal = Normal::new(0f32, 1.0).unwrap();
        let centres: Vec<f32> = (0..10 * dims)
            .map(|_| normal.sample(&mut rng) * 4.0)
            .collect();
        (0..n)
            .flat_map(|i| {
                let c = (i % 10) * dims;
                (0..dims)
                    .map(|d| centres[c + d] + normal.sample(&mut rng))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn exact_lists_are_the_nearest_others_in_order() {
        let values = [0., 0., 1., 0., 3., 0., 6., 0.];
        let graph = exact(Matrix::new(&values, 4, 2).unwrap(), 2);
        assert_eq!(graph.neighbours(0), [1, 2]);
        assert_eq!(graph.neighbours(2), [1, 0]);
        assert_eq!(graph.neighbours(3), [2, 1]);
        assert_eq!(graph.sq_distances(3), [9., 25.]);
    }

    #[test]
    fn the_planar_search_gives_the_exact_lists() {
        let values = clustered(2000, 2, 9);
        let data = Matrix::new(&values, 2000, 2).unwrap();
        assert_eq!(planar(&values, 10), exact(data, 10));
    }

    #[test]
    fn duplicates_are_ordered_by_index() {
        let values = [1f32, 1., 1., 1., 1.];
        let graph = exact(Matrix::new(&values, 5, 1).unwrap(), 3);
        assert_eq!(graph.neighbours(2), [0, 1, 3]);
    }

    #[test]
    fn the_approximate_search_finds_nearly_all_exact_neighbours() {
        let (n, dims, k) = (3000, 16, 30);
        let values = clustered(n, dims, 3);
        let data = Matrix::new(&values, n, dims).unwrap();
        let truth = exact(data, k);
        let found = approximate(data, k, 11);
        let hits: usize = (0..n)
            .map(|i| {
                let t = truth.neighbours(i);
                found.neighbours(i).iter().filter(|j| t.contains(j)).count()
            })
            .sum();
        let recall = hits as f64 / (n * k) as f64;
        assert!(recall > 0.95, "recall {recall}");
    }

    #[test]
    fn the_approximate_search_is_the_same_for_the_same_seed() {
        let (n, dims) = (1500, 8);
        let values = clustered(n, dims, 5);
        let data = Matrix::new(&values, n, dims).unwrap();
        assert_eq!(approximate(data, 10, 1), approximate(data, 10, 1));
    }
}
