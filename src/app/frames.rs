//! The inspector's frames: a few frames of the selected clip, decoded on demand through `media`
//! on a job (the ingest caches one thumbnail per clip, not its frames), shown as a strip.

use super::jobs::{Job, Polled};
use super::scene::Scene;
use crate::media::{Fit, FrameRequest, FrameSize, RgbFrame, SampleOptions, sample_video};

/// Frames shown per clip, evenly over its time span.
pub const STRIP_FRAMES: usize = 6;
const SIDE: u32 = 96;

#[derive(Default)]
pub struct FrameStrip {
    /// The clip the strip is for (or being decoded for).
    pub clip: Option<usize>,
    /// Media time and texture of each decoded frame.
    pub frames: Vec<(f64, egui::TextureHandle)>,
    pub status: Option<String>,
    pub(super) job: Option<Job<Vec<RgbFrame>>>,
}

impl std::fmt::Debug for FrameStrip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameStrip")
            .field("clip", &self.clip)
            .field("frames", &self.frames.len())
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl FrameStrip {
    /// Starts decoding `clip`'s frames unless the strip already shows them.
    pub fn show(
        &mut self,
        clip: Option<usize>,
        scene: &Scene,
        repaint: impl Fn() + Send + Sync + 'static,
    ) {
        if clip == self.clip {
            return;
        }
        self.clear();
        self.clip = clip;
        let Some(clip) = clip else { return };
        let info = &scene.clips[clip];
        let Some(path) = info.video_file.clone() else {
            self.status = Some("no video file for this clip: its frames cannot be shown".into());
            return;
        };
        let request = FrameRequest::Clip {
            start_s: info.start.unwrap_or(0.0),
            end_s: info.end,
            count: STRIP_FRAMES,
        };
        self.status = Some("decoding frames…".into());
        self.job = Some(Job::start("frames", repaint, move |_, cancel| {
            let options = SampleOptions {
                size: Some(FrameSize::square(SIDE, Fit::Pad)),
                decoder_threads: 1,
            };
            sample_video(&path, &request, &options, cancel)
                .map(|sampled| sampled.frames)
                .map_err(|e| format!("{:#}", anyhow::Error::from(e)))
        }));
    }

    /// Turns decoded frames into textures; call once a frame.
    pub fn poll(&mut self, ctx: &egui::Context) {
        let Some(job) = &mut self.job else { return };
        let Polled::Finished(_, result) = job.poll() else {
            return;
        };
        self.job = None;
        match result {
            Ok(frames) => {
                self.status = None;
                self.frames = frames
                    .iter()
                    .enumerate()
                    .map(|(i, frame)| {
                        let image = egui::ColorImage::from_rgb(
                            [frame.width as usize, frame.height as usize],
                            &frame.pixels,
                        );
                        let texture = ctx.load_texture(
                            format!("frame-{i}"),
                            image,
                            egui::TextureOptions::LINEAR,
                        );
                        (frame.seconds, texture)
                    })
                    .collect();
            }
            Err(error) => self.status = Some(format!("the clip's frames: {error}")),
        }
    }

    pub fn clear(&mut self) {
        if let Some(job) = self.job.take() {
            job.cancel.cancel();
        }
        self.clip = None;
        self.frames.clear();
        self.status = None;
    }
}
