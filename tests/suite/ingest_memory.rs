//! Ingest's memory stays bounded by one clip's frames per worker, not by a video's length or its
//! resolution: a 2-hour video and a 4K video, made here with FFmpeg's test source at a low frame
//! rate (so that making them is quick; what ingest holds depends on the frames it samples, not on
//! the ones it skips), are ingested by the binary, and the peak resident size the kernel
//! recorded for that process (`wait4`'s `ru_maxrss`) is compared with a small project's through
//! the same settings. Measured here (debug build, hashed text): short video 53 MB, 2-hour video
//! 140 MB, 4K video 89 MB; before ingest encoded clip by clip (it held a whole video's sampled
//! frames, commit dd675c8) the 2-hour video peaked at 377 MB and this test failed.

use std::path::Path;
use std::process::Command;

/// What a 2-hour video at 32 frames per clip may add to the small project's peak: 87 MB measured
/// (the features of 23,040 frames, 217 floats each, the manifest, 720 thumbnails); holding every
/// sampled frame until the video is done added 323 MB.
const LONG_VIDEO_EXTRA_BYTES: u64 = 150 << 20;
/// What a 4K video may add: a decoder's few reference frames (12 MB each in YUV 4:2:0) and the
/// scaler's buffers; keeping eight RGB frames at 3840×2160 would add 200 MB.
const UHD_VIDEO_EXTRA_BYTES: u64 = 120 << 20;

/// `ffmpeg -f lavfi -i SOURCE` encoded as low-bitrate H.264 into `path`.
fn make_video(path: &Path, source: &str) {
    let status = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-f", "lavfi", "-i", source])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-b:v", "100k"])
        .args(["-pix_fmt", "yuv420p"])
        .arg(path)
        .status()
        .expect("ffmpeg runs (scripts/setup.sh installs it)");
    assert!(status.success(), "ffmpeg made {}", path.display());
}

/// A project over one video in `dir/<name>/`: `clips` consecutive clips of `seconds` each, all in
/// the training split.
fn project_of(dir: &Path, name: &str, video: &Path, clips: usize, seconds: usize) -> String {
    let videos = video.parent().unwrap();
    let stem = video.file_stem().unwrap().to_str().unwrap();
    let mut captions = String::from("video,caption,start,end,split\n");
    for clip in 0..clips {
        captions.push_str(&format!(
            "{stem},test pattern part {clip},{},{},train\n",
            clip * seconds,
            (clip + 1) * seconds
        ));
    }
    let captions_path = dir.join(format!("{name}.csv"));
    std::fs::write(&captions_path, captions).unwrap();
    let project = dir.join(name);
    let (ok, _, stderr) = crate::support::crossclr(&[
        "new".as_ref(),
        project.as_os_str(),
        "--videos".as_ref(),
        videos.as_os_str(),
        "--captions".as_ref(),
        captions_path.as_os_str(),
    ]);
    assert!(ok, "new {name} failed: {stderr}");
    project.to_str().unwrap().to_string()
}

/// Runs `crossclr ingest PROJECT` with `extra` arguments: its output, and the peak resident size
/// of that process in bytes.
// The child is reaped by wait4, which std's Child cannot see.
#[allow(unsafe_code, clippy::zombie_processes)]
fn ingest_peak(project: &str, extra: &[&str]) -> (String, u64) {
    let log_path = Path::new(project).with_extension("log");
    let log = std::fs::File::create(&log_path).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_crossclr"))
        .args(["ingest", project, "--text", "hashed:64", "--workers", "2"])
        .args(extra)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("run crossclr");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain old data the kernel fills in; the pid is our own child, which
    // nothing else waits for.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid, "wait4: {}", std::io::Error::last_os_error());
    let output = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "ingest {project} failed: {output}"
    );
    // Linux gives ru_maxrss in KiB.
    (output, usage.ru_maxrss as u64 * 1024)
}

fn megabytes(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

#[test]
fn ingest_of_a_two_hour_and_a_4k_video_stays_near_a_short_videos_peak() {
    let dir = tempfile::tempdir().unwrap();
    let videos = dir.path().join("videos");
    std::fs::create_dir_all(&videos).unwrap();
    // Four frames a second: a ten-second clip holds 40, enough for 32 sampled frames.
    let short = videos.join("short.mp4");
    make_video(&short, "testsrc=s=320x240:r=4:d=20");
    let long = videos.join("long.mp4");
    make_video(&long, "testsrc=s=320x240:r=4:d=7200");
    let uhd = videos.join("uhd.mp4");
    make_video(&uhd, "testsrc=s=3840x2160:r=5:d=10");

    let short_project = project_of(dir.path(), "short", &short, 2, 10);
    let short8_project = project_of(dir.path(), "short8", &short, 2, 10);
    let long_project = project_of(dir.path(), "long", &long, 720, 10);
    let uhd_project = project_of(dir.path(), "uhd", &uhd, 2, 5);

    let fpc = ["--frames-per-clip", "32"];
    let (_, floor_32) = ingest_peak(&short_project, &fpc);
    let (output, long_peak) = ingest_peak(&long_project, &fpc);
    assert!(output.contains("720 clips of 1 videos"), "{output}");
    assert!(!output.contains("hold fewer frames"), "{output}");
    let (_, floor_8) = ingest_peak(&short8_project, &[]);
    let (output, uhd_peak) = ingest_peak(&uhd_project, &[]);
    assert!(output.contains("2 clips of 1 videos"), "{output}");
    eprintln!(
        "peak resident: short video {:.0} MB (32 frames per clip), {:.0} MB (8); 2-hour video {:.0} MB; 4K video {:.0} MB",
        megabytes(floor_32),
        megabytes(floor_8),
        megabytes(long_peak),
        megabytes(uhd_peak)
    );
    assert!(
        long_peak < floor_32 + LONG_VIDEO_EXTRA_BYTES,
        "the 2-hour video peaked at {:.0} MB, more than {:.0} MB over the short one's {:.0} MB",
        megabytes(long_peak),
        megabytes(LONG_VIDEO_EXTRA_BYTES),
        megabytes(floor_32)
    );
    assert!(
        uhd_peak < floor_8 + UHD_VIDEO_EXTRA_BYTES,
        "the 4K video peaked at {:.0} MB, more than {:.0} MB over the short one's {:.0} MB",
        megabytes(uhd_peak),
        megabytes(UHD_VIDEO_EXTRA_BYTES),
        megabytes(floor_8)
    );
}
