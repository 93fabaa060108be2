//! Importing COOT's data layout (simon-ging/coot-videotext): `meta_all.json`, one HDF5 file of
//! frame features keyed by each video's `data_key`, one of paragraph token features keyed by the
//! video's key, and `_sentence_splits.json` with the token count of each sentence.
//!
//! A segment's frames are computed as COOT does: with `fps = frames / duration`,
//! `start = floor(fps · start_sec)` and `stop = min(ceil(fps · stop_sec) + 2, frames)`; the two
//! extra frames make short segments see the motion around them. Clips longer than `max_frames`
//! are sampled at evenly spaced frames. A sentence's tokens are the next `count` rows of the
//! paragraph, in segment order.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use hdf5_metno as hdf5;
use serde::Deserialize;
use serde_json::Value;

use super::error::ProjectError;
use super::features::{Sequences, SplitFeatures};
use super::import::{Import, Skipped};
use super::manifest::ManifestEntry;
use super::{is_valid_split_name, sort_splits};

/// The four files of a COOT dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct CootPaths {
    /// `meta_all.json`.
    pub meta: PathBuf,
    /// Frame features, one `frames × Dv` dataset per `data_key`.
    pub video_h5: PathBuf,
    /// Paragraph token features, one `tokens × Dt` dataset per video key.
    pub text_h5: PathBuf,
    /// `_sentence_splits.json`: per video key, the token count of each sentence.
    pub sentence_splits: PathBuf,
}

/// One video of `meta_all.json`; COOT's other fields are ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct MetaVideo {
    pub data_key: String,
    pub duration_sec: f64,
    pub split: String,
    pub segments: Vec<MetaSegment>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MetaSegment {
    pub text: String,
    pub start_sec: f64,
    pub stop_sec: f64,
}

/// The frames `start..stop` of a segment in a video of `frames` frames lasting `duration_sec`
/// (COOT's arithmetic; see the module docs). Never empty when `frames > 0`: the start is clamped
/// to the last frame and the stop to at least one past the start. Inputs must be finite, the
/// duration positive and the times ≥ 0; the importer checks that first.
pub fn segment_frames(
    frames: usize,
    duration_sec: f64,
    start_sec: f64,
    stop_sec: f64,
) -> Range<usize> {
    if frames == 0 {
        return 0..0;
    }
    // Same operation order as COOT's Python, so float rounding lands on the same frame.
    let fps = frames as f64 / duration_sec;
    let start = ((fps * start_sec).floor() as usize).min(frames - 1);
    let stop = ((fps * stop_sec).ceil() as usize)
        .saturating_add(2)
        .min(frames)
        .max(start + 1);
    start..stop
}

/// At most `max_frames` frame indices from `frames`: all of them when they fit, else evenly
/// spaced from the first to the last, `start + ⌊k · (len − 1) / (max_frames − 1)⌋` for
/// k = 0..max_frames (numpy's `linspace(start, stop − 1, max_frames)` truncated, in exact integer
/// arithmetic).
pub fn sample_frames(frames: Range<usize>, max_frames: usize) -> Vec<usize> {
    let len = frames.len();
    if len <= max_frames {
        return frames.collect();
    }
    if max_frames <= 1 {
        return vec![frames.start; max_frames];
    }
    (0..max_frames)
        .map(|k| frames.start + k * (len - 1) / (max_frames - 1))
        .collect()
}

/// Reads a COOT dataset, videos in key order, each video's clips in temporal order (segments
/// sorted by start, which keeps COOT's order for well-formed data). Per-video problems (invalid entry, `data_key` missing from the video
/// file, sentence count not the segment count, token counts not summing to the paragraph,
/// zero duration, non-finite features, feature widths unlike the other videos') skip that video
/// with its key and reason; the rest is imported. `progress(done, total)` is called per video.
/// Unreadable files are errors.
pub fn import_coot(
    paths: &CootPaths,
    max_frames: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Import, ProjectError> {
    if max_frames == 0 {
        return Err(ProjectError::file(
            &paths.meta,
            "max_frames is 0; clips need at least one frame",
        ));
    }
    let meta: BTreeMap<String, Value> = read_json_object(&paths.meta)?;
    let splits: BTreeMap<String, Value> = read_json_object(&paths.sentence_splits)?;
    let open = |path: &Path| {
        // Read-only, so HDF5's file lock protects nothing here, while it fails on the network
        // file systems of clusters and whenever another process inherited a writer's descriptor.
        let mut options = hdf5::File::with_options();
        options.fapl().file_locking(false);
        options.open(path).map_err(|source| ProjectError::Hdf5 {
            action: "open the HDF5 file".into(),
            path: path.to_path_buf(),
            source,
        })
    };
    let video_file = open(&paths.video_h5)?;
    let text_file = open(&paths.text_h5)?;

    let mut reader = Reader {
        paths,
        video_file: &video_file,
        text_file: &text_file,
        max_frames,
        video_dim: None,
        text_dim: None,
    };
    let mut by_split: BTreeMap<String, SplitFeatures> = BTreeMap::new();
    let mut manifest: BTreeMap<String, Vec<ManifestEntry>> = BTreeMap::new();
    let mut skipped = Vec::new();
    // Per split its entry names, how many videos were skipped: a split that lost them all is
    // reported as such (and a lost training split makes no project; see `Import::write`).
    let mut skipped_of_split: BTreeMap<String, usize> = BTreeMap::new();
    let total = meta.len();
    for (done, (key, entry)) in meta.iter().enumerate() {
        match reader.video(key, entry, splits.get(key)) {
            Ok(video) => {
                let features =
                    by_split
                        .entry(video.split.clone())
                        .or_insert_with(|| SplitFeatures {
                            split: video.split.clone(),
                            clip_keys: Vec::new(),
                            video_keys: Vec::new(),
                            video_of_clip: Vec::new(),
                            video: Sequences::new(video.video_dim),
                            text: Sequences::new(video.text_dim),
                        });
                let index = features.video_keys.len() as u32;
                features.video_keys.push(key.clone());
                let entries = manifest.entry(video.split.clone()).or_default();
                for clip in video.clips {
                    features.clip_keys.push(clip.entry.clip.clone());
                    features.video_of_clip.push(index);
                    features.video.push(&clip.frames);
                    features.text.push(&clip.tokens);
                    entries.push(clip.entry);
                }
            }
            Err(reason) => {
                if let Some(split) = entry.get("split").and_then(Value::as_str) {
                    *skipped_of_split.entry(split.to_string()).or_default() += 1;
                }
                skipped.push(Skipped {
                    item: format!("video {key}"),
                    reason,
                })
            }
        }
        progress(done + 1, total);
    }
    for (split, count) in skipped_of_split {
        if !by_split.contains_key(&split) {
            skipped.push(Skipped {
                item: format!("split {split}"),
                reason: format!("every video was skipped (all {count} of them)"),
            });
        }
    }

    let mut names: Vec<String> = by_split.keys().cloned().collect();
    sort_splits(&mut names);
    let mut import = Import {
        skipped,
        ..Import::default()
    };
    for name in names {
        let (Some(features), Some(entries)) = (by_split.remove(&name), manifest.remove(&name))
        else {
            continue;
        };
        features.validate().map_err(|(tensor, message)| {
            ProjectError::tensor(&paths.meta, tensor, format!("split `{name}`: {message}"))
        })?;
        import.splits.push(features);
        import.manifest.extend(entries);
    }
    if import.splits.is_empty() {
        return Err(ProjectError::file(
            &paths.meta,
            format!(
                "no video could be imported ({} of {total} skipped)",
                import.skipped.len()
            ),
        ));
    }
    Ok(import)
}

/// `meta_all.json` or `_sentence_splits.json`: a JSON object keyed by video.
pub(crate) fn read_json_object(path: &Path) -> Result<BTreeMap<String, Value>, ProjectError> {
    let text = std::fs::read_to_string(path).map_err(|e| ProjectError::io("read", path, e))?;
    serde_json::from_str(&text).map_err(|e| ProjectError::Line {
        path: path.to_path_buf(),
        line: e.line(),
        message: format!("expected a JSON object keyed by video: {e}"),
    })
}

/// One video's entry of `meta_all.json`, checked before any feature is read: a valid split
/// name, a positive finite duration, at least one segment, each with 0 ≤ start ≤ stop.
pub(crate) fn meta_video(entry: &Value) -> Result<MetaVideo, String> {
    let meta = MetaVideo::deserialize(entry)
        .map_err(|e| format!("not a valid meta_all.json entry: {e}"))?;
    if !is_valid_split_name(&meta.split) {
        return Err(format!(
            "split {:?} cannot be a split name (letters, digits, `_`, `-`, `.`)",
            meta.split
        ));
    }
    if !(meta.duration_sec.is_finite() && meta.duration_sec > 0.0) {
        return Err(format!(
            "duration_sec is {}; expected a positive duration",
            meta.duration_sec
        ));
    }
    if meta.segments.is_empty() {
        return Err("has no segments".into());
    }
    for (i, segment) in meta.segments.iter().enumerate() {
        let (start, stop) = (segment.start_sec, segment.stop_sec);
        if !(start.is_finite() && stop.is_finite() && start >= 0.0 && stop >= start) {
            return Err(format!(
                "segment {i} runs from {start} s to {stop} s; expected 0 ≤ start ≤ stop"
            ));
        }
    }
    Ok(meta)
}

struct Clip {
    start_sec: f64,
    entry: ManifestEntry,
    frames: Vec<f32>,
    tokens: Vec<f32>,
}

struct Video {
    split: String,
    video_dim: usize,
    text_dim: usize,
    clips: Vec<Clip>,
}

struct Reader<'a> {
    paths: &'a CootPaths,
    video_file: &'a hdf5::File,
    text_file: &'a hdf5::File,
    max_frames: usize,
    /// Widths set by the first imported video; later videos must match.
    video_dim: Option<usize>,
    text_dim: Option<usize>,
}

impl Reader<'_> {
    /// One video's clips, or why it cannot be imported.
    fn video(
        &mut self,
        key: &str,
        entry: &Value,
        sentences: Option<&Value>,
    ) -> Result<Video, String> {
        let meta = meta_video(entry)?;

        let (frames, video_dim, video) = read_matrix(
            self.video_file,
            &meta.data_key,
            &self.paths.video_h5,
            "data_key",
        )?;
        check_width(
            self.video_dim,
            video_dim,
            "frame features",
            &self.paths.video_h5,
        )?;
        let (tokens, text_dim, text) =
            read_matrix(self.text_file, key, &self.paths.text_h5, "key")?;
        check_width(
            self.text_dim,
            text_dim,
            "token features",
            &self.paths.text_h5,
        )?;

        let counts = sentence_counts(sentences, self.paths, meta.segments.len(), tokens)?;

        let mut clips = Vec::with_capacity(meta.segments.len());
        let mut token = 0;
        for (i, (segment, &count)) in meta.segments.iter().zip(&counts).enumerate() {
            let range = segment_frames(
                frames,
                meta.duration_sec,
                segment.start_sec,
                segment.stop_sec,
            );
            let mut clip_frames = Vec::with_capacity(range.len().min(self.max_frames) * video_dim);
            for frame in sample_frames(range, self.max_frames) {
                clip_frames.extend_from_slice(&video[frame * video_dim..(frame + 1) * video_dim]);
            }
            let clip_tokens = text[token * text_dim..(token + count) * text_dim].to_vec();
            token += count;
            clips.push(Clip {
                start_sec: segment.start_sec,
                entry: ManifestEntry {
                    clip: format!("{key}_{i}"),
                    video: key.to_string(),
                    split: meta.split.clone(),
                    start: Some(segment.start_sec),
                    end: Some(segment.stop_sec),
                    caption: Some(segment.text.clone()),
                    path: None,
                },
                frames: clip_frames,
                tokens: clip_tokens,
            });
        }
        // Only an imported video fixes the widths; a skipped one must not reject the rest.
        self.video_dim = Some(video_dim);
        self.text_dim = Some(text_dim);
        // The sentences were sliced in paragraph order above; the store keeps a video's clips in
        // temporal order, which the global (video-level) model relies on.
        clips.sort_by(|a, b| a.start_sec.total_cmp(&b.start_sec));
        Ok(Video {
            split: meta.split,
            video_dim,
            text_dim,
            clips,
        })
    }
}

/// A 2-D float dataset at the root of `file`: (rows, width, values as f32). Rows and width must be
/// positive and every value finite.
fn read_matrix(
    file: &hdf5::File,
    name: &str,
    path: &Path,
    what: &str,
) -> Result<(usize, usize, Vec<f32>), String> {
    if name.is_empty() || !file.link_exists(name) {
        return Err(format!("{what} `{name}` is not in {}", path.display()));
    }
    let dataset = file
        .dataset(name)
        .map_err(|e| format!("`{name}` in {} is not a dataset: {e}", path.display()))?;
    let shape = dataset.shape();
    let [rows, width] = shape[..] else {
        return Err(format!(
            "`{name}` in {} has shape {shape:?}; expected rows × features",
            path.display()
        ));
    };
    if rows == 0 || width == 0 {
        return Err(format!(
            "`{name}` in {} has shape {shape:?}; expected at least one row and column",
            path.display()
        ));
    }
    let values: Vec<f32> = dataset
        .read_raw()
        .map_err(|e| format!("cannot read `{name}` in {} as floats: {e}", path.display()))?;
    if let Some(index) = values.iter().position(|x| !x.is_finite()) {
        return Err(format!(
            "`{name}` in {} holds {} at row {}, column {}; expected finite features",
            path.display(),
            values[index],
            index / width,
            index % width
        ));
    }
    Ok((rows, width, values))
}

fn check_width(
    expected: Option<usize>,
    width: usize,
    what: &str,
    path: &Path,
) -> Result<(), String> {
    match expected {
        None => Ok(()),
        Some(w) if w == width => Ok(()),
        Some(w) => Err(format!(
            "{what} in {} are {width} wide, but earlier videos' are {w}",
            path.display()
        )),
    }
}

/// A video's token count per sentence from `_sentence_splits.json`: one per segment of its
/// `meta_all.json` entry (`segments`), none zero, summing to the rows of its paragraph in the
/// text file (`tokens`), so that slicing the paragraph by them stays inside it.
pub(crate) fn sentence_counts(
    entry: Option<&Value>,
    paths: &CootPaths,
    segments: usize,
    tokens: usize,
) -> Result<Vec<usize>, String> {
    let path = &paths.sentence_splits;
    let entry = entry.ok_or_else(|| format!("has no entry in {}", path.display()))?;
    let counts: Vec<u64> = Vec::deserialize(entry).map_err(|e| {
        format!(
            "its entry in {} is not a list of token counts: {e}",
            path.display()
        )
    })?;
    let counts = counts
        .into_iter()
        .map(|c| usize::try_from(c).map_err(|_| format!("token count {c} is too large")))
        .collect::<Result<Vec<usize>, String>>()?;
    if counts.len() != segments {
        return Err(format!(
            "{} has {} sentences but meta_all.json has {segments} segments",
            path.display(),
            counts.len(),
        ));
    }
    if let Some(i) = counts.iter().position(|&c| c == 0) {
        return Err(format!("sentence {i} has 0 tokens"));
    }
    // Checked: counts near 2⁶⁴ would wrap to the paragraph's length and then slice past it.
    match counts.iter().try_fold(0usize, |sum, &c| sum.checked_add(c)) {
        Some(sum) if sum == tokens => Ok(counts),
        Some(sum) => Err(format!(
            "sentence token counts sum to {sum} but the paragraph in {} has {tokens} tokens",
            paths.text_h5.display()
        )),
        None => Err(format!(
            "sentence token counts sum to more than {} but the paragraph in {} has {tokens} tokens",
            usize::MAX,
            paths.text_h5.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_frames_by_hand() {
        // 100 frames over 50 s: 2 fps. 10.2 s → frame 20.4, floored; 20.3 s → 40.6, ceiled to 41,
        // plus the two extra frames.
        assert_eq!(segment_frames(100, 50.0, 10.2, 20.3), 20..43);
        // A segment of zero length still gets the frames up to ceil + 2.
        assert_eq!(segment_frames(100, 50.0, 10.0, 10.0), 20..22);
        // At the end of the video the extra frames are cut at the last frame.
        assert_eq!(segment_frames(100, 50.0, 48.0, 50.0), 96..100);
        // Times past the end (annotation longer than the features) keep the last frame.
        assert_eq!(segment_frames(100, 50.0, 60.0, 70.0), 99..100);
        assert_eq!(segment_frames(100, 50.0, 49.99, 49.99), 99..100);
        // A single-frame video.
        assert_eq!(segment_frames(1, 3.0, 1.0, 2.0), 0..1);
        // Real YouCook2 timing (GLd3aX16zBg, 241.62 s, first segment 90–102 s) at 484 frames:
        // fps = 2.003145…, 90 s → 180.283 → 180, 102 s → 204.321 → 205 + 2.
        assert_eq!(segment_frames(484, 241.62, 90.0, 102.0), 180..207);
    }

    #[test]
    fn token_counts_whose_sum_overflows_are_an_error_not_a_panic() {
        let paths = CootPaths {
            meta: "meta_all.json".into(),
            video_h5: "video.h5".into(),
            text_h5: "text.h5".into(),
            sentence_splits: "splits.json".into(),
        };
        // Wrapped, the sum would be 12: the paragraph's length.
        let entry = serde_json::json!([u64::MAX, 13]);
        let error = sentence_counts(Some(&entry), &paths, 2, 12).unwrap_err();
        assert!(error.contains("sum to more than"), "{error}");
    }

    #[test]
    fn long_clips_are_sampled_evenly_to_max_frames() {
        assert_eq!(sample_frames(20..43, 80), (20..43).collect::<Vec<_>>());
        assert_eq!(sample_frames(0..80, 80), (0..80).collect::<Vec<_>>());
        // 81 frames into 80: k·80/79 skips exactly one frame, 79.
        let sampled = sample_frames(0..81, 80);
        assert_eq!(sampled.len(), 80);
        assert_eq!(&sampled[..3], &[0, 1, 2]);
        assert_eq!(&sampled[77..], &[77, 78, 80]);
        // 502 frames from 0 (100 s at 10 fps, 0–50 s): k·501/79.
        let sampled = sample_frames(0..502, 80);
        assert_eq!(sampled.len(), 80);
        assert_eq!(&sampled[..4], &[0, 6, 12, 19]);
        assert_eq!(sampled[40], 253);
        assert_eq!(sampled[79], 501);
        // Offsets carry through.
        assert_eq!(sample_frames(10..20, 3), vec![10, 14, 19]);
        assert_eq!(sample_frames(10..20, 1), vec![10]);
    }
}
