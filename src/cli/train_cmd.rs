//! `crossclr train DIR`: CrossCLR (or a baseline) on a project's features, headless.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use super::loss_cmd::{LossKind as LossArg, ModeArg};
use super::setup_run::{RunFiles, corpus, device, load_split, train_config};
use crate::jobs::{CancelToken, progress_channel};
use crate::project::config::{Head, LossKind, LossMode};
use crate::project::{Project, write_atomic};
use crate::train::{EpochRecord, Outcome, TrainEvent, train};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HeadArg {
    Mlp,
    Coot,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The project directory.
    pub project: PathBuf,
    /// The loss (default: the project's).
    #[arg(long, value_enum)]
    pub loss: Option<LossArg>,
    /// CrossCLR mode (default: the project's).
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    #[arg(long, value_enum)]
    pub head: Option<HeadArg>,
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Videos per batch.
    #[arg(long)]
    pub batch_size: Option<usize>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Queue length at the clip level (0: none).
    #[arg(long)]
    pub queue: Option<usize>,
    /// cpu, or cuda with the `cuda` feature.
    #[arg(long)]
    pub device: Option<String>,
    /// Name of the run under runs/ (default: loss, mode and seed).
    #[arg(long)]
    pub run: Option<String>,
    /// Continue the run from its last saved state.
    #[arg(long)]
    pub resume: bool,
}

/// The project's settings with the command line's overrides.
fn settings(project: &Project, args: &TrainArgs) -> crate::project::ProjectConfig {
    let mut config = project.config().clone();
    if let Some(loss) = args.loss {
        config.loss.kind = match loss {
            LossArg::Crossclr => LossKind::Crossclr,
            LossArg::Infonce => LossKind::Infonce,
            LossArg::Maxmargin => LossKind::Maxmargin,
            LossArg::Xmlnet => LossKind::Xmlnet,
        };
    }
    if let Some(mode) = args.mode {
        config.loss.mode = match mode {
            ModeArg::Paper => LossMode::Paper,
            ModeArg::Official => LossMode::Official,
        };
    }
    if let Some(head) = args.head {
        config.model.head = match head {
            HeadArg::Mlp => Head::Mlp,
            HeadArg::Coot => Head::Coot,
        };
    }
    if let Some(epochs) = args.epochs {
        config.train.epochs = epochs;
    }
    if let Some(batch) = args.batch_size {
        config.train.batch_size = batch;
    }
    if let Some(seed) = args.seed {
        config.train.seed = seed;
    }
    if let Some(queue) = args.queue {
        config.loss.queue = queue;
    }
    if let Some(device) = &args.device {
        config.train.device = device.clone();
    }
    config
}

pub fn default_run_name(config: &crate::project::ProjectConfig) -> String {
    let loss = format!("{:?}", config.loss.kind).to_lowercase();
    match config.loss.kind {
        LossKind::Crossclr => {
            let mode = format!("{:?}", config.loss.mode).to_lowercase();
            format!("{loss}-{mode}-s{}", config.train.seed)
        }
        _ => format!("{loss}-s{}", config.train.seed),
    }
}

fn epoch_line(record: &EpochRecord) -> String {
    let v = &record.validation;
    format!(
        "epoch {:>3}  loss {:.4} (local {:.4}, global {:.4})  pruned {:>5.1}%  val R@1 c→s {:>5.1} s→c {:>5.1} v→p {:>5.1} p→v {:>5.1}  score {:.4}{}  {:.1}s",
        record.epoch + 1,
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

pub fn run(args: &TrainArgs) -> Result<()> {
    let project = Project::open(&args.project)?;
    project.check_features()?;
    let config = settings(&project, args);
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("settings: {e}"))?;
    let train_settings = train_config(&config)?;
    let name = args
        .run
        .clone()
        .unwrap_or_else(|| default_run_name(&config));
    // Everything that can be refused is checked before the run directory is made.
    let device = device(&config.train.device)?;
    let files = RunFiles::new(project.run_dir(&name));
    if files.dir.join("state.safetensors").exists() && !args.resume {
        bail!(
            "run `{name}` exists in {}; continue it with --resume, or name a new one with --run",
            files.dir.display()
        );
    }
    std::fs::create_dir_all(&files.dir)
        .with_context(|| format!("creating {}", files.dir.display()))?;
    write_atomic(
        &files.run_config(),
        serde_json::to_string_pretty(&train_settings)?.as_bytes(),
    )?;
    let train_split = load_split(&project, &config.train.train_split, "train")?;
    // Model selection must not look at the reported split. A project without a separate report
    // split (YouCook2 has only train and val) reports on val, so selection holds out a tenth of
    // the training videos instead, and val stays unseen.
    let separate_report_split = project.splits()?.contains(&config.train.report_split)
        && config.train.report_split != config.train.val_split;
    let val_split = if separate_report_split {
        Some(load_split(&project, &config.train.val_split, "val")?)
    } else {
        None
    };

    let cancel = CancelToken::new();
    let handler_token = cancel.clone();
    // A second Ctrl-C while the state is being written should not kill the write: the first one
    // asks, the job stops at the next step boundary.
    let _ = ctrlc::set_handler(move || handler_token.cancel());

    let (events, receiver) = progress_channel(64);
    let mut store = files.clone();
    let outcome = std::thread::scope(|scope| -> Result<Outcome> {
        let whole_train = corpus(&train_split);
        let (train_view, val_view) = match &val_split {
            Some(val) => (whole_train.clone(), corpus(val)),
            None => whole_train.split_off_tail(whole_train.num_videos().div_ceil(10)),
        };
        let (train_videos, val_videos) = (train_view.num_videos(), val_view.num_videos());
        let selection = match &val_split {
            Some(_) => format!("`{}`", config.train.val_split),
            None => format!(
                "the last of `{}`; no `{}` split, so `{}` is kept for reporting",
                config.train.train_split, config.train.report_split, config.train.val_split
            ),
        };
        let settings = &train_settings;
        let cancel = &cancel;
        let resume = args.resume;
        let device = &device;
        let worker = std::thread::Builder::new()
            .name("crossclr-train".into())
            .spawn_scoped(scope, move || {
                train(
                    settings,
                    &train_view,
                    &val_view,
                    device,
                    &mut store,
                    &events,
                    cancel,
                    resume,
                )
            })?;
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}, {eta} left)",
            )?
            .progress_chars("=> "),
        );
        for event in receiver {
            match event {
                TrainEvent::Started {
                    first_epoch,
                    epochs,
                    steps_per_epoch,
                    parameters,
                } => {
                    bar.suspend(|| println!(
                        "run `{name}` · {} head, {parameters} parameters · {} loss · {train_videos} train videos, {val_videos} selection videos ({selection}) · {steps_per_epoch} steps per epoch{}",
                        settings.head.kind,
                        settings.loss.kind,
                        if first_epoch > 0 { format!(" · resuming at epoch {}", first_epoch + 1) } else { String::new() },
                    ));
                    bar.set_length(steps_per_epoch as u64);
                    bar.set_prefix(format!("epoch {}/{epochs}", first_epoch + 1));
                }
                TrainEvent::Step {
                    epoch,
                    step,
                    steps,
                    loss,
                    lr,
                } => {
                    bar.set_prefix(format!("epoch {}/{}", epoch + 1, settings.epochs));
                    bar.set_length(steps as u64);
                    bar.set_position(step as u64);
                    bar.set_message(format!("loss {loss:.4} lr {lr:.2e}"));
                }
                TrainEvent::Validating { epoch } => {
                    bar.set_message(format!("validating epoch {}", epoch + 1));
                }
                TrainEvent::Epoch(record) => {
                    // Printed beside the bar, not through it: a hidden bar (output not a
                    // terminal) would swallow the line.
                    bar.suspend(|| println!("{}", epoch_line(&record)));
                    bar.set_position(0);
                }
            }
        }
        bar.finish_and_clear();
        worker
            .join()
            .map_err(|_| anyhow::anyhow!("the training thread panicked"))?
            .map_err(anyhow::Error::from)
    })?;
    let mut out = std::io::stdout().lock();
    match outcome {
        Outcome::Completed => writeln!(
            out,
            "done: best checkpoint {} (metrics in {})",
            files.checkpoint().display(),
            files.metrics().display()
        )?,
        Outcome::Cancelled { epoch, next_batch } => writeln!(
            out,
            "stopped at epoch {}, step {next_batch}; the state is saved in {}: continue with `crossclr train {} --run {name} --resume`",
            epoch + 1,
            files.state().display(),
            args.project.display()
        )?,
    }
    Ok(())
}
