//! The explorer driven through AccessKit with egui_kittest, rendered by wgpu (Mesa's lavapipe on
//! a machine without a GPU): a small demo project laid out with thumbnails, a typed search, a
//! click on a result, the colour and γ controls — asserted on the app's state and on the pixels
//! of the rendered frame.

use std::path::{Path, PathBuf};

use crossclr::app::settings::{ColourBy, Level};
use crossclr::app::{ExplorerApp, Launch, Startup};
use crossclr::demo::{DemoSettings, make_demo};
use crossclr::jobs::{CancelToken, progress_channel};
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
fn step_until(harness: &mut Harness<'_, ExplorerApp>, what: &str, ready: impl Fn(&ExplorerApp) -> bool) {
    for _ in 0..20_000 {
        harness.step();
        if ready(harness.state()) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let app = harness.state();
    panic!(
        "the explorer never got to: {what} (problems: {:?}; search: {:?}; jobs: {:?})",
        app.problems,
        app.search.status,
        app.job_lines().iter().map(|l| (&l.0, &l.2)).collect::<Vec<_>>()
    );
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
    assert!(!scene.trained(), "a project without runs shows its input features");
    assert!(scene.clips.len() >= 36, "{} clips", scene.clips.len());
    assert!(scene.clips.iter().all(|c| c.thumbnail.is_some()), "ingest caches every clip's thumbnail");
    assert!(app.problems.is_empty(), "{:?}", app.problems);
    // Without a run the text side is another space: no pairs, and search says why.
    assert!(!scene.level_available(Level::Pairs));
    let clips = scene.clips.len();

    // Zoomed out: discs in the split colours over the dark background, the kNN graph's edges
    // between them.
    harness.run_steps(3);
    assert!(harness.state().drawn_edges >= clips, "{} edges", harness.state().drawn_edges);
    harness.snapshot("explorer_input_features_discs");
    let with_graph = map_pixels(&harness.render().unwrap()).len();
    // Without the graph, to compare discs with thumbnails alone.
    harness.state_mut().show_graph(false);
    harness.run_steps(3);
    assert_eq!(harness.state().drawn_edges, 0);
    let discs = harness.render().unwrap();
    let drawn = map_pixels(&discs);
    assert!(drawn.len() > 500, "the map drew {} pixels", drawn.len());
    assert!(with_graph > drawn.len() + 500, "edges add pixels: {with_graph} with, {} without", drawn.len());

    // Zoomed in around the middle of the map, thumbnails replace the discs.
    let centre = harness.state().map.view.center;
    harness.state_mut().map.view.scale *= 6.0;
    harness.state_mut().map.view.center = centre;
    harness.run_steps(3);
    let thumbnails = harness.render().unwrap();
    assert!(harness.state().map.thumbnails_visible());
    let before: std::collections::HashSet<[u8; 4]> = drawn.into_iter().collect();
    let after: std::collections::HashSet<[u8; 4]> = map_pixels(&thumbnails).into_iter().collect();
    // Pictures of shapes over backgrounds have far more colours than a handful of disc colours.
    assert!(after.len() > 4 * before.len().max(1), "{} colours zoomed in, {} zoomed out", after.len(), before.len());
    harness.snapshot("explorer_input_features_thumbnails");
}

#[test]
fn a_typed_search_lights_up_the_map_and_a_click_on_a_result_selects_it() {
    let dir = tempfile::tempdir().unwrap();
    let project = demo_project(dir.path(), 12, 2);
    let mut harness = explorer(project, Some("demo"));
    step_until(&mut harness, "a laid-out map", settled);
    assert!(harness.state().scene.as_ref().unwrap().trained());

    harness.get_by_label("query").type_text("a red circle");
    harness.get_by_label("search").click();
    step_until(&mut harness, "search results", |app| !app.search.top_clips.is_empty());
    let top = harness.state().search.top_clips.clone();
    assert_eq!(top.len(), 12);
    let scores = harness.state().search.scores.clone().unwrap();
    assert!(top.windows(2).all(|w| scores[w[0]] >= scores[w[1]]), "ranked best first");

    // The second result, by its row in the list.
    let second = top[1];
    harness.get_by_label_contains("2. ").click();
    harness.run_steps(2);
    assert_eq!(harness.state().anchor, Some(second));
    assert!(harness.state().selection.contains(&second));
    let caption = harness.state().scene.as_ref().unwrap().clips[second].caption.clone();
    // The inspector shows the selected clip's caption (and the list shows it too).
    assert!(harness.query_all_by_label(&caption).count() >= 2, "the inspector does not show {caption:?}");

    // Colour by search score, then by influence at a γ the slider moves.
    harness.state_mut().set_colour_by(ColourBy::SearchScore);
    harness.run_steps(2);
    harness.snapshot("explorer_search_scores");
    harness.state_mut().set_colour_by(ColourBy::Influence);
    harness.run_steps(2);
    let gamma = harness.get_by_label("γ");
    gamma.focus();
    harness.key_press(egui::Key::ArrowLeft);
    harness.run_steps(2);
    assert!(harness.state().settings.gamma < 0.9, "γ = {}", harness.state().settings.gamma);
}
