//! A quadtree over 2-D points with their centres of mass: the Barnes–Hut approximation of
//! t-SNE's repulsion and of the graph layout's.

/// Deeper than this, points are so close that a cell holds them all as a leaf: duplicates would
/// otherwise split forever.
const MAX_DEPTH: usize = 40;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Node {
    /// Side length of the cell.
    pub width: f64,
    /// Centre of mass of the cell's points.
    pub com: [f64; 2],
    pub count: u32,
    /// Total mass of the cell's points (their count when all weigh 1).
    pub mass: f64,
    /// Index of the first of four children, or 0 for a leaf (the root is never a child).
    pub children: u32,
    /// A leaf's points: `order[start..end]`.
    pub start: u32,
    pub end: u32,
}

pub(crate) struct QuadTree {
    pub nodes: Vec<Node>,
    /// Point indices, each leaf's contiguous.
    pub order: Vec<u32>,
}

impl QuadTree {
    /// The tree over the points `y` (x, y interleaved), each weighing `mass[i]` (else 1).
    pub fn build(y: &[f64], mass: Option<&[f64]>) -> Self {
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
            mass: 0.0,
            children: 0,
            start: 0,
            end: n as u32,
        });
        // (node, lower corner, depth), split breadth-first into contiguous child blocks.
        let mut pending = vec![(0usize, lo, 0usize)];
        while let Some((at, corner, depth)) = pending.pop() {
            let node = tree.nodes[at];
            let points = &mut tree.order[node.start as usize..node.end as usize];
            let (mut com, mut total) = ([0.0; 2], 0.0);
            for &i in points.iter() {
                // Unit masses multiply exactly, so an unweighted tree has the plain mean's bits.
                let m = mass.map_or(1.0, |m| m[i as usize]);
                com[0] += m * y[2 * i as usize];
                com[1] += m * y[2 * i as usize + 1];
                total += m;
            }
            let count = points.len();
            let com = [com[0] / total, com[1] / total];
            tree.nodes[at].com = com;
            tree.nodes[at].count = count as u32;
            tree.nodes[at].mass = total;
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
                    mass: 0.0,
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
