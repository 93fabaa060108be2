//! The status bar: every background job with its progress and a button to cancel it, and the
//! problems the jobs met.

use super::explorer::ExplorerApp;

pub fn status_ui(ui: &mut egui::Ui, app: &mut ExplorerApp) {
    ui.horizontal(|ui| {
        let jobs = app.job_lines();
        if jobs.is_empty() {
            ui.label("ready");
        }
        for (name, fraction, text, cancel) in jobs {
            ui.label(format!("{name}:"));
            let bar = match fraction {
                Some(f) => egui::ProgressBar::new(f).show_percentage(),
                None => egui::ProgressBar::new(0.0).animate(true),
            };
            ui.add(bar.desired_width(140.0).text(text));
            if ui.small_button(format!("cancel {name}")).clicked() {
                cancel.cancel();
            }
            ui.separator();
        }
        if let Some(problem) = app.problems.last() {
            ui.label(egui::RichText::new(problem).color(egui::Color32::from_rgb(240, 170, 90)))
                .on_hover_text(app.problems.join("\n"));
        }
    });
}
