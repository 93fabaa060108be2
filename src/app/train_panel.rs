//! The Train panel: a run's settings (a preset, the loss and its τ κ λ γ, queue, multiple
//! positives, epochs, batch size, seed, device), start / pause / resume on a job that calls the
//! same `train::PreparedRun` as `crossclr train`, live curves of every step's losses and pruned
//! fraction and of every epoch's validation R@1 and learning rate, and the best epoch's table
//! when the run ends. The map then shows the run, its t-SNE warm-started from the layout before.

use std::path::{Path, PathBuf};

use egui_plot::{Legend, Line, Plot};

use super::explorer::ExplorerApp;
use super::jobs::{Job, Polled};
use crate::crossclr::{LossKind, Mode};
use crate::jobs::progress_channel;
use crate::model::DeviceKind;
use crate::project::config::Preset;
use crate::project::{Project, ProjectConfig, RunName};
use crate::train::{EpochRecord, Outcome, PreparedRun, RunRequest, TrainEvent, default_run_name};

/// What the training job sends: each event of the run, then how it ended.
#[derive(Debug)]
pub enum TrainUpdate {
    Event(TrainEvent),
    Ended(Outcome),
}

/// The settings the panel edits: the project's whole `crossclr.toml` as it was when the panel
/// opened on it (the widgets show its loss and training settings; a preset sets the head's too),
/// and the run's name.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainForm {
    pub config: ProjectConfig,
    pub run: String,
}

impl TrainForm {
    pub fn of_config(config: &ProjectConfig) -> Self {
        Self {
            config: config.clone(),
            run: default_run_name(config),
        }
    }

    /// The form with `preset` applied; the data settings and the run name stay.
    fn with_preset(&self, preset: Preset) -> Self {
        let mut config = self.config.clone();
        preset.apply(&mut config);
        Self {
            config,
            run: self.run.clone(),
        }
    }
}

/// The curves of a run, x in epochs (step s of an epoch's n at epoch − 1 + s/n).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrainCurves {
    pub loss: Vec<[f64; 2]>,
    pub local: Vec<[f64; 2]>,
    pub global: Vec<[f64; 2]>,
    pub pruned: Vec<[f64; 2]>,
    pub lr: Vec<[f64; 2]>,
    /// Validation R@1 per epoch: clip to sentence, sentence to clip, video to paragraph, paragraph
    /// to video.
    pub recall: [Vec<[f64; 2]>; 4],
    pub epochs: Vec<EpochRecord>,
    pub epochs_planned: usize,
}

impl TrainCurves {
    pub fn push(&mut self, event: &TrainEvent) {
        match event {
            TrainEvent::Started {
                first_epoch,
                epochs,
                ..
            } => {
                self.epochs_planned = *epochs;
                // A resumed run goes on from its saved step: the curves so far stay.
                self.epochs.retain(|e| e.epoch < *first_epoch);
            }
            TrainEvent::Step {
                epoch,
                step,
                steps,
                loss,
                loss_local,
                loss_global,
                pruned,
                ..
            } => {
                let x = (*epoch - 1) as f64 + *step as f64 / (*steps).max(1) as f64;
                // Steps resent after a pause lie at or before the last point: keep one of each.
                if self.loss.last().is_some_and(|p| p[0] >= x) {
                    return;
                }
                self.loss.push([x, *loss]);
                self.local.push([x, *loss_local]);
                self.global.push([x, *loss_global]);
                self.pruned.push([x, *pruned]);
            }
            TrainEvent::Validating { .. } => {}
            TrainEvent::Epoch(record) => {
                let x = record.epoch as f64;
                self.lr.push([x, record.lr]);
                for (series, (_, metrics)) in
                    self.recall.iter_mut().zip(record.validation.directions())
                {
                    series.push([x, 100.0 * metrics.r1]);
                }
                self.epochs.push((**record).clone());
            }
        }
    }

    pub fn best(&self) -> Option<&EpochRecord> {
        self.epochs.iter().rev().find(|e| e.best)
    }
}

#[derive(Debug, Default)]
pub struct TrainPanel {
    pub form: Option<TrainForm>,
    /// The project the form was filled from.
    form_for: Option<PathBuf>,
    pub job: Option<Job<TrainUpdate>>,
    /// The run the job trains, and whether it continues a saved state.
    pub training: Option<(RunName, PathBuf)>,
    pub curves: TrainCurves,
    pub status: Option<String>,
    /// A run that can be resumed (paused, or stopped with its state saved).
    pub paused: Option<RunName>,
    /// The run to show on the map now (asked for while it trains).
    pub show_request: Option<(PathBuf, RunName)>,
    /// Longest UI frame while a run trained, in milliseconds, and the frames counted.
    pub longest_frame_ms: f64,
    pub frames_while_training: usize,
}

impl TrainPanel {
    /// Fills the form from `project`'s settings when it is another project than before.
    pub fn follow_project(&mut self, dir: &Path) {
        if self.form_for.as_deref() == Some(dir) || self.job.is_some() {
            return;
        }
        match Project::open(dir) {
            Ok(project) => {
                self.form = Some(TrainForm::of_config(project.config()));
                self.form_for = Some(dir.to_path_buf());
                self.curves = TrainCurves::default();
                self.paused = None;
                self.status = None;
            }
            Err(error) => self.status = Some(format!("{:#}", anyhow::Error::from(error))),
        }
    }

    /// Starts (or, with `resume`, continues) the form's run on a job.
    pub fn start(
        &mut self,
        dir: PathBuf,
        resume: bool,
        repaint: impl Fn() + Send + Sync + 'static,
    ) {
        let Some(form) = self.form.clone() else {
            return;
        };
        let name = match RunName::new(&form.run) {
            Ok(name) => name,
            Err(error) => {
                self.status = Some(error.to_string());
                return;
            }
        };
        if !resume {
            self.curves = TrainCurves::default();
        }
        self.status = None;
        self.paused = None;
        self.longest_frame_ms = 0.0;
        self.frames_while_training = 0;
        self.training = Some((name.clone(), dir.clone()));
        self.job = Some(Job::start("train", repaint, move |report, cancel| {
            let error = |e: crate::train::TrainError| format!("{:#}", anyhow::Error::from(e));
            let project =
                Project::open(&dir).map_err(|e| format!("{:#}", anyhow::Error::from(e)))?;
            let prepared =
                PreparedRun::prepare(&project, &form.config, RunRequest { name, resume })
                    .map_err(error)?;
            let (events, receiver) = progress_channel(256);
            std::thread::scope(|scope| {
                let relay = scope.spawn(|| {
                    for event in receiver {
                        if let TrainEvent::Step {
                            epoch, step, steps, ..
                        } = &event
                        {
                            report.progress(*step, Some(*steps), format!("epoch {epoch}"));
                        }
                        report.partial(TrainUpdate::Event(event));
                    }
                });
                let outcome = prepared.train(&events, cancel);
                drop(events);
                let _ = relay.join();
                outcome.map(TrainUpdate::Ended).map_err(error)
            })
        }));
    }

    /// Takes the job's news; returns the run to show on the map when one ended with a
    /// checkpoint, or when the user asked for it.
    /// Takes the job's news; returns the run to show on the map now: asked for, a new best
    /// checkpoint while `follow_epochs`, or the run just ended.
    pub fn poll(&mut self, follow_epochs: bool) -> Option<(PathBuf, RunName)> {
        if let Some(request) = self.show_request.take() {
            return Some(request);
        }
        let job = self.job.as_mut()?;
        let (updates, finished) = match job.poll() {
            Polled::Nothing => return None,
            Polled::Partial(updates) => (updates, None),
            Polled::Finished(updates, result) => (updates, Some(result)),
        };
        let mut new_best = false;
        for update in &updates {
            if let TrainUpdate::Event(event) = update {
                self.curves.push(event);
                new_best |= matches!(event, TrainEvent::Epoch(record) if record.best);
            }
        }
        let Some(result) = finished else {
            return (follow_epochs && new_best)
                .then(|| self.training.clone().map(|(name, dir)| (dir, name)))
                .flatten();
        };
        self.job = None;
        let (name, dir) = self.training.take()?;
        match result {
            Ok(TrainUpdate::Ended(Outcome::Completed)) => {
                self.status = Some(format!("run `{name}` finished"));
                Some((dir, name))
            }
            Ok(TrainUpdate::Ended(Outcome::Cancelled { epoch, steps_done })) => {
                self.status = Some(format!(
                    "paused at epoch {epoch}, step {steps_done}; the state is saved"
                ));
                self.paused = Some(name.clone());
                // Checkpoints of finished epochs can be shown already.
                (epoch > 1).then_some((dir, name))
            }
            Ok(TrainUpdate::Event(_)) => None,
            Err(error) => {
                self.status = Some(error);
                None
            }
        }
    }

    /// Counts a UI frame's duration while a run trains.
    pub fn note_frame(&mut self, seconds: f32) {
        if self.job.is_some() {
            self.frames_while_training += 1;
            self.longest_frame_ms = self.longest_frame_ms.max(f64::from(seconds) * 1000.0);
        }
    }
}

/// The panel's contents; starts, pauses and resumes runs itself.
pub fn train_ui(ui: &mut egui::Ui, app: &mut ExplorerApp) {
    let Some(dir) = app.scene.as_ref().map(|s| s.project_dir.clone()) else {
        ui.label("open a project to train on it");
        return;
    };
    app.train.follow_project(&dir);
    let running = app.train.job.is_some();
    let repaint = {
        let ctx = ui.ctx().clone();
        move || ctx.request_repaint()
    };
    let follow = &mut app.settings.map_follows_epochs;
    let panel = &mut app.train;
    ui.horizontal_top(|ui| {
        ui.vertical(|ui| {
            ui.set_width(340.0);
            ui.checkbox(follow, "map follows each epoch").on_hover_text(
                "after each epoch that makes a new best checkpoint, the clips are embedded with it and laid out again from the current layout",
            );
            egui::ScrollArea::vertical()
                .id_salt("train-controls")
                .show(ui, |ui| controls_ui(ui, panel, &dir, running, &repaint));
        });
        ui.separator();
        curves_ui(ui, &panel.curves);
    });
}

fn controls_ui(
    ui: &mut egui::Ui,
    panel: &mut TrainPanel,
    dir: &Path,
    running: bool,
    repaint: &(impl Fn() + Send + Sync + Clone + 'static),
) {
    ui.horizontal(|ui| {
        if running {
            if ui.button("pause").on_hover_text("stops at the next step and saves the state").clicked()
                && let Some(job) = &panel.job
            {
                job.cancel.cancel();
            }
            if let Some((name, dir)) = panel.training.clone()
                && panel.curves.best().is_some()
                && ui
                    .button("show on map")
                    .on_hover_text("embeds the clips with the best checkpoint so far and lays them out again, from the current layout")
                    .clicked()
            {
                panel.show_request = Some((dir, name));
            }
            if let Some(job) = &panel.job {
                ui.add(
                    egui::ProgressBar::new(job.fraction().unwrap_or(0.0))
                        .desired_width(160.0)
                        .text(job.text.clone()),
                );
            }
        } else {
            if ui.button("start training").clicked() {
                panel.start(dir.to_path_buf(), false, repaint.clone());
            }
            if let Some(paused) = panel.paused.clone()
                && ui.button(format!("resume `{paused}`")).clicked()
            {
                if let Some(form) = &mut panel.form {
                    form.run = paused.to_string();
                }
                panel.start(dir.to_path_buf(), true, repaint.clone());
            }
        }
    });
    if let Some(status) = &panel.status {
        ui.label(egui::RichText::new(status).italics());
    }
    if !running && let Some(best) = panel.curves.best() {
        best_epoch_ui(ui, best);
    }
    if let Some(form) = &mut panel.form {
        egui::CollapsingHeader::new("settings")
            .default_open(true)
            .show(ui, |ui| {
                ui.add_enabled_ui(!running, |ui| form_ui(ui, form));
            });
    }
    if panel.frames_while_training > 0 {
        ui.label(
            egui::RichText::new(format!(
                "longest frame while training: {:.0} ms over {} frames",
                panel.longest_frame_ms, panel.frames_while_training
            ))
            .small(),
        );
    }
}

fn form_ui(ui: &mut egui::Ui, form: &mut TrainForm) {
    egui::Grid::new("train-form")
        .num_columns(2)
        .spacing([8.0, 4.0])
        .show(ui, |ui| {
            ui.label("preset");
            ui.horizontal(|ui| {
                for preset in Preset::ALL {
                    if ui.small_button(preset.name()).clicked() {
                        *form = form.with_preset(preset);
                    }
                }
            });
            ui.end_row();
            ui.label("loss");
            egui::ComboBox::from_id_salt("train-loss")
                .selected_text(form.config.loss.kind.to_string())
                .show_ui(ui, |ui| {
                    for kind in [
                        LossKind::Crossclr,
                        LossKind::Infonce,
                        LossKind::Maxmargin,
                        LossKind::Xmlnet,
                    ] {
                        ui.selectable_value(&mut form.config.loss.kind, kind, kind.to_string());
                    }
                });
            ui.end_row();
            let crossclr = form.config.loss.kind == LossKind::Crossclr;
            ui.label("mode");
            ui.add_enabled_ui(crossclr, |ui| {
                ui.horizontal(|ui| {
                    ui.selectable_value(&mut form.config.loss.mode, Mode::Paper, "paper");
                    ui.selectable_value(&mut form.config.loss.mode, Mode::Official, "official");
                });
            });
            ui.end_row();
            let number = |ui: &mut egui::Ui, name: &str, value: &mut f64, range, enabled| {
                ui.label(name);
                ui.add_enabled(
                    enabled,
                    egui::DragValue::new(value)
                        .range(range)
                        .speed(0.0005)
                        .max_decimals(4),
                );
                ui.end_row();
            };
            let tau_used = matches!(
                form.config.loss.kind,
                LossKind::Crossclr | LossKind::Infonce | LossKind::Xmlnet
            );
            number(ui, "τ", &mut form.config.loss.tau, 1e-4..=10.0, tau_used);
            number(
                ui,
                "κ",
                &mut form.config.loss.kappa,
                1e-5..=1000.0,
                crossclr,
            );
            number(ui, "λ", &mut form.config.loss.lambda, 1e-4..=10.0, crossclr);
            number(ui, "γ", &mut form.config.loss.gamma, 0.0..=2.0, crossclr);
            let count = |ui: &mut egui::Ui, name: &str, value: &mut usize, max, enabled| {
                ui.label(name);
                ui.add_enabled(enabled, egui::DragValue::new(value).range(0..=max));
                ui.end_row();
            };
            count(ui, "queue", &mut form.config.loss.queue, 65_536, crossclr);
            count(
                ui,
                "extra positives",
                &mut form.config.loss.multi_positive_k,
                64,
                crossclr,
            );
            count(ui, "epochs", &mut form.config.train.epochs, 10_000, true);
            count(
                ui,
                "videos per batch",
                &mut form.config.train.batch_size,
                4096,
                true,
            );
            ui.label("seed");
            ui.add(egui::DragValue::new(&mut form.config.train.seed));
            ui.end_row();
            ui.label("device");
            ui.horizontal(|ui| {
                ui.selectable_value(&mut form.config.train.device, DeviceKind::Cpu, "cpu");
                ui.add_enabled_ui(cfg!(feature = "cuda"), |ui| {
                    ui.selectable_value(&mut form.config.train.device, DeviceKind::Cuda, "cuda")
                        .on_disabled_hover_text("this build has no CUDA support");
                });
            });
            ui.end_row();
            ui.label("run name");
            ui.text_edit_singleline(&mut form.run);
            ui.end_row();
        });
}

/// The plots' height in points; the panel opens just tall enough for them.
pub const PLOT_HEIGHT: f32 = 180.0;

/// The four plots side by side, as wide and as tall as the panel leaves them.
fn curves_ui(ui: &mut egui::Ui, curves: &TrainCurves) {
    if curves.loss.is_empty() && curves.epochs.is_empty() {
        ui.label("the curves appear here once a run starts");
        return;
    }
    let width = ((ui.available_width() - 3.0 * 12.0) / 4.0).max(120.0);
    // Fixed: a plot sized from the panel would grow the panel that holds it.
    let height = PLOT_HEIGHT;
    let plot = |id: &str| {
        Plot::new(id.to_string())
            .width(width)
            .height(height)
            .legend(Legend::default())
            .allow_scroll(false)
            .include_x(0.0)
            .include_x(curves.epochs_planned.max(1) as f64)
            .x_axis_label("epoch")
    };
    let titled = |ui: &mut egui::Ui, title: &str, show: &mut dyn FnMut(&mut egui::Ui)| {
        ui.vertical(|ui| {
            ui.set_width(width);
            ui.label(title);
            show(ui);
        });
    };
    titled(ui, "loss per step", &mut |ui| {
        plot("train-loss").show(ui, |plot| {
            plot.line(Line::new("total", curves.loss.clone()));
            plot.line(Line::new("local", curves.local.clone()));
            plot.line(Line::new("global", curves.global.clone()));
        });
    });
    titled(ui, "share of negatives pruned per step", &mut |ui| {
        plot("train-pruned").include_y(0.0).show(ui, |plot| {
            plot.line(Line::new("pruned", curves.pruned.clone()));
        });
    });
    titled(ui, "validation R@1 (%) per epoch", &mut |ui| {
        plot("train-recall").include_y(0.0).show(ui, |plot| {
            for (name, series) in [
                "clip to sentence",
                "sentence to clip",
                "video to paragraph",
                "paragraph to video",
            ]
            .into_iter()
            .zip(&curves.recall)
            {
                plot.line(Line::new(name, series.clone()));
            }
        });
    });
    titled(ui, "learning rate per epoch", &mut |ui| {
        plot("train-lr").include_y(0.0).show(ui, |plot| {
            plot.line(Line::new("lr", curves.lr.clone()));
        });
    });
}

fn best_epoch_ui(ui: &mut egui::Ui, best: &EpochRecord) {
    ui.label(format!(
        "best epoch {} (selection split): R@1 / R@5 / R@10, median rank",
        best.epoch
    ));
    egui::Grid::new("train-best").striped(true).show(ui, |ui| {
        for (direction, m) in best.validation.directions() {
            // The UI font has no arrows.
            ui.label(direction.replace(" → ", " to "));
            ui.label(format!(
                "{:.1} / {:.1} / {:.1}",
                100.0 * m.r1,
                100.0 * m.r5,
                100.0 * m.r10
            ));
            ui.label(format!("MdR {}", m.median_rank));
            ui.end_row();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(epoch: usize, step: usize, loss: f64) -> TrainEvent {
        TrainEvent::Step {
            epoch,
            step,
            steps: 4,
            loss,
            loss_local: loss,
            loss_global: 0.0,
            pruned: 0.1,
            lr: 1e-3,
        }
    }

    #[test]
    fn curves_keep_one_point_per_step_across_a_resume() {
        let mut curves = TrainCurves::default();
        let started = |first_epoch| TrainEvent::Started {
            first_epoch,
            epochs: 3,
            steps_per_epoch: 4,
            parameters: 10,
        };
        curves.push(&started(1));
        for s in 1..=4 {
            curves.push(&step(1, s, 1.0));
        }
        curves.push(&step(2, 1, 0.9));
        curves.push(&step(2, 2, 0.8));
        // Paused after epoch 2's second step and resumed there; a step sent twice is kept once.
        curves.push(&started(2));
        curves.push(&step(2, 2, 0.8));
        curves.push(&step(2, 3, 0.7));
        let xs: Vec<f64> = curves.loss.iter().map(|p| p[0]).collect();
        assert_eq!(xs, [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75]);
        assert_eq!(curves.epochs_planned, 3);
    }

    #[test]
    fn a_preset_changes_the_loss_but_keeps_the_data_settings_and_the_name() {
        let mut form = TrainForm::of_config(&ProjectConfig::default());
        form.config.train.epochs = 7;
        form.run = "mine".into();
        let paper = form.with_preset(Preset::PaperLsmdc);
        assert_eq!((paper.config.train.epochs, paper.run.as_str()), (7, "mine"));
        let loss = &paper.config.loss;
        assert_eq!((loss.kappa, loss.lambda, loss.queue), (55e-4, 0.65, 3000));
        assert_eq!(loss.mode, Mode::Paper);
        // The preset's head settings reach the run too.
        assert_eq!(paper.config.model.attention_dim, 768);
    }

    fn epoch(epoch: usize, best: bool) -> TrainUpdate {
        let metrics = crate::eval::RetrievalMetrics {
            r1: 0.1,
            r5: 0.5,
            r10: 1.0,
            r50: 1.0,
            median_rank: 5.0,
            mean_rank: 5.0,
        };
        TrainUpdate::Event(TrainEvent::Epoch(Box::new(EpochRecord {
            epoch,
            lr: 1e-3,
            loss: 1.0,
            loss_local: 1.0,
            loss_global: 0.0,
            pruned_fraction: 0.1,
            validation: crate::train::RetrievalReport {
                clip_to_sentence: metrics,
                sentence_to_clip: metrics,
                video_to_paragraph: metrics,
                paragraph_to_video: metrics,
            },
            score: 0.5,
            best,
            steps: 4,
            seconds: 1.0,
        })))
    }

    #[test]
    fn the_map_follows_each_new_best_epoch_while_following_and_always_the_end_of_the_run() {
        for follow in [true, false] {
            let mut panel = TrainPanel {
                training: Some((RunName::new("r").unwrap(), PathBuf::from("/p"))),
                ..TrainPanel::default()
            };
            let (finish, wait) = std::sync::mpsc::channel::<()>();
            panel.job = Some(Job::start(
                "test-train",
                || {},
                move |report, _| {
                    report.partial(epoch(1, true));
                    report.partial(epoch(2, false));
                    let _ = wait.recv();
                    Ok(TrainUpdate::Ended(Outcome::Completed))
                },
            ));
            let mut shown = Vec::new();
            while panel.curves.epochs.len() < 2 {
                shown.extend(panel.poll(follow));
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            let expected = if follow {
                vec![(PathBuf::from("/p"), RunName::new("r").unwrap())]
            } else {
                Vec::new()
            };
            assert_eq!(
                shown, expected,
                "follow {follow}: epoch 1 was the only new best"
            );
            finish.send(()).unwrap();
            let ended = loop {
                if let Some(request) = panel.poll(follow) {
                    break request;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            };
            assert_eq!(ended.1.as_str(), "r");
            assert!(panel.job.is_none());
        }
    }
}
