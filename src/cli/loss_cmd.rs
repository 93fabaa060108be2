//! `crossclr loss`: explain what the loss did to one or more dumped batches.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Serialize;

use super::tensor_file::TensorFile;
use crate::crossclr::{
    ContrastiveLoss, CrossClrConfig, CrossClrQueue, HostMatrix, LossKind, LossReport, LossSettings,
    Mode, MultiPositive, PairBatch, QueueInit, SideReport,
};

#[derive(Debug, Args)]
pub struct LossArgs {
    /// A batch: safetensors with `video_emb` (B×d), `text_emb` (B×d), `video_in` (B×Dv), `text_in`
    /// (B×Dt), f32 or f64. Repeat for consecutive steps through one queue.
    #[arg(long = "batch", required = true, value_name = "FILE")]
    pub batches: Vec<PathBuf>,
    /// Initial queue buffers for official mode: `queue_video_emb` (K×d), `queue_text_emb`,
    /// `queue_video_in` (K×Dv), `queue_text_in` (K×Dt).
    #[arg(long, value_name = "FILE")]
    pub queue_init: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = CrossClrConfig::PAPER.mode)]
    pub mode: Mode,
    #[arg(long, value_enum, default_value_t = LossSettings::PAPER.kind)]
    pub loss: LossKind,
    /// Temperature τ of the logits.
    #[arg(long, default_value_t = CrossClrConfig::PAPER.tau, allow_negative_numbers = true)]
    pub tau: f64,
    /// Temperature κ of the sample weights.
    #[arg(long, default_value_t = CrossClrConfig::PAPER.kappa, allow_negative_numbers = true)]
    pub kappa: f64,
    /// Weight λ of the intra-modal negatives.
    #[arg(long, default_value_t = CrossClrConfig::PAPER.lambda, allow_negative_numbers = true)]
    pub lambda: f64,
    /// Pruning threshold γ on the normalised connectivity.
    #[arg(long, default_value_t = CrossClrConfig::PAPER.gamma, allow_negative_numbers = true)]
    pub gamma: f64,
    /// Queue length K: the batches become consecutive steps through one queue.
    #[arg(long, value_name = "K")]
    pub queue: Option<usize>,
    /// Multiple positives: the K nearest samples by input similarity become extra positives.
    #[arg(long, value_name = "K")]
    pub multi_pos: Option<usize>,
    /// Target weight β of the extra positives.
    #[arg(long, default_value_t = MultiPositive::DEFAULT_BETA, allow_negative_numbers = true)]
    pub beta: f64,
    /// Margin of the max-margin loss.
    #[arg(long, default_value_t = LossSettings::PAPER.margin, allow_negative_numbers = true)]
    pub margin: f64,
    /// Seed of the noise an official-mode queue starts from when no --queue-init is given.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also list the kept and pruned negatives of this anchor (table output).
    #[arg(long, value_name = "I")]
    pub anchor: Option<usize>,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct SideJson {
    per_sample: Vec<f64>,
    weights: Vec<f64>,
    influential: Vec<bool>,
    connectivity: Vec<f64>,
    normalised_connectivity: Vec<f64>,
    pruned_cross: Vec<usize>,
    pruned_intra: Vec<usize>,
}

#[derive(Debug, Serialize)]
struct StepJson {
    file: String,
    loss: f64,
    pruned_fraction: f64,
    video: SideJson,
    text: SideJson,
}

#[derive(Debug, Serialize)]
struct OutputJson {
    loss: String,
    mode: String,
    steps: Vec<StepJson>,
}

/// The loss the flags describe; `queue` is the queue's length, 0 without one.
fn settings(args: &LossArgs, queue: usize) -> LossSettings {
    LossSettings {
        kind: args.loss,
        crossclr: CrossClrConfig {
            mode: args.mode,
            tau: args.tau,
            kappa: args.kappa,
            lambda: args.lambda,
            gamma: args.gamma,
            multi_positive: args.multi_pos.map(|k| MultiPositive { k, beta: args.beta }),
        },
        queue,
        margin: args.margin,
        ..LossSettings::PAPER
    }
}

/// How the queue starts: the buffers of `--queue-init` (official mode), else the mode's own
/// start; the queue holds `--queue` slots, else as many as the buffers.
fn queue_start(args: &LossArgs) -> Result<(usize, QueueInit)> {
    match (&args.queue_init, args.mode) {
        (Some(path), Mode::Official) => {
            let file = TensorFile::open(path)?;
            let video_emb = file.matrix("queue_video_emb")?;
            let capacity = args.queue.unwrap_or(video_emb.dim(0)?);
            let host = |name: &str| -> Result<HostMatrix> {
                let tensor = file.matrix(name)?;
                HostMatrix::from_tensor(&tensor, name)
                    .with_context(|| format!("in {}", path.display()))
            };
            Ok((
                capacity,
                QueueInit::Buffers {
                    video_emb,
                    text_emb: file.matrix("queue_text_emb")?,
                    video_in: host("queue_video_in")?,
                    text_in: host("queue_text_in")?,
                },
            ))
        }
        (Some(_), Mode::Paper) => bail!(
            "--queue-init sets the initial buffers of official mode; paper mode starts from an \
             empty queue (add --mode official, or drop --queue-init)"
        ),
        (None, mode) => Ok((
            args.queue.unwrap_or(0),
            QueueInit::for_mode(mode, args.seed),
        )),
    }
}

fn build_loss(args: &LossArgs) -> Result<Box<dyn ContrastiveLoss>> {
    let uses_queue = args.queue.is_some() || args.queue_init.is_some();
    if args.loss != LossKind::Crossclr && (uses_queue || args.multi_pos.is_some()) {
        bail!("--queue, --queue-init and --multi-pos apply to --loss crossclr only");
    }
    if uses_queue {
        let (capacity, init) = queue_start(args)?;
        let config = settings(args, capacity).crossclr;
        return Ok(Box::new(CrossClrQueue::new(config, capacity, init)?));
    }
    Ok(settings(args, 0).build()?)
}

fn load_batch(path: &std::path::Path) -> Result<PairBatch> {
    let file = TensorFile::open(path)?;
    let batch = PairBatch::new(
        file.matrix("video_emb")?,
        file.matrix("text_emb")?,
        file.matrix("video_in")?,
        file.matrix("text_in")?,
    )
    .with_context(|| format!("in {}", path.display()))?;
    Ok(batch)
}

fn per_sample(side: &SideReport) -> Result<Vec<f64>> {
    Ok(side
        .per_sample
        .to_dtype(candle_core::DType::F64)?
        .to_vec1::<f64>()?)
}

fn side_json(side: &SideReport) -> Result<SideJson> {
    let counts: Vec<(usize, usize)> = (0..side.negatives.anchors())
        .map(|i| side.negatives.pruned_counts(i))
        .collect();
    Ok(SideJson {
        per_sample: per_sample(side)?,
        weights: side.weights.clone(),
        influential: side.influential.clone(),
        connectivity: side.connectivity.clone(),
        normalised_connectivity: side.normalised.clone(),
        pruned_cross: counts.iter().map(|c| c.0).collect(),
        pruned_intra: counts.iter().map(|c| c.1).collect(),
    })
}

pub fn run(args: &LossArgs) -> Result<()> {
    let mut loss = build_loss(args)?;
    let mut steps = Vec::new();
    let mut reports = Vec::new();
    for path in &args.batches {
        let batch = load_batch(path)?;
        let report = loss
            .forward(&batch)
            .with_context(|| format!("evaluating the loss on {}", path.display()))?;
        if args.json {
            steps.push(StepJson {
                file: path.display().to_string(),
                loss: report.value()?,
                pruned_fraction: report.pruned_fraction(),
                video: side_json(&report.video)?,
                text: side_json(&report.text)?,
            });
        } else {
            reports.push((path.clone(), report));
        }
        if args.queue.is_none() && args.queue_init.is_none() {
            // Without a queue every batch is explained on its own.
            loss = build_loss(args)?;
        }
    }
    if args.json {
        let output = OutputJson {
            loss: loss.name(),
            mode: args.mode.to_string(),
            steps,
        };
        println!("{}", serde_json::to_string(&output)?);
        return Ok(());
    }
    let total = reports.len();
    let mut out = std::io::stdout().lock();
    for (index, (path, report)) in reports.iter().enumerate() {
        print_step(&mut out, args, &loss.name(), index, total, path, report)?;
    }
    Ok(())
}

fn print_step(
    out: &mut impl Write,
    args: &LossArgs,
    name: &str,
    index: usize,
    total: usize,
    path: &std::path::Path,
    report: &LossReport,
) -> Result<()> {
    let batch = report.video.weights.len();
    writeln!(
        out,
        "step {} of {total} · {} · {name} · B = {batch} · loss {:.6} · {:.1}% of negatives pruned",
        index + 1,
        path.display(),
        report.value()?,
        100.0 * report.pruned_fraction()
    )?;
    if args.loss == LossKind::Crossclr {
        writeln!(
            out,
            "  τ {} · κ {} · λ {} · γ {}{}",
            args.tau,
            args.kappa,
            args.lambda,
            args.gamma,
            args.multi_pos
                .map(|k| format!(" · {k} extra positives, β {}", args.beta))
                .unwrap_or_default()
        )?;
    }
    for (title, side) in [
        ("video → text", &report.video),
        ("text → video", &report.text),
    ] {
        let losses = per_sample(side)?;
        let influential = side.influential.iter().filter(|&&b| b).count();
        writeln!(out, "\n  {title}: {influential} influential")?;
        writeln!(
            out,
            "  {:>5} {:>11} {:>10} {:>8} {:>5} {:>13} {:>13}",
            "#", "loss", "weight", "c/max", "infl", "pruned cross", "pruned intra"
        )?;
        let cross_candidates = batch.saturating_sub(1);
        for (i, loss) in losses.iter().enumerate() {
            let (cross, intra) = side.negatives.pruned_counts(i);
            let intra_candidates = side.negatives.for_anchor(i);
            let intra_total =
                intra_candidates.intra_kept.len() + intra_candidates.intra_pruned.len();
            let score = side
                .normalised
                .get(i)
                .map(|s| format!("{s:.4}"))
                .unwrap_or_else(|| "-".into());
            writeln!(
                out,
                "  {:>5} {:>11.6} {:>10.6} {:>8} {:>5} {:>13} {:>13}",
                i,
                loss,
                side.weights[i],
                score,
                if side.influential[i] { "yes" } else { "" },
                format!("{cross}/{cross_candidates}"),
                format!("{intra}/{intra_total}"),
            )?;
        }
        if let Some(anchor) = args.anchor {
            if anchor >= batch {
                bail!("--anchor {anchor} is outside the batch (B = {batch})");
            }
            let sets = side.negatives.for_anchor(anchor);
            let source = match side.negatives.intra_source {
                crate::crossclr::IntraSource::Batch => "batch items",
                crate::crossclr::IntraSource::Queue => "queue slots",
            };
            writeln!(out, "  anchor {anchor}: positive {}", sets.positive)?;
            writeln!(out, "    cross-modal kept   {:?}", sets.cross_kept)?;
            writeln!(out, "    cross-modal pruned {:?}", sets.cross_pruned)?;
            writeln!(
                out,
                "    intra-modal kept   ({source}) {:?}",
                sets.intra_kept
            )?;
            writeln!(
                out,
                "    intra-modal pruned ({source}) {:?}",
                sets.intra_pruned
            )?;
        }
    }
    writeln!(out)?;
    Ok(())
}
