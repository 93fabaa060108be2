//! One training epoch of the `coot` head on 10,000 clips, CPU, f32: seconds per epoch and peak
//! resident memory, beside the same model, loss and optimizer in PyTorch (benches/coot_torch.py)
//! when torch is installed.
//!
//! Data (synthetic, deterministic, built in memory): 1,429 videos, 1,428 of 7 clips and one of 4
//! (10,000 clips), every clip 16 frames of 512-d video features and a 16-token caption of 768-d text
//! features, `relu(A l + noise)` views of a shared 32-d latent (40 topics, per-video style), plus a
//! tiny validation split of 8 videos so that an epoch's time is its training steps.
//!
//! Training: the library's `train()` with an in-memory store, the coot head with its default
//! settings (attention dim 384, 8 local / 8 global heads, 2 pooling heads, dropout 5%), the
//! paper's objective `LossSettings::PAPER` (CrossCLR paper mode, queue 5000 at the clip level,
//! `L_local + 0.6·L_global`), RAdam
//! (lr 7e-4, betas 0.56/0.98, 4 warm-up epochs), 64 videos per batch (448 clips), at most 80 frames
//! per clip and 160 per video context (here: all of them).
//!
//! The figures: seconds per epoch = the epoch's training steps (batching, forward, loss, backward,
//! RAdam), `EpochRecord::seconds`, median over every epoch of every run; the validation, checkpoint
//! and state writing that follow an epoch are excluded (their wall time is reported beside).
//! Peak memory = VmHWM of a child process that does only this (the bench re-runs itself with
//! `COOT_EPOCH_ROLE=rust`), data included; the resident size after the data were built is reported
//! beside it. Rust and PyTorch runs alternate, `COOT_EPOCH_ROUNDS` rounds (default 2) of
//! `COOT_EPOCH_EPOCHS` epochs (default 1) each. The machine may be shared: every run also reports
//! its process CPU seconds and the load average at its start and end, so that a contended run shows.
//!
//! Before timing, the twin's faithfulness is checked: the bench writes a checkpoint of a coot head
//! (perturbed weights), two small padded batches, the Rust embeddings, objective values (queue
//! included) and gradients, and `coot_torch.py check` loads the checkpoint by parameter name and
//! asserts that it computes the same (embeddings to 1e-4).
//!
//! Prints a table and writes target/bench/coot_epoch.json.
//!
//!   cargo bench --bench coot_epoch

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{Context, bail};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use crossclr::crossclr::LossSettings;
use crossclr::jobs::{CancelToken, progress_channel};
use crossclr::model::{
    CheckpointMeta, EmbeddingHead, EncoderSpec, HeadConfig, HeadKind, Mode, checkpoint_bytes,
    initialise,
};
use crossclr::train::{
    BatchLimits, CorpusView, MemoryStore, Objective, PackedView, PlateauConfig, RAdamConfig,
    TrainConfig, TrainEvent, make_batch, train,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde_json::{Value, json};

const VIDEOS: usize = 1429;
const CLIPS_PER_VIDEO: usize = 7;
const CLIPS: usize = 10_000;
const FRAMES: usize = 16;
const TOKENS: usize = 16;
const VIDEO_DIM: usize = 512;
const TEXT_DIM: usize = 768;
const LATENT: usize = 32;
const TOPICS: usize = 40;
const VAL_VIDEOS: usize = 8;
const VIDEOS_PER_BATCH: usize = 64;
const MAX_STEPS: usize = 80;
const MAX_CONTEXT_STEPS: usize = 160;
const SEED: u64 = 0;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Packed sequences of one modality.
struct Packed {
    dim: usize,
    data: Vec<f32>,
    offsets: Vec<usize>,
}

impl Packed {
    fn view(&self) -> PackedView<'_> {
        PackedView {
            dim: self.dim,
            data: &self.data,
            offsets: &self.offsets,
        }
    }
}

struct Split {
    video: Packed,
    text: Packed,
    groups: Vec<std::ops::Range<usize>>,
}

impl Split {
    fn corpus(&self) -> CorpusView<'_> {
        CorpusView {
            video: self.video.view(),
            text: self.text.view(),
            groups: self.groups.clone(),
        }
    }
}

fn gaussian(rng: &mut ChaCha8Rng, n: usize, scale: f64) -> Vec<f64> {
    (0..n)
        .map(|_| {
            let x: f64 = StandardNormal.sample(rng);
            scale * x
        })
        .collect()
}

/// `count` rows of `relu(A l + 0.3 ε)` appended to `out`.
fn append_view(
    rng: &mut ChaCha8Rng,
    map: &[f64],
    latent: &[f64],
    count: usize,
    out: &mut Vec<f32>,
) {
    let mean: Vec<f64> = map
        .chunks_exact(LATENT)
        .map(|row| row.iter().zip(latent).map(|(a, l)| a * l).sum())
        .collect();
    for _ in 0..count {
        out.extend(mean.iter().map(|m| {
            let noise: f64 = StandardNormal.sample(rng);
            (m + 0.3 * noise).max(0.0) as f32
        }));
    }
}

/// Frames and tokens of the next clip.
type Lengths = dyn Fn(&mut ChaCha8Rng) -> (usize, usize);

/// Clips per video: `clips[v]`; every clip `FRAMES` frames and `TOKENS` tokens, or the lengths
/// `lengths(rng)` gives when set (the twin check's variable lengths).
fn make_split(seed: u64, clips: &[usize], lengths: Option<&Lengths>) -> Split {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let scale = 1.0 / (LATENT as f64).sqrt();
    let video_map = gaussian(&mut rng, VIDEO_DIM * LATENT, scale);
    let text_map = gaussian(&mut rng, TEXT_DIM * LATENT, scale);
    let topics: Vec<Vec<f64>> = (0..TOPICS)
        .map(|_| gaussian(&mut rng, LATENT, 1.0))
        .collect();
    let total: usize = clips.iter().sum();
    let mut video = Packed {
        dim: VIDEO_DIM,
        data: Vec::with_capacity(total * FRAMES * VIDEO_DIM),
        offsets: vec![0],
    };
    let mut text = Packed {
        dim: TEXT_DIM,
        data: Vec::with_capacity(total * TOKENS * TEXT_DIM),
        offsets: vec![0],
    };
    let mut groups = Vec::with_capacity(clips.len());
    for &count in clips {
        let topic = &topics[rng.random_range(0..TOPICS)];
        let style = gaussian(&mut rng, LATENT, 0.3);
        let start = video.offsets.len() - 1;
        for _ in 0..count {
            let detail = gaussian(&mut rng, LATENT, 0.5);
            let latent: Vec<f64> = (0..LATENT)
                .map(|k| topic[k] + detail[k] + style[k])
                .collect();
            let (frames, tokens) = match lengths {
                Some(lengths) => lengths(&mut rng),
                None => (FRAMES, TOKENS),
            };
            append_view(&mut rng, &video_map, &latent, frames, &mut video.data);
            append_view(&mut rng, &text_map, &latent, tokens, &mut text.data);
            video.offsets.push(video.offsets.last().unwrap() + frames);
            text.offsets.push(text.offsets.last().unwrap() + tokens);
        }
        groups.push(start..start + count);
    }
    Split {
        video,
        text,
        groups,
    }
}

/// 1,428 videos of 7 clips and one of 4: 10,000 clips.
fn bench_clips() -> Vec<usize> {
    let mut clips = vec![CLIPS_PER_VIDEO; VIDEOS - 1];
    clips.push(CLIPS - CLIPS_PER_VIDEO * (VIDEOS - 1));
    clips
}

/// The head this bench times: the coot head with its default settings (the crate's default
/// head is the MLP).
fn coot_head() -> HeadConfig {
    HeadConfig {
        kind: HeadKind::Coot,
        ..HeadConfig::default()
    }
}

fn config(epochs: usize) -> TrainConfig {
    let head = coot_head();
    TrainConfig {
        head,
        loss: LossSettings::PAPER,
        optimizer: RAdamConfig::default(),
        epochs,
        videos_per_batch: VIDEOS_PER_BATCH,
        warmup_epochs: 4,
        plateau: PlateauConfig::default(),
        seed: SEED,
        max_steps: MAX_STEPS,
        max_context_steps: MAX_CONTEXT_STEPS,
        video_encoder: EncoderSpec {
            name: "synthetic".into(),
            dim: VIDEO_DIM,
        },
        text_encoder: EncoderSpec {
            name: "synthetic".into(),
            dim: TEXT_DIM,
        },
    }
}

/// (VmHWM, VmRSS) of this process in MiB.
fn memory_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse::<f64>().ok())
            .map_or(f64::NAN, |kib| kib / 1024.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// User + system CPU seconds of this process so far (/proc/self/stat, clock ticks of 1/100 s).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The child: builds the data, trains, prints one JSON line.
fn rust_child() -> anyhow::Result<()> {
    let epochs = env_usize("COOT_EPOCH_EPOCHS", 1);
    let started = Instant::now();
    let train_split = make_split(1, &bench_clips(), None);
    let val_split = make_split(2, &[CLIPS_PER_VIDEO; VAL_VIDEOS], None);
    let data_seconds = started.elapsed().as_secs_f64();
    let (_, rss_after_data) = memory_mib();
    let config = config(epochs);
    let (events, receiver) = progress_channel(1024);
    let cancel = CancelToken::new();
    let mut store = MemoryStore::default();
    let (outcome, epoch_walls) = std::thread::scope(|scope| {
        let watch = scope.spawn(move || {
            let mut walls = Vec::new();
            let mut mark = Instant::now();
            for event in receiver {
                match event {
                    TrainEvent::Started { .. } => mark = Instant::now(),
                    TrainEvent::Step { step, steps, .. } if step % 50 == 0 || step == steps => {
                        eprintln!("  rust: step {step}/{steps}");
                    }
                    TrainEvent::Epoch(_) => {
                        walls.push(mark.elapsed().as_secs_f64());
                        mark = Instant::now();
                    }
                    _ => {}
                }
            }
            walls
        });
        let outcome = train(
            &config,
            &train_split.corpus(),
            &val_split.corpus(),
            &Device::Cpu,
            &mut store,
            &events,
            &cancel,
            false,
        );
        drop(events);
        (
            outcome,
            watch.join().expect("the event watcher does not panic"),
        )
    });
    outcome?;
    let (hwm, rss) = memory_mib();
    let steps = store.metrics.first().map_or(0, |r| r.steps);
    println!(
        "{}",
        json!({
            "epoch_seconds": store.metrics.iter().map(|r| r.seconds).collect::<Vec<_>>(),
            "epoch_wall_seconds": epoch_walls,
            "loss": store.metrics.iter().map(|r| r.loss).collect::<Vec<_>>(),
            "pruned_fraction": store.metrics.iter().map(|r| r.pruned_fraction).collect::<Vec<_>>(),
            "steps_per_epoch": steps,
            "data_seconds": data_seconds,
            "rss_after_data_mib": rss_after_data,
            "rss_end_mib": rss,
            "vmhwm_mib": hwm,
            "threads": candle_core::utils::get_num_threads(),
            "cpu_seconds": cpu_seconds(),
            "load_average_end": load_average(),
        })
    );
    Ok(())
}

/// Sets every variable to values of a useful size (the initial 0.01-std weights would make
/// attention and pooling nearly uniform and hide mistakes): matrices N(0, 0.05²), LayerNorm gains
/// 1 + N(0, 0.1²), other vectors N(0, 0.1²).
fn perturb(varmap: &VarMap) -> anyhow::Result<()> {
    let data = varmap
        .data()
        .lock()
        .expect("no panic while holding the varmap");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    for name in names {
        let var = &data[name];
        let dims = var.dims().to_vec();
        let count: usize = dims.iter().product();
        let gain = dims.len() == 1 && name.ends_with(".weight");
        let std = if dims.len() >= 2 { 0.05 } else { 0.1 };
        let values: Vec<f32> = (0..count)
            .map(|_| {
                let n: f64 = StandardNormal.sample(&mut rng);
                (if gain { 1.0 } else { 0.0 } + std * n) as f32
            })
            .collect();
        var.set(&Tensor::from_vec(values, dims, &Device::Cpu)?)?;
    }
    Ok(())
}

/// Writes what `coot_torch.py check` compares against: the checkpoint, two padded batches of
/// variable-length clips, the Rust embeddings of the first (eval mode), the objective of both
/// (the queue carries the first into the second) and the gradients of the second.
fn write_check(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let cpu = Device::Cpu;
    let head_config = coot_head();
    let varmap = VarMap::new();
    let head = EmbeddingHead::new(
        VarBuilder::from_varmap(&varmap, DType::F32, &cpu),
        &head_config,
    )?;
    initialise(&varmap, 5)?;
    perturb(&varmap)?;
    let train_config = config(1);
    let meta = CheckpointMeta {
        head: head_config.clone(),
        video_encoder: train_config.video_encoder.clone(),
        text_encoder: train_config.text_encoder.clone(),
        loss: serde_json::to_value(&train_config.loss)?,
        seed: 5,
        epoch: 0,
        metrics: json!({}),
    };
    let (weights, sidecar) = checkpoint_bytes(&varmap, &meta)?;
    std::fs::write(dir.join("weights.safetensors"), weights)?;
    std::fs::write(dir.join("weights.json"), sidecar)?;

    // Ten videos of 2–5 clips, clips of 3–16 frames and captions of 2–16 tokens: padding and
    // masks everywhere.
    let clips: Vec<usize> = (0..10).map(|v| 2 + (v * 7) % 4).collect();
    let lengths = |rng: &mut ChaCha8Rng| (rng.random_range(3..=16), rng.random_range(2..=16));
    let split = make_split(3, &clips, Some(&lengths));
    let corpus = split.corpus();
    // Limits that cut: 12 frames per clip, 40 per video context.
    let limits = BatchLimits {
        max_steps: 12,
        max_context_steps: 40,
    };
    let mut objective = Objective::new(&train_config.loss, 5)?;
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    let mut losses = Vec::new();
    for (b, videos) in [[3usize, 0, 7, 5, 9], [1, 8, 2, 6, 4]].iter().enumerate() {
        let batch = make_batch(&corpus, videos, limits, &cpu)?;
        let input = &batch.input;
        let out = head.forward(input, Mode::Eval)?;
        let report = objective.forward(&out, &batch)?;
        let scalar =
            |t: &Tensor| -> anyhow::Result<f64> { Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?) };
        losses.push(json!({
            "total": scalar(&report.total)?,
            "local": scalar(&report.local.loss)?,
            "global": scalar(&report.global.loss)?,
        }));
        let video_context = input.video_context.as_ref().context("contexts")?;
        let text_context = input.text_context.as_ref().context("contexts")?;
        let group_bounds: Vec<u32> = input
            .groups
            .iter()
            .flat_map(|g| [g.start as u32, g.end as u32])
            .collect();
        let named = [
            ("video_clips", input.video_clips.values.clone()),
            ("video_clips_mask", input.video_clips.mask.clone()),
            ("text_sentences", input.text_sentences.values.clone()),
            ("text_sentences_mask", input.text_sentences.mask.clone()),
            ("video_context", video_context.values.clone()),
            ("video_context_mask", video_context.mask.clone()),
            ("text_context", text_context.values.clone()),
            ("text_context_mask", text_context.mask.clone()),
            (
                "groups",
                Tensor::from_vec(group_bounds, (input.groups.len(), 2), &cpu)?,
            ),
            ("clip_video_in", batch.clip_video_in.clone()),
            ("clip_text_in", batch.clip_text_in.clone()),
            ("video_in", batch.video_in.clone()),
            ("paragraph_in", batch.paragraph_in.clone()),
            ("out.clip", out.clip.detach()),
            ("out.sentence", out.sentence.detach()),
            ("out.video", out.video.detach()),
            ("out.paragraph", out.paragraph.detach()),
        ];
        for (name, tensor) in named {
            tensors.insert(format!("batch{b}.{name}"), tensor.contiguous()?);
        }
        if b == 1 {
            let grads = report.total.backward()?;
            let vars = varmap
                .data()
                .lock()
                .expect("no panic while holding the varmap");
            for (name, var) in vars.iter() {
                if let Some(grad) = grads.get(var.as_tensor()) {
                    tensors.insert(format!("grad.{name}"), grad.contiguous()?);
                }
            }
        }
    }
    candle_core::safetensors::save(&tensors, dir.join("io.safetensors"))?;
    std::fs::write(
        dir.join("io.json"),
        serde_json::to_string_pretty(&json!({ "losses": losses, "batches": 2 }))?,
    )?;
    Ok(())
}

fn torch_available() -> bool {
    Command::new("python3")
        .args(["-c", "import torch, numpy"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn twin_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/coot_torch.py")
}

/// Runs a command, streams its stderr, and parses the last line of its stdout as JSON.
fn run_json(command: &mut Command, what: &str) -> anyhow::Result<Value> {
    let output = command
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("starting {what}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("{what} failed ({}): {stdout}", output.status);
    }
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .with_context(|| format!("{what} printed no JSON: {stdout}"))?;
    Ok(serde_json::from_str(line)?)
}

fn numbers(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default()
}

fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        0.5 * (sorted[mid - 1] + sorted[mid])
    } else {
        sorted[mid]
    }
}

fn max_of(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::NAN, f64::max)
}

#[allow(unsafe_code)]
fn main() -> anyhow::Result<()> {
    // SAFETY: first thing in main; no other thread exists yet.
    unsafe { crossclr::process::configure() };
    match std::env::var("COOT_EPOCH_ROLE").as_deref() {
        Ok("rust") => return rust_child(),
        Ok("check") => {
            let dir = std::env::var("COOT_EPOCH_CHECK_DIR").context("COOT_EPOCH_CHECK_DIR")?;
            return write_check(Path::new(&dir));
        }
        _ => {}
    }
    let out_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&out_dir)?;
    let epochs = env_usize("COOT_EPOCH_EPOCHS", 1);
    let rounds = env_usize("COOT_EPOCH_ROUNDS", 2).max(1);
    let threads = candle_core::utils::get_num_threads();
    let with_torch = torch_available();

    let mut report = json!({
        "bench": "coot_epoch",
        "data": {"clips": CLIPS, "videos": VIDEOS, "frames_per_clip": FRAMES,
                 "tokens_per_caption": TOKENS, "video_dim": VIDEO_DIM, "text_dim": TEXT_DIM,
                 "validation_videos": VAL_VIDEOS},
        "train": {"videos_per_batch": VIDEOS_PER_BATCH, "max_steps": MAX_STEPS,
                  "max_context_steps": MAX_CONTEXT_STEPS, "head": coot_head(),
                  "loss": LossSettings::PAPER, "optimizer": RAdamConfig::default()},
        "epochs_per_run": epochs,
        "rounds": rounds,
    });

    if with_torch {
        let check_dir = out_dir.join("coot_epoch_check");
        write_check(&check_dir)?;
        let twin_check = run_json(
            Command::new("python3")
                .arg(twin_script())
                .args(["check", "--dir", &check_dir.display().to_string()])
                .args(["--threads", &threads.to_string()]),
            "the PyTorch twin's check",
        )?;
        println!(
            "twin check: embeddings agree to {:.2e} (max abs), objective to {:.2e} (rel), gradients to {:.2e} (worst relative norm)",
            twin_check["embedding_max_abs"].as_f64().unwrap_or(f64::NAN),
            twin_check["loss_max_rel"].as_f64().unwrap_or(f64::NAN),
            twin_check["grad_max_rel"].as_f64().unwrap_or(f64::NAN),
        );
        report["twin_check"] = twin_check;
    } else {
        println!(
            "PyTorch is not installed (python3 -c 'import torch, numpy' failed): timing Rust only."
        );
    }

    let exe = std::env::current_exe()?;
    let mut rust_runs = Vec::new();
    let mut torch_runs = Vec::new();
    for round in 0..rounds {
        eprintln!("round {}/{rounds}: rust, {epochs} epochs", round + 1);
        let load = load_average();
        rust_runs.push(run_json(
            Command::new(&exe)
                .env("COOT_EPOCH_ROLE", "rust")
                .env("COOT_EPOCH_EPOCHS", epochs.to_string()),
            "the Rust child",
        )?);
        if let Some(run) = rust_runs.last_mut() {
            run["load_average_start"] = json!(load);
        }
        if with_torch {
            eprintln!("round {}/{rounds}: pytorch, {epochs} epochs", round + 1);
            let load = load_average();
            torch_runs.push(run_json(
                Command::new("python3")
                    .arg(twin_script())
                    .arg("bench")
                    .args(["--epochs", &epochs.to_string()])
                    .args(["--threads", &threads.to_string()])
                    .args(["--videos", &VIDEOS.to_string()])
                    .args(["--clips", &CLIPS.to_string()])
                    .args(["--clips-per-video", &CLIPS_PER_VIDEO.to_string()])
                    .args([
                        "--frames",
                        &FRAMES.to_string(),
                        "--tokens",
                        &TOKENS.to_string(),
                    ])
                    .args(["--val-videos", &VAL_VIDEOS.to_string()])
                    .args(["--batch-videos", &VIDEOS_PER_BATCH.to_string()]),
                "the PyTorch twin",
            )?);
            if let Some(run) = torch_runs.last_mut() {
                run["load_average_start"] = json!(load);
            }
        }
    }

    let summarise = |runs: &[Value]| {
        let epochs: Vec<f64> = runs
            .iter()
            .flat_map(|r| numbers(&r["epoch_seconds"]))
            .collect();
        let walls: Vec<f64> = runs
            .iter()
            .flat_map(|r| numbers(&r["epoch_wall_seconds"]))
            .collect();
        let hwm: Vec<f64> = runs
            .iter()
            .filter_map(|r| r["vmhwm_mib"].as_f64())
            .collect();
        let after_data: Vec<f64> = runs
            .iter()
            .filter_map(|r| r["rss_after_data_mib"].as_f64())
            .collect();
        json!({
            "median_epoch_s": median(&epochs),
            "epoch_s": epochs,
            "median_epoch_wall_s": median(&walls),
            "peak_mib": max_of(&hwm),
            "rss_after_data_mib": max_of(&after_data),
            "runs": runs,
        })
    };
    let rust = summarise(&rust_runs);
    let rust_s = rust["median_epoch_s"].as_f64().unwrap_or(f64::NAN);
    let rust_mib = rust["peak_mib"].as_f64().unwrap_or(f64::NAN);
    let steps = rust_runs
        .first()
        .and_then(|r| r["steps_per_epoch"].as_u64())
        .unwrap_or(0);
    println!(
        "coot head, one epoch of {CLIPS} clips ({VIDEOS} videos, {VIDEOS_PER_BATCH} per batch, {steps} steps), \
         T={FRAMES} frames and L={TOKENS} tokens per clip, Dv={VIDEO_DIM}, Dt={TEXT_DIM}, A=384, f32, CPU, {threads} threads; \
         CrossCLR paper mode + queue 5000, L_local + 0.6·L_global, RAdam; validation: {VAL_VIDEOS} videos (excluded)"
    );
    println!(
        "median over {} epochs ({rounds} run(s) × {epochs}); peak = VmHWM of the process, data included",
        numbers(&rust["epoch_s"]).len()
    );
    println!(
        "{:<9} {:>10} {:>10} {:>10} {:>11} {:>15} {:>10}",
        "engine", "s/epoch", "min s", "max s", "peak MiB", "MiB after data", "loss"
    );
    let row = |engine: &str, summary: &Value| {
        let epochs = numbers(&summary["epoch_s"]);
        let loss = summary["runs"][0]["loss"][0].as_f64().unwrap_or(f64::NAN);
        println!(
            "{:<9} {:>10.1} {:>10.1} {:>10.1} {:>11.0} {:>15.0} {:>10.4}",
            engine,
            summary["median_epoch_s"].as_f64().unwrap_or(f64::NAN),
            epochs.iter().copied().fold(f64::INFINITY, f64::min),
            max_of(&epochs),
            summary["peak_mib"].as_f64().unwrap_or(f64::NAN),
            summary["rss_after_data_mib"].as_f64().unwrap_or(f64::NAN),
            loss,
        );
    };
    row("rust", &rust);
    report["rust"] = rust;
    if with_torch && !torch_runs.is_empty() {
        let torch = summarise(&torch_runs);
        let torch_s = torch["median_epoch_s"].as_f64().unwrap_or(f64::NAN);
        let torch_mib = torch["peak_mib"].as_f64().unwrap_or(f64::NAN);
        row("pytorch", &torch);
        let ratio = rust_s / torch_s;
        let memory_ratio = rust_mib / torch_mib;
        println!(
            "rust / pytorch: {ratio:.2}× time (goal ≤ 1.0×), {memory_ratio:.2}× peak memory; torch {}",
            torch_runs[0]["torch"].as_str().unwrap_or("?")
        );
        report["pytorch"] = torch;
        report["ratio_time"] = json!(ratio);
        report["ratio_peak_memory"] = json!(memory_ratio);
    }
    let path = out_dir.join("coot_epoch.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
    println!("wrote {}", path.display());
    Ok(())
}
