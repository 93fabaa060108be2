//! `crossclr eval DIR [--run NAME] [--split S]`: a trained run's retrieval metrics at both levels,
//! and its embeddings written beside it; `crossclr eval --similarity S.safetensors`: the metrics
//! of a raw similarity matrix.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use super::setup_run::{RunFiles, device, embed_split, load_run_head, load_split};
use super::tensor_file::TensorFile;
use crate::eval::{RetrievalMetrics, Similarity, TiePolicy};
use crate::project::{Project, write_safetensors_atomic};
use crate::train::retrieval;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TiesArg {
    /// A candidate scoring as high as the true match ranks above it.
    Pessimistic,
    /// Only strictly higher scores rank above the true match.
    Optimistic,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A project directory: evaluate one of its runs.
    #[arg(required_unless_present = "similarity", conflicts_with = "similarity")]
    pub project: Option<PathBuf>,
    /// The run under runs/ (default: the one whose checkpoint was written last).
    #[arg(long, requires = "project")]
    pub run: Option<String>,
    /// The split to evaluate (default: train.report_split if the project has it, else train.val_split).
    #[arg(long, requires = "project")]
    pub split: Option<String>,
    /// Device for the forward passes (cpu or cuda).
    #[arg(long, default_value = "cpu", requires = "project")]
    pub device: String,
    /// Safetensors file with a tensor `similarity` (rows = queries, true match on the diagonal).
    #[arg(long, value_name = "FILE")]
    pub similarity: Option<PathBuf>,
    /// Evaluate the other direction: columns as queries.
    #[arg(long)]
    pub transpose: bool,
    #[arg(long, value_enum, default_value = "pessimistic")]
    pub ties: TiesArg,
    /// Print one JSON object with recalls as fractions.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &EvalArgs) -> Result<()> {
    match (&args.project, &args.similarity) {
        (Some(project), _) => run_project(args, project),
        (None, Some(similarity)) => run_similarity(args, similarity),
        (None, None) => anyhow::bail!("give a project directory or --similarity FILE"),
    }
}

fn run_similarity(args: &EvalArgs, path: &std::path::Path) -> Result<()> {
    let file = TensorFile::open(path)?;
    let matrix = file.matrix("similarity")?;
    let (rows, cols) = matrix.dims2()?;
    let values: Vec<f64> = matrix.flatten_all()?.to_vec1()?;
    let context = || format!("in {}", path.display());
    let similarity = Similarity::new(&values, rows, cols).with_context(context)?;
    let transposed;
    let similarity = if args.transpose {
        transposed = similarity.transposed();
        Similarity::new(&transposed, cols, rows).with_context(context)?
    } else {
        similarity
    };
    let ties = match args.ties {
        TiesArg::Pessimistic => TiePolicy::Pessimistic,
        TiesArg::Optimistic => TiePolicy::Optimistic,
    };
    let metrics = similarity.metrics(ties);
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&metrics)?)?;
    } else {
        writeln!(
            out,
            "{} · {}×{} · rows are queries{} · ties {}",
            path.display(),
            similarity.rows(),
            similarity.cols(),
            if args.transpose { " (transposed)" } else { "" },
            match ties {
                TiePolicy::Pessimistic => "pessimistic",
                TiePolicy::Optimistic => "optimistic",
            }
        )?;
        print_table(&mut out, &metrics)?;
    }
    Ok(())
}

/// The metric table researchers know from papers: recalls in percent, ranks 1-based.
pub fn print_table(out: &mut impl Write, metrics: &RetrievalMetrics) -> std::io::Result<()> {
    writeln!(
        out,
        "  {:>6} {:>6} {:>6} {:>6} {:>7} {:>8}",
        "R@1", "R@5", "R@10", "R@50", "MdR", "MnR"
    )?;
    writeln!(
        out,
        "  {:>6.2} {:>6.2} {:>6.2} {:>6.2} {:>7.1} {:>8.2}",
        100.0 * metrics.r1,
        100.0 * metrics.r5,
        100.0 * metrics.r10,
        100.0 * metrics.r50,
        metrics.median_rank,
        metrics.mean_rank
    )
}

/// The run whose checkpoint was written last.
pub(crate) fn latest_run(project: &Project) -> Result<String> {
    let runs = project.runs_dir();
    let mut best: Option<(std::time::SystemTime, String)> = None;
    for entry in std::fs::read_dir(&runs).with_context(|| format!("reading {}", runs.display()))? {
        let entry = entry?;
        let files = RunFiles::new(entry.path());
        if let Ok(modified) = std::fs::metadata(files.checkpoint()).and_then(|m| m.modified()) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if best.as_ref().is_none_or(|(time, _)| modified > *time) {
                best = Some((modified, name));
            }
        }
    }
    best.map(|(_, name)| name).ok_or_else(|| {
        anyhow::anyhow!(
            "no run in {} has a checkpoint yet: run `crossclr train` first",
            runs.display()
        )
    })
}

fn run_project(args: &EvalArgs, dir: &std::path::Path) -> Result<()> {
    let project = Project::open(dir)?;
    project.check_features()?;
    let config = project.config();
    let name = match &args.run {
        Some(name) => name.clone(),
        None => latest_run(&project)?,
    };
    let device = device(&args.device)?;
    let (head, meta) = load_run_head(&project, &name, &device)?;
    let files = RunFiles::new(project.run_dir(&name));
    let splits = project.splits()?;
    let split = match &args.split {
        Some(split) => split.clone(),
        None if splits.contains(&config.train.report_split) => config.train.report_split.clone(),
        None => config.train.val_split.clone(),
    };
    let features = load_split(&project, &split, "evaluation")?;
    let embeddings = embed_split(&head, config, &features, &device)?;
    let report = retrieval(&embeddings)?;

    let metadata = std::collections::HashMap::from([
        ("run".to_string(), name.clone()),
        ("split".to_string(), split.clone()),
        ("epoch".to_string(), meta.epoch.to_string()),
        (
            "clip_keys".to_string(),
            serde_json::to_string(&features.clip_keys)?,
        ),
        (
            "video_keys".to_string(),
            serde_json::to_string(&features.video_keys)?,
        ),
    ]);
    let tensors = [
        ("clip", &embeddings.clip),
        ("sentence", &embeddings.sentence),
        ("video", &embeddings.video),
        ("paragraph", &embeddings.paragraph),
    ];
    write_safetensors_atomic(&files.embeddings(), tensors, Some(metadata))?;

    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "run `{name}` (epoch {}) on split `{split}`: {} clips, {} videos; embeddings in {}",
        meta.epoch + 1,
        features.num_clips(),
        features.num_videos(),
        files.embeddings().display()
    )?;
    for (direction, metrics) in report.directions() {
        writeln!(out, "{direction}")?;
        print_table(&mut out, &metrics)?;
    }
    Ok(())
}
