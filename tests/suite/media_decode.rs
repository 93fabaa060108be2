//! Frame sampling against videos made here with the ffmpeg tool: the right frame at each time
//! (B-frames, variable frame rate, edit lists, offset starts), the same pixels ffmpeg shows
//! (several codecs, 10-bit, odd sizes, rotation), and decoding only as much as needed.

use crate::support::media::*;
use crossclr::jobs::CancelToken;
use crossclr::media::{
    Fit, FrameRequest, FrameSize, MediaError, RgbFrame, Rotation, SampleOptions, VideoDecoder,
    probe, sample_video,
};

fn native() -> SampleOptions {
    SampleOptions::default()
}

fn small(width: u32, height: u32) -> SampleOptions {
    SampleOptions {
        size: Some(FrameSize::new(width, height, Fit::Stretch)),
        ..SampleOptions::default()
    }
}

fn times(path: &std::path::Path, times: &[f64], options: &SampleOptions) -> Vec<RgbFrame> {
    sample_video(
        path,
        &FrameRequest::Times(times.to_vec()),
        options,
        &CancelToken::new(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .frames
}

#[test]
fn each_target_gets_the_frame_shown_at_that_time() {
    let dir = tempfile::tempdir().unwrap();
    // 25 fps, B-frames, a keyframe every 2 s.
    let video = make_video(
        dir.path(),
        "clock.mp4",
        &colour_clock(64, 48, 25, 8.0),
        &h264_with(&["-g", "50", "-sc_threshold", "0"]),
    );
    let request = FrameRequest::Clip {
        start_s: 0.0,
        end_s: None,
        count: 16,
    };
    let sampled = sample_video(&video, &request, &small(32, 24), &CancelToken::new()).unwrap();
    assert_eq!(sampled.frames.len(), 16);
    for (target, frame) in sampled.targets.iter().zip(&sampled.frames) {
        let shown = (target * 25.0 + 1e-9).floor();
        assert_eq!(f64::from(clock_reading(frame)), shown, "target {target}");
        assert!(
            (frame.seconds - shown / 25.0).abs() < 1e-6,
            "{} at {target}",
            frame.seconds
        );
        assert!(*target - frame.seconds < 1.0 / 25.0 && frame.seconds <= *target + 1e-9);
        assert_eq!((frame.width, frame.height), (32, 24));
    }
    // Frame centres of 16 parts of 8 s.
    assert!(
        (sampled.targets[0] - 0.25).abs() < 1e-12 && (sampled.targets[15] - 7.75).abs() < 1e-12
    );

    // Times in any order, repeated, on frame boundaries, before the first frame's end.
    let asked = [5.0, 0.0, 7.99, 0.039, 5.0, 2.04, 1.96];
    let frames = times(&video, &asked, &small(32, 24));
    for (t, frame) in asked.iter().zip(&frames) {
        assert_eq!(
            clock_reading(frame),
            (t * 25.0 + 1e-9).floor() as u32,
            "at {t}"
        );
    }
}

#[test]
fn variable_frame_rate_follows_timestamps_not_frame_counts() {
    let dir = tempfile::tempdir().unwrap();
    // Frame n is shown at floor(n/2)·0.12 + (n mod 2)·0.04: durations alternate 40 and 80 ms.
    let source = format!(
        "{},setpts='trunc(N/2)*3+mod(N\\,2)'",
        colour_clock(64, 48, 25, 4.0)
    );
    let video = make_video(
        dir.path(),
        "vfr.mp4",
        &source,
        &h264_with(&["-fps_mode", "passthrough"]),
    );
    // The file's own times, as ffprobe reads them, are the reference.
    let shown_at = ffprobe_frame_times(&video);
    assert_eq!(shown_at.len(), 100);
    // Exactly the times asked for (in ticks of 1/25 s: 0, 1, 3, 4, 6, 7, …).
    for (n, shown) in shown_at.iter().enumerate() {
        let expected = f64::from((n / 2 * 3 + n % 2) as u32) / 25.0;
        assert!((shown - expected).abs() < 1e-4, "frame {n} at {shown}");
    }
    let asked: Vec<f64> = (0..40).map(|i| 0.013 + i as f64 * 0.1503).collect();
    for (t, frame) in asked.iter().zip(times(&video, &asked, &small(16, 16))) {
        let expected = shown_at.iter().rposition(|&s| s <= t + 1e-9).unwrap();
        assert_eq!(clock_reading(&frame), expected as u32, "at {t}");
        assert!(
            (frame.seconds - shown_at[expected]).abs() < 1e-6,
            "{} at {t}",
            frame.seconds
        );
    }
}

#[test]
fn negative_timestamps_from_an_edit_list_are_hidden_like_ffmpeg_does() {
    let dir = tempfile::tempdir().unwrap();
    // Shifting by -0.5 s makes the muxer write an edit list; the first half second (frames
    // 0–12) is decoded for reference only and never shown.
    let video = make_video(
        dir.path(),
        "shifted.mp4",
        &colour_clock(64, 48, 25, 4.0),
        &h264_with(&["-output_ts_offset", "-0.5"]),
    );
    let info = probe(&video).unwrap();
    assert!((info.duration_s.unwrap() - 3.5).abs() < 0.05, "{info:?}");
    let asked = [0.0, 0.01, 0.5, 1.0, 2.3, 3.45];
    let frames = times(&video, &asked, &small(16, 16));
    let first = clock_reading(&frames[0]);
    assert_eq!(first, 13, "the first frame shown");
    for (t, frame) in asked.iter().zip(&frames) {
        assert_eq!(
            clock_reading(frame),
            first + (t * 25.0 + 1e-9).floor() as u32,
            "at {t}"
        );
    }
    // And ffmpeg agrees on the pixels at those times.
    for frame in &frames[2..] {
        let reference = ffmpeg_frame(&video, frame.seconds - 0.0005, Some((16, 16)));
        assert!(mean_abs_diff(frame, &reference) < 2.0);
    }
}

#[test]
fn media_time_counts_from_the_container_start() {
    let dir = tempfile::tempdir().unwrap();
    let video = make_video(
        dir.path(),
        "late.mkv",
        &colour_clock(64, 48, 25, 4.0),
        &[
            "-c:v",
            "libx264",
            "-crf",
            "12",
            "-pix_fmt",
            "yuv420p",
            "-output_ts_offset",
            "10",
        ],
    );
    let info = probe(&video).unwrap();
    assert!((info.start_s - 10.0).abs() < 1e-6, "{info:?}");
    let frames = times(&video, &[0.0, 1.0, 3.9], &small(16, 16));
    let readings: Vec<u32> = frames.iter().map(clock_reading).collect();
    assert_eq!(readings, vec![0, 25, 97]);
    assert!((frames[1].seconds - 1.0).abs() < 1e-6);
}

#[test]
fn targets_before_the_first_picture_get_the_first_picture() {
    let dir = tempfile::tempdir().unwrap();
    // Sound from 0 s, pictures from about 0.5 s (no frames made up to fill the gap): media time
    // 0 is the sound's start.
    let video = dir.path().join("late_video.mp4");
    let clock = colour_clock(64, 48, 25, 3.0);
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=f=440:d=3.5",
        "-itsoffset",
        "0.5",
        "-f",
        "lavfi",
        "-i",
        &clock,
        "-map",
        "0:a",
        "-map",
        "1:v",
        "-c:a",
        "aac",
        "-c:v",
        "libx264",
        "-bf",
        "3",
        "-pix_fmt",
        "yuv420p",
        "-fps_mode",
        "passthrough",
        video.to_str().unwrap(),
    ]);
    let info = probe(&video).unwrap();
    assert!(info.start_s.abs() < 0.05, "{info:?}");
    let asked = [0.1, 1.01, 2.01, 0.3];
    let sampled = sample_video(
        &video,
        &FrameRequest::Times(asked.to_vec()),
        &small(16, 16),
        &CancelToken::new(),
    )
    .unwrap();
    let readings: Vec<u32> = sampled.frames.iter().map(clock_reading).collect();
    // Pictures start at 0.52 s (0.5 s and the AAC encoder's priming), frame n at 0.52 + n / 25.
    assert_eq!(readings, vec![0, 12, 37, 0]);
    assert!(
        (sampled.frames[0].seconds - 0.52).abs() < 0.01,
        "{}",
        sampled.frames[0].seconds
    );
    // Still by seeking, not by reading the file from the start.
    assert!(sampled.stats.seeks >= 1, "{:?}", sampled.stats);
}

/// Samples four times of `video` at display size and compares each frame with ffmpeg's.
fn matches_ffmpeg(video: &std::path::Path, duration: f64) -> Vec<RgbFrame> {
    let asked: Vec<f64> = [0.1, 0.37, 0.61, 0.93]
        .iter()
        .map(|f| f * duration)
        .collect();
    let frames = times(video, &asked, &native());
    for (t, frame) in asked.iter().zip(&frames) {
        assert!(
            frame.seconds <= t + 1e-9 && t - frame.seconds < 0.05,
            "{} for {t}",
            frame.seconds
        );
        let reference = ffmpeg_frame(video, frame.seconds - 0.0005, None);
        let diff = mean_abs_diff(frame, &reference);
        assert!(
            diff < 2.0,
            "{}: frame at {t} differs from ffmpeg's by {diff}",
            video.display()
        );
    }
    frames
}

#[test]
fn pixels_match_ffmpeg_across_codecs_bit_depths_and_odd_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let source = "testsrc2=s=160x120:r=25:d=4";
    let cases: Vec<(&str, Vec<&str>, &str, &str)> = vec![
        (
            "h264.mp4",
            vec!["-c:v", "libx264", "-bf", "3", "-pix_fmt", "yuv420p"],
            "h264",
            "yuv420p",
        ),
        (
            "mpeg4.avi",
            vec!["-c:v", "mpeg4", "-q:v", "3"],
            "mpeg4",
            "yuv420p",
        ),
        (
            "ten_bit.mkv",
            vec!["-c:v", "libx264", "-pix_fmt", "yuv420p10le"],
            "h264",
            "yuv420p10le",
        ),
        (
            "odd.mp4",
            vec!["-c:v", "mpeg4", "-vf", "scale=123:77,setsar=1"],
            "mpeg4",
            "yuv420p",
        ),
        (
            "odd444.mkv",
            vec![
                "-c:v",
                "libx264",
                "-pix_fmt",
                "yuv444p",
                "-vf",
                "scale=123:77,setsar=1",
            ],
            "h264",
            "yuv444p",
        ),
    ];
    for (name, args, codec, pixel_format) in cases {
        let video = make_video(dir.path(), name, source, &args);
        let info = probe(&video).unwrap();
        let stream = info.video.as_ref().unwrap();
        assert_eq!(
            (stream.codec.as_str(), stream.pixel_format.as_str()),
            (codec, pixel_format)
        );
        let frames = matches_ffmpeg(&video, 4.0);
        let expected = if name.starts_with("odd") {
            (123, 77)
        } else {
            (160, 120)
        };
        assert_eq!((frames[0].width, frames[0].height), expected, "{name}");
    }
    // Non-square pixels: 123×77 stored, shown 103×77 (the 4:3 picture it was scaled from).
    let anamorphic = make_video(
        dir.path(),
        "wide_pixels.mkv",
        source,
        &["-c:v", "libx264", "-pix_fmt", "yuv444p", "-s", "123x77"],
    );
    let stream = probe(&anamorphic).unwrap().video.unwrap();
    assert_eq!(
        (stream.width, stream.display_width, stream.display_height),
        (123, 103, 77)
    );
    let ours = times(&anamorphic, &[1.5], &native()).remove(0);
    let reference = ffmpeg_frame(&anamorphic, ours.seconds - 0.0005, Some((103, 77)));
    assert!(mean_abs_diff(&ours, &reference) < 2.0);
    if has_encoder("libvpx-vp9") {
        let video = make_video(
            dir.path(),
            "vp9.webm",
            source,
            &[
                "-c:v",
                "libvpx-vp9",
                "-deadline",
                "realtime",
                "-cpu-used",
                "8",
            ],
        );
        assert_eq!(probe(&video).unwrap().video.unwrap().codec, "vp9");
        matches_ffmpeg(&video, 4.0);
    }
}

#[test]
fn rotated_videos_come_out_upright_as_ffmpeg_shows_them() {
    let dir = tempfile::tempdir().unwrap();
    let plain = make_video(
        dir.path(),
        "plain.mp4",
        "testsrc2=s=160x96:r=25:d=2",
        &["-c:v", "libx264", "-pix_fmt", "yuv420p"],
    );
    let upright = times(&plain, &[1.0], &native()).remove(0);
    for tag in ["90", "180", "270"] {
        let turned = dir.path().join(format!("turned{tag}.mp4"));
        let (plain_arg, turned_arg) = (plain.to_str().unwrap(), turned.to_str().unwrap());
        let rotate = format!("rotate={tag}");
        ffmpeg(&[
            "-i",
            plain_arg,
            "-c",
            "copy",
            "-metadata:s:v:0",
            &rotate,
            turned_arg,
        ]);
        let info = probe(&turned).unwrap();
        let stream = info.video.unwrap();
        let frame = matches_ffmpeg(&turned, 2.0).remove(0);
        let frame_at_1s = times(&turned, &[1.0], &native()).remove(0);
        let swapped = stream.rotation.swaps_dimensions();
        assert_eq!(swapped, tag != "180", "rotate={tag}: {:?}", stream.rotation);
        let expected = if swapped { (96, 160) } else { (160, 96) };
        assert_eq!((frame.width, frame.height), expected, "rotate={tag}");
        assert_eq!((stream.display_width, stream.display_height), expected);
        // Our turned frame is the upright one turned by the stream's rotation, pixel for pixel.
        let mut by_hand = vec![0u8; upright.pixels.len()];
        let (w, h) = (frame_at_1s.width as usize, frame_at_1s.height as usize);
        for y in 0..h {
            for x in 0..w {
                let (sx, sy) = source_of(
                    stream.rotation,
                    x,
                    y,
                    upright.width as usize,
                    upright.height as usize,
                );
                let from = (sy * upright.width as usize + sx) * 3;
                by_hand[(y * w + x) * 3..(y * w + x) * 3 + 3]
                    .copy_from_slice(&upright.pixels[from..from + 3]);
            }
        }
        assert_eq!(frame_at_1s.pixels, by_hand, "rotate={tag}");
    }
    // FFmpeg 5.1 stores `rotate=90` as a quarter turn counter-clockwise (ffprobe: rotation=90).
    let info = probe(&dir.path().join("turned90.mp4")).unwrap();
    assert_eq!(info.video.unwrap().rotation, Rotation::Clockwise270);
}

/// Where display pixel (x, y) comes from in a `w`×`h` upright picture.
fn source_of(rotation: Rotation, x: usize, y: usize, w: usize, h: usize) -> (usize, usize) {
    match rotation {
        Rotation::None => (x, y),
        Rotation::Clockwise90 => (y, h - 1 - x),
        Rotation::Clockwise180 => (w - 1 - x, h - 1 - y),
        Rotation::Clockwise270 => (w - 1 - y, x),
    }
}

#[test]
fn fits_pad_crop_and_stretch() {
    let dir = tempfile::tempdir().unwrap();
    // White picture 16:9, so padding shows as black and content as white.
    let video = make_video(
        dir.path(),
        "white.mp4",
        "color=c=white:s=320x180:r=25:d=1",
        &["-c:v", "libx264", "-pix_fmt", "yuv420p"],
    );
    let fit = |fit: Fit| {
        let options = SampleOptions {
            size: Some(FrameSize::new(64, 64, fit)),
            ..SampleOptions::default()
        };
        times(&video, &[0.5], &options).remove(0)
    };
    let row_mean = |frame: &RgbFrame, y: u32| {
        (0..frame.width)
            .map(|x| f64::from(frame.pixel(x, y)[0]))
            .sum::<f64>()
            / f64::from(frame.width)
    };
    let padded = fit(Fit::Pad);
    assert_eq!((padded.width, padded.height), (64, 64));
    // 64×36 of picture centred: rows 0–13 and 50–63 are black.
    assert!(row_mean(&padded, 0) < 1.0 && row_mean(&padded, 63) < 1.0);
    assert!(row_mean(&padded, 13) < 1.0 && row_mean(&padded, 50) < 1.0);
    assert!(
        row_mean(&padded, 15) > 250.0
            && row_mean(&padded, 32) > 250.0
            && row_mean(&padded, 48) > 250.0
    );
    let cropped = fit(Fit::Crop);
    assert!((0..64).all(|y| row_mean(&cropped, y) > 250.0));
    let stretched = fit(Fit::Stretch);
    assert!((0..64).all(|y| row_mean(&stretched, y) > 250.0));

    // Crop keeps the centre: compare with ffmpeg's scale-then-crop of the same frame.
    let pattern = make_video(
        dir.path(),
        "pattern.mp4",
        "testsrc2=s=320x180:r=25:d=1",
        &["-c:v", "libx264", "-pix_fmt", "yuv420p"],
    );
    let options = SampleOptions {
        size: Some(FrameSize::new(64, 64, Fit::Crop)),
        ..SampleOptions::default()
    };
    let ours = times(&pattern, &[0.5], &options).remove(0);
    // 320×180 → 114×64 (rounded), centre 64 columns start at 25.
    let wide = ffmpeg_frame(&pattern, ours.seconds - 0.0005, Some((114, 64)));
    let mut centre = Vec::new();
    for y in 0..64 {
        let start = (y * 114 + 25) * 3;
        centre.extend_from_slice(&wide.pixels[start..start + 64 * 3]);
    }
    let centre = RgbFrame::new(64, 64, centre, 0.0).unwrap();
    let diff = mean_abs_diff(&ours, &centre);
    assert!(diff < 2.0, "centre crop differs from ffmpeg's by {diff}");
}

#[test]
fn a_few_frames_of_a_long_video_decode_a_small_part_of_it() {
    let dir = tempfile::tempdir().unwrap();
    // 120 s at 25 fps with x264's default keyframe interval (250 frames = 10 s); no extra
    // keyframes at "scene cuts" (every frame of the colour clock looks like one).
    let video = make_video(
        dir.path(),
        "long.mp4",
        &colour_clock(64, 48, 25, 120.0),
        &h264_with(&["-sc_threshold", "0"]),
    );
    let info = probe(&video).unwrap();
    let total = info.video.as_ref().unwrap().frame_count.unwrap();
    assert_eq!(total, 3000);
    let sampled = sample_video(
        &video,
        &FrameRequest::whole(4),
        &small(16, 16),
        &CancelToken::new(),
    )
    .unwrap();
    for (t, frame) in sampled.targets.iter().zip(&sampled.frames) {
        assert_eq!(
            clock_reading(frame),
            (t * 25.0 + 1e-9).floor() as u32,
            "at {t}"
        );
    }
    let stats = sampled.stats;
    // Each target costs at most one keyframe interval (250 packets) plus the reorder delay.
    assert!(stats.packets_decoded <= 4 * 260, "{stats:?}");
    assert!(
        stats.packets_decoded < total / 3,
        "{stats:?} of {total} packets"
    );
    assert_eq!(stats.seeks, 4, "{stats:?}");
    // B-frames before each target are skipped, not reconstructed.
    assert!(
        stats.packets_skippable > 0 && stats.frames_decoded < stats.packets_decoded,
        "{stats:?}"
    );

    // Targets inside one keyframe interval (0–10 s) are reached by decoding on, not by seeking
    // back to the same keyframe for each.
    let mut decoder = VideoDecoder::open(&video, 1).unwrap();
    let asked = [1.0, 3.0, 5.0, 7.0, 9.0];
    let frames = decoder
        .frames_at(
            &asked,
            Some(FrameSize::square(16, Fit::Stretch)),
            &CancelToken::new(),
        )
        .unwrap();
    let stats = decoder.stats();
    assert_eq!(stats.seeks, 1, "{stats:?}");
    assert!(stats.packets_decoded <= 9 * 25 + 10, "{stats:?}");
    for (t, frame) in asked.iter().zip(&frames) {
        assert_eq!(clock_reading(frame), (t * 25.0) as u32);
    }
}

#[test]
fn sampling_stops_when_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let video = make_video(
        dir.path(),
        "c.mp4",
        &colour_clock(32, 32, 25, 2.0),
        &["-c:v", "libx264", "-pix_fmt", "yuv420p"],
    );
    let cancel = CancelToken::new();
    cancel.cancel();
    let error = sample_video(&video, &FrameRequest::whole(4), &native(), &cancel).unwrap_err();
    assert!(matches!(error, MediaError::Cancelled), "{error}");
}

#[test]
fn probe_describes_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let video = make_video(
        dir.path(),
        "av.mkv",
        "testsrc2=s=160x120:r=30:d=3",
        &[
            "-f",
            "lavfi",
            "-i",
            "sine=f=440:d=3",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
        ],
    );
    let info = probe(&video).unwrap();
    assert!(info.container.contains("matroska"), "{}", info.container);
    assert_eq!(info.stream_count, 2);
    assert!((info.duration_s.unwrap() - 3.0).abs() < 0.1, "{info:?}");
    let stream = info.video.unwrap();
    assert_eq!((stream.width, stream.height), (160, 120));
    assert_eq!((stream.display_width, stream.display_height), (160, 120));
    assert!((stream.fps.unwrap() - 30.0).abs() < 1e-6);
    assert_eq!(stream.rotation, Rotation::None);
    assert_eq!(stream.time_base, (1, 1000));
}
