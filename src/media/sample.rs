//! Frames at chosen times, decoding as little as possible.
//!
//! For each target time the frame shown at that moment is returned: the one with the largest
//! presentation time at or before it. Reaching it costs a seek to the nearest keyframe before
//! the target and decoding forward from there. Three things keep that forward decoding short:
//!
//! - The keyframe each target needs is found first (a seek and one packet read, no decoding), so
//!   a target whose keyframe lies behind what is already decoded is reached by decoding on, not by
//!   seeking back and decoding the same group of pictures again.
//! - A packet whose presentation time is below that of another packet already read and still at
//!   or before the target can never be the answer; it is sent to the decoder with non-reference
//!   frames skipped, so B-frames nobody will look at are not reconstructed.
//! - Decoding stops as soon as the decoder shows a frame past the target.
//!
//! Times are media times: seconds from the container's start, as the ffmpeg tool's `-ss` counts.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ffmpeg::codec::discard::Discard;
use ffmpeg::format::context::Input;
use ffmpeg::util::frame::Video as VideoFrame;
use ffmpeg::{Packet, decoder};
use ffmpeg_next as ffmpeg;

use super::error::MediaError;
use super::frame::RgbFrame;
use super::probe::{MICROS, VideoInfo, describe, is_cover_picture, open_input};
use super::rotation::Rotation;
use super::scale::{FrameSize, RgbConverter};
use crate::jobs::CancelToken;

/// Which frames to take from a video.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum FrameRequest {
    /// `count` frames spread evenly over `[start_s, end_s)`, one at the centre of each of `count`
    /// equal parts. `end_s: None` means the end of the video; an end past it is cut to it.
    Clip {
        start_s: f64,
        end_s: Option<f64>,
        count: usize,
    },
    /// The frames shown at these media times, in this order.
    Times(Vec<f64>),
}

impl FrameRequest {
    /// `count` frames evenly over the whole video.
    pub fn whole(count: usize) -> Self {
        Self::Clip {
            start_s: 0.0,
            end_s: None,
            count,
        }
    }
}

/// The centres of `count` equal parts of `[start, end)`.
pub fn clip_targets(start: f64, end: f64, count: usize) -> Vec<f64> {
    let step = (end - start) / count as f64;
    (0..count)
        .map(|i| start + (i as f64 + 0.5) * step)
        .collect()
}

/// How frames are decoded and delivered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleOptions {
    /// Output size and fit; `None` keeps the display size.
    pub size: Option<FrameSize>,
    /// Decoder threads per video; 1 when many videos are decoded side by side (the pool does
    /// that), 0 lets FFmpeg choose.
    pub decoder_threads: usize,
}

impl Default for SampleOptions {
    fn default() -> Self {
        Self {
            size: None,
            decoder_threads: 1,
        }
    }
}

/// What decoding cost: the evidence that sampling did not decode more than it needed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DecodeStats {
    /// Video packets handed to the decoder.
    pub packets_decoded: u64,
    /// Of those, the ones sent while non-reference frames were being skipped.
    pub packets_skippable: u64,
    /// Pictures the decoder returned.
    pub frames_decoded: u64,
    /// Seeks made to reach targets (not counting the keyframe look-ups).
    pub seeks: u64,
    /// Packets the decoder rejected as corrupt (decoding went on past them).
    pub corrupt_packets: u64,
}

impl DecodeStats {
    /// The cost since `earlier` was taken from the same decoder.
    pub fn since(&self, earlier: &DecodeStats) -> DecodeStats {
        DecodeStats {
            packets_decoded: self.packets_decoded - earlier.packets_decoded,
            packets_skippable: self.packets_skippable - earlier.packets_skippable,
            frames_decoded: self.frames_decoded - earlier.frames_decoded,
            seeks: self.seeks - earlier.seeks,
            corrupt_packets: self.corrupt_packets - earlier.corrupt_packets,
        }
    }

    pub fn add(&mut self, other: &DecodeStats) {
        self.packets_decoded += other.packets_decoded;
        self.packets_skippable += other.packets_skippable;
        self.frames_decoded += other.frames_decoded;
        self.seeks += other.seeks;
        self.corrupt_packets += other.corrupt_packets;
    }
}

/// Frames taken from one video.
#[derive(Debug, Clone)]
pub struct SampledFrames {
    pub path: PathBuf,
    /// The media times asked for, in request order.
    pub targets: Vec<f64>,
    /// One frame per target, in the same order; `frame.seconds` is the frame's own time.
    pub frames: Vec<RgbFrame>,
    pub stats: DecodeStats,
}

/// Takes the frames `request` asks for from the video at `path`.
pub fn sample_video(
    path: &Path,
    request: &FrameRequest,
    options: &SampleOptions,
    cancel: &CancelToken,
) -> Result<SampledFrames, MediaError> {
    VideoDecoder::open(path, options.decoder_threads)?.sample(request, options.size, cancel)
}

/// An open video, ready to give frames at chosen times.
pub struct VideoDecoder {
    path: PathBuf,
    info: VideoInfo,
    stream_index: usize,
    rotation: Rotation,
    sample_aspect: f64,
    /// Seconds per tick of the stream clock.
    tick: f64,
    /// Nominal frame spacing in ticks, for frames without a timestamp.
    nominal_frame_ticks: i64,
    threads: usize,
    input: Input,
    decoder: decoder::Video,
    converter: RgbConverter,
    state: DecodeState,
    stats: DecodeStats,
}

impl std::fmt::Debug for VideoDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoDecoder")
            .field("path", &self.path)
            .field("info", &self.info)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// A decoded picture and its presentation time in stream ticks.
struct Decoded {
    frame: VideoFrame,
    ts: i64,
}

/// Where the demuxer and decoder stand since the last seek.
#[derive(Default)]
struct DecodeState {
    /// The last packet sent to the decoder; `None` right after opening or seeking.
    last_sent: Option<PacketPosition>,
    /// Presentation times of the packets sent since the seek.
    seen_pts: BTreeSet<i64>,
    /// The latest decoded frame at or before the current target.
    candidate: Option<Decoded>,
    /// A decoded frame past the current target, kept for the next one.
    lookahead: Option<Decoded>,
    input_done: bool,
    output_done: bool,
    skipping: bool,
    last_ts: Option<i64>,
    /// The widest gap seen between consecutive frames, in ticks.
    widest_gap: i64,
    read_error: Option<String>,
}

/// Where a packet lies in decoding order: its byte offset where the container gives one, its
/// decoding time otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PacketPosition {
    byte: i64,
    dts: Option<i64>,
}

impl PacketPosition {
    fn of(packet: &Packet) -> Self {
        Self {
            byte: packet.position() as i64,
            dts: packet.dts().or(packet.pts()),
        }
    }

    fn is_after(&self, other: &PacketPosition) -> bool {
        if self.byte >= 0 && other.byte >= 0 {
            self.byte > other.byte
        } else {
            match (self.dts, other.dts) {
                (Some(a), Some(b)) => a > b,
                _ => true,
            }
        }
    }
}

/// How to reach a target: the seek to make, and the keyframe packet decoding then starts at.
#[derive(Debug, Clone, Copy)]
struct SeekPoint {
    seek: Seek,
    keyframe: PacketPosition,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seek {
    /// To the last keyframe at or before this container time (microseconds).
    AtOrBefore(i64),
    /// To the first keyframe, for targets before it.
    Start,
}

enum Pick {
    Candidate,
    Lookahead,
}

impl VideoDecoder {
    /// Opens the video at `path` with `threads` decoder threads (0: FFmpeg chooses).
    pub fn open(path: &Path, threads: usize) -> Result<Self, MediaError> {
        let input = open_input(path)?;
        let info = describe(path, &input)?;
        let Some(video) = info.video.clone() else {
            let streams = describe_streams(&input);
            return Err(MediaError::NoVideo {
                path: path.to_path_buf(),
                streams,
            });
        };
        let decoder = open_decoder(path, &input, video.index, threads)?;
        let tick = f64::from(video.time_base.0) / f64::from(video.time_base.1);
        let fps = video.fps.filter(|f| *f > 0.0).unwrap_or(25.0);
        Ok(Self {
            path: path.to_path_buf(),
            stream_index: video.index,
            rotation: video.rotation,
            sample_aspect: video.sample_aspect,
            tick,
            nominal_frame_ticks: ((1.0 / fps) / tick).round().max(1.0) as i64,
            threads,
            info,
            input,
            decoder,
            converter: RgbConverter::new(),
            state: DecodeState::default(),
            stats: DecodeStats::default(),
        })
    }

    pub fn info(&self) -> &VideoInfo {
        &self.info
    }

    /// Decoding cost so far.
    pub fn stats(&self) -> DecodeStats {
        self.stats
    }

    /// The media times `request` stands for in this video.
    pub fn targets(&self, request: &FrameRequest) -> Result<Vec<f64>, MediaError> {
        match request {
            FrameRequest::Times(times) => {
                if let Some(bad) = times.iter().find(|t| !t.is_finite()) {
                    return Err(MediaError::bad_request(
                        &self.path,
                        format!("frame time {bad} is not a number of seconds"),
                    ));
                }
                Ok(times.clone())
            }
            &FrameRequest::Clip {
                start_s,
                end_s,
                count,
            } => {
                let duration = self.info.duration_s;
                let end = match (end_s, duration) {
                    (Some(end), Some(d)) => end.min(d),
                    (Some(end), None) => end,
                    (None, Some(d)) => d,
                    (None, None) => {
                        return Err(MediaError::bad_request(
                            &self.path,
                            "the clip has no end and the file states no duration",
                        ));
                    }
                };
                if !(start_s.is_finite() && end.is_finite() && start_s >= 0.0 && end > start_s) {
                    let stated = duration
                        .map(|d| format!(" (the video lasts {d:.3} s)"))
                        .unwrap_or_default();
                    return Err(MediaError::bad_request(
                        &self.path,
                        format!(
                            "the clip [{start_s:.3} s, {:.3} s) is empty or out of range{stated}",
                            end_s.unwrap_or(end)
                        ),
                    ));
                }
                Ok(clip_targets(start_s, end, count))
            }
        }
    }

    /// Takes the frames `request` asks for, scaled to `size`.
    pub fn sample(
        &mut self,
        request: &FrameRequest,
        size: Option<FrameSize>,
        cancel: &CancelToken,
    ) -> Result<SampledFrames, MediaError> {
        let targets = self.targets(request)?;
        let before = self.stats;
        let frames = self.frames_at(&targets, size, cancel)?;
        Ok(SampledFrames {
            path: self.path.clone(),
            targets,
            frames,
            stats: self.stats.since(&before),
        })
    }

    /// The frames shown at `times` (media seconds, any order), scaled to `size`.
    pub fn frames_at(
        &mut self,
        times: &[f64],
        size: Option<FrameSize>,
        cancel: &CancelToken,
    ) -> Result<Vec<RgbFrame>, MediaError> {
        let mut order: Vec<usize> = (0..times.len()).collect();
        order.sort_by(|&a, &b| times[a].total_cmp(&times[b]));
        let sorted: Vec<f64> = order.iter().map(|&i| times[i]).collect();
        let plan = match self.plan_seeks(&sorted, cancel)? {
            Some(plan) => plan.into_iter().map(Some).collect(),
            None => {
                // The file cannot seek: read it once from the start, forward only.
                self.reopen()?;
                vec![None; sorted.len()]
            }
        };
        let mut frames: Vec<Option<RgbFrame>> = vec![None; times.len()];
        for ((&index, &target), seek) in order.iter().zip(&sorted).zip(plan) {
            if cancel.is_cancelled() {
                return Err(MediaError::Cancelled);
            }
            if let Some(point) = seek {
                let behind = match self.state.last_sent {
                    None => true,
                    Some(last) => point.keyframe.is_after(&last),
                };
                if behind {
                    self.seek(point.seek)?;
                }
            }
            frames[index] = Some(self.frame_at(target, size, cancel)?);
        }
        Ok(frames
            .into_iter()
            .map(|f| f.expect("every target is filled"))
            .collect())
    }

    fn origin_us(&self) -> f64 {
        self.info.start_s * MICROS
    }

    fn seconds_of(&self, ts: i64) -> f64 {
        ts as f64 * self.tick - self.info.start_s
    }

    /// The last stream tick at or before media time `t`.
    fn ticks_at(&self, t: f64) -> i64 {
        ((t + self.info.start_s) / self.tick + 1e-6).floor() as i64
    }

    /// Finds, for each target, the seek that lands on a keyframe shown at or before it. `None`
    /// when the file cannot seek.
    fn plan_seeks(
        &mut self,
        targets: &[f64],
        cancel: &CancelToken,
    ) -> Result<Option<Vec<SeekPoint>>, MediaError> {
        let mut plan = Vec::with_capacity(targets.len());
        for &target in targets {
            if cancel.is_cancelled() {
                return Err(MediaError::Cancelled);
            }
            let limit = self.ticks_at(target);
            let mut seek = Seek::AtOrBefore((self.origin_us() + target * MICROS).floor() as i64);
            let mut found: Option<SeekPoint> = None;
            // A keyframe is found by its decoding time, but may be shown after the target (its
            // B-frames come first); then the target lies in the group before, so look earlier.
            for _ in 0..8 {
                if self.seek_input(seek).is_err() {
                    match (found, seek) {
                        // Nothing at or before the target: it precedes the first keyframe.
                        (None, Seek::AtOrBefore(_)) => {
                            seek = Seek::Start;
                            continue;
                        }
                        (None, Seek::Start) => return Ok(None),
                        // No earlier keyframe: the one found is the first.
                        (Some(_), _) => break,
                    }
                }
                let Some((keyframe, shown)) = self.read_keyframe_position() else {
                    break;
                };
                if found.is_some_and(|f| f.keyframe == keyframe) {
                    break;
                }
                found = Some(SeekPoint { seek, keyframe });
                let Seek::AtOrBefore(max_us) = seek else {
                    break;
                };
                if shown.is_none_or(|ts| ts <= limit) {
                    break;
                }
                let earliest = keyframe
                    .dts
                    .unwrap_or(i64::MAX)
                    .min(shown.unwrap_or(i64::MAX));
                let earliest_us = (earliest as f64 * self.tick * MICROS).floor() as i64;
                seek = Seek::AtOrBefore(earliest_us.min(max_us) - 1);
            }
            match found {
                Some(point) => plan.push(point),
                None => return Ok(None),
            }
        }
        // The look-ups moved the demuxer; the decoder must not continue from where it was.
        self.state.last_sent = None;
        Ok(Some(plan))
    }

    /// Reads up to the next packet of the video stream; its position and presentation time.
    fn read_keyframe_position(&mut self) -> Option<(PacketPosition, Option<i64>)> {
        let mut packet = Packet::empty();
        for _ in 0..100_000 {
            match packet.read(&mut self.input) {
                Ok(()) if packet.stream() == self.stream_index => {
                    return Some((PacketPosition::of(&packet), packet.pts().or(packet.dts())));
                }
                Ok(()) | Err(ffmpeg::Error::InvalidData) => continue,
                Err(_) => return None,
            }
        }
        None
    }

    fn seek_input(&mut self, seek: Seek) -> Result<(), ffmpeg::Error> {
        match seek {
            Seek::AtOrBefore(max_us) => self.input.seek(max_us, ..max_us),
            Seek::Start => self.input.seek(self.origin_us().floor() as i64, ..),
        }
    }

    fn seek(&mut self, seek: Seek) -> Result<(), MediaError> {
        self.seek_input(seek)
            .map_err(|e| MediaError::decode(&self.path, format!("seek failed: {e}")))?;
        self.decoder.flush();
        self.state = DecodeState::default();
        self.stats.seeks += 1;
        Ok(())
    }

    /// Opens the file again, to read it from the start without seeking.
    fn reopen(&mut self) -> Result<(), MediaError> {
        self.input = open_input(&self.path)?;
        self.decoder = open_decoder(&self.path, &self.input, self.stream_index, self.threads)?;
        self.state = DecodeState::default();
        Ok(())
    }

    /// Decodes forward to the frame shown at `target` and converts it.
    fn frame_at(
        &mut self,
        target: f64,
        size: Option<FrameSize>,
        cancel: &CancelToken,
    ) -> Result<RgbFrame, MediaError> {
        let limit = self.ticks_at(target);
        let pick = self.decode_until(limit, cancel)?;
        let chosen = match pick {
            Pick::Candidate => self.state.candidate.as_ref(),
            Pick::Lookahead => self.state.lookahead.as_ref(),
        }
        .expect("decode_until picks a frame it holds");
        let seconds = self.seconds_of(chosen.ts);
        if self.state.output_done && matches!(pick, Pick::Candidate) {
            self.check_not_truncated(seconds, target)?;
        }
        self.converter
            .convert(
                &chosen.frame,
                self.sample_aspect,
                self.rotation,
                size,
                seconds,
            )
            .map_err(|e| MediaError::decode(&self.path, format!("cannot convert the frame: {e}")))
    }

    /// A target past the last frame is fine when the file says it ends there too; when it
    /// claims to go on, the data was cut short.
    fn check_not_truncated(&self, last_seconds: f64, target: f64) -> Result<(), MediaError> {
        let frame_s = (self.state.widest_gap.max(self.nominal_frame_ticks) as f64) * self.tick;
        let slack = 2.0 * frame_s + 0.05;
        let claimed_end = self.info.duration_s;
        let data_ends_early = claimed_end.is_some_and(|end| last_seconds + slack < end);
        if target > last_seconds + slack && (data_ends_early || self.state.read_error.is_some()) {
            return Err(MediaError::Truncated {
                path: self.path.clone(),
                data_ends_s: last_seconds,
                wanted_s: target,
                duration_s: claimed_end,
            });
        }
        Ok(())
    }

    /// Decodes until the frame shown at tick `limit` is known: the latest frame at or before it,
    /// confirmed by a later one (or the end); the first frame when the target precedes it.
    fn decode_until(&mut self, limit: i64, cancel: &CancelToken) -> Result<Pick, MediaError> {
        let mut frame = VideoFrame::empty();
        loop {
            if let Some(next) = self.state.lookahead.take() {
                if next.ts <= limit {
                    self.state.candidate = Some(next);
                } else {
                    self.state.lookahead = Some(next);
                    return Ok(if self.state.candidate.is_some() {
                        Pick::Candidate
                    } else {
                        Pick::Lookahead
                    });
                }
            }
            if self.state.output_done {
                return match self.state.candidate {
                    Some(_) => Ok(Pick::Candidate),
                    None => Err(self.nothing_decoded()),
                };
            }
            match self.decoder.receive_frame(&mut frame) {
                Ok(()) => {
                    self.stats.frames_decoded += 1;
                    let ts = self.frame_time(&frame);
                    self.state.lookahead = Some(Decoded {
                        frame: std::mem::replace(&mut frame, VideoFrame::empty()),
                        ts,
                    });
                    continue;
                }
                Err(ffmpeg::Error::Eof) => {
                    self.state.output_done = true;
                    continue;
                }
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {}
                Err(e) => return Err(MediaError::decode(&self.path, e)),
            }
            if cancel.is_cancelled() {
                return Err(MediaError::Cancelled);
            }
            self.feed_packet(limit)?;
        }
    }

    fn nothing_decoded(&self) -> MediaError {
        let why = match &self.state.read_error {
            Some(read) => format!("reading stopped: {read}"),
            None if self.stats.corrupt_packets > 0 => format!(
                "{} packets were rejected as corrupt",
                self.stats.corrupt_packets
            ),
            None => "the stream ended".to_string(),
        };
        MediaError::decode(&self.path, format!("no picture could be decoded ({why})"))
    }

    /// The frame's presentation time; frames without one follow the previous frame.
    fn frame_time(&mut self, frame: &VideoFrame) -> i64 {
        let ts = frame
            .timestamp()
            .or(frame.pts())
            .or_else(|| self.state.last_ts.map(|t| t + self.nominal_frame_ticks))
            .unwrap_or(0);
        if let Some(previous) = self.state.last_ts {
            self.state.widest_gap = self.state.widest_gap.max(ts - previous);
        }
        self.state.last_ts = Some(ts);
        ts
    }

    /// Sends the next packet of the video stream to the decoder (or the end of the stream).
    fn feed_packet(&mut self, limit: i64) -> Result<(), MediaError> {
        if self.state.input_done {
            // The decoder said it wants more input after the end was sent: nothing more comes.
            self.state.output_done = true;
            return Ok(());
        }
        let mut packet = Packet::empty();
        loop {
            match packet.read(&mut self.input) {
                Ok(()) if packet.stream() == self.stream_index => break,
                Ok(()) | Err(ffmpeg::Error::InvalidData) => continue,
                Err(ffmpeg::Error::Eof) => return self.end_input(),
                Err(e) => {
                    self.state.read_error = Some(e.to_string());
                    return self.end_input();
                }
            }
        }
        let pts = packet.pts().or(packet.dts());
        // Another packet shown later than this one but still by the target means this one is
        // not the answer; if it is a non-reference frame, it need not be decoded at all.
        let skippable = pts.is_some_and(|p| {
            self.state
                .seen_pts
                .range(..=limit)
                .next_back()
                .is_some_and(|&later| later > p)
        });
        if skippable != self.state.skipping {
            self.decoder.skip_frame(if skippable {
                Discard::NonReference
            } else {
                Discard::Default
            });
            self.state.skipping = skippable;
        }
        if let Some(p) = pts {
            self.state.seen_pts.insert(p);
        }
        self.state.last_sent = Some(PacketPosition::of(&packet));
        self.stats.packets_decoded += 1;
        self.stats.packets_skippable += u64::from(skippable);
        match self.decoder.send_packet(&packet) {
            Ok(()) => Ok(()),
            Err(ffmpeg::Error::InvalidData) => {
                self.stats.corrupt_packets += 1;
                Ok(())
            }
            Err(e) => Err(MediaError::decode(&self.path, e)),
        }
    }

    fn end_input(&mut self) -> Result<(), MediaError> {
        self.state.input_done = true;
        if self.state.skipping {
            self.decoder.skip_frame(Discard::Default);
            self.state.skipping = false;
        }
        match self.decoder.send_eof() {
            Ok(()) | Err(ffmpeg::Error::Eof) => Ok(()),
            Err(e) => Err(MediaError::decode(&self.path, e)),
        }
    }
}

fn open_decoder(
    path: &Path,
    input: &Input,
    stream_index: usize,
    threads: usize,
) -> Result<decoder::Video, MediaError> {
    let stream = input
        .stream(stream_index)
        .ok_or_else(|| MediaError::decode(path, "the video stream vanished on reopening"))?;
    let mut context = ffmpeg::codec::Context::from_parameters(stream.parameters())
        .map_err(|e| MediaError::decode(path, format!("bad codec parameters: {e}")))?;
    if threads != 1 {
        context.set_threading(ffmpeg::codec::threading::Config {
            kind: ffmpeg::codec::threading::Type::Frame,
            count: threads,
            ..Default::default()
        });
    }
    let mut decoder = context.decoder();
    decoder.set_packet_time_base(stream.time_base());
    decoder.video().map_err(|e| match e {
        ffmpeg::Error::DecoderNotFound => MediaError::UnsupportedCodec {
            path: path.to_path_buf(),
            codec: stream.parameters().id().name().to_string(),
        },
        other => MediaError::decode(path, format!("cannot open the video decoder: {other}")),
    })
}

/// "1 audio stream", "2 audio streams and 1 subtitle stream": what a file without video holds.
fn describe_streams(input: &Input) -> String {
    use ffmpeg::media::Type;
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for stream in input.streams() {
        let kind = match stream.parameters().medium() {
            Type::Video if is_cover_picture(&stream) => "cover picture",
            Type::Audio => "audio",
            Type::Subtitle => "subtitle",
            Type::Data => "data",
            Type::Attachment => "attachment",
            Type::Video => "video",
            Type::Unknown => "unknown",
        };
        match counts.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => counts.push((kind, 1)),
        }
    }
    if counts.is_empty() {
        return "no streams".to_string();
    }
    counts
        .iter()
        .map(|(kind, n)| match *kind {
            "cover picture" => format!("{n} cover picture{}", if *n == 1 { "" } else { "s" }),
            _ => format!("{n} {kind} stream{}", if *n == 1 { "" } else { "s" }),
        })
        .collect::<Vec<_>>()
        .join(" and ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_targets_are_part_centres() {
        assert_eq!(clip_targets(0.0, 8.0, 4), vec![1.0, 3.0, 5.0, 7.0]);
        assert_eq!(clip_targets(2.0, 3.0, 1), vec![2.5]);
        assert!(clip_targets(0.0, 1.0, 0).is_empty());
    }

    #[test]
    fn packet_order_prefers_byte_offsets() {
        let at = |byte, dts| PacketPosition { byte, dts };
        assert!(at(100, Some(1)).is_after(&at(50, Some(9))));
        assert!(!at(50, Some(9)).is_after(&at(100, Some(1))));
        assert!(at(-1, Some(9)).is_after(&at(100, Some(1))));
        assert!(!at(-1, Some(1)).is_after(&at(-1, Some(1))));
    }
}
