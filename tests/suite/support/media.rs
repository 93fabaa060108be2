//! Helpers for the media tests: videos made at test time with the ffmpeg tool (installed by
//! scripts/setup.sh), frames read back through it, and the colour clock.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use crossclr::media::RgbFrame;

/// Runs the ffmpeg tool with `args` (quiet, overwriting) and panics with its message on failure.
pub fn ffmpeg(args: &[&str]) {
    let output = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-v", "error", "-y"])
        .args(args)
        .output()
        .expect("the ffmpeg tool is not installed (scripts/setup.sh installs it)");
    assert!(
        output.status.success(),
        "ffmpeg {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Whether this ffmpeg has the encoder `name` (e.g. `libvpx-vp9`).
pub fn has_encoder(name: &str) -> bool {
    let output = Command::new("ffmpeg")
        .args(["-hide_banner", "-encoders"])
        .output()
        .expect("the ffmpeg tool is not installed");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .any(|line| line.split_whitespace().nth(1) == Some(name))
}

/// The source filter of a video whose every frame is one flat colour that encodes its frame
/// number n: red, green and blue are 16 + 9·digit for the three base-24 digits of n.
pub fn colour_clock(width: u32, height: u32, fps: u32, seconds: f64) -> String {
    format!(
        "color=c=black:s={width}x{height}:r={fps}:d={seconds},format=rgb24,\
         geq=r='16+9*mod(N\\,24)':g='16+9*mod(trunc(N/24)\\,24)':b='16+9*trunc(N/576)'"
    )
}

/// The frame number the colour clock shows in `frame` (read at its centre).
pub fn clock_reading(frame: &RgbFrame) -> u32 {
    let [r, g, b] = frame.pixel(frame.width / 2, frame.height / 2);
    let digit = |v: u8| ((f64::from(v) - 16.0) / 9.0).round().clamp(0.0, 23.0) as u32;
    digit(r) + 24 * digit(g) + 576 * digit(b)
}

/// Makes `name` in `dir` from the lavfi source `source` with extra output arguments.
/// Output options for H.264 with B-frames at near-lossless quality, then `extra`.
pub fn h264_with<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "-c:v", "libx264", "-bf", "3", "-crf", "12", "-pix_fmt", "yuv420p",
    ];
    args.extend_from_slice(extra);
    args
}

pub fn make_video(dir: &Path, name: &str, source: &str, output_args: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let mut args = vec!["-f", "lavfi", "-i", source];
    args.extend_from_slice(output_args);
    let path_text = path.to_str().expect("temporary paths are UTF-8");
    args.push(path_text);
    ffmpeg(&args);
    path
}

/// The frame the ffmpeg tool gives for `-ss seconds -i path -frames:v 1`, as RGB at the given
/// size (the display size when `None`; ffmpeg applies the rotation itself).
pub fn ffmpeg_frame(path: &Path, seconds: f64, size: Option<(u32, u32)>) -> RgbFrame {
    let ss = format!("{seconds:.6}");
    let mut args: Vec<String> = vec![
        "-nostdin".into(),
        "-v".into(),
        "error".into(),
        "-ss".into(),
        ss,
        "-i".into(),
        path.to_string_lossy().into_owned(),
        "-frames:v".into(),
        "1".into(),
    ];
    if let Some((w, h)) = size {
        args.push("-vf".into());
        args.push(format!("scale={w}:{h}"));
    }
    args.extend(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"].map(String::from));
    let output = Command::new("ffmpeg")
        .args(&args)
        .output()
        .expect("ffmpeg runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (width, height) = match size {
        Some(s) => s,
        None => ffprobe_display_size(path),
    };
    RgbFrame::new(width, height, output.stdout, seconds).unwrap_or_else(|| {
        panic!(
            "ffmpeg's frame of {} is not {width}×{height} RGB",
            path.display()
        )
    })
}

/// The size ffmpeg shows the video at: stored size, turned by the rotation.
fn ffprobe_display_size(path: &Path) -> (u32, u32) {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args([
            "stream=width,height:stream_side_data=rotation",
            "-of",
            "default=nw=1",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    let text = String::from_utf8_lossy(&output.stdout);
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .and_then(|v| v.trim().parse::<i64>().ok())
    };
    let (w, h) = (
        value("width").unwrap() as u32,
        value("height").unwrap() as u32,
    );
    match value("rotation").map(|r| r.rem_euclid(180)) {
        Some(90) => (h, w),
        _ => (w, h),
    }
}

/// Presentation times of the video frames in display order, as ffprobe reads them.
pub fn ffprobe_frame_times(path: &Path) -> Vec<f64> {
    let output = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "frame=pts_time",
        ])
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split(',').next()?.trim().parse().ok())
        .collect()
}

/// Mean absolute difference per channel value of two frames of one size.
pub fn mean_abs_diff(a: &RgbFrame, b: &RgbFrame) -> f64 {
    assert_eq!(
        (a.width, a.height),
        (b.width, b.height),
        "frames differ in size"
    );
    let total: u64 = a
        .pixels
        .iter()
        .zip(&b.pixels)
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    total as f64 / a.pixels.len() as f64
}

/// The mean of all channel values.
pub fn mean_brightness(frame: &RgbFrame) -> f64 {
    frame.pixels.iter().map(|&v| f64::from(v)).sum::<f64>() / frame.pixels.len() as f64
}
