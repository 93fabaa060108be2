//! `crossclr eval --similarity S.safetensors`: retrieval metrics of a raw similarity matrix.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use super::tensor_file::TensorFile;
use crate::eval::{RetrievalMetrics, Similarity, TiePolicy};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TiesArg {
    /// A candidate scoring as high as the true match ranks above it.
    Pessimistic,
    /// Only strictly higher scores rank above the true match.
    Optimistic,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Safetensors file with a tensor `similarity` (rows = queries, true match on the diagonal).
    #[arg(long, value_name = "FILE")]
    pub similarity: PathBuf,
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
    let file = TensorFile::open(&args.similarity)?;
    let matrix = file.matrix("similarity")?;
    let (rows, cols) = matrix.dims2()?;
    let values: Vec<f64> = matrix.flatten_all()?.to_vec1()?;
    let context = || format!("in {}", args.similarity.display());
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
            args.similarity.display(),
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
