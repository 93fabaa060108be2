//! Opening a file with FFmpeg and describing what is in it, with typed reasons when it cannot be.

use std::io::Read;
use std::path::{Path, PathBuf};

use ffmpeg::codec::packet::side_data::Type as SideDataType;
use ffmpeg::format::context::Input;
use ffmpeg::media::Type as MediaType;
use ffmpeg_next as ffmpeg;

use super::error::MediaError;
use super::rotation::Rotation;

/// FFmpeg's time unit for container-level times (`AV_TIME_BASE`).
pub(crate) const MICROS: f64 = 1_000_000.0;

/// What a media file holds, as far as crossclr cares.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VideoInfo {
    pub path: PathBuf,
    /// FFmpeg's name for the container, e.g. `mov,mp4,m4a,3gp,3g2,mj2` or `matroska,webm`.
    pub container: String,
    /// The stated length of the file in seconds, when the container says.
    pub duration_s: Option<f64>,
    /// Where media time 0 lies on the container clock (the earliest stream start), in seconds;
    /// like the ffmpeg tool's `-ss`, all times crossclr reports and accepts count from here.
    pub start_s: f64,
    pub stream_count: usize,
    /// The stream frames are decoded from; `None` for a file without video (audio only).
    pub video: Option<VideoStreamInfo>,
}

/// The video stream chosen for decoding.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VideoStreamInfo {
    pub index: usize,
    /// FFmpeg's codec name, e.g. `h264`, `hevc`, `vp9`, `mpeg4`.
    pub codec: String,
    /// Size of the stored pictures.
    pub width: u32,
    pub height: u32,
    /// Size as shown: after the pixel aspect ratio and the rotation.
    pub display_width: u32,
    pub display_height: u32,
    /// FFmpeg's pixel format name, e.g. `yuv420p`, `yuv420p10le`.
    pub pixel_format: String,
    /// Pixel width over pixel height (1 for square pixels).
    pub sample_aspect: f64,
    pub rotation: Rotation,
    /// Average frames per second, when known (variable-rate streams give their mean).
    pub fps: Option<f64>,
    /// The stream's clock: timestamps count `time_base.0 / time_base.1` seconds.
    pub time_base: (i32, i32),
    /// Frame count the container states (not counted by decoding).
    pub frame_count: Option<u64>,
    pub duration_s: Option<f64>,
}

impl VideoInfo {
    pub fn has_video(&self) -> bool {
        self.video.is_some()
    }
}

/// Describes the file at `path`: container, duration, and its video stream if it has one.
/// A file FFmpeg cannot open, or whose video codec has no decoder here, is an error.
pub fn probe(path: &Path) -> Result<VideoInfo, MediaError> {
    let input = open_input(path)?;
    describe(path, &input)
}

/// Opens `path` for reading, turning FFmpeg's refusals into errors that say what is wrong.
pub(crate) fn open_input(path: &Path) -> Result<Input, MediaError> {
    super::init_ffmpeg();
    let metadata = std::fs::metadata(path).map_err(|source| MediaError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if metadata.is_dir() {
        return Err(MediaError::NotMedia {
            path: path.to_path_buf(),
            detail: "it is a directory".into(),
        });
    }
    if metadata.len() == 0 {
        return Err(MediaError::Empty {
            path: path.to_path_buf(),
        });
    }
    ffmpeg::format::input(path).map_err(|error| {
        let detail = format!("FFmpeg: {error}");
        match sniff_container(path) {
            Some(container) => MediaError::Damaged {
                path: path.to_path_buf(),
                container,
                detail,
            },
            None => MediaError::NotMedia {
                path: path.to_path_buf(),
                detail,
            },
        }
    })
}

/// Recognises the opening bytes of common containers, so that a file FFmpeg rejects can be told
/// apart as a damaged video (an MP4 cut short before its index) rather than something else.
fn sniff_container(path: &Path) -> Option<&'static str> {
    let mut head = [0u8; 12];
    let mut file = std::fs::File::open(path).ok()?;
    let mut filled = 0;
    while filled < head.len() {
        match file.read(&mut head[filled..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => filled += n,
        }
    }
    let head = &head[..filled];
    if head.len() >= 8 && matches!(&head[4..8], b"ftyp" | b"moov" | b"mdat" | b"free" | b"wide") {
        Some("MP4/QuickTime")
    } else if head.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        Some("Matroska/WebM")
    } else if head.starts_with(b"RIFF") && head.get(8..12) == Some(b"AVI ") {
        Some("AVI")
    } else if head.starts_with(b"FLV") {
        Some("FLV")
    } else if head.first() == Some(&0x47) {
        Some("MPEG-TS")
    } else {
        None
    }
}

pub(crate) fn describe(path: &Path, input: &Input) -> Result<VideoInfo, MediaError> {
    let known = |v: i64| v != ffmpeg::ffi::AV_NOPTS_VALUE;
    let mut start_s: Option<f64> = None;
    for stream in input.streams() {
        if known(stream.start_time()) {
            let s = stream.start_time() as f64 * f64::from(stream.time_base());
            start_s = Some(start_s.map_or(s, |m: f64| m.min(s)));
        }
    }
    let duration_s =
        (known(input.duration()) && input.duration() > 0).then(|| input.duration() as f64 / MICROS);
    let video = match video_stream(input) {
        None => None,
        Some(stream) => Some(describe_video_stream(path, &stream)?),
    };
    Ok(VideoInfo {
        path: path.to_path_buf(),
        container: input.format().name().to_string(),
        duration_s,
        start_s: start_s.unwrap_or(0.0),
        stream_count: input.nb_streams() as usize,
        video,
    })
}

/// The stream to decode: FFmpeg's pick among the video streams, cover pictures of audio files
/// (one still image marked as attached) excluded.
fn video_stream(input: &Input) -> Option<ffmpeg::format::stream::Stream<'_>> {
    let usable = |s: &ffmpeg::format::stream::Stream| {
        s.parameters().medium() == MediaType::Video && !is_cover_picture(s)
    };
    input
        .streams()
        .best(MediaType::Video)
        .filter(usable)
        .or_else(|| input.streams().find(usable))
}

pub(crate) fn is_cover_picture(stream: &ffmpeg::format::stream::Stream) -> bool {
    stream
        .disposition()
        .contains(ffmpeg::format::stream::Disposition::ATTACHED_PIC)
}

fn describe_video_stream(
    path: &Path,
    stream: &ffmpeg::format::stream::Stream,
) -> Result<VideoStreamInfo, MediaError> {
    let codec_id = stream.parameters().id();
    let unsupported = || MediaError::UnsupportedCodec {
        path: path.to_path_buf(),
        codec: codec_name(codec_id),
    };
    if ffmpeg::decoder::find(codec_id).is_none() {
        return Err(unsupported());
    }
    // The stored size, pixel format and aspect live in the codec parameters, which this binding
    // exposes through a (cheap, not yet decoding) decoder context.
    let decoder = ffmpeg::codec::Context::from_parameters(stream.parameters())
        .and_then(|c| c.decoder().video())
        .map_err(|e| match e {
            ffmpeg::Error::DecoderNotFound => unsupported(),
            other => MediaError::decode(path, format!("cannot open the video decoder: {other}")),
        })?;
    let rotation = stream_rotation(stream);
    let sample_aspect = {
        let sar = decoder.aspect_ratio();
        if sar.numerator() > 0 && sar.denominator() > 0 {
            f64::from(sar)
        } else {
            1.0
        }
    };
    let (width, height) = (decoder.width(), decoder.height());
    let layout = super::scale::plan_layout(width, height, sample_aspect, rotation, None);
    let rate = stream.avg_frame_rate();
    let fps = (rate.numerator() > 0 && rate.denominator() > 0).then(|| f64::from(rate));
    let time_base = stream.time_base();
    let duration_s = (stream.duration() > 0 && stream.duration() != ffmpeg::ffi::AV_NOPTS_VALUE)
        .then(|| stream.duration() as f64 * f64::from(time_base));
    Ok(VideoStreamInfo {
        index: stream.index(),
        codec: codec_name(codec_id),
        width,
        height,
        display_width: layout.out_width,
        display_height: layout.out_height,
        pixel_format: decoder
            .format()
            .descriptor()
            .map_or_else(|| "unknown".to_string(), |d| d.name().to_string()),
        sample_aspect,
        rotation,
        fps,
        time_base: (time_base.numerator(), time_base.denominator()),
        frame_count: (stream.frames() > 0).then_some(stream.frames() as u64),
        duration_s,
    })
}

fn codec_name(id: ffmpeg::codec::Id) -> String {
    match id {
        ffmpeg::codec::Id::None => "unknown".to_string(),
        other => other.name().to_string(),
    }
}

/// The display rotation of a stream: the display-matrix side data, else a `rotate` tag (degrees
/// clockwise, as older FFmpeg wrote it).
fn stream_rotation(stream: &ffmpeg::format::stream::Stream) -> Rotation {
    for side_data in stream.side_data() {
        if side_data.kind() == SideDataType::DisplayMatrix
            && let Some(rotation) = Rotation::from_display_matrix_bytes(side_data.data())
        {
            return rotation;
        }
    }
    stream
        .metadata()
        .get("rotate")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(Rotation::from_clockwise_degrees)
        .unwrap_or_default()
}
