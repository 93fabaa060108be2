//! `crossclr ingest`: a project's videos and captions become its features.
//!
//! For every video of the manifest, the frames of each clip are sampled (media), encoded by the
//! visual encoder, the captions by the text encoder, and the video's result is staged as its own
//! small feature file under `cache/ingest/videos/`. Staging per video is what makes the job
//! resumable (a rerun skips staged videos), shardable (`--shard i/n` stages its share, on any
//! machine that sees the project) and robust (a bad video fails alone). When a run covers the
//! whole manifest, the staged files are merged into `features/{split}.safetensors` and the
//! encoders are recorded in `crossclr.toml`.
//!
//! Uses project, media, encode and jobs; DESIGN §3 places it between media/encode and training.

mod encoders;

pub use encoders::{ChosenEncoders, choose_encoders};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::encode::{EncodeError, TextEncoder, VisualEncoder};
use crate::hash::fnv1a;
use crate::jobs::{CancelToken, ProgressSender};
use crate::media::{
    BatchItem, Fit, FrameRequest, FrameSize, MediaError, SampleOptions, ThumbnailCache,
    ThumbnailRequest, clip_targets, clip_thumbnail_time, probe, sample_batch,
};
use crate::project::config::EncoderSpec;
use crate::project::{
    LineProblem, ManifestEntry, Project, ProjectError, Sequences, SplitFeatures, write_atomic,
};

/// The part of the videos one run takes: video i (in key order) belongs to shard i mod count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;

    /// `i/n` with 0 ≤ i < n.
    fn from_str(text: &str) -> Result<Self, String> {
        let parsed = text
            .split_once('/')
            .and_then(|(i, n)| Some((i.trim().parse().ok()?, n.trim().parse().ok()?)));
        match parsed {
            Some((index, count)) if count > 0 && index < count => Ok(Self { index, count }),
            _ => Err(format!(
                "`{text}` is not a shard; expected i/n with 0 ≤ i < n, e.g. 0/4"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct IngestOptions {
    /// Frames sampled evenly from each clip: 1 to [`MAX_FRAMES_PER_CLIP`].
    pub frames_per_clip: usize,
    /// Only this share of the videos, and no merge.
    pub shard: Option<Shard>,
    /// Decoding threads (0: one per core).
    pub workers: usize,
    /// Also cache a thumbnail at the middle of each clip.
    pub thumbnails: bool,
    /// Forget what earlier runs staged.
    pub restart: bool,
}

/// The most frames [`ingest`] samples from one clip. Every frame becomes a stored feature row
/// (features grow with clips × frames), and the heads attend over at most `model.max_frames`
/// of a clip's frames (80 by default), so more would be stored only to be sampled down again.
pub const MAX_FRAMES_PER_CLIP: usize = 256;

impl Default for IngestOptions {
    fn default() -> Self {
        Self {
            frames_per_clip: 8,
            shard: None,
            workers: 0,
            thumbnails: true,
            restart: false,
        }
    }
}

/// Reported after each video.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestProgress {
    pub done: usize,
    pub total: usize,
    pub video: String,
    pub error: Option<String>,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IngestReport {
    /// Videos in this run's share.
    pub videos: usize,
    /// Staged by this run.
    pub encoded: usize,
    /// Staged by an earlier run and kept.
    pub reused: usize,
    /// Videos that could not be used, with the reason.
    pub failed: Vec<(String, String)>,
    /// Lines of `manifest.jsonl` that were skipped (not JSON, not an entry, a clip key seen
    /// before), with their line numbers: their clips are not ingested.
    pub manifest_problems: Vec<LineProblem>,
    pub cancelled: bool,
    /// Thumbnails written by this run (reused ones not counted).
    pub thumbnails: usize,
    /// Per split, the clips and videos written, when the run merged.
    pub merged: Option<Vec<(String, usize, usize)>>,
    /// Videos of the manifest with nothing staged at merge time (failed here or elsewhere).
    pub missing: Vec<String>,
    /// Seconds spent.
    pub seconds: f64,
}

#[derive(Debug, Error)]
pub enum IngestError {
    #[error(transparent)]
    Project(#[from] ProjectError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error(
        "{}: the manifest lists no clips to ingest{}",
        path.display(),
        skipped_lines(problems)
    )]
    EmptyManifest {
        path: PathBuf,
        problems: Vec<LineProblem>,
    },
    #[error(
        "{}: staged by an earlier run with {earlier}, but this run uses {now}; run with --restart to re-encode everything",
        path.display()
    )]
    StagedWithOther {
        path: PathBuf,
        earlier: String,
        now: String,
    },
    #[error("clip `{clip}` of video `{video}` has no video file in the manifest")]
    NoVideoFile { clip: String, video: String },
    #[error("no video could be ingested; the first failure: {first}")]
    NothingIngested { first: String },
    #[error(
        "{given} frames per clip: expected 1 to {MAX_FRAMES_PER_CLIP} (every frame is a stored \
         feature row, and the heads attend over at most model.max_frames of a clip's frames, 80 \
         by default)"
    )]
    FramesPerClip { given: usize },
}

/// ` (N lines skipped; the first: line L: reason)`, or nothing.
fn skipped_lines(problems: &[LineProblem]) -> String {
    match problems.first() {
        None => String::new(),
        Some(first) => format!("; {} lines skipped, the first: {first}", problems.len()),
    }
}

/// What staged files were made with; a rerun with other encoders must not mix with them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Stamp {
    video_encoder: String,
    video_dim: usize,
    text_encoder: String,
    text_dim: usize,
    frames_per_clip: usize,
}

impl std::fmt::Display for Stamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "video encoder {} ({}-d), text encoder {} ({}-d), {} frames per clip",
            self.video_encoder,
            self.video_dim,
            self.text_encoder,
            self.text_dim,
            self.frames_per_clip
        )
    }
}

/// One video and its clips, in manifest order.
#[derive(Debug)]
struct VideoJob<'a> {
    key: String,
    split: String,
    path: PathBuf,
    clips: Vec<&'a ManifestEntry>,
}

pub fn staging_dir(project: &Project) -> PathBuf {
    project.cache_dir().join("ingest")
}

/// A file name for a video key: readable where the key allows, unique always (keys may hold
/// path separators or characters a file system refuses).
fn staged_name(key: &str) -> String {
    let readable: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(60)
        .collect();
    format!("{readable}-{:016x}.safetensors", fnv1a(key.as_bytes()))
}

/// Ingests the project's videos (or one shard of them) and, for a whole run, merges.
pub fn ingest(
    project: &mut Project,
    visual: &dyn VisualEncoder,
    text: &dyn TextEncoder,
    options: &IngestOptions,
    cancel: &CancelToken,
    progress: Option<&ProgressSender<IngestProgress>>,
) -> Result<IngestReport, IngestError> {
    let started = std::time::Instant::now();
    if !(1..=MAX_FRAMES_PER_CLIP).contains(&options.frames_per_clip) {
        return Err(IngestError::FramesPerClip {
            given: options.frames_per_clip,
        });
    }
    let manifest = project.read_manifest()?;
    if manifest.entries.is_empty() {
        return Err(IngestError::EmptyManifest {
            path: manifest.path,
            problems: manifest.problems,
        });
    }
    let jobs = video_jobs(project, &manifest.entries)?;
    let staging = staging_dir(project);
    let videos_dir = staging.join("videos");
    if options.restart && staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|source| ProjectError::Io {
            action: "remove",
            path: staging.clone(),
            source,
        })?;
    }
    std::fs::create_dir_all(&videos_dir).map_err(|source| ProjectError::Io {
        action: "create",
        path: videos_dir.clone(),
        source,
    })?;
    let stamp = Stamp {
        video_encoder: visual.name().to_string(),
        video_dim: visual.dim(),
        text_encoder: text.name().to_string(),
        text_dim: text.dim(),
        frames_per_clip: options.frames_per_clip,
    };
    check_stamp(&staging.join("encoders.json"), &stamp)?;

    let share: Vec<&VideoJob> = jobs
        .iter()
        .enumerate()
        .filter(|(i, _)| options.shard.is_none_or(|s| i % s.count == s.index))
        .map(|(_, job)| job)
        .collect();
    let mut report = IngestReport {
        videos: share.len(),
        manifest_problems: manifest.problems.clone(),
        ..IngestReport::default()
    };
    let todo: Vec<&VideoJob> = share
        .iter()
        .copied()
        .filter(|job| !videos_dir.join(staged_name(&job.key)).is_file())
        .collect();
    report.reused = share.len() - todo.len();

    // Clips without times cover their whole video, whose length only the file knows.
    let mut items = Vec::with_capacity(todo.len());
    let mut targets_of = Vec::with_capacity(todo.len());
    let mut runnable = Vec::with_capacity(todo.len());
    for job in &todo {
        match clip_times(job, stamp.frames_per_clip) {
            Ok(targets) => {
                items.push(BatchItem {
                    path: job.path.clone(),
                    request: FrameRequest::Times(targets.concat()),
                });
                targets_of.push(targets);
                runnable.push(*job);
            }
            Err(reason) => report.failed.push((job.key.clone(), reason)),
        }
    }
    let input = visual.input_size();
    let sample_options = SampleOptions {
        size: Some(FrameSize::new(input.width, input.height, Fit::Crop)),
        decoder_threads: 1,
    };
    let total = runnable.len();
    let mut done = 0;
    let summary = sample_batch(
        &items,
        &sample_options,
        options.workers,
        cancel,
        None,
        |index, sampled| {
            let job = runnable[index];
            let outcome = stage_video(
                job,
                &sampled.frames,
                &targets_of[index],
                visual,
                text,
                &videos_dir.join(staged_name(&job.key)),
            );
            done += 1;
            let error = outcome.err().map(|e| e.to_string());
            match &error {
                None => report.encoded += 1,
                Some(reason) => report.failed.push((job.key.clone(), reason.clone())),
            }
            if let Some(progress) = progress {
                progress.send(IngestProgress {
                    done,
                    total,
                    video: job.key.clone(),
                    error,
                });
            }
        },
    );
    for failure in &summary.failed {
        let key = runnable[failure.index].key.clone();
        if let Some(progress) = progress {
            done += 1;
            progress.send(IngestProgress {
                done,
                total,
                video: key.clone(),
                error: Some(failure.error.to_string()),
            });
        }
        report.failed.push((key, failure.error.to_string()));
    }
    report.cancelled = summary.cancelled || cancel.is_cancelled();
    if report.cancelled {
        report.seconds = started.elapsed().as_secs_f64();
        return Ok(report);
    }

    if options.thumbnails {
        report.thumbnails = thumbnails(project, &share, options.workers, cancel);
    }
    if options.shard.is_none() {
        merge(project, &jobs, &videos_dir, &stamp, &mut report)?;
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// The manifest's clips grouped by video, videos in key order.
fn video_jobs<'a>(
    project: &Project,
    entries: &'a [ManifestEntry],
) -> Result<Vec<VideoJob<'a>>, IngestError> {
    let mut by_video: BTreeMap<&str, VideoJob<'a>> = BTreeMap::new();
    for entry in entries {
        let path = project
            .video_path(entry)
            .ok_or_else(|| IngestError::NoVideoFile {
                clip: entry.clip.clone(),
                video: entry.video.clone(),
            })?;
        by_video
            .entry(entry.video.as_str())
            .or_insert_with(|| VideoJob {
                key: entry.video.clone(),
                split: entry.split.clone(),
                path,
                clips: Vec::new(),
            })
            .clips
            .push(entry);
    }
    Ok(by_video.into_values().collect())
}

/// The sample times of each clip; clips without times span the whole video.
fn clip_times(job: &VideoJob, frames: usize) -> Result<Vec<Vec<f64>>, String> {
    let mut duration = None;
    job.clips
        .iter()
        .map(|clip| {
            let (start, end) = match (clip.start, clip.end) {
                (Some(start), Some(end)) => (start, end),
                (start, end) => {
                    let length = match duration {
                        Some(length) => length,
                        None => {
                            let info = probe(&job.path).map_err(|e: MediaError| e.to_string())?;
                            let length = info.duration_s.ok_or_else(|| {
                                format!(
                                    "{}: the clip `{}` has no end time and the file states no duration",
                                    job.path.display(),
                                    clip.clip
                                )
                            })?;
                            duration = Some(length);
                            length
                        }
                    };
                    (start.unwrap_or(0.0), end.unwrap_or(length))
                }
            };
            Ok(clip_targets(start, end, frames))
        })
        .collect()
}

fn check_stamp(path: &Path, stamp: &Stamp) -> Result<(), IngestError> {
    if let Ok(bytes) = std::fs::read(path) {
        match serde_json::from_slice::<Stamp>(&bytes) {
            Ok(earlier) if earlier == *stamp => return Ok(()),
            Ok(earlier) => {
                return Err(IngestError::StagedWithOther {
                    path: path.to_path_buf(),
                    earlier: earlier.to_string(),
                    now: stamp.to_string(),
                });
            }
            // An unreadable stamp vouches for nothing: start over below.
            Err(_) => {
                if let Some(dir) = path.parent() {
                    let _ = std::fs::remove_dir_all(dir.join("videos"));
                    let _ = std::fs::create_dir_all(dir.join("videos"));
                }
            }
        }
    }
    let json = serde_json::to_vec_pretty(stamp).expect("a stamp serialises");
    write_atomic(path, &json)?;
    Ok(())
}

/// Encodes one video's clips and writes its staged features.
fn stage_video(
    job: &VideoJob,
    frames: &[crate::media::RgbFrame],
    targets: &[Vec<f64>],
    visual: &dyn VisualEncoder,
    text: &dyn TextEncoder,
    path: &Path,
) -> Result<(), IngestError> {
    let mut video = Sequences::new(visual.dim());
    let mut offset = 0;
    for clip_targets in targets {
        let clip_frames = &frames[offset..offset + clip_targets.len()];
        offset += clip_targets.len();
        video.push(&visual.encode(clip_frames)?);
    }
    let captions: Vec<&str> = job
        .clips
        .iter()
        .map(|clip| clip.caption.as_deref().unwrap_or(""))
        .collect();
    let encoded = text.encode(&captions)?;
    let features = SplitFeatures {
        split: job.split.clone(),
        clip_keys: job.clips.iter().map(|clip| clip.clip.clone()).collect(),
        video_keys: vec![job.key.clone()],
        video_of_clip: vec![0; job.clips.len()],
        video,
        text: encoded.tokens,
    };
    features.save(path)?;
    Ok(())
}

/// One thumbnail at the middle of each clip; returns how many were written.
fn thumbnails(
    project: &Project,
    share: &[&VideoJob],
    workers: usize,
    cancel: &CancelToken,
) -> usize {
    let cache = ThumbnailCache::for_project(project.dir());
    let requests: Vec<ThumbnailRequest> = share
        .iter()
        .map(|job| ThumbnailRequest {
            video_id: job.key.clone(),
            path: job.path.clone(),
            times: job
                .clips
                .iter()
                .map(|clip| clip_thumbnail_time(clip.start, clip.end))
                .collect(),
        })
        .collect();
    let mut created = 0;
    cache.thumbnails_batch(&requests, workers, cancel, None, |_, thumbs| {
        created += thumbs.created;
    });
    created
}

/// Gathers every staged video into per-split feature files and records the encoders.
fn merge(
    project: &mut Project,
    jobs: &[VideoJob],
    videos_dir: &Path,
    stamp: &Stamp,
    report: &mut IngestReport,
) -> Result<(), IngestError> {
    let mut splits: BTreeMap<String, SplitFeatures> = BTreeMap::new();
    for job in jobs {
        let path = videos_dir.join(staged_name(&job.key));
        if !path.is_file() {
            report.missing.push(job.key.clone());
            continue;
        }
        let staged = SplitFeatures::load(&path)?;
        let split = splits
            .entry(job.split.clone())
            .or_insert_with(|| SplitFeatures {
                split: job.split.clone(),
                clip_keys: Vec::new(),
                video_keys: Vec::new(),
                video_of_clip: Vec::new(),
                video: Sequences::new(stamp.video_dim),
                text: Sequences::new(stamp.text_dim),
            });
        let video_index = split.video_keys.len() as u32;
        split.video_keys.push(job.key.clone());
        for clip in 0..staged.num_clips() {
            split.clip_keys.push(staged.clip_keys[clip].clone());
            split.video_of_clip.push(video_index);
            split.video.push(staged.video.get(clip));
            split.text.push(staged.text.get(clip));
        }
    }
    if splits.is_empty() {
        let first = report
            .failed
            .first()
            .map(|(video, reason)| format!("{video}: {reason}"))
            .unwrap_or_else(|| "none reported".into());
        return Err(IngestError::NothingIngested { first });
    }
    let mut merged = Vec::new();
    for features in splits.values() {
        project.save_split(features)?;
        merged.push((
            features.split.clone(),
            features.num_clips(),
            features.num_videos(),
        ));
    }
    let mut config = project.config().clone();
    config.encoders.video = Some(EncoderSpec {
        name: stamp.video_encoder.clone(),
        dim: stamp.video_dim,
    });
    config.encoders.text = Some(EncoderSpec {
        name: stamp.text_encoder.clone(),
        dim: stamp.text_dim,
    });
    project.set_config(config)?;
    report.merged = Some(merged);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_refuse_nonsense() {
        assert_eq!("1/4".parse::<Shard>(), Ok(Shard { index: 1, count: 4 }));
        for bad in ["4/4", "1/0", "x/2", "3", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    /// A project of one 2-second video with two captioned clips, made as `new --videos` does.
    fn one_video_project(dir: &Path) -> Project {
        use crate::media::{RgbFrame, write_video};
        use crate::project::config::ProjectConfig;
        use crate::project::videos::{SplitFractions, import_videos};
        let videos = dir.join("videos");
        std::fs::create_dir_all(&videos).unwrap();
        let frames = (0..20).map(|i| RgbFrame {
            width: 32,
            height: 32,
            pixels: vec![(i * 12) as u8; 32 * 32 * 3],
            seconds: i as f64 / 10.0,
        });
        write_video(&videos.join("a.mp4"), 32, 32, 10.0, frames).unwrap();
        let captions = dir.join("captions.csv");
        std::fs::write(
            &captions,
            "video,caption,start,end\na,the first clip,0,1\na,the second clip,1,2\n",
        )
        .unwrap();
        let fractions = SplitFractions {
            seed: 0,
            val: 0.0,
            test: 0.0,
        };
        let import = import_videos(&videos, &captions, fractions).unwrap();
        let mut config = ProjectConfig::default();
        import.configure(&mut config, &videos, &captions);
        import.write(&dir.join("project"), config).unwrap()
    }

    #[test]
    fn bad_manifest_lines_are_reported_with_their_lines_and_the_rest_is_ingested() {
        let dir = tempfile::tempdir().unwrap();
        let mut project = one_video_project(dir.path());
        let manifest = project.manifest_path();
        let text = std::fs::read_to_string(&manifest).unwrap();
        let first = text.lines().next().unwrap().to_string();
        std::fs::write(&manifest, format!("{text}not json\n{first}\n")).unwrap();
        let visual = crate::encode::DescriptorVisualEncoder::new();
        let words = crate::encode::HashedTextEncoder::new(16);
        let options = IngestOptions {
            workers: 1,
            thumbnails: false,
            ..IngestOptions::default()
        };
        let cancel = CancelToken::new();
        let report = ingest(&mut project, &visual, &words, &options, &cancel, None).unwrap();
        assert_eq!(report.encoded, 1, "{report:?}");
        let lines: Vec<usize> = report.manifest_problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [3, 4], "{report:?}");
        assert!(
            report.manifest_problems[1]
                .reason
                .contains("already appears on line 1"),
            "{report:?}"
        );
        let train = project.load_split("train").unwrap();
        assert_eq!(train.num_clips(), 2);

        // A manifest of bad lines only is refused, naming them.
        std::fs::write(&manifest, "{\"clip\": 1}\n").unwrap();
        let error = ingest(&mut project, &visual, &words, &options, &cancel, None).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("no clips to ingest") && message.contains("line 1:"),
            "{message}"
        );
    }

    #[test]
    fn two_identical_ingests_write_byte_identical_feature_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut project = one_video_project(dir.path());
        let visual = crate::encode::DescriptorVisualEncoder::new();
        let words = crate::encode::HashedTextEncoder::new(16);
        let options = IngestOptions {
            workers: 1,
            thumbnails: false,
            restart: true,
            ..IngestOptions::default()
        };
        let cancel = CancelToken::new();
        let features = project.features_dir().join("train.safetensors");
        let mut written = Vec::new();
        for _ in 0..3 {
            ingest(&mut project, &visual, &words, &options, &cancel, None).unwrap();
            written.push(std::fs::read(&features).unwrap());
        }
        assert!(written[1] == written[0] && written[2] == written[0]);
    }

    #[test]
    fn frames_per_clip_outside_1_to_the_maximum_is_refused_before_anything_is_done() {
        let dir = tempfile::tempdir().unwrap();
        let mut project = one_video_project(dir.path());
        let visual = crate::encode::DescriptorVisualEncoder::new();
        let words = crate::encode::HashedTextEncoder::new(16);
        let cancel = CancelToken::new();
        for frames in [0, MAX_FRAMES_PER_CLIP + 1, 100_000] {
            let options = IngestOptions {
                frames_per_clip: frames,
                workers: 1,
                thumbnails: false,
                ..IngestOptions::default()
            };
            let error = ingest(&mut project, &visual, &words, &options, &cancel, None).unwrap_err();
            assert!(
                matches!(error, IngestError::FramesPerClip { given } if given == frames),
                "{error}"
            );
            assert!(error.to_string().contains("expected 1 to 256"), "{error}");
        }
        assert!(!staging_dir(&project).exists(), "nothing was staged");
        let options = IngestOptions {
            frames_per_clip: MAX_FRAMES_PER_CLIP,
            workers: 1,
            thumbnails: false,
            ..IngestOptions::default()
        };
        let report = ingest(&mut project, &visual, &words, &options, &cancel, None).unwrap();
        assert_eq!(report.encoded, 1);
    }

    #[test]
    fn staged_names_are_safe_and_distinct() {
        let a = staged_name("recipes/GLd3aX16zBg");
        let b = staged_name("recipes_GLd3aX16zBg");
        assert_ne!(a, b);
        assert!(!a.contains('/'));
        assert!(a.starts_with("recipes_GLd3aX16zBg-"));
    }
}
