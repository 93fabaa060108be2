//! The pixels of the collection: each frame drawn from the plan (background, then the shape
//! with its texture, at its pose along its motion, anti-aliased), and the collection written to
//! video files with its captions.

use std::path::{Path, PathBuf};

use super::plan::{DemoClip, DemoConfig, DemoVideo};
use super::vocabulary::*;
use crate::jobs::{CancelToken, ProgressSender};
use crate::media::batch::{BatchProgress, run_batch};
use crate::media::frame::RgbFrame;
use crate::media::{MediaError, write_video};
use crate::project::{ProjectError, write_atomic};

impl DemoVideo {
    pub fn seconds(&self, config: &DemoConfig) -> f64 {
        self.clips.len() as f64 * config.clip_seconds
    }

    pub fn frame_count(&self, config: &DemoConfig) -> usize {
        (self.seconds(config) * config.fps as f64).round() as usize
    }

    /// Frame `index` of the video (time = index / fps).
    pub fn render_frame(&self, index: usize, config: &DemoConfig) -> RgbFrame {
        let seconds = index as f64 / config.fps.max(1) as f64;
        let clip_index = ((seconds / config.clip_seconds) as usize).min(self.clips.len() - 1);
        let clip = &self.clips[clip_index];
        let progress = ((seconds - clip.start) / config.clip_seconds).clamp(0.0, 1.0) as f32;
        let (width, height) = (config.width, config.height);
        let mut pixels = Vec::with_capacity(width as usize * height as usize * 3);
        for y in 0..height {
            for x in 0..width {
                pixels.extend(self.background_at(x, y, height));
            }
        }
        draw_shape(&mut pixels, width, height, clip, progress);
        RgbFrame {
            width,
            height,
            pixels,
            seconds,
        }
    }

    fn background_at(&self, x: u32, y: u32, height: u32) -> [u8; 3] {
        let v = y as f32 / height.max(1) as f32;
        let mix = |a: [f32; 3], b: [f32; 3], t: f32| {
            [0, 1, 2].map(|i| (a[i] + (b[i] - a[i]) * t).clamp(0.0, 255.0) as u8)
        };
        match self.background {
            Background::Dark => mix([28.0, 28.0, 40.0], [10.0, 10.0, 16.0], v),
            Background::Light => mix([232.0, 230.0, 220.0], [205.0, 203.0, 195.0], v),
            Background::Sky => mix([110.0, 160.0, 235.0], [200.0, 225.0, 250.0], v),
            Background::Grass => {
                let blade = (hash3(self.grain_seed, x / 2, y) % 24) as f32 - 12.0;
                mix([70.0, 150.0, 60.0], [40.0, 110.0, 35.0], v)
                    .map(|c| (c as f32 + blade).clamp(0.0, 255.0) as u8)
            }
            Background::Static => {
                let grain = (hash3(self.grain_seed, x, y) % 90) as u8;
                [80 + grain, 80 + grain, 80 + grain]
            }
        }
    }
}

/// A fixed hash of (seed, x, y) for the grain of textured backgrounds.
fn hash3(seed: u64, x: u32, y: u32) -> u64 {
    let mut h = seed ^ ((x as u64) << 32 | y as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h ^= h >> 30;
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^ (h >> 31)
}

/// The shape's centre (pixels), radius scale and rotation (radians) at `progress` ∈ [0, 1].
fn pose(clip: &DemoClip, width: u32, height: u32, progress: f32) -> (f32, f32, f32, f32) {
    let (w, h) = (width as f32, height as f32);
    let travel = 0.45;
    let (mut x, mut y) = (clip.start_x * w, clip.start_y * h);
    let (mut scale, mut angle) = (1.0, 0.0);
    match clip.concept.motion {
        Motion::Left => x -= travel * w * progress,
        Motion::Right => x += travel * w * progress,
        Motion::Up => y -= travel * h * progress,
        Motion::Down => y += travel * h * progress,
        Motion::Spin => angle = progress * std::f32::consts::TAU,
        Motion::Bounce => y -= 0.4 * h * (progress * 2.0 * std::f32::consts::PI).sin().abs(),
        Motion::Grow => scale = 0.5 + progress,
        Motion::Shrink => scale = 1.5 - progress,
    }
    (x, y, scale, angle)
}

/// Whether the point (u, v) of the unit shape (radius 1, y down) is inside it.
fn inside(shape: Shape, u: f32, v: f32) -> bool {
    let r2 = u * u + v * v;
    match shape {
        Shape::Circle => r2 <= 1.0,
        Shape::Ring => (0.36..=1.0).contains(&r2),
        Shape::Square => u.abs() <= 0.8 && v.abs() <= 0.8,
        Shape::Triangle => {
            // Apex up at (0, −1), base corners at (±0.92, 0.6).
            (-1.0..=0.6).contains(&v) && u.abs() <= 0.575 * (v + 1.0)
        }
        Shape::Star => {
            let angle = v.atan2(u) + std::f32::consts::FRAC_PI_2;
            let sector = std::f32::consts::TAU / 5.0;
            let phase = (angle.rem_euclid(sector) / sector - 0.5).abs() * 2.0;
            // 1 at a point, 0.45 between points, straight-ish edges in between.
            r2.sqrt() <= 0.45 + 0.55 * phase.powf(1.6)
        }
    }
}

/// The shape's colour at unit coordinates (u, v), textured.
fn shade(clip: &DemoClip, u: f32, v: f32) -> [f32; 3] {
    let base = clip.concept.colour.rgb();
    let darker = base.map(|c| c * 0.55);
    match clip.concept.texture {
        Texture::Solid => base,
        Texture::Striped => {
            if ((u + 2.0) * 3.0).floor() as i32 % 2 == 0 {
                base
            } else {
                darker
            }
        }
        Texture::Dotted => {
            let (fu, fv) = ((u + 2.0) * 2.5, (v + 2.0) * 2.5);
            let (du, dv) = (fu - fu.floor() - 0.5, fv - fv.floor() - 0.5);
            if du * du + dv * dv < 0.06 {
                darker
            } else {
                base
            }
        }
    }
}

/// Draws the clip's shape over `pixels`, 2×2 supersampled at the edges.
fn draw_shape(pixels: &mut [u8], width: u32, height: u32, clip: &DemoClip, progress: f32) {
    let (cx, cy, scale, angle) = pose(clip, width, height, progress);
    let radius = clip.concept.size.radius() * width.min(height) as f32 * scale;
    if radius <= 0.5 {
        return;
    }
    let (sin, cos) = (-angle).sin_cos();
    let x0 = ((cx - radius).floor().max(0.0)) as u32;
    let y0 = ((cy - radius).floor().max(0.0)) as u32;
    let x1 = ((cx + radius).ceil().min(width as f32 - 1.0)).max(0.0) as u32;
    let y1 = ((cy + radius).ceil().min(height as f32 - 1.0)).max(0.0) as u32;
    if cx + radius < 0.0 || cy + radius < 0.0 {
        return;
    }
    const OFFSETS: [(f32, f32); 4] = [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)];
    for y in y0..=y1 {
        for x in x0..=x1 {
            let mut sum = [0.0f32; 3];
            let mut covered = 0;
            for (ox, oy) in OFFSETS {
                let (dx, dy) = ((x as f32 + ox - cx) / radius, (y as f32 + oy - cy) / radius);
                let (u, v) = (dx * cos - dy * sin, dx * sin + dy * cos);
                if inside(clip.concept.shape, u, v) {
                    let colour = shade(clip, u, v);
                    for i in 0..3 {
                        sum[i] += colour[i];
                    }
                    covered += 1;
                }
            }
            if covered == 0 {
                continue;
            }
            let at = (y as usize * width as usize + x as usize) * 3;
            let coverage = covered as f32 / 4.0;
            for i in 0..3 {
                let shape = sum[i] / covered as f32;
                let behind = pixels[at + i] as f32;
                pixels[at + i] = (behind + (shape - behind) * coverage).round() as u8;
            }
        }
    }
}

/// The videos `write_collection` wrote and found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CollectionSummary {
    /// Videos rendered by this call.
    pub rendered: usize,
    /// Videos already in the folder and kept.
    pub kept: usize,
    pub clips: usize,
}

/// Writes the collection into `folder`: every video of `plan` that is not there yet, rendered and
/// encoded on the media batch pool (`workers` threads, 0: one per core), and the captions file
/// `captions.jsonl`. Each video is written atomically, so a cancel (videos in flight finish) or a
/// crash leaves only whole files, and the next call renders what is missing.
pub fn write_collection(
    folder: &Path,
    plan: &[DemoVideo],
    config: &DemoConfig,
    workers: usize,
    cancel: &CancelToken,
    progress: Option<&ProgressSender<BatchProgress>>,
) -> Result<CollectionSummary, MediaError> {
    std::fs::create_dir_all(folder).map_err(|e| ProjectError::io("create", folder, e))?;
    let todo: Vec<(PathBuf, &DemoVideo)> = plan
        .iter()
        .map(|video| (video_path(folder, video), video))
        .filter(|(path, _)| !path.is_file())
        .collect();
    let summary = run_batch(
        &todo,
        |(path, _)| path,
        workers,
        cancel,
        progress,
        |(path, video)| {
            let frames = (0..video.frame_count(config)).map(|f| video.render_frame(f, config));
            write_video(path, config.width, config.height, config.fps as f64, frames)
        },
        |_, _| {},
    );
    if let Some(failure) = summary.failed.into_iter().next() {
        return Err(failure.error);
    }
    if summary.cancelled {
        return Err(MediaError::Cancelled);
    }
    write_captions(&folder.join(CAPTIONS_FILE), plan)?;
    Ok(CollectionSummary {
        rendered: summary.succeeded,
        kept: plan.len() - todo.len(),
        clips: plan.iter().map(|v| v.clips.len()).sum(),
    })
}

/// The captions file of a collection folder.
pub const CAPTIONS_FILE: &str = "captions.jsonl";

/// Where a video of the plan is written.
pub fn video_path(folder: &Path, video: &DemoVideo) -> PathBuf {
    folder.join(format!("{}.mp4", video.name))
}

/// JSON Lines, one clip per line, with its split (the plan splits by video).
fn write_captions(path: &Path, plan: &[DemoVideo]) -> Result<(), MediaError> {
    let mut text = String::new();
    for video in plan {
        for clip in &video.clips {
            let line = serde_json::json!({
                "video": video.name,
                "caption": clip.caption,
                "start": clip.start,
                "end": clip.end,
                "split": video.split,
            });
            text.push_str(&line.to_string());
            text.push('\n');
        }
    }
    Ok(write_atomic(path, text.as_bytes())?)
}
