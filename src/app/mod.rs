//! The explorer: an eframe app (wgpu renderer only) on a project. The map (central panel) is
//! drawn by `render`; search, the inspector, the Train panel and the status bar are one file each. All long work
//! — making the demo, loading and embedding the project, t-SNE, thumbnails, search — runs in
//! [`jobs`] threads; the UI thread only drains their channels.

mod compare_panel;
mod explorer;
pub mod frames;
mod inspector_panel;
pub mod jobs;
pub mod map_panel;
pub mod project_panel;
mod pruning_panel;
pub mod scene;
mod search_panel;
pub mod settings;
mod status_bar;
pub mod thumbnails;
pub mod train_panel;

use std::path::PathBuf;

pub use explorer::{ExplorerApp, Launch, Startup, thumbnail_of};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum AppError {
    #[error(
        "no display: neither DISPLAY nor WAYLAND_DISPLAY is set, so no window can open (run it from a desktop session, or under Xvfb)"
    )]
    NoDisplay,
    #[error("the explorer window could not start")]
    Window(#[source] Box<eframe::Error>),
}

/// Whether a window can open here: on Linux and the BSDs an X11 or Wayland display must be named;
/// macOS and Windows always have one.
pub fn display_available() -> bool {
    if cfg!(any(target_os = "macos", target_os = "windows")) {
        return true;
    }
    ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()))
}

/// Opens the explorer window and returns when it closes.
pub fn run(launch: Launch) -> Result<(), AppError> {
    if !display_available() {
        return Err(AppError::NoDisplay);
    }
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("crossclr explorer")
            .with_inner_size([1400.0, 900.0]),
        renderer: eframe::Renderer::Wgpu,
        ..Default::default()
    };
    eframe::run_native(
        "crossclr",
        options,
        Box::new(move |cc| Ok(Box::new(ExplorerApp::new(cc, launch)))),
    )
    .map_err(|e| AppError::Window(Box::new(e)))
}

/// Where the explorer keeps its settings when eframe has no storage (tests).
pub fn settings_path() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("crossclr"))
}
