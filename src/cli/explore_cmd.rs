//! `crossclr explore DIR [--run NAME]`: the explorer window on a project.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

#[cfg(feature = "explorer")]
use crate::app::{Launch, Startup};
use crate::project::RunName;

/// What a window-opening command says when this binary has no explorer compiled in.
#[cfg(not(feature = "explorer"))]
pub(super) const NO_EXPLORER: &str = "this crossclr was built without the explorer (cargo \
     feature `explorer`, on by default), so no window can open; the headless commands (search, \
     eval, map --png, export) work as usual";

#[derive(Debug, Args)]
pub struct ExploreArgs {
    /// The project directory.
    pub project: PathBuf,
    /// The run whose embeddings to show (default: the last one trained; without any run, the
    /// input features).
    #[arg(long)]
    pub run: Option<RunName>,
    /// t-SNE iterations of each layout.
    #[arg(long, value_name = "N")]
    pub iters: Option<usize>,
    /// Save a PNG of the window once the map is laid out and its thumbnails are in, then close
    /// (also `CROSSCLR_SCREENSHOT`).
    #[arg(long, value_name = "FILE")]
    pub screenshot: Option<PathBuf>,
}

#[cfg(not(feature = "explorer"))]
pub fn run(_args: &ExploreArgs) -> Result<()> {
    Err(anyhow::anyhow!(NO_EXPLORER))
}

#[cfg(feature = "explorer")]
pub fn run(args: &ExploreArgs) -> Result<()> {
    let mut launch = Launch::new(Startup::Project {
        dir: args.project.clone(),
        run: args.run.clone(),
    });
    if let Some(iters) = args.iters {
        launch.tsne_iterations = iters;
    }
    if let Some(path) = &args.screenshot {
        launch.screenshot = Some(path.clone());
    }
    crate::app::run(launch)?;
    Ok(())
}
