//! `crossclr new --videos` + `crossclr ingest` end to end through the binary, on videos the test
//! makes with the ffmpeg tool: features per split with the right clips and widths, encoders
//! recorded, a bad file (and a bad manifest line) skipped and named while the rest goes on, a
//! rerun reusing what was staged, shards merging to the same features as one run, and training
//! on the result.

use crate::support::crossclr;

use std::path::Path;
use std::process::Command;

use crossclr::project::Project;

/// Six 4-second videos of different hues, two captioned clips each, and a file that is no video.
fn collection(dir: &Path) -> (String, String) {
    let videos = dir.join("videos");
    std::fs::create_dir_all(&videos).unwrap();
    let mut captions = String::from("video,caption,start,end\n");
    for i in 0..6 {
        let path = videos.join(format!("hue{i}.mp4"));
        let status = Command::new("ffmpeg")
            .args(["-loglevel", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!("testsrc2=s=96x64:r=10,hue=h={}", i * 60))
            .args(["-t", "4", "-c:v", "libx264", "-pix_fmt", "yuv420p"])
            .arg(&path)
            .status()
            .expect("ffmpeg runs (scripts/setup.sh installs it)");
        assert!(status.success());
        captions.push_str(&format!(
            "hue{i},a test pattern turned {} degrees,0,2\n",
            i * 60
        ));
        captions.push_str(&format!("hue{i},\"later, the same pattern again\",2,4\n"));
    }
    std::fs::write(videos.join("broken.mp4"), b"this is not a video").unwrap();
    captions.push_str("broken,a file that is not a video,0,1\n");
    let captions_path = dir.join("captions.csv");
    std::fs::write(&captions_path, captions).unwrap();
    (
        videos.to_str().unwrap().to_string(),
        captions_path.to_str().unwrap().to_string(),
    )
}

fn new_project(dir: &Path, name: &str, videos: &str, captions: &str) -> String {
    let project = dir.join(name).to_str().unwrap().to_string();
    let (ok, _, stderr) = crossclr(&[
        "new",
        &project,
        "--videos",
        videos,
        "--captions",
        captions,
        "--val-fraction",
        "0.15",
        "--test-fraction",
        "0.15",
    ]);
    assert!(ok, "new failed: {stderr}");
    project
}

fn all_features(project: &str) -> Vec<crossclr::project::SplitFeatures> {
    let project = Project::open(Path::new(project)).unwrap();
    project
        .splits()
        .unwrap()
        .iter()
        .map(|split| project.load_split(split).unwrap())
        .collect()
}

#[test]
fn ingest_encodes_clips_skips_the_bad_file_resumes_and_shards_merge() {
    let dir = tempfile::tempdir().unwrap();
    let (videos, captions) = collection(dir.path());
    let whole = new_project(dir.path(), "whole", &videos, &captions);
    // A hand-edited line that is not JSON is named with its line, and the rest goes on.
    let manifest = Path::new(&whole).join("manifest.jsonl");
    let mut lines = std::fs::read_to_string(&manifest).unwrap();
    let bad_line = lines.lines().count() + 1;
    lines.push_str("{\"clip\": oops}\n");
    std::fs::write(&manifest, lines).unwrap();

    let (ok, stdout, stderr) = crossclr(&["ingest", &whole, "--text", "hashed:64"]);
    assert!(ok, "ingest failed: {stderr}");
    assert!(stdout.contains("6 encoded now"), "{stdout}");
    assert!(
        stdout.contains(&format!("manifest.jsonl:{bad_line}: not a manifest entry")),
        "{stdout}"
    );
    assert!(
        stdout.contains("skipped broken") && stdout.contains("broken.mp4"),
        "the bad file is named: {stdout}"
    );
    let features = all_features(&whole);
    let clips: usize = features.iter().map(|f| f.num_clips()).sum();
    let video_count: usize = features.iter().map(|f| f.num_videos()).sum();
    assert_eq!((clips, video_count), (12, 6));
    for split in &features {
        assert_eq!(split.text.dim, 64);
        for clip in 0..split.num_clips() {
            assert_eq!(split.video.rows(clip), 8, "8 frames per clip by default");
        }
    }
    let config = Project::open(Path::new(&whole)).unwrap().config().clone();
    assert_eq!(config.encoders.text.as_ref().unwrap().name, "hashed:64");
    assert_eq!(config.encoders.video.as_ref().unwrap().name, "descriptor");
    assert!(Path::new(&whole).join("cache/thumbs/hue0").is_dir());

    // Hues differ, so the clips of different videos must get different colour features.
    let train = features.iter().find(|f| f.split == "train").unwrap();
    let first = train.video.get(0).to_vec();
    let other = train.video.get(train.clips_of_video(1).start).to_vec();
    let difference: f32 = first.iter().zip(&other).map(|(a, b)| (a - b).abs()).sum();
    assert!(
        difference > 0.1,
        "features of different hues differ: {difference}"
    );

    // A rerun reuses every staged video and writes the same features.
    let (ok, stdout, stderr) = crossclr(&["ingest", &whole]);
    assert!(ok, "rerun failed: {stderr}");
    assert!(
        stdout.contains("0 encoded now, 6 staged before"),
        "{stdout}"
    );
    assert_eq!(all_features(&whole), features);

    // Other encoders than the staged ones are refused, naming both.
    let (ok, _, stderr) = crossclr(&["ingest", &whole, "--text", "hashed:32"]);
    assert!(
        !ok && stderr.contains("hashed:64") && stderr.contains("--restart"),
        "{stderr}"
    );

    // Two shards, then a merging run, give the same features as one run.
    let sharded = new_project(dir.path(), "sharded", &videos, &captions);
    for shard in ["0/2", "1/2"] {
        let (ok, stdout, stderr) =
            crossclr(&["ingest", &sharded, "--shard", shard, "--text", "hashed:64"]);
        assert!(ok, "shard {shard} failed: {stderr}");
        assert!(stdout.contains("shard staged"), "{stdout}");
    }
    assert!(all_features(&sharded).is_empty(), "shards do not merge");
    let (ok, stdout, stderr) = crossclr(&["ingest", &sharded, "--text", "hashed:64"]);
    assert!(ok, "merge failed: {stderr}");
    assert!(
        stdout.contains("0 encoded now, 6 staged before"),
        "{stdout}"
    );
    assert_eq!(all_features(&sharded), features);

    // The features train.
    let (ok, stdout, stderr) = crossclr(&["train", &whole, "--epochs", "2", "--batch-size", "4"]);
    assert!(ok, "train failed: {stderr}\n{stdout}");
    assert!(stdout.contains("epoch   2"), "{stdout}");
}

#[test]
fn demo_renders_ingests_trains_and_search_finds_clips_of_the_query() {
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    let demo_arg = demo.to_str().unwrap();
    let (ok, stdout, stderr) = crossclr(&["demo", demo_arg, "--videos", "12", "--epochs", "2"]);
    assert!(ok, "demo failed: {stderr}\n{stdout}");
    assert!(stdout.contains("12 videos"), "{stdout}");
    let project = demo.join("project");
    assert!(project.join("runs/demo/checkpoint.safetensors").is_file());
    let captions = std::fs::read_to_string(demo.join("collection/captions.jsonl")).unwrap();
    assert_eq!(
        captions.lines().count(),
        std::fs::read_to_string(project.join("manifest.jsonl"))
            .unwrap()
            .lines()
            .count()
    );
    // A second run finds everything done and changes nothing; --check measures the demo's
    // promise: typed colour × shape queries against the captions' own words.
    let checkpoint = std::fs::read(project.join("runs/demo/checkpoint.safetensors")).unwrap();
    let (ok, stdout, stderr) = crossclr(&[
        "demo", demo_arg, "--videos", "12", "--epochs", "2", "--check",
    ]);
    assert!(ok, "second demo failed: {stderr}");
    assert!(!stdout.contains("epoch"), "no retraining: {stdout}");
    let pair_lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(" in the top 5 (needed "))
        .collect();
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("colour × shape queries: "))
        .unwrap_or_else(|| panic!("no summary line: {stdout}"));
    let numbers: Vec<usize> = summary
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    let (passed, pairs) = (numbers[0], numbers[1]);
    assert_eq!(pairs, pair_lines.len(), "{stdout}");
    assert!(
        pairs >= 5,
        "12 videos hold several colour × shape pairs: {stdout}"
    );
    assert_eq!(
        passed,
        pair_lines.iter().filter(|l| !l.ends_with('✗')).count(),
        "{stdout}"
    );
    assert!(
        pair_lines
            .iter()
            .any(|l| l.starts_with("  \"a ") || l.starts_with("  \"an ")),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read(project.join("runs/demo/checkpoint.safetensors")).unwrap(),
        checkpoint
    );

    let (ok, stdout, stderr) = crossclr(&[
        "search",
        project.to_str().unwrap(),
        "a small red circle drifts left",
        "--top",
        "4",
    ]);
    assert!(ok, "search failed: {stderr}");
    let hits: Vec<&str> = stdout.lines().filter(|l| l.contains(" — ")).collect();
    assert_eq!(hits.len(), 4, "{stdout}");
    let scores: Vec<f32> = hits
        .iter()
        .map(|line| line.split_whitespace().nth(1).unwrap().parse().unwrap())
        .collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "ranked: {scores:?}"
    );
    assert!(
        scores.iter().all(|s| (-1.0..=1.0).contains(s)),
        "cosines: {scores:?}"
    );
}

/// A `seconds`-long 10 fps test pattern turned `hue` degrees at `path`.
fn pattern(path: &Path, seconds: u32, hue: u32) {
    let status = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=s=64x48:r=10,hue=h={hue}"))
        .args([
            "-t",
            &seconds.to_string(),
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
        ])
        .arg(path)
        .status()
        .expect("ffmpeg runs (scripts/setup.sh installs it)");
    assert!(status.success());
}

#[test]
fn ingest_reports_clips_past_the_end_paths_outside_the_folder_and_redoes_a_replaced_video() {
    let dir = tempfile::tempdir().unwrap();
    let videos = dir.path().join("videos");
    std::fs::create_dir_all(&videos).unwrap();
    for (name, hue) in [("v", 0), ("w", 120), ("x", 240)] {
        pattern(&videos.join(format!("{name}.mp4")), 4, hue);
    }
    let captions = dir.path().join("captions.csv");
    std::fs::write(
        &captions,
        "video,caption,start,end\nv,inside,0,2\nv,far past the end,100,200\n\
         v,over the end,2,9\nw,another video,0,2\nx,a third video,0,2\n",
    )
    .unwrap();
    let project = dir.path().join("p");
    let project_arg = project.to_str().unwrap();
    let (ok, _, stderr) = crossclr(&[
        "new",
        project_arg,
        "--videos",
        videos.to_str().unwrap(),
        "--captions",
        captions.to_str().unwrap(),
        "--val-fraction",
        "0",
        "--test-fraction",
        "0",
    ]);
    assert!(ok, "new failed: {stderr}");
    // The manifest, edited by hand to read a file from outside the video folder.
    let outside = dir.path().join("bigv");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::copy(videos.join("x.mp4"), outside.join("x.mp4")).unwrap();
    let manifest = project.join("manifest.jsonl");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let line = text.lines().position(|l| l.contains("\"x.mp4\"")).unwrap() + 1;
    std::fs::write(&manifest, text.replace("\"x.mp4\"", "\"../bigv/x.mp4\"")).unwrap();

    let ingest = || {
        crossclr(&[
            "ingest",
            project_arg,
            "--text",
            "hashed:16",
            "--no-thumbnails",
        ])
    };
    let (ok, stdout, stderr) = ingest();
    assert!(ok, "ingest failed: {stderr}");
    assert!(
        stdout.contains("2 encoded now, 0 staged before"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "manifest.jsonl:{line}: `path` \"../bigv/x.mp4\" leaves the video folder"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("2 clips do not fit their video's duration: 1 skipped, 1 cut"),
        "{stdout}"
    );
    assert!(
        stdout.contains("of `v` skipped: it starts at 100 s")
            && stdout.contains("of `v` cut: it ends at 9 s"),
        "{stdout}"
    );
    let train = Project::open(&project)
        .unwrap()
        .load_split("train")
        .unwrap();
    assert_eq!(train.video_keys, ["v", "w"]);
    assert_eq!(train.num_clips(), 3);

    // `v` replaced by another file: encoded again, `w` reused.
    pattern(&videos.join("v.mp4"), 6, 60);
    let (ok, stdout, stderr) = ingest();
    assert!(ok, "rerun failed: {stderr}");
    assert!(
        stdout.contains("1 encoded now, 1 staged before"),
        "{stdout}"
    );
    let again = Project::open(&project)
        .unwrap()
        .load_split("train")
        .unwrap();
    assert_ne!(
        again.video.get(0),
        train.video.get(0),
        "the new file's features"
    );
    assert_eq!(
        again.video.get(again.clips_of_video(1).start),
        train.video.get(train.clips_of_video(1).start)
    );
}

/// The demo's promise (the explorer issue's goal): on the default demo, typed "a <colour>
/// <shape>" queries find min(3, the pair's clips) among the best five for at least 80% of the
/// pairs its captions hold. Needs MiniLM, as the demo does for its text (scripts/setup.sh).
#[test]
fn the_default_demo_finds_the_clips_of_most_typed_colour_and_shape_queries() {
    use crossclr::analysis::SearchIndex;
    use crossclr::analysis::demo_queries::colour_shape_queries;
    use crossclr::demo::{DEMO_RUN, DemoSettings, make_demo};
    use crossclr::jobs::{CancelToken, progress_channel};
    use crossclr::project::RunName;

    let dir = tempfile::tempdir().unwrap();
    let (events, _receiver) = progress_channel(1_000_000);
    let project_dir = make_demo(
        dir.path(),
        DemoSettings::default(),
        &events,
        &CancelToken::new(),
    )
    .unwrap();
    let project = Project::open(&project_dir).unwrap();
    let index = SearchIndex::open(&project, &RunName::new(DEMO_RUN).unwrap()).unwrap();
    let report = colour_shape_queries(&project, &index).unwrap();
    let failed: Vec<_> = report.pairs.iter().filter(|p| !p.passed()).collect();
    eprintln!(
        "demo check: {} of {} pairs ({:.0}%); failed: {failed:?}",
        report.passed(),
        report.pairs.len(),
        100.0 * report.share()
    );
    assert!(
        report.share() >= 0.8,
        "{} of {} pairs: {failed:?}",
        report.passed(),
        report.pairs.len()
    );
}
