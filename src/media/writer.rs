//! Writing RGB frames as a video file, for the demo project's synthetic clips: H.264 (libx264,
//! ultrafast, one keyframe a second) or MPEG-4 Part 2 where this FFmpeg has no libx264.

use std::path::Path;

use ffmpeg::format::Pixel;
use ffmpeg::software::scaling;
use ffmpeg::util::frame::Video as VideoFrame;
use ffmpeg::{Dictionary, Packet, Rational, codec, encoder, format};
use ffmpeg_next as ffmpeg;

use super::error::MediaError;
use super::frame::RgbFrame;
use crate::project::{ProjectError, replace_atomic};

/// What [`write_video`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenVideo {
    pub frames: u64,
    /// The FFmpeg encoder used: `libx264`, or `mpeg4` as the fallback.
    pub encoder: String,
}

/// Encodes `frames` (each `width` × `height`, shown `fps` per second; their `seconds` are not
/// used, frame i is shown at i / fps) into a video at `path`. The container follows the
/// extension: `.mp4`/`.m4v`, `.mov` or `.mkv`. The file appears complete or not at all. Sizes
/// must be even (4:2:0 chroma).
pub fn write_video<I>(
    path: &Path,
    width: u32,
    height: u32,
    fps: f64,
    frames: I,
) -> Result<WrittenVideo, MediaError>
where
    I: IntoIterator<Item = RgbFrame>,
{
    let container = container_for(path)?;
    if width == 0 || height == 0 || width % 2 == 1 || height % 2 == 1 {
        return Err(MediaError::bad_request(
            path,
            format!("cannot encode {width}×{height}: width and height must be even and not zero"),
        ));
    }
    if !(fps.is_finite() && fps > 0.0 && fps <= 1000.0) {
        return Err(MediaError::bad_request(
            path,
            format!("{fps} frames per second is not a usable frame rate"),
        ));
    }
    super::init_ffmpeg();
    let mut outcome: Option<Result<WrittenVideo, MediaError>> = None;
    let stored = replace_atomic(path, |temp| {
        let result = encode_to(temp, container, path, width, height, fps, frames);
        let failure = result.as_ref().err().map(|e| ProjectError::File {
            path: path.to_path_buf(),
            message: e.to_string(),
        });
        outcome = Some(result);
        failure.map_or(Ok(()), Err)
    });
    match (outcome, stored) {
        (Some(Err(error)), _) => Err(error),
        (_, Err(error)) => Err(error.into()),
        (Some(Ok(written)), Ok(())) => Ok(written),
        (None, Ok(())) => Err(MediaError::encode(path, "the encoder never ran")),
    }
}

fn container_for(path: &Path) -> Result<&'static str, MediaError> {
    let extension = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "mp4" | "m4v" => Ok("mp4"),
        "mov" => Ok("mov"),
        "mkv" => Ok("matroska"),
        _ => Err(MediaError::bad_request(
            path,
            "videos are written as .mp4, .m4v, .mov or .mkv",
        )),
    }
}

/// The frame rate as a fraction: whole rates exactly, others (29.97…) to FFmpeg's nearest.
fn frame_rate(fps: f64) -> Rational {
    if (fps - fps.round()).abs() < 1e-9 {
        Rational::new(fps.round() as i32, 1)
    } else {
        Rational::from(fps).reduce()
    }
}

fn encode_to<I>(
    temp: &Path,
    container: &str,
    path: &Path,
    width: u32,
    height: u32,
    fps: f64,
    frames: I,
) -> Result<WrittenVideo, MediaError>
where
    I: IntoIterator<Item = RgbFrame>,
{
    let fail = |what: &str, e: ffmpeg::Error| MediaError::encode(path, format!("{what}: {e}"));
    let mut output =
        format::output_as(temp, container).map_err(|e| fail("cannot create the file", e))?;
    let (codec, name) = match encoder::find_by_name("libx264") {
        Some(codec) => (codec, "libx264"),
        None => (
            encoder::find(codec::Id::MPEG4)
                .ok_or_else(|| MediaError::encode(path, "FFmpeg has neither libx264 nor mpeg4"))?,
            "mpeg4",
        ),
    };
    let rate = frame_rate(fps);
    let time_base = rate.invert();
    let mut context = codec::Context::new_with_codec(codec)
        .encoder()
        .video()
        .map_err(|e| fail("cannot set up the encoder", e))?;
    context.set_width(width);
    context.set_height(height);
    context.set_format(Pixel::YUV420P);
    context.set_time_base(time_base);
    context.set_frame_rate(Some(rate));
    // One keyframe a second keeps later frame sampling cheap.
    context.set_gop(fps.round().max(1.0) as u32);
    if output
        .format()
        .flags()
        .contains(format::Flags::GLOBAL_HEADER)
    {
        context.set_flags(codec::Flags::GLOBAL_HEADER);
    }
    let mut options = Dictionary::new();
    if name == "libx264" {
        options.set("preset", "ultrafast");
        options.set("crf", "20");
        // One thread per clip: the demo renders many clips side by side.
        options.set("threads", "1");
    } else {
        let bits = (f64::from(width) * f64::from(height) * fps * 0.15).max(400_000.0);
        context.set_bit_rate(bits as usize);
    }
    let mut encoder = context
        .open_as_with(codec, options)
        .map_err(|e| fail("cannot open the encoder", e))?;
    {
        let mut stream = output
            .add_stream(codec)
            .map_err(|e| fail("cannot add the video stream", e))?;
        stream.set_parameters(&encoder);
        stream.set_time_base(time_base);
        stream.set_avg_frame_rate(rate);
    }
    let mut header_options = Dictionary::new();
    if container != "matroska" {
        // The index goes first, so a partly downloaded copy still plays.
        header_options.set("movflags", "+faststart");
    }
    output
        .write_header_with(header_options)
        .map_err(|e| fail("cannot write the header", e))?;
    let stream_time_base = output
        .stream(0)
        .map(|s| s.time_base())
        .ok_or_else(|| MediaError::encode(path, "the video stream vanished"))?;
    let mut to_yuv = scaling::Context::get(
        Pixel::RGB24,
        width,
        height,
        Pixel::YUV420P,
        width,
        height,
        scaling::Flags::BICUBIC,
    )
    .map_err(|e| fail("cannot set up colour conversion", e))?;
    let mut rgb = VideoFrame::new(Pixel::RGB24, width, height);
    let mut yuv = VideoFrame::empty();
    let mut count: u64 = 0;
    let drain = |encoder: &mut encoder::video::Encoder,
                 output: &mut format::context::Output|
     -> Result<(), MediaError> {
        let mut packet = Packet::empty();
        loop {
            match encoder.receive_packet(&mut packet) {
                Ok(()) => {
                    packet.set_stream(0);
                    packet.rescale_ts(time_base, stream_time_base);
                    packet
                        .write_interleaved(output)
                        .map_err(|e| fail("cannot write a packet", e))?;
                }
                Err(ffmpeg::Error::Eof) => return Ok(()),
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {
                    return Ok(());
                }
                Err(e) => return Err(fail("encoding failed", e)),
            }
        }
    };
    for frame in frames {
        if frame.width != width
            || frame.height != height
            || frame.pixels.len() != (width * height * 3) as usize
        {
            return Err(MediaError::bad_request(
                path,
                format!(
                    "frame {count} is {}×{} ({} bytes); the video is {width}×{height} RGB",
                    frame.width,
                    frame.height,
                    frame.pixels.len()
                ),
            ));
        }
        copy_rgb_into(&frame, &mut rgb);
        to_yuv
            .run(&rgb, &mut yuv)
            .map_err(|e| fail("colour conversion failed", e))?;
        yuv.set_pts(Some(count as i64));
        encoder
            .send_frame(&yuv)
            .map_err(|e| fail("encoding failed", e))?;
        drain(&mut encoder, &mut output)?;
        count += 1;
    }
    if count == 0 {
        return Err(MediaError::bad_request(path, "no frames to write"));
    }
    encoder
        .send_eof()
        .map_err(|e| fail("cannot flush the encoder", e))?;
    drain(&mut encoder, &mut output)?;
    output
        .write_trailer()
        .map_err(|e| fail("cannot finish the file", e))?;
    Ok(WrittenVideo {
        frames: count,
        encoder: name.to_string(),
    })
}

/// Copies packed RGB rows into an FFmpeg frame, whose rows may be padded.
fn copy_rgb_into(frame: &RgbFrame, target: &mut VideoFrame) {
    let row_bytes = frame.width as usize * 3;
    let stride = target.stride(0);
    let data = target.data_mut(0);
    for (y, row) in frame.pixels.chunks_exact(row_bytes).enumerate() {
        data[y * stride..y * stride + row_bytes].copy_from_slice(row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_rates_become_fractions() {
        assert_eq!(frame_rate(25.0), Rational::new(25, 1));
        let ntsc = frame_rate(30000.0 / 1001.0);
        assert_eq!((ntsc.numerator(), ntsc.denominator()), (30000, 1001));
    }

    #[test]
    fn bad_requests_name_the_file() {
        let dir = std::env::temp_dir();
        let odd = write_video(&dir.join("odd.mp4"), 33, 32, 25.0, Vec::new()).unwrap_err();
        assert!(matches!(odd, MediaError::BadRequest { .. }), "{odd}");
        assert!(odd.to_string().contains("odd.mp4"), "{odd}");
        let avi = write_video(&dir.join("clip.avi"), 32, 32, 25.0, Vec::new()).unwrap_err();
        assert!(avi.to_string().contains(".mp4"), "{avi}");
        let rate = write_video(&dir.join("r.mp4"), 32, 32, 0.0, Vec::new()).unwrap_err();
        assert!(rate.to_string().contains("frame rate"), "{rate}");
    }
}
