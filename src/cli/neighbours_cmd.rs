//! `crossclr neighbours DIR --key KEY`: the clips nearest to one clip, in input or joint space
//! (`analysis::neighbours`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::analysis_common::{cancel_token, run_or_latest};
use crate::analysis::neighbours::neighbours;
use crate::analysis::samples::{Modality, Space};
use crate::project::{Project, RunName};

#[derive(Debug, Args)]
pub struct NeighboursArgs {
    /// The project directory.
    pub project: PathBuf,
    /// The clip whose neighbours to list.
    #[arg(long)]
    pub key: String,
    /// The encoders' pooled features, or the run's joint embeddings.
    #[arg(long, value_enum, default_value_t = Space::Input)]
    pub space: Space,
    /// Compare the clips' videos or their captions.
    #[arg(long, value_enum, default_value_t = Modality::Video)]
    pub modality: Modality,
    /// The run for joint space (default: the last one trained).
    #[arg(long)]
    pub run: Option<RunName>,
    /// How many neighbours to list (at least 1).
    #[arg(long, default_value_t = 10, value_parser = super::analysis_common::parse_top)]
    pub top: u64,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &NeighboursArgs) -> Result<()> {
    let project = Project::open(&args.project)?;
    let cancel = cancel_token()?;
    let run = run_or_latest(&project, &args.run)?;
    let top = usize::try_from(args.top).unwrap_or(usize::MAX);
    let report = neighbours(
        &project,
        run.as_ref(),
        &args.key,
        args.space,
        args.modality,
        top,
        &cancel,
    )?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
        return Ok(());
    }
    let space = match &report.run {
        Some(run) => format!("joint space of run `{run}`"),
        None => "input space".to_string(),
    };
    writeln!(
        out,
        "neighbours of {} ({}, {space})",
        report.key, report.modality
    )?;
    for (rank, n) in report.results.iter().enumerate() {
        writeln!(
            out,
            "  {:>2}. {:.3}  {} ({}) — {}",
            rank + 1,
            n.score,
            n.key,
            n.split,
            n.caption.as_deref().unwrap_or("")
        )?;
    }
    Ok(())
}
