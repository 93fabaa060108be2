//! The pruning view, the heart of the explorer: for the selected anchor, its positive(s), the
//! negatives the loss keeps and the ones it prunes — cross-modal and intra-modal — over its whole
//! split (recomputed on every γ change, from `analysis::negatives::split_negatives`, the loss's
//! own rule) or in the batch the run's training loop formed for it (`explain_anchor`, queue
//! included, on a job). Below it, the audit: at each γ, how many pruned negatives were true
//! duplicates of the anchor, and how many duplicates were caught.

use std::time::Instant;

use super::explorer::ExplorerApp;
use super::scene::Scene;
use super::settings::{Modality, PruningScope};
use crate::analysis::audit::{AuditReport, PruningScore};
use crate::analysis::negatives::{AnchorExplanation, split_negatives};

pub const POSITIVE: [u8; 4] = [80, 220, 110, 255];
pub const PRUNED_CROSS: [u8; 4] = [240, 70, 70, 255];
pub const PRUNED_INTRA: [u8; 4] = [250, 165, 40, 255];
pub const PRUNED_BOTH: [u8; 4] = [225, 85, 225, 255];
pub const KEPT: [u8; 4] = [110, 140, 185, 255];
pub const ANCHOR: [u8; 4] = [255, 255, 255, 255];

/// One anchor's sets, as clip indices of the scene.
#[derive(Debug, Clone, PartialEq)]
pub struct PruningView {
    pub anchor: usize,
    pub side: Modality,
    pub gamma: f64,
    /// Where the batch came from, for the panel.
    pub scope: String,
    pub batch: usize,
    pub positive: Vec<usize>,
    pub cross_kept: Vec<usize>,
    pub cross_pruned: Vec<usize>,
    pub intra_kept: Vec<usize>,
    pub intra_pruned: Vec<usize>,
    /// Intra-modal candidates that are queue slots still holding the queue's initial noise.
    pub noise_slots: usize,
    /// How long the sets took to compute, in microseconds (the γ slider's lag).
    pub micros: f64,
}

impl PruningView {
    /// Over the anchor's whole split taken as one batch.
    pub fn of_split(scene: &Scene, anchor: usize, side: Modality, gamma: f64) -> Self {
        let started = Instant::now();
        let range = scene.split_range(anchor);
        let connectivity = &scene.connectivity(side).connectivity[range.clone()];
        let sets = split_negatives(
            connectivity,
            anchor - range.start,
            scene.loss.crossclr.mode,
            gamma,
        );
        let to_clips = |local: &[usize]| local.iter().map(|&j| range.start + j).collect::<Vec<_>>();
        let micros = started.elapsed().as_secs_f64() * 1e6;
        Self {
            anchor,
            side,
            gamma,
            scope: format!("split `{}` as one batch", scene.clips[anchor].split),
            batch: range.len(),
            positive: vec![range.start + sets.positive],
            cross_kept: to_clips(&sets.cross_kept),
            cross_pruned: to_clips(&sets.cross_pruned),
            intra_kept: to_clips(&sets.intra_kept),
            intra_pruned: to_clips(&sets.intra_pruned),
            noise_slots: 0,
            micros,
        }
    }

    /// From the analysis' explanation of a replayed training batch.
    pub fn of_explanation(
        scene: &Scene,
        anchor: usize,
        explanation: &AnchorExplanation,
        micros: f64,
    ) -> Self {
        let clips = |keys: &mut dyn Iterator<Item = Option<&String>>, noise: &mut usize| {
            let mut out = Vec::new();
            for key in keys {
                match key.and_then(|k| scene.clip_of_key(k)) {
                    Some(clip) => out.push(clip),
                    None => *noise += 1,
                }
            }
            out
        };
        let mut noise = 0;
        let mut ignored = 0;
        let positive = clips(&mut explanation.positive.iter().map(Some), &mut ignored);
        let cross_kept = clips(
            &mut explanation.kept.iter().map(|c| c.key.as_ref()),
            &mut ignored,
        );
        let cross_pruned = clips(
            &mut explanation.pruned_cross.iter().map(|c| c.key.as_ref()),
            &mut ignored,
        );
        let intra_kept = clips(
            &mut explanation.kept_intra.iter().map(|c| c.key.as_ref()),
            &mut noise,
        );
        let intra_pruned = clips(
            &mut explanation.pruned_intra.iter().map(|c| c.key.as_ref()),
            &mut noise,
        );
        let queue = explanation
            .queue
            .map(|q| format!(", queue {}/{} filled", q.filled, q.capacity))
            .unwrap_or_default();
        Self {
            anchor,
            side: explanation.modality,
            gamma: explanation.gamma,
            scope: format!(
                "run `{}`, epoch {}, step {}{queue}",
                explanation.run.as_deref().unwrap_or("?"),
                explanation.epoch.unwrap_or(0),
                explanation.step.unwrap_or(0)
            ),
            batch: explanation.batch,
            positive,
            cross_kept,
            cross_pruned,
            intra_kept,
            intra_pruned,
            noise_slots: noise,
            micros,
        }
    }

    /// The colour each clip of the view gets; clips outside it keep theirs.
    pub fn colours(&self) -> Vec<(usize, [u8; 4])> {
        let mut out: Vec<(usize, [u8; 4])> = Vec::new();
        out.extend(self.cross_kept.iter().map(|&c| (c, KEPT)));
        out.extend(self.intra_kept.iter().map(|&c| (c, KEPT)));
        out.extend(self.intra_pruned.iter().map(|&c| (c, PRUNED_INTRA)));
        for &c in &self.cross_pruned {
            let both = self.intra_pruned.contains(&c);
            out.push((c, if both { PRUNED_BOTH } else { PRUNED_CROSS }));
        }
        out.extend(self.positive.iter().map(|&c| (c, POSITIVE)));
        out.push((self.anchor, ANCHOR));
        out
    }

    /// The clips drawn at full colour over the dimmed rest, with edges from the anchor.
    pub fn highlighted(&self) -> Vec<(usize, [u8; 4])> {
        self.colours()
            .into_iter()
            .filter(|(_, c)| *c != KEPT)
            .collect()
    }
}

fn duration_text(micros: f64) -> String {
    if micros < 10_000.0 {
        format!("{micros:.0} µs")
    } else if micros < 10_000_000.0 {
        format!("{:.1} ms", micros / 1e3)
    } else {
        format!("{:.1} s", micros / 1e6)
    }
}

fn swatch(ui: &mut egui::Ui, colour: [u8; 4]) {
    let (dot, _) = ui.allocate_exact_size(egui::vec2(12.0, 12.0), egui::Sense::hover());
    ui.painter().circle_filled(
        dot.center(),
        5.0,
        egui::Color32::from_rgba_unmultiplied(colour[0], colour[1], colour[2], colour[3]),
    );
}

/// The pruning view's controls, counts and the audit; returns true when what the map shows of it
/// changed (γ moved, the overlay toggled).
pub fn pruning_ui(ui: &mut egui::Ui, app: &mut ExplorerApp) -> bool {
    ui.heading("Pruned negatives");
    let toggled = ui
        .checkbox(
            &mut app.settings.show_pruning,
            "show the anchor's negatives on the map",
        )
        .changed();
    let Some(scene) = app.scene.clone() else {
        return toggled;
    };
    let mode = scene.loss.crossclr.mode;
    ui.horizontal(|ui| {
        for side in [Modality::Video, Modality::Text] {
            ui.selectable_value(
                &mut app.settings.pruning_side,
                side,
                format!("{side} anchors"),
            );
        }
    });
    ui.horizontal(|ui| {
        ui.selectable_value(
            &mut app.settings.pruning_scope,
            PruningScope::Split,
            "whole split",
        );
        ui.add_enabled_ui(scene.trained(), |ui| {
            ui.selectable_value(
                &mut app.settings.pruning_scope,
                PruningScope::TrainingBatch,
                "training batch",
            )
            .on_disabled_hover_text("replaying a training batch needs a trained run");
        });
        if app.settings.pruning_scope == PruningScope::TrainingBatch {
            ui.add(
                egui::DragValue::new(&mut app.settings.pruning_epoch)
                    .range(1..=10_000)
                    .prefix("epoch "),
            );
        }
    });
    let gamma = app.settings.gamma;
    ui.add(egui::Slider::new(&mut app.settings.gamma, 0.0..=1.0).text("γ"));
    let moved = gamma != app.settings.gamma || toggled;
    ui.label(format!(
        "{mode} mode; the run trained with γ = {:.2}",
        scene.loss.crossclr.gamma
    ));
    match (&app.pruning, app.anchor) {
        (_, None) => {
            ui.label(
                "Click a clip: its positive and the negatives the loss keeps and prunes light up.",
            );
        }
        (None, Some(_)) => {
            ui.label(
                app.pruning_status
                    .clone()
                    .unwrap_or_else(|| "computing…".into()),
            );
        }
        (Some(view), Some(_)) => {
            ui.label(format!("{}, {} samples", view.scope, view.batch));
            egui::Grid::new("pruning-counts")
                .num_columns(3)
                .show(ui, |ui| {
                    let mut row = |colour: [u8; 4], name: &str, count: usize| {
                        swatch(ui, colour);
                        ui.label(name);
                        ui.label(count.to_string());
                        ui.end_row();
                    };
                    row(ANCHOR, "anchor", 1);
                    row(POSITIVE, "positive", view.positive.len());
                    row(KEPT, "cross-modal kept", view.cross_kept.len());
                    row(PRUNED_CROSS, "cross-modal pruned", view.cross_pruned.len());
                    row(KEPT, "intra-modal kept", view.intra_kept.len());
                    row(PRUNED_INTRA, "intra-modal pruned", view.intra_pruned.len());
                    if view.noise_slots > 0 {
                        row(KEPT, "queue slots of noise", view.noise_slots);
                    }
                });
            ui.label(
                egui::RichText::new(format!("computed in {}", duration_text(view.micros)))
                    .small()
                    .weak(),
            );
            if let Some(status) = &app.pruning_status {
                ui.label(egui::RichText::new(status).italics());
            }
        }
    }
    moved
}

/// The audit of the pruning at the current γ, for the pruning side's modality.
pub fn audit_panel_ui(ui: &mut egui::Ui, app: &ExplorerApp) {
    audit_ui(
        ui,
        app.audit.as_ref(),
        app.audit_status.as_deref(),
        app.settings.gamma,
        app.settings.pruning_side,
    );
}

/// The audit's row nearest γ and its precision/recall curve over γ.
fn audit_ui(
    ui: &mut egui::Ui,
    audit: Option<&AuditReport>,
    status: Option<&str>,
    gamma: f64,
    side: Modality,
) {
    let Some(audit) = audit else {
        ui.label(status.unwrap_or("the audit runs after the map is loaded"));
        return;
    };
    let score = |row: &crate::analysis::audit::GammaRow| match side {
        Modality::Video => row.video,
        Modality::Text => row.text,
    };
    let Some(nearest) = audit
        .sweep
        .iter()
        .min_by(|a, b| (a.gamma - gamma).abs().total_cmp(&(b.gamma - gamma).abs()))
    else {
        return;
    };
    // A precision of 0.4% is not 0%: small shares keep a decimal.
    let percent = |v: Option<f64>| {
        v.map_or("–".into(), |v| {
            let p = 100.0 * v;
            if p > 0.0 && p < 10.0 {
                format!("{p:.1}%")
            } else {
                format!("{p:.0}%")
            }
        })
    };
    ui.label(format!(
        "split `{}`, truth: {:?}, γ = {:.2}",
        audit.split, audit.truth, nearest.gamma
    ));
    egui::Grid::new("audit-row").num_columns(4).show(ui, |ui| {
        ui.label("");
        ui.label("pruned/anchor");
        ui.label("duplicates among pruned");
        ui.label("duplicates caught");
        ui.end_row();
        let side_score = score(nearest);
        for (name, s) in [
            ("cross-modal", side_score.cross),
            ("intra-modal", side_score.intra),
        ] {
            let PruningScore {
                precision,
                recall,
                pruned,
                ..
            } = s;
            ui.label(name);
            ui.label(format!("{pruned:.1}"));
            ui.label(percent(precision));
            ui.label(percent(recall));
            ui.end_row();
        }
    });
    curve_ui(ui, audit, gamma, &score);
}

/// Precision (solid) and recall (dashed) of cross-modal pruning against γ, with γ marked.
fn curve_ui(
    ui: &mut egui::Ui,
    audit: &AuditReport,
    gamma: f64,
    score: &dyn Fn(&crate::analysis::audit::GammaRow) -> crate::analysis::audit::SideScore,
) {
    let (rect, _) = ui.allocate_exact_size(
        egui::vec2(ui.available_width().min(280.0), 110.0),
        egui::Sense::hover(),
    );
    let painter = ui.painter_at(rect);
    painter.rect_stroke(
        rect,
        2.0,
        egui::Stroke::new(1.0, egui::Color32::from_gray(70)),
        egui::StrokeKind::Inside,
    );
    let (low, high) = audit.sweep.iter().fold((f64::MAX, f64::MIN), |(l, h), r| {
        (l.min(r.gamma), h.max(r.gamma))
    });
    let span = (high - low).max(1e-9);
    let at = |g: f64, v: f64| {
        egui::pos2(
            rect.left() + 6.0 + (rect.width() - 12.0) * ((g - low) / span) as f32,
            rect.bottom() - 6.0 - (rect.height() - 12.0) * v as f32,
        )
    };
    let line = |values: Vec<egui::Pos2>, colour: egui::Color32| {
        if values.len() > 1 {
            painter.add(egui::Shape::line(values, egui::Stroke::new(1.5, colour)));
        }
    };
    let precision: Vec<egui::Pos2> = audit
        .sweep
        .iter()
        .filter_map(|r| score(r).cross.precision.map(|p| at(r.gamma, p)))
        .collect();
    let recall: Vec<egui::Pos2> = audit
        .sweep
        .iter()
        .filter_map(|r| score(r).cross.recall.map(|p| at(r.gamma, p)))
        .collect();
    line(precision, egui::Color32::from_rgb(240, 70, 70));
    line(recall, egui::Color32::from_rgb(110, 170, 240));
    if (low..=high).contains(&gamma) {
        let x = at(gamma, 0.0).x;
        painter.vline(
            x,
            rect.y_range(),
            egui::Stroke::new(1.0, egui::Color32::from_gray(200)),
        );
    }
    let font = egui::FontId::proportional(10.0);
    painter.text(
        rect.left_top() + egui::vec2(6.0, 4.0),
        egui::Align2::LEFT_TOP,
        "precision",
        font.clone(),
        egui::Color32::from_rgb(240, 70, 70),
    );
    painter.text(
        rect.left_top() + egui::vec2(66.0, 4.0),
        egui::Align2::LEFT_TOP,
        "recall",
        font.clone(),
        egui::Color32::from_rgb(110, 170, 240),
    );
    painter.text(
        rect.right_bottom() - egui::vec2(6.0, 4.0),
        egui::Align2::RIGHT_BOTTOM,
        format!("γ {low:.2}–{high:.2}"),
        font,
        egui::Color32::from_gray(160),
    );
}
