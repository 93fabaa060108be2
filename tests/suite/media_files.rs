//! Bad files, batches, the thumbnail cache and the video writer.

use std::path::{Path, PathBuf};

use crate::support::media::*;
use crossclr::jobs::{CancelToken, progress_channel};
use crossclr::media::{
    BatchItem, Fit, FrameRequest, FrameSize, MediaError, RgbFrame, SampleOptions, ThumbnailCache,
    ThumbnailFormat, ThumbnailRequest, probe, sample_batch, sample_video, write_video,
};

/// Why sampling `frames` evenly from the whole of `path` fails.
fn sampling_error(path: &Path, frames: usize) -> MediaError {
    sample_video(
        path,
        &FrameRequest::whole(frames),
        &SampleOptions::default(),
        &CancelToken::new(),
    )
    .unwrap_err()
}

fn good_video(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let mut args = vec!["-c:v", "libx264", "-pix_fmt", "yuv420p"];
    args.extend_from_slice(extra);
    make_video(dir, name, &colour_clock(64, 48, 25, 4.0), &args)
}

/// Whether an error is the one a bad file must give.
type ExpectedError = fn(&MediaError) -> bool;

/// The bad files of the batch test, each with the error it must give.
fn bad_files(dir: &Path) -> Vec<(PathBuf, ExpectedError)> {
    let empty = dir.join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();

    let text = dir.join("notes.mp4");
    std::fs::write(&text, "these are my notes, not a video\n".repeat(20)).unwrap();

    // Cut in half: the MP4 index (written last by default) is gone.
    let whole = good_video(dir, "whole.mp4", &[]);
    let bytes = std::fs::read(&whole).unwrap();
    let cut = dir.join("cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();

    // Cut in half with the index first: it opens, then the pictures stop at about 2 of 4 s.
    let fast = good_video(dir, "fast.mp4", &["-movflags", "+faststart"]);
    let bytes = std::fs::read(&fast).unwrap();
    let cut_fast = dir.join("cut_fast.mp4");
    std::fs::write(&cut_fast, &bytes[..bytes.len() / 2]).unwrap();

    let audio = make_video(dir, "voice.mp4", "sine=f=440:d=2", &["-c:a", "aac"]);

    // A video stream whose codec id no decoder knows: Matroska's codec id string altered.
    let mkv = good_video(dir, "known.mkv", &[]);
    let mut bytes = std::fs::read(&mkv).unwrap();
    let id = b"V_MPEG4/ISO/AVC";
    let at = bytes
        .windows(id.len())
        .position(|w| w == id)
        .expect("codec id in the file");
    bytes[at..at + id.len()].copy_from_slice(b"V_NOTAREALCODEC");
    let unknown = dir.join("unknown_codec.mkv");
    std::fs::write(&unknown, &bytes).unwrap();

    vec![
        (empty, |e| matches!(e, MediaError::Empty { .. })),
        (text, |e| matches!(e, MediaError::NotMedia { .. })),
        (cut, |e| {
            matches!(
                e,
                MediaError::Damaged {
                    container: "MP4/QuickTime",
                    ..
                }
            )
        }),
        (cut_fast, |e| matches!(e, MediaError::Truncated { .. })),
        (audio, |e| matches!(e, MediaError::NoVideo { .. })),
        (unknown, |e| {
            matches!(e, MediaError::UnsupportedCodec { .. })
        }),
        (dir.join("missing.mp4"), |e| {
            matches!(e, MediaError::Io { .. })
        }),
    ]
}

#[test]
fn bad_files_give_typed_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    for (path, is_expected) in bad_files(dir.path()) {
        let error = sampling_error(&path, 8);
        assert!(
            is_expected(&error),
            "{}: unexpected {error:?}",
            path.display()
        );
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(error.to_string().contains(&name), "{error}");
        assert!(error.is_bad_file(), "{error}");
    }
    // The reasons read as reasons.
    let audio = dir.path().join("voice.mp4");
    assert!(!probe(&audio).unwrap().has_video());
    let message = sampling_error(&audio, 1).to_string();
    assert!(
        message.contains("no video stream (it holds 1 audio stream)"),
        "{message}"
    );
    // A song with its cover picture is still no video.
    let song = dir.path().join("song.mp3");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=d=2",
        "-f",
        "lavfi",
        "-i",
        "color=red:s=64x64:d=1",
        "-map",
        "0:a",
        "-map",
        "1:v",
        "-c:a",
        "libmp3lame",
        "-c:v",
        "mjpeg",
        "-frames:v",
        "1",
        "-disposition:v:0",
        "attached_pic",
        song.to_str().unwrap(),
    ]);
    assert!(!probe(&song).unwrap().has_video());
    let message = sampling_error(&song, 1).to_string();
    assert!(
        message.contains("(it holds 1 audio stream and 1 cover picture)"),
        "{message}"
    );
    let unknown = dir.path().join("unknown_codec.mkv");
    let message = probe(&unknown).unwrap_err().to_string();
    assert!(
        message.contains("no decoder for the video codec `unknown`"),
        "{message}"
    );
    let truncated = sampling_error(&dir.path().join("cut_fast.mp4"), 8);
    match truncated {
        MediaError::Truncated {
            data_ends_s,
            duration_s,
            ..
        } => {
            assert!(data_ends_s < 3.0, "{data_ends_s}");
            assert!((duration_s.unwrap() - 4.0).abs() < 0.1);
        }
        other => panic!("{other}"),
    }
}

#[test]
fn a_batch_skips_bad_files_and_lists_them_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let bad = bad_files(dir.path());
    let mut items = Vec::new();
    let mut expected_bad = Vec::new();
    for (i, (path, check)) in bad.into_iter().enumerate() {
        // Interleave good and bad files.
        let good = good_video(dir.path(), &format!("good{i}.mp4"), &[]);
        items.push(BatchItem {
            path: good,
            request: FrameRequest::whole(3),
        });
        expected_bad.push((items.len(), check));
        items.push(BatchItem {
            path,
            request: FrameRequest::whole(3),
        });
    }
    let (sender, receiver) = progress_channel(64);
    let options = SampleOptions {
        size: Some(FrameSize::square(24, Fit::Crop)),
        ..SampleOptions::default()
    };
    let mut good_done = Vec::new();
    let summary = sample_batch(
        &items,
        &options,
        2,
        &CancelToken::new(),
        Some(&sender),
        |index, frames| {
            assert_eq!(frames.frames.len(), 3);
            for (t, frame) in frames.targets.iter().zip(&frames.frames) {
                assert_eq!(clock_reading(frame), (t * 25.0) as u32);
            }
            good_done.push(index);
        },
    );
    good_done.sort();
    assert_eq!(good_done, (0..items.len()).step_by(2).collect::<Vec<_>>());
    assert_eq!(summary.succeeded, 7);
    assert_eq!(summary.failed.len(), 7);
    assert!(!summary.cancelled);
    for (index, check) in expected_bad {
        let failure = summary
            .failed
            .iter()
            .find(|f| f.index == index)
            .expect("listed");
        assert_eq!(failure.path, items[index].path);
        assert!(check(&failure.error), "{}", failure.error);
    }
    let report = summary.report();
    assert!(
        report.starts_with("7 of 14 videos done, 7 failed"),
        "{report}"
    );
    for name in [
        "empty.mp4",
        "notes.mp4",
        "cut.mp4",
        "cut_fast.mp4",
        "voice.mp4",
        "unknown_codec.mkv",
        "missing.mp4",
    ] {
        assert!(report.contains(name), "{report}");
    }
    assert!(summary.stats.packets_decoded > 0);
    let updates: Vec<_> = receiver.try_iter().collect();
    assert_eq!(updates.len(), 14);
    assert_eq!(updates.iter().filter(|u| u.error.is_some()).count(), 7);
}

#[test]
fn a_cancelled_batch_reports_what_it_did_not_do() {
    let dir = tempfile::tempdir().unwrap();
    let video = good_video(dir.path(), "v.mp4", &[]);
    let items: Vec<BatchItem> = (0..6)
        .map(|_| BatchItem {
            path: video.clone(),
            request: FrameRequest::whole(2),
        })
        .collect();
    let cancel = CancelToken::new();
    let summary = sample_batch(
        &items,
        &SampleOptions::default(),
        1,
        &cancel,
        None,
        |_, _| cancel.cancel(),
    );
    assert!(summary.cancelled);
    // The worker may have finished the next video or two before the first result arrived (it
    // holds one finished result while the channel is full), but no more.
    assert!(
        (1..=3).contains(&summary.succeeded),
        "{}",
        summary.succeeded
    );
    assert_eq!(summary.succeeded + summary.not_done, 6);
    assert!(summary.failed.is_empty());
}

#[test]
fn thumbnails_are_cached_and_reused_without_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    let video = make_video(
        dir.path(),
        "pattern.mp4",
        "testsrc2=s=320x180:r=25:d=4",
        &["-c:v", "libx264", "-pix_fmt", "yuv420p"],
    );
    let cache = ThumbnailCache::for_project(&project);
    assert_eq!(cache.dir(), project.join("cache/thumbs"));
    let request = ThumbnailRequest {
        video_id: "pattern".into(),
        path: video.clone(),
        times: vec![0.5, 1.5, 2.5, 3.5],
    };
    let first = cache.thumbnails(&request, &CancelToken::new()).unwrap();
    assert_eq!((first.created, first.reused), (4, 0));
    assert!(first.stats.frames_decoded > 0);
    assert_eq!(
        first.paths[1],
        project.join("cache/thumbs/pattern/1500ms-128x128-crop.jpg")
    );
    for (path, t) in first.paths.iter().zip(&request.times) {
        let image = image::open(path).unwrap().to_rgb8();
        assert_eq!(image.dimensions(), (128, 128));
        // The JPEG shows the frame: compare with ffmpeg's frame scaled and cropped the same way.
        let ours = RgbFrame::new(128, 128, image.into_raw(), *t).unwrap();
        // The frame shown at t (25 fps) began at floor(25 t) / 25.
        let shown = (t * 25.0).floor() / 25.0;
        let wide = ffmpeg_frame(&video, shown - 0.0005, Some((228, 128)));
        let mut centre = Vec::new();
        for y in 0..128 {
            let start = (y * 228 + 50) * 3;
            centre.extend_from_slice(&wide.pixels[start..start + 128 * 3]);
        }
        let centre = RgbFrame::new(128, 128, centre, *t).unwrap();
        let diff = mean_abs_diff(&ours, &centre);
        assert!(
            diff < 6.0,
            "thumbnail at {t} differs from ffmpeg's frame by {diff}"
        );
    }
    // The second time nothing is decoded: it even works with the video gone.
    std::fs::remove_file(&video).unwrap();
    let second = cache.thumbnails(&request, &CancelToken::new()).unwrap();
    assert_eq!((second.created, second.reused), (0, 4));
    assert_eq!(second.paths, first.paths);
    assert_eq!(second.stats.frames_decoded, 0);
    // Only the missing one is made when a time is added (and the video is back).
    let video = make_video(
        dir.path(),
        "pattern.mp4",
        "testsrc2=s=320x180:r=25:d=4",
        &["-c:v", "libx264", "-pix_fmt", "yuv420p"],
    );
    let more = ThumbnailRequest {
        times: vec![0.5, 2.0],
        path: video,
        ..request
    };
    let third = cache.thumbnails(&more, &CancelToken::new()).unwrap();
    assert_eq!((third.created, third.reused), (1, 1));
    // No temporary files are left behind.
    let names: Vec<String> = std::fs::read_dir(project.join("cache/thumbs/pattern"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 5, "{names:?}");
    assert!(
        names.iter().all(|n| n.ends_with("-128x128-crop.jpg")),
        "{names:?}"
    );
}

#[test]
fn thumbnail_batches_list_bad_files_and_png_works() {
    let dir = tempfile::tempdir().unwrap();
    let cache = ThumbnailCache::in_dir(dir.path().join("thumbs"))
        .with_size(FrameSize::new(96, 64, Fit::Pad))
        .with_format(ThumbnailFormat::Png);
    let good = good_video(dir.path(), "good.mp4", &[]);
    let empty = dir.path().join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    let requests = vec![
        ThumbnailRequest {
            video_id: "good".into(),
            path: good,
            times: vec![1.0, 3.0],
        },
        ThumbnailRequest {
            video_id: "empty".into(),
            path: empty.clone(),
            times: vec![1.0],
        },
    ];
    let mut made = Vec::new();
    let summary = cache.thumbnails_batch(&requests, 0, &CancelToken::new(), None, |i, t| {
        made.push((i, t))
    });
    assert_eq!(summary.succeeded, 1);
    assert_eq!(summary.failed.len(), 1);
    assert_eq!(summary.failed[0].path, empty);
    assert!(matches!(summary.failed[0].error, MediaError::Empty { .. }));
    let (index, thumbnails) = &made[0];
    assert_eq!(*index, 0);
    let png = image::open(&thumbnails.paths[1]).unwrap().to_rgb8();
    assert_eq!(png.dimensions(), (96, 64));
    // Frame 75 of the colour clock, losslessly stored.
    let frame = RgbFrame::new(96, 64, png.into_raw(), 3.0).unwrap();
    assert_eq!(clock_reading(&frame), 75);
}

#[test]
fn written_videos_play_back_frame_for_frame() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("synth.mp4");
    let (width, height, fps) = (96u32, 64u32, 10.0);
    // Frame i is flat in the colour clock's colour for i.
    let clock_colour = |i: u32| {
        let digit = |d: u32| (16 + 9 * d) as u8;
        [digit(i % 24), digit((i / 24) % 24), digit(i / 576)]
    };
    let frames = (0..30u32).map(|i| {
        let pixels = clock_colour(i).repeat((width * height) as usize);
        RgbFrame::new(width, height, pixels, f64::from(i) / fps).unwrap()
    });
    let written = write_video(&path, width, height, fps, frames).unwrap();
    assert_eq!(written.frames, 30);
    assert_eq!(written.encoder, "libx264");
    let info = probe(&path).unwrap();
    let stream = info.video.unwrap();
    assert_eq!(
        (stream.codec.as_str(), stream.width, stream.height),
        ("h264", 96, 64)
    );
    assert_eq!(stream.frame_count, Some(30));
    assert!((stream.fps.unwrap() - 10.0).abs() < 1e-6);
    assert!(
        (info.duration_s.unwrap() - 3.0).abs() < 0.01,
        "{:?}",
        info.duration_s
    );
    let times: Vec<f64> = (0..30).map(|i| f64::from(i) / fps + 0.05).collect();
    let back = sample_video(
        &path,
        &FrameRequest::Times(times),
        &SampleOptions::default(),
        &CancelToken::new(),
    )
    .unwrap();
    for (i, frame) in back.frames.iter().enumerate() {
        assert_eq!(clock_reading(frame), i as u32, "frame {i}");
        assert!(
            (frame.seconds - i as f64 / fps).abs() < 1e-6,
            "frame {i} at {}",
            frame.seconds
        );
    }
    // Only the finished file is in the folder.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("synth.mp4")]);

    // Frames of the wrong size are refused by index, and nothing is left behind.
    let wrong = vec![
        RgbFrame::new(width, height, vec![0; (width * height * 3) as usize], 0.0).unwrap(),
        RgbFrame::new(32, 32, vec![0; 32 * 32 * 3], 0.1).unwrap(),
    ];
    let bad = dir.path().join("bad.mp4");
    let error = write_video(&bad, width, height, fps, wrong).unwrap_err();
    assert!(error.to_string().contains("frame 1 is 32×32"), "{error}");
    assert!(!bad.exists());
    let none = write_video(&bad, width, height, fps, Vec::new()).unwrap_err();
    assert!(none.to_string().contains("no frames to write"), "{none}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}
