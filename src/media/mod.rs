//! Video in and out (DESIGN §3): opening and probing files with FFmpeg, frames at chosen times
//! (keyframe seeks, decoding forward only as far as needed), scaling and rotation to RGB,
//! thumbnails cached in the project, many videos on a pool of threads, and writing the demo's
//! synthetic videos. Uses the project module (paths, atomic writes) and jobs (cancellation,
//! progress) only.

pub mod batch;
pub mod demo;
mod error;
pub mod frame;
pub mod probe;
pub mod rotation;
pub mod sample;
pub mod scale;
pub mod thumbs;
pub mod writer;

pub use batch::{
    BatchFailure, BatchItem, BatchProgress, BatchSummary, decode_batch, default_workers,
    sample_batch,
};
pub use error::MediaError;
pub use frame::RgbFrame;
pub use probe::{VideoInfo, VideoStreamInfo, probe};
pub use rotation::Rotation;
pub use sample::{
    DecodeStats, FrameRequest, SampleOptions, SampledFrames, VideoDecoder, clip_targets,
    sample_video,
};
pub use scale::{Fit, FrameSize};
pub use thumbs::{
    ThumbnailCache, ThumbnailFormat, ThumbnailRequest, Thumbnails, clip_thumbnail_time,
};
pub use writer::{WrittenVideo, write_video};

/// Sets FFmpeg up once per process. Its own log is silenced below fatal messages: every failure
/// reaches the caller as a [`MediaError`] naming the file, and a batch of thousands of videos
/// should not flood the terminal with decoder chatter. `CROSSCLR_FFMPEG_LOG=warning` (or
/// `error`, `info`, `debug`) brings it back for debugging.
pub(crate) fn init_ffmpeg() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        use ffmpeg_next::util::log::{Level, set_level};
        // Registering formats and codecs cannot fail on FFmpeg 5+; nothing to report.
        let _ = ffmpeg_next::init();
        let level = match std::env::var("CROSSCLR_FFMPEG_LOG").as_deref() {
            Ok("error") => Level::Error,
            Ok("warning") => Level::Warning,
            Ok("info") => Level::Info,
            Ok("debug") => Level::Debug,
            _ => Level::Fatal,
        };
        set_level(level);
    });
}
