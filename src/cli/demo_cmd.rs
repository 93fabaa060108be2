//! `crossclr demo DIR`: the demo project (`crate::demo`) with progress bars; `crossclr` with no
//! arguments makes it once in the user's data directory and then shows what the model does.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::eval_cmd::evaluate_and_print;
use super::search_cmd::print_hits;
use super::train_cmd::TrainPrinter;
use crate::analysis::SearchIndex;
use crate::analysis::demo_queries::{TOP, colour_shape_queries};
#[cfg(feature = "explorer")]
use crate::app::{Launch, Startup};
use crate::demo::{DEMO_RUN, DemoEvent, DemoSettings, default_demo_dir, make_demo};
use crate::ingest::IngestStage;
use crate::jobs::progress_channel;
use crate::model::DeviceKind;
use crate::project::{Project, RunName};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to write the demo: DIR/collection (videos and captions) and DIR/project.
    pub dir: PathBuf,
    /// Seed of the collection and of training.
    #[arg(long, default_value_t = DemoSettings::default().seed)]
    pub seed: u64,
    /// Number of videos (3–5 clips each).
    #[arg(long, default_value_t = DemoSettings::default().videos)]
    pub videos: usize,
    /// Training epochs.
    #[arg(long, default_value_t = DemoSettings::default().epochs)]
    pub epochs: usize,
    /// Then search "a <colour> <shape>" for every pair the captions hold and print how many
    /// find their clips among the best five (the demo's promise, measured).
    #[arg(long)]
    pub check: bool,
}

pub fn run(args: &DemoArgs) -> Result<()> {
    let settings = DemoSettings {
        seed: args.seed,
        videos: args.videos,
        epochs: args.epochs,
    };
    let project_dir = demo_with_progress(&args.dir, settings)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "demo project ready: {}", project_dir.display())?;
    if args.check {
        let project = Project::open(&project_dir)?;
        let index = SearchIndex::open(&project, &RunName::new(DEMO_RUN)?)?;
        let report = colour_shape_queries(&project, &index)?;
        for pair in &report.pairs {
            writeln!(
                out,
                "  {:<24} found {} in the top {TOP} (needed {}, of {} clips){}",
                format!("{:?}", pair.query),
                pair.found,
                pair.needed,
                pair.clips,
                if pair.passed() { "" } else { "  ✗" }
            )?;
        }
        writeln!(
            out,
            "colour × shape queries: {} of {} pairs ({:.0}%) find min(3, their clips) in the top {TOP}",
            report.passed(),
            report.pairs.len(),
            100.0 * report.share()
        )?;
    }
    Ok(())
}

/// Makes the demo on a named thread while this one shows each step's progress.
fn demo_with_progress(dir: &Path, settings: DemoSettings) -> Result<PathBuf> {
    let cancel = crate::process::interrupt_token()?;
    let (events, receiver) = progress_channel(64);
    std::thread::scope(|scope| {
        let cancel_for_job = cancel.clone();
        let worker = std::thread::Builder::new()
            .name("crossclr-demo".into())
            .spawn_scoped(scope, move || {
                make_demo(dir, settings, &events, &cancel_for_job)
            })?;
        let mut printed = Ok(());
        let mut view = DemoView::new()?;
        for event in receiver {
            if printed.is_ok() {
                printed = view.show(event);
                if printed.is_err() {
                    cancel.cancel();
                }
            }
        }
        view.finish();
        let project = worker
            .join()
            .map_err(|_| anyhow::anyhow!("the demo thread panicked"))??;
        printed?;
        Ok(project)
    })
}

struct DemoView {
    bar: ProgressBar,
    train: Option<TrainPrinter>,
    already_trained: bool,
}

impl DemoView {
    fn new() -> Result<Self> {
        let bar = ProgressBar::new(0).with_style(
            ProgressStyle::with_template("{prefix} {bar:30} {pos}/{len} videos [{elapsed}<{eta}]")
                .context("progress bar template")?,
        );
        Ok(Self {
            bar,
            train: None,
            already_trained: false,
        })
    }

    fn line(&self, text: String) -> std::io::Result<()> {
        self.bar
            .suspend(|| writeln!(std::io::stdout().lock(), "{text}"))
    }

    fn show(&mut self, event: DemoEvent) -> std::io::Result<()> {
        match event {
            DemoEvent::Rendering(progress) => {
                self.bar.set_prefix("render");
                self.bar.set_length(progress.total as u64);
                self.bar.set_position(progress.done as u64);
            }
            DemoEvent::Rendered {
                folder,
                videos,
                clips,
                seconds,
            } => {
                self.bar.reset();
                self.line(format!(
                    "demo: {videos} videos, {clips} clips rendered in {} ({seconds:.1} s)",
                    folder.display()
                ))?;
            }
            DemoEvent::Note(note) => self.bar.suspend(|| eprintln!("note: {note}")),
            DemoEvent::Ingesting(progress) => {
                let stage = progress.stage;
                if matches!(stage, IngestStage::Frames | IngestStage::Merge) {
                    return Ok(());
                }
                self.bar.set_prefix(if stage == IngestStage::Thumbnails {
                    "thumbnails"
                } else {
                    "ingest"
                });
                self.bar.set_length(progress.total as u64);
                self.bar.set_position(progress.done as u64);
                if let Some(error) = progress.error {
                    self.line(format!("skipped {}: {error}", progress.video))?;
                }
            }
            DemoEvent::Ingested {
                visual,
                text,
                seconds,
            } => {
                self.bar.finish_and_clear();
                self.line(format!(
                    "demo: ingested with {visual} and {text} ({seconds:.1} s)"
                ))?;
            }
            DemoEvent::Training(summary) => self.train = Some(TrainPrinter::new(*summary)),
            DemoEvent::Train(event) => {
                if let Some(train) = &mut self.train {
                    train.show(event)?;
                }
            }
            DemoEvent::AlreadyTrained => {
                self.already_trained = true;
                self.line(format!("demo: run `{DEMO_RUN}` is trained already"))?;
            }
            DemoEvent::Trained { seconds } => {
                if let Some(train) = &self.train {
                    train.finish();
                }
                if !self.already_trained {
                    self.line(format!("demo: trained ({seconds:.1} s in all)"))?;
                }
            }
        }
        Ok(())
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
        if let Some(train) = &self.train {
            train.finish();
        }
    }
}

/// What `crossclr` with no arguments does: the explorer on the demo (which it makes on first
/// start, with a progress bar). Where no window can open — no display, or no GPU adapter for
/// wgpu — it says so in one line and shows the headless summary instead.
pub fn main_job() -> Result<()> {
    let dir =
        default_demo_dir().context("no data directory on this system; set CROSSCLR_DATA_DIR")?;
    match open_demo_window(&dir) {
        Ok(()) => return Ok(()),
        Err(error) => eprintln!("{error:#}; showing the demo's summary instead"),
    }
    headless_summary(&dir)
}

#[cfg(feature = "explorer")]
fn open_demo_window(dir: &Path) -> Result<()> {
    Ok(crate::app::run(Launch::new(Startup::Demo(
        dir.to_path_buf(),
    )))?)
}

#[cfg(not(feature = "explorer"))]
fn open_demo_window(_dir: &Path) -> Result<()> {
    Err(anyhow::anyhow!(super::explore_cmd::NO_EXPLORER))
}

/// The demo (made on first run), its retrieval table, and a few typed searches.
fn headless_summary(dir: &Path) -> Result<()> {
    let project_dir = demo_with_progress(dir, DemoSettings::default())?;
    let project = Project::open(&project_dir)?;
    let run = RunName::new(DEMO_RUN)?;
    evaluate_and_print(&project, &run, None, DeviceKind::Cpu, false)?;
    let mut out = std::io::stdout().lock();
    let index = SearchIndex::open(&project, &run)?;
    for query in [
        "a small red circle drifts left",
        "a big blue square spinning",
        "a yellow star that grows",
    ] {
        let hits = index.search(query, 3)?;
        print_hits(&mut out, query, &hits)?;
    }
    Ok(())
}
