//! Barnes–Hut repulsion (van der Maaten 2014): a quadtree over the layout, and far cells seen as
//! one point at their centre of mass when cell width / distance < θ. For small N and as a second
//! approximation to check the interpolation against.

use rayon::prelude::*;

/// Deeper than this, points are so close that a cell holds them all as a leaf: duplicates would
/// otherwise split forever.
const MAX_DEPTH: usize = 40;

#[derive(Debug, Clone, Copy)]
struct Node {
    /// Side length of the cell.
    width: f64,
    com: [f64; 2],
    count: u32,
    /// Index of the first of four children, or 0 for a leaf (the root is never a child).
    children: u32,
    /// A leaf's points: `order[start..end]`.
    start: u32,
    end: u32,
}

struct QuadTree {
    nodes: Vec<Node>,
    order: Vec<u32>,
}

impl QuadTree {
    fn build(y: &[f64]) -> Self {
        let n = y.len() / 2;
        let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
        for i in 0..n {
            for d in 0..2 {
                lo[d] = lo[d].min(y[2 * i + d]);
                hi[d] = hi[d].max(y[2 * i + d]);
            }
        }
        let width = (hi[0] - lo[0]).max(hi[1] - lo[1]).max(1e-12) * (1.0 + 1e-9);
        let mut tree = Self {
            nodes: Vec::with_capacity(2 * n),
            order: (0..n as u32).collect(),
        };
        tree.nodes.push(Node {
            width,
            com: [0.0; 2],
            count: 0,
            children: 0,
            start: 0,
            end: n as u32,
        });
        // (node, lower corner, depth), split breadth-first into contiguous child blocks.
        let mut pending = vec![(0usize, lo, 0usize)];
        while let Some((at, corner, depth)) = pending.pop() {
            let node = tree.nodes[at];
            let points = &mut tree.order[node.start as usize..node.end as usize];
            let mut com = [0.0; 2];
            for &i in points.iter() {
                com[0] += y[2 * i as usize];
                com[1] += y[2 * i as usize + 1];
            }
            let count = points.len();
            let com = [com[0] / count as f64, com[1] / count as f64];
            tree.nodes[at].com = com;
            tree.nodes[at].count = count as u32;
            if count <= 1 || depth >= MAX_DEPTH {
                continue;
            }
            let half = node.width / 2.0;
            let mid = [corner[0] + half, corner[1] + half];
            let quadrant = |i: u32| -> usize {
                let (x, z) = (y[2 * i as usize], y[2 * i as usize + 1]);
                usize::from(x >= mid[0]) + 2 * usize::from(z >= mid[1])
            };
            let mut counts = [0usize; 4];
            for &i in points.iter() {
                counts[quadrant(i)] += 1;
            }
            let mut starts = [0usize; 4];
            for q in 1..4 {
                starts[q] = starts[q - 1] + counts[q - 1];
            }
            let mut sorted = vec![0u32; count];
            let mut fill = starts;
            for &i in points.iter() {
                let q = quadrant(i);
                sorted[fill[q]] = i;
                fill[q] += 1;
            }
            points.copy_from_slice(&sorted);
            let first = tree.nodes.len();
            tree.nodes[at].children = first as u32;
            for q in 0..4 {
                let start = node.start as usize + starts[q];
                tree.nodes.push(Node {
                    width: half,
                    com: [0.0; 2],
                    count: 0,
                    children: 0,
                    start: start as u32,
                    end: (start + counts[q]) as u32,
                });
                let child_corner = [
                    corner[0] + if q & 1 == 1 { half } else { 0.0 },
                    corner[1] + if q & 2 == 2 { half } else { 0.0 },
                ];
                if counts[q] > 0 {
                    pending.push((first + q, child_corner, depth + 1));
                }
            }
        }
        tree
    }
}

/// Writes Σ_j q_ij² (y_i − y_j) into `rep` and returns Z, as the FFT method does.
pub(crate) fn repulsion(y: &[f64], rep: &mut [f64], theta: f64) -> f64 {
    let tree = QuadTree::build(y);
    let theta2 = theta * theta;
    let partial_z: Vec<f64> = rep
        .par_chunks_mut(2)
        .enumerate()
        .map_init(Vec::new, |stack, (i, out)| {
            let (x, z) = (y[2 * i], y[2 * i + 1]);
            let (mut fx, mut fz, mut sum_q) = (0.0, 0.0, 0.0);
            stack.clear();
            stack.push(0u32);
            while let Some(at) = stack.pop() {
                let node = &tree.nodes[at as usize];
                if node.count == 0 {
                    continue;
                }
                if node.children == 0 {
                    for &j in &tree.order[node.start as usize..node.end as usize] {
                        if j as usize == i {
                            continue;
                        }
                        let (dx, dz) = (x - y[2 * j as usize], z - y[2 * j as usize + 1]);
                        let q = 1.0 / (1.0 + dx * dx + dz * dz);
                        sum_q += q;
                        fx += q * q * dx;
                        fz += q * q * dz;
                    }
                    continue;
                }
                let (dx, dz) = (x - node.com[0], z - node.com[1]);
                let d2 = dx * dx + dz * dz;
                if node.width * node.width < theta2 * d2 {
                    let q = 1.0 / (1.0 + d2);
                    let m = node.count as f64;
                    sum_q += m * q;
                    fx += m * q * q * dx;
                    fz += m * q * q * dz;
                } else {
                    for c in (0..4).rev() {
                        stack.push(node.children + c);
                    }
                }
            }
            out[0] = fx;
            out[1] = fz;
            sum_q
        })
        .collect();
    partial_z.iter().sum()
}
