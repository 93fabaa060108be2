//! The project directory's files on their own: `crossclr.toml`, `manifest.jsonl`, the feature
//! store, and atomic replacement.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crossclr::project::config::{HeadKind, LossKind, Mode, Preset, ProjectConfig, SourceKind};
use crossclr::project::features::SequenceError;
use crossclr::project::manifest::{read_manifest, write_manifest};
use crossclr::project::{
    ManifestEntry, Project, ProjectError, Sequences, SplitFeatures, write_atomic,
};
use safetensors::tensor::{Dtype, TensorView};

fn sequences(dim: usize, lengths: &[usize], seed: f32) -> Sequences {
    let mut s = Sequences::new(dim);
    let mut next = seed;
    for &rows in lengths {
        let values: Vec<f32> = (0..rows * dim)
            .map(|_| {
                next += 0.25;
                next
            })
            .collect();
        s.push(&values);
    }
    s
}

/// Two videos: `va` with clips 0, 1 and `vb` with clips 2, 3, 4.
fn split() -> SplitFeatures {
    SplitFeatures {
        split: "train".into(),
        clip_keys: ["a0", "a1", "b0", "b1", "b2"].map(String::from).to_vec(),
        video_keys: vec!["va".into(), "vb".into()],
        video_of_clip: vec![0, 0, 1, 1, 1],
        video: sequences(3, &[2, 1, 4, 3, 1], 0.0),
        text: sequences(2, &[5, 2, 2, 1, 3], 100.0),
    }
}

/// The tensors `SplitFeatures::save` writes, as plain data, for building damaged files.
struct RawFile {
    tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)>,
    metadata: HashMap<String, String>,
}

impl RawFile {
    fn of(features: &SplitFeatures) -> Self {
        let f32s = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let i64s = |v: &[usize]| {
            v.iter()
                .flat_map(|&x| (x as i64).to_le_bytes())
                .collect::<Vec<u8>>()
        };
        let n = features.num_clips();
        Self {
            tensors: vec![
                (
                    "video".into(),
                    Dtype::F32,
                    vec![features.video.total_rows(), features.video.dim],
                    f32s(&features.video.data),
                ),
                (
                    "video_offsets".into(),
                    Dtype::I64,
                    vec![n + 1],
                    i64s(&features.video.offsets),
                ),
                (
                    "text".into(),
                    Dtype::F32,
                    vec![features.text.total_rows(), features.text.dim],
                    f32s(&features.text.data),
                ),
                (
                    "text_offsets".into(),
                    Dtype::I64,
                    vec![n + 1],
                    i64s(&features.text.offsets),
                ),
                (
                    "video_of_clip".into(),
                    Dtype::U32,
                    vec![n],
                    features
                        .video_of_clip
                        .iter()
                        .flat_map(|x| x.to_le_bytes())
                        .collect(),
                ),
            ],
            metadata: HashMap::from([
                ("format".into(), "crossclr-features".into()),
                ("version".into(), "1".into()),
                ("split".into(), features.split.clone()),
                (
                    "clip_keys".into(),
                    serde_json::to_string(&features.clip_keys).unwrap(),
                ),
                (
                    "video_keys".into(),
                    serde_json::to_string(&features.video_keys).unwrap(),
                ),
            ]),
        }
    }

    fn set(&mut self, name: &str, dtype: Dtype, shape: Vec<usize>, bytes: Vec<u8>) {
        self.tensors.retain(|t| t.0 != name);
        self.tensors.push((name.into(), dtype, shape, bytes));
    }

    fn set_offsets(&mut self, name: &str, offsets: &[i64]) {
        let bytes = offsets.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.set(name, Dtype::I64, vec![offsets.len()], bytes);
    }

    fn write(&self, path: &Path) {
        let views: Vec<(String, TensorView<'_>)> = self
            .tensors
            .iter()
            .map(|(name, dtype, shape, bytes)| {
                (
                    name.clone(),
                    TensorView::new(*dtype, shape.clone(), bytes).unwrap(),
                )
            })
            .collect();
        safetensors::serialize_to_file(views, Some(self.metadata.clone()), path).unwrap();
    }
}

/// Loads a damaged file and returns the error's tensor name and message.
fn load_error(raw: &RawFile) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("train.safetensors");
    raw.write(&path);
    match SplitFeatures::load(&path).unwrap_err() {
        ProjectError::Tensor {
            path: p,
            tensor,
            message,
        } => {
            assert_eq!(p, path);
            (tensor, message)
        }
        other => (String::new(), other.to_string()),
    }
}

#[test]
fn sequences_slice_count_and_pool() {
    let s = sequences(3, &[2, 1], 0.0);
    assert_eq!(s.len(), 2);
    assert_eq!(s.rows(0), 2);
    assert_eq!(s.rows(1), 1);
    assert_eq!(s.total_rows(), 3);
    assert_eq!(s.get(0), &[0.25, 0.5, 0.75, 1.0, 1.25, 1.5]);
    assert_eq!(s.get(1), &[1.75, 2.0, 2.25]);
    assert_eq!(s.pooled(0), vec![0.625, 0.875, 1.125]);
    assert_eq!(s.pooled(1), vec![1.75, 2.0, 2.25]);
    assert_eq!(s.validate(), Ok(()));
}

#[test]
fn sequence_validation_names_the_fault() {
    let mut s = sequences(2, &[2, 3], 0.0);
    s.offsets[1] = 0;
    assert!(
        matches!(s.validate(), Err(SequenceError::Offsets(m)) if m.contains("sequence 0 is empty"))
    );
    let mut s = sequences(2, &[2, 3], 0.0);
    s.data[7] = f32::INFINITY;
    assert!(
        matches!(s.validate(), Err(SequenceError::Data(m)) if m.contains("row 3 (sequence 1)") && m.contains("inf"))
    );
}

#[test]
fn feature_store_round_trips_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("train.safetensors");
    let features = split();
    features.save(&path).unwrap();
    let loaded = SplitFeatures::load(&path).unwrap();
    assert_eq!(loaded, features);
    assert_eq!(loaded.num_clips(), 5);
    assert_eq!(loaded.num_videos(), 2);
    assert_eq!(loaded.clips_of_video(0), 0..2);
    assert_eq!(loaded.clips_of_video(1), 2..5);
    assert!(loaded.clips_of_video(2).is_empty());
    assert_eq!(loaded.video.get(2), features.video.get(2));
    assert_eq!(loaded.text.rows(0), 5);

    // Readable as plain safetensors with the documented dtypes (numpy/torch read it as-is).
    let bytes = std::fs::read(&path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let offsets = file.tensor("video_offsets").unwrap();
    assert_eq!(offsets.dtype(), Dtype::I64);
    assert_eq!(offsets.shape(), &[6]);
    assert_eq!(file.tensor("video").unwrap().shape(), &[11, 3]);
    assert_eq!(file.tensor("video_of_clip").unwrap().dtype(), Dtype::U32);
}

#[test]
fn loading_rejects_broken_offsets() {
    let good = split();
    let cases: [(&str, Vec<i64>, &str); 4] = [
        ("video_offsets", vec![1, 2, 3, 7, 10, 11], "starts at 1"),
        (
            "video_offsets",
            vec![0, 2, 1, 7, 10, 11],
            "decreases at sequence 1",
        ),
        (
            "video_offsets",
            vec![0, 2, 3, 7, 10, 10],
            "sequence 4 is empty",
        ),
        (
            "text_offsets",
            vec![0, 5, 7, 9, 10, 12],
            "ends at 12 but the data has 13 rows",
        ),
    ];
    for (name, offsets, expected) in cases {
        let mut raw = RawFile::of(&good);
        raw.set_offsets(name, &offsets);
        let (tensor, message) = load_error(&raw);
        assert_eq!(tensor, name, "{message}");
        assert!(message.contains(expected), "{name} {offsets:?}: {message}");
    }
    let mut raw = RawFile::of(&good);
    raw.set_offsets("video_offsets", &[0, -2, 3, 7, 10, 11]);
    let (tensor, message) = load_error(&raw);
    assert_eq!(tensor, "video_offsets");
    assert!(message.contains("entry 1 is -2"), "{message}");
}

#[test]
fn loading_rejects_non_finite_values_naming_tensor_and_row() {
    let mut bad = split();
    let dim = bad.video.dim;
    bad.video.data[7 * dim + 2] = f32::NAN;
    let (tensor, message) = load_error(&RawFile::of(&bad));
    assert_eq!(tensor, "video");
    assert!(message.contains("row 7 (sequence 3)"), "{message}");
    assert!(message.contains("NaN"), "{message}");

    let mut bad = split();
    bad.text.data[0] = f32::NEG_INFINITY;
    let (tensor, message) = load_error(&RawFile::of(&bad));
    assert_eq!(tensor, "text");
    assert!(message.contains("row 0 (sequence 0)"), "{message}");
}

#[test]
fn loading_rejects_bad_video_assignments() {
    let cases: [(Vec<u32>, &str); 4] = [
        (
            vec![0, 0, 1, 1, 2],
            "clip 4 belongs to video 2, but there are 2 videos",
        ),
        (vec![0, 1, 0, 1, 1], "clip 2 belongs to video 0"),
        (vec![1, 1, 0, 0, 0], "the first clip belongs to video 1"),
        (vec![0, 0, 0, 0, 0], "only videos 0..1 have clips"),
    ];
    for (assignment, expected) in cases {
        let mut raw = RawFile::of(&split());
        let bytes = assignment.iter().flat_map(|x| x.to_le_bytes()).collect();
        raw.set("video_of_clip", Dtype::U32, vec![5], bytes);
        let (tensor, message) = load_error(&raw);
        assert_eq!(tensor, "video_of_clip", "{message}");
        assert!(message.contains(expected), "{assignment:?}: {message}");
    }
}

#[test]
fn loading_rejects_wrong_dtypes_shapes_and_metadata() {
    let good = split();

    let mut raw = RawFile::of(&good);
    raw.tensors.retain(|t| t.0 != "text");
    let (tensor, message) = load_error(&raw);
    assert_eq!(tensor, "text");
    assert!(message.contains("missing"), "{message}");

    let mut raw = RawFile::of(&good);
    let data: Vec<u8> = good
        .video
        .data
        .iter()
        .flat_map(|&x| f64::from(x).to_le_bytes())
        .collect();
    raw.set("video", Dtype::F64, vec![11, 3], data);
    let (tensor, message) = load_error(&raw);
    assert_eq!(tensor, "video");
    assert!(
        message.contains("F64") && message.contains("F32"),
        "{message}"
    );

    let mut raw = RawFile::of(&good);
    let bytes = good
        .video_of_clip
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    raw.set("video_of_clip", Dtype::U32, vec![5, 1], bytes);
    let (tensor, message) = load_error(&raw);
    assert_eq!(tensor, "video_of_clip");
    assert!(message.contains("[5, 1]"), "{message}");

    let mut raw = RawFile::of(&good);
    raw.metadata
        .insert("clip_keys".into(), "[\"a0\", \"a1\"]".into());
    let (tensor, message) = load_error(&raw);
    assert_eq!(tensor, "video", "{message}");
    assert!(
        message.contains("holds 5 clips but there are 2 clip keys"),
        "{message}"
    );

    let mut raw = RawFile::of(&good);
    raw.metadata.insert("video_keys".into(), "va, vb".into());
    let (_, message) = load_error(&raw);
    assert!(
        message.contains("metadata `video_keys` is not a JSON array"),
        "{message}"
    );

    let mut raw = RawFile::of(&good);
    raw.metadata
        .insert("clip_keys".into(), r#"["a0","a1","a0","b1","b2"]"#.into());
    let (tensor, message) = load_error(&raw);
    assert_eq!(tensor, "clip_keys");
    assert!(message.contains("\"a0\" appears twice"), "{message}");

    let mut raw = RawFile::of(&good);
    raw.metadata.remove("format");
    let (_, message) = load_error(&raw);
    assert!(
        message.contains("metadata key `format` is missing"),
        "{message}"
    );
}

#[test]
fn a_failed_save_leaves_the_previous_file_intact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("train.safetensors");
    let features = split();
    features.save(&path).unwrap();
    let before = std::fs::read(&path).unwrap();

    let mut broken = split();
    broken.text.data[3] = f32::NAN;
    let error = broken.save(&path).unwrap_err();
    assert!(error.to_string().contains("not saved"), "{error}");
    assert!(error.to_string().contains("`text`"), "{error}");
    assert_eq!(std::fs::read(&path).unwrap(), before);

    // A write that fails part-way through the new contents.
    let error = crossclr::project::write_atomic_with(&path, |out| {
        out.write_all(&before[..before.len() / 2])?;
        Err(std::io::Error::other("device full"))
    })
    .unwrap_err();
    assert!(error.to_string().contains("train.safetensors"), "{error}");
    assert_eq!(SplitFeatures::load(&path).unwrap(), features);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        ["train.safetensors"],
        "a temporary file was left behind"
    );
}

#[test]
fn config_defaults_are_the_recommended_loss_and_the_papers_schedule_and_every_key_is_written() {
    let config = ProjectConfig::default();
    assert_eq!(config.project.version, 1);
    assert_eq!(config.model.head, HeadKind::Mlp);
    assert_eq!(config.model.max_frames, 80);
    assert_eq!(config.loss.kind, LossKind::Crossclr);
    assert_eq!(config.loss.mode, Mode::Paper);
    assert_eq!(config.loss.tau, 0.03);
    // The recommended loss: the paper's but for softer weights and no queue (README).
    assert_eq!(config.loss.kappa, 0.1);
    assert_eq!(config.loss.lambda, 0.8);
    assert_eq!(config.loss.gamma, 0.9);
    assert_eq!(config.loss.queue, 0);
    let mut paper = config.clone();
    Preset::PaperYoucook2.apply(&mut paper);
    assert_eq!((paper.loss.kappa, paper.loss.queue), (0.0035, 5000));
    let mut lsmdc = config.clone();
    Preset::PaperLsmdc.apply(&mut lsmdc);
    assert_eq!(
        (lsmdc.loss.kappa, lsmdc.loss.lambda, lsmdc.loss.queue),
        (0.0055, 0.65, 3000)
    );
    assert_eq!(
        (lsmdc.model.attention_dim, lsmdc.model.local_heads),
        (768, 16)
    );
    let mut recommended = paper.clone();
    Preset::Recommended.apply(&mut recommended);
    assert_eq!(recommended, config, "the recommended preset is the default");
    assert_eq!(config.train.lr, 7e-4);
    assert_eq!(config.train.beta1, 0.56);
    assert_eq!(config.train.report_split, "test");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crossclr.toml");
    let mut config = config;
    config.project.name = "yc2".into();
    config.source.kind = SourceKind::Coot;
    config.source.coot_meta = Some("/data/meta_all.json".into());
    config.encoders.video = Some(crossclr::project::config::EncoderSpec {
        name: "precomputed".into(),
        dim: 512,
    });
    config.save(&path).unwrap();
    assert_eq!(ProjectConfig::load(&path).unwrap(), config);

    let text = std::fs::read_to_string(&path).unwrap();
    let table: toml::Table = toml::from_str(&text).unwrap();
    let keys = |section: &str| -> Vec<String> {
        let mut keys: Vec<String> = table[section].as_table().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(keys("project"), ["name", "version"]);
    assert_eq!(
        keys("model"),
        [
            "attention_dim",
            "dropout",
            "global_heads",
            "head",
            "joint_dim",
            "local_heads",
            "max_context_frames",
            "max_frames",
            "pool_heads"
        ]
    );
    assert_eq!(
        keys("loss"),
        [
            "beta",
            "gamma",
            "global_weight",
            "kappa",
            "kind",
            "lambda",
            "margin",
            "mode",
            "multi_positive_k",
            "queue",
            "tau"
        ]
    );
    assert_eq!(keys("train").len(), 16);
    assert_eq!(table["source"]["kind"].as_str(), Some("coot"));
    assert_eq!(table["encoders"]["video"]["dim"].as_integer(), Some(512));
    assert_eq!(table["loss"]["mode"].as_str(), Some("paper"));
}

fn write_config(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crossclr.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

#[test]
fn an_old_config_with_missing_keys_loads_with_defaults() {
    let (_dir, path) = write_config("[project]\nname = \"old\"\n\n[loss]\ntau = 0.05\n");
    let config = ProjectConfig::load(&path).unwrap();
    assert_eq!(config.project.name, "old");
    assert_eq!(config.project.version, 1);
    assert_eq!(config.loss.tau, 0.05);
    assert_eq!(config.loss.kappa, 0.1);
    assert_eq!(config.train, ProjectConfig::default().train);
}

#[test]
fn unknown_keys_and_bad_values_are_errors_naming_key_file_and_line() {
    let (_dir, path) = write_config("[project]\nname = \"x\"\n\n[loss]\ntau = 0.05\ntua = 0.1\n");
    let error = ProjectConfig::load(&path).unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, ProjectError::Line { line: 6, .. }),
        "{message}"
    );
    assert!(message.contains("crossclr.toml:6"), "{message}");
    assert!(message.contains("unknown field `tua`"), "{message}");

    let (_dir, path) = write_config("[optimiser]\nlr = 0.1\n");
    let message = ProjectConfig::load(&path).unwrap_err().to_string();
    assert!(message.contains("unknown field `optimiser`"), "{message}");

    let (_dir, path) = write_config("[loss]\nmode = \"offical\"\n");
    let message = ProjectConfig::load(&path).unwrap_err().to_string();
    assert!(message.contains("crossclr.toml:2"), "{message}");
    assert!(message.contains("offical"), "{message}");

    let (_dir, path) = write_config("[loss]\ntau = -0.5\n");
    let message = ProjectConfig::load(&path).unwrap_err().to_string();
    assert!(message.contains("`loss.tau` is -0.5"), "{message}");
    assert!(message.contains("crossclr.toml"), "{message}");

    let (_dir, path) = write_config("[project]\nversion = 2\n");
    let message = ProjectConfig::load(&path).unwrap_err().to_string();
    assert!(message.contains("`project.version` is 2"), "{message}");

    let (_dir, path) = write_config("[model]\nattention_dim = 384\nlocal_heads = 5\n");
    let message = ProjectConfig::load(&path).unwrap_err().to_string();
    assert!(message.contains("`model.local_heads` = 5"), "{message}");
}

fn entry(clip: &str, video: &str) -> ManifestEntry {
    ManifestEntry {
        clip: clip.into(),
        video: video.into(),
        split: "train".into(),
        start: Some(1.5),
        end: Some(4.0),
        caption: Some("whisk the eggs".into()),
        path: None,
    }
}

#[test]
fn manifest_round_trips_and_omits_absent_fields() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("manifest.jsonl");
    let mut bare = entry("c1", "v1");
    bare.start = None;
    bare.end = None;
    bare.caption = None;
    let entries = vec![entry("c0", "v0"), bare];
    write_manifest(&path, &entries).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            r#"{"clip":"c0","video":"v0","split":"train","start":1.5,"end":4.0,"caption":"whisk the eggs"}"#,
            r#"{"clip":"c1","video":"v1","split":"train"}"#,
        ]
    );
    let manifest = read_manifest(&path).unwrap();
    assert_eq!(manifest.entries, entries);
    assert!(manifest.problems.is_empty());

    let error = write_manifest(&path, &[entry("c0", "v0"), entry("c0", "v1")]).unwrap_err();
    assert!(
        error.to_string().contains("share the clip key `c0`"),
        "{error}"
    );
    assert_eq!(read_manifest(&path).unwrap().entries, entries);
}

#[test]
fn manifest_reports_each_bad_line_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("manifest.jsonl");
    let lines = [
        r#"{"clip":"c0","video":"v0","split":"train","caption":"one"}"#,
        r#"{"clip":"c1","video":"v0","split":"train""#,
        r#"{"clip":"c2","split":"train"}"#,
        "",
        r#"{"clip":"c3","video":"v1","split":"val","start":5,"end":2}"#,
        r#"{"clip":"c0","video":"v1","split":"val"}"#,
        r#"{"clip":"c4","video":"v1","split":"val","captoin":"typo"}"#,
        r#"{"clip":"c5","video":"v1","split":"../x"}"#,
        r#"{"clip":"c6","video":"v1","split":"val","start":0.5,"end":9}"#,
    ];
    let mut bytes = lines.join("\n").into_bytes();
    bytes.extend_from_slice(b"\n{\"clip\":\"c7\",\"video\":\"\xff\"}\n");
    std::fs::write(&path, bytes).unwrap();
    let manifest = read_manifest(&path).unwrap();
    let clips: Vec<&str> = manifest.entries.iter().map(|e| e.clip.as_str()).collect();
    assert_eq!(clips, ["c0", "c6"]);
    let problems: Vec<(usize, &str)> = manifest
        .problems
        .iter()
        .map(|p| (p.line, p.reason.as_str()))
        .collect();
    let expect = [
        (2, "EOF while parsing"),
        (3, "missing field `video`"),
        (5, "`end` 2 is before `start` 5"),
        (6, "clip `c0` already appears on line 1"),
        (7, "unknown field `captoin`"),
        (8, "`split` is \"../x\""),
        (10, "not valid UTF-8"),
    ];
    assert_eq!(problems.len(), expect.len(), "{problems:?}");
    for ((line, reason), (want_line, want)) in problems.iter().zip(expect) {
        assert_eq!(*line, want_line, "{reason}");
        assert!(reason.contains(want), "line {line}: {reason}");
    }
    assert_eq!(
        manifest.problems[0].to_string().split(':').next(),
        Some("line 2")
    );
    // The position serde gives is within the line: a column, not a second "line".
    assert!(
        problems[0]
            .1
            .ends_with(&format!("at column {}", lines[1].len()))
            && !problems[0].1.contains("line 1"),
        "{problems:?}"
    );
}

#[test]
fn manifest_video_paths_that_leave_the_video_folder_are_skipped_with_their_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("manifest.jsonl");
    let line = |clip: &str, video_path: &str| {
        format!(r#"{{"clip":"{clip}","video":"{clip}","split":"train","path":{video_path:?}}}"#)
    };
    let lines = [
        line("c0", "clip00.mp4"),
        line("c1", "../bigv/clip01.mp4"),
        line("c2", "/etc/passwd"),
        line("c3", "sub/../clip03.mp4"),
        line("c4", "sub/../../clip04.mp4"),
        line("c5", "./sub/clip05.mp4"),
        line("c6", ""),
    ];
    std::fs::write(&path, lines.join("\n")).unwrap();
    let manifest = read_manifest(&path).unwrap();
    let clips: Vec<&str> = manifest.entries.iter().map(|e| e.clip.as_str()).collect();
    assert_eq!(clips, ["c0", "c3", "c5"]);
    let problems: Vec<(usize, &str)> = manifest
        .problems
        .iter()
        .map(|p| (p.line, p.reason.as_str()))
        .collect();
    assert_eq!(problems.len(), 4, "{problems:?}");
    for ((line, reason), (want_line, want)) in problems.iter().zip([
        (2, "\"../bigv/clip01.mp4\" leaves the video folder"),
        (3, "\"/etc/passwd\" is absolute"),
        (5, "leaves the video folder"),
        (7, "`path` is empty"),
    ]) {
        assert_eq!(*line, want_line, "{reason}");
        assert!(reason.contains(want), "line {line}: {reason}");
    }
    // Nor is such an entry written, or resolved to a file when made in code.
    let mut outside = entry("c9", "v9");
    outside.path = Some("../bigv/clip01.mp4".into());
    let error = write_manifest(&path, std::slice::from_ref(&outside)).unwrap_err();
    assert!(
        error.to_string().contains("leaves the video folder"),
        "{error}"
    );
    let mut config = ProjectConfig::default();
    config.source.videos = Some(dir.path().join("videos").display().to_string());
    let project = Project::create(&dir.path().join("p"), config).unwrap();
    assert_eq!(project.video_path(&outside), None);
    outside.path = Some("a/b.mp4".into());
    assert_eq!(
        project.video_path(&outside),
        Some(dir.path().join("videos/a/b.mp4"))
    );
}

#[test]
fn project_directory_layout_and_refusals() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("yc2");
    let error = Project::open(&dir).unwrap_err();
    assert!(matches!(error, ProjectError::NotAProject { .. }), "{error}");
    assert!(error.to_string().contains("crossclr.toml"), "{error}");

    let project = Project::create(&dir, ProjectConfig::default()).unwrap();
    assert_eq!(project.config().project.name, "yc2");
    assert_eq!(project.config_path(), dir.join("crossclr.toml"));
    assert_eq!(project.manifest_path(), dir.join("manifest.jsonl"));
    assert_eq!(
        project.features_path("val"),
        dir.join("features/val.safetensors")
    );
    let run = project.run(&crossclr::project::RunName::new("r1").unwrap());
    assert_eq!(run.dir(), dir.join("runs/r1"));
    assert_eq!(project.maps_dir(), dir.join("maps"));
    assert!(project.runs_dir().is_dir());
    assert!(project.splits().unwrap().is_empty());

    // Refuses to make a project over anything that is there.
    let error = Project::create(&dir, ProjectConfig::default()).unwrap_err();
    assert!(matches!(error, ProjectError::NotEmpty { .. }), "{error}");
    let other = root.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "mine").unwrap();
    assert!(Project::create(&other, ProjectConfig::default()).is_err());
    assert_eq!(
        std::fs::read_to_string(other.join("notes.txt")).unwrap(),
        "mine"
    );
    // An empty directory is fine.
    let empty = root.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    Project::create(&empty, ProjectConfig::default()).unwrap();

    let mut features = split();
    for name in ["test", "val", "train", "extra"] {
        features.split = name.into();
        project.save_split(&features).unwrap();
    }
    write_atomic(&project.features_dir().join("notes.txt"), b"not a split").unwrap();
    std::fs::write(project.features_dir().join(".val.safetensors.tmp-1-0"), b"").unwrap();
    assert_eq!(project.splits().unwrap(), ["train", "val", "test", "extra"]);

    let reopened = Project::open(&dir).unwrap();
    assert_eq!(reopened.load_split("val").unwrap().split, "val");
    let error = reopened.load_split("missing").unwrap_err();
    assert!(matches!(error, ProjectError::NoSuchSplit { .. }), "{error}");
    let error = reopened.load_split("../yc2").unwrap_err();
    assert!(matches!(error, ProjectError::SplitName { .. }), "{error}");
    std::fs::copy(
        project.features_path("val"),
        project.features_path("holdout"),
    )
    .unwrap();
    let error = reopened.load_split("holdout").unwrap_err();
    assert!(error.to_string().contains("holds split `val`"), "{error}");
}

#[test]
fn a_failed_import_write_removes_what_it_wrote() {
    use crossclr::project::import::Import;
    let mut bad = split();
    bad.video.data[0] = f32::NAN;
    let import = Import {
        splits: vec![split(), {
            let mut val = bad;
            val.split = "val".into();
            val
        }],
        manifest: vec![entry("c0", "v0")],
        skipped: Vec::new(),
    };
    let root = tempfile::tempdir().unwrap();
    let missing = root.path().join("new");
    let error = import
        .write(&missing, ProjectConfig::default())
        .unwrap_err();
    assert!(error.to_string().contains("val.safetensors"), "{error}");
    assert!(!missing.exists());

    let empty = root.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    import.write(&empty, ProjectConfig::default()).unwrap_err();
    assert!(empty.is_dir());
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
}

#[test]
fn safetensors_headers_that_claim_more_than_the_file_holds_are_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    // The 8-byte little-endian header length, then a few bytes of "header".
    let lying = |claimed: u64| {
        let mut bytes = claimed.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"{\"__metadata__\":{}}");
        bytes
    };
    let started = std::time::Instant::now();
    for (i, claimed) in [u64::MAX, 1 << 40, 99_000_000, 1_000_000_000, 20]
        .iter()
        .enumerate()
    {
        let path = dir.path().join(format!("{i}.safetensors"));
        std::fs::write(&path, lying(*claimed)).unwrap();
        let features = SplitFeatures::load(&path).unwrap_err().to_string();
        assert!(features.contains(&format!("{i}.safetensors")), "{features}");
        let embeddings = crossclr::project::RunEmbeddings::load(&path)
            .unwrap_err()
            .to_string();
        assert!(
            embeddings.contains(&format!("{i}.safetensors")),
            "{embeddings}"
        );
        assert!(
            features.to_lowercase().contains("header")
                && embeddings.to_lowercase().contains("header"),
            "{features} / {embeddings}"
        );
    }
    // Refused from the 8 bytes, not after reserving what they claim (up to 16 EiB).
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}
