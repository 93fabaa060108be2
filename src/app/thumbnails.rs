//! Thumbnails for the explorer, read from the project's cache (`media::ThumbnailCache`) off the
//! UI thread: all of them, small, for the map's atlas; and single ones, full size, for the
//! tooltip, the search results and the inspector.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use crate::render::THUMB_SIDE;

/// Decodes an image file into `side`² RGBA pixels (centre-cropped to a square, then scaled).
pub fn decode_square(path: &Path, side: u32) -> Result<Vec<u8>, String> {
    let image = image::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let rgba = image.to_rgba8();
    let (w, h) = rgba.dimensions();
    let edge = w.min(h);
    let cropped =
        image::imageops::crop_imm(&rgba, (w - edge) / 2, (h - edge) / 2, edge, edge).to_image();
    let scaled = if edge == side {
        cropped
    } else {
        image::imageops::resize(&cropped, side, side, image::imageops::FilterType::Triangle)
    };
    Ok(scaled.into_raw())
}

/// The atlas's pictures: `THUMB_SIDE`² RGBA, in batches, for `(index, path)` pairs.
pub fn atlas_batches(
    items: &[(usize, PathBuf)],
    cancel: &crate::jobs::CancelToken,
    mut send: impl FnMut(Vec<(usize, Vec<u8>)>, usize),
) -> usize {
    const BATCH: usize = 64;
    let mut failed = 0;
    let mut done = 0;
    for chunk in items.chunks(BATCH) {
        if cancel.is_cancelled() {
            break;
        }
        let batch: Vec<(usize, Vec<u8>)> = chunk
            .iter()
            .filter_map(|(index, path)| match decode_square(path, THUMB_SIDE) {
                Ok(rgba) => Some((*index, rgba)),
                Err(_) => {
                    failed += 1;
                    None
                }
            })
            .collect();
        done += chunk.len();
        send(batch, done);
    }
    failed
}

/// egui textures of single thumbnails, decoded on a worker thread on first use.
pub struct TextureCache {
    requests: SyncSender<(usize, PathBuf)>,
    results: Receiver<(usize, Result<Vec<u8>, String>)>,
    textures: HashMap<usize, egui::TextureHandle>,
    pending: std::collections::HashSet<usize>,
    failed: std::collections::HashSet<usize>,
}

impl std::fmt::Debug for TextureCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextureCache")
            .field("textures", &self.textures.len())
            .finish_non_exhaustive()
    }
}

/// The side of the pictures in the UI's lists.
const UI_SIDE: u32 = 128;

impl TextureCache {
    pub fn new(repaint: impl Fn() + Send + 'static) -> Self {
        let (requests, inbox) = sync_channel::<(usize, PathBuf)>(256);
        let (outbox, results) = sync_channel(256);
        let worker = crate::jobs::spawn_named("crossclr-thumbnail-textures", move || {
            for (index, path) in inbox {
                if outbox.send((index, decode_square(&path, UI_SIDE))).is_err() {
                    break;
                }
                repaint();
            }
        });
        // Without the worker, every request fails at once and the lists show no pictures.
        drop(worker);
        Self {
            requests,
            results,
            textures: HashMap::new(),
            pending: Default::default(),
            failed: Default::default(),
        }
    }

    /// Turns decoded pictures into textures; call once a frame.
    pub fn poll(&mut self, ctx: &egui::Context) {
        while let Ok((index, result)) = self.results.try_recv() {
            self.pending.remove(&index);
            match result {
                Ok(rgba) => {
                    let image = egui::ColorImage::from_rgba_unmultiplied(
                        [UI_SIDE as usize, UI_SIDE as usize],
                        &rgba,
                    );
                    let texture = ctx.load_texture(
                        format!("thumb-{index}"),
                        image,
                        egui::TextureOptions::LINEAR,
                    );
                    self.textures.insert(index, texture);
                }
                Err(_) => {
                    self.failed.insert(index);
                }
            }
        }
    }

    /// Whether pictures asked for are still being decoded.
    pub fn decoding(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Whether clip `index`'s picture is a texture (or could not be decoded).
    pub fn settled(&self, index: usize) -> bool {
        self.textures.contains_key(&index) || self.failed.contains(&index)
    }

    /// The texture of clip `index` if decoded; asks for it otherwise.
    pub fn get(&mut self, index: usize, path: Option<&Path>) -> Option<&egui::TextureHandle> {
        if !self.textures.contains_key(&index)
            && !self.pending.contains(&index)
            && !self.failed.contains(&index)
            && let Some(path) = path
        {
            match self.requests.try_send((index, path.to_path_buf())) {
                Ok(()) => {
                    self.pending.insert(index);
                }
                Err(TrySendError::Full(_)) => {}
                Err(TrySendError::Disconnected(_)) => {
                    self.failed.insert(index);
                }
            }
        }
        self.textures.get(&index)
    }

    pub fn clear(&mut self) {
        self.textures.clear();
        self.pending.clear();
        self.failed.clear();
    }
}
