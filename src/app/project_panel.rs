//! The Projects window: open a project folder (a native dialog, a typed path or the recent
//! list), make a new one from a folder of videos and a captions file, from a features file or
//! from COOT's release, read what the import skipped, and ingest a videos project with a
//! progress bar per stage — the same `project::create` and `ingest` calls as `crossclr new` and
//! `crossclr ingest`, on jobs, cancellable and resumable. The map opens on the project once its
//! features are merged and fills in as its thumbnails arrive.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, TryRecvError, sync_channel};

use super::explorer::ExplorerApp;
use super::jobs::{Job, Polled};
use crate::ingest::{IngestOptions, IngestProgress, IngestReport, IngestStage, choose_encoders};
use crate::jobs::{progress_channel, spawn_named};
use crate::project::Project;
use crate::project::config::SourceKind;
use crate::project::coot::CootPaths;
use crate::project::create::{NewProject, NewSource, Problem, ProblemKind, create_project};
use crate::project::videos::SplitFractions;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tab {
    #[default]
    Open,
    New,
}

/// What a new project is made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourceChoice {
    #[default]
    Videos,
    Features,
    Coot,
}

impl SourceChoice {
    const ALL: [SourceChoice; 3] = [
        SourceChoice::Videos,
        SourceChoice::Features,
        SourceChoice::Coot,
    ];

    fn name(self) -> &'static str {
        match self {
            SourceChoice::Videos => "videos and captions",
            SourceChoice::Features => "features (safetensors)",
            SourceChoice::Coot => "COOT features",
        }
    }
}

/// The New project form: paths as typed (or picked), and the split and ingest settings.
#[derive(Debug, Clone, PartialEq)]
pub struct NewProjectForm {
    pub source: SourceChoice,
    pub dir: String,
    pub name: String,
    pub videos: String,
    pub captions: String,
    pub split: SplitFractions,
    pub features: String,
    pub coot_meta: String,
    pub video_h5: String,
    pub text_h5: String,
    pub sentence_splits: String,
    pub max_frames: usize,
}

impl Default for NewProjectForm {
    fn default() -> Self {
        Self {
            source: SourceChoice::default(),
            dir: String::new(),
            name: String::new(),
            videos: String::new(),
            captions: String::new(),
            split: SplitFractions::default(),
            features: String::new(),
            coot_meta: String::new(),
            video_h5: String::new(),
            text_h5: String::new(),
            sentence_splits: String::new(),
            max_frames: crate::project::config::ModelSection::default().max_frames,
        }
    }
}

impl NewProjectForm {
    /// The request the form describes, or what is missing from it.
    pub fn request(&self) -> Result<NewProject, String> {
        let path = |text: &str, what: &str| {
            let text = text.trim();
            if text.is_empty() {
                Err(format!("choose {what}"))
            } else {
                Ok(PathBuf::from(text))
            }
        };
        let dir = path(&self.dir, "the new project's folder")?;
        let source = match self.source {
            SourceChoice::Videos => {
                self.split
                    .check()
                    .map_err(|e| format!("val/test fractions: {e}"))?;
                NewSource::Videos {
                    videos: path(&self.videos, "the folder of videos")?,
                    captions: path(&self.captions, "the captions file")?,
                    fractions: self.split,
                }
            }
            SourceChoice::Features => {
                NewSource::Features(path(&self.features, "the features file")?)
            }
            SourceChoice::Coot => NewSource::Coot {
                paths: CootPaths {
                    meta: path(&self.coot_meta, "COOT's meta_all.json")?,
                    video_h5: path(&self.video_h5, "the frame features (.h5)")?,
                    text_h5: path(&self.text_h5, "the token features (.h5)")?,
                    sentence_splits: path(&self.sentence_splits, "the sentence splits (.json)")?,
                },
                max_frames: Some(self.max_frames),
            },
        };
        let name = self.name.trim();
        Ok(NewProject {
            dir,
            name: (!name.is_empty()).then(|| name.to_string()),
            source,
        })
    }
}

/// A project just made: where, what it holds, what was skipped.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatedSummary {
    pub dir: PathBuf,
    pub from_videos: bool,
    /// Per split: name, clips, videos.
    pub splits: Vec<(String, usize, usize)>,
    pub problems: Vec<Problem>,
}

/// What the ingest job sends.
#[derive(Debug)]
pub enum IngestUpdate {
    Progress(IngestProgress),
    Ended(IngestReport),
}

/// Which text box a file dialog fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    OpenProject,
    Dir,
    Videos,
    Captions,
    Features,
    CootMeta,
    VideoH5,
    TextH5,
    SentenceSplits,
}

impl Field {
    fn picks_folder(self) -> bool {
        matches!(self, Field::OpenProject | Field::Dir | Field::Videos)
    }
}

/// What the window asks of the explorer after a frame.
#[derive(Debug, Clone, PartialEq)]
pub enum ProjectAction {
    /// Show this project (its features are ready).
    Open(PathBuf),
    /// These videos' thumbnails were just cached.
    Thumbnails(BTreeSet<String>),
}

/// Ingest settings the window offers.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestForm {
    pub frames_per_clip: usize,
    pub thumbnails: bool,
    /// Empty: the project's encoder, else MiniLM where installed, else hashed.
    pub text_encoder: String,
    pub restart: bool,
}

impl Default for IngestForm {
    fn default() -> Self {
        let options = IngestOptions::default();
        Self {
            frames_per_clip: options.frames_per_clip,
            thumbnails: options.thumbnails,
            text_encoder: String::new(),
            restart: false,
        }
    }
}

/// Per stage, done and total, and the last video.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StageProgress {
    pub done: usize,
    pub total: usize,
}

#[derive(Debug, Default)]
pub struct ProjectPanel {
    pub open: bool,
    pub tab: Tab,
    pub open_path: String,
    pub form: NewProjectForm,
    pub ingest_form: IngestForm,
    pub create_job: Option<Job<CreatedSummary>>,
    pub created: Option<CreatedSummary>,
    /// The videos project the Ingest section works on.
    pub ingest_target: Option<PathBuf>,
    pub ingest_job: Option<Job<IngestUpdate>>,
    /// Frames, features, merge, thumbnails.
    pub stages: [StageProgress; 4],
    /// What went wrong, one line each: videos skipped, manifest lines, clips cut or skipped.
    pub ingest_problems: Vec<String>,
    pub ingest_report: Option<IngestReport>,
    pub status: Option<String>,
    /// Videos whose thumbnails arrived since the map was last told.
    arrived: BTreeSet<String>,
    /// Every video whose thumbnails this ingest cached: a scene loaded during the ingest may
    /// have missed some of the news.
    pub thumbnails_done: BTreeSet<String>,
    last_told: Option<std::time::Instant>,
    /// A native dialog in flight: the field it fills and its answer.
    picker: Option<(Field, Receiver<Option<PathBuf>>)>,
    /// The UI thread's longest frame while an ingest ran, and how many frames that was.
    pub longest_frame_ms: f32,
    pub frames_while_ingesting: usize,
}

fn stage_index(stage: IngestStage) -> usize {
    IngestStage::ALL
        .iter()
        .position(|s| *s == stage)
        .unwrap_or(0)
}

/// How often the map is told of new thumbnails while they arrive.
const THUMBNAIL_NEWS_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

impl ProjectPanel {
    /// Drains the jobs and the file dialog; never waits.
    pub fn poll(&mut self) -> Vec<ProjectAction> {
        let mut actions = Vec::new();
        if let Some((field, answer)) = &self.picker {
            match answer.try_recv() {
                Ok(picked) => {
                    if let Some(path) = picked {
                        let text = path.display().to_string();
                        *self.field_mut(*field) = text;
                    }
                    self.picker = None;
                }
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => {
                    self.status =
                        Some("no file dialog could open here: type the path into the box".into());
                    self.picker = None;
                }
            }
        }
        if let Some(job) = &mut self.create_job
            && let Polled::Finished(_, result) = job.poll()
        {
            self.create_job = None;
            match result {
                Ok(created) => {
                    self.status = Some(format!(
                        "made {} with {} clips{}",
                        created.dir.display(),
                        created.splits.iter().map(|s| s.1).sum::<usize>(),
                        if created.problems.is_empty() {
                            String::new()
                        } else {
                            format!("; {} problems listed below", created.problems.len())
                        }
                    ));
                    if created.from_videos {
                        self.ingest_target = Some(created.dir.clone());
                    } else {
                        actions.push(ProjectAction::Open(created.dir.clone()));
                    }
                    self.created = Some(created);
                }
                Err(error) => self.status = Some(error),
            }
        }
        if let Some(job) = &mut self.ingest_job {
            let (updates, finished) = match job.poll() {
                Polled::Nothing => (Vec::new(), None),
                Polled::Partial(updates) => (updates, None),
                Polled::Finished(updates, result) => (updates, Some(result)),
            };
            for update in updates {
                match update {
                    IngestUpdate::Progress(progress) => {
                        let stage = &mut self.stages[stage_index(progress.stage)];
                        stage.done = progress.done;
                        stage.total = progress.total;
                        match progress.stage {
                            IngestStage::Merge => {
                                if let Some(dir) = &self.ingest_target {
                                    actions.push(ProjectAction::Open(dir.clone()));
                                }
                            }
                            IngestStage::Thumbnails if progress.error.is_none() => {
                                self.thumbnails_done.insert(progress.video.clone());
                                self.arrived.insert(progress.video);
                            }
                            _ => {}
                        }
                    }
                    IngestUpdate::Ended(report) => self.ingest_ended(report),
                }
            }
            if let Some(result) = finished {
                self.ingest_job = None;
                match result {
                    Ok(IngestUpdate::Ended(report)) => {
                        if !report.cancelled
                            && report.merged.is_some()
                            && self.stages[stage_index(IngestStage::Merge)].done == 0
                            && let Some(dir) = &self.ingest_target
                        {
                            actions.push(ProjectAction::Open(dir.clone()));
                        }
                        self.ingest_ended(report);
                    }
                    Ok(IngestUpdate::Progress(_)) => {}
                    Err(error) => self.status = Some(format!("ingest: {error}")),
                }
            }
        }
        let due = self
            .last_told
            .is_none_or(|t| t.elapsed() >= THUMBNAIL_NEWS_EVERY);
        if !self.arrived.is_empty() && (due || self.ingest_job.is_none()) {
            actions.push(ProjectAction::Thumbnails(std::mem::take(&mut self.arrived)));
            self.last_told = Some(std::time::Instant::now());
        }
        actions
    }

    fn ingest_ended(&mut self, report: IngestReport) {
        let mut problems = Vec::new();
        for problem in &report.manifest_problems {
            problems.push(format!(
                "manifest.jsonl:{}: {}",
                problem.line, problem.reason
            ));
        }
        for (video, reason) in &report.failed {
            problems.push(format!("skipped {video}: {reason}"));
        }
        problems.extend(report.clip_notes.iter().map(|note| note.to_string()));
        if report.frames_capped > 0 {
            problems.push(format!(
                "{} clips hold fewer frames than asked: each got one per frame it holds",
                report.frames_capped
            ));
        }
        if !report.missing.is_empty() {
            problems.push(format!(
                "{} videos have no features and are left out",
                report.missing.len()
            ));
        }
        self.status = Some(if report.cancelled {
            "ingest stopped; ingest again to go on where it stopped".to_string()
        } else {
            format!(
                "ingested {} videos ({} encoded now, {} staged before, {} failed) and {} thumbnails in {:.1} s",
                report.videos,
                report.encoded,
                report.reused,
                report.failed.len(),
                report.thumbnails,
                report.seconds
            )
        });
        self.ingest_problems = problems;
        self.ingest_report = Some(report);
    }

    fn field_mut(&mut self, field: Field) -> &mut String {
        let form = &mut self.form;
        match field {
            Field::OpenProject => &mut self.open_path,
            Field::Dir => &mut form.dir,
            Field::Videos => &mut form.videos,
            Field::Captions => &mut form.captions,
            Field::Features => &mut form.features,
            Field::CootMeta => &mut form.coot_meta,
            Field::VideoH5 => &mut form.video_h5,
            Field::TextH5 => &mut form.text_h5,
            Field::SentenceSplits => &mut form.sentence_splits,
        }
    }

    /// Asks a native dialog for a path on a thread of its own; the answer fills `field`.
    fn pick(&mut self, field: Field, repaint: impl Fn() + Send + 'static) {
        let (sender, receiver) = sync_channel(1);
        let started = spawn_named("crossclr-file-dialog", move || {
            let dialog = rfd::AsyncFileDialog::new();
            let picked = if field.picks_folder() {
                pollster::block_on(dialog.pick_folder())
            } else {
                pollster::block_on(dialog.pick_file())
            };
            let _ = sender.send(picked.map(|handle| handle.path().to_path_buf()));
            repaint();
        });
        match started {
            Ok(_) => self.picker = Some((field, receiver)),
            Err(error) => self.status = Some(format!("no file dialog: {error}")),
        }
    }

    /// Makes the project the form describes, on a job.
    pub fn create(&mut self, repaint: impl Fn() + Send + Sync + 'static) {
        let request = match self.form.request() {
            Ok(request) => request,
            Err(missing) => {
                self.status = Some(missing);
                return;
            }
        };
        self.created = None;
        self.status = Some(format!("making {}…", request.dir.display()));
        self.create_job = Some(Job::start("new project", repaint, move |report, _| {
            let dir = request.dir.clone();
            let created = create_project(&request, &mut |done, total| {
                report.progress(done, Some(total), "importing");
            })
            .map_err(|e| {
                format!(
                    "cannot create the project in {}: {:#}",
                    dir.display(),
                    anyhow::Error::from(e)
                )
            })?;
            let config = created.project.config();
            Ok(CreatedSummary {
                dir: created.project.dir().to_path_buf(),
                from_videos: config.source.kind == SourceKind::Videos,
                splits: created.imported.split_counts(),
                problems: created.imported.problems(config),
            })
        }));
    }

    /// Ingests the target project on a job, reporting each stage.
    pub fn ingest(&mut self, repaint: impl Fn() + Send + Sync + 'static) {
        let Some(dir) = self.ingest_target.clone() else {
            return;
        };
        let form = self.ingest_form.clone();
        self.stages = Default::default();
        self.ingest_problems.clear();
        self.ingest_report = None;
        self.arrived.clear();
        self.thumbnails_done.clear();
        self.longest_frame_ms = 0.0;
        self.frames_while_ingesting = 0;
        self.status = Some(format!("ingesting {}…", dir.display()));
        self.ingest_job = Some(Job::start("ingest", repaint, move |report, cancel| {
            let failed = |e: anyhow::Error| format!("{e:#}");
            let mut project = Project::open(&dir).map_err(|e| failed(e.into()))?;
            if project.config().source.kind != SourceKind::Videos {
                return Err(format!(
                    "{}: made from precomputed features; only projects made from videos are ingested",
                    dir.display()
                ));
            }
            let text = form.text_encoder.trim();
            let encoders = choose_encoders(
                &project.config().encoders,
                None,
                (!text.is_empty()).then_some(text),
            )
            .map_err(|e| failed(e.into()))?;
            let options = IngestOptions {
                frames_per_clip: form.frames_per_clip,
                thumbnails: form.thumbnails,
                restart: form.restart,
                ..IngestOptions::default()
            };
            let (events, receiver) = progress_channel::<IngestProgress>(64);
            let ingested = std::thread::scope(|scope| {
                let relay = spawn_scoped_named(scope, "crossclr-ingest-relay", || {
                    for progress in receiver {
                        report.partial(IngestUpdate::Progress(progress));
                    }
                });
                let ingested = crate::ingest::ingest(
                    &mut project,
                    &*encoders.visual,
                    &*encoders.text,
                    &options,
                    cancel,
                    Some(&events),
                );
                drop(events);
                if let Ok(relay) = relay {
                    let _ = relay.join();
                }
                ingested
            })
            .map_err(|e| failed(e.into()))?;
            Ok(IngestUpdate::Ended(ingested))
        }));
    }

    pub fn busy(&self) -> bool {
        self.create_job.is_some() || self.ingest_job.is_some()
    }

    /// Counts a UI frame while an ingest runs.
    pub fn note_frame(&mut self, seconds: f32) {
        if self.ingest_job.is_some() {
            self.frames_while_ingesting += 1;
            self.longest_frame_ms = self.longest_frame_ms.max(seconds * 1000.0);
        }
    }
}

fn spawn_scoped_named<'scope, 'env, F>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    name: &str,
    work: F,
) -> std::io::Result<std::thread::ScopedJoinHandle<'scope, ()>>
where
    F: FnOnce() + Send + 'scope,
{
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn_scoped(scope, work)
}

fn path_row(
    ui: &mut egui::Ui,
    panel: &mut ProjectPanel,
    field: Field,
    label: &str,
    repaint: &(impl Fn() + Send + Sync + Clone + 'static),
) {
    ui.horizontal(|ui| {
        let label_id = ui.label(label).id;
        let waiting = panel.picker.is_some();
        let text = panel.field_mut(field);
        ui.add(
            egui::TextEdit::singleline(text)
                .desired_width(320.0)
                .hint_text(if field.picks_folder() {
                    "folder"
                } else {
                    "file"
                }),
        )
        .labelled_by(label_id);
        if ui
            .add_enabled(!waiting, egui::Button::new("browse…"))
            .on_hover_text(format!("choose {label} in a file dialog"))
            .clicked()
        {
            let repaint = repaint.clone();
            panel.pick(field, repaint);
        }
    });
}

fn progress_bar(ui: &mut egui::Ui, name: &str, stage: &StageProgress) {
    ui.horizontal(|ui| {
        ui.add_sized([80.0, 16.0], egui::Label::new(name));
        let fraction = if stage.total > 0 {
            stage.done as f32 / stage.total as f32
        } else {
            0.0
        };
        ui.add(
            egui::ProgressBar::new(fraction)
                .desired_width(260.0)
                .text(format!("{}/{}", stage.done, stage.total)),
        );
    });
}

fn problems_ui(ui: &mut egui::Ui, problems: &[Problem]) {
    let mut kinds: Vec<ProblemKind> = problems.iter().map(|p| p.kind).collect();
    kinds.dedup();
    egui::ScrollArea::vertical()
        .id_salt("import-problems")
        .max_height(140.0)
        .show(ui, |ui| {
            for kind in kinds {
                let of_kind: Vec<&Problem> = problems.iter().filter(|p| p.kind == kind).collect();
                ui.strong(format!("{}: {}", kind.heading(), of_kind.len()));
                for problem in of_kind {
                    ui.label(&problem.text);
                }
            }
        });
}

/// The Projects window's contents.
pub fn projects_ui(ui: &mut egui::Ui, app: &mut ExplorerApp) {
    let ctx = ui.ctx().clone();
    let repaint = move || ctx.request_repaint();
    ui.horizontal(|ui| {
        ui.selectable_value(&mut app.projects.tab, Tab::Open, "open a project");
        ui.selectable_value(&mut app.projects.tab, Tab::New, "new project");
    });
    ui.separator();
    match app.projects.tab {
        Tab::Open => open_ui(ui, app, &repaint),
        Tab::New => new_ui(ui, app, &repaint),
    }
    if let Some(status) = &app.projects.status {
        ui.separator();
        ui.label(status);
    }
}

fn open_ui(
    ui: &mut egui::Ui,
    app: &mut ExplorerApp,
    repaint: &(impl Fn() + Send + Sync + Clone + 'static),
) {
    path_row(
        ui,
        &mut app.projects,
        Field::OpenProject,
        "project",
        repaint,
    );
    let typed = app.projects.open_path.trim().to_string();
    if ui
        .add_enabled(!typed.is_empty(), egui::Button::new("open"))
        .clicked()
    {
        let ctx = ui.ctx().clone();
        app.load(&ctx, PathBuf::from(typed), None);
    }
    if !app.settings.recent_projects.is_empty() {
        ui.separator();
        ui.strong("recent projects");
        let mut chosen = None;
        for dir in &app.settings.recent_projects {
            if ui.link(dir.display().to_string()).clicked() {
                chosen = Some(dir.clone());
            }
        }
        if let Some(dir) = chosen {
            let ctx = ui.ctx().clone();
            app.load(&ctx, dir, None);
        }
    }
    // The project shown (or last tried) may be a videos project waiting for its features.
    let current = app
        .scene
        .as_ref()
        .map(|s| s.project_dir.clone())
        .or_else(|| app.settings.recent_projects.first().cloned());
    if let Some(dir) = current
        && app.projects.ingest_target.as_ref() != Some(&dir)
        && app.projects.ingest_job.is_none()
    {
        ui.separator();
        if ui
            .button(format!("ingest {}", dir.display()))
            .on_hover_text("decode its videos and encode its captions (videos projects)")
            .clicked()
        {
            app.projects.ingest_target = Some(dir);
            app.projects.tab = Tab::New;
        }
    }
}

fn new_ui(
    ui: &mut egui::Ui,
    app: &mut ExplorerApp,
    repaint: &(impl Fn() + Send + Sync + Clone + 'static),
) {
    let panel = &mut app.projects;
    let busy = panel.busy();
    ui.add_enabled_ui(!busy, |ui| {
        ui.horizontal(|ui| {
            ui.label("from");
            for choice in SourceChoice::ALL {
                ui.selectable_value(&mut panel.form.source, choice, choice.name());
            }
        });
        path_row(ui, panel, Field::Dir, "new folder", repaint);
        ui.horizontal(|ui| {
            ui.label("name");
            ui.add(
                egui::TextEdit::singleline(&mut panel.form.name)
                    .desired_width(200.0)
                    .hint_text("the folder's name"),
            );
        });
        match panel.form.source {
            SourceChoice::Videos => {
                path_row(ui, panel, Field::Videos, "videos", repaint);
                path_row(ui, panel, Field::Captions, "captions", repaint);
                ui.horizontal(|ui| {
                    ui.label("split seed");
                    ui.add(egui::DragValue::new(&mut panel.form.split.seed));
                    ui.label("val");
                    ui.add(
                        egui::DragValue::new(&mut panel.form.split.val)
                            .range(0.0..=0.9)
                            .speed(0.01),
                    );
                    ui.label("test");
                    ui.add(
                        egui::DragValue::new(&mut panel.form.split.test)
                            .range(0.0..=0.9)
                            .speed(0.01),
                    );
                })
                .response
                .on_hover_text("for the videos whose split the captions do not give");
            }
            SourceChoice::Features => path_row(ui, panel, Field::Features, "features", repaint),
            SourceChoice::Coot => {
                path_row(ui, panel, Field::CootMeta, "meta_all.json", repaint);
                path_row(ui, panel, Field::VideoH5, "frame features", repaint);
                path_row(ui, panel, Field::TextH5, "token features", repaint);
                path_row(ui, panel, Field::SentenceSplits, "sentence splits", repaint);
                ui.horizontal(|ui| {
                    ui.label("at most");
                    ui.add(egui::DragValue::new(&mut panel.form.max_frames).range(1..=10_000));
                    ui.label("frames per clip");
                });
            }
        }
        if ui.button("create project").clicked() {
            panel.create(repaint.clone());
        }
    });
    if let Some(job) = &panel.create_job {
        ui.add(egui::ProgressBar::new(job.fraction().unwrap_or(0.0)).animate(true));
    }
    if let Some(created) = &panel.created {
        ui.separator();
        ui.strong(format!("made {}", created.dir.display()));
        for (split, clips, videos) in &created.splits {
            ui.label(format!("{split}: {clips} clips of {videos} videos"));
        }
        if created.problems.is_empty() {
            ui.label("nothing skipped");
        } else {
            problems_ui(ui, &created.problems);
        }
    }
    if let Some(target) = panel.ingest_target.clone() {
        ui.separator();
        ui.strong(format!("ingest {}", target.display()));
        ui.add_enabled_ui(panel.ingest_job.is_none(), |ui| {
            ui.horizontal(|ui| {
                ui.label("frames per clip");
                ui.add(
                    egui::DragValue::new(&mut panel.ingest_form.frames_per_clip)
                        .range(1..=crate::ingest::MAX_FRAMES_PER_CLIP),
                );
                ui.checkbox(&mut panel.ingest_form.thumbnails, "thumbnails");
                ui.checkbox(&mut panel.ingest_form.restart, "from scratch")
                    .on_hover_text("forget what earlier ingests staged");
            });
            ui.horizontal(|ui| {
                ui.label("text encoder");
                ui.add(
                    egui::TextEdit::singleline(&mut panel.ingest_form.text_encoder)
                        .desired_width(160.0)
                        .hint_text("minilm where installed"),
                );
            });
        });
        ui.horizontal(|ui| match &panel.ingest_job {
            None => {
                let label = if panel.ingest_report.as_ref().is_some_and(|r| r.cancelled) {
                    "resume ingest"
                } else {
                    "ingest"
                };
                if ui.button(label).clicked() {
                    panel.ingest(repaint.clone());
                }
            }
            Some(job) => {
                if ui.button("stop ingest").clicked() {
                    job.cancel.cancel();
                }
            }
        });
        if panel.ingest_job.is_some() || panel.ingest_report.is_some() {
            for stage in IngestStage::ALL {
                if stage == IngestStage::Thumbnails && !panel.ingest_form.thumbnails {
                    continue;
                }
                progress_bar(ui, stage.name(), &panel.stages[stage_index(stage)]);
            }
        }
        if !panel.ingest_problems.is_empty() {
            egui::ScrollArea::vertical()
                .id_salt("ingest-problems")
                .max_height(120.0)
                .show(ui, |ui| {
                    ui.strong(format!("{} ingest problems", panel.ingest_problems.len()));
                    for problem in &panel.ingest_problems {
                        ui.label(problem);
                    }
                });
        }
    }
}
