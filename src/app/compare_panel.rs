//! Compare two runs of one project: the second run's map beside the first's, laid out from the
//! first's positions and fitted onto them (`analysis::compare::align_layout`), selection and
//! hover linked; their retrieval tables side by side (`analysis::compare::compare_runs`, what
//! `crossclr compare` prints); for the anchor, how its nearest clips and its pruned negatives
//! differ between the runs.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::explorer::{ClipPixels, ExplorerApp, LayoutFrame};
use super::jobs::Job;
use super::map_panel::MapView;
use super::pruning_panel::PruningView;
use super::scene::Scene;
use super::settings::{Level, Modality, Space};
use crate::analysis::compare::RunComparison;
use crate::crossclr::LossKind;
use crate::project::RunName;

/// The GPU map the second run is drawn by (the first is map 0).
pub const COMPARE_MAP: u32 = 1;
/// Nearest clips compared for the anchor.
pub const ANCHOR_NEIGHBOURS: usize = 10;

/// What the compare job made: the second run's scene (same clips, in the same order, as the
/// first's) and the two runs' tables.
pub struct Compared {
    pub first: RunName,
    pub second: RunName,
    pub scene: Arc<Scene>,
    pub table: RunComparison,
    pub seconds: f64,
}

/// The compare view's state: its picks, its jobs, the second map.
pub struct CompareState {
    /// The window is open.
    pub open: bool,
    /// The trained runs of the shown project (read when it was opened).
    pub runs: Vec<RunName>,
    /// The run to put beside the shown one.
    pub second: Option<RunName>,
    pub job: Option<Job<Compared>>,
    pub compared: Option<Compared>,
    pub layout_job: Option<(Level, Job<LayoutFrame>)>,
    pub thumbnail_job: Option<Job<Vec<ClipPixels>>>,
    pub map: MapView,
    /// The level the second map shows.
    pub shown_level: Option<Level>,
    /// The anchor's sets under the second run's loss, and the (anchor, side, γ bits) they are for.
    pub pruning: Option<PruningView>,
    pub pruning_for: Option<(usize, Modality, u64)>,
    pub problem: Option<String>,
}

impl std::fmt::Debug for Compared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compared")
            .field("first", &self.first)
            .field("second", &self.second)
            .field("clips", &self.table.clips)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for CompareState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompareState")
            .field("open", &self.open)
            .field("second", &self.second)
            .field("compared", &self.compared)
            .field("shown_level", &self.shown_level)
            .finish_non_exhaustive()
    }
}

impl Default for CompareState {
    fn default() -> Self {
        Self {
            open: false,
            runs: Vec::new(),
            second: None,
            job: None,
            compared: None,
            layout_job: None,
            thumbnail_job: None,
            map: MapView::for_gpu_map(COMPARE_MAP),
            shown_level: None,
            pruning: None,
            pruning_for: None,
            problem: None,
        }
    }
}

impl CompareState {
    /// The second map is on screen.
    pub fn showing(&self) -> bool {
        self.compared.is_some() && self.shown_level.is_some()
    }

    pub fn busy(&self) -> bool {
        self.job.is_some() || self.layout_job.is_some() || self.thumbnail_job.is_some()
    }

    /// Stops the jobs and drops the second map (a new project, or the user closed it).
    pub fn close(&mut self) {
        for cancel in [
            self.job.as_ref().map(|j| &j.cancel),
            self.layout_job.as_ref().map(|(_, j)| &j.cancel),
            self.thumbnail_job.as_ref().map(|j| &j.cancel),
        ]
        .into_iter()
        .flatten()
        {
            cancel.cancel();
        }
        self.job = None;
        self.layout_job = None;
        self.thumbnail_job = None;
        self.compared = None;
        self.shown_level = None;
        self.pruning = None;
        self.pruning_for = None;
        self.map.set_positions(Vec::new(), true);
    }

    /// A new project: its runs, and nothing compared yet.
    pub fn reset(&mut self, runs: Vec<RunName>, shown: Option<&RunName>) {
        self.close();
        self.problem = None;
        if self
            .second
            .as_ref()
            .is_none_or(|second| !runs.contains(second) || Some(second) == shown)
        {
            self.second = runs.iter().rev().find(|r| Some(*r) != shown).cloned();
        }
        self.runs = runs;
    }
}

/// The anchor's sets under `scene`'s loss: CrossCLR's pruning at `gamma` in the run's mode; the
/// other losses prune nothing by input connectivity, so all their negatives are kept.
pub fn pruning_under_run(scene: &Scene, anchor: usize, side: Modality, gamma: f64) -> PruningView {
    let mut view = PruningView::of_split(scene, anchor, side, gamma);
    if scene.loss.kind != LossKind::Crossclr {
        view.cross_kept.append(&mut view.cross_pruned);
        view.intra_kept.append(&mut view.intra_pruned);
        view.cross_kept.sort_unstable();
        view.intra_kept.sort_unstable();
    }
    view
}

/// The loss a scene's run trained with, in a few words.
fn loss_name(scene: &Scene) -> String {
    match scene.loss.kind {
        LossKind::Crossclr => format!("CrossCLR, {} mode", scene.loss.crossclr.mode),
        LossKind::Infonce => "InfoNCE".into(),
        LossKind::Maxmargin => "max-margin".into(),
        LossKind::Xmlnet => "X-MLNet".into(),
    }
}

/// The window: the runs to compare, then what differs.
pub fn compare_ui(ui: &mut egui::Ui, app: &mut ExplorerApp, ctx: &egui::Context) {
    let Some(scene) = app.scene.clone() else {
        ui.label("Open a project first.");
        return;
    };
    let Some(first) = scene.run() else {
        ui.label("The map shows input features: train a run (two, to compare them) first.");
        return;
    };
    let others: Vec<RunName> = app
        .compare
        .runs
        .iter()
        .filter(|r| **r != first)
        .cloned()
        .collect();
    ui.horizontal(|ui| {
        ui.label(format!("left: `{first}` (the map) beside"));
        let shown = app
            .compare
            .second
            .as_ref()
            .map_or("no other run".to_string(), |r| format!("`{r}`"));
        egui::ComboBox::from_id_salt("compare-second")
            .selected_text(shown)
            .show_ui(ui, |ui| {
                for run in &others {
                    ui.selectable_value(&mut app.compare.second, Some(run.clone()), run.as_str());
                }
            });
        let can = app.compare.second.is_some() && app.compare.job.is_none();
        if ui
            .add_enabled(can, egui::Button::new("show side by side"))
            .on_disabled_hover_text("the project needs a second trained run")
            .clicked()
        {
            app.start_compare(ctx);
        }
        if app.compare.compared.is_some() && ui.button("close").clicked() {
            app.compare.close();
            app.map.fit_pending = true;
        }
    });
    if others.is_empty() {
        ui.label(
            egui::RichText::new(
                "This project has one trained run: train another (the Train panel) to compare.",
            )
            .weak(),
        );
    }
    if let Some(job) = &app.compare.job {
        ui.horizontal(|ui| {
            ui.add(
                egui::ProgressBar::new(job.fraction().unwrap_or(0.0))
                    .desired_width(220.0)
                    .text(job.text.clone()),
            );
            if ui.small_button("stop").clicked() {
                job.cancel.cancel();
            }
        });
    }
    if let Some(problem) = &app.compare.problem {
        ui.colored_label(egui::Color32::from_rgb(240, 170, 90), problem);
    }
    let Some(compared) = &app.compare.compared else {
        return;
    };
    let table = &compared.table;
    let mut select = None;
    ui.separator();
    ui.columns(2, |columns| {
        let ui = &mut columns[0];
            ui.label(format!(
                "split `{}`: {} clips of {} videos; left `{}` ({}, epoch {}), right `{}` ({}, epoch {}); {:.1} s",
                table.split,
                table.clips,
                table.videos,
                table.first.run,
                loss_name(&scene),
                table.first.epoch,
                table.second.run,
                loss_name(&compared.scene),
                table.second.epoch,
                compared.seconds
            ));
            egui::Grid::new("compare-metrics")
                .striped(true)
                .num_columns(4)
                .show(ui, |ui| {
                    ui.strong("R@1 / R@5 / R@10, MdR");
                    ui.strong(table.first.run.as_str());
                    ui.strong(table.second.run.as_str());
                    ui.strong("R@1 change");
                    ui.end_row();
                    let first = table.first.report.directions();
                    let second = table.second.report.directions();
                    for ((direction, a), (_, b)) in first.iter().zip(&second) {
                        ui.label(direction.replace(" → ", " to "));
                        for m in [a, b] {
                            ui.label(format!(
                                "{:.1} / {:.1} / {:.1}, {}",
                                100.0 * m.r1,
                                100.0 * m.r5,
                                100.0 * m.r10,
                                m.median_rank
                            ));
                        }
                        let change = 100.0 * (b.r1 - a.r1);
                        let colour = if change > 0.0 {
                            egui::Color32::from_rgb(120, 210, 140)
                        } else if change < 0.0 {
                            egui::Color32::from_rgb(240, 130, 110)
                        } else {
                            ui.visuals().text_color()
                        };
                        ui.colored_label(colour, format!("{change:+.1}"));
                        ui.end_row();
                    }
                });
            let ranks = &table.ranks;
            ui.label(format!(
                "each clip's rank of its own sentence: {} better on the right, {} worse, {} the same; {} newly first, {} no longer first",
                ranks.better, ranks.worse, ranks.same, ranks.gained_top1, ranks.lost_top1
            ));
            ui.label(format!(
                "nearest {} clips in joint space: {:.0}% shared on average",
                table.overlap.k,
                100.0 * table.overlap.mean
            ));
            egui::CollapsingHeader::new("largest rank changes")
                .id_salt("compare-moves")
                .show(ui, |ui| {
                    for (title, moves) in [
                        ("gained", &ranks.largest_gains),
                        ("lost", &ranks.largest_losses),
                    ] {
                        ui.strong(title);
                        for change in moves.iter().take(5) {
                            let text = format!(
                                "rank {} to {}: {}",
                                change.rank_first,
                                change.rank_second,
                                change.caption.as_deref().unwrap_or(&change.key)
                            );
                            if ui.link(text).clicked() {
                                select = scene.clip_of_key(&change.key);
                            }
                        }
                    }
                });

        let ui = &mut columns[1];
            match app.anchor {
                Some(anchor) => anchor_ui(ui, app, &scene, &compared.scene, anchor, &mut select),
                None => {
                    ui.label("Click a clip on either map: its neighbours and pruned negatives under both runs show here.");
                }
            }

    });
    if let Some(clip) = select {
        app.select(clip);
    }
}

/// How the anchor's nearest clips and pruned negatives differ between the runs.
fn anchor_ui(
    ui: &mut egui::Ui,
    app: &ExplorerApp,
    first: &Scene,
    second: &Scene,
    anchor: usize,
    select: &mut Option<usize>,
) {
    ui.strong(format!("anchor: {}", first.clips[anchor].caption));
    let near_a = first.neighbours(anchor, Space::Joint, ANCHOR_NEIGHBOURS);
    let near_b = second.neighbours(anchor, Space::Joint, ANCHOR_NEIGHBOURS);
    let set_a: BTreeSet<usize> = near_a.iter().map(|n| n.0).collect();
    let set_b: BTreeSet<usize> = near_b.iter().map(|n| n.0).collect();
    ui.label(format!(
        "nearest {ANCHOR_NEIGHBOURS} clips in joint space: {} in both (bold)",
        set_a.intersection(&set_b).count()
    ));
    ui.columns(2, |columns| {
        for (ui, (near, other)) in columns
            .iter_mut()
            .zip([(&near_a, &set_b), (&near_b, &set_a)])
        {
            for &(clip, score) in near.iter() {
                let mut text =
                    egui::RichText::new(format!("{score:.3} {}", first.clips[clip].caption));
                if other.contains(&clip) {
                    text = text.strong();
                } else {
                    text = text.weak();
                }
                let line = egui::Label::new(text)
                    .truncate()
                    .sense(egui::Sense::click());
                if ui
                    .add(line)
                    .on_hover_text(&first.clips[clip].caption)
                    .clicked()
                {
                    *select = Some(clip);
                }
            }
        }
    });
    let (Some(a), Some(b)) = (app.pruning.as_ref(), app.compare.pruning.as_ref()) else {
        return;
    };
    if a.anchor != anchor || b.anchor != anchor {
        return;
    }
    let gamma = app.settings.gamma;
    ui.label(format!(
        "pruned negatives at γ {gamma:.2} ({} anchors; CrossCLR prunes by input-space connectivity, which both runs share, so only the loss and its mode change them)",
        match app.settings.pruning_side {
            Modality::Video => "video",
            Modality::Text => "text",
        }
    ));
    egui::Grid::new("compare-pruned")
        .striped(true)
        .num_columns(6)
        .show(ui, |ui| {
            for title in ["", "left", "right", "both", "left only", "right only"] {
                ui.strong(title);
            }
            ui.end_row();
            for (name, left, right) in [
                ("cross-modal", &a.cross_pruned, &b.cross_pruned),
                ("intra-modal", &a.intra_pruned, &b.intra_pruned),
            ] {
                let left: BTreeSet<usize> = left.iter().copied().collect();
                let right: BTreeSet<usize> = right.iter().copied().collect();
                ui.label(name);
                ui.label(left.len().to_string());
                ui.label(right.len().to_string());
                ui.label(left.intersection(&right).count().to_string());
                ui.label(left.difference(&right).count().to_string());
                ui.label(right.difference(&left).count().to_string());
                ui.end_row();
            }
        });
}
