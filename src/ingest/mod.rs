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
//! Next to each staged file, a record (`<name>.json`) says what it was made from: the video
//! file's size and a hash of its first and last 64 KiB, and a hash of the video's clips as the
//! manifest gives them (keys, times, captions). A rerun reuses a staged video only when both
//! still match; otherwise (the file was replaced, a clip edited) the video is encoded again and
//! its cached thumbnails are dropped. The record is written after the features, so a run killed
//! between the two leaves a staged file without a record, which is encoded again.
//!
//! Clip times are checked against the duration the file states: a clip starting at or after
//! the end of its video is skipped, and one ending after it is cut to it — both reported, with
//! a slack of [`END_SLACK_S`] for rounded ends that is cut without a word. A clip never gets
//! more frames than it holds (its length × the stream's frame rate, at least 1), whatever
//! `frames_per_clip` asks for.
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
use crate::jobs::{CancelToken, ProgressSender, relay};
use crate::media::{
    BatchProgress, Fit, FrameSize, SampleOptions, ThumbnailCache, ThumbnailRequest, clip_targets,
    clip_thumbnail_time, decode_batch, probe,
};
use crate::project::config::EncoderSpec;
use crate::project::{
    LineProblem, ManifestEntry, Project, ProjectError, STALE_TEMPORARY_AGE, Sequences,
    SplitFeatures, remove_stale_temporaries, write_atomic,
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
    /// Frames sampled evenly from each clip: 1 to [`MAX_FRAMES_PER_CLIP`], and no more than the
    /// clip holds (see [`IngestReport::frames_capped`]).
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

/// The stages of an ingest, in the order they finish: a video's frames are decoded on the pool
/// while earlier videos are encoded, the staged videos are merged into the feature files, and the
/// thumbnails are cached last (so a project can be shown while they are made).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IngestStage {
    Frames,
    Features,
    Merge,
    Thumbnails,
}

impl IngestStage {
    pub const ALL: [IngestStage; 4] = [
        IngestStage::Frames,
        IngestStage::Features,
        IngestStage::Merge,
        IngestStage::Thumbnails,
    ];

    pub fn name(self) -> &'static str {
        match self {
            IngestStage::Frames => "frames",
            IngestStage::Features => "features",
            IngestStage::Merge => "merge",
            IngestStage::Thumbnails => "thumbnails",
        }
    }
}

/// Reported after each video of a stage (the merge: once, when done).
#[derive(Debug, Clone, PartialEq)]
pub struct IngestProgress {
    pub stage: IngestStage,
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
    /// before, a video path leaving the video folder), with their line numbers: their clips are
    /// not ingested.
    pub manifest_problems: Vec<LineProblem>,
    /// Clips whose times do not fit their video: skipped, or cut to the video's end. Reported
    /// on every run (reused videos too), in video order.
    pub clip_notes: Vec<ClipNote>,
    /// Clips that hold fewer frames than `frames_per_clip` asks for, and so got one per frame
    /// they hold (their length × the frame rate).
    pub frames_capped: usize,
    pub cancelled: bool,
    /// Thumbnails written by this run (reused ones not counted).
    pub thumbnails: usize,
    /// Temporary files left by an earlier run that was killed mid-write, removed now (see
    /// [`crate::project::remove_stale_temporaries`]).
    pub temporaries_removed: usize,
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

/// A clip whose times do not fit its video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipNote {
    pub video: String,
    pub clip: String,
    /// Left out of the features (`true`), or kept with its end cut to the video's (`false`).
    pub skipped: bool,
    pub reason: String,
}

impl std::fmt::Display for ClipNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = if self.skipped { "skipped" } else { "cut" };
        write!(
            f,
            "clip `{}` of `{}` {what}: {}",
            self.clip, self.video, self.reason
        )
    }
}

/// How far a clip's end may pass the duration its file states and be cut to it without a
/// note: container durations and annotation times are both rounded.
pub const END_SLACK_S: f64 = 0.25;

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
    // What a killed run left half-written: never read, and removed once surely abandoned.
    let temporaries_removed = [staging.clone(), videos_dir.clone(), project.features_dir()]
        .iter()
        .map(|dir| remove_stale_temporaries(dir, STALE_TEMPORARY_AGE))
        .sum::<usize>()
        + ThumbnailCache::for_project(project.dir()).remove_stale_temporaries();
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
        temporaries_removed,
        ..IngestReport::default()
    };
    let thumbs = ThumbnailCache::for_project(project.dir());
    let mut todo = Vec::with_capacity(share.len());
    for &job in &share {
        let staged = videos_dir.join(staged_name(&job.key));
        let record_path = record_path(&staged);
        let clips = clips_hash(job);
        let earlier = read_record(&record_path);
        if let Some(record) = &earlier
            && staged.is_file()
            && record.clips == clips
            && SourceFile::of(&job.path).is_ok_and(|source| source == record.source)
        {
            report.reused += 1;
            report.clip_notes.extend(record.notes.iter().cloned());
            report.frames_capped += record.frames_capped;
            continue;
        }
        // Whatever was staged for this video is stale (or half-written): it goes first, so a
        // failure below leaves nothing old behind for the merge to take.
        if let Err(reason) =
            remove_if_present(&staged).and_then(|()| remove_if_present(&record_path))
        {
            report.failed.push((job.key.clone(), reason));
            continue;
        }
        if earlier.is_some_and(|record| record.clips == clips) {
            // The same clips of another file: its cached thumbnails show the old one.
            thumbs.forget(&job.key);
        }
        todo.push(job);
    }

    // The file's duration and frame rate decide what each clip can give.
    let mut paths = Vec::with_capacity(todo.len());
    let mut plans = Vec::with_capacity(todo.len());
    let mut runnable = Vec::with_capacity(todo.len());
    for job in &todo {
        match plan_video(job, stamp.frames_per_clip) {
            Ok(plan) => {
                paths.push(job.path.clone());
                plans.push(plan);
                runnable.push(*job);
            }
            Err(reason) => report.failed.push((job.key.clone(), reason)),
        }
    }
    let input = visual.input_size();
    let size = Some(FrameSize::new(input.width, input.height, Fit::Crop));
    let sample_options = SampleOptions {
        size,
        decoder_threads: 1,
    };
    // Each clip is encoded on the decoding thread as soon as its frames are there: memory holds
    // one clip's frames per worker, not a whole video's (a 2-hour video's 720 clips of 8 frames
    // at CLIP's 224×224 would be 0.85 GB). An encoder's failure is the video's, not the pool's.
    let encode_clips = |index: usize,
                        decoder: &mut crate::media::VideoDecoder|
     -> Result<Result<Sequences, EncodeError>, crate::media::MediaError> {
        let mut video = Sequences::new(visual.dim());
        for clip_targets in &plans[index].targets {
            let frames = decoder.frames_at(clip_targets, size, cancel)?;
            match visual.encode(&frames) {
                Ok(features) => video.push(&features),
                Err(error) => return Ok(Err(error)),
            }
        }
        Ok(Ok(video))
    };
    let total = runnable.len();
    let mut done = 0;
    let key_of = |index: usize| runnable[index].key.clone();
    let summary = relay_stage(progress, IngestStage::Frames, key_of, |frames| {
        decode_batch(
            &paths,
            &sample_options,
            options.workers,
            cancel,
            frames,
            encode_clips,
            |index, video| {
                let job = runnable[index];
                let plan = &plans[index];
                let outcome = video.map_err(IngestError::from).and_then(|video| {
                    stage_video(
                        job,
                        video,
                        plan,
                        text,
                        &videos_dir.join(staged_name(&job.key)),
                    )
                });
                done += 1;
                let error = outcome.err().map(|e| e.to_string());
                match &error {
                    None => {
                        report.encoded += 1;
                        report.clip_notes.extend(plan.notes.iter().cloned());
                        report.frames_capped += plan.frames_capped;
                    }
                    Some(reason) => report.failed.push((job.key.clone(), reason.clone())),
                }
                if let Some(progress) = progress {
                    progress.send(IngestProgress {
                        stage: IngestStage::Features,
                        done,
                        total,
                        video: job.key.clone(),
                        error,
                    });
                }
            },
        )
    });
    for failure in &summary.failed {
        let key = runnable[failure.index].key.clone();
        if let Some(progress) = progress {
            done += 1;
            progress.send(IngestProgress {
                stage: IngestStage::Features,
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

    if options.shard.is_none() {
        merge(project, &jobs, &videos_dir, &stamp, &mut report)?;
        if let Some(progress) = progress {
            progress.send_important(IngestProgress {
                stage: IngestStage::Merge,
                done: 1,
                total: 1,
                video: String::new(),
                error: None,
            });
        }
    }
    if options.thumbnails {
        report.thumbnails = thumbnails(project, &share, options.workers, cancel, progress);
        report.cancelled = cancel.is_cancelled();
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

/// What a staged video was made from, recorded next to its features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StagedRecord {
    source: SourceFile,
    /// [`clips_hash`] of the video's clips when it was staged.
    clips: String,
    /// Its clips that did not fit the video, reported again when it is reused.
    notes: Vec<ClipNote>,
    frames_capped: usize,
}

/// A video file as far as staleness goes: its size and a hash of its two ends. Replacing a
/// video by another (a re-encode, another cut) changes its size or its container header and
/// index, which sit at the ends; copying it elsewhere, or touching it, does not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SourceFile {
    size: u64,
    /// FNV-1a of the first and last [`SourceFile::END_BYTES`] bytes, in hex.
    ends: String,
}

impl SourceFile {
    const END_BYTES: u64 = 64 * 1024;

    fn of(path: &Path) -> Result<Self, String> {
        use std::io::{Read, Seek, SeekFrom};
        let read = || -> std::io::Result<Self> {
            let mut file = std::fs::File::open(path)?;
            let size = file.metadata()?.len();
            let mut bytes = Vec::with_capacity(2 * Self::END_BYTES as usize);
            (&mut file).take(Self::END_BYTES).read_to_end(&mut bytes)?;
            if size > Self::END_BYTES {
                file.seek(SeekFrom::Start(
                    size.saturating_sub(Self::END_BYTES).max(Self::END_BYTES),
                ))?;
                file.take(Self::END_BYTES).read_to_end(&mut bytes)?;
            }
            Ok(Self {
                size,
                ends: format!("{:016x}", fnv1a(&bytes)),
            })
        };
        read().map_err(|e| format!("cannot read {}: {e}", path.display()))
    }
}

/// A hash of what the manifest says about a video's clips: keys, times and captions in order.
fn clips_hash(job: &VideoJob) -> String {
    let clips: Vec<_> = job
        .clips
        .iter()
        .map(|clip| (&clip.clip, clip.start, clip.end, &clip.caption))
        .collect();
    let json = serde_json::to_vec(&(&job.split, clips)).expect("clips serialise");
    format!("{:016x}", fnv1a(&json))
}

/// `videos/<name>.json` next to `videos/<name>.safetensors`.
fn record_path(staged: &Path) -> PathBuf {
    staged.with_extension("json")
}

/// The record of a staged video; a missing or unreadable one vouches for nothing.
fn read_record(path: &Path) -> Option<StagedRecord> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn remove_if_present(path: &Path) -> Result<(), String> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot remove the stale {}: {e}", path.display())),
    }
}

/// How one video's clips are sampled: the clips kept (indexes into the job's clips), each one's
/// sample times, and what did not fit.
#[derive(Debug)]
struct VideoPlan {
    source: SourceFile,
    kept: Vec<usize>,
    targets: Vec<Vec<f64>>,
    notes: Vec<ClipNote>,
    frames_capped: usize,
}

/// One clip's sample times, whether its end was cut (and why), and whether it got fewer
/// frames than asked for; or why it is skipped.
#[derive(Debug, Clone, PartialEq)]
struct ClipPlan {
    targets: Vec<f64>,
    cut: Option<String>,
    capped: bool,
}

/// Plans a clip of `frames` frames over `[start, end)` in a video of `duration` seconds at `fps`
/// (either unknown when the file does not say). Clips without times span the whole video.
fn plan_clip(
    start: Option<f64>,
    end: Option<f64>,
    duration: Option<f64>,
    fps: Option<f64>,
    frames: usize,
) -> Result<ClipPlan, String> {
    let start = start.unwrap_or(0.0);
    let mut end = match (end, duration) {
        (Some(end), _) => end,
        (None, Some(duration)) => duration,
        (None, None) => return Err("it has no end time and the file states no duration".into()),
    };
    let mut cut = None;
    if let Some(duration) = duration.filter(|d| d.is_finite() && *d > 0.0) {
        if start >= duration {
            return Err(format!(
                "it starts at {start} s, at or after the end of the video ({duration:.3} s)"
            ));
        }
        if end > duration {
            if end - duration > END_SLACK_S {
                cut = Some(format!(
                    "it ends at {end} s, after the end of the video ({duration:.3} s); cut to \
                     {start}–{duration:.3} s"
                ));
            }
            end = duration;
        }
    }
    let mut count = frames.max(1);
    let mut capped = false;
    if let Some(fps) = fps.filter(|f| f.is_finite() && *f > 0.0) {
        // The frames shown in [start, end): one per 1/fps, at least the one at `start`.
        let held = ((end - start) * fps - 1e-6).ceil().max(1.0);
        if count as f64 > held {
            count = held as usize;
            capped = true;
        }
    }
    Ok(ClipPlan {
        targets: clip_targets(start, end, count),
        cut,
        capped,
    })
}

/// Probes the video once and plans each of its clips; a video none of whose clips fits fails.
fn plan_video(job: &VideoJob, frames: usize) -> Result<VideoPlan, String> {
    // Taken before anything is read: a file that changes while it is decoded is redone next time.
    let source = SourceFile::of(&job.path)?;
    let info = probe(&job.path).map_err(|e| e.to_string())?;
    let duration = info
        .duration_s
        .or_else(|| info.video.as_ref().and_then(|v| v.duration_s));
    let fps = info.video.as_ref().and_then(|v| v.fps);
    let mut plan = VideoPlan {
        source,
        kept: Vec::new(),
        targets: Vec::new(),
        notes: Vec::new(),
        frames_capped: 0,
    };
    for (index, clip) in job.clips.iter().enumerate() {
        let note = |skipped: bool, reason: String| ClipNote {
            video: job.key.clone(),
            clip: clip.clip.clone(),
            skipped,
            reason,
        };
        match plan_clip(clip.start, clip.end, duration, fps, frames) {
            Ok(clip_plan) => {
                if let Some(reason) = clip_plan.cut {
                    plan.notes.push(note(false, reason));
                }
                plan.frames_capped += usize::from(clip_plan.capped);
                plan.kept.push(index);
                plan.targets.push(clip_plan.targets);
            }
            Err(reason) => plan.notes.push(note(true, reason)),
        }
    }
    if plan.kept.is_empty() {
        let first = plan
            .notes
            .first()
            .map_or(String::new(), |n| n.reason.clone());
        return Err(format!(
            "{}: none of its {} clips lies within the video (the first: {first})",
            job.path.display(),
            job.clips.len()
        ));
    }
    Ok(plan)
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

/// Encodes one video's kept clips and writes its staged features, then its record.
/// Writes one video's staged features: its clips' visual features, encoded as they were
/// decoded, and their captions' text features.
fn stage_video(
    job: &VideoJob,
    video: Sequences,
    plan: &VideoPlan,
    text: &dyn TextEncoder,
    path: &Path,
) -> Result<(), IngestError> {
    let clips: Vec<&ManifestEntry> = plan.kept.iter().map(|&i| job.clips[i]).collect();
    let captions: Vec<&str> = clips
        .iter()
        .map(|clip| clip.caption.as_deref().unwrap_or(""))
        .collect();
    let encoded = text.encode(&captions)?;
    let features = SplitFeatures {
        split: job.split.clone(),
        clip_keys: clips.iter().map(|clip| clip.clip.clone()).collect(),
        video_keys: vec![job.key.clone()],
        video_of_clip: vec![0; clips.len()],
        video,
        text: encoded.tokens,
    };
    features.save(path)?;
    let record = StagedRecord {
        source: plan.source.clone(),
        clips: clips_hash(job),
        notes: plan.notes.clone(),
        frames_capped: plan.frames_capped,
    };
    let json = serde_json::to_vec_pretty(&record).expect("a record serialises");
    write_atomic(&record_path(path), &json)?;
    Ok(())
}

/// One thumbnail at the middle of each clip; returns how many were written.
fn thumbnails(
    project: &Project,
    share: &[&VideoJob],
    workers: usize,
    cancel: &CancelToken,
    progress: Option<&ProgressSender<IngestProgress>>,
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
    let key_of = |index: usize| share[index].key.clone();
    relay_stage(
        progress,
        IngestStage::Thumbnails,
        key_of,
        |batch_progress| {
            cache.thumbnails_batch(&requests, workers, cancel, batch_progress, |_, thumbs| {
                created += thumbs.created;
            })
        },
    );
    created
}

/// Runs a batch of the media pool with its per-video progress passed on as `stage`'s.
fn relay_stage<R>(
    progress: Option<&ProgressSender<IngestProgress>>,
    stage: IngestStage,
    key_of: impl Fn(usize) -> String + Sync,
    work: impl FnOnce(Option<&ProgressSender<BatchProgress>>) -> R,
) -> R {
    match progress {
        None => work(None),
        Some(events) => relay(
            "crossclr-ingest-progress",
            events,
            |update: BatchProgress| IngestProgress {
                stage,
                done: update.done,
                total: update.total,
                video: key_of(update.index),
                error: update.error,
            },
            |sender| work(Some(sender)),
        ),
    }
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

    /// Writes `videos/a.mp4`: `frames` frames at 10 per second, grey levels from `shade` up.
    fn write_a(dir: &Path, frames: usize, shade: usize) {
        use crate::media::{RgbFrame, write_video};
        let videos = dir.join("videos");
        std::fs::create_dir_all(&videos).unwrap();
        let frames = (0..frames).map(|i| RgbFrame {
            width: 32,
            height: 32,
            pixels: vec![((shade + i * 12) % 256) as u8; 32 * 32 * 3],
            seconds: i as f64 / 10.0,
        });
        write_video(&videos.join("a.mp4"), 32, 32, 10.0, frames).unwrap();
    }

    /// A project of one 2-second video with two captioned clips, made as `new --videos` does.
    fn one_video_project(dir: &Path) -> Project {
        project_with_captions(
            dir,
            "video,caption,start,end\na,the first clip,0,1\na,the second clip,1,2\n",
        )
    }

    /// A project of the 2-second `a.mp4` (10 frames per second) and these captions.
    fn project_with_captions(dir: &Path, csv: &str) -> Project {
        project_of(dir, &[], csv)
    }

    /// Like [`project_with_captions`], with copies of `a.mp4` under the names `copies`.
    fn project_of(dir: &Path, copies: &[&str], csv: &str) -> Project {
        use crate::project::config::ProjectConfig;
        use crate::project::videos::{SplitFractions, import_videos};
        write_a(dir, 20, 0);
        let videos = dir.join("videos");
        for copy in copies {
            std::fs::copy(videos.join("a.mp4"), videos.join(format!("{copy}.mp4"))).unwrap();
        }
        let captions = dir.join("captions.csv");
        std::fs::write(&captions, csv).unwrap();
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

    fn quick_options() -> IngestOptions {
        IngestOptions {
            workers: 1,
            thumbnails: false,
            ..IngestOptions::default()
        }
    }

    fn run(project: &mut Project, options: &IngestOptions) -> IngestReport {
        let visual = crate::encode::DescriptorVisualEncoder::new();
        let words = crate::encode::HashedTextEncoder::new(16);
        ingest(project, &visual, &words, options, &CancelToken::new(), None).unwrap()
    }

    #[test]
    fn a_replaced_video_or_an_edited_clip_is_encoded_again_and_an_unchanged_one_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let mut project = one_video_project(dir.path());
        let options = IngestOptions {
            thumbnails: true,
            ..quick_options()
        };
        let first = run(&mut project, &options);
        assert_eq!((first.encoded, first.reused, first.thumbnails), (1, 0, 2));
        let before = project.load_split("train").unwrap();

        let again = run(&mut project, &options);
        assert_eq!((again.encoded, again.reused, again.thumbnails), (0, 1, 0));
        assert_eq!(project.load_split("train").unwrap(), before);

        // Another video under the same name: other content, other size.
        write_a(dir.path(), 30, 100);
        let replaced = run(&mut project, &options);
        assert_eq!((replaced.encoded, replaced.reused), (1, 0), "{replaced:?}");
        assert_eq!(replaced.thumbnails, 2, "the old thumbnails are dropped");
        let after = project.load_split("train").unwrap();
        assert_eq!(after.clip_keys, before.clip_keys);
        assert_ne!(after.video, before.video, "features of the new file");

        // A caption edited in the manifest.
        let manifest = project.manifest_path();
        let text = std::fs::read_to_string(&manifest).unwrap();
        std::fs::write(
            &manifest,
            text.replace("the first clip", "an edited caption"),
        )
        .unwrap();
        let edited = run(&mut project, &options);
        assert_eq!((edited.encoded, edited.reused), (1, 0), "{edited:?}");
        assert_ne!(project.load_split("train").unwrap().text, after.text);

        // A staged file without its record (killed between the two) vouches for nothing.
        let staged = staging_dir(&project).join("videos").join(staged_name("a"));
        std::fs::remove_file(record_path(&staged)).unwrap();
        let unrecorded = run(&mut project, &options);
        assert_eq!((unrecorded.encoded, unrecorded.reused), (1, 0));
        assert_eq!(run(&mut project, &options).reused, 1);
    }

    #[test]
    fn a_video_that_is_gone_leaves_no_stale_features_behind() {
        let dir = tempfile::tempdir().unwrap();
        let mut project = project_of(
            dir.path(),
            &["b"],
            "video,caption,start,end\na,one,0,1\nb,two,0,1\n",
        );
        let report = run(&mut project, &quick_options());
        assert_eq!(report.encoded, 2, "{report:?}");
        std::fs::remove_file(dir.path().join("videos/b.mp4")).unwrap();
        let report = run(&mut project, &quick_options());
        assert_eq!((report.encoded, report.reused), (0, 1), "{report:?}");
        assert_eq!(report.failed.len(), 1, "{report:?}");
        assert!(report.failed[0].1.contains("b.mp4"), "{report:?}");
        assert_eq!(report.missing, ["b"]);
        let features = project.load_split("train").unwrap();
        assert_eq!(features.video_keys, ["a"]);
    }

    #[test]
    fn clips_beyond_the_end_of_their_video_are_skipped_or_cut_and_reported_on_every_run() {
        let dir = tempfile::tempdir().unwrap();
        let mut project = project_with_captions(
            dir.path(),
            "video,caption,start,end\na,inside,0,1\na,far past the end,100,200\n\
             a,runs over the end,1,5\na,ends a little late,1.5,2.1\n",
        );
        let report = run(&mut project, &quick_options());
        assert_eq!(report.encoded, 1, "{report:?}");
        assert_eq!(
            report.clip_notes.len(),
            2,
            "a late end within the slack is cut silently: {report:?}"
        );
        let skipped = report.clip_notes.iter().find(|n| n.skipped).unwrap();
        let cut = report.clip_notes.iter().find(|n| !n.skipped).unwrap();
        assert!(
            skipped
                .reason
                .contains("starts at 100 s, at or after the end of the video (2.000 s)"),
            "{skipped:?}"
        );
        assert!(
            cut.reason.contains("ends at 5 s") && cut.reason.contains("cut to 1–2.000 s"),
            "{cut:?}"
        );
        let message = skipped.to_string();
        assert!(
            message.contains("of `a` skipped: it starts at 100 s"),
            "{message}"
        );

        let train = project.load_split("train").unwrap();
        assert_eq!(train.num_clips(), 3, "the clip past the end is left out");
        assert!(!train.clip_keys.contains(&skipped.clip));
        let kept = train.clip_keys.iter().position(|k| *k == cut.clip).unwrap();
        assert_eq!(
            train.video.rows(kept),
            8,
            "1 s of the cut clip holds 10 frames"
        );

        let rerun = run(&mut project, &quick_options());
        assert_eq!(rerun.reused, 1);
        assert_eq!(rerun.clip_notes, report.clip_notes, "reported again");
    }

    #[test]
    fn a_video_whose_clips_all_lie_past_its_end_fails_alone_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let mut project = project_of(
            dir.path(),
            &["b"],
            "video,caption,start,end\na,late,100,200\nb,fine,0,1\n",
        );
        let report = run(&mut project, &quick_options());
        assert_eq!(report.encoded, 1, "{report:?}");
        assert_eq!(report.failed.len(), 1, "{report:?}");
        let (video, reason) = &report.failed[0];
        assert_eq!(video, "a");
        assert!(
            reason.contains("none of its 1 clips lies within the video"),
            "{reason}"
        );
        assert_eq!(project.load_split("train").unwrap().video_keys, ["b"]);
    }

    #[test]
    fn a_clip_never_gets_more_frames_than_it_holds() {
        let dir = tempfile::tempdir().unwrap();
        let mut project = one_video_project(dir.path());
        let options = IngestOptions {
            frames_per_clip: 64,
            ..quick_options()
        };
        let report = run(&mut project, &options);
        assert_eq!(report.frames_capped, 2, "{report:?}");
        let train = project.load_split("train").unwrap();
        for clip in 0..train.num_clips() {
            assert_eq!(train.video.rows(clip), 10, "1 s at 10 frames per second");
        }
        // As many as asked when the clip holds them.
        let options = IngestOptions {
            frames_per_clip: 4,
            restart: true,
            ..quick_options()
        };
        let report = run(&mut project, &options);
        assert_eq!(report.frames_capped, 0);
        assert_eq!(project.load_split("train").unwrap().video.rows(0), 4);
    }

    #[test]
    fn temporaries_a_killed_run_left_are_ignored_then_removed_once_stale() {
        let dir = tempfile::tempdir().unwrap();
        let mut project = one_video_project(dir.path());
        let options = IngestOptions {
            thumbnails: true,
            ..quick_options()
        };
        run(&mut project, &options);
        // As `kill -9` leaves them: a thumbnail and a staged video caught before their rename.
        let thumbs = project.cache_dir().join("thumbs/a");
        let videos = staging_dir(&project).join("videos");
        let left = [
            thumbs.join(".500ms-128x128-crop.jpg.tmp-4242-0"),
            videos.join(format!(".{}.tmp-4242-1", staged_name("a"))),
        ];
        for path in &left {
            std::fs::write(path, b"half a file").unwrap();
        }
        // Just written: perhaps a live writer's, so only ignored.
        let report = run(&mut project, &options);
        assert_eq!((report.reused, report.temporaries_removed), (1, 0));
        assert!(left.iter().all(|p| p.exists()));
        let old = std::time::SystemTime::now() - 2 * STALE_TEMPORARY_AGE;
        for path in &left {
            std::fs::File::options()
                .write(true)
                .open(path)
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        let report = run(&mut project, &options);
        assert_eq!((report.reused, report.temporaries_removed), (1, 2));
        assert!(left.iter().all(|p| !p.exists()));
    }

    #[test]
    fn clip_plans_cut_skip_and_cap() {
        let plan = |start, end, frames| plan_clip(start, end, Some(2.0), Some(10.0), frames);
        // 0.25 s at 10 frames per second shows 3 frames.
        let short = plan(Some(0.0), Some(0.25), 8).unwrap();
        assert_eq!((short.targets.len(), short.capped), (3, true));
        // A clip of no length still shows the one frame at its start.
        assert_eq!(plan(Some(1.0), Some(1.0), 8).unwrap().targets, [1.0]);
        // Unknown rate: as many as asked.
        let unknown = plan_clip(Some(0.0), Some(0.25), Some(2.0), None, 8).unwrap();
        assert_eq!((unknown.targets.len(), unknown.capped), (8, false));
        // No times: the whole video.
        let whole = plan(None, None, 4).unwrap();
        assert_eq!(whole.targets, [0.25, 0.75, 1.25, 1.75]);
        assert!(
            plan(Some(2.0), Some(3.0), 4)
                .unwrap_err()
                .contains("at or after the end")
        );
        let cut = plan(Some(1.0), Some(3.0), 4).unwrap();
        assert!(cut.cut.is_some() && cut.targets.iter().all(|&t| (1.0..2.0).contains(&t)));
        assert!(
            plan(Some(1.0), Some(2.0 + END_SLACK_S), 4)
                .unwrap()
                .cut
                .is_none()
        );
        // Neither an end nor a duration: nothing to sample up to.
        assert!(plan_clip(Some(0.0), None, None, None, 4).is_err());
        // Without a duration, times are taken as given.
        assert_eq!(
            plan_clip(Some(100.0), Some(101.0), None, None, 1)
                .unwrap()
                .targets,
            [100.5]
        );
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
