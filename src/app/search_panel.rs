//! Search: a text box whose query the project's text encoder and the run's head embed (on a
//! job); results as a ranked list of thumbnails with cosine scores, lit up on the map; a click
//! selects one.

use super::explorer::ExplorerApp;

/// How many results the list shows and the map lights up.
pub const SHOWN: usize = 12;

#[derive(Debug, Default)]
pub struct SearchState {
    pub query: String,
    /// The query the results are for.
    pub answered: Option<String>,
    /// Cosine of every clip to the answered query.
    pub scores: Option<Vec<f32>>,
    /// The best clips, best first.
    pub top_clips: Vec<usize>,
    pub status: Option<String>,
    /// What the map's colours mean (shown over the map).
    pub legend: Vec<(String, [u8; 4])>,
}

impl SearchState {
    pub fn show_results(&mut self, query: String, scores: Vec<f32>) {
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        order.truncate(SHOWN);
        self.top_clips = order;
        self.status = None;
        self.answered = Some(query);
        self.scores = Some(scores);
    }
}

/// Returns true when the user asked for a search (Enter or the button).
pub fn search_ui(ui: &mut egui::Ui, app: &mut ExplorerApp) -> bool {
    ui.heading("Search");
    let label = ui.label("query");
    let edit = ui
        .add(
            egui::TextEdit::singleline(&mut app.search.query)
                .hint_text("a red star that spins")
                .desired_width(f32::INFINITY),
        )
        .labelled_by(label.id);
    let mut asked = edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
    asked |= ui.button("search").clicked();
    if let Some(status) = &app.search.status {
        ui.label(egui::RichText::new(status).italics());
    }
    let Some(scene) = app.scene.clone() else {
        return asked;
    };
    if let Some(answered) = &app.search.answered {
        ui.label(format!(
            "top {} for {answered:?}",
            app.search.top_clips.len()
        ));
    }
    let scores = app.search.scores.clone().unwrap_or_default();
    let mut picked = None;
    egui::ScrollArea::vertical().show(ui, |ui| {
        for (rank, &clip) in app.search.top_clips.iter().enumerate() {
            let info = &scene.clips[clip];
            let path = super::explorer::thumbnail_of(info, &app.arrived_thumbnails, clip);
            let texture = app.textures.get(clip, path).cloned();
            let selected = app.selection.contains(&clip);
            let row = ui.horizontal(|ui| {
                match texture {
                    Some(texture) => {
                        ui.image((texture.id(), egui::vec2(48.0, 48.0)));
                    }
                    None => {
                        ui.allocate_exact_size(egui::vec2(48.0, 48.0), egui::Sense::hover());
                    }
                }
                ui.vertical(|ui| {
                    let text = format!(
                        "{}. {:.3}  {}",
                        rank + 1,
                        scores.get(clip).copied().unwrap_or(0.0),
                        info.caption
                    );
                    ui.selectable_label(selected, text)
                })
                .inner
            });
            if row.inner.clicked() {
                picked = Some(clip);
            }
        }
    });
    if let Some(clip) = picked {
        app.select(clip);
    }
    asked
}
