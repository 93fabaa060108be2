//! `crossclr search DIR "query"`: text → clip ranking with a trained run. The query is encoded by
//! the project's text encoder and the run's text side; clips of every split by its video side;
//! results are ranked by cosine similarity.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use candle_core::{D, Device, Tensor};
use clap::Args;

use super::setup_run::{embed_split, load_run_head, load_split};
use crate::encode::text_encoder;
use crate::model::{EmbeddingHead, Mode, SequenceBatch};
use crate::project::{ManifestEntry, Project};

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// The project directory.
    pub project: PathBuf,
    /// What to look for, in words.
    pub query: String,
    /// The run whose head embeds (default: the last one trained).
    #[arg(long)]
    pub run: Option<String>,
    /// How many clips to list.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
}

/// One found clip.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub clip: String,
    pub split: String,
    pub score: f32,
    pub caption: Option<String>,
    pub video: String,
    pub start: Option<f64>,
}

/// A run's head with every clip of the project embedded, ready for queries.
#[derive(Debug)]
pub struct SearchIndex {
    head: EmbeddingHead,
    text: Box<dyn crate::encode::TextEncoder>,
    /// (clips, d), L2-normalised rows.
    clips: Tensor,
    keys: Vec<(String, String)>,
    manifest: Vec<ManifestEntry>,
}

impl SearchIndex {
    pub fn open(dir: &Path, run: Option<&str>) -> Result<Self> {
        let project = Project::open(dir)?;
        project.check_features()?;
        let config = project.config();
        let name = match run {
            Some(name) => name.to_string(),
            None => super::eval_cmd::latest_run(&project)?,
        };
        let device = Device::Cpu;
        let (head, meta) = load_run_head(&project, &name, &device)?;
        if meta.text_encoder.name == crate::project::config::PRECOMPUTED {
            bail!(
                "run `{name}` was trained on imported text features; a typed query needs the encoder that made them, which this project does not have"
            );
        }
        let text = text_encoder(&meta.text_encoder.name, &device)
            .with_context(|| format!("the text encoder `{}`", meta.text_encoder.name))?;
        let mut parts = Vec::new();
        let mut keys = Vec::new();
        for split in project.splits()? {
            let features = load_split(&project, &split, "search")?;
            let embeddings = embed_split(&head, config, &features, &device)?;
            parts.push(embeddings.clip);
            keys.extend(
                features
                    .clip_keys
                    .iter()
                    .map(|k| (k.clone(), split.clone())),
            );
        }
        let clips = normalise(&Tensor::cat(&parts, 0)?)?;
        Ok(Self {
            head,
            text,
            clips,
            keys,
            manifest: project.read_manifest()?.entries,
        })
    }

    /// The `top` clips closest to `query`.
    pub fn search(&self, query: &str, top: usize) -> Result<Vec<Hit>> {
        let features = self.text.encode(&[query])?;
        let tokens = features.tokens.get(0);
        let rows = tokens.len() / features.dim();
        let sequence = Tensor::from_slice(tokens, (rows, features.dim()), &Device::Cpu)?;
        let batch = SequenceBatch::from_sequences(&[sequence])?;
        // The query is a paragraph of one sentence.
        let paragraph = std::iter::once(0..1).collect::<Vec<_>>();
        let embedded = self
            .head
            .encode_text(&batch, Some(&batch), &paragraph, Mode::Eval)?;
        let query = normalise(&embedded.local)?;
        let scores: Vec<f32> = self.clips.matmul(&query.t()?)?.flatten_all()?.to_vec1()?;
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        Ok(order
            .into_iter()
            .take(top)
            .map(|i| {
                let (clip, split) = &self.keys[i];
                let entry = self.manifest.iter().find(|e| &e.clip == clip);
                Hit {
                    clip: clip.clone(),
                    split: split.clone(),
                    score: scores[i],
                    caption: entry.and_then(|e| e.caption.clone()),
                    video: entry.map_or_else(String::new, |e| e.video.clone()),
                    start: entry.and_then(|e| e.start),
                }
            })
            .collect())
    }
}

fn normalise(rows: &Tensor) -> Result<Tensor> {
    let norms = rows
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .sqrt()?
        .clamp(1e-12, f64::MAX)?;
    Ok(rows.broadcast_div(&norms)?)
}

pub fn print_hits(query: &str, hits: &[Hit]) {
    println!("search {query:?}");
    for (rank, hit) in hits.iter().enumerate() {
        println!(
            "  {:>2}. {:.3}  {} ({}{}) — {}",
            rank + 1,
            hit.score,
            hit.clip,
            hit.split,
            hit.start.map(|s| format!(", {s:.1} s")).unwrap_or_default(),
            hit.caption.as_deref().unwrap_or("")
        );
    }
}

pub fn run(args: &SearchArgs) -> Result<()> {
    let index = SearchIndex::open(&args.project, args.run.as_deref())?;
    let hits = index.search(&args.query, args.top.max(1))?;
    print_hits(&args.query, &hits);
    Ok(())
}
