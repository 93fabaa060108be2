//! `crossclr eval DIR [--run NAME] [--split S]`: a trained run's retrieval metrics at both levels,
//! and its embeddings written beside it; `crossclr eval --similarity S.safetensors`: the metrics
//! of a raw similarity matrix.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use super::tensor_file::TensorFile;
use crate::eval::{RetrievalMetrics, Similarity, TiePolicy, transpose};
use crate::model::DeviceKind;
use crate::project::{Project, RunName};
use crate::train::evaluate_run;

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A project directory: evaluate one of its runs.
    #[arg(required_unless_present = "similarity", conflicts_with = "similarity")]
    pub project: Option<PathBuf>,
    /// The run under runs/ (default: the one whose checkpoint was written last).
    #[arg(long, requires = "project")]
    pub run: Option<RunName>,
    /// The split to evaluate (default: train.report_split if the project has it, else train.val_split).
    #[arg(long, requires = "project")]
    pub split: Option<String>,
    /// Device for the forward passes (cuda with the `cuda` feature).
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu, requires = "project")]
    pub device: DeviceKind,
    /// Safetensors file with a tensor `similarity` (rows = queries, true match on the diagonal).
    #[arg(long, value_name = "FILE")]
    pub similarity: Option<PathBuf>,
    /// Evaluate the other direction: columns as queries.
    #[arg(long)]
    pub transpose: bool,
    /// How a candidate scoring as high as the true match counts.
    #[arg(long, value_enum, default_value_t = TiePolicy::Pessimistic)]
    pub ties: TiePolicy,
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
    // Transposed first: a matrix with more rows than columns is valid read the other way.
    let (values, rows, cols) = if args.transpose {
        (transpose(&values, rows, cols)?, cols, rows)
    } else {
        (values, rows, cols)
    };
    let context = || {
        let reading = if args.transpose {
            format!(" read transposed (its {rows} columns are the queries)")
        } else {
            String::new()
        };
        format!("in {}{reading}", path.display())
    };
    let similarity = Similarity::new(&values, rows, cols).with_context(context)?;
    let ties = args.ties;
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
            ties
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

fn run_project(args: &EvalArgs, dir: &std::path::Path) -> Result<()> {
    let project = Project::open(dir)?;
    let name = match &args.run {
        Some(name) => name.clone(),
        None => project.latest_run()?,
    };
    evaluate_and_print(
        &project,
        &name,
        args.split.as_deref(),
        args.device,
        args.json,
    )
}

/// Evaluates a run, keeps its embeddings beside it and prints the metrics: a table per
/// direction, or one JSON object.
pub(super) fn evaluate_and_print(
    project: &Project,
    name: &RunName,
    split: Option<&str>,
    device: DeviceKind,
    json: bool,
) -> Result<()> {
    let evaluated = evaluate_run(project, name, split, &device.open()?)?;
    let run = project.run(name);
    // The metrics need nothing written: a project that cannot be written to (read-only media, a
    // shared folder) still shows them, with the reason the embeddings were not kept.
    let kept = run.write_embeddings(&evaluated.embeddings);
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(&evaluated.report)?)?;
    } else {
        writeln!(
            out,
            "run `{name}` (epoch {}) on split `{}`: {} clips, {} videos; {}",
            evaluated.epoch,
            evaluated.split,
            evaluated.clips,
            evaluated.videos,
            match &kept {
                Ok(()) => format!("embeddings in {}", run.embeddings().display()),
                Err(_) => "embeddings not kept".to_string(),
            }
        )?;
        for (direction, metrics) in evaluated.report.directions() {
            writeln!(out, "{direction}")?;
            print_table(&mut out, &metrics)?;
        }
    }
    if let Err(error) = kept {
        eprintln!(
            "warning: {:#}",
            anyhow::Error::from(error).context("the embeddings were not written")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use candle_core::{Device, Tensor};
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Command {
        #[command(flatten)]
        args: EvalArgs,
    }

    fn args(flags: &[&str]) -> EvalArgs {
        Command::parse_from(std::iter::once("eval").chain(flags.iter().copied())).args
    }

    /// A `rows × cols` similarity file scoring 1 on the diagonal and 0 elsewhere.
    fn diagonal(dir: &std::path::Path, rows: usize, cols: usize) -> String {
        let values: Vec<f32> = (0..rows * cols)
            .map(|at| if at / cols == at % cols { 1.0 } else { 0.0 })
            .collect();
        let tensor = Tensor::from_vec(values, (rows, cols), &Device::Cpu).unwrap();
        let path = dir.join(format!("s{rows}x{cols}.safetensors"));
        candle_core::safetensors::save(&HashMap::from([("similarity".to_string(), tensor)]), &path)
            .unwrap();
        path.to_str().unwrap().to_string()
    }

    #[test]
    fn transpose_reads_a_tall_matrix_as_its_columns_over_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let tall = diagonal(dir.path(), 6, 4);
        // 4 queries (the columns) over 6 candidates (the rows).
        run(&args(&["--similarity", &tall, "--transpose", "--json"])).unwrap();
        // Rows as queries, 6 queries over 4 candidates cannot be ranked; the error says why.
        let message = format!("{:#}", run(&args(&["--similarity", &tall])).unwrap_err());
        assert!(message.contains("6×4"), "{message}");
        // And a wide matrix read transposed is the tall case, named as such.
        let wide = diagonal(dir.path(), 4, 6);
        run(&args(&["--similarity", &wide])).unwrap();
        let message = format!(
            "{:#}",
            run(&args(&["--similarity", &wide, "--transpose"])).unwrap_err()
        );
        assert!(
            message.contains("6×4") && message.contains("read transposed"),
            "{message}"
        );
    }
}
