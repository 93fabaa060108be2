//! t-SNE layouts of 10,000 × 256 and 100,000 × 128 points in 20 Gaussian clusters, ours beside
//! openTSNE's (`n_jobs=2`, the same data and seed, in the same run): time, 10-NN preservation
//! (the fraction of each point's 10 nearest input neighbours among its 10 nearest in the layout)
//! and 10-NN label accuracy. Both layouts are scored by the same code here. At 100,000 points
//! the preservation is averaged over a fixed sample of 10,000 points (their exact input
//! neighbours among all 100,000); the accuracy always covers every point.
//!
//! Clusters: centres drawn from N(0, 1) per dimension, points at unit spread around them.
//!
//! openTSNE runs through `CROSSCLR_BENCH_PYTHON` (default `python3`) and is skipped, with a
//! message, when it cannot be imported. `CROSSCLR_BENCH_SIZES=10000` runs only the small set;
//! `CROSSCLR_BENCH_METHODS=fft,bh,fft-lr` chooses our variants (default: all three at 10k, fft at
//! 100k). Prints a table with the load average beside each time and writes
//! target/bench/tsne.json. Goal: ≤ 1.0× openTSNE's time with preservation and accuracy at least
//! openTSNE's.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crossclr::analysis::knn;
use crossclr::analysis::quality::{knn_label_accuracy, sampled_neighbour_preservation};
use crossclr::analysis::tsne::{LearningRate, Method, Tsne, TsneConfig};
use crossclr::analysis::{KnnGraph, Matrix};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde_json::{Value, json};

const SEED: u64 = 42;
const CLUSTERS: usize = 20;
const K: usize = 10;
const SAMPLE: usize = 10_000;

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn clusters(n: usize, dims: usize) -> (Vec<f32>, Vec<u32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let normal = Normal::new(0f32, 1.0).unwrap();
    let centres: Vec<f32> = (0..CLUSTERS * dims)
        .map(|_| normal.sample(&mut rng))
        .collect();
    let labels: Vec<u32> = (0..n)
        .map(|_| rng.random_range(0..CLUSTERS as u32))
        .collect();
    let mut values = Vec::with_capacity(n * dims);
    for &c in &labels {
        for d in 0..dims {
            values.push(centres[c as usize * dims + d] + normal.sample(&mut rng));
        }
    }
    (values, labels)
}

struct Scorer {
    queries: Vec<u32>,
    input: KnnGraph,
    labels: Vec<u32>,
}

impl Scorer {
    fn new(data: Matrix<'_>, labels: Vec<u32>) -> Self {
        let n = data.rows();
        let queries: Vec<u32> = if n <= SAMPLE {
            (0..n as u32).collect()
        } else {
            let mut rng = ChaCha8Rng::seed_from_u64(SEED + 1);
            let mut all: Vec<u32> = (0..n as u32).collect();
            for i in 0..SAMPLE {
                let j = rng.random_range(i..n);
                all.swap(i, j);
            }
            let mut sample = all[..SAMPLE].to_vec();
            sample.sort_unstable();
            sample
        };
        let input = knn::exact_for(data, &queries, K);
        Self {
            queries,
            input,
            labels,
        }
    }

    fn score(&self, layout: &[f32]) -> (f64, f64) {
        (
            sampled_neighbour_preservation(&self.queries, &self.input, layout, K),
            knn_label_accuracy(layout, &self.labels, K),
        )
    }
}

fn python() -> String {
    std::env::var("CROSSCLR_BENCH_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn opentsne_available() -> Result<(), String> {
    let output = Command::new(python())
        .args(["-c", "import openTSNE, numpy"])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_string())
    }
}

fn run_opentsne(
    dir: &Path,
    values: &[f32],
    n: usize,
    dims: usize,
) -> anyhow::Result<(f64, Vec<f32>, String)> {
    let data = dir.join(format!("tsne_{n}x{dims}.f32"));
    let out = dir.join(format!("tsne_{n}x{dims}_opentsne.f32"));
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&data, bytes)?;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/tsne_opentsne.py");
    let output = Command::new(python())
        .arg(&script)
        .arg(&data)
        .args([n.to_string(), dims.to_string(), SEED.to_string()])
        .arg(&out)
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "openTSNE failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line: Value = serde_json::from_slice(&output.stdout)?;
    let layout: Vec<f32> = std::fs::read(&out)?
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    anyhow::ensure!(
        layout.len() == 2 * n,
        "openTSNE wrote {} values",
        layout.len()
    );
    Ok((
        line["seconds"].as_f64().unwrap_or(f64::NAN),
        layout,
        line["version"].as_str().unwrap_or("?").to_string(),
    ))
}

fn variant(name: &str) -> Option<TsneConfig> {
    let base = TsneConfig {
        seed: SEED,
        ..TsneConfig::default()
    };
    match name {
        "fft" => Some(base),
        "bh" => Some(TsneConfig {
            method: Method::BarnesHut,
            ..base
        }),
        // openTSNE's learning rate (N/12 early, N after) and momentum (0.8 throughout).
        "fft-lr" => Some(TsneConfig {
            learning_rate: LearningRate::PerExaggeration,
            initial_momentum: 0.8,
            ..base
        }),
        _ => None,
    }
}

fn main() -> anyhow::Result<()> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir)?;
    let sizes: Vec<usize> = std::env::var("CROSSCLR_BENCH_SIZES")
        .unwrap_or_else(|_| "10000,100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let methods_env = std::env::var("CROSSCLR_BENCH_METHODS").ok();
    let opentsne = opentsne_available();
    if let Err(why) = &opentsne {
        println!("openTSNE skipped: not importable by {} ({why})", python());
    }
    let threads = rayon::current_num_threads();
    println!("{threads} threads; load average before: {}", load_average());
    println!(
        "{:>7} {:>4} {:<9} {:>9} {:>9} {:>8} {:>8} {:>8}  load (1/5/15 min)",
        "N", "D", "method", "seconds", "knn+P s", "ratio", "10-NN", "acc"
    );
    let mut records = Vec::new();
    for &n in &sizes {
        let dims = if n <= 10_000 { 256 } else { 128 };
        let (values, labels) = clusters(n, dims);
        let data = Matrix::new(&values, n, dims)?;
        let scorer = Scorer::new(data, labels);
        if n > knn::EXACT_MAX_POINTS {
            // How good the approximate search under our layouts is, on the scored sample.
            let started = Instant::now();
            let graph = knn::approximate(data, 90, SEED);
            let seconds = started.elapsed().as_secs_f64();
            let hits: usize = scorer
                .queries
                .iter()
                .enumerate()
                .map(|(r, &i)| {
                    let truth = scorer.input.neighbours(r);
                    graph.neighbours(i as usize)[..K]
                        .iter()
                        .filter(|j| truth.contains(j))
                        .count()
                })
                .sum();
            let recall = hits as f64 / (scorer.queries.len() * K) as f64;
            println!(
                "approximate 90-NN search: {seconds:.2} s, recall of the 10 nearest {recall:.4} (load {})",
                load_average()
            );
            records.push(json!({"n": n, "dims": dims, "method": "knn-approximate", "seconds": seconds, "recall_10nn": recall, "load_average": load_average()}));
        }
        let mut row = |name: &str,
                       seconds: f64,
                       setup: Option<f64>,
                       layout: &[f32],
                       reference: Option<f64>,
                       extra: Value| {
            let (kept, accuracy) = scorer.score(layout);
            let load = load_average();
            let ratio = reference.map(|r| seconds / r);
            println!(
                "{n:>7} {dims:>4} {name:<9} {seconds:>9.2} {:>9} {:>8} {kept:>8.4} {accuracy:>8.4}  {load}",
                setup.map(|s| format!("{s:.2}")).unwrap_or_default(),
                ratio.map(|r| format!("{r:.2}x")).unwrap_or_default(),
            );
            records.push(json!({
                "n": n, "dims": dims, "clusters": CLUSTERS, "method": name,
                "seconds": seconds, "setup_seconds": setup, "ratio_to_opentsne": ratio,
                "preservation_10nn": kept, "label_accuracy_10nn": accuracy,
                "preservation_sample": scorer.queries.len(),
                "load_average": load, "threads": threads, "extra": extra,
            }));
        };

        let mut reference = None;
        if opentsne.is_ok() {
            let (seconds, layout, version) = run_opentsne(&dir, &values, n, dims)?;
            reference = Some(seconds);
            row(
                "openTSNE",
                seconds,
                None,
                &layout,
                None,
                json!({"version": version}),
            );
        }
        let names: Vec<String> = match &methods_env {
            Some(list) => list.split(',').map(|s| s.trim().to_string()).collect(),
            None if n <= 10_000 => vec!["fft".into(), "fft-lr".into(), "bh".into()],
            None => vec!["fft".into()],
        };
        for name in names {
            let Some(config) = variant(&name) else {
                println!("unknown method {name:?} in CROSSCLR_BENCH_METHODS (fft, fft-lr, bh)");
                continue;
            };
            let started = Instant::now();
            let mut tsne = Tsne::new(data, config.clone())?;
            let setup = started.elapsed().as_secs_f64();
            let snapshot = tsne.step(config.iterations);
            let seconds = started.elapsed().as_secs_f64();
            row(
                &name,
                seconds,
                Some(setup),
                &snapshot.positions,
                reference,
                json!({"kl_divergence": snapshot.kl_divergence}),
            );
        }
    }
    let path = dir.join("tsne.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&json!({"results": records}))?,
    )?;
    println!("wrote {}", path.display());
    Ok(())
}
