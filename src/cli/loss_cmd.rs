//! `crossclr loss`: explain what the loss did to one or more dumped batches.

use std::io::Write;
use std::path::{Path, PathBuf};

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
            let video_emb = file.finite_matrix("queue_video_emb")?;
            let capacity = args.queue.unwrap_or(video_emb.dim(0)?);
            let host = |name: &str| -> Result<HostMatrix> {
                let tensor = file.finite_matrix(name)?;
                HostMatrix::from_tensor(&tensor, name)
                    .with_context(|| format!("in {}", path.display()))
            };
            Ok((
                capacity,
                QueueInit::Buffers {
                    video_emb,
                    text_emb: file.finite_matrix("queue_text_emb")?,
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
        file.finite_matrix("video_emb")?,
        file.finite_matrix("text_emb")?,
        file.finite_matrix("video_in")?,
        file.finite_matrix("text_in")?,
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
        let value = report.value()?;
        if !value.is_finite() {
            return Err(not_finite(args, path, value, &report));
        }
        if args.json {
            steps.push(StepJson {
                file: path.display().to_string(),
                loss: value,
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

/// ln(f64::MAX): `exp` of anything larger is infinite.
const LN_F64_MAX: f64 = 709.782712893384;

/// Why the loss came out `value` (NaN or infinite) on the batch at `path`: in official mode,
/// the sample weights as the released code writes them, when they are what overflowed.
fn not_finite(args: &LossArgs, path: &Path, value: f64, report: &LossReport) -> anyhow::Error {
    let batch = report.video.weights.len();
    let file = path.display();
    for (side, report) in [("video", &report.video), ("text", &report.text)] {
        if report.weights.iter().all(|w| w.is_finite()) || args.mode != Mode::Official {
            continue;
        }
        let total: f64 = report.connectivity.iter().sum();
        let why = if total == 0.0 || !total.is_finite() {
            let single = if batch == 1 {
                "with B = 1 an anchor has no other sample, so its connectivity is 0; "
            } else {
                ""
            };
            format!("{single}the connectivities sum to Σc = {total}, and c/Σc is 0/0 or ∞/∞")
        } else {
            let largest = report
                .connectivity
                .iter()
                .map(|c| c / total / args.kappa)
                .fold(f64::NEG_INFINITY, f64::max);
            let kappa = args.kappa;
            if largest > LN_F64_MAX {
                format!(
                    "the largest c/Σc/κ is {largest:.4e} (Σc = {total:.4e}, κ = {kappa}), past \
                     ln(f64::MAX) ≈ {LN_F64_MAX:.2}, so exp overflows to ∞ and ∞/∞ is NaN"
                )
            } else {
                format!(
                    "c/Σc/κ (Σc = {total:.4e}, κ = {kappa}; the largest {largest:.4e}) leaves \
                     exp no finite, non-zero sum: ∞/∞ or 0/0 is NaN"
                )
            }
        };
        return anyhow::anyhow!(
            "{file}: the loss is {value}: official mode's {side} sample weights overflowed. They \
             are computed as the released code writes them, ω = exp(c/Σc/κ) / Σ exp(c/Σc/κ), \
             without subtracting the maximum, and {why}. Paper mode (--mode paper) computes the \
             same weights stably (and uniform when Σc ≤ 0); a larger --kappa may also keep them \
             finite"
        );
    }
    anyhow::anyhow!(
        "{file}: the loss is {value} (B = {batch}, τ = {}, κ = {}); expected a finite number",
        args.tau,
        args.kappa
    )
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use candle_core::{Device, Tensor};
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Command {
        #[command(flatten)]
        args: LossArgs,
    }

    fn args(flags: &[&str]) -> LossArgs {
        Command::parse_from(std::iter::once("loss").chain(flags.iter().copied())).args
    }

    /// A batch file of `B × 2` matrices: the embeddings and inputs given, the inputs also as
    /// the text inputs.
    fn batch(dir: &Path, name: &str, emb: &[f32], inputs: &[f32]) -> String {
        let rows = emb.len() / 2;
        let tensor = |values: &[f32]| Tensor::from_vec(values.to_vec(), (rows, 2), &Device::Cpu);
        let tensors = HashMap::from([
            ("video_emb".to_string(), tensor(emb).unwrap()),
            ("text_emb".to_string(), tensor(emb).unwrap()),
            ("video_in".to_string(), tensor(inputs).unwrap()),
            ("text_in".to_string(), tensor(inputs).unwrap()),
        ]);
        let path = dir.join(name);
        candle_core::safetensors::save(&tensors, &path).unwrap();
        path.to_str().unwrap().to_string()
    }

    #[test]
    fn non_finite_embeddings_are_an_error_naming_the_tensor_and_position() {
        let dir = tempfile::tempdir().unwrap();
        let emb = [1.0, 0.0, 0.0, f32::NAN, 0.6, 0.8];
        let path = batch(
            dir.path(),
            "b.safetensors",
            &emb,
            &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0],
        );
        let message = format!(
            "{:#}",
            run(&args(&["--batch", &path, "--json"])).unwrap_err()
        );
        assert!(
            message.contains("`video_emb`") && message.contains("NaN at [1, 1]"),
            "{message}"
        );
    }

    #[test]
    fn official_weights_that_overflow_are_an_error_saying_why() {
        let dir = tempfile::tempdir().unwrap();
        let emb = [1.0, 0.0, 0.0, 1.0, 0.6, 0.8];
        // Dots 1, -1 and 0.01 between the inputs: Σc is tiny beside c_1, and c/Σc/κ overflows.
        let inputs = [1.0, 0.0, 1.0, 1.0, -1.0, 1.01];
        let path = batch(dir.path(), "b.safetensors", &emb, &inputs);
        let message = format!(
            "{:#}",
            run(&args(&["--batch", &path, "--mode", "official", "--json"])).unwrap_err()
        );
        assert!(
            message.contains("overflowed")
                && message.contains("exp(c/Σc/κ)")
                && message.contains("past ln(f64::MAX)"),
            "{message}"
        );
        assert!(
            run(&args(&["--batch", &path, "--json"])).is_ok(),
            "paper mode is stable"
        );

        // One sample: its connectivity is 0 and c/Σc is 0/0.
        let path = batch(dir.path(), "one.safetensors", &[1.0, 0.0], &[1.0, 0.0]);
        let message = format!(
            "{:#}",
            run(&args(&["--batch", &path, "--mode", "official"])).unwrap_err()
        );
        assert!(
            message.contains("overflowed") && message.contains("B = 1"),
            "{message}"
        );
    }
}
