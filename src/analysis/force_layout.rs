//! The similarity graph's own layout: ForceAtlas2 (Jacomy, Venturini, Heymann & Bastian, PLoS
//! ONE 2014), as Gephi runs it. Where t-SNE places samples by their input distances, this places
//! them by the graph's edges alone, so a user sees the graph's communities, bridges and hubs
//! rather than the embedding's geometry.
//!
//! Nodes repel with `k_r (deg_i + 1)(deg_j + 1) / d` (Barnes–Hut over a quadtree weighted by
//! `deg + 1`), edges pull with `w d` (w: the edge's similarity, clamped at 0), and gravity
//! `k_g (deg + 1)` pulls every node towards the origin so that parts without edges between them
//! stay in view. Steps follow Gephi's adaptive speed: each node moves by
//! `speed / (1 + √(speed · swinging))` of its force, where swinging is how much its force turned
//! since the last step, and the global speed rises at most by half per step.
//!
//! Seeded (the random start), steppable like [`crate::analysis::Tsne`], and deterministic
//! whatever the number of threads: forces are computed per node, sums run in a fixed order.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::quadtree::QuadTree;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ForceConfig {
    pub iterations: usize,
    /// `k_r`, the repulsion's strength: larger spreads the layout.
    pub scaling: f64,
    /// `k_g`, the pull towards the centre.
    pub gravity: f64,
    /// Barnes–Hut's opening criterion (cell width / distance).
    pub theta: f64,
    /// How much swinging each step tolerates: higher is faster and less precise.
    pub tolerance: f64,
    /// The random start, when no start positions are given.
    pub seed: u64,
}

impl Default for ForceConfig {
    fn default() -> Self {
        // Gephi's defaults for graphs of more than 100 nodes.
        Self {
            iterations: 300,
            scaling: 2.0,
            gravity: 1.0,
            theta: 1.2,
            tolerance: 1.0,
            seed: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ForceLayoutError {
    #[error("edge {edge} joins node {node}, but the graph has {nodes} nodes")]
    EdgeOutOfRange {
        edge: usize,
        node: u32,
        nodes: usize,
    },
    #[error(
        "the graph's edge lists differ in length: {from} sources, {to} targets, {weights} weights"
    )]
    EdgeLengths {
        from: usize,
        to: usize,
        weights: usize,
    },
    #[error("{got} start coordinates for {nodes} nodes (expected {expected}, x and y of each)")]
    StartLength {
        got: usize,
        nodes: usize,
        expected: usize,
    },
    #[error("start coordinate {index} is {value}, not a finite number")]
    StartNotFinite { index: usize, value: f32 },
}

/// A force-directed layout under way: [`ForceLayout::step`] moves it on.
#[derive(Debug, Clone)]
pub struct ForceLayout {
    config: ForceConfig,
    /// x, y of each node.
    y: Vec<f64>,
    mass: Vec<f64>,
    edges: Vec<(u32, u32, f64)>,
    force: Vec<f64>,
    previous_force: Vec<f64>,
    speed: f64,
    speed_efficiency: f64,
    iteration: usize,
}

impl ForceLayout {
    /// The layout of `n` nodes joined by edges `from[e]`–`to[e]` of similarity `weight[e]`,
    /// started at `start` (x, y of each node: an earlier map, so the graph unfolds from it) or
    /// at seeded random positions. Edges are undirected; one listed both ways pulls twice.
    pub fn new(
        n: usize,
        from: &[u32],
        to: &[u32],
        weight: &[f32],
        start: Option<&[f32]>,
        config: ForceConfig,
    ) -> Result<Self, ForceLayoutError> {
        if from.len() != to.len() || from.len() != weight.len() {
            return Err(ForceLayoutError::EdgeLengths {
                from: from.len(),
                to: to.len(),
                weights: weight.len(),
            });
        }
        let mut degree = vec![0u32; n];
        let mut edges = Vec::with_capacity(from.len());
        for (e, ((&a, &b), &w)) in from.iter().zip(to).zip(weight).enumerate() {
            for node in [a, b] {
                if node as usize >= n {
                    return Err(ForceLayoutError::EdgeOutOfRange {
                        edge: e,
                        node,
                        nodes: n,
                    });
                }
            }
            if a == b {
                continue;
            }
            degree[a as usize] += 1;
            degree[b as usize] += 1;
            // A NaN similarity pulls like no edge rather than poisoning every position.
            let w = if w.is_finite() {
                f64::from(w.max(0.0))
            } else {
                0.0
            };
            edges.push((a, b, w));
        }
        let y = match start {
            Some(start) => {
                if start.len() != 2 * n {
                    return Err(ForceLayoutError::StartLength {
                        got: start.len(),
                        nodes: n,
                        expected: 2 * n,
                    });
                }
                if let Some((index, &value)) =
                    start.iter().enumerate().find(|(_, v)| !v.is_finite())
                {
                    return Err(ForceLayoutError::StartNotFinite { index, value });
                }
                start.iter().map(|&v| f64::from(v)).collect()
            }
            None => {
                let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
                let side = (n as f64).sqrt().max(1.0) * 10.0;
                (0..2 * n).map(|_| rng.random_range(-side..side)).collect()
            }
        };
        Ok(Self {
            config,
            y,
            mass: degree.iter().map(|&d| f64::from(d) + 1.0).collect(),
            edges,
            force: vec![0.0; 2 * n],
            previous_force: vec![0.0; 2 * n],
            speed: 1.0,
            speed_efficiency: 1.0,
            iteration: 0,
        })
    }

    pub fn len(&self) -> usize {
        self.mass.len()
    }

    pub fn is_empty(&self) -> bool {
        self.mass.is_empty()
    }

    pub fn iteration(&self) -> usize {
        self.iteration
    }

    pub fn is_done(&self) -> bool {
        self.iteration >= self.config.iterations
    }

    /// x, y of each node.
    pub fn positions(&self) -> Vec<f32> {
        self.y.iter().map(|&v| v as f32).collect()
    }

    /// Runs up to `iterations` more steps (never past the configured count) and returns the
    /// positions.
    pub fn step(&mut self, iterations: usize) -> Vec<f32> {
        let end = (self.iteration + iterations).min(self.config.iterations);
        while self.iteration < end {
            self.iterate();
            self.iteration += 1;
        }
        self.positions()
    }

    /// Runs every remaining step.
    pub fn run(mut self) -> Vec<f32> {
        self.step(usize::MAX)
    }

    fn iterate(&mut self) {
        let n = self.len();
        if n < 2 {
            return;
        }
        std::mem::swap(&mut self.force, &mut self.previous_force);
        self.repulsion_and_gravity();
        for &(a, b, w) in &self.edges {
            let (a, b) = (a as usize, b as usize);
            let dx = self.y[2 * b] - self.y[2 * a];
            let dz = self.y[2 * b + 1] - self.y[2 * a + 1];
            self.force[2 * a] += w * dx;
            self.force[2 * a + 1] += w * dz;
            self.force[2 * b] -= w * dx;
            self.force[2 * b + 1] -= w * dz;
        }
        self.adjust_speed_and_move();
    }

    fn repulsion_and_gravity(&mut self) {
        let tree = QuadTree::build(&self.y, Some(&self.mass));
        let (y, mass, config) = (&self.y, &self.mass, &self.config);
        let theta2 = config.theta * config.theta;
        self.force
            .par_chunks_mut(2)
            .enumerate()
            .for_each_init(Vec::new, |stack, (i, out)| {
                let (x, z, m) = (y[2 * i], y[2 * i + 1], mass[i]);
                let (mut fx, mut fz) = (0.0, 0.0);
                // F = k_r m_i m_j / d along the unit vector: k_r m_i m_j (dx, dz) / d².
                let mut push = |dx: f64, dz: f64, other: f64| {
                    let d2 = dx * dx + dz * dz;
                    if d2 > 0.0 {
                        let f = config.scaling * m * other / d2;
                        fx += f * dx;
                        fz += f * dz;
                    }
                };
                stack.clear();
                stack.push(0u32);
                while let Some(at) = stack.pop() {
                    let node = &tree.nodes[at as usize];
                    if node.count == 0 {
                        continue;
                    }
                    if node.children == 0 {
                        for &j in &tree.order[node.start as usize..node.end as usize] {
                            let j = j as usize;
                            if j != i {
                                push(x - y[2 * j], z - y[2 * j + 1], mass[j]);
                            }
                        }
                        continue;
                    }
                    let (dx, dz) = (x - node.com[0], z - node.com[1]);
                    if node.width * node.width < theta2 * (dx * dx + dz * dz) {
                        push(dx, dz, node.mass);
                    } else {
                        for c in (0..4).rev() {
                            stack.push(node.children + c);
                        }
                    }
                }
                let distance = (x * x + z * z).sqrt();
                if distance > 0.0 {
                    let f = config.gravity * m / distance;
                    fx -= f * x;
                    fz -= f * z;
                }
                out[0] = fx;
                out[1] = fz;
            });
    }

    /// Gephi's adaptive speed (ForceAtlas2.java): a global speed from the ratio of traction to
    /// swinging, a local one that slows nodes whose force keeps turning.
    fn adjust_speed_and_move(&mut self) {
        let n = self.len();
        let (mut swinging, mut traction) = (0.0, 0.0);
        for i in 0..n {
            let (fx, fz) = (self.force[2 * i], self.force[2 * i + 1]);
            let (px, pz) = (self.previous_force[2 * i], self.previous_force[2 * i + 1]);
            swinging += self.mass[i] * ((px - fx).powi(2) + (pz - fz).powi(2)).sqrt();
            traction += 0.5 * self.mass[i] * ((px + fx).powi(2) + (pz + fz).powi(2)).sqrt();
        }
        if swinging <= 0.0 || traction <= 0.0 || !swinging.is_finite() {
            return;
        }
        let nodes = n as f64;
        let optimal = 0.05 * nodes.sqrt();
        let mut jitter = self.config.tolerance
            * optimal
                .sqrt()
                .max(10f64.min(optimal * traction / (nodes * nodes)));
        const MIN_EFFICIENCY: f64 = 0.05;
        if swinging / traction > 2.0 {
            if self.speed_efficiency > MIN_EFFICIENCY {
                self.speed_efficiency *= 0.5;
            }
            jitter = jitter.max(self.config.tolerance);
        }
        let target = jitter * self.speed_efficiency * traction / swinging;
        if swinging > jitter * traction {
            if self.speed_efficiency > MIN_EFFICIENCY {
                self.speed_efficiency *= 0.7;
            }
        } else if self.speed < 1000.0 {
            self.speed_efficiency *= 1.3;
        }
        self.speed += (target - self.speed).min(0.5 * self.speed);
        let speed = self.speed;
        let (y, force, previous, mass) =
            (&mut self.y, &self.force, &self.previous_force, &self.mass);
        y.par_chunks_mut(2).enumerate().for_each(|(i, out)| {
            let (fx, fz) = (force[2 * i], force[2 * i + 1]);
            let (px, pz) = (previous[2 * i], previous[2 * i + 1]);
            let swing = mass[i] * ((px - fx).powi(2) + (pz - fz).powi(2)).sqrt();
            let factor = speed / (1.0 + (speed * swing).sqrt());
            out[0] += fx * factor;
            out[1] += fz * factor;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two rings of `size` nodes, each node joined to the next two of its ring, and one bridge.
    fn two_communities(size: u32) -> (Vec<u32>, Vec<u32>, Vec<f32>) {
        let (mut from, mut to, mut weight) = (Vec::new(), Vec::new(), Vec::new());
        for ring in 0..2 {
            for i in 0..size {
                for step in 1..=2 {
                    from.push(ring * size + i);
                    to.push(ring * size + (i + step) % size);
                    weight.push(0.9);
                }
            }
        }
        from.push(0);
        to.push(size);
        weight.push(0.5);
        (from, to, weight)
    }

    fn distance(p: &[f32], a: usize, b: usize) -> f32 {
        ((p[2 * a] - p[2 * b]).powi(2) + (p[2 * a + 1] - p[2 * b + 1]).powi(2)).sqrt()
    }

    #[test]
    fn the_layout_puts_a_graphs_two_communities_apart() {
        let size = 40;
        let (from, to, weight) = two_communities(size);
        let n = 2 * size as usize;
        let layout = ForceLayout::new(n, &from, &to, &weight, None, ForceConfig::default())
            .unwrap()
            .run();
        let (mut within, mut across, mut w_count, mut a_count) = (0.0, 0.0, 0, 0);
        for a in 0..n {
            for b in a + 1..n {
                if (a < size as usize) == (b < size as usize) {
                    within += distance(&layout, a, b);
                    w_count += 1;
                } else {
                    across += distance(&layout, a, b);
                    a_count += 1;
                }
            }
        }
        let (within, across) = (within / w_count as f32, across / a_count as f32);
        assert!(
            across > 2.0 * within,
            "mean distance within a community {within}, across {across}"
        );
    }

    #[test]
    fn the_knn_graph_of_clustered_samples_lays_out_by_cluster() {
        use rand_distr::{Distribution, Normal};
        // 600 samples in 6 directions of a 32-d space (the cosine kNN the explorer draws).
        let (n, dims, clusters) = (600, 32, 6);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let normal = Normal::new(0f32, 1.0).unwrap();
        let centres: Vec<f32> = (0..clusters * dims)
            .map(|_| normal.sample(&mut rng) * 3.0)
            .collect();
        let data: Vec<f32> = (0..n)
            .flat_map(|i| {
                let c = (i % clusters) * dims;
                (0..dims)
                    .map(|d| centres[c + d] + normal.sample(&mut rng))
                    .collect::<Vec<_>>()
            })
            .collect();
        let features = crate::project::EmbeddingMatrix {
            rows: n,
            cols: dims,
            data,
        };
        let graph = super::super::graph::knn_edges(&features, 10, &crate::jobs::CancelToken::new())
            .unwrap();
        let layout = ForceLayout::new(
            n,
            &graph.from,
            &graph.to,
            &graph.similarity,
            None,
            ForceConfig::default(),
        )
        .unwrap()
        .run();
        let labels: Vec<u32> = (0..n).map(|i| (i % clusters) as u32).collect();
        let accuracy = super::super::quality::knn_label_accuracy(&layout, &labels, 10);
        assert!(accuracy > 0.95, "10-NN label accuracy {accuracy}");
    }

    #[test]
    fn an_edge_pulls_its_nodes_closer_than_unjoined_ones() {
        // Nodes 0 and 1 joined, 2 and 3 alone, all started on one line at equal spacing.
        let start = [0.0, 0.0, 10.0, 0.0, 20.0, 0.0, 30.0, 0.0];
        let config = ForceConfig {
            iterations: 100,
            ..ForceConfig::default()
        };
        let layout = ForceLayout::new(4, &[0], &[1], &[1.0], Some(&start), config)
            .unwrap()
            .run();
        assert!(
            distance(&layout, 0, 1) < distance(&layout, 2, 3),
            "{layout:?}"
        );
        assert!(layout.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn the_same_seed_gives_the_same_bytes_whatever_the_threads() {
        let (from, to, weight) = two_communities(30);
        let lay_out = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| {
                    ForceLayout::new(60, &from, &to, &weight, None, ForceConfig::default())
                        .unwrap()
                        .run()
                })
        };
        let one = lay_out(1);
        let bits = |p: &[f32]| p.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&one), bits(&lay_out(3)));
        let other_seed = ForceLayout::new(
            60,
            &from,
            &to,
            &weight,
            None,
            ForceConfig {
                seed: 1,
                ..ForceConfig::default()
            },
        )
        .unwrap()
        .run();
        assert_ne!(bits(&one), bits(&other_seed));
    }

    #[test]
    fn stepping_gives_the_same_layout_as_one_run() {
        let (from, to, weight) = two_communities(20);
        let make = || ForceLayout::new(40, &from, &to, &weight, None, ForceConfig::default());
        let mut stepped = make().unwrap();
        let mut last = Vec::new();
        while !stepped.is_done() {
            last = stepped.step(25);
        }
        assert_eq!(stepped.iteration(), 300);
        assert_eq!(last, make().unwrap().run());
    }

    #[test]
    fn bad_graphs_and_starts_are_named() {
        let config = ForceConfig::default;
        assert_eq!(
            ForceLayout::new(2, &[0], &[5], &[1.0], None, config()).unwrap_err(),
            ForceLayoutError::EdgeOutOfRange {
                edge: 0,
                node: 5,
                nodes: 2
            }
        );
        assert!(matches!(
            ForceLayout::new(2, &[0], &[1], &[], None, config()),
            Err(ForceLayoutError::EdgeLengths { .. })
        ));
        assert!(matches!(
            ForceLayout::new(2, &[], &[], &[], Some(&[0.0; 3]), config()),
            Err(ForceLayoutError::StartLength { got: 3, .. })
        ));
        assert!(matches!(
            ForceLayout::new(2, &[], &[], &[], Some(&[0.0, f32::NAN, 1.0, 1.0]), config()),
            Err(ForceLayoutError::StartNotFinite { index: 1, .. })
        ));
    }
}
