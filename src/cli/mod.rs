//! The command line: `crossclr <command>`. Each command lives in its own file.

mod analysis_common;
mod compare_cmd;
mod demo_cmd;
mod eval_cmd;
mod explore_cmd;
mod export_cmd;
mod graph_cmd;
mod ingest_cmd;
mod loss_cmd;
mod map_cmd;
mod negatives_cmd;
mod neighbours_cmd;
mod new_cmd;
mod search_cmd;
mod synth_cmd;
mod tensor_file;
mod train_cmd;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Train, evaluate and explore CrossCLR joint video–text embeddings.
#[derive(Debug, Parser)]
#[command(name = "crossclr", version, about, long_about = None)]
pub struct Cli {
    /// Without a command: open the explorer on the demo project (made on first run, in the data
    /// directory); without a display, show its retrieval table and a few searches.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Explain what the loss does to dumped batches: loss, weights, influential samples, pruned negatives.
    Loss(loss_cmd::LossArgs),
    /// Retrieval metrics (R@1/5/10/50, median and mean rank): of a trained run on a project's
    /// split, both directions at clip/sentence and video/paragraph level, or of a similarity matrix.
    Eval(eval_cmd::EvalArgs),
    /// Lay out embeddings in 2-D with t-SNE (seeded; warm-startable from an earlier layout).
    Map(map_cmd::MapArgs),
    /// Make a project: from precomputed features (a safetensors file, or COOT's HDF5 layout), or
    /// from a folder of videos and their captions.
    New(new_cmd::NewArgs),
    /// Render the demo collection (captioned videos of moving shapes), make a project of it,
    /// ingest it and train a model.
    Demo(demo_cmd::DemoArgs),
    /// Open the explorer window on a project: the map of its clips, search, the inspector.
    Explore(explore_cmd::ExploreArgs),
    /// Encode a videos project: sample each clip's frames, encode them and the captions, cache
    /// thumbnails; resumable, shardable with --shard i/n.
    Ingest(ingest_cmd::IngestArgs),
    /// Rank a project's clips for a typed query with a trained run.
    Search(search_cmd::SearchArgs),
    /// Write a project of synthetic features with planted semantic duplicates.
    Synth(synth_cmd::SynthArgs),
    /// Train CrossCLR (or a baseline loss) on a project's features.
    Train(train_cmd::TrainArgs),
    /// The similarity graph of a project's clips or videos (kNN or threshold, input or joint
    /// space) with CrossCLR's connectivity and influential samples.
    Graph(graph_cmd::GraphArgs),
    /// What the loss keeps and prunes for one anchor (whole split, or a replayed training batch);
    /// --audit: precision and recall of the pruning over γ.
    Negatives(negatives_cmd::NegativesArgs),
    /// The clips nearest to one clip, in input or joint space.
    Neighbours(neighbours_cmd::NeighboursArgs),
    /// Two runs of a project side by side: retrieval tables, per-clip rank changes, how much
    /// their nearest clips agree.
    Compare(compare_cmd::CompareArgs),
    /// A run's embeddings and per-clip figures as Parquet or for the Embedding Projector.
    Export(export_cmd::ExportArgs),
}

/// Parses the command line and runs the command.
pub fn run() -> Result<()> {
    dispatch(Cli::parse().command)
}

/// Runs one parsed command (`None`: the main job).
pub(crate) fn dispatch(command: Option<Command>) -> Result<()> {
    let Some(command) = command else {
        return demo_cmd::main_job();
    };
    match command {
        Command::Demo(args) => demo_cmd::run(&args),
        Command::Search(args) => search_cmd::run(&args),
        Command::Loss(args) => loss_cmd::run(&args),
        Command::Eval(args) => eval_cmd::run(&args),
        Command::Explore(args) => explore_cmd::run(&args),
        Command::Ingest(args) => ingest_cmd::run(&args),
        Command::New(args) => new_cmd::run(&args),
        Command::Map(args) => map_cmd::run(&args),
        Command::Synth(args) => synth_cmd::run(&args),
        Command::Train(args) => train_cmd::run(&args),
        Command::Graph(args) => graph_cmd::run(&args),
        Command::Negatives(args) => negatives_cmd::run(&args),
        Command::Neighbours(args) => neighbours_cmd::run(&args),
        Command::Export(args) => export_cmd::run(&args),
        Command::Compare(args) => compare_cmd::run(&args),
    }
}
