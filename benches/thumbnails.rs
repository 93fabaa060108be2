//! Thumbnail sampling: 8 evenly spaced frames per video, centre-cropped to 224×224 RGB, from 20
//! one-minute 1080p H.264 videos, three ways on the same number of concurrent workers:
//!
//! - ours: `media::sample_batch`, a pool of one decoding thread per core;
//! - `ffmpeg -ss T -i FILE -frames:v 1` once per frame (input seeking: keyframe, then decode on);
//! - `ffmpeg -i FILE -vf fps=8/D,…` once per video (one decoding pass over the whole file).
//!
//! Every ffmpeg process runs with `-threads 1` and as many at once as ours has threads, so each
//! way gets the same cores; all write 224×224 RGB (raw) like ours returns. The videos are made once
//! with the ffmpeg tool (testsrc2/testsrc with a hue shift per video, x264 `veryfast`: B-frames,
//! CABAC, x264's default keyframe interval of 250) into target/bench/thumb_videos/ and reused.
//! Encoding them takes 10–15 minutes on a quiet 2-core machine; `CROSSCLR_BENCH_DISTINCT=5`
//! encodes only 5 and makes the rest stream copies of them.
//!
//! Prints a table (seconds, ratio to the faster ffmpeg way) with the load average beside it, and
//! writes target/bench/thumbnails.json. Goal: ours ≤ 0.5× the faster ffmpeg way.
//! `CROSSCLR_BENCH_VIDEOS` and `CROSSCLR_BENCH_SECONDS` shrink the set for a quick look.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use crossclr::jobs::CancelToken;
use crossclr::media::{
    BatchItem, Fit, FrameRequest, FrameSize, RgbFrame, SampleOptions, SampledFrames, clip_targets,
    default_workers, probe, sample_batch,
};
use serde_json::json;

const FRAMES: usize = 8;
const SIDE: u32 = 224;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn ffmpeg(args: &[String]) -> anyhow::Result<()> {
    let output = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-v", "error", "-y"])
        .args(args)
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "ffmpeg {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// Runs `jobs` on `workers` threads at once, stopping at the first failure.
fn run_parallel<J: Sync>(
    jobs: &[J],
    workers: usize,
    run: impl Fn(&J) -> anyhow::Result<()> + Sync,
) -> anyhow::Result<()> {
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<()> {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(job) = jobs.get(i) else {
                            return Ok(());
                        };
                        run(job)?;
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().expect("bench worker panicked"))
    })
}

/// Makes the videos that are not there yet (written under a temporary name, then renamed). The
/// first `distinct` are encoded; the rest are stream copies of them (`-c copy`: separate files
/// with the same pictures), because encoding a minute of 1080p takes minutes on a busy 2-core
/// machine while decoding cost depends only on the stream, not on which file it sits in.
fn make_videos(
    dir: &Path,
    count: usize,
    distinct: usize,
    seconds: usize,
    workers: usize,
) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let paths: Vec<PathBuf> = (0..count)
        .map(|i| dir.join(format!("video{i:02}_1080p30_{seconds}s_veryfast.mp4")))
        .collect();
    let missing = |range: std::ops::Range<usize>| -> Vec<usize> {
        range.filter(|&i| !paths[i].is_file()).collect()
    };
    let to_encode = missing(0..distinct.min(count));
    if !to_encode.is_empty() {
        eprintln!(
            "encoding {} videos into {} (once; minutes each on a busy 2-core machine)",
            to_encode.len(),
            dir.display()
        );
    }
    let make = |i: usize, args: Vec<String>| -> anyhow::Result<()> {
        let temp = paths[i].with_extension("partial.mp4");
        let mut args = args;
        args.push(temp.to_string_lossy().into_owned());
        ffmpeg(&args)?;
        std::fs::rename(&temp, &paths[i])?;
        eprintln!("  made {}", paths[i].display());
        Ok(())
    };
    run_parallel(&to_encode, workers, |&i| {
        let source = if i % 2 == 0 { "testsrc2" } else { "testsrc" };
        let args = [
            "-f".to_string(),
            "lavfi".into(),
            "-i".into(),
            format!("{source}=s=1920x1080:r=30,hue=h={}", i * 18),
            "-t".into(),
            seconds.to_string(),
            "-c:v".into(),
            "libx264".into(),
            "-preset".into(),
            "veryfast".into(),
            "-pix_fmt".into(),
            "yuv420p".into(),
        ];
        make(i, args.to_vec())
    })?;
    for i in missing(distinct.min(count)..count) {
        let original = paths[i % distinct].to_string_lossy().into_owned();
        make(i, vec!["-i".into(), original, "-c".into(), "copy".into()])?;
    }
    Ok(paths)
}

fn crop_filter() -> String {
    format!("scale={SIDE}:{SIDE}:force_original_aspect_ratio=increase,crop={SIDE}:{SIDE}")
}

/// One ffmpeg process per frame, `-ss` before `-i` (keyframe seek, then decode to the frame).
fn cli_per_frame(
    videos: &[PathBuf],
    duration: f64,
    out: &Path,
    workers: usize,
) -> anyhow::Result<()> {
    let jobs: Vec<(usize, usize, f64)> = videos
        .iter()
        .enumerate()
        .flat_map(|(v, _)| {
            clip_targets(0.0, duration, FRAMES)
                .into_iter()
                .enumerate()
                .map(move |(k, t)| (v, k, t))
        })
        .collect();
    run_parallel(&jobs, workers, |&(v, k, t)| {
        let target = out.join(format!("v{v}_f{k}.rgb"));
        ffmpeg(&[
            "-threads".into(),
            "1".into(),
            "-ss".into(),
            format!("{t:.6}"),
            "-i".into(),
            videos[v].to_string_lossy().into_owned(),
            "-frames:v".into(),
            "1".into(),
            "-vf".into(),
            crop_filter(),
            "-f".into(),
            "rawvideo".into(),
            "-pix_fmt".into(),
            "rgb24".into(),
            target.to_string_lossy().into_owned(),
        ])
    })
}

/// One ffmpeg process per video, decoding all of it and keeping 8 frames at even steps.
fn cli_fps_pass(
    videos: &[PathBuf],
    duration: f64,
    out: &Path,
    workers: usize,
) -> anyhow::Result<()> {
    let jobs: Vec<usize> = (0..videos.len()).collect();
    run_parallel(&jobs, workers, |&v| {
        let target = out.join(format!("v{v}_all.rgb"));
        ffmpeg(&[
            "-threads".into(),
            "1".into(),
            "-i".into(),
            videos[v].to_string_lossy().into_owned(),
            "-vf".into(),
            format!("fps={FRAMES}/{duration},{}", crop_filter()),
            "-frames:v".into(),
            FRAMES.to_string(),
            "-f".into(),
            "rawvideo".into(),
            "-pix_fmt".into(),
            "rgb24".into(),
            target.to_string_lossy().into_owned(),
        ])
    })
}

fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
    let total: u64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    total as f64 / a.len().max(1) as f64
}

fn main() -> anyhow::Result<()> {
    let count = env_number("CROSSCLR_BENCH_VIDEOS", 20);
    let seconds = env_number("CROSSCLR_BENCH_SECONDS", 60);
    let distinct = env_number("CROSSCLR_BENCH_DISTINCT", 20).clamp(1, count.max(1));
    let workers = default_workers();
    let bench_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    let videos = make_videos(
        &bench_dir.join("thumb_videos"),
        count,
        distinct,
        seconds,
        workers,
    )?;
    let info = probe(&videos[0])?;
    let duration = info.duration_s.unwrap_or(seconds as f64);
    let total_packets: u64 = videos
        .iter()
        .map(|v| probe(v).map(|i| i.video.and_then(|s| s.frame_count).unwrap_or(0)))
        .sum::<Result<u64, _>>()?;
    // Every way starts with the files in the page cache.
    for video in &videos {
        std::fs::read(video)?;
    }
    let scratch = tempfile::tempdir()?;

    let items: Vec<BatchItem> = videos
        .iter()
        .map(|path| BatchItem {
            path: path.clone(),
            request: FrameRequest::whole(FRAMES),
        })
        .collect();
    let options = SampleOptions {
        size: Some(FrameSize::square(SIDE, Fit::Crop)),
        decoder_threads: 1,
    };
    let mut rows = Vec::new();

    let load_before = load_average();
    let start = Instant::now();
    let mut ours: Vec<Option<SampledFrames>> = vec![None; videos.len()];
    let summary = sample_batch(
        &items,
        &options,
        workers,
        &CancelToken::new(),
        None,
        |i, frames| {
            ours[i] = Some(frames);
        },
    );
    let ours_s = start.elapsed().as_secs_f64();
    anyhow::ensure!(summary.failed.is_empty(), "{}", summary.report());
    rows.push((
        "ours: media::sample_batch",
        ours_s,
        load_before,
        load_average(),
    ));

    let per_frame_dir = scratch.path().join("per_frame");
    std::fs::create_dir_all(&per_frame_dir)?;
    let load_before = load_average();
    let start = Instant::now();
    cli_per_frame(&videos, duration, &per_frame_dir, workers)?;
    let per_frame_s = start.elapsed().as_secs_f64();
    rows.push((
        "ffmpeg -ss T -i FILE -frames:v 1, per frame",
        per_frame_s,
        load_before,
        load_average(),
    ));

    let fps_dir = scratch.path().join("fps_pass");
    std::fs::create_dir_all(&fps_dir)?;
    let load_before = load_average();
    let start = Instant::now();
    cli_fps_pass(&videos, duration, &fps_dir, workers)?;
    let fps_s = start.elapsed().as_secs_f64();
    rows.push((
        "ffmpeg -vf fps=8/D,scale,crop, per video",
        fps_s,
        load_before,
        load_average(),
    ));

    // Our frames are the ones the per-frame ffmpeg way picks (it takes the first frame at or
    // after T, we the frame shown at T: the same or a neighbour, so near-identical pixels).
    let frame_bytes = (SIDE * SIDE * 3) as usize;
    let mut diffs = Vec::new();
    for (v, sampled) in ours.iter().enumerate() {
        let sampled = sampled.as_ref().expect("every video sampled");
        for (k, frame) in sampled.frames.iter().enumerate() {
            let theirs = std::fs::read(per_frame_dir.join(format!("v{v}_f{k}.rgb")))?;
            anyhow::ensure!(
                theirs.len() == frame_bytes,
                "ffmpeg wrote {} bytes",
                theirs.len()
            );
            check_frame(frame)?;
            diffs.push(mean_abs_diff(&frame.pixels, &theirs));
        }
        let all = std::fs::metadata(fps_dir.join(format!("v{v}_all.rgb")))?.len() as usize;
        anyhow::ensure!(
            all == FRAMES * frame_bytes,
            "the fps pass wrote {all} bytes for video {v}"
        );
    }
    let worst_diff = diffs.iter().cloned().fold(0.0, f64::max);
    let mean_diff = diffs.iter().sum::<f64>() / diffs.len() as f64;

    let faster_cli = per_frame_s.min(fps_s);
    println!(
        "\nthumbnails: {count} videos ({distinct} distinct encodes) of {duration:.0} s, 1920×1080 \
         H.264 ({total_packets} frames in all), {FRAMES} frames each → {SIDE}×{SIDE} RGB; \
         {workers} at once for every way (ffmpeg: {workers} processes, -threads 1)\n"
    );
    println!("| way | seconds | × faster ffmpeg way | load average before → after |");
    println!("|---|---:|---:|---|");
    for (name, s, before, after) in &rows {
        println!(
            "| {name} | {s:.2} | {:.2} | {before} → {after} |",
            s / faster_cli
        );
    }
    let stats = summary.stats;
    println!(
        "\nours decoded {} of {} packets ({:.1}%), {} of them with non-reference frames skipped; \
         {} pictures reconstructed; {} seeks for {} frames",
        stats.packets_decoded,
        total_packets,
        100.0 * stats.packets_decoded as f64 / total_packets.max(1) as f64,
        stats.packets_skippable,
        stats.frames_decoded,
        stats.seeks,
        count * FRAMES
    );
    println!(
        "frames against ffmpeg's per-frame output: mean abs diff {mean_diff:.2} (worst {worst_diff:.2}) of 255"
    );
    let ratio = ours_s / faster_cli;
    println!(
        "goal ours ≤ 0.5× the faster ffmpeg way: {:.2}× — {}",
        ratio,
        if ratio <= 0.5 { "met" } else { "not met" }
    );

    let report = json!({
        "videos": count,
        "distinct_encodes": distinct,
        "video_seconds": duration,
        "size": "1920x1080",
        "codec": "h264 (x264 veryfast, keyint 250)",
        "frames_per_video": FRAMES,
        "thumbnail": format!("{SIDE}x{SIDE} centre crop, RGB24"),
        "concurrency": workers,
        "ffmpeg_threads_per_process": 1,
        "total_packets": total_packets,
        "results": rows.iter().map(|(name, s, before, after)| json!({
            "way": name,
            "seconds": s,
            "ratio_to_faster_ffmpeg": s / faster_cli,
            "load_average_before": before,
            "load_average_after": after,
        })).collect::<Vec<_>>(),
        "ours_stats": stats,
        "ours_vs_ffmpeg_frame_mean_abs_diff": mean_diff,
        "ours_vs_ffmpeg_frame_worst_mean_abs_diff": worst_diff,
        "goal_ratio": 0.5,
        "ratio": ratio,
    });
    std::fs::create_dir_all(&bench_dir)?;
    let json_path = bench_dir.join("thumbnails.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&report)?)?;
    println!("wrote {}", json_path.display());
    Ok(())
}

/// A frame that is all one value would mean a blank decode.
fn check_frame(frame: &RgbFrame) -> anyhow::Result<()> {
    let first = frame.pixels[0];
    anyhow::ensure!(
        frame.pixels.iter().any(|&v| v.abs_diff(first) > 16),
        "a blank frame at {} s",
        frame.seconds
    );
    Ok(())
}
