//! `crossclr train DIR`: CrossCLR (or a baseline) on a project's features, headless.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::crossclr::{LossKind, Mode};
use crate::jobs::{CancelToken, progress_channel};
use crate::model::{DeviceKind, HeadKind};
use crate::project::config::Preset;
use crate::project::{Project, ProjectConfig, RunName};
use crate::train::{
    EpochRecord, Outcome, PreparedRun, RunRequest, RunSummary, TrainEvent, default_run_name,
};

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The project directory.
    pub project: PathBuf,
    /// Start from a named preset's loss, head width and schedule instead of the project's
    /// (`paper-youcook2`, `paper-lsmdc`: the paper's exact values); the flags below override it.
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    /// The loss (default: the project's `loss.kind`).
    #[arg(long, value_enum)]
    pub loss: Option<LossKind>,
    /// CrossCLR mode (default: the project's `loss.mode`).
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    /// Temperature τ of the logits (default: the project's `loss.tau`).
    #[arg(long, allow_negative_numbers = true)]
    pub tau: Option<f64>,
    /// Temperature κ of CrossCLR's sample weights (default: the project's `loss.kappa`).
    #[arg(long, allow_negative_numbers = true)]
    pub kappa: Option<f64>,
    /// Weight λ of CrossCLR's intra-modal negatives (default: the project's `loss.lambda`).
    #[arg(long, allow_negative_numbers = true)]
    pub lambda: Option<f64>,
    /// CrossCLR's pruning threshold γ (default: the project's `loss.gamma`).
    #[arg(long, allow_negative_numbers = true)]
    pub gamma: Option<f64>,
    /// The embedding head (default: the project's `model.head`).
    #[arg(long, value_enum)]
    pub head: Option<HeadKind>,
    /// Epochs to train (default: the project's `train.epochs`).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Videos per batch (default: the project's `train.batch_size`). Training memory grows with
    /// it: the coot head keeps each batch's activations for the backward pass, about 40 MB per
    /// video of 7 clips × 16 frames (README, Memory). The ways down: a smaller batch, or fewer
    /// frames reaching the head (`model.max_frames` per clip and `model.max_context_frames` per
    /// video in crossclr.toml; halving both took batch 64 from 3.6 to 2.3 GB).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Seed of the initialisation, batches and dropout (default: the project's `train.seed`).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Queue length at the clip level, 0 for none (default: the project's `loss.queue`).
    #[arg(long)]
    pub queue: Option<usize>,
    /// Device, cuda with the `cuda` feature (default: the project's `train.device`).
    #[arg(long, value_enum)]
    pub device: Option<DeviceKind>,
    /// Name of the run under runs/ (default: loss, mode and seed).
    #[arg(long)]
    pub run: Option<RunName>,
    /// Continue the run from its last saved state (from the start if it was killed before
    /// saving one).
    #[arg(long)]
    pub resume: bool,
}

/// The project's settings with the command line's overrides.
fn settings(project: &Project, args: &TrainArgs) -> ProjectConfig {
    let mut config = project.config().clone();
    if let Some(preset) = args.preset {
        preset.apply(&mut config);
    }
    let (loss, train) = (&mut config.loss, &mut config.train);
    for (flag, value) in [
        (args.tau, &mut loss.tau),
        (args.kappa, &mut loss.kappa),
        (args.lambda, &mut loss.lambda),
        (args.gamma, &mut loss.gamma),
    ] {
        if let Some(flag) = flag {
            *value = flag;
        }
    }
    if let Some(kind) = args.loss {
        loss.kind = kind;
    }
    if let Some(mode) = args.mode {
        loss.mode = mode;
    }
    if let Some(queue) = args.queue {
        loss.queue = queue;
    }
    if let Some(head) = args.head {
        config.model.head = head;
    }
    if let Some(epochs) = args.epochs {
        train.epochs = epochs;
    }
    if let Some(batch) = args.batch_size {
        train.batch_size = batch;
    }
    if let Some(seed) = args.seed {
        train.seed = seed;
    }
    if let Some(device) = args.device {
        train.device = device;
    }
    config
}

pub fn run(args: &TrainArgs) -> Result<()> {
    let project = Project::open(&args.project)?;
    let config = settings(&project, args);
    let name = match &args.run {
        Some(name) => name.clone(),
        None => RunName::new(&default_run_name(&config))?,
    };
    let prepared = PreparedRun::prepare(
        &project,
        &config,
        RunRequest {
            name: name.clone(),
            resume: args.resume,
        },
    )?;
    let cancel = crate::process::interrupt_token()?;
    let outcome = train_with_progress(&prepared, &cancel)?;
    let mut out = std::io::stdout().lock();
    match outcome {
        Outcome::Completed => writeln!(
            out,
            "done: best checkpoint {} (metrics in {})",
            prepared.run.checkpoint().display(),
            prepared.run.metrics().display()
        )?,
        Outcome::Cancelled { epoch, steps_done } => writeln!(
            out,
            "stopped at epoch {epoch}, step {steps_done}; the state is saved in {}: continue with `crossclr train {} --run {name} --resume`",
            prepared.run.state().display(),
            args.project.display()
        )?,
    }
    Ok(())
}

/// Trains `prepared` on a named thread while this one shows its progress: the run's header, a bar
/// per epoch and a line per finished epoch. A closed stdout (`| head`) stops the run at the next
/// step, its state saved, and ends the command quietly.
pub(super) fn train_with_progress(prepared: &PreparedRun, cancel: &CancelToken) -> Result<Outcome> {
    let (events, receiver) = progress_channel(64);
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("crossclr-train".into())
            .spawn_scoped(scope, move || prepared.train(&events, cancel))?;
        let mut printer = TrainPrinter::new(prepared.summary());
        let mut printed = Ok(());
        for event in receiver {
            if printed.is_ok() {
                printed = printer.show(event);
                if printed.is_err() {
                    cancel.cancel();
                }
            }
        }
        printer.finish();
        let outcome = worker
            .join()
            .map_err(|_| anyhow::anyhow!("the training thread panicked"))??;
        printed?;
        Ok(outcome)
    })
}

/// How a run's progress looks on a terminal (or in a log, where the bar hides itself).
pub(super) struct TrainPrinter {
    summary: RunSummary,
    bar: ProgressBar,
    epochs: usize,
}

impl TrainPrinter {
    pub(super) fn new(summary: RunSummary) -> Self {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}, {eta} left)",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        Self {
            summary,
            bar,
            epochs: 0,
        }
    }

    /// Prints beside the bar, not through it: a hidden bar (output not a terminal) would swallow
    /// the line.
    fn line(&self, text: String) -> std::io::Result<()> {
        self.bar
            .suspend(|| writeln!(std::io::stdout().lock(), "{text}"))
    }

    pub(super) fn show(&mut self, event: TrainEvent) -> std::io::Result<()> {
        match event {
            TrainEvent::Started {
                first_epoch,
                epochs,
                steps_per_epoch,
                parameters,
            } => {
                self.epochs = epochs;
                let s = &self.summary;
                self.line(format!(
                    "run `{}` · {} head, {parameters} parameters · {} loss · {} train videos, {} selection videos ({}) · {steps_per_epoch} steps per epoch{}",
                    s.run,
                    s.head,
                    s.loss,
                    s.train_videos,
                    s.selection_videos,
                    s.selection_text(),
                    if first_epoch > epochs {
                        format!(" · all {epochs} epochs trained already")
                    } else if s.starts_over {
                        " · no state saved yet: training from epoch 1".to_string()
                    } else if first_epoch > 1 {
                        format!(" · resuming at epoch {first_epoch}")
                    } else {
                        String::new()
                    },
                ))?;
                self.bar.set_length(steps_per_epoch as u64);
                self.bar.set_prefix(format!("epoch {first_epoch}/{epochs}"));
            }
            TrainEvent::Step {
                epoch,
                step,
                steps,
                loss,
                lr,
                ..
            } => {
                self.bar
                    .set_prefix(format!("epoch {epoch}/{}", self.epochs));
                self.bar.set_length(steps as u64);
                self.bar.set_position(step as u64);
                self.bar.set_message(format!("loss {loss:.4} lr {lr:.2e}"));
            }
            TrainEvent::Validating { epoch } => {
                self.bar.set_message(format!("validating epoch {epoch}"));
            }
            TrainEvent::Epoch(record) => {
                self.line(epoch_line(&record))?;
                self.bar.set_position(0);
            }
        }
        Ok(())
    }

    pub(super) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

fn epoch_line(record: &EpochRecord) -> String {
    let v = &record.validation;
    format!(
        "epoch {:>3}  loss {:.4} (local {:.4}, global {:.4})  pruned {:>5.1}%  val R@1 c→s {:>5.1} s→c {:>5.1} v→p {:>5.1} p→v {:>5.1}  score {:.4}{}  {:.1}s",
        record.epoch,
        record.loss,
        record.loss_local,
        record.loss_global,
        100.0 * record.pruned_fraction,
        100.0 * v.clip_to_sentence.r1,
        100.0 * v.sentence_to_clip.r1,
        100.0 * v.video_to_paragraph.r1,
        100.0 * v.paragraph_to_video.r1,
        record.score,
        if record.best { "  best" } else { "" },
        record.seconds,
    )
}
