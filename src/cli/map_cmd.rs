//! `crossclr map --embeddings E.safetensors --out L.safetensors`: the t-SNE layout of any N×D
//! tensor `embeddings`, written as tensor `layout` (N×2 f32) with the settings in the metadata.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use candle_core::DType;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use safetensors::tensor::{Dtype, TensorView};

use super::tensor_file::TensorFile;
use crate::analysis::Matrix;
use crate::analysis::tsne::{
    Init, Method, TsneConfig, TsneError, TsneJob, TsneOutcome, warm_start,
};
use crate::project::write_safetensors_atomic;

/// The `format` value in a layout file's metadata.
pub const LAYOUT_FORMAT: &str = "crossclr-layout";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MethodArg {
    /// Interpolated repulsion, FFT convolution (FIt-SNE, openTSNE): the fast default.
    Fft,
    /// Barnes–Hut.
    Bh,
    /// All pairs: O(N²), small N only.
    Exact,
    /// linfa-tsne (Barnes–Hut), for comparison: not steppable, its own initialisation.
    Linfa,
}

impl From<MethodArg> for Method {
    fn from(m: MethodArg) -> Self {
        match m {
            MethodArg::Fft => Method::Fft,
            MethodArg::Bh => Method::BarnesHut,
            MethodArg::Exact => Method::Exact,
            MethodArg::Linfa => Method::Linfa,
        }
    }
}

#[derive(Debug, Args)]
pub struct MapArgs {
    /// Safetensors file with a matrix `embeddings` (one row per point); its `keys` metadata (a
    /// JSON array of strings), when present, is carried into the layout.
    #[arg(long, value_name = "FILE")]
    pub embeddings: PathBuf,
    /// Where to write the layout (tensor `layout`, N×2 f32).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value_t = 30.0)]
    pub perplexity: f64,
    /// Iterations in all (default 750, of which 250 early exaggeration; a warm start skips the
    /// early phase and defaults to 500).
    #[arg(long)]
    pub iters: Option<usize>,
    /// `pca`, `random`, or an earlier layout file to start from: points are matched by key
    /// (by row when either file has no keys), new ones start at their nearest neighbour's place.
    #[arg(long, default_value = "pca", value_name = "pca|random|LAYOUT")]
    pub init: String,
    #[arg(long, value_enum, default_value = "fft")]
    pub method: MethodArg,
}

/// The keys in a safetensors file's metadata, if it has them.
fn metadata_keys(path: &Path) -> Result<Option<Vec<String>>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
        .with_context(|| format!("{} is not a readable safetensors file", path.display()))?;
    let Some(keys) = header.metadata().as_ref().and_then(|m| m.get("keys")) else {
        return Ok(None);
    };
    let keys: Vec<String> = serde_json::from_str(keys).with_context(|| {
        format!(
            "{}: metadata `keys` is not a JSON array of strings",
            path.display()
        )
    })?;
    Ok(Some(keys))
}

fn read_matrix(path: &Path, name: &str) -> Result<(Vec<f32>, usize, usize)> {
    let tensor = TensorFile::open(path)?.matrix(name)?;
    let (rows, cols) = tensor.dims2()?;
    let values = tensor
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    Ok((values, rows, cols))
}

fn row_keys(n: usize) -> Vec<String> {
    (0..n).map(|i| i.to_string()).collect()
}

pub fn run(args: &MapArgs) -> Result<()> {
    let (values, rows, cols) = read_matrix(&args.embeddings, "embeddings")?;
    let keys = metadata_keys(&args.embeddings)?;
    if let Some(keys) = &keys
        && keys.len() != rows
    {
        bail!(
            "{}: {} keys in the metadata for {rows} rows of `embeddings`",
            args.embeddings.display(),
            keys.len()
        );
    }
    let data = Matrix::new(&values, rows, cols)?;
    // A non-finite row is named by its key when the file has keys.
    let name_row = |error: TsneError| -> anyhow::Error {
        let file = args.embeddings.display().to_string();
        let key = match (&error, &keys) {
            (TsneError::NonFinite { row, .. }, Some(keys)) => Some(keys[*row].clone()),
            _ => None,
        };
        match key {
            Some(key) => {
                anyhow::Error::new(error).context(format!("{file}: the point with key {key:?}"))
            }
            None => anyhow::Error::new(error).context(file),
        }
    };

    let mut config = TsneConfig {
        perplexity: args.perplexity,
        seed: args.seed,
        method: args.method.into(),
        ..TsneConfig::default()
    };
    let mut warm_note = None;
    match args.init.as_str() {
        "pca" => config.init = Init::Pca,
        "random" => config.init = Init::Random,
        path => {
            let path = Path::new(path);
            if args.method == MethodArg::Linfa {
                bail!(
                    "--method linfa makes its own initial layout; it cannot start from {}",
                    path.display()
                );
            }
            let (previous, m, two) = read_matrix(path, "layout").with_context(|| {
                format!(
                    "--init {}: not `pca`, `random` or a layout file",
                    path.display()
                )
            })?;
            if two != 2 {
                bail!("{}: `layout` is {m}×{two}; expected N×2", path.display());
            }
            let (ours, theirs) = match (&keys, metadata_keys(path)?) {
                (Some(ours), Some(theirs)) => (ours.clone(), theirs),
                _ if m == rows => (row_keys(rows), row_keys(m)),
                _ => bail!(
                    "{}: {m} points without keys cannot be matched to the {rows} points of {}",
                    path.display(),
                    args.embeddings.display()
                ),
            };
            let start = warm_start(&ours, data, &theirs, &previous).map_err(name_row)?;
            warm_note = Some(format!(
                "warm start from {}: {} points matched, {} placed at their nearest neighbour",
                path.display(),
                start.matched,
                start.placed
            ));
            config = config.warm(start.positions);
            config.iterations = 500;
        }
    }
    if let Some(iters) = args.iters {
        config.iterations = iters;
        config.early_iterations = config.early_iterations.min(iters);
    }
    if let Some(note) = &warm_note {
        eprintln!("{note}");
    }

    let started = Instant::now();
    let bar = ProgressBar::new(config.iterations as u64).with_style(
        ProgressStyle::with_template(
            "map {bar:30} {pos}/{len} iterations  KL {msg} [{elapsed}<{eta}]",
        )
        .expect("a valid template"),
    );
    let job = TsneJob::spawn(values, rows, cols, config.clone(), 10)?;
    // The process's one Ctrl-C handler; the job hears of it at its next snapshot (every 10
    // iterations).
    let interrupt = crate::process::interrupt_token()?;
    for snapshot in job.progress.iter() {
        if interrupt.is_cancelled() {
            job.cancel.cancel();
        }
        bar.set_position(snapshot.iteration as u64);
        if let Some(kl) = snapshot.kl_divergence {
            bar.set_message(format!("{kl:.4}"));
        }
    }
    let outcome = job.join().map_err(name_row)?;
    bar.finish_and_clear();
    let snapshot = match outcome {
        TsneOutcome::Finished(snapshot) => snapshot,
        TsneOutcome::Cancelled(snapshot) => {
            bail!(
                "cancelled after {} iterations; nothing written",
                snapshot.iteration
            )
        }
    };
    let seconds = started.elapsed().as_secs_f64();

    let mut metadata = HashMap::from([
        ("format".to_string(), LAYOUT_FORMAT.to_string()),
        ("version".to_string(), "1".to_string()),
        ("method".to_string(), config.method.name().to_string()),
        ("perplexity".to_string(), config.perplexity.to_string()),
        ("iterations".to_string(), config.iterations.to_string()),
        (
            "early_iterations".to_string(),
            config.early_iterations.to_string(),
        ),
        (
            "early_exaggeration".to_string(),
            config.early_exaggeration.to_string(),
        ),
        ("seed".to_string(), config.seed.to_string()),
        ("init".to_string(), args.init.clone()),
        ("source".to_string(), args.embeddings.display().to_string()),
    ]);
    if let Some(kl) = snapshot.kl_divergence {
        metadata.insert("kl_divergence".to_string(), kl.to_string());
    }
    if let Some(keys) = &keys {
        metadata.insert("keys".to_string(), serde_json::to_string(keys)?);
    }
    let bytes: Vec<u8> = snapshot
        .positions
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let view = TensorView::new(Dtype::F32, vec![rows, 2], &bytes)?;
    write_safetensors_atomic(&args.out, [("layout", view)], Some(metadata))?;
    let kl = snapshot
        .kl_divergence
        .map(|kl| format!(", KL divergence {kl:.4}"))
        .unwrap_or_default();
    println!(
        "laid out {rows} points ({cols} dimensions, {}) in {seconds:.1} s{kl}; wrote {}",
        config.method.name(),
        args.out.display()
    );
    Ok(())
}
