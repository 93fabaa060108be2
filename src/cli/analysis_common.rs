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
