//! One CrossCLR forward+backward (paper mode, no queue) on B=256, d=256, Dv=512, Dt=384, f32, CPU,
//! timed beside the same math in PyTorch (benches/crossclr_torch.py) when torch is installed.
//! The two engines alternate for several rounds so that a noisy machine affects both alike.
//! Prints a table and writes target/bench/loss_step.json.
//!
//!   cargo bench --bench loss_step

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use candle_core::{Device, Tensor, Var};
use crossclr::crossclr::{ContrastiveLoss, CrossClr, CrossClrConfig, PairBatch};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde_json::{Value, json};

const BATCH: usize = 256;
const DIM: usize = 256;
const VIDEO_DIM: usize = 512;
const TEXT_DIM: usize = 384;
const WARMUP: usize = 10;
const ITERATIONS: usize = 40;
const ROUNDS: usize = 5;

fn gaussian(rng: &mut ChaCha8Rng, rows: usize, cols: usize, absolute: bool) -> Vec<f32> {
    (0..rows * cols)
        .map(|_| {
            let x: f32 = StandardNormal.sample(rng);
            if absolute { x.abs() } else { x }
        })
        .collect()
}

fn write_raw(dir: &Path, name: &str, data: &[f32]) -> std::io::Result<()> {
    let bytes: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(dir.join(format!("{name}.f32")), bytes)
}

fn percentile(times: &[f64], q: f64) -> f64 {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn print_row(engine: &str, times: &[f64], threads: impl std::fmt::Display, loss: f64) {
    let median = percentile(times, 0.5);
    println!(
        "{:<9} {:>11.3} {:>11.3} {:>11.3} {:>12.0} {:>8} {:>12.6}",
        engine,
        median,
        percentile(times, 0.1),
        percentile(times, 0.9),
        BATCH as f64 / (median / 1e3),
        threads,
        loss
    );
}

fn torch_available() -> bool {
    Command::new("python3")
        .args(["-c", "import torch, numpy"])
        .output()
        .is_ok_and(|o| o.status.success())
}

struct Inputs {
    video: Vec<f32>,
    text: Vec<f32>,
    video_in: Tensor,
    text_in: Tensor,
}

/// Times `iterations` steps; returns milliseconds per step and the last loss.
fn candle_round(inputs: &Inputs, iterations: usize) -> anyhow::Result<(Vec<f64>, f64)> {
    let cpu = Device::Cpu;
    let mut loss = CrossClr::new(CrossClrConfig::default())?;
    let mut times = Vec::with_capacity(iterations);
    let mut value = 0.0;
    for _ in 0..iterations {
        let v = Var::from_slice(&inputs.video, (BATCH, DIM), &cpu)?;
        let t = Var::from_slice(&inputs.text, (BATCH, DIM), &cpu)?;
        let start = Instant::now();
        let batch = PairBatch::new(
            v.as_tensor().clone(),
            t.as_tensor().clone(),
            inputs.video_in.clone(),
            inputs.text_in.clone(),
        )?;
        let report = loss.forward(&batch)?;
        let grads = report.loss.backward()?;
        let _ = (grads.get(v.as_tensor()), grads.get(t.as_tensor()));
        times.push(start.elapsed().as_secs_f64() * 1e3);
        value = report.value()?;
    }
    Ok((times, value))
}

fn torch_round(input_dir: &Path) -> anyhow::Result<Value> {
    let output = Command::new("python3")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/crossclr_torch.py"))
        .args(["--dir", &input_dir.display().to_string()])
        .args(["--batch", &BATCH.to_string(), "--dim", &DIM.to_string()])
        .args([
            "--video-dim",
            &VIDEO_DIM.to_string(),
            "--text-dim",
            &TEXT_DIM.to_string(),
        ])
        .args([
            "--iterations",
            &ITERATIONS.to_string(),
            "--warmup",
            &WARMUP.to_string(),
        ])
        .output()?;
    if !output.status.success() {
        anyhow::bail!(
            "the PyTorch twin failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(serde_json::from_slice(&output.stdout)?)
}

#[allow(unsafe_code)]
fn main() -> anyhow::Result<()> {
    // SAFETY: first thing in main; no other thread exists yet.
    unsafe { crossclr::process::configure() };
    let out_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    let input_dir = out_dir.join("loss_step_inputs");
    std::fs::create_dir_all(&input_dir)?;

    // Weakly paired embeddings (text = 0.3·video + noise: a loss well above zero) and non-negative
    // input features, as post-ReLU encoder features are.
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let video = gaussian(&mut rng, BATCH, DIM, false);
    let noise = gaussian(&mut rng, BATCH, DIM, false);
    let text: Vec<f32> = video.iter().zip(&noise).map(|(v, n)| 0.3 * v + n).collect();
    let video_in = gaussian(&mut rng, BATCH, VIDEO_DIM, true);
    let text_in = gaussian(&mut rng, BATCH, TEXT_DIM, true);
    for (name, data) in [
        ("video_emb", &video),
        ("text_emb", &text),
        ("video_in", &video_in),
        ("text_in", &text_in),
    ] {
        write_raw(&input_dir, name, data)?;
    }
    let cpu = Device::Cpu;
    let inputs = Inputs {
        video_in: Tensor::from_slice(&video_in, (BATCH, VIDEO_DIM), &cpu)?,
        text_in: Tensor::from_slice(&text_in, (BATCH, TEXT_DIM), &cpu)?,
        video,
        text,
    };

    let with_torch = torch_available();
    if !with_torch {
        println!(
            "PyTorch is not installed (python3 -c 'import torch, numpy' failed): timing candle only."
        );
    }
    candle_round(&inputs, WARMUP)?;
    let (mut candle_times, mut torch_times) = (Vec::new(), Vec::new());
    let (mut candle_loss, mut torch_info) = (0.0, Value::Null);
    for _ in 0..ROUNDS {
        let (times, value) = candle_round(&inputs, ITERATIONS)?;
        candle_times.extend(times);
        candle_loss = value;
        if with_torch {
            let round = torch_round(&input_dir)?;
            if let Some(times) = round["times_ms"].as_array() {
                torch_times.extend(times.iter().filter_map(Value::as_f64));
            }
            torch_info = round;
        }
    }

    let threads = candle_core::utils::get_num_threads();
    let samples = |ms: f64| BATCH as f64 / (ms / 1e3);
    let candle_ms = percentile(&candle_times, 0.5);
    println!(
        "CrossCLR forward+backward, paper mode, B={BATCH} d={DIM} Dv={VIDEO_DIM} Dt={TEXT_DIM}, f32, CPU; \
         {ROUNDS} alternating rounds × {ITERATIONS} steps"
    );
    println!(
        "{:<9} {:>11} {:>11} {:>11} {:>12} {:>8} {:>12}",
        "engine", "median ms", "p10 ms", "p90 ms", "samples/s", "threads", "loss"
    );
    print_row("candle", &candle_times, threads, candle_loss);
    let mut report = json!({
        "bench": "crossclr_loss_step",
        "shape": {"batch": BATCH, "dim": DIM, "video_dim": VIDEO_DIM, "text_dim": TEXT_DIM},
        "rounds": ROUNDS,
        "iterations_per_round": ITERATIONS,
        "candle": {"median_ms": candle_ms, "p10_ms": percentile(&candle_times, 0.1),
                   "p90_ms": percentile(&candle_times, 0.9), "samples_per_s": samples(candle_ms),
                   "threads": threads, "loss": candle_loss},
    });
    if with_torch && !torch_times.is_empty() {
        let torch_ms = percentile(&torch_times, 0.5);
        let torch_loss = torch_info["loss"].as_f64().unwrap_or(f64::NAN);
        let torch_threads = torch_info["threads"].as_u64().unwrap_or(0);
        print_row("pytorch", &torch_times, torch_threads, torch_loss);
        let ratio = candle_ms / torch_ms;
        println!(
            "candle / pytorch median time: {ratio:.2}× (goal ≤ 1.0×); loss difference {:.1e} relative",
            ((candle_loss - torch_loss) / torch_loss).abs()
        );
        report["pytorch"] = json!({
            "median_ms": torch_ms, "p10_ms": percentile(&torch_times, 0.1),
            "p90_ms": percentile(&torch_times, 0.9), "samples_per_s": samples(torch_ms),
            "threads": torch_threads, "loss": torch_loss, "version": torch_info["torch"],
        });
        report["ratio"] = json!(ratio);
    }
    let path = out_dir.join("loss_step.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
    println!("wrote {}", path.display());
    Ok(())
}
