//! The command line: `crossclr <command>`. Each command lives in its own file.

mod eval_cmd;
mod loss_cmd;
mod new_cmd;
mod tensor_file;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Train, evaluate and explore CrossCLR joint video–text embeddings.
#[derive(Debug, Parser)]
#[command(name = "crossclr", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Explain what the loss does to dumped batches: loss, weights, influential samples, pruned negatives.
    Loss(loss_cmd::LossArgs),
    /// Retrieval metrics (R@1/5/10/50, median and mean rank) of a similarity matrix.
    Eval(eval_cmd::EvalArgs),
    /// Make a project from precomputed features (a safetensors file, or COOT's HDF5 layout).
    New(new_cmd::NewArgs),
}

/// Parses the command line and runs the command.
pub fn run() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Loss(args) => loss_cmd::run(&args),
        Command::Eval(args) => eval_cmd::run(&args),
        Command::New(args) => new_cmd::run(&args),
    }
}
