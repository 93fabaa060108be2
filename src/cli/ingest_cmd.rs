//! `crossclr ingest DIR [--shard i/n]`: frames and captions of a videos project → features.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::encode::{TextEncoder, VisualEncoder};
use crate::ingest::{IngestOptions, IngestReport, IngestStage, Shard, choose_encoders, ingest};
use crate::jobs::{CancelToken, progress_channel, spawn_named};
use crate::project::Project;
use crate::project::config::SourceKind;

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// The project directory (made by `crossclr new DIR --videos .. --captions ..`).
    pub project: PathBuf,
    /// Only videos i, i+n, i+2n, … (in key order), e.g. `--shard 0/4`; staged, not merged. A
    /// later run without --shard merges what every shard staged.
    #[arg(long, value_name = "i/n")]
    pub shard: Option<Shard>,
    /// Visual encoder: `descriptor` (built in) or `clip:<folder>`. Default: the project's, else
    /// descriptor.
    #[arg(long)]
    pub visual: Option<String>,
    /// Text encoder: `minilm`, `minilm:<folder>`, `bert:<folder>`, `hashed` or `hashed:<dim>`.
    /// Default: the project's, else minilm when its folder is installed, else hashed.
    #[arg(long)]
    pub text: Option<String>,
    /// Frames sampled evenly from each clip: 1 to 256 (every frame is a stored feature row; the
    /// heads attend over at most model.max_frames of them, 80 by default), and never more than
    /// the clip holds (its length × the frame rate).
    #[arg(long, default_value_t = 8)]
    pub frames_per_clip: usize,
    /// Decoding threads (default: one per core).
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// Skip the clip thumbnails.
    #[arg(long)]
    pub no_thumbnails: bool,
    /// Forget what earlier runs staged and encode everything again.
    #[arg(long)]
    pub restart: bool,
}

pub fn run(args: &IngestArgs) -> Result<()> {
    let mut project = Project::open(&args.project)?;
    if project.config().source.kind != SourceKind::Videos {
        anyhow::bail!(
            "{}: the project was made from precomputed features; only projects made with `crossclr new DIR --videos .. --captions ..` are ingested",
            args.project.display()
        );
    }
    let encoders = choose_encoders(
        &project.config().encoders,
        args.visual.as_deref(),
        args.text.as_deref(),
    )?;
    if let Some(note) = &encoders.note {
        eprintln!("note: {note}");
    }
    let (visual, text) = (encoders.visual, encoders.text);
    let options = IngestOptions {
        frames_per_clip: args.frames_per_clip,
        shard: args.shard,
        workers: args.workers,
        thumbnails: !args.no_thumbnails,
        restart: args.restart,
    };
    let cancel = crate::process::interrupt_token()?;
    let report = ingest_with_progress(&mut project, &*visual, &*text, &options, &cancel)?;
    print_report(
        &args.project.display().to_string(),
        &report,
        args.frames_per_clip,
        &*visual,
        &*text,
    );
    if report.cancelled {
        anyhow::bail!("stopped; run the same command again to go on where it stopped");
    }
    Ok(())
}

/// Runs the ingest on this thread with a progress bar fed from a bounded channel.
fn ingest_with_progress(
    project: &mut Project,
    visual: &dyn VisualEncoder,
    text: &dyn TextEncoder,
    options: &IngestOptions,
    cancel: &CancelToken,
) -> Result<IngestReport> {
    let (sender, receiver) = progress_channel::<crate::ingest::IngestProgress>(64);
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("ingest {bar:30} {pos}/{len} videos {msg} [{elapsed}<{eta}]")
            .expect("a valid template"),
    );
    let bar_for_thread = bar.clone();
    let painter = spawn_named("ingest-progress", move || {
        for update in receiver {
            match update.stage {
                // Decoding runs ahead of encoding; the bar follows the videos fully staged.
                IngestStage::Frames | IngestStage::Merge => continue,
                IngestStage::Features => {
                    bar_for_thread.set_length(update.total as u64);
                    bar_for_thread.set_position(update.done as u64);
                    if let Some(error) = update.error {
                        bar_for_thread.println(format!("skipped {}: {error}", update.video));
                    }
                }
                IngestStage::Thumbnails => {
                    bar_for_thread
                        .set_message(format!("· thumbnails {}/{}", update.done, update.total));
                    if let Some(error) = update.error {
                        bar_for_thread
                            .println(format!("no thumbnails for {}: {error}", update.video));
                    }
                }
            }
        }
    })?;
    let report = ingest(project, visual, text, options, cancel, Some(&sender));
    drop(sender);
    let _ = painter.join();
    bar.finish_and_clear();
    Ok(report?)
}

fn print_report(
    dir: &str,
    report: &IngestReport,
    frames_per_clip: usize,
    visual: &dyn VisualEncoder,
    text: &dyn TextEncoder,
) {
    println!(
        "{dir}: {} videos · {} encoded now, {} staged before, {} failed · {} thumbnails · {:.1} s",
        report.videos,
        report.encoded,
        report.reused,
        report.failed.len(),
        report.thumbnails,
        report.seconds
    );
    println!(
        "  encoders: video {} ({}-d), text {} ({}-d)",
        visual.name(),
        visual.dim(),
        text.name(),
        text.dim()
    );
    if report.temporaries_removed > 0 {
        println!(
            "  removed {} temporary files an interrupted run left behind",
            report.temporaries_removed
        );
    }
    if !report.manifest_problems.is_empty() {
        println!(
            "  {} lines of manifest.jsonl skipped (the other lines are ingested):",
            report.manifest_problems.len()
        );
        for problem in &report.manifest_problems {
            println!("    manifest.jsonl:{}: {}", problem.line, problem.reason);
        }
    }
    for (video, reason) in &report.failed {
        println!("  skipped {video}: {reason}");
    }
    if !report.clip_notes.is_empty() {
        let skipped = report.clip_notes.iter().filter(|n| n.skipped).count();
        println!(
            "  {} clips do not fit their video's duration: {skipped} skipped, {} cut to its end:",
            report.clip_notes.len(),
            report.clip_notes.len() - skipped
        );
        const SHOWN: usize = 20;
        for note in report.clip_notes.iter().take(SHOWN) {
            println!("    {note}");
        }
        if report.clip_notes.len() > SHOWN {
            println!("    … and {} more", report.clip_notes.len() - SHOWN);
        }
    }
    if report.frames_capped > 0 {
        println!(
            "  {} clips hold fewer frames than --frames-per-clip {}: each got one per frame it holds",
            report.frames_capped, frames_per_clip
        );
    }
    match &report.merged {
        Some(splits) => {
            for (split, clips, videos) in splits {
                println!("  features/{split}.safetensors: {clips} clips of {videos} videos");
            }
            if !report.missing.is_empty() {
                println!(
                    "  {} videos have no features and are left out: {}",
                    report.missing.len(),
                    report
                        .missing
                        .iter()
                        .take(5)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        None if !report.cancelled => println!(
            "  shard staged; run `crossclr ingest {dir}` without --shard once every shard is done to merge"
        ),
        None => {}
    }
}
