//! Exact top-10 search over an in-memory matrix of unit rows: `analysis::rank::UnitRows::top_k`
//! (one threaded pass over the matrix) beside NumPy's `E @ q` + `argpartition` on the same matrix
//! in the same run, at 100,000 × 384 and 1,000,000 × 256; then the time from typed text to a
//! ranked list with MiniLM (encode the query, the head's text side, rank 100,000 clips). Prints a
//! table and writes target/bench/search.json.
//!
//!   cargo bench --bench search
//!
//! NumPy comes from $CROSSCLR_BENCH_PYTHON (default python3); without numpy that column is
//! skipped with a message. `CROSSCLR_BENCH_SEARCH_SIZES=100000x384,1000000x256` chooses the sizes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{Context, bail};
use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use crossclr::analysis::SearchIndex;
use crossclr::analysis::rank::UnitRows;
use crossclr::model::{EmbeddingHead, HeadConfig, HeadKind, initialise};
use crossclr::project::EmbeddingMatrix;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde_json::{Value, json};

const TOP: usize = 10;
const QUERIES: usize = 30;
const WARM_UP: usize = 3;

const NUMPY_SCRIPT: &str = r#"
import json, sys, time
try:
    import numpy as np
except ImportError:
    print(json.dumps({"skipped": "numpy is not importable"}))
    sys.exit(0)
matrix, queries, n, d, top, warm = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
E = np.fromfile(matrix, dtype=np.float32).reshape(n, d)
Q = np.fromfile(queries, dtype=np.float32).reshape(-1, d)
def rank(q):
    s = E @ q
    idx = np.argpartition(-s, top)[:top]
    return idx[np.lexsort((idx, -s[idx]))]
for q in Q[:warm]:
    rank(q)
times, results = [], []
for q in Q:
    t = time.perf_counter()
    idx = rank(q)
    times.append(time.perf_counter() - t)
    results.append([int(i) for i in idx])
print(json.dumps({"numpy": np.__version__, "seconds": times, "top": results}))
"#;

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

fn gaussian(rng: &mut ChaCha8Rng, count: usize) -> Vec<f32> {
    (0..count)
        .map(|_| StandardNormal.sample(&mut *rng))
        .collect()
}

fn write_f32(path: &Path, values: &[f32]) -> anyhow::Result<()> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn sizes() -> anyhow::Result<Vec<(usize, usize)>> {
    let text = std::env::var("CROSSCLR_BENCH_SEARCH_SIZES")
        .unwrap_or_else(|_| "100000x384,1000000x256".into());
    text.split(',')
        .map(|size| {
            let (n, d) = size
                .split_once('x')
                .with_context(|| format!("size `{size}`: expected NxD"))?;
            Ok((n.trim().parse()?, d.trim().parse()?))
        })
        .collect()
}

/// Ranks `QUERIES` queries over an `n × d` matrix with both engines.
fn scan(n: usize, d: usize, out_dir: &Path, python: &str) -> anyhow::Result<Value> {
    let mut rng = ChaCha8Rng::seed_from_u64((n * 1000 + d) as u64);
    let rows = UnitRows::new(n, d, gaussian(&mut rng, n * d));
    let queries = UnitRows::new(QUERIES, d, gaussian(&mut rng, QUERIES * d));
    for q in 0..WARM_UP {
        rows.top_k(queries.row(q), TOP, |_| false);
    }
    let mut seconds = Vec::new();
    let mut ours = Vec::new();
    for q in 0..QUERIES {
        let started = Instant::now();
        let hits = rows.top_k(queries.row(q), TOP, |_| false);
        seconds.push(started.elapsed().as_secs_f64());
        ours.push(hits.into_iter().map(|h| h.0).collect::<Vec<_>>());
    }
    let bytes = (n * d * 4) as f64;
    let ours_median = median(&seconds);
    println!(
        "{n:>9} × {d:<4} crossclr  {:>9.2} ms  {:>6.1} GB/s",
        ours_median * 1e3,
        bytes / ours_median / 1e9
    );
    let matrix = out_dir.join(format!("search_{n}x{d}.f32"));
    let query_file = out_dir.join(format!("search_{n}x{d}_queries.f32"));
    write_f32(&matrix, rows.as_slice())?;
    write_f32(&query_file, queries.as_slice())?;
    let output = Command::new(python)
        .args(["-c", NUMPY_SCRIPT])
        .arg(&matrix)
        .arg(&query_file)
        .args([n, d, TOP, WARM_UP].map(|v| v.to_string()))
        .output();
    let _ = std::fs::remove_file(&matrix);
    let _ = std::fs::remove_file(&query_file);
    let numpy = match output {
        Ok(output) if output.status.success() => {
            let value: Value = serde_json::from_slice(&output.stdout).with_context(|| {
                format!(
                    "numpy's output: {}",
                    String::from_utf8_lossy(&output.stdout)
                )
            })?;
            if let Some(reason) = value.get("skipped") {
                println!("{:>16} numpy     skipped: {reason}", "");
                json!({"skipped": reason})
            } else {
                let times: Vec<f64> = serde_json::from_value(value["seconds"].clone())?;
                let theirs: Vec<Vec<usize>> = serde_json::from_value(value["top"].clone())?;
                let agree = ours.iter().zip(&theirs).filter(|(a, b)| a == b).count();
                let m = median(&times);
                println!(
                    "{:>16} numpy     {:>9.2} ms  {:>6.1} GB/s   ratio {:.2}×   same top-10 for {agree}/{QUERIES} queries",
                    "",
                    m * 1e3,
                    bytes / m / 1e9,
                    ours_median / m
                );
                json!({"version": value["numpy"], "median_seconds": m, "seconds": times,
                       "gb_per_s": bytes / m / 1e9, "same_top10": agree, "ratio": ours_median / m})
            }
        }
        Ok(output) => {
            let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
            println!("{:>16} numpy     skipped: {python} failed: {stderr}", "");
            json!({"skipped": stderr})
        }
        Err(e) => {
            println!("{:>16} numpy     skipped: cannot run {python}: {e}", "");
            json!({"skipped": e.to_string()})
        }
    };
    Ok(json!({
        "rows": n, "dim": d, "top": TOP, "queries": QUERIES,
        "crossclr": {"median_seconds": ours_median, "seconds": seconds, "gb_per_s": bytes / ours_median / 1e9,
                     "threads": num_cpus::get()},
        "numpy": numpy,
    }))
}

/// Typed text → ranked list with MiniLM: the query through MiniLM and an mlp head's text side,
/// then ranked over 100,000 clip embeddings. The head is untrained: this times the path, not
/// the ranking's quality.
fn minilm_query() -> anyhow::Result<Value> {
    let device = Device::Cpu;
    let text = match crossclr::encode::text_encoder("minilm", &device) {
        Ok(text) => text,
        Err(e) => {
            println!("MiniLM: skipped ({e})");
            return Ok(json!({"skipped": e.to_string()}));
        }
    };
    let config = HeadConfig {
        kind: HeadKind::Mlp,
        video_dim: 384,
        text_dim: 384,
        joint_dim: 256,
        ..HeadConfig::default()
    };
    let varmap = VarMap::new();
    let trainable = EmbeddingHead::new(
        VarBuilder::from_varmap(&varmap, DType::F32, &device),
        &config,
    )?;
    drop(trainable);
    initialise(&varmap, 0)?;
    let head = EmbeddingHead::frozen(&varmap, &config, &device)?;
    let n = 100_000;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let clips = EmbeddingMatrix {
        rows: n,
        cols: 256,
        data: gaussian(&mut rng, n * 256),
    };
    let keys = (0..n)
        .map(|i| {
            (
                format!("clip-{i}"),
                "train".to_string(),
                format!("video-{}", i / 5),
            )
        })
        .collect();
    let index = SearchIndex::new(head, text, clips, keys, Vec::new());
    let query = "a person slices tomatoes on a wooden board";
    for _ in 0..WARM_UP {
        index.search(query, TOP)?;
    }
    let mut total = Vec::new();
    let mut encode = Vec::new();
    for _ in 0..QUERIES {
        let started = Instant::now();
        index.encode_query(query)?;
        encode.push(started.elapsed().as_secs_f64());
        let started = Instant::now();
        let hits = index.search(query, TOP)?;
        total.push(started.elapsed().as_secs_f64());
        if hits.len() != TOP {
            bail!("{} hits for top {TOP}", hits.len());
        }
    }
    let (t, e) = (median(&total), median(&encode));
    println!(
        "MiniLM typed text → top-{TOP} of {n}: {:.1} ms (of which encoding the query {:.1} ms)",
        t * 1e3,
        e * 1e3
    );
    Ok(json!({"clips": n, "median_seconds": t, "encode_median_seconds": e, "query": query}))
}

fn main() -> anyhow::Result<()> {
    let out_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&out_dir)?;
    let python = std::env::var("CROSSCLR_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let load = load_average();
    println!(
        "exact top-{TOP}, median of {QUERIES} queries · {} threads · load average {load}",
        num_cpus::get()
    );
    let mut results = Vec::new();
    for (n, d) in sizes()? {
        results.push(scan(n, d, &out_dir, &python)?);
    }
    let minilm = minilm_query()?;
    let report =
        json!({"load_average": load, "python": python, "scans": results, "minilm": minilm});
    let path = out_dir.join("search.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
    println!("wrote {}", path.display());
    Ok(())
}
