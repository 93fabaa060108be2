//! The inspector: the selected clip's thumbnail, caption, video, times and split, and what
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
    if let Some(texture) = app.textures.get(clip, info.thumbnail.as_deref()) {
        ui.image((texture.id(), egui::vec2(192.0, 192.0)));
    }
    ui.label(egui::RichText::new(&info.caption).strong().size(15.0));
    egui::Grid::new("inspector-facts").num_columns(2).show(ui, |ui| {
        let mut row = |name: &str, value: String| {
            ui.label(name);
            ui.label(value);
            ui.end_row();
        };
        row("clip", info.key.clone());
        row("video", info.video.clone());
        row("split", info.split.clone());
        if let (Some(start), Some(end)) = (info.start, info.end) {
            row("time", format!("{start:.1}–{end:.1} s"));
        }
        let gamma = app.settings.gamma;
        for (modality, c) in [("video", &scene.video), ("text", &scene.text)] {
            row(
                &format!("{modality} connectivity"),
                format!("{:.4} (c/max c {:.3})", c.connectivity[clip], c.normalised[clip]),
            );
            row(
                &format!("{modality} influential"),
                if c.normalised[clip] > gamma {
                    format!("yes (> γ = {gamma:.2})")
                } else {
                    format!("no (≤ γ = {gamma:.2})")
                },
            );
        }
        if app.selection.len() > 1 {
            row("selected", format!("{} clips", app.selection.len()));
        }
    });
    if app.neighbours.as_ref().is_none_or(|(of, _)| *of != clip) {
        let lists = [Space::Input, Space::Joint].map(|space| scene.neighbours(clip, space, NEIGHBOURS));
        app.neighbours = Some((clip, lists));
    }
    let Some((_, lists)) = app.neighbours.clone() else { return };
    let mut picked = None;
    for (space, list) in [Space::Input, Space::Joint].into_iter().zip(lists) {
        ui.strong(format!("nearest in {space} space"));
        if list.is_empty() {
            ui.label(egui::RichText::new("needs a trained run").weak());
        }
        for (neighbour, cosine) in list {
            let info = &scene.clips[neighbour];
            let text = format!("{cosine:.3}  {}", info.caption);
            if ui.selectable_label(false, text).on_hover_text(&info.key).clicked() {
                picked = Some(neighbour);
            }
        }
    }
    if let Some(clip) = picked {
        app.select(clip);
    }
}
