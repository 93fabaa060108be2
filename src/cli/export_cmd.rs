//! `crossclr export DIR --format parquet|projector --out PATH`: a run's clip embeddings and what
//! the analysis knows about each clip, for pandas/pyarrow/polars or the Embedding Projector
//! (`analysis::export`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use super::analysis_common::{bar, cancel_token, update};
use crate::analysis::export::{ClipTable, write_parquet, write_projector};
use crate::project::{Project, RunName};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// One Parquet file, one row per clip.
    Parquet,
    /// A folder for TensorBoard's Embedding Projector.
    Projector,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The project directory.
    pub project: PathBuf,
    /// The run whose embeddings to export (default: the last one trained).
    #[arg(long)]
    pub run: Option<RunName>,
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// The Parquet file, or the projector's folder.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: &ExportArgs) -> Result<()> {
    let project = Project::open(&args.project)?;
    let cancel = cancel_token()?;
    let run = match &args.run {
        Some(run) => run.clone(),
        None => project
            .latest_run()
            .context("export writes a run's embeddings")?,
    };
    let progress = bar("degrees", "row blocks");
    let table = ClipTable::build(&project, &run, &mut update(&progress), &cancel)?;
    progress.finish_and_clear();
    let mut out = std::io::stdout().lock();
    let map = if table.layout.is_some() {
        "with map x/y"
    } else {
        "no map (run `crossclr map` for x/y)"
    };
    match args.format {
        ExportFormat::Parquet => {
            write_parquet(&table, &args.out)?;
            writeln!(
                out,
                "wrote {} clips of run `{run}` ({}-d embeddings, {map}; degrees from {}) to {}",
                table.len(),
                table.video_embedding.cols,
                table.graph_source,
                args.out.display()
            )?;
        }
        ExportFormat::Projector => {
            let report = write_projector(&table, project.dir(), &args.out)?;
            let sprite = match (report.tile, report.shrunk) {
                (Some(tile), true) => format!("sprite of {tile}px tiles (shrunk to fit 8192×8192)"),
                (Some(tile), false) => format!("sprite of {tile}px tiles"),
                (None, _) => {
                    "no sprite (no thumbnails cached; `crossclr ingest` makes them)".to_string()
                }
            };
            writeln!(
                out,
                "wrote {} points × {} of run `{run}` to {} ({sprite}; {} without a thumbnail){}",
                report.points,
                report.dim,
                args.out.display(),
                report.missing_thumbnails,
                if report.points > 100_000 {
                    "; the projector shows at most 100,000 points"
                } else {
                    ""
                }
            )?;
        }
    }
    Ok(())
}
