//! Barnes–Hut repulsion (van der Maaten 2014): a quadtree over the layout, and far cells seen as
//! one point at their centre of mass when cell width / distance < θ. For small N and as a second
//! approximation to check the interpolation against.

use rayon::prelude::*;

use crate::analysis::quadtree::QuadTree;

/// Writes Σ_j q_ij² (y_i − y_j) into `rep` and returns Z, as the FFT method does.
pub(crate) fn repulsion(y: &[f64], rep: &mut [f64], theta: f64) -> f64 {
    let tree = QuadTree::build(y, None);
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
