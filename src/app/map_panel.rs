//! The map: pan (drag), zoom around the cursor (wheel, pinch), fit to view (double-click or the
//! button), hover, click to select, shift-click to add, shift-drag a lasso. Drawing goes through
//! `render::MapCallback`; this file keeps the camera and answers "which point is here".

use std::sync::{Arc, Mutex};

use egui::{Pos2, Rect, Sense, Vec2};
use egui_wgpu::wgpu;

use crate::render::{Camera, MapCallback, MapUploads};

/// Which points are near a place, by a uniform grid over the layout (made again when the layout
/// changes, which is when positions are uploaded too).
#[derive(Debug, Default, Clone)]
pub struct PointGrid {
    origin: [f32; 2],
    cell: f32,
    columns: usize,
    rows: usize,
    /// Point indices by cell, `starts[c]..starts[c + 1]`.
    starts: Vec<usize>,
    points: Vec<u32>,
}

impl PointGrid {
    pub fn new(positions: &[[f32; 2]]) -> Self {
        let Some(bounds) = bounds(positions) else {
            return Self::default();
        };
        let (w, h) = (bounds.width().max(1e-6), bounds.height().max(1e-6));
        // About four points a cell.
        let cells = (positions.len() / 4).max(1) as f32;
        let cell = (w * h / cells).sqrt().max(1e-6);
        let columns = ((w / cell).ceil() as usize).max(1);
        let rows = ((h / cell).ceil() as usize).max(1);
        let origin = [bounds.min.x, bounds.min.y];
        let index = |p: &[f32; 2]| {
            let x = (((p[0] - origin[0]) / cell) as usize).min(columns - 1);
            let y = (((p[1] - origin[1]) / cell) as usize).min(rows - 1);
            y * columns + x
        };
        let mut counts = vec![0usize; columns * rows + 1];
        for p in positions {
            counts[index(p) + 1] += 1;
        }
        for c in 1..counts.len() {
            counts[c] += counts[c - 1];
        }
        let mut fill = counts.clone();
        let mut points = vec![0u32; positions.len()];
        for (i, p) in positions.iter().enumerate() {
            let c = index(p);
            points[fill[c]] = i as u32;
            fill[c] += 1;
        }
        Self {
            origin,
            cell,
            columns,
            rows,
            starts: counts,
            points,
        }
    }

    /// The point nearest to `at` within `radius` (world units).
    pub fn nearest(&self, positions: &[[f32; 2]], at: [f32; 2], radius: f32) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let cell_of = |v: f32, origin: f32, n: usize| {
            (((v - origin) / self.cell).floor() as isize).clamp(0, n as isize - 1) as usize
        };
        let (x0, x1) = (
            cell_of(at[0] - radius, self.origin[0], self.columns),
            cell_of(at[0] + radius, self.origin[0], self.columns),
        );
        let (y0, y1) = (
            cell_of(at[1] - radius, self.origin[1], self.rows),
            cell_of(at[1] + radius, self.origin[1], self.rows),
        );
        let mut best: Option<(f32, usize)> = None;
        for y in y0..=y1 {
            for x in x0..=x1 {
                let c = y * self.columns + x;
                for &i in &self.points[self.starts[c]..self.starts[c + 1]] {
                    let p = positions[i as usize];
                    let d = (p[0] - at[0]).powi(2) + (p[1] - at[1]).powi(2);
                    if d <= radius * radius
                        && best.is_none_or(|(bd, bi)| d < bd || (d == bd && (i as usize) < bi))
                    {
                        best = Some((d, i as usize));
                    }
                }
            }
        }
        best.map(|(_, i)| i)
    }
}

/// The bounding box of the positions.
pub fn bounds(positions: &[[f32; 2]]) -> Option<Rect> {
    let mut iter = positions
        .iter()
        .filter(|p| p[0].is_finite() && p[1].is_finite());
    let first = iter.next()?;
    let mut rect = Rect::from_min_max(Pos2::new(first[0], first[1]), Pos2::new(first[0], first[1]));
    for p in iter {
        rect.extend_with(Pos2::new(p[0], p[1]));
    }
    Some(rect)
}

/// Whether `p` is inside the polygon `path` (even-odd rule).
pub fn inside(path: &[[f32; 2]], p: [f32; 2]) -> bool {
    let mut inside = false;
    let mut j = path.len().wrapping_sub(1);
    for i in 0..path.len() {
        let (a, b) = (path[i], path[j]);
        if (a[1] > p[1]) != (b[1] > p[1])
            && p[0] < (b[0] - a[0]) * (p[1] - a[1]) / (b[1] - a[1]) + a[0]
        {
            inside = !inside;
        }
        j = i;
    }
    inside
}

/// Where the camera looks, in world units (the layout's).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct View {
    pub center: [f32; 2],
    /// Points per world unit.
    pub scale: f32,
}

impl Default for View {
    fn default() -> Self {
        Self {
            center: [0.0, 0.0],
            scale: 1.0,
        }
    }
}

impl View {
    /// Everything in `bounds` inside `rect`, with a margin.
    pub fn fit(bounds: Rect, rect: Rect) -> Self {
        let size = bounds.size().max(Vec2::splat(1e-6));
        let scale = ((rect.width() - 40.0) / size.x)
            .min((rect.height() - 40.0) / size.y)
            .max(1e-6);
        Self {
            center: [bounds.center().x, bounds.center().y],
            scale,
        }
    }

    pub fn to_screen(&self, rect: Rect, world: [f32; 2]) -> Pos2 {
        rect.center()
            + Vec2::new(
                (world[0] - self.center[0]) * self.scale,
                (world[1] - self.center[1]) * self.scale,
            )
    }

    pub fn to_world(&self, rect: Rect, screen: Pos2) -> [f32; 2] {
        let d = screen - rect.center();
        [
            self.center[0] + d.x / self.scale,
            self.center[1] + d.y / self.scale,
        ]
    }

    /// Zooms by `factor` keeping the world point under `cursor` where it is.
    pub fn zoom_at(&mut self, rect: Rect, cursor: Pos2, factor: f32) {
        let before = self.to_world(rect, cursor);
        self.scale = (self.scale * factor).clamp(1e-6, 1e9);
        let after = self.to_world(rect, cursor);
        self.center[0] += before[0] - after[0];
        self.center[1] += before[1] - after[1];
    }
}

/// What the user did on the map this frame.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct MapInput {
    pub hovered: Option<usize>,
    /// A click on a point (or on nothing), and whether shift was held.
    pub clicked: Option<(Option<usize>, bool)>,
    /// Points a finished lasso enclosed.
    pub lassoed: Option<Vec<usize>>,
}

/// The map's state between frames.
pub struct MapView {
    /// Which GPU map draws this view (`render::MapCallback::map`).
    pub gpu_map: u32,
    pub view: View,
    /// Where the map was drawn last frame (points to screen: `view.to_screen(rect, ..)`).
    pub rect: Rect,
    /// Fit the next frame (a new layout or the button).
    pub fit_pending: bool,
    lasso: Vec<[f32; 2]>,
    pub uploads: Arc<Mutex<MapUploads>>,
    pub positions: Vec<[f32; 2]>,
    grid: PointGrid,
    /// World size of a thumbnail: a fraction of the layout's extent.
    thumb_world: f32,
}

impl std::fmt::Debug for MapView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapView")
            .field("view", &self.view)
            .field("points", &self.positions.len())
            .finish_non_exhaustive()
    }
}

impl Default for MapView {
    fn default() -> Self {
        Self {
            gpu_map: 0,
            view: View::default(),
            rect: Rect::NOTHING,
            fit_pending: true,
            lasso: Vec::new(),
            uploads: Arc::default(),
            positions: Vec::new(),
            grid: PointGrid::default(),
            thumb_world: 1.0,
        }
    }
}

/// How the map is drawn this frame.
#[derive(Debug, Clone, Copy)]
pub struct MapStyle {
    pub point_radius: f32,
    pub dimmed: bool,
    pub show_edges: bool,
    pub thumbnails: bool,
    pub target_format: Option<wgpu::TextureFormat>,
}

impl MapView {
    /// The changes waiting for the next frame. A poisoned lock means the app panicked mid-update:
    /// what it holds is still the latest state.
    pub fn uploads(&self) -> std::sync::MutexGuard<'_, MapUploads> {
        self.uploads.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues decoded thumbnails (clip, RGBA) for their tiles of `layout`.
    pub fn queue_tiles(
        &self,
        layout: crate::render::AtlasLayout,
        batches: Vec<Vec<(usize, Vec<u8>)>>,
    ) {
        let mut uploads = self.uploads();
        for batch in batches {
            uploads
                .thumbnails
                .extend(
                    batch
                        .into_iter()
                        .map(|(clip, rgba)| crate::render::Thumbnail {
                            tile: layout.tile(clip),
                            rgba,
                        }),
                );
        }
    }

    /// A map drawn by GPU map `gpu_map` (each map on screen has its own).
    pub fn for_gpu_map(gpu_map: u32) -> Self {
        Self {
            gpu_map,
            ..Self::default()
        }
    }

    /// New positions (a layout or a t-SNE snapshot): re-indexed here, uploaded by the caller.
    pub fn set_positions(&mut self, positions: Vec<[f32; 2]>, refit: bool) {
        self.grid = PointGrid::new(&positions);
        if let Some(b) = bounds(&positions) {
            // Thumbnails of about 1/30 of the map's extent: big enough to read once zoomed in,
            // and they overlap only where points do.
            self.thumb_world = (b.width().max(b.height()) / 30.0).max(1e-6);
        }
        self.positions = positions;
        self.fit_pending |= refit;
    }

    pub fn point_at(&self, rect: Rect, screen: Pos2, radius_points: f32) -> Option<usize> {
        let world = self.view.to_world(rect, screen);
        self.grid
            .nearest(&self.positions, world, radius_points / self.view.scale)
    }

    /// Thumbnails show once one is at least this many points wide.
    const THUMBNAIL_POINTS: f32 = 28.0;

    pub fn thumbnails_visible(&self) -> bool {
        self.thumb_world * self.view.scale >= Self::THUMBNAIL_POINTS
    }

    /// Cluster names at their centres over the map: a few large ones (the biggest clusters) at
    /// the fitted view, more and smaller as the user zooms in; only those on screen.
    pub fn labels_ui(
        &self,
        ui: &egui::Ui,
        rect: Rect,
        labels: &[crate::analysis::clusters::ClusterLabel],
    ) {
        let Some(largest) = labels.iter().map(|l| l.size).max() else {
            return;
        };
        let extent_points = self.thumb_world * 30.0 * self.view.scale;
        let zoom = (extent_points / rect.width().max(rect.height()).max(1.0)).max(0.1);
        let shown = ((4.0 * zoom * zoom).ceil() as usize).clamp(4, labels.len().max(4));
        let painter = ui.painter_at(rect);
        for label in labels.iter().take(shown) {
            let at = self.view.to_screen(rect, label.center);
            if !rect.contains(at) || label.name.is_empty() {
                continue;
            }
            let weight = (label.size as f32 / largest as f32).sqrt();
            let size = ((12.0 + 10.0 * weight) / zoom.powf(0.25)).max(11.0);
            let font = egui::FontId::proportional(size);
            let galley = painter.layout_no_wrap(label.name.clone(), font, egui::Color32::WHITE);
            let mut text_rect = egui::Align2::CENTER_CENTER.anchor_size(at, galley.size());
            // Kept inside the map, so that a label near an edge is not cut by a panel.
            let inner = rect.shrink(4.0);
            text_rect = text_rect.translate(egui::vec2(
                (inner.left() - text_rect.left()).max(0.0)
                    - (text_rect.right() - inner.right()).max(0.0),
                (inner.top() - text_rect.top()).max(0.0)
                    - (text_rect.bottom() - inner.bottom()).max(0.0),
            ));
            painter.rect_filled(
                text_rect.expand(3.0),
                4.0,
                egui::Color32::from_black_alpha(150),
            );
            painter.galley(text_rect.min, galley, egui::Color32::WHITE);
        }
    }

    /// Draws the map into the space left in `ui` and reports the user's input.
    pub fn map_ui(&mut self, ui: &mut egui::Ui, style: MapStyle) -> (egui::Response, MapInput) {
        let (rect, response) = ui.allocate_exact_size(ui.available_size(), Sense::click_and_drag());
        self.rect = rect;
        if self.fit_pending && rect.width() > 1.0 {
            if let Some(b) = bounds(&self.positions) {
                self.view = View::fit(b, rect);
            }
            self.fit_pending = false;
        }
        let mut input = MapInput::default();
        let shift = ui.input(|i| i.modifiers.shift);
        if response.hovered() {
            let (scroll, zoom) = ui.input(|i| (i.smooth_scroll_delta.y, i.zoom_delta()));
            if let Some(cursor) = response.hover_pos() {
                let factor = zoom * (scroll / 200.0).exp();
                if (factor - 1.0).abs() > 1e-4 {
                    self.view.zoom_at(rect, cursor, factor);
                }
            }
        }
        if response.double_clicked() {
            self.fit_pending = true;
        }
        if response.dragged() {
            if shift {
                if let Some(p) = response.interact_pointer_pos() {
                    self.lasso.push(self.view.to_world(rect, p));
                }
            } else {
                let delta = response.drag_delta();
                self.view.center[0] -= delta.x / self.view.scale;
                self.view.center[1] -= delta.y / self.view.scale;
            }
        }
        if response.drag_stopped() && !self.lasso.is_empty() {
            let path = std::mem::take(&mut self.lasso);
            if path.len() >= 3 {
                input.lassoed = Some(
                    (0..self.positions.len())
                        .filter(|&i| inside(&path, self.positions[i]))
                        .collect(),
                );
            }
        }
        let pick_radius = style.point_radius.max(4.0) + 3.0;
        input.hovered = response
            .hover_pos()
            .and_then(|p| self.point_at(rect, p, pick_radius));
        if response.clicked() {
            let point = response
                .interact_pointer_pos()
                .and_then(|p| self.point_at(rect, p, pick_radius));
            input.clicked = Some((point, shift));
        }

        let painter = ui.painter_at(rect);
        painter.rect_filled(rect, 0.0, egui::Color32::from_rgb(18, 20, 26));
        match style.target_format {
            Some(target_format) => {
                let camera = Camera {
                    center: self.view.center,
                    half_size: [rect.width() / 2.0, rect.height() / 2.0],
                    scale: self.view.scale,
                    point_radius: style.point_radius,
                    thumb_size: if style.thumbnails && self.thumbnails_visible() {
                        self.thumb_world * self.view.scale
                    } else {
                        0.0
                    },
                    dim_alpha: if style.dimmed { 0.22 } else { 1.0 },
                    pixels_per_point: ui.ctx().pixels_per_point(),
                    edge_width: 1.0,
                    ..Camera::default()
                };
                painter.add(egui_wgpu::Callback::new_paint_callback(
                    rect,
                    MapCallback {
                        map: self.gpu_map,
                        camera,
                        uploads: Arc::clone(&self.uploads),
                        target_format,
                        show_edges: style.show_edges,
                    },
                ));
            }
            None => {
                painter.text(
                    rect.center(),
                    egui::Align2::CENTER_CENTER,
                    "No GPU renderer: the map needs wgpu (eframe started without a render state).",
                    egui::FontId::proportional(14.0),
                    egui::Color32::LIGHT_RED,
                );
            }
        }
        if self.lasso.len() > 1 {
            let points: Vec<Pos2> = self
                .lasso
                .iter()
                .map(|&w| self.view.to_screen(rect, w))
                .collect();
            painter.add(egui::Shape::closed_line(
                points,
                egui::Stroke::new(1.5, egui::Color32::from_rgb(255, 220, 120)),
            ));
        }
        (response, input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grid_finds_the_nearest_point_within_the_radius_only() {
        let positions = vec![[0.0, 0.0], [1.0, 0.0], [5.0, 5.0], [5.1, 5.0]];
        let grid = PointGrid::new(&positions);
        assert_eq!(grid.nearest(&positions, [0.9, 0.1], 0.5), Some(1));
        assert_eq!(grid.nearest(&positions, [5.06, 5.0], 0.5), Some(3));
        assert_eq!(grid.nearest(&positions, [3.0, 3.0], 0.5), None);
    }

    #[test]
    fn zooming_keeps_the_point_under_the_cursor() {
        let rect = Rect::from_min_size(Pos2::ZERO, Vec2::new(400.0, 300.0));
        let mut view = View {
            center: [1.0, 2.0],
            scale: 10.0,
        };
        let cursor = Pos2::new(300.0, 100.0);
        let before = view.to_world(rect, cursor);
        view.zoom_at(rect, cursor, 3.0);
        let after = view.to_world(rect, cursor);
        assert!((before[0] - after[0]).abs() < 1e-4 && (before[1] - after[1]).abs() < 1e-4);
        assert_eq!(view.scale, 30.0);
    }

    #[test]
    fn a_lasso_encloses_what_is_inside_it() {
        let square = [[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0]];
        assert!(inside(&square, [1.0, 1.0]));
        assert!(!inside(&square, [3.0, 1.0]));
    }
}
