//! `crossclr compare DIR --runs A,B`: two runs of a project side by side (`analysis::compare`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;

use super::analysis_common::cancel_token;
use crate::analysis::compare::{ClipChange, RunComparison, compare_runs};
use crate::project::{Project, RunName};

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The project directory.
    pub project: PathBuf,
    /// The two runs, first,second: changes are read from the first to the second.
    #[arg(long, value_delimiter = ',', num_args = 1)]
    pub runs: Vec<RunName>,
    /// The split to compare on (default: `train.report_split`, else `train.val_split`).
    #[arg(long)]
    pub split: Option<String>,
    /// Print one JSON object, every clip's ranks and shared neighbours included.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &CompareArgs) -> Result<()> {
    let [first, second] = args.runs.as_slice() else {
        bail!(
            "--runs takes two run names separated by a comma (e.g. --runs crossclr-paper-s0,infonce-s0); got {}",
            args.runs.len()
        );
    };
    let project = Project::open(&args.project)?;
    let cancel = cancel_token()?;
    let comparison = compare_runs(&project, first, second, args.split.as_deref(), &cancel)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&comparison)?)?;
        return Ok(());
    }
    print_comparison(&mut out, &comparison)?;
    Ok(())
}

fn print_comparison(out: &mut impl Write, c: &RunComparison) -> Result<()> {
    let (a, b) = (&c.first, &c.second);
    writeln!(
        out,
        "split `{}`: {} clips, {} videos · `{}` (epoch {}) against `{}` (epoch {})",
        c.split, c.clips, c.videos, a.run, a.epoch, b.run, b.epoch
    )?;
    let width = a.run.len().max(b.run.len()).max(6);
    writeln!(
        out,
        "{:<18} {:^g$}   {:^g$}   {:^g$}",
        "",
        "R@1",
        "R@5",
        "R@10",
        g = 2 * width + 1
    )?;
    writeln!(
        out,
        "{:<18} {:>w$} {:>w$}   {:>w$} {:>w$}   {:>w$} {:>w$}",
        "",
        a.run,
        b.run,
        a.run,
        b.run,
        a.run,
        b.run,
        w = width
    )?;
    for ((direction, ma), (_, mb)) in a.report.directions().into_iter().zip(b.report.directions()) {
        let pct = |v: f64| format!("{:.1}", 100.0 * v);
        writeln!(
            out,
            "{:<18} {:>w$} {:>w$}   {:>w$} {:>w$}   {:>w$} {:>w$}",
            direction,
            pct(ma.r1),
            pct(mb.r1),
            pct(ma.r5),
            pct(mb.r5),
            pct(ma.r10),
            pct(mb.r10),
            w = width
        )?;
    }
    let r = &c.ranks;
    writeln!(
        out,
        "clip → sentence rank, `{}` against `{}`: {} clips better, {} worse, {} the same; {} newly first, {} no longer first",
        b.run, a.run, r.better, r.worse, r.same, r.gained_top1, r.lost_top1
    )?;
    let list = |out: &mut dyn Write, title: &str, changes: &[ClipChange]| -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        writeln!(out, "{title}")?;
        for change in changes {
            writeln!(
                out,
                "  {:>5} → {:<5} {} — {}",
                change.rank_first,
                change.rank_second,
                change.key,
                change.caption.as_deref().unwrap_or("")
            )?;
        }
        Ok(())
    };
    list(
        out,
        "largest gains (rank before → after):",
        &r.largest_gains,
    )?;
    list(out, "largest losses:", &r.largest_losses)?;
    let o = &c.overlap;
    writeln!(
        out,
        "nearest-clip overlap@{}: {:.1}% on average; clips sharing 0..={} neighbours: {}",
        o.k,
        100.0 * o.mean,
        o.k,
        o.histogram
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    )?;
    Ok(())
}
