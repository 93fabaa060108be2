//! `crossclr new DIR --features F.safetensors` or `crossclr new DIR --coot meta_all.json
//! --video-h5 V.h5 --text-h5 T.h5 --sentence-splits S.json`: makes a project from precomputed
//! features.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{ArgGroup, Args};
use indicatif::{ProgressBar, ProgressStyle};

use crate::project::config::{ProjectConfig, SourceKind};
use crate::project::coot::{CootPaths, import_coot};
use crate::project::import::{Import, import_features};

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["features", "coot"])))]
pub struct NewArgs {
    /// The project directory to create; it must be missing or empty.
    pub dir: PathBuf,
    /// Safetensors file with, per split S: `S/video` (N×T×Dv with `S/video_frames`, or N×Dv),
    /// `S/text` (N×L×Dt with `S/text_tokens`, or N×Dt) and `S/video_of_clip` (N).
    #[arg(long, value_name = "FILE")]
    pub features: Option<PathBuf>,
    /// COOT's meta_all.json (needs --video-h5, --text-h5 and --sentence-splits).
    #[arg(
        long,
        value_name = "META_ALL_JSON",
        requires_all = ["video_h5", "text_h5", "sentence_splits"]
    )]
    pub coot: Option<PathBuf>,
    /// COOT frame features: one frames × Dv dataset per data_key.
    #[arg(long, value_name = "FILE", requires = "coot")]
    pub video_h5: Option<PathBuf>,
    /// COOT paragraph token features: one tokens × Dt dataset per video key.
    #[arg(long, value_name = "FILE", requires = "coot")]
    pub text_h5: Option<PathBuf>,
    /// COOT's _sentence_splits.json: per video key, the token count of each sentence.
    #[arg(long, value_name = "FILE", requires = "coot")]
    pub sentence_splits: Option<PathBuf>,
    /// Most frames kept per clip when importing COOT data (longer clips are sampled evenly);
    /// recorded as model.max_frames. Default: 80.
    #[arg(long, value_name = "N", requires = "coot")]
    pub max_frames: Option<usize>,
    /// Project name (default: the directory's name).
    #[arg(long)]
    pub name: Option<String>,
}

pub fn run(args: &NewArgs) -> Result<()> {
    let mut config = ProjectConfig::default();
    if let Some(name) = &args.name {
        config.project.name = name.clone();
    }
    let import = if let Some(features) = &args.features {
        config.source.kind = SourceKind::Features;
        config.source.features = Some(recorded(features));
        import_features(features)?
    } else {
        let paths = coot_paths(args)?;
        if let Some(max_frames) = args.max_frames {
            config.model.max_frames = max_frames;
        }
        config.source.kind = SourceKind::Coot;
        config.source.coot_meta = Some(recorded(&paths.meta));
        config.source.video_h5 = Some(recorded(&paths.video_h5));
        config.source.text_h5 = Some(recorded(&paths.text_h5));
        config.source.sentence_splits = Some(recorded(&paths.sentence_splits));
        let bar = ProgressBar::new(0).with_style(
            ProgressStyle::with_template("importing {bar:30} {pos}/{len} videos {eta}")
                .context("progress bar template")?,
        );
        let import = import_coot(&paths, config.model.max_frames, &mut |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        });
        bar.finish_and_clear();
        import?
    };
    import.configure(&mut config);
    let project = import
        .write(&args.dir, config)
        .with_context(|| format!("cannot create the project in {}", args.dir.display()))?;
    let mut out = std::io::stdout().lock();
    print_summary(
        &mut out,
        &project.dir().display().to_string(),
        project.config(),
        &import,
    )?;
    Ok(())
}

fn coot_paths(args: &NewArgs) -> Result<CootPaths> {
    // clap's `requires_all` guarantees the companions of --coot; this only turns that into types.
    let missing = |flag: &str| anyhow::anyhow!("--coot needs {flag}");
    Ok(CootPaths {
        meta: args.coot.clone().ok_or_else(|| missing("--coot"))?,
        video_h5: args.video_h5.clone().ok_or_else(|| missing("--video-h5"))?,
        text_h5: args.text_h5.clone().ok_or_else(|| missing("--text-h5"))?,
        sentence_splits: args
            .sentence_splits
            .clone()
            .ok_or_else(|| missing("--sentence-splits"))?,
    })
}

/// Source paths are recorded absolute, so the record still means something from another
/// working directory.
fn recorded(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

fn print_summary(
    out: &mut impl Write,
    dir: &str,
    config: &ProjectConfig,
    import: &Import,
) -> std::io::Result<()> {
    let kind = match config.source.kind {
        SourceKind::Features => "features",
        SourceKind::Coot => "coot",
        SourceKind::Videos => "videos",
    };
    let head = match config.model.head {
        crate::project::config::Head::Mlp => "mlp",
        crate::project::config::Head::Coot => "coot",
    };
    writeln!(
        out,
        "created {dir} · project {:?} · source {kind} · head {head}",
        config.project.name
    )?;
    writeln!(
        out,
        "  {:<10} {:>8} {:>8} {:>10} {:>10}",
        "split", "clips", "videos", "frames", "tokens"
    )?;
    for split in &import.splits {
        writeln!(
            out,
            "  {:<10} {:>8} {:>8} {:>10} {:>10}",
            split.split,
            split.num_clips(),
            split.num_videos(),
            split.video.total_rows(),
            split.text.total_rows()
        )?;
    }
    writeln!(
        out,
        "  video features {} wide · text features {} wide · at most {} frames per clip",
        import.video_dim().unwrap_or(0),
        import.text_dim().unwrap_or(0),
        import.max_frames_per_clip()
    )?;
    if import.skipped.is_empty() {
        writeln!(
            out,
            "imported {} clips of {} videos; nothing skipped",
            import.num_clips(),
            import.num_videos()
        )?;
    } else {
        writeln!(
            out,
            "imported {} clips of {} videos; skipped {}:",
            import.num_clips(),
            import.num_videos(),
            import.skipped.len()
        )?;
        for skipped in &import.skipped {
            writeln!(out, "  skipped {skipped}")?;
        }
    }
    Ok(())
}
