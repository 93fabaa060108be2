//! The app state and the frame: panels around the map, jobs polled, uploads queued.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use egui_wgpu::wgpu;

use super::compare_panel::{CompareState, Compared, compare_ui, pruning_under_run};
use super::frames::FrameStrip;
use super::inspector_panel::{inspector_ui, neighbours_ui};
use super::jobs::{Job, Polled, Reporter};
use super::map_panel::{MapStyle, MapView};
use super::project_panel::{ProjectAction, ProjectPanel, projects_ui};
use super::pruning_panel::{PruningView, audit_panel_ui, pruning_ui};
use super::scene::{ClipFiles, ClipInfo, MAX_DRAWN_EDGES, Scene};
use super::search_panel::{SearchState, search_ui};
use super::settings::{ColourBy, GraphLayout, Level, Modality, PruningScope, Settings, Space};
use super::status_bar::status_ui;
use super::thumbnails::{TextureCache, atlas_batches};
use super::train_panel::{TrainPanel, train_ui};
use crate::analysis::Matrix;
use crate::analysis::audit::{
    AuditReport, AuditRequest, AuditScope, TruthChoice, audit, default_gammas,
};
use crate::analysis::clusters::{ClusterLabel, cluster_labels};
use crate::analysis::compare::{align_layout, compare_runs};
use crate::analysis::force_layout::{ForceConfig, ForceLayout};
use crate::analysis::negatives::loss_settings;
use crate::analysis::negatives::{AnchorExplanation, NegativesRequest, Scope, explain_anchor};
use crate::analysis::tsne::{Init, Tsne, TsneConfig};
use crate::analysis::{SearchIndex, project_points};
use crate::demo::{DEMO_RUN, DemoEvent, DemoSettings, make_demo};
use crate::jobs::{CancelToken, progress_channel};
use crate::media::ThumbnailCache;
use crate::project::{Project, RunName};
use crate::render::{
    AtlasLayout, GpuEdge, GpuOverlay, GpuPoint, NO_TILE, OverlayStyle, pack_colour,
};

/// What the explorer opens on.
#[derive(Debug, Clone, PartialEq)]
pub enum Startup {
    /// The built-in demo under this folder, made first if needed.
    Demo(PathBuf),
    /// A project directory and, optionally, the run to show (else the latest; none: the input
    /// features).
    Project { dir: PathBuf, run: Option<RunName> },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    pub startup: Startup,
    /// Iterations of each t-SNE layout.
    pub tsne_iterations: usize,
    /// Save a screenshot here once the map is laid out and its thumbnails are in, then close
    /// (`CROSSCLR_SCREENSHOT`: the end-to-end check and the README's picture).
    pub screenshot: Option<PathBuf>,
}

impl Launch {
    pub fn new(startup: Startup) -> Self {
        Self {
            startup,
            tsne_iterations: TsneConfig::default().iterations,
            screenshot: std::env::var_os("CROSSCLR_SCREENSHOT").map(PathBuf::from),
        }
    }
}

pub(super) type Positions = Vec<[f32; 2]>;

/// A layout job's output: positions, and cluster names once the layout is done.
pub(super) type LayoutFrame = (Positions, Vec<ClusterLabel>);

/// What a pruning view was computed for: anchor, side, γ (bits), scope and epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
struct PruningKey {
    anchor: usize,
    side: Modality,
    gamma: u64,
    scope: PruningScope,
    epoch: usize,
}

/// A clip's decoded thumbnail pixels.
pub(super) type ClipPixels = (usize, Vec<u8>);

/// A clip and its nearest clips with their cosines, in input space and in joint space.
pub type Neighbours = (usize, [Vec<(usize, f32)>; 2]);

/// The compare panel's height: the tables and the anchor's lists without scrolling.
const COMPARE_PANEL_HEIGHT: f32 = 290.0;

/// The mark of a search result on a map coloured by something else.
const SEARCH_RESULT: [u8; 4] = [255, 230, 90, 255];

/// A loaded scene and the search index built beside it.
struct Loaded {
    scene: Scene,
    search: Option<Result<SearchIndex, String>>,
    /// The project's trained runs, for the compare view.
    runs: Vec<RunName>,
}

pub struct ExplorerApp {
    pub settings: Settings,
    launch: Launch,
    pub scene: Option<Arc<Scene>>,
    search_index: Option<Arc<SearchIndex>>,
    /// Why there is no scene (yet), for the map's place.
    pub message: Option<String>,
    pub map: MapView,
    /// Laid-out levels, kept so switching back does not lay out again.
    layouts: std::collections::HashMap<Level, Positions>,
    /// The level the map shows (its layout may still be running).
    shown_level: Option<Level>,
    pub selection: BTreeSet<usize>,
    /// The clip last clicked: what the inspector shows.
    pub anchor: Option<usize>,
    pub hovered: Option<usize>,
    pub search: SearchState,
    pub textures: TextureCache,
    /// The selected clip's frames, decoded on demand.
    pub frames: FrameStrip,
    target_format: Option<wgpu::TextureFormat>,
    max_atlas_pages: u32,
    // Jobs.
    demo_job: Option<Job<PathBuf>>,
    load_job: Option<Job<Loaded>>,
    layout_job: Option<(Level, Job<LayoutFrame>)>,
    /// Cluster names of each finished layout.
    labels: std::collections::HashMap<Level, Vec<ClusterLabel>>,
    thumbnail_job: Option<Job<Vec<ClipPixels>>>,
    search_job: Option<Job<(String, Vec<f32>)>>,
    /// The replayed explanation and how long the replay took, in microseconds.
    pruning_job: Option<Job<(AnchorExplanation, f64)>>,
    audit_job: Option<Job<AuditReport>>,
    /// The anchor's sets, and what they were computed for.
    pub pruning: Option<PruningView>,
    pruning_for: Option<PruningKey>,
    pub pruning_status: Option<String>,
    pub audit: Option<AuditReport>,
    pub audit_status: Option<String>,
    /// Edges drawn, and whether the graph was cut to [`MAX_DRAWN_EDGES`].
    pub drawn_edges: usize,
    /// The inspector's neighbour lists (input, joint space) and the clip they are for.
    pub neighbours: Option<Neighbours>,
    pub edges_capped: bool,
    colours_dirty: bool,
    overlay_dirty: bool,
    edges_dirty: bool,
    /// Frames since everything settled, for the screenshot.
    settled_frames: usize,
    screenshot_requested: bool,
    /// Errors of finished jobs, newest last.
    pub problems: Vec<String>,
    /// The Train panel: its form, its run's job and curves.
    pub train: TrainPanel,
    /// The layout shown before the project was reloaded (level, clip keys, positions): the
    /// warm start of the next layout of the same clips, so a retrained map keeps its place.
    previous_layout: Option<(Level, Vec<String>, Positions)>,
    /// The Projects window: open, new, ingest.
    pub projects: ProjectPanel,
    /// Thumbnails an ingest cached after the scene was loaded, by clip.
    pub arrived_thumbnails: std::collections::HashMap<usize, PathBuf>,
    /// Arrived thumbnails waiting for the atlas job.
    pending_thumbnails: Vec<(usize, PathBuf)>,
    /// The compare view: a second run's map beside this one.
    pub compare: CompareState,
    /// A run to show once the load under way is done (the Train panel's newest checkpoint).
    pending_show: Option<(PathBuf, RunName)>,
    /// Intermediate t-SNE layouts drawn while the latest layout ran (it animates).
    pub layout_steps_shown: usize,
    /// The graph's own layout of the clips (ForceAtlas2) under way, for a graph space.
    force_job: Option<(Space, Job<LayoutFrame>)>,
    /// Finished graph layouts of the clips, by graph space, and their cluster names.
    force_layouts: std::collections::HashMap<Space, LayoutFrame>,
    /// The graph space whose own layout the map shows, if it shows one (else t-SNE's map).
    pub shown_force: Option<Space>,
}

/// A clip's thumbnail: the one cached when the scene was loaded, else one that arrived since.
pub fn thumbnail_of<'a>(
    info: &'a ClipInfo,
    arrived: &'a std::collections::HashMap<usize, PathBuf>,
    clip: usize,
) -> Option<&'a std::path::Path> {
    info.thumbnail
        .as_deref()
        .or_else(|| arrived.get(&clip).map(PathBuf::as_path))
}

impl std::fmt::Debug for ExplorerApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExplorerApp")
            .field("settings", &self.settings)
            .field("selection", &self.selection)
            .finish_non_exhaustive()
    }
}

const SETTINGS_KEY: &str = "crossclr-explorer";

impl ExplorerApp {
    pub fn new(cc: &eframe::CreationContext<'_>, launch: Launch) -> Self {
        let settings = cc
            .storage
            .and_then(|s| eframe::get_value(s, SETTINGS_KEY))
            .unwrap_or_default();
        let (target_format, max_atlas_pages) = match &cc.wgpu_render_state {
            Some(state) => (
                Some(state.target_format),
                state.device.limits().max_texture_array_layers,
            ),
            None => (None, 1),
        };
        let ctx = cc.egui_ctx.clone();
        let mut app = Self {
            settings,
            launch,
            scene: None,
            search_index: None,
            message: Some("loading…".into()),
            map: MapView::default(),
            layouts: Default::default(),
            shown_level: None,
            selection: BTreeSet::new(),
            anchor: None,
            hovered: None,
            search: SearchState::default(),
            textures: TextureCache::new(move || ctx.request_repaint()),
            frames: FrameStrip::default(),
            target_format,
            max_atlas_pages,
            demo_job: None,
            load_job: None,
            layout_job: None,
            labels: Default::default(),
            thumbnail_job: None,
            search_job: None,
            pruning_job: None,
            audit_job: None,
            pruning: None,
            pruning_for: None,
            pruning_status: None,
            audit: None,
            audit_status: None,
            drawn_edges: 0,
            neighbours: None,
            edges_capped: false,
            colours_dirty: false,
            overlay_dirty: false,
            edges_dirty: false,
            settled_frames: 0,
            screenshot_requested: false,
            problems: Vec::new(),
            train: TrainPanel::default(),
            previous_layout: None,
            projects: ProjectPanel::default(),
            arrived_thumbnails: Default::default(),
            pending_thumbnails: Vec::new(),
            compare: CompareState::default(),
            pending_show: None,
            layout_steps_shown: 0,
            force_job: None,
            force_layouts: Default::default(),
            shown_force: None,
        };
        app.start(&cc.egui_ctx);
        app
    }

    fn repainter(ctx: &egui::Context) -> impl Fn() + Send + Sync + 'static {
        let ctx = ctx.clone();
        move || ctx.request_repaint()
    }

    fn start(&mut self, ctx: &egui::Context) {
        match self.launch.startup.clone() {
            Startup::Demo(dir) => {
                self.message = Some("making the demo project (first start only)…".into());
                self.demo_job = Some(Job::start(
                    "demo",
                    Self::repainter(ctx),
                    move |report, cancel| {
                        let (events, receiver) = progress_channel(64);
                        std::thread::scope(|scope| {
                            let relay = scope.spawn(|| {
                                for event in receiver {
                                    relay_demo(report, event);
                                }
                            });
                            let made = make_demo(&dir, DemoSettings::default(), &events, cancel);
                            drop(events);
                            let _ = relay.join();
                            made.map_err(|e| format!("{:#}", anyhow::Error::from(e)))
                        })
                    },
                ));
            }
            Startup::Project { dir, run } => self.load(ctx, dir, run),
        }
    }

    /// Opens the project in `dir` on a job: its points under the run's head, its manifest and
    /// its search index.
    pub fn load(&mut self, ctx: &egui::Context, dir: PathBuf, run: Option<RunName>) {
        // The t-SNE map is what a new layout warm-starts from, also when the graph's own
        // layout is on screen.
        self.previous_layout = match (&self.scene, self.shown_level, self.tsne_positions()) {
            (Some(scene), Some(level), Some(positions)) if scene.project_dir == dir => Some((
                level,
                scene.clips.iter().map(|c| c.key.clone()).collect(),
                positions,
            )),
            _ => None,
        };
        self.settings.remember(dir.clone());
        // What went wrong with the project shown before is no news about this one.
        self.problems.clear();
        self.message = Some(format!("opening {}…", dir.display()));
        self.load_job = Some(Job::start(
            "load",
            Self::repainter(ctx),
            move |report, cancel| {
                let project =
                    Project::open(&dir).map_err(|e| format!("{:#}", anyhow::Error::from(e)))?;
                let run = match run {
                    Some(run) => Some(run),
                    None => project.latest_run().ok(),
                };
                let scene = scene_of(
                    &project,
                    run.as_ref(),
                    &|text| report.progress(0, None, text),
                    cancel,
                )?;
                let search = run.as_ref().map(|run| {
                    report.progress(0, None, "building the search index");
                    SearchIndex::from_points(&project, run, &scene.points)
                        .map_err(|e| format!("{:#}", anyhow::Error::from(e)))
                });
                let runs = project.trained_runs().unwrap_or_default();
                Ok(Loaded {
                    scene,
                    search,
                    runs,
                })
            },
        ));
    }

    /// Lays out `level` with t-SNE on a job, sending snapshots as it goes.
    fn lay_out(&mut self, ctx: &egui::Context, level: Level) {
        let Some(scene) = self.scene.clone() else {
            return;
        };
        let warm = self
            .previous_layout
            .take()
            .and_then(|(previous, keys, positions)| {
                let same_clips = previous == level
                    && keys.len() == scene.clips.len()
                    && keys.iter().zip(&scene.clips).all(|(k, c)| *k == c.key)
                    && positions.len() == scene.count(level);
                same_clips.then(|| positions.iter().flatten().copied().collect::<Vec<f32>>())
            });
        if let Some((_, job)) = &self.layout_job {
            job.cancel.cancel();
        }
        self.layout_steps_shown = 0;
        let job = layout_job(
            Self::repainter(ctx),
            scene,
            level,
            warm,
            self.launch.tsne_iterations,
        );
        self.layout_job = Some((level, job));
    }

    /// Uploads `positions` as the map's points.
    fn show_positions(&mut self, level: Level, positions: Positions, refit: bool) {
        let Some(scene) = self.scene.clone() else {
            return;
        };
        let points = self.gpu_points(&scene, level, &positions);
        self.map.set_positions(positions, refit);
        self.map.uploads().points = Some(points.into());
        self.shown_level = Some(level);
        self.colours_dirty = true;
        self.overlay_dirty = true;
        self.edges_dirty = true;
    }

    /// The t-SNE map of the shown level, also while the graph's own layout is on screen.
    fn tsne_positions(&self) -> Option<Positions> {
        match self.shown_force {
            Some(_) => self.shown_level.and_then(|l| self.layouts.get(&l).cloned()),
            None => self.shown_level.map(|_| self.map.positions.clone()),
        }
    }

    /// Whether the map should show the graph's own layout: asked for, the graph shown, clips
    /// as points and one map on screen.
    pub fn force_layout_wanted(&self) -> bool {
        self.settings.graph_layout == GraphLayout::Force
            && self.settings.show_edges
            && self.settings.level == Level::Clip
            && self.compare.compared.is_none()
    }

    /// Puts the map's points where the settings say: the graph's own layout (kept, or laid out
    /// on a job from the t-SNE map once that is done) or back on the t-SNE map.
    fn arrange(&mut self, ctx: &egui::Context) {
        if self.scene.is_none() || self.shown_level.is_none() {
            return;
        }
        if !self.force_layout_wanted() {
            if let Some((_, job)) = self.force_job.take() {
                job.cancel.cancel();
            }
            if self.shown_force.take().is_some()
                && let Some(positions) = self.layouts.get(&self.settings.level).cloned()
            {
                self.show_positions(self.settings.level, positions, true);
            }
            return;
        }
        let space = self.settings.graph_space;
        if self.shown_force == Some(space) {
            return;
        }
        if let Some((positions, _)) = self.force_layouts.get(&space).cloned() {
            self.show_force_layout(space, positions, true);
            return;
        }
        if self.force_job.as_ref().is_some_and(|(s, _)| *s == space) {
            return;
        }
        // Unfolding the t-SNE map keeps a user's bearings; until it is done there is nothing
        // to start from, and the next frame asks again.
        let (Some(scene), Some(start)) = (self.scene.clone(), self.layouts.get(&Level::Clip))
        else {
            return;
        };
        let start: Vec<f32> = start.iter().flatten().copied().collect();
        if let Some((_, job)) = self.force_job.take() {
            job.cancel.cancel();
        }
        let job = force_layout_job(Self::repainter(ctx), scene, space, start);
        self.force_job = Some((space, job));
    }

    fn show_force_layout(&mut self, space: Space, positions: Positions, refit: bool) {
        self.show_positions(Level::Clip, positions, refit);
        self.shown_force = Some(space);
    }

    fn poll_force_layout(&mut self) {
        let Some((space, job)) = &mut self.force_job else {
            return;
        };
        let space = *space;
        let (positions, finished) = match job.poll() {
            Polled::Nothing => return,
            Polled::Partial(mut snapshots) => match snapshots.pop() {
                Some((last, _)) => (last, false),
                None => return,
            },
            Polled::Finished(mut snapshots, result) => {
                self.force_job = None;
                match result {
                    Ok(frame) => {
                        let positions = frame.0.clone();
                        self.force_layouts.insert(space, frame);
                        (positions, true)
                    }
                    Err(error) => {
                        if error != "cancelled" {
                            self.problems.push(format!("graph layout: {error}"));
                        }
                        match snapshots.pop() {
                            Some((last, _)) => (last, false),
                            None => return,
                        }
                    }
                }
            }
        };
        if !self.force_layout_wanted() || self.settings.graph_space != space {
            return;
        }
        let first = self.shown_force != Some(space);
        self.show_force_layout(space, positions, first || finished);
    }

    /// Uploads `positions` as the second run's map.
    fn show_compare_positions(&mut self, level: Level, positions: Positions, refit: bool) {
        let Some(scene) = self.compare.compared.as_ref().map(|c| Arc::clone(&c.scene)) else {
            return;
        };
        let points = self.gpu_points(&scene, level, &positions);
        self.compare.map.set_positions(positions, refit);
        if refit {
            // The first map now has half the width: both fit it again (they share its camera).
            self.map.fit_pending = true;
        }
        self.compare.map.uploads().points = Some(points.into());
        self.compare.shown_level = Some(level);
        self.colours_dirty = true;
        self.overlay_dirty = true;
        self.edges_dirty = true;
    }

    /// The map's points of `scene` at `positions`: sized by degree, with their atlas tiles.
    fn gpu_points(&self, scene: &Scene, level: Level, positions: &[[f32; 2]]) -> Vec<GpuPoint> {
        let layout = AtlasLayout::for_thumbnails(scene.clips.len()).capped(self.max_atlas_pages);
        let degree = &scene.graph(self.settings.graph_space).degree;
        let k = super::scene::GRAPH_K as f32;
        positions
            .iter()
            .enumerate()
            .map(|(p, &position)| {
                let clip = scene.clip_of_point(level, p);
                let is_sentence = matches!(level, Level::Sentence | Level::Paragraph)
                    || (level == Level::Pairs && p >= scene.clips.len());
                let clip_point =
                    matches!(level, Level::Clip) || (level == Level::Pairs && !is_sentence);
                // Node size by degree: hubs of the kNN graph (many clips call them near) grow.
                let size = if self.settings.show_edges && clip_point {
                    (degree.get(clip).copied().unwrap_or(0) as f32 / k)
                        .sqrt()
                        .clamp(0.8, 2.5)
                } else {
                    1.0
                };
                GpuPoint {
                    position,
                    size,
                    tile: if is_sentence
                        || thumbnail_of(&scene.clips[clip], &self.arrived_thumbnails, clip)
                            .is_none()
                    {
                        NO_TILE
                    } else {
                        layout.tile(clip)
                    },
                }
            })
            .collect()
    }

    /// The pruning view, when it applies to the shown level (clips are its samples).
    fn pruning_shown(&self) -> Option<&PruningView> {
        let level = self.shown_level?;
        (self.settings.show_pruning && matches!(level, Level::Clip | Level::Pairs))
            .then_some(self.pruning.as_ref())
            .flatten()
            .filter(|view| Some(view.anchor) == self.anchor)
    }

    /// The second run's sets for the anchor, when the first's are shown.
    fn compare_pruning_shown(&self) -> Option<&PruningView> {
        self.pruning_shown()?;
        self.compare
            .pruning
            .as_ref()
            .filter(|view| Some(view.anchor) == self.anchor)
    }

    /// The second run's scene, when its map shows `level`.
    fn compare_scene(&self, level: Level) -> Option<Arc<Scene>> {
        (self.compare.shown_level == Some(level))
            .then(|| self.compare.compared.as_ref().map(|c| Arc::clone(&c.scene)))
            .flatten()
    }

    fn search_scores(&self) -> Option<&[f32]> {
        self.search.scores.as_deref()
    }

    /// Each point's colour on a map of `scene` with `pruning`'s sets, and the legend.
    fn colours_with(
        &self,
        scene: &Scene,
        level: Level,
        pruning: Option<&PruningView>,
    ) -> (Vec<u32>, Vec<(String, [u8; 4])>) {
        let colours = scene.colours(
            level,
            self.settings.colour_by,
            self.settings.gamma,
            self.search_scores(),
        );
        let mut rgba = colours.rgba;
        let mut legend = colours.legend;
        if let Some(view) = pruning {
            for (clip, colour) in view.colours() {
                rgba[scene.point_of_clip(level, clip)] = colour;
            }
            use super::pruning_panel::{
                ANCHOR, KEPT, POSITIVE, PRUNED_BOTH, PRUNED_CROSS, PRUNED_INTRA,
            };
            legend = vec![
                ("anchor".into(), ANCHOR),
                ("positive".into(), POSITIVE),
                ("kept negative".into(), KEPT),
                ("pruned cross-modal".into(), PRUNED_CROSS),
                ("pruned intra-modal".into(), PRUNED_INTRA),
                ("pruned both".into(), PRUNED_BOTH),
            ];
        }
        let by_score = self.settings.colour_by == ColourBy::SearchScore && pruning.is_none();
        if !self.search.top_clips.is_empty() && !by_score {
            legend.push(("search result".into(), SEARCH_RESULT));
        }
        if pruning.is_none()
            && self.settings.show_edges
            && self.settings.colour_by != ColourBy::Influence
            && matches!(level, Level::Clip | Level::Pairs)
        {
            legend.push((
                format!("ring: influential (c/max c > γ {:.2})", self.settings.gamma),
                super::scene::INFLUENTIAL,
            ));
        }
        let packed: Vec<u32> = rgba.iter().map(|&c| pack_colour(c)).collect();
        (packed, legend)
    }

    fn upload_colours(&mut self) {
        let (Some(scene), Some(level)) = (self.scene.clone(), self.shown_level) else {
            return;
        };
        let (packed, legend) = self.colours_with(&scene, level, self.pruning_shown());
        self.map.uploads().colours = Some(packed.into());
        if let Some(second) = self.compare_scene(level) {
            let (packed, _) = self.colours_with(&second, level, self.compare_pruning_shown());
            self.compare.map.uploads().colours = Some(packed.into());
        }
        self.search.legend = legend;
        self.colours_dirty = false;
    }

    /// The points drawn on top on a map of `scene`: selection, `pruning`'s sets or influential
    /// rings, search results, the anchor and the hovered clip.
    fn overlay_with(
        &self,
        scene: &Scene,
        level: Level,
        pruning: Option<&PruningView>,
    ) -> Vec<GpuOverlay> {
        let mut overlay = Vec::new();
        let full = |c: [u8; 4]| pack_colour(c);
        let colours = scene.colours(
            level,
            self.settings.colour_by,
            self.settings.gamma,
            self.search_scores(),
        );
        for &clip in &self.selection {
            let p = scene.point_of_clip(level, clip);
            overlay.push(GpuOverlay::new(
                p as u32,
                full(colours.rgba[p]),
                OverlayStyle::Full,
            ));
            if level == Level::Pairs {
                let q = p + scene.clips.len();
                overlay.push(GpuOverlay::new(
                    q as u32,
                    full(colours.rgba[q]),
                    OverlayStyle::Full,
                ));
            }
        }
        if let Some(view) = pruning {
            for (clip, colour) in view.highlighted() {
                let p = scene.point_of_clip(level, clip);
                overlay.push(GpuOverlay::new(p as u32, full(colour), OverlayStyle::Full));
            }
        } else if self.settings.show_edges && matches!(level, Level::Clip | Level::Pairs) {
            // Influential samples (c/max c > γ) ringed on the graph.
            for (clip, &influential) in scene.influential(self.settings.gamma).iter().enumerate() {
                if influential {
                    let p = scene.point_of_clip(level, clip);
                    overlay.push(GpuOverlay::new(
                        p as u32,
                        full(super::scene::INFLUENTIAL),
                        OverlayStyle::Ring,
                    ));
                }
            }
        }
        // The results drawn large: in their score colour when the map shows scores, else marked.
        let by_score = self.settings.colour_by == ColourBy::SearchScore && pruning.is_none();
        for &clip in &self.search.top_clips {
            let p = scene.point_of_clip(level, clip);
            let colour = if by_score {
                colours.rgba[p]
            } else {
                SEARCH_RESULT
            };
            overlay.push(GpuOverlay::new(p as u32, full(colour), OverlayStyle::Large));
        }
        for (clip, colour) in [
            (self.anchor, [255, 255, 255, 255]),
            (self.hovered, [255, 220, 120, 255]),
        ] {
            if let Some(clip) = clip {
                let p = scene.point_of_clip(level, clip);
                overlay.push(GpuOverlay::new(p as u32, full(colour), OverlayStyle::Ring));
            }
        }
        overlay
    }

    fn upload_overlay(&mut self) {
        let (Some(scene), Some(level)) = (self.scene.clone(), self.shown_level) else {
            return;
        };
        let overlay = self.overlay_with(&scene, level, self.pruning_shown());
        self.map.uploads().overlay = Some(overlay.into());
        if let Some(second) = self.compare_scene(level) {
            let overlay = self.overlay_with(&second, level, self.compare_pruning_shown());
            self.compare.map.uploads().overlay = Some(overlay.into());
        }
        self.overlay_dirty = false;
    }

    /// The similarity graph's edges (clip levels), pair lines (pairs) and the anchor's lines to
    /// its positive and pruned negatives.
    /// The edges of a map of `scene` with `pruning`'s lines, and whether the graph was capped.
    fn edges_with(
        &self,
        scene: &Scene,
        level: Level,
        pruning: Option<&PruningView>,
    ) -> (Vec<GpuEdge>, bool) {
        let mut edges = Vec::new();
        let mut capped = false;
        if self.settings.show_edges && matches!(level, Level::Clip | Level::Pairs) {
            let graph = scene.graph(self.settings.graph_space);
            let colour = pack_colour([120, 150, 200, 90]);
            let shown = graph.from.len().min(MAX_DRAWN_EDGES);
            capped = shown < graph.from.len();
            edges.extend((0..shown).map(|e| GpuEdge::new(graph.from[e], graph.to[e], colour)));
        }
        if level == Level::Pairs {
            let n = scene.clips.len() as u32;
            let colour = pack_colour([210, 210, 210, 70]);
            edges.extend((0..n).map(|i| GpuEdge::new(i, i + n, colour)));
        }
        if let Some(view) = pruning {
            let anchor = scene.point_of_clip(level, view.anchor) as u32;
            for (clip, colour) in view.highlighted() {
                if clip != view.anchor {
                    let p = scene.point_of_clip(level, clip) as u32;
                    // At the pairs level a cross-modal candidate is the other side's point.
                    let p = if level == Level::Pairs && colour != super::pruning_panel::PRUNED_INTRA
                    {
                        p + scene.clips.len() as u32
                    } else {
                        p
                    };
                    edges.push(GpuEdge::new(
                        anchor,
                        p,
                        pack_colour([colour[0], colour[1], colour[2], 200]),
                    ));
                }
            }
        }
        (edges, capped)
    }

    fn upload_edges(&mut self) {
        let (Some(scene), Some(level)) = (self.scene.clone(), self.shown_level) else {
            return;
        };
        let (edges, capped) = self.edges_with(&scene, level, self.pruning_shown());
        self.edges_capped = capped;
        self.drawn_edges = edges.len();
        self.map.uploads().edges = Some(edges.into());
        if let Some(second) = self.compare_scene(level) {
            let (edges, _) = self.edges_with(&second, level, self.compare_pruning_shown());
            self.compare.map.uploads().edges = Some(edges.into());
        }
        self.edges_dirty = false;
    }

    /// Starts comparing the shown run with the picked one: the second run's scene and both runs'
    /// tables on a job; its map follows when the job is done.
    pub fn start_compare(&mut self, ctx: &egui::Context) {
        let (Some(scene), Some(second)) = (self.scene.clone(), self.compare.second.clone()) else {
            return;
        };
        let Some(first) = scene.run() else {
            return;
        };
        self.compare.close();
        self.compare.problem = None;
        self.compare.pruning_for = None;
        self.colours_dirty = true;
        self.overlay_dirty = true;
        self.edges_dirty = true;
        let dir = scene.project_dir.clone();
        self.compare.job = Some(Job::start(
            "compare",
            Self::repainter(ctx),
            move |report, cancel| {
                let started = std::time::Instant::now();
                let chain =
                    |e: crate::analysis::AnalysisError| format!("{:#}", anyhow::Error::from(e));
                let project =
                    Project::open(&dir).map_err(|e| format!("{:#}", anyhow::Error::from(e)))?;
                let other = scene_of(
                    &project,
                    Some(&second),
                    &|text| report.progress(0, Some(2), format!("`{second}`: {text}")),
                    cancel,
                )?;
                if other.points.clip_keys != scene.points.clip_keys {
                    return Err(format!(
                        "the clips of {} changed since it was opened: open it again to compare",
                        dir.display()
                    ));
                }
                report.progress(1, Some(2), "evaluating both runs");
                let table = compare_runs(&project, &first, &second, None, cancel).map_err(chain)?;
                Ok(Compared {
                    first,
                    second,
                    scene: Arc::new(other),
                    table,
                    seconds: started.elapsed().as_secs_f64(),
                })
            },
        ));
    }

    /// Lays out the second run at the shown level, from the first map's positions.
    fn start_compare_layout(&mut self, ctx: &egui::Context) {
        let (Some(level), Some(compared)) = (self.shown_level, &self.compare.compared) else {
            return;
        };
        let scene = Arc::clone(&compared.scene);
        if let Some((_, job)) = &self.compare.layout_job {
            job.cancel.cancel();
        }
        let warm = self
            .tsne_positions()
            .filter(|positions| positions.len() == scene.count(level))
            .map(|positions| positions.iter().flatten().copied().collect());
        let job = layout_job(
            Self::repainter(ctx),
            scene,
            level,
            warm,
            self.launch.tsne_iterations,
        );
        self.compare.layout_job = Some((level, job));
    }

    /// Fills the second map's atlas with the same thumbnails as the first's.
    fn start_compare_thumbnails(&mut self, ctx: &egui::Context) {
        let Some(compared) = &self.compare.compared else {
            return;
        };
        let scene = &compared.scene;
        let layout = AtlasLayout::for_thumbnails(scene.clips.len()).capped(self.max_atlas_pages);
        self.compare.map.uploads().atlas = Some(layout);
        let items: Vec<(usize, PathBuf)> = scene
            .clips
            .iter()
            .enumerate()
            .filter_map(|(i, clip)| {
                thumbnail_of(clip, &self.arrived_thumbnails, i).map(|p| (i, p.to_path_buf()))
            })
            .filter(|(i, _)| layout.tile(*i) != NO_TILE)
            .collect();
        self.compare.thumbnail_job = tiles_job("compare thumbnails", Self::repainter(ctx), items);
    }

    fn poll_compare(&mut self, ctx: &egui::Context) {
        if let Some(job) = &mut self.compare.job
            && let Polled::Finished(_, result) = job.poll()
        {
            self.compare.job = None;
            match result {
                Ok(compared) => {
                    self.compare.compared = Some(compared);
                    self.compare.pruning_for = None;
                    self.start_compare_layout(ctx);
                    self.start_compare_thumbnails(ctx);
                }
                Err(error) => self.compare.problem = Some(error),
            }
        }
        let mut snapshot = None;
        if let Some((level, job)) = &mut self.compare.layout_job {
            let level = *level;
            match job.poll() {
                Polled::Nothing => {}
                Polled::Partial(mut snapshots) => {
                    snapshot = snapshots.pop().map(|(p, _)| (level, p, false));
                }
                Polled::Finished(mut snapshots, result) => {
                    self.compare.layout_job = None;
                    match result {
                        Ok((positions, _)) => snapshot = Some((level, positions, true)),
                        Err(error) => {
                            snapshot = snapshots.pop().map(|(p, _)| (level, p, false));
                            if error != "cancelled" {
                                self.compare.problem = Some(format!("t-SNE: {error}"));
                            }
                        }
                    }
                }
            }
        }
        if let Some((level, positions, finished)) = snapshot
            && self.shown_level == Some(level)
        {
            let aligned = align_layout(&self.map.positions, &positions);
            let first = self.compare.shown_level != Some(level);
            self.show_compare_positions(level, aligned, first || finished);
        }
        if let Some(job) = &mut self.compare.thumbnail_job {
            let (batches, finished) = match job.poll() {
                Polled::Nothing => (Vec::new(), None),
                Polled::Partial(b) => (b, None),
                Polled::Finished(b, r) => (b, Some(r)),
            };
            if let Some(compared) = &self.compare.compared {
                let layout = AtlasLayout::for_thumbnails(compared.scene.clips.len())
                    .capped(self.max_atlas_pages);
                self.compare.map.queue_tiles(layout, batches);
            }
            if let Some(result) = finished {
                self.compare.thumbnail_job = None;
                if let Err(error) = result {
                    self.compare.problem = Some(error);
                }
            }
        }
        self.refresh_compare_pruning();
    }

    /// The anchor's sets under the second run's loss, when the anchor, side or γ changed.
    fn refresh_compare_pruning(&mut self) {
        let Some(compared) = &self.compare.compared else {
            return;
        };
        let key = self.anchor.map(|anchor| {
            (
                anchor,
                self.settings.pruning_side,
                self.settings.gamma.to_bits(),
            )
        });
        if key == self.compare.pruning_for {
            return;
        }
        self.compare.pruning = key.map(|(anchor, side, gamma)| {
            pruning_under_run(&compared.scene, anchor, side, f64::from_bits(gamma))
        });
        self.compare.pruning_for = key;
        self.colours_dirty = true;
        self.overlay_dirty = true;
        self.edges_dirty = true;
    }

    /// Recomputes the anchor's sets when the anchor, side, γ or scope changed: at once over the
    /// split, on a job for a training batch.
    fn refresh_pruning(&mut self, ctx: &egui::Context) {
        let Some(scene) = self.scene.clone() else {
            return;
        };
        let key = self.anchor.map(|anchor| PruningKey {
            anchor,
            side: self.settings.pruning_side,
            gamma: self.settings.gamma.to_bits(),
            scope: self.settings.pruning_scope,
            epoch: self.settings.pruning_epoch,
        });
        if key == self.pruning_for {
            return;
        }
        self.pruning_for = key;
        self.colours_dirty = true;
        self.overlay_dirty = true;
        self.edges_dirty = true;
        let Some(key) = key else {
            self.pruning = None;
            self.pruning_status = None;
            return;
        };
        if let Some(job) = self.pruning_job.take() {
            job.cancel.cancel();
        }
        let run = match &scene.points.source {
            crate::analysis::PointSource::Run(run) => Some(run.clone()),
            crate::analysis::PointSource::InputFeatures => None,
        };
        match (key.scope, run) {
            (PruningScope::TrainingBatch, Some(run)) => {
                self.pruning_status =
                    Some(format!("replaying epoch {} of run `{run}`…", key.epoch));
                let request = NegativesRequest {
                    anchor: scene.clips[key.anchor].key.clone(),
                    split: None,
                    modality: key.side,
                    mode: None,
                    gamma: Some(f64::from_bits(key.gamma)),
                    scope: Scope::AnchorBatch { epoch: key.epoch },
                    run: Some(run),
                };
                let dir = scene.project_dir.clone();
                self.pruning_job = Some(Job::start(
                    "replay",
                    Self::repainter(ctx),
                    move |report, cancel| {
                        let started = std::time::Instant::now();
                        let project = Project::open(&dir)
                            .map_err(|e| format!("{:#}", anyhow::Error::from(e)))?;
                        let explanation = explain_anchor(
                            &project,
                            &request,
                            &mut |done, total| {
                                report.progress(done, Some(total), "replaying the batch")
                            },
                            cancel,
                        )
                        .map_err(|e| format!("{:#}", anyhow::Error::from(e)))?;
                        Ok((explanation, started.elapsed().as_secs_f64() * 1e6))
                    },
                ));
            }
            _ => {
                self.pruning_status = None;
                self.pruning = Some(PruningView::of_split(
                    &scene,
                    key.anchor,
                    key.side,
                    f64::from_bits(key.gamma),
                ));
            }
        }
    }

    /// The audit of the training split (set scope) over the default γ sweep, on a job.
    fn start_audit(&mut self, ctx: &egui::Context) {
        let Some(scene) = self.scene.clone() else {
            return;
        };
        let run = match &scene.points.source {
            crate::analysis::PointSource::Run(run) => Some(run.clone()),
            crate::analysis::PointSource::InputFeatures => None,
        };
        let dir = scene.project_dir.clone();
        self.audit_status = Some("auditing the pruning…".into());
        self.audit_job = Some(Job::start(
            "audit",
            Self::repainter(ctx),
            move |report, cancel| {
                let project =
                    Project::open(&dir).map_err(|e| format!("{:#}", anyhow::Error::from(e)))?;
                let request = AuditRequest {
                    scope: AuditScope::Set,
                    split: None,
                    truth: TruthChoice::Auto { threshold: 0.9 },
                    gammas: default_gammas(),
                    mode: None,
                    run,
                };
                audit(
                    &project,
                    &request,
                    &mut |done, total| report.progress(done, Some(total), "audit"),
                    cancel,
                )
                .map_err(|e| format!("{:#}", anyhow::Error::from(e)))
            },
        ));
    }

    fn start_thumbnails(&mut self, ctx: &egui::Context) {
        let Some(scene) = self.scene.clone() else {
            return;
        };
        let layout = AtlasLayout::for_thumbnails(scene.clips.len()).capped(self.max_atlas_pages);
        self.map.uploads().atlas = Some(layout);
        let items: Vec<(usize, PathBuf)> = scene
            .clips
            .iter()
            .enumerate()
            .filter_map(|(i, clip)| clip.thumbnail.clone().map(|t| (i, t)))
            .filter(|(i, _)| layout.tile(*i) != NO_TILE)
            .collect();
        self.load_tiles(ctx, items);
    }

    /// Decodes `items`' thumbnails into their atlas tiles on a job.
    fn load_tiles(&mut self, ctx: &egui::Context, items: Vec<(usize, PathBuf)>) {
        if let Some(job) = tiles_job("thumbnails", Self::repainter(ctx), items) {
            self.thumbnail_job = Some(job);
        }
    }

    /// An ingest cached the thumbnails of `videos`: their clips' tiles are loaded now.
    fn thumbnails_arrived(&mut self, ctx: &egui::Context, videos: &BTreeSet<String>) {
        let Some(scene) = self.scene.clone() else {
            return;
        };
        let layout = AtlasLayout::for_thumbnails(scene.clips.len()).capped(self.max_atlas_pages);
        let fresh: Vec<(usize, PathBuf)> = scene
            .clips
            .iter()
            .enumerate()
            .filter(|(i, clip)| {
                clip.thumbnail.is_none()
                    && !self.arrived_thumbnails.contains_key(i)
                    && videos.contains(&clip.video)
                    && layout.tile(*i) != NO_TILE
            })
            .filter_map(|(i, clip)| clip.thumbnail_slot.clone().map(|path| (i, path)))
            .collect();
        self.arrived_thumbnails.extend(fresh.iter().cloned());
        self.pending_thumbnails.extend(fresh);
        if self.thumbnail_job.is_none() {
            let pending = std::mem::take(&mut self.pending_thumbnails);
            self.load_tiles(ctx, pending);
        }
    }

    pub fn run_search(&mut self, ctx: &egui::Context) {
        let Some(index) = self.search_index.clone() else {
            self.search.status = Some(match &self.scene {
                Some(scene) if !scene.trained() => {
                    "search needs a trained run: train one first".into()
                }
                _ => "no search index".into(),
            });
            return;
        };
        let query = self.search.query.trim().to_string();
        if query.is_empty() {
            return;
        }
        if let Some(job) = &self.search_job {
            job.cancel.cancel();
        }
        self.search.status = Some(format!("encoding {query:?}…"));
        self.search_job = Some(Job::start("search", Self::repainter(ctx), move |_, _| {
            let scores = index
                .scores(&query)
                .map_err(|e| format!("{:#}", anyhow::Error::from(e)))?;
            Ok((query, scores))
        }));
    }

    fn poll_jobs(&mut self, ctx: &egui::Context) {
        if let Some(job) = &mut self.demo_job
            && let Polled::Finished(_, result) = job.poll()
        {
            self.demo_job = None;
            match result {
                Ok(project) => {
                    let run = RunName::new(DEMO_RUN).ok();
                    self.load(ctx, project, run);
                }
                Err(error) => self.fail(format!("the demo: {error}")),
            }
        }
        if let Some(job) = &mut self.load_job
            && let Polled::Finished(_, result) = job.poll()
        {
            self.load_job = None;
            match result {
                Ok(loaded) => self.loaded(ctx, loaded),
                Err(error) => self.fail(error),
            }
        }
        let mut layout_done = None;
        if let Some((level, job)) = &mut self.layout_job {
            let level = *level;
            match job.poll() {
                Polled::Nothing => {}
                Polled::Partial(mut snapshots) => {
                    if let Some((last, _)) = snapshots.pop() {
                        let first = self.shown_level != Some(level);
                        layout_done = Some((level, last, first, false));
                    }
                }
                Polled::Finished(mut snapshots, result) => match result {
                    Ok((positions, labels)) => {
                        self.labels.insert(level, labels);
                        layout_done =
                            Some((level, positions, self.shown_level != Some(level), true))
                    }
                    Err(error) => {
                        if let Some((last, _)) = snapshots.pop() {
                            layout_done = Some((level, last, false, false));
                        }
                        if error != "cancelled" {
                            self.problems.push(format!("t-SNE: {error}"));
                        }
                        self.layout_job = None;
                    }
                },
            }
        }
        if let Some((level, positions, first, finished)) = layout_done {
            if finished {
                self.layouts.insert(level, positions.clone());
                self.layout_job = None;
            }
            // The graph's own layout, once shown, stays until the user turns it off.
            if self.settings.level == level && self.shown_force.is_none() {
                if !finished && positions != self.map.positions {
                    self.layout_steps_shown += 1;
                }
                self.show_positions(level, positions, first || finished);
                if finished && self.compare.compared.is_some() {
                    self.start_compare_layout(ctx);
                }
            }
        }
        if let Some(job) = &mut self.thumbnail_job {
            let (batches, finished) = match job.poll() {
                Polled::Nothing => (Vec::new(), None),
                Polled::Partial(b) => (b, None),
                Polled::Finished(b, r) => (b, Some(r)),
            };
            let arrived = !batches.is_empty() && !self.arrived_thumbnails.is_empty();
            if let Some(scene) = &self.scene {
                let layout =
                    AtlasLayout::for_thumbnails(scene.clips.len()).capped(self.max_atlas_pages);
                self.map.queue_tiles(layout, batches);
            }
            // Clips whose pictures arrived during an ingest switch from discs to their tiles.
            if arrived && let Some(level) = self.shown_level {
                let positions = self.map.positions.clone();
                self.show_positions(level, positions, false);
            }
            if let Some(result) = finished {
                self.thumbnail_job = None;
                if let Err(error) = result {
                    self.problems.push(error);
                }
                let pending = std::mem::take(&mut self.pending_thumbnails);
                self.load_tiles(ctx, pending);
            }
        }
        if let Some(job) = &mut self.search_job
            && let Polled::Finished(_, result) = job.poll()
        {
            self.search_job = None;
            match result {
                Ok((query, scores)) => {
                    self.search.show_results(query, scores);
                    self.colours_dirty = true;
                    self.overlay_dirty = true;
                }
                Err(error) => self.search.status = Some(error),
            }
        }
    }

    fn poll_analysis_jobs(&mut self) {
        if let Some(job) = &mut self.pruning_job
            && let Polled::Finished(_, result) = job.poll()
        {
            self.pruning_job = None;
            match result {
                Ok((explanation, micros)) => {
                    if let Some(scene) = &self.scene
                        && let Some(anchor) = self.anchor
                    {
                        self.pruning = Some(PruningView::of_explanation(
                            scene,
                            anchor,
                            &explanation,
                            micros,
                        ));
                        self.pruning_status = None;
                    }
                }
                Err(error) => {
                    self.pruning = None;
                    self.pruning_status = Some(error);
                }
            }
            self.colours_dirty = true;
            self.overlay_dirty = true;
            self.edges_dirty = true;
        }
        if let Some(job) = &mut self.audit_job
            && let Polled::Finished(_, result) = job.poll()
        {
            self.audit_job = None;
            match result {
                Ok(report) => {
                    self.audit = Some(report);
                    self.audit_status = None;
                }
                Err(error) => self.audit_status = Some(format!("no audit: {error}")),
            }
        }
    }

    fn fail(&mut self, error: String) {
        log_problem(&error);
        self.message = Some(error.clone());
        self.problems.push(error);
    }

    fn loaded(&mut self, ctx: &egui::Context, loaded: Loaded) {
        let Loaded {
            scene,
            search,
            runs,
        } = loaded;
        self.compare.reset(runs, scene.run().as_ref());
        self.message = None;
        self.search_index = None;
        match search {
            Some(Ok(index)) => self.search_index = Some(Arc::new(index)),
            Some(Err(error)) => self.problems.push(format!("search: {error}")),
            None => {}
        }
        if scene.clips.is_empty() {
            self.message = Some(format!(
                "{} has no clips with features",
                scene.project_dir.display()
            ));
        }
        if !scene.clips.iter().any(|c| c.thumbnail.is_some()) && self.projects.ingest_job.is_none()
        {
            self.problems.push(format!(
                "{} has no thumbnails: points are shown as discs (`crossclr ingest` caches them for projects made from videos)",
                scene.project_dir.display()
            ));
        }
        // The same clips again (a run's newer checkpoint): the user's selection stays.
        let same_clips = self.scene.as_ref().is_some_and(|old| {
            old.project_dir == scene.project_dir && old.points.clip_keys == scene.points.clip_keys
        });
        self.layouts.clear();
        self.labels.clear();
        self.shown_level = None;
        if let Some((_, job)) = self.force_job.take() {
            job.cancel.cancel();
        }
        self.force_layouts.clear();
        self.shown_force = None;
        if !same_clips {
            self.selection.clear();
            self.anchor = None;
        }
        self.hovered = None;
        self.search = SearchState::default();
        self.pruning = None;
        self.pruning_for = None;
        self.audit = None;
        self.textures.clear();
        self.frames.clear();
        self.arrived_thumbnails.clear();
        self.pending_thumbnails.clear();
        let level = if scene.level_available(self.settings.level) {
            self.settings.level
        } else {
            Level::Clip
        };
        self.settings.level = level;
        let enough = scene.count(level) >= 4;
        let project_dir = scene.project_dir.clone();
        self.scene = Some(Arc::new(scene));
        self.start_thumbnails(ctx);
        if self.projects.ingest_target.as_ref() == Some(&project_dir) {
            let done = self.projects.thumbnails_done.clone();
            self.thumbnails_arrived(ctx, &done);
        }
        self.start_audit(ctx);
        if enough {
            self.lay_out(ctx, level);
        } else {
            self.message = Some("fewer than 4 points: nothing to lay out".into());
        }
    }

    /// Applies a change of level: a kept layout at once, else a new t-SNE.
    fn switch_level(&mut self, ctx: &egui::Context, level: Level) {
        self.settings.level = level;
        if let Some(positions) = self.layouts.get(&level).cloned() {
            self.show_positions(level, positions, true);
            if self.compare.compared.is_some() {
                self.start_compare_layout(ctx);
            }
        } else {
            self.lay_out(ctx, level);
        }
    }

    fn toolbar_ui(&mut self, ui: &mut egui::Ui) {
        // Wrapped: a narrow window gets a second row rather than controls cut off at its edge.
        ui.horizontal_wrapped(|ui| {
            ui.strong("crossclr explorer");
            if let Some(scene) = &self.scene {
                ui.separator();
                ui.label(format!("{} · {} clips", scene.name, scene.clips.len()));
                ui.label(match &scene.points.source {
                    crate::analysis::PointSource::Run(run) => format!("run `{run}`"),
                    crate::analysis::PointSource::InputFeatures => {
                        "input features (no run yet)".into()
                    }
                });
            }
            ui.separator();
            let mut level = self.settings.level;
            let available: Vec<Level> = Level::ALL
                .into_iter()
                .filter(|l| self.scene.as_ref().is_none_or(|s| s.level_available(*l)))
                .collect();
            egui::ComboBox::from_label("points")
                .selected_text(level.name())
                .show_ui(ui, |ui| {
                    for l in available {
                        ui.selectable_value(&mut level, l, l.name());
                    }
                });
            if level != self.settings.level {
                self.switch_level(ui.ctx(), level);
            }
            let mut colour_by = self.settings.colour_by;
            egui::ComboBox::from_label("colour")
                .selected_text(colour_by.name())
                .show_ui(ui, |ui| {
                    for c in ColourBy::ALL {
                        ui.selectable_value(&mut colour_by, c, c.name());
                    }
                });
            if colour_by != self.settings.colour_by {
                self.settings.colour_by = colour_by;
                self.colours_dirty = true;
            }
            ui.separator();
            let (show_edges, space) = (self.settings.show_edges, self.settings.graph_space);
            ui.checkbox(&mut self.settings.show_edges, "graph");
            if self.settings.show_edges {
                let joint = self.scene.as_ref().is_some_and(|s| s.graph_joint.is_some());
                ui.selectable_value(&mut self.settings.graph_space, Space::Input, "input")
                    .on_hover_text("edges by the encoders' pooled input features");
                ui.add_enabled_ui(joint, |ui| {
                    ui.selectable_value(&mut self.settings.graph_space, Space::Joint, "joint")
                        .on_hover_text("edges by the run's joint embeddings")
                        .on_disabled_hover_text("the joint space needs a trained run");
                });
                ui.separator();
                // One map at a time: the compare view's two maps share a camera over t-SNE.
                let clips = self.settings.level == Level::Clip && self.compare.compared.is_none();
                let why = "the graph's own layout places clips (points: clips), one map at a time";
                ui.add_enabled_ui(clips, |ui| {
                    ui.selectable_value(
                        &mut self.settings.graph_layout,
                        GraphLayout::Map,
                        "on the map",
                    )
                    .on_hover_text("the graph over the t-SNE map")
                    .on_disabled_hover_text(why);
                    ui.selectable_value(
                        &mut self.settings.graph_layout,
                        GraphLayout::Force,
                        "own layout",
                    )
                    .on_hover_text("the clips placed by the graph's edges alone (ForceAtlas2)")
                    .on_disabled_hover_text(why);
                });
                if self.edges_capped {
                    ui.label(
                        egui::RichText::new(format!("edges capped at {MAX_DRAWN_EDGES}"))
                            .color(egui::Color32::from_rgb(240, 170, 90)),
                    );
                }
            }
            if (show_edges, space) != (self.settings.show_edges, self.settings.graph_space) {
                self.edges_dirty = true;
                self.overlay_dirty = true;
                // Node sizes follow the graph's degrees.
                if let Some(level) = self.shown_level {
                    let positions = self.map.positions.clone();
                    self.show_positions(level, positions, false);
                }
            }
            if ui.button("fit").clicked() {
                self.map.fit_pending = true;
            }
            ui.separator();
            ui.toggle_value(&mut self.settings.show_train, "train");
            ui.toggle_value(&mut self.projects.open, "projects")
                .on_hover_text("open a project, make a new one, ingest");
            ui.toggle_value(&mut self.compare.open, "compare")
                .on_hover_text("two runs side by side: maps, tables, the anchor's differences");
        });
    }

    fn legend_ui(&self, ui: &mut egui::Ui, rect: egui::Rect) {
        if self.search.legend.is_empty() || self.scene.is_none() {
            return;
        }
        // Drawn in the map's own layer, after the points, so that windows stay above it.
        let corner = egui::Rect::from_min_max(rect.left_top() + egui::vec2(10.0, 10.0), rect.max);
        let mut legend = ui.new_child(
            egui::UiBuilder::new()
                .max_rect(corner)
                .layout(egui::Layout::top_down(egui::Align::Min)),
        );
        {
            let ui = &mut legend;
            egui::Frame::popup(ui.style()).show(ui, |ui| {
                ui.label(
                    egui::RichText::new(format!("colour: {}", self.settings.colour_by.name()))
                        .strong(),
                );
                for (name, colour) in self.search.legend.iter().take(12) {
                    ui.horizontal(|ui| {
                        let (dot, _) =
                            ui.allocate_exact_size(egui::vec2(12.0, 12.0), egui::Sense::hover());
                        ui.painter().circle_filled(
                            dot.center(),
                            5.0,
                            egui::Color32::from_rgba_unmultiplied(
                                colour[0], colour[1], colour[2], colour[3],
                            ),
                        );
                        ui.label(name);
                    });
                }
            });
        }
    }

    fn map_area_ui(&mut self, ui: &mut egui::Ui) {
        if let Some(message) = &self.message {
            ui.centered_and_justified(|ui| {
                ui.label(egui::RichText::new(message).size(16.0));
            });
            return;
        }
        if self.compare.compared.is_none() {
            self.first_map_ui(ui);
            return;
        }
        // Two maps side by side, one camera: the second is fitted onto the first's frame.
        let full = ui.available_rect_before_wrap();
        let half = (full.width() - 2.0) / 2.0;
        let left = egui::Rect::from_min_size(full.min, egui::vec2(half, full.height()));
        let right = egui::Rect::from_min_size(
            full.min + egui::vec2(half + 2.0, 0.0),
            egui::vec2(half, full.height()),
        );
        ui.painter()
            .rect_filled(full, 0.0, egui::Color32::from_rgb(60, 64, 72));
        ui.scope_builder(egui::UiBuilder::new().max_rect(left), |ui| {
            self.first_map_ui(ui)
        });
        ui.scope_builder(egui::UiBuilder::new().max_rect(right), |ui| {
            self.second_map_ui(ui)
        });
        let over_maps = ui.rect_contains_pointer(full);
        if !over_maps && self.hovered.is_some() {
            self.hovered = None;
            self.overlay_dirty = true;
        }
    }

    fn map_style(&self) -> MapStyle {
        MapStyle {
            point_radius: self.settings.point_radius,
            dimmed: !self.selection.is_empty() || !self.search.top_clips.is_empty(),
            show_edges: self.settings.show_edges,
            thumbnails: true,
            target_format: self.target_format,
        }
    }

    fn first_map_ui(&mut self, ui: &mut egui::Ui) {
        let (response, input) = self.map.map_ui(ui, self.map_style());
        let map_rect = response.rect;
        let Some(scene) = self.scene.clone() else {
            return;
        };
        let Some(level) = self.shown_level else {
            return;
        };
        let pointer_here = response.hovered() || self.compare.compared.is_none();
        self.map_input(&scene, level, &input, pointer_here);
        self.tooltip_ui(&scene, response);
        let labels = match self.shown_force {
            Some(space) => self.force_layouts.get(&space).map(|(_, labels)| labels),
            None => self
                .layout_job
                .as_ref()
                .is_none_or(|(l, _)| *l != level)
                .then(|| self.labels.get(&level))
                .flatten(),
        };
        if let Some(labels) = labels {
            self.map.labels_ui(ui, map_rect, labels);
        }
        if let Some(compared) = &self.compare.compared {
            map_title_ui(ui, map_rect, &format!("left: `{}`", compared.first));
        }
        self.legend_ui(ui, ui.min_rect());
    }

    /// The second run's map: the first's camera, colours and selection on its own positions.
    fn second_map_ui(&mut self, ui: &mut egui::Ui) {
        let Some(compared) = &self.compare.compared else {
            return;
        };
        let scene = Arc::clone(&compared.scene);
        let title = format!("right: `{}`", compared.second);
        let Some(level) = self
            .compare
            .shown_level
            .filter(|level| Some(*level) == self.shown_level)
        else {
            ui.centered_and_justified(|ui| {
                ui.label(format!(
                    "laying out `{}` from the left map…",
                    compared.second
                ));
            });
            return;
        };
        self.compare.map.view = self.map.view;
        self.compare.map.fit_pending = false;
        let (response, input) = self.compare.map.map_ui(ui, self.map_style());
        if self.compare.map.view != self.map.view {
            self.map.view = self.compare.map.view;
            ui.ctx().request_repaint();
        }
        let map_rect = response.rect;
        let pointer_here = response.hovered();
        self.map_input(&scene, level, &input, pointer_here);
        self.tooltip_ui(&scene, response);
        map_title_ui(ui, map_rect, &title);
    }

    /// Hover, click, shift-click and lasso on either map: one selection, one anchor. The map
    /// the pointer is not over says nothing about hover.
    fn map_input(
        &mut self,
        scene: &Scene,
        level: Level,
        input: &super::map_panel::MapInput,
        pointer_here: bool,
    ) {
        if !pointer_here && input.clicked.is_none() && input.lassoed.is_none() {
            return;
        }
        let hovered = input.hovered.map(|p| scene.clip_of_point(level, p));
        if hovered != self.hovered {
            self.hovered = hovered;
            self.overlay_dirty = true;
        }
        if let Some((point, shift)) = input.clicked {
            let clip = point.map(|p| scene.clip_of_point(level, p));
            if !shift {
                self.selection.clear();
            }
            if let Some(clip) = clip {
                self.selection.insert(clip);
            }
            self.anchor = clip.or(self.anchor.filter(|_| shift));
            self.overlay_dirty = true;
        }
        if let Some(points) = &input.lassoed {
            self.selection
                .extend(points.iter().map(|&p| scene.clip_of_point(level, p)));
            self.overlay_dirty = true;
        }
    }

    fn tooltip_ui(&mut self, scene: &Scene, response: egui::Response) {
        let Some(clip) = self.hovered.filter(|_| response.hovered()) else {
            return;
        };
        let info = &scene.clips[clip];
        let path = thumbnail_of(info, &self.arrived_thumbnails, clip);
        let texture = self.textures.get(clip, path).cloned();
        response.on_hover_ui_at_pointer(|ui| {
            if let Some(texture) = texture {
                ui.image((texture.id(), egui::vec2(96.0, 96.0)));
            }
            ui.label(egui::RichText::new(&info.caption).strong());
            ui.label(format!(
                "{} · video {} · {}",
                info.key, info.video, info.split
            ));
            if let Some(scores) = self.search.scores.as_ref() {
                ui.label(format!("search score {:.3}", scores[clip]));
            }
        });
    }
}

/// A map's name in its bottom left corner.
fn map_title_ui(ui: &egui::Ui, rect: egui::Rect, title: &str) {
    let painter = ui.painter_at(rect);
    let galley = painter.layout_no_wrap(
        title.to_string(),
        egui::FontId::proportional(15.0),
        egui::Color32::WHITE,
    );
    let at = rect.left_bottom() + egui::vec2(12.0, -galley.size().y - 10.0);
    painter.rect_filled(
        egui::Rect::from_min_size(at, galley.size()).expand(4.0),
        4.0,
        egui::Color32::from_black_alpha(170),
    );
    painter.galley(at, galley, egui::Color32::WHITE);
}

/// Decodes `items`' thumbnails (clip, file) on a job that sends them in batches; `None` when
/// there is nothing to decode.
fn tiles_job(
    name: &str,
    repaint: impl Fn() + Send + Sync + 'static,
    items: Vec<(usize, PathBuf)>,
) -> Option<Job<Vec<ClipPixels>>> {
    if items.is_empty() {
        return None;
    }
    let total = items.len();
    Some(Job::start(name, repaint, move |report, cancel| {
        let failed = atlas_batches(&items, cancel, |batch, done| {
            report.progress(done, Some(total), "thumbnails");
            report.partial(batch);
        });
        if failed > 0 {
            Err(format!("{failed} of {total} thumbnails could not be read"))
        } else {
            Ok(Vec::new())
        }
    }))
}

/// Lays out `level` of `scene` with t-SNE on a job, sending snapshots as it goes; `warm`: the
/// positions to start from (flattened), else PCA with early exaggeration.
pub(super) fn layout_job(
    repaint: impl Fn() + Send + Sync + 'static,
    scene: Arc<Scene>,
    level: Level,
    warm: Option<Vec<f32>>,
    iterations: usize,
) -> Job<(Positions, Vec<ClusterLabel>)> {
    Job::start("t-SNE", repaint, move |report, cancel| {
        let input = scene.layout_input(level);
        let n = input.rows;
        let matrix = Matrix::new(&input.data, n, input.cols).map_err(|e| e.to_string())?;
        let perplexity = TsneConfig::default()
            .perplexity
            .min(((n.max(4) - 1) / 3) as f64);
        // A warm start is already spread out: early exaggeration would only undo it.
        let (init, early_iterations) = match warm {
            Some(positions) => (Init::Positions(positions), 0),
            None => (Init::default(), iterations.min(250)),
        };
        let config = TsneConfig {
            perplexity: perplexity.max(1.0),
            iterations,
            early_iterations,
            init,
            ..TsneConfig::default()
        };
        let mut tsne = Tsne::new(matrix, config).map_err(|e| e.to_string())?;
        report.partial((as_pairs(tsne.positions()), Vec::new()));
        while !tsne.is_done() {
            if cancel.is_cancelled() {
                return Err("cancelled".into());
            }
            let snapshot = tsne.step(25);
            report.progress(
                snapshot.iteration,
                Some(iterations),
                match snapshot.kl_divergence {
                    Some(kl) => format!("{} · KL {kl:.3}", level.name()),
                    None => level.name().to_string(),
                },
            );
            report.partial((as_pairs(snapshot.positions), Vec::new()));
        }
        let positions = as_pairs(tsne.positions());
        let labels = labels_of(&scene, level, &positions);
        Ok((positions, labels))
    })
}

/// The graph's own layout of `scene`'s clips in `space` (ForceAtlas2) from `start`, their t-SNE
/// map, sending snapshots as it unfolds.
pub(super) fn force_layout_job(
    repaint: impl Fn() + Send + Sync + 'static,
    scene: Arc<Scene>,
    space: Space,
    start: Vec<f32>,
) -> Job<LayoutFrame> {
    Job::start("graph layout", repaint, move |report, cancel| {
        let graph = scene.graph(space);
        let config = ForceConfig::default();
        let iterations = config.iterations;
        let mut layout = ForceLayout::new(
            scene.clips.len(),
            &graph.from,
            &graph.to,
            &graph.similarity,
            Some(&start),
            config,
        )
        .map_err(|e| e.to_string())?;
        while !layout.is_done() {
            if cancel.is_cancelled() {
                return Err("cancelled".into());
            }
            let positions = layout.step(10);
            report.progress(
                layout.iteration(),
                Some(iterations),
                format!("ForceAtlas2 · {space} space"),
            );
            report.partial((as_pairs(positions), Vec::new()));
        }
        let positions = as_pairs(layout.positions());
        let labels = labels_of(&scene, Level::Clip, &positions);
        Ok((positions, labels))
    })
}

fn as_pairs(flat: Vec<f32>) -> Positions {
    flat.chunks_exact(2).map(|p| [p[0], p[1]]).collect()
}

/// Cluster names of a finished layout: about √(N/4) clusters, named by their captions.
fn labels_of(scene: &Scene, level: Level, positions: &[[f32; 2]]) -> Vec<ClusterLabel> {
    let captions: Vec<String> = (0..positions.len())
        .map(|p| scene.clips[scene.clip_of_point(level, p)].caption.clone())
        .collect();
    let k = ((positions.len() as f64 / 4.0).sqrt().round() as usize).clamp(2, 24);
    cluster_labels(positions, &captions, k, 0)
}

/// The scene of `project` under `run` (`None`: its input features): the clips embedded, their
/// graphs and the loss settings that say what the run prunes.
pub(super) fn scene_of(
    project: &Project,
    run: Option<&RunName>,
    progress: &dyn Fn(&str),
    cancel: &CancelToken,
) -> Result<Scene, String> {
    let chain = |e: crate::analysis::AnalysisError| format!("{:#}", anyhow::Error::from(e));
    progress("embedding the clips");
    let points = project_points(project, run, cancel).map_err(chain)?;
    let manifest = project.read_manifest().map_err(|e| format!("{e}"))?;
    let loss = loss_settings(project, run).map_err(chain)?;
    let cache = ThumbnailCache::for_project(project.dir());
    progress("the similarity graph");
    Scene::new(
        project.dir(),
        project.config().project.name.clone(),
        points,
        loss,
        &manifest.entries,
        |entry| ClipFiles {
            thumbnail: Some(cache.for_clip(entry)),
            video: project.video_path(entry),
        },
        cancel,
    )
    .map_err(chain)
}

/// Passes the demo's steps on as progress lines.
fn relay_demo(report: &Reporter<PathBuf>, event: DemoEvent) {
    match event {
        DemoEvent::Rendering(p) => report.progress(p.done, Some(p.total), "demo: rendering videos"),
        DemoEvent::Ingesting(p) => report.progress(
            p.done,
            Some(p.total),
            format!("demo: ingesting ({})", p.stage.name()),
        ),
        DemoEvent::Train(crate::train::TrainEvent::Step {
            epoch, step, steps, ..
        }) => report.progress(step, Some(steps), format!("demo: training epoch {epoch}")),
        DemoEvent::Note(note) => report.progress(0, None, note),
        _ => {}
    }
}

fn log_problem(problem: &str) {
    eprintln!("crossclr explorer: {problem}");
}

impl eframe::App for ExplorerApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let frame_started = std::time::Instant::now();
        let ctx = ui.ctx().clone();
        if let Some(request) = self.train.poll(self.settings.map_follows_epochs) {
            self.pending_show = Some(request);
        }
        if self.load_job.is_none()
            && let Some((dir, run)) = self.pending_show.take()
        {
            self.load(&ctx, dir, Some(run));
        }
        for action in self.projects.poll() {
            match action {
                ProjectAction::Open(dir) => self.load(&ctx, dir, None),
                ProjectAction::Thumbnails(videos) => self.thumbnails_arrived(&ctx, &videos),
            }
        }
        self.poll_jobs(&ctx);
        self.poll_analysis_jobs();
        self.poll_compare(&ctx);
        self.poll_force_layout();
        self.textures.poll(&ctx);
        self.frames.poll(&ctx);
        egui::Panel::top("toolbar").show(ui, |ui| self.toolbar_ui(ui));
        self.arrange(&ctx);
        egui::Panel::bottom("status").show(ui, |ui| status_ui(ui, self));
        if self.settings.show_train {
            egui::Panel::bottom("train")
                .resizable(false)
                .exact_size(super::train_panel::PLOT_HEIGHT + 60.0)
                .show(ui, |ui| train_ui(ui, self));
        }
        if self.compare.open {
            egui::Panel::bottom("compare")
                .resizable(false)
                .exact_size(COMPARE_PANEL_HEIGHT)
                .show(ui, |ui| {
                    egui::ScrollArea::vertical()
                        .id_salt("compare-panel")
                        .show(ui, |ui| compare_ui(ui, self, &ctx))
                });
        }
        egui::Panel::left("search")
            .default_size(300.0)
            .show(ui, |ui| {
                if search_ui(ui, self) {
                    self.run_search(&ctx);
                }
            });
        if self.settings.show_inspector {
            egui::Panel::right("inspector")
                .default_size(330.0)
                .show(ui, |ui| {
                    egui::ScrollArea::vertical().show(ui, |ui| {
                        inspector_ui(ui, self);
                        ui.separator();
                        if pruning_ui(ui, self) {
                            self.pruning_display_changed();
                        }
                        ui.separator();
                        egui::CollapsingHeader::new("Nearest neighbours")
                            .default_open(true)
                            .show(ui, |ui| neighbours_ui(ui, self));
                        egui::CollapsingHeader::new("Audit: are pruned negatives duplicates?")
                            .default_open(true)
                            .show(ui, |ui| audit_panel_ui(ui, self));
                    });
                });
        }
        egui::CentralPanel::no_frame().show(ui, |ui| self.map_area_ui(ui));
        let mut open = self.projects.open;
        egui::Window::new("Projects")
            .open(&mut open)
            .default_width(560.0)
            .show(&ctx, |ui| projects_ui(ui, self));
        self.projects.open = open && self.projects.open;

        self.refresh_pruning(&ctx);
        if let Some(scene) = self.scene.clone() {
            self.frames.show(self.anchor, &scene, Self::repainter(&ctx));
        }
        if self.colours_dirty {
            self.upload_colours();
        }
        if self.edges_dirty {
            self.upload_edges();
        }
        if self.overlay_dirty {
            self.upload_overlay();
        }
        if self.demo_job.is_some()
            || self.load_job.is_some()
            || self.layout_job.is_some()
            || self.force_job.is_some()
            || self.thumbnail_job.is_some()
            || self.projects.busy()
            || self.compare.busy()
        {
            // Jobs wake the UI when they report; this only keeps the progress bars moving.
            ctx.request_repaint_after(std::time::Duration::from_millis(250));
        }
        self.train.note_frame(frame_started.elapsed().as_secs_f32());
        self.projects
            .note_frame(frame_started.elapsed().as_secs_f32());
    }

    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.screenshot_when_settled(ctx);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, SETTINGS_KEY, &self.settings);
    }
}

/// The jobs the status bar lists: name, progress fraction, text, and their cancel tokens.
impl ExplorerApp {
    /// Whether any background job is running.
    pub fn busy(&self) -> bool {
        !self.job_lines().is_empty()
    }

    /// The level the map shows, once its layout is drawn.
    pub fn shown_level(&self) -> Option<Level> {
        self.shown_level
    }

    pub fn job_lines(&self) -> Vec<(String, Option<f32>, String, crate::jobs::CancelToken)> {
        let mut lines = Vec::new();
        macro_rules! line {
            ($job:expr) => {
                if let Some(job) = $job {
                    lines.push((
                        job.name.clone(),
                        job.fraction(),
                        job.text.clone(),
                        job.cancel.clone(),
                    ));
                }
            };
        }
        line!(&self.demo_job);
        line!(&self.load_job);
        line!(self.layout_job.as_ref().map(|(_, j)| j));
        line!(self.force_job.as_ref().map(|(_, j)| j));
        line!(&self.thumbnail_job);
        line!(&self.search_job);
        line!(&self.pruning_job);
        line!(&self.audit_job);
        line!(&self.frames.job);
        line!(&self.train.job);
        line!(&self.compare.job);
        line!(self.compare.layout_job.as_ref().map(|(_, j)| j));
        line!(&self.compare.thumbnail_job);
        lines
    }

    /// Shows or hides the similarity graph (edges, node sizes, influential rings).
    pub fn show_graph(&mut self, show: bool) {
        if show != self.settings.show_edges {
            self.settings.show_edges = show;
            self.edges_dirty = true;
            self.overlay_dirty = true;
            if let Some(level) = self.shown_level {
                let positions = self.map.positions.clone();
                self.show_positions(level, positions, false);
            }
        }
    }

    /// Shows or hides the anchor's pruning sets over the map.
    pub fn show_pruning(&mut self, show: bool) {
        if show != self.settings.show_pruning {
            self.settings.show_pruning = show;
            self.pruning_display_changed();
        }
    }

    fn pruning_display_changed(&mut self) {
        self.colours_dirty = true;
        self.overlay_dirty = true;
        self.edges_dirty = true;
    }

    pub fn set_colour_by(&mut self, by: ColourBy) {
        self.settings.colour_by = by;
        self.colours_dirty = true;
    }

    /// With `Launch::screenshot`: once the map and its thumbnails have been drawn for a few
    /// frames, asks for a screenshot, saves it and closes the window.
    fn screenshot_when_settled(&mut self, ctx: &egui::Context) {
        let Some(path) = self.launch.screenshot.clone() else {
            return;
        };
        let settled = self.scene.is_some() && !self.busy() && self.shown_level.is_some();
        let failed = self.message.is_some() && !self.busy();
        self.settled_frames = if settled || failed {
            self.settled_frames + 1
        } else {
            0
        };
        if self.settled_frames > 10 && !self.screenshot_requested {
            self.screenshot_requested = true;
            let closer = ctx.clone();
            ctx.request_screenshot(move |image| {
                let [w, h] = image.size;
                let bytes: Vec<u8> = image.pixels.iter().flat_map(|c| c.to_array()).collect();
                match image::RgbaImage::from_raw(w as u32, h as u32, bytes).map(|i| i.save(&path)) {
                    Some(Ok(())) => {
                        eprintln!("crossclr explorer: screenshot saved to {}", path.display())
                    }
                    Some(Err(e)) => log_problem(&format!(
                        "cannot save the screenshot {}: {e}",
                        path.display()
                    )),
                    None => log_problem("the screenshot had the wrong size"),
                }
                closer.send_viewport_cmd(egui::ViewportCommand::Close);
                closer.request_repaint();
            });
        }
        ctx.request_repaint();
    }

    /// Selects one clip as the inspector's subject (from a search result or a neighbour).
    pub fn select(&mut self, clip: usize) {
        self.selection.clear();
        self.selection.insert(clip);
        self.anchor = Some(clip);
        self.overlay_dirty = true;
    }
}
