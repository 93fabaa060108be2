//! `crossclr synth DIR --kind duplicates`: a project of synthetic features with planted structure.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};

use crate::synth::{SynthConfig, write_project};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SynthKind {
    /// Latent topics shared by many clips (semantic duplicates) seen through noisy video and text views.
    Duplicates,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SynthSize {
    /// 240 videos, 48/40-d features: trains in seconds.
    Small,
    /// 1500 videos, 256/192-d noisy features with near-duplicate clips: the benchmark's size.
    Large,
}

#[derive(Debug, Args)]
pub struct SynthArgs {
    /// The project directory to create (missing or empty).
    pub project: PathBuf,
    #[arg(long, value_enum, default_value = "duplicates")]
    pub kind: SynthKind,
    #[arg(long, value_enum, default_value = "small")]
    pub size: SynthSize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

pub fn run(args: &SynthArgs) -> Result<()> {
    let synth = match args.size {
        SynthSize::Small => SynthConfig::small(args.seed),
        SynthSize::Large => SynthConfig::large(args.seed),
    };
    let SynthKind::Duplicates = args.kind;
    let project = write_project(&args.project, &synth, synth.suggested_settings())?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "wrote {} (synthetic, {} topics)",
        project.dir().display(),
        synth.topics
    )?;
    for split in project.splits()? {
        let features = project.load_split(&split)?;
        writeln!(
            out,
            "  {split:<6} {:>5} videos {:>6} clips · {}-d frames, {}-d tokens",
            features.num_videos(),
            features.num_clips(),
            features.video.dim,
            features.text.dim
        )?;
    }
    Ok(())
}
