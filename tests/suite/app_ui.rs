//! The explorer driven through AccessKit with egui_kittest, rendered by wgpu (Mesa's lavapipe on
//! a machine without a GPU): a small demo project laid out with thumbnails, a typed search, a
//! click on a result, the colour and γ controls — asserted on the app's state and on the pixels
//! of the rendered frame.

use std::path::{Path, PathBuf};

use crossclr::app::settings::{ColourBy, Level, Space};
use crossclr::app::{ExplorerApp, Launch, Startup};
use crossclr::demo::{DemoSettings, make_demo};
use crossclr::jobs::{CancelToken, progress_channel};
use crossclr::media::demo::{CAPTIONS_FILE, DemoConfig, plan, write_collection};
use crossclr::project::RunName;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

/// A demo project of `videos` videos (3–5 clips each), trained for `epochs` (0: not trained).
fn demo_project(dir: &Path, videos: usize, epochs: usize) -> PathBuf {
    // The demo's progress is not read here; the channel holds all of it.
    let (events, _receiver) = progress_channel(100_000);
    make_demo(
        dir,
        DemoSettings {
            seed: 3,
            videos,
            epochs,
        },
        &events,
        &CancelToken::new(),
    )
    .unwrap()
}

fn explorer(dir: PathBuf, run: Option<&str>) -> Harness<'static, ExplorerApp> {
    let launch = Launch {
        startup: Startup::Project {
            dir,
            run: run.map(|r| RunName::new(r).unwrap()),
        },
        // A short layout: the test looks at what the app does with it, not at t-SNE.
        tsne_iterations: 300,
        screenshot: None,
    };
    Harness::builder()
        .with_size(egui::vec2(1200.0, 800.0))
        .wgpu()
        .build_eframe(move |cc| ExplorerApp::new(cc, launch))
}

/// Steps the app until `ready` holds (jobs run on their own threads meanwhile).
fn step_until(
    harness: &mut Harness<'_, ExplorerApp>,
    what: &str,
    ready: impl Fn(&ExplorerApp) -> bool,
) {
    for _ in 0..20_000 {
        harness.step();
        if ready(harness.state()) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let app = harness.state();
    panic!(
        "the explorer never got to: {what} (problems: {:?}; search: {:?}; pruning: {:?} {:?}, {:?}; jobs: {:?})",
        app.problems,
        app.search.status,
        app.settings.pruning_scope,
        app.pruning.as_ref().map(|v| &v.scope),
        app.pruning_status,
        app.job_lines()
            .iter()
            .map(|l| (&l.0, &l.2))
            .collect::<Vec<_>>()
    );
}

/// Snapshots showing the pruning panel's "computed in … µs", a measured time that differs from
/// run to run by a few dozen pixels of text.
fn with_a_timing() -> egui_kittest::SnapshotOptions {
    egui_kittest::SnapshotOptions::new().max_failed_pixels(120)
}

fn settled(app: &ExplorerApp) -> bool {
    app.scene.is_some() && !app.busy() && app.shown_level() == Some(app.settings.level)
}

/// Pixels of the map's region (between the side panels) that are not its background.
fn map_pixels(image: &image::RgbaImage) -> Vec<[u8; 4]> {
    let (w, h) = image.dimensions();
    let mut pixels = Vec::new();
    for y in h / 5..h * 4 / 5 {
        for x in w * 2 / 5..w * 3 / 5 {
            let p = image.get_pixel(x, y).0;
            if p != [18, 20, 26, 255] {
                pixels.push(p);
            }
        }
    }
    pixels
}

#[test]
fn the_explorer_lays_out_a_project_before_training_and_draws_its_thumbnails() {
    let dir = tempfile::tempdir().unwrap();
    let project = demo_project(dir.path(), 12, 0);
    let mut harness = explorer(project, None);
    step_until(&mut harness, "a laid-out map", settled);
    let app = harness.state();
    let scene = app.scene.as_ref().unwrap();
    assert!(
        !scene.trained(),
        "a project without runs shows its input features"
    );
    assert!(scene.clips.len() >= 36, "{} clips", scene.clips.len());
    assert!(
        scene.clips.iter().all(|c| c.thumbnail.is_some()),
        "ingest caches every clip's thumbnail"
    );
    assert!(app.problems.is_empty(), "{:?}", app.problems);
    // The layout animated: t-SNE's snapshots were drawn as it ran (every 25 of 300 iterations,
    // as many as the frames took), not only its end.
    assert!(
        app.layout_steps_shown >= 3,
        "{} intermediate layouts drawn",
        app.layout_steps_shown
    );
    // Without a run the text side is another space: no pairs, and search says why.
    assert!(!scene.level_available(Level::Pairs));
    let clips = scene.clips.len();

    // Zoomed out: discs in the split colours over the dark background, the kNN graph's edges
    // between them.
    harness.run_steps(3);
    assert!(
        harness.state().drawn_edges >= clips,
        "{} edges",
        harness.state().drawn_edges
    );
    harness.snapshot("explorer_input_features_discs");
    let with_graph = map_pixels(&harness.render().unwrap()).len();
    // Without the graph, to compare discs with thumbnails alone.
    harness.state_mut().show_graph(false);
    harness.run_steps(3);
    assert_eq!(harness.state().drawn_edges, 0);
    let discs = harness.render().unwrap();
    let drawn = map_pixels(&discs);
    assert!(drawn.len() > 500, "the map drew {} pixels", drawn.len());
    assert!(
        with_graph > drawn.len() + 500,
        "edges add pixels: {with_graph} with, {} without",
        drawn.len()
    );

    // Zoomed in around the point with the most others near it, thumbnails replace the discs.
    let positions = harness.state().map.positions.clone();
    // The pixels counted lie within 120 points of the middle once zoomed in 6×.
    let radius = 120.0 / (6.0 * harness.state().map.view.scale);
    let crowd = |p: &[f32; 2]| {
        positions
            .iter()
            .filter(|q| (q[0] - p[0]).hypot(q[1] - p[1]) < radius)
            .count()
    };
    let centre = *positions.iter().max_by_key(|p| crowd(p)).unwrap();
    harness.state_mut().map.view.scale *= 6.0;
    harness.state_mut().map.view.center = centre;
    harness.run_steps(3);
    let thumbnails = harness.render().unwrap();
    harness.snapshot("explorer_input_features_thumbnails");
    assert!(harness.state().map.thumbnails_visible());
    let zoomed_in = map_pixels(&thumbnails);
    // Thumbnails are squares far larger than the discs they replace: a few of them, in a view
    // of a sixth of the map's width, cover more pixels than every disc did ...
    assert!(
        zoomed_in.len() > drawn.len(),
        "{} pixels zoomed in, {} zoomed out",
        zoomed_in.len(),
        drawn.len()
    );
    // ... and pictures of shapes over noisy backgrounds, with far more colours than discs in a
    // handful of split colours and their antialiased edges.
    let before: std::collections::HashSet<[u8; 4]> = drawn.into_iter().collect();
    let after: std::collections::HashSet<[u8; 4]> = zoomed_in.into_iter().collect();
    assert!(
        after.len() > 2 * before.len().max(1),
        "{} colours zoomed in, {} zoomed out",
        after.len(),
        before.len()
    );

    // The graph's own layout: the clips placed by the kNN graph's edges alone, unfolding from
    // the t-SNE map, and back.
    harness.state_mut().show_graph(true);
    harness.run_steps(3);
    let tsne = harness.state().map.positions.clone();
    harness.get_by_label("own layout").click();
    step_until(&mut harness, "the graph's own layout", |app| {
        app.shown_force == Some(Space::Input) && !app.busy()
    });
    harness.run_steps(3);
    let app = harness.state();
    let force = app.map.positions.clone();
    assert_eq!(force.len(), tsne.len());
    assert_ne!(force, tsne);
    // Edges are what the layout shortens: relative to the typical distance between clips, a
    // graph edge is shorter in its own layout than over the t-SNE map.
    let graph = app.scene.as_ref().unwrap().graph(Space::Input).clone();
    let edge_ratio = |p: &[[f32; 2]]| {
        let d = |a: usize, b: usize| (p[a][0] - p[b][0]).hypot(p[a][1] - p[b][1]);
        let edges: f32 = graph
            .from
            .iter()
            .zip(&graph.to)
            .map(|(&a, &b)| d(a as usize, b as usize))
            .sum::<f32>()
            / graph.from.len() as f32;
        let n = p.len();
        let all: f32 = (0..n)
            .flat_map(|a| (a + 1..n).map(move |b| (a, b)))
            .map(|(a, b)| d(a, b))
            .sum::<f32>()
            / (n * (n - 1) / 2) as f32;
        edges / all
    };
    let (on_map, own) = (edge_ratio(&tsne), edge_ratio(&force));
    eprintln!(
        "mean edge / mean distance: {on_map:.3} on the t-SNE map, {own:.3} in its own layout"
    );
    assert!(
        own < on_map,
        "edge / distance {own} own layout, {on_map} on the map"
    );
    harness.snapshot("explorer_graph_own_layout");
    let own_pixels = map_pixels(&harness.render().unwrap());
    assert!(own_pixels.len() > 500, "{} pixels", own_pixels.len());
    harness.get_by_label("on the map").click();
    harness.run_steps(3);
    assert_eq!(harness.state().shown_force, None);
    assert_eq!(harness.state().map.positions, tsne);
}

#[test]
fn a_typed_search_lights_up_the_map_and_a_click_on_a_result_selects_it() {
    let dir = tempfile::tempdir().unwrap();
    let project = demo_project(dir.path(), 12, 2);
    let mut harness = explorer(project, Some("demo"));
    step_until(&mut harness, "a laid-out map", settled);
    assert!(harness.state().scene.as_ref().unwrap().trained());

    // Typed into the focused box, as a user would.
    harness.get_by_label("query").focus();
    harness.step();
    harness.get_by_label("query").type_text("a red circle");
    harness.step();
    assert_eq!(harness.state().search.query, "a red circle");
    harness.get_by_label("search").click();
    step_until(&mut harness, "search results", |app| {
        !app.search.top_clips.is_empty()
    });
    let top = harness.state().search.top_clips.clone();
    assert_eq!(top.len(), 12);
    let scores = harness.state().search.scores.clone().unwrap();
    assert!(
        top.windows(2).all(|w| scores[w[0]] >= scores[w[1]]),
        "ranked best first"
    );

    // The second result, by its row in the list.
    let second = top[1];
    harness
        .get_by(|node| node.label().is_some_and(|l| l.starts_with("2. ")))
        .click();
    harness.run_steps(2);
    assert_eq!(harness.state().anchor, Some(second));
    assert!(harness.state().selection.contains(&second));
    let caption = harness.state().scene.as_ref().unwrap().clips[second]
        .caption
        .clone();
    // Its frames, decoded from its video on demand, over the clip's time span.
    step_until(&mut harness, "the clip's frames", |app| {
        app.frames.clip == Some(second) && !app.frames.frames.is_empty()
    });
    let (start, end) = {
        let clip = &harness.state().scene.as_ref().unwrap().clips[second];
        (clip.start.unwrap(), clip.end.unwrap())
    };
    let times: Vec<f64> = harness
        .state()
        .frames
        .frames
        .iter()
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(times.len(), crossclr::app::frames::STRIP_FRAMES);
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
    assert!(
        times.iter().all(|&t| t >= start - 0.05 && t < end),
        "{times:?} outside {start}–{end}"
    );
    // The inspector shows the selected clip's caption (and the list shows it too).
    assert!(
        harness.query_by_label(&caption).is_some(),
        "the inspector does not show {caption:?}"
    );

    // Colour by search score; the pruning overlay off, so that every clip shows its score.
    harness.state_mut().set_colour_by(ColourBy::SearchScore);
    harness.state_mut().show_pruning(false);
    step_until(&mut harness, "the results' pictures", |app| {
        !app.textures.decoding()
            && app
                .search
                .top_clips
                .iter()
                .all(|&clip| app.textures.settled(clip))
    });
    harness.run_steps(2);
    assert!(
        harness
            .state()
            .search
            .legend
            .iter()
            .any(|(name, _)| name.starts_with("cosine")),
        "{:?}",
        harness.state().search.legend
    );
    harness.snapshot_options("explorer_search_scores", &with_a_timing());
    harness.state_mut().show_pruning(true);
    harness.state_mut().set_colour_by(ColourBy::Influence);
    harness.run_steps(2);
    // The selected clip is the pruning view's anchor: its sets over the whole split.
    let view = harness
        .state()
        .pruning
        .clone()
        .expect("an anchor has a pruning view");
    assert_eq!(view.anchor, second);
    assert_eq!(
        view.positive,
        vec![second],
        "a clip's positive is its own caption"
    );
    let split_size = view.batch;
    assert_eq!(
        view.cross_kept.len() + view.cross_pruned.len(),
        split_size - 1,
        "every other caption of the split is a cross-modal negative, kept or pruned"
    );
    assert_eq!(
        view.intra_kept.len() + view.intra_pruned.len(),
        split_size - 1
    );
    let gamma_before = harness.state().settings.gamma;
    let pruned_before = view.cross_pruned.len() + view.intra_pruned.len();
    let gamma = harness.get_by_role_and_label(egui::accesskit::Role::Slider, "γ");
    gamma.focus();
    harness.step();
    for _ in 0..20 {
        harness.key_press(egui::Key::ArrowLeft);
    }
    harness.run_steps(2);
    let app = harness.state();
    assert!(
        app.settings.gamma < gamma_before,
        "γ {} after {gamma_before}",
        app.settings.gamma
    );
    let view = app.pruning.clone().unwrap();
    assert_eq!(
        view.gamma, app.settings.gamma,
        "the view follows the slider"
    );
    // A lower threshold prunes at least as many (the sets are nested in γ).
    assert!(view.cross_pruned.len() + view.intra_pruned.len() >= pruned_before);
    harness.snapshot_options("explorer_pruning", &with_a_timing());

    // The batch training formed for a training clip at epoch 1, replayed on a job.
    let trained_clip = harness
        .state()
        .scene
        .as_ref()
        .unwrap()
        .clips
        .iter()
        .position(|c| c.split == "train")
        .unwrap();
    harness.state_mut().select(trained_clip);
    // Its frame strip arrives on a job and moves the panel below it: a click is a pointer event
    // at the button's place, so the layout must have settled first.
    step_until(&mut harness, "the training clip's frames", |app| {
        app.frames.clip == Some(trained_clip)
            && !app
                .frames
                .status
                .as_deref()
                .is_some_and(|s| s.starts_with("decoding"))
    });
    harness.run_steps(3);
    harness.get_by_label("training batch").click();
    step_until(&mut harness, "a replayed batch", |app| {
        app.pruning
            .as_ref()
            .is_some_and(|v| v.scope.contains("epoch 1"))
            || app
                .pruning_status
                .as_deref()
                .is_some_and(|s| !s.starts_with("replaying"))
    });
    let app = harness.state();
    let view = app
        .pruning
        .clone()
        .unwrap_or_else(|| panic!("no replay: {:?}", app.pruning_status));
    assert_eq!(view.anchor, trained_clip);
    assert_eq!(view.positive, vec![trained_clip]);
    let training_clips = app
        .scene
        .as_ref()
        .unwrap()
        .clips
        .iter()
        .filter(|c| c.split == "train")
        .count();
    assert!(
        view.batch > 1 && view.batch <= training_clips,
        "a training batch of {} samples",
        view.batch
    );
    assert_eq!(
        view.cross_kept.len() + view.cross_pruned.len(),
        view.batch - 1
    );
}

#[test]
fn the_train_panel_trains_pauses_resumes_to_the_same_bytes_and_the_map_follows() {
    let dir = tempfile::tempdir().unwrap();
    let project = demo_project(dir.path(), 12, 0);
    let mut harness = explorer(project.clone(), None);
    // Which epochs a following map shows depends on how fast the layouts keep up with the run,
    // and each warm-starts the next: the snapshot below wants one layout, at the run's end. (The
    // following itself is the Train panel's unit test.)
    harness.state_mut().settings.map_follows_epochs = false;
    step_until(&mut harness, "a laid-out map", settled);
    assert!(!harness.state().scene.as_ref().unwrap().trained());
    let input_layout = harness.state().map.positions.clone();

    // The toolbar's toggle (the split legend has a "train" label too).
    harness
        .get_by(|node| {
            node.label().is_some_and(|l| l == "train")
                && node.role() != egui::accesskit::Role::Label
        })
        .click();
    step_until(&mut harness, "the Train panel's form", |app| {
        app.train.form.is_some()
    });
    // A new window's first frame only measures it.
    harness.run_steps(3);
    let set_form = |harness: &mut Harness<'_, ExplorerApp>, run: &str| {
        let form = harness.state_mut().train.form.as_mut().unwrap();
        // Two videos a batch: several steps an epoch, so a pause lands inside the run.
        form.config.train.epochs = 2;
        form.config.train.batch_size = 2;
        form.run = run.into();
    };

    // An uninterrupted run first: its checkpoint is what the paused one must end with.
    set_form(&mut harness, "whole");
    harness.get_by_label("start training").click();
    step_until(&mut harness, "a finished run shown on the map", |app| {
        app.train.job.is_none() && app.scene.as_ref().is_some_and(|s| s.trained()) && settled(app)
    });
    let app = harness.state();
    let curves = &app.train.curves;
    assert_eq!(curves.epochs.len(), 2, "{:?}", app.train.status);
    for series in [&curves.loss, &curves.local, &curves.global, &curves.pruned] {
        assert!(series.len() >= 2, "a point per step");
        assert!(
            series.windows(2).all(|w| w[0][0] < w[1][0]),
            "steps in order"
        );
        assert!(series.iter().all(|p| p[1].is_finite()));
    }
    assert!(curves.recall.iter().all(|r| r.len() == 2));
    assert_eq!(curves.lr.len(), 2);
    assert!(curves.best().is_some());
    assert!(
        matches!(&app.scene.as_ref().unwrap().points.source, crossclr::analysis::PointSource::Run(r) if r.as_str() == "whole")
    );
    assert_ne!(
        app.map.positions, input_layout,
        "the map was laid out again under the run"
    );
    // The UI thread's own work per frame while the run trained (generous: CI is shared).
    assert!(app.train.frames_while_training > 0);
    assert!(
        app.train.longest_frame_ms < 1000.0,
        "longest frame {} ms",
        app.train.longest_frame_ms
    );
    let steps = curves.loss.len();
    harness.run_steps(2);
    harness.snapshot_options("explorer_train_panel", &with_a_timing());

    // The same run again, paused after its first step and resumed.
    set_form(&mut harness, "paused");
    harness.get_by_label("start training").click();
    step_until(&mut harness, "a first step", |app| {
        !app.train.curves.loss.is_empty()
    });
    harness.get_by_label("pause").click();
    step_until(&mut harness, "a paused run", |app| {
        app.train.job.is_none() && app.train.paused.is_some()
    });
    let paused_at = harness.state().train.curves.loss.len();
    assert!(
        paused_at < steps,
        "paused before the end ({paused_at} of {steps} steps)"
    );
    harness.get_by_label("resume `paused`").click();
    step_until(&mut harness, "the resumed run's end", |app| {
        app.train.job.is_none() && app.train.paused.is_none() && settled(app)
    });
    assert_eq!(
        harness.state().train.curves.loss.len(),
        steps,
        "the resumed curves hold each step once"
    );
    let checkpoint = |run: &str| {
        std::fs::read(
            project
                .join("runs")
                .join(run)
                .join("checkpoint.safetensors"),
        )
        .unwrap()
    };
    assert!(
        checkpoint("paused") == checkpoint("whole"),
        "a paused and resumed run ends with the uninterrupted run's bytes"
    );
}

#[test]
fn the_projects_window_makes_a_project_from_videos_lists_its_problems_and_ingests_it_onto_the_map()
{
    // A fixed folder (not a random temporary name): the snapshot shows its paths.
    let root = std::env::temp_dir().join("crossclr-app-projects-window");
    let _ = std::fs::remove_dir_all(&root);
    let videos = root.join("videos");
    let config = DemoConfig {
        seed: 5,
        videos: 8,
        ..DemoConfig::default()
    };
    write_collection(
        &videos,
        &plan(&config),
        &config,
        0,
        &CancelToken::new(),
        None,
    )
    .unwrap();
    let captions = videos.join(CAPTIONS_FILE);
    let mut lines = std::fs::read_to_string(&captions).unwrap();
    let good_lines = lines.lines().count();
    lines.push_str("this line is not JSON\n");
    lines.push_str("{\"video\": \"no-such-video\", \"caption\": \"a red ring\"}\n");
    std::fs::write(&captions, lines).unwrap();
    let project = root.join("project");

    // The explorer starts on a folder that is not a project yet.
    let mut harness = explorer(project.clone(), None);
    step_until(&mut harness, "the failed open", |app| !app.busy());
    harness
        .get_by(|node| {
            node.label().is_some_and(|l| l == "projects")
                && node.role() != egui::accesskit::Role::Label
        })
        .click();
    harness.run_steps(3);
    harness.get_by_label("new project").click();
    harness.run_steps(3);
    {
        // The paths a file dialog would fill (a native dialog cannot be driven here).
        let form = &mut harness.state_mut().projects.form;
        form.dir = project.display().to_string();
        form.videos = videos.display().to_string();
        form.captions = captions.display().to_string();
    }
    harness.get_by_label("create project").click();
    step_until(&mut harness, "a made project", |app| {
        app.projects.created.is_some()
    });
    let created = harness.state().projects.created.clone().unwrap();
    assert_eq!(
        created.splits.iter().map(|s| s.1).sum::<usize>(),
        good_lines,
        "every good caption is a clip"
    );
    let problems: Vec<&str> = created.problems.iter().map(|p| p.text.as_str()).collect();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].starts_with(&format!("{CAPTIONS_FILE}:{}:", good_lines + 1)),
        "{problems:?}"
    );
    assert!(
        problems[1].starts_with("no-such-video: 1 caption"),
        "{problems:?}"
    );
    harness.run_steps(2);
    for problem in &problems {
        assert!(
            harness.query_by_label(problem).is_some(),
            "the window lists {problem:?}"
        );
    }

    // Stopped before it could do anything, then resumed.
    harness.get_by_label("ingest").click();
    harness.step();
    harness
        .state()
        .projects
        .ingest_job
        .as_ref()
        .expect("the ingest started")
        .cancel
        .cancel();
    step_until(&mut harness, "a stopped ingest", |app| {
        app.projects.ingest_job.is_none()
    });
    assert!(
        harness
            .state()
            .projects
            .ingest_report
            .as_ref()
            .is_some_and(|r| r.cancelled),
        "{:?}",
        harness.state().projects.status
    );
    harness.run_steps(2);
    harness.get_by_label("resume ingest").click();
    step_until(
        &mut harness,
        "the ingested project on the map, every thumbnail in",
        |app| {
            app.projects.ingest_job.is_none()
                && settled(app)
                && app.scene.as_ref().is_some_and(|scene| {
                    scene.clips.len() == good_lines
                        && (0..scene.clips.len()).all(|clip| {
                            crossclr::app::thumbnail_of(
                                &scene.clips[clip],
                                &app.arrived_thumbnails,
                                clip,
                            )
                            .is_some()
                        })
                })
        },
    );
    let app = harness.state();
    let report = app.projects.ingest_report.as_ref().unwrap();
    assert!(!report.cancelled && report.failed.is_empty(), "{report:?}");
    for (stage, expected) in [(0, 8), (1, 8), (2, 1), (3, 8)] {
        let progress = &app.projects.stages[stage];
        assert_eq!(
            (progress.done, progress.total),
            (expected, expected),
            "stage {stage}: {:?}",
            app.projects.stages
        );
    }
    assert!(app.projects.frames_while_ingesting > 0);
    assert!(
        app.projects.longest_frame_ms < 1000.0,
        "longest frame during the ingest {} ms",
        app.projects.longest_frame_ms
    );
    eprintln!(
        "longest UI frame while ingesting: {:.1} ms over {} frames",
        app.projects.longest_frame_ms, app.projects.frames_while_ingesting
    );
    harness.run_steps(2);
    harness.snapshot_options("explorer_projects_window", &with_a_timing());
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn the_compare_view_puts_a_second_run_beside_the_first_aligned_with_linked_selection_and_both_tables()
 {
    use crossclr::analysis::compare::{align_layout, compare_runs};
    use crossclr::crossclr::LossKind;
    use crossclr::project::Project;
    use crossclr::train::{PreparedRun, RunRequest};

    let dir = tempfile::tempdir().unwrap();
    let project_dir = demo_project(dir.path(), 12, 6);
    let project = Project::open(&project_dir).unwrap();
    // The second run: InfoNCE, which prunes nothing, on the same clips.
    let mut config = project.config().clone();
    config.loss.kind = LossKind::Infonce;
    config.train.epochs = 6;
    let prepared = PreparedRun::prepare(
        &project,
        &config,
        RunRequest {
            name: RunName::new("infonce").unwrap(),
            resume: false,
        },
    )
    .unwrap();
    let (events, _receiver) = progress_channel(100_000);
    prepared.train(&events, &CancelToken::new()).unwrap();
    drop(prepared);
    let demo = RunName::new("demo").unwrap();
    let infonce = RunName::new("infonce").unwrap();
    let expected = compare_runs(&project, &demo, &infonce, None, &CancelToken::new()).unwrap();

    let mut harness = explorer(project_dir.clone(), Some("demo"));
    step_until(&mut harness, "a laid-out map", settled);
    harness
        .get_by(|node| {
            node.label().is_some_and(|l| l == "compare")
                && node.role() != egui::accesskit::Role::Label
        })
        .click();
    harness.run_steps(3);
    assert_eq!(
        harness.state().compare.second.as_ref(),
        Some(&infonce),
        "the other run is picked"
    );
    harness.get_by_label("show side by side").click();
    step_until(&mut harness, "two maps side by side", |app| {
        app.compare.showing() && !app.busy() && settled(app)
    });
    let app = harness.state();
    let compared = app.compare.compared.as_ref().unwrap();
    assert_eq!(
        compared.table, expected,
        "the window's table is `crossclr compare`'s"
    );
    assert_eq!(compared.table.second.run, "infonce");

    // The second map is in the first's frame: fitted already, and its points near their places
    // on the first (the layout started from them).
    let first = app.map.positions.clone();
    let second = app.compare.map.positions.clone();
    assert_eq!(first.len(), second.len());
    let extent = {
        let (lo, hi) = first
            .iter()
            .fold(([f32::MAX; 2], [f32::MIN; 2]), |(lo, hi), p| {
                (
                    [lo[0].min(p[0]), lo[1].min(p[1])],
                    [hi[0].max(p[0]), hi[1].max(p[1])],
                )
            });
        (hi[0] - lo[0]).max(hi[1] - lo[1])
    };
    let refit = align_layout(&first, &second);
    let moved_by_refit = refit
        .iter()
        .zip(&second)
        .map(|(a, b)| ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt())
        .fold(0.0f32, f32::max);
    assert!(
        moved_by_refit < 1e-3 * extent,
        "already fitted: {moved_by_refit} of {extent}"
    );
    let mean_shift = first
        .iter()
        .zip(&second)
        .map(|(a, b)| ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt())
        .sum::<f32>()
        / first.len() as f32;
    // What the warm start buys: the same run laid out from scratch (as the app would without
    // it) and fitted the same way lands its points further from their places on the first map.
    let cold = {
        use crossclr::analysis::Matrix;
        use crossclr::analysis::tsne::{Tsne, TsneConfig};
        let input = compared.scene.layout_input(Level::Clip);
        let matrix = Matrix::new(&input.data, input.rows, input.cols).unwrap();
        let config = TsneConfig {
            perplexity: TsneConfig::default()
                .perplexity
                .min(((input.rows - 1) / 3) as f64),
            iterations: 300,
            early_iterations: 250,
            ..TsneConfig::default()
        };
        let mut tsne = Tsne::new(matrix, config).unwrap();
        while !tsne.is_done() {
            tsne.step(25);
        }
        let flat = tsne.positions();
        let pairs: Vec<[f32; 2]> = flat.chunks_exact(2).map(|p| [p[0], p[1]]).collect();
        align_layout(&first, &pairs)
    };
    let shift = |layout: &[[f32; 2]]| {
        first
            .iter()
            .zip(layout)
            .map(|(a, b)| ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt())
            .sum::<f32>()
            / first.len() as f32
    };
    let cold_shift = shift(&cold);
    eprintln!(
        "compare: mean shift between the maps {:.3} of the extent {extent:.1} (from scratch and fitted: {:.3}); table in {:.2} s",
        mean_shift / extent,
        cold_shift / extent,
        compared.seconds
    );
    assert!(
        mean_shift < cold_shift,
        "the warm start keeps the first map's places: mean shift {mean_shift}, from scratch {cold_shift}"
    );
    assert_eq!(app.compare.map.view, app.map.view, "one camera");

    // Hover and click a clip on the right map: both maps mark it, the window compares it.
    let clip = 3;
    let at = app
        .compare
        .map
        .view
        .to_screen(app.compare.map.rect, second[clip]);
    assert!(app.compare.map.rect.contains(at), "{at:?}");
    harness.hover_at(at);
    harness.run_steps(2);
    assert_eq!(harness.state().hovered, Some(clip), "hover is linked");
    harness.drag_at(at);
    harness.run_steps(1);
    harness.drop_at(at);
    step_until(&mut harness, "the anchor's sets under both runs", |app| {
        app.anchor == Some(clip)
            && app.pruning.as_ref().is_some_and(|v| v.anchor == clip)
            && app
                .compare
                .pruning
                .as_ref()
                .is_some_and(|v| v.anchor == clip)
    });
    let app = harness.state();
    assert!(app.selection.contains(&clip));
    let (left, right) = (
        app.pruning.as_ref().unwrap(),
        app.compare.pruning.as_ref().unwrap(),
    );
    assert!(
        right.cross_pruned.is_empty() && right.intra_pruned.is_empty(),
        "InfoNCE prunes nothing"
    );
    assert_eq!(
        left.cross_kept.len() + left.cross_pruned.len(),
        right.cross_kept.len(),
        "the same candidates"
    );
    // The anchor's frames are decoded on a job: the picture waits for them.
    step_until(&mut harness, "the anchor's frames", |app| !app.busy());
    harness.run_steps(4);
    harness.snapshot_options("explorer_compare", &with_a_timing());
}
