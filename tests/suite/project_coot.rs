//! Importing COOT's layout (meta_all.json, video and text HDF5 files, sentence splits) built from
//! real YouCook2 annotations with random features, through the library and through
//! `crossclr new --coot`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crossclr::project::config::{HeadKind, SourceKind};
use crossclr::project::coot::{CootPaths, import_coot, sample_frames, segment_frames};
use crossclr::project::{ManifestEntry, Project};
use hdf5_metno as hdf5;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

const VIDEO_DIM: usize = 16;
/// COOT's text features: two BERT layers of 768.
const TEXT_DIM: usize = 1536;

/// What the fixture does to a video to make it bad (or nothing).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Damage {
    None,
    MissingFromVideoH5,
    OneSentenceTooFew,
    TokenCountsOffByOne,
    NanInVideo,
    ZeroDuration,
}

#[derive(Debug)]
struct Video {
    key: String,
    split: &'static str,
    duration: f64,
    frames: usize,
    /// (start, stop, caption).
    segments: Vec<(f64, f64, String)>,
    tokens: Vec<usize>,
    damage: Damage,
}

/// YouCook2 videos (sorted keys, so the choice is stable): which split and frame rate each gets,
/// and what is done to it.
const CHOSEN: [(&str, &str, f64, Damage); 11] = [
    ("--bv0V6ZjWI", "train", 2.0, Damage::None),
    ("-AfxeTnCbVQ", "train", 3.0, Damage::None),
    ("-CP9gKR9GR4", "train", 0.5, Damage::None),
    ("-eyDS81FADw", "train", 1.0, Damage::None),
    ("-ORd4EBliqw", "train", 2.0, Damage::MissingFromVideoH5),
    ("-gJHzNJFTx4", "train", 2.0, Damage::OneSentenceTooFew),
    ("-geDRZmY-E8", "train", 2.0, Damage::TokenCountsOffByOne),
    ("-h8c5sLelZ4", "train", 2.0, Damage::NanInVideo),
    ("-AwyG1JcMp8", "val", 1.5, Damage::None),
    ("-ErPSunMfcs", "val", 4.0, Damage::None),
    ("-GlSSp5ZOCQ", "val", 2.0, Damage::ZeroDuration),
];

fn youcook2_videos() -> Vec<Video> {
    let path =
        crate::support::shared_dir().join("data/youcook2/youcookii_annotations_trainval.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let database: BTreeMap<String, Value> =
        serde_json::from_value(serde_json::from_str::<Value>(&text).unwrap()["database"].clone())
            .unwrap();
    CHOSEN
        .iter()
        .map(|&(key, split, fps, damage)| {
            let entry = &database[key];
            let duration = entry["duration"].as_f64().unwrap();
            let segments: Vec<(f64, f64, String)> = entry["annotations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| {
                    (
                        a["segment"][0].as_f64().unwrap(),
                        a["segment"][1].as_f64().unwrap(),
                        a["sentence"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            // Word pieces are not needed here: one token per word plus [CLS] and [SEP].
            let tokens = segments
                .iter()
                .map(|s| s.2.split_whitespace().count() + 2)
                .collect();
            Video {
                key: key.to_string(),
                split,
                duration: if damage == Damage::ZeroDuration {
                    0.0
                } else {
                    duration
                },
                frames: (duration * fps).floor() as usize,
                segments,
                tokens,
                damage,
            }
        })
        .collect()
}

/// Frame f of video number v: column 0 holds f and column 1 holds v, so a test can tell which
/// frames went into a clip; the rest is noise.
fn video_features(v: usize, frames: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let mut values = Vec::with_capacity(frames * VIDEO_DIM);
    for f in 0..frames {
        values.push(f as f32);
        values.push(v as f32);
        values.extend((2..VIDEO_DIM).map(|_| rng.random::<f32>() - 0.5));
    }
    values
}

/// Token t of video number v's paragraph, in f64 as some extraction pipelines store it.
fn text_features(v: usize, tokens: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let mut values = Vec::with_capacity(tokens * TEXT_DIM);
    for t in 0..tokens {
        values.push(t as f64);
        values.push(v as f64);
        values.extend((2..TEXT_DIM).map(|_| rng.random::<f64>() - 0.5));
    }
    values
}

fn data_key(key: &str) -> String {
    format!("v_{key}")
}

/// Writes the COOT files for `videos` into `dir`.
fn write_coot(dir: &Path, videos: &[Video]) -> CootPaths {
    let paths = CootPaths {
        meta: dir.join("meta_all.json"),
        video_h5: dir.join("video_feat.h5"),
        text_h5: dir.join("text_feat.h5"),
        sentence_splits: dir.join("text_feat_sentence_splits.json"),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut meta = serde_json::Map::new();
    let mut splits = serde_json::Map::new();
    let video_file = hdf5::File::create(&paths.video_h5).unwrap();
    let text_file = hdf5::File::create(&paths.text_h5).unwrap();
    for (v, video) in videos.iter().enumerate() {
        let segments: Vec<Value> = video
            .segments
            .iter()
            .map(|(start, stop, text)| json!({"text": text, "start_sec": start, "stop_sec": stop}))
            .collect();
        meta.insert(
            video.key.clone(),
            json!({
                "data_key": data_key(&video.key),
                "duration_sec": video.duration,
                "split": video.split,
                "segments": segments,
                "num_frames": video.frames,
            }),
        );
        let mut counts = video.tokens.clone();
        let paragraph: usize = counts.iter().sum();
        match video.damage {
            Damage::OneSentenceTooFew => {
                let last = counts.pop().unwrap();
                *counts.last_mut().unwrap() += last;
            }
            Damage::TokenCountsOffByOne => counts[0] += 1,
            _ => {}
        }
        splits.insert(video.key.clone(), json!(counts));

        let mut frames = video_features(v, video.frames, &mut rng);
        if video.damage == Damage::NanInVideo {
            frames[5 * VIDEO_DIM + 3] = f32::NAN;
        }
        if video.damage != Damage::MissingFromVideoH5 {
            video_file
                .new_dataset::<f32>()
                .shape((video.frames, VIDEO_DIM))
                .create(data_key(&video.key).as_str())
                .unwrap()
                .write_raw(&frames)
                .unwrap();
        }
        text_file
            .new_dataset::<f64>()
            .shape((paragraph, TEXT_DIM))
            .create(video.key.as_str())
            .unwrap()
            .write_raw(&text_features(v, paragraph, &mut rng))
            .unwrap();
    }
    std::fs::write(&paths.meta, serde_json::to_vec(&meta).unwrap()).unwrap();
    std::fs::write(&paths.sentence_splits, serde_json::to_vec(&splits).unwrap()).unwrap();
    paths
}

#[test]
fn coot_import_slices_frames_and_sentences_and_keeps_captions() {
    let dir = tempfile::tempdir().unwrap();
    let videos = youcook2_videos();
    let paths = write_coot(dir.path(), &videos);
    let mut calls = Vec::new();
    let import = import_coot(&paths, 80, &mut |done, total| calls.push((done, total))).unwrap();
    assert_eq!(calls.len(), videos.len());
    assert_eq!(calls.last(), Some(&(videos.len(), videos.len())));

    let names: Vec<&str> = import.splits.iter().map(|s| s.split.as_str()).collect();
    assert_eq!(names, ["train", "val"]);
    let mut checked_clips = 0;
    let mut capped = 0;
    for split in &import.splits {
        assert_eq!(split.video.dim, VIDEO_DIM);
        assert_eq!(split.text.dim, TEXT_DIM);
        let good: Vec<(usize, &Video)> = videos
            .iter()
            .enumerate()
            .filter(|(_, v)| v.split == split.split && v.damage == Damage::None)
            .collect();
        let keys: Vec<&str> = good.iter().map(|(_, v)| v.key.as_str()).collect();
        assert_eq!(split.video_keys, keys);
        for (index, (number, video)) in good.iter().enumerate() {
            let clips = split.clips_of_video(index);
            assert_eq!(clips.len(), video.segments.len(), "{}", video.key);
            let mut first_token = 0;
            for (segment, clip) in clips.enumerate() {
                assert_eq!(split.clip_keys[clip], format!("{}_{segment}", video.key));
                let (start, stop, _) = &video.segments[segment];
                let expected = sample_frames(
                    segment_frames(video.frames, video.duration, *start, *stop),
                    80,
                );
                capped += usize::from(expected.len() == 80);
                let rows = split.video.get(clip);
                let got: Vec<usize> = rows
                    .chunks_exact(VIDEO_DIM)
                    .map(|row| {
                        assert_eq!(row[1], *number as f32, "frame from another video");
                        row[0] as usize
                    })
                    .collect();
                assert_eq!(got, expected, "{} segment {segment}", video.key);

                // The sentence is the next run of the paragraph's tokens.
                let tokens: Vec<usize> = split
                    .text
                    .get(clip)
                    .chunks_exact(TEXT_DIM)
                    .map(|row| {
                        assert_eq!(row[1], *number as f32);
                        row[0] as usize
                    })
                    .collect();
                let count = video.tokens[segment];
                assert_eq!(
                    tokens,
                    (first_token..first_token + count).collect::<Vec<_>>()
                );
                first_token += count;
                checked_clips += 1;
            }
        }
    }
    assert_eq!(checked_clips, import.num_clips());
    assert!(capped > 0, "no clip exercised the 80-frame cap");

    // By hand: -AfxeTnCbVQ at 3 fps has floor(440.58 · 3) = 1321 frames; its second segment,
    // 82–121 s, is frames floor(245.86) = 245 to ceil(362.80) + 2 = 365: 120 frames, sampled to
    // 80 as 245 + ⌊k · 119 / 79⌋.
    let train = &import.splits[0];
    let v = train
        .video_keys
        .iter()
        .position(|k| k == "-AfxeTnCbVQ")
        .unwrap();
    let clip = train.clips_of_video(v).start + 1;
    let frames: Vec<f32> = train
        .video
        .get(clip)
        .chunks_exact(VIDEO_DIM)
        .map(|row| row[0])
        .collect();
    assert_eq!(frames.len(), 80);
    assert_eq!(&frames[..3], &[245.0, 246.0, 248.0]);
    assert_eq!(frames[40], 305.0);
    assert_eq!(&frames[78..], &[362.0, 364.0]);

    // Captions, times and splits in the manifest, in store order.
    let first = &import.manifest[0];
    assert_eq!(
        first,
        &ManifestEntry {
            clip: "--bv0V6ZjWI_0".into(),
            video: "--bv0V6ZjWI".into(),
            split: "train".into(),
            start: Some(8.0),
            end: Some(23.0),
            caption: Some(videos[0].segments[0].2.clone()),
            path: None,
        }
    );
    assert_eq!(import.manifest.len(), import.num_clips());
    let stored: Vec<&String> = import.splits.iter().flat_map(|s| &s.clip_keys).collect();
    let listed: Vec<&String> = import.manifest.iter().map(|e| &e.clip).collect();
    assert_eq!(stored, listed);
    for entry in &import.manifest {
        let video = videos.iter().find(|v| v.key == entry.video).unwrap();
        let segment: usize = entry.clip.rsplit('_').next().unwrap().parse().unwrap();
        assert_eq!(
            entry.caption.as_deref(),
            Some(video.segments[segment].2.as_str())
        );
        assert_eq!(entry.split, video.split);
    }
}

#[test]
fn bad_videos_are_skipped_with_key_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let videos = youcook2_videos();
    let paths = write_coot(dir.path(), &videos);
    let import = import_coot(&paths, 80, &mut |_, _| {}).unwrap();
    let skipped: BTreeMap<&str, &str> = import
        .skipped
        .iter()
        .map(|s| (s.item.as_str(), s.reason.as_str()))
        .collect();
    let expected = [
        ("video -ORd4EBliqw", "data_key `v_-ORd4EBliqw` is not in"),
        (
            "video -gJHzNJFTx4",
            "has 10 sentences but meta_all.json has 11 segments",
        ),
        ("video -geDRZmY-E8", "sentence token counts sum to"),
        ("video -h8c5sLelZ4", "holds NaN at row 5, column 3"),
        ("video -GlSSp5ZOCQ", "duration_sec is 0"),
    ];
    assert_eq!(skipped.len(), expected.len(), "{skipped:#?}");
    for (item, reason) in expected {
        let got = skipped
            .get(item)
            .unwrap_or_else(|| panic!("{item} not skipped: {skipped:#?}"));
        assert!(got.contains(reason), "{item}: {got}");
    }
    let imported = videos.iter().filter(|v| v.damage == Damage::None).count();
    assert_eq!(import.num_videos(), imported);
}

#[test]
fn a_training_split_whose_videos_are_all_skipped_makes_no_project() {
    let dir = tempfile::tempdir().unwrap();
    let mut videos = youcook2_videos();
    for video in videos.iter_mut().filter(|v| v.split == "train") {
        video.damage = Damage::NanInVideo;
    }
    let paths = write_coot(dir.path(), &videos);
    let import = import_coot(&paths, 80, &mut |_, _| {}).unwrap();
    assert!(
        import
            .skipped
            .iter()
            .any(|s| s.item == "split train" && s.reason.contains("all 8 of them")),
        "{:#?}",
        import.skipped
    );
    let mut config = crossclr::project::ProjectConfig::default();
    config.source.kind = SourceKind::Coot;
    import.configure(&mut config);
    let project_dir = dir.path().join("yc2");
    let message = import.write(&project_dir, config).unwrap_err().to_string();
    assert!(
        message.contains("training split `train` has no clips")
            && message.contains("`val` (")
            && message.contains("holds NaN"),
        "{message}"
    );
    assert!(!project_dir.join("crossclr.toml").exists());
}

#[test]
fn an_unreadable_h5_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let videos = youcook2_videos();
    let mut paths = write_coot(dir.path(), &videos);
    paths.text_h5 = dir.path().join("meta_all.json");
    let error = import_coot(&paths, 80, &mut |_, _| {}).unwrap_err();
    assert!(format!("{error:#}").contains("meta_all.json"), "{error}");
    paths.text_h5 = dir.path().join("absent.h5");
    let error = import_coot(&paths, 80, &mut |_, _| {}).unwrap_err();
    assert!(error.to_string().contains("absent.h5"), "{error}");
}

#[test]
fn a_coot_import_writes_a_project_that_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let videos = youcook2_videos();
    let paths = write_coot(dir.path(), &videos);
    let import = import_coot(&paths, 80, &mut |_, _| {}).unwrap();
    let mut config = crossclr::project::ProjectConfig::default();
    config.source.kind = SourceKind::Coot;
    import.configure(&mut config);
    let project_dir = dir.path().join("yc2");
    import.write(&project_dir, config).unwrap();

    let project = Project::open(&project_dir).unwrap();
    assert_eq!(project.config().model.head, HeadKind::Coot);
    assert_eq!(
        project.config().encoders.video.as_ref().unwrap().dim,
        VIDEO_DIM
    );
    assert_eq!(
        project.config().encoders.text.as_ref().unwrap().dim,
        TEXT_DIM
    );
    assert_eq!(project.splits().unwrap(), ["train", "val"]);
    for split in &import.splits {
        assert_eq!(&project.load_split(&split.split).unwrap(), split);
    }
    let manifest = project.read_manifest().unwrap();
    assert!(manifest.problems.is_empty(), "{:?}", manifest.problems);
    assert_eq!(manifest.entries, import.manifest);
}

#[test]
fn crossclr_new_coot_imports_and_reports_skipped_videos() {
    let dir = tempfile::tempdir().unwrap();
    let videos = youcook2_videos();
    let paths = write_coot(dir.path(), &videos);
    let project_dir = dir.path().join("project");
    let output = Command::new(env!("CARGO_BIN_EXE_crossclr"))
        .arg("new")
        .arg(&project_dir)
        .arg("--coot")
        .arg(&paths.meta)
        .arg("--video-h5")
        .arg(&paths.video_h5)
        .arg("--text-h5")
        .arg(&paths.text_h5)
        .arg("--sentence-splits")
        .arg(&paths.sentence_splits)
        .args(["--max-frames", "16", "--name", "youcook2-sample"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let train_clips: usize = videos
        .iter()
        .filter(|v| v.split == "train" && v.damage == Damage::None)
        .map(|v| v.segments.len())
        .sum();
    assert!(
        stdout.lines().any(|l| l.split_whitespace().take(3).eq([
            "train".to_string(),
            train_clips.to_string(),
            "4".to_string()
        ])),
        "{stdout}"
    );
    assert!(stdout.contains("skipped 5:"), "{stdout}");
    assert!(
        stdout.contains("skipped video -ORd4EBliqw: data_key"),
        "{stdout}"
    );
    assert!(stdout.contains("at most 16 frames per clip"), "{stdout}");

    let project = Project::open(&project_dir).unwrap();
    let config = project.config();
    assert_eq!(config.project.name, "youcook2-sample");
    assert_eq!(config.source.kind, SourceKind::Coot);
    assert_eq!(config.model.max_frames, 16);
    assert!(
        config
            .source
            .video_h5
            .as_deref()
            .unwrap()
            .ends_with("video_feat.h5")
    );
    let train = project.load_split("train").unwrap();
    assert_eq!(train.num_clips(), train_clips);
    assert!((0..train.num_clips()).all(|c| train.video.rows(c) <= 16));
    assert!((0..train.num_clips()).any(|c| train.video.rows(c) == 16));
}

#[test]
fn sentences_are_sliced_in_paragraph_order_and_clips_stored_in_time_order() {
    let dir = tempfile::tempdir().unwrap();
    // Segments listed out of time order; the paragraph follows the listing: tokens 0–1 are "c",
    // 2–4 are "a", 5–8 are "b". 20 frames over 10 s is 2 fps.
    let video = Video {
        key: "x".into(),
        split: "train",
        duration: 10.0,
        frames: 20,
        segments: vec![
            (6.0, 8.0, "c".into()),
            (0.0, 2.0, "a".into()),
            (3.0, 5.0, "b".into()),
        ],
        tokens: vec![2, 3, 4],
        damage: Damage::None,
    };
    let paths = write_coot(dir.path(), &[video]);
    let import = import_coot(&paths, 80, &mut |_, _| {}).unwrap();
    assert!(import.skipped.is_empty(), "{:?}", import.skipped);
    let split = &import.splits[0];
    assert_eq!(split.clip_keys, ["x_1", "x_2", "x_0"]);
    let column0 = |values: &[f32], dim: usize| -> Vec<usize> {
        values.chunks_exact(dim).map(|r| r[0] as usize).collect()
    };
    // 0–2 s: frames 0 to ceil(4) + 2; 3–5 s: 6 to 10 + 2; 6–8 s: 12 to 16 + 2.
    let frames: Vec<Vec<usize>> = (0..3)
        .map(|c| column0(split.video.get(c), VIDEO_DIM))
        .collect();
    assert_eq!(
        frames,
        [
            (0..6).collect::<Vec<_>>(),
            (6..12).collect(),
            (12..18).collect()
        ]
    );
    let tokens: Vec<Vec<usize>> = (0..3)
        .map(|c| column0(split.text.get(c), TEXT_DIM))
        .collect();
    assert_eq!(
        tokens,
        [
            (2..5).collect::<Vec<_>>(),
            (5..9).collect(),
            (0..2).collect()
        ]
    );
    let captions: Vec<&str> = import
        .manifest
        .iter()
        .map(|e| e.caption.as_deref().unwrap())
        .collect();
    assert_eq!(captions, ["a", "b", "c"]);
}
