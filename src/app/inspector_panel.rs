//! The inspector: the selected clip's thumbnail and frames, caption, video, times and split, and what
//! CrossCLR sees in it — connectivity, normalised score and influence in both modalities — and
//! its nearest clips in input space and in joint space (a click selects one).

use super::explorer::ExplorerApp;
use super::settings::Space;

/// Neighbours listed per space.
const NEIGHBOURS: usize = 6;

pub fn inspector_ui(ui: &mut egui::Ui, app: &mut ExplorerApp) {
    ui.heading("Inspector");
    let (Some(scene), Some(clip)) = (app.scene.clone(), app.anchor) else {
        ui.label("Click a point to inspect it; shift-click adds to the selection, shift-drag draws a lasso.");
        if !app.selection.is_empty() {
            ui.label(format!("{} selected", app.selection.len()));
        }
        return;
    };
    let info = &scene.clips[clip];
    ui.horizontal(|ui| {
        let path = super::explorer::thumbnail_of(info, &app.arrived_thumbnails, clip);
        if let Some(texture) = app.textures.get(clip, path) {
            ui.image((texture.id(), egui::vec2(112.0, 112.0)));
        }
        ui.vertical(|ui| {
            ui.label(egui::RichText::new(&info.caption).strong().size(15.0));
            ui.label(format!("clip {}", info.key));
            ui.label(format!("video {}, split {}", info.video, info.split));
            if let (Some(start), Some(end)) = (info.start, info.end) {
                ui.label(format!("{start:.1}–{end:.1} s"));
            }
            if app.selection.len() > 1 {
                ui.label(format!("{} clips selected", app.selection.len()));
            }
        });
    });
    if app.frames.clip == Some(clip) && !app.frames.frames.is_empty() {
        ui.horizontal_wrapped(|ui| {
            ui.spacing_mut().item_spacing.x = 3.0;
            for (seconds, texture) in &app.frames.frames {
                ui.image((texture.id(), egui::vec2(52.0, 52.0)))
                    .on_hover_text(format!("{seconds:.2} s"));
            }
        });
    } else if let Some(status) = &app.frames.status {
        ui.label(egui::RichText::new(status).weak().italics());
    }
    let gamma = app.settings.gamma;
    egui::Grid::new("inspector-facts")
        .num_columns(4)
        .show(ui, |ui| {
            ui.label("");
            ui.label("connectivity");
            ui.label("c/max c");
            ui.label("influential");
            ui.end_row();
            for (modality, c) in [("video", &scene.video), ("text", &scene.text)] {
                ui.label(modality);
                ui.label(format!("{:.4}", c.connectivity[clip]));
                ui.label(format!("{:.3}", c.normalised[clip]));
                ui.label(if c.normalised[clip] > gamma {
                    format!("yes (> γ {gamma:.2})")
                } else {
                    format!("no (≤ γ {gamma:.2})")
                });
                ui.end_row();
            }
        });
}

/// The anchor's nearest clips in input space and in joint space; a click selects one.
pub fn neighbours_ui(ui: &mut egui::Ui, app: &mut ExplorerApp) {
    let (Some(scene), Some(clip)) = (app.scene.clone(), app.anchor) else {
        ui.label(egui::RichText::new("select a clip").weak());
        return;
    };
    if app.neighbours.as_ref().is_none_or(|(of, _)| *of != clip) {
        let lists =
            [Space::Input, Space::Joint].map(|space| scene.neighbours(clip, space, NEIGHBOURS));
        app.neighbours = Some((clip, lists));
    }
    let Some((_, lists)) = app.neighbours.clone() else {
        return;
    };
    let mut picked = None;
    for (space, list) in [Space::Input, Space::Joint].into_iter().zip(lists) {
        ui.strong(format!("in {space} space"));
        if list.is_empty() {
            ui.label(egui::RichText::new("needs a trained run").weak());
        }
        for (neighbour, cosine) in list {
            let info = &scene.clips[neighbour];
            let text = format!("{cosine:.3}  {}", info.caption);
            if ui
                .selectable_label(false, text)
                .on_hover_text(&info.key)
                .clicked()
            {
                picked = Some(neighbour);
            }
        }
    }
    if let Some(clip) = picked {
        app.select(clip);
    }
}
