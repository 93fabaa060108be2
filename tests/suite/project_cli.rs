//! `crossclr new --features` end to end through the binary: padded and pooled inputs in every
//! float type, generated and given keys, skipped clips, and the errors for malformed files.

use crate::support::crossclr;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crossclr::project::Project;
use crossclr::project::config::{HeadKind, SourceKind};
use safetensors::tensor::{Dtype, TensorView};

fn new_project(dir: &Path, features: &Path) -> (bool, String, String) {
    crossclr(&[Path::new("new"), dir, Path::new("--features"), features])
}

/// A tensor of an input file, as raw little-endian bytes.
#[derive(Clone)]
struct Raw {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

fn raw(name: &str, dtype: Dtype, shape: &[usize], bytes: Vec<u8>) -> Raw {
    Raw {
        name: name.into(),
        dtype,
        shape: shape.to_vec(),
        bytes,
    }
}

fn f16s(values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
        .collect()
}

fn bf16s(values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|&x| half::bf16::from_f32(x).to_le_bytes())
        .collect()
}

fn f32s(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn f64s(values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|&x| f64::from(x).to_le_bytes())
        .collect()
}

fn write_input(path: &Path, tensors: &[Raw], metadata: &[(&str, String)]) {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                TensorView::new(t.dtype, t.shape.clone(), &t.bytes).unwrap(),
            )
        })
        .collect();
    let metadata: HashMap<String, String> = metadata
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    safetensors::serialize_to_file(views, Some(metadata), path).unwrap();
}

/// Values that survive f16 and bf16 exactly (small multiples of 1/4), distinct per position.
fn ramp(n: usize, offset: f32) -> Vec<f32> {
    (0..n).map(|i| offset + (i % 61) as f32 * 0.25).collect()
}

const DV: usize = 4;
const DT: usize = 3;
const T: usize = 5;
const L: usize = 7;
const FRAMES: [usize; 6] = [3, 5, 1, 2, 4, 5];
const TOKENS: [usize; 6] = [2, 7, 1, 3, 3, 4];

struct Input {
    train_video: Vec<f32>,
    train_text: Vec<f32>,
    val_video: Vec<f32>,
    val_text: Vec<f32>,
    tensors: Vec<Raw>,
    metadata: Vec<(&'static str, String)>,
}

/// train: 6 padded clips (f16 frames, bf16 tokens) of videos 7, 7, 3, 3, 3, 9 with given keys;
/// clip 4 has a NaN in a real frame, clip 2 one in its padding. val: 3 pooled clips (f64, f32)
/// of videos 0, 1, 1 without keys.
fn input() -> Input {
    let mut train_video = ramp(6 * T * DV, 0.0);
    let train_text = ramp(6 * L * DT, -4.0);
    train_video[(4 * T + 1) * DV + 2] = f32::NAN;
    train_video[(2 * T + 3) * DV] = f32::NAN;
    let val_video = ramp(3 * DV, 2.0);
    let val_text = ramp(3 * DT, 1.0);
    let tensors = vec![
        raw("train/video", Dtype::F16, &[6, T, DV], f16s(&train_video)),
        raw(
            "train/video_frames",
            Dtype::U8,
            &[6],
            FRAMES.iter().map(|&f| f as u8).collect(),
        ),
        raw("train/text", Dtype::BF16, &[6, L, DT], bf16s(&train_text)),
        raw(
            "train/text_tokens",
            Dtype::I64,
            &[6],
            TOKENS
                .iter()
                .flat_map(|&t| (t as i64).to_le_bytes())
                .collect(),
        ),
        raw(
            "train/video_of_clip",
            Dtype::I32,
            &[6],
            [7i32, 7, 3, 3, 3, 9]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ),
        raw("val/video", Dtype::F64, &[3, DV], f64s(&val_video)),
        raw("val/text", Dtype::F32, &[3, DT], f32s(&val_text)),
        raw(
            "val/video_of_clip",
            Dtype::U64,
            &[3],
            [0u64, 1, 1].iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
    ];
    let video_keys: Vec<String> = (0..10).map(|i| format!("recipe-{i}")).collect();
    let metadata = vec![
        (
            "train/clip_keys",
            serde_json::to_string(&["c0", "c1", "c2", "c3", "c4", "c5"]).unwrap(),
        ),
        (
            "train/video_keys",
            serde_json::to_string(&video_keys).unwrap(),
        ),
        ("format", "pt".to_string()),
    ];
    Input {
        train_video,
        train_text,
        val_video,
        val_text,
        tensors,
        metadata,
    }
}

fn rows(values: &[f32], clip: usize, padded: usize, dim: usize, count: usize) -> Vec<f32> {
    values[clip * padded * dim..(clip * padded + count) * dim].to_vec()
}

#[test]
fn new_from_features_imports_padded_and_pooled_splits() {
    let dir = tempfile::tempdir().unwrap();
    let input = input();
    let file = dir.path().join("features.safetensors");
    write_input(&file, &input.tensors, &input.metadata);
    let project_dir = dir.path().join("proj");
    let (ok, stdout, stderr) = new_project(&project_dir, &file);
    assert!(ok, "{stdout}\n{stderr}");

    // The summary: splits with clips, videos, frames and tokens; dims; what was skipped.
    let line = |split: &str| -> Vec<String> {
        stdout
            .lines()
            .map(|l| l.split_whitespace().map(String::from).collect::<Vec<_>>())
            .find(|w| w.first().map(String::as_str) == Some(split))
            .unwrap_or_else(|| panic!("no {split} line in\n{stdout}"))
    };
    let kept = [0usize, 1, 2, 3, 5];
    let frames: usize = kept.iter().map(|&c| FRAMES[c]).sum();
    let tokens: usize = kept.iter().map(|&c| TOKENS[c]).sum();
    assert_eq!(
        line("train"),
        ["train", "5", "3", &frames.to_string(), &tokens.to_string()]
    );
    assert_eq!(line("val"), ["val", "3", "2", "3", "3"]);
    assert!(
        stdout.contains("video features 4 wide · text features 3 wide"),
        "{stdout}"
    );
    assert!(stdout.contains("skipped 1:"), "{stdout}");
    assert!(
        stdout.contains("skipped train clip 4 (c4): tensor `train/video` clip 4, row 1 holds NaN"),
        "{stdout}"
    );

    let project = Project::open(&project_dir).unwrap();
    let config = project.config();
    assert_eq!(config.project.name, "proj");
    assert_eq!(config.source.kind, SourceKind::Features);
    assert!(
        config
            .source
            .features
            .as_deref()
            .unwrap()
            .ends_with("features.safetensors")
    );
    assert_eq!(config.model.head, HeadKind::Coot);
    let video = config.encoders.video.as_ref().unwrap();
    assert_eq!((video.name.as_str(), video.dim), ("precomputed", DV));
    assert_eq!(config.encoders.text.as_ref().unwrap().dim, DT);
    assert_eq!(project.splits().unwrap(), ["train", "val"]);

    let train = project.load_split("train").unwrap();
    assert_eq!(train.clip_keys, ["c0", "c1", "c2", "c3", "c5"]);
    assert_eq!(train.video_keys, ["recipe-7", "recipe-3", "recipe-9"]);
    assert_eq!(train.video_of_clip, [0, 0, 1, 1, 2]);
    for (stored, &clip) in kept.iter().enumerate() {
        assert_eq!(
            train.video.get(stored),
            rows(&input.train_video, clip, T, DV, FRAMES[clip]),
            "clip {clip}"
        );
        assert_eq!(
            train.text.get(stored),
            rows(&input.train_text, clip, L, DT, TOKENS[clip]),
            "clip {clip}"
        );
    }
    assert_eq!(train.clips_of_video(1), 2..4);

    let val = project.load_split("val").unwrap();
    assert_eq!(
        val.clip_keys,
        ["val-clip-00000", "val-clip-00001", "val-clip-00002"]
    );
    assert_eq!(val.video_keys, ["val-video-00000", "val-video-00001"]);
    assert_eq!(val.video.data, input.val_video);
    assert_eq!(val.text.data, input.val_text);
    assert!((0..3).all(|c| val.video.rows(c) == 1 && val.text.rows(c) == 1));

    let manifest = project.read_manifest().unwrap();
    assert!(manifest.problems.is_empty());
    let listed: Vec<(&str, &str, &str)> = manifest
        .entries
        .iter()
        .map(|e| (e.clip.as_str(), e.video.as_str(), e.split.as_str()))
        .collect();
    assert_eq!(
        listed,
        [
            ("c0", "recipe-7", "train"),
            ("c1", "recipe-7", "train"),
            ("c2", "recipe-3", "train"),
            ("c3", "recipe-3", "train"),
            ("c5", "recipe-9", "train"),
            ("val-clip-00000", "val-video-00000", "val"),
            ("val-clip-00001", "val-video-00001", "val"),
            ("val-clip-00002", "val-video-00001", "val"),
        ]
    );
    assert!(
        manifest
            .entries
            .iter()
            .all(|e| e.caption.is_none() && e.start.is_none())
    );
    let text = std::fs::read_to_string(project.manifest_path()).unwrap();
    assert!(
        !text.contains("caption") && !text.contains("start"),
        "{text}"
    );
}

#[test]
fn pooled_features_get_the_mlp_head() {
    let dir = tempfile::tempdir().unwrap();
    let input = input();
    let pooled: Vec<Raw> = input
        .tensors
        .iter()
        .filter(|t| t.name.starts_with("val/"))
        .cloned()
        .collect();
    let file = dir.path().join("pooled.safetensors");
    write_input(&file, &pooled, &[]);
    let project_dir = dir.path().join("proj");
    let (ok, stdout, stderr) = new_project(&project_dir, &file);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("nothing skipped"), "{stdout}");
    let project = Project::open(&project_dir).unwrap();
    assert_eq!(project.config().model.head, HeadKind::Mlp);
    let toml = std::fs::read_to_string(project.config_path()).unwrap();
    assert!(toml.contains("head = \"mlp\""), "{toml}");
    assert!(toml.contains("max_context_frames = 160"), "{toml}");
}

/// Runs `new` on the input with `change` applied and returns stderr; the run must fail and leave
/// no project behind.
fn failure(change: impl FnOnce(&mut Vec<Raw>, &mut Vec<(&'static str, String)>)) -> String {
    let dir = tempfile::tempdir().unwrap();
    let Input {
        mut tensors,
        mut metadata,
        ..
    } = input();
    change(&mut tensors, &mut metadata);
    let file = dir.path().join("in.safetensors");
    write_input(&file, &tensors, &metadata);
    let project_dir = dir.path().join("proj");
    let (ok, stdout, stderr) = new_project(&project_dir, &file);
    assert!(!ok, "succeeded on a bad file:\n{stdout}");
    assert!(
        !project_dir.exists(),
        "a failed import left {}",
        project_dir.display()
    );
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains("in.safetensors"), "{stderr}");
    stderr
}

fn find<'a>(tensors: &'a mut [Raw], name: &str) -> &'a mut Raw {
    tensors.iter_mut().find(|t| t.name == name).unwrap()
}

#[test]
fn malformed_inputs_are_errors_naming_tensor_and_shape() {
    let stderr = failure(|t, _| t.retain(|t| t.name != "train/text"));
    assert!(stderr.contains("tensor `train/text`: missing"), "{stderr}");

    let stderr = failure(|t, _| {
        let video = find(t, "train/video");
        video.shape = vec![6, 1, T, DV];
    });
    assert!(stderr.contains("tensor `train/video`"), "{stderr}");
    assert!(stderr.contains("has shape [6, 1, 5, 4]"), "{stderr}");

    let stderr = failure(|t, _| t.retain(|t| t.name != "train/video_frames"));
    assert!(
        stderr.contains("tensor `train/video_frames`: missing"),
        "{stderr}"
    );
    assert!(stderr.contains("[6, 5, 4] (padded)"), "{stderr}");

    let stderr = failure(|t, _| {
        let text = find(t, "val/text");
        text.shape = vec![1, 3 * DT];
    });
    assert!(
        stderr.contains("tensor `val/text`: has shape [1, 9]"),
        "{stderr}"
    );
    assert!(stderr.contains("[3, 4]: 3 clips"), "{stderr}");

    let stderr = failure(|t, _| {
        let mut extra = find(t, "val/text").clone();
        extra.name = "val/txet".into();
        t.push(extra);
    });
    assert!(stderr.contains("tensor `val/txet`: unexpected"), "{stderr}");

    let stderr = failure(|t, _| {
        find(t, "train/video_of_clip").bytes = [7i32, 3, 7, 3, 3, 9]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
    });
    assert!(stderr.contains("tensor `train/video_of_clip`"), "{stderr}");
    assert!(
        stderr.contains("clip 2 belongs to video 7 again"),
        "{stderr}"
    );

    let stderr = failure(|t, _| {
        let video = find(t, "val/video");
        video.dtype = Dtype::I64;
    });
    assert!(
        stderr.contains("tensor `val/video`: has dtype I64"),
        "{stderr}"
    );

    let stderr = failure(|t, _| {
        let video = find(t, "val/video");
        video.shape = vec![3, 2];
        video.bytes.truncate(3 * 2 * 8);
    });
    assert!(stderr.contains("tensor `val/video`"), "{stderr}");
    assert!(
        stderr.contains("2 wide but `train/video`'s are 4"),
        "{stderr}"
    );

    let stderr = failure(|_, m| m[0].1 = r#"["c0","c1"]"#.into());
    assert!(
        stderr.contains("metadata `train/clip_keys` has 2 keys"),
        "{stderr}"
    );

    let stderr = failure(|_, m| m[1].1 = r#"["a","b","c"]"#.into());
    assert!(
        stderr.contains("metadata `train/video_keys` has 3 keys"),
        "{stderr}"
    );
    assert!(stderr.contains("refers to video 7"), "{stderr}");
}

#[test]
fn a_clip_count_outside_the_padding_skips_that_clip() {
    let dir = tempfile::tempdir().unwrap();
    let Input {
        mut tensors,
        metadata,
        ..
    } = input();
    find(&mut tensors, "train/video_frames").bytes = vec![3, 6, 1, 0, 4, 5];
    let file = dir.path().join("in.safetensors");
    write_input(&file, &tensors, &metadata);
    let (ok, stdout, stderr) = new_project(&dir.path().join("proj"), &file);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("skipped 3:"), "{stdout}");
    assert!(
        stdout.contains("skipped train clip 1 (c1): tensor `train/video_frames` says clip 1 has 6 rows; expected 1 to 5"),
        "{stdout}"
    );
    assert!(stdout.contains("skipped train clip 3 (c3)"), "{stdout}");
}

#[test]
fn new_never_writes_over_an_existing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let input = input();
    let file = dir.path().join("features.safetensors");
    write_input(&file, &input.tensors, &input.metadata);
    let project_dir: PathBuf = dir.path().join("busy");
    std::fs::create_dir(&project_dir).unwrap();
    std::fs::write(project_dir.join("thesis.tex"), "years of work").unwrap();
    let (ok, _, stderr) = new_project(&project_dir, &file);
    assert!(!ok);
    assert!(
        stderr.contains("already exists and is not empty"),
        "{stderr}"
    );
    let names: Vec<_> = std::fs::read_dir(&project_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["thesis.tex"]);

    let (ok, _, stderr) = crossclr(&[Path::new("new"), &project_dir]);
    assert!(!ok);
    assert!(
        stderr.contains("--features") && stderr.contains("--coot"),
        "{stderr}"
    );
}
