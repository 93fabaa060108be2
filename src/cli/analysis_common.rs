//! What the analysis commands share: the run they default to, a progress bar, the Ctrl-C token.

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};

use crate::jobs::CancelToken;
use crate::project::{Project, RunName};

/// `--run`, else the run trained last, else none (a project without runs).
pub fn run_or_latest(project: &Project, run: &Option<RunName>) -> Result<Option<RunName>> {
    if let Some(run) = run {
        return Ok(Some(run.clone()));
    }
    if project.trained_runs()?.is_empty() {
        return Ok(None);
    }
    Ok(Some(project.latest_run()?))
}

/// `--top N`: how many hits to list, at least one (0 would list nothing, which no one asks for).
pub fn parse_top(text: &str) -> Result<u64, String> {
    let top: u64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a count; expected a whole number, at least 1"))?;
    if top == 0 {
        return Err("0 would list no hit; expected at least 1".into());
    }
    Ok(top)
}

/// A bar on stderr (hidden when stderr is not a terminal) and the update its work calls.
pub fn bar(label: &str, unit: &str) -> ProgressBar {
    ProgressBar::new(0).with_style(
        ProgressStyle::with_template(&format!(
            "{label} {{bar:30}} {{pos}}/{{len}} {unit} [{{elapsed}}<{{eta}}]"
        ))
        .expect("a valid template"),
    )
}

/// Sets `bar` from a (done, total) report.
pub fn update(bar: &ProgressBar) -> impl FnMut(usize, usize) + '_ {
    move |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    }
}

/// The process's Ctrl-C as a cancel token.
pub fn cancel_token() -> Result<CancelToken> {
    Ok(crate::process::interrupt_token()?)
}
