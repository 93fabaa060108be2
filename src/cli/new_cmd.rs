//! `crossclr new DIR --features F.safetensors`, `crossclr new DIR --coot meta_all.json
//! --video-h5 V.h5 --text-h5 T.h5 --sentence-splits S.json` (projects from precomputed
//! features) or `crossclr new DIR --videos V/ --captions C` (a project of videos and captions,
//! encoded later by `crossclr ingest`).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{ArgGroup, Args};
use indicatif::{ProgressBar, ProgressStyle};

use crate::project::config::{ProjectConfig, SourceKind};
use crate::project::coot::CootPaths;
use crate::project::create::{Imported, NewProject, NewSource, create_project, describe_entry};
use crate::project::import::Import;
use crate::project::videos::{SplitFractions, VideoImport};

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["features", "coot", "videos"])))]
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
    /// Folder of video files (searched recursively) named by the captions (needs --captions).
    #[arg(long, value_name = "FOLDER", requires = "captions")]
    pub videos: Option<PathBuf>,
    /// Captions of the videos: CSV (video,caption[,start,end]), JSON Lines ({"video",
    /// "caption", "start", "end", "split"} per line), MSR-VTT's videodatainfo JSON or YouCook2's
    /// annotations JSON.
    #[arg(long, value_name = "FILE", requires = "videos")]
    pub captions: Option<PathBuf>,
    /// Seed of the split by video, for videos whose split the captions do not give.
    #[arg(
        long,
        value_name = "S",
        requires = "videos",
        value_parser = clap::value_parser!(u64).range(..=i64::MAX as u64)
    )]
    pub split_seed: Option<u64>,
    /// Fraction of those videos put in `val`. Default: 0.1.
    #[arg(long, value_name = "F", requires = "videos")]
    pub val_fraction: Option<f64>,
    /// Fraction of those videos put in `test`. Default: 0.1.
    #[arg(long, value_name = "F", requires = "videos")]
    pub test_fraction: Option<f64>,
    /// Project name (default: the directory's name).
    #[arg(long)]
    pub name: Option<String>,
}

pub fn run(args: &NewArgs) -> Result<()> {
    let source = if let (Some(videos), Some(captions)) = (&args.videos, &args.captions) {
        let defaults = SplitFractions::default();
        let fractions = SplitFractions {
            seed: args.split_seed.unwrap_or(defaults.seed),
            val: args.val_fraction.unwrap_or(defaults.val),
            test: args.test_fraction.unwrap_or(defaults.test),
        };
        fractions
            .check()
            .map_err(|e| anyhow::anyhow!("--val-fraction/--test-fraction: {e}"))?;
        NewSource::Videos {
            videos: videos.clone(),
            captions: captions.clone(),
            fractions,
        }
    } else if let Some(features) = &args.features {
        NewSource::Features(features.clone())
    } else {
        NewSource::Coot {
            paths: coot_paths(args)?,
            max_frames: args.max_frames,
        }
    };
    let request = NewProject {
        dir: args.dir.clone(),
        name: args.name.clone(),
        source,
    };
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("importing {bar:30} {pos}/{len} videos {eta}")
            .context("progress bar template")?,
    );
    let created = create_project(&request, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    });
    bar.finish_and_clear();
    let created =
        created.with_context(|| format!("cannot create the project in {}", args.dir.display()))?;
    let dir = created.project.dir().display().to_string();
    let config = created.project.config();
    let mut out = std::io::stdout().lock();
    match &created.imported {
        Imported::Features(import) => print_summary(&mut out, &dir, config, import)?,
        Imported::Videos(import) => {
            let split_flags = args.split_seed.is_some()
                || args.val_fraction.is_some()
                || args.test_fraction.is_some();
            print_video_summary(&mut out, &dir, config, import, split_flags)?
        }
    }
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
    let head = config.model.head;
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

/// How many names of a long list (missing videos, uncaptioned files, bad entries) are printed.
const SHOWN: usize = 5;

fn print_video_summary(
    out: &mut impl Write,
    dir: &str,
    config: &ProjectConfig,
    import: &VideoImport,
    split_flags: bool,
) -> std::io::Result<()> {
    let source = &config.source;
    writeln!(
        out,
        "created {dir} · project {:?} · source videos",
        config.project.name
    )?;
    writeln!(
        out,
        "  captions {} ({}): {} read, {} entries skipped",
        source.captions.as_deref().unwrap_or(""),
        import.format,
        import.captions_read,
        import.caption_problems.len()
    )?;
    writeln!(
        out,
        "  videos   {}: {} files, {} with captions",
        source.videos.as_deref().unwrap_or(""),
        import.video_files,
        import.video_files - import.uncaptioned.len()
    )?;
    writeln!(out, "  {:<10} {:>8} {:>8}", "split", "clips", "videos")?;
    for (split, clips, videos) in import.split_counts() {
        writeln!(out, "  {split:<10} {clips:>8} {videos:>8}")?;
    }
    match import.seeded {
        None => {
            writeln!(out, "  splits as the captions file gives them")?;
            if split_flags {
                writeln!(
                    out,
                    "  (--split-seed, --val-fraction and --test-fraction were not needed: the \
                     file gives every video's split)"
                )?;
            }
        }
        Some(f) => writeln!(
            out,
            "  {} videos split by seed {} (val {}, test {}){}",
            import
                .split_counts()
                .iter()
                .map(|(_, _, videos)| videos)
                .sum::<usize>()
                - import.videos_with_given_split,
            f.seed,
            f.val,
            f.test,
            if import.videos_with_given_split > 0 {
                format!(
                    "; {} as the captions file gives",
                    import.videos_with_given_split
                )
            } else {
                String::new()
            }
        )?,
    }
    if !import.ignored_columns.is_empty() {
        writeln!(
            out,
            "  ignored CSV columns: {}",
            import.ignored_columns.join(", ")
        )?;
    }
    let problems = import.caption_problems.len() + import.clip_problems.len();
    let skipped = problems
        + import.missing.iter().map(|m| m.captions).sum::<usize>()
        + import.uncaptioned.len()
        + import.unnamed_files;
    if skipped == 0 {
        writeln!(out, "made {} clips; nothing skipped", import.num_clips())?;
    } else {
        writeln!(out, "made {} clips; skipped:", import.num_clips())?;
        if problems > 0 {
            writeln!(out, "  {problems} bad caption entries:")?;
            for problem in import
                .caption_problems
                .iter()
                .chain(&import.clip_problems)
                .take(SHOWN)
            {
                let file = short_name(source.captions.as_deref());
                writeln!(out, "    {}", describe_entry(&file, problem))?;
            }
            if problems > SHOWN {
                writeln!(out, "    … and {} more", problems - SHOWN)?;
            }
        }
        if !import.missing.is_empty() {
            writeln!(
                out,
                "  {} captions of {} videos not in the folder: {}",
                import.missing.iter().map(|m| m.captions).sum::<usize>(),
                import.missing.len(),
                first_few(
                    import.missing.iter().map(|m| m.key.as_str()),
                    import.missing.len()
                )
            )?;
        }
        if !import.uncaptioned.is_empty() {
            writeln!(
                out,
                "  {} video files without captions: {}",
                import.uncaptioned.len(),
                first_few(
                    import.uncaptioned.iter().map(String::as_str),
                    import.uncaptioned.len()
                )
            )?;
        }
        if import.unnamed_files > 0 {
            writeln!(
                out,
                "  {} video files whose path is not UTF-8 (no caption can name them)",
                import.unnamed_files
            )?;
        }
    }
    writeln!(
        out,
        "next: `crossclr ingest {dir}` decodes the videos and encodes the captions"
    )
}

/// The file name of a recorded path, to prefix problem lines without the whole path.
fn short_name(path: Option<&str>) -> String {
    path.map(Path::new)
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn first_few<'a>(names: impl Iterator<Item = &'a str>, total: usize) -> String {
    let shown: Vec<&str> = names.take(SHOWN).collect();
    if total > shown.len() {
        format!("{}, …", shown.join(", "))
    } else {
        shown.join(", ")
    }
}
