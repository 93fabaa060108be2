//! `crossclr search DIR "query"`: text → clip ranking with a trained run (`analysis::search`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::analysis::samples::Level;
use crate::analysis::{Hit, SearchIndex};
use crate::project::{Project, RunName};

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// The project directory.
    pub project: PathBuf,
    /// What to look for, in words.
    pub query: String,
    /// The run whose head embeds (default: the last one trained).
    #[arg(long)]
    pub run: Option<RunName>,
    /// How many clips to list (at least 1).
    #[arg(long, default_value_t = 5, value_parser = super::analysis_common::parse_top)]
    pub top: u64,
    /// Rank clips (the query as a sentence) or whole videos (the query as a paragraph).
    #[arg(long, value_enum, default_value_t = Level::Clip)]
    pub level: Level,
    /// Print one JSON object: {"query", "level", "run", "results": [{"key", "video", "caption",
    /// "score", "split", "thumbnail"}]}.
    #[arg(long)]
    pub json: bool,
}

/// The `--json` object.
pub fn hits_json(query: &str, level: Level, run: &RunName, hits: &[Hit]) -> serde_json::Value {
    let results: Vec<serde_json::Value> = hits
        .iter()
        .map(|hit| {
            serde_json::json!({
                "key": hit.clip,
                "video": hit.video,
                "caption": hit.caption,
                "score": hit.score,
                "split": hit.split,
                "thumbnail": hit.thumbnail.as_ref().map(|p| p.display().to_string()),
            })
        })
        .collect();
    serde_json::json!({"query": query, "level": level, "run": run.as_str(), "results": results})
}

pub fn print_hits(out: &mut impl Write, query: &str, hits: &[Hit]) -> std::io::Result<()> {
    writeln!(out, "search {query:?}")?;
    for (rank, hit) in hits.iter().enumerate() {
        writeln!(
            out,
            "  {:>2}. {:.3}  {} ({}{}) — {}",
            rank + 1,
            hit.score,
            hit.clip,
            hit.split,
            hit.start.map(|s| format!(", {s:.1} s")).unwrap_or_default(),
            hit.caption.as_deref().unwrap_or("")
        )?;
    }
    Ok(())
}

pub fn run(args: &SearchArgs) -> Result<()> {
    let project = Project::open(&args.project)?;
    let run = match &args.run {
        Some(run) => run.clone(),
        None => project.latest_run()?,
    };
    let index = SearchIndex::open(&project, &run)?;
    let top = usize::try_from(args.top).unwrap_or(usize::MAX);
    let hits = index.search_at(&args.query, top, args.level)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", hits_json(&args.query, args.level, &run, &hits))?;
    } else {
        print_hits(&mut out, &args.query, &hits)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Command {
        #[command(flatten)]
        args: SearchArgs,
    }

    #[test]
    fn top_0_is_refused_saying_it_would_list_nothing() {
        let parse = |top: &str| Command::try_parse_from(["search", "DIR", "a query", "--top", top]);
        let message = parse("0").unwrap_err().to_string();
        assert!(
            message.contains("0 would list no hit; expected at least 1"),
            "{message}"
        );
        assert!(parse("x").unwrap_err().to_string().contains("not a count"));
        assert_eq!(parse("3").unwrap().args.top, 3);
        let default = Command::try_parse_from(["search", "DIR", "a query"]).unwrap();
        assert_eq!(default.args.top, 5);
    }
}
