//! One CrossCLR forward+backward (paper mode, no queue) on B=256, d=256, Dv=512, Dt=384, f32, CPU,
//! timed beside the same math in PyTorch (benches/crossclr_torch.py) when torch is installed.
//! Prints a table and writes target/bench/loss_step.json.
//!
//!   cargo bench --bench loss_step

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

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
const ITERATIONS: usize = 50;

fn gaussian(rng: &mut ChaCha8Rng, rows: usize, cols: usize, absolute: bool) -> Vec<f32> {
    (0..rows * cols)
        .map(|_| {
            let x: f32 = StandardNormal.sample(rng);
            if absolute { x.abs() } else { x }
        })
        .collect()
}

fn write_raw(dir: &Path, name: &str, data: &[f32]) {
    let bytes: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(dir.join(format!("{name}.f32")), bytes).expect("write bench input");
}

fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    let n = times.len();
    if n % 2 == 1 {
        times[n / 2]
    } else {
        (times[n / 2 - 1] + times[n / 2]) / 2.0
    }
}

fn torch_available() -> bool {
    Command::new("python3")
        .args(["-c", "import torch, numpy"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn main() -> anyhow::Result<()> {
    let out_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    let input_dir = out_dir.join("loss_step_inputs");
    std::fs::create_dir_all(&input_dir)?;

    // Paired embeddings (text = video + noise, so the loss is not degenerate) and non-negative
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
        write_raw(&input_dir, name, data);
    }

    let cpu = Device::Cpu;
    let video_in_t = Tensor::from_slice(&video_in, (BATCH, VIDEO_DIM), &cpu)?;
    let text_in_t = Tensor::from_slice(&text_in, (BATCH, TEXT_DIM), &cpu)?;
    let mut loss = CrossClr::new(CrossClrConfig::default())?;
    let mut times = Vec::with_capacity(ITERATIONS);
    let mut value = 0.0;
    for i in 0..WARMUP + ITERATIONS {
        let v = Var::from_slice(&video, (BATCH, DIM), &cpu)?;
        let t = Var::from_slice(&text, (BATCH, DIM), &cpu)?;
        let start = Instant::now();
        let batch = PairBatch::new(
            v.as_tensor().clone(),
            t.as_tensor().clone(),
            video_in_t.clone(),
            text_in_t.clone(),
        )?;
        let report = loss.forward(&batch)?;
        let grads = report.loss.backward()?;
        let _ = (grads.get(v.as_tensor()), grads.get(t.as_tensor()));
        let elapsed = start.elapsed().as_secs_f64();
        if i >= WARMUP {
            times.push(elapsed);
        }
        value = report.value()?;
    }
    let candle_ms = median(times) * 1e3;
    let threads = candle_core::utils::get_num_threads();

    let torch: Option<Value> = if torch_available() {
        let output = Command::new("python3")
            .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/crossclr_torch.py"))
            .args(["--dir", input_dir.to_str().unwrap_or(".")])
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
        Some(serde_json::from_slice(&output.stdout)?)
    } else {
        println!(
            "PyTorch is not installed (python3 -c 'import torch, numpy' failed): timing candle only."
        );
        None
    };

    println!(
        "CrossCLR forward+backward, paper mode, B={BATCH} d={DIM} Dv={VIDEO_DIM} Dt={TEXT_DIM}, f32, CPU"
    );
    println!(
        "{:<10} {:>10} {:>14} {:>8} {:>12}",
        "engine", "ms/step", "samples/s", "threads", "loss"
    );
    println!(
        "{:<10} {:>10.3} {:>14.0} {:>8} {:>12.6}",
        "candle",
        candle_ms,
        BATCH as f64 / (candle_ms / 1e3),
        threads,
        value
    );
    let mut report = json!({
        "bench": "crossclr_loss_step",
        "shape": {"batch": BATCH, "dim": DIM, "video_dim": VIDEO_DIM, "text_dim": TEXT_DIM},
        "iterations": ITERATIONS,
        "candle": {"median_ms": candle_ms, "samples_per_s": BATCH as f64 / (candle_ms / 1e3),
                   "threads": threads, "loss": value},
    });
    if let Some(torch) = torch {
        let torch_ms = torch["median_ms"].as_f64().unwrap_or(f64::NAN);
        let torch_loss = torch["loss"].as_f64().unwrap_or(f64::NAN);
        println!(
            "{:<10} {:>10.3} {:>14.0} {:>8} {:>12.6}",
            "pytorch",
            torch_ms,
            BATCH as f64 / (torch_ms / 1e3),
            torch["threads"],
            torch_loss
        );
        let ratio = candle_ms / torch_ms;
        println!(
            "candle / pytorch time: {ratio:.2}× (goal ≤ 1.0×); loss difference {:.2e} relative",
            ((value - torch_loss) / torch_loss).abs()
        );
        report["pytorch"] = torch;
        report["ratio"] = json!(ratio);
    }
    let path = out_dir.join("loss_step.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
    println!("wrote {}", path.display());
    Ok(())
}
