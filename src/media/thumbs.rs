//! Thumbnails on disk: `DIR/cache/thumbs/<video id>/<ms>ms-<w>x<h>-<fit>.<ext>`, one file per
//! video and time, written atomically and reused whenever present, so a second look at a
//! project decodes nothing.
//!
//! The default is a 128×128 centre crop: the explorer packs thumbnails into a texture array,
//! whose layers must all have one size.

use std::path::{Path, PathBuf};

use image::ImageEncoder;

use super::batch::{BatchProgress, BatchSummary, run_batch};
use super::error::MediaError;
use super::frame::RgbFrame;
use super::sample::{DecodeStats, VideoDecoder};
use super::scale::{Fit, FrameSize};
use crate::hash::fnv1a;
use crate::jobs::{CancelToken, ProgressSender};
use crate::project::{
    CACHE_DIR, ManifestEntry, STALE_TEMPORARY_AGE, remove_stale_temporaries, write_atomic,
};

/// The image format of cached thumbnails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThumbnailFormat {
    /// Quality 1–100.
    Jpeg {
        quality: u8,
    },
    Png,
}

impl ThumbnailFormat {
    fn extension(self) -> &'static str {
        match self {
            Self::Jpeg { .. } => "jpg",
            Self::Png => "png",
        }
    }
}

/// Thumbnails wanted for one video.
#[derive(Debug, Clone, PartialEq)]
pub struct ThumbnailRequest {
    /// A stable id for the video (the manifest's video id); it names the cache folder.
    pub video_id: String,
    pub path: PathBuf,
    /// Media times in seconds.
    pub times: Vec<f64>,
}

/// The thumbnails of one video, one path per requested time, in request order.
#[derive(Debug, Clone, PartialEq)]
pub struct Thumbnails {
    pub paths: Vec<PathBuf>,
    /// How many were decoded and written now, and how many were already in the cache.
    pub created: usize,
    pub reused: usize,
    /// The decoding it took (all zero when everything came from the cache).
    pub stats: DecodeStats,
}

/// The media time of a clip's thumbnail: the middle of the clip, its start when it has no end,
/// 0 without times. Ingest caches it there; search results and exports name that file.
pub fn clip_thumbnail_time(start: Option<f64>, end: Option<f64>) -> f64 {
    match (start, end) {
        (Some(start), Some(end)) => (start + end) / 2.0,
        (Some(start), None) => start,
        _ => 0.0,
    }
}

/// A folder of cached thumbnails of one size and format.
#[derive(Debug, Clone, PartialEq)]
pub struct ThumbnailCache {
    dir: PathBuf,
    size: FrameSize,
    format: ThumbnailFormat,
}

impl ThumbnailCache {
    pub const DEFAULT_SIDE: u32 = 128;

    /// The project's cache, `DIR/cache/thumbs`, with 128 px square JPEG thumbnails.
    pub fn for_project(project_dir: &Path) -> Self {
        Self::in_dir(project_dir.join(CACHE_DIR).join("thumbs"))
    }

    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            size: FrameSize::square(Self::DEFAULT_SIDE, Fit::Crop),
            format: ThumbnailFormat::Jpeg { quality: 85 },
        }
    }

    pub fn with_size(mut self, size: FrameSize) -> Self {
        self.size = size;
        self
    }

    pub fn with_format(mut self, format: ThumbnailFormat) -> Self {
        self.format = format;
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn size(&self) -> FrameSize {
        self.size
    }

    /// Where the thumbnail of `video_id` at `seconds` lives (whether or not it exists yet).
    pub fn path_for(&self, video_id: &str, seconds: f64) -> PathBuf {
        let millis = (seconds * 1000.0).round() as i64;
        let fit = match self.size.fit {
            Fit::Pad => "pad",
            Fit::Crop => "crop",
            Fit::Stretch => "stretch",
        };
        self.dir.join(folder_name(video_id)).join(format!(
            "{millis}ms-{}x{}-{fit}.{}",
            self.size.width,
            self.size.height,
            self.format.extension()
        ))
    }

    /// Removes the temporaries that writers killed before their rename left in the cache (one
    /// folder per video), once [`STALE_TEMPORARY_AGE`] old; younger ones are ignored, as every
    /// lookup is by a thumbnail's own name. Returns how many were removed.
    pub fn remove_stale_temporaries(&self) -> usize {
        let mut removed = remove_stale_temporaries(&self.dir, STALE_TEMPORARY_AGE);
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    removed += remove_stale_temporaries(&entry.path(), STALE_TEMPORARY_AGE);
                }
            }
        }
        removed
    }

    /// Drops every cached thumbnail of `video_id` (its file was replaced: they show the old one).
    /// Best effort: a folder that cannot be removed is left, and so are its thumbnails.
    pub fn forget(&self, video_id: &str) {
        let _ = std::fs::remove_dir_all(self.dir.join(folder_name(video_id)));
    }

    /// Where `ingest` caches the thumbnail of a manifest clip (whether or not it is there yet).
    pub fn for_clip(&self, clip: &ManifestEntry) -> PathBuf {
        self.path_for(&clip.video, clip_thumbnail_time(clip.start, clip.end))
    }

    /// The thumbnails of `request`, decoding only those not cached yet (in one pass over the
    /// video).
    pub fn thumbnails(
        &self,
        request: &ThumbnailRequest,
        cancel: &CancelToken,
    ) -> Result<Thumbnails, MediaError> {
        let paths: Vec<PathBuf> = request
            .times
            .iter()
            .map(|&t| self.path_for(&request.video_id, t))
            .collect();
        let missing: Vec<usize> = (0..paths.len()).filter(|&i| !paths[i].is_file()).collect();
        if missing.is_empty() {
            return Ok(Thumbnails {
                reused: paths.len(),
                paths,
                created: 0,
                stats: DecodeStats::default(),
            });
        }
        let mut decoder = VideoDecoder::open(&request.path, 1)?;
        let times: Vec<f64> = missing.iter().map(|&i| request.times[i]).collect();
        let frames = decoder.frames_at(&times, Some(self.size), cancel)?;
        let folder = self.dir.join(folder_name(&request.video_id));
        std::fs::create_dir_all(&folder).map_err(|source| MediaError::Io {
            path: folder.clone(),
            source,
        })?;
        let mut created = 0;
        for (&i, frame) in missing.iter().zip(&frames) {
            // Two requests for one time are decoded once each but written to one file.
            if !paths[i].is_file() {
                let bytes = self.encode(frame, &paths[i])?;
                write_atomic(&paths[i], &bytes)?;
            }
            created += 1;
        }
        Ok(Thumbnails {
            created,
            reused: paths.len() - created,
            paths,
            stats: decoder.stats(),
        })
    }

    /// Thumbnails for many videos on `workers` threads (0: one per core); `on_done` gets each
    /// video's thumbnails on the calling thread; bad files are listed in the summary.
    pub fn thumbnails_batch<F>(
        &self,
        requests: &[ThumbnailRequest],
        workers: usize,
        cancel: &CancelToken,
        progress: Option<&ProgressSender<BatchProgress>>,
        mut on_done: F,
    ) -> BatchSummary
    where
        F: FnMut(usize, Thumbnails),
    {
        let mut stats = DecodeStats::default();
        let mut summary = run_batch(
            requests,
            |r| &r.path,
            workers,
            cancel,
            progress,
            |request| self.thumbnails(request, cancel),
            |index, thumbnails: Thumbnails| {
                stats.add(&thumbnails.stats);
                on_done(index, thumbnails);
            },
        );
        summary.stats = stats;
        summary
    }

    fn encode(&self, frame: &RgbFrame, path: &Path) -> Result<Vec<u8>, MediaError> {
        let mut bytes = Vec::new();
        let result = match self.format {
            ThumbnailFormat::Jpeg { quality } => {
                image::codecs::jpeg::JpegEncoder::new_with_quality(
                    &mut bytes,
                    quality.clamp(1, 100),
                )
                .write_image(
                    &frame.pixels,
                    frame.width,
                    frame.height,
                    image::ExtendedColorType::Rgb8,
                )
            }
            ThumbnailFormat::Png => image::codecs::png::PngEncoder::new(&mut bytes).write_image(
                &frame.pixels,
                frame.width,
                frame.height,
                image::ExtendedColorType::Rgb8,
            ),
        };
        result.map_err(|e| MediaError::encode(path, e))?;
        Ok(bytes)
    }
}

/// A file-system-safe folder name for a video id: the id itself when it is plain, otherwise a
/// cleaned-up version with a hash of the original so that distinct ids never share a folder.
fn folder_name(video_id: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if !video_id.is_empty()
        && video_id.len() <= 100
        && !video_id.starts_with('.')
        && video_id.chars().all(plain)
    {
        return video_id.to_string();
    }
    let cleaned: String = video_id
        .chars()
        .map(|c| if plain(c) { c } else { '_' })
        .take(80)
        .collect();
    format!(
        "{}-{:016x}",
        cleaned.trim_start_matches('.'),
        fnv1a(video_id.as_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_and_safe() {
        let cache = ThumbnailCache::in_dir("/p/cache/thumbs");
        assert_eq!(
            cache.path_for("GLd3aX16zBg", 12.3456),
            PathBuf::from("/p/cache/thumbs/GLd3aX16zBg/12346ms-128x128-crop.jpg")
        );
        let odd = folder_name("../cooking/video 1");
        assert!(!odd.contains('/') && !odd.starts_with('.'), "{odd}");
        assert_eq!(odd, folder_name("../cooking/video 1"));
        assert_ne!(folder_name("a b"), folder_name("a_b"));
    }
}
