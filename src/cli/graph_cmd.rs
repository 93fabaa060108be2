//! `crossclr graph DIR`: the similarity graph of a project's clips or videos, with CrossCLR's
//! connectivity, score and influential flag per node (`analysis::graph`).

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use clap::Args;
use safetensors::{Dtype, tensor::TensorView};

use super::analysis_common::{bar, cancel_token, run_or_latest, update};
use crate::analysis::force_layout::{ForceConfig, ForceLayout};
use crate::analysis::graph::{EdgeRule, GraphSettings, similarity_graph};
use crate::analysis::negatives::loss_settings;
use crate::analysis::samples::{Level, Samples, Space, joint_embeddings};
use crate::crossclr::Mode;
use crate::project::{Project, RunName, write_safetensors_atomic};

#[derive(Debug, Args)]
pub struct GraphArgs {
    /// The project directory.
    pub project: PathBuf,
    /// The run whose embeddings (joint space) and loss settings apply (default: the last one trained).
    #[arg(long)]
    pub run: Option<RunName>,
    /// Edges by the pooled input features or by the run's joint embeddings.
    #[arg(long, value_enum, default_value_t = Space::Input)]
    pub space: Space,
    /// Each node's k most similar nodes.
    #[arg(long, conflicts_with = "threshold")]
    pub k: Option<usize>,
    /// Every pair with cosine similarity at least T.
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Clips or whole videos.
    #[arg(long, value_enum, default_value_t = Level::Clip)]
    pub level: Level,
    /// Only these splits (repeatable; default: every split).
    #[arg(long)]
    pub split: Vec<String>,
    /// The influential flag's γ (default: the run's, else the project's).
    #[arg(long)]
    pub gamma: Option<f64>,
    /// Paper or official scores (default: the run's, else the project's).
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    /// Also lay out the video side's graph by its edges alone (ForceAtlas2, what the explorer's
    /// "own layout" shows), written beside it as `graph-layout-<space>-<level>.safetensors`.
    #[arg(long)]
    pub force_layout: bool,
    /// The force layout's random start.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The force layout's iterations.
    #[arg(long, default_value_t = ForceConfig::default().iterations)]
    pub iterations: usize,
}

pub fn run(args: &GraphArgs) -> Result<()> {
    let project = Project::open(&args.project)?;
    let cancel = cancel_token()?;
    let run = run_or_latest(&project, &args.run)?;
    if args.space == Space::Joint && run.is_none() {
        bail!(
            "--space joint needs a trained run and {} has none; train one or use --space input",
            args.project.display()
        );
    }
    let loss = loss_settings(&project, run.as_ref())?;
    let settings = GraphSettings {
        space: args.space,
        edges: match (args.k, args.threshold) {
            (_, Some(t)) => EdgeRule::Threshold(t),
            (k, None) => EdgeRule::Knn(k.unwrap_or(10)),
        },
        gamma: args.gamma.unwrap_or(loss.crossclr.gamma),
        mode: args.mode.unwrap_or(loss.crossclr.mode),
        max_edges: GraphSettings::DEFAULT_MAX_EDGES,
    };
    let started = Instant::now();
    let samples = Samples::load(&project, &args.split, args.level, &cancel)?;
    let joint = match (args.space, &run) {
        (Space::Joint, Some(run)) => Some(joint_embeddings(&project, run, &samples, &cancel)?),
        _ => None,
    };
    let space = match &joint {
        Some((video, text)) => (video, text),
        None => (&samples.video_in, &samples.text_in),
    };
    let progress = bar("graph", "row blocks");
    let graph = similarity_graph(&samples, space, settings, &mut update(&progress), &cancel)?;
    progress.finish_and_clear();
    // Input-space graphs of a project without runs live under maps/input.
    let folder = run.as_ref().map_or("input", |r| r.as_str());
    let path = project
        .maps_dir()
        .join(folder)
        .join(format!("graph-{}-{}.safetensors", args.space, args.level));
    let splits = if args.split.is_empty() {
        project.splits()?
    } else {
        args.split.clone()
    };
    let mut extra = vec![("splits", serde_json::to_string(&splits)?)];
    if let Some(run) = &run {
        extra.push(("run", run.to_string()));
    }
    graph.save(&path, &extra)?;
    let mut out = std::io::stdout().lock();
    let rule = match settings.edges {
        EdgeRule::Knn(k) => format!("kNN k = {k}"),
        EdgeRule::Threshold(t) => format!("cosine ≥ {t}"),
    };
    writeln!(
        out,
        "graph of {} {}s ({} space, {rule}) · γ {} · {} mode · {:.1} s",
        graph.keys.len(),
        args.level,
        args.space,
        settings.gamma,
        settings.mode,
        started.elapsed().as_secs_f64()
    )?;
    for (name, side) in [("video", &graph.video), ("text", &graph.text)] {
        let influential = side.influential.iter().filter(|&&f| f).count();
        let mean_degree =
            side.degree.iter().map(|&d| f64::from(d)).sum::<f64>() / graph.keys.len() as f64;
        let max_c = side
            .connectivity
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        writeln!(
            out,
            "  {name:>5}: {} edges · mean degree {mean_degree:.1} · max c {max_c:.4} · {influential} influential ({:.1}%)",
            side.from.len(),
            100.0 * influential as f64 / graph.keys.len() as f64
        )?;
    }
    writeln!(out, "wrote {}", path.display())?;
    if args.force_layout {
        let config = ForceConfig {
            iterations: args.iterations,
            seed: args.seed,
            ..ForceConfig::default()
        };
        let started = Instant::now();
        let side = &graph.video;
        let layout = ForceLayout::new(
            graph.keys.len(),
            &side.from,
            &side.to,
            &side.similarity,
            None,
            config.clone(),
        )?
        .run();
        let seconds = started.elapsed().as_secs_f64();
        let layout_path = path.with_file_name(format!(
            "graph-layout-{}-{}.safetensors",
            args.space, args.level
        ));
        let metadata = std::collections::HashMap::from([
            (
                "format".to_string(),
                super::map_cmd::LAYOUT_FORMAT.to_string(),
            ),
            ("method".to_string(), "forceatlas2".to_string()),
            ("graph".to_string(), path.display().to_string()),
            ("iterations".to_string(), config.iterations.to_string()),
            ("scaling".to_string(), config.scaling.to_string()),
            ("gravity".to_string(), config.gravity.to_string()),
            ("theta".to_string(), config.theta.to_string()),
            ("seed".to_string(), config.seed.to_string()),
            ("keys".to_string(), serde_json::to_string(&graph.keys)?),
        ]);
        let bytes: Vec<u8> = layout.iter().flat_map(|v| v.to_le_bytes()).collect();
        let view = TensorView::new(Dtype::F32, vec![graph.keys.len(), 2], &bytes)?;
        write_safetensors_atomic(&layout_path, [("layout", view)], Some(metadata))?;
        writeln!(
            out,
            "laid out the video graph by its edges (ForceAtlas2, {} iterations) in {seconds:.1} s; wrote {}",
            config.iterations,
            layout_path.display()
        )?;
    }
    Ok(())
}
