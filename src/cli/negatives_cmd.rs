//! `crossclr negatives DIR --anchor KEY`: what the loss keeps and prunes for one anchor, over a
//! whole split or inside a replayed training batch; `--audit`: precision and recall of the
//! pruning over a sweep of γ (`analysis::negatives`, `analysis::audit`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};

use super::analysis_common::{bar, cancel_token, run_or_latest, update};
use crate::analysis::audit::{
    AuditReport, AuditRequest, AuditScope, PruningScore, Truth, TruthChoice, audit, default_gammas,
};
use crate::analysis::negatives::{
    AnchorExplanation, Candidate, NegativesRequest, Scope, explain_anchor,
};
use crate::analysis::samples::Modality;
use crate::crossclr::Mode;
use crate::project::{Project, RunName};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScopeArg {
    /// The whole split as one batch (the paper's Fig. 4).
    Set,
    /// The batch the run's training loop formed at --epoch and --step.
    Batch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TruthArg {
    /// The planted topic on a `synth` project, else caption similarity.
    Auto,
    /// The planted topic of a `synth` project's captions.
    Topic,
    /// Text-encoder cosine of the captions at least --duplicate-threshold.
    Caption,
}

#[derive(Debug, Args)]
pub struct NegativesArgs {
    /// The project directory.
    pub project: PathBuf,
    /// The clip to explain.
    #[arg(long, required_unless_present = "audit")]
    pub anchor: Option<String>,
    /// The split (default: train.train_split).
    #[arg(long)]
    pub split: Option<String>,
    /// Explain the anchor's video or its caption.
    #[arg(long, value_enum, default_value_t = Modality::Video)]
    pub modality: Modality,
    /// Paper or official rule (default: the run's mode, else the project's).
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    /// The pruning threshold (default: the run's γ, else the project's).
    #[arg(long)]
    pub gamma: Option<f64>,
    #[arg(long, value_enum, default_value_t = ScopeArg::Set)]
    pub scope: ScopeArg,
    /// With --scope batch: the epoch (from 1).
    #[arg(long)]
    pub epoch: Option<usize>,
    /// With --scope batch: the step within the epoch (from 1; default: the step holding the anchor).
    #[arg(long)]
    pub step: Option<usize>,
    /// The run whose settings and batches apply (default: the last one trained).
    #[arg(long)]
    pub run: Option<RunName>,
    /// Precision and recall of the pruning for γ from 0.5 to 1.0 (with --scope batch: over every
    /// step of --epoch).
    #[arg(long)]
    pub audit: bool,
    /// What counts as a true duplicate in the audit.
    #[arg(long, value_enum, default_value_t = TruthArg::Auto)]
    pub truth: TruthArg,
    /// Caption cosine from which two clips are duplicates (--truth caption or auto).
    #[arg(long, default_value_t = 0.8)]
    pub duplicate_threshold: f64,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &NegativesArgs) -> Result<()> {
    let project = Project::open(&args.project)?;
    let cancel = cancel_token()?;
    let run = run_or_latest(&project, &args.run)?;
    let progress = bar("replay", "steps");
    let mut out = std::io::stdout().lock();
    if args.audit {
        let scope = match args.scope {
            ScopeArg::Set => AuditScope::Set,
            ScopeArg::Batch => AuditScope::Run {
                epoch: args.epoch.unwrap_or(1),
            },
        };
        let truth = match args.truth {
            TruthArg::Auto => TruthChoice::Auto {
                threshold: args.duplicate_threshold,
            },
            TruthArg::Topic => TruthChoice::Given(Truth::Topic),
            TruthArg::Caption => TruthChoice::Given(Truth::Caption {
                threshold: args.duplicate_threshold,
            }),
        };
        let request = AuditRequest {
            scope,
            split: args.split.clone(),
            truth,
            gammas: default_gammas(),
            mode: args.mode,
            run,
        };
        let report = audit(&project, &request, &mut update(&progress), &cancel)?;
        progress.finish_and_clear();
        if args.json {
            writeln!(out, "{}", serde_json::to_string(&report)?)?;
        } else {
            print_audit(&mut out, &report)?;
        }
        return Ok(());
    }
    let scope = match (args.scope, args.epoch, args.step) {
        (ScopeArg::Set, None, None) => Scope::Set,
        (ScopeArg::Set, _, _) => {
            bail!("--epoch and --step choose a training batch: add --scope batch")
        }
        (ScopeArg::Batch, Some(epoch), Some(step)) => Scope::Batch { epoch, step },
        (ScopeArg::Batch, Some(epoch), None) => Scope::AnchorBatch { epoch },
        (ScopeArg::Batch, None, _) => {
            bail!(
                "--scope batch needs --epoch E (from 1), and optionally --step S: the anchor's own step by default"
            )
        }
    };
    let request = NegativesRequest {
        anchor: args
            .anchor
            .clone()
            .expect("clap requires --anchor without --audit"),
        split: args.split.clone(),
        modality: args.modality,
        mode: args.mode,
        gamma: args.gamma,
        scope,
        run,
    };
    let explained = explain_anchor(&project, &request, &mut update(&progress), &cancel)?;
    progress.finish_and_clear();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&explained)?)?;
    } else {
        print_explanation(&mut out, &explained)?;
    }
    Ok(())
}

/// Candidates listed per set in the table (the JSON has all of them).
const LISTED: usize = 8;

fn print_explanation(out: &mut impl Write, e: &AnchorExplanation) -> std::io::Result<()> {
    let place = match (e.epoch, e.step, &e.run) {
        (Some(epoch), Some(step), Some(run)) => {
            format!(
                "batch of run `{run}`, epoch {epoch}, step {step}: {} clips of `{}`",
                e.batch, e.split
            )
        }
        _ => format!(
            "the whole split `{}` as one batch: {} clips",
            e.split, e.batch
        ),
    };
    writeln!(
        out,
        "anchor {} ({}) · {place} · {} mode · γ {}",
        e.anchor, e.modality, e.mode, e.gamma
    )?;
    if let Some(queue) = e.queue {
        writeln!(
            out,
            "  queue: {} of {} slots filled, pointer at {}",
            queue.filled, queue.capacity, queue.pointer
        )?;
    }
    writeln!(out, "  positive: {}", e.positive.join(", "))?;
    writeln!(out, "  influential: {} of {}", e.influential.len(), e.batch)?;
    writeln!(
        out,
        "  cross-modal: {} kept, {} pruned · intra-modal: {} kept, {} pruned",
        e.kept.len(),
        e.pruned_cross.len(),
        e.kept_intra.len(),
        e.pruned_intra.len()
    )?;
    let mut list = |name: &str, candidates: &[Candidate]| -> std::io::Result<()> {
        if candidates.is_empty() {
            return Ok(());
        }
        let mut sorted: Vec<&Candidate> = candidates.iter().collect();
        sorted.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
        writeln!(
            out,
            "  {name} (most similar first; score c/max c, input cosine):"
        )?;
        for c in sorted.iter().take(LISTED) {
            let key = c.key.clone().unwrap_or_else(|| "(noise)".into());
            let slot = c.slot.map(|s| format!(" [slot {s}]")).unwrap_or_default();
            writeln!(out, "    {key}{slot}  {:.4}  {:.4}", c.score, c.similarity)?;
        }
        if sorted.len() > LISTED {
            writeln!(
                out,
                "    … {} more (--json lists all)",
                sorted.len() - LISTED
            )?;
        }
        Ok(())
    };
    list("pruned cross-modal", &e.pruned_cross)?;
    list("pruned intra-modal", &e.pruned_intra)?;
    list("kept cross-modal", &e.kept)?;
    Ok(())
}

fn print_audit(out: &mut impl Write, report: &AuditReport) -> std::io::Result<()> {
    let truth = match report.truth {
        Truth::Topic => "same planted topic".to_string(),
        Truth::Caption { threshold } => format!("caption cosine ≥ {threshold}"),
    };
    let place = match (&report.run, report.epoch) {
        (Some(run), Some(epoch)) => format!("every batch of run `{run}`, epoch {epoch}"),
        _ => format!("the split `{}` as one batch", report.split),
    };
    writeln!(
        out,
        "pruning audit · {place} · {} anchors · {} mode · duplicates: {truth}",
        report.anchors, report.mode
    )?;
    writeln!(
        out,
        "  precision = pruned duplicates / pruned, recall = pruned duplicates / duplicates; mean over anchors"
    )?;
    writeln!(
        out,
        "     γ    video cross P    R    text cross P    R    pruned/anchor (v, t)"
    )?;
    let show = |v: Option<f64>| v.map_or("   –".to_string(), |v| format!("{v:.3}"));
    for row in &report.sweep {
        let (v, t): (&PruningScore, &PruningScore) = (&row.video.cross, &row.text.cross);
        writeln!(
            out,
            "  {:.2}         {}  {}         {}  {}    {:.1}, {:.1}",
            row.gamma,
            show(v.precision),
            show(v.recall),
            show(t.precision),
            show(t.recall),
            v.pruned,
            t.pruned
        )?;
    }
    if report.scope == "batch" {
        writeln!(
            out,
            "  intra-modal (queue or batch) pruning: see --json (`intra`)"
        )?;
    }
    Ok(())
}
