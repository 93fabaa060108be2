//! The real binary's window under Xvfb: `crossclr explore` on a small trained demo project lays
//! out the map, draws it with thumbnails and the graph, saves a screenshot and closes. The
//! picture is checked for what the map draws, not just for existing.

use std::process::Command;

use crossclr::demo::{DemoSettings, make_demo};
use crossclr::jobs::{CancelToken, progress_channel};

/// The screenshot's pixels in the map's middle region that are not the map's background.
fn drawn_pixels(image: &image::RgbaImage) -> usize {
    let (w, h) = image.dimensions();
    let mut drawn = 0;
    for y in h / 5..h * 4 / 5 {
        for x in w * 2 / 5..w * 3 / 5 {
            let p = image.get_pixel(x, y).0;
            if p[..3] != [18, 20, 26] {
                drawn += 1;
            }
        }
    }
    drawn
}

#[test]
fn the_window_opens_on_a_project_under_xvfb_and_saves_a_screenshot_of_its_map() {
    let xvfb = Command::new("xvfb-run").arg("--help").output();
    assert!(
        xvfb.is_ok(),
        "xvfb-run is missing: scripts/setup.sh installs xvfb and xauth"
    );
    let dir = tempfile::tempdir().unwrap();
    let (events, _receiver) = progress_channel(100_000);
    let settings = DemoSettings {
        seed: 5,
        videos: 16,
        epochs: 2,
    };
    let project = make_demo(dir.path(), settings, &events, &CancelToken::new()).unwrap();
    let shot = dir.path().join("window.png");
    let output = Command::new("xvfb-run")
        .args(["--auto-servernum", "--server-args=-screen 0 1400x900x24"])
        .arg(env!("CARGO_BIN_EXE_crossclr"))
        .arg("explore")
        .arg(&project)
        .args(["--iters", "400", "--screenshot"])
        .arg(&shot)
        // Settings of earlier runs must not change what the test sees.
        .env("XDG_DATA_HOME", dir.path().join("data"))
        .env("XDG_CONFIG_HOME", dir.path().join("config"))
        .env("WGPU_BACKEND", "vulkan")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "crossclr explore failed: {stderr}");
    assert!(stderr.contains("screenshot saved"), "{stderr}");
    let image = image::open(&shot).unwrap().to_rgba8();
    assert!(
        image.width() >= 1000 && image.height() >= 600,
        "{:?}",
        image.dimensions()
    );
    let drawn = drawn_pixels(&image);
    assert!(drawn > 2_000, "the map drew only {drawn} pixels");
    if let Some(keep) = std::env::var_os("CROSSCLR_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
}
